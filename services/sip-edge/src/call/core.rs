//! The sans-io core of one call: what the call does, decided from what happened, with no
//! socket, dialog, media port or clock of its own. Its inputs are the router's instructions,
//! the SIP events of the call's legs (as plain facts: "the caller hung up", "agent ann's
//! device answered with this SDP"), media events and the time; its outputs are reports for the
//! router and actions for the shell (`task.rs`), which owns the dialogs and the RTP legs and
//! carries them out. Unit tests drive it without SIPp (below).
//!
//! The contract with the shell: it runs the actions of one input in order, and feeds what an
//! action's outcome tells (answered or not, a ring started or failed, a recording started)
//! back in before any other input.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use callgrid_proto::api::v1 as api;

use api::edge_report::Report;
use api::router_instruction::Instruction;

use super::sip::{failure_of, hangup_code, refer_target, ReferProblem};

/// A device's dialog toward an agent: its SIP Call-ID.
pub(crate) type LegKey = String;

/// How long an agent rings when the router names no time.
const DEFAULT_RING: Duration = Duration::from_secs(20);

/// How long a transfer's NOTIFY waits after the REFER's 202 was handed to the transaction.
/// RFC 6665 lets the NOTIFY come first, but the 202 leaves from the transaction's own task
/// with no word back when it has, and phones that see the outcome before the 202 may
/// mishandle it: the NOTIFY gives the 202 this head start (the router usually decides
/// sooner, so the phone hears the outcome at most this much later).
pub(crate) const NOTIFY_AFTER_202: Duration = Duration::from_millis(50);

/// How long the edge waits for the router's end of the stream after the call ended.
pub(crate) const LINGER: Duration = Duration::from_secs(5);

/// What happened.
#[derive(Debug)]
pub(crate) enum Input {
    /// An instruction of the router.
    Router(Instruction),
    /// The router's stream ended or broke.
    RouterGone,
    /// The caller's dialog ended: `code` 487 (cancelled), 408 (timed out), 0 (BYE).
    CallerEnded { code: u16 },
    /// The caller could not be answered (no media port: 503; an offer we cannot take: 488);
    /// the shell rejected it with `code`.
    CallerAnswerFailed { code: u16 },
    /// The caller's phone holds (`true`) or resumes the call (a re-INVITE with SDP).
    CallerHold(bool),
    /// A DTMF key from the caller (RFC 4733 or SIP INFO).
    Digit(char),
    /// The caller's prompt (not a hold loop) ended.
    PromptDone,
    /// `Action::Ring` sent INVITEs to these devices.
    RingStarted {
        agent: String,
        legs: Vec<LegKey>,
        timeout: Duration,
    },
    /// `Action::Ring` reached no device (`code`: 480 none registered or reachable, 503 no
    /// media port).
    RingFailed { agent: String, code: u16 },
    /// A device of the agent rings (a provisional response).
    AgentEarly { agent: String },
    /// A device of the agent answered (2xx) with this SDP.
    AgentAnswered {
        agent: String,
        leg: LegKey,
        body: Vec<u8>,
    },
    /// A device's dialog ended (`code`: its final failure, or 0 for a BYE or one we ended).
    AgentLegEnded {
        agent: String,
        leg: LegKey,
        code: u16,
    },
    /// The agent's phone holds (`true`) or resumes.
    AgentHold { agent: String, hold: bool },
    /// The agent's phone asks to transfer (REFER); the shell keeps the transaction as
    /// `request` until `Action::Respond`.
    AgentRefer {
        agent: String,
        request: u64,
        refer_to: Option<String>,
    },
    /// `Action::StartRecording` started writing `path`.
    RecordingStarted { path: String },
    /// `Action::StartRecording` could not start.
    RecordingFailed,
    /// A call out: the customer's phone rings on `trunk` (180/183); `media`: the response
    /// carried SDP (early media: the carrier's own ringback or announcement).
    CustomerEarly { trunk: String, media: bool },
    /// A call out: the customer answered on `trunk`.
    CustomerAnswered { trunk: String },
    /// A call out: the attempt on `trunk` failed before an answer with `code` (the trunk
    /// unknown, down or full: 503).
    CustomerFailed { trunk: String, code: u16 },
    /// Time passed (a deadline of [`CallCore::next_deadline`]).
    Tick,
}

/// What the caller's media leg does.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CallerMedia {
    /// Play a prompt in a loop (hold music).
    Loop(String),
    /// Play prompts once, then loop `then`, if any.
    Play {
        parts: Vec<String>,
        then: Option<String>,
    },
    /// Announce the caller's position and expected wait, then loop `then`, if any.
    Announce {
        position: u32,
        expected_wait_ms: u64,
        then: Option<String>,
    },
    /// Stop playing.
    Stop,
}

/// The NOTIFY of a transfer's outcome (RFC 3515): the SIP status, sent no sooner than
/// `not_before`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Notify {
    pub(crate) code: u16,
    pub(crate) not_before: Instant,
}

/// What the shell does.
#[derive(Debug, PartialEq)]
pub(crate) enum Action {
    /// Send a report to the router (`ack`: ask for its result either way).
    Report { seq: u64, report: Report, ack: bool },
    /// Answer the caller (a media port, SDP, 200 OK); a failure comes back as
    /// `Input::CallerAnswerFailed`.
    AnswerCaller,
    /// A final failure for a caller not answered, with a Reason.
    RejectCaller { code: u16, reason: String },
    /// End the answered caller's dialog (BYE with a Reason).
    ByeCaller { code: u16, reason: String },
    /// 180 to a caller not yet answered.
    CallerRinging,
    /// The caller's media.
    Caller(CallerMedia),
    /// Connect the caller's and the agent's media.
    Bridge { agent: String },
    /// Disconnect them.
    Unbridge { agent: String },
    /// Invite the agent's devices (registered phones, else its SIP devices); the outcome comes
    /// back as `Input::RingStarted` or `Input::RingFailed`.
    Ring {
        agent: String,
        devices: Vec<String>,
        timeout: Duration,
    },
    /// The SDP of the device that answered is the agent's.
    UseAnswer {
        agent: String,
        leg: LegKey,
        body: Vec<u8>,
    },
    /// BYE to a device that answered but is not needed.
    ByeLeg { agent: String, leg: LegKey },
    /// CANCEL to a device that still rings.
    CancelLeg { agent: String, leg: LegKey },
    /// End the agent's part of the call: BYE to `answered`, CANCEL to `ringing`, its media
    /// released; with `notify`, the transfer's NOTIFY goes to `answered` first.
    EndAgent {
        agent: String,
        answered: Option<LegKey>,
        ringing: Vec<LegKey>,
        notify: Option<Notify>,
    },
    /// Forget the agent's legs (their dialogs are over) and release its media.
    ForgetAgent { agent: String },
    /// Tell the agent's phone how its transfer went.
    NotifyRefer {
        agent: String,
        leg: LegKey,
        notify: Notify,
    },
    /// Answer a kept request (`Input::AgentRefer`) with `code` and a Reason if given.
    Respond {
        request: u64,
        code: u16,
        reason: Option<String>,
    },
    /// A call out: INVITE `destination` on `trunk` presenting `number`; a failure to send
    /// comes back as `Input::CustomerFailed`, the trunk's answers as the other customer
    /// inputs. The customer's dialog is the caller's from then on (`ByeCaller` and
    /// `RejectCaller` end it, answered or not).
    DialCustomer {
        trunk: String,
        destination: String,
        number: String,
    },
    /// A call out: the agent hears the ringing tone (`true`: the customer rings and the
    /// carrier sends no early media) or what the customer's leg relays (`false`).
    AgentRingback { agent: String, on: bool },
    /// Record the caller and the agent bridged to it; the outcome comes back as
    /// `Input::RecordingStarted` or `Input::RecordingFailed`.
    StartRecording { agent: String },
    /// A phone that dialled out becomes `agent`'s leg `leg` (the customer's is dialled as
    /// the caller's): its media leg answers the phone's offer in a 183 (early media: the
    /// ringback and the carrier's announcements reach it). A failure rejects the phone and
    /// comes back as `Input::AgentLegEnded`.
    PhoneToAgent { agent: String, leg: LegKey },
    /// The customer answered: 200 OK to the phone that dialled.
    AcceptPhone { agent: String, leg: LegKey },
    /// The call out ended before the customer answered: the phone that dialled gets `code`.
    RejectPhone {
        agent: String,
        leg: LegKey,
        code: u16,
        reason: String,
    },
}

/// One agent being rung (on every device).
struct Ring {
    legs: Vec<Leg>,
    deadline: Instant,
    ringing_reported: bool,
    /// The device that answered (an index in `legs`).
    answered: Option<usize>,
    /// Failures seen so far (SIP codes), to report the most telling one.
    failures: Vec<u16>,
    /// The agent's phone holds the bridged call.
    held: bool,
}

struct Leg {
    key: LegKey,
    /// Ended, or being ended by us.
    over: bool,
}

