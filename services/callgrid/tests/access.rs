//! Access control of `callgrid serve` (docs/SECURITY.md): every gRPC method and HTTP endpoint
//! refuses missing, bad, another tenant's and a lower role's credentials, and nothing changes
//! when it does; the roles that may, can; browser sessions (cookie + CSRF) reach the push
//! stream until sign-out; an agent signs in and gets a token for itself only; bounded input
//! (the poison `Login` of 3,000 device URIs) is refused and the platform goes on; events
//! caused through the API record who caused them; the admin API's address allow-list.

mod common;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::time::Duration;

use callgrid_proto::api::v1 as api;
use callgrid_testkit::{http, Authed, HttpResponse, Ready};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

const SALES: &str = "+842873000200";

struct Node {
    node: callgrid_testkit::Node,
    grpc: u16,
    http: u16,
    admin: String,
}

impl Node {
    /// `callgrid serve --no-sip` with the demo tenant, and `extra` options; serving once
    /// gRPC connects and the supervisor lists demo (the admin API may refuse 127.0.0.1).
    async fn start(extra: &[&str]) -> Node {
        let node = callgrid_testkit::Node::serve(env!("CARGO_BIN_EXE_callgrid"))
            .args(extra)
            .ready(Ready::Listed("demo".into()))
            .start()
            .await;
        Node {
            grpc: node.grpc_port(),
            http: node.http_port(),
            admin: node.admin_token(),
            node,
        }
    }

    /// A connection showing `token`; `None`: no credentials.
    async fn channel(&self, token: Option<&str>) -> Authed {
        self.node.connect_as(token).await
    }

    /// Its data directory.
    fn data(&self) -> &Path {
        self.node.data_dir()
    }

    /// Stops callgrid; its data directory stays until the node is dropped.
    fn stop(&mut self) {
        self.node.stop();
    }

    async fn token(&self, role: &str, tenant: &str, agent: &str) -> (String, String) {
        let r = api::access_client::AccessClient::new(self.channel(Some(&self.admin)).await)
            .create_token(api::CreateTokenRequest {
                role: role.into(),
                tenant: tenant.into(),
                agent: agent.into(),
                expires_in_s: 0,
                label: format!("{role} of {tenant} for the access test"),
            })
            .await
            .unwrap_or_else(|e| panic!("token {role}/{tenant}: {e}"))
            .into_inner();
        (r.token, r.info.expect("info").id)
    }

    async fn events_written(&self) -> u64 {
        api::admin_client::AdminClient::new(self.channel(Some(&self.admin)).await)
            .stats(api::StatsRequest::default())
            .await
            .expect("stats")
            .into_inner()
            .events_written
    }

    async fn get(&self, token: Option<&str>, path: &str) -> HttpResponse {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        http(self.http, "GET", path, &headers, "")
            .await
            .expect("an answer")
    }
}

type Call = Box<dyn Fn(Authed) -> Pin<Box<dyn Future<Output = Result<(), tonic::Status>> + Send>>>;

fn ok<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<(), tonic::Status> {
    r.map(|_| ())
}

