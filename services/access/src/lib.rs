//! Access control of callgrid (docs/SECURITY.md): who may call which API.
//!
//! - [`role`]: the roles, the permissions they grant, and the caller ([`Principal`]);
//! - [`Directory`]: the tokens, users and sessions, folded from the access records (pure);
//! - [`Access`]: the credentials of a node, kept in the access topic of the event log and
//!   followed as it grows; issuing and revoking tokens, users, sign-in and sign-out;
//! - [`gate`]: the one authentication layer in front of every gRPC and HTTP server.
//!
//! **Invariants**: a secret is never stored or logged, only its hash (SHA-256 for random
//! tokens, argon2id for passwords); every change of a credential is a record naming who made
//! it; a request the gate refuses runs nothing.

mod directory;
#[doc(hidden)]
pub mod fuzz;
pub mod gate;
pub mod role;
mod secret;
mod store;

pub use directory::{Directory, SessionEntry, TokenEntry, UserEntry};
pub use gate::{AllowList, Gate, Policy, Rule, Verifier};
pub use role::{Denied, Permission, Principal, Role};
pub use secret::{is_credential_id, MAX_PASSWORD, MIN_PASSWORD};
pub use store::{
    check_name, now_ms, write_secret_file, Access, AccessError, AccessOptions, IssuedToken,
    SignedIn, TokenSpec, ACCESS_TOPIC, MAX_NAME,
};
