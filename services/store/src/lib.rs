//! The projection store of callgrid: the rows the projector writes (live views and history,
//! [`rows`]) and the reads supervisors and reports make, behind one trait with two
//! implementations: [`SqliteStore`] (the embedded default) and [`ScyllaStore`] (a cluster).
//!
//! # Exactly-once effect
//!
//! Every row carries the log [`Position`] it reflects, and the projector applies an event to
//! a row only when the event comes after that position; writes are upserts of whole rows.
//! So replaying any range of the log twice changes nothing. [`ProjectionStore::write`] takes
//! a batch: its history rows first, then its live views, then the checkpoints (the next
//! offset of each partition). SQLite writes the batch in one transaction; a store without
//! transactions keeps that order, so a crash in between leaves history at or ahead of the
//! live views, and the live views at or ahead of the checkpoint — which the position check
//! makes harmless (docs/DECISIONS.md, "Projections").
//!
//! # Paging
//!
//! The history reads that can grow without bound (call records, agent states, intervals)
//! return a [`Page`]: at most a limit of rows (500 by default, 5,000 at most) in the order of
//! their primary key, and a cursor to the next page: keyset paging, so a page costs one
//! indexed seek however deep it is, and paging through returns every row once ([`Page`],
//! [`PageRequest`]).

#[cfg(feature = "conformance")]
pub mod conformance;
mod page;
pub mod rows;
mod scylla;
mod sqlite;

use async_trait::async_trait;

pub use page::{read_all, Page, PageRequest, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};
pub use rows::{
    AgentCounts, AgentStateRecord, AgentView, CallRecord, CallView, IntervalRow, OfferRecord,
    Offering, Position, QueueView, Row, RowKey, Stats, Subject, TenantRow, Waiting,
};
pub use scylla::{ScyllaOptions, ScyllaStore};
pub use sqlite::SqliteStore;

/// The tables that hold rows, by the names both stores give them ([`Row::from_json`]).
pub const ROW_TABLES: [&str; 8] = [
    "tenants",
    "live_queues",
    "live_agents",
    "live_calls",
    "call_records",
    "call_offers",
    "agent_states",
    "intervals",
];

/// Errors of a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("{context}: {message}")]
    Backend {
        /// What was being done.
        context: &'static str,
        /// The database's message.
        message: String,
    },
    /// A stored row cannot be decoded (written by an incompatible version).
    #[error("undecodable {table} row {key}: {message}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// Its key.
        key: String,
        /// Why.
        message: String,
    },
    /// Bad input (an empty tenant id, an inverted time range...).
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl StoreError {
    pub(crate) fn backend(context: &'static str, e: impl std::fmt::Display) -> Self {
        StoreError::Backend {
            context,
            message: e.to_string(),
        }
    }
}

/// Rows to write together: history first, then live views, then checkpoints. When a batch
/// holds several versions of one key, the last one is what the store keeps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// Rows (any order; the store writes history before live views).
    pub rows: Vec<Row>,
    /// Per partition of the events topic: the next offset to project.
    pub checkpoints: Vec<(u32, u64)>,
}

/// The live views of one tenant (S1).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LiveViews {
    /// Queues, by id.
    pub queues: Vec<QueueView>,
    /// Agents, by id.
    pub agents: Vec<AgentView>,
    /// Calls in progress, by id.
    pub calls: Vec<CallView>,
}

impl LiveViews {
    /// Lays `rows` (live views of this tenant, e.g. pushed but not yet written) over the
    /// views: a row replaces the view of the same id if it reflects a later event, or joins
    /// the list in id order; a call that has ended leaves it. Other rows are ignored.
    pub fn overlay(&mut self, rows: impl IntoIterator<Item = Row>) {
        fn put<T>(
            list: &mut Vec<T>,
            new: T,
            id: impl Fn(&T) -> &str,
            pos: impl Fn(&T) -> Position,
        ) {
            match list.binary_search_by(|v| id(v).cmp(id(&new))) {
                Ok(i) if pos(&list[i]) < pos(&new) => list[i] = new,
                Ok(_) => {}
                Err(i) => list.insert(i, new),
            }
        }
        for row in rows {
            match row {
                Row::Queue(q) => put(&mut self.queues, q, |v| &v.queue, |v| v.pos),
                Row::Agent(a) => put(&mut self.agents, a, |v| &v.agent, |v| v.pos),
                Row::Call(c) => put(&mut self.calls, c, |v| &v.call, |v| v.pos),
                _ => {}
            }
        }
        self.calls.retain(|c| c.state != "ended");
    }
}

/// A time range, ms since the epoch, `from` included, `to` excluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Start, included.
    pub from_ms: u64,
    /// End, excluded.
    pub to_ms: u64,
}

