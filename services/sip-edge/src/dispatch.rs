//! The loop over new server transactions: checks common to every request, then REGISTER,
//! OPTIONS, new INVITEs and in-dialog requests each go their way. Everything that can wait
//! runs in its own task so the loop only sorts.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rsipstack::sip::headers::untyped::ToTypedHeader;
use rsipstack::sip::{Header, HeadersExt, Method, Param, StatusCode, Transport};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transaction::TransactionReceiver;
use tokio_util::sync::CancellationToken;

use crate::auth::{self, Checked};
use crate::digest;
use crate::directory::AgentLookup;
use crate::metrics::Metrics;
use crate::registrar::{ContactUpdate, RegisterError};
use crate::transport::ALLOW;
use crate::Shared;

/// Retry-After of a new call shed at the intake, in seconds: short, because a carrier that
/// honours it sends nothing at all to this edge meanwhile (RFC 3261 §21.5.4; RFC 6357 §3.1).
const RETRY_AFTER_S: &str = "1";

pub(crate) async fn run(
    shared: Arc<Shared>,
    mut incoming: TransactionReceiver,
    cancel: CancellationToken,
) {
    loop {
        let tx = tokio::select! {
            tx = incoming.recv() => match tx { Some(tx) => tx, None => break },
            _ = cancel.cancelled() => break,
        };
        sort(&shared, tx);
    }
}

fn sort(shared: &Arc<Shared>, mut tx: Transaction) {
    let method = tx.original.method;
    if method == Method::Ack {
        return; // an ACK for nothing we know: nothing to answer (RFC 3261 §17.2.3)
    }
    // Max-Forwards (RFC 3261 §8.2.2 / §16.3): a request that has run out of hops is refused.
    if let Ok(mf) = tx.original.max_forwards_header() {
        if mf.value().trim() == "0" && method != Method::Options {
            Metrics::inc(&shared.metrics.too_many_hops);
            spawn_reply(tx, StatusCode::TooManyHops, vec![]);
            return;
        }
    }
    let in_dialog = tx
        .original
        .to_header()
        .ok()
        .and_then(|t| t.tag().ok().flatten())
        .is_some();
    if in_dialog {
        match shared.dialogs.match_dialog(&tx) {
            Some(mut dialog) => {
                tokio::spawn(async move {
                    if let Err(e) = dialog.handle(&mut tx).await {
                        tracing::debug!(error = %e, "in-dialog request failed");
                    }
                });
            }
            None => {
                Metrics::inc(&shared.metrics.no_such_dialog);
                spawn_reply(tx, StatusCode::CallTransactionDoesNotExist, vec![]);
            }
        }
        return;
    }
    let shared = shared.clone();
    match method {
        Method::Invite => {
            // shed load before doing any work for the call (docs/DECISIONS.md, "Overload");
            // over UDP the front door has decided already (transport::spawn_front_door)
            let over_udp = tx
                .connection
                .as_ref()
                .is_some_and(|c| c.transport() == Transport::Udp);
            if !over_udp && !shared.shedder.admit() {
                Metrics::inc(&shared.metrics.calls_shed);
                spawn_reply(
                    tx,
                    StatusCode::ServiceUnavailable,
                    vec![
                        Header::RetryAfter(RETRY_AFTER_S.into()),
                        Header::Reason("SIP;cause=503;text=\"overloaded\"".into()),
                    ],
                );
                return;
            }
            tokio::spawn(async move { crate::call::inbound(shared, tx).await });
        }
        Method::Register => {
            tokio::spawn(async move { register(&shared, &mut tx).await });
        }
        Method::Options => {
            Metrics::inc(&shared.metrics.options_answered);
            spawn_reply(
                tx,
                StatusCode::OK,
                vec![
                    Header::Allow(ALLOW.into()),
                    Header::Accept("application/sdp".into()),
                ],
            );
        }
        Method::Bye | Method::Info | Method::Refer | Method::Update | Method::PRack => {
            // these need a dialog, and this request names none
            Metrics::inc(&shared.metrics.no_such_dialog);
            spawn_reply(tx, StatusCode::CallTransactionDoesNotExist, vec![]);
        }
        _ => {
            // MESSAGE, SUBSCRIBE, NOTIFY, PUBLISH outside a dialog: known, not offered here
            Metrics::inc(&shared.metrics.methods_not_allowed);
            spawn_reply(
                tx,
                StatusCode::MethodNotAllowed,
                vec![Header::Allow(ALLOW.into())],
            );
        }
    }
}

