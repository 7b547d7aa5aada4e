//! The queue state machine and the eight routing strategies (R4, R10).

use std::collections::HashMap;
use std::sync::Arc;

use crate::agent::AgentView;
use crate::event::{Event, EventBody, LeaveReason, MemberSet, OfferFailure};
use crate::ids::{AgentId, CallId, DeviceId, DurationMs, QueueId, TimeMs};
use crate::rejection::Rejection;
use crate::setup::{QueueSetup, Strategy, TenantSetup};

/// How long a routing decision may wait for the agent's reservation answer (A5).
pub const DECISION_LEASE_MS: DurationMs = 5_000;

/// Commands to a queue.
#[derive(Clone, Debug, PartialEq)]
pub enum QueueCommand {
    /// A call wants to wait in the queue.
    Join {
        /// Call.
        call: CallId,
        /// Higher first.
        priority: u32,
        /// Calling number.
        caller: Arc<str>,
    },
    /// Try to offer waiting calls to available agents.
    Match {
        /// Random input for the random strategies.
        rand: u64,
    },
    /// The agent chosen for a call is reserved.
    ReservationGranted {
        /// Call.
        call: CallId,
        /// Agent.
        agent: AgentId,
        /// Its devices.
        devices: Vec<DeviceId>,
    },
    /// The agent chosen for a call could not be reserved.
    ReservationRefused {
        /// Call.
        call: CallId,
        /// Agent.
        agent: AgentId,
    },
    /// An offer failed.
    OfferFailed {
        /// Call.
        call: CallId,
        /// Agent.
        agent: AgentId,
        /// Why.
        cause: OfferFailure,
    },
    /// An offered agent answered.
    Answered {
        /// Call.
        call: CallId,
        /// Agent.
        agent: AgentId,
    },
    /// The caller hung up while waiting.
    Abandon {
        /// Call.
        call: CallId,
    },
    /// The caller asks for a callback that keeps its place.
    RequestCallback {
        /// Call.
        call: CallId,
    },
    /// Time passed: max wait, decision leases.
    Tick,
}

/// A decision in flight or an offer ringing for a waiting call.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Offer {
    /// Agents asked for a reservation, no answer yet.
    pub pending: Vec<AgentId>,
    /// Agents reserved and offered the call.
    pub offered: Vec<AgentId>,
    /// The decision is dropped if reservations have not come back by then.
    pub lease_until: TimeMs,
}

impl Offer {
    fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.offered.is_empty()
    }
    fn agents(&self) -> Vec<AgentId> {
        self.pending.iter().chain(&self.offered).cloned().collect()
    }
}

/// A call waiting in the queue.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Waiting {
    /// Call.
    pub call: CallId,
    /// Higher first.
    pub priority: u32,
    /// Calling number.
    pub caller: Arc<str>,
    /// Joined at.
    pub joined_at: TimeMs,
    /// Tie-breaker: join order.
    pub order: u64,
    /// Agents that missed this call (skipped until every eligible member missed it).
    pub excluded: Vec<AgentId>,
    /// Current decision/offer, if any.
    pub offer: Option<Offer>,
    /// The caller asked for a callback.
    pub callback: bool,
}

/// A queue aggregate.
///
/// `board` is a cache of the members' availability fed by the agents (`observe`); it is not
/// event-sourced (agents are), so it is rebuilt from the agents after recovery and is left
/// out of equality.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Queue {
    /// Queue.
    pub id: QueueId,
    /// Waiting calls in service order (priority, then join order).
    pub waiting: Vec<Waiting>,
    /// Next join order number.
    pub next_order: u64,
    /// The member offered last (round robin memory).
    pub rr_last: Option<AgentId>,
    /// Calls answered from this queue.
    pub answered: u64,
    /// Time of the last answer.
    pub last_answer_at: Option<TimeMs>,
    /// Smoothed time between answers (expected wait estimates).
    pub answer_interval_ms: Option<DurationMs>,
    /// Number of events applied.
    pub seq: u64,
    /// Members' availability (derived cache, not part of snapshots).
    #[serde(skip)]
    pub board: Board,
}

/// The members' availability as the agents last reported it, with a positional index for
/// decisions: a decision among 1,500 members then reads views by member position (no hashing
/// or id comparisons per member), which was a seventh of the router's CPU at 1,000 calls/s.
#[derive(Clone, Debug, Default)]
pub struct Board {
    views: HashMap<AgentId, AgentView>,
    index: Option<BoardIndex>,
}

