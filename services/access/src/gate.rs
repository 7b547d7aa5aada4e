//! The one authentication layer of every API, gRPC and HTTP alike: an axum middleware (a
//! tower layer) in front of both servers.
//!
//! For each request it looks up the route's [`Rule`] (the server's [`Policy`]): open routes
//! (health) pass; admin routes must also come from an allowed address; every other route
//! needs a bearer token (`Authorization: Bearer ...`) or, on HTTP, a browser session cookie
//! (with the session's `X-CSRF-Token` on requests that change something), whose role allows
//! the route's [`Permission`]. The caller's [`Principal`] goes into the request's extensions;
//! handlers check the tenant and agent scope against what the request names
//! ([`Principal::check`]), since only they have decoded it.
//!
//! Refusals: no or bad credentials → HTTP 401 / gRPC `UNAUTHENTICATED`; a role, address or
//! CSRF token that does not fit → 403 / `PERMISSION_DENIED`. Nothing runs for a refused
//! request.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::role::{Denied, Permission, Principal};
use crate::store::Access;

/// Says who a credential is: the node's own [`Access`], or (a SIP edge, which keeps no
/// credentials) the router's access API.
#[async_trait::async_trait]
pub trait Verifier: Send + Sync + 'static {
    /// Who a bearer token is.
    async fn token(&self, token: &str) -> Result<Principal, Denied>;
    /// Who a session cookie is; `csrf` as in [`crate::Directory::authenticate_session`].
    async fn session(&self, cookie: &str, csrf: Option<Option<&str>>) -> Result<Principal, Denied>;
}

#[async_trait::async_trait]
impl Verifier for Access {
    async fn token(&self, token: &str) -> Result<Principal, Denied> {
        self.authenticate_token(token)
    }
    async fn session(&self, cookie: &str, csrf: Option<Option<&str>>) -> Result<Principal, Denied> {
        self.authenticate_session(cookie, csrf)
    }
}

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "callgrid_session";
/// The header carrying a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Nothing (health checks, the sign-in page).
    Open,
    /// A credential whose role allows this.
    Require(Permission),
    /// As `Require`, from an address on the admin allow-list only (P6).
    Admin(Permission),
}

/// The rule of each route of a server, by method and path.
pub type Policy = fn(&Method, &str) -> Rule;

/// Networks allowed to reach the admin API (P6).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<(IpAddr, u8)>,
}

impl AllowList {
    /// Every address.
    pub fn any() -> AllowList {
        AllowList {
            nets: vec![
                (IpAddr::from([0, 0, 0, 0]), 0),
                (IpAddr::from([0u16; 8]), 0),
            ],
        }
    }

    /// The loopback addresses.
    pub fn loopback() -> AllowList {
        AllowList {
            nets: vec![
                (IpAddr::from([127, 0, 0, 0]), 8),
                (IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1]), 128),
            ],
        }
    }

    /// Parses `ADDR[/BITS][,ADDR[/BITS]...]`.
    pub fn parse(s: &str) -> Result<AllowList, String> {
        let mut nets = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (addr, bits) = match part.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (part, None),
            };
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| format!("{part:?} is not an address or ADDR/BITS network"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(b) => b
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("{part:?}: prefix length must be 0 to {max}"))?,
                None => max,
            };
            nets.push((addr, bits));
        }
        if nets.is_empty() {
            return Err("the allow-list names no network".into());
        }
        Ok(AllowList { nets })
    }

    /// Whether `ip` is in one of the networks.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.nets.iter().any(|(net, bits)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), *bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), *bits),
            _ => false,
        })
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = (bits / 8) as usize;
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[full] & mask == b[full] & mask
    }
}

/// The gate in front of one server.
pub struct Gate {
    verifier: Arc<dyn Verifier>,
    policy: Policy,
    admin: AllowList,
    cookies: bool,
}

impl Gate {
    /// A gate asking `verifier` who credentials are and `policy` what routes need; admin
    /// routes only from `admin`; browser session cookies accepted when `cookies` (HTTP, not
    /// gRPC).
    pub fn new(
        verifier: Arc<dyn Verifier>,
        policy: Policy,
        admin: AllowList,
        cookies: bool,
    ) -> Arc<Gate> {
        Arc::new(Gate {
            verifier,
            policy,
            admin,
            cookies,
        })
    }

