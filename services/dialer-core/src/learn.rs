//! What a campaign learns from its own results: how often a callee answers and after how
//! long, how long calls and wrap-ups last, and how many answered calls were abandoned. The
//! pacing reads these, never the parameters of a simulator or a guess: until a campaign has
//! seen enough of its own calls, it dials one call per free agent (docs/DECISIONS.md,
//! "Dialer pacing").

use serde::{Deserialize, Serialize};

/// Milliseconds (of the caller's clock: the core has none).
pub type Ms = u64;

/// Durations in bins of equal width, for the distribution function and its tail.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Durations {
    bin_ms: Ms,
    counts: Vec<f64>,
    /// `cum[i]`: the weight of bins `0..=i`; rebuilt when stale.
    #[serde(skip)]
    cum: Vec<f64>,
    total: f64,
    sum_ms: f64,
}

/// Equal when the durations are (the distribution's cache aside).
impl PartialEq for Durations {
    fn eq(&self, other: &Durations) -> bool {
        self.bin_ms == other.bin_ms
            && self.counts == other.counts
            && self.total == other.total
            && self.sum_ms == other.sum_ms
    }
}

impl Durations {
    /// Bins of `bin_ms` up to `max_ms` (longer durations count in the last bin).
    pub fn new(bin_ms: Ms, max_ms: Ms) -> Durations {
        let bins = (max_ms / bin_ms.max(1)).max(1) as usize + 1;
        Durations {
            bin_ms: bin_ms.max(1),
            counts: vec![0.0; bins],
            cum: Vec::new(),
            total: 0.0,
            sum_ms: 0.0,
        }
    }

    /// One more duration.
    pub fn record(&mut self, ms: Ms) {
        let last = self.counts.len() - 1;
        let b = ((ms / self.bin_ms) as usize).min(last);
        self.counts[b] += 1.0;
        self.total += 1.0;
        self.sum_ms += ms as f64;
        self.cum.clear();
    }

    /// Records `ms`, older durations first halved once [`MEMORY`] of them are kept.
    pub fn remember(&mut self, ms: Ms) {
        if self.total >= MEMORY {
            self.decay(0.5);
        }
        self.record(ms);
    }

    /// Durations recorded (decayed).
    pub fn count(&self) -> f64 {
        self.total
    }

    /// Their mean (0 when none).
    pub fn mean_ms(&self) -> f64 {
        if self.total > 0.0 {
            self.sum_ms / self.total
        } else {
            0.0
        }
    }

    /// Weighs everything recorded so far by `factor` (older results count less).
    pub fn decay(&mut self, factor: f64) {
        for c in &mut self.counts {
            *c *= factor;
        }
        self.total *= factor;
        self.sum_ms *= factor;
        self.cum.clear();
    }

    /// Makes the distribution function ready to read (after records).
    pub fn prepare(&mut self) {
        if self.cum.len() == self.counts.len() {
            return;
        }
        let mut acc = 0.0;
        self.cum = self
            .counts
            .iter()
            .map(|c| {
                acc += c;
                acc
            })
            .collect();
    }

    /// P(X ≤ ms), linear within a bin; 0 with nothing recorded. Call [`Durations::prepare`]
    /// after recording, or it reads as if nothing had been.
    pub fn cdf(&self, ms: f64) -> f64 {
        if self.total <= 0.0 || self.cum.len() != self.counts.len() || ms < 0.0 {
            return 0.0;
        }
        let pos = ms / self.bin_ms as f64;
        let b = pos.floor() as usize;
        if b >= self.counts.len() {
            return 1.0;
        }
        let below = if b == 0 { 0.0 } else { self.cum[b - 1] };
        let within = self.counts[b] * (pos - b as f64);
        ((below + within) / self.total).clamp(0.0, 1.0)
    }

