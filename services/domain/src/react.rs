//! How aggregates talk: the follow-up commands an event causes elsewhere, what a refused
//! command causes, and the instructions a call's events give the SIP edge.
//!
//! The actor system and the in-memory `TenantCore` both route commands by these rules, so
//! the simulator and the router run the same choreography.

use std::sync::Arc;

use crate::agent::{AgentCommand, AgentView};
use crate::call::CallCommand;
use crate::event::{EndCause, Event, EventBody, LeaseKind, LeaveReason, OfferFailure, RouteReason};
use crate::ids::{AgentId, CallId, DeviceId, DurationMs, QueueId};
use crate::queue::QueueCommand;
use crate::rejection::Rejection;
use crate::setup::{Target, TenantSetup};

/// A command addressed to an aggregate.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// To an agent.
    Agent(AgentId, AgentCommand),
    /// To a queue.
    Queue(QueueId, QueueCommand),
    /// To a call (creation is `CallCommand::Arrive`).
    Call(CallId, CallCommand),
    /// An agent's availability, for a queue's board (not a domain event).
    Observe(QueueId, AgentView),
}

/// Follow-up commands of an event, given the setup and (for call events) the caller's number
/// and priority of the call that emitted it.
pub fn reactions(
    setup: &TenantSetup,
    event: &Event,
    call_ctx: Option<(&Arc<str>, u32)>,
) -> Vec<Command> {
    use EventBody as E;
    let mut out = Vec::new();
    match &event.body {
        E::AgentReserved {
            agent,
            call,
            queue: Some(q),
            devices,
            ..
        } => out.push(Command::Queue(
            q.clone(),
            QueueCommand::ReservationGranted {
                call: call.clone(),
                agent: agent.clone(),
                devices: devices.clone(),
            },
        )),
        E::AgentReserved {
            agent,
            call,
            queue: None,
            devices,
            ring_timeout_ms,
            ..
        } => out.push(Command::Call(
            call.clone(),
            CallCommand::Offer {
                agent: agent.clone(),
                devices: devices.clone(),
                queue: None,
                ring_timeout_ms: *ring_timeout_ms,
                ring_all: true,
            },
        )),
        E::AgentLeaseExpired { agent, call, kind } => out.push(Command::Call(
            call.clone(),
            match kind {
                LeaseKind::Offer => CallCommand::OfferFailed {
                    agent: agent.clone(),
                    cause: OfferFailure::Expired,
                },
                LeaseKind::Call => CallCommand::Hangup {
                    cause: EndCause::Router(Arc::from("agent_lease_expired")),
                },
            },
        )),
        E::QueueRoutingDecision {
            queue,
            call,
            chosen,
            ..
        } => {
            let ring_timeout_ms = setup
                .queues
                .get(queue)
                .map_or(setup.defaults.ring_timeout_ms, |q| q.ring_timeout_ms);
            for a in chosen {
                out.push(Command::Agent(
                    a.clone(),
                    AgentCommand::Reserve {
                        call: call.clone(),
                        queue: Some(queue.clone()),
                        ring_timeout_ms,
                        outbound: false,
                    },
                ));
            }
        }
        E::QueueCallLeft {
            queue,
            call,
            reason,
            overflow,
            released,
            ..
        } => {
            for a in released {
                out.push(Command::Agent(
                    a.clone(),
                    AgentCommand::CancelOffer { call: call.clone() },
                ));
            }
            if let (Some(t), false) = (overflow, *reason == LeaveReason::Abandoned) {
                out.push(Command::Call(
                    call.clone(),
                    CallCommand::Overflow {
                        queue: queue.clone(),
                        target: t.clone(),
                    },
                ));
            }
        }
        E::QueueCallOffered {
            queue,
            call,
            agent,
            devices,
            ring_timeout_ms,
            ring_all,
        } => out.push(Command::Call(
            call.clone(),
            CallCommand::Offer {
                agent: agent.clone(),
                devices: devices.clone(),
                queue: Some(queue.clone()),
                ring_timeout_ms: *ring_timeout_ms,
                ring_all: *ring_all,
            },
        )),
        E::CallRouted {
            call,
            target,
            ring,
            timeout_ms,
            reason,
        } => match target {
            Target::Queue(q) => {
                let (caller, priority) =
                    call_ctx.map_or((Arc::from(""), 0), |(c, p)| (c.clone(), p));
                out.push(Command::Queue(
                    q.clone(),
                    QueueCommand::Join {
                        call: call.clone(),
                        priority,
                        caller,
                    },
                ));
            }
            Target::Agent(_) | Target::Extension(_) | Target::Group(_) => {
                for a in ring {
                    out.push(Command::Agent(
                        a.clone(),
                        AgentCommand::Reserve {
                            call: call.clone(),
                            queue: None,
                            ring_timeout_ms: *timeout_ms,
                            outbound: matches!(
                                reason,
                                RouteReason::ClickToCall | RouteReason::Dialled
                            ),
                        },
                    ));
                }
            }
            Target::Menu(_) | Target::Hangup(_) => {}
        },
        E::CallArrived {
            call,
            from_agent: Some(a),
            ..
        } => out.push(Command::Agent(
            a.clone(),
            AgentCommand::Engage { call: call.clone() },
        )),
        E::CallRinging { call, agent } => out.push(Command::Agent(
            agent.clone(),
            AgentCommand::Ringing { call: call.clone() },
        )),
        E::CallAnswered {
            call,
            agent,
            queue,
            cancelled,
        } => {
            out.push(Command::Agent(
                agent.clone(),
                AgentCommand::Answered { call: call.clone() },
            ));
            cancel(&mut out, call, cancelled);
            if let Some(q) = queue {
                out.push(Command::Queue(
                    q.clone(),
                    QueueCommand::Answered {
                        call: call.clone(),
                        agent: agent.clone(),
                    },
                ));
            }
        }
        E::CallOfferFailed {
            call,
            agent,
            cause,
            queue,
        } => {
            if *cause != OfferFailure::NotAvailable {
                out.push(Command::Agent(
                    agent.clone(),
                    AgentCommand::OfferFailed {
                        call: call.clone(),
                        cause: *cause,
                    },
                ));
            }
            if let Some(q) = queue {
                out.push(Command::Queue(
                    q.clone(),
                    QueueCommand::OfferFailed {
                        call: call.clone(),
                        agent: agent.clone(),
                        cause: *cause,
                    },
                ));
            }
        }
        E::CallTransferred {
            call,
            agent,
            wrapup_ms,
            ..
        } => out.push(Command::Agent(
            agent.clone(),
            AgentCommand::CallEnded {
                call: call.clone(),
                wrapup_ms: *wrapup_ms,
            },
        )),
        E::CallCallbackRequested { call, queue } => out.push(Command::Queue(
            queue.clone(),
            QueueCommand::RequestCallback { call: call.clone() },
        )),
        E::CallEnded {
            call,
            agent,
            wrapup_ms,
            queue,
            cancelled,
            from_agent,
            ..
        } => {
            if let Some(a) = agent {
                out.push(Command::Agent(
                    a.clone(),
                    AgentCommand::CallEnded {
                        call: call.clone(),
                        wrapup_ms: *wrapup_ms,
                    },
                ));
            }
            if let Some(a) = from_agent {
                // the agent whose phone placed an internal call: no wrap-up
                out.push(Command::Agent(
                    a.clone(),
                    AgentCommand::CallEnded {
                        call: call.clone(),
                        wrapup_ms: 0,
                    },
                ));
            }
            cancel(&mut out, call, cancelled);
            if let Some(q) = queue {
                out.push(Command::Queue(
                    q.clone(),
                    QueueCommand::Abandon { call: call.clone() },
                ));
            }
        }
        _ => {}
    }
    out
}

