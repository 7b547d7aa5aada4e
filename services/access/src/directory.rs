//! The credentials as the access topic's records fold them: tokens, users and sessions in
//! memory, no IO. `Access` (store.rs) feeds it from the log.

use std::collections::HashMap;
use std::sync::Arc;

use callgrid_proto::events::v1 as pb;
use pb::access_record::Change;

use crate::role::{Denied, Principal, Role};
use crate::secret;

/// A token as the directory keeps it.
#[derive(Clone, Debug)]
pub struct TokenEntry {
    /// Its id.
    pub id: String,
    sha256: [u8; 32],
    /// Its role.
    pub role: Role,
    /// Its tenant (`None`: every tenant).
    pub tenant: Option<String>,
    /// The agent it acts as.
    pub agent: Option<String>,
    /// When it expires (ms since the epoch), if ever.
    pub expires_ms: Option<i64>,
    /// The operators' note.
    pub label: String,
    /// The sign-in it belongs to.
    pub session: Option<String>,
    /// When it was issued.
    pub created_ms: i64,
    /// Who issued it.
    pub created_by: String,
}

/// A user as the directory keeps it.
#[derive(Clone, Debug)]
pub struct UserEntry {
    /// Tenant.
    pub tenant: String,
    /// Name (sign-in).
    pub name: String,
    /// Role.
    pub role: Role,
    /// The agent an agent user is.
    pub agent: Option<String>,
    pub(crate) phc: String,
}

/// A browser session.
#[derive(Clone, Debug)]
pub struct SessionEntry {
    sha256: [u8; 32],
    csrf_sha256: [u8; 32],
    /// Tenant of the user.
    pub tenant: String,
    /// The user.
    pub user: String,
    /// When it ends (ms since the epoch).
    pub expires_ms: i64,
}

/// The credentials.
#[derive(Default, Debug)]
pub struct Directory {
    tokens: HashMap<String, TokenEntry>,
    users: HashMap<(String, String), UserEntry>,
    sessions: HashMap<String, SessionEntry>,
    /// The ids of each user's sessions (tenant, user).
    user_sessions: HashMap<(String, String), Vec<String>>,
    /// Records that could not be applied (unknown role...), logged when met.
    pub skipped: u64,
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn hash32(b: &[u8]) -> Option<[u8; 32]> {
    b.try_into().ok()
}

impl Directory {
    /// Applies one record of the access topic.
    pub fn apply(&mut self, r: &pb::AccessRecord) {
        let Some(change) = &r.change else {
            self.skipped += 1;
            return;
        };
        match change {
            Change::TokenIssued(t) => {
                let (Some(role), Some(sha256)) = (Role::parse(&t.role), hash32(&t.secret_sha256))
                else {
                    self.skip("token with an unknown role or a bad hash", &t.id);
                    return;
                };
                self.tokens.insert(
                    t.id.clone(),
                    TokenEntry {
                        id: t.id.clone(),
                        sha256,
                        role,
                        tenant: opt(&t.tenant),
                        agent: opt(&t.agent),
                        expires_ms: (t.expires_ms > 0).then_some(t.expires_ms),
                        label: t.label.clone(),
                        session: opt(&t.session),
                        created_ms: r.time_ms,
                        created_by: r.caused_by.clone(),
                    },
                );
            }
            Change::TokenRevoked(t) => {
                self.tokens.remove(&t.id);
            }
            Change::UserSaved(u) => {
                let Some(role) = Role::parse(&u.role) else {
                    self.skip("user with an unknown role", &u.name);
                    return;
                };
                self.users.insert(
                    (u.tenant.clone(), u.name.clone()),
                    UserEntry {
                        tenant: u.tenant.clone(),
                        name: u.name.clone(),
                        role,
                        agent: opt(&u.agent),
                        phc: u.password_phc.clone(),
                    },
                );
            }
            Change::UserRemoved(u) => {
                let key = (u.tenant.clone(), u.name.clone());
                self.users.remove(&key);
                // a removed user is signed out everywhere
                self.end_sessions(|s| s.tenant == key.0 && s.user == key.1);
            }
            Change::SessionOpened(s) => {
                let (Some(sha256), Some(csrf_sha256)) =
                    (hash32(&s.secret_sha256), hash32(&s.csrf_sha256))
                else {
                    self.skip("session with a bad hash", &s.id);
                    return;
                };
                let user = (s.tenant.clone(), s.user.clone());
                // the user's sessions that had expired when this one opened are dropped, so
                // that sign-ins never closed by a sign-out do not pile up (the same on every
                // node: by the record's time, not the clock's)
                let expired: Vec<String> = self
                    .user_sessions
                    .get(&user)
                    .into_iter()
                    .flatten()
                    .filter(|id| {
                        self.sessions
                            .get(*id)
                            .is_none_or(|e| e.expires_ms <= r.time_ms)
                    })
                    .cloned()
                    .collect();
                for id in expired {
                    self.remove_session(&id);
                }
                let ids = self.user_sessions.entry(user).or_default();
                if !ids.contains(&s.id) {
                    ids.push(s.id.clone());
                }
                self.sessions.insert(
                    s.id.clone(),
                    SessionEntry {
                        sha256,
                        csrf_sha256,
                        tenant: s.tenant.clone(),
                        user: s.user.clone(),
                        expires_ms: s.expires_ms,
                    },
                );
            }
            Change::SessionClosed(s) => {
                self.remove_session(&s.id);
            }
        }
    }

