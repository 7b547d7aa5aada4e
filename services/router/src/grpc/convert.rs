//! The one place where the router's domain types meet its API's wire types: requests and
//! edge reports → domain commands, rejections and errors → gRPC status, instructions and
//! state → protobuf. Nothing outside the gRPC layer sees a protobuf type of the API; events ↔
//! protobuf is `callgrid-codec`, shared with the projector.

use callgrid_access::Denied;
use callgrid_codec::strs;
use callgrid_domain::{
    Agent, AgentCommand, AgentId, AgentState, Call, CallCommand, CallPhase, DeviceId, EndCause,
    Instruction, OfferFailure, Party, Queue, ReasonCode, Rejection,
};
use callgrid_proto::api::v1 as api;
use tonic::Status;

use super::limits;
use crate::actors::{Refusal, ToEdge};
use crate::tenant::Tenant;
use crate::RouterError;

/// The gRPC status of a refused command: the code says what kind of problem, the message
/// which one.
pub(super) fn status(r: &Rejection) -> tonic::Status {
    use tonic::Status;
    let msg = r.to_string();
    match r {
        Rejection::UnknownAgent(_)
        | Rejection::UnknownQueue(_)
        | Rejection::UnknownCall(_)
        | Rejection::UnknownNumber(_)
        | Rejection::UnknownTarget(_)
        | Rejection::UnknownExtension(_) => Status::not_found(msg),
        Rejection::UnknownReason(_)
        | Rejection::InvalidDigit(_)
        | Rejection::TooLarge { .. }
        | Rejection::DeviceNotAllowed(_) => Status::invalid_argument(msg),
        Rejection::CallExists(_) | Rejection::Duplicate(_) => Status::already_exists(msg),
        Rejection::IllegalTransition { .. }
        | Rejection::NotAvailable { .. }
        | Rejection::NotOffered { .. }
        | Rejection::NotWaiting { .. }
        | Rejection::CallEnded(_) => Status::failed_precondition(msg),
        Rejection::Blocked { .. } => Status::permission_denied(msg),
        Rejection::Number(n) => {
            use callgrid_domain::numbers::NumberError as N;
            match n {
                N::ClassRefused { .. } | N::NotPermitted { .. } => Status::permission_denied(msg),
                N::NoUsableNumber { .. } => Status::failed_precondition(msg),
                _ => Status::invalid_argument(msg),
            }
        }
    }
}

/// What a call's actor tells the edge, as protobuf.
pub(super) fn to_edge(call: &str, out: ToEdge) -> api::RouterInstruction {
    use api::router_instruction::Instruction as I;
    let instruction = match out {
        ToEdge::Do(i) => instruction_pb(&i),
        ToEdge::Result { seq, outcome } => {
            let (code, message) = match outcome {
                Ok(()) => (0, String::new()),
                Err(Refusal::Rejected(r)) => {
                    let st = status(&r);
                    (st.code() as i32, st.message().to_owned())
                }
                Err(Refusal::Malformed(m)) => (tonic::Code::InvalidArgument as i32, m),
            };
            I::Result(api::ReportResult { seq, code, message })
        }
    };
    api::RouterInstruction {
        call_id: call.to_owned(),
        instruction: Some(instruction),
    }
}

/// An edge instruction as protobuf.
fn instruction_pb(i: &Instruction) -> api::router_instruction::Instruction {
    use api::router_instruction::Instruction as I;
    match i {
        Instruction::Answer => I::Answer(api::Answer {}),
        Instruction::PlayHoldMusic { prompt } => I::PlayHoldMusic(api::PlayHoldMusic {
            prompt: prompt.to_string(),
        }),
        Instruction::CollectDigits {
            prompt,
            max_digits,
            timeout_ms,
        } => I::CollectDigits(api::CollectDigits {
            prompt: prompt.to_string(),
            max_digits: *max_digits,
            timeout_ms: *timeout_ms,
        }),
        Instruction::Ring {
            agent,
            devices,
            timeout_ms,
        } => I::Ring(api::Ring {
            agent: agent.to_string(),
            devices: strs(devices),
            timeout_ms: *timeout_ms,
        }),
        Instruction::CancelRing { agent } => I::CancelRing(api::CancelRing {
            agent: agent.to_string(),
        }),
        Instruction::Bridge { agent } => I::Bridge(api::Bridge {
            agent: agent.to_string(),
        }),
        Instruction::Record => I::Record(api::Record {}),
        Instruction::Announce {
            position,
            expected_wait_ms,
        } => I::Announce(api::Announce {
            position: *position,
            expected_wait_ms: expected_wait_ms.unwrap_or(0),
        }),
        Instruction::Hangup { cause } => I::Hangup(api::HangupCall {
            cause: cause.to_string(),
        }),
        Instruction::Dial {
            agent,
            destination,
            number,
            trunks,
            timeout_ms,
        } => I::Dial(api::Dial {
            agent: agent.as_ref().map(|a| a.to_string()).unwrap_or_default(),
            destination: destination.to_string(),
            number: number.to_string(),
            trunks: trunks.iter().map(|t| t.to_string()).collect(),
            timeout_ms: *timeout_ms,
        }),
    }
}

