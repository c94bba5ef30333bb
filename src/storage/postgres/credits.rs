//! The credit account, its ledger (`usage_records` for calls, `payment_transactions` for
//! money, `credit_cycles` for monthly resets), reload requests and the block list. Writers
//! take the account row `FOR UPDATE` first, so one tenant's charges and payments queue up
//! instead of losing each other's updates; the ledger's unique references make a retried
//! write a no-op.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{FromRow, PgConnection};

use crate::domain::credits::{Account, Charge, NotCharged, Reset};
use crate::domain::ids::{CallId, TenantId, UserId};

/// A credit account with its owner's settings, as stored.
#[derive(Debug, Clone, FromRow)]
pub struct AccountRow {
    pub client_id: TenantId,
    pub balance_cents: i64,
    pub free_minutes_limit: i32,
    pub free_minutes_used: i32,
    pub rate_cents_per_minute: i32,
    pub cycle_start: NaiveDate,
    pub locked: bool,
    pub low_balance_alerted_cycle: Option<NaiveDate>,
    pub auto_reload_enabled: bool,
    pub auto_reload_amount_cents: i64,
    pub auto_reload_threshold_cents: i64,
    pub auto_reload_attempts: i32,
    pub auto_reload_problem: Option<String>,
    pub stripe_customer_id: Option<String>,
    pub stripe_payment_method_id: Option<String>,
    pub card_saved_at: Option<DateTime<Utc>>,
    /// The tenant's zone name (`clients.timezone`).
    pub timezone: String,
}

impl AccountRow {
    pub fn account(&self) -> Account {
        Account {
            balance_cents: self.balance_cents,
            free_minutes_limit: self.free_minutes_limit,
            free_minutes_used: self.free_minutes_used,
            rate_cents_per_minute: self.rate_cents_per_minute,
            cycle_start: self.cycle_start,
        }
    }
}

const ACCOUNT: &str = "SELECT ca.client_id, ca.balance_cents, ca.free_minutes_limit, ca.free_minutes_used, \
     ca.rate_cents_per_minute, ca.cycle_start, ca.locked, ca.low_balance_alerted_cycle, ca.auto_reload_enabled, \
     ca.auto_reload_amount_cents, ca.auto_reload_threshold_cents, ca.auto_reload_attempts, ca.auto_reload_problem, \
     ca.stripe_customer_id, ca.stripe_payment_method_id, ca.card_saved_at, c.timezone \
     FROM credit_accounts ca JOIN clients c ON c.id = ca.client_id WHERE ca.client_id = $1";

/// The account, read without a lock.
pub async fn read(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<Option<AccountRow>> {
    sqlx::query_as(ACCOUNT).bind(client_id).fetch_optional(conn).await
}

/// The account, locked until the transaction ends: every change of credit goes through here.
pub async fn lock(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<Option<AccountRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{ACCOUNT} FOR UPDATE OF ca")))
        .bind(client_id)
        .fetch_optional(conn)
        .await
}

/// Writes the figures of a locked account back, with its lock state.
pub async fn store(conn: &mut PgConnection, client_id: TenantId, account: &Account) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE credit_accounts SET balance_cents = $2, free_minutes_used = $3, cycle_start = $4, locked = $5, \
             updated_at = now() WHERE client_id = $1",
    )
    .bind(client_id)
    .bind(account.balance_cents)
    .bind(account.free_minutes_used)
    .bind(account.cycle_start)
    .bind(!account.can_answer())
    .execute(conn)
    .await
    .map(|_| ())
}

