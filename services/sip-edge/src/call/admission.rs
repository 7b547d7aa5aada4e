//! Admission of a new INVITE, before any call exists: the number's tenant, the trunk the
//! INVITE comes from (by source address, or digest-authenticated in the edge's realm), the
//! trunk's concurrent-call limit, and what the caller hears when the router refuses the
//! arrival.

use std::sync::Arc;

use rsipstack::sip::headers::untyped::ToTypedHeader;
use rsipstack::sip::{Header, HeadersExt, StatusCode};
use rsipstack::transaction::transaction::Transaction;

use super::sip::{dialled_number, reason};
use crate::auth::{self, Checked};
use crate::digest;
use crate::directory::{AgentEntry, AgentLookup, Directory, TrunkEntry};
use crate::dispatch::source_of;
use crate::metrics::Metrics;
use crate::Shared;

/// A new INVITE let in.
pub(super) enum Admission {
    /// A carrier's call to a number of a tenant.
    Carrier(Admitted),
    /// An agent's phone dialling (issue 18), digest-authenticated as the agent.
    Phone(Dialling),
}

/// A carrier's call let in: the number dialled (as configured) and its tenant, and its place
/// under the trunk's limit.
pub(super) struct Admitted {
    pub(super) tenant: Arc<str>,
    pub(super) number: Arc<str>,
    /// Where the call goes when the platform cannot take it (N6).
    pub(super) backup: Option<Arc<callgrid_config::BackupRoute>>,
    /// The tenant is out of service: the call goes to the backup at once.
    pub(super) out_of_service: bool,
    pub(super) _place: TrunkPlace,
}

/// An agent's phone dialling `destination`.
pub(super) struct Dialling {
    pub(super) tenant: Arc<str>,
    pub(super) agent: Arc<str>,
    pub(super) destination: String,
}

/// Lets a new INVITE in, or answers it (404, 407, 403, 503) and returns `None`. A carrier's
/// call comes from one of the number's trunks (by source, or digest-authenticated with a
/// trunk account); an agent's phone names its agent in From (as it registers) and proves it
/// with the agent's digest credentials.
pub(super) async fn admit(shared: &Shared, tx: &mut Transaction) -> Option<Admission> {
    let dialled = dialled_number(&tx.original);
    let directory = shared.directory.get();
    let number = directory.number(&dialled).cloned();
    let by_source = match (&number, source_of(tx)) {
        (Some(n), Some((source, _))) => directory.trunk_by_source(source, &n.tenant),
        _ => None,
    };
    if by_source.is_none() {
        match phone_agent(&directory, &tx.original) {
            AgentLookup::Found(agent) => {
                return phone(shared, tx, agent, dialled)
                    .await
                    .map(Admission::Phone);
            }
            AgentLookup::Ambiguous => {
                Metrics::inc(&shared.metrics.calls_forbidden);
                let text = "agent id used by several tenants: call as tenant.agent";
                let _ = tx
                    .reply_with(StatusCode::Forbidden, vec![reason(403, text)], None)
                    .await;
                return None;
            }
            AgentLookup::Unknown => {}
        }
    }
    let Some(number) = number else {
        Metrics::inc(&shared.metrics.calls_unknown_number);
        tracing::info!(number = %dialled, "call to an unknown number refused");
        let _ = tx.reply(StatusCode::NotFound).await;
        return None;
    };
    let trunk = match by_source {
        Some(t) => t,
        None => trunk_of(shared, tx, &number.tenant).await?,
    };
    if !trunk.try_acquire() {
        Metrics::inc(&shared.metrics.calls_over_trunk_limit);
        tracing::info!(tenant = %trunk.tenant, trunk = %trunk.id, "call over the trunk's limit refused");
        let _ = tx
            .reply_with(
                StatusCode::ServiceUnavailable,
                vec![reason(
                    503,
                    &format!(
                        "trunk {} is at its limit of {} concurrent calls",
                        trunk.id,
                        trunk.max_calls.unwrap_or(0)
                    ),
                )],
                None,
            )
            .await;
        return None;
    }
    Some(Admission::Carrier(Admitted {
        tenant: number.tenant,
        number: number.number,
        backup: number.backup,
        out_of_service: number.out_of_service,
        _place: TrunkPlace(trunk),
    }))
}

/// The agent an INVITE's From names (`tenant.agent@any`, `agent@tenant`, or a bare agent
/// id one tenant has), as a registering phone names it.
fn phone_agent(directory: &Directory, req: &rsipstack::sip::Request) -> AgentLookup {
    let Some(from) = req.from_header().ok().and_then(|f| f.typed().ok()) else {
        return AgentLookup::Unknown;
    };
    let Some(user) = from.uri.user() else {
        return AgentLookup::Unknown;
    };
    directory.agent(user, &from.uri.host_with_port.host.to_string())
}

/// An agent's phone dialling: digest-authenticated with the agent's credentials (407
/// challenge, the same defences as its REGISTER: bans, failures counted, replays refused).
async fn phone(
    shared: &Shared,
    tx: &mut Transaction,
    agent: AgentEntry,
    destination: String,
) -> Option<Dialling> {
    let from = source_of(tx).map_or(shared.local.ip(), |(s, _)| s.ip());
    let user_key = format!("{}.{}", agent.tenant, agent.agent);
    // a phone registered from this address keeps calling: a brute force from elsewhere
    // must not silence the agent's phones
    let key = (agent.tenant.clone(), agent.agent.clone());
    let registered_here = shared
        .registrar
        .has_binding_from(&key, from, std::time::Instant::now());
    if !registered_here && refuse_banned(shared, tx, &user_key).await {
        return None;
    }
    let credentials = proxy_credentials(&tx.original);
    let directory = shared.directory.get();
    let checked = auth::check(shared, credentials.as_ref(), &tx.original.uri, from, |c| {
        directory
            .proves(&agent, c, &agent.tenant, "INVITE")
            .then_some(())
    });
    verified(shared, tx, checked, from, &user_key).await?;
    Metrics::inc(&shared.metrics.calls_dialled);
    Some(Dialling {
        tenant: agent.tenant,
        agent: agent.agent,
        destination,
    })
}

