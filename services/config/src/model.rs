//! The serde model of a tenant file.
//!
//! Field names, defaults and ranges are those of `schemas/tenant.schema.json`; a value that
//! went through [`crate::load_str`] satisfies both the schema and the cross-field rules.
//! Omitted optional fields take their defaults here; the `Option` fields are overrides that
//! fall back to [`Defaults`] (see the `effective_*` methods).

use std::collections::BTreeMap;
use std::fmt;

use callgrid_numbers::{ClassPolicy, DestinationClass};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

/// Hang-up cause of a call that waited a queue's `max_wait_seconds` (or found it full, or
/// saw its last agent leave) when the queue has no `overflow`.
pub const CAUSE_QUEUE_TIMEOUT: &str = "queue_timeout";
/// Hang-up cause of a call nobody in a group answered when the group has no `no_answer`.
pub const CAUSE_NO_ANSWER: &str = "no_answer";
/// Hang-up cause of a menu call that pressed nothing when the menu has no `on_timeout`.
pub const CAUSE_NO_INPUT: &str = "no_input";
/// Hang-up cause of a menu call that pressed a wrong key when the menu has no `on_invalid`.
pub const CAUSE_INVALID_INPUT: &str = "invalid_input";
/// Not-ready reason the system uses after `max_missed_offers` missed offers in a row (A3);
/// always available, whether listed in `reason_codes` or not.
pub const REASON_MISSED_OFFERS: &str = "missed_offers";

/// One tenant file: one tenant (an enterprise on the platform) and all its routing
/// configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    /// Tenant id, `[a-z0-9][a-z0-9_-]{0,62}`.
    pub tenant: String,
    /// Display name.
    pub name: String,
    /// IANA time zone name, e.g. `Asia/Ho_Chi_Minh`.
    pub timezone: String,
    /// ISO 3166 country of the tenant's numbers (two capital letters): how national numbers
    /// are read, in the file and when dialled. Default [`DEFAULT_REGION`].
    #[serde(default = "default_region")]
    pub region: String,
    /// Not-ready reasons agents may choose (A2). [`REASON_MISSED_OFFERS`] is implied.
    #[serde(default)]
    pub reason_codes: Vec<String>,
    /// Tenant-wide defaults.
    #[serde(default)]
    pub defaults: Defaults,
    /// Agents.
    #[serde(default)]
    pub agents: Vec<Agent>,
    /// Queues.
    #[serde(default)]
    pub queues: Vec<Queue>,
    /// Ring-all groups.
    #[serde(default)]
    pub groups: Vec<Group>,
    /// One-level IVR menus.
    #[serde(default)]
    pub menus: Vec<Menu>,
    /// Hotline numbers.
    #[serde(default)]
    pub numbers: Vec<Number>,
    /// Carrier trunks (N3).
    #[serde(default)]
    pub trunks: Vec<Trunk>,
    /// Tenant limits (N8).
    #[serde(default)]
    pub limits: Limits,
    /// Outbound calling: the classes agents may dial, the emergency trunk, the fallback
    /// number (N4).
    #[serde(default)]
    pub outbound: Outbound,
    /// Numbers rejected inbound and never dialled (R7): exact numbers in any written form
    /// (read with `region`) or patterns (`+841900*`, `+8490???????`).
    #[serde(default)]
    pub blocklist: Vec<String>,
    /// Where agents' login devices may be (host names, addresses, `ADDR/BITS` networks);
    /// loopback is always allowed, nothing else by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_domains: Vec<String>,
    /// Record every inbound call (C4). Default false.
    #[serde(default)]
    pub record: bool,
    /// The tenant's platform is out of service (N6): the edge forwards its numbers' calls to
    /// their backup numbers (a number without one is refused 503) and asks the router
    /// nothing. Default false.
    #[serde(default)]
    pub out_of_service: bool,
}

/// The region of a tenant file that names none.
pub const DEFAULT_REGION: &str = "VN";

fn default_region() -> String {
    DEFAULT_REGION.to_owned()
}

