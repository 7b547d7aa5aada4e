//! The actors: one per agent, queue and call, each the single writer of its aggregate.
//! An actor runs a command through its domain state machine, applies the events, hands them
//! to the journal (before anything else can see their effects), then sends the follow-up
//! commands and, for calls, the edge instructions (released once durable).

use std::sync::Arc;

use actix::prelude::*;
use callgrid_domain::react::{instructions, reactions};
use callgrid_domain::{
    Agent, AgentCommand, AgentView, Call, CallCommand, CallPhase, Command, EndCause, Event,
    EventBody, Queue, QueueCommand, Rejection, TenantSetup, TimeMs,
};
use callgrid_proto::api::v1 as api;
use tokio::sync::mpsc;

use crate::convert;
use crate::journal::Ticket;
use crate::tenant::{Origin, Tenant};

/// Where a call's instructions go: the edge's stream, each released once its ticket is durable.
pub type EdgeOut = mpsc::UnboundedSender<(Ticket, api::RouterInstruction)>;

/// Who caused a command through an API (`token:ID`, `user:TENANT/NAME`), recorded in its
/// events (the audit trail); `None` for the platform's own follow-ups and timers.
pub type Cause = Option<Arc<str>>;

/// A command to an agent.
#[derive(Message)]
#[rtype(result = "Result<Ticket, Rejection>")]
pub struct AgentMsg(pub AgentCommand, pub Cause);

/// A command to a queue.
#[derive(Message)]
#[rtype(result = "Result<Ticket, Rejection>")]
pub struct QueueMsg(pub QueueCommand);

/// A command to a call.
#[derive(Message)]
#[rtype(result = "Result<Ticket, Rejection>")]
pub struct CallMsg(pub CallCommand, pub Cause);

/// A report from the edge: its result goes back on the edge stream, in order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct EdgeReport {
    /// The edge's report number.
    pub seq: u64,
    /// What it reports (several commands for several digits), run in order until one is
    /// refused.
    pub cmds: Vec<CallCommand>,
    /// Answer with a result also when accepted.
    pub ack: bool,
}

/// An agent's availability for a queue's board.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Observe(pub AgentView);

/// Run the queue's matching (coalesced).
#[derive(Message)]
#[rtype(result = "()")]
struct RunMatch;

/// Send the agent's view to its queues again (after a configuration change).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resync;

/// Read an agent's state.
#[derive(Message)]
#[rtype(result = "Agent")]
pub struct GetAgent;

/// Read a queue's state.
#[derive(Message)]
#[rtype(result = "Queue")]
pub struct GetQueue;

/// The announcement for a waiting call (position, expected wait).
#[derive(Message)]
#[rtype(result = "Option<callgrid_domain::Instruction>")]
pub struct GetAnnouncement(pub callgrid_domain::CallId);

/// Read a call's state.
#[derive(Message)]
#[rtype(result = "Call")]
pub struct GetCall;

/// A one-shot timer at a clock time, re-armed when the deadline changes.
#[derive(Default)]
struct Timer {
    at: Option<TimeMs>,
    handle: Option<SpawnHandle>,
}

impl Timer {
    fn arm<A>(
        &mut self,
        ctx: &mut Context<A>,
        at: Option<TimeMs>,
        tenant: &Tenant,
        fire: fn(&mut A, &mut Context<A>),
    ) where
        A: Actor<Context = Context<A>>,
    {
        if at == self.at {
            return;
        }
        if let Some(h) = self.handle.take() {
            ctx.cancel_future(h);
        }
        self.at = at;
        if let Some(at) = at {
            let delay = tenant.shared.clock.until(at);
            self.handle = Some(ctx.run_later(delay, fire));
        }
    }
    fn fired(&mut self) {
        self.at = None;
        self.handle = None;
    }
}

fn dispatch_reactions(tenant: &Tenant, setup: &TenantSetup, events: &[Event]) {
    for e in events {
        for c in reactions(setup, e, None) {
            tenant.dispatch(c);
        }
    }
}

