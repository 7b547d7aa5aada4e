//! The projections against the generator's own record of a simulated day: figures agree,
//! replaying twice changes nothing, a projector stopped mid-stream and restarted equals a
//! rebuild, a caught-up projector writes all it queued, and no tenant sees another's rows.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use callgrid_eventlog::{EventLog, SqliteLog, SqliteLogOptions};
use callgrid_loadtest::day::{simulate, Day, DayCall, DayParams};
use callgrid_projector::{Projector, ProjectorOptions, EVENTS_TOPIC};
use callgrid_store::{
    read_all, Batch, ProjectionStore, Span, SqliteStore, Stats, Subject, MAX_PAGE_LIMIT,
};

const SL_MS: u64 = 20_000;

async fn log_with(days: &[&Day]) -> (tempfile::TempDir, Arc<dyn EventLog>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SqliteLog::open_async(
        dir.path().join("events.sqlite"),
        SqliteLogOptions::default(),
    )
    .await
    .expect("log");
    log.create_topic(EVENTS_TOPIC, 8).await.expect("topic");
    for day in days {
        for chunk in day.records.chunks(2_000) {
            log.append(EVENTS_TOPIC, chunk.to_vec())
                .await
                .expect("append");
        }
    }
    (dir, Arc::new(log))
}

fn store() -> Arc<dyn ProjectionStore> {
    Arc::new(SqliteStore::in_memory().expect("store"))
}

fn options(batch: usize) -> ProjectorOptions {
    ProjectorOptions {
        batch,
        idle_wait: Duration::from_millis(20),
        ..ProjectorOptions::default()
    }
}

/// A projector of `log` into `store` in batches of 250, writing at most every `window`.
fn writing_every(
    log: &Arc<dyn EventLog>,
    store: &Arc<dyn ProjectionStore>,
    window: Duration,
) -> Arc<Projector> {
    Projector::new(
        log.clone(),
        store.clone(),
        ProjectorOptions {
            write_every: window,
            ..options(250)
        },
    )
}

/// How a test runs the projector.
#[derive(Clone, Copy, Debug)]
enum Run {
    /// `Projector::run`, on the test's runtime.
    Shared,
    /// `Projector::run_on_own_thread`: reads and projects on its own thread.
    OwnThread,
}

/// Runs `projector` until its progress reaches `records` (or two minutes pass), stops it,
/// and returns the records it had projected by then.
async fn run_until(projector: &Arc<Projector>, records: u64, how: Run) -> u64 {
    let mut progress = projector.progress();
    let running = tokio::spawn({
        let projector = projector.clone();
        async move {
            match how {
                Run::Shared => projector.run().await,
                Run::OwnThread => projector.run_on_own_thread().await,
            }
        }
    });
    let _ = tokio::time::timeout(Duration::from_secs(120), async {
        while progress.borrow_and_update().projected < records {
            progress.changed().await.expect("progress");
        }
    })
    .await;
    running.abort();
    let _ = running.await;
    let reached = projector.progress().borrow().projected;
    reached
}

/// Every row of a fresh rebuild of `log`'s projections.
async fn rebuilt(log: Arc<dyn EventLog>) -> Vec<callgrid_store::Row> {
    let store = store();
    Projector::new(log, store.clone(), options(5_000))
        .catch_up()
        .await
        .expect("rebuild");
    store.dump().await.expect("dump")
}

fn small_day(tenant: &str, seed: u64) -> Day {
    simulate(&DayParams::new(tenant, 24, 3, 1_200, seed))
}