/// Every method of the API, each with a request about tenant demo (agent alice; the token
/// to revoke is `demo_token`).
fn methods(demo_token: &str) -> Vec<(&'static str, Call)> {
    let demo_token = demo_token.to_owned();
    let calls: Vec<(&'static str, Call)> = vec![
        (
            "AgentService/Login",
            Box::new(|ch| {
                Box::pin(async move {
                    ok(api::agent_service_client::AgentServiceClient::new(ch)
                        .login(api::LoginRequest {
                            tenant: "demo".into(),
                            agent: "alice".into(),
                            devices: vec![],
                            not_ready_reason: String::new(),
                        })
                        .await)
                })
            }),
        ),
        (
            "AgentService/Logout",
            Box::new(|ch| {
                Box::pin(async move {
                    ok(api::agent_service_client::AgentServiceClient::new(ch)
                        .logout(api::AgentRef {
                            tenant: "demo".into(),
                            agent: "alice".into(),
                        })
                        .await)
                })
            }),
        ),
        (
            "AgentService/SetState",
            Box::new(|ch| {
                Box::pin(async move {
                    ok(api::agent_service_client::AgentServiceClient::new(ch)
                        .set_state(api::SetStateRequest {
                            tenant: "demo".into(),
                            agent: "alice".into(),
                            state: Some(api::set_state_request::State::Available(true)),
                        })
                        .await)
                })
            }),
        ),
        (
            "AgentService/ListAgents",
            Box::new(|ch| {
                Box::pin(async move {
                    ok(api::agent_service_client::AgentServiceClient::new(ch)
                        .list_agents(api::ListAgentsRequest {
                            tenant: "demo".into(),
                        })
                        .await)
                })
            }),
        ),
        (
            "AgentService/Transfer",
            Box::new(|ch| {
                Box::pin(async move {
                    ok(api::agent_service_client::AgentServiceClient::new(ch)
                        .transfer(api::TransferRequest {
                            tenant: "demo".into(),
                            agent: "alice".into(),
                            target: "queue:200".into(),
                        })
                        .await)
                })
            }),
        ),
        (
            "CallControl/Call",
            Box::new(|ch| {
                Box::pin(async move {
                    let (tx, rx) = tokio::sync::mpsc::channel(4);
                    tx.send(api::EdgeReport {
                        call_id: "access-test-call".into(),
                        seq: 1,
                        ack: true,
                        report: Some(api::edge_report::Report::Arrived(api::Arrived {
                            number: SALES.into(),
                            caller: "0961234566".into(),
                            tenant: String::new(),
                            traceparent: String::new(),
                        })),
                    })
                    .await
                    .expect("queued");
                    let mut stream = api::call_control_client::CallControlClient::new(ch)
                        .call(ReceiverStream::new(rx))
                        .await?
                        .into_inner();
                    // refusals of the stream come as its status
                    stream.message().await.map(|_| ())
                })
            }),
        ),
        (
            "AgentService/ClickToCall",
            Box::new(|ch| {
                Box::pin(async move {
                    ok(api::agent_service_client::AgentServiceClient::new(ch)
                        .click_to_call(api::ClickToCallRequest {
                            tenant: "demo".into(),
                            agent: "alice".into(),
                            number: "0912345678".into(),
                            correlation_id: "crm-1".into(),
                        })
                        .await)
                })
            }),
        ),
        (
            "CallControl/Originations",
            Box::new(|ch| {
                Box::pin(async move {
                    // refusals come at once; an allowed edge would wait for calls
                    api::call_control_client::CallControlClient::new(ch)
                        .originations(api::OriginationsRequest {})
                        .await
                        .map(|_| ())
                })
            }),
        ),
        (
            "CallControl/WatchTenants",
            Box::new(|ch| {
                Box::pin(async move {
                    let mut stream = api::call_control_client::CallControlClient::new(ch)
                        .watch_tenants(api::WatchTenantsRequest {})
                        .await?
                        .into_inner();
                    stream.message().await.map(|_| ())
                })
            }),
        ),
        (
            "Admin/LoadTenant",
            Box::new(|ch| {
                Box::pin(async move {
                    let yaml = callgrid_config::DEMO_TENANT_YAML.replacen(
                        "name:",
                        "name: Taken over by",
                        1,
                    );
                    ok(api::admin_client::AdminClient::new(ch)
                        .load_tenant(api::LoadTenantRequest {
                            yaml,
                            source_name: "takeover.yaml".into(),
                        })
                        .await)
                })
            }),
        ),
        (
            "Admin/Stats",
            Box::new(|ch| {
                Box::pin(async move {
                    ok(api::admin_client::AdminClient::new(ch)
                        .stats(api::StatsRequest::default())
                        .await)
                })
            }),
        ),
        (
            "ReadService/GetQueue",
            Box::new(|ch| {
                Box::pin(async move {
                    ok(api::read_service_client::ReadServiceClient::new(ch)
                        .get_queue(api::QueueRef {
                            tenant: "demo".into(),
                            queue: "200".into(),
                        })
                        .await)
                })
            }),
        ),
        (
            "ReadService/ListQueues",
            Box::new(|ch| {
                Box::pin(async move {
                    ok(api::read_service_client::ReadServiceClient::new(ch)
                        .list_queues(api::ListQueuesRequest {
                            tenant: "demo".into(),
                        })
                        .await)
                })
            }),
        ),
        (
            "ReadService/GetAgent",
            Box::new(|ch| {
                Box::pin(async move {
                    ok(api::read_service_client::ReadServiceClient::new(ch)
                        .get_agent(api::AgentRef {
                            tenant: "demo".into(),
                            agent: "alice".into(),
                        })
                        .await)
                })
            }),
        ),
        (
            "ReadService/GetCall",
            Box::new(|ch| {
                Box::pin(async move {
                    ok(api::read_service_client::ReadServiceClient::new(ch)
                        .get_call(api::CallRef {
                            tenant: "demo".into(),
                            call: "no-such-call".into(),
                        })
                        .await)
                })
            }),
        ),
        (
            "Access/CreateToken",
            Box::new(|ch| {
                Box::pin(async move {
                    ok(api::access_client::AccessClient::new(ch)
                        .create_token(api::CreateTokenRequest {
                            role: "tenant_admin".into(),
                            tenant: "demo".into(),
                            ..Default::default()
                        })
                        .await)
                })
            }),
        ),
        ("Access/RevokeToken", {
            Box::new(move |ch| {
                let id = demo_token.clone();
                Box::pin(async move {
                    ok(api::access_client::AccessClient::new(ch)
                        .revoke_token(api::RevokeTokenRequest { id })
                        .await)
                })
            })
        }),
        (
            "Access/ListTokens",
            Box::new(|ch| {
                Box::pin(async move {
                    ok(api::access_client::AccessClient::new(ch)
                        .list_tokens(api::ListTokensRequest {
                            tenant: "demo".into(),
                        })
                        .await)
                })
            }),
        ),
        (
            "Access/AddUser",
            Box::new(|ch| {
                Box::pin(async move {
                    ok(api::access_client::AccessClient::new(ch)
                        .add_user(api::AddUserRequest {
                            tenant: "demo".into(),
                            name: "mallory".into(),
                            role: "tenant_admin".into(),
                            agent: String::new(),
                            password: "correct horse battery".into(),
                        })
                        .await)
                })
            }),
        ),
        (
            "Access/SetPassword",
            Box::new(|ch| {
                Box::pin(async move {
                    ok(api::access_client::AccessClient::new(ch)
                        .set_password(api::SetPasswordRequest {
                            tenant: "demo".into(),
                            name: "sue".into(),
                            password: "taken over by mallory".into(),
                        })
                        .await)
                })
            }),
        ),
        (
            "Access/RemoveUser",
            Box::new(|ch| {
                Box::pin(async move {
                    ok(api::access_client::AccessClient::new(ch)
                        .remove_user(api::RemoveUserRequest {
                            tenant: "demo".into(),
                            name: "sue".into(),
                        })
                        .await)
                })
            }),
        ),
        (
            "Access/ListUsers",
            Box::new(|ch| {
                Box::pin(async move {
                    ok(api::access_client::AccessClient::new(ch)
                        .list_users(api::ListUsersRequest {
                            tenant: "demo".into(),
                        })
                        .await)
                })
            }),
        ),
        (
            "ServerReflection/ServerReflectionInfo",
            Box::new(|ch| {
                Box::pin(async move {
                    use tonic_reflection::pb::v1 as r;
                    let req = r::ServerReflectionRequest {
                        host: String::new(),
                        message_request: Some(
                            r::server_reflection_request::MessageRequest::ListServices(
                                String::new(),
                            ),
                        ),
                    };
                    let mut stream = r::server_reflection_client::ServerReflectionClient::new(ch)
                        .server_reflection_info(tokio_stream::iter([req]))
                        .await?
                        .into_inner();
                    stream.message().await.map(|_| ())
                })
            }),
        ),
    ];
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_refuses_wrong_credentials_and_changes_nothing() {
    let node = Node::start(&[]).await;
    // a second tenant, its admin, and demo's people of lower roles
    api::admin_client::AdminClient::new(node.channel(Some(&node.admin)).await)
        .load_tenant(api::LoadTenantRequest {
            yaml: std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sip/siptest.yaml"),
            )
            .expect("siptest.yaml"),
            source_name: "siptest.yaml".into(),
        })
        .await
        .expect("siptest loads");
    let (other, _) = node.token("tenant_admin", "siptest", "").await;
    let (demo_admin, _) = node.token("tenant_admin", "demo", "").await;
    let (sup, sup_id) = node.token("supervisor", "demo", "").await;
    let (wall, _) = node.token("wallboard", "demo", "").await;
    let (bob, _) = node.token("agent", "demo", "bob").await;
    let (metrics, _) = node.token("metrics", "", "").await;
    let (other_edge, _) = node.token("edge", "siptest", "").await;
    // a user whose password the matrix tries to change
    api::access_client::AccessClient::new(node.channel(Some(&node.admin)).await)
        .add_user(api::AddUserRequest {
            tenant: "demo".into(),
            name: "sue".into(),
            role: "supervisor".into(),
            agent: String::new(),
            password: "sue's own secret".into(),
        })
        .await
        .expect("sue added");

    let lower = |method: &str| -> &str {
        match method {
            "AgentService/Login"
            | "AgentService/Logout"
            | "AgentService/SetState"
            | "AgentService/Transfer" => &wall,
            "AgentService/ListAgents"
            | "ReadService/GetQueue"
            | "ReadService/ListQueues"
            | "ReadService/GetAgent" => &bob,
            "CallControl/Call" | "Admin/LoadTenant" | "ServerReflection/ServerReflectionInfo" => {
                &sup
            }
            // even a tenant's admin does not get the edge's view (agents' HA1s)
            "Admin/Stats" | "CallControl/WatchTenants" => &demo_admin,
            "ReadService/GetCall" => &wall,
            _ => &sup,
        }
    };
    let foreign = |method: &str| -> &str {
        match method {
            "CallControl/Call" => &other_edge,
            _ => &other,
        }
    };
    let events_before = node.events_written().await;
    for (method, call) in methods(&sup_id) {
        let r = call(node.channel(None).await).await;
        assert_eq!(
            r.as_ref().err().map(tonic::Status::code),
            Some(Code::Unauthenticated),
            "{method} without credentials: {r:?}"
        );
        let r = call(node.channel(Some("not a token")).await).await;
        assert_eq!(
            r.as_ref().err().map(tonic::Status::code),
            Some(Code::Unauthenticated),
            "{method} with a malformed credential: {r:?}"
        );
        let r = call(node.channel(Some("cg_0123456789abcdef_0123")).await).await;
        assert_eq!(
            r.as_ref().err().map(tonic::Status::code),
            Some(Code::Unauthenticated),
            "{method} with a forged token: {r:?}"
        );
        // reflection is for every admin, of whatever tenant: not tenant data; the edge's
        // view of the tenants names none: another tenant's edge sees its own (below)
        // (an edge of another tenant may take calls out too: only its tenant's reach it)
        if !method.starts_with("ServerReflection")
            && method != "CallControl/WatchTenants"
            && method != "CallControl/Originations"
        {
            let r = call(node.channel(Some(foreign(method))).await).await;
            assert_eq!(
                r.as_ref().err().map(tonic::Status::code),
                Some(Code::PermissionDenied),
                "{method} with another tenant's token: {r:?}"
            );
        }
        let r = call(node.channel(Some(lower(method))).await).await;
        assert_eq!(
            r.as_ref().err().map(tonic::Status::code),
            Some(Code::PermissionDenied),
            "{method} with a lower role's token: {r:?}"
        );
    }
    // bob acts on alice: refused; on himself: allowed
    let mut as_bob =
        api::agent_service_client::AgentServiceClient::new(node.channel(Some(&bob)).await);
    let r = as_bob
        .set_state(api::SetStateRequest {
            tenant: "demo".into(),
            agent: "alice".into(),
            state: Some(api::set_state_request::State::NotReadyReason(
                "break".into(),
            )),
        })
        .await;
    assert_eq!(r.err().map(|e| e.code()), Some(Code::PermissionDenied));
    // nor does bob place a call in alice's name (a call out costs money)
    let r = as_bob
        .click_to_call(api::ClickToCallRequest {
            tenant: "demo".into(),
            agent: "alice".into(),
            number: "0912345678".into(),
            correlation_id: String::new(),
        })
        .await;
    assert_eq!(r.err().map(|e| e.code()), Some(Code::PermissionDenied));
    // nor may another tenant's edge, or a supervisor, open a call alice's phone dialled
    for token in [&other_edge, &sup] {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(api::EdgeReport {
            call_id: "access-test-dialled".into(),
            seq: 1,
            ack: true,
            report: Some(api::edge_report::Report::Dialled(api::Dialled {
                tenant: "demo".into(),
                agent: "alice".into(),
                destination: "0912345678".into(),
                traceparent: String::new(),
            })),
        })
        .await
        .expect("queued");
        let opened =
            api::call_control_client::CallControlClient::new(node.channel(Some(token)).await)
                .call(ReceiverStream::new(rx))
                .await;
        let refused = match opened {
            Ok(stream) => stream.into_inner().message().await.err(),
            Err(st) => Some(st),
        };
        assert_eq!(refused.map(|e| e.code()), Some(Code::PermissionDenied));
    }

    // nothing changed: no event written, alice still logged out, sue's password and the
    // supervisor's token still good, no mallory
    assert_eq!(
        node.events_written().await,
        events_before,
        "a refused request wrote events"
    );
    let alice =
        api::read_service_client::ReadServiceClient::new(node.channel(Some(&node.admin)).await)
            .get_agent(api::AgentRef {
                tenant: "demo".into(),
                agent: "alice".into(),
            })
            .await
            .expect("alice")
            .into_inner();
    assert_eq!(alice.state, "logged_out");
    let users = api::access_client::AccessClient::new(node.channel(Some(&node.admin)).await)
        .list_users(api::ListUsersRequest {
            tenant: "demo".into(),
        })
        .await
        .expect("users")
        .into_inner()
        .users;
    assert_eq!(
        users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
        ["sue"]
    );
    assert_eq!(
        node.get(Some(&sup), "/api/v1/tenants/demo/live")
            .await
            .status,
        200
    );

    // lists show a foreign caller only its own tenant
    let tenants = api::admin_client::AdminClient::new(node.channel(Some(&other)).await)
        .list_tenants(api::ListTenantsRequest {})
        .await
        .expect("a tenant admin lists its tenants")
        .into_inner()
        .tenants;
    assert_eq!(
        tenants
            .iter()
            .map(|t| t.tenant.as_str())
            .collect::<Vec<_>>(),
        ["siptest"]
    );
    let r = api::admin_client::AdminClient::new(node.channel(Some(&metrics)).await)
        .list_tenants(api::ListTenantsRequest {})
        .await;
    assert_eq!(r.err().map(|e| e.code()), Some(Code::PermissionDenied));
    // the methods whose answer is the caller's own (not in the matrix): credentials first
    for token in [None, Some("cg_0123456789abcdef_0123")] {
        let r = api::admin_client::AdminClient::new(node.channel(token).await)
            .list_tenants(api::ListTenantsRequest {})
            .await;
        assert_eq!(r.err().map(|e| e.code()), Some(Code::Unauthenticated));
        let r = api::access_client::AccessClient::new(node.channel(token).await)
            .who_am_i(api::WhoAmIRequest {})
            .await;
        assert_eq!(r.err().map(|e| e.code()), Some(Code::Unauthenticated));
    }
    let me = api::access_client::AccessClient::new(node.channel(Some(&other)).await)
        .who_am_i(api::WhoAmIRequest {})
        .await
        .expect("any valid credential says who it is")
        .into_inner();
    assert_eq!(
        (me.role.as_str(), me.tenant.as_str()),
        ("tenant_admin", "siptest")
    );
    // the edge's view of the tenants: another tenant's edge gets its own tenant only
    let first =
        api::call_control_client::CallControlClient::new(node.channel(Some(&other_edge)).await)
            .watch_tenants(api::WatchTenantsRequest {})
            .await
            .expect("an edge watches its tenants")
            .into_inner()
            .message()
            .await
            .expect("a first message")
            .expect("not the end");
    assert!(first.initial);
    assert_eq!(
        first
            .tenants
            .iter()
            .map(|t| t.tenant.as_str())
            .collect::<Vec<_>>(),
        ["siptest"]
    );

    // the health service stays open
    let health = tonic_health::pb::health_client::HealthClient::new(node.channel(None).await)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health without credentials")
        .into_inner();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    // reflection answers an admin
    let reflect: Call = methods(&sup_id)
        .into_iter()
        .find(|(m, _)| m.starts_with("ServerReflection"))
        .expect("reflection")
        .1;
    reflect(node.channel(Some(&node.admin)).await)
        .await
        .expect("reflection for an admin");

    // HTTP: (path, lower role)
    for (path, lower) in [
        ("/api/v1/projector", &sup),
        ("/api/v1/tenants/demo/live", &bob),
        ("/api/v1/tenants/demo/live/stream", &bob),
        ("/api/v1/tenants/demo/calls", &wall),
        ("/api/v1/tenants/demo/calls?limit=2&cursor=AQ", &wall),
        ("/api/v1/tenants/demo/calls/x/offers", &wall),
        ("/api/v1/tenants/demo/intervals", &wall),
        ("/api/v1/tenants/demo/intervals?from=0&limit=5000", &wall),
        ("/api/v1/tenants/demo/agents/alice/states", &bob),
        (
            "/api/v1/tenants/demo/agents/alice/states?limit=1&cursor=AQ",
            &bob,
        ),
        ("/api/v1/tenants", &metrics),
        ("/api/v1/session", &String::from("cg_0123456789abcdef_nope")),
    ] {
        let r = node.get(None, path).await;
        assert_eq!(r.status, 401, "GET {path} without credentials: {r:?}");
        assert!(r.header("www-authenticate").is_some(), "{r:?}");
        let r = node.get(Some("cg_0123456789abcdef_0123"), path).await;
        assert_eq!(r.status, 401, "GET {path} with a forged token: {r:?}");
        if path.contains("/demo/") || path == "/api/v1/projector" {
            let r = node.get(Some(&other), path).await;
            assert_eq!(
                r.status, 403,
                "GET {path} with another tenant's token: {r:?}"
            );
        }
        let r = node.get(Some(lower), path).await;
        let expected = if path == "/api/v1/session" { 401 } else { 403 };
        assert_eq!(r.status, expected, "GET {path} with a lower role: {r:?}");
    }
    let r = node.get(Some(&other), "/api/v1/tenants").await;
    assert_eq!((r.status, r.body.as_str()), (200, "[\"siptest\"]"));
    // what the roles may: a wallboard the live views, bob his own history
    assert_eq!(
        node.get(Some(&wall), "/api/v1/tenants/demo/live")
            .await
            .status,
        200
    );
    assert_eq!(
        node.get(Some(&bob), "/api/v1/tenants/demo/agents/bob/states")
            .await
            .status,
        200
    );
}

