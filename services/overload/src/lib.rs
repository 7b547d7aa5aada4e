//! Load shedding from the real backlog (docs/DECISIONS.md, "Overload").
//!
//! A [`Shedder`] refuses new work (a new call: SIP 503 at the edge, `UNAVAILABLE` at the
//! router) with a probability it adjusts from how long work is waiting right now: the
//! queueing delay of the threads and queues that new work passes through, each a [`Source`]
//! (the I/O runtime's scheduling delay, each actor thread's, the journal's queue). Counting
//! calls in progress says nothing about whether the machine keeps up; the time work waits
//! does, and it rises as soon as the machine falls behind, long before callers give up.
//!
//! The controller is PIE's (RFC 8033): every tick (10 ms) it takes the largest delay any
//! source saw since the last tick (or the age of a probe still outstanding: a thread that is
//! stuck reports nothing) and moves the refusal probability by `alpha` × (delay − target) +
//! `beta` × (delay − previous delay). The first term holds the delay at the target under a
//! steady overload, the second reacts to a rising backlog before it is large. It runs on a
//! thread of its own, so a saturated runtime cannot delay the decision to shed its load.
//! A backlog may stand for [`ShedOptions::max_burst`] after a calm spell before anything is
//! refused, and nothing is refused while the backlog is under half the target (RFC 8033's
//! burst tolerance; see `Pie`). Admission is one atomic load when nothing is shed, and a
//! random draw when something is.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How the shedder reacts.
#[derive(Clone, Debug)]
pub struct ShedOptions {
    /// The queueing delay held under overload (20 ms): below it nothing is refused.
    pub target: Duration,
    /// How often the probability is updated (10 ms).
    pub tick: Duration,
    /// Probability per second of delay above the target, per tick (2).
    pub alpha: f64,
    /// Probability per second of delay growth since the last tick (20).
    pub beta: f64,
    /// Once the delay is under half the target, the probability is multiplied by this every
    /// tick (0.98), so that shedding ends soon after the overload does.
    pub decay: f64,
    /// How long a backlog may stand after a calm spell before anything is refused (150 ms,
    /// RFC 8033's `MAX_BURST`): a slow moment (an fsync of 50 ms, a thread woken late) that
    /// passes within it refuses nothing.
    pub max_burst: Duration,
}

impl Default for ShedOptions {
    fn default() -> Self {
        ShedOptions {
            target: Duration::from_millis(20),
            tick: Duration::from_millis(10),
            alpha: 2.0,
            beta: 20.0,
            decay: 0.98,
            max_burst: Duration::from_millis(150),
        }
    }
}

/// The probability scale: `p` is held in 1/65,536ths.
const ONE: u32 = 1 << 16;

struct SourceCell {
    name: &'static str,
    /// The largest delay recorded since the controller's last tick (µs).
    tick_max_us: AtomicU64,
    /// When the probe in flight was sent (µs since the shedder's epoch + 1), 0 if none is.
    outstanding_since: AtomicU64,
    /// The delay the controller last took from this source (µs).
    last_us: AtomicU64,
    /// Whether a delay was recorded since the controller's last tick.
    reported: AtomicBool,
    /// The last tick's largest recorded delay (µs) and when that tick was (µs since the
    /// epoch + 1; 0: never): held for ticks without records, up to [`HOLD`].
    held_us: AtomicU64,
    held_at_us: AtomicU64,
    /// Nothing waits in the queue since its last record ([`Source::idle`]): no hold.
    idle: AtomicBool,
}

/// How long a source's last report stands for ticks in which it reports nothing. Some
/// queues report in bursts: an arrival's delay is known when its group commit completes,
/// hundreds of ms apart under overload, all of a commit's arrivals at once. Counted as 0 in
/// the ticks between, they made the window's least delay 0 while arrivals waited a second,
/// and nothing was shed until the 1,000-arrivals cap refused, each refusal after its wait.
/// Half a second bridges the longest commit seen and lets an old report lapse when a queue
/// falls silent (no traffic: nothing waits).
const HOLD: Duration = Duration::from_millis(500);