/// A tenant's outbound calling settings (issue 18).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outbound {
    /// Destination classes agents may dial. Default: internal, national, mobile, toll-free
    /// (`ClassPolicy::default()`; premium and international are opt-in). Emergency numbers
    /// are always dialled, listed or not.
    #[serde(default = "default_classes")]
    pub classes: Vec<DestinationClass>,
    /// The trunk every emergency call (112-115 in Vietnam) goes to. `None`: the tenant's
    /// first trunk (see [`TenantFile::emergency_trunk`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency_trunk: Option<String>,
    /// The number an outbound call goes out with when none is on the callee's carrier
    /// (N4): one of the tenant's carrier numbers, in any written form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_number: Option<String>,
}

fn default_classes() -> Vec<DestinationClass> {
    ClassPolicy::default().allow.into_iter().collect()
}

impl Default for Outbound {
    fn default() -> Self {
        Self {
            classes: default_classes(),
            emergency_trunk: None,
            fallback_number: None,
        }
    }
}

/// Limits of a tenant (N8).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most calls in progress at once; `None`: [`DEFAULT_TENANT_MAX_CALLS`] (N8: never
    /// unlimited by omission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_calls: Option<u32>,
}

/// A tenant's concurrent-call limit when its file gives none (N8).
pub const DEFAULT_TENANT_MAX_CALLS: u32 = 1_000;
/// A trunk's concurrent-call limit when its file gives none (N8).
pub const DEFAULT_TRUNK_MAX_CALLS: u32 = 500;

/// Transport toward a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrunkTransport {
    /// UDP (default).
    #[default]
    Udp,
    /// TCP.
    Tcp,
}

/// A carrier's SIP trunk (N3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trunk {
    /// Trunk id, unique in the tenant.
    pub id: String,
    /// Display name.
    pub name: String,
    /// IPv4 address or host name, with an optional port (default 5060). Calls are matched
    /// to a trunk by source address only when it is an IPv4 address.
    pub address: String,
    /// Transport toward the carrier. Default UDP.
    #[serde(default)]
    pub transport: TrunkTransport,
    /// Account id for digest authentication, both ways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Secret for digest authentication (as written; kept encrypted: `password_enc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SipPassword>,
    /// The secret encrypted with the platform's secrets key (`secrets::SecretsKey`), as
    /// callgrid keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_enc: Option<String>,
    /// Most calls on this trunk at once; `None`: [`DEFAULT_TRUNK_MAX_CALLS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_calls: Option<u32>,
    /// Registration with the carrier's registrar, for carriers that want it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register: Option<Register>,
    /// Price of a minute on this trunk in the tenant's currency unit, to thousandths: the
    /// cheaper trunk is tried first (N5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_minute: Option<Cost>,
    /// Who calls out through the trunk say they are.
    #[serde(default)]
    pub caller_id: CallerId,
    /// Period of `OPTIONS` pings to the trunk, in seconds; 0 = none. Default 30.
    #[serde(default = "default_keepalive")]
    pub keepalive_seconds: u32,
}

/// The `OPTIONS` period of a trunk that names none.
pub const DEFAULT_KEEPALIVE_SECONDS: u32 = 30;
/// The registration `Expires` of a trunk that names none.
pub const DEFAULT_REGISTER_EXPIRES_SECONDS: u32 = 3600;

fn default_keepalive() -> u32 {
    DEFAULT_KEEPALIVE_SECONDS
}

fn default_expires() -> u32 {
    DEFAULT_REGISTER_EXPIRES_SECONDS
}

/// Registration of the platform with a carrier (the trunk's `username` and `password` are
/// the account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// The registrar: `sip:HOST[:PORT]` or `HOST[:PORT]`. `None`: the trunk's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registrar: Option<String>,
    /// The registration's lifetime asked for, 60 to 86 400 seconds. Default 3600.
    #[serde(default = "default_expires")]
    pub expires_seconds: u32,
}

