//! A tenant: its configuration, the addresses of its actors, and the dispatch of commands
//! between them. A tenant is a shard: all its actors live on one arbiter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use actix::{Actor, Addr};
use actix_rt::ArbiterHandle;
use callgrid_domain::react::on_rejection;
use callgrid_domain::{
    AgentId, CallId, Command, Event, QueueId, Rejection, TenantId, TenantSetup, TimeMs,
};
use callgrid_eventlog::Record;
use prost::Message;

use crate::actors::{AgentActor, AgentMsg, CallActor, CallMsg, Observe, QueueActor, QueueMsg};
use crate::clock::Clock;
use crate::journal::{Journal, Ticket};

/// What every actor of every tenant shares.
pub struct Shared {
    /// The event journal.
    pub journal: Arc<Journal>,
    /// The clock.
    pub clock: Clock,
    /// How long a recovered call waits for its edge before it is ended as edge-lost.
    pub edge_grace_ms: u64,
    rng: AtomicU64,
    /// Routing decision latency (µs): a call's arrival at its actor → its first offer.
    pub decisions: Mutex<hdrhistogram::Histogram<u64>>,
    /// New calls whose arrival is in progress (overload protection).
    pub arrivals: Arrivals,
    /// Sheds new calls from the measured backlog (docs/DECISIONS.md, "Overload").
    pub shedder: callgrid_overload::Shedder,
    /// Tells the shedder how long each arrival took from its first report to durable,
    /// beyond the journal's write floor: the backlog on the whole arrival path, wherever it
    /// is (growing group commits included).
    pub arrival_delay: callgrid_overload::Source,
}

/// Counts arrivals in progress against a limit.
#[derive(Debug)]
pub struct Arrivals {
    pending: std::sync::atomic::AtomicUsize,
    limit: usize,
    refused: AtomicU64,
}

/// One arrival in progress; dropping it ends it.
#[derive(Debug)]
pub struct ArrivalSlot<'a>(&'a Arrivals);

impl Drop for ArrivalSlot<'_> {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Arrivals {
    fn new(limit: usize) -> Arrivals {
        Arrivals {
            pending: 0.into(),
            limit: limit.max(1),
            refused: 0.into(),
        }
    }

    /// A slot for one more arrival, or `None` when `limit` are already in progress.
    pub fn try_begin(&self) -> Option<ArrivalSlot<'_>> {
        let before = self.pending.fetch_add(1, Ordering::AcqRel);
        if before >= self.limit {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(ArrivalSlot(self))
    }

    /// Arrivals in progress now.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Arrivals refused since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Shared {
    /// Shared state of a router.
    pub fn new(
        journal: Arc<Journal>,
        clock: Clock,
        edge_grace_ms: u64,
        max_pending_arrivals: usize,
        shedder: callgrid_overload::Shedder,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            journal,
            clock,
            edge_grace_ms,
            rng: AtomicU64::new(clock.now()),
            decisions: Mutex::new(
                hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                    .expect("static histogram bounds are valid"),
            ),
            arrivals: Arrivals::new(max_pending_arrivals),
            arrival_delay: shedder.source("arrivals"),
            shedder,
        })
    }

    /// Records one routing decision latency.
    pub fn record_decision(&self, micros: u64) {
        if let Ok(mut h) = self.decisions.lock() {
            h.saturating_record(micros.max(1));
        }
    }

    /// A fresh random number for the random strategies.
    pub fn rand(&self) -> u64 {
        callgrid_domain::queue::splitmix64(self.rng.fetch_add(0x9E37_79B9, Ordering::Relaxed))
    }
}

/// One tenant.
pub struct Tenant {
    /// The tenant.
    pub id: TenantId,
    setup: RwLock<Arc<TenantSetup>>,
    /// The YAML text of the current configuration.
    pub yaml: RwLock<String>,
    agents: RwLock<HashMap<AgentId, Addr<AgentActor>>>,
    queues: RwLock<HashMap<QueueId, Addr<QueueActor>>>,
    calls: Mutex<HashMap<CallId, Addr<CallActor>>>,
    /// Calls counted against the concurrent-call limits (N8), and their numbers.
    admitted: Mutex<Admitted>,
    /// Extensions in use for a call out (A1), and by which call.
    calling_out: Mutex<CallingOut>,
    /// The arbiter hosting this tenant's actors.
    pub arbiter: ArbiterHandle,
    /// Router-wide state.
    pub shared: Arc<Shared>,
}

