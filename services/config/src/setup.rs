//! Conversion of a validated tenant file into the domain's `TenantSetup`.

use std::sync::Arc;

use callgrid_domain::setup::{
    AgentSetup, Defaults as DomainDefaults, GroupSetup, Member as DomainMember, MenuSetup,
    NoAgentsRule, NumberSetup, QueueSetup, Strategy as DomainStrategy, Target as DomainTarget,
    TenantSetup,
};
use callgrid_domain::{AgentId, GroupId, MenuId, QueueId, ReasonCode, TenantId};

use crate::model::{Strategy, Target, TenantFile};

const fn secs(s: u32) -> u64 {
    s as u64 * 1000
}

fn strategy(s: Strategy) -> DomainStrategy {
    match s {
        Strategy::RingAll => DomainStrategy::RingAll,
        Strategy::LongestIdle => DomainStrategy::LongestIdle,
        Strategy::RoundRobin => DomainStrategy::RoundRobin,
        Strategy::LeastTalkTime => DomainStrategy::LeastTalkTime,
        Strategy::FewestCalls => DomainStrategy::FewestCalls,
        Strategy::Linear => DomainStrategy::Linear,
        Strategy::Random => DomainStrategy::Random,
        Strategy::WeightedRandom => DomainStrategy::WeightedRandom,
    }
}

fn target(t: &Target) -> DomainTarget {
    match t {
        Target::Queue(q) => DomainTarget::Queue(QueueId::new(q)),
        Target::Extension(e) => DomainTarget::Extension(Arc::from(e.as_str())),
        Target::Agent(a) => DomainTarget::Agent(AgentId::new(a)),
        Target::Group(g) => DomainTarget::Group(GroupId::new(g)),
        Target::Menu(m) => DomainTarget::Menu(MenuId::new(m)),
        Target::Hangup { cause } => DomainTarget::Hangup(Arc::from(cause.as_str())),
    }
}

/// The domain's view of a tenant file (already validated by `load_*`), as plan `version`.
pub fn to_setup(file: &TenantFile, version: u64) -> TenantSetup {
    let d = &file.defaults;
    let defaults = DomainDefaults {
        wrapup_ms: secs(d.wrapup_seconds),
        ring_timeout_ms: secs(d.ring_timeout_seconds),
        max_missed_offers: d.max_missed_offers,
        busy_delay_ms: secs(d.busy_delay_seconds),
        reject_delay_ms: secs(d.reject_delay_seconds),
        no_answer_delay_ms: secs(d.no_answer_delay_seconds),
        service_level_ms: secs(d.service_level_seconds),
        ..DomainDefaults::default()
    };
    let agents = file
        .agents
        .iter()
        .map(|a| AgentSetup {
            id: AgentId::new(&a.id),
            name: Arc::from(a.name.as_str()),
            extension: Some(Arc::from(a.extension.as_str())),
            skills: a
                .skills
                .iter()
                .map(|(k, v)| (Arc::from(k.as_str()), *v))
                .collect(),
        })
        .collect();
    let queues = file
        .queues
        .iter()
        .map(|q| QueueSetup {
            id: QueueId::new(&q.id),
            name: Arc::from(q.name.as_str()),
            strategy: strategy(q.strategy),
            members: q
                .members
                .iter()
                .map(|m| DomainMember {
                    agent: AgentId::new(&m.agent),
                    tier: m.tier,
                    penalty_ms: secs(m.penalty),
                    weight: m.weight,
                })
                .collect(),
            required_skills: q
                .required_skills
                .iter()
                .map(|(k, v)| (Arc::from(k.as_str()), *v))
                .collect(),
            max_wait_ms: secs(q.max_wait_seconds),
            overflow: target(&q.overflow_target()),
            max_length: q.max_length,
            when_no_agents: NoAgentsRule {
                join: q.when_no_agents.join,
                leave: q.when_no_agents.leave,
            },
            service_level_ms: secs(q.effective_service_level_seconds(d)),
            wrapup_ms: q.wrapup_seconds.map(secs),
            ring_timeout_ms: secs(q.effective_ring_timeout_seconds(d)),
            announce_ms: secs(q.announce_position_seconds),
            callback: q.callback,
            hold_music: Arc::from(q.hold_music.as_str()),
        })
        .collect();
    let groups = file
        .groups
        .iter()
        .map(|g| GroupSetup {
            id: GroupId::new(&g.id),
            members: g.members.iter().map(AgentId::new).collect(),
            ring_timeout_ms: secs(g.effective_ring_timeout_seconds(d)),
            no_answer: target(&g.no_answer_target()),
        })
        .collect();
    let menus = file
        .menus
        .iter()
        .map(|m| MenuSetup {
            id: MenuId::new(&m.id),
            prompt: Arc::from(m.prompt.as_str()),
            timeout_ms: secs(m.timeout_seconds),
            retries: m.retries,
            options: m
                .options
                .iter()
                .filter_map(|(k, t)| k.chars().next().map(|c| (c, target(t))))
                .collect(),
            on_timeout: target(&m.timeout_target()),
            on_invalid: target(&m.invalid_target()),
        })
        .collect();
    let numbers = file
        .numbers
        .iter()
        .map(|n| NumberSetup {
            number: Arc::from(n.number.as_str()),
            route: target(&n.route),
            wrapup_ms: n.wrapup_seconds.map(secs),
            record: n.record || file.record,
            priority: 0,
            max_calls: n.max_concurrent_calls,
        })
        .collect();
    let mut setup = TenantSetup::new(
        TenantId::new(&file.tenant),
        version,
        file.reason_codes.iter().map(ReasonCode::new).collect(),
        defaults,
        agents,
        queues,
        groups,
        menus,
        numbers,
    );
    setup.device_domains = file
        .device_domains
        .iter()
        .filter_map(|d| callgrid_domain::DeviceDomain::parse(d))
        .collect();
    setup.max_calls = Some(
        file.limits
            .max_concurrent_calls
            .unwrap_or(crate::DEFAULT_TENANT_MAX_CALLS),
    );
    // a file that went through the checks reads without problems; one trusted from the log
    // reads what it can (a setting that cannot be read calls out less, never more)
    setup.outbound = Arc::new(crate::outbound::read(file, &mut Vec::new()));
    setup
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_converts_with_every_reference_resolved() {
        let file = crate::load_str("demo.yaml", crate::DEMO_TENANT_YAML).expect("demo loads");
        let setup = to_setup(&file, 3);
        assert_eq!(setup.version, 3);
        assert_eq!(setup.agents.len(), file.agents.len());
        assert_eq!(setup.queues.len(), file.queues.len());
        for q in setup.queues.values() {
            for m in &q.members {
                assert!(setup.agents.contains_key(&m.agent));
            }
        }
        for n in setup.numbers.values() {
            match &n.route {
                DomainTarget::Queue(q) => assert!(setup.queues.contains_key(q)),
                DomainTarget::Menu(m) => assert!(setup.menus.contains_key(m)),
                DomainTarget::Group(g) => assert!(setup.groups.contains_key(g)),
                _ => {}
            }
        }
    }
}
