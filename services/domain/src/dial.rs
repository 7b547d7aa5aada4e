//! Calling out (issue 18): the router's decisions for one outbound call, and what a SIP
//! result means for it. Pure, like the rest of the domain: the numbers crate does the
//! reading, this module puts its steps in the order of `callgrid_numbers`' documentation.

use std::sync::Arc;

use callgrid_numbers::{ChoiceReason, Dialled, OutboundNumber, Permit};

use crate::ids::{AgentId, QueueId};
use crate::rejection::Rejection;
use crate::setup::TenantSetup;

/// How long an outbound call's customer may ring before the edge gives up (`no_answer`).
pub const CUSTOMER_RING_TIMEOUT_MS: u64 = 60_000;

/// What the router decided for a call out, before anything is dialled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialDecision {
    /// What goes to the trunk: E.164 for a public number, the digits of a service number.
    pub destination: Arc<str>,
    /// The destination's class, by its configuration name.
    pub class: &'static str,
    /// The tenant's number presented (E.164); empty when none can be (an emergency call of
    /// a tenant without a carrier number).
    pub number: Arc<str>,
    /// Why that number.
    pub choice: &'static str,
    /// The trunks to try, in order.
    pub trunks: Vec<Arc<str>>,
    /// Recorded (the number's `record_outbound`, C4).
    pub record: bool,
    /// The carrier of the number presented, when it has one.
    pub carrier: Option<Arc<str>>,
}

/// [`decide`] for a number an agent's phone dialled that is nothing of the tenant's
/// ([`TenantSetup::internal`]): an internal number is then an extension nobody has.
pub fn decide_dialled(
    setup: &TenantSetup,
    agent: &AgentId,
    raw: &str,
) -> Result<DialDecision, Rejection> {
    decide(setup, agent, raw).map_err(|r| match r {
        Rejection::IllegalTransition { .. } => Rejection::UnknownExtension(raw.trim().to_owned()),
        r => r,
    })
}

/// The decisions for `agent` dialling `raw` (any written form, with a forced number's
/// `*code*` or short prefix): the forced number, the normal form and class, the class
/// policy, the blocklist, the caller number (forced, same carrier, fallback, first usable)
/// and its trunks in order. Each refusal names the number and why.
pub fn decide(setup: &TenantSetup, agent: &AgentId, raw: &str) -> Result<DialDecision, Rejection> {
    let out = &setup.outbound;
    let dialling = out
        .numbers
        .parse_dialled(raw, out.normalizer.internal_rule())?;
    let groups = setup.outbound_groups_of(agent);
    decide_for(
        setup,
        &groups,
        dialling.destination,
        dialling.forced,
        "click-to-call",
    )
}

/// The decisions for a campaign's call to `raw` (a contact's number) from the campaign whose
/// answered calls wait in `queue`: as [`decide`] for an agent of that queue, the caller number
/// the campaign's own (`number`, refused if that queue may not use it) or the adaptive choice.
/// A campaign never dials an emergency number, an internal number or a number the class
/// policy refuses.
pub fn decide_for_campaign(
    setup: &TenantSetup,
    queue: &QueueId,
    raw: &str,
    number: Option<&str>,
) -> Result<DialDecision, Rejection> {
    let out = &setup.outbound;
    let forced = match number {
        Some(n) => {
            let e164 = out.normalizer.normalize(n)?;
            Some(out.numbers.get(&e164).ok_or_else(|| {
                Rejection::from(callgrid_numbers::NumberError::NotPermitted {
                    number: n.to_owned(),
                    reason: "it is not one of the tenant's numbers".to_owned(),
                })
            })?)
        }
        None => None,
    };
    let d = decide_for(
        setup,
        &[queue.as_str()],
        raw.trim(),
        forced,
        "a campaign's call",
    )?;
    if d.choice == "emergency" {
        return Err(Rejection::IllegalTransition {
            what: "a campaign's call",
            state: format!("{} is an emergency number", d.destination),
        });
    }
    Ok(d)
}

