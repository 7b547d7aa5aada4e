//! Pacing: how many calls a campaign places now, and the evidence why (D3: every dial
//! decision is an event an auditor can rebuild). Four pacers share one interface so
//! `dialer-sim` runs them side by side on the same seeds: one call per free agent
//! (progressive), a fixed dial level, a VICIdial-like adaptive level (its `ADAPT_AVERAGE`),
//! and callgrid's predictive pacing (docs/DECISIONS.md, "Dialer pacing").

use serde::{Deserialize, Serialize};

use crate::learn::{Learned, Ms};

/// An agent of the campaign, as the pacing sees it (and as the router reports it to the
/// campaign). Agents on break, logged out or in another campaign are not on the floor at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentNow {
    /// Ready for the next customer.
    Free,
    /// Held for a call that is being set up (its phone ringing, a preview being read):
    /// busy, and not expected back within the pacing's horizon.
    Held,
    /// Talking with a customer since then.
    Talking {
        /// Bridged at.
        since: Ms,
    },
    /// In wrap-up since then.
    WrapUp {
        /// Hung up at.
        since: Ms,
    },
}

/// A call of the campaign that has not reached an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallNow {
    /// Dialled at `since`, not answered yet.
    Ringing {
        /// Dialled at.
        since: Ms,
    },
    /// Answered, waiting for a free agent (abandoned after the grace time).
    Waiting {
        /// Answered at.
        since: Ms,
    },
}

/// What the pacing decides from.
#[derive(Clone, Copy, Debug)]
pub struct Floor<'a> {
    /// Now, by the caller's clock.
    pub now: Ms,
    /// The campaign's agents on the floor.
    pub agents: &'a [AgentNow],
    /// The campaign's calls not with an agent.
    pub calls: &'a [CallNow],
}

impl Floor<'_> {
    fn count(&self) -> Counts {
        let mut c = Counts::default();
        for a in self.agents {
            match a {
                AgentNow::Free => c.free += 1,
                AgentNow::Held => c.held += 1,
                AgentNow::Talking { .. } => c.talking += 1,
                AgentNow::WrapUp { .. } => c.wrapping += 1,
            }
        }
        for call in self.calls {
            match call {
                CallNow::Ringing { .. } => c.ringing += 1,
                CallNow::Waiting { .. } => c.waiting += 1,
            }
        }
        c
    }
}

#[derive(Default)]
struct Counts {
    free: u32,
    held: u32,
    talking: u32,
    wrapping: u32,
    ringing: u32,
    waiting: u32,
}

/// Why a decision placed the calls it placed: what the floor was and what was predicted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The pacer (`progressive`, `ratio`, `adaptive`, `predictive`).
    pub pacer: String,
    /// How it decided: `progressive` (one call per free agent), `level` (a dial level),
    /// `cold` (predictive, before it has learned enough: one call per free agent),
    /// `over_budget` (predictive, the abandonment budget spent: one call per free agent),
    /// `predictive`.
    pub mode: String,
    /// Agents free, held for a call being set up, talking, in wrap-up.
    pub free: u32,
    /// Agents held for a call being set up.
    pub held: u32,
    /// Agents talking.
    pub talking: u32,
    /// Agents in wrap-up.
    pub wrapping: u32,
    /// Calls ringing.
    pub ringing: u32,
    /// Answered calls waiting for an agent.
    pub waiting: u32,
    /// The answer probability learned so far.
    pub answer_probability: f64,
    /// Answers expected from the calls already ringing within the horizon.
    pub expected_answers: f64,
    /// Agents expected free within the horizon (free now included).
    pub expected_free: f64,
    /// Answered calls expected to find no agent within the horizon, with this decision's.
    pub predicted_abandons: f64,
    /// The most abandonment one more call may add per answer it brings.
    pub threshold: f64,
    /// The dial level (calls per agent on the floor) of the level pacers.
    pub level: f64,
    /// Abandoned calls the budget (target × answered, 24 hours and 30 days) still allows.
    pub budget_left: f64,
    /// The horizon looked at (ms).
    pub horizon_ms: Ms,
}

/// A decision: calls to place now, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Calls to place now.
    pub dial: u32,
    /// Why.
    pub evidence: Evidence,
}

