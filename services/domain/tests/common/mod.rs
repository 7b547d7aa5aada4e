//! A small tenant used by the scenario and property tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::Arc;

use callgrid_domain::setup::{
    AgentSetup, Defaults, GroupSetup, Member, MenuSetup, NoAgentsRule, NumberSetup, QueueSetup,
};
use callgrid_domain::*;

pub fn agent(id: &str, ext: &str, skills: &[(&str, u8)]) -> AgentSetup {
    AgentSetup {
        id: AgentId::new(id),
        name: Arc::from(id),
        extension: Some(Arc::from(ext)),
        skills: skills.iter().map(|(s, p)| (Arc::from(*s), *p)).collect(),
    }
}

pub fn member(id: &str, tier: u32) -> Member {
    Member {
        agent: AgentId::new(id),
        tier,
        penalty_ms: 0,
        weight: 1,
    }
}

pub fn queue(id: &str, strategy: Strategy, members: Vec<Member>) -> QueueSetup {
    QueueSetup {
        id: QueueId::new(id),
        name: Arc::from(id),
        strategy,
        members,
        required_skills: BTreeMap::new(),
        max_wait_ms: 120_000,
        overflow: Target::Hangup(Arc::from("queue_timeout")),
        max_length: 0,
        when_no_agents: NoAgentsRule {
            join: true,
            leave: false,
        },
        service_level_ms: 20_000,
        wrapup_ms: Some(5_000),
        ring_timeout_ms: 15_000,
        announce_ms: 0,
        callback: true,
        hold_music: Arc::from("hold"),
    }
}

pub fn number(n: &str, route: Target) -> NumberSetup {
    NumberSetup {
        number: Arc::from(n),
        route,
        wrapup_ms: None,
        record: false,
        priority: 0,
        max_calls: None,
    }
}

/// 4 agents; queue 200 (longest idle: a, b, c), queue 201 (ring all: b, c, d),
/// group 1000 (a, d), menu 100 (1 → 200, 2 → 201, 0 → extension 10001);
/// numbers: 111 → 200, 222 → 201, 333 → menu, 444 → group, 555 → agent d.
pub fn tenant() -> Arc<TenantSetup> {
    let agents = vec![
        agent("a", "10001", &[("en", 5)]),
        agent("b", "10002", &[("en", 3)]),
        agent("c", "10003", &[]),
        agent("d", "10004", &[("en", 9)]),
    ];
    let q200 = queue(
        "200",
        Strategy::LongestIdle,
        vec![member("a", 1), member("b", 1), member("c", 2)],
    );
    let q201 = queue(
        "201",
        Strategy::RingAll,
        vec![member("b", 1), member("c", 1), member("d", 1)],
    );
    let group = GroupSetup {
        id: GroupId::new("1000"),
        members: vec![AgentId::new("a"), AgentId::new("d")],
        ring_timeout_ms: 10_000,
        no_answer: Target::Queue(QueueId::new("200")),
    };
    let menu = MenuSetup {
        id: MenuId::new("100"),
        prompt: Arc::from("welcome"),
        timeout_ms: 5_000,
        retries: 1,
        options: [
            ('1', Target::Queue(QueueId::new("200"))),
            ('2', Target::Queue(QueueId::new("201"))),
            ('0', Target::Extension(Arc::from("10001"))),
        ]
        .into_iter()
        .collect(),
        on_timeout: Target::Queue(QueueId::new("200")),
        on_invalid: Target::Hangup(Arc::from("invalid_input")),
    };
    Arc::new(TenantSetup::new(
        TenantId::new("t1"),
        1,
        vec![ReasonCode::new("break"), ReasonCode::new("lunch")],
        Defaults::default(),
        agents,
        vec![q200, q201],
        vec![group],
        vec![menu],
        vec![
            number("111", Target::Queue(QueueId::new("200"))),
            number("222", Target::Queue(QueueId::new("201"))),
            number("333", Target::Menu(MenuId::new("100"))),
            number("444", Target::Group(GroupId::new("1000"))),
            number("555", Target::Agent(AgentId::new("d"))),
        ],
    ))
}

pub fn login(core: &mut TenantCore, a: &str, now: TimeMs) -> Output {
    core.execute(
        Command::Agent(
            AgentId::new(a),
            AgentCommand::Login {
                devices: vec![DeviceId::new(format!("sip:{a}@127.0.0.1"))],
                not_ready: None,
            },
        ),
        now,
    )
    .expect("login")
}

pub fn arrive(core: &mut TenantCore, call: &str, number: &str, now: TimeMs) -> Output {
    core.execute(
        Command::Call(
            CallId::new(call),
            CallCommand::Arrive {
                number: Arc::from(number),
                caller: Arc::from("0961234566"),
            },
        ),
        now,
    )
    .expect("arrive")
}

pub fn call_cmd(
    core: &mut TenantCore,
    call: &str,
    cmd: CallCommand,
    now: TimeMs,
) -> Result<Output, Rejection> {
    core.execute(Command::Call(CallId::new(call), cmd), now)
}

pub fn rings(out: &Output) -> Vec<String> {
    out.instructions
        .iter()
        .filter_map(|(_, i)| match i {
            Instruction::Ring { agent, .. } => Some(agent.to_string()),
            _ => None,
        })
        .collect()
}
