//! The gRPC services: agents, call control (the SIP edge), administration, access and reads,
//! with the standard health and reflection services, behind the access gate (`policy` says
//! what each method needs; each handler checks the tenant and agent its request names).

mod access;
mod admin;
mod agent;
mod call_control;
mod convert;
pub mod limits;
mod read;

use std::future::Future;
use std::sync::Arc;

use axum::http::Method;
use callgrid_access::{Access, Gate, Permission, Principal, Rule};
use callgrid_proto::api::v1 as api;
use tonic::Status;

use crate::tenant::Tenant;
use crate::Router;
use convert::denied;

pub use access::AccessSvc;
pub use admin::AdminSvc;
pub use agent::AgentSvc;
pub use call_control::CallControlSvc;
pub use read::ReadSvc;

/// Looks up a tenant named in a request.
fn tenant(router: &Router, id: &str) -> Result<Arc<Tenant>, Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("tenant is required"));
    }
    router
        .tenant(id)
        .ok_or_else(|| Status::not_found(format!("unknown tenant {id}")))
}

fn mailbox(e: actix::MailboxError) -> Status {
    Status::unavailable(format!("actor unavailable: {e}"))
}

/// The tenant a request names, once `by` may do `p` on it (and on `agent`): the ids are
/// checked against their bounds, then the caller's scope (PERMISSION_DENIED, whether or not
/// the tenant exists), then the tenant's existence (NOT_FOUND).
fn scoped(
    router: &Router,
    by: &Principal,
    p: Permission,
    tenant_id: &str,
    agent: Option<&str>,
) -> Result<Arc<Tenant>, Status> {
    limits::id("tenant", tenant_id)?;
    if let Some(a) = agent {
        limits::id("agent", a)?;
    }
    by.check(p, tenant_id, agent).map_err(denied)?;
    tenant(router, tenant_id)
}

/// `UNAVAILABLE` at once while the router takes no new work (its log is out).
fn writable(router: &Router) -> Result<(), Status> {
    if router.serving() {
        Ok(())
    } else {
        Err(Status::unavailable(
            "the event log is not answering: new work is refused until it does",
        ))
    }
}

/// Waits for `ticket` to be durable, at most [`crate::DURABLE_WAIT`].
async fn durable(router: &Router, ticket: crate::journal::Ticket) -> Result<(), Status> {
    match router
        .shared
        .journal
        .wait_at_most(ticket, crate::DURABLE_WAIT)
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(Status::unavailable(
            "the event log is not answering: the change is not durable yet (it may still be)",
        )),
        Err(e) => Err(Status::unavailable(e.to_string())),
    }
}

/// Who is calling (the gate put it there); a request that did not pass the gate is refused.
fn caller<T>(req: &tonic::Request<T>) -> Result<Principal, Status> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("credentials required"))
}

/// The access rule of each gRPC method (`/package.Service/Method`).
pub fn policy(_: &Method, path: &str) -> Rule {
    use Permission as P;
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    match service {
        // load balancers and orchestrators probe without credentials
        "grpc.health.v1.Health" => Rule::Open,
        "grpc.reflection.v1.ServerReflection" | "grpc.reflection.v1alpha.ServerReflection" => {
            Rule::Require(P::Reflection)
        }
        "callgrid.api.v1.AgentService" => Rule::Require(match method {
            "ListAgents" => P::AgentRead,
            "ClickToCall" => P::CallOut,
            _ => P::AgentControl,
        }),
        "callgrid.api.v1.CallControl" => Rule::Require(match method {
            "WatchTenants" => P::EdgeConfig,
            _ => P::CallControl,
        }),
        "callgrid.api.v1.ReadService" => Rule::Require(match method {
            "GetAgent" => P::AgentRead,
            "GetCall" => P::CallRead,
            _ => P::QueueRead,
        }),
        "callgrid.api.v1.Admin" => Rule::Admin(match method {
            "LoadTenant" => P::TenantLoad,
            "ListTenants" => P::TenantRead,
            _ => P::RouterStats,
        }),
        "callgrid.api.v1.Access" => match method {
            "WhoAmI" => Rule::Require(P::WhoAmI),
            _ => Rule::Admin(P::AccessManage),
        },
        // anything else: credentials first, then UNIMPLEMENTED
        _ => Rule::Require(P::WhoAmI),
    }
}

/// Largest message of the admin API (a tenant file of 1 MiB and its envelope).
pub const MAX_ADMIN_MESSAGE: usize = 2 << 20;
/// Largest message of every other service.
pub const MAX_MESSAGE: usize = 64 << 10;

/// Every gRPC service of `router` as one router, behind `gate` (which must use [`policy`]);
/// the access service manages `access`.
pub fn routes(router: Arc<Router>, access: Arc<Access>, gate: &Arc<Gate>) -> axum::Router {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    // the health service follows whether the router takes new work (its log answers)
    let watched = Arc::downgrade(&router);
    tokio::spawn(async move {
        use tonic_health::ServingStatus;
        let mut last = None;
        loop {
            let Some(r) = watched.upgrade() else { return };
            let serving = r.serving();
            drop(r);
            if last != Some(serving) {
                let status = if serving {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                for name in [
                    "",
                    <api::call_control_server::CallControlServer<CallControlSvc> as tonic::server::NamedService>::NAME,
                    <api::agent_service_server::AgentServiceServer<AgentSvc> as tonic::server::NamedService>::NAME,
                ] {
                    health_reporter.set_service_status(name, status).await;
                }
                last = Some(serving);
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    });
    let mut routes = tonic::service::Routes::new(health)
        .add_service(
            api::agent_service_server::AgentServiceServer::new(AgentSvc::new(router.clone()))
                .max_decoding_message_size(MAX_MESSAGE),
        )
        .add_service(
            api::call_control_server::CallControlServer::new(CallControlSvc::new(router.clone()))
                .max_decoding_message_size(MAX_MESSAGE),
        )
        .add_service(
            api::admin_server::AdminServer::new(AdminSvc::new(router.clone()))
                .max_decoding_message_size(MAX_ADMIN_MESSAGE),
        )
        .add_service(
            api::read_service_server::ReadServiceServer::new(ReadSvc::new(router.clone()))
                .max_decoding_message_size(MAX_MESSAGE),
        )
        .add_service(
            api::access_server::AccessServer::new(AccessSvc::new(router.clone(), access))
                .max_decoding_message_size(MAX_MESSAGE),
        );
    match tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(callgrid_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
    {
        Ok(r) => routes = routes.add_service(r),
        Err(e) => tracing::error!(error = %e, "reflection service"),
    }
    gate.guard(routes.prepare().into_axum_router())
}

/// Serves every service on a bound listener (with `options`: TLS, limits) until `shutdown`
/// completes.
pub async fn serve_on(
    router: Arc<Router>,
    access: Arc<Access>,
    gate: &Arc<Gate>,
    listener: tokio::net::TcpListener,
    options: callgrid_http::ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let app = routes(router, access, gate);
    callgrid_http::serve(listener, app, options, Arc::default(), shutdown).await;
}
