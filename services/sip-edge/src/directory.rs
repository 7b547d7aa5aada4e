//! What the edge must know of the tenants' configuration: which tenant owns a dialled number,
//! which trunk a call comes from, and the agents' SIP credentials. Built from tenant files and
//! swapped whole when a tenant is loaded again; trunk call counters survive the swap.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use callgrid_config::secrets::SecretsKey;
use callgrid_config::{TenantFile, TrunkTransport};

/// A hotline number as the router knows it.
#[derive(Debug, Clone)]
pub struct NumberEntry {
    /// Owning tenant.
    pub tenant: Arc<str>,
    /// The number exactly as configured (the router's key).
    pub number: Arc<str>,
    /// Where its calls go when the platform cannot take them (N6).
    pub backup: Option<Arc<callgrid_config::BackupRoute>>,
    /// The tenant is out of service: its calls go to the backup at once.
    pub out_of_service: bool,
}

/// A carrier trunk.
#[derive(Debug)]
pub struct TrunkEntry {
    /// Owning tenant.
    pub tenant: Arc<str>,
    /// Trunk id.
    pub id: Arc<str>,
    /// Carrier address, when the trunk names an IP address; a trunk named by host is known
    /// by its digest account only, until the edge resolves names.
    pub addr: Option<SocketAddr>,
    /// Transport toward the carrier.
    pub transport: TrunkTransport,
    /// Digest account, both ways.
    pub username: Option<String>,
    /// Digest secret (decrypted from the file's `password_enc` with the secrets key).
    pub password: Option<String>,
    /// Most calls at once.
    pub max_calls: Option<u32>,
    /// Calls in progress on the trunk (shared across directory versions).
    pub active: Arc<AtomicU32>,
    /// Calls out say they are from the trunk's account, not the hotline number.
    pub from_account: bool,
    /// Calls out carry `P-Asserted-Identity` with the hotline number.
    pub p_asserted_identity: bool,
    /// The period of the edge's OPTIONS pings, when on.
    pub keepalive: Option<std::time::Duration>,
    /// Registration: the registrar (`host:port`) and the expiry asked for, in seconds.
    pub register: Option<(String, u32)>,
    /// The keepalive's verdict (up until a ping goes unanswered; kept across rebuilds).
    pub up: Arc<std::sync::atomic::AtomicBool>,
    /// Registered with the carrier now (kept across rebuilds).
    pub registered: Arc<std::sync::atomic::AtomicBool>,
}

impl TrunkEntry {
    /// Takes a place under the trunk's limit; `false` when the trunk is full.
    pub fn try_acquire(&self) -> bool {
        let max = self.max_calls.unwrap_or(u32::MAX);
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives a place back.
    pub fn release(&self) {
        let _ = self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

/// What an agent's phone proves in a digest: its password, as written in a tenant file, or
/// the HA1s callgrid keeps instead (`sip_ha1`).
#[derive(Clone)]
pub enum AgentCredential {
    /// The password (tenant files read by `callgrid sip-edge`).
    Password(String),
    /// HA1s for `tenant.agent` (`ha1`) and `agent` (`ha1b`) in `realm`.
    Ha1 {
        /// The realm they were made for.
        realm: String,
        /// `MD5(tenant.agent:realm:password)`.
        ha1: String,
        /// `MD5(agent:realm:password)`.
        ha1b: String,
    },
}

impl std::fmt::Debug for AgentCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AgentCredential::Password(_) => "Password(***)",
            AgentCredential::Ha1 { .. } => "Ha1(***)",
        })
    }
}

/// An agent who may register phones.
#[derive(Debug, Clone)]
pub struct AgentEntry {
    /// Tenant.
    pub tenant: Arc<str>,
    /// Agent id.
    pub agent: Arc<str>,
    /// Its digest credential; agents without one cannot register.
    pub credential: Option<AgentCredential>,
}

impl AgentEntry {
    /// The HA1 a digest with `username` in `realm` must be made with, if the agent has one
    /// for them.
    pub fn ha1(&self, username: &str, realm: &str) -> Option<String> {
        match self.credential.as_ref()? {
            AgentCredential::Password(p) => Some(crate::digest::ha1(username, realm, p)),
            AgentCredential::Ha1 {
                realm: r,
                ha1,
                ha1b,
            } => {
                if r != realm {
                    return None;
                }
                if username == format!("{}.{}", self.tenant, self.agent) {
                    Some(ha1.clone())
                } else if username == &*self.agent {
                    Some(ha1b.clone())
                } else {
                    None
                }
            }
        }
    }
}

