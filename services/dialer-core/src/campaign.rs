//! A campaign (issue 19): its settings and run state, its floor (the agents on it and its
//! calls not with an agent, as the router and the edge report them), what it has learned,
//! its pacer and its contacts. [`Campaign::tick`] is the dial decision: how many calls the
//! mode and the pacing allow now, which contacts, and the evidence why (D3), as events.
//!
//! Like the contact list it wraps, it is event-sourced: the methods check a request or an
//! observation and return events; [`Campaign::apply`] is the only writer (the learning and
//! the pacing's threshold included), so a campaign is its journal applied. Bridging an
//! answered call to a free agent is the router's (a campaign's answered calls wait in its
//! queue for the grace time): the campaign is told who took it or that it was abandoned.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::contacts::{
    Contact, ContactId, ContactList, Effect, Ended, ListEvent, ListStats, NewContact, Skip,
};
use crate::error::CoreError;
use crate::learn::{Learned, Ms, Outcome};
use crate::pacing::{AgentNow, CallNow, Evidence, Floor, Pacer, Predictive, Progressive};

/// How a campaign calls (D1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The agent takes the next contact and calls it: nothing is dialled for the agent.
    Manual,
    /// The agent gets the next contact to read, then its phone and then the customer's are
    /// called.
    Preview {
        /// Reading time before the call starts.
        reading_ms: Ms,
    },
    /// Agent first, then the customer: one call per free agent.
    Progressive,
    /// Customers first, answered calls to free agents, paced to the abandonment target.
    Predictive,
    /// Agentless: a message, a keypad survey, or "press 1 for an agent"; `lines` at once.
    AutoCall {
        /// Calls at once.
        lines: u32,
    },
    /// Callbacks owed to customers (queue callbacks, missed calls), one per free agent.
    AutoCallback,
}

impl Mode {
    /// Its name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Manual => "manual",
            Mode::Preview { .. } => "preview",
            Mode::Progressive => "progressive",
            Mode::Predictive => "predictive",
            Mode::AutoCall { .. } => "auto_call",
            Mode::AutoCallback => "auto_callback",
        }
    }
}

/// A campaign's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// How it calls.
    pub mode: Mode,
    /// The most abandoned / answered it may reach (0.03 = 3 %, the legal limit, D3).
    pub target: f64,
    /// How long an answered call waits for an agent before it is abandoned (≤ 2 s, D3).
    pub grace_ms: Ms,
    /// How long a call rings before it counts as not answered (≥ 15 s, D3).
    pub ring_ms: Ms,
}

/// Limits the law puts on the settings (D3).
pub const MAX_TARGET: f64 = 0.03;
/// The longest an answered call may wait for an agent.
pub const MAX_GRACE_MS: Ms = 2_000;
/// The shortest ring before a call counts as not answered.
pub const MIN_RING_MS: Ms = 15_000;

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            mode: Mode::Predictive,
            target: MAX_TARGET,
            grace_ms: MAX_GRACE_MS,
            ring_ms: 20_000,
        }
    }
}

impl Settings {
    /// Refuses settings the rules do not allow, naming the field.
    pub fn check(&self) -> Result<(), CoreError> {
        let bad = |field: &'static str, why: String| Err(CoreError::Setting { field, why });
        if !(self.target > 0.0 && self.target <= MAX_TARGET) {
            return bad(
                "target",
                format!("{} is not above 0 and at most 0.03 (3 %)", self.target),
            );
        }
        if self.grace_ms == 0 || self.grace_ms > MAX_GRACE_MS {
            return bad(
                "grace_ms",
                format!("{} ms is not above 0 and at most 2000 ms", self.grace_ms),
            );
        }
        if self.ring_ms < MIN_RING_MS {
            return bad(
                "ring_ms",
                format!(
                    "{} ms is under the 15000 ms a phone must ring",
                    self.ring_ms
                ),
            );
        }
        match self.mode {
            Mode::AutoCall { lines: 0 } => {
                bad("lines", "an auto call needs at least one line".into())
            }
            Mode::Preview { reading_ms } if reading_ms > 600_000 => bad(
                "reading_ms",
                format!("{reading_ms} ms of reading is over 10 minutes"),
            ),
            _ => Ok(()),
        }
    }
}

