//! The carrier of a number, by its prefix (N4), from an editable table.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::e164::E164;
use crate::error::NumberError;

/// The table callgrid ships: Vietnamese mobile prefixes by carrier
/// (`services/numbers/data/vn-carriers.csv`). Operators keep their own copy current and load
/// it with [`CarrierTable::parse`].
pub const VN_CARRIERS: &str = include_str!("../data/vn-carriers.csv");

/// A carrier (mobile network operator) id such as `viettel`: lowercase ASCII letters,
/// digits, `-` and `_`, at most 32 characters. Cheap to clone, ordered, hashable;
/// serialised as its text.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CarrierId(Arc<str>);

impl CarrierId {
    /// A carrier id, if `id` is one.
    pub fn new(id: &str) -> Result<Self, NumberError> {
        let ok = !id.is_empty()
            && id.len() <= 32
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(Arc::from(id)))
        } else {
            Err(NumberError::InvalidCarrierId { id: id.to_owned() })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CarrierId {
    type Error = NumberError;

    fn try_from(id: String) -> Result<Self, Self::Error> {
        Self::new(&id)
    }
}

impl From<CarrierId> for String {
    fn from(id: CarrierId) -> Self {
        id.0.to_string()
    }
}

impl fmt::Display for CarrierId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CarrierId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// Carriers by number prefix. A number's carrier is that of its longest listed prefix;
/// a number no prefix matches has none (fixed lines, foreign numbers, unlisted ranges).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CarrierTable {
    /// E.164 digits of the prefix (no `+`) -> carrier.
    by_prefix: HashMap<String, CarrierId>,
    /// The longest prefix, in digits.
    longest: usize,
}

impl CarrierTable {
    /// The Vietnamese table callgrid ships ([`VN_CARRIERS`]).
    pub fn vietnam() -> Self {
        // the shipped text is read by a test: this cannot fail
        Self::parse(VN_CARRIERS, 84).expect("the shipped carrier table reads")
    }

    /// Reads a table (the format of [`VN_CARRIERS`]: a `prefix,carrier` header, then one
    /// prefix a line; `#` starts a comment). A prefix in national form (`086`: the
    /// national prefix 0 and digits) belongs to `country_code`; one in E.164 (`+8486`) is
    /// taken as written. Errors name the line and the field.
    pub fn parse(text: &str, country_code: u16) -> Result<Self, NumberError> {
        let mut table = Self::default();
        let mut lines_of: HashMap<String, usize> = HashMap::new();
        let mut header = false;
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let content = line.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let err = |field, reason: String| NumberError::CarrierData {
                line: line_no,
                field,
                reason,
            };
            let fields: Vec<&str> = content.split(',').map(str::trim).collect();
            if !header {
                if fields != ["prefix", "carrier"] {
                    return Err(err(
                        "line",
                        format!("the header must be `prefix,carrier`, not `{content}`"),
                    ));
                }
                header = true;
                continue;
            }
            let [prefix, carrier] = fields[..] else {
                return Err(err(
                    "line",
                    format!("2 fields (prefix,carrier) expected, found {}", fields.len()),
                ));
            };
            let digits = prefix_digits(prefix, country_code).map_err(|r| err("prefix", r))?;
            let carrier = CarrierId::new(carrier).map_err(|e| err("carrier", e.to_string()))?;
            if let Some(first) = lines_of.get(&digits) {
                return Err(err(
                    "prefix",
                    format!("{prefix} is listed already, on line {first}"),
                ));
            }
            lines_of.insert(digits.clone(), line_no);
            table.longest = table.longest.max(digits.len());
            table.by_prefix.insert(digits, carrier);
        }
        if !header {
            return Err(NumberError::CarrierData {
                line: text.lines().count().max(1),
                field: "line",
                reason: "no `prefix,carrier` header".to_owned(),
            });
        }
        Ok(table)
    }

    /// The carrier of `number`, by its longest listed prefix.
    pub fn carrier_of(&self, number: &E164) -> Option<&CarrierId> {
        let digits = number.digits();
        (1..=self.longest.min(digits.len()))
            .rev()
            .find_map(|len| self.by_prefix.get(&digits[..len]))
    }

    /// Every carrier of the table, once each, in order.
    pub fn carriers(&self) -> Vec<&CarrierId> {
        let mut all: Vec<&CarrierId> = self.by_prefix.values().collect();
        all.sort();
        all.dedup();
        all
    }

    /// How many prefixes the table lists.
    pub fn len(&self) -> usize {
        self.by_prefix.len()
    }

    /// Whether the table lists no prefix.
    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }
}

