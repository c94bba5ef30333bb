//! Attempt limits over a sliding one-minute window, counted in memory: per client address
//! for the credential forms (sign in, sign up, reset request), and per API key for requests
//! made with one.
//!
//! A map of timestamps in a `DashMap` (already a dependency) rather than `governor` /
//! `tower_governor`: the limit is keyed by action *and* address, the 429 must say in
//! words when to retry, and the per-account limit — which must count only *failed*
//! sign-ins, something a request-level middleware never sees — lives in the database
//! (`services::accounts::login`). Counting per process is enough for this limit: each
//! instance behind the proxy grants its share.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

const WINDOW: Duration = Duration::from_secs(60);
/// Past this many tracked keys, idle ones are swept on the next attempt.
const SWEEP_ABOVE: usize = 10_000;

/// Sliding-window counters keyed by (action, who): a client address, or an API key's id.
pub struct AttemptLimiter<K = IpAddr> {
    per_minute: usize,
    windows: DashMap<(&'static str, K), VecDeque<Instant>>,
}

impl<K: std::hash::Hash + Eq + Copy> AttemptLimiter<K> {
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute: per_minute.max(1) as usize, windows: DashMap::new() }
    }

    /// Counts one attempt at `action` by `who`. Over the limit, the attempt is not
    /// counted and the answer is how long until the oldest counted attempt leaves the
    /// window.
    pub fn attempt(&self, action: &'static str, who: K) -> Result<(), Duration> {
        self.attempt_at(action, who, Instant::now())
    }

    fn attempt_at(&self, action: &'static str, who: K, now: Instant) -> Result<(), Duration> {
        if self.windows.len() > SWEEP_ABOVE {
            self.windows.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        let mut times = self.windows.entry((action, who)).or_default();
        while times.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            times.pop_front();
        }
        if times.len() >= self.per_minute {
            let oldest = times.front().copied().unwrap_or(now);
            return Err(WINDOW.saturating_sub(now.duration_since(oldest)).max(Duration::from_secs(1)));
        }
        times.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn the_attempt_over_the_limit_is_refused_until_the_oldest_leaves_the_window() {
        let limiter = AttemptLimiter::new(3);
        let start = Instant::now();
        for i in 0..3 {
            assert!(limiter.attempt_at("login", A, start + Duration::from_secs(i)).is_ok());
        }
        let wait = limiter.attempt_at("login", A, start + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(limiter.attempt_at("login", A, start + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn addresses_and_actions_are_counted_apart() {
        let limiter = AttemptLimiter::new(1);
        let now = Instant::now();
        assert!(limiter.attempt_at("login", A, now).is_ok());
        assert!(limiter.attempt_at("login", B, now).is_ok());
        assert!(limiter.attempt_at("signup", A, now).is_ok());
        assert!(limiter.attempt_at("login", A, now).is_err());
    }
}
