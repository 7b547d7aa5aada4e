//! The fuzz target of the HTTP request path (docs/DECISIONS.md "Fuzzing"): requests built from
//! arbitrary bytes through the access gate and every route of the supervisor service, as
//! `callgrid serve` assembles them, over an embedded event log and projection store (a
//! temporary directory, made once per process). Run by libFuzzer
//! (`fuzz/fuzz_targets/http.rs`, `scripts/fuzz.sh http`) and smoked by the test below.
//!
//! The input is a request in HTTP/1.1's shape, read leniently: `METHOD TARGET` on the first
//! line, `Name: value` lines, an empty line, the body. Placeholders stand for credentials the
//! fixture holds (a fuzzer cannot guess them): `@ADMIN@` (platform admin token), `@SUP@`
//! (supervisor of tenant `demo`), `@AGENT@` (agent `alice` of `demo`), `@OTHER@` (supervisor
//! of tenant `other`), `@COOKIE@` and `@CSRF@` (a signed-in `demo` supervisor's session).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, Uri};
use callgrid_access::fuzz::{known_session, known_token, known_user, Known};
use callgrid_access::{Access, AccessOptions, AllowList, Gate, Rule, ACCESS_TOPIC};
use callgrid_domain::{AgentId, DeviceId, Event, EventBody, ReasonCode};
use callgrid_eventlog::{EventLog, Record, SqliteLog, SqliteLogOptions};
use callgrid_projector::{Projector, ProjectorOptions, EVENTS_TOPIC};
use callgrid_store::SqliteStore;
use prost::Message;
use tower::ServiceExt;

use crate::{Supervisor, SupervisorOptions};

/// How long one request may take before it counts as a hang.
const HANG: Duration = Duration::from_secs(10);

/// A credential kind the request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Cred {
    Admin,
    Supervisor,
    Agent,
    Other,
    Session,
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    parts: Parts,
}

/// What the runtime built.
struct Parts {
    app: axum::Router,
    access: Arc<Access>,
    log: Arc<dyn EventLog>,
    tokens: Vec<(&'static str, Cred, String)>,
    /// The session in use; a new one when a request signs it out.
    session: Mutex<(u32, Known)>,
}

/// The fixture's directories are named by process id; a static is never dropped, so each
/// fixture removes those of processes that have ended.
const DIR_PREFIX: &str = "callgrid-fuzz-http-";

fn remove_stale_dirs(tmp: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let ended = std::path::Path::new("/proc").is_dir()
            && !std::path::Path::new("/proc").join(pid).exists();
        if ended {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

const DEMO_SUPERVISOR: (&str, &str) = ("demo", "fuzz-sup");

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let parts = rt.block_on(build());
        Fixture { rt, parts }
    })
}

