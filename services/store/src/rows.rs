//! The rows of every projection. Plain data (strings, integers): the store knows nothing of
//! the domain's types, only what supervisors and reports read.
//!
//! Every row records the log position it reflects ([`Position`]): the projector applies an
//! event to a row only if the event comes after it, so replaying any range of the log twice
//! changes nothing (docs/DECISIONS.md, "Projections").

use serde::{Deserialize, Serialize};

/// A position in the event log: partition and offset of the last event a row reflects.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Position {
    /// Partition of the events topic (every event of a tenant is in one).
    pub partition: u32,
    /// Offset of the event.
    pub offset: u64,
}

/// Figures of a queue or an agent over a span of time: a 15-minute interval (H3, H5) or, for
/// a queue's live view, today. The one definition of every metric, live and historical.
///
/// Attribution: a call's figures (offered, answered, abandoned, wait, talk, wrap-up) count in
/// the interval the call joined the queue (queue rows) or was answered by the agent (agent
/// rows), so that offered = answered + abandoned + overflowed + callbacks + waiting within an
/// interval; agent time in each state is split exactly over the intervals it spans.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Calls that joined the queue (queue rows) or were offered to the agent (agent rows).
    pub offered: u64,
    /// Answered by an agent.
    pub answered: u64,
    /// Answered with a wait of at most the service-level threshold.
    pub answered_within: u64,
    /// The caller hung up after waiting at most the threshold.
    pub abandoned_short: u64,
    /// The caller hung up after waiting longer than the threshold.
    pub abandoned_long: u64,
    /// Left the queue otherwise: max wait reached, queue full, no agent logged in.
    pub overflowed: u64,
    /// Left the queue for a callback (R4).
    pub callbacks: u64,
    /// Offers to the agent that failed (no answer, busy, rejected, unreachable, expired).
    pub missed: u64,
    /// Sum of the waits of answered calls (ASA = this / answered).
    pub wait_answered_ms: u64,
    /// The longest wait of any call that left the queue, answered or not.
    pub max_wait_ms: u64,
    /// Calls whose talk ended (AHT's denominator).
    pub handled: u64,
    /// Talk time of handled calls (connected, holds excepted).
    pub talk_ms: u64,
    /// Time handled calls spent on hold by the agent.
    pub hold_ms: u64,
    /// Wrap-up time after handled calls.
    pub wrapup_ms: u64,
    /// Agent time available (idle, waiting for a call).
    pub available_ms: u64,
    /// Agent time reserved or ringing.
    pub ringing_ms: u64,
    /// Agent time on a call.
    pub on_call_ms: u64,
    /// Agent time in wrap-up.
    pub wrap_up_state_ms: u64,
    /// Agent time not ready (any reason).
    pub not_ready_ms: u64,
}

impl Stats {
    /// Service level, percent: answered within the threshold over answered plus abandoned
    /// after it (calls abandoned within the threshold do not count against it); `None`
    /// without such calls.
    pub fn service_level_pct(&self) -> Option<f64> {
        let base = self.answered + self.abandoned_long;
        (base > 0).then(|| 100.0 * self.answered_within as f64 / base as f64)
    }

    /// Average speed of answer, ms.
    pub fn asa_ms(&self) -> Option<u64> {
        (self.answered > 0).then(|| self.wait_answered_ms / self.answered)
    }

    /// Average handle time (talk + hold + wrap-up per handled call), ms.
    pub fn aht_ms(&self) -> Option<u64> {
        (self.handled > 0).then(|| (self.talk_ms + self.hold_ms + self.wrapup_ms) / self.handled)
    }

    /// Abandoned calls (short and long).
    pub fn abandoned(&self) -> u64 {
        self.abandoned_short + self.abandoned_long
    }

    /// Occupancy, percent: time on calls and in wrap-up over the time staffed and ready
    /// (available, ringing, on a call, wrap-up; not-ready time excluded).
    pub fn occupancy_pct(&self) -> Option<f64> {
        let busy = self.on_call_ms + self.wrap_up_state_ms;
        let staffed = busy + self.available_ms + self.ringing_ms;
        (staffed > 0).then(|| 100.0 * busy as f64 / staffed as f64)
    }

