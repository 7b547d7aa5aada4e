//! The supervisor service: per tenant, a snapshot of the live views and a Server-Sent
//! Events stream of their changes (S1, S2), and the history reads (H1, H2, H3) — JSON over
//! HTTP, read from the projection store and pushed from the projector in the same process.
//!
//! Routes (all `GET`; an unknown tenant is 404, a bad parameter 400, both with
//! `{"error": ...}`; the history reads of unbounded length are paged, see below):
//! - `/api/v1/tenants` — tenants with projections;
//! - `/api/v1/projector` — the projector's progress: events projected and not projectable
//!   since it started, and per partition the next offset it will project;
//! - `/api/v1/tenants/{t}/live` — snapshot: queues (with today's figures), agents, calls in
//!   progress, and the server's time;
//! - `/api/v1/tenants/{t}/live/stream` — SSE: a `snapshot` event, then a `change` event per
//!   projector batch that changed this tenant's live views (the changed rows only; a call
//!   whose state is `ended` leaves the list), a fresh `snapshot` if this client fell behind;
//!   a keep-alive comment every 15 s;
//! - `/api/v1/tenants/{t}/calls?from=MS&to=MS` — call detail records by arrival, then call
//!   id (C3, H1), paged;
//! - `/api/v1/tenants/{t}/calls/{call}/offers` — which agents the call rang (H1);
//! - `/api/v1/tenants/{t}/agents/{agent}/states?from=MS&to=MS` — state history (H2), paged;
//! - `/api/v1/tenants/{t}/intervals?from=MS&to=MS` — 15-minute figures (H3, H5), paged.
//!
//! A paged read takes `limit` (rows, 1 to 5,000, default 500) and `cursor`, and answers
//! `{"rows": [...], "next_cursor": "..."}`; `next_cursor` is absent on the last page, and
//! passed back as `cursor` it reads the next one (keyset paging: `callgrid_store::Page`). A
//! limit out of range or a cursor this server did not give is 400, naming `limit` or
//! `cursor`.

#[doc(hidden)]
pub mod fuzz;
mod routes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use callgrid_projector::time::Calendar;
use callgrid_projector::{Changes, Projector};
use callgrid_store::{
    AgentView, CallView, LiveViews, ProjectionStore, QueueView, Row, RowKey, Stats, StoreError,
};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

pub use routes::policy;

/// How often an idle push stream sends a keep-alive comment.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// The milliseconds since the epoch now.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The figures a supervisor reads off a queue (S1), derived from its view.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct QueueFigures {
    /// Calls waiting.
    pub waiting: usize,
    /// When the longest-waiting call joined (0: none waits).
    pub oldest_waiting_since_ms: u64,
    /// Today's figures (zero if nothing happened yet today).
    pub today: Stats,
    /// Service level today, percent.
    pub service_level_pct: Option<f64>,
    /// Average speed of answer today, ms.
    pub asa_ms: Option<u64>,
    /// Average handle time today, ms.
    pub aht_ms: Option<u64>,
    /// Abandoned today.
    pub abandoned: u64,
}

/// A queue as the API shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct QueueJson {
    /// The view.
    #[serde(flatten)]
    pub view: QueueView,
    /// Derived figures.
    pub figures: QueueFigures,
}

/// The live views of a tenant as the API shows them (a snapshot or a change).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LiveJson {
    /// Tenant id.
    pub tenant: String,
    /// The server's clock, ms since the epoch (for "waiting for" and "since" figures).
    pub server_ms: u64,
    /// For a change: the time of the oldest event it reflects (event-to-push latency).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_event_ms: Option<u64>,
    /// Queues.
    pub queues: Vec<QueueJson>,
    /// Agents.
    pub agents: Vec<AgentView>,
    /// Calls (a snapshot: in progress; a change: changed, `ended` ones included).
    pub calls: Vec<CallView>,
}

