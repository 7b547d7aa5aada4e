//! A tenant's blocklist (R7): numbers rejected inbound and never dialled outbound (also the
//! dialer's do-not-call list).

use std::collections::HashMap;
use std::fmt;

use crate::dialled::{Dialled, Normalizer, ServiceKind};
use crate::e164::E164;
use crate::error::NumberError;

/// A pattern over numbers in international form: `+`, then digits and `?` (exactly one
/// digit), then optionally `*` (any number of digits, none included) at the end only.
/// `+841900*` is every number starting `+841900`; `+8490???????` every `+8490` number of
/// exactly 11 digits. No other syntax: no regular expressions, no ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// `Some(d)`: that digit; `None`: any digit.
    positions: Vec<Option<u8>>,
    /// Whether more digits may follow (`*`).
    open: bool,
}

impl Pattern {
    /// Reads a pattern, or says why `text` is not one.
    fn parse(text: &str) -> Result<Self, String> {
        let Some(body) = text.strip_prefix('+') else {
            return Err("a pattern is written in international form, starting with +".to_owned());
        };
        let (body, open) = match body.strip_suffix('*') {
            Some(body) => (body, true),
            None => (body, false),
        };
        let mut positions = Vec::with_capacity(body.len());
        for c in body.chars() {
            match c {
                '0'..='9' => positions.push(Some(c as u8 - b'0')),
                '?' => positions.push(None),
                '*' => return Err("* may only end a pattern".to_owned()),
                _ => return Err(format!("unexpected character {c:?} in a pattern")),
            }
        }
        if positions.first().and_then(|p| *p).is_none() {
            return Err("a pattern starts with a digit after the + (a country code)".to_owned());
        }
        if positions.len() > 15 {
            return Err("a pattern is longer than any number (15 digits)".to_owned());
        }
        Ok(Self { positions, open })
    }

    /// Whether the digits of a number in international form (no `+`) match.
    fn matches(&self, digits: &[u8]) -> bool {
        let length_fits = if self.open {
            digits.len() >= self.positions.len()
        } else {
            digits.len() == self.positions.len()
        };
        length_fits
            && self
                .positions
                .iter()
                .zip(digits)
                .all(|(p, d)| p.is_none_or(|p| p == d - b'0'))
    }
}

/// What an entry blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockRule {
    /// One number, in international form: E.164 for a public number, `+`, the country
    /// code and the digits for a service number (`+8419001234`).
    Exact(String),
    /// The numbers a pattern matches.
    Pattern(Pattern),
}

/// One entry of a blocklist: as written, and what it blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockEntry {
    /// The entry as written (trimmed).
    pub written: String,
    /// What it blocks.
    pub rule: BlockRule,
}

impl fmt::Display for BlockEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

/// A tenant's blocklist: exact numbers and patterns. Inbound, the calling number is checked
/// with [`Blocklist::blocks`]; outbound, the dialled destination with
/// [`Blocklist::blocks_dialled`]. An exact entry is found in constant time; patterns are
/// tried in the order they were added. The answer names the entry that matched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blocklist {
    entries: Vec<BlockEntry>,
    /// International form -> index in `entries`.
    exact: HashMap<String, usize>,
    /// Indexes of the pattern entries, in order.
    patterns: Vec<usize>,
}

impl Blocklist {
    /// An empty blocklist.
    pub fn new() -> Self {
        Self::default()
    }

