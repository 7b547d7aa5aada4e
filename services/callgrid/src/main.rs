//! `callgrid`: the single binary.
//!
//! - `callgrid serve`: everything on one node, embedded storage in `--data-dir`, the SIP edge
//!   included;
//! - `callgrid router`: the router alone, on Kafka (`--kafka BROKERS`) or the embedded log;
//! - `callgrid sip-edge`: the SIP edge alone, talking to a router over gRPC (a cluster);
//! - `callgrid projector`: the projections and the supervisor service alone (on Kafka), or
//!   `--rebuild` them from the log;
//! - `callgrid watch --tenant T`: a live queue monitor in the terminal;
//! - `callgrid agent`: log agents in and out, change their state;
//! - `callgrid token` / `callgrid user`: bearer tokens and users (docs/SECURITY.md);
//! - `callgrid check-config FILE|DIR`: validate tenant files and print every error.
//!
//! `serve` and `sip-edge` expose `GET /metrics` (Prometheus) with `--metrics-listen ADDR`.
//! Every API goes through the access gate (`callgrid-access`); `serve` and `router` write a
//! platform admin token to DATA_DIR/admin.token on their first start.

mod access_cli;
mod agent_cli;
mod call_cli;
mod certs;
mod client;
mod edge_config;
mod metrics;
mod tenant_cli;
mod verifier;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use callgrid_access::{Access, AccessOptions, AllowList, Gate, Principal, Role};
use callgrid_eventlog::{
    Durability, EventLog, KafkaLog, KafkaLogOptions, SqliteLog, SqliteLogOptions,
};
use callgrid_projector::{Projector, ProjectorOptions, EVENTS_TOPIC};
use callgrid_router::clock::Clock;
use callgrid_router::snapshot::SnapshotPolicy;
use callgrid_router::{grpc, Router, RouterOptions};
use callgrid_store::{ProjectionStore, ScyllaOptions, ScyllaStore, SqliteStore};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "callgrid",
    version,
    about = "Event-sourced call routing for call centres"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum DurabilityArg {
    /// fsync every group commit (survives power loss)
    Fsync,
    /// write the WAL without fsync per commit (survives a process crash)
    Process,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run every service on this node with embedded storage.
    Serve(ServeArgs),
    /// Run the router alone (gRPC: call control, agents, admin, reads) on Kafka (--kafka) or
    /// the embedded log, for SIP edges elsewhere (a cluster).
    Router(RouterCmdArgs),
    /// Run the SIP edge alone, for a router elsewhere (a cluster).
    SipEdge(SipEdgeArgs),
    /// Run the projector alone (the projections of the event log, and the supervisor service
    /// that serves them), or rebuild the projections with --rebuild.
    Projector(ProjectorArgs),
    /// A live queue monitor in the terminal, from the supervisor service's push stream.
    Watch(watch::WatchArgs),
    /// Log agents in or out, or change their state, over the router's gRPC API.
    Agent(agent_cli::AgentArgs),
    /// Click-to-call: ring an agent's phones, then dial a customer when the agent answers.
    Call(call_cli::CallArgs),
    /// Load tenant files into a running router, or list its tenants.
    Tenant(tenant_cli::TenantArgs),
    /// Issue, list and revoke bearer tokens.
    Token(access_cli::TokenCmd),
    /// Add, list and remove users (people who sign in), set their passwords.
    User(access_cli::UserCmd),
    /// Make a development certificate authority and certificates for TLS (not for
    /// production).
    Certs(certs::CertsArgs),
    /// Validate tenant configuration files (a file or a directory) and print every error.
    CheckConfig {
        /// A YAML file or a directory of them.
        path: PathBuf,
    },
}

