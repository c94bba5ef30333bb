//! The call-state store: each live call's conversation checkpoint (`call:{CallSid}`, with a
//! TTL), the per-tenant index of live calls, the tenants' live feeds, and the owner's
//! commands on their way to the instance holding a call. Redis when configured, so the
//! dashboard and other instances see it; an in-process map with the same behaviour
//! otherwise (where a command only ever reaches this instance's calls).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use dashmap::DashMap;
use deadpool_redis::redis::AsyncCommands;

use crate::domain::ids::TenantId;

/// Where live-call state is kept.
#[derive(Clone)]
pub enum CallStateStore {
    Memory(Arc<MemoryStore>),
    Redis {
        pool: deadpool_redis::Pool,
        prefix: String,
        /// For pub/sub: a subscribed connection cannot come from (or go back to) the pool.
        client: deadpool_redis::redis::Client,
    },
}

/// A tenant's live feed as a stream of the published events, in order.
pub type Feed = futures::stream::BoxStream<'static, String>;

#[derive(Default)]
pub struct MemoryStore {
    checkpoints: DashMap<String, (Instant, String)>,
    live: DashMap<TenantId, Vec<String>>,
    feeds: DashMap<TenantId, tokio::sync::broadcast::Sender<String>>,
}

/// Capacity of an in-process live feed; a subscriber that falls this far behind skips ahead.
const FEED_CAPACITY: usize = 256;

impl CallStateStore {
    pub fn memory() -> Self {
        CallStateStore::Memory(Arc::default())
    }

    /// Connects to Redis at `url`; every key starts with `prefix`.
    pub async fn redis(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let pool = deadpool_redis::Config::from_url(url)
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .context("REDIS_URL is not a valid Redis URL")?;
        let client = deadpool_redis::redis::Client::open(url).context("REDIS_URL is not a valid Redis URL")?;
        let store = CallStateStore::Redis { pool, prefix: prefix.to_owned(), client };
        if !store.ping().await {
            anyhow::bail!("cannot reach Redis at the configured REDIS_URL");
        }
        Ok(store)
    }

