//! The admin API: load tenant configurations (each load is an event), list tenants.

use std::sync::Arc;

use callgrid_proto::api::v1 as api;
use tonic::{Request, Response, Status};

use super::{caller, convert, denied, limits, writable};
use crate::Router;
use callgrid_access::Permission;

/// The admin service.
pub struct AdminSvc {
    router: Arc<Router>,
}

impl AdminSvc {
    /// Over a router.
    pub fn new(router: Arc<Router>) -> AdminSvc {
        AdminSvc { router }
    }
}

#[tonic::async_trait]
impl api::admin_server::Admin for AdminSvc {
    async fn load_tenant(
        &self,
        req: Request<api::LoadTenantRequest>,
    ) -> Result<Response<api::LoadTenantResponse>, Status> {
        let by = caller(&req)?;
        let r = req.into_inner();
        limits::text("source_name", &r.source_name, limits::MAX_SOURCE_NAME)?;
        if r.yaml.len() > limits::MAX_YAML {
            return Err(Status::invalid_argument(format!(
                "yaml is longer than {} bytes ({} bytes)",
                limits::MAX_YAML,
                r.yaml.len()
            )));
        }
        let source = if r.source_name.is_empty() {
            "request"
        } else {
            r.source_name.as_str()
        };
        // a tenant admin loads its own tenant only: read the tenant's id first
        if !by.platform_wide() {
            let file = callgrid_config::load_str(source, &r.yaml)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            by.check(Permission::TenantLoad, &file.tenant, None)
                .map_err(denied)?;
        }
        writable(&self.router)?;
        let (id, version) = self
            .router
            .load_tenant_by(source, &r.yaml, Some(&by.id))
            .await
            .map_err(|e| convert::load_error(e, by.platform_wide()))?;
        let setup = self
            .router
            .tenant(id.as_str())
            .map(|t| t.setup())
            .ok_or_else(|| Status::internal("tenant vanished after loading"))?;
        Ok(Response::new(api::LoadTenantResponse {
            tenant: id.to_string(),
            version,
            agents: setup.agents.len() as u32,
            queues: setup.queues.len() as u32,
        }))
    }

    async fn list_tenants(
        &self,
        req: Request<api::ListTenantsRequest>,
    ) -> Result<Response<api::ListTenantsResponse>, Status> {
        let by = caller(&req)?;
        let tenants = self
            .router
            .tenant_ids()
            .into_iter()
            .filter(|id| by.tenant(id.as_str()).is_ok())
            .filter_map(|id| self.router.tenant(id.as_str()))
            .map(|t| convert::tenant_summary(&t))
            .collect();
        Ok(Response::new(api::ListTenantsResponse { tenants }))
    }

    async fn stats(
        &self,
        req: Request<api::StatsRequest>,
    ) -> Result<Response<api::StatsResponse>, Status> {
        caller(&req)?
            .allow(Permission::RouterStats)
            .map_err(denied)?;
        let decision_us = match self.router.shared.decisions.lock() {
            Ok(mut h) => {
                let summary = api::LatencySummary {
                    count: h.len(),
                    p50: h.value_at_quantile(0.5),
                    p90: h.value_at_quantile(0.9),
                    p99: h.value_at_quantile(0.99),
                    p999: h.value_at_quantile(0.999),
                    max: h.max(),
                };
                if req.get_ref().reset_latency {
                    h.reset();
                }
                Some(summary)
            }
            Err(_) => None,
        };
        let (events, batches) = self.router.shared.journal.counters();
        let ids = self.router.tenant_ids();
        let calls = ids
            .iter()
            .filter_map(|id| self.router.tenant(id.as_str()))
            .map(|t| t.call_count())
            .sum::<usize>();
        Ok(Response::new(api::StatsResponse {
            events_written: events,
            batches_written: batches,
            calls_in_progress: calls as u32,
            tenants: ids.len() as u32,
            events_recovered: self.router.recovery.0,
            recovery_ms: self.router.recovery.1,
            decision_us,
            calls_shed: self.router.shared.shedder.counts().1,
            shed_probability: self.router.shared.shedder.probability(),
            backlog_us: self.router.shared.shedder.delay().as_micros() as u64,
        }))
    }
}