/// mimalloc: glibc's malloc spent a tenth of the SIP edge's CPU under load, much of it
/// growing and trimming per-thread arenas (mprotect); see docs/BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // rsipstack logs every message it sends or receives at info
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rsipstack=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Cmd::CheckConfig { path } => check_config(&path),
        Cmd::Certs(args) => certs::run(args),
        Cmd::Serve(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .worker_threads(args.io_threads.unwrap_or_else(default_io_threads).max(1))
            .thread_name("callgrid-io")
            .build()?
            .block_on(serve(args)),
        Cmd::Router(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("callgrid-io")
            .build()?
            .block_on(router_cmd(args)),
        Cmd::Projector(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("callgrid-io")
            .build()?
            .block_on(projector_cmd(args)),
        Cmd::Watch(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(watch::run(args)),
        Cmd::Agent(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(agent_cli::run(args)),
        Cmd::Call(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(call_cli::run(args)),
        Cmd::Tenant(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(tenant_cli::run(args)),
        Cmd::Token(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(access_cli::token(args)),
        Cmd::User(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(access_cli::user(args)),
        Cmd::SipEdge(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("callgrid-sip")
            .build()?
            .block_on(sip_edge(args)),
    }
}

/// Options of the SIP edge, shared by `serve` and `sip-edge`.
#[derive(Args)]
struct SipArgs {
    /// SIP listen address, UDP and TCP.
    #[arg(long, env = "CALLGRID_SIP_LISTEN", default_value = "127.0.0.1:5060")]
    sip_listen: SocketAddr,
    /// Do not run the SIP edge (serve only).
    #[arg(long)]
    no_sip: bool,
    /// Address to put in SDP and Contact headers, if not the listen address's.
    #[arg(long, env = "CALLGRID_SIP_ADVERTISE")]
    sip_advertise: Option<std::net::IpAddr>,
    /// RTP port range, FIRST-LAST.
    #[arg(long, default_value = "20000-29999", value_parser = parse_range)]
    rtp_ports: (u16, u16),
    /// Digest realm of agent phones and trunks.
    #[arg(long, default_value = "callgrid")]
    sip_realm: String,
    /// Directory of WAV prompts (16-bit PCM, 8 kHz, mono); the shipped prompts by default.
    #[arg(long, env = "CALLGRID_PROMPTS")]
    prompts: Option<PathBuf>,
    /// Directory of call recordings (default: DATA_DIR/recordings).
    #[arg(long, env = "CALLGRID_RECORDINGS")]
    recordings: Option<PathBuf>,
    /// SIP transaction timer, seconds (RFC 3261's 64×T1, 32 s there): how long a finished
    /// transaction absorbs retransmissions, how long an unanswered request is retried, how
    /// long a 200 waits for its ACK. At least 4 (T1 = 500 ms must retransmit a few times).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(4..=64))]
    sip_transaction_timeout: u64,
    /// SIP messages per second one address that is not a trunk's may send (UDP datagrams
    /// over it are dropped before they are parsed); 0: no limit.
    #[arg(long, default_value_t = 300)]
    sip_source_rate: u32,
    /// Burst above `--sip-source-rate` one address may send after a quiet spell.
    #[arg(long, default_value_t = 1_500)]
    sip_source_burst: u32,
    /// SIP messages per second from a trunk's address; 0 (the default): no limit.
    #[arg(long, default_value_t = 0)]
    sip_trunk_rate: u32,
    /// Burst above `--sip-trunk-rate`.
    #[arg(long, default_value_t = 10_000)]
    sip_trunk_burst: u32,
    /// New SIP TCP connections per second from one address that is not a trunk's (bursts of
    /// ten times as many); 0: no limit.
    #[arg(long, default_value_t = 20)]
    sip_tcp_accept_rate: u32,
    /// SIP TCP connections one address that is not a trunk's may hold open; 0: no limit.
    #[arg(long, default_value_t = 256)]
    sip_tcp_per_address: u32,
    /// Digest failures from one address (not a trunk's) within `--sip-ban-window` that ban
    /// it; 0: never.
    #[arg(long, default_value_t = 10)]
    sip_ban_address_failures: u32,
    /// Digest failures for one user (agent or trunk account) within `--sip-ban-window` that
    /// ban the user; 0: never.
    #[arg(long, default_value_t = 5)]
    sip_ban_user_failures: u32,
    /// The window digest failures are counted in, seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    sip_ban_window: u64,
    /// How long a ban lasts, seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    sip_ban_seconds: u64,
}

/// TLS of this process's servers (gRPC, the supervisor service, metrics). Without it they
/// listen only on loopback (development): tokens and cookies must not cross a network in
/// clear text.
#[derive(Args, Clone)]
struct ServerTlsArgs {
    /// Certificate chain (PEM) of the servers: with it, every API speaks TLS (rustls).
    #[arg(long, env = "CALLGRID_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of that certificate.
    #[arg(long, env = "CALLGRID_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// gRPC clients must show a certificate signed by this CA (PEM): mutual TLS between the
    /// nodes of a cluster. The supervisor service (browsers) and metrics do not ask.
    #[arg(long, env = "CALLGRID_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
}

impl ServerTlsArgs {
    /// The TLS of the gRPC server (with the client CA), `None` without --tls-cert.
    fn grpc(&self) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
        self.config(self.tls_client_ca.as_deref())
    }

    /// The TLS of the HTTP servers (no client certificates), `None` without --tls-cert.
    fn http(&self) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
        self.config(None)
    }

    fn config(
        &self,
        client_ca: Option<&Path>,
    ) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(callgrid_http::tls::server_config(
                cert, key, client_ca,
            )?)),
            _ => Ok(None),
        }
    }

    /// Refuses a non-loopback address for a server without TLS.
    fn check(&self, what: &str, addr: SocketAddr) -> anyhow::Result<()> {
        if self.tls_cert.is_none() && !addr.ip().is_loopback() {
            anyhow::bail!(
                "{what} {addr} is not a loopback address: without --tls-cert/--tls-key the APIs \
                 listen only on loopback (tokens would cross the network in clear text; \
                 `callgrid certs` makes a development CA)"
            );
        }
        Ok(())
    }

    /// Server options with this TLS.
    fn server(
        name: &'static str,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> callgrid_http::ServerOptions {
        callgrid_http::ServerOptions {
            tls,
            ..callgrid_http::ServerOptions::named(name)
        }
    }
}

/// The metrics endpoint, shared by `serve` and `sip-edge`.
#[derive(Args)]
struct MetricsArgs {
    /// Serve `GET /metrics` (Prometheus text format: SIP and RTP counters) on this address;
    /// none by default.
    #[arg(long, env = "CALLGRID_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
}

impl MetricsArgs {
    /// Binds the address, if one is given (before anything else starts).
    async fn bind(&self) -> anyhow::Result<Option<tokio::net::TcpListener>> {
        match self.metrics_listen {
            Some(addr) => Ok(Some(metrics::bind(addr).await?)),
            None => Ok(None),
        }
    }
}

/// Serves the edge's counters on `listener`, if there is one, to callers `verifier` knows.
fn serve_metrics(
    listener: Option<tokio::net::TcpListener>,
    edge: Option<Arc<callgrid_sip_edge::SipEdge>>,
    verifier: Arc<dyn callgrid_access::Verifier>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Option<tokio::task::JoinHandle<()>> {
    let listener = listener?;
    // metrics are not the admin API: no address allow-list, a metrics token suffices
    let gate = Gate::new(verifier, metrics::policy, AllowList::any(), false);
    Some(metrics::serve(
        listener,
        Arc::new(move || metrics::render(edge.as_deref())),
        &gate,
        tls,
    ))
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("expected FIRST-LAST, got {s:?}"))?;
    let a: u16 = a.trim().parse().map_err(|e| format!("{a:?}: {e}"))?;
    let b: u16 = b.trim().parse().map_err(|e| format!("{b:?}: {e}"))?;
    if a >= b {
        return Err(format!("empty range {s}"));
    }
    Ok((a, b))
}

impl SipArgs {
    fn options(&self, data_dir: &Path) -> callgrid_sip_edge::EdgeOptions {
        let mut o = callgrid_sip_edge::EdgeOptions {
            listen: self.sip_listen,
            advertise_ip: self.sip_advertise,
            rtp_ports: self.rtp_ports,
            realm: self.sip_realm.clone(),
            recordings_dir: self
                .recordings
                .clone()
                .unwrap_or_else(|| data_dir.join("recordings")),
            transaction_timeout: std::time::Duration::from_secs(self.sip_transaction_timeout),
            ..Default::default()
        };
        let rate = |per_second: u32, burst: u32| {
            (per_second > 0).then_some(callgrid_sip_edge::Rate {
                per_second,
                burst: burst.max(1),
            })
        };
        o.source_limits = callgrid_sip_edge::SourceLimits {
            messages: rate(self.sip_source_rate, self.sip_source_burst),
            tcp_accepts: rate(
                self.sip_tcp_accept_rate,
                self.sip_tcp_accept_rate.saturating_mul(10),
            ),
            tcp_connections: (self.sip_tcp_per_address > 0).then_some(self.sip_tcp_per_address),
        };
        o.trunk_limits.messages = rate(self.sip_trunk_rate, self.sip_trunk_burst);
        o.auth_ban = callgrid_sip_edge::AuthBan {
            address_failures: self.sip_ban_address_failures,
            user_failures: self.sip_ban_user_failures,
            window: std::time::Duration::from_secs(self.sip_ban_window),
            ban: std::time::Duration::from_secs(self.sip_ban_seconds),
        };
        if let Some(p) = &self.prompts {
            o.prompts_dir = Some(p.clone());
        }
        o
    }
}

#[derive(Args)]
struct SipEdgeArgs {
    /// The router's gRPC address, and the edge's token (role edge) to show it.
    #[command(flatten)]
    client: client::ClientArgs,
    /// Directory for local state (recordings by default).
    // not `data_dir`: the token arguments' hidden `--token-data-dir` is that
    #[arg(long = "data-dir", env = "CALLGRID_DATA_DIR", default_value = "data")]
    local_dir: PathBuf,
    #[command(flatten)]
    sip: SipArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    tls: ServerTlsArgs,
    /// The routers' secrets key (64 hex digits), for tenant files whose trunk secrets are
    /// kept encrypted (`password_enc`).
    #[arg(long, env = "CALLGRID_SECRETS_KEY_FILE")]
    secrets_key_file: Option<PathBuf>,
}

async fn sip_edge(a: SipEdgeArgs) -> anyhow::Result<()> {
    if let Some(addr) = a.metrics.metrics_listen {
        a.tls.check("--metrics-listen", addr)?;
    }
    let metrics_listener = a.metrics.bind().await?;
    let router = &a.client.router;
    let bearer = a.client.token.header()?;
    let channel = client::endpoint(router, &a.client.tls)?.connect_lazy();
    let call_control =
        callgrid_proto::api::v1::call_control_client::CallControlClient::with_interceptor(
            channel.clone(),
            bearer,
        );
    let link = Arc::new(verifier::AuthedLink(call_control.clone()));
    // the tenants come from the router (docs/DECISIONS.md, "One source of configuration")
    let mut configs = call_control;
    let (changes, tenants) = edge_config::first(&mut configs).await;
    let mut options = a.sip.options(&a.local_dir);
    options.secrets_key = match &a.secrets_key_file {
        Some(path) => Some(callgrid_config::secrets::SecretsKey::read(path)?),
        None => None,
    };
    let edge = callgrid_sip_edge::SipEdge::start_with(options, tenants, link)
        .await
        .context("cannot start the sip edge")?;
    let edge = Arc::new(edge);
    let following = tokio::spawn(edge_config::follow(configs, changes, edge.clone()));
    // the edge keeps no credentials: the router says who a metrics scraper is
    let verifier = Arc::new(verifier::RouterVerifier::new(channel));
    let metrics = serve_metrics(
        metrics_listener,
        Some(edge.clone()),
        verifier,
        a.tls.http()?,
    );
    tracing::info!(sip = %edge.local_addr(), %router, "sip edge serving");
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
    if let Some(m) = metrics {
        m.abort();
    }
    following.abort();
    edge.shutdown();
    Ok(())
}

fn check_config(path: &Path) -> anyhow::Result<()> {
    let tenants = if path.is_dir() {
        callgrid_config::load_dir(path)
    } else {
        callgrid_config::load_file(path).map(|t| vec![t])
    };
    match tenants {
        Ok(ts) => {
            for t in ts {
                println!(
                    "{}: ok ({} agents, {} queues, {} numbers)",
                    t.tenant,
                    t.agents.len(),
                    t.queues.len(),
                    t.numbers.len()
                );
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

/// Options of the routing core, shared by `serve` and `router`.
#[derive(Args)]
struct RouterArgs {
    /// Directory of local state: the embedded event log (without --kafka) and snapshots.
    #[arg(long, env = "CALLGRID_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// gRPC listen address.
    #[arg(long, env = "CALLGRID_LISTEN", default_value = "127.0.0.1:7300")]
    listen: SocketAddr,
    /// Directory of tenant YAML files to load at start; without it the demo tenant is loaded.
    #[arg(long, env = "CALLGRID_TENANTS")]
    tenants: Option<PathBuf>,
    /// Do not load the demo tenant when no --tenants directory is given.
    #[arg(long)]
    no_demo: bool,
    /// What an acknowledged event survives (the embedded log; Kafka acknowledges with
    /// acks=all).
    #[arg(long, value_enum, default_value = "fsync")]
    durability: DurabilityArg,
    /// Run the clock this many times faster than real time (simulations).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Actor threads; tenants are spread over them (default: one per core).
    #[arg(long)]
    arbiters: Option<usize>,
    /// Seconds a call recovered after a restart waits for its edge before it is ended.
    #[arg(long, default_value_t = 30)]
    edge_grace_seconds: u64,
    /// Write a snapshot of the state (DATA_DIR/snapshot.bin) every this many events, so a
    /// restart replays only the events after it; 0 = never.
    #[arg(long, default_value_t = 500_000)]
    snapshot_every: u64,
    /// Networks the admin API (Admin and Access services) answers, `ADDR[/BITS],...` (P6);
    /// other addresses get PERMISSION_DENIED whatever their token.
    #[arg(long, env = "CALLGRID_ADMIN_ALLOW", default_value = "127.0.0.0/8,::1", value_parser = AllowList::parse)]
    admin_allow: AllowList,
    /// The key trunk secrets of tenant files are kept encrypted with (64 hex digits); made
    /// on the first start when missing [default: DATA_DIR/secrets.key]. Every node of a
    /// cluster (routers, SIP edges) needs the same key.
    #[arg(long, env = "CALLGRID_SECRETS_KEY_FILE")]
    secrets_key_file: Option<PathBuf>,
    /// The queueing delay (ms) above which new calls are shed (503 at the SIP edge,
    /// UNAVAILABLE at the router), measured on the I/O threads, the actor threads and the
    /// journal (docs/DECISIONS.md, "Overload"); 0 = shed only past 1,000 arrivals in progress.
    #[arg(long, env = "CALLGRID_SHED_TARGET_MS", default_value_t = 20)]
    shed_target_ms: u64,
}

impl RouterArgs {
    /// The process's load shedder, watching the current tokio runtime.
    fn shedder(&self) -> callgrid_overload::Shedder {
        let target = match self.shed_target_ms {
            0 => std::time::Duration::from_secs(86_400),
            ms => std::time::Duration::from_millis(ms),
        };
        let s = callgrid_overload::Shedder::new(callgrid_overload::ShedOptions {
            target,
            ..Default::default()
        });
        s.probe_runtime("io", callgrid_router::PROBE_RUNTIME_EVERY);
        s
    }

    /// The secrets key, made on the first start.
    fn secrets_key(&self) -> anyhow::Result<callgrid_config::secrets::SecretsKey> {
        let path = self
            .secrets_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secrets.key"));
        let (key, made) = callgrid_config::secrets::SecretsKey::read_or_create(&path)?;
        if made {
            tracing::info!(path = %path.display(), "secrets key written (mode 0600): trunk secrets are kept encrypted with it; give every node of a cluster the same key");
        }
        Ok(key)
    }
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    router: RouterArgs,
    /// Threads of the async runtime (SIP, RTP); default: one per core less one, at
    /// least one (the actor and journal threads need the rest; docs/DECISIONS.md).
    #[arg(long, env = "CALLGRID_IO_THREADS")]
    io_threads: Option<usize>,
    /// Threads of the gRPC listener's own runtime (remote edges, the admin API and the CLI);
    /// default: one per core (docs/DECISIONS.md, "Threads of `callgrid serve`").
    #[arg(long, env = "CALLGRID_GRPC_THREADS")]
    grpc_threads: Option<usize>,
    #[command(flatten)]
    projections: ProjectionArgs,
    #[command(flatten)]
    sip: SipArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    tls: ServerTlsArgs,
}

/// The projector and the supervisor service, shared by `serve` and `projector`.
#[derive(Args)]
struct ProjectionArgs {
    /// The supervisor service (live views: snapshot and push stream; history reads) listens
    /// here.
    #[arg(
        long,
        env = "CALLGRID_SUPERVISOR_LISTEN",
        default_value = "127.0.0.1:7310"
    )]
    supervisor_listen: SocketAddr,
    /// Do not run the projector and the supervisor service (serve only).
    #[arg(long)]
    no_projector: bool,
    /// Most events the projector projects and writes in one batch.
    #[arg(long, default_value_t = 5_000)]
    projector_batch: usize,
    /// Least milliseconds between two writes of a partition's projections: rows changed
    /// meanwhile are written once. Live views are pushed before they are written, so this
    /// only bounds how far history and the checkpoint trail the push.
    #[arg(long, env = "CALLGRID_PROJECTOR_WRITE_EVERY_MS", default_value_t = 500)]
    projector_write_every_ms: u64,
    /// Nice value of the projector's threads (0-19): above 0, on a node whose cores are all
    /// busy, calls get the CPU first and the live views fall behind, then catch up; 0 (the
    /// default) gives the projector the calls' priority (docs/DECISIONS.md, "The router's
    /// gRPC listener has a runtime of its own").
    #[arg(long, env = "CALLGRID_PROJECTOR_NICE", default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..=19))]
    projector_nice: i32,
}

impl ProjectionArgs {
    fn projector_options(&self) -> ProjectorOptions {
        ProjectorOptions {
            batch: self.projector_batch.max(1),
            write_every: std::time::Duration::from_millis(self.projector_write_every_ms),
            nice: self.projector_nice,
            ..ProjectorOptions::default()
        }
    }

    /// The embedded projection store in `data_dir`.
    fn open_store(data_dir: &Path) -> anyhow::Result<Arc<dyn ProjectionStore>> {
        let path = data_dir.join("projections.sqlite");
        let store = SqliteStore::open(&path)
            .with_context(|| format!("cannot open the projection store {}", path.display()))?;
        Ok(Arc::new(store))
    }

    /// Starts the projector on `log` and the supervisor service (its users sign in with
    /// `access`; TLS as `tls` says); `None` with --no-projector. With the process's load
    /// `shedder` (`serve`), the projector rests while calls wait.
    async fn start(
        &self,
        log: Arc<dyn EventLog>,
        store: Arc<dyn ProjectionStore>,
        access: Arc<Access>,
        tls: &ServerTlsArgs,
        shedder: Option<callgrid_overload::Shedder>,
    ) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
        if self.no_projector {
            return Ok(None);
        }
        tls.check("--supervisor-listen", self.supervisor_listen)?;
        let https = tls.http()?;
        let listener = tokio::net::TcpListener::bind(self.supervisor_listen)
            .await
            .with_context(|| format!("cannot listen on {}", self.supervisor_listen))?;
        let mut options = self.projector_options();
        options.busy = shedder.map(|s| callgrid_projector::Busy::new(move || s.behind()));
        let projector = Projector::new(log, store, options);
        let supervisor = callgrid_supervisor::Supervisor::new(
            projector.clone(),
            access.clone(),
            callgrid_supervisor::SupervisorOptions {
                secure_cookies: https.is_some(),
                ..callgrid_supervisor::SupervisorOptions::default()
            },
        );
        // browsers sign in here: session cookies are accepted; no admin routes
        let gate = Gate::new(access, callgrid_supervisor::policy, AllowList::any(), true);
        let app = supervisor.router(&gate);
        tracing::info!(supervisor = %listener.local_addr()?, "supervisor service listening");
        Ok(Some(tokio::spawn(async move {
            tokio::select! {
                r = projector.run_on_own_thread() => {
                    if let Err(e) = r {
                        tracing::error!(error = %e, "projector stopped");
                    }
                }
                () = callgrid_http::serve(
                    listener,
                    app,
                    ServerTlsArgs::server("supervisor", https),
                    Arc::default(),
                    std::future::pending(),
                ) => {}
            }
        })))
    }
}

#[derive(Args)]
struct ProjectorArgs {
    /// Kafka brokers of the event log; without it, the embedded log in DATA_DIR (then
    /// `callgrid serve` must not be running on it: it projects in process).
    #[arg(long, env = "CALLGRID_KAFKA")]
    kafka: Option<String>,
    #[command(flatten)]
    kafka_client: KafkaClientArgs,
    /// Directory of the embedded projection store (projections.sqlite) and, without --kafka,
    /// of the embedded event log.
    #[arg(long, env = "CALLGRID_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Drop every projection and rebuild it from the log, with a progress bar; then exit.
    #[arg(long)]
    rebuild: bool,
    /// ScyllaDB contact points (`host:port[,host:port...]`): the projections go there instead
    /// of DATA_DIR/projections.sqlite. Keep --projector-batch near 500 (one logged batch of
    /// live views per projector batch).
    #[arg(long, env = "CALLGRID_SCYLLA", value_delimiter = ',')]
    scylla: Vec<String>,
    /// Keyspace of the projections on ScyllaDB (created if missing).
    #[arg(long, default_value = "callgrid")]
    scylla_keyspace: String,
    /// Replication map of that keyspace when it is created.
    #[arg(
        long,
        default_value = "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}"
    )]
    scylla_replication: String,
    #[command(flatten)]
    projections: ProjectionArgs,
    #[command(flatten)]
    tls: ServerTlsArgs,
}

#[derive(Args)]
struct RouterCmdArgs {
    #[command(flatten)]
    router: RouterArgs,
    /// Kafka brokers (`host:port[,host:port...]`): the event log is the topic
    /// `callgrid.events.v1` there (created if missing). Without it, the embedded log in
    /// DATA_DIR.
    #[arg(long, env = "CALLGRID_KAFKA")]
    kafka: Option<String>,
    /// Replication factor of the events topic when this router creates it on Kafka.
    #[arg(long, default_value_t = 1)]
    kafka_replication: i32,
    #[command(flatten)]
    kafka_client: KafkaClientArgs,
    /// Partitions of the events topic when this router creates it (tenants are spread over
    /// them by key).
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    /// The SIP digest realm of the edges: agents' passwords are kept as HA1s for it.
    #[arg(long, default_value = "callgrid")]
    sip_realm: String,
    #[command(flatten)]
    tls: ServerTlsArgs,
}

/// The async runtime's threads for `serve` when not given: every core but one, which the
/// router's actor thread(s) and the journal writer use. On 2 cores one I/O thread did 15 %
/// more calls per CPU-second than two (fewer cross-thread wake-ups; docs/BENCHMARKS.md).
fn default_io_threads() -> usize {
    cores().saturating_sub(1).max(1)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `work` on a multi-thread runtime of its own (`threads` workers named `name`) and
/// resolves when it ends.
async fn on_own_runtime(
    name: &'static str,
    threads: usize,
    work: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name(name)
        .enable_all()
        .build()
        .with_context(|| format!("cannot start the {name} runtime"))?;
    let (done, ended) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            runtime.block_on(work);
            let _ = done.send(());
        })
        .with_context(|| format!("cannot start the {name} thread"))?;
    ended
        .await
        .map_err(|_| anyhow::anyhow!("the {name} thread ended without finishing its work"))
}

/// The router's call-control service as the SIP edge's link to it, in one process (the
/// edge of the same process is trusted as `edge:local`).
struct InProcess(grpc::CallControlSvc, Principal);

impl InProcess {
    fn new(svc: grpc::CallControlSvc) -> InProcess {
        InProcess(
            svc,
            Principal {
                id: Arc::from("edge:local"),
                role: Role::Edge,
                tenant: None,
                agent: None,
                session: None,
            },
        )
    }
}

#[async_trait::async_trait]
impl callgrid_sip_edge::RouterLink for InProcess {
    async fn call(
        &self,
        reports: tokio_stream::wrappers::ReceiverStream<callgrid_proto::api::v1::EdgeReport>,
    ) -> Result<callgrid_sip_edge::Instructions, tonic::Status> {
        use tokio_stream::StreamExt;
        self.0.open(reports.map(Ok), &self.1).await
    }

    async fn originations(&self) -> Result<callgrid_sip_edge::Originations, tonic::Status> {
        Ok(self.0.subscribe(self.1.clone()))
    }
}

/// The credentials in `log`'s access topic.
async fn open_access(log: &Arc<dyn EventLog>) -> anyhow::Result<Arc<Access>> {
    Access::open(log.clone(), AccessOptions::default())
        .await
        .context("cannot read the access topic of the event log")
}

/// Makes DATA_DIR/admin.token on a first start (no live platform admin token yet).
async fn first_admin_token(access: &Access, data_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let path = data_dir.join("admin.token");
    if access.ensure_admin_token(&path).await? {
        tracing::info!(path = %path.display(), "platform admin token written (mode 0600): callgrid commands on this machine read it, or set CALLGRID_TOKEN");
    }
    Ok(())
}

/// The embedded event log in `data_dir`.
async fn open_embedded_log(a: &RouterArgs) -> anyhow::Result<Arc<dyn EventLog>> {
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("cannot create data directory {}", a.data_dir.display()))?;
    let db = a.data_dir.join("events.sqlite");
    let options = SqliteLogOptions {
        durability: match a.durability {
            DurabilityArg::Fsync => Durability::Fsync,
            DurabilityArg::Process => Durability::ProcessCrashSafe,
        },
        ..SqliteLogOptions::default()
    };
    let log = SqliteLog::open_async(db.clone(), options)
        .await
        .with_context(|| format!("cannot open event log {}", db.display()))?;
    Ok(Arc::new(log))
}

