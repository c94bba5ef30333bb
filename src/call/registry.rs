//! The live calls of this instance: counted so shutdown can wait for them to finish.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::{Notify, watch};

use crate::domain::ids::TenantId;

/// Live calls by CallSid, and the shutdown signal they listen to.
#[derive(Clone)]
pub struct CallRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    calls: DashMap<String, TenantId>,
    changed: Notify,
    shutdown: watch::Sender<bool>,
}

/// Removes its call from the registry when dropped, however the call ends.
pub struct Registration {
    registry: CallRegistry,
    call_sid: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.inner.calls.remove(&self.call_sid);
        self.registry.inner.changed.notify_waiters();
    }
}

impl Default for CallRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl CallRegistry {
    pub fn new() -> Self {
        let (shutdown, _) = watch::channel(false);
        Self { inner: Arc::new(Inner { calls: DashMap::new(), changed: Notify::new(), shutdown }) }
    }

    pub fn register(&self, call_sid: &str, tenant_id: TenantId) -> Registration {
        self.inner.calls.insert(call_sid.to_owned(), tenant_id);
        Registration { registry: self.clone(), call_sid: call_sid.to_owned() }
    }

    pub fn is_live(&self, call_sid: &str) -> bool {
        self.inner.calls.contains_key(call_sid)
    }

    pub fn active(&self) -> usize {
        self.inner.calls.len()
    }

    /// A receiver that turns `true` when the server starts shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Waits for live calls to end: first up to `natural` on their own, then asks the rest
    /// to wrap up politely and waits up to `wrap_up` more. Returns how many were still
    /// running at the end.
    pub async fn drain(&self, natural: Duration, wrap_up: Duration) -> usize {
        if self.wait_idle(natural).await {
            return 0;
        }
        let _ = self.inner.shutdown.send(true);
        if self.wait_idle(wrap_up).await { 0 } else { self.active() }
    }

    async fn wait_idle(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.inner.changed.notified();
            if self.active() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.active() == 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_asks_remaining_calls_to_wrap_up_and_waits_for_them() {
        let registry = CallRegistry::new();
        let reg = registry.register("CA1", TenantId(1));
        let mut signal = registry.shutdown_signal();
        assert_eq!(registry.active(), 1);
        let ender = tokio::spawn(async move {
            signal.changed().await.unwrap();
            assert!(*signal.borrow());
            drop(reg);
        });
        assert_eq!(registry.drain(Duration::from_millis(10), Duration::from_secs(5)).await, 0);
        ender.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn drain_gives_up_after_the_grace_period() {
        let registry = CallRegistry::new();
        let _reg = registry.register("CA1", TenantId(1));
        assert_eq!(registry.drain(Duration::from_secs(30), Duration::from_secs(10)).await, 1);
    }
}
