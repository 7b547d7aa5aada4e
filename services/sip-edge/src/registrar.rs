//! Registrations of agent phones (A4): each agent may have several devices, each binding
//! expires unless refreshed. In memory: a phone re-registers within its interval, so an edge
//! restart heals itself within one interval.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rsipstack::sip::Transport;

/// One registered device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI the phone registered, as text.
    pub contact: String,
    /// Where to send requests for it: the source address of the REGISTER that made it
    /// (RFC 3581), not the Contact's host.
    pub target: SocketAddr,
    /// Transport to use.
    pub transport: Transport,
    /// When the binding lapses.
    pub expires_at: Instant,
    /// Call-ID of the REGISTER that made it (RFC 3261 §10.3 step 7).
    pub call_id: String,
    /// CSeq of that REGISTER.
    pub cseq: u32,
}

/// A contact of a REGISTER request, already interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactUpdate {
    /// Contact URI as text.
    pub contact: String,
    /// Where requests for it go.
    pub target: SocketAddr,
    /// Transport.
    pub transport: Transport,
    /// Requested lifetime; zero removes the binding.
    pub expires: Duration,
}

/// Why a REGISTER changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// An older request of the same registration (RFC 3261 §10.3 step 7).
    #[error("out-of-order register (cseq {got} after {had})")]
    OutOfOrder {
        /// CSeq seen now.
        got: u32,
        /// CSeq already applied.
        had: u32,
    },
    /// Too many devices for one agent.
    #[error("at most {0} devices per agent")]
    TooManyDevices(usize),
}

/// Key of an agent.
pub type AgentKey = (Arc<str>, Arc<str>);

/// Every agent's bindings.
#[derive(Debug, Default)]
pub struct Registrar {
    bindings: Mutex<HashMap<AgentKey, Vec<Binding>>>,
}

/// Most devices one agent may register.
pub const MAX_DEVICES: usize = 10;

