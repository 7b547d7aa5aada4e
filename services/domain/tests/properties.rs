//! Property tests: random command sequences against a small tenant.
//! - an agent is never offered two calls at once;
//! - a call is offered to several agents only by ring-all (queue or direct step);
//! - the agents' and calls' views of every offer agree;
//! - replaying the recorded events rebuilds the same state.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use callgrid_domain::*;
use common::tenant;
use proptest::prelude::*;
use proptest::strategy::Strategy as _;

#[derive(Clone, Debug)]
enum Step {
    Login(usize, bool),
    Logout(usize),
    Available(usize),
    NotReady(usize),
    Arrive(usize),
    Ringing(usize),
    Answer(usize),
    Fail(usize, u8),
    Hangup(usize, bool),
    Digit(usize, u8),
    Callback(usize),
    Advance(u32),
}

const AGENTS: [&str; 4] = ["a", "b", "c", "d"];
const NUMBERS: [&str; 5] = ["111", "222", "333", "444", "555"];

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    prop_oneof![
        1 => (0..4usize, any::<bool>()).prop_map(|(a, r)| Step::Login(a, r)),
        1 => (0..4usize).prop_map(Step::Logout),
        1 => (0..4usize).prop_map(Step::Available),
        1 => (0..4usize).prop_map(Step::NotReady),
        3 => (0..5usize).prop_map(Step::Arrive),
        3 => (0..8usize).prop_map(Step::Ringing),
        3 => (0..8usize).prop_map(Step::Answer),
        2 => (0..8usize, 0..4u8).prop_map(|(c, f)| Step::Fail(c, f)),
        2 => (0..8usize, any::<bool>()).prop_map(|(c, b)| Step::Hangup(c, b)),
        1 => (0..8usize, 0..12u8).prop_map(|(c, d)| Step::Digit(c, d)),
        1 => (0..8usize).prop_map(Step::Callback),
        2 => (1..40_000u32).prop_map(Step::Advance),
    ]
}

fn check_invariants(core: &TenantCore) {
    // every agent held for a call: at most one call (by construction), and that call agrees
    let mut held: HashMap<AgentId, CallId> = HashMap::new();
    for a in core.agents.values() {
        if let Some(c) = a.state.call() {
            held.insert(a.id.clone(), c.clone());
        }
    }
    let mut offered_to: HashMap<AgentId, Vec<CallId>> = HashMap::new();
    for c in core.calls.values() {
        for o in &c.offers {
            offered_to
                .entry(o.agent.clone())
                .or_default()
                .push(c.id.clone());
            assert_eq!(
                held.get(&o.agent),
                Some(&c.id),
                "call {} offered to {} but the agent is {:?}",
                c.id,
                o.agent,
                core.agents[&o.agent].state
            );
        }
        if let Some(a) = c.agent() {
            offered_to.entry(a.clone()).or_default().push(c.id.clone());
            assert!(
                matches!(&core.agents[a].state, AgentState::OnCall { call, .. } if call == &c.id),
                "call {} talks to {a} but the agent is {:?}",
                c.id,
                core.agents[a].state
            );
        }
        if c.offers.len() > 1 {
            let ring_all_queue = c.offers.iter().all(|o| {
                o.queue.as_ref().is_some_and(|q| {
                    core.setup.queues[q].strategy == callgrid_domain::Strategy::RingAll
                })
            });
            let direct = matches!(c.phase, CallPhase::Direct { .. });
            assert!(
                ring_all_queue || direct,
                "call {} offered to {} agents",
                c.id,
                c.offers.len()
            );
        }
    }
    for (agent, calls) in offered_to {
        assert_eq!(
            calls.len(),
            1,
            "agent {agent} offered several calls: {calls:?}"
        );
    }
}

