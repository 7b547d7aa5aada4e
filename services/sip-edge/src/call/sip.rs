//! The SIP details of a call that need no state: the number dialled, Reason headers, DTMF
//! in INFO bodies, Refer-To targets, and the codes between SIP and the router's causes.

use callgrid_proto::api::v1 as api;
use rsipstack::dialog::dialog::TerminatedReason;
use rsipstack::sip::headers::untyped::ToTypedHeader;
use rsipstack::sip::{Header, HeadersExt, Request};

use crate::digest::percent_decode;

/// The number dialled: the Request-URI's user part, else the To header's.
pub(crate) fn dialled_number(req: &Request) -> String {
    let from_uri = req.uri.user().map(str::to_owned);
    from_uri
        .or_else(|| {
            req.to_header()
                .ok()
                .and_then(|t| t.typed().ok())
                .and_then(|t| t.uri.user().map(str::to_owned))
        })
        .unwrap_or_default()
}

/// The value of a `Reason` header (RFC 3326).
pub(crate) fn reason_value(code: u16, text: &str) -> String {
    format!("SIP;cause={code};text=\"{}\"", text.replace('"', "'"))
}

/// A `Reason` header (RFC 3326).
pub(crate) fn reason(code: u16, text: &str) -> Header {
    Header::Reason(reason_value(code, text).into())
}

/// What an INFO request carries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InfoDigit {
    /// A DTMF key: `0-9`, `*` or `#`.
    Digit(char),
    /// Neither application/dtmf-relay nor application/dtmf: 415.
    Unsupported,
    /// A DTMF body without a key: 400.
    Bad,
}

/// The key of an INFO request's DTMF body (application/dtmf-relay `Signal=5`, or
/// application/dtmf `5`).
pub(crate) fn info_digit(req: &Request) -> InfoDigit {
    let content_type = req
        .headers
        .iter()
        .find_map(|h| match h {
            Header::ContentType(c) => Some(c.value().to_ascii_lowercase()),
            _ => None,
        })
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&req.body);
    let digit = if content_type.starts_with("application/dtmf-relay") {
        body.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Signal=")
                    .or_else(|| l.trim().strip_prefix("Signal ="))
            })
            .and_then(|s| s.trim().chars().next())
    } else if content_type.starts_with("application/dtmf") {
        body.trim().chars().next()
    } else {
        return InfoDigit::Unsupported;
    };
    match digit {
        Some(d) if d.is_ascii_digit() || d == '*' || d == '#' => InfoDigit::Digit(d),
        _ => InfoDigit::Bad,
    }
}

/// Why a Refer-To cannot be followed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReferProblem {
    Malformed,
    /// It names a dialog to replace (attended transfer, RFC 3891).
    Attended,
}

/// The target of a blind transfer: the user part of the Refer-To URI (`<sip:201@host>` →
/// `201`), percent-decoded; the router resolves it (extension, queue, agent, number...).
pub(crate) fn refer_target(value: &str) -> Result<String, ReferProblem> {
    let v = value.trim();
    let uri = match (v.find('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v.split(';').next().unwrap_or_default(),
    };
    if uri.to_ascii_lowercase().contains("replaces=") {
        return Err(ReferProblem::Attended);
    }
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .or_else(|| uri.strip_prefix("tel:"))
        .ok_or(ReferProblem::Malformed)?;
    let user = match rest.split_once('@') {
        Some((user, _)) => user,
        None if uri.starts_with("tel:") => rest,
        None => return Err(ReferProblem::Malformed),
    };
    let user = user.split([';', '?', ':']).next().unwrap_or_default();
    let decoded = percent_decode(user);
    if decoded.is_empty() {
        return Err(ReferProblem::Malformed);
    }
    Ok(decoded)
}

/// The SIP code a dialog ended with (0: a BYE).
pub(crate) fn terminated_code(why: &TerminatedReason) -> u16 {
    match why {
        TerminatedReason::Timeout => 408,
        TerminatedReason::UasBusy | TerminatedReason::UacBusy => 486,
        TerminatedReason::UasDecline => 603,
        TerminatedReason::UasOther(c)
        | TerminatedReason::UacOther(c)
        | TerminatedReason::ProxyError(c) => u16::from(c.clone()),
        TerminatedReason::ProxyAuthRequired => 407,
        TerminatedReason::UacCancel => 487,
        TerminatedReason::UacBye | TerminatedReason::UasBye => 0,
    }
}

/// What the router hears when every device of an agent failed: busy wins, then a decline,
/// then no answer; anything else is "unreachable".
pub(crate) fn failure_of(codes: &[u16]) -> (api::FailureCause, u16) {
    use api::FailureCause as F;
    let has = |c: u16| codes.contains(&c);
    if has(486) || has(600) {
        (F::Busy, 486)
    } else if has(603) {
        (F::Rejected, 603)
    } else if has(480) || has(408) || has(487) {
        (F::NoAnswer, if has(480) { 480 } else { 408 })
    } else {
        (F::Unreachable, codes.first().copied().unwrap_or(500))
    }
}

/// The SIP status for a router hang-up cause when the caller was never answered.
pub(crate) fn hangup_code(cause: &str) -> u16 {
    match cause {
        "queue_full" | "busy" => 486,
        // the caller is on the tenant's blocklist (R7)
        "blocked" => 603,
        "closed" | "no_agents" | "queue_timeout" | "no_answer" => 480,
        "invalid_input" | "no_input" => 404,
        "edge_lost" => 500,
        // a call out an agent's phone dialled ends as the customer's leg did (the dial
        // results of docs/DECISIONS.md)
        "rejected" => 603,
        "invalid_number" => 404,
        "carrier_error" => 502,
        _ => 480,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_wins_over_no_answer_and_decline() {
        assert_eq!(failure_of(&[408, 486]), (api::FailureCause::Busy, 486));
        assert_eq!(failure_of(&[603, 480]), (api::FailureCause::Rejected, 603));
        assert_eq!(failure_of(&[480]), (api::FailureCause::NoAnswer, 480));
        assert_eq!(failure_of(&[408]), (api::FailureCause::NoAnswer, 408));
        assert_eq!(failure_of(&[503]), (api::FailureCause::Unreachable, 503));
    }

    #[test]
    fn refer_to_names_the_transfer_target() {
        assert_eq!(refer_target("<sip:201@10.0.0.1:5060>"), Ok("201".into()));
        assert_eq!(
            refer_target("\"Sales\" <sip:%2B15550000200@edge;user=phone>;x=1"),
            Ok("+15550000200".into())
        );
        assert_eq!(refer_target("sip:10003@edge"), Ok("10003".into()));
        assert_eq!(
            refer_target("<tel:+15550000200>"),
            Ok("+15550000200".into())
        );
        assert_eq!(
            refer_target("<sip:ann@edge?Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2>"),
            Err(ReferProblem::Attended)
        );
        assert_eq!(refer_target("<http://x>"), Err(ReferProblem::Malformed));
        assert_eq!(refer_target("<sip:@edge>"), Err(ReferProblem::Malformed));
        assert_eq!(refer_target(""), Err(ReferProblem::Malformed));
    }
}
