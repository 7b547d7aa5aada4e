//! Call control: one bidirectional stream per call between the SIP edge and the router.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use actix::{Actor, Addr, AsyncContext};
use callgrid_domain::{Call, CallCommand, CallId, EndCause, TenantId};
use callgrid_proto::api::v1 as api;
use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status, Streaming};

use super::convert;
use super::{caller, denied, durable, limits, mailbox, writable};
use crate::actors::{CallActor, CallMsg, EdgeReport, Refusal, ToEdge};
use crate::journal::Ticket;
use crate::tenant::{ExtensionClaim, OverLimit, Tenant};
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

/// The calls handed to one edge.
type Originations = Pin<Box<dyn Stream<Item = Result<api::Origination, Status>> + Send>>;

/// The tenants' configurations for one edge.
type Configs = Pin<Box<dyn Stream<Item = Result<api::TenantConfigs, Status>> + Send>>;

#[tonic::async_trait]
impl api::call_control_server::CallControl for CallControlSvc {
    type CallStream = Out;
    type WatchTenantsStream = Configs;
    type OriginationsStream = Originations;

    async fn originations(
        &self,
        req: Request<api::OriginationsRequest>,
    ) -> Result<Response<Originations>, Status> {
        let by = caller(&req)?;
        by.allow(Permission::CallControl).map_err(denied)?;
        Ok(Response::new(self.subscribe(by)))
    }

    async fn watch_tenants(
        &self,
        req: Request<api::WatchTenantsRequest>,
    ) -> Result<Response<Configs>, Status> {
        let by = caller(&req)?;
        by.allow(Permission::EdgeConfig).map_err(denied)?;
        let router = self.router.clone();
        let changes = router.watch_configs();
        // versions sent so far; the first message holds every tenant in the caller's scope
        let sent: HashMap<TenantId, u64> = HashMap::new();
        let out = futures::stream::unfold(
            (router, changes, sent, true),
            move |(router, mut changes, mut sent, initial)| {
                let by = by.clone();
                async move {
                    loop {
                        if !initial && changes.changed().await.is_err() {
                            return None; // the router is gone
                        }
                        changes.borrow_and_update();
                        let tenants: Vec<api::TenantConfig> = router
                            .tenant_configs_where(|id, version| {
                                by.tenant(id.as_str()).is_ok()
                                    && sent.insert(id.clone(), version) != Some(version)
                            })
                            .into_iter()
                            .map(convert::tenant_config)
                            .collect();
                        if initial || !tenants.is_empty() {
                            let msg = api::TenantConfigs { initial, tenants };
                            return Some((Ok(msg), (router, changes, sent, false)));
                        }
                    }
                }
            },
        );
        Ok(Response::new(Box::pin(out)))
    }

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

/// What the first report of a call's stream opens.
struct Opening {
    tenant: Arc<Tenant>,
    command: CallCommand,
    traceparent: String,
    /// Who the creation is recorded as caused by.
    cause: Arc<str>,
    /// The number the call counts against (N8): the one dialled in, or the one presented.
    number: Arc<str>,
    /// For a call the router placed: the click-to-call waiting for its creation.
    placed: Option<oneshot::Sender<Result<(), Status>>>,
    /// For a call out of an agent's phone: its extension, held until the call is created
    /// (A1; the call's end frees it then).
    claim: Option<ExtensionClaim>,
}

impl CallControlSvc {
    /// The calls the router hands to the edge `by` from now on (click-to-call), until the
    /// stream is dropped. The gRPC service serves it as `Originations`; `callgrid serve`'s
    /// edge reads it in process.
    pub fn subscribe(&self, by: Principal) -> Originations {
        let sub = self.router.originations.subscribe(by);
        Box::pin(futures::stream::unfold(sub, |mut sub| async move {
            let (call, tenant) = sub.calls.recv().await?;
            let o = api::Origination {
                call_id: call.to_string(),
                tenant: tenant.to_string(),
            };
            Some((Ok(o), sub))
        }))
    }