    /// Adds `other` (sums; the longest wait is the larger).
    pub fn add(&mut self, o: &Stats) {
        self.offered += o.offered;
        self.answered += o.answered;
        self.answered_within += o.answered_within;
        self.abandoned_short += o.abandoned_short;
        self.abandoned_long += o.abandoned_long;
        self.overflowed += o.overflowed;
        self.callbacks += o.callbacks;
        self.missed += o.missed;
        self.wait_answered_ms += o.wait_answered_ms;
        self.max_wait_ms = self.max_wait_ms.max(o.max_wait_ms);
        self.handled += o.handled;
        self.talk_ms += o.talk_ms;
        self.hold_ms += o.hold_ms;
        self.wrapup_ms += o.wrapup_ms;
        self.available_ms += o.available_ms;
        self.ringing_ms += o.ringing_ms;
        self.on_call_ms += o.on_call_ms;
        self.wrap_up_state_ms += o.wrap_up_state_ms;
        self.not_ready_ms += o.not_ready_ms;
    }
}

/// The configuration the projector needs of a tenant (from its latest `TenantConfigured`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRow {
    /// Tenant id.
    pub tenant: String,
    /// Configuration version.
    pub version: u64,
    /// The tenant file, as logged.
    pub yaml: String,
    /// Position reflected.
    pub pos: Position,
}

/// A call waiting in a queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// Call id.
    pub call: String,
    /// When it joined the queue (ms since the epoch).
    pub since_ms: u64,
}

/// Agents of a queue per state (S1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCounts {
    /// Logged out.
    pub logged_out: u32,
    /// Available.
    pub available: u32,
    /// Reserved or ringing.
    pub ringing: u32,
    /// On a call.
    pub on_call: u32,
    /// In wrap-up.
    pub wrap_up: u32,
    /// Not ready.
    pub not_ready: u32,
}

/// Live view of a queue (S1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueView {
    /// Tenant id.
    pub tenant: String,
    /// Queue id.
    pub queue: String,
    /// Calls waiting, longest first.
    pub waiting: Vec<Waiting>,
    /// Member agents per state.
    pub agents: AgentCounts,
    /// Start of the tenant's current day (local midnight, ms since the epoch).
    pub day_start_ms: u64,
    /// Today's figures (calls that joined today).
    pub today: Stats,
    /// Position reflected.
    pub pos: Position,
}

/// Live view of an agent (S1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentView {
    /// Tenant id.
    pub tenant: String,
    /// Agent id.
    pub agent: String,
    /// `logged_out`, `available`, `not_ready`, `reserved`, `ringing`, `on_call`, `wrap_up`.
    pub state: String,
    /// Not-ready reason.
    pub reason: String,
    /// The call it is reserved for, ringing for or talking on.
    pub call: String,
    /// Since when (ms since the epoch).
    pub since_ms: u64,
    /// The queue of the current or last call ("" when it came from no queue).
    pub queue: String,
    /// When the current or last call was answered (0: none).
    pub answered_ms: u64,
    /// When the current or last call joined its queue (0: none).
    pub queued_ms: u64,
    /// The call whose wrap-up is running, if any.
    pub wrapup_call: String,
    /// When the agent put its current call on hold (0: not on hold).
    #[serde(default)]
    pub hold_since_ms: u64,
    /// Hold time of the current or last call so far (holds that ended).
    #[serde(default)]
    pub hold_ms: u64,
    /// The not-ready reason the agent returns to when the call it is on (one it placed from
    /// not ready) is over ("" = available).
    #[serde(default)]
    pub resume: String,
    /// Log offset of the event that started the current state (key of its history row).
    pub state_offset: u64,
    /// Position reflected.
    pub pos: Position,
}

/// An offer of a call that is ringing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offering {
    /// The agent.
    pub agent: String,
    /// The offer's number ([`OfferRecord::seq`]).
    pub seq: u32,
}

