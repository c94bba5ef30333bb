//! The outbox worker: sends queued texts through Twilio, each exactly once however many
//! instances share the database. A text is claimed and committed as `sending` before
//! Twilio is called, then its outcome recorded; passing failures are retried with backoff,
//! refusals are final. Without Twilio credentials it does nothing and texts stay queued.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::storage::postgres::credits;
use crate::storage::postgres::outbox::{self, Claimed, Final, OptOutSource};
use crate::vendors::twilio::{self, Twilio, TwilioError};

/// Texts claimed per round.
const BATCH: i64 = 20;
/// How long a claim holds: longer than a send can take (Twilio's client times out at 15 s),
/// so only a text whose instance stopped is claimed again.
const LEASE: Duration = Duration::from_secs(120);
/// Attempts before a text that keeps failing for passing reasons is given up.
pub const MAX_ATTEMPTS: i32 = 8;
/// No retry waits longer than this.
const MAX_BACKOFF: Duration = Duration::from_secs(30 * 60);

/// Sends the outbox. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Texting {
    pool: PgPool,
    twilio: Option<Twilio>,
    status_callback: String,
    poll: Duration,
}

impl Texting {
    pub fn new(pool: PgPool, config: &Config) -> Self {
        Self {
            pool,
            twilio: Twilio::from_config(config),
            status_callback: format!("{}/twilio/sms-status", config.public_url),
            poll: config.texting_poll,
        }
    }

    /// Whether texts are sent at all (Twilio's credentials are configured).
    pub fn enabled(&self) -> bool {
        self.twilio.is_some()
    }

    /// Runs the worker until aborted: a round every poll interval, at once again after a
    /// full batch.
    pub fn spawn_worker(&self) -> JoinHandle<()> {
        let texting = self.clone();
        tokio::spawn(async move {
            if !texting.enabled() {
                tracing::info!("texting: Twilio is not configured, so texts stay queued in the outbox");
                return;
            }
            loop {
                let full = match texting.send_due(Utc::now()).await {
                    Ok(n) => n as i64 >= BATCH,
                    Err(e) => {
                        tracing::error!(error = format!("{e:#}"), "texting: a round of the outbox failed");
                        false
                    }
                };
                if !full {
                    tokio::time::sleep(texting.poll).await;
                }
            }
        })
    }

    /// One round: claims the texts due at `now` and sends each. Returns how many it claimed.
    pub async fn send_due(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let Some(twilio) = &self.twilio else { return Ok(0) };
        let lease_until = now + chrono::Duration::from_std(LEASE)?;
        let claimed = outbox::claim_due(&self.pool, now, lease_until, BATCH).await?;
        let count = claimed.len();
        for text in claimed {
            if let Err(e) = self.send_one(twilio, &text).await {
                // The claim lapses and the text is tried again: nothing is lost.
                tracing::error!(
                    message_id = text.id.get(),
                    error = format!("{e:#}"),
                    "texting: could not record a send"
                );
            }
        }
        Ok(count)
    }

    async fn send_one(&self, twilio: &Twilio, text: &Claimed) -> anyhow::Result<()> {
        if let Some(reason) = self.reason_not_to_send(text).await? {
            tracing::info!(message_id = text.id.get(), tenant_id = %text.client_id, reason, "text suppressed");
            metrics::counter!("ringlypro_texts_suppressed_total").increment(1);
            outbox::record_final(&self.pool, text.id, Final::Suppressed, None, reason, Utc::now()).await?;
            return Ok(());
        }
        match twilio.send_message(&text.to_number, &text.from_number, &text.body, Some(&self.status_callback)).await {
            Ok(sent) => {
                tracing::info!(message_id = text.id.get(), tenant_id = %text.client_id, sid = sent.sid, "text sent");
                metrics::counter!("ringlypro_texts_sent_total").increment(1);
                outbox::record_sent(&self.pool, text.id, &sent.sid, Utc::now()).await?;
            }
            Err(e) => self.record_failure(text, &e).await?,
        }
        Ok(())
    }