/// Opens the router on `log` (recovery included) and loads the tenant files (or the demo
/// tenant).
async fn open_router(
    a: &RouterArgs,
    log: Arc<dyn EventLog>,
    partitions: u32,
    sip_realm: &str,
    shedder: Option<callgrid_overload::Shedder>,
) -> anyhow::Result<Arc<Router>> {
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("cannot create data directory {}", a.data_dir.display()))?;
    let mut opts = RouterOptions {
        partitions,
        sip_realm: sip_realm.to_owned(),
        secrets_key: Some(a.secrets_key()?),
        clock: Clock::scaled(a.time_scale),
        edge_grace_ms: a.edge_grace_seconds * 1000,
        snapshot: (a.snapshot_every > 0).then(|| SnapshotPolicy {
            path: a.data_dir.join("snapshot.bin"),
            every_events: a.snapshot_every,
            interval: std::time::Duration::from_secs(5),
        }),
        shedder: Some(shedder.unwrap_or_else(|| a.shedder())),
        ..RouterOptions::default()
    };
    if let Some(n) = a.arbiters {
        opts.arbiters = n;
    }
    let router = Router::open(log, opts).await?;
    // tenant files: load (a changed file becomes a new configuration version)
    let files: Vec<(String, String)> = match &a.tenants {
        Some(dir) => {
            // validate them all first, reporting every error of every file
            callgrid_config::load_dir(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
                .collect();
            names.sort();
            names
                .into_iter()
                .map(|p| Ok((p.display().to_string(), std::fs::read_to_string(&p)?)))
                .collect::<std::io::Result<_>>()?
        }
        None if a.no_demo => vec![],
        None => vec![(
            "demo.yaml".to_string(),
            callgrid_config::DEMO_TENANT_YAML.to_string(),
        )],
    };
    for (name, yaml) in files {
        let (tenant, version) = router
            .load_tenant(&name, &yaml)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        tracing::info!(%tenant, version, file = %name, "tenant ready");
    }
    Ok(router)
}