/// The edge's view of every tenant.
#[derive(Debug, Default)]
pub struct Directory {
    numbers: HashMap<String, NumberEntry>,
    trunks_by_ip: HashMap<IpAddr, Vec<Arc<TrunkEntry>>>,
    trunks_by_user: HashMap<String, Vec<Arc<TrunkEntry>>>,
    trunks_by_id: HashMap<(Arc<str>, Arc<str>), Arc<TrunkEntry>>,
    agents: HashMap<(Arc<str>, Arc<str>), AgentEntry>,
    agent_tenants: HashMap<Arc<str>, Vec<Arc<str>>>,
    tenants: Vec<Arc<str>>,
}

fn digits(number: &str) -> &str {
    number.trim_start_matches('+')
}

/// How a registering phone names its agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentLookup {
    /// Found.
    Found(AgentEntry),
    /// No such agent.
    Unknown,
    /// The name fits agents of several tenants: use `tenant.agent`.
    Ambiguous,
}

impl PartialEq for AgentEntry {
    fn eq(&self, other: &Self) -> bool {
        self.tenant == other.tenant && self.agent == other.agent
    }
}
impl Eq for AgentEntry {}

impl Directory {
    /// Builds the directory of these tenants. `counters` keeps each trunk's call count
    /// across rebuilds; `key` opens trunk secrets kept encrypted.
    pub fn build(
        tenants: &[TenantFile],
        counters: &TrunkCounters,
        key: Option<&SecretsKey>,
    ) -> Directory {
        let mut d = Directory::default();
        for t in tenants {
            let tenant: Arc<str> = Arc::from(t.tenant.as_str());
            d.tenants.push(tenant.clone());
            let mut backups: HashMap<String, Arc<callgrid_config::BackupRoute>> =
                callgrid_config::backup_routes(t)
                    .into_iter()
                    .map(|r| (r.number.clone(), Arc::new(r)))
                    .collect();
            for n in &t.numbers {
                d.numbers.insert(
                    digits(&n.number).to_owned(),
                    NumberEntry {
                        tenant: tenant.clone(),
                        number: Arc::from(n.number.as_str()),
                        backup: backups.remove(&n.number),
                        out_of_service: t.out_of_service,
                    },
                );
            }
            for k in &t.trunks {
                let addr = k.socket_addr();
                let (up, registered) = counters.health(&t.tenant, &k.id);
                let entry = Arc::new(TrunkEntry {
                    tenant: tenant.clone(),
                    id: Arc::from(k.id.as_str()),
                    addr,
                    transport: k.transport,
                    username: k.username.clone(),
                    password: trunk_secret(&t.tenant, k, key),
                    max_calls: Some(
                        k.max_concurrent_calls
                            .unwrap_or(callgrid_config::DEFAULT_TRUNK_MAX_CALLS),
                    ),
                    active: counters.get(&t.tenant, &k.id),
                    from_account: k.caller_id.from == callgrid_config::CallerIdFrom::Account,
                    p_asserted_identity: k.caller_id.p_asserted_identity,
                    keepalive: (k.keepalive_seconds > 0)
                        .then(|| std::time::Duration::from_secs(u64::from(k.keepalive_seconds))),
                    register: k.register.as_ref().and_then(|r| {
                        k.registrar_address()
                            .map(|hp| (hp.to_string(), r.expires_seconds))
                    }),
                    up,
                    registered,
                });
                d.trunks_by_id
                    .insert((tenant.clone(), entry.id.clone()), entry.clone());
                if let Some(addr) = addr {
                    d.trunks_by_ip
                        .entry(addr.ip())
                        .or_default()
                        .push(entry.clone());
                }
                if let Some(user) = &k.username {
                    d.trunks_by_user
                        .entry(user.clone())
                        .or_default()
                        .push(entry);
                }
            }
            for a in &t.agents {
                let agent: Arc<str> = Arc::from(a.id.as_str());
                d.agents.insert(
                    (tenant.clone(), agent.clone()),
                    AgentEntry {
                        tenant: tenant.clone(),
                        agent: agent.clone(),
                        credential: match (&a.sip_password, &a.sip_ha1) {
                            (Some(p), _) => Some(AgentCredential::Password(p.expose().to_owned())),
                            (None, Some(h)) => Some(AgentCredential::Ha1 {
                                realm: h.realm.clone(),
                                ha1: h.ha1.clone(),
                                ha1b: h.ha1b.clone(),
                            }),
                            (None, None) => None,
                        },
                    },
                );
                d.agent_tenants
                    .entry(agent)
                    .or_default()
                    .push(tenant.clone());
            }
        }
        d
    }

