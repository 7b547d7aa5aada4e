//! HTTP digest authentication for SIP (RFC 3261 §22, RFC 2617 with MD5 and `qop=auth`).
//!
//! Written here rather than taken from rsipstack: its server-side helper mishandles nonce
//! counts of 10 and more (docs/research/sip-edge.md). A nonce is a timestamp, a random salt and
//! a keyed hash of both and of the address it was issued to: the edge keeps nothing to check one,
//! an `Authorization` can only answer a challenge sent to the address it comes from (a failure
//! sent from a forged source address cannot be pinned on the victim, see `defences.rs`), and a
//! stale nonce is answered with a fresh challenge marked `stale=true` (the phone retries
//! silently). What the edge does keep is the highest nonce count seen per nonce
//! ([`NonceCounts`], bounded), so a replayed `Authorization` is refused. [`uri_matches`]
//! compares the digest `uri` with the Request-URI.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};

/// How long a nonce stays valid.
pub const NONCE_LIFETIME_SECS: u64 = 300;

/// The fields of an `Authorization` / `Proxy-Authorization` header with the Digest scheme.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `uri`, exactly as the client hashed it.
    pub uri: String,
    /// `response`.
    pub response: String,
    /// `algorithm`, when given.
    pub algorithm: Option<String>,
    /// `qop`, when given.
    pub qop: Option<String>,
    /// `nc`, when given.
    pub nc: Option<String>,
    /// `cnonce`, when given.
    pub cnonce: Option<String>,
}

/// Why an `Authorization` header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not the Digest scheme.
    #[error("authorization scheme is not digest")]
    NotDigest,
    /// A required parameter is missing.
    #[error("authorization lacks the {0} parameter")]
    Missing(&'static str),
    /// The header could not be tokenised.
    #[error("malformed authorization header")]
    Malformed,
}

/// Parses the value of an `Authorization` header: `Digest k=v, k="v", ...`.
pub fn parse_authorization(value: &str) -> Result<Credentials, DigestError> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("digest") {
        return Err(DigestError::NotDigest);
    }
    let mut c = Credentials::default();
    for (k, v) in params(rest)? {
        match k.to_ascii_lowercase().as_str() {
            "username" => c.username = v,
            "realm" => c.realm = v,
            "nonce" => c.nonce = v,
            "uri" => c.uri = v,
            "response" => c.response = v,
            "algorithm" => c.algorithm = Some(v),
            "qop" => c.qop = Some(v),
            "nc" => c.nc = Some(v),
            "cnonce" => c.cnonce = Some(v),
            _ => {}
        }
    }
    for (name, v) in [
        ("username", &c.username),
        ("realm", &c.realm),
        ("nonce", &c.nonce),
        ("uri", &c.uri),
        ("response", &c.response),
    ] {
        if v.is_empty() {
            return Err(DigestError::Missing(name));
        }
    }
    if c.qop.is_some() && (c.nc.is_none() || c.cnonce.is_none()) {
        return Err(DigestError::Missing("nc/cnonce"));
    }
    Ok(c)
}

/// `k=v` pairs separated by commas; values may be quoted (with `\` escapes).
fn params(s: &str) -> Result<Vec<(String, String)>, DigestError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            if c == ',' {
                return Err(DigestError::Malformed);
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(DigestError::Malformed);
        }
        while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(DigestError::Malformed);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_owned();
        }
        out.push((key.trim().to_owned(), value));
    }
}

fn md5_hex(parts: &[&str]) -> String {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p.as_bytes());
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// `MD5(username:realm:password)` (RFC 2617's HA1).
pub fn ha1(username: &str, realm: &str, password: &str) -> String {
    md5_hex(&[username, realm, password])
}

/// The response a client with `password` must send for `method` (RFC 2617 §3.2.2.1).
pub fn expected_response(c: &Credentials, method: &str, password: &str) -> String {
    expected_response_ha1(c, method, &ha1(&c.username, &c.realm, password))
}

