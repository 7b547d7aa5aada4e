//! Per-source defences of the edge: message rate limits per source address (UDP datagrams
//! before they are parsed, messages on TCP), TCP accept rates and a cap on the TCP connections
//! one address holds open, and bans after repeated digest failures, by address and by user.
//!
//! Own code, after the behaviour of Kamailio's `pike` module (a per-address request count over
//! a sampling window; over it the request is dropped) and of the `htable` bans of its sample
//! configuration (an address or user with too many failed authentications is refused for a
//! while). Differences, and why, are in docs/DECISIONS.md ("SIP defences").
//!
//! [`Guard`] is the pure core: it takes the time and whether the address is a trunk's as
//! arguments, so its tests need no clock and no sockets. [`Defences`] wraps it for the edge:
//! a lock, the directory (which addresses are trunks) and the counters.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::directory::SharedDirectory;
use crate::metrics::Metrics;

/// A token bucket's size: `per_second` tokens come back each second, at most `burst` are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Sustained rate, per second.
    pub per_second: u32,
    /// Most taken at once after a quiet spell (the bucket's capacity).
    pub burst: u32,
}

/// What one source address may do. `None` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceLimits {
    /// SIP messages from the address: UDP datagrams (dropped before they are parsed) and
    /// messages on its TCP connections.
    pub messages: Option<Rate>,
    /// New TCP connections from the address.
    pub tcp_accepts: Option<Rate>,
    /// TCP connections the address holds open at once.
    pub tcp_connections: Option<u32>,
}

impl SourceLimits {
    /// The default for addresses that are not trunks: room for an office behind one NAT
    /// address with a few hundred phones (registrations, keep-alives, calls), far below what
    /// a flood sends.
    pub const SOURCES: SourceLimits = SourceLimits {
        messages: Some(Rate {
            per_second: 300,
            burst: 1_500,
        }),
        tcp_accepts: Some(Rate {
            per_second: 20,
            burst: 200,
        }),
        tcp_connections: Some(256),
    };

    /// The default for trunk addresses: no rate (a carrier sends every call of a hotline
    /// from one address; its load is bounded by the trunk's call limit and the router's
    /// admission, which answer 503 instead of dropping requests the carrier would resend),
    /// and a connection cap only against a runaway peer.
    pub const TRUNKS: SourceLimits = SourceLimits {
        messages: None,
        tcp_accepts: None,
        tcp_connections: Some(1_024),
    };

    /// No limit at all.
    pub const NONE: SourceLimits = SourceLimits {
        messages: None,
        tcp_accepts: None,
        tcp_connections: None,
    };
}

/// When digest failures lead to a ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthBan {
    /// Failures from one address within `window` that ban the address (0: never).
    pub address_failures: u32,
    /// Failures for one user (an agent, or a trunk's digest account) within `window` that
    /// ban the user (0: never).
    pub user_failures: u32,
    /// The window failures are counted in, from the first.
    pub window: Duration,
    /// How long a ban lasts.
    pub ban: Duration,
}

impl Default for AuthBan {
    fn default() -> Self {
        AuthBan {
            address_failures: 10,
            user_failures: 5,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(300),
        }
    }
}

/// What to do with a message or a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it in.
    Pass,
    /// The address is banned.
    Banned,
    /// Over the address's rate.
    Limited,
    /// (Connections only) the address holds as many connections as it may.
    TooMany,
}

/// The place a TCP connection holds under its address's cap, until it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPlace {
    ip: IpAddr,
    /// Counted in the shared overflow entry (the table was full when it was let in).
    overflow: bool,
}

/// What a failure led to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureOutcome {
    /// This failure banned the address.
    pub address_banned: bool,
    /// This failure banned the user.
    pub user_banned: bool,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rate.burst),
            at: now,
        }
    }

    /// Takes a token if there is one; returns when the bucket will be full again.
    fn take(&mut self, rate: Rate, now: Instant) -> (bool, Instant) {
        let burst = f64::from(rate.burst);
        let per_second = f64::from(rate.per_second);
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(burst);
        self.at = now;
        let ok = self.tokens >= 1.0;
        if ok {
            self.tokens -= 1.0;
        }
        let missing = burst - self.tokens;
        let full_in = if missing <= 0.0 {
            Duration::ZERO
        } else if per_second > 0.0 {
            Duration::from_secs_f64((missing / per_second).min(86_400.0))
        } else {
            Duration::from_secs(86_400)
        };
        (ok, now + full_in)
    }
}

