//! The projection of events into rows: pure logic over a row cache, no IO of its own. Rows
//! come from a [`RowSource`] (the store) the first time they are touched; every change
//! passes the position check of `callgrid_store::rows` (an event changes a row only if the
//! event comes after the position the row reflects), so replaying any range changes
//! nothing.
//!
//! The one definition of each metric is [`Stats`]; [`Projection::apply`] feeds the same
//! figures to the interval rows (H3, H5) and to a queue's live "today".

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;

use callgrid_domain::event::LeaveReason;
use callgrid_domain::{EndCause, Event, EventBody, OfferFailure, Party, Target};
use callgrid_proto::events::v1 as pb;
use callgrid_store::rows::*;
use callgrid_store::StoreError;

use crate::time::Calendar;

/// Errors of the projection.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where rows not yet in the cache come from.
pub trait RowSource {
    /// The stored row, `None` if there is none.
    fn load(&mut self, key: &RowKey) -> Result<Option<Row>, StoreError>;
}

/// No stored rows (a projection from scratch, tests).
#[derive(Debug, Default)]
pub struct Empty;

impl RowSource for Empty {
    fn load(&mut self, _: &RowKey) -> Result<Option<Row>, StoreError> {
        Ok(None)
    }
}

/// What happened to an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Projected (possibly changing nothing, for a replayed event).
    Projected,
    /// Not projectable; the reason is logged by the caller with the position.
    Skipped(String),
}

/// The configuration of a tenant the projection needs.
#[derive(Debug)]
struct TenantInfo {
    calendar: Calendar,
    /// Queue -> service-level threshold (ms).
    sl_ms: HashMap<String, u64>,
    default_sl_ms: u64,
    /// Agent -> the queues it is a member of.
    queues_of: HashMap<String, Vec<String>>,
    /// Queue -> its member agents.
    members: HashMap<String, Vec<String>>,
}

impl TenantInfo {
    fn from_yaml(tenant: &str, yaml: &str) -> Result<TenantInfo, String> {
        let file = callgrid_config::load_trusted_str(tenant, yaml).map_err(|e| e.to_string())?;
        let calendar = Calendar::new(&file.timezone).unwrap_or_else(|| {
            tracing::warn!(%tenant, zone = %file.timezone, "unknown time zone, using UTC");
            Calendar::utc()
        });
        let mut queues_of: HashMap<String, Vec<String>> = HashMap::new();
        let mut members = HashMap::new();
        let mut sl_ms = HashMap::new();
        for q in &file.queues {
            sl_ms.insert(
                q.id.clone(),
                u64::from(q.effective_service_level_seconds(&file.defaults)) * 1000,
            );
            let agents: Vec<String> = q.members.iter().map(|m| m.agent.clone()).collect();
            for a in &agents {
                queues_of.entry(a.clone()).or_default().push(q.id.clone());
            }
            members.insert(q.id.clone(), agents);
        }
        for a in &file.agents {
            queues_of.entry(a.id.clone()).or_default();
        }
        Ok(TenantInfo {
            calendar,
            sl_ms,
            default_sl_ms: u64::from(file.defaults.service_level_seconds) * 1000,
            queues_of,
            members,
        })
    }

    fn sl(&self, queue: &str) -> u64 {
        self.sl_ms.get(queue).copied().unwrap_or(self.default_sl_ms)
    }

    fn queues(&self, agent: &str) -> &[String] {
        self.queues_of.get(agent).map_or(&[], Vec::as_slice)
    }
}

/// Conversion between [`Row`] and one kind of row.
trait Kind: Sized + Clone {
    fn get(row: &mut Row) -> Option<&mut Self>;
    fn into_row(self) -> Row;
    fn pos(&mut self) -> &mut Position;
}

macro_rules! kind {
    ($t:ty, $v:ident) => {
        impl Kind for $t {
            fn get(row: &mut Row) -> Option<&mut Self> {
                match row {
                    Row::$v(r) => Some(r),
                    _ => None,
                }
            }
            fn into_row(self) -> Row {
                Row::$v(self)
            }
            fn pos(&mut self) -> &mut Position {
                &mut self.pos
            }
        }
    };
}
kind!(TenantRow, Tenant);
kind!(QueueView, Queue);
kind!(AgentView, Agent);
kind!(CallView, Call);
kind!(CallRecord, Record);
kind!(OfferRecord, Offer);
kind!(AgentStateRecord, AgentState);
kind!(IntervalRow, Interval);

/// A cached row and what the projection knows of it.
struct Cached {
    row: Row,
    /// The number of the last event that changed it ([`Projection::event`]): that event
    /// may change it again.
    changed_by: u64,
    /// Changed since the last [`Projection::take`] (then its key is in `dirty`).
    dirty: bool,
}

/// The projection: a cache of rows and what changed since the last [`Projection::take`].
pub struct Projection<S> {
    source: S,
    /// Boxed: the table stays small (80 bytes a row instead of 500), so a cache of a few
    /// hundred thousand rows is cheap to allocate and to rehash. Hashed with foldhash: keys
    /// are the projection's own (tenant, queue, agent and call ids), and SipHash's
    /// resistance to chosen keys bought nothing here but 3 % of `serve`'s CPU.
    rows: HashMap<RowKey, Box<Cached>, RandomState>,
    /// The keys of the rows changed since the last [`Projection::take`], each once.
    dirty: Vec<RowKey>,
    /// The number of the event being applied (counts up from 1).
    event: u64,
    tenants: HashMap<String, Arc<TenantInfo>>,
    /// Offsets from which on a row born at its event (an agent state span, whose key
    /// carries that event's offset) is either in the cache or nowhere: the store holds no
    /// row of a later event than it, so such a row needs no load.
    unborn_from: u64,
}

/// The offset of the event that made a row with this key, if the key says it.
fn born_at(key: &RowKey) -> Option<u64> {
    match key {
        RowKey::AgentState(_, _, _, offset) => Some(*offset),
        _ => None,
    }
}

fn failure_name(f: OfferFailure) -> &'static str {
    match f {
        OfferFailure::NoAnswer => "no_answer",
        OfferFailure::Busy => "busy",
        OfferFailure::Rejected => "rejected",
        OfferFailure::Unreachable => "unreachable",
        OfferFailure::Expired => "expired",
        OfferFailure::NotAvailable => "not_available",
    }
}

/// Adds the time an agent spent in `state` to the matching field.
fn add_state_time(s: &mut Stats, state: &str, ms: u64) {
    match state {
        "available" => s.available_ms += ms,
        "reserved" | "ringing" => s.ringing_ms += ms,
        "on_call" => s.on_call_ms += ms,
        "wrap_up" => s.wrap_up_state_ms += ms,
        "not_ready" => s.not_ready_ms += ms,
        _ => {}
    }
}

fn count_mut<'a>(c: &'a mut AgentCounts, state: &str) -> &'a mut u32 {
    match state {
        "available" => &mut c.available,
        "reserved" | "ringing" => &mut c.ringing,
        "on_call" => &mut c.on_call,
        "wrap_up" => &mut c.wrap_up,
        "not_ready" => &mut c.not_ready,
        _ => &mut c.logged_out,
    }
}

