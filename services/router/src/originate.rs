//! Calls the router places (C1 click-to-call): the SIP edges that can place them, and the
//! calls handed to an edge that has not opened them yet (docs/DECISIONS.md, "Outbound calls:
//! the shape"). An edge keeps a `CallControl/Originations` stream; a click-to-call picks one
//! edge allowed to serve the tenant, hands it the call's id and waits for the edge to open
//! the call's stream with `originated`, when the call is created.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callgrid_access::Principal;
use callgrid_domain::{AgentId, CallId, TenantId};
use tokio::sync::{mpsc, oneshot};

/// How long a placed call waits for its edge to open it before the click-to-call fails.
pub const OPEN_WAIT: Duration = Duration::from_secs(5);

/// What a click-to-call asks for: the call the edge is to open.
pub struct Placed {
    /// The tenant.
    pub tenant: TenantId,
    /// The agent rung first.
    pub agent: AgentId,
    /// The destination as given.
    pub dialled: Arc<str>,
    /// The caller-supplied correlation id.
    pub correlation: Option<Arc<str>>,
    /// Who asked (recorded in the call's events).
    pub by: Arc<str>,
    /// The tenant's number the call presents, as the request's decision chose it: what the
    /// call counts against (N8).
    pub number: Arc<str>,
}

/// A call handed to an edge: what it is for.
pub struct Pending {
    /// The request.
    pub placed: Placed,
    /// The credential of the edge it was handed to: only that edge may open it.
    pub edge: Arc<str>,
    /// Told the outcome of the call's creation.
    pub reply: oneshot::Sender<Result<(), tonic::Status>>,
    handed: Instant,
}

struct Edge {
    id: u64,
    by: Principal,
    tx: mpsc::UnboundedSender<(CallId, TenantId)>,
}

/// The edges that place calls, and the calls handed to them.
#[derive(Default)]
pub struct Originations {
    edges: Mutex<Vec<Edge>>,
    pending: Mutex<HashMap<CallId, Pending>>,
    next: AtomicU64,
}

/// An edge's subscription; dropping it removes the edge.
pub struct Subscription {
    /// The edge's id.
    pub id: u64,
    /// The calls handed to it.
    pub calls: mpsc::UnboundedReceiver<(CallId, TenantId)>,
    owner: Arc<Originations>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let id = self.id;
        lock(&self.owner.edges).retain(|e| e.id != id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Originations {
    /// An edge (credential `by`) that takes calls from now on.
    pub fn subscribe(self: &Arc<Self>, by: Principal) -> Subscription {
        let (tx, calls) = mpsc::unbounded_channel();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.edges).push(Edge { id, by, tx });
        Subscription {
            id,
            calls,
            owner: self.clone(),
        }
    }

    /// A new call id for a call out: unique in this router's life and across restarts
    /// (its time and a counter).
    pub fn call_id(&self, now_ms: u64) -> CallId {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        CallId::new(format!("out-{now_ms:x}-{n:x}"))
    }

    /// Hands `call` to an edge allowed to serve its tenant (round robin among them), keeping
    /// it pending until the edge opens it. `None` when no such edge is connected.
    pub fn hand(
        &self,
        call: CallId,
        placed: Placed,
    ) -> Option<oneshot::Receiver<Result<(), tonic::Status>>> {
        let edges = lock(&self.edges);
        let tenant = placed.tenant.clone();
        let able: Vec<&Edge> = edges
            .iter()
            .filter(|e| e.by.tenant(tenant.as_str()).is_ok() && !e.tx.is_closed())
            .collect();
        if able.is_empty() {
            return None;
        }
        let edge = able[self.next.fetch_add(1, Ordering::Relaxed) as usize % able.len()];
        let (reply, rx) = oneshot::channel();
        let mut pending = lock(&self.pending);
        // forget calls whose edge never opened them
        pending.retain(|_, p| p.handed.elapsed() < OPEN_WAIT * 2);
        pending.insert(
            call.clone(),
            Pending {
                placed,
                edge: edge.by.id.clone(),
                reply,
                handed: Instant::now(),
            },
        );
        drop(pending);
        edge.tx.send((call, tenant)).ok()?;
        Some(rx)
    }

    /// The call an edge opens, if it was handed one by that id.
    pub fn take(&self, call: &CallId) -> Option<Pending> {
        lock(&self.pending).remove(call)
    }

    /// Forgets a call whose click-to-call gave up waiting.
    pub fn forget(&self, call: &CallId) {
        lock(&self.pending).remove(call);
    }
}
