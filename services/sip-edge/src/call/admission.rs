//! Admission of a new INVITE, before any call exists: the number's tenant, the trunk the
//! INVITE comes from (by source address, or digest-authenticated in the edge's realm), the
//! trunk's concurrent-call limit, and what the caller hears when the router refuses the
//! arrival.

use std::sync::Arc;

use rsipstack::sip::{Header, StatusCode};
use rsipstack::transaction::transaction::Transaction;

use super::sip::{dialled_number, reason};
use crate::auth::{self, Checked};
use crate::digest;
use crate::directory::TrunkEntry;
use crate::dispatch::source_of;
use crate::metrics::Metrics;
use crate::Shared;

/// A call let in: the number dialled (as configured) and its tenant, and its place under
/// the trunk's limit.
pub(super) struct Admitted {
    pub(super) tenant: Arc<str>,
    pub(super) number: Arc<str>,
    pub(super) _place: TrunkPlace,
}

/// Lets a new INVITE in, or answers it (404, 407, 403, 503) and returns `None`.
pub(super) async fn admit(shared: &Shared, tx: &mut Transaction) -> Option<Admitted> {
    let dialled = dialled_number(&tx.original);
    let directory = shared.directory.get();
    let Some(number) = directory.number(&dialled).cloned() else {
        Metrics::inc(&shared.metrics.calls_unknown_number);
        tracing::info!(number = %dialled, "call to an unknown number refused");
        let _ = tx.reply(StatusCode::NotFound).await;
        return None;
    };
    let trunk = trunk_of(shared, tx, &number.tenant).await?;
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
    Some(Admitted {
        tenant: number.tenant,
        number: number.number,
        _place: TrunkPlace(trunk),
    })
}

/// Holds a place under the trunk's limit for as long as the call lives.
pub(super) struct TrunkPlace(Arc<TrunkEntry>);
impl Drop for TrunkPlace {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Which trunk of `tenant` the INVITE comes from: by source address, or by digest
/// authentication with a trunk account (in the edge's realm, for this Request-URI, not a
/// replay; failures counted and banned as for phones, `auth.rs`). Answers 407/403 itself
/// when there is none.
async fn trunk_of(shared: &Shared, tx: &mut Transaction, tenant: &str) -> Option<Arc<TrunkEntry>> {
    let directory = shared.directory.get();
    let source = source_of(tx);
    if let Some((source, _)) = source {
        if let Some(t) = directory.trunk_by_source(source, tenant) {
            return Some(t);
        }
    }
    let from = source.map_or(shared.local.ip(), |(s, _)| s.ip());
    let credentials = tx.original.headers.iter().find_map(|h| match h {
        Header::ProxyAuthorization(a) => digest::parse_authorization(a.value()).ok(),
        _ => None,
    });
    let user_key = credentials
        .as_ref()
        .map(|c| format!("trunk:{}", c.username));
    if user_key
        .as_deref()
        .is_some_and(|k| shared.defences.user_banned(k))
    {
        Metrics::inc(&shared.metrics.banned_user_requests);
        Metrics::inc(&shared.metrics.calls_forbidden);
        let _ = tx
            .reply_with(
                StatusCode::Forbidden,
                vec![auth::reason(auth::BANNED)],
                None,
            )
            .await;
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
    match checked {
        Checked::Verified(trunk) => {
            if let Some(k) = &user_key {
                shared.defences.success(k);
            }
            Some(trunk)
        }
        Checked::Challenge { stale } => {
            // no credentials, a nonce that is not fresh, or a replay: challenge (the
            // number's tenant is known)
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
            shared.defences.failure(from, user_key.as_deref());
            tracing::info!(tenant, src = %from, "call from an unknown source refused");
            let _ = tx.reply(StatusCode::Forbidden).await;
            None
        }
    }
}

/// What the caller hears when the router refuses its arrival, counted.
pub(super) fn refusal(shared: &Shared, status: &tonic::Status) -> StatusCode {
    use tonic::Code;
    let (code, counter) = match status.code() {
        Code::NotFound => (StatusCode::NotFound, &shared.metrics.calls_unknown_number),
        Code::ResourceExhausted => (
            StatusCode::ServiceUnavailable,
            &shared.metrics.calls_over_tenant_limit,
        ),
        Code::PermissionDenied => (StatusCode::Forbidden, &shared.metrics.calls_forbidden),
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