/// The response a client whose HA1 is `ha1` must send for `method`.
pub fn expected_response_ha1(c: &Credentials, method: &str, ha1: &str) -> String {
    let ha2 = md5_hex(&[method, &c.uri]);
    match c.qop.as_deref() {
        Some(qop) => md5_hex(&[
            ha1,
            &c.nonce,
            c.nc.as_deref().unwrap_or(""),
            c.cnonce.as_deref().unwrap_or(""),
            qop,
            &ha2,
        ]),
        None => md5_hex(&[ha1, &c.nonce, &ha2]),
    }
}

/// Whether the credentials prove knowledge of `password` (compared in constant time).
pub fn verify(c: &Credentials, method: &str, password: &str) -> bool {
    verify_ha1(c, method, &ha1(&c.username, &c.realm, password))
}

/// Whether the credentials prove knowledge of the password whose HA1 is `ha1`.
pub fn verify_ha1(c: &Credentials, method: &str, ha1: &str) -> bool {
    if c.algorithm
        .as_deref()
        .is_some_and(|a| !a.eq_ignore_ascii_case("md5"))
    {
        return false;
    }
    if c.qop
        .as_deref()
        .is_some_and(|q| !q.eq_ignore_ascii_case("auth"))
    {
        return false;
    }
    let want = expected_response_ha1(c, method, ha1);
    same(&want, &c.response.to_ascii_lowercase())
}

/// Equality that takes the same time wherever the texts differ, for secrets and MACs: an
/// early-exit comparison tells a patient attacker, one byte at a time, how much of a guess
/// was right (the sip fuzz target found a nonce MAC that way, by the comparisons it watches).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && std::hint::black_box(
            a.bytes()
                .zip(b.bytes())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y)),
        ) == 0
}

/// Issues and checks nonces.
pub struct Nonces {
    key: [u8; 16],
}

/// What a nonce check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Issued by us to this address, and fresh.
    Fresh,
    /// Issued by us but too old: challenge again with `stale=true`.
    Stale,
    /// Not one of ours, or issued to another address.
    Forged,
}

impl Nonces {
    /// With a random key.
    pub fn new() -> Nonces {
        let (a, b) = (crate::random_u64(), crate::random_u64());
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&a.to_le_bytes());
        key[8..].copy_from_slice(&b.to_le_bytes());
        Nonces { key }
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn mac(&self, stamp: &str, salt: &str, to: IpAddr) -> String {
        let mut h = Md5::new();
        h.update(self.key);
        h.update(stamp.as_bytes());
        h.update(b".");
        h.update(salt.as_bytes());
        match to {
            IpAddr::V4(ip) => h.update(ip.octets()),
            IpAddr::V6(ip) => h.update(ip.octets()),
        }
        h.update(self.key);
        hex(&h.finalize())
    }

    /// A new nonce for a challenge sent to `to`.
    pub fn issue(&self, to: IpAddr) -> String {
        self.issue_at(Self::now(), to)
    }

    fn issue_at(&self, secs: u64, to: IpAddr) -> String {
        // the salt makes every nonce unique, so nonce counts are per challenge (two phones
        // behind one address challenged in the same second get different nonces)
        let stamp = format!("{secs:x}");
        let salt = format!("{:016x}", crate::random_u64());
        let mac = self.mac(&stamp, &salt, to);
        format!("{stamp}.{salt}.{mac}")
    }

    /// Checks a nonce we may have issued, in a request from `from`.
    pub fn check(&self, nonce: &str, from: IpAddr) -> NonceCheck {
        self.check_at(nonce, from, Self::now())
    }

    fn check_at(&self, nonce: &str, from: IpAddr, now: u64) -> NonceCheck {
        let mut parts = nonce.split('.');
        let (Some(stamp), Some(salt), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return NonceCheck::Forged;
        };
        if !same(&self.mac(stamp, salt, from), mac) {
            return NonceCheck::Forged;
        }
        match stamp_of(nonce) {
            Some(t) if now.saturating_sub(t) <= NONCE_LIFETIME_SECS && t <= now + 5 => {
                NonceCheck::Fresh
            }
            Some(_) => NonceCheck::Stale,
            None => NonceCheck::Forged,
        }
    }

    /// The value of a `WWW-Authenticate` / `Proxy-Authenticate` header for a challenge sent
    /// to `to`.
    pub fn challenge(&self, realm: &str, stale: bool, to: IpAddr) -> String {
        format!(
            "Digest realm=\"{realm}\", nonce=\"{}\", algorithm=MD5, qop=\"auth\"{}",
            self.issue(to),
            if stale { ", stale=true" } else { "" }
        )
    }
}

