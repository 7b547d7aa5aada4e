//! Rules between fields that the schema cannot express.

use std::collections::{HashMap, HashSet};

use crate::error::FieldError;
use crate::model::{HostPort, Target, TenantFile};
use crate::schema::{did_you_mean, quote, render_path, Seg};

/// Every cross-field problem of `tenant`, sorted by field.
pub(crate) fn check(file: &str, tenant: &TenantFile) -> Vec<FieldError> {
    let mut c = Checker { errors: Vec::new() };
    c.run(tenant);
    let mut errors = c.errors;
    errors.sort_by(|a, b| a.0.cmp(&b.0));
    errors
        .into_iter()
        .map(|(path, message)| FieldError::new(file, render_path(&path), message))
        .collect()
}

struct Checker {
    errors: Vec<(Vec<Seg>, String)>,
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_owned())
}

/// Ids known in the tenant, for resolving references.
struct Index<'t> {
    agents: HashSet<&'t str>,
    agent_ids: Vec<&'t str>,
    extensions: HashSet<&'t str>,
    queues: HashSet<&'t str>,
    groups: HashSet<&'t str>,
    menus: HashSet<&'t str>,
}

impl Checker {
    fn push(&mut self, at: Vec<Seg>, message: impl Into<String>) {
        self.errors.push((at, message.into()));
    }

    fn run(&mut self, t: &TenantFile) {
        self.unique("agents", "agent id", t.agents.iter().map(|a| a.id.as_str()));
        self.unique("queues", "queue id", t.queues.iter().map(|q| q.id.as_str()));
        self.unique("groups", "group id", t.groups.iter().map(|g| g.id.as_str()));
        self.unique("menus", "menu id", t.menus.iter().map(|m| m.id.as_str()));
        self.unique_numbers(t);
        self.dialled_numbers(t);
        self.unique("trunks", "trunk id", t.trunks.iter().map(|k| k.id.as_str()));
        self.trunks(t);
        self.secrets(t);
        self.outbound(t);
        for (i, d) in t.device_domains.iter().enumerate() {
            if callgrid_domain::DeviceDomain::parse(d).is_none() {
                self.push(
                    vec![key("device_domains"), Seg::Index(i)],
                    format!("{} is not a host name, an address or ADDR/BITS", quote(d)),
                );
            }
        }

        let index = Index {
            agents: t.agents.iter().map(|a| a.id.as_str()).collect(),
            agent_ids: t.agents.iter().map(|a| a.id.as_str()).collect(),
            extensions: t.agents.iter().map(|a| a.extension.as_str()).collect(),
            queues: t.queues.iter().map(|q| q.id.as_str()).collect(),
            groups: t.groups.iter().map(|g| g.id.as_str()).collect(),
            menus: t.menus.iter().map(|m| m.id.as_str()).collect(),
        };

        for (qi, queue) in t.queues.iter().enumerate() {
            let at = [key("queues"), Seg::Index(qi)];
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for (mi, member) in queue.members.iter().enumerate() {
                let mut here = at.to_vec();
                here.extend([key("members"), Seg::Index(mi), key("agent")]);
                self.agent_ref(&index, here.clone(), &member.agent);
                if let Some(&first) = seen.get(member.agent.as_str()) {
                    self.push(
                        here,
                        format!(
                            "agent {} is already a member of this queue (members[{first}])",
                            quote(&member.agent)
                        ),
                    );
                } else {
                    seen.insert(&member.agent, mi);
                }
            }
            if let Some(overflow) = &queue.overflow {
                let mut here = at.to_vec();
                here.push(key("overflow"));
                if matches!(overflow, Target::Queue(id) if *id == queue.id) {
                    here.push(key("queue"));
                    self.push(here, "a queue may not overflow to itself");
                } else {
                    self.target(&index, here, overflow, false);
                }
            }
        }

        for (gi, group) in t.groups.iter().enumerate() {
            let at = [key("groups"), Seg::Index(gi)];
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for (mi, agent) in group.members.iter().enumerate() {
                let mut here = at.to_vec();
                here.extend([key("members"), Seg::Index(mi)]);
                self.agent_ref(&index, here.clone(), agent);
                if let Some(&first) = seen.get(agent.as_str()) {
                    self.push(
                        here,
                        format!(
                            "agent {} is already a member of this group (members[{first}])",
                            quote(agent)
                        ),
                    );
                } else {
                    seen.insert(agent, mi);
                }
            }
            if let Some(no_answer) = &group.no_answer {
                let mut here = at.to_vec();
                here.push(key("no_answer"));
                if matches!(no_answer, Target::Group(id) if *id == group.id) {
                    here.push(key("group"));
                    self.push(here, "a group may not send unanswered calls to itself");
                } else {
                    self.target(&index, here, no_answer, false);
                }
            }
        }

        for (mi, menu) in t.menus.iter().enumerate() {
            let at = [key("menus"), Seg::Index(mi)];
            for (digit, target) in &menu.options {
                let mut here = at.to_vec();
                here.extend([key("options"), key(digit)]);
                self.target(&index, here, target, true);
            }
            if let Some(target) = &menu.on_timeout {
                let mut here = at.to_vec();
                here.push(key("on_timeout"));
                self.target(&index, here, target, true);
            }
            if let Some(target) = &menu.on_invalid {
                let mut here = at.to_vec();
                here.push(key("on_invalid"));
                self.target(&index, here, target, true);
            }
        }

        for (ni, number) in t.numbers.iter().enumerate() {
            let here = vec![key("numbers"), Seg::Index(ni), key("route")];
            self.target(&index, here, &number.route, false);
        }
    }

