//! The read API: current state of queues, agents and calls, straight from their actors.

use std::sync::Arc;

use callgrid_domain::{AgentId, CallId, QueueId};
use callgrid_proto::api::v1 as api;
use tonic::{Request, Response, Status};

use super::convert::{agent_status, call_status, queue_status};
use super::{caller, limits, mailbox, scoped};
use crate::actors::{GetAgent, GetCall, GetQueue};
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
        Ok(Response::new(call_status(&t, &c)))
    }
}