impl Default for Nonces {
    fn default() -> Self {
        Self::new()
    }
}

/// The issue time (Unix seconds) written at the front of one of our nonces.
fn stamp_of(nonce: &str) -> Option<u64> {
    let stamp = nonce.split('.').next()?;
    if stamp.is_empty() || stamp.len() > 16 {
        return None;
    }
    u64::from_str_radix(stamp, 16).ok()
}

/// Most responses remembered per nonce used without `qop` (clients of RFC 2069 have no
/// nonce count; each distinct request may use the nonce once).
const RESPONSES_PER_NONCE: usize = 8;

/// What the nonce-count record says of verified credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountCheck {
    /// A nonce count above every one seen with this nonce (or a first use): accept.
    Fresh,
    /// The same or a lower nonce count than already seen, or without `qop` the same
    /// response again: a replay.
    Replayed,
    /// The record of this nonce may have been dropped to bound memory: ask for a new
    /// nonce (`stale=true`) rather than risk accepting a replay.
    Forgotten,
}

/// The highest nonce count seen per nonce, for the nonce's lifetime, in bounded memory.
///
/// Only verified credentials are recorded, so a flood of forged `Authorization` headers adds
/// nothing. When the record is full the oldest entry is dropped and the issue time of the
/// dropped nonce becomes a floor: any nonce issued at or before it that has no record is
/// answered [`CountCheck::Forgotten`]. Memory stays bounded and a forgotten nonce can never
/// be replayed; under pressure phones only get fresh challenges sooner.
pub struct NonceCounts {
    capacity: usize,
    inner: Mutex<CountsInner>,
}

#[derive(Default)]
struct CountsInner {
    seen: HashMap<String, Seen>,
    /// Nonces in the order of their first use, with their issue time.
    order: VecDeque<(u64, String)>,
    /// Nonces issued at or before this time without a record are forgotten, not new.
    floor: u64,
}

struct Seen {
    /// Highest `nc` accepted (with `qop`).
    nc: u32,
    /// Hashes of the responses accepted without `qop`.
    responses: Vec<u64>,
}

impl NonceCounts {
    /// Keeps at most `capacity` nonces (at least one).
    pub fn new(capacity: usize) -> NonceCounts {
        NonceCounts {
            capacity: capacity.max(1),
            inner: Mutex::new(CountsInner::default()),
        }
    }

    /// Records the use of verified credentials `c` (their nonce already checked fresh) and
    /// says whether it is a replay.
    pub fn admit(&self, c: &Credentials) -> CountCheck {
        self.admit_at(c, Nonces::now())
    }

    fn admit_at(&self, c: &Credentials, now: u64) -> CountCheck {
        let Some(stamp) = stamp_of(&c.nonce) else {
            return CountCheck::Forgotten;
        };
        // a nonce past its lifetime has had its record dropped below: taken as new, a replay
        // arriving as the lifetime ends (checked fresh a moment before) would be accepted
        if now.saturating_sub(stamp) > NONCE_LIFETIME_SECS {
            return CountCheck::Forgotten;
        }
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let CountsInner { seen, order, floor } = &mut *inner;
        // nonces past their lifetime are refused as stale before they get here
        while order
            .front()
            .is_some_and(|(t, _)| now.saturating_sub(*t) > NONCE_LIFETIME_SECS)
        {
            if let Some((_, n)) = order.pop_front() {
                seen.remove(&n);
            }
        }
        let entry = match seen.get_mut(&c.nonce) {
            Some(e) => e,
            None if stamp <= *floor => return CountCheck::Forgotten,
            None => {
                while seen.len() >= self.capacity {
                    let Some((t, n)) = order.pop_front() else {
                        break;
                    };
                    seen.remove(&n);
                    *floor = (*floor).max(t);
                }
                if stamp <= *floor {
                    return CountCheck::Forgotten;
                }
                order.push_back((stamp, c.nonce.clone()));
                seen.entry(c.nonce.clone()).or_insert(Seen {
                    nc: 0,
                    responses: Vec::new(),
                })
            }
        };
        if c.qop.is_some() {
            let Some(nc) =
                c.nc.as_deref()
                    .and_then(|n| u32::from_str_radix(n, 16).ok())
            else {
                return CountCheck::Replayed;
            };
            if nc <= entry.nc {
                return CountCheck::Replayed;
            }
            entry.nc = nc;
            CountCheck::Fresh
        } else {
            let h = short_hash(&c.response.to_ascii_lowercase());
            if entry.responses.contains(&h) {
                return CountCheck::Replayed;
            }
            if entry.responses.len() >= RESPONSES_PER_NONCE {
                return CountCheck::Forgotten;
            }
            entry.responses.push(h);
            CountCheck::Fresh
        }
    }

