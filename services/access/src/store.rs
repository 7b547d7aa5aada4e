//! `Access`: the credentials of a node, kept in the access topic of the event log (so every
//! node of a cluster sees the same tokens, users and sessions, and every change is a record
//! saying who made it), folded into a [`Directory`] in memory and followed as it grows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use callgrid_eventlog::{EventLog, LogError, Record};
use callgrid_proto::events::v1 as pb;
use pb::access_record::Change;
use prost::Message;

use crate::directory::{Directory, TokenEntry, UserEntry};
use crate::role::{Denied, Principal, Role};
use crate::secret;

/// The topic of access records (one partition: they are few, and totally ordered).
pub const ACCESS_TOPIC: &str = "callgrid.access.v1";

/// Errors of access management.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The event log failed.
    #[error("access log: {0}")]
    Log(#[from] LogError),
    /// A request is invalid (names the field).
    #[error("{0}")]
    Invalid(String),
    /// The caller may not do this.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// No such token or user.
    #[error("{0}")]
    NotFound(String),
    /// The user exists already.
    #[error("{0}")]
    Exists(String),
    /// Too many failed sign-ins, or too many at once: try later.
    #[error("{0}")]
    Busy(String),
}

/// Milliseconds since the epoch now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Options of [`Access`].
#[derive(Clone, Debug)]
pub struct AccessOptions {
    /// How long a browser session (and an agent's sign-in token) lasts.
    pub session_ttl: Duration,
    /// Failed sign-ins from one address or for one user before they are refused for
    /// `lockout`.
    pub max_failures: u32,
    /// How long failures are counted, and how long a lockout lasts.
    pub lockout: Duration,
    /// Password checks run at once (argon2id takes ~20 MiB and tens of ms each).
    pub hashing_slots: usize,
    /// Sign-ins that may wait for a slot; more are refused at once (never a queue that
    /// stalls the node).
    pub hashing_queue: usize,
    /// Sessions a user may have open at once; a sign-in beyond it ends the user's session
    /// that would end first (a browser that lost its cookie must still get in, and a
    /// script signing in over and over must not grow the directory without end).
    pub max_sessions_per_user: usize,
}

impl Default for AccessOptions {
    fn default() -> Self {
        AccessOptions {
            session_ttl: Duration::from_secs(12 * 3600),
            max_failures: 5,
            lockout: Duration::from_secs(300),
            hashing_slots: 2,
            hashing_queue: 32,
            max_sessions_per_user: 20,
        }
    }
}

/// A new token: what to show its holder once, and what is kept.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The bearer token (only its hash is stored).
    pub token: String,
    /// What is kept of it.
    pub entry: TokenEntry,
}

/// A successful sign-in.
#[derive(Clone, Debug)]
pub struct SignedIn {
    /// The session cookie's value.
    pub cookie: String,
    /// The CSRF token requests that change something must send (`X-CSRF-Token`).
    pub csrf: String,
    /// Who signed in.
    pub principal: Principal,
    /// An agent's bearer token for its own API calls (ends with the session).
    pub agent_token: Option<String>,
    /// When the session ends (ms since the epoch).
    pub expires_ms: i64,
}

/// A token to issue.
#[derive(Clone, Debug, Default)]
pub struct TokenSpec {
    /// Role.
    pub role: Option<Role>,
    /// Tenant (`None`: platform-wide).
    pub tenant: Option<String>,
    /// Agent (agent role).
    pub agent: Option<String>,
    /// Lifetime; `None`: never expires.
    pub expires_in: Option<Duration>,
    /// Note.
    pub label: String,
}

/// Failed sign-ins by address or user.
#[derive(Default)]
struct Failures {
    by_key: HashMap<String, (u32, Instant)>,
}

/// Longest id, name or label accepted.
pub const MAX_NAME: usize = 64;

/// Checks an id or name: 1 to 64 of `A-Z a-z 0-9 . _ @ + -`.
pub fn check_name(field: &str, v: &str) -> Result<(), AccessError> {
    if v.is_empty() {
        return Err(AccessError::Invalid(format!("{field} is required")));
    }
    if v.len() > MAX_NAME {
        return Err(AccessError::Invalid(format!(
            "{field} is longer than {MAX_NAME} bytes"
        )));
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'+' | b'-'))
    {
        return Err(AccessError::Invalid(format!(
            "{field} may hold only letters, digits and . _ @ + -"
        )));
    }
    Ok(())
}

