//! `callgrid`: the single binary.
//!
//! - `callgrid serve`: everything on one node, embedded storage in `--data-dir`;
//! - `callgrid check-config FILE|DIR`: validate tenant files and print every error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use callgrid_eventlog::{Durability, SqliteLog, SqliteLogOptions};
use callgrid_router::clock::Clock;
use callgrid_router::snapshot::SnapshotPolicy;
use callgrid_router::{grpc, Router, RouterOptions};
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
    /// Validate tenant configuration files (a file or a directory) and print every error.
    CheckConfig {
        /// A YAML file or a directory of them.
        path: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Cmd::CheckConfig { path } => check_config(&path),
        Cmd::Serve(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("callgrid-io")
            .build()?
            .block_on(serve(args)),
    }
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

#[derive(Args)]
struct ServeArgs {
    /// Directory of the embedded event log and state.
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
    /// What an acknowledged event survives.
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
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    // listen first: a taken address fails before anything is written
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
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
    let mut opts = RouterOptions {
        clock: Clock::scaled(a.time_scale),
        edge_grace_ms: a.edge_grace_seconds * 1000,
        snapshot: (a.snapshot_every > 0).then(|| SnapshotPolicy {
            path: a.data_dir.join("snapshot.bin"),
            every_events: a.snapshot_every,
            interval: std::time::Duration::from_secs(5),
        }),
        ..RouterOptions::default()
    };
    if let Some(n) = a.arbiters {
        opts.arbiters = n;
    }
    let started = std::time::Instant::now();
    let router = Router::open(Arc::new(log), opts).await?;
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
    tracing::info!(
        listen = %a.listen,
        data_dir = %a.data_dir.display(),
        ready_ms = started.elapsed().as_millis() as u64,
        "callgrid serving"
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    };
    grpc::serve_on(router, listener, shutdown).await?;
    Ok(())
}
