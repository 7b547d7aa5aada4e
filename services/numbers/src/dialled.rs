//! From what someone wrote or dialled to a number callgrid can compare and route: public
//! numbers to E.164, service numbers and extensions kept as dialled.

use std::fmt;
use std::ops::RangeInclusive;

use phonenumber::country;
use phonenumber::metadata::DATABASE;
use phonenumber::{Mode, PhoneNumber, Type};

use crate::class::DestinationClass;
use crate::e164::E164;
use crate::error::NumberError;

/// Characters that may separate digits in a written number; they are dropped.
const SEPARATORS: &[char] = &[' ', '-', '.', '(', ')', '/', '\u{a0}'];

/// Vietnam's emergency numbers: 112 search and rescue, 113 police, 114 fire, 115 ambulance.
const VN_EMERGENCY: &[&str] = &["112", "113", "114", "115"];
/// Emergency numbers of a region callgrid has no table for: the two every GSM handset
/// treats as emergency numbers (3GPP TS 22.101).
const OTHER_EMERGENCY: &[&str] = &["112", "911"];

/// The 2018 renumbering of Vietnamese mobile numbers: the old 3-digit prefix of the
/// national significant number (after the 0 or +84) and the 2 digits that replaced it, with
/// the 7 digits after it kept. Complete (every old 01xx prefix that was in use); the old
/// prefixes were withdrawn, never given out again.
const VN_LEGACY_MOBILE: &[(&str, &str)] = &[
    // Viettel
    ("162", "32"),
    ("163", "33"),
    ("164", "34"),
    ("165", "35"),
    ("166", "36"),
    ("167", "37"),
    ("168", "38"),
    ("169", "39"),
    // Mobifone
    ("120", "70"),
    ("121", "79"),
    ("122", "77"),
    ("126", "76"),
    ("128", "78"),
    // Vinaphone
    ("123", "83"),
    ("124", "84"),
    ("125", "85"),
    ("127", "81"),
    ("129", "82"),
    // Vietnamobile
    ("186", "56"),
    ("188", "58"),
    // Gmobile
    ("199", "59"),
];

/// What the digits that make an internal extension look like: how many digits, all of
/// them digits, no `+`. Default 5 or 6 digits (R1's extensions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InternalRule {
    digits: RangeInclusive<usize>,
}

impl InternalRule {
    /// Shortest and longest internal numbers callgrid accepts as a rule.
    pub const LIMITS: RangeInclusive<usize> = 2..=7;

    /// Internal numbers of these lengths (within [`Self::LIMITS`]: 8 digits and more are
    /// national numbers and service numbers).
    pub fn new(digits: RangeInclusive<usize>) -> Result<Self, NumberError> {
        let (lo, hi) = (*digits.start(), *digits.end());
        if lo > hi || lo < *Self::LIMITS.start() || hi > *Self::LIMITS.end() {
            return Err(NumberError::NumbersConfig {
                field: "internal_digits".to_owned(),
                reason: format!(
                    "{lo}..={hi} is not a range within {}..={}",
                    Self::LIMITS.start(),
                    Self::LIMITS.end()
                ),
            });
        }
        Ok(Self { digits })
    }

    /// R1's extensions: 5 or 6 digits.
    pub fn extensions() -> Self {
        Self { digits: 5..=6 }
    }

    /// The lengths an internal number may have.
    pub fn digits(&self) -> RangeInclusive<usize> {
        self.digits.clone()
    }

    /// Whether `digits` (digits only, no separators) is an internal number by this rule.
    pub fn matches(&self, digits: &str) -> bool {
        self.digits.contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    }
}

impl Default for InternalRule {
    fn default() -> Self {
        Self::extensions()
    }
}

/// A national service number: one dialled as is in its country, never in E.164.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    /// An emergency number (Vietnam: 112, 113, 114, 115).
    Emergency,
    /// Free to the caller (Vietnam: 1800 and 4 or 6 digits).
    TollFree,
    /// Charged at a premium (Vietnam: 1900 and 4 or 6 digits).
    Premium,
}

