//! A campaign's contacts and what happens to them (D2): which contact is dialled next, how
//! an attempt's end and the agent's wrap-up code decide the contact's next call, and the
//! rules nobody may break: a contact is never dialled twice at once, never again after a
//! final result, never outside its calling window, and a number on the do-not-call list or
//! the tenant's blocklist is never dialled (checked at the moment of dialling, by the
//! caller's `screen`, not when the list was loaded).
//!
//! Event-sourced like the domain's state machines: the methods that take a request check it
//! and return the events it makes (or a [`CoreError`]); [`ContactList::apply`] is the only
//! writer of state, so a list is rebuilt by applying its journal.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use callgrid_numbers::E164;

use crate::error::CoreError;
use crate::learn::Ms;
use crate::window::{zone, Window, Zones};

/// A contact's id, unique in its campaign.
pub type ContactId = u64;

/// How an attempt ended on the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// Answered and taken by an agent: the agent's wrap-up code decides what follows. (A
    /// machine answering counts as a person: there is no answering-machine detection.)
    Connected,
    /// Answered, but no agent took it within the grace time: it heard the campaign's message.
    Abandoned,
    /// Busy.
    Busy,
    /// Rang out without an answer.
    NoAnswer,
    /// Anything else: rejected, unreachable, switched off, no trunk.
    Failed,
}

/// When to try a contact again after an attempt ended this way, and how many attempts a
/// contact gets in all before it is given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryRule {
    /// Delay from the attempt's end to the next.
    pub delay_ms: Ms,
    /// Attempts in all (this one included) after which the contact is not tried again.
    pub max_attempts: u32,
}

/// A campaign's retry rules, per way an attempt ends (D2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// After a busy signal.
    pub busy: RetryRule,
    /// After ringing out.
    pub no_answer: RetryRule,
    /// After a failure.
    pub failed: RetryRule,
    /// After an abandoned call (no agent in time).
    pub abandoned: RetryRule,
    /// After a wrap-up code whose effect is [`Effect::Retry`].
    pub retry: RetryRule,
}

const MINUTE: Ms = 60_000;

impl Default for Rules {
    fn default() -> Rules {
        let rule = |minutes, max_attempts| RetryRule {
            delay_ms: minutes * MINUTE,
            max_attempts,
        };
        Rules {
            busy: rule(15, 3),
            no_answer: rule(60, 3),
            failed: rule(120, 2),
            abandoned: rule(30, 3),
            retry: rule(60, 5),
        }
    }
}

impl Rules {
    /// Retries off: every contact is attempted once.
    pub fn once() -> Rules {
        let once = RetryRule {
            delay_ms: 0,
            max_attempts: 1,
        };
        Rules {
            busy: once,
            no_answer: once,
            failed: once,
            abandoned: once,
            retry: once,
        }
    }

    fn after(&self, how: Ended) -> Option<RetryRule> {
        match how {
            Ended::Connected => None,
            Ended::Abandoned => Some(self.abandoned),
            Ended::Busy => Some(self.busy),
            Ended::NoAnswer => Some(self.no_answer),
            Ended::Failed => Some(self.failed),
        }
    }
}

/// What an agent's wrap-up code does with the contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Done with this contact (sale, refused, wrong number, ...).
    Final,
    /// Try again by the retry rule.
    Retry,
    /// Never call this contact again (the service also puts its number on the tenant's
    /// do-not-call list).
    DoNotCall,
    /// Call back at this time, any agent; callbacks outrank ordinary contacts.
    Callback {
        /// When.
        at: Ms,
    },
    /// Call back at this time with this agent.
    PersonalCallback {
        /// When.
        at: Ms,
        /// The agent.
        agent: String,
    },
}

/// A contact as imported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewContact {
    /// Its id in the campaign.
    pub id: ContactId,
    /// Its number, E.164 (`+84912345678`; the service normalises what it imports).
    pub number: String,
    /// Higher first.
    pub priority: i32,
    /// Its own time zone (an IANA name), if the list has one.
    pub zone: Option<String>,
    /// The other columns, shown to the agent (screen pop).
    pub fields: BTreeMap<String, String>,
}

/// Who may take a callback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Callback {
    /// Any agent of the campaign.
    Any,
    /// This agent only (a personal callback).
    Agent(String),
}

