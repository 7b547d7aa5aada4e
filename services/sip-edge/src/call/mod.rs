//! One call at the edge, split by concept around a sans-io core:
//! - `admission.rs` — a new INVITE before any call exists: number, trunk (by source or
//!   digest), the trunk's limit, and what the caller hears when the router refuses it;
//! - `core.rs` — the call's decisions, with no IO and no clock of its own: router
//!   instructions, SIP facts, media events and the time in; reports and actions out (unit
//!   tests drive it without SIPp);
//! - `task.rs` — the shell: the one task that owns the call's dialogs, RTP legs, recording and
//!   router stream, feeds the core and carries out its actions;
//! - `sip.rs` — SIP details that need no state (DTMF in INFO, Refer-To, Reason, codes);
//! - `media.rs` — the call's view of the media engine.

mod admission;
mod backup;
mod core;
mod media;
mod sip;
mod task;

use std::sync::Arc;

use callgrid_proto::api::v1 as api;
use rsipstack::dialog::dialog::DialogStateReceiver;
use rsipstack::sip::headers::untyped::ToTypedHeader;
use rsipstack::sip::{HeadersExt, StatusCode, Transport};
use rsipstack::transaction::transaction::Transaction;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::dispatch::source_of;
use crate::metrics::Metrics;
use crate::Shared;

pub(crate) use media::MediaContext;
pub(crate) use sip::{dialled_number, info_digit, refer_target, InfoDigit, ReferProblem};

use api::edge_report::Report;

/// A new INVITE (no To tag): admit it, then run the call.
pub(crate) async fn inbound(shared: Arc<Shared>, mut tx: Transaction) {
    let Some(admission) = admission::admit(&shared, &mut tx).await else {
        return; // answered already
    };
    let req = tx.original.clone();
    // the caller's media is taken from its SDP's address, or from this IP (strict RTP)
    let caller_peer = source_of(&tx).map(|(addr, _)| addr.ip());

    let (state_tx, state_rx) = shared.dialogs.new_dialog_state_channel();
    let mut contact = shared.contact.clone();
    if source_of(&tx).is_some_and(|(_, t)| t == Transport::Tcp) {
        // the trunk's in-dialog requests (ACK, BYE) come back over TCP too
        contact
            .params
            .push(rsipstack::sip::Param::Transport(Transport::Tcp));
    }
    let caller_dialog =
        match shared
            .dialogs
            .get_or_create_server_invite(&tx, state_tx.clone(), None, Some(contact))
        {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "cannot create the caller's dialog");
                let _ = tx.reply(StatusCode::BadRequest).await;
                return;
            }
        };
    let mut handler = caller_dialog.clone();
    tokio::spawn(async move {
        let _ = handler.handle(&mut tx).await;
    });

    let caller_side = task::Caller {
        dialog: caller_dialog,
        offer: req.body.clone(),
        peer: caller_peer,
        state_tx,
    };
    let _active = Active::new(&shared);
    match admission {
        admission::Admission::Carrier(admitted) if admitted.out_of_service => {
            Metrics::inc(&shared.metrics.calls_arrived);
            let why = "the tenant is out of service";
            match &admitted.backup {
                Some(route) => {
                    let id = new_call_id();
                    let (tenant, states) = (&admitted.tenant, state_rx);
                    backup::forward(&shared, id, tenant, route, caller_side, states, why).await;
                }
                None => {
                    tracing::info!(tenant = %admitted.tenant, number = %admitted.number, "{why}: call refused");
                    let _ = caller_side.dialog.reject(
                        Some(StatusCode::ServiceUnavailable),
                        Some(sip::reason_value(503, why)),
                    );
                }
            }
        }
        admission::Admission::Carrier(admitted) => {
            let caller = req
                .from_header()
                .ok()
                .and_then(|f| f.typed().ok())
                .and_then(|f| f.uri.user().map(str::to_owned))
                .unwrap_or_default();
            Metrics::inc(&shared.metrics.calls_arrived);
            let arrived = Report::Arrived(api::Arrived {
                number: admitted.number.to_string(),
                caller,
                tenant: admitted.tenant.to_string(),
                traceparent: String::new(),
            });
            let backup = admitted.backup.as_deref();
            let first = (arrived, None);
            run(
                &shared,
                &admitted.tenant,
                first,
                backup,
                caller_side,
                state_rx,
            )
            .await;
        }
        admission::Admission::Phone(d) => {
            let dialled = Report::Dialled(api::Dialled {
                tenant: d.tenant.to_string(),
                agent: d.agent.to_string(),
                destination: d.destination,
                traceparent: String::new(),
            });
            let first = (dialled, Some(&*d.agent));
            run(&shared, &d.tenant, first, None, caller_side, state_rx).await;
        }
    }
}

