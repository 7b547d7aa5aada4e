//! The agent API: login, logout, state with reason, list.

use std::sync::Arc;

use callgrid_domain::{AgentCommand, AgentId, AgentState, CallCommand, CallId};
use callgrid_proto::api::v1 as api;
use tonic::{Request, Response, Status};

use super::convert::{self, agent_status};
use super::{caller, durable, limits, mailbox, scoped, writable};
use crate::actors::{AgentMsg, CallMsg, GetAgent};
use crate::tenant::{ExtensionClaim, Tenant};
use crate::Router;
use callgrid_access::Permission;

/// The agent service.
pub struct AgentSvc {
    router: Arc<Router>,
}

impl AgentSvc {
    /// Over a router.
    pub fn new(router: Arc<Router>) -> AgentSvc {
        AgentSvc { router }
    }
}

impl AgentSvc {
    async fn run(
        &self,
        by: &callgrid_access::Principal,
        tenant_id: &str,
        agent: &str,
        cmd: AgentCommand,
    ) -> Result<Response<api::AgentStatus>, Status> {
        let (t, addr) = self.agent(by, tenant_id, agent)?;
        writable(&self.router)?;
        let ticket = addr
            .send(AgentMsg(cmd, Some(by.id.clone())))
            .await
            .map_err(mailbox)?
            .map_err(|r| convert::status(&r))?;
        self.durable(ticket).await?;
        let a = addr.send(GetAgent).await.map_err(mailbox)?;
        Ok(Response::new(agent_status(&t, &a)))
    }

    /// The tenant and the actor of one of its agents, if `by` may act on it.
    fn agent(
        &self,
        by: &callgrid_access::Principal,
        tenant_id: &str,
        agent: &str,
    ) -> Result<(Arc<Tenant>, actix::Addr<crate::actors::AgentActor>), Status> {
        let t = scoped(
            &self.router,
            by,
            Permission::AgentControl,
            tenant_id,
            Some(agent),
        )?;
        let addr = t.agent(&AgentId::new(agent)).ok_or_else(|| {
            Status::not_found(format!("unknown agent {agent} of tenant {tenant_id}"))
        })?;
        Ok((t, addr))
    }

    /// Waits until the events of `ticket` are durable (at most `DURABLE_WAIT`).
    async fn durable(&self, ticket: crate::journal::Ticket) -> Result<(), Status> {
        durable(&self.router, ticket).await
    }
}

#[tonic::async_trait]
impl api::agent_service_server::AgentService for AgentSvc {
    async fn login(
        &self,
        req: Request<api::LoginRequest>,
    ) -> Result<Response<api::AgentStatus>, Status> {
        let by = caller(&req)?;
        let r = req.into_inner();
        let cmd = convert::login_command(&r)?;
        self.run(&by, &r.tenant, &r.agent, cmd).await
    }

    async fn logout(
        &self,
        req: Request<api::AgentRef>,
    ) -> Result<Response<api::AgentStatus>, Status> {
        let by = caller(&req)?;
        let r = req.into_inner();
        self.run(&by, &r.tenant, &r.agent, AgentCommand::Logout)
            .await
    }

    async fn set_state(
        &self,
        req: Request<api::SetStateRequest>,
    ) -> Result<Response<api::AgentStatus>, Status> {
        let by = caller(&req)?;
        let r = req.into_inner();
        let cmd = convert::state_command(r.state)?;
        self.run(&by, &r.tenant, &r.agent, cmd).await
    }

    async fn transfer(
        &self,
        req: Request<api::TransferRequest>,
    ) -> Result<Response<api::TransferResponse>, Status> {
        let by = caller(&req)?;
        let r = req.into_inner();
        let (t, addr) = self.agent(&by, &r.tenant, &r.agent)?;
        if r.target.trim().is_empty() {
            return Err(Status::invalid_argument("target is required"));
        }
        limits::text("target", &r.target, limits::MAX_NUMBER)?;
        writable(&self.router)?;
        let agent = AgentId::new(&r.agent);
        let a = addr.send(GetAgent).await.map_err(mailbox)?;
        let call = match &a.state {
            AgentState::OnCall { call, .. } => call.clone(),
            other => {
                return Err(Status::failed_precondition(format!(
                    "agent {} is {}, not on a call",
                    r.agent,
                    other.name()
                )))
            }
        };
        let call_addr = t
            .call(&call)
            .ok_or_else(|| Status::failed_precondition(format!("call {call} has ended")))?;
        let ticket = call_addr
            .send(CallMsg(
                CallCommand::Transfer {
                    agent,
                    to: r.target.trim().into(),
                },
                Some(by.id.clone()),
            ))
            .await
            .map_err(mailbox)?
            .map_err(|r| convert::status(&r))?;
        self.durable(ticket).await?;
        Ok(Response::new(api::TransferResponse {
            call: call.to_string(),
        }))
    }