/// The board by member position of one configuration (kept alive here, so a pointer
/// comparison says whether it is still the one in force).
#[derive(Clone, Debug)]
struct BoardIndex {
    /// The configuration it was built for (`None`: a temporary index for one decision).
    setup: Option<Arc<TenantSetup>>,
    /// Member positions by agent (an agent is a member once).
    position: HashMap<AgentId, usize>,
    /// Views by member position.
    views: Vec<Option<AgentView>>,
    /// Whether each member has the queue's required skills.
    qualified: Vec<bool>,
}

impl BoardIndex {
    fn build(setup: &TenantSetup, q: &QueueSetup, views: &HashMap<AgentId, AgentView>) -> Self {
        BoardIndex {
            setup: None,
            position: q
                .members
                .iter()
                .enumerate()
                .map(|(i, m)| (m.agent.clone(), i))
                .collect(),
            views: q
                .members
                .iter()
                .map(|m| views.get(&m.agent).cloned())
                .collect(),
            qualified: q
                .members
                .iter()
                .map(|m| qualifies(setup, q, &m.agent))
                .collect(),
        }
    }

    fn is_for(&self, setup: &TenantSetup) -> bool {
        self.setup
            .as_ref()
            .is_some_and(|s| std::ptr::eq(Arc::as_ptr(s), setup))
    }
}

impl PartialEq for Board {
    fn eq(&self, o: &Self) -> bool {
        self.views == o.views
    }
}

impl Board {
    /// An agent's last reported view.
    pub fn get(&self, agent: &AgentId) -> Option<&AgentView> {
        self.views.get(agent)
    }

    /// Records an agent's view.
    pub fn insert(&mut self, view: AgentView) {
        if let Some(ix) = &mut self.index {
            if let Some(&i) = ix.position.get(&view.agent) {
                ix.views[i] = Some(view.clone());
            }
        }
        self.views.insert(view.agent.clone(), view);
    }

    /// Forgets every view.
    pub fn clear(&mut self) {
        self.views.clear();
        self.index = None;
    }
}

impl PartialEq for Queue {
    fn eq(&self, o: &Self) -> bool {
        self.id == o.id
            && self.waiting == o.waiting
            && self.next_order == o.next_order
            && self.rr_last == o.rr_last
            && self.answered == o.answered
            && self.last_answer_at == o.last_answer_at
            && self.answer_interval_ms == o.answer_interval_ms
            && self.seq == o.seq
    }
}

/// Skill check of a member against a queue's requirements.
fn qualifies(setup: &TenantSetup, q: &QueueSetup, agent: &AgentId) -> bool {
    if q.required_skills.is_empty() {
        return true;
    }
    let Some(a) = setup.agents.get(agent) else {
        return false;
    };
    q.required_skills
        .iter()
        .all(|(skill, min)| a.skills.get(skill).is_some_and(|p| p >= min))
}

impl Queue {
    /// An empty queue.
    pub fn new(id: QueueId) -> Queue {
        Queue {
            id,
            waiting: Vec::new(),
            next_order: 0,
            rr_last: None,
            answered: 0,
            last_answer_at: None,
            answer_interval_ms: None,
            seq: 0,
            board: Board::default(),
        }
    }

    /// Records an agent's availability (from the agent actor).
    pub fn observe(&mut self, view: AgentView) {
        self.board.insert(view);
    }

    /// Keeps the board's positional index in step with the configuration in force; call it
    /// before `handle` (decisions work without it, building a temporary index each time).
    pub fn prepare(&mut self, setup: &Arc<TenantSetup>) {
        if self.board.index.as_ref().is_some_and(|ix| ix.is_for(setup)) {
            return;
        }
        self.board.index = setup.queues.get(&self.id).map(|q| BoardIndex {
            setup: Some(setup.clone()),
            ..BoardIndex::build(setup, q, &self.board.views)
        });
    }

    /// Position (1-based) of a waiting call.
    pub fn position(&self, call: &CallId) -> Option<usize> {
        self.waiting
            .iter()
            .position(|w| &w.call == call)
            .map(|p| p + 1)
    }

    /// Expected wait of a waiting call, from the smoothed answer interval (R4).
    pub fn expected_wait_ms(&self, call: &CallId) -> Option<DurationMs> {
        let pos = self.position(call)? as u64;
        self.answer_interval_ms.map(|i| i * pos)
    }

