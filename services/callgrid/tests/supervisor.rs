//! The supervisor service of `callgrid serve`: the live snapshot, the push stream of
//! changes (an agent's login reaches a connected client), `callgrid watch --once`, errors
//! for unknown tenants and bad parameters, paging through an agent's state history, and one
//! tenant's stream never carrying another tenant's rows.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use callgrid_proto::api::v1 as api;
use callgrid_testkit::{eventually, http, lists_tenant, Node, Ready};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// `GET path` with `token`: status code and body.
async fn get(port: u16, token: &str, path: &str) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let r = http(port, "GET", path, &[("Authorization", &auth)], "")
        .await
        .expect("an answer");
    (r.status, r.body)
}

/// Waits until the supervisor lists `tenant` (the projector has its configuration).
async fn wait_for_tenant(port: u16, token: &str, tenant: &str) {
    eventually(
        &format!("the supervisor to list {tenant}"),
        Duration::from_secs(60),
        async || lists_tenant(port, token, tenant).await,
    )
    .await;
}

/// A push stream: (event name, data) as they come.
struct Stream(tokio::io::Lines<BufReader<TcpStream>>);

impl Stream {
    /// Opens a tenant's stream with `credentials` (`Authorization: ...` or `Cookie: ...`);
    /// panics unless it answers 200.
    async fn open(port: u16, credentials: &str, tenant: &str) -> Stream {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.write_all(
            format!(
                "GET /api/v1/tenants/{tenant}/live/stream HTTP/1.0\r\nHost: x\r\n{credentials}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("send");
        let mut lines = BufReader::new(s).lines();
        let status = lines.next_line().await.expect("read").expect("status");
        assert!(status.contains(" 200 "), "{status}");
        while let Some(l) = lines.next_line().await.expect("read") {
            if l.is_empty() {
                break;
            }
        }
        Stream(lines)
    }

    async fn next(&mut self) -> (String, Value) {
        let mut name = String::new();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), self.0.next_line())
                .await
                .expect("an event within a minute")
                .expect("read")
                .expect("the stream stays open");
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_owned();
            } else if let Some(d) = line.strip_prefix("data: ") {
                return (name, serde_json::from_str(d).expect("json data"));
            }
        }
    }
}

