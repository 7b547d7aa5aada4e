//! The access API: tokens and users (the CLI's `callgrid token` and `callgrid user`).

use std::sync::Arc;
use std::time::Duration;

use callgrid_access::{Access, Role, TokenEntry, TokenSpec, UserEntry};
use callgrid_domain::AgentId;
use callgrid_proto::api::v1 as api;
use tonic::{Request, Response, Status};

use super::convert::access_status;
use super::{caller, limits, writable};
use crate::Router;

/// The access service.
pub struct AccessSvc {
    router: Arc<Router>,
    access: Arc<Access>,
}

impl AccessSvc {
    /// Over a router's tenants and a node's credentials.
    pub fn new(router: Arc<Router>, access: Arc<Access>) -> AccessSvc {
        AccessSvc { router, access }
    }

    /// NOT_FOUND unless the tenant (and the agent) exist: a credential for nobody is a
    /// mistake worth saying.
    fn exists(&self, tenant: &str, agent: Option<&str>) -> Result<(), Status> {
        let t = self
            .router
            .tenant(tenant)
            .ok_or_else(|| Status::not_found(format!("unknown tenant {tenant}")))?;
        if let Some(a) = agent {
            if t.agent(&AgentId::new(a)).is_none() {
                return Err(Status::not_found(format!(
                    "unknown agent {a} of tenant {tenant}"
                )));
            }
        }
        Ok(())
    }
}

fn role(s: &str) -> Result<Role, Status> {
    Role::parse(s).ok_or_else(|| {
        Status::invalid_argument(format!(
            "role must be one of {}",
            Role::ALL.map(|r| r.as_str()).join(", ")
        ))
    })
}

fn token_info(t: &TokenEntry) -> api::TokenInfo {
    api::TokenInfo {
        id: t.id.clone(),
        role: t.role.to_string(),
        tenant: t.tenant.clone().unwrap_or_default(),
        agent: t.agent.clone().unwrap_or_default(),
        expires_ms: t.expires_ms.unwrap_or(0),
        label: t.label.clone(),
        created_ms: t.created_ms,
        created_by: t.created_by.clone(),
    }
}