/// Waits for ctrl-c (or SIGINT).
async fn interrupted() {
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
}

async fn router_cmd(c: RouterCmdArgs) -> anyhow::Result<()> {
    let a = &c.router;
    c.tls.check("--listen", a.listen)?;
    let grpc_tls = c.tls.grpc()?;
    // listen first: a taken address fails before anything is written
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    let started = std::time::Instant::now();
    let log: Arc<dyn EventLog> = match &c.kafka {
        Some(brokers) => kafka_log(brokers, c.kafka_replication, &c.kafka_client)?,
        None => open_embedded_log(a).await?,
    };
    let access = open_access(&log).await?;
    first_admin_token(&access, &a.data_dir).await?;
    let router = open_router(a, log, c.partitions, &c.sip_realm, None).await?;
    tracing::info!(
        listen = %a.listen,
        log = c.kafka.as_deref().unwrap_or("embedded"),
        data_dir = %a.data_dir.display(),
        ready_ms = started.elapsed().as_millis() as u64,
        "callgrid router serving"
    );
    let gate = Gate::new(access.clone(), grpc::policy, a.admin_allow.clone(), false);
    let options = ServerTlsArgs::server("grpc", grpc_tls);
    grpc::serve_on(router, access, &gate, listener, options, interrupted()).await;
    Ok(())
}

