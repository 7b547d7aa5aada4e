//! RTP media legs.
//!
//! A [`MediaLeg`] is one RTP endpoint of one call leg: a UDP socket on an even port of the
//! engine's [`PortPool`], served by one tokio task. The leg is driven by commands (methods of
//! the handle, which never block) and reports [`LegEvent`]s on a channel the caller gives.
//!
//! What a leg sends (its *output*) is, at any time, one of: nothing (idle), its own frames
//! (a prompt sequence played once, a prompt looped, silence, an RFC 4733 digit), or — when
//! bridged and not playing — the packets its peer receives. What a leg receives is counted,
//! scanned for RFC 4733 digits, copied to a recording tap if one is set, and relayed to the
//! peer when bridged (else discarded).
//!
//! Strict RTP: a leg takes media only from the remote address its SDP names
//! ([`MediaParams::remote`]). The one exception is a phone behind NAT, whose SDP names a
//! private address: if, within [`MediaConfig::latch_window`] of the remote being set, the
//! first packet comes from another source (any port) on the signalling peer's IP address
//! ([`MediaParams::signalling_peer`]), the leg latches to that source (once; new params start
//! over) and sends there too. A first packet from the remote itself ends the window.
//! Everything else is dropped as [`DropReason::ForeignSource`] before it is scanned for
//! digits, recorded or relayed.
//!
//! Relaying happens in the receiving leg's task, which writes straight to the peer's socket
//! with the peer's SSRC, sequence and timestamp continuity (a shared, briefly locked
//! `TxState`); there is no channel hop per packet. Payloads are relayed unchanged when both
//! legs use the same codec and transcoded byte-wise (µ-law ↔ A-law) otherwise.

mod counters;
mod leg;
mod packet;
mod ports;

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use counters::{CounterSnapshot, DropReason};
pub use packet::{RtpHeader, HEADER_LEN};
pub use ports::{PortLease, PortPool};

use crate::g711::Codec;
use crate::prompts::Prompt;
use crate::record::RecordTap;
use crate::MediaError;
use counters::{Counters, LegCounters};
pub(crate) use packet::{seq_after, ts_after};

/// A random 64-bit number from the standard library's per-process random keys (no extra
/// dependency); good enough for SSRCs, initial sequence numbers and port-pool offsets.
pub(crate) fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Identifies a leg within its engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u64);

impl fmt::Display for LegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Identifies one `play`/`play_loop`/`play_silence` request of a leg (see
/// [`LegEventKind::PlayDone`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlayId(pub u64);

/// Something a leg reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegEvent {
    /// The leg.
    pub leg: LegId,
    /// What happened.
    pub kind: LegEventKind,
}

/// What a leg reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegEventKind {
    /// An RFC 4733 key press received on this leg (reported once per press, in every mode).
    Digit(char),
    /// A prompt sequence started by `play` has been sent completely. Not reported for a
    /// play that was replaced or stopped.
    PlayDone(PlayId),
    /// Symmetric RTP: the leg latched to this source of its signalling peer (behind NAT),
    /// which it now takes media from and sends to instead of the SDP's address.
    RemoteLearned(SocketAddr),
}

/// What the far end of a leg negotiated (from the SDP offer or answer; see
/// [`crate::sdp::RemoteMedia::params`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaParams {
    /// Where to send; `None` = nowhere yet (or old-style hold).
    pub remote: Option<SocketAddr>,
    /// The codec to send.
    pub codec: Codec,
    /// The telephone-event payload type, if negotiated.
    pub telephone_event: Option<u8>,
    /// The IP address the signalling of this leg comes from (the SIP peer). Within the
    /// engine's latch window, the first packet from another source of this address may take
    /// over the remote once (a phone behind NAT); `None` = media only from `remote`.
    pub signalling_peer: Option<IpAddr>,
}

impl MediaParams {
    /// These parameters, signalled by `peer` (see [`MediaParams::signalling_peer`]).
    pub fn signalled_by(self, peer: Option<IpAddr>) -> MediaParams {
        MediaParams {
            signalling_peer: peer,
            ..self
        }
    }
}