    /// The number entry for a dialled number (with or without `+`).
    pub fn number(&self, dialled: &str) -> Option<&NumberEntry> {
        self.numbers.get(digits(dialled))
    }

    /// The trunk a request from `source` comes from, for a call to a number of `tenant`:
    /// a trunk of that tenant at the source's address (exact port first, then any port).
    pub fn trunk_by_source(&self, source: SocketAddr, tenant: &str) -> Option<Arc<TrunkEntry>> {
        let list = self.trunks_by_ip.get(&source.ip())?;
        let of_tenant = || list.iter().filter(|k| &*k.tenant == tenant);
        of_tenant()
            .find(|k| k.addr == Some(source))
            .or_else(|| of_tenant().next())
            .cloned()
    }

    /// Every trunk of every tenant.
    pub fn all_trunks(&self) -> Vec<Arc<TrunkEntry>> {
        let mut v: Vec<_> = self.trunks_by_id.values().cloned().collect();
        v.sort_by(|a, b| (&a.tenant, &a.id).cmp(&(&b.tenant, &b.id)));
        v
    }

    /// A tenant's trunk by its id (calls out).
    pub fn trunk(&self, tenant: &str, id: &str) -> Option<Arc<TrunkEntry>> {
        self.trunks_by_id
            .get(&(Arc::from(tenant), Arc::from(id)))
            .cloned()
    }

    /// Whether some tenant has a trunk at this address (any port): such addresses get the
    /// trunks' limits and are never banned (`defences.rs`).
    pub fn is_trunk_address(&self, ip: IpAddr) -> bool {
        self.trunks_by_ip.contains_key(&ip)
    }

    /// The trunks with this digest account.
    pub fn trunks_by_username(&self, username: &str) -> &[Arc<TrunkEntry>] {
        self.trunks_by_user
            .get(username)
            .map_or(&[], |v| v.as_slice())
    }

    /// The agent a registering phone names, from the user part of its address-of-record
    /// and its domain: `tenant.agent@any`, `agent@tenant`, or a bare `agent` that exactly
    /// one tenant has.
    pub fn agent(&self, user: &str, domain: &str) -> AgentLookup {
        let get = |tenant: &str, agent: &str| {
            self.agents
                .get(&(Arc::from(tenant), Arc::from(agent)))
                .cloned()
        };
        if let Some(a) = get(domain, user) {
            return AgentLookup::Found(a);
        }
        if let Some((tenant, agent)) = user.split_once('.') {
            if let Some(a) = get(tenant, agent) {
                return AgentLookup::Found(a);
            }
        }
        match self.agent_tenants.get(user).map(Vec::as_slice) {
            Some([tenant]) => get(tenant, user).map_or(AgentLookup::Unknown, AgentLookup::Found),
            Some([_, _, ..]) => AgentLookup::Ambiguous,
            _ => AgentLookup::Unknown,
        }
    }

    /// Whether digest credentials `c` for `method` prove `agent`: the digest's user names the
    /// same agent (any of its spellings, read in `domain`) and the response is made with the
    /// agent's HA1 (REGISTER and a phone's INVITE alike).
    pub fn proves(
        &self,
        agent: &AgentEntry,
        c: &crate::digest::Credentials,
        domain: &str,
        method: &str,
    ) -> bool {
        let same =
            matches!(self.agent(&c.username, domain), AgentLookup::Found(ref a) if a == agent);
        same && agent
            .ha1(&c.username, &c.realm)
            .is_some_and(|ha1| crate::digest::verify_ha1(c, method, &ha1))
    }

