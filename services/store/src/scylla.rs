//! The projection store on ScyllaDB (`schemas/cql/projections.cql`), with the `scylla`
//! driver: every statement prepared once at connect and marked idempotent (each write is an
//! upsert of a whole row, so a retried write changes nothing), requests routed token-aware.
//! Token awareness is the driver's default, nothing to configure: the session's default
//! execution profile uses `DefaultPolicy::default()`, whose `is_token_aware` is `true`
//! (checked in scylla 1.9, `src/client/execution_profile.rs` and
//! `src/policies/load_balancing/default.rs`), so a prepared statement, whose partition key
//! the driver knows from the prepare, goes to a replica (and shard) of that partition.
//!
//! A batch is written in the order of the crate doc: history rows (concurrently, at most
//! [`HISTORY_CONCURRENCY`] at a time), then the live views in **one logged batch** (all or
//! nothing: a live view's next change may depend on another's, so they must not be seen
//! half-written), then the checkpoints. Keep the projector's batches small enough for the
//! cluster's `batch_size_fail_threshold_in_kb` (1 MiB by default): `--projector-batch 500`
//! keeps a batch's live views well under it.
//!
//! Where a read's partition key has a day (`start_ms / 86_400_000`), a span read visits the
//! days the tenant has rows of that kind (`tenant_days`), never every day of the span
//! (`Span::all()` covers 213 billion of them). A page (crate doc, "Paging") reads those days
//! in order, lazily, starting at its cursor's day, each with a `LIMIT` of the rows it still
//! needs: within a day partition rows come in clustering order, which is the page's key
//! order, so a page reads the partitions it needs, from a seek, and at most `limit + 1` rows.

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::batch::{Batch as CqlBatch, BatchType};
use scylla::statement::prepared::PreparedStatement;

use crate::page::{Key, KeyKind};
use crate::rows::*;
use crate::{check_tenant, Batch, LiveViews, Page, PageRequest, ProjectionStore, Span, StoreError};

const SCHEMA: &str = include_str!("../../../schemas/cql/projections.cql");
const DAY_MS: u64 = 86_400_000;
/// History rows written at once (each is one to four requests).
const HISTORY_CONCURRENCY: usize = 64;
/// `tenant_days` rows remembered as written; past this many the memory starts afresh (each
/// forgotten row costs one more idempotent write).
const MAX_DAYS_REMEMBERED: usize = 100_000;

/// How to reach ScyllaDB and where the projections live.
#[derive(Clone, Debug)]
pub struct ScyllaOptions {
    /// Contact points, `host:port`.
    pub nodes: Vec<String>,
    /// Keyspace (created if missing): `[a-z][a-z0-9_]*`, at most 48 characters.
    pub keyspace: String,
    /// The keyspace's replication map, e.g.
    /// `{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}`.
    pub replication: String,
}

impl ScyllaOptions {
    /// `nodes`, keyspace `callgrid`, one replica (a test node).
    pub fn new(nodes: Vec<String>) -> ScyllaOptions {
        ScyllaOptions {
            nodes,
            keyspace: "callgrid".into(),
            replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
        }
    }
}