fn cancel(out: &mut Vec<Command>, call: &CallId, agents: &[AgentId]) {
    for a in agents {
        out.push(Command::Agent(
            a.clone(),
            AgentCommand::CancelOffer { call: call.clone() },
        ));
    }
}

/// What a refused command causes: a refused reservation goes back to whoever asked, a
/// reservation nobody can use any more is released. Other refusals cause nothing.
pub fn on_rejection(cmd: &Command, rejection: &Rejection) -> Vec<Command> {
    if matches!(rejection, Rejection::Duplicate(_)) {
        return vec![];
    }
    match cmd {
        Command::Agent(agent, AgentCommand::Reserve { call, queue, .. }) => match queue {
            Some(q) => vec![Command::Queue(
                q.clone(),
                QueueCommand::ReservationRefused {
                    call: call.clone(),
                    agent: agent.clone(),
                },
            )],
            None => vec![Command::Call(
                call.clone(),
                CallCommand::ReservationRefused {
                    agent: agent.clone(),
                },
            )],
        },
        Command::Queue(_, QueueCommand::ReservationGranted { call, agent, .. }) => {
            vec![Command::Agent(
                agent.clone(),
                AgentCommand::CancelOffer { call: call.clone() },
            )]
        }
        Command::Call(call, CallCommand::Offer { agent, queue, .. }) => {
            let mut out = vec![Command::Agent(
                agent.clone(),
                AgentCommand::CancelOffer { call: call.clone() },
            )];
            if let Some(q) = queue {
                out.push(Command::Queue(
                    q.clone(),
                    QueueCommand::OfferFailed {
                        call: call.clone(),
                        agent: agent.clone(),
                        cause: OfferFailure::NotAvailable,
                    },
                ));
            }
            out
        }
        _ => vec![],
    }
}