/// Who a call out through a trunk says it is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallerId {
    /// What `From` carries. Default [`CallerIdFrom::Number`].
    pub from: CallerIdFrom,
    /// Add `P-Asserted-Identity` with the hotline number. Default true.
    pub p_asserted_identity: bool,
}

impl Default for CallerId {
    fn default() -> Self {
        Self {
            from: CallerIdFrom::Number,
            p_asserted_identity: true,
        }
    }
}

/// What `From` carries on a call out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerIdFrom {
    /// The hotline number the call goes out with.
    #[default]
    Number,
    /// The trunk's account (`username`).
    Account,
}

/// A price as written in a tenant file: a number >= 0, kept exactly as given (so a file
/// written back reads the same); [`Cost::milli`] is its value in thousandths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cost(serde_json::Number);

impl Cost {
    /// The price of `milli` thousandths of the currency unit.
    pub fn from_milli(milli: u64) -> Self {
        let (units, thousandths) = (milli / 1000, milli % 1000);
        if thousandths == 0 {
            Self(units.into())
        } else {
            // thousandths up to 2^53 are exact enough to read back to the same milli
            Self(serde_json::Number::from_f64(milli as f64 / 1000.0).unwrap_or_else(|| 0.into()))
        }
    }

    /// The price in thousandths of the currency unit, if it is a number >= 0 with at most
    /// three decimals (and below 10^15 thousandths).
    pub fn milli(&self) -> Option<u64> {
        const MAX: f64 = 1.0e15;
        if let Some(units) = self.0.as_u64() {
            return units.checked_mul(1000).filter(|m| (*m as f64) < MAX);
        }
        let value = self.0.as_f64()?;
        let scaled = value * 1000.0;
        let rounded = scaled.round();
        let exact = (scaled - rounded).abs() <= 1.0e-6 * rounded.abs().max(1.0);
        (value >= 0.0 && exact && rounded < MAX).then_some(rounded as u64)
    }

    /// The number as written.
    pub fn as_number(&self) -> &serde_json::Number {
        &self.0
    }
}

/// A host (an IPv4 address or a host name) and a port, from `HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The IPv4 address, or the host name in lowercase.
    pub host: String,
    /// The port; 5060 when none was written.
    pub port: u16,
    /// The address, when the host is an IPv4 address.
    pub ip: Option<std::net::Ipv4Addr>,
}

impl HostPort {
    /// Reads `HOST[:PORT]`: an IPv4 address or a host name (letters, digits and `-` in
    /// dot-separated labels, the last not all digits), a port from 1 to 65535 (default
    /// 5060). The error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => {
                if host.contains(':') {
                    return Err("IPv6 addresses are not supported".to_owned());
                }
                let port = match port.parse::<u32>() {
                    Ok(0) => return Err("port 0 is not a carrier's port".to_owned()),
                    Ok(p) if p <= 65_535 => p as u16,
                    _ => return Err(format!("the port must be from 1 to 65535, got {port:?}")),
                };
                (host, port)
            }
            None => (text, 5060),
        };
        if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
            return Ok(Self {
                host: ip.to_string(),
                port,
                ip: Some(ip),
            });
        }
        let labels: Vec<&str> = host.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if host.is_empty() || host.len() > 253 || !labels.iter().all(label_ok) {
            return Err(format!(
                "{host:?} is neither an IPv4 address nor a host name"
            ));
        }
        if labels
            .last()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!("{host:?} is not an IPv4 address"));
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
            ip: None,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Trunk {
    /// Where the trunk's REGISTER goes, when it registers: its `registrar` (`host:port`), or
    /// its own address. `None` when it does not register or the address cannot be read
    /// (the checks report that).
    pub fn registrar_address(&self) -> Option<HostPort> {
        let r = self.register.as_ref()?;
        match &r.registrar {
            Some(written) => crate::outbound::registrar(written).ok(),
            None => self.host_port(),
        }
    }

    /// The trunk's socket address (port 5060 when the file gives none), when its address is
    /// an IPv4 address; `None` for a host name (the edge does not resolve names).
    pub fn socket_addr(&self) -> Option<std::net::SocketAddr> {
        let with_port = if self.address.contains(':') {
            self.address.clone()
        } else {
            format!("{}:5060", self.address)
        };
        with_port.parse().ok()
    }

    /// The trunk's host and port, for an address that is an IPv4 address or a host name.
    pub fn host_port(&self) -> Option<HostPort> {
        HostPort::parse(&self.address).ok()
    }
}