    fn skip(&mut self, what: &str, id: &str) {
        self.skipped += 1;
        tracing::warn!(id, "access record skipped: {what}");
    }

    /// Ends the sessions `f` picks, and the tokens issued at them.
    fn end_sessions(&mut self, f: impl Fn(&SessionEntry) -> bool) {
        let ended: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| f(s))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ended {
            self.remove_session(&id);
        }
    }

    /// Ends a session, and the tokens issued at it.
    fn remove_session(&mut self, id: &str) {
        if let Some(s) = self.sessions.remove(id) {
            let user = (s.tenant, s.user);
            if let Some(ids) = self.user_sessions.get_mut(&user) {
                ids.retain(|i| i != id);
                if ids.is_empty() {
                    self.user_sessions.remove(&user);
                }
            }
        }
        self.tokens.retain(|_, t| t.session.as_deref() != Some(id));
    }

    /// A user's sessions open at `now_ms`, the one ending first first: (id, expires_ms).
    pub fn open_sessions(&self, tenant: &str, user: &str, now_ms: i64) -> Vec<(String, i64)> {
        let mut v: Vec<(String, i64)> = self
            .user_sessions
            .get(&(tenant.to_owned(), user.to_owned()))
            .into_iter()
            .flatten()
            .filter_map(|id| {
                let s = self.sessions.get(id)?;
                (s.expires_ms > now_ms).then(|| (id.clone(), s.expires_ms))
            })
            .collect();
        v.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        v
    }

    /// Who a bearer token is, at `now`.
    pub fn authenticate_token(&self, text: &str, now_ms: i64) -> Result<Principal, Denied> {
        let bad = || Denied::Unauthenticated("invalid or revoked token".into());
        let (id, secret) = secret::split(text, secret::TOKEN_PREFIX).ok_or_else(bad)?;
        let t = self.tokens.get(id).ok_or_else(bad)?;
        if !secret::same(&secret::sha256(secret), &t.sha256) {
            return Err(bad());
        }
        if t.expires_ms.is_some_and(|e| e <= now_ms) {
            return Err(Denied::Unauthenticated("token expired".into()));
        }
        Ok(Principal {
            id: Arc::from(format!("token:{id}")),
            role: t.role,
            tenant: t.tenant.as_deref().map(Arc::from),
            agent: t.agent.as_deref().map(Arc::from),
            session: t.session.as_deref().map(Arc::from),
        })
    }

