//! The conformance suite every [`ProjectionStore`] runs (CONVENTIONS 8: one test body, every
//! backend). [`store_conformance_tests!`] expands to one `#[tokio::test]` per case, each on a
//! fresh store from the given factory:
//!
//! ```ignore
//! async fn sqlite() -> TestStore {
//!     TestStore::new(Arc::new(SqliteStore::in_memory().unwrap()), ())
//! }
//! callgrid_store::store_conformance_tests!(sqlite);
//! ```

use std::any::Any;
use std::sync::Arc;

use crate::rows::*;
use crate::{Batch, ProjectionStore, Span, StoreError};

/// A store under test and whatever must live as long as it (a temporary directory, a
/// keyspace to drop).
pub struct TestStore {
    /// The store.
    pub store: Arc<dyn ProjectionStore>,
    _guard: Box<dyn Any + Send>,
}

impl TestStore {
    /// Wraps a store and its guard.
    pub fn new(store: Arc<dyn ProjectionStore>, guard: impl Any + Send) -> TestStore {
        TestStore {
            store,
            _guard: Box::new(guard),
        }
    }
}

fn pos(offset: u64) -> Position {
    Position {
        partition: 3,
        offset,
    }
}

fn queue(t: &str, q: &str) -> QueueView {
    QueueView {
        tenant: t.into(),
        queue: q.into(),
        waiting: vec![Waiting {
            call: "c9".into(),
            since_ms: 1_000,
        }],
        agents: AgentCounts {
            available: 2,
            logged_out: 1,
            ..AgentCounts::default()
        },
        day_start_ms: 500,
        today: Stats {
            offered: 4,
            answered: 3,
            ..Stats::default()
        },
        pos: pos(10),
    }
}

fn agent(t: &str, a: &str) -> AgentView {
    AgentView {
        tenant: t.into(),
        agent: a.into(),
        state: "available".into(),
        reason: String::new(),
        call: String::new(),
        since_ms: 2_000,
        queue: "200".into(),
        answered_ms: 0,
        queued_ms: 0,
        wrapup_call: String::new(),
        hold_since_ms: 0,
        hold_ms: 0,
        state_offset: 11,
        pos: pos(11),
    }
}

fn call(t: &str, c: &str, state: &str) -> CallView {
    CallView {
        tenant: t.into(),
        call: c.into(),
        state: state.into(),
        since_ms: 3_000,
        number: "+100".into(),
        caller: "+200".into(),
        plan_version: 1,
        arrived_ms: 3_000,
        queue: "200".into(),
        queued_ms: 3_000,
        agent: String::new(),
        ringing: vec![Offering {
            agent: "ann".into(),
            seq: 1,
        }],
        first_ring_ms: 3_100,
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
        offers: 1,
        recording: String::new(),
        pos: pos(12),
    }
}

fn record(t: &str, c: &str, start_ms: u64) -> CallRecord {
    CallRecord {
        tenant: t.into(),
        day: "2026-11-23".into(),
        call: c.into(),
        direction: "inbound".into(),
        number: "+100".into(),
        caller: "+200".into(),
        queue: "200".into(),
        agent: "ann".into(),
        start_ms,
        end_ms: start_ms + 60_000,
        wait_ms: 5_000,
        ring_ms: 3_000,
        talk_ms: 50_000,
        hold_ms: 0,
        wrapup_ms: 10_000,
        result: "answered".into(),
        end_cause: "caller".into(),
        offers: 2,
        plan_version: 1,
        recording: String::new(),
        pos: pos(13),
    }
}

fn offer(t: &str, c: &str, seq: u32) -> OfferRecord {
    OfferRecord {
        tenant: t.into(),
        call: c.into(),
        seq,
        agent: format!("agent{seq}"),
        queue: "200".into(),
        offered_ms: 4_000 + u64::from(seq),
        ended_ms: 5_000,
        result: "no_answer".into(),
        pos: pos(14),
    }
}

fn span(t: &str, a: &str, start_ms: u64, offset: u64) -> AgentStateRecord {
    AgentStateRecord {
        tenant: t.into(),
        agent: a.into(),
        start_ms,
        start_offset: offset,
        end_ms: start_ms + 100,
        state: "available".into(),
        reason: String::new(),
        call: String::new(),
        pos: pos(offset),
    }
}

