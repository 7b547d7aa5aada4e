//! The embedded projection store on SQLite (`schemas/sqlite/projections.sql`): one
//! writing connection in WAL mode behind a mutex, used inside `spawn_blocking`; a batch is
//! one transaction (rows and checkpoints commit together). Reads of a store in a file go
//! through a pool of read-only connections: WAL readers see the last commit and neither
//! wait for the writer nor make it wait, so the projector's row loads and the
//! supervisor's reads do not queue behind a batch being written.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use serde::de::DeserializeOwned;

use crate::page::{Key, KeyKind};
use crate::rows::*;
use crate::{check_tenant, Batch, LiveViews, Page, PageRequest, ProjectionStore, Span, StoreError};

const SCHEMA: &str = include_str!("../../../schemas/sqlite/projections.sql");

/// Every table, in the order `clear` and `dump` visit them.
const TABLES: [&str; 9] = [
    "tenants",
    "live_queues",
    "live_agents",
    "live_calls",
    "call_records",
    "call_offers",
    "agent_states",
    "intervals",
    "checkpoints",
];

/// The embedded projection store.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// Read-only connections to the file (`None` in memory: reads use `conn`).
    readers: Option<Arc<Readers>>,
    /// Ends the checkpointer thread when the last clone is dropped.
    _checkpointer: Option<Arc<Checkpointer>>,
}

/// Background WAL checkpoints: SQLite would otherwise checkpoint inside the commit that
/// grows the WAL past 1,000 pages, with an fsync of the database, stalling the projector
/// (and the push to supervisors behind it) for that long. A thread with its own connection
/// runs `PRAGMA wal_checkpoint(PASSIVE)` twice a second instead (PASSIVE never blocks the
/// writer), and a RESTART checkpoint when the WAL passes [`MAX_WAL_FRAMES`].
/// WAL size (4 KiB frames) past which the checkpointer restarts the WAL: 64 MiB.
const MAX_WAL_FRAMES: i64 = 16_384;

/// Idle read-only connections; one is opened whenever all are busy, so the pool grows to
/// the most readers at once (the projector's partitions and the supervisor's requests).
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => {
                let c = Connection::open(&self.path).map_err(db("open a reading connection"))?;
                c.execute_batch("PRAGMA query_only = ON; PRAGMA busy_timeout = 5000;")
                    .map_err(db("configure a reading connection"))?;
                c
            }
        };
        let out = f(&conn);
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        out
    }
}