/// An instruction to the SIP edge for one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instruction {
    /// Answer the caller (no-op if already answered).
    Answer,
    /// Loop hold music.
    PlayHoldMusic {
        /// Prompt name.
        prompt: Arc<str>,
    },
    /// Play a prompt and collect digits.
    CollectDigits {
        /// Prompt name.
        prompt: Arc<str>,
        /// Most digits.
        max_digits: u32,
        /// Timeout.
        timeout_ms: DurationMs,
    },
    /// Ring an agent's devices.
    Ring {
        /// Agent.
        agent: AgentId,
        /// Devices.
        devices: Vec<DeviceId>,
        /// Ring timeout.
        timeout_ms: DurationMs,
    },
    /// Stop ringing an agent.
    CancelRing {
        /// Agent.
        agent: AgentId,
    },
    /// Bridge the caller to the agent who answered.
    Bridge {
        /// Agent.
        agent: AgentId,
    },
    /// Tell a waiting caller its position and expected wait (R4).
    Announce {
        /// 1-based position in the queue.
        position: u32,
        /// Expected wait; `None` before the queue has an estimate.
        expected_wait_ms: Option<DurationMs>,
    },
    /// Record the call.
    Record,
    /// A call out: once `agent` answers, dial the customer on these trunks in order,
    /// presenting `number` (issue 18); its early media and ringback go to the agent.
    Dial {
        /// The agent whose answer starts the dialling; none: dial at once (a campaign's
        /// call, customer first).
        agent: Option<AgentId>,
        /// The destination (E.164, or a service number's digits).
        destination: Arc<str>,
        /// The tenant's number presented; empty: the trunk's own identity.
        number: Arc<str>,
        /// Trunk ids, in order.
        trunks: Vec<Arc<str>>,
        /// How long the customer may ring.
        timeout_ms: DurationMs,
    },
    /// Hang up with a cause.
    Hangup {
        /// Cause.
        cause: Arc<str>,
    },
}

/// The edge instructions a call event gives.
pub fn instructions(setup: &TenantSetup, event: &Event) -> Vec<Instruction> {
    use EventBody as E;
    match &event.body {
        E::CallArrived { record: true, .. } => vec![Instruction::Record],
        E::CallOriginated {
            agent,
            destination,
            number,
            trunks,
            record,
            campaign,
            ..
        } => {
            let mut v = vec![Instruction::Dial {
                agent: agent.clone(),
                destination: destination.clone(),
                number: number.clone(),
                trunks: trunks.clone(),
                timeout_ms: campaign
                    .as_ref()
                    .map_or(crate::dial::CUSTOMER_RING_TIMEOUT_MS, |c| c.ring_timeout_ms),
            }];
            if *record {
                v.push(Instruction::Record);
            }
            v
        }
        E::CallRouted { target, .. } => match target {
            Target::Queue(q) => vec![
                Instruction::Answer,
                Instruction::PlayHoldMusic {
                    prompt: setup
                        .queues
                        .get(q)
                        .map_or_else(|| Arc::from("hold"), |q| q.hold_music.clone()),
                },
            ],
            Target::Menu(m) => match setup.menus.get(m) {
                Some(m) => vec![
                    Instruction::Answer,
                    Instruction::CollectDigits {
                        prompt: m.prompt.clone(),
                        max_digits: 1,
                        timeout_ms: m.timeout_ms,
                    },
                ],
                None => vec![],
            },
            _ => vec![],
        },
        E::CallMenuRetry { menu, .. } => match setup.menus.get(menu) {
            Some(m) => vec![Instruction::CollectDigits {
                prompt: m.prompt.clone(),
                max_digits: 1,
                timeout_ms: m.timeout_ms,
            }],
            None => vec![],
        },
        E::CallOffered {
            agent,
            devices,
            ring_timeout_ms,
            ..
        } => vec![Instruction::Ring {
            agent: agent.clone(),
            devices: devices.clone(),
            timeout_ms: *ring_timeout_ms,
        }],
        E::CallAnswered {
            agent, cancelled, ..
        } => {
            let mut v: Vec<Instruction> = cancelled
                .iter()
                .map(|a| Instruction::CancelRing { agent: a.clone() })
                .collect();
            v.push(Instruction::Bridge {
                agent: agent.clone(),
            });
            v
        }
        // the edge lets the agent's leg go and the caller hears hold music until the new
        // step answers (a queue's own music replaces it)
        E::CallTransferred { agent, .. } => vec![
            Instruction::CancelRing {
                agent: agent.clone(),
            },
            Instruction::PlayHoldMusic {
                prompt: Arc::from("hold"),
            },
        ],
        E::CallOfferFailed {
            agent,
            cause: OfferFailure::Expired,
            ..
        } => vec![Instruction::CancelRing {
            agent: agent.clone(),
        }],
        E::CallEnded {
            cause, cancelled, ..
        } => {
            let mut v: Vec<Instruction> = cancelled
                .iter()
                .map(|a| Instruction::CancelRing { agent: a.clone() })
                .collect();
            if let EndCause::Router(c) | EndCause::Dial(c) = cause {
                v.push(Instruction::Hangup { cause: c.clone() });
            } else if *cause == EndCause::EdgeLost {
                v.push(Instruction::Hangup {
                    cause: Arc::from("edge_lost"),
                });
            }
            v
        }
        _ => vec![],
    }
}
