//! Calls out (issue 18, C1 click-to-call) through the tenant core: the decisions, the
//! agent's reservation, the customer's leg and the results.

mod common;

use std::sync::Arc;

use callgrid_domain::event::RouteReason;
use callgrid_domain::numbers::{
    Blocklist, CarrierId, NumberKind, OutboundNumber, OutboundNumbers, TrunkChoice,
};
use callgrid_domain::*;
use common::*;

/// The common tenant with two hotlines: Viettel's (trunks viettel then backup) and
/// Vinaphone's (trunk vnpt); 0987 654 321 blocklisted.
fn tenant_out() -> Arc<TenantSetup> {
    let mut setup = (*tenant()).clone();
    let mut out = OutboundSetup::none();
    let mut viettel = OutboundNumber::new("+842873000100".parse().unwrap(), NumberKind::Carrier);
    viettel.carrier = Some(CarrierId::new("viettel").unwrap());
    viettel.trunks = vec![TrunkChoice::new("viettel"), TrunkChoice::new("backup")];
    viettel.trunks[0].priority = Some(0);
    viettel.trunks[1].priority = Some(1);
    let mut vina = OutboundNumber::new("+842873000200".parse().unwrap(), NumberKind::Carrier);
    vina.carrier = Some(CarrierId::new("vinaphone").unwrap());
    vina.trunks = vec![TrunkChoice::new("vnpt")];
    let fallback = viettel.number.clone();
    out.numbers = OutboundNumbers::new(vec![viettel, vina], Some(&fallback)).unwrap();
    out.blocklist = Blocklist::from_entries(&out.normalizer, ["0987 654 321"]).unwrap();
    setup.outbound = Arc::new(out);
    Arc::new(setup)
}

fn originate(
    core: &mut TenantCore,
    call: &str,
    agent: &str,
    to: &str,
    now: TimeMs,
) -> Result<Output, Rejection> {
    place(core, call, agent, to, false, now)
}

/// `agent`'s phone dials `to`.
fn dial(
    core: &mut TenantCore,
    call: &str,
    agent: &str,
    to: &str,
    now: TimeMs,
) -> Result<Output, Rejection> {
    place(core, call, agent, to, true, now)
}

fn place(
    core: &mut TenantCore,
    call: &str,
    agent: &str,
    to: &str,
    phone: bool,
    now: TimeMs,
) -> Result<Output, Rejection> {
    let correlation = (!phone).then(|| Arc::from("crm-42"));
    core.execute(
        Command::Call(
            CallId::new(call),
            CallCommand::Originate {
                agent: AgentId::new(agent),
                dialled: Arc::from(to),
                correlation,
                phone,
            },
        ),
        now,
    )
}

