//! Tenants' RinglyPro numbers from Twilio. With Twilio credentials, signup orders a local
//! number near the business phone's area code; a worker on any instance claims the order
//! with a lease (so one number is bought per tenant), searches, buys the first candidate
//! still free (another buyer taking it between our search and our purchase, Twilio's
//! 21422, moves on to the next), points its voice, status and SMS webhooks at us, and
//! writes it on the tenant. A Twilio failure leaves the account working with its number
//! pending and the reason on record; the order is tried again with a growing wait, and an
//! administrator can retry it at once. Closing an account releases its number the same way.
//! Without credentials nothing is ordered and signup takes a number from the local pool.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::domain::ids::TenantId;
use crate::domain::phone::PhoneNumber;
use crate::vendors::twilio::{NumberHooks, Twilio, TwilioError};

/// How long a claimed order is left to one worker before another may take it over.
const LEASE: Duration = Duration::from_secs(120);
/// Candidates asked for per search.
const CANDIDATES: u32 = 5;
/// After this many failed tries an order waits for an administrator.
const MAX_ATTEMPTS: i32 = 12;

/// Where signup gets a number from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberSource {
    /// The local pool (no Twilio account configured).
    Pool,
    /// Bought from Twilio by the worker, after signup.
    Twilio,
}

/// One order as the worker claimed it.
#[derive(Debug, Clone, FromRow)]
struct Order {
    client_id: TenantId,
    action: String,
    area_code: Option<String>,
    attempts: i32,
    number: Option<String>,
    number_sid: Option<String>,
}

/// An order's state, for the dashboard and the admin page.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct OrderState {
    pub action: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// The wait before try `attempts + 1`: 30 s, doubling, at most an hour.
pub fn backoff(attempts: i32) -> Duration {
    let doublings = attempts.clamp(1, 8) - 1;
    Duration::from_secs((30u64 << doublings).min(3600))
}

/// The area code of a North American number, where a local number is looked for.
pub fn area_code(business_phone: &str) -> Option<String> {
    let phone = PhoneNumber::parse(business_phone).ok()?;
    let digits = phone.as_str().strip_prefix("+1")?;
    (digits.len() == 10).then(|| digits[..3].to_owned())
}

/// Orders a number for a tenant just signed up, in the signup's transaction.
pub async fn order_number(
    conn: &mut sqlx::PgConnection,
    client_id: TenantId,
    business_phone: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO number_orders (client_id, area_code) VALUES ($1, $2) ON CONFLICT (client_id) DO NOTHING")
        .bind(client_id)
        .bind(area_code(business_phone))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The tenant's number order, if any.
pub async fn order_state(pool: &PgPool, client_id: TenantId) -> sqlx::Result<Option<OrderState>> {
    sqlx::query_as(
        "SELECT action, status, attempts, next_attempt_at, last_error FROM number_orders WHERE client_id = $1",
    )
    .bind(client_id)
    .fetch_optional(pool)
    .await
}

/// Has a pending or failed order tried again now (the admin's "retry"). False when the
/// order is done or there is none.
pub async fn retry_now(pool: &PgPool, client_id: TenantId) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE number_orders SET status = 'pending', attempts = 0, next_attempt_at = now(), lease_until = NULL, \
                updated_at = now() \
         WHERE client_id = $1 AND status IN ('pending', 'failed')",
    )
    .bind(client_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Closes an account: its calls are no longer answered and its number, if bought from
/// Twilio, is released by the worker (a pool number goes back to the pool at once).
/// Closing twice changes nothing.
pub async fn close_account(pool: &PgPool, client_id: TenantId) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await?;
    let closed = sqlx::query(
        "UPDATE clients SET closed_at = now(), rachel_enabled = false, updated_at = now() \
         WHERE id = $1 AND closed_at IS NULL",
    )
    .bind(client_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    if !closed {
        return Ok(false);
    }
    let held: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT number, twilio_sid FROM ringlypro_numbers WHERE client_id = $1 FOR UPDATE")
            .bind(client_id)
            .fetch_optional(&mut *tx)
            .await?;
    match held {
        Some((number, Some(sid))) => {
            sqlx::query(
                "INSERT INTO number_orders (client_id, action, status, number, number_sid) \
                 VALUES ($1, 'release', 'pending', $2, $3) \
                 ON CONFLICT (client_id) DO UPDATE SET action = 'release', status = 'pending', attempts = 0, \
                     next_attempt_at = now(), lease_until = NULL, last_error = NULL, number = $2, number_sid = $3, \
                     updated_at = now()",
            )
            .bind(client_id)
            .bind(&number)
            .bind(&sid)
            .execute(&mut *tx)
            .await?;
        }
        Some((_, None)) => {
            sqlx::query("UPDATE ringlypro_numbers SET client_id = NULL, assigned_at = NULL WHERE client_id = $1")
                .bind(client_id)
                .execute(&mut *tx)
                .await?;
        }
        None => {
            // A number still being bought is not bought any more.
            sqlx::query("DELETE FROM number_orders WHERE client_id = $1 AND action = 'buy' AND status <> 'done'")
                .bind(client_id)
                .execute(&mut *tx)
                .await?;
        }
    }
    sqlx::query("UPDATE clients SET ringlypro_number = NULL WHERE id = $1").bind(client_id).execute(&mut *tx).await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %client_id, "account closed");
    Ok(true)
}