fn interval(t: &str, start_ms: u64, subject: Subject, id: &str) -> IntervalRow {
    IntervalRow {
        tenant: t.into(),
        start_ms,
        subject,
        id: id.into(),
        stats: Stats {
            offered: 7,
            talk_ms: 123,
            ..Stats::default()
        },
        pos: pos(15),
    }
}

fn tenant_row(t: &str) -> TenantRow {
    TenantRow {
        tenant: t.into(),
        version: 2,
        yaml: format!("tenant: {t}\n"),
        pos: pos(1),
    }
}

/// One row of every kind for tenant `t`.
pub fn every_kind(t: &str) -> Vec<Row> {
    vec![
        Row::Tenant(tenant_row(t)),
        Row::Queue(queue(t, "200")),
        Row::Agent(agent(t, "ann")),
        Row::Call(call(t, "c1", "queued")),
        Row::Record(record(t, "c1", 100_000)),
        Row::Offer(offer(t, "c1", 1)),
        Row::AgentState(span(t, "ann", 2_000, 11)),
        Row::Interval(interval(t, 900_000, Subject::Queue, "200")),
    ]
}

async fn write(s: &dyn ProjectionStore, rows: Vec<Row>) {
    s.write(Batch {
        rows,
        checkpoints: vec![],
    })
    .await
    .expect("write");
}

/// Every row kind round-trips through `write` and `get`; a missing key is `None`.
pub async fn every_row_kind_round_trips(t: TestStore) {
    let s = t.store.as_ref();
    for row in every_kind("a") {
        assert_eq!(
            s.get(&row.key()).await.expect("get"),
            None,
            "{:?}",
            row.key()
        );
    }
    write(s, every_kind("a")).await;
    for row in every_kind("a") {
        assert_eq!(s.get(&row.key()).await.expect("get"), Some(row));
    }
}

/// A second write of a key replaces the whole row; within one batch, the last version of a
/// key wins.
pub async fn a_write_replaces_the_row(t: TestStore) {
    let s = t.store.as_ref();
    write(s, vec![Row::Agent(agent("a", "ann"))]).await;
    let mut changed = agent("a", "ann");
    changed.state = "not_ready".into();
    changed.reason = "break".into();
    changed.pos = pos(99);
    write(s, vec![Row::Agent(changed.clone())]).await;
    assert_eq!(
        s.get(&RowKey::Agent("a".into(), "ann".into()))
            .await
            .expect("get"),
        Some(Row::Agent(changed))
    );
    assert_eq!(s.dump().await.expect("dump").len(), 1);

    // two versions of a live row and of a history row in one batch: the later ones stay
    let mut first = call("a", "c1", "queued");
    first.pos = pos(20);
    let mut last = call("a", "c1", "talking");
    last.pos = pos(21);
    let mut old_record = record("a", "c1", 100_000);
    old_record.wrapup_ms = 0;
    let new_record = record("a", "c1", 100_000);
    write(
        s,
        vec![
            Row::Call(first),
            Row::Record(old_record),
            Row::Call(last.clone()),
            Row::Record(new_record.clone()),
        ],
    )
    .await;
    assert_eq!(
        s.get(&RowKey::Call("a".into(), "c1".into()))
            .await
            .expect("get"),
        Some(Row::Call(last))
    );
    assert_eq!(
        s.get(&RowKey::Record("a".into(), "c1".into()))
            .await
            .expect("get"),
        Some(Row::Record(new_record.clone()))
    );
    assert_eq!(
        s.call_records("a", Span::all()).await.expect("read"),
        [new_record]
    );
}

/// Checkpoints are per partition, readable after their batch, and may move backwards.
pub async fn checkpoints_follow_their_batches(t: TestStore) {
    let s = t.store.as_ref();
    assert_eq!(s.checkpoint(0).await.expect("read"), None);
    s.write(Batch {
        rows: every_kind("a"),
        checkpoints: vec![(0, 40), (5, 7)],
    })
    .await
    .expect("write");
    assert_eq!(s.checkpoint(0).await.expect("read"), Some(40));
    assert_eq!(s.checkpoint(5).await.expect("read"), Some(7));
    assert_eq!(s.checkpoint(1).await.expect("read"), None);
    s.write(Batch {
        rows: vec![],
        checkpoints: vec![(0, 12)],
    })
    .await
    .expect("rewind");
    assert_eq!(s.checkpoint(0).await.expect("read"), Some(12));
}