fn check_password(p: &str) -> Result<(), AccessError> {
    if p.chars().count() < secret::MIN_PASSWORD {
        return Err(AccessError::Invalid(format!(
            "password must have at least {} characters",
            secret::MIN_PASSWORD
        )));
    }
    if p.len() > secret::MAX_PASSWORD {
        return Err(AccessError::Invalid(format!(
            "password is longer than {} bytes",
            secret::MAX_PASSWORD
        )));
    }
    Ok(())
}

/// The credentials of this node.
pub struct Access {
    log: Arc<dyn EventLog>,
    dir: RwLock<Directory>,
    /// The next offset of the access topic to apply; held while applying.
    next: tokio::sync::Mutex<u64>,
    options: AccessOptions,
    hashing: Arc<tokio::sync::Semaphore>,
    waiting: std::sync::atomic::AtomicUsize,
    failures: Mutex<Failures>,
}

impl Access {
    /// Reads the access topic of `log` (creating it if missing) and follows it.
    pub async fn open(
        log: Arc<dyn EventLog>,
        options: AccessOptions,
    ) -> Result<Arc<Access>, AccessError> {
        match log.create_topic(ACCESS_TOPIC, 1).await {
            Ok(()) | Err(LogError::TopicExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let access = Arc::new(Access {
            log,
            dir: RwLock::new(Directory::default()),
            next: tokio::sync::Mutex::new(0),
            hashing: Arc::new(tokio::sync::Semaphore::new(options.hashing_slots.max(1))),
            options,
            waiting: 0.into(),
            failures: Mutex::new(Failures::default()),
        });
        access.catch_up(None).await?;
        let weak = Arc::downgrade(&access);
        tokio::spawn(async move { follow(weak).await });
        Ok(access)
    }

    /// Applies the records of the topic up to its end (or at least through `through`).
    async fn catch_up(&self, through: Option<u64>) -> Result<(), AccessError> {
        let mut next = self.next.lock().await;
        loop {
            let batch = self.log.read(ACCESS_TOPIC, 0, *next, 1000).await?;
            if batch.is_empty() {
                if through.is_none_or(|t| *next > t) {
                    return Ok(());
                }
                // our own append is durable but not yet readable: wait for it
                self.log
                    .wait_beyond(ACCESS_TOPIC, 0, *next, Duration::from_millis(200))
                    .await?;
                continue;
            }
            let mut dir = self.write_dir();
            for r in batch {
                match pb::AccessRecord::decode(r.value.as_slice()) {
                    Ok(rec) => dir.apply(&rec),
                    Err(e) => {
                        // a record no build can read is skipped loudly, not fatal: the
                        // remaining credentials must keep working
                        dir.skipped += 1;
                        tracing::error!(offset = r.offset, error = %e, "undecodable access record skipped");
                    }
                }
                *next = r.offset + 1;
            }
        }
    }

    fn read_dir(&self) -> std::sync::RwLockReadGuard<'_, Directory> {
        self.dir
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn write_dir(&self) -> std::sync::RwLockWriteGuard<'_, Directory> {
        self.dir
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends a change and waits until this node has applied it.
    async fn record(&self, key: String, by: &Principal, change: Change) -> Result<(), AccessError> {
        let rec = pb::AccessRecord {
            time_ms: now_ms(),
            caused_by: by.id.to_string(),
            change: Some(change),
        };
        let offsets = self
            .log
            .append_to(
                ACCESS_TOPIC,
                0,
                vec![Record::new(key, rec.encode_to_vec(), rec.time_ms)],
            )
            .await?;
        self.catch_up(offsets.last().copied()).await
    }

    /// Who a bearer token is.
    pub fn authenticate_token(&self, token: &str) -> Result<Principal, Denied> {
        self.read_dir().authenticate_token(token, now_ms())
    }

    /// Who a session cookie is; `csrf` as in [`Directory::authenticate_session`].
    pub fn authenticate_session(
        &self,
        cookie: &str,
        csrf: Option<Option<&str>>,
    ) -> Result<Principal, Denied> {
        self.read_dir().authenticate_session(cookie, csrf, now_ms())
    }

    /// Whether a session is still open (push streams check it as they go).
    pub fn session_open(&self, id: &str) -> bool {
        self.read_dir().session_open(id, now_ms())
    }

    /// Whether `by` may manage credentials of `role` in `tenant` (`None`: platform-wide).
    pub fn may_manage(by: &Principal, role: Role, tenant: Option<&str>) -> Result<(), Denied> {
        by.allow(crate::Permission::AccessManage)?;
        if by.platform_wide() {
            return Ok(());
        }
        let Some(t) = tenant else {
            return Err(Denied::Forbidden(
                "only a platform admin manages platform-wide credentials".into(),
            ));
        };
        by.tenant(t)?;
        match role {
            Role::TenantAdmin | Role::Supervisor | Role::Agent | Role::Wallboard | Role::Dialer => {
                Ok(())
            }
            _ => Err(Denied::Forbidden(format!(
                "only a platform admin manages {role} credentials"
            ))),
        }
    }

    /// Issues a token.
    pub async fn issue_token(
        &self,
        by: &Principal,
        spec: TokenSpec,
    ) -> Result<IssuedToken, AccessError> {
        let role = spec
            .role
            .ok_or_else(|| AccessError::Invalid("role is required".into()))?;
        let tenant = spec.tenant.filter(|t| !t.is_empty());
        let agent = spec.agent.filter(|a| !a.is_empty());
        match (role.tenant_scoped(), &tenant) {
            (Some(true), None) => {
                return Err(AccessError::Invalid(format!(
                    "tenant is required for role {role}"
                )))
            }
            (Some(false), Some(_)) => {
                return Err(AccessError::Invalid(format!(
                    "role {role} is platform-wide: give no tenant"
                )))
            }
            _ => {}
        }
        if let Some(t) = &tenant {
            check_name("tenant", t)?;
        }
        match (role, &agent) {
            (Role::Agent, None) => {
                return Err(AccessError::Invalid(
                    "agent is required for role agent".into(),
                ))
            }
            (Role::Agent, Some(a)) => check_name("agent", a)?,
            (_, Some(_)) => {
                return Err(AccessError::Invalid(
                    "agent is only for tokens of role agent".into(),
                ))
            }
            _ => {}
        }
        if spec.label.len() > 200 {
            return Err(AccessError::Invalid(
                "label is longer than 200 bytes".into(),
            ));
        }
        Self::may_manage(by, role, tenant.as_deref())?;
        let s = secret::new_credential(secret::TOKEN_PREFIX);
        let expires_ms = spec
            .expires_in
            .map_or(0, |d| now_ms().saturating_add(d.as_millis() as i64));
        self.record(
            format!("token/{}", s.id),
            by,
            Change::TokenIssued(pb::TokenIssued {
                id: s.id.clone(),
                secret_sha256: s.sha256.to_vec(),
                role: role.as_str().into(),
                tenant: tenant.unwrap_or_default(),
                agent: agent.unwrap_or_default(),
                expires_ms,
                label: spec.label,
                session: String::new(),
            }),
        )
        .await?;
        let entry = self
            .read_dir()
            .token(&s.id)
            .cloned()
            .ok_or_else(|| AccessError::NotFound("the new token was not applied".into()))?;
        Ok(IssuedToken {
            token: s.text,
            entry,
        })
    }

    /// Revokes a token.
    pub async fn revoke_token(&self, by: &Principal, id: &str) -> Result<(), AccessError> {
        let entry = self
            .read_dir()
            .token(id)
            .cloned()
            .ok_or_else(|| AccessError::NotFound(format!("no token {id}")))?;
        Self::may_manage(by, entry.role, entry.tenant.as_deref())?;
        self.record(
            format!("token/{id}"),
            by,
            Change::TokenRevoked(pb::TokenRevoked { id: id.into() }),
        )
        .await
    }

    /// Tokens `by` may see (of `tenant`, or all it may see).
    pub fn tokens(&self, by: &Principal, tenant: Option<&str>) -> Result<Vec<TokenEntry>, Denied> {
        by.allow(crate::Permission::AccessManage)?;
        let scope = match (&by.tenant, tenant) {
            (Some(own), Some(t)) => {
                by.tenant(t)?;
                Some(own.to_string())
            }
            (Some(own), None) => Some(own.to_string()),
            (None, t) => t.map(str::to_owned),
        };
        Ok(self.read_dir().tokens(scope.as_deref()))
    }

    /// Adds a user, or with `replace` saves a new role or password of an existing one.
    pub async fn save_user(
        &self,
        by: &Principal,
        tenant: &str,
        name: &str,
        role: Role,
        agent: Option<&str>,
        password: &str,
    ) -> Result<UserEntry, AccessError> {
        check_name("tenant", tenant)?;
        check_name("name", name)?;
        if !role.for_users() {
            return Err(AccessError::Invalid(format!(
                "role {role} is for tokens, not users (users: tenant_admin, supervisor, agent, wallboard)"
            )));
        }
        let agent = match role {
            Role::Agent => Some(agent.filter(|a| !a.is_empty()).unwrap_or(name)),
            _ => None,
        };
        if let Some(a) = agent {
            check_name("agent", a)?;
        }
        check_password(password)?;
        Self::may_manage(by, role, Some(tenant))?;
        if self.read_dir().user(tenant, name).is_some() {
            return Err(AccessError::Exists(format!(
                "user {name} of tenant {tenant} exists"
            )));
        }
        let phc = self.hash(password).await?;
        self.write_user(by, tenant, name, role, agent, phc).await
    }

    /// Sets a user's password.
    pub async fn set_password(
        &self,
        by: &Principal,
        tenant: &str,
        name: &str,
        password: &str,
    ) -> Result<UserEntry, AccessError> {
        let user =
            self.read_dir().user(tenant, name).cloned().ok_or_else(|| {
                AccessError::NotFound(format!("no user {name} of tenant {tenant}"))
            })?;
        check_password(password)?;
        // a user changes its own password; otherwise it is an admin's business
        let own = by.id.as_ref() == format!("user:{tenant}/{name}");
        if !own {
            Self::may_manage(by, user.role, Some(tenant))?;
        }
        let phc = self.hash(password).await?;
        self.write_user(by, tenant, name, user.role, user.agent.as_deref(), phc)
            .await
    }

    async fn write_user(
        &self,
        by: &Principal,
        tenant: &str,
        name: &str,
        role: Role,
        agent: Option<&str>,
        phc: String,
    ) -> Result<UserEntry, AccessError> {
        self.record(
            format!("user/{tenant}/{name}"),
            by,
            Change::UserSaved(pb::UserSaved {
                tenant: tenant.into(),
                name: name.into(),
                role: role.as_str().into(),
                agent: agent.unwrap_or_default().into(),
                password_phc: phc,
            }),
        )
        .await?;
        self.read_dir()
            .user(tenant, name)
            .cloned()
            .ok_or_else(|| AccessError::NotFound("the saved user was not applied".into()))
    }

    /// Removes a user (and ends its sessions).
    pub async fn remove_user(
        &self,
        by: &Principal,
        tenant: &str,
        name: &str,
    ) -> Result<(), AccessError> {
        let user =
            self.read_dir().user(tenant, name).cloned().ok_or_else(|| {
                AccessError::NotFound(format!("no user {name} of tenant {tenant}"))
            })?;
        Self::may_manage(by, user.role, Some(tenant))?;
        self.record(
            format!("user/{tenant}/{name}"),
            by,
            Change::UserRemoved(pb::UserRemoved {
                tenant: tenant.into(),
                name: name.into(),
            }),
        )
        .await
    }

    /// Users `by` may see.
    pub fn users(&self, by: &Principal, tenant: Option<&str>) -> Result<Vec<UserEntry>, Denied> {
        by.allow(crate::Permission::AccessManage)?;
        let scope = match (&by.tenant, tenant) {
            (Some(own), t) => {
                if let Some(t) = t {
                    by.tenant(t)?;
                }
                Some(own.to_string())
            }
            (None, t) => t.map(str::to_owned),
        };
        Ok(self.read_dir().users(scope.as_deref()))
    }

    /// A password hash, off the async threads, at most `hashing_slots` at once.
    async fn hash(&self, password: &str) -> Result<String, AccessError> {
        let _slot = self.hashing_slot().await?;
        let p = password.to_owned();
        tokio::task::spawn_blocking(move || secret::hash_password(&p))
            .await
            .map_err(|e| AccessError::Busy(format!("password hashing failed: {e}")))?
            .map_err(AccessError::Invalid)
    }

    async fn hashing_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, AccessError> {
        use std::sync::atomic::Ordering;
        let waiting = self.waiting.fetch_add(1, Ordering::AcqRel);
        let permit = if waiting >= self.options.hashing_queue {
            None
        } else {
            self.hashing.clone().acquire_owned().await.ok()
        };
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        permit.ok_or_else(|| AccessError::Busy("too many sign-ins at once: try again".into()))
    }

    /// Refuses a source or user with too many recent failures.
    fn check_lockout(&self, keys: &[String]) -> Result<(), AccessError> {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        f.by_key
            .retain(|_, (_, since)| now.duration_since(*since) < self.options.lockout);
        if keys.iter().any(|k| {
            f.by_key
                .get(k)
                .is_some_and(|(n, _)| *n >= self.options.max_failures)
        }) {
            return Err(AccessError::Busy(format!(
                "too many failed sign-ins: try again in {} s",
                self.options.lockout.as_secs()
            )));
        }
        Ok(())
    }

    fn count_failure(&self, keys: &[String]) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for k in keys {
            let e = f.by_key.entry(k.clone()).or_insert((0, now));
            e.0 += 1;
            e.1 = now;
        }
        // bounded under a flood of made-up names: the oldest half goes
        if f.by_key.len() > 100_000 {
            let mut v: Vec<_> = f.by_key.iter().map(|(k, (_, t))| (*t, k.clone())).collect();
            v.sort();
            for (_, k) in v.into_iter().take(50_000) {
                f.by_key.remove(&k);
            }
        }
    }

    /// Signs a user in with its password (from `source`, the client's address): a new
    /// session, and for an agent a token of its own.
    pub async fn sign_in(
        &self,
        tenant: &str,
        name: &str,
        password: &str,
        source: &str,
    ) -> Result<SignedIn, AccessError> {
        let bad = || Denied::Unauthenticated("wrong tenant, user name or password".into());
        if check_name("tenant", tenant).is_err()
            || check_name("name", name).is_err()
            || password.len() > secret::MAX_PASSWORD
        {
            return Err(bad().into());
        }
        let keys = [format!("ip/{source}"), format!("user/{tenant}/{name}")];
        self.check_lockout(&keys)?;
        let user = self.read_dir().user(tenant, name).cloned();
        let ok = {
            let _slot = self.hashing_slot().await?;
            // an unknown user costs the same as a known one: names cannot be probed by time
            let phc = user.as_ref().map_or_else(dummy_phc, |u| u.phc.clone());
            let p = password.to_owned();
            tokio::task::spawn_blocking(move || secret::verify_password(&p, &phc))
                .await
                .unwrap_or(false)
        };
        let Some(user) = user.filter(|_| ok) else {
            self.count_failure(&keys);
            tracing::info!(%tenant, user = %name, source, "sign-in refused");
            return Err(bad().into());
        };
        let by = Principal {
            id: Arc::from(format!("user:{tenant}/{name}")),
            role: user.role,
            tenant: Some(Arc::from(tenant)),
            agent: user.agent.as_deref().map(Arc::from),
            session: None,
        };
        let open = self.read_dir().open_sessions(tenant, name, now_ms());
        let keep = self.options.max_sessions_per_user.max(1) - 1;
        for (id, _) in open.iter().take(open.len().saturating_sub(keep)) {
            self.record(
                format!("session/{id}"),
                &by,
                Change::SessionClosed(pb::SessionClosed { id: id.clone() }),
            )
            .await?;
            tracing::info!(%tenant, user = %name, session = %id,
                "signed in with {} sessions open already: the oldest one is ended", open.len());
        }
        let s = secret::new_credential(secret::SESSION_PREFIX);
        let csrf = secret::new_csrf();
        let expires_ms = now_ms().saturating_add(self.options.session_ttl.as_millis() as i64);
        self.record(
            format!("session/{}", s.id),
            &by,
            Change::SessionOpened(pb::SessionOpened {
                id: s.id.clone(),
                secret_sha256: s.sha256.to_vec(),
                csrf_sha256: secret::sha256(&csrf).to_vec(),
                tenant: tenant.into(),
                user: name.into(),
                expires_ms,
            }),
        )
        .await?;
        let agent_token = match (&user.role, &user.agent) {
            (Role::Agent, Some(agent)) => {
                let t = secret::new_credential(secret::TOKEN_PREFIX);
                self.record(
                    format!("token/{}", t.id),
                    &by,
                    Change::TokenIssued(pb::TokenIssued {
                        id: t.id.clone(),
                        secret_sha256: t.sha256.to_vec(),
                        role: Role::Agent.as_str().into(),
                        tenant: tenant.into(),
                        agent: agent.clone(),
                        expires_ms,
                        label: "signed in".into(),
                        session: s.id.clone(),
                    }),
                )
                .await?;
                Some(t.text)
            }
            _ => None,
        };
        tracing::info!(%tenant, user = %name, source, "signed in");
        Ok(SignedIn {
            cookie: s.text,
            csrf,
            principal: Principal {
                session: Some(Arc::from(s.id.as_str())),
                ..by
            },
            agent_token,
            expires_ms,
        })
    }

    /// Ends a session (and the token issued at it).
    pub async fn sign_out(&self, by: &Principal) -> Result<(), AccessError> {
        let Some(id) = by.session.clone() else {
            return Err(AccessError::Invalid("not signed in with a session".into()));
        };
        self.record(
            format!("session/{id}"),
            by,
            Change::SessionClosed(pb::SessionClosed { id: id.to_string() }),
        )
        .await
    }

    /// Makes a platform admin token and writes it to `path` (mode 0600) unless a live one
    /// exists; returns whether it made one.
    pub async fn ensure_admin_token(&self, path: &std::path::Path) -> Result<bool, AccessError> {
        if self.read_dir().has_platform_admin_token(now_ms()) && path.exists() {
            return Ok(false);
        }
        let issued = self
            .issue_token(
                &Principal::system(),
                TokenSpec {
                    role: Some(Role::PlatformAdmin),
                    label: format!("first start: {}", path.display()),
                    ..TokenSpec::default()
                },
            )
            .await?;
        write_secret_file(path, &format!("{}\n", issued.token))
            .map_err(|e| AccessError::Invalid(format!("cannot write {}: {e}", path.display())))?;
        Ok(true)
    }
}

/// Writes a file only its owner can read (0600), replacing it atomically.
pub fn write_secret_file(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    o.mode(0o600);
    let mut f = o.open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A PHC string no password matches, verified for unknown users so they take as long.
fn dummy_phc() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| {
            secret::hash_password(&secret::hex(&secret::random_bytes::<16>())).unwrap_or_default()
        })
        .clone()
}