/// Opens the router's stream with the call's first report (`arrived`, or `dialled` by
/// an agent's phone: the report and that agent) and runs the call; a refusal is told to the
/// caller; a router that cannot serve it (no answer in time, unavailable but not shedding
/// load) sends it to `backup` when the number has one (N6), else it is refused too.
async fn run(
    shared: &Arc<Shared>,
    tenant: &Arc<str>,
    (first, phone): (Report, Option<&str>),
    backup: Option<&callgrid_config::BackupRoute>,
    side: task::Caller,
    states: DialogStateReceiver,
) {
    let id = new_call_id();
    let (tx, opened) = open(shared, &id, first).await;
    let unreachable = match &opened {
        Err(_) => Some("the router did not answer in time"),
        // unavailable without a retry hint: the router cannot work (its event log does not
        // answer, the connection failed); with one it sheds load, and the carrier retries
        Ok(Err(st))
            if st.code() == tonic::Code::Unavailable
                && !st.metadata().contains_key("grpc-retry-pushback-ms") =>
        {
            Some("the router is unavailable")
        }
        _ => None,
    };
    if let (Some(why), Some(route)) = (unreachable, backup) {
        drop(tx);
        backup::forward(shared, id, tenant, route, side, states, why).await;
        return;
    }
    let (code, text) = match opened {
        Ok(Ok(instructions)) => {
            let (tenant, shared) = (tenant.clone(), shared.clone());
            let call = match phone {
                Some(agent) => task::CallTask::dialled(id, tenant, shared, side, agent, tx),
                None => task::CallTask::new(id, tenant, shared, side, tx),
            };
            call.run(instructions, states).await;
            return;
        }
        Ok(Err(status)) => {
            let code = admission::refusal(shared, &status);
            tracing::info!(call = %id, code = ?status.code(), reason = %status.message(), "router refused the call");
            (code, status.message().to_owned())
        }
        Err(_) => {
            Metrics::inc(&shared.metrics.calls_router_failed);
            tracing::warn!(call = %id, "router did not answer in time; call refused");
            (StatusCode::ServiceUnavailable, "router unavailable".into())
        }
    };
    let numeric = u16::from(code.clone());
    let _ = side
        .dialog
        .reject(Some(code), Some(sip::reason_value(numeric, &text)));
}

/// A call the router placed here (click-to-call): opens its stream with `originated` and
/// runs it; the core rings the agent and dials the customer as the router says.
pub(crate) async fn originated(shared: Arc<Shared>, origination: api::Origination) {
    let id = origination.call_id;
    let tenant: Arc<str> = Arc::from(origination.tenant.as_str());
    let first = Report::Originated(api::Originated {
        tenant: origination.tenant,
        traceparent: String::new(),
    });
    let (tx, opened) = open(&shared, &id, first).await;
    let instructions = match opened {
        Ok(Ok(i)) => i,
        Ok(Err(status)) => {
            tracing::info!(call = %id, reason = %status.message(), "router refused the call out");
            return;
        }
        Err(_) => {
            tracing::warn!(call = %id, "router did not open the call out in time");
            return;
        }
    };
    Metrics::inc(&shared.metrics.calls_originated);
    let _active = Active::new(&shared);
    let (state_tx, state_rx) = shared.dialogs.new_dialog_state_channel();
    let call = task::CallTask::outbound(id, tenant, shared.clone(), state_tx, tx);
    call.run(instructions, state_rx).await;
}

/// Takes the calls the router hands this edge, for as long as the edge runs: the stream is
/// opened again after it breaks (the router restarted, the connection dropped).
pub(crate) async fn take_originations(
    shared: Arc<Shared>,
    cancel: tokio_util::sync::CancellationToken,
) {
    use futures::StreamExt;
    loop {
        match shared.router.originations().await {
            Ok(mut calls) => loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    next = calls.next() => match next {
                        Some(Ok(o)) => {
                            tokio::spawn(originated(shared.clone(), o));
                        }
                        _ => break,
                    },
                }
            },
            Err(st) => {
                tracing::debug!(reason = %st.message(), "no originations stream; retrying");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

/// Opens call `id`'s stream to the router with its first report (`arrived` or
/// `originated`): the stream's sender and the router's answer, `Err` when it did not come
/// within the edge's router timeout.
async fn open(
    shared: &Shared,
    id: &str,
    first: Report,
) -> (
    mpsc::Sender<api::EdgeReport>,
    Result<Result<crate::Instructions, tonic::Status>, tokio::time::error::Elapsed>,
) {
    let (tx, rx) = mpsc::channel::<api::EdgeReport>(32);
    let _ = tx
        .send(api::EdgeReport {
            call_id: id.to_owned(),
            seq: 1,
            ack: false,
            report: Some(first),
        })
        .await;
    let opened = tokio::time::timeout(
        shared.options.router_timeout,
        shared.router.call(ReceiverStream::new(rx)),
    )
    .await;
    (tx, opened)
}

/// A call in progress at this edge, in its counters from creation to drop.
struct Active(Arc<Shared>);

impl Active {
    fn new(shared: &Arc<Shared>) -> Active {
        shared
            .metrics
            .calls_active
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Active(shared.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        let metrics = &self.0.metrics;
        metrics
            .calls_active
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        Metrics::inc(&metrics.calls_ended);
    }
}

fn new_call_id() -> String {
    format!("{:016x}{:016x}", crate::random_u64(), crate::random_u64())
}
