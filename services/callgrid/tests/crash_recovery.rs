//! `kill -9` under load, then restart: no acknowledged event is lost, and the state the
//! router rebuilds equals a replay of the log; after the edge grace period nothing is stuck.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callgrid_eventlog::{SqliteLog, SqliteLogOptions};
use callgrid_proto::api::v1 as api;
use callgrid_proto::events::v1 as pb;
use callgrid_testkit::{eventually, free_tcp_port, Authed, Node};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use api::edge_report::Report as R;
use api::router_instruction::Instruction as I;

const SALES: &str = "+842873000200";
const SUPPORT_MENU: &str = "+842873000100";
const AGENTS: [&str; 8] = ["alice", "bob", "phuc", "lan", "chi", "dung", "minh", "hoa"];

/// `callgrid serve` on `dir` and `port`, serving; killed (SIGKILL) when dropped, also when a
/// test fails.
fn start(dir: &Path, port: u16, grace_s: u64) -> Node {
    Node::serve(env!("CARGO_BIN_EXE_callgrid"))
        // the calls come over gRPC call control, as from an edge elsewhere (no SIP)
        .data_dir(dir)
        .grpc_port(port)
        .args(["--edge-grace-seconds", &grace_s.to_string()])
        .args(["--snapshot-every", "500"])
        .start_blocking()
}

/// What the router acknowledged: (call or agent, what).
type Acks = Arc<Mutex<Vec<(String, &'static str)>>>;

async fn one_call(ch: Authed, id: String, number: &'static str, acks: Acks) {
    let (tx, rx) = mpsc::channel(16);
    let send = |seq: u64, r: R| api::EdgeReport {
        call_id: id.clone(),
        seq,
        report: Some(r),
        ack: true,
    };
    let _ = tx
        .send(send(
            1,
            R::Arrived(api::Arrived {
                number: number.into(),
                caller: "0961234566".into(),
                tenant: String::new(),
                traceparent: String::new(),
            }),
        ))
        .await;
    let mut client = api::call_control_client::CallControlClient::new(ch);
    let Ok(resp) = client.call(ReceiverStream::new(rx)).await else {
        return;
    };
    let mut stream = resp.into_inner();
    let mut kinds = std::collections::HashMap::new();
    kinds.insert(1u64, "arrived");
    let mut seq = 1;
    while let Ok(Some(ins)) = stream.message().await {
        match ins.instruction {
            Some(I::Result(r)) if r.code == 0 => {
                if let Some(k) = kinds.get(&r.seq) {
                    acks.lock().expect("acks").push((id.clone(), k));
                }
            }
            Some(I::CollectDigits(_)) => {
                seq += 1;
                kinds.insert(seq, "digits");
                let _ = tx
                    .send(send(seq, R::Digits(api::Digits { digits: "1".into() })))
                    .await;
            }
            Some(I::Ring(r)) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                seq += 1;
                let _ = tx
                    .send(send(
                        seq,
                        R::Ringing(api::AgentRinging {
                            agent: r.agent.clone(),
                        }),
                    ))
                    .await;
                seq += 1;
                kinds.insert(seq, "answered");
                let _ = tx
                    .send(send(
                        seq,
                        R::Answered(api::AgentAnswered { agent: r.agent }),
                    ))
                    .await;
            }
            Some(I::Bridge(_)) => {
                tokio::time::sleep(Duration::from_millis(150)).await;
                seq += 1;
                kinds.insert(seq, "hangup");
                let _ = tx
                    .send(send(
                        seq,
                        R::Hangup(api::Hangup {
                            party: api::Party::Caller as i32,
                            sip_code: 0,
                        }),
                    ))
                    .await;
            }
            _ => {}
        }
    }
}

/// Every agent of the demo tenant, as the agent API lists them.
async fn demo_agents(
    agents: &mut api::agent_service_client::AgentServiceClient<Authed>,
) -> api::ListAgentsResponse {
    agents
        .list_agents(api::ListAgentsRequest {
            tenant: "demo".into(),
        })
        .await
        .expect("list")
        .into_inner()
}

fn read_log(dir: &Path) -> Vec<pb::EventEnvelope> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(common::read_events(&dir.join("events.sqlite")))
}

fn replay(dir: &Path) -> callgrid_domain::TenantCore {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let log = SqliteLog::open_async(dir.join("events.sqlite"), SqliteLogOptions::default())
            .await
            .expect("log");
        let r = callgrid_router::recovery::replay(&log)
            .await
            .expect("replay");
        log.close().await;
        r.tenants
            .into_values()
            .next()
            .expect("the demo tenant")
            .core
    })
}