/// How to reach Kafka brokers that require TLS or SASL (`router`, `projector`).
#[derive(Args, Clone)]
struct KafkaClientArgs {
    /// A librdkafka property for every Kafka client, `KEY=VALUE` (repeat): e.g.
    /// `security.protocol=sasl_ssl`, `ssl.ca.location=ca.pem`, `sasl.mechanisms=SCRAM-SHA-512`,
    /// `sasl.username=callgrid`. Passwords go in --kafka-password-file, not here.
    #[arg(long = "kafka-option", value_parser = parse_key_value)]
    kafka_options: Vec<(String, String)>,
    /// A file holding the SASL password (`sasl.password`), kept off the command line.
    #[arg(long, env = "CALLGRID_KAFKA_PASSWORD_FILE")]
    kafka_password_file: Option<PathBuf>,
}

impl KafkaClientArgs {
    /// The librdkafka properties, with the password read from its file.
    fn config(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut c = self.kafka_options.clone();
        if c.iter().any(|(k, _)| k == "sasl.password") {
            anyhow::bail!("give the SASL password with --kafka-password-file, not --kafka-option");
        }
        if let Some(f) = &self.kafka_password_file {
            let p = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?;
            c.push((
                "sasl.password".into(),
                p.trim_end_matches(['\n', '\r']).to_owned(),
            ));
        }
        Ok(c)
    }
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))?;
    if k.trim().is_empty() {
        return Err(format!("expected KEY=VALUE, got {s:?}"));
    }
    Ok((k.trim().to_owned(), v.to_owned()))
}

