//! Domain events ↔ the protobuf of the event log (`callgrid.events.v1`): the one conversion
//! of the log's persistence contract, shared by the router (it writes and recovers) and the
//! projector (it reads).

#[doc(hidden)]
pub mod fuzz;

use std::sync::Arc;

use callgrid_domain::event::{LeaseKind, LeaveReason, RouteReason};
use callgrid_domain::{
    AgentId, CallId, CampaignCall, DeviceId, EndCause, Event, EventBody, GroupId, MemberSet,
    MenuId, OfferFailure, Party, QueueId, ReasonCode, Strategy, Target,
};
use callgrid_proto::events::v1 as pb;
use pb::event::Kind as K;

/// An event that cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not protobuf of the envelope.
    #[error("malformed envelope: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A required field is missing.
    #[error("event {0} lacks field {1}")]
    Missing(&'static str, &'static str),
}

/// Ids (or anything displayable) as strings, as the wire carries them.
pub fn strs<T: ToString>(v: &[T]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}
fn agents(v: &[String]) -> Vec<AgentId> {
    v.iter().map(AgentId::new).collect()
}
fn devices(v: &[String]) -> Vec<DeviceId> {
    v.iter().map(DeviceId::new).collect()
}

fn strategy_pb(s: Strategy) -> pb::Strategy {
    match s {
        Strategy::RingAll => pb::Strategy::RingAll,
        Strategy::LongestIdle => pb::Strategy::LongestIdle,
        Strategy::RoundRobin => pb::Strategy::RoundRobin,
        Strategy::LeastTalkTime => pb::Strategy::LeastTalkTime,
        Strategy::FewestCalls => pb::Strategy::FewestCalls,
        Strategy::Linear => pb::Strategy::Linear,
        Strategy::Random => pb::Strategy::Random,
        Strategy::WeightedRandom => pb::Strategy::WeightedRandom,
    }
}
fn strategy_dom(s: i32) -> Strategy {
    match pb::Strategy::try_from(s).unwrap_or(pb::Strategy::Unspecified) {
        pb::Strategy::RingAll => Strategy::RingAll,
        pb::Strategy::RoundRobin => Strategy::RoundRobin,
        pb::Strategy::LeastTalkTime => Strategy::LeastTalkTime,
        pb::Strategy::FewestCalls => Strategy::FewestCalls,
        pb::Strategy::Linear => Strategy::Linear,
        pb::Strategy::Random => Strategy::Random,
        pb::Strategy::WeightedRandom => Strategy::WeightedRandom,
        pb::Strategy::LongestIdle | pb::Strategy::Unspecified => Strategy::LongestIdle,
    }
}
fn failure_pb(f: OfferFailure) -> i32 {
    (match f {
        OfferFailure::NoAnswer => pb::OfferFailure::NoAnswer,
        OfferFailure::Busy => pb::OfferFailure::Busy,
        OfferFailure::Rejected => pb::OfferFailure::Rejected,
        OfferFailure::Unreachable => pb::OfferFailure::Unreachable,
        OfferFailure::Expired => pb::OfferFailure::Expired,
        OfferFailure::NotAvailable => pb::OfferFailure::NotAvailable,
    }) as i32
}
fn failure_dom(f: i32) -> OfferFailure {
    match pb::OfferFailure::try_from(f).unwrap_or(pb::OfferFailure::Unspecified) {
        pb::OfferFailure::Busy => OfferFailure::Busy,
        pb::OfferFailure::Rejected => OfferFailure::Rejected,
        pb::OfferFailure::Unreachable => OfferFailure::Unreachable,
        pb::OfferFailure::Expired => OfferFailure::Expired,
        pb::OfferFailure::NotAvailable => OfferFailure::NotAvailable,
        pb::OfferFailure::NoAnswer | pb::OfferFailure::Unspecified => OfferFailure::NoAnswer,
    }
}
fn leave_pb(r: LeaveReason) -> i32 {
    (match r {
        LeaveReason::Full => pb::LeaveReason::Full,
        LeaveReason::NoAgents => pb::LeaveReason::NoAgents,
        LeaveReason::Timeout => pb::LeaveReason::Timeout,
        LeaveReason::Abandoned => pb::LeaveReason::Abandoned,
    }) as i32
}
fn leave_dom(r: i32) -> LeaveReason {
    match pb::LeaveReason::try_from(r).unwrap_or(pb::LeaveReason::Unspecified) {
        pb::LeaveReason::Full => LeaveReason::Full,
        pb::LeaveReason::NoAgents => LeaveReason::NoAgents,
        pb::LeaveReason::Timeout => LeaveReason::Timeout,
        pb::LeaveReason::Abandoned | pb::LeaveReason::Unspecified => LeaveReason::Abandoned,
    }
}