    /// A blocklist of these entries; the first that cannot be read is the error.
    pub fn from_entries<I, S>(normalizer: &Normalizer, entries: I) -> Result<Self, NumberError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Self::new();
        for entry in entries {
            list.add(normalizer, entry.as_ref())?;
        }
        Ok(list)
    }

    /// Adds an entry: a pattern (it has a `?` or `*`; see [`Pattern`]) or a number in any
    /// form `normalizer` reads (`0912345678`, `+84 91 234 5678`, `19001234`). An entry for
    /// a number already listed is kept once, as first written. Emergency numbers and
    /// extensions cannot be blocked.
    pub fn add(
        &mut self,
        normalizer: &Normalizer,
        entry: &str,
    ) -> Result<&BlockEntry, NumberError> {
        let written = entry.trim();
        let refuse = |reason: String| NumberError::BlocklistEntry {
            entry: written.to_owned(),
            reason,
        };
        let rule = if written.contains(['?', '*']) {
            BlockRule::Pattern(Pattern::parse(written).map_err(refuse)?)
        } else {
            let dialled = normalizer.dialled(written).map_err(|e| match e {
                NumberError::Invalid { reason, .. } => refuse(reason),
                other => refuse(other.to_string()),
            })?;
            match (&dialled, dialled.international_form()) {
                (_, Some(key)) => BlockRule::Exact(key),
                (
                    Dialled::Service {
                        kind: ServiceKind::Emergency,
                        ..
                    },
                    None,
                ) => return Err(refuse("emergency numbers are never blocked".to_owned())),
                (_, None) => {
                    return Err(refuse(
                        "an internal extension, not a number to block".to_owned(),
                    ))
                }
            }
        };
        let index = match &rule {
            BlockRule::Exact(key) => match self.exact.get(key) {
                Some(&i) => return Ok(&self.entries[i]),
                None => {
                    self.exact.insert(key.clone(), self.entries.len());
                    self.entries.len()
                }
            },
            BlockRule::Pattern(_) => {
                self.patterns.push(self.entries.len());
                self.entries.len()
            }
        };
        self.entries.push(BlockEntry {
            written: written.to_owned(),
            rule,
        });
        Ok(&self.entries[index])
    }

    /// The entry that blocks `number`, if any: an exact entry first, else the first
    /// pattern that matches.
    pub fn blocks(&self, number: &E164) -> Option<&BlockEntry> {
        self.blocks_international(number.as_str())
    }

    /// The entry that blocks a dialled destination, if any. Service numbers are matched in
    /// international form (`19001234` as `+8419001234`, so `+841900*` blocks it however it
    /// is dialled); emergency numbers and extensions are never blocked.
    pub fn blocks_dialled(&self, dialled: &Dialled) -> Option<&BlockEntry> {
        self.blocks_international(&dialled.international_form()?)
    }

    fn blocks_international(&self, key: &str) -> Option<&BlockEntry> {
        if let Some(&i) = self.exact.get(key) {
            return Some(&self.entries[i]);
        }
        let digits = key.strip_prefix('+')?.as_bytes();
        self.patterns
            .iter()
            .map(|&i| &self.entries[i])
            .find(|e| matches!(&e.rule, BlockRule::Pattern(p) if p.matches(digits)))
    }

    /// The entries, in the order they were added.
    pub fn entries(&self) -> &[BlockEntry] {
        &self.entries
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vn() -> Normalizer {
        Normalizer::new("VN").unwrap()
    }

    fn list(entries: &[&str]) -> Blocklist {
        Blocklist::from_entries(&vn(), entries).unwrap()
    }

    fn blocked_by(list: &Blocklist, raw: &str) -> Option<String> {
        let d = vn().dialled(raw).unwrap();
        let by_dialled = list.blocks_dialled(&d).map(|e| e.written.clone());
        if let Dialled::Public(n) = &d {
            // inbound and outbound agree on public numbers
            assert_eq!(
                list.blocks(n).map(|e| e.written.clone()),
                by_dialled,
                "{raw}"
            );
        }
        by_dialled
    }

    #[test]
    fn exact_entries_block_every_way_of_writing_the_number() {
        let l = list(&["0912 345 678", "+84 90 123 4567"]);
        for raw in [
            "0912345678",
            "+84912345678",
            "84912345678",
            "(091) 234 5678",
        ] {
            assert_eq!(
                blocked_by(&l, raw).as_deref(),
                Some("0912 345 678"),
                "{raw}"
            );
        }
        assert_eq!(
            blocked_by(&l, "0901234567").as_deref(),
            Some("+84 90 123 4567")
        );
        assert_eq!(blocked_by(&l, "0912345679"), None);
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn patterns_match_by_prefix_and_by_position() {
        let l = list(&["+841900*", "+8490???????", "+1800*"]);
        assert_eq!(blocked_by(&l, "1900 1234").as_deref(), Some("+841900*"));
        assert_eq!(blocked_by(&l, "1900123456").as_deref(), Some("+841900*"));
        assert_eq!(blocked_by(&l, "+84 1900 1234").as_deref(), Some("+841900*"));
        assert_eq!(
            blocked_by(&l, "0901234567").as_deref(),
            Some("+8490???????")
        );
        assert_eq!(blocked_by(&l, "+1 800 555 0100").as_deref(), Some("+1800*"));
        // 18001234 is toll-free, not premium; 0911234567 is not 090
        assert_eq!(blocked_by(&l, "18001234"), None);
        assert_eq!(blocked_by(&l, "0911234567"), None);
        let p = Pattern::parse("+8490???????").unwrap();
        assert!(p.matches(b"84901234567"));
        assert!(!p.matches(b"8490123456"), "one digit short");
        assert!(!p.matches(b"849012345678"), "one digit long");
        let open = Pattern::parse("+8490*").unwrap();
        assert!(open.matches(b"8490") && open.matches(b"84901234567"));
        assert!(!open.matches(b"849"));
    }

    #[test]
    fn exact_entries_win_over_patterns_and_patterns_keep_their_order() {
        let l = list(&["+849*", "+8491*", "0912345678"]);
        assert_eq!(blocked_by(&l, "0912345678").as_deref(), Some("0912345678"));
        assert_eq!(blocked_by(&l, "0912345679").as_deref(), Some("+849*"));
    }

    #[test]
    fn emergency_numbers_and_extensions_are_never_blocked() {
        let l = list(&["+84*"]);
        assert_eq!(blocked_by(&l, "0912345678").as_deref(), Some("+84*"));
        assert_eq!(blocked_by(&l, "113"), None);
        assert_eq!(blocked_by(&l, "10001"), None);
        let mut l = Blocklist::new();
        for (entry, reason) in [
            ("113", "emergency numbers are never blocked"),
            ("10001", "an internal extension, not a number to block"),
        ] {
            assert_eq!(
                l.add(&vn(), entry).unwrap_err().to_string(),
                format!("blocklist entry {entry:?}: {reason}")
            );
        }
    }

    #[test]
    fn a_number_listed_twice_is_kept_once_as_first_written() {
        let mut l = Blocklist::new();
        l.add(&vn(), "0912345678").unwrap();
        let again = l.add(&vn(), "+84912345678").unwrap();
        assert_eq!(again.written, "0912345678");
        assert_eq!(l.len(), 1);
        assert_eq!(l.entries()[0].rule, BlockRule::Exact("+84912345678".into()));
    }

    #[test]
    fn bad_entries_are_refused_naming_the_entry() {
        for (entry, reason) in [
            ("0912*5678", "a pattern is written in international form, starting with +"),
            ("+84*1", "* may only end a pattern"),
            ("+84**", "* may only end a pattern"),
            ("+84 9*", "unexpected character ' ' in a pattern"),
            ("+*", "a pattern starts with a digit after the + (a country code)"),
            ("+?1*", "a pattern starts with a digit after the + (a country code)"),
            ("+8412345678901234*", "a pattern is longer than any number (15 digits)"),
            ("0912", "not a short code callgrid knows in VN; emergency numbers there are 112, 113, 114, 115"),
            ("not a number", "unexpected character 'n'"),
        ] {
            let err = Blocklist::from_entries(&vn(), ["0912345678", entry]).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("blocklist entry {entry:?}: {reason}"),
                "{entry}"
            );
        }
    }
}
