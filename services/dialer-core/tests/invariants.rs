//! The rules no campaign may break, as properties over random histories (issue 19, item 9):
//! a contact is never dialled outside its calling window, with its number on the
//! do-not-call list or the blocklist, while it is already in a call, or after a final result;
//! and the pacing never places calls whose predicted abandonment is more than the budget has
//! left, nor any call without an agent on the floor.

use std::collections::{BTreeMap, HashMap, HashSet};

use callgrid_dialer_core::{
    zone, AgentNow, CallNow, Callback, Calling, Contact, ContactId, ContactList, Done, Effect,
    Ended, Floor, Learned, ListEvent, Ms, NewContact, Outcome, Pacer, Predictive, Progressive,
    Ratio, Rules, Skip, Status, Window, Zones,
};
use jiff::Timestamp;
use proptest::prelude::*;

/// 2026-12-07 00:00 UTC (a Monday).
const T0: Ms = 1_796_601_600_000;
const MIN: Ms = 60_000;

/// Numbers of several zones: Viet Nam, New York (area code), the whole North American plan,
/// Tokyo, an unlisted prefix (the campaign's zone), and one with its own zone.
const NUMBERS: [(&str, Option<&str>); 6] = [
    ("+84912345678", None),
    ("+12125550100", None),
    ("+19995550100", None),
    ("+81312345678", None),
    ("+99912345678", None),
    ("+84987654321", Some("Pacific/Honolulu")),
];

#[derive(Clone, Debug)]
enum Op {
    Add {
        number: usize,
        priority: i32,
    },
    /// Time passes; the do-not-call and block lists change; the campaign picks.
    Pick {
        advance_min: u64,
        n: usize,
        agent: Option<&'static str>,
        barred: Vec<bool>,
    },
    End {
        which: usize,
        how: Ended,
    },
    Wrap {
        which: usize,
        effect: u8,
        in_min: u64,
    },
    Remove {
        which: usize,
    },
    Recycle,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..NUMBERS.len(), 0..3i32).prop_map(|(number, priority)| Op::Add { number, priority }),
        4 => (0..240u64, 0..4usize, prop::option::of(prop::sample::select(vec!["lan", "minh"])),
              prop::collection::vec(prop::bool::weighted(0.15), NUMBERS.len()))
            .prop_map(|(advance_min, n, agent, barred)| Op::Pick { advance_min, n, agent, barred }),
        4 => (0..8usize, prop::sample::select(vec![
                Ended::Connected, Ended::Abandoned, Ended::Busy, Ended::NoAnswer, Ended::Failed]))
            .prop_map(|(which, how)| Op::End { which, how }),
        3 => (0..8usize, 0..5u8, 0..600u64).prop_map(|(which, effect, in_min)| Op::Wrap { which, effect, in_min }),
        1 => (0..16usize).prop_map(|which| Op::Remove { which }),
        1 => Just(Op::Recycle),
    ]
}

/// Open by the default window (08:00-21:00 every day) in every zone, read with jiff here,
/// not through `Window`.
fn open_everywhere(c: &Contact, now: Ms) -> bool {
    let ts = Timestamp::from_millisecond(now as i64).unwrap();
    c.zones().iter().all(|tz| {
        let local = ts.to_zoned(tz.clone());
        (8..21).contains(&local.hour())
    })
}

/// The contacts being dialled and their attempts, in order.
fn in_call(list: &ContactList) -> Vec<(ContactId, u32)> {
    let mut v: Vec<(ContactId, u32)> = list
        .contacts()
        .filter_map(|c| match c.status {
            Status::InCall { attempt, .. } => Some((c.spec.id, attempt)),
            _ => None,
        })
        .collect();
    v.sort_unstable();
    v
}