/// `clear` removes every row and checkpoint.
pub async fn clear_removes_everything(t: TestStore) {
    let s = t.store.as_ref();
    s.write(Batch {
        rows: [every_kind("a"), every_kind("b")].concat(),
        checkpoints: vec![(0, 40)],
    })
    .await
    .expect("write");
    s.clear().await.expect("clear");
    assert!(s.dump().await.expect("dump").is_empty());
    assert_eq!(s.checkpoint(0).await.expect("read"), None);
    assert!(s.tenants().await.expect("tenants").is_empty());
    for t in ["a", "b"] {
        assert!(s
            .call_records(t, Span::all())
            .await
            .expect("read")
            .is_empty());
        assert!(s.intervals(t, Span::all()).await.expect("read").is_empty());
        assert!(s
            .agent_states(t, "ann", Span::all())
            .await
            .expect("read")
            .is_empty());
        let live = s.live(t).await.expect("live");
        assert!(live.queues.is_empty() && live.agents.is_empty() && live.calls.is_empty());
    }

    // the same rows written again after a clear (a rebuild) are found by every read
    write(s, every_kind("a")).await;
    assert_eq!(s.dump().await.expect("dump").len(), every_kind("a").len());
    assert_eq!(s.tenants().await.expect("tenants"), ["a"]);
    assert_eq!(
        s.call_records("a", Span::all()).await.expect("read").len(),
        1
    );
    assert_eq!(s.intervals("a", Span::all()).await.expect("read").len(), 1);
    assert_eq!(
        s.agent_states("a", "ann", Span::all())
            .await
            .expect("read")
            .len(),
        1
    );
}

/// `live` has every queue and agent sorted by id, and only the calls not ended.
pub async fn live_views_leave_ended_calls_out(t: TestStore) {
    let s = t.store.as_ref();
    write(
        s,
        vec![
            Row::Queue(queue("a", "201")),
            Row::Queue(queue("a", "200")),
            Row::Agent(agent("a", "bob")),
            Row::Agent(agent("a", "ann")),
            Row::Call(call("a", "c2", "talking")),
            Row::Call(call("a", "c1", "ended")),
            Row::Call(call("a", "c0", "queued")),
        ],
    )
    .await;
    let live = s.live("a").await.expect("live");
    let ids = |v: Vec<String>| v;
    assert_eq!(
        ids(live.queues.iter().map(|q| q.queue.clone()).collect()),
        ["200", "201"]
    );
    assert_eq!(
        ids(live.agents.iter().map(|a| a.agent.clone()).collect()),
        ["ann", "bob"]
    );
    assert_eq!(
        ids(live.calls.iter().map(|c| c.call.clone()).collect()),
        ["c0", "c2"]
    );
}