fn user_info(u: &UserEntry) -> api::UserInfo {
    api::UserInfo {
        tenant: u.tenant.clone(),
        name: u.name.clone(),
        role: u.role.to_string(),
        agent: u.agent.clone().unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl api::access_server::Access for AccessSvc {
    async fn who_am_i(
        &self,
        req: Request<api::WhoAmIRequest>,
    ) -> Result<Response<api::Identity>, Status> {
        let p = caller(&req)?;
        Ok(Response::new(api::Identity {
            id: p.id.to_string(),
            role: p.role.to_string(),
            tenant: p.tenant.as_deref().unwrap_or_default().to_owned(),
            agent: p.agent.as_deref().unwrap_or_default().to_owned(),
        }))
    }

    async fn create_token(
        &self,
        req: Request<api::CreateTokenRequest>,
    ) -> Result<Response<api::CreateTokenResponse>, Status> {
        let by = caller(&req)?;
        writable(&self.router)?;
        let r = req.into_inner();
        let role = role(&r.role)?;
        limits::optional_id("tenant", &r.tenant)?;
        limits::optional_id("agent", &r.agent)?;
        // scope first, so a tenant admin learns nothing of other tenants
        let tenant = (!r.tenant.is_empty()).then_some(r.tenant.as_str());
        Access::may_manage(&by, role, tenant).map_err(super::denied)?;
        if let Some(t) = tenant {
            self.exists(t, (!r.agent.is_empty()).then_some(r.agent.as_str()))?;
        }
        let issued = self
            .access
            .issue_token(
                &by,
                TokenSpec {
                    role: Some(role),
                    tenant: tenant.map(str::to_owned),
                    agent: (!r.agent.is_empty()).then(|| r.agent.clone()),
                    expires_in: (r.expires_in_s > 0).then(|| Duration::from_secs(r.expires_in_s)),
                    label: r.label,
                },
            )
            .await
            .map_err(access_status)?;
        tracing::info!(by = %by.id, token = %issued.entry.id, role = %role, tenant = ?issued.entry.tenant, "token issued");
        Ok(Response::new(api::CreateTokenResponse {
            info: Some(token_info(&issued.entry)),
            token: issued.token,
        }))
    }

    async fn revoke_token(
        &self,
        req: Request<api::RevokeTokenRequest>,
    ) -> Result<Response<api::RevokeTokenResponse>, Status> {
        let by = caller(&req)?;
        writable(&self.router)?;
        let id = req.into_inner().id;
        if !callgrid_access::is_credential_id(&id) {
            return Err(Status::invalid_argument(
                "id must be a token id (16 hex digits, from ListTokens)",
            ));
        }
        self.access
            .revoke_token(&by, &id)
            .await
            .map_err(access_status)?;
        tracing::info!(by = %by.id, token = %id, "token revoked");
        Ok(Response::new(api::RevokeTokenResponse {}))
    }

    async fn list_tokens(
        &self,
        req: Request<api::ListTokensRequest>,
    ) -> Result<Response<api::ListTokensResponse>, Status> {
        let by = caller(&req)?;
        let t = &req.get_ref().tenant;
        limits::optional_id("tenant", t)?;
        let tokens = self
            .access
            .tokens(&by, (!t.is_empty()).then_some(t.as_str()))
            .map_err(super::denied)?;
        Ok(Response::new(api::ListTokensResponse {
            tokens: tokens.iter().map(token_info).collect(),
        }))
    }

    async fn add_user(
        &self,
        req: Request<api::AddUserRequest>,
    ) -> Result<Response<api::UserInfo>, Status> {
        let by = caller(&req)?;
        writable(&self.router)?;
        let r = req.into_inner();
        let role = role(&r.role)?;
        limits::id("tenant", &r.tenant)?;
        limits::id("name", &r.name)?;
        limits::optional_id("agent", &r.agent)?;
        Access::may_manage(&by, role, Some(&r.tenant)).map_err(super::denied)?;
        let own = if r.agent.is_empty() {
            &r.name
        } else {
            &r.agent
        };
        let agent = (role == Role::Agent).then_some(own.as_str());
        self.exists(&r.tenant, agent)?;
        let user = self
            .access
            .save_user(&by, &r.tenant, &r.name, role, agent, &r.password)
            .await
            .map_err(access_status)?;
        tracing::info!(by = %by.id, tenant = %r.tenant, user = %r.name, role = %role, "user added");
        Ok(Response::new(user_info(&user)))
    }

    async fn set_password(
        &self,
        req: Request<api::SetPasswordRequest>,
    ) -> Result<Response<api::UserInfo>, Status> {
        let by = caller(&req)?;
        writable(&self.router)?;
        let r = req.into_inner();
        limits::id("tenant", &r.tenant)?;
        limits::id("name", &r.name)?;
        by.tenant(&r.tenant).map_err(super::denied)?;
        let user = self
            .access
            .set_password(&by, &r.tenant, &r.name, &r.password)
            .await
            .map_err(access_status)?;
        tracing::info!(by = %by.id, tenant = %r.tenant, user = %r.name, "password changed");
        Ok(Response::new(user_info(&user)))
    }

    async fn remove_user(
        &self,
        req: Request<api::RemoveUserRequest>,
    ) -> Result<Response<api::RemoveUserResponse>, Status> {
        let by = caller(&req)?;
        writable(&self.router)?;
        let r = req.into_inner();
        limits::id("tenant", &r.tenant)?;
        limits::id("name", &r.name)?;
        by.tenant(&r.tenant).map_err(super::denied)?;
        self.access
            .remove_user(&by, &r.tenant, &r.name)
            .await
            .map_err(access_status)?;
        tracing::info!(by = %by.id, tenant = %r.tenant, user = %r.name, "user removed");
        Ok(Response::new(api::RemoveUserResponse {}))
    }

    async fn list_users(
        &self,
        req: Request<api::ListUsersRequest>,
    ) -> Result<Response<api::ListUsersResponse>, Status> {
        let by = caller(&req)?;
        let t = &req.get_ref().tenant;
        limits::optional_id("tenant", t)?;
        let users = self
            .access
            .users(&by, (!t.is_empty()).then_some(t.as_str()))
            .map_err(super::denied)?;
        Ok(Response::new(api::ListUsersResponse {
            users: users.iter().map(user_info).collect(),
        }))
    }
}
