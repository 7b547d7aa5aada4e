//! The paged history reads over HTTP: requests through the access gate and the routes, as
//! `callgrid serve` assembles them (`oneshot`, no server), over an embedded event log and a
//! projection store holding tenant `demo`'s configuration and history rows written for the
//! test. Paging through `/calls`, `/agents/{a}/states` and `/intervals`; 400 for a bad limit
//! or cursor, naming it; and the access rules on these routes, with and without paging
//! parameters.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use callgrid_access::fuzz::known_token;
use callgrid_access::{Access, AccessOptions, AllowList, Gate, ACCESS_TOPIC};
use callgrid_eventlog::{EventLog, Record, SqliteLog, SqliteLogOptions};
use callgrid_projector::{Projector, ProjectorOptions, EVENTS_TOPIC};
use callgrid_store::{
    AgentStateRecord, Batch, CallRecord, IntervalRow, Position, Row, SqliteStore, Stats, Subject,
};
use callgrid_supervisor::{Supervisor, SupervisorOptions};
use prost::Message;
use serde_json::Value;
use tower::ServiceExt;

const DAY_MS: u64 = 86_400_000;

struct Fixture {
    app: axum::Router,
    /// Tokens: platform admin, supervisor of `demo`, agent `alice` of `demo`, supervisor of
    /// `other`.
    admin: String,
    sup: String,
    alice: String,
    other: String,
    calls: Vec<CallRecord>,
    states: Vec<AgentStateRecord>,
    intervals: Vec<IntervalRow>,
    _dir: tempfile::TempDir,
}

fn pos(offset: u64) -> Position {
    Position {
        partition: 0,
        offset,
    }
}

fn record(call: &str, start_ms: u64) -> CallRecord {
    CallRecord {
        tenant: "demo".into(),
        day: "1970-01-01".into(),
        call: call.into(),
        direction: "inbound".into(),
        number: "+100".into(),
        caller: "+200".into(),
        queue: "200".into(),
        agent: "alice".into(),
        start_ms,
        end_ms: start_ms + 60_000,
        wait_ms: 5_000,
        ring_ms: 3_000,
        talk_ms: 50_000,
        hold_ms: 0,
        wrapup_ms: 10_000,
        result: "answered".into(),
        end_cause: "caller".into(),
        offers: 1,
        plan_version: 1,
        recording: String::new(),
        correlation: String::new(),
        trunk: String::new(),
        sip_code: 0,
        carrier: String::new(),
        pos: pos(100),
    }
}

fn state(agent: &str, start_ms: u64, start_offset: u64) -> AgentStateRecord {
    AgentStateRecord {
        tenant: "demo".into(),
        agent: agent.into(),
        start_ms,
        start_offset,
        end_ms: start_ms + 100,
        state: "available".into(),
        reason: String::new(),
        call: String::new(),
        pos: pos(start_offset),
    }
}