/// Failures counted in a window starting at the first.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

impl Failures {
    /// Adds one at `now`; returns the count within the window.
    fn add(this: &mut Option<Failures>, window: Duration, now: Instant) -> u32 {
        match this {
            Some(f) if now.saturating_duration_since(f.since) < window => {
                f.count += 1;
                f.count
            }
            _ => {
                *this = Some(Failures {
                    count: 1,
                    since: now,
                });
                1
            }
        }
    }
}

/// What the guard keeps of one address.
#[derive(Debug, Clone)]
struct Source {
    messages: Option<Bucket>,
    accepts: Option<Bucket>,
    tcp_open: u32,
    failures: Option<Failures>,
    banned_until: Option<Instant>,
    /// When the entry is as good as new again (buckets full, failure window over), if
    /// nothing happens before.
    idle_at: Instant,
}

impl Source {
    fn new(now: Instant) -> Source {
        Source {
            messages: None,
            accepts: None,
            tcp_open: 0,
            failures: None,
            banned_until: None,
            idle_at: now,
        }
    }

    fn banned(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|t| t > now)
    }

    /// Whether forgetting the entry changes nothing.
    fn idle(&self, now: Instant) -> bool {
        self.tcp_open == 0 && !self.banned(now) && self.idle_at <= now
    }

    fn take(
        bucket: &mut Option<Bucket>,
        rate: Option<Rate>,
        idle_at: &mut Instant,
        now: Instant,
    ) -> bool {
        let Some(rate) = rate else {
            return true;
        };
        let b = bucket.get_or_insert_with(|| Bucket::full(rate, now));
        let (ok, full_at) = b.take(rate, now);
        *idle_at = (*idle_at).max(full_at);
        ok
    }
}

/// The defences' state: per-address buckets, connection counts, failures and bans, and
/// per-user failures and bans. Bounded: at most `capacity` addresses (trunks' addresses
/// aside) and `capacity` users are tracked.
#[derive(Debug)]
pub struct Guard {
    sources_limits: SourceLimits,
    trunk_limits: SourceLimits,
    ban: AuthBan,
    capacity: usize,
    sources: HashMap<IpAddr, Source>,
    /// Shared by every address that finds the table full (a flood from many addresses):
    /// they are limited together until entries fall idle.
    overflow: Source,
    last_sweep: Option<Instant>,
    users: HashMap<Arc<str>, (Option<Failures>, Option<Instant>)>,
}

/// How often a full table is swept for idle entries, at most.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Longest user name kept (bytes): a name is whatever a request says, up to a datagram's
/// size; longer ones are cut, so the user table's memory stays bounded.
const USER_KEY_MAX: usize = 128;

/// `user`, cut to [`USER_KEY_MAX`] bytes at a character boundary.
fn user_key(user: &str) -> &str {
    if user.len() <= USER_KEY_MAX {
        return user;
    }
    let mut end = USER_KEY_MAX;
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    &user[..end]
}

impl Guard {
    /// With these limits, tracking at most `capacity` addresses and users (at least one).
    pub fn new(
        sources: SourceLimits,
        trunks: SourceLimits,
        ban: AuthBan,
        capacity: usize,
    ) -> Guard {
        let now = Instant::now();
        Guard {
            sources_limits: sources,
            trunk_limits: trunks,
            ban,
            capacity: capacity.max(1),
            sources: HashMap::new(),
            overflow: Source::new(now),
            last_sweep: None,
            users: HashMap::new(),
        }
    }

    fn limits(&self, trunk: bool) -> SourceLimits {
        if trunk {
            self.trunk_limits
        } else {
            self.sources_limits
        }
    }