/// A pacing algorithm.
pub trait Pacer {
    /// Its name in evidence and reports.
    fn name(&self) -> &'static str;
    /// Calls to place now.
    fn decide(&mut self, floor: &Floor<'_>, learned: &mut Learned) -> Decision;
    /// An answered call was taken by an agent (`abandoned` false) or abandoned; the
    /// campaign records it in `Learned` itself.
    fn answered(&mut self, _abandoned: bool) {}
}

fn evidence(pacer: &str, mode: &str, c: &Counts, learned: &Learned) -> Evidence {
    Evidence {
        pacer: pacer.into(),
        mode: mode.into(),
        free: c.free,
        held: c.held,
        talking: c.talking,
        wrapping: c.wrapping,
        ringing: c.ringing,
        waiting: c.waiting,
        answer_probability: learned.answer_probability(),
        ..Evidence::default()
    }
}

fn one_per_free_agent(c: &Counts) -> u32 {
    c.free.saturating_sub(c.ringing + c.waiting)
}

/// One call per free agent (progressive without reserving the agent): never more calls
/// ringing than agents free, so an answer always finds one.
#[derive(Clone, Debug, Default)]
pub struct Progressive;

impl Pacer for Progressive {
    fn name(&self) -> &'static str {
        "progressive"
    }
    fn decide(&mut self, floor: &Floor<'_>, learned: &mut Learned) -> Decision {
        let c = floor.count();
        Decision {
            dial: one_per_free_agent(&c),
            evidence: evidence(self.name(), "progressive", &c, learned),
        }
    }
}

/// Calls so that the campaign's lines are `level` × the agents not paused (available, on a
/// call, in wrap-up): lines placed = goal − (ringing + waiting + talking).
fn by_level(level: f64, c: &Counts) -> u32 {
    let agents = c.free + c.held + c.talking + c.wrapping;
    let goal = (level * f64::from(agents)).round() as i64;
    let busy = i64::from(c.ringing + c.waiting + c.talking + c.held);
    (goal - busy).max(0) as u32
}

/// The decision of a level pacer at `level`.
fn at_level(pacer: &str, level: f64, floor: &Floor<'_>, learned: &Learned) -> Decision {
    let c = floor.count();
    let mut e = evidence(pacer, "level", &c, learned);
    e.level = level;
    Decision {
        dial: by_level(level, &c),
        evidence: e,
    }
}

/// A fixed dial level.
#[derive(Clone, Debug)]
pub struct Ratio {
    /// Lines per agent not paused.
    pub level: f64,
}

impl Pacer for Ratio {
    fn name(&self) -> &'static str {
        "ratio"
    }
    fn decide(&mut self, floor: &Floor<'_>, learned: &mut Learned) -> Decision {
        at_level(self.name(), self.level, floor, learned)
    }
}

/// The VICIdial-like baseline, in the manner of its `ADAPT_AVERAGE` with its defaults: the
/// dial level starts at 1 and every `interval_ms` moves one `step` up while the campaign's
/// running drop rate (today's abandoned / answered) is below the target, one step down
/// while above, between 1.0 and 3.0.
#[derive(Clone, Debug)]
pub struct Adaptive {
    /// Current level.
    pub level: f64,
    /// Step.
    pub step: f64,
    /// Interval between adjustments.
    pub interval_ms: Ms,
    /// Target drop rate (0.03 = 3 %).
    pub target: f64,
    last: Option<Ms>,
}

impl Adaptive {
    /// Starting at level 1.
    pub fn new(step: f64, interval_ms: Ms, target: f64) -> Adaptive {
        Adaptive {
            level: 1.0,
            step,
            interval_ms,
            target,
            last: None,
        }
    }
}

impl Pacer for Adaptive {
    fn name(&self) -> &'static str {
        "adaptive"
    }
    fn decide(&mut self, floor: &Floor<'_>, learned: &mut Learned) -> Decision {
        let now = floor.now;
        let last = *self.last.get_or_insert(now);
        if now >= last + self.interval_ms {
            self.last = Some(now);
            let (answered, dropped) = learned.abandons.over(now, 24);
            let rate = if answered > 0 {
                dropped as f64 / answered as f64
            } else {
                0.0
            };
            if rate < self.target {
                self.level += self.step;
            } else if rate > self.target {
                self.level -= self.step;
            }
            self.level = self.level.clamp(1.0, 3.0);
        }
        at_level(self.name(), self.level, floor, learned)
    }
}

