//! Bounds of every field the gRPC API takes (ISSUE: bad input gets a clear error and loses
//! nothing): over a bound the request is refused with `INVALID_ARGUMENT` naming the field,
//! before it reaches an actor or the log. The message sizes are bounded apart
//! (`MAX_MESSAGE`, `MAX_ADMIN_MESSAGE`).

use tonic::Status;

/// Longest id: tenant, agent, queue, reason code.
pub const MAX_ID: usize = 64;
/// Longest call id (a SIP Call-ID may be long).
pub const MAX_CALL_ID: usize = 256;
/// Longest phone number, caller id or transfer target.
pub const MAX_NUMBER: usize = 128;
/// A click-to-call's correlation id (a CRM record's id).
pub const MAX_CORRELATION: usize = 128;
/// Longest device URI.
pub const MAX_DEVICE: usize = 256;
/// Most devices an agent logs in with (A4: several phones, not thousands).
pub const MAX_DEVICES: usize = 16;
/// Most digits in one report.
pub const MAX_DIGITS: usize = 32;
/// Longest W3C traceparent (55 characters in version 00).
pub const MAX_TRACEPARENT: usize = 128;
/// Longest path of a recording.
pub const MAX_PATH: usize = 1024;
/// Longest tenant file.
pub const MAX_YAML: usize = 1 << 20;
/// Longest name of a tenant file.
pub const MAX_SOURCE_NAME: usize = 256;

/// A required id.
pub(crate) fn id(field: &str, v: &str) -> Result<(), Status> {
    if v.is_empty() {
        return Err(Status::invalid_argument(format!("{field} is required")));
    }
    text(field, v, MAX_ID)
}

/// An optional id.
pub(crate) fn optional_id(field: &str, v: &str) -> Result<(), Status> {
    text(field, v, MAX_ID)
}

/// Text of at most `max` bytes, without control characters.
pub(crate) fn text(field: &str, v: &str, max: usize) -> Result<(), Status> {
    if v.len() > max {
        return Err(Status::invalid_argument(format!(
            "{field} is longer than {max} bytes ({} bytes)",
            v.len()
        )));
    }
    if v.chars().any(char::is_control) {
        return Err(Status::invalid_argument(format!(
            "{field} holds control characters"
        )));
    }
    Ok(())
}

/// An agent's devices.
pub(crate) fn devices(devices: &[String]) -> Result<(), Status> {
    if devices.len() > MAX_DEVICES {
        return Err(Status::invalid_argument(format!(
            "devices: at most {MAX_DEVICES} per agent ({} given)",
            devices.len()
        )));
    }
    for d in devices {
        if d.trim().is_empty() {
            return Err(Status::invalid_argument("devices: a device is empty"));
        }
        text("devices", d, MAX_DEVICE)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_over_their_bounds_are_named() {
        assert!(id("agent", "ann").is_ok());
        let e = id("agent", &"a".repeat(65)).expect_err("too long");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().starts_with("agent is longer"));
        assert!(id("tenant", "").is_err());
        assert!(optional_id("reason", "").is_ok());
        assert!(text("caller", "a\nb", 10).is_err());
        let many: Vec<String> = (0..3000).map(|i| format!("sip:{i}@x")).collect();
        let e = devices(&many).expect_err("too many");
        assert!(e.message().starts_with("devices:"));
        assert!(devices(&["sip:a@b".into(), "x".repeat(257)]).is_err());
        assert!(devices(&["sip:a@b".into()]).is_ok());
    }
}
