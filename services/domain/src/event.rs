//! Events: the facts every aggregate records. State is the fold of its events (`apply`).

use std::sync::Arc;

use crate::ids::{AgentId, CallId, DeviceId, DurationMs, MenuId, QueueId, ReasonCode, TimeMs};
use crate::setup::{Strategy, Target};

/// Which aggregate an event belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AggregateRef {
    /// An agent.
    Agent(AgentId),
    /// A queue.
    Queue(QueueId),
    /// A call.
    Call(CallId),
}

impl AggregateRef {
    /// `agent`, `queue` or `call`.
    pub fn kind(&self) -> &'static str {
        match self {
            AggregateRef::Agent(_) => "agent",
            AggregateRef::Queue(_) => "queue",
            AggregateRef::Call(_) => "call",
        }
    }
    /// The aggregate's id as text.
    pub fn id(&self) -> &str {
        match self {
            AggregateRef::Agent(a) => a.as_str(),
            AggregateRef::Queue(q) => q.as_str(),
            AggregateRef::Call(c) => c.as_str(),
        }
    }
}

/// Why an offer to an agent did not become a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OfferFailure {
    /// Rang out (ring timeout, 480, 408).
    NoAnswer,
    /// The agent's phone answered busy (486).
    Busy,
    /// The agent rejected the offer (603).
    Rejected,
    /// The device could not be reached.
    Unreachable,
    /// Nobody reported on the offer before its lease ran out (A5).
    Expired,
    /// The agent could not be reserved (no longer available).
    NotAvailable,
}

impl OfferFailure {
    /// A stable name.
    pub fn name(self) -> &'static str {
        match self {
            OfferFailure::NoAnswer => "no_answer",
            OfferFailure::Busy => "busy",
            OfferFailure::Rejected => "rejected",
            OfferFailure::Unreachable => "unreachable",
            OfferFailure::Expired => "expired",
            OfferFailure::NotAvailable => "not_available",
        }
    }
}

/// Who ended a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndCause {
    /// The caller hung up.
    Caller,
    /// The agent hung up.
    Agent,
    /// The routing plan hung up (cause given).
    Router(Arc<str>),
    /// The SIP edge stopped reporting on the call (A5 repair).
    EdgeLost,
    /// An outbound call's customer was not reached: the result of the map in
    /// [`crate::dial_result`] (`busy`, `no_answer`, `rejected`, `invalid_number`,
    /// `carrier_error`).
    Dial(Arc<str>),
}

impl EndCause {
    /// A stable name.
    pub fn name(&self) -> &str {
        match self {
            EndCause::Caller => "caller",
            EndCause::Agent => "agent",
            EndCause::Router(c) => c,
            EndCause::EdgeLost => "edge_lost",
            EndCause::Dial(c) => c,
        }
    }
}

/// A side of a call: who put it on hold (C5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Party {
    /// The caller.
    Caller,
    /// The agent talking to the caller.
    Agent,
}

impl Party {
    /// A stable name.
    pub fn name(self) -> &'static str {
        match self {
            Party::Caller => "caller",
            Party::Agent => "agent",
        }
    }
}

/// Why a call went to a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteReason {
    /// The number's first step.
    Number,
    /// A menu choice.
    MenuChoice(char),
    /// No digit before the menu's last timeout.
    MenuTimeout,
    /// An invalid digit on the menu's last attempt.
    MenuInvalid,
    /// A queue sent the call to its overflow target.
    Overflow,
    /// Nobody answered (group, extension, agent).
    NoAnswer,
    /// The plan walked too many steps.
    Loop,
    /// The agent on the call transferred it (C5).
    Transfer,
    /// The caller is on the tenant's blocklist (R7): the call ends at once, with the cause
    /// [`crate::CAUSE_BLOCKED`].
    Blocked,
    /// A click-to-call rings its agent first (C1).
    ClickToCall,
    /// An agent's phone dialled out: the agent's leg is the phone's own (issue 18).
    Dialled,
    /// An agent's phone dialled an extension or a number of the tenant (an internal call).
    Internal,
    /// A campaign's call was answered: it waits in the campaign's queue (issue 19).
    Campaign,
}

