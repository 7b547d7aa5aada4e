//! Phone numbers for callgrid (issue 18): what the router's domain and the SIP edge need to
//! know about a number, with no IO, no clock and no async runtime.
//!
//! - [`Normalizer`]: a tenant's default region and internal numbering; turns what was
//!   written or dialled into a [`Dialled`] — a public number in [`E164`], a national
//!   service number kept as dialled (emergency, toll-free, premium), or an internal
//!   extension — and classifies it ([`DestinationClass`]).
//! - [`ClassPolicy`]: which classes a tenant's agents may dial; emergency is never refused.
//! - [`CarrierTable`]: the carrier of a number by its longest listed prefix (N4), from an
//!   editable table ([`VN_CARRIERS`] is the shipped Vietnamese one).
//! - [`OutboundNumbers`]: the caller number of an outbound call (N2, N4, N7: forced by
//!   `*code*` or a short prefix, else adaptive) and [`OutboundNumber::trunk_order`] (N5).
//! - [`Blocklist`]: exact numbers and patterns (R7), inbound and outbound.
//!
//! An outbound call, in order: [`OutboundNumbers::parse_dialled`] (forced number),
//! [`Normalizer::dialled`] and [`Normalizer::classify`], [`ClassPolicy::check`],
//! [`Blocklist::blocks_dialled`], then [`OutboundNumbers::choose`] with the callee's
//! [`CarrierTable::carrier_of`] (or [`OutboundNumbers::choose_for_emergency`]), then the
//! chosen number's trunks in [`OutboundNumber::trunk_order`].

mod blocklist;
mod carrier;
mod class;
mod dialled;
mod e164;
mod error;
mod outbound;

pub use blocklist::{BlockEntry, BlockRule, Blocklist, Pattern};
pub use carrier::{CarrierId, CarrierTable, VN_CARRIERS};
pub use class::{ClassPolicy, DestinationClass, Permit};
pub use dialled::{Dialled, InternalRule, Normalizer, ServiceKind};
pub use e164::E164;
pub use error::NumberError;
pub use outbound::{
    Choice, ChoiceReason, Dialling, NumberKind, OutboundNumber, OutboundNumbers, TrunkChoice,
};

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// The national prefixes (`086`) of the shipped table, with their carrier.
    fn shipped_prefixes() -> Vec<(String, String)> {
        VN_CARRIERS
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty() && *l != "prefix,carrier")
            .map(|l| {
                let (p, c) = l.split_once(',').unwrap();
                (p.to_owned(), c.to_owned())
            })
            .collect()
    }

    proptest! {
        #[test]
        fn every_form_of_a_mobile_number_is_one_number_on_its_carrier(
            which in any::<prop::sample::Index>(),
            rest in "[0-9]{7}",
        ) {
            let prefixes = shipped_prefixes();
            let (prefix, carrier) = &prefixes[which.index(prefixes.len())];
            let n = Normalizer::new("VN").unwrap();
            let national = format!("{prefix}{rest}");
            // the metadata knows ranges finer than the table (0896-0899 of 089): skip the rest
            let Ok(e164) = n.normalize(&national) else { return Ok(()) };
            let nsn = &national[1..];
            let (a, b) = nsn.split_at(2);
            let (b, c) = b.split_at(3);
            for form in [
                format!("84{nsn}"),
                format!("+84{nsn}"),
                format!("+84 {a} {b} {c}"),
                format!("+84-{a}-{b}-{c}"),
                format!("({prefix}) {b} {c}"),
                format!("0084 {nsn}"),
                e164.to_string(),
            ] {
                prop_assert_eq!(n.normalize(&form), Ok(e164.clone()), "{}", form);
            }
            prop_assert_eq!(e164.as_str().parse::<E164>(), Ok(e164.clone()));
            let table = CarrierTable::vietnam();
            prop_assert_eq!(table.carrier_of(&e164).map(CarrierId::as_str), Some(carrier.as_str()));
            prop_assert_eq!(n.classify(&Dialled::Public(e164.clone())), DestinationClass::Mobile);
            let list = Blocklist::from_entries(&n, [format!("({prefix}) {b} {c}")]).unwrap();
            prop_assert!(list.blocks(&e164).is_some());
        }

        #[test]
        fn reading_any_text_never_panics(raw in "\\PC{0,24}", digits in "[0-9+*#() .-]{0,24}") {
            let n = Normalizer::new("VN").unwrap();
            let _ = n.dialled(&raw);
            let _ = n.dialled(&digits);
            let numbers = OutboundNumbers::new(vec![], None).unwrap();
            let _ = numbers.parse_dialled(&raw, n.internal_rule());
            let _ = numbers.parse_dialled(&digits, n.internal_rule());
            let mut list = Blocklist::new();
            let _ = list.add(&n, &raw);
            let _ = list.add(&n, &digits);
            let _ = CarrierTable::parse(&format!("prefix,carrier\n{raw}\n{digits}"), 84);
        }

        #[test]
        fn trunk_order_is_a_stable_sort_by_priority_then_cost(
            trunks in prop::collection::vec(
                (prop::option::of(0u32..3), prop::option::of(0u64..3)),
                0..12,
            ),
        ) {
            let mut n = OutboundNumber::new("+84912345678".parse().unwrap(), NumberKind::Carrier);
            n.trunks = trunks
                .iter()
                .enumerate()
                .map(|(i, (priority, cost))| TrunkChoice {
                    trunk: i.to_string(),
                    priority: *priority,
                    cost_per_minute_milli: *cost,
                })
                .collect();
            let order: Vec<usize> = n.trunk_order().iter().map(|t| t.trunk.parse().unwrap()).collect();
            let mut all = order.clone();
            all.sort_unstable();
            prop_assert_eq!(all, (0..trunks.len()).collect::<Vec<_>>());
            // priority set before unset, lower first; then cost known before unknown, lower
            // first; then configured order
            let key = |i: usize| {
                let (p, c) = trunks[i];
                (p.is_none(), p, c.is_none(), c, i)
            };
            for pair in order.windows(2) {
                prop_assert!(key(pair[0]) < key(pair[1]), "{:?}", order);
            }
        }

        #[test]
        fn a_pattern_made_from_a_number_matches_it(
            digits in "[1-9][0-9]{7,13}",
            wild in prop::collection::vec(any::<bool>(), 14),
            cut in 1usize..14,
        ) {
            let n = Normalizer::new("VN").unwrap();
            let number: E164 = format!("+{digits}").parse().unwrap();
            let masked: String = digits
                .chars()
                .enumerate()
                // the last digit always a ?, so the entry is a pattern (not an exact number)
                .map(|(i, c)| if i > 0 && (wild[i - 1] || i == digits.len() - 1) { '?' } else { c })
                .collect();
            let closed = format!("+{masked}");
            let open = format!("+{}*", &masked[..cut.min(masked.len())]);
            let list = Blocklist::from_entries(&n, [&closed]).unwrap();
            prop_assert!(list.blocks(&number).is_some(), "{}", closed);
            let list = Blocklist::from_entries(&n, [&open]).unwrap();
            prop_assert!(list.blocks(&number).is_some(), "{}", open);
            // one digit more is not the closed pattern's length
            let longer: E164 = format!("+{digits}0").parse().unwrap();
            let list = Blocklist::from_entries(&n, [&closed]).unwrap();
            prop_assert!(list.blocks(&longer).is_none(), "{}", closed);
        }
    }
}
