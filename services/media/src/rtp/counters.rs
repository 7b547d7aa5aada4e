//! Packet counters, per leg and global (atomic, relaxed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Why a received packet was not relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not an RTP packet.
    Malformed,
    /// Payload type neither PCMU, PCMA nor the negotiated telephone-event.
    UnknownPayloadType,
    /// The other leg is paused (on hold).
    PeerPaused,
    /// The other leg has no remote address yet.
    PeerNoRemote,
    /// The other leg is playing a prompt or sending a digit (its output is its own), or has
    /// just been unbridged.
    PeerBusy,
    /// A telephone-event, but the other leg did not negotiate telephone-event.
    NoTelephoneEvent,
    /// Sending on the other leg's socket failed (socket buffer full, network error).
    SendFailed,
    /// From an address the leg does not take media from: neither the remote its SDP names
    /// nor the one source of its signalling peer it latched to (strict RTP). Not relayed,
    /// recorded nor scanned for digits.
    ForeignSource,
}

impl DropReason {
    /// Every reason, in a fixed order.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Malformed,
        DropReason::UnknownPayloadType,
        DropReason::PeerPaused,
        DropReason::PeerNoRemote,
        DropReason::PeerBusy,
        DropReason::NoTelephoneEvent,
        DropReason::SendFailed,
        DropReason::ForeignSource,
    ];

    /// How many reasons there are.
    pub const COUNT: usize = 8;

    /// A short snake_case name (for metrics labels and logs).
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::UnknownPayloadType => "unknown_payload_type",
            DropReason::PeerPaused => "peer_paused",
            DropReason::PeerNoRemote => "peer_no_remote",
            DropReason::PeerBusy => "peer_busy",
            DropReason::NoTelephoneEvent => "no_telephone_event",
            DropReason::SendFailed => "send_failed",
            DropReason::ForeignSource => "foreign_source",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A consistent-enough copy of a set of counters.
///
/// For a leg: `received == relayed + discarded + dropped_total()`, and `sent == played +`
/// (packets the bridged peer relayed out through this leg). For a bridge A↔B with nothing
/// played: `A.relayed == B.sent` — no loss at the edge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// RTP packets received (anything read from the socket).
    pub received: u64,
    /// Packets sent out of the socket (played or relayed from the peer).
    pub sent: u64,
    /// Packets originated by the leg itself (prompts, silence, digits).
    pub played: u64,
    /// Received packets relayed out through the bridged peer.
    pub relayed: u64,
    /// Received packets thrown away because the leg is not bridged (idle or playing).
    pub discarded: u64,
    /// Frames of our own that could not be sent (socket errors).
    pub play_errors: u64,
    /// Received packets dropped, by [`DropReason`] (indexed in the order of `DropReason::ALL`).
    pub dropped: [u64; DropReason::COUNT],
}

impl CounterSnapshot {
    /// Packets dropped for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }

    /// Packets dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// A set of atomic counters (one per leg, and one global per engine).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    received: AtomicU64,
    sent: AtomicU64,
    played: AtomicU64,
    relayed: AtomicU64,
    discarded: AtomicU64,
    play_errors: AtomicU64,
    dropped: [AtomicU64; DropReason::COUNT],
}

/// What to count.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stat {
    Received,
    Sent,
    Played,
    Relayed,
    Discarded,
    PlayError,
    Dropped(DropReason),
}

impl Counters {
    fn slot(&self, stat: Stat) -> &AtomicU64 {
        match stat {
            Stat::Received => &self.received,
            Stat::Sent => &self.sent,
            Stat::Played => &self.played,
            Stat::Relayed => &self.relayed,
            Stat::Discarded => &self.discarded,
            Stat::PlayError => &self.play_errors,
            Stat::Dropped(r) => &self.dropped[r.index()],
        }
    }

    pub(crate) fn snapshot(&self) -> CounterSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CounterSnapshot {
            received: get(&self.received),
            sent: get(&self.sent),
            played: get(&self.played),
            relayed: get(&self.relayed),
            discarded: get(&self.discarded),
            play_errors: get(&self.play_errors),
            dropped: std::array::from_fn(|i| get(&self.dropped[i])),
        }
    }
}

/// A leg's counters and the engine's global ones, counted together.
#[derive(Debug)]
pub(crate) struct LegCounters {
    own: Counters,
    global: Arc<Counters>,
}

impl LegCounters {
    pub(crate) fn new(global: Arc<Counters>) -> LegCounters {
        LegCounters {
            own: Counters::default(),
            global,
        }
    }

    pub(crate) fn add(&self, stat: Stat) {
        self.own.slot(stat).fetch_add(1, Ordering::Relaxed);
        self.global.slot(stat).fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CounterSnapshot {
        self.own.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leg_and_global_count_together() {
        let global = Arc::new(Counters::default());
        let a = LegCounters::new(Arc::clone(&global));
        let b = LegCounters::new(Arc::clone(&global));
        a.add(Stat::Received);
        a.add(Stat::Dropped(DropReason::PeerPaused));
        b.add(Stat::Received);
        b.add(Stat::Relayed);
        let snap = a.snapshot();
        assert_eq!(snap.received, 1);
        assert_eq!(snap.dropped(DropReason::PeerPaused), 1);
        assert_eq!(snap.dropped_total(), 1);
        let g = global.snapshot();
        assert_eq!((g.received, g.relayed, g.dropped_total()), (2, 1, 1));
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let names: std::collections::HashSet<_> =
            DropReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), DropReason::COUNT, "names are distinct");
        assert!(names.contains("foreign_source"));
    }
}
