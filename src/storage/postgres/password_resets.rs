//! Password reset tokens: single use, short-lived, stored only as their SHA-256.

use crate::domain::ids::UserId;
use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};

#[derive(Debug, Clone, FromRow)]
pub struct ResetToken {
    pub id: i64,
    pub user_id: UserId,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

pub async fn insert(
    conn: &mut PgConnection,
    user_id: UserId,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO password_reset_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(expires_at)
    .fetch_one(conn)
    .await
}

pub async fn find(pool: &PgPool, token_hash: &[u8]) -> sqlx::Result<Option<ResetToken>> {
    sqlx::query_as("SELECT id, user_id, expires_at, used_at FROM password_reset_tokens WHERE token_hash = $1")
        .bind(token_hash)
        .fetch_optional(pool)
        .await
}

/// The token with this hash, locked until the transaction ends so two uses cannot race.
pub async fn find_for_update(conn: &mut PgConnection, token_hash: &[u8]) -> sqlx::Result<Option<ResetToken>> {
    sqlx::query_as(
        "SELECT id, user_id, expires_at, used_at FROM password_reset_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}

/// Marks this token used, and every other open token of the user with it.
pub async fn mark_used(conn: &mut PgConnection, token: &ResetToken) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE password_reset_tokens SET used_at = now() \
         WHERE (id = $1 OR user_id = $2) AND used_at IS NULL",
    )
    .bind(token.id)
    .bind(token.user_id)
    .execute(conn)
    .await
    .map(|_| ())
}
