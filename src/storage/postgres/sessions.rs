//! Server-side sessions: a row per signed-in browser, found by the SHA-256 of the token
//! in its cookie (the token itself is never stored), holding the session's CSRF token.

use crate::domain::ids::{TenantId, UserId};
use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};

/// The signed-in user a live session belongs to, with their tenant.
#[derive(Debug, Clone, FromRow)]
pub struct SessionOwner {
    pub user_id: UserId,
    pub email: String,
    pub is_admin: bool,
    /// `None` for a user who owns no tenant (an admin created by hand).
    pub client_id: Option<TenantId>,
    pub csrf_token: String,
}

pub async fn insert(
    conn: &mut PgConnection,
    user_id: UserId,
    token_hash: &[u8],
    csrf_token: &str,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(token_hash)
        .bind(user_id)
        .bind(csrf_token)
        .bind(expires_at)
        .execute(conn)
        .await
        .map(|_| ())
}

/// The owner of an unexpired session.
pub async fn find(pool: &PgPool, token_hash: &[u8]) -> sqlx::Result<Option<SessionOwner>> {
    sqlx::query_as(
        "SELECT u.id AS user_id, u.email, u.is_admin, \
                (SELECT c.id FROM clients c WHERE c.user_id = u.id ORDER BY c.id LIMIT 1) AS client_id, \
                s.csrf_token \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = $1 AND s.expires_at > now()",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await
}

/// Ends one session (sign out).
pub async fn delete(pool: &PgPool, token_hash: &[u8]) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(pool).await?;
    Ok(done.rows_affected() > 0)
}

/// Ends every session of a user (after a password reset).
pub async fn delete_for_user(conn: &mut PgConnection, user_id: UserId) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id).execute(conn).await?;
    Ok(done.rows_affected())
}

/// Forgets sessions past their expiry.
pub async fn delete_expired(pool: &PgPool) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= now()").execute(pool).await?;
    Ok(done.rows_affected())
}
