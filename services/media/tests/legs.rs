//! Media legs over real UDP on 127.0.0.1: plain sockets play the caller and the agent.
//!
//! No timing assertions: packets are exchanged in small lock-step batches (so no socket
//! buffer can overflow on a loaded machine) and waits have generous timeouts.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use callgrid_media::g711::{linear_to_ulaw, ulaw_to_alaw};
use callgrid_media::rfc4733::{key_press_packets, DtmfDetector};
use callgrid_media::{
    Codec, DropReason, LegEvent, LegEventKind, MediaConfig, MediaEngine, MediaLeg, MediaParams,
    Prompt, RecordChannel, Recorder, RtpHeader,
};
use callgrid_testkit::eventually;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// How long a packet or an event may take; the counters `eventually` waits for are updated
/// just after a packet is sent, so they may lag the receiving socket by a moment.
const WAIT: Duration = Duration::from_secs(10);

fn config(first_port: u16) -> MediaConfig {
    MediaConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        ports: first_port..=first_port + 199,
        symmetric_rtp: false,
        ..MediaConfig::default()
    }
}

fn engine(first_port: u16) -> MediaEngine {
    MediaEngine::new(config(first_port)).unwrap()
}

/// As [`engine`], with the legs on the engine's own thread (as the SIP edge runs them).
fn engine_on_own_thread(first_port: u16) -> MediaEngine {
    MediaEngine::new_on_own_thread(config(first_port)).unwrap()
}

/// Waits until `port` can be bound again (its leg's task has ended).
async fn port_released(port: u16) {
    eventually(&format!("port {port} released"), WAIT, async || {
        std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
    })
    .await;
}

async fn endpoint() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

fn params(socket: &UdpSocket, codec: Codec, telephone_event: Option<u8>) -> MediaParams {
    MediaParams {
        remote: Some(socket.local_addr().unwrap()),
        codec,
        telephone_event,
        signalling_peer: None,
    }
}

async fn recv_rtp(socket: &UdpSocket) -> (RtpHeader, Vec<u8>) {
    let mut buf = [0u8; 2048];
    let (n, _) = timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .expect("no rtp packet within 10 s")
        .unwrap();
    let (h, payload) = RtpHeader::parse(&buf[..n]).unwrap();
    (h, payload.to_vec())
}

async fn next_event(events: &mut mpsc::Receiver<LegEvent>) -> LegEvent {
    timeout(WAIT, events.recv())
        .await
        .expect("no leg event within 10 s")
        .expect("event channel closed")
}

/// Asserts that a stream of received headers is one continuous stream: one SSRC, sequence +1,
/// timestamp +160 per 20 ms packet.
fn assert_continuous(headers: &[RtpHeader]) {
    for pair in headers.windows(2) {
        assert_eq!(pair[1].ssrc, pair[0].ssrc, "ssrc changed");
        assert_eq!(
            pair[1].sequence,
            pair[0].sequence.wrapping_add(1),
            "sequence gap"
        );
        assert_eq!(
            pair[1].timestamp,
            pair[0].timestamp.wrapping_add(160),
            "timestamp gap"
        );
    }
}

/// Bridges two legs and waits until both sides apply it.
async fn bridge(a: &MediaLeg, b: &MediaLeg) {
    a.bridge(b).unwrap();
    a.flush().await.unwrap();
    b.flush().await.unwrap();
}

fn payload(i: usize) -> Vec<u8> {
    (0..160).map(|j| ((i * 7 + j) % 256) as u8).collect()
}

fn rtp(pt: u8, ssrc: u32, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    RtpHeader {
        payload_type: pt,
        marker,
        sequence: seq,
        timestamp: ts,
        ssrc,
    }
    .to_packet(payload)
}

