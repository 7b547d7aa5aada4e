//! Large, valid tenant configurations for scale tests, and serialization back to YAML.

use std::collections::BTreeMap;

use crate::model::{
    Agent, Defaults, Group, Member, Menu, Number, NumberKind, Queue, SipPassword, Strategy, Target,
    TenantFile, WhenNoAgents, CAUSE_INVALID_INPUT,
};

/// Skill names the generator hands out.
const SKILLS: [&str; 8] = [
    "vietnamese",
    "english",
    "french",
    "japanese",
    "billing",
    "technical",
    "sales",
    "vip",
];

/// Most queues a generated tenant has: queue ids `2000000`..=`2999999` when there are more
/// than 100 (`200`..=`299` otherwise).
pub const MAX_GENERATED_QUEUES: usize = 1_000_000;

/// Generates a valid tenant (it passes [`crate::validate`]) with `agents` agents and
/// `queues` queues of `agents_per_queue` members each (at most `agents`), deterministically
/// from `seed`.
///
/// - agents `agent-0`, `agent-1`, ... with extensions from `10000` (5 then 6 digits; past
///   990 000 agents, extensions are shared, which A1 allows), SIP passwords and 1-3 skills;
/// - queues `200`, `201`, ... (or `2000000`, ... above 100 queues, at most
///   [`MAX_GENERATED_QUEUES`]) cycling through the eight strategies, with tiers, penalties,
///   weights, skills their first member has, and overflow to the next queue on even ones;
/// - one ring-all group per 20 agents (at most 9000) of up to 10 members;
/// - menu `100` when there is anything to route to: keys 1-9 to the first queues, 0 to the
///   first group (or the first agent's extension);
/// - numbers `+999SSSSSSSNNN` (an unassigned E.164 country code; `SSSSSSS` is
///   `seed % 10_000_000`): one to the menu, one per queue for the first 100 queues, one to
///   the first group. Give each tenant of a directory its own seed so numbers do not clash.
///
/// `tenant_id` must itself be a valid tenant id.
pub fn generate_tenant(
    tenant_id: &str,
    agents: usize,
    queues: usize,
    agents_per_queue: usize,
    seed: u64,
) -> TenantFile {
    let mut rng = SplitMix64(seed ^ 0x6361_6c6c_6772_6964); // "callgrid"
    let queues = queues.min(MAX_GENERATED_QUEUES);

    let agent_list: Vec<Agent> = (0..agents)
        .map(|i| {
            let extension = match i {
                0..=89_999 => 10_000 + i,
                90_000..=989_999 => 100_000 + (i - 90_000),
                _ => 10_000 + i % 90_000,
            };
            let mut skills = BTreeMap::new();
            for _ in 0..1 + rng.below(3) {
                let skill = SKILLS[rng.below(SKILLS.len())];
                skills.insert(skill.to_owned(), 1 + rng.below(10) as u8);
            }
            Agent {
                id: format!("agent-{i}"),
                name: format!("Agent {i}"),
                extension: extension.to_string(),
                sip_password: Some(SipPassword::new(format!(
                    "pw-{tenant_id}-{i}-{}",
                    rng.next() % 100_000
                ))),
                sip_ha1: None,
                skills,
            }
        })
        .collect();

    let queue_id = |i: usize| {
        if queues <= 100 {
            (200 + i).to_string()
        } else {
            (2_000_000 + i).to_string()
        }
    };
    let per_queue = agents_per_queue.min(agents);
    let queue_list: Vec<Queue> = (0..queues)
        .map(|i| {
            let start = if agents == 0 { 0 } else { rng.below(agents) };
            let members: Vec<Member> = (0..per_queue)
                .map(|k| Member {
                    agent: agent_list[(start + k) % agents].id.clone(),
                    tier: 1 + rng.below(3) as u32,
                    penalty: rng.below(5) as u32,
                    weight: 1 + rng.below(10) as u32,
                })
                .collect();
            let mut required_skills = BTreeMap::new();
            if i % 3 == 0 && per_queue > 0 {
                // A skill the first member has, so the queue can be served.
                if let Some(skill) = agent_list[start].skills.keys().next() {
                    required_skills.insert(skill.clone(), 1);
                }
            }
            let overflow = (i % 2 == 0 && i + 1 < queues).then(|| Target::Queue(queue_id(i + 1)));
            Queue {
                id: queue_id(i),
                name: format!("Queue {i}"),
                strategy: Strategy::ALL[i % Strategy::ALL.len()],
                members,
                required_skills,
                max_wait_seconds: if overflow.is_some() { 300 } else { 0 },
                overflow,
                max_length: if i % 4 == 1 { 50 } else { 0 },
                when_no_agents: WhenNoAgents {
                    join: true,
                    leave: i % 5 == 0,
                },
                service_level_seconds: Some(20),
                wrapup_seconds: (i % 3 == 1).then_some(15),
                ring_timeout_seconds: (i % 3 == 2).then_some(15),
                announce_position_seconds: if i % 2 == 0 { 30 } else { 0 },
                callback: i % 2 == 1,
                hold_music: "default".to_owned(),
            }
        })
        .collect();

    let group_count = (agents / 20).min(9000).max(usize::from(agents > 0));
    let group_list: Vec<Group> = (0..group_count)
        .map(|i| Group {
            id: (1000 + i).to_string(),
            name: format!("Group {i}"),
            members: (0..agents.min(10))
                .map(|k| agent_list[(i * 20 + k) % agents].id.clone())
                .collect(),
            ring_timeout_seconds: Some(20),
            no_answer: queue_list.first().map(|q| Target::Queue(q.id.clone())),
        })
        .collect();

    let mut options = BTreeMap::new();
    for (k, queue) in queue_list.iter().take(9).enumerate() {
        options.insert((k + 1).to_string(), Target::Queue(queue.id.clone()));
    }
    if let Some(group) = group_list.first() {
        options.insert("0".to_owned(), Target::Group(group.id.clone()));
    } else if let Some(agent) = agent_list.first() {
        options.insert("0".to_owned(), Target::Extension(agent.extension.clone()));
    }
    let menu_list: Vec<Menu> = if options.is_empty() {
        Vec::new()
    } else {
        vec![Menu {
            id: "100".to_owned(),
            name: "Main menu".to_owned(),
            prompt: "welcome".to_owned(),
            timeout_seconds: 5,
            retries: 2,
            on_timeout: options.values().next().cloned(),
            options,
            on_invalid: Some(Target::hangup(CAUSE_INVALID_INPUT)),
        }]
    };

    let prefix = format!("+999{:07}", seed % 10_000_000);
    let mut routes: Vec<(String, Target)> = Vec::new();
    if let Some(menu) = menu_list.first() {
        routes.push(("Main hotline".to_owned(), Target::Menu(menu.id.clone())));
    }
    for queue in queue_list.iter().take(100) {
        routes.push((
            format!("{} line", queue.name),
            Target::Queue(queue.id.clone()),
        ));
    }
    if let Some(group) = group_list.first() {
        routes.push((
            format!("{} line", group.name),
            Target::Group(group.id.clone()),
        ));
    }
    if routes.is_empty() {
        routes.push(("Closed line".to_owned(), Target::hangup("closed")));
    }
    let number_list: Vec<Number> = routes
        .into_iter()
        .enumerate()
        .map(|(i, (name, route))| Number {
            kind: if i % 4 == 3 {
                NumberKind::Virtual
            } else {
                NumberKind::Carrier
            },
            wrapup_seconds: (i % 2 == 1).then_some(10),
            record: i % 3 == 0,
            ..Number::new(format!("{prefix}{i:03}"), name, route)
        })
        .collect();

    TenantFile {
        tenant: tenant_id.to_owned(),
        name: format!("Generated tenant {tenant_id}"),
        timezone: "Asia/Ho_Chi_Minh".to_owned(),
        region: crate::DEFAULT_REGION.to_owned(),
        reason_codes: ["break", "lunch", "meeting", "training"]
            .map(str::to_owned)
            .to_vec(),
        defaults: Defaults::default(),
        agents: agent_list,
        queues: queue_list,
        groups: group_list,
        menus: menu_list,
        numbers: number_list,
        trunks: Vec::new(),
        limits: Default::default(),
        outbound: Default::default(),
        blocklist: Vec::new(),
        device_domains: Vec::new(),
        record: false,
        out_of_service: false,
    }
}

/// Serializes a tenant back to YAML that [`crate::load_str`] reads to an equal value.
pub fn to_yaml(tenant: &TenantFile) -> String {
    // Only string-keyed maps and plain values: serializing cannot fail.
    serde_yaml::to_string(tenant).expect("a tenant file always serializes to yaml")
}

/// SplitMix64: small, fast, deterministic; enough for test data.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