fn agent_state(v: &Value, agent: &str) -> Option<String> {
    v["agents"]
        .as_array()?
        .iter()
        .find(|a| a["agent"] == agent)
        .and_then(|a| a["state"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_is_pushed_to_a_connected_supervisor_and_shows_in_watch() {
    let node = Node::serve(env!("CARGO_BIN_EXE_callgrid"))
        .ready(Ready::Listed("demo".into()))
        .start()
        .await;
    let http = node.http_port();
    let token = node.admin_token();
    let token_file = node.data_dir().join("admin.token");
    let bearer = format!("Authorization: Bearer {token}");

    let mut stream = Stream::open(http, &bearer, "demo").await;
    let (name, snapshot) = stream.next().await;
    assert_eq!(name, "snapshot");
    assert_eq!(
        agent_state(&snapshot, "alice").as_deref(),
        Some("logged_out")
    );
    let q200 = snapshot["queues"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["queue"] == "200"))
        .expect("queue 200");
    assert_eq!(
        q200["agents"]["logged_out"], 5,
        "queue 200 has five members"
    );

    let ch = node.connect().await;
    let mut agents = api::agent_service_client::AgentServiceClient::new(ch.clone());
    agents
        .login(api::LoginRequest {
            tenant: "demo".into(),
            agent: "alice".into(),
            devices: vec!["sip:alice@127.0.0.1:5999".into()],
            not_ready_reason: String::new(),
        })
        .await
        .expect("login");
    // the change reaches the open stream: alice available, her queues count her
    loop {
        let (name, change) = stream.next().await;
        assert_eq!(name, "change");
        assert!(change["oldest_event_ms"].as_u64().is_some());
        if agent_state(&change, "alice").as_deref() == Some("available") {
            break;
        }
    }

    // a second tenant's activity never reaches demo's stream
    let other = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sip/siptest.yaml"),
    )
    .expect("siptest.yaml");
    let mut admin = api::admin_client::AdminClient::new(ch.clone());
    admin
        .load_tenant(api::LoadTenantRequest {
            source_name: "siptest.yaml".into(),
            yaml: other,
        })
        .await
        .expect("load a second tenant");
    wait_for_tenant(http, &token, "siptest").await;
    let mut other_stream = Stream::open(http, &bearer, "siptest").await;
    let (_, other_snapshot) = other_stream.next().await;
    let other_agent = other_snapshot["agents"][0]["agent"]
        .as_str()
        .expect("an agent of siptest")
        .to_owned();
    agents
        .login(api::LoginRequest {
            tenant: "siptest".into(),
            agent: other_agent.clone(),
            devices: vec![],
            not_ready_reason: String::new(),
        })
        .await
        .expect("login of the other tenant's agent");
    loop {
        let (_, change) = other_stream.next().await;
        if agent_state(&change, &other_agent).as_deref() == Some("available") {
            break;
        }
    }
    // then a demo change; everything demo's stream carried until then is demo's
    agents
        .set_state(api::SetStateRequest {
            tenant: "demo".into(),
            agent: "alice".into(),
            state: Some(api::set_state_request::State::NotReadyReason(
                "break".into(),
            )),
        })
        .await
        .expect("break");
    loop {
        let (_, change) = stream.next().await;
        assert_eq!(change["tenant"], "demo");
        for kind in ["queues", "agents", "calls"] {
            for row in change[kind].as_array().into_iter().flatten() {
                assert_eq!(row["tenant"], "demo", "{kind} row of another tenant: {row}");
            }
        }
        if agent_state(&change, "alice").as_deref() == Some("not_ready") {
            break;
        }
    }

    // the terminal monitor
    let out = Command::new(env!("CARGO_BIN_EXE_callgrid"))
        .args(["watch", "--tenant", "demo", "--once", "--supervisor"])
        .arg(format!("http://127.0.0.1:{http}"))
        .arg("--token-file")
        .arg(&token_file)
        .output()
        .expect("watch runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("tenant demo"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("200 "))
        .unwrap_or_else(|| panic!("queue 200 in {text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    // queue, waiting, longest, avail, ring, talk, wrap, not ready, logged out...
    assert_eq!(
        &cols[..9],
        ["200", "0", "-", "0", "0", "0", "0", "1", "4"],
        "{text}"
    );
    assert!(text.contains("not_ready  alice"), "{text}");

    // errors: unknown tenant, bad parameter; watch says why
    let (code, body) = get(http, &token, "/api/v1/tenants/nobody/live").await;
    assert_eq!(code, 404);
    assert!(body.contains("unknown tenant nobody"), "{body}");
    let (code, body) = get(http, &token, "/api/v1/tenants/demo/calls?from=yesterday").await;
    assert_eq!(code, 400);
    assert!(body.contains("from must be milliseconds"), "{body}");
    let (code, body) = get(http, &token, "/api/v1/tenants/demo/calls?from=0&to=1").await;
    assert_eq!((code, body.as_str()), (200, r#"{"rows":[]}"#));
    for (query, field) in [("limit=5001", "limit"), ("cursor=nonsense", "cursor")] {
        let (code, body) = get(http, &token, &format!("/api/v1/tenants/demo/calls?{query}")).await;
        assert_eq!(code, 400, "{query}: {body}");
        assert!(body.contains(field), "{query}: {body}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_callgrid"))
        .args(["watch", "--tenant", "nobody", "--once", "--supervisor"])
        .arg(format!("http://127.0.0.1:{http}"))
        .arg("--token-file")
        .arg(&token_file)
        .output()
        .expect("watch runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown tenant nobody"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // history pages: alice's state spans (written behind the push: wait for her break's),
    // one a page, each page's cursor reading the next, are the spans of one large page
    let states = "/api/v1/tenants/demo/agents/alice/states?from=0";
    let whole = eventually(
        "alice's break in the history",
        Duration::from_secs(60),
        async || {
            let (code, body) = get(http, &token, &format!("{states}&limit=5000")).await;
            assert_eq!(code, 200, "{body}");
            let page: Value = serde_json::from_str(&body).expect("json");
            assert!(page.get("next_cursor").is_none(), "{body}");
            let rows = page["rows"].as_array().cloned().unwrap_or_default();
            rows.iter()
                .any(|r| r["state"] == "not_ready")
                .then_some(rows)
        },
    )
    .await;
    assert!(whole.len() >= 2, "{whole:?}");
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let (code, body) = get(http, &token, &format!("{states}&limit=1{cursor}")).await;
        assert_eq!(code, 200, "{body}");
        let page: Value = serde_json::from_str(&body).expect("json");
        paged.extend(page["rows"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
        assert!(paged.len() <= whole.len(), "paging runs past the rows");
    }
    assert_eq!(paged, whole);
}
