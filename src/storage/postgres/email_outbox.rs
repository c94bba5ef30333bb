//! Outgoing e-mail: a durable queue. Rows are queued in the transaction of what caused
//! them, claimed by the mail worker with `FOR UPDATE SKIP LOCKED` (so several instances
//! never take the same row), and end `sent` or `failed`. Without an SMTP server configured
//! they wait here (status `queued`) where the owner can see them; nothing is dropped.

use crate::domain::ids::TenantId;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

#[derive(Debug, Clone)]
pub struct NewEmail<'a> {
    pub client_id: Option<TenantId>,
    pub to_address: &'a str,
    pub kind: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
}

pub async fn queue(conn: &mut PgConnection, email: &NewEmail<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO email_outbox (client_id, to_address, kind, subject, body) VALUES ($1, $2, $3, $4, $5) \
         RETURNING id",
    )
    .bind(email.client_id)
    .bind(email.to_address)
    .bind(email.kind)
    .bind(email.subject)
    .bind(email.body)
    .fetch_one(conn)
    .await
}

/// An email of the tenant's not yet sent, as the owner sees it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct WaitingEmail {
    pub id: i64,
    pub to_address: String,
    pub kind: String,
    pub subject: String,
    /// `queued`, `sending` or `failed`.
    pub status: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// How many times sending was tried.
    pub attempts: i32,
    /// Why the last try did not deliver it (the mail server's answer), if one was made.
    pub last_error: Option<String>,
}

/// The tenant's emails waiting to be sent (or that failed), newest first.
pub async fn waiting(conn: &mut PgConnection, client_id: TenantId, limit: i64) -> sqlx::Result<Vec<WaitingEmail>> {
    sqlx::query_as(
        "SELECT id, to_address, kind, subject, status, created_at, attempts, last_error FROM email_outbox \
         WHERE client_id = $1 AND status <> 'sent' ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(client_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A mail claimed for sending.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedEmail {
    pub id: i64,
    pub to_address: String,
    pub subject: String,
    pub body: String,
    /// Including this one.
    pub attempts: i32,
}

/// Claims up to `limit` due mails for `lease`: queued ones whose time has come, and ones
/// whose sender's lease ran out (an instance that stopped mid-send). Committed at once, so
/// another instance skips them while they are sent.
pub async fn claim_due(pool: &PgPool, limit: i64, lease: std::time::Duration) -> sqlx::Result<Vec<ClaimedEmail>> {
    sqlx::query_as(
        "UPDATE email_outbox SET status = 'sending', attempts = attempts + 1, \
             lease_until = now() + make_interval(secs => $2) \
         WHERE id IN ( \
             SELECT id FROM email_outbox \
             WHERE (status = 'queued' AND next_attempt_at <= now()) \
                OR (status = 'sending' AND lease_until < now()) \
             ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING id, to_address, subject, body, attempts",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await
}

/// The mail server accepted the mail.
pub async fn mark_sent(pool: &PgPool, id: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE email_outbox SET status = 'sent', sent_at = now(), lease_until = NULL, last_error = NULL \
         WHERE id = $1 AND status = 'sending'",
    )
    .bind(id)
    .execute(pool)
    .await
    .map(|_| ())
}

/// A transient failure: the mail is tried again at `next_attempt_at`.
pub async fn mark_retry(pool: &PgPool, id: i64, next_attempt_at: DateTime<Utc>, error: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE email_outbox SET status = 'queued', next_attempt_at = $2, lease_until = NULL, last_error = $3 \
         WHERE id = $1 AND status = 'sending'",
    )
    .bind(id)
    .bind(next_attempt_at)
    .bind(error)
    .execute(pool)
    .await
    .map(|_| ())
}

/// A permanent failure (the server refused the mail, or it cannot be written): never retried.
pub async fn mark_failed(pool: &PgPool, id: i64, error: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE email_outbox SET status = 'failed', lease_until = NULL, last_error = $2 \
         WHERE id = $1 AND status = 'sending'",
    )
    .bind(id)
    .bind(error)
    .execute(pool)
    .await
    .map(|_| ())
}