impl TenantFile {
    /// The agent with this id.
    pub fn agent(&self, id: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.id == id)
    }

    /// The queue with this id.
    pub fn queue(&self, id: &str) -> Option<&Queue> {
        self.queues.iter().find(|q| q.id == id)
    }

    /// The group with this id.
    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }

    /// The menu with this id.
    pub fn menu(&self, id: &str) -> Option<&Menu> {
        self.menus.iter().find(|m| m.id == id)
    }

    /// The trunk emergency calls go to: `outbound.emergency_trunk`, else the first trunk,
    /// else none (the tenant has no trunk).
    pub fn emergency_trunk(&self) -> Option<&str> {
        self.outbound
            .emergency_trunk
            .as_deref()
            .or_else(|| self.trunks.first().map(|t| t.id.as_str()))
    }

    /// The number entry for this number (compared without a leading `+`).
    pub fn number(&self, number: &str) -> Option<&Number> {
        let digits = number.trim_start_matches('+');
        self.numbers
            .iter()
            .find(|n| n.number.trim_start_matches('+') == digits)
    }

    /// Wrap-up seconds after a call that came in on `number` and was answered from `queue`:
    /// the queue's override wins, then the number's, then `defaults.wrapup_seconds`.
    pub fn wrapup_seconds(&self, number: Option<&Number>, queue: Option<&Queue>) -> u32 {
        queue
            .and_then(|q| q.wrapup_seconds)
            .or_else(|| number.and_then(|n| n.wrapup_seconds))
            .unwrap_or(self.defaults.wrapup_seconds)
    }
}

/// Tenant-wide defaults. Every field is optional in the file; [`Default`] gives the values
/// used when omitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Wrap-up after a call, in seconds, unless the queue or number says otherwise (A3). Default 10.
    pub wrapup_seconds: u32,
    /// How long an agent's phone rings before the offer is missed, in seconds. Default 20.
    pub ring_timeout_seconds: u32,
    /// Missed offers in a row before the agent goes not ready with reason
    /// [`REASON_MISSED_OFFERS`]; 0 = never. Default 3.
    pub max_missed_offers: u32,
    /// No offers for this long after the agent's phone answered 486 Busy. Default 5.
    pub busy_delay_seconds: u32,
    /// No offers for this long after the agent rejected an offer (603). Default 5.
    pub reject_delay_seconds: u32,
    /// No offers for this long after an unanswered offer (ring timeout, 480, 408). Default 5.
    pub no_answer_delay_seconds: u32,
    /// Service-level threshold in seconds (H3). Default 20.
    pub service_level_seconds: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            wrapup_seconds: 10,
            ring_timeout_seconds: 20,
            max_missed_offers: 3,
            busy_delay_seconds: 5,
            reject_delay_seconds: 5,
            no_answer_delay_seconds: 5,
            service_level_seconds: 20,
        }
    }
}

/// An agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// Agent id, `[A-Za-z0-9_.-]{1,64}`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Extension, 5 or 6 digits; several agents may share one (A1).
    pub extension: String,
    /// Password for SIP digest authentication of the agent's phones (A4), as written; kept
    /// as `sip_ha1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_password: Option<SipPassword>,
    /// The digest HA1s of the agent's password, as callgrid keeps them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_ha1: Option<SipHa1>,
    /// Skill name -> proficiency 1..=10.
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
}

/// An agent's SIP password as digest HA1s (RFC 2617), for the realm they were made for and
/// the two user names a phone may register with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipHa1 {
    /// The digest realm.
    pub realm: String,
    /// `MD5(tenant.agent:realm:password)`.
    pub ha1: String,
    /// `MD5(agent:realm:password)`.
    pub ha1b: String,
}