fn routed(out: &Output) -> Vec<(Target, RouteReason)> {
    out.events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::CallRouted { target, reason, .. } => Some((target.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

fn call_events(out: &Output) -> Vec<&'static str> {
    out.events
        .iter()
        .filter(|e| matches!(e.body.aggregate(), AggregateRef::Call(_)))
        .map(|e| e.body.name())
        .collect()
}

#[test]
fn a_click_to_call_rings_the_agent_then_dials_the_customer_on_its_carrier() {
    let mut core = TenantCore::new(tenant_out(), 1);
    login(&mut core, "a", 0);
    let out = originate(&mut core, "o1", "a", "0912 345 678", 100).unwrap();
    // 091 is Vinaphone's: the adaptive choice is the Vinaphone hotline and its trunk
    let originated = out
        .events
        .iter()
        .find_map(|e| match &e.body {
            EventBody::CallOriginated {
                destination,
                class,
                number,
                choice,
                trunks,
                correlation,
                carrier,
                ..
            } => Some((
                destination.to_string(),
                class.to_string(),
                number.to_string(),
                choice.to_string(),
                trunks.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                correlation.as_deref().map(str::to_owned),
                carrier.as_deref().map(str::to_owned),
            )),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        originated,
        (
            "+84912345678".into(),
            "mobile".into(),
            "+842873000200".into(),
            "same_carrier".into(),
            vec!["vnpt".to_owned()],
            Some("crm-42".to_owned()),
            Some("vinaphone".to_owned())
        )
    );
    assert_eq!(rings(&out), ["a"]);
    assert!(out.instructions.iter().any(|(_, i)| matches!(i,
        Instruction::Dial { destination, number, .. }
            if &**destination == "+84912345678" && &**number == "+842873000200")));
    // the agent answers, the customer rings on vnpt, answers; the agent hangs up
    call_cmd(
        &mut core,
        "o1",
        CallCommand::Answered {
            agent: AgentId::new("a"),
        },
        2_000,
    )
    .unwrap();
    assert!(matches!(
        core.agents[&AgentId::new("a")].state,
        AgentState::OnCall { .. }
    ));
    let trunk = Arc::<str>::from("vnpt");
    call_cmd(
        &mut core,
        "o1",
        CallCommand::CustomerRinging {
            trunk: trunk.clone(),
        },
        2_500,
    )
    .unwrap();
    call_cmd(
        &mut core,
        "o1",
        CallCommand::CustomerAnswered {
            trunk: trunk.clone(),
        },
        6_000,
    )
    .unwrap();
    let answered = core.calls[&CallId::new("o1")].outbound.clone().unwrap();
    assert_eq!(answered.answered_at, Some(6_000));
    assert_eq!(answered.trunk.as_deref(), Some("vnpt"));
    // a repeated answer is a duplicate; a failure after the answer is refused
    assert!(matches!(
        call_cmd(
            &mut core,
            "o1",
            CallCommand::CustomerAnswered { trunk },
            6_001
        ),
        Err(Rejection::Duplicate(_))
    ));
    assert!(call_cmd(
        &mut core,
        "o1",
        CallCommand::DialFailed {
            trunk: Arc::from("viettel"),
            sip_code: 486
        },
        6_002
    )
    .is_err());
    let out = call_cmd(
        &mut core,
        "o1",
        CallCommand::Hangup {
            cause: EndCause::Agent,
        },
        20_000,
    )
    .unwrap();
    assert!(call_events(&out).contains(&"call_ended"));
    assert!(matches!(
        core.agents[&AgentId::new("a")].state,
        AgentState::WrapUp { .. }
    ));
}

#[test]
fn a_not_ready_agent_may_click_to_call_and_returns_to_its_reason() {
    let mut core = TenantCore::new(tenant_out(), 1);
    core.execute(
        Command::Agent(
            AgentId::new("a"),
            AgentCommand::Login {
                devices: vec![DeviceId::new("sip:a@127.0.0.1")],
                not_ready: Some(ReasonCode::new("break")),
            },
        ),
        0,
    )
    .unwrap();
    originate(&mut core, "o1", "a", "+84 96 123 4567", 10).unwrap();
    assert!(matches!(
        core.agents[&AgentId::new("a")].state,
        AgentState::Reserved { .. }
    ));
    call_cmd(
        &mut core,
        "o1",
        CallCommand::Answered {
            agent: AgentId::new("a"),
        },
        1_000,
    )
    .unwrap();
    // the customer is busy: the call ends with the mapped result, the agent wraps up and
    // goes back to its break, not to available
    let out = call_cmd(
        &mut core,
        "o1",
        CallCommand::DialFailed {
            trunk: Arc::from("viettel"),
            sip_code: 486,
        },
        3_000,
    )
    .unwrap();
    assert!(out.events.iter().any(|e| matches!(&e.body,
        EventBody::CallEnded { cause: EndCause::Dial(c), .. } if &**c == "busy")));
    assert!(out.instructions.iter().any(|(_, i)| matches!(i,
        Instruction::Hangup { cause } if &**cause == "busy")));
    core.tick(3_000 + 10_001);
    assert_eq!(
        core.agents[&AgentId::new("a")].state,
        AgentState::NotReady {
            reason: ReasonCode::new("break")
        }
    );
}

#[test]
fn trunk_failures_are_recorded_and_the_agent_not_answering_dials_nobody() {
    let mut core = TenantCore::new(tenant_out(), 1);
    login(&mut core, "a", 0);
    let out = originate(&mut core, "o1", "a", "0961234567", 10).unwrap();
    assert!(
        out.instructions.iter().any(|(_, i)| matches!(i,
        Instruction::Dial { trunks, .. } if trunks.iter().map(|t| &**t).eq(["viettel", "backup"])))
    );
    // a customer report before the agent answered is refused
    assert!(matches!(
        call_cmd(
            &mut core,
            "o1",
            CallCommand::CustomerRinging {
                trunk: Arc::from("viettel")
            },
            20
        ),
        Err(Rejection::IllegalTransition { .. })
    ));
    let out = call_cmd(
        &mut core,
        "o1",
        CallCommand::OfferFailed {
            agent: AgentId::new("a"),
            cause: OfferFailure::NoAnswer,
        },
        20_000,
    )
    .unwrap();
    assert!(out.events.iter().any(|e| matches!(&e.body,
        EventBody::CallRouted { target: Target::Hangup(c), .. } if &**c == CAUSE_AGENT_NOT_REACHED)));
    assert!(!out
        .instructions
        .iter()
        .any(|(_, i)| matches!(i, Instruction::Dial { .. })));

    let mut core = TenantCore::new(tenant_out(), 1);
    login(&mut core, "a", 0);
    originate(&mut core, "o2", "a", "0961234567", 10).unwrap();
    call_cmd(
        &mut core,
        "o2",
        CallCommand::Answered {
            agent: AgentId::new("a"),
        },
        500,
    )
    .unwrap();
    let out = call_cmd(
        &mut core,
        "o2",
        CallCommand::TrunkFailed {
            trunk: Arc::from("viettel"),
            sip_code: 503,
        },
        600,
    )
    .unwrap();
    assert_eq!(call_events(&out), ["call_trunk_failed"]);
    let out = call_cmd(
        &mut core,
        "o2",
        CallCommand::DialFailed {
            trunk: Arc::from("backup"),
            sip_code: 503,
        },
        700,
    )
    .unwrap();
    assert!(out.events.iter().any(|e| matches!(&e.body,
        EventBody::CallEnded { cause: EndCause::Dial(c), .. } if &**c == "carrier_error")));
}

#[test]
fn bad_destinations_busy_agents_and_unknown_agents_are_refused_by_name() {
    let mut core = TenantCore::new(tenant_out(), 1);
    login(&mut core, "a", 0);
    let refused = |core: &mut TenantCore, agent: &str, to: &str| {
        originate(core, "x", agent, to, 10).unwrap_err().to_string()
    };
    assert!(
        refused(&mut core, "a", "09x1").contains("09x1"),
        "{}",
        refused(&mut core, "a", "09x1")
    );
    assert_eq!(
        refused(&mut core, "a", "0987654321"),
        "number +84987654321 is on the tenant's blocklist (0987 654 321)"
    );
    assert!(refused(&mut core, "a", "1900 1234").contains("premium"));
    assert!(refused(&mut core, "a", "+1 650 253 0000").contains("international"));
    assert_eq!(
        refused(&mut core, "nobody", "0912345678"),
        "unknown agent nobody"
    );
    // emergency is never refused: on the first number's trunks when no emergency trunk is set
    let out = originate(&mut core, "e1", "a", "113", 20).unwrap();
    assert!(out.events.iter().any(|e| matches!(&e.body,
        EventBody::CallOriginated { class, choice, destination, .. }
            if &**class == "emergency" && &**choice == "emergency" && &**destination == "113")));
    // the agent is reserved for it: a second click-to-call finds it busy
    let out = originate(&mut core, "o3", "a", "0912345678", 30).unwrap();
    assert!(out.events.iter().any(|e| matches!(&e.body,
        EventBody::CallRouted { target: Target::Hangup(c), .. } if &**c == CAUSE_AGENT_NOT_REACHED)));
}

#[test]
fn a_phone_dialling_out_reserves_its_agent_and_dials_like_a_click_to_call() {
    let mut core = TenantCore::new(tenant_out(), 1);
    login(&mut core, "a", 0);
    let out = dial(&mut core, "p1", "a", "0912345678", 100).unwrap();
    assert_eq!(
        routed(&out),
        [(Target::Agent(AgentId::new("a")), RouteReason::Dialled)]
    );
    assert!(out.instructions.iter().any(|(_, i)| matches!(i,
        Instruction::Dial { destination, number, .. }
            if &**destination == "+84912345678" && &**number == "+842873000200")));
    // the agent is reserved for its own call (no inbound offer meanwhile): its leg is the
    // phone's, which the edge reports answered at once
    assert_eq!(rings(&out), ["a"]);
    let taken = arrive(&mut core, "in1", "111", 150);
    assert!(
        rings(&taken).is_empty(),
        "agent a is reserved for its call out"
    );
    let answered = CallCommand::Answered {
        agent: AgentId::new("a"),
    };
    call_cmd(&mut core, "p1", answered, 160).unwrap();
    let trunk = Arc::<str>::from("vnpt");
    call_cmd(
        &mut core,
        "p1",
        CallCommand::CustomerAnswered { trunk },
        3_000,
    )
    .unwrap();
    assert!(matches!(
        core.agents[&AgentId::new("a")].state,
        AgentState::OnCall { .. }
    ));
    // the record says who dialled, and the phone's refusals are a click-to-call's
    assert!(dial(&mut core, "p2", "b", "0987654321", 4_000).is_err());
    assert!(matches!(
        dial(&mut core, "p3", "zed", "0912345678", 4_000),
        Err(Rejection::UnknownAgent(_))
    ));
}

#[test]
fn a_phone_dialling_an_extension_or_a_number_of_the_tenant_makes_an_internal_call() {
    let mut core = TenantCore::new(tenant_out(), 1);
    for a in ["a", "b", "d"] {
        login(&mut core, a, 0);
    }
    // an extension: its agent rings; the call comes from the dialling agent's extension
    let out = dial(&mut core, "i1", "a", "10002", 100).unwrap();
    assert_eq!(
        routed(&out),
        [(Target::Extension(Arc::from("10002")), RouteReason::Internal)]
    );
    assert_eq!(rings(&out), ["b"]);
    assert!(!out
        .instructions
        .iter()
        .any(|(_, i)| matches!(i, Instruction::Dial { .. })));
    let arrived = out.events.iter().find_map(|e| match &e.body {
        EventBody::CallArrived { number, caller, .. } => {
            Some((number.to_string(), caller.to_string()))
        }
        _ => None,
    });
    assert_eq!(arrived, Some(("10002".into(), "10001".into())));
    // a number of the tenant: its first step (555 rings agent d)
    let out = dial(&mut core, "i2", "a", "555", 200).unwrap();
    assert_eq!(
        routed(&out),
        [(Target::Agent(AgentId::new("d")), RouteReason::Number)]
    );
    assert_eq!(rings(&out), ["d"]);
    // one's own extension is refused, and nothing is created
    let own = dial(&mut core, "i3", "a", "10001", 300);
    assert!(
        matches!(&own, Err(Rejection::IllegalTransition { state, .. }) if state.contains("own")),
        "{own:?}"
    );
    assert!(!core.calls.contains_key(&CallId::new("i3")));
    // an internal number nobody has is refused by name; a click-to-call to an extension
    // is refused as before (internal calls are placed from the phone)
    assert_eq!(
        dial(&mut core, "i4", "a", "10009", 400).unwrap_err(),
        Rejection::UnknownExtension("10009".into())
    );
    assert!(matches!(
        originate(&mut core, "i5", "d", "10002", 400),
        Err(Rejection::IllegalTransition { .. })
    ));
}

#[test]
fn an_internal_call_holds_the_calling_agent_until_it_ends() {
    let mut core = TenantCore::new(tenant_out(), 1);
    login(&mut core, "a", 0);
    login(&mut core, "b", 0);
    let state = |core: &TenantCore, a: &str| core.agents[&AgentId::new(a)].state.clone();
    // a's phone calls b's extension: a is on that call (its phone is busy with it)
    let out = dial(&mut core, "i1", "a", "10002", 100).unwrap();
    assert_eq!(rings(&out), ["b"]);
    assert!(
        matches!(state(&core, "a"), AgentState::OnCall { call, .. } if call.as_str() == "i1"),
        "{:?}",
        state(&core, "a")
    );
    // a customer calling queue 200 (a, b, c) meanwhile is not offered to a, nor to b (ringing)
    let queued = arrive(&mut core, "in1", "111", 150);
    assert!(rings(&queued).is_empty(), "{:?}", rings(&queued));
    // b answers, a hangs up: a is free at once (no wrap-up for the call it placed) and takes
    // the waiting customer; b wraps up as after any call it answered
    let answered = CallCommand::Answered {
        agent: AgentId::new("b"),
    };
    call_cmd(&mut core, "i1", answered, 200).unwrap();
    let hangup = CallCommand::Hangup {
        cause: EndCause::Caller,
    };
    let ended = call_cmd(&mut core, "i1", hangup.clone(), 5_000).unwrap();
    assert!(ended.events.iter().any(|e| matches!(&e.body,
        EventBody::AgentCallEnded { agent, wrapup_until: None, .. } if agent.as_str() == "a")));
    assert_eq!(rings(&ended), ["a"], "the waiting customer goes to a");
    assert!(matches!(state(&core, "b"), AgentState::WrapUp { .. }));
    call_cmd(&mut core, "in1", hangup.clone(), 5_100).unwrap();

    // from not ready, a returns to its reason when the internal call ends (here unanswered)
    let not_ready = AgentCommand::SetNotReady {
        reason: ReasonCode::new("lunch"),
    };
    let a = AgentId::new("a");
    core.execute(Command::Agent(a.clone(), not_ready), 6_000)
        .unwrap();
    login(&mut core, "c", 6_000);
    let out = dial(&mut core, "i2", "a", "10003", 6_100).unwrap();
    assert_eq!(rings(&out), ["c"]);
    assert!(matches!(state(&core, "a"), AgentState::OnCall { .. }));
    call_cmd(&mut core, "i2", hangup, 7_000).unwrap();
    assert_eq!(
        state(&core, "a"),
        AgentState::NotReady {
            reason: ReasonCode::new("lunch")
        }
    );
}

fn campaign_call(contact: u64, queue: &str) -> CampaignCall {
    CampaignCall {
        campaign: Arc::from("spring"),
        contact,
        attempt: 1,
        queue: QueueId::new(queue),
        ring_timeout_ms: 20_000,
    }
}

fn place_for_campaign(
    core: &mut TenantCore,
    call: &str,
    contact: u64,
    to: &str,
    number: Option<&str>,
    now: TimeMs,
) -> Result<Output, Rejection> {
    core.execute(
        Command::Call(
            CallId::new(call),
            CallCommand::Place {
                campaign: campaign_call(contact, "200"),
                dialled: Arc::from(to),
                number: number.map(Arc::from),
                correlation: Some(Arc::from(format!("contact-{contact}"))),
            },
        ),
        now,
    )
}

#[test]
fn a_campaign_call_dials_the_customer_first_and_an_answer_waits_in_the_campaign_queue() {
    let mut core = TenantCore::new(tenant_out(), 1);
    login(&mut core, "a", 0);
    let out = place_for_campaign(&mut core, "c1", 7, "0912 345 678", None, 100).unwrap();
    // no agent is touched: the customer is dialled at once, within the campaign's ring time
    assert_eq!(call_events(&out), ["call_originated"]);
    assert!(rings(&out).is_empty());
    assert!(matches!(
        core.agents[&AgentId::new("a")].state,
        AgentState::Available
    ));
    assert!(out.instructions.iter().any(|(_, i)| matches!(i,
        Instruction::Dial { agent: None, destination, number, timeout_ms: 20_000, .. }
            if &**destination == "+84912345678" && &**number == "+842873000200")));
    let o = core.calls[&CallId::new("c1")].outbound.clone().unwrap();
    assert_eq!((o.agent, o.campaign), (None, Some(campaign_call(7, "200"))));
    // ringing, then answered: the call joins queue 200 and is offered to its free agent
    let trunk = Arc::<str>::from("vnpt");
    call_cmd(
        &mut core,
        "c1",
        CallCommand::CustomerRinging {
            trunk: trunk.clone(),
        },
        1_000,
    )
    .unwrap();
    let out = call_cmd(
        &mut core,
        "c1",
        CallCommand::CustomerAnswered { trunk },
        5_000,
    )
    .unwrap();
    assert_eq!(
        routed(&out),
        [(Target::Queue(QueueId::new("200")), RouteReason::Campaign)]
    );
    assert_eq!(rings(&out), ["a"]);
    assert!(out
        .instructions
        .iter()
        .any(|(_, i)| matches!(i, Instruction::PlayHoldMusic { .. })));
    call_cmd(
        &mut core,
        "c1",
        CallCommand::Answered {
            agent: AgentId::new("a"),
        },
        5_300,
    )
    .unwrap();
    assert_eq!(
        core.calls[&CallId::new("c1")].agent(),
        Some(&AgentId::new("a"))
    );
}

#[test]
fn a_campaign_call_not_answered_ends_with_its_result_and_bad_ones_are_refused() {
    let mut core = TenantCore::new(tenant_out(), 1);
    login(&mut core, "a", 0);
    place_for_campaign(&mut core, "c2", 8, "0912 345 679", None, 100).unwrap();
    let out = call_cmd(
        &mut core,
        "c2",
        CallCommand::DialFailed {
            trunk: Arc::from("vnpt"),
            sip_code: 486,
        },
        3_000,
    )
    .unwrap();
    assert!(out.events.iter().any(|e| matches!(&e.body,
        EventBody::CallEnded { cause: EndCause::Dial(r), .. } if &**r == "busy")));
    // the agent was never involved
    assert!(matches!(
        core.agents[&AgentId::new("a")].state,
        AgentState::Available
    ));
    // the campaign's own number, if the queue's agents may use it
    let out = place_for_campaign(
        &mut core,
        "c3",
        9,
        "0912 345 670",
        Some("028 7300 0100"),
        100,
    )
    .unwrap();
    assert!(out.events.iter().any(|e| matches!(&e.body,
        EventBody::CallOriginated { number, choice, .. }
            if &**number == "+842873000100" && &**choice == "forced")));
    // refused by name: a blocklisted number, an emergency number, a number not the tenant's,
    // an unknown queue, an unparseable number
    let refused = |core: &mut TenantCore, call: &str, to: &str, number: Option<&str>| {
        place_for_campaign(core, call, 10, to, number, 100)
            .unwrap_err()
            .to_string()
    };
    assert!(refused(&mut core, "x1", "0987 654 321", None).contains("0987 654 321"));
    assert!(refused(&mut core, "x2", "113", None).contains("emergency"));
    assert!(
        refused(&mut core, "x3", "0912 345 678", Some("028 7300 0999"))
            .contains("not one of the tenant's numbers")
    );
    assert!(refused(&mut core, "x4", "12ab", None).contains("12ab"));
    let e = core
        .execute(
            Command::Call(
                CallId::new("x5"),
                CallCommand::Place {
                    campaign: campaign_call(1, "299"),
                    dialled: Arc::from("0912 345 678"),
                    number: None,
                    correlation: None,
                },
            ),
            100,
        )
        .unwrap_err();
    assert_eq!(e, Rejection::UnknownQueue(QueueId::new("299")));
    // customer reports before the dial are for campaign calls only: a click-to-call's agent
    // must talk first
    originate(&mut core, "o9", "a", "0912 345 678", 100).unwrap();
    assert!(call_cmd(
        &mut core,
        "o9",
        CallCommand::CustomerAnswered {
            trunk: Arc::from("vnpt")
        },
        200
    )
    .is_err());
}