/// A plan step as protobuf.
pub fn target_pb(t: &Target) -> pb::Target {
    use pb::target::Kind as T;
    pb::Target {
        kind: Some(match t {
            Target::Queue(q) => T::Queue(q.to_string()),
            Target::Extension(e) => T::Extension(e.to_string()),
            Target::Agent(a) => T::Agent(a.to_string()),
            Target::Group(g) => T::Group(g.to_string()),
            Target::Menu(m) => T::Menu(m.to_string()),
            Target::Hangup(c) => T::Hangup(c.to_string()),
        }),
    }
}
fn target_dom(t: Option<&pb::Target>) -> Option<Target> {
    use pb::target::Kind as T;
    Some(match t?.kind.as_ref()? {
        T::Queue(q) => Target::Queue(QueueId::new(q)),
        T::Extension(e) => Target::Extension(Arc::from(e.as_str())),
        T::Agent(a) => Target::Agent(AgentId::new(a)),
        T::Group(g) => Target::Group(GroupId::new(g)),
        T::Menu(m) => Target::Menu(MenuId::new(m)),
        T::Hangup(c) => Target::Hangup(Arc::from(c.as_str())),
    })
}
fn reason_pb(r: &RouteReason) -> pb::RouteReason {
    use pb::route_reason::Kind as R;
    pb::RouteReason {
        kind: Some(match r {
            RouteReason::Number => R::Number(true),
            RouteReason::MenuChoice(d) => R::MenuChoice(d.to_string()),
            RouteReason::MenuTimeout => R::MenuTimeout(true),
            RouteReason::MenuInvalid => R::MenuInvalid(true),
            RouteReason::Overflow => R::Overflow(true),
            RouteReason::NoAnswer => R::NoAnswer(true),
            RouteReason::Loop => R::Loop(true),
            RouteReason::Transfer => R::Transfer(true),
            RouteReason::Blocked => R::Blocked(true),
            RouteReason::ClickToCall => R::ClickToCall(true),
            RouteReason::Dialled => R::Dialled(true),
            RouteReason::Internal => R::Internal(true),
            RouteReason::Campaign => R::Campaign(true),
        }),
    }
}
fn reason_dom(r: Option<&pb::RouteReason>) -> RouteReason {
    use pb::route_reason::Kind as R;
    match r.and_then(|r| r.kind.as_ref()) {
        Some(R::MenuChoice(d)) => RouteReason::MenuChoice(d.chars().next().unwrap_or('?')),
        Some(R::MenuTimeout(_)) => RouteReason::MenuTimeout,
        Some(R::MenuInvalid(_)) => RouteReason::MenuInvalid,
        Some(R::Overflow(_)) => RouteReason::Overflow,
        Some(R::NoAnswer(_)) => RouteReason::NoAnswer,
        Some(R::Loop(_)) => RouteReason::Loop,
        Some(R::Transfer(_)) => RouteReason::Transfer,
        Some(R::Blocked(_)) => RouteReason::Blocked,
        Some(R::ClickToCall(_)) => RouteReason::ClickToCall,
        Some(R::Dialled(_)) => RouteReason::Dialled,
        Some(R::Internal(_)) => RouteReason::Internal,
        Some(R::Campaign(_)) => RouteReason::Campaign,
        Some(R::Number(_)) | None => RouteReason::Number,
    }
}
fn cause_pb(c: &EndCause) -> pb::EndCause {
    use pb::end_cause::Kind as C;
    pb::EndCause {
        kind: Some(match c {
            EndCause::Caller => C::Caller(true),
            EndCause::Agent => C::Agent(true),
            EndCause::Router(c) => C::Router(c.to_string()),
            EndCause::EdgeLost => C::EdgeLost(true),
            EndCause::Dial(c) => C::Dial(c.to_string()),
        }),
    }
}
fn party_pb(p: Party) -> i32 {
    match p {
        Party::Caller => pb::Party::Caller as i32,
        Party::Agent => pb::Party::Agent as i32,
    }
}
fn party_dom(event: &'static str, p: i32) -> Result<Party, DecodeError> {
    match pb::Party::try_from(p) {
        Ok(pb::Party::Caller) => Ok(Party::Caller),
        Ok(pb::Party::Agent) => Ok(Party::Agent),
        _ => Err(DecodeError::Missing(event, "by")),
    }
}
fn cause_dom(c: Option<&pb::EndCause>) -> EndCause {
    use pb::end_cause::Kind as C;
    match c.and_then(|c| c.kind.as_ref()) {
        Some(C::Agent(_)) => EndCause::Agent,
        Some(C::Router(c)) => EndCause::Router(Arc::from(c.as_str())),
        Some(C::EdgeLost(_)) => EndCause::EdgeLost,
        Some(C::Dial(c)) => EndCause::Dial(Arc::from(c.as_str())),
        Some(C::Caller(_)) | None => EndCause::Caller,
    }
}

