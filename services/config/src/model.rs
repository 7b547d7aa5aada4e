//! The serde model of a tenant file.
//!
//! Field names, defaults and ranges are those of `schemas/tenant.schema.json`; a value that
//! went through [`crate::load_str`] satisfies both the schema and the cross-field rules.
//! Omitted optional fields take their defaults here; the `Option` fields are overrides that
//! fall back to [`Defaults`] (see the `effective_*` methods).

use std::collections::BTreeMap;
use std::fmt;

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
    /// Where agents' login devices may be (host names, addresses, `ADDR/BITS` networks);
    /// loopback is always allowed, nothing else by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_domains: Vec<String>,
    /// Record every inbound call (C4). Default false.
    #[serde(default)]
    pub record: bool,
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
    /// IPv4 address with an optional port (default 5060).
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
}

impl Trunk {
    /// The trunk's socket address (port 5060 when the file gives none).
    pub fn socket_addr(&self) -> Option<std::net::SocketAddr> {
        let with_port = if self.address.contains(':') {
            self.address.clone()
        } else {
            format!("{}:5060", self.address)
        };
        with_port.parse().ok()
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
    /// E.164 with a leading `+`, or national digits; 3 to 15 digits.
    pub number: String,
    /// Display name.
    pub name: String,
    /// Carrier or virtual number. Default [`NumberKind::Carrier`].
    #[serde(default)]
    pub kind: NumberKind,
    /// Overrides `defaults.wrapup_seconds` for calls on this number (a queue's override wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapup_seconds: Option<u32>,
    /// Record calls on this number (C4). Default false.
    #[serde(default)]
    pub record: bool,
    /// Where inbound calls go.
    pub route: Target,
    /// Most calls on this number at once (N8); `None` = no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_calls: Option<u32>,
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