/// Answers a request from its own task, so the sorting loop never waits on a send.
fn spawn_reply(mut tx: Transaction, code: StatusCode, headers: Vec<Header>) {
    tokio::spawn(async move {
        let _ = tx.reply_with(code, headers, None).await;
    });
}

/// The address the request came from (the transport's view, not the Via's claim).
pub(crate) fn source_of(tx: &Transaction) -> Option<(SocketAddr, Transport)> {
    let conn = tx.connection.as_ref()?;
    let addr = conn.get_remote_addr()?.get_socketaddr().ok()?;
    Some((addr, conn.transport()))
}

/// Answers a REGISTER (A4): digest authentication against the agent's password (with the
/// defences: banned users, failures counted, replays refused), then the bindings are added,
/// refreshed or removed.
async fn register(shared: &Shared, tx: &mut Transaction) {
    let req = &tx.original;
    let Ok(to) = req.to_header().and_then(|t| t.typed()) else {
        let _ = tx.reply(StatusCode::BadRequest).await;
        return;
    };
    let (source, transport) = source_of(tx).unwrap_or((shared.local, Transport::Udp));
    let user = to.uri.user().unwrap_or_default().to_owned();
    let domain = to.uri.host_with_port.host.to_string();
    let directory = shared.directory.get();
    // unknown agents are challenged and checked like known ones, so the answers do not tell
    // which agent ids exist; their credentials can never verify
    let agent = match directory.agent(&user, &domain) {
        AgentLookup::Found(a) if a.credential.is_some() => Some(a),
        AgentLookup::Ambiguous => {
            Metrics::inc(&shared.metrics.registrations_refused);
            let _ = tx
                .reply_with(
                    StatusCode::Forbidden,
                    vec![Header::Reason(
                        "SIP;cause=403;text=\"agent id used by several tenants: register as tenant.agent\"".into(),
                    )],
                    None,
                )
                .await;
            return;
        }
        _ => None,
    };
    let now = Instant::now();
    // failures and bans are per agent, whatever spelling names it; per address-of-record
    // for names that are no agent's
    let user_key = match &agent {
        Some(a) => format!("{}.{}", a.tenant, a.agent),
        None => format!("{user}@{domain}"),
    };
    if shared.defences.user_banned(&user_key) {
        // a phone already registered from this address keeps refreshing: a brute force
        // from elsewhere must not unregister the agent's phones
        let registered_here = agent.as_ref().is_some_and(|a| {
            shared.registrar.has_binding_from(
                &(a.tenant.clone(), a.agent.clone()),
                source.ip(),
                now,
            )
        });
        if !registered_here {
            Metrics::inc(&shared.metrics.banned_user_requests);
            Metrics::inc(&shared.metrics.registrations_refused);
            let _ = tx
                .reply_with(
                    StatusCode::Forbidden,
                    vec![auth::reason(auth::BANNED)],
                    None,
                )
                .await;
            return;
        }
    }
    let credentials = authorization(req);
    let checked = auth::check(shared, credentials.as_ref(), &req.uri, source.ip(), |c| {
        let agent = agent.as_ref()?;
        directory
            .proves(agent, c, &domain, "REGISTER")
            .then(|| agent.clone())
    });
    let agent = match checked {
        Checked::Verified(agent) => agent,
        Checked::Challenge { stale } => {
            challenge(shared, tx, stale, source.ip()).await;
            return;
        }
        Checked::UriMismatch => {
            Metrics::inc(&shared.metrics.registrations_refused);
            let _ = tx
                .reply_with(
                    StatusCode::Forbidden,
                    vec![auth::reason(auth::URI_MISMATCH)],
                    None,
                )
                .await;
            return;
        }
        Checked::Failed => {
            Metrics::inc(&shared.metrics.registrations_refused);
            shared.defences.failure(source.ip(), Some(&user_key));
            tracing::info!(src = %source, user = %user_key, "register refused: bad credentials");
            let _ = tx.reply(StatusCode::Forbidden).await;
            return;
        }
    };
    shared.defences.success(&user_key);

    let key = (agent.tenant.clone(), agent.agent.clone());
    let call_id = req
        .call_id_header()
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let cseq = req.cseq_header().and_then(|c| c.seq()).unwrap_or(0);
    let default_expires = req
        .expires_header()
        .and_then(|e| e.value().trim().parse::<u64>().ok())
        .unwrap_or(3600);

    let wildcard = req
        .contact_headers()
        .iter()
        .any(|c| c.value().trim() == "*");
    if wildcard {
        if default_expires != 0 {
            let _ = tx.reply(StatusCode::BadRequest).await;
            return;
        }
        shared.registrar.clear(&key);
        Metrics::inc(&shared.metrics.registrations);
        let _ = tx.reply(StatusCode::OK).await;
        return;
    }
    let contacts = match req.typed_contact_headers() {
        Ok(c) => c,
        Err(_) => {
            let _ = tx.reply(StatusCode::BadRequest).await;
            return;
        }
    };
    let updates = match contact_updates(
        &contacts,
        default_expires,
        (source, transport),
        (shared.options.min_expires, shared.options.max_expires),
    ) {
        Ok(u) => u,
        Err(TooBrief) => {
            let _ = tx
                .reply_with(
                    StatusCode::IntervalTooBrief,
                    vec![Header::MinExpires(
                        shared.options.min_expires.as_secs().to_string().into(),
                    )],
                    None,
                )
                .await;
            return;
        }
    };
    let bindings = match shared.registrar.update(&key, &call_id, cseq, &updates, now) {
        Ok(b) => b,
        Err(e @ RegisterError::OutOfOrder { .. }) => {
            tracing::debug!(error = %e, "register ignored");
            let _ = tx.reply(StatusCode::ServerInternalError).await;
            return;
        }
        Err(e @ RegisterError::TooManyDevices(_)) => {
            Metrics::inc(&shared.metrics.registrations_refused);
            let _ = tx
                .reply_with(
                    StatusCode::Forbidden,
                    vec![Header::Reason(format!("SIP;cause=403;text=\"{e}\"").into())],
                    None,
                )
                .await;
            return;
        }
    };
    Metrics::inc(&shared.metrics.registrations);
    tracing::debug!(tenant = %agent.tenant, agent = %agent.agent, devices = bindings.len(), "registered");
    let headers = bindings
        .iter()
        .map(|b| {
            let left = b.expires_at.saturating_duration_since(now).as_secs();
            Header::Contact(format!("<{}>;expires={left}", b.contact).into())
        })
        .collect();
    let _ = tx.reply_with(StatusCode::OK, headers, None).await;
}