struct Inner {
    opts: ShedOptions,
    epoch: Instant,
    sources: Mutex<Vec<Arc<SourceCell>>>,
    /// Refusal probability in 1/65,536ths.
    p: AtomicU32,
    /// The standing delay the controller last acted on (µs).
    delay_us: AtomicU64,
    rng: AtomicU64,
    admitted: AtomicU64,
    refused: AtomicU64,
    /// Ticks spent shedding (p > 0).
    shedding_ticks: AtomicU64,
    stopped: AtomicBool,
}

impl Inner {
    fn new(opts: ShedOptions, p: f64, stopped: bool) -> Inner {
        Inner {
            opts,
            epoch: Instant::now(),
            sources: Mutex::new(Vec::new()),
            p: AtomicU32::new((p.clamp(0.0, 1.0) * f64::from(ONE)) as u32),
            delay_us: AtomicU64::new(0),
            rng: AtomicU64::new(0x853c_49e6_748f_ea9b),
            admitted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            shedding_ticks: AtomicU64::new(0),
            stopped: AtomicBool::new(stopped),
        }
    }
}

/// Decides whether new work is taken; cheap to clone (all clones are one shedder).
#[derive(Clone)]
pub struct Shedder(Arc<Inner>);

impl std::fmt::Debug for Shedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shedder")
            .field("probability", &self.probability())
            .field("delay", &self.delay())
            .finish()
    }
}

/// One queue whose delay the shedder watches. Record what work waited in it, or mark a
/// probe sent and answered.
#[derive(Clone)]
pub struct Source {
    cell: Arc<SourceCell>,
    epoch: Instant,
    shedder: Weak<Inner>,
}

impl Source {
    /// Work waited `delay` in this queue.
    pub fn record(&self, delay: Duration) {
        self.cell
            .tick_max_us
            .fetch_max(delay.as_micros() as u64, Ordering::Relaxed);
        self.cell.idle.store(false, Ordering::Relaxed);
        self.cell.reported.store(true, Ordering::Relaxed);
    }

    /// Nothing waits in this queue now (its last waiting work was recorded): its reports
    /// are not held for the ticks that follow ([`HOLD`] is for queues whose work is still
    /// waiting between reports). Without it, refusing every new call (which stops the
    /// arrivals' reports) held their last delay, and the refusing, for the whole hold.
    pub fn idle(&self) {
        self.cell.idle.store(true, Ordering::Relaxed);
    }

    /// A probe is sent now: until [`Source::answered`], its age counts as this queue's delay.
    pub fn sent(&self) -> Instant {
        let now = Instant::now();
        let us = now.duration_since(self.epoch).as_micros() as u64 + 1;
        self.cell.outstanding_since.store(us, Ordering::Relaxed);
        now
    }

    /// The probe sent at `sent` ran: it waited `now - sent - expected` (`expected` is what it
    /// was meant to take, as a timer's period).
    pub fn answered(&self, sent: Instant, expected: Duration) {
        self.cell.outstanding_since.store(0, Ordering::Relaxed);
        self.record(sent.elapsed().saturating_sub(expected));
    }

    /// The source's name.
    pub fn name(&self) -> &'static str {
        self.cell.name
    }

    /// Whether the shedder still lives (a probe stops when it does not).
    pub fn watched(&self) -> bool {
        self.shedder.strong_count() > 0
    }
}

impl Shedder {
    /// A shedder that admits everything until its sources report delays; its controller
    /// runs on a thread of its own until every clone is dropped.
    pub fn new(opts: ShedOptions) -> Shedder {
        let inner = Arc::new(Inner::new(opts, 0.0, false));
        let weak = Arc::downgrade(&inner);
        let tick = inner.opts.tick;
        let spawned = std::thread::Builder::new()
            .name("callgrid-shed".into())
            .spawn(move || control(weak, tick));
        if let Err(e) = spawned {
            // without its controller the shedder admits everything, as before it existed
            tracing::error!(error = %e, "the load shedder's thread did not start: nothing is shed");
        }
        Shedder(inner)
    }

    /// A shedder that refuses with the probability `p` (0 to 1) whatever its sources say,
    /// with no controller: for tests of what is done with a refusal.
    pub fn fixed(p: f64) -> Shedder {
        Shedder(Arc::new(Inner::new(ShedOptions::default(), p, true)))
    }

