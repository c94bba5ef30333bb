//! The billing desk every edge shares: metering calls as they end, the sweep that meters
//! calls Twilio never reported and resets free minutes when a month turns, reloads through
//! Stripe Checkout (or an administrator's confirmation without Stripe), Stripe's events,
//! and automatic reloads of a saved card. Credit itself moves only in `services::credits`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use minijinja::context;
use secrecy::SecretString;
use sqlx::{PgConnection, PgPool};

use crate::config::Config;
use crate::domain::credits::RELOAD_AMOUNTS_CENTS;
use crate::domain::credits::dollars;
use crate::domain::ids::{TenantId, UserId};
use crate::domain::language::Language;
use crate::services::credits::{self, Applied, AutoReloadDue, BillingError, Credit, Links, Metered, Reported};
use crate::storage::postgres::credits::{self as store, NewReload, PaymentKind, Reload};
use crate::vendors::stripe::{
    CheckoutMode, CheckoutRequest, Event, EventKind, NewCustomer, OffSessionCharge, SignatureError, StripeClient,
    StripeError, webhook,
};

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
    #[error("card payments are not set up on this server; reloads are confirmed by an administrator")]
    NoStripe,
    #[error("the payment service refused the request: {0}")]
    Refused(String),
    #[error(transparent)]
    Billing(#[from] BillingError),
}

impl From<sqlx::Error> for ReloadError {
    fn from(e: sqlx::Error) -> Self {
        ReloadError::Billing(e.into())
    }
}

/// Why a Stripe webhook was not applied.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("STRIPE_WEBHOOK_SECRET is not set, so Stripe events cannot be verified")]
    NotConfigured,
    #[error("{0}")]
    Signature(SignatureError),
    #[error("the event is not valid JSON of a Stripe event: {0}")]
    Malformed(String),
    /// Worth delivering again later (Stripe retries on any non-2xx answer).
    #[error("{0}")]
    Retry(String),
    #[error(transparent)]
    Billing(#[from] BillingError),
}

impl From<ReloadError> for WebhookError {
    fn from(e: ReloadError) -> Self {
        match e {
            ReloadError::Billing(b) => WebhookError::Billing(b),
            other => WebhookError::Retry(other.to_string()),
        }
    }
}

/// A card refusal as the owner reads it.
fn card_problem(code: &str, message: &str) -> String {
    let plain = match code {
        "authentication_required" => "the bank asks you to confirm this payment yourself",
        "card_declined" => "the card was declined",
        "insufficient_funds" => "the card has insufficient funds",
        "expired_card" => "the card has expired",
        _ if !message.is_empty() => message,
        _ => "the card was refused",
    };
    plain.to_owned()
}