    /// Makes an entry for `ip` if there is none and there is room (sweeping idle entries
    /// when the table is full, at most every [`SWEEP_EVERY`]); a trunk always gets one
    /// (there are few of them, and they are never put with strangers). Whether `ip` has an
    /// entry now.
    fn make_room(&mut self, ip: IpAddr, trunk: bool, now: Instant) -> bool {
        if self.sources.contains_key(&ip) {
            return true;
        }
        if self.sources.len() >= self.capacity && !trunk {
            if self
                .last_sweep
                .is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY)
            {
                self.last_sweep = Some(now);
                self.sources.retain(|_, s| !s.idle(now));
            }
            if self.sources.len() >= self.capacity {
                return false;
            }
        }
        self.sources.insert(ip, Source::new(now));
        true
    }

    /// The entry of `ip`; the shared overflow entry when the table has no room for it.
    fn entry(&mut self, ip: IpAddr, trunk: bool, now: Instant) -> &mut Source {
        if self.make_room(ip, trunk, now) {
            if let Some(s) = self.sources.get_mut(&ip) {
                return s;
            }
        }
        &mut self.overflow
    }

    /// Whether `ip` is banned now (a trunk's address never is, see [`Guard::failure`]).
    pub fn banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.sources.get(&ip).is_some_and(|s| s.banned(now))
    }

    /// A message (datagram, or a message on TCP) from `ip`.
    pub fn message(&mut self, ip: IpAddr, trunk: bool, now: Instant) -> Verdict {
        if !trunk && self.banned(ip, now) {
            return Verdict::Banned;
        }
        let rate = self.limits(trunk).messages;
        if rate.is_none() {
            return Verdict::Pass;
        }
        let s = self.entry(ip, trunk, now);
        if Source::take(&mut s.messages, rate, &mut s.idle_at, now) {
            Verdict::Pass
        } else {
            Verdict::Limited
        }
    }

    /// A new TCP connection from `ip`: let in, it holds the returned place until
    /// [`Guard::closed`]; else why not.
    pub fn accept(&mut self, ip: IpAddr, trunk: bool, now: Instant) -> Result<TcpPlace, Verdict> {
        if !trunk && self.banned(ip, now) {
            return Err(Verdict::Banned);
        }
        let limits = self.limits(trunk);
        let own = self.make_room(ip, trunk, now);
        let s = self.entry(ip, trunk, now);
        if limits.tcp_connections.is_some_and(|max| s.tcp_open >= max) {
            return Err(Verdict::TooMany);
        }
        if !Source::take(&mut s.accepts, limits.tcp_accepts, &mut s.idle_at, now) {
            return Err(Verdict::Limited);
        }
        s.tcp_open += 1;
        Ok(TcpPlace { ip, overflow: !own })
    }

    /// A connection let in by [`Guard::accept`] has closed.
    pub fn closed(&mut self, place: TcpPlace) {
        // an entry holding a connection is never swept, so it is still there
        let s = match self.sources.get_mut(&place.ip) {
            Some(s) if !place.overflow => s,
            _ => &mut self.overflow,
        };
        s.tcp_open = s.tcp_open.saturating_sub(1);
    }

    /// Whether `user` is banned now.
    pub fn user_banned(&self, user: &str, now: Instant) -> bool {
        self.users
            .get(user_key(user))
            .and_then(|(_, until)| *until)
            .is_some_and(|t| t > now)
    }

    /// A digest failure from `ip` (never counted against a trunk's address), for `user`
    /// when it names a known agent or trunk account.
    pub fn failure(
        &mut self,
        ip: IpAddr,
        trunk: bool,
        user: Option<&str>,
        now: Instant,
    ) -> FailureOutcome {
        let mut out = FailureOutcome::default();
        let ban = self.ban;
        // a full table cannot take one more address: its failures go uncounted rather than
        // ban every stranger at once through the shared overflow entry
        if !trunk && ban.address_failures > 0 && self.make_room(ip, false, now) {
            if let Some(s) = self.sources.get_mut(&ip) {
                let n = Failures::add(&mut s.failures, ban.window, now);
                s.idle_at = s.idle_at.max(now + ban.window);
                if n >= ban.address_failures && !s.banned(now) {
                    s.banned_until = Some(now + ban.ban);
                    s.failures = None;
                    out.address_banned = true;
                }
            }
        }
        if let Some(user) = user.filter(|_| ban.user_failures > 0).map(user_key) {
            if !self.users.contains_key(user) && self.users.len() >= self.capacity {
                self.users.retain(|_, (f, until)| {
                    until.is_some_and(|t| t > now)
                        || f.is_some_and(|f| now.saturating_duration_since(f.since) < ban.window)
                });
            }
            if self.users.contains_key(user) || self.users.len() < self.capacity {
                let (failures, until) = self.users.entry(Arc::from(user)).or_default();
                let n = Failures::add(failures, ban.window, now);
                if n >= ban.user_failures && !until.is_some_and(|t| t > now) {
                    *until = Some(now + ban.ban);
                    *failures = None;
                    out.user_banned = true;
                }
            }
        }
        out
    }

    /// A successful authentication of `user`: its failures so far are forgiven.
    pub fn success(&mut self, user: &str) {
        if let Some((failures, _)) = self.users.get_mut(user_key(user)) {
            *failures = None;
        }
    }

    /// Addresses and users banned now.
    pub fn bans(&self, now: Instant) -> (usize, usize) {
        (
            self.sources.values().filter(|s| s.banned(now)).count(),
            self.users
                .values()
                .filter(|(_, until)| until.is_some_and(|t| t > now))
                .count(),
        )
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }
}

