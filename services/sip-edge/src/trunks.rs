//! The edge's side of its carrier trunks (N3): registration with a carrier's registrar
//! (REGISTER with digest, refreshed before it expires) and the OPTIONS keepalive that marks a
//! trunk up or down. One task per trunk and duty, started and stopped as the directory
//! changes (`run` compares every second). A trunk marked down is skipped by calls out like a
//! full one (the next trunk is tried); it is up until a keepalive says otherwise, and again
//! at the first answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::registration::{RefreshOutcome, Registration};
use rsipstack::sip::{Method, SipMessage};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::SipAddr;
use tokio_util::sync::CancellationToken;

use crate::directory::TrunkEntry;
use crate::metrics::Metrics;
use crate::Shared;

/// How long an OPTIONS ping waits for an answer before the trunk counts as down.
const PING_TIMEOUT: Duration = Duration::from_secs(4);

/// What a trunk's duty task is for; a change of any part restarts it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Duty {
    /// OPTIONS to `addr` every `every`.
    Keepalive {
        tenant: Arc<str>,
        trunk: Arc<str>,
        addr: SocketAddr,
        every: Duration,
    },
    /// REGISTER at `registrar` (`host:port`) as `user`, for `expires` seconds.
    Register {
        tenant: Arc<str>,
        trunk: Arc<str>,
        registrar: String,
        user: String,
        password: String,
        expires: u32,
    },
}

/// The duties the directory's trunks call for now.
fn duties(trunks: &[Arc<TrunkEntry>]) -> Vec<(Duty, Arc<TrunkEntry>)> {
    let mut out = Vec::new();
    for t in trunks {
        if let (Some(every), Some(addr)) = (t.keepalive, t.addr) {
            out.push((
                Duty::Keepalive {
                    tenant: t.tenant.clone(),
                    trunk: t.id.clone(),
                    addr,
                    every,
                },
                t.clone(),
            ));
        }
        if let (Some((registrar, expires)), Some(user), Some(password)) =
            (&t.register, &t.username, &t.password)
        {
            out.push((
                Duty::Register {
                    tenant: t.tenant.clone(),
                    trunk: t.id.clone(),
                    registrar: registrar.clone(),
                    user: user.clone(),
                    password: password.clone(),
                    expires: *expires,
                },
                t.clone(),
            ));
        }
    }
    out
}

