//! The routing core of callgrid on one node: an actix actor per call, agent and queue over
//! the pure domain (`callgrid-domain`), every event made durable in the event log
//! (`callgrid-eventlog`) before its effect is acknowledged, recovery by replaying the log,
//! and the gRPC services (`grpc`).
//!
//! Entry point: [`Router::open`] recovers from the log and starts the actors;
//! [`grpc::serve`] serves the APIs.

pub mod actors;
pub mod clock;
pub mod grpc;
pub mod journal;
pub mod originate;
pub mod recovery;
pub mod snapshot;
pub mod tenant;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use actix_rt::ArbiterHandle;
use callgrid_domain::{Agent, Queue, TenantId, TenantSetup};
use callgrid_eventlog::{EventLog, LogError};
use prost::Message;

use crate::clock::Clock;
use crate::journal::{Journal, EVENTS_TOPIC};
use crate::tenant::{Shared, Tenant};

/// Errors of the router.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The event log failed.
    #[error("event log: {0}")]
    Log(#[from] LogError),
    /// A tenant configuration is invalid.
    #[error("{0}")]
    Config(#[from] callgrid_config::ConfigError),
    /// A number is owned by another tenant.
    #[error("number {number} of tenant {tenant} already belongs to tenant {owner}")]
    NumberTaken {
        /// The number.
        number: String,
        /// The tenant loading it.
        tenant: String,
        /// The tenant owning it.
        owner: String,
    },
    /// The log holds an event that cannot be decoded.
    #[error("undecodable event at partition {partition} offset {offset}: {reason}")]
    Corrupt {
        /// Partition.
        partition: u32,
        /// Offset.
        offset: u64,
        /// Why.
        reason: String,
    },
    /// The actor system could not start.
    #[error("actor system: {0}")]
    Actors(String),
    /// The journal stopped.
    #[error(transparent)]
    Journal(#[from] journal::JournalClosed),
    /// A tenant file's secrets cannot be kept as they must be (no secrets key...).
    #[error("{0}")]
    Secret(#[from] callgrid_config::secrets::SecretError),
    /// The event log did not make the change durable in time (an outage).
    #[error("the event log is not answering: the change is not durable yet")]
    NotDurable,
    /// A tenant file too large for one record of the event log.
    #[error("yaml: the tenant file makes a configuration event of {bytes} bytes; the event log takes at most {max}")]
    TooLarge {
        /// Encoded size.
        bytes: usize,
        /// The log's limit.
        max: usize,
    },
}

/// Options of a router.
#[derive(Clone, Debug)]
pub struct RouterOptions {
    /// Partitions of the events topic when it is created.
    pub partitions: u32,
    /// Actor threads (arbiters); tenants are spread over them.
    pub arbiters: usize,
    /// The clock (real or compressed).
    pub clock: Clock,
    /// How long a call recovered from the log waits for its edge before it is ended.
    pub edge_grace_ms: u64,
    /// Snapshots (none: recovery always replays the whole log).
    pub snapshot: Option<snapshot::SnapshotPolicy>,
    /// New calls whose arrival may be in progress at once; more are refused at once with
    /// `UNAVAILABLE` (the edge answers 503 with a Reason) instead of queueing behind an
    /// overloaded router until every caller has given up (docs/DECISIONS.md, "Overload").
    pub max_pending_arrivals: usize,
    /// Sheds new calls from the measured backlog (docs/DECISIONS.md, "Overload"); the router
    /// adds its actor threads and its journal to its sources. `None`: the router makes one
    /// and also watches its own tokio runtime with it. `callgrid serve` gives the one its SIP
    /// edge sheds with, so a call is refused once, at the edge's intake.
    pub shedder: Option<callgrid_overload::Shedder>,
    /// The SIP digest realm agents' passwords are kept for (as HA1s: docs/SECURITY.md).
    pub sip_realm: String,
    /// The key trunk secrets are kept encrypted with; without one a tenant file with a trunk
    /// secret is refused.
    pub secrets_key: Option<callgrid_config::secrets::SecretsKey>,
}

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            partitions: 8,
            arbiters: std::thread::available_parallelism().map_or(2, |n| n.get()),
            clock: Clock::real(),
            edge_grace_ms: 30_000,
            snapshot: None,
            max_pending_arrivals: 1_000,
            shedder: None,
            sip_realm: "callgrid".into(),
            secrets_key: None,
        }
    }
}

