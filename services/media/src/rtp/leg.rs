//! The task of one media leg: receives, detects digits, taps, relays to the peer, plays.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::time::{Interval, MissedTickBehavior};

use super::counters::Stat;
use super::{
    ts_after, Command, DropReason, LegEvent, LegEventKind, LegId, LegShared, MediaParams, PlayId,
    RtpHeader, TxState, HEADER_LEN,
};
use crate::g711::Codec;
use crate::prompts::{Prompt, FRAME_SAMPLES};
use crate::record::RecordTap;
use crate::rfc4733::{key_press_payloads, DtmfDetector};

/// The frame clock of prompts and digits.
const TICK: Duration = Duration::from_millis(20);
/// Packets read per wake-up before commands and ticks get a turn.
const MAX_BATCH: usize = 64;
/// Receive and send buffer size (larger datagrams are truncated, then fail to parse or relay
/// truncated; G.711 packets are 172 bytes).
const BUF_LEN: usize = 2048;

const SILENCE_PCMU: [u8; FRAME_SAMPLES] = [crate::g711::ULAW_SILENCE; FRAME_SAMPLES];
const SILENCE_PCMA: [u8; FRAME_SAMPLES] = [crate::g711::ALAW_SILENCE; FRAME_SAMPLES];

fn silence(codec: Codec) -> &'static [u8] {
    match codec {
        Codec::Pcmu => &SILENCE_PCMU,
        Codec::Pcma => &SILENCE_PCMA,
    }
}

#[derive(Debug)]
enum Source {
    Prompts {
        items: Vec<Arc<Prompt>>,
        item: usize,
        frame: usize,
        looping: bool,
    },
    Silence,
}

/// What the leg is playing.
#[derive(Debug)]
struct Player {
    id: PlayId,
    source: Source,
    /// The next frame starts the talk spurt (marker).
    start: bool,
}

impl Player {
    /// The next frame, or `None` when a non-looping sequence has ended.
    fn next_frame(&mut self, codec: Codec) -> Option<&[u8]> {
        let Source::Prompts {
            items,
            item,
            frame,
            looping,
        } = &mut self.source
        else {
            return Some(silence(codec));
        };
        let n = items.len();
        if n == 0 {
            return None;
        }
        // at most one wrap around (a looped sequence of empty prompts ends)
        for _ in 0..=n {
            if *item >= n {
                if !*looping {
                    return None;
                }
                *item = 0;
            }
            if *frame < items[*item].frame_count() {
                let (i, f) = (*item, *frame);
                *frame += 1;
                return items[i].frame(codec, f);
            }
            *item += 1;
            *frame = 0;
        }
        None
    }

    fn reports_done(&self) -> bool {
        matches!(self.source, Source::Prompts { looping: false, .. })
    }
}

/// One key press being sent.
#[derive(Debug)]
struct DigitTx {
    payloads: VecDeque<[u8; 4]>,
    /// The event's timestamp, fixed by its first packet.
    timestamp: Option<u32>,
    first: bool,
}

/// A latch that may still happen: the first packet from another source of `peer` within
/// `window` of `since` becomes the leg's source (a phone behind NAT).
#[derive(Debug, Clone, Copy)]
struct Latch {
    peer: IpAddr,
    since: Instant,
    window: Duration,
}

/// The same address, an IPv4 one and its IPv4-mapped IPv6 form alike (a dual-stack socket
/// reports IPv4 sources in the mapped form).
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

fn same_addr(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && same_ip(a.ip(), b.ip())
}

/// The state of a leg's task.
pub(super) struct LegTask {
    shared: Arc<LegShared>,
    socket: tokio::net::UdpSocket,
    events: mpsc::Sender<LegEvent>,
    /// Symmetric RTP: how long after new params the leg may latch; `None` = never.
    latch_window: Option<Duration>,
    /// The one address media is taken from (the SDP's remote, or the source latched to).
    source: Option<SocketAddr>,
    /// A latch still possible (cleared by the first packet taken, a latch, or the window's
    /// end).
    latch: Option<Latch>,
    /// A packet from a foreign source has been logged since the last params.
    foreign_logged: bool,
    /// Our telephone-event payload type, to classify received packets.
    rx_telephone_event: Option<u8>,
    peer: Option<(LegId, Weak<LegShared>)>,
    player: Option<Player>,
    digits: VecDeque<DigitTx>,
    detector: DtmfDetector,
    tap: Option<RecordTap>,
    out: Vec<u8>,
}

