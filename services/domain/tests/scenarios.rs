//! Call journeys through the pure domain.

mod common;

use std::sync::Arc;

use callgrid_domain::agent::MISSED_OFFERS_REASON;
use callgrid_domain::event::{LeaveReason, RouteReason};
use callgrid_domain::*;
use common::*;

fn state(core: &TenantCore, a: &str) -> AgentState {
    core.agents[&AgentId::new(a)].state.clone()
}

#[test]
fn queued_call_is_answered_by_the_longest_idle_agent_then_wraps_up() {
    let mut core = TenantCore::new(tenant(), 1);
    login(&mut core, "b", 1_000);
    login(&mut core, "a", 2_000);
    let out = arrive(&mut core, "c1", "111", 10_000);
    // b has been idle longest
    assert_eq!(rings(&out), vec!["b"]);
    let decision = out
        .events
        .iter()
        .find_map(|e| match &e.body {
            EventBody::QueueRoutingDecision {
                strategy,
                candidates,
                chosen,
                ..
            } => Some((*strategy, candidates.clone(), chosen.clone())),
            _ => None,
        })
        .expect("a routing decision event");
    assert_eq!(decision.0, Strategy::LongestIdle);
    // the candidates are members 0 and 1 of queue 200 (a, b); c is not logged in
    assert_eq!(decision.1.positions().collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(
        decision
            .1
            .agents(&tenant().queues[&QueueId::new("200")].members),
        vec![AgentId::new("a"), AgentId::new("b")]
    );
    assert_eq!(decision.2, vec![AgentId::new("b")]);
    assert!(matches!(state(&core, "b"), AgentState::Reserved { .. }));

    call_cmd(
        &mut core,
        "c1",
        CallCommand::Ringing { agent: "b".into() },
        10_100,
    )
    .unwrap();
    assert!(matches!(state(&core, "b"), AgentState::Ringing { .. }));
    let out = call_cmd(
        &mut core,
        "c1",
        CallCommand::Answered { agent: "b".into() },
        12_000,
    )
    .unwrap();
    assert!(out
        .instructions
        .iter()
        .any(|(_, i)| *i == Instruction::Bridge { agent: "b".into() }));
    assert!(out
        .events
        .iter()
        .any(|e| matches!(&e.body, EventBody::QueueCallAnswered { wait_ms: 2_000, .. })));
    assert!(matches!(state(&core, "b"), AgentState::OnCall { .. }));

    call_cmd(
        &mut core,
        "c1",
        CallCommand::Hangup {
            cause: EndCause::Caller,
        },
        72_000,
    )
    .unwrap();
    // queue 200 wrap-up is 5 s
    assert_eq!(state(&core, "b"), AgentState::WrapUp { until: 77_000 });
    assert!(core.calls.is_empty());
    assert_eq!(core.next_deadline(), Some(77_000));
    core.tick(77_000);
    assert_eq!(state(&core, "b"), AgentState::Available);
    let b = &core.agents[&AgentId::new("b")];
    assert_eq!((b.calls, b.talk_ms), (1, 60_000));
}

#[test]
fn illegal_commands_are_refused_and_change_nothing() {
    let mut core = TenantCore::new(tenant(), 1);
    login(&mut core, "a", 0);
    let before = core.clone();
    let second = core.execute(
        Command::Agent(
            "a".into(),
            AgentCommand::Login {
                devices: vec![],
                not_ready: None,
            },
        ),
        1,
    );
    assert!(matches!(second, Err(Rejection::IllegalTransition { .. })));
    assert_eq!(
        core.execute(Command::Agent("zz".into(), AgentCommand::Logout), 1),
        Err(Rejection::UnknownAgent("zz".into()))
    );
    assert_eq!(
        core.execute(
            Command::Agent(
                "a".into(),
                AgentCommand::SetNotReady {
                    reason: "nap".into()
                }
            ),
            1
        ),
        Err(Rejection::UnknownReason("nap".into()))
    );
    assert_eq!(
        call_cmd(
            &mut core,
            "nope",
            CallCommand::Answered { agent: "a".into() },
            1
        ),
        Err(Rejection::UnknownCall("nope".into()))
    );
    assert!(matches!(
        core.execute(
            Command::Call(
                "x".into(),
                CallCommand::Arrive {
                    number: Arc::from("999"),
                    caller: Arc::from("1")
                }
            ),
            1
        ),
        Err(Rejection::UnknownNumber(_))
    ));
    assert_eq!(core, before);

    // answering a call never offered to that agent
    login(&mut core, "b", 0);
    arrive(&mut core, "c1", "111", 10);
    let before = core.clone();
    let offered = core.calls[&CallId::new("c1")].offers[0].agent.clone();
    let other = if offered.as_str() == "a" { "b" } else { "a" };
    assert!(matches!(
        call_cmd(
            &mut core,
            "c1",
            CallCommand::Answered {
                agent: other.into()
            },
            20
        ),
        Err(Rejection::NotOffered { .. })
    ));
    // duplicated reports
    accepted_then_duplicate_refused(
        &mut core,
        CallCommand::Ringing {
            agent: offered.clone(),
        },
        30,
    );
    accepted_then_duplicate_refused(
        &mut core,
        CallCommand::Answered {
            agent: offered.clone(),
        },
        40,
    );
    // logging out while on a call is refused
    assert!(matches!(
        core.execute(Command::Agent(offered, AgentCommand::Logout), 50),
        Err(Rejection::IllegalTransition { .. })
    ));
    let _ = before;
}

/// Runs a report for call `c1`, then the same report again: the repeat is refused as a
/// duplicate and changes nothing.
fn accepted_then_duplicate_refused(core: &mut TenantCore, cmd: CallCommand, now: TimeMs) {
    call_cmd(core, "c1", cmd.clone(), now).unwrap();
    let before = core.clone();
    assert!(matches!(
        call_cmd(core, "c1", cmd, now + 1),
        Err(Rejection::Duplicate(_))
    ));
    assert_eq!(*core, before);
}

#[test]
fn busy_agent_is_skipped_and_too_many_misses_make_an_agent_not_ready() {
    let mut core = TenantCore::new(tenant(), 1);
    login(&mut core, "a", 0);
    login(&mut core, "b", 1);
    let out = arrive(&mut core, "c1", "111", 100);
    assert_eq!(rings(&out), vec!["a"]);
    let out = call_cmd(
        &mut core,
        "c1",
        CallCommand::OfferFailed {
            agent: "a".into(),
            cause: OfferFailure::Busy,
        },
        200,
    )
    .unwrap();
    // the next agent rings at once; a is blocked for the busy delay
    assert_eq!(rings(&out), vec!["b"]);
    let a = &core.agents[&AgentId::new("a")];
    assert_eq!(a.state, AgentState::Available);
    assert_eq!(a.blocked_until, 200 + 5_000);
    assert_eq!(a.missed_in_row, 1);

    // b misses too; a is still blocked, so nobody rings until a's delay is over
    let out = call_cmd(
        &mut core,
        "c1",
        CallCommand::OfferFailed {
            agent: "b".into(),
            cause: OfferFailure::NoAnswer,
        },
        300,
    )
    .unwrap();
    assert!(rings(&out).is_empty());
    assert_eq!(core.next_deadline(), Some(5_200));
    let out = core.tick(5_200);
    assert_eq!(rings(&out), vec!["a"], "every member missed it: start over");

    // a misses twice more: 3 in a row → not ready (missed_offers)
    call_cmd(
        &mut core,
        "c1",
        CallCommand::OfferFailed {
            agent: "a".into(),
            cause: OfferFailure::NoAnswer,
        },
        5_300,
    )
    .unwrap();
    core.tick(10_400);
    let c1 = &core.calls[&CallId::new("c1")];
    let offered = c1.offers[0].agent.clone();
    assert_eq!(offered.as_str(), "b");
    call_cmd(
        &mut core,
        "c1",
        CallCommand::OfferFailed {
            agent: "b".into(),
            cause: OfferFailure::Rejected,
        },
        10_500,
    )
    .unwrap();
    core.tick(15_500);
    call_cmd(
        &mut core,
        "c1",
        CallCommand::OfferFailed {
            agent: "a".into(),
            cause: OfferFailure::NoAnswer,
        },
        15_600,
    )
    .unwrap();
    assert_eq!(
        state(&core, "a"),
        AgentState::NotReady {
            reason: MISSED_OFFERS_REASON.into()
        }
    );
}

#[test]
fn ring_all_rings_every_free_member_and_the_first_answer_wins() {
    let mut core = TenantCore::new(tenant(), 1);
    for a in ["b", "c", "d"] {
        login(&mut core, a, 0);
    }
    let out = arrive(&mut core, "c1", "222", 100);
    let mut r = rings(&out);
    r.sort();
    assert_eq!(r, vec!["b", "c", "d"]);
    let out = call_cmd(
        &mut core,
        "c1",
        CallCommand::Answered { agent: "c".into() },
        500,
    )
    .unwrap();
    let cancelled: Vec<_> = out
        .instructions
        .iter()
        .filter_map(|(_, i)| match i {
            Instruction::CancelRing { agent } => Some(agent.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(cancelled.len(), 2);
    assert!(matches!(state(&core, "c"), AgentState::OnCall { .. }));
    assert_eq!(state(&core, "b"), AgentState::Available);
    assert_eq!(state(&core, "d"), AgentState::Available);
}

#[test]
fn menu_digit_routes_to_the_chosen_queue_and_bad_input_retries() {
    let mut core = TenantCore::new(tenant(), 1);
    login(&mut core, "d", 0);
    let out = arrive(&mut core, "m1", "333", 100);
    assert!(out
        .instructions
        .iter()
        .any(|(_, i)| matches!(i, Instruction::CollectDigits { .. })));
    let out = call_cmd(&mut core, "m1", CallCommand::Digit { digit: '2' }, 1_000).unwrap();
    assert!(out.events.iter().any(|e| matches!(
        &e.body,
        EventBody::CallRouted {
            reason: RouteReason::MenuChoice('2'),
            ..
        }
    )));
    assert_eq!(rings(&out), vec!["d"]);

    // invalid digit: one retry, then the invalid branch (hang up)
    arrive(&mut core, "m2", "333", 100);
    let out = call_cmd(&mut core, "m2", CallCommand::Digit { digit: '7' }, 200).unwrap();
    assert!(matches!(
        &out.events[0].body,
        EventBody::CallMenuRetry {
            attempt: 1,
            invalid: Some('7'),
            ..
        }
    ));
    let out = call_cmd(&mut core, "m2", CallCommand::Digit { digit: '8' }, 300).unwrap();
    assert!(out.instructions.iter().any(|(_, i)| matches!(i,
        Instruction::Hangup { cause } if &**cause == "invalid_input")));
    assert!(!core.calls.contains_key(&CallId::new("m2")));
    assert_eq!(
        call_cmd(&mut core, "m3", CallCommand::Digit { digit: 'x' }, 1),
        Err(Rejection::UnknownCall("m3".into()))
    );

    // timeout twice → queue 200
    arrive(&mut core, "m4", "333", 10_000);
    core.tick(15_000);
    let out = core.tick(20_000);
    assert!(out.events.iter().any(|e| matches!(
        &e.body,
        EventBody::CallRouted {
            reason: RouteReason::MenuTimeout,
            ..
        }
    )));
}

#[test]
fn unanswered_group_goes_to_its_no_answer_step() {
    let mut core = TenantCore::new(tenant(), 1);
    login(&mut core, "a", 0);
    login(&mut core, "d", 0);
    let out = arrive(&mut core, "g1", "444", 100);
    let mut r = rings(&out);
    r.sort();
    assert_eq!(r, vec!["a", "d"]);
    call_cmd(
        &mut core,
        "g1",
        CallCommand::OfferFailed {
            agent: "a".into(),
            cause: OfferFailure::NoAnswer,
        },
        10_100,
    )
    .unwrap();
    let out = call_cmd(
        &mut core,
        "g1",
        CallCommand::OfferFailed {
            agent: "d".into(),
            cause: OfferFailure::NoAnswer,
        },
        10_100,
    )
    .unwrap();
    assert!(out.events.iter().any(|e| matches!(&e.body,
        EventBody::CallRouted { target: Target::Queue(q), reason: RouteReason::NoAnswer, .. } if q.as_str() == "200")));
}

#[test]
fn caller_who_hangs_up_while_ringing_frees_the_agent() {
    let mut core = TenantCore::new(tenant(), 1);
    login(&mut core, "a", 0);
    arrive(&mut core, "c1", "111", 100);
    assert!(matches!(state(&core, "a"), AgentState::Reserved { .. }));
    let out = call_cmd(
        &mut core,
        "c1",
        CallCommand::Hangup {
            cause: EndCause::Caller,
        },
        900,
    )
    .unwrap();
    assert!(out.events.iter().any(|e| matches!(
        &e.body,
        EventBody::QueueCallLeft {
            reason: LeaveReason::Abandoned,
            wait_ms: 800,
            ..
        }
    )));
    assert_eq!(state(&core, "a"), AgentState::Available);
    assert!(core.queues[&QueueId::new("200")].waiting.is_empty());
}

#[test]
fn an_offer_nobody_reports_on_is_repaired_by_its_lease() {
    let mut core = TenantCore::new(tenant(), 1);
    login(&mut core, "a", 0);
    login(&mut core, "b", 0);
    arrive(&mut core, "c1", "111", 100);
    let first = core.calls[&CallId::new("c1")].offers[0].agent.clone();
    // ring timeout 15 s + lease margin 10 s: nothing heard from the edge
    let out = core.tick(25_100);
    assert!(out.events.iter().any(|e| matches!(
        &e.body,
        EventBody::CallOfferFailed {
            cause: OfferFailure::Expired,
            ..
        }
    )));
    let second = core.calls[&CallId::new("c1")].offers[0].agent.clone();
    assert_ne!(first, second);
    assert!(matches!(
        core.agents[&first].state,
        AgentState::Available | AgentState::NotReady { .. }
    ));
}

#[test]
fn a_call_that_waits_too_long_overflows() {
    let mut core = TenantCore::new(tenant(), 1);
    arrive(&mut core, "c1", "111", 0);
    assert_eq!(core.next_deadline(), Some(120_000));
    let out = core.tick(120_000);
    assert!(out.events.iter().any(|e| matches!(
        &e.body,
        EventBody::QueueCallLeft {
            reason: LeaveReason::Timeout,
            ..
        }
    )));
    assert!(out.instructions.iter().any(|(_, i)| matches!(i,
        Instruction::Hangup { cause } if &**cause == "queue_timeout")));
}

#[test]
fn callback_keeps_the_place_after_the_caller_hangs_up() {
    let mut core = TenantCore::new(tenant(), 1);
    arrive(&mut core, "c1", "111", 0);
    arrive(&mut core, "c2", "111", 10);
    call_cmd(&mut core, "c1", CallCommand::RequestCallback, 20).unwrap();
    call_cmd(
        &mut core,
        "c1",
        CallCommand::Hangup {
            cause: EndCause::Caller,
        },
        30,
    )
    .unwrap();
    let q = &core.queues[&QueueId::new("200")];
    assert_eq!(q.position(&CallId::new("c1")), Some(1));
    assert_eq!(q.position(&CallId::new("c2")), Some(2));
    let out = login(&mut core, "a", 1_000);
    assert!(out.events.iter().any(
        |e| matches!(&e.body, EventBody::QueueCallbackDue { call, .. } if call.as_str() == "c1")
    ));
    // the caller still on the line gets the agent
    assert_eq!(rings(&out), vec!["a"]);
}

#[test]
fn strategies_pick_as_documented() {
    use callgrid_domain::setup::Member;
    let pick = |strategy: Strategy, rounds: usize| -> Vec<String> {
        let mut setup = (*tenant()).clone();
        let q = setup.queues.get_mut(&QueueId::new("200")).unwrap();
        q.strategy = strategy;
        q.wrapup_ms = Some(0);
        q.members = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, a)| Member {
                agent: AgentId::new(*a),
                tier: 1,
                penalty_ms: 0,
                weight: if i == 2 { 100 } else { 1 },
            })
            .collect();
        setup.reindex();
        let mut core = TenantCore::new(Arc::new(setup), 7);
        login(&mut core, "c", 0);
        login(&mut core, "b", 10);
        login(&mut core, "a", 20);
        let mut picks = vec![];
        for i in 0..rounds {
            let t = 1_000 * (i as u64 + 1);
            let id = format!("k{i}");
            let out = arrive(&mut core, &id, "111", t);
            let agent = rings(&out)[0].clone();
            call_cmd(
                &mut core,
                &id,
                CallCommand::Answered {
                    agent: agent.as_str().into(),
                },
                t + 1,
            )
            .unwrap();
            call_cmd(
                &mut core,
                &id,
                CallCommand::Hangup {
                    cause: EndCause::Caller,
                },
                t + 2 + i as u64 * 100,
            )
            .unwrap();
            picks.push(agent);
        }
        picks
    };
    assert_eq!(pick(Strategy::Linear, 3), vec!["a", "a", "a"]);
    assert_eq!(pick(Strategy::RoundRobin, 4), vec!["a", "b", "c", "a"]);
    assert_eq!(pick(Strategy::LongestIdle, 3), vec!["c", "b", "a"]);
    assert_eq!(pick(Strategy::FewestCalls, 3), vec!["c", "b", "a"]);
    // talk times grow with i: after one call each, the least talk time is the first talker
    assert_eq!(pick(Strategy::LeastTalkTime, 4)[3], "c");
    let weighted = pick(Strategy::WeightedRandom, 10);
    assert!(
        weighted.iter().filter(|a| *a == "c").count() >= 8,
        "{weighted:?}"
    );
    let random = pick(Strategy::Random, 12);
    assert!(
        ["a", "b", "c"]
            .iter()
            .all(|x| random.iter().any(|r| r == x)),
        "{random:?}"
    );
}

#[test]
fn tiers_and_skills_limit_the_candidates() {
    let mut core = TenantCore::new(tenant(), 1);
    login(&mut core, "c", 0); // tier 2 in queue 200
    login(&mut core, "a", 1);
    let out = arrive(&mut core, "c1", "111", 100);
    assert_eq!(rings(&out), vec!["a"], "tier 1 first");
    let out = arrive(&mut core, "c2", "111", 200);
    assert_eq!(rings(&out), vec!["c"], "tier 2 when tier 1 is busy");

    let mut setup = (*tenant()).clone();
    setup
        .queues
        .get_mut(&QueueId::new("200"))
        .unwrap()
        .required_skills = [(Arc::from("en"), 4u8)].into_iter().collect();
    setup.reindex();
    let mut core = TenantCore::new(Arc::new(setup), 1);
    login(&mut core, "b", 0); // en 3: not enough
    login(&mut core, "a", 5); // en 5
    let out = arrive(&mut core, "c1", "111", 100);
    assert_eq!(rings(&out), vec!["a"]);
}

#[test]
fn max_length_and_no_agent_rules_send_calls_to_overflow() {
    let mut setup = (*tenant()).clone();
    {
        let q = setup.queues.get_mut(&QueueId::new("200")).unwrap();
        q.max_length = 1;
        q.overflow = Target::Queue(QueueId::new("201"));
    }
    {
        let q = setup.queues.get_mut(&QueueId::new("201")).unwrap();
        q.when_no_agents.join = false;
    }
    let mut core = TenantCore::new(Arc::new(setup), 1);
    arrive(&mut core, "c1", "111", 0);
    let out = arrive(&mut core, "c2", "111", 1);
    // full → 201, which has no agent logged in and refuses → its overflow hangs up
    assert!(out.events.iter().any(|e| matches!(
        &e.body,
        EventBody::QueueCallLeft {
            reason: LeaveReason::Full,
            ..
        }
    )));
    assert!(out.events.iter().any(|e| matches!(
        &e.body,
        EventBody::QueueCallLeft {
            reason: LeaveReason::NoAgents,
            ..
        }
    )));
    assert!(!core.calls.contains_key(&CallId::new("c2")));
}

#[test]
fn an_agent_transfers_a_talking_call_to_an_extension_and_wraps_up() {
    let mut core = TenantCore::new(tenant(), 1);
    login(&mut core, "b", 1_000);
    login(&mut core, "d", 1_500);
    arrive(&mut core, "c1", "111", 10_000);
    call_cmd(
        &mut core,
        "c1",
        CallCommand::Answered { agent: "b".into() },
        11_000,
    )
    .unwrap();
    assert!(matches!(state(&core, "b"), AgentState::OnCall { .. }));

    // refused transfers change nothing: not the agent on the call, an unknown target,
    // the agent itself
    let before = core.clone();
    for (agent, to) in [
        ("a", "10004"),
        ("b", "nowhere"),
        ("b", "10002"),
        ("b", "agent:b"),
    ] {
        let r = call_cmd(
            &mut core,
            "c1",
            CallCommand::Transfer {
                agent: agent.into(),
                to: Arc::from(to),
            },
            12_000,
        );
        assert!(r.is_err(), "transfer by {agent} to {to} refused");
        assert_eq!(core, before, "a refused transfer changes nothing");
    }

    // b hands the call to d's extension: b wraps up, d rings, the caller hears music
    let out = call_cmd(
        &mut core,
        "c1",
        CallCommand::Transfer {
            agent: "b".into(),
            to: Arc::from("10004"),
        },
        40_000,
    )
    .unwrap();
    assert!(out.events.iter().any(|e| matches!(
        &e.body,
        EventBody::CallTransferred { agent, target: Target::Extension(x), .. }
            if agent.as_str() == "b" && &**x == "10004"
    )));
    assert!(out.events.iter().any(|e| matches!(
        &e.body,
        EventBody::CallRouted {
            reason: RouteReason::Transfer,
            ..
        }
    )));
    let ins: Vec<&Instruction> = out.instructions.iter().map(|(_, i)| i).collect();
    assert!(ins.contains(&&Instruction::CancelRing { agent: "b".into() }));
    assert!(ins
        .iter()
        .any(|i| matches!(i, Instruction::PlayHoldMusic { .. })));
    assert!(ins
        .iter()
        .any(|i| matches!(i, Instruction::Ring { agent, .. } if agent.as_str() == "d")));
    // queue 200's wrap-up: 5 s
    assert_eq!(state(&core, "b"), AgentState::WrapUp { until: 45_000 });
    let b = &core.agents[&AgentId::new("b")];
    assert_eq!((b.calls, b.talk_ms), (1, 29_000));

    // d answers; when the caller hangs up, d wraps up and the call is gone
    call_cmd(
        &mut core,
        "c1",
        CallCommand::Answered { agent: "d".into() },
        42_000,
    )
    .unwrap();
    assert!(matches!(state(&core, "d"), AgentState::OnCall { .. }));
    let out = call_cmd(
        &mut core,
        "c1",
        CallCommand::Hangup {
            cause: EndCause::Caller,
        },
        60_000,
    )
    .unwrap();
    assert!(out.events.iter().any(|e| matches!(
        &e.body,
        EventBody::CallEnded { agent: Some(a), .. } if a.as_str() == "d"
    )));
    assert!(matches!(state(&core, "d"), AgentState::WrapUp { .. }));
    assert!(core.calls.is_empty());
}

#[test]
fn a_transfer_to_a_queue_waits_there_and_names_resolve_as_documented() {
    let setup = tenant();
    assert_eq!(
        setup.transfer_target("201"),
        Some(Target::Queue(QueueId::new("201")))
    );
    assert_eq!(
        setup.transfer_target("10001"),
        Some(Target::Extension(Arc::from("10001")))
    );
    assert_eq!(
        setup.transfer_target("d"),
        Some(Target::Agent(AgentId::new("d")))
    );
    assert_eq!(
        setup.transfer_target("333"),
        Some(Target::Menu(MenuId::new("100"))),
        "a number of the tenant takes its first step"
    );
    assert_eq!(setup.transfer_target("queue:999"), None);
    assert_eq!(setup.transfer_target(""), None);

    let mut core = TenantCore::new(tenant(), 1);
    login(&mut core, "a", 1_000);
    arrive(&mut core, "c1", "111", 10_000);
    call_cmd(
        &mut core,
        "c1",
        CallCommand::Answered { agent: "a".into() },
        11_000,
    )
    .unwrap();
    // nobody of queue 201 is logged in, but it accepts callers: the call waits there
    let out = call_cmd(
        &mut core,
        "c1",
        CallCommand::Transfer {
            agent: "a".into(),
            to: Arc::from("queue:201"),
        },
        20_000,
    )
    .unwrap();
    assert!(out.events.iter().any(|e| matches!(
        &e.body,
        EventBody::QueueCallJoined { queue, .. } if queue.as_str() == "201"
    )));
    assert!(core.queues[&QueueId::new("201")]
        .waiting
        .iter()
        .any(|w| w.call.as_str() == "c1"));
    assert!(matches!(state(&core, "a"), AgentState::WrapUp { .. }));
}

#[test]
fn holds_are_logged_per_party_while_talking_and_end_with_the_call() {
    let mut core = TenantCore::new(tenant(), 1);
    login(&mut core, "b", 1_000);
    arrive(&mut core, "c1", "111", 10_000);
    // nobody talks yet: no hold
    let before = core.clone();
    assert!(matches!(
        call_cmd(
            &mut core,
            "c1",
            CallCommand::Hold { by: Party::Agent },
            10_500
        ),
        Err(Rejection::IllegalTransition { what: "hold", .. })
    ));
    assert_eq!(core, before, "a refused hold changes nothing");
    call_cmd(
        &mut core,
        "c1",
        CallCommand::Answered { agent: "b".into() },
        11_000,
    )
    .unwrap();

    // the agent holds (a repeat is a duplicate), the caller holds too, each resumes
    let out = call_cmd(
        &mut core,
        "c1",
        CallCommand::Hold { by: Party::Agent },
        20_000,
    )
    .unwrap();
    assert_eq!(
        out.events.iter().map(|e| &e.body).collect::<Vec<_>>(),
        vec![&EventBody::CallHeld {
            call: "c1".into(),
            agent: "b".into(),
            by: Party::Agent
        }]
    );
    assert!(out.instructions.is_empty(), "the edge already holds");
    let before = core.clone();
    assert!(matches!(
        call_cmd(
            &mut core,
            "c1",
            CallCommand::Hold { by: Party::Agent },
            20_001
        ),
        Err(Rejection::Duplicate(_))
    ));
    assert!(matches!(
        call_cmd(
            &mut core,
            "c1",
            CallCommand::Resume { by: Party::Caller },
            20_001
        ),
        Err(Rejection::Duplicate(_))
    ));
    assert_eq!(core, before, "refused holds change nothing");
    accepted_then_duplicate_refused(&mut core, CallCommand::Hold { by: Party::Caller }, 21_000);
    let c1 = CallId::new("c1");
    assert_eq!(core.calls[&c1].held_by, vec![Party::Agent, Party::Caller]);
    accepted_then_duplicate_refused(&mut core, CallCommand::Resume { by: Party::Agent }, 30_000);
    assert_eq!(core.calls[&c1].held_by, vec![Party::Caller]);
    assert!(matches!(state(&core, "b"), AgentState::OnCall { .. }));

    // the caller hangs up while holding: the call ends, no resume is needed
    let out = call_cmd(
        &mut core,
        "c1",
        CallCommand::Hangup {
            cause: EndCause::Caller,
        },
        40_000,
    )
    .unwrap();
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e.body, EventBody::CallEnded { .. })));
    assert!(core.calls.is_empty());
}

