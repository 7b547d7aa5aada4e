//! `TenantCore`: every aggregate of one tenant in memory, with commands routed between them
//! synchronously by the rules of `react`. The simulator and the property tests drive it in
//! virtual time; the router runs the same aggregates as actors.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::agent::{Agent, AgentCommand};
use crate::call::{Call, CallCommand};
use crate::event::{AggregateRef, Event, EventBody};
use crate::ids::{AgentId, CallId, QueueId, TimeMs};
use crate::queue::{splitmix64, Queue, QueueCommand};
use crate::react::{instructions, on_rejection, reactions, Command, Instruction};
use crate::rejection::Rejection;
use crate::setup::TenantSetup;

/// What executing a command produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    /// Every event recorded, in order (the command's own and its follow-ups').
    pub events: Vec<Event>,
    /// Instructions for the SIP edge, per call, in order.
    pub instructions: Vec<(CallId, Instruction)>,
    /// Follow-up commands that were refused (normal in races; kept for diagnosis).
    pub refused: Vec<(Command, Rejection)>,
}

/// All aggregates of a tenant.
#[derive(Clone, Debug)]
pub struct TenantCore {
    /// Configuration.
    pub setup: Arc<TenantSetup>,
    /// Agents.
    pub agents: BTreeMap<AgentId, Agent>,
    /// Queues.
    pub queues: BTreeMap<QueueId, Queue>,
    /// Calls in progress (ended calls are dropped).
    pub calls: HashMap<CallId, Call>,
    rng: u64,
    /// The latest time a command or tick carried.
    clock: TimeMs,
}

impl PartialEq for TenantCore {
    fn eq(&self, o: &Self) -> bool {
        self.agents == o.agents && self.queues == o.queues && self.calls == o.calls
    }
}

impl TenantCore {
    /// A tenant with every agent logged out and every queue empty.
    pub fn new(setup: Arc<TenantSetup>, seed: u64) -> TenantCore {
        let agents = setup
            .agents
            .keys()
            .map(|a| (a.clone(), Agent::new(a.clone())))
            .collect();
        let queues = setup
            .queues
            .keys()
            .map(|q| (q.clone(), Queue::new(q.clone())))
            .collect();
        let mut core = TenantCore {
            setup,
            agents,
            queues,
            calls: HashMap::new(),
            rng: seed,
            clock: 0,
        };
        core.rebuild_boards();
        core
    }

    /// Rebuilds every queue's view of its members from the agents (after replay).
    pub fn rebuild_boards(&mut self) {
        for (qid, queue) in self.queues.iter_mut() {
            queue.board.clear();
            if let Some(q) = self.setup.queues.get(qid) {
                for m in &q.members {
                    if let Some(a) = self.agents.get(&m.agent) {
                        queue.observe(a.view());
                    }
                }
            }
        }
    }

    /// Rebuilds a tenant from its events.
    pub fn replay<'a>(
        setup: Arc<TenantSetup>,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> TenantCore {
        let mut core = TenantCore::new(setup, 0);
        for e in events {
            core.apply(e);
        }
        core.rebuild_boards();
        core
    }

    /// Applies one event to its aggregate.
    pub fn apply(&mut self, event: &Event) {
        match event.body.aggregate() {
            AggregateRef::Agent(a) => {
                self.agents
                    .entry(a.clone())
                    .or_insert_with(|| Agent::new(a))
                    .apply(event);
            }
            AggregateRef::Queue(q) => {
                self.queues
                    .entry(q.clone())
                    .or_insert_with(|| Queue::new(q))
                    .apply(event);
            }
            AggregateRef::Call(c) => {
                if let EventBody::CallEnded { .. } = event.body {
                    self.calls.remove(&c);
                } else {
                    self.calls
                        .entry(c.clone())
                        .or_insert_with(|| Call::new(c))
                        .apply(event);
                }
            }
        }
    }

    fn next_rand(&mut self) -> u64 {
        self.rng = splitmix64(self.rng);
        self.rng
    }

    /// Runs one aggregate's command without follow-ups.
    fn run_one(&mut self, cmd: &Command, now: TimeMs) -> Result<Vec<Event>, Rejection> {
        let setup = self.setup.clone();
        match cmd {
            Command::Agent(a, c) => self
                .agents
                .get(a)
                .ok_or_else(|| Rejection::UnknownAgent(a.clone()))?
                .handle(c, &setup, now),
            Command::Queue(q, c) => {
                let queue = self
                    .queues
                    .get_mut(q)
                    .ok_or_else(|| Rejection::UnknownQueue(q.clone()))?;
                queue.prepare(&setup);
                queue.handle(c, &setup, now)
            }
            Command::Call(id, CallCommand::Arrive { number, caller }) => {
                if self.calls.contains_key(id) {
                    return Err(Rejection::CallExists(id.clone()));
                }
                Call::arrive(id.clone(), number, caller, &setup, now)
            }
            Command::Call(
                id,
                CallCommand::Originate {
                    agent,
                    dialled,
                    correlation,
                    phone,
                },
            ) => {
                if self.calls.contains_key(id) {
                    return Err(Rejection::CallExists(id.clone()));
                }
                let correlation = correlation.clone();
                Call::originate(id.clone(), agent, dialled, correlation, *phone, &setup, now)
            }
            Command::Call(
                id,
                CallCommand::Place {
                    campaign,
                    dialled,
                    number,
                    correlation,
                },
            ) => {
                if self.calls.contains_key(id) {
                    return Err(Rejection::CallExists(id.clone()));
                }
                let (number, correlation) = (number.as_deref(), correlation.clone());
                Call::place(
                    id.clone(),
                    campaign,
                    dialled,
                    number,
                    correlation,
                    &setup,
                    now,
                )
            }
            Command::Call(id, c) => self
                .calls
                .get(id)
                .ok_or_else(|| Rejection::UnknownCall(id.clone()))?
                .handle(c, &setup, now),
            Command::Observe(q, view) => {
                if let Some(queue) = self.queues.get_mut(q) {
                    queue.observe(view.clone());
                }
                Ok(vec![])
            }
        }
    }