impl Default for MediaParams {
    fn default() -> MediaParams {
        MediaParams {
            remote: None,
            codec: Codec::Pcmu,
            telephone_event: None,
            signalling_peer: None,
        }
    }
}

/// Configuration of a [`MediaEngine`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// The address legs bind to.
    pub bind_ip: IpAddr,
    /// RTP ports (even ones are used).
    pub ports: RangeInclusive<u16>,
    /// Symmetric RTP for phones behind NAT: when, within `latch_window` of a `set_params`,
    /// the first packet comes from another source of the params' signalling peer (same IP),
    /// the leg latches to that source, once. Off: media only from the SDP's address.
    pub symmetric_rtp: bool,
    /// How long after a `set_params` a leg may latch ([`LATCH_WINDOW`] by default).
    pub latch_window: Duration,
}

/// How long after its remote is set a leg may latch to its signalling peer's NAT'ed source:
/// a phone sends its first packet within milliseconds of the answer; an outsider has that
/// long to guess the port, and even then only from the peer's own IP address.
pub const LATCH_WINDOW: Duration = Duration::from_secs(2);

impl Default for MediaConfig {
    /// `0.0.0.0`, ports 20000–29999, symmetric RTP on within [`LATCH_WINDOW`].
    fn default() -> MediaConfig {
        MediaConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ports: 20000..=29999,
            symmetric_rtp: true,
            latch_window: LATCH_WINDOW,
        }
    }
}

/// Creates media legs; holds the port pool and the global counters. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MediaEngine {
    inner: Arc<EngineInner>,
}

#[derive(Debug)]
struct EngineInner {
    config: MediaConfig,
    ports: Arc<PortPool>,
    counters: Arc<Counters>,
    next_id: AtomicU64,
    /// Where leg tasks run: the engine's own thread, or (None) the caller's runtime.
    runtime: Option<OwnRuntime>,
}

/// A runtime on a thread of the engine's own ("callgrid-rtp"): RTP pacing and relaying then
/// never queue behind signalling work, and take a core of their own when there is one. The
/// runtime lives and is dropped on that thread (a runtime may not be dropped inside another
/// one); dropping this stops it.
#[derive(Debug)]
struct OwnRuntime {
    handle: tokio::runtime::Handle,
    mailbox: Arc<Mailbox>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// How long the engine's thread lets commands gather after the first one of a batch.
const BATCH_WINDOW: Duration = Duration::from_millis(1);

/// Commands for the legs of an engine with its own thread, handed over in batches. A
/// current-thread runtime wakes its thread (an eventfd write, often a context switch) for
/// every task woken from another thread: one wake per command was a twentieth of the
/// signalling thread's CPU at 2,000 calls/s. Here only the first command of a batch wakes
/// the thread; it waits [`BATCH_WINDOW`] for more, then passes them all on in order.
#[derive(Debug, Default)]
struct Mailbox {
    queue: Mutex<Vec<(mpsc::UnboundedSender<Command>, Command)>>,
    notify: tokio::sync::Notify,
    /// A wake-up is on its way (set by the first post of a batch).
    armed: AtomicBool,
}

impl Mailbox {
    fn post(&self, to: &mpsc::UnboundedSender<Command>, command: Command) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((to.clone(), command));
        if !self.armed.swap(true, Ordering::AcqRel) {
            self.notify.notify_one();
        }
    }

    /// Runs on the engine's thread until its runtime stops.
    async fn run(self: Arc<Self>) {
        let mut batch = Vec::new();
        loop {
            self.notify.notified().await;
            tokio::time::sleep(BATCH_WINDOW).await;
            // disarm first: a post from now on wakes the next round, so none is left behind
            self.armed.store(false, Ordering::Release);
            std::mem::swap(
                &mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()),
                &mut batch,
            );
            for (leg, command) in batch.drain(..) {
                // a leg that has ended takes no more commands
                let _ = leg.send(command);
            }
        }
    }
}

