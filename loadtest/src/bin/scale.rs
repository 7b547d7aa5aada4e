//! Scale and restart measurements of `callgrid serve`.
//!
//! ```text
//! scale tenants --dir /tmp/scale-tenants --tenants 500 --agents 200 --queues 20
//! scale load    --callgrid target/release/callgrid --data-dir /tmp/scale --tenants-dir /tmp/scale-tenants
//! scale restart --callgrid target/release/callgrid --data-dir /tmp/lt
//! ```
//! `load` starts callgrid with the tenant files and prints the time to serve and the resident
//! memory; `restart` starts callgrid on an existing data directory and prints how long until
//! it serves again and how many events it replayed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use callgrid_loadtest::{harness, machine};
use callgrid_proto::api::v1 as api;
use callgrid_testkit::Child;
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write generated tenant files.
    Tenants {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 500)]
        tenants: usize,
        #[arg(long, default_value_t = 200)]
        agents: usize,
        #[arg(long, default_value_t = 20)]
        queues: usize,
        #[arg(long, default_value_t = 20)]
        agents_per_queue: usize,
    },
    /// Start callgrid with a directory of tenants; print time to serve and RSS.
    Load {
        #[arg(long)]
        callgrid: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        tenants_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:7390")]
        listen: String,
    },
    /// Start callgrid on an existing data directory; print time until it serves again.
    Restart {
        #[arg(long)]
        callgrid: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:7390")]
        listen: String,
    },
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `callgrid serve` with `args`, killed when dropped (on every exit path).
fn spawn(callgrid: &Path, args: &[&str]) -> anyhow::Result<Child> {
    Child::spawn(
        Command::new(callgrid)
            .arg("serve")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    )
    .with_context(|| format!("cannot start {}", callgrid.display()))
}

/// Polls until the router of `data_dir` answers Stats with at least `tenants` tenants.
async fn until_serving(
    listen: &str,
    data_dir: &Path,
    tenants: u32,
    limit: Duration,
) -> anyhow::Result<api::StatsResponse> {
    let deadline = Instant::now() + limit;
    loop {
        let channel = match harness::admin_token(data_dir) {
            Some(token) => harness::connect(&format!("http://{listen}"), &token)
                .await
                .ok(),
            None => None,
        };
        if let Some(ch) = channel {
            let mut admin = api::admin_client::AdminClient::new(ch);
            if let Ok(s) = admin
                .stats(api::StatsRequest {
                    reset_latency: false,
                })
                .await
            {
                let s = s.into_inner();
                if s.tenants >= tenants {
                    return Ok(s);
                }
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "not serving after {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Tenants {
            dir,
            tenants,
            agents,
            queues,
            agents_per_queue,
        } => {
            std::fs::create_dir_all(&dir)?;
            for i in 0..tenants {
                let t = callgrid_config::generate_tenant(
                    &format!("t{i:04}"),
                    agents,
                    queues,
                    agents_per_queue,
                    i as u64 + 1,
                );
                std::fs::write(
                    dir.join(format!("t{i:04}.yaml")),
                    callgrid_config::to_yaml(&t),
                )?;
            }
            println!(
                "wrote {tenants} tenants x {agents} agents, {queues} queues to {}",
                dir.display()
            );
        }
        Cmd::Load {
            callgrid,
            data_dir,
            tenants_dir,
            listen,
        } => {
            let n = std::fs::read_dir(&tenants_dir)?.count() as u32;
            println!("{}", machine::describe());
            let started = Instant::now();
            let serve = spawn(
                &callgrid,
                &[
                    "--data-dir",
                    path(&data_dir)?,
                    "--tenants",
                    path(&tenants_dir)?,
                    "--listen",
                    &listen,
                ],
            )?;
            until_serving(&listen, &data_dir, n, Duration::from_secs(600)).await?;
            let ready = started.elapsed();
            let token = harness::admin_token(&data_dir).context("no admin token")?;
            let mut admin = api::admin_client::AdminClient::new(
                harness::connect(&format!("http://{listen}"), &token).await?,
            );
            let list = admin
                .list_tenants(api::ListTenantsRequest {})
                .await?
                .into_inner();
            let agents: u32 = list.tenants.iter().map(|t| t.agents).sum();
            let queues: u32 = list.tenants.iter().map(|t| t.queues).sum();
            tokio::time::sleep(Duration::from_secs(2)).await;
            println!(
                "loaded {} tenants, {agents} agents, {queues} queues in {:.1} s; RSS {:.0} MiB",
                list.tenants.len(),
                ready.as_secs_f64(),
                rss_mib(serve.id())
            );
        }
        Cmd::Restart {
            callgrid,
            data_dir,
            listen,
        } => {
            println!("{}", machine::describe());
            let started = Instant::now();
            let serve = spawn(
                &callgrid,
                &[
                    "--data-dir",
                    path(&data_dir)?,
                    "--no-demo",
                    "--listen",
                    &listen,
                ],
            )?;
            let s = until_serving(&listen, &data_dir, 1, Duration::from_secs(600)).await?;
            let ready = started.elapsed();
            println!(
                "serving again {:.2} s after start: {} events replayed in {} ms, {} tenants; RSS {:.0} MiB",
                ready.as_secs_f64(),
                s.events_recovered,
                s.recovery_ms,
                s.tenants,
                rss_mib(serve.id())
            );
        }
    }
    Ok(())
}

fn path(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("path is not UTF-8")
}