/// Answers and no-answers a campaign must have seen before predicting from them.
pub const COLD_ANSWERS: f64 = 20.0;
/// Outcomes (answered or not) a campaign must have seen before predicting from them.
pub const COLD_OUTCOMES: f64 = 60.0;
/// Talks a campaign must have seen before expecting talking agents back.
const COLD_TALKS: f64 = 20.0;
/// Answered calls granted to a fresh budget (a campaign's first abandon is not over it).
const BUDGET_GRACE_ANSWERS: f64 = 100.0;

/// callgrid's pacing: looks `horizon` ahead at when the calls ringing will be answered and
/// when agents will be free (from the distributions the campaign learned: ring-to-answer
/// times, talk and wrap-up times, each agent's time in its state), and places the calls
/// whose expected abandonment per answer stays under a threshold. The threshold follows
/// the abandonment the campaign actually has (up after a taken call, down after an
/// abandoned one, so it settles where abandoned / answered = `aim`), and the budget of the
/// last 24 hours and 30 days caps it (spent: one call per free agent until it is back).
#[derive(Clone, Debug)]
pub struct Predictive {
    /// The campaign's limit on abandoned / answered (0.03 = 3 %, D3).
    pub target: f64,
    /// What the threshold steers to, under the target (a margin for chance).
    pub aim: f64,
    /// How long an answered call waits for an agent before it is abandoned.
    pub grace_ms: Ms,
    /// The threshold now: abandonment one more call may add per answer.
    pub threshold: f64,
    /// How fast the threshold follows.
    pub gain: f64,
    /// Time step of the look ahead.
    pub step_ms: Ms,
}

impl Predictive {
    /// Pacing to `target` abandonment with answered calls waiting `grace_ms` for an agent.
    pub fn new(target: f64, grace_ms: Ms) -> Predictive {
        let aim = target * 0.85;
        Predictive {
            target,
            aim,
            grace_ms,
            threshold: aim,
            gain: 0.3,
            step_ms: 1_000,
        }
    }

    /// Abandoned calls the budget still allows: target × answered − abandoned over the last
    /// 24 hours and over the last 30 days, whichever is less.
    pub fn budget_left(&self, now: Ms, learned: &Learned) -> f64 {
        [24, 30 * 24]
            .iter()
            .map(|h| {
                let (answered, dropped) = learned.abandons.over(now, *h);
                self.target * (answered as f64 + BUDGET_GRACE_ANSWERS) - dropped as f64
            })
            .fold(f64::INFINITY, f64::min)
    }
}

/// Mean and variance of a sum of independent Bernoulli variables, built up term by term.
#[derive(Clone, Copy, Default)]
struct Sum {
    mean: f64,
    var: f64,
}

impl Sum {
    fn add(&mut self, p: f64) {
        self.mean += p;
        self.var += p * (1.0 - p);
    }
}

/// E[max(X, 0)] for X normal with this mean and variance.
fn expected_excess(mean: f64, var: f64) -> f64 {
    if var <= 1e-12 {
        return mean.max(0.0);
    }
    let sd = var.sqrt();
    let z = mean / sd;
    sd * normal_pdf(z) + mean * normal_cdf(z)
}

fn normal_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Φ(z), from the error function (Abramowitz and Stegun 7.1.26, error < 1.5e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    let erf = if x >= 0.0 { erf } else { -erf };
    0.5 * (1.0 + erf)
}