/// A Kafka event log.
fn kafka_log(
    brokers: &str,
    replication: i32,
    client: &KafkaClientArgs,
) -> anyhow::Result<Arc<dyn EventLog>> {
    let options = KafkaLogOptions {
        replication,
        client_config: client.config()?,
        ..KafkaLogOptions::new(brokers.to_owned())
    };
    Ok(Arc::new(KafkaLog::new(options).with_context(|| {
        format!("cannot reach kafka brokers {brokers}")
    })?))
}

async fn projector_cmd(c: ProjectorArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&c.data_dir)
        .with_context(|| format!("cannot create data directory {}", c.data_dir.display()))?;
    let log: Arc<dyn EventLog> = match &c.kafka {
        Some(brokers) => kafka_log(brokers, 1, &c.kafka_client)?,
        None => {
            let db = c.data_dir.join("events.sqlite");
            if !db.exists() {
                anyhow::bail!("no event log at {} (and no --kafka)", db.display());
            }
            Arc::new(
                SqliteLog::open_async(db.clone(), SqliteLogOptions::default())
                    .await
                    .with_context(|| format!("cannot open event log {}", db.display()))?,
            )
        }
    };
    let store: Arc<dyn ProjectionStore> = if c.scylla.is_empty() {
        ProjectionArgs::open_store(&c.data_dir)?
    } else {
        let options = ScyllaOptions {
            nodes: c.scylla.clone(),
            keyspace: c.scylla_keyspace.clone(),
            replication: c.scylla_replication.clone(),
        };
        Arc::new(
            ScyllaStore::connect(&options)
                .await
                .with_context(|| format!("cannot use ScyllaDB at {}", c.scylla.join(",")))?,
        )
    };
    if c.rebuild {
        let projector = Projector::new(log.clone(), store, c.projections.projector_options());
        let partitions = log
            .partition_count(EVENTS_TOPIC)
            .await
            .context("the log has no events topic")?;
        let mut ends = Vec::new();
        for p in 0..partitions {
            ends.push(log.end_offset(EVENTS_TOPIC, p).await?);
        }
        let total: u64 = ends.iter().sum();
        eprintln!("rebuilding every projection from {total} events in {partitions} partitions");
        projector.clear().await?;
        let started = std::time::Instant::now();
        let bar = tokio::spawn(callgrid_projector::print_progress(
            projector.progress(),
            ends,
            std::time::Duration::from_millis(200),
        ));
        let projected = projector.catch_up().await?;
        let _ = bar.await;
        let secs = started.elapsed().as_secs_f64();
        let skipped = projector.progress().borrow().skipped;
        eprintln!(
            "rebuilt: {projected} events in {secs:.1} s ({:.0} events/s), {skipped} not projectable",
            projected as f64 / secs.max(1e-3)
        );
        return Ok(());
    }
    let access = open_access(&log).await?;
    let Some(task) = c
        .projections
        .start(log, store, access, &c.tls, None)
        .await?
    else {
        anyhow::bail!("--no-projector leaves the projector nothing to do");
    };
    tracing::info!(
        log = c.kafka.as_deref().unwrap_or("embedded"),
        "callgrid projector running"
    );
    tokio::select! {
        _ = task => anyhow::bail!("the projector stopped"),
        () = interrupted() => Ok(()),
    }
}