/// The bridge relays every packet both ways, transcoding PCMU → PCMA toward the agent and
/// PCMA → PCMU toward the caller, renumbered into each leg's own stream; relayed in == sent
/// out, nothing dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_relays_every_packet_both_ways() {
    let engine = engine(31000);
    let (events_tx, _events) = mpsc::channel(64);
    let caller_leg = engine.open_leg(events_tx.clone()).await.unwrap();
    let agent_leg = engine.open_leg(events_tx).await.unwrap();
    assert_eq!(caller_leg.port() % 2, 0);
    assert_eq!(agent_leg.port() % 2, 0);
    let caller = endpoint().await;
    let agent = endpoint().await;
    caller_leg
        .set_params(params(&caller, Codec::Pcmu, Some(101)))
        .unwrap();
    agent_leg
        .set_params(params(&agent, Codec::Pcma, Some(101)))
        .unwrap();
    bridge(&caller_leg, &agent_leg).await;

    const N: usize = 500;
    const BATCH: usize = 25;
    let mut at_agent = Vec::new();
    let mut at_caller = Vec::new();
    for batch in 0..N / BATCH {
        for k in 0..BATCH {
            let i = batch * BATCH + k;
            let seq = 1000u16.wrapping_add(i as u16);
            let ts = 5000u32.wrapping_add(160 * i as u32);
            caller
                .send_to(
                    &rtp(0, 0xCA11, seq, ts, i == 0, &payload(i)),
                    caller_leg.local_addr(),
                )
                .await
                .unwrap();
            agent
                .send_to(
                    &rtp(
                        8,
                        0xA6E7,
                        seq.wrapping_add(30000),
                        ts.wrapping_add(0x5555_0000),
                        i == 0,
                        &payload(i + 1),
                    ),
                    agent_leg.local_addr(),
                )
                .await
                .unwrap();
        }
        for _ in 0..BATCH {
            at_agent.push(recv_rtp(&agent).await);
            at_caller.push(recv_rtp(&caller).await);
        }
    }

    // toward the agent: PCMA, transcoded byte-wise, one continuous stream
    let headers: Vec<RtpHeader> = at_agent.iter().map(|(h, _)| *h).collect();
    assert!(headers.iter().all(|h| h.payload_type == 8));
    assert!(headers[0].marker);
    assert!(headers[1..].iter().all(|h| !h.marker));
    assert_ne!(headers[0].ssrc, 0xCA11, "the agent sees the leg's own ssrc");
    assert_continuous(&headers);
    for (i, (_, p)) in at_agent.iter().enumerate() {
        let expected: Vec<u8> = payload(i).iter().map(|&b| ulaw_to_alaw(b)).collect();
        assert_eq!(p, &expected, "payload {i} toward the agent");
    }
    // toward the caller: PCMU
    let headers: Vec<RtpHeader> = at_caller.iter().map(|(h, _)| *h).collect();
    assert!(headers.iter().all(|h| h.payload_type == 0));
    assert_continuous(&headers);
    for (i, (_, p)) in at_caller.iter().enumerate() {
        let expected: Vec<u8> = payload(i + 1)
            .iter()
            .map(|&b| callgrid_media::g711::alaw_to_ulaw(b))
            .collect();
        assert_eq!(p, &expected, "payload {i} toward the caller");
    }

    // counters: relayed in == sent out, nothing dropped
    eventually("relay counters", WAIT, async || {
        caller_leg.counters().relayed == N as u64 && agent_leg.counters().relayed == N as u64
    })
    .await;
    let c = caller_leg.counters();
    let a = agent_leg.counters();
    assert_eq!(
        (c.received, c.relayed, c.dropped_total()),
        (N as u64, N as u64, 0)
    );
    assert_eq!(
        (a.received, a.relayed, a.dropped_total()),
        (N as u64, N as u64, 0)
    );
    assert_eq!(a.sent, c.relayed);
    assert_eq!(c.sent, a.relayed);
    assert_eq!((c.played, a.played), (0, 0));
    let g = engine.counters();
    assert_eq!(g.received, 2 * N as u64);
    assert_eq!(g.relayed, g.sent);
    caller_leg.close().await;
    agent_leg.close().await;
}

/// Same codec on both sides: the payload is relayed unchanged; telephone-events are relayed
/// with the other side's payload type (and reported as a digit on the leg they arrived on);
/// dropped toward a side without telephone-event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_codec_relay_and_telephone_events() {
    let engine = engine(31200);
    let (events_tx, mut events) = mpsc::channel(64);
    let caller_leg = engine.open_leg(events_tx.clone()).await.unwrap();
    let agent_leg = engine.open_leg(events_tx).await.unwrap();
    let caller = endpoint().await;
    let agent = endpoint().await;
    caller_leg
        .set_params(params(&caller, Codec::Pcmu, Some(96)))
        .unwrap();
    agent_leg
        .set_params(params(&agent, Codec::Pcmu, Some(101)))
        .unwrap();
    bridge(&caller_leg, &agent_leg).await;

    for i in 0..10u16 {
        caller
            .send_to(
                &rtp(0, 7, i, 160 * u32::from(i), false, &payload(usize::from(i))),
                caller_leg.local_addr(),
            )
            .await
            .unwrap();
        let (h, p) = recv_rtp(&agent).await;
        assert_eq!(h.payload_type, 0);
        assert_eq!(p, payload(usize::from(i)), "relayed unchanged");
    }
    for packet in key_press_packets('5', 96, 7, 10, 1600, 60).unwrap() {
        caller
            .send_to(&packet, caller_leg.local_addr())
            .await
            .unwrap();
    }
    let mut detector = DtmfDetector::new();
    let mut keys = Vec::new();
    let mut headers = Vec::new();
    for _ in 0..6 {
        let (h, p) = recv_rtp(&agent).await;
        assert_eq!(
            h.payload_type, 101,
            "telephone-event with the agent's payload type"
        );
        keys.extend(detector.on_packet(h.ssrc, h.timestamp, &p));
        headers.push(h);
    }
    assert_eq!(keys, vec!['5']);
    assert!(headers.iter().all(|h| h.timestamp == headers[0].timestamp));
    let event = next_event(&mut events).await;
    assert_eq!(event.leg, caller_leg.id());
    assert_eq!(event.kind, LegEventKind::Digit('5'));

    // the agent's side without telephone-event: events are dropped, not relayed
    agent_leg
        .set_params(params(&agent, Codec::Pcmu, None))
        .unwrap();
    agent_leg.flush().await.unwrap();
    for packet in key_press_packets('6', 96, 7, 16, 3200, 20).unwrap() {
        caller
            .send_to(&packet, caller_leg.local_addr())
            .await
            .unwrap();
    }
    caller
        .send_to(
            &rtp(0, 7, 20, 3520, false, &payload(0)),
            caller_leg.local_addr(),
        )
        .await
        .unwrap();
    let (h, _) = recv_rtp(&agent).await;
    assert_eq!(h.payload_type, 0, "the events were not relayed");
    assert_eq!(next_event(&mut events).await.kind, LegEventKind::Digit('6'));
    assert_eq!(
        caller_leg.counters().dropped(DropReason::NoTelephoneEvent),
        4
    );
}