/// Why a contact is not dialled any more.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Done {
    /// An agent gave a final wrap-up code.
    Final {
        /// The code.
        code: String,
    },
    /// An agent marked it do-not-call.
    DoNotCall,
    /// Its attempts are used up; the last ended this way.
    Exhausted {
        /// How the last attempt ended.
        last: Ended,
    },
    /// Its number was on the do-not-call list or the blocklist when it was due.
    Screened {
        /// Which.
        why: Skip,
    },
    /// Removed from the list.
    Removed,
}

/// Why a due contact was not dialled, found at the moment of dialling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// Its number is on the tenant's do-not-call list.
    DoNotCall,
    /// Its number is on the tenant's blocklist.
    Blocklisted,
}

/// Where a contact is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Waiting to be dialled from `due` on.
    Ready {
        /// Not before.
        due: Ms,
        /// A callback, if it is one.
        callback: Option<Callback>,
    },
    /// Being dialled (attempt `attempt`, started at `since`).
    InCall {
        /// Its attempt number (from 1).
        attempt: u32,
        /// Dialled at.
        since: Ms,
        /// The callback it is, if it is one (kept if it is not reached).
        callback: Option<Callback>,
    },
    /// Talked with an agent on this attempt; the agent's wrap-up code is due.
    Connected {
        /// The attempt.
        attempt: u32,
    },
    /// Not dialled again.
    Done(Done),
}

/// A contact and where it is.
#[derive(Clone, Debug)]
pub struct Contact {
    /// As imported.
    pub spec: NewContact,
    /// Attempts made.
    pub attempts: u32,
    /// Where it is.
    pub status: Status,
    /// Removed from the list (the call in progress, if any, goes on).
    pub removed: bool,
    /// The zones its window is read in, and their key (the zone's name or the prefix).
    zones: Arc<[TimeZone]>,
    zone_key: Arc<str>,
}

impl Contact {
    /// The zones its calling window is read in.
    pub fn zones(&self) -> &[TimeZone] {
        &self.zones
    }
}

/// A list's event: what happened to a contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListEvent {
    /// Imported or added.
    Added {
        /// The contact.
        contact: NewContact,
        /// Due from.
        at: Ms,
    },
    /// Removed (a call in progress goes on; the contact is not dialled again).
    Removed {
        /// The contact.
        id: ContactId,
    },
    /// An attempt started: journaled before the call is placed, so a restart never places
    /// the same attempt twice.
    Dialled {
        /// The contact.
        id: ContactId,
        /// Its attempt number.
        attempt: u32,
        /// At.
        at: Ms,
    },
    /// An attempt ended on the network.
    Ended {
        /// The contact.
        id: ContactId,
        /// The attempt.
        attempt: u32,
        /// How.
        how: Ended,
        /// At.
        at: Ms,
    },
    /// The agent's wrap-up code for a connected attempt.
    WrappedUp {
        /// The contact.
        id: ContactId,
        /// The attempt.
        attempt: u32,
        /// The code.
        code: String,
        /// What it does.
        effect: Effect,
        /// At.
        at: Ms,
    },
    /// A due contact not dialled: its number was screened out at the moment of dialling.
    Screened {
        /// The contact.
        id: ContactId,
        /// Why.
        why: Skip,
        /// At.
        at: Ms,
    },
    /// Given another round of attempts (lead recycling).
    Recycled {
        /// The contact.
        id: ContactId,
        /// Due from.
        at: Ms,
    },
}

/// Counts of a list, for the campaign's status and statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListStats {
    /// Contacts in the list (removed ones included).
    pub contacts: u64,
    /// Waiting to be dialled (due or not).
    pub ready: u64,
    /// Being dialled or talking.
    pub in_call: u64,
    /// Not dialled again.
    pub done: u64,
    /// Attempts made.
    pub attempts: u64,
    /// Attempts by how they ended.
    pub ended: BTreeMap<Ended, u64>,
    /// Wrap-up codes given.
    pub codes: BTreeMap<String, u64>,
    /// Contacts screened out at dialling (do-not-call, blocklist).
    pub screened: u64,
}

/// Order of due contacts: personal callbacks, callbacks (both first in, first out), then
/// ordinary contacts by priority (higher first) and due time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    class: u8,
    key: i64,
    due: Ms,
}

impl Rank {
    fn of(due: Ms, callback: Option<&Callback>, priority: i32) -> Rank {
        match callback {
            Some(Callback::Agent(_)) => Rank {
                class: 0,
                key: 0,
                due,
            },
            Some(Callback::Any) => Rank {
                class: 1,
                key: 0,
                due,
            },
            None => Rank {
                class: 2,
                key: -i64::from(priority),
                due,
            },
        }
    }
}

