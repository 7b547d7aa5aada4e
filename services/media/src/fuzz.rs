//! The fuzz targets of media (docs/DECISIONS.md "Fuzzing"): what reads SDP bodies and RTP
//! packets from anyone. Run by libFuzzer (`fuzz/fuzz_targets/{sdp,rtp}.rs`,
//! `scripts/fuzz.sh`) and smoked by the tests below.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::rfc4733::{DtmfDetector, TelephoneEvent};
use crate::sdp::{self, Direction, LocalMedia, Sdp};
use crate::{Codec, RtpHeader};

/// An SDP body (an INVITE's offer, a phone's answer, a re-INVITE) through the parser and
/// offer/answer. What parses is written back and parses to the same description; every
/// answer we write parses back to itself.
pub fn sdp(data: &[u8]) {
    let Ok(offer) = Sdp::parse(data) else {
        return;
    };
    let written = offer.to_string();
    let again = Sdp::parse(written.as_bytes())
        .unwrap_or_else(|e| panic!("what we write of a parsed sdp does not parse: {e}\n{written}"));
    assert_eq!(again, offer, "a parsed sdp written back parses differently");
    let _ = offer.remote_media();
    let _ = sdp::choose_codec(&offer);
    let _ = sdp::is_hold(&offer);
    for (address, direction) in [
        (
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
            Direction::SendRecv,
        ),
        (IpAddr::V6(Ipv6Addr::LOCALHOST), Direction::SendOnly),
    ] {
        let local = LocalMedia {
            address,
            port: 20_000,
            session_id: 1,
            session_version: 2,
            direction,
        };
        let Ok(answer) = sdp::answer(&offer, &local) else {
            continue;
        };
        let text = answer.sdp.to_string();
        let back = Sdp::parse(text.as_bytes())
            .unwrap_or_else(|e| panic!("our answer does not parse: {e}\n{text}"));
        assert_eq!(back, answer.sdp, "our answer parses differently");
        // the answer's one audio stream is ours, with the codec chosen
        let ours = back.remote_media().expect("our answer has usable audio");
        assert_eq!(ours.codec, answer.remote.codec);
        assert_eq!(ours.address.map(|a| a.port()), Some(20_000));
        assert_eq!(
            answer.direction,
            answer.remote.direction.mirrored().intersect(direction)
        );
        let _ = answer.remote.params();
        let _ = answer.remote.is_hold();
    }
}

/// An RTP packet: the header and, for telephone-event and G.711 payloads, the payload.
/// What parses is written back to the same header and payload.
pub fn rtp(data: &[u8]) {
    if let Ok((header, payload)) = RtpHeader::parse(data) {
        let packet = header.to_packet(payload);
        let (h, p) = RtpHeader::parse(&packet).expect("a packet we write parses");
        assert_eq!(h, header);
        assert_eq!(p, payload);
        let mut out = vec![0u8; packet.len()];
        assert_eq!(header.write(payload, &mut out).ok(), Some(packet.len()));
        assert_eq!(out, packet);
        payloads(header.ssrc, header.timestamp, payload);
    }
    // payloads also on their own: the fuzzer need not build a header first
    payloads(0, 0, data);
}

fn payloads(ssrc: u32, timestamp: u32, payload: &[u8]) {
    if let Ok(event) = TelephoneEvent::parse(payload) {
        let back = TelephoneEvent::parse(&event.to_bytes()).expect("4 bytes parse");
        assert_eq!(back, event);
        let mut detector = DtmfDetector::new();
        let first = detector.on_packet(ssrc, timestamp, payload);
        assert_eq!(
            first,
            event.key(),
            "a press is reported on its first packet"
        );
        assert_eq!(
            detector.on_packet(ssrc, timestamp, payload),
            None,
            "and once"
        );
    }
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let mut samples = Vec::with_capacity(payload.len());
        codec.decode(payload, &mut samples);
        assert_eq!(samples.len(), payload.len());
        // decoding what we encode of decoded audio gives the same audio
        let mut encoded = Vec::with_capacity(samples.len());
        codec.encode(&samples, &mut encoded);
        let mut again = Vec::with_capacity(encoded.len());
        codec.decode(&encoded, &mut again);
        assert_eq!(again, samples);
        let other = match codec {
            Codec::Pcmu => Codec::Pcma,
            Codec::Pcma => Codec::Pcmu,
        };
        let mut bytes = payload.to_vec();
        codec.transcode_in_place(other, &mut bytes);
        assert_eq!(bytes.len(), payload.len());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzz_smoke_sdp() {
        let r = callgrid_fuzz_smoke::run("sdp", 20_000, 4_096, super::sdp);
        assert!(r.seeds > 0);
    }

    #[test]
    fn fuzz_smoke_rtp() {
        let r = callgrid_fuzz_smoke::run("rtp", 20_000, 1_500, super::rtp);
        assert!(r.seeds > 0);
    }
}
