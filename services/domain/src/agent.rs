//! The agent state machine (A2, A3, A5).

use std::fmt;

use crate::event::{Event, EventBody, LeaseKind, OfferFailure};
use crate::ids::{AgentId, CallId, DeviceId, DurationMs, QueueId, ReasonCode, TimeMs};
use crate::rejection::Rejection;
use crate::setup::TenantSetup;

/// The reason code an agent gets after missing too many offers in a row.
pub const MISSED_OFFERS_REASON: &str = "missed_offers";

/// Where an agent is (A2).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AgentState {
    /// Not logged in: gets no calls.
    LoggedOut,
    /// Ready for calls.
    Available,
    /// Logged in, not ready, with a reason.
    NotReady {
        /// Reason code.
        reason: ReasonCode,
    },
    /// Held for a call; its phone is about to ring.
    Reserved {
        /// Call.
        call: CallId,
        /// Repaired after this.
        lease_until: TimeMs,
    },
    /// Its phone rings.
    Ringing {
        /// Call.
        call: CallId,
        /// Repaired after this.
        lease_until: TimeMs,
    },
    /// Talking.
    OnCall {
        /// Call.
        call: CallId,
        /// Repaired after this.
        lease_until: TimeMs,
    },
    /// After-call work.
    WrapUp {
        /// Available again at.
        until: TimeMs,
    },
}

impl AgentState {
    /// A stable name.
    pub fn name(&self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged_out",
            AgentState::Available => "available",
            AgentState::NotReady { .. } => "not_ready",
            AgentState::Reserved { .. } => "reserved",
            AgentState::Ringing { .. } => "ringing",
            AgentState::OnCall { .. } => "on_call",
            AgentState::WrapUp { .. } => "wrap_up",
        }
    }

    /// The call the agent is held for, talking on, or ringing for.
    pub fn call(&self) -> Option<&CallId> {
        match self {
            AgentState::Reserved { call, .. }
            | AgentState::Ringing { call, .. }
            | AgentState::OnCall { call, .. } => Some(call),
            _ => None,
        }
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentState::NotReady { reason } => write!(f, "not_ready ({reason})"),
            AgentState::Reserved { call, .. }
            | AgentState::Ringing { call, .. }
            | AgentState::OnCall { call, .. } => write!(f, "{} for call {call}", self.name()),
            other => f.write_str(other.name()),
        }
    }
}

/// Commands to an agent.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentCommand {
    /// Log in with these devices; `not_ready` keeps the agent not ready with that reason.
    Login {
        /// Devices to ring.
        devices: Vec<DeviceId>,
        /// Start not ready with this reason; `None` = available.
        not_ready: Option<ReasonCode>,
    },
    /// Log out (not while held for or talking on a call).
    Logout,
    /// Become available.
    SetAvailable,
    /// Become not ready with a tenant reason code.
    SetNotReady {
        /// Reason code.
        reason: ReasonCode,
    },
    /// Hold the agent for a call (granted only if available and not blocked).
    Reserve {
        /// Call.
        call: CallId,
        /// The queue asking, if any.
        queue: Option<QueueId>,
        /// Ring timeout of the offer.
        ring_timeout_ms: DurationMs,
        /// For a call the agent places (click-to-call, C1): granted when the agent is
        /// available or not ready, and without the no-offer delay of a missed offer.
        outbound: bool,
    },
    /// The agent's own phone placed an internal call (issue 18): held on it as on a call
    /// it answered, from available or not ready (it returns there when the call ends).
    Engage {
        /// Call.
        call: CallId,
    },
    /// The phone rings.
    Ringing {
        /// Call.
        call: CallId,
    },
    /// The agent answered.
    Answered {
        /// Call.
        call: CallId,
    },
    /// The offer failed.
    OfferFailed {
        /// Call.
        call: CallId,
        /// Why.
        cause: OfferFailure,
    },
    /// The offer is withdrawn.
    CancelOffer {
        /// Call.
        call: CallId,
    },
    /// The call ended.
    CallEnded {
        /// Call.
        call: CallId,
        /// Wrap-up.
        wrapup_ms: DurationMs,
    },
    /// Time passed: expire leases and wrap-up.
    Tick,
}

