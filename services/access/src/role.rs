//! Roles, what each may do, and who a caller is (`Principal`).

use std::fmt;
use std::sync::Arc;

/// What a credential is for (DESIGN.md "Access"; docs/SECURITY.md has the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Everything, every tenant: operators of the platform.
    PlatformAdmin,
    /// Everything of one tenant: its configuration, users and tokens, agents, reads.
    TenantAdmin,
    /// A tenant's live views, history, and agents' states.
    Supervisor,
    /// One agent of a tenant: its own state, calls and history only.
    Agent,
    /// A SIP edge: call control.
    Edge,
    /// The predictive dialer: reads of queues and agents (its own API comes with issue 19).
    Dialer,
    /// A wall display: a tenant's live views, read only.
    Wallboard,
    /// A metrics scraper (Prometheus): `GET /metrics` only.
    Metrics,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 8] = [
        Role::PlatformAdmin,
        Role::TenantAdmin,
        Role::Supervisor,
        Role::Agent,
        Role::Edge,
        Role::Dialer,
        Role::Wallboard,
        Role::Metrics,
    ];

    /// The name used in tokens, the CLI and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform_admin",
            Role::TenantAdmin => "tenant_admin",
            Role::Supervisor => "supervisor",
            Role::Agent => "agent",
            Role::Edge => "edge",
            Role::Dialer => "dialer",
            Role::Wallboard => "wallboard",
            Role::Metrics => "metrics",
        }
    }

    /// A role by name (`platform_admin` or `platform-admin`).
    pub fn parse(s: &str) -> Option<Role> {
        let s = s.trim().replace('-', "_").to_ascii_lowercase();
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether a credential of this role must name a tenant (`Some(true)`), must not
    /// (`Some(false)`), or may (`None`: an edge or dialer serves one tenant or all).
    pub fn tenant_scoped(self) -> Option<bool> {
        match self {
            Role::PlatformAdmin | Role::Metrics => Some(false),
            Role::TenantAdmin | Role::Supervisor | Role::Agent | Role::Wallboard => Some(true),
            Role::Edge | Role::Dialer => None,
        }
    }

    /// Whether users (people signing in with a password) may have this role; services use
    /// tokens.
    pub fn for_users(self) -> bool {
        matches!(
            self,
            Role::TenantAdmin | Role::Supervisor | Role::Agent | Role::Wallboard
        )
    }

    /// Whether this role may do `p` at all (the tenant and agent scope are checked apart,
    /// by [`Principal::check`]).
    pub fn allows(self, p: Permission) -> bool {
        use Permission as P;
        if p == P::WhoAmI {
            return true;
        }
        match self {
            Role::PlatformAdmin => true,
            Role::TenantAdmin => !matches!(
                p,
                P::CallControl | P::EdgeConfig | P::RouterStats | P::ProjectorStatus | P::Metrics
            ),
            Role::Supervisor => matches!(
                p,
                P::AgentControl
                    | P::AgentRead
                    | P::QueueRead
                    | P::CallRead
                    | P::LiveRead
                    | P::HistoryRead
                    | P::AgentHistoryRead
                    | P::TenantRead
            ),
            Role::Agent => matches!(
                p,
                P::AgentControl | P::CallOut | P::AgentRead | P::AgentHistoryRead | P::TenantRead
            ),
            Role::Edge => matches!(p, P::CallControl | P::EdgeConfig | P::TenantRead),
            Role::Dialer => matches!(p, P::CallOut | P::AgentRead | P::QueueRead | P::TenantRead),
            Role::Wallboard => {
                matches!(p, P::AgentRead | P::QueueRead | P::LiveRead | P::TenantRead)
            }
            Role::Metrics => matches!(p, P::Metrics),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an API call does, as access control sees it. Every gRPC method and HTTP route maps
/// to one (`policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Log an agent in or out, change its state, transfer its call.
    AgentControl,
    /// Place a call out in an agent's name (click-to-call, C1): it costs money, so an agent
    /// places its own calls only, and supervisors and wallboards none.
    CallOut,
    /// Read agents' states.
    AgentRead,
    /// Read queues.
    QueueRead,
    /// Read calls in progress.
    CallRead,
    /// The SIP edge's call-control streams.
    CallControl,
    /// The tenants' configurations as the SIP edge needs them (secrets sealed, but an agent's
    /// HA1 is as good as its password at this realm: the edge's and the platform's only).
    EdgeConfig,
    /// Load or replace a tenant's configuration.
    TenantLoad,
    /// List tenants (a tenant-scoped caller sees its own).
    TenantRead,
    /// The router's counters.
    RouterStats,
    /// Manage tokens and users.
    AccessManage,
    /// Live views: snapshot and push stream.
    LiveRead,
    /// History: call records, offers, intervals.
    HistoryRead,
    /// One agent's state history (an agent: its own).
    AgentHistoryRead,
    /// The projector's progress.
    ProjectorStatus,
    /// `GET /metrics`.
    Metrics,
    /// gRPC server reflection.
    Reflection,
    /// Say who the caller is (any valid credential).
    WhoAmI,
}

/// Why a caller is not let through.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No credentials, or credentials that are wrong, expired or revoked (HTTP 401,
    /// `UNAUTHENTICATED`).
    #[error("{0}")]
    Unauthenticated(String),
    /// Valid credentials without the right (HTTP 403, `PERMISSION_DENIED`).
    #[error("{0}")]
    Forbidden(String),
}

/// Who is calling: what a valid credential says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// What events caused by this caller record: `token:ID` or `user:TENANT/NAME`.
    pub id: Arc<str>,
    /// Its role.
    pub role: Role,
    /// Its tenant; `None`: every tenant.
    pub tenant: Option<Arc<str>>,
    /// The agent it is (agent role).
    pub agent: Option<Arc<str>>,
    /// The browser session it signed in with, if any.
    pub session: Option<Arc<str>>,
}