/// A SIP digest password. Its `Debug` output is redacted so it never reaches a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SipPassword(String);

impl SipPassword {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The password itself, for the SIP edge's digest check.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SipPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SipPassword(***)")
    }
}

/// A queue (R1, R4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Queue {
    /// Queue id: `2` and 2 to 6 more digits; 200-299 by default.
    pub id: String,
    /// Display name.
    pub name: String,
    /// How an agent is chosen. Default [`Strategy::LongestIdle`].
    #[serde(default)]
    pub strategy: Strategy,
    /// Members, in order (the order matters for [`Strategy::Linear`]).
    #[serde(default)]
    pub members: Vec<Member>,
    /// Skill name -> minimum proficiency an agent needs to get this queue's calls.
    #[serde(default)]
    pub required_skills: BTreeMap<String, u8>,
    /// Longest wait before the call goes to `overflow`; 0 = no limit.
    #[serde(default)]
    pub max_wait_seconds: u32,
    /// Where calls go after `max_wait_seconds`, when the queue is full, or when they leave
    /// for lack of agents. `None`: hang up with [`CAUSE_QUEUE_TIMEOUT`]; see
    /// [`Queue::overflow_target`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow: Option<Target>,
    /// Most calls waiting at once; 0 = no limit.
    #[serde(default)]
    pub max_length: u32,
    /// What happens while no member is logged in.
    #[serde(default)]
    pub when_no_agents: WhenNoAgents,
    /// Overrides `defaults.service_level_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_level_seconds: Option<u32>,
    /// Overrides `defaults.wrapup_seconds` and the number's `wrapup_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapup_seconds: Option<u32>,
    /// Overrides `defaults.ring_timeout_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_timeout_seconds: Option<u32>,
    /// Period of the position/expected-wait announcement in seconds; 0 = off, else 15..=3600.
    #[serde(default)]
    pub announce_position_seconds: u32,
    /// Callers may press a digit to request a callback that keeps their place.
    #[serde(default)]
    pub callback: bool,
    /// Prompt played to waiting callers. Default `default`.
    #[serde(default = "default_hold_music")]
    pub hold_music: String,
}

fn default_hold_music() -> String {
    "default".to_owned()
}

impl Queue {
    /// Where calls leave this queue to: `overflow`, or a hang-up with [`CAUSE_QUEUE_TIMEOUT`].
    pub fn overflow_target(&self) -> Target {
        self.overflow
            .clone()
            .unwrap_or_else(|| Target::hangup(CAUSE_QUEUE_TIMEOUT))
    }

    /// The service-level threshold of this queue.
    pub fn effective_service_level_seconds(&self, defaults: &Defaults) -> u32 {
        self.service_level_seconds
            .unwrap_or(defaults.service_level_seconds)
    }

    /// The ring timeout of offers from this queue.
    pub fn effective_ring_timeout_seconds(&self, defaults: &Defaults) -> u32 {
        self.ring_timeout_seconds
            .unwrap_or(defaults.ring_timeout_seconds)
    }
}

/// Queue strategy: how an agent is chosen among the available members (R4).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Ring every available member; the first to answer takes the call.
    RingAll,
    /// The member idle for the longest time.
    #[default]
    LongestIdle,
    /// Members in turn, remembering where the last call went.
    RoundRobin,
    /// The member with the least talk time today.
    LeastTalkTime,
    /// The member who took the fewest calls today.
    FewestCalls,
    /// Members top-down in the order listed.
    Linear,
    /// A member at random.
    Random,
    /// A member at random, in proportion to their `weight`.
    WeightedRandom,
}

impl Strategy {
    /// All strategies, in the order of the schema.
    pub const ALL: [Strategy; 8] = [
        Strategy::RingAll,
        Strategy::LongestIdle,
        Strategy::RoundRobin,
        Strategy::LeastTalkTime,
        Strategy::FewestCalls,
        Strategy::Linear,
        Strategy::Random,
        Strategy::WeightedRandom,
    ];

