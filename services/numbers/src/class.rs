//! Destination classes and which of them a tenant's agents may dial.

use std::collections::BTreeSet;
use std::fmt;

use crate::dialled::Dialled;
use crate::error::NumberError;

/// What kind of destination a dialled number is. The serde names (snake_case) are those of
/// tenant configuration and stay stable.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DestinationClass {
    /// An extension of the tenant.
    Internal,
    /// A fixed line (or any other non-mobile public number) in the tenant's country.
    National,
    /// A mobile number in the tenant's country.
    Mobile,
    /// A toll-free number in the tenant's country.
    TollFree,
    /// A premium-rate number in the tenant's country.
    Premium,
    /// An emergency number of the tenant's country. Never refused.
    Emergency,
    /// Any number in another country.
    International,
}

impl DestinationClass {
    /// Every class, in order.
    pub const ALL: [DestinationClass; 7] = [
        DestinationClass::Internal,
        DestinationClass::National,
        DestinationClass::Mobile,
        DestinationClass::TollFree,
        DestinationClass::Premium,
        DestinationClass::Emergency,
        DestinationClass::International,
    ];

    /// The configuration name, e.g. `toll_free`.
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationClass::Internal => "internal",
            DestinationClass::National => "national",
            DestinationClass::Mobile => "mobile",
            DestinationClass::TollFree => "toll_free",
            DestinationClass::Premium => "premium",
            DestinationClass::Emergency => "emergency",
            DestinationClass::International => "international",
        }
    }
}

impl fmt::Display for DestinationClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which destination classes a tenant's agents may dial, and where emergency calls go.
///
/// Emergency calls are never refused, whatever `allow` says: [`ClassPolicy::check`]
/// answers [`Permit::Emergency`] with the configured trunk.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassPolicy {
    /// Classes agents may dial. Default: internal, national, mobile, toll-free (premium
    /// and international are the toll-fraud classes: a tenant opts in).
    #[serde(default = "default_allow")]
    pub allow: BTreeSet<DestinationClass>,
    /// The trunk emergency calls go to. `None`: the trunks of the caller number chosen as
    /// for any call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency_trunk: Option<String>,
}

fn default_allow() -> BTreeSet<DestinationClass> {
    [
        DestinationClass::Internal,
        DestinationClass::National,
        DestinationClass::Mobile,
        DestinationClass::TollFree,
    ]
    .into()
}

impl Default for ClassPolicy {
    fn default() -> Self {
        Self {
            allow: default_allow(),
            emergency_trunk: None,
        }
    }
}

/// A destination the policy lets through, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit<'p> {
    /// An allowed class: choose the caller number and trunks as usual.
    Allowed,
    /// An emergency call: always placed, on this trunk when one is configured.
    Emergency {
        /// The policy's emergency trunk.
        trunk: Option<&'p str>,
    },
}

impl ClassPolicy {
    /// A policy allowing these classes, emergency calls on `emergency_trunk`.
    pub fn new(
        allow: impl IntoIterator<Item = DestinationClass>,
        emergency_trunk: Option<String>,
    ) -> Self {
        Self {
            allow: allow.into_iter().collect(),
            emergency_trunk,
        }
    }

    /// Whether an agent may dial `dialled`, of class `class` (from
    /// [`crate::Normalizer::classify`]). Emergency always passes; a class not allowed is
    /// [`NumberError::ClassRefused`] naming the class and the number.
    pub fn check(
        &self,
        dialled: &Dialled,
        class: DestinationClass,
    ) -> Result<Permit<'_>, NumberError> {
        if class == DestinationClass::Emergency {
            return Ok(Permit::Emergency {
                trunk: self.emergency_trunk.as_deref(),
            });
        }
        if self.allow.contains(&class) {
            Ok(Permit::Allowed)
        } else {
            Err(NumberError::ClassRefused {
                class,
                number: dialled.dial_string().to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Normalizer;

    fn check<'p>(policy: &'p ClassPolicy, raw: &str) -> Result<Permit<'p>, String> {
        let n = Normalizer::new("VN").unwrap();
        let d = n.dialled(raw).unwrap();
        policy.check(&d, n.classify(&d)).map_err(|e| e.to_string())
    }

    #[test]
    fn the_default_policy_refuses_premium_and_international_by_name() {
        let p = ClassPolicy::default();
        for raw in ["10001", "024 3825 1234", "0912345678", "18001234"] {
            assert_eq!(check(&p, raw), Ok(Permit::Allowed), "{raw}");
        }
        assert_eq!(
            check(&p, "1900 1234"),
            Err("number 19001234 is premium, which this tenant's agents may not dial".into())
        );
        assert_eq!(
            check(&p, "+1 650 253 0000"),
            Err(
                "number +16502530000 is international, which this tenant's agents may not dial"
                    .into()
            )
        );
    }

    #[test]
    fn emergency_is_never_refused_and_goes_to_its_trunk() {
        let none_allowed = ClassPolicy::new([], Some("vnpt-emergency".into()));
        assert_eq!(
            check(&none_allowed, "113"),
            Ok(Permit::Emergency {
                trunk: Some("vnpt-emergency")
            })
        );
        assert!(check(&none_allowed, "0912345678").is_err());
        assert_eq!(
            check(&ClassPolicy::default(), "115"),
            Ok(Permit::Emergency { trunk: None })
        );
    }

    #[test]
    fn a_tenant_may_allow_any_class() {
        let p = ClassPolicy::new(DestinationClass::ALL, None);
        assert_eq!(check(&p, "19001234"), Ok(Permit::Allowed));
        assert_eq!(check(&p, "+44 20 7946 0018"), Ok(Permit::Allowed));
        let only_internal = ClassPolicy::new([DestinationClass::Internal], None);
        assert_eq!(
            check(&only_internal, "0912345678"),
            Err("number +84912345678 is mobile, which this tenant's agents may not dial".into())
        );
    }

    #[test]
    fn class_names_are_snake_case_in_configuration() {
        for class in DestinationClass::ALL {
            let json = serde_json::to_string(&class).unwrap();
            assert_eq!(json, format!("\"{}\"", class.as_str()));
            assert_eq!(
                serde_json::from_str::<DestinationClass>(&json).unwrap(),
                class
            );
        }
        let p: ClassPolicy =
            serde_json::from_str(r#"{"allow": ["mobile", "toll_free"], "emergency_trunk": "t1"}"#)
                .unwrap();
        assert_eq!(
            p,
            ClassPolicy::new(
                [DestinationClass::Mobile, DestinationClass::TollFree],
                Some("t1".into())
            )
        );
        let default: ClassPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(default, ClassPolicy::default());
        let err =
            serde_json::from_str::<ClassPolicy>(r#"{"allow": ["premium_rate"]}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `premium_rate`"),
            "{err}"
        );
    }
}
