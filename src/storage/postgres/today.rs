//! What the Today page reads: the tenant's header, one day's calls, bookings and
//! messages from callers, and the credit account. Meant for a tenant transaction
//! (`begin_tenant`), so row-level security backs up every `WHERE client_id`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sqlx::{FromRow, PgConnection};

use super::tenants::StoredZone;
use crate::domain::appointments::AppointmentStatus;
use crate::domain::calls::{HandledBy, Outcome};
use crate::domain::ids::TenantId;

#[derive(Debug, Clone, FromRow)]
pub struct TenantHeader {
    pub business_name: String,
    pub ringlypro_number: Option<String>,
    pub owner_phone: String,
    #[sqlx(try_from = "StoredZone")]
    pub timezone: Tz,
    pub rachel_enabled: bool,
}

#[derive(Debug, Clone, FromRow)]
pub struct CallLine {
    pub from_number: String,
    pub outcome: Outcome,
    pub handled_by: HandledBy,
    pub started_at: DateTime<Utc>,
    pub duration_seconds: Option<i32>,
}

#[derive(Debug, Clone, FromRow)]
pub struct BookingLine {
    pub customer_name: String,
    pub customer_phone: String,
    pub starts_at: DateTime<Utc>,
    pub status: AppointmentStatus,
}

#[derive(Debug, Clone, FromRow)]
pub struct MessageLine {
    pub from_number: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow)]
pub struct Credits {
    pub balance_cents: i64,
    pub free_minutes_limit: i32,
    pub free_minutes_used: i32,
    pub locked: bool,
}

pub async fn tenant_header(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<Option<TenantHeader>> {
    sqlx::query_as(
        "SELECT business_name, ringlypro_number, owner_phone, timezone, rachel_enabled FROM clients WHERE id = $1",
    )
    .bind(client_id)
    .fetch_optional(conn)
    .await
}

/// Calls that started in `[from, to)`, newest first.
pub async fn calls(
    conn: &mut PgConnection,
    client_id: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<CallLine>> {
    sqlx::query_as(
        "SELECT from_number, outcome, handled_by, started_at, duration_seconds FROM calls \
         WHERE client_id = $1 AND started_at >= $2 AND started_at < $3 ORDER BY started_at DESC, id DESC LIMIT 200",
    )
    .bind(client_id)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
}

/// Appointments (not cancelled) starting in `[from, to)`, in order.
pub async fn bookings(
    conn: &mut PgConnection,
    client_id: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<BookingLine>> {
    sqlx::query_as(
        "SELECT customer_name, customer_phone, starts_at, status FROM appointments \
         WHERE client_id = $1 AND starts_at >= $2 AND starts_at < $3 AND status <> 'cancelled' \
         ORDER BY starts_at, id LIMIT 200",
    )
    .bind(client_id)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
}

/// Messages callers left or texted in `[from, to)`, newest first.
pub async fn messages(
    conn: &mut PgConnection,
    client_id: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<MessageLine>> {
    sqlx::query_as(
        "SELECT from_number, body, created_at FROM messages \
         WHERE client_id = $1 AND direction = 'inbound' AND created_at >= $2 AND created_at < $3 \
         ORDER BY created_at DESC, id DESC LIMIT 200",
    )
    .bind(client_id)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
}

pub async fn credits(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<Option<Credits>> {
    sqlx::query_as(
        "SELECT balance_cents, free_minutes_limit, free_minutes_used, locked FROM credit_accounts WHERE client_id = $1",
    )
    .bind(client_id)
    .fetch_optional(conn)
    .await
}

/// The connected systems that refuse our access and wait for the owner to reconnect them:
/// `Google Calendar`, `GoHighLevel`.
pub async fn reconnect_needed(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT 'Google Calendar' FROM google_connections WHERE client_id = $1 AND status = 'reconnect' \
         UNION ALL SELECT 'GoHighLevel' FROM ghl_connections WHERE client_id = $1 AND status = 'reconnect'",
    )
    .bind(client_id)
    .fetch_all(conn)
    .await
}