    /// Who a session cookie is, at `now`; with `csrf`, the request's CSRF token must be the
    /// session's (requests that change something).
    pub fn authenticate_session(
        &self,
        cookie: &str,
        csrf: Option<Option<&str>>,
        now_ms: i64,
    ) -> Result<Principal, Denied> {
        let bad = || Denied::Unauthenticated("invalid or ended session".into());
        let (id, secret) = secret::split(cookie, secret::SESSION_PREFIX).ok_or_else(bad)?;
        let s = self.sessions.get(id).ok_or_else(bad)?;
        if !secret::same(&secret::sha256(secret), &s.sha256) {
            return Err(bad());
        }
        if s.expires_ms <= now_ms {
            return Err(Denied::Unauthenticated("session expired".into()));
        }
        if let Some(csrf) = csrf {
            let ok = csrf.is_some_and(|c| secret::same(&secret::sha256(c), &s.csrf_sha256));
            if !ok {
                return Err(Denied::Forbidden(
                    "missing or wrong X-CSRF-Token for this session".into(),
                ));
            }
        }
        let u = self
            .users
            .get(&(s.tenant.clone(), s.user.clone()))
            .ok_or_else(bad)?;
        Ok(Principal {
            id: Arc::from(format!("user:{}/{}", u.tenant, u.name)),
            role: u.role,
            tenant: Some(Arc::from(u.tenant.as_str())),
            agent: u.agent.as_deref().map(Arc::from),
            session: Some(Arc::from(id)),
        })
    }

    /// A token by id.
    pub fn token(&self, id: &str) -> Option<&TokenEntry> {
        self.tokens.get(id)
    }