    /// A queue to watch, named for metrics and logs.
    pub fn source(&self, name: &'static str) -> Source {
        let cell = Arc::new(SourceCell {
            name,
            tick_max_us: AtomicU64::new(0),
            outstanding_since: AtomicU64::new(0),
            last_us: AtomicU64::new(0),
            reported: AtomicBool::new(false),
            held_us: AtomicU64::new(0),
            held_at_us: AtomicU64::new(0),
            idle: AtomicBool::new(false),
        });
        lock(&self.0.sources).push(cell.clone());
        Source {
            cell,
            epoch: self.0.epoch,
            shedder: Arc::downgrade(&self.0),
        }
    }

    /// Whether to take one more unit of new work; counted either way.
    pub fn admit(&self) -> bool {
        let p = self.0.p.load(Ordering::Relaxed);
        if p == 0 {
            self.0.admitted.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let draw = (splitmix(
            self.0
                .rng
                .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed),
        ) >> 48) as u32;
        if p >= ONE || draw < p {
            self.0.refused.fetch_add(1, Ordering::Relaxed);
            false
        } else {
            self.0.admitted.fetch_add(1, Ordering::Relaxed);
            true
        }
    }

    /// The refusal probability now, 0 to 1.
    pub fn probability(&self) -> f64 {
        f64::from(self.0.p.load(Ordering::Relaxed)) / f64::from(ONE)
    }

    /// The standing backlog delay the controller last acted on (the least of the last
    /// 100 ms).
    pub fn delay(&self) -> Duration {
        Duration::from_micros(self.0.delay_us.load(Ordering::Relaxed))
    }

    /// Whether work waits right now: new work is being refused, or the standing backlog is
    /// at least half the target. Background work (the projector) rests while it is, so that
    /// the CPU goes to calls first. (Resting also on single slow ticks, 100 ms before a
    /// backlog stands, and for a second after: the supervisors' push p99 at 2,500 calls/s
    /// went from 178-183 ms to 289 ms.)
    pub fn behind(&self) -> bool {
        self.0.p.load(Ordering::Relaxed) > 0 || self.delay() * 2 >= self.0.opts.target
    }

    /// Each source's name and the delay last taken from it.
    pub fn delays(&self) -> Vec<(&'static str, Duration)> {
        lock(&self.0.sources)
            .iter()
            .map(|s| {
                (
                    s.name,
                    Duration::from_micros(s.last_us.load(Ordering::Relaxed)),
                )
            })
            .collect()
    }

    /// Units of work admitted and refused so far, and the controller's ticks spent shedding.
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.0.admitted.load(Ordering::Relaxed),
            self.0.refused.load(Ordering::Relaxed),
            self.0.shedding_ticks.load(Ordering::Relaxed),
        )
    }

    /// Watches the current tokio runtime: a task sleeps `every` (5 ms is right) and records
    /// how late it woke (the time a ready task waits for a worker thread). Runs while the
    /// shedder lives.
    pub fn probe_runtime(&self, name: &'static str, every: Duration) {
        let source = self.source(name);
        tokio::spawn(async move {
            while source.watched() {
                let sent = source.sent();
                tokio::time::sleep(every).await;
                source.answered(sent, every);
            }
        });
    }

    /// Stops the controller (it also ends once every clone is gone).
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The controller's loop: one [`step`] per tick while the shedder lives.
fn control(inner: Weak<Inner>, tick: Duration) {
    let mut state = match inner.upgrade() {
        Some(inner) => Pie::new(&inner.opts),
        None => return,
    };
    let mut log = Log::default();
    loop {
        std::thread::sleep(tick);
        let Some(inner) = inner.upgrade() else { return };
        if inner.stopped.load(Ordering::Relaxed) {
            return;
        }
        let p = step(&inner, &mut state);
        log.after(&inner, p);
    }
}

/// Ticks over which the least delay is the standing backlog (10: 100 ms, CoDel's interval).
const WINDOW: usize = 10;

