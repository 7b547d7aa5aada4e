//! Which of a tenant's numbers an outbound call goes out with (N2, N4, N5, N7), and in which
//! order its trunks are tried.
//!
//! The inputs are this crate's own small structs, not the configuration crate's types, so
//! the crate stays a leaf that the router's domain and the SIP edge can both use.

use std::collections::HashMap;

use crate::carrier::CarrierId;
use crate::dialled::InternalRule;
use crate::e164::E164;
use crate::error::NumberError;

/// Kind of a hotline number (N1).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum NumberKind {
    /// A carrier's number: inbound and outbound.
    #[default]
    Carrier,
    /// Inbound and internal calls only; never calls out.
    Virtual,
}

/// A trunk a number may call out on (N3, N5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkChoice {
    /// The trunk's id in the tenant's configuration.
    pub trunk: String,
    /// Lower first; trunks with a priority come before those without.
    pub priority: Option<u32>,
    /// Price of a minute in thousandths of the tenant's currency unit; among trunks of one
    /// priority (or none), cheaper first, unknown last.
    pub cost_per_minute_milli: Option<u64>,
}

impl TrunkChoice {
    /// A trunk with neither priority nor cost.
    pub fn new(trunk: impl Into<String>) -> Self {
        Self {
            trunk: trunk.into(),
            priority: None,
            cost_per_minute_milli: None,
        }
    }
}

/// One of the tenant's hotline numbers, as outbound calling sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundNumber {
    /// The number, presented as the caller.
    pub number: E164,
    /// Carrier or virtual; virtual numbers never call out.
    pub kind: NumberKind,
    /// Outbound calls allowed at all (N2 "allow outbound"). Default true.
    pub outbound: bool,
    /// The carrier the number belongs to, for the adaptive choice (N4).
    pub carrier: Option<CarrierId>,
    /// The callees' carriers this number may call (N5); `None`: every callee.
    pub callee_carriers: Option<Vec<CarrierId>>,
    /// The agent groups that may call out with it (N2); `None`: every agent.
    pub allowed_groups: Option<Vec<String>>,
    /// Digits that force this number: `*code*destination` (N7).
    pub short_code: Option<String>,
    /// Digits dialled before the destination that force this number, e.g. `801` (N7).
    pub short_prefix: Option<String>,
    /// The trunks it may call out on.
    pub trunks: Vec<TrunkChoice>,
}

impl OutboundNumber {
    /// A number of this kind, outbound on, usable by every agent towards every callee,
    /// without carrier, short code, short prefix or trunk.
    pub fn new(number: E164, kind: NumberKind) -> Self {
        Self {
            number,
            kind,
            outbound: true,
            carrier: None,
            callee_carriers: None,
            allowed_groups: None,
            short_code: None,
            short_prefix: None,
            trunks: Vec::new(),
        }
    }

    /// The trunks in the order to try them (N5): by priority, lower first, trunks without
    /// a priority after every trunk with one; within one priority (or none) the cheapest per
    /// minute first, unknown cost last; ties in configured order.
    pub fn trunk_order(&self) -> Vec<&TrunkChoice> {
        let mut order: Vec<&TrunkChoice> = self.trunks.iter().collect();
        // a stable sort: equal keys keep the configured order
        order.sort_by_key(|t| {
            (
                t.priority.is_none(),
                t.priority,
                t.cost_per_minute_milli.is_none(),
                t.cost_per_minute_milli,
            )
        });
        order
    }