    /// Tokens (of one tenant, or all), sorted by id.
    pub fn tokens(&self, tenant: Option<&str>) -> Vec<TokenEntry> {
        let mut v: Vec<_> = self
            .tokens
            .values()
            .filter(|t| tenant.is_none() || t.tenant.as_deref() == tenant)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// A user.
    pub fn user(&self, tenant: &str, name: &str) -> Option<&UserEntry> {
        self.users.get(&(tenant.to_owned(), name.to_owned()))
    }

    /// Users (of one tenant, or all), sorted.
    pub fn users(&self, tenant: Option<&str>) -> Vec<UserEntry> {
        let mut v: Vec<_> = self
            .users
            .values()
            .filter(|u| tenant.is_none_or(|t| u.tenant == t))
            .cloned()
            .collect();
        v.sort_by(|a, b| (&a.tenant, &a.name).cmp(&(&b.tenant, &b.name)));
        v
    }

    /// Whether a live platform admin token exists (`callgrid serve` makes one otherwise).
    pub fn has_platform_admin_token(&self, now_ms: i64) -> bool {
        self.tokens
            .values()
            .any(|t| t.role == Role::PlatformAdmin && t.expires_ms.is_none_or(|e| e > now_ms))
    }

    /// Whether a session is open (not closed, not expired).
    pub fn session_open(&self, id: &str, now_ms: i64) -> bool {
        self.sessions.get(id).is_some_and(|s| s.expires_ms > now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(change: Change) -> pb::AccessRecord {
        pb::AccessRecord {
            time_ms: 1,
            caused_by: "system".into(),
            change: Some(change),
        }
    }

    fn issue(d: &mut Directory, role: Role, tenant: &str, expires_ms: i64) -> String {
        let s = secret::new_credential(secret::TOKEN_PREFIX);
        d.apply(&record(Change::TokenIssued(pb::TokenIssued {
            id: s.id.clone(),
            secret_sha256: s.sha256.to_vec(),
            role: role.as_str().into(),
            tenant: tenant.into(),
            expires_ms,
            ..Default::default()
        })));
        s.text
    }

    #[test]
    fn tokens_authenticate_until_revoked_or_expired() {
        let mut d = Directory::default();
        let t = issue(&mut d, Role::Supervisor, "acme", 0);
        let p = d.authenticate_token(&t, 10).expect("valid");
        assert_eq!(p.role, Role::Supervisor);
        assert_eq!(p.tenant.as_deref(), Some("acme"));
        assert!(p.id.starts_with("token:"));
        // a wrong secret with the right id
        let (id, _) = secret::split(&t, "cg").expect("shape");
        let forged = format!("cg_{id}_{}", "0".repeat(64));
        assert!(matches!(
            d.authenticate_token(&forged, 10),
            Err(Denied::Unauthenticated(_))
        ));
        d.apply(&record(Change::TokenRevoked(pb::TokenRevoked {
            id: id.into(),
        })));
        assert!(d.authenticate_token(&t, 10).is_err());
        let short = issue(&mut d, Role::PlatformAdmin, "", 100);
        assert!(d.authenticate_token(&short, 99).is_ok());
        assert!(d.authenticate_token(&short, 100).is_err());
        assert!(d.has_platform_admin_token(99));
        assert!(!d.has_platform_admin_token(100));
    }

    #[test]
    fn sessions_need_their_csrf_token_to_change_things_and_end_with_their_tokens() {
        let mut d = Directory::default();
        d.apply(&record(Change::UserSaved(pb::UserSaved {
            tenant: "acme".into(),
            name: "ann".into(),
            role: "agent".into(),
            agent: "ann".into(),
            password_phc: String::new(),
        })));
        let (s, csrf) = open_session(&mut d, 1, 1000);
        let t = secret::new_credential(secret::TOKEN_PREFIX);
        d.apply(&record(Change::TokenIssued(pb::TokenIssued {
            id: t.id.clone(),
            secret_sha256: t.sha256.to_vec(),
            role: "agent".into(),
            tenant: "acme".into(),
            agent: "ann".into(),
            session: s.id.clone(),
            ..Default::default()
        })));
        let p = d.authenticate_session(&s.text, None, 10).expect("valid");
        assert_eq!(&*p.id, "user:acme/ann");
        assert_eq!(p.agent.as_deref(), Some("ann"));
        assert!(d
            .authenticate_session(&s.text, Some(Some(&csrf)), 10)
            .is_ok());
        assert!(matches!(
            d.authenticate_session(&s.text, Some(Some("nope")), 10),
            Err(Denied::Forbidden(_))
        ));
        assert!(d.authenticate_session(&s.text, Some(None), 10).is_err());
        assert!(d.authenticate_session(&s.text, None, 1000).is_err());
        assert!(d.authenticate_token(&t.text, 10).is_ok());
        d.apply(&record(Change::SessionClosed(pb::SessionClosed {
            id: s.id.clone(),
        })));
        assert!(d.authenticate_session(&s.text, None, 10).is_err());
        assert!(d.authenticate_token(&t.text, 10).is_err());
    }

    /// Opens a session of acme/ann at `time_ms` ending at `expires_ms`: its credential (the
    /// cookie is its text) and CSRF token.
    fn open_session(
        d: &mut Directory,
        time_ms: i64,
        expires_ms: i64,
    ) -> (secret::NewSecret, String) {
        let s = secret::new_credential(secret::SESSION_PREFIX);
        let csrf = secret::new_csrf();
        d.apply(&pb::AccessRecord {
            time_ms,
            caused_by: "user:acme/ann".into(),
            change: Some(Change::SessionOpened(pb::SessionOpened {
                id: s.id.clone(),
                secret_sha256: s.sha256.to_vec(),
                csrf_sha256: secret::sha256(&csrf).to_vec(),
                tenant: "acme".into(),
                user: "ann".into(),
                expires_ms,
            })),
        });
        (s, csrf)
    }

    #[test]
    fn a_users_expired_sessions_are_dropped_when_it_opens_another() {
        let mut d = Directory::default();
        d.apply(&record(Change::UserSaved(pb::UserSaved {
            tenant: "acme".into(),
            name: "ann".into(),
            role: "supervisor".into(),
            password_phc: String::new(),
            ..Default::default()
        })));
        let early = open_session(&mut d, 1, 100).0.text;
        let later = open_session(&mut d, 50, 1_000).0.text;
        assert_eq!(d.open_sessions("acme", "ann", 60).len(), 2);
        // both still known at 60: the early one ends at 100
        assert!(d.authenticate_session(&early, None, 60).is_ok());
        // a sign-in at 200 drops the session that ended at 100 (not only refuses it)
        let third = open_session(&mut d, 200, 2_000).0.text;
        assert_eq!(d.sessions.len(), 2);
        assert!(matches!(
            d.authenticate_session(&early, None, 60),
            Err(Denied::Unauthenticated(_))
        ));
        let open = d.open_sessions("acme", "ann", 200);
        assert_eq!(open.iter().map(|o| o.1).collect::<Vec<_>>(), [1_000, 2_000]);
        assert!(d.authenticate_session(&later, None, 200).is_ok());
        assert!(d.authenticate_session(&third, None, 200).is_ok());
        // closing them empties the index too
        for (id, _) in open {
            d.apply(&record(Change::SessionClosed(pb::SessionClosed { id })));
        }
        assert!(d.sessions.is_empty() && d.user_sessions.is_empty());
    }
}