/// How a campaign calls: its rules, its calling window and where its contacts are.
#[derive(Clone, Debug)]
pub struct Calling {
    /// Retry rules.
    pub rules: Rules,
    /// The calling window, in the callee's local time.
    pub window: Window,
    /// Zones by number prefix.
    pub zones: Zones,
    /// The zone of a contact whose number's prefix is not in `zones` and who has none of
    /// its own (the campaign's, or the tenant's).
    pub default_zone: TimeZone,
}

/// A campaign's contacts.
#[derive(Clone, Debug)]
pub struct ContactList {
    calling: Calling,
    contacts: HashMap<ContactId, Contact>,
    /// Contacts waiting to be dialled, in the order they are taken.
    queue: BTreeSet<(Rank, ContactId)>,
    stats: ListStats,
    default_zones: Arc<[TimeZone]>,
}

impl ContactList {
    /// An empty list.
    pub fn new(calling: Calling) -> ContactList {
        let default_zones: Arc<[TimeZone]> = Arc::from(vec![calling.default_zone.clone()]);
        ContactList {
            calling,
            contacts: HashMap::new(),
            queue: BTreeSet::new(),
            stats: ListStats::default(),
            default_zones,
        }
    }

    /// An empty list that calls the same way.
    pub fn clone_empty(&self) -> ContactList {
        ContactList::new(self.calling.clone())
    }

    /// How it calls.
    pub fn calling(&self) -> &Calling {
        &self.calling
    }

    /// A contact.
    pub fn get(&self, id: ContactId) -> Option<&Contact> {
        self.contacts.get(&id)
    }

    /// Every contact, in no order.
    pub fn contacts(&self) -> impl Iterator<Item = &Contact> {
        self.contacts.values()
    }

    /// Its counts.
    pub fn stats(&self) -> &ListStats {
        &self.stats
    }

    /// Adds a contact, due from `now`.
    pub fn add(&self, contact: NewContact, now: Ms) -> Result<ListEvent, CoreError> {
        if self.contacts.contains_key(&contact.id) {
            return Err(CoreError::DuplicateContact(contact.id));
        }
        if contact.number.parse::<E164>().is_err() {
            return Err(CoreError::NotE164 {
                id: contact.id,
                number: contact.number,
            });
        }
        if let Some(z) = &contact.zone {
            zone(z)?;
        }
        Ok(ListEvent::Added { contact, at: now })
    }

    /// Removes a contact: it is not dialled again (a call in progress goes on).
    pub fn remove(&self, id: ContactId) -> Result<ListEvent, CoreError> {
        self.contact(id)?;
        Ok(ListEvent::Removed { id })
    }

    /// How attempt `attempt` of contact `id` ended.
    pub fn ended(
        &self,
        id: ContactId,
        attempt: u32,
        how: Ended,
        now: Ms,
    ) -> Result<ListEvent, CoreError> {
        let c = self.contact(id)?;
        match &c.status {
            Status::InCall { attempt: a, .. } if *a == attempt => Ok(ListEvent::Ended {
                id,
                attempt,
                how,
                at: now,
            }),
            other => Err(CoreError::NotInProgress {
                id,
                attempt,
                state: describe(other),
            }),
        }
    }

    /// The agent's wrap-up code for a connected attempt, and its effect.
    pub fn wrapped_up(
        &self,
        id: ContactId,
        attempt: u32,
        code: &str,
        effect: Effect,
        now: Ms,
    ) -> Result<ListEvent, CoreError> {
        let c = self.contact(id)?;
        let connected = match &c.status {
            Status::Connected { attempt: a } => *a == attempt,
            Status::InCall { attempt: a, .. } if *a == attempt => {
                return Err(CoreError::NotConnected { id, attempt })
            }
            _ => false,
        };
        if !connected {
            return Err(CoreError::NotInProgress {
                id,
                attempt,
                state: describe(&c.status),
            });
        }
        Ok(ListEvent::WrappedUp {
            id,
            attempt,
            code: code.to_string(),
            effect,
            at: now,
        })
    }

    /// Gives contacts whose attempts are used up, the last ending one of `how`, another round
    /// of attempts from `now` (lead recycling).
    pub fn recycle(&self, how: &[Ended], now: Ms) -> Vec<ListEvent> {
        let mut ids: Vec<ContactId> = self
            .contacts
            .values()
            .filter(|c| {
                !c.removed
                    && matches!(&c.status, Status::Done(Done::Exhausted { last }) if how.contains(last))
            })
            .map(|c| c.spec.id)
            .collect();
        ids.sort_unstable();
        ids.into_iter()
            .map(|id| ListEvent::Recycled { id, at: now })
            .collect()
    }