impl OwnRuntime {
    fn start() -> Result<OwnRuntime, MediaError> {
        let (handle_tx, handle_rx) = std::sync::mpsc::sync_channel(1);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread_err = |e: std::io::Error| MediaError::Runtime(e.to_string());
        std::thread::Builder::new()
            .name("callgrid-rtp".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let mailbox = Arc::new(Mailbox::default());
                rt.spawn(Arc::clone(&mailbox).run());
                let _ = handle_tx.send(Ok((rt.handle().clone(), mailbox)));
                // run the legs until the engine is dropped (the stop sender goes away)
                let _ = rt.block_on(stop_rx);
            })
            .map_err(thread_err)?;
        let (handle, mailbox) = handle_rx
            .recv()
            .map_err(|e| MediaError::Runtime(e.to_string()))?
            .map_err(thread_err)?;
        Ok(OwnRuntime {
            handle,
            mailbox,
            _stop: stop_tx,
        })
    }
}

impl MediaEngine {
    /// An engine over `config` (fails if the port range has no even port).
    /// Leg tasks run on the runtime that opens them.
    pub fn new(config: MediaConfig) -> Result<MediaEngine, MediaError> {
        Self::build(config, None)
    }

    /// An engine whose legs run on a thread of its own ("callgrid-rtp"), stopped when the
    /// last clone of the engine and its legs are gone.
    pub fn new_on_own_thread(config: MediaConfig) -> Result<MediaEngine, MediaError> {
        Self::build(config, Some(OwnRuntime::start()?))
    }

