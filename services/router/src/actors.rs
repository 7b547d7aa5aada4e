//! The actors: one per agent, queue and call, each the single writer of its aggregate.
//! Every actor runs a command through the same sequence, written once ([`Aggregate::run`]):
//! its domain state machine decides, a refusal changes nothing, the events are applied and
//! handed to the journal (before anything else can see their effects), then the follow-up
//! commands are dispatched; a call's actor also sends the edge its instructions (released
//! once durable). Actors speak domain types only: the gRPC layer converts (grpc/convert.rs).

use std::borrow::Borrow;
use std::sync::Arc;

use actix::prelude::*;
use callgrid_domain::react::{instructions, reactions};
use callgrid_domain::{
    Agent, AgentCommand, AgentView, Call, CallCommand, CallPhase, Command, EndCause, Event,
    EventBody, Instruction, Queue, QueueCommand, Rejection, TenantSetup, TimeMs,
};
use tokio::sync::mpsc;

use crate::journal::Ticket;
use crate::tenant::{Origin, Tenant};

/// What a call's actor tells its edge.
#[derive(Debug, Clone)]
pub enum ToEdge {
    /// Do this (answer, ring an agent, bridge...).
    Do(Instruction),
    /// The outcome of the edge's report number `seq`.
    Result {
        /// The report's number.
        seq: u64,
        /// Taken, or why not.
        outcome: Result<(), Refusal>,
    },
}

/// Why a report of the edge was not taken.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// The call's state machine refused it.
    Rejected(Rejection),
    /// It could not be read as a command (a field missing or out of bounds).
    Malformed(String),
}

/// Where a call's instructions go: the edge's stream, each released once its ticket is durable.
pub type EdgeOut = mpsc::UnboundedSender<(Ticket, ToEdge)>;

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

/// An actor's aggregate as the one command sequence sees it.
trait Aggregate {
    /// The aggregate's id.
    type Id: Clone + Borrow<str>;
    /// Its commands.
    type Cmd;
    /// `agent`, `queue` or `call` (the events' envelope).
    const KIND: &'static str;

    fn tenant(&self) -> &Arc<Tenant>;
    /// The configuration commands are decided under (a call keeps the version it arrived
    /// under, R9).
    fn setup(&self) -> Arc<TenantSetup>;
    fn id(&self) -> &Self::Id;
    /// The sequence number of the last event.
    fn seq(&self) -> u64;
    /// The W3C trace context of the events.
    fn traceparent(&self) -> Option<Arc<str>> {
        None
    }
    /// The domain's answer to a command.
    fn decide(
        &mut self,
        cmd: &Self::Cmd,
        setup: &Arc<TenantSetup>,
        now: TimeMs,
    ) -> Result<Vec<Event>, Rejection>;
    fn apply(&mut self, event: &Event);
    /// The command addressed to this aggregate (for the refusal's follow-ups).
    fn addressed(id: Self::Id, cmd: Self::Cmd) -> Command;
    /// The caller and priority the follow-ups of a call's events carry.
    fn call_context(&self, _setup: &TenantSetup) -> Option<(Arc<str>, u32)> {
        None
    }

