//! The router's clock. Time can be compressed (`scale` > 1) so that a simulated day runs in
//! minutes with every timer (ring timeouts, wrap-up, leases) compressed alike.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use callgrid_domain::TimeMs;

/// Wall-clock time, optionally running faster than real time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin_ms: TimeMs,
    origin: Instant,
    scale: f64,
}

impl Clock {
    /// Real time.
    pub fn real() -> Clock {
        Clock::scaled(1.0)
    }

    /// Time running `scale` times faster than real time, from now.
    pub fn scaled(scale: f64) -> Clock {
        let origin_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as TimeMs);
        Clock {
            origin_ms,
            origin: Instant::now(),
            scale: if scale > 0.0 { scale } else { 1.0 },
        }
    }

    /// How much faster than real time.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Now, in ms since the epoch (compressed time after the origin).
    pub fn now(&self) -> TimeMs {
        let real = self.origin.elapsed().as_secs_f64() * 1000.0;
        self.origin_ms + (real * self.scale) as TimeMs
    }

    /// The real delay until `deadline` (clock time).
    pub fn until(&self, deadline: TimeMs) -> Duration {
        let d = deadline.saturating_sub(self.now());
        Duration::from_secs_f64(d as f64 / 1000.0 / self.scale)
    }
}
