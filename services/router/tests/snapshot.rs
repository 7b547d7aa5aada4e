//! A snapshot of a log prefix plus the events after it rebuilds exactly what a full replay
//! rebuilds; a damaged snapshot is refused.

mod common;

use callgrid_proto::api::v1 as api;
use callgrid_router::recovery::{replay, replay_from, Recovered};
use callgrid_router::snapshot::Snapshot;
use common::*;

use api::edge_report::Report as R;
use api::router_instruction::Instruction as I;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_plus_tail_equals_full_replay() {
    let h = start().await;
    // the five members of the sales queue
    for a in ["alice", "bob", "phuc", "lan", "khanh"] {
        h.login(a).await;
    }
    // some finished calls, some in progress, one waiting in the menu
    for i in 0..5 {
        let mut call = h.call(&format!("s-{i}"), SALES).await.unwrap();
        let ring = call
            .until(|i| match i {
                I::Ring(r) => Some(r.agent.clone()),
                _ => None,
            })
            .await;
        let s = call
            .send(R::Answered(api::AgentAnswered { agent: ring }))
            .await;
        assert_eq!(call.result_of(s).await.code, 0);
        if i % 2 == 0 {
            call.hang_up(api::Party::Caller).await;
        } else {
            std::mem::forget(call); // keep the stream open: the call stays in progress
        }
    }
    let mut menu = h.call("m-0", MENU).await.unwrap();
    menu.until(|i| matches!(i, I::CollectDigits(_)).then_some(()))
        .await;
    std::mem::forget(menu);

    let log = h.router.log().as_ref();
    let full = replay(log).await.unwrap();
    assert!(full.events > 40, "{} events", full.events);
    for cut in [1, full.events / 3, full.events / 2, full.events - 1] {
        let mut prefix = Recovered::default();
        prefix.catch_up(log, Some(cut)).await.unwrap();
        let bytes = prefix.to_snapshot().encode().unwrap();
        let snap = Snapshot::decode(&bytes).unwrap();
        let resumed = replay_from(log, Some(snap)).await.unwrap();
        assert_eq!(resumed.events, full.events);
        assert_eq!(resumed.offsets, full.offsets);
        assert_eq!(resumed.tenants.len(), full.tenants.len());
        for (id, t) in &full.tenants {
            let r = &resumed.tenants[id];
            assert!(
                r.core == t.core,
                "tenant {id} differs after a snapshot at {cut}"
            );
            for (q, queue) in &t.core.queues {
                assert_eq!(queue.board, r.core.queues[q].board);
            }
        }
    }
    assert!(Snapshot::decode(b"not a snapshot").is_err());
}
