//! The failed-login limiter: after [`MAX_FAILURES`] failures within [`WINDOW`] from one client
//! address, or for one user name, further attempts are refused without checking a password
//! until the oldest failure leaves the window. The two counts are separate, so guessing one
//! name from many addresses and many names from one address are both slowed. Time is a
//! parameter, never read here, so tests drive the windows without sleeping.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures allowed within [`WINDOW`] per address and per name.
pub const MAX_FAILURES: usize = 5;
/// How long a failure counts.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Past this many keys, expired ones are swept on every failure (memory stays bounded by the
/// failures of the last window).
const SWEEP_ABOVE: usize = 1024;
/// Names are counted by at most this many bytes (a name longer is no user's anyway).
const NAME_KEY_BYTES: usize = 128;

/// Failures by address and by name.
#[derive(Debug, Default)]
pub struct Limiter {
    by_ip: HashMap<IpAddr, VecDeque<Instant>>,
    by_name: HashMap<String, VecDeque<Instant>>,
}

/// The failures counted after one more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Failures from this address within the window.
    pub ip: usize,
    /// Failures for this name within the window.
    pub name: usize,
}

fn name_key(name: &str) -> String {
    let mut end = name.len().min(NAME_KEY_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

/// Drops failures older than the window; the wait until the next one leaves, if the list is full.
fn prune(list: &mut VecDeque<Instant>, now: Instant) -> Option<Duration> {
    while list.front().is_some_and(|&t| now.saturating_duration_since(t) >= WINDOW) {
        list.pop_front();
    }
    if list.len() < MAX_FAILURES {
        return None;
    }
    let oldest = list[list.len() - MAX_FAILURES];
    Some((oldest + WINDOW).saturating_duration_since(now).max(Duration::from_secs(1)))
}

impl Limiter {
    /// `Err(retry_after)` when the address or the name has had too many failures.
    pub fn check(&mut self, ip: IpAddr, name: &str, now: Instant) -> Result<(), Duration> {
        let ip_wait = self.by_ip.get_mut(&ip).and_then(|l| prune(l, now));
        let name_wait = self.by_name.get_mut(&name_key(name)).and_then(|l| prune(l, now));
        match ip_wait.max(name_wait) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a failure; gives the counts within the window, this one included.
    pub fn record_failure(&mut self, ip: IpAddr, name: &str, now: Instant) -> Counts {
        if self.by_ip.len() + self.by_name.len() > SWEEP_ABOVE {
            self.by_ip.retain(|_, l| {
                prune(l, now);
                !l.is_empty()
            });
            self.by_name.retain(|_, l| {
                prune(l, now);
                !l.is_empty()
            });
        }
        let count = |list: &mut VecDeque<Instant>| {
            prune(list, now);
            list.push_back(now);
            list.len()
        };
        let ip = count(self.by_ip.entry(ip).or_default());
        let name = count(self.by_name.entry(name_key(name)).or_default());
        Counts { ip, name }
    }

    /// The failures counted now for the address and the name (for the log of a limited attempt).
    pub fn counts(&self, ip: IpAddr, name: &str, now: Instant) -> Counts {
        let live = |l: Option<&VecDeque<Instant>>| {
            l.map_or(0, |l| l.iter().filter(|&&t| now.saturating_duration_since(t) < WINDOW).count())
        };
        Counts { ip: live(self.by_ip.get(&ip)), name: live(self.by_name.get(&name_key(name))) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn five_failures_from_one_address_close_it_until_the_first_leaves_the_window() {
        let start = Instant::now();
        let mut limiter = Limiter::default();
        for n in 0..5u64 {
            let at = start + Duration::from_secs(60 * n);
            assert_eq!(limiter.check(ip(1), &format!("name{n}"), at), Ok(()));
            assert_eq!(limiter.record_failure(ip(1), &format!("name{n}"), at).ip, n as usize + 1);
        }
        // The 6th attempt, 5 minutes after the first: 10 minutes to wait.
        let sixth = start + Duration::from_secs(300);
        assert_eq!(limiter.check(ip(1), "other", sixth), Err(Duration::from_secs(600)));
        // Another address is not limited.
        assert_eq!(limiter.check(ip(2), "other", sixth), Ok(()));
        // Just before the first failure leaves the window: still closed; then open for one.
        assert!(limiter.check(ip(1), "other", start + WINDOW - Duration::from_millis(1)).is_err());
        assert_eq!(limiter.check(ip(1), "other", start + WINDOW), Ok(()));
        limiter.record_failure(ip(1), "other", start + WINDOW);
        assert!(limiter.check(ip(1), "other", start + WINDOW).is_err());
    }

    #[test]
    fn five_failures_for_one_name_close_it_from_every_address() {
        let start = Instant::now();
        let mut limiter = Limiter::default();
        for n in 0..5u8 {
            let counts = limiter.record_failure(ip(n), "alice", start);
            assert_eq!(counts, Counts { ip: 1, name: n as usize + 1 });
        }
        assert_eq!(limiter.check(ip(9), "alice", start), Err(WINDOW));
        assert_eq!(limiter.check(ip(9), "bob", start), Ok(()));
        assert_eq!(limiter.counts(ip(9), "alice", start), Counts { ip: 0, name: 5 });
        assert_eq!(limiter.check(ip(9), "alice", start + WINDOW), Ok(()));
        assert_eq!(limiter.counts(ip(9), "alice", start + WINDOW), Counts { ip: 0, name: 0 });
    }

    #[test]
    fn expired_keys_are_swept() {
        let start = Instant::now();
        let mut limiter = Limiter::default();
        for n in 0..2000u32 {
            limiter.record_failure(IpAddr::from(n.to_be_bytes()), "x", start);
        }
        limiter.record_failure(ip(1), "y", start + WINDOW);
        assert_eq!(limiter.by_ip.len() + limiter.by_name.len(), 2);
    }
}
