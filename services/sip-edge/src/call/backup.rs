//! The backup number (N6): a call the platform cannot take — the router does not answer, or
//! the tenant is marked out of service — is forwarded by the edge alone to the number's
//! backup number on the number's trunks. The call runs on the same core and shell as a call
//! an agent's phone dialled out: the caller's leg is the side that dialled (183 with the
//! backup's ringback or early media, 200 when it answers, its result otherwise), the backup
//! is the customer's leg with the trunks' failover. A small local plan stands in for the
//! router: it bridges on the answer, ends the call with the dial result, and ends its stream
//! when a side hangs up. Nothing reaches the event log (the router is what is missing), so
//! the edge logs each forward and counts it (`callgrid_sip_calls_forwarded_to_backup`).

use std::sync::Arc;

use callgrid_config::BackupRoute;
use callgrid_proto::api::v1 as api;
use rsipstack::dialog::dialog::DialogStateReceiver;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::task;
use crate::metrics::Metrics;
use crate::Shared;

use api::edge_report::Report;
use api::router_instruction::Instruction;

/// The name of the caller's side in the forwarded call's core (the "agent" who dialled).
const CALLER: &str = "caller";

/// How long the backup number may ring.
const RING: std::time::Duration = std::time::Duration::from_secs(60);

/// Forwards call `id` of `tenant` to `route`'s backup number, `why` the platform cannot take
/// it; runs until the call is over.
pub(super) async fn forward(
    shared: &Arc<Shared>,
    id: String,
    tenant: &Arc<str>,
    route: &BackupRoute,
    side: task::Caller,
    states: DialogStateReceiver,
    why: &str,
) {
    Metrics::inc(&shared.metrics.calls_forwarded_to_backup);
    tracing::warn!(
        call = %id, tenant = %tenant, number = %route.number, backup = %route.destination, why,
        "the platform cannot take the call: forwarded to the number's backup (N6)"
    );
    let (reports_tx, reports_rx) = mpsc::channel::<api::EdgeReport>(32);
    let (plan_tx, plan_rx) = mpsc::channel(8);
    let first = [
        Instruction::Dial(api::Dial {
            agent: CALLER.into(),
            destination: route.destination.clone(),
            number: route.presented.clone(),
            trunks: route.trunks.clone(),
            timeout_ms: RING.as_millis() as u64,
        }),
        Instruction::Ring(api::Ring {
            agent: CALLER.into(),
            devices: Vec::new(),
            timeout_ms: RING.as_millis() as u64,
        }),
    ];
    for i in first {
        let _ = plan_tx.send(Ok(instruction(&id, i))).await;
    }
    tokio::spawn(plan(id.clone(), reports_rx, plan_tx));
    let instructions: crate::Instructions = Box::pin(ReceiverStream::new(plan_rx));
    let call =
        task::CallTask::dialled(id, tenant.clone(), shared.clone(), side, CALLER, reports_tx);
    call.run(instructions, states).await;
}

fn instruction(call: &str, i: Instruction) -> api::RouterInstruction {
    api::RouterInstruction {
        call_id: call.to_owned(),
        instruction: Some(i),
    }
}

/// The local plan of a forwarded call: the backup answered → bridge; not reached → end
/// with the dial result; a side hung up → the stream ends (the core ends the other side).
async fn plan(
    id: String,
    mut reports: mpsc::Receiver<api::EdgeReport>,
    out: mpsc::Sender<Result<api::RouterInstruction, tonic::Status>>,
) {
    while let Some(r) = reports.recv().await {
        let next = match r.report {
            Some(Report::Answered(a)) => Instruction::Bridge(api::Bridge { agent: a.agent }),
            Some(Report::DialFailed(d)) => {
                let code = u16::try_from(d.sip_code).unwrap_or(500);
                let cause = callgrid_domain::dial_result(code);
                tracing::info!(call = %id, sip_code = code, cause, "the backup number was not reached");
                let end = Instruction::Hangup(api::HangupCall {
                    cause: cause.to_owned(),
                });
                // the call is over: the end of the stream lets the core finish at once
                let _ = out.send(Ok(instruction(&id, end))).await;
                break;
            }
            Some(Report::Hangup(_) | Report::OfferFailed(_)) => break,
            _ => continue,
        };
        if out.send(Ok(instruction(&id, next))).await.is_err() {
            break;
        }
    }
}