/// A Contact asked for less than the shortest registration (423, RFC 3261 §10.3 step 6).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooBrief;

/// The bindings a REGISTER's contacts ask for: lifetimes from each contact's `expires` or
/// the request's, capped by `(min, max)`. Every binding is reached at `source` over the
/// transport the REGISTER came by (RFC 3581's received and rport): over UDP the phone's NAT
/// mapping, never the Contact's own host (a private address behind NAT, or a third party a
/// forged REGISTER names); over TCP the phone's own connection (it may not accept new ones).
/// The Contact stays the Request-URI of the requests sent to the phone.
pub(crate) fn contact_updates(
    contacts: &[rsipstack::sip::typed::Contact],
    default_expires: u64,
    (source, transport): (SocketAddr, Transport),
    (min, max): (Duration, Duration),
) -> Result<Vec<ContactUpdate>, TooBrief> {
    contacts
        .iter()
        .map(|c| {
            let expires = c
                .params
                .iter()
                .chain(c.uri.params.iter())
                .find_map(|p| match p {
                    Param::Expires(e) => e.value().parse::<u64>().ok(),
                    _ => None,
                })
                .unwrap_or(default_expires);
            if expires > 0 && expires < min.as_secs() {
                return Err(TooBrief);
            }
            Ok(ContactUpdate {
                contact: c.uri.to_string(),
                target: source,
                transport,
                expires: Duration::from_secs(expires.min(max.as_secs())),
            })
        })
        .collect()
}

