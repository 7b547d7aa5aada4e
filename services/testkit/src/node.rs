//! A `callgrid` process started for a test, on free ports, with its data in a temporary
//! directory.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use callgrid_proto::api::v1 as api;

use crate::child::Child;
use crate::grpc::{self, Authed};
use crate::http::lists_tenant;
use crate::ports::free_tcp_port;

/// How many lines of the node's log a failure shows.
const TAIL: usize = 60;

/// When a started node counts as ready, so that [`NodeBuilder::start`] returns.
#[derive(Clone, Debug)]
pub enum Ready {
    /// At once: the process runs (the default of `projector`).
    Spawned,
    /// Its admin token is written (`DATA_DIR/admin.token`).
    Token,
    /// `Admin/ListTenants` answers the admin token with at least one tenant (the default of
    /// `serve` and `router`).
    Tenants,
    /// The supervisor service lists this tenant to the admin token, and gRPC (where the
    /// subcommand has it) accepts a connection; for a node whose admin API refuses
    /// 127.0.0.1.
    Listed(String),
}

/// How a [`Node`] is started: made by [`Node::serve`], [`Node::router`] or
/// [`Node::projector`], started by [`NodeBuilder::start`] (or
/// [`NodeBuilder::start_blocking`]).
#[derive(Clone, Debug)]
pub struct NodeBuilder {
    bin: PathBuf,
    subcommand: &'static str,
    data_dir: Option<PathBuf>,
    grpc: Option<u16>,
    http: bool,
    sip: Option<u16>,
    metrics: bool,
    args: Vec<OsString>,
    rust_log: String,
    ready: Ready,
    probe_sip: bool,
    within: Duration,
}

impl NodeBuilder {
    fn new(bin: impl Into<PathBuf>, subcommand: &'static str) -> NodeBuilder {
        NodeBuilder {
            bin: bin.into(),
            subcommand,
            data_dir: None,
            grpc: None,
            http: false,
            sip: None,
            metrics: false,
            args: Vec::new(),
            rust_log: "warn".into(),
            ready: Ready::Tenants,
            probe_sip: false,
            within: Duration::from_secs(60),
        }
    }

    /// Keeps its data in `dir` (made if missing) instead of `DIR/data` of its temporary
    /// directory: to start it again on the same data, or on data the test prepared.
    #[must_use]
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> NodeBuilder {
        self.data_dir = Some(dir.into());
        self
    }

    /// Serves gRPC on this port instead of a free one (to start it again where it was).
    #[must_use]
    pub fn grpc_port(mut self, port: u16) -> NodeBuilder {
        self.grpc = Some(port);
        self
    }

    /// Runs the SIP edge on 127.0.0.1:`port` (UDP and TCP: see
    /// [`free_udp_port`](crate::free_udp_port)) instead of `--no-sip` (`serve` only).
    #[must_use]
    pub fn sip(mut self, port: u16) -> NodeBuilder {
        self.sip = Some(port);
        self
    }

    /// Serves `GET /metrics` on a free port ([`Node::metrics_port`]).
    #[must_use]
    pub fn metrics(mut self) -> NodeBuilder {
        self.metrics = true;
        self
    }

