//! The event list of a discrete-event simulation: events by time, those of one instant in the
//! order they were added (so a seeded run is the same run every time).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Events to come, earliest first.
#[derive(Debug)]
pub struct Agenda<E: Ord> {
    heap: BinaryHeap<Reverse<(u64, u64, E)>>,
    added: u64,
}

impl<E: Ord> Default for Agenda<E> {
    fn default() -> Self {
        Agenda {
            heap: BinaryHeap::new(),
            added: 0,
        }
    }
}

impl<E: Ord> Agenda<E> {
    /// `event` at time `at`, after the events already due then.
    pub fn push(&mut self, at: u64, event: E) {
        self.added += 1;
        self.heap.push(Reverse((at, self.added, event)));
    }

    /// The next event and its time.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        self.heap.pop().map(|Reverse((at, _, e))| (at, e))
    }

    /// The time of the next event.
    pub fn next_at(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((at, ..))| *at)
    }

    /// Whether nothing is to come.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}