/// The guard as the edge uses it: locked, with the directory's trunks and the counters.
pub(crate) struct Defences {
    guard: Mutex<Guard>,
    directory: Arc<SharedDirectory>,
    metrics: Arc<Metrics>,
}

impl Defences {
    pub(crate) fn new(
        guard: Guard,
        directory: Arc<SharedDirectory>,
        metrics: Arc<Metrics>,
    ) -> Defences {
        Defences {
            guard: Mutex::new(guard),
            directory,
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Guard> {
        self.guard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn trunk(&self, ip: IpAddr) -> bool {
        self.directory.get().is_trunk_address(ip)
    }

    /// A message from `ip`: whether to take it; a refusal is counted.
    pub(crate) fn message(&self, ip: IpAddr) -> Verdict {
        let trunk = self.trunk(ip);
        let verdict = self.lock().message(ip, trunk, Instant::now());
        match verdict {
            Verdict::Pass => {}
            Verdict::Banned => Metrics::inc(&self.metrics.messages_from_banned),
            Verdict::Limited | Verdict::TooMany => {
                Metrics::inc(&self.metrics.messages_rate_limited)
            }
        }
        verdict
    }

    /// A new TCP connection from `ip`: let in (then [`Defences::closed`] must follow), or
    /// refused and counted.
    pub(crate) fn accept(&self, ip: IpAddr) -> Result<TcpPlace, Verdict> {
        let trunk = self.trunk(ip);
        let admitted = self.lock().accept(ip, trunk, Instant::now());
        if admitted.is_err() {
            Metrics::inc(&self.metrics.tcp_connections_refused);
        }
        admitted
    }

    /// A connection [`Defences::accept`] let in has closed.
    pub(crate) fn closed(&self, place: TcpPlace) {
        self.lock().closed(place);
    }

    /// Whether `user` is banned now.
    pub(crate) fn user_banned(&self, user: &str) -> bool {
        self.lock().user_banned(user, Instant::now())
    }

    /// A digest failure from `ip`, for `user` when it names a known agent or trunk account;
    /// counted, and banning when it is one too many.
    pub(crate) fn failure(&self, ip: IpAddr, user: Option<&str>) {
        Metrics::inc(&self.metrics.auth_failures);
        let trunk = self.trunk(ip);
        let out = self.lock().failure(ip, trunk, user, Instant::now());
        if out.address_banned {
            Metrics::inc(&self.metrics.address_bans);
            tracing::warn!(src = %ip, "address banned after repeated digest failures");
        }
        if out.user_banned {
            Metrics::inc(&self.metrics.user_bans);
            tracing::warn!(
                user = user.unwrap_or_default(),
                "user banned after repeated digest failures"
            );
        }
    }

    /// A successful authentication of `user`.
    pub(crate) fn success(&self, user: &str) {
        self.lock().success(user);
    }

    /// Addresses and users banned now.
    pub(crate) fn bans(&self) -> (usize, usize) {
        self.lock().bans(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHONE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 10));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 11));
    const CARRIER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1));

    fn limits(per_second: u32, burst: u32) -> SourceLimits {
        SourceLimits {
            messages: Some(Rate { per_second, burst }),
            tcp_accepts: Some(Rate { per_second, burst }),
            tcp_connections: Some(3),
        }
    }

    fn guard() -> Guard {
        Guard::new(
            limits(10, 20),
            SourceLimits::TRUNKS,
            AuthBan::default(),
            1_000,
        )
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let mut g = guard();
        let t0 = Instant::now();
        let passed = (0..100)
            .filter(|_| g.message(PHONE, false, t0) == Verdict::Pass)
            .count();
        assert_eq!(passed, 20, "the burst");
        // 10 per second come back: half a second later, five more
        let passed = (0..100)
            .filter(|_| g.message(PHONE, false, ms(t0, 500)) == Verdict::Pass)
            .count();
        assert_eq!(passed, 5);
        // another address has its own bucket
        assert_eq!(g.message(OTHER, false, t0), Verdict::Pass);
        // after a long quiet spell the burst is back, not more
        let passed = (0..100)
            .filter(|_| g.message(PHONE, false, ms(t0, 60_000)) == Verdict::Pass)
            .count();
        assert_eq!(passed, 20);
    }

    #[test]
    fn trunks_are_not_rate_limited_by_default() {
        let mut g = guard();
        let t0 = Instant::now();
        assert!((0..10_000).all(|_| g.message(CARRIER, true, t0) == Verdict::Pass));
        assert_eq!(g.tracked(), 0, "nothing to keep for an unlimited address");
    }

    #[test]
    fn tcp_connections_are_capped_per_address_and_come_back_when_closed() {
        let mut g = guard();
        let t0 = Instant::now();
        let places: Vec<TcpPlace> = (0..3)
            .map(|_| g.accept(PHONE, false, t0).expect("under the cap"))
            .collect();
        assert_eq!(g.accept(PHONE, false, t0), Err(Verdict::TooMany));
        assert!(g.accept(OTHER, false, t0).is_ok());
        g.closed(places[0]);
        assert!(g.accept(PHONE, false, t0).is_ok());
        // the trunk's cap is its own
        for _ in 0..1_024 {
            assert!(g.accept(CARRIER, true, t0).is_ok());
        }
        assert_eq!(g.accept(CARRIER, true, t0), Err(Verdict::TooMany));
    }

    #[test]
    fn tcp_accepts_are_rate_limited() {
        let mut g = Guard::new(
            SourceLimits {
                tcp_connections: None,
                ..limits(1, 2)
            },
            SourceLimits::TRUNKS,
            AuthBan::default(),
            10,
        );
        let t0 = Instant::now();
        assert!(g.accept(PHONE, false, t0).is_ok());
        assert!(g.accept(PHONE, false, t0).is_ok());
        assert_eq!(g.accept(PHONE, false, t0), Err(Verdict::Limited));
        assert!(g.accept(PHONE, false, ms(t0, 1_000)).is_ok());
    }

    #[test]
    fn repeated_failures_ban_the_address_for_the_ban_time() {
        let mut g = guard();
        let t0 = Instant::now();
        for i in 0..9 {
            let out = g.failure(PHONE, false, None, ms(t0, i * 1_000));
            assert!(!out.address_banned);
        }
        assert_eq!(g.message(PHONE, false, ms(t0, 9_000)), Verdict::Pass);
        let out = g.failure(PHONE, false, None, ms(t0, 9_500));
        assert!(out.address_banned, "the tenth failure within the minute");
        assert!(g.banned(PHONE, ms(t0, 9_500)));
        assert_eq!(g.message(PHONE, false, ms(t0, 10_000)), Verdict::Banned);
        assert_eq!(g.accept(PHONE, false, ms(t0, 10_000)), Err(Verdict::Banned));
        assert_eq!(g.message(OTHER, false, ms(t0, 10_000)), Verdict::Pass);
        assert_eq!(g.bans(ms(t0, 10_000)), (1, 0));
        // the ban ends
        let end = ms(t0, 9_500) + AuthBan::default().ban;
        assert!(g.banned(PHONE, end - Duration::from_millis(1)));
        assert!(!g.banned(PHONE, end));
        assert_eq!(g.message(PHONE, false, end), Verdict::Pass);
        assert_eq!(g.bans(end), (0, 0));
    }

    #[test]
    fn failures_spread_wider_than_the_window_do_not_ban() {
        let mut g = guard();
        let t0 = Instant::now();
        for i in 0..30 {
            let out = g.failure(PHONE, false, None, ms(t0, i * 7_000));
            assert!(!out.address_banned, "failure {i}");
        }
    }

    #[test]
    fn a_trunk_address_is_never_banned() {
        let mut g = guard();
        let t0 = Instant::now();
        for _ in 0..100 {
            assert!(!g.failure(CARRIER, true, None, t0).address_banned);
        }
        assert!(!g.banned(CARRIER, t0));
    }

    #[test]
    fn repeated_failures_for_one_user_ban_the_user_from_every_address() {
        let mut g = guard();
        let t0 = Instant::now();
        let ips: Vec<IpAddr> = (1..=5)
            .map(|i| IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, i)))
            .collect();
        for (i, ip) in ips.iter().enumerate() {
            let out = g.failure(*ip, false, Some("demo.alice"), t0);
            assert_eq!(out.user_banned, i == 4);
            assert!(!out.address_banned);
        }
        assert!(g.user_banned("demo.alice", t0));
        assert!(!g.user_banned("demo.bob", t0));
        assert!(!g.banned(ips[0], t0), "no single address failed often");
        assert!(!g.user_banned("demo.alice", t0 + AuthBan::default().ban));
    }

    #[test]
    fn long_user_names_are_kept_cut() {
        let mut g = guard();
        let t0 = Instant::now();
        let long = "é".repeat(10_000);
        for _ in 0..5 {
            g.failure(PHONE, false, Some(&long), t0);
        }
        assert!(g.user_banned(&long, t0));
        assert!(g.users.keys().all(|k| k.len() <= USER_KEY_MAX));
    }

    #[test]
    fn a_success_forgives_the_users_failures() {
        let mut g = guard();
        let t0 = Instant::now();
        for _ in 0..4 {
            g.failure(PHONE, false, Some("demo.alice"), t0);
        }
        g.success("demo.alice");
        for _ in 0..4 {
            assert!(!g.failure(PHONE, false, Some("demo.alice"), t0).user_banned);
        }
    }

    #[test]
    fn bans_can_be_switched_off() {
        let mut g = Guard::new(
            limits(10, 20),
            SourceLimits::TRUNKS,
            AuthBan {
                address_failures: 0,
                user_failures: 0,
                ..AuthBan::default()
            },
            10,
        );
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(
                g.failure(PHONE, false, Some("u"), t0),
                FailureOutcome::default()
            );
        }
        assert_eq!(g.bans(t0), (0, 0));
    }

    #[test]
    fn the_table_is_bounded_and_a_flood_of_addresses_shares_one_bucket() {
        let mut g = Guard::new(
            limits(10, 20),
            SourceLimits::TRUNKS,
            AuthBan::default(),
            100,
        );
        let t0 = Instant::now();
        let ip = |i: u32| IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        for i in 0..100 {
            assert_eq!(g.message(ip(i), false, t0), Verdict::Pass);
        }
        assert_eq!(g.tracked(), 100);
        // the table is full of busy entries: newcomers share the overflow bucket
        let passed = (100..1_000)
            .filter(|&i| g.message(ip(i), false, t0) == Verdict::Pass)
            .count();
        assert_eq!(passed, 20, "one burst for all newcomers together");
        assert_eq!(g.tracked(), 100);
        // tracked addresses keep their own buckets
        assert_eq!(g.message(ip(5), false, t0), Verdict::Pass);
        // once the entries are idle again (buckets full), a sweep makes room
        let later = ms(t0, 10_000);
        assert_eq!(g.message(ip(5_000), false, later), Verdict::Pass);
        assert!(g.tracked() <= 100);
        assert!(g.sources.contains_key(&ip(5_000)));
        // a trunk always gets its own entry
        assert!(g.accept(CARRIER, true, later).is_ok());
        assert!(g.sources.contains_key(&CARRIER));
    }

    #[test]
    fn a_connection_let_in_through_the_overflow_gives_its_place_back_there() {
        let mut g = Guard::new(limits(10, 20), SourceLimits::TRUNKS, AuthBan::default(), 1);
        let t0 = Instant::now();
        assert!(g.accept(PHONE, false, t0).is_ok());
        let through_overflow = g.accept(OTHER, false, t0).expect("overflow");
        assert_eq!(g.overflow.tcp_open, 1);
        g.closed(through_overflow);
        assert_eq!(g.overflow.tcp_open, 0);
        assert_eq!(g.sources[&PHONE].tcp_open, 1);
    }

    #[test]
    fn a_banned_or_connected_address_is_never_swept() {
        let mut g = Guard::new(
            limits(10, 20),
            SourceLimits::TRUNKS,
            AuthBan {
                address_failures: 1,
                ..AuthBan::default()
            },
            2,
        );
        let t0 = Instant::now();
        assert!(g.failure(PHONE, false, None, t0).address_banned);
        assert!(g.accept(OTHER, false, t0).is_ok());
        let later = ms(t0, 100_000);
        for i in 0..10 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 0, i));
            g.message(ip, false, later);
        }
        assert!(g.banned(PHONE, later));
        assert!(g.sources.contains_key(&OTHER));
        // failures of an address the full table cannot take go uncounted: no ban of strangers
        let stranger = IpAddr::V4(std::net::Ipv4Addr::new(10, 2, 0, 1));
        assert!(!g.failure(stranger, false, None, later).address_banned);
        assert!(!g.banned(stranger, later));
        assert_eq!(g.message(stranger, false, later), Verdict::Pass);
    }
}