    /// Up to `n` contacts to dial now, for agent `agent` (whose personal callbacks then come
    /// first) or for the campaign's pool (personal callbacks wait for their agent): the
    /// events to apply, `Dialled` for each contact to call and `Screened` for each due contact
    /// `screen` refused (its number on the do-not-call list or the blocklist now). Contacts
    /// whose window is closed now are passed over and stay due.
    pub fn pick(
        &self,
        now: Ms,
        n: usize,
        agent: Option<&str>,
        screen: &mut dyn FnMut(&Contact) -> Option<Skip>,
    ) -> Vec<ListEvent> {
        let mut events = Vec::new();
        let mut dialled = 0;
        let mut open: HashMap<&str, bool> = HashMap::new();
        let mut cursor: Bound<(Rank, ContactId)> = Bound::Unbounded;
        while dialled < n {
            let Some(&(rank, id)) = self.queue.range((cursor, Bound::Unbounded)).next() else {
                break;
            };
            if rank.due > now {
                // nothing more of this class and priority is due: on to the next
                cursor = Bound::Excluded((
                    Rank {
                        due: Ms::MAX,
                        ..rank
                    },
                    ContactId::MAX,
                ));
                continue;
            }
            cursor = Bound::Excluded((rank, id));
            let c = &self.contacts[&id];
            if let Status::Ready {
                callback: Some(Callback::Agent(owner)),
                ..
            } = &c.status
            {
                if agent != Some(owner.as_str()) {
                    continue;
                }
            }
            let zones = &c.zones;
            let is_open = *open
                .entry(&c.zone_key)
                .or_insert_with(|| self.calling.window.open_in(zones, now));
            if !is_open {
                continue;
            }
            if let Some(why) = screen(c) {
                events.push(ListEvent::Screened { id, why, at: now });
                continue;
            }
            events.push(ListEvent::Dialled {
                id,
                attempt: c.attempts + 1,
                at: now,
            });
            dialled += 1;
        }
        events
    }

    /// Applies an event: the only writer of the list's state.
    pub fn apply(&mut self, event: &ListEvent) {
        match event {
            ListEvent::Added { contact, at } => {
                let (zones, zone_key) = self.zones_of(contact);
                let rank = Rank::of(*at, None, contact.priority);
                let c = Contact {
                    spec: contact.clone(),
                    attempts: 0,
                    status: Status::Ready {
                        due: *at,
                        callback: None,
                    },
                    removed: false,
                    zones,
                    zone_key,
                };
                if self.contacts.insert(contact.id, c).is_none() {
                    self.stats.contacts += 1;
                    self.stats.ready += 1;
                    self.queue.insert((rank, contact.id));
                }
            }
            ListEvent::Removed { id } => {
                let Some(c) = self.contacts.get_mut(id) else {
                    return;
                };
                c.removed = true;
                if matches!(c.status, Status::Ready { .. }) {
                    self.set(*id, Status::Done(Done::Removed));
                }
            }
            ListEvent::Dialled { id, attempt, at } => {
                let Some(c) = self.contacts.get_mut(id) else {
                    return;
                };
                c.attempts = *attempt;
                let callback = match &c.status {
                    Status::Ready { callback, .. } => callback.clone(),
                    _ => None,
                };
                self.stats.attempts += 1;
                self.set(
                    *id,
                    Status::InCall {
                        attempt: *attempt,
                        since: *at,
                        callback,
                    },
                );
            }
            ListEvent::Ended {
                id,
                attempt,
                how,
                at,
            } => {
                *self.stats.ended.entry(*how).or_default() += 1;
                let Some(c) = self.contacts.get(id) else {
                    return;
                };
                if !matches!(c.status, Status::InCall { attempt: a, .. } if a == *attempt) {
                    return; // not the attempt in progress: counted, nothing else
                }
                let next = match self.calling.rules.after(*how) {
                    None => Status::Connected { attempt: *attempt },
                    Some(rule) => {
                        let callback = match &c.status {
                            Status::InCall { callback, .. } => callback.clone(),
                            _ => None,
                        };
                        retry(c, rule, *how, *at, callback)
                    }
                };
                self.settle(*id, next);
            }
            ListEvent::WrappedUp {
                id,
                attempt,
                code,
                effect,
                at,
            } => {
                *self.stats.codes.entry(code.clone()).or_default() += 1;
                let Some(c) = self.contacts.get(id) else {
                    return;
                };
                if !matches!(c.status, Status::Connected { attempt: a } if a == *attempt) {
                    return;
                }
                let next = match effect {
                    Effect::Final => Status::Done(Done::Final { code: code.clone() }),
                    Effect::DoNotCall => Status::Done(Done::DoNotCall),
                    Effect::Retry => {
                        retry(c, self.calling.rules.retry, Ended::Connected, *at, None)
                    }
                    Effect::Callback { at } => Status::Ready {
                        due: *at,
                        callback: Some(Callback::Any),
                    },
                    Effect::PersonalCallback { at, agent } => Status::Ready {
                        due: *at,
                        callback: Some(Callback::Agent(agent.clone())),
                    },
                };
                self.settle(*id, next);
            }
            ListEvent::Screened { id, why, .. } => {
                self.stats.screened += 1;
                self.set(*id, Status::Done(Done::Screened { why: *why }));
            }
            ListEvent::Recycled { id, at } => {
                if let Some(c) = self.contacts.get_mut(id) {
                    c.attempts = 0;
                }
                self.set(
                    *id,
                    Status::Ready {
                        due: *at,
                        callback: None,
                    },
                );
            }
        }
    }