/// Follows the access topic while the `Access` lives.
async fn follow(access: std::sync::Weak<Access>) {
    loop {
        let Some(a) = access.upgrade() else { return };
        let next = *a.next.lock().await;
        let waited = a
            .log
            .wait_beyond(ACCESS_TOPIC, 0, next, Duration::from_secs(1))
            .await;
        let result = match waited {
            Ok(end) if end > next => a.catch_up(None).await,
            Ok(_) => Ok(()),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "following the access topic failed; retrying");
            drop(a);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callgrid_eventlog::{SqliteLog, SqliteLogOptions};

    #[tokio::test]
    async fn a_sign_in_beyond_the_users_open_sessions_ends_the_oldest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log: Arc<dyn EventLog> = Arc::new(
            SqliteLog::open_async(
                dir.path().join("events.sqlite"),
                SqliteLogOptions::default(),
            )
            .await
            .expect("log"),
        );
        let options = AccessOptions {
            max_sessions_per_user: 3,
            ..AccessOptions::default()
        };
        let access = Access::open(log, options).await.expect("access");
        let password = "a long enough password";
        access
            .save_user(
                &Principal::system(),
                "acme",
                "sue",
                Role::Supervisor,
                None,
                password,
            )
            .await
            .expect("user");
        let mut cookies = Vec::new();
        for _ in 0..5 {
            let s = access
                .sign_in("acme", "sue", password, "192.0.2.1")
                .await
                .expect("sign-in");
            cookies.push(s.cookie);
        }
        let now = now_ms();
        assert_eq!(access.read_dir().open_sessions("acme", "sue", now).len(), 3);
        // the two oldest ended, the three newest work
        for (i, cookie) in cookies.iter().enumerate() {
            let r = access.authenticate_session(cookie, None);
            assert_eq!(r.is_ok(), i >= 2, "session {i}: {r:?}");
        }
    }
}