    /// Why the text must not go out, if it must not.
    async fn reason_not_to_send(&self, text: &Claimed) -> sqlx::Result<Option<&'static str>> {
        if text.to_number.trim().is_empty() {
            return Ok(Some("no number to send it to"));
        }
        if text.from_number.trim().is_empty() {
            return Ok(Some("the business has no texting number yet"));
        }
        let mut conn = self.pool.acquire().await?;
        if outbox::is_opted_out(&mut conn, text.client_id, &text.to_number).await? {
            return Ok(Some("the recipient texted STOP to opt out"));
        }
        if credits::is_blocked(&mut conn, text.client_id, &text.to_number).await? {
            return Ok(Some("the number is on the block list"));
        }
        Ok(None)
    }

    async fn record_failure(&self, text: &Claimed, error: &TwilioError) -> anyhow::Result<()> {
        let code = error.code().and_then(|c| i32::try_from(c).ok());
        let message = error.to_string();
        let now = Utc::now();
        if error.is_retryable() && text.attempts < MAX_ATTEMPTS {
            let retry_at = now + chrono::Duration::from_std(backoff(self.poll, text.attempts))?;
            tracing::warn!(
                message_id = text.id.get(), tenant_id = %text.client_id, attempts = text.attempts, error = %error,
                "text not sent; will retry"
            );
            metrics::counter!("ringlypro_texts_retried_total").increment(1);
            outbox::record_retry(&self.pool, text.id, retry_at, code, &message, now).await?;
            return Ok(());
        }
        tracing::warn!(message_id = text.id.get(), tenant_id = %text.client_id, error = %error, "text failed");
        metrics::counter!("ringlypro_texts_failed_total").increment(1);
        let mut tx = self.pool.begin().await?;
        if error.code() == Some(twilio::UNSUBSCRIBED_RECIPIENT) {
            outbox::opt_out(&mut tx, text.client_id, &text.to_number, OptOutSource::Carrier).await?;
        }
        tx.commit().await?;
        outbox::record_final(&self.pool, text.id, Final::Failed, code, &message, now).await?;
        Ok(())
    }
}

/// A text received, as the tenant's live feed carries it to the Messages page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename = "text")]
pub struct TextReceived {
    pub message_id: i64,
    pub contact_id: i64,
    pub from: String,
    pub body: String,
    pub at: DateTime<Utc>,
}

impl TextReceived {
    /// The feed event's name.
    pub const KIND: &'static str = "text";

    pub fn to_json(&self) -> String {
        // Plain data: serialising it cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A feed event, when it is a received text.
    pub fn from_json(raw: &str) -> Option<Self> {
        serde_json::from_str(raw).ok()
    }
}

/// The wait before attempt `attempts + 1`: the poll interval doubled per attempt, at most
/// half an hour.
fn backoff(poll: Duration, attempts: i32) -> Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 20) as u32;
    poll.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_received_text_round_trips_through_the_feed_and_other_events_do_not_parse_as_one() {
        let event = TextReceived {
            message_id: 7,
            contact_id: 3,
            from: "+15550001111".into(),
            body: "Hi <there>".into(),
            at: Utc::now(),
        };
        let raw = event.to_json();
        assert!(raw.contains(r#""type":"text""#), "{raw}");
        assert_eq!(TextReceived::from_json(&raw), Some(event));
        assert_eq!(TextReceived::from_json(r#"{"type":"ended","call_sid":"CA1","outcome":"booked"}"#), None);
    }

    #[test]
    fn retries_back_off_by_doubling_up_to_a_ceiling() {
        let poll = Duration::from_secs(2);
        assert_eq!(backoff(poll, 1), Duration::from_secs(2));
        assert_eq!(backoff(poll, 2), Duration::from_secs(4));
        assert_eq!(backoff(poll, 4), Duration::from_secs(16));
        assert_eq!(backoff(poll, 40), MAX_BACKOFF);
    }
}