/// The controller's memory between ticks.
#[derive(Debug, Clone, Copy)]
struct Pie {
    /// PIE's probability, which the controller moves.
    p: f64,
    /// The probability new work is refused with: `p`, except while the burst allowance
    /// lasts (RFC 8033 §4.4) and while the backlog is under half the target. RFC 8033 §5.1
    /// admits everything there only while `p` is under 20 %, for TCP senders that slow down
    /// a round trip after a drop; a refused call's load is gone at once, so a drained
    /// backlog means the node keeps up now, and refusing while `p` decays only costs calls
    /// (it refused calls 5 s after an overload, after a 110 ms write stall).
    refuse: f64,
    /// The standing delay of the last tick, seconds.
    prev_delay_s: f64,
    /// The last ticks' delays, seconds.
    window: [f64; WINDOW],
    at: usize,
    /// What is left of the burst allowance, seconds.
    burst_left_s: f64,
}

impl Pie {
    fn new(o: &ShedOptions) -> Pie {
        Pie {
            p: 0.0,
            refuse: 0.0,
            prev_delay_s: 0.0,
            window: [0.0; WINDOW],
            at: 0,
            burst_left_s: o.max_burst.as_secs_f64(),
        }
    }

    /// PIE's update for one tick whose sources saw at most `seen_s` (seconds); returns the
    /// new probability. It acts on the standing backlog: the least delay of the last
    /// [`WINDOW`] ticks (CoDel's insight: a burst passes within a window, a backlog the
    /// machine cannot work off does not; a busy 2-core machine wakes a thread 10-15 ms late
    /// now and then without being behind). The growth term counts only above half the target
    /// (as PIE's safeguard against bursts). Once the delay is under half the target and
    /// falling, the probability also decays by 2 % a tick so that it reaches 0 when the
    /// overload is over. Sets [`Pie::refuse`].
    fn update(&mut self, seen_s: f64, o: &ShedOptions) -> f64 {
        self.window[self.at] = seen_s;
        self.at = (self.at + 1) % WINDOW;
        let delay_s = self.window.iter().copied().fold(f64::INFINITY, f64::min);
        let target = o.target.as_secs_f64();
        let mut step = o.alpha * (delay_s - target);
        if delay_s > target / 2.0 {
            // growth counts only near the target: a delay going from 1 to 9 ms is jitter
            step += o.beta * (delay_s - self.prev_delay_s);
        }
        let mut p = self.p + step * small_steps(self.p);
        let calm = delay_s < target / 2.0 && self.prev_delay_s < target / 2.0;
        if calm {
            p *= o.decay;
        }
        self.p = if p <= 0.0 || (calm && p < 1e-4) {
            0.0
        } else {
            p.min(1.0)
        };
        self.burst_left_s = if self.p == 0.0 && calm {
            o.max_burst.as_secs_f64()
        } else {
            (self.burst_left_s - o.tick.as_secs_f64()).max(0.0)
        };
        let draining = delay_s < target / 2.0;
        self.refuse = if self.burst_left_s > 0.0 || draining {
            0.0
        } else {
            self.p
        };
        self.prev_delay_s = delay_s;
        self.p
    }
}

/// How much of PIE's step is taken at probability `p` (RFC 8033 §4.2, its auto-tuning):
/// while the probability is small, so are its steps, and a single slow moment (an fsync
/// of 30 ms, a thread woken 100 ms late once) refuses a call or two instead of half the
/// calls of the next second; a backlog that stands keeps stepping and reaches the full
/// step within a dozen ticks.
fn small_steps(p: f64) -> f64 {
    match p {
        p if p < 1e-6 => 1.0 / 2048.0,
        p if p < 1e-5 => 1.0 / 512.0,
        p if p < 1e-4 => 1.0 / 128.0,
        p if p < 1e-3 => 1.0 / 32.0,
        p if p < 1e-2 => 1.0 / 8.0,
        p if p < 1e-1 => 1.0 / 2.0,
        _ => 1.0,
    }
}