    /// Reports every repeated id in a list, naming the first occurrence.
    fn unique<'a>(&mut self, list: &str, what: &str, ids: impl Iterator<Item = &'a str>) {
        let mut first: HashMap<&str, usize> = HashMap::new();
        for (i, id) in ids.enumerate() {
            if let Some(&at) = first.get(id) {
                self.push(
                    vec![key(list), Seg::Index(i), key("id")],
                    format!(
                        "duplicate {what} {} (first used at {list}[{at}])",
                        quote(id)
                    ),
                );
            } else {
                first.insert(id, i);
            }
        }
    }

    /// Trunk addresses must be an IPv4 address or a host name with a usable port, and not
    /// shared by two trunks (a call from that address would be ambiguous).
    fn trunks(&mut self, t: &TenantFile) {
        let mut first: HashMap<HostPort, usize> = HashMap::new();
        for (i, trunk) in t.trunks.iter().enumerate() {
            let at = vec![key("trunks"), Seg::Index(i), key("address")];
            match HostPort::parse(&trunk.address) {
                Err(reason) => self.push(at, format!("{}: {reason}", quote(&trunk.address))),
                Ok(addr) => {
                    if let Some(&other) = first.get(&addr) {
                        self.push(
                            at,
                            format!("address {addr} is already the address of trunks[{other}]"),
                        );
                    } else {
                        first.insert(addr, i);
                    }
                }
            }
        }
    }

    /// The outbound settings (region, classes, numbers, blocklist, trunks' registration,
    /// caller id and cost), read as [`crate::to_setup`] reads them.
    fn outbound(&mut self, t: &TenantFile) {
        let _ = crate::outbound::read(t, &mut self.errors);
    }

    /// A secret is given once: as written (`sip_password`, `password`) or as callgrid keeps it
    /// (`sip_ha1`, `password_enc`), not both; a trunk account needs its secret.
    fn secrets(&mut self, t: &TenantFile) {
        for (i, a) in t.agents.iter().enumerate() {
            if a.sip_password.is_some() && a.sip_ha1.is_some() {
                self.push(
                    vec![key("agents"), Seg::Index(i), key("sip_ha1")],
                    "give sip_password or sip_ha1, not both".to_owned(),
                );
            }
        }
        for (i, k) in t.trunks.iter().enumerate() {
            let at = |field| vec![key("trunks"), Seg::Index(i), key(field)];
            match (k.password.is_some(), k.password_enc.is_some()) {
                (true, true) => self.push(
                    at("password_enc"),
                    "give password or password_enc, not both".to_owned(),
                ),
                (false, false) if k.username.is_some() => self.push(
                    at("password"),
                    "required with username (the account's secret)".to_owned(),
                ),
                _ => {}
            }
        }
    }

    /// Numbers are compared without a leading `+`.
    fn unique_numbers(&mut self, t: &TenantFile) {
        let mut first: HashMap<&str, usize> = HashMap::new();
        for (i, number) in t.numbers.iter().enumerate() {
            let digits = number.number.trim_start_matches('+');
            if let Some(&at) = first.get(digits) {
                self.push(
                    vec![key("numbers"), Seg::Index(i), key("number")],
                    format!(
                        "duplicate number {} (first used at numbers[{at}])",
                        quote(&number.number)
                    ),
                );
            } else {
                first.insert(digits, i);
            }
        }
    }

    /// Queue, group and menu ids and extensions are all dialled numbers (R1, R2): each must
    /// reach one thing. Only long queue ids can collide (4 digits with groups, 5-6 digits
    /// with extensions); extensions may be shared by agents (A1).
    fn dialled_numbers(&mut self, t: &TenantFile) {
        let mut owner: HashMap<&str, String> = HashMap::new();
        for (i, agent) in t.agents.iter().enumerate() {
            owner.entry(agent.extension.as_str()).or_insert_with(|| {
                format!("the extension of agent {} (agents[{i}])", quote(&agent.id))
            });
        }
        for (i, group) in t.groups.iter().enumerate() {
            owner
                .entry(group.id.as_str())
                .or_insert_with(|| format!("group {} (groups[{i}])", quote(&group.id)));
        }
        for (i, menu) in t.menus.iter().enumerate() {
            owner
                .entry(menu.id.as_str())
                .or_insert_with(|| format!("menu {} (menus[{i}])", quote(&menu.id)));
        }
        for (i, queue) in t.queues.iter().enumerate() {
            if let Some(other) = owner.get(queue.id.as_str()) {
                self.push(
                    vec![key("queues"), Seg::Index(i), key("id")],
                    format!(
                        "queue id {} is also {other}; a dialled number must reach one thing",
                        quote(&queue.id)
                    ),
                );
            }
        }
    }

    fn agent_ref(&mut self, index: &Index<'_>, at: Vec<Seg>, agent: &str) {
        if !index.agents.contains(agent) {
            let mut message = format!("unknown agent {}", quote(agent));
            // Suggestions cost a comparison per agent; skip them in huge tenants.
            let suggestion = (index.agent_ids.len() <= 10_000)
                .then(|| did_you_mean(agent, index.agent_ids.iter().copied()))
                .flatten();
            if let Some(best) = suggestion {
                message.push_str(&format!(" (did you mean {}?)", quote(best)));
            }
            self.push(at, message);
        }
    }

    fn target(&mut self, index: &Index<'_>, mut at: Vec<Seg>, target: &Target, in_menu: bool) {
        at.push(key(target.kind()));
        match target {
            Target::Queue(id) if !index.queues.contains(id.as_str()) => {
                self.push(at, format!("unknown queue {}", quote(id)));
            }
            Target::Group(id) if !index.groups.contains(id.as_str()) => {
                self.push(at, format!("unknown group {}", quote(id)));
            }
            Target::Extension(ext) if !index.extensions.contains(ext.as_str()) => {
                self.push(at, format!("no agent has extension {}", quote(ext)));
            }
            Target::Agent(id) => self.agent_ref(index, at, id),
            Target::Menu(_) if in_menu => {
                self.push(
                    at,
                    "a menu may not lead to another menu (menus are one level only)",
                );
            }
            Target::Menu(id) if !index.menus.contains(id.as_str()) => {
                self.push(at, format!("unknown menu {}", quote(id)));
            }
            _ => {}
        }
    }
}