impl Ring {
    fn index(&self, leg: &str) -> Option<usize> {
        self.legs.iter().position(|l| l.key == leg)
    }
    fn answered_key(&self) -> Option<LegKey> {
        self.answered.map(|i| self.legs[i].key.clone())
    }
}

struct Collect {
    max_digits: usize,
    timeout: Duration,
    digits: String,
    /// Set once the prompt ended.
    deadline: Option<Instant>,
}

/// A call out's customer leg (issue 18): what the router decided, and where it stands.
struct Dial {
    agent: String,
    destination: String,
    number: String,
    trunks: Vec<String>,
    timeout: Duration,
    /// The trunk tried now (an index in `trunks`); `None` before the first attempt.
    attempt: Option<usize>,
    /// The current attempt rings out at.
    deadline: Option<Instant>,
    ringing_reported: bool,
    /// The agent hears the ringing tone.
    ringback: bool,
}

/// A blind transfer asked for by an agent's REFER, waiting for the router's word.
struct PendingTransfer {
    agent: String,
    /// The report that carried it (its result says whether the router took it).
    seq: u64,
    /// When the REFER was answered 202.
    accepted: Instant,
}

/// A call an agent's phone dialled (issue 18): the phone's leg, first the caller's; when the
/// router makes it a call out, the agent's, and the customer's leg the caller's.
struct Phone {
    agent: String,
    leg: LegKey,
    /// The phone is the agent's leg (a call out).
    agent_side: bool,
    /// The phone got its 200 OK (the customer answered).
    accepted: bool,
}

/// The state of one call, as far as decisions go.
pub(crate) struct CallCore {
    id: String,
    caller_answered: bool,
    caller_ended: bool,
    /// The caller's phone holds the bridged call (as the router was told).
    caller_held: bool,
    agents: HashMap<String, Ring>,
    bridged: Option<String>,
    record: bool,
    recording: bool,
    collect: Option<Collect>,
    hold_prompt: Option<String>,
    /// The number of the last report (the arrival is 1).
    seq: u64,
    transfer: Option<PendingTransfer>,
    /// A call out: its customer leg (the caller of an inbound call).
    dial: Option<Dial>,
    /// A call an agent's phone dialled.
    phone: Option<Phone>,
    /// The agent's hang-up was reported: the router's end of the stream that follows is the
    /// call's normal end.
    agent_left: bool,
    /// The SIP code and cause the call ends with (what a phone that dialled hears when its
    /// call out ends unanswered).
    end: (u16, String),
    router_open: bool,
    linger_until: Option<Instant>,
    out: Vec<Action>,
}

impl CallCore {
    /// A call whose arrival (report 1) the router took.
    pub(crate) fn new(id: String) -> CallCore {
        CallCore {
            id,
            caller_answered: false,
            caller_ended: false,
            caller_held: false,
            agents: HashMap::new(),
            bridged: None,
            record: false,
            recording: false,
            collect: None,
            hold_prompt: None,
            seq: 1,
            transfer: None,
            dial: None,
            phone: None,
            agent_left: false,
            end: (480, "call ended".to_owned()),
            router_open: true,
            linger_until: None,
            out: Vec::new(),
        }
    }

    /// A call `agent`'s phone dialled (its dialog `leg`, the caller's until the router makes
    /// it a call out), whose `dialled` report the router took.
    pub(crate) fn dialled(id: String, agent: String, leg: LegKey) -> CallCore {
        CallCore {
            phone: Some(Phone {
                agent,
                leg,
                agent_side: false,
                accepted: false,
            }),
            ..CallCore::new(id)
        }
    }

    /// What to do about `input` at `now`.
    pub(crate) fn handle(&mut self, input: Input, now: Instant) -> Vec<Action> {
        match input {
            Input::Router(i) => self.instruction(i, now),
            Input::RouterGone => {
                self.router_open = false;
                if !self.caller_ended && self.agent_left {
                    // the agent hung up and the router ended the call, as it does by default
                    self.hang_up_all(200, "agent hung up");
                } else if !self.caller_ended {
                    // the router is gone: never leave the caller hanging
                    tracing::warn!(call = %self.id, "router stream ended; hanging up");
                    self.hang_up_all(500, "router stream lost");
                }
            }
            Input::CallerEnded { code } => {
                if !self.caller_ended {
                    self.caller_ended = true;
                    self.report_hangup(api::Party::Caller, code);
                    self.end_all_rings();
                    self.out.push(Action::Caller(CallerMedia::Stop));
                }
            }
            Input::CallerAnswerFailed { code } => {
                self.caller_ended = true;
                self.report_hangup(api::Party::Caller, code);
            }
            Input::CallerHold(hold) => {
                if self.bridged.is_some() && hold != self.caller_held {
                    self.caller_held = hold;
                    self.report(hold_report(api::Party::Caller, hold));
                }
            }
            Input::Digit(d) => self.digit(d, now),
            Input::PromptDone => {
                // the menu prompt ended: the digit timeout starts now
                if let Some(c) = &mut self.collect {
                    if c.deadline.is_none() {
                        c.deadline = Some(now + c.timeout);
                    }
                }
            }
            Input::RingStarted {
                agent,
                legs,
                timeout,
            } => {
                let legs = legs
                    .into_iter()
                    .map(|key| Leg { key, over: false })
                    .collect();
                self.agents.insert(
                    agent,
                    Ring {
                        legs,
                        deadline: now + timeout,
                        ringing_reported: false,
                        answered: None,
                        failures: Vec::new(),
                        held: false,
                    },
                );
            }
            Input::RingFailed { agent, code } => {
                self.offer_failed(agent, api::FailureCause::Unreachable, code);
            }
            Input::AgentEarly { agent } => self.agent_early(agent),
            Input::AgentAnswered { agent, leg, body } => self.agent_answered(agent, leg, body, now),
            Input::AgentLegEnded { agent, leg, code } => self.agent_leg_ended(agent, &leg, code),
            Input::AgentHold { agent, hold } => self.agent_hold(agent, hold),
            Input::AgentRefer {
                agent,
                request,
                refer_to,
            } => self.refer(agent, request, refer_to.as_deref(), now),
            Input::RecordingStarted { path } => {
                self.report(Report::Recording(api::RecordingStarted { path }));
            }
            Input::RecordingFailed => self.recording = false,
            Input::CustomerEarly { trunk, media } => self.customer_early(trunk, media),
            Input::CustomerAnswered { trunk } => self.customer_answered(trunk),
            Input::CustomerFailed { trunk, code } => self.customer_failed(trunk, code, now),
            Input::Tick => self.timeouts(now),
        }
        std::mem::take(&mut self.out)
    }

    /// The next time [`Input::Tick`] is due.
    pub(crate) fn next_deadline(&self, now: Instant) -> Instant {
        let rings = self
            .agents
            .values()
            .filter(|r| r.answered.is_none())
            .map(|r| r.deadline);
        let collect = self.collect.as_ref().and_then(|c| c.deadline);
        let dial = self.dial.as_ref().and_then(|d| d.deadline);
        rings
            .chain(collect)
            .chain(dial)
            .chain(self.linger_until)
            .min()
            .unwrap_or(now + Duration::from_secs(3600))
    }

    /// Whether the call is over at `now`: the caller and every agent leg ended, and the
    /// router ended its stream too (or did not within [`LINGER`]).
    pub(crate) fn finished(&mut self, now: Instant) -> bool {
        if !(self.caller_ended && self.agents.is_empty()) {
            return false;
        }
        if !self.router_open {
            return true;
        }
        now >= *self.linger_until.get_or_insert(now + LINGER)
    }

    // ------------------------------------------------------------------ reports

    fn report(&mut self, r: Report) -> u64 {
        self.send_report(r, false)
    }

    fn send_report(&mut self, report: Report, ack: bool) -> u64 {
        self.seq += 1;
        self.out.push(Action::Report {
            seq: self.seq,
            report,
            ack,
        });
        self.seq
    }

    fn report_hangup(&mut self, party: api::Party, sip_code: u16) {
        self.agent_left |= party == api::Party::Agent;
        self.report(Report::Hangup(api::Hangup {
            party: party as i32,
            sip_code: u32::from(sip_code),
        }));
    }

    /// Tells the router that offering the call to `agent` failed.
    fn offer_failed(&mut self, agent: String, cause: api::FailureCause, sip_code: u16) {
        self.report(Report::OfferFailed(api::OfferFailed {
            agent,
            cause: cause as i32,
            sip_code: u32::from(sip_code),
        }));
    }

    // ------------------------------------------------------------------ instructions