    /// Why an agent of `groups` may not call `callee_carrier` with this number, if not.
    fn refusal<G: AsRef<str>>(
        &self,
        groups: &[G],
        callee_carrier: Option<&CarrierId>,
    ) -> Option<String> {
        if self.kind == NumberKind::Virtual {
            return Some("it is a virtual number, which cannot call out".to_owned());
        }
        if !self.outbound {
            return Some("outbound calls are switched off for it".to_owned());
        }
        if self.trunks.is_empty() {
            return Some("it has no trunk to call out on".to_owned());
        }
        if let Some(allowed) = &self.allowed_groups {
            if !groups
                .iter()
                .any(|g| allowed.iter().any(|a| a == g.as_ref()))
            {
                return Some(format!("it is for agents of {} only", allowed.join(", ")));
            }
        }
        if let Some(callees) = &self.callee_carriers {
            if !callee_carrier.is_some_and(|c| callees.contains(c)) {
                let list: Vec<&str> = callees.iter().map(CarrierId::as_str).collect();
                return Some(format!(
                    "it calls {} only, and the callee's carrier is {}",
                    list.join(", "),
                    callee_carrier.map_or("unknown", CarrierId::as_str)
                ));
            }
        }
        None
    }
}

/// A dial string with its forced number taken off (N7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dialling<'n, 'r> {
    /// The number the agent forced, if any.
    pub forced: Option<&'n OutboundNumber>,
    /// What is left to dial, as written (normalise it with [`crate::Normalizer::dialled`]).
    pub destination: &'r str,
}

/// Why a number was chosen (kept with the call, R10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChoiceReason {
    /// The agent forced it.
    Forced,
    /// It is on the callee's carrier (N4).
    SameCarrier,
    /// The tenant's fallback number.
    Fallback,
    /// The first usable number in configured order.
    FirstUsable,
}

/// The number an outbound call goes out with, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice<'n> {
    /// The number.
    pub number: &'n OutboundNumber,
    /// Why this one.
    pub reason: ChoiceReason,
}

/// A tenant's numbers for outbound calls, checked for contradictions, in configured order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundNumbers {
    numbers: Vec<OutboundNumber>,
    fallback: Option<usize>,
}