fn calling() -> Calling {
    Calling {
        rules: Rules {
            busy: callgrid_dialer_core::RetryRule {
                delay_ms: 10 * MIN,
                max_attempts: 3,
            },
            ..Rules::default()
        },
        window: Window::default(),
        zones: Zones::shipped(),
        default_zone: zone("Asia/Ho_Chi_Minh").unwrap(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn a_contact_is_dialled_only_when_every_rule_allows(ops in prop::collection::vec(op(), 1..120)) {
        let mut list = ContactList::new(calling());
        let mut journal: Vec<ListEvent> = Vec::new();
        let mut now = T0;
        let mut next_id: ContactId = 1;
        // contacts that must never be dialled again (final, do-not-call, screened, removed)
        let mut never: HashSet<ContactId> = HashSet::new();
        for op in ops {
            let mut events = Vec::new();
            match op {
                Op::Add { number, priority } => {
                    let (n, z) = NUMBERS[number];
                    let c = NewContact {
                        id: next_id,
                        number: n.into(),
                        priority,
                        zone: z.map(Into::into),
                        fields: BTreeMap::new(),
                    };
                    next_id += 1;
                    events.push(list.add(c, now).unwrap());
                }
                Op::Pick { advance_min, n, agent, barred } => {
                    now += advance_min * MIN;
                    let barred_numbers: HashSet<&str> = NUMBERS
                        .iter()
                        .zip(&barred)
                        .filter(|(_, b)| **b)
                        .map(|((num, _), _)| *num)
                        .collect();
                    let mut screen = |c: &Contact| {
                        barred_numbers.contains(c.spec.number.as_str()).then_some(Skip::DoNotCall)
                    };
                    let picked = list.pick(now, n, agent, &mut screen);
                    let mut dialled = HashSet::new();
                    for e in &picked {
                        match e {
                            ListEvent::Dialled { id, attempt, at } => {
                                let c = list.get(*id).unwrap();
                                prop_assert_eq!(*at, now);
                                prop_assert!(dialled.insert(*id), "contact {} dialled twice in one pick", id);
                                prop_assert!(!never.contains(id), "contact {} dialled after a final result", id);
                                prop_assert!(!barred_numbers.contains(c.spec.number.as_str()),
                                    "contact {} dialled while its number is barred", id);
                                prop_assert!(open_everywhere(c, now),
                                    "contact {} dialled outside its window", id);
                                match &c.status {
                                    Status::Ready { due, callback } => {
                                        prop_assert!(*due <= now, "contact {} dialled before it was due", id);
                                        if let Some(Callback::Agent(owner)) = callback {
                                            prop_assert_eq!(Some(owner.as_str()), agent,
                                                "a personal callback dialled for another agent");
                                        }
                                    }
                                    other => prop_assert!(false, "contact {} dialled while {:?}", id, other),
                                }
                                prop_assert_eq!(*attempt, c.attempts + 1);
                            }
                            ListEvent::Screened { id, .. } => {
                                never.insert(*id);
                            }
                            other => prop_assert!(false, "a pick made {:?}", other),
                        }
                    }
                    prop_assert!(dialled.len() <= n);
                    events.extend(picked);
                }
                Op::End { which, how } => {
                    let busy = in_call(&list);
                    if let Some(&(id, attempt)) = busy.get(which % busy.len().max(1)) {
                        now += MIN;
                        let e = list.ended(id, attempt, how, now).unwrap();
                        list.apply(&e);
                        journal.push(e);
                        // the same report again is refused
                        prop_assert!(list.ended(id, attempt, how, now).is_err());
                    }
                }
                Op::Wrap { which, effect, in_min } => {
                    let mut talked: Vec<(ContactId, u32)> = list
                        .contacts()
                        .filter_map(|c| match c.status {
                            Status::Connected { attempt } => Some((c.spec.id, attempt)),
                            _ => None,
                        })
                        .collect();
                    talked.sort_unstable();
                    if let Some(&(id, attempt)) = talked.get(which % talked.len().max(1)) {
                        let at = now + in_min * MIN;
                        let effect = match effect {
                            0 => Effect::Final,
                            1 => Effect::Retry,
                            2 => Effect::DoNotCall,
                            3 => Effect::Callback { at },
                            _ => Effect::PersonalCallback { at, agent: "lan".into() },
                        };
                        if matches!(effect, Effect::Final | Effect::DoNotCall) {
                            never.insert(id);
                        }
                        events.push(list.wrapped_up(id, attempt, "code", effect, now).unwrap());
                    }
                }
                Op::Remove { which } => {
                    let id = which as ContactId + 1;
                    if id < next_id {
                        never.insert(id);
                        events.push(list.remove(id).unwrap());
                    }
                }
                Op::Recycle => {
                    let recycled = list.recycle(&[Ended::Busy, Ended::NoAnswer, Ended::Failed], now);
                    for e in &recycled {
                        if let ListEvent::Recycled { id, .. } = e {
                            prop_assert!(!never.contains(id), "contact {} recycled after a final result", id);
                        }
                    }
                    events.extend(recycled);
                }
            }
            for e in events {
                list.apply(&e);
                journal.push(e);
            }
            // the counts always add up
            let s = list.stats();
            prop_assert_eq!(s.ready + s.in_call + s.done, s.contacts);
        }
        // the journal rebuilds the same list
        let mut rebuilt = ContactList::new(calling());
        for e in &journal {
            rebuilt.apply(e);
        }
        prop_assert_eq!(rebuilt.stats(), list.stats());
        for c in list.contacts() {
            prop_assert_eq!(&rebuilt.get(c.spec.id).unwrap().status, &c.status);
            if let Status::Done(Done::Final { .. } | Done::DoNotCall) = c.status {
                prop_assert!(never.contains(&c.spec.id));
            }
        }
    }
}

/// A campaign's learning after `answered` of `dialled` calls answered and `talks` talks, and
/// `connected` answered calls of which `abandoned` were abandoned in the last hour.
fn learned(
    dialled: u32,
    answered: u32,
    talks: u32,
    connected: u32,
    abandoned: u32,
    now: Ms,
) -> Learned {
    let mut l = Learned::default();
    for i in 0..dialled {
        if i < answered {
            l.dialled(Outcome::Answered {
                ring_ms: 3_000 + u64::from(i * 977) % 12_000,
            });
        } else {
            l.dialled(Outcome::NotAnswered { after_ms: 20_000 });
        }
    }
    for i in 0..talks {
        l.talked(30_000 + u64::from(i * 7_919) % 240_000);
        l.wrapped_up(5_000 + u64::from(i * 331) % 10_000);
    }
    for i in 0..connected {
        l.connected(now - 1_000, i < abandoned);
    }
    l
}

fn agent() -> impl Strategy<Value = AgentNow> {
    prop_oneof![
        3 => Just(AgentNow::Free),
        1 => Just(AgentNow::Held),
        4 => (0..600_000u64).prop_map(|ago| AgentNow::Talking { since: T0 - ago }),
        1 => (0..20_000u64).prop_map(|ago| AgentNow::WrapUp { since: T0 - ago }),
    ]
}

fn call() -> impl Strategy<Value = CallNow> {
    prop_oneof![
        4 => (0..30_000u64).prop_map(|ago| CallNow::Ringing { since: T0 - ago }),
        1 => (0..2_000u64).prop_map(|ago| CallNow::Waiting { since: T0 - ago }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn pacing_never_dials_beyond_its_agents_or_its_budget(
        agents in prop::collection::vec(agent(), 0..60),
        calls in prop::collection::vec(call(), 0..80),
        dialled in 0..400u32,
        answer_pct in 1..100u32,
        talks in 0..80u32,
        connected in 0..300u32,
        abandoned_pct in 0..20u32,
    ) {
        let answered = dialled * answer_pct / 100;
        let abandoned = connected * abandoned_pct / 100;
        let mut learned = learned(dialled, answered, talks, connected, abandoned, T0);
        let floor = Floor { now: T0, agents: &agents, calls: &calls };
        let free = agents.iter().filter(|a| **a == AgentNow::Free).count() as u32;
        let unmatched = calls.len() as u32;
        let mut pacers: Vec<Box<dyn Pacer>> = vec![
            Box::new(Progressive),
            Box::new(Ratio { level: 2.0 }),
            Box::new(Predictive::new(0.03, 2_000)),
        ];
        for p in &mut pacers {
            let d = p.decide(&floor, &mut learned);
            let e = &d.evidence;
            // the evidence is the floor
            prop_assert_eq!(e.free, free);
            prop_assert_eq!(e.ringing + e.waiting, unmatched);
            prop_assert_eq!(e.free + e.held + e.talking + e.wrapping, agents.len() as u32);
            // no agent on the floor: no call (dialling stops when the agents leave)
            if agents.is_empty() {
                prop_assert_eq!(d.dial, 0, "{} dialled with no agent", p.name());
            }
            match e.mode.as_str() {
                // not predicting: a call only for a free agent no call is already meant for
                "progressive" | "cold" | "over_budget" => {
                    prop_assert_eq!(d.dial, free.saturating_sub(unmatched), "{} in mode {}", p.name(), e.mode);
                }
                "predictive" => {
                    prop_assert!(e.budget_left >= 1.0);
                    prop_assert!(d.dial == 0 || e.predicted_abandons <= e.budget_left,
                        "predicted {} abandons with {} left", e.predicted_abandons, e.budget_left);
                }
                "level" => {}
                other => prop_assert!(false, "unknown mode {}", other),
            }
        }
    }

    #[test]
    fn a_spent_budget_stops_predicting(
        agents in prop::collection::vec(agent(), 1..40),
        calls in prop::collection::vec(call(), 0..40),
    ) {
        // 300 answered in the last hour, 20 abandoned: over 3 % of (300 + the grace of 100)
        let mut learned = learned(1_000, 300, 80, 300, 20, T0);
        let floor = Floor { now: T0, agents: &agents, calls: &calls };
        let d = Predictive::new(0.03, 2_000).decide(&floor, &mut learned);
        prop_assert_eq!(d.evidence.mode.as_str(), "over_budget");
        let free = agents.iter().filter(|a| **a == AgentNow::Free).count() as u32;
        prop_assert!(d.dial + calls.len() as u32 <= free.max(calls.len() as u32));
    }
}

#[test]
fn the_numbers_of_the_properties_have_the_zones_they_are_meant_to() {
    let zones = Zones::shipped();
    let by_number: HashMap<&str, usize> = NUMBERS
        .iter()
        .map(|(n, _)| (*n, zones.of(n).map_or(0, |(_, z)| z.len())))
        .collect();
    assert_eq!(by_number["+84912345678"], 1);
    assert_eq!(by_number["+12125550100"], 1);
    assert!(by_number["+19995550100"] >= 4);
    assert_eq!(by_number["+99912345678"], 0); // the campaign's zone
}

#[derive(Clone, Debug)]
enum Floor_ {
    /// An agent joins free, becomes busy, wraps up, or leaves (`None`).
    Agent { who: usize, is: Option<u8> },
    /// The campaign is paused, resumed or stopped.
    Run { to: u8 },
    /// Time passes and the campaign decides.
    Tick { advance_s: u64 },
    /// A call in flight is answered (then bridged or abandoned), or not.
    Call { which: usize, how: u8 },
}

fn floor_op() -> impl Strategy<Value = Floor_> {
    prop_oneof![
        3 => (0..6usize, prop::option::of(0..3u8)).prop_map(|(who, is)| Floor_::Agent { who, is }),
        1 => (0..3u8).prop_map(|to| Floor_::Run { to }),
        4 => (0..30u64).prop_map(|advance_s| Floor_::Tick { advance_s }),
        4 => (0..8usize, 0..4u8).prop_map(|(which, how)| Floor_::Call { which, how }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn a_campaign_dials_only_while_running_with_agents_and_only_what_it_decided(
        progressive in prop::bool::ANY,
        ops in prop::collection::vec(floor_op(), 1..150),
    ) {
        use callgrid_dialer_core::{Campaign, CampaignEvent, Mode, Run, Settings};
        let settings = Settings {
            mode: if progressive { Mode::Progressive } else { Mode::Predictive },
            ..Settings::default()
        };
        let mut c = Campaign::new(settings.clone(), ContactList::new(calling()));
        let mut journal = vec![Campaign::create(settings.clone()).unwrap()];
        let mut now = T0 + 3 * 3_600_000; // 10:00 in Viet Nam
        for id in 1..=200 {
            let e = c
                .add_contact(
                    NewContact {
                        id,
                        number: format!("+8491300{id:04}"),
                        priority: 0,
                        zone: None,
                        fields: BTreeMap::new(),
                    },
                    now,
                )
                .unwrap();
            journal.push(e);
        }
        journal.extend(c.set_run(Run::Running, "sup", now).unwrap());
        for e in &journal {
            c.apply(e);
        }
        let agents = ["lan", "minh", "hoa", "tuan", "mai", "duc"];
        for op in ops {
            let mut events = Vec::new();
            match op {
                Floor_::Agent { who, is } => {
                    let is = is.map(|k| match k {
                        0 => AgentNow::Free,
                        1 => AgentNow::Talking { since: now },
                        _ => AgentNow::WrapUp { since: now },
                    });
                    events = c.agent(agents[who], is);
                }
                Floor_::Run { to } => {
                    let to = [Run::Running, Run::Paused, Run::Stopped][to as usize];
                    events = c.set_run(to, "sup", now).unwrap_or_default();
                }
                Floor_::Tick { advance_s } => {
                    now += advance_s * 1_000;
                    let status = c.status(now);
                    let in_flight: HashSet<ContactId> =
                        in_call(c.list()).into_iter().map(|(id, _)| id).collect();
                    events = c.tick(now, &mut |_| None);
                    let dialled: Vec<ContactId> = events
                        .iter()
                        .filter_map(|e| match e {
                            CampaignEvent::List(ListEvent::Dialled { id, .. }) => Some(*id),
                            _ => None,
                        })
                        .collect();
                    if status.run != Run::Running || status.agents == 0 {
                        prop_assert!(events.is_empty(), "dialled while {:?} with {} agents", status.run, status.agents);
                    }
                    if progressive {
                        let covered = status.ringing + status.waiting;
                        prop_assert!(dialled.len() as u32 <= status.free.saturating_sub(covered));
                    }
                    for id in &dialled {
                        prop_assert!(!in_flight.contains(id), "contact {} dialled while in a call", id);
                    }
                    match events.first() {
                        Some(CampaignEvent::Decided { contacts, evidence, .. }) => {
                            prop_assert_eq!(contacts, &dialled);
                            prop_assert_eq!(evidence.free, status.free);
                        }
                        Some(other) => prop_assert!(false, "a tick began with {:?}", other),
                        None => {}
                    }
                }
                Floor_::Call { which, how } => {
                    let calls = in_call(c.list());
                    if let Some(&(id, attempt)) = calls.get(which % calls.len().max(1)) {
                        now += 1_000;
                        let answered = c.answered(id, attempt, now);
                        match (how, answered) {
                            (0, _) => events = c.not_answered(id, attempt, Ended::NoAnswer, now).unwrap_or_default(),
                            (1, Ok(a)) => {
                                for e in &a {
                                    c.apply(e);
                                    journal.push(e.clone());
                                }
                                events = c.bridged(id, attempt, agents[which % 6], now).unwrap();
                            }
                            (_, Ok(a)) => {
                                for e in &a {
                                    c.apply(e);
                                    journal.push(e.clone());
                                }
                                events = c.abandoned(id, attempt, now).unwrap();
                            }
                            (_, Err(_)) => {}
                        }
                    }
                }
            }
            for e in events {
                c.apply(&e);
                journal.push(e);
            }
        }
        let mut rebuilt = Campaign::new(settings, ContactList::new(calling()));
        for e in &journal {
            rebuilt.apply(e);
        }
        prop_assert_eq!(rebuilt.status(now), c.status(now));
    }
}