/// One tick: the backlog delay from the sources, the new probability (returned).
fn step(inner: &Inner, state: &mut Pie) -> f64 {
    let now_us = inner.epoch.elapsed().as_micros() as u64 + 1;
    let mut delay_us = 0u64;
    for s in lock(&inner.sources).iter() {
        let mut d = s.tick_max_us.swap(0, Ordering::Relaxed);
        let idle = s.idle.load(Ordering::Relaxed);
        if s.reported.swap(false, Ordering::Relaxed) {
            s.held_us.store(d, Ordering::Relaxed);
            s.held_at_us
                .store(if idle { 0 } else { now_us }, Ordering::Relaxed);
        } else if idle {
            s.held_at_us.store(0, Ordering::Relaxed);
        } else {
            let at = s.held_at_us.load(Ordering::Relaxed);
            if at != 0 && now_us.saturating_sub(at) < HOLD.as_micros() as u64 {
                d = s.held_us.load(Ordering::Relaxed);
            }
        }
        let since = s.outstanding_since.load(Ordering::Relaxed);
        if since != 0 {
            d = d.max(now_us.saturating_sub(since));
        }
        s.last_us.store(d, Ordering::Relaxed);
        delay_us = delay_us.max(d);
    }
    state.update(delay_us as f64 / 1e6, &inner.opts);
    let p = state.refuse;
    inner
        .p
        .store((p * f64::from(ONE)) as u32, Ordering::Relaxed);
    inner
        .delay_us
        .store((state.prev_delay_s * 1e6) as u64, Ordering::Relaxed);
    if p > 0.0 {
        inner.shedding_ticks.fetch_add(1, Ordering::Relaxed);
    }
    p
}

/// Logs overloads without flooding the log: a warning when shedding starts (at most one per
/// [`Log::EVERY`], naming each source's delay), and a note once nothing has been shed for a
/// second, with what was refused meanwhile.
#[derive(Default)]
struct Log {
    warned: Option<Instant>,
    refused_at_warning: u64,
    calm_since: Option<Instant>,
}

impl Log {
    const EVERY: Duration = Duration::from_secs(10);

