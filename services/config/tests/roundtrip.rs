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
fn every_outbound_setting_round_trips() {
    let yaml = r#"
tenant: out
name: Out
timezone: Asia/Ho_Chi_Minh
region: VN
agents: [{ id: a, name: A, extension: "10001" }]
queues: [{ id: "200", name: Q, members: [{ agent: a }] }]
numbers:
  - number: "+842873000100"
    name: Main
    route: { queue: "200" }
    outbound: true
    carrier: viettel
    callee_carriers: [viettel, mobifone]
    outbound_groups: ["200"]
    short_code: "12"
    short_prefix: "801"
    trunks: [b, a]
    backup_number: "(090) 345 6789"
    record_outbound: true
  - { number: "02873000200", name: Off, route: { queue: "200" }, outbound: false }
outbound:
  classes: [mobile, international]
  emergency_trunk: b
  fallback_number: "028 7300 0100"
blocklist: ["0987 654 321", "+8490???????", "+841900*"]
trunks:
  - { id: a, name: A, address: "203.0.113.1", cost_per_minute: 0.027, keepalive_seconds: 0 }
  - id: b
    name: B
    address: "sip.carrier.example:5070"
    username: acct
    password: acct-secret-1
    register: { registrar: "sip:reg.carrier.example", expires_seconds: 600 }
    cost_per_minute: 690
    caller_id: { from: account, p_asserted_identity: false }
"#;
    let tenant = load_str("out.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    let written = to_yaml(&tenant);
    let again = load_str("out-again.yaml", &written).unwrap_or_else(|e| panic!("{e}\n{written}"));
    assert_eq!(again, tenant);
    assert_eq!(
        callgrid_config::to_setup(&again, 1),
        callgrid_config::to_setup(&tenant, 1)
    );
    assert_eq!(
        tenant.trunks[0]
            .cost_per_minute
            .as_ref()
            .and_then(|c| c.milli()),
        Some(27)
    );
    validate("out.yaml", &tenant).expect("valid");
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
