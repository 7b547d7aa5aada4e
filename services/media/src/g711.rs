//! G.711 (ITU-T): PCMU (µ-law) and PCMA (A-law) between 16-bit linear samples and bytes, and
//! byte-wise µ-law ↔ A-law transcoding.
//!
//! Encoding follows the reference algorithm (the CCITT/Sun `g711.c`): µ-law works on 14-bit
//! magnitudes with a bias of 33, A-law on 13-bit magnitudes. Decoding and transcoding use
//! 256-entry tables built once.

use std::sync::LazyLock;

/// Segment ends of µ-law, on the 14-bit magnitude plus bias.
const SEG_UEND: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
/// Segment ends of A-law, on the 13-bit magnitude.
const SEG_AEND: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

/// The µ-law byte of silence (linear 0).
pub const ULAW_SILENCE: u8 = 0xFF;
/// The A-law byte of silence (decodes to +8, the smallest positive step).
pub const ALAW_SILENCE: u8 = 0xD5;

fn segment(value: i32, ends: &[i32; 8]) -> usize {
    ends.iter().position(|&end| value <= end).unwrap_or(8)
}

/// Encodes one linear sample as µ-law (PCMU).
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84 >> 2;
    const CLIP: i32 = 8159;
    let mut value = i32::from(sample) >> 2;
    let mask: i32 = if value < 0 {
        value = -value;
        0x7F
    } else {
        0xFF
    };
    value = value.min(CLIP) + BIAS;
    let seg = segment(value, &SEG_UEND);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let uval = ((seg as i32) << 4) | ((value >> (seg + 1)) & 0x0F);
    (uval ^ mask) as u8
}

/// Encodes one linear sample as A-law (PCMA).
pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut value = i32::from(sample) >> 3;
    let mask = if value >= 0 {
        0xD5
    } else {
        value = -value - 1;
        0x55
    };
    let seg = segment(value, &SEG_AEND);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let shift = if seg < 2 { 1 } else { seg };
    let aval = ((seg as i32) << 4) | ((value >> shift) & 0x0F);
    (aval ^ mask) as u8
}

fn ulaw_to_linear_calc(byte: u8) -> i16 {
    const BIAS: i32 = 0x84;
    let u = !byte;
    let mut t = (i32::from(u & 0x0F) << 3) + BIAS;
    t <<= (u & 0x70) >> 4;
    let v = if u & 0x80 != 0 { BIAS - t } else { t - BIAS };
    v as i16
}

fn alaw_to_linear_calc(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let mut t = i32::from(a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    let v = if a & 0x80 != 0 { t } else { -t };
    v as i16
}

struct Tables {
    ulaw_to_linear: [i16; 256],
    alaw_to_linear: [i16; 256],
    ulaw_to_alaw: [u8; 256],
    alaw_to_ulaw: [u8; 256],
}

static TABLES: LazyLock<Tables> = LazyLock::new(|| {
    let mut t = Tables {
        ulaw_to_linear: [0; 256],
        alaw_to_linear: [0; 256],
        ulaw_to_alaw: [0; 256],
        alaw_to_ulaw: [0; 256],
    };
    for b in 0..=255u8 {
        let i = usize::from(b);
        t.ulaw_to_linear[i] = ulaw_to_linear_calc(b);
        t.alaw_to_linear[i] = alaw_to_linear_calc(b);
        t.ulaw_to_alaw[i] = linear_to_alaw(t.ulaw_to_linear[i]);
        t.alaw_to_ulaw[i] = linear_to_ulaw(t.alaw_to_linear[i]);
    }
    t
});

/// Decodes one µ-law (PCMU) byte.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    TABLES.ulaw_to_linear[usize::from(byte)]
}

/// Decodes one A-law (PCMA) byte.
pub fn alaw_to_linear(byte: u8) -> i16 {
    TABLES.alaw_to_linear[usize::from(byte)]
}

/// Transcodes one µ-law byte to A-law.
pub fn ulaw_to_alaw(byte: u8) -> u8 {
    TABLES.ulaw_to_alaw[usize::from(byte)]
}

/// Transcodes one A-law byte to µ-law.
pub fn alaw_to_ulaw(byte: u8) -> u8 {
    TABLES.alaw_to_ulaw[usize::from(byte)]
}

/// The two G.711 codecs, with their static RTP payload types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// µ-law, payload type 0.
    Pcmu,
    /// A-law, payload type 8.
    Pcma,
}