/// Keeps one task per duty of the directory's trunks until `cancel`.
pub(crate) async fn run(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut running: HashMap<Duty, CancellationToken> = HashMap::new();
    loop {
        let wanted = duties(&shared.directory.get().all_trunks());
        running.retain(|duty, token| {
            let keep = wanted.iter().any(|(d, _)| d == duty);
            if !keep {
                token.cancel();
            }
            keep
        });
        for (duty, trunk) in wanted {
            if running.contains_key(&duty) {
                continue;
            }
            let token = cancel.child_token();
            running.insert(duty.clone(), token.clone());
            let shared = shared.clone();
            match duty {
                Duty::Keepalive { addr, every, .. } => {
                    tokio::spawn(keepalive(shared, trunk, addr, every, token));
                }
                Duty::Register {
                    registrar,
                    user,
                    password,
                    expires,
                    ..
                } => {
                    let credential = Credential {
                        username: user,
                        password,
                        realm: None,
                        auth_username: None,
                    };
                    tokio::spawn(register(
                        shared, trunk, registrar, credential, expires, token,
                    ));
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Pings the trunk with OPTIONS every `every`: any answer but 503 means up; no answer within
/// [`PING_TIMEOUT`], a 503 or a transport error means down. Changes are logged and counted.
async fn keepalive(
    shared: Arc<Shared>,
    trunk: Arc<TrunkEntry>,
    addr: SocketAddr,
    every: Duration,
    cancel: CancellationToken,
) {
    loop {
        let up = tokio::select! {
            _ = cancel.cancelled() => return,
            r = tokio::time::timeout(PING_TIMEOUT, ping(&shared, &trunk, addr)) => {
                matches!(r, Ok(Some(code)) if code != 503)
            }
        };
        let was = trunk.up.swap(up, Ordering::AcqRel);
        if was != up {
            if up {
                Metrics::inc(&shared.metrics.trunks_up);
                tracing::info!(tenant = %trunk.tenant, trunk = %trunk.id, "trunk answers OPTIONS again: up");
            } else {
                Metrics::inc(&shared.metrics.trunks_down);
                tracing::warn!(tenant = %trunk.tenant, trunk = %trunk.id, "trunk does not answer OPTIONS: down");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// One OPTIONS to the trunk: the final status it answered, if any.
async fn ping(shared: &Shared, trunk: &TrunkEntry, addr: SocketAddr) -> Option<u16> {
    let endpoint = shared.dialogs.endpoint.clone();
    let uri = rsipstack::sip::Uri::try_from(format!("sip:{addr}").as_str()).ok()?;
    let transport = match trunk.transport {
        callgrid_config::TrunkTransport::Tcp => rsipstack::sip::Transport::Tcp,
        _ => rsipstack::sip::Transport::Udp,
    };
    let dest = SipAddr::new(transport, addr.into());
    let via = endpoint.get_via(Some(dest.clone()), None).ok()?;
    let from = rsipstack::sip::typed::From {
        display_name: None,
        uri: shared.contact.clone(),
        params: vec![],
    }
    .with_tag(rsipstack::transaction::make_tag());
    let to = rsipstack::sip::typed::To {
        display_name: None,
        uri: uri.clone(),
        params: vec![],
    };
    let request = endpoint.make_request(Method::Options, uri, via, from, to, 1, None);
    let key = TransactionKey::from_request(&request, TransactionRole::Client).ok()?;
    let mut tx = Transaction::new_client(key, request, endpoint, None);
    tx.destination = Some(dest);
    tx.send().await.ok()?;
    while let Some(msg) = tx.receive().await {
        if let SipMessage::Response(resp) = msg {
            if resp.status_code.kind() != rsipstack::sip::StatusCodeKind::Provisional {
                return Some(u16::from(resp.status_code));
            }
        }
    }
    None
}

/// Registers the trunk's account with the carrier's registrar and keeps it registered
/// (refreshed at three quarters of the granted time; after a failure again in 1 s, doubling
/// to 60 s); unregisters when the duty ends.
async fn register(
    shared: Arc<Shared>,
    trunk: Arc<TrunkEntry>,
    registrar: String,
    credential: Credential,
    expires: u32,
    cancel: CancellationToken,
) {
    let user = credential.username.clone();
    let Ok(server) = rsipstack::sip::Uri::try_from(format!("sip:{registrar}").as_str()) else {
        tracing::warn!(tenant = %trunk.tenant, trunk = %trunk.id, registrar, "registrar is not a SIP address");
        return;
    };
    let mut registration = Registration::new(shared.dialogs.endpoint.clone(), Some(credential));
    let (tenant, id) = (trunk.tenant.clone(), trunk.id.clone());
    let metrics = shared.metrics.clone();
    registration
        .keep_alive(server.clone(), expires, cancel.clone(), |outcome| {
            let registered = matches!(outcome, RefreshOutcome::Registered(_));
            let was = trunk.registered.swap(registered, Ordering::AcqRel);
            match outcome {
                RefreshOutcome::Registered(_) => {
                    Metrics::inc(&metrics.trunk_registrations);
                    if !was {
                        tracing::info!(tenant = %tenant, trunk = %id, user, "registered with the carrier");
                    }
                }
                RefreshOutcome::Rejected(resp) => {
                    Metrics::inc(&metrics.trunk_registrations_failed);
                    tracing::warn!(tenant = %tenant, trunk = %id, status = %resp.status_code, "the carrier's registrar refused the registration");
                }
                RefreshOutcome::Failed(e) => {
                    Metrics::inc(&metrics.trunk_registrations_failed);
                    tracing::warn!(tenant = %tenant, trunk = %id, error = %e, "the carrier's registrar did not answer");
                }
            }
        })
        .await;
    if trunk.registered.swap(false, Ordering::AcqRel) {
        // best effort: the binding expires anyway
        let _ = tokio::time::timeout(PING_TIMEOUT, registration.register(server, Some(0))).await;
    }
}
