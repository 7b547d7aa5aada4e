//! A simulated day of a call centre, for the projections: a tenant whose numbers lead
//! straight to queues, agents who log in at 08:00 local time, take a break and log out at
//! 17:00, callers who arrive from 08:00 to 17:00 (busier mid-day), wait, abandon after an
//! exponential patience, talk (some agents put the caller on hold, some callers hold too,
//! and some calls end on hold) and hang up. It drives the domain's state machines
//! (`TenantCore`) exactly as the router does, and returns the events as the log's records
//! (envelopes keyed by tenant, the `TenantConfigured` first) beside its **own record** of
//! every call and agent shift — what a test compares the projections with.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use callgrid_config::Target as ConfigTarget;
use callgrid_domain::{
    AgentCommand, AgentId, CallCommand, CallId, Command, EndCause, Instruction, Party, ReasonCode,
    TenantCore,
};
use callgrid_eventlog::Record;
use prost::Message;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The day to simulate.
#[derive(Clone, Debug)]
pub struct DayParams {
    /// Tenant id.
    pub tenant: String,
    /// IANA time zone of the tenant.
    pub timezone: String,
    /// Start of the local day (midnight), ms since the epoch.
    pub midnight_ms: u64,
    /// Agents.
    pub agents: usize,
    /// Queues (one number each).
    pub queues: usize,
    /// Members per queue (agents may be in several).
    pub agents_per_queue: usize,
    /// Calls over the day.
    pub calls: u64,
    /// Mean talk time, s.
    pub mean_talk_s: f64,
    /// Mean patience of a waiting caller, s.
    pub mean_patience_s: f64,
    /// An agent answers this long after the phone starts ringing, ms.
    pub ring_delay_ms: u64,
    /// Wrap-up after each call, s.
    pub wrapup_s: u32,
    /// Share of answered calls the agent puts on hold once (the caller holds as often).
    pub hold_share: f64,
    /// Mean hold, s.
    pub mean_hold_s: f64,
    /// Service-level threshold, s.
    pub sl_s: u32,
    /// RNG seed.
    pub seed: u64,
}

impl DayParams {
    /// A day of `calls` calls for `agents` agents in `queues` queues, starting at local
    /// midnight of 2026-11-23 in Ho Chi Minh City.
    pub fn new(tenant: &str, agents: usize, queues: usize, calls: u64, seed: u64) -> DayParams {
        DayParams {
            tenant: tenant.to_owned(),
            timezone: "Asia/Ho_Chi_Minh".to_owned(),
            // 2026-11-23 00:00 +07:00
            midnight_ms: 1_795_366_800_000,
            agents,
            queues,
            agents_per_queue: agents.div_ceil(queues.max(1)).max(1),
            calls,
            mean_talk_s: 150.0,
            mean_patience_s: 90.0,
            ring_delay_ms: 3_000,
            wrapup_s: 10,
            hold_share: 0.3,
            mean_hold_s: 40.0,
            sl_s: 20,
            seed,
        }
    }
}

/// What the generator itself knows of one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayCall {
    /// Call id.
    pub call: String,
    /// The queue its number leads to.
    pub queue: String,
    /// When it arrived (and joined the queue).
    pub arrived_ms: u64,
    /// When an agent answered it (the generator's `Answered` that was accepted).
    pub answered_ms: Option<u64>,
    /// Who answered.
    pub agent: Option<String>,
    /// When the caller hung up (talk over, or gave up waiting).
    pub ended_ms: u64,
    /// The agent's holds (accepted `Hold` by the agent): start, and end if resumed (one
    /// without an end lasted until the call ended).
    pub agent_holds: Vec<(u64, Option<u64>)>,
    /// The caller's holds, likewise (shown, not counted as hold time).
    pub caller_holds: Vec<(u64, Option<u64>)>,
}

impl DayCall {
    /// Time on hold by the agent.
    pub fn hold_ms(&self) -> u64 {
        self.agent_holds
            .iter()
            .map(|&(start, end)| end.unwrap_or(self.ended_ms) - start)
            .sum()
    }
}

