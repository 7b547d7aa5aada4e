//! The HTTP routes of the supervisor service (axum), behind the access gate.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use callgrid_access::{AccessError, Denied, Gate, Permission, Principal, Rule};
use callgrid_store::{PageRequest, Span, StoreError, MAX_PAGE_LIMIT};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use crate::{Push, Supervisor};

/// The access rule of each route (the gate applies it before any handler runs).
pub fn policy(method: &Method, path: &str) -> Rule {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["healthz"] => Rule::Open,
        ["api", "v1", "session"] if method == Method::POST => Rule::Open,
        ["api", "v1", "session"] => Rule::Require(Permission::WhoAmI),
        ["api", "v1", "tenants"] => Rule::Require(Permission::TenantRead),
        ["api", "v1", "projector"] => Rule::Require(Permission::ProjectorStatus),
        ["api", "v1", "tenants", _, "live", ..] => Rule::Require(Permission::LiveRead),
        ["api", "v1", "tenants", _, "agents", _, "states"] => {
            Rule::Require(Permission::AgentHistoryRead)
        }
        ["api", "v1", "tenants", _, ..] => Rule::Require(Permission::HistoryRead),
        // anything else needs credentials before it learns that it does not exist
        _ => Rule::Require(Permission::WhoAmI),
    }
}

/// An error of the API: a status and `{"error": message}`.
#[derive(Debug)]
pub(crate) enum ApiError {
    Denied(Denied),
    NotFound(String),
    BadRequest(String),
    TooMany(String),
    Unavailable(String),
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        ApiError::Denied(d)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // the request's fault (a limit or cursor the store refused), named by its field
            StoreError::Invalid { .. } => ApiError::BadRequest(e.to_string()),
            StoreError::Backend { .. } | StoreError::Corrupt { .. } => {
                tracing::warn!(error = %e, "supervisor read failed");
                ApiError::Unavailable(e.to_string())
            }
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Denied(d) => ApiError::Denied(d),
            AccessError::Invalid(m) => ApiError::BadRequest(m),
            AccessError::NotFound(m) => ApiError::NotFound(m),
            AccessError::Exists(m) => ApiError::BadRequest(m),
            AccessError::Busy(m) => ApiError::TooMany(m),
            AccessError::Log(e) => ApiError::Unavailable(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, msg) = match self {
            ApiError::Denied(Denied::Unauthenticated(m)) => (StatusCode::UNAUTHORIZED, m),
            ApiError::Denied(Denied::Forbidden(m)) => (StatusCode::FORBIDDEN, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::TooMany(m) => (StatusCode::TOO_MANY_REQUESTS, m),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
        };
        (code, Json(serde_json::json!({ "error": msg }))).into_response()
    }
}

type Api<T> = Result<T, ApiError>;
type Me = Extension<Principal>;
type Params = Query<HashMap<String, String>>;

impl Supervisor {
    /// Every route, behind `gate` (which must use [`policy`]).
    pub fn router(self: &Arc<Self>, gate: &Arc<Gate>) -> Router {
        let routes = Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route(
                "/api/v1/session",
                post(sign_in).get(who_am_i).delete(sign_out),
            )
            .route("/api/v1/tenants", get(tenants))
            .route("/api/v1/projector", get(projector))
            .route("/api/v1/tenants/{t}/live", get(live))
            .route("/api/v1/tenants/{t}/live/stream", get(stream))
            .route("/api/v1/tenants/{t}/calls", get(calls))
            .route("/api/v1/tenants/{t}/calls/{call}/offers", get(offers))
            .route("/api/v1/tenants/{t}/agents/{agent}/states", get(states))
            .route("/api/v1/tenants/{t}/intervals", get(intervals))
            .fallback(|| async { ApiError::NotFound("no such path".into()) })
            .layer(DefaultBodyLimit::max(16 * 1024))
            // gzip for clients that ask (Accept-Encoding), for bodies over 32 bytes; never the
            // push stream (text/event-stream: each event must leave at once)
            .layer(tower_http::compression::CompressionLayer::new())
            .with_state(Arc::clone(self));
        gate.guard(routes)
    }

    /// A 404 unless the tenant has projections (after the caller's scope was checked).
    async fn known(&self, tenant: &str) -> Api<()> {
        match self.calendar(tenant).await? {
            Some(_) => Ok(()),
            None => Err(ApiError::NotFound(format!("unknown tenant {tenant}"))),
        }
    }
}

/// `from`/`to` (ms since the epoch) of a request; all time by default.
fn span_of(q: &HashMap<String, String>) -> Api<Span> {
    let ms = |name: &str| -> Api<Option<u64>> {
        q.get(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::BadRequest(format!(
                        "{name} must be milliseconds since the epoch, got {v:?}"
                    ))
                })
            })
            .transpose()
    };
    let from = ms("from")?.unwrap_or(0);
    let to = ms("to")?.unwrap_or(u64::MAX);
    Span::new(from, to).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// `limit` (rows, 1 to 5,000; 500 when absent) and `cursor` (a page's `next_cursor`) of a
/// request; the store checks both and refuses bad ones by name (400).
fn page_of(q: &HashMap<String, String>) -> Api<PageRequest> {
    let limit = q
        .get("limit")
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "limit must be a number of rows from 1 to {MAX_PAGE_LIMIT}, got {v:?}"
                ))
            })
        })
        .transpose()?;
    Ok(PageRequest {
        limit,
        cursor: q.get("cursor").cloned(),
    })
}

async fn tenants(State(s): State<Arc<Supervisor>>, Extension(me): Me) -> Api<Json<Vec<String>>> {
    let mut t = s.store.tenants().await?;
    t.extend(s.projector.unwritten_tenants());
    t.sort();
    t.dedup();
    if let Some(own) = &me.tenant {
        t.retain(|t| **t == **own);
    }
    Ok(Json(t))
}

