//! Call control: one bidirectional stream per call between the SIP edge and the router.

use std::pin::Pin;
use std::sync::Arc;

use actix::{Actor, Addr, AsyncContext};
use callgrid_domain::{AgentId, Call, CallCommand, CallId, EndCause, OfferFailure, Party};
use callgrid_proto::api::v1 as api;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use super::{caller, denied, durable, limits, mailbox, writable};
use crate::actors::{CallActor, CallMsg, EdgeReport};
use crate::convert;
use crate::journal::Ticket;
use crate::tenant::OverLimit;
use crate::Router;
use callgrid_access::{Permission, Principal};

/// The call-control service.
pub struct CallControlSvc {
    router: Arc<Router>,
}

impl CallControlSvc {
    /// Over a router.
    pub fn new(router: Arc<Router>) -> CallControlSvc {
        CallControlSvc { router }
    }
}

/// The router's instructions for one call.
type Out = Pin<Box<dyn Stream<Item = Result<api::RouterInstruction, Status>> + Send>>;

/// An edge report as call commands, or why it is malformed.
fn commands(report: Option<api::edge_report::Report>) -> Result<Vec<CallCommand>, Status> {
    use api::edge_report::Report as R;
    let agent = |a: &str| limits::id("agent", a).map(|()| AgentId::new(a));
    Ok(match report {
        None => return Err(Status::invalid_argument("report is empty")),
        Some(R::Arrived(_)) => {
            return Err(Status::invalid_argument(
                "arrived may only be the first report",
            ))
        }
        Some(R::Ringing(r)) => vec![CallCommand::Ringing {
            agent: agent(&r.agent)?,
        }],
        Some(R::Answered(r)) => vec![CallCommand::Answered {
            agent: agent(&r.agent)?,
        }],
        Some(R::OfferFailed(r)) => vec![CallCommand::OfferFailed {
            agent: agent(&r.agent)?,
            cause: match api::FailureCause::try_from(r.cause)
                .unwrap_or(api::FailureCause::Unspecified)
            {
                api::FailureCause::Busy => OfferFailure::Busy,
                api::FailureCause::Rejected => OfferFailure::Rejected,
                api::FailureCause::Unreachable => OfferFailure::Unreachable,
                api::FailureCause::NoAnswer | api::FailureCause::Unspecified => {
                    OfferFailure::NoAnswer
                }
            },
        }],
        Some(R::Digits(d)) => {
            if d.digits.is_empty() {
                return Err(Status::invalid_argument("digits is empty"));
            }
            limits::text("digits", &d.digits, limits::MAX_DIGITS)?;
            d.digits
                .chars()
                .map(|digit| CallCommand::Digit { digit })
                .collect()
        }
        Some(R::CollectTimeout(_)) => vec![CallCommand::MenuTimeout],
        Some(R::Hangup(h)) => vec![CallCommand::Hangup {
            cause: if h.party == api::Party::Agent as i32 {
                EndCause::Agent
            } else {
                EndCause::Caller
            },
        }],
        Some(R::Callback(_)) => vec![CallCommand::RequestCallback],
        Some(R::Held(h)) => vec![CallCommand::Hold {
            by: party(h.party)?,
        }],
        Some(R::Resumed(h)) => vec![CallCommand::Resume {
            by: party(h.party)?,
        }],
        Some(R::Recording(r)) => {
            limits::text("path", &r.path, limits::MAX_PATH)?;
            vec![CallCommand::RecordingStarted {
                path: r.path.as_str().into(),
            }]
        }
        Some(R::Transfer(t)) => {
            if t.target.is_empty() {
                return Err(Status::invalid_argument("transfer target is required"));
            }
            limits::text("target", &t.target, limits::MAX_NUMBER)?;
            vec![CallCommand::Transfer {
                agent: agent(&t.agent)?,
                to: t.target.as_str().into(),
            }]
        }
    })
}

