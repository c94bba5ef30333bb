//! A circuit breaker per cloud provider: after a run of failures the provider is skipped
//! (calls go straight to the local engine) for a cool-down, then tried again.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Shared by every call of this instance.
#[derive(Debug)]
pub struct CircuitBreaker {
    name: &'static str,
    threshold: u32,
    cooldown: Duration,
    failures: AtomicU32,
    open_until: Mutex<Option<Instant>>,
}

impl CircuitBreaker {
    pub fn new(name: &'static str, threshold: u32, cooldown: Duration) -> Self {
        Self { name, threshold, cooldown, failures: AtomicU32::new(0), open_until: Mutex::new(None) }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether the provider may be tried now.
    pub fn allow(&self) -> bool {
        // A poisoned lock only means another thread panicked mid-update: the value is fine.
        let mut open = self.open_until.lock().unwrap_or_else(|e| e.into_inner());
        match *open {
            Some(until) if Instant::now() < until => false,
            Some(_) => {
                // Half-open: let a call try; one more failure reopens at once.
                *open = None;
                self.failures.store(self.threshold.saturating_sub(1), Ordering::Relaxed);
                true
            }
            None => true,
        }
    }

    pub fn record_success(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    pub fn record_failure(&self) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::counter!("ringlypro_provider_errors_total", "provider" => self.name).increment(1);
        if failures >= self.threshold {
            let mut open = self.open_until.lock().unwrap_or_else(|e| e.into_inner());
            *open = Some(Instant::now() + self.cooldown);
            tracing::warn!(provider = self.name, failures, "circuit open: using the local engine for a while");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_half_opens_after_the_cooldown() {
        let b = CircuitBreaker::new("test", 3, Duration::from_millis(30));
        assert!(b.allow());
        b.record_failure();
        b.record_failure();
        assert!(b.allow(), "two failures are not enough");
        b.record_failure();
        assert!(!b.allow(), "open after three");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "half-open after the cooldown");
        b.record_failure();
        assert!(!b.allow(), "one failure while half-open reopens");
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = CircuitBreaker::new("test", 2, Duration::from_secs(60));
        b.record_failure();
        b.record_success();
        b.record_failure();
        assert!(b.allow());
    }
}