fn interval(start_ms: u64, subject: Subject, id: &str) -> IntervalRow {
    IntervalRow {
        tenant: "demo".into(),
        start_ms,
        subject,
        id: id.into(),
        stats: Stats {
            offered: 3,
            ..Stats::default()
        },
        pos: pos(100),
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log: Arc<dyn EventLog> = Arc::new(
        SqliteLog::open_async(
            dir.path().join("events.sqlite"),
            SqliteLogOptions::default(),
        )
        .await
        .expect("event log"),
    );
    // tenant demo, configured and projected
    log.create_topic(EVENTS_TOPIC, 1)
        .await
        .expect("events topic");
    let configured = callgrid_codec::configured_envelope(
        "demo",
        1,
        "demo.yaml",
        callgrid_config::DEMO_TENANT_YAML,
        1_000,
    );
    log.append_to(
        EVENTS_TOPIC,
        0,
        vec![Record::new("demo", configured.encode_to_vec(), 1_000)],
    )
    .await
    .expect("append the configuration");
    let store = Arc::new(SqliteStore::open(&dir.path().join("projections.sqlite")).expect("store"));
    let projector = Projector::new(log.clone(), store.clone(), ProjectorOptions::default());
    projector.catch_up().await.expect("projected");

    // history: 23 calls over two days, many at the same time; alice's and bob's state spans;
    // interval rows of queues and agents
    let calls: Vec<CallRecord> = (0..23u64)
        .map(|i| record(&format!("c{i}"), (i % 2) * DAY_MS + (i % 5) * 1_000))
        .collect();
    let states: Vec<AgentStateRecord> = (0..9u64)
        .map(|i| state("alice", (i % 3) * 1_000, 50 - i))
        .collect();
    let mut intervals = Vec::new();
    for start in [0, 900_000, DAY_MS] {
        for (subject, id) in [
            (Subject::Queue, "200"),
            (Subject::Agent, "alice"),
            (Subject::Queue, "201"),
        ] {
            intervals.push(interval(start, subject, id));
        }
    }
    let mut rows: Vec<Row> = calls.iter().cloned().map(Row::Record).collect();
    rows.extend(states.iter().cloned().map(Row::AgentState));
    rows.extend((0..4).map(|i| Row::AgentState(state("bob", i, i))));
    rows.extend(intervals.iter().cloned().map(Row::Interval));
    rows.reverse();
    callgrid_store::ProjectionStore::write(
        store.as_ref(),
        Batch {
            rows,
            checkpoints: vec![],
        },
    )
    .await
    .expect("history written");

    // credentials
    log.create_topic(ACCESS_TOPIC, 1)
        .await
        .expect("access topic");
    let tokens = [
        known_token(1, "platform_admin", "", ""),
        known_token(2, "supervisor", "demo", ""),
        known_token(3, "agent", "demo", "alice"),
        known_token(4, "supervisor", "other", ""),
    ];
    let records = tokens
        .iter()
        .map(|k| Record::new("test", k.record.encode_to_vec(), 1))
        .collect();
    log.append_to(ACCESS_TOPIC, 0, records)
        .await
        .expect("append access records");
    let access = Access::open(log.clone(), AccessOptions::default())
        .await
        .expect("access");
    let supervisor = Supervisor::new(projector, access.clone(), SupervisorOptions::default());
    // as `callgrid serve` assembles it: sessions accepted, no admin routes
    let gate = Gate::new(access, callgrid_supervisor::policy, AllowList::any(), true);
    let [admin, sup, alice, other] = tokens.map(|k| k.text);
    Fixture {
        app: supervisor.router(&gate),
        admin,
        sup,
        alice,
        other,
        calls,
        states,
        intervals,
        _dir: dir,
    }
}

impl Fixture {
    /// `GET path` as the demo supervisor, accepting gzip: the response, body unread.
    async fn get_gzip(&self, path: &str) -> axum::response::Response {
        let mut req = Request::builder()
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.sup))
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(Body::empty())
            .expect("a request");
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
        self.app.clone().oneshot(req).await.expect("an answer")
    }

    /// `GET path` with `token` (none: no credentials): status and JSON body.
    async fn get(&self, token: Option<&str>, path: &str) -> (StatusCode, Value) {
        let mut req = Request::builder().uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let mut req = req.body(Body::empty()).expect("a request");
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
        let resp = self.app.clone().oneshot(req).await.expect("an answer");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 16 << 20)
            .await
            .expect("a body");
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, json)
    }

    /// Pages through `path` (which has a query) `limit` rows at a time as the demo
    /// supervisor, checking each page; every row, in page order.
    async fn page_through(&self, path: &str, limit: u64) -> Vec<Value> {
        let mut rows = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1_000 {
            let mut url = format!("{path}&limit={limit}");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let (status, body) = self.get(Some(&self.sup), &url).await;
            assert_eq!(status, StatusCode::OK, "{url}: {body}");
            let page = body["rows"].as_array().expect("rows").clone();
            assert!(page.len() as u64 <= limit, "{url}: {body}");
            rows.extend(page.iter().cloned());
            match body.get("next_cursor") {
                Some(c) => {
                    assert_eq!(page.len() as u64, limit, "a page before the last is full");
                    cursor = Some(c.as_str().expect("a string cursor").to_owned());
                }
                None => return rows,
            }
        }
        panic!("paging {path} never ends");
    }
}

