//! A directory of many large generated tenants loads (behaviour only; timings belong in
//! loadtest/).

use std::fs;

use callgrid_config::{generate_tenant, load_dir, to_yaml};

const TENANTS: usize = 500;
const AGENTS: usize = 200;
const QUEUES: usize = 20;
const AGENTS_PER_QUEUE: usize = 20;

#[test]
fn five_hundred_generated_tenants_load_from_a_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut expected = Vec::with_capacity(TENANTS);
    for i in 0..TENANTS {
        let tenant = generate_tenant(
            &format!("tenant-{i:03}"),
            AGENTS,
            QUEUES,
            AGENTS_PER_QUEUE,
            i as u64,
        );
        fs::write(
            dir.path().join(format!("tenant-{i:03}.yaml")),
            to_yaml(&tenant),
        )
        .expect("write");
        expected.push(tenant);
    }
    let loaded = load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.len(), TENANTS);
    assert_eq!(loaded, expected);
    let agents: usize = loaded.iter().map(|t| t.agents.len()).sum();
    assert_eq!(agents, TENANTS * AGENTS);
}
