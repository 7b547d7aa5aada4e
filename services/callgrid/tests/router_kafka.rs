//! `callgrid router --kafka` against a real Kafka-protocol broker (Tansu): the router creates
//! the events topic, its events land there keyed by tenant, and after `kill -9` a router with
//! an empty data directory rebuilds the same state from Kafka alone.

use std::time::Duration;

use callgrid_eventlog::{tansu, EventLog, KafkaLog, KafkaLogOptions};
use callgrid_proto::api::v1 as api;
use callgrid_proto::events::v1 as pb;
use callgrid_router::journal::EVENTS_TOPIC;
use callgrid_testkit::{eventually, Authed, Node};
use prost::Message;
use tonic::transport::Channel;

/// `callgrid router` on `brokers` with an empty data directory of its own, once it serves
/// the demo tenant; killed (SIGKILL) when dropped.
async fn start_router(brokers: &str) -> Node {
    Node::router(env!("CARGO_BIN_EXE_callgrid"))
        .args(["--kafka", brokers, "--partitions", "4"])
        .ready_within(Duration::from_secs(90))
        .start()
        .await
}

/// (agent, state, reason) of every demo agent.
async fn agent_states(ch: Authed) -> Vec<(String, String, String)> {
    let mut agents = api::agent_service_client::AgentServiceClient::new(ch);
    let mut v: Vec<_> = agents
        .list_agents(api::ListAgentsRequest {
            tenant: "demo".into(),
        })
        .await
        .expect("list agents")
        .into_inner()
        .agents
        .into_iter()
        .map(|a| (a.agent, a.state, a.reason))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_on_kafka_writes_the_events_topic_and_recovers_from_it_alone() {
    let broker = tansu::start();
    let router = start_router(&broker.brokers).await;
    let ch = router.connect().await;

    let mut agents = api::agent_service_client::AgentServiceClient::new(ch.clone());
    for (agent, reason) in [("alice", ""), ("bob", "lunch")] {
        agents
            .login(api::LoginRequest {
                tenant: "demo".into(),
                agent: agent.into(),
                devices: vec![format!("sip:{agent}@127.0.0.1:5999")],
                not_ready_reason: reason.into(),
            })
            .await
            .expect("login");
    }
    // an illegal change is refused and changes nothing
    let refused = agents
        .login(api::LoginRequest {
            tenant: "demo".into(),
            agent: "alice".into(),
            devices: vec![],
            not_ready_reason: String::new(),
        })
        .await
        .expect_err("a second login is refused");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let before = agent_states(ch.clone()).await;
    assert!(before.contains(&("alice".into(), "available".into(), String::new())));
    assert!(before.contains(&("bob".into(), "not_ready".into(), "lunch".into())));
    drop(router); // kill -9: every acknowledged event is in Kafka

    // the topic of DESIGN.md, with the partitions asked for; every record keyed by its tenant
    let log = KafkaLog::new(KafkaLogOptions::new(broker.brokers.clone())).expect("kafka log");
    assert_eq!(log.partition_count(EVENTS_TOPIC).await.expect("topic"), 4);
    let mut kinds = Vec::new();
    for p in 0..4 {
        for r in log
            .read(EVENTS_TOPIC, p, 0, usize::MAX)
            .await
            .expect("read")
        {
            assert_eq!(r.key, b"demo", "records are keyed by tenant id");
            let env = pb::EventEnvelope::decode(r.value.as_slice()).expect("an envelope");
            assert_eq!(env.tenant, "demo");
            kinds.push(env.event.and_then(|e| e.kind).map(|k| format!("{k:?}")));
        }
    }
    let named = |what: &str| {
        kinds
            .iter()
            .filter(|k| k.as_deref().is_some_and(|k| k.starts_with(what)))
            .count()
    };
    assert_eq!(named("TenantConfigured"), 1, "{kinds:?}");
    assert_eq!(named("AgentLoggedIn"), 2, "{kinds:?}");

    // a new router with an empty data directory: everything comes from Kafka
    let router = start_router(&broker.brokers).await;
    let ch = router.connect().await;
    assert_eq!(agent_states(ch).await, before);
    // the demo tenant file was not a new version: loading it again wrote no second
    // configuration event
    let configured = {
        let mut n = 0;
        for p in 0..4 {
            for r in log
                .read(EVENTS_TOPIC, p, 0, usize::MAX)
                .await
                .expect("read")
            {
                let env = pb::EventEnvelope::decode(r.value.as_slice()).expect("an envelope");
                if matches!(
                    env.event.and_then(|e| e.kind),
                    Some(pb::event::Kind::TenantConfigured(_))
                ) {
                    n += 1;
                }
            }
        }
        n
    };
    assert_eq!(configured, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_outage_turns_health_not_serving_and_new_work_is_refused() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let broker = tansu::start();
    let router = start_router(&broker.brokers).await;
    let ch = router.connect().await;
    let bare = Channel::from_shared(format!("http://127.0.0.1:{}", router.grpc_port()))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let health = || async {
        tonic_health::pb::health_client::HealthClient::new(bare.clone())
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status)
    };
    assert_eq!(health().await.ok(), Some(ServingStatus::Serving as i32));
    let mut agents = api::agent_service_client::AgentServiceClient::new(ch);
    let login = |agent: &str| api::LoginRequest {
        tenant: "demo".into(),
        agent: agent.into(),
        devices: vec![],
        not_ready_reason: String::new(),
    };
    agents
        .login(login("alice"))
        .await
        .expect("a login while Kafka is up");

    // the broker goes away: the health service says so, without any write to notice it
    drop(broker);
    eventually(
        "health NOT_SERVING without Kafka",
        Duration::from_secs(60),
        async || health().await.ok() == Some(ServingStatus::NotServing as i32),
    )
    .await;
    // and new work is refused (UNAVAILABLE), not left hanging behind the outage
    let r = tokio::time::timeout(Duration::from_secs(20), agents.login(login("bob")))
        .await
        .expect("an answer, not a hang");
    assert_eq!(
        r.err().map(|e| e.code()),
        Some(tonic::Code::Unavailable),
        "a login while Kafka is out"
    );
}