impl Codec {
    /// The static RTP payload type (0 or 8).
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The codec of a static payload type, if it is 0 or 8.
    pub fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The encoding name used in `a=rtpmap` (`PCMU`, `PCMA`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The byte that encodes silence.
    pub fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => ULAW_SILENCE,
            Codec::Pcma => ALAW_SILENCE,
        }
    }

    /// Encodes one sample.
    pub fn encode_sample(self, sample: i16) -> u8 {
        match self {
            Codec::Pcmu => linear_to_ulaw(sample),
            Codec::Pcma => linear_to_alaw(sample),
        }
    }

    /// Decodes one byte.
    pub fn decode_sample(self, byte: u8) -> i16 {
        match self {
            Codec::Pcmu => ulaw_to_linear(byte),
            Codec::Pcma => alaw_to_linear(byte),
        }
    }

    /// Encodes samples, appending one byte per sample to `out`.
    pub fn encode(self, samples: &[i16], out: &mut Vec<u8>) {
        out.extend(samples.iter().map(|&s| self.encode_sample(s)));
    }

    /// Decodes bytes, appending one sample per byte to `out`.
    pub fn decode(self, bytes: &[u8], out: &mut Vec<i16>) {
        let table = match self {
            Codec::Pcmu => &TABLES.ulaw_to_linear,
            Codec::Pcma => &TABLES.alaw_to_linear,
        };
        out.extend(bytes.iter().map(|&b| table[usize::from(b)]));
    }

    /// Transcodes `bytes` of codec `self` into codec `to`, in place (nothing happens when the
    /// codecs are equal).
    pub fn transcode_in_place(self, to: Codec, bytes: &mut [u8]) {
        let table = match (self, to) {
            (Codec::Pcmu, Codec::Pcma) => &TABLES.ulaw_to_alaw,
            (Codec::Pcma, Codec::Pcmu) => &TABLES.alaw_to_ulaw,
            _ => return,
        };
        for b in bytes {
            *b = table[usize::from(*b)];
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ulaw_values() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0xFE), 8);
        assert_eq!(ulaw_to_linear(0x7E), -8);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_ulaw(3), 0xFF);
        assert_eq!(linear_to_ulaw(8), 0xFE);
        assert_eq!(linear_to_ulaw(-8), 0x7E);
    }

    #[test]
    fn known_alaw_values() {
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn silence_bytes() {
        assert_eq!(Codec::Pcmu.silence(), linear_to_ulaw(0));
        assert_eq!(Codec::Pcma.silence(), linear_to_alaw(0));
    }

    #[test]
    fn every_byte_round_trips_through_linear() {
        for b in 0..=255u8 {
            let u = ulaw_to_linear(b);
            // µ-law has two zeros (0x7F, 0xFF); both re-encode to a byte decoding to 0
            assert_eq!(ulaw_to_linear(linear_to_ulaw(u)), u, "ulaw {b:#04x}");
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "alaw {b:#04x}");
        }
    }

    /// Quantisation error of a round trip is at most half a step of the segment: µ-law steps
    /// are 2^(seg+3) wide (≤ 1024), A-law 2^(seg+4) (≤ 1024, 16 in the first two segments).
    #[test]
    fn linear_round_trip_within_quantisation_error() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let mag = i32::from(s).abs();
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(s)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(s)));
            let ulaw_step = if mag < 256 { 16 } else { (mag / 16).max(16) };
            let alaw_step = if mag < 512 { 16 } else { (mag / 16).max(16) };
            assert!((u - i32::from(s)).abs() <= ulaw_step, "ulaw {s} -> {u}");
            assert!((a - i32::from(s)).abs() <= alaw_step, "alaw {s} -> {a}");
        }
    }

    #[test]
    fn encoding_is_monotonic() {
        let mut last_u = i32::MIN;
        let mut last_a = i32::MIN;
        for s in i16::MIN..=i16::MAX {
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(s)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(s)));
            assert!(u >= last_u, "ulaw not monotonic at {s}");
            assert!(a >= last_a, "alaw not monotonic at {s}");
            last_u = u;
            last_a = a;
        }
    }

    #[test]
    fn transcoding_preserves_the_signal() {
        for b in 0..=255u8 {
            let lin = i32::from(ulaw_to_linear(b));
            let via_a = i32::from(alaw_to_linear(ulaw_to_alaw(b)));
            let tolerance = (lin.abs() / 16).max(16);
            assert!(
                (lin - via_a).abs() <= tolerance,
                "{b:#04x}: {lin} vs {via_a}"
            );
            let lin = i32::from(alaw_to_linear(b));
            let via_u = i32::from(ulaw_to_linear(alaw_to_ulaw(b)));
            let tolerance = (lin.abs() / 16).max(16);
            assert!(
                (lin - via_u).abs() <= tolerance,
                "{b:#04x}: {lin} vs {via_u}"
            );
        }
        let mut bytes = [0xFFu8, 0x00, 0x80];
        Codec::Pcmu.transcode_in_place(Codec::Pcma, &mut bytes);
        assert_eq!(bytes, [0xD5, 0x2A, 0xAA]);
        Codec::Pcma.transcode_in_place(Codec::Pcmu, &mut bytes);
        // A-law has no zero: its silence is +8, which µ-law represents exactly
        assert_eq!(bytes, [0xFE, 0x00, 0x80]);
    }

    #[test]
    fn codec_payload_types() {
        assert_eq!(Codec::from_payload_type(0), Some(Codec::Pcmu));
        assert_eq!(Codec::from_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::from_payload_type(18), None);
        let mut enc = Vec::new();
        Codec::Pcma.encode(&[0, 1000, -1000], &mut enc);
        let mut dec = Vec::new();
        Codec::Pcma.decode(&enc, &mut dec);
        assert_eq!(dec.len(), 3);
        assert!((dec[1] - 1000).abs() < 40);
    }
}
