//! The RTP fixed header (RFC 3550 §5.1), parsed and written by hand.

use crate::MediaError;

/// Length of the fixed RTP header (no CSRC, no extension).
pub const HEADER_LEN: usize = 12;

/// The fields of an RTP header that media legs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Marker bit (first packet of a talk spurt for audio, start of an event for RFC 4733).
    pub marker: bool,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp (8 kHz clock for G.711 and telephone-event).
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Parses an RTP packet into its header and payload. CSRCs and a header extension are
    /// skipped and padding removed. Never panics.
    pub fn parse(packet: &[u8]) -> Result<(RtpHeader, &[u8]), MediaError> {
        if packet.len() < HEADER_LEN {
            return Err(MediaError::BadRtp("shorter than 12 bytes"));
        }
        let b0 = packet[0];
        if b0 >> 6 != 2 {
            return Err(MediaError::BadRtp("version is not 2"));
        }
        let padding = b0 & 0x20 != 0;
        let extension = b0 & 0x10 != 0;
        let csrc_count = usize::from(b0 & 0x0F);
        let b1 = packet[1];
        let header = RtpHeader {
            payload_type: b1 & 0x7F,
            marker: b1 & 0x80 != 0,
            sequence: u16::from_be_bytes([packet[2], packet[3]]),
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
        };
        let mut start = HEADER_LEN + 4 * csrc_count;
        if extension {
            let words = packet
                .get(start + 2..start + 4)
                .ok_or(MediaError::BadRtp("truncated header extension"))?;
            start += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
        }
        let mut end = packet.len();
        if padding {
            let pad = usize::from(packet[end - 1]);
            if pad == 0 {
                return Err(MediaError::BadRtp("zero padding length"));
            }
            end = end
                .checked_sub(pad)
                .ok_or(MediaError::BadRtp("padding longer than the packet"))?;
        }
        if start > end {
            return Err(MediaError::BadRtp("header longer than the packet"));
        }
        Ok((header, &packet[start..end]))
    }

    /// Writes the 12-byte header followed by `payload` into `out`; returns the packet length.
    /// `out` must hold at least `12 + payload.len()` bytes.
    pub fn write(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, MediaError> {
        let len = HEADER_LEN + payload.len();
        let out = out
            .get_mut(..len)
            .ok_or(MediaError::BadRtp("output buffer too small"))?;
        self.write_header(out);
        out[HEADER_LEN..].copy_from_slice(payload);
        Ok(len)
    }

    /// Writes the 12-byte header into the first 12 bytes of `out` (which must hold them).
    pub(crate) fn write_header(&self, out: &mut [u8]) {
        out[0] = 0x80;
        out[1] = (self.payload_type & 0x7F) | if self.marker { 0x80 } else { 0 };
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
    }

    /// Builds a whole packet (header + payload) in a new vector.
    pub fn to_packet(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0; HEADER_LEN + payload.len()];
        self.write_header(&mut out);
        out[HEADER_LEN..].copy_from_slice(payload);
        out
    }
}

/// True if sequence number `a` is after `b` (modulo 2^16, RFC 3550 style).
pub(crate) fn seq_after(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

/// True if timestamp `a` is after `b` (modulo 2^32).
pub(crate) fn ts_after(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_parse() {
        let h = RtpHeader {
            payload_type: 101,
            marker: true,
            sequence: 65535,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x0102_0304,
        };
        let packet = h.to_packet(&[1, 2, 3]);
        assert_eq!(packet.len(), 15);
        let (parsed, payload) = RtpHeader::parse(&packet).unwrap();
        assert_eq!(parsed, h);
        assert_eq!(payload, &[1, 2, 3]);
        let mut buf = [0u8; 14];
        assert!(h.write(&[1, 2, 3], &mut buf).is_err());
    }

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        let mut p = vec![0x80 | 0x20 | 0x10 | 1, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        p.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 7, 7, 7, 7]); // extension of one word
        p.extend_from_slice(&[42, 43]); // payload
        p.extend_from_slice(&[0, 0, 3]); // padding of 3
        let (h, payload) = RtpHeader::parse(&p).unwrap();
        assert_eq!(h.sequence, 1);
        assert_eq!(payload, &[42, 43]);
    }

    #[test]
    fn garbage_is_rejected_without_panic() {
        assert!(RtpHeader::parse(&[]).is_err());
        assert!(RtpHeader::parse(&[0x40; 20]).is_err());
        let mut p = vec![0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200];
        assert!(RtpHeader::parse(&p).is_err());
        p[0] = 0x8F; // 15 CSRCs in a 13-byte packet
        assert!(RtpHeader::parse(&p).is_err());
        p[0] = 0x90; // extension header missing
        assert!(RtpHeader::parse(&p).is_err());
        for len in 0..40 {
            for first in [0x80u8, 0xA0, 0xB0, 0xBF, 0x9F] {
                let mut p = vec![0xFFu8; len];
                if let Some(b) = p.first_mut() {
                    *b = first;
                }
                let _ = RtpHeader::parse(&p);
            }
        }
    }

    #[test]
    fn wrapping_comparisons() {
        assert!(seq_after(1, 65535));
        assert!(!seq_after(65535, 1));
        assert!(ts_after(5, u32::MAX - 5));
        assert!(!ts_after(7, 7));
    }
}