// ------------------------------------------------------------------ agent

/// The actor of one agent.
pub struct AgentActor {
    agent: Agent,
    tenant: Arc<Tenant>,
    timer: Timer,
}

impl AgentActor {
    /// Wraps an agent (fresh or recovered).
    pub fn new(agent: Agent, tenant: Arc<Tenant>) -> AgentActor {
        AgentActor {
            agent,
            tenant,
            timer: Timer::default(),
        }
    }

    fn process(
        &mut self,
        cmd: AgentCommand,
        by: Option<&str>,
        ctx: &mut Context<Self>,
    ) -> Result<Ticket, Rejection> {
        let setup = self.tenant.setup();
        let now = self.tenant.now();
        let handled = self.agent.handle(&cmd, &setup, now);
        let id = self.agent.id.clone();
        let origin = Origin {
            kind: "agent",
            id: id.as_str(),
            first_seq: self.agent.seq + 1,
            plan_version: setup.version,
            traceparent: "",
            caused_by: by,
        };
        let agent = &mut self.agent;
        let (events, ticket) = self.tenant.commit(
            origin,
            || Command::Agent(id.clone(), cmd),
            handled,
            |e| agent.apply(e),
        )?;
        dispatch_reactions(&self.tenant, &setup, &events);
        if !events.is_empty() {
            self.send_view(&setup);
        }
        self.rearm(ctx);
        Ok(ticket)
    }

    fn send_view(&self, setup: &TenantSetup) {
        let view = self.agent.view();
        for q in setup.queues_of(&self.agent.id) {
            self.tenant
                .dispatch(Command::Observe(q.clone(), view.clone()));
        }
    }

    fn rearm(&mut self, ctx: &mut Context<Self>) {
        let at = self.agent.next_deadline();
        let tenant = self.tenant.clone();
        self.timer.arm(ctx, at, &tenant, |act, ctx| {
            act.timer.fired();
            let _ = act.process(AgentCommand::Tick, None, ctx);
            act.rearm(ctx);
        });
    }
}

impl Actor for AgentActor {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        self.rearm(ctx);
    }
}

impl Handler<AgentMsg> for AgentActor {
    type Result = Result<Ticket, Rejection>;
    fn handle(&mut self, msg: AgentMsg, ctx: &mut Self::Context) -> Self::Result {
        self.process(msg.0, msg.1.as_deref(), ctx)
    }
}

impl Handler<Resync> for AgentActor {
    type Result = ();
    fn handle(&mut self, _: Resync, _: &mut Self::Context) {
        self.send_view(&self.tenant.setup());
    }
}

impl Handler<GetAgent> for AgentActor {
    type Result = MessageResult<GetAgent>;
    fn handle(&mut self, _: GetAgent, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.agent.clone())
    }
}

// ------------------------------------------------------------------ queue

/// The actor of one queue.
pub struct QueueActor {
    queue: Queue,
    tenant: Arc<Tenant>,
    timer: Timer,
    match_pending: bool,
}

impl QueueActor {
    /// Wraps a queue (fresh or recovered, with its board).
    pub fn new(queue: Queue, tenant: Arc<Tenant>) -> QueueActor {
        QueueActor {
            queue,
            tenant,
            timer: Timer::default(),
            match_pending: false,
        }
    }

    fn process(&mut self, cmd: QueueCommand, ctx: &mut Context<Self>) -> Result<Ticket, Rejection> {
        let setup = self.tenant.setup();
        let now = self.tenant.now();
        self.queue.prepare(&setup);
        let handled = self.queue.handle(&cmd, &setup, now);
        let id = self.queue.id.clone();
        let origin = Origin {
            kind: "queue",
            id: id.as_str(),
            first_seq: self.queue.seq + 1,
            plan_version: setup.version,
            traceparent: "",
            caused_by: None,
        };
        let queue = &mut self.queue;
        let (events, ticket) = self.tenant.commit(
            origin,
            || Command::Queue(id.clone(), cmd),
            handled,
            |e| queue.apply(e),
        )?;
        dispatch_reactions(&self.tenant, &setup, &events);
        self.rearm(ctx, &setup, now);
        Ok(ticket)
    }