/// A campaign's call to one of its contacts (issue 19): dialled customer first, then queued
/// for the campaign's agents.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CampaignCall {
    /// The campaign.
    pub campaign: Arc<str>,
    /// The contact, in the campaign.
    pub contact: u64,
    /// The contact's attempt number.
    pub attempt: u32,
    /// The queue an answered call waits in for the campaign's agents.
    pub queue: QueueId,
    /// How long the customer may ring (≥ 15 s, D3).
    pub ring_timeout_ms: DurationMs,
}

/// Why a queue refused a call or a waiting call left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaveReason {
    /// The queue was full (max length).
    Full,
    /// No member was logged in (join/leave rules).
    NoAgents,
    /// The call waited longer than the queue's max wait.
    Timeout,
    /// The caller hung up while waiting.
    Abandoned,
}

impl LeaveReason {
    /// A stable name.
    pub fn name(self) -> &'static str {
        match self {
            LeaveReason::Full => "full",
            LeaveReason::NoAgents => "no_agents",
            LeaveReason::Timeout => "timeout",
            LeaveReason::Abandoned => "abandoned",
        }
    }
}

/// What an agent was doing when its lease expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseKind {
    /// Reserved or ringing for a call.
    Offer,
    /// On a call that nothing reported on for too long.
    Call,
}

/// An event with the time it happened.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// When it happened (ms).
    pub at: TimeMs,
    /// What happened.
    pub body: EventBody,
}

/// A set of a queue's members by position in its member list (the list of the plan version
/// the event was decided under): one bit per member, so a decision among 1,500 free agents
/// says exactly who was considered in 188 bytes instead of 1,500 names (R10).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberSet {
    bits: Vec<u8>,
}

impl MemberSet {
    /// The set of these member positions.
    pub fn from_positions(positions: impl IntoIterator<Item = usize>) -> MemberSet {
        let mut bits = Vec::new();
        for i in positions {
            if bits.len() <= i / 8 {
                bits.resize(i / 8 + 1, 0);
            }
            bits[i / 8] |= 1 << (i % 8);
        }
        MemberSet { bits }
    }

    /// From its wire form (bit i of byte i/8, least significant first).
    pub fn from_bytes(bytes: &[u8]) -> MemberSet {
        let mut bits = bytes.to_vec();
        while bits.last() == Some(&0) {
            bits.pop();
        }
        MemberSet { bits }
    }

    /// Its wire form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }

    /// Whether member position `i` is in the set.
    pub fn contains(&self, i: usize) -> bool {
        self.bits
            .get(i / 8)
            .is_some_and(|b| b & (1 << (i % 8)) != 0)
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// Empty.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|b| *b == 0)
    }

    /// The positions, ascending.
    pub fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.bits.len() * 8).filter(|&i| self.contains(i))
    }

    /// The agents at these positions of `members` (the queue's list at the event's plan
    /// version); positions past its end are skipped.
    pub fn agents(&self, members: &[crate::setup::Member]) -> Vec<AgentId> {
        self.positions()
            .filter_map(|i| members.get(i).map(|m| m.agent.clone()))
            .collect()
    }
}

