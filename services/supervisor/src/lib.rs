//! The supervisor service: per tenant, a snapshot of the live views and a Server-Sent
//! Events stream of their changes (S1, S2), and the history reads (H1, H2, H3) — JSON over
//! HTTP, read from the projection store and pushed from the projector in the same process.
//!
//! Routes (all `GET`; an unknown tenant is 404, a bad parameter 400, both with
//! `{"error": ...}`):
//! - `/api/v1/tenants` — tenants with projections;
//! - `/api/v1/projector` — the projector's progress: events projected and not projectable
//!   since it started, and per partition the next offset it will project;
//! - `/api/v1/tenants/{t}/live` — snapshot: queues (with today's figures), agents, calls in
//!   progress, and the server's time;
//! - `/api/v1/tenants/{t}/live/stream` — SSE: a `snapshot` event, then a `change` event per
//!   projector batch that changed this tenant's live views (the changed rows only; a call
//!   whose state is `ended` leaves the list), a fresh `snapshot` if this client fell behind;
//!   a keep-alive comment every 15 s;
//! - `/api/v1/tenants/{t}/calls?from=MS&to=MS` — call detail records by arrival (C3, H1);
//! - `/api/v1/tenants/{t}/calls/{call}/offers` — which agents the call rang (H1);
//! - `/api/v1/tenants/{t}/agents/{agent}/states?from=MS&to=MS` — state history (H2);
//! - `/api/v1/tenants/{t}/intervals?from=MS&to=MS` — 15-minute figures (H3, H5).

pub mod http;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use callgrid_projector::time::Calendar;
use callgrid_projector::{Changes, Projector};
use callgrid_store::{
    AgentView, CallView, LiveViews, ProjectionStore, QueueView, Row, RowKey, Span, Stats,
    StoreError,
};
use serde::Serialize;
use tokio::sync::broadcast;

pub use http::{serve, Request, Response};

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

/// The supervisor service.
pub struct Supervisor {
    store: Arc<dyn ProjectionStore>,
    projector: Arc<Projector>,
    calendars: Mutex<HashMap<String, Calendar>>,
}

impl Supervisor {
    /// Reads `projector`'s store and pushes its changes.
    pub fn new(projector: Arc<Projector>) -> Arc<Supervisor> {
        Arc::new(Supervisor {
            store: projector.store().clone(),
            projector,
            calendars: Mutex::new(HashMap::new()),
        })
    }

    /// The HTTP handler of every route.
    pub fn handler(self: &Arc<Self>) -> http::Handler {
        let me = Arc::clone(self);
        Arc::new(move |req: Request| {
            let me = Arc::clone(&me);
            Box::pin(async move { me.route(req).await })
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

    async fn route(self: Arc<Self>, req: Request) -> Response {
        let parts: Vec<&str> = req.path.trim_matches('/').split('/').collect();
        let result = match parts.as_slice() {
            ["api", "v1", "tenants"] => self.store.tenants().await.map(|mut t| {
                t.extend(self.projector.unwritten_tenants());
                t.sort();
                t.dedup();
                json(&t)
            }),
            ["api", "v1", "projector"] => {
                let p = self.projector.progress().borrow().clone();
                Ok(json(&serde_json::json!({
                    "projected": p.projected,
                    "skipped": p.skipped,
                    "next_offsets": p.next,
                })))
            }
            ["api", "v1", "tenants", t, rest @ ..] => self.tenant_route(t, rest, &req).await,
            ["healthz"] => Ok(Response::Full {
                status: "200 OK",
                content_type: "text/plain",
                body: b"ok\n".to_vec(),
            }),
            _ => Ok(Response::error("404 Not Found", "no such path")),
        };
        result.unwrap_or_else(|e| {
            tracing::warn!(error = %e, path = %req.path, "supervisor read failed");
            Response::error("503 Service Unavailable", &e.to_string())
        })
    }

    async fn tenant_route(
        self: &Arc<Self>,
        tenant: &str,
        rest: &[&str],
        req: &Request,
    ) -> Result<Response, StoreError> {
        if self.calendar(tenant).await?.is_none() {
            return Ok(Response::error(
                "404 Not Found",
                &format!("unknown tenant {tenant}"),
            ));
        }
        let span = match span_of(req) {
            Ok(s) => s,
            Err(e) => return Ok(Response::error("400 Bad Request", &e)),
        };
        Ok(match rest {
            ["live"] => match self.snapshot(tenant).await? {
                Some(s) => json(&s),
                None => Response::error("404 Not Found", "unknown tenant"),
            },
            ["live", "stream"] => self.stream(tenant.to_owned()),
            ["calls"] => json(&self.store.call_records(tenant, span).await?),
            ["calls", call, "offers"] => json(&self.store.offers(tenant, call).await?),
            ["agents", agent, "states"] => {
                json(&self.store.agent_states(tenant, agent, span).await?)
            }
            ["intervals"] => json(&self.store.intervals(tenant, span).await?),
            _ => Response::error("404 Not Found", "no such path"),
        })
    }

    /// The SSE stream of a tenant's live views.
    fn stream(self: &Arc<Self>, tenant: String) -> Response {
        // subscribe before the snapshot: no change falls between them
        let rx = self.projector.subscribe();
        let me = Arc::clone(self);
        Response::Events(Box::new(move |sink| {
            Box::pin(async move { me.push(tenant, rx, sink).await })
        }))
    }

    async fn push(
        self: Arc<Self>,
        tenant: String,
        mut rx: broadcast::Receiver<Changes>,
        mut sink: http::EventSink,
    ) {
        let Ok(Some(calendar)) = self.calendar(&tenant).await else {
            return;
        };
        if !self.send_snapshot(&tenant, &mut sink).await {
            return;
        }
        loop {
            let next = tokio::time::timeout(KEEPALIVE, rx.recv()).await;
            let ok = match next {
                Err(_) => sink.keepalive().await.is_ok(),
                Ok(Ok(changes)) => {
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
                    sink.send("change", &data).await.is_ok()
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    self.send_snapshot(&tenant, &mut sink).await
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => false,
            };
            if !ok {
                return;
            }
        }
    }

    async fn send_snapshot(&self, tenant: &str, sink: &mut http::EventSink) -> bool {
        match self.snapshot(tenant).await {
            Ok(Some(s)) => {
                let data = serde_json::to_string(&s).unwrap_or_default();
                sink.send("snapshot", &data).await.is_ok()
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "snapshot for a push stream failed");
                let msg = serde_json::json!({ "error": e.to_string() }).to_string();
                let _ = sink.send("error", &msg).await;
                false
            }
        }
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

fn json<T: Serialize>(v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => Response::json("200 OK", body),
        Err(e) => Response::error("500 Internal Server Error", &e.to_string()),
    }
}

/// `from`/`to` (ms since the epoch) of a request; all time by default.
fn span_of(req: &Request) -> Result<Span, String> {
    let ms = |name: &str| -> Result<Option<u64>, String> {
        req.param(name)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("{name} must be milliseconds since the epoch, got {v:?}"))
            })
            .transpose()
    };
    let from = ms("from")?.unwrap_or(0);
    let to = ms("to")?.unwrap_or(u64::MAX);
    Span::new(from, to).map_err(|e| e.to_string())
}
