//! Outgoing email. No provider is wired in yet, so every email waits here (status
//! `queued`) where the operator can read it; nothing is dropped.

use crate::domain::ids::TenantId;
use sqlx::PgConnection;

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
    /// `queued` or `failed`.
    pub status: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The tenant's emails waiting to be sent (or that failed), newest first.
pub async fn waiting(conn: &mut PgConnection, client_id: TenantId, limit: i64) -> sqlx::Result<Vec<WaitingEmail>> {
    sqlx::query_as(
        "SELECT id, to_address, kind, subject, status, created_at FROM email_outbox \
         WHERE client_id = $1 AND status <> 'sent' ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(client_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}
