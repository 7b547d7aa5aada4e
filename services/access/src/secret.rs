//! Secrets: bearer tokens and session cookies (`PREFIX_ID_SECRET`, with a public id and a
//! 256-bit secret of which only the SHA-256 is stored), CSRF tokens, and argon2id password
//! hashes.
//!
//! A token's secret is 256 random bits, so one SHA-256 is as safe to store as a slow hash and
//! costs about a microsecond per request (a memory-hard hash per API call would cost the
//! routing throughput); passwords, which people choose, get argon2id (docs/DECISIONS.md).

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};

/// Prefix of bearer tokens.
pub(crate) const TOKEN_PREFIX: &str = "cg";
/// Prefix of session cookies.
pub(crate) const SESSION_PREFIX: &str = "cs";
/// Hex digits of a credential's public id.
const ID_HEX: usize = 16;
/// Hex digits of a secret.
const SECRET_HEX: usize = 64;

/// `n` random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if let Err(e) = getrandom::fill(&mut b) {
        // no randomness means no safe credentials: refusing to go on is the only safe answer
        panic!("the operating system's random source failed: {e}");
    }
    b
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// SHA-256 of a secret.
pub(crate) fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Equality that takes the same time wherever the inputs differ.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new credential: its id, the whole string the holder keeps, and the secret's hash.
pub(crate) struct NewSecret {
    pub(crate) id: String,
    pub(crate) text: String,
    pub(crate) sha256: [u8; 32],
}

/// A new `PREFIX_ID_SECRET` credential.
pub(crate) fn new_credential(prefix: &str) -> NewSecret {
    let id = hex(&random_bytes::<{ ID_HEX / 2 }>());
    let secret = hex(&random_bytes::<{ SECRET_HEX / 2 }>());
    NewSecret {
        text: format!("{prefix}_{id}_{secret}"),
        sha256: sha256(&secret),
        id,
    }
}

/// A random CSRF token (hex).
pub(crate) fn new_csrf() -> String {
    hex(&random_bytes::<32>())
}

/// The id and secret of a `PREFIX_ID_SECRET` credential, if it has that shape.
pub(crate) fn split<'a>(text: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let rest = text.trim().strip_prefix(prefix)?.strip_prefix('_')?;
    let (id, secret) = rest.split_once('_')?;
    let hexy = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexy(id, ID_HEX) && hexy(secret, SECRET_HEX)).then_some((id, secret))
}

/// Whether `id` looks like a credential id (16 hex digits).
pub fn is_credential_id(id: &str) -> bool {
    id.len() == ID_HEX && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Longest password accepted (argon2 takes any length; this bounds the work per request).
pub const MAX_PASSWORD: usize = 1024;
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 8;

/// The argon2id PHC string of a password (default parameters: 19 MiB, 2 passes; slow on
/// purpose: call it off the async threads).
pub(crate) fn hash_password(password: &str) -> Result<String, String> {
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches a PHC string (slow on purpose, as [`hash_password`]).
pub(crate) fn verify_password(password: &str, phc: &str) -> bool {
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_split_into_id_and_secret() {
        let c = new_credential(TOKEN_PREFIX);
        let (id, secret) = split(&c.text, TOKEN_PREFIX).expect("splits");
        assert_eq!(id, c.id);
        assert!(same(&sha256(secret), &c.sha256));
        assert!(split(&c.text, SESSION_PREFIX).is_none());
        assert!(split("cg_abc_def", TOKEN_PREFIX).is_none());
        assert!(split("", TOKEN_PREFIX).is_none());
        let other = new_credential(TOKEN_PREFIX);
        assert_ne!(other.text, c.text);
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let phc = hash_password("correct horse").expect("hashes");
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("correct horsf", &phc));
        assert!(!verify_password("correct horse", "not a phc string"));
    }
}