fn proxy_credentials(req: &rsipstack::sip::Request) -> Option<digest::Credentials> {
    req.headers.iter().find_map(|h| match h {
        Header::ProxyAuthorization(a) => digest::parse_authorization(a.value()).ok(),
        _ => None,
    })
}

/// Holds a place under the trunk's limit for as long as the call lives.
pub(super) struct TrunkPlace(Arc<TrunkEntry>);
impl Drop for TrunkPlace {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Which trunk of `tenant` the INVITE comes from when its source is none of them: digest
/// authentication with a trunk account (in the edge's realm, for this Request-URI, not a
/// replay; failures counted and banned as for phones, `auth.rs`). Answers 407/403 itself
/// when there is none.
async fn trunk_of(shared: &Shared, tx: &mut Transaction, tenant: &str) -> Option<Arc<TrunkEntry>> {
    let directory = shared.directory.get();
    let from = source_of(tx).map_or(shared.local.ip(), |(s, _)| s.ip());
    let credentials = proxy_credentials(&tx.original);
    let user_key = credentials
        .as_ref()
        .map_or_else(String::new, |c| format!("trunk:{}", c.username));
    if !user_key.is_empty() && refuse_banned(shared, tx, &user_key).await {
        return None;
    }
    let checked = auth::check(shared, credentials.as_ref(), &tx.original.uri, from, |c| {
        directory
            .trunks_by_username(&c.username)
            .iter()
            .find(|t| {
                &*t.tenant == tenant
                    && t.password
                        .as_deref()
                        .is_some_and(|p| digest::verify(c, "INVITE", p))
            })
            .cloned()
    });
    let trunk = verified(shared, tx, checked, from, &user_key).await;
    if trunk.is_none() {
        tracing::info!(tenant, src = %from, "call from an unknown source refused");
    }
    trunk
}

/// Refuses (403) a new INVITE of an account banned for failed authentications, before any
/// digest is computed for it.
async fn refuse_banned(shared: &Shared, tx: &mut Transaction, user_key: &str) -> bool {
    if !shared.defences.user_banned(user_key) {
        return false;
    }
    Metrics::inc(&shared.metrics.banned_user_requests);
    Metrics::inc(&shared.metrics.calls_forbidden);
    let _ = tx
        .reply_with(
            StatusCode::Forbidden,
            vec![auth::reason(auth::BANNED)],
            None,
        )
        .await;
    true
}

/// The outcome of a digest check on a new INVITE (`user_key`: the account whose failures
/// are counted and banned, empty for none): the account proved, or the INVITE answered —
/// 407 (no credentials, a nonce not fresh, a replay), 403 (a digest for another URI, wrong
/// credentials).
async fn verified<T>(
    shared: &Shared,
    tx: &mut Transaction,
    checked: Checked<T>,
    from: std::net::IpAddr,
    user_key: &str,
) -> Option<T> {
    let user_key = (!user_key.is_empty()).then_some(user_key);
    match checked {
        Checked::Verified(proved) => {
            if let Some(k) = user_key {
                shared.defences.success(k);
            }
            Some(proved)
        }
        Checked::Challenge { stale } => {
            let value = shared.nonces.challenge(&shared.options.realm, stale, from);
            let _ = tx
                .reply_with(
                    StatusCode::ProxyAuthenticationRequired,
                    vec![Header::ProxyAuthenticate(value.into())],
                    None,
                )
                .await;
            None
        }
        Checked::UriMismatch => {
            Metrics::inc(&shared.metrics.calls_forbidden);
            let _ = tx
                .reply_with(
                    StatusCode::Forbidden,
                    vec![auth::reason(auth::URI_MISMATCH)],
                    None,
                )
                .await;
            None
        }
        Checked::Failed => {
            Metrics::inc(&shared.metrics.calls_forbidden);
            shared.defences.failure(from, user_key);
            let _ = tx.reply(StatusCode::Forbidden).await;
            None
        }
    }
}

/// What the caller hears when the router refuses its arrival (or a phone's call), counted.
pub(super) fn refusal(shared: &Shared, status: &tonic::Status) -> StatusCode {
    use tonic::Code;
    let (code, counter) = match status.code() {
        Code::NotFound => (StatusCode::NotFound, &shared.metrics.calls_unknown_number),
        Code::ResourceExhausted => (
            StatusCode::ServiceUnavailable,
            &shared.metrics.calls_over_tenant_limit,
        ),
        // a phone's call out: the agent may not call out now (on a call, A1) or not there
        Code::PermissionDenied | Code::FailedPrecondition => {
            (StatusCode::Forbidden, &shared.metrics.calls_forbidden)
        }
        // a phone's destination that is no number
        Code::InvalidArgument => (
            StatusCode::AddressIncomplete,
            &shared.metrics.calls_unknown_number,
        ),
        Code::Unavailable => (
            StatusCode::ServiceUnavailable,
            &shared.metrics.calls_overloaded,
        ),
        _ => (
            StatusCode::ServiceUnavailable,
            &shared.metrics.calls_router_failed,
        ),
    };
    Metrics::inc(counter);
    code
}