/// What a dialled string is, once understood.
///
/// Public numbers become E.164 so that every way of writing one compares equal (blocklist,
/// caller identification, carrier by prefix). Service numbers and internal extensions are
/// not E.164 numbers: they keep their digits, so nothing sends `+84113` to a trunk or turns
/// an extension into a foreign number.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dialled {
    /// A number of the public numbering plan.
    Public(E164),
    /// A service number of the default region's country, dialled as is.
    Service {
        /// The digits as dialled nationally (`113`, `19001234`).
        digits: String,
        /// Which service.
        kind: ServiceKind,
        /// The country it belongs to (84 for Vietnam).
        country_code: u16,
    },
    /// An internal number of the tenant (an extension, by the [`InternalRule`]).
    Internal(String),
}

impl Dialled {
    /// What is dialled towards a trunk or an extension: E.164 for a public number, the
    /// digits otherwise.
    pub fn dial_string(&self) -> &str {
        match self {
            Dialled::Public(n) => n.as_str(),
            Dialled::Service { digits, .. } | Dialled::Internal(digits) => digits,
        }
    }

    /// The number in international form for comparisons (blocklists): E.164 for a public
    /// number, `+`, the country code and the digits for a toll-free or premium service
    /// number (`+8419001234`), nothing for an emergency number or an extension.
    pub fn international_form(&self) -> Option<String> {
        match self {
            Dialled::Public(n) => Some(n.as_str().to_owned()),
            Dialled::Service {
                kind: ServiceKind::Emergency,
                ..
            }
            | Dialled::Internal(_) => None,
            Dialled::Service {
                digits,
                country_code,
                ..
            } => Some(format!("+{country_code}{digits}")),
        }
    }
}

impl fmt::Display for Dialled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dial_string())
    }
}

/// Normalises numbers for one tenant: its default region (how national numbers are read)
/// and its internal numbering. Holds no state beyond that; cheap to clone. Two normalisers
/// are equal when they read every number alike (same region, same internal rule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalizer {
    region: country::Id,
    country_code: u16,
    internal: InternalRule,
}

impl Normalizer {
    /// A normaliser reading national numbers as in `default_region` (an ISO 3166 code such
    /// as `"VN"`, any case), with the default [`InternalRule`].
    pub fn new(default_region: &str) -> Result<Self, NumberError> {
        let unknown = || NumberError::UnknownRegion {
            region: default_region.to_owned(),
        };
        let region: country::Id = default_region
            .to_ascii_uppercase()
            .parse()
            .map_err(|_| unknown())?;
        // an id the enum knows may still lack metadata; phonenumber would panic on it
        let meta = DATABASE.by_id(region.as_ref()).ok_or_else(unknown)?;
        Ok(Self {
            region,
            country_code: meta.country_code(),
            internal: InternalRule::default(),
        })
    }

    /// The same normaliser with another internal numbering rule.
    pub fn with_internal_rule(mut self, rule: InternalRule) -> Self {
        self.internal = rule;
        self
    }

    /// The default region, e.g. `"VN"`.
    pub fn region(&self) -> &str {
        self.region.as_ref()
    }

    /// The default region's country code, e.g. 84.
    pub fn country_code(&self) -> u16 {
        self.country_code
    }

    /// The internal numbering rule.
    pub fn internal_rule(&self) -> &InternalRule {
        &self.internal
    }