/// A Stripe failure as a reload error: unreachable is worth retrying, the rest is refused.
fn stripe_failure(e: StripeError) -> ReloadError {
    tracing::warn!(error = %e, "Stripe request failed");
    match e {
        StripeError::Unavailable(_) => ReloadError::Unavailable,
        StripeError::Card { message, .. } | StripeError::Rejected { message, .. } => ReloadError::Refused(message),
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
    public_url: String,
    stripe: Option<StripeClient>,
    /// `scheme://host[:port]` of Stripe's API.
    api_origin: String,
    webhook_secrets: Vec<SecretString>,
    metering_grace: Duration,
    sweep_every: Duration,
}

impl Payments {
    pub fn new(pool: PgPool, config: &Config) -> Self {
        let links = Links { credits_page: format!("{}/app/credits", config.public_url) };
        let stripe = config
            .billing
            .stripe_secret_key
            .clone()
            .map(|key| StripeClient::new(config.billing.stripe_api_base.clone(), key));
        Self {
            inner: Arc::new(Inner {
                pool,
                links,
                public_url: config.public_url.clone(),
                stripe,
                api_origin: config.billing.stripe_api_base.origin().ascii_serialization(),
                webhook_secrets: config.billing.stripe_webhook_secrets.clone(),
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
        self.retry_stuck_auto_reloads().await?;
        Ok((metered, reset))
    }

    /// Automatic reloads Stripe never answered: tried again under their own idempotency
    /// key, so a charge that did go through is answered, not made twice.
    async fn retry_stuck_auto_reloads(&self) -> Result<(), BillingError> {
        if self.inner.stripe.is_none() {
            return Ok(());
        }
        #[derive(sqlx::FromRow)]
        struct Stuck {
            client_id: TenantId,
            amount_cents: i64,
            idempotency_key: String,
            stripe_customer_id: Option<String>,
            stripe_payment_method_id: Option<String>,
        }
        let stuck: Vec<Stuck> = sqlx::query_as(
            "SELECT r.client_id, r.amount_cents, r.idempotency_key, ca.stripe_customer_id, ca.stripe_payment_method_id \
             FROM credit_reloads r JOIN credit_accounts ca ON ca.client_id = r.client_id \
             WHERE r.kind = 'auto' AND r.status = 'pending' AND r.stripe_payment_intent IS NULL \
               AND r.created_at < now() - interval '2 minutes' AND r.created_at > now() - interval '1 day'",
        )
        .fetch_all(&self.inner.pool)
        .await?;
        for Stuck { client_id, amount_cents, idempotency_key, stripe_customer_id, stripe_payment_method_id } in stuck {
            let Some((customer, payment_method)) = stripe_customer_id.zip(stripe_payment_method_id) else { continue };
            let due = AutoReloadDue { client_id, amount_cents, idempotency_key, customer, payment_method };
            if let Err(e) = self.auto_reload(&due).await {
                tracing::warn!(tenant_id = %client_id, error = %e, "automatic reload still not answered");
            }
        }
        Ok(())
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

    /// Origins of Stripe's hosted pages, where the reload forms lead: Checkout itself, and
    /// the API's own origin when it is not Stripe's (a test's fake serves both).
    pub fn checkout_origins(&self) -> Vec<String> {
        if self.inner.stripe.is_none() {
            return Vec::new();
        }
        let mut origins = vec!["https://checkout.stripe.com".to_owned()];
        let api = self.inner.api_origin.clone();
        if api != "https://api.stripe.com" {
            origins.push(api);
        }
        origins
    }

    /// Whether reloads go through Stripe (otherwise an administrator confirms them).
    pub fn stripe_enabled(&self) -> bool {
        self.inner.stripe.is_some()
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
                kind: if self.stripe_enabled() { "checkout" } else { "manual" },
                amount_cents,
                idempotency_key: &format!("reload:{client_id}:{request_key}"),
                requested_by: Some(user_id),
            },
        )
        .await?;
        drop(conn);
        let Some(stripe) = &self.inner.stripe else {
            tracing::info!(tenant_id = %client_id, reload_id = reload.id, amount_cents,
                "reload requested; waiting for an administrator");
            return Ok(ReloadStart::AwaitingAdmin { reload_id: reload.id });
        };
        let session = self.checkout(stripe, &reload, CheckoutMode::Payment { amount_cents, save_card: false }).await?;
        Ok(ReloadStart::Checkout { reload_id: reload.id, url: session })
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
        let Some(stripe) = &self.inner.stripe else { return Err(ReloadError::NoStripe) };
        let mut conn = self.inner.pool.acquire().await?;
        let reload = store::insert_reload(
            &mut conn,
            &NewReload {
                client_id,
                kind: "card_setup",
                amount_cents: 0,
                idempotency_key: &format!("card:{client_id}:{}", uuid::Uuid::new_v4().simple()),
                requested_by: Some(user_id),
            },
        )
        .await?;
        drop(conn);
        let url = self.checkout(stripe, &reload, CheckoutMode::Setup).await?;
        Ok(ReloadStart::Checkout { reload_id: reload.id, url })
    }

    /// The Checkout page of a reload: the session made for it before (a double-submitted
    /// form), or a new one created under the reload's own idempotency key.
    async fn checkout(
        &self,
        stripe: &StripeClient,
        reload: &Reload,
        mode: CheckoutMode,
    ) -> Result<String, ReloadError> {
        if let Some(id) = &reload.stripe_checkout_session {
            let session = stripe.retrieve_checkout_session(id).await.map_err(stripe_failure)?;
            if let Some(url) = session.url.filter(|_| session.status == "open") {
                return Ok(url);
            }
            return Err(ReloadError::Settled(reload.status.clone()));
        }
        let customer = self.customer(stripe, reload.client_id).await?;
        let success_url = format!(
            "{}/app/credits/return?reload={}&session_id={{CHECKOUT_SESSION_ID}}",
            self.inner.public_url, reload.id
        );
        let cancel_url = format!("{}/app/credits?cancelled=1", self.inner.public_url);
        let key = format!("checkout:{}:{}", reload.client_id, reload.id);
        let session = stripe
            .create_checkout_session(&CheckoutRequest {
                mode,
                client_id: reload.client_id.get(),
                customer: Some(&customer),
                customer_email: None,
                success_url: &success_url,
                cancel_url: &cancel_url,
                product_name: "RinglyPro call minutes",
                idempotency_key: &key,
            })
            .await
            .map_err(stripe_failure)?;
        let mut conn = self.inner.pool.acquire().await?;
        store::link_reload(&mut conn, reload.id, Some(&session.id), session.payment_intent.as_deref()).await?;
        tracing::info!(tenant_id = %reload.client_id, reload_id = reload.id, session = %session.id, "checkout started");
        session.url.ok_or(ReloadError::Unavailable)
    }

    /// The tenant's Stripe customer, created once (under an idempotency key per tenant).
    async fn customer(&self, stripe: &StripeClient, client_id: TenantId) -> Result<String, ReloadError> {
        let mut conn = self.inner.pool.acquire().await?;
        let row = store::read(&mut conn, client_id).await?.ok_or(BillingError::NoAccount(client_id))?;
        if let Some(id) = row.stripe_customer_id {
            return Ok(id);
        }
        let (name, email): (String, Option<String>) =
            sqlx::query_as("SELECT business_name, owner_email FROM clients WHERE id = $1")
                .bind(client_id)
                .fetch_one(&mut *conn)
                .await?;
        let id = stripe
            .create_customer(
                &NewCustomer { email: email.as_deref(), name: &name, client_id: client_id.get() },
                &format!("customer:{client_id}"),
            )
            .await
            .map_err(stripe_failure)?;
        sqlx::query(
            "UPDATE credit_accounts SET stripe_customer_id = COALESCE(stripe_customer_id, $2) WHERE client_id = $1",
        )
        .bind(client_id)
        .bind(&id)
        .execute(&mut *conn)
        .await?;
        Ok(id)
    }

    /// Charges the saved card for a threshold crossing, in the background: a call never
    /// waits for Stripe.
    pub fn start_auto_reload(&self, due: AutoReloadDue) {
        let payments = self.clone();
        tokio::spawn(async move {
            if let Err(e) = payments.auto_reload(&due).await {
                tracing::warn!(tenant_id = %due.client_id, key = %due.idempotency_key, error = %e,
                    "automatic reload not finished; the sweep tries again with the same key");
            }
        });
    }

    /// Charges the saved card once for a threshold crossing (Stripe keeps the key's first
    /// answer, so a retry never charges twice), then credits the balance or tells the owner
    /// why not. The account keeps working either way until the balance runs out.
    pub async fn auto_reload(&self, due: &AutoReloadDue) -> Result<(), ReloadError> {
        let Some(stripe) = &self.inner.stripe else {
            tracing::info!(tenant_id = %due.client_id, "automatic reload due, but Stripe is not configured");
            return Ok(());
        };
        let mut conn = self.inner.pool.acquire().await?;
        let reload = store::insert_reload(
            &mut conn,
            &NewReload {
                client_id: due.client_id,
                kind: "auto",
                amount_cents: due.amount_cents,
                idempotency_key: &due.idempotency_key,
                requested_by: None,
            },
        )
        .await?;
        drop(conn);
        if reload.status != "pending" {
            return Ok(());
        }
        let charge = stripe
            .charge_saved_card(&OffSessionCharge {
                customer: &due.customer,
                payment_method: &due.payment_method,
                amount_cents: due.amount_cents,
                client_id: due.client_id.get(),
                idempotency_key: &due.idempotency_key,
            })
            .await;
        let mut tx = self.inner.pool.begin().await?;
        match charge {
            Ok(intent) if intent.status == "succeeded" => {
                store::link_reload(&mut tx, reload.id, None, Some(&intent.id)).await?;
                let reference = format!("pi:{}", intent.id);
                let (_, next) = credits::apply_credit(
                    &mut tx,
                    &self.inner.links,
                    &Credit {
                        client_id: due.client_id,
                        kind: PaymentKind::AutoReload,
                        amount_cents: intent.amount_received.max(intent.amount),
                        reference: &reference,
                        payment_intent: Some(&intent.id),
                        event_id: None,
                        note: "Automatic reload",
                        created_by: None,
                    },
                    Utc::now(),
                )
                .await?;
                store::settle_reload(&mut tx, reload.id, "paid", None, None).await?;
                tx.commit().await?;
                if let Some(next) = next {
                    tracing::warn!(tenant_id = %next.client_id, "a reload left the balance under its threshold; not chaining another");
                }
                Ok(())
            }
            Ok(intent) => {
                // `processing` and the like: the webhook settles it.
                store::link_reload(&mut tx, reload.id, None, Some(&intent.id)).await?;
                tx.commit().await?;
                Ok(())
            }
            Err(StripeError::Card { code, message, payment_intent, .. }) => {
                if let Some(pi) = &payment_intent {
                    store::link_reload(&mut tx, reload.id, None, Some(pi)).await?;
                }
                let problem = card_problem(&code, &message);
                self.auto_reload_failed(&mut tx, due.client_id, reload.id, due.amount_cents, &problem).await?;
                tx.commit().await?;
                Ok(())
            }
            Err(StripeError::Rejected { message, .. }) => {
                self.auto_reload_failed(&mut tx, due.client_id, reload.id, due.amount_cents, &message).await?;
                tx.commit().await?;
                Ok(())
            }
            Err(StripeError::Unavailable(e)) => Err(ReloadError::Refused(e)),
        }
    }

    /// Records an automatic reload that did not go through: the reload failed, the
    /// account's problem shown to the owner, a ledger line that moves nothing, and a text.
    async fn auto_reload_failed(
        &self,
        conn: &mut PgConnection,
        client_id: TenantId,
        reload_id: i64,
        amount_cents: i64,
        problem: &str,
    ) -> Result<(), ReloadError> {
        if !store::settle_reload(conn, reload_id, "failed", Some(problem), None).await? {
            return Ok(()); // settled before (the webhook got here first)
        }
        sqlx::query("UPDATE credit_accounts SET auto_reload_problem = $2 WHERE client_id = $1")
            .bind(client_id)
            .bind(problem)
            .execute(&mut *conn)
            .await?;
        let row = store::read(conn, client_id).await?.ok_or(BillingError::NoAccount(client_id))?;
        let note = format!("Automatic reload of {} failed: {problem}", dollars(amount_cents));
        store::insert_payment(
            conn,
            &store::NewPayment {
                client_id,
                kind: PaymentKind::Failed,
                amount_cents: 0,
                balance_before_cents: row.balance_cents,
                reference: &format!("failed:reload:{reload_id}"),
                stripe_payment_intent: None,
                stripe_event_id: None,
                note: &note,
                created_by: None,
            },
        )
        .await?;
        let business: String = sqlx::query_scalar("SELECT business_name FROM clients WHERE id = $1")
            .bind(client_id)
            .fetch_one(&mut *conn)
            .await?;
        let body = crate::dialogue::prompts::written(
            Language::English,
            "auto_reload_failed_alert",
            &context! { amount => dollars(amount_cents), business_name => business, reason => problem,
            link => self.inner.links.credits_page.as_str() },
        )
        .map_err(BillingError::from)?;
        credits::text_owner(conn, client_id, "auto_reload_failed_alert", &body).await?;
        tracing::warn!(tenant_id = %client_id, reload_id, problem, "automatic reload failed; owner told");
        Ok(())
    }

    /// `POST /webhooks/stripe`: verifies the signature on the raw body, records the event
    /// id, and applies what the event means, all in one transaction, so a redelivered or
    /// reordered event changes nothing the first one did not.
    pub async fn handle_stripe_event(&self, payload: &[u8], signature: Option<&str>) -> Result<String, WebhookError> {
        if self.inner.webhook_secrets.is_empty() {
            return Err(WebhookError::NotConfigured);
        }
        let header = signature.ok_or(WebhookError::Signature(SignatureError::NoSignature))?;
        webhook::verify(
            payload,
            header,
            &self.inner.webhook_secrets,
            Utc::now().timestamp(),
            webhook::DEFAULT_TOLERANCE_S,
        )
        .map_err(WebhookError::Signature)?;
        let event = webhook::parse_event(payload).map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let json: serde_json::Value =
            serde_json::from_slice(payload).map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let kind = json["type"].as_str().unwrap_or("unknown").to_owned();
        // A saved card's details come from Stripe before the transaction begins.
        let setup = match (&event.kind, &self.inner.stripe) {
            (EventKind::CheckoutCompleted(s), Some(stripe)) if s.mode == "setup" => match &s.setup_intent {
                Some(id) => {
                    Some(stripe.retrieve_setup_intent(id).await.map_err(|e| WebhookError::Retry(e.to_string()))?)
                }
                None => None,
            },
            _ => None,
        };
        let mut tx = self.inner.pool.begin().await.map_err(BillingError::from)?;
        let created = chrono::DateTime::from_timestamp(event.created, 0).unwrap_or_else(Utc::now);
        let fresh = sqlx::query(
            "INSERT INTO stripe_events (id, type, created, payload) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&event.id)
        .bind(&kind)
        .bind(created)
        .bind(&json)
        .execute(&mut *tx)
        .await
        .map_err(BillingError::from)?
        .rows_affected()
            == 1;
        if !fresh {
            tx.commit().await.map_err(BillingError::from)?;
            tracing::info!(event_id = %event.id, kind, "Stripe event seen before; nothing to do");
            return Ok("duplicate".into());
        }
        let (outcome, client_id, due) = self.apply_event(&mut tx, &event, setup).await?;
        sqlx::query("UPDATE stripe_events SET outcome = $2, client_id = $3 WHERE id = $1")
            .bind(&event.id)
            .bind(&outcome)
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(BillingError::from)?;
        tx.commit().await.map_err(BillingError::from)?;
        tracing::info!(event_id = %event.id, kind, outcome, "Stripe event applied");
        if let Some(due) = due {
            self.start_auto_reload(due);
        }
        Ok(outcome)
    }

    async fn apply_event(
        &self,
        tx: &mut PgConnection,
        event: &Event,
        setup: Option<crate::vendors::stripe::SetupIntent>,
    ) -> Result<(String, Option<TenantId>, Option<AutoReloadDue>), WebhookError> {
        let now = Utc::now();
        let links = &self.inner.links;
        match &event.kind {
            EventKind::CheckoutCompleted(session) if session.mode == "setup" => {
                let reload = store::reload_by_checkout(tx, &session.id).await.map_err(BillingError::from)?;
                let client_id = session.client_id.map(TenantId).or(reload.as_ref().map(|r| r.client_id));
                let Some(client_id) = client_id else { return Ok(("unattributed".into(), None, None)) };
                let method = setup.and_then(|s| s.payment_method);
                sqlx::query(
                    "UPDATE credit_accounts SET stripe_payment_method_id = COALESCE($2, stripe_payment_method_id),                          stripe_customer_id = COALESCE(stripe_customer_id, $3), card_saved_at = now(),                          auto_reload_problem = NULL WHERE client_id = $1",
                )
                .bind(client_id)
                .bind(&method)
                .bind(&session.customer)
                .execute(&mut *tx)
                .await
                .map_err(BillingError::from)?;
                if let Some(reload) = reload {
                    store::settle_reload(tx, reload.id, "paid", None, None).await.map_err(BillingError::from)?;
                }
                Ok(("card saved".into(), Some(client_id), None))
            }
            EventKind::CheckoutCompleted(session) => {
                let reload = store::reload_by_checkout(tx, &session.id).await.map_err(BillingError::from)?;
                let client_id = session.client_id.map(TenantId).or(reload.as_ref().map(|r| r.client_id));
                let Some(client_id) = client_id else { return Ok(("unattributed".into(), None, None)) };
                if session.payment_status != "paid" {
                    return Ok((format!("checkout {}", session.payment_status), Some(client_id), None));
                }
                let (Some(intent), Some(amount)) = (&session.payment_intent, session.amount_total) else {
                    return Ok(("paid checkout without a payment intent".into(), Some(client_id), None));
                };
                if let Some(reload) = &reload {
                    store::link_reload(tx, reload.id, None, Some(intent)).await.map_err(BillingError::from)?;
                }
                let due =
                    self.credit_payment(tx, client_id, intent, amount, PaymentKind::Reload, &event.id, now).await?;
                if let Some(reload) = reload {
                    store::settle_reload(tx, reload.id, "paid", None, None).await.map_err(BillingError::from)?;
                }
                Ok(("credited".into(), Some(client_id), due))
            }
            EventKind::CheckoutFailed(session) => {
                if let Some(reload) = store::reload_by_checkout(tx, &session.id).await.map_err(BillingError::from)? {
                    store::settle_reload(tx, reload.id, "failed", Some("the payment did not go through"), None)
                        .await
                        .map_err(BillingError::from)?;
                    return Ok(("reload failed".into(), Some(reload.client_id), None));
                }
                Ok(("ignored".into(), None, None))
            }
            EventKind::PaymentSucceeded(intent) => {
                let reload = store::reload_by_intent(tx, &intent.id).await.map_err(BillingError::from)?;
                let client_id = intent.client_id.map(TenantId).or(reload.as_ref().map(|r| r.client_id));
                let Some(client_id) = client_id else { return Ok(("unattributed".into(), None, None)) };
                let kind = if intent.off_session { PaymentKind::AutoReload } else { PaymentKind::Reload };
                let amount = if intent.amount_received > 0 { intent.amount_received } else { intent.amount };
                let due = self.credit_payment(tx, client_id, &intent.id, amount, kind, &event.id, now).await?;
                if let Some(reload) = reload {
                    store::settle_reload(tx, reload.id, "paid", None, None).await.map_err(BillingError::from)?;
                }
                Ok(("credited".into(), Some(client_id), due))
            }
            EventKind::PaymentFailed(intent) => {
                let reload = store::reload_by_intent(tx, &intent.id).await.map_err(BillingError::from)?;
                let client_id = intent.client_id.map(TenantId).or(reload.as_ref().map(|r| r.client_id));
                let Some(client_id) = client_id else { return Ok(("unattributed".into(), None, None)) };
                if !intent.off_session {
                    // A card refused on the Checkout page: the owner saw it there and may retry.
                    return Ok(("checkout attempt failed".into(), Some(client_id), None));
                }
                let problem = card_problem(
                    intent.error_code.as_deref().unwrap_or("card_declined"),
                    intent.error_message.as_deref().unwrap_or(""),
                );
                match reload {
                    Some(reload) => {
                        self.auto_reload_failed(tx, client_id, reload.id, reload.amount_cents, &problem).await?;
                    }
                    None => {
                        sqlx::query("UPDATE credit_accounts SET auto_reload_problem = $2 WHERE client_id = $1")
                            .bind(client_id)
                            .bind(&problem)
                            .execute(&mut *tx)
                            .await
                            .map_err(BillingError::from)?;
                    }
                }
                Ok(("automatic reload failed".into(), Some(client_id), None))
            }
            EventKind::ChargeRefunded(refund) => {
                let Some(intent) = &refund.payment_intent else {
                    return Ok(("refund without a payment intent".into(), None, None));
                };
                let known = store::payment_of_intent(tx, intent).await.map_err(BillingError::from)?;
                let client_id = refund.client_id.map(TenantId).or(known.map(|(c, _)| c));
                // Not ours yet (the payment's own event has not come): answer an error so
                // Stripe delivers this again later; nothing is kept meanwhile.
                let Some(client_id) = client_id else {
                    return Err(WebhookError::Retry(format!("refund of {intent} for a payment not seen yet")));
                };
                let (applied, due) =
                    credits::apply_refund(tx, links, client_id, intent, refund.amount_refunded, Some(&event.id), now)
                        .await?;
                let outcome = match applied {
                    Applied::Done { .. } => "refund taken back",
                    Applied::AlreadyApplied => "refund already taken back",
                };
                Ok((outcome.into(), Some(client_id), due))
            }
            EventKind::Other(kind) => Ok((format!("ignored {kind}"), None, None)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn credit_payment(
        &self,
        tx: &mut PgConnection,
        client_id: TenantId,
        intent: &str,
        amount_cents: i64,
        kind: PaymentKind,
        event_id: &str,
        now: chrono::DateTime<Utc>,
    ) -> Result<Option<AutoReloadDue>, WebhookError> {
        let reference = format!("pi:{intent}");
        let note = match kind {
            PaymentKind::AutoReload => "Automatic reload",
            _ => "Reload by card",
        };
        let (_, due) = credits::apply_credit(
            tx,
            &self.inner.links,
            &Credit {
                client_id,
                kind,
                amount_cents,
                reference: &reference,
                payment_intent: Some(intent),
                event_id: Some(event_id),
                note,
                created_by: None,
            },
            now,
        )
        .await?;
        Ok(due)
    }
}