    async fn click_to_call(
        &self,
        req: Request<api::ClickToCallRequest>,
    ) -> Result<Response<api::ClickToCallResponse>, Status> {
        let by = caller(&req)?;
        let r = req.into_inner();
        let t = scoped(
            &self.router,
            &by,
            Permission::CallOut,
            &r.tenant,
            Some(&r.agent),
        )?;
        if r.number.trim().is_empty() {
            return Err(Status::invalid_argument("number is required"));
        }
        limits::text("number", &r.number, limits::MAX_NUMBER)?;
        limits::text("correlation_id", &r.correlation_id, limits::MAX_CORRELATION)?;
        let agent = AgentId::new(&r.agent);
        let addr = t.agent(&agent).ok_or_else(|| {
            Status::not_found(format!("unknown agent {} of tenant {}", r.agent, r.tenant))
        })?;
        // the decisions, as the call will make them: a refusal is the caller's answer
        let decision = callgrid_domain::decide(&t.setup(), &agent, &r.number)
            .map_err(|e| convert::status(&e))?;
        writable(&self.router)?;
        let originations = &self.router.originations;
        let call = originations.call_id(t.now());
        let _claim = may_call_out(&t, &agent, &addr, &call).await?;
        let correlation = (!r.correlation_id.is_empty()).then(|| r.correlation_id.as_str().into());
        let placed = crate::originate::Placed {
            tenant: t.id.clone(),
            agent,
            dialled: r.number.trim().into(),
            correlation,
            by: by.id.clone(),
            number: decision.number.clone(),
        };
        let opened = originations.hand(call.clone(), placed).ok_or_else(|| {
            Status::unavailable(format!(
                "no SIP edge of tenant {} is connected to place calls",
                r.tenant
            ))
        })?;
        match tokio::time::timeout(crate::originate::OPEN_WAIT, opened).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(st))) => return Err(st),
            Ok(Err(_)) | Err(_) => {
                originations.forget(&call);
                return Err(Status::unavailable(format!(
                    "the SIP edge did not open call {call} in time"
                )));
            }
        }
        Ok(Response::new(api::ClickToCallResponse {
            call: call.to_string(),
            destination: decision.destination.to_string(),
            caller_number: decision.number.to_string(),
            class: decision.class.to_owned(),
            trunks: decision.trunks.iter().map(|t| t.to_string()).collect(),
        }))
    }

    async fn list_agents(
        &self,
        req: Request<api::ListAgentsRequest>,
    ) -> Result<Response<api::ListAgentsResponse>, Status> {
        let by = caller(&req)?;
        let t = scoped(
            &self.router,
            &by,
            Permission::AgentRead,
            &req.get_ref().tenant,
            None,
        )?;
        let mut agents = Vec::new();
        for (_, addr) in t.agent_addrs() {
            let a = addr.send(GetAgent).await.map_err(mailbox)?;
            agents.push(agent_status(&t, &a));
        }
        Ok(Response::new(api::ListAgentsResponse { agents }))
    }
}

/// Whether `agent` may place the call out `call` now: available or not ready (refused on a
/// call, ringing, reserved, in wrap-up), and A1: no other agent of its extension is calling
/// out (refused naming that agent). The extension is held for `call` in the same step as
/// that check, so of two agents of one extension asking in the same instant one is refused;
/// the claim frees it if the call is not created, the call's end otherwise.
pub(super) async fn may_call_out(
    t: &Arc<Tenant>,
    agent: &AgentId,
    addr: &actix::Addr<crate::actors::AgentActor>,
    call: &CallId,
) -> Result<Option<ExtensionClaim>, Status> {
    let a = addr.send(GetAgent).await.map_err(mailbox)?;
    if !matches!(a.state, AgentState::Available | AgentState::NotReady { .. }) {
        return Err(Status::failed_precondition(format!(
            "agent {agent} is {}: calling out needs it available or not ready",
            a.state
        )));
    }
    t.claim_extension(agent, call).map_err(|(ext, other)| {
        Status::failed_precondition(format!(
            "extension {ext} is calling out already (agent {other}): one agent of a shared extension calls out at a time"
        ))
    })
}