    pub fn kind(&self) -> &'static str {
        match self {
            CallStateStore::Memory(_) => "in-process",
            CallStateStore::Redis { .. } => "redis",
        }
    }

    /// Saves a call's checkpoint, replacing the previous one; it expires after `ttl`.
    pub async fn save(&self, call_sid: &str, state: &str, ttl: Duration) -> anyhow::Result<()> {
        match self {
            CallStateStore::Memory(m) => {
                m.checkpoints.insert(call_sid.to_owned(), (Instant::now() + ttl, state.to_owned()));
                Ok(())
            }
            CallStateStore::Redis { pool, prefix, .. } => {
                let mut conn = pool.get().await?;
                let _: () = conn.set_ex(format!("{prefix}call:{call_sid}"), state, ttl.as_secs().max(1)).await?;
                Ok(())
            }
        }
    }

    pub async fn load(&self, call_sid: &str) -> anyhow::Result<Option<String>> {
        match self {
            CallStateStore::Memory(m) => {
                let expired = match m.checkpoints.get(call_sid) {
                    Some(entry) if entry.0 > Instant::now() => return Ok(Some(entry.1.clone())),
                    Some(_) => true,
                    None => false,
                };
                if expired {
                    m.checkpoints.remove(call_sid);
                }
                Ok(None)
            }
            CallStateStore::Redis { pool, prefix, .. } => {
                let mut conn = pool.get().await?;
                Ok(conn.get(format!("{prefix}call:{call_sid}")).await?)
            }
        }
    }

    /// Adds a call to its tenant's live index.
    pub async fn mark_live(&self, tenant_id: TenantId, call_sid: &str) -> anyhow::Result<()> {
        match self {
            CallStateStore::Memory(m) => {
                let mut calls = m.live.entry(tenant_id).or_default();
                if !calls.iter().any(|c| c == call_sid) {
                    calls.push(call_sid.to_owned());
                }
                Ok(())
            }
            CallStateStore::Redis { pool, prefix, .. } => {
                let mut conn = pool.get().await?;
                let _: () = conn.sadd(format!("{prefix}live:{tenant_id}"), call_sid).await?;
                Ok(())
            }
        }
    }

    /// Removes an ended call from the live index. In Redis its checkpoint expires on its
    /// own; in one process nothing reads an ended call's checkpoint again, so it goes now
    /// (kept for its two-hour lifetime it would grow the server by every call it took).
    pub async fn mark_ended(&self, tenant_id: TenantId, call_sid: &str) -> anyhow::Result<()> {
        match self {
            CallStateStore::Memory(m) => {
                if let Some(mut calls) = m.live.get_mut(&tenant_id) {
                    calls.retain(|c| c != call_sid);
                }
                m.checkpoints.remove(call_sid);
                Ok(())
            }
            CallStateStore::Redis { pool, prefix, .. } => {
                let mut conn = pool.get().await?;
                let _: () = conn.srem(format!("{prefix}live:{tenant_id}"), call_sid).await?;
                Ok(())
            }
        }
    }

    /// The tenant's calls in progress.
    pub async fn live_calls(&self, tenant_id: TenantId) -> anyhow::Result<Vec<String>> {
        match self {
            CallStateStore::Memory(m) => Ok(m.live.get(&tenant_id).map(|c| c.clone()).unwrap_or_default()),
            CallStateStore::Redis { pool, prefix, .. } => {
                let mut conn = pool.get().await?;
                let mut calls: Vec<String> = conn.smembers(format!("{prefix}live:{tenant_id}")).await?;
                calls.sort();
                Ok(calls)
            }
        }
    }

    /// Publishes one live event (a transcript line, a slot filled) on the tenant's channel
    /// (`{prefix}feed:{tenant}` in Redis) for dashboards on any instance.
    pub async fn publish(&self, tenant_id: TenantId, event: &str) -> anyhow::Result<()> {
        match self {
            CallStateStore::Memory(m) => {
                if let Some(feed) = m.feeds.get(&tenant_id) {
                    // No subscribers is not an error.
                    let _ = feed.send(event.to_owned());
                }
                Ok(())
            }
            CallStateStore::Redis { pool, prefix, .. } => {
                let mut conn = pool.get().await?;
                let _: i64 = conn.publish(format!("{prefix}feed:{tenant_id}"), event).await?;
                Ok(())
            }
        }
    }

    /// Subscribes to the in-process feed of a tenant (Redis subscribers use the channel).
    pub fn subscribe_local(&self, tenant_id: TenantId) -> Option<tokio::sync::broadcast::Receiver<String>> {
        match self {
            CallStateStore::Memory(m) => Some(
                m.feeds
                    .entry(tenant_id)
                    .or_insert_with(|| tokio::sync::broadcast::channel(FEED_CAPACITY).0)
                    .subscribe(),
            ),
            CallStateStore::Redis { .. } => None,
        }
    }

    /// Subscribes to a tenant's live feed: the in-process channel, or the Redis channel
    /// `{prefix}feed:{tenant}` so events published by any instance arrive. Once this
    /// returns, the subscription is in place: nothing published afterwards is missed
    /// (an in-process subscriber that falls far behind skips ahead).
    pub async fn subscribe(&self, tenant_id: TenantId) -> anyhow::Result<Feed> {
        use futures::StreamExt;
        match self {
            CallStateStore::Memory(m) => {
                let receiver = m
                    .feeds
                    .entry(tenant_id)
                    .or_insert_with(|| tokio::sync::broadcast::channel(FEED_CAPACITY).0)
                    .subscribe();
                let feed = futures::stream::unfold(receiver, move |mut receiver| async move {
                    loop {
                        match receiver.recv().await {
                            Ok(event) => return Some((event, receiver)),
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(skipped)) => {
                                tracing::debug!(%tenant_id, skipped, "live feed subscriber skipped ahead");
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                        }
                    }
                });
                Ok(feed.boxed())
            }
            CallStateStore::Redis { prefix, client, .. } => {
                let mut pubsub = client.get_async_pubsub().await.context("opening a Redis subscription")?;
                pubsub.subscribe(format!("{prefix}feed:{tenant_id}")).await.context("subscribing to the live feed")?;
                let feed =
                    pubsub.into_on_message().filter_map(|message| async move { message.get_payload::<String>().ok() });
                Ok(feed.boxed())
            }
        }
    }

    /// Publishes an owner's command (as JSON) to every instance (`{prefix}call-commands`);
    /// the one holding the call acknowledges it. With the in-process store there is no other
    /// instance: `false`.
    pub async fn publish_command(&self, routed: &str) -> anyhow::Result<bool> {
        match self {
            CallStateStore::Memory(_) => Ok(false),
            CallStateStore::Redis { pool, prefix, .. } => {
                let mut conn = pool.get().await?;
                let listeners: i64 = conn.publish(format!("{prefix}call-commands"), routed).await?;
                Ok(listeners > 0)
            }
        }
    }

    /// The commands published by any instance, for this one to hand to its calls; `None`
    /// with the in-process store.
    pub async fn subscribe_commands(&self) -> anyhow::Result<Option<Feed>> {
        use futures::StreamExt;
        match self {
            CallStateStore::Memory(_) => Ok(None),
            CallStateStore::Redis { prefix, client, .. } => {
                let mut pubsub = client.get_async_pubsub().await.context("opening a Redis subscription")?;
                pubsub.subscribe(format!("{prefix}call-commands")).await.context("subscribing to call commands")?;
                let feed =
                    pubsub.into_on_message().filter_map(|message| async move { message.get_payload::<String>().ok() });
                Ok(Some(feed.boxed()))
            }
        }
    }

    /// Says that command `id` reached its call (`{prefix}command-ack:{id}`, kept a minute).
    pub async fn acknowledge_command(&self, id: &str) -> anyhow::Result<()> {
        if let CallStateStore::Redis { pool, prefix, .. } = self {
            let mut conn = pool.get().await?;
            let _: () = conn.set_ex(format!("{prefix}command-ack:{id}"), 1, 60).await?;
        }
        Ok(())
    }

    /// Waits up to `within` for command `id` to be acknowledged.
    pub async fn command_acknowledged(&self, id: &str, within: Duration) -> anyhow::Result<bool> {
        let CallStateStore::Redis { pool, prefix, .. } = self else { return Ok(false) };
        let key = format!("{prefix}command-ack:{id}");
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // A short poll rather than a blocking pop: pooled connections are shared.
            let mut conn = pool.get().await?;
            let acked: Option<i64> = conn.get(&key).await?;
            drop(conn);
            if acked.is_some() {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }

    pub async fn ping(&self) -> bool {
        match self {
            CallStateStore::Memory(_) => true,
            CallStateStore::Redis { pool, .. } => {
                let attempt = async {
                    let mut conn = pool.get().await.ok()?;
                    let pong: String = deadpool_redis::redis::cmd("PING").query_async(&mut conn).await.ok()?;
                    Some(pong == "PONG")
                };
                tokio::time::timeout(Duration::from_secs(2), attempt).await.ok().flatten().unwrap_or(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exercise(store: CallStateStore) {
        assert!(store.ping().await);
        assert_eq!(store.load("CA1").await.unwrap(), None);
        store.save("CA1", r#"{"step":1}"#, Duration::from_secs(60)).await.unwrap();
        store.save("CA1", r#"{"step":2}"#, Duration::from_secs(60)).await.unwrap();
        assert_eq!(store.load("CA1").await.unwrap().as_deref(), Some(r#"{"step":2}"#));
        store.mark_live(TenantId(7), "CA1").await.unwrap();
        store.mark_live(TenantId(7), "CA2").await.unwrap();
        store.mark_live(TenantId(7), "CA1").await.unwrap();
        store.mark_live(TenantId(8), "CA3").await.unwrap();
        assert_eq!(store.live_calls(TenantId(7)).await.unwrap(), vec!["CA1", "CA2"]);
        store.mark_ended(TenantId(7), "CA1").await.unwrap();
        assert_eq!(store.live_calls(TenantId(7)).await.unwrap(), vec!["CA2"]);
        assert_eq!(store.live_calls(TenantId(8)).await.unwrap(), vec!["CA3"]);
    }

    #[tokio::test]
    async fn memory_store_keeps_checkpoints_and_live_calls() {
        exercise(CallStateStore::memory()).await;
    }

    #[tokio::test]
    async fn memory_feed_reaches_subscribers_of_that_tenant_only() {
        let store = CallStateStore::memory();
        let mut seven = store.subscribe_local(TenantId(7)).unwrap();
        let mut eight = store.subscribe_local(TenantId(8)).unwrap();
        store.publish(TenantId(7), "hello").await.unwrap();
        assert_eq!(seven.recv().await.unwrap(), "hello");
        assert!(eight.try_recv().is_err());
    }

    #[tokio::test]
    async fn redis_feed_is_published_on_the_tenants_channel() {
        let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("test:{}:", uuid::Uuid::new_v4());
        let store = CallStateStore::redis(&url, &prefix).await.expect("the test suite needs Redis running");
        let client = deadpool_redis::redis::Client::open(url.as_str()).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.subscribe(format!("{prefix}feed:7")).await.unwrap();
        store.publish(TenantId(7), r#"{"line":1}"#).await.unwrap();
        use futures::StreamExt;
        let msg = tokio::time::timeout(Duration::from_secs(5), pubsub.on_message().next()).await.unwrap().unwrap();
        assert_eq!(msg.get_payload::<String>().unwrap(), r#"{"line":1}"#);
    }

    #[tokio::test]
    async fn an_ended_calls_checkpoint_is_dropped_from_memory() {
        let store = CallStateStore::memory();
        store.save("CA1", "{}", Duration::from_secs(7200)).await.unwrap();
        store.mark_live(TenantId(7), "CA1").await.unwrap();
        store.mark_ended(TenantId(7), "CA1").await.unwrap();
        assert!(store.load("CA1").await.unwrap().is_none(), "nothing of an ended call stays in memory");
        if let CallStateStore::Memory(m) = &store {
            assert!(m.checkpoints.is_empty());
        }
    }

    #[tokio::test]
    async fn memory_checkpoints_expire() {
        let store = CallStateStore::memory();
        store.save("CA9", "x", Duration::from_millis(1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.load("CA9").await.unwrap(), None);
    }

    #[tokio::test]
    async fn redis_store_keeps_checkpoints_and_live_calls() {
        let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("test:{}:", uuid::Uuid::new_v4());
        let store = CallStateStore::redis(&url, &prefix).await.expect("the test suite needs Redis running");
        exercise(store.clone()).await;
        // The checkpoint carries a TTL in Redis.
        let CallStateStore::Redis { pool, .. } = &store else { unreachable!() };
        let mut conn = pool.get().await.unwrap();
        let ttl: i64 = conn.ttl(format!("{prefix}call:CA1")).await.unwrap();
        assert!(ttl > 0 && ttl <= 60, "ttl {ttl}");
        let _: () = conn
            .del(&[format!("{prefix}call:CA1"), format!("{prefix}live:7"), format!("{prefix}live:8")])
            .await
            .unwrap();
    }
}
