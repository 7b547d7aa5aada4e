//! The checks every digest-authenticated request goes through, for agents' REGISTERs and
//! trunks' INVITEs alike, in an order where nothing costly happens before it must: the nonce
//! (ours, issued to this address, fresh), the digest `uri` against the Request-URI, the realm,
//! the response (the caller's own check of user and password), and last the nonce count
//! against replays (recorded only for credentials that verified). Counting failures and bans
//! is the caller's: it knows the user.

use std::net::IpAddr;

use rsipstack::sip::Uri;

use crate::digest::{self, CountCheck, Credentials, NonceCheck};
use crate::metrics::Metrics;
use crate::Shared;

/// What the checks found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Checked<T> {
    /// No credentials, a nonce that is not ours for this address, or one too old, or a
    /// replay: challenge (again), `stale=true` when the credentials themselves were good.
    Challenge {
        /// Mark the challenge `stale=true`: the client answers it without asking anyone.
        stale: bool,
    },
    /// The digest `uri` names another target than the Request-URI: refuse (403). Not a
    /// password failure (the response was never checked).
    UriMismatch,
    /// The wrong realm, user or password: refuse (403) and count a failure.
    Failed,
    /// Verified; what the caller's check returned.
    Verified(T),
}

/// Checks `credentials` of a request to `request_uri` from `from`; `verify` checks user and
/// password (with [`digest::verify`]) and returns what the credentials prove, if anything.
pub(crate) fn check<T>(
    shared: &Shared,
    credentials: Option<&Credentials>,
    request_uri: &Uri,
    from: IpAddr,
    verify: impl FnOnce(&Credentials) -> Option<T>,
) -> Checked<T> {
    Checker {
        nonces: &shared.nonces,
        counts: &shared.nonce_counts,
        realm: &shared.options.realm,
        metrics: &shared.metrics,
    }
    .check(credentials, request_uri, from, verify)
}

/// What the checks need of the edge.
pub(crate) struct Checker<'a> {
    pub(crate) nonces: &'a digest::Nonces,
    pub(crate) counts: &'a digest::NonceCounts,
    pub(crate) realm: &'a str,
    pub(crate) metrics: &'a Metrics,
}

impl Checker<'_> {
    pub(crate) fn check<T>(
        &self,
        credentials: Option<&Credentials>,
        request_uri: &Uri,
        from: IpAddr,
        verify: impl FnOnce(&Credentials) -> Option<T>,
    ) -> Checked<T> {
        let Some(c) = credentials else {
            return Checked::Challenge { stale: false };
        };
        match self.nonces.check(&c.nonce, from) {
            NonceCheck::Fresh => {}
            NonceCheck::Stale => return Checked::Challenge { stale: true },
            NonceCheck::Forged => return Checked::Challenge { stale: false },
        }
        if !digest::uri_matches(&c.uri, request_uri) {
            Metrics::inc(&self.metrics.auth_uri_mismatches);
            tracing::info!(src = %from, uri = %c.uri, request_uri = %request_uri, "digest uri is not the request-uri");
            return Checked::UriMismatch;
        }
        // a trunk or phone must answer the edge's own challenge (credentials computed for
        // another realm are not ours to accept, whatever they prove)
        if c.realm != self.realm {
            return Checked::Failed;
        }
        let Some(proved) = verify(c) else {
            return Checked::Failed;
        };
        match self.counts.admit(c) {
            CountCheck::Fresh => Checked::Verified(proved),
            CountCheck::Replayed => {
                Metrics::inc(&self.metrics.auth_replays);
                tracing::info!(src = %from, user = %c.username, nc = c.nc.as_deref().unwrap_or("-"), "replayed credentials challenged again");
                Checked::Challenge { stale: true }
            }
            CountCheck::Forgotten => Checked::Challenge { stale: true },
        }
    }
}

/// The value of a `Reason` header for a refusal.
pub(crate) fn reason(text: &str) -> rsipstack::sip::Header {
    rsipstack::sip::Header::Reason(format!("SIP;cause=403;text=\"{text}\"").into())
}