impl Cached {
    fn boxed(row: Row) -> Box<Cached> {
        Box::new(Cached {
            row,
            changed_by: 0,
            dirty: false,
        })
    }
}

impl<S: RowSource> Projection<S> {
    /// A projection reading missing rows from `source`.
    pub fn new(source: S) -> Self {
        Self::with_capacity(source, 0)
    }

    /// A projection reading missing rows from `source`, with room for `rows` cached rows
    /// before its cache grows (growing rehashes every row at once: with a hundred thousand
    /// rows stored inline, a stall of hundreds of milliseconds under load, and every
    /// partition hits it at about the same time).
    pub fn with_capacity(source: S, rows: usize) -> Self {
        Projection {
            source,
            rows: HashMap::with_capacity_and_hasher(rows, RandomState::default()),
            dirty: Vec::new(),
            event: 0,
            tenants: HashMap::new(),
            unborn_from: u64::MAX,
        }
    }

    /// Tells the projection that the store holds no row of an event at or after `next`
    /// (its partition's checkpoint): rows born there are not looked for in the store.
    pub fn starting_at(&mut self, next: u64) {
        self.unborn_from = next;
    }

    /// The rows changed since the last call (to write), leaving them cached.
    pub fn take(&mut self) -> Vec<Row> {
        let mut keys = std::mem::take(&mut self.dirty);
        keys.sort();
        keys.iter()
            .filter_map(|k| {
                let c = self.rows.get_mut(k)?;
                c.dirty = false;
                Some(c.row.clone())
            })
            .collect()
    }

    /// Forgets the cached rows that are not waiting in [`Projection::take`]: they reload
    /// from the store when touched again (so the store must have every row taken so far,
    /// `next` being the offset after the last event projected).
    pub fn forget(&mut self, next: u64) {
        self.rows.retain(|_, c| c.dirty);
        self.unborn_from = next;
    }

    /// Rows in the cache.
    pub fn cached(&self) -> usize {
        self.rows.len()
    }

    fn load<T: Kind>(&mut self, key: &RowKey) -> Result<Option<T>, ProjectError> {
        if !self.rows.contains_key(key) {
            match self.source.load(key)? {
                Some(row) => {
                    self.rows.insert(key.clone(), Cached::boxed(row));
                }
                None => return Ok(None),
            }
        }
        Ok(self
            .rows
            .get_mut(key)
            .and_then(|c| T::get(&mut c.row))
            .cloned())
    }

    /// Changes the row `key` (made by `init` if there is none) with `f`, if the event at
    /// `pos` comes after the row's position (or already changed it); `None` if skipped.
    fn with<T: Kind, R>(
        &mut self,
        key: RowKey,
        pos: Position,
        init: impl FnOnce() -> T,
        f: impl FnOnce(&mut T) -> R,
    ) -> Result<Option<R>, ProjectError> {
        // a row made here reflects no event yet: any event applies (its default position
        // equals the very first record's, partition 0 offset 0)
        let mut fresh = false;
        if !self.rows.contains_key(&key) {
            let stored = match born_at(&key) {
                Some(offset) if offset >= self.unborn_from => None,
                _ => self.source.load(&key)?,
            };
            let row = match stored {
                Some(r) => r,
                None => {
                    fresh = true;
                    init().into_row()
                }
            };
            self.rows.insert(key.clone(), Cached::boxed(row));
        }
        let Some(cached) = self.rows.get_mut(&key) else {
            return Ok(None);
        };
        let again = cached.changed_by == self.event;
        let Some(row) = T::get(&mut cached.row) else {
            return Ok(None);
        };
        if !(fresh || again || *row.pos() < pos) {
            return Ok(None);
        }
        let out = f(row);
        *row.pos() = pos;
        cached.changed_by = self.event;
        if !cached.dirty {
            cached.dirty = true;
            self.dirty.push(key);
        }
        Ok(Some(out))
    }