/// The router: tenants, their actors, and the journal.
pub struct Router {
    /// Shared by all actors.
    pub shared: Arc<Shared>,
    /// Events replayed at start, and how long recovery took (ms).
    pub recovery: (u64, u64),
    log: Arc<dyn EventLog>,
    arbiters: Vec<ArbiterHandle>,
    tenants: RwLock<HashMap<TenantId, Arc<Tenant>>>,
    numbers: RwLock<HashMap<String, TenantId>>,
    load_lock: tokio::sync::Mutex<()>,
    tenant_listeners: RwLock<Vec<TenantListener>>,
    /// Counts configuration installs (loads and recovery): `watch_configs`.
    config_changes: tokio::sync::watch::Sender<u64>,
    sip_realm: String,
    secrets_key: Option<callgrid_config::secrets::SecretsKey>,
    /// Whether the log answered its last probe (`probe_log`).
    log_reachable: std::sync::atomic::AtomicBool,
    /// The edges that place calls out, and the calls handed to them.
    pub originations: Arc<originate::Originations>,
}

/// The longest an API request waits for its events to be durable before it answers
/// `UNAVAILABLE` (its change may still become durable later).
pub const DURABLE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How often the log is probed, and how long a probe may take before the log counts as
/// unreachable.
const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
const PROBE_LIMIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Probes the log (the end offset of the events topic's first partition) while the router
/// lives, one probe at a time, so an outage is seen even when nothing is written.
async fn probe_log(router: std::sync::Weak<Router>) {
    use std::sync::atomic::Ordering;
    let mut running: Option<(std::time::Instant, tokio::task::JoinHandle<bool>)> = None;
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let Some(r) = router.upgrade() else { return };
        let reachable = match running.take() {
            Some((_, h)) if h.is_finished() => Some(h.await.unwrap_or(false)),
            Some((started, h)) => {
                if started.elapsed() >= PROBE_LIMIT {
                    // still no answer: unreachable, and wait for it before probing again
                    running = Some((started, h));
                    Some(false)
                } else {
                    running = Some((started, h));
                    None
                }
            }
            None => None,
        };
        if let Some(ok) = reachable {
            let was = r.log_reachable.swap(ok, Ordering::Relaxed);
            if was && !ok {
                tracing::error!("the event log does not answer: new work is refused until it does");
            } else if !was && ok {
                tracing::info!("the event log answers again");
            }
        }
        if running.is_none() {
            let log = r.log.clone();
            running = Some((
                std::time::Instant::now(),
                tokio::spawn(async move { log.end_offset(EVENTS_TOPIC, 0).await.is_ok() }),
            ));
        }
    }
}

/// How often a probe measures a thread's queueing delay for the shedder.
pub const PROBE_RUNTIME_EVERY: std::time::Duration = std::time::Duration::from_millis(5);

/// Measures each actor thread's queueing delay for the shedder: a task handed to the
/// arbiter every 5 ms waits behind every actor that is ready to run there. Stops when the
/// arbiters do.
async fn probe_arbiters(shedder: callgrid_overload::Shedder, arbiters: Vec<ArbiterHandle>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    const NAMES: [&str; 8] = [
        "actors-0", "actors-1", "actors-2", "actors-3", "actors-4", "actors-5", "actors-6",
        "actors-7",
    ];
    let probes: Vec<_> = arbiters
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let source = shedder.source(NAMES.get(i).copied().unwrap_or("actors-n"));
            (a, source, Arc::new(AtomicBool::new(false)))
        })
        .collect();
    drop(shedder);
    while probes.iter().all(|(_, s, _)| s.watched()) {
        tokio::time::sleep(PROBE_RUNTIME_EVERY).await;
        for (arbiter, source, in_flight) in &probes {
            if in_flight.swap(true, Ordering::AcqRel) {
                continue; // the last probe has not run yet: its age is the delay
            }
            let sent = source.sent();
            let (source, flag) = (source.clone(), in_flight.clone());
            if !arbiter.spawn(async move {
                source.answered(sent, std::time::Duration::ZERO);
                flag.store(false, Ordering::Release);
            }) {
                return; // the actor system stopped
            }
        }
    }
}

/// A tenant's configuration as the router keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantConfig {
    /// The tenant.
    pub tenant: TenantId,
    /// Its configuration version.
    pub version: u64,
    /// The tenant file (YAML), its secrets sealed.
    pub yaml: String,
}

