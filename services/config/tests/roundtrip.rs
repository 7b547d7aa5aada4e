//! `to_yaml` writes what `load_str` reads back to an equal value; generated tenants are valid.

use callgrid_config::{generate_tenant, load_str, to_yaml, validate, Strategy, DEMO_TENANT_YAML};

#[test]
fn demo_round_trips() {
    let demo = load_str("demo.yaml", DEMO_TENANT_YAML).expect("demo");
    let yaml = to_yaml(&demo);
    assert!(
        !yaml.contains('!'),
        "targets are mappings, not yaml tags:\n{yaml}"
    );
    let again = load_str("demo-again.yaml", &yaml).expect("to_yaml output loads");
    assert_eq!(again, demo);
}

#[test]
fn generated_tenants_are_valid_and_round_trip() {
    for (agents, queues, per_queue, seed) in [
        (0, 0, 0, 1),
        (1, 0, 5, 2),
        (0, 3, 5, 3),
        (25, 8, 30, 4),
        (200, 20, 20, 5),
        (300, 150, 10, 6),
    ] {
        let tenant = generate_tenant("gen", agents, queues, per_queue, seed);
        validate("gen.yaml", &tenant)
            .unwrap_or_else(|e| panic!("{agents}/{queues}/{per_queue}: {e}"));
        let again = load_str("gen.yaml", &to_yaml(&tenant))
            .unwrap_or_else(|e| panic!("{agents}/{queues}/{per_queue}: {e}"));
        assert_eq!(again, tenant);
        assert_eq!(tenant.agents.len(), agents);
        assert_eq!(tenant.queues.len(), queues);
        for queue in &tenant.queues {
            assert_eq!(queue.members.len(), per_queue.min(agents));
        }
    }
}

#[test]
fn generation_is_deterministic_and_uses_every_strategy() {
    let a = generate_tenant("t1", 100, 16, 10, 42);
    assert_eq!(a, generate_tenant("t1", 100, 16, 10, 42));
    assert_ne!(a, generate_tenant("t1", 100, 16, 10, 43));
    for strategy in Strategy::ALL {
        assert!(
            a.queues.iter().any(|q| q.strategy == strategy),
            "{strategy}"
        );
    }
}

#[test]
fn many_queues_use_long_queue_ids() {
    let tenant = generate_tenant("big", 50, 101, 3, 7);
    assert_eq!(tenant.queues[0].id, "2000000");
    assert_eq!(tenant.queues[100].id, "2000100");
    validate("big.yaml", &tenant).expect("valid");
}