    /// An inbound call's arrival: its number names the tenant.
    fn arrival(&self, mut arrived: api::Arrived, by: &Principal) -> Result<Opening, Status> {
        if arrived.number.is_empty() {
            return Err(Status::invalid_argument("number is required"));
        }
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
        Ok(Opening {
            tenant,
            command: CallCommand::Arrive {
                number: arrived.number.as_str().into(),
                caller: arrived.caller.as_str().into(),
            },
            number: arrived.number.as_str().into(),
            traceparent: std::mem::take(&mut arrived.traceparent),
            cause: by.id.clone(),
            placed: None,
            claim: None,
        })
    }

    /// A call an agent's phone places (`dialled`, authenticated by the edge with the agent's
    /// digest credentials): an extension or a number of the tenant is an internal call; any
    /// other destination a call out, refused at once (with the reason) when the agent may
    /// not call out now or the destination cannot be called, counted against the number
    /// it presents (N8).
    async fn dialled(
        &self,
        call: &CallId,
        mut d: api::Dialled,
        by: &Principal,
    ) -> Result<Opening, Status> {
        limits::id("tenant", &d.tenant)?;
        limits::id("agent", &d.agent)?;
        limits::text("destination", &d.destination, limits::MAX_NUMBER)?;
        limits::text("traceparent", &d.traceparent, limits::MAX_TRACEPARENT)?;
        if d.destination.trim().is_empty() {
            return Err(Status::invalid_argument("destination is required"));
        }
        let tenant = self
            .router
            .tenant(&d.tenant)
            .ok_or_else(|| Status::not_found(format!("unknown tenant {}", d.tenant)))?;
        by.check(Permission::CallControl, tenant.id.as_str(), None)
            .map_err(denied)?;
        let agent = callgrid_domain::AgentId::new(&d.agent);
        let addr = tenant.agent(&agent).ok_or_else(|| {
            Status::not_found(format!("unknown agent {} of tenant {}", d.agent, d.tenant))
        })?;
        let setup = tenant.setup();
        let (number, claim): (Arc<str>, _) = if setup.internal(&d.destination).is_some() {
            (d.destination.trim().into(), None)
        } else {
            // a call out: the decisions as the call will make them, and the agent's state
            let decision = callgrid_domain::decide_dialled(&setup, &agent, &d.destination)
                .map_err(|e| convert::status(&e))?;
            let claim = super::agent::may_call_out(&tenant, &agent, &addr, call).await?;
            (decision.number, claim)
        };
        Ok(Opening {
            tenant,
            command: CallCommand::Originate {
                agent,
                dialled: d.destination.trim().into(),
                correlation: None,
                phone: true,
            },
            number,
            traceparent: std::mem::take(&mut d.traceparent),
            cause: by.id.clone(),
            placed: None,
            claim,
        })
    }