    fn info(&mut self, tenant: &str) -> Result<Option<Arc<TenantInfo>>, ProjectError> {
        if let Some(i) = self.tenants.get(tenant) {
            return Ok(Some(i.clone()));
        }
        let Some(row) = self.load::<TenantRow>(&RowKey::Tenant(tenant.to_owned()))? else {
            return Ok(None);
        };
        match TenantInfo::from_yaml(tenant, &row.yaml) {
            Ok(i) => {
                let i = Arc::new(i);
                self.tenants.insert(tenant.to_owned(), i.clone());
                Ok(Some(i))
            }
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "stored tenant configuration unusable");
                Ok(None)
            }
        }
    }

    /// Projects one event at `pos`.
    pub fn apply(
        &mut self,
        pos: Position,
        env: &pb::EventEnvelope,
    ) -> Result<Outcome, ProjectError> {
        self.event += 1;
        let tenant = env.tenant.as_str();
        if tenant.is_empty() {
            return Ok(Outcome::Skipped("envelope without tenant".into()));
        }
        if let Some(pb::event::Kind::TenantConfigured(c)) =
            env.event.as_ref().and_then(|e| e.kind.as_ref())
        {
            return self.configured(tenant, pos, c);
        }
        let event = match callgrid_codec::envelope_event(env) {
            Ok(Some(e)) => e,
            Ok(None) => return Ok(Outcome::Projected),
            Err(e) => return Ok(Outcome::Skipped(e.to_string())),
        };
        let Some(info) = self.info(tenant)? else {
            return Ok(Outcome::Skipped(format!(
                "event of tenant {tenant} before its configuration"
            )));
        };
        let cx = Cx {
            tenant: tenant.to_owned(),
            pos,
            at: event.at,
            info,
        };
        self.event(&cx, &event)?;
        Ok(Outcome::Projected)
    }

    fn configured(
        &mut self,
        tenant: &str,
        pos: Position,
        c: &pb::TenantConfigured,
    ) -> Result<Outcome, ProjectError> {
        let info = match TenantInfo::from_yaml(tenant, &c.yaml) {
            Ok(i) => Arc::new(i),
            Err(e) => return Ok(Outcome::Skipped(format!("tenant configuration: {e}"))),
        };
        let changed = self.with(
            RowKey::Tenant(tenant.to_owned()),
            pos,
            || TenantRow {
                tenant: tenant.to_owned(),
                version: 0,
                yaml: String::new(),
                pos: Position::default(),
            },
            |r| {
                r.version = c.version;
                r.yaml = c.yaml.clone();
            },
        )?;
        self.tenants.insert(tenant.to_owned(), info.clone());
        if changed.is_none() {
            return Ok(Outcome::Projected);
        }
        // every agent has a view; every queue counts its members per state
        let mut agents: Vec<&String> = info.queues_of.keys().collect();
        agents.sort();
        let mut states = HashMap::new();
        for a in agents {
            let key = RowKey::Agent(tenant.to_owned(), a.clone());
            let view = match self.load::<AgentView>(&key)? {
                Some(v) => v,
                None => {
                    let v = new_agent(tenant, a);
                    self.with(key, pos, || v.clone(), |_| ())?;
                    v
                }
            };
            states.insert(a.clone(), view.state);
        }
        let mut queues: Vec<(&String, &Vec<String>)> = info.members.iter().collect();
        queues.sort();
        for (q, members) in queues {
            let mut counts = AgentCounts::default();
            for m in members {
                *count_mut(
                    &mut counts,
                    states.get(m).map_or("logged_out", String::as_str),
                ) += 1;
            }
            self.with(
                RowKey::Queue(tenant.to_owned(), q.clone()),
                pos,
                || new_queue(tenant, q),
                |v| v.agents = counts,
            )?;
        }
        Ok(Outcome::Projected)
    }

    fn event(&mut self, cx: &Cx, event: &Event) -> Result<(), ProjectError> {
        use EventBody::*;
        let at = cx.at;
        match &event.body {
            AgentLoggedIn {
                agent, not_ready, ..
            } => {
                let (state, reason) = match not_ready {
                    Some(r) => ("not_ready", r.to_string()),
                    None => ("available", String::new()),
                };
                self.agent_to(cx, agent.as_str(), state, &reason, "")?;
            }
            AgentNotReady { agent, reason } => {
                self.agent_to(cx, agent.as_str(), "not_ready", reason.as_str(), "")?;
            }
            AgentReserved {
                agent,
                call,
                queue,
                resume,
                ..
            } => {
                let q = queue.as_ref().map(|q| q.to_string()).unwrap_or_default();
                self.agent(cx, agent.as_str(), |a| {
                    a.queue = q;
                    a.resume = resume.as_ref().map(|r| r.to_string()).unwrap_or_default();
                })?;
                self.agent_to(cx, agent.as_str(), "reserved", "", call.as_str())?;
            }
            AgentRinging { agent, call, .. } => {
                self.agent_to(cx, agent.as_str(), "ringing", "", call.as_str())?;
            }
            AgentAnswered {
                agent,
                call,
                resume,
                ..
            } => {
                self.agent(cx, agent.as_str(), |a| {
                    a.answered_ms = at;
                    a.hold_since_ms = 0;
                    a.hold_ms = 0;
                    if let Some(r) = resume {
                        a.resume = r.to_string();
                    }
                })?;
                self.agent_to(cx, agent.as_str(), "on_call", "", call.as_str())?;
            }
            AgentOfferMissed {
                agent, not_ready, ..
            } => {
                if *not_ready {
                    self.agent_to(
                        cx,
                        agent.as_str(),
                        "not_ready",
                        callgrid_domain::agent::MISSED_OFFERS_REASON,
                        "",
                    )?;
                } else {
                    self.agent_free(cx, agent.as_str())?;
                }
            }
            AgentCallEnded {
                agent,
                call,
                talk_ms,
                wrapup_until,
            } => {
                self.agent_call_ended(cx, agent.as_str(), call.as_str(), *talk_ms, *wrapup_until)?
            }
            AgentLoggedOut { agent } => self.agent_to(cx, agent.as_str(), "logged_out", "", "")?,
            AgentAvailable { agent } => self.agent_to(cx, agent.as_str(), "available", "", "")?,
            AgentOfferCancelled { agent, .. }
            | AgentWrapUpEnded { agent }
            | AgentLeaseExpired { agent, .. } => self.agent_free(cx, agent.as_str())?,

            QueueCallJoined { queue, call, .. } => {
                let (q, c) = (queue.to_string(), call.to_string());
                self.with(
                    queue_key(cx, &q),
                    cx.pos,
                    || new_queue(&cx.tenant, &q),
                    |v| {
                        v.waiting.push(Waiting {
                            call: c.clone(),
                            since_ms: at,
                        })
                    },
                )?;
                self.queue_stats(cx, &q, at, |s| s.offered += 1)?;
                self.call(cx, &c, |v| {
                    v.state = "queued".into();
                    v.since_ms = at;
                    v.queue = q.clone();
                    v.queued_ms = at;
                    v.first_ring_ms = 0;
                })?;
            }
            QueueCallLeft {
                queue,
                call,
                reason,
                wait_ms,
                ..
            } => {
                let (q, c) = (queue.to_string(), call.to_string());
                self.unqueue(cx, &q, &c)?;
                let sl = cx.info.sl(&q);
                let wait = *wait_ms;
                let abandoned = *reason == LeaveReason::Abandoned;
                self.queue_stats(cx, &q, at.saturating_sub(wait), |s| {
                    if abandoned && wait <= sl {
                        s.abandoned_short += 1;
                    } else if abandoned {
                        s.abandoned_long += 1;
                    } else {
                        s.overflowed += 1;
                    }
                    s.max_wait_ms = s.max_wait_ms.max(wait);
                })?;
                let result = if abandoned { "abandoned" } else { "overflow" };
                let ended = self.call(cx, &c, |v| {
                    v.wait_ms = wait;
                    v.result = result.into();
                    if v.state == "ended" {
                        return true;
                    }
                    v.state = "routing".into();
                    v.since_ms = at;
                    false
                })?;
                if ended == Some(true) {
                    // the caller's hang-up ended the call before the queue let it go: its
                    // record is already written
                    self.with(
                        RowKey::Record(cx.tenant.clone(), c.clone()),
                        cx.pos,
                        || unknown_record(cx, &c),
                        |r| {
                            r.result = result.into();
                            r.wait_ms = wait;
                        },
                    )?;
                }
            }
            QueueCallAnswered {
                queue,
                call,
                wait_ms,
                ..
            } => {
                let (q, c) = (queue.to_string(), call.to_string());
                self.unqueue(cx, &q, &c)?;
                let (sl, wait) = (cx.info.sl(&q), *wait_ms);
                self.queue_stats(cx, &q, at.saturating_sub(wait), |s| {
                    s.answered += 1;
                    if wait <= sl {
                        s.answered_within += 1;
                    }
                    s.wait_answered_ms += wait;
                    s.max_wait_ms = s.max_wait_ms.max(wait);
                })?;
                self.call(cx, &c, |v| v.wait_ms = wait)?;
            }
            QueueCallbackDue {
                queue,
                call,
                wait_ms,
                ..
            } => {
                let (q, c) = (queue.to_string(), call.to_string());
                self.unqueue(cx, &q, &c)?;
                let wait = *wait_ms;
                self.queue_stats(cx, &q, at.saturating_sub(wait), |s| {
                    s.callbacks += 1;
                    s.max_wait_ms = s.max_wait_ms.max(wait);
                })?;
                self.call(cx, &c, |v| {
                    v.wait_ms = wait;
                    v.result = "callback".into();
                })?;
            }
            QueueRoutingDecision { .. }
            | QueueReservationRefused { .. }
            | QueueCallOffered { .. }
            | QueueOfferFailed { .. }
            | QueueCallbackRequested { .. }
            | QueueDecisionExpired { .. } => {}

            CallArrived {
                call,
                number,
                caller,
                plan_version,
                ..
            } => {
                let c = call.to_string();
                let (number, caller) = (number.to_string(), caller.to_string());
                self.call(cx, &c, |v| {
                    v.state = "routing".into();
                    v.since_ms = at;
                    v.arrived_ms = at;
                    v.number = number;
                    v.caller = caller;
                    v.plan_version = *plan_version;
                })?;
            }
            CallOriginated {
                call,
                agent,
                destination,
                number,
                correlation,
                plan_version,
                carrier,
                ..
            } => {
                let c = call.to_string();
                self.call(cx, &c, |v| {
                    v.state = "routing".into();
                    v.since_ms = at;
                    v.arrived_ms = at;
                    v.direction = "outbound".into();
                    v.carrier = carrier.as_deref().unwrap_or_default().to_owned();
                    v.number = number.to_string();
                    v.caller = destination.to_string();
                    v.agent = agent.as_ref().map(|a| a.to_string()).unwrap_or_default();
                    v.correlation = correlation.as_deref().unwrap_or_default().to_owned();
                    v.plan_version = *plan_version;
                })?;
            }
            CallTrunkFailed {
                call,
                trunk,
                sip_code,
            } => {
                self.call(cx, call.as_str(), |v| {
                    v.trunk = trunk.to_string();
                    v.sip_code = u32::from(*sip_code);
                })?;
            }
            CallCustomerRinging { call, trunk } => {
                self.call(cx, call.as_str(), |v| {
                    v.state = "dialling".into();
                    v.since_ms = at;
                    v.trunk = trunk.to_string();
                })?;
            }
            CallCustomerAnswered { call, trunk } => {
                // talk time of a call out starts when the customer answers
                self.call(cx, call.as_str(), |v| {
                    v.state = "talking".into();
                    v.since_ms = at;
                    v.trunk = trunk.to_string();
                    v.sip_code = 200;
                    v.answered_ms = at;
                    v.talking_since_ms = at;
                })?;
            }
            CallRouted { call, target, .. } => {
                let state = match target {
                    Target::Menu(_) => "menu",
                    _ => "routing",
                };
                self.call(cx, call.as_str(), |v| {
                    if v.state != "queued" {
                        v.state = state.into();
                        v.since_ms = at;
                    }
                })?;
            }
            CallHeld { call, agent, by } => {
                self.hold(cx, call.as_str(), agent.as_str(), *by, true)?
            }
            CallResumed { call, agent, by } => {
                self.hold(cx, call.as_str(), agent.as_str(), *by, false)?
            }
            CallRecordingStarted { call, path } => {
                self.call(cx, call.as_str(), |v| v.recording = path.to_string())?;
            }
            CallOffered {
                call, agent, queue, ..
            } => self.offered(
                cx,
                call.as_str(),
                agent.as_str(),
                queue.as_ref().map(|q| q.as_str()),
            )?,
            CallAnswered {
                call,
                agent,
                cancelled,
                ..
            } => self.answered(cx, call.as_str(), agent.as_str(), cancelled)?,
            CallOfferFailed {
                call, agent, cause, ..
            } => {
                self.offer_done(cx, call.as_str(), agent.as_str(), failure_name(*cause))?;
                let a = agent.to_string();
                self.agent_stats(cx, &a, at, |s| s.missed += 1)?;
            }
            CallCallbackRequested { call, .. } => {
                self.call(cx, call.as_str(), |v| {
                    v.state = "callback".into();
                    v.since_ms = at;
                })?;
            }
            CallTransferred { call, .. } => {
                self.call(cx, call.as_str(), |v| {
                    v.state = "routing".into();
                    v.since_ms = at;
                    end_part(v, at);
                })?;
            }
            CallEnded {
                call,
                cause,
                cancelled,
                ..
            } => self.ended(cx, call.as_str(), cause, cancelled)?,
            CallRinging { .. } | CallMenuRetry { .. } => {}
        }
        Ok(())
    }

    fn call<R>(
        &mut self,
        cx: &Cx,
        call: &str,
        f: impl FnOnce(&mut CallView) -> R,
    ) -> Result<Option<R>, ProjectError> {
        self.with(
            RowKey::Call(cx.tenant.clone(), call.to_owned()),
            cx.pos,
            || new_call(&cx.tenant, call),
            f,
        )
    }

    fn agent<R>(
        &mut self,
        cx: &Cx,
        agent: &str,
        f: impl FnOnce(&mut AgentView) -> R,
    ) -> Result<Option<R>, ProjectError> {
        self.with(
            agent_key(cx, agent),
            cx.pos,
            || new_agent(&cx.tenant, agent),
            f,
        )
    }

    fn unqueue(&mut self, cx: &Cx, queue: &str, call: &str) -> Result<(), ProjectError> {
        self.with(
            queue_key(cx, queue),
            cx.pos,
            || new_queue(&cx.tenant, queue),
            |v| v.waiting.retain(|w| w.call != call),
        )?;
        Ok(())
    }

    /// Adds to a queue's figures for a call that joined at `joined`: its interval row and,
    /// if the call joined on the queue's current day, its live "today".
    fn queue_stats(
        &mut self,
        cx: &Cx,
        queue: &str,
        joined: u64,
        f: impl Fn(&mut Stats),
    ) -> Result<(), ProjectError> {
        self.interval(cx, Subject::Queue, queue, joined, &f)?;
        let day = cx.info.calendar.day_start(joined);
        self.with(
            queue_key(cx, queue),
            cx.pos,
            || new_queue(&cx.tenant, queue),
            |v| {
                if day > v.day_start_ms {
                    v.day_start_ms = day;
                    v.today = Stats::default();
                }
                if day == v.day_start_ms {
                    f(&mut v.today);
                }
            },
        )?;
        Ok(())
    }

    fn agent_stats(
        &mut self,
        cx: &Cx,
        agent: &str,
        t: u64,
        f: impl Fn(&mut Stats),
    ) -> Result<(), ProjectError> {
        self.interval(cx, Subject::Agent, agent, t, &f)
    }

    fn interval(
        &mut self,
        cx: &Cx,
        subject: Subject,
        id: &str,
        t: u64,
        f: &dyn Fn(&mut Stats),
    ) -> Result<(), ProjectError> {
        let start = cx.info.calendar.interval_start(t);
        self.with(
            RowKey::Interval(cx.tenant.clone(), start, subject, id.to_owned()),
            cx.pos,
            || IntervalRow {
                tenant: cx.tenant.clone(),
                start_ms: start,
                subject,
                id: id.to_owned(),
                stats: Stats::default(),
                pos: Position::default(),
            },
            |r| f(&mut r.stats),
        )?;
        Ok(())
    }

    /// Moves an agent to `state`: its view, its state history (H2), its time in the old
    /// state (split over intervals, for it and its queues), its queues' counts, and, when a
    /// wrap-up ends, the wrap-up time of its last call.
    fn agent_to(
        &mut self,
        cx: &Cx,
        agent: &str,
        state: &str,
        reason: &str,
        call: &str,
    ) -> Result<(), ProjectError> {
        let at = cx.at;
        let Some(old) = self.agent(cx, agent, |a| {
            let old = a.clone();
            a.state = state.to_owned();
            a.reason = reason.to_owned();
            a.call = call.to_owned();
            a.since_ms = at;
            a.state_offset = cx.pos.offset;
            if old.state == "wrap_up" {
                a.wrapup_call.clear();
            }
            if matches!(state, "logged_out" | "available" | "not_ready") {
                // the agent's own choice, or the return to it
                a.resume.clear();
            }
            old
        })?
        else {
            return Ok(());
        };
        // history: close the old span, open the new one
        if old.since_ms > 0 {
            self.with(
                RowKey::AgentState(
                    cx.tenant.clone(),
                    agent.to_owned(),
                    old.since_ms,
                    old.state_offset,
                ),
                cx.pos,
                || state_record(cx, &old),
                |r| r.end_ms = at,
            )?;
        }
        let new_view = AgentView {
            state: state.to_owned(),
            reason: reason.to_owned(),
            call: call.to_owned(),
            since_ms: at,
            state_offset: cx.pos.offset,
            ..old.clone()
        };
        self.with(
            RowKey::AgentState(cx.tenant.clone(), agent.to_owned(), at, cx.pos.offset),
            cx.pos,
            || state_record(cx, &new_view),
            |_| (),
        )?;
        // time in the old state, split over the intervals it spans
        if old.since_ms > 0 && old.state != "logged_out" && at > old.since_ms {
            let mut t = old.since_ms;
            while t < at {
                let start = cx.info.calendar.interval_start(t);
                let end = (start + crate::time::INTERVAL_MS).min(at).max(t + 1);
                let ms = end - t;
                let st = old.state.clone();
                self.interval(cx, Subject::Agent, agent, t, &|s| {
                    add_state_time(s, &st, ms)
                })?;
                for q in cx.info.queues(agent) {
                    self.interval(cx, Subject::Queue, q, t, &|s| add_state_time(s, &st, ms))?;
                }
                t = end;
            }
        }
        // the queues' counts
        if old.state != state {
            for q in cx.info.queues(agent) {
                let (from, to) = (old.state.clone(), state.to_owned());
                self.with(
                    queue_key(cx, q),
                    cx.pos,
                    || new_queue(&cx.tenant, q),
                    |v| {
                        let c = count_mut(&mut v.agents, &from);
                        *c = c.saturating_sub(1);
                        *count_mut(&mut v.agents, &to) += 1;
                    },
                )?;
            }
        }
        // a wrap-up ended (whatever the agent does next): its time goes to the last call
        if old.state == "wrap_up" && !old.wrapup_call.is_empty() {
            let ms = at.saturating_sub(old.since_ms);
            self.agent_stats(cx, agent, old.answered_ms.max(1), |s| s.wrapup_ms += ms)?;
            if !old.queue.is_empty() && old.queued_ms > 0 {
                self.queue_stats(cx, &old.queue, old.queued_ms, |s| s.wrapup_ms += ms)?;
            }
            self.with(
                RowKey::Record(cx.tenant.clone(), old.wrapup_call.clone()),
                cx.pos,
                || unknown_record(cx, &old.wrapup_call),
                |r| r.wrapup_ms = ms,
            )?;
        }
        Ok(())
    }

    fn agent_call_ended(
        &mut self,
        cx: &Cx,
        agent: &str,
        call: &str,
        talk_ms: u64,
        wrapup_until: Option<u64>,
    ) -> Result<(), ProjectError> {
        let view = self.load::<CallView>(&RowKey::Call(cx.tenant.clone(), call.to_owned()))?;
        let (queue, queued_ms) = view
            .as_ref()
            .map(|v| (v.queue.clone(), v.queued_ms))
            .unwrap_or_default();
        let at = cx.at;
        let Some((answered_ms, hold_ms)) = self.agent(cx, agent, |a| {
            hold_clock(&mut a.hold_since_ms, &mut a.hold_ms, false, at);
            a.queue = queue.clone();
            a.queued_ms = queued_ms;
            a.wrapup_call = if wrapup_until.is_some() {
                call.to_owned()
            } else {
                String::new()
            };
            (a.answered_ms, a.hold_ms)
        })?
        else {
            return Ok(());
        };
        // the agent's part of the call: talk is the time connected, its holds excepted
        let talk_ms = talk_ms.saturating_sub(hold_ms);
        let handled = |s: &mut Stats| {
            s.handled += 1;
            s.talk_ms += talk_ms;
            s.hold_ms += hold_ms;
        };
        self.agent_stats(cx, agent, answered_ms.max(1), handled)?;
        if !queue.is_empty() && queued_ms > 0 {
            self.queue_stats(cx, &queue, queued_ms, handled)?;
        }
        if wrapup_until.is_some() {
            self.agent_to(cx, agent, "wrap_up", "", call)
        } else {
            self.agent_free(cx, agent)
        }
    }

    /// Done with a call or an offer: available, or back to the not-ready reason of a call
    /// it placed from not ready (as the agent's state machine does).
    fn agent_free(&mut self, cx: &Cx, agent: &str) -> Result<(), ProjectError> {
        let resume = self
            .agent(cx, agent, |a| a.resume.clone())?
            .unwrap_or_default();
        if resume.is_empty() {
            self.agent_to(cx, agent, "available", "", "")
        } else {
            self.agent_to(cx, agent, "not_ready", &resume, "")
        }
    }

    /// `by` put the call on hold (`on`) or took it off. The agent's holds count as hold time
    /// (call record, the agent's and the queue's figures); a caller's hold is only shown.
    fn hold(
        &mut self,
        cx: &Cx,
        call: &str,
        agent: &str,
        by: Party,
        on: bool,
    ) -> Result<(), ProjectError> {
        let at = cx.at;
        if by == Party::Caller {
            self.call(cx, call, |v| {
                v.caller_hold_since_ms = if on { at } else { 0 }
            })?;
            return Ok(());
        }
        self.call(cx, call, |v| {
            hold_clock(&mut v.hold_since_ms, &mut v.hold_ms, on, at);
            if v.state == "talking" || v.state == "held" {
                v.state = if on { "held" } else { "talking" }.into();
                // back to talking since the answer, as before the hold
                v.since_ms = if on || v.talking_since_ms == 0 {
                    at
                } else {
                    v.talking_since_ms
                };
            }
        })?;
        self.agent(cx, agent, |a| {
            hold_clock(&mut a.hold_since_ms, &mut a.hold_ms, on, at)
        })?;
        Ok(())
    }

    fn offered(
        &mut self,
        cx: &Cx,
        call: &str,
        agent: &str,
        queue: Option<&str>,
    ) -> Result<(), ProjectError> {
        let at = cx.at;
        let Some(seq) = self.call(cx, call, |v| {
            v.offers += 1;
            v.ringing.push(Offering {
                agent: agent.to_owned(),
                seq: v.offers,
            });
            if v.first_ring_ms == 0 {
                v.first_ring_ms = at;
            }
            if v.answered_ms == 0 {
                v.state = "ringing".into();
            }
            v.offers
        })?
        else {
            return Ok(());
        };
        self.with(
            RowKey::Offer(cx.tenant.clone(), call.to_owned(), seq),
            cx.pos,
            || new_offer(cx, call, seq, agent, queue.unwrap_or("")),
            |_| (),
        )?;
        self.agent_stats(cx, agent, at, |s| s.offered += 1)
    }

    /// Ends the ringing offer of `agent` with `result`.
    fn offer_done(
        &mut self,
        cx: &Cx,
        call: &str,
        agent: &str,
        result: &str,
    ) -> Result<(), ProjectError> {
        let Some(Some(seq)) = self.call(cx, call, |v| {
            let i = v.ringing.iter().position(|o| o.agent == agent)?;
            Some(v.ringing.remove(i).seq)
        })?
        else {
            return Ok(());
        };
        let at = cx.at;
        self.with(
            RowKey::Offer(cx.tenant.clone(), call.to_owned(), seq),
            cx.pos,
            || new_offer(cx, call, seq, agent, ""),
            |r| {
                r.ended_ms = at;
                r.result = result.to_owned();
            },
        )?;
        Ok(())
    }

    fn answered(
        &mut self,
        cx: &Cx,
        call: &str,
        agent: &str,
        cancelled: &[callgrid_domain::AgentId],
    ) -> Result<(), ProjectError> {
        self.offer_done(cx, call, agent, "answered")?;
        for a in cancelled {
            self.offer_done(cx, call, a.as_str(), "cancelled")?;
        }
        let at = cx.at;
        self.call(cx, call, |v| {
            v.state = "talking".into();
            v.since_ms = at;
            v.agent = agent.to_owned();
            v.answered_ms = at;
            v.talking_since_ms = at;
            v.hold_since_ms = 0;
            v.caller_hold_since_ms = 0;
        })?;
        self.agent_stats(cx, agent, at, |s| s.answered += 1)
    }

    fn ended(
        &mut self,
        cx: &Cx,
        call: &str,
        cause: &EndCause,
        cancelled: &[callgrid_domain::AgentId],
    ) -> Result<(), ProjectError> {
        for a in cancelled {
            self.offer_done(cx, call, a.as_str(), "cancelled")?;
        }
        // offers still ringing (the caller left): cancelled
        let ringing: Vec<String> = self
            .load::<CallView>(&RowKey::Call(cx.tenant.clone(), call.to_owned()))?
            .map(|v| v.ringing.iter().map(|o| o.agent.clone()).collect())
            .unwrap_or_default();
        for a in ringing {
            self.offer_done(cx, call, &a, "cancelled")?;
        }
        let at = cx.at;
        let dial_result = matches!(cause, EndCause::Dial(_));
        let cause = cause.name().to_owned();
        let Some(view) = self.call(cx, call, |v| {
            v.state = "ended".into();
            v.since_ms = at;
            v.ended_ms = at;
            v.end_cause = cause.clone();
            if v.direction == "outbound" && v.sip_code != 200 {
                // a call out whose customer never answered: 0 s talk (C2), its result the
                // dial result (busy, no_answer...) or `ended` (the agent gave up first)
                v.talking_since_ms = 0;
                v.connected_ms = 0;
                v.hold_since_ms = 0;
                v.answered_ms = 0;
                v.result = if dial_result {
                    cause.clone()
                } else {
                    "ended".into()
                };
            }
            end_part(v, at);
            v.result = if v.answered_ms > 0 {
                "answered".into()
            } else if v.result.is_empty() {
                "ended".into()
            } else {
                v.result.clone()
            };
            v.clone()
        })?
        else {
            return Ok(());
        };
        let day = cx.info.calendar.date(view.arrived_ms.max(1));
        let wait_ms = if view.queued_ms > 0 { view.wait_ms } else { 0 };
        let ring_ms = if view.first_ring_ms > 0 {
            (if view.answered_ms > 0 {
                view.answered_ms
            } else {
                at
            })
            .saturating_sub(view.first_ring_ms)
        } else {
            0
        };
        let talk_ms = view.connected_ms.saturating_sub(view.hold_ms);
        self.with(
            RowKey::Record(cx.tenant.clone(), call.to_owned()),
            cx.pos,
            || unknown_record(cx, call),
            |r| {
                *r = CallRecord {
                    tenant: cx.tenant.clone(),
                    day,
                    call: call.to_owned(),
                    direction: if view.direction.is_empty() {
                        "inbound".into()
                    } else {
                        view.direction.clone()
                    },
                    number: view.number.clone(),
                    caller: view.caller.clone(),
                    queue: view.queue.clone(),
                    agent: view.agent.clone(),
                    start_ms: view.arrived_ms,
                    end_ms: at,
                    wait_ms,
                    ring_ms,
                    talk_ms,
                    hold_ms: view.hold_ms,
                    wrapup_ms: r.wrapup_ms,
                    result: view.result.clone(),
                    end_cause: view.end_cause.clone(),
                    offers: view.offers,
                    plan_version: view.plan_version,
                    recording: view.recording.clone(),
                    correlation: view.correlation.clone(),
                    trunk: view.trunk.clone(),
                    sip_code: view.sip_code,
                    carrier: view.carrier.clone(),
                    pos: r.pos,
                }
            },
        )?;
        Ok(())
    }
}