    fn build(config: MediaConfig, runtime: Option<OwnRuntime>) -> Result<MediaEngine, MediaError> {
        let ports = PortPool::new(config.ports.clone())?;
        Ok(MediaEngine {
            inner: Arc::new(EngineInner {
                config,
                ports,
                counters: Arc::new(Counters::default()),
                next_id: AtomicU64::new(1),
                runtime,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MediaConfig {
        &self.inner.config
    }

    /// The port pool.
    pub fn ports(&self) -> &Arc<PortPool> {
        &self.inner.ports
    }

    /// The sum of the counters of every leg ever opened by this engine.
    pub fn counters(&self) -> CounterSnapshot {
        self.inner.counters.snapshot()
    }

    /// Opens a leg: leases a port, binds it on the configured address and starts the leg's
    /// task. Events go to `events` (share one channel between the legs of a call, or not).
    /// A port taken by another process is skipped.
    pub async fn open_leg(&self, events: mpsc::Sender<LegEvent>) -> Result<MediaLeg, MediaError> {
        let ip = self.inner.config.bind_ip;
        let attempts = self.inner.ports.capacity().min(64);
        let mut bound = None;
        for _ in 0..attempts {
            let lease = self.inner.ports.acquire()?;
            let addr = SocketAddr::new(ip, lease.port());
            match std::net::UdpSocket::bind(addr) {
                Ok(socket) => {
                    bound = Some((socket, lease));
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    tracing::debug!(
                        port = lease.port(),
                        "rtp port taken by another process, skipped"
                    );
                }
                Err(source) => return Err(MediaError::Bind { addr, source }),
            }
        }
        let (socket, lease) = bound.ok_or_else(|| MediaError::PortsExhausted {
            first: *self.inner.config.ports.start(),
            last: *self.inner.config.ports.end(),
        })?;
        let local = socket.local_addr().map_err(|source| MediaError::Bind {
            addr: SocketAddr::new(ip, lease.port()),
            source,
        })?;
        let bind_err = |source| MediaError::Bind {
            addr: local,
            source,
        };
        socket.set_nonblocking(true).map_err(bind_err)?;
        let send_socket = socket.try_clone().map_err(bind_err)?;
        // the receiving socket belongs to the reactor of the runtime the leg runs on
        let _entered = self.inner.runtime.as_ref().map(|r| r.handle.enter());
        let recv_socket = tokio::net::UdpSocket::from_std(socket).map_err(bind_err)?;
        let id = LegId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (r1, r2) = (random_u64(), random_u64());
        let shared = Arc::new(LegShared {
            id,
            local,
            send_socket,
            counters: LegCounters::new(Arc::clone(&self.inner.counters)),
            tx: Mutex::new(TxState::new(r1 as u32, (r1 >> 32) as u16, r2 as u32)),
            commands: cmd_tx.clone(),
            _lease: lease,
        });
        let latch_window = self
            .inner
            .config
            .symmetric_rtp
            .then_some(self.inner.config.latch_window);
        let task = leg::LegTask::new(Arc::clone(&shared), recv_socket, events, latch_window);
        let join = match &self.inner.runtime {
            Some(r) => r.handle.spawn(task.run(cmd_rx)),
            None => tokio::spawn(task.run(cmd_rx)),
        };
        tracing::debug!(leg = %id, local = %local, "media leg opened");
        Ok(MediaLeg {
            shared,
            commands: cmd_tx,
            mailbox: self.inner.runtime.as_ref().map(|r| Arc::clone(&r.mailbox)),
            join: Some(join),
            next_play: AtomicU64::new(1),
        })
    }
}

/// Where a relayed stream's numbering maps onto the leg's own.
#[derive(Debug, Clone, Copy)]
struct RelayMap {
    source_ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
}

/// The sending state of a leg, shared with its bridged peer (which relays through it).
#[derive(Debug)]
pub(crate) struct TxState {
    remote: Option<SocketAddr>,
    codec: Codec,
    telephone_event: Option<u8>,
    /// On hold: nothing is sent.
    paused: bool,
    /// Bridged and not playing: relayed packets are accepted.
    relay_open: bool,
    ssrc: u32,
    next_seq: u16,
    next_ts: u32,
    /// When the last packet went out and the timestamp just after its audio.
    last_sent: Option<(std::time::Instant, u32)>,
    relay: Option<RelayMap>,
    /// The next packet starts a new talk spurt (marker set, timestamp re-anchored to the
    /// wall clock).
    resync: bool,
}

impl TxState {
    fn new(ssrc: u32, seq: u16, ts: u32) -> TxState {
        TxState {
            remote: None,
            codec: Codec::Pcmu,
            telephone_event: None,
            paused: false,
            relay_open: false,
            ssrc,
            next_seq: seq,
            next_ts: ts,
            last_sent: None,
            relay: None,
            resync: true,
        }
    }

    /// Moves the next timestamp forward to account for the wall-clock time since the last
    /// packet, so a new talk spurt is placed where it belongs in time.
    fn anchor(&mut self, now: std::time::Instant) {
        if let Some((at, ts)) = self.last_sent {
            let elapsed = now.saturating_duration_since(at);
            let samples = (elapsed.as_micros() / 125).min(u128::from(u32::MAX / 4)) as u32;
            let candidate = ts.wrapping_add(samples);
            if ts_after(candidate, self.next_ts) {
                self.next_ts = candidate;
            }
        }
    }

    /// The header and destination of one frame of our own (`None` when paused or without a
    /// remote address; the timeline then does not move).
    fn originate(
        &mut self,
        now: std::time::Instant,
        payload_type: u8,
        start: bool,
        samples: u32,
    ) -> Option<(RtpHeader, SocketAddr)> {
        let remote = self.remote.filter(|_| !self.paused)?;
        let marker = start || self.resync;
        if marker {
            self.anchor(now);
            self.resync = false;
            self.relay = None;
        }
        let header = RtpHeader {
            payload_type,
            marker,
            sequence: self.next_seq,
            timestamp: self.next_ts,
            ssrc: self.ssrc,
        };
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_ts = self.next_ts.wrapping_add(samples);
        self.last_sent = Some((now, self.next_ts));
        Some((header, remote))
    }

    /// The header and destination of a packet relayed from the peer, renumbered into this
    /// leg's stream; `samples` is 0 for telephone-events (they do not advance the timeline).
    fn relay(
        &mut self,
        now: std::time::Instant,
        incoming: &RtpHeader,
        payload_type: u8,
        samples: u32,
    ) -> Result<(RtpHeader, SocketAddr), DropReason> {
        if !self.relay_open {
            return Err(DropReason::PeerBusy);
        }
        if self.paused {
            return Err(DropReason::PeerPaused);
        }
        let remote = self.remote.ok_or(DropReason::PeerNoRemote)?;
        let mut marker = incoming.marker;
        let map = match self.relay {
            Some(map) if map.source_ssrc == incoming.ssrc && !self.resync => map,
            _ => {
                self.anchor(now);
                self.resync = false;
                marker = true;
                let map = RelayMap {
                    source_ssrc: incoming.ssrc,
                    seq_offset: self.next_seq.wrapping_sub(incoming.sequence),
                    ts_offset: self.next_ts.wrapping_sub(incoming.timestamp),
                };
                self.relay = Some(map);
                map
            }
        };
        let sequence = incoming.sequence.wrapping_add(map.seq_offset);
        let timestamp = incoming.timestamp.wrapping_add(map.ts_offset);
        if !seq_after(self.next_seq, sequence) {
            self.next_seq = sequence.wrapping_add(1);
        }
        let end = timestamp.wrapping_add(samples);
        if samples > 0 && ts_after(end, self.next_ts) {
            self.next_ts = end;
        }
        self.last_sent = Some((now, self.next_ts));
        Ok((
            RtpHeader {
                payload_type,
                marker,
                sequence,
                timestamp,
                ssrc: self.ssrc,
            },
            remote,
        ))
    }
}

/// What a leg shares with its task and its bridged peer.
#[derive(Debug)]
pub(crate) struct LegShared {
    id: LegId,
    local: SocketAddr,
    /// A clone of the leg's socket used for every send (a plain non-blocking socket: a send
    /// is one syscall, from whichever task relays).
    send_socket: std::net::UdpSocket,
    counters: LegCounters,
    tx: Mutex<TxState>,
    commands: mpsc::UnboundedSender<Command>,
    /// Released last, once the sockets are closed.
    _lease: PortLease,
}

impl LegShared {
    fn tx(&self) -> MutexGuard<'_, TxState> {
        self.tx.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Commands from the handle (and from a peer's task) to a leg's task.
#[derive(Debug)]
pub(crate) enum Command {
    Params(MediaParams),
    Play {
        id: PlayId,
        prompts: Vec<Arc<Prompt>>,
        looping: bool,
    },
    Silence(PlayId),
    StopPlaying,
    Bridge(LegId, std::sync::Weak<LegShared>),
    Unbridge,
    PeerGone(LegId),
    Pause(bool),
    Tap(Option<RecordTap>),
    Digit {
        key: char,
        duration: Duration,
    },
    Flush(tokio::sync::oneshot::Sender<()>),
    Close,
}

/// The handle of one media leg. Methods send a command to the leg's task and return at once;
/// they fail only when the leg is closed. Dropping the handle closes the leg;
/// [`MediaLeg::close`] also waits until its port is released.
#[derive(Debug)]
pub struct MediaLeg {
    shared: Arc<LegShared>,
    commands: mpsc::UnboundedSender<Command>,
    /// The engine's thread's mailbox, if the leg runs there (commands go through it).
    mailbox: Option<Arc<Mailbox>>,
    join: Option<JoinHandle<()>>,
    next_play: AtomicU64,
}

impl MediaLeg {
    fn send(&self, command: Command) -> Result<(), MediaError> {
        match &self.mailbox {
            Some(_) if self.commands.is_closed() => Err(MediaError::LegClosed(self.shared.id)),
            Some(mailbox) => {
                mailbox.post(&self.commands, command);
                Ok(())
            }
            None => self
                .commands
                .send(command)
                .map_err(|_| MediaError::LegClosed(self.shared.id)),
        }
    }

    fn next_play_id(&self) -> PlayId {
        PlayId(self.next_play.fetch_add(1, Ordering::Relaxed))
    }

    /// The leg's id (carried by its events).
    pub fn id(&self) -> LegId {
        self.shared.id
    }

    /// The local socket address (bound IP and port).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// The local RTP port (for the SDP).
    pub fn port(&self) -> u16 {
        self.shared.local.port()
    }

    /// Sets (or updates, after a re-INVITE) the remote address, codec and telephone-event
    /// payload type. The leg takes media only from `params.remote` from now on; with
    /// symmetric RTP and a signalling peer, its latch window starts again (see the module
    /// documentation).
    pub fn set_params(&self, params: MediaParams) -> Result<(), MediaError> {
        self.send(Command::Params(params))
    }

    /// Plays prompts once, in order, then reports [`LegEventKind::PlayDone`] with the id
    /// returned. Replaces whatever the leg was playing; while playing, the leg's output is the
    /// prompts even if bridged (the peer's packets are dropped as `PeerBusy`).
    pub fn play(&self, prompts: Vec<Arc<Prompt>>) -> Result<PlayId, MediaError> {
        let id = self.next_play_id();
        self.send(Command::Play {
            id,
            prompts,
            looping: false,
        })?;
        Ok(id)
    }

    /// Plays one prompt in a loop (hold music) until `stop_playing` or another play.
    pub fn play_loop(&self, prompt: Arc<Prompt>) -> Result<PlayId, MediaError> {
        let id = self.next_play_id();
        self.send(Command::Play {
            id,
            prompts: vec![prompt],
            looping: true,
        })?;
        Ok(id)
    }

    /// Sends silence frames until `stop_playing` or another play.
    pub fn play_silence(&self) -> Result<PlayId, MediaError> {
        let id = self.next_play_id();
        self.send(Command::Silence(id))?;
        Ok(id)
    }

    /// Stops playing: the output goes back to the peer's packets if bridged, else nothing.
    pub fn stop_playing(&self) -> Result<(), MediaError> {
        self.send(Command::StopPlaying)
    }

    /// Bridges this leg with `other`: each relays what it receives out through the other
    /// (unless the other is playing or paused). Replaces earlier bridges of both legs.
    pub fn bridge(&self, other: &MediaLeg) -> Result<(), MediaError> {
        if self.shared.id == other.shared.id {
            return Ok(());
        }
        self.send(Command::Bridge(other.id(), Arc::downgrade(&other.shared)))?;
        other.send(Command::Bridge(self.id(), Arc::downgrade(&self.shared)))
    }

    /// Ends the bridge of this leg (both directions).
    pub fn unbridge(&self) -> Result<(), MediaError> {
        self.send(Command::Unbridge)
    }

    /// Hold: `true` stops every packet toward this leg's remote (relayed ones are counted as
    /// dropped `PeerPaused` on the peer), `false` resumes (with a marker and a re-anchored
    /// timestamp).
    pub fn set_paused(&self, paused: bool) -> Result<(), MediaError> {
        self.send(Command::Pause(paused))
    }

    /// Copies the audio received on this leg (decoded) to a recording channel; `None` stops.
    pub fn set_tap(&self, tap: Option<RecordTap>) -> Result<(), MediaError> {
        self.send(Command::Tap(tap))
    }

    /// Sends one key press as RFC 4733 telephone-events (20 ms packets, end packet three
    /// times), if the remote negotiated telephone-event (else it is logged and skipped).
    pub fn send_digit(&self, key: char, duration: Duration) -> Result<(), MediaError> {
        crate::rfc4733::key_to_event(key).ok_or(MediaError::BadDigit(key))?;
        self.send(Command::Digit { key, duration })
    }

    /// Waits until the leg's task has applied every command sent before (commands of one
    /// leg apply in order; this orders them against packets and other legs, e.g. in tests,
    /// or to know that a bridge is in place on this side).
    pub async fn flush(&self) -> Result<(), MediaError> {
        let (done, applied) = tokio::sync::oneshot::channel();
        self.send(Command::Flush(done))?;
        applied
            .await
            .map_err(|_| MediaError::LegClosed(self.shared.id))
    }

    /// This leg's counters.
    pub fn counters(&self) -> CounterSnapshot {
        self.shared.counters.snapshot()
    }

    /// Closes the leg: unbridges, stops its task and waits for it; the port is released when
    /// this returns.
    pub async fn close(mut self) {
        let _ = self.send(Command::Close);
        if let Some(join) = self.join.take() {
            if let Err(e) = join.await {
                tracing::warn!(leg = %self.shared.id, error = %e, "media leg task failed");
            }
        }
    }
}

impl Drop for MediaLeg {
    fn drop(&mut self) {
        // after the commands sent before it (a recording tap's end, say)
        let _ = self.send(Command::Close);
    }
}