    /// The announcement for a waiting call: its position and expected wait (R4).
    pub fn announcement(&self, call: &CallId) -> Option<crate::react::Instruction> {
        Some(crate::react::Instruction::Announce {
            position: self.position(call)? as u32,
            expected_wait_ms: self.expected_wait_ms(call),
        })
    }

    /// How many members are logged in.
    pub fn logged_in(&self, q: &QueueSetup) -> usize {
        q.members
            .iter()
            .filter(|m| self.board.get(&m.agent).is_some_and(|v| v.logged_in))
            .count()
    }

    fn entry(&self, call: &CallId) -> Result<&Waiting, Rejection> {
        self.waiting
            .iter()
            .find(|w| &w.call == call)
            .ok_or_else(|| Rejection::NotWaiting {
                call: call.clone(),
                queue: self.id.clone(),
            })
    }

    /// When this queue next needs a `Tick` or a `Match`.
    pub fn next_deadline(&self, q: &QueueSetup, now: TimeMs) -> Option<TimeMs> {
        let mut next: Option<TimeMs> = None;
        let mut take = |t: TimeMs| next = Some(next.map_or(t, |n: TimeMs| n.min(t)));
        let mut unoffered = false;
        // members with a penalty (usually none): a caller becomes eligible for them later
        let mut penalties: Vec<TimeMs> = q
            .members
            .iter()
            .map(|m| m.penalty_ms)
            .filter(|&p| p > 0)
            .collect();
        penalties.sort_unstable();
        penalties.dedup();
        for w in &self.waiting {
            if q.max_wait_ms > 0 && !w.callback {
                take(w.joined_at + q.max_wait_ms);
            }
            match &w.offer {
                Some(o) if !o.pending.is_empty() => take(o.lease_until),
                Some(_) => {}
                None => {
                    unoffered = true;
                    // the earliest penalty still ahead of this caller
                    if let Some(p) = penalties.iter().find(|&&p| w.joined_at + p > now) {
                        take(w.joined_at + p);
                    }
                }
            }
        }
        if unoffered {
            for m in &q.members {
                if let Some(v) = self.board.get(&m.agent) {
                    if v.available && v.blocked_until > now {
                        take(v.blocked_until);
                    }
                }
            }
        }
        next
    }

