//! Counters of the edge (low cardinality: no call ids, no numbers).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Counters of one edge process.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $( $(#[$doc])* pub $name: AtomicU64, )*
            /// Calls in progress (caller legs).
            pub calls_active: AtomicI64,
        }

        /// A copy of the counters at one moment.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct MetricsSnapshot {
            $( $(#[$doc])* pub $name: u64, )*
            /// Calls in progress.
            pub calls_active: i64,
            /// Addresses banned now (after digest failures).
            pub address_bans_active: u64,
            /// Users banned now (after digest failures).
            pub user_bans_active: u64,
        }

        impl Metrics {
            /// Reads every counter.
            pub fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot {
                    $( $name: self.$name.load(Ordering::Relaxed), )*
                    calls_active: self.calls_active.load(Ordering::Relaxed),
                    address_bans_active: 0,
                    user_bans_active: 0,
                }
            }
        }

        impl MetricsSnapshot {
            /// Prometheus text exposition format.
            pub fn prometheus(&self) -> String {
                let mut s = String::new();
                $(
                    let _ = writeln!(s, "callgrid_sip_{} {}", stringify!($name), self.$name);
                )*
                let _ = writeln!(s, "callgrid_sip_calls_active {}", self.calls_active);
                let _ = writeln!(s, "callgrid_sip_address_bans_active {}", self.address_bans_active);
                let _ = writeln!(s, "callgrid_sip_user_bans_active {}", self.user_bans_active);
                s
            }
        }
    };
}

counters! {
    /// SIP messages that could not be parsed, dropped.
    malformed_messages,
    /// Requests with a method the edge does not know, answered 501.
    unknown_methods,
    /// Requests answered 405.
    methods_not_allowed,
    /// Requests refused with 483 (Max-Forwards exhausted).
    too_many_hops,
    /// In-dialog requests for no known dialog, answered 481.
    no_such_dialog,
    /// OPTIONS answered.
    options_answered,
    /// INVITEs from trunks accepted for routing.
    calls_arrived,
    /// Calls refused: unknown number.
    calls_unknown_number,
    /// Calls refused: not from a known trunk and not authenticated.
    calls_forbidden,
    /// Calls refused: the trunk's concurrent-call limit.
    calls_over_trunk_limit,
    /// Calls refused by the router: the tenant's or the number's limit.
    calls_over_tenant_limit,
    /// Calls refused because the router could not be reached or failed.
    calls_router_failed,
    /// Calls refused with 503 because the router was overloaded (load shed).
    calls_overloaded,
    /// New INVITEs refused at the edge's intake with 503 and Retry-After because of the
    /// backlog (load shed before any work for them; docs/DECISIONS.md, "Overload").
    calls_shed,
    /// SIP datagrams dropped because the queue from the UDP front door to the stack was full
    /// (the I/O thread far behind; the shedder refuses new calls long before).
    udp_queue_full,
    /// Calls whose caller leg ended.
    calls_ended,
    /// Agent legs started (INVITEs to agent devices).
    agent_legs,
    /// Agent legs answered.
    agent_legs_answered,
    /// Calls out the router placed here (click-to-call).
    calls_originated,
    /// INVITEs from agents' phones let in (digest-authenticated as the agent), before the
    /// router's word.
    calls_dialled,
    /// Calls the platform could not take forwarded to their number's backup number (N6).
    calls_forwarded_to_backup,
    /// Customer legs of calls out started (INVITEs on a trunk, each attempt).
    customer_legs,
    /// Trunks the OPTIONS keepalive marked down.
    trunks_down,
    /// Trunks the OPTIONS keepalive marked up again.
    trunks_up,
    /// Registrations (and refreshes) a carrier's registrar accepted.
    trunk_registrations,
    /// Registrations a registrar refused or did not answer.
    trunk_registrations_failed,
    /// REGISTER requests accepted.
    registrations,
    /// REGISTER requests refused (bad credentials, unknown agent).
    registrations_refused,
    /// Digits received (RFC 4733 or SIP INFO).
    digits,
    /// Recordings finished.
    recordings,
    /// Blind transfers by an agent's REFER that the router took.
    transfers,
    /// Blind transfers by REFER that the router refused (unknown target...).
    transfers_refused,
    /// Messages dropped because their source address was over its rate (UDP datagrams
    /// before parsing, messages on TCP).
    messages_rate_limited,
    /// Messages dropped because their source address is banned.
    messages_from_banned,
    /// TCP connections closed at once: a banned address, over the accept rate, or over the
    /// address's cap on open connections.
    tcp_connections_refused,
    /// Digest authentications that failed (wrong password, unknown user, wrong realm).
    auth_failures,
    /// Replayed credentials (a nonce count not above the last, or the same response
    /// without qop), challenged again.
    auth_replays,
    /// Credentials whose digest uri is not the Request-URI, refused with 403.
    auth_uri_mismatches,
    /// Addresses banned after repeated digest failures.
    address_bans,
    /// Users (agents, trunk accounts) banned after repeated digest failures.
    user_bans,
    /// Requests for a banned user refused with 403.
    banned_user_requests,
}

impl Metrics {
    /// Adds one.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