/// The statements of the schema, `{keyspace}` and `{replication}` filled in: comment lines
/// dropped first (a comment may hold a `;`), then split at `;`.
fn schema_statements(keyspace: &str, replication: &str) -> Vec<String> {
    let text = SCHEMA
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    text.replace("{keyspace}", keyspace)
        .replace("{replication}", replication)
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A replication map is one CQL map literal: `{...}`, without `;`, quotes balanced.
fn check_replication(replication: &str) -> Result<(), StoreError> {
    let r = replication.trim();
    if !r.starts_with('{')
        || !r.ends_with('}')
        || r.contains(';')
        || r.contains("--")
        || r.matches('\'').count() % 2 == 1
    {
        return Err(StoreError::Invalid {
            field: "replication",
            message: format!(
                "{replication:?} is not a replication map such as \
                 {{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}}"
            ),
        });
    }
    Ok(())
}

/// The rows of a batch, the last version of each key only, in their order (the driver runs
/// history writes concurrently and gives a batch's statements one timestamp, so two versions
/// of a key would land in no defined order; SQLite keeps the last, and so does this).
fn last_of_each_key(rows: &[Row]) -> Vec<&Row> {
    let mut seen = HashSet::new();
    let mut out: Vec<&Row> = rows.iter().rev().filter(|r| seen.insert(r.key())).collect();
    out.reverse();
    out
}

/// Maps a driver error to [`StoreError::Backend`] with what was being done.
fn fail<E: std::fmt::Display>(context: &'static str) -> impl Fn(E) -> StoreError {
    move |e| StoreError::backend(context, e)
}

/// Prepared statements, one per read and write.
struct Statements {
    put_live: [PreparedStatement; 4],
    put_record: PreparedStatement,
    put_record_start: PreparedStatement,
    get_record_start: PreparedStatement,
    del_record: PreparedStatement,
    put_offer: PreparedStatement,
    put_state: PreparedStatement,
    put_interval: PreparedStatement,
    put_day: PreparedStatement,
    put_checkpoint: PreparedStatement,
    get_checkpoint: PreparedStatement,
    get_live: [PreparedStatement; 4],
    list_live: [PreparedStatement; 3],
    get_record: PreparedStatement,
    get_offer: PreparedStatement,
    get_state: PreparedStatement,
    get_interval: PreparedStatement,
    days: PreparedStatement,
    records_of_day: PreparedStatement,
    records_after: PreparedStatement,
    offers_of_call: PreparedStatement,
    states_of_day: PreparedStatement,
    states_after: PreparedStatement,
    intervals_of_day: PreparedStatement,
    intervals_after: PreparedStatement,
    tenants: PreparedStatement,
}

/// Live tables, in the order of `put_live` and `get_live`.
const LIVE: [&str; 4] = ["tenants", "live_queues", "live_agents", "live_calls"];
/// Every table, for `clear` and `dump`.
const TABLES: [&str; 11] = [
    "tenants",
    "live_queues",
    "live_agents",
    "live_calls",
    "call_records",
    "call_record_start",
    "call_offers",
    "agent_states",
    "intervals",
    "tenant_days",
    "checkpoints",
];

/// The ScyllaDB projection store.
pub struct ScyllaStore {
    session: Session,
    keyspace: String,
    st: Statements,
    /// `tenant_days` rows written by this store (they never change).
    days_written: Mutex<HashSet<(String, String, i64)>>,
}

impl std::fmt::Debug for ScyllaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaStore")
            .field("keyspace", &self.keyspace)
            .finish_non_exhaustive()
    }
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn day_of(v: u64) -> i64 {
    ms(v / DAY_MS)
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn decode<T: serde::de::DeserializeOwned>(
    table: &'static str,
    data: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(data).map_err(|e| StoreError::Corrupt {
        table,
        key: String::new(),
        message: e.to_string(),
    })
}

fn pos_values(p: Position) -> (i32, i64) {
    (i32::try_from(p.partition).unwrap_or(i32::MAX), ms(p.offset))
}

impl ScyllaStore {
    /// Connects, creates the keyspace and tables if missing, and prepares every statement.
    pub async fn connect(options: &ScyllaOptions) -> Result<ScyllaStore, StoreError> {
        let ks = &options.keyspace;
        if ks.is_empty()
            || ks.len() > 48
            || !ks.starts_with(|c: char| c.is_ascii_lowercase())
            || !ks
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(StoreError::Invalid {
                field: "keyspace",
                message: format!("{ks:?} is not [a-z][a-z0-9_]{{0,47}}"),
            });
        }
        check_replication(&options.replication)?;
        if options.nodes.is_empty() {
            return Err(StoreError::Invalid {
                field: "nodes",
                message: "no ScyllaDB node given".into(),
            });
        }
        let session = SessionBuilder::new()
            .known_nodes(&options.nodes)
            .build()
            .await
            .map_err(fail("connect to ScyllaDB"))?;
        for stmt in schema_statements(ks, &options.replication) {
            session
                .query_unpaged(stmt, ())
                .await
                .map_err(fail("create the projection schema"))?;
        }
        session
            .await_schema_agreement()
            .await
            .map_err(fail("wait for schema agreement"))?;
        let p = |q: String| {
            let session = &session;
            async move {
                let mut s = session
                    .prepare(q)
                    .await
                    .map_err(fail("prepare a statement"))?;
                s.set_is_idempotent(true);
                Ok::<_, StoreError>(s)
            }
        };
        let live_put = |t: &str| {
            format!("INSERT INTO {ks}.{t} (tenant, id, data, p, o) VALUES (?, ?, ?, ?, ?)")
        };
        let st = Statements {
            put_live: [
                p(live_put(LIVE[0])).await?,
                p(live_put(LIVE[1])).await?,
                p(live_put(LIVE[2])).await?,
                p(live_put(LIVE[3])).await?,
            ],
            put_record: p(format!(
                "INSERT INTO {ks}.call_records (tenant, day, start_ms, call, data, p, o) VALUES (?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            put_record_start: p(format!(
                "INSERT INTO {ks}.call_record_start (tenant, call, start_ms) VALUES (?, ?, ?)"
            ))
            .await?,
            get_record_start: p(format!(
                "SELECT start_ms FROM {ks}.call_record_start WHERE tenant = ? AND call = ?"
            ))
            .await?,
            del_record: p(format!(
                "DELETE FROM {ks}.call_records WHERE tenant = ? AND day = ? AND start_ms = ? AND call = ?"
            ))
            .await?,
            put_offer: p(format!(
                "INSERT INTO {ks}.call_offers (tenant, call, seq, data, p, o) VALUES (?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            put_state: p(format!(
                "INSERT INTO {ks}.agent_states (tenant, agent, day, start_ms, start_offset, data, p, o) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            put_interval: p(format!(
                "INSERT INTO {ks}.intervals (tenant, day, start_ms, subject, id, data, p, o) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            put_day: p(format!("INSERT INTO {ks}.tenant_days (tenant, kind, day) VALUES (?, ?, ?)")).await?,
            put_checkpoint: p(format!(
                "INSERT INTO {ks}.checkpoints (partition, next_offset) VALUES (?, ?)"
            ))
            .await?,
            get_checkpoint: p(format!(
                "SELECT next_offset FROM {ks}.checkpoints WHERE partition = ?"
            ))
            .await?,
            get_live: [
                p(format!("SELECT data FROM {ks}.tenants WHERE tenant = ?")).await?,
                p(format!("SELECT data FROM {ks}.live_queues WHERE tenant = ? AND id = ?")).await?,
                p(format!("SELECT data FROM {ks}.live_agents WHERE tenant = ? AND id = ?")).await?,
                p(format!("SELECT data FROM {ks}.live_calls WHERE tenant = ? AND id = ?")).await?,
            ],
            list_live: [
                p(format!("SELECT data FROM {ks}.live_queues WHERE tenant = ?")).await?,
                p(format!("SELECT data FROM {ks}.live_agents WHERE tenant = ?")).await?,
                p(format!("SELECT data FROM {ks}.live_calls WHERE tenant = ?")).await?,
            ],
            get_record: p(format!(
                "SELECT data FROM {ks}.call_records WHERE tenant = ? AND day = ? AND start_ms = ? AND call = ?"
            ))
            .await?,
            get_offer: p(format!(
                "SELECT data FROM {ks}.call_offers WHERE tenant = ? AND call = ? AND seq = ?"
            ))
            .await?,
            get_state: p(format!(
                "SELECT data FROM {ks}.agent_states WHERE tenant = ? AND agent = ? AND day = ? AND start_ms = ? AND start_offset = ?"
            ))
            .await?,
            get_interval: p(format!(
                "SELECT data FROM {ks}.intervals WHERE tenant = ? AND day = ? AND start_ms = ? AND subject = ? AND id = ?"
            ))
            .await?,
            days: p(format!(
                "SELECT day FROM {ks}.tenant_days WHERE tenant = ? AND kind = ? AND day >= ? AND day <= ?"
            ))
            .await?,
            // the paged reads (`page_over_days`): a day's rows within the span, or its rows
            // after a cursor (the clustering key as a tuple; ScyllaDB refuses a tuple bound
            // together with a bound on its first column, scylladb/scylladb#4244, so the
            // store's code stops these at the span's end)
            records_of_day: p(format!(
                "SELECT data FROM {ks}.call_records WHERE tenant = ? AND day = ? AND start_ms >= ? AND start_ms < ? LIMIT ?"
            ))
            .await?,
            records_after: p(format!(
                "SELECT data FROM {ks}.call_records WHERE tenant = ? AND day = ? AND (start_ms, call) > (?, ?) LIMIT ?"
            ))
            .await?,
            offers_of_call: p(format!(
                "SELECT data FROM {ks}.call_offers WHERE tenant = ? AND call = ?"
            ))
            .await?,
            states_of_day: p(format!(
                "SELECT data FROM {ks}.agent_states WHERE tenant = ? AND agent = ? AND day = ? AND start_ms >= ? AND start_ms < ? LIMIT ?"
            ))
            .await?,
            states_after: p(format!(
                "SELECT data FROM {ks}.agent_states WHERE tenant = ? AND agent = ? AND day = ? AND (start_ms, start_offset) > (?, ?) LIMIT ?"
            ))
            .await?,
            intervals_of_day: p(format!(
                "SELECT data FROM {ks}.intervals WHERE tenant = ? AND day = ? AND start_ms >= ? AND start_ms < ? LIMIT ?"
            ))
            .await?,
            intervals_after: p(format!(
                "SELECT data FROM {ks}.intervals WHERE tenant = ? AND day = ? AND (start_ms, subject, id) > (?, ?, ?) LIMIT ?"
            ))
            .await?,
            tenants: p(format!("SELECT tenant FROM {ks}.tenants")).await?,
        };
        Ok(ScyllaStore {
            session,
            keyspace: ks.clone(),
            st,
            days_written: Mutex::new(HashSet::new()),
        })
    }

    /// Drops the keyspace (tests).
    pub async fn drop_keyspace(&self) -> Result<(), StoreError> {
        self.session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", self.keyspace), ())
            .await
            .map_err(fail("drop the keyspace"))?;
        Ok(())
    }

    /// Every `data` a prepared read returns, all pages.
    async fn datas(
        &self,
        stmt: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<Vec<String>, StoreError> {
        let pager = self
            .session
            .execute_iter(stmt.clone(), values)
            .await
            .map_err(fail("read projections"))?;
        let rows = pager
            .rows_stream::<(String,)>()
            .map_err(fail("read projections"))?;
        let v: Vec<(String,)> = rows.try_collect().await.map_err(fail("read projections"))?;
        Ok(v.into_iter().map(|(d,)| d).collect())
    }

    async fn one(
        &self,
        stmt: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<Option<String>, StoreError> {
        Ok(self.datas(stmt, values).await?.into_iter().next())
    }

    /// One more than a page of a span read over day partitions (rows in key order; the
    /// caller makes the page of them). The days of `kind` the tenant has, from the day of
    /// `after` (the cursor's time, at or after the span's start) or else of the span's start,
    /// to the day of its end, are read in order and lazily; on each, `read(day, after_day,
    /// rows)` reads at most `rows` rows: after the cursor on the cursor's day (`after_day`),
    /// within the span on the others. A row at or past the span's end ends the read (only
    /// the cursor's day is read without an upper bound), and so does having enough rows.
    #[allow(clippy::too_many_arguments)]
    async fn page_over_days<T, F, Fut>(
        &self,
        tenant: &str,
        kind: &str,
        span: Span,
        after: Option<u64>,
        limit: usize,
        table: &'static str,
        start_ms: impl Fn(&T) -> u64,
        mut read: F,
    ) -> Result<Vec<T>, StoreError>
    where
        T: serde::de::DeserializeOwned,
        F: FnMut(i64, bool, i32) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<String>, StoreError>>,
    {
        let want = limit + 1;
        let first = after.unwrap_or(span.from_ms).max(span.from_ms);
        let mut out = Vec::new();
        if first >= span.to_ms {
            return Ok(out);
        }
        let after_day = after.map(day_of);
        // the day of the last ms within the span (`to` is excluded)
        let pager = self
            .session
            .execute_iter(
                self.st.days.clone(),
                (tenant, kind, day_of(first), day_of(span.to_ms - 1)),
            )
            .await
            .map_err(fail("read the days of a tenant"))?;
        let mut days = pager
            .rows_stream::<(i64,)>()
            .map_err(fail("read the days of a tenant"))?;
        while let Some((day,)) = days
            .try_next()
            .await
            .map_err(fail("read the days of a tenant"))?
        {
            let rows = i32::try_from(want - out.len()).unwrap_or(i32::MAX);
            for d in read(day, Some(day) == after_day, rows).await? {
                let row: T = decode(table, &d)?;
                if start_ms(&row) >= span.to_ms {
                    return Ok(out);
                }
                out.push(row);
            }
            if out.len() >= want {
                break;
            }
        }
        Ok(out)
    }

    async fn note_day(&self, tenant: &str, kind: String, day: i64) -> Result<(), StoreError> {
        let key = (tenant.to_owned(), kind, day);
        if self
            .days_written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return Ok(());
        }
        self.session
            .execute_unpaged(&self.st.put_day, (&key.0, &key.1, key.2))
            .await
            .map_err(fail("write a day"))?;
        let mut written = self.days_written.lock().unwrap_or_else(|e| e.into_inner());
        if written.len() >= MAX_DAYS_REMEMBERED {
            written.clear();
        }
        written.insert(key);
        Ok(())
    }

    /// Writes one history row.
    async fn put_history(&self, row: &Row) -> Result<(), StoreError> {
        let (p, o) = pos_values(row.pos());
        match row {
            // RowKey::Record is (tenant, call) but the table is partitioned by (tenant, day):
            // `call_record_start` maps a call to its arrival, so `get` finds the record in
            // two point reads. The alternative, a second copy of every record keyed by
            // (tenant, call), would double the largest table for the rarest read.
            Row::Record(r) => {
                let start = ms(r.start_ms);
                // a record whose arrival time changed leaves its old place
                let old: Option<(i64,)> = self
                    .session
                    .execute_unpaged(&self.st.get_record_start, (&r.tenant, &r.call))
                    .await
                    .map_err(fail("read a call record's place"))?
                    .into_rows_result()
                    .map_err(fail("read a call record's place"))?
                    .maybe_first_row::<(i64,)>()
                    .map_err(fail("read a call record's place"))?;
                if let Some((old,)) = old.filter(|(o,)| *o != start) {
                    self.session
                        .execute_unpaged(
                            &self.st.del_record,
                            (&r.tenant, old / DAY_MS as i64, old, &r.call),
                        )
                        .await
                        .map_err(fail("move a call record"))?;
                }
                self.note_day(&r.tenant, "records".into(), day_of(r.start_ms))
                    .await?;
                self.session
                    .execute_unpaged(
                        &self.st.put_record,
                        (&r.tenant, day_of(r.start_ms), start, &r.call, json(r), p, o),
                    )
                    .await
                    .map_err(fail("write a call record"))?;
                self.session
                    .execute_unpaged(&self.st.put_record_start, (&r.tenant, &r.call, start))
                    .await
                    .map_err(fail("write a call record's place"))?;
            }
            Row::Offer(r) => {
                self.session
                    .execute_unpaged(
                        &self.st.put_offer,
                        (
                            &r.tenant,
                            &r.call,
                            i32::try_from(r.seq).unwrap_or(i32::MAX),
                            json(r),
                            p,
                            o,
                        ),
                    )
                    .await
                    .map_err(fail("write an offer"))?;
            }
            Row::AgentState(r) => {
                self.note_day(&r.tenant, format!("states/{}", r.agent), day_of(r.start_ms))
                    .await?;
                self.session
                    .execute_unpaged(
                        &self.st.put_state,
                        (
                            &r.tenant,
                            &r.agent,
                            day_of(r.start_ms),
                            ms(r.start_ms),
                            ms(r.start_offset),
                            json(r),
                            p,
                            o,
                        ),
                    )
                    .await
                    .map_err(fail("write an agent state"))?;
            }
            Row::Interval(r) => {
                self.note_day(&r.tenant, "intervals".into(), day_of(r.start_ms))
                    .await?;
                self.session
                    .execute_unpaged(
                        &self.st.put_interval,
                        (
                            &r.tenant,
                            day_of(r.start_ms),
                            ms(r.start_ms),
                            r.subject.name(),
                            &r.id,
                            json(r),
                            p,
                            o,
                        ),
                    )
                    .await
                    .map_err(fail("write an interval"))?;
            }
            Row::Tenant(_) | Row::Queue(_) | Row::Agent(_) | Row::Call(_) => {}
        }
        Ok(())
    }
}

/// The live table index, id and JSON of a live row.
fn live_parts(row: &Row) -> Option<(usize, &str, &str, String)> {
    Some(match row {
        Row::Tenant(r) => (0, r.tenant.as_str(), "", json(r)),
        Row::Queue(r) => (1, r.tenant.as_str(), r.queue.as_str(), json(r)),
        Row::Agent(r) => (2, r.tenant.as_str(), r.agent.as_str(), json(r)),
        Row::Call(r) => (3, r.tenant.as_str(), r.call.as_str(), json(r)),
        _ => return None,
    })
}

#[async_trait]
impl ProjectionStore for ScyllaStore {
    async fn get(&self, key: &RowKey) -> Result<Option<Row>, StoreError> {
        check_tenant(key.tenant())?;
        let st = &self.st;
        Ok(match key {
            RowKey::Tenant(t) => self
                .one(&st.get_live[0], (t,))
                .await?
                .map(|d| decode(LIVE[0], &d).map(Row::Tenant))
                .transpose()?,
            RowKey::Queue(t, id) => self
                .one(&st.get_live[1], (t, id))
                .await?
                .map(|d| decode(LIVE[1], &d).map(Row::Queue))
                .transpose()?,
            RowKey::Agent(t, id) => self
                .one(&st.get_live[2], (t, id))
                .await?
                .map(|d| decode(LIVE[2], &d).map(Row::Agent))
                .transpose()?,
            RowKey::Call(t, id) => self
                .one(&st.get_live[3], (t, id))
                .await?
                .map(|d| decode(LIVE[3], &d).map(Row::Call))
                .transpose()?,
            RowKey::Record(t, call) => {
                let start: Option<(i64,)> = self
                    .session
                    .execute_unpaged(&st.get_record_start, (t, call))
                    .await
                    .map_err(fail("read a call record's place"))?
                    .into_rows_result()
                    .map_err(fail("read a call record's place"))?
                    .maybe_first_row::<(i64,)>()
                    .map_err(fail("read a call record's place"))?;
                match start {
                    Some((start,)) => self
                        .one(&st.get_record, (t, start / DAY_MS as i64, start, call))
                        .await?
                        .map(|d| decode("call_records", &d).map(Row::Record))
                        .transpose()?,
                    None => None,
                }
            }
            RowKey::Offer(t, call, seq) => self
                .one(
                    &st.get_offer,
                    (t, call, i32::try_from(*seq).unwrap_or(i32::MAX)),
                )
                .await?
                .map(|d| decode("call_offers", &d).map(Row::Offer))
                .transpose()?,
            RowKey::AgentState(t, a, start, off) => self
                .one(&st.get_state, (t, a, day_of(*start), ms(*start), ms(*off)))
                .await?
                .map(|d| decode("agent_states", &d).map(Row::AgentState))
                .transpose()?,
            RowKey::Interval(t, start, subject, id) => self
                .one(
                    &st.get_interval,
                    (t, day_of(*start), ms(*start), subject.name(), id),
                )
                .await?
                .map(|d| decode("intervals", &d).map(Row::Interval))
                .transpose()?,
        })
    }

    async fn write(&self, batch: Batch) -> Result<(), StoreError> {
        for r in &batch.rows {
            check_tenant(r.tenant())?;
        }
        let rows = last_of_each_key(&batch.rows);
        // 1. history, concurrently
        futures::stream::iter(rows.iter().filter(|r| !r.is_live()).map(Ok))
            .try_for_each_concurrent(HISTORY_CONCURRENCY, |r| self.put_history(r))
            .await?;
        // 2. live views, all or nothing
        let mut cql_batch = CqlBatch::new(BatchType::Logged);
        cql_batch.set_is_idempotent(true);
        let mut values: Vec<(String, String, String, i32, i64)> = Vec::new();
        for row in rows.iter().filter(|r| r.is_live()) {
            if let Some((i, tenant, id, data)) = live_parts(row) {
                let (p, o) = pos_values(row.pos());
                cql_batch.append_statement(self.st.put_live[i].clone());
                values.push((tenant.to_owned(), id.to_owned(), data, p, o));
            }
        }
        if !values.is_empty() {
            self.session
                .batch(&cql_batch, values)
                .await
                .map_err(fail("write the live views"))?;
        }
        // 3. checkpoints
        for (partition, next) in &batch.checkpoints {
            self.session
                .execute_unpaged(
                    &self.st.put_checkpoint,
                    (i32::try_from(*partition).unwrap_or(i32::MAX), ms(*next)),
                )
                .await
                .map_err(fail("write a checkpoint"))?;
        }
        Ok(())
    }

    async fn checkpoint(&self, partition: u32) -> Result<Option<u64>, StoreError> {
        let row: Option<(i64,)> = self
            .session
            .execute_unpaged(
                &self.st.get_checkpoint,
                (i32::try_from(partition).unwrap_or(i32::MAX),),
            )
            .await
            .map_err(fail("read a checkpoint"))?
            .into_rows_result()
            .map_err(fail("read a checkpoint"))?
            .maybe_first_row::<(i64,)>()
            .map_err(fail("read a checkpoint"))?;
        Ok(row.map(|(o,)| o.max(0) as u64))
    }

    async fn clear(&self) -> Result<(), StoreError> {
        for t in TABLES {
            self.session
                .query_unpaged(format!("TRUNCATE {}.{t}", self.keyspace), ())
                .await
                .map_err(fail("clear the projections"))?;
        }
        self.days_written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }

    async fn tenants(&self) -> Result<Vec<String>, StoreError> {
        let mut v = self.datas(&self.st.tenants, ()).await?;
        v.sort();
        Ok(v)
    }

    async fn live(&self, tenant: &str) -> Result<LiveViews, StoreError> {
        check_tenant(tenant)?;
        let st = &self.st;
        let (queues, agents, calls) = futures::try_join!(
            self.datas(&st.list_live[0], (tenant,)),
            self.datas(&st.list_live[1], (tenant,)),
            self.datas(&st.list_live[2], (tenant,)),
        )?;
        let mut views = LiveViews {
            queues: queues
                .iter()
                .map(|d| decode(LIVE[1], d))
                .collect::<Result<_, _>>()?,
            agents: agents
                .iter()
                .map(|d| decode(LIVE[2], d))
                .collect::<Result<_, _>>()?,
            // CQL cannot filter on `state` (not a key column) without ALLOW FILTERING
            calls: calls
                .iter()
                .map(|d| decode::<CallView>(LIVE[3], d))
                .filter(|c| c.as_ref().map_or(true, |c| c.state != "ended"))
                .collect::<Result<_, _>>()?,
        };
        views
            .queues
            .sort_by(|a: &QueueView, b| a.queue.cmp(&b.queue));
        views
            .agents
            .sort_by(|a: &AgentView, b| a.agent.cmp(&b.agent));
        views.calls.sort_by(|a, b| a.call.cmp(&b.call));
        Ok(views)
    }

    async fn call_records(
        &self,
        tenant: &str,
        span: Span,
        page: PageRequest,
    ) -> Result<Page<CallRecord>, StoreError> {
        check_tenant(tenant)?;
        let (limit, after) = page.check(KeyKind::Call)?;
        // a cursor before the span's start: the span's first page
        let after = match after {
            Some(Key::Call { start_ms, call }) if start_ms >= span.from_ms => {
                Some((start_ms, call))
            }
            _ => None,
        };
        let st = &self.st;
        let after = &after;
        let rows = self
            .page_over_days(
                tenant,
                "records",
                span,
                after.as_ref().map(|(ms, _)| *ms),
                limit,
                "call_records",
                |r: &CallRecord| r.start_ms,
                |day, after_day, rows| async move {
                    match after {
                        Some((start, call)) if after_day => {
                            self.datas(&st.records_after, (tenant, day, ms(*start), call, rows))
                                .await
                        }
                        _ => {
                            self.datas(
                                &st.records_of_day,
                                (tenant, day, ms(span.from_ms), ms(span.to_ms), rows),
                            )
                            .await
                        }
                    }
                },
            )
            .await?;
        Ok(Page::of(rows, limit, Key::of_call))
    }

    async fn offers(&self, tenant: &str, call: &str) -> Result<Vec<OfferRecord>, StoreError> {
        check_tenant(tenant)?;
        self.datas(&self.st.offers_of_call, (tenant, call))
            .await?
            .iter()
            .map(|d| decode("call_offers", d))
            .collect()
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
        let after = match after {
            Some(Key::AgentState {
                start_ms,
                start_offset,
            }) if start_ms >= span.from_ms => Some((start_ms, start_offset)),
            _ => None,
        };
        let kind = format!("states/{agent}");
        let st = &self.st;
        let rows = self
            .page_over_days(
                tenant,
                &kind,
                span,
                after.map(|(ms, _)| ms),
                limit,
                "agent_states",
                |r: &AgentStateRecord| r.start_ms,
                |day, after_day, rows| async move {
                    match after {
                        Some((start, offset)) if after_day => {
                            self.datas(
                                &st.states_after,
                                (tenant, agent, day, ms(start), ms(offset), rows),
                            )
                            .await
                        }
                        _ => {
                            self.datas(
                                &st.states_of_day,
                                (tenant, agent, day, ms(span.from_ms), ms(span.to_ms), rows),
                            )
                            .await
                        }
                    }
                },
            )
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
        let after = match after {
            Some(Key::Interval {
                start_ms,
                subject,
                id,
            }) if start_ms >= span.from_ms => Some((start_ms, subject, id)),
            _ => None,
        };
        let st = &self.st;
        let after = &after;
        let rows = self
            .page_over_days(
                tenant,
                "intervals",
                span,
                after.as_ref().map(|(ms, _, _)| *ms),
                limit,
                "intervals",
                |r: &IntervalRow| r.start_ms,
                |day, after_day, rows| async move {
                    match after {
                        Some((start, subject, id)) if after_day => {
                            self.datas(
                                &st.intervals_after,
                                (tenant, day, ms(*start), subject.name(), id, rows),
                            )
                            .await
                        }
                        _ => {
                            self.datas(
                                &st.intervals_of_day,
                                (tenant, day, ms(span.from_ms), ms(span.to_ms), rows),
                            )
                            .await
                        }
                    }
                },
            )
            .await?;
        Ok(Page::of(rows, limit, Key::of_interval))
    }

    async fn dump(&self) -> Result<Vec<Row>, StoreError> {
        let ks = &self.keyspace;
        let all = |table: &'static str| async move {
            let pager = self
                .session
                .query_iter(format!("SELECT data FROM {ks}.{table}"), ())
                .await
                .map_err(fail("dump"))?;
            let rows: Vec<(String,)> = pager
                .rows_stream::<(String,)>()
                .map_err(fail("dump"))?
                .try_collect()
                .await
                .map_err(fail("dump"))?;
            Ok::<_, StoreError>(rows.into_iter().map(|(d,)| d).collect::<Vec<_>>())
        };
        let mut out = Vec::new();
        for table in crate::ROW_TABLES {
            for d in all(table).await? {
                out.push(Row::from_json(table, &d)?);
            }
        }
        out.sort_by_key(Row::key);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_splits_into_its_statements() {
        let replication = "{'class': 'SimpleStrategy', 'replication_factor': 1}";
        let stmts = schema_statements("ks", replication);
        // the keyspace and every table (rows, lookups, checkpoints)
        assert_eq!(stmts.len(), 1 + TABLES.len(), "{stmts:#?}");
        assert_eq!(
            stmts[0],
            format!("CREATE KEYSPACE IF NOT EXISTS ks WITH replication = {replication}")
        );
        for stmt in &stmts[1..] {
            assert!(stmt.starts_with("CREATE TABLE IF NOT EXISTS ks."), "{stmt}");
            assert!(!stmt.contains('{') && !stmt.contains("--"), "{stmt}");
        }
        for table in TABLES {
            let create = format!("CREATE TABLE IF NOT EXISTS ks.{table} (");
            assert!(
                stmts.iter().any(|s| s.starts_with(&create)),
                "no table {table}"
            );
        }
        for table in crate::ROW_TABLES {
            assert!(
                TABLES.contains(&table),
                "{table} is neither cleared nor dumped"
            );
        }
    }

    #[test]
    fn a_replication_map_is_checked() {
        assert!(check_replication("{'class': 'SimpleStrategy', 'replication_factor': 1}").is_ok());
        assert!(
            check_replication("{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}")
                .is_ok()
        );
        for bad in [
            "",
            "SimpleStrategy",
            "{'class': 'SimpleStrategy'}; DROP KEYSPACE x",
            "{'class: 'SimpleStrategy'}",
        ] {
            assert!(
                matches!(
                    check_replication(bad),
                    Err(StoreError::Invalid {
                        field: "replication",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_batch_keeps_the_last_version_of_a_key() {
        let view = |tenant: &str, state: &str| {
            Row::Call(CallView {
                tenant: tenant.into(),
                call: "c1".into(),
                state: state.into(),
                since_ms: 0,
                number: String::new(),
                caller: String::new(),
                plan_version: 0,
                arrived_ms: 0,
                queue: String::new(),
                queued_ms: 0,
                agent: String::new(),
                ringing: vec![],
                first_ring_ms: 0,
                answered_ms: 0,
                talking_since_ms: 0,
                connected_ms: 0,
                hold_since_ms: 0,
                hold_ms: 0,
                caller_hold_since_ms: 0,
                wait_ms: 0,
                ended_ms: 0,
                result: String::new(),
                end_cause: String::new(),
                offers: 0,
                recording: String::new(),
                direction: String::new(),
                correlation: String::new(),
                trunk: String::new(),
                sip_code: 0,
                carrier: String::new(),
                pos: Position::default(),
            })
        };
        let rows = [
            view("a", "queued"),
            view("b", "queued"),
            view("a", "ringing"),
            view("a", "talking"),
        ];
        let kept: Vec<&Row> = last_of_each_key(&rows);
        assert_eq!(kept, [&rows[1], &rows[3]]);
    }

    #[test]
    fn days_of_times() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(DAY_MS), 1);
        assert_eq!(day_of(u64::MAX), ms(u64::MAX / DAY_MS));
    }
}