/// Every event of every aggregate.
#[derive(Clone, Debug, PartialEq)]
pub enum EventBody {
    // ---- agent ----
    /// The agent logged in with these devices.
    AgentLoggedIn {
        /// Agent.
        agent: AgentId,
        /// Devices that will ring.
        devices: Vec<DeviceId>,
        /// Not ready with this reason after login; `None` = available.
        not_ready: Option<ReasonCode>,
    },
    /// The agent logged out.
    AgentLoggedOut {
        /// Agent.
        agent: AgentId,
    },
    /// The agent made itself available.
    AgentAvailable {
        /// Agent.
        agent: AgentId,
    },
    /// The agent went not ready with a reason (asked, or after missed offers).
    AgentNotReady {
        /// Agent.
        agent: AgentId,
        /// Reason code.
        reason: ReasonCode,
    },
    /// The agent was reserved for a call (A5: with a lease).
    AgentReserved {
        /// Agent.
        agent: AgentId,
        /// Call.
        call: CallId,
        /// The queue that asked, if any.
        queue: Option<QueueId>,
        /// Devices to ring.
        devices: Vec<DeviceId>,
        /// Ring timeout of the offer.
        ring_timeout_ms: DurationMs,
        /// The reservation is repaired after this time.
        lease_until: TimeMs,
        /// For a call out reserving a not-ready agent (C1): the reason it returns to after
        /// the call, instead of available.
        resume: Option<ReasonCode>,
    },
    /// The agent's phone rings.
    AgentRinging {
        /// Agent.
        agent: AgentId,
        /// Call.
        call: CallId,
        /// Renewed lease.
        lease_until: TimeMs,
    },
    /// The agent answered.
    AgentAnswered {
        /// Agent.
        agent: AgentId,
        /// Call.
        call: CallId,
        /// On-call lease.
        lease_until: TimeMs,
        /// Held on an internal call its own phone placed while not ready: the reason it
        /// returns to when the call ends.
        resume: Option<ReasonCode>,
    },
    /// An offer failed (no answer, busy, rejected): the agent is blocked for a while, and
    /// goes not ready after too many misses in a row (A3).
    AgentOfferMissed {
        /// Agent.
        agent: AgentId,
        /// Call.
        call: CallId,
        /// Why.
        cause: OfferFailure,
        /// Misses in a row including this one.
        missed_in_row: u32,
        /// No offers until then.
        blocked_until: TimeMs,
        /// The miss limit was reached: the agent is now not ready (`missed_offers`).
        not_ready: bool,
    },
    /// The offer was withdrawn (another agent answered, or the caller left).
    AgentOfferCancelled {
        /// Agent.
        agent: AgentId,
        /// Call.
        call: CallId,
    },
    /// The agent's call ended.
    AgentCallEnded {
        /// Agent.
        agent: AgentId,
        /// Call.
        call: CallId,
        /// Talk time of this call.
        talk_ms: DurationMs,
        /// Wrap-up until then (`None`: available at once).
        wrapup_until: Option<TimeMs>,
    },
    /// Wrap-up is over; the agent is available.
    AgentWrapUpEnded {
        /// Agent.
        agent: AgentId,
    },
    /// A lease ran out and was repaired: the agent is available again (A5).
    AgentLeaseExpired {
        /// Agent.
        agent: AgentId,
        /// The call it was held for.
        call: CallId,
        /// What kind of lease.
        kind: LeaseKind,
    },

    // ---- queue ----
    /// A call joined the queue.
    QueueCallJoined {
        /// Queue.
        queue: QueueId,
        /// Call.
        call: CallId,
        /// Higher first.
        priority: u32,
        /// Calling number.
        caller: Arc<str>,
    },
    /// A call was not let in, or left without being answered.
    QueueCallLeft {
        /// Queue.
        queue: QueueId,
        /// Call.
        call: CallId,
        /// Why.
        reason: LeaveReason,
        /// How long it waited.
        wait_ms: DurationMs,
        /// Where it goes now (not for abandoned calls).
        overflow: Option<Target>,
        /// Agents whose offers are withdrawn.
        released: Vec<AgentId>,
    },
    /// A routing decision (R10): who was considered, by which strategy, who was chosen.
    QueueRoutingDecision {
        /// Queue.
        queue: QueueId,
        /// Call.
        call: CallId,
        /// Strategy used.
        strategy: Strategy,
        /// Eligible members considered (after skills, tiers, penalties, exclusions), as a set
        /// of positions in the queue's member list of the event's plan version:
        /// [`MemberSet::agents`] names them.
        candidates: MemberSet,
        /// The chosen agent (several for ring-all).
        chosen: Vec<AgentId>,
        /// The decision is repaired if no reservation answer comes by then.
        lease_until: TimeMs,
    },
    /// The chosen agent could not be reserved (no longer available).
    QueueReservationRefused {
        /// Queue.
        queue: QueueId,
        /// Call.
        call: CallId,
        /// Agent.
        agent: AgentId,
    },
    /// The agent is reserved; the call is offered to it.
    QueueCallOffered {
        /// Queue.
        queue: QueueId,
        /// Call.
        call: CallId,
        /// Agent.
        agent: AgentId,
        /// Its devices.
        devices: Vec<DeviceId>,
        /// Ring timeout.
        ring_timeout_ms: DurationMs,
        /// Ring-all: other agents may be offered the same call.
        ring_all: bool,
    },
    /// An offer failed; the call keeps its place and that agent is skipped for it.
    QueueOfferFailed {
        /// Queue.
        queue: QueueId,
        /// Call.
        call: CallId,
        /// Agent.
        agent: AgentId,
        /// Why.
        cause: OfferFailure,
    },
    /// The call was answered and leaves the queue.
    QueueCallAnswered {
        /// Queue.
        queue: QueueId,
        /// Call.
        call: CallId,
        /// Agent.
        agent: AgentId,
        /// Time in queue.
        wait_ms: DurationMs,
    },
    /// The caller asked for a callback: the entry keeps its place (R4).
    QueueCallbackRequested {
        /// Queue.
        queue: QueueId,
        /// Call.
        call: CallId,
    },
    /// A callback entry reached its turn with an agent free: it leaves the queue and the
    /// callback is due (the dialer places it).
    QueueCallbackDue {
        /// Queue.
        queue: QueueId,
        /// Call.
        call: CallId,
        /// The number to call back.
        caller: Arc<str>,
        /// How long the entry waited.
        wait_ms: DurationMs,
    },
    /// A routing decision got no reservation answer in time and was dropped (A5).
    QueueDecisionExpired {
        /// Queue.
        queue: QueueId,
        /// Call.
        call: CallId,
        /// Agents that were being reserved.
        agents: Vec<AgentId>,
    },

