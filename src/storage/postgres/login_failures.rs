//! Wrong passwords per account, kept in the database so every instance behind the proxy
//! counts the same failures.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

pub async fn record(pool: &PgPool, email: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO login_failures (email) VALUES (lower($1))").bind(email).execute(pool).await.map(|_| ())
}

/// How many failures the account has had since `since`, and when the oldest of them was.
pub async fn since(pool: &PgPool, email: &str, since: DateTime<Utc>) -> sqlx::Result<(i64, Option<DateTime<Utc>>)> {
    sqlx::query_as(
        "SELECT count(*), min(failed_at) FROM login_failures WHERE lower(email) = lower($1) AND failed_at > $2",
    )
    .bind(email)
    .bind(since)
    .fetch_one(pool)
    .await
}

/// Forgets the account's failures (after a successful sign-in or password reset), and
/// anyone's older than `before`.
pub async fn clear(pool: &PgPool, email: &str, before: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM login_failures WHERE lower(email) = lower($1) OR failed_at < $2")
        .bind(email)
        .bind(before)
        .execute(pool)
        .await
        .map(|_| ())
}