async fn build() -> Parts {
    let tmp = std::env::temp_dir();
    remove_stale_dirs(&tmp);
    let dir = tmp.join(format!("{DIR_PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("fixture directory");
    let log: Arc<dyn EventLog> = Arc::new(
        SqliteLog::open_async(
            dir.join("events.sqlite"),
            SqliteLogOptions {
                durability: callgrid_eventlog::Durability::ProcessCrashSafe,
                ..SqliteLogOptions::default()
            },
        )
        .await
        .expect("event log"),
    );
    // the demo tenant with two agents logged in, projected
    log.create_topic(EVENTS_TOPIC, 1)
        .await
        .expect("events topic");
    let yaml = callgrid_config::DEMO_TENANT_YAML;
    let mut records = vec![callgrid_codec::configured_envelope(
        "demo",
        1,
        "demo.yaml",
        yaml,
        1_000,
    )];
    let login = |agent: &str, not_ready: Option<&str>| EventBody::AgentLoggedIn {
        agent: AgentId::new(agent),
        devices: vec![DeviceId::new(format!("sip:{agent}@demo"))],
        not_ready: not_ready.map(ReasonCode::new),
    };
    for (i, (agent, body)) in [
        ("alice", login("alice", None)),
        (
            "alice",
            EventBody::AgentAvailable {
                agent: AgentId::new("alice"),
            },
        ),
        ("bob", login("bob", Some("break"))),
    ]
    .into_iter()
    .enumerate()
    {
        let event = Event {
            at: 2_000 + i as u64,
            body,
        };
        records.push(callgrid_codec::event_envelope(
            "demo",
            ("agent", agent),
            i as u64 + 1,
            1,
            "",
            &event,
        ));
    }
    let records = records
        .iter()
        .map(|e| Record::new("demo", e.encode_to_vec(), 1_000))
        .collect();
    log.append_to(EVENTS_TOPIC, 0, records)
        .await
        .expect("append events");
    let store = Arc::new(SqliteStore::open(&dir.join("projections.sqlite")).expect("store"));
    let projector = Projector::new(log.clone(), store, ProjectorOptions::default());
    projector.catch_up().await.expect("projected");

    // credentials, stored before the access store reads its topic
    log.create_topic(ACCESS_TOPIC, 1)
        .await
        .expect("access topic");
    let tokens = vec![
        (
            "@ADMIN@",
            Cred::Admin,
            known_token(1, "platform_admin", "", ""),
        ),
        (
            "@SUP@",
            Cred::Supervisor,
            known_token(2, "supervisor", "demo", ""),
        ),
        (
            "@AGENT@",
            Cred::Agent,
            known_token(3, "agent", "demo", "alice"),
        ),
        (
            "@OTHER@",
            Cred::Other,
            known_token(4, "supervisor", "other", ""),
        ),
    ];
    let session = known_session(100, DEMO_SUPERVISOR.0, DEMO_SUPERVISOR.1, i64::MAX);
    let mut access_records = vec![known_user(
        DEMO_SUPERVISOR.0,
        DEMO_SUPERVISOR.1,
        "supervisor",
    )];
    access_records.extend(tokens.iter().map(|(_, _, k)| k.record.clone()));
    access_records.push(session.record.clone());
    append_access(&log, &access_records).await;
    let access = Access::open(log.clone(), AccessOptions::default())
        .await
        .expect("access");
    let supervisor = Supervisor::new(projector, access.clone(), SupervisorOptions::default());
    // as `callgrid serve`: sessions accepted, no admin routes
    let gate = Gate::new(access.clone(), crate::policy, AllowList::any(), true);
    let app = supervisor.router(&gate);
    Parts {
        app,
        access,
        log,
        tokens: tokens.into_iter().map(|(p, c, k)| (p, c, k.text)).collect(),
        session: Mutex::new((100, session)),
    }
}

async fn append_access(
    log: &Arc<dyn EventLog>,
    records: &[callgrid_proto::events::v1::AccessRecord],
) {
    let records = records
        .iter()
        .map(|r| Record::new("fuzz", r.encode_to_vec(), 1))
        .collect();
    log.append_to(ACCESS_TOPIC, 0, records)
        .await
        .expect("append access records");
}

/// Where requests come from.
const PEER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 9)),
    40_000,
);

