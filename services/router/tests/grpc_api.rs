//! The router over gRPC: agent API, a whole call through call control, bad input.

mod common;

use callgrid_proto::api::v1 as api;
use callgrid_proto::events::v1 as pb;
use callgrid_router::journal::EVENTS_TOPIC;
use common::*;
use prost::Message;
use tonic::Code;

use api::edge_report::Report as R;
use api::router_instruction::Instruction as I;

async fn all_events(h: &Harness) -> Vec<pb::EventEnvelope> {
    let log = h.router.log();
    let mut out = Vec::new();
    for p in 0..log.partition_count(EVENTS_TOPIC).await.unwrap() {
        for r in log.read(EVENTS_TOPIC, p, 0, 1_000_000).await.unwrap() {
            out.push(pb::EventEnvelope::decode(r.value.as_slice()).unwrap());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_api_logs_in_changes_state_and_refuses_bad_input() {
    let h = start().await;
    let st = h.login("alice").await;
    assert_eq!(st.state, "available");
    assert_eq!(st.queues, vec!["200".to_string(), "202".to_string()]);
    let mut agents = h.agents().await;
    let again = agents
        .login(api::LoginRequest {
            tenant: "demo".into(),
            agent: "alice".into(),
            devices: vec![],
            not_ready_reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    assert!(
        again.message().contains("already logged in"),
        "{}",
        again.message()
    );

    let unknown = agents
        .logout(api::AgentRef {
            tenant: "demo".into(),
            agent: "zorro".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let no_tenant = agents
        .logout(api::AgentRef {
            tenant: "nope".into(),
            agent: "alice".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(no_tenant.code(), Code::NotFound);
    let bad_reason = agents
        .set_state(api::SetStateRequest {
            tenant: "demo".into(),
            agent: "alice".into(),
            state: Some(api::set_state_request::State::NotReadyReason("nap".into())),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_reason.code(), Code::InvalidArgument);
    let lunch = agents
        .set_state(api::SetStateRequest {
            tenant: "demo".into(),
            agent: "alice".into(),
            state: Some(api::set_state_request::State::NotReadyReason(
                "lunch".into(),
            )),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (lunch.state.as_str(), lunch.reason.as_str()),
        ("not_ready", "lunch")
    );
    let list = agents
        .list_agents(api::ListAgentsRequest {
            tenant: "demo".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.agents.len(), 13);
    // every acknowledged change is in the log
    let ev = all_events(&h).await;
    let kinds: Vec<_> = ev
        .iter()
        .filter(|e| e.aggregate_id == "alice")
        .map(|e| e.event.as_ref().unwrap().kind.clone().unwrap())
        .collect();
    assert!(matches!(kinds[0], pb::event::Kind::AgentLoggedIn(_)));
    assert!(matches!(kinds[1], pb::event::Kind::AgentNotReady(_)));
    assert_eq!(kinds.len(), 2, "refused commands wrote nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_call_rings_the_agent_is_bridged_and_ends() {
    let h = start().await;
    let mut call = h.call("call-1", SALES).await.expect("call accepted");
    // queued: answer + hold music; nobody logged in yet
    call.until(|i| matches!(i, I::PlayHoldMusic(_)).then_some(()))
        .await;
    assert_eq!(call.result_of(1).await.code, 0);
    let q = h
        .reads()
        .await
        .get_queue(api::QueueRef {
            tenant: "demo".into(),
            queue: "200".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(q.waiting.len(), 1);
    assert_eq!(q.waiting[0].call, "call-1");

    h.login("bob").await;
    let ring = call
        .until(|i| match i {
            I::Ring(r) => Some(r.clone()),
            _ => None,
        })
        .await;
    assert_eq!(ring.agent, "bob");
    assert_eq!(ring.devices, vec!["sip:bob@127.0.0.1".to_string()]);
    let s = call
        .send(R::Ringing(api::AgentRinging {
            agent: "bob".into(),
        }))
        .await;
    assert_eq!(call.result_of(s).await.code, 0);
    let s = call
        .send(R::Answered(api::AgentAnswered {
            agent: "bob".into(),
        }))
        .await;
    call.until(|i| matches!(i, I::Bridge(b) if b.agent == "bob").then_some(()))
        .await;
    assert_eq!(call.result_of(s).await.code, 0);
    let bob = h
        .reads()
        .await
        .get_agent(api::AgentRef {
            tenant: "demo".into(),
            agent: "bob".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (bob.state.as_str(), bob.call.as_str()),
        ("on_call", "call-1")
    );

    call.hang_up(api::Party::Caller).await;
    assert!(call.next().await.is_none(), "the stream ends with the call");

    // the call's own events are durable before the hangup's result; its follow-ups in the
    // queue and agent actors may still be on their way
    let mut ev = all_events(&h).await;
    for _ in 0..100 {
        if ev.iter().any(|e| {
            e.aggregate_id == "200"
                && matches!(
                    e.event.as_ref().and_then(|e| e.kind.as_ref()),
                    Some(pb::event::Kind::QueueCallAnswered(_))
                )
        }) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        ev = all_events(&h).await;
    }
    let names: Vec<String> = ev
        .iter()
        .filter(|e| e.aggregate_id == "call-1" || e.aggregate_id == "200")
        .map(|e| {
            format!("{:?}", e.event.as_ref().unwrap().kind.as_ref().unwrap())
                .split('(')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    for expected in [
        "CallArrived",
        "CallRouted",
        "QueueCallJoined",
        "QueueRoutingDecision",
        "QueueCallOffered",
        "CallOffered",
        "CallRinging",
        "CallAnswered",
        "QueueCallAnswered",
        "CallEnded",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    let decision = ev
        .iter()
        .find_map(|e| match e.event.as_ref()?.kind.as_ref()? {
            pb::event::Kind::QueueRoutingDecision(d) => Some(d.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(decision.chosen, vec!["bob".to_string()]);
    assert_eq!(decision.strategy, pb::Strategy::LongestIdle as i32);
    // the call's events carry the edge's trace context (P4)
    assert!(ev
        .iter()
        .filter(|e| e.aggregate_id == "call-1")
        .all(|e| e.traceparent == TRACEPARENT && e.plan_version == 1 && e.tenant == "demo"));
    // sequence numbers per aggregate are 1.. without gaps
    let seqs: Vec<u64> = ev
        .iter()
        .filter(|e| e.aggregate_id == "call-1")
        .map(|e| e.sequence)
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_edge_reports_get_a_status_change_nothing_and_the_router_keeps_serving() {
    let h = start().await;
    // unknown number: the stream is refused
    let st = h.call("x1", "+999").await.err().expect("refused");
    assert_eq!(st.code(), Code::NotFound);

    h.login("alice").await;
    let mut call = h.call("call-2", SALES).await.unwrap();
    call.until(|i| matches!(i, I::Ring(_)).then_some(())).await;
    let call_events =
        |ev: Vec<pb::EventEnvelope>| ev.iter().filter(|e| e.aggregate_id == "call-2").count();
    let before = call_events(all_events(&h).await);
    // an agent who was never offered the call answers
    let s = call
        .send(R::Answered(api::AgentAnswered {
            agent: "bob".into(),
        }))
        .await;
    assert_eq!(
        call.result_of(s).await.code,
        Code::FailedPrecondition as i32
    );
    // an empty report, a second arrival, empty digits
    let s = call
        .send(R::Digits(api::Digits {
            digits: String::new(),
        }))
        .await;
    assert_eq!(call.result_of(s).await.code, Code::InvalidArgument as i32);
    call.seq += 1;
    call.tx
        .send(api::EdgeReport {
            call_id: "call-2".into(),
            seq: call.seq,
            report: None,
            ack: false,
        })
        .await
        .unwrap();
    let s = call.seq;
    assert_eq!(call.result_of(s).await.code, Code::InvalidArgument as i32);
    // a duplicated ringing report
    let s = call
        .send(R::Ringing(api::AgentRinging {
            agent: "alice".into(),
        }))
        .await;
    assert_eq!(call.result_of(s).await.code, 0);
    let s = call
        .send(R::Ringing(api::AgentRinging {
            agent: "alice".into(),
        }))
        .await;
    assert_eq!(call.result_of(s).await.code, Code::AlreadyExists as i32);
    // a hangup reported before the answer it would follow (reordered) ends the call cleanly
    let after = call_events(all_events(&h).await);
    assert_eq!(
        after,
        before + 1,
        "only the first ringing report wrote an event of the call"
    );

    // a second call with the same id is refused
    let dup = h.call("call-2", SALES).await;
    match dup {
        Err(st) => assert_eq!(st.code(), Code::AlreadyExists),
        Ok(_) => panic!("duplicate call id accepted"),
    }
    // and the router keeps serving: the first call is answered and ended normally
    let s = call
        .send(R::Answered(api::AgentAnswered {
            agent: "alice".into(),
        }))
        .await;
    assert_eq!(call.result_of(s).await.code, 0);
    call.hang_up(api::Party::Agent).await;
    // an edge that goes away without hanging up: the call ends as edge-lost
    let mut lost = h.call("call-3", SALES).await.unwrap();
    assert_eq!(lost.result_of(1).await.code, 0);
    drop(lost);
    for _ in 0..100 {
        if all_events(&h).await.iter().any(|e| {
            e.aggregate_id == "call-3"
                && matches!(
                    e.event.as_ref().unwrap().kind,
                    Some(pb::event::Kind::CallEnded(_))
                )
        }) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("call-3 was not ended after its edge went away");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn menu_digit_routes_into_the_chosen_queue() {
    let h = start().await;
    h.login("chi").await;
    let mut call = h.call("m-1", MENU).await.unwrap();
    let collect = call
        .until(|i| match i {
            I::CollectDigits(c) => Some(c.clone()),
            _ => None,
        })
        .await;
    assert_eq!(collect.prompt, "welcome");
    let s = call
        .send(R::Digits(api::Digits { digits: "2".into() }))
        .await;
    assert_eq!(call.result_of(s).await.code, 0);
    let ring = call
        .until(|i| match i {
            I::Ring(r) => Some(r.clone()),
            _ => None,
        })
        .await;
    assert_eq!(ring.agent, "chi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_loads_a_new_version_and_names_the_field_of_a_broken_file() {
    let h = start().await;
    let mut admin = h.admin().await;
    let broken =
        callgrid_config::DEMO_TENANT_YAML.replace("strategy: longest_idle", "strategy: fastest");
    let err = admin
        .load_tenant(api::LoadTenantRequest {
            yaml: broken,
            source_name: "demo.yaml".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("demo.yaml: queues[0].strategy"),
        "{}",
        err.message()
    );
    let changed =
        callgrid_config::DEMO_TENANT_YAML.replace("max_wait_seconds: 180", "max_wait_seconds: 240");
    let ok = admin
        .load_tenant(api::LoadTenantRequest {
            yaml: changed,
            source_name: "demo.yaml".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.version, 2);
    let list = admin
        .list_tenants(api::ListTenantsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.tenants[0].version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_callers_hear_their_position_periodically() {
    // the demo's sales queue announces every 30 s; run the clock 200 times faster
    let h = start_with(callgrid_router::RouterOptions {
        clock: callgrid_router::clock::Clock::scaled(200.0),
        ..callgrid_router::RouterOptions::default()
    })
    .await;
    let mut first = h.call("w-1", SALES).await.unwrap();
    let mut second = h.call("w-2", SALES).await.unwrap();
    let a1 = first
        .until(|i| match i {
            I::Announce(a) => Some(*a),
            _ => None,
        })
        .await;
    let a2 = second
        .until(|i| match i {
            I::Announce(a) => Some(*a),
            _ => None,
        })
        .await;
    assert_eq!(a1.position, 1);
    assert_eq!(a2.position, 2);
    // the first caller hangs up: the second moves up
    first.hang_up(api::Party::Caller).await;
    // (an announcement made before the hangup may still be on its way)
    second
        .until(|i| matches!(i, I::Announce(a) if a.position == 1).then_some(()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_a_concurrent_call_limit_are_refused_and_places_come_back() {
    let h = start().await;
    // the demo's operator-desk number allows 10 calls at once (N8)
    let desk = "+842873000300";
    let mut calls = Vec::new();
    for i in 0..10 {
        calls.push(
            h.call(&format!("lim-{i}"), desk)
                .await
                .expect("under the limit"),
        );
    }
    let Err(over) = h.call("lim-10", desk).await else {
        panic!("the 11th call is over the number's limit");
    };
    assert_eq!(over.code(), tonic::Code::ResourceExhausted, "{over:?}");
    assert!(over.message().contains("limit of 10"), "{}", over.message());
    // the refused call left nothing behind
    let mut reads = h.reads().await;
    let missing = reads
        .get_call(api::CallRef {
            tenant: "demo".into(),
            call: "lim-10".into(),
        })
        .await
        .expect_err("never created");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    // another number of the tenant still takes calls
    let other = h.call("lim-q", SALES).await.expect("other number");
    drop(other);
    // one call ends: its place is free again
    let mut first = calls.remove(0);
    first.hang_up(api::Party::Caller).await;
    let mut again = None;
    for _ in 0..100 {
        match h.call("lim-11", desk).await {
            Ok(c) => {
                again = Some(c);
                break;
            }
            Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(s) => panic!("unexpected {s:?}"),
        }
    }
    assert!(again.is_some(), "the ended call's place came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_edge_gives_up_during_its_arrival_ends_as_edge_lost() {
    use futures::FutureExt;
    let h = start().await;
    let svc = callgrid_router::grpc::CallControlSvc::new(h.router.clone());
    // the edge polls the arrival once and gives up (its timeout fired): the call must not
    // stay queued forever with nobody to tell the router that the caller is gone
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(Ok(arrival("gave-up", SALES))).await.unwrap();
    let edge = callgrid_access::Principal {
        role: callgrid_access::Role::Edge,
        ..callgrid_access::Principal::system()
    };
    let opened = svc
        .open(tokio_stream::wrappers::ReceiverStream::new(rx), &edge)
        .now_or_never();
    drop(opened);
    drop(tx);
    let mut ended = None;
    for _ in 0..200 {
        ended =
            all_events(&h)
                .await
                .into_iter()
                .find_map(|e| match e.event.and_then(|ev| ev.kind) {
                    Some(pb::event::Kind::CallEnded(c)) if c.call == "gave-up" => c.cause,
                    _ => None,
                });
        if ended.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let cause = ended.expect("the abandoned call ended").kind;
    assert_eq!(cause, Some(pb::end_cause::Kind::EdgeLost(true)));
    assert_eq!(h.router.shared.arrivals.pending(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_calls_over_the_pending_arrival_limit_are_refused_at_once() {
    let h = start_with(callgrid_router::RouterOptions {
        max_pending_arrivals: 1,
        ..Default::default()
    })
    .await;
    // one arrival in progress holds the only slot
    let slot = h.router.shared.arrivals.try_begin().expect("a free slot");
    let Err(refused) = h.call("shed-1", SALES).await else {
        panic!("the router is at its limit of arrivals in progress");
    };
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("overloaded"),
        "{}",
        refused.message()
    );
    assert_eq!(h.router.shared.arrivals.refused(), 1);
    // the refused call left nothing behind
    let missing = h
        .reads()
        .await
        .get_call(api::CallRef {
            tenant: "demo".into(),
            call: "shed-1".into(),
        })
        .await
        .expect_err("never created");
    assert_eq!(missing.code(), Code::NotFound);
    // once the slot is free, calls are taken again
    drop(slot);
    h.call("shed-2", SALES).await.expect("accepted");
}

/// Rings `agent` on the call and reports its answer; returns once bridged.
async fn answered_by(call: &mut EdgeCall, agent: &str) {
    call.until(|i| matches!(i, I::Ring(r) if r.agent == agent).then_some(()))
        .await;
    let s = call
        .send(R::Answered(api::AgentAnswered {
            agent: agent.into(),
        }))
        .await;
    call.until(|i| matches!(i, I::Bridge(b) if b.agent == agent).then_some(()))
        .await;
    assert_eq!(call.result_of(s).await.code, 0);
}

async fn held_by(h: &Harness, call: &str) -> Vec<String> {
    h.reads()
        .await
        .get_call(api::CallRef {
            tenant: "demo".into(),
            call: call.into(),
        })
        .await
        .expect("call status")
        .into_inner()
        .held_by
}

async fn state_of(h: &Harness, agent: &str) -> api::AgentStatus {
    h.reads()
        .await
        .get_agent(api::AgentRef {
            tenant: "demo".into(),
            agent: agent.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_transfers_by_its_phone_and_by_the_api() {
    let h = start().await;
    h.login("bob").await;
    let mut call = h.call("call-t", SALES).await.expect("call accepted");
    answered_by(&mut call, "bob").await;

    // the phone's REFER: to an extension nobody of the tenant has, refused, nothing changes
    let s = call
        .send(R::Transfer(api::TransferRequest {
            tenant: String::new(),
            agent: "bob".into(),
            target: "99999".into(),
        }))
        .await;
    let r = call.result_of(s).await;
    assert_eq!(r.code, Code::NotFound as i32, "{}", r.message);
    assert_eq!(state_of(&h, "bob").await.state, "on_call");

    // to extension 10003 (chi): bob's leg goes, the caller hears music, chi rings
    h.login("chi").await;
    let s = call
        .send(R::Transfer(api::TransferRequest {
            tenant: String::new(),
            agent: "bob".into(),
            target: "10003".into(),
        }))
        .await;
    call.until(|i| matches!(i, I::CancelRing(c) if c.agent == "bob").then_some(()))
        .await;
    call.until(|i| matches!(i, I::PlayHoldMusic(_)).then_some(()))
        .await;
    assert_eq!(call.result_of(s).await.code, 0);
    answered_by(&mut call, "chi").await;
    let bob = state_of(&h, "bob").await;
    assert_eq!((bob.state.as_str(), bob.calls), ("wrap_up", 1));

    // the agent API: bad requests are refused with a clear status
    let mut agents = h.agents().await;
    let transfer = |agent: &str, target: &str| api::TransferRequest {
        tenant: "demo".into(),
        agent: agent.into(),
        target: target.into(),
    };
    let e = agents.transfer(transfer("bob", "201")).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "bob is in wrap-up: {e}");
    let e = agents
        .transfer(transfer("chi", "queue:999"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e}");
    let e = agents
        .transfer(transfer("chi", "agent:chi"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "to itself: {e}");
    let e = agents
        .transfer(transfer("nobody", "201"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e}");
    let e = agents.transfer(transfer("chi", " ")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");

    // chi sends the call on to queue 201 from its desktop: the caller waits there
    let done = agents
        .transfer(transfer("chi", "queue:201"))
        .await
        .expect("transfer accepted")
        .into_inner();
    assert_eq!(done.call, "call-t");
    call.until(|i| matches!(i, I::CancelRing(c) if c.agent == "chi").then_some(()))
        .await;
    let q = h
        .reads()
        .await
        .get_queue(api::QueueRef {
            tenant: "demo".into(),
            queue: "201".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        q.waiting.iter().any(|w| w.call == "call-t"),
        "the call waits in 201: {q:?}"
    );
    call.hang_up(api::Party::Caller).await;

    let ev = all_events(&h).await;
    let story: Vec<String> = ev
        .iter()
        .filter(|e| e.aggregate_id == "call-t")
        .filter_map(|e| match e.event.as_ref()?.kind.as_ref()? {
            pb::event::Kind::CallTransferred(t) => Some(format!("transferred by {}", t.agent)),
            pb::event::Kind::CallAnswered(a) => Some(format!("answered {}", a.agent)),
            pb::event::Kind::CallRouted(r) => Some(format!(
                "routed {:?}",
                r.reason.as_ref().and_then(|r| r.kind.as_ref())
            )),
            pb::event::Kind::CallEnded(_) => Some("ended".into()),
            _ => None,
        })
        .collect();
    assert_eq!(
        story,
        vec![
            "routed Some(Number(true))",
            "answered bob",
            "transferred by bob",
            "routed Some(Transfer(true))",
            "answered chi",
            "transferred by chi",
            "routed Some(Transfer(true))",
            "ended",
        ],
        "the call's story"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_reports_are_logged_per_party_and_bad_ones_refused() {
    let h = start().await;
    h.login("bob").await;
    let mut call = h.call("call-h", SALES).await.expect("call accepted");
    let held = |party: api::Party| {
        R::Held(api::Held {
            party: party as i32,
        })
    };
    let resumed = |party: api::Party| {
        R::Resumed(api::Resumed {
            party: party as i32,
        })
    };
    // ringing, not talking yet: refused
    call.until(|i| matches!(i, I::Ring(_)).then_some(())).await;
    let s = call.send(held(api::Party::Agent)).await;
    assert_eq!(
        call.result_of(s).await.code,
        Code::FailedPrecondition as i32
    );
    let s = call
        .send(R::Answered(api::AgentAnswered {
            agent: "bob".into(),
        }))
        .await;
    assert_eq!(call.result_of(s).await.code, 0);
    // a report that names no party
    let s = call.send(held(api::Party::Unspecified)).await;
    let r = call.result_of(s).await;
    assert_eq!(r.code, Code::InvalidArgument as i32, "{}", r.message);
    // bob holds, a repeat is a duplicate, resuming the caller's (absent) hold too
    for (report, code) in [
        (held(api::Party::Agent), Code::Ok),
        (held(api::Party::Agent), Code::AlreadyExists),
        (resumed(api::Party::Caller), Code::AlreadyExists),
    ] {
        let s = call.send(report).await;
        let r = call.result_of(s).await;
        assert_eq!(r.code, code as i32, "{}", r.message);
    }
    assert_eq!(
        held_by(&h, "call-h").await,
        vec!["agent".to_owned()],
        "the read API shows it"
    );
    let s = call.send(resumed(api::Party::Agent)).await;
    assert_eq!(call.result_of(s).await.code, 0);
    assert!(held_by(&h, "call-h").await.is_empty());
    assert_eq!(state_of(&h, "bob").await.state, "on_call");
    call.hang_up(api::Party::Caller).await;
    let story: Vec<String> = all_events(&h)
        .await
        .iter()
        .filter(|e| e.aggregate_id == "call-h")
        .filter_map(|e| match e.event.as_ref()?.kind.as_ref()? {
            pb::event::Kind::CallHeld(x) => Some(format!("held {} {}", x.agent, x.by)),
            pb::event::Kind::CallResumed(x) => Some(format!("resumed {} {}", x.agent, x.by)),
            _ => None,
        })
        .collect();
    let agent = pb::Party::Agent as i32;
    assert_eq!(
        story,
        vec![format!("held bob {agent}"), format!("resumed bob {agent}")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agent_of_a_shared_extension_calls_out_even_when_both_dial_at_once() {
    let h = start().await;
    // ngoc and quang share the operator desk's extension 10000 (A1)
    h.login("ngoc").await;
    h.login("quang").await;
    for round in 0..5 {
        let (a, b) = (format!("a1-ngoc-{round}"), format!("a1-quang-{round}"));
        let (ngoc, quang) = tokio::join!(
            h.dial(&a, "ngoc", "0912345678"),
            h.dial(&b, "quang", "0912345679")
        );
        let (mut placed, refused, by) = match (ngoc, quang) {
            (Ok(c), Err(st)) => (c, st, "ngoc"),
            (Err(st), Ok(c)) => (c, st, "quang"),
            (Ok(_), Ok(_)) => panic!("round {round}: both agents of extension 10000 call out"),
            (Err(x), Err(y)) => panic!("round {round}: both refused: {x:?} {y:?}"),
        };
        assert_eq!(
            refused.code(),
            tonic::Code::FailedPrecondition,
            "{refused:?}"
        );
        assert!(
            refused.message().contains(&format!(
                "extension 10000 is calling out already (agent {by})"
            )),
            "{}",
            refused.message()
        );
        // the refused call left nothing behind; the placed one ends and frees the extension
        placed
            .until(|i| matches!(i, I::Ring(r) if r.agent == by).then_some(()))
            .await;
        placed.hang_up(api::Party::Agent).await;
        for agent in ["ngoc", "quang"] {
            let mut st = state_of(&h, agent).await;
            for _ in 0..200 {
                if st.state == "available" {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                st = state_of(&h, agent).await;
            }
            assert_eq!(st.state, "available", "{agent} after round {round}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_phone_calls_an_extension_is_on_that_call_until_it_ends() {
    let h = start().await;
    h.login("alice").await;
    h.login("chi").await;
    // alice's phone calls chi's extension: chi rings, alice is on that call
    let mut call = h
        .dial("int-1", "alice", "10003")
        .await
        .expect("internal call");
    call.until(|i| matches!(i, I::Ring(r) if r.agent == "chi").then_some(()))
        .await;
    let mut alice = state_of(&h, "alice").await;
    for _ in 0..200 {
        if alice.state == "on_call" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        alice = state_of(&h, "alice").await;
    }
    assert_eq!(
        (alice.state.as_str(), alice.call.as_str()),
        ("on_call", "int-1")
    );
    // a customer calls the sales queue (alice is its only member logged in)
    let mut customer = h.call("int-cust", SALES).await.expect("customer");
    // alice hangs up before chi answers: she is free at once and the customer reaches her
    call.hang_up(api::Party::Caller).await;
    customer
        .until(|i| matches!(i, I::Ring(r) if r.agent == "alice").then_some(()))
        .await;
    // ... and not before: in the log, alice is held for the customer only after int-1 ended
    let ev = all_events(&h).await;
    let at = |f: &dyn Fn(&pb::EventEnvelope) -> bool| ev.iter().position(f);
    let ended = at(&|e| {
        e.aggregate_id == "int-1"
            && matches!(
                e.event.as_ref().and_then(|e| e.kind.as_ref()),
                Some(pb::event::Kind::CallEnded(_))
            )
    })
    .expect("int-1 ended");
    let reserved = at(&|e| {
        matches!(
            e.event.as_ref().and_then(|e| e.kind.as_ref()),
            Some(pb::event::Kind::AgentReserved(r)) if r.agent == "alice" && r.call == "int-cust"
        )
    })
    .expect("alice reserved for the customer");
    assert!(
        ended < reserved,
        "alice was offered the customer while on int-1"
    );
}