    fn instruction(&mut self, i: Instruction, now: Instant) {
        match i {
            Instruction::Result(r) => {
                if r.code != 0 {
                    tracing::debug!(call = %self.id, seq = r.seq, code = r.code, message = %r.message, "router refused a report");
                }
                if self.transfer.as_ref().is_some_and(|t| t.seq == r.seq) {
                    self.transfer_result(&r);
                }
            }
            Instruction::Answer(_) => self.answer_caller(),
            Instruction::PlayHoldMusic(p) => {
                let prompt = if p.prompt.is_empty() {
                    "hold".to_owned()
                } else {
                    p.prompt
                };
                self.hold_prompt = Some(prompt.clone());
                if self.bridged.is_none() {
                    self.out.push(Action::Caller(CallerMedia::Loop(prompt)));
                }
            }
            Instruction::Announce(a) => {
                if self.bridged.is_none() {
                    self.out.push(Action::Caller(CallerMedia::Announce {
                        position: a.position,
                        expected_wait_ms: a.expected_wait_ms,
                        then: self.hold_prompt.clone(),
                    }));
                }
            }
            Instruction::CollectDigits(c) => {
                self.answer_caller();
                let timeout = Duration::from_millis(c.timeout_ms.max(1));
                // the digit timeout starts when the prompt ends, or now without one
                let deadline = c.prompt.is_empty().then(|| now + timeout);
                if !c.prompt.is_empty() {
                    self.out.push(Action::Caller(CallerMedia::Play {
                        parts: vec![c.prompt],
                        then: None,
                    }));
                }
                self.collect = Some(Collect {
                    max_digits: c.max_digits.max(1) as usize,
                    timeout,
                    digits: String::new(),
                    deadline,
                });
            }
            Instruction::Ring(r) => {
                if self.phone_side(&r.agent) {
                    self.phone_offered(r.agent, now);
                    return;
                }
                if self.caller_ended || self.agents.contains_key(&r.agent) {
                    return; // over, or already ringing
                }
                let timeout = if r.timeout_ms == 0 {
                    DEFAULT_RING
                } else {
                    Duration::from_millis(r.timeout_ms)
                };
                self.out.push(Action::Ring {
                    agent: r.agent,
                    devices: r.devices,
                    timeout,
                });
            }
            Instruction::Dial(d) => {
                if self.dial.is_none() && !self.caller_ended {
                    // a campaign's call names no agent: the customer is dialled at once
                    let customer_first = d.agent.is_empty();
                    self.phone_to_agent(&d.agent, now);
                    self.dial = Some(Dial {
                        agent: d.agent,
                        destination: d.destination,
                        number: d.number,
                        trunks: d.trunks,
                        timeout: Duration::from_millis(d.timeout_ms.max(1_000)),
                        attempt: None,
                        deadline: None,
                        ringing_reported: false,
                        ringback: false,
                    });
                    if customer_first {
                        self.dial_next(now);
                    }
                }
            }
            Instruction::CancelRing(c) => self.cancel_ring(&c.agent),
            Instruction::Bridge(b) => self.bridge(b.agent),
            Instruction::Record(_) => {
                self.record = true;
                if let Some(agent) = self.bridged.clone() {
                    self.start_recording(agent);
                }
            }
            Instruction::Hangup(h) => {
                let cause = if h.cause.is_empty() {
                    "normal".to_owned()
                } else {
                    h.cause
                };
                self.hang_up_all(hangup_code(&cause), &cause);
            }
        }
    }

    /// A call out the agent's phone dialled: the phone becomes the agent's leg, answered
    /// from the start; the caller's side waits for the customer's leg.
    fn phone_to_agent(&mut self, agent: &str, now: Instant) {
        let Some(p) = self
            .phone
            .as_mut()
            .filter(|p| p.agent == agent && !p.agent_side)
        else {
            return;
        };
        p.agent_side = true;
        let leg = p.leg.clone();
        self.out.push(Action::PhoneToAgent {
            agent: agent.to_owned(),
            leg: leg.clone(),
        });
        self.agents.insert(
            agent.to_owned(),
            Ring {
                legs: vec![Leg {
                    key: leg,
                    over: false,
                }],
                deadline: now,
                ringing_reported: true,
                answered: Some(0),
                failures: Vec::new(),
                held: false,
            },
        );
    }

    /// Whether `agent`'s leg is the phone that dialled out.
    fn phone_side(&self, agent: &str) -> bool {
        self.phone
            .as_ref()
            .is_some_and(|p| p.agent_side && p.agent == agent)
    }

    /// The router offers the call out to the agent whose phone dialled it: the phone has
    /// answered, as it were, by dialling; the customer is dialled at once.
    fn phone_offered(&mut self, agent: String, now: Instant) {
        let live = self
            .agents
            .get(&agent)
            .is_some_and(|r| r.answered.is_some_and(|i| !r.legs[i].over));
        if !live || self.caller_ended {
            return;
        }
        let dials = self
            .dial
            .as_ref()
            .is_some_and(|d| d.agent == agent && d.attempt.is_none());
        self.report(Report::Answered(api::AgentAnswered { agent }));
        if dials {
            self.dial_next(now);
        }
    }

    fn answer_caller(&mut self) {
        if !self.caller_answered && !self.caller_ended {
            self.caller_answered = true;
            self.out.push(Action::AnswerCaller);
        }
    }

    /// Ends every leg toward an agent (CANCEL before an answer, BYE after); a transfer the
    /// router took is told to the phone first.
    fn cancel_ring(&mut self, agent: &str) {
        let Some(ring) = self.agents.remove(agent) else {
            return;
        };
        if self.bridged.as_deref() == Some(agent) {
            self.bridged = None;
            self.out.push(Action::Unbridge {
                agent: agent.to_owned(),
            });
        }
        // the router took the agent's transfer: tell its phone (RFC 3515 NOTIFY with a
        // sipfrag) before the BYE
        let notify = self.transfer.take_if(|t| t.agent == agent).map(|t| Notify {
            code: 200,
            not_before: t.accepted + NOTIFY_AFTER_202,
        });
        self.end_agent(agent.to_owned(), ring, notify);
    }

    fn end_agent(&mut self, agent: String, mut ring: Ring, notify: Option<Notify>) {
        if let Some(p) = self
            .phone
            .as_ref()
            .filter(|p| p.agent_side && !p.accepted && p.agent == agent)
        {
            // the phone that dialled waits for its final response: the call's end code
            if let Some(l) = ring.legs.iter_mut().find(|l| l.key == p.leg && !l.over) {
                l.over = true;
                self.out.push(Action::RejectPhone {
                    agent: agent.clone(),
                    leg: l.key.clone(),
                    code: self.end.0,
                    reason: self.end.1.clone(),
                });
            }
        }
        let answered = ring
            .answered
            .filter(|i| !ring.legs[*i].over)
            .map(|i| ring.legs[i].key.clone());
        let ringing = ring
            .legs
            .iter()
            .enumerate()
            .filter(|(i, l)| !l.over && Some(*i) != ring.answered)
            .map(|(_, l)| l.key.clone())
            .collect();
        self.out.push(Action::EndAgent {
            agent,
            answered,
            ringing,
            notify,
        });
    }

    fn bridge(&mut self, agent: String) {
        let answered = self
            .agents
            .get(&agent)
            .is_some_and(|r| r.answered.is_some());
        if !answered {
            tracing::warn!(call = %self.id, agent, "bridge to an agent whose phone has not answered");
            return;
        }
        if self.dial.as_ref().is_some_and(|d| !d.agent.is_empty()) {
            // a call out: the agent hears the customer's leg from the start (early media),
            // and nothing is answered here: the customer's phone answers; a campaign's call
            // (no agent in its dial) reaches its agent like an inbound call, from the queue
            if !self.caller_ended && self.bridged.is_none() {
                self.out.push(Action::Bridge {
                    agent: agent.clone(),
                });
                self.bridged = Some(agent.clone());
            }
            return;
        }
        // the caller may not be answered yet (a direct ring): answer now
        self.answer_caller();
        if self.caller_ended {
            return;
        }
        self.collect = None;
        self.out.push(Action::Caller(CallerMedia::Stop));
        self.out.push(Action::Bridge {
            agent: agent.clone(),
        });
        self.bridged = Some(agent.clone());
        // a new bridge starts off hold (the router forgets holds on answer and transfer)
        self.caller_held = false;
        if self.record {
            self.start_recording(agent);
        }
    }

    fn start_recording(&mut self, agent: String) {
        if !self.recording {
            self.recording = true;
            self.out.push(Action::StartRecording { agent });
        }
    }

    /// Ends the call from our side: caller and every agent leg.
    fn hang_up_all(&mut self, code: u16, cause: &str) {
        self.end = (code, cause.to_owned());
        self.end_all_rings();
        if !self.caller_ended {
            self.caller_ended = true;
            let reason = cause.to_owned();
            self.out.push(if self.caller_answered {
                Action::ByeCaller { code, reason }
            } else {
                Action::RejectCaller { code, reason }
            });
        }
        self.out.push(Action::Caller(CallerMedia::Stop));
    }

    /// Ends every agent leg of the call; nothing is bridged any more.
    fn end_all_rings(&mut self) {
        let mut agents: Vec<(String, Ring)> = self.agents.drain().collect();
        agents.sort_by(|a, b| a.0.cmp(&b.0));
        for (agent, ring) in agents {
            self.end_agent(agent, ring, None);
        }
        self.bridged = None;
    }