    // ---- call ----
    /// A call arrived at a number.
    CallArrived {
        /// Call.
        call: CallId,
        /// The number dialled.
        number: Arc<str>,
        /// The calling number.
        caller: Arc<str>,
        /// Routing-plan version the call runs (R9).
        plan_version: u64,
        /// Whether it is recorded (C4).
        record: bool,
        /// An internal call: the agent whose phone placed it, held on it until it ends.
        from_agent: Option<AgentId>,
    },
    /// An outbound call was placed (C1 click-to-call, an agent's phone, or a campaign's call
    /// to a contact): the router's decisions, made before the edge dials anything
    /// (docs/DECISIONS.md, "Outbound calls: the shape").
    CallOriginated {
        /// Call.
        call: CallId,
        /// The agent whose phone rings first and who talks to the customer; none for a
        /// campaign's call, which dials the customer first.
        agent: Option<AgentId>,
        /// The destination as given (by the CRM, the agent).
        dialled: Arc<str>,
        /// What goes to the trunk: E.164 for a public number, the digits of a service number.
        destination: Arc<str>,
        /// The destination's class (`mobile`, `national`, `emergency`, ...).
        class: Arc<str>,
        /// The tenant's number the customer sees (E.164); empty for an emergency call of a
        /// tenant without a carrier number (the trunk's own identity is presented).
        number: Arc<str>,
        /// Why that number (`forced`, `same_carrier`, `fallback`, `first_usable`,
        /// `emergency`).
        choice: Arc<str>,
        /// The trunks to try, in order.
        trunks: Vec<Arc<str>>,
        /// The caller-supplied correlation id (a CRM record), echoed in the call's record.
        correlation: Option<Arc<str>>,
        /// Routing-plan version the call runs (R9).
        plan_version: u64,
        /// Whether it is recorded (C4, the number's `record_outbound`).
        record: bool,
        /// The carrier of the number presented (its configured carrier, whose trunks carry
        /// the call), when it has one.
        carrier: Option<Arc<str>>,
        /// A campaign's call (issue 19): the customer is dialled first and, answered, waits
        /// in the campaign's queue for an agent.
        campaign: Option<CampaignCall>,
    },
    /// An outbound call's attempt on a trunk failed with this SIP status: the next trunk is
    /// tried (N3), unless the `CallEnded` of the call's dial result follows at once.
    CallTrunkFailed {
        /// Call.
        call: CallId,
        /// The trunk.
        trunk: Arc<str>,
        /// The SIP status it answered (408 for no answer at all).
        sip_code: u16,
    },
    /// An outbound call's customer is ringing (180/183).
    CallCustomerRinging {
        /// Call.
        call: CallId,
        /// The trunk carrying it.
        trunk: Arc<str>,
    },
    /// An outbound call's customer answered: talk time starts.
    CallCustomerAnswered {
        /// Call.
        call: CallId,
        /// The trunk carrying it.
        trunk: Arc<str>,
    },
    /// The call goes to a step.
    CallRouted {
        /// Call.
        call: CallId,
        /// The step.
        target: Target,
        /// Why.
        reason: RouteReason,
        /// For agent, extension and group steps: the agents to ring.
        ring: Vec<AgentId>,
        /// Ring timeout (agent, extension, group) or digit timeout (menu).
        timeout_ms: DurationMs,
    },
    /// A menu is played again after a timeout or an invalid digit.
    CallMenuRetry {
        /// Call.
        call: CallId,
        /// Menu.
        menu: MenuId,
        /// Attempt number (1 = first retry).
        attempt: u32,
        /// The digit that was invalid, if any.
        invalid: Option<char>,
    },
    /// The call is offered to an agent: ring these devices.
    CallOffered {
        /// Call.
        call: CallId,
        /// Agent.
        agent: AgentId,
        /// Devices.
        devices: Vec<DeviceId>,
        /// Ring timeout.
        ring_timeout_ms: DurationMs,
        /// The queue it came from.
        queue: Option<QueueId>,
        /// The offer is repaired after this time.
        lease_until: TimeMs,
    },
    /// The agent on the call handed it on (blind transfer, C5): the agent's part of the call
    /// is over (wrap-up follows) and a `CallRouted` with reason `Transfer` follows at once.
    CallTransferred {
        /// Call.
        call: CallId,
        /// The agent who transferred it.
        agent: AgentId,
        /// Where it goes.
        target: Target,
        /// The wrap-up the agent gets for its part (as `CallEnded`'s).
        wrapup_ms: DurationMs,
    },
    /// The edge records the call into this file (C4).
    CallRecordingStarted {
        /// Call.
        call: CallId,
        /// Path of the recording on the edge.
        path: Arc<str>,
    },
    /// The call, talking to `agent`, was put on hold by `by` (a re-INVITE from that side).
    CallHeld {
        /// Call.
        call: CallId,
        /// The agent on the call.
        agent: AgentId,
        /// Who holds.
        by: Party,
    },
    /// `by` took the call off hold. A call ended or transferred while held has no
    /// `CallResumed`: its hold ends with it.
    CallResumed {
        /// Call.
        call: CallId,
        /// The agent on the call.
        agent: AgentId,
        /// Who held.
        by: Party,
    },
    /// The agent's phone rings.
    CallRinging {
        /// Call.
        call: CallId,
        /// Agent.
        agent: AgentId,
    },
    /// The agent answered: bridge; other offers are withdrawn.
    CallAnswered {
        /// Call.
        call: CallId,
        /// Agent.
        agent: AgentId,
        /// The queue it came from.
        queue: Option<QueueId>,
        /// Other agents whose offers are withdrawn (ring-all).
        cancelled: Vec<AgentId>,
    },
    /// An offer failed.
    CallOfferFailed {
        /// Call.
        call: CallId,
        /// Agent.
        agent: AgentId,
        /// Why.
        cause: OfferFailure,
        /// The queue it came from.
        queue: Option<QueueId>,
    },
    /// The caller asked for a callback while queued.
    CallCallbackRequested {
        /// Call.
        call: CallId,
        /// Queue.
        queue: QueueId,
    },
    /// The call ended.
    CallEnded {
        /// Call.
        call: CallId,
        /// Who ended it.
        cause: EndCause,
        /// The agent it was talking to.
        agent: Option<AgentId>,
        /// Wrap-up the agent gets.
        wrapup_ms: DurationMs,
        /// The queue it was waiting in, if it was.
        queue: Option<QueueId>,
        /// Agents whose offers are withdrawn.
        cancelled: Vec<AgentId>,
        /// An internal call: the agent whose phone placed it, released.
        from_agent: Option<AgentId>,
    },
}