fn authorization(req: &rsipstack::sip::Request) -> Option<digest::Credentials> {
    req.headers.iter().find_map(|h| match h {
        Header::Authorization(a) => digest::parse_authorization(a.value()).ok(),
        _ => None,
    })
}

async fn challenge(shared: &Shared, tx: &mut Transaction, stale: bool, to: IpAddr) {
    let value = shared.nonces.challenge(&shared.options.realm, stale, to);
    let _ = tx
        .reply_with(
            StatusCode::Unauthorized,
            vec![Header::WwwAuthenticate(value.into())],
            None,
        )
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contacts(value: &str) -> Vec<rsipstack::sip::typed::Contact> {
        rsipstack::sip::typed::Contact::parse_header_list(value).expect("contacts")
    }

    const LIMITS: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(3_600));

    #[test]
    fn a_udp_binding_is_reached_at_the_registers_source_not_at_its_contact() {
        let source: SocketAddr = "198.51.100.7:40123".parse().expect("addr");
        // a phone behind NAT names its private address; a forged REGISTER names a third
        // party; a Contact asking for TCP: all are reached where the REGISTER came from
        let got = contact_updates(
            &contacts(
                "<sip:ann@192.168.1.20:5060>, <sip:ann@203.0.113.99:5060>;expires=120, \
                 <sip:ann@203.0.113.99:5070;transport=tcp>",
            ),
            600,
            (source, Transport::Udp),
            LIMITS,
        )
        .expect("updates");
        assert_eq!(got.len(), 3);
        for u in &got {
            assert_eq!(u.target, source, "{}", u.contact);
            assert_eq!(u.transport, Transport::Udp, "{}", u.contact);
        }
        assert_eq!(
            got[0].contact, "sip:ann@192.168.1.20:5060",
            "the Contact is kept as the uri"
        );
        assert_eq!(got[0].expires, Duration::from_secs(600));
        assert_eq!(got[1].expires, Duration::from_secs(120));
    }

    #[test]
    fn a_tcp_binding_is_reached_over_the_phones_connection() {
        let source: SocketAddr = "198.51.100.7:50000".parse().expect("addr");
        let got = contact_updates(
            &contacts("<sip:ann@192.168.1.20:5060;transport=tcp>"),
            600,
            (source, Transport::Tcp),
            LIMITS,
        )
        .expect("updates");
        assert_eq!(got[0].target, source);
        assert_eq!(got[0].transport, Transport::Tcp);
    }

    #[test]
    fn lifetimes_are_bounded() {
        let source: SocketAddr = "198.51.100.7:40123".parse().expect("addr");
        let at = (source, Transport::Udp);
        assert_eq!(
            contact_updates(&contacts("<sip:ann@h>;expires=30"), 600, at, LIMITS),
            Err(TooBrief)
        );
        let got = contact_updates(&contacts("<sip:ann@h>"), 100_000, at, LIMITS).expect("capped");
        assert_eq!(got[0].expires, Duration::from_secs(3_600));
        let got =
            contact_updates(&contacts("<sip:ann@h>;expires=0"), 600, at, LIMITS).expect("removal");
        assert!(got[0].expires.is_zero());
    }
}