impl AgentCommand {
    /// A stable name.
    pub fn name(&self) -> &'static str {
        match self {
            AgentCommand::Login { .. } => "login",
            AgentCommand::Logout => "logout",
            AgentCommand::SetAvailable => "set available",
            AgentCommand::SetNotReady { .. } => "set not ready",
            AgentCommand::Reserve { .. } => "reserve",
            AgentCommand::Engage { .. } => "engage",
            AgentCommand::Ringing { .. } => "ringing",
            AgentCommand::Answered { .. } => "answer",
            AgentCommand::OfferFailed { .. } => "offer failed",
            AgentCommand::CancelOffer { .. } => "cancel offer",
            AgentCommand::CallEnded { .. } => "call ended",
            AgentCommand::Tick => "tick",
        }
    }
}

/// What a queue needs to know of an agent to route to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentView {
    /// Agent.
    pub agent: AgentId,
    /// Logged in (any state but logged out).
    pub logged_in: bool,
    /// In state available.
    pub available: bool,
    /// Not offered anything before this time.
    pub blocked_until: TimeMs,
    /// Available since (longest idle).
    pub idle_since: TimeMs,
    /// Calls answered since login.
    pub calls: u32,
    /// Talk time since login.
    pub talk_ms: DurationMs,
}

/// An agent aggregate.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Agent {
    /// Agent.
    pub id: AgentId,
    /// Current state.
    pub state: AgentState,
    /// In this state since.
    pub since: TimeMs,
    /// Devices that ring.
    pub devices: Vec<DeviceId>,
    /// Offers missed in a row.
    pub missed_in_row: u32,
    /// No offers before this time (reject/busy/no-answer delay).
    pub blocked_until: TimeMs,
    /// Calls answered since login.
    pub calls: u32,
    /// Talk time since login.
    pub talk_ms: DurationMs,
    /// The queue the current reservation came from.
    pub offer_queue: Option<QueueId>,
    /// The not-ready reason the agent returns to after the call it was reserved for (a
    /// click-to-call placed while not ready), instead of available.
    #[serde(default)]
    pub resume: Option<ReasonCode>,
    /// Number of events applied (the aggregate sequence).
    pub seq: u64,
}

impl Agent {
    /// A logged-out agent.
    pub fn new(id: AgentId) -> Agent {
        Agent {
            id,
            state: AgentState::LoggedOut,
            since: 0,
            devices: Vec::new(),
            missed_in_row: 0,
            blocked_until: 0,
            calls: 0,
            talk_ms: 0,
            offer_queue: None,
            resume: None,
            seq: 0,
        }
    }

    /// The view queues route on.
    pub fn view(&self) -> AgentView {
        AgentView {
            agent: self.id.clone(),
            logged_in: self.state != AgentState::LoggedOut,
            available: self.state == AgentState::Available,
            blocked_until: self.blocked_until,
            idle_since: self.since,
            calls: self.calls,
            talk_ms: self.talk_ms,
        }
    }

    /// When this agent next needs a `Tick`.
    pub fn next_deadline(&self) -> Option<TimeMs> {
        match &self.state {
            AgentState::Reserved { lease_until, .. }
            | AgentState::Ringing { lease_until, .. }
            | AgentState::OnCall { lease_until, .. } => Some(*lease_until),
            AgentState::WrapUp { until } => Some(*until),
            _ => None,
        }
    }

    fn illegal(&self, cmd: &AgentCommand) -> Rejection {
        Rejection::IllegalTransition {
            what: cmd.name(),
            state: format!("agent {} is {}", self.id, self.state),
        }
    }