/// Told of every tenant file `load_tenant` installed (once its `TenantConfigured` is durable):
/// the SIP edge of `callgrid serve` takes the new numbers, trunks and agents' passwords.
pub type TenantListener = Box<dyn Fn(&callgrid_config::TenantFile) + Send + Sync>;

fn rlock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}
fn wlock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts `n` actix arbiters (each a thread with its own event loop) under one system
/// running on its own thread.
fn start_arbiters(n: usize) -> Result<Vec<ArbiterHandle>, RouterError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("actix-system".into())
        .spawn(move || {
            let sys = actix_rt::System::new();
            sys.block_on(async move {
                let handles: Vec<ArbiterHandle> = (0..n.max(1))
                    .map(|_| actix_rt::Arbiter::new().handle())
                    .collect();
                let _ = tx.send(handles);
            });
            let _ = sys.run();
        })
        .map_err(|e| RouterError::Actors(e.to_string()))?;
    rx.recv().map_err(|e| RouterError::Actors(e.to_string()))
}

/// `snap` if the log holds everything it includes; `None` (replay the whole log) if the log
/// has another partition count or ends before the snapshot's offsets, as when the snapshot
/// belongs to another log (a Kafka topic recreated, another broker, another data directory).
async fn snapshot_fits(
    log: &dyn EventLog,
    snap: snapshot::Snapshot,
) -> Result<Option<snapshot::Snapshot>, RouterError> {
    let partitions = log.partition_count(EVENTS_TOPIC).await?;
    if snap.offsets.len() > partitions as usize {
        tracing::warn!(
            snapshot_partitions = snap.offsets.len(),
            partitions,
            "snapshot of another log (partition count), replaying the whole log"
        );
        return Ok(None);
    }
    for (p, &next) in snap.offsets.iter().enumerate() {
        let end = log.end_offset(EVENTS_TOPIC, p as u32).await?;
        if next > end {
            tracing::warn!(
                partition = p,
                snapshot_offset = next,
                end,
                "snapshot beyond the end of the log, replaying the whole log"
            );
            return Ok(None);
        }
    }
    Ok(Some(snap))
}

impl Router {
    /// Opens a router on an event log: creates the events topic if missing, replays the log
    /// to rebuild every tenant, and starts their actors. Must run inside a tokio runtime.
    pub async fn open(
        log: Arc<dyn EventLog>,
        opts: RouterOptions,
    ) -> Result<Arc<Router>, RouterError> {
        log.create_topic(EVENTS_TOPIC, opts.partitions).await?;
        let started = std::time::Instant::now();
        let snap = match opts.snapshot.as_ref().and_then(|p| snapshot::read(&p.path)) {
            Some(s) => snapshot_fits(log.as_ref(), s).await?,
            None => None,
        };
        let in_snapshot = snap.as_ref().map_or(0, |s| s.events);
        let recovered = recovery::replay_from(log.as_ref(), snap).await?;
        let shedder = match &opts.shedder {
            Some(s) => s.clone(),
            None => {
                let s = callgrid_overload::Shedder::new(Default::default());
                s.probe_runtime("router-io", PROBE_RUNTIME_EVERY);
                s
            }
        };
        let journal = Journal::start_watched(log.clone(), Some(shedder.source("journal")));
        let shared = Shared::new(
            journal,
            opts.clock,
            opts.edge_grace_ms,
            opts.max_pending_arrivals,
            shedder.clone(),
        );
        let arbiters = start_arbiters(opts.arbiters)?;
        tokio::spawn(probe_arbiters(shedder, arbiters.clone()));
        let router = Arc::new(Router {
            shared,
            recovery: (
                recovered.events - in_snapshot,
                started.elapsed().as_millis() as u64,
            ),
            log,
            arbiters,
            tenants: RwLock::new(HashMap::new()),
            numbers: RwLock::new(HashMap::new()),
            load_lock: tokio::sync::Mutex::new(()),
            tenant_listeners: RwLock::new(Vec::new()),
            config_changes: tokio::sync::watch::Sender::new(0),
            sip_realm: opts.sip_realm.clone(),
            secrets_key: opts.secrets_key.clone(),
            log_reachable: std::sync::atomic::AtomicBool::new(true),
            originations: Arc::default(),
        });
        tokio::spawn(probe_log(Arc::downgrade(&router)));
        let events = recovered.events;
        let calls: usize = recovered.tenants.values().map(|t| t.core.calls.len()).sum();
        for t in recovered.sorted() {
            let tenant = router.install(t.core.setup.clone(), t.yaml.clone(), Some(&t.core))?;
            for c in t.core.calls.values() {
                let setup = t
                    .setups
                    .get(&c.plan_version)
                    .map(|(s, _)| s.clone())
                    .unwrap_or_else(|| tenant.setup());
                recovery::start_recovered_call(&tenant, c.clone(), setup);
            }
        }
        if let Some(policy) = opts.snapshot {
            tokio::spawn(snapshot::run(
                router.log.clone(),
                recovered,
                policy,
                in_snapshot,
            ));
        }
        tracing::info!(
            events,
            from_snapshot = in_snapshot,
            tenants = router.tenant_ids().len(),
            calls,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "recovered from the event log"
        );
        Ok(router)
    }

