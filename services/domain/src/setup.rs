//! A tenant's configuration as the domain sees it: validated, with ids resolved.
//! (The YAML file format and its JSON Schema live in `callgrid-config`, which converts into this.)

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::ids::{AgentId, DurationMs, GroupId, MenuId, QueueId, ReasonCode, TenantId};
use crate::outbound::OutboundSetup;

/// The eight queue strategies (R4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Strategy {
    /// Ring every available member at once; the first to answer takes the call.
    RingAll,
    /// The member who has been available the longest.
    LongestIdle,
    /// The next member after the one offered last (the queue remembers its place).
    RoundRobin,
    /// The member with the least talk time since login.
    LeastTalkTime,
    /// The member who answered the fewest calls since login.
    FewestCalls,
    /// The first available member in the configured order (top-down).
    Linear,
    /// A uniformly random available member.
    Random,
    /// A random available member, chosen with probability proportional to its weight.
    WeightedRandom,
}

impl Strategy {
    /// Every strategy, in a fixed order.
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

    /// The configuration name (`longest_idle`, ...).
    pub fn name(self) -> &'static str {
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

    /// Parses a configuration name.
    pub fn from_name(s: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|st| st.name() == s)
    }
}

/// Where a call goes next: the steps of the minimal routing plan.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Target {
    /// Wait in a queue.
    Queue(QueueId),
    /// Ring the agents behind an extension (one of them takes it, A1).
    Extension(Arc<str>),
    /// Ring one agent.
    Agent(AgentId),
    /// Ring every member of a group at once.
    Group(GroupId),
    /// A one-level IVR menu.
    Menu(MenuId),
    /// Hang up with a cause.
    Hangup(Arc<str>),
}

/// What a number dialled on an agent's phone is inside the tenant ([`TenantSetup::internal`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Internal<'a> {
    /// An extension, with the agents behind it.
    Extension(&'a [AgentId]),
    /// A number of the tenant: its first step.
    Number,
}

/// Tenant-wide defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Defaults {
    /// Wrap-up after a call unless the queue or number says otherwise (A3).
    pub wrapup_ms: DurationMs,
    /// How long an offer rings before it counts as not answered.
    pub ring_timeout_ms: DurationMs,
    /// Offers missed in a row before the agent goes not ready (A3); 0 disables.
    pub max_missed_offers: u32,
    /// No offers for this long after an agent answered busy.
    pub busy_delay_ms: DurationMs,
    /// No offers for this long after an agent rejected an offer.
    pub reject_delay_ms: DurationMs,
    /// No offers for this long after an agent did not answer.
    pub no_answer_delay_ms: DurationMs,
    /// Service-level threshold.
    pub service_level_ms: DurationMs,
    /// Lease of a reservation beyond the ring timeout, before it is repaired (A5).
    pub lease_margin_ms: DurationMs,
    /// An on-call state that no report renews is repaired after this long (A5).
    pub max_call_ms: DurationMs,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            wrapup_ms: 10_000,
            ring_timeout_ms: 20_000,
            max_missed_offers: 3,
            busy_delay_ms: 5_000,
            reject_delay_ms: 5_000,
            no_answer_delay_ms: 5_000,
            service_level_ms: 20_000,
            lease_margin_ms: 10_000,
            max_call_ms: 4 * 3_600_000,
        }
    }
}

/// An agent's static configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentSetup {
    /// The agent.
    pub id: AgentId,
    /// Display name.
    pub name: Arc<str>,
    /// Extension (5-6 digits); several agents may share one.
    pub extension: Option<Arc<str>>,
    /// Skill → proficiency (1..=10).
    pub skills: BTreeMap<Arc<str>, u8>,
}

/// A queue member.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// The agent.
    pub agent: AgentId,
    /// Lower tiers are offered first; a higher tier only when no lower-tier member is available.
    pub tier: u32,
    /// The member is offered a call only after it has waited this long (seconds in the file).
    pub penalty_ms: DurationMs,
    /// Weight for the weighted-random strategy (>= 1).
    pub weight: u32,
}

/// What a queue does when no member is logged in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoAgentsRule {
    /// Accept new calls while no member is logged in.
    pub join: bool,
    /// Send waiting calls to the overflow target when the last member logs out.
    pub leave: bool,
}

