//! The call-centre simulator against Erlang C: the domain's state machines in virtual time
//! (Poisson arrivals, exponential talk, longest idle, no abandonment by default).
//!
//! ```text
//! erlang-sim --erlangs 10 --talk-s 180 --sl-s 20 --agents 11,12,13,14,15 --calls 100000
//! ```

use std::time::Instant;

use callgrid_domain::Strategy;
use callgrid_loadtest::{erlang, machine, sim};
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10.0)]
    erlangs: f64,
    #[arg(long, default_value_t = 180.0)]
    talk_s: f64,
    #[arg(long, default_value_t = 20.0)]
    sl_s: f64,
    #[arg(long, value_delimiter = ',', default_value = "11,12,13,14,15")]
    agents: Vec<u32>,
    #[arg(long, default_value_t = 100_000)]
    calls: u64,
    /// Mean patience (s); none = no abandonment (the Erlang C model).
    #[arg(long)]
    patience_s: Option<f64>,
    #[arg(long, default_value = "longest_idle")]
    strategy: String,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let strategy = Strategy::from_name(&a.strategy)
        .ok_or_else(|| anyhow::anyhow!("unknown strategy {}", a.strategy))?;
    println!("{}", machine::describe());
    println!(
        "{} Erlangs, mean talk {} s, threshold {} s, {} calls per size, strategy {}",
        a.erlangs, a.talk_s, a.sl_s, a.calls, a.strategy
    );
    println!("agents  simulated SL  Erlang C SL  diff   ASA sim  ASA Erlang C  abandoned  events    sim time");
    for n in &a.agents {
        let started = Instant::now();
        let r = sim::run(&sim::SimParams {
            agents: *n,
            erlangs: a.erlangs,
            mean_talk_s: a.talk_s,
            sl_threshold_s: a.sl_s,
            calls: a.calls,
            ring_delay_ms: 0,
            mean_patience_s: a.patience_s,
            strategy,
            seed: a.seed + u64::from(*n),
        });
        let ec = 100.0 * erlang::service_level(*n, a.erlangs, a.talk_s, a.sl_s);
        println!(
            "{n:>6}  {:>10.1} %  {ec:>9.1} %  {:>+5.1}  {:>6.1} s  {:>10.1} s  {:>9}  {:>8}  {:>6.2} s",
            r.service_level_pct,
            r.service_level_pct - ec,
            r.asa_s,
            erlang::asa(*n, a.erlangs, a.talk_s),
            r.abandoned,
            r.events,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