/// The side of a hold report; it must be named.
fn party(p: i32) -> Result<Party, Status> {
    match api::Party::try_from(p) {
        Ok(api::Party::Caller) => Ok(Party::Caller),
        Ok(api::Party::Agent) => Ok(Party::Agent),
        _ => Err(Status::invalid_argument(
            "hold and resume reports name the party (caller or agent)",
        )),
    }
}

/// Ends a call as edge-lost when dropped armed.
struct Abandon(Option<Addr<CallActor>>);

impl Drop for Abandon {
    fn drop(&mut self) {
        if let Some(addr) = self.0.take() {
            addr.do_send(CallMsg(
                CallCommand::Hangup {
                    cause: EndCause::EdgeLost,
                },
                None,
            ));
        }
    }
}

fn result(call: &str, seq: u64, st: &Status) -> api::RouterInstruction {
    api::RouterInstruction {
        call_id: call.to_string(),
        instruction: Some(api::router_instruction::Instruction::Result(
            api::ReportResult {
                seq,
                code: st.code() as i32,
                message: st.message().to_string(),
            },
        )),
    }
}

/// How long a refused edge should keep new calls away (gRPC's retry pushback, and the SIP
/// edge's Retry-After).
pub(super) const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// The refusal of a new call the router cannot take now, with the retry pushback.
fn overloaded() -> Status {
    let mut st = Status::unavailable("the router is overloaded: new calls are refused for now");
    if let Ok(v) = RETRY_AFTER.as_millis().to_string().parse() {
        st.metadata_mut().insert("grpc-retry-pushback-ms", v);
    }
    st
}

#[tonic::async_trait]
impl api::call_control_server::CallControl for CallControlSvc {
    type CallStream = Out;

    async fn call(
        &self,
        req: Request<Streaming<api::EdgeReport>>,
    ) -> Result<Response<Out>, Status> {
        let by = caller(&req)?;
        // shed load before reading anything of the call (docs/DECISIONS.md, "Overload");
        // the in-process edge of `callgrid serve` sheds at its own intake instead
        if !self.router.shared.shedder.admit() {
            return Err(overloaded());
        }
        self.open(req.into_inner(), &by).await.map(Response::new)
    }
}