/// A played prompt goes out as paced 20 ms frames, one continuous stream with a marker on
/// the first packet, then `PlayDone`; a loop wraps around without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playing_a_prompt_sends_continuous_frames_then_reports_done() {
    let engine = engine(31400);
    let (events_tx, mut events) = mpsc::channel(64);
    let leg = engine.open_leg(events_tx).await.unwrap();
    let far = endpoint().await;
    leg.set_params(params(&far, Codec::Pcma, None)).unwrap();
    let samples: Vec<i16> = (0..50 * 160)
        .map(|i| ((i as f64 * 0.3).sin() * 8000.0) as i16)
        .collect();
    let prompt = Arc::new(Prompt::from_samples("tone", &samples));
    let started = std::time::Instant::now();
    let id = leg.play(vec![Arc::clone(&prompt)]).unwrap();
    let mut headers = Vec::new();
    for i in 0..50 {
        let (h, p) = recv_rtp(&far).await;
        assert_eq!(p, prompt.frame(Codec::Pcma, i).unwrap(), "frame {i}");
        headers.push(h);
    }
    let event = next_event(&mut events).await;
    assert_eq!(event.kind, LegEventKind::PlayDone(id));
    // paced, not burst: 50 frames take about a second (lower bound only)
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(headers.iter().all(|h| h.payload_type == 8));
    assert!(headers[0].marker);
    assert!(headers[1..].iter().all(|h| !h.marker));
    assert_continuous(&headers);
    let c = leg.counters();
    assert_eq!((c.played, c.sent), (50, 50));

    // loop a 3-frame prompt: continuous across the wrap, until stopped
    let short = Arc::new(Prompt::from_samples("short", &samples[..480]));
    leg.play_loop(Arc::clone(&short)).unwrap();
    let mut looped = Vec::new();
    for i in 0..8 {
        let (h, p) = recv_rtp(&far).await;
        assert_eq!(p, short.frame(Codec::Pcma, i % 3).unwrap());
        looped.push(h);
    }
    assert!(looped[0].marker, "a new play starts a talk spurt");
    assert_continuous(&looped);
    assert_eq!(looped[0].ssrc, headers[0].ssrc);
    assert_eq!(looped[0].sequence, headers[49].sequence.wrapping_add(1));
    assert!(
        looped[0].timestamp.wrapping_sub(headers[49].timestamp) >= 160,
        "the timestamp moves on"
    );
    leg.stop_playing().unwrap();
    // silence mode sends silence frames
    leg.play_silence().unwrap();
    loop {
        let (h, p) = recv_rtp(&far).await;
        if h.marker {
            assert!(p.iter().all(|&b| b == Codec::Pcma.silence()));
            break;
        }
    }
    leg.stop_playing().unwrap();
    leg.close().await;
    // no PlayDone for loops and silence
    assert!(events.try_recv().is_err());
}

/// RFC 4733 digits are reported once per key press, even with the end packet sent three
/// times, whatever the leg is doing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_over_rtp_is_reported_once() {
    let engine = engine(31600);
    let (events_tx, mut events) = mpsc::channel(64);
    let leg = engine.open_leg(events_tx).await.unwrap();
    let caller = endpoint().await;
    leg.set_params(params(&caller, Codec::Pcmu, Some(101)))
        .unwrap();
    // a leg playing a prompt still listens
    leg.play_loop(Arc::new(Prompt::from_samples("s", &[0; 160])))
        .unwrap();
    let mut seq = 100u16;
    for (press, key) in ['5', '#', '5'].into_iter().enumerate() {
        let packets = key_press_packets(key, 101, 0xD7, seq, 8000 * press as u32, 100).unwrap();
        seq = seq.wrapping_add(packets.len() as u16);
        for packet in &packets {
            caller.send_to(packet, leg.local_addr()).await.unwrap();
        }
        // a late, duplicated end packet changes nothing
        caller
            .send_to(packets.last().unwrap(), leg.local_addr())
            .await
            .unwrap();
    }
    let mut keys = Vec::new();
    for _ in 0..3 {
        let event = next_event(&mut events).await;
        assert_eq!(event.leg, leg.id());
        match event.kind {
            LegEventKind::Digit(k) => keys.push(k),
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(keys, vec!['5', '#', '5']);
    // a fourth press proves no duplicate is queued before it
    for packet in key_press_packets('9', 101, 0xD7, seq, 40_000, 40).unwrap() {
        caller.send_to(&packet, leg.local_addr()).await.unwrap();
    }
    assert_eq!(next_event(&mut events).await.kind, LegEventKind::Digit('9'));
    leg.close().await;
}

/// A leg sends a digit as telephone-events: start with marker, updates, three end packets,
/// one timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leg_sends_a_digit() {
    let engine = engine(31800);
    let (events_tx, _events) = mpsc::channel(64);
    let leg = engine.open_leg(events_tx).await.unwrap();
    let far = endpoint().await;
    leg.set_params(params(&far, Codec::Pcmu, Some(101)))
        .unwrap();
    leg.send_digit('4', Duration::from_millis(100)).unwrap();
    assert!(leg.send_digit('x', Duration::from_millis(100)).is_err());
    let mut detector = DtmfDetector::new();
    let mut keys = Vec::new();
    let mut headers = Vec::new();
    for _ in 0..8 {
        let (h, p) = recv_rtp(&far).await;
        assert_eq!(h.payload_type, 101);
        keys.extend(detector.on_packet(h.ssrc, h.timestamp, &p));
        headers.push(h);
    }
    assert_eq!(keys, vec!['4']);
    assert!(headers[0].marker);
    assert!(headers.iter().all(|h| h.timestamp == headers[0].timestamp));
    for pair in headers.windows(2) {
        assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
    }
    leg.close().await;
}

