//! RFC 4733 telephone-events (DTMF over RTP): the 4-byte payload, event ↔ key mapping, a
//! detector that reports each key press once, and a builder of the packets of one key press.
//!
//! Every packet of one key press carries the same RTP timestamp (the start of the event) and
//! the end packet is usually sent three times, so a press is identified by (SSRC, timestamp)
//! and reported on the first packet seen for it (start, update or end: any of them may be
//! lost).

use crate::rtp::RtpHeader;
use crate::MediaError;

/// The keys of events 0–15.
const KEYS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

/// The key of an event code (0–9 digits, 10 `*`, 11 `#`, 12–15 `A`–`D`).
pub fn event_to_key(event: u8) -> Option<char> {
    KEYS.get(usize::from(event)).copied()
}

/// The event code of a key (`0-9 * # A-D`, lowercase `a-d` accepted).
pub fn key_to_event(key: char) -> Option<u8> {
    let key = key.to_ascii_uppercase();
    KEYS.iter().position(|&k| k == key).map(|p| p as u8)
}

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0–15 are the DTMF keys).
    pub event: u8,
    /// E bit: this packet ends the event.
    pub end: bool,
    /// Volume in -dBm0 (0–63).
    pub volume: u8,
    /// Duration so far, in timestamp units (8 kHz samples).
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first 4 bytes of a payload (further bytes, e.g. redundancy, are ignored).
    pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, MediaError> {
        let [event, flags, d0, d1, ..] = *payload else {
            return Err(MediaError::BadTelephoneEvent("shorter than 4 bytes"));
        };
        Ok(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// The 4-byte payload (R bit zero).
    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (self.volume & 0x3F) | if self.end { 0x80 } else { 0 },
            d[0],
            d[1],
        ]
    }

    /// The DTMF key of this event, if it is one.
    pub fn key(&self) -> Option<char> {
        event_to_key(self.event)
    }
}

/// Reports each key press once per (SSRC, RTP timestamp), whatever the number of packets
/// (start, updates, the end packet sent three times) and their order.
#[derive(Debug, Default)]
pub struct DtmfDetector {
    /// The most recent presses seen, as (ssrc, timestamp); a small ring is enough because the
    /// packets of one press arrive within a few hundred milliseconds of each other.
    recent: [Option<(u32, u32)>; 8],
    next: usize,
}

impl DtmfDetector {
    /// A detector with no history.
    pub fn new() -> DtmfDetector {
        DtmfDetector::default()
    }

    /// Feeds one telephone-event packet (its SSRC, timestamp and payload). Returns the key the
    /// first time a press is seen; `None` for repeats, non-DTMF events and bad payloads.
    pub fn on_packet(&mut self, ssrc: u32, timestamp: u32, payload: &[u8]) -> Option<char> {
        let event = TelephoneEvent::parse(payload).ok()?;
        let key = event.key()?;
        let id = Some((ssrc, timestamp));
        if self.recent.contains(&id) {
            return None;
        }
        self.recent[self.next] = id;
        self.next = (self.next + 1) % self.recent.len();
        Some(key)
    }
}

/// The packets of one key press, as a sender emits them every 20 ms: a start packet (marker
/// set), updates with growing duration, then the end packet three times. All carry
/// `timestamp`; sequence numbers start at `sequence`. `duration_ms` is rounded up to 20 ms
/// steps (at least one).
pub fn key_press_packets(
    key: char,
    payload_type: u8,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    duration_ms: u32,
) -> Result<Vec<Vec<u8>>, MediaError> {
    key_press_payloads(key, duration_ms).map(|payloads| {
        payloads
            .iter()
            .enumerate()
            .map(|(i, payload)| {
                RtpHeader {
                    payload_type,
                    marker: i == 0,
                    sequence: sequence.wrapping_add(i as u16),
                    timestamp,
                    ssrc,
                }
                .to_packet(payload)
            })
            .collect()
    })
}