    /// Decides what a command does.
    pub fn handle(
        &self,
        cmd: &QueueCommand,
        setup: &TenantSetup,
        now: TimeMs,
    ) -> Result<Vec<Event>, Rejection> {
        let q = setup
            .queues
            .get(&self.id)
            .ok_or_else(|| Rejection::UnknownQueue(self.id.clone()))?;
        let queue = self.id.clone();
        let one = |body| Ok(vec![Event { at: now, body }]);
        match cmd {
            QueueCommand::Join {
                call,
                priority,
                caller,
            } => {
                if self.entry(call).is_ok() {
                    return Err(Rejection::Duplicate(
                        "call is already waiting in this queue",
                    ));
                }
                let refuse = |reason| {
                    one(EventBody::QueueCallLeft {
                        queue: queue.clone(),
                        call: call.clone(),
                        reason,
                        wait_ms: 0,
                        overflow: Some(q.overflow.clone()),
                        released: vec![],
                    })
                };
                if q.max_length > 0 && self.waiting.len() >= q.max_length as usize {
                    return refuse(LeaveReason::Full);
                }
                if !q.when_no_agents.join && self.logged_in(q) == 0 {
                    return refuse(LeaveReason::NoAgents);
                }
                one(EventBody::QueueCallJoined {
                    queue,
                    call: call.clone(),
                    priority: *priority,
                    caller: caller.clone(),
                })
            }
            QueueCommand::Match { rand } => Ok(self.decide(setup, q, now, *rand)),
            QueueCommand::ReservationGranted {
                call,
                agent,
                devices,
            } => {
                let w = self.entry(call)?;
                match &w.offer {
                    Some(o) if o.pending.contains(agent) => one(EventBody::QueueCallOffered {
                        queue,
                        call: call.clone(),
                        agent: agent.clone(),
                        devices: devices.clone(),
                        ring_timeout_ms: q.ring_timeout_ms,
                        ring_all: q.strategy == Strategy::RingAll,
                    }),
                    _ => Err(Rejection::NotOffered {
                        call: call.clone(),
                        agent: agent.clone(),
                    }),
                }
            }
            QueueCommand::ReservationRefused { call, agent } => {
                let w = self.entry(call)?;
                match &w.offer {
                    Some(o) if o.pending.contains(agent) => {
                        one(EventBody::QueueReservationRefused {
                            queue,
                            call: call.clone(),
                            agent: agent.clone(),
                        })
                    }
                    _ => Err(Rejection::NotOffered {
                        call: call.clone(),
                        agent: agent.clone(),
                    }),
                }
            }
            QueueCommand::OfferFailed { call, agent, cause } => {
                let w = self.entry(call)?;
                match &w.offer {
                    Some(o) if o.offered.contains(agent) || o.pending.contains(agent) => {
                        one(EventBody::QueueOfferFailed {
                            queue,
                            call: call.clone(),
                            agent: agent.clone(),
                            cause: *cause,
                        })
                    }
                    _ => Err(Rejection::NotOffered {
                        call: call.clone(),
                        agent: agent.clone(),
                    }),
                }
            }
            QueueCommand::Answered { call, agent } => {
                let w = self.entry(call)?;
                match &w.offer {
                    Some(o) if o.offered.contains(agent) => one(EventBody::QueueCallAnswered {
                        queue,
                        call: call.clone(),
                        agent: agent.clone(),
                        wait_ms: now.saturating_sub(w.joined_at),
                    }),
                    _ => Err(Rejection::NotOffered {
                        call: call.clone(),
                        agent: agent.clone(),
                    }),
                }
            }
            QueueCommand::Abandon { call } => {
                let w = self.entry(call)?;
                one(EventBody::QueueCallLeft {
                    queue,
                    call: call.clone(),
                    reason: LeaveReason::Abandoned,
                    wait_ms: now.saturating_sub(w.joined_at),
                    overflow: None,
                    released: w.offer.as_ref().map(Offer::agents).unwrap_or_default(),
                })
            }
            QueueCommand::RequestCallback { call } => {
                let w = self.entry(call)?;
                if !q.callback {
                    return Err(Rejection::IllegalTransition {
                        what: "callback request",
                        state: format!("queue {} does not offer callbacks", self.id),
                    });
                }
                if w.callback {
                    return Err(Rejection::Duplicate("callback already requested"));
                }
                one(EventBody::QueueCallbackRequested {
                    queue,
                    call: call.clone(),
                })
            }
            QueueCommand::Tick => {
                let mut out = Vec::new();
                for w in &self.waiting {
                    if q.max_wait_ms > 0 && !w.callback && now >= w.joined_at + q.max_wait_ms {
                        out.push(Event {
                            at: now,
                            body: EventBody::QueueCallLeft {
                                queue: queue.clone(),
                                call: w.call.clone(),
                                reason: LeaveReason::Timeout,
                                wait_ms: now.saturating_sub(w.joined_at),
                                overflow: Some(q.overflow.clone()),
                                released: w.offer.as_ref().map(Offer::agents).unwrap_or_default(),
                            },
                        });
                    } else if let Some(o) = &w.offer {
                        if !o.pending.is_empty() && now >= o.lease_until {
                            out.push(Event {
                                at: now,
                                body: EventBody::QueueDecisionExpired {
                                    queue: queue.clone(),
                                    call: w.call.clone(),
                                    agents: o.pending.clone(),
                                },
                            });
                        }
                    }
                }
                Ok(out)
            }
        }
    }

