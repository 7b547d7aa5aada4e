//! The SDP parser never panics, whatever the input; what we write parses back the same.

use std::net::{IpAddr, Ipv4Addr};

use callgrid_media::sdp::{answer, offer, Direction, LocalMedia, Sdp};
use proptest::prelude::*;

/// Lines that look like SDP, some valid, many broken.
fn sdp_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("v=0".to_owned()),
        Just("o=- 1 1 IN IP4 10.0.0.1".to_owned()),
        Just("s=-".to_owned()),
        Just("t=0 0".to_owned()),
        "c=IN IP[46] [0-9a-f.:/]{0,20}".prop_map(|s| s),
        "m=(audio|video|application) [0-9/]{0,7} (RTP/AVP|RTP/SAVP|UDP) [0-9 ]{0,12}"
            .prop_map(|s| s),
        "a=rtpmap:[0-9]{0,4} [A-Za-z-]{0,16}/[0-9]{0,6}(/[0-9]{0,3})?".prop_map(|s| s),
        "a=fmtp:[0-9]{0,4} [0-9,-]{0,8}".prop_map(|s| s),
        "a=ptime:[0-9x]{0,6}".prop_map(|s| s),
        "a=(sendrecv|sendonly|recvonly|inactive)".prop_map(|s| s),
        "[a-z]=[ -~]{0,30}".prop_map(|s| s),
        "[ -~]{0,20}".prop_map(|s| s),
    ]
}

fn exercise(sdp: &Sdp) {
    let local = LocalMedia::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 20000);
    let _ = sdp.remote_media();
    let _ = callgrid_media::sdp::choose_codec(sdp);
    let _ = callgrid_media::sdp::is_hold(sdp);
    if let Ok(a) = answer(sdp, &local) {
        // an answer we write always parses back to itself
        let text = a.sdp.to_string();
        assert_eq!(Sdp::parse(text.as_bytes()).unwrap(), a.sdp);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(sdp) = Sdp::parse(&bytes) {
            exercise(&sdp);
        }
    }

    #[test]
    fn sdp_like_lines_never_panic(
        lines in proptest::collection::vec(sdp_line(), 0..16),
        crlf in any::<bool>(),
    ) {
        let mut lines = lines;
        lines.insert(0, "v=0".to_owned());
        let body = lines.join(if crlf { "\r\n" } else { "\n" });
        match Sdp::parse(body.as_bytes()) {
            Ok(sdp) => exercise(&sdp),
            Err(e) => {
                let message = e.to_string();
                prop_assert!(message.starts_with("sdp line "), "{}", message);
            }
        }
    }

    #[test]
    fn our_offers_round_trip(
        ip in any::<[u8; 4]>(),
        port in 1u16..,
        session_id in any::<u64>(),
        version in any::<u64>(),
        direction in prop_oneof![
            Just(Direction::SendRecv),
            Just(Direction::SendOnly),
            Just(Direction::RecvOnly),
            Just(Direction::Inactive),
        ],
    ) {
        let local = LocalMedia {
            address: IpAddr::V4(Ipv4Addr::from(ip)),
            port,
            session_id,
            session_version: version,
            direction,
        };
        let ours = offer(&local);
        let parsed = Sdp::parse(ours.to_string().as_bytes()).unwrap();
        prop_assert_eq!(&parsed, &ours);
        // answering our own offer mirrors the direction
        let answered = answer(&parsed, &LocalMedia { direction: Direction::SendRecv, ..local.clone() }).unwrap();
        prop_assert_eq!(answered.direction, direction.mirrored());
        prop_assert_eq!(answered.remote.telephone_event, Some(101));
    }
}