/// A domain event body as protobuf.
pub fn event_pb(body: &EventBody) -> pb::Event {
    use EventBody as E;
    let s = |x: &dyn ToString| x.to_string();
    let kind = match body {
        E::AgentLoggedIn {
            agent,
            devices,
            not_ready,
        } => K::AgentLoggedIn(pb::AgentLoggedIn {
            agent: s(agent),
            devices: strs(devices),
            not_ready: not_ready.as_ref().map(|r| r.to_string()),
        }),
        E::AgentLoggedOut { agent } => K::AgentLoggedOut(pb::AgentLoggedOut { agent: s(agent) }),
        E::AgentAvailable { agent } => K::AgentAvailable(pb::AgentAvailable { agent: s(agent) }),
        E::AgentNotReady { agent, reason } => K::AgentNotReady(pb::AgentNotReady {
            agent: s(agent),
            reason: s(reason),
        }),
        E::AgentReserved {
            agent,
            call,
            queue,
            devices,
            ring_timeout_ms,
            lease_until,
            resume,
        } => K::AgentReserved(pb::AgentReserved {
            agent: s(agent),
            call: s(call),
            queue: queue.as_ref().map(|q| q.to_string()),
            devices: strs(devices),
            ring_timeout_ms: *ring_timeout_ms,
            lease_until_ms: *lease_until,
            resume: resume.as_ref().map(|r| r.to_string()),
        }),
        E::AgentRinging {
            agent,
            call,
            lease_until,
        } => K::AgentRinging(pb::AgentRinging {
            agent: s(agent),
            call: s(call),
            lease_until_ms: *lease_until,
        }),
        E::AgentAnswered {
            agent,
            call,
            lease_until,
            resume,
        } => K::AgentAnswered(pb::AgentAnswered {
            agent: s(agent),
            call: s(call),
            lease_until_ms: *lease_until,
            resume: resume.as_ref().map(|r| r.to_string()),
        }),
        E::AgentOfferMissed {
            agent,
            call,
            cause,
            missed_in_row,
            blocked_until,
            not_ready,
        } => K::AgentOfferMissed(pb::AgentOfferMissed {
            agent: s(agent),
            call: s(call),
            cause: failure_pb(*cause),
            missed_in_row: *missed_in_row,
            blocked_until_ms: *blocked_until,
            not_ready: *not_ready,
        }),
        E::AgentOfferCancelled { agent, call } => K::AgentOfferCancelled(pb::AgentOfferCancelled {
            agent: s(agent),
            call: s(call),
        }),
        E::AgentCallEnded {
            agent,
            call,
            talk_ms,
            wrapup_until,
        } => K::AgentCallEnded(pb::AgentCallEnded {
            agent: s(agent),
            call: s(call),
            talk_ms: *talk_ms,
            wrapup_until_ms: *wrapup_until,
        }),
        E::AgentWrapUpEnded { agent } => {
            K::AgentWrapUpEnded(pb::AgentWrapUpEnded { agent: s(agent) })
        }
        E::AgentLeaseExpired { agent, call, kind } => K::AgentLeaseExpired(pb::AgentLeaseExpired {
            agent: s(agent),
            call: s(call),
            kind: match kind {
                LeaseKind::Offer => pb::LeaseKind::Offer,
                LeaseKind::Call => pb::LeaseKind::Call,
            } as i32,
        }),
        E::QueueCallJoined {
            queue,
            call,
            priority,
            caller,
        } => K::QueueCallJoined(pb::QueueCallJoined {
            queue: s(queue),
            call: s(call),
            priority: *priority,
            caller: caller.to_string(),
        }),
        E::QueueCallLeft {
            queue,
            call,
            reason,
            wait_ms,
            overflow,
            released,
        } => K::QueueCallLeft(pb::QueueCallLeft {
            queue: s(queue),
            call: s(call),
            reason: leave_pb(*reason),
            wait_ms: *wait_ms,
            overflow: overflow.as_ref().map(target_pb),
            released: strs(released),
        }),
        E::QueueRoutingDecision {
            queue,
            call,
            strategy,
            candidates,
            chosen,
            lease_until,
        } => K::QueueRoutingDecision(pb::QueueRoutingDecision {
            queue: s(queue),
            call: s(call),
            strategy: strategy_pb(*strategy) as i32,
            candidate_members: candidates.as_bytes().to_vec(),
            candidate_count: candidates.len() as u32,
            chosen: strs(chosen),
            lease_until_ms: *lease_until,
        }),
        E::QueueReservationRefused { queue, call, agent } => {
            K::QueueReservationRefused(pb::QueueReservationRefused {
                queue: s(queue),
                call: s(call),
                agent: s(agent),
            })
        }
        E::QueueCallOffered {
            queue,
            call,
            agent,
            devices,
            ring_timeout_ms,
            ring_all,
        } => K::QueueCallOffered(pb::QueueCallOffered {
            queue: s(queue),
            call: s(call),
            agent: s(agent),
            devices: strs(devices),
            ring_timeout_ms: *ring_timeout_ms,
            ring_all: *ring_all,
        }),
        E::QueueOfferFailed {
            queue,
            call,
            agent,
            cause,
        } => K::QueueOfferFailed(pb::QueueOfferFailed {
            queue: s(queue),
            call: s(call),
            agent: s(agent),
            cause: failure_pb(*cause),
        }),
        E::QueueCallAnswered {
            queue,
            call,
            agent,
            wait_ms,
        } => K::QueueCallAnswered(pb::QueueCallAnswered {
            queue: s(queue),
            call: s(call),
            agent: s(agent),
            wait_ms: *wait_ms,
        }),
        E::QueueCallbackRequested { queue, call } => {
            K::QueueCallbackRequested(pb::QueueCallbackRequested {
                queue: s(queue),
                call: s(call),
            })
        }
        E::QueueCallbackDue {
            queue,
            call,
            caller,
            wait_ms,
        } => K::QueueCallbackDue(pb::QueueCallbackDue {
            queue: s(queue),
            call: s(call),
            caller: caller.to_string(),
            wait_ms: *wait_ms,
        }),
        E::QueueDecisionExpired {
            queue,
            call,
            agents,
        } => K::QueueDecisionExpired(pb::QueueDecisionExpired {
            queue: s(queue),
            call: s(call),
            agents: strs(agents),
        }),
        E::CallArrived {
            call,
            number,
            caller,
            plan_version,
            record,
            from_agent,
        } => K::CallArrived(pb::CallArrived {
            call: s(call),
            number: number.to_string(),
            caller: caller.to_string(),
            plan_version: *plan_version,
            record: *record,
            from_agent: from_agent.as_ref().map(|a| a.to_string()),
        }),
        E::CallOriginated {
            call,
            agent,
            dialled,
            destination,
            class,
            number,
            choice,
            trunks,
            correlation,
            plan_version,
            record,
            carrier,
            campaign,
        } => K::CallOriginated(pb::CallOriginated {
            call: s(call),
            agent: agent.as_ref().map(|a| a.to_string()).unwrap_or_default(),
            campaign: campaign.as_ref().map(|c| pb::CampaignCall {
                campaign: c.campaign.to_string(),
                contact: c.contact,
                attempt: c.attempt,
                queue: s(&c.queue),
                ring_timeout_ms: c.ring_timeout_ms,
            }),
            dialled: dialled.to_string(),
            destination: destination.to_string(),
            class: class.to_string(),
            number: number.to_string(),
            choice: choice.to_string(),
            trunks: trunks.iter().map(|t| t.to_string()).collect(),
            correlation: correlation.as_ref().map(|c| c.to_string()),
            plan_version: *plan_version,
            record: *record,
            carrier: carrier.as_ref().map(|c| c.to_string()),
        }),
        E::CallTrunkFailed {
            call,
            trunk,
            sip_code,
        } => K::CallTrunkFailed(pb::CallTrunkFailed {
            call: s(call),
            trunk: trunk.to_string(),
            sip_code: u32::from(*sip_code),
        }),
        E::CallCustomerRinging { call, trunk } => K::CallCustomerRinging(pb::CallCustomerRinging {
            call: s(call),
            trunk: trunk.to_string(),
        }),
        E::CallCustomerAnswered { call, trunk } => {
            K::CallCustomerAnswered(pb::CallCustomerAnswered {
                call: s(call),
                trunk: trunk.to_string(),
            })
        }
        E::CallRouted {
            call,
            target,
            reason,
            ring,
            timeout_ms,
        } => K::CallRouted(pb::CallRouted {
            call: s(call),
            target: Some(target_pb(target)),
            reason: Some(reason_pb(reason)),
            ring: strs(ring),
            timeout_ms: *timeout_ms,
        }),
        E::CallMenuRetry {
            call,
            menu,
            attempt,
            invalid,
        } => K::CallMenuRetry(pb::CallMenuRetry {
            call: s(call),
            menu: s(menu),
            attempt: *attempt,
            invalid: invalid.map(|c| c.to_string()),
        }),
        E::CallOffered {
            call,
            agent,
            devices,
            ring_timeout_ms,
            queue,
            lease_until,
        } => K::CallOffered(pb::CallOffered {
            call: s(call),
            agent: s(agent),
            devices: strs(devices),
            ring_timeout_ms: *ring_timeout_ms,
            queue: queue.as_ref().map(|q| q.to_string()),
            lease_until_ms: *lease_until,
        }),
        E::CallRinging { call, agent } => K::CallRinging(pb::CallRinging {
            call: s(call),
            agent: s(agent),
        }),
        E::CallTransferred {
            call,
            agent,
            target,
            wrapup_ms,
        } => K::CallTransferred(pb::CallTransferred {
            call: s(call),
            agent: s(agent),
            target: Some(target_pb(target)),
            wrapup_ms: *wrapup_ms,
        }),
        E::CallRecordingStarted { call, path } => {
            K::CallRecordingStarted(pb::CallRecordingStarted {
                call: s(call),
                path: path.to_string(),
            })
        }
        E::CallHeld { call, agent, by } => K::CallHeld(pb::CallHeld {
            call: s(call),
            agent: s(agent),
            by: party_pb(*by),
        }),
        E::CallResumed { call, agent, by } => K::CallResumed(pb::CallResumed {
            call: s(call),
            agent: s(agent),
            by: party_pb(*by),
        }),
        E::CallAnswered {
            call,
            agent,
            queue,
            cancelled,
        } => K::CallAnswered(pb::CallAnswered {
            call: s(call),
            agent: s(agent),
            queue: queue.as_ref().map(|q| q.to_string()),
            cancelled: strs(cancelled),
        }),
        E::CallOfferFailed {
            call,
            agent,
            cause,
            queue,
        } => K::CallOfferFailed(pb::CallOfferFailed {
            call: s(call),
            agent: s(agent),
            cause: failure_pb(*cause),
            queue: queue.as_ref().map(|q| q.to_string()),
        }),
        E::CallCallbackRequested { call, queue } => {
            K::CallCallbackRequested(pb::CallCallbackRequested {
                call: s(call),
                queue: s(queue),
            })
        }
        E::CallEnded {
            call,
            cause,
            agent,
            wrapup_ms,
            queue,
            cancelled,
            from_agent,
        } => K::CallEnded(pb::CallEnded {
            call: s(call),
            cause: Some(cause_pb(cause)),
            agent: agent.as_ref().map(|a| a.to_string()),
            wrapup_ms: *wrapup_ms,
            queue: queue.as_ref().map(|q| q.to_string()),
            cancelled: strs(cancelled),
            from_agent: from_agent.as_ref().map(|a| a.to_string()),
        }),
    };
    pb::Event { kind: Some(kind) }
}

