//! A predictive campaign in virtual time (issue 19, `dialer-sim`): the dialer core's pacers
//! decide, the domain's agent state machines hold the agents (reserved and answered on a
//! bridge, wrap-up after the call), and a seeded model plays the callees: each dialled
//! number answers with a probability after a uniform ring time, or rings out at the no-answer
//! timeout; an answered call that finds no free agent within the grace time is abandoned.
//! Talk times are exponential, wrap-up fixed. The pacers learn from the campaign's results
//! only (`Learned`), never from these parameters.

use std::collections::{BTreeMap, VecDeque};

use callgrid_dialer_core::{AgentNow, CallNow, Floor, Learned, Ms, Outcome, Pacer};
use callgrid_domain::{Agent, AgentCommand, AgentId, CallId, Strategy, TenantSetup};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::agenda::Agenda;

/// The model.
#[derive(Clone, Debug)]
pub struct DialParams {
    /// Agents logged in all the time.
    pub agents: u32,
    /// Share of dialled numbers that answer.
    pub answer_rate: f64,
    /// Mean talk time (s), exponential.
    pub talk_s: f64,
    /// Wrap-up after each call (s).
    pub wrapup_s: f64,
    /// Ring time of an answered call (s): uniform between these.
    pub ring_answered_s: (f64, f64),
    /// A call not answered rings this long (s), the campaign's no-answer timeout.
    pub no_answer_s: f64,
    /// How long an answered call waits for an agent before it is abandoned (s).
    pub grace_s: f64,
    /// Length of the day (h).
    pub hours: f64,
    /// RNG seed.
    pub seed: u64,
}

/// What came out of one day.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DialResult {
    /// Calls placed.
    pub dialled: u64,
    /// Calls answered.
    pub answered: u64,
    /// Answered calls taken by an agent.
    pub connected: u64,
    /// Answered calls that found no agent within the grace time.
    pub abandoned: u64,
    /// Talk + wrap-up over logged-in time (%).
    pub occupancy_pct: f64,
    /// Abandoned / answered (%).
    pub abandon_pct: f64,
    /// Connected calls per agent and hour.
    pub contacts_per_agent_hour: f64,
    /// Dial decisions taken.
    pub decisions: u64,
    /// Decisions by the pacer's mode (`cold`, `predictive`, `over_budget`, ...).
    pub modes: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
enum Ev {
    /// The call rang out: answered or not.
    Outcome(u64),
    /// An agent's call ends.
    TalkEnd(usize),
    /// An agent's wrap-up ends.
    WrapEnd(usize),
    /// An answered call's grace ends.
    Grace(u64),
    /// The dialer's periodic look.
    Tick,
}

struct SimCall {
    dialled: Ms,
    answers_after: Option<Ms>,
}

struct SimAgent {
    machine: Agent,
    now: AgentNow,
    call: Option<CallId>,
    busy_since: Ms,
}