    /// The event log.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// Whether the router takes new work: its journal writes, and its log answers probes.
    /// Otherwise new calls and commands are refused at once (`UNAVAILABLE`) and the health
    /// service says NOT_SERVING, instead of work piling up behind an outage.
    pub fn serving(&self) -> bool {
        self.shared.journal.healthy()
            && self
                .log_reachable
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A tenant.
    pub fn tenant(&self, id: &str) -> Option<Arc<Tenant>> {
        rlock(&self.tenants).get(id).cloned()
    }

    /// The tenant owning a number.
    pub fn tenant_of_number(&self, number: &str) -> Option<Arc<Tenant>> {
        let id = rlock(&self.numbers).get(number).cloned()?;
        self.tenant(id.as_str())
    }

    /// Every tenant id, sorted.
    pub fn tenant_ids(&self) -> Vec<TenantId> {
        let mut v: Vec<TenantId> = rlock(&self.tenants).keys().cloned().collect();
        v.sort();
        v
    }

    fn arbiter_for(&self, tenant: &TenantId) -> ArbiterHandle {
        let h = tenant
            .as_str()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        self.arbiters[(h % self.arbiters.len() as u64) as usize].clone()
    }

    /// Installs a configuration (new tenant or new version) and its number index; starts
    /// actors for agents and queues that have none yet.
    fn install(
        &self,
        setup: Arc<TenantSetup>,
        yaml: String,
        recovered: Option<&callgrid_domain::TenantCore>,
    ) -> Result<Arc<Tenant>, RouterError> {
        {
            let numbers = rlock(&self.numbers);
            for n in setup.numbers.keys() {
                if let Some(owner) = numbers.get(&**n) {
                    if owner != &setup.tenant {
                        return Err(RouterError::NumberTaken {
                            number: n.to_string(),
                            tenant: setup.tenant.to_string(),
                            owner: owner.to_string(),
                        });
                    }
                }
            }
        }
        let tenant = {
            let mut tenants = wlock(&self.tenants);
            match tenants.get(&setup.tenant) {
                Some(t) => {
                    t.set_setup(setup.clone(), yaml);
                    t.clone()
                }
                None => {
                    let t = Tenant::new(
                        setup.clone(),
                        yaml,
                        self.arbiter_for(&setup.tenant),
                        self.shared.clone(),
                    );
                    tenants.insert(setup.tenant.clone(), t.clone());
                    t
                }
            }
        };
        {
            let mut numbers = wlock(&self.numbers);
            numbers.retain(|_, t| t != &setup.tenant);
            for n in setup.numbers.keys() {
                numbers.insert(n.to_string(), setup.tenant.clone());
            }
        }
        // recovered aggregates first: `ensure_*` keeps the first actor of an id
        if let Some(core) = recovered {
            for a in core.agents.values() {
                tenant.ensure_agent(a.clone());
            }
            for q in core.queues.values() {
                tenant.ensure_queue(q.clone());
            }
        }
        for a in setup.agents.keys() {
            tenant.ensure_agent(Agent::new(a.clone()));
        }
        for q in setup.queues.keys() {
            tenant.ensure_queue(Queue::new(q.clone()));
        }
        for (_, addr) in tenant.agent_addrs() {
            addr.do_send(actors::Resync);
        }
        self.config_changes.send_modify(|n| *n += 1);
        Ok(tenant)
    }

    /// Loads (or replaces) a tenant's configuration from YAML text: validated, its secrets
    /// sealed (agents' passwords as HA1s, trunk secrets encrypted: the log never holds them in
    /// plain text), written to the log as an event (durable), then installed. Loading the same
    /// text again changes nothing.
    pub async fn load_tenant(
        &self,
        source_name: &str,
        yaml: &str,
    ) -> Result<(TenantId, u64), RouterError> {
        self.load_tenant_by(source_name, yaml, None).await
    }

    /// [`Router::load_tenant`], caused through an API by `by` (recorded in the event).
    pub async fn load_tenant_by(
        &self,
        source_name: &str,
        yaml: &str,
        by: Option<&str>,
    ) -> Result<(TenantId, u64), RouterError> {
        callgrid_config::load_str(source_name, yaml)?;
        let sealed =
            callgrid_config::secrets::seal(yaml, &self.sip_realm, self.secrets_key.as_ref())?;
        let yaml = sealed.as_str();
        // what the edge and the setup are built from: the file as it is kept
        let file = callgrid_config::load_str(source_name, yaml)?;
        let _guard = self.load_lock.lock().await;
        let id = TenantId::new(&file.tenant);
        let current = self.tenant(id.as_str());
        if let Some(t) = &current {
            if *rlock(&t.yaml) == yaml {
                return Ok((id, t.setup().version));
            }
        }
        let version = current.map_or(1, |t| t.setup().version + 1);
        let setup = Arc::new(callgrid_config::to_setup(&file, version));
        // refuse number clashes before writing anything
        {
            let numbers = rlock(&self.numbers);
            for n in setup.numbers.keys() {
                if let Some(owner) = numbers.get(&**n) {
                    if owner != &id {
                        return Err(RouterError::NumberTaken {
                            number: n.to_string(),
                            tenant: id.to_string(),
                            owner: owner.to_string(),
                        });
                    }
                }
            }
        }
        let mut env = callgrid_codec::configured_envelope(
            id.as_str(),
            version,
            source_name,
            yaml,
            self.shared.clock.now(),
        );
        env.caused_by = by.unwrap_or_default().to_owned();
        let value = env.encode_to_vec();
        let (bytes, max) = (
            id.as_str().len() + value.len(),
            self.shared.journal.max_record_bytes(),
        );
        if bytes > max {
            return Err(RouterError::TooLarge { bytes, max });
        }
        let ticket = self
            .shared
            .journal
            .append(vec![callgrid_eventlog::Record::new(
                id.as_str().as_bytes().to_vec(),
                value,
                env.time_ms,
            )]);
        // no time limit: the configuration is installed once it is durable, whatever that
        // takes (new loads are refused at once while the log is out: `serving`)
        self.shared.journal.wait(ticket).await?;
        self.install(setup, yaml.to_string(), None)?;
        tracing::info!(tenant = %id, version, source = source_name, "tenant configuration loaded");
        for listener in rlock(&self.tenant_listeners).iter() {
            listener(&file);
        }
        Ok((id, version))
    }

    /// Every tenant's configuration as the router keeps it (the tenant file with its secrets
    /// sealed): what the SIP edge is configured from, in process or over
    /// `CallControl/WatchTenants`.
    pub fn tenant_configs(&self) -> Vec<TenantConfig> {
        self.tenant_configs_where(|_, _| true)
    }

    /// [`Router::tenant_configs`] of the tenants `keep` takes by id and version: only their
    /// files are copied (a stream of changes asks for the few whose version moved).
    pub fn tenant_configs_where(
        &self,
        mut keep: impl FnMut(&TenantId, u64) -> bool,
    ) -> Vec<TenantConfig> {
        let mut v: Vec<TenantConfig> = rlock(&self.tenants)
            .values()
            .filter(|t| keep(&t.id, t.setup().version))
            .map(|t| TenantConfig {
                tenant: t.id.clone(),
                version: t.setup().version,
                yaml: rlock(&t.yaml).clone(),
            })
            .collect();
        v.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        v
    }

    /// Changes whenever a configuration is installed (a tenant loaded or a new version):
    /// then [`Router::tenant_configs`] has news.
    pub fn watch_configs(&self) -> tokio::sync::watch::Receiver<u64> {
        self.config_changes.subscribe()
    }

    /// Calls `f` with every tenant file loaded from now on (`load_tenant`, e.g. Admin
    /// `LoadTenant`).
    pub fn on_tenant_loaded(
        &self,
        f: impl Fn(&callgrid_config::TenantFile) + Send + Sync + 'static,
    ) {
        wlock(&self.tenant_listeners).push(Box::new(f));
    }
}