/// An agent's working day as the generator drove it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayShift {
    /// Agent id.
    pub agent: String,
    /// Login.
    pub login_ms: u64,
    /// Logout (the generator's `Logout` that was accepted).
    pub logout_ms: u64,
    /// Breaks taken (accepted `SetNotReady`), start times.
    pub breaks: Vec<u64>,
}

/// The simulated day.
#[derive(Clone, Debug)]
pub struct Day {
    /// The tenant file.
    pub yaml: String,
    /// The log records, in order: `TenantConfigured`, then every event.
    pub records: Vec<Record>,
    /// Every call.
    pub calls: Vec<DayCall>,
    /// Every agent's shift.
    pub shifts: Vec<DayShift>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Login(usize),
    Break(usize),
    BreakOver(usize),
    Logout(usize),
    Arrival,
    Answer(CallId, AgentId),
    TalkEnd(CallId),
    Patience(CallId),
    /// Hold (`true`) or resume, by the agent (`true`) or the caller.
    Hold(CallId, bool, bool),
}

fn exp(rng: &mut SmallRng, mean: f64) -> f64 {
    let u: f64 = rng.random::<f64>();
    -(1.0 - u).ln() * mean
}

const HOUR: u64 = 3_600_000;

/// The tenant file of the day: numbers straight to queues, no overflow, no menus.
fn tenant_file(p: &DayParams) -> callgrid_config::TenantFile {
    let mut t =
        callgrid_config::generate_tenant(&p.tenant, p.agents, p.queues, p.agents_per_queue, p.seed);
    t.timezone = p.timezone.clone();
    t.defaults.wrapup_seconds = p.wrapup_s;
    t.defaults.service_level_seconds = p.sl_s;
    for q in &mut t.queues {
        q.max_wait_seconds = 0;
        q.overflow = None;
        q.max_length = 0;
        q.when_no_agents.join = true;
        q.when_no_agents.leave = false;
        q.service_level_seconds = None;
        q.wrapup_seconds = None;
        q.announce_position_seconds = 0;
        q.callback = false;
        q.required_skills.clear();
    }
    t.groups.clear();
    t.menus.clear();
    t.numbers
        .retain(|n| matches!(n.route, ConfigTarget::Queue(_)));
    for n in &mut t.numbers {
        n.wrapup_seconds = None;
        n.record = false;
        n.max_concurrent_calls = None;
    }
    t
}