async fn projector(State(s): State<Arc<Supervisor>>) -> Json<serde_json::Value> {
    let p = s.projector.progress().borrow().clone();
    Json(serde_json::json!({
        "projected": p.projected,
        "skipped": p.skipped,
        "next_offsets": p.next,
    }))
}

async fn live(
    State(s): State<Arc<Supervisor>>,
    Path(t): Path<String>,
    Extension(me): Me,
) -> Api<Response> {
    me.check(Permission::LiveRead, &t, None)?;
    match s.snapshot(&t).await? {
        Some(snap) => Ok(Json(snap).into_response()),
        None => Err(ApiError::NotFound(format!("unknown tenant {t}"))),
    }
}

async fn stream(
    State(s): State<Arc<Supervisor>>,
    Path(t): Path<String>,
    Extension(me): Me,
) -> Api<Response> {
    me.check(Permission::LiveRead, &t, None)?;
    s.known(&t).await?;
    let Some(slot) = s.stream_slot(&t) else {
        return Err(ApiError::TooMany(format!(
            "tenant {t} has {} push streams open",
            s.options.max_streams_per_tenant
        )));
    };
    // subscribe before the snapshot: no change falls between them
    let rx = s.projector.subscribe();
    let (tx, out) = mpsc::channel(16);
    let session = me.session.clone().map(|id| (s.access.clone(), id));
    let me_s = Arc::clone(&s);
    tokio::spawn(async move {
        let _slot = slot;
        me_s.push(t, rx, tx, session).await;
    });
    let events = tokio_stream::wrappers::ReceiverStream::new(out).map(|p| {
        Ok::<_, Infallible>(match p {
            Push::Event(name, data) => Event::default().event(name).data(data),
            Push::KeepAlive => Event::default().comment("keepalive"),
        })
    });
    let mut resp = Sse::new(events).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

async fn calls(
    State(s): State<Arc<Supervisor>>,
    Path(t): Path<String>,
    Query(q): Params,
    Extension(me): Me,
) -> Api<Response> {
    me.check(Permission::HistoryRead, &t, None)?;
    s.known(&t).await?;
    let (span, page) = (span_of(&q)?, page_of(&q)?);
    Ok(Json(s.store.call_records(&t, span, page).await?).into_response())
}

async fn offers(
    State(s): State<Arc<Supervisor>>,
    Path((t, call)): Path<(String, String)>,
    Extension(me): Me,
) -> Api<Response> {
    me.check(Permission::HistoryRead, &t, None)?;
    s.known(&t).await?;
    Ok(Json(s.store.offers(&t, &call).await?).into_response())
}

async fn states(
    State(s): State<Arc<Supervisor>>,
    Path((t, agent)): Path<(String, String)>,
    Query(q): Params,
    Extension(me): Me,
) -> Api<Response> {
    me.check(Permission::AgentHistoryRead, &t, Some(&agent))?;
    s.known(&t).await?;
    let (span, page) = (span_of(&q)?, page_of(&q)?);
    Ok(Json(s.store.agent_states(&t, &agent, span, page).await?).into_response())
}

async fn intervals(
    State(s): State<Arc<Supervisor>>,
    Path(t): Path<String>,
    Query(q): Params,
    Extension(me): Me,
) -> Api<Response> {
    me.check(Permission::HistoryRead, &t, None)?;
    s.known(&t).await?;
    let (span, page) = (span_of(&q)?, page_of(&q)?);
    Ok(Json(s.store.intervals(&t, span, page).await?).into_response())
}

/// A sign-in.
#[derive(Deserialize)]
struct SignIn {
    tenant: String,
    user: String,
    password: String,
}

/// Who is signed in, and the session's CSRF token.
#[derive(Serialize)]
struct SessionJson {
    /// `user:TENANT/NAME` or `token:ID`.
    id: String,
    role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<String>,
    /// Send as `X-CSRF-Token` with every request that changes something.
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf: Option<String>,
    /// An agent's bearer token for its own API calls (ends with the session).
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_ms: Option<i64>,
}

impl SessionJson {
    fn of(p: &Principal) -> SessionJson {
        SessionJson {
            id: p.id.to_string(),
            role: p.role.to_string(),
            tenant: p.tenant.as_deref().map(str::to_owned),
            agent: p.agent.as_deref().map(str::to_owned),
            csrf: None,
            token: None,
            expires_ms: None,
        }
    }
}

async fn sign_in(
    State(s): State<Arc<Supervisor>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Json<SignIn>, axum::extract::rejection::JsonRejection>,
) -> Api<Response> {
    let Json(r) = body.map_err(|e| {
        ApiError::BadRequest(format!(
            "sign in with a JSON body {{\"tenant\", \"user\", \"password\"}}: {e}"
        ))
    })?;
    let signed = s
        .access
        .sign_in(&r.tenant, &r.user, &r.password, &peer.ip().to_string())
        .await?;
    let max_age = (signed.expires_ms - callgrid_access::now_ms()).max(0) / 1000;
    let cookie = format!(
        "{}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{}",
        callgrid_access::gate::SESSION_COOKIE,
        signed.cookie,
        if s.options.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    let body = SessionJson {
        csrf: Some(signed.csrf),
        token: signed.agent_token,
        expires_ms: Some(signed.expires_ms),
        ..SessionJson::of(&signed.principal)
    };
    let mut resp = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

async fn who_am_i(Extension(me): Me) -> Json<SessionJson> {
    Json(SessionJson::of(&me))
}

async fn sign_out(State(s): State<Arc<Supervisor>>, Extension(me): Me) -> Api<Response> {
    s.access.sign_out(&me).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("callgrid_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    Ok(resp)
}