    /// A call the router placed and handed to this edge (`Originations`): only that edge
    /// may open it; its creation is recorded as caused by whoever asked for it.
    fn origination(
        &self,
        call: &CallId,
        o: api::Originated,
        by: &Principal,
    ) -> Result<Opening, Status> {
        limits::text("traceparent", &o.traceparent, limits::MAX_TRACEPARENT)?;
        let pending = self
            .router
            .originations
            .take(call)
            .ok_or_else(|| Status::not_found(format!("no call {call} waits to be opened")))?;
        let refuse = |pending: crate::originate::Pending, st: Status| {
            let _ = pending.reply.send(Err(st.clone()));
            st
        };
        if pending.edge != by.id {
            let st = Status::permission_denied(format!("call {call} was handed to another edge"));
            return Err(refuse(pending, st));
        }
        let Some(tenant) = self.router.tenant(pending.placed.tenant.as_str()) else {
            let st = Status::not_found(format!("unknown tenant {}", pending.placed.tenant));
            return Err(refuse(pending, st));
        };
        if let Err(d) = by.check(Permission::CallControl, tenant.id.as_str(), None) {
            return Err(refuse(pending, denied(d)));
        }
        let crate::originate::Pending { placed, reply, .. } = pending;
        Ok(Opening {
            tenant,
            command: CallCommand::Originate {
                agent: placed.agent,
                dialled: placed.dialled,
                correlation: placed.correlation,
                phone: false,
            },
            number: placed.number,
            traceparent: o.traceparent,
            cause: placed.by,
            placed: Some(reply),
            claim: None,
        })
    }

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
        if first.call_id.is_empty() {
            return Err(Status::invalid_argument("call_id is required"));
        }
        limits::text("call_id", &first.call_id, limits::MAX_CALL_ID)?;
        let call_id = CallId::new(&first.call_id);
        let Opening {
            tenant,
            command,
            number: admit_number,
            traceparent,
            cause,
            placed,
            claim: _claim,
        } = match first.report {
            Some(api::edge_report::Report::Arrived(arrived)) => self.arrival(arrived, by)?,
            Some(api::edge_report::Report::Originated(o)) => self.origination(&call_id, o, by)?,
            Some(api::edge_report::Report::Dialled(d)) => self.dialled(&call_id, d, by).await?,
            _ => {
                return Err(Status::invalid_argument(
                    "the first report must be arrived, originated or dialled",
                ))
            }
        };
        let admitted = tenant
            .admit(&call_id, &admit_number)
            .map_err(|over| match over {
                OverLimit::Tenant(max) => Status::resource_exhausted(format!(
                    "tenant {} is at its limit of {max} concurrent calls",
                    tenant.id
                )),
                OverLimit::Number(max) => Status::resource_exhausted(format!(
                    "number {admit_number} is at its limit of {max} concurrent calls"
                )),
            });
        if let Err(st) = admitted {
            if let Some(reply) = placed {
                let _ = reply.send(Err(st.clone()));
            }
            return Err(st);
        }
        let (tx, rx) = mpsc::unbounded_channel::<(Ticket, ToEdge)>();
        let weak = tx.downgrade();
        let t = tenant.clone();
        let id = call_id.clone();
        let edge_by = Some(by.id.clone());
        let addr = CallActor::start_in_arbiter(&tenant.arbiter, move |ctx| {
            let duplicate = !t.register_call(id.clone(), ctx.address());
            CallActor::new(Call::new(id), t, Some(tx), duplicate, &traceparent, edge_by)
        });
        // from here on the call exists: if this future is dropped (the edge gave up) or
        // fails before the report reader runs, the call ends as edge-lost
        let mut abandon = Abandon(Some(addr.clone()));
        let created = addr
            .send(CallMsg(command, Some(cause)))
            .await
            .map_err(mailbox)
            .and_then(|r| r.map_err(|r| convert::status(&r)));
        let created = match created {
            Ok(ticket) => durable(&self.router, ticket).await.map(|()| ticket),
            Err(st) => Err(st),
        };
        if let Some(reply) = placed {
            // the click-to-call waiting for this call hears how its creation went
            let _ = reply.send(created.as_ref().map(|_| ()).map_err(Clone::clone));
        }
        let ticket = created?;
        let journal = self.router.shared.journal.clone();
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
                let arrived = ToEdge::Result {
                    seq: first.seq,
                    outcome: Ok(()),
                };
                let _ = tx.send((ticket, arrived));
            }
        }

        // reports from the edge; the reader reports the edge's loss from now on
        abandon.0 = None;
        let reader_addr = addr.clone();
        let call_name = call_id.to_string();
        tokio::spawn(async move {
            let mut hung_up = false;
            while let Some(Ok(report)) = inbound.next().await {
                match convert::report_commands(report.report) {
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
                            let malformed = ToEdge::Result {
                                seq: report.seq,
                                outcome: Err(Refusal::Malformed(st.message().to_owned())),
                            };
                            let _ = tx.send((0, malformed));
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
        let out = futures::stream::unfold(
            (rx, durable, call_id),
            |(mut rx, mut durable, call)| async move {
                let (ticket, out) = rx.recv().await?;
                if *durable.borrow() < ticket && durable.wait_for(|d| *d >= ticket).await.is_err() {
                    return Some((
                        Err(Status::unavailable("the event journal stopped")),
                        (rx, durable, call),
                    ));
                }
                let ins = convert::to_edge(call.as_str(), out);
                Some((Ok(ins), (rx, durable, call)))
            },
        );
        Ok(Box::pin(out))
    }
}
