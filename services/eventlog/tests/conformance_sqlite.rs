//! The conformance suite against the embedded SQLite backend: one `#[test]`
//! per case, plus the whole suite through `run_all` once.

use callgrid_eventlog::conformance::{run_all, sqlite_test_log};

callgrid_eventlog::conformance_tests!(callgrid_eventlog::conformance::sqlite_test_log);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_all_runs_the_whole_suite() {
    run_all(sqlite_test_log).await;
}