/// A hold starts (`on`) or ends at `at`: `since` is when the running hold began (0: none),
/// `total` the length of the holds that ended. A hold already running keeps its start.
fn hold_clock(since: &mut u64, total: &mut u64, on: bool, at: u64) {
    if on {
        if *since == 0 {
            *since = at;
        }
    } else {
        if *since > 0 {
            *total += at.saturating_sub(*since);
        }
        *since = 0;
    }
}

/// The call's current agent part ends (transfer or end): its time connected and any hold
/// still running are added up.
fn end_part(v: &mut CallView, at: u64) {
    hold_clock(&mut v.hold_since_ms, &mut v.hold_ms, false, at);
    v.caller_hold_since_ms = 0;
    if v.talking_since_ms > 0 {
        v.connected_ms += at.saturating_sub(v.talking_since_ms);
        v.talking_since_ms = 0;
    }
}

/// What every change made for one event shares.
struct Cx {
    tenant: String,
    pos: Position,
    at: u64,
    info: Arc<TenantInfo>,
}

fn agent_key(cx: &Cx, agent: &str) -> RowKey {
    RowKey::Agent(cx.tenant.clone(), agent.to_owned())
}

fn queue_key(cx: &Cx, queue: &str) -> RowKey {
    RowKey::Queue(cx.tenant.clone(), queue.to_owned())
}