/// Runs one day of one pacer.
pub fn run(p: &DialParams, pacer: &mut dyn Pacer) -> DialResult {
    let setup = TenantSetup::single_queue("dial", p.agents as usize, Strategy::LongestIdle);
    let mut rng = SmallRng::seed_from_u64(p.seed);
    let ms = |s: f64| (s * 1_000.0).round() as Ms;
    let end = ms(p.hours * 3_600.0);
    let wrapup = ms(p.wrapup_s);
    let grace = ms(p.grace_s);
    let mut agents: Vec<SimAgent> = (0..p.agents)
        .map(|i| {
            let mut machine = Agent::new(AgentId::new(format!("a{i}")));
            step(
                &mut machine,
                &AgentCommand::Login {
                    devices: vec![],
                    not_ready: None,
                },
                &setup,
                0,
            );
            SimAgent {
                machine,
                now: AgentNow::Free,
                call: None,
                busy_since: 0,
            }
        })
        .collect();
    // free agents, longest idle first
    let mut idle: VecDeque<usize> = (0..agents.len()).collect();
    let mut calls: BTreeMap<u64, SimCall> = BTreeMap::new();
    let mut waiting: VecDeque<(u64, Ms)> = VecDeque::new();
    let mut learned = Learned::default();
    let mut agenda = Agenda::default();
    agenda.push(0, Ev::Tick);
    let mut r = DialResult::default();
    let mut busy_ms: u64 = 0;
    let mut next_call = 0u64;
    let mut floor_agents: Vec<AgentNow> = Vec::with_capacity(agents.len());
    let mut floor_calls: Vec<CallNow> = Vec::new();
    while let Some((now, ev)) = agenda.pop() {
        if now > end {
            break;
        }
        match ev {
            Ev::Tick => agenda.push(now + 1_000, Ev::Tick),
            Ev::Outcome(id) => {
                let Some(call) = calls.get(&id) else { continue };
                match call.answers_after {
                    Some(ring_ms) => {
                        learned.dialled(Outcome::Answered { ring_ms });
                        r.answered += 1;
                        waiting.push_back((id, now));
                        agenda.push(now + grace, Ev::Grace(id));
                    }
                    None => {
                        learned.dialled(Outcome::NotAnswered {
                            after_ms: now - call.dialled,
                        });
                        calls.remove(&id);
                    }
                }
            }
            Ev::Grace(id) => {
                if let Some(pos) = waiting.iter().position(|(c, _)| *c == id) {
                    waiting.remove(pos);
                    calls.remove(&id);
                    r.abandoned += 1;
                    learned.connected(now, true);
                    pacer.answered(true);
                }
            }
            Ev::TalkEnd(i) => {
                let a = &mut agents[i];
                let call = a.call.take().expect("a talking agent has a call");
                let AgentNow::Talking { since } = a.now else {
                    unreachable!("talk ends only for talking agents")
                };
                learned.talked(now - since);
                step(
                    &mut a.machine,
                    &AgentCommand::CallEnded {
                        call,
                        wrapup_ms: wrapup,
                    },
                    &setup,
                    now,
                );
                a.now = AgentNow::WrapUp { since: now };
                agenda.push(now + wrapup, Ev::WrapEnd(i));
            }
            Ev::WrapEnd(i) => {
                let a = &mut agents[i];
                let AgentNow::WrapUp { since } = a.now else {
                    unreachable!("wrap-up ends only in wrap-up")
                };
                learned.wrapped_up(now - since);
                step(&mut a.machine, &AgentCommand::Tick, &setup, now);
                busy_ms += now - a.busy_since;
                a.now = AgentNow::Free;
                idle.push_back(i);
            }
        }
        // answered calls go to free agents, oldest call to the longest idle agent
        while !waiting.is_empty() && !idle.is_empty() {
            let (id, _) = waiting.pop_front().expect("not empty");
            let i = idle.pop_front().expect("not empty");
            calls.remove(&id);
            let call = CallId::new(format!("c{id}"));
            let a = &mut agents[i];
            let reserve = AgentCommand::Reserve {
                call: call.clone(),
                queue: None,
                ring_timeout_ms: 0,
                outbound: true,
            };
            step(&mut a.machine, &reserve, &setup, now);
            step(
                &mut a.machine,
                &AgentCommand::Answered { call: call.clone() },
                &setup,
                now,
            );
            a.call = Some(call);
            a.now = AgentNow::Talking { since: now };
            a.busy_since = now;
            r.connected += 1;
            learned.connected(now, false);
            pacer.answered(false);
            let talk = exp(&mut rng, p.talk_s * 1_000.0).max(1.0) as Ms;
            agenda.push(now + talk, Ev::TalkEnd(i));
        }
        // the pacer decides once per instant, after everything of that instant
        if agenda.next_at() == Some(now) {
            continue;
        }
        floor_agents.clear();
        floor_agents.extend(agents.iter().map(|a| a.now));
        floor_calls.clear();
        floor_calls.extend(calls.iter().map(
            |(id, c)| match waiting.iter().find(|(w, _)| w == id) {
                Some((_, at)) => CallNow::Waiting { since: *at },
                None => CallNow::Ringing { since: c.dialled },
            },
        ));
        let floor = Floor {
            now,
            agents: &floor_agents,
            calls: &floor_calls,
        };
        let d = pacer.decide(&floor, &mut learned);
        r.decisions += 1;
        *r.modes.entry(d.evidence.mode).or_default() += 1;
        for _ in 0..d.dial {
            let id = next_call;
            next_call += 1;
            r.dialled += 1;
            let answers_after = (rng.random::<f64>() < p.answer_rate).then(|| {
                let (lo, hi) = p.ring_answered_s;
                ms(lo + rng.random::<f64>() * (hi - lo).max(0.0))
            });
            let rings = answers_after.unwrap_or(ms(p.no_answer_s));
            calls.insert(
                id,
                SimCall {
                    dialled: now,
                    answers_after,
                },
            );
            agenda.push(now + rings, Ev::Outcome(id));
        }
    }
    // agents still busy at the end count up to the end
    for a in &agents {
        if !matches!(a.now, AgentNow::Free) {
            busy_ms += end.saturating_sub(a.busy_since);
        }
    }
    let logged_in = end as f64 * f64::from(p.agents);
    r.occupancy_pct = 100.0 * busy_ms as f64 / logged_in.max(1.0);
    r.abandon_pct = if r.answered > 0 {
        100.0 * r.abandoned as f64 / r.answered as f64
    } else {
        0.0
    };
    r.contacts_per_agent_hour = r.connected as f64 / (f64::from(p.agents) * p.hours).max(1e-9);
    r
}

/// One command to an agent's state machine; the simulation only sends commands that apply.
fn step(agent: &mut Agent, cmd: &AgentCommand, setup: &TenantSetup, now: Ms) {
    let events = agent
        .handle(cmd, setup, now)
        .unwrap_or_else(|r| panic!("agent {} refused {}: {r}", agent.id, cmd.name()));
    for e in &events {
        agent.apply(e);
    }
}

fn exp(rng: &mut SmallRng, mean: f64) -> f64 {
    let u: f64 = rng.random::<f64>();
    -(1.0 - u).ln() * mean
}

#[cfg(test)]
mod tests {
    use super::*;
    use callgrid_dialer_core::{Predictive, Progressive, Ratio};

    fn params(seed: u64) -> DialParams {
        DialParams {
            agents: 10,
            answer_rate: 0.3,
            talk_s: 120.0,
            wrapup_s: 10.0,
            ring_answered_s: (4.0, 16.0),
            no_answer_s: 20.0,
            grace_s: 2.0,
            hours: 1.0,
            seed,
        }
    }

    #[test]
    fn progressive_never_abandons_and_a_high_level_does() {
        let r = run(&params(1), &mut Progressive);
        assert_eq!(r.abandoned, 0, "{r:?}");
        assert!(r.connected > 0 && r.occupancy_pct > 0.0 && r.occupancy_pct < 100.0);
        let r = run(&params(1), &mut Ratio { level: 3.0 });
        assert!(r.abandoned > 0, "{r:?}");
    }

    #[test]
    fn a_day_is_the_same_for_the_same_seed() {
        let a = run(&params(7), &mut Predictive::new(0.03, 2_000));
        let b = run(&params(7), &mut Predictive::new(0.03, 2_000));
        assert_eq!(a, b);
        assert!(a.occupancy_pct > run(&params(7), &mut Progressive).occupancy_pct);
    }
}