/// Live view of a call (S1), and what its call record is built from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallView {
    /// Tenant id.
    pub tenant: String,
    /// Call id.
    pub call: String,
    /// `routing`, `menu`, `queued`, `ringing`, `talking`, `held` (by the agent), `callback`,
    /// `ended`.
    pub state: String,
    /// Since when (ms since the epoch).
    pub since_ms: u64,
    /// The number dialled.
    pub number: String,
    /// The calling number.
    pub caller: String,
    /// Routing-plan version (R9).
    pub plan_version: u64,
    /// When it arrived.
    pub arrived_ms: u64,
    /// The queue it is (or was last) in.
    pub queue: String,
    /// When it joined that queue (0: never queued).
    pub queued_ms: u64,
    /// The agent talking to it (or who did).
    pub agent: String,
    /// Offers ringing now.
    pub ringing: Vec<Offering>,
    /// When the first agent started ringing for the current queue or step (0: none).
    pub first_ring_ms: u64,
    /// When an agent answered (the last answer, if it was transferred; 0: not yet).
    pub answered_ms: u64,
    /// When the current agent answered (0: no agent on the call now).
    #[serde(default)]
    pub talking_since_ms: u64,
    /// Time connected to agents in parts that ended (transferred away), holds included.
    #[serde(default)]
    pub connected_ms: u64,
    /// When the agent put the call on hold (0: not on hold by the agent).
    #[serde(default)]
    pub hold_since_ms: u64,
    /// Time on hold by agents, holds that ended.
    #[serde(default)]
    pub hold_ms: u64,
    /// When the caller put the call on hold (0: not on hold by the caller). A caller's hold
    /// is shown, not counted: it stays talk time.
    #[serde(default)]
    pub caller_hold_since_ms: u64,
    /// How long it waited in its queue (set when it left the queue).
    pub wait_ms: u64,
    /// When it ended (0: not yet).
    pub ended_ms: u64,
    /// `answered`, `abandoned`, `overflow`, `callback`, `ended` (no agent, not queued), or ""
    /// while in progress.
    pub result: String,
    /// Who or what ended it (`caller`, `agent`, `edge_lost`, a routing cause).
    pub end_cause: String,
    /// Offers made so far (the next offer row's number is this + 1).
    pub offers: u32,
    /// Recording file, if recorded.
    pub recording: String,
    /// `inbound`, or `outbound` for a call an agent placed (C1); "" reads as inbound.
    #[serde(default)]
    pub direction: String,
    /// A call out's caller-supplied correlation id.
    #[serde(default)]
    pub correlation: String,
    /// A call out's trunk: the one that answered, or the last one tried.
    #[serde(default)]
    pub trunk: String,
    /// A call out's SIP status: 200 when answered, else the last attempt's failure.
    #[serde(default)]
    pub sip_code: u32,
    /// A call out's carrier: the configured carrier of the number presented.
    #[serde(default)]
    pub carrier: String,
    /// Position reflected.
    pub pos: Position,
}

/// A call detail record (C3, H1), written when the call ends; its wrap-up is added when the
/// agent's wrap-up ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Tenant id.
    pub tenant: String,
    /// Local date of arrival, `YYYY-MM-DD` in the tenant's time zone.
    pub day: String,
    /// Call id.
    pub call: String,
    /// `inbound`, or `outbound` (C1: an agent placed it; `number` is then the tenant's
    /// number presented, `caller` the customer dialled, `agent` the agent who placed it).
    pub direction: String,
    /// Number dialled (outbound: the tenant's number presented).
    pub number: String,
    /// Calling number (outbound: the customer dialled).
    pub caller: String,
    /// Queue (last one it waited in), "" if none.
    pub queue: String,
    /// The agent who answered, "" if none.
    pub agent: String,
    /// Arrival (ms since the epoch).
    pub start_ms: u64,
    /// End (ms since the epoch).
    pub end_ms: u64,
    /// Time in the (last) queue; 0 if never queued.
    pub wait_ms: u64,
    /// Time agents rang before the answer (or before it ended unanswered).
    pub ring_ms: u64,
    /// Talk time: connected to agents, holds excepted (every agent's part of a transferred
    /// call).
    pub talk_ms: u64,
    /// Time on hold by agents (C5).
    pub hold_ms: u64,
    /// The answering agent's wrap-up time (0 until it ends).
    pub wrapup_ms: u64,
    /// `answered`, `abandoned`, `overflow`, `callback`, `ended`.
    pub result: String,
    /// Who or what ended it.
    pub end_cause: String,
    /// Offers made (rows of [`OfferRecord`]).
    pub offers: u32,
    /// Routing-plan version.
    pub plan_version: u64,
    /// Recording file, "" if none.
    pub recording: String,
    /// A call out's caller-supplied correlation id (the CRM's record).
    #[serde(default)]
    pub correlation: String,
    /// A call out's trunk: the one that answered, or the last one tried.
    #[serde(default)]
    pub trunk: String,
    /// A call out's SIP status: 200 when answered, else the last attempt's failure (the
    /// result is `end_cause`: busy, no_answer, rejected, invalid_number, carrier_error).
    #[serde(default)]
    pub sip_code: u32,
    /// A call out's carrier: the configured carrier of the number presented (`viettel`, ...),
    /// "" when the number names none.
    #[serde(default)]
    pub carrier: String,
    /// Position reflected.
    pub pos: Position,
}