/// The payloads of one key press: one per 20 ms while the key is down, then three end
/// payloads (see [`key_press_packets`]).
pub fn key_press_payloads(key: char, duration_ms: u32) -> Result<Vec<[u8; 4]>, MediaError> {
    let event = key_to_event(key).ok_or(MediaError::BadDigit(key))?;
    let steps = duration_ms.div_ceil(20).clamp(1, 400);
    let mut out = Vec::with_capacity(steps as usize + 3);
    for step in 1..=steps {
        out.push(
            TelephoneEvent {
                event,
                end: false,
                volume: 10,
                duration: (step * 160).min(u32::from(u16::MAX)) as u16,
            }
            .to_bytes(),
        );
    }
    let end = TelephoneEvent {
        event,
        end: true,
        volume: 10,
        duration: (steps * 160).min(u32::from(u16::MAX)) as u16,
    }
    .to_bytes();
    out.extend([end; 3]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_mapping() {
        let all: String = (0..16).filter_map(event_to_key).collect();
        assert_eq!(all, "0123456789*#ABCD");
        assert_eq!(event_to_key(16), None);
        for (i, k) in all.chars().enumerate() {
            assert_eq!(key_to_event(k), Some(i as u8));
        }
        assert_eq!(key_to_event('b'), Some(13));
        assert_eq!(key_to_event('x'), None);
    }

    #[test]
    fn payload_round_trip() {
        let e = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 1280,
        };
        let bytes = e.to_bytes();
        assert_eq!(bytes, [11, 0x8A, 0x05, 0x00]);
        assert_eq!(TelephoneEvent::parse(&bytes).unwrap(), e);
        assert_eq!(e.key(), Some('#'));
        assert!(TelephoneEvent::parse(&[1, 2, 3]).is_err());
        // the R bit is ignored
        let r = TelephoneEvent::parse(&[5, 0x40 | 7, 0, 160]).unwrap();
        assert_eq!((r.event, r.end, r.volume, r.duration), (5, false, 7, 160));
    }

    #[test]
    fn detector_reports_each_press_once() {
        let mut d = DtmfDetector::new();
        let press = key_press_payloads('5', 100).unwrap();
        assert_eq!(press.len(), 5 + 3);
        let reported: Vec<char> = press
            .iter()
            .filter_map(|p| d.on_packet(7, 1000, p))
            .collect();
        assert_eq!(reported, vec!['5']);
        // a late duplicate end packet is still a repeat
        assert_eq!(d.on_packet(7, 1000, &press[7]), None);
        // the same key pressed again has a new timestamp
        assert_eq!(d.on_packet(7, 3000, &press[0]), Some('5'));
        // the same timestamp from another source is another press
        assert_eq!(d.on_packet(8, 3000, &press[0]), Some('5'));
        // a press whose start packets were lost is reported on its end packet
        let hash = key_press_payloads('#', 40).unwrap();
        assert_eq!(d.on_packet(7, 5000, &hash[2]), Some('#'));
        assert_eq!(d.on_packet(7, 5000, &hash[3]), None);
        // non-dtmf events and garbage report nothing
        assert_eq!(d.on_packet(7, 6000, &[16, 0, 0, 160]), None);
        assert_eq!(d.on_packet(7, 6000, &[1]), None);
    }

    #[test]
    fn press_packets() {
        let packets = key_press_packets('9', 101, 42, 65534, 800, 60).unwrap();
        assert_eq!(packets.len(), 6);
        let headers: Vec<_> = packets
            .iter()
            .map(|p| RtpHeader::parse(p).unwrap())
            .collect();
        assert!(headers[0].0.marker);
        assert!(headers[1..].iter().all(|(h, _)| !h.marker));
        assert!(headers
            .iter()
            .all(|(h, _)| h.timestamp == 800 && h.payload_type == 101 && h.ssrc == 42));
        assert_eq!(headers[2].0.sequence, 0);
        let last = TelephoneEvent::parse(headers[5].1).unwrap();
        assert!(last.end);
        assert_eq!(last.duration, 480);
        assert!(key_press_packets('x', 101, 1, 1, 1, 60).is_err());
    }
}
