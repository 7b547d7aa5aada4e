//! Secrets of tenant files as callgrid keeps them (docs/SECURITY.md): never in plain text in
//! the event log, snapshots or projections.
//!
//! - An agent's SIP password becomes its digest HA1s (RFC 2617: `MD5(username:realm:password)`)
//!   for the two user names a phone may register with: `tenant.agent` (`ha1`) and `agent`
//!   (`ha1b`, as Kamailio's subscriber table keeps a second HA1). The realm is part of them:
//!   a node with another `--sip-realm` cannot check them (the password must be given again).
//! - A trunk's secret (which callgrid must present to the carrier, so it cannot be hashed) is
//!   encrypted with ChaCha20-Poly1305 under a key held outside the log (`SecretsKey`, a file).
//!   The nonce is derived from the secret (an HMAC under a key derived from the same key), so
//!   sealing the same file twice gives the same text: loading an unchanged file again is no
//!   new configuration version. Equal secrets give equal ciphertexts; nothing else is learnt.
//!
//! [`seal`] rewrites a tenant file's text that way; files without secrets are kept as given.

use std::fmt;
use std::path::Path;

use md5::{Digest, Md5};
use ring::aead;
use ring::hmac;

/// Why a secret cannot be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key file cannot be read or written.
    #[error("secrets key {path}: {source}")]
    Io {
        /// Its path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The key file does not hold a key.
    #[error("secrets key {path}: expected 64 hex digits (32 bytes)")]
    BadKey {
        /// Its path.
        path: String,
    },
    /// A trunk has a secret and there is no key to encrypt it with.
    #[error("trunks[{trunk}].password: no secrets key to encrypt it with (--secrets-key-file)")]
    NoKey {
        /// The trunk's id.
        trunk: String,
    },
    /// An encrypted secret that this key cannot open (another key, or damaged).
    #[error(
        "an encrypted trunk secret does not open with this secrets key (another key, or damaged)"
    )]
    Undecryptable,
    /// The text is not YAML the sealing understands.
    #[error("{0}")]
    Yaml(String),
}

/// The key trunk secrets are encrypted with. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct SecretsKey {
    enc: aead::LessSafeKey,
    nonce: hmac::Key,
}

impl fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretsKey(***)")
    }
}