    /// The default region's emergency numbers.
    pub fn emergency_numbers(&self) -> &'static [&'static str] {
        if self.is_vn() {
            VN_EMERGENCY
        } else {
            OTHER_EMERGENCY
        }
    }

    fn is_vn(&self) -> bool {
        self.region == country::Id::VN
    }

    /// A public number in E.164: `0912345678`, `84912345678`, `+84 91 234 5678`,
    /// `+84-91-234-5678` and `(091) 234 5678` all give `+84912345678` in Vietnam. Anything
    /// that is not a valid public number (a service number, an extension, a typo) is
    /// [`NumberError::Invalid`] naming it.
    pub fn normalize(&self, raw: &str) -> Result<E164, NumberError> {
        match self.dialled(raw)? {
            Dialled::Public(n) => Ok(n),
            Dialled::Service { kind, .. } => Err(NumberError::invalid(
                raw,
                format!(
                    "a {} service number, not a public number",
                    service_name(kind)
                ),
            )),
            Dialled::Internal(_) => Err(NumberError::invalid(
                raw,
                "an internal extension, not a public number",
            )),
        }
    }

    /// What a dialled (or written) string is. In this order: an emergency number of the
    /// region, a service number of the region (Vietnam: 1800/1900 with 4 or 6 more digits,
    /// also when written with +84), an internal number by the [`InternalRule`], else a
    /// public number, which must be valid in its country (libphonenumber's metadata).
    /// Separators (spaces, `-`, `.`, `/`, brackets) are ignored; letters, `*`, `#` and a
    /// `+` anywhere but first are errors.
    pub fn dialled(&self, raw: &str) -> Result<Dialled, NumberError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(NumberError::invalid(raw, "empty"));
        }
        let (plus, rest) = match text.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let mut digits = String::with_capacity(rest.len());
        for c in rest.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
            } else if !SEPARATORS.contains(&c) {
                return Err(NumberError::invalid(
                    raw,
                    format!("unexpected character {c:?}"),
                ));
            }
        }
        if digits.is_empty() {
            return Err(NumberError::invalid(raw, "no digits"));
        }
        if !plus {
            if self.emergency_numbers().contains(&digits.as_str()) {
                return Ok(self.service(digits, ServiceKind::Emergency));
            }
            if let Some(kind) = self.service_kind(&digits) {
                return Ok(self.service(digits, kind));
            }
            if self.internal.matches(&digits) {
                return Ok(Dialled::Internal(digits));
            }
        }
        let candidate = match self.legacy_vn_mobile(plus, &digits) {
            Some(renumbered) => renumbered,
            None if plus => format!("+{digits}"),
            None => digits.clone(),
        };
        let number = phonenumber::parse(Some(self.region), &candidate)
            .map_err(|e| NumberError::invalid(raw, self.parse_reason(&e, plus, &digits)))?;
        if !number.is_valid() {
            return Err(NumberError::invalid(
                raw,
                self.invalid_reason(&number, plus, &digits),
            ));
        }
        let code = number.code().value();
        let national = number.national().to_string();
        if code == self.country_code {
            if let Some(kind) = self.service_kind(&national) {
                return Ok(self.service(national, kind));
            }
        }
        let e164 = number.format().mode(Mode::E164).to_string();
        e164.parse::<E164>()
            .map(Dialled::Public)
            .map_err(|_| NumberError::invalid(raw, "has no E.164 form"))
    }

    /// The destination class of a dialled number, for this tenant's region.
    ///
    /// Public numbers of another country are [`DestinationClass::International`] whatever
    /// their type. In the region's country: mobile numbers [`DestinationClass::Mobile`],
    /// toll-free and premium as such, every other type (fixed lines, "fixed line or
    /// mobile" where the plan cannot tell, VoIP, UAN, shared cost, personal) and numbers
    /// the metadata cannot type [`DestinationClass::National`].
    pub fn classify(&self, dialled: &Dialled) -> DestinationClass {
        match dialled {
            Dialled::Internal(_) => DestinationClass::Internal,
            Dialled::Service { kind, .. } => match kind {
                ServiceKind::Emergency => DestinationClass::Emergency,
                ServiceKind::TollFree => DestinationClass::TollFree,
                ServiceKind::Premium => DestinationClass::Premium,
            },
            Dialled::Public(n) => self.classify_public(n),
        }
    }

    fn classify_public(&self, n: &E164) -> DestinationClass {
        // country codes are a prefix code: the digits start with exactly one of them
        if !n.digits().starts_with(&self.country_code.to_string()) {
            return DestinationClass::International;
        }
        let Ok(number) = phonenumber::parse(None, n.as_str()) else {
            return DestinationClass::National;
        };
        match number.number_type(&DATABASE) {
            Type::Mobile => DestinationClass::Mobile,
            Type::TollFree => DestinationClass::TollFree,
            Type::PremiumRate => DestinationClass::Premium,
            Type::Emergency => DestinationClass::Emergency,
            _ => DestinationClass::National,
        }
    }

    fn service(&self, digits: String, kind: ServiceKind) -> Dialled {
        Dialled::Service {
            digits,
            kind,
            country_code: self.country_code,
        }
    }

    /// The kind of a national service number (national digits, no prefix), if it is one.
    fn service_kind(&self, digits: &str) -> Option<ServiceKind> {
        if !self.is_vn() || !(digits.len() == 8 || digits.len() == 10) {
            return None;
        }
        if digits.starts_with("1800") {
            Some(ServiceKind::TollFree)
        } else if digits.starts_with("1900") {
            Some(ServiceKind::Premium)
        } else {
            None
        }
    }

    /// An old 11-digit Vietnamese mobile number (`0168 xxx xxxx`, `+84 168 xxx xxxx`)
    /// rewritten to its number since 2018 (`+8438xxxxxxx`), as text for the parser.
    fn legacy_vn_mobile(&self, plus: bool, digits: &str) -> Option<String> {
        let nsn = if plus {
            // +84 0168 ... is written too: the national prefix kept after the country code
            let nsn = digits.strip_prefix("84")?;
            nsn.strip_prefix('0')
                .filter(|d| d.len() == 10)
                .unwrap_or(nsn)
        } else if self.is_vn() {
            // national 0..., international without + (84...), or with the IDD (0084...)
            digits
                .strip_prefix("0084")
                .or_else(|| digits.strip_prefix("84").filter(|d| d.len() == 10))
                .or_else(|| digits.strip_prefix('0'))?
        } else {
            return None;
        };
        if nsn.len() != 10 {
            return None;
        }
        let (old, rest) = nsn.split_at(3);
        VN_LEGACY_MOBILE
            .iter()
            .find(|(from, _)| *from == old)
            .map(|(_, to)| format!("+84{to}{rest}"))
    }

    fn parse_reason(&self, e: &phonenumber::ParseError, plus: bool, digits: &str) -> String {
        if let Some(hint) = self.short_code_hint(plus, digits) {
            return hint;
        }
        match e {
            phonenumber::ParseError::InvalidCountryCode => "no such country code".to_owned(),
            phonenumber::ParseError::TooShortAfterIdd | phonenumber::ParseError::TooShortNsn => {
                "too short".to_owned()
            }
            phonenumber::ParseError::TooLong => "too long".to_owned(),
            _ => "not a phone number".to_owned(),
        }
    }

    fn invalid_reason(&self, number: &PhoneNumber, plus: bool, digits: &str) -> String {
        if let Some(hint) = self.short_code_hint(plus, digits) {
            return hint;
        }
        let code = number.code().value();
        match number.country().id() {
            Some(id) => format!("not a number in use in {} (+{code})", id.as_ref()),
            None if DATABASE.by_code(&code).is_some() => {
                format!("not a number in use in country code +{code}")
            }
            None => "no such country code".to_owned(),
        }
    }

    /// For a short string that is not a known service number: say what the region's
    /// emergency numbers are (`911` dialled in Vietnam).
    fn short_code_hint(&self, plus: bool, digits: &str) -> Option<String> {
        (!plus && digits.len() <= 4).then(|| {
            format!(
                "not a short code callgrid knows in {}; emergency numbers there are {}",
                self.region(),
                self.emergency_numbers().join(", ")
            )
        })
    }
}

