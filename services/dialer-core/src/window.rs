//! Calling windows in the callee's local time (D2): a campaign dials a contact only while
//! its window is open where the contact is. The zone is the contact's own (an IANA name in
//! its record), else its number's country's from a table shipped as editable data
//! (`zones.txt`, longest prefix of the E.164 digits), else the campaign's. A prefix of a
//! country with several zones (the North American plan, Russia, Australia, ...) lists them
//! all and the window must be open in every one of them: the most restrictive reading, the
//! one that never calls someone at night (docs/DECISIONS.md, "Calling windows").

use std::collections::HashMap;
use std::fmt;

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::error::CoreError;
use crate::learn::Ms;

/// A time frame of a day, minutes after local midnight, `from` included, `to` excluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// First minute open.
    pub from: u16,
    /// First minute closed again (1440 = midnight at the day's end).
    pub to: u16,
}

/// The hours a campaign may call, per weekday (Monday first), in the callee's local time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    days: [Vec<Frame>; 7],
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Default for Window {
    /// 08:00 to 21:00 every day: the hours the US TCPA allows (47 CFR 64.1200(c)(1)); an
    /// operator sets its own country's.
    fn default() -> Window {
        Window::parse("mon-sun 08:00-21:00").expect("the default window parses")
    }
}

impl Window {
    /// A window from its text: `;`-separated rules of a day or a day range and one or more
    /// frames, e.g. `mon-fri 08:00-12:00 13:30-20:00; sat 09:00-12:00` (a day not named is
    /// closed; `24:00` ends a frame at midnight).
    pub fn parse(text: &str) -> Result<Window, CoreError> {
        let bad = |why: String| CoreError::Window {
            text: text.to_string(),
            why,
        };
        let mut days: [Vec<Frame>; 7] = Default::default();
        for rule in text.split(';').map(str::trim).filter(|r| !r.is_empty()) {
            let mut words = rule.split_whitespace();
            let range = words.next().unwrap_or_default();
            let (first, last) = match range.split_once('-') {
                Some((a, b)) => (day(a), day(b)),
                None => (day(range), day(range)),
            };
            let (Some(first), Some(last)) = (first, last) else {
                return Err(bad(format!(
                    "`{range}` is not a day or a day range (mon, tue, wed, thu, fri, sat, sun)"
                )));
            };
            let mut frames = Vec::new();
            for f in words {
                let parsed = f.split_once('-').and_then(|(a, b)| {
                    Some(Frame {
                        from: minute(a)?,
                        to: minute(b)?,
                    })
                });
                match parsed {
                    Some(frame) if frame.from < frame.to => frames.push(frame),
                    _ => {
                        return Err(bad(format!(
                            "`{f}` is not a frame HH:MM-HH:MM with its start before its end"
                        )))
                    }
                }
            }
            if frames.is_empty() {
                return Err(bad(format!("`{rule}` names no time frame")));
            }
            let mut d = first;
            loop {
                days[d].extend(frames.iter().copied());
                days[d].sort_by_key(|f| f.from);
                if d == last {
                    break;
                }
                d = (d + 1) % 7;
            }
        }
        if days.iter().all(Vec::is_empty) {
            return Err(bad("no day is open".into()));
        }
        Ok(Window { days })
    }

    /// Open on this weekday (0 = Monday) at this minute after local midnight.
    pub fn open_at(&self, weekday: usize, minute: u16) -> bool {
        self.days[weekday % 7]
            .iter()
            .any(|f| f.from <= minute && minute < f.to)
    }

    /// Open at `now` in every one of `zones`.
    pub fn open_in(&self, zones: &[TimeZone], now: Ms) -> bool {
        let ts = Timestamp::from_millisecond(i64::try_from(now).unwrap_or(i64::MAX))
            .unwrap_or(Timestamp::MAX);
        zones.iter().all(|tz| {
            let local = ts.to_zoned(tz.clone());
            let weekday = local.weekday().to_monday_zero_offset() as usize;
            let minute = local.hour() as u16 * 60 + local.minute() as u16;
            self.open_at(weekday, minute)
        })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (d, frames) in self.days.iter().enumerate() {
            if frames.is_empty() {
                continue;
            }
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            f.write_str(DAYS[d])?;
            for fr in frames {
                write!(
                    f,
                    " {:02}:{:02}-{:02}:{:02}",
                    fr.from / 60,
                    fr.from % 60,
                    fr.to / 60,
                    fr.to % 60
                )?;
            }
        }
        Ok(())
    }
}

fn day(name: &str) -> Option<usize> {
    DAYS.iter().position(|d| d.eq_ignore_ascii_case(name))
}