    /// Tenants known.
    pub fn tenants(&self) -> &[Arc<str>] {
        &self.tenants
    }
}

/// Call counters of trunks by (tenant, trunk id), kept across directory rebuilds.
#[derive(Debug, Default)]
pub struct TrunkCounters(
    Mutex<HashMap<(String, String), Arc<AtomicU32>>>,
    Mutex<HashMap<(String, String), Health>>,
);

/// A trunk's keepalive verdict (up) and registration state.
type Health = (
    Arc<std::sync::atomic::AtomicBool>,
    Arc<std::sync::atomic::AtomicBool>,
);

impl TrunkCounters {
    fn health(&self, tenant: &str, trunk: &str) -> Health {
        self.1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((tenant.to_owned(), trunk.to_owned()))
            .or_insert_with(|| {
                (
                    Arc::new(std::sync::atomic::AtomicBool::new(true)),
                    Arc::new(std::sync::atomic::AtomicBool::new(false)),
                )
            })
            .clone()
    }

    fn get(&self, tenant: &str, trunk: &str) -> Arc<AtomicU32> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((tenant.to_owned(), trunk.to_owned()))
            .or_default()
            .clone()
    }
}

/// A trunk's digest secret: as written, or opened with the secrets key (an error logged,
/// and no secret, when it cannot be).
fn trunk_secret(
    tenant: &str,
    k: &callgrid_config::Trunk,
    key: Option<&SecretsKey>,
) -> Option<String> {
    if let Some(p) = &k.password {
        return Some(p.expose().to_owned());
    }
    let sealed = k.password_enc.as_ref()?;
    match key.map(|key| key.open(sealed)) {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            tracing::error!(%tenant, trunk = %k.id, error = %e, "trunk secret unusable: its calls cannot authenticate");
            None
        }
        None => {
            tracing::error!(%tenant, trunk = %k.id, "trunk secret is encrypted and the edge has no secrets key (--secrets-key-file): its calls cannot authenticate");
            None
        }
    }
}

/// The current directory, replaced atomically when tenants change.
#[derive(Debug, Default)]
pub struct SharedDirectory {
    current: RwLock<Arc<Directory>>,
    counters: TrunkCounters,
    files: Mutex<Vec<TenantFile>>,
    key: Option<SecretsKey>,
}

impl SharedDirectory {
    /// From these tenants; `key` opens trunk secrets kept encrypted.
    pub fn new(tenants: Vec<TenantFile>, key: Option<SecretsKey>) -> SharedDirectory {
        let d = SharedDirectory {
            key,
            ..SharedDirectory::default()
        };
        d.replace_all(tenants);
        d
    }

    /// The current directory.
    pub fn get(&self) -> Arc<Directory> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces every tenant.
    pub fn replace_all(&self, tenants: Vec<TenantFile>) {
        let built = Arc::new(Directory::build(
            &tenants,
            &self.counters,
            self.key.as_ref(),
        ));
        *self
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = tenants;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = built;
    }