/// A protobuf event as a domain event body; `Ok(None)` for events that are not domain events
/// of an aggregate (tenant configuration).
pub fn event_dom(ev: &pb::Event) -> Result<Option<EventBody>, DecodeError> {
    use EventBody as E;
    let Some(kind) = ev.kind.as_ref() else {
        return Err(DecodeError::Missing("event", "kind"));
    };
    let q = |x: &Option<String>| x.as_ref().map(QueueId::new);
    Ok(Some(match kind {
        K::AgentLoggedIn(e) => E::AgentLoggedIn {
            agent: AgentId::new(&e.agent),
            devices: devices(&e.devices),
            not_ready: e.not_ready.as_ref().map(ReasonCode::new),
        },
        K::AgentLoggedOut(e) => E::AgentLoggedOut {
            agent: AgentId::new(&e.agent),
        },
        K::AgentAvailable(e) => E::AgentAvailable {
            agent: AgentId::new(&e.agent),
        },
        K::AgentNotReady(e) => E::AgentNotReady {
            agent: AgentId::new(&e.agent),
            reason: ReasonCode::new(&e.reason),
        },
        K::AgentReserved(e) => E::AgentReserved {
            agent: AgentId::new(&e.agent),
            call: CallId::new(&e.call),
            queue: q(&e.queue),
            devices: devices(&e.devices),
            ring_timeout_ms: e.ring_timeout_ms,
            lease_until: e.lease_until_ms,
            resume: e.resume.as_deref().map(ReasonCode::new),
        },
        K::AgentRinging(e) => E::AgentRinging {
            agent: AgentId::new(&e.agent),
            call: CallId::new(&e.call),
            lease_until: e.lease_until_ms,
        },
        K::AgentAnswered(e) => E::AgentAnswered {
            agent: AgentId::new(&e.agent),
            call: CallId::new(&e.call),
            lease_until: e.lease_until_ms,
            resume: e.resume.as_ref().map(ReasonCode::new),
        },
        K::AgentOfferMissed(e) => E::AgentOfferMissed {
            agent: AgentId::new(&e.agent),
            call: CallId::new(&e.call),
            cause: failure_dom(e.cause),
            missed_in_row: e.missed_in_row,
            blocked_until: e.blocked_until_ms,
            not_ready: e.not_ready,
        },
        K::AgentOfferCancelled(e) => E::AgentOfferCancelled {
            agent: AgentId::new(&e.agent),
            call: CallId::new(&e.call),
        },
        K::AgentCallEnded(e) => E::AgentCallEnded {
            agent: AgentId::new(&e.agent),
            call: CallId::new(&e.call),
            talk_ms: e.talk_ms,
            wrapup_until: e.wrapup_until_ms,
        },
        K::AgentWrapUpEnded(e) => E::AgentWrapUpEnded {
            agent: AgentId::new(&e.agent),
        },
        K::AgentLeaseExpired(e) => E::AgentLeaseExpired {
            agent: AgentId::new(&e.agent),
            call: CallId::new(&e.call),
            kind: if e.kind == pb::LeaseKind::Call as i32 {
                LeaseKind::Call
            } else {
                LeaseKind::Offer
            },
        },
        K::QueueCallJoined(e) => E::QueueCallJoined {
            queue: QueueId::new(&e.queue),
            call: CallId::new(&e.call),
            priority: e.priority,
            caller: Arc::from(e.caller.as_str()),
        },
        K::QueueCallLeft(e) => E::QueueCallLeft {
            queue: QueueId::new(&e.queue),
            call: CallId::new(&e.call),
            reason: leave_dom(e.reason),
            wait_ms: e.wait_ms,
            overflow: target_dom(e.overflow.as_ref()),
            released: agents(&e.released),
        },
        K::QueueRoutingDecision(e) => E::QueueRoutingDecision {
            queue: QueueId::new(&e.queue),
            call: CallId::new(&e.call),
            strategy: strategy_dom(e.strategy),
            candidates: MemberSet::from_bytes(&e.candidate_members),
            chosen: agents(&e.chosen),
            lease_until: e.lease_until_ms,
        },
        K::QueueReservationRefused(e) => E::QueueReservationRefused {
            queue: QueueId::new(&e.queue),
            call: CallId::new(&e.call),
            agent: AgentId::new(&e.agent),
        },
        K::QueueCallOffered(e) => E::QueueCallOffered {
            queue: QueueId::new(&e.queue),
            call: CallId::new(&e.call),
            agent: AgentId::new(&e.agent),
            devices: devices(&e.devices),
            ring_timeout_ms: e.ring_timeout_ms,
            ring_all: e.ring_all,
        },
        K::QueueOfferFailed(e) => E::QueueOfferFailed {
            queue: QueueId::new(&e.queue),
            call: CallId::new(&e.call),
            agent: AgentId::new(&e.agent),
            cause: failure_dom(e.cause),
        },
        K::QueueCallAnswered(e) => E::QueueCallAnswered {
            queue: QueueId::new(&e.queue),
            call: CallId::new(&e.call),
            agent: AgentId::new(&e.agent),
            wait_ms: e.wait_ms,
        },
        K::QueueCallbackRequested(e) => E::QueueCallbackRequested {
            queue: QueueId::new(&e.queue),
            call: CallId::new(&e.call),
        },
        K::QueueCallbackDue(e) => E::QueueCallbackDue {
            queue: QueueId::new(&e.queue),
            call: CallId::new(&e.call),
            caller: Arc::from(e.caller.as_str()),
            wait_ms: e.wait_ms,
        },
        K::QueueDecisionExpired(e) => E::QueueDecisionExpired {
            queue: QueueId::new(&e.queue),
            call: CallId::new(&e.call),
            agents: agents(&e.agents),
        },
        K::CallArrived(e) => E::CallArrived {
            call: CallId::new(&e.call),
            number: Arc::from(e.number.as_str()),
            caller: Arc::from(e.caller.as_str()),
            plan_version: e.plan_version,
            record: e.record,
            from_agent: e.from_agent.as_ref().map(AgentId::new),
        },
        K::CallOriginated(e) => E::CallOriginated {
            call: CallId::new(&e.call),
            agent: (!e.agent.is_empty()).then(|| AgentId::new(&e.agent)),
            campaign: e.campaign.as_ref().map(|c| CampaignCall {
                campaign: Arc::from(c.campaign.as_str()),
                contact: c.contact,
                attempt: c.attempt,
                queue: QueueId::new(&c.queue),
                ring_timeout_ms: c.ring_timeout_ms,
            }),
            dialled: Arc::from(e.dialled.as_str()),
            destination: Arc::from(e.destination.as_str()),
            class: Arc::from(e.class.as_str()),
            number: Arc::from(e.number.as_str()),
            choice: Arc::from(e.choice.as_str()),
            trunks: e.trunks.iter().map(|t| Arc::from(t.as_str())).collect(),
            correlation: e.correlation.as_deref().map(Arc::from),
            plan_version: e.plan_version,
            record: e.record,
            carrier: e.carrier.as_deref().map(Arc::from),
        },
        K::CallTrunkFailed(e) => E::CallTrunkFailed {
            call: CallId::new(&e.call),
            trunk: Arc::from(e.trunk.as_str()),
            sip_code: u16::try_from(e.sip_code).unwrap_or(u16::MAX),
        },
        K::CallCustomerRinging(e) => E::CallCustomerRinging {
            call: CallId::new(&e.call),
            trunk: Arc::from(e.trunk.as_str()),
        },
        K::CallCustomerAnswered(e) => E::CallCustomerAnswered {
            call: CallId::new(&e.call),
            trunk: Arc::from(e.trunk.as_str()),
        },
        K::CallRouted(e) => E::CallRouted {
            call: CallId::new(&e.call),
            target: target_dom(e.target.as_ref())
                .ok_or(DecodeError::Missing("call_routed", "target"))?,
            reason: reason_dom(e.reason.as_ref()),
            ring: agents(&e.ring),
            timeout_ms: e.timeout_ms,
        },
        K::CallMenuRetry(e) => E::CallMenuRetry {
            call: CallId::new(&e.call),
            menu: MenuId::new(&e.menu),
            attempt: e.attempt,
            invalid: e.invalid.as_ref().and_then(|s| s.chars().next()),
        },
        K::CallOffered(e) => E::CallOffered {
            call: CallId::new(&e.call),
            agent: AgentId::new(&e.agent),
            devices: devices(&e.devices),
            ring_timeout_ms: e.ring_timeout_ms,
            queue: q(&e.queue),
            lease_until: e.lease_until_ms,
        },
        K::CallRinging(e) => E::CallRinging {
            call: CallId::new(&e.call),
            agent: AgentId::new(&e.agent),
        },
        K::CallTransferred(e) => E::CallTransferred {
            call: CallId::new(&e.call),
            agent: AgentId::new(&e.agent),
            target: target_dom(e.target.as_ref())
                .ok_or(DecodeError::Missing("call_transferred", "target"))?,
            wrapup_ms: e.wrapup_ms,
        },
        K::CallRecordingStarted(e) => E::CallRecordingStarted {
            call: CallId::new(&e.call),
            path: Arc::from(e.path.as_str()),
        },
        K::CallHeld(e) => E::CallHeld {
            call: CallId::new(&e.call),
            agent: AgentId::new(&e.agent),
            by: party_dom("call_held", e.by)?,
        },
        K::CallResumed(e) => E::CallResumed {
            call: CallId::new(&e.call),
            agent: AgentId::new(&e.agent),
            by: party_dom("call_resumed", e.by)?,
        },
        K::CallAnswered(e) => E::CallAnswered {
            call: CallId::new(&e.call),
            agent: AgentId::new(&e.agent),
            queue: q(&e.queue),
            cancelled: agents(&e.cancelled),
        },
        K::CallOfferFailed(e) => E::CallOfferFailed {
            call: CallId::new(&e.call),
            agent: AgentId::new(&e.agent),
            cause: failure_dom(e.cause),
            queue: q(&e.queue),
        },
        K::CallCallbackRequested(e) => E::CallCallbackRequested {
            call: CallId::new(&e.call),
            queue: QueueId::new(&e.queue),
        },
        K::CallEnded(e) => E::CallEnded {
            call: CallId::new(&e.call),
            cause: cause_dom(e.cause.as_ref()),
            agent: e.agent.as_ref().map(AgentId::new),
            wrapup_ms: e.wrapup_ms,
            queue: q(&e.queue),
            cancelled: agents(&e.cancelled),
            from_agent: e.from_agent.as_ref().map(AgentId::new),
        },
        K::TenantConfigured(_) => return Ok(None),
    }))
}

