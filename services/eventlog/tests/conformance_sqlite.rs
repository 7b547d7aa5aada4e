//! The conformance suite against the embedded SQLite backend.

callgrid_eventlog::conformance_tests!(callgrid_eventlog::conformance::sqlite_test_log);