fn new_agent(tenant: &str, agent: &str) -> AgentView {
    AgentView {
        tenant: tenant.to_owned(),
        agent: agent.to_owned(),
        state: "logged_out".into(),
        reason: String::new(),
        call: String::new(),
        since_ms: 0,
        queue: String::new(),
        answered_ms: 0,
        queued_ms: 0,
        wrapup_call: String::new(),
        hold_since_ms: 0,
        hold_ms: 0,
        resume: String::new(),
        state_offset: 0,
        pos: Position::default(),
    }
}

fn new_queue(tenant: &str, queue: &str) -> QueueView {
    QueueView {
        tenant: tenant.to_owned(),
        queue: queue.to_owned(),
        waiting: Vec::new(),
        agents: AgentCounts::default(),
        day_start_ms: 0,
        today: Stats::default(),
        pos: Position::default(),
    }
}

fn new_call(tenant: &str, call: &str) -> CallView {
    CallView {
        direction: String::new(),
        correlation: String::new(),
        trunk: String::new(),
        sip_code: 0,
        carrier: String::new(),
        tenant: tenant.to_owned(),
        call: call.to_owned(),
        state: "routing".into(),
        since_ms: 0,
        number: String::new(),
        caller: String::new(),
        plan_version: 0,
        arrived_ms: 0,
        queue: String::new(),
        queued_ms: 0,
        agent: String::new(),
        ringing: Vec::new(),
        first_ring_ms: 0,
        answered_ms: 0,
        talking_since_ms: 0,
        connected_ms: 0,
        hold_since_ms: 0,
        hold_ms: 0,
        caller_hold_since_ms: 0,
        wait_ms: 0,
        ended_ms: 0,
        result: String::new(),
        end_cause: String::new(),
        offers: 0,
        recording: String::new(),
        pos: Position::default(),
    }
}

