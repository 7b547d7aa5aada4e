//! The one place where the router's domain types meet its API's wire types: rejections →
//! gRPC status, instructions → protobuf. Events ↔ protobuf is `callgrid-codec`, shared with
//! the projector.

use callgrid_codec::strs;
pub use callgrid_codec::{envelope_event, event_dom, event_pb, target_pb, DecodeError};
use callgrid_domain::{CallId, Instruction, Rejection};
use callgrid_proto::api::v1 as api;

/// The gRPC status of a refused command: the code says what kind of problem, the message
/// which one.
pub fn status(r: &Rejection) -> tonic::Status {
    use tonic::Status;
    let msg = r.to_string();
    match r {
        Rejection::UnknownAgent(_)
        | Rejection::UnknownQueue(_)
        | Rejection::UnknownCall(_)
        | Rejection::UnknownNumber(_)
        | Rejection::UnknownTarget(_) => Status::not_found(msg),
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
    }
}

/// An edge instruction as protobuf.
pub fn instruction_pb(call: &CallId, i: &Instruction) -> api::RouterInstruction {
    use api::router_instruction::Instruction as I;
    let instruction = match i {
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
    };
    api::RouterInstruction {
        call_id: call.to_string(),
        instruction: Some(instruction),
    }
}

/// An access management error as a gRPC status.
pub fn access_status(e: callgrid_access::AccessError) -> tonic::Status {
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