    /// The bins holding weight, as (duration at the bin's middle, probability).
    pub fn masses(&self) -> Vec<(f64, f64)> {
        if self.total <= 0.0 {
            return Vec::new();
        }
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0.0)
            .map(|(i, c)| ((i as f64 + 0.5) * self.bin_ms as f64, c / self.total))
            .collect()
    }

    /// P(X ≤ elapsed + t | X > elapsed): that something under way for `elapsed` ends within
    /// `t` more. Beyond what was ever recorded, an exponential tail with the mean.
    pub fn ends_within(&self, elapsed: f64, t: f64) -> f64 {
        if t <= 0.0 {
            return 0.0;
        }
        let alive = 1.0 - self.cdf(elapsed);
        if alive < 1e-9 {
            let mean = self.mean_ms().max(1.0);
            return 1.0 - (-t / mean).exp();
        }
        ((self.cdf(elapsed + t) - self.cdf(elapsed)) / alive).clamp(0.0, 1.0)
    }
}

/// How a dialled call ended, as the pacing learns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A person (or a machine: there is no answering-machine detection) answered after
    /// ringing this long.
    Answered {
        /// From the dial to the answer.
        ring_ms: Ms,
    },
    /// Anything else (no answer, busy, rejected, failed), after this long.
    NotAnswered {
        /// From the dial to the end.
        after_ms: Ms,
    },
}

/// Counts of answered calls and of those abandoned (no agent within the grace time), per
/// hour, kept for 30 days (D3: abandonment over 24 hours and over 30 days).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AbandonWindow {
    /// (hour number since the epoch, answered, abandoned), oldest first.
    hours: Vec<(u64, u64, u64)>,
}

const HOUR_MS: Ms = 3_600_000;
const KEEP_HOURS: u64 = 30 * 24;

impl AbandonWindow {
    /// An answered call at `now`, abandoned or taken by an agent.
    pub fn record(&mut self, now: Ms, abandoned: bool) {
        let hour = now / HOUR_MS;
        match self.hours.last_mut() {
            Some((h, a, x)) if *h == hour => {
                *a += 1;
                *x += u64::from(abandoned);
            }
            _ => self.hours.push((hour, 1, u64::from(abandoned))),
        }
        let oldest = hour.saturating_sub(KEEP_HOURS - 1);
        let stale = self.hours.iter().take_while(|(h, ..)| *h < oldest).count();
        self.hours.drain(..stale);
    }

    /// (answered, abandoned) in the last `hours` hours up to `now`.
    pub fn over(&self, now: Ms, hours: u64) -> (u64, u64) {
        let from = (now / HOUR_MS).saturating_sub(hours.saturating_sub(1));
        self.hours
            .iter()
            .filter(|(h, ..)| *h >= from)
            .fold((0, 0), |(a, x), (_, a2, x2)| (a + a2, x + x2))
    }
}

/// Everything a campaign's pacing learns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Learned {
    answered: f64,
    outcomes: f64,
    /// Dial → answer, of answered calls.
    pub ring: Durations,
    /// Dial → end, of calls not answered.
    pub unanswered: Durations,
    /// Talk (bridge → hang-up).
    pub talk: Durations,
    /// Wrap-up (hang-up → the agent free again).
    pub wrapup: Durations,
    /// Answered calls and abandoned ones, per hour.
    pub abandons: AbandonWindow,
}

/// Results after which older ones start to count less (so a campaign follows a change of
/// the day: lunch time answers, a list of older leads).
const MEMORY: f64 = 5_000.0;

impl Default for Learned {
    fn default() -> Self {
        Learned {
            answered: 0.0,
            outcomes: 0.0,
            ring: Durations::new(250, 120_000),
            unanswered: Durations::new(250, 120_000),
            talk: Durations::new(1_000, 4 * HOUR_MS),
            wrapup: Durations::new(500, 600_000),
            abandons: AbandonWindow::default(),
        }
    }
}

impl Learned {
    /// A dialled call ended ringing (answered or not).
    pub fn dialled(&mut self, o: Outcome) {
        if self.outcomes >= MEMORY {
            let f = 0.5;
            self.answered *= f;
            self.outcomes *= f;
            self.ring.decay(f);
            self.unanswered.decay(f);
        }
        self.outcomes += 1.0;
        match o {
            Outcome::Answered { ring_ms } => {
                self.answered += 1.0;
                self.ring.record(ring_ms);
            }
            Outcome::NotAnswered { after_ms } => self.unanswered.record(after_ms),
        }
    }

