//! A business's Google Calendar connection (tokens as sealed text only) and the local copy
//! of the owner's busy intervals. The queue of changes waiting to reach Google is
//! `sync_jobs`; consents in progress are `oauth_states`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgConnection, PgPool};

use crate::domain::ids::{AppointmentId, TenantId};
use crate::domain::names::named;
use crate::domain::scheduling::Busy;

/// A connection as stored (tokens sealed).
#[derive(Debug, Clone, FromRow)]
pub struct Connection {
    pub client_id: TenantId,
    pub calendar_id: String,
    #[sqlx(try_from = "String")]
    pub status: ConnectionStatus,
    pub refresh_token_sealed: String,
    pub access_token_sealed: Option<String>,
    pub access_expires_at: Option<DateTime<Utc>>,
    pub sync_token: Option<String>,
    pub channel_id: Option<String>,
    pub channel_token: Option<String>,
    pub resource_id: Option<String>,
    pub channel_expires_at: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl Connection {
    pub fn needs_reconnect(&self) -> bool {
        self.status == ConnectionStatus::Reconnect
    }
}

const COLUMNS: &str = "client_id, calendar_id, status, refresh_token_sealed, access_token_sealed, access_expires_at, \
     sync_token, channel_id, channel_token, resource_id, channel_expires_at, last_synced_at, last_error";

named! {
    /// Whether Google still accepts the connection.
    pub enum ConnectionStatus {
        Connected = "connected",
        /// Google refused the grant: the owner must connect again.
        Reconnect = "reconnect",
    }
}

impl TryFrom<String> for ConnectionStatus {
    type Error = crate::domain::names::UnknownName;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// Stores a (new or renewed) connection: its tokens, and a full sync to come.
pub async fn connect(
    conn: &mut PgConnection,
    client_id: TenantId,
    calendar_id: &str,
    refresh_token_sealed: &str,
    access_token_sealed: &str,
    access_expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO google_connections (client_id, calendar_id, refresh_token_sealed, access_token_sealed, access_expires_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (client_id) DO UPDATE SET calendar_id = EXCLUDED.calendar_id, status = 'connected', \
             refresh_token_sealed = EXCLUDED.refresh_token_sealed, access_token_sealed = EXCLUDED.access_token_sealed, \
             access_expires_at = EXCLUDED.access_expires_at, sync_token = NULL, sync_due = true, last_error = NULL, \
             connected_at = now()",
    )
    .bind(client_id)
    .bind(calendar_id)
    .bind(refresh_token_sealed)
    .bind(access_token_sealed)
    .bind(access_expires_at)
    .execute(&mut *conn)
    .await?;
    // Changes that waited for a reconnect go now.
    super::sync_jobs::wake(conn, client_id, super::sync_jobs::Target::Google).await
}

pub async fn connection(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<Option<Connection>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM google_connections WHERE client_id = $1")))
        .bind(client_id)
        .fetch_optional(conn)
        .await
}

/// Removes the connection, its busy copy and its waiting jobs; returns what was removed.
pub async fn disconnect(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<Option<Connection>> {
    let removed: Option<Connection> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "DELETE FROM google_connections WHERE client_id = $1 RETURNING {COLUMNS}"
    )))
    .bind(client_id)
    .fetch_optional(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM google_busy WHERE client_id = $1").bind(client_id).execute(&mut *conn).await?;
    super::sync_jobs::drop_all(conn, client_id, super::sync_jobs::Target::Google).await?;
    Ok(removed)
}

pub async fn save_access(
    pool: &PgPool,
    client_id: TenantId,
    access_token_sealed: &str,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE google_connections SET access_token_sealed = $2, access_expires_at = $3 WHERE client_id = $1")
        .bind(client_id)
        .bind(access_token_sealed)
        .bind(expires_at)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Google refused the grant: the owner is asked to reconnect; nothing is sent meanwhile.
pub async fn mark_reconnect(pool: &PgPool, client_id: TenantId, error: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE google_connections SET status = 'reconnect', last_error = $2, access_token_sealed = NULL \
         WHERE client_id = $1",
    )
    .bind(client_id)
    .bind(error)
    .execute(pool)
    .await
    .map(|_| ())
}

pub async fn set_channel(
    pool: &PgPool,
    client_id: TenantId,
    channel_id: &str,
    channel_token: &str,
    resource_id: &str,
    expires_at: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE google_connections SET channel_id = $2, channel_token = $3, resource_id = $4, channel_expires_at = $5 \
         WHERE client_id = $1",
    )
    .bind(client_id)
    .bind(channel_id)
    .bind(channel_token)
    .bind(resource_id)
    .bind(expires_at)
    .execute(pool)
    .await
    .map(|_| ())
}

/// The connection a push channel belongs to, with the token it must echo.
pub async fn by_channel(pool: &PgPool, channel_id: &str) -> sqlx::Result<Option<(TenantId, Option<String>)>> {
    sqlx::query_as("SELECT client_id, channel_token FROM google_connections WHERE channel_id = $1")
        .bind(channel_id)
        .fetch_optional(pool)
        .await
}