    /// Puts the gate in front of every route of `router`.
    pub fn guard(self: &Arc<Self>, router: axum::Router) -> axum::Router {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), gate))
    }

    /// Who a request's credentials say it is, or why not.
    pub async fn authenticate(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Principal, Denied> {
        if let Some(v) = headers.get(header::AUTHORIZATION) {
            let v = v
                .to_str()
                .map_err(|_| Denied::Unauthenticated("unreadable Authorization header".into()))?;
            let (scheme, token) = v.trim().split_once(' ').unwrap_or((v, ""));
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(Denied::Unauthenticated(
                    "Authorization must be Bearer TOKEN".into(),
                ));
            }
            return self.verifier.token(token.trim()).await;
        }
        if self.cookies {
            if let Some(cookie) = session_cookie(headers) {
                let changes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
                let csrf = changes.then(|| headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()));
                return self.verifier.session(cookie, csrf).await;
            }
        }
        Err(Denied::Unauthenticated(
            "credentials required: Authorization: Bearer TOKEN".into(),
        ))
    }
}

/// The value of the session cookie, if the request has one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v)
}

async fn gate(State(gate): State<Arc<Gate>>, mut req: Request, next: Next) -> Response {
    let rule = (gate.policy)(req.method(), req.uri().path());
    let permission = match rule {
        Rule::Open => return next.run(req).await,
        Rule::Require(p) => p,
        Rule::Admin(p) => {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip());
            if !peer.is_some_and(|ip| gate.admin.allows(ip)) {
                return refuse(
                    &req,
                    &Denied::Forbidden(format!(
                        "the admin API is not open to {}",
                        peer.map_or_else(|| "this address".to_string(), |ip| ip.to_string())
                    )),
                );
            }
            p
        }
    };
    let principal = match gate
        .authenticate(req.method(), req.headers())
        .await
        .and_then(|p| p.allow(permission).map(|()| p))
    {
        Ok(p) => p,
        Err(d) => return refuse(&req, &d),
    };
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// Whether a request is gRPC.
fn is_grpc(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// The refusal of a request: a gRPC status, or HTTP 401/403 with a JSON error.
pub fn refuse(req: &Request, d: &Denied) -> Response {
    if is_grpc(req) {
        let status = match d {
            Denied::Unauthenticated(m) => tonic::Status::unauthenticated(m.clone()),
            Denied::Forbidden(m) => tonic::Status::permission_denied(m.clone()),
        };
        return status.into_http::<Body>();
    }
    let (code, msg) = match d {
        Denied::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, m),
        Denied::Forbidden(m) => (StatusCode::FORBIDDEN, m),
    };
    let mut resp = (code, axum::Json(serde_json::json!({ "error": msg }))).into_response();
    if code == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"callgrid\""),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_match_networks() {
        let l = AllowList::parse("10.0.0.0/8, 192.168.1.7, ::1").expect("parses");
        assert!(l.allows("10.2.3.4".parse().expect("ip")));
        assert!(!l.allows("11.0.0.1".parse().expect("ip")));
        assert!(l.allows("192.168.1.7".parse().expect("ip")));
        assert!(!l.allows("192.168.1.8".parse().expect("ip")));
        assert!(l.allows("::1".parse().expect("ip")));
        assert!(l.allows("::ffff:10.0.0.1".parse().expect("ip")));
        let odd = AllowList::parse("172.16.0.0/12").expect("parses");
        assert!(odd.allows("172.31.255.255".parse().expect("ip")));
        assert!(!odd.allows("172.32.0.0".parse().expect("ip")));
        assert!(AllowList::parse("").is_err());
        assert!(AllowList::parse("10.0.0.0/33").is_err());
        assert!(AllowList::parse("example.com").is_err());
        assert!(AllowList::any().allows("8.8.8.8".parse().expect("ip")));
        assert!(AllowList::loopback().allows("127.1.2.3".parse().expect("ip")));
        assert!(!AllowList::loopback().allows("8.8.8.8".parse().expect("ip")));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; callgrid_session=cs_x_y; b=2"),
        );
        assert_eq!(session_cookie(&h), Some("cs_x_y"));
        assert_eq!(session_cookie(&HeaderMap::new()), None);
    }
}