    /// The one sequence of every actor: decide → refuse (nothing changes) → apply →
    /// journal → dispatch the follow-ups. The events and their ticket, and the setup they
    /// were decided under.
    fn run(
        &mut self,
        cmd: Self::Cmd,
        by: Option<&str>,
    ) -> Result<(Vec<Event>, Ticket, Arc<TenantSetup>), Rejection> {
        let tenant = self.tenant().clone();
        let setup = self.setup();
        let handled = self.decide(&cmd, &setup, tenant.now());
        let id = self.id().clone();
        let traceparent = self.traceparent();
        let origin = Origin {
            kind: Self::KIND,
            id: id.borrow(),
            first_seq: self.seq() + 1,
            plan_version: setup.version,
            traceparent: traceparent.as_deref().unwrap_or(""),
            caused_by: by,
        };
        let (events, ticket) = tenant.commit(
            origin,
            || Self::addressed(id.clone(), cmd),
            handled,
            |e| self.apply(e),
        )?;
        let context = self.call_context(&setup);
        let context = context.as_ref().map(|(caller, p)| (caller, *p));
        for e in &events {
            for c in reactions(&setup, e, context) {
                tenant.dispatch(c);
            }
        }
        Ok((events, ticket, setup))
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
        let (events, ticket, setup) = self.run(cmd, by)?;
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

impl Aggregate for AgentActor {
    type Id = callgrid_domain::AgentId;
    type Cmd = AgentCommand;
    const KIND: &'static str = "agent";
    fn tenant(&self) -> &Arc<Tenant> {
        &self.tenant
    }
    fn setup(&self) -> Arc<TenantSetup> {
        self.tenant.setup()
    }
    fn id(&self) -> &Self::Id {
        &self.agent.id
    }
    fn seq(&self) -> u64 {
        self.agent.seq
    }
    fn decide(
        &mut self,
        cmd: &AgentCommand,
        setup: &Arc<TenantSetup>,
        now: TimeMs,
    ) -> Result<Vec<Event>, Rejection> {
        self.agent.handle(cmd, setup, now)
    }
    fn apply(&mut self, event: &Event) {
        self.agent.apply(event);
    }
    fn addressed(id: Self::Id, cmd: AgentCommand) -> Command {
        Command::Agent(id, cmd)
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
        let (_, ticket, setup) = self.run(cmd, None)?;
        self.rearm(ctx, &setup, self.tenant.now());
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

impl Aggregate for QueueActor {
    type Id = callgrid_domain::QueueId;
    type Cmd = QueueCommand;
    const KIND: &'static str = "queue";
    fn tenant(&self) -> &Arc<Tenant> {
        &self.tenant
    }
    fn setup(&self) -> Arc<TenantSetup> {
        self.tenant.setup()
    }
    fn id(&self) -> &Self::Id {
        &self.queue.id
    }
    fn seq(&self) -> u64 {
        self.queue.seq
    }
    fn decide(
        &mut self,
        cmd: &QueueCommand,
        setup: &Arc<TenantSetup>,
        now: TimeMs,
    ) -> Result<Vec<Event>, Rejection> {
        self.queue.prepare(setup);
        self.queue.handle(cmd, setup, now)
    }
    fn apply(&mut self, event: &Event) {
        self.queue.apply(event);
    }
    fn addressed(id: Self::Id, cmd: QueueCommand) -> Command {
        Command::Queue(id, cmd)
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
    traceparent: Option<Arc<str>>,
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
        traceparent: &str,
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
            traceparent: (!traceparent.is_empty()).then(|| traceparent.into()),
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
            traceparent: None,
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
        let arriving = matches!(
            cmd,
            CallCommand::Arrive { .. } | CallCommand::Originate { .. }
        );
        match self.run(cmd, by) {
            Ok((events, ticket, _)) => {
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
        for e in events {
            if let (EventBody::CallOffered { .. }, Some(t)) = (&e.body, self.awaiting_first_offer) {
                self.tenant
                    .shared
                    .record_decision(t.elapsed().as_micros() as u64);
                self.awaiting_first_offer = None;
            }
            for i in instructions(&self.setup, e) {
                self.send_edge(ticket, ToEdge::Do(i));
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
                                    act.send_edge(ticket, ToEdge::Do(ins));
                                }
                            },
                        ));
                    });
                    self.announcer = Some((q, h));
                }
            }
        }
    }

    fn send_edge(&mut self, ticket: Ticket, ins: ToEdge) {
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

impl Aggregate for CallActor {
    type Id = callgrid_domain::CallId;
    type Cmd = CallCommand;
    const KIND: &'static str = "call";
    fn tenant(&self) -> &Arc<Tenant> {
        &self.tenant
    }
    fn setup(&self) -> Arc<TenantSetup> {
        self.setup.clone()
    }
    fn id(&self) -> &Self::Id {
        &self.call.id
    }
    fn seq(&self) -> u64 {
        self.call.seq
    }
    fn traceparent(&self) -> Option<Arc<str>> {
        self.traceparent.clone()
    }
    fn decide(
        &mut self,
        cmd: &CallCommand,
        setup: &Arc<TenantSetup>,
        now: TimeMs,
    ) -> Result<Vec<Event>, Rejection> {
        match cmd {
            CallCommand::Arrive { number, caller } => {
                if self.duplicate || self.call.seq > 0 {
                    Err(Rejection::CallExists(self.call.id.clone()))
                } else {
                    self.awaiting_first_offer = Some(std::time::Instant::now());
                    Call::arrive(self.call.id.clone(), number, caller, setup, now)
                }
            }
            CallCommand::Originate {
                agent,
                dialled,
                correlation,
                phone,
            } => {
                if self.duplicate || self.call.seq > 0 {
                    Err(Rejection::CallExists(self.call.id.clone()))
                } else {
                    let id = self.call.id.clone();
                    let correlation = correlation.clone();
                    Call::originate(id, agent, dialled, correlation, *phone, setup, now)
                }
            }
            _ => self.call.handle(cmd, setup, now),
        }
    }
    fn apply(&mut self, event: &Event) {
        self.call.apply(event);
    }
    fn addressed(id: Self::Id, cmd: CallCommand) -> Command {
        Command::Call(id, cmd)
    }
    fn call_context(&self, setup: &TenantSetup) -> Option<(Arc<str>, u32)> {
        let priority = setup
            .numbers
            .get(&self.call.number)
            .map_or(0, |n| n.priority);
        Some((self.call.caller.clone(), priority))
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
        let (ticket, outcome) = match outcome {
            Ok(t) => (t, Ok(())),
            Err(r) => (0, Err(Refusal::Rejected(r))),
        };
        if outcome.is_ok() && !ack {
            return;
        }
        if let Some(edge) = edge {
            let _ = edge.send((ticket, ToEdge::Result { seq, outcome }));
        }
    }
}

impl Handler<GetCall> for CallActor {
    type Result = MessageResult<GetCall>;
    fn handle(&mut self, _: GetCall, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.call.clone())
    }
}