    /// Moves a contact to `status` after a call, or to the end if it was removed meanwhile.
    fn settle(&mut self, id: ContactId, status: Status) {
        let removed = self.contacts.get(&id).is_some_and(|c| c.removed);
        if removed && matches!(status, Status::Ready { .. }) {
            self.set(id, Status::Done(Done::Removed));
        } else {
            self.set(id, status);
        }
    }

    /// Moves a contact to `status`, keeping the queue and the counts in step.
    fn set(&mut self, id: ContactId, status: Status) {
        let Some(c) = self.contacts.get_mut(&id) else {
            return;
        };
        let bucket = |s: &Status| match s {
            Status::Ready { .. } => 0,
            Status::InCall { .. } | Status::Connected { .. } => 1,
            Status::Done(_) => 2,
        };
        if let Status::Ready { due, callback } = &c.status {
            self.queue
                .remove(&(Rank::of(*due, callback.as_ref(), c.spec.priority), id));
        }
        for (b, delta) in [(bucket(&c.status), -1i64), (bucket(&status), 1)] {
            let n = match b {
                0 => &mut self.stats.ready,
                1 => &mut self.stats.in_call,
                _ => &mut self.stats.done,
            };
            *n = n.saturating_add_signed(delta);
        }
        if let Status::Ready { due, callback } = &status {
            self.queue
                .insert((Rank::of(*due, callback.as_ref(), c.spec.priority), id));
        }
        c.status = status;
    }

    fn contact(&self, id: ContactId) -> Result<&Contact, CoreError> {
        self.contacts.get(&id).ok_or(CoreError::UnknownContact(id))
    }

    fn zones_of(&self, contact: &NewContact) -> (Arc<[TimeZone]>, Arc<str>) {
        if let Some(tz) = contact.zone.as_deref().and_then(|z| zone(z).ok()) {
            let key = contact.zone.as_deref().unwrap_or_default();
            return (Arc::from(vec![tz]), Arc::from(key));
        }
        match self.calling.zones.of(&contact.number) {
            Some((prefix, zones)) => (Arc::from(zones.to_vec()), Arc::from(format!("+{prefix}"))),
            None => (self.default_zones.clone(), Arc::from("")),
        }
    }
}

/// The status after an attempt that did not end the contact: due again after the rule's
/// delay (a callback that was not reached stays a callback and keeps its rank), or done if its
/// attempts are used up.
fn retry(c: &Contact, rule: RetryRule, how: Ended, at: Ms, callback: Option<Callback>) -> Status {
    if c.attempts >= rule.max_attempts {
        return Status::Done(Done::Exhausted { last: how });
    }
    Status::Ready {
        due: at.saturating_add(rule.delay_ms),
        callback,
    }
}