#[test]
fn a_caller_on_the_blocklist_is_hung_up_at_arrival_with_the_cause_in_its_history() {
    let mut setup = (*tenant()).clone();
    let mut outbound = OutboundSetup::none();
    outbound.blocklist =
        numbers::Blocklist::from_entries(&outbound.normalizer, ["+84 96 123 4566"]).expect("list");
    setup.outbound = Arc::new(outbound);
    let mut core = TenantCore::new(Arc::new(setup), 1);
    login(&mut core, "a", 1_000);
    // the edge hears the caller in its national form: the same number
    let out = arrive(&mut core, "c1", "111", 10_000);
    let bodies: Vec<&EventBody> = out.events.iter().map(|e| &e.body).collect();
    assert!(
        matches!(bodies[0], EventBody::CallArrived { .. }),
        "{bodies:?}"
    );
    assert!(
        bodies.iter().any(|b| matches!(
            b,
            EventBody::CallRouted {
                reason: RouteReason::Blocked,
                ..
            }
        )),
        "{bodies:?}"
    );
    assert!(
        bodies.iter().any(|b| matches!(
            b,
            EventBody::CallEnded { cause: EndCause::Router(c), .. } if &**c == CAUSE_BLOCKED
        )),
        "{bodies:?}"
    );
    assert!(rings(&out).is_empty(), "nobody rings for a blocked caller");
    // another caller is not blocked
    let out = core
        .execute(
            Command::Call(
                CallId::new("c2"),
                CallCommand::Arrive {
                    number: Arc::from("111"),
                    caller: Arc::from("0912345678"),
                },
            ),
            11_000,
        )
        .expect("arrive");
    assert_eq!(rings(&out), vec!["a"]);
}
