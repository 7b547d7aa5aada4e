//! The store conformance suite against ScyllaDB, when `CALLGRID_TEST_SCYLLA` names a node
//! (`host:port`); each case gets its own keyspace, dropped afterwards. Without it, every case
//! and one test of its own say loudly that the suite was skipped and why (no ScyllaDB server
//! can be installed on the machine CI runs on); `.config/nextest.toml` shows their output even
//! when they pass.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use callgrid_store::conformance::TestStore;
use callgrid_store::{ScyllaOptions, ScyllaStore};

const SKIPPED: &str = "SKIPPED: ScyllaDB store conformance suite: CALLGRID_TEST_SCYLLA is not set (no ScyllaDB node is reachable on this machine)";

fn node() -> Option<String> {
    std::env::var("CALLGRID_TEST_SCYLLA")
        .ok()
        .filter(|s| !s.is_empty())
}

#[test]
fn scylla_suite_runs_only_with_a_node() {
    match node() {
        Some(n) => println!("ScyllaDB store conformance suite: running against {n}"),
        None => {
            println!("{SKIPPED}");
            eprintln!("{SKIPPED}");
        }
    }
}

/// Drops its keyspace when the case ends.
struct Keyspace(Option<Arc<ScyllaStore>>);

impl Drop for Keyspace {
    fn drop(&mut self) {
        if let Some(store) = self.0.take() {
            // a fresh runtime: the case's own is shutting down
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Runtime::new() {
                    let _ = rt.block_on(store.drop_keyspace());
                }
            })
            .join();
        }
    }
}

async fn scylla() -> Option<TestStore> {
    let node = node()?;
    // unique per case: nextest runs each case in its own process, at the same time
    static CASES: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut options = ScyllaOptions::new(vec![node]);
    options.keyspace = format!(
        "callgrid_test_{}_{}_{}",
        std::process::id(),
        nanos,
        CASES.fetch_add(1, Ordering::Relaxed)
    );
    let store = Arc::new(
        ScyllaStore::connect(&options)
            .await
            .expect("ScyllaDB reachable"),
    );
    Some(TestStore::new(store.clone(), Keyspace(Some(store))))
}

callgrid_store::store_conformance_tests!(scylla, skipped = SKIPPED);