fn describe(status: &Status) -> String {
    match status {
        Status::Ready { .. } => "waiting to be dialled".into(),
        Status::InCall { attempt, .. } => format!("attempt {attempt} in progress"),
        Status::Connected { attempt } => format!("attempt {attempt} awaiting its wrap-up"),
        Status::Done(d) => format!("done: {d:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07 (a Monday) 03:00 UTC: 10:00 in Viet Nam.
    const T0: Ms = 1_796_601_600_000 + 3 * 3_600_000;
    const S: Ms = 1_000;

    fn calling(rules: Rules) -> Calling {
        Calling {
            rules,
            window: Window::default(),
            zones: Zones::shipped(),
            default_zone: zone("Asia/Ho_Chi_Minh").unwrap(),
        }
    }

    fn contact(id: ContactId, number: &str, priority: i32) -> NewContact {
        NewContact {
            id,
            number: number.into(),
            priority,
            zone: None,
            fields: BTreeMap::from([("name".into(), format!("customer {id}"))]),
        }
    }

    fn list(rules: Rules, contacts: &[NewContact]) -> ContactList {
        let mut l = ContactList::new(calling(rules));
        for c in contacts {
            let e = l.add(c.clone(), T0).unwrap();
            l.apply(&e);
        }
        l
    }

    fn vn(id: ContactId) -> NewContact {
        contact(id, &format!("+8491234{id:04}"), 0)
    }

    /// Picks and applies; the ids dialled.
    fn dial(l: &mut ContactList, now: Ms, n: usize) -> Vec<ContactId> {
        dial_as(l, now, n, None, &mut |_| None)
    }

    fn dial_as(
        l: &mut ContactList,
        now: Ms,
        n: usize,
        agent: Option<&str>,
        screen: &mut dyn FnMut(&Contact) -> Option<Skip>,
    ) -> Vec<ContactId> {
        let events = l.pick(now, n, agent, screen);
        let mut ids = Vec::new();
        for e in &events {
            if let ListEvent::Dialled { id, .. } = e {
                ids.push(*id);
            }
            l.apply(e);
        }
        ids
    }

    fn end(l: &mut ContactList, id: ContactId, how: Ended, now: Ms) {
        let attempt = l.get(id).unwrap().attempts;
        let e = l.ended(id, attempt, how, now).unwrap();
        l.apply(&e);
    }

    fn wrap(l: &mut ContactList, id: ContactId, code: &str, effect: Effect, now: Ms) {
        let attempt = l.get(id).unwrap().attempts;
        let e = l.wrapped_up(id, attempt, code, effect, now).unwrap();
        l.apply(&e);
    }

    #[test]
    fn callbacks_come_first_in_order_then_contacts_by_priority() {
        let mut l = list(
            Rules::default(),
            &[
                vn(1),
                contact(2, "+84912340002", 5),
                vn(3),
                contact(4, "+84912340004", 5),
                vn(5),
                vn(6),
            ],
        );
        // 5 and 6 become callbacks (6 asked first)
        assert_eq!(dial(&mut l, T0, 6), vec![2, 4, 1, 3, 5, 6]);
        for id in [1, 2, 3, 4] {
            end(&mut l, id, Ended::Busy, T0 + S);
        }
        for (id, at) in [(6, T0 + 60 * S), (5, T0 + 120 * S)] {
            end(&mut l, id, Ended::Connected, T0 + S);
            wrap(
                &mut l,
                id,
                "call me later",
                Effect::Callback { at },
                T0 + 2 * S,
            );
        }
        // busy ones are due again after 15 minutes; the callbacks before them, first asked first
        assert_eq!(dial(&mut l, T0 + 30 * S, 6), Vec::<ContactId>::new());
        assert_eq!(dial(&mut l, T0 + 16 * 60 * S, 6), vec![6, 5, 2, 4, 1, 3]);
    }

    #[test]
    fn a_contact_is_never_dialled_twice_at_once_nor_after_a_final_result() {
        let mut l = list(Rules::default(), &[vn(1), vn(2)]);
        assert_eq!(dial(&mut l, T0, 1), vec![1]);
        // 1 is in a call: the next pick takes 2, then nothing
        assert_eq!(dial(&mut l, T0, 5), vec![2]);
        assert_eq!(dial(&mut l, T0 + 3_600 * S, 5), Vec::<ContactId>::new());
        end(&mut l, 1, Ended::Connected, T0 + 10 * S);
        assert_eq!(l.get(1).unwrap().status, Status::Connected { attempt: 1 });
        wrap(&mut l, 1, "sale", Effect::Final, T0 + 20 * S);
        end(&mut l, 2, Ended::Connected, T0 + 10 * S);
        wrap(&mut l, 2, "not interested", Effect::DoNotCall, T0 + 20 * S);
        assert_eq!(dial(&mut l, T0 + 3_600 * S, 5), Vec::<ContactId>::new());
        assert_eq!(
            l.get(1).unwrap().status,
            Status::Done(Done::Final {
                code: "sale".into()
            })
        );
        assert_eq!(l.get(2).unwrap().status, Status::Done(Done::DoNotCall));
        // a late or repeated report of an attempt is refused, naming what the contact does
        let e = l.ended(1, 1, Ended::Busy, T0).unwrap_err().to_string();
        assert!(e.contains("attempt 1 is not in progress"), "{e}");
        let s = l.stats();
        assert_eq!((s.contacts, s.done, s.attempts), (2, 2, 2));
        assert_eq!(s.codes.get("sale"), Some(&1));
    }

    #[test]
    fn retries_follow_the_rule_of_how_the_attempt_ended_until_attempts_are_used_up() {
        let mut l = list(Rules::default(), &[vn(1)]);
        let mut now = T0;
        for attempt in 1..=3 {
            assert_eq!(dial(&mut l, now, 1), vec![1], "attempt {attempt}");
            end(&mut l, 1, Ended::NoAnswer, now + 20 * S);
            // due again an hour (the no-answer delay) after the attempt ended, not before
            now += 20 * S + 3_600 * S;
            assert_eq!(dial(&mut l, now - S, 1), Vec::<ContactId>::new());
        }
        assert_eq!(
            l.get(1).unwrap().status,
            Status::Done(Done::Exhausted {
                last: Ended::NoAnswer
            })
        );
        // lead recycling gives it another round
        let events = l.recycle(&[Ended::NoAnswer], now);
        assert_eq!(events, vec![ListEvent::Recycled { id: 1, at: now }]);
        l.apply(&events[0]);
        assert_eq!(dial(&mut l, now, 1), vec![1]);
        assert_eq!(l.get(1).unwrap().attempts, 1);
        // retries off: one attempt each
        let mut l = list(Rules::once(), &[vn(1)]);
        dial(&mut l, T0, 1);
        end(&mut l, 1, Ended::Busy, T0 + S);
        assert!(matches!(l.get(1).unwrap().status, Status::Done(_)));
    }

    #[test]
    fn the_do_not_call_list_and_the_blocklist_are_read_at_the_moment_of_dialling() {
        let mut l = list(Rules::default(), &[vn(1), vn(2), vn(3)]);
        // number 2 went on the do-not-call list after the list was loaded
        let mut screen = |c: &Contact| (c.spec.id == 2).then_some(Skip::DoNotCall);
        assert_eq!(dial_as(&mut l, T0, 2, None, &mut screen), vec![1, 3]);
        assert_eq!(
            l.get(2).unwrap().status,
            Status::Done(Done::Screened {
                why: Skip::DoNotCall
            })
        );
        assert_eq!(l.stats().screened, 1);
    }

    #[test]
    fn a_contact_whose_window_is_closed_waits_while_others_are_dialled() {
        // 10:00 in Viet Nam, 03:00 in New York, 13:00 in Tokyo... and a contact in Hawaii
        // by its own zone (17:00 the day before)
        let mut honolulu = contact(3, "+84912340003", 9);
        honolulu.zone = Some("Pacific/Honolulu".into());
        let mut l = list(
            Rules::default(),
            &[
                contact(1, "+12125550100", 9),
                vn(2),
                honolulu,
                contact(4, "+81312345678", 0),
            ],
        );
        assert_eq!(dial(&mut l, T0, 10), vec![3, 2, 4]);
        // New York opens at 08:00 there, 13:00 UTC
        assert_eq!(
            dial(&mut l, T0 + 9 * 3_600 * S, 10),
            Vec::<ContactId>::new()
        );
        assert_eq!(dial(&mut l, T0 + 10 * 3_600 * S, 10), vec![1]);
    }

    #[test]
    fn a_personal_callback_waits_for_its_agent() {
        let mut l = list(Rules::default(), &[vn(1), vn(2)]);
        dial(&mut l, T0, 1);
        end(&mut l, 1, Ended::Connected, T0 + S);
        let at = T0 + 600 * S;
        wrap(
            &mut l,
            1,
            "callback",
            Effect::PersonalCallback {
                at,
                agent: "lan".into(),
            },
            T0 + 2 * S,
        );
        // the pool and another agent pass it over; lan gets it first
        assert_eq!(dial_as(&mut l, at, 5, Some("minh"), &mut |_| None), vec![2]);
        end(&mut l, 2, Ended::Busy, at + S);
        assert_eq!(dial(&mut l, at + 2 * S, 5), Vec::<ContactId>::new());
        assert_eq!(
            dial_as(&mut l, at + 2 * S, 1, Some("lan"), &mut |_| None),
            vec![1]
        );
        // not reached: still lan's, still first
        end(&mut l, 1, Ended::NoAnswer, at + 30 * S);
        assert!(matches!(
            &l.get(1).unwrap().status,
            Status::Ready { callback: Some(Callback::Agent(a)), .. } if a == "lan"
        ));
    }

    #[test]
    fn a_contact_removed_during_its_call_keeps_its_wrap_up_and_is_not_dialled_again() {
        let mut l = list(Rules::default(), &[vn(1), vn(2)]);
        dial(&mut l, T0, 2);
        for id in [1, 2] {
            let e = l.remove(id).unwrap();
            l.apply(&e);
        }
        end(&mut l, 1, Ended::Busy, T0 + S);
        end(&mut l, 2, Ended::Connected, T0 + S);
        wrap(&mut l, 2, "wrong number", Effect::Retry, T0 + 2 * S);
        for id in [1, 2] {
            assert_eq!(l.get(id).unwrap().status, Status::Done(Done::Removed));
        }
        assert_eq!(l.stats().codes.get("wrong number"), Some(&1));
        assert!(l.recycle(&[Ended::Busy], T0).is_empty());
        assert_eq!(dial(&mut l, T0 + 86_400 * S, 5), Vec::<ContactId>::new());
    }

    #[test]
    fn bad_contacts_and_reports_are_refused_naming_what_is_wrong() {
        let mut l = list(Rules::default(), &[vn(1)]);
        let e = l.add(vn(1), T0).unwrap_err();
        assert_eq!(e, CoreError::DuplicateContact(1));
        let e = l
            .add(contact(2, "0912345678", 0), T0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`0912345678` is not in E.164 form"), "{e}");
        let mut z = vn(3);
        z.zone = Some("Mars/Olympus".into());
        let e = l.add(z, T0).unwrap_err().to_string();
        assert!(e.contains("unknown time zone `Mars/Olympus`"), "{e}");
        assert_eq!(l.remove(9).unwrap_err(), CoreError::UnknownContact(9));
        dial(&mut l, T0, 1);
        let e = l.wrapped_up(1, 1, "sale", Effect::Final, T0).unwrap_err();
        assert_eq!(e, CoreError::NotConnected { id: 1, attempt: 1 });
        let e = l.ended(1, 2, Ended::Busy, T0).unwrap_err().to_string();
        assert!(
            e.contains("attempt 2 is not in progress (attempt 1 in progress)"),
            "{e}"
        );
    }

    #[test]
    fn a_list_rebuilt_from_its_journal_is_the_list() {
        let mut l = ContactList::new(calling(Rules::default()));
        let mut journal = Vec::new();
        let mut record = |l: &mut ContactList, e: ListEvent| {
            l.apply(&e);
            journal.push(e);
        };
        for id in 1..=5 {
            let e = l.add(vn(id), T0).unwrap();
            record(&mut l, e);
        }
        for e in l.pick(T0, 3, None, &mut |c| {
            (c.spec.id == 2).then_some(Skip::Blocklisted)
        }) {
            record(&mut l, e);
        }
        let e = l.ended(1, 1, Ended::Busy, T0 + S).unwrap();
        record(&mut l, e);
        let e = l.ended(3, 1, Ended::Connected, T0 + S).unwrap();
        record(&mut l, e);
        let e = l
            .wrapped_up(
                3,
                1,
                "callback",
                Effect::Callback { at: T0 + 60 * S },
                T0 + 2 * S,
            )
            .unwrap();
        record(&mut l, e);
        let mut rebuilt = ContactList::new(calling(Rules::default()));
        for e in &journal {
            rebuilt.apply(e);
        }
        assert_eq!(rebuilt.stats(), l.stats());
        for id in 1..=5 {
            assert_eq!(rebuilt.get(id).unwrap().status, l.get(id).unwrap().status);
        }
        assert_eq!(
            rebuilt.pick(T0 + 3_600 * S, 9, None, &mut |_| None),
            l.pick(T0 + 3_600 * S, 9, None, &mut |_| None)
        );
        // the journal is plain data: it goes through serde unchanged
        let json = serde_json::to_string(&journal).unwrap();
        assert_eq!(
            serde_json::from_str::<Vec<ListEvent>>(&json).unwrap(),
            journal
        );
    }
}
