//! What RinglyPro's administrators see across tenants: each tenant's usage this month
//! and credit standing, and the administrators' own notes about a tenant. Runs as the
//! application's role (no tenant scope): only the admin area may call it.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sqlx::{FromRow, PgPool};

use super::tenants::StoredZone;
use crate::domain::ids::{TenantId, UserId};

/// One tenant with its month so far (calendar month in the tenant's time zone).
#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct TenantUsage {
    #[schema(value_type = i64)]
    pub id: TenantId,
    pub business_name: String,
    pub owner_email: Option<String>,
    pub owner_phone: String,
    pub ringlypro_number: Option<String>,
    #[sqlx(try_from = "StoredZone")]
    #[schema(value_type = String)]
    pub timezone: Tz,
    pub calls_this_month: i64,
    /// Whole minutes, each call rounded up as it is billed.
    pub minutes_this_month: i64,
    pub bookings_this_month: i64,
    pub balance_cents: i64,
    pub free_minutes_used: i32,
    pub free_minutes_limit: i32,
    pub locked: bool,
    pub rachel_enabled: bool,
    pub recording_enabled: bool,
    pub created_at: DateTime<Utc>,
}

const USAGE: &str = "\
WITH month AS (
    SELECT c.id AS client_id,
           (date_trunc('month', now() AT TIME ZONE c.timezone) AT TIME ZONE c.timezone) AS starts
    FROM clients c
)
SELECT c.id, c.business_name, u.email AS owner_email, c.owner_phone, c.ringlypro_number, c.timezone,
       (SELECT count(*) FROM calls k WHERE k.client_id = c.id AND k.started_at >= m.starts) AS calls_this_month,
       (SELECT COALESCE(sum(ceil(k.duration_seconds / 60.0)), 0)::bigint FROM calls k
         WHERE k.client_id = c.id AND k.started_at >= m.starts) AS minutes_this_month,
       (SELECT count(*) FROM appointments a
         WHERE a.client_id = c.id AND a.created_at >= m.starts) AS bookings_this_month,
       COALESCE(ca.balance_cents, 0) AS balance_cents,
       COALESCE(ca.free_minutes_used, 0) AS free_minutes_used,
       COALESCE(ca.free_minutes_limit, 0) AS free_minutes_limit,
       COALESCE(ca.locked, false) AS locked,
       c.rachel_enabled, c.recording_enabled, c.created_at
FROM clients c
JOIN month m ON m.client_id = c.id
LEFT JOIN users u ON u.id = c.user_id
LEFT JOIN credit_accounts ca ON ca.client_id = c.id";

/// Every tenant, newest first.
pub async fn tenants(pool: &PgPool) -> sqlx::Result<Vec<TenantUsage>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{USAGE} ORDER BY c.created_at DESC, c.id DESC"))).fetch_all(pool).await
}

pub async fn tenant(pool: &PgPool, client_id: TenantId) -> sqlx::Result<Option<TenantUsage>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{USAGE} WHERE c.id = $1"))).bind(client_id).fetch_optional(pool).await
}

/// An administrator's note about a tenant.
#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Note {
    pub id: i64,
    #[schema(value_type = i64)]
    pub client_id: TenantId,
    /// The author's email; `None` once their account is gone.
    pub author: Option<String>,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// The tenant's notes, newest first.
pub async fn notes(pool: &PgPool, client_id: TenantId) -> sqlx::Result<Vec<Note>> {
    sqlx::query_as(
        "SELECT n.id, n.client_id, u.email AS author, n.body, n.created_at FROM admin_notes n \
         LEFT JOIN users u ON u.id = n.author_id WHERE n.client_id = $1 ORDER BY n.created_at DESC, n.id DESC",
    )
    .bind(client_id)
    .fetch_all(pool)
    .await
}

pub async fn add_note(pool: &PgPool, client_id: TenantId, author_id: UserId, body: &str) -> sqlx::Result<Note> {
    sqlx::query_as(
        "WITH n AS (INSERT INTO admin_notes (client_id, author_id, body) VALUES ($1, $2, $3) \
                    RETURNING id, client_id, author_id, body, created_at) \
         SELECT n.id, n.client_id, u.email AS author, n.body, n.created_at FROM n LEFT JOIN users u ON u.id = n.author_id",
    )
    .bind(client_id)
    .bind(author_id)
    .bind(body)
    .fetch_one(pool)
    .await
}

/// Makes the user with this email an administrator; `false` when there is none.
pub async fn grant(pool: &PgPool, email: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE users SET is_admin = true, updated_at = now() WHERE lower(email) = lower($1)")
        .bind(email.trim())
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}