fn minute(hhmm: &str) -> Option<u16> {
    let (h, m) = hhmm.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

/// Time zones by the prefix of an E.164 number (its country code, or a finer prefix such
/// as a North American area code).
#[derive(Clone, Debug)]
pub struct Zones {
    by_prefix: HashMap<String, Vec<TimeZone>>,
    longest: usize,
}

/// The table shipped with callgrid.
const SHIPPED: &str = include_str!("zones.txt");

impl Zones {
    /// The shipped table (`zones.txt`).
    pub fn shipped() -> Zones {
        Zones::parse(SHIPPED).expect("the shipped zone table parses")
    }

    /// A table from its text: one prefix per line, then its zones (IANA names); `#` starts
    /// a comment.
    pub fn parse(text: &str) -> Result<Zones, CoreError> {
        let mut by_prefix = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: String| CoreError::ZoneTable { line: n + 1, why };
            let mut words = line.split_whitespace();
            let prefix = words.next().unwrap_or_default().trim_start_matches('+');
            if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(format!("`{prefix}` is not a number prefix")));
            }
            let zones = words
                .map(|w| zone(w).map_err(|e| bad(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            if zones.is_empty() {
                return Err(bad(format!("prefix {prefix} names no time zone")));
            }
            if by_prefix.insert(prefix.to_string(), zones).is_some() {
                return Err(bad(format!("prefix {prefix} is listed twice")));
            }
        }
        let longest = by_prefix.keys().map(String::len).max().unwrap_or(0);
        Ok(Zones { by_prefix, longest })
    }

    /// The longest listed prefix of an E.164 number (`+84912345678`) and its zones; `None`
    /// if no prefix is listed.
    pub fn of<'n>(&self, number: &'n str) -> Option<(&'n str, &[TimeZone])> {
        let digits = number.trim_start_matches('+');
        (1..=self.longest.min(digits.len())).rev().find_map(|n| {
            let prefix = digits.get(..n)?;
            Some((prefix, self.by_prefix.get(prefix)?.as_slice()))
        })
    }
}

/// The zone of an IANA name, from the tz database compiled in (no file is read).
pub fn zone(name: &str) -> Result<TimeZone, CoreError> {
    TimeZone::get(name).map_err(|_| CoreError::UnknownZone(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07 (a Monday) at hh:mm UTC, in ms.
    fn monday_utc(hh: u64, mm: u64) -> Ms {
        1_796_601_600_000 + (hh * 60 + mm) * 60_000
    }

    #[test]
    fn a_window_parses_day_ranges_and_frames_and_prints_back() {
        let w = Window::parse("mon-fri 08:00-12:00 13:30-20:00; sat 09:00-12:00").unwrap();
        assert!(w.open_at(0, 8 * 60));
        assert!(!w.open_at(0, 12 * 60));
        assert!(w.open_at(4, 19 * 60 + 59));
        assert!(!w.open_at(4, 20 * 60));
        assert!(w.open_at(5, 10 * 60));
        assert!(!w.open_at(5, 13 * 60));
        assert!(!w.open_at(6, 10 * 60));
        assert_eq!(
            w.to_string(),
            "mon 08:00-12:00 13:30-20:00; tue 08:00-12:00 13:30-20:00; \
             wed 08:00-12:00 13:30-20:00; thu 08:00-12:00 13:30-20:00; \
             fri 08:00-12:00 13:30-20:00; sat 09:00-12:00"
        );
        assert_eq!(Window::parse(&w.to_string()).unwrap(), w);
        // a range across the week's end
        let w = Window::parse("sat-mon 10:00-24:00").unwrap();
        assert!(w.open_at(6, 23 * 60 + 59) && w.open_at(0, 10 * 60) && !w.open_at(1, 10 * 60));
    }

    #[test]
    fn a_broken_window_is_refused_naming_what_is_wrong() {
        for (text, says) in [
            ("", "no day is open"),
            ("mon", "names no time frame"),
            ("monday 08:00-09:00", "`monday` is not a day"),
            ("mon 09:00-08:00", "`09:00-08:00` is not a frame"),
            ("mon 08:00-25:00", "`08:00-25:00` is not a frame"),
            ("mon 8-9", "`8-9` is not a frame"),
        ] {
            let e = Window::parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_vietnamese_number_is_called_in_vietnamese_hours() {
        let zones = Zones::shipped();
        let (prefix, vn) = zones.of("+84912345678").unwrap();
        assert_eq!(prefix, "84");
        let w = Window::default(); // 08:00-21:00
                                   // 00:59 UTC is 07:59 in Hanoi (UTC+7), 01:00 UTC is 08:00
        assert!(!w.open_in(vn, monday_utc(0, 59)));
        assert!(w.open_in(vn, monday_utc(1, 0)));
        assert!(w.open_in(vn, monday_utc(13, 59)));
        assert!(!w.open_in(vn, monday_utc(14, 0)));
    }

    #[test]
    fn a_country_of_several_zones_is_called_only_while_open_in_all() {
        let zones = Zones::shipped();
        // a North American number without a listed area code: every zone of the plan
        let (_, us) = zones.of("+19995550100").unwrap();
        assert!(us.len() >= 4);
        let w = Window::default();
        // 13:00 UTC: 08:00 in New York, 05:00 in Los Angeles: closed
        assert!(!w.open_in(us, monday_utc(13, 0)));
        // 20:00 UTC: 15:00 in New York, 12:00 in Los Angeles, 10:00 in Honolulu: open
        assert!(w.open_in(us, monday_utc(20, 0)));
        // a listed area code narrows it to its zone: 212 is New York
        let (prefix, ny) = zones.of("+12125550100").unwrap();
        assert_eq!(prefix, "1212");
        assert_eq!(ny.len(), 1);
        assert!(w.open_in(ny, monday_utc(13, 0)));
    }

    #[test]
    fn a_broken_zone_table_is_refused_naming_its_line() {
        let e = Zones::parse("84 Asia/Ho_Chi_Minh\n\n65 Asia/Nowhere\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Asia/Nowhere"), "{e}");
        let e = Zones::parse("# comment\n8x Asia/Singapore")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("`8x`"), "{e}");
        let e = Zones::parse("84\n").unwrap_err().to_string();
        assert!(e.contains("names no time zone"), "{e}");
        assert!(Zones::parse("84 Asia/Ho_Chi_Minh\n84 Asia/Bangkok").is_err());
        assert!(Zones::shipped().of("+999").is_none());
    }
}