    fn held_for(&self, call: &CallId) -> bool {
        matches!(&self.state,
            AgentState::Reserved { call: c, .. } | AgentState::Ringing { call: c, .. } if c == call)
    }

    /// Decides what a command does: the events to record, or why not.
    pub fn handle(
        &self,
        cmd: &AgentCommand,
        setup: &TenantSetup,
        now: TimeMs,
    ) -> Result<Vec<Event>, Rejection> {
        use AgentState as S;
        let ev = |body| Ok(vec![Event { at: now, body }]);
        let agent = self.id.clone();
        match cmd {
            AgentCommand::Login { devices, not_ready } => {
                if self.state != S::LoggedOut {
                    return Err(Rejection::IllegalTransition {
                        what: "login",
                        state: format!("agent {} is already logged in ({})", self.id, self.state),
                    });
                }
                if let Some(r) = not_ready {
                    if !setup.has_reason(r) {
                        return Err(Rejection::UnknownReason(r.clone()));
                    }
                }
                if let Some(d) = devices.iter().find(|d| !setup.device_allowed(d.as_str())) {
                    return Err(Rejection::DeviceNotAllowed(d.to_string()));
                }
                ev(EventBody::AgentLoggedIn {
                    agent,
                    devices: devices.clone(),
                    not_ready: not_ready.clone(),
                })
            }
            AgentCommand::Logout => match self.state {
                S::Available | S::NotReady { .. } | S::WrapUp { .. } => {
                    ev(EventBody::AgentLoggedOut { agent })
                }
                _ => Err(self.illegal(cmd)),
            },
            AgentCommand::SetAvailable => match self.state {
                S::Available => Err(Rejection::Duplicate("agent is already available")),
                S::NotReady { .. } | S::WrapUp { .. } => ev(EventBody::AgentAvailable { agent }),
                _ => Err(self.illegal(cmd)),
            },
            AgentCommand::SetNotReady { reason } => {
                if !setup.has_reason(reason) && reason.as_str() != MISSED_OFFERS_REASON {
                    return Err(Rejection::UnknownReason(reason.clone()));
                }
                match &self.state {
                    S::NotReady { reason: r } if r == reason => Err(Rejection::Duplicate(
                        "agent is already not ready for that reason",
                    )),
                    S::Available | S::NotReady { .. } | S::WrapUp { .. } => {
                        ev(EventBody::AgentNotReady {
                            agent,
                            reason: reason.clone(),
                        })
                    }
                    _ => Err(self.illegal(cmd)),
                }
            }
            AgentCommand::Reserve {
                call,
                queue,
                ring_timeout_ms,
                outbound,
            } => {
                if self.held_for(call) {
                    return Err(Rejection::Duplicate("agent already reserved for this call"));
                }
                let resume = match &self.state {
                    S::NotReady { reason } if *outbound => Some(reason.clone()),
                    _ => None,
                };
                let free = self.state == S::Available && (*outbound || now >= self.blocked_until);
                if !free && resume.is_none() {
                    let state = if self.state == S::Available {
                        format!("blocked until {}", self.blocked_until)
                    } else {
                        self.state.to_string()
                    };
                    return Err(Rejection::NotAvailable { agent, state });
                }
                ev(EventBody::AgentReserved {
                    agent,
                    call: call.clone(),
                    queue: queue.clone(),
                    devices: self.devices.clone(),
                    ring_timeout_ms: *ring_timeout_ms,
                    lease_until: now + ring_timeout_ms + setup.defaults.lease_margin_ms,
                    resume,
                })
            }
            AgentCommand::Engage { call } => {
                let resume = match &self.state {
                    S::Available => None,
                    S::NotReady { reason } => Some(reason.clone()),
                    S::OnCall { call: c, .. } if c == call => {
                        return Err(Rejection::Duplicate("agent already on this call"))
                    }
                    other => {
                        return Err(Rejection::NotAvailable {
                            agent,
                            state: other.to_string(),
                        })
                    }
                };
                ev(EventBody::AgentAnswered {
                    agent,
                    call: call.clone(),
                    lease_until: now + setup.defaults.max_call_ms,
                    resume,
                })
            }
            AgentCommand::Ringing { call } => match &self.state {
                S::Reserved {
                    call: c,
                    lease_until,
                } if c == call => ev(EventBody::AgentRinging {
                    agent,
                    call: call.clone(),
                    lease_until: *lease_until,
                }),
                S::Ringing { call: c, .. } if c == call => Err(Rejection::Duplicate(
                    "agent is already ringing for this call",
                )),
                _ => Err(Rejection::NotOffered {
                    call: call.clone(),
                    agent,
                }),
            },
            AgentCommand::Answered { call } => match &self.state {
                S::Reserved { call: c, .. } | S::Ringing { call: c, .. } if c == call => {
                    ev(EventBody::AgentAnswered {
                        agent,
                        call: call.clone(),
                        lease_until: now + setup.defaults.max_call_ms,
                        resume: None,
                    })
                }
                S::OnCall { call: c, .. } if c == call => {
                    Err(Rejection::Duplicate("agent already answered this call"))
                }
                _ => Err(Rejection::NotOffered {
                    call: call.clone(),
                    agent,
                }),
            },
            AgentCommand::OfferFailed { call, cause } => {
                if !self.held_for(call) {
                    return Err(Rejection::NotOffered {
                        call: call.clone(),
                        agent,
                    });
                }
                let d = &setup.defaults;
                let delay = match cause {
                    OfferFailure::Busy => d.busy_delay_ms,
                    OfferFailure::Rejected => d.reject_delay_ms,
                    OfferFailure::NoAnswer
                    | OfferFailure::Unreachable
                    | OfferFailure::Expired
                    | OfferFailure::NotAvailable => d.no_answer_delay_ms,
                };
                let missed_in_row = self.missed_in_row + 1;
                ev(EventBody::AgentOfferMissed {
                    agent,
                    call: call.clone(),
                    cause: *cause,
                    missed_in_row,
                    blocked_until: now + delay,
                    not_ready: d.max_missed_offers > 0 && missed_in_row >= d.max_missed_offers,
                })
            }
            AgentCommand::CancelOffer { call } => {
                if !self.held_for(call) {
                    return Err(Rejection::NotOffered {
                        call: call.clone(),
                        agent,
                    });
                }
                ev(EventBody::AgentOfferCancelled {
                    agent,
                    call: call.clone(),
                })
            }
            AgentCommand::CallEnded { call, wrapup_ms } => match &self.state {
                S::OnCall { call: c, .. } if c == call => ev(EventBody::AgentCallEnded {
                    agent,
                    call: call.clone(),
                    talk_ms: now.saturating_sub(self.since),
                    wrapup_until: (*wrapup_ms > 0).then_some(now + wrapup_ms),
                }),
                _ => Err(Rejection::IllegalTransition {
                    what: "call ended",
                    state: format!("agent {} is {}, not on call {call}", self.id, self.state),
                }),
            },
            AgentCommand::Tick => match &self.state {
                S::Reserved { call, lease_until } | S::Ringing { call, lease_until }
                    if now >= *lease_until =>
                {
                    ev(EventBody::AgentLeaseExpired {
                        agent,
                        call: call.clone(),
                        kind: LeaseKind::Offer,
                    })
                }
                S::OnCall { call, lease_until } if now >= *lease_until => {
                    ev(EventBody::AgentLeaseExpired {
                        agent,
                        call: call.clone(),
                        kind: LeaseKind::Call,
                    })
                }
                S::WrapUp { until } if now >= *until => ev(EventBody::AgentWrapUpEnded { agent }),
                _ => Ok(vec![]),
            },
        }
    }