/// A queue's configuration (R4).
#[derive(Clone, Debug, PartialEq)]
pub struct QueueSetup {
    /// The queue.
    pub id: QueueId,
    /// Display name.
    pub name: Arc<str>,
    /// How the next agent is chosen.
    pub strategy: Strategy,
    /// Members in configured order (the order `linear` and `round_robin` use).
    pub members: Vec<Member>,
    /// Skill → minimum proficiency a member needs to be offered this queue's calls.
    pub required_skills: BTreeMap<Arc<str>, u8>,
    /// Longest wait before the call goes to `overflow`; 0 = no limit.
    pub max_wait_ms: DurationMs,
    /// Where calls go on timeout, when the queue is full, or when it refuses them.
    pub overflow: Target,
    /// Most calls waiting at once; 0 = unlimited.
    pub max_length: u32,
    /// Rules when no member is logged in.
    pub when_no_agents: NoAgentsRule,
    /// Service-level threshold.
    pub service_level_ms: DurationMs,
    /// Wrap-up after a call from this queue (`None`: the number's, else the default).
    pub wrapup_ms: Option<DurationMs>,
    /// Ring timeout of an offer.
    pub ring_timeout_ms: DurationMs,
    /// Period of the position / expected-wait announcement to waiting callers; 0 = off.
    pub announce_ms: DurationMs,
    /// Whether callers may ask for a callback that keeps their place.
    pub callback: bool,
    /// The hold music prompt.
    pub hold_music: Arc<str>,
}

/// A ring-all group.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupSetup {
    /// The group.
    pub id: GroupId,
    /// Members, rung at once.
    pub members: Vec<AgentId>,
    /// How long the group rings.
    pub ring_timeout_ms: DurationMs,
    /// Where the call goes when nobody answers.
    pub no_answer: Target,
}

/// A one-level IVR menu.
#[derive(Clone, Debug, PartialEq)]
pub struct MenuSetup {
    /// The menu.
    pub id: MenuId,
    /// The greeting prompt.
    pub prompt: Arc<str>,
    /// How long to wait for a digit.
    pub timeout_ms: DurationMs,
    /// How many more times the greeting is played after a timeout or an invalid digit.
    pub retries: u32,
    /// Digit → step.
    pub options: BTreeMap<char, Target>,
    /// Where the call goes after the last timeout.
    pub on_timeout: Target,
    /// Where the call goes after the last invalid digit.
    pub on_invalid: Target,
}

/// A hotline number (DID).
#[derive(Clone, Debug, PartialEq)]
pub struct NumberSetup {
    /// The number as dialled (E.164 or digits).
    pub number: Arc<str>,
    /// The first step of calls to this number.
    pub route: Target,
    /// Wrap-up override for calls to this number (A3, N2).
    pub wrapup_ms: Option<DurationMs>,
    /// Record calls to this number (C4).
    pub record: bool,
    /// Priority of calls to this number in queues (higher first).
    pub priority: u32,
    /// Most calls on this number in progress at once (N8); `None` = no limit.
    pub max_calls: Option<u32>,
}

/// A tenant's whole configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantSetup {
    /// The tenant.
    pub tenant: TenantId,
    /// Version of this configuration (routing-plan version, R9).
    pub version: u64,
    /// Not-ready reasons agents may use.
    pub reason_codes: Vec<ReasonCode>,
    /// Defaults.
    pub defaults: Defaults,
    /// Agents by id.
    pub agents: BTreeMap<AgentId, AgentSetup>,
    /// Queues by id.
    pub queues: BTreeMap<QueueId, QueueSetup>,
    /// Groups by id.
    pub groups: BTreeMap<GroupId, GroupSetup>,
    /// Menus by id.
    pub menus: BTreeMap<MenuId, MenuSetup>,
    /// Numbers by number.
    pub numbers: BTreeMap<Arc<str>, NumberSetup>,
    /// Derived: the queues each agent is a member of.
    pub agent_queues: HashMap<AgentId, Vec<QueueId>>,
    /// Derived: the agents behind each extension.
    pub extensions: HashMap<Arc<str>, Vec<AgentId>>,
    /// Most calls of the tenant in progress at once (N8); `None` = no limit.
    pub max_calls: Option<u32>,
    /// Where an agent's login devices may be (`sip:user@HOST`); none: loopback only. A device
    /// is a SIP URI the edge rings: one anywhere would let an agent's credentials place calls
    /// to any destination at the tenant's cost.
    pub device_domains: Vec<DeviceDomain>,
    /// Outbound calling (issue 18): the region numbers are read in, the classes agents may
    /// dial, the numbers that call out and their trunks, the blocklist. Shared: cloning a
    /// setup clones the `Arc`.
    pub outbound: Arc<OutboundSetup>,
}