/// Hold: a paused leg sends nothing (relayed packets count as dropped `PeerPaused`); resuming
/// restarts with a marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_pauses_sending_toward_one_side() {
    let engine = engine(32000);
    let (events_tx, _events) = mpsc::channel(64);
    let caller_leg = engine.open_leg(events_tx.clone()).await.unwrap();
    let agent_leg = engine.open_leg(events_tx).await.unwrap();
    let caller = endpoint().await;
    let agent = endpoint().await;
    caller_leg
        .set_params(params(&caller, Codec::Pcmu, None))
        .unwrap();
    agent_leg
        .set_params(params(&agent, Codec::Pcmu, None))
        .unwrap();
    bridge(&caller_leg, &agent_leg).await;
    // the caller puts the agent on hold (re-INVITE sendonly): stop sending to the caller
    caller_leg.set_paused(true).unwrap();
    caller_leg.flush().await.unwrap();
    for i in 0..5u16 {
        agent
            .send_to(
                &rtp(0, 9, i, 160 * u32::from(i), false, &payload(1)),
                agent_leg.local_addr(),
            )
            .await
            .unwrap();
        // the caller still talks to the agent
        caller
            .send_to(
                &rtp(0, 8, i, 160 * u32::from(i), false, &payload(2)),
                caller_leg.local_addr(),
            )
            .await
            .unwrap();
        recv_rtp(&agent).await;
    }
    caller_leg.set_paused(false).unwrap();
    caller_leg.flush().await.unwrap();
    agent
        .send_to(
            &rtp(0, 9, 5, 800, false, &payload(3)),
            agent_leg.local_addr(),
        )
        .await
        .unwrap();
    let (h, p) = recv_rtp(&caller).await;
    assert!(h.marker, "resuming starts a talk spurt");
    assert_eq!(
        p,
        payload(3),
        "the first packet the caller gets is after the hold"
    );
    eventually("relay counters", WAIT, async || {
        agent_leg.counters().relayed == 1 && caller_leg.counters().relayed == 5
    })
    .await;
    assert_eq!(agent_leg.counters().dropped(DropReason::PeerPaused), 5);
}

// ------------------------------------------------------------------ strict RTP
//
// On loopback: the signalling peer (the SIP phone or trunk) is 127.0.0.1; a phone behind NAT
// names a private address in its SDP (here 127.0.0.3, where nothing listens) and sends from
// 127.0.0.1; an outsider sends from 127.0.0.2.

/// The signalling peer's IP address in these tests.
const PEER_IP: &str = "127.0.0.1";
/// The address a NAT'ed phone's SDP names (its private address).
const PRIVATE: &str = "127.0.0.3:4000";

/// An engine as the edge configures it (symmetric RTP on) with a latch window of `window`.
fn strict_engine(first_port: u16, window: Duration) -> MediaEngine {
    MediaEngine::new(MediaConfig {
        symmetric_rtp: true,
        latch_window: window,
        ..config(first_port)
    })
    .unwrap()
}

/// A latch window no loaded machine can overrun: tests of what happens within the window
/// must not depend on how fast the machine is.
const LONG_WINDOW: Duration = Duration::from_secs(3600);

fn peer_ip() -> Option<IpAddr> {
    Some(PEER_IP.parse().unwrap())
}

/// The params of a phone behind NAT: its SDP names its private address, its SIP comes from
/// the peer's IP.
fn natted_params(telephone_event: Option<u8>) -> MediaParams {
    MediaParams {
        remote: Some(PRIVATE.parse().unwrap()),
        codec: Codec::Pcmu,
        telephone_event,
        signalling_peer: None,
    }
    .signalled_by(peer_ip())
}

async fn outsider() -> UdpSocket {
    UdpSocket::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2 (loopback is 127.0.0.0/8 on Linux)")
}

/// A payload that is loud audio in PCMU (a square wave of ±8000).
fn loud() -> Vec<u8> {
    (0..160)
        .map(|i| linear_to_ulaw(if i % 20 < 10 { 8000 } else { -8000 }))
        .collect()
}

/// Sends one key press (RFC 4733, payload type 101) from `from` to `leg`.
async fn press(from: &UdpSocket, leg: &MediaLeg, key: char, ssrc: u32, seq: u16, ts: u32) {
    for packet in key_press_packets(key, 101, ssrc, seq, ts, 60).unwrap() {
        from.send_to(&packet, leg.local_addr()).await.unwrap();
    }
}