/// Per queue, the figures the generator's record implies (the day's sum).
fn expected_by_queue(day: &Day) -> BTreeMap<String, Stats> {
    let mut out: BTreeMap<String, Stats> = BTreeMap::new();
    for c in &day.calls {
        let s = out.entry(c.queue.clone()).or_default();
        s.offered += 1;
        match c.answered_ms {
            Some(answered) => {
                let wait = answered - c.arrived_ms;
                s.answered += 1;
                s.answered_within += u64::from(wait <= SL_MS);
                s.wait_answered_ms += wait;
                s.handled += 1;
                s.talk_ms += c.ended_ms - answered - c.hold_ms();
                s.hold_ms += c.hold_ms();
                s.max_wait_ms = s.max_wait_ms.max(wait);
            }
            None => {
                let wait = c.ended_ms - c.arrived_ms;
                if wait <= SL_MS {
                    s.abandoned_short += 1;
                } else {
                    s.abandoned_long += 1;
                }
                s.max_wait_ms = s.max_wait_ms.max(wait);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_days_projections_agree_with_the_generators_record() {
    let day = small_day("acme", 7);
    assert!(day.calls.iter().all(|c| c.ended_ms > 0), "every call ended");
    let answered = day.calls.iter().filter(|c| c.answered_ms.is_some()).count();
    assert!(
        answered > 100 && answered < day.calls.len(),
        "a day with answers and abandons"
    );
    // holds by agents, resumed and running when the call ended, and holds by callers
    let count = |f: &dyn Fn(&DayCall) -> bool| day.calls.iter().filter(|c| f(c)).count();
    assert!(count(&|c| c.agent_holds.iter().any(|h| h.1.is_some())) > 20);
    assert!(count(&|c| c.agent_holds.iter().any(|h| h.1.is_none())) > 5);
    assert!(count(&|c| !c.caller_holds.is_empty()) > 20);
    let (_dir, log) = log_with(&[&day]).await;
    let store = store();
    let projector = Projector::new(log, store.clone(), options(1_000));
    let projected = projector.catch_up().await.expect("projects");
    assert_eq!(projected, day.records.len() as u64);
    assert_eq!(projector.progress().borrow().skipped, 0);

    // interval figures of every queue, summed over the day, equal the generator's
    let intervals = read_all(MAX_PAGE_LIMIT, |p| store.intervals("acme", Span::all(), p))
        .await
        .expect("intervals");
    let mut by_queue: BTreeMap<String, Stats> = BTreeMap::new();
    for r in intervals.iter().filter(|r| r.subject == Subject::Queue) {
        assert_eq!(
            r.start_ms % (15 * 60_000),
            0,
            "intervals on quarter hours (UTC+7)"
        );
        let s = by_queue.entry(r.id.clone()).or_default();
        let mut calls_only = r.stats.clone();
        // agent time and wrap-up are checked below
        calls_only.available_ms = 0;
        calls_only.ringing_ms = 0;
        calls_only.on_call_ms = 0;
        calls_only.wrap_up_state_ms = 0;
        calls_only.not_ready_ms = 0;
        calls_only.wrapup_ms = 0;
        s.add(&calls_only);
    }
    let expected = expected_by_queue(&day);
    assert_eq!(
        by_queue.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (q, want) in &expected {
        let got = &by_queue[q];
        // max_wait is per interval in the rows; compare the day's maximum
        assert_eq!(
            (
                got.offered,
                got.answered,
                got.answered_within,
                got.abandoned_short,
                got.abandoned_long
            ),
            (
                want.offered,
                want.answered,
                want.answered_within,
                want.abandoned_short,
                want.abandoned_long
            ),
            "queue {q}: offered, answered, within threshold, abandoned short/long"
        );
        assert_eq!(
            got.wait_answered_ms, want.wait_answered_ms,
            "queue {q}: ASA numerator"
        );
        assert_eq!(
            (got.handled, got.talk_ms, got.hold_ms),
            (want.handled, want.talk_ms, want.hold_ms),
            "queue {q}: talk and hold"
        );
        assert_eq!(got.max_wait_ms, want.max_wait_ms, "queue {q}: longest wait");
    }

    // the live "today" of each queue is the same definition over the same calls
    let live = store.live("acme").await.expect("live");
    for v in &live.queues {
        let want = &expected[&v.queue];
        assert_eq!(
            (
                v.today.offered,
                v.today.answered,
                v.today.abandoned(),
                v.today.answered_within
            ),
            (
                want.offered,
                want.answered,
                want.abandoned(),
                want.answered_within
            ),
            "queue {} today",
            v.queue
        );
        assert!(v.waiting.is_empty(), "nobody waits at the end of the day");
        assert_eq!(
            v.agents.logged_out as usize,
            v.agents.logged_out as usize
                + v.agents.available as usize
                + v.agents.on_call as usize
                + v.agents.ringing as usize
                + v.agents.wrap_up as usize
                + v.agents.not_ready as usize,
            "everyone logged out"
        );
    }
    assert!(
        live.calls.is_empty(),
        "no call in progress: {:?}",
        live.calls.first()
    );
    assert!(live.agents.iter().all(|a| a.state == "logged_out"));

    // one call record per call, with the generator's outcome, agent and durations
    let records = read_all(MAX_PAGE_LIMIT, |p| {
        store.call_records("acme", Span::all(), p)
    })
    .await
    .expect("records");
    assert_eq!(records.len(), day.calls.len());
    let by_call: BTreeMap<&str, _> = records.iter().map(|r| (r.call.as_str(), r)).collect();
    let mut want_wrapup = 0u64;
    for c in &day.calls {
        let r = by_call[c.call.as_str()];
        assert_eq!(r.start_ms, c.arrived_ms, "{}", c.call);
        assert_eq!(r.end_ms, c.ended_ms, "{}", c.call);
        assert_eq!(r.queue, c.queue);
        assert_eq!(r.day, "2026-11-23");
        match c.answered_ms {
            Some(a) => {
                assert_eq!(r.result, "answered");
                assert_eq!(Some(r.agent.clone()), c.agent);
                assert_eq!(r.wait_ms, a - c.arrived_ms);
                // the agent's holds are hold time; the caller's stay talk time
                assert_eq!(r.hold_ms, c.hold_ms(), "{}: hold", c.call);
                assert_eq!(r.talk_ms, c.ended_ms - a - c.hold_ms(), "{}: talk", c.call);
                // the configured wrap-up, unless the agent went on a break or logged out
                let agent = c.agent.as_deref().expect("answering agent");
                let shift = day.shifts.iter().find(|s| s.agent == agent).expect("shift");
                let next = shift
                    .breaks
                    .iter()
                    .chain([&shift.logout_ms])
                    .filter(|&&t| t >= c.ended_ms)
                    .min()
                    .copied()
                    .unwrap_or(u64::MAX);
                assert_eq!(
                    r.wrapup_ms,
                    10_000.min(next - c.ended_ms),
                    "{}: wrap-up",
                    c.call
                );
                want_wrapup += r.wrapup_ms;
                // the offers: the answering agent's offer is the last answered one
                let offers = store.offers("acme", &c.call).await.expect("offers");
                assert_eq!(offers.len() as u32, r.offers);
                assert!(offers
                    .iter()
                    .any(|o| o.result == "answered" && Some(&o.agent) == c.agent.as_ref()));
                assert!(
                    offers.iter().all(|o| o.result != "ringing"),
                    "no offer left ringing"
                );
            }
            None => {
                assert_eq!(r.result, "abandoned", "{}", c.call);
                assert_eq!(r.wait_ms, c.ended_ms - c.arrived_ms);
                assert_eq!((r.talk_ms, r.hold_ms), (0, 0));
            }
        }
    }

    // every agent's time over its intervals adds up to its shift; AHT includes wrap-up
    let mut logged_in: BTreeMap<String, u64> = BTreeMap::new();
    let mut agent_calls = Stats::default();
    for r in intervals.iter().filter(|r| r.subject == Subject::Agent) {
        let s = &r.stats;
        *logged_in.entry(r.id.clone()).or_default() +=
            s.available_ms + s.ringing_ms + s.on_call_ms + s.wrap_up_state_ms + s.not_ready_ms;
        agent_calls.add(s);
    }
    for shift in &day.shifts {
        assert_eq!(
            logged_in.get(&shift.agent).copied().unwrap_or(0),
            shift.logout_ms - shift.login_ms,
            "agent {}: time in states = shift",
            shift.agent
        );
    }
    assert_eq!(agent_calls.answered as usize, answered);
    assert_eq!(agent_calls.handled as usize, answered);
    assert_eq!(agent_calls.wrapup_ms, want_wrapup);
    let want_talk: u64 = expected_by_queue(&day).values().map(|s| s.talk_ms).sum();
    let want_hold: u64 = expected_by_queue(&day).values().map(|s| s.hold_ms).sum();
    assert_eq!(agent_calls.talk_ms, want_talk);
    assert_eq!(agent_calls.hold_ms, want_hold);
    assert_eq!(
        agent_calls.aht_ms(),
        Some((want_talk + want_hold + want_wrapup) / answered as u64)
    );
    // the agent state history of one agent covers its shift without gaps
    let shift = &day.shifts[0];
    let spans = read_all(MAX_PAGE_LIMIT, |p| {
        store.agent_states("acme", &shift.agent, Span::all(), p)
    })
    .await
    .expect("states");
    assert_eq!(spans.first().map(|s| s.start_ms), Some(shift.login_ms));
    for w in spans.windows(2) {
        assert_eq!(w[0].end_ms, w[1].start_ms, "spans follow each other");
    }
    assert_eq!(spans.last().map(|s| s.state.as_str()), Some("logged_out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_any_range_twice_changes_nothing() {
    let day = small_day("acme", 11);
    let (_dir, log) = log_with(&[&day]).await;
    let store = store();
    Projector::new(log.clone(), store.clone(), options(700))
        .catch_up()
        .await
        .expect("projects");
    let once = store.dump().await.expect("dump");
    for back_to in [|end: u64| end / 2, |end: u64| end / 3, |_| 0] {
        let mut checkpoints = Vec::new();
        for p in 0..8 {
            let end = log.end_offset(EVENTS_TOPIC, p).await.expect("end");
            checkpoints.push((p, back_to(end)));
        }
        store
            .write(Batch {
                rows: vec![],
                checkpoints,
            })
            .await
            .expect("rewind");
        // a fresh projector: its rows come from the store, positions and all
        Projector::new(log.clone(), store.clone(), options(333))
            .catch_up()
            .await
            .expect("projects again");
        assert!(
            once == store.dump().await.expect("dump"),
            "a replay changed rows"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_stopped_mid_stream_and_restarted_equals_a_rebuild() {
    let day = small_day("acme", 13);
    let (_dir, log) = log_with(&[&day]).await;
    let store = store();
    // a write after every batch, so that progress (counted at each commit) stops mid-stream
    let first = writing_every(&log, &store, Duration::ZERO);
    let third = day.records.len() as u64 / 3;
    // on the test's runtime, so that stopping it stops it at once (the projector on its own
    // thread is killed mid-stream as a process: tests/projector_cli.rs in callgrid)
    let stopped_at = run_until(&first, third, Run::Shared).await;
    assert!(stopped_at < day.records.len() as u64, "stopped mid-stream");
    Projector::new(log.clone(), store.clone(), options(1_000))
        .catch_up()
        .await
        .expect("restart");
    let (a, b) = (store.dump().await.expect("dump"), rebuilt(log).await);
    assert_eq!(a.len(), b.len());
    assert!(a == b, "restarted projections differ from a rebuild");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_up_projector_writes_everything_it_queued_however_long_its_write_window() {
    let day = small_day("acme", 19);
    let (_dir, log) = log_with(&[&day]).await;
    let store = store();
    // batches projected while the first write is in flight queue for the next window, an
    // hour away: catching up must write them anyway
    let projector = writing_every(&log, &store, Duration::from_secs(3_600));
    let end = day.records.len() as u64;
    let reached = run_until(&projector, end, Run::OwnThread).await;
    assert!(
        reached >= end,
        "progress stayed at {reached} of {end} records: queued rows were not written"
    );
    assert!(
        store.dump().await.expect("dump") == rebuilt(log).await,
        "the written projections differ from a rebuild"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tenant_sees_another_tenants_rows() {
    let acme = small_day("acme", 17);
    let globex = small_day("globex", 19);
    let (_dir, log) = log_with(&[&acme, &globex]).await;
    let store = store();
    let projector = Projector::new(log, store.clone(), options(1_000));
    let mut changes = projector.subscribe();
    projector.catch_up().await.expect("projects");
    assert_eq!(store.tenants().await.expect("tenants"), ["acme", "globex"]);
    for (tenant, day) in [("acme", &acme), ("globex", &globex)] {
        let prefix = format!("{tenant}-");
        let records = read_all(MAX_PAGE_LIMIT, |p| {
            store.call_records(tenant, Span::all(), p)
        })
        .await
        .expect("records");
        assert_eq!(records.len(), day.calls.len());
        assert!(records
            .iter()
            .all(|r| r.tenant == tenant && r.call.starts_with(&prefix)));
        let live = store.live(tenant).await.expect("live");
        assert!(live.queues.iter().all(|q| q.tenant == tenant));
        assert!(live.agents.iter().all(|a| a.tenant == tenant));
        let intervals = read_all(MAX_PAGE_LIMIT, |p| store.intervals(tenant, Span::all(), p))
            .await
            .expect("intervals");
        assert!(intervals.iter().all(|r| r.tenant == tenant));
        let offered: u64 = intervals
            .iter()
            .filter(|r| r.subject == Subject::Queue)
            .map(|r| r.stats.offered)
            .sum();
        assert_eq!(
            offered as usize,
            day.calls.len(),
            "{tenant}: only its own calls"
        );
    }
    // every pushed change names its tenant, and both tenants' changes were pushed
    let mut seen = std::collections::BTreeSet::new();
    while let Ok(c) = changes.try_recv() {
        for r in c.rows.iter() {
            seen.insert(r.key().tenant().to_owned());
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["acme", "globex"]);
}