    fn after(&mut self, inner: &Inner, p: f64) {
        let now = Instant::now();
        if p > 0.0 {
            self.calm_since = None;
            if self
                .warned
                .is_none_or(|w| now.duration_since(w) >= Log::EVERY)
            {
                let delays: Vec<String> = lock(&inner.sources)
                    .iter()
                    .map(|s| format!("{} {} ms", s.name, s.last_us.load(Ordering::Relaxed) / 1000))
                    .collect();
                tracing::warn!(
                    probability = p,
                    delays = %delays.join(", "),
                    "overloaded: refusing part of the new calls until the backlog drains"
                );
                self.warned = Some(now);
                self.refused_at_warning = inner.refused.load(Ordering::Relaxed);
            }
        } else if self.warned.is_some() {
            let calm = *self.calm_since.get_or_insert(now);
            if now.duration_since(calm) >= Duration::from_secs(1) {
                tracing::info!(
                    refused = inner.refused.load(Ordering::Relaxed) - self.refused_at_warning,
                    "no longer overloaded: new calls are all taken again"
                );
                self.warned = None;
                self.calm_since = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ShedOptions {
        ShedOptions::default()
    }

    /// Ticks of the burst allowance.
    fn allowance_ticks() -> usize {
        (opts().max_burst.as_millis() / opts().tick.as_millis()) as usize
    }

    /// A shedder whose controller is stopped (the test steps it) and one source of it.
    fn stopped_with(name: &'static str) -> (Shedder, Source) {
        let s = Shedder::new(opts());
        s.stop();
        let src = s.source(name);
        (s, src)
    }

    #[test]
    fn nothing_is_refused_while_the_delay_stays_under_the_target() {
        let mut pie = Pie::new(&opts());
        for _ in 0..1_000 {
            assert_eq!(pie.update(0.010, &opts()), 0.0);
        }
    }

    #[test]
    fn a_standing_backlog_raises_the_probability_until_it_drains() {
        let mut pie = Pie::new(&opts());
        let mut p = 0.0;
        for _ in 0..20 {
            p = pie.update(0.060, &opts());
        }
        assert!(p > 0.5, "after 200 ms at 60 ms of delay: {p}");
        // the backlog drains: the probability falls back to nothing
        let mut ticks = 0;
        while pie.update(0.002, &opts()) > 0.0 {
            ticks += 1;
            assert!(ticks < 1_000, "never stopped shedding");
        }
    }

    #[test]
    fn a_rising_backlog_is_shed_before_it_stands_at_the_target() {
        let mut pie = Pie::new(&opts());
        let mut p = 0.0;
        for tick in 0..WINDOW + 4 {
            p = pie.update(0.003 * tick as f64, &opts());
        }
        assert!(
            p > 0.0,
            "a delay rising 3 ms a tick, standing at 12 ms: {p}"
        );
    }

    #[test]
    fn one_slow_moment_refuses_almost_nothing() {
        let mut pie = Pie::new(&opts());
        // calm, then 130 ms in which everything waits 30 ms (one slow fsync): the window's
        // least delay stands at 30 ms for four ticks; then calm again
        let mut most: f64 = 0.0;
        for tick in 0..300 {
            let seen = if (50..63).contains(&tick) {
                0.030
            } else {
                0.003
            };
            most = most.max(pie.update(seen, &opts()));
        }
        assert!(most > 0.0, "a standing delay over the target was not seen");
        assert!(most < 0.01, "one slow moment shed {most} of the calls");
        assert_eq!(pie.p, 0.0, "shedding did not end");
    }

    #[test]
    fn a_slow_moment_within_the_burst_allowance_refuses_nothing() {
        let mut pie = Pie::new(&opts());
        // calm, then 200 ms in which everything waits 50 ms (a slow fsync), then calm: the
        // backlog stands for 110 ms, within the allowance, and PIE's probability rises
        let mut most: f64 = 0.0;
        for tick in 0..300 {
            let seen = if (50..70).contains(&tick) {
                0.050
            } else {
                0.003
            };
            most = most.max(pie.update(seen, &opts()));
            assert_eq!(pie.refuse, 0.0, "tick {tick}: refused with p = {}", pie.p);
        }
        assert!(most > 0.0, "a standing delay over the target was not seen");
    }

    #[test]
    fn a_backlog_outlasting_the_burst_allowance_is_refused() {
        let mut pie = Pie::new(&opts());
        for _ in 0..100 {
            pie.update(0.003, &opts());
        }
        let mut first = None;
        for tick in 0..WINDOW + allowance_ticks() + 30 {
            pie.update(0.060, &opts());
            if pie.refuse > 0.0 && first.is_none() {
                first = Some(tick);
            }
        }
        // the window before the backlog stands, then the allowance
        let first = first.expect("a standing backlog of 60 ms was never shed");
        let expected = WINDOW + allowance_ticks();
        assert!(
            (expected - 2..expected + 5).contains(&first),
            "first refusal at tick {first}, expected about {expected}"
        );
        assert!(pie.refuse > 0.5, "{}", pie.refuse);
        // the allowance comes back only after a calm spell
        let mut ticks = 0;
        while pie.p > 0.0 {
            pie.update(0.002, &opts());
            ticks += 1;
            assert!(ticks < 1_000, "never stopped shedding");
        }
        assert!(pie.burst_left_s > 0.0);
    }

    #[test]
    fn nothing_is_refused_once_the_backlog_is_under_half_the_target() {
        let mut pie = Pie::new(&opts());
        for _ in 0..40 {
            pie.update(0.150, &opts());
        }
        assert!(pie.refuse > 0.5, "shedding at p = {}", pie.p);
        // the backlog drains under 10 ms while PIE's probability is still high
        pie.update(0.005, &opts());
        assert!(pie.p > 0.5, "p = {}", pie.p);
        assert_eq!(pie.refuse, 0.0);
        // and the backlog stands again (a window later): refused, with no new allowance
        for _ in 0..WINDOW {
            pie.update(0.150, &opts());
        }
        assert!(pie.refuse > 0.5, "p = {}", pie.p);
    }

    #[test]
    fn a_burst_shorter_than_the_window_is_not_a_backlog() {
        let mut pie = Pie::new(&opts());
        for tick in 0..100 {
            let seen = if tick % 4 == 0 { 0.080 } else { 0.003 };
            assert_eq!(pie.update(seen, &opts()), 0.0, "tick {tick}");
        }
    }

    #[test]
    fn admission_follows_the_probability() {
        assert!((0..1_000).all(|_| Shedder::fixed(0.0).admit()));
        let s = Shedder::fixed(0.25);
        let taken = (0..100_000).filter(|_| s.admit()).count();
        assert!(
            (70_000..80_000).contains(&taken),
            "{taken} of 100,000 at p = 0.25"
        );
        s.0.p.store(ONE, Ordering::Relaxed);
        assert!((0..1_000).all(|_| !s.admit()));
        let (admitted, refused, _) = s.counts();
        assert_eq!(admitted + refused, 101_000);
        assert_eq!(admitted as usize, taken);
    }

    #[test]
    fn a_probe_that_never_comes_back_counts_as_delay() {
        let (s, src) = stopped_with("stuck");
        src.sent();
        std::thread::sleep(Duration::from_millis(30));
        let mut pie = Pie::new(&opts());
        // the window, then the burst allowance
        for _ in 0..WINDOW + allowance_ticks() + 1 {
            step(&s.0, &mut pie);
        }
        assert!(s.delay() >= Duration::from_millis(30), "{:?}", s.delay());
        assert!(s.probability() > 0.0);
        assert_eq!(s.delays()[0].0, "stuck");
    }

    #[test]
    fn a_source_reporting_in_bursts_is_held_between_them() {
        let (s, commits) = stopped_with("arrivals");
        let mut pie = Pie::new(&opts());
        // a group commit every 200 ms (20 ticks) completes arrivals that waited 300 ms
        for tick in 0..60 {
            if tick % 20 == 0 {
                commits.record(Duration::from_millis(300));
            }
            step(&s.0, &mut pie);
        }
        assert!(s.delay() >= Duration::from_millis(300), "{:?}", s.delay());
        assert!(s.probability() > 0.5, "{}", s.probability());
    }

    #[test]
    fn a_silent_source_lapses_after_the_hold() {
        let (s, src) = stopped_with("sip-udp");
        let mut pie = Pie::new(&opts());
        src.record(Duration::from_millis(300));
        step(&s.0, &mut pie);
        assert_eq!(s.delays()[0].1, Duration::from_millis(300));
        std::thread::sleep(HOLD + Duration::from_millis(20));
        step(&s.0, &mut pie);
        assert_eq!(s.delays()[0].1, Duration::ZERO);
    }

    #[test]
    fn behind_once_a_backlog_of_half_the_target_stands() {
        let (s, src) = stopped_with("io");
        let mut pie = Pie::new(&opts());
        src.record(Duration::from_millis(5));
        step(&s.0, &mut pie);
        assert!(!s.behind());
        // one slow tick is not a backlog
        src.record(Duration::from_millis(25));
        step(&s.0, &mut pie);
        assert!(!s.behind());
        // 12 ms for a window: behind, though nothing is refused
        for _ in 0..WINDOW {
            src.record(Duration::from_millis(12));
            step(&s.0, &mut pie);
        }
        assert_eq!(s.probability(), 0.0);
        assert!(s.behind());
        for _ in 0..WINDOW {
            src.record(Duration::from_millis(2));
            step(&s.0, &mut pie);
        }
        assert!(!s.behind());
    }

    #[test]
    fn an_idle_source_is_not_held() {
        let (s, arrivals) = stopped_with("arrivals");
        let mut pie = Pie::new(&opts());
        // the last arrivals waited 200 ms, then none is in progress (every new call is
        // refused): their delay counts once, not for the hold
        arrivals.record(Duration::from_millis(200));
        arrivals.idle();
        step(&s.0, &mut pie);
        assert_eq!(s.delays()[0].1, Duration::from_millis(200));
        step(&s.0, &mut pie);
        assert_eq!(s.delays()[0].1, Duration::ZERO);
        // work waits again: held as before
        arrivals.record(Duration::from_millis(200));
        step(&s.0, &mut pie);
        step(&s.0, &mut pie);
        assert_eq!(s.delays()[0].1, Duration::from_millis(200));
        // and an idle queue lets a hold lapse at once
        arrivals.idle();
        step(&s.0, &mut pie);
        assert_eq!(s.delays()[0].1, Duration::ZERO);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_busy_runtime_is_seen_as_delay() {
        let s = Shedder::new(opts());
        s.stop();
        s.probe_runtime("io", Duration::from_millis(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
        // block the only worker thread for 60 ms: the probe wakes late
        std::thread::sleep(Duration::from_millis(60));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut pie = Pie::new(&opts());
        step(&s.0, &mut pie);
        let seen = s.delays()[0].1;
        assert!(seen >= Duration::from_millis(40), "delay seen {seen:?}");
    }
}