/// Buys and releases numbers; cheap to clone.
#[derive(Clone)]
pub struct NumberOrders {
    pool: PgPool,
    twilio: Option<Twilio>,
    hooks: NumberHooks,
    every: Duration,
}

impl NumberOrders {
    pub fn new(pool: PgPool, config: &Config) -> Self {
        let base = config.public_url.trim_end_matches('/');
        Self {
            pool,
            twilio: Twilio::from_config(config),
            hooks: NumberHooks {
                voice_url: format!("{base}/twilio/voice"),
                status_callback: format!("{base}/twilio/status"),
                sms_url: format!("{base}/twilio/sms"),
                sms_status_callback: None,
            },
            every: config.billing.sweep_every.min(Duration::from_secs(30)),
        }
    }

    /// Where signup takes numbers from.
    pub fn source(&self) -> NumberSource {
        if self.twilio.is_some() { NumberSource::Twilio } else { NumberSource::Pool }
    }

    /// Works through due orders every few seconds; `None` without Twilio credentials.
    pub fn spawn_worker(&self) -> Option<JoinHandle<()>> {
        self.twilio.as_ref()?;
        let this = self.clone();
        Some(tokio::spawn(async move {
            loop {
                if let Err(e) = this.work_due(Utc::now()).await {
                    tracing::warn!(error = format!("{e:#}"), "number orders: pass failed");
                }
                tokio::time::sleep(this.every).await;
            }
        }))
    }