/// Whether a campaign is dialling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Run {
    /// Created, not started.
    Draft,
    /// Dialling.
    Running,
    /// Not dialling; calls in flight are handled.
    Paused,
    /// Ended for good.
    Stopped,
}

/// A campaign's event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignEvent {
    /// Its settings set (at creation or changed).
    Configured {
        /// The settings.
        settings: Settings,
    },
    /// Its run state changed, by whom (a user, or `system` when its last agent left).
    Run {
        /// The new state.
        run: Run,
        /// Who.
        by: String,
        /// At.
        at: Ms,
    },
    /// An agent's state on the campaign; `None`: off the floor (left, logged out, on break).
    Agent {
        /// The agent.
        agent: String,
        /// Its state.
        is: Option<AgentNow>,
    },
    /// A dial decision that placed calls, with its evidence.
    Decided {
        /// At.
        at: Ms,
        /// The contacts dialled.
        contacts: Vec<ContactId>,
        /// Why.
        evidence: Evidence,
    },
    /// What happened to a contact.
    List(ListEvent),
    /// A call was answered (a person or a machine) and waits for an agent.
    Answered {
        /// The contact.
        id: ContactId,
        /// Its attempt.
        attempt: u32,
        /// At.
        at: Ms,
    },
    /// An answered call reached an agent.
    Bridged {
        /// The contact.
        id: ContactId,
        /// Its attempt.
        attempt: u32,
        /// The agent.
        agent: String,
        /// At.
        at: Ms,
    },
    /// An answered call found no agent within the grace time and heard the message.
    Abandoned {
        /// The contact.
        id: ContactId,
        /// Its attempt.
        attempt: u32,
        /// At.
        at: Ms,
    },
    /// A talk of the campaign ended after `ms`.
    Talked {
        /// Its length.
        ms: Ms,
    },
    /// An agent's wrap-up after a campaign call ended after `ms`.
    WrappedUp {
        /// Its length.
        ms: Ms,
    },
}

/// A call of the campaign not with an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InFlight {
    dialled: Ms,
    answered: Option<Ms>,
}

/// What a supervisor and the statistics stream see of a campaign.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CampaignStatus {
    /// Run state.
    pub run: Run,
    /// Mode.
    pub mode: String,
    /// Agents on the floor, and how many are free.
    pub agents: u32,
    /// Free agents.
    pub free: u32,
    /// Calls ringing.
    pub ringing: u32,
    /// Answered calls waiting for an agent.
    pub waiting: u32,
    /// The contact list's counts.
    pub list: ListStats,
    /// Answered and abandoned calls over the last 24 hours.
    pub answered_24h: u64,
    /// Abandoned over the last 24 hours.
    pub abandoned_24h: u64,
    /// Answered over the last 30 days.
    pub answered_30d: u64,
    /// Abandoned over the last 30 days.
    pub abandoned_30d: u64,
    /// Dial decisions that placed calls.
    pub decisions: u64,
}

/// A campaign.
#[derive(Clone, Debug)]
pub struct Campaign {
    settings: Settings,
    run: Run,
    list: ContactList,
    learned: Learned,
    pacer: Predictive,
    agents: BTreeMap<String, AgentNow>,
    calls: BTreeMap<(ContactId, u32), InFlight>,
    decisions: u64,
}

impl Campaign {
    /// A campaign in draft with these settings (checked by [`Campaign::create`]).
    pub fn new(settings: Settings, list: ContactList) -> Campaign {
        let pacer = Predictive::new(settings.target, settings.grace_ms);
        Campaign {
            settings,
            run: Run::Draft,
            list,
            learned: Learned::default(),
            pacer,
            agents: BTreeMap::new(),
            calls: BTreeMap::new(),
            decisions: 0,
        }
    }