/// Simulates the day.
pub fn simulate(p: &DayParams) -> Day {
    let file = tenant_file(p);
    let yaml = callgrid_config::to_yaml(&file);
    let file = callgrid_config::load_str("day.yaml", &yaml).expect("the day's tenant is valid");
    let setup = Arc::new(callgrid_config::to_setup(&file, 1));
    let mut core = TenantCore::new(setup, p.seed);
    let mut rng = SmallRng::seed_from_u64(p.seed);
    let numbers: Vec<(Arc<str>, String)> = file
        .numbers
        .iter()
        .filter_map(|n| match &n.route {
            ConfigTarget::Queue(q) => Some((Arc::from(n.number.as_str()), q.clone())),
            _ => None,
        })
        .collect();
    let agents: Vec<AgentId> = file.agents.iter().map(|a| AgentId::new(&a.id)).collect();
    let key = p.tenant.as_bytes().to_vec();
    let start = p.midnight_ms + 8 * HOUR;
    let end = p.midnight_ms + 17 * HOUR;
    let mut day = Day {
        records: vec![Record::new(
            key.clone(),
            callgrid_codec::configured_envelope(&p.tenant, 1, "day.yaml", &yaml, start - HOUR)
                .encode_to_vec(),
            (start - HOUR) as i64,
        )],
        yaml,
        calls: Vec::new(),
        shifts: Vec::new(),
    };

    let mut heap: BinaryHeap<Reverse<(u64, u64, Ev)>> = BinaryHeap::new();
    let mut tie = 0u64;
    let mut push = |heap: &mut BinaryHeap<_>, t: u64, ev: Ev| {
        tie += 1;
        heap.push(Reverse((t, tie, ev)));
    };
    for i in 0..agents.len() {
        push(
            &mut heap,
            start + rng.random_range(0..600_000),
            Ev::Login(i),
        );
        push(
            &mut heap,
            start + 2 * HOUR + rng.random_range(0..5 * HOUR),
            Ev::Break(i),
        );
        push(&mut heap, end + rng.random_range(0..600_000), Ev::Logout(i));
    }
    // arrivals: a Poisson process thinned to a mid-day peak (rate × (0.5 + sin))
    let mean_gap = (end - start) as f64 / p.calls.max(1) as f64 * 0.64;
    push(&mut heap, start, Ev::Arrival);
    let mut offered = 0u64;
    let mut seq: HashMap<(String, String), u64> = HashMap::new();
    let mut calls: HashMap<CallId, usize> = HashMap::new();
    let mut logins: HashMap<usize, u64> = HashMap::new();
    let mut breaks: HashMap<usize, Vec<u64>> = HashMap::new();
    loop {
        let next_ev = heap.peek().map(|Reverse((t, _, _))| *t);
        let deadline = core.next_deadline();
        let (now, output) = match (next_ev, deadline) {
            (None, None) => break,
            (_, Some(d)) if next_ev.is_none_or(|t| d < t) => (d, core.tick(d)),
            _ => {
                let Some(Reverse((t, _, ev))) = heap.pop() else {
                    break;
                };
                let cmd = match ev {
                    Ev::Login(i) => Some(Command::Agent(
                        agents[i].clone(),
                        AgentCommand::Login {
                            devices: vec![],
                            not_ready: None,
                        },
                    )),
                    Ev::Break(i) => Some(Command::Agent(
                        agents[i].clone(),
                        AgentCommand::SetNotReady {
                            reason: ReasonCode::new("break"),
                        },
                    )),
                    Ev::BreakOver(i) => Some(Command::Agent(
                        agents[i].clone(),
                        AgentCommand::SetAvailable,
                    )),
                    Ev::Logout(i) => Some(Command::Agent(agents[i].clone(), AgentCommand::Logout)),
                    Ev::Arrival => {
                        if offered >= p.calls || t >= end {
                            None
                        } else {
                            let x = (t - start) as f64 / (end - start) as f64;
                            let rate = 0.5 + (std::f64::consts::PI * x).sin();
                            push(
                                &mut heap,
                                t + exp(&mut rng, mean_gap).max(1.0) as u64,
                                Ev::Arrival,
                            );
                            if rng.random::<f64>() * 1.5 > rate {
                                None
                            } else {
                                offered += 1;
                                let id = CallId::new(format!("{}-c{offered}", p.tenant));
                                let (number, queue) = &numbers[rng.random_range(0..numbers.len())];
                                calls.insert(id.clone(), day.calls.len());
                                day.calls.push(DayCall {
                                    call: id.to_string(),
                                    queue: queue.clone(),
                                    arrived_ms: t,
                                    answered_ms: None,
                                    agent: None,
                                    ended_ms: 0,
                                    agent_holds: Vec::new(),
                                    caller_holds: Vec::new(),
                                });
                                let patience = exp(&mut rng, p.mean_patience_s * 1000.0) as u64;
                                push(&mut heap, t + patience.max(1), Ev::Patience(id.clone()));
                                Some(Command::Call(
                                    id,
                                    CallCommand::Arrive {
                                        number: number.clone(),
                                        caller: Arc::from(format!("+8490{:07}", offered)),
                                    },
                                ))
                            }
                        }
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
                    Ev::Hold(call, by_agent, hold) => {
                        let by = if by_agent {
                            Party::Agent
                        } else {
                            Party::Caller
                        };
                        let talking = calls
                            .get(&call)
                            .is_some_and(|&i| day.calls[i].ended_ms == 0);
                        talking.then_some(Command::Call(
                            call,
                            if hold {
                                CallCommand::Hold { by }
                            } else {
                                CallCommand::Resume { by }
                            },
                        ))
                    }
                    Ev::Patience(call) => {
                        let waiting = calls.get(&call).is_some_and(|&i| {
                            day.calls[i].answered_ms.is_none() && day.calls[i].ended_ms == 0
                        });
                        waiting.then_some(Command::Call(
                            call,
                            CallCommand::Hangup {
                                cause: EndCause::Caller,
                            },
                        ))
                    }
                };
                let Some(cmd) = cmd else { continue };
                let what = cmd.clone();
                match core.execute(cmd, t) {
                    Ok(o) => {
                        // the generator's own record of what it did
                        match what {
                            Command::Call(id, CallCommand::Answered { agent }) => {
                                if let Some(&i) = calls.get(&id) {
                                    day.calls[i].answered_ms = Some(t);
                                    day.calls[i].agent = Some(agent.to_string());
                                }
                            }
                            Command::Call(id, CallCommand::Hangup { .. }) => {
                                if let Some(&i) = calls.get(&id) {
                                    day.calls[i].ended_ms = t;
                                }
                            }
                            Command::Call(
                                id,
                                cmd @ (CallCommand::Hold { by } | CallCommand::Resume { by }),
                            ) => {
                                if let Some(&i) = calls.get(&id) {
                                    let c = &mut day.calls[i];
                                    let holds = match by {
                                        Party::Agent => &mut c.agent_holds,
                                        Party::Caller => &mut c.caller_holds,
                                    };
                                    if matches!(cmd, CallCommand::Hold { .. }) {
                                        holds.push((t, None));
                                    } else if let Some((_, end)) = holds.last_mut() {
                                        *end = Some(t);
                                    }
                                }
                            }
                            Command::Agent(a, AgentCommand::Login { .. }) => {
                                if let Some(i) = agents.iter().position(|x| *x == a) {
                                    logins.insert(i, t);
                                }
                            }
                            Command::Agent(a, AgentCommand::Logout) => {
                                if let Some(i) = agents.iter().position(|x| *x == a) {
                                    day.shifts.push(DayShift {
                                        agent: a.to_string(),
                                        login_ms: logins.get(&i).copied().unwrap_or(0),
                                        logout_ms: t,
                                        breaks: breaks.remove(&i).unwrap_or_default(),
                                    });
                                }
                            }
                            Command::Agent(a, AgentCommand::SetNotReady { .. }) => {
                                if let Some(i) = agents.iter().position(|x| *x == a) {
                                    breaks.entry(i).or_default().push(t);
                                    push(&mut heap, t + 15 * 60_000, Ev::BreakOver(i));
                                }
                            }
                            _ => {}
                        }
                        (t, o)
                    }
                    Err(_) => {
                        // an agent on a call or ringing cannot log out or take a break yet:
                        // try again in a minute (a refused answer or hangup is a race)
                        match what {
                            Command::Agent(a, AgentCommand::Logout) => {
                                if let Some(i) = agents.iter().position(|x| *x == a) {
                                    push(&mut heap, t + 60_000, Ev::Logout(i));
                                }
                            }
                            Command::Agent(a, AgentCommand::SetNotReady { .. }) => {
                                if let Some(i) = agents.iter().position(|x| *x == a) {
                                    push(&mut heap, t + 60_000, Ev::Break(i));
                                }
                            }
                            _ => {}
                        }
                        continue;
                    }
                }
            }
        };
        for e in &output.events {
            let agg = e.body.aggregate();
            let n = seq
                .entry((agg.kind().to_owned(), agg.id().to_owned()))
                .or_insert(0);
            *n += 1;
            let env =
                callgrid_codec::event_envelope(&p.tenant, (agg.kind(), agg.id()), *n, 1, "", e);
            day.records
                .push(Record::new(key.clone(), env.encode_to_vec(), e.at as i64));
        }
        for (call, ins) in output.instructions {
            match ins {
                Instruction::Ring { agent, .. } => {
                    push(&mut heap, now + p.ring_delay_ms, Ev::Answer(call, agent))
                }
                Instruction::Bridge { .. } => {
                    let talk = exp(&mut rng, p.mean_talk_s * 1000.0).max(1.0) as u64;
                    // a hold somewhere in the talk; one that would outlast it ends with it
                    for by_agent in [true, false] {
                        if rng.random::<f64>() < p.hold_share {
                            let at = now + (talk as f64 * rng.random_range(0.1..0.9)) as u64;
                            let len = exp(&mut rng, p.mean_hold_s * 1000.0).max(1.0) as u64;
                            push(&mut heap, at, Ev::Hold(call.clone(), by_agent, true));
                            push(&mut heap, at + len, Ev::Hold(call.clone(), by_agent, false));
                        }
                    }
                    push(&mut heap, now + talk, Ev::TalkEnd(call))
                }
                _ => {}
            }
        }
    }
    day
}