/// Limits of the supervisor service.
#[derive(Clone, Debug)]
pub struct SupervisorOptions {
    /// Push streams one tenant may have open at once (more get 429).
    pub max_streams_per_tenant: usize,
    /// Whether session cookies are marked `Secure` (served over TLS).
    pub secure_cookies: bool,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        SupervisorOptions {
            max_streams_per_tenant: 500,
            secure_cookies: false,
        }
    }
}

/// The supervisor service.
pub struct Supervisor {
    store: Arc<dyn ProjectionStore>,
    projector: Arc<Projector>,
    calendars: Mutex<HashMap<String, Calendar>>,
    access: Arc<callgrid_access::Access>,
    options: SupervisorOptions,
    streams: Mutex<HashMap<String, usize>>,
}

impl Supervisor {
    /// Reads `projector`'s store and pushes its changes; signs users in with `access`.
    pub fn new(
        projector: Arc<Projector>,
        access: Arc<callgrid_access::Access>,
        options: SupervisorOptions,
    ) -> Arc<Supervisor> {
        Arc::new(Supervisor {
            store: projector.store().clone(),
            projector,
            calendars: Mutex::new(HashMap::new()),
            access,
            options,
            streams: Mutex::new(HashMap::new()),
        })
    }

    /// The calendar of a tenant, `None` for an unknown tenant.
    async fn calendar(&self, tenant: &str) -> Result<Option<Calendar>, StoreError> {
        if let Some(c) = self
            .calendars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
        {
            return Ok(Some(c.clone()));
        }
        // a tenant just configured may be pushed and not yet written
        let key = RowKey::Tenant(tenant.to_owned());
        let row = match self.projector.unwritten_row(&key) {
            Some(r) => Some(r),
            None => self.store.get(&key).await?,
        };
        let Some(Row::Tenant(t)) = row else {
            return Ok(None);
        };
        let zone = callgrid_config::load_trusted_str(tenant, &t.yaml)
            .ok()
            .and_then(|f| Calendar::new(&f.timezone))
            .unwrap_or_else(Calendar::utc);
        self.calendars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant.to_owned(), zone.clone());
        Ok(Some(zone))
    }

    /// The JSON of live views at `now`.
    fn live_json(
        tenant: &str,
        views: LiveViews,
        calendar: &Calendar,
        now: u64,
        oldest_event_ms: Option<u64>,
    ) -> LiveJson {
        let today_start = calendar.day_start(now);
        LiveJson {
            tenant: tenant.to_owned(),
            server_ms: now,
            oldest_event_ms,
            queues: views
                .queues
                .into_iter()
                .map(|view| {
                    // figures of an earlier day are not today's
                    let today = if view.day_start_ms >= today_start {
                        view.today.clone()
                    } else {
                        Stats::default()
                    };
                    QueueJson {
                        figures: QueueFigures {
                            waiting: view.waiting.len(),
                            oldest_waiting_since_ms: view
                                .waiting
                                .iter()
                                .map(|w| w.since_ms)
                                .min()
                                .unwrap_or(0),
                            service_level_pct: today.service_level_pct(),
                            asa_ms: today.asa_ms(),
                            aht_ms: today.aht_ms(),
                            abandoned: today.abandoned(),
                            today,
                        },
                        view,
                    }
                })
                .collect(),
            agents: views.agents,
            calls: views.calls,
        }
    }

    /// The snapshot of a tenant, `None` if unknown.
    pub async fn snapshot(&self, tenant: &str) -> Result<Option<LiveJson>, StoreError> {
        let Some(calendar) = self.calendar(tenant).await? else {
            return Ok(None);
        };
        // pushed rows whose batch the projector is still writing: read before the store,
        // so a row that commits in between is found there
        let unwritten = self.projector.unwritten_live(tenant);
        let mut views = self.store.live(tenant).await?;
        views.overlay(unwritten);
        Ok(Some(Self::live_json(
            tenant,
            views,
            &calendar,
            now_ms(),
            None,
        )))
    }

    /// Pushes a tenant's live views into `out` (a snapshot, then the changes) until the
    /// client goes, or the browser session the client signed in with ends (`session`: checked
    /// every second).
    async fn push(
        self: Arc<Self>,
        tenant: String,
        mut rx: broadcast::Receiver<Changes>,
        out: mpsc::Sender<Push>,
        session: Option<(Arc<callgrid_access::Access>, Arc<str>)>,
    ) {
        let Ok(Some(calendar)) = self.calendar(&tenant).await else {
            return;
        };
        if !self.send_snapshot(&tenant, &out).await {
            return;
        }
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.tick().await;
        let mut check = tokio::time::interval(Duration::from_secs(1));
        loop {
            let ok = tokio::select! {
                _ = keepalive.tick() => out.send(Push::KeepAlive).await.is_ok(),
                _ = check.tick() => {
                    !out.is_closed()
                        && session.as_ref().is_none_or(|(access, id)| access.session_open(id))
                }
                next = rx.recv() => match next {
                    Ok(changes) => {
                        let mine = LiveViews {
                            queues: pick(&changes, &tenant, |r| match r {
                                Row::Queue(q) => Some(q.clone()),
                                _ => None,
                            }),
                            agents: pick(&changes, &tenant, |r| match r {
                                Row::Agent(a) => Some(a.clone()),
                                _ => None,
                            }),
                            calls: pick(&changes, &tenant, |r| match r {
                                Row::Call(c) => Some(c.clone()),
                                _ => None,
                            }),
                        };
                        if mine.queues.is_empty() && mine.agents.is_empty() && mine.calls.is_empty() {
                            continue;
                        }
                        let oldest = changes.oldest_event_ms.get(&tenant).copied();
                        let body = Self::live_json(&tenant, mine, &calendar, now_ms(), oldest);
                        let data = serde_json::to_string(&body).unwrap_or_default();
                        out.send(Push::Event("change", data)).await.is_ok()
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.send_snapshot(&tenant, &out).await
                    }
                    Err(broadcast::error::RecvError::Closed) => false,
                },
            };
            if !ok {
                return;
            }
        }
    }

    async fn send_snapshot(&self, tenant: &str, out: &mpsc::Sender<Push>) -> bool {
        match self.snapshot(tenant).await {
            Ok(Some(s)) => {
                let data = serde_json::to_string(&s).unwrap_or_default();
                out.send(Push::Event("snapshot", data)).await.is_ok()
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "snapshot for a push stream failed");
                let msg = serde_json::json!({ "error": e.to_string() }).to_string();
                let _ = out.send(Push::Event("error", msg)).await;
                false
            }
        }
    }

    /// Takes a push-stream slot of `tenant`, or `None` when it has `max_streams` open.
    fn stream_slot(self: &Arc<Self>, tenant: &str) -> Option<StreamSlot> {
        let mut open = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(tenant.to_owned()).or_insert(0);
        if *n >= self.options.max_streams_per_tenant {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            supervisor: Arc::clone(self),
            tenant: tenant.to_owned(),
        })
    }
}

/// The rows of `tenant` in `changes` that `f` picks.
fn pick<T>(changes: &Changes, tenant: &str, f: impl Fn(&Row) -> Option<T>) -> Vec<T> {
    changes
        .rows
        .iter()
        .filter(|r| r.tenant() == tenant)
        .filter_map(f)
        .collect()
}

/// What a push stream sends: a named event with JSON data, or a keep-alive comment.
#[derive(Debug)]
pub enum Push {
    /// `event: NAME`, `data: JSON`.
    Event(&'static str, String),
    /// A comment that keeps proxies and idle timers from closing the stream.
    KeepAlive,
}

/// One open push stream of a tenant; dropping it frees the slot.
pub struct StreamSlot {
    supervisor: Arc<Supervisor>,
    tenant: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .supervisor
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.tenant);
            }
        }
    }
}