/// The E.164 digits of a prefix as written, or why it is not one.
fn prefix_digits(prefix: &str, country_code: u16) -> Result<String, String> {
    let (international, digits) = match prefix.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, prefix),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{prefix:?} is not a prefix: digits, after a 0 (national) or a + (E.164)"
        ));
    }
    let e164 = if international {
        if digits.starts_with('0') {
            return Err(format!("{prefix}: no country code starts with 0"));
        }
        digits.to_owned()
    } else {
        match digits.strip_prefix('0') {
            Some(rest) if !rest.is_empty() => format!("{country_code}{rest}"),
            _ => {
                return Err(format!(
                    "{prefix}: a national prefix is 0 and at least one digit (086), \
                     an E.164 one starts with + (+8486)"
                ))
            }
        }
    };
    if e164.len() > 15 {
        return Err(format!("{prefix} is longer than any number"));
    }
    Ok(e164)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e164(s: &str) -> E164 {
        s.parse().unwrap()
    }

    fn carrier(t: &CarrierTable, n: &str) -> Option<String> {
        t.carrier_of(&e164(n)).map(|c| c.to_string())
    }

    #[test]
    fn the_shipped_table_reads_and_knows_every_carrier() {
        let t = CarrierTable::parse(VN_CARRIERS, 84).unwrap();
        assert_eq!(t, CarrierTable::vietnam());
        let names: Vec<&str> = t.carriers().iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "gmobile",
                "itelecom",
                "mobifone",
                "reddi",
                "vietnamobile",
                "viettel",
                "vinaphone"
            ]
        );
        assert_eq!(t.len(), 36);
    }

    #[test]
    fn mobile_prefixes_give_their_carrier() {
        let t = CarrierTable::vietnam();
        for (n, c) in [
            ("+84961234567", "viettel"),
            ("+84861234567", "viettel"),
            ("+84321234567", "viettel"),
            ("+84391234567", "viettel"),
            ("+84912345678", "vinaphone"),
            ("+84881234567", "vinaphone"),
            ("+84811234567", "vinaphone"),
            ("+84901234567", "mobifone"),
            ("+84701234567", "mobifone"),
            ("+84896123456", "mobifone"),
            ("+84921234567", "vietnamobile"),
            ("+84561234567", "vietnamobile"),
            ("+84991234567", "gmobile"),
            ("+84591234567", "gmobile"),
            ("+84871234567", "itelecom"),
            ("+84559123456", "reddi"),
        ] {
            assert_eq!(carrier(&t, n).as_deref(), Some(c), "{n}");
        }
    }

    #[test]
    fn fixed_lines_and_foreign_numbers_have_no_carrier() {
        let t = CarrierTable::vietnam();
        assert_eq!(carrier(&t, "+842438251234"), None);
        assert_eq!(carrier(&t, "+16502530000"), None);
        assert_eq!(carrier(&t, "+8419001234"), None);
    }

    #[test]
    fn the_longest_prefix_wins() {
        let text = "prefix,carrier\n086,viettel\n0868,other\n+848688,third\n";
        let t = CarrierTable::parse(text, 84).unwrap();
        assert_eq!(carrier(&t, "+84861234567").as_deref(), Some("viettel"));
        assert_eq!(carrier(&t, "+84868123456").as_deref(), Some("other"));
        assert_eq!(carrier(&t, "+84868812345").as_deref(), Some("third"));
        // shorter than a listed prefix: only shorter prefixes can match
        assert_eq!(carrier(&t, "+8486"), Some("viettel".into()));
        assert_eq!(carrier(&t, "+848"), None);
    }

    #[test]
    fn an_operators_table_may_list_another_country_and_fixed_ranges() {
        let text = "# mine\nprefix , carrier   # header\n\n02473,fpt\n+44 7,uk-mobile\n";
        let err = CarrierTable::parse(text, 84).unwrap_err();
        assert_eq!(
            err.to_string(),
            "carrier table line 5, field prefix: \"+44 7\" is not a prefix: digits, after a 0 \
             (national) or a + (E.164)"
        );
        let text = "# mine\nprefix , carrier   # header\n\n02473,fpt\n+447,uk-mobile\n";
        let t = CarrierTable::parse(text, 84).unwrap();
        assert_eq!(carrier(&t, "+842473001234").as_deref(), Some("fpt"));
        assert_eq!(carrier(&t, "+842438251234"), None);
        assert_eq!(carrier(&t, "+447700900123").as_deref(), Some("uk-mobile"));
    }

    #[test]
    fn errors_name_line_and_field() {
        for (text, message) in [
            ("", "carrier table line 1, field line: no `prefix,carrier` header"),
            (
                "# only\n# comments\n",
                "carrier table line 2, field line: no `prefix,carrier` header",
            ),
            (
                "carrier,prefix\n",
                "carrier table line 1, field line: the header must be `prefix,carrier`, not `carrier,prefix`",
            ),
            (
                "prefix,carrier\n086\n",
                "carrier table line 2, field line: 2 fields (prefix,carrier) expected, found 1",
            ),
            (
                "prefix,carrier\n086,viettel,extra\n",
                "carrier table line 2, field line: 2 fields (prefix,carrier) expected, found 3",
            ),
            (
                "prefix,carrier\n\n08a6,viettel\n",
                "carrier table line 3, field prefix: \"08a6\" is not a prefix: digits, after a 0 (national) or a + (E.164)",
            ),
            (
                "prefix,carrier\n86,viettel\n",
                "carrier table line 2, field prefix: 86: a national prefix is 0 and at least one digit (086), an E.164 one starts with + (+8486)",
            ),
            (
                "prefix,carrier\n0,viettel\n",
                "carrier table line 2, field prefix: 0: a national prefix is 0 and at least one digit (086), an E.164 one starts with + (+8486)",
            ),
            (
                "prefix,carrier\n+0,viettel\n",
                "carrier table line 2, field prefix: +0: no country code starts with 0",
            ),
            (
                "prefix,carrier\n+8412345678901234,x\n",
                "carrier table line 2, field prefix: +8412345678901234 is longer than any number",
            ),
            (
                "prefix,carrier\n086,Viettel\n",
                "carrier table line 2, field carrier: carrier id \"Viettel\" is not lowercase letters, digits, - and _ (at most 32)",
            ),
            (
                "prefix,carrier\n086,\n",
                "carrier table line 2, field carrier: carrier id \"\" is not lowercase letters, digits, - and _ (at most 32)",
            ),
            (
                "prefix,carrier\n086,viettel\n# again\n+8486,other\n",
                "carrier table line 4, field prefix: +8486 is listed already, on line 2",
            ),
        ] {
            let err = CarrierTable::parse(text, 84).unwrap_err();
            assert_eq!(err.to_string(), message, "{text:?}");
        }
    }

    #[test]
    fn carrier_ids_are_checked() {
        assert_eq!(CarrierId::new("viettel").unwrap().as_str(), "viettel");
        assert!(CarrierId::new("g-mobile_2").is_ok());
        assert!(CarrierId::new("VNPT").is_err());
        assert!(CarrierId::new(&"x".repeat(33)).is_err());
        let id: CarrierId = serde_json::from_str("\"mobifone\"").unwrap();
        assert_eq!(id.as_str(), "mobifone");
        assert!(serde_json::from_str::<CarrierId>("\"Mobi Fone\"").is_err());
    }
}