/// Asks the worker for an incremental sync of the business's calendar.
pub async fn mark_sync_due(pool: &PgPool, client_id: TenantId) -> sqlx::Result<()> {
    sqlx::query("UPDATE google_connections SET sync_due = true WHERE client_id = $1")
        .bind(client_id)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Claims connected calendars that need a sync, or whose push channel ends before
/// `renew_before` (or never opened), for `lease_secs`.
pub async fn claim_syncs(
    pool: &PgPool,
    now: DateTime<Utc>,
    renew_before: DateTime<Utc>,
    limit: i64,
    lease_secs: i64,
) -> sqlx::Result<Vec<Connection>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH due AS ( \
             SELECT client_id FROM google_connections \
             WHERE status = 'connected' AND (sync_lease_until IS NULL OR sync_lease_until < $1) \
                 AND (sync_due OR channel_expires_at IS NULL OR channel_expires_at < $2) \
             ORDER BY last_synced_at NULLS FIRST LIMIT $3 FOR UPDATE SKIP LOCKED \
         ) \
         UPDATE google_connections c SET sync_lease_until = $1 + make_interval(secs => $4), sync_due = false \
         FROM due WHERE c.client_id = due.client_id RETURNING {}",
        COLUMNS.split(", ").map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ")
    )))
    .bind(now)
    .bind(renew_before)
    .bind(limit)
    .bind(lease_secs as f64)
    .fetch_all(pool)
    .await
}

/// Ends a sync's claim, recording an error (and asking for another sync) when it failed.
pub async fn release_sync(pool: &PgPool, client_id: TenantId, error: Option<&str>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE google_connections SET sync_lease_until = NULL, last_error = $2, \
             sync_due = sync_due OR $2 IS NOT NULL WHERE client_id = $1",
    )
    .bind(client_id)
    .bind(error)
    .execute(pool)
    .await
    .map(|_| ())
}

/// An interval the owner is busy in Google.
#[derive(Debug, Clone)]
pub struct BusyEvent {
    pub event_id: String,
    pub summary: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// Applies one sync's results in one transaction: on a full sync the copy is replaced,
/// otherwise `removed` events go and `busy` ones are written; then the sync token.
pub async fn apply_sync(
    pool: &PgPool,
    client_id: TenantId,
    full: bool,
    busy: &[BusyEvent],
    removed: &[String],
    sync_token: Option<&str>,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    if full {
        sqlx::query("DELETE FROM google_busy WHERE client_id = $1").bind(client_id).execute(&mut *tx).await?;
    }
    if !removed.is_empty() {
        sqlx::query("DELETE FROM google_busy WHERE client_id = $1 AND event_id = ANY($2)")
            .bind(client_id)
            .bind(removed)
            .execute(&mut *tx)
            .await?;
    }
    for b in busy {
        sqlx::query(
            "INSERT INTO google_busy (client_id, event_id, summary, starts_at, ends_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (client_id, event_id) DO UPDATE SET summary = EXCLUDED.summary, \
                 starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at",
        )
        .bind(client_id)
        .bind(&b.event_id)
        .bind(&b.summary)
        .bind(b.starts_at)
        .bind(b.ends_at)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE google_connections SET sync_token = $2, last_synced_at = $3, last_error = NULL WHERE client_id = $1",
    )
    .bind(client_id)
    .bind(sync_token)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Forgets the sync token (Google said 410): the next sync is a full one.
pub async fn forget_sync_token(pool: &PgPool, client_id: TenantId) -> sqlx::Result<()> {
    sqlx::query("UPDATE google_connections SET sync_token = NULL, sync_due = true WHERE client_id = $1")
        .bind(client_id)
        .execute(pool)
        .await
        .map(|_| ())
}

/// The owner's Google busy intervals overlapping `[from, to)`.
pub async fn busy_between(
    conn: &mut PgConnection,
    client_id: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<Busy>> {
    let rows: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT starts_at, ends_at FROM google_busy WHERE client_id = $1 AND starts_at < $3 AND ends_at > $2 \
         ORDER BY starts_at",
    )
    .bind(client_id)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(starts_at, ends_at)| Busy { starts_at, ends_at }).collect())
}

/// A Google event over one of the business's live appointments.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Conflict {
    pub summary: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub appointment_id: AppointmentId,
    pub customer_name: String,
    pub appointment_starts_at: DateTime<Utc>,
}

/// Upcoming conflicts, soonest first.
pub async fn conflicts(
    conn: &mut PgConnection,
    client_id: TenantId,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<Conflict>> {
    sqlx::query_as(
        "SELECT g.summary, g.starts_at, g.ends_at, a.id AS appointment_id, a.customer_name, \
             a.starts_at AS appointment_starts_at \
         FROM google_busy g JOIN appointments a ON a.client_id = g.client_id \
             AND a.status IN ('confirmed', 'pending') AND a.starts_at < g.ends_at AND a.ends_at > g.starts_at \
         WHERE g.client_id = $1 AND a.ends_at > $2 ORDER BY a.starts_at, g.starts_at LIMIT 50",
    )
    .bind(client_id)
    .bind(now)
    .fetch_all(conn)
    .await
}

/// No push channel for now (Google refused one): the worker looks again at `until`.
pub async fn defer_channel(pool: &PgPool, client_id: TenantId, until: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query("UPDATE google_connections SET channel_expires_at = $2 WHERE client_id = $1")
        .bind(client_id)
        .bind(until)
        .execute(pool)
        .await
        .map(|_| ())
}