/// Span reads include `from`, exclude `to`, in their documented order.
pub async fn span_reads_honour_the_span_and_order(t: TestStore) {
    let s = t.store.as_ref();
    let day = 86_400_000;
    write(
        s,
        vec![
            Row::Record(record("a", "late", 3 * day + 5)),
            Row::Record(record("a", "early", 5)),
            Row::Record(record("a", "mid", day)),
            Row::Offer(offer("a", "mid", 2)),
            Row::Offer(offer("a", "mid", 1)),
            Row::Offer(offer("a", "other", 1)),
            Row::AgentState(span("a", "ann", 2 * day, 30)),
            Row::AgentState(span("a", "ann", 100, 20)),
            Row::AgentState(span("a", "ann", 100, 10)),
            Row::AgentState(span("a", "bob", 100, 5)),
            Row::Interval(interval("a", day, Subject::Queue, "200")),
            Row::Interval(interval("a", 900_000, Subject::Queue, "201")),
            Row::Interval(interval("a", 900_000, Subject::Agent, "ann")),
            Row::Interval(interval("a", 900_000, Subject::Queue, "200")),
        ],
    )
    .await;
    let calls = |v: Vec<CallRecord>| v.into_iter().map(|r| r.call).collect::<Vec<_>>();
    assert_eq!(
        calls(s.call_records("a", Span::all()).await.expect("read")),
        ["early", "mid", "late"]
    );
    assert_eq!(
        calls(
            s.call_records("a", Span::new(5, day).expect("span"))
                .await
                .expect("read")
        ),
        ["early"]
    );
    assert_eq!(
        calls(
            s.call_records("a", Span::new(6, day + 1).expect("span"))
                .await
                .expect("read")
        ),
        ["mid"]
    );
    assert!(s
        .call_records("a", Span::new(0, 5).expect("span"))
        .await
        .expect("read")
        .is_empty());
    let seqs: Vec<u32> = s
        .offers("a", "mid")
        .await
        .expect("read")
        .iter()
        .map(|o| o.seq)
        .collect();
    assert_eq!(seqs, [1, 2]);
    assert!(s.offers("a", "nope").await.expect("read").is_empty());
    let spans: Vec<(u64, u64)> = s
        .agent_states("a", "ann", Span::all())
        .await
        .expect("read")
        .iter()
        .map(|r| (r.start_ms, r.start_offset))
        .collect();
    assert_eq!(spans, [(100, 10), (100, 20), (2 * day, 30)]);
    let spans: Vec<(u64, u64)> = s
        .agent_states("a", "ann", Span::new(100, 2 * day).expect("span"))
        .await
        .expect("read")
        .iter()
        .map(|r| (r.start_ms, r.start_offset))
        .collect();
    assert_eq!(spans, [(100, 10), (100, 20)], "`to` is excluded");
    assert_eq!(
        s.agent_states("a", "ann", Span::new(101, 3 * day).expect("span"))
            .await
            .expect("read")
            .len(),
        1
    );
    let iv: Vec<(u64, Subject, String)> = s
        .intervals("a", Span::all())
        .await
        .expect("read")
        .into_iter()
        .map(|r| (r.start_ms, r.subject, r.id))
        .collect();
    assert_eq!(
        iv,
        [
            (900_000, Subject::Agent, "ann".to_owned()),
            (900_000, Subject::Queue, "200".to_owned()),
            (900_000, Subject::Queue, "201".to_owned()),
            (day, Subject::Queue, "200".to_owned()),
        ]
    );
    assert_eq!(
        s.intervals("a", Span::new(900_001, u64::MAX).expect("span"))
            .await
            .expect("read")
            .len(),
        1
    );
    assert_eq!(
        s.intervals("a", Span::new(900_000, day).expect("span"))
            .await
            .expect("read")
            .len(),
        3,
        "`from` is included, `to` excluded"
    );
    assert!(s
        .intervals("a", Span::new(day, day).expect("span"))
        .await
        .expect("read")
        .is_empty());
}

/// Rows of one tenant never appear in another's reads.
pub async fn tenants_are_isolated(t: TestStore) {
    let s = t.store.as_ref();
    write(s, every_kind("a")).await;
    assert_eq!(s.tenants().await.expect("tenants"), ["a"]);
    let live = s.live("b").await.expect("live");
    assert!(live.queues.is_empty() && live.agents.is_empty() && live.calls.is_empty());
    assert!(s
        .call_records("b", Span::all())
        .await
        .expect("read")
        .is_empty());
    assert!(s.offers("b", "c1").await.expect("read").is_empty());
    assert!(s
        .agent_states("b", "ann", Span::all())
        .await
        .expect("read")
        .is_empty());
    assert!(s
        .intervals("b", Span::all())
        .await
        .expect("read")
        .is_empty());
    for row in every_kind("b") {
        assert_eq!(s.get(&row.key()).await.expect("get"), None);
    }
    write(s, every_kind("b")).await;
    assert_eq!(s.tenants().await.expect("tenants"), ["a", "b"]);
    // a tenant without a configuration row has rows but is not listed
    write(
        s,
        every_kind("c")
            .into_iter()
            .filter(|r| !matches!(r, Row::Tenant(_)))
            .collect(),
    )
    .await;
    assert_eq!(s.tenants().await.expect("tenants"), ["a", "b"]);
    for t in ["a", "b"] {
        let live = s.live(t).await.expect("live");
        assert!(live.queues.iter().all(|q| q.tenant == t));
        assert!(live.agents.iter().all(|a| a.tenant == t));
        assert!(live.calls.iter().all(|c| c.tenant == t));
        assert_eq!(s.call_records(t, Span::all()).await.expect("read").len(), 1);
        assert!(s
            .intervals(t, Span::all())
            .await
            .expect("read")
            .iter()
            .all(|r| r.tenant == t));
    }
}