/// RTP from a third address is dropped and counted as `foreign_source` before anything else
/// sees it: its audio is neither relayed nor recorded, its key presses are not reported. The
/// leg's remote (and a second leg's) are served as usual meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_from_a_foreign_source_is_dropped_and_counted() {
    let engine = strict_engine(33200, LONG_WINDOW);
    let (events_tx, mut events) = mpsc::channel(64);
    let caller_leg = engine.open_leg(events_tx.clone()).await.unwrap();
    let agent_leg = engine.open_leg(events_tx).await.unwrap();
    let caller = endpoint().await;
    let agent = endpoint().await;
    let intruder = outsider().await;
    caller_leg
        .set_params(params(&caller, Codec::Pcmu, Some(101)).signalled_by(peer_ip()))
        .unwrap();
    agent_leg
        .set_params(params(&agent, Codec::Pcmu, Some(101)).signalled_by(peer_ip()))
        .unwrap();
    bridge(&caller_leg, &agent_leg).await;
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::start(dir.path().join("call.wav")).await.unwrap();
    caller_leg
        .set_tap(Some(recorder.tap(RecordChannel::Left)))
        .unwrap();
    caller_leg.flush().await.unwrap();

    // the intruder talks and presses 5 (and sends a packet that is not even RTP)
    const AUDIO: u16 = 20;
    for i in 0..AUDIO {
        intruder
            .send_to(
                &rtp(0, 0xBAD, i, 160 * u32::from(i), i == 0, &loud()),
                caller_leg.local_addr(),
            )
            .await
            .unwrap();
    }
    press(
        &intruder,
        &caller_leg,
        '5',
        0xBAD,
        AUDIO,
        160 * u32::from(AUDIO),
    )
    .await;
    intruder
        .send_to(b"not rtp", caller_leg.local_addr())
        .await
        .unwrap();
    let intruded = u64::from(AUDIO) + 6 + 1;
    eventually("the intruder's packets", WAIT, async || {
        caller_leg.counters().received == intruded
    })
    .await;

    // the caller, from its SDP's address (silence): relayed, its key reported
    let quiet = vec![Codec::Pcmu.silence(); 160];
    caller
        .send_to(&rtp(0, 7, 1, 160, true, &quiet), caller_leg.local_addr())
        .await
        .unwrap();
    let (_, p) = recv_rtp(&agent).await;
    assert_eq!(p, quiet, "the first packet the agent gets is the caller's");
    press(&caller, &caller_leg, '7', 7, 2, 320).await;
    let event = next_event(&mut events).await;
    assert_eq!(
        (event.leg, event.kind),
        (caller_leg.id(), LegEventKind::Digit('7')),
        "the intruder's 5 was not reported"
    );
    // the agent's side is untouched: the agent still reaches the caller
    agent
        .send_to(
            &rtp(0, 9, 1, 160, true, &payload(2)),
            agent_leg.local_addr(),
        )
        .await
        .unwrap();
    let (_, p) = recv_rtp(&caller).await;
    assert_eq!(p, payload(2));

    eventually("the caller's packets", WAIT, async || {
        caller_leg.counters().received == intruded + 7
    })
    .await;
    let c = caller_leg.counters();
    assert_eq!(c.dropped(DropReason::ForeignSource), intruded);
    assert_eq!(
        c.dropped(DropReason::Malformed),
        0,
        "checked after the source"
    );
    assert_eq!(c.relayed, 7, "only the caller's packets are relayed");
    assert_eq!(
        c.received,
        c.relayed + c.discarded + c.dropped_total(),
        "every packet accounted for"
    );
    assert_eq!(
        engine.counters().dropped(DropReason::ForeignSource),
        intruded
    );
    assert_eq!(DropReason::ForeignSource.as_str(), "foreign_source");

    // nothing of the intruder's loud audio was recorded (the caller sent silence)
    let recording = recorder.finalize().await.unwrap();
    let mut wav = hound::WavReader::open(&recording.path).unwrap();
    let left_loud = wav
        .samples::<i16>()
        .map(Result::unwrap)
        .step_by(2)
        .filter(|s| s.abs() > 1000)
        .count();
    assert_eq!(left_loud, 0, "the intruder's audio was recorded");
    assert!(events.try_recv().is_err(), "no other event (no latch)");
    caller_leg.close().await;
    agent_leg.close().await;
}

