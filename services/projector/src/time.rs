//! A tenant's calendar: its 15-minute intervals and its days, in its own time zone (P5).

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Length of a report interval.
pub const INTERVAL_MS: u64 = 15 * 60 * 1000;
const DAY_MS: i64 = 86_400_000;

/// The time zone of a tenant.
#[derive(Clone, Debug)]
pub struct Calendar {
    tz: TimeZone,
}

impl Calendar {
    /// The calendar of an IANA zone name; `None` if the name is unknown.
    pub fn new(zone: &str) -> Option<Calendar> {
        TimeZone::get(zone).ok().map(|tz| Calendar { tz })
    }

    /// UTC.
    pub fn utc() -> Calendar {
        Calendar { tz: TimeZone::UTC }
    }

    fn ts(ms: u64) -> Timestamp {
        Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX)).unwrap_or(Timestamp::MAX)
    }

    /// The UTC offset at `ms`, in ms.
    fn offset_ms(&self, ms: u64) -> i64 {
        i64::from(self.tz.to_offset(Self::ts(ms)).seconds()) * 1000
    }

    /// Start of the 15-minute interval holding `ms` (at :00, :15, :30, :45 local time).
    pub fn interval_start(&self, ms: u64) -> u64 {
        let off = self.offset_ms(ms);
        let local = ms as i64 + off;
        let start = local.div_euclid(INTERVAL_MS as i64) * INTERVAL_MS as i64 - off;
        start.max(0) as u64
    }

    /// Start of the local day holding `ms` (local midnight).
    pub fn day_start(&self, ms: u64) -> u64 {
        let off = self.offset_ms(ms);
        let local_midnight = (ms as i64 + off).div_euclid(DAY_MS) * DAY_MS;
        // the offset at midnight may differ from the offset now (a DST change that day)
        let guess = (local_midnight - off).max(0) as u64;
        let start = local_midnight - self.offset_ms(guess);
        if start > ms as i64 {
            // midnight itself fell in a skipped hour: the day starts at the first instant after
            (local_midnight - off).max(0) as u64
        } else {
            start.max(0) as u64
        }
    }

    /// The local date of `ms`, `YYYY-MM-DD`.
    pub fn date(&self, ms: u64) -> String {
        Self::ts(ms).to_zoned(self.tz.clone()).date().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_days_follow_the_tenants_zone() {
        // 2026-11-22 10:00:59 UTC = 17:00:59 in Ho Chi Minh City (UTC+7, no DST)
        let t = 1_795_341_659_000;
        let hcm = Calendar::new("Asia/Ho_Chi_Minh").expect("zone");
        assert_eq!(hcm.date(t), "2026-11-22");
        // 17:00 local = 10:00 UTC
        assert_eq!(hcm.interval_start(t), 1_795_341_600_000);
        // local midnight = 17:00 UTC the day before
        assert_eq!(hcm.day_start(t), 1_795_341_600_000 - 17 * 3_600_000);
        // Kolkata is UTC+5:30: intervals still start at :00/:15/:30/:45 local time
        let kol = Calendar::new("Asia/Kolkata").expect("zone");
        let start = kol.interval_start(t);
        assert_eq!((start + 5 * 3_600_000 + 1_800_000) % INTERVAL_MS, 0);
        assert!(start <= t && t < start + INTERVAL_MS);
        assert!(Calendar::new("Mars/Olympus_Mons").is_none());
    }

    #[test]
    fn a_day_with_a_dst_change_starts_at_local_midnight() {
        // Europe/Berlin, 2026-03-29: clocks go 02:00 -> 03:00; midnight is still UTC+1
        let berlin = Calendar::new("Europe/Berlin").expect("zone");
        let noon_utc = 1_774_785_600_000; // 2026-03-29 12:00 UTC (14:00 local, UTC+2)
        assert_eq!(berlin.date(noon_utc), "2026-03-29");
        assert_eq!(berlin.day_start(noon_utc), 1_774_738_800_000); // 2026-03-28 23:00 UTC
    }
}