    /// Executes a command and every follow-up it causes. If the command itself is refused,
    /// nothing changes and the refusal is returned.
    pub fn execute(&mut self, cmd: Command, now: TimeMs) -> Result<Output, Rejection> {
        self.clock = self.clock.max(now);
        let mut out = Output::default();
        let first = self.run_one(&cmd, now)?;
        let mut work: VecDeque<Command> = VecDeque::new();
        self.record(&cmd, first, now, &mut out, &mut work);
        self.drain(work, now, &mut out);
        Ok(out)
    }

    fn drain(&mut self, mut work: VecDeque<Command>, now: TimeMs, out: &mut Output) {
        while let Some(cmd) = work.pop_front() {
            match self.run_one(&cmd, now) {
                Ok(events) => self.record(&cmd, events, now, out, &mut work),
                Err(r) => {
                    work.extend(on_rejection(&cmd, &r));
                    out.refused.push((cmd, r));
                }
            }
        }
    }

    /// Applies a command's events and queues their follow-ups.
    fn record(
        &mut self,
        cmd: &Command,
        events: Vec<Event>,
        _now: TimeMs,
        out: &mut Output,
        work: &mut VecDeque<Command>,
    ) {
        let setup = self.setup.clone();
        let mut queue_changed: Option<QueueId> = match cmd {
            Command::Queue(_, QueueCommand::Match { .. }) => None,
            Command::Queue(q, _) | Command::Observe(q, _) => Some(q.clone()),
            _ => None,
        };
        for e in events {
            // call context before the call may be dropped by `apply`
            let ctx = match e.body.aggregate() {
                AggregateRef::Call(c) => self.calls.get(&c).map(|call| {
                    let prio = setup.numbers.get(&call.number).map_or(0, |n| n.priority);
                    (call.caller.clone(), prio)
                }),
                _ => None,
            };
            let ctx = match (&e.body, ctx) {
                (EventBody::CallArrived { caller, number, .. }, _) => Some((
                    caller.clone(),
                    setup.numbers.get(number).map_or(0, |n| n.priority),
                )),
                (_, c) => c,
            };
            self.apply(&e);
            if let AggregateRef::Call(c) = e.body.aggregate() {
                for i in instructions(&setup, &e) {
                    out.instructions.push((c.clone(), i));
                }
            }
            if let AggregateRef::Agent(a) = e.body.aggregate() {
                if let Some(agent) = self.agents.get(&a) {
                    let view = agent.view();
                    for q in setup.queues_of(&a) {
                        work.push_back(Command::Observe(q.clone(), view.clone()));
                    }
                }
            }
            if let AggregateRef::Queue(q) = e.body.aggregate() {
                if !matches!(e.body, EventBody::QueueRoutingDecision { .. }) {
                    queue_changed = Some(q);
                }
            }
            work.extend(reactions(&setup, &e, ctx.as_ref().map(|(c, p)| (c, *p))));
            out.events.push(e);
        }
        if let Some(q) = queue_changed {
            let rand = self.next_rand();
            work.push_back(Command::Queue(q, QueueCommand::Match { rand }));
        }
    }

    /// The earliest time an aggregate needs a tick, after the latest time seen.
    pub fn next_deadline(&self) -> Option<TimeMs> {
        let now = self.clock;
        let agents = self.agents.values().filter_map(Agent::next_deadline);
        let calls = self.calls.values().filter_map(Call::next_deadline);
        let queues = self.queues.values().filter_map(|q| {
            self.setup
                .queues
                .get(&q.id)
                .and_then(|qs| q.next_deadline(qs, now))
        });
        agents.chain(calls).chain(queues).min()
    }

    /// Ticks every aggregate whose deadline has come.
    pub fn tick(&mut self, now: TimeMs) -> Output {
        let since = self.clock;
        self.clock = self.clock.max(now);
        let mut out = Output::default();
        let mut work = VecDeque::new();
        let due_agents: Vec<AgentId> = self
            .agents
            .values()
            .filter(|a| a.next_deadline().is_some_and(|d| d <= now))
            .map(|a| a.id.clone())
            .collect();
        for a in due_agents {
            work.push_back(Command::Agent(a, AgentCommand::Tick));
        }
        let due_calls: Vec<CallId> = self
            .calls
            .values()
            .filter(|c| c.next_deadline().is_some_and(|d| d <= now))
            .map(|c| c.id.clone())
            .collect();
        for c in due_calls {
            work.push_back(Command::Call(c, CallCommand::Tick));
        }
        let due_queues: Vec<QueueId> = self
            .queues
            .values()
            .filter(|q| {
                self.setup
                    .queues
                    .get(&q.id)
                    .and_then(|qs| q.next_deadline(qs, since))
                    .is_some_and(|d| d <= now)
            })
            .map(|q| q.id.clone())
            .collect();
        for q in due_queues {
            work.push_back(Command::Queue(q.clone(), QueueCommand::Tick));
        }
        self.drain(work, now, &mut out);
        out
    }
}
