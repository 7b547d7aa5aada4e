//! The read API: current state of queues, agents and calls, straight from their actors.

use std::sync::Arc;

use callgrid_domain::{AgentId, CallId, CallPhase, Queue, QueueId};
use callgrid_proto::api::v1 as api;
use tonic::{Request, Response, Status};

use super::agent::agent_status;
use super::{caller, limits, mailbox, scoped};
use crate::actors::{GetAgent, GetCall, GetQueue};
use crate::tenant::Tenant;
use crate::Router;
use callgrid_access::Permission;

/// The read service.
pub struct ReadSvc {
    router: Arc<Router>,
}

impl ReadSvc {
    /// Over a router.
    pub fn new(router: Arc<Router>) -> ReadSvc {
        ReadSvc { router }
    }
}

fn queue_status(t: &Tenant, q: &Queue, now: u64) -> api::QueueStatus {
    let setup = t.setup();
    let qs = setup.queues.get(&q.id);
    let waiting: Vec<api::WaitingCall> = q
        .waiting
        .iter()
        .enumerate()
        .map(|(i, w)| api::WaitingCall {
            call: w.call.to_string(),
            position: i as u32 + 1,
            waited_ms: now.saturating_sub(w.joined_at),
            expected_wait_ms: q.expected_wait_ms(&w.call).unwrap_or(0),
            priority: w.priority,
            callback: w.callback,
            offered_to: w
                .offer
                .as_ref()
                .map(|o| o.offered.iter().map(|a| a.to_string()).collect())
                .unwrap_or_default(),
        })
        .collect();
    let members = qs.map_or(0, |qs| qs.members.len() as u32);
    let (logged_in, available) = qs.map_or((0, 0), |qs| {
        qs.members
            .iter()
            .fold((0, 0), |(l, a), m| match q.board.get(&m.agent) {
                Some(v) => (l + u32::from(v.logged_in), a + u32::from(v.available)),
                None => (l, a),
            })
    });
    api::QueueStatus {
        tenant: t.id.to_string(),
        queue: q.id.to_string(),
        name: qs.map(|q| q.name.to_string()).unwrap_or_default(),
        strategy: qs
            .map(|q| q.strategy.name().to_string())
            .unwrap_or_default(),
        longest_wait_ms: waiting.iter().map(|w| w.waited_ms).max().unwrap_or(0),
        waiting,
        members,
        logged_in,
        available,
        answered: q.answered,
    }
}

#[tonic::async_trait]
impl api::read_service_server::ReadService for ReadSvc {
    async fn get_queue(
        &self,
        req: Request<api::QueueRef>,
    ) -> Result<Response<api::QueueStatus>, Status> {
        let by = caller(&req)?;
        let r = req.into_inner();
        let t = scoped(&self.router, &by, Permission::QueueRead, &r.tenant, None)?;
        limits::id("queue", &r.queue)?;
        let addr = t.queue(&QueueId::new(&r.queue)).ok_or_else(|| {
            Status::not_found(format!("unknown queue {} of tenant {}", r.queue, r.tenant))
        })?;
        let q = addr.send(GetQueue).await.map_err(mailbox)?;
        Ok(Response::new(queue_status(&t, &q, t.now())))
    }

    async fn list_queues(
        &self,
        req: Request<api::ListQueuesRequest>,
    ) -> Result<Response<api::ListQueuesResponse>, Status> {
        let by = caller(&req)?;
        let t = scoped(
            &self.router,
            &by,
            Permission::QueueRead,
            &req.get_ref().tenant,
            None,
        )?;
        let mut queues = Vec::new();
        for (_, addr) in t.queue_addrs() {
            let q = addr.send(GetQueue).await.map_err(mailbox)?;
            queues.push(queue_status(&t, &q, t.now()));
        }
        Ok(Response::new(api::ListQueuesResponse { queues }))
    }

    async fn get_agent(
        &self,
        req: Request<api::AgentRef>,
    ) -> Result<Response<api::AgentStatus>, Status> {
        let by = caller(&req)?;
        let r = req.into_inner();
        let t = scoped(
            &self.router,
            &by,
            Permission::AgentRead,
            &r.tenant,
            Some(&r.agent),
        )?;
        let addr = t.agent(&AgentId::new(&r.agent)).ok_or_else(|| {
            Status::not_found(format!("unknown agent {} of tenant {}", r.agent, r.tenant))
        })?;
        let a = addr.send(GetAgent).await.map_err(mailbox)?;
        Ok(Response::new(agent_status(&t, &a)))
    }

    async fn get_call(
        &self,
        req: Request<api::CallRef>,
    ) -> Result<Response<api::CallStatus>, Status> {
        let by = caller(&req)?;
        let r = req.into_inner();
        let t = scoped(&self.router, &by, Permission::CallRead, &r.tenant, None)?;
        limits::text("call", &r.call, limits::MAX_CALL_ID)?;
        let addr = t.call(&CallId::new(&r.call)).ok_or_else(|| {
            Status::not_found(format!("unknown call {} of tenant {}", r.call, r.tenant))
        })?;
        let c = addr.send(GetCall).await.map_err(mailbox)?;
        Ok(Response::new(api::CallStatus {
            tenant: t.id.to_string(),
            call: c.id.to_string(),
            phase: c.phase.name().to_string(),
            number: c.number.to_string(),
            caller: c.caller.to_string(),
            queue: match &c.phase {
                CallPhase::Queued { queue } => queue.to_string(),
                _ => c
                    .last_queue
                    .as_ref()
                    .map(|q| q.to_string())
                    .unwrap_or_default(),
            },
            agent: c.agent().map(|a| a.to_string()).unwrap_or_default(),
            arrived_ms: c.arrived_at,
            answered_ms: c.answered_at.unwrap_or(0),
            plan_version: c.plan_version,
            offered_to: c.offers.iter().map(|o| o.agent.to_string()).collect(),
            held_by: c.held_by.iter().map(|p| p.name().to_owned()).collect(),
        }))
    }
}