    // ------------------------------------------------------------------ transfer

    /// An agent's phone asks to hand the call on (blind transfer, RFC 3515 REFER): accepted
    /// at once (202), then the router decides; the NOTIFY tells the phone how it went.
    fn refer(&mut self, agent: String, request: u64, refer_to: Option<&str>, now: Instant) {
        let problem = if self.bridged.as_deref() != Some(agent.as_str()) {
            Some((403, "only the agent talking to the caller can transfer"))
        } else if self.transfer.is_some() {
            Some((491, "a transfer is already in progress"))
        } else {
            match refer_to.map(refer_target) {
                None | Some(Err(ReferProblem::Malformed)) => {
                    Some((400, "Refer-To is missing or not a SIP URI"))
                }
                Some(Err(ReferProblem::Attended)) => Some((
                    501,
                    "attended transfer (Replaces) is not supported; transfer blind",
                )),
                Some(Ok(_)) => None,
            }
        };
        if let Some((code, text)) = problem {
            self.out.push(Action::Respond {
                request,
                code,
                reason: Some(text.to_owned()),
            });
            return;
        }
        let Some(Ok(target)) = refer_to.map(refer_target) else {
            return;
        };
        self.out.push(Action::Respond {
            request,
            code: 202,
            reason: None,
        });
        tracing::info!(call = %self.id, agent, target = %target, "agent transfers the call");
        let seq = self.send_report(
            Report::Transfer(api::TransferRequest {
                tenant: String::new(),
                agent: agent.clone(),
                target,
            }),
            true,
        );
        self.transfer = Some(PendingTransfer {
            agent,
            seq,
            accepted: now,
        });
    }

    /// The router's word on a pending transfer. Taken: its instructions (CancelRing first)
    /// came before this result, so there is nothing left to do. Refused: the phone hears why
    /// and the call stays as it was.
    fn transfer_result(&mut self, r: &api::ReportResult) {
        let Some(t) = self.transfer.take() else {
            return;
        };
        if r.code == 0 {
            return;
        }
        tracing::info!(call = %self.id, agent = %t.agent, reason = %r.message, "transfer refused by the router");
        let code = match tonic::Code::from_i32(r.code) {
            tonic::Code::NotFound => 404,
            tonic::Code::InvalidArgument => 400,
            tonic::Code::FailedPrecondition | tonic::Code::PermissionDenied => 403,
            _ => 503,
        };
        match self.agents.get(&t.agent).and_then(Ring::answered_key) {
            Some(leg) => self.out.push(Action::NotifyRefer {
                agent: t.agent,
                leg,
                notify: Notify {
                    code,
                    not_before: t.accepted + NOTIFY_AFTER_202,
                },
            }),
            // the phone hung up after its REFER and the transfer did not happen: the agent
            // has left the call, as a plain hang-up would have said
            None => self.report_hangup(api::Party::Agent, 0),
        }
    }

    // ------------------------------------------------------------------ agent legs

    fn agent_early(&mut self, agent: String) {
        let Some(ring) = self.agents.get_mut(&agent) else {
            return;
        };
        if ring.ringing_reported {
            return;
        }
        ring.ringing_reported = true;
        if !self.caller_answered && !self.caller_ended {
            // a caller not yet answered (a direct ring) hears ringing
            self.out.push(Action::CallerRinging);
        }
        self.report(Report::Ringing(api::AgentRinging { agent }));
    }

    fn agent_answered(&mut self, agent: String, leg: LegKey, body: Vec<u8>, now: Instant) {
        let Some(ring) = self.agents.get_mut(&agent) else {
            return;
        };
        let Some(index) = ring.index(&leg) else {
            return;
        };
        if ring.answered.is_some() {
            // a second device answered too: it is not needed
            let l = &mut ring.legs[index];
            if ring.answered != Some(index) && !l.over {
                l.over = true;
                self.out.push(Action::ByeLeg { agent, leg });
            }
            return;
        }
        ring.answered = Some(index);
        self.out.push(Action::UseAnswer {
            agent: agent.clone(),
            leg,
            body,
        });
        // the other devices stop ringing
        for (i, l) in ring.legs.iter_mut().enumerate() {
            if i != index && !l.over {
                l.over = true;
                self.out.push(Action::CancelLeg {
                    agent: agent.clone(),
                    leg: l.key.clone(),
                });
            }
        }
        let dials = self
            .dial
            .as_ref()
            .is_some_and(|d| d.agent == agent && d.attempt.is_none());
        self.report(Report::Answered(api::AgentAnswered { agent }));
        if dials {
            // the customer is dialled the moment the agent answers, without a round trip
            self.dial_next(now);
        }
    }

    // ------------------------------------------------------------------ customer leg (calls out)

    /// INVITEs the customer on the next trunk of the router's list.
    fn dial_next(&mut self, now: Instant) {
        if self.caller_ended {
            return;
        }
        let Some(d) = &mut self.dial else {
            return;
        };
        let next = d.attempt.map_or(0, |i| i + 1);
        let Some(trunk) = d.trunks.get(next).cloned() else {
            return;
        };
        d.attempt = Some(next);
        d.deadline = Some(now + d.timeout);
        d.ringing_reported = false;
        self.out.push(Action::DialCustomer {
            trunk,
            destination: d.destination.clone(),
            number: d.number.clone(),
        });
    }

    /// The trunk being tried, if the customer leg is still being set up on it.
    fn current_trunk(&self, trunk: &str) -> bool {
        !self.caller_ended
            && !self.caller_answered
            && self
                .dial
                .as_ref()
                .and_then(|d| d.attempt.and_then(|i| d.trunks.get(i)))
                .is_some_and(|t| t == trunk)
    }

    fn customer_early(&mut self, trunk: String, media: bool) {
        if !self.current_trunk(&trunk) {
            return;
        }
        let Some(d) = &mut self.dial else {
            return;
        };
        // early media is the carrier's ringback (or announcement): the agent hears it;
        // without it, our ringing tone (a campaign's call has no agent on it yet)
        let ringback = (d.ringback == media && !d.agent.is_empty()).then(|| {
            d.ringback = !media;
            d.agent.clone()
        });
        let first = !std::mem::replace(&mut d.ringing_reported, true);
        if let Some(agent) = ringback {
            self.out.push(Action::AgentRingback { agent, on: !media });
        }
        if first {
            self.report(Report::CustomerRinging(api::CustomerRinging { trunk }));
        }
    }

    /// The agent stops hearing the ringing tone (answered, or the next trunk).
    fn stop_ringback(&mut self) {
        if let Some(d) = self.dial.as_mut().filter(|d| d.ringback) {
            d.ringback = false;
            let agent = d.agent.clone();
            self.out.push(Action::AgentRingback { agent, on: false });
        }
    }

    fn customer_answered(&mut self, trunk: String) {
        if !self.current_trunk(&trunk) {
            return;
        }
        self.caller_answered = true;
        self.stop_ringback();
        if let Some(d) = &mut self.dial {
            d.deadline = None;
        }
        self.report(Report::CustomerAnswered(api::CustomerAnswered { trunk }));
        if let Some(p) = self.phone.as_mut().filter(|p| p.agent_side && !p.accepted) {
            p.accepted = true;
            self.out.push(Action::AcceptPhone {
                agent: p.agent.clone(),
                leg: p.leg.clone(),
            });
        }
        if let Some(agent) = self.bridged.clone() {
            // the media may have been bridged for early media already; again is harmless
            self.out.push(Action::Bridge {
                agent: agent.clone(),
            });
            if self.record {
                self.start_recording(agent);
            }
        }
    }

    /// An attempt failed: the next trunk on 503, 408 or any 5xx, or a trunk unknown, down
    /// or full (N3); otherwise, or after the last trunk, the call out failed with `code`.
    fn customer_failed(&mut self, trunk: String, code: u16, now: Instant) {
        if !self.current_trunk(&trunk) {
            return;
        }
        let more = self
            .dial
            .as_ref()
            .is_some_and(|d| d.attempt.map_or(0, |i| i + 1) < d.trunks.len());
        let fails_over = code == 408 || (500..600).contains(&code);
        self.stop_ringback();
        if more && fails_over {
            self.report(Report::TrunkFailed(api::TrunkFailed {
                trunk,
                sip_code: u32::from(code),
            }));
            self.dial_next(now);
            return;
        }
        if let Some(d) = &mut self.dial {
            d.deadline = None;
        }
        self.caller_ended = true;
        self.report(Report::DialFailed(api::DialFailed {
            sip_code: u32::from(code),
            trunk,
        }));
        // the router ends the call (the agent's leg with it)
    }