/// A domain event from an envelope (`Ok(None)` for non-aggregate events).
pub fn envelope_event(env: &pb::EventEnvelope) -> Result<Option<Event>, DecodeError> {
    let Some(ev) = env.event.as_ref() else {
        return Err(DecodeError::Missing("envelope", "event"));
    };
    Ok(event_dom(ev)?.map(|body| Event {
        at: env.time_ms.max(0) as u64,
        body,
    }))
}

/// The envelope of an event of the aggregate `(kind, id)` (`agent`, `queue`, `call`): the
/// value of its record in the log, keyed by `tenant`.
pub fn event_envelope(
    tenant: &str,
    (kind, id): (&str, &str),
    sequence: u64,
    plan_version: u64,
    traceparent: &str,
    event: &Event,
) -> pb::EventEnvelope {
    pb::EventEnvelope {
        tenant: tenant.to_owned(),
        aggregate_kind: kind.to_owned(),
        aggregate_id: id.to_owned(),
        sequence,
        time_ms: event.at as i64,
        plan_version,
        traceparent: traceparent.to_owned(),
        tracestate: String::new(),
        schema_version: callgrid_proto::EVENT_SCHEMA_VERSION,
        event: Some(event_pb(&event.body)),
        caused_by: String::new(),
    }
}

