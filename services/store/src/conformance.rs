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
use crate::{
    read_all, Batch, Page, PageRequest, ProjectionStore, Span, StoreError, DEFAULT_PAGE_LIMIT,
    MAX_PAGE_LIMIT,
};

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
        resume: String::new(),
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
        direction: String::new(),
        correlation: String::new(),
        trunk: String::new(),
        sip_code: 0,
        carrier: String::new(),
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
        correlation: String::new(),
        trunk: String::new(),
        sip_code: 0,
        carrier: String::new(),
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

/// Every call record of `t` within `span`, read two to a page (so every case pages).
async fn calls_of(s: &dyn ProjectionStore, t: &str, span: Span) -> Vec<CallRecord> {
    read_all(2, |p| s.call_records(t, span, p))
        .await
        .expect("read")
}

/// Every state span of agent `a` within `span`, read two to a page.
async fn states_of(s: &dyn ProjectionStore, t: &str, a: &str, span: Span) -> Vec<AgentStateRecord> {
    read_all(2, |p| s.agent_states(t, a, span, p))
        .await
        .expect("read")
}

/// Every interval row of `t` within `span`, read two to a page.
async fn intervals_of(s: &dyn ProjectionStore, t: &str, span: Span) -> Vec<IntervalRow> {
    read_all(2, |p| s.intervals(t, span, p))
        .await
        .expect("read")
}

/// Pages through a read `limit` rows at a time and checks the pages: every page but the
/// last is full and has a cursor, the last has none. Every row, in page order.
async fn page_through<T, F, Fut>(limit: u64, mut read: F) -> Vec<T>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, StoreError>>,
{
    let mut out = Vec::new();
    let mut request = PageRequest::first(limit);
    for _ in 0..10_000 {
        let page = read(request.clone()).await.expect("a page");
        let n = page.rows.len() as u64;
        assert!(n <= limit, "a page of {n} rows over its limit {limit}");
        out.extend(page.rows);
        match page.next_cursor {
            Some(c) => {
                assert_eq!(n, limit, "a page before the last is full");
                request = PageRequest::after(limit, c);
            }
            None => return out,
        }
    }
    panic!("paging never ends");
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
    assert_eq!(calls_of(s, "a", Span::all()).await, [new_record]);
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
        assert!(calls_of(s, t, Span::all()).await.is_empty());
        assert!(intervals_of(s, t, Span::all()).await.is_empty());
        assert!(states_of(s, t, "ann", Span::all()).await.is_empty());
        let live = s.live(t).await.expect("live");
        assert!(live.queues.is_empty() && live.agents.is_empty() && live.calls.is_empty());
    }

    // the same rows written again after a clear (a rebuild) are found by every read
    write(s, every_kind("a")).await;
    assert_eq!(s.dump().await.expect("dump").len(), every_kind("a").len());
    assert_eq!(s.tenants().await.expect("tenants"), ["a"]);
    assert_eq!(calls_of(s, "a", Span::all()).await.len(), 1);
    assert_eq!(intervals_of(s, "a", Span::all()).await.len(), 1);
    assert_eq!(states_of(s, "a", "ann", Span::all()).await.len(), 1);
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
        calls(calls_of(s, "a", Span::all()).await),
        ["early", "mid", "late"]
    );
    assert_eq!(
        calls(calls_of(s, "a", Span::new(5, day).expect("span")).await),
        ["early"]
    );
    assert_eq!(
        calls(calls_of(s, "a", Span::new(6, day + 1).expect("span")).await),
        ["mid"]
    );
    assert!(calls_of(s, "a", Span::new(0, 5).expect("span"))
        .await
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
    let spans: Vec<(u64, u64)> = states_of(s, "a", "ann", Span::all())
        .await
        .iter()
        .map(|r| (r.start_ms, r.start_offset))
        .collect();
    assert_eq!(spans, [(100, 10), (100, 20), (2 * day, 30)]);
    let spans: Vec<(u64, u64)> = states_of(s, "a", "ann", Span::new(100, 2 * day).expect("span"))
        .await
        .iter()
        .map(|r| (r.start_ms, r.start_offset))
        .collect();
    assert_eq!(spans, [(100, 10), (100, 20)], "`to` is excluded");
    assert_eq!(
        states_of(s, "a", "ann", Span::new(101, 3 * day).expect("span"))
            .await
            .len(),
        1
    );
    let iv: Vec<(u64, Subject, String)> = intervals_of(s, "a", Span::all())
        .await
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
        intervals_of(s, "a", Span::new(900_001, u64::MAX).expect("span"))
            .await
            .len(),
        1
    );
    assert_eq!(
        intervals_of(s, "a", Span::new(900_000, day).expect("span"))
            .await
            .len(),
        3,
        "`from` is included, `to` excluded"
    );
    assert!(intervals_of(s, "a", Span::new(day, day).expect("span"))
        .await
        .is_empty());
}