/// Bad input is an error naming the field, and writes nothing.
pub async fn bad_input_is_refused(t: TestStore) {
    let s = t.store.as_ref();
    let invalid = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Invalid { .. }));
    assert!(invalid(s.live("").await.map(|_| ())));
    assert!(invalid(
        s.get(&RowKey::Tenant(String::new())).await.map(|_| ())
    ));
    assert!(invalid(s.call_records("", Span::all()).await.map(|_| ())));
    assert!(invalid(s.offers("", "c").await.map(|_| ())));
    assert!(invalid(
        s.agent_states("", "a", Span::all()).await.map(|_| ())
    ));
    assert!(invalid(s.intervals("", Span::all()).await.map(|_| ())));
    let mut rows = every_kind("a");
    rows.push(Row::Agent(agent("", "ghost")));
    assert!(invalid(
        s.write(Batch {
            rows,
            checkpoints: vec![(0, 1)],
        })
        .await
    ));
    assert!(
        s.dump().await.expect("dump").is_empty(),
        "a refused batch writes nothing"
    );
    assert_eq!(s.checkpoint(0).await.expect("read"), None);
    assert!(matches!(
        Span::new(5, 4),
        Err(StoreError::Invalid { field: "span", .. })
    ));
}

/// `dump` is every row in key order, the same for the same rows written in any order and
/// batching; `tenants` is sorted whatever the order of writing.
pub async fn dump_is_every_row_in_key_order(t: TestStore) {
    let s = t.store.as_ref();
    let rows = [every_kind("b"), every_kind("a")].concat();
    write(s, rows.clone()).await;
    assert_eq!(s.tenants().await.expect("tenants"), ["a", "b"]);
    let first = s.dump().await.expect("dump");
    let mut sorted = rows.clone();
    sorted.sort_by_key(Row::key);
    assert_eq!(first, sorted);

    // the same rows again, reversed and in two batches, into the cleared store
    s.clear().await.expect("clear");
    let mut reversed = rows;
    reversed.reverse();
    let later = reversed.split_off(reversed.len() / 2);
    write(s, later).await;
    write(s, reversed).await;
    assert_eq!(s.dump().await.expect("dump"), first);
}

/// A batch of 5,000 rows writes and reads back.
pub async fn a_large_batch_writes_whole(t: TestStore) {
    let s = t.store.as_ref();
    let rows: Vec<Row> = (0..5_000u32)
        .map(|i| Row::Offer(offer("a", &format!("c{}", i / 10), i % 10 + 1)))
        .collect();
    s.write(Batch {
        rows,
        checkpoints: vec![(3, 5_000)],
    })
    .await
    .expect("write");
    assert_eq!(s.dump().await.expect("dump").len(), 5_000);
    assert_eq!(s.offers("a", "c499").await.expect("read").len(), 10);
    assert_eq!(s.checkpoint(3).await.expect("read"), Some(5_000));
}

/// One `#[tokio::test]` per conformance case, each on a fresh store from `$factory`.
///
/// - `store_conformance_tests!(factory)`: `factory` is an `async fn() -> TestStore`.
/// - `store_conformance_tests!(factory, skipped = MESSAGE)`: `factory` is an
///   `async fn() -> Option<TestStore>` for a backend that may be absent (a ScyllaDB node);
///   when it gives `None` the case prints `MESSAGE` to stdout and stderr and passes
///   (CONVENTIONS 9: a skipped test says so, loudly).
///
/// Both forms expand the one list of cases below, so a new case runs on every backend.
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:path) => {
        $crate::store_conformance_tests!(@cases [$factory] []);
    };
    ($factory:path, skipped = $skipped:expr) => {
        $crate::store_conformance_tests!(@cases [$factory] [$skipped]);
    };
    (@cases [$factory:path] [$($skipped:expr)?]) => {
        $crate::store_conformance_tests!(@each [$factory] [$($skipped)?]
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
    };
    (@each [$factory:path] [] $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::conformance::$case($factory().await).await;
            }
        )*
    };
    (@each [$factory:path] [$skipped:expr] $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                match $factory().await {
                    Some(store) => $crate::conformance::$case(store).await,
                    None => {
                        println!("{}", $skipped);
                        eprintln!("{}", $skipped);
                    }
                }
            }
        )*
    };
}