/// The envelope of a tenant configuration (`TenantConfigured`, version `version`).
pub fn configured_envelope(
    tenant: &str,
    version: u64,
    source_name: &str,
    yaml: &str,
    time_ms: u64,
) -> pb::EventEnvelope {
    pb::EventEnvelope {
        tenant: tenant.to_owned(),
        aggregate_kind: "tenant".into(),
        aggregate_id: tenant.to_owned(),
        sequence: version,
        time_ms: time_ms as i64,
        plan_version: version,
        traceparent: String::new(),
        tracestate: String::new(),
        schema_version: callgrid_proto::EVENT_SCHEMA_VERSION,
        event: Some(pb::Event {
            kind: Some(pb::event::Kind::TenantConfigured(pb::TenantConfigured {
                version,
                source_name: source_name.to_owned(),
                yaml: yaml.to_owned(),
            })),
        }),
        caused_by: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_round_trips_through_protobuf() {
        let a = AgentId::new("a");
        let c = CallId::new("c");
        let q = QueueId::new("200");
        let bodies = vec![
            EventBody::AgentLoggedIn {
                agent: a.clone(),
                devices: vec![DeviceId::new("d")],
                not_ready: Some(ReasonCode::new("break")),
            },
            EventBody::AgentOfferMissed {
                agent: a.clone(),
                call: c.clone(),
                cause: OfferFailure::Busy,
                missed_in_row: 2,
                blocked_until: 9,
                not_ready: true,
            },
            EventBody::QueueRoutingDecision {
                queue: q.clone(),
                call: c.clone(),
                strategy: Strategy::WeightedRandom,
                candidates: MemberSet::from_positions([0, 3, 9]),
                chosen: vec![a.clone()],
                lease_until: 5,
            },
            EventBody::QueueCallLeft {
                queue: q.clone(),
                call: c.clone(),
                reason: LeaveReason::Timeout,
                wait_ms: 3,
                overflow: Some(Target::Hangup(Arc::from("x"))),
                released: vec![a.clone()],
            },
            EventBody::CallRouted {
                call: c.clone(),
                target: Target::Menu(MenuId::new("100")),
                reason: RouteReason::MenuChoice('7'),
                ring: vec![],
                timeout_ms: 5000,
            },
            EventBody::CallEnded {
                call: c.clone(),
                cause: EndCause::Router(Arc::from("no_answer")),
                agent: Some(a.clone()),
                wrapup_ms: 10,
                queue: Some(q.clone()),
                cancelled: vec![a.clone()],
                from_agent: Some(AgentId::new("quang")),
            },
            EventBody::CallArrived {
                call: c.clone(),
                number: Arc::from("10000"),
                caller: Arc::from("10001"),
                plan_version: 3,
                record: false,
                from_agent: Some(a.clone()),
            },
            EventBody::AgentAnswered {
                agent: a.clone(),
                call: c.clone(),
                lease_until: 9,
                resume: Some(ReasonCode::new("lunch")),
            },
            EventBody::CallHeld {
                call: c.clone(),
                agent: a.clone(),
                by: Party::Agent,
            },
            EventBody::CallResumed {
                call: c.clone(),
                agent: a.clone(),
                by: Party::Caller,
            },
            EventBody::AgentReserved {
                agent: a.clone(),
                call: c.clone(),
                queue: None,
                devices: vec![DeviceId::new("d")],
                ring_timeout_ms: 20_000,
                lease_until: 30_000,
                resume: Some(ReasonCode::new("break")),
            },
            EventBody::CallOriginated {
                call: c.clone(),
                agent: None,
                dialled: Arc::from("0912 345 679"),
                destination: Arc::from("+84912345679"),
                class: Arc::from("mobile"),
                number: Arc::from("+842873000200"),
                choice: Arc::from("same_carrier"),
                trunks: vec![Arc::from("vnpt")],
                correlation: Some(Arc::from("contact-7")),
                plan_version: 3,
                record: false,
                carrier: Some(Arc::from("vinaphone")),
                campaign: Some(CampaignCall {
                    campaign: Arc::from("spring"),
                    contact: 7,
                    attempt: 2,
                    queue: QueueId::new("q"),
                    ring_timeout_ms: 20_000,
                }),
            },
            EventBody::CallOriginated {
                call: c.clone(),
                agent: Some(a.clone()),
                dialled: Arc::from("*1*0912 345 678"),
                destination: Arc::from("+84912345678"),
                class: Arc::from("mobile"),
                number: Arc::from("+842873000100"),
                choice: Arc::from("forced"),
                trunks: vec![Arc::from("viettel"), Arc::from("backup")],
                correlation: Some(Arc::from("crm-1")),
                plan_version: 3,
                record: true,
                carrier: Some(Arc::from("viettel")),
                campaign: None,
            },
            EventBody::CallRouted {
                call: c.clone(),
                target: Target::Agent(a.clone()),
                reason: RouteReason::ClickToCall,
                ring: vec![a.clone()],
                timeout_ms: 20_000,
            },
            EventBody::CallRouted {
                call: c.clone(),
                target: Target::Agent(a.clone()),
                reason: RouteReason::Dialled,
                ring: vec![a.clone()],
                timeout_ms: 20_000,
            },
            EventBody::CallRouted {
                call: c.clone(),
                target: Target::Extension(Arc::from("20002")),
                reason: RouteReason::Internal,
                ring: vec![a.clone()],
                timeout_ms: 20_000,
            },
            EventBody::CallRouted {
                call: c.clone(),
                target: Target::Queue(QueueId::new("q")),
                reason: RouteReason::Campaign,
                ring: vec![],
                timeout_ms: 0,
            },
            EventBody::CallTrunkFailed {
                call: c.clone(),
                trunk: Arc::from("viettel"),
                sip_code: 503,
            },
            EventBody::CallCustomerRinging {
                call: c.clone(),
                trunk: Arc::from("backup"),
            },
            EventBody::CallCustomerAnswered {
                call: c.clone(),
                trunk: Arc::from("backup"),
            },
            EventBody::CallEnded {
                call: c.clone(),
                cause: EndCause::Dial(Arc::from("busy")),
                agent: Some(a.clone()),
                wrapup_ms: 10,
                queue: None,
                cancelled: vec![],
                from_agent: None,
            },
            EventBody::AgentLeaseExpired {
                agent: a,
                call: c,
                kind: LeaseKind::Call,
            },
        ];
        for b in bodies {
            let back = event_dom(&event_pb(&b)).unwrap().unwrap();
            assert_eq!(back, b);
        }
    }

    #[test]
    fn a_hold_without_its_party_is_refused() {
        let held = pb::Event {
            kind: Some(pb::event::Kind::CallHeld(pb::CallHeld {
                call: "c".into(),
                agent: "a".into(),
                by: pb::Party::Unspecified as i32,
            })),
        };
        assert_eq!(
            event_dom(&held).unwrap_err().to_string(),
            "event call_held lacks field by"
        );
    }
}