fn service_name(kind: ServiceKind) -> &'static str {
    match kind {
        ServiceKind::Emergency => "emergency",
        ServiceKind::TollFree => "toll-free",
        ServiceKind::Premium => "premium",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vn() -> Normalizer {
        Normalizer::new("VN").unwrap()
    }

    fn public(n: &str) -> Dialled {
        Dialled::Public(n.parse().unwrap())
    }

    #[test]
    fn every_way_of_writing_a_vietnamese_mobile_gives_one_e164() {
        let n = vn();
        for raw in [
            "0912345678",
            "84912345678",
            "+84912345678",
            "+84 91 234 5678",
            "+84-91-234-5678",
            "(091) 234 5678",
            "091.234.5678",
            "0084 912 345 678",
            "  0912 345 678 ",
            "912345678",
            "+84 (0) 912 345 678",
            "+840912345678",
        ] {
            assert_eq!(
                n.normalize(raw).map(|e| e.to_string()),
                Ok("+84912345678".to_owned()),
                "{raw}"
            );
        }
    }

    #[test]
    fn fixed_lines_and_foreign_numbers_normalise() {
        let n = vn();
        assert_eq!(
            n.normalize("024 3825 1234").unwrap().as_str(),
            "+842438251234"
        );
        assert_eq!(
            n.normalize("(028) 3822 1234").unwrap().as_str(),
            "+842838221234"
        );
        assert_eq!(
            n.normalize("+1 (650) 253-0000").unwrap().as_str(),
            "+16502530000"
        );
        assert_eq!(
            n.normalize("+44 20 7946 0018").unwrap().as_str(),
            "+442079460018"
        );
        assert_eq!(
            n.normalize("00 44 20 7946 0018").unwrap().as_str(),
            "+442079460018"
        );
    }

    #[test]
    fn the_default_region_decides_how_national_numbers_read() {
        let us = Normalizer::new("us").unwrap();
        assert_eq!(us.region(), "US");
        assert_eq!(us.country_code(), 1);
        assert_eq!(
            us.normalize("(650) 253-0000").unwrap().as_str(),
            "+16502530000"
        );
        assert_eq!(
            us.normalize("+84 912 345 678").unwrap().as_str(),
            "+84912345678"
        );
    }

    #[test]
    fn unknown_regions_are_refused_by_name() {
        for region in ["XX", "", "Vietnam", "001"] {
            let err = Normalizer::new(region).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "region {region:?} is not a country code with numbering metadata (e.g. \"VN\")"
                )
            );
        }
    }

    #[test]
    fn bad_numbers_are_invalid_and_the_message_names_them() {
        let n = vn();
        for (raw, reason) in [
            ("", "empty"),
            ("+", "no digits"),
            ("hello", "unexpected character 'h'"),
            ("0912-ABC-678", "unexpected character 'A'"),
            ("*101#", "unexpected character '*'"),
            ("09123+45678", "unexpected character '+'"),
            ("0912345", "not a number in use in VN (+84)"),
            ("091234567890123", "not a number in use in VN (+84)"),
            ("0412345678", "not a number in use in VN (+84)"),
            ("+999 123456789", "no such country code"),
            ("+84 1", "too short"),
            ("+1 650 253 0000 0000 0000 0000", "too long"),
        ] {
            let err = n.normalize(raw).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid number {raw:?}: {reason}"),
                "{raw}"
            );
        }
    }

    #[test]
    fn foreign_emergency_numbers_get_a_hint_in_vietnam() {
        let err = vn().dialled("911").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid number \"911\": not a short code callgrid knows in VN; \
             emergency numbers there are 112, 113, 114, 115"
        );
        assert!(vn().dialled("999").is_err());
        // elsewhere 911 and 112 are the emergency numbers
        let us = Normalizer::new("US").unwrap();
        assert_eq!(
            us.classify(&us.dialled("911").unwrap()),
            DestinationClass::Emergency
        );
    }

    #[test]
    fn emergency_numbers_stay_as_dialled() {
        let n = vn();
        for digits in ["112", "113", "114", "115"] {
            let d = n.dialled(digits).unwrap();
            assert_eq!(
                d,
                Dialled::Service {
                    digits: digits.to_owned(),
                    kind: ServiceKind::Emergency,
                    country_code: 84
                }
            );
            assert_eq!(d.dial_string(), digits);
            assert_eq!(d.international_form(), None);
            assert_eq!(n.classify(&d), DestinationClass::Emergency);
        }
        // written with separators, still the same
        assert_eq!(n.dialled(" 1-1-3 ").unwrap().dial_string(), "113");
    }

    #[test]
    fn service_numbers_of_8_or_10_digits_are_not_mangled() {
        let n = vn();
        for (raw, digits, kind, class) in [
            (
                "19001234",
                "19001234",
                ServiceKind::Premium,
                DestinationClass::Premium,
            ),
            (
                "1900 123 456",
                "1900123456",
                ServiceKind::Premium,
                DestinationClass::Premium,
            ),
            (
                "18001234",
                "18001234",
                ServiceKind::TollFree,
                DestinationClass::TollFree,
            ),
            (
                "1800-123-456",
                "1800123456",
                ServiceKind::TollFree,
                DestinationClass::TollFree,
            ),
            // written in international form: the same service number
            (
                "+84 1900 1234",
                "19001234",
                ServiceKind::Premium,
                DestinationClass::Premium,
            ),
        ] {
            let d = n.dialled(raw).unwrap();
            assert_eq!(
                d,
                Dialled::Service {
                    digits: digits.to_owned(),
                    kind,
                    country_code: 84
                },
                "{raw}"
            );
            assert_eq!(n.classify(&d), class, "{raw}");
            assert_eq!(d.international_form(), Some(format!("+84{digits}")));
        }
        let err = n.normalize("19001234").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid number \"19001234\": a premium service number, not a public number"
        );
    }

    #[test]
    fn extensions_stay_internal_and_the_rule_is_the_tenants() {
        let n = vn();
        assert_eq!(
            n.dialled("10001").unwrap(),
            Dialled::Internal("10001".into())
        );
        assert_eq!(
            n.dialled("200 300").unwrap(),
            Dialled::Internal("200300".into())
        );
        assert_eq!(
            n.classify(&n.dialled("10001").unwrap()),
            DestinationClass::Internal
        );
        // a 4-digit group is not internal by default
        assert!(n.dialled("1000").is_err());
        let wide = n
            .clone()
            .with_internal_rule(InternalRule::new(3..=6).unwrap());
        assert_eq!(
            wide.dialled("1000").unwrap(),
            Dialled::Internal("1000".into())
        );
        assert_eq!(
            wide.dialled("200").unwrap(),
            Dialled::Internal("200".into())
        );
        // emergency numbers win over the internal plan (IVR menus are 1xx, R1)
        assert_eq!(
            wide.classify(&wide.dialled("113").unwrap()),
            DestinationClass::Emergency
        );
        // a + is never internal
        assert!(wide.dialled("+10001").is_err());
        let err = n.normalize("10001").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid number \"10001\": an internal extension, not a public number"
        );
    }

    #[test]
    fn internal_rules_stay_below_national_lengths() {
        assert!(InternalRule::new(2..=7).is_ok());
        for (lo, hi) in [(1, 6), (5, 8), (6, 5)] {
            let err = InternalRule::new(lo..=hi).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("numbers: internal_digits: {lo}..={hi} is not a range within 2..=7")
            );
        }
        let rule = InternalRule::extensions();
        assert!(rule.matches("12345") && rule.matches("123456"));
        assert!(!rule.matches("1234") && !rule.matches("1234567") && !rule.matches("1234a"));
    }

    #[test]
    fn old_eleven_digit_mobile_numbers_map_to_their_2018_numbers() {
        let n = vn();
        for (raw, e164) in [
            ("01681234567", "+84381234567"),
            ("0168 123 4567", "+84381234567"),
            ("+84 168 123 4567", "+84381234567"),
            ("+84 0168 123 4567", "+84381234567"),
            ("841681234567", "+84381234567"),
            ("00841681234567", "+84381234567"),
            ("01201234567", "+84701234567"),
            ("01211234567", "+84791234567"),
            ("01231234567", "+84831234567"),
            ("01271234567", "+84811234567"),
            ("01861234567", "+84561234567"),
            ("01991234567", "+84591234567"),
        ] {
            assert_eq!(n.normalize(raw).unwrap().as_str(), e164, "{raw}");
        }
        // an old prefix that was never a mobile one stays invalid
        assert!(n.normalize("01301234567").is_err());
        // in another region only the international form is the old Vietnamese number
        let us = Normalizer::new("US").unwrap();
        assert_eq!(
            us.normalize("+84 168 123 4567").unwrap().as_str(),
            "+84381234567"
        );
    }

    #[test]
    fn classes_of_public_numbers() {
        let n = vn();
        for (raw, class) in [
            ("0912345678", DestinationClass::Mobile),
            ("0381234567", DestinationClass::Mobile),
            ("0701234567", DestinationClass::Mobile),
            ("024 3825 1234", DestinationClass::National),
            ("+1 650 253 0000", DestinationClass::International),
            ("+44 7911 123456", DestinationClass::International),
            ("+1 800 555 0100", DestinationClass::International),
        ] {
            assert_eq!(n.classify(&n.dialled(raw).unwrap()), class, "{raw}");
        }
        // an E.164 read back from text is classified the same way
        assert_eq!(
            n.classify(&public("+84912345678")),
            DestinationClass::Mobile
        );
        assert_eq!(
            n.classify(&public("+8419001234")),
            DestinationClass::Premium
        );
    }

    #[test]
    fn normalisers_are_equal_when_they_read_numbers_alike() {
        assert_eq!(vn(), Normalizer::new("vn").unwrap());
        assert_ne!(vn(), Normalizer::new("US").unwrap());
        let wider = vn().with_internal_rule(InternalRule::new(3..=6).unwrap());
        assert_ne!(vn(), wider);
        assert_eq!(wider.clone(), wider);
    }
}