impl OutboundNumbers {
    /// Checks the numbers: each listed once; short codes digits (1 to 6) and unique; short
    /// prefixes digits (2 to 6), not starting with 0 or 1 (how destinations and service
    /// numbers start), none the beginning of another; no short code or prefix on a virtual
    /// number; group and carrier lists not empty (leave them out to allow all); trunks named
    /// once each; the fallback one of the numbers and a carrier number. Errors name the
    /// field, e.g. `numbers[2].short_prefix`.
    pub fn new(numbers: Vec<OutboundNumber>, fallback: Option<&E164>) -> Result<Self, NumberError> {
        let err = |field: String, reason: String| NumberError::NumbersConfig { field, reason };
        let mut seen_number: HashMap<&E164, usize> = HashMap::new();
        let mut seen_code: HashMap<&str, usize> = HashMap::new();
        let mut prefixes: Vec<(&str, usize)> = Vec::new();
        for (i, n) in numbers.iter().enumerate() {
            let field = |name: &str| format!("numbers[{i}].{name}");
            if let Some(first) = seen_number.insert(&n.number, i) {
                return Err(err(
                    field("number"),
                    format!("{} is listed already, as numbers[{first}]", n.number),
                ));
            }
            if n.kind == NumberKind::Virtual && (n.short_code.is_some() || n.short_prefix.is_some())
            {
                let name = if n.short_code.is_some() {
                    "short_code"
                } else {
                    "short_prefix"
                };
                return Err(err(
                    field(name),
                    format!(
                        "{} is virtual and cannot call out, so nothing can force it",
                        n.number
                    ),
                ));
            }
            if let Some(code) = &n.short_code {
                if code.is_empty() || code.len() > 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err(
                        field("short_code"),
                        format!("{code:?} is not 1 to 6 digits"),
                    ));
                }
                if let Some(first) = seen_code.insert(code, i) {
                    return Err(err(
                        field("short_code"),
                        format!("{code} is numbers[{first}]'s short code already"),
                    ));
                }
            }
            if let Some(prefix) = &n.short_prefix {
                if prefix.len() < 2
                    || prefix.len() > 6
                    || !prefix.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(err(
                        field("short_prefix"),
                        format!("{prefix:?} is not 2 to 6 digits"),
                    ));
                }
                if prefix.starts_with(['0', '1']) {
                    return Err(err(
                        field("short_prefix"),
                        format!(
                            "{prefix} starts with {}, as destinations do (0: national numbers, \
                             1: service and emergency numbers)",
                            &prefix[..1]
                        ),
                    ));
                }
                if let Some((other, j)) = prefixes.iter().find(|(other, _)| {
                    other.starts_with(prefix.as_str()) || prefix.starts_with(other)
                }) {
                    return Err(err(
                        field("short_prefix"),
                        format!("{prefix} and numbers[{j}]'s {other} cannot be told apart"),
                    ));
                }
                prefixes.push((prefix, i));
            }
            if n.allowed_groups.as_ref().is_some_and(Vec::is_empty) {
                return Err(err(
                    field("allowed_groups"),
                    "an empty list allows no agent; leave it out to allow every agent".to_owned(),
                ));
            }
            if n.callee_carriers.as_ref().is_some_and(Vec::is_empty) {
                return Err(err(
                    field("callee_carriers"),
                    "an empty list allows no callee; leave it out to allow every carrier"
                        .to_owned(),
                ));
            }
            for (k, t) in n.trunks.iter().enumerate() {
                if t.trunk.is_empty() {
                    return Err(err(
                        field(&format!("trunks[{k}].trunk")),
                        "empty".to_owned(),
                    ));
                }
                if let Some(first) = n.trunks[..k].iter().position(|u| u.trunk == t.trunk) {
                    return Err(err(
                        field(&format!("trunks[{k}].trunk")),
                        format!("{} is trunks[{first}] already", t.trunk),
                    ));
                }
            }
        }
        let fallback = match fallback {
            None => None,
            Some(f) => {
                let Some(&i) = seen_number.get(f) else {
                    return Err(err(
                        "fallback".to_owned(),
                        format!("{f} is not one of the numbers"),
                    ));
                };
                if numbers[i].kind == NumberKind::Virtual {
                    return Err(err(
                        "fallback".to_owned(),
                        format!("{f} is virtual and cannot call out"),
                    ));
                }
                Some(i)
            }
        };
        Ok(Self { numbers, fallback })
    }

    /// The numbers, in configured order.
    pub fn numbers(&self) -> &[OutboundNumber] {
        &self.numbers
    }

    /// The fallback number, if configured.
    pub fn fallback(&self) -> Option<&OutboundNumber> {
        self.fallback.map(|i| &self.numbers[i])
    }

    /// The entry for `number`.
    pub fn get(&self, number: &E164) -> Option<&OutboundNumber> {
        self.numbers.iter().find(|n| &n.number == number)
    }

    /// Takes a forced number off a dial string (N7): `*code*destination` forces the number
    /// with that short code; `prefix` + destination (`8010912345678`) the number with that
    /// short prefix, unless the whole string is an internal number by `internal` (an
    /// extension `80123` stays an extension, as an exact match beats a pattern in a PBX's
    /// dial plan). Anything else is not forced and is returned whole (trimmed).
    ///
    /// Only the form is checked here: whether the agent may use the forced number is
    /// [`OutboundNumbers::choose`]'s question.
    pub fn parse_dialled<'r>(
        &self,
        raw: &'r str,
        internal: &InternalRule,
    ) -> Result<Dialling<'_, 'r>, NumberError> {
        let text = raw.trim();
        let malformed = |reason: &str| NumberError::MalformedDialString {
            dialled: raw.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(after) = text.strip_prefix('*') {
            let Some((code, destination)) = after.split_once('*') else {
                return Err(malformed("a forced number is *code*destination"));
            };
            if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed("the code between the stars is digits"));
            }
            let destination = destination.trim();
            if destination.is_empty() {
                return Err(malformed("nothing to dial after the code"));
            }
            let forced = self
                .numbers
                .iter()
                .find(|n| n.short_code.as_deref() == Some(code))
                .ok_or_else(|| NumberError::UnknownShortCode {
                    code: code.to_owned(),
                    dialled: raw.to_owned(),
                })?;
            return Ok(Dialling {
                forced: Some(forced),
                destination,
            });
        }
        let unforced = Dialling {
            forced: None,
            destination: text,
        };
        if internal.matches(text) {
            return Ok(unforced);
        }
        for n in &self.numbers {
            let Some(prefix) = n.short_prefix.as_deref() else {
                continue;
            };
            if let Some(rest) = text.strip_prefix(prefix) {
                let destination = rest.trim_start_matches([' ', '-', '.']);
                if !destination.is_empty() {
                    return Ok(Dialling {
                        forced: Some(n),
                        destination,
                    });
                }
            }
        }
        Ok(unforced)
    }

    /// The number an agent of `agent_groups` calls out with, towards a callee on
    /// `callee_carrier` (from [`crate::CarrierTable::carrier_of`]; `None` when unknown).
    ///
    /// A number is usable when it is a carrier number with outbound on and at least one
    /// trunk, the agent is in one of its groups (if it lists any) and it may call the
    /// callee's carrier (if it lists any). A forced number must be usable, or the answer is
    /// [`NumberError::NotPermitted`] naming it. Otherwise, adaptively (N4): the first usable
    /// number on the callee's carrier, else the fallback if usable, else the first usable
    /// number, all in configured order; none usable is [`NumberError::NoUsableNumber`] with
    /// each number's reason.
    pub fn choose<G: AsRef<str>>(
        &self,
        agent_groups: &[G],
        callee_carrier: Option<&CarrierId>,
        forced: Option<&OutboundNumber>,
    ) -> Result<Choice<'_>, NumberError> {
        if let Some(forced) = forced {
            let Some(number) = self.get(&forced.number) else {
                return Err(NumberError::NotPermitted {
                    number: forced.number.to_string(),
                    reason: "it is not one of the tenant's numbers".to_owned(),
                });
            };
            return match number.refusal(agent_groups, callee_carrier) {
                None => Ok(Choice {
                    number,
                    reason: ChoiceReason::Forced,
                }),
                Some(reason) => Err(NumberError::NotPermitted {
                    number: number.number.to_string(),
                    reason,
                }),
            };
        }
        let usable = |n: &&OutboundNumber| n.refusal(agent_groups, callee_carrier).is_none();
        let choice = |number, reason| Ok(Choice { number, reason });
        if let Some(callee) = callee_carrier {
            if let Some(n) = self
                .numbers
                .iter()
                .filter(usable)
                .find(|n| n.carrier.as_ref() == Some(callee))
            {
                return choice(n, ChoiceReason::SameCarrier);
            }
        }
        if let Some(n) = self.fallback().filter(usable) {
            return choice(n, ChoiceReason::Fallback);
        }
        if let Some(n) = self.numbers.iter().find(usable) {
            return choice(n, ChoiceReason::FirstUsable);
        }
        let reason = if self.numbers.is_empty() {
            "the tenant has no numbers".to_owned()
        } else {
            let each: Vec<String> = self
                .numbers
                .iter()
                .filter_map(|n| {
                    n.refusal(agent_groups, callee_carrier)
                        .map(|r| format!("{}: {r}", n.number))
                })
                .collect();
            each.join("; ")
        };
        Err(NumberError::NoUsableNumber { reason })
    }

    /// The caller number of an emergency call, which is never refused: the fallback if it
    /// is a carrier number, else the first carrier number, whatever its outbound switch,
    /// groups, callee carriers or trunks (the call goes to the policy's emergency trunk).
    /// `None` if the tenant has no carrier number: the trunk's own identity is presented.
    pub fn choose_for_emergency(&self) -> Option<&OutboundNumber> {
        self.fallback()
            .into_iter()
            .chain(&self.numbers)
            .find(|n| n.kind == NumberKind::Carrier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e164(s: &str) -> E164 {
        s.parse().unwrap()
    }

    fn carrier(id: &str) -> CarrierId {
        CarrierId::new(id).unwrap()
    }

    /// A carrier number on `carrier` with one trunk.
    fn number(n: &str, carrier_id: Option<&str>) -> OutboundNumber {
        OutboundNumber {
            carrier: carrier_id.map(carrier),
            trunks: vec![TrunkChoice::new(format!("trunk-{n}"))],
            ..OutboundNumber::new(e164(n), NumberKind::Carrier)
        }
    }

    const VIETTEL: &str = "+842471000001";
    const VINA: &str = "+842471000002";
    const MOBI: &str = "+842471000003";
    const VIRTUAL: &str = "+842471000004";

    fn tenant(fallback: Option<&str>) -> OutboundNumbers {
        let mut numbers = vec![
            number(VIETTEL, Some("viettel")),
            number(VINA, Some("vinaphone")),
            number(MOBI, Some("mobifone")),
            OutboundNumber::new(e164(VIRTUAL), NumberKind::Virtual),
        ];
        numbers[0].short_code = Some("1".into());
        numbers[0].short_prefix = Some("801".into());
        numbers[1].short_code = Some("123".into());
        numbers[1].short_prefix = Some("802".into());
        numbers[2].short_code = Some("3".into());
        numbers[2].allowed_groups = Some(vec!["sales".into(), "vip".into()]);
        OutboundNumbers::new(numbers, fallback.map(e164).as_ref()).unwrap()
    }

    fn chosen(
        t: &OutboundNumbers,
        groups: &[&str],
        callee: Option<&str>,
        forced: Option<&OutboundNumber>,
    ) -> Result<(String, ChoiceReason), String> {
        let callee = callee.map(carrier);
        t.choose(groups, callee.as_ref(), forced)
            .map(|c| (c.number.number.to_string(), c.reason))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn adaptive_choice_prefers_the_callees_carrier() {
        let t = tenant(Some(VINA));
        assert_eq!(
            chosen(&t, &["support"], Some("viettel"), None),
            Ok((VIETTEL.into(), ChoiceReason::SameCarrier))
        );
        assert_eq!(
            chosen(&t, &["support"], Some("vinaphone"), None),
            Ok((VINA.into(), ChoiceReason::SameCarrier))
        );
    }

    #[test]
    fn without_a_number_on_the_callees_carrier_the_fallback_then_the_first() {
        let t = tenant(Some(VINA));
        // gmobile: no number of the tenant; unknown carrier (a fixed line)
        assert_eq!(
            chosen(&t, &["support"], Some("gmobile"), None),
            Ok((VINA.into(), ChoiceReason::Fallback))
        );
        assert_eq!(
            chosen(&t, &["support"], None, None),
            Ok((VINA.into(), ChoiceReason::Fallback))
        );
        let no_fallback = tenant(None);
        assert_eq!(
            chosen(&no_fallback, &["support"], Some("gmobile"), None),
            Ok((VIETTEL.into(), ChoiceReason::FirstUsable))
        );
    }

    #[test]
    fn a_number_limited_to_groups_serves_only_their_agents() {
        let t = tenant(None);
        // mobifone's number is for sales and vip: a support agent gets another one
        assert_eq!(
            chosen(&t, &["support"], Some("mobifone"), None),
            Ok((VIETTEL.into(), ChoiceReason::FirstUsable))
        );
        assert_eq!(
            chosen(&t, &["support", "vip"], Some("mobifone"), None),
            Ok((MOBI.into(), ChoiceReason::SameCarrier))
        );
        // an agent in no group at all
        assert_eq!(
            chosen(&t, &[], Some("mobifone"), None),
            Ok((VIETTEL.into(), ChoiceReason::FirstUsable))
        );
    }

    #[test]
    fn the_fallback_is_skipped_when_the_agent_may_not_use_it() {
        let t = tenant(Some(MOBI));
        assert_eq!(
            chosen(&t, &["support"], None, None),
            Ok((VIETTEL.into(), ChoiceReason::FirstUsable))
        );
        assert_eq!(
            chosen(&t, &["sales"], None, None),
            Ok((MOBI.into(), ChoiceReason::Fallback))
        );
    }

    #[test]
    fn virtual_numbers_never_call_out() {
        let mut numbers = vec![OutboundNumber::new(e164(VIRTUAL), NumberKind::Virtual)];
        numbers[0].carrier = Some(carrier("viettel"));
        numbers[0].trunks = vec![TrunkChoice::new("t")];
        let t = OutboundNumbers::new(numbers.clone(), None).unwrap();
        assert_eq!(
            chosen(&t, &["support"], Some("viettel"), None),
            Err(format!(
                "no number can call out for this agent: {VIRTUAL}: it is a virtual number, \
                 which cannot call out"
            ))
        );
        assert_eq!(
            chosen(&t, &["support"], None, Some(&numbers[0])),
            Err(format!(
                "number {VIRTUAL} may not be used: it is a virtual number, which cannot call out"
            ))
        );
        assert_eq!(t.choose_for_emergency(), None);
    }

    #[test]
    fn numbers_with_outbound_off_or_without_trunks_are_not_usable() {
        let mut off = number(VIETTEL, Some("viettel"));
        off.outbound = false;
        let mut no_trunk = number(VINA, Some("vinaphone"));
        no_trunk.trunks.clear();
        let t = OutboundNumbers::new(vec![off, no_trunk], None).unwrap();
        assert_eq!(
            chosen(&t, &["support"], Some("viettel"), None),
            Err(format!(
                "no number can call out for this agent: {VIETTEL}: outbound calls are switched \
                 off for it; {VINA}: it has no trunk to call out on"
            ))
        );
        // an emergency call still gets a caller number
        assert_eq!(t.choose_for_emergency().unwrap().number.as_str(), VIETTEL);
        let none = OutboundNumbers::new(vec![], None).unwrap();
        assert_eq!(
            chosen(&none, &["support"], None, None),
            Err("no number can call out for this agent: the tenant has no numbers".into())
        );
    }

    #[test]
    fn a_number_may_call_listed_callee_carriers_only() {
        let mut on_net = number(VIETTEL, Some("viettel"));
        on_net.callee_carriers = Some(vec![carrier("viettel")]);
        let all = number(VINA, Some("vinaphone"));
        let t = OutboundNumbers::new(vec![on_net.clone(), all], None).unwrap();
        assert_eq!(
            chosen(&t, &["support"], Some("viettel"), None),
            Ok((VIETTEL.into(), ChoiceReason::SameCarrier))
        );
        // a mobifone callee: the viettel number may not call it, the last one calls all
        assert_eq!(
            chosen(&t, &["support"], Some("mobifone"), None),
            Ok((VINA.into(), ChoiceReason::FirstUsable))
        );
        assert_eq!(
            chosen(&t, &["support"], None, Some(&on_net)),
            Err(format!(
                "number {VIETTEL} may not be used: it calls viettel only, and the callee's \
                 carrier is unknown"
            ))
        );
    }

    #[test]
    fn star_codes_force_a_number() {
        let t = tenant(None);
        let rule = InternalRule::default();
        let d = t.parse_dialled("*123*0912345678", &rule).unwrap();
        assert_eq!(d.forced.unwrap().number.as_str(), VINA);
        assert_eq!(d.destination, "0912345678");
        let d = t.parse_dialled(" *1* 0912 345 678 ", &rule).unwrap();
        assert_eq!(d.forced.unwrap().number.as_str(), VIETTEL);
        assert_eq!(d.destination, "0912 345 678");
        assert_eq!(
            chosen(&t, &["support"], Some("vinaphone"), d.forced),
            Ok((VIETTEL.into(), ChoiceReason::Forced))
        );
    }

    #[test]
    fn short_prefixes_force_a_number_but_extensions_stay_extensions() {
        let t = tenant(None);
        let rule = InternalRule::default();
        let d = t.parse_dialled("8020912345678", &rule).unwrap();
        assert_eq!(d.forced.unwrap().number.as_str(), VINA);
        assert_eq!(d.destination, "0912345678");
        let d = t.parse_dialled("801 +84 912 345 678", &rule).unwrap();
        assert_eq!(d.forced.unwrap().number.as_str(), VIETTEL);
        assert_eq!(d.destination, "+84 912 345 678");
        let d = t.parse_dialled("801-19001234", &rule).unwrap();
        assert_eq!(d.destination, "19001234");
        // 80123 and 801234 are extensions (5 or 6 digits), not 801 + something
        for ext in ["80123", "801234"] {
            let d = t.parse_dialled(ext, &rule).unwrap();
            assert_eq!((d.forced, d.destination), (None, ext));
        }
        // a prefix alone forces nothing
        let d = t.parse_dialled("801", &rule).unwrap();
        assert_eq!((d.forced, d.destination), (None, "801"));
        // no prefix: the whole string
        let d = t.parse_dialled(" 0912345678 ", &rule).unwrap();
        assert_eq!((d.forced, d.destination), (None, "0912345678"));
    }

    #[test]
    fn forcing_a_number_the_agent_may_not_use_names_it() {
        let t = tenant(None);
        let rule = InternalRule::default();
        let d = t.parse_dialled("*3*0901234567", &rule).unwrap();
        assert_eq!(
            chosen(&t, &["support"], Some("mobifone"), d.forced),
            Err(format!(
                "number {MOBI} may not be used: it is for agents of sales, vip only"
            ))
        );
        assert_eq!(
            chosen(&t, &["vip"], Some("mobifone"), d.forced),
            Ok((MOBI.into(), ChoiceReason::Forced))
        );
        // a number from elsewhere is not the tenant's
        let stranger = number("+842471000099", None);
        assert_eq!(
            chosen(&t, &["vip"], None, Some(&stranger)),
            Err(
                "number +842471000099 may not be used: it is not one of the tenant's numbers"
                    .into()
            )
        );
    }

    #[test]
    fn malformed_and_unknown_star_codes_are_errors() {
        let t = tenant(None);
        let rule = InternalRule::default();
        for (raw, message) in [
            (
                "*9*0912345678",
                "no number has the short code \"9\" (dialled \"*9*0912345678\")",
            ),
            (
                "*123",
                "malformed dial string \"*123\": a forced number is *code*destination",
            ),
            (
                "*12a*0912345678",
                "malformed dial string \"*12a*0912345678\": the code between the stars is digits",
            ),
            (
                "**0912345678",
                "malformed dial string \"**0912345678\": the code between the stars is digits",
            ),
            (
                "*123* ",
                "malformed dial string \"*123* \": nothing to dial after the code",
            ),
        ] {
            let err = t.parse_dialled(raw, &rule).unwrap_err();
            assert_eq!(err.to_string(), message, "{raw}");
        }
    }

    #[test]
    fn trunks_by_priority_then_cost_then_configured_order() {
        let trunk = |id: &str, priority: Option<u32>, cost: Option<u64>| TrunkChoice {
            trunk: id.into(),
            priority,
            cost_per_minute_milli: cost,
        };
        let mut n = number(VIETTEL, None);
        n.trunks = vec![
            trunk("no-priority-dear", None, Some(900)),
            trunk("second", Some(2), None),
            trunk("no-priority-unknown", None, None),
            trunk("first-dear", Some(1), Some(700)),
            trunk("no-priority-cheap", None, Some(300)),
            trunk("first-cheap", Some(1), Some(500)),
            trunk("no-priority-cheap-too", None, Some(300)),
            trunk("first-unknown", Some(1), None),
        ];
        let order: Vec<&str> = n.trunk_order().iter().map(|t| t.trunk.as_str()).collect();
        assert_eq!(
            order,
            [
                "first-cheap",
                "first-dear",
                "first-unknown",
                "second",
                "no-priority-cheap",
                "no-priority-cheap-too",
                "no-priority-dear",
                "no-priority-unknown",
            ]
        );
        // nothing set: configured order
        n.trunks = vec![
            TrunkChoice::new("a"),
            TrunkChoice::new("b"),
            TrunkChoice::new("c"),
        ];
        let order: Vec<&str> = n.trunk_order().iter().map(|t| t.trunk.as_str()).collect();
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[test]
    fn emergency_calls_take_the_fallback_or_the_first_carrier_number() {
        let t = tenant(Some(MOBI));
        // the fallback, although it is limited to groups
        assert_eq!(t.choose_for_emergency().unwrap().number.as_str(), MOBI);
        assert_eq!(
            tenant(None).choose_for_emergency().unwrap().number.as_str(),
            VIETTEL
        );
    }

    #[test]
    fn contradictions_are_refused_naming_the_field() {
        let base = || vec![number(VIETTEL, None), number(VINA, None)];
        let check = |numbers: Vec<OutboundNumber>, fallback: Option<&str>| {
            OutboundNumbers::new(numbers, fallback.map(e164).as_ref())
                .unwrap_err()
                .to_string()
        };
        let mut twice = base();
        twice[1].number = e164(VIETTEL);
        assert_eq!(
            check(twice, None),
            format!("numbers: numbers[1].number: {VIETTEL} is listed already, as numbers[0]")
        );
        let mut codes = base();
        codes[0].short_code = Some("12".into());
        codes[1].short_code = Some("12".into());
        assert_eq!(
            check(codes, None),
            "numbers: numbers[1].short_code: 12 is numbers[0]'s short code already"
        );
        let mut bad_code = base();
        bad_code[0].short_code = Some("1234567".into());
        assert_eq!(
            check(bad_code, None),
            "numbers: numbers[0].short_code: \"1234567\" is not 1 to 6 digits"
        );
        let mut prefixes = base();
        prefixes[0].short_prefix = Some("80".into());
        prefixes[1].short_prefix = Some("801".into());
        assert_eq!(
            check(prefixes, None),
            "numbers: numbers[1].short_prefix: 801 and numbers[0]'s 80 cannot be told apart"
        );
        for (prefix, message) in [
            ("8", "\"8\" is not 2 to 6 digits"),
            ("8a1", "\"8a1\" is not 2 to 6 digits"),
            (
                "09",
                "09 starts with 0, as destinations do (0: national numbers, 1: service and \
                 emergency numbers)",
            ),
            (
                "111",
                "111 starts with 1, as destinations do (0: national numbers, 1: service and \
                 emergency numbers)",
            ),
        ] {
            let mut p = base();
            p[0].short_prefix = Some(prefix.into());
            assert_eq!(
                check(p, None),
                format!("numbers: numbers[0].short_prefix: {message}")
            );
        }
        let mut virtual_forced = base();
        virtual_forced[1].kind = NumberKind::Virtual;
        virtual_forced[1].short_prefix = Some("802".into());
        assert_eq!(
            check(virtual_forced, None),
            format!(
                "numbers: numbers[1].short_prefix: {VINA} is virtual and cannot call out, so \
                 nothing can force it"
            )
        );
        let mut groups = base();
        groups[0].allowed_groups = Some(vec![]);
        assert_eq!(
            check(groups, None),
            "numbers: numbers[0].allowed_groups: an empty list allows no agent; leave it out to \
             allow every agent"
        );
        let mut callees = base();
        callees[1].callee_carriers = Some(vec![]);
        assert_eq!(
            check(callees, None),
            "numbers: numbers[1].callee_carriers: an empty list allows no callee; leave it out \
             to allow every carrier"
        );
        let mut trunks = base();
        trunks[0].trunks = vec![
            TrunkChoice::new("a"),
            TrunkChoice::new("b"),
            TrunkChoice::new("a"),
        ];
        assert_eq!(
            check(trunks, None),
            "numbers: numbers[0].trunks[2].trunk: a is trunks[0] already"
        );
        let mut unnamed = base();
        unnamed[0].trunks = vec![TrunkChoice::new("")];
        assert_eq!(
            check(unnamed, None),
            "numbers: numbers[0].trunks[0].trunk: empty"
        );
        assert_eq!(
            check(base(), Some(MOBI)),
            format!("numbers: fallback: {MOBI} is not one of the numbers")
        );
        let mut virtual_fallback = base();
        virtual_fallback[1].kind = NumberKind::Virtual;
        assert_eq!(
            check(virtual_fallback, Some(VINA)),
            format!("numbers: fallback: {VINA} is virtual and cannot call out")
        );
    }
}
