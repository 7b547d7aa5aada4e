//! HTTP digest authentication for SIP (RFC 3261 §22, RFC 2617 with MD5 and `qop=auth`).
//!
//! Written here rather than taken from rsipstack: its server-side helper mishandles nonce
//! counts of 10 and more (docs/research/sip-edge.md). Nonces are stateless: a timestamp and a
//! keyed hash of it, so any edge process holding the same key can check them, and a stale
//! nonce is answered with a fresh challenge marked `stale=true` (the phone retries silently).

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

/// The response a client with `password` must send for `method` (RFC 2617 §3.2.2.1).
pub fn expected_response(c: &Credentials, method: &str, password: &str) -> String {
    let ha1 = md5_hex(&[&c.username, &c.realm, password]);
    let ha2 = md5_hex(&[method, &c.uri]);
    match c.qop.as_deref() {
        Some(qop) => md5_hex(&[
            &ha1,
            &c.nonce,
            c.nc.as_deref().unwrap_or(""),
            c.cnonce.as_deref().unwrap_or(""),
            qop,
            &ha2,
        ]),
        None => md5_hex(&[&ha1, &c.nonce, &ha2]),
    }
}

/// Whether the credentials prove knowledge of `password` (compared in constant time).
pub fn verify(c: &Credentials, method: &str, password: &str) -> bool {
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
    let want = expected_response(c, method, password);
    let got = c.response.to_ascii_lowercase();
    want.len() == got.len()
        && want
            .bytes()
            .zip(got.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Issues and checks nonces.
#[derive(Clone)]
pub struct Nonces {
    key: [u8; 16],
}

/// What a nonce check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Issued by us and fresh.
    Fresh,
    /// Issued by us but too old: challenge again with `stale=true`.
    Stale,
    /// Not one of ours.
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

    fn mac(&self, stamp: &str) -> String {
        let mut h = Md5::new();
        h.update(self.key);
        h.update(stamp.as_bytes());
        h.update(self.key);
        hex(&h.finalize())
    }

    /// A new nonce.
    pub fn issue(&self) -> String {
        self.issue_at(Self::now())
    }

    fn issue_at(&self, secs: u64) -> String {
        let stamp = format!("{secs:x}");
        let mac = self.mac(&stamp);
        format!("{stamp}.{mac}")
    }

    /// Checks a nonce we may have issued.
    pub fn check(&self, nonce: &str) -> NonceCheck {
        self.check_at(nonce, Self::now())
    }

    fn check_at(&self, nonce: &str, now: u64) -> NonceCheck {
        let Some((stamp, mac)) = nonce.split_once('.') else {
            return NonceCheck::Forged;
        };
        if self.mac(stamp) != mac {
            return NonceCheck::Forged;
        }
        match u64::from_str_radix(stamp, 16) {
            Ok(t) if now.saturating_sub(t) <= NONCE_LIFETIME_SECS && t <= now + 5 => {
                NonceCheck::Fresh
            }
            Ok(_) => NonceCheck::Stale,
            Err(_) => NonceCheck::Forged,
        }
    }

    /// The value of a `WWW-Authenticate` / `Proxy-Authenticate` header.
    pub fn challenge(&self, realm: &str, stale: bool) -> String {
        format!(
            "Digest realm=\"{realm}\", nonce=\"{}\", algorithm=MD5, qop=\"auth\"{}",
            self.issue(),
            if stale { ", stale=true" } else { "" }
        )
    }
}

impl Default for Nonces {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn nonces_are_fresh_then_stale_and_forgeries_are_caught() {
        let n = Nonces::new();
        let nonce = n.issue_at(1_000);
        assert_eq!(n.check_at(&nonce, 1_010), NonceCheck::Fresh);
        assert_eq!(
            n.check_at(&nonce, 1_000 + NONCE_LIFETIME_SECS + 1),
            NonceCheck::Stale
        );
        assert_eq!(n.check_at("3e8.0000", 1_010), NonceCheck::Forged);
        assert_eq!(Nonces::new().check_at(&nonce, 1_010), NonceCheck::Forged);
        assert_eq!(n.check_at("nodot", 1_010), NonceCheck::Forged);
    }
}