/// An access management error as a gRPC status.
pub(super) fn access_status(e: callgrid_access::AccessError) -> tonic::Status {
    use callgrid_access::{AccessError as E, Denied};
    use tonic::Status;
    match e {
        E::Denied(Denied::Unauthenticated(m)) => Status::unauthenticated(m),
        E::Denied(Denied::Forbidden(m)) => Status::permission_denied(m),
        E::Invalid(m) => Status::invalid_argument(m),
        E::NotFound(m) => Status::not_found(m),
        E::Exists(m) => Status::already_exists(m),
        E::Busy(m) => Status::resource_exhausted(m),
        E::Log(e) => Status::unavailable(e.to_string()),
    }
}

/// A refusal of the access gate as a gRPC status.
pub(super) fn denied(d: Denied) -> Status {
    match d {
        Denied::Unauthenticated(m) => Status::unauthenticated(m),
        Denied::Forbidden(m) => Status::permission_denied(m),
    }
}

/// Why a tenant file was not loaded, as a gRPC status; a caller who is not platform-wide
/// does not learn which tenant holds a number.
pub(super) fn load_error(e: RouterError, platform_wide: bool) -> Status {
    match e {
        RouterError::Config(c) => Status::invalid_argument(c.to_string()),
        RouterError::TooLarge { .. } | RouterError::Secret(_) => {
            Status::invalid_argument(e.to_string())
        }
        RouterError::NotDurable => Status::unavailable(e.to_string()),
        // the owner is another tenant's business
        RouterError::NumberTaken { number, .. } if !platform_wide => {
            Status::already_exists(format!("number {number} belongs to another tenant"))
        }
        RouterError::NumberTaken { .. } => Status::already_exists(e.to_string()),
        other => Status::unavailable(other.to_string()),
    }
}

// ------------------------------------------------------------------ requests → commands