impl Registrar {
    /// Empty.
    pub fn new() -> Registrar {
        Registrar::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AgentKey, Vec<Binding>>> {
        self.bindings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies a REGISTER's contacts; returns the agent's bindings afterwards.
    pub fn update(
        &self,
        agent: &AgentKey,
        call_id: &str,
        cseq: u32,
        contacts: &[ContactUpdate],
        now: Instant,
    ) -> Result<Vec<Binding>, RegisterError> {
        let mut all = self.lock();
        let list = all.entry(agent.clone()).or_default();
        list.retain(|b| b.expires_at > now);
        for c in contacts {
            if let Some(b) = list.iter().find(|b| b.contact == c.contact) {
                if b.call_id == call_id && cseq <= b.cseq {
                    return Err(RegisterError::OutOfOrder {
                        got: cseq,
                        had: b.cseq,
                    });
                }
            }
        }
        for c in contacts {
            list.retain(|b| b.contact != c.contact);
            if c.expires.is_zero() {
                continue;
            }
            if list.len() >= MAX_DEVICES {
                return Err(RegisterError::TooManyDevices(MAX_DEVICES));
            }
            list.push(Binding {
                contact: c.contact.clone(),
                target: c.target,
                transport: c.transport,
                expires_at: now + c.expires,
                call_id: call_id.to_owned(),
                cseq,
            });
        }
        let out = list.clone();
        if list.is_empty() {
            all.remove(agent);
        }
        Ok(out)
    }

    /// Removes every binding of the agent (`Contact: *` with `Expires: 0`).
    pub fn clear(&self, agent: &AgentKey) {
        self.lock().remove(agent);
    }

    /// The agent's live bindings.
    pub fn lookup(&self, agent: &AgentKey, now: Instant) -> Vec<Binding> {
        self.lock()
            .get(agent)
            .map(|l| l.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default()
    }

    /// Whether the agent has a live binding reached at `ip` (a phone registered from there).
    pub fn has_binding_from(&self, agent: &AgentKey, ip: std::net::IpAddr, now: Instant) -> bool {
        self.lock()
            .get(agent)
            .is_some_and(|l| l.iter().any(|b| b.expires_at > now && b.target.ip() == ip))
    }

    /// Number of live bindings, for metrics.
    pub fn count(&self, now: Instant) -> usize {
        let mut all = self.lock();
        all.retain(|_, l| {
            l.retain(|b| b.expires_at > now);
            !l.is_empty()
        });
        all.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(a: &str) -> AgentKey {
        (Arc::from("demo"), Arc::from(a))
    }

    fn contact(uri: &str, port: u16, secs: u64) -> ContactUpdate {
        ContactUpdate {
            contact: uri.into(),
            target: SocketAddr::from(([127, 0, 0, 1], port)),
            transport: Transport::Udp,
            expires: Duration::from_secs(secs),
        }
    }

    #[test]
    fn several_devices_expire_and_refresh() {
        let r = Registrar::new();
        let t0 = Instant::now();
        r.update(
            &key("alice"),
            "c1",
            1,
            &[contact("sip:alice@127.0.0.1:6001", 6001, 60)],
            t0,
        )
        .expect("desk phone");
        r.update(
            &key("alice"),
            "c2",
            1,
            &[contact("sip:alice@127.0.0.1:6002", 6002, 120)],
            t0,
        )
        .expect("softphone");
        assert_eq!(r.lookup(&key("alice"), t0).len(), 2);
        assert_eq!(
            r.lookup(&key("alice"), t0 + Duration::from_secs(61)).len(),
            1
        );
        // refresh the first
        r.update(
            &key("alice"),
            "c1",
            2,
            &[contact("sip:alice@127.0.0.1:6001", 6001, 60)],
            t0 + Duration::from_secs(30),
        )
        .expect("refresh");
        assert_eq!(
            r.lookup(&key("alice"), t0 + Duration::from_secs(61)).len(),
            2
        );
        // unregister one
        r.update(
            &key("alice"),
            "c2",
            2,
            &[contact("sip:alice@127.0.0.1:6002", 6002, 0)],
            t0,
        )
        .expect("remove");
        assert_eq!(r.lookup(&key("alice"), t0).len(), 1);
        assert!(r.lookup(&key("bob"), t0).is_empty());
        assert_eq!(r.count(t0), 1);
        let here = "127.0.0.1".parse().expect("ip");
        assert!(r.has_binding_from(&key("alice"), here, t0));
        assert!(!r.has_binding_from(&key("alice"), "10.0.0.1".parse().expect("ip"), t0));
        assert!(!r.has_binding_from(&key("alice"), here, t0 + Duration::from_secs(3_600)));
        assert!(!r.has_binding_from(&key("bob"), here, t0));
    }

    #[test]
    fn an_old_register_of_the_same_call_id_changes_nothing() {
        let r = Registrar::new();
        let t0 = Instant::now();
        r.update(&key("bob"), "c", 5, &[contact("sip:bob@h", 1, 60)], t0)
            .expect("first");
        let err = r
            .update(&key("bob"), "c", 4, &[contact("sip:bob@h", 1, 0)], t0)
            .expect_err("older");
        assert_eq!(err, RegisterError::OutOfOrder { got: 4, had: 5 });
        assert_eq!(r.lookup(&key("bob"), t0).len(), 1);
    }

    #[test]
    fn device_count_is_bounded() {
        let r = Registrar::new();
        let t0 = Instant::now();
        for i in 0..MAX_DEVICES {
            r.update(
                &key("c"),
                &format!("c{i}"),
                1,
                &[contact(&format!("sip:c@h{i}"), 1, 60)],
                t0,
            )
            .expect("fits");
        }
        assert_eq!(
            r.update(&key("c"), "x", 1, &[contact("sip:c@hx", 1, 60)], t0),
            Err(RegisterError::TooManyDevices(MAX_DEVICES))
        );
    }
}