impl Principal {
    /// The platform itself (events not caused through an API; tests).
    pub fn system() -> Principal {
        Principal {
            id: Arc::from("system"),
            role: Role::PlatformAdmin,
            tenant: None,
            agent: None,
            session: None,
        }
    }

    /// Whether it may do `p` on `tenant` (and, for agent actions, on `agent`): its role
    /// allows `p`, its tenant scope covers `tenant`, and an agent acts only on itself.
    pub fn check(&self, p: Permission, tenant: &str, agent: Option<&str>) -> Result<(), Denied> {
        self.allow(p)?;
        self.tenant(tenant)?;
        if self.role == Role::Agent {
            match (agent, self.agent.as_deref()) {
                (Some(a), Some(me)) if a == me => {}
                (None, _)
                    if !matches!(
                        p,
                        Permission::AgentControl | Permission::AgentRead | Permission::CallOut
                    ) => {}
                _ => {
                    return Err(Denied::Forbidden(format!(
                        "an agent acts only on itself ({})",
                        self.agent.as_deref().unwrap_or("?")
                    )))
                }
            }
        }
        Ok(())
    }

    /// Whether its role allows `p` at all.
    pub fn allow(&self, p: Permission) -> Result<(), Denied> {
        if self.role.allows(p) {
            Ok(())
        } else {
            Err(Denied::Forbidden(format!(
                "role {} may not do this ({p:?})",
                self.role
            )))
        }
    }

    /// Whether its scope covers `tenant`.
    pub fn tenant(&self, tenant: &str) -> Result<(), Denied> {
        match &self.tenant {
            None => Ok(()),
            Some(t) if **t == *tenant => Ok(()),
            Some(t) => Err(Denied::Forbidden(format!(
                "credentials of tenant {t} do not cover tenant {tenant}"
            ))),
        }
    }

    /// Whether it sees every tenant.
    pub fn platform_wide(&self) -> bool {
        self.tenant.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(role: Role, tenant: Option<&str>, agent: Option<&str>) -> Principal {
        Principal {
            id: Arc::from("token:x"),
            role,
            tenant: tenant.map(Arc::from),
            agent: agent.map(Arc::from),
            session: None,
        }
    }

    #[test]
    fn roles_parse_by_their_names() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("Platform-Admin"), Some(Role::PlatformAdmin));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn scope_and_self_are_checked() {
        let sup = p(Role::Supervisor, Some("acme"), None);
        assert!(sup
            .check(Permission::AgentControl, "acme", Some("ann"))
            .is_ok());
        assert!(matches!(
            sup.check(Permission::AgentControl, "other", Some("ann")),
            Err(Denied::Forbidden(_))
        ));
        assert!(sup.check(Permission::TenantLoad, "acme", None).is_err());
        let ann = p(Role::Agent, Some("acme"), Some("ann"));
        assert!(ann
            .check(Permission::AgentControl, "acme", Some("ann"))
            .is_ok());
        assert!(ann
            .check(Permission::AgentControl, "acme", Some("bob"))
            .is_err());
        assert!(ann.check(Permission::AgentControl, "acme", None).is_err());
        assert!(ann.check(Permission::LiveRead, "acme", None).is_err());
        let admin = p(Role::PlatformAdmin, None, None);
        assert!(admin.check(Permission::TenantLoad, "any", None).is_ok());
        let wall = p(Role::Wallboard, Some("acme"), None);
        assert!(wall.check(Permission::LiveRead, "acme", None).is_ok());
        assert!(wall
            .check(Permission::AgentControl, "acme", Some("ann"))
            .is_err());
        assert!(wall.check(Permission::HistoryRead, "acme", None).is_err());
        let edge = p(Role::Edge, None, None);
        assert!(edge.check(Permission::CallControl, "acme", None).is_ok());
        assert!(edge
            .check(Permission::AgentControl, "acme", Some("ann"))
            .is_err());
    }
}
