//! The dialer's pacing in virtual time (issue 19): progressive 1:1, a fixed dial level, the
//! VICIdial-like adaptive level and callgrid's predictive pacing, side by side on the same
//! seeds, each at its best setting among those whose every seed stays within the target
//! abandonment.
//!
//! ```text
//! dialer-sim --agents 50 --answer-rate 0.3 --talk-s 120 --wrapup-s 10 --hours 8 --seeds 20
//! ```

use std::time::Instant;

use callgrid_dialer_core::{Adaptive, Pacer, Predictive, Progressive, Ratio};
use callgrid_loadtest::dialsim::{self, DialParams, DialResult};
use callgrid_loadtest::machine;
use clap::Parser;

#[derive(Parser, Clone)]
struct Args {
    /// Agents on the campaign.
    #[arg(long, default_value_t = 50)]
    agents: u32,
    /// Share of dialled numbers that answer.
    #[arg(long, default_value_t = 0.3)]
    answer_rate: f64,
    /// Mean talk time (s, exponential).
    #[arg(long, default_value_t = 120.0)]
    talk_s: f64,
    /// Wrap-up after each call (s).
    #[arg(long, default_value_t = 10.0)]
    wrapup_s: f64,
    /// Ring time of answered calls, MIN-MAX seconds (uniform).
    #[arg(long, default_value = "4-16")]
    ring_answered_s: String,
    /// No-answer timeout (s).
    #[arg(long, default_value_t = 20.0)]
    no_answer_s: f64,
    /// An answered call waits this long for an agent before it is abandoned (s).
    #[arg(long, default_value_t = 2.0)]
    grace_s: f64,
    /// Length of the day (h).
    #[arg(long, default_value_t = 8.0)]
    hours: f64,
    /// Seeds (days) per setting.
    #[arg(long, default_value_t = 20)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Abandonment limit (%): a setting counts only if every seed stays within it.
    #[arg(long, default_value_t = 3.0)]
    target_abandon_pct: f64,
    /// The predictive pacer's threshold gain (per answered call), for experiments.
    #[arg(long, default_value_t = 0.3)]
    predictive_gain: f64,
    /// What the predictive pacer's threshold steers abandonment to, as a share of the target.
    #[arg(long, default_value_t = 0.85)]
    predictive_aim: f64,
    /// Print a JSON array instead of the table.
    #[arg(long)]
    json: bool,
}

/// One algorithm at one setting over every seed.
struct Row {
    algorithm: &'static str,
    setting: String,
    days: Vec<DialResult>,
}

impl Row {
    fn mean(&self, f: impl Fn(&DialResult) -> f64) -> f64 {
        self.days.iter().map(&f).sum::<f64>() / self.days.len().max(1) as f64
    }
    fn max(&self, f: impl Fn(&DialResult) -> f64) -> f64 {
        self.days.iter().map(f).fold(0.0, f64::max)
    }
    fn within(&self, target: f64) -> bool {
        self.days.iter().all(|d| d.abandon_pct <= target)
    }
}