impl CallControlSvc {
    /// One call's stream: the edge's reports in, the router's instructions out. The gRPC
    /// service runs it over HTTP/2; `callgrid serve` runs its SIP edge on it directly, in
    /// process (the same messages, no transport; docs/DECISIONS.md).
    /// `by` is the edge's credential: an edge scoped to a tenant takes only its numbers' calls.
    pub async fn open<S>(&self, mut inbound: S, by: &Principal) -> Result<Out, Status>
    where
        S: Stream<Item = Result<api::EdgeReport, Status>> + Send + Unpin + 'static,
    {
        let first = inbound
            .next()
            .await
            .transpose()?
            .ok_or_else(|| Status::invalid_argument("the stream ended before arrived"))?;
        let begun = std::time::Instant::now();
        // shed load before doing any work for the call
        writable(&self.router)?;
        let slot = self
            .router
            .shared
            .arrivals
            .try_begin()
            .ok_or_else(overloaded)?;
        let Some(api::edge_report::Report::Arrived(arrived)) = first.report else {
            return Err(Status::invalid_argument("the first report must be arrived"));
        };
        if first.call_id.is_empty() {
            return Err(Status::invalid_argument("call_id is required"));
        }
        if arrived.number.is_empty() {
            return Err(Status::invalid_argument("number is required"));
        }
        limits::text("call_id", &first.call_id, limits::MAX_CALL_ID)?;
        limits::text("number", &arrived.number, limits::MAX_NUMBER)?;
        limits::text("caller", &arrived.caller, limits::MAX_NUMBER)?;
        limits::optional_id("tenant", &arrived.tenant)?;
        limits::text("traceparent", &arrived.traceparent, limits::MAX_TRACEPARENT)?;
        let tenant = self
            .router
            .tenant_of_number(&arrived.number)
            .ok_or_else(|| Status::not_found(format!("unknown number {}", arrived.number)))?;
        by.check(Permission::CallControl, tenant.id.as_str(), None)
            .map_err(denied)?;
        if !arrived.tenant.is_empty() && arrived.tenant != tenant.id.as_str() {
            return Err(Status::permission_denied(format!(
                "number {} does not belong to tenant {}",
                arrived.number, arrived.tenant
            )));
        }
        let call_id = CallId::new(&first.call_id);
        tenant
            .admit(&call_id, &arrived.number)
            .map_err(|over| match over {
                OverLimit::Tenant(max) => Status::resource_exhausted(format!(
                    "tenant {} is at its limit of {max} concurrent calls",
                    tenant.id
                )),
                OverLimit::Number(max) => Status::resource_exhausted(format!(
                    "number {} is at its limit of {max} concurrent calls",
                    arrived.number
                )),
            })?;
        let (tx, rx) = mpsc::unbounded_channel::<(Ticket, api::RouterInstruction)>();
        let weak = tx.downgrade();
        let t = tenant.clone();
        let id = call_id.clone();
        let traceparent = arrived.traceparent.clone();
        let edge_by = Some(by.id.clone());
        let addr = CallActor::start_in_arbiter(&tenant.arbiter, move |ctx| {
            let duplicate = !t.register_call(id.clone(), ctx.address());
            CallActor::new(Call::new(id), t, Some(tx), duplicate, traceparent, edge_by)
        });
        // from here on the call exists: if this future is dropped (the edge gave up) or
        // fails before the report reader runs, the call ends as edge-lost
        let mut abandon = Abandon(Some(addr.clone()));
        let ticket = addr
            .send(CallMsg(
                CallCommand::Arrive {
                    number: arrived.number.as_str().into(),
                    caller: arrived.caller.as_str().into(),
                },
                Some(by.id.clone()),
            ))
            .await
            .map_err(mailbox)?
            .map_err(|r| convert::status(&r))?;
        let journal = self.router.shared.journal.clone();
        durable(&self.router, ticket).await?;
        let shared = &self.router.shared;
        shared
            .arrival_delay
            .record(begun.elapsed().saturating_sub(shared.journal.write_floor()));
        drop(slot);
        if shared.arrivals.pending() == 0 {
            // no arrival waits now: the delay just reported is not held for the next ticks
            shared.arrival_delay.idle();
        }
        // the arrival's result, if asked for
        if first.ack {
            if let Some(tx) = weak.upgrade() {
                let _ = tx.send((ticket, result(call_id.as_str(), first.seq, &Status::ok(""))));
            }
        }

        // reports from the edge; the reader reports the edge's loss from now on
        abandon.0 = None;
        let reader_addr = addr.clone();
        let call_name = call_id.to_string();
        tokio::spawn(async move {
            let mut hung_up = false;
            while let Some(Ok(report)) = inbound.next().await {
                match commands(report.report) {
                    Ok(cmds) => {
                        hung_up |= cmds.iter().any(|c| matches!(c, CallCommand::Hangup { .. }));
                        reader_addr.do_send(EdgeReport {
                            seq: report.seq,
                            cmds,
                            ack: report.ack,
                        });
                    }
                    Err(st) => {
                        tracing::debug!(call = %call_name, error = %st.message(), "malformed report");
                        if let Some(tx) = weak.upgrade() {
                            let _ = tx.send((0, result(&call_name, report.seq, &st)));
                        }
                    }
                }
            }
            if !hung_up {
                reader_addr.do_send(CallMsg(
                    CallCommand::Hangup {
                        cause: EndCause::EdgeLost,
                    },
                    None,
                ));
            }
        });

        // instructions to the edge, each once its events are durable
        let durable = journal.durable_watch();
        let out = futures::stream::unfold((rx, durable), |(mut rx, mut durable)| async move {
            let (ticket, ins) = rx.recv().await?;
            if *durable.borrow() < ticket && durable.wait_for(|d| *d >= ticket).await.is_err() {
                return Some((
                    Err(Status::unavailable("the event journal stopped")),
                    (rx, durable),
                ));
            }
            Some((Ok(ins), (rx, durable)))
        });
        Ok(Box::pin(out))
    }
}
