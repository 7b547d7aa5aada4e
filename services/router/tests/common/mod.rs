//! A router serving the demo tenant on a random port, and gRPC helpers.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use callgrid_access::{Access, AccessOptions, AllowList, Gate, Principal, Role, TokenSpec};
use callgrid_eventlog::{EventLog, SqliteLog, SqliteLogOptions};
use callgrid_proto::api::v1 as api;
use callgrid_router::{grpc, Router, RouterOptions};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

pub use callgrid_testkit::Authed;

pub const SALES: &str = "+842873000200";
pub const MENU: &str = "+842873000100";
/// The W3C trace context every test call arrives with.
pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

pub struct Harness {
    pub router: Arc<Router>,
    pub access: Arc<Access>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    /// A platform admin's token: what the helpers show.
    pub admin_token: String,
}

pub async fn start() -> Harness {
    start_with(RouterOptions::default()).await
}

pub async fn start_with(opts: RouterOptions) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SqliteLog::open_async(
        dir.path().join("events.sqlite"),
        SqliteLogOptions::default(),
    )
    .await
    .expect("log");
    let log: Arc<dyn EventLog> = Arc::new(log);
    let access = Access::open(log.clone(), AccessOptions::default())
        .await
        .expect("access");
    let router = Router::open(log, opts).await.expect("router");
    router
        .load_tenant("demo.yaml", callgrid_config::DEMO_TENANT_YAML)
        .await
        .expect("demo tenant");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let gate = Gate::new(access.clone(), grpc::policy, AllowList::loopback(), false);
    let served = (router.clone(), access.clone());
    tokio::spawn(async move {
        let options = callgrid_http::ServerOptions::named("grpc");
        grpc::serve_on(
            served.0,
            served.1,
            &gate,
            listener,
            options,
            std::future::pending(),
        )
        .await
    });
    let mut h = Harness {
        router,
        access,
        addr,
        dir,
        admin_token: String::new(),
    };
    h.admin_token = h.token(Role::PlatformAdmin, None, None).await;
    h
}

impl Harness {
    /// A new token of `role`.
    pub async fn token(&self, role: Role, tenant: Option<&str>, agent: Option<&str>) -> String {
        self.access
            .issue_token(
                &Principal::system(),
                TokenSpec {
                    role: Some(role),
                    tenant: tenant.map(str::to_owned),
                    agent: agent.map(str::to_owned),
                    ..TokenSpec::default()
                },
            )
            .await
            .expect("token issued")
            .token
    }

    /// A connection showing `token` (none: no credentials).
    pub async fn channel_as(&self, token: Option<&str>) -> Authed {
        callgrid_testkit::try_connect(self.addr.port(), token)
            .await
            .expect("connect")
    }
    /// A connection showing the platform admin's token.
    pub async fn channel(&self) -> Authed {
        self.channel_as(Some(&self.admin_token)).await
    }
    pub async fn agents(&self) -> api::agent_service_client::AgentServiceClient<Authed> {
        api::agent_service_client::AgentServiceClient::new(self.channel().await)
    }
    pub async fn reads(&self) -> api::read_service_client::ReadServiceClient<Authed> {
        api::read_service_client::ReadServiceClient::new(self.channel().await)
    }
    pub async fn admin(&self) -> api::admin_client::AdminClient<Authed> {
        api::admin_client::AdminClient::new(self.channel().await)
    }

    pub async fn login(&self, agent: &str) -> api::AgentStatus {
        self.agents()
            .await
            .login(api::LoginRequest {
                tenant: "demo".into(),
                agent: agent.into(),
                devices: vec![format!("sip:{agent}@127.0.0.1")],
                not_ready_reason: String::new(),
            })
            .await
            .expect("login")
            .into_inner()
    }

    /// Opens a call stream and reports `arrived`.
    pub async fn call(&self, call_id: &str, number: &str) -> Result<EdgeCall, tonic::Status> {
        self.open(call_id, arrival(call_id, number)).await
    }

    /// Opens a call stream for what `agent`'s phone dialled, as its edge reports it.
    pub async fn dial(
        &self,
        call_id: &str,
        agent: &str,
        destination: &str,
    ) -> Result<EdgeCall, tonic::Status> {
        let dialled = api::edge_report::Report::Dialled(api::Dialled {
            tenant: "demo".into(),
            agent: agent.into(),
            destination: destination.into(),
            traceparent: TRACEPARENT.into(),
        });
        self.open(call_id, report(call_id, 1, dialled)).await
    }

    /// Opens a call stream with its first report, as an edge.
    pub async fn open(
        &self,
        call_id: &str,
        first: api::EdgeReport,
    ) -> Result<EdgeCall, tonic::Status> {
        let (tx, rx) = mpsc::channel(64);
        tx.send(first).await.expect("send");
        let edge = self.token(Role::Edge, None, None).await;
        let mut client =
            api::call_control_client::CallControlClient::new(self.channel_as(Some(&edge)).await);
        let inbound = client.call(ReceiverStream::new(rx)).await?.into_inner();
        Ok(EdgeCall {
            id: call_id.into(),
            tx,
            rx: inbound,
            seq: 1,
        })
    }
}

/// The arrival of `call` to `number`, as the first report of a stream.
pub fn arrival(call: &str, number: &str) -> api::EdgeReport {
    report(
        call,
        1,
        api::edge_report::Report::Arrived(api::Arrived {
            number: number.into(),
            caller: "0961234566".into(),
            tenant: String::new(),
            traceparent: TRACEPARENT.into(),
        }),
    )
}

/// A report that asks for its result (the tests check every one).
pub fn report(call: &str, seq: u64, r: api::edge_report::Report) -> api::EdgeReport {
    api::EdgeReport {
        call_id: call.into(),
        seq,
        report: Some(r),
        ack: true,
    }
}

pub struct EdgeCall {
    pub id: String,
    pub tx: mpsc::Sender<api::EdgeReport>,
    pub rx: Streaming<api::RouterInstruction>,
    pub seq: u64,
}

impl EdgeCall {
    pub async fn send(&mut self, r: api::edge_report::Report) -> u64 {
        self.seq += 1;
        self.tx
            .send(report(&self.id, self.seq, r))
            .await
            .expect("send report");
        self.seq
    }

    /// Reports a hang-up by `party` and checks it was accepted.
    pub async fn hang_up(&mut self, party: api::Party) {
        let s = self
            .send(api::edge_report::Report::Hangup(api::Hangup {
                party: party as i32,
                sip_code: 0,
            }))
            .await;
        assert_eq!(self.result_of(s).await.code, 0, "hang-up refused");
    }

    /// The next instruction, or None when the stream ended.
    pub async fn next(&mut self) -> Option<api::router_instruction::Instruction> {
        tokio::time::timeout(Duration::from_secs(10), self.rx.message())
            .await
            .expect("an instruction within 10 s")
            .expect("stream ok")
            .map(|i| i.instruction.expect("instruction set"))
    }

    /// Instructions until one matches.
    pub async fn until<T>(
        &mut self,
        mut f: impl FnMut(&api::router_instruction::Instruction) -> Option<T>,
    ) -> T {
        loop {
            let i = self
                .next()
                .await
                .expect("stream ended before the expected instruction");
            if let Some(t) = f(&i) {
                return t;
            }
        }
    }

    /// The result of report `seq`.
    pub async fn result_of(&mut self, seq: u64) -> api::ReportResult {
        self.until(|i| match i {
            api::router_instruction::Instruction::Result(r) if r.seq == seq => Some(r.clone()),
            _ => None,
        })
        .await
    }
}