    fn schedule_match(&mut self, ctx: &mut Context<Self>) {
        if !self.match_pending {
            self.match_pending = true;
            ctx.notify(RunMatch);
        }
    }

    fn rearm(&mut self, ctx: &mut Context<Self>, setup: &TenantSetup, now: TimeMs) {
        let at = setup
            .queues
            .get(&self.queue.id)
            .and_then(|q| self.queue.next_deadline(q, now));
        let tenant = self.tenant.clone();
        self.timer.arm(ctx, at, &tenant, |act, ctx| {
            act.timer.fired();
            let _ = act.process(QueueCommand::Tick, ctx);
            act.schedule_match(ctx);
        });
    }
}

impl Actor for QueueActor {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        self.schedule_match(ctx);
    }
}

impl Handler<QueueMsg> for QueueActor {
    type Result = Result<Ticket, Rejection>;
    fn handle(&mut self, msg: QueueMsg, ctx: &mut Self::Context) -> Self::Result {
        let r = self.process(msg.0, ctx);
        self.schedule_match(ctx);
        r
    }
}

impl Handler<Observe> for QueueActor {
    type Result = ();
    fn handle(&mut self, msg: Observe, ctx: &mut Self::Context) {
        self.queue.observe(msg.0);
        self.schedule_match(ctx);
    }
}

impl Handler<RunMatch> for QueueActor {
    type Result = ();
    fn handle(&mut self, _: RunMatch, ctx: &mut Self::Context) {
        self.match_pending = false;
        let rand = self.tenant.shared.rand();
        let _ = self.process(QueueCommand::Match { rand }, ctx);
    }
}

impl Handler<GetAnnouncement> for QueueActor {
    type Result = Option<callgrid_domain::Instruction>;
    fn handle(&mut self, msg: GetAnnouncement, _: &mut Self::Context) -> Self::Result {
        self.queue.announcement(&msg.0)
    }
}

impl Handler<GetQueue> for QueueActor {
    type Result = MessageResult<GetQueue>;
    fn handle(&mut self, _: GetQueue, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.queue.clone())
    }
}

// ------------------------------------------------------------------ call

/// The actor of one call. It holds the plan version the call arrived under (R9) and the
/// edge's stream, if one is attached.
pub struct CallActor {
    call: Call,
    setup: Arc<TenantSetup>,
    tenant: Arc<Tenant>,
    edge: Option<EdgeOut>,
    timer: Timer,
    duplicate: bool,
    recovered: bool,
    /// W3C trace context the edge gave at arrival, carried in the call's events (P4).
    traceparent: String,
    /// When the arrival reached this actor, until the first offer is decided.
    awaiting_first_offer: Option<std::time::Instant>,
    /// The periodic position announcement while waiting in a queue.
    announcer: Option<(callgrid_domain::QueueId, SpawnHandle)>,
    /// Who the edge's reports come from (its credential), recorded in their events.
    edge_by: Cause,
}

impl CallActor {
    /// A call about to arrive, with its edge stream.
    pub fn new(
        call: Call,
        tenant: Arc<Tenant>,
        edge: Option<EdgeOut>,
        duplicate: bool,
        traceparent: String,
        edge_by: Cause,
    ) -> CallActor {
        CallActor {
            call,
            setup: tenant.setup(),
            tenant,
            edge,
            timer: Timer::default(),
            duplicate,
            recovered: false,
            traceparent,
            awaiting_first_offer: None,
            announcer: None,
            edge_by,
        }
    }