/// Reason text for a request refused because its user is banned.
pub(crate) const BANNED: &str = "too many failed authentications, try later";
/// Reason text for credentials computed for another Request-URI.
pub(crate) const URI_MISMATCH: &str = "digest uri does not match the request-uri";

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    const PHONE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 10));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 11));
    const SECRET: &str = "trunk-secret-1";

    struct Edge {
        nonces: digest::Nonces,
        counts: digest::NonceCounts,
        metrics: Metrics,
    }

    impl Edge {
        fn new() -> Edge {
            Edge {
                nonces: digest::Nonces::new(),
                counts: digest::NonceCounts::new(100),
                metrics: Metrics::default(),
            }
        }

        fn check(&self, c: &Credentials, from: IpAddr, ruri: &str) -> Checked<()> {
            Checker {
                nonces: &self.nonces,
                counts: &self.counts,
                realm: "callgrid",
                metrics: &self.metrics,
            }
            .check(Some(c), &Uri::try_from(ruri).expect("uri"), from, |c| {
                digest::verify(c, "INVITE", SECRET).then_some(())
            })
        }

        /// Credentials for a fresh challenge to `to`, as a client in `realm` computes them.
        fn answer(&self, to: IpAddr, realm: &str, uri: &str, nc: u32) -> Credentials {
            let mut c = Credentials {
                username: "carrier".into(),
                realm: realm.into(),
                nonce: self.nonces.issue(to),
                uri: uri.into(),
                qop: Some("auth".into()),
                nc: Some(format!("{nc:08x}")),
                cnonce: Some("abc".into()),
                ..Credentials::default()
            };
            c.response = digest::expected_response(&c, "INVITE", SECRET);
            c
        }
    }

    const RURI: &str = "sip:+15550000200@203.0.113.5:5060";

    #[test]
    fn good_credentials_verify_once() {
        let edge = Edge::new();
        let c = edge.answer(PHONE, "callgrid", RURI, 1);
        assert_eq!(edge.check(&c, PHONE, RURI), Checked::Verified(()));
        assert_eq!(
            edge.check(&c, PHONE, RURI),
            Checked::Challenge { stale: true }
        );
        assert_eq!(edge.metrics.auth_replays.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn credentials_for_another_realm_fail_even_with_the_right_secret() {
        let edge = Edge::new();
        let c = edge.answer(PHONE, "carrier.example", RURI, 1);
        assert!(
            digest::verify(&c, "INVITE", SECRET),
            "right secret, in its realm"
        );
        assert_eq!(edge.check(&c, PHONE, RURI), Checked::Failed);
    }

    #[test]
    fn credentials_for_another_request_uri_are_refused_before_the_password() {
        let edge = Edge::new();
        let c = edge.answer(PHONE, "callgrid", "sip:+15550000999@203.0.113.5", 1);
        assert_eq!(edge.check(&c, PHONE, RURI), Checked::UriMismatch);
        assert_eq!(edge.metrics.auth_uri_mismatches.load(Ordering::Relaxed), 1);
        // equivalent forms of the same URI are fine
        let c = edge.answer(PHONE, "callgrid", "sip:%2B15550000200@203.0.113.5", 1);
        assert_eq!(edge.check(&c, PHONE, RURI), Checked::Verified(()));
    }

    #[test]
    fn a_wrong_secret_fails_and_a_nonce_of_another_address_is_challenged() {
        let edge = Edge::new();
        let mut c = edge.answer(PHONE, "callgrid", RURI, 1);
        c.response = digest::expected_response(&c, "INVITE", "guess");
        assert_eq!(edge.check(&c, PHONE, RURI), Checked::Failed);
        let c = edge.answer(PHONE, "callgrid", RURI, 1);
        assert_eq!(
            edge.check(&c, OTHER, RURI),
            Checked::Challenge { stale: false }
        );
        // a failed or refused check records no nonce count: the owner can still use it
        assert_eq!(edge.check(&c, PHONE, RURI), Checked::Verified(()));
    }
}