impl TxState {
    /// The header and destination of one telephone-event packet of ours; all packets of one
    /// event share the timestamp fixed by the first. `duration` is the event's duration so
    /// far (samples): the timeline moves to its end.
    fn originate_event(
        &mut self,
        now: Instant,
        payload_type: u8,
        event_ts: &mut Option<u32>,
        first: bool,
        duration: u32,
    ) -> Option<(RtpHeader, SocketAddr)> {
        let remote = self.remote.filter(|_| !self.paused)?;
        let timestamp = match *event_ts {
            Some(ts) => ts,
            None => {
                self.anchor(now);
                *event_ts = Some(self.next_ts);
                self.next_ts
            }
        };
        let header = RtpHeader {
            payload_type,
            marker: first,
            sequence: self.next_seq,
            timestamp,
            ssrc: self.ssrc,
        };
        self.next_seq = self.next_seq.wrapping_add(1);
        let end = timestamp.wrapping_add(duration);
        if ts_after(end, self.next_ts) {
            self.next_ts = end;
        }
        self.last_sent = Some((now, self.next_ts));
        self.relay = None;
        Some((header, remote))
    }
}

/// Sends one packet of our own out of `shared`'s socket and counts it.
fn send_own(
    shared: &LegShared,
    out: &mut [u8],
    header: RtpHeader,
    payload: &[u8],
    remote: SocketAddr,
) {
    let len = HEADER_LEN + payload.len();
    let Some(packet) = out.get_mut(..len) else {
        shared.counters.add(Stat::PlayError);
        return;
    };
    header.write_header(packet);
    packet[HEADER_LEN..].copy_from_slice(payload);
    match shared.send_socket.send_to(packet, remote) {
        Ok(_) => {
            shared.counters.add(Stat::Played);
            shared.counters.add(Stat::Sent);
        }
        Err(e) => {
            shared.counters.add(Stat::PlayError);
            tracing::debug!(leg = %shared.id, remote = %remote, error = %e, "rtp send failed");
        }
    }
}