    /// A call rebuilt from the log after a restart: no edge stream (the edge saw its stream
    /// break), so it is ended as edge-lost after the grace period, freeing its agents (A5).
    pub fn recovered(call: Call, setup: Arc<TenantSetup>, tenant: Arc<Tenant>) -> CallActor {
        CallActor {
            call,
            setup,
            tenant,
            edge: None,
            timer: Timer::default(),
            duplicate: false,
            recovered: true,
            traceparent: String::new(),
            awaiting_first_offer: None,
            announcer: None,
            edge_by: None,
        }
    }

    fn process(
        &mut self,
        cmd: CallCommand,
        by: Option<&str>,
        ctx: &mut Context<Self>,
    ) -> Result<Ticket, Rejection> {
        let now = self.tenant.now();
        let result = match &cmd {
            CallCommand::Arrive { number, caller } => {
                if self.duplicate || self.call.seq > 0 {
                    Err(Rejection::CallExists(self.call.id.clone()))
                } else {
                    self.awaiting_first_offer = Some(std::time::Instant::now());
                    Call::arrive(self.call.id.clone(), number, caller, &self.setup, now)
                }
            }
            _ => self.call.handle(&cmd, &self.setup, now),
        };
        let arriving = matches!(cmd, CallCommand::Arrive { .. });
        let id = self.call.id.clone();
        let origin = Origin {
            kind: "call",
            id: id.as_str(),
            first_seq: self.call.seq + 1,
            // the version the call arrived under (R9); its arrival sets it on the call
            plan_version: self.setup.version,
            traceparent: &self.traceparent,
            caused_by: by,
        };
        let call = &mut self.call;
        let committed = self.tenant.commit(
            origin,
            || Command::Call(id.clone(), cmd),
            result,
            |e| call.apply(e),
        );
        match committed {
            Ok((events, ticket)) => {
                self.after(&events, ticket, ctx);
                Ok(ticket)
            }
            Err(r) => {
                if arriving && self.call.seq == 0 {
                    // a call that never arrived has nothing to keep
                    if !self.duplicate {
                        self.tenant.unregister_call(&self.call.id);
                    }
                    self.edge = None;
                    ctx.stop();
                }
                Err(r)
            }
        }
    }

    /// What committed events cause: follow-ups to other actors, instructions to the edge,
    /// the announcer, the timer, or the actor's end.
    fn after(&mut self, events: &[Event], ticket: Ticket, ctx: &mut Context<Self>) {
        let priority = self
            .setup
            .numbers
            .get(&self.call.number)
            .map_or(0, |n| n.priority);
        let caller = self.call.caller.clone();
        for e in events {
            for c in reactions(&self.setup, e, Some((&caller, priority))) {
                self.tenant.dispatch(c);
            }
            if let (EventBody::CallOffered { .. }, Some(t)) = (&e.body, self.awaiting_first_offer) {
                self.tenant
                    .shared
                    .record_decision(t.elapsed().as_micros() as u64);
                self.awaiting_first_offer = None;
            }
            for i in instructions(&self.setup, e) {
                self.send_edge(ticket, convert::instruction_pb(&self.call.id, &i));
            }
        }
        self.update_announcer(ctx);
        if self.call.phase == CallPhase::Ended {
            self.tenant.unregister_call(&self.call.id);
            self.edge = None;
            ctx.stop();
        } else {
            self.rearm(ctx);
        }
    }

