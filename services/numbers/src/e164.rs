//! A public telephone number in E.164 form.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::NumberError;

/// A public telephone number in E.164 form: `+`, a country code and the national
/// significant number, digits only (`+84912345678`). At most 15 digits, the first not 0.
///
/// Made by [`crate::Normalizer::normalize`] (which checks the number is valid in its
/// country) or, for text that is already canonical (a number read back from the log or a
/// projection), by [`str::parse`], which checks the form only. Cheap to clone, ordered,
/// hashable; serialised as its text.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(Arc<str>);

impl E164 {
    /// The number as text, with its `+`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits after the `+`.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

/// What keeps `text` from being canonical E.164, if anything.
fn canonical_problem(text: &str) -> Option<&'static str> {
    let Some(digits) = text.strip_prefix('+') else {
        return Some("E.164 starts with +");
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some("E.164 is + and digits only");
    }
    if digits.starts_with('0') {
        return Some("no country code starts with 0");
    }
    if digits.len() > 15 {
        return Some("E.164 has at most 15 digits");
    }
    None
}

impl FromStr for E164 {
    type Err = NumberError;

    /// Accepts canonical E.164 text only (`+84912345678`); anything else, including a
    /// number with spaces or in national form, is an error: normalise those with
    /// [`crate::Normalizer::normalize`].
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match canonical_problem(text) {
            None => Ok(Self(Arc::from(text))),
            Some(reason) => Err(NumberError::invalid(text, reason)),
        }
    }
}

impl TryFrom<String> for E164 {
    type Error = NumberError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<E164> for String {
    fn from(number: E164) -> Self {
        number.0.to_string()
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl AsRef<str> for E164 {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_text_parses_and_prints_as_written() {
        let n: E164 = "+84912345678".parse().unwrap();
        assert_eq!(n.as_str(), "+84912345678");
        assert_eq!(n.digits(), "84912345678");
        assert_eq!(n.to_string(), "+84912345678");
        assert_eq!(format!("{n:?}"), "\"+84912345678\"");
    }

    #[test]
    fn anything_but_canonical_text_is_refused_with_the_number_named() {
        for (text, reason) in [
            ("84912345678", "E.164 starts with +"),
            ("+84 912345678", "E.164 is + and digits only"),
            ("+", "E.164 is + and digits only"),
            ("+0912345678", "no country code starts with 0"),
            ("+8491234567890123", "E.164 has at most 15 digits"),
        ] {
            let err = text.parse::<E164>().unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid number {text:?}: {reason}"),
                "{text}"
            );
        }
    }

    #[test]
    fn serde_round_trips_and_checks_the_form() {
        let n: E164 = "+84912345678".parse().unwrap();
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, "\"+84912345678\"");
        assert_eq!(serde_json::from_str::<E164>(&json).unwrap(), n);
        let err = serde_json::from_str::<E164>("\"0912345678\"").unwrap_err();
        assert!(err.to_string().contains("E.164 starts with +"), "{err}");
    }

    #[test]
    fn order_is_textual() {
        let a: E164 = "+84312345678".parse().unwrap();
        let b: E164 = "+84912345678".parse().unwrap();
        assert!(a < b);
    }
}
