//! The store conformance suite against SQLite: in memory, and in a file.

mod in_memory {
    use std::sync::Arc;

    use callgrid_store::conformance::TestStore;
    use callgrid_store::SqliteStore;

    async fn store() -> TestStore {
        TestStore::new(Arc::new(SqliteStore::in_memory().expect("store")), ())
    }

    callgrid_store::store_conformance_tests!(store);
}

mod on_disk {
    use std::sync::Arc;

    use callgrid_store::conformance::TestStore;
    use callgrid_store::SqliteStore;

    async fn store() -> TestStore {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("projections.sqlite")).expect("store");
        TestStore::new(Arc::new(store), dir)
    }

    callgrid_store::store_conformance_tests!(store);
}