    /// An answered call was taken by an agent (`abandoned` false) or abandoned.
    pub fn connected(&mut self, now: Ms, abandoned: bool) {
        self.abandons.record(now, abandoned);
    }

    /// A call's talk ended after `ms`.
    pub fn talked(&mut self, ms: Ms) {
        self.talk.remember(ms);
    }

    /// An agent's wrap-up ended after `ms`.
    pub fn wrapped_up(&mut self, ms: Ms) {
        self.wrapup.remember(ms);
    }

    /// Calls that ended ringing, answered or not (decayed).
    pub fn outcomes(&self) -> f64 {
        self.outcomes
    }

    /// Calls answered (decayed).
    pub fn answers(&self) -> f64 {
        self.answered
    }

    /// The share of dialled calls answered (0 before any).
    pub fn answer_probability(&self) -> f64 {
        if self.outcomes > 0.0 {
            self.answered / self.outcomes
        } else {
            0.0
        }
    }

    /// Makes the distributions ready to read.
    pub fn prepare(&mut self) {
        self.ring.prepare();
        self.unanswered.prepare();
        self.talk.prepare();
        self.wrapup.prepare();
    }

    /// P(a call ringing for `elapsed` ms is answered within `t` more ms).
    pub fn answered_within(&self, elapsed: f64, t: f64) -> f64 {
        let p = self.answer_probability();
        let alive =
            p * (1.0 - self.ring.cdf(elapsed)) + (1.0 - p) * (1.0 - self.unanswered.cdf(elapsed));
        if alive < 1e-9 || t <= 0.0 {
            return 0.0;
        }
        (p * (self.ring.cdf(elapsed + t) - self.ring.cdf(elapsed)) / alive).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_distribution_function_and_its_conditional_tail_follow_what_was_recorded() {
        let mut d = Durations::new(1_000, 100_000);
        for s in 1..=10 {
            d.record(s * 1_000 - 500);
        }
        d.prepare();
        assert_eq!(d.count(), 10.0);
        assert!((d.mean_ms() - 5_000.0).abs() < 1e-9);
        assert!((d.cdf(5_000.0) - 0.5).abs() < 1e-9);
        assert_eq!(d.cdf(-1.0), 0.0);
        assert_eq!(d.cdf(200_000.0), 1.0);
        // under way for 5 s: half of what is left ends within 2.5 s
        assert!((d.ends_within(5_000.0, 2_500.0) - 0.5).abs() < 1e-9);
        // beyond anything recorded: the exponential tail of the mean
        let tail = d.ends_within(50_000.0, 5_000.0);
        assert!((tail - (1.0 - (-1.0f64).exp())).abs() < 1e-9, "{tail}");
    }

    #[test]
    fn a_call_ringing_longer_than_any_answer_is_not_answered() {
        let mut l = Learned::default();
        for _ in 0..3 {
            l.dialled(Outcome::Answered { ring_ms: 5_000 });
        }
        for _ in 0..7 {
            l.dialled(Outcome::NotAnswered { after_ms: 20_000 });
        }
        l.prepare();
        assert!((l.answer_probability() - 0.3).abs() < 1e-9);
        // from the dial, 0.3 within 10 s; after 6 s of ringing, nothing
        assert!((l.answered_within(0.0, 10_000.0) - 0.3).abs() < 1e-9);
        assert_eq!(l.answered_within(6_000.0, 10_000.0), 0.0);
    }

    #[test]
    fn abandonment_is_counted_per_hour_for_thirty_days() {
        let mut w = AbandonWindow::default();
        w.record(0, false);
        w.record(10, true);
        w.record(2 * HOUR_MS, false);
        assert_eq!(w.over(2 * HOUR_MS, 24), (3, 1));
        assert_eq!(w.over(2 * HOUR_MS, 1), (1, 0));
        w.record(31 * 24 * HOUR_MS, false);
        assert_eq!(w.over(31 * 24 * HOUR_MS, 30 * 24), (1, 0));
    }
}