    /// Starts on a fresh order at once (after signup) rather than at the next pass.
    pub fn kick(&self) {
        if self.twilio.is_none() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.work_due(Utc::now()).await {
                tracing::warn!(error = format!("{e:#}"), "number orders: pass failed");
            }
        });
    }

    /// Carries out every order due at `now`; returns how many were finished.
    pub async fn work_due(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let Some(twilio) = &self.twilio else { return Ok(0) };
        let mut finished = 0;
        while let Some(order) = self.claim(now).await? {
            let result = match order.action.as_str() {
                "release" => self.release(twilio, &order).await,
                _ => self.buy(twilio, &order).await,
            };
            match result {
                Ok(()) => finished += 1,
                Err(e) => self.failed(&order, &e).await?,
            }
        }
        Ok(finished)
    }

    /// Takes one due order (or one whose worker's lease ran out) for this worker.
    async fn claim(&self, now: DateTime<Utc>) -> sqlx::Result<Option<Order>> {
        sqlx::query_as(
            "UPDATE number_orders SET status = 'working', attempts = attempts + 1, \
                    lease_until = $1 + make_interval(secs => $2), updated_at = now() \
             WHERE client_id = (SELECT client_id FROM number_orders \
                                WHERE (status = 'pending' AND next_attempt_at <= $1) \
                                   OR (status = 'working' AND lease_until < $1) \
                                ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING client_id, action, area_code, attempts, number, number_sid",
        )
        .bind(now)
        .bind(LEASE.as_secs_f64())
        .fetch_optional(&self.pool)
        .await
    }

    async fn buy(&self, twilio: &Twilio, order: &Order) -> Result<(), TwilioError> {
        let mut candidates = twilio.available_local_numbers("US", order.area_code.as_deref(), CANDIDATES).await?;
        if candidates.is_empty() && order.area_code.is_some() {
            // Nothing left near the business: any local number beats none.
            candidates = twilio.available_local_numbers("US", None, CANDIDATES).await?;
        }
        let mut last = TwilioError::Api { status: 404, code: None, message: "no local numbers are available".into() };
        for candidate in candidates {
            match twilio.buy_number(&candidate, &self.hooks).await {
                Ok(bought) => {
                    if let Err(e) = self.bought(order.client_id, &bought.phone_number, &bought.sid).await {
                        // Not ours on record, so not kept at Twilio either: a later try buys afresh.
                        tracing::error!(tenant_id = %order.client_id, number = bought.phone_number,
                            error = format!("{e:#}"), "could not record a bought number; releasing it");
                        if let Err(release) = twilio.release_number(&bought.sid).await {
                            tracing::error!(number_sid = bought.sid, error = %release, "could not release it either");
                        }
                        return Err(TwilioError::Transport(format!("recording the bought number failed: {e:#}")));
                    }
                    return Ok(());
                }
                Err(e) if e.code() == Some(21422) => {
                    tracing::info!(tenant_id = %order.client_id, candidate, "number taken before we bought it; next");
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// Writes the bought number on the tenant and closes the order, in one transaction.
    async fn bought(&self, client_id: TenantId, number: &str, sid: &str) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO ringlypro_numbers (number, client_id, assigned_at, twilio_sid) VALUES ($1, $2, now(), $3) \
             ON CONFLICT (number) DO UPDATE SET client_id = $2, assigned_at = now(), twilio_sid = $3",
        )
        .bind(number)
        .bind(client_id)
        .bind(sid)
        .execute(&mut *tx)
        .await
        .context("recording the number")?;
        sqlx::query("UPDATE clients SET ringlypro_number = $2, updated_at = now() WHERE id = $1")
            .bind(client_id)
            .bind(number)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE number_orders SET status = 'done', number = $2, number_sid = $3, lease_until = NULL, \
                    last_error = NULL, updated_at = now() WHERE client_id = $1",
        )
        .bind(client_id)
        .bind(number)
        .bind(sid)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(tenant_id = %client_id, number, "number bought and pointed at us");
        Ok(())
    }

    async fn release(&self, twilio: &Twilio, order: &Order) -> Result<(), TwilioError> {
        if let Some(sid) = &order.number_sid {
            match twilio.release_number(sid).await {
                // Already gone at Twilio: released all the same.
                Ok(()) | Err(TwilioError::Api { status: 404, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let done = async {
            let mut tx = self.pool.begin().await?;
            if let Some(number) = &order.number {
                sqlx::query("DELETE FROM ringlypro_numbers WHERE number = $1").bind(number).execute(&mut *tx).await?;
            }
            sqlx::query(
                "UPDATE number_orders SET status = 'done', lease_until = NULL, last_error = NULL, updated_at = now() \
                 WHERE client_id = $1",
            )
            .bind(order.client_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        };
        done.await.map_err(|e| TwilioError::Transport(format!("recording the release: {e}")))?;
        tracing::info!(tenant_id = %order.client_id, number = ?order.number, "number released");
        Ok(())
    }

    /// Records a failed try: waits and tries again, or after too many, waits for an admin.
    async fn failed(&self, order: &Order, error: &TwilioError) -> sqlx::Result<()> {
        let give_up = order.attempts >= MAX_ATTEMPTS;
        tracing::warn!(tenant_id = %order.client_id, action = order.action, attempts = order.attempts, give_up,
            error = %error, "number order failed");
        sqlx::query(
            "UPDATE number_orders SET status = $2, lease_until = NULL, last_error = $3, \
                    next_attempt_at = now() + make_interval(secs => $4), updated_at = now() \
             WHERE client_id = $1",
        )
        .bind(order.client_id)
        .bind(if give_up { "failed" } else { "pending" })
        .bind(error.to_string())
        .bind(backoff(order.attempts).as_secs_f64())
        .execute(&self.pool)
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_number_is_looked_for_in_the_business_phones_area_code() {
        assert_eq!(area_code("(415) 555-0134").as_deref(), Some("415"));
        assert_eq!(area_code("+1 212 555 0100").as_deref(), Some("212"));
        assert_eq!(area_code("+44 20 7946 0958"), None, "outside North America: any local number");
        assert_eq!(area_code("not a phone"), None);
    }

    #[test]
    fn tries_wait_longer_each_time_up_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(5), Duration::from_secs(480));
        assert_eq!(backoff(12), Duration::from_secs(3600));
        assert_eq!(backoff(0), Duration::from_secs(30));
    }
}
