//! The live calls of this instance: counted so shutdown can wait for them to finish, and
//! each reachable by the owner's commands (take over, send a note).

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::{Notify, mpsc, watch};

use crate::call::commands::CallCommand;
use crate::domain::ids::TenantId;

/// Commands a call has not taken yet; an owner pressing buttons faster than this waits.
const COMMAND_QUEUE: usize = 8;

/// Live calls by CallSid, and the shutdown signal they listen to.
#[derive(Clone)]
pub struct CallRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    calls: DashMap<String, LiveCall>,
    changed: Notify,
    shutdown: watch::Sender<bool>,
}

struct LiveCall {
    tenant_id: TenantId,
    commands: mpsc::Sender<CallCommand>,
}

/// Whether a command reached a call held here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// No call by that CallSid of that tenant is live on this instance.
    NotHere,
    /// The call is ending and takes no more commands.
    Closing,
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

    /// Registers a live call; its commands arrive on the returned receiver.
    pub fn register(&self, call_sid: &str, tenant_id: TenantId) -> (Registration, mpsc::Receiver<CallCommand>) {
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        self.inner.calls.insert(call_sid.to_owned(), LiveCall { tenant_id, commands });
        (Registration { registry: self.clone(), call_sid: call_sid.to_owned() }, receiver)
    }

    /// Hands a command to a call of `tenant_id` live on this instance. A call of another
    /// tenant is `NotHere`, exactly as a call that does not exist.
    pub fn command(&self, tenant_id: TenantId, call_sid: &str, command: CallCommand) -> Delivery {
        let Some(call) =
            self.inner.calls.get(call_sid).filter(|c| c.tenant_id == tenant_id).map(|c| c.commands.clone())
        else {
            return Delivery::NotHere;
        };
        match call.try_send(command) {
            Ok(()) => Delivery::Delivered,
            Err(mpsc::error::TrySendError::Full(_)) | Err(mpsc::error::TrySendError::Closed(_)) => Delivery::Closing,
        }
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
    async fn a_command_reaches_its_own_tenants_call_only() {
        let registry = CallRegistry::new();
        let (reg, mut commands) = registry.register("CA1", TenantId(1));
        assert_eq!(registry.command(TenantId(2), "CA1", CallCommand::TakeOver), Delivery::NotHere);
        assert_eq!(registry.command(TenantId(1), "CA9", CallCommand::TakeOver), Delivery::NotHere);
        assert_eq!(registry.command(TenantId(1), "CA1", CallCommand::TakeOver), Delivery::Delivered);
        assert_eq!(commands.recv().await, Some(CallCommand::TakeOver));
        drop(commands);
        assert_eq!(registry.command(TenantId(1), "CA1", CallCommand::TakeOver), Delivery::Closing);
        drop(reg);
        assert_eq!(registry.command(TenantId(1), "CA1", CallCommand::TakeOver), Delivery::NotHere);
    }

    #[tokio::test]
    async fn drain_asks_remaining_calls_to_wrap_up_and_waits_for_them() {
        let registry = CallRegistry::new();
        let (reg, _commands) = registry.register("CA1", TenantId(1));
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
        let _reg = registry.register("CA1", TenantId(1)).0;
        assert_eq!(registry.drain(Duration::from_secs(30), Duration::from_secs(10)).await, 1);
    }
}