    /// The name used in tenant files, e.g. `longest_idle`.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RingAll => "ring_all",
            Strategy::LongestIdle => "longest_idle",
            Strategy::RoundRobin => "round_robin",
            Strategy::LeastTalkTime => "least_talk_time",
            Strategy::FewestCalls => "fewest_calls",
            Strategy::Linear => "linear",
            Strategy::Random => "random",
            Strategy::WeightedRandom => "weighted_random",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A queue member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Agent id.
    pub agent: String,
    /// Tier, >= 1: lower tiers are offered calls first. Default 1.
    #[serde(default = "one")]
    pub tier: u32,
    /// Penalty, >= 0: within a tier, lower penalties are offered calls first. Default 0.
    #[serde(default)]
    pub penalty: u32,
    /// Weight, >= 1, for [`Strategy::WeightedRandom`]. Default 1.
    #[serde(default = "one")]
    pub weight: u32,
}

impl Member {
    /// A member with tier 1, penalty 0 and weight 1.
    pub fn new(agent: impl Into<String>) -> Self {
        Self {
            agent: agent.into(),
            tier: 1,
            penalty: 0,
            weight: 1,
        }
    }
}

fn one() -> u32 {
    1
}

/// What a queue does while none of its members is logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhenNoAgents {
    /// Accept new calls while no member is logged in (else they go to `overflow`). Default true.
    pub join: bool,
    /// Send waiting calls to `overflow` when the last member logs out. Default false.
    pub leave: bool,
}

impl Default for WhenNoAgents {
    fn default() -> Self {
        Self {
            join: true,
            leave: false,
        }
    }
}

/// A ring-all group (R1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Group id, 4 digits 1000-9999.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Agent ids; all ring at once.
    pub members: Vec<String>,
    /// Overrides `defaults.ring_timeout_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_timeout_seconds: Option<u32>,
    /// Where the call goes when nobody answers. `None`: hang up with [`CAUSE_NO_ANSWER`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_answer: Option<Target>,
}

impl Group {
    /// Where an unanswered call goes: `no_answer`, or a hang-up with [`CAUSE_NO_ANSWER`].
    pub fn no_answer_target(&self) -> Target {
        self.no_answer
            .clone()
            .unwrap_or_else(|| Target::hangup(CAUSE_NO_ANSWER))
    }

    /// How long the group rings.
    pub fn effective_ring_timeout_seconds(&self, defaults: &Defaults) -> u32 {
        self.ring_timeout_seconds
            .unwrap_or(defaults.ring_timeout_seconds)
    }
}

/// A one-level IVR menu (R1).
///
/// The prompt plays and the menu waits `timeout_seconds` for one key. No key or a key
/// without an option replays the prompt, up to `retries` more times; after that the call
/// goes to `on_timeout` or `on_invalid` (whichever happened last).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Menu {
    /// Menu id, 3 digits 100-199.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Prompt name.
    pub prompt: String,
    /// Seconds to wait for a key. Default 5.
    #[serde(default = "default_menu_timeout")]
    pub timeout_seconds: u32,
    /// Replays after a timeout or an invalid key. Default 2.
    #[serde(default = "default_menu_retries")]
    pub retries: u32,
    /// Key (`0`-`9`, `*`, `#`) -> target; never another menu.
    pub options: BTreeMap<String, Target>,
    /// After the last timeout. `None`: hang up with [`CAUSE_NO_INPUT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<Target>,
    /// After the last invalid key. `None`: hang up with [`CAUSE_INVALID_INPUT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_invalid: Option<Target>,
}

fn default_menu_timeout() -> u32 {
    5
}

fn default_menu_retries() -> u32 {
    2
}

impl Menu {
    /// Where the call goes after the last timeout.
    pub fn timeout_target(&self) -> Target {
        self.on_timeout
            .clone()
            .unwrap_or_else(|| Target::hangup(CAUSE_NO_INPUT))
    }

