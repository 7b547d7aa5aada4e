//! The SIP edge's tenant configuration has one source: the router's (the tenant files as the
//! router keeps them, secrets sealed, rebuilt from the event log at every start). `callgrid
//! serve` hands its edge the router's configurations and every load after; `callgrid
//! sip-edge` follows `CallControl/WatchTenants`, so a tenant loaded or changed through
//! `Admin/LoadTenant` reaches an edge on another node without a restart.

use std::sync::Arc;
use std::time::Duration;

use callgrid_config::TenantFile;
use callgrid_proto::api::v1 as api;
use callgrid_router::Router;
use callgrid_sip_edge::SipEdge;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::client::Bearer;

/// The router's call-control client, showing the edge's token.
pub(crate) type Client =
    api::call_control_client::CallControlClient<InterceptedService<Channel, Bearer>>;

/// How long the edge waits before asking a router that did not answer again.
const RETRY: Duration = Duration::from_secs(1);

/// A configuration the router keeps, as the edge's tenant file (validated when it was loaded:
/// only parsed here).
fn edge_file(tenant: &str, yaml: &str) -> anyhow::Result<TenantFile> {
    callgrid_config::load_trusted_str(&format!("the router's configuration of {tenant}"), yaml)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Every tenant of the router in this process, for its edge.
pub(crate) fn from_router(router: &Router) -> anyhow::Result<Vec<TenantFile>> {
    router
        .tenant_configs()
        .iter()
        .map(|c| edge_file(c.tenant.as_str(), &c.yaml))
        .collect()
}

/// The tenant files of a message of `WatchTenants`; one the edge cannot read is reported and
/// left out (the edge keeps its last good version of that tenant).
fn files(msg: &api::TenantConfigs) -> Vec<TenantFile> {
    msg.tenants
        .iter()
        .filter_map(|c| match edge_file(&c.tenant, &c.yaml) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!(tenant = %c.tenant, version = c.version, error = %e, "tenant configuration left out");
                None
            }
        })
        .collect()
}

/// Opens `WatchTenants` until the router answers: the stream and every tenant it sees.
pub(crate) async fn first(
    client: &mut Client,
) -> (tonic::Streaming<api::TenantConfigs>, Vec<TenantFile>) {
    loop {
        match open(client).await {
            Ok((stream, initial)) => {
                tracing::info!(
                    tenants = initial.tenants.len(),
                    "tenant configurations from the router"
                );
                return (stream, files(&initial));
            }
            Err(st) => {
                tracing::warn!(code = ?st.code(), error = %st.message(), "the router does not give the tenants' configurations yet");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

async fn open(
    client: &mut Client,
) -> Result<(tonic::Streaming<api::TenantConfigs>, api::TenantConfigs), tonic::Status> {
    let mut stream = client
        .watch_tenants(api::WatchTenantsRequest {})
        .await?
        .into_inner();
    match stream.message().await? {
        Some(initial) if initial.initial => Ok((stream, initial)),
        _ => Err(tonic::Status::unavailable(
            "the router's stream did not begin with every tenant",
        )),
    }
}

/// Applies every change the router sends to `edge`, for as long as the process runs; a broken
/// stream is opened again (its first message brings every tenant again).
pub(crate) async fn follow(
    mut client: Client,
    mut stream: tonic::Streaming<api::TenantConfigs>,
    edge: Arc<SipEdge>,
) {
    loop {
        match stream.message().await {
            Ok(Some(msg)) => {
                for f in files(&msg) {
                    tracing::info!(tenant = %f.tenant, "tenant configuration from the router");
                    edge.upsert_tenant(f);
                }
            }
            Ok(None) | Err(_) => {
                tracing::warn!("the router's tenant configuration stream ended: opening it again");
                tokio::time::sleep(RETRY).await;
                let (again, all) = first(&mut client).await;
                for f in all {
                    edge.upsert_tenant(f);
                }
                stream = again;
            }
        }
    }
}
