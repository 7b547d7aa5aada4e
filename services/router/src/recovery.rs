//! Recovery: rebuild every tenant from the latest snapshot (if any) plus the events after it.
//! The log is a causally closed prefix of what happened (see `journal`), so the rebuilt state
//! is the state every acknowledged effect was based on.

use std::collections::HashMap;
use std::sync::Arc;

use actix::Actor;
use callgrid_domain::{Call, TenantCore, TenantId, TenantSetup};
use callgrid_eventlog::EventLog;
use callgrid_proto::events::v1 as pb;
use prost::Message;

use crate::actors::CallActor;
use crate::journal::EVENTS_TOPIC;
use crate::snapshot::{Snapshot, TenantSnap};
use crate::tenant::Tenant;
use crate::RouterError;

/// A tenant rebuilt from the log.
#[derive(Clone)]
pub struct RecoveredTenant {
    /// Its aggregates (ended calls dropped), with the latest configuration.
    pub core: TenantCore,
    /// The YAML of the latest configuration.
    pub yaml: String,
    /// Every configuration version seen (calls keep the version they arrived under), with
    /// its YAML.
    pub setups: HashMap<u64, (Arc<TenantSetup>, Arc<str>)>,
}

/// Everything rebuilt, and how far into the log.
#[derive(Clone, Default)]
pub struct Recovered {
    /// Tenants by id.
    pub tenants: HashMap<TenantId, RecoveredTenant>,
    /// Per partition of the events topic: the next offset to apply.
    pub offsets: Vec<u64>,
    /// Events applied in all (snapshot included).
    pub events: u64,
}

/// Parses a configuration already validated when it was written (no schema pass: recovery
/// must be fast).
fn parse_setup(tenant: &str, version: u64, yaml: &str) -> Result<TenantSetup, String> {
    let file = callgrid_config::load_trusted_str(tenant, yaml)
        .map_err(|e| format!("configuration of tenant {tenant}: {e}"))?;
    Ok(callgrid_config::to_setup(&file, version))
}

impl Recovered {
    /// State from a snapshot.
    pub fn from_snapshot(s: Snapshot) -> Result<Recovered, String> {
        let mut tenants = HashMap::new();
        for t in s.tenants {
            let mut setups: HashMap<u64, (Arc<TenantSetup>, Arc<str>)> = HashMap::new();
            for (version, yaml) in &t.configs {
                let setup = Arc::new(parse_setup(&t.tenant, *version, yaml)?);
                setups.insert(*version, (setup, Arc::from(yaml.as_str())));
            }
            let (latest, _) = setups.get(&t.version).cloned().ok_or_else(|| {
                format!("snapshot of tenant {} lacks its configuration", t.tenant)
            })?;
            let mut core = TenantCore::new(latest, 0);
            core.agents = t.agents.into_iter().map(|a| (a.id.clone(), a)).collect();
            core.queues = t.queues.into_iter().map(|q| (q.id.clone(), q)).collect();
            core.calls = t.calls.into_iter().map(|c| (c.id.clone(), c)).collect();
            core.rebuild_boards();
            let yaml = setups[&t.version].1.to_string();
            tenants.insert(
                TenantId::new(&t.tenant),
                RecoveredTenant { core, yaml, setups },
            );
        }
        Ok(Recovered {
            tenants,
            offsets: s.offsets,
            events: s.events,
        })
    }

    /// A snapshot of this state (configurations kept: the latest and those of live calls).
    pub fn to_snapshot(&self) -> Snapshot {
        let mut tenants: Vec<TenantSnap> = self
            .tenants
            .values()
            .map(|t| {
                let version = t.core.setup.version;
                let mut versions: Vec<u64> =
                    t.core.calls.values().map(|c| c.plan_version).collect();
                versions.push(version);
                versions.sort_unstable();
                versions.dedup();
                TenantSnap {
                    tenant: t.core.setup.tenant.to_string(),
                    version,
                    configs: versions
                        .into_iter()
                        .filter_map(|v| t.setups.get(&v).map(|(_, y)| (v, y.to_string())))
                        .collect(),
                    agents: t.core.agents.values().cloned().collect(),
                    queues: t.core.queues.values().cloned().collect(),
                    calls: t.core.calls.values().cloned().collect(),
                }
            })
            .collect();
        tenants.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        Snapshot::new(self.offsets.clone(), self.events, tenants)
    }