/// Where a command's events come from: one aggregate (its kind, id and the sequence number
/// of the first event), the plan version and trace they belong to, and who caused them
/// through an API (the audit trail; `None` for the platform's own follow-ups and timers).
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    /// `agent`, `queue` or `call`.
    pub kind: &'a str,
    /// The aggregate's id.
    pub id: &'a str,
    /// Sequence number of the first event.
    pub first_seq: u64,
    /// Plan (configuration) version.
    pub plan_version: u64,
    /// W3C trace context.
    pub traceparent: &'a str,
    /// `token:ID`, `user:TENANT/NAME`...
    pub caused_by: Option<&'a str>,
}

/// Which concurrent-call limit (N8) a new call is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverLimit {
    /// The tenant's limit, with its value.
    Tenant(u32),
    /// The number's limit, with its value.
    Number(u32),
}

/// Calls counted against the concurrent-call limits.
#[derive(Default)]
struct Admitted {
    of_call: HashMap<CallId, Arc<str>>,
    by_number: HashMap<Arc<str>, u32>,
}

impl Admitted {
    fn add(&mut self, id: CallId, number: Arc<str>) {
        *self.by_number.entry(number.clone()).or_insert(0) += 1;
        self.of_call.insert(id, number);
    }

    fn release(&mut self, id: &CallId) {
        if let Some(number) = self.of_call.remove(id) {
            if let Some(n) = self.by_number.get_mut(&number) {
                *n -= 1;
                if *n == 0 {
                    self.by_number.remove(&number);
                }
            }
        }
    }
}

/// A1: the extensions whose agents are calling out, each held by one call until it ends.
#[derive(Default)]
struct CallingOut {
    by_extension: HashMap<Arc<str>, (AgentId, CallId)>,
    of_call: HashMap<CallId, Arc<str>>,
}

impl CallingOut {
    /// Holds `agent`'s extension for `call`, or names the agent holding it already.
    fn hold(&mut self, setup: &TenantSetup, agent: &AgentId, call: &CallId) -> Hold {
        let Some(ext) = setup.agents.get(agent).and_then(|a| a.extension.clone()) else {
            return Hold::NoExtension;
        };
        if let Some((other, _)) = self.by_extension.get(&ext) {
            return Hold::Taken(ext, other.clone());
        }
        self.by_extension
            .insert(ext.clone(), (agent.clone(), call.clone()));
        self.of_call.insert(call.clone(), ext);
        Hold::Held
    }

    fn release(&mut self, call: &CallId) {
        if let Some(ext) = self.of_call.remove(call) {
            self.by_extension.remove(&ext);
        }
    }
}

enum Hold {
    Held,
    NoExtension,
    Taken(Arc<str>, AgentId),
}

/// An extension held for a call out that is being opened (A1). Dropped without a live
/// call of its id (the call was never created, or was refused), it frees the extension;
/// once the call's actor runs, the call's end frees it ([`Tenant::unregister_call`]).
#[must_use = "the extension is free again when the claim is dropped before its call runs"]
pub struct ExtensionClaim {
    tenant: Arc<Tenant>,
    call: CallId,
}