/// A place login devices may be: a host name, or an IP network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceDomain {
    /// A host name, lowercase (`pbx.example.com`).
    Host(String),
    /// An IP network (`10.0.0.0/8`, `192.0.2.7`).
    Net(std::net::IpAddr, u8),
}

impl DeviceDomain {
    /// `HOST`, `ADDR` or `ADDR/BITS`; `None` if it is none of them.
    pub fn parse(s: &str) -> Option<DeviceDomain> {
        let s = s.trim();
        if let Some((a, b)) = s.split_once('/') {
            let ip: std::net::IpAddr = a.parse().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits: u8 = b.parse().ok().filter(|b| *b <= max)?;
            return Some(DeviceDomain::Net(ip, bits));
        }
        if let Ok(ip) = s.parse::<std::net::IpAddr>() {
            return Some(DeviceDomain::Net(ip, if ip.is_ipv4() { 32 } else { 128 }));
        }
        let host = s.to_ascii_lowercase();
        let ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        ok.then_some(DeviceDomain::Host(host))
    }

    fn covers(&self, host: &str) -> bool {
        match self {
            DeviceDomain::Host(h) => h.eq_ignore_ascii_case(host),
            DeviceDomain::Net(net, bits) => match host.parse::<std::net::IpAddr>() {
                Ok(ip) => in_net(*net, *bits, ip),
                Err(_) => false,
            },
        }
    }
}

fn in_net(net: std::net::IpAddr, bits: u8, ip: std::net::IpAddr) -> bool {
    let (n, a): (Vec<u8>, Vec<u8>) = match (net, ip) {
        (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) => {
            (n.octets().into(), a.octets().into())
        }
        (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) => {
            (n.octets().into(), a.octets().into())
        }
        _ => return false,
    };
    let full = (bits / 8) as usize;
    if n[..full] != a[..full] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || (n[full] & (0xffu8 << (8 - rest))) == (a[full] & (0xffu8 << (8 - rest)))
}