/// The decisions for `raw` dialled by a member of `groups` (the caller number must be one
/// they may use), with `forced` the number to present if one is forced.
fn decide_for(
    setup: &TenantSetup,
    groups: &[&str],
    raw: &str,
    forced: Option<&OutboundNumber>,
    what: &'static str,
) -> Result<DialDecision, Rejection> {
    let out = &setup.outbound;
    let normalizer = &out.normalizer;
    let dialled = normalizer.dialled(raw)?;
    let class = normalizer.classify(&dialled);
    if let Dialled::Internal(digits) = &dialled {
        // an extension is the tenant's own: no trunk, no caller number (item 6)
        return Err(Rejection::IllegalTransition {
            what,
            state: format!(
                "{digits} is an internal number; internal calls are placed from the agent's phone"
            ),
        });
    }
    let permit = out.policy.check(&dialled, class)?;
    if let Some(entry) = out.blocklist.blocks_dialled(&dialled) {
        return Err(Rejection::Blocked {
            number: dialled.dial_string().to_owned(),
            entry: entry.written.clone(),
        });
    }
    let destination: Arc<str> = Arc::from(dialled.dial_string());
    let class_name = class.as_str();
    if let Permit::Emergency { trunk } = permit {
        // never refused: the emergency trunk, the number if the tenant has one to present
        let number = out.numbers.choose_for_emergency();
        let trunks: Vec<Arc<str>> = match trunk {
            Some(t) => vec![Arc::from(t)],
            None => number
                .map(|n| {
                    n.trunk_order()
                        .iter()
                        .map(|t| Arc::from(t.trunk.as_str()))
                        .collect()
                })
                .unwrap_or_default(),
        };
        return Ok(DialDecision {
            destination,
            class: class_name,
            number: number.map_or_else(|| Arc::from(""), |n| Arc::from(n.number.as_str())),
            choice: "emergency",
            trunks,
            record: number.is_some_and(|n| out.records(&n.number)),
            carrier: number
                .and_then(|n| n.carrier.as_ref())
                .map(|c| Arc::from(c.as_str())),
        });
    }
    let callee_carrier = match &dialled {
        Dialled::Public(n) => out.carriers.carrier_of(n),
        _ => None,
    };
    let choice = out.numbers.choose(groups, callee_carrier, forced)?;
    let number = choice.number;
    Ok(DialDecision {
        destination,
        class: class_name,
        number: Arc::from(number.number.as_str()),
        choice: match choice.reason {
            ChoiceReason::Forced => "forced",
            ChoiceReason::SameCarrier => "same_carrier",
            ChoiceReason::Fallback => "fallback",
            ChoiceReason::FirstUsable => "first_usable",
        },
        trunks: number
            .trunk_order()
            .iter()
            .map(|t| Arc::from(t.trunk.as_str()))
            .collect(),
        record: out.records(&number.number),
        carrier: number.carrier.as_ref().map(|c| Arc::from(c.as_str())),
    })
}

/// What the final SIP status of an outbound call's customer leg means for the call's
/// record (issue 18's map, docs/DECISIONS.md): 486 and 600 `busy`; 480, 408 and 487 (the
/// edge's ring timeout cancels the INVITE) `no_answer`; 603 `rejected`; 404, 484 and 604
/// `invalid_number`; 503 and any other failure after the last trunk `carrier_error`.
pub fn dial_result(sip_code: u16) -> &'static str {
    match sip_code {
        486 | 600 => "busy",
        480 | 408 | 487 => "no_answer",
        603 => "rejected",
        404 | 484 | 604 => "invalid_number",
        _ => "carrier_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_map_of_the_issue() {
        for (code, result) in [
            (486, "busy"),
            (600, "busy"),
            (480, "no_answer"),
            (408, "no_answer"),
            (487, "no_answer"),
            (603, "rejected"),
            (404, "invalid_number"),
            (484, "invalid_number"),
            (503, "carrier_error"),
            (500, "carrier_error"),
            (403, "carrier_error"),
        ] {
            assert_eq!(dial_result(code), result, "{code}");
        }
    }
}
