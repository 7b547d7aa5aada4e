//! The store conformance suite against ScyllaDB, when `CALLGRID_TEST_SCYLLA` names a node
//! (`host:port`); each case gets its own keyspace, dropped afterwards. Without it, one test
//! says loudly that the suite was skipped and why (no ScyllaDB server can be installed on the
//! machine CI runs on); `.config/nextest.toml` shows its output even when it passes.

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
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut options = ScyllaOptions::new(vec![node]);
    options.keyspace = format!("callgrid_test_{}", n % 1_000_000_000_000);
    let store = Arc::new(
        ScyllaStore::connect(&options)
            .await
            .expect("ScyllaDB reachable"),
    );
    Some(TestStore::new(store.clone(), Keyspace(Some(store))))
}

macro_rules! scylla_cases {
    ($($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                match scylla().await {
                    Some(store) => callgrid_store::conformance::$case(store).await,
                    None => eprintln!("{SKIPPED}"),
                }
            }
        )*
    };
}

scylla_cases!(
    every_row_kind_round_trips,
    a_write_replaces_the_row,
    checkpoints_follow_their_batches,
    clear_removes_everything,
    live_views_leave_ended_calls_out,
    span_reads_honour_the_span_and_order,
    tenants_are_isolated,
    bad_input_is_refused,
    dump_is_every_row_in_key_order,
    a_large_batch_writes_whole,
);