    /// One more command-line argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<OsString>) -> NodeBuilder {
        self.args.push(arg.into());
        self
    }

    /// More command-line arguments.
    #[must_use]
    pub fn args<S: Into<OsString>>(mut self, args: impl IntoIterator<Item = S>) -> NodeBuilder {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Its `RUST_LOG` (`warn` unless set); the log goes to a file, [`Node::log`].
    #[must_use]
    pub fn rust_log(mut self, filter: &str) -> NodeBuilder {
        filter.clone_into(&mut self.rust_log);
        self
    }

    /// When it counts as ready.
    #[must_use]
    pub fn ready(mut self, ready: Ready) -> NodeBuilder {
        self.ready = ready;
        self
    }

    /// Ready only once the SIP edge also answers an OPTIONS with 200.
    #[must_use]
    pub fn wait_for_sip(mut self) -> NodeBuilder {
        self.probe_sip = true;
        self
    }

    /// How long it may take to be ready (60 s unless set).
    #[must_use]
    pub fn ready_within(mut self, limit: Duration) -> NodeBuilder {
        self.within = limit;
        self
    }

    /// Starts it and returns once it is ready; panics, with the tail of its log, when it
    /// exits first or is not ready in time.
    ///
    /// A port the kit chose may be taken by another test between the choice and the node's
    /// bind: a node that exits saying so is started again on other ports (three times).
    pub async fn start(self) -> Node {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut node, ready, probe_sip, within) = self.clone().spawn();
            match node.wait_ready(&ready, probe_sip, within).await {
                Ok(()) => return node,
                // the whole log: a backtrace may push the error out of the tail
                Err(_) if attempt < 3 && node.log().contains("Address already in use") => {}
                Err(why) => panic!("{why}"),
            }
        }
    }

    /// [`NodeBuilder::start`] for a test without a tokio runtime (or within one: the wait
    /// runs on a thread of its own).
    pub fn start_blocking(self) -> Node {
        std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime")
                    .block_on(self.start())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    fn spawn(self) -> (Node, Ready, bool, Duration) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data = self.data_dir.unwrap_or_else(|| dir.path().join("data"));
        let log = dir.path().join(format!("{}.log", self.subcommand));
        let grpc = match self.subcommand {
            "projector" => None,
            _ => Some(self.grpc.unwrap_or_else(free_tcp_port)),
        };
        let http = self.http.then(free_tcp_port);
        let metrics = self.metrics.then(free_tcp_port);
        let mut cmd = Command::new(&self.bin);
        cmd.arg(self.subcommand).arg("--data-dir").arg(&data);
        if let Some(port) = grpc {
            cmd.args(["--listen", &format!("127.0.0.1:{port}")]);
        }
        if let Some(port) = http {
            cmd.args(["--supervisor-listen", &format!("127.0.0.1:{port}")]);
        }
        if self.subcommand == "serve" {
            match self.sip {
                Some(port) => cmd.args(["--sip-listen", &format!("127.0.0.1:{port}")]),
                None => cmd.arg("--no-sip"),
            };
        }
        if let Some(port) = metrics {
            cmd.args(["--metrics-listen", &format!("127.0.0.1:{port}")]);
        }
        cmd.args(&self.args)
            .env("RUST_LOG", &self.rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"));
        let child = Child::spawn(&mut cmd)
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()))
            .with_log(log);
        let node = Node {
            child,
            dir,
            data,
            subcommand: self.subcommand,
            grpc,
            http,
            sip: self.sip,
            metrics,
        };
        (node, self.ready, self.probe_sip, self.within)
    }
}

/// A `callgrid` process of a test: killed when dropped, then its temporary directory
/// (its log, and its data unless [`NodeBuilder::data_dir`] named another place) is removed.
#[derive(Debug)]
pub struct Node {
    // dropped first: the process ends before its directory goes
    child: Child,
    dir: tempfile::TempDir,
    data: PathBuf,
    subcommand: &'static str,
    grpc: Option<u16>,
    http: Option<u16>,
    sip: Option<u16>,
    metrics: Option<u16>,
}

impl Node {
    /// `callgrid serve` (`bin`: `env!("CARGO_BIN_EXE_callgrid")`) with its gRPC API and
    /// supervisor service on free ports, `--no-sip` unless [`NodeBuilder::sip`], the demo
    /// tenant unless the arguments say otherwise; ready when it lists a tenant.
    pub fn serve(bin: impl Into<PathBuf>) -> NodeBuilder {
        NodeBuilder {
            http: true,
            ..NodeBuilder::new(bin, "serve")
        }
    }

    /// `callgrid router` with its gRPC API on a free port; ready when it lists a tenant.
    pub fn router(bin: impl Into<PathBuf>) -> NodeBuilder {
        NodeBuilder::new(bin, "router")
    }

    /// `callgrid projector` with its supervisor service on a free port; ready once it runs.
    pub fn projector(bin: impl Into<PathBuf>) -> NodeBuilder {
        NodeBuilder {
            http: true,
            ready: Ready::Spawned,
            ..NodeBuilder::new(bin, "projector")
        }
    }

    /// Its temporary directory: its log, and its data directory unless another was named.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its data directory (`--data-dir`).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The port of its gRPC API.
    pub fn grpc_port(&self) -> u16 {
        self.grpc.expect("a node with a gRPC API")
    }

    /// The port of its supervisor service.
    pub fn http_port(&self) -> u16 {
        self.http.expect("a node with a supervisor service")
    }

