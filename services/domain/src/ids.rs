//! Identifiers. Cheap to clone (`Arc<str>` inside), ordered, hashable.

use std::fmt;
use std::sync::Arc;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps a string as this id.
            pub fn new(s: impl AsRef<str>) -> Self {
                Self(Arc::from(s.as_ref()))
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", &*self.0)
            }
        }
        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::new(s)
            }
        }
        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Arc::from(s))
            }
        }
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A tenant (an enterprise on the platform): the unit of sharding and isolation.
    TenantId
);
id_type!(
    /// An agent of a tenant.
    AgentId
);
id_type!(
    /// A queue of a tenant (3-digit 2xx numbering by default).
    QueueId
);
id_type!(
    /// A call, named by the SIP edge that owns its dialog.
    CallId
);
id_type!(
    /// A ring-all group (4 digits).
    GroupId
);
id_type!(
    /// A one-level IVR menu (1xx).
    MenuId
);
id_type!(
    /// A not-ready reason code defined by the tenant (break, lunch, ...).
    ReasonCode
);
id_type!(
    /// A SIP device (contact) an agent's phone registered.
    DeviceId
);

/// Time in milliseconds since the Unix epoch (or since the start of a simulation).
/// The domain never reads a clock: every command carries `now`.
pub type TimeMs = u64;
/// A duration in milliseconds.
pub type DurationMs = u64;
