//! The outbound part of a tenant's setup (issue 18): what the router decides an outbound call
//! with, and the per-trunk settings the SIP edge needs to call out. The decisions themselves
//! (normalising, classes, the caller number, trunk order, blocklists) are `callgrid-numbers`';
//! this module only holds a tenant's configured inputs to them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use callgrid_numbers::{Blocklist, CarrierTable, ClassPolicy, Normalizer, OutboundNumbers, E164};

use crate::ids::DurationMs;

/// Who a call out through a trunk says it is from (the edge builds `From` and
/// `P-Asserted-Identity` with it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CallerIdFrom {
    /// The chosen hotline number, in E.164 (N4): what the callee sees.
    #[default]
    Number,
    /// The trunk's account (its digest username), for carriers that want their account in
    /// `From` and take the number from `P-Asserted-Identity`.
    Account,
}

/// Registration of the platform with a carrier's registrar, for trunks that need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkRegister {
    /// Where `REGISTER` goes: `host:port` (a host name or an IPv4 address; port 5060 unless
    /// configured).
    pub registrar: Arc<str>,
    /// The `Expires` asked for, in seconds (SIP counts it in seconds), 60 to 86 400.
    pub expires_s: u32,
}

/// A trunk's settings for calling out (N3, N5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkSetup {
    /// The trunk's id in the tenant file.
    pub id: Arc<str>,
    /// Registration with the carrier, when the trunk registers.
    pub register: Option<TrunkRegister>,
    /// Who calls out through it say they are.
    pub caller_id_from: CallerIdFrom,
    /// Whether the edge adds `P-Asserted-Identity` with the hotline number.
    pub p_asserted_identity: bool,
    /// Period of the edge's `OPTIONS` pings to the trunk; 0: none.
    pub keepalive_ms: DurationMs,
    /// Price of a minute in thousandths of the tenant's currency unit, when configured.
    pub cost_per_minute_milli: Option<u64>,
}

/// What the router decides an outbound call with, for one tenant. Built by
/// `callgrid-config` from the tenant file; held in an `Arc` by [`crate::TenantSetup`], so a
/// setup clones it by reference.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundSetup {
    /// Reads dialled numbers with the tenant's region (`region`, default `VN`).
    pub normalizer: Normalizer,
    /// Which destination classes agents may dial, and the emergency trunk.
    pub policy: ClassPolicy,
    /// Carriers by prefix, for the callee's carrier (N4): the shipped Vietnamese table.
    pub carriers: CarrierTable,
    /// The tenant's numbers that have an E.164 form, in configured order, with their
    /// carriers, groups, short codes and trunks (priority and cost); the fallback.
    pub numbers: OutboundNumbers,
    /// Numbers rejected inbound and never dialled (R7).
    pub blocklist: Blocklist,
    /// Where the carrier sends a number's calls when the platform cannot take them (N6), by
    /// the number as written (the key of [`crate::TenantSetup::numbers`]).
    pub backup_numbers: BTreeMap<Arc<str>, E164>,
    /// Numbers whose outbound calls are recorded (C4).
    pub recorded: BTreeSet<E164>,
    /// The tenant's trunks, in configured order.
    pub trunks: Vec<TrunkSetup>,
}

impl OutboundSetup {
    /// A tenant that calls nothing out: region `VN`, the default class policy, the shipped
    /// carrier table, no numbers, trunks or blocklist entries.
    pub fn none() -> Self {
        Self {
            // VN's metadata is compiled into callgrid-numbers (its tests read VN numbers)
            normalizer: Normalizer::new("VN").expect("VN has numbering metadata"),
            policy: ClassPolicy::default(),
            carriers: CarrierTable::vietnam(),
            numbers: OutboundNumbers::new(Vec::new(), None)
                .expect("an empty list of numbers has no contradiction"),
            blocklist: Blocklist::new(),
            backup_numbers: BTreeMap::new(),
            recorded: BTreeSet::new(),
            trunks: Vec::new(),
        }
    }

    /// [`OutboundSetup::none`], built once and shared.
    pub fn shared_none() -> Arc<Self> {
        static NONE: OnceLock<Arc<OutboundSetup>> = OnceLock::new();
        NONE.get_or_init(|| Arc::new(Self::none())).clone()
    }

    /// The trunk with this id.
    pub fn trunk(&self, id: &str) -> Option<&TrunkSetup> {
        self.trunks.iter().find(|t| &*t.id == id)
    }

    /// Whether outbound calls with `number` are recorded (C4).
    pub fn records(&self, number: &E164) -> bool {
        self.recorded.contains(number)
    }

    /// The backup number of a hotline (N6), by the number as written in the tenant file.
    pub fn backup_of(&self, number: &str) -> Option<&E164> {
        self.backup_numbers.get(number)
    }
}

impl Default for OutboundSetup {
    fn default() -> Self {
        Self::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setup_without_outbound_configuration_calls_nothing_out() {
        let none = OutboundSetup::none();
        assert_eq!(none.normalizer.region(), "VN");
        assert!(none.numbers.numbers().is_empty());
        assert!(none.numbers.choose::<&str>(&[], None, None).is_err());
        assert_eq!(none.policy, ClassPolicy::default());
        assert!(none.trunks.is_empty() && none.trunk("local").is_none());
        assert!(!none.carriers.is_empty());
        assert!(Arc::ptr_eq(
            &OutboundSetup::shared_none(),
            &OutboundSetup::shared_none()
        ));
        assert_eq!(*OutboundSetup::shared_none(), none);
    }

    #[test]
    fn lookups_by_trunk_and_number() {
        let mut s = OutboundSetup::none();
        let n: E164 = "+842873000100".parse().unwrap();
        s.recorded.insert(n.clone());
        s.backup_numbers
            .insert(Arc::from("+842873000100"), "+84909123456".parse().unwrap());
        s.trunks.push(TrunkSetup {
            id: Arc::from("local"),
            register: None,
            caller_id_from: CallerIdFrom::default(),
            p_asserted_identity: true,
            keepalive_ms: 30_000,
            cost_per_minute_milli: Some(690_000),
        });
        assert!(s.records(&n));
        assert!(!s.records(&"+842873000200".parse().unwrap()));
        assert_eq!(
            s.backup_of("+842873000100").map(E164::as_str),
            Some("+84909123456")
        );
        assert_eq!(s.backup_of("842873000100"), None);
        assert_eq!(
            s.trunk("local").and_then(|t| t.cost_per_minute_milli),
            Some(690_000)
        );
        assert_eq!(
            s.trunk("local").unwrap().caller_id_from,
            CallerIdFrom::Number
        );
    }
}