impl Span {
    /// Checked: `from <= to`.
    pub fn new(from_ms: u64, to_ms: u64) -> Result<Span, StoreError> {
        if from_ms > to_ms {
            return Err(StoreError::Invalid {
                field: "span",
                message: format!("from {from_ms} is after to {to_ms}"),
            });
        }
        Ok(Span { from_ms, to_ms })
    }

    /// All time.
    pub fn all() -> Span {
        Span {
            from_ms: 0,
            to_ms: u64::MAX,
        }
    }
}

/// Where projections live. Object safe: use it as `Arc<dyn ProjectionStore>`.
#[async_trait]
pub trait ProjectionStore: Send + Sync {
    /// A row by key, `None` if there is none.
    async fn get(&self, key: &RowKey) -> Result<Option<Row>, StoreError>;

    /// [`ProjectionStore::get`] for a caller already on a blocking thread (the projector
    /// loads rows while it projects), without a hop through the async runtime; `None` if
    /// this store has no such path (then the caller uses `get`).
    fn get_blocking(&self, key: &RowKey) -> Option<Result<Option<Row>, StoreError>> {
        let _ = key;
        None
    }

    /// Whether [`ProjectionStore::get_blocking`] answers every key (then the projector may
    /// project on a thread of its own, loading rows as it goes).
    fn reads_blocking(&self) -> bool {
        false
    }

    /// Writes a batch (upserts whole rows; see the crate doc for the order).
    async fn write(&self, batch: Batch) -> Result<(), StoreError>;

    /// The next offset to project of a partition, `None` if never written.
    async fn checkpoint(&self, partition: u32) -> Result<Option<u64>, StoreError>;

    /// Drops every row and checkpoint (before a rebuild from the log).
    async fn clear(&self) -> Result<(), StoreError>;

    /// Tenants with a configuration row, sorted.
    async fn tenants(&self) -> Result<Vec<String>, StoreError>;

    /// The live views of a tenant: every queue and agent, and the calls not ended.
    async fn live(&self, tenant: &str) -> Result<LiveViews, StoreError>;

    /// A page of the call detail records of a tenant whose call arrived within `span`, by
    /// arrival, then call id: at most `page.limit` of them, after `page.cursor` (see
    /// [`PageRequest`]; a bad limit or cursor is [`StoreError::Invalid`] naming it).
    async fn call_records(
        &self,
        tenant: &str,
        span: Span,
        page: PageRequest,
    ) -> Result<Page<CallRecord>, StoreError>;

    /// The offers of one call, in order.
    async fn offers(&self, tenant: &str, call: &str) -> Result<Vec<OfferRecord>, StoreError>;

    /// A page of the state spans of an agent starting within `span`, by start, then the
    /// offset of the event that opened them.
    async fn agent_states(
        &self,
        tenant: &str,
        agent: &str,
        span: Span,
        page: PageRequest,
    ) -> Result<Page<AgentStateRecord>, StoreError>;

    /// A page of the interval rows of a tenant starting within `span`, by start, subject,
    /// id.
    async fn intervals(
        &self,
        tenant: &str,
        span: Span,
        page: PageRequest,
    ) -> Result<Page<IntervalRow>, StoreError>;

    /// Every row, in key order (tests compare stores with it).
    async fn dump(&self) -> Result<Vec<Row>, StoreError>;
}

/// An empty tenant id is [`StoreError::Invalid`].
pub(crate) fn check_tenant(tenant: &str) -> Result<(), StoreError> {
    if tenant.is_empty() {
        return Err(StoreError::Invalid {
            field: "tenant",
            message: "empty tenant id".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &str, state: &str, offset: u64) -> CallView {
        CallView {
            tenant: "t".into(),
            call: id.into(),
            state: state.into(),
            pos: Position {
                partition: 0,
                offset,
            },
            ..CallView::default()
        }
    }

    #[test]
    fn an_overlay_keeps_the_later_row_in_id_order_and_drops_ended_calls() {
        let mut v = LiveViews {
            calls: vec![call("a", "talking", 5), call("c", "waiting", 5)],
            ..LiveViews::default()
        };
        v.overlay([
            Row::Call(call("a", "waiting", 3)),
            Row::Call(call("b", "ringing", 6)),
            Row::Call(call("c", "ended", 7)),
            Row::Call(call("d", "ended", 8)),
        ]);
        let got: Vec<(&str, &str)> = v
            .calls
            .iter()
            .map(|c| (c.call.as_str(), c.state.as_str()))
            .collect();
        assert_eq!(got, [("a", "talking"), ("b", "ringing")]);
    }
}