    /// Adds or replaces one tenant.
    pub fn upsert(&self, tenant: TenantFile) {
        let mut files = self
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        files.retain(|t| t.tenant != tenant.tenant);
        files.push(tenant);
        let built = Arc::new(Directory::build(&files, &self.counters, self.key.as_ref()));
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = built;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> TenantFile {
        callgrid_config::load_str("demo.yaml", callgrid_config::DEMO_TENANT_YAML).expect("demo")
    }

    #[test]
    fn a_trunk_named_by_host_is_known_by_its_digest_account() {
        let yaml = callgrid_config::DEMO_TENANT_YAML.replace(
            "trunks:\n",
            "trunks:\n  - { id: named, name: Named carrier, address: \"sip.carrier.example:5060\", username: acct9, password: \"a-long-secret-9\" }\n",
        );
        let file = callgrid_config::load_str("demo.yaml", &yaml).expect("a named trunk loads");
        let d = Directory::build(&[file], &TrunkCounters::default(), None);
        let named = d.trunks_by_username("acct9");
        assert_eq!(named.len(), 1);
        assert_eq!((&*named[0].id, named[0].addr), ("named", None));
        // the IP trunk is still matched by its address
        let local = d
            .trunk_by_source("127.0.0.1:5080".parse().expect("addr"), "demo")
            .expect("the local trunk");
        assert_eq!(&*local.id, "local");
    }

    #[test]
    fn numbers_match_with_or_without_plus() {
        let d = Directory::build(&[demo()], &TrunkCounters::default(), None);
        assert_eq!(
            &*d.number("842873000200").expect("n").number,
            "+842873000200"
        );
        assert_eq!(&*d.number("+842873000200").expect("n").tenant, "demo");
        assert!(d.number("+15550000000").is_none());
    }

    #[test]
    fn agents_are_found_by_several_spellings() {
        let mut other = demo();
        other.tenant = "other".into();
        let d = Directory::build(&[demo(), other], &TrunkCounters::default(), None);
        assert!(
            matches!(d.agent("demo.alice", "127.0.0.1"), AgentLookup::Found(a) if &*a.tenant == "demo")
        );
        assert!(
            matches!(d.agent("alice", "other"), AgentLookup::Found(a) if &*a.tenant == "other")
        );
        assert_eq!(d.agent("alice", "127.0.0.1"), AgentLookup::Ambiguous);
        assert_eq!(d.agent("nobody", "127.0.0.1"), AgentLookup::Unknown);
        let single = Directory::build(&[demo()], &TrunkCounters::default(), None);
        assert!(matches!(
            single.agent("bob", "127.0.0.1"),
            AgentLookup::Found(_)
        ));
    }

    #[test]
    fn trunks_are_found_by_source_and_limited() {
        let shared = SharedDirectory::new(vec![demo()], None);
        let d = shared.get();
        let t = d
            .trunk_by_source("127.0.0.1:40000".parse().expect("addr"), "demo")
            .expect("same ip, other port");
        assert_eq!(&*t.id, "local");
        assert!(d
            .trunk_by_source("10.0.0.1:5060".parse().expect("addr"), "demo")
            .is_none());
        assert!(d.is_trunk_address("127.0.0.1".parse().expect("ip")));
        assert!(!d.is_trunk_address("10.0.0.1".parse().expect("ip")));
        for _ in 0..60 {
            assert!(t.try_acquire());
        }
        assert!(!t.try_acquire(), "the 61st call is over the limit");
        // a reload keeps the count
        shared.upsert(demo());
        let again = shared
            .get()
            .trunk_by_source("127.0.0.1:5080".parse().expect("addr"), "demo")
            .expect("trunk");
        assert!(!again.try_acquire());
        again.release();
        assert!(t.try_acquire());
    }

    #[test]
    fn kept_secrets_serve_as_written_ones() {
        use callgrid_config::secrets::{seal, SecretsKey};
        let key = SecretsKey::from_bytes(&[3; 32]);
        let yaml = callgrid_config::DEMO_TENANT_YAML.replace(
            "address: \"127.0.0.1:5080\",",
            "address: \"127.0.0.1:5080\", username: carrier, password: carrier-secret,",
        );
        let kept = seal(&yaml, "callgrid", Some(&key)).expect("sealed");
        let file = callgrid_config::load_str("kept.yaml", &kept).expect("loads");
        let d = Directory::build(
            std::slice::from_ref(&file),
            &TrunkCounters::default(),
            Some(&key),
        );
        let trunk = &d.trunks_by_username("carrier")[0];
        assert_eq!(trunk.password.as_deref(), Some("carrier-secret"));
        let AgentLookup::Found(alice) = d.agent("demo.alice", "x") else {
            panic!("alice");
        };
        let by_password = crate::digest::ha1("demo.alice", "callgrid", "alice-demo-secret");
        assert_eq!(alice.ha1("demo.alice", "callgrid"), Some(by_password));
        assert_eq!(
            alice.ha1("alice", "callgrid"),
            Some(crate::digest::ha1("alice", "callgrid", "alice-demo-secret"))
        );
        // another realm, another user name: nothing to check against
        assert_eq!(alice.ha1("demo.alice", "elsewhere"), None);
        assert_eq!(alice.ha1("demo.bob", "callgrid"), None);
        // without the key the trunk cannot authenticate
        let d = Directory::build(&[file], &TrunkCounters::default(), None);
        assert!(d.trunks_by_username("carrier")[0].password.is_none());
    }
}