    /// The event that creates a campaign with these settings, if they are allowed.
    pub fn create(settings: Settings) -> Result<CampaignEvent, CoreError> {
        settings.check()?;
        Ok(CampaignEvent::Configured { settings })
    }

    /// Its settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Its run state.
    pub fn run(&self) -> Run {
        self.run
    }

    /// Its contacts.
    pub fn list(&self) -> &ContactList {
        &self.list
    }

    /// What it has learned.
    pub fn learned(&self) -> &Learned {
        &self.learned
    }

    /// New settings (the mode may change while it runs: a campaign switched from predictive
    /// to progressive when its budget runs low, say).
    pub fn configure(&self, settings: Settings) -> Result<Vec<CampaignEvent>, CoreError> {
        if self.run == Run::Stopped {
            return Err(CoreError::Stopped);
        }
        settings.check()?;
        Ok(vec![CampaignEvent::Configured { settings }])
    }

    /// Start, pause, resume or stop, by `by`.
    pub fn set_run(&self, run: Run, by: &str, now: Ms) -> Result<Vec<CampaignEvent>, CoreError> {
        let allowed = match (self.run, run) {
            (Run::Stopped, _) | (_, Run::Draft) => false,
            (from, to) => from != to,
        };
        if !allowed {
            return Err(CoreError::Run {
                from: self.run,
                to: run,
            });
        }
        Ok(vec![CampaignEvent::Run {
            run,
            by: by.to_string(),
            at: now,
        }])
    }

    /// An agent's state on the campaign as the router reports it (`None`: off the floor).
    /// Nothing when it is what the campaign already knows.
    pub fn agent(&self, agent: &str, is: Option<AgentNow>) -> Vec<CampaignEvent> {
        if self.agents.get(agent).copied() == is {
            return Vec::new();
        }
        vec![CampaignEvent::Agent {
            agent: agent.to_string(),
            is,
        }]
    }