    /// Where the call goes after the last invalid key.
    pub fn invalid_target(&self) -> Target {
        self.on_invalid
            .clone()
            .unwrap_or_else(|| Target::hangup(CAUSE_INVALID_INPUT))
    }
}

/// A hotline number (DID) of the tenant (N1, N2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Number {
    /// E.164 with a leading `+`, or national digits; 3 to 15 digits. Only a valid public
    /// number in the tenant's region can call out; any other takes inbound calls only.
    pub number: String,
    /// Display name.
    pub name: String,
    /// Carrier or virtual number. Default [`NumberKind::Carrier`].
    #[serde(default)]
    pub kind: NumberKind,
    /// Overrides `defaults.wrapup_seconds` for calls on this number (a queue's override wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapup_seconds: Option<u32>,
    /// Record inbound calls on this number (C4). Default false.
    #[serde(default)]
    pub record: bool,
    /// Where inbound calls go.
    pub route: Target,
    /// Most calls on this number at once (N8); `None` = no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_calls: Option<u32>,
    /// Outbound calls allowed with this number (N2). `None`: yes for a carrier number that
    /// is a valid public number in the tenant's region, no otherwise (see
    /// [`Number::outbound_wanted`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound: Option<bool>,
    /// The carrier the number belongs to (a carrier id of the shipped table, e.g.
    /// `viettel`), for the choice of a number on the callee's carrier (N4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// The callees' carriers this number may call (N5); `None`: every callee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callee_carriers: Option<Vec<String>>,
    /// Ids of the queues and ring-all groups whose members may call out with it (N2);
    /// `None`: every agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_groups: Option<Vec<String>>,
    /// Digits that force this number: `*CODE*destination` (N7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_code: Option<String>,
    /// Digits dialled before the destination that force this number, e.g. `801` (N7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_prefix: Option<String>,
    /// The trunk ids it calls out on, in priority order; `None`: every trunk of the tenant,
    /// cheapest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunks: Option<Vec<String>>,
    /// Where the carrier sends calls to this number when the platform cannot take them (N6):
    /// a public number in any written form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_number: Option<String>,
    /// Record outbound calls made with this number (C4). Default false.
    #[serde(default)]
    pub record_outbound: bool,
}

impl Number {
    /// A number routed to `route`, carrier kind, every optional field left out.
    pub fn new(number: impl Into<String>, name: impl Into<String>, route: Target) -> Self {
        Self {
            number: number.into(),
            name: name.into(),
            kind: NumberKind::Carrier,
            wrapup_seconds: None,
            record: false,
            route,
            max_concurrent_calls: None,
            outbound: None,
            carrier: None,
            callee_carriers: None,
            outbound_groups: None,
            short_code: None,
            short_prefix: None,
            trunks: None,
            backup_number: None,
            record_outbound: false,
        }
    }

    /// The outbound settings given for this number, by field name: those that only make
    /// sense for a number that calls out (`outbound: false` is not one of them).
    pub fn outbound_fields(&self) -> Vec<&'static str> {
        [
            ("outbound", self.outbound == Some(true)),
            ("carrier", self.carrier.is_some()),
            ("callee_carriers", self.callee_carriers.is_some()),
            ("outbound_groups", self.outbound_groups.is_some()),
            ("short_code", self.short_code.is_some()),
            ("short_prefix", self.short_prefix.is_some()),
            ("trunks", self.trunks.is_some()),
            ("record_outbound", self.record_outbound),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }

    /// Whether outbound calls with this number are wanted: `outbound` as given, else true
    /// for a carrier number. (A carrier number that is not a valid public number cannot call
    /// out whatever this says; the checks refuse `outbound: true` on one.)
    pub fn outbound_wanted(&self) -> bool {
        self.kind == NumberKind::Carrier && self.outbound.unwrap_or(true)
    }
}

/// Kind of a hotline number (N1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberKind {
    /// A carrier's number: inbound and outbound.
    #[default]
    Carrier,
    /// Inbound and internal only; cannot call out.
    Virtual,
}

