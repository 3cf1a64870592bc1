//! Time and randomness, injected so retries, backoff and timers test deterministically.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::{RngExt, SeedableRng};

use crate::workflow::model::{MAX_RETRY_DELAY, RetryPolicy};

/// Milliseconds since the Unix epoch, and jitter.
pub trait Clock: Send + Sync {
    /// Now, in ms since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A random factor in `[1 - jitter, 1 + jitter]`.
    fn jitter(&self, jitter: f64) -> f64;
}

/// The real clock, with jitter from a seeded generator (seed printed in debug logs).
pub struct SystemClock {
    rng: Mutex<rand::rngs::StdRng>,
}

impl SystemClock {
    /// A clock whose jitter comes from `seed`.
    pub fn new(seed: u64) -> Self {
        SystemClock { rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)) }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        tracing::debug!(seed, "jitter seed");
        Self::new(seed)
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
    }

    fn jitter(&self, jitter: f64) -> f64 {
        if jitter <= 0.0 {
            return 1.0;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        1.0 + rng.random_range(-jitter..=jitter)
    }
}

/// The delay before attempt `next` (2 for the first retry): `initial × factor^(next-2)`, capped at
/// `max` and at [`MAX_RETRY_DELAY`], times the jitter factor (itself kept within `[0, 2]`).
///
/// Total for any input: a definition pinned before durations were bounded (a `max` of
/// 584 billion years, a factor that overflows to infinity) gives a delay of at most twice
/// [`MAX_RETRY_DELAY`], never a panic; the delay never shrinks as `next` grows.
pub fn backoff(policy: &RetryPolicy, next: u32, jitter_factor: f64) -> Duration {
    let cap = policy.max.min(MAX_RETRY_DELAY).as_secs_f64();
    let exponent = i32::try_from(next.saturating_sub(2)).unwrap_or(i32::MAX);
    let base = policy.initial.as_secs_f64() * policy.factor.powi(exponent);
    // `NaN` (0 × ∞) and ∞ both become the cap; `f64::min` would keep a `NaN` out, but be plain.
    let capped = if base.is_finite() { base.clamp(0.0, cap) } else { cap };
    let jitter_factor = if jitter_factor.is_finite() { jitter_factor.clamp(0.0, 2.0) } else { 1.0 };
    Duration::try_from_secs_f64(capped * jitter_factor).unwrap_or(MAX_RETRY_DELAY)
}

/// `now_ms` plus `delay`, saturating instead of wrapping: a time in ms since the Unix epoch.
pub fn after(now_ms: i64, delay: Duration) -> i64 {
    now_ms.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            attempts: 5,
            initial: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(3),
            jitter: 0.0,
        };
        let delays: Vec<u64> = (2..=5).map(|n| backoff(&policy, n, 1.0).as_secs()).collect();
        assert_eq!(delays, [1, 2, 3, 3]);
        assert_eq!(backoff(&policy, 3, 1.5).as_secs_f64(), 3.0);
    }

    #[test]
    fn backoff_is_total_monotone_and_capped_for_huge_policies() {
        // What a definition pinned before durations were bounded can hold.
        let huge = Duration::from_secs(u64::MAX);
        let policies = [
            RetryPolicy { attempts: u32::MAX, initial: huge, factor: 2.0, max: huge, jitter: 1.0 },
            RetryPolicy {
                attempts: u32::MAX,
                initial: Duration::from_secs(1),
                factor: f64::MAX,
                max: huge,
                jitter: 1.0,
            },
            RetryPolicy {
                attempts: u32::MAX,
                initial: Duration::from_millis(1),
                factor: 1e300,
                max: Duration::from_secs(60),
                jitter: 0.0,
            },
        ];
        for policy in &policies {
            for jitter in [0.0, 1.0, 2.0, 1e300, f64::INFINITY, f64::NAN, -5.0] {
                let mut previous = Duration::ZERO;
                for next in [2, 3, 4, 10, 64, 1_000, 1 << 31, u32::MAX - 1, u32::MAX] {
                    let delay = backoff(policy, next, jitter);
                    assert!(
                        delay >= previous,
                        "{policy:?} next {next} jitter {jitter}: {delay:?} < {previous:?}"
                    );
                    assert!(delay <= policy.max.min(MAX_RETRY_DELAY) * 2, "{policy:?}: {delay:?}");
                    previous = delay;
                }
            }
            // Without jitter the delay reaches the cap and stays there.
            assert_eq!(backoff(policy, u32::MAX, 1.0), policy.max.min(MAX_RETRY_DELAY));
        }
        // A retry scheduled at the end of time saturates instead of wrapping into the past.
        assert_eq!(after(i64::MAX - 5, Duration::from_secs(u64::MAX)), i64::MAX);
        assert_eq!(after(1_000, backoff(&policies[0], 2, 1.0)), 1_000 + 24 * 60 * 60 * 1000);
    }

    #[test]
    fn jitter_stays_in_range_and_repeats_with_the_seed() {
        let a = SystemClock::new(7);
        let b = SystemClock::new(7);
        for _ in 0..100 {
            let (x, y) = (a.jitter(0.2), b.jitter(0.2));
            assert_eq!(x, y);
            assert!((0.8..=1.2).contains(&x));
        }
    }
}