/// An edge report (after the arrival) as call commands, or why it is malformed.
pub(super) fn report_commands(
    report: Option<api::edge_report::Report>,
) -> Result<Vec<CallCommand>, Status> {
    use api::edge_report::Report as R;
    let agent = |a: &str| limits::id("agent", a).map(|()| AgentId::new(a));
    Ok(match report {
        None => return Err(Status::invalid_argument("report is empty")),
        Some(R::Arrived(_)) | Some(R::Originated(_)) | Some(R::Dialled(_)) => {
            return Err(Status::invalid_argument(
                "arrived, originated and dialled may only be the first report",
            ))
        }
        Some(R::TrunkFailed(t)) => vec![CallCommand::TrunkFailed {
            trunk: trunk(&t.trunk)?,
            sip_code: sip_code(t.sip_code)?,
        }],
        Some(R::CustomerRinging(t)) => vec![CallCommand::CustomerRinging {
            trunk: trunk(&t.trunk)?,
        }],
        Some(R::CustomerAnswered(t)) => vec![CallCommand::CustomerAnswered {
            trunk: trunk(&t.trunk)?,
        }],
        Some(R::DialFailed(d)) => vec![CallCommand::DialFailed {
            trunk: if d.trunk.is_empty() {
                "".into()
            } else {
                trunk(&d.trunk)?
            },
            sip_code: sip_code(d.sip_code)?,
        }],
        Some(R::Ringing(r)) => vec![CallCommand::Ringing {
            agent: agent(&r.agent)?,
        }],
        Some(R::Answered(r)) => vec![CallCommand::Answered {
            agent: agent(&r.agent)?,
        }],
        Some(R::OfferFailed(r)) => vec![CallCommand::OfferFailed {
            agent: agent(&r.agent)?,
            cause: match api::FailureCause::try_from(r.cause)
                .unwrap_or(api::FailureCause::Unspecified)
            {
                api::FailureCause::Busy => OfferFailure::Busy,
                api::FailureCause::Rejected => OfferFailure::Rejected,
                api::FailureCause::Unreachable => OfferFailure::Unreachable,
                api::FailureCause::NoAnswer | api::FailureCause::Unspecified => {
                    OfferFailure::NoAnswer
                }
            },
        }],
        Some(R::Digits(d)) => {
            if d.digits.is_empty() {
                return Err(Status::invalid_argument("digits is empty"));
            }
            limits::text("digits", &d.digits, limits::MAX_DIGITS)?;
            d.digits
                .chars()
                .map(|digit| CallCommand::Digit { digit })
                .collect()
        }
        Some(R::CollectTimeout(_)) => vec![CallCommand::MenuTimeout],
        Some(R::Hangup(h)) => vec![CallCommand::Hangup {
            cause: if h.party == api::Party::Agent as i32 {
                EndCause::Agent
            } else {
                EndCause::Caller
            },
        }],
        Some(R::Callback(_)) => vec![CallCommand::RequestCallback],
        Some(R::Held(h)) => vec![CallCommand::Hold {
            by: party(h.party)?,
        }],
        Some(R::Resumed(h)) => vec![CallCommand::Resume {
            by: party(h.party)?,
        }],
        Some(R::Recording(r)) => {
            limits::text("path", &r.path, limits::MAX_PATH)?;
            vec![CallCommand::RecordingStarted {
                path: r.path.as_str().into(),
            }]
        }
        Some(R::Transfer(t)) => {
            if t.target.is_empty() {
                return Err(Status::invalid_argument("transfer target is required"));
            }
            limits::text("target", &t.target, limits::MAX_NUMBER)?;
            vec![CallCommand::Transfer {
                agent: agent(&t.agent)?,
                to: t.target.as_str().into(),
            }]
        }
    })
}

/// A trunk id of a customer report.
fn trunk(t: &str) -> Result<std::sync::Arc<str>, Status> {
    limits::id("trunk", t)?;
    Ok(t.into())
}

/// A final SIP status of a customer report: 300 to 699.
fn sip_code(code: u32) -> Result<u16, Status> {
    match u16::try_from(code) {
        Ok(c @ 300..=699) => Ok(c),
        _ => Err(Status::invalid_argument(format!(
            "sip_code {code} is not a final failure status (300-699)"
        ))),
    }
}

/// The side of a hold report; it must be named.
fn party(p: i32) -> Result<Party, Status> {
    match api::Party::try_from(p) {
        Ok(api::Party::Caller) => Ok(Party::Caller),
        Ok(api::Party::Agent) => Ok(Party::Agent),
        _ => Err(Status::invalid_argument(
            "hold and resume reports name the party (caller or agent)",
        )),
    }
}

/// A login request as the agent's command.
pub(super) fn login_command(r: &api::LoginRequest) -> Result<AgentCommand, Status> {
    limits::optional_id("not_ready_reason", &r.not_ready_reason)?;
    limits::devices(&r.devices)?;
    let not_ready = (!r.not_ready_reason.is_empty()).then(|| ReasonCode::new(&r.not_ready_reason));
    let devices = r.devices.iter().map(DeviceId::new).collect();
    Ok(AgentCommand::Login { devices, not_ready })
}

/// A state change request as the agent's command.
pub(super) fn state_command(
    state: Option<api::set_state_request::State>,
) -> Result<AgentCommand, Status> {
    use api::set_state_request::State;
    match state {
        Some(State::Available(true)) => Ok(AgentCommand::SetAvailable),
        Some(State::NotReadyReason(reason)) if !reason.is_empty() => {
            limits::id("not_ready_reason", &reason)?;
            Ok(AgentCommand::SetNotReady {
                reason: ReasonCode::new(reason),
            })
        }
        Some(State::NotReadyReason(_)) => Err(Status::invalid_argument(
            "not_ready_reason must name a reason code",
        )),
        Some(State::Available(false)) | None => Err(Status::invalid_argument(
            "state is required: available, or not_ready_reason",
        )),
    }
}