/// Prefix of an encrypted secret: `v1.NONCE.CIPHERTEXT` (hex).
const SEALED: &str = "v1.";
const AAD: &[u8] = b"callgrid trunk secret v1";

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl SecretsKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(master: &[u8; 32]) -> SecretsKey {
        let derive = |label: &[u8]| {
            let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, master), label);
            let mut k = [0u8; 32];
            k.copy_from_slice(&tag.as_ref()[..32]);
            k
        };
        let enc = aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &derive(b"encryption"))
            .map(aead::LessSafeKey::new)
            .unwrap_or_else(|_| unreachable!("a 32-byte key fits ChaCha20-Poly1305"));
        SecretsKey {
            enc,
            nonce: hmac::Key::new(hmac::HMAC_SHA256, &derive(b"nonce")),
        }
    }

    /// Reads a key file (64 hex digits).
    pub fn read(path: &Path) -> Result<SecretsKey, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let bytes = unhex(text.trim())
            .filter(|b| b.len() == 32)
            .ok_or_else(|| SecretError::BadKey {
                path: path.display().to_string(),
            })?;
        let mut master = [0u8; 32];
        master.copy_from_slice(&bytes);
        Ok(SecretsKey::from_bytes(&master))
    }

    /// Reads the key file, making a new random key there (mode 0600) if there is none;
    /// returns the key and whether it was made.
    pub fn read_or_create(path: &Path) -> Result<(SecretsKey, bool), SecretError> {
        if path.exists() {
            return Ok((SecretsKey::read(path)?, false));
        }
        let mut master = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut master).map_err(
            |_| SecretError::Io {
                path: path.display().to_string(),
                source: std::io::Error::other("no randomness from the operating system"),
            },
        )?;
        write_private(path, &format!("{}\n", hex(&master))).map_err(|source| SecretError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok((SecretsKey::from_bytes(&master), true))
    }

    /// `secret` encrypted: `v1.NONCE.CIPHERTEXT`.
    pub fn seal(&self, secret: &str) -> String {
        let tag = hmac::sign(&self.nonce, secret.as_bytes());
        let mut n = [0u8; 12];
        n.copy_from_slice(&tag.as_ref()[..12]);
        let mut data = secret.as_bytes().to_vec();
        self.enc
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(n),
                aead::Aad::from(AAD),
                &mut data,
            )
            .unwrap_or_else(|_| unreachable!("a secret of a tenant file is far below the limit"));
        format!("{SEALED}{}.{}", hex(&n), hex(&data))
    }

    /// The secret of a `v1.NONCE.CIPHERTEXT` text.
    pub fn open(&self, sealed: &str) -> Result<String, SecretError> {
        let rest = sealed
            .strip_prefix(SEALED)
            .ok_or(SecretError::Undecryptable)?;
        let (n, c) = rest.split_once('.').ok_or(SecretError::Undecryptable)?;
        let n: [u8; 12] = unhex(n)
            .and_then(|n| n.try_into().ok())
            .ok_or(SecretError::Undecryptable)?;
        let mut data = unhex(c).ok_or(SecretError::Undecryptable)?;
        let plain = self
            .enc
            .open_in_place(
                aead::Nonce::assume_unique_for_key(n),
                aead::Aad::from(AAD),
                &mut data,
            )
            .map_err(|_| SecretError::Undecryptable)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SecretError::Undecryptable)
    }
}

/// Writes a file only its owner can read (0600), replacing it atomically.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
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

/// `MD5(username:realm:password)` in lowercase hex (RFC 2617's HA1).
pub fn ha1(username: &str, realm: &str, password: &str) -> String {
    let mut h = Md5::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    hex(&h.finalize())
}

/// Whether a YAML text holds secrets in plain text (`sip_password`, a trunk's `password`).
fn plain_secrets(doc: &serde_yaml::Value) -> bool {
    let list = |k: &str| doc.get(k).and_then(|v| v.as_sequence());
    list("agents").is_some_and(|agents| agents.iter().any(|a| a.get("sip_password").is_some()))
        || list("trunks").is_some_and(|trunks| trunks.iter().any(|t| t.get("password").is_some()))
}

