//! Recovery: rebuild every tenant by replaying the event log from the start. The log is a
//! causally closed prefix of what happened (see `journal`), so the rebuilt state is the state
//! every acknowledged effect was based on.

use std::collections::HashMap;
use std::sync::Arc;

use actix::Actor;
use callgrid_domain::{Call, TenantCore, TenantId, TenantSetup};
use callgrid_eventlog::EventLog;
use callgrid_proto::events::v1 as pb;
use prost::Message;

use crate::actors::CallActor;
use crate::journal::EVENTS_TOPIC;
use crate::tenant::Tenant;
use crate::{convert, RouterError};

/// A tenant rebuilt from the log.
pub struct RecoveredTenant {
    /// Its aggregates (ended calls dropped), with the latest configuration.
    pub core: TenantCore,
    /// The YAML of the latest configuration.
    pub yaml: String,
    /// Every configuration version seen (calls keep the version they arrived under).
    pub setups: HashMap<u64, Arc<TenantSetup>>,
}

/// Everything rebuilt.
pub struct Recovered {
    /// Tenants.
    pub tenants: Vec<RecoveredTenant>,
    /// Events replayed.
    pub events: u64,
}

/// Parses a configuration already validated when it was written (no schema pass: recovery
/// must be fast).
fn parse_setup(tenant: &str, version: u64, yaml: &str) -> Result<TenantSetup, String> {
    let file = callgrid_config::load_trusted_str(tenant, yaml)
        .map_err(|e| format!("configuration of tenant {tenant}: {e}"))?;
    Ok(callgrid_config::to_setup(&file, version))
}

/// Reads the whole events topic and rebuilds every tenant.
pub async fn replay(log: &dyn EventLog) -> Result<Recovered, RouterError> {
    let partitions = log.partition_count(EVENTS_TOPIC).await?;
    let mut tenants: HashMap<TenantId, RecoveredTenant> = HashMap::new();
    let mut events = 0u64;
    for p in 0..partitions {
        let end = log.end_offset(EVENTS_TOPIC, p).await?;
        let mut next = 0u64;
        while next < end {
            let batch = log.read(EVENTS_TOPIC, p, next, 20_000).await?;
            if batch.is_empty() {
                break;
            }
            for rec in &batch {
                next = rec.offset + 1;
                let corrupt = |reason: String| RouterError::Corrupt {
                    partition: p,
                    offset: rec.offset,
                    reason,
                };
                let env = pb::EventEnvelope::decode(rec.value.as_slice())
                    .map_err(|e| corrupt(e.to_string()))?;
                events += 1;
                if let Some(pb::event::Kind::TenantConfigured(cfg)) =
                    env.event.as_ref().and_then(|e| e.kind.as_ref())
                {
                    let setup = Arc::new(
                        parse_setup(&env.tenant, cfg.version, &cfg.yaml).map_err(corrupt)?,
                    );
                    let id = TenantId::new(&env.tenant);
                    match tenants.get_mut(&id) {
                        Some(t) => {
                            t.core.setup = setup.clone();
                            for a in setup.agents.keys() {
                                t.core
                                    .agents
                                    .entry(a.clone())
                                    .or_insert_with(|| callgrid_domain::Agent::new(a.clone()));
                            }
                            for q in setup.queues.keys() {
                                t.core
                                    .queues
                                    .entry(q.clone())
                                    .or_insert_with(|| callgrid_domain::Queue::new(q.clone()));
                            }
                            t.yaml = cfg.yaml.clone();
                            t.setups.insert(cfg.version, setup);
                        }
                        None => {
                            tenants.insert(
                                id,
                                RecoveredTenant {
                                    core: TenantCore::new(setup.clone(), 0),
                                    yaml: cfg.yaml.clone(),
                                    setups: HashMap::from([(cfg.version, setup)]),
                                },
                            );
                        }
                    }
                    continue;
                }
                let Some(event) =
                    convert::envelope_event(&env).map_err(|e| corrupt(e.to_string()))?
                else {
                    continue;
                };
                match tenants.get_mut(env.tenant.as_str()) {
                    Some(t) => t.core.apply(&event),
                    None => {
                        return Err(corrupt(format!(
                            "event of tenant {} before its configuration",
                            env.tenant
                        )))
                    }
                }
            }
        }
    }
    let mut out: Vec<RecoveredTenant> = tenants.into_values().collect();
    for t in &mut out {
        t.core.rebuild_boards();
    }
    out.sort_by(|a, b| a.core.setup.tenant.cmp(&b.core.setup.tenant));
    Ok(Recovered {
        tenants: out,
        events,
    })
}

/// Starts the actor of a call that was in progress when the router stopped.
pub fn start_recovered_call(tenant: &Arc<Tenant>, call: Call, setup: Arc<TenantSetup>) {
    let id = call.id.clone();
    let t = tenant.clone();
    let addr = CallActor::start_in_arbiter(&tenant.arbiter, move |_| {
        CallActor::recovered(call, setup, t)
    });
    tenant.register_call(id, addr);
}