    /// Starts or stops the periodic announcement as the call enters or leaves a queue that
    /// announces (R4). Announcements change no state: they are read from the queue actor.
    fn update_announcer(&mut self, ctx: &mut Context<Self>) {
        let waiting_in = match &self.call.phase {
            CallPhase::Queued { queue } if self.edge.is_some() => self
                .setup
                .queues
                .get(queue)
                .filter(|q| q.announce_ms > 0)
                .map(|q| (queue.clone(), q.announce_ms)),
            _ => None,
        };
        match (&self.announcer, waiting_in) {
            (Some((current, _)), Some((q, _))) if *current == q => {}
            (_, next) => {
                if let Some((_, h)) = self.announcer.take() {
                    ctx.cancel_future(h);
                }
                if let Some((q, period_ms)) = next {
                    let clock = self.tenant.shared.clock;
                    let period = clock.until(clock.now() + period_ms);
                    let queue = q.clone();
                    let h = ctx.run_interval(period, move |act, ctx| {
                        let Some(addr) = act.tenant.queue(&queue) else {
                            return;
                        };
                        let call = act.call.id.clone();
                        ctx.spawn(addr.send(GetAnnouncement(call)).into_actor(act).map(
                            |res, act, _| {
                                if let Ok(Some(ins)) = res {
                                    let ticket = act.tenant.shared.journal.append(Vec::new());
                                    let pb = convert::instruction_pb(&act.call.id, &ins);
                                    act.send_edge(ticket, pb);
                                }
                            },
                        ));
                    });
                    self.announcer = Some((q, h));
                }
            }
        }
    }

    fn send_edge(&mut self, ticket: Ticket, ins: api::RouterInstruction) {
        if let Some(edge) = &self.edge {
            if edge.send((ticket, ins)).is_err() {
                // the stream is gone; the inbound side reports the loss
                self.edge = None;
            }
        }
    }

    fn rearm(&mut self, ctx: &mut Context<Self>) {
        let at = self.call.next_deadline();
        let tenant = self.tenant.clone();
        self.timer.arm(ctx, at, &tenant, |act, ctx| {
            act.timer.fired();
            let _ = act.process(CallCommand::Tick, None, ctx);
        });
    }
}

impl Actor for CallActor {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        if self.recovered {
            let grace = self.tenant.shared.edge_grace_ms;
            let delay = self.tenant.shared.clock.until(self.tenant.now() + grace);
            ctx.run_later(delay, |act, ctx| {
                if act.edge.is_none() && act.call.phase != CallPhase::Ended {
                    tracing::info!(tenant = %act.tenant.id, call = %act.call.id, "no edge after recovery, ending call");
                    let _ = act.process(
                        CallCommand::Hangup {
                            cause: EndCause::EdgeLost,
                        },
                        None,
                        ctx,
                    );
                }
            });
            self.rearm(ctx);
        }
    }
}

impl Handler<CallMsg> for CallActor {
    type Result = Result<Ticket, Rejection>;
    fn handle(&mut self, msg: CallMsg, ctx: &mut Self::Context) -> Self::Result {
        self.process(msg.0, msg.1.as_deref(), ctx)
    }
}

impl Handler<EdgeReport> for CallActor {
    type Result = ();
    fn handle(&mut self, msg: EdgeReport, ctx: &mut Self::Context) {
        let seq = msg.seq;
        // the result goes out before the report's instructions would stop the stream
        let edge = self.edge.clone();
        let mut outcome = Ok(0);
        let ack = msg.ack;
        let by = self.edge_by.clone();
        for cmd in msg.cmds {
            outcome = self.process(cmd, by.as_deref(), ctx);
            if outcome.is_err() {
                break;
            }
        }
        let (ticket, code, message) = match outcome {
            Ok(t) => (t, 0, String::new()),
            Err(r) => {
                let st = convert::status(&r);
                (0, st.code() as i32, st.message().to_string())
            }
        };
        if code == 0 && !ack {
            return;
        }
        let result = api::RouterInstruction {
            call_id: self.call.id.to_string(),
            instruction: Some(api::router_instruction::Instruction::Result(
                api::ReportResult { seq, code, message },
            )),
        };
        if let Some(edge) = edge {
            let _ = edge.send((ticket, result));
        }
    }
}

impl Handler<GetCall> for CallActor {
    type Result = MessageResult<GetCall>;
    fn handle(&mut self, _: GetCall, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.call.clone())
    }
}