    /// The dial decision now: the contacts to dial (their `Dialled` events, journaled before
    /// the calls are placed) and the evidence, or nothing when the campaign is not running,
    /// has no agent on its floor (an auto call needs none), its mode dials on an agent's
    /// request only (manual, preview), or the pacing places no call. `screen` says whether a
    /// contact's number is on the do-not-call list or the blocklist now.
    pub fn tick(
        &mut self,
        now: Ms,
        screen: &mut dyn FnMut(&Contact) -> Option<Skip>,
    ) -> Vec<CampaignEvent> {
        if self.run != Run::Running {
            return Vec::new();
        }
        let agents: Vec<AgentNow> = self.agents.values().copied().collect();
        let calls: Vec<CallNow> = self
            .calls
            .values()
            .map(|c| match c.answered {
                Some(since) => CallNow::Waiting { since },
                None => CallNow::Ringing { since: c.dialled },
            })
            .collect();
        let floor = Floor {
            now,
            agents: &agents,
            calls: &calls,
        };
        let decision = match self.settings.mode {
            Mode::Manual | Mode::Preview { .. } => return Vec::new(),
            _ if agents.is_empty() && !matches!(self.settings.mode, Mode::AutoCall { .. }) => {
                return Vec::new()
            }
            Mode::Predictive => self.pacer.decide(&floor, &mut self.learned),
            Mode::Progressive | Mode::AutoCallback => Progressive.decide(&floor, &mut self.learned),
            Mode::AutoCall { lines } => {
                let mut d = Progressive.decide(&floor, &mut self.learned);
                d.dial = lines.saturating_sub(calls.len() as u32);
                d.evidence.pacer = "lines".into();
                d.evidence.mode = "lines".into();
                d
            }
        };
        if decision.dial == 0 {
            return Vec::new();
        }
        let picked = self.list.pick(now, decision.dial as usize, None, screen);
        let contacts: Vec<ContactId> = picked
            .iter()
            .filter_map(|e| match e {
                ListEvent::Dialled { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        let mut events = Vec::with_capacity(picked.len() + 1);
        if !contacts.is_empty() {
            events.push(CampaignEvent::Decided {
                at: now,
                contacts,
                evidence: decision.evidence,
            });
        }
        events.extend(picked.into_iter().map(CampaignEvent::List));
        events
    }

    /// The next contact for `agent` (preview and manual modes, and an agent's personal
    /// callbacks in any mode).
    pub fn next_for(
        &self,
        agent: &str,
        now: Ms,
        screen: &mut dyn FnMut(&Contact) -> Option<Skip>,
    ) -> Result<Vec<CampaignEvent>, CoreError> {
        if self.run != Run::Running {
            return Err(CoreError::NotRunning(self.run));
        }
        Ok(self
            .list
            .pick(now, 1, Some(agent), screen)
            .into_iter()
            .map(CampaignEvent::List)
            .collect())
    }

    /// A call of the campaign was answered.
    pub fn answered(
        &self,
        id: ContactId,
        attempt: u32,
        now: Ms,
    ) -> Result<Vec<CampaignEvent>, CoreError> {
        match self.calls.get(&(id, attempt)) {
            Some(InFlight { answered: None, .. }) => Ok(vec![CampaignEvent::Answered {
                id,
                attempt,
                at: now,
            }]),
            _ => Err(self.not_in_flight(id, attempt)),
        }
    }

    /// An answered call reached `agent`.
    pub fn bridged(
        &self,
        id: ContactId,
        attempt: u32,
        agent: &str,
        now: Ms,
    ) -> Result<Vec<CampaignEvent>, CoreError> {
        let bridged = CampaignEvent::Bridged {
            id,
            attempt,
            agent: agent.to_string(),
            at: now,
        };
        self.answer_ends(bridged, id, attempt, Ended::Connected, now)
    }

    /// An answered call found no agent in time.
    pub fn abandoned(
        &self,
        id: ContactId,
        attempt: u32,
        now: Ms,
    ) -> Result<Vec<CampaignEvent>, CoreError> {
        let abandoned = CampaignEvent::Abandoned {
            id,
            attempt,
            at: now,
        };
        self.answer_ends(abandoned, id, attempt, Ended::Abandoned, now)
    }

    /// A call ended before anybody answered it (busy, no answer, failed).
    pub fn not_answered(
        &self,
        id: ContactId,
        attempt: u32,
        how: Ended,
        now: Ms,
    ) -> Result<Vec<CampaignEvent>, CoreError> {
        match (self.calls.get(&(id, attempt)), how) {
            (_, Ended::Connected | Ended::Abandoned) => Err(CoreError::NotAnEnd(how)),
            (Some(InFlight { answered: None, .. }), _) => Ok(vec![CampaignEvent::List(
                self.list.ended(id, attempt, how, now)?,
            )]),
            _ => Err(self.not_in_flight(id, attempt)),
        }
    }

    /// An answered call's wait ended (`event`: bridged or abandoned), and with it the
    /// contact's attempt (`how`).
    fn answer_ends(
        &self,
        event: CampaignEvent,
        id: ContactId,
        attempt: u32,
        how: Ended,
        now: Ms,
    ) -> Result<Vec<CampaignEvent>, CoreError> {
        match self.calls.get(&(id, attempt)) {
            Some(InFlight {
                answered: Some(_), ..
            }) => Ok(vec![
                event,
                CampaignEvent::List(self.list.ended(id, attempt, how, now)?),
            ]),
            _ => Err(self.not_in_flight(id, attempt)),
        }
    }

    fn not_in_flight(&self, id: ContactId, attempt: u32) -> CoreError {
        let state = match self.calls.get(&(id, attempt)) {
            Some(InFlight { answered: None, .. }) => "ringing".to_string(),
            Some(_) => "answered, waiting for an agent".to_string(),
            None => "not a call of the campaign in flight".to_string(),
        };
        CoreError::CallState { id, attempt, state }
    }

    /// Adds a contact, due from `now`.
    pub fn add_contact(&self, contact: NewContact, now: Ms) -> Result<CampaignEvent, CoreError> {
        if self.run == Run::Stopped {
            return Err(CoreError::Stopped);
        }
        Ok(CampaignEvent::List(self.list.add(contact, now)?))
    }

    /// Removes a contact (a call in progress goes on).
    pub fn remove_contact(&self, id: ContactId) -> Result<CampaignEvent, CoreError> {
        Ok(CampaignEvent::List(self.list.remove(id)?))
    }

    /// The agent's wrap-up code for a contact's connected attempt, and its effect.
    pub fn wrap_up(
        &self,
        id: ContactId,
        attempt: u32,
        code: &str,
        effect: Effect,
        now: Ms,
    ) -> Result<CampaignEvent, CoreError> {
        Ok(CampaignEvent::List(
            self.list.wrapped_up(id, attempt, code, effect, now)?,
        ))
    }

    /// What supervisors see now.
    pub fn status(&self, now: Ms) -> CampaignStatus {
        let (answered_24h, abandoned_24h) = self.learned.abandons.over(now, 24);
        let (answered_30d, abandoned_30d) = self.learned.abandons.over(now, 30 * 24);
        let waiting = self.calls.values().filter(|c| c.answered.is_some()).count() as u32;
        CampaignStatus {
            run: self.run,
            mode: self.settings.mode.name().into(),
            agents: self.agents.len() as u32,
            free: self
                .agents
                .values()
                .filter(|a| **a == AgentNow::Free)
                .count() as u32,
            ringing: self.calls.len() as u32 - waiting,
            waiting,
            list: self.list.stats().clone(),
            answered_24h,
            abandoned_24h,
            answered_30d,
            abandoned_30d,
            decisions: self.decisions,
        }
    }

    /// Applies an event: the only writer of the campaign's state.
    pub fn apply(&mut self, event: &CampaignEvent) {
        match event {
            CampaignEvent::Configured { settings } => {
                let threshold = self.pacer.threshold;
                self.pacer = Predictive::new(settings.target, settings.grace_ms);
                if self.learned.answers() > 0.0 {
                    // what it learned of its own abandonment stays
                    self.pacer.threshold = threshold;
                }
                self.settings = settings.clone();
            }
            CampaignEvent::Run { run, .. } => self.run = *run,
            CampaignEvent::Agent { agent, is } => match is {
                Some(is) => {
                    self.agents.insert(agent.clone(), *is);
                }
                None => {
                    self.agents.remove(agent);
                }
            },
            CampaignEvent::Decided { .. } => self.decisions += 1,
            CampaignEvent::List(e) => {
                match e {
                    ListEvent::Dialled { id, attempt, at } => {
                        self.calls.insert(
                            (*id, *attempt),
                            InFlight {
                                dialled: *at,
                                answered: None,
                            },
                        );
                    }
                    ListEvent::Ended {
                        id,
                        attempt,
                        how: Ended::Busy | Ended::NoAnswer | Ended::Failed,
                        at,
                    } => {
                        if let Some(c) = self.calls.remove(&(*id, *attempt)) {
                            self.learned.dialled(Outcome::NotAnswered {
                                after_ms: at.saturating_sub(c.dialled),
                            });
                        }
                    }
                    _ => {}
                }
                self.list.apply(e);
            }
            CampaignEvent::Answered { id, attempt, at } => {
                if let Some(c) = self.calls.get_mut(&(*id, *attempt)) {
                    c.answered = Some(*at);
                    let ring_ms = at.saturating_sub(c.dialled);
                    self.learned.dialled(Outcome::Answered { ring_ms });
                }
            }
            CampaignEvent::Bridged {
                id, attempt, at, ..
            } => {
                if self.calls.remove(&(*id, *attempt)).is_some() {
                    self.learned.connected(*at, false);
                    self.pacer.answered(false);
                }
            }
            CampaignEvent::Abandoned { id, attempt, at } => {
                if self.calls.remove(&(*id, *attempt)).is_some() {
                    self.learned.connected(*at, true);
                    self.pacer.answered(true);
                }
            }
            CampaignEvent::Talked { ms } => self.learned.talked(*ms),
            CampaignEvent::WrappedUp { ms } => self.learned.wrapped_up(*ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts::{Calling, Rules, Status};
    use crate::window::{zone, Window, Zones};

    /// 2026-12-07 (a Monday) 03:00 UTC: 10:00 in Viet Nam.
    const T0: Ms = 1_796_601_600_000 + 3 * 3_600_000;
    const S: Ms = 1_000;

    /// A campaign of `mode` with `contacts` Vietnamese contacts, its journal kept.
    struct Run_ {
        c: Campaign,
        journal: Vec<CampaignEvent>,
    }

    impl Run_ {
        fn new(mode: Mode, contacts: u64) -> Run_ {
            let calling = Calling {
                rules: Rules::default(),
                window: Window::default(),
                zones: Zones::shipped(),
                default_zone: zone("Asia/Ho_Chi_Minh").unwrap(),
            };
            let settings = Settings {
                mode,
                ..Settings::default()
            };
            let mut r = Run_ {
                c: Campaign::new(settings.clone(), ContactList::new(calling)),
                journal: Vec::new(),
            };
            r.record(vec![Campaign::create(settings).unwrap()]);
            for id in 1..=contacts {
                let e =
                    r.c.add_contact(
                        NewContact {
                            id,
                            number: format!("+8491200{id:04}"),
                            priority: 0,
                            zone: None,
                            fields: Default::default(),
                        },
                        T0,
                    )
                    .unwrap();
                r.record(vec![e]);
            }
            r
        }

        fn record(&mut self, events: Vec<CampaignEvent>) -> Vec<CampaignEvent> {
            for e in &events {
                self.c.apply(e);
                self.journal.push(e.clone());
            }
            events
        }

        fn start(&mut self) {
            let e = self.c.set_run(Run::Running, "sup", T0).unwrap();
            self.record(e);
        }

        fn agents(&mut self, names: &[&str], is: Option<AgentNow>) {
            for a in names {
                let e = self.c.agent(a, is);
                self.record(e);
            }
        }

        /// Ticks; the contacts dialled.
        fn tick(&mut self, now: Ms) -> Vec<ContactId> {
            let events = self.c.tick(now, &mut |_| None);
            let events = self.record(events);
            dialled(&events)
        }
    }

    fn dialled(events: &[CampaignEvent]) -> Vec<ContactId> {
        events
            .iter()
            .filter_map(|e| match e {
                CampaignEvent::List(ListEvent::Dialled { id, .. }) => Some(*id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn settings_the_rules_forbid_are_refused_naming_the_field() {
        for (s, field) in [
            (
                Settings {
                    target: 0.05,
                    ..Settings::default()
                },
                "`target`",
            ),
            (
                Settings {
                    target: 0.0,
                    ..Settings::default()
                },
                "`target`",
            ),
            (
                Settings {
                    grace_ms: 3_000,
                    ..Settings::default()
                },
                "`grace_ms`",
            ),
            (
                Settings {
                    ring_ms: 10_000,
                    ..Settings::default()
                },
                "`ring_ms`",
            ),
            (
                Settings {
                    mode: Mode::AutoCall { lines: 0 },
                    ..Settings::default()
                },
                "`lines`",
            ),
        ] {
            let e = Campaign::create(s).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
    }

    #[test]
    fn a_campaign_runs_pauses_and_stops_for_good() {
        let mut r = Run_::new(Mode::Predictive, 1);
        assert_eq!(r.c.run(), Run::Draft);
        r.start();
        assert!(r.c.set_run(Run::Running, "sup", T0).is_err());
        for run in [Run::Paused, Run::Running, Run::Stopped] {
            let e = r.c.set_run(run, "sup", T0).unwrap();
            r.record(e);
        }
        let e =
            r.c.set_run(Run::Running, "sup", T0)
                .unwrap_err()
                .to_string();
        assert_eq!(e, "a campaign cannot go from Stopped to Running");
        assert_eq!(
            r.c.configure(Settings::default()).unwrap_err(),
            CoreError::Stopped
        );
    }

    #[test]
    fn a_predictive_campaign_dials_for_its_free_agents_and_hands_answers_on() {
        let mut r = Run_::new(Mode::Predictive, 20);
        r.agents(&["lan", "minh", "hoa"], Some(AgentNow::Free));
        // not started: nothing
        assert!(r.tick(T0).is_empty());
        r.start();
        // cold: one call per free agent, with the evidence
        let events = r.c.tick(T0, &mut |_| None);
        let CampaignEvent::Decided {
            contacts, evidence, ..
        } = &events[0]
        else {
            panic!("{events:?}")
        };
        assert_eq!(contacts, &vec![1, 2, 3]);
        assert_eq!((evidence.mode.as_str(), evidence.free), ("cold", 3));
        r.record(events);
        assert!(
            r.tick(T0 + S).is_empty(),
            "every free agent has a call meant for it"
        );
        // 1 answers and is taken by lan; 2 is busy; 3 answers and is abandoned
        let e = r.c.answered(1, 1, T0 + 5 * S).unwrap();
        r.record(e);
        let e = r.c.bridged(1, 1, "lan", T0 + 5 * S).unwrap();
        r.record(e);
        r.agents(&["lan"], Some(AgentNow::Talking { since: T0 + 5 * S }));
        let e = r.c.not_answered(2, 1, Ended::Busy, T0 + 6 * S).unwrap();
        r.record(e);
        let e = r.c.answered(3, 1, T0 + 7 * S).unwrap();
        r.record(e);
        let e = r.c.abandoned(3, 1, T0 + 9 * S).unwrap();
        r.record(e);
        let st = r.c.status(T0 + 10 * S);
        assert_eq!((st.agents, st.free, st.ringing, st.waiting), (3, 2, 0, 0));
        assert_eq!((st.answered_24h, st.abandoned_24h, st.decisions), (2, 1, 1));
        assert_eq!(
            r.c.list().get(1).unwrap().status,
            Status::Connected { attempt: 1 }
        );
        // two free agents, no call for them: two more, the busy contact not yet due
        assert_eq!(r.tick(T0 + 10 * S), vec![4, 5]);
        // lan wraps up the customer: final
        let e =
            r.c.wrap_up(1, 1, "sale", Effect::Final, T0 + 60 * S)
                .unwrap();
        r.record(vec![e]);
        assert!(matches!(r.c.list().get(1).unwrap().status, Status::Done(_)));
        // wrong reports are refused, naming the call's state
        let e = r.c.bridged(4, 1, "minh", T0).unwrap_err().to_string();
        assert_eq!(e, "contact 4, attempt 1: ringing");
        assert_eq!(
            r.c.not_answered(4, 1, Ended::Connected, T0).unwrap_err(),
            CoreError::NotAnEnd(Ended::Connected)
        );
        assert!(r.c.answered(1, 1, T0).is_err());
    }

    #[test]
    fn dialling_stops_when_the_agents_leave_or_the_campaign_pauses_and_calls_in_flight_go_on() {
        let mut r = Run_::new(Mode::Predictive, 20);
        r.start();
        r.agents(&["lan", "minh"], Some(AgentNow::Free));
        assert_eq!(r.tick(T0), vec![1, 2]);
        // both leave (log out, break): not one more call, though contacts are due
        r.agents(&["lan", "minh"], None);
        assert!(r.c.agent("lan", None).is_empty(), "already off the floor");
        assert!(r.tick(T0 + S).is_empty());
        // the calls in flight are still handled: 1 answers and is abandoned with the message
        let e = r.c.answered(1, 1, T0 + 2 * S).unwrap();
        r.record(e);
        let e = r.c.abandoned(1, 1, T0 + 4 * S).unwrap();
        r.record(e);
        // back, but paused: nothing; resumed: dialling again
        r.agents(&["lan"], Some(AgentNow::Free));
        let e = r.c.set_run(Run::Paused, "sup", T0 + 5 * S).unwrap();
        r.record(e);
        assert!(r.tick(T0 + 5 * S).is_empty());
        let e =
            r.c.not_answered(2, 1, Ended::NoAnswer, T0 + 20 * S)
                .unwrap();
        r.record(e);
        let e = r.c.set_run(Run::Running, "sup", T0 + 21 * S).unwrap();
        r.record(e);
        assert_eq!(r.tick(T0 + 21 * S), vec![3]);
    }

    #[test]
    fn modes_dial_their_own_way() {
        // auto call: its lines, no agent needed
        let mut r = Run_::new(Mode::AutoCall { lines: 4 }, 10);
        r.start();
        assert_eq!(r.tick(T0), vec![1, 2, 3, 4]);
        assert!(r.tick(T0 + S).is_empty());
        let e = r.c.not_answered(2, 1, Ended::Failed, T0 + 2 * S).unwrap();
        r.record(e);
        assert_eq!(r.tick(T0 + 2 * S), vec![5]);
        // progressive and auto callback: one per free agent
        for mode in [Mode::Progressive, Mode::AutoCallback] {
            let mut r = Run_::new(mode, 10);
            r.start();
            r.agents(&["lan", "minh"], Some(AgentNow::Free));
            r.agents(&["hoa"], Some(AgentNow::Talking { since: T0 }));
            assert_eq!(r.tick(T0), vec![1, 2]);
        }
        // preview and manual: only when an agent asks
        for mode in [Mode::Preview { reading_ms: 10_000 }, Mode::Manual] {
            let mut r = Run_::new(mode, 10);
            r.start();
            r.agents(&["lan"], Some(AgentNow::Free));
            assert!(r.tick(T0).is_empty());
            let e = r.c.next_for("lan", T0, &mut |_| None).unwrap();
            assert_eq!(dialled(&r.record(e)), vec![1]);
        }
    }

    #[test]
    fn a_campaign_rebuilt_from_its_journal_decides_the_same() {
        let mut r = Run_::new(Mode::Predictive, 50);
        r.start();
        r.agents(&["lan", "minh", "hoa", "tuan"], Some(AgentNow::Free));
        let mut now = T0;
        let mut attempt_of = BTreeMap::new();
        for round in 0..12u64 {
            for id in r.tick(now) {
                attempt_of.insert(id, r.c.list().get(id).unwrap().attempts);
            }
            now += 3 * S;
            let ringing: Vec<(ContactId, u32)> = r.c.calls.keys().copied().collect();
            for (i, (id, attempt)) in ringing.into_iter().enumerate() {
                let e = if (round + i as u64).is_multiple_of(3) {
                    let e = r.c.answered(id, attempt, now).unwrap();
                    r.record(e);
                    r.c.bridged(id, attempt, "lan", now).unwrap()
                } else {
                    r.c.not_answered(id, attempt, Ended::NoAnswer, now + 15 * S)
                        .unwrap()
                };
                r.record(e);
            }
            r.record(vec![CampaignEvent::Talked { ms: 60_000 }]);
            now += 20 * S;
        }
        let mut rebuilt = Campaign::new(Settings::default(), r.c.list.clone_empty());
        for e in &r.journal {
            rebuilt.apply(e);
        }
        assert_eq!(rebuilt.status(now), r.c.status(now));
        assert_eq!(rebuilt.learned(), r.c.learned());
        assert_eq!(rebuilt.pacer.threshold, r.c.pacer.threshold);
        assert_eq!(
            rebuilt.tick(now, &mut |_| None),
            r.c.tick(now, &mut |_| None)
        );
        // the journal is plain data
        let json = serde_json::to_string(&r.journal).unwrap();
        assert_eq!(
            serde_json::from_str::<Vec<CampaignEvent>>(&json).unwrap(),
            r.journal
        );
    }
}