/// A phone behind NAT: its SDP names a private address, its RTP comes from another port of
/// the signalling peer's address. Within the window the leg latches to that source, once:
/// it reports it, relays from it and sends to it; a second source of the same address
/// afterwards is dropped (its audio not relayed, its key presses not reported).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_natted_phone_is_latched_once_within_the_window() {
    let engine = strict_engine(33400, LONG_WINDOW);
    let (events_tx, mut events) = mpsc::channel(64);
    let caller_leg = engine.open_leg(events_tx.clone()).await.unwrap();
    let agent_leg = engine.open_leg(events_tx).await.unwrap();
    let phone = endpoint().await;
    let agent = endpoint().await;
    caller_leg.set_params(natted_params(Some(101))).unwrap();
    agent_leg
        .set_params(params(&agent, Codec::Pcmu, Some(101)).signalled_by(peer_ip()))
        .unwrap();
    bridge(&caller_leg, &agent_leg).await;

    phone
        .send_to(
            &rtp(0, 1, 1, 160, true, &payload(1)),
            caller_leg.local_addr(),
        )
        .await
        .unwrap();
    let event = next_event(&mut events).await;
    assert_eq!(
        (event.leg, event.kind),
        (
            caller_leg.id(),
            LegEventKind::RemoteLearned(phone.local_addr().unwrap())
        )
    );
    let (_, p) = recv_rtp(&agent).await;
    assert_eq!(p, payload(1), "the latching packet itself is relayed");
    // the leg now sends to the phone's public source, not to its private address
    agent
        .send_to(
            &rtp(0, 9, 1, 160, true, &payload(2)),
            agent_leg.local_addr(),
        )
        .await
        .unwrap();
    let (_, p) = recv_rtp(&phone).await;
    assert_eq!(p, payload(2));

    // a second source of the same address: dropped, however soon
    let second = endpoint().await;
    for i in 0..5u16 {
        second
            .send_to(
                &rtp(0, 2, i, 160 * u32::from(i), i == 0, &payload(3)),
                caller_leg.local_addr(),
            )
            .await
            .unwrap();
    }
    press(&second, &caller_leg, '5', 2, 5, 800).await;
    eventually("the second source's packets", WAIT, async || {
        caller_leg.counters().dropped(DropReason::ForeignSource) == 11
    })
    .await;
    // the latched phone still gets through: its audio first, then its key is the one reported
    phone
        .send_to(
            &rtp(0, 1, 2, 320, false, &payload(4)),
            caller_leg.local_addr(),
        )
        .await
        .unwrap();
    let (_, p) = recv_rtp(&agent).await;
    assert_eq!(p, payload(4), "the second source's audio was not relayed");
    press(&phone, &caller_leg, '8', 1, 3, 480).await;
    let event = next_event(&mut events).await;
    assert_eq!(
        (event.leg, event.kind),
        (caller_leg.id(), LegEventKind::Digit('8')),
        "the second source neither latched nor pressed 5"
    );
    // and the leg still sends to the phone
    agent
        .send_to(
            &rtp(0, 9, 2, 320, false, &payload(5)),
            agent_leg.local_addr(),
        )
        .await
        .unwrap();
    let (_, p) = recv_rtp(&phone).await;
    assert_eq!(p, payload(5));
    assert_eq!(caller_leg.counters().dropped(DropReason::ForeignSource), 11);
    caller_leg.close().await;
    agent_leg.close().await;
}

/// The window ends 2 s (the default) after the remote was set: a new source of the
/// signalling peer's address after it is dropped, and the leg keeps sending to the SDP's
/// address. (No timing is asserted: the packet is sent after the window has passed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_window_a_new_source_is_dropped() {
    assert_eq!(MediaConfig::default().latch_window, Duration::from_secs(2));
    assert_eq!(callgrid_media::rtp::LATCH_WINDOW, Duration::from_secs(2));
    let engine = strict_engine(33600, MediaConfig::default().latch_window);
    let (events_tx, mut events) = mpsc::channel(64);
    let leg = engine.open_leg(events_tx).await.unwrap();
    let phone = endpoint().await;
    // the SDP names the phone's private address: the leg sends there, not to `phone`
    leg.set_params(natted_params(None)).unwrap();
    leg.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    phone
        .send_to(&rtp(0, 1, 1, 160, true, &payload(1)), leg.local_addr())
        .await
        .unwrap();
    eventually("the late packet", WAIT, async || {
        leg.counters().received == 1
    })
    .await;
    assert_eq!(leg.counters().dropped(DropReason::ForeignSource), 1);
    // not latched: the leg's frames go to the SDP's address, and none reach the phone
    // (checked after a play has ended, so its frames have all gone out)
    let id = leg
        .play(vec![Arc::new(Prompt::from_samples("x", &[100; 320]))])
        .unwrap();
    assert_eq!(
        next_event(&mut events).await.kind,
        LegEventKind::PlayDone(id)
    );
    let c = leg.counters();
    assert_eq!(c.played + c.play_errors, 2, "both frames went out");
    let mut buf = [0u8; 2048];
    assert!(
        timeout(Duration::from_millis(200), phone.recv_from(&mut buf))
            .await
            .is_err(),
        "nothing to the phone"
    );
    assert!(events.try_recv().is_err(), "no RemoteLearned");
    leg.close().await;
}

/// Without a signalling peer (or with symmetric RTP off) a leg never latches: media only
/// from the SDP's address, even from another port of the same address at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_signalling_peer_a_leg_never_latches() {
    for (first_port, legs, with_peer) in [
        (33800, strict_engine(33800, LONG_WINDOW), false),
        (34000, engine(34000), true),
    ] {
        let (events_tx, mut events) = mpsc::channel(64);
        let leg = legs.open_leg(events_tx).await.unwrap();
        let phone = endpoint().await;
        let other = endpoint().await;
        let peer = if with_peer { peer_ip() } else { None };
        leg.set_params(params(&phone, Codec::Pcmu, None).signalled_by(peer))
            .unwrap();
        leg.flush().await.unwrap();
        other
            .send_to(&rtp(0, 1, 1, 160, true, &payload(1)), leg.local_addr())
            .await
            .unwrap();
        phone
            .send_to(&rtp(0, 2, 1, 160, true, &payload(2)), leg.local_addr())
            .await
            .unwrap();
        eventually("both packets", WAIT, async || leg.counters().received == 2).await;
        let c = leg.counters();
        assert_eq!(
            (c.dropped(DropReason::ForeignSource), c.discarded),
            (1, 1),
            "engine from port {first_port}: the SDP's address is taken, the other dropped"
        );
        assert!(events.try_recv().is_err(), "no RemoteLearned");
        leg.close().await;
    }
}