    /// Applies one of this agent's events.
    pub fn apply(&mut self, event: &Event) {
        use AgentState as S;
        let at = event.at;
        self.seq += 1;
        if matches!(
            &event.body,
            EventBody::AgentLoggedIn { .. }
                | EventBody::AgentLoggedOut { .. }
                | EventBody::AgentAvailable { .. }
                | EventBody::AgentNotReady { .. }
        ) {
            // the agent's own choice replaces the state a click-to-call would return to
            self.resume = None;
        }
        match &event.body {
            EventBody::AgentLoggedIn {
                devices, not_ready, ..
            } => {
                self.devices = devices.clone();
                self.calls = 0;
                self.talk_ms = 0;
                self.missed_in_row = 0;
                self.blocked_until = 0;
                self.set(
                    match not_ready {
                        Some(reason) => S::NotReady {
                            reason: reason.clone(),
                        },
                        None => S::Available,
                    },
                    at,
                );
            }
            EventBody::AgentLoggedOut { .. } => {
                self.devices.clear();
                self.set(S::LoggedOut, at);
            }
            EventBody::AgentAvailable { .. } => {
                self.missed_in_row = 0;
                self.set(S::Available, at);
            }
            EventBody::AgentNotReady { reason, .. } => self.set(
                S::NotReady {
                    reason: reason.clone(),
                },
                at,
            ),
            EventBody::AgentReserved {
                call,
                queue,
                lease_until,
                resume,
                ..
            } => {
                self.offer_queue = queue.clone();
                self.resume = resume.clone();
                self.set(
                    S::Reserved {
                        call: call.clone(),
                        lease_until: *lease_until,
                    },
                    at,
                );
            }
            EventBody::AgentRinging {
                call, lease_until, ..
            } => {
                // ringing keeps `since` of the reservation: the offer started then
                self.state = S::Ringing {
                    call: call.clone(),
                    lease_until: *lease_until,
                };
            }
            EventBody::AgentAnswered {
                call,
                lease_until,
                resume,
                ..
            } => {
                if resume.is_some() {
                    self.resume = resume.clone();
                }
                self.missed_in_row = 0;
                self.calls += 1;
                self.set(
                    S::OnCall {
                        call: call.clone(),
                        lease_until: *lease_until,
                    },
                    at,
                );
            }
            EventBody::AgentOfferMissed {
                missed_in_row,
                blocked_until,
                not_ready,
                ..
            } => {
                self.missed_in_row = *missed_in_row;
                self.blocked_until = *blocked_until;
                self.offer_queue = None;
                if *not_ready {
                    self.resume = None;
                    self.set(
                        S::NotReady {
                            reason: ReasonCode::new(MISSED_OFFERS_REASON),
                        },
                        at,
                    );
                } else {
                    self.set_free(at);
                }
            }
            EventBody::AgentOfferCancelled { .. } => {
                self.offer_queue = None;
                self.set_free(at);
            }
            EventBody::AgentCallEnded {
                talk_ms,
                wrapup_until,
                ..
            } => {
                self.talk_ms += talk_ms;
                self.offer_queue = None;
                match wrapup_until {
                    Some(until) => self.set(S::WrapUp { until: *until }, at),
                    None => self.set_free(at),
                }
            }
            EventBody::AgentWrapUpEnded { .. } | EventBody::AgentLeaseExpired { .. } => {
                self.offer_queue = None;
                self.set_free(at);
            }
            _ => {}
        }
    }

    /// Done with a call or an offer: available, or back to the not-ready reason a
    /// click-to-call found the agent in.
    fn set_free(&mut self, at: TimeMs) {
        let state = match self.resume.take() {
            Some(reason) => AgentState::NotReady { reason },
            None => AgentState::Available,
        };
        self.set(state, at);
    }

    fn set(&mut self, state: AgentState, at: TimeMs) {
        self.state = state;
        self.since = at;
    }
}