// ------------------------------------------------------------------ state → protobuf

/// An agent's status as the API shows it.
pub(super) fn agent_status(t: &Tenant, a: &Agent) -> api::AgentStatus {
    let setup = t.setup();
    api::AgentStatus {
        tenant: t.id.to_string(),
        agent: a.id.to_string(),
        state: a.state.name().to_string(),
        reason: match &a.state {
            AgentState::NotReady { reason } => reason.to_string(),
            _ => String::new(),
        },
        since_ms: a.since,
        call: a.state.call().map(|c| c.to_string()).unwrap_or_default(),
        calls: a.calls,
        talk_ms: a.talk_ms,
        missed_in_row: a.missed_in_row,
        devices: a.devices.iter().map(|d| d.to_string()).collect(),
        queues: setup
            .queues_of(&a.id)
            .iter()
            .map(|q| q.to_string())
            .collect(),
    }
}

/// A queue's status as the API shows it.
pub(super) fn queue_status(t: &Tenant, q: &Queue, now: u64) -> api::QueueStatus {
    let setup = t.setup();
    let qs = setup.queues.get(&q.id);
    let waiting: Vec<api::WaitingCall> = q
        .waiting
        .iter()
        .enumerate()
        .map(|(i, w)| api::WaitingCall {
            call: w.call.to_string(),
            position: i as u32 + 1,
            waited_ms: now.saturating_sub(w.joined_at),
            expected_wait_ms: q.expected_wait_ms(&w.call).unwrap_or(0),
            priority: w.priority,
            callback: w.callback,
            offered_to: w
                .offer
                .as_ref()
                .map(|o| o.offered.iter().map(|a| a.to_string()).collect())
                .unwrap_or_default(),
        })
        .collect();
    let members = qs.map_or(0, |qs| qs.members.len() as u32);
    let (logged_in, available) = qs.map_or((0, 0), |qs| {
        qs.members
            .iter()
            .fold((0, 0), |(l, a), m| match q.board.get(&m.agent) {
                Some(v) => (l + u32::from(v.logged_in), a + u32::from(v.available)),
                None => (l, a),
            })
    });
    api::QueueStatus {
        tenant: t.id.to_string(),
        queue: q.id.to_string(),
        name: qs.map(|q| q.name.to_string()).unwrap_or_default(),
        strategy: qs
            .map(|q| q.strategy.name().to_string())
            .unwrap_or_default(),
        longest_wait_ms: waiting.iter().map(|w| w.waited_ms).max().unwrap_or(0),
        waiting,
        members,
        logged_in,
        available,
        answered: q.answered,
    }
}

/// A call's status as the API shows it.
pub(super) fn call_status(t: &Tenant, c: &Call) -> api::CallStatus {
    api::CallStatus {
        tenant: t.id.to_string(),
        call: c.id.to_string(),
        phase: c.phase.name().to_string(),
        number: c.number.to_string(),
        caller: c.caller.to_string(),
        queue: match &c.phase {
            CallPhase::Queued { queue } => queue.to_string(),
            _ => c
                .last_queue
                .as_ref()
                .map(|q| q.to_string())
                .unwrap_or_default(),
        },
        agent: c.agent().map(|a| a.to_string()).unwrap_or_default(),
        arrived_ms: c.arrived_at,
        answered_ms: c.answered_at.unwrap_or(0),
        plan_version: c.plan_version,
        offered_to: c.offers.iter().map(|o| o.agent.to_string()).collect(),
        held_by: c.held_by.iter().map(|p| p.name().to_owned()).collect(),
    }
}

/// A tenant's summary as the API shows it.
pub(super) fn tenant_summary(t: &Tenant) -> api::TenantSummary {
    let s = t.setup();
    api::TenantSummary {
        tenant: t.id.to_string(),
        version: s.version,
        agents: s.agents.len() as u32,
        queues: s.queues.len() as u32,
        calls: t.call_count() as u32,
    }
}

/// A tenant's configuration for the SIP edge.
pub(super) fn tenant_config(c: crate::TenantConfig) -> api::TenantConfig {
    api::TenantConfig {
        tenant: c.tenant.to_string(),
        version: c.version,
        yaml: c.yaml,
    }
}