/// New params (a re-INVITE) start the window again: the leg, latched to one source, may
/// latch once more, to a new source of the peer; the old one is then dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_params_reset_the_latch() {
    let engine = strict_engine(34200, LONG_WINDOW);
    let (events_tx, mut events) = mpsc::channel(64);
    let leg = engine.open_leg(events_tx).await.unwrap();
    let first = endpoint().await;
    let second = endpoint().await;
    leg.set_params(natted_params(None)).unwrap();
    leg.flush().await.unwrap();
    first
        .send_to(&rtp(0, 1, 1, 160, true, &payload(1)), leg.local_addr())
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut events).await.kind,
        LegEventKind::RemoteLearned(first.local_addr().unwrap())
    );
    second
        .send_to(&rtp(0, 2, 1, 160, true, &payload(2)), leg.local_addr())
        .await
        .unwrap();
    eventually("the second source's packet", WAIT, async || {
        leg.counters().dropped(DropReason::ForeignSource) == 1
    })
    .await;

    // the phone re-INVITEs (its NAT mapping changed): the same SDP, a new window
    leg.set_params(natted_params(None)).unwrap();
    leg.flush().await.unwrap();
    second
        .send_to(&rtp(0, 2, 2, 320, false, &payload(3)), leg.local_addr())
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut events).await.kind,
        LegEventKind::RemoteLearned(second.local_addr().unwrap())
    );
    first
        .send_to(&rtp(0, 1, 2, 320, false, &payload(4)), leg.local_addr())
        .await
        .unwrap();
    eventually("the first source's packet", WAIT, async || {
        leg.counters().received == 4
    })
    .await;
    let c = leg.counters();
    assert_eq!(c.dropped(DropReason::ForeignSource), 2);
    assert_eq!(c.discarded, 2, "the two latching packets were taken");
    // the leg now sends to the second source
    leg.play(vec![Arc::new(Prompt::from_samples("x", &[100; 160]))])
        .unwrap();
    recv_rtp(&second).await;
    leg.close().await;
}

/// Closing a leg releases its port (and stops its bridge partner from relaying to it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_releases_the_port() {
    let engine = engine(32400);
    let (events_tx, _events) = mpsc::channel(64);
    let a = engine.open_leg(events_tx.clone()).await.unwrap();
    let b = engine.open_leg(events_tx).await.unwrap();
    let far = endpoint().await;
    a.set_params(params(&far, Codec::Pcmu, None)).unwrap();
    b.set_params(params(&far, Codec::Pcmu, None)).unwrap();
    bridge(&a, &b).await;
    let port = b.port();
    assert!(engine.ports().is_leased(port));
    assert_eq!(engine.ports().in_use(), 2);
    b.close().await;
    assert!(!engine.ports().is_leased(port));
    assert_eq!(engine.ports().in_use(), 1);
    // the port can be bound again
    drop(std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap());
    // a's packets are now discarded (not bridged), not sent anywhere
    far.send_to(&rtp(0, 1, 1, 1, true, &payload(0)), a.local_addr())
        .await
        .unwrap();
    eventually("the packet", WAIT, async || a.counters().received == 1).await;
    let c = a.counters();
    assert_eq!((c.received, c.discarded, c.relayed), (1, 1, 0));
    // a handle dropped without close also closes
    drop(a);
    eventually("the port release", WAIT, async || {
        engine.ports().in_use() == 0
    })
    .await;
}