/// One agent a call rang, and the outcome (H1: which agents each call rang).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferRecord {
    /// Tenant id.
    pub tenant: String,
    /// Call id.
    pub call: String,
    /// 1 for the call's first offer, 2 for the next...
    pub seq: u32,
    /// Agent.
    pub agent: String,
    /// Queue the offer came from, "" if none.
    pub queue: String,
    /// When it was offered (ms since the epoch).
    pub offered_ms: u64,
    /// When the outcome came (0: still ringing).
    pub ended_ms: u64,
    /// `ringing`, `answered`, `no_answer`, `busy`, `rejected`, `unreachable`, `expired`,
    /// `not_available`, `cancelled`.
    pub result: String,
    /// Position reflected.
    pub pos: Position,
}

/// One span of an agent in one state (H2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStateRecord {
    /// Tenant id.
    pub tenant: String,
    /// Agent id.
    pub agent: String,
    /// Start (ms since the epoch).
    pub start_ms: u64,
    /// Log offset of the event that started it (tells apart spans starting the same ms).
    pub start_offset: u64,
    /// End (0: still in this state).
    pub end_ms: u64,
    /// The state (as [`AgentView::state`]).
    pub state: String,
    /// Not-ready reason.
    pub reason: String,
    /// Call, if the state has one.
    pub call: String,
    /// Position reflected.
    pub pos: Position,
}

/// Whose figures an interval row holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Subject {
    /// An agent (declared first: subjects order by name, `agent` < `queue`, as stores sort
    /// them).
    Agent,
    /// A queue.
    Queue,
}

impl Subject {
    /// `queue` or `agent`.
    pub fn name(self) -> &'static str {
        match self {
            Subject::Queue => "queue",
            Subject::Agent => "agent",
        }
    }

    /// From [`Subject::name`].
    pub fn parse(s: &str) -> Option<Subject> {
        match s {
            "queue" => Some(Subject::Queue),
            "agent" => Some(Subject::Agent),
            _ => None,
        }
    }
}

/// Figures of one queue or agent over one 15-minute interval (H3, H5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntervalRow {
    /// Tenant id.
    pub tenant: String,
    /// Start of the interval (ms since the epoch; intervals start at :00, :15, :30, :45 of
    /// the tenant's local time).
    pub start_ms: u64,
    /// Queue or agent.
    pub subject: Subject,
    /// Its id.
    pub id: String,
    /// The figures.
    pub stats: Stats,
    /// Position reflected.
    pub pos: Position,
}

/// The identity of a row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RowKey {
    /// Tenant configuration.
    Tenant(String),
    /// (tenant, queue).
    Queue(String, String),
    /// (tenant, agent).
    Agent(String, String),
    /// (tenant, call).
    Call(String, String),
    /// (tenant, call).
    Record(String, String),
    /// (tenant, call, seq).
    Offer(String, String, u32),
    /// (tenant, agent, start ms, start offset).
    AgentState(String, String, u64, u64),
    /// (tenant, start ms, subject, id).
    Interval(String, u64, Subject, String),
}

impl RowKey {
    /// The tenant the row belongs to.
    pub fn tenant(&self) -> &str {
        match self {
            RowKey::Tenant(t)
            | RowKey::Queue(t, _)
            | RowKey::Agent(t, _)
            | RowKey::Call(t, _)
            | RowKey::Record(t, _)
            | RowKey::Offer(t, _, _)
            | RowKey::AgentState(t, _, _, _)
            | RowKey::Interval(t, _, _, _) => t,
        }
    }
}

