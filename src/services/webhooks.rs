//! Outbound webhooks: the business's endpoints (checked and kept here) and the worker that
//! delivers what [`storage::postgres::webhooks::emit`] recorded. Each delivery is a JSON
//! POST signed with the endpoint's secret (see [`crate::domain::events::signature`]),
//! retried with growing delays for a day on anything but a 2xx, exactly once per event and
//! endpoint however many instances run.
//!
//! [`storage::postgres::webhooks::emit`]: crate::storage::postgres::webhooks::emit

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use url::Url;

use crate::config::Config;
use crate::domain::events::{EventKind, SIGNATURE_HEADER, signature};
use crate::storage::postgres::webhooks::{self as store, Attempt, Claimed};

/// Deliveries claimed per round.
const BATCH: i64 = 20;
/// How long an endpoint may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claim holds: past the timeout, so only a stopped instance's claim lapses.
const LEASE: Duration = Duration::from_secs(60);
/// The first retry's delay; each later one doubles, up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_secs(30);
const MAX_DELAY: Duration = Duration::from_secs(60 * 60);
/// Endpoints one business may have.
pub const MAX_ENDPOINTS: usize = 10;
/// The part of an endpoint's answer kept in the log.
const KEPT_ANSWER: usize = 200;

/// Why an endpoint was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EndpointError {
    #[error("{0}")]
    Url(String),
    #[error("{0}")]
    Events(String),
}

/// Checks an endpoint's address: an absolute `https://` URL (or `http://` when
/// `WEBHOOK_ALLOW_HTTP` is on) with a host and no credentials in it.
pub fn check_url(raw: &str, allow_http: bool) -> Result<Url, EndpointError> {
    let url = Url::parse(raw.trim()).map_err(|_| {
        EndpointError::Url("enter the full address, such as https://hooks.example.com/ringlypro".into())
    })?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(EndpointError::Url("the address must start with https:// so deliveries are encrypted".into()));
        }
        _ => return Err(EndpointError::Url("the address must start with https://".into())),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(EndpointError::Url("the address has no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EndpointError::Url(
            "put no user name or password in the address; deliveries are signed instead".into(),
        ));
    }
    if raw.len() > 2000 {
        return Err(EndpointError::Url("the address is too long".into()));
    }
    Ok(url)
}

/// Reads the chosen event names: each must be known, at least one.
pub fn check_events(names: &[String]) -> Result<Vec<String>, EndpointError> {
    let mut events: Vec<String> = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let kind: EventKind = name.parse().map_err(|_| {
            let known: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            EndpointError::Events(format!("{name:?} is not an event; choose from {}", known.join(", ")))
        })?;
        if !events.iter().any(|e| e == kind.as_str()) {
            events.push(kind.as_str().to_owned());
        }
    }
    if events.is_empty() {
        return Err(EndpointError::Events("choose at least one event to send".into()));
    }
    Ok(events)
}

/// A new endpoint's signing secret.
pub fn new_secret() -> String {
    format!("whsec_{}", crate::services::accounts::random_token())
}

/// The wait before attempt `attempts + 1`.
fn backoff(attempts: i32) -> Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 16) as u32;
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

/// Delivers due webhooks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Webhooks {
    pool: PgPool,
    http: reqwest::Client,
    poll: Duration,
}

impl Webhooks {
    pub fn new(pool: PgPool, config: &Config) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            // A redirect could carry the signed body somewhere the owner never named.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("RinglyPro-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { pool, http, poll: config.webhook_poll })
    }

    /// Runs the worker until aborted: a round every poll interval, at once again after a
    /// full batch.
    pub fn spawn_worker(&self) -> JoinHandle<()> {
        let webhooks = self.clone();
        tokio::spawn(async move {
            loop {
                match webhooks.run_once(Utc::now()).await {
                    Ok(n) if n as i64 >= BATCH => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "webhook round failed; trying again"),
                }
                tokio::time::sleep(webhooks.poll).await;
            }
        })
    }

    /// Sends every delivery due at `now` (at most one batch, concurrently); returns how
    /// many were attempted.
    pub async fn run_once(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let claimed = store::claim_due(&self.pool, now, BATCH, LEASE.as_secs() as i64).await?;
        let count = claimed.len();
        let sends = claimed.into_iter().map(|delivery| async move {
            let attempt = self.attempt(&delivery, now).await;
            match &attempt {
                Attempt::Delivered { status } => {
                    tracing::info!(tenant_id = %delivery.client_id, event = %delivery.event_type, status, "webhook delivered");
                    metrics::counter!("ringlypro_webhook_deliveries_total", "result" => "delivered").increment(1);
                }
                Attempt::Retry { error, .. } | Attempt::Failed { error, .. } => {
                    tracing::warn!(tenant_id = %delivery.client_id, event = %delivery.event_type,
                        attempts = delivery.attempts, error, "webhook not delivered");
                    metrics::counter!("ringlypro_webhook_deliveries_total", "result" => "refused").increment(1);
                }
            }
            if let Err(e) = store::record(&self.pool, &delivery, &attempt).await {
                tracing::warn!(error = %e, delivery = delivery.id, "could not record a webhook attempt; it is tried again after its lease");
            }
        });
        futures::future::join_all(sends).await;
        Ok(count)
    }

    /// One try at a delivery; `now` is the round's clock (retries are timed from it), the
    /// signature carries the real time so receivers can judge freshness.
    async fn attempt(&self, delivery: &Claimed, now: DateTime<Utc>) -> Attempt {
        if delivery.endpoint_removed {
            return Attempt::Failed { status: None, error: "the endpoint was removed".into() };
        }
        let retry = |status: Option<i32>, error: String| Attempt::Retry {
            status,
            error,
            at: now + chrono::Duration::from_std(backoff(delivery.attempts)).unwrap_or_default(),
        };
        let sent = self
            .http
            .post(&delivery.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(&delivery.secret, Utc::now().timestamp(), delivery.body.as_bytes()))
            .header("RinglyPro-Event", &delivery.event_type)
            .header("RinglyPro-Delivery", &delivery.event_id)
            .body(delivery.body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                Attempt::Delivered { status: i32::from(response.status().as_u16()) }
            }
            Ok(response) => {
                let status = response.status();
                let answer: String = response.text().await.unwrap_or_default().chars().take(KEPT_ANSWER).collect();
                let error = if answer.trim().is_empty() {
                    format!("the endpoint answered {status}")
                } else {
                    format!("the endpoint answered {status}: {}", answer.trim())
                };
                retry(Some(i32::from(status.as_u16())), error)
            }
            Err(e) if e.is_timeout() => retry(None, format!("no answer within {} s", TIMEOUT.as_secs())),
            Err(e) if e.is_connect() => retry(None, "could not connect to the endpoint".into()),
            Err(e) => retry(None, format!("could not send: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_https_with_a_host_and_no_credentials() {
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok());
        for bad in ["http://hooks.example.com", "ftp://x.example", "hooks.example.com", "https://u:p@x.example/", ""] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn events_must_be_known_and_are_kept_once() {
        let events =
            check_events(&["appointment.booked".into(), " appointment.booked ".into(), "call.completed".into()]);
        assert_eq!(events.unwrap(), vec!["appointment.booked", "call.completed"]);
        assert!(check_events(&[]).is_err());
        let unknown = check_events(&["call.started".into()]).unwrap_err();
        assert!(unknown.to_string().contains("choose from call.completed"), "{unknown}");
    }

    #[test]
    fn retries_wait_longer_each_time_up_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(5), Duration::from_secs(480));
        assert_eq!(backoff(40), MAX_DELAY);
    }
}