fn run(steps: Vec<Step>) {
    let setup = tenant();
    let mut core = TenantCore::new(setup.clone(), 3);
    let mut log: Vec<Event> = Vec::new();
    let mut now: TimeMs = 1_000;
    let mut next_call = 0usize;
    let call_ids = |core: &TenantCore| {
        let mut v: Vec<CallId> = core.calls.keys().cloned().collect();
        v.sort();
        v
    };
    for s in steps {
        let calls = call_ids(&core);
        let pick_call = |i: usize| calls.get(i % calls.len().max(1)).cloned();
        let offered_agent =
            |c: &CallId, core: &TenantCore| core.calls[c].offers.first().map(|o| o.agent.clone());
        let cmd = match s {
            Step::Login(a, ready) => Some(Command::Agent(
                AGENTS[a].into(),
                AgentCommand::Login {
                    devices: vec![DeviceId::new("sip:dev@127.0.0.1")],
                    not_ready: (!ready).then(|| ReasonCode::new("break")),
                },
            )),
            Step::Logout(a) => Some(Command::Agent(AGENTS[a].into(), AgentCommand::Logout)),
            Step::Available(a) => {
                Some(Command::Agent(AGENTS[a].into(), AgentCommand::SetAvailable))
            }
            Step::NotReady(a) => Some(Command::Agent(
                AGENTS[a].into(),
                AgentCommand::SetNotReady {
                    reason: "lunch".into(),
                },
            )),
            Step::Arrive(n) => {
                next_call += 1;
                Some(Command::Call(
                    CallId::new(format!("call{next_call}")),
                    CallCommand::Arrive {
                        number: Arc::from(NUMBERS[n]),
                        caller: Arc::from("0961234566"),
                    },
                ))
            }
            Step::Ringing(i) | Step::Answer(i) | Step::Fail(i, _) => pick_call(i).and_then(|c| {
                let agent = offered_agent(&c, &core)?;
                let cmd = match s {
                    Step::Ringing(_) => CallCommand::Ringing { agent },
                    Step::Answer(_) => CallCommand::Answered { agent },
                    Step::Fail(_, f) => CallCommand::OfferFailed {
                        agent,
                        cause: [
                            OfferFailure::Busy,
                            OfferFailure::NoAnswer,
                            OfferFailure::Rejected,
                            OfferFailure::Unreachable,
                        ][f as usize],
                    },
                    _ => unreachable!(),
                };
                Some(Command::Call(c, cmd))
            }),
            Step::Hangup(i, caller) => pick_call(i).map(|c| {
                Command::Call(
                    c,
                    CallCommand::Hangup {
                        cause: if caller {
                            EndCause::Caller
                        } else {
                            EndCause::Agent
                        },
                    },
                )
            }),
            Step::Digit(i, d) => pick_call(i).map(|c| {
                Command::Call(
                    c,
                    CallCommand::Digit {
                        digit: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#']
                            [d as usize],
                    },
                )
            }),
            Step::Callback(i) => {
                pick_call(i).map(|c| Command::Call(c, CallCommand::RequestCallback))
            }
            Step::Advance(ms) => {
                now += u64::from(ms);
                while let Some(d) = core.next_deadline() {
                    if d > now {
                        break;
                    }
                    let out = core.tick(d);
                    log.extend(out.events);
                    check_invariants(&core);
                }
                let out = core.tick(now);
                log.extend(out.events);
                None
            }
        };
        if let Some(cmd) = cmd {
            now += 10;
            let before = core.clone();
            match core.execute(cmd, now) {
                Ok(out) => log.extend(out.events),
                Err(_) => assert!(core == before, "a refused command changed state"),
            }
        }
        check_invariants(&core);
    }
    let rebuilt = TenantCore::replay(setup, log.iter());
    assert!(rebuilt == core, "replay differs from the live state");
    // the boards rebuilt from agents agree with the live boards
    for (q, queue) in &core.queues {
        assert_eq!(queue.board, rebuilt.queues[q].board, "board of queue {q}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]
    #[test]
    fn invariants_hold_and_replay_rebuilds_the_state(steps in prop::collection::vec(step(), 1..120)) {
        run(steps);
    }
}