#[test]
fn kill_minus_nine_under_load_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_tcp_port();
    let mut node = start(dir.path(), port, 3600);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let acks: Acks = Arc::new(Mutex::new(Vec::new()));
    rt.block_on(async {
        let ch = node.connect().await;
        let mut agents = api::agent_service_client::AgentServiceClient::new(ch.clone());
        for a in AGENTS {
            agents
                .login(api::LoginRequest {
                    tenant: "demo".into(),
                    agent: a.into(),
                    devices: vec![format!("sip:{a}@127.0.0.1")],
                    not_ready_reason: String::new(),
                })
                .await
                .expect("login");
            acks.lock().expect("acks").push((a.to_string(), "login"));
        }
        // a steady stream of calls; kill while many are in flight
        let mut tasks = Vec::new();
        for i in 0..400 {
            let number = if i % 3 == 0 { SUPPORT_MENU } else { SALES };
            tasks.push(tokio::spawn(one_call(
                ch.clone(),
                format!("crash-{i}"),
                number,
                acks.clone(),
            )));
            tokio::time::sleep(Duration::from_millis(4)).await;
        }
        node.stop();
        for t in tasks {
            let _ = t.await;
        }
    });
    let acks = acks.lock().expect("acks").clone();
    assert!(
        acks.len() > 100,
        "the load produced acknowledgements ({})",
        acks.len()
    );

    // 1. every acknowledged report is durable
    let events = read_log(dir.path());
    let mut facts: HashSet<(String, &'static str)> = HashSet::new();
    for e in &events {
        let what = match e.event.as_ref().and_then(|e| e.kind.as_ref()) {
            Some(pb::event::Kind::CallArrived(_)) => "arrived",
            Some(pb::event::Kind::CallAnswered(_)) => "answered",
            Some(pb::event::Kind::CallEnded(_)) => "hangup",
            Some(pb::event::Kind::CallRouted(r))
                if matches!(
                    r.reason.as_ref().and_then(|r| r.kind.as_ref()),
                    Some(pb::route_reason::Kind::MenuChoice(_))
                ) =>
            {
                "digits"
            }
            Some(pb::event::Kind::AgentLoggedIn(_)) => "login",
            _ => continue,
        };
        facts.insert((e.aggregate_id.clone(), what));
    }
    let lost: Vec<_> = acks.iter().filter(|a| !facts.contains(*a)).collect();
    assert!(lost.is_empty(), "acknowledged but not in the log: {lost:?}");
    println!(
        "{} acknowledgements, {} events in the log, none lost",
        acks.len(),
        events.len()
    );

    // 2. the restarted router rebuilds exactly the replay of the log
    let expected = replay(dir.path());
    let in_progress = expected.calls.len();
    let mut node = start(dir.path(), port, 3600);
    rt.block_on(async {
        let ch = node.connect().await;
        let mut agents = api::agent_service_client::AgentServiceClient::new(ch.clone());
        let list = demo_agents(&mut agents).await;
        for st in list.agents {
            let a = &expected.agents[&callgrid_domain::AgentId::new(&st.agent)];
            assert_eq!(st.state, a.state.name(), "agent {}", st.agent);
            assert_eq!(st.calls, a.calls, "agent {}", st.agent);
            assert_eq!(st.talk_ms, a.talk_ms, "agent {}", st.agent);
            assert_eq!(st.since_ms, a.since, "agent {}", st.agent);
            assert_eq!(
                st.call,
                a.state.call().map(|c| c.to_string()).unwrap_or_default()
            );
        }
        let mut reads = api::read_service_client::ReadServiceClient::new(ch.clone());
        let queues = reads
            .list_queues(api::ListQueuesRequest {
                tenant: "demo".into(),
            })
            .await
            .expect("queues")
            .into_inner();
        for q in queues.queues {
            let e = &expected.queues[&callgrid_domain::QueueId::new(&q.queue)];
            let waiting: Vec<String> = q.waiting.iter().map(|w| w.call.clone()).collect();
            let expected_waiting: Vec<String> =
                e.waiting.iter().map(|w| w.call.to_string()).collect();
            assert_eq!(waiting, expected_waiting, "queue {}", q.queue);
            assert_eq!(q.answered, e.answered, "queue {}", q.queue);
        }
        for (id, c) in &expected.calls {
            let st = reads
                .get_call(api::CallRef {
                    tenant: "demo".into(),
                    call: id.to_string(),
                })
                .await
                .expect("recovered call")
                .into_inner();
            assert_eq!(st.phase, c.phase.name(), "call {id}");
        }
    });
    println!(
        "restart rebuilt {} agents, {} queues, {in_progress} calls in progress",
        expected.agents.len(),
        expected.queues.len()
    );
    node.stop();

    // 3. with a short edge grace, the calls nobody reports on are repaired: nothing stuck
    let mut node = start(dir.path(), port, 1);
    rt.block_on(async {
        let ch = node.connect().await;
        let mut agents = api::agent_service_client::AgentServiceClient::new(ch.clone());
        let mut admin = api::admin_client::AdminClient::new(ch);
        eventually(
            "nothing held 30 s after restart",
            Duration::from_secs(30),
            async || {
                let list = demo_agents(&mut agents).await;
                let stuck: Vec<_> = list
                    .agents
                    .iter()
                    .filter(|a| matches!(a.state.as_str(), "reserved" | "ringing" | "on_call"))
                    .map(|a| (a.agent.clone(), a.state.clone()))
                    .collect();
                let calls = admin
                    .stats(api::StatsRequest {
                        reset_latency: false,
                    })
                    .await
                    .expect("stats")
                    .into_inner()
                    .calls_in_progress;
                if stuck.is_empty() && calls == 0 {
                    Ok(())
                } else {
                    Err(format!("{calls} calls in progress, agents held: {stuck:?}"))
                }
            },
        )
        .await;
    });
    node.stop();
}