impl Pacer for Predictive {
    fn name(&self) -> &'static str {
        "predictive"
    }

    fn answered(&mut self, abandoned: bool) {
        let step = if abandoned {
            -self.gain * (1.0 - self.aim)
        } else {
            self.gain * self.aim
        };
        self.threshold = (self.threshold * step.exp()).clamp(1e-4, 1.0);
    }

    fn decide(&mut self, floor: &Floor<'_>, learned: &mut Learned) -> Decision {
        learned.prepare();
        let c = floor.count();
        let now = floor.now;
        let mut e = evidence(self.name(), "predictive", &c, learned);
        e.threshold = self.threshold;
        e.budget_left = self.budget_left(now, learned);
        let p = learned.answer_probability();
        if learned.answers() < COLD_ANSWERS || learned.outcomes() < COLD_OUTCOMES || p <= 0.0 {
            e.mode = "cold".into();
            return Decision {
                dial: one_per_free_agent(&c),
                evidence: e,
            };
        }
        if e.budget_left < 1.0 {
            e.mode = "over_budget".into();
            return Decision {
                dial: one_per_free_agent(&c),
                evidence: e,
            };
        }
        // the horizon: until nearly every answer of a call placed now has come
        let step = self.step_ms.max(1) as f64;
        let mut horizon = step;
        while learned.ring.cdf(horizon) < 0.999 && horizon < 120_000.0 {
            horizon += step;
        }
        let steps = (horizon / step) as usize;
        let grace = self.grace_ms as f64;
        let talks_known = learned.talk.count() >= COLD_TALKS;
        let wraps = learned.wrapup.masses();
        // D(t) = answers by t − agents free by t + grace, for the calls and agents there are
        let mut base = Vec::with_capacity(steps);
        let mut fresh = Vec::with_capacity(steps);
        for k in 1..=steps {
            let t = k as f64 * step;
            let mut answers = Sum::default();
            let mut frees = Sum::default();
            for call in floor.calls {
                match call {
                    CallNow::Waiting { .. } => answers.add(1.0),
                    CallNow::Ringing { since } => {
                        let elapsed = now.saturating_sub(*since) as f64;
                        answers.add(learned.answered_within(elapsed, t));
                    }
                }
            }
            let until = t + grace;
            for a in floor.agents {
                match a {
                    AgentNow::Free => frees.add(1.0),
                    AgentNow::Held => {}
                    AgentNow::WrapUp { since } => {
                        let elapsed = now.saturating_sub(*since) as f64;
                        frees.add(learned.wrapup.ends_within(elapsed, until));
                    }
                    AgentNow::Talking { since } if talks_known => {
                        // the talk ends, then the wrap-up: P(talk left + wrap-up ≤ until)
                        let elapsed = now.saturating_sub(*since) as f64;
                        let q = if wraps.is_empty() {
                            learned.talk.ends_within(elapsed, until)
                        } else {
                            wraps
                                .iter()
                                .map(|(w, pw)| pw * learned.talk.ends_within(elapsed, until - w))
                                .sum()
                        };
                        frees.add(q);
                    }
                    AgentNow::Talking { .. } => {}
                }
            }
            if k == steps {
                e.expected_answers = answers.mean;
                e.expected_free = frees.mean;
            }
            base.push((answers.mean - frees.mean, answers.var + frees.var));
            fresh.push(p * learned.ring.cdf(t));
        }
        let loss = |n: f64| {
            base.iter()
                .zip(&fresh)
                .map(|((m, v), a)| expected_excess(m + n * a, v + n * a * (1.0 - a)))
                .fold(0.0, f64::max)
        };
        // one call more while the abandonment it adds per answer it brings stays under the
        // threshold, and the abandonment predicted stays within what the budget has left
        let agents = c.free + c.held + c.talking + c.wrapping;
        let cap = ((f64::from(agents) * 4.0 / p.max(0.05)).ceil() as u32).min(1_000);
        let mut dial = 0;
        let mut before = loss(0.0);
        while dial < cap {
            let after = loss(f64::from(dial + 1));
            if after - before > self.threshold * p || after > e.budget_left {
                break;
            }
            dial += 1;
            before = after;
        }
        e.predicted_abandons = before;
        e.horizon_ms = horizon as Ms;
        Decision { dial, evidence: e }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::Outcome;

    /// The floor at 100 s with these agents and no calls.
    fn floor_of(agents: &[AgentNow]) -> Floor<'_> {
        Floor {
            now: 100_000,
            agents,
            calls: &[],
        }
    }

    fn learned(p_answer: f64) -> Learned {
        let mut l = Learned::default();
        let answered = (100.0 * p_answer) as u64;
        for i in 0..100u64 {
            if i < answered {
                l.dialled(Outcome::Answered {
                    ring_ms: 4_000 + (i * 97) % 12_000,
                });
            } else {
                l.dialled(Outcome::NotAnswered { after_ms: 20_000 });
            }
        }
        for i in 0..50u64 {
            l.talked(60_000 + i * 2_000);
            l.wrapped_up(10_000);
        }
        l
    }

    #[test]
    fn progressive_places_one_call_per_free_agent_not_already_covered() {
        let agents = [
            AgentNow::Free,
            AgentNow::Free,
            AgentNow::Talking { since: 0 },
        ];
        let calls = [CallNow::Ringing { since: 0 }];
        let floor = Floor {
            now: 1_000,
            agents: &agents,
            calls: &calls,
        };
        let d = Progressive.decide(&floor, &mut Learned::default());
        assert_eq!(d.dial, 1);
        assert_eq!((d.evidence.free, d.evidence.ringing), (2, 1));
    }

    #[test]
    fn a_level_counts_every_agent_not_paused_and_every_line_in_use() {
        let agents = [
            AgentNow::Free,
            AgentNow::Talking { since: 0 },
            AgentNow::WrapUp { since: 0 },
            AgentNow::Free,
        ];
        let calls = [CallNow::Ringing { since: 0 }, CallNow::Waiting { since: 0 }];
        let floor = Floor {
            now: 1_000,
            agents: &agents,
            calls: &calls,
        };
        // 2.5 × 4 = 10 lines; 1 talking, 1 ringing, 1 waiting: 7 more
        let d = Ratio { level: 2.5 }.decide(&floor, &mut Learned::default());
        assert_eq!(d.dial, 7);
    }

    #[test]
    fn the_adaptive_level_moves_a_step_per_interval_between_one_and_three() {
        let mut a = Adaptive::new(0.5, 5_000, 0.03);
        let mut l = Learned::default();
        let agents = [AgentNow::Free];
        let at = |now| Floor {
            now,
            agents: &agents,
            calls: &[],
        };
        a.decide(&at(0), &mut l);
        assert_eq!(a.level, 1.0);
        a.decide(&at(5_000), &mut l);
        assert_eq!(a.level, 1.5);
        for i in 2..10 {
            a.decide(&at(i * 5_000), &mut l);
        }
        assert_eq!(a.level, 3.0);
        for _ in 0..10 {
            l.connected(50_000, true);
        }
        a.decide(&at(50_000), &mut l);
        assert_eq!(a.level, 2.5);
    }

    #[test]
    fn a_cold_campaign_dials_one_call_per_free_agent() {
        let agents = [AgentNow::Free; 10];
        let floor = Floor {
            now: 0,
            agents: &agents,
            calls: &[],
        };
        let d = Predictive::new(0.03, 2_000).decide(&floor, &mut Learned::default());
        assert_eq!((d.dial, d.evidence.mode.as_str()), (10, "cold"));
    }

    #[test]
    fn predictive_dials_ahead_of_free_and_soon_free_agents_and_not_of_busy_ones() {
        let mut l = learned(0.3);
        let mut pacer = Predictive::new(0.03, 2_000);
        let free = [AgentNow::Free; 10];
        let floor = floor_of(&free);
        let d = pacer.decide(&floor, &mut l);
        // more than one per free agent (a third of the calls answer), not unboundedly more
        assert!(d.dial > 10 && d.dial < 60, "{:?}", d);
        assert_eq!(d.evidence.mode, "predictive");
        assert!(d.evidence.expected_free >= 10.0);
        // the same agents all just started talking (a minute or more to go): nothing
        let talking = [AgentNow::Talking { since: 99_000 }; 10];
        let floor = floor_of(&talking);
        let d = pacer.decide(&floor, &mut l);
        assert_eq!(d.dial, 0, "{:?}", d.evidence);
        // in wrap-up for 9 of its 10 s: back within the horizon, so calls go out for them
        let wrapping = [AgentNow::WrapUp { since: 91_000 }; 10];
        let floor = floor_of(&wrapping);
        assert!(pacer.decide(&floor, &mut l).dial > 0);
    }

    #[test]
    fn the_threshold_settles_where_abandonment_is_the_aim_and_an_empty_budget_stops_predicting() {
        let mut pacer = Predictive::new(0.03, 2_000);
        let start = pacer.threshold;
        pacer.answered(true);
        assert!(pacer.threshold < start);
        for _ in 0..200 {
            pacer.answered(false);
        }
        assert!(pacer.threshold > start);
        let mut l = learned(0.3);
        for _ in 0..50 {
            l.connected(100_000, true);
        }
        let free = [AgentNow::Free; 10];
        let floor = floor_of(&free);
        let d = pacer.decide(&floor, &mut l);
        assert_eq!((d.dial, d.evidence.mode.as_str()), (10, "over_budget"));
    }

    #[test]
    fn the_normal_tail_is_right() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-3);
        // E[max(X,0)] for a standard normal is 1/sqrt(2π)
        assert!((expected_excess(0.0, 1.0) - 0.398_942_3).abs() < 1e-6);
        assert_eq!(expected_excess(-2.0, 0.0), 0.0);
    }
}