fn keys(rows: &[Value], fields: &[&str]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            fields
                .iter()
                .map(|f| r[*f].to_string())
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_through_the_history_reads_returns_every_row_once_in_order() {
    let f = fixture().await;
    let mut calls = f.calls.clone();
    calls.sort_by(|a, b| (a.start_ms, &a.call).cmp(&(b.start_ms, &b.call)));
    let want: Vec<Value> = calls
        .iter()
        .map(|r| serde_json::to_value(r).expect("json"))
        .collect();
    for limit in [1, 4, 22, 23, 24, 5_000] {
        let got = f
            .page_through("/api/v1/tenants/demo/calls?from=0", limit)
            .await;
        assert_eq!(
            keys(&got, &["start_ms", "call"]),
            keys(&want, &["start_ms", "call"]),
            "{limit} a page"
        );
        assert_eq!(got, want);
    }
    // within a span: from and to cut through calls at the same time
    let (from, to) = (1_000, DAY_MS + 2_000);
    let within: Vec<Value> = want
        .iter()
        .filter(|r| {
            let t = r["start_ms"].as_u64().expect("start_ms");
            from <= t && t < to
        })
        .cloned()
        .collect();
    assert!(within.len() > 3 && within.len() < want.len());
    let got = f
        .page_through(
            &format!("/api/v1/tenants/demo/calls?from={from}&to={to}"),
            3,
        )
        .await;
    assert_eq!(got, within);

    // without a limit: one page of up to 500, no cursor
    let (status, body) = f.get(Some(&f.sup), "/api/v1/tenants/demo/calls").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["rows"].as_array().map(Vec::len), Some(want.len()));
    assert!(body.get("next_cursor").is_none(), "{body}");

    // agent states (alice's, not bob's) and intervals
    let mut states = f.states.clone();
    states.sort_by_key(|r| (r.start_ms, r.start_offset));
    let got = f
        .page_through("/api/v1/tenants/demo/agents/alice/states?from=0", 2)
        .await;
    let want: Vec<Value> = states
        .iter()
        .map(|r| serde_json::to_value(r).expect("json"))
        .collect();
    assert_eq!(got, want);
    let mut intervals = f.intervals.clone();
    intervals.sort_by(|a, b| (a.start_ms, a.subject, &a.id).cmp(&(b.start_ms, b.subject, &b.id)));
    let got = f
        .page_through("/api/v1/tenants/demo/intervals?from=0", 4)
        .await;
    let want: Vec<Value> = intervals
        .iter()
        .map(|r| serde_json::to_value(r).expect("json"))
        .collect();
    assert_eq!(got, want);
    // an agent reads its own history page by page
    let (status, body) = f
        .get(
            Some(&f.alice),
            "/api/v1/tenants/demo/agents/alice/states?limit=1",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"].as_array().map(Vec::len), Some(1));
    assert!(body["next_cursor"].is_string(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_limit_or_cursor_is_a_400_naming_it() {
    let f = fixture().await;
    let (_, page) = f
        .get(Some(&f.sup), "/api/v1/tenants/demo/intervals?limit=1")
        .await;
    let interval_cursor = page["next_cursor"].as_str().expect("a cursor").to_owned();
    for path in [
        "/api/v1/tenants/demo/calls",
        "/api/v1/tenants/demo/agents/alice/states",
        "/api/v1/tenants/demo/intervals",
    ] {
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=5001", "limit"),
            ("limit=99999999999999999999999", "limit"),
            ("limit=ten", "limit"),
            ("limit=-1", "limit"),
            ("limit=", "limit"),
            ("cursor=garbage!", "cursor"),
            ("cursor=", "cursor"),
            ("cursor=AAAAAAAAAAAAAAAAAAAAAAAA", "cursor"),
            ("limit=5&cursor=%FF%FE", "cursor"),
        ] {
            let url = format!("{path}?{query}");
            let (status, body) = f.get(Some(&f.sup), &url).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
            let error = body["error"].as_str().unwrap_or_default();
            assert!(error.contains(field), "{url}: {error:?} names {field}");
        }
        let (status, _) = f.get(Some(&f.sup), &format!("{path}?limit=5000")).await;
        assert_eq!(status, StatusCode::OK, "{path}: the largest page");
    }
    // a cursor of intervals is not one of calls
    let url = format!("/api/v1/tenants/demo/calls?cursor={interval_cursor}");
    let (status, body) = f.get(Some(&f.sup), &url).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("cursor"));
    // a long cursor is refused before it is decoded
    let url = format!("/api/v1/tenants/demo/calls?cursor={}", "A".repeat(4_000));
    let (status, body) = f.get(Some(&f.sup), &url).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // an unknown tenant is still a 404 (the page is checked after the tenant)
    let (status, _) = f
        .get(Some(&f.admin), "/api/v1/tenants/nobody/calls?limit=5")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_parameters_do_not_get_around_the_access_rules() {
    let f = fixture().await;
    let cursor_of = |body: &Value| body["next_cursor"].as_str().expect("a cursor").to_owned();
    let (_, calls) = f
        .get(Some(&f.sup), "/api/v1/tenants/demo/calls?limit=2")
        .await;
    let (_, states) = f
        .get(
            Some(&f.sup),
            "/api/v1/tenants/demo/agents/alice/states?limit=2",
        )
        .await;
    let (_, intervals) = f
        .get(Some(&f.sup), "/api/v1/tenants/demo/intervals?limit=2")
        .await;
    let paths = [
        "/api/v1/tenants/demo/calls".to_owned(),
        "/api/v1/tenants/demo/calls?limit=2".to_owned(),
        format!(
            "/api/v1/tenants/demo/calls?limit=2&cursor={}",
            cursor_of(&calls)
        ),
        "/api/v1/tenants/demo/agents/alice/states?limit=2".to_owned(),
        format!(
            "/api/v1/tenants/demo/agents/alice/states?limit=2&cursor={}",
            cursor_of(&states)
        ),
        "/api/v1/tenants/demo/intervals".to_owned(),
        format!(
            "/api/v1/tenants/demo/intervals?from=0&limit=5000&cursor={}",
            cursor_of(&intervals)
        ),
        // bad parameters too: refused for who is asking before they are looked at
        "/api/v1/tenants/demo/calls?limit=0&cursor=garbage".to_owned(),
    ];
    for path in &paths {
        let (status, body) = f.get(None, path).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{path} without credentials"
        );
        assert!(body.get("rows").is_none(), "{body}");
        let (status, body) = f.get(Some(&f.other), path).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{path} with another tenant's token: {body}"
        );
        assert!(body.get("rows").is_none(), "{body}");
    }
    // an agent: its own states only, no tenant-wide history
    for path in [
        "/api/v1/tenants/demo/agents/bob/states?limit=1",
        "/api/v1/tenants/demo/calls?limit=1",
        "/api/v1/tenants/demo/intervals?limit=1",
    ] {
        let (status, body) = f.get(Some(&f.alice), path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path} as alice: {body}");
    }
    // a cursor holds a key, not a right: one the supervisor was given reads for alice only
    // what she may read anyway, and gets her nothing of bob's
    let (status, body) = f
        .get(
            Some(&f.alice),
            &format!(
                "/api/v1/tenants/demo/agents/alice/states?limit=2&cursor={}",
                cursor_of(&states)
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .all(|r| r["agent"] == "alice"));
    let (status, body) = f
        .get(
            Some(&f.alice),
            &format!(
                "/api/v1/tenants/demo/agents/bob/states?limit=2&cursor={}",
                cursor_of(&states)
            ),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_gzipped_for_clients_that_ask_and_reads_the_same() {
    use std::io::Read;
    let f = fixture().await;
    let path = "/api/v1/tenants/demo/calls?from=0&to=999999999999&limit=100";
    let (status, plain) = f.get(Some(&f.sup), path).await;
    assert_eq!(status, StatusCode::OK);
    let resp = f.get_gzip(path).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get(header::CONTENT_ENCODING)
            .map(|v| v.as_bytes()),
        Some(&b"gzip"[..]),
        "{:?}",
        resp.headers()
    );
    let body = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .expect("a body");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut text)
        .expect("gzip");
    let unzipped: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(unzipped, plain);
    assert!(
        body.len() < text.len(),
        "{} compressed bytes for {} plain",
        body.len(),
        text.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_stream_is_never_gzipped() {
    let f = fixture().await;
    let resp = f.get_gzip("/api/v1/tenants/demo/live/stream").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.as_bytes().to_vec());
    assert_eq!(ct.as_deref(), Some(&b"text/event-stream"[..]));
    assert!(
        resp.headers().get(header::CONTENT_ENCODING).is_none(),
        "{:?}",
        resp.headers()
    );
}