/// Records a monthly reset; false if this cycle was already reset.
pub async fn insert_cycle(
    conn: &mut PgConnection,
    client_id: TenantId,
    reset: &Reset,
    free_minutes_limit: i32,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO credit_cycles (client_id, cycle_start, free_minutes_limit, free_used_before) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(client_id)
    .bind(reset.cycle_start)
    .bind(free_minutes_limit)
    .bind(reset.free_used_before)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Tenants whose free-minute cycle is behind the month it is now in their zone.
pub async fn due_for_reset(conn: &mut PgConnection, now: DateTime<Utc>) -> sqlx::Result<Vec<TenantId>> {
    sqlx::query_scalar(
        "SELECT ca.client_id FROM credit_accounts ca JOIN clients c ON c.id = ca.client_id \
         WHERE ca.cycle_start < date_trunc('month', $1 AT TIME ZONE c.timezone)::date ORDER BY ca.client_id",
    )
    .bind(now)
    .fetch_all(conn)
    .await
}

/// Marks the low-balance warning sent for `cycle`; false if it already was.
pub async fn claim_low_balance_alert(
    conn: &mut PgConnection,
    client_id: TenantId,
    cycle: NaiveDate,
) -> sqlx::Result<bool> {
    let claimed = sqlx::query(
        "UPDATE credit_accounts SET low_balance_alerted_cycle = $2 WHERE client_id = $1 \
         AND (low_balance_alerted_cycle IS NULL OR low_balance_alerted_cycle < $2)",
    )
    .bind(client_id)
    .bind(cycle)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(claimed == 1)
}

/// What a call's record says about its cost.
#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Usage {
    pub id: i64,
    #[schema(value_type = Option<i64>)]
    pub call_id: Option<CallId>,
    pub call_sid: Option<String>,
    pub duration_seconds: i32,
    /// `twilio` (the carrier's own duration) or `call` (our record, when Twilio sent none).
    pub duration_source: String,
    pub minutes: i32,
    pub free_minutes: i32,
    pub paid_minutes: i32,
    pub cost_cents: i64,
    pub rate_cents_per_minute: i32,
    pub balance_before_cents: i64,
    pub balance_after_cents: i64,
    pub free_used_before: i32,
    pub free_used_after: i32,
    /// Why nothing was charged, if nothing was.
    #[schema(value_type = Option<String>)]
    pub not_charged: Option<NotCharged>,
    pub created_at: DateTime<Utc>,
}

const USAGE: &str = "SELECT id, call_id, call_sid, duration_seconds, duration_source, minutes, free_minutes, \
     paid_minutes, cost_cents, rate_cents_per_minute, balance_before_cents, balance_after_cents, free_used_before, \
     free_used_after, not_charged, created_at FROM usage_records";

/// A call's usage row, to be written once.
#[derive(Debug, Clone)]
pub struct NewUsage<'a> {
    pub client_id: TenantId,
    pub call_id: CallId,
    pub call_sid: &'a str,
    pub duration_seconds: i32,
    pub duration_source: &'a str,
    pub charge: Charge,
    pub before: &'a Account,
    pub after: &'a Account,
    pub not_charged: Option<NotCharged>,
}

/// Writes a call's usage; false if the call already has one (nothing is written).
pub async fn insert_usage(conn: &mut PgConnection, u: &NewUsage<'_>) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO usage_records (client_id, call_id, call_sid, duration_seconds, duration_source, minutes, \
             free_minutes, paid_minutes, cost_cents, rate_cents_per_minute, balance_before_cents, balance_after_cents, \
             free_used_before, free_used_after, cycle_start, not_charged) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
         ON CONFLICT (call_id) DO NOTHING",
    )
    .bind(u.client_id)
    .bind(u.call_id)
    .bind(u.call_sid)
    .bind(u.duration_seconds)
    .bind(u.duration_source)
    .bind(u.charge.minutes)
    .bind(u.charge.free_minutes)
    .bind(u.charge.paid_minutes)
    .bind(u.charge.cost_cents)
    .bind(u.before.rate_cents_per_minute)
    .bind(u.before.balance_cents)
    .bind(u.after.balance_cents)
    .bind(u.before.free_minutes_used)
    .bind(u.after.free_minutes_used)
    .bind(u.after.cycle_start)
    .bind(u.not_charged)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

pub async fn usage_for_call(conn: &mut PgConnection, call_id: CallId) -> sqlx::Result<Option<Usage>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{USAGE} WHERE call_id = $1"))).bind(call_id).fetch_optional(conn).await
}

/// Money into or out of the balance, other than a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentKind {
    Reload,
    AutoReload,
    ManualReload,
    Refund,
    Adjustment,
    /// A payment that did not go through: recorded, moves nothing.
    Failed,
}