/// The tenant file's text as it is kept: every agent's `sip_password` replaced by its
/// `sip_ha1` (for `realm`), every trunk's `password` by `password_enc` (encrypted with `key`).
/// A text without plain secrets is returned as it is. Call it on a file that loaded (the
/// shapes are the schema's).
pub fn seal(yaml: &str, realm: &str, key: Option<&SecretsKey>) -> Result<String, SecretError> {
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(yaml).map_err(|e| SecretError::Yaml(e.to_string()))?;
    doc.apply_merge()
        .map_err(|e| SecretError::Yaml(e.to_string()))?;
    if !plain_secrets(&doc) {
        return Ok(yaml.to_owned());
    }
    let tenant = doc
        .get("tenant")
        .and_then(|t| t.as_str())
        .unwrap_or_default()
        .to_owned();
    let key_of = |k: &str| serde_yaml::Value::String(k.to_owned());
    if let Some(agents) = doc.get_mut("agents").and_then(|v| v.as_sequence_mut()) {
        for a in agents.iter_mut() {
            let Some(m) = a.as_mapping_mut() else {
                continue;
            };
            let Some(password) = m.remove(key_of("sip_password")) else {
                continue;
            };
            let password = password.as_str().unwrap_or_default().to_owned();
            let id = m
                .get(key_of("id"))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            let mut h = serde_yaml::Mapping::new();
            h.insert(key_of("realm"), key_of(realm));
            h.insert(
                key_of("ha1"),
                key_of(&ha1(&format!("{tenant}.{id}"), realm, &password)),
            );
            h.insert(key_of("ha1b"), key_of(&ha1(&id, realm, &password)));
            m.insert(key_of("sip_ha1"), serde_yaml::Value::Mapping(h));
        }
    }
    if let Some(trunks) = doc.get_mut("trunks").and_then(|v| v.as_sequence_mut()) {
        for t in trunks.iter_mut() {
            let Some(m) = t.as_mapping_mut() else {
                continue;
            };
            let Some(password) = m.remove(key_of("password")) else {
                continue;
            };
            let id = m
                .get(key_of("id"))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            let key = key.ok_or(SecretError::NoKey { trunk: id })?;
            let sealed = key.seal(password.as_str().unwrap_or_default());
            m.insert(key_of("password_enc"), key_of(&sealed));
        }
    }
    serde_yaml::to_string(&doc).map_err(|e| SecretError::Yaml(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ha1_is_rfc_2617s() {
        // RFC 2617 §3.5: Mufasa / testrealm@host.com / Circle Of Life
        assert_eq!(
            ha1("Mufasa", "testrealm@host.com", "Circle Of Life"),
            "939e7578ed9e3c518a452acee763bce9"
        );
    }

    #[test]
    fn trunk_secrets_open_only_with_their_key_and_seal_the_same_each_time() {
        let key = SecretsKey::from_bytes(&[7; 32]);
        let sealed = key.seal("carrier secret");
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("carrier"));
        assert_eq!(key.seal("carrier secret"), sealed, "deterministic");
        assert_ne!(key.seal("another secret"), sealed);
        assert_eq!(key.open(&sealed).expect("opens"), "carrier secret");
        let other = SecretsKey::from_bytes(&[8; 32]);
        assert!(other.open(&sealed).is_err());
        let mut damaged = sealed.clone();
        damaged.replace_range(sealed.len() - 2.., "00");
        assert!(key.open(&damaged).is_err());
        assert!(key.open("v1.zz").is_err());
        assert!(key.open("").is_err());
    }

    #[test]
    fn key_files_are_made_once_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secrets.key");
        let (a, made) = SecretsKey::read_or_create(&path).expect("made");
        assert!(made);
        let (b, made) = SecretsKey::read_or_create(&path).expect("read");
        assert!(!made);
        assert_eq!(b.open(&a.seal("x")).expect("same key"), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not a key").expect("write");
        assert!(matches!(
            SecretsKey::read(&path),
            Err(SecretError::BadKey { .. })
        ));
    }

    #[test]
    fn the_demo_tenant_keeps_no_secret_in_plain_text_and_loads_again() {
        let key = SecretsKey::from_bytes(&[1; 32]);
        let demo = crate::DEMO_TENANT_YAML;
        let sealed = seal(demo, "callgrid", Some(&key)).expect("sealed");
        assert!(!sealed.contains("sip_password"), "{sealed}");
        assert!(!sealed.contains("alice-demo-secret"), "{sealed}");
        assert_eq!(seal(demo, "callgrid", Some(&key)).expect("again"), sealed);
        // a sealed file is a valid tenant file, and sealing it again changes nothing
        let file = crate::load_str("sealed.yaml", &sealed).expect("loads");
        let alice = file.agent("alice").expect("alice");
        let h = alice.sip_ha1.as_ref().expect("ha1");
        assert_eq!(h.realm, "callgrid");
        assert_eq!(h.ha1, ha1("demo.alice", "callgrid", "alice-demo-secret"));
        assert_eq!(h.ha1b, ha1("alice", "callgrid", "alice-demo-secret"));
        assert_eq!(
            seal(&sealed, "callgrid", Some(&key)).expect("resealed"),
            sealed
        );
        // a file without secrets is kept as written
        let plain = "tenant: x\n# a comment\n";
        assert_eq!(seal(plain, "callgrid", None).expect("kept"), plain);
    }
}