    /// Offers waiting calls to available members: one routing decision per call that can be
    /// served now, in service order.
    fn decide(&self, setup: &TenantSetup, q: &QueueSetup, now: TimeMs, rand: u64) -> Vec<Event> {
        let mut out = Vec::new();
        if self.waiting.is_empty() {
            return out;
        }
        if q.when_no_agents.leave && self.logged_in(q) == 0 {
            for w in &self.waiting {
                if w.callback {
                    continue;
                }
                out.push(Event {
                    at: now,
                    body: EventBody::QueueCallLeft {
                        queue: self.id.clone(),
                        call: w.call.clone(),
                        reason: LeaveReason::NoAgents,
                        wait_ms: now.saturating_sub(w.joined_at),
                        overflow: Some(q.overflow.clone()),
                        released: w.offer.as_ref().map(Offer::agents).unwrap_or_default(),
                    },
                });
            }
            return out;
        }
        // members free for this queue now, in member order: available, not blocked, qualified
        // and not already engaged by a decision of this queue. Computed once; each decision
        // removes its chosen agents (O(members + waiting x free) instead of
        // O(waiting x members x engaged), which collapsed under a backlog of callers)
        let temporary;
        let ix = match &self.board.index {
            Some(ix) if ix.is_for(setup) => ix,
            _ => {
                temporary = BoardIndex::build(setup, q, &self.board.views);
                &temporary
            }
        };
        let mut engaged = vec![false; q.members.len()];
        for a in self
            .waiting
            .iter()
            .filter_map(|w| w.offer.as_ref())
            .flat_map(|o| o.pending.iter().chain(&o.offered))
        {
            if let Some(&i) = ix.position.get(a) {
                engaged[i] = true;
            }
        }
        let mut free: Vec<usize> = (0..q.members.len())
            .filter(|&i| {
                ix.views[i]
                    .as_ref()
                    .is_some_and(|v| v.available && v.blocked_until <= now)
                    && !engaged[i]
                    && ix.qualified[i]
            })
            .collect();
        let mut rr_last = self.rr_last.clone();
        let mut rand = rand;
        for w in self.waiting.iter().filter(|w| w.offer.is_none()) {
            if free.is_empty() {
                // nobody left for any later caller either
                break;
            }
            let waited = now.saturating_sub(w.joined_at);
            let pick = |honour_exclusions: bool| -> Vec<usize> {
                free.iter()
                    .copied()
                    .filter(|&i| {
                        let m = &q.members[i];
                        waited >= m.penalty_ms
                            && !(honour_exclusions && w.excluded.contains(&m.agent))
                    })
                    .collect()
            };
            let mut eligible = pick(true);
            if eligible.is_empty() && !w.excluded.is_empty() {
                // every free member already missed this call: try them again
                eligible = pick(false);
            }
            if w.callback {
                if !eligible.is_empty() {
                    out.push(Event {
                        at: now,
                        body: EventBody::QueueCallbackDue {
                            queue: self.id.clone(),
                            call: w.call.clone(),
                            caller: w.caller.clone(),
                            wait_ms: waited,
                        },
                    });
                }
                continue;
            }
            let Some(min_tier) = eligible.iter().map(|&i| q.members[i].tier).min() else {
                // no agent for this call; a later call may still have one (exclusions,
                // penalties), so keep looking
                continue;
            };
            eligible.retain(|&i| q.members[i].tier == min_tier);
            let chosen = select(q, &ix.views, &eligible, rr_last.as_ref(), rand);
            rand = splitmix64(rand);
            let candidates = MemberSet::from_positions(eligible.iter().copied());
            if q.strategy == Strategy::RoundRobin {
                rr_last = chosen.last().cloned();
            }
            free.retain(|&i| !chosen.contains(&q.members[i].agent));
            out.push(Event {
                at: now,
                body: EventBody::QueueRoutingDecision {
                    queue: self.id.clone(),
                    call: w.call.clone(),
                    strategy: q.strategy,
                    candidates,
                    chosen,
                    lease_until: now + DECISION_LEASE_MS,
                },
            });
        }
        out
    }