impl PaymentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentKind::Reload => "reload",
            PaymentKind::AutoReload => "auto_reload",
            PaymentKind::ManualReload => "manual_reload",
            PaymentKind::Refund => "refund",
            PaymentKind::Adjustment => "adjustment",
            PaymentKind::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewPayment<'a> {
    pub client_id: TenantId,
    pub kind: PaymentKind,
    pub amount_cents: i64,
    pub balance_before_cents: i64,
    /// Makes the payment happen once: a second row with it is not written.
    pub reference: &'a str,
    pub stripe_payment_intent: Option<&'a str>,
    pub stripe_event_id: Option<&'a str>,
    pub note: &'a str,
    pub created_by: Option<UserId>,
}

/// Writes a payment row; false if one with the same reference exists (nothing written).
pub async fn insert_payment(conn: &mut PgConnection, p: &NewPayment<'_>) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO payment_transactions (client_id, kind, amount_cents, balance_before_cents, balance_after_cents, \
             reference, stripe_payment_intent, stripe_event_id, note, created_by) \
         VALUES ($1, $2, $3, $4, $4 + $3, $5, $6, $7, $8, $9) ON CONFLICT (reference) DO NOTHING",
    )
    .bind(p.client_id)
    .bind(p.kind.as_str())
    .bind(p.amount_cents)
    .bind(p.balance_before_cents)
    .bind(p.reference)
    .bind(p.stripe_payment_intent)
    .bind(p.stripe_event_id)
    .bind(p.note)
    .bind(p.created_by)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Whether a payment with this reference is in the ledger.
pub async fn payment_exists(conn: &mut PgConnection, reference: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM payment_transactions WHERE reference = $1)")
        .bind(reference)
        .fetch_one(conn)
        .await
}

/// How much of a payment intent has been refunded so far (a positive number of cents).
pub async fn refunded_so_far(conn: &mut PgConnection, payment_intent: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT COALESCE(-SUM(amount_cents), 0)::bigint FROM payment_transactions \
         WHERE stripe_payment_intent = $1 AND kind = 'refund'",
    )
    .bind(payment_intent)
    .fetch_one(conn)
    .await
}

/// The tenant a payment intent credited, and how much.
pub async fn payment_of_intent(conn: &mut PgConnection, payment_intent: &str) -> sqlx::Result<Option<(TenantId, i64)>> {
    sqlx::query_as(
        "SELECT client_id, amount_cents FROM payment_transactions \
         WHERE stripe_payment_intent = $1 AND kind IN ('reload', 'auto_reload') LIMIT 1",
    )
    .bind(payment_intent)
    .fetch_optional(conn)
    .await
}

/// A reload the owner asked for.
#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Reload {
    pub id: i64,
    #[schema(value_type = i64)]
    pub client_id: TenantId,
    /// `checkout`, `auto`, `manual` (confirmed by an administrator) or `card_setup`.
    pub kind: String,
    pub amount_cents: i64,
    /// `pending`, `paid`, `failed` or `cancelled`.
    pub status: String,
    pub stripe_checkout_session: Option<String>,
    pub stripe_payment_intent: Option<String>,
    pub problem: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const RELOAD: &str = "SELECT id, client_id, kind, amount_cents, status, stripe_checkout_session, \
     stripe_payment_intent, problem, created_at, updated_at FROM credit_reloads";

#[derive(Debug, Clone)]
pub struct NewReload<'a> {
    pub client_id: TenantId,
    pub kind: &'a str,
    pub amount_cents: i64,
    pub idempotency_key: &'a str,
    pub requested_by: Option<UserId>,
}

