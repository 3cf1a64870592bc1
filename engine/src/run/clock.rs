//! Time and randomness, injected so retries, backoff and timers test deterministically.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::{RngExt, SeedableRng};

use crate::workflow::model::RetryPolicy;

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
/// `max`, times the jitter factor.
pub fn backoff(policy: &RetryPolicy, next: u32, jitter_factor: f64) -> Duration {
    let exponent = next.saturating_sub(2) as i32;
    let base = policy.initial.as_secs_f64() * policy.factor.powi(exponent);
    let capped = base.min(policy.max.as_secs_f64());
    Duration::from_secs_f64((capped * jitter_factor).max(0.0))
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