    /// Applies one stored record.
    fn apply(&mut self, partition: u32, offset: u64, value: &[u8]) -> Result<(), RouterError> {
        let corrupt = |reason: String| RouterError::Corrupt {
            partition,
            offset,
            reason,
        };
        let env = pb::EventEnvelope::decode(value).map_err(|e| corrupt(e.to_string()))?;
        self.events += 1;
        if let Some(pb::event::Kind::TenantConfigured(cfg)) =
            env.event.as_ref().and_then(|e| e.kind.as_ref())
        {
            let setup =
                Arc::new(parse_setup(&env.tenant, cfg.version, &cfg.yaml).map_err(corrupt)?);
            let yaml: Arc<str> = Arc::from(cfg.yaml.as_str());
            let id = TenantId::new(&env.tenant);
            match self.tenants.get_mut(&id) {
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
                    t.setups.insert(cfg.version, (setup, yaml));
                }
                None => {
                    self.tenants.insert(
                        id,
                        RecoveredTenant {
                            core: TenantCore::new(setup.clone(), 0),
                            yaml: cfg.yaml.clone(),
                            setups: HashMap::from([(cfg.version, (setup, yaml))]),
                        },
                    );
                }
            }
            return Ok(());
        }
        let Some(event) =
            callgrid_codec::envelope_event(&env).map_err(|e| corrupt(e.to_string()))?
        else {
            return Ok(());
        };
        match self.tenants.get_mut(env.tenant.as_str()) {
            Some(t) => {
                t.core.apply(&event);
                Ok(())
            }
            None => Err(corrupt(format!(
                "event of tenant {} before its configuration",
                env.tenant
            ))),
        }
    }

    /// Reads and applies the events after `offsets`, up to the end of the log (or `limit`
    /// events); returns how many were applied. Boards are rebuilt at the end.
    pub async fn catch_up(
        &mut self,
        log: &dyn EventLog,
        limit: Option<u64>,
    ) -> Result<u64, RouterError> {
        let partitions = log.partition_count(EVENTS_TOPIC).await?;
        self.offsets.resize(partitions as usize, 0);
        let mut applied = 0u64;
        let mut budget = limit.unwrap_or(u64::MAX);
        for p in 0..partitions {
            let end = log.end_offset(EVENTS_TOPIC, p).await?;
            while self.offsets[p as usize] < end && budget > 0 {
                let max = budget.min(20_000) as usize;
                let batch = log
                    .read(EVENTS_TOPIC, p, self.offsets[p as usize], max)
                    .await?;
                if batch.is_empty() {
                    break;
                }
                for rec in &batch {
                    self.apply(p, rec.offset, &rec.value)?;
                    self.offsets[p as usize] = rec.offset + 1;
                    applied += 1;
                    budget -= 1;
                }
            }
        }
        for t in self.tenants.values_mut() {
            t.core.rebuild_boards();
        }
        Ok(applied)
    }

    /// Tenants sorted by id.
    pub fn sorted(&self) -> Vec<&RecoveredTenant> {
        let mut v: Vec<&RecoveredTenant> = self.tenants.values().collect();
        v.sort_by(|a, b| a.core.setup.tenant.cmp(&b.core.setup.tenant));
        v
    }
}

/// Rebuilds every tenant: from `snapshot` if given, then the events after it.
pub async fn replay_from(
    log: &dyn EventLog,
    snapshot: Option<Snapshot>,
) -> Result<Recovered, RouterError> {
    let mut state = match snapshot {
        Some(s) => match Recovered::from_snapshot(s) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "snapshot unusable, replaying the whole log");
                Recovered::default()
            }
        },
        None => Recovered::default(),
    };
    state.catch_up(log, None).await?;
    Ok(state)
}

/// Rebuilds every tenant from the whole log.
pub async fn replay(log: &dyn EventLog) -> Result<Recovered, RouterError> {
    replay_from(log, None).await
}

/// Starts the actor of a call that was in progress when the router stopped.
pub fn start_recovered_call(tenant: &Arc<Tenant>, call: Call, setup: Arc<TenantSetup>) {
    let id = call.id.clone();
    tenant.admit_recovered(&id, &call.number);
    if let Some(agent) = call.outbound.as_ref().and_then(|o| o.agent.as_ref()) {
        tenant.claim_recovered(agent, &id);
    }
    let t = tenant.clone();
    let addr = CallActor::start_in_arbiter(&tenant.arbiter, move |_| {
        CallActor::recovered(call, setup, t)
    });
    tenant.register_call(id, addr);
}
