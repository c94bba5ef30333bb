//! The billing desk every edge shares: metering calls as they end, the sweep that meters
//! calls Twilio never reported and resets free minutes when a month turns, reloads through
//! Stripe Checkout (or an administrator's confirmation without Stripe), Stripe's events,
//! and automatic reloads of a saved card. Credit itself moves only in `services::credits`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;

use crate::config::Config;
use crate::domain::credits::RELOAD_AMOUNTS_CENTS;
use crate::domain::ids::{TenantId, UserId};
use crate::services::credits::{self, Applied, AutoReloadDue, BillingError, Credit, Links, Metered, Reported};
use crate::storage::postgres::credits::{self as store, NewReload, PaymentKind, Reload};

/// Where an owner's reload goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadStart {
    /// Stripe's hosted Checkout page: send the browser there (303).
    Checkout { reload_id: i64, url: String },
    /// No Stripe keys: the request waits for an administrator to confirm the payment.
    AwaitingAdmin { reload_id: i64 },
}

/// A refusal the owner or administrator can act on.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("reloads are $10, $20, $50 or $100")]
    BadAmount,
    #[error("no such reload")]
    UnknownReload,
    #[error("this reload was already {0}")]
    Settled(String),
    #[error("an adjustment needs a reason")]
    NoReason,
    #[error("auto-reload needs a saved card first")]
    NoCard,
    #[error("the payment service did not answer; nothing was charged, try again in a minute")]
    Unavailable,
    #[error(transparent)]
    Billing(#[from] BillingError),
}

impl From<sqlx::Error> for ReloadError {
    fn from(e: sqlx::Error) -> Self {
        ReloadError::Billing(e.into())
    }
}

/// The owner's auto-reload choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
pub struct AutoReloadSettings {
    pub enabled: bool,
    /// One of the reload amounts.
    pub amount_cents: i64,
    /// Reload when the balance falls below this ($1 to $100).
    pub threshold_cents: i64,
}

/// A cloneable handle on billing.
#[derive(Clone)]
pub struct Payments {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    links: Links,
    metering_grace: Duration,
    sweep_every: Duration,
}

impl Payments {
    pub fn new(pool: PgPool, config: &Config) -> Self {
        let links = Links { credits_page: format!("{}/app/credits", config.public_url) };
        Self {
            inner: Arc::new(Inner {
                pool,
                links,
                metering_grace: config.billing.metering_grace,
                sweep_every: config.billing.sweep_every,
            }),
        }
    }

    pub fn links(&self) -> &Links {
        &self.inner.links
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Meters a call that ended, once, and starts an automatic reload if it is due.
    pub async fn meter_call(&self, call_sid: &str, reported: Reported) -> Result<Metered, BillingError> {
        let (metered, reload) =
            credits::meter_call(&self.inner.pool, &self.inner.links, call_sid, reported, Utc::now()).await?;
        if let Some(due) = reload {
            self.start_auto_reload(due);
        }
        Ok(metered)
    }

    /// One pass of the sweep: calls with no final callback metered from our record, and
    /// free minutes reset where a month has turned. Safe on several instances at once.
    pub async fn sweep(&self) -> Result<(usize, usize), BillingError> {
        let now = Utc::now();
        let grace = chrono::Duration::from_std(self.inner.metering_grace).unwrap_or(chrono::Duration::minutes(10));
        let (metered, reloads) =
            credits::meter_forgotten_calls(&self.inner.pool, &self.inner.links, grace, now).await?;
        for due in reloads {
            self.start_auto_reload(due);
        }
        let reset = credits::reset_due_cycles(&self.inner.pool, now).await?;
        Ok((metered, reset))
    }

    /// Runs [`Payments::sweep`] every configured interval until the process ends.
    pub fn spawn_sweeper(&self) -> tokio::task::JoinHandle<()> {
        let payments = self.clone();
        tokio::spawn(async move {
            let period = payments.inner.sweep_every;
            let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match payments.sweep().await {
                    Ok((0, 0)) => {}
                    Ok((metered, reset)) => tracing::info!(metered, reset, "billing sweep"),
                    Err(e) => tracing::warn!(error = %e, "billing sweep failed; trying again next time"),
                }
            }
        })
    }

    /// Whether reloads go through Stripe (otherwise an administrator confirms them).
    pub fn stripe_enabled(&self) -> bool {
        false
    }

    /// Starts a reload of `amount_cents` for the signed-in owner. `request_key` makes a
    /// double-submitted form one reload (the form's own token, or a fresh one).
    pub async fn start_reload(
        &self,
        client_id: TenantId,
        user_id: UserId,
        amount_cents: i64,
        request_key: &str,
    ) -> Result<ReloadStart, ReloadError> {
        if !RELOAD_AMOUNTS_CENTS.contains(&amount_cents) {
            return Err(ReloadError::BadAmount);
        }
        let mut conn = self.inner.pool.acquire().await?;
        let reload = store::insert_reload(
            &mut conn,
            &NewReload {
                client_id,
                kind: "manual",
                amount_cents,
                idempotency_key: &format!("reload:{client_id}:{request_key}"),
                requested_by: Some(user_id),
            },
        )
        .await?;
        tracing::info!(tenant_id = %client_id, reload_id = reload.id, amount_cents, "reload requested; waiting for an administrator");
        Ok(ReloadStart::AwaitingAdmin { reload_id: reload.id })
    }

