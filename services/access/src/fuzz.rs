//! The fuzz target of the access topic (docs/DECISIONS.md "Fuzzing"): what every node does
//! with each record of `callgrid.access.v1`. Run by libFuzzer
//! (`fuzz/fuzz_targets/access_record.rs`, `scripts/fuzz.sh access_record`) and smoked by the
//! test below.

use callgrid_proto::events::v1 as pb;
use pb::access_record::Change;
use prost::Message;

use crate::directory::Directory;
use crate::secret;

/// A token the fuzz input cannot know: `cg_<ID>_<SECRET>`.
const ID: &str = "00000000000000f0";
const SECRET: &str = "5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2";

/// Access records, as a sequence of length-delimited record values (protobuf's framing),
/// folded into a directory that holds one known token first. Every record that decodes
/// re-encodes to itself; revocations, sign-outs and removals take effect; the known token
/// authenticates exactly while the directory still holds it with its hash; credentials made
/// of the input itself never authenticate.
pub fn access_records(data: &[u8]) {
    let mut dir = Directory::default();
    dir.apply(&pb::AccessRecord {
        time_ms: 1,
        caused_by: "fuzz".into(),
        change: Some(Change::TokenIssued(pb::TokenIssued {
            id: ID.into(),
            secret_sha256: secret::sha256(SECRET).to_vec(),
            role: "supervisor".into(),
            tenant: "demo".into(),
            ..pb::TokenIssued::default()
        })),
    });
    let known = format!("cg_{ID}_{SECRET}");
    let now = 1_000;
    let mut buf = data;
    let mut replaced = false;
    while !buf.is_empty() {
        let Ok(r) = pb::AccessRecord::decode_length_delimited(&mut buf) else {
            break;
        };
        let again = pb::AccessRecord::decode(r.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(again, r, "a record re-encoded decodes differently");
        dir.apply(&r);
        match &r.change {
            Some(Change::TokenIssued(t)) => replaced |= t.id == ID,
            Some(Change::TokenRevoked(t)) => {
                assert!(dir.token(&t.id).is_none(), "a revoked token is kept");
            }
            Some(Change::UserRemoved(u)) => {
                assert!(
                    dir.user(&u.tenant, &u.name).is_none(),
                    "a removed user is kept"
                );
            }
            Some(Change::SessionClosed(s)) => {
                assert!(
                    !dir.session_open(&s.id, i64::MIN),
                    "a closed session is open"
                );
                assert!(
                    dir.tokens(None)
                        .iter()
                        .all(|t| t.session.as_deref() != Some(s.id.as_str())),
                    "a token of a closed session is kept"
                );
            }
            _ => {}
        }
    }
    match dir.authenticate_token(&known, now) {
        Ok(p) => assert!(
            dir.token(ID).is_some_and(|t| t.role == p.role),
            "a token authenticated that the directory does not hold"
        ),
        Err(_) => assert!(
            replaced || dir.token(ID).is_none_or(|t| t.expires_ms.is_some()),
            "the known token was refused while held"
        ),
    }
    // the input's own text as credentials: the fuzzer knows no secret's pre-image
    let text = String::from_utf8_lossy(data);
    for candidate in [
        text.as_ref(),
        text.trim_start_matches(|c: char| !c.is_ascii_alphabetic()),
    ] {
        assert!(dir.authenticate_token(candidate, now).is_err());
        assert!(dir
            .authenticate_session(candidate, Some(Some(candidate)), now)
            .is_err());
        assert!(dir.authenticate_session(candidate, None, now).is_err());
    }
}

/// A credential a fuzz fixture makes for itself: what the client sends, and the access
/// record that stores its hash (append it to the access topic before `Access::open`).
pub struct Known {
    /// The bearer token or session cookie.
    pub text: String,
    /// The credential's id.
    pub id: String,
    /// A session's CSRF token (empty for a token).
    pub csrf: String,
    /// The record.
    pub record: pb::AccessRecord,
}

fn known_secret(n: u32) -> (String, String) {
    let id = format!("{:016x}", 0xf0_0000 + u64::from(n));
    let secret = secret::hex(&secret::sha256(&format!("fuzz-secret-{n}")));
    (id, secret)
}

/// Token number `n` with `role`, `tenant` and `agent` (empty: none).
pub fn known_token(n: u32, role: &str, tenant: &str, agent: &str) -> Known {
    let (id, s) = known_secret(n);
    Known {
        text: format!("{}_{id}_{s}", secret::TOKEN_PREFIX),
        csrf: String::new(),
        record: pb::AccessRecord {
            time_ms: 1,
            caused_by: "fuzz".into(),
            change: Some(Change::TokenIssued(pb::TokenIssued {
                id: id.clone(),
                secret_sha256: secret::sha256(&s).to_vec(),
                role: role.into(),
                tenant: tenant.into(),
                agent: agent.into(),
                ..pb::TokenIssued::default()
            })),
        },
        id,
    }
}

/// Session number `n` of `user` of `tenant`, open until `expires_ms`.
pub fn known_session(n: u32, tenant: &str, user: &str, expires_ms: i64) -> Known {
    let (id, s) = known_secret(n);
    let csrf = secret::hex(&secret::sha256(&format!("fuzz-csrf-{n}")));
    Known {
        text: format!("{}_{id}_{s}", secret::SESSION_PREFIX),
        record: pb::AccessRecord {
            time_ms: 1,
            caused_by: "fuzz".into(),
            change: Some(Change::SessionOpened(pb::SessionOpened {
                id: id.clone(),
                secret_sha256: secret::sha256(&s).to_vec(),
                csrf_sha256: secret::sha256(&csrf).to_vec(),
                tenant: tenant.into(),
                user: user.into(),
                expires_ms,
            })),
        },
        csrf,
        id,
    }
}

/// A user whose password hash verifies nothing (its sessions are made with
/// [`known_session`]).
pub fn known_user(tenant: &str, name: &str, role: &str) -> pb::AccessRecord {
    pb::AccessRecord {
        time_ms: 1,
        caused_by: "fuzz".into(),
        change: Some(Change::UserSaved(pb::UserSaved {
            tenant: tenant.into(),
            name: name.into(),
            role: role.into(),
            password_phc: "$argon2id$v=19$m=19456,t=2,p=1$bm90LWEtc2FsdA$bm90LWEtaGFzaA".into(),
            ..pb::UserSaved::default()
        })),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzz_smoke_access_record() {
        let r = callgrid_fuzz_smoke::run("access_record", 20_000, 8_192, super::access_records);
        assert!(r.seeds > 0);
    }
}