    /// Applies one of this queue's events.
    pub fn apply(&mut self, event: &Event) {
        self.seq += 1;
        let at = event.at;
        match &event.body {
            EventBody::QueueCallJoined {
                call,
                priority,
                caller,
                ..
            } => {
                let w = Waiting {
                    call: call.clone(),
                    priority: *priority,
                    caller: caller.clone(),
                    joined_at: at,
                    order: self.next_order,
                    excluded: Vec::new(),
                    offer: None,
                    callback: false,
                };
                self.next_order += 1;
                // service order: higher priority first, then join order
                let pos = self
                    .waiting
                    .iter()
                    .position(|x| x.priority < w.priority)
                    .unwrap_or(self.waiting.len());
                self.waiting.insert(pos, w);
            }
            EventBody::QueueCallLeft { call, .. }
            | EventBody::QueueCallAnswered { call, .. }
            | EventBody::QueueCallbackDue { call, .. } => {
                if let EventBody::QueueCallAnswered { .. } = &event.body {
                    self.answered += 1;
                    if let Some(last) = self.last_answer_at {
                        let gap = at.saturating_sub(last);
                        self.answer_interval_ms = Some(match self.answer_interval_ms {
                            Some(prev) => (prev * 7 + gap) / 8,
                            None => gap,
                        });
                    }
                    self.last_answer_at = Some(at);
                }
                self.waiting.retain(|w| &w.call != call);
            }
            EventBody::QueueRoutingDecision {
                call,
                chosen,
                lease_until,
                strategy,
                ..
            } => {
                if *strategy == Strategy::RoundRobin {
                    self.rr_last = chosen.last().cloned();
                }
                if let Some(w) = self.waiting.iter_mut().find(|w| &w.call == call) {
                    w.offer = Some(Offer {
                        pending: chosen.clone(),
                        offered: Vec::new(),
                        lease_until: *lease_until,
                    });
                }
            }
            EventBody::QueueReservationRefused { call, agent, .. } => {
                self.edit_offer(call, |o, _| o.pending.retain(|a| a != agent));
            }
            EventBody::QueueCallOffered { call, agent, .. } => {
                self.edit_offer(call, |o, _| {
                    o.pending.retain(|a| a != agent);
                    o.offered.push(agent.clone());
                });
            }
            EventBody::QueueOfferFailed { call, agent, .. } => {
                self.edit_offer(call, |o, excluded| {
                    o.pending.retain(|a| a != agent);
                    o.offered.retain(|a| a != agent);
                    if !excluded.contains(agent) {
                        excluded.push(agent.clone());
                    }
                });
            }
            EventBody::QueueDecisionExpired { call, agents, .. } => {
                self.edit_offer(call, |o, _| o.pending.retain(|a| !agents.contains(a)));
            }
            EventBody::QueueCallbackRequested { call, .. } => {
                if let Some(w) = self.waiting.iter_mut().find(|w| &w.call == call) {
                    w.callback = true;
                }
            }
            _ => {}
        }
    }

    fn edit_offer(&mut self, call: &CallId, f: impl FnOnce(&mut Offer, &mut Vec<AgentId>)) {
        if let Some(w) = self.waiting.iter_mut().find(|w| &w.call == call) {
            if let Some(o) = w.offer.as_mut() {
                f(o, &mut w.excluded);
                if o.is_empty() {
                    w.offer = None;
                }
            }
        }
    }
}

/// A deterministic pseudo-random step (SplitMix64), so random strategies need no RNG state.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Picks from eligible members (indices into `q.members`, in member order) by the queue's
/// strategy. Ring-all returns them all.
fn select(
    q: &QueueSetup,
    views: &[Option<AgentView>],
    eligible: &[usize],
    rr_last: Option<&AgentId>,
    rand: u64,
) -> Vec<AgentId> {
    let agent = |i: usize| q.members[i].agent.clone();
    // eligible members are those with a view; a missing one sorts last
    let idle = |i: usize| views[i].as_ref().map_or(TimeMs::MAX, |v| v.idle_since);
    let talk = |i: usize| views[i].as_ref().map_or(DurationMs::MAX, |v| v.talk_ms);
    let calls = |i: usize| views[i].as_ref().map_or(u32::MAX, |v| v.calls);
    let pick = match q.strategy {
        Strategy::RingAll => return eligible.iter().map(|&i| agent(i)).collect(),
        Strategy::LongestIdle => eligible.iter().copied().min_by_key(|&i| idle(i)),
        Strategy::LeastTalkTime => eligible.iter().copied().min_by_key(|&i| (talk(i), idle(i))),
        Strategy::FewestCalls => eligible
            .iter()
            .copied()
            .min_by_key(|&i| (calls(i), idle(i))),
        Strategy::Linear => eligible.first().copied(),
        Strategy::RoundRobin => {
            let last = rr_last.and_then(|a| q.members.iter().position(|m| &m.agent == a));
            match last {
                Some(l) => eligible
                    .iter()
                    .copied()
                    .find(|&i| i > l)
                    .or_else(|| eligible.first().copied()),
                None => eligible.first().copied(),
            }
        }
        Strategy::Random => eligible
            .get((rand % eligible.len().max(1) as u64) as usize)
            .copied(),
        Strategy::WeightedRandom => {
            let total: u64 = eligible
                .iter()
                .map(|&i| u64::from(q.members[i].weight.max(1)))
                .sum();
            let mut r = rand % total.max(1);
            eligible.iter().copied().find(|&i| {
                let w = u64::from(q.members[i].weight.max(1));
                if r < w {
                    true
                } else {
                    r -= w;
                    false
                }
            })
        }
    };
    pick.map(agent).into_iter().collect()
}