impl EventBody {
    /// The aggregate this event belongs to.
    pub fn aggregate(&self) -> AggregateRef {
        use EventBody::*;
        match self {
            AgentLoggedIn { agent, .. }
            | AgentLoggedOut { agent }
            | AgentAvailable { agent }
            | AgentNotReady { agent, .. }
            | AgentReserved { agent, .. }
            | AgentRinging { agent, .. }
            | AgentAnswered { agent, .. }
            | AgentOfferMissed { agent, .. }
            | AgentOfferCancelled { agent, .. }
            | AgentCallEnded { agent, .. }
            | AgentWrapUpEnded { agent }
            | AgentLeaseExpired { agent, .. } => AggregateRef::Agent(agent.clone()),
            QueueCallJoined { queue, .. }
            | QueueCallLeft { queue, .. }
            | QueueRoutingDecision { queue, .. }
            | QueueReservationRefused { queue, .. }
            | QueueCallOffered { queue, .. }
            | QueueOfferFailed { queue, .. }
            | QueueCallAnswered { queue, .. }
            | QueueCallbackRequested { queue, .. }
            | QueueCallbackDue { queue, .. }
            | QueueDecisionExpired { queue, .. } => AggregateRef::Queue(queue.clone()),
            CallArrived { call, .. }
            | CallOriginated { call, .. }
            | CallTrunkFailed { call, .. }
            | CallCustomerRinging { call, .. }
            | CallCustomerAnswered { call, .. }
            | CallRouted { call, .. }
            | CallMenuRetry { call, .. }
            | CallOffered { call, .. }
            | CallRinging { call, .. }
            | CallRecordingStarted { call, .. }
            | CallHeld { call, .. }
            | CallResumed { call, .. }
            | CallTransferred { call, .. }
            | CallAnswered { call, .. }
            | CallOfferFailed { call, .. }
            | CallCallbackRequested { call, .. }
            | CallEnded { call, .. } => AggregateRef::Call(call.clone()),
        }
    }