/// Where a call goes next. In a file: a mapping with exactly one key, e.g. `{ queue: "200" }`
/// or `{ hangup: { cause: closed } }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// A queue, by id.
    Queue(String),
    /// An extension: one of the agents sharing it (A1).
    Extension(String),
    /// An agent, by id.
    Agent(String),
    /// A ring-all group, by id.
    Group(String),
    /// An IVR menu, by id (not from inside a menu).
    Menu(String),
    /// Hang up with a cause.
    Hangup {
        /// Hang-up cause, a lowercase code.
        cause: String,
    },
}

impl Target {
    /// A hang-up with this cause.
    pub fn hangup(cause: impl Into<String>) -> Self {
        Target::Hangup {
            cause: cause.into(),
        }
    }

    /// The key of this target in a file: `queue`, `extension`, `agent`, `group`, `menu` or
    /// `hangup`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Queue(_) => "queue",
            Target::Extension(_) => "extension",
            Target::Agent(_) => "agent",
            Target::Group(_) => "group",
            Target::Menu(_) => "menu",
            Target::Hangup { .. } => "hangup",
        }
    }
}

/// Always a one-key mapping (`{queue: "200"}`), also with `serde_yaml`, whose derived enum
/// encoding would be a YAML tag (`!queue 200`) that the schema rejects.
impl Serialize for Target {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Hangup<'a> {
            cause: &'a str,
        }
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            Target::Queue(id)
            | Target::Extension(id)
            | Target::Agent(id)
            | Target::Group(id)
            | Target::Menu(id) => map.serialize_entry(self.kind(), id)?,
            Target::Hangup { cause } => map.serialize_entry(self.kind(), &Hangup { cause })?,
        }
        map.end()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Queue(id)
            | Target::Extension(id)
            | Target::Agent(id)
            | Target::Group(id)
            | Target::Menu(id) => write!(f, "{} {id}", self.kind()),
            Target::Hangup { cause } => write!(f, "hangup ({cause})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(json: &str) -> Cost {
        serde_json::from_str(json).expect("a number")
    }

    #[test]
    fn costs_are_read_in_thousandths() {
        assert_eq!(cost("690").milli(), Some(690_000));
        assert_eq!(cost("0").milli(), Some(0));
        assert_eq!(cost("0.5").milli(), Some(500));
        assert_eq!(cost("0.027").milli(), Some(27));
        assert_eq!(cost("1.255").milli(), Some(1255));
        assert_eq!(cost("0.0005").milli(), None);
        assert_eq!(cost("1.2345").milli(), None);
        assert_eq!(cost("-1").milli(), None);
        assert_eq!(cost("-0.5").milli(), None);
        assert_eq!(cost("1e300").milli(), None);
        for milli in [0, 1, 27, 500, 999, 1000, 1255, 690_000, 123_456_789] {
            let c = Cost::from_milli(milli);
            assert_eq!(c.milli(), Some(milli), "{milli}");
            let again: Cost = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
            assert_eq!(again.milli(), Some(milli), "{milli}");
        }
        assert_eq!(Cost::from_milli(690_000), cost("690"));
    }

    #[test]
    fn hosts_and_ports() {
        let hp = HostPort::parse("203.0.113.10").unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("203.0.113.10", 5060));
        assert_eq!(hp.ip, Some(std::net::Ipv4Addr::new(203, 0, 113, 10)));
        let hp = HostPort::parse("Sip-1.Carrier.VN:5080").unwrap();
        assert_eq!(hp.to_string(), "sip-1.carrier.vn:5080");
        assert_eq!(hp.ip, None);
        assert!(HostPort::parse("localhost").is_ok());
        for bad in [
            "",
            ":5060",
            "a..b",
            "-a.b",
            "a-.b",
            "a_b.example",
            "1.2.3.4.5",
            "256.1.1.1",
            "a.b:",
            "a.b:x",
            "a.b:65536",
            "[::1]:5060",
            "::1",
        ] {
            assert!(HostPort::parse(bad).is_err(), "{bad:?}");
        }
    }
}
