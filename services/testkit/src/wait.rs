//! Waiting for a condition: tried again and again, more and more slowly (from every 5 ms to
//! every 100 ms), until it holds or the time is up.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// The first pause between two tries; it doubles up to [`SLOWEST`].
const FIRST: Duration = Duration::from_millis(5);
/// The longest pause between two tries.
const SLOWEST: Duration = Duration::from_millis(100);

/// What one try of a condition says: done (with a value), or not yet (and why, if it knows).
pub trait Outcome {
    /// What the wait returns once the condition holds.
    type Value;
    /// `Ok(value)` when the condition holds; else why not, if known.
    fn done(self) -> Result<Self::Value, Option<String>>;
}

impl Outcome for bool {
    type Value = ();
    fn done(self) -> Result<(), Option<String>> {
        if self {
            Ok(())
        } else {
            Err(None)
        }
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn done(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Display> Outcome for Result<T, E> {
    type Value = T;
    fn done(self) -> Result<T, Option<String>> {
        self.map_err(|e| Some(e.to_string()))
    }
}

/// Tries `f` until it holds (`true`, `Some(value)`, `Ok(value)`) and returns its value; panics
/// naming `what` (and the last error) when it does not hold within `limit`.
pub async fn eventually<O: Outcome>(
    what: &str,
    limit: Duration,
    f: impl AsyncFnMut() -> O,
) -> O::Value {
    tries(what, limit, None, f).await
}

/// [`eventually`], trying every `pause` (for a condition that holds only for a moment).
pub async fn eventually_every<O: Outcome>(
    what: &str,
    limit: Duration,
    pause: Duration,
    f: impl AsyncFnMut() -> O,
) -> O::Value {
    tries(what, limit, Some(pause), f).await
}

async fn tries<O: Outcome>(
    what: &str,
    limit: Duration,
    every: Option<Duration>,
    mut f: impl AsyncFnMut() -> O,
) -> O::Value {
    let deadline = Instant::now() + limit;
    let mut pause = every.unwrap_or(FIRST);
    loop {
        let why = match f().await.done() {
            Ok(v) => return v,
            Err(why) => why,
        };
        give_up_after(deadline, limit, what, why);
        tokio::time::sleep(pause).await;
        if every.is_none() {
            pause = (pause * 2).min(SLOWEST);
        }
    }
}

/// [`eventually`] for a test without a tokio runtime: `f` is a plain closure and the thread
/// sleeps between tries.
pub fn eventually_blocking<O: Outcome>(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> O,
) -> O::Value {
    let deadline = Instant::now() + limit;
    let mut pause = FIRST;
    loop {
        let why = match f().done() {
            Ok(v) => return v,
            Err(why) => why,
        };
        give_up_after(deadline, limit, what, why);
        std::thread::sleep(pause);
        pause = (pause * 2).min(SLOWEST);
    }
}

fn give_up_after(deadline: Instant, limit: Duration, what: &str, why: Option<String>) {
    if Instant::now() >= deadline {
        match why {
            Some(why) => panic!("timed out after {limit:?} waiting for {what}: {why}"),
            None => panic!("timed out after {limit:?} waiting for {what}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_that_comes_true_returns_its_value() {
        let mut n = 0;
        let got = eventually_blocking("the third try", Duration::from_secs(10), || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(got, 3);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let mut tries = 0;
        rt.block_on(eventually(
            "two tries",
            Duration::from_secs(10),
            async || {
                tries += 1;
                tries == 2
            },
        ));
        assert_eq!(tries, 2);
    }

    #[test]
    #[should_panic(expected = "timed out after 20ms waiting for the impossible: not yet")]
    fn a_condition_that_never_holds_names_what_and_why() {
        eventually_blocking("the impossible", Duration::from_millis(20), || {
            Err::<(), _>("not yet")
        });
    }
}