/// Rows of one tenant never appear in another's reads.
pub async fn tenants_are_isolated(t: TestStore) {
    let s = t.store.as_ref();
    write(s, every_kind("a")).await;
    assert_eq!(s.tenants().await.expect("tenants"), ["a"]);
    let live = s.live("b").await.expect("live");
    assert!(live.queues.is_empty() && live.agents.is_empty() && live.calls.is_empty());
    assert!(calls_of(s, "b", Span::all()).await.is_empty());
    assert!(s.offers("b", "c1").await.expect("read").is_empty());
    assert!(states_of(s, "b", "ann", Span::all()).await.is_empty());
    assert!(intervals_of(s, "b", Span::all()).await.is_empty());
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
        assert_eq!(calls_of(s, t, Span::all()).await.len(), 1);
        assert!(intervals_of(s, t, Span::all())
            .await
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
    assert!(invalid(
        s.call_records("", Span::all(), PageRequest::default())
            .await
            .map(|_| ())
    ));
    assert!(invalid(s.offers("", "c").await.map(|_| ())));
    assert!(invalid(
        s.agent_states("", "a", Span::all(), PageRequest::default())
            .await
            .map(|_| ())
    ));
    assert!(invalid(
        s.intervals("", Span::all(), PageRequest::default())
            .await
            .map(|_| ())
    ));
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

const DAY_MS: u64 = 86_400_000;

/// Rows of tenant `t` of the three paged reads, over three days, many sharing a time (so ties
/// are broken by id), with ids that sort differently as text and as numbers, written in no
/// particular order: call records, state spans of `ann`, interval rows.
fn paged_rows(t: &str) -> (Vec<CallRecord>, Vec<AgentStateRecord>, Vec<IntervalRow>) {
    let calls = (0..23u64)
        .map(|i| record(t, &format!("c{i}"), (i % 3) * DAY_MS + (i % 4) * 1_000))
        .chain([record(t, "é", 1_000), record(t, "Z", 1_000)])
        .collect();
    let states = (0..17u64)
        .map(|i| span(t, "ann", (i % 3) * DAY_MS + (i % 2) * 100, 1_000 - i))
        .collect();
    let mut intervals = Vec::new();
    for id in ["201", "ann", "200", "1000"] {
        for subject in [Subject::Queue, Subject::Agent] {
            for start in [DAY_MS, 0, 900_000, DAY_MS + 900_000, 2 * DAY_MS] {
                intervals.push(interval(t, start, subject, id));
            }
        }
    }
    (calls, states, intervals)
}

fn rows_of(
    (calls, states, intervals): &(Vec<CallRecord>, Vec<AgentStateRecord>, Vec<IntervalRow>),
) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    rows.extend(calls.iter().cloned().map(Row::Record));
    rows.extend(states.iter().cloned().map(Row::AgentState));
    rows.extend(intervals.iter().cloned().map(Row::Interval));
    rows
}

fn call_key(r: &CallRecord) -> (u64, String) {
    (r.start_ms, r.call.clone())
}

fn state_key(r: &AgentStateRecord) -> (u64, u64) {
    (r.start_ms, r.start_offset)
}

fn interval_key(r: &IntervalRow) -> (u64, Subject, String) {
    (r.start_ms, r.subject, r.id.clone())
}

/// Paging through each read with any limit returns every row within the span once, in key
/// order (time, then id); every page but the last is full and has a cursor; another tenant's
/// and agent's rows never show.
pub async fn paging_returns_every_row_once_in_order(t: TestStore) {
    let s = t.store.as_ref();
    let mine = paged_rows("a");
    let (calls, states, intervals) = &mine;
    let mut rows = rows_of(&mine);
    rows.extend(rows_of(&paged_rows("b")));
    rows.extend(paged_rows("a").1.into_iter().map(|mut r| {
        r.agent = "bob".into();
        Row::AgentState(r)
    }));
    rows.reverse();
    write(s, rows).await;

    let spans = [
        Span::all(),
        // from and to inside days: both cut through ties of time
        Span::new(1_000, DAY_MS + 1_000).expect("span"),
        Span::new(100, 2 * DAY_MS).expect("span"),
        Span::new(DAY_MS, DAY_MS).expect("span"),
    ];
    for span in spans {
        let within = |ms: u64| span.from_ms <= ms && ms < span.to_ms;
        let mut want_calls: Vec<_> = calls
            .iter()
            .filter(|r| within(r.start_ms))
            .cloned()
            .collect();
        want_calls.sort_by_key(call_key);
        let mut want_states: Vec<_> = states
            .iter()
            .filter(|r| within(r.start_ms))
            .cloned()
            .collect();
        want_states.sort_by_key(state_key);
        let mut want_intervals: Vec<_> = intervals
            .iter()
            .filter(|r| within(r.start_ms))
            .cloned()
            .collect();
        want_intervals.sort_by_key(interval_key);
        for limit in [1, 2, 3, 7, 24, 25, 26, MAX_PAGE_LIMIT] {
            let got = page_through(limit, |p| s.call_records("a", span, p)).await;
            assert_eq!(
                got.iter().map(call_key).collect::<Vec<_>>(),
                want_calls.iter().map(call_key).collect::<Vec<_>>(),
                "call records, {span:?}, {limit} a page"
            );
            assert_eq!(got, want_calls);
            let got = page_through(limit, |p| s.agent_states("a", "ann", span, p)).await;
            assert_eq!(
                got.iter().map(state_key).collect::<Vec<_>>(),
                want_states.iter().map(state_key).collect::<Vec<_>>(),
                "agent states, {span:?}, {limit} a page"
            );
            assert_eq!(got, want_states);
            let got = page_through(limit, |p| s.intervals("a", span, p)).await;
            assert_eq!(
                got.iter().map(interval_key).collect::<Vec<_>>(),
                want_intervals.iter().map(interval_key).collect::<Vec<_>>(),
                "intervals, {span:?}, {limit} a page"
            );
            assert_eq!(got, want_intervals);
        }
    }
    assert_eq!(calls_of(s, "a", Span::all()).await.len(), calls.len());
    assert!(calls_of(s, "c", Span::all()).await.is_empty());

    // without a limit, a page holds DEFAULT_PAGE_LIMIT rows
    let many: Vec<Row> = (0..DEFAULT_PAGE_LIMIT + 1)
        .map(|i| Row::AgentState(span("a", "cat", 7 * DAY_MS + i, i)))
        .collect();
    write(s, many).await;
    let first = s
        .agent_states("a", "cat", Span::all(), PageRequest::default())
        .await
        .expect("a page");
    assert_eq!(first.rows.len() as u64, DEFAULT_PAGE_LIMIT);
    let cursor = first.next_cursor.expect("a second page");
    let second = s
        .agent_states(
            "a",
            "cat",
            Span::all(),
            PageRequest {
                limit: None,
                cursor: Some(cursor),
            },
        )
        .await
        .expect("a page");
    assert_eq!(second.rows.len(), 1);
    assert_eq!(second.next_cursor, None);
}

/// Rows written between the reads of two pages never make a row show twice or go missing:
/// the pass goes on after the last key it returned, so rows written at earlier keys are not
/// seen by it, rows written at later keys are, and rows already returned and rewritten in
/// place are not returned again. A cursor past the last row reads an empty page without a
/// cursor; a cursor before the span's start reads the span's first page.
pub async fn paging_is_stable_under_writes_between_pages(t: TestStore) {
    let s = t.store.as_ref();
    let mine = paged_rows("a");
    let (calls, states, intervals) = &mine;
    write(s, rows_of(&mine)).await;

    // read two pages, then write rows before, at and after the cursor
    let first = s
        .call_records("a", Span::all(), PageRequest::first(5))
        .await
        .expect("a page");
    let second = s
        .call_records(
            "a",
            Span::all(),
            PageRequest::after(5, first.next_cursor.clone().expect("more")),
        )
        .await
        .expect("a page");
    let cursor = second.next_cursor.clone().expect("more");
    let last_seen = call_key(second.rows.last().expect("rows"));
    let mut rewritten = second.rows[0].clone();
    rewritten.wrapup_ms += 1;
    let early = record("a", "early", 0);
    // the same time as the last row seen, a smaller id ('!' sorts before every id here)
    // and a larger one (a longer id it is a prefix of)
    let tie_before = record("a", "!", last_seen.0);
    let tie_after = record("a", &format!("{}~", last_seen.1), last_seen.0);
    let late = record("a", "late", 5 * DAY_MS);
    write(
        s,
        vec![
            Row::Record(rewritten),
            Row::Record(early),
            Row::Record(tie_before),
            Row::Record(tie_after.clone()),
            Row::Record(late.clone()),
        ],
    )
    .await;
    let rest = page_through_from(cursor, 5, |p| s.call_records("a", Span::all(), p)).await;
    let mut got: Vec<(u64, String)> = first.rows.iter().map(call_key).collect();
    got.extend(second.rows.iter().map(call_key));
    got.extend(rest.iter().map(call_key));
    let mut want: Vec<CallRecord> = calls.clone();
    want.extend([tie_after, late]);
    let mut want: Vec<(u64, String)> = want.iter().map(call_key).collect();
    want.sort();
    assert_eq!(
        got, want,
        "every row once, in order; none of those before the cursor"
    );

    // the same for agent states and intervals: a page, then a row before and one after
    let first = s
        .agent_states("a", "ann", Span::all(), PageRequest::first(4))
        .await
        .expect("a page");
    let before = span("a", "ann", 0, 1);
    let after = span("a", "ann", 9 * DAY_MS, 1);
    write(
        s,
        vec![Row::AgentState(before), Row::AgentState(after.clone())],
    )
    .await;
    let rest = page_through_from(first.next_cursor.expect("more"), 4, |p| {
        s.agent_states("a", "ann", Span::all(), p)
    })
    .await;
    let mut got: Vec<(u64, u64)> = first.rows.iter().map(state_key).collect();
    got.extend(rest.iter().map(state_key));
    let mut want: Vec<(u64, u64)> = states.iter().chain([&after]).map(state_key).collect();
    want.sort();
    assert_eq!(got, want);

    let first = s
        .intervals("a", Span::all(), PageRequest::first(6))
        .await
        .expect("a page");
    let before = interval("a", 0, Subject::Agent, "0");
    let after = interval("a", 9 * DAY_MS, Subject::Agent, "0");
    write(s, vec![Row::Interval(before), Row::Interval(after.clone())]).await;
    let rest = page_through_from(first.next_cursor.expect("more"), 6, |p| {
        s.intervals("a", Span::all(), p)
    })
    .await;
    let mut got: Vec<(u64, Subject, String)> = first.rows.iter().map(interval_key).collect();
    got.extend(rest.iter().map(interval_key));
    let mut want: Vec<_> = intervals.iter().chain([&after]).map(interval_key).collect();
    want.sort();
    assert_eq!(got, want);

    // a cursor at the last row: an empty page without a cursor. Rows x@10, y@20, z@30: a
    // page of two has a cursor at y; z then moves before it (its arrival changed).
    let rows = [
        record("z", "x", 10),
        record("z", "y", 20),
        record("z", "z", 30),
    ];
    write(s, rows.iter().cloned().map(Row::Record).collect()).await;
    let page = s
        .call_records("z", Span::all(), PageRequest::first(2))
        .await
        .expect("a page");
    let cursor = page.next_cursor.expect("z is after the page");
    write(s, vec![Row::Record(record("z", "z", 5))]).await;
    let last = s
        .call_records("z", Span::all(), PageRequest::after(2, cursor.clone()))
        .await
        .expect("a page");
    assert_eq!(
        last,
        Page {
            rows: vec![],
            next_cursor: None
        }
    );
    // a cursor past the span's end, and one before its start
    let cut = Span::new(0, 20).expect("span");
    let page = s
        .call_records("z", cut, PageRequest::after(2, cursor.clone()))
        .await
        .expect("a page");
    assert_eq!(
        page,
        Page {
            rows: vec![],
            next_cursor: None
        }
    );
    let later = Span::new(21, u64::MAX).expect("span");
    write(s, vec![Row::Record(record("z", "w", 40))]).await;
    let page = s
        .call_records("z", later, PageRequest::after(2, cursor))
        .await
        .expect("a page");
    assert_eq!(
        page.rows.iter().map(call_key).collect::<Vec<_>>(),
        [(40, "w".to_owned())]
    );
    assert_eq!(page.next_cursor, None);
}

/// The cursor of a page that has one.
fn cursor_of<T: std::fmt::Debug>(page: Result<Page<T>, StoreError>) -> String {
    page.expect("a page").next_cursor.expect("more")
}

/// [`page_through`] from the page after `cursor`.
async fn page_through_from<T, F, Fut>(cursor: String, limit: u64, mut read: F) -> Vec<T>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, StoreError>>,
{
    let mut first = Some(cursor);
    page_through(limit, move |mut p| {
        if let Some(c) = first.take() {
            p.cursor = Some(c);
        }
        read(p)
    })
    .await
}

/// A limit of 0 or over [`MAX_PAGE_LIMIT`] is refused naming `limit`; a cursor that is not
/// one the store gave (garbage, empty, cut short, of another read) naming `cursor`. Nothing
/// panics.
pub async fn a_bad_limit_or_cursor_is_refused(t: TestStore) {
    let s = t.store.as_ref();
    write(s, rows_of(&paged_rows("a"))).await;
    let field = |r: Result<(), StoreError>| match r {
        Err(StoreError::Invalid { field, .. }) => field,
        other => panic!("not refused: {other:?}"),
    };
    let calls =
        |p: PageRequest| async move { s.call_records("a", Span::all(), p).await.map(|_| ()) };
    let states = |p: PageRequest| async move {
        s.agent_states("a", "ann", Span::all(), p).await.map(|_| ())
    };
    let intervals =
        |p: PageRequest| async move { s.intervals("a", Span::all(), p).await.map(|_| ()) };
    let call_cursor = cursor_of(
        s.call_records("a", Span::all(), PageRequest::first(1))
            .await,
    );
    let state_cursor = cursor_of(
        s.agent_states("a", "ann", Span::all(), PageRequest::first(1))
            .await,
    );
    let interval_cursor = cursor_of(s.intervals("a", Span::all(), PageRequest::first(1)).await);
    // an agent state's key has a fixed size: cut short, it is no key
    let mut cut = state_cursor.clone();
    cut.truncate(cut.len() - 3);
    assert_eq!(field(states(PageRequest::after(5, cut)).await), "cursor");
    for limit in [0, MAX_PAGE_LIMIT + 1, u64::MAX] {
        assert_eq!(field(calls(PageRequest::first(limit)).await), "limit");
        assert_eq!(field(states(PageRequest::first(limit)).await), "limit");
        assert_eq!(field(intervals(PageRequest::first(limit)).await), "limit");
    }
    for garbage in ["", "garbage", "not a cursor!", "AAAA", "%%%", "Zm9vYmFy"] {
        assert_eq!(
            field(calls(PageRequest::after(5, garbage)).await),
            "cursor",
            "{garbage:?}"
        );
        assert_eq!(
            field(states(PageRequest::after(5, garbage)).await),
            "cursor",
            "{garbage:?}"
        );
        assert_eq!(
            field(intervals(PageRequest::after(5, garbage)).await),
            "cursor",
            "{garbage:?}"
        );
    }
    // a cursor of one read is not one of another
    assert_eq!(
        field(calls(PageRequest::after(5, state_cursor.clone())).await),
        "cursor"
    );
    assert_eq!(
        field(states(PageRequest::after(5, interval_cursor.clone())).await),
        "cursor"
    );
    assert_eq!(
        field(intervals(PageRequest::after(5, call_cursor.clone())).await),
        "cursor"
    );
    // and the good ones, with the largest limit, read
    calls(PageRequest::after(MAX_PAGE_LIMIT, call_cursor))
        .await
        .expect("a page");
    states(PageRequest::after(MAX_PAGE_LIMIT, state_cursor))
        .await
        .expect("a page");
    intervals(PageRequest::after(MAX_PAGE_LIMIT, interval_cursor))
        .await
        .expect("a page");
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
            paging_returns_every_row_once_in_order,
            paging_is_stable_under_writes_between_pages,
            a_bad_limit_or_cursor_is_refused,
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
