//! The RTP port pool: even ports of a range, each handed out to one leg at a time.

use std::collections::{HashSet, VecDeque};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::MediaError;

/// A pool of even UDP ports (RTP; the odd port above each is left for RTCP, which we ignore).
///
/// A port is never handed out twice while leased; a released port goes to the back of the
/// queue, so it is reused, but as late as possible (stray packets of the previous call have
/// time to stop).
#[derive(Debug)]
pub struct PortPool {
    first: u16,
    last: u16,
    state: Mutex<PoolState>,
}

#[derive(Debug)]
struct PoolState {
    free: VecDeque<u16>,
    leased: HashSet<u16>,
}

impl PortPool {
    /// A pool over the even ports of `range`, in order from a random starting point (so a
    /// restarted edge does not reuse the ports its previous run just used).
    pub fn new(range: RangeInclusive<u16>) -> Result<Arc<PortPool>, MediaError> {
        let (first, last) = (*range.start(), *range.end());
        let mut free: VecDeque<u16> = range.filter(|p| p % 2 == 0 && *p != 0).collect();
        if free.is_empty() {
            return Err(MediaError::BadPortRange { first, last });
        }
        let offset = (crate::rtp::random_u64() % free.len() as u64) as usize;
        free.rotate_left(offset);
        Ok(Arc::new(PortPool {
            first,
            last,
            state: Mutex::new(PoolState {
                free,
                leased: HashSet::new(),
            }),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leases a port; it returns to the pool when the lease is dropped.
    pub fn acquire(self: &Arc<Self>) -> Result<PortLease, MediaError> {
        let mut state = self.lock();
        let port = state.free.pop_front().ok_or(MediaError::PortsExhausted {
            first: self.first,
            last: self.last,
        })?;
        state.leased.insert(port);
        Ok(PortLease {
            port,
            pool: Arc::clone(self),
        })
    }

    fn release(&self, port: u16) {
        let mut state = self.lock();
        if state.leased.remove(&port) {
            state.free.push_back(port);
        }
    }

    /// Ports free now.
    pub fn available(&self) -> usize {
        self.lock().free.len()
    }

    /// Ports leased now.
    pub fn in_use(&self) -> usize {
        self.lock().leased.len()
    }

    /// Total number of ports of the pool.
    pub fn capacity(&self) -> usize {
        let state = self.lock();
        state.free.len() + state.leased.len()
    }

    /// Whether `port` is leased now.
    pub fn is_leased(&self, port: u16) -> bool {
        self.lock().leased.contains(&port)
    }

    /// The configured range.
    pub fn range(&self) -> RangeInclusive<u16> {
        self.first..=self.last
    }
}

/// One leased port; dropping it releases the port.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    pool: Arc<PortPool>,
}

impl PortLease {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.pool.release(self.port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_never_twice_and_reused_after_release() {
        let pool = PortPool::new(30001..=30010).unwrap();
        assert_eq!(pool.capacity(), 5);
        let leases: Vec<PortLease> = (0..5).map(|_| pool.acquire().unwrap()).collect();
        let mut ports: Vec<u16> = leases.iter().map(PortLease::port).collect();
        ports.sort_unstable();
        assert_eq!(ports, vec![30002, 30004, 30006, 30008, 30010]);
        assert!(matches!(
            pool.acquire(),
            Err(MediaError::PortsExhausted {
                first: 30001,
                last: 30010
            })
        ));
        assert_eq!(pool.in_use(), 5);
        let released = leases[2].port();
        drop(leases);
        assert_eq!(pool.available(), 5);
        assert!(!pool.is_leased(released));
        // released ports come back, each once
        let again: HashSet<u16> = (0..5).map(|_| pool.acquire().unwrap().port()).collect();
        assert!(again.contains(&released));
    }

    #[test]
    fn released_port_goes_to_the_back() {
        let pool = PortPool::new(40000..=40005).unwrap();
        let a = pool.acquire().unwrap();
        let port = a.port();
        drop(a);
        let b = pool.acquire().unwrap();
        let c = pool.acquire().unwrap();
        assert_ne!(b.port(), port);
        assert_ne!(c.port(), port);
        assert_eq!(pool.acquire().unwrap().port(), port);
    }

    #[test]
    fn a_range_without_even_ports_is_refused() {
        assert!(PortPool::new(30001..=30001).is_err());
        assert!(PortPool::new(0..=0).is_err());
        let (first, last) = (10, 5);
        let e = PortPool::new(first..=last).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid rtp port range 10-5: it must contain an even port"
        );
    }
}
