//! The call state machine and the minimal routing plan (R1 subset, R9).

use std::sync::Arc;

use crate::event::{CampaignCall, EndCause, Event, EventBody, OfferFailure, Party, RouteReason};
use crate::ids::{AgentId, CallId, DeviceId, DurationMs, MenuId, QueueId, TimeMs};
use crate::rejection::Rejection;
use crate::setup::{Internal, Target, TenantSetup};

/// A plan walking more steps than this is cut off (hang up `routing_loop`).
pub const MAX_ROUTE_STEPS: u32 = 16;

/// Where a call is in its journey.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CallPhase {
    /// Arrived, no step yet.
    Arrived,
    /// In an IVR menu, waiting for a digit.
    Menu {
        /// Menu.
        menu: MenuId,
        /// Attempt (0 = first play).
        attempt: u32,
        /// Digit timeout.
        deadline: TimeMs,
        /// Length of the digit timeout.
        timeout_ms: DurationMs,
    },
    /// Waiting in a queue.
    Queued {
        /// Queue.
        queue: QueueId,
    },
    /// Ringing agents directly (agent, extension or group step).
    Direct {
        /// The step.
        target: Target,
        /// Agents asked for a reservation, no answer yet.
        pending: Vec<AgentId>,
    },
    /// Talking to an agent.
    Talking {
        /// Agent.
        agent: AgentId,
    },
    /// Over.
    Ended,
}

impl CallPhase {
    /// A stable name.
    pub fn name(&self) -> &'static str {
        match self {
            CallPhase::Arrived => "arrived",
            CallPhase::Menu { .. } => "menu",
            CallPhase::Queued { .. } => "queued",
            CallPhase::Direct { .. } => "ringing",
            CallPhase::Talking { .. } => "talking",
            CallPhase::Ended => "ended",
        }
    }
}

/// An offer of the call to an agent.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallOffer {
    /// Agent.
    pub agent: AgentId,
    /// Queue it came from.
    pub queue: Option<QueueId>,
    /// Devices.
    pub devices: Vec<DeviceId>,
    /// Ringing reported.
    pub ringing: bool,
    /// Repaired after this time (A5).
    pub lease_until: TimeMs,
}

/// What an outbound call (C1 click-to-call, a campaign's call) has beyond an inbound one.
/// The call's `number` is then the tenant's number presented and its `caller` the customer
/// dialled.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutboundCall {
    /// The agent who places it; none for a campaign's call.
    pub agent: Option<AgentId>,
    /// The campaign's call it is, customer first (issue 19).
    pub campaign: Option<CampaignCall>,
    /// The trunks to try, in order.
    pub trunks: Vec<Arc<str>>,
    /// The caller-supplied correlation id.
    pub correlation: Option<Arc<str>>,
    /// The trunk the customer rings or answered on.
    pub trunk: Option<Arc<str>>,
    /// The customer's phone rings.
    pub ringing: bool,
    /// The customer answered at.
    pub answered_at: Option<TimeMs>,
}

/// Commands to a call.
#[derive(Clone, Debug, PartialEq)]
pub enum CallCommand {
    /// The call arrived at a number (creates the call).
    Arrive {
        /// Number dialled.
        number: Arc<str>,
        /// Calling number.
        caller: Arc<str>,
    },
    /// An agent places a call (creates the call): C1 click-to-call, or the agent's phone
    /// dialled (issue 18).
    Originate {
        /// The agent, rung first (a phone's: its leg is the phone's own).
        agent: AgentId,
        /// The destination as given.
        dialled: Arc<str>,
        /// The caller-supplied correlation id.
        correlation: Option<Arc<str>>,
        /// Dialled from the agent's phone: an extension or a number of the tenant is an
        /// internal call ([`Call::originate`]).
        phone: bool,
    },
    /// A campaign places a call to a contact (creates the call, issue 19): the customer is
    /// dialled first ([`Call::place`]).
    Place {
        /// The campaign, the contact, its attempt, the campaign's queue and ring time.
        campaign: CampaignCall,
        /// The contact's number as given.
        dialled: Arc<str>,
        /// The campaign's own caller number; none: the adaptive choice (N4).
        number: Option<Arc<str>>,
        /// A correlation id (the contact's record), echoed in the call's record.
        correlation: Option<Arc<str>>,
    },
    /// The edge reports an outbound attempt failed on `trunk` and the next is tried.
    TrunkFailed {
        /// Trunk.
        trunk: Arc<str>,
        /// Its SIP status (408: no answer at all).
        sip_code: u16,
    },
    /// The edge reports the customer's phone rings.
    CustomerRinging {
        /// Trunk.
        trunk: Arc<str>,
    },
    /// The edge reports the customer answered.
    CustomerAnswered {
        /// Trunk.
        trunk: Arc<str>,
    },
    /// The edge reports the customer was not reached: the final SIP status of the last
    /// attempt (mapped by [`crate::dial::dial_result`]).
    DialFailed {
        /// The trunk of the last attempt ("" when none could be tried).
        trunk: Arc<str>,
        /// SIP status.
        sip_code: u16,
    },
    /// The caller pressed a digit.
    Digit {
        /// 0-9, *, #.
        digit: char,
    },
    /// No digit came in time (reported by the edge or found by `Tick`).
    MenuTimeout,
    /// The queue sends the call elsewhere (full, timeout, no agents).
    Overflow {
        /// Queue.
        queue: QueueId,
        /// Where.
        target: Target,
    },
    /// An agent is reserved: ring it.
    Offer {
        /// Agent.
        agent: AgentId,
        /// Devices.
        devices: Vec<DeviceId>,
        /// Queue, if it came from one.
        queue: Option<QueueId>,
        /// Ring timeout.
        ring_timeout_ms: DurationMs,
        /// Other agents may be offered the same call (ring-all).
        ring_all: bool,
    },
    /// A direct step's agent could not be reserved.
    ReservationRefused {
        /// Agent.
        agent: AgentId,
    },
    /// The edge reports the agent's phone rings.
    Ringing {
        /// Agent.
        agent: AgentId,
    },
    /// The edge reports the agent answered.
    Answered {
        /// Agent.
        agent: AgentId,
    },
    /// The edge reports the offer failed.
    OfferFailed {
        /// Agent.
        agent: AgentId,
        /// Why.
        cause: OfferFailure,
    },
    /// The agent talking to the caller hands the call on (blind transfer, C5): by a SIP REFER
    /// from its phone or through the agent API. `to` is resolved by
    /// [`TenantSetup::transfer_target`].
    Transfer {
        /// The agent on the call.
        agent: AgentId,
        /// Where to.
        to: Arc<str>,
    },
    /// The edge reports that `by` put the call on hold (C5).
    Hold {
        /// Who.
        by: Party,
    },
    /// The edge reports that `by` took the call off hold.
    Resume {
        /// Who.
        by: Party,
    },
    /// The caller asks for a callback while queued.
    RequestCallback,
    /// The edge records the call into this file (C4).
    RecordingStarted {
        /// Path of the recording on the edge.
        path: Arc<str>,
    },
    /// Hang up.
    Hangup {
        /// Who.
        cause: EndCause,
    },
    /// Time passed: offer leases, menu timeouts.
    Tick,
}