async fn serve(s: ServeArgs) -> anyhow::Result<()> {
    let a = &s.router;
    s.tls.check("--listen", a.listen)?;
    if let Some(addr) = s.metrics.metrics_listen {
        s.tls.check("--metrics-listen", addr)?;
    }
    let grpc_tls = s.tls.grpc()?;
    // listen first: a taken address fails before anything is written
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    let metrics_listener = s.metrics.bind().await?;
    let started = std::time::Instant::now();
    let log = open_embedded_log(a).await?;
    let access = open_access(&log).await?;
    first_admin_token(&access, &a.data_dir).await?;
    // one shedder for the process: the edge sheds new INVITEs at its intake from the delays
    // of the I/O runtime, the actor threads and the journal (docs/DECISIONS.md, "Overload")
    let shedder = a.shedder();
    let grpc_shedder = shedder.clone();
    let router = open_router(
        a,
        log.clone(),
        RouterOptions::default().partitions,
        &s.sip.sip_realm,
        Some(shedder.clone()),
    )
    .await?;
    let projections = match s.projections.no_projector {
        true => None,
        false => {
            let store = ProjectionArgs::open_store(&a.data_dir)?;
            s.projections
                .start(log, store, access.clone(), &s.tls, Some(shedder.clone()))
                .await?
        }
    };
    tracing::info!(
        listen = %a.listen,
        data_dir = %a.data_dir.display(),
        ready_ms = started.elapsed().as_millis() as u64,
        "callgrid serving"
    );
    let edge = if s.sip.no_sip {
        None
    } else {
        // the edge and the router share this process: the edge opens call streams on the
        // router's call-control service directly (docs/DECISIONS.md, "In-process call control")
        let link = Arc::new(InProcess::new(grpc::CallControlSvc::new(router.clone())));
        let mut options = s.sip.options(&a.data_dir);
        options.secrets_key = Some(a.secrets_key()?);
        options.shedder = Some(shedder);
        // the tenants the router has (from the log and the files): one source of
        // configuration (docs/DECISIONS.md)
        let tenants = edge_config::from_router(&router)?;
        let edge = callgrid_sip_edge::SipEdge::start_with(options, tenants, link)
            .await
            .context("cannot start the sip edge")?;
        tracing::info!(sip = %edge.local_addr(), "sip edge ready");
        let edge = Arc::new(edge);
        // a tenant loaded later (Admin LoadTenant) reaches the edge too: its numbers, trunks
        // and agents' SIP passwords apply to the next call or REGISTER, no restart
        let for_loads = edge.clone();
        router.on_tenant_loaded(move |file| for_loads.upsert_tenant(file.clone()));
        Some(edge)
    };
    let metrics = serve_metrics(
        metrics_listener,
        edge.clone(),
        access.clone(),
        s.tls.http()?,
    );
    let gate = Gate::new(access.clone(), grpc::policy, a.admin_allow.clone(), false);
    let options = ServerTlsArgs::server("grpc", grpc_tls);
    // the gRPC listener on a runtime of its own: its HTTP/2 work never queues behind the SIP
    // edge's, and a refusal waits for no more than its own connections' frames
    // (docs/DECISIONS.md, "Threads of `callgrid serve`")
    let listener = listener.into_std()?;
    on_own_runtime(
        "callgrid-grpc",
        s.grpc_threads.unwrap_or_else(cores),
        async move {
            grpc_shedder.probe_runtime("grpc", callgrid_router::PROBE_RUNTIME_EVERY);
            match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => {
                    grpc::serve_on(router, access, &gate, listener, options, interrupted()).await;
                }
                Err(e) => tracing::error!(error = %e, "cannot serve gRPC"),
            }
        },
    )
    .await?;
    if let Some(m) = metrics {
        m.abort();
    }
    if let Some(p) = projections {
        p.abort();
    }
    if let Some(edge) = &edge {
        edge.shutdown();
    }
    drop(edge);
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every subcommand's arguments are consistent (unique names, valid defaults): clap checks
    /// them only when a debug build parses that subcommand, so `callgrid sip-edge` once
    /// refused to start.
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
