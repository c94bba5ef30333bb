//! The pool of RinglyPro numbers (bought from Twilio, pointed at `/twilio/voice`) that
//! new tenants are given at signup.

use crate::domain::ids::TenantId;
use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};

#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct PoolNumber {
    pub number: String,
    pub client_id: Option<TenantId>,
    pub added_at: DateTime<Utc>,
}

/// Adds a number to the pool. A number a tenant already answers on is recorded as theirs.
/// Returns false when the pool already held it.
pub async fn add(pool: &PgPool, number: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO ringlypro_numbers (number, client_id, assigned_at) \
         SELECT $1, c.id, CASE WHEN c.id IS NULL THEN NULL ELSE now() END \
         FROM (SELECT 1) one LEFT JOIN clients c ON c.ringlypro_number = $1 \
         ON CONFLICT (number) DO NOTHING",
    )
    .bind(number)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Takes the oldest free number for `client_id` and writes it on the tenant. Concurrent
/// signups skip each other's locked rows, so two tenants never get one number.
pub async fn assign_free(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<Option<String>> {
    let number: Option<String> = sqlx::query_scalar(
        "UPDATE ringlypro_numbers SET client_id = $1, assigned_at = now() \
         WHERE number = (SELECT number FROM ringlypro_numbers WHERE client_id IS NULL \
                         ORDER BY added_at, number LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING number",
    )
    .bind(client_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(number) = &number {
        sqlx::query("UPDATE clients SET ringlypro_number = $2, updated_at = now() WHERE id = $1")
            .bind(client_id)
            .bind(number)
            .execute(&mut *conn)
            .await?;
    }
    Ok(number)
}

/// Records that a tenant created with a given number holds it, should the pool have it.
pub async fn mark_assigned(conn: &mut PgConnection, number: &str, client_id: TenantId) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE ringlypro_numbers SET client_id = $2, assigned_at = now() WHERE number = $1 AND client_id IS NULL",
    )
    .bind(number)
    .bind(client_id)
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<PoolNumber>> {
    sqlx::query_as("SELECT number, client_id, added_at FROM ringlypro_numbers ORDER BY added_at, number")
        .fetch_all(pool)
        .await
}