struct Checkpointer {
    stop: std::sync::mpsc::Sender<()>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open(path).map_err(db("open the checkpointer's connection"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db("configure the checkpointer's connection"))?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(std::time::Duration::from_millis(500))
                {
                    // (busy, frames in the WAL, frames checkpointed)
                    let passive = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                    });
                    match passive {
                        // under steady writes a PASSIVE checkpoint never catches the writer,
                        // and the WAL only restarts after one that did: past this size, a
                        // RESTART checkpoint waits for it (one stall of the writer, rarely)
                        Ok((frames, _)) if frames > MAX_WAL_FRAMES => {
                            if let Err(e) =
                                conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
                            {
                                tracing::warn!(error = %e, "projection store checkpoint failed");
                            }
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "projection store checkpoint failed"),
                    }
                }
            })
            .map_err(|e| StoreError::backend("start the checkpointer", e))?;
        Ok(Checkpointer { stop })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let _ = self.stop.send(());
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn db(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

fn sql_u64(v: u64) -> i64 {
    // positions and times fit: offsets are Kafka's i64, times are ms since the epoch
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn decode<T: DeserializeOwned>(
    table: &'static str,
    key: &str,
    data: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(data).map_err(|e| StoreError::Corrupt {
        table,
        key: key.to_owned(),
        message: e.to_string(),
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the store in the file `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path).map_err(db("open the projection store"))?;
        let conn = Self::init(conn)?;
        // the writer's page cache: 64 MiB, so that inserts find the B-tree pages they
        // change in memory instead of reading them back (SQLite's default is 2 MiB)
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -65536;")
            .map_err(db("configure the projection store"))?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            readers: Some(Arc::new(Readers {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
            })),
            _checkpointer: Some(Arc::new(Checkpointer::start(path)?)),
        })
    }

    /// A store in memory (tests, benchmarks).
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        let conn = Connection::open_in_memory().map_err(db("open the projection store"))?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(Self::init(conn)?)),
            readers: None,
            _checkpointer: None,
        })
    }

    fn init(conn: Connection) -> Result<Connection, StoreError> {
        // projections can be rebuilt from the log, and rows commit with their checkpoint:
        // a crash loses at most a suffix, replayed on restart; no fsync per batch
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
        )
        .map_err(db("configure the projection store"))?;
        conn.execute_batch(SCHEMA)
            .map_err(db("create the projection tables"))?;
        Ok(conn)
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut c)
        })
        .await
        .map_err(|e| StoreError::backend("store task", e))?
    }

    /// Runs the read `f` on a reading connection (the writing one in memory), blocking.
    fn read_blocking<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &self.readers {
            Some(r) => r.with(f),
            None => f(&self.conn.lock().unwrap_or_else(|e| e.into_inner())),
        }
    }

    /// Runs the read `f` on a reading connection inside `spawn_blocking`.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.read_blocking(f))
            .await
            .map_err(|e| StoreError::backend("store task", e))?
    }
}

/// Upserts one row with its `data` ([`Row::to_json`]).
fn put(tx: &rusqlite::Transaction<'_>, row: &Row, data: &str) -> Result<(), StoreError> {
    let pos = row.pos();
    let (p, o) = (i64::from(pos.partition), sql_u64(pos.offset));
    let r = match row {
        Row::Tenant(r) => tx
            .prepare_cached("INSERT OR REPLACE INTO tenants VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut s| s.execute(params![r.tenant, data, p, o])),
        Row::Queue(r) => tx
            .prepare_cached("INSERT OR REPLACE INTO live_queues VALUES (?1, ?2, ?3, ?4, ?5)")
            .and_then(|mut s| s.execute(params![r.tenant, r.queue, data, p, o])),
        Row::Agent(r) => tx
            .prepare_cached("INSERT OR REPLACE INTO live_agents VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .and_then(|mut s| s.execute(params![r.tenant, r.agent, r.state, data, p, o])),
        Row::Call(r) => tx
            .prepare_cached("INSERT OR REPLACE INTO live_calls VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .and_then(|mut s| s.execute(params![r.tenant, r.call, r.state, data, p, o])),
        Row::Record(r) => tx
            .prepare_cached(
                "INSERT OR REPLACE INTO call_records \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    r.tenant,
                    r.call,
                    sql_u64(r.start_ms),
                    r.day,
                    r.number,
                    r.caller,
                    r.queue,
                    r.agent,
                    r.result,
                    data,
                    p,
                    o
                ])
            }),
        Row::Offer(r) => tx
            .prepare_cached(
                "INSERT OR REPLACE INTO call_offers VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    r.tenant,
                    r.call,
                    r.seq,
                    r.agent,
                    r.queue,
                    r.result,
                    sql_u64(r.offered_ms),
                    data,
                    p,
                    o
                ])
            }),
        Row::AgentState(r) => tx
            .prepare_cached(
                "INSERT OR REPLACE INTO agent_states VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    r.tenant,
                    r.agent,
                    sql_u64(r.start_ms),
                    sql_u64(r.start_offset),
                    sql_u64(r.end_ms),
                    r.state,
                    data,
                    p,
                    o
                ])
            }),
        Row::Interval(r) => tx
            .prepare_cached("INSERT OR REPLACE INTO intervals VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
            .and_then(|mut s| {
                s.execute(params![
                    r.tenant,
                    sql_u64(r.start_ms),
                    r.subject.name(),
                    r.id,
                    data,
                    p,
                    o
                ])
            }),
    };
    r.map(|_| ()).map_err(db("write a projection row"))
}

// The paged history reads: a seek to the first key wanted, then rows in key order, one more
// than the page holds (it tells whether a next page exists). `tests` checks SQLite's plans.

/// The first page of call records within a span (tenant, from, to, rows): the index
/// `call_records_start` is (tenant, start_ms) and, the table being WITHOUT ROWID, ends
/// with the rest of the primary key (call), so both the seek and the order are the index's.
const CALLS_FIRST: &str = "SELECT data FROM call_records WHERE tenant = ?1 \
     AND start_ms >= ?2 AND start_ms < ?3 \
     ORDER BY start_ms, call LIMIT ?4";
/// The call records after a cursor (tenant, start_ms, call, to, rows).
const CALLS_AFTER: &str = "SELECT data FROM call_records WHERE tenant = ?1 \
     AND (start_ms, call) > (?2, ?3) AND start_ms < ?4 \
     ORDER BY start_ms, call LIMIT ?5";
/// The first page of an agent's state spans (tenant, agent, from, to, rows): the primary key.
const STATES_FIRST: &str = "SELECT data FROM agent_states WHERE tenant = ?1 AND agent = ?2 \
     AND start_ms >= ?3 AND start_ms < ?4 \
     ORDER BY start_ms, start_offset LIMIT ?5";
/// An agent's state spans after a cursor (tenant, agent, start_ms, start_offset, to, rows).
const STATES_AFTER: &str = "SELECT data FROM agent_states WHERE tenant = ?1 AND agent = ?2 \
     AND (start_ms, start_offset) > (?3, ?4) AND start_ms < ?5 \
     ORDER BY start_ms, start_offset LIMIT ?6";
/// The first page of interval rows (tenant, from, to, rows): the primary key.
const INTERVALS_FIRST: &str = "SELECT data FROM intervals WHERE tenant = ?1 \
     AND start_ms >= ?2 AND start_ms < ?3 \
     ORDER BY start_ms, subject, id LIMIT ?4";
/// The interval rows after a cursor (tenant, start_ms, subject, id, to, rows).
const INTERVALS_AFTER: &str = "SELECT data FROM intervals WHERE tenant = ?1 \
     AND (start_ms, subject, id) > (?2, ?3, ?4) AND start_ms < ?5 \
     ORDER BY start_ms, subject, id LIMIT ?6";

/// The rows `sql` selects (its one column is `data`), decoded.
fn select<T: DeserializeOwned>(
    c: &Connection,
    table: &'static str,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = c.prepare_cached(sql).map_err(db("query projections"))?;
    let data: Vec<String> = stmt
        .query_map(params, |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(db("query projections"))?;
    data.iter().map(|d| decode(table, "", d)).collect()
}

fn get_row(c: &Connection, key: &RowKey) -> Result<Option<Row>, StoreError> {
    let one = |table: &'static str, sql: &str, p: &[&dyn rusqlite::ToSql]| {
        c.prepare_cached(sql)
            .and_then(|mut s| s.query_row(p, |r| r.get::<_, String>(0)).optional())
            .map_err(db("read a projection row"))
            .map(|d| d.map(|d| (table, d)))
    };
    let found = match key {
        RowKey::Tenant(t) => one(
            "tenants",
            "SELECT data FROM tenants WHERE tenant = ?1",
            &[t],
        )?,
        RowKey::Queue(t, q) => one(
            "live_queues",
            "SELECT data FROM live_queues WHERE tenant = ?1 AND queue = ?2",
            &[t, q],
        )?,
        RowKey::Agent(t, a) => one(
            "live_agents",
            "SELECT data FROM live_agents WHERE tenant = ?1 AND agent = ?2",
            &[t, a],
        )?,
        RowKey::Call(t, k) => one(
            "live_calls",
            "SELECT data FROM live_calls WHERE tenant = ?1 AND call = ?2",
            &[t, k],
        )?,
        RowKey::Record(t, k) => one(
            "call_records",
            "SELECT data FROM call_records WHERE tenant = ?1 AND call = ?2",
            &[t, k],
        )?,
        RowKey::Offer(t, k, seq) => one(
            "call_offers",
            "SELECT data FROM call_offers WHERE tenant = ?1 AND call = ?2 AND seq = ?3",
            &[t, k, seq],
        )?,
        RowKey::AgentState(t, a, start, off) => one(
            "agent_states",
            "SELECT data FROM agent_states \
             WHERE tenant = ?1 AND agent = ?2 AND start_ms = ?3 AND start_offset = ?4",
            &[t, a, &sql_u64(*start), &sql_u64(*off)],
        )?,
        RowKey::Interval(t, start, subject, id) => one(
            "intervals",
            "SELECT data FROM intervals \
             WHERE tenant = ?1 AND start_ms = ?2 AND subject = ?3 AND id = ?4",
            &[t, &sql_u64(*start), &subject.name(), id],
        )?,
    };
    let Some((table, data)) = found else {
        return Ok(None);
    };
    let key_text = format!("{key:?}");
    Ok(Some(match key {
        RowKey::Tenant(..) => Row::Tenant(decode(table, &key_text, &data)?),
        RowKey::Queue(..) => Row::Queue(decode(table, &key_text, &data)?),
        RowKey::Agent(..) => Row::Agent(decode(table, &key_text, &data)?),
        RowKey::Call(..) => Row::Call(decode(table, &key_text, &data)?),
        RowKey::Record(..) => Row::Record(decode(table, &key_text, &data)?),
        RowKey::Offer(..) => Row::Offer(decode(table, &key_text, &data)?),
        RowKey::AgentState(..) => Row::AgentState(decode(table, &key_text, &data)?),
        RowKey::Interval(..) => Row::Interval(decode(table, &key_text, &data)?),
    }))
}

#[async_trait]
impl ProjectionStore for SqliteStore {
    async fn get(&self, key: &RowKey) -> Result<Option<Row>, StoreError> {
        check_tenant(key.tenant())?;
        let key = key.clone();
        self.read(move |c| get_row(c, &key)).await
    }

    fn get_blocking(&self, key: &RowKey) -> Option<Result<Option<Row>, StoreError>> {
        if let Err(e) = check_tenant(key.tenant()) {
            return Some(Err(e));
        }
        Some(self.read_blocking(|c| get_row(c, key)))
    }

    fn reads_blocking(&self) -> bool {
        true
    }

    async fn write(&self, batch: Batch) -> Result<(), StoreError> {
        for r in &batch.rows {
            check_tenant(r.tenant())?;
        }
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // encoded before taking the connection: the writer holds it for less time
            let data: Vec<String> = batch.rows.iter().map(Row::to_json).collect();
            let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
            let tx = c.transaction().map_err(db("begin a projection batch"))?;
            // history before live views before checkpoints (the order every store keeps)
            for live in [false, true] {
                for (row, data) in batch.rows.iter().zip(&data) {
                    if row.is_live() == live {
                        put(&tx, row, data)?;
                    }
                }
            }
            for (partition, next) in &batch.checkpoints {
                tx.prepare_cached("INSERT OR REPLACE INTO checkpoints VALUES (?1, ?2)")
                    .and_then(|mut s| s.execute(params![partition, sql_u64(*next)]))
                    .map_err(db("write a checkpoint"))?;
            }
            tx.commit().map_err(db("commit a projection batch"))
        })
        .await
        .map_err(|e| StoreError::backend("store task", e))?
    }

    async fn checkpoint(&self, partition: u32) -> Result<Option<u64>, StoreError> {
        self.read(move |c| {
            c.prepare_cached("SELECT next_offset FROM checkpoints WHERE partition = ?1")
                .and_then(|mut s| s.query_row([partition], |r| r.get::<_, i64>(0)).optional())
                .map(|o| o.map(|o| o.max(0) as u64))
                .map_err(db("read a checkpoint"))
        })
        .await
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction().map_err(db("begin clearing"))?;
            for t in TABLES {
                tx.execute(&format!("DELETE FROM {t}"), [])
                    .map_err(db("clear the projections"))?;
            }
            tx.commit().map_err(db("commit clearing"))
        })
        .await
    }

    async fn tenants(&self) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let mut s = c
                .prepare_cached("SELECT tenant FROM tenants ORDER BY tenant")
                .map_err(db("list tenants"))?;
            let v = s
                .query_map([], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect())
                .map_err(db("list tenants"))?;
            Ok(v)
        })
        .await
    }

    async fn live(&self, tenant: &str) -> Result<LiveViews, StoreError> {
        check_tenant(tenant)?;
        let t = tenant.to_owned();
        self.read(move |c| {
            // one read transaction: the three tables as of one commit
            let c = &c.unchecked_transaction().map_err(db("begin a read"))?;
            Ok(LiveViews {
                queues: select(
                    c,
                    "live_queues",
                    "SELECT data FROM live_queues WHERE tenant = ?1 ORDER BY queue",
                    [&t],
                )?,
                agents: select(
                    c,
                    "live_agents",
                    "SELECT data FROM live_agents WHERE tenant = ?1 ORDER BY agent",
                    [&t],
                )?,
                calls: select(
                    c,
                    "live_calls",
                    "SELECT data FROM live_calls WHERE tenant = ?1 AND state != 'ended' \
                     ORDER BY call",
                    [&t],
                )?,
            })
        })
        .await
    }

    async fn call_records(
        &self,
        tenant: &str,
        span: Span,
        page: PageRequest,
    ) -> Result<Page<CallRecord>, StoreError> {
        check_tenant(tenant)?;
        let (limit, after) = page.check(KeyKind::Call)?;
        let (t, from, to, n) = (
            tenant.to_owned(),
            span.from_ms,
            span.to_ms,
            limit as i64 + 1,
        );
        let rows = self
            .read(move |c| match after {
                Some(Key::Call { start_ms, call }) if start_ms >= from => select(
                    c,
                    "call_records",
                    CALLS_AFTER,
                    params![t, sql_u64(start_ms), call, sql_u64(to), n],
                ),
                // no cursor, or one before the span's start: the span's first page
                _ => select(
                    c,
                    "call_records",
                    CALLS_FIRST,
                    params![t, sql_u64(from), sql_u64(to), n],
                ),
            })
            .await?;
        Ok(Page::of(rows, limit, Key::of_call))
    }

    async fn offers(&self, tenant: &str, call: &str) -> Result<Vec<OfferRecord>, StoreError> {
        check_tenant(tenant)?;
        let (t, k) = (tenant.to_owned(), call.to_owned());
        self.read(move |c| {
            select(
                c,
                "call_offers",
                "SELECT data FROM call_offers WHERE tenant = ?1 AND call = ?2 ORDER BY seq",
                params![t, k],
            )
        })
        .await
    }

    async fn agent_states(
        &self,
        tenant: &str,
        agent: &str,
        span: Span,
        page: PageRequest,
    ) -> Result<Page<AgentStateRecord>, StoreError> {
        check_tenant(tenant)?;
        let (limit, after) = page.check(KeyKind::AgentState)?;
        let (t, a) = (tenant.to_owned(), agent.to_owned());
        let (from, to, n) = (span.from_ms, span.to_ms, limit as i64 + 1);
        let rows = self
            .read(move |c| match after {
                Some(Key::AgentState {
                    start_ms,
                    start_offset,
                }) if start_ms >= from => select(
                    c,
                    "agent_states",
                    STATES_AFTER,
                    params![
                        t,
                        a,
                        sql_u64(start_ms),
                        sql_u64(start_offset),
                        sql_u64(to),
                        n
                    ],
                ),
                _ => select(
                    c,
                    "agent_states",
                    STATES_FIRST,
                    params![t, a, sql_u64(from), sql_u64(to), n],
                ),
            })
            .await?;
        Ok(Page::of(rows, limit, Key::of_state))
    }

    async fn intervals(
        &self,
        tenant: &str,
        span: Span,
        page: PageRequest,
    ) -> Result<Page<IntervalRow>, StoreError> {
        check_tenant(tenant)?;
        let (limit, after) = page.check(KeyKind::Interval)?;
        let (t, from, to, n) = (
            tenant.to_owned(),
            span.from_ms,
            span.to_ms,
            limit as i64 + 1,
        );
        let rows = self
            .read(move |c| match after {
                Some(Key::Interval {
                    start_ms,
                    subject,
                    id,
                }) if start_ms >= from => select(
                    c,
                    "intervals",
                    INTERVALS_AFTER,
                    params![t, sql_u64(start_ms), subject.name(), id, sql_u64(to), n],
                ),
                _ => select(
                    c,
                    "intervals",
                    INTERVALS_FIRST,
                    params![t, sql_u64(from), sql_u64(to), n],
                ),
            })
            .await?;
        Ok(Page::of(rows, limit, Key::of_interval))
    }

    async fn dump(&self) -> Result<Vec<Row>, StoreError> {
        self.read(|c| {
            let c = &c.unchecked_transaction().map_err(db("begin a read"))?;
            let mut out: Vec<Row> = Vec::new();
            let all = |table: &'static str| -> Result<Vec<String>, StoreError> {
                let mut s = c
                    .prepare(&format!("SELECT data FROM {table}"))
                    .map_err(db("dump"))?;
                let v = s
                    .query_map([], |r| r.get::<_, String>(0))
                    .and_then(|rows| rows.collect())
                    .map_err(db("dump"))?;
                Ok(v)
            };
            for table in crate::ROW_TABLES {
                for d in all(table)? {
                    out.push(Row::from_json(table, &d)?);
                }
            }
            out.sort_by_key(Row::key);
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paged_reads_seek_an_index_and_read_in_its_order() {
        let store = SqliteStore::in_memory().expect("store");
        let c = store.conn.lock().expect("connection");
        for sql in [
            CALLS_FIRST,
            CALLS_AFTER,
            STATES_FIRST,
            STATES_AFTER,
            INTERVALS_FIRST,
            INTERVALS_AFTER,
        ] {
            let mut stmt = c
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("explain");
            // parameters left unbound are NULL: the plan is the same
            let mut rows = stmt.raw_query();
            let mut plan = Vec::new();
            while let Some(r) = rows.next().expect("plan") {
                plan.push(r.get::<_, String>(3).expect("plan"));
            }
            let plan = plan.join("; ");
            assert!(
                plan.starts_with("SEARCH ") && plan.contains("start_ms<?"),
                "{sql}: {plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{sql}: sorts: {plan}");
            if sql.contains(") > (") {
                assert!(plan.contains(")>("), "{sql}: no seek to the cursor: {plan}");
            }
        }
    }
}