    /// The address of its SIP edge.
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sip.expect("a node with a SIP edge")))
    }

    /// The port of its `GET /metrics`.
    pub fn metrics_port(&self) -> u16 {
        self.metrics.expect("a node started with .metrics()")
    }

    /// The platform admin token it wrote on its first start (waits for it).
    pub fn admin_token(&self) -> String {
        grpc::admin_token(&self.data)
    }

    /// A connection to its gRPC API showing the admin token, for the tokio runtime this is
    /// called in.
    pub async fn connect(&self) -> Authed {
        grpc::connect(self.grpc_port(), &self.admin_token()).await
    }

    /// A connection to its gRPC API showing `token` (`None`: no credentials).
    pub async fn connect_as(&self, token: Option<&str>) -> Authed {
        grpc::try_connect(self.grpc_port(), token)
            .await
            .unwrap_or_else(|e| panic!("no gRPC connection to callgrid: {e}"))
    }

    /// Its log (stderr) so far.
    pub fn log(&self) -> String {
        self.child.log()
    }

    /// The last `lines` lines of its log.
    pub fn tail(&self, lines: usize) -> String {
        self.child.tail(lines)
    }

    /// Its log file.
    pub fn log_path(&self) -> &Path {
        self.child.log_path().expect("a node logs to a file")
    }

    /// The process.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Whether the process has ended ([`Node::stop`], or on its own).
    pub fn stopped(&mut self) -> bool {
        self.child.exited().is_some()
    }

    /// Kills the process (SIGKILL, as a crash) and reaps it; its directories stay until the
    /// node is dropped.
    pub fn stop(&mut self) {
        self.child.kill();
    }

    /// Waits until the node is ready; otherwise what went wrong, with the tail of its log.
    async fn wait_ready(
        &mut self,
        ready: &Ready,
        probe_sip: bool,
        within: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let mut probe = 0;
        loop {
            let not_yet = match self.not_ready(ready).await {
                None if probe_sip => {
                    probe += 1;
                    (!answers_options(self.sip_addr(), probe).await)
                        .then(|| "the SIP edge does not answer OPTIONS".to_owned())
                }
                other => other,
            };
            let Some(why) = not_yet else { return Ok(()) };
            if let Some(status) = self.child.exited() {
                return Err(format!(
                    "callgrid {} exited ({status}) before it was ready:\n{}",
                    self.subcommand,
                    self.tail(TAIL)
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "callgrid {} not ready after {within:?} ({why}):\n{}",
                    self.subcommand,
                    self.tail(TAIL)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Why it is not ready yet, or `None` when it is.
    async fn not_ready(&self, ready: &Ready) -> Option<String> {
        if let Ready::Spawned = ready {
            return None;
        }
        let Some(token) = grpc::written_token(&self.data) else {
            return Some("no admin token yet".into());
        };
        match ready {
            Ready::Spawned | Ready::Token => None,
            Ready::Tenants => {
                let ch = match grpc::try_connect(self.grpc_port(), Some(&token)).await {
                    Ok(ch) => ch,
                    Err(e) => return Some(format!("no gRPC connection: {e}")),
                };
                match api::admin_client::AdminClient::new(ch)
                    .list_tenants(api::ListTenantsRequest {})
                    .await
                {
                    Ok(r) if !r.get_ref().tenants.is_empty() => None,
                    Ok(_) => Some("Admin/ListTenants lists no tenant".into()),
                    Err(e) => Some(format!("Admin/ListTenants: {e}")),
                }
            }
            Ready::Listed(tenant) => {
                if !lists_tenant(self.http_port(), &token, tenant).await {
                    return Some(format!("the supervisor service does not list {tenant}"));
                }
                match self.grpc {
                    Some(port) => grpc::try_connect(port, None)
                        .await
                        .err()
                        .map(|e| format!("no gRPC connection: {e}")),
                    None => None,
                }
            }
        }
    }
}

/// Whether the SIP edge at `sip` answers an OPTIONS (the `n`th probe) with 200 within
/// 200 ms.
pub async fn answers_options(sip: SocketAddr, n: u32) -> bool {
    let Ok(sock) = tokio::net::UdpSocket::bind("127.0.0.1:0").await else {
        return false;
    };
    let Ok(local) = sock.local_addr() else {
        return false;
    };
    let options = format!(
        "OPTIONS sip:ping@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKprobe{n}\r\n\
         From: <sip:probe@{local}>;tag=p\r\nTo: <sip:ping@{sip}>\r\nCall-ID: probe-{n}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    if sock.send_to(options.as_bytes(), sip).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 2048];
    matches!(
        tokio::time::timeout(Duration::from_millis(200), sock.recv_from(&mut buf)).await,
        Ok(Ok((len, _))) if buf[..len].starts_with(b"SIP/2.0 200")
    )
}