async fn tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl LegTask {
    pub(super) fn new(
        shared: Arc<LegShared>,
        socket: tokio::net::UdpSocket,
        events: mpsc::Sender<LegEvent>,
        latch_window: Option<Duration>,
    ) -> LegTask {
        LegTask {
            shared,
            socket,
            events,
            latch_window,
            source: None,
            latch: None,
            foreign_logged: false,
            rx_telephone_event: None,
            peer: None,
            player: None,
            digits: VecDeque::new(),
            detector: DtmfDetector::new(),
            tap: None,
            out: vec![0; BUF_LEN],
        }
    }

    pub(super) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut buf = vec![0u8; BUF_LEN];
        let mut ticker: Option<Interval> = None;
        loop {
            let wants_tick = self.player.is_some() || !self.digits.is_empty();
            if !wants_tick {
                ticker = None;
            } else if ticker.is_none() {
                let mut t = tokio::time::interval(TICK);
                t.set_missed_tick_behavior(MissedTickBehavior::Delay);
                ticker = Some(t);
            }
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    None | Some(Command::Close) => break,
                    Some(command) => self.on_command(command),
                },
                ready = self.socket.readable() => match ready {
                    Ok(()) => self.drain(&mut buf),
                    Err(e) => {
                        tracing::warn!(leg = %self.shared.id, error = %e, "rtp socket failed, leg stops");
                        break;
                    }
                },
                () = tick(&mut ticker) => self.on_tick(),
            }
        }
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.unbridge();
        self.tap = None;
        let c = self.shared.counters.snapshot();
        tracing::debug!(
            leg = %self.shared.id,
            received = c.received,
            sent = c.sent,
            relayed = c.relayed,
            dropped = c.dropped_total(),
            "media leg closed"
        );
    }

    fn emit(&self, kind: LegEventKind) {
        let event = LegEvent {
            leg: self.shared.id,
            kind,
        };
        if let Err(mpsc::error::TrySendError::Full(event)) = self.events.try_send(event) {
            tracing::warn!(leg = %self.shared.id, event = ?event.kind, "leg event channel full, event dropped");
        }
    }

    /// Opens or closes the leg's output to relayed packets: open when bridged and playing
    /// nothing of its own.
    fn update_relay(&self) {
        let open = self.peer.is_some() && self.player.is_none() && self.digits.is_empty();
        let mut tx = self.shared.tx();
        if tx.relay_open != open {
            tx.relay_open = open;
            tx.resync = true;
        }
    }

    fn unbridge(&mut self) {
        if let Some((_, peer)) = self.peer.take() {
            if let Some(peer) = peer.upgrade() {
                let _ = peer.commands.send(Command::PeerGone(self.shared.id));
            }
            tracing::debug!(leg = %self.shared.id, "media leg unbridged");
        }
        self.update_relay();
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Params(MediaParams {
                remote,
                codec,
                telephone_event,
                signalling_peer,
            }) => {
                {
                    let mut tx = self.shared.tx();
                    tx.remote = remote;
                    tx.codec = codec;
                    tx.telephone_event = telephone_event;
                    tx.resync = true;
                }
                self.rx_telephone_event = telephone_event;
                self.source = remote;
                self.latch = self
                    .latch_window
                    .zip(signalling_peer)
                    .map(|(window, peer)| Latch {
                        peer,
                        since: Instant::now(),
                        window,
                    });
                self.foreign_logged = false;
            }
            Command::Play {
                id,
                prompts,
                looping,
            } => {
                self.player = Some(Player {
                    id,
                    source: Source::Prompts {
                        items: prompts,
                        item: 0,
                        frame: 0,
                        looping,
                    },
                    start: true,
                });
                self.update_relay();
            }
            Command::Silence(id) => {
                self.player = Some(Player {
                    id,
                    source: Source::Silence,
                    start: true,
                });
                self.update_relay();
            }
            Command::StopPlaying => {
                self.player = None;
                self.update_relay();
            }
            Command::Bridge(id, peer) => {
                if self.peer.as_ref().is_some_and(|(old, _)| *old != id) {
                    self.unbridge();
                }
                self.peer = Some((id, peer));
                tracing::debug!(leg = %self.shared.id, peer = %id, "media leg bridged");
                self.update_relay();
            }
            Command::Unbridge => self.unbridge(),
            Command::PeerGone(id) => {
                if self.peer.as_ref().is_some_and(|(p, _)| *p == id) {
                    self.peer = None;
                    self.update_relay();
                }
            }
            Command::Pause(paused) => {
                let mut tx = self.shared.tx();
                if tx.paused && !paused {
                    tx.resync = true;
                }
                tx.paused = paused;
            }
            Command::Tap(tap) => self.tap = tap,
            Command::Digit { key, duration } => {
                let ms = u32::try_from(duration.as_millis()).unwrap_or(u32::MAX);
                if let Ok(payloads) = key_press_payloads(key, ms) {
                    self.digits.push_back(DigitTx {
                        payloads: payloads.into(),
                        timestamp: None,
                        first: true,
                    });
                    self.update_relay();
                }
            }
            Command::Flush(done) => {
                let _ = done.send(());
            }
            Command::Close => {}
        }
    }

    fn drain(&mut self, buf: &mut [u8]) {
        let now = Instant::now();
        for _ in 0..MAX_BATCH {
            match self.socket.try_recv_from(buf) {
                Ok((n, from)) => self.on_packet(&buf[..n], from, now),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(leg = %self.shared.id, error = %e, "rtp receive error");
                    break;
                }
            }
        }
    }

    /// Strict RTP: whether a packet from `from` is taken. Only the leg's source is; or,
    /// once, an RTP packet from another source of the signalling peer within the latch
    /// window, which becomes the source (and the remote sent to).
    fn takes_from(&mut self, from: SocketAddr, is_rtp: bool, now: Instant) -> bool {
        if self.source.is_some_and(|s| same_addr(s, from)) {
            // the remote sends from where its SDP said: nothing to latch to
            self.latch = None;
            return true;
        }
        let Some(latch) = self.latch else {
            return false;
        };
        if now.saturating_duration_since(latch.since) > latch.window {
            self.latch = None;
            return false;
        }
        if !is_rtp || !same_ip(from.ip(), latch.peer) {
            return false;
        }
        self.latch = None;
        self.source = Some(from);
        {
            let mut tx = self.shared.tx();
            tx.remote = Some(from);
            tx.resync = true;
        }
        tracing::debug!(leg = %self.shared.id, remote = %from, "remote address latched to the signalling peer's rtp source");
        self.emit(LegEventKind::RemoteLearned(from));
        true
    }

    fn on_packet(&mut self, data: &[u8], from: SocketAddr, now: Instant) {
        self.shared.counters.add(Stat::Received);
        let parsed = RtpHeader::parse(data);
        if !self.takes_from(from, parsed.is_ok(), now) {
            self.shared
                .counters
                .add(Stat::Dropped(DropReason::ForeignSource));
            if !std::mem::replace(&mut self.foreign_logged, true) {
                tracing::debug!(leg = %self.shared.id, from = %from, remote = ?self.source, "rtp from a foreign source dropped");
            }
            return;
        }
        let Ok((header, payload)) = parsed else {
            self.shared
                .counters
                .add(Stat::Dropped(DropReason::Malformed));
            return;
        };
        let codec = if Some(header.payload_type) == self.rx_telephone_event {
            if let Some(key) = self
                .detector
                .on_packet(header.ssrc, header.timestamp, payload)
            {
                tracing::debug!(leg = %self.shared.id, key = %key, "dtmf digit received");
                self.emit(LegEventKind::Digit(key));
            }
            None
        } else if let Some(codec) = Codec::from_payload_type(header.payload_type) {
            if let Some(tap) = &self.tap {
                if !tap.push(codec, payload) {
                    self.tap = None;
                }
            }
            Some(codec)
        } else {
            self.shared
                .counters
                .add(Stat::Dropped(DropReason::UnknownPayloadType));
            return;
        };
        self.relay(&header, payload, codec, now);
    }

    /// Relays one received packet (audio in `codec`, or a telephone-event when `None`) out
    /// through the peer's socket, renumbered into the peer's stream.
    fn relay(&mut self, header: &RtpHeader, payload: &[u8], codec: Option<Codec>, now: Instant) {
        let counters = &self.shared.counters;
        let Some((_, weak)) = &self.peer else {
            counters.add(Stat::Discarded);
            return;
        };
        let Some(peer) = weak.upgrade() else {
            counters.add(Stat::Discarded);
            self.peer = None;
            self.update_relay();
            return;
        };
        let routed = {
            let mut tx = peer.tx();
            let out = match codec {
                None => tx
                    .telephone_event
                    .map(|pt| (pt, 0, None))
                    .ok_or(DropReason::NoTelephoneEvent),
                Some(codec) => {
                    let to = tx.codec;
                    Ok((
                        to.payload_type(),
                        payload.len() as u32,
                        (codec != to).then_some((codec, to)),
                    ))
                }
            };
            out.and_then(|(pt, samples, transcode)| {
                tx.relay(now, header, pt, samples)
                    .map(|(h, remote)| (h, remote, transcode))
            })
        };
        let (out_header, remote, transcode) = match routed {
            Ok(r) => r,
            Err(reason) => {
                counters.add(Stat::Dropped(reason));
                return;
            }
        };
        let len = HEADER_LEN + payload.len();
        let Some(packet) = self.out.get_mut(..len) else {
            counters.add(Stat::Dropped(DropReason::SendFailed));
            return;
        };
        out_header.write_header(packet);
        packet[HEADER_LEN..].copy_from_slice(payload);
        if let Some((from, to)) = transcode {
            from.transcode_in_place(to, &mut packet[HEADER_LEN..]);
        }
        match peer.send_socket.send_to(packet, remote) {
            Ok(_) => {
                counters.add(Stat::Relayed);
                peer.counters.add(Stat::Sent);
            }
            Err(e) => {
                counters.add(Stat::Dropped(DropReason::SendFailed));
                tracing::debug!(leg = %self.shared.id, remote = %remote, error = %e, "rtp relay failed");
            }
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let digit_sent = self.tick_digit(now);
        let Some(player) = &mut self.player else {
            return;
        };
        let codec = self.shared.tx().codec;
        let start = player.start;
        match player.next_frame(codec) {
            Some(frame) => {
                if digit_sent {
                    return;
                }
                let routed = self.shared.tx().originate(
                    now,
                    codec.payload_type(),
                    start,
                    frame.len() as u32,
                );
                if let Some((header, remote)) = routed {
                    send_own(&self.shared, &mut self.out, header, frame, remote);
                }
                player.start = false;
            }
            None => {
                let done = self.player.take();
                self.update_relay();
                if let Some(player) = done.filter(Player::reports_done) {
                    self.emit(LegEventKind::PlayDone(player.id));
                }
            }
        }
    }

    /// Sends the next packet of the digit being sent, if any; true if one was due.
    fn tick_digit(&mut self, now: Instant) -> bool {
        let Some(digit) = self.digits.front_mut() else {
            return false;
        };
        let Some(payload) = digit.payloads.pop_front() else {
            self.digits.pop_front();
            self.update_relay();
            return false;
        };
        let first = std::mem::take(&mut digit.first);
        let duration = u32::from(u16::from_be_bytes([payload[2], payload[3]]));
        let routed = {
            let mut tx = self.shared.tx();
            tx.telephone_event
                .map(|pt| tx.originate_event(now, pt, &mut digit.timestamp, first, duration))
        };
        let finished = digit.payloads.is_empty();
        match routed {
            None => {
                tracing::warn!(leg = %self.shared.id, "telephone-event not negotiated, digit not sent");
                self.digits.pop_front();
                self.update_relay();
                return false;
            }
            Some(Some((header, remote))) => {
                send_own(&self.shared, &mut self.out, header, &payload, remote);
            }
            Some(None) => {}
        }
        if finished {
            self.digits.pop_front();
            self.shared.tx().resync = true;
            self.update_relay();
        }
        true
    }
}