/// One request through the gate and the routes. Any answer is fine but a panic or a hang;
/// a route that needs credentials answers a request without any 401 or 403 (a gRPC status
/// to a request that says it is gRPC); an answer to a
/// request made only with another tenant's credentials never names tenant `demo`; a JSON
/// answer is JSON.
pub fn http(data: &[u8]) {
    let f = fixture();
    let p = &f.parts;
    let session = {
        let s = p.session.lock().unwrap_or_else(|e| e.into_inner());
        s.1.id.clone()
    };
    let mut used = BTreeSet::new();
    let mut text = data.to_vec();
    for (placeholder, cred, value) in &p.tokens {
        if replace(&mut text, placeholder.as_bytes(), value.as_bytes()) {
            used.insert(*cred);
        }
    }
    {
        let s = p.session.lock().unwrap_or_else(|e| e.into_inner());
        if replace(&mut text, b"@COOKIE@", s.1.text.as_bytes()) {
            used.insert(Cred::Session);
        }
        replace(&mut text, b"@CSRF@", s.1.csrf.as_bytes());
    }
    if let Some(req) = request(&text) {
        let rule = crate::policy(req.method(), req.uri().path());
        let head = req.method() == Method::HEAD;
        let (status, grpc_refusal, json, body) = f.rt.block_on(async {
            let resp = match tokio::time::timeout(HANG, p.app.clone().oneshot(req)).await {
                Ok(Ok(r)) => r,
                Ok(Err(never)) => match never {},
                Err(_) => panic!("a request had no answer within {HANG:?}"),
            };
            // a request that says it is gRPC is refused the gRPC way: 200 and a grpc-status
            let grpc_refusal = resp
                .headers()
                .get("grpc-status")
                .is_some_and(|v| v.as_bytes() != b"0");
            let status = resp.status();
            let kind = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            if kind.starts_with("text/event-stream") {
                // a push stream: its first event is the snapshot, then it goes on
                return (status, grpc_refusal, false, Vec::new());
            }
            let body =
                match tokio::time::timeout(HANG, axum::body::to_bytes(resp.into_body(), 8 << 20))
                    .await
                {
                    Ok(Ok(b)) => b.to_vec(),
                    Ok(Err(e)) => panic!("an answer's body failed: {e}"),
                    Err(_) => panic!("an answer's body did not end within {HANG:?}"),
                };
            // a HEAD answer has the headers of a GET and no body
            (
                status,
                grpc_refusal,
                kind.starts_with("application/json") && !head,
                body,
            )
        });
        if rule != Rule::Open && used.is_empty() {
            assert!(
                status.as_u16() == 401 || status.as_u16() == 403 || grpc_refusal,
                "a request without credentials got {status} from a route that needs them"
            );
        }
        let read = status.is_success() && !grpc_refusal;
        if read && used.iter().all(|c| *c == Cred::Other) && !used.is_empty() {
            assert!(
                !body.windows(4).any(|w| w == b"demo"),
                "another tenant's token read tenant demo: {}",
                String::from_utf8_lossy(&body)
            );
        }
        if json {
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(&body) {
                panic!("a json answer is not json: {e}");
            }
        }
    }
    // a request that signed the session out: sign in again for the next input
    if !p.access.session_open(&session) {
        let mut s = p.session.lock().unwrap_or_else(|e| e.into_inner());
        let n = s.0 + 1;
        let next = known_session(n, DEMO_SUPERVISOR.0, DEMO_SUPERVISOR.1, i64::MAX);
        f.rt.block_on(async {
            append_access(&p.log, std::slice::from_ref(&next.record)).await;
            let opened = tokio::time::timeout(HANG, async {
                while !p.access.session_open(&next.id) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
            .await;
            assert!(opened.is_ok(), "a new session was not followed");
        });
        *s = (n, next);
    }
}

/// Replaces every `from` by `to`; whether there was one.
fn replace(text: &mut Vec<u8>, from: &[u8], to: &[u8]) -> bool {
    let mut found = false;
    let mut i = 0;
    while i + from.len() <= text.len() {
        if &text[i..i + from.len()] == from {
            text.splice(i..i + from.len(), to.iter().copied());
            i += to.len();
            found = true;
        } else {
            i += 1;
        }
    }
    found
}

/// A request from its HTTP/1.1-like text, if its method, target and body make one.
fn request(text: &[u8]) -> Option<Request<Body>> {
    let (head, body) = match (find(text, b"\r\n\r\n"), find(text, b"\n\n")) {
        (Some(a), Some(b)) if b < a => (&text[..b], &text[b + 2..]),
        (Some(a), _) => (&text[..a], &text[a + 4..]),
        (None, Some(b)) => (&text[..b], &text[b + 2..]),
        (None, None) => (text, &[][..]),
    };
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let mut first = lines.next()?.splitn(3, |&b| b == b' ');
    let method = Method::from_bytes(first.next()?).ok()?;
    let uri = Uri::try_from(first.next()?).ok()?;
    let mut builder = Request::builder().method(method).uri(uri);
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = HeaderName::from_bytes(line[..colon].trim_ascii());
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
        if let (Ok(n), Ok(v)) = (name, value) {
            builder = builder.header(n, v);
        }
    }
    let mut req = builder.body(Body::from(body.to_vec())).ok()?;
    req.extensions_mut().insert(ConnectInfo(PEER));
    Some(req)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzz_smoke_http() {
        let r = callgrid_fuzz_smoke::run("http", 20_000, 8_192, super::http);
        assert!(r.seeds > 0);
    }
}