impl CallCommand {
    /// A stable name.
    pub fn name(&self) -> &'static str {
        match self {
            CallCommand::Arrive { .. } => "arrive",
            CallCommand::Originate { .. } => "originate",
            CallCommand::Place { .. } => "place",
            CallCommand::TrunkFailed { .. } => "trunk failed",
            CallCommand::CustomerRinging { .. } => "customer ringing",
            CallCommand::CustomerAnswered { .. } => "customer answered",
            CallCommand::DialFailed { .. } => "dial failed",
            CallCommand::Digit { .. } => "digit",
            CallCommand::MenuTimeout => "menu timeout",
            CallCommand::Overflow { .. } => "overflow",
            CallCommand::Offer { .. } => "offer",
            CallCommand::ReservationRefused { .. } => "reservation refused",
            CallCommand::Ringing { .. } => "ringing",
            CallCommand::Answered { .. } => "answer",
            CallCommand::OfferFailed { .. } => "offer failed",
            CallCommand::Transfer { .. } => "transfer",
            CallCommand::Hold { .. } => "hold",
            CallCommand::Resume { .. } => "resume",
            CallCommand::RequestCallback => "callback request",
            CallCommand::RecordingStarted { .. } => "recording started",
            CallCommand::Hangup { .. } => "hangup",
            CallCommand::Tick => "tick",
        }
    }
}

/// Who places a call out and what was asked, for its `CallOriginated`.
struct Originated<'a> {
    agent: Option<AgentId>,
    campaign: Option<CampaignCall>,
    dialled: &'a str,
    correlation: Option<Arc<str>>,
}

impl Originated<'_> {
    /// The `CallOriginated` of call `id` with the router's decisions `d`.
    fn event(
        self,
        id: CallId,
        d: crate::dial::DialDecision,
        setup: &TenantSetup,
        now: TimeMs,
    ) -> Event {
        Event {
            at: now,
            body: EventBody::CallOriginated {
                call: id,
                agent: self.agent,
                dialled: Arc::from(self.dialled),
                destination: d.destination,
                class: Arc::from(d.class),
                number: d.number,
                choice: Arc::from(d.choice),
                trunks: d.trunks,
                correlation: self.correlation,
                plan_version: setup.version,
                record: d.record,
                carrier: d.carrier,
                campaign: self.campaign,
            },
        }
    }
}

/// A call aggregate.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Call {
    /// Call.
    pub id: CallId,
    /// Number dialled.
    pub number: Arc<str>,
    /// Calling number.
    pub caller: Arc<str>,
    /// Plan version (R9).
    pub plan_version: u64,
    /// Recorded (C4).
    pub record: bool,
    /// Arrived at.
    pub arrived_at: TimeMs,
    /// Where it is.
    pub phase: CallPhase,
    /// Offers ringing.
    pub offers: Vec<CallOffer>,
    /// Steps walked.
    pub steps: u32,
    /// Answered at.
    pub answered_at: Option<TimeMs>,
    /// The last queue it waited in.
    pub last_queue: Option<QueueId>,
    /// A callback was requested.
    pub callback: bool,
    /// Who holds the call now (C5): empty, or the agent, the caller or both.
    pub held_by: Vec<Party>,
    /// A call out: its agent, trunks and customer leg.
    #[serde(default)]
    pub outbound: Option<OutboundCall>,
    /// An internal call: the agent whose phone placed it (held on it until the call ends).
    #[serde(default)]
    pub from_agent: Option<AgentId>,
    /// Number of events applied.
    pub seq: u64,
}

fn valid_digit(d: char) -> bool {
    d.is_ascii_digit() || d == '*' || d == '#'
}