    fn agent_leg_ended(&mut self, agent: String, leg: &str, code: u16) {
        let Some(ring) = self.agents.get_mut(&agent) else {
            return;
        };
        let Some(index) = ring.index(leg) else {
            return;
        };
        let by_us = ring.legs[index].over;
        ring.legs[index].over = true;
        if ring.answered == Some(index) {
            if by_us {
                return;
            }
            let was_bridged = self.bridged.as_deref() == Some(agent.as_str());
            self.agents.remove(&agent);
            if was_bridged {
                self.bridged = None;
                self.out.push(Action::Unbridge {
                    agent: agent.clone(),
                });
            }
            self.out.push(Action::ForgetAgent {
                agent: agent.clone(),
            });
            if self.transfer.as_ref().is_some_and(|t| t.agent == agent) {
                // a phone that hangs up right after its REFER: the transfer goes on, the
                // router's word decides what the caller gets
                return;
            }
            if was_bridged {
                // the agent hung up an answered call; the router decides what follows (by
                // default it ends the call)
                self.report_hangup(api::Party::Agent, 0);
            } else {
                self.offer_failed(agent, api::FailureCause::Rejected, 0);
            }
            return;
        }
        if by_us {
            return;
        }
        ring.failures.push(code);
        if ring.answered.is_none() && ring.legs.iter().all(|l| l.over) {
            let (cause, code) = failure_of(&ring.failures);
            self.agents.remove(&agent);
            self.out.push(Action::ForgetAgent {
                agent: agent.clone(),
            });
            self.offer_failed(agent, cause, code);
        }
    }

    /// The agent holds or resumes: the caller hears hold music meanwhile (C5).
    fn agent_hold(&mut self, agent: String, hold: bool) {
        if self.bridged.as_deref() != Some(agent.as_str()) {
            return;
        }
        let Some(ring) = self.agents.get_mut(&agent) else {
            return;
        };
        let changed = ring.held != hold;
        ring.held = hold;
        if hold {
            let prompt = self.hold_prompt.clone().unwrap_or_else(|| "hold".into());
            self.out.push(Action::Unbridge {
                agent: agent.clone(),
            });
            self.out.push(Action::Caller(CallerMedia::Loop(prompt)));
        } else {
            self.out.push(Action::Caller(CallerMedia::Stop));
            self.out.push(Action::Bridge {
                agent: agent.clone(),
            });
        }
        if changed {
            self.report(hold_report(api::Party::Agent, hold));
        }
    }

    // ------------------------------------------------------------------ digits and time

    fn digit(&mut self, d: char, now: Instant) {
        let Some(c) = &mut self.collect else {
            return; // digits outside a collection are not routing input
        };
        if c.digits.is_empty() {
            self.out.push(Action::Caller(CallerMedia::Stop)); // barge-in
        }
        c.digits.push(d);
        if c.digits.len() >= c.max_digits {
            let digits = std::mem::take(&mut c.digits);
            self.collect = None;
            self.report(Report::Digits(api::Digits { digits }));
        } else {
            c.deadline = Some(now + c.timeout);
        }
    }

    fn timeouts(&mut self, now: Instant) {
        if let Some(d) = &mut self.dial {
            if d.deadline.is_some_and(|t| t <= now) {
                // the customer rang out: CANCEL the INVITE; the call out ends no answer
                d.deadline = None;
                let trunk = d
                    .attempt
                    .and_then(|i| d.trunks.get(i))
                    .cloned()
                    .unwrap_or_default();
                if !self.caller_ended {
                    self.caller_ended = true;
                    self.out.push(Action::RejectCaller {
                        code: 487,
                        reason: "no answer".into(),
                    });
                    self.report(Report::DialFailed(api::DialFailed {
                        sip_code: 480,
                        trunk,
                    }));
                }
            }
        }
        if let Some(c) = &self.collect {
            if c.deadline.is_some_and(|d| d <= now) {
                let digits = c.digits.clone();
                self.collect = None;
                if digits.is_empty() {
                    self.report(Report::CollectTimeout(api::CollectTimeout {}));
                } else {
                    self.report(Report::Digits(api::Digits { digits }));
                }
            }
        }
        let mut expired: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, r)| r.answered.is_none() && r.deadline <= now)
            .map(|(a, _)| a.clone())
            .collect();
        expired.sort();
        for agent in expired {
            if let Some(ring) = self.agents.remove(&agent) {
                self.end_agent(agent.clone(), ring, None);
                self.offer_failed(agent, api::FailureCause::NoAnswer, 408);
            }
        }
    }
}

