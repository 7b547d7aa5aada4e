//! A seeded discrete-event simulation of one queue in virtual time, driving the domain's
//! state machines (`TenantCore`) exactly as the router does: Poisson arrivals, exponential
//! talk times, agents that answer after a ring delay, callers who abandon after an
//! exponential patience.

use std::collections::HashMap;
use std::sync::Arc;

use callgrid_domain::event::EventBody;
use callgrid_domain::{
    AgentCommand, CallCommand, CallId, Command, EndCause, Instruction, Strategy, TenantCore,
    TenantSetup,
};
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::agenda::Agenda;

/// The model.
#[derive(Clone, Debug)]
pub struct SimParams {
    /// Agents in the queue.
    pub agents: u32,
    /// Offered load in Erlangs (arrival rate × mean talk time).
    pub erlangs: f64,
    /// Mean talk time (s).
    pub mean_talk_s: f64,
    /// Service-level threshold (s).
    pub sl_threshold_s: f64,
    /// Calls to offer.
    pub calls: u64,
    /// Agents answer this long after their phone starts ringing (ms).
    pub ring_delay_ms: u64,
    /// Mean patience before a caller abandons (s); `None` = nobody abandons.
    pub mean_patience_s: Option<f64>,
    /// Queue strategy.
    pub strategy: Strategy,
    /// RNG seed.
    pub seed: u64,
}

/// What came out.
#[derive(Clone, Debug)]
pub struct SimResult {
    /// Calls offered.
    pub offered: u64,
    /// Calls answered.
    pub answered: u64,
    /// Calls abandoned in queue.
    pub abandoned: u64,
    /// Answered within the threshold.
    pub answered_in_sl: u64,
    /// Service level: answered within the threshold / offered (%).
    pub service_level_pct: f64,
    /// Average speed of answer (s).
    pub asa_s: f64,
    /// Events recorded.
    pub events: u64,
    /// Waits (ms).
    pub waits: Histogram<u64>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Arrival,
    Answer(CallId, callgrid_domain::AgentId),
    TalkEnd(CallId),
    Patience(CallId),
}

fn exp(rng: &mut SmallRng, mean: f64) -> f64 {
    let u: f64 = rng.random::<f64>();
    -(1.0 - u).ln() * mean
}

/// Runs the simulation.
pub fn run(p: &SimParams) -> SimResult {
    let setup = Arc::new(TenantSetup::single_queue(
        "sim",
        p.agents as usize,
        p.strategy,
    ));
    let mut core = TenantCore::new(setup.clone(), p.seed);
    let mut rng = SmallRng::seed_from_u64(p.seed);
    let number: Arc<str> = Arc::from("100");
    for a in setup.agents.keys() {
        core.execute(
            Command::Agent(
                a.clone(),
                AgentCommand::Login {
                    devices: vec![],
                    not_ready: None,
                },
            ),
            0,
        )
        .expect("login of a configured agent");
    }
    let mean_interarrival_ms = p.mean_talk_s * 1000.0 / p.erlangs;
    let mut agenda = Agenda::default();
    agenda.push(0, Ev::Arrival);
    let mut res = SimResult {
        offered: 0,
        answered: 0,
        abandoned: 0,
        answered_in_sl: 0,
        service_level_pct: 0.0,
        asa_s: 0.0,
        events: 0,
        waits: Histogram::new(3).expect("histogram"),
    };
    let sl_ms = (p.sl_threshold_s * 1000.0) as u64;
    let mut wait_sum_ms = 0u64;
    let mut arrived_at: HashMap<CallId, u64> = HashMap::new();
    let mut next_id = 0u64;
    loop {
        let next_ev = agenda.next_at();
        let deadline = core.next_deadline();
        let now;
        let output = match (next_ev, deadline) {
            (None, None) => break,
            (_, Some(d)) if next_ev.is_none_or(|t| d < t) => {
                now = d;
                core.tick(d)
            }
            _ => {
                let Some((t, ev)) = agenda.pop() else {
                    break;
                };
                now = t;
                let cmd = match ev {
                    Ev::Arrival => {
                        if res.offered >= p.calls {
                            continue;
                        }
                        res.offered += 1;
                        let dt = exp(&mut rng, mean_interarrival_ms) as u64;
                        agenda.push(t + dt.max(1), Ev::Arrival);
                        let id = CallId::new(format!("c{next_id}"));
                        next_id += 1;
                        arrived_at.insert(id.clone(), t);
                        if let Some(mp) = p.mean_patience_s {
                            let pt = exp(&mut rng, mp * 1000.0) as u64;
                            agenda.push(t + pt, Ev::Patience(id.clone()));
                        }
                        Some(Command::Call(
                            id,
                            CallCommand::Arrive {
                                number: number.clone(),
                                caller: Arc::from("caller"),
                            },
                        ))
                    }
                    Ev::Answer(call, agent) => {
                        Some(Command::Call(call, CallCommand::Answered { agent }))
                    }
                    Ev::TalkEnd(call) => Some(Command::Call(
                        call,
                        CallCommand::Hangup {
                            cause: EndCause::Caller,
                        },
                    )),
                    Ev::Patience(call) => {
                        let queued = core.calls.get(&call).is_some_and(|c| c.agent().is_none());
                        queued.then_some(Command::Call(
                            call,
                            CallCommand::Hangup {
                                cause: EndCause::Caller,
                            },
                        ))
                    }
                };
                let Some(cmd) = cmd else { continue };
                match core.execute(cmd, t) {
                    Ok(o) => o,
                    Err(_) => continue, // e.g. patience firing for a call that just ended
                }
            }
        };
        res.events += output.events.len() as u64;
        for e in &output.events {
            match &e.body {
                EventBody::QueueCallAnswered { wait_ms, .. } => {
                    res.answered += 1;
                    wait_sum_ms += wait_ms;
                    if *wait_ms <= sl_ms {
                        res.answered_in_sl += 1;
                    }
                    let _ = res.waits.record(*wait_ms);
                }
                EventBody::QueueCallLeft { .. } => res.abandoned += 1,
                EventBody::CallEnded { call, .. } => {
                    arrived_at.remove(call);
                }
                _ => {}
            }
        }
        for (call, ins) in output.instructions {
            match ins {
                Instruction::Ring { agent, .. } => {
                    agenda.push(now + p.ring_delay_ms, Ev::Answer(call, agent))
                }
                Instruction::Bridge { .. } => {
                    let talk = exp(&mut rng, p.mean_talk_s * 1000.0) as u64;
                    agenda.push(now + talk.max(1), Ev::TalkEnd(call))
                }
                _ => {}
            }
        }
        if res.offered >= p.calls && arrived_at.is_empty() && agenda.is_empty() {
            break;
        }
    }
    res.service_level_pct = 100.0 * res.answered_in_sl as f64 / res.offered.max(1) as f64;
    res.asa_s = wait_sum_ms as f64 / 1000.0 / res.answered.max(1) as f64;
    res
}