    /// Nonces recorded now.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .seen
            .len()
    }

    /// Whether no nonce is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn short_hash(s: &str) -> u64 {
    let d = Md5::digest(s.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

/// Whether the digest `uri` names the request's Request-URI (RFC 3261 §22.4: the server
/// checks that they identify the same resource). Compared as SIP URIs (§19.1.4): scheme,
/// user (escapes decoded) and password exactly, host without regard to case, the port with
/// an absent port equal to the scheme's default (phones and proxies differ in writing it),
/// the `transport`, `user`, `method`, `ttl` and `maddr` parameters when either side has them,
/// other parameters only when both have them, headers exactly. A `uri` that does not parse
/// must equal the Request-URI as written.
pub fn uri_matches(uri: &str, request: &rsipstack::sip::Uri) -> bool {
    use rsipstack::sip::{Host, Scheme};
    let uri = uri.trim();
    let Ok(digest) = rsipstack::sip::Uri::try_from(uri) else {
        return uri == request.to_string();
    };
    let scheme = |u: &rsipstack::sip::Uri| match &u.scheme {
        None | Some(Scheme::Sip) => "sip".to_owned(),
        Some(Scheme::Sips) => "sips".to_owned(),
        Some(other) => other.to_string().to_ascii_lowercase(),
    };
    if scheme(&digest) != scheme(request) {
        return false;
    }
    let user = |u: &rsipstack::sip::Uri| {
        u.auth.as_ref().map(|a| {
            (
                percent_decode(&a.user),
                a.password.as_deref().map(percent_decode),
            )
        })
    };
    if user(&digest) != user(request) {
        return false;
    }
    let host = |u: &rsipstack::sip::Uri| match &u.host_with_port.host {
        Host::IpAddr(ip) => ip.to_string(),
        Host::Domain(d) => {
            let d = d.to_string().to_ascii_lowercase();
            // an IP literal the parser kept as text ("[::1]", "127.0.0.1")
            d.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .map_or(d, |ip| ip.to_string())
        }
    };
    if host(&digest) != host(request) {
        return false;
    }
    let default_port = if scheme(request) == "sips" {
        5061
    } else {
        5060
    };
    let port = |u: &rsipstack::sip::Uri| {
        u.host_with_port
            .port
            .as_ref()
            .map_or(default_port, |p| p.value())
    };
    if port(&digest) != port(request) {
        return false;
    }
    let (a, b) = (uri_params(&digest), uri_params(request));
    for (name, value) in &a {
        match b.get(name) {
            Some(other) if other != value => return false,
            None if MUST_MATCH.contains(&name.as_str()) => return false,
            _ => {}
        }
    }
    if b.keys()
        .any(|k| MUST_MATCH.contains(&k.as_str()) && !a.contains_key(k))
    {
        return false;
    }
    let headers = |u: &rsipstack::sip::Uri| {
        let mut h: Vec<(String, String)> = u
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), percent_decode(v)))
            .collect();
        h.sort();
        h
    };
    headers(&digest) == headers(request)
}

/// URI parameters that must appear on both sides or neither (RFC 3261 §19.1.4).
const MUST_MATCH: [&str; 5] = ["transport", "user", "method", "ttl", "maddr"];