/// Records a reload request; a second request with the same key returns the first.
pub async fn insert_reload(conn: &mut PgConnection, r: &NewReload<'_>) -> sqlx::Result<Reload> {
    sqlx::query(
        "INSERT INTO credit_reloads (client_id, kind, amount_cents, idempotency_key, requested_by) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(r.client_id)
    .bind(r.kind)
    .bind(r.amount_cents)
    .bind(r.idempotency_key)
    .bind(r.requested_by)
    .execute(&mut *conn)
    .await?;
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{RELOAD} WHERE idempotency_key = $1")))
        .bind(r.idempotency_key)
        .fetch_one(conn)
        .await
}

pub async fn find_reload(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<Reload>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{RELOAD} WHERE id = $1"))).bind(id).fetch_optional(conn).await
}

pub async fn reload_by_checkout(conn: &mut PgConnection, session: &str) -> sqlx::Result<Option<Reload>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{RELOAD} WHERE stripe_checkout_session = $1")))
        .bind(session)
        .fetch_optional(conn)
        .await
}

pub async fn reload_by_intent(conn: &mut PgConnection, intent: &str) -> sqlx::Result<Option<Reload>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{RELOAD} WHERE stripe_payment_intent = $1")))
        .bind(intent)
        .fetch_optional(conn)
        .await
}

/// The tenant's reloads still waiting, newest first.
pub async fn pending_reloads(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<Vec<Reload>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{RELOAD} WHERE client_id = $1 AND status = 'pending' ORDER BY created_at DESC, id DESC"
    )))
    .bind(client_id)
    .fetch_all(conn)
    .await
}

/// Every tenant's reloads waiting for an administrator (local mode), oldest first.
pub async fn manual_reloads_waiting(conn: &mut PgConnection) -> sqlx::Result<Vec<Reload>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{RELOAD} WHERE kind = 'manual' AND status = 'pending' ORDER BY created_at, id"
    )))
    .fetch_all(conn)
    .await
}

/// Links a reload to its Stripe objects as they become known.
pub async fn link_reload(
    conn: &mut PgConnection,
    id: i64,
    checkout_session: Option<&str>,
    payment_intent: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE credit_reloads SET stripe_checkout_session = COALESCE(stripe_checkout_session, $2), \
             stripe_payment_intent = COALESCE(stripe_payment_intent, $3), updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(checkout_session)
    .bind(payment_intent)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Moves a pending reload to `paid`, `failed` or `cancelled`; a settled one stays settled
/// (except that a failure may still be followed by a payment that went through).
pub async fn settle_reload(
    conn: &mut PgConnection,
    id: i64,
    status: &str,
    problem: Option<&str>,
    confirmed_by: Option<UserId>,
) -> sqlx::Result<bool> {
    let changed = sqlx::query(
        "UPDATE credit_reloads SET status = $2, problem = $3, confirmed_by = COALESCE($4, confirmed_by), \
             updated_at = now() \
         WHERE id = $1 AND (status = 'pending' OR (status = 'failed' AND $2 = 'paid'))",
    )
    .bind(id)
    .bind(status)
    .bind(problem)
    .bind(confirmed_by)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(changed == 1)
}

/// Whether `phone` is on the tenant's block list.
pub async fn is_blocked(conn: &mut PgConnection, client_id: TenantId, phone: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM blocked_numbers WHERE client_id = $1 AND phone = $2)")
        .bind(client_id)
        .bind(phone)
        .fetch_one(conn)
        .await
}

/// A number on the block list.
#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct BlockedNumber {
    pub phone: String,
    pub note: String,
    pub created_at: DateTime<Utc>,
}

pub async fn blocked_numbers(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<Vec<BlockedNumber>> {
    sqlx::query_as("SELECT phone, note, created_at FROM blocked_numbers WHERE client_id = $1 ORDER BY created_at DESC")
        .bind(client_id)
        .fetch_all(conn)
        .await
}

pub async fn block(conn: &mut PgConnection, client_id: TenantId, phone: &str, note: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO blocked_numbers (client_id, phone, note) VALUES ($1, $2, $3) \
         ON CONFLICT (client_id, phone) DO UPDATE SET note = EXCLUDED.note",
    )
    .bind(client_id)
    .bind(phone)
    .bind(note)
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn unblock(conn: &mut PgConnection, client_id: TenantId, phone: &str) -> sqlx::Result<bool> {
    let deleted = sqlx::query("DELETE FROM blocked_numbers WHERE client_id = $1 AND phone = $2")
        .bind(client_id)
        .bind(phone)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(deleted == 1)
}