impl Drop for ExtensionClaim {
    fn drop(&mut self) {
        if self.tenant.call(&self.call).is_none() {
            lock(&self.tenant.calling_out).release(&self.call);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}
fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Tenant {
    /// A tenant with no actors yet.
    pub fn new(
        setup: Arc<TenantSetup>,
        yaml: String,
        arbiter: ArbiterHandle,
        shared: Arc<Shared>,
    ) -> Arc<Tenant> {
        Arc::new(Tenant {
            id: setup.tenant.clone(),
            setup: RwLock::new(setup),
            yaml: RwLock::new(yaml),
            agents: RwLock::new(HashMap::new()),
            queues: RwLock::new(HashMap::new()),
            calls: Mutex::new(HashMap::new()),
            admitted: Mutex::new(Admitted::default()),
            calling_out: Mutex::new(CallingOut::default()),
            arbiter,
            shared,
        })
    }

    /// The current configuration.
    pub fn setup(&self) -> Arc<TenantSetup> {
        read(&self.setup).clone()
    }

    /// Replaces the configuration (calls in progress keep theirs, R9).
    pub fn set_setup(&self, setup: Arc<TenantSetup>, yaml: String) {
        *write(&self.setup) = setup;
        *write(&self.yaml) = yaml;
    }

    /// Now, by the router's clock.
    pub fn now(&self) -> TimeMs {
        self.shared.clock.now()
    }

    /// An agent's actor.
    pub fn agent(&self, id: &AgentId) -> Option<Addr<AgentActor>> {
        read(&self.agents).get(id).cloned()
    }
    /// A queue's actor.
    pub fn queue(&self, id: &QueueId) -> Option<Addr<QueueActor>> {
        read(&self.queues).get(id).cloned()
    }
    /// A call's actor.
    pub fn call(&self, id: &CallId) -> Option<Addr<CallActor>> {
        self.calls_lock().get(id).cloned()
    }
    /// Every agent actor.
    pub fn agent_addrs(&self) -> Vec<(AgentId, Addr<AgentActor>)> {
        let mut v: Vec<_> = read(&self.agents)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
    /// Every queue actor.
    pub fn queue_addrs(&self) -> Vec<(QueueId, Addr<QueueActor>)> {
        let mut v: Vec<_> = read(&self.queues)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
    /// Number of calls in progress.
    pub fn call_count(&self) -> usize {
        self.calls_lock().len()
    }

    fn calls_lock(&self) -> std::sync::MutexGuard<'_, HashMap<CallId, Addr<CallActor>>> {
        lock(&self.calls)
    }

    /// Registers a call actor; false if the id is taken.
    pub fn register_call(&self, id: CallId, addr: Addr<CallActor>) -> bool {
        let mut calls = self.calls_lock();
        if calls.contains_key(&id) {
            return false;
        }
        calls.insert(id, addr);
        true
    }

    /// Forgets a call actor and releases its place under the concurrent-call limits and the
    /// extension it called out on.
    pub fn unregister_call(&self, id: &CallId) {
        self.calls_lock().remove(id);
        self.admitted_lock().release(id);
        lock(&self.calling_out).release(id);
    }

    /// A1: holds `agent`'s extension for its call out `call`, in one step with the check
    /// that no other agent of the extension is calling out (which is refused, naming that
    /// agent). An agent without an extension holds nothing.
    pub fn claim_extension(
        self: &Arc<Self>,
        agent: &AgentId,
        call: &CallId,
    ) -> Result<Option<ExtensionClaim>, (Arc<str>, AgentId)> {
        match lock(&self.calling_out).hold(&self.setup(), agent, call) {
            Hold::NoExtension => Ok(None),
            Hold::Taken(ext, other) => Err((ext, other)),
            Hold::Held => Ok(Some(ExtensionClaim {
                tenant: self.clone(),
                call: call.clone(),
            })),
        }
    }

    /// Holds the extension of a call out recovered from the log (released when it ends).
    pub fn claim_recovered(&self, agent: &AgentId, call: &CallId) {
        // two recovered calls out of one extension (an older log): the first keeps it
        let _ = lock(&self.calling_out).hold(&self.setup(), agent, call);
    }

    fn admitted_lock(&self) -> std::sync::MutexGuard<'_, Admitted> {
        lock(&self.admitted)
    }

    /// Counts a new call on `number` against the tenant's and the number's concurrent-call
    /// limits (N8), or says which limit it is over. A call id already counted is let through
    /// (its duplicate arrival is refused by the call actor).
    pub fn admit(&self, id: &CallId, number: &str) -> Result<(), OverLimit> {
        let setup = self.setup();
        let number_setup = setup.numbers.get(number);
        let key: Arc<str> = number_setup.map_or_else(|| Arc::from(number), |n| n.number.clone());
        let mut admitted = self.admitted_lock();
        if admitted.of_call.contains_key(id) {
            return Ok(());
        }
        if let Some(max) = setup.max_calls {
            if admitted.of_call.len() >= max as usize {
                return Err(OverLimit::Tenant(max));
            }
        }
        if let Some(max) = number_setup.and_then(|n| n.max_calls) {
            if admitted.by_number.get(&key).copied().unwrap_or(0) >= max {
                return Err(OverLimit::Number(max));
            }
        }
        admitted.add(id.clone(), key);
        Ok(())
    }

    /// Counts a call recovered from the log (limits do not apply to calls already in progress).
    pub fn admit_recovered(&self, id: &CallId, number: &str) {
        let mut admitted = self.admitted_lock();
        if !admitted.of_call.contains_key(id) {
            admitted.add(id.clone(), Arc::from(number));
        }
    }

    /// Starts the actor of an agent (on this tenant's arbiter) unless it runs already.
    pub fn ensure_agent(self: &Arc<Self>, agent: callgrid_domain::Agent) {
        let mut agents = write(&self.agents);
        if agents.contains_key(&agent.id) {
            return;
        }
        let id = agent.id.clone();
        let tenant = self.clone();
        let addr =
            AgentActor::start_in_arbiter(&self.arbiter, move |_| AgentActor::new(agent, tenant));
        agents.insert(id, addr);
    }

    /// Starts the actor of a queue unless it runs already.
    pub fn ensure_queue(self: &Arc<Self>, queue: callgrid_domain::Queue) {
        let mut queues = write(&self.queues);
        if queues.contains_key(&queue.id) {
            return;
        }
        let id = queue.id.clone();
        let tenant = self.clone();
        let addr =
            QueueActor::start_in_arbiter(&self.arbiter, move |_| QueueActor::new(queue, tenant));
        queues.insert(id, addr);
    }

    /// Sends a follow-up command to its aggregate's actor. A command for an aggregate that
    /// does not exist (a call that ended) is refused here, with the refusal's own follow-ups.
    pub fn dispatch(&self, cmd: Command) {
        match cmd {
            Command::Agent(a, c) => match self.agent(&a) {
                Some(addr) => addr.do_send(AgentMsg(c, None)),
                None => self.refused(&Command::Agent(a.clone(), c), &Rejection::UnknownAgent(a)),
            },
            Command::Queue(q, c) => match self.queue(&q) {
                Some(addr) => addr.do_send(QueueMsg(c)),
                None => self.refused(&Command::Queue(q.clone(), c), &Rejection::UnknownQueue(q)),
            },
            Command::Observe(q, view) => {
                if let Some(addr) = self.queue(&q) {
                    addr.do_send(Observe(view));
                }
            }
            Command::Call(id, c) => match self.call(&id) {
                Some(addr) => addr.do_send(CallMsg(c, None)),
                None => self.refused(&Command::Call(id.clone(), c), &Rejection::UnknownCall(id)),
            },
        }
    }

    /// Dispatches what a refused command causes.
    pub fn refused(&self, cmd: &Command, r: &Rejection) {
        tracing::debug!(tenant = %self.id, command = ?cmd, rejection = %r, "follow-up refused");
        for f in on_rejection(cmd, r) {
            self.dispatch(f);
        }
    }

    /// The step every actor takes with a command, written once: the domain's answer
    /// (`handled`) is refused as it is, or encoded for the log (refused with `TooLarge` when
    /// an event would not fit in a record), and only then applied (`apply`) and handed to
    /// the journal. A refusal changes nothing and dispatches what it causes (`command` is the
    /// refused command, built only then).
    pub fn commit(
        &self,
        origin: Origin<'_>,
        command: impl FnOnce() -> Command,
        handled: Result<Vec<Event>, Rejection>,
        mut apply: impl FnMut(&Event),
    ) -> Result<(Vec<Event>, Ticket), Rejection> {
        let encoded = handled.and_then(|events| {
            let records = self.encode(&origin, &events)?;
            Ok((events, records))
        });
        match encoded {
            Ok((events, records)) => {
                for e in &events {
                    apply(e);
                }
                let ticket = self.shared.journal.append(records);
                Ok((events, ticket))
            }
            Err(r) => {
                self.refused(&command(), &r);
                Err(r)
            }
        }
    }

    /// Encodes events of one aggregate as records of the log.
    fn encode(&self, o: &Origin<'_>, events: &[Event]) -> Result<Vec<Record>, Rejection> {
        let key = self.id.as_str().as_bytes();
        let max = self.shared.journal.max_record_bytes();
        events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut env = callgrid_codec::event_envelope(
                    self.id.as_str(),
                    (o.kind, o.id),
                    o.first_seq + i as u64,
                    o.plan_version,
                    o.traceparent,
                    e,
                );
                if let Some(by) = o.caused_by {
                    env.caused_by = by.to_owned();
                }
                let value = env.encode_to_vec();
                let bytes = key.len() + value.len();
                if bytes > max {
                    return Err(Rejection::TooLarge { bytes, max });
                }
                Ok(Record::new(key.to_vec(), value, e.at as i64))
            })
            .collect()
    }
}