/// Recording a bridged call: one stereo WAV, caller left and agent right, of the recording's
/// length, both channels carrying audio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_both_legs_into_a_stereo_wav() {
    let engine = engine(32600);
    let (events_tx, _events) = mpsc::channel(64);
    let caller_leg = engine.open_leg(events_tx.clone()).await.unwrap();
    let agent_leg = engine.open_leg(events_tx).await.unwrap();
    let caller = endpoint().await;
    let agent = endpoint().await;
    caller_leg
        .set_params(params(&caller, Codec::Pcmu, None))
        .unwrap();
    agent_leg
        .set_params(params(&agent, Codec::Pcma, None))
        .unwrap();
    bridge(&caller_leg, &agent_leg).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recordings/acme/2025-01-31/call-1.wav");
    let started = std::time::Instant::now();
    let recorder = Recorder::start(&path).await.unwrap();
    caller_leg
        .set_tap(Some(recorder.tap(RecordChannel::Left)))
        .unwrap();
    agent_leg
        .set_tap(Some(recorder.tap(RecordChannel::Right)))
        .unwrap();
    caller_leg.flush().await.unwrap();
    agent_leg.flush().await.unwrap();

    const N: usize = 50;
    let tone = |freq: f64, i: usize| -> Vec<i16> {
        (0..160)
            .map(|j| {
                let t = (i * 160 + j) as f64 / 8000.0;
                ((t * freq * std::f64::consts::TAU).sin() * 8000.0) as i16
            })
            .collect()
    };
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    for i in 0..N {
        clock.tick().await;
        let left: Vec<u8> = tone(400.0, i).into_iter().map(linear_to_ulaw).collect();
        let mut right = Vec::new();
        Codec::Pcma.encode(&tone(600.0, i), &mut right);
        caller
            .send_to(
                &rtp(0, 1, i as u16, 160 * i as u32, i == 0, &left),
                caller_leg.local_addr(),
            )
            .await
            .unwrap();
        agent
            .send_to(
                &rtp(8, 2, i as u16, 160 * i as u32, i == 0, &right),
                agent_leg.local_addr(),
            )
            .await
            .unwrap();
        recv_rtp(&agent).await;
        recv_rtp(&caller).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let recording = recorder.finalize().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(recording.path, path);
    assert_eq!(recording.dropped_packets, 0);
    // the recording is as long as it lasted (whole 20 ms ticks), and at least the audio sent
    assert!(recording.duration >= Duration::from_millis(N as u64 * 20));
    assert!(
        recording.duration <= elapsed,
        "{recording:?} vs {elapsed:?}"
    );

    let mut wav = hound::WavReader::open(&path).unwrap();
    let spec = wav.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    assert_eq!(u64::from(wav.duration()), recording.frames);
    let samples: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
    let loud = |channel: usize| {
        samples
            .iter()
            .skip(channel)
            .step_by(2)
            .filter(|s| s.abs() > 1000)
            .count()
    };
    // a 8000-amplitude sine is above 1000 most of the time: at least half the audio sent
    // must be in each channel
    assert!(loud(0) >= N * 160 / 2, "left: {} loud samples", loud(0));
    assert!(loud(1) >= N * 160 / 2, "right: {} loud samples", loud(1));
    caller_leg.close().await;
    agent_leg.close().await;
}

/// An engine on its own thread (as the SIP edge runs it) relays like one on the caller's
/// runtime, and stops cleanly when dropped inside an async context.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_on_its_own_thread_relays_and_stops_cleanly() {
    let engine = engine_on_own_thread(32800);
    let (events_tx, _events) = mpsc::channel(64);
    let caller_leg = engine.open_leg(events_tx.clone()).await.unwrap();
    let agent_leg = engine.open_leg(events_tx).await.unwrap();
    let caller = endpoint().await;
    let agent = endpoint().await;
    caller_leg
        .set_params(params(&caller, Codec::Pcmu, None))
        .unwrap();
    agent_leg
        .set_params(params(&agent, Codec::Pcmu, None))
        .unwrap();
    bridge(&caller_leg, &agent_leg).await;
    const N: usize = 100;
    for i in 0..N {
        let (seq, ts) = (i as u16, 160 * i as u32);
        caller
            .send_to(
                &rtp(0, 0xCA11, seq, ts, false, &payload(i)),
                caller_leg.local_addr(),
            )
            .await
            .unwrap();
        agent
            .send_to(
                &rtp(0, 0xA6E7, seq, ts, false, &payload(i)),
                agent_leg.local_addr(),
            )
            .await
            .unwrap();
        let (_, p) = recv_rtp(&agent).await;
        assert_eq!(p, payload(i), "packet {i} toward the agent");
        let (_, p) = recv_rtp(&caller).await;
        assert_eq!(p, payload(i), "packet {i} toward the caller");
    }
    eventually("relay counters", WAIT, async || {
        engine.counters().relayed == 2 * N as u64
    })
    .await;
    assert_eq!(engine.counters().dropped_total(), 0);
    let port = caller_leg.port();
    drop(caller_leg);
    drop(agent_leg);
    drop(engine);
    // the leg's port is free again once its task ended with the engine's thread
    port_released(port).await;
}

/// Commands to a leg on the engine's own thread go over in batches, still in the order they
/// were given: of two plays given back to back, only the second one (which replaced the
/// first) reports `PlayDone`, and a leg dropped after them frees its port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_to_an_engine_on_its_own_thread_apply_in_order() {
    let engine = engine_on_own_thread(33000);
    let (events_tx, mut events) = mpsc::channel(64);
    let leg = engine.open_leg(events_tx).await.unwrap();
    let phone = endpoint().await;
    leg.set_params(params(&phone, Codec::Pcmu, None)).unwrap();
    let first = leg
        .play(vec![Arc::new(Prompt::from_samples("first", &[100; 160]))])
        .unwrap();
    let prompt = Arc::new(Prompt::from_samples("second", &[200; 320]));
    let second = leg.play(vec![Arc::clone(&prompt)]).unwrap();
    let event = tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("a PlayDone in time")
        .expect("event");
    assert_eq!(event.kind, LegEventKind::PlayDone(second), "not {first:?}");
    // the two 20 ms frames of the second prompt reached the phone, none of the first
    for i in 0..2 {
        let (_, payload) = recv_rtp(&phone).await;
        assert_eq!(payload, prompt.frame(Codec::Pcmu, i).unwrap(), "frame {i}");
    }
    let port = leg.port();
    drop(leg);
    port_released(port).await;
}