/// The report of a party's hold (`true`) or resume.
fn hold_report(party: api::Party, hold: bool) -> Report {
    let party = party as i32;
    if hold {
        Report::Held(api::Held { party })
    } else {
        Report::Resumed(api::Resumed { party })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use api::router_instruction::Instruction as I;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn ring(agent: &str) -> Input {
        Input::Router(I::Ring(api::Ring {
            agent: agent.into(),
            devices: vec![],
            timeout_ms: 15_000,
        }))
    }

    fn router(i: I) -> Input {
        Input::Router(i)
    }

    /// The reports among `actions`: (seq, report).
    fn reports(actions: &[Action]) -> Vec<(u64, Report)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Report { seq, report, .. } => Some((*seq, report.clone())),
                _ => None,
            })
            .collect()
    }

    fn started(agent: &str, legs: &[&str]) -> Input {
        Input::RingStarted {
            agent: agent.into(),
            legs: legs.iter().map(|l| l.to_string()).collect(),
            timeout: Duration::from_secs(15),
        }
    }

    /// A call queued (answered, hold music), ann rung on two devices, the first answering,
    /// bridged: the actions of each step.
    fn bridged_call(t0: Instant) -> CallCore {
        let mut c = CallCore::new("c1".into());
        assert_eq!(
            c.handle(router(I::Answer(api::Answer {})), t0),
            [Action::AnswerCaller]
        );
        assert_eq!(
            c.handle(router(I::PlayHoldMusic(api::PlayHoldMusic::default())), t0),
            [Action::Caller(CallerMedia::Loop("hold".into()))]
        );
        assert_eq!(
            c.handle(ring("ann"), t0),
            [Action::Ring {
                agent: "ann".into(),
                devices: vec![],
                timeout: Duration::from_secs(15)
            }]
        );
        assert!(c.handle(started("ann", &["d1", "d2"]), t0).is_empty());
        let a = c.handle(
            Input::AgentEarly {
                agent: "ann".into(),
            },
            t0,
        );
        assert_eq!(
            reports(&a),
            [(
                2,
                Report::Ringing(api::AgentRinging {
                    agent: "ann".into()
                })
            )]
        );
        assert_eq!(a.len(), 1, "an answered caller hears no 180: {a:?}");
        let a = c.handle(
            Input::AgentAnswered {
                agent: "ann".into(),
                leg: "d1".into(),
                body: b"v=0".to_vec(),
            },
            t0,
        );
        assert_eq!(
            a,
            [
                Action::UseAnswer {
                    agent: "ann".into(),
                    leg: "d1".into(),
                    body: b"v=0".to_vec()
                },
                Action::CancelLeg {
                    agent: "ann".into(),
                    leg: "d2".into()
                },
                Action::Report {
                    seq: 3,
                    report: Report::Answered(api::AgentAnswered {
                        agent: "ann".into()
                    }),
                    ack: false
                },
            ]
        );
        assert_eq!(
            c.handle(
                router(I::Bridge(api::Bridge {
                    agent: "ann".into()
                })),
                t0
            ),
            [
                Action::Caller(CallerMedia::Stop),
                Action::Bridge {
                    agent: "ann".into()
                }
            ]
        );
        c
    }

    #[test]
    fn a_queued_call_is_answered_rung_bridged_recorded_and_ended_by_the_caller() {
        let t0 = Instant::now();
        let mut c = bridged_call(t0);
        assert_eq!(
            c.handle(router(I::Record(api::Record {})), t0),
            [Action::StartRecording {
                agent: "ann".into()
            }]
        );
        let a = c.handle(
            Input::RecordingStarted {
                path: "r.wav".into(),
            },
            t0,
        );
        assert_eq!(
            reports(&a),
            [(
                4,
                Report::Recording(api::RecordingStarted {
                    path: "r.wav".into()
                })
            )]
        );
        // the second device's CANCEL ends it: ours, nothing to report
        let a = c.handle(
            Input::AgentLegEnded {
                agent: "ann".into(),
                leg: "d2".into(),
                code: 487,
            },
            t0,
        );
        assert!(a.is_empty(), "{a:?}");
        let a = c.handle(Input::CallerEnded { code: 0 }, at(t0, 10));
        assert_eq!(
            a,
            [
                Action::Report {
                    seq: 5,
                    report: Report::Hangup(api::Hangup {
                        party: api::Party::Caller as i32,
                        sip_code: 0
                    }),
                    ack: false
                },
                Action::EndAgent {
                    agent: "ann".into(),
                    answered: Some("d1".into()),
                    ringing: vec![],
                    notify: None
                },
                Action::Caller(CallerMedia::Stop),
            ]
        );
        // the router has not ended its stream: the call lingers for it
        assert!(!c.finished(at(t0, 10)));
        assert!(c.finished(at(t0, 10) + LINGER));
        let mut c = bridged_call(t0);
        c.handle(Input::CallerEnded { code: 0 }, t0);
        assert!(c.handle(Input::RouterGone, t0).is_empty());
        assert!(c.finished(t0));
    }

    #[test]
    fn an_agent_whose_devices_fail_or_never_answer_is_reported_with_the_telling_cause() {
        let t0 = Instant::now();
        let mut c = CallCore::new("c2".into());
        c.handle(ring("ann"), t0);
        c.handle(started("ann", &["d1", "d2"]), t0);
        let end = |leg: &str, code| Input::AgentLegEnded {
            agent: "ann".into(),
            leg: leg.into(),
            code,
        };
        assert!(c.handle(end("d1", 480), t0).is_empty());
        let a = c.handle(end("d2", 486), t0);
        assert_eq!(
            a[0],
            Action::ForgetAgent {
                agent: "ann".into()
            }
        );
        assert_eq!(
            reports(&a),
            [(
                2,
                Report::OfferFailed(api::OfferFailed {
                    agent: "ann".into(),
                    cause: api::FailureCause::Busy as i32,
                    sip_code: 486
                })
            )]
        );
        // no answer within the ring time: CANCEL, reported as no answer
        c.handle(ring("bob"), t0);
        c.handle(started("bob", &["b1"]), t0);
        assert_eq!(c.next_deadline(t0), at(t0, 15_000));
        assert!(c.handle(Input::Tick, at(t0, 14_999)).is_empty());
        let a = c.handle(Input::Tick, at(t0, 15_000));
        assert_eq!(
            a[0],
            Action::EndAgent {
                agent: "bob".into(),
                answered: None,
                ringing: vec!["b1".into()],
                notify: None
            }
        );
        assert_eq!(
            reports(&a),
            [(
                3,
                Report::OfferFailed(api::OfferFailed {
                    agent: "bob".into(),
                    cause: api::FailureCause::NoAnswer as i32,
                    sip_code: 408
                })
            )]
        );
        // a ring that reaches no device, and a ring the router repeats
        let a = c.handle(
            Input::RingFailed {
                agent: "cy".into(),
                code: 480,
            },
            t0,
        );
        assert_eq!(
            reports(&a)[0].1,
            Report::OfferFailed(api::OfferFailed {
                agent: "cy".into(),
                cause: api::FailureCause::Unreachable as i32,
                sip_code: 480
            })
        );
        c.handle(ring("dee"), t0);
        c.handle(started("dee", &["e1"]), t0);
        assert!(c.handle(ring("dee"), t0).is_empty(), "already ringing");
    }

    #[test]
    fn a_direct_ring_gives_the_caller_ringback_and_the_bridge_answers_it() {
        let t0 = Instant::now();
        let mut c = CallCore::new("c3".into());
        c.handle(ring("ann"), t0);
        c.handle(started("ann", &["d1"]), t0);
        let a = c.handle(
            Input::AgentEarly {
                agent: "ann".into(),
            },
            t0,
        );
        assert_eq!(a[0], Action::CallerRinging);
        assert!(c
            .handle(
                Input::AgentEarly {
                    agent: "ann".into()
                },
                t0
            )
            .is_empty());
        c.handle(
            Input::AgentAnswered {
                agent: "ann".into(),
                leg: "d1".into(),
                body: vec![],
            },
            t0,
        );
        let a = c.handle(
            router(I::Bridge(api::Bridge {
                agent: "ann".into(),
            })),
            t0,
        );
        assert_eq!(a[0], Action::AnswerCaller);
        assert_eq!(
            a[2],
            Action::Bridge {
                agent: "ann".into()
            }
        );
        // a bridge to an agent whose phone has not answered does nothing
        let mut c = CallCore::new("c4".into());
        c.handle(ring("ann"), t0);
        c.handle(started("ann", &["d1"]), t0);
        assert!(c
            .handle(
                router(I::Bridge(api::Bridge {
                    agent: "ann".into()
                })),
                t0
            )
            .is_empty());
    }

    #[test]
    fn menu_digits_barge_in_and_time_out_from_the_end_of_the_prompt() {
        let t0 = Instant::now();
        let mut c = CallCore::new("c5".into());
        let collect = |max| {
            router(I::CollectDigits(api::CollectDigits {
                prompt: "menu".into(),
                max_digits: max,
                timeout_ms: 3_000,
            }))
        };
        let a = c.handle(collect(2), t0);
        assert_eq!(
            a,
            [
                Action::AnswerCaller,
                Action::Caller(CallerMedia::Play {
                    parts: vec!["menu".into()],
                    then: None
                })
            ]
        );
        assert!(
            c.handle(Input::Tick, at(t0, 60_000)).is_empty(),
            "prompt still playing"
        );
        assert_eq!(
            c.handle(Input::Digit('1'), at(t0, 100)),
            [Action::Caller(CallerMedia::Stop)]
        );
        let a = c.handle(Input::Digit('2'), at(t0, 200));
        assert_eq!(
            reports(&a),
            [(
                2,
                Report::Digits(api::Digits {
                    digits: "12".into()
                })
            )]
        );
        // digits outside a collection are not routing input
        assert!(c.handle(Input::Digit('3'), at(t0, 300)).is_empty());
        // no digit: the timeout counts from the prompt's end
        c.handle(collect(1), at(t0, 1_000));
        c.handle(Input::PromptDone, at(t0, 2_000));
        assert!(c.handle(Input::Tick, at(t0, 4_999)).is_empty());
        let a = c.handle(Input::Tick, at(t0, 5_000));
        assert_eq!(
            reports(&a),
            [(3, Report::CollectTimeout(api::CollectTimeout {}))]
        );
    }

    #[test]
    fn a_refer_is_accepted_then_notified_as_the_router_decides() {
        let t0 = Instant::now();
        let refer = |agent: &str, request, to: Option<&str>| Input::AgentRefer {
            agent: agent.into(),
            request,
            refer_to: to.map(str::to_owned),
        };
        // refused: the router's word goes to the phone in a NOTIFY after the 202
        let mut c = bridged_call(t0);
        let a = c.handle(refer("ann", 7, Some("<sip:201@edge>")), at(t0, 5));
        assert_eq!(
            a,
            [
                Action::Respond {
                    request: 7,
                    code: 202,
                    reason: None
                },
                Action::Report {
                    seq: 4,
                    report: Report::Transfer(api::TransferRequest {
                        tenant: String::new(),
                        agent: "ann".into(),
                        target: "201".into()
                    }),
                    ack: true
                }
            ]
        );
        let a = c.handle(refer("ann", 8, Some("<sip:202@edge>")), at(t0, 6));
        assert!(matches!(
            a[..],
            [Action::Respond {
                request: 8,
                code: 491,
                ..
            }]
        ));
        let a = c.handle(
            router(I::Result(api::ReportResult {
                seq: 4,
                code: tonic::Code::FailedPrecondition as i32,
                message: "no".into(),
            })),
            at(t0, 9),
        );
        assert_eq!(
            a,
            [Action::NotifyRefer {
                agent: "ann".into(),
                leg: "d1".into(),
                notify: Notify {
                    code: 403,
                    not_before: at(t0, 5) + NOTIFY_AFTER_202
                }
            }]
        );
        // taken: the router's CancelRing ends the agent's leg after a 200 NOTIFY
        let mut c = bridged_call(t0);
        c.handle(refer("ann", 9, Some("sip:+15550000200@edge")), t0);
        let a = c.handle(
            router(I::CancelRing(api::CancelRing {
                agent: "ann".into(),
            })),
            t0,
        );
        assert_eq!(
            a,
            [
                Action::Unbridge {
                    agent: "ann".into()
                },
                Action::EndAgent {
                    agent: "ann".into(),
                    answered: Some("d1".into()),
                    ringing: vec![],
                    notify: Some(Notify {
                        code: 200,
                        not_before: t0 + NOTIFY_AFTER_202
                    })
                }
            ]
        );
        // only the bridged agent transfers, blind, to a SIP URI
        let mut c = bridged_call(t0);
        assert!(matches!(
            c.handle(refer("bob", 1, Some("<sip:201@edge>")), t0)[..],
            [Action::Respond { code: 403, .. }]
        ));
        assert!(matches!(
            c.handle(refer("ann", 2, None), t0)[..],
            [Action::Respond { code: 400, .. }]
        ));
        assert!(matches!(
            c.handle(refer("ann", 3, Some("<sip:a@b?Replaces=x>")), t0)[..],
            [Action::Respond { code: 501, .. }]
        ));
    }

    #[test]
    fn holds_play_music_to_the_caller_and_are_reported_once() {
        let t0 = Instant::now();
        let mut c = bridged_call(t0);
        let hold = |hold| Input::AgentHold {
            agent: "ann".into(),
            hold,
        };
        let a = c.handle(hold(true), t0);
        assert_eq!(
            a[0],
            Action::Unbridge {
                agent: "ann".into()
            }
        );
        assert_eq!(a[1], Action::Caller(CallerMedia::Loop("hold".into())));
        assert_eq!(
            reports(&a),
            [(
                4,
                Report::Held(api::Held {
                    party: api::Party::Agent as i32
                })
            )]
        );
        let a = c.handle(hold(true), t0);
        assert!(reports(&a).is_empty(), "the same hold again is not news");
        let a = c.handle(hold(false), t0);
        assert_eq!(
            a[1],
            Action::Bridge {
                agent: "ann".into()
            }
        );
        assert_eq!(
            reports(&a),
            [(
                5,
                Report::Resumed(api::Resumed {
                    party: api::Party::Agent as i32
                })
            )]
        );
        let a = c.handle(Input::CallerHold(true), t0);
        assert_eq!(
            reports(&a),
            [(
                6,
                Report::Held(api::Held {
                    party: api::Party::Caller as i32
                })
            )]
        );
    }

    #[test]
    fn the_caller_is_never_left_hanging() {
        let t0 = Instant::now();
        // the router's stream breaks before the caller was answered: a final failure
        let mut c = CallCore::new("c6".into());
        let a = c.handle(Input::RouterGone, t0);
        assert_eq!(
            a[0],
            Action::RejectCaller {
                code: 500,
                reason: "router stream lost".into()
            }
        );
        assert!(c.finished(t0));
        // after the answer: a BYE; a hang-up's cause picks the code
        let mut c = bridged_call(t0);
        let a = c.handle(
            router(I::Hangup(api::HangupCall {
                cause: "queue_timeout".into(),
            })),
            t0,
        );
        assert_eq!(
            a,
            [
                Action::EndAgent {
                    agent: "ann".into(),
                    answered: Some("d1".into()),
                    // d2 was cancelled when d1 answered
                    ringing: vec![],
                    notify: None
                },
                Action::ByeCaller {
                    code: 480,
                    reason: "queue_timeout".into()
                },
                Action::Caller(CallerMedia::Stop)
            ]
        );
        // an answer that fails ends the call for the router too
        let mut c = CallCore::new("c7".into());
        c.handle(router(I::Answer(api::Answer {})), t0);
        let a = c.handle(Input::CallerAnswerFailed { code: 503 }, t0);
        assert_eq!(
            reports(&a),
            [(
                2,
                Report::Hangup(api::Hangup {
                    party: api::Party::Caller as i32,
                    sip_code: 503
                })
            )]
        );
        assert!(c.handle(router(I::Answer(api::Answer {})), t0).is_empty());
    }

    #[test]
    fn an_agent_who_hangs_up_is_reported_by_what_it_was_doing() {
        let t0 = Instant::now();
        let mut c = bridged_call(t0);
        let a = c.handle(
            Input::AgentLegEnded {
                agent: "ann".into(),
                leg: "d1".into(),
                code: 0,
            },
            t0,
        );
        assert_eq!(
            a[0],
            Action::Unbridge {
                agent: "ann".into()
            }
        );
        assert_eq!(
            a[1],
            Action::ForgetAgent {
                agent: "ann".into()
            }
        );
        assert_eq!(
            reports(&a),
            [(
                4,
                Report::Hangup(api::Hangup {
                    party: api::Party::Agent as i32,
                    sip_code: 0
                })
            )]
        );
    }

    /// A call out: the router's dial plan, ann rung and answering on one device.
    fn call_out(t0: Instant, trunks: &[&str]) -> (CallCore, Vec<Action>) {
        let mut c = CallCore::new("o1".into());
        let dial = I::Dial(api::Dial {
            agent: "ann".into(),
            destination: "+84912345678".into(),
            number: "+842873000200".into(),
            trunks: trunks.iter().map(|t| t.to_string()).collect(),
            timeout_ms: 30_000,
        });
        assert!(c.handle(router(dial), t0).is_empty());
        assert_eq!(c.handle(ring("ann"), t0).len(), 1);
        assert!(c.handle(started("ann", &["d1"]), t0).is_empty());
        let a = c.handle(
            Input::AgentAnswered {
                agent: "ann".into(),
                leg: "d1".into(),
                body: b"v=0".to_vec(),
            },
            t0,
        );
        (c, a)
    }

    fn dial(trunk: &str) -> Action {
        Action::DialCustomer {
            trunk: trunk.into(),
            destination: "+84912345678".into(),
            number: "+842873000200".into(),
        }
    }

    #[test]
    fn a_call_out_dials_the_customer_when_the_agent_answers_and_bridges_on_answer() {
        let t0 = Instant::now();
        let (mut c, a) = call_out(t0, &["vnpt"]);
        // the INVITE to the customer is the action right after the agent's answer report
        assert_eq!(a.last(), Some(&dial("vnpt")));
        assert!(matches!(
            a[a.len() - 2],
            Action::Report {
                report: Report::Answered(_),
                ..
            }
        ));
        // the router's bridge connects the agent to the customer's leg (early media); the
        // caller is never "answered" by us
        let a = c.handle(
            router(I::Bridge(api::Bridge {
                agent: "ann".into(),
            })),
            t0,
        );
        assert_eq!(
            a,
            [Action::Bridge {
                agent: "ann".into()
            }]
        );
        let a = c.handle(
            Input::CustomerEarly {
                trunk: "vnpt".into(),
                media: false,
            },
            t0,
        );
        // a 180 without SDP: the agent hears our ringing tone
        assert!(a.contains(&Action::AgentRingback {
            agent: "ann".into(),
            on: true
        }));
        assert_eq!(
            reports(&a),
            [(
                3,
                Report::CustomerRinging(api::CustomerRinging {
                    trunk: "vnpt".into()
                })
            )]
        );
        // a 183 with early media: the agent hears the carrier instead, nothing more reported
        assert_eq!(
            c.handle(
                Input::CustomerEarly {
                    trunk: "vnpt".into(),
                    media: true,
                },
                t0
            ),
            [Action::AgentRingback {
                agent: "ann".into(),
                on: false
            }]
        );
        let a = c.handle(
            Input::CustomerAnswered {
                trunk: "vnpt".into(),
            },
            at(t0, 4_000),
        );
        assert_eq!(
            reports(&a),
            [(
                4,
                Report::CustomerAnswered(api::CustomerAnswered {
                    trunk: "vnpt".into()
                })
            )]
        );
        assert!(a.contains(&Action::Bridge {
            agent: "ann".into()
        }));
        // the customer hangs up: reported as the caller's hang-up, the agent's leg ends
        let a = c.handle(Input::CallerEnded { code: 0 }, at(t0, 9_000));
        assert!(matches!(reports(&a)[..], [(5, Report::Hangup(_))]));
        assert!(a.iter().any(|x| matches!(x, Action::EndAgent { .. })));
        c.handle(Input::RouterGone, at(t0, 9_002));
        assert!(c.finished(at(t0, 9_003)));
    }

    /// A campaign's `Dial`: no agent, the campaign's 20 s of ringing.
    fn campaign_dial() -> I {
        I::Dial(api::Dial {
            agent: String::new(),
            destination: "+84912345678".into(),
            number: "+842873000200".into(),
            trunks: vec!["vnpt".into()],
            timeout_ms: 20_000,
        })
    }

    #[test]
    fn a_campaign_call_dials_the_customer_at_once_and_reaches_its_agent_from_the_queue() {
        let t0 = Instant::now();
        let mut c = CallCore::new("c1".into());
        // no agent to wait for: the INVITE goes out with the instruction
        assert_eq!(c.handle(router(campaign_dial()), t0), [dial("vnpt")]);
        // ringing is reported, and nobody hears a ringback
        let a = c.handle(
            Input::CustomerEarly {
                trunk: "vnpt".into(),
                media: false,
            },
            t0,
        );
        assert!(!a.iter().any(|x| matches!(x, Action::AgentRingback { .. })));
        assert!(matches!(reports(&a)[..], [(_, Report::CustomerRinging(_))]));
        let a = c.handle(
            Input::CustomerAnswered {
                trunk: "vnpt".into(),
            },
            at(t0, 5_000),
        );
        assert!(matches!(
            reports(&a)[..],
            [(_, Report::CustomerAnswered(_))]
        ));
        // the router queues it: nothing to answer (the customer did), hold music plays
        assert!(c.handle(router(I::Answer(api::Answer {})), t0).is_empty());
        let a = c.handle(
            router(I::PlayHoldMusic(api::PlayHoldMusic::default())),
            at(t0, 5_001),
        );
        assert_eq!(a, [Action::Caller(CallerMedia::Loop("hold".into()))]);
        // an agent of the campaign is rung and answers: no second dial; the bridge stops the
        // music and connects them
        assert_eq!(c.handle(ring("ann"), at(t0, 5_002)).len(), 1);
        assert!(c.handle(started("ann", &["d1"]), at(t0, 5_002)).is_empty());
        let a = c.handle(
            Input::AgentAnswered {
                agent: "ann".into(),
                leg: "d1".into(),
                body: b"v=0".to_vec(),
            },
            at(t0, 5_300),
        );
        assert!(!a.iter().any(|x| matches!(x, Action::DialCustomer { .. })));
        let a = c.handle(
            router(I::Bridge(api::Bridge {
                agent: "ann".into(),
            })),
            at(t0, 5_301),
        );
        assert_eq!(
            a,
            [
                Action::Caller(CallerMedia::Stop),
                Action::Bridge {
                    agent: "ann".into()
                }
            ]
        );
    }

    #[test]
    fn a_campaign_call_not_answered_in_its_ring_time_is_given_up() {
        let t0 = Instant::now();
        let mut c = CallCore::new("c2".into());
        c.handle(router(campaign_dial()), t0);
        // still ringing just before its time; given up (CANCEL, no answer) at it
        assert!(reports(&c.handle(Input::Tick, at(t0, 19_999))).is_empty());
        let a = c.handle(Input::Tick, at(t0, 20_000));
        assert!(a.iter().any(|x| matches!(x, Action::RejectCaller { .. })));
        assert!(matches!(
            reports(&a)[..],
            [(_, Report::DialFailed(api::DialFailed { sip_code: 480, .. }))]
        ));
    }

    #[test]
    fn a_call_out_fails_over_on_503_and_408_and_fails_on_busy() {
        let t0 = Instant::now();
        let (mut c, _) = call_out(t0, &["viettel", "backup", "third"]);
        let a = c.handle(
            Input::CustomerFailed {
                trunk: "viettel".into(),
                code: 503,
            },
            t0,
        );
        assert_eq!(
            reports(&a),
            [(
                3,
                Report::TrunkFailed(api::TrunkFailed {
                    trunk: "viettel".into(),
                    sip_code: 503
                })
            )]
        );
        assert_eq!(a.last(), Some(&dial("backup")));
        // a late answer of the trunk given up is ignored
        assert!(c
            .handle(
                Input::CustomerAnswered {
                    trunk: "viettel".into()
                },
                t0
            )
            .is_empty());
        let a = c.handle(
            Input::CustomerFailed {
                trunk: "backup".into(),
                code: 408,
            },
            t0,
        );
        assert_eq!(a.last(), Some(&dial("third")));
        // busy is the customer's answer, not the trunk's fault: no next trunk
        let a = c.handle(
            Input::CustomerFailed {
                trunk: "third".into(),
                code: 486,
            },
            t0,
        );
        assert_eq!(
            reports(&a),
            [(
                5,
                Report::DialFailed(api::DialFailed {
                    sip_code: 486,
                    trunk: "third".into()
                })
            )]
        );
        assert!(!a.iter().any(|x| matches!(x, Action::DialCustomer { .. })));
    }

    #[test]
    fn a_call_out_after_its_last_trunk_or_its_ring_time_fails_with_the_code() {
        let t0 = Instant::now();
        let (mut c, _) = call_out(t0, &["only"]);
        let a = c.handle(
            Input::CustomerFailed {
                trunk: "only".into(),
                code: 503,
            },
            t0,
        );
        assert_eq!(
            reports(&a),
            [(
                3,
                Report::DialFailed(api::DialFailed {
                    sip_code: 503,
                    trunk: "only".into()
                })
            )]
        );
        // the customer rings out: CANCEL, and no answer
        let (mut c, _) = call_out(t0, &["only"]);
        assert_eq!(c.next_deadline(t0), at(t0, 30_000));
        let a = c.handle(Input::Tick, at(t0, 30_000));
        assert!(matches!(a[0], Action::RejectCaller { code: 487, .. }));
        assert_eq!(
            reports(&a),
            [(
                3,
                Report::DialFailed(api::DialFailed {
                    sip_code: 480,
                    trunk: "only".into()
                })
            )]
        );
        // the agent hangs up while the customer rings: reported, the router ends the call
        let (mut c, _) = call_out(t0, &["only"]);
        c.handle(
            router(I::Bridge(api::Bridge {
                agent: "ann".into(),
            })),
            t0,
        );
        let a = c.handle(
            Input::AgentLegEnded {
                agent: "ann".into(),
                leg: "d1".into(),
                code: 0,
            },
            at(t0, 1_000),
        );
        assert!(matches!(reports(&a)[..], [(3, Report::Hangup(_))]));
        let a = c.handle(
            router(I::Hangup(api::HangupCall {
                cause: "agent".into(),
            })),
            at(t0, 1_001),
        );
        assert!(
            a.iter().any(|x| matches!(x, Action::RejectCaller { .. })),
            "{a:?}"
        );
    }

    /// Agent ann's phone dialled +84912345678; the router made it a call out on `trunks`.
    fn phone_call_out(t0: Instant, trunks: &[&str]) -> (CallCore, Vec<Action>) {
        let mut c = CallCore::dialled("p1".into(), "ann".into(), "phone-leg".into());
        let dial = I::Dial(api::Dial {
            agent: "ann".into(),
            destination: "+84912345678".into(),
            number: "+842873000200".into(),
            trunks: trunks.iter().map(|t| t.to_string()).collect(),
            timeout_ms: 30_000,
        });
        let a = c.handle(router(dial), t0);
        // the phone becomes ann's leg: nothing is dialled before the router offers it
        assert_eq!(
            a,
            [Action::PhoneToAgent {
                agent: "ann".into(),
                leg: "phone-leg".into()
            }]
        );
        let a = c.handle(ring("ann"), t0);
        (c, a)
    }

    #[test]
    fn a_phone_dialling_out_is_the_agents_leg_and_dials_the_customer_at_once() {
        let t0 = Instant::now();
        let (mut c, a) = phone_call_out(t0, &["vnpt"]);
        // the offer to ann is answered by the phone that dialled: reported, then the
        // customer's INVITE, with no ring of ann's devices
        assert!(matches!(
            &a[..],
            [Action::Report { report: Report::Answered(r), .. }, d] if r.agent == "ann" && *d == dial("vnpt")
        ));
        let bridge = I::Bridge(api::Bridge {
            agent: "ann".into(),
        });
        assert_eq!(
            c.handle(router(bridge), t0),
            [Action::Bridge {
                agent: "ann".into()
            }]
        );
        let a = c.handle(
            Input::CustomerAnswered {
                trunk: "vnpt".into(),
            },
            at(t0, 3_000),
        );
        // the phone gets its 200 OK when the customer answers
        assert!(a.contains(&Action::AcceptPhone {
            agent: "ann".into(),
            leg: "phone-leg".into()
        }));
        // ann hangs up: the router hears the agent's hang-up
        let a = c.handle(
            Input::AgentLegEnded {
                agent: "ann".into(),
                leg: "phone-leg".into(),
                code: 0,
            },
            at(t0, 9_000),
        );
        assert!(
            matches!(reports(&a)[..], [(_, Report::Hangup(ref h))] if h.party == api::Party::Agent as i32)
        );
        // the router ends the call: the customer gets a plain BYE, no "router lost"
        let a = c.handle(Input::RouterGone, at(t0, 9_001));
        assert_eq!(
            a[0],
            Action::ByeCaller {
                code: 200,
                reason: "agent hung up".into()
            }
        );
        assert!(c.finished(at(t0, 9_002)));
    }

    #[test]
    fn a_phone_whose_call_out_fails_hears_the_customers_result() {
        let t0 = Instant::now();
        let (mut c, _) = phone_call_out(t0, &["vnpt"]);
        let a = c.handle(
            Input::CustomerFailed {
                trunk: "vnpt".into(),
                code: 486,
            },
            t0,
        );
        assert!(matches!(reports(&a)[..], [(_, Report::DialFailed(ref d))] if d.sip_code == 486));
        // the router ends the call busy: the phone's INVITE is answered 486
        let a = c.handle(
            router(I::Hangup(api::HangupCall {
                cause: "busy".into(),
            })),
            at(t0, 10),
        );
        assert!(a.contains(&Action::RejectPhone {
            agent: "ann".into(),
            leg: "phone-leg".into(),
            code: 486,
            reason: "busy".into(),
        }));
        assert!(a
            .iter()
            .any(|x| matches!(x, Action::EndAgent { answered: None, .. })));
        assert!(!a.iter().any(|x| matches!(x, Action::AcceptPhone { .. })));
    }

    #[test]
    fn a_phone_dialling_inside_the_tenant_stays_the_caller() {
        let t0 = Instant::now();
        let mut c = CallCore::dialled("p2".into(), "ann".into(), "phone-leg".into());
        // an internal call: the router rings bob; the phone is the caller as a carrier's is
        let a = c.handle(ring("bob"), t0);
        assert!(matches!(&a[..], [Action::Ring { agent, .. }] if agent == "bob"));
        assert!(c.handle(started("bob", &["b1"]), t0).is_empty());
        let a = c.handle(
            Input::AgentAnswered {
                agent: "bob".into(),
                leg: "b1".into(),
                body: b"v=0".to_vec(),
            },
            t0,
        );
        assert!(!a
            .iter()
            .any(|x| matches!(x, Action::PhoneToAgent { .. } | Action::DialCustomer { .. })));
        let a = c.handle(
            router(I::Bridge(api::Bridge {
                agent: "bob".into(),
            })),
            t0,
        );
        assert_eq!(a[0], Action::AnswerCaller);
    }
}