/// The host of a `sip:` / `sips:` URI (`sip:user@host:port;params`), if it is one.
pub fn sip_uri_host(uri: &str) -> Option<&str> {
    let uri = uri.trim();
    let lower = uri
        .get(..5)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let rest = if lower.starts_with("sips:") {
        &uri[5..]
    } else if lower.starts_with("sip:") {
        &uri[4..]
    } else {
        return None;
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let rest = rest.split([';', '?', '>']).next()?;
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        rest.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

impl TenantSetup {
    /// Whether an agent may log in with `device`: a SIP URI whose host is loopback, or in
    /// one of the tenant's device domains.
    pub fn device_allowed(&self, device: &str) -> bool {
        let Some(host) = sip_uri_host(device) else {
            return false;
        };
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        loopback || self.device_domains.iter().any(|d| d.covers(host))
    }

    /// What an agent's phone dialling `dialled` reaches inside the tenant (issue 18): an
    /// extension (its agents) or a number of the tenant, as written; `None`: a call out.
    pub fn internal(&self, dialled: &str) -> Option<Internal<'_>> {
        let dialled = dialled.trim();
        if let Some(agents) = self.extensions.get(dialled) {
            return Some(Internal::Extension(agents));
        }
        self.numbers
            .contains_key(dialled)
            .then_some(Internal::Number)
    }

    /// Where a transfer to `to` goes (C5). `kind:id` names the step exactly (`queue:200`,
    /// `agent:ann`, `extension:20001`, `group:g`, `menu:100`); a bare name is looked up as an
    /// extension, then a queue, an agent, a group, a menu, and last a number of the tenant
    /// (whose first step is taken). `None` when the tenant has nothing by that name.
    pub fn transfer_target(&self, to: &str) -> Option<Target> {
        let to = to.trim();
        if let Some((kind, id)) = to.split_once(':') {
            return self.named_step(kind, id);
        }
        if to.is_empty() {
            return None;
        }
        ["extension", "queue", "agent", "group", "menu", "number"]
            .into_iter()
            .find_map(|kind| self.named_step(kind, to))
    }

    /// The step `kind` `id` names, if the tenant has it.
    fn named_step(&self, kind: &str, id: &str) -> Option<Target> {
        match kind {
            "queue" => self
                .queues
                .contains_key(id)
                .then(|| Target::Queue(QueueId::new(id))),
            "agent" => self
                .agents
                .contains_key(id)
                .then(|| Target::Agent(AgentId::new(id))),
            "extension" => self
                .extensions
                .contains_key(id)
                .then(|| Target::Extension(Arc::from(id))),
            "group" => self
                .groups
                .contains_key(id)
                .then(|| Target::Group(GroupId::new(id))),
            "menu" => self
                .menus
                .contains_key(id)
                .then(|| Target::Menu(MenuId::new(id))),
            "number" => self.numbers.get(id).map(|n| n.route.clone()),
            _ => None,
        }
    }

    /// Builds a setup and its derived indexes.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tenant: TenantId,
        version: u64,
        reason_codes: Vec<ReasonCode>,
        defaults: Defaults,
        agents: Vec<AgentSetup>,
        queues: Vec<QueueSetup>,
        groups: Vec<GroupSetup>,
        menus: Vec<MenuSetup>,
        numbers: Vec<NumberSetup>,
    ) -> TenantSetup {
        let mut setup = TenantSetup {
            tenant,
            version,
            reason_codes,
            defaults,
            agents: agents.into_iter().map(|a| (a.id.clone(), a)).collect(),
            queues: queues.into_iter().map(|q| (q.id.clone(), q)).collect(),
            groups: groups.into_iter().map(|g| (g.id.clone(), g)).collect(),
            menus: menus.into_iter().map(|m| (m.id.clone(), m)).collect(),
            numbers: numbers.into_iter().map(|n| (n.number.clone(), n)).collect(),
            agent_queues: HashMap::new(),
            extensions: HashMap::new(),
            max_calls: None,
            device_domains: Vec::new(),
            outbound: OutboundSetup::shared_none(),
        };
        setup.reindex();
        setup
    }

    /// Recomputes the derived indexes.
    pub fn reindex(&mut self) {
        self.agent_queues.clear();
        for q in self.queues.values() {
            for m in &q.members {
                self.agent_queues
                    .entry(m.agent.clone())
                    .or_default()
                    .push(q.id.clone());
            }
        }
        self.extensions.clear();
        for a in self.agents.values() {
            if let Some(ext) = &a.extension {
                self.extensions
                    .entry(ext.clone())
                    .or_default()
                    .push(a.id.clone());
            }
        }
    }

    /// The queues an agent belongs to.
    pub fn queues_of(&self, agent: &AgentId) -> &[QueueId] {
        self.agent_queues
            .get(agent)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The ids of the queues and ring-all groups `agent` is a member of, in that order: what a
    /// number's `outbound_groups` are matched against (N2).
    pub fn outbound_groups_of(&self, agent: &AgentId) -> Vec<&str> {
        let queues = self.queues_of(agent).iter().map(QueueId::as_str);
        let groups = self
            .groups
            .values()
            .filter(|g| g.members.contains(agent))
            .map(|g| g.id.as_str());
        queues.chain(groups).collect()
    }

    /// Whether `reason` is one of the tenant's reason codes.
    pub fn has_reason(&self, reason: &ReasonCode) -> bool {
        self.reason_codes.iter().any(|r| r == reason)
    }

    /// A small tenant for tests and the simulator: `agents` agents named `a0..`, all in
    /// one queue `200` with the given strategy, one number `100` routed to it.
    pub fn single_queue(tenant: &str, agents: usize, strategy: Strategy) -> TenantSetup {
        let defaults = Defaults {
            wrapup_ms: 0,
            ..Defaults::default()
        };
        let agent_setups: Vec<AgentSetup> = (0..agents)
            .map(|i| AgentSetup {
                id: AgentId::new(format!("a{i}")),
                name: Arc::from(format!("Agent {i}")),
                extension: Some(Arc::from(format!("{}", 10000 + i))),
                skills: BTreeMap::new(),
            })
            .collect();
        let members = agent_setups
            .iter()
            .map(|a| Member {
                agent: a.id.clone(),
                tier: 1,
                penalty_ms: 0,
                weight: 1,
            })
            .collect();
        let queue = QueueSetup {
            id: QueueId::new("200"),
            name: Arc::from("Queue 200"),
            strategy,
            members,
            required_skills: BTreeMap::new(),
            max_wait_ms: 0,
            overflow: Target::Hangup(Arc::from("queue_timeout")),
            max_length: 0,
            when_no_agents: NoAgentsRule {
                join: true,
                leave: false,
            },
            service_level_ms: defaults.service_level_ms,
            wrapup_ms: Some(0),
            ring_timeout_ms: defaults.ring_timeout_ms,
            announce_ms: 0,
            callback: true,
            hold_music: Arc::from("hold"),
        };
        let number = NumberSetup {
            number: Arc::from("100"),
            route: Target::Queue(QueueId::new("200")),
            wrapup_ms: None,
            record: false,
            priority: 0,
            max_calls: None,
        };
        TenantSetup::new(
            TenantId::new(tenant),
            1,
            vec![ReasonCode::new("break"), ReasonCode::new("lunch")],
            defaults,
            agent_setups,
            vec![queue],
            vec![],
            vec![],
            vec![number],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_devices_must_be_on_loopback_or_in_the_device_domains() {
        let mut s = TenantSetup::new(
            TenantId::new("t"),
            1,
            vec![],
            Defaults::default(),
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
        );
        assert!(s.device_allowed("sip:alice@127.0.0.1:5999"));
        assert!(s.device_allowed("sip:alice@localhost"));
        assert!(s.device_allowed("sip:alice@[::1]:5060;transport=tcp"));
        assert!(!s.device_allowed("sip:premium@evil.example"));
        assert!(!s.device_allowed("sip:1900123@203.0.113.9"));
        assert!(!s.device_allowed("tel:+84900000000"));
        assert!(!s.device_allowed("alice"));
        s.device_domains = ["pbx.example.com", "10.0.0.0/8", "192.0.2.7"]
            .iter()
            .filter_map(|d| DeviceDomain::parse(d))
            .collect();
        assert!(s.device_allowed("sip:a@PBX.example.com:5060"));
        assert!(s.device_allowed("sips:a@10.20.30.40"));
        assert!(s.device_allowed("sip:a@192.0.2.7;transport=udp"));
        assert!(!s.device_allowed("sip:a@192.0.2.8"));
        assert!(!s.device_allowed("sip:a@evil.pbx.example.com"));
        assert!(DeviceDomain::parse("10.0.0.0/33").is_none());
        assert!(DeviceDomain::parse("bad host!").is_none());
    }

    #[test]
    fn an_agents_outbound_groups_are_its_queues_then_its_ring_all_groups() {
        let mut s = TenantSetup::single_queue("t", 3, Strategy::Linear);
        s.groups.insert(
            GroupId::new("1000"),
            GroupSetup {
                id: GroupId::new("1000"),
                members: vec![AgentId::new("a1")],
                ring_timeout_ms: 20_000,
                no_answer: Target::Hangup(Arc::from("no_answer")),
            },
        );
        assert_eq!(s.outbound_groups_of(&AgentId::new("a1")), ["200", "1000"]);
        assert_eq!(s.outbound_groups_of(&AgentId::new("a0")), ["200"]);
        assert!(s.outbound_groups_of(&AgentId::new("nobody")).is_empty());
        // a setup built in code calls nothing out, and clones share the outbound part
        assert!(s.outbound.numbers.numbers().is_empty());
        assert!(Arc::ptr_eq(&s.outbound, &s.clone().outbound));
    }
}