    /// One of the tenant's reloads (for the "payment processing" page).
    pub async fn reload(&self, client_id: TenantId, reload_id: i64) -> Result<Option<Reload>, ReloadError> {
        let mut conn = self.inner.pool.acquire().await?;
        Ok(store::find_reload(&mut conn, reload_id).await?.filter(|r| r.client_id == client_id))
    }

    /// Every reload waiting for an administrator's confirmation (local mode).
    pub async fn reloads_awaiting_admin(&self) -> Result<Vec<Reload>, ReloadError> {
        let mut conn = self.inner.pool.acquire().await?;
        Ok(store::manual_reloads_waiting(&mut conn).await?)
    }

    /// An administrator confirms that a reload waiting for them was paid: the credit is
    /// applied once, recorded as a manual reload.
    pub async fn confirm_manual_reload(&self, reload_id: i64, admin: UserId) -> Result<Applied, ReloadError> {
        let mut tx = self.inner.pool.begin().await?;
        let reload = store::find_reload(&mut tx, reload_id).await?.ok_or(ReloadError::UnknownReload)?;
        if reload.kind != "manual" {
            return Err(ReloadError::UnknownReload);
        }
        if reload.status != "pending" {
            return Err(ReloadError::Settled(reload.status));
        }
        let reference = format!("manual:{reload_id}");
        let (applied, due) = credits::apply_credit(
            &mut tx,
            &self.inner.links,
            &Credit {
                client_id: reload.client_id,
                kind: PaymentKind::ManualReload,
                amount_cents: reload.amount_cents,
                reference: &reference,
                payment_intent: None,
                event_id: None,
                note: "Reload confirmed by an administrator",
                created_by: Some(admin),
            },
            Utc::now(),
        )
        .await?;
        store::settle_reload(&mut tx, reload_id, "paid", None, Some(admin)).await?;
        tx.commit().await?;
        if let Some(due) = due {
            self.start_auto_reload(due);
        }
        Ok(applied)
    }

    /// An administrator's credit adjustment (positive or negative) with its reason.
    /// `request_key` (the form's token) makes a double submit one adjustment.
    pub async fn adjust(
        &self,
        client_id: TenantId,
        amount_cents: i64,
        reason: &str,
        admin: UserId,
        request_key: &str,
    ) -> Result<Applied, ReloadError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(ReloadError::NoReason);
        }
        let reference = format!("adjust:{client_id}:{request_key}");
        let mut tx = self.inner.pool.begin().await?;
        let (applied, due) = credits::apply_credit(
            &mut tx,
            &self.inner.links,
            &Credit {
                client_id,
                kind: PaymentKind::Adjustment,
                amount_cents,
                reference: &reference,
                payment_intent: None,
                event_id: None,
                note: reason,
                created_by: Some(admin),
            },
            Utc::now(),
        )
        .await?;
        tx.commit().await?;
        if let Some(due) = due {
            self.start_auto_reload(due);
        }
        Ok(applied)
    }

    /// Saves the owner's auto-reload choice. Turning it on needs a saved card.
    pub async fn set_auto_reload(&self, client_id: TenantId, settings: AutoReloadSettings) -> Result<(), ReloadError> {
        if !RELOAD_AMOUNTS_CENTS.contains(&settings.amount_cents) {
            return Err(ReloadError::BadAmount);
        }
        let threshold = settings.threshold_cents.clamp(100, 10_000);
        let mut conn = self.inner.pool.acquire().await?;
        let row = store::read(&mut conn, client_id).await?.ok_or(BillingError::NoAccount(client_id))?;
        if settings.enabled && row.stripe_payment_method_id.is_none() {
            return Err(ReloadError::NoCard);
        }
        sqlx::query(
            "UPDATE credit_accounts SET auto_reload_enabled = $2, auto_reload_amount_cents = $3, \
                 auto_reload_threshold_cents = $4, updated_at = now() WHERE client_id = $1",
        )
        .bind(client_id)
        .bind(settings.enabled)
        .bind(settings.amount_cents)
        .bind(threshold)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Starts saving a card for automatic reloads (Stripe Checkout in setup mode).
    pub async fn start_card_setup(&self, client_id: TenantId, user_id: UserId) -> Result<ReloadStart, ReloadError> {
        let _ = (client_id, user_id);
        Err(ReloadError::Unavailable)
    }

    /// Charges the saved card for a threshold crossing, in the background: a call never
    /// waits for Stripe.
    pub fn start_auto_reload(&self, due: AutoReloadDue) {
        tracing::info!(tenant_id = %due.client_id, amount_cents = due.amount_cents, key = %due.idempotency_key,
            "automatic reload due, but Stripe is not configured");
    }
}