/// A ringing offer made at the event's time.
fn new_offer(cx: &Cx, call: &str, seq: u32, agent: &str, queue: &str) -> OfferRecord {
    OfferRecord {
        tenant: cx.tenant.clone(),
        call: call.to_owned(),
        seq,
        agent: agent.to_owned(),
        queue: queue.to_owned(),
        offered_ms: cx.at,
        ended_ms: 0,
        result: "ringing".into(),
        pos: Position::default(),
    }
}

fn state_record(cx: &Cx, v: &AgentView) -> AgentStateRecord {
    AgentStateRecord {
        tenant: cx.tenant.clone(),
        agent: v.agent.clone(),
        start_ms: v.since_ms,
        start_offset: v.state_offset,
        end_ms: 0,
        state: v.state.clone(),
        reason: v.reason.clone(),
        call: v.call.clone(),
        pos: Position::default(),
    }
}

fn unknown_record(cx: &Cx, call: &str) -> CallRecord {
    CallRecord {
        tenant: cx.tenant.clone(),
        day: String::new(),
        call: call.to_owned(),
        direction: "inbound".into(),
        number: String::new(),
        caller: String::new(),
        queue: String::new(),
        agent: String::new(),
        start_ms: 0,
        end_ms: 0,
        wait_ms: 0,
        ring_ms: 0,
        talk_ms: 0,
        hold_ms: 0,
        wrapup_ms: 0,
        result: String::new(),
        end_cause: String::new(),
        offers: 0,
        plan_version: 0,
        recording: String::new(),
        correlation: String::new(),
        trunk: String::new(),
        sip_code: 0,
        carrier: String::new(),
        pos: Position::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(tenant: &str) -> pb::EventEnvelope {
        let yaml =
            callgrid_config::DEMO_TENANT_YAML.replace("tenant: demo", &format!("tenant: {tenant}"));
        callgrid_codec::configured_envelope(tenant, 1, "demo.yaml", &yaml, 1_000)
    }

    /// Applies envelopes at consecutive offsets of partition 0, each projected.
    fn feeder() -> impl FnMut(&mut Projection<Empty>, pb::EventEnvelope) {
        let mut offset = 0;
        move |p, env| {
            let pos = Position {
                partition: 0,
                offset,
            };
            offset += 1;
            assert_eq!(p.apply(pos, &env).expect("applies"), Outcome::Projected);
        }
    }

    #[test]
    fn the_very_first_record_of_the_log_is_projected() {
        // partition 0, offset 0 is also a new row's default position
        let mut p = Projection::new(Empty);
        let first = Position {
            partition: 0,
            offset: 0,
        };
        assert_eq!(
            p.apply(first, &configured("demo")).expect("applies"),
            Outcome::Projected
        );
        let rows = p.take();
        assert!(rows
            .iter()
            .any(|r| matches!(r, Row::Tenant(t) if t.tenant == "demo" && t.pos == first)));
        let queues = rows.iter().filter(|r| matches!(r, Row::Queue(_))).count();
        assert_eq!(queues, 3, "every queue of the demo tenant has a view");
        // applying it again changes nothing
        assert_eq!(
            p.apply(first, &configured("demo")).expect("applies"),
            Outcome::Projected
        );
        assert!(p.take().is_empty());
    }

    #[test]
    fn the_agents_holds_are_hold_time_and_the_callers_are_only_shown() {
        use callgrid_domain::{AgentId, CallId};
        let mut p = Projection::new(Empty);
        let mut apply = feeder();
        apply(&mut p, configured("demo"));
        let (c, alice) = (CallId::new("c1"), AgentId::new("alice"));
        let call = |at: u64, body: EventBody| {
            callgrid_codec::event_envelope("demo", ("call", "c1"), 1, 1, "", &Event { at, body })
        };
        let held = |by| EventBody::CallHeld {
            call: c.clone(),
            agent: alice.clone(),
            by,
        };
        let resumed = |by| EventBody::CallResumed {
            call: c.clone(),
            agent: alice.clone(),
            by,
        };
        let key = RowKey::Call("demo".into(), "c1".into());
        let steps = [
            (
                10_000,
                EventBody::CallArrived {
                    call: c.clone(),
                    number: "+100".into(),
                    caller: "+200".into(),
                    plan_version: 1,
                    record: false,
                    from_agent: None,
                },
            ),
            (
                20_000,
                EventBody::CallAnswered {
                    call: c.clone(),
                    agent: alice.clone(),
                    queue: None,
                    cancelled: vec![],
                },
            ),
            (30_000, held(Party::Agent)),
            (31_000, held(Party::Caller)),
        ];
        for (at, body) in steps {
            apply(&mut p, call(at, body));
        }
        let v = p.load::<CallView>(&key).unwrap().expect("call view");
        assert_eq!((v.state.as_str(), v.since_ms), ("held", 30_000));
        assert_eq!((v.hold_since_ms, v.caller_hold_since_ms), (30_000, 31_000));
        apply(&mut p, call(40_000, resumed(Party::Agent)));
        apply(&mut p, call(45_000, resumed(Party::Caller)));
        let v = p.load::<CallView>(&key).unwrap().expect("call view");
        assert_eq!((v.state.as_str(), v.since_ms), ("talking", 20_000));
        assert_eq!(
            (v.hold_ms, v.hold_since_ms, v.caller_hold_since_ms),
            (10_000, 0, 0)
        );
        // held again until the caller hangs up: that hold ends with the call
        apply(&mut p, call(50_000, held(Party::Agent)));
        apply(
            &mut p,
            call(
                60_000,
                EventBody::CallEnded {
                    call: c.clone(),
                    cause: EndCause::Caller,
                    agent: Some(alice.clone()),
                    wrapup_ms: 0,
                    queue: None,
                    cancelled: vec![],
                    from_agent: None,
                },
            ),
        );
        let r = p
            .load::<CallRecord>(&RowKey::Record("demo".into(), "c1".into()))
            .unwrap()
            .expect("call record");
        assert_eq!((r.talk_ms, r.hold_ms), (20_000, 20_000));
    }

    /// A store in a map, recording the keys loaded from it.
    #[derive(Clone, Default)]
    struct Recorded {
        rows: Arc<std::sync::Mutex<HashMap<RowKey, Row>>>,
        loaded: Arc<std::sync::Mutex<Vec<RowKey>>>,
    }

    impl RowSource for Recorded {
        fn load(&mut self, key: &RowKey) -> Result<Option<Row>, StoreError> {
            self.loaded.lock().unwrap().push(key.clone());
            Ok(self.rows.lock().unwrap().get(key).cloned())
        }
    }

    #[test]
    fn an_agent_back_from_a_call_it_placed_while_not_ready_is_shown_not_ready_again() {
        use callgrid_domain::{AgentId, CallId, DeviceId, ReasonCode};
        let mut p = Projection::new(Empty);
        let mut put = feeder();
        put(&mut p, configured("demo"));
        let mut apply = |p: &mut Projection<Empty>, at: u64, body: EventBody| {
            let env = callgrid_codec::event_envelope(
                "demo",
                ("agent", "ngoc"),
                1,
                1,
                "",
                &Event { at, body },
            );
            put(p, env);
        };
        let (ngoc, lunch) = (AgentId::new("ngoc"), ReasonCode::new("lunch"));
        let calls = [CallId::new("out-1"), CallId::new("int-1")];
        apply(
            &mut p,
            1_000,
            EventBody::AgentLoggedIn {
                agent: ngoc.clone(),
                devices: vec![DeviceId::new("sip:ngoc@127.0.0.1")],
                not_ready: Some(lunch.clone()),
            },
        );
        let view = |p: &mut Projection<Empty>| {
            let v = p
                .load::<AgentView>(&RowKey::Agent("demo".into(), "ngoc".into()))
                .unwrap()
                .expect("agent view");
            (v.state, v.reason)
        };
        // a click-to-call from not ready (reserved with the reason to return to), then an
        // internal call its phone placed (held with it); after each, not ready for lunch
        apply(
            &mut p,
            2_000,
            EventBody::AgentReserved {
                agent: ngoc.clone(),
                call: calls[0].clone(),
                queue: None,
                devices: vec![],
                ring_timeout_ms: 20_000,
                lease_until: 30_000,
                resume: Some(lunch.clone()),
            },
        );
        apply(
            &mut p,
            3_000,
            EventBody::AgentAnswered {
                agent: ngoc.clone(),
                call: calls[0].clone(),
                lease_until: 99_000,
                resume: None,
            },
        );
        assert_eq!(view(&mut p), ("on_call".into(), String::new()));
        for (at, call, engaged) in [(9_000, &calls[0], false), (20_000, &calls[1], true)] {
            if engaged {
                apply(
                    &mut p,
                    at - 1_000,
                    EventBody::AgentAnswered {
                        agent: ngoc.clone(),
                        call: call.clone(),
                        lease_until: 99_000,
                        resume: Some(lunch.clone()),
                    },
                );
                assert_eq!(view(&mut p).0, "on_call");
            }
            apply(
                &mut p,
                at,
                EventBody::AgentCallEnded {
                    agent: ngoc.clone(),
                    call: call.clone(),
                    talk_ms: 1_000,
                    wrapup_until: None,
                },
            );
            assert_eq!(view(&mut p), ("not_ready".into(), "lunch".into()), "{call}");
        }
        // the agent's own choice replaces the reason: available stays available after a call
        apply(
            &mut p,
            21_000,
            EventBody::AgentAvailable {
                agent: ngoc.clone(),
            },
        );
        apply(
            &mut p,
            22_000,
            EventBody::AgentAnswered {
                agent: ngoc.clone(),
                call: calls[1].clone(),
                lease_until: 99_000,
                resume: None,
            },
        );
        apply(
            &mut p,
            23_000,
            EventBody::AgentCallEnded {
                agent: ngoc,
                call: calls[1].clone(),
                talk_ms: 1_000,
                wrapup_until: None,
            },
        );
        assert_eq!(view(&mut p), ("available".into(), String::new()));
    }

    #[test]
    fn a_state_span_born_after_the_stored_rows_is_not_looked_for_and_an_older_one_is() {
        let store = Recorded::default();
        let write = |p: &mut Projection<Recorded>| {
            let mut rows = store.rows.lock().unwrap();
            for r in p.take() {
                rows.insert(r.key(), r);
            }
        };
        let pos = |offset| Position {
            partition: 0,
            offset,
        };
        let alice = callgrid_domain::AgentId::new("alice");
        let agent = |at: u64, body: EventBody| {
            callgrid_codec::event_envelope(
                "demo",
                ("agent", "alice"),
                1,
                1,
                "",
                &Event { at, body },
            )
        };
        let available = |at| {
            agent(
                at,
                EventBody::AgentAvailable {
                    agent: alice.clone(),
                },
            )
        };
        let not_ready = |at| {
            agent(
                at,
                EventBody::AgentNotReady {
                    agent: alice.clone(),
                    reason: "break".into(),
                },
            )
        };
        let spans_loaded = || {
            store
                .loaded
                .lock()
                .unwrap()
                .iter()
                .filter(|k| matches!(k, RowKey::AgentState(..)))
                .count()
        };
        // the store has the configuration (offset 0); the projection starts at offset 1
        let mut p = Projection::new(store.clone());
        p.apply(pos(0), &configured("demo")).expect("applies");
        write(&mut p);
        let mut p = Projection::new(store.clone());
        p.starting_at(1);
        assert_eq!(
            p.apply(pos(1), &available(10_000)).unwrap(),
            Outcome::Projected
        );
        assert_eq!(
            p.apply(pos(2), &not_ready(20_000)).unwrap(),
            Outcome::Projected
        );
        write(&mut p);
        assert_eq!(spans_loaded(), 0, "spans born at offsets 1 and 2 are new");
        // after forgetting the cache, closing the span born at offset 2 reads it back
        p.forget(3);
        assert_eq!(
            p.apply(pos(3), &available(30_000)).unwrap(),
            Outcome::Projected
        );
        assert_eq!(spans_loaded(), 1, "the open span comes from the store");
        write(&mut p);
        let rows = store.rows.lock().unwrap();
        let span = |at, offset| match rows.get(&RowKey::AgentState(
            "demo".into(),
            "alice".into(),
            at,
            offset,
        )) {
            Some(Row::AgentState(s)) => (s.state.clone(), s.end_ms),
            other => panic!("no span at {at}: {other:?}"),
        };
        assert_eq!(span(10_000, 1), ("available".to_owned(), 20_000));
        assert_eq!(span(20_000, 2), ("not_ready".to_owned(), 30_000));
    }

    #[test]
    fn events_without_a_configuration_or_tenant_are_skipped_with_a_reason() {
        let mut p = Projection::new(Empty);
        let mut env = configured("demo");
        env.tenant.clear();
        let pos = Position {
            partition: 1,
            offset: 7,
        };
        assert!(matches!(p.apply(pos, &env), Ok(Outcome::Skipped(_))));
        let login = Event {
            at: 5_000,
            body: EventBody::AgentAvailable {
                agent: callgrid_domain::AgentId::new("alice"),
            },
        };
        let env = callgrid_codec::event_envelope("demo", ("agent", "alice"), 1, 1, "", &login);
        match p.apply(pos, &env).expect("no store error") {
            Outcome::Skipped(why) => assert!(why.contains("before its configuration"), "{why}"),
            Outcome::Projected => panic!("projected without a configuration"),
        }
        let mut garbage = env.clone();
        garbage.event = None;
        assert!(matches!(p.apply(pos, &garbage), Ok(Outcome::Skipped(_))));
        assert!(p.take().is_empty(), "nothing written");
    }
}