fn days(a: &Args, make: &(dyn Fn() -> Box<dyn Pacer> + Sync)) -> Vec<DialResult> {
    let (lo, hi) = a
        .ring_answered_s
        .split_once('-')
        .and_then(|(l, h)| Some((l.trim().parse().ok()?, h.trim().parse().ok()?)))
        .unwrap_or((4.0, 16.0));
    let seeds: Vec<u64> = (a.seed..a.seed + a.seeds).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = seeds.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = seeds
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|seed| {
                            let p = DialParams {
                                agents: a.agents,
                                answer_rate: a.answer_rate,
                                talk_s: a.talk_s,
                                wrapup_s: a.wrapup_s,
                                ring_answered_s: (lo, hi),
                                no_answer_s: a.no_answer_s,
                                grace_s: a.grace_s,
                                hours: a.hours,
                                seed: *seed,
                            };
                            dialsim::run(&p, make().as_mut())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a simulation thread"))
            .collect()
    })
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if !(0.0..=1.0).contains(&a.answer_rate) || a.agents == 0 || a.seeds == 0 || a.hours <= 0.0 {
        anyhow::bail!("--answer-rate must be within 0-1, --agents, --seeds and --hours above 0");
    }
    if !a.ring_answered_s.contains('-') {
        anyhow::bail!("--ring-answered-s is MIN-MAX seconds, e.g. 4-16");
    }
    let started = Instant::now();
    let target = a.target_abandon_pct;
    let grace_ms = (a.grace_s * 1_000.0) as u64;
    let (gain, aim) = (a.predictive_gain, a.predictive_aim);
    let mut rows = Vec::new();

    rows.push(Row {
        algorithm: "progressive",
        setting: "1:1".into(),
        days: days(&a, &|| Box::new(Progressive)),
    });

    // the fixed level: the highest (0.05 steps) whose every seed stays within the target
    let (mut lo, mut hi) = (20u32, 60u32); // in 0.05 steps: 1.00 .. 3.00
    let mut best_ratio = None;
    while lo <= hi {
        let mid = (lo + hi) / 2;
        let level = f64::from(mid) * 0.05;
        let row = Row {
            algorithm: "ratio",
            setting: format!("level {level:.2}"),
            days: days(&a, &move || Box::new(Ratio { level })),
        };
        if row.within(target) {
            best_ratio = Some(row);
            lo = mid + 1;
        } else {
            hi = mid.saturating_sub(1);
            if mid == 0 {
                break;
            }
        }
    }
    rows.extend(best_ratio);

    // the VICIdial-like baseline: its step and interval searched, the best kept (or, when
    // none stays within the target, the one that comes nearest, marked as over it)
    let mut best_adaptive: Option<Row> = None;
    let mut nearest_adaptive: Option<Row> = None;
    // (its "Adaptive Dropped Percentage" searched too, at and below the limit, as an
    // operator sets it: at the limit itself its level hovers around it and some days end above)
    let settings = [3.0, 2.5, 2.0, 1.5, 1.0]
        .into_iter()
        .filter(|drop| *drop <= target)
        .flat_map(|drop| {
            [0.05, 0.1, 0.2].into_iter().flat_map(move |step| {
                [5u64, 15, 30].map(move |interval_s| (drop, step, interval_s))
            })
        });
    for (drop, step, interval_s) in settings {
        let row = Row {
            algorithm: "vicidial_adapt_average",
            setting: format!("drop {drop} %, step {step}, {interval_s} s"),
            days: days(&a, &move || {
                Box::new(Adaptive::new(step, interval_s * 1_000, drop / 100.0))
            }),
        };
        let occ = |r: &Row| r.mean(|d| d.occupancy_pct);
        let worst = |r: &Row| r.max(|d| d.abandon_pct);
        if row.within(target) {
            if best_adaptive.as_ref().is_none_or(|b| occ(&row) > occ(b)) {
                best_adaptive = Some(row);
            }
        } else if nearest_adaptive
            .as_ref()
            .is_none_or(|b| worst(&row) < worst(b))
        {
            nearest_adaptive = Some(row);
        }
    }
    rows.extend(best_adaptive.or(nearest_adaptive));

    rows.push(Row {
        algorithm: "callgrid_predictive",
        setting: format!("target {target} %"),
        days: days(&a, &move || {
            let mut p = Predictive::new(target / 100.0, grace_ms);
            p.gain = gain;
            p.aim = p.target * aim;
            p.threshold = p.aim;
            Box::new(p)
        }),
    });

    if a.json {
        let out: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "algorithm": r.algorithm,
                    "setting": r.setting,
                    "occupancy_pct": r.mean(|d| d.occupancy_pct),
                    "abandon_pct": r.mean(|d| d.abandon_pct),
                    "abandon_pct_max": r.max(|d| d.abandon_pct),
                    "contacts_per_agent_hour": r.mean(|d| d.contacts_per_agent_hour),
                    "seeds": r.days.len(),
                    "within_target_every_seed": r.within(target),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{}", machine::describe());
    println!(
        "{} agents, answer rate {}, talk {} s (exponential), wrap-up {} s, ring when answered {} s, no answer {} s, grace {} s, {} h, seeds {}..{}, target {} %",
        a.agents,
        a.answer_rate,
        a.talk_s,
        a.wrapup_s,
        a.ring_answered_s,
        a.no_answer_s,
        a.grace_s,
        a.hours,
        a.seed,
        a.seed + a.seeds - 1,
        target
    );
    println!(
        "{:<24} {:<26} {:>10} {:>12} {:>12} {:>16}",
        "algorithm", "setting", "occupancy", "abandon avg", "abandon max", "contacts/agent-h"
    );
    for r in &rows {
        println!(
            "{:<24} {:<26} {:>8.1} % {:>10.2} % {:>10.2} % {:>16.2}{}",
            r.algorithm,
            r.setting,
            r.mean(|d| d.occupancy_pct),
            r.mean(|d| d.abandon_pct),
            r.max(|d| d.abandon_pct),
            r.mean(|d| d.contacts_per_agent_hour),
            if r.within(target) {
                ""
            } else {
                "  (over the target on some seed)"
            }
        );
    }
    for r in &rows {
        let mut modes = std::collections::BTreeMap::<&str, u64>::new();
        for d in &r.days {
            for (m, n) in &d.modes {
                *modes.entry(m).or_default() += n;
            }
        }
        let total: u64 = modes.values().sum();
        let shares: Vec<String> = modes
            .iter()
            .map(|(m, n)| format!("{m} {:.1} %", 100.0 * *n as f64 / total.max(1) as f64))
            .collect();
        println!("{}: decisions {}", r.algorithm, shares.join(", "));
    }
    println!("simulated in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