impl Call {
    /// A call that has not arrived yet (before its first event).
    pub fn new(id: CallId) -> Call {
        Call {
            id,
            number: Arc::from(""),
            caller: Arc::from(""),
            plan_version: 0,
            record: false,
            arrived_at: 0,
            phase: CallPhase::Arrived,
            offers: Vec::new(),
            steps: 0,
            answered_at: None,
            last_queue: None,
            callback: false,
            held_by: Vec::new(),
            outbound: None,
            from_agent: None,
            seq: 0,
        }
    }

    /// The agent the call is talking to.
    pub fn agent(&self) -> Option<&AgentId> {
        match &self.phase {
            CallPhase::Talking { agent } => Some(agent),
            _ => None,
        }
    }

    /// When this call next needs a `Tick`.
    pub fn next_deadline(&self) -> Option<TimeMs> {
        let offers = self.offers.iter().map(|o| o.lease_until).min();
        let menu = match &self.phase {
            CallPhase::Menu { deadline, .. } => Some(*deadline),
            _ => None,
        };
        match (offers, menu) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The wrap-up an agent gets after this call: the queue's, else the number's, else the
    /// tenant default (A3, N2).
    fn wrapup_ms(&self, setup: &TenantSetup) -> DurationMs {
        self.last_queue
            .as_ref()
            .and_then(|q| setup.queues.get(q))
            .and_then(|q| q.wrapup_ms)
            .or_else(|| setup.numbers.get(&self.number).and_then(|n| n.wrapup_ms))
            .unwrap_or(setup.defaults.wrapup_ms)
    }

    /// The events of sending the call to `target` (expanding steps that end at once).
    fn route(
        &self,
        target: &Target,
        reason: RouteReason,
        setup: &TenantSetup,
        now: TimeMs,
        steps: u32,
        out: &mut Vec<Event>,
    ) {
        let call = self.id.clone();
        let ev = |body| Event { at: now, body };
        if steps >= MAX_ROUTE_STEPS {
            let cause: Arc<str> = Arc::from("routing_loop");
            out.push(ev(EventBody::CallRouted {
                call: call.clone(),
                target: Target::Hangup(cause.clone()),
                reason: RouteReason::Loop,
                ring: vec![],
                timeout_ms: 0,
            }));
            out.push(self.ended(EndCause::Router(cause), setup, now, None));
            return;
        }
        let (ring, timeout_ms, no_answer) = match target {
            Target::Agent(a) => (
                vec![a.clone()],
                setup.defaults.ring_timeout_ms,
                Some(Target::Hangup(Arc::from("no_answer"))),
            ),
            Target::Extension(e) => (
                setup.extensions.get(e).cloned().unwrap_or_default(),
                setup.defaults.ring_timeout_ms,
                Some(Target::Hangup(Arc::from("no_answer"))),
            ),
            Target::Group(g) => match setup.groups.get(g) {
                Some(g) => (
                    g.members.clone(),
                    g.ring_timeout_ms,
                    Some(g.no_answer.clone()),
                ),
                None => (vec![], 0, Some(Target::Hangup(Arc::from("unknown_group")))),
            },
            Target::Menu(m) => (vec![], setup.menus.get(m).map_or(0, |m| m.timeout_ms), None),
            Target::Queue(_) | Target::Hangup(_) => (vec![], 0, None),
        };
        let empty_ring = ring.is_empty();
        out.push(ev(EventBody::CallRouted {
            call: call.clone(),
            target: target.clone(),
            reason,
            ring,
            timeout_ms,
        }));
        match target {
            Target::Hangup(cause) => {
                out.push(self.ended(EndCause::Router(cause.clone()), setup, now, None));
            }
            Target::Menu(m) if !setup.menus.contains_key(m) => {
                let cause: Arc<str> = Arc::from("unknown_menu");
                self.route(
                    &Target::Hangup(cause),
                    RouteReason::NoAnswer,
                    setup,
                    now,
                    steps + 1,
                    out,
                );
            }
            Target::Queue(q) if !setup.queues.contains_key(q) => {
                let cause: Arc<str> = Arc::from("unknown_queue");
                self.route(
                    &Target::Hangup(cause),
                    RouteReason::NoAnswer,
                    setup,
                    now,
                    steps + 1,
                    out,
                );
            }
            _ => {
                if let (true, Some(next)) = (empty_ring, no_answer) {
                    self.route(&next, RouteReason::NoAnswer, setup, now, steps + 1, out);
                }
            }
        }
    }

    fn ended(
        &self,
        cause: EndCause,
        setup: &TenantSetup,
        now: TimeMs,
        extra_cancel: Option<&AgentId>,
    ) -> Event {
        let queue = match &self.phase {
            CallPhase::Queued { queue } if !(self.callback && cause == EndCause::Caller) => {
                Some(queue.clone())
            }
            _ => None,
        };
        let mut cancelled: Vec<AgentId> = self.offers.iter().map(|o| o.agent.clone()).collect();
        if let Some(a) = extra_cancel {
            cancelled.retain(|x| x != a);
        }
        Event {
            at: now,
            body: EventBody::CallEnded {
                call: self.id.clone(),
                cause,
                agent: self.agent().cloned(),
                wrapup_ms: self.wrapup_ms(setup),
                queue,
                cancelled,
                from_agent: self.from_agent.clone(),
            },
        }
    }

    /// Creates a call: the arrival and its first step (a caller on the tenant's blocklist:
    /// a hang-up with the cause [`CAUSE_BLOCKED`], R7, so the refusal is in the call's history).
    pub fn arrive(
        id: CallId,
        number: &str,
        caller: &str,
        setup: &TenantSetup,
        now: TimeMs,
    ) -> Result<Vec<Event>, Rejection> {
        Call::arrive_from(id, number, caller, None, setup, now)
    }

    /// [`Call::arrive`], for an internal call from the phone of `from_agent`.
    fn arrive_from(
        id: CallId,
        number: &str,
        caller: &str,
        from_agent: Option<&AgentId>,
        setup: &TenantSetup,
        now: TimeMs,
    ) -> Result<Vec<Event>, Rejection> {
        let n = setup
            .numbers
            .get(number)
            .ok_or_else(|| Rejection::UnknownNumber(number.to_string()))?;
        let mut out = vec![Event {
            at: now,
            body: EventBody::CallArrived {
                call: id.clone(),
                number: n.number.clone(),
                caller: Arc::from(caller),
                plan_version: setup.version,
                record: n.record,
                from_agent: from_agent.cloned(),
            },
        }];
        let mut fresh = Call::new(id);
        fresh.apply(&out[0]);
        if blocked(setup, caller) {
            let end = Target::Hangup(Arc::from(CAUSE_BLOCKED));
            fresh.route(&end, RouteReason::Blocked, setup, now, 0, &mut out);
        } else {
            fresh.route(&n.route, RouteReason::Number, setup, now, 0, &mut out);
        }
        Ok(out)
    }

    /// Creates a call an agent places: a call out (C1 click-to-call, or dialled on the agent's
    /// `phone`) with the router's decisions ([`crate::dial::decide`]) and the first step,
    /// the agent's leg (reserved whether available or not ready); or, dialled on the phone,
    /// an internal call ([`Call::internal`]). Refused with the reason when the agent or the
    /// destination cannot be called.
    pub fn originate(
        id: CallId,
        agent: &AgentId,
        dialled: &str,
        correlation: Option<Arc<str>>,
        phone: bool,
        setup: &TenantSetup,
        now: TimeMs,
    ) -> Result<Vec<Event>, Rejection> {
        if !setup.agents.contains_key(agent) {
            return Err(Rejection::UnknownAgent(agent.clone()));
        }
        if let Some(to) = setup.internal(dialled).filter(|_| phone) {
            return Call::internal(id, agent, dialled.trim(), to, setup, now);
        }
        let d = if phone {
            crate::dial::decide_dialled(setup, agent, dialled)?
        } else {
            crate::dial::decide(setup, agent, dialled)?
        };
        let originated = Originated {
            agent: Some(agent.clone()),
            campaign: None,
            dialled,
            correlation,
        };
        let mut out = vec![originated.event(id.clone(), d, setup, now)];
        out.push(Event {
            at: now,
            body: EventBody::CallRouted {
                call: id,
                target: Target::Agent(agent.clone()),
                reason: if phone {
                    RouteReason::Dialled
                } else {
                    RouteReason::ClickToCall
                },
                ring: vec![agent.clone()],
                timeout_ms: setup.defaults.ring_timeout_ms,
            },
        });
        Ok(out)
    }

    /// Creates a campaign's call to a contact (issue 19): the router's decisions for the
    /// number ([`crate::dial::decide_for_campaign`]) and nothing else yet: the edge dials the
    /// customer at once, and the answer routes the call to the campaign's queue. Refused with
    /// the reason when the queue does not exist or the number cannot be called.
    pub fn place(
        id: CallId,
        campaign: &CampaignCall,
        dialled: &str,
        number: Option<&str>,
        correlation: Option<Arc<str>>,
        setup: &TenantSetup,
        now: TimeMs,
    ) -> Result<Vec<Event>, Rejection> {
        if !setup.queues.contains_key(&campaign.queue) {
            return Err(Rejection::UnknownQueue(campaign.queue.clone()));
        }
        let d = crate::dial::decide_for_campaign(setup, &campaign.queue, dialled, number)?;
        let originated = Originated {
            agent: None,
            campaign: Some(campaign.clone()),
            dialled,
            correlation,
        };
        Ok(vec![originated.event(id, d, setup, now)])
    }

    /// An agent's phone dialled an extension or a number of the tenant (issue 18): the call
    /// arrives from the agent's extension (its id without one) and takes the step an
    /// arrival there would: the extension's agents ring (one of them takes it, A1), a
    /// number's first step is walked. Calling one's own extension is refused. The calling
    /// agent is held on the call until it ends (`from_agent`: no queue offers it a call
    /// its phone, busy with this one, would refuse).
    fn internal(
        id: CallId,
        agent: &AgentId,
        dialled: &str,
        to: Internal<'_>,
        setup: &TenantSetup,
        now: TimeMs,
    ) -> Result<Vec<Event>, Rejection> {
        let caller = setup
            .agents
            .get(agent)
            .and_then(|a| a.extension.clone())
            .unwrap_or_else(|| Arc::from(agent.as_str()));
        match to {
            Internal::Extension(agents) => {
                if agents.contains(agent) {
                    return Err(Rejection::IllegalTransition {
                        what: "call",
                        state: format!("extension {dialled} is agent {agent}'s own"),
                    });
                }
                let mut out = vec![Event {
                    at: now,
                    body: EventBody::CallArrived {
                        call: id.clone(),
                        number: Arc::from(dialled),
                        caller,
                        plan_version: setup.version,
                        record: false,
                        from_agent: Some(agent.clone()),
                    },
                }];
                let mut fresh = Call::new(id);
                fresh.apply(&out[0]);
                let ext = Target::Extension(Arc::from(dialled));
                fresh.route(&ext, RouteReason::Internal, setup, now, 0, &mut out);
                Ok(out)
            }
            Internal::Number => Call::arrive_from(id, dialled, &caller, Some(agent), setup, now),
        }
    }

    /// The outbound part, or why a customer report does not apply to this call: an agent's
    /// call out hears from its customer once its agent talks, a campaign's call from the
    /// start (it dials the customer first) until the answer routes it.
    fn outbound_leg(&self, what: &'static str) -> Result<&OutboundCall, Rejection> {
        let state = match (&self.outbound, &self.phase) {
            (Some(o), CallPhase::Talking { .. }) => return Ok(o),
            (Some(o), CallPhase::Arrived) if o.campaign.is_some() => return Ok(o),
            (None, _) => format!("call {} is not an outbound call", self.id),
            (Some(_), phase) => format!(
                "call {} is {}: its agent has not answered",
                self.id,
                phase.name()
            ),
        };
        Err(Rejection::IllegalTransition { what, state })
    }

    fn offer_of(&self, agent: &AgentId) -> Option<&CallOffer> {
        self.offers.iter().find(|o| &o.agent == agent)
    }

    fn not_offered(&self, agent: &AgentId) -> Rejection {
        Rejection::NotOffered {
            call: self.id.clone(),
            agent: agent.clone(),
        }
    }

    /// Where a direct step goes when nobody answered.
    fn no_answer_target(&self, setup: &TenantSetup) -> Option<Target> {
        let CallPhase::Direct { target, .. } = &self.phase else {
            return None;
        };
        if self.outbound.is_some() {
            // the agent placing the call did not take it: nobody is dialled
            return Some(Target::Hangup(Arc::from(CAUSE_AGENT_NOT_REACHED)));
        }
        Some(match target {
            Target::Group(g) => setup
                .groups
                .get(g)
                .map(|g| g.no_answer.clone())
                .unwrap_or_else(|| Target::Hangup(Arc::from("no_answer"))),
            _ => Target::Hangup(Arc::from("no_answer")),
        })
    }

    /// After offers failed (events in `out`, not yet applied): a direct step with nobody
    /// left to ring moves on to its no-answer step.
    fn after_failed_offers(&self, setup: &TenantSetup, now: TimeMs, out: &mut Vec<Event>) {
        let mut after = self.clone();
        for e in out.iter() {
            after.apply(e);
        }
        if let CallPhase::Direct { pending, .. } = &after.phase {
            if pending.is_empty() && after.offers.is_empty() {
                if let Some(next) = self.no_answer_target(setup) {
                    self.route(&next, RouteReason::NoAnswer, setup, now, self.steps, out);
                }
            }
        }
    }

    /// Decides what a command does (`Arrive` is `Call::arrive`).
    pub fn handle(
        &self,
        cmd: &CallCommand,
        setup: &TenantSetup,
        now: TimeMs,
    ) -> Result<Vec<Event>, Rejection> {
        if self.phase == CallPhase::Ended {
            return Err(Rejection::CallEnded(self.id.clone()));
        }
        let call = self.id.clone();
        let one = |body| Ok(vec![Event { at: now, body }]);
        let mut out = Vec::new();
        match cmd {
            CallCommand::Arrive { .. }
            | CallCommand::Originate { .. }
            | CallCommand::Place { .. } => Err(Rejection::CallExists(call)),
            CallCommand::TrunkFailed { trunk, sip_code } => {
                let o = self.outbound_leg(cmd.name())?;
                if o.answered_at.is_some() {
                    return Err(Rejection::Duplicate("the customer already answered"));
                }
                one(EventBody::CallTrunkFailed {
                    call,
                    trunk: trunk.clone(),
                    sip_code: *sip_code,
                })
            }
            CallCommand::CustomerRinging { trunk } => {
                let o = self.outbound_leg(cmd.name())?;
                if o.ringing || o.answered_at.is_some() {
                    return Err(Rejection::Duplicate("customer ringing already reported"));
                }
                one(EventBody::CallCustomerRinging {
                    call,
                    trunk: trunk.clone(),
                })
            }
            CallCommand::CustomerAnswered { trunk } => {
                let o = self.outbound_leg(cmd.name())?;
                if o.answered_at.is_some() {
                    return Err(Rejection::Duplicate("customer answer already reported"));
                }
                let answered = Event {
                    at: now,
                    body: EventBody::CallCustomerAnswered {
                        call,
                        trunk: trunk.clone(),
                    },
                };
                let Some(c) = &o.campaign else {
                    return Ok(vec![answered]);
                };
                // a campaign's customer answered: to the campaign's queue, for its agents
                let queue = Target::Queue(c.queue.clone());
                let mut after = self.clone();
                after.apply(&answered);
                out.push(answered);
                after.route(
                    &queue,
                    RouteReason::Campaign,
                    setup,
                    now,
                    self.steps,
                    &mut out,
                );
                Ok(out)
            }
            CallCommand::DialFailed { trunk, sip_code } => {
                let o = self.outbound_leg(cmd.name())?;
                if o.answered_at.is_some() {
                    return Err(Rejection::IllegalTransition {
                        what: cmd.name(),
                        state: format!("the customer of call {} answered", self.id),
                    });
                }
                let result = crate::dial::dial_result(*sip_code);
                let failed = Event {
                    at: now,
                    body: EventBody::CallTrunkFailed {
                        call,
                        trunk: trunk.clone(),
                        sip_code: *sip_code,
                    },
                };
                let mut after = self.clone();
                after.apply(&failed);
                let end = after.ended(EndCause::Dial(Arc::from(result)), setup, now, None);
                Ok(vec![failed, end])
            }
            CallCommand::Digit { digit } => {
                if !valid_digit(*digit) {
                    return Err(Rejection::InvalidDigit(*digit));
                }
                let CallPhase::Menu { menu, attempt, .. } = &self.phase else {
                    // digits outside a menu change nothing (the edge relays them in talk)
                    return Ok(vec![]);
                };
                let m = setup
                    .menus
                    .get(menu)
                    .ok_or_else(|| Rejection::IllegalTransition {
                        what: "digit",
                        state: format!("menu {menu} no longer exists"),
                    })?;
                match m.options.get(digit) {
                    Some(t) => self.route(
                        t,
                        RouteReason::MenuChoice(*digit),
                        setup,
                        now,
                        self.steps,
                        &mut out,
                    ),
                    None if *attempt < m.retries => out.push(Event {
                        at: now,
                        body: EventBody::CallMenuRetry {
                            call,
                            menu: menu.clone(),
                            attempt: attempt + 1,
                            invalid: Some(*digit),
                        },
                    }),
                    None => self.route(
                        &m.on_invalid,
                        RouteReason::MenuInvalid,
                        setup,
                        now,
                        self.steps,
                        &mut out,
                    ),
                }
                Ok(out)
            }
            CallCommand::MenuTimeout => {
                let CallPhase::Menu { menu, attempt, .. } = &self.phase else {
                    return Err(Rejection::IllegalTransition {
                        what: "menu timeout",
                        state: format!("call {} is {}", self.id, self.phase.name()),
                    });
                };
                self.menu_timeout(menu, *attempt, setup, now, &mut out);
                Ok(out)
            }
            CallCommand::Overflow { queue, target } => match &self.phase {
                CallPhase::Queued { queue: q } if q == queue => {
                    self.route(
                        target,
                        RouteReason::Overflow,
                        setup,
                        now,
                        self.steps,
                        &mut out,
                    );
                    Ok(out)
                }
                _ => Err(Rejection::NotWaiting {
                    call,
                    queue: queue.clone(),
                }),
            },
            CallCommand::Offer {
                agent,
                devices,
                queue,
                ring_timeout_ms,
                ring_all,
            } => {
                let expected = match (&self.phase, queue) {
                    (CallPhase::Queued { queue: q }, Some(oq)) => q == oq,
                    (CallPhase::Direct { pending, .. }, None) => pending.contains(agent),
                    _ => false,
                };
                if !expected {
                    return Err(Rejection::IllegalTransition {
                        what: "offer",
                        state: format!("call {} is {}", self.id, self.phase.name()),
                    });
                }
                if self.offer_of(agent).is_some() {
                    return Err(Rejection::Duplicate("call already offered to this agent"));
                }
                let ring_all = *ring_all || matches!(self.phase, CallPhase::Direct { .. });
                if !self.offers.is_empty() && !ring_all {
                    return Err(Rejection::IllegalTransition {
                        what: "second offer",
                        state: format!("call {} is already offered to an agent", self.id),
                    });
                }
                one(EventBody::CallOffered {
                    call,
                    agent: agent.clone(),
                    devices: devices.clone(),
                    ring_timeout_ms: *ring_timeout_ms,
                    queue: queue.clone(),
                    lease_until: now + ring_timeout_ms + setup.defaults.lease_margin_ms,
                })
            }
            CallCommand::ReservationRefused { agent } => match &self.phase {
                CallPhase::Direct { pending, .. } if pending.contains(agent) => {
                    out.push(Event {
                        at: now,
                        body: EventBody::CallOfferFailed {
                            call,
                            agent: agent.clone(),
                            cause: OfferFailure::NotAvailable,
                            queue: None,
                        },
                    });
                    self.after_failed_offers(setup, now, &mut out);
                    Ok(out)
                }
                _ => Err(self.not_offered(agent)),
            },
            CallCommand::Ringing { agent } => match self.offer_of(agent) {
                Some(o) if o.ringing => Err(Rejection::Duplicate("ringing already reported")),
                Some(_) => one(EventBody::CallRinging {
                    call,
                    agent: agent.clone(),
                }),
                None => Err(self.not_offered(agent)),
            },
            CallCommand::Answered { agent } => {
                if self.agent() == Some(agent) {
                    return Err(Rejection::Duplicate("answer already reported"));
                }
                let Some(o) = self.offer_of(agent) else {
                    return Err(self.not_offered(agent));
                };
                let mut cancelled: Vec<AgentId> = self
                    .offers
                    .iter()
                    .filter(|x| &x.agent != agent)
                    .map(|x| x.agent.clone())
                    .collect();
                if let CallPhase::Direct { pending, .. } = &self.phase {
                    cancelled.extend(pending.iter().filter(|a| *a != agent).cloned());
                }
                one(EventBody::CallAnswered {
                    call,
                    agent: agent.clone(),
                    queue: o.queue.clone(),
                    cancelled,
                })
            }
            CallCommand::OfferFailed { agent, cause } => {
                let Some(o) = self.offer_of(agent) else {
                    return Err(self.not_offered(agent));
                };
                out.push(Event {
                    at: now,
                    body: EventBody::CallOfferFailed {
                        call,
                        agent: agent.clone(),
                        cause: *cause,
                        queue: o.queue.clone(),
                    },
                });
                self.after_failed_offers(setup, now, &mut out);
                Ok(out)
            }
            CallCommand::Transfer { agent, to } => {
                match &self.phase {
                    CallPhase::Talking { agent: a } if a == agent => {}
                    CallPhase::Talking { agent: a } => {
                        return Err(Rejection::IllegalTransition {
                            what: "transfer",
                            state: format!("call {} is talking to agent {a}, not {agent}", self.id),
                        })
                    }
                    other => {
                        return Err(Rejection::IllegalTransition {
                            what: "transfer",
                            state: format!("call {} is {}", self.id, other.name()),
                        })
                    }
                }
                let target = setup
                    .transfer_target(to)
                    .ok_or_else(|| Rejection::UnknownTarget(to.to_string()))?;
                let to_self = match &target {
                    Target::Agent(a) => a == agent,
                    Target::Extension(e) => setup
                        .extensions
                        .get(e)
                        .is_some_and(|v| v == std::slice::from_ref(agent)),
                    _ => false,
                };
                if to_self {
                    return Err(Rejection::IllegalTransition {
                        what: "transfer",
                        state: format!("the target {to} is agent {agent} itself"),
                    });
                }
                let transferred = Event {
                    at: now,
                    body: EventBody::CallTransferred {
                        call,
                        agent: agent.clone(),
                        target: target.clone(),
                        wrapup_ms: self.wrapup_ms(setup),
                    },
                };
                // the new step starts from the call as the transfer leaves it: nobody on it
                // and a fresh step count (a transfer is a person's choice, not a plan loop)
                let mut after = self.clone();
                after.apply(&transferred);
                out.push(transferred);
                after.route(&target, RouteReason::Transfer, setup, now, 0, &mut out);
                Ok(out)
            }
            CallCommand::RequestCallback => match &self.phase {
                CallPhase::Queued { queue } => {
                    if self.callback {
                        return Err(Rejection::Duplicate("callback already requested"));
                    }
                    if !setup.queues.get(queue).is_some_and(|q| q.callback) {
                        return Err(Rejection::IllegalTransition {
                            what: "callback request",
                            state: format!("queue {queue} does not offer callbacks"),
                        });
                    }
                    one(EventBody::CallCallbackRequested {
                        call,
                        queue: queue.clone(),
                    })
                }
                _ => Err(Rejection::IllegalTransition {
                    what: "callback request",
                    state: format!("call {} is {}", self.id, self.phase.name()),
                }),
            },
            CallCommand::Hold { by } | CallCommand::Resume { by } => {
                let hold = matches!(cmd, CallCommand::Hold { .. });
                let what = if hold { "hold" } else { "resume" };
                let Some(agent) = self.agent() else {
                    return Err(Rejection::IllegalTransition {
                        what,
                        state: format!("call {} is {}", self.id, self.phase.name()),
                    });
                };
                if self.held_by.contains(by) == hold {
                    return Err(Rejection::Duplicate(if hold {
                        "the call is already on hold by that party"
                    } else {
                        "the call is not on hold by that party"
                    }));
                }
                let (agent, by) = (agent.clone(), *by);
                one(if hold {
                    EventBody::CallHeld { call, agent, by }
                } else {
                    EventBody::CallResumed { call, agent, by }
                })
            }
            CallCommand::RecordingStarted { path } => {
                if path.is_empty() {
                    return Err(Rejection::IllegalTransition {
                        what: "recording started",
                        state: "the recording has no path".to_owned(),
                    });
                }
                one(EventBody::CallRecordingStarted {
                    call,
                    path: path.clone(),
                })
            }
            CallCommand::Hangup { cause } => Ok(vec![self.ended(cause.clone(), setup, now, None)]),
            CallCommand::Tick => {
                for o in &self.offers {
                    if now >= o.lease_until {
                        out.push(Event {
                            at: now,
                            body: EventBody::CallOfferFailed {
                                call: call.clone(),
                                agent: o.agent.clone(),
                                cause: OfferFailure::Expired,
                                queue: o.queue.clone(),
                            },
                        });
                    }
                }
                if !out.is_empty() {
                    self.after_failed_offers(setup, now, &mut out);
                    return Ok(out);
                }
                if let CallPhase::Menu {
                    menu,
                    attempt,
                    deadline,
                    ..
                } = &self.phase
                {
                    if now >= *deadline {
                        self.menu_timeout(menu, *attempt, setup, now, &mut out);
                    }
                }
                Ok(out)
            }
        }
    }

    fn menu_timeout(
        &self,
        menu: &MenuId,
        attempt: u32,
        setup: &TenantSetup,
        now: TimeMs,
        out: &mut Vec<Event>,
    ) {
        match setup.menus.get(menu) {
            Some(m) if attempt < m.retries => out.push(Event {
                at: now,
                body: EventBody::CallMenuRetry {
                    call: self.id.clone(),
                    menu: menu.clone(),
                    attempt: attempt + 1,
                    invalid: None,
                },
            }),
            Some(m) => self.route(
                &m.on_timeout,
                RouteReason::MenuTimeout,
                setup,
                now,
                self.steps,
                out,
            ),
            None => self.route(
                &Target::Hangup(Arc::from("unknown_menu")),
                RouteReason::MenuTimeout,
                setup,
                now,
                self.steps,
                out,
            ),
        }
    }

    /// Applies one of this call's events.
    pub fn apply(&mut self, event: &Event) {
        self.seq += 1;
        let at = event.at;
        match &event.body {
            EventBody::CallArrived {
                number,
                caller,
                plan_version,
                record,
                from_agent,
                ..
            } => {
                self.number = number.clone();
                self.caller = caller.clone();
                self.from_agent = from_agent.clone();
                self.plan_version = *plan_version;
                self.record = *record;
                self.arrived_at = at;
            }
            EventBody::CallOriginated {
                agent,
                destination,
                number,
                trunks,
                correlation,
                plan_version,
                record,
                campaign,
                ..
            } => {
                self.number = number.clone();
                self.caller = destination.clone();
                self.plan_version = *plan_version;
                self.record = *record;
                self.arrived_at = at;
                self.outbound = Some(OutboundCall {
                    agent: agent.clone(),
                    campaign: campaign.clone(),
                    trunks: trunks.clone(),
                    correlation: correlation.clone(),
                    trunk: None,
                    ringing: false,
                    answered_at: None,
                });
            }
            EventBody::CallTrunkFailed { .. } => {
                if let Some(o) = &mut self.outbound {
                    o.ringing = false;
                    o.trunk = None;
                }
            }
            EventBody::CallCustomerRinging { trunk, .. } => {
                if let Some(o) = &mut self.outbound {
                    o.ringing = true;
                    o.trunk = Some(trunk.clone());
                }
            }
            EventBody::CallCustomerAnswered { trunk, .. } => {
                if let Some(o) = &mut self.outbound {
                    o.answered_at = Some(at);
                    o.trunk = Some(trunk.clone());
                }
            }
            EventBody::CallRouted {
                target,
                ring,
                timeout_ms,
                ..
            } => {
                self.steps += 1;
                self.offers.clear();
                self.phase = match target {
                    Target::Queue(q) => {
                        self.last_queue = Some(q.clone());
                        CallPhase::Queued { queue: q.clone() }
                    }
                    Target::Menu(m) => CallPhase::Menu {
                        menu: m.clone(),
                        attempt: 0,
                        deadline: at + timeout_ms,
                        timeout_ms: *timeout_ms,
                    },
                    Target::Agent(_) | Target::Extension(_) | Target::Group(_) => {
                        CallPhase::Direct {
                            target: target.clone(),
                            pending: ring.clone(),
                        }
                    }
                    Target::Hangup(_) => self.phase.clone(),
                };
            }
            EventBody::CallMenuRetry { menu, attempt, .. } => {
                if let CallPhase::Menu {
                    menu: m,
                    attempt: a,
                    deadline,
                    timeout_ms,
                } = &mut self.phase
                {
                    if m == menu {
                        *a = *attempt;
                        *deadline = at + *timeout_ms;
                    }
                }
            }
            EventBody::CallOffered {
                agent,
                devices,
                queue,
                lease_until,
                ..
            } => {
                if let CallPhase::Direct { pending, .. } = &mut self.phase {
                    pending.retain(|a| a != agent);
                }
                self.offers.push(CallOffer {
                    agent: agent.clone(),
                    queue: queue.clone(),
                    devices: devices.clone(),
                    ringing: false,
                    lease_until: *lease_until,
                });
            }
            EventBody::CallRinging { agent, .. } => {
                if let Some(o) = self.offers.iter_mut().find(|o| &o.agent == agent) {
                    o.ringing = true;
                }
            }
            EventBody::CallHeld { by, .. } if !self.held_by.contains(by) => self.held_by.push(*by),
            EventBody::CallResumed { by, .. } => self.held_by.retain(|p| p != by),
            EventBody::CallAnswered { agent, .. } => {
                self.offers.clear();
                self.held_by.clear();
                self.answered_at = Some(at);
                self.phase = CallPhase::Talking {
                    agent: agent.clone(),
                };
            }
            EventBody::CallOfferFailed { agent, .. } => {
                self.offers.retain(|o| &o.agent != agent);
                if let CallPhase::Direct { pending, .. } = &mut self.phase {
                    pending.retain(|a| a != agent);
                }
            }
            EventBody::CallTransferred { .. } => {
                self.offers.clear();
                self.held_by.clear();
                self.steps = 0;
                self.phase = CallPhase::Arrived;
            }
            EventBody::CallCallbackRequested { .. } => self.callback = true,
            EventBody::CallEnded { .. } => {
                self.offers.clear();
                self.held_by.clear();
                self.phase = CallPhase::Ended;
            }
            _ => {}
        }
    }
}
/// The hang-up cause of a call whose caller is on the tenant's blocklist (R7).
pub const CAUSE_BLOCKED: &str = "blocked";

/// The hang-up cause of a call out whose agent did not take it (not reserved, not
/// answering): nobody was dialled.
pub const CAUSE_AGENT_NOT_REACHED: &str = "agent_not_reached";

/// Whether `caller` (as the edge heard it: national or international digits, or a name) is
/// on the tenant's blocklist. Read with the tenant's region only when the list has entries:
/// reading a number costs more than the rest of an arrival.
fn blocked(setup: &TenantSetup, caller: &str) -> bool {
    let outbound = &setup.outbound;
    !outbound.blocklist.is_empty()
        && outbound
            .normalizer
            .normalize(caller)
            .is_ok_and(|n| outbound.blocklist.blocks(&n).is_some())
}