/// Posts a sign-in; (status, Set-Cookie value, JSON body).
async fn sign_in(node: &Node, tenant: &str, user: &str, password: &str) -> (u16, String, Value) {
    let body =
        serde_json::json!({ "tenant": tenant, "user": user, "password": password }).to_string();
    let r = http(
        node.http,
        "POST",
        "/api/v1/session",
        &[("Content-Type", "application/json")],
        &body,
    )
    .await
    .expect("an answer");
    let cookie = r.header("set-cookie").unwrap_or_default().to_owned();
    (
        r.status,
        cookie,
        serde_json::from_str(&r.body).unwrap_or(Value::Null),
    )
}

/// Opens the push stream with a header; (status line, the lines after the head).
async fn open_stream(
    node: &Node,
    header: &str,
) -> (String, tokio::io::Lines<BufReader<TcpStream>>) {
    let mut s = TcpStream::connect(("127.0.0.1", node.http))
        .await
        .expect("connect");
    s.write_all(
        format!("GET /api/v1/tenants/demo/live/stream HTTP/1.0\r\nHost: x\r\n{header}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .expect("send");
    let mut lines = BufReader::new(s).lines();
    let status = lines.next_line().await.expect("read").unwrap_or_default();
    while let Ok(Some(l)) = lines.next_line().await {
        if l.is_empty() {
            break;
        }
    }
    (status, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_reaches_the_push_stream_until_sign_out_and_agents_get_their_own_token() {
    let mut node = Node::start(&[]).await;
    let mut access = api::access_client::AccessClient::new(node.channel(Some(&node.admin)).await);
    for (name, role) in [("sue", "supervisor"), ("alice", "agent")] {
        access
            .add_user(api::AddUserRequest {
                tenant: "demo".into(),
                name: name.into(),
                role: role.into(),
                agent: String::new(),
                password: format!("{name}'s long password"),
            })
            .await
            .expect("user added");
    }
    // a short password, a role for services only: refused
    let r = access
        .add_user(api::AddUserRequest {
            tenant: "demo".into(),
            name: "eve".into(),
            role: "supervisor".into(),
            agent: String::new(),
            password: "short".into(),
        })
        .await;
    assert_eq!(r.err().map(|e| e.code()), Some(Code::InvalidArgument));
    let r = access
        .add_user(api::AddUserRequest {
            tenant: "demo".into(),
            name: "eve".into(),
            role: "edge".into(),
            agent: String::new(),
            password: "long enough password".into(),
        })
        .await;
    assert_eq!(r.err().map(|e| e.code()), Some(Code::InvalidArgument));

    // wrong password, unknown user: the same 401
    let (status, cookie, _) = sign_in(&node, "demo", "sue", "not her password").await;
    assert_eq!((status, cookie.as_str()), (401, ""));
    let (status, _, _) = sign_in(&node, "demo", "nobody", "sue's long password").await;
    assert_eq!(status, 401);

    let (status, set_cookie, body) = sign_in(&node, "demo", "sue", "sue's long password").await;
    assert_eq!(status, 200, "{body}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    assert_eq!(body["role"], "supervisor");
    assert!(
        body.get("token").is_none(),
        "a supervisor gets no bearer token: {body}"
    );
    let csrf = body["csrf"].as_str().expect("csrf").to_owned();
    let cookie = set_cookie.split(';').next().expect("name=value").to_owned();
    let with_cookie = format!("Cookie: {cookie}");

    // the push stream takes the cookie (an EventSource sends no headers of its own)
    let (status, mut stream) = open_stream(&node, &with_cookie).await;
    assert!(status.contains(" 200 "), "{status}");
    let first = tokio::time::timeout(Duration::from_secs(30), stream.next_line())
        .await
        .expect("an event")
        .expect("read")
        .expect("a line");
    assert_eq!(first, "event: snapshot");
    // reads take the cookie; a change without the CSRF token does not
    let r = http(
        node.http,
        "GET",
        "/api/v1/session",
        &[("Cookie", &cookie)],
        "",
    )
    .await
    .expect("whoami");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("user:demo/sue"), "{}", r.body);
    let r = http(
        node.http,
        "DELETE",
        "/api/v1/session",
        &[("Cookie", &cookie)],
        "",
    )
    .await
    .expect("sign out without csrf");
    assert_eq!(r.status, 403, "{r:?}");
    let r = http(
        node.http,
        "DELETE",
        "/api/v1/session",
        &[("Cookie", &cookie), ("X-CSRF-Token", "0000")],
        "",
    )
    .await
    .expect("sign out with a wrong csrf");
    assert_eq!(r.status, 403, "{r:?}");
    let r = http(
        node.http,
        "DELETE",
        "/api/v1/session",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        "",
    )
    .await
    .expect("sign out");
    assert_eq!(r.status, 204, "{r:?}");
    // the open stream ends, and the cookie opens nothing any more
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(_)) = stream.next_line().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived the session");
    let (status, _) = open_stream(&node, &with_cookie).await;
    assert!(status.contains(" 401 "), "{status}");

    // an agent signs in and gets a token for itself only
    let (status, _, body) = sign_in(&node, "demo", "alice", "alice's long password").await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().expect("an agent's token").to_owned();
    let mut agents =
        api::agent_service_client::AgentServiceClient::new(node.channel(Some(&token)).await);
    let me = agents
        .login(api::LoginRequest {
            tenant: "demo".into(),
            agent: "alice".into(),
            devices: vec!["sip:alice@127.0.0.1:5999".into()],
            not_ready_reason: String::new(),
        })
        .await
        .expect("alice logs herself in")
        .into_inner();
    assert_eq!(me.state, "available");
    let r = agents
        .login(api::LoginRequest {
            tenant: "demo".into(),
            agent: "bob".into(),
            devices: vec![],
            not_ready_reason: String::new(),
        })
        .await;
    assert_eq!(r.err().map(|e| e.code()), Some(Code::PermissionDenied));
    // signing out ends the token too
    let (status, agent_cookie, agent_body) =
        sign_in(&node, "demo", "alice", "alice's long password").await;
    assert_eq!(status, 200);
    let agent_token = agent_body["token"].as_str().expect("token").to_owned();
    let r = http(
        node.http,
        "DELETE",
        "/api/v1/session",
        &[
            ("Cookie", agent_cookie.split(';').next().expect("cookie")),
            ("X-CSRF-Token", agent_body["csrf"].as_str().expect("csrf")),
        ],
        "",
    )
    .await
    .expect("sign out");
    assert_eq!(r.status, 204);
    let r =
        api::agent_service_client::AgentServiceClient::new(node.channel(Some(&agent_token)).await)
            .set_state(api::SetStateRequest {
                tenant: "demo".into(),
                agent: "alice".into(),
                state: Some(api::set_state_request::State::NotReadyReason(
                    "break".into(),
                )),
            })
            .await;
    assert_eq!(r.err().map(|e| e.code()), Some(Code::Unauthenticated));
    drop(agents);

    // the audit trail: alice's login names her sign-in token
    node.stop();
    let events = common::read_events(&node.data().join("events.sqlite")).await;
    let login = events
        .iter()
        .find(|e| {
            e.aggregate_id == "alice"
                && matches!(
                    e.event.as_ref().and_then(|ev| ev.kind.as_ref()),
                    Some(callgrid_proto::events::v1::event::Kind::AgentLoggedIn(_))
                )
        })
        .expect("alice's login event");
    assert!(login.caused_by.starts_with("token:"), "{login:?}");
    let configured = events
        .iter()
        .find(|e| e.aggregate_kind == "tenant")
        .expect("the demo configuration");
    assert_eq!(
        configured.caused_by, "",
        "the start-up load is the platform's own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_input_is_refused_naming_the_field_and_the_platform_goes_on() {
    let node = Node::start(&[]).await;
    let mut agents =
        api::agent_service_client::AgentServiceClient::new(node.channel(Some(&node.admin)).await);
    // the poison login: 3,000 device URIs of 400 characters (1.2 MB)
    let poison: Vec<String> = (0..3000)
        .map(|i| format!("sip:{i}-{}@127.0.0.1", "x".repeat(380)))
        .collect();
    let r = agents
        .login(api::LoginRequest {
            tenant: "demo".into(),
            agent: "alice".into(),
            devices: poison,
            not_ready_reason: String::new(),
        })
        .await;
    let e = r.expect_err("the poison login is refused");
    assert!(
        matches!(
            e.code(),
            Code::OutOfRange | Code::InvalidArgument | Code::ResourceExhausted
        ),
        "{e:?}"
    );
    // under the message limit, the field limit names the field
    let r = agents
        .login(api::LoginRequest {
            tenant: "demo".into(),
            agent: "alice".into(),
            devices: (0..40).map(|i| format!("sip:{i}@127.0.0.1")).collect(),
            not_ready_reason: String::new(),
        })
        .await;
    let e = r.expect_err("too many devices");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("devices"), "{e:?}");
    for (field, req) in [
        (
            "agent",
            api::LoginRequest {
                tenant: "demo".into(),
                agent: "a".repeat(65),
                ..Default::default()
            },
        ),
        (
            "tenant",
            api::LoginRequest {
                tenant: "t".repeat(65),
                agent: "alice".into(),
                ..Default::default()
            },
        ),
        (
            "not_ready_reason",
            api::LoginRequest {
                tenant: "demo".into(),
                agent: "alice".into(),
                not_ready_reason: "r".repeat(65),
                ..Default::default()
            },
        ),
    ] {
        let e = agents.login(req).await.expect_err("refused");
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
        assert!(e.message().starts_with(field), "{field}: {e:?}");
    }
    // a device off loopback and outside the tenant's device domains: a login that could
    // place calls anywhere at the tenant's cost
    let e = agents
        .login(api::LoginRequest {
            tenant: "demo".into(),
            agent: "alice".into(),
            devices: vec!["sip:1900555@premium.example".into()],
            not_ready_reason: String::new(),
        })
        .await
        .expect_err("a device outside the device domains");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("devices"), "{e:?}");
    let big = format!(
        "{}\n# {}\n",
        callgrid_config::DEMO_TENANT_YAML,
        "x".repeat(1 << 20)
    );
    let e = api::admin_client::AdminClient::new(node.channel(Some(&node.admin)).await)
        .load_tenant(api::LoadTenantRequest {
            yaml: big,
            source_name: "big.yaml".into(),
        })
        .await
        .expect_err("a tenant file over 1 MiB");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("yaml"), "{e:?}");

    // and the platform goes on: logins and calls work
    let me = agents
        .login(api::LoginRequest {
            tenant: "demo".into(),
            agent: "alice".into(),
            devices: vec!["sip:alice@127.0.0.1:5999".into()],
            not_ready_reason: String::new(),
        })
        .await
        .expect("a normal login after the poison")
        .into_inner();
    assert_eq!(me.state, "available");
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(api::EdgeReport {
        call_id: "after-poison".into(),
        seq: 1,
        ack: true,
        report: Some(api::edge_report::Report::Arrived(api::Arrived {
            number: SALES.into(),
            caller: "0961234566".into(),
            tenant: String::new(),
            traceparent: String::new(),
        })),
    })
    .await
    .expect("queued");
    let mut stream =
        api::call_control_client::CallControlClient::new(node.channel(Some(&node.admin)).await)
            .call(ReceiverStream::new(rx))
            .await
            .expect("a call after the poison")
            .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("an instruction")
        .expect("ok")
        .expect("one");
    assert!(first.instruction.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_answers_only_the_allowed_networks() {
    let node = Node::start(&["--admin-allow", "10.0.0.0/8"]).await;
    let r = api::admin_client::AdminClient::new(node.channel(Some(&node.admin)).await)
        .list_tenants(api::ListTenantsRequest {})
        .await;
    let e = r.expect_err("127.0.0.1 is not in 10.0.0.0/8");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("admin API"), "{e:?}");
    let r = api::access_client::AccessClient::new(node.channel(Some(&node.admin)).await)
        .list_tokens(api::ListTokensRequest::default())
        .await;
    assert_eq!(r.err().map(|e| e.code()), Some(Code::PermissionDenied));
    // the rest of the API is not the admin API
    api::read_service_client::ReadServiceClient::new(node.channel(Some(&node.admin)).await)
        .list_queues(api::ListQueuesRequest {
            tenant: "demo".into(),
        })
        .await
        .expect("reads are not admin");
}

#[test]
fn the_cli_issues_lists_and_revokes_tokens_and_adds_users_with_a_password_from_stdin() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let node = rt.block_on(Node::start(&[]));
    let cli = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_callgrid"))
            .args(args)
            .args(["--router", &format!("http://127.0.0.1:{}", node.grpc)])
            .arg("--token-file")
            .arg(node.data().join("admin.token"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("callgrid runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("exits");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, token, err) = cli(
        &[
            "token",
            "create",
            "--tenant",
            "demo",
            "--role",
            "supervisor",
            "--expires",
            "1h",
        ],
        "",
    );
    assert!(ok, "{err}");
    assert!(token.starts_with("cg_"), "{token}");
    let (ok, list, err) = cli(&["token", "list", "--tenant", "demo"], "");
    assert!(ok, "{err}");
    let id = token.split('_').nth(1).expect("id");
    assert!(list.contains(id), "{list}");
    assert!(
        !list.contains(&token),
        "a listing never shows a secret: {list}"
    );
    let status = rt
        .block_on(node.get(Some(&token), "/api/v1/tenants/demo/live"))
        .status;
    assert_eq!(status, 200);
    let (ok, _, err) = cli(&["token", "revoke", id], "");
    assert!(ok, "{err}");
    let status = rt
        .block_on(node.get(Some(&token), "/api/v1/tenants/demo/live"))
        .status;
    assert_eq!(status, 401, "a revoked token");

    let (ok, out, err) = cli(
        &[
            "user",
            "add",
            "--tenant",
            "demo",
            "--role",
            "supervisor",
            "sue",
        ],
        "sue's long password\n",
    );
    assert!(ok, "{err}");
    assert!(out.contains("demo/sue"), "{out}");
    assert_eq!(
        rt.block_on(sign_in(&node, "demo", "sue", "sue's long password"))
            .0,
        200
    );
    let (ok, _, err) = cli(
        &["user", "passwd", "--tenant", "demo", "sue"],
        "another long password\n",
    );
    assert!(ok, "{err}");
    assert_eq!(
        rt.block_on(sign_in(&node, "demo", "sue", "sue's long password"))
            .0,
        401
    );
    assert_eq!(
        rt.block_on(sign_in(&node, "demo", "sue", "another long password"))
            .0,
        200
    );
    let (ok, _, err) = cli(&["user", "remove", "--tenant", "demo", "sue"], "");
    assert!(ok, "{err}");
    let (ok, list, err) = cli(&["user", "list", "--tenant", "demo"], "");
    assert!(ok, "{err}");
    assert!(!list.contains("sue"), "{list}");
    // bad input: a clear error, not a panic
    let (ok, _, err) = cli(&["token", "create", "--role", "root"], "");
    assert!(!ok);
    assert!(err.contains("role must be one of"), "{err}");
    // the admin token file is the owner's only
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(node.data().join("admin.token"))
        .expect("admin.token")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// Every method of the API is in the matrix of `every_api_refuses_wrong_credentials...`: a
/// new method cannot skip the access checks' test.
#[test]
fn the_credentials_matrix_covers_every_method_of_the_api() {
    let proto = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto/callgrid/api/v1/api.proto"),
    )
    .expect("api.proto");
    let mut service = "";
    let mut declared = Vec::new();
    for line in proto.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("service ") {
            service = rest.split_whitespace().next().unwrap_or_default();
        } else if let Some(rest) = line.strip_prefix("rpc ") {
            let method = rest.split('(').next().unwrap_or_default().trim();
            declared.push(format!("{service}/{method}"));
        }
    }
    assert!(
        declared.len() > 10,
        "read the methods of api.proto: {declared:?}"
    );
    // answered with the caller's own view, never refused for a scope: tested after the
    // matrix (credentials required; another tenant sees only itself)
    let own_view = ["Admin/ListTenants", "Access/WhoAmI"];
    let tested: Vec<&str> = methods("")
        .into_iter()
        .map(|(m, _)| m)
        .chain(own_view)
        .collect();
    let missing: Vec<&String> = declared
        .iter()
        .filter(|m| !tested.contains(&m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "methods without an access test: {missing:?}"
    );
}