    /// A stable snake_case name of the event type.
    pub fn name(&self) -> &'static str {
        use EventBody::*;
        match self {
            AgentLoggedIn { .. } => "agent_logged_in",
            AgentLoggedOut { .. } => "agent_logged_out",
            AgentAvailable { .. } => "agent_available",
            AgentNotReady { .. } => "agent_not_ready",
            AgentReserved { .. } => "agent_reserved",
            AgentRinging { .. } => "agent_ringing",
            AgentAnswered { .. } => "agent_answered",
            AgentOfferMissed { .. } => "agent_offer_missed",
            AgentOfferCancelled { .. } => "agent_offer_cancelled",
            AgentCallEnded { .. } => "agent_call_ended",
            AgentWrapUpEnded { .. } => "agent_wrap_up_ended",
            AgentLeaseExpired { .. } => "agent_lease_expired",
            QueueCallJoined { .. } => "queue_call_joined",
            QueueCallLeft { .. } => "queue_call_left",
            QueueRoutingDecision { .. } => "queue_routing_decision",
            QueueReservationRefused { .. } => "queue_reservation_refused",
            QueueCallOffered { .. } => "queue_call_offered",
            QueueOfferFailed { .. } => "queue_offer_failed",
            QueueCallAnswered { .. } => "queue_call_answered",
            QueueCallbackRequested { .. } => "queue_callback_requested",
            QueueCallbackDue { .. } => "queue_callback_due",
            QueueDecisionExpired { .. } => "queue_decision_expired",
            CallArrived { .. } => "call_arrived",
            CallOriginated { .. } => "call_originated",
            CallTrunkFailed { .. } => "call_trunk_failed",
            CallCustomerRinging { .. } => "call_customer_ringing",
            CallCustomerAnswered { .. } => "call_customer_answered",
            CallRouted { .. } => "call_routed",
            CallMenuRetry { .. } => "call_menu_retry",
            CallOffered { .. } => "call_offered",
            CallRinging { .. } => "call_ringing",
            CallRecordingStarted { .. } => "call_recording_started",
            CallHeld { .. } => "call_held",
            CallResumed { .. } => "call_resumed",
            CallTransferred { .. } => "call_transferred",
            CallAnswered { .. } => "call_answered",
            CallOfferFailed { .. } => "call_offer_failed",
            CallCallbackRequested { .. } => "call_callback_requested",
            CallEnded { .. } => "call_ended",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MemberSet;

    #[test]
    fn member_sets_keep_exact_positions_in_one_bit_each() {
        let s = MemberSet::from_positions([0, 3, 9, 1499]);
        assert_eq!(s.positions().collect::<Vec<_>>(), vec![0, 3, 9, 1499]);
        assert_eq!(s.len(), 4);
        assert_eq!(s.as_bytes().len(), 188);
        assert!(s.contains(9) && !s.contains(8) && !s.contains(5000));
        assert_eq!(MemberSet::from_bytes(s.as_bytes()), s);
        // trailing zero bytes on the wire do not make a different set
        let mut padded = s.as_bytes().to_vec();
        padded.extend([0, 0]);
        assert_eq!(MemberSet::from_bytes(&padded), s);
        assert!(MemberSet::from_positions([]).is_empty());
        let all = MemberSet::from_positions(0..1500);
        assert_eq!((all.len(), all.as_bytes().len()), (1500, 188));
    }
}
