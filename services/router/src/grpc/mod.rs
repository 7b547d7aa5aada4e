//! The gRPC services: agents, call control (the SIP edge), administration and reads, with
//! the standard health and reflection services.

mod admin;
mod agent;
mod call_control;
mod read;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use callgrid_proto::api::v1 as api;
use tonic::Status;

use crate::tenant::Tenant;
use crate::Router;

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

/// Why the gRPC server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed.
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves every service on `addr` until `shutdown` completes.
pub async fn serve(
    router: Arc<Router>,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })?;
    Ok(serve_on(router, listener, shutdown).await?)
}

/// Serves every service on a bound listener (tests bind port 0).
pub async fn serve_on(
    router: Arc<Router>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<api::call_control_server::CallControlServer<CallControlSvc>>()
        .await;
    health_reporter
        .set_serving::<api::agent_service_server::AgentServiceServer<AgentSvc>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(callgrid_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| {
            tracing::error!(error = %e, "reflection service");
            e
        });
    let mut builder = tonic::transport::Server::builder().tcp_nodelay(true);
    let mut routes = builder
        .add_service(health)
        .add_service(api::agent_service_server::AgentServiceServer::new(
            AgentSvc::new(router.clone()),
        ))
        .add_service(api::call_control_server::CallControlServer::new(
            CallControlSvc::new(router.clone()),
        ))
        .add_service(api::admin_server::AdminServer::new(AdminSvc::new(
            router.clone(),
        )))
        .add_service(api::read_service_server::ReadServiceServer::new(
            ReadSvc::new(router.clone()),
        ));
    if let Ok(r) = reflection {
        routes = routes.add_service(r);
    }
    // a custom listener does not get the builder's TCP_NODELAY: without it small gRPC
    // messages wait for delayed ACKs (tens of ms)
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    routes
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