/// Any row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Row {
    /// Tenant configuration.
    Tenant(TenantRow),
    /// Queue live view.
    Queue(QueueView),
    /// Agent live view.
    Agent(AgentView),
    /// Call live view.
    Call(CallView),
    /// Call detail record.
    Record(CallRecord),
    /// Offer of a call to an agent.
    Offer(OfferRecord),
    /// Agent state span.
    AgentState(AgentStateRecord),
    /// Interval figures.
    Interval(IntervalRow),
}

impl Row {
    /// Its key.
    pub fn key(&self) -> RowKey {
        match self {
            Row::Tenant(r) => RowKey::Tenant(r.tenant.clone()),
            Row::Queue(r) => RowKey::Queue(r.tenant.clone(), r.queue.clone()),
            Row::Agent(r) => RowKey::Agent(r.tenant.clone(), r.agent.clone()),
            Row::Call(r) => RowKey::Call(r.tenant.clone(), r.call.clone()),
            Row::Record(r) => RowKey::Record(r.tenant.clone(), r.call.clone()),
            Row::Offer(r) => RowKey::Offer(r.tenant.clone(), r.call.clone(), r.seq),
            Row::AgentState(r) => RowKey::AgentState(
                r.tenant.clone(),
                r.agent.clone(),
                r.start_ms,
                r.start_offset,
            ),
            Row::Interval(r) => {
                RowKey::Interval(r.tenant.clone(), r.start_ms, r.subject, r.id.clone())
            }
        }
    }

    /// Its tenant (as `key().tenant()`, without building the key).
    pub fn tenant(&self) -> &str {
        match self {
            Row::Tenant(r) => &r.tenant,
            Row::Queue(r) => &r.tenant,
            Row::Agent(r) => &r.tenant,
            Row::Call(r) => &r.tenant,
            Row::Record(r) => &r.tenant,
            Row::Offer(r) => &r.tenant,
            Row::AgentState(r) => &r.tenant,
            Row::Interval(r) => &r.tenant,
        }
    }

    /// The log position it reflects.
    pub fn pos(&self) -> Position {
        match self {
            Row::Tenant(r) => r.pos,
            Row::Queue(r) => r.pos,
            Row::Agent(r) => r.pos,
            Row::Call(r) => r.pos,
            Row::Record(r) => r.pos,
            Row::Offer(r) => r.pos,
            Row::AgentState(r) => r.pos,
            Row::Interval(r) => r.pos,
        }
    }

    /// The JSON both stores keep of a row (read back with [`Row::from_json`]).
    pub fn to_json(&self) -> String {
        fn en<T: Serialize>(v: &T) -> String {
            // rows are plain data: serialising them cannot fail
            serde_json::to_string(v).unwrap_or_default()
        }
        match self {
            Row::Tenant(r) => en(r),
            Row::Queue(r) => en(r),
            Row::Agent(r) => en(r),
            Row::Call(r) => en(r),
            Row::Record(r) => en(r),
            Row::Offer(r) => en(r),
            Row::AgentState(r) => en(r),
            Row::Interval(r) => en(r),
        }
    }

    /// A row read back from `table` (the name both stores give it) as the JSON they keep.
    pub fn from_json(table: &'static str, data: &str) -> Result<Row, crate::StoreError> {
        fn de<T: serde::de::DeserializeOwned>(
            table: &'static str,
            data: &str,
        ) -> Result<T, crate::StoreError> {
            serde_json::from_str(data).map_err(|e| crate::StoreError::Corrupt {
                table,
                key: String::new(),
                message: e.to_string(),
            })
        }
        Ok(match table {
            "tenants" => Row::Tenant(de(table, data)?),
            "live_queues" => Row::Queue(de(table, data)?),
            "live_agents" => Row::Agent(de(table, data)?),
            "live_calls" => Row::Call(de(table, data)?),
            "call_records" => Row::Record(de(table, data)?),
            "call_offers" => Row::Offer(de(table, data)?),
            "agent_states" => Row::AgentState(de(table, data)?),
            "intervals" => Row::Interval(de(table, data)?),
            _ => {
                return Err(crate::StoreError::Invalid {
                    field: "table",
                    message: format!("no rows in table {table}"),
                })
            }
        })
    }

    /// Whether it is a live view (written after the history rows of a batch).
    pub fn is_live(&self) -> bool {
        matches!(
            self,
            Row::Tenant(_) | Row::Queue(_) | Row::Agent(_) | Row::Call(_)
        )
    }
}