/// A URI's parameters by lower-case name, values lower-cased and unescaped.
fn uri_params(u: &rsipstack::sip::Uri) -> HashMap<String, String> {
    u.params
        .iter()
        .map(|p| {
            let text = p.to_string();
            let text = text.trim_start_matches(';');
            let (name, value) = text.split_once('=').unwrap_or((text, ""));
            (
                name.trim().to_ascii_lowercase(),
                percent_decode(value.trim()).to_ascii_lowercase(),
            )
        })
        .collect()
}

/// `%XX` escapes decoded (RFC 3261 §19.1.4: escaped and unescaped forms are equal).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let digit = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (digit(bytes[i + 1]), digit(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_compares_whole_texts() {
        assert!(same("", ""));
        assert!(same("fe51", "fe51"));
        assert!(!same("fe51", "fe52"));
        assert!(!same("fe51", "ae51"));
        assert!(!same("fe51", "fe5"));
        assert!(!same("fe5", "fe51"));
    }

    #[test]
    fn a_nonce_whose_mac_differs_in_its_last_character_is_forged() {
        let n = Nonces::new();
        let ip: IpAddr = [192, 0, 2, 7].into();
        let nonce = n.issue(ip);
        assert_eq!(n.check(&nonce, ip), NonceCheck::Fresh);
        let mut bad = nonce.clone();
        let last = bad.pop().expect("a nonce is not empty");
        bad.push(if last == '0' { '1' } else { '0' });
        assert_eq!(n.check(&bad, ip), NonceCheck::Forged);
    }

    #[test]
    fn rfc2617_example_verifies() {
        // RFC 2617 §3.5
        let c = parse_authorization(
            r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .expect("parses");
        assert_eq!(c.username, "Mufasa");
        assert_eq!(c.nc.as_deref(), Some("00000001"));
        assert!(verify(&c, "GET", "Circle Of Life"));
        assert!(!verify(&c, "GET", "circle of life"));
        assert!(!verify(&c, "POST", "Circle Of Life"));
    }

    #[test]
    fn nonce_counts_of_ten_and_more_verify() {
        let mut c = Credentials {
            username: "alice".into(),
            realm: "callgrid".into(),
            nonce: "n".into(),
            uri: "sip:127.0.0.1".into(),
            qop: Some("auth".into()),
            nc: Some("0000000a".into()),
            cnonce: Some("abc".into()),
            ..Credentials::default()
        };
        c.response = expected_response(&c, "REGISTER", "secret-123");
        assert!(verify(&c, "REGISTER", "secret-123"));
        c.nc = Some("00000010".into());
        assert!(
            !verify(&c, "REGISTER", "secret-123"),
            "nc is part of the hash"
        );
    }

    #[test]
    fn without_qop_the_rfc2069_form_verifies() {
        let mut c = Credentials {
            username: "bob".into(),
            realm: "callgrid".into(),
            nonce: "xyz".into(),
            uri: "sip:callgrid".into(),
            ..Credentials::default()
        };
        c.response = expected_response(&c, "INVITE", "pw-12345678");
        assert!(verify(&c, "INVITE", "pw-12345678"));
    }

    #[test]
    fn malformed_headers_are_errors_not_panics() {
        assert_eq!(
            parse_authorization("Basic abc"),
            Err(DigestError::NotDigest)
        );
        assert_eq!(
            parse_authorization(r#"Digest username="a", realm="r""#),
            Err(DigestError::Missing("nonce"))
        );
        assert_eq!(
            parse_authorization(r#"Digest username="a"#),
            Err(DigestError::Malformed)
        );
        for junk in [
            "",
            "Digest",
            "Digest ,,,",
            "Digest =",
            "Digest a",
            "Digest \"\"=\"",
        ] {
            let _ = parse_authorization(junk);
        }
    }

    const PHONE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 10));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 11));

    #[test]
    fn nonces_are_fresh_then_stale_and_forgeries_are_caught() {
        let n = Nonces::new();
        let nonce = n.issue_at(1_000, PHONE);
        assert_eq!(n.check_at(&nonce, PHONE, 1_010), NonceCheck::Fresh);
        assert_eq!(
            n.check_at(&nonce, PHONE, 1_000 + NONCE_LIFETIME_SECS + 1),
            NonceCheck::Stale
        );
        assert_eq!(n.check_at("3e8.00.0000", PHONE, 1_010), NonceCheck::Forged);
        assert_eq!(
            Nonces::new().check_at(&nonce, PHONE, 1_010),
            NonceCheck::Forged
        );
        assert_eq!(n.check_at("nodot", PHONE, 1_010), NonceCheck::Forged);
        assert_eq!(
            n.check_at(&format!("{nonce}.x"), PHONE, 1_010),
            NonceCheck::Forged
        );
    }

    #[test]
    fn a_nonce_answers_only_from_the_address_it_was_sent_to() {
        let n = Nonces::new();
        let nonce = n.issue_at(1_000, PHONE);
        assert_eq!(n.check_at(&nonce, PHONE, 1_001), NonceCheck::Fresh);
        assert_eq!(n.check_at(&nonce, OTHER, 1_001), NonceCheck::Forged);
    }

    #[test]
    fn nonces_issued_in_the_same_second_differ() {
        let n = Nonces::new();
        assert_ne!(n.issue_at(1_000, PHONE), n.issue_at(1_000, PHONE));
    }

    fn used(nonce: &str, nc: u32) -> Credentials {
        Credentials {
            username: "alice".into(),
            realm: "callgrid".into(),
            nonce: nonce.into(),
            uri: "sip:127.0.0.1".into(),
            response: format!("{nc:032x}"),
            qop: Some("auth".into()),
            nc: Some(format!("{nc:08x}")),
            cnonce: Some("c".into()),
            ..Credentials::default()
        }
    }

    #[test]
    fn a_nonce_count_must_grow() {
        let counts = NonceCounts::new(16);
        let n = Nonces::new().issue_at(1_000, PHONE);
        assert_eq!(counts.admit_at(&used(&n, 1), 1_001), CountCheck::Fresh);
        assert_eq!(counts.admit_at(&used(&n, 1), 1_002), CountCheck::Replayed);
        assert_eq!(counts.admit_at(&used(&n, 2), 1_003), CountCheck::Fresh);
        assert_eq!(counts.admit_at(&used(&n, 10), 1_003), CountCheck::Fresh);
        assert_eq!(counts.admit_at(&used(&n, 9), 1_004), CountCheck::Replayed);
        let mut bad = used(&n, 11);
        bad.nc = Some("zz".into());
        assert_eq!(counts.admit_at(&bad, 1_004), CountCheck::Replayed);
        // another nonce has its own count
        let m = Nonces::new().issue_at(1_000, PHONE);
        assert_eq!(counts.admit_at(&used(&m, 1), 1_005), CountCheck::Fresh);
    }

    #[test]
    fn without_qop_the_same_response_is_a_replay() {
        let counts = NonceCounts::new(16);
        let n = Nonces::new().issue_at(1_000, PHONE);
        let mut c = used(&n, 1);
        c.qop = None;
        c.nc = None;
        c.cnonce = None;
        assert_eq!(counts.admit_at(&c, 1_001), CountCheck::Fresh);
        assert_eq!(counts.admit_at(&c, 1_002), CountCheck::Replayed);
        c.response = c.response.to_ascii_uppercase();
        assert_eq!(counts.admit_at(&c, 1_002), CountCheck::Replayed);
        // another request (another method or uri) answers the nonce with another response
        c.response = "another".into();
        assert_eq!(counts.admit_at(&c, 1_003), CountCheck::Fresh);
        for i in 0..RESPONSES_PER_NONCE {
            c.response = format!("r{i}");
            let _ = counts.admit_at(&c, 1_003);
        }
        c.response = "one too many".into();
        assert_eq!(counts.admit_at(&c, 1_003), CountCheck::Forgotten);
    }

    #[test]
    fn the_record_is_bounded_and_a_dropped_nonce_is_never_taken_again() {
        let counts = NonceCounts::new(3);
        let issuer = Nonces::new();
        let nonces: Vec<String> = (0..10).map(|i| issuer.issue_at(1_000 + i, PHONE)).collect();
        for n in &nonces {
            assert_eq!(counts.admit_at(&used(n, 1), 1_020), CountCheck::Fresh);
            assert!(counts.len() <= 3);
        }
        assert_eq!(counts.len(), 3);
        // the first nonces were dropped: their replay is not accepted
        for n in &nonces[..7] {
            assert_eq!(counts.admit_at(&used(n, 1), 1_021), CountCheck::Forgotten);
            assert_eq!(counts.admit_at(&used(n, 5), 1_021), CountCheck::Forgotten);
        }
        // the last ones are still counted
        assert_eq!(
            counts.admit_at(&used(&nonces[9], 1), 1_021),
            CountCheck::Replayed
        );
        assert_eq!(
            counts.admit_at(&used(&nonces[9], 2), 1_021),
            CountCheck::Fresh
        );
        // a nonce issued after the floor is new
        let later = issuer.issue_at(1_015, PHONE);
        assert_eq!(counts.admit_at(&used(&later, 1), 1_021), CountCheck::Fresh);
        assert_eq!(counts.len(), 3);
    }

    #[test]
    fn records_expire_with_their_nonce() {
        let counts = NonceCounts::new(100);
        let issuer = Nonces::new();
        for i in 0..50 {
            let n = issuer.issue_at(1_000 + i, PHONE);
            counts.admit_at(&used(&n, 1), 1_000 + i);
        }
        assert_eq!(counts.len(), 50);
        let fresh = issuer.issue_at(2_000, PHONE);
        counts.admit_at(&used(&fresh, 1), 2_000);
        assert_eq!(counts.len(), 1, "every older nonce is past its lifetime");
    }

    #[test]
    fn a_nonce_past_its_lifetime_is_never_taken_again() {
        let counts = NonceCounts::new(100);
        let n = Nonces::new().issue_at(1_000, PHONE);
        let end = 1_000 + NONCE_LIFETIME_SECS;
        assert_eq!(counts.admit_at(&used(&n, 1), end), CountCheck::Fresh);
        assert_eq!(counts.admit_at(&used(&n, 1), end), CountCheck::Replayed);
        // the same credentials a second later, when the record has expired with the nonce
        assert_eq!(
            counts.admit_at(&used(&n, 1), end + 1),
            CountCheck::Forgotten
        );
        assert_eq!(
            counts.admit_at(&used(&n, 2), end + 1),
            CountCheck::Forgotten
        );
    }

    fn ruri(s: &str) -> rsipstack::sip::Uri {
        rsipstack::sip::Uri::try_from(s).expect("uri")
    }

    #[test]
    fn the_digest_uri_must_name_the_request_uri() {
        let r = ruri("sip:127.0.0.1:5070");
        assert!(uri_matches("sip:127.0.0.1:5070", &r));
        assert!(!uri_matches("sip:127.0.0.1:5071", &r));
        assert!(!uri_matches("sip:127.0.0.2:5070", &r));
        assert!(!uri_matches("sips:127.0.0.1:5070", &r));
        assert!(!uri_matches("sip:bob@127.0.0.1:5070", &r));
        assert!(!uri_matches("", &r));
        assert!(!uri_matches("garbage", &r));

        let r = ruri("sip:+15550000200@Edge.Example.com;transport=tcp");
        assert!(uri_matches(
            "sip:+15550000200@edge.example.COM:5060;TRANSPORT=TCP",
            &r
        ));
        assert!(uri_matches(
            "sip:%2B15550000200@edge.example.com;transport=tcp",
            &r
        ));
        assert!(
            !uri_matches("sip:+15550000200@edge.example.com", &r),
            "transport must match when either has it"
        );
        assert!(!uri_matches(
            "sip:+15550000201@edge.example.com;transport=tcp",
            &r
        ));
        assert!(
            uri_matches("sip:+15550000200@edge.example.com;transport=tcp;foo=1", &r),
            "a parameter only one side has does not matter"
        );
        let with_foo = ruri("sip:a@h;foo=1");
        assert!(!uri_matches("sip:a@h;foo=2", &with_foo));
        assert!(uri_matches("sip:a@h;foo=1", &with_foo));
        assert!(
            !uri_matches("sip:A@h;foo=1", &with_foo),
            "user is case-sensitive"
        );
        // the default port and no port are the same target
        let plain = ruri("sip:callgrid.example");
        assert!(uri_matches("sip:callgrid.example:5060", &plain));
        assert!(!uri_matches("sip:callgrid.example:5080", &plain));
    }
}
