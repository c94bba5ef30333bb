//! A business's GoHighLevel connection (one location; tokens as sealed text only) and the
//! links from our contacts and appointments to GoHighLevel's ids. The refresh token
//! rotates on every use, so it is only ever used under [`lock`], and the new one is stored
//! in that same transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgConnection};

use crate::domain::ids::TenantId;
use crate::domain::names::named;
use crate::vendors::gohighlevel::Calendar;

named! {
    /// Whether GoHighLevel still accepts the connection.
    pub enum GhlStatus {
        Connected = "connected",
        /// GoHighLevel refused the refresh (the app was uninstalled): the owner must connect again.
        Reconnect = "reconnect",
    }
}

impl TryFrom<String> for GhlStatus {
    type Error = crate::domain::names::UnknownName;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct GhlConnection {
    pub client_id: TenantId,
    pub location_id: String,
    pub calendar_id: Option<String>,
    pub calendar_name: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: GhlStatus,
    pub refresh_token_sealed: String,
    pub access_token_sealed: Option<String>,
    pub access_expires_at: Option<DateTime<Utc>>,
    pub last_sent_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl GhlConnection {
    pub fn needs_reconnect(&self) -> bool {
        self.status == GhlStatus::Reconnect
    }
}

const COLUMNS: &str = "client_id, location_id, calendar_id, calendar_name, status, refresh_token_sealed, \
     access_token_sealed, access_expires_at, last_sent_at, last_error";

named! {
    /// What a link is from.
    pub enum LinkKind {
        /// Keyed by the contact's phone (E.164).
        Contact = "contact",
        /// Keyed by our appointment id.
        Appointment = "appointment",
    }
}

/// Stores a new or renewed install. Links made for another location are forgotten, and
/// changes that waited for a reconnect go now.
#[allow(clippy::too_many_arguments)]
pub async fn connect(
    conn: &mut PgConnection,
    client_id: TenantId,
    location_id: &str,
    company_id: Option<&str>,
    refresh_token_sealed: &str,
    access_token_sealed: &str,
    access_expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM ghl_links WHERE client_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM ghl_connections WHERE client_id = $1 AND location_id = $2)",
    )
    .bind(client_id)
    .bind(location_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO ghl_connections (client_id, location_id, company_id, refresh_token_sealed, access_token_sealed, \
             access_expires_at, refreshed_at) VALUES ($1, $2, $3, $4, $5, $6, now()) \
         ON CONFLICT (client_id) DO UPDATE SET \
             calendar_id = CASE WHEN ghl_connections.location_id = EXCLUDED.location_id \
                 THEN ghl_connections.calendar_id END, \
             calendar_name = CASE WHEN ghl_connections.location_id = EXCLUDED.location_id \
                 THEN ghl_connections.calendar_name END, \
             location_id = EXCLUDED.location_id, company_id = EXCLUDED.company_id, status = 'connected', \
             refresh_token_sealed = EXCLUDED.refresh_token_sealed, access_token_sealed = EXCLUDED.access_token_sealed, \
             access_expires_at = EXCLUDED.access_expires_at, refreshed_at = now(), last_error = NULL, \
             connected_at = now()",
    )
    .bind(client_id)
    .bind(location_id)
    .bind(company_id)
    .bind(refresh_token_sealed)
    .bind(access_token_sealed)
    .bind(access_expires_at)
    .execute(&mut *conn)
    .await?;
    super::sync_jobs::wake(conn, client_id, super::sync_jobs::Target::GoHighLevel).await
}

pub async fn connection(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<Option<GhlConnection>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM ghl_connections WHERE client_id = $1")))
        .bind(client_id)
        .fetch_optional(conn)
        .await
}

/// The connection, locked until the transaction ends: the only way to read the refresh
/// token that is about to be used.
pub async fn lock(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<Option<GhlConnection>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM ghl_connections WHERE client_id = $1 FOR UPDATE"
    )))
    .bind(client_id)
    .fetch_optional(conn)
    .await
}

/// Stores the tokens a refresh returned (under [`lock`]).
pub async fn save_tokens(
    conn: &mut PgConnection,
    client_id: TenantId,
    refresh_token_sealed: &str,
    access_token_sealed: &str,
    access_expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE ghl_connections SET refresh_token_sealed = $2, access_token_sealed = $3, access_expires_at = $4, \
             refreshed_at = now() WHERE client_id = $1",
    )
    .bind(client_id)
    .bind(refresh_token_sealed)
    .bind(access_token_sealed)
    .bind(access_expires_at)
    .execute(conn)
    .await
    .map(|_| ())
}

/// GoHighLevel refused the grant: the owner must connect again.
pub async fn mark_reconnect(conn: &mut PgConnection, client_id: TenantId, error: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE ghl_connections SET status = 'reconnect', last_error = $2, access_token_sealed = NULL \
         WHERE client_id = $1",
    )
    .bind(client_id)
    .bind(error)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Remembers the location's calendars (to choose from on the Integrations page).
pub async fn set_calendars(conn: &mut PgConnection, client_id: TenantId, calendars: &[Calendar]) -> sqlx::Result<()> {
    let list = serde_json::to_value(calendars).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query("UPDATE ghl_connections SET calendars = $2 WHERE client_id = $1")
        .bind(client_id)
        .bind(list)
        .execute(conn)
        .await
        .map(|_| ())
}

/// The location's calendars as last listed.
pub async fn calendars(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<Vec<Calendar>> {
    let list: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT calendars FROM ghl_connections WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(conn)
            .await?;
    Ok(list.and_then(|l| serde_json::from_value(l).ok()).unwrap_or_default())
}

/// The calendar bookings go to.
pub async fn set_calendar(
    conn: &mut PgConnection,
    client_id: TenantId,
    calendar_id: &str,
    calendar_name: &str,
) -> sqlx::Result<bool> {
    let changed = sqlx::query("UPDATE ghl_connections SET calendar_id = $2, calendar_name = $3 WHERE client_id = $1")
        .bind(client_id)
        .bind(calendar_id)
        .bind(calendar_name)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    super::sync_jobs::wake(conn, client_id, super::sync_jobs::Target::GoHighLevel).await?;
    Ok(changed > 0)
}

/// Records how the last job went, for the Integrations page.
pub async fn record(conn: &mut PgConnection, client_id: TenantId, error: Option<&str>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE ghl_connections SET last_error = $2, \
             last_sent_at = CASE WHEN $2 IS NULL THEN now() ELSE last_sent_at END WHERE client_id = $1",
    )
    .bind(client_id)
    .bind(error)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Removes the connection, its links and its waiting jobs; `true` if there was one.
pub async fn disconnect(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<bool> {
    let removed = sqlx::query("DELETE FROM ghl_connections WHERE client_id = $1")
        .bind(client_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM ghl_links WHERE client_id = $1").bind(client_id).execute(&mut *conn).await?;
    super::sync_jobs::drop_all(conn, client_id, super::sync_jobs::Target::GoHighLevel).await?;
    Ok(removed > 0)
}

/// GoHighLevel's id for one of ours.
pub async fn link(
    conn: &mut PgConnection,
    client_id: TenantId,
    kind: LinkKind,
    local_key: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT remote_id FROM ghl_links WHERE client_id = $1 AND kind = $2 AND local_key = $3")
        .bind(client_id)
        .bind(kind.as_str())
        .bind(local_key)
        .fetch_optional(conn)
        .await
}

/// Remembers GoHighLevel's id for one of ours.
pub async fn set_link(
    conn: &mut PgConnection,
    client_id: TenantId,
    kind: LinkKind,
    local_key: &str,
    remote_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO ghl_links (client_id, kind, local_key, remote_id) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (client_id, kind, local_key) DO UPDATE SET remote_id = EXCLUDED.remote_id",
    )
    .bind(client_id)
    .bind(kind.as_str())
    .bind(local_key)
    .bind(remote_id)
    .execute(conn)
    .await
    .map(|_| ())
}

/// What the Integrations page shows of the connection.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GhlSummary {
    pub connected: bool,
    pub reconnect: bool,
    pub location_id: Option<String>,
    pub calendar_id: Option<String>,
    pub calendar_name: Option<String>,
    pub last_sent_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl From<Option<GhlConnection>> for GhlSummary {
    fn from(c: Option<GhlConnection>) -> Self {
        match c {
            None => GhlSummary::default(),
            Some(c) => GhlSummary {
                connected: true,
                reconnect: c.needs_reconnect(),
                location_id: Some(c.location_id),
                calendar_id: c.calendar_id,
                calendar_name: c.calendar_name,
                last_sent_at: c.last_sent_at,
                last_error: c.last_error,
            },
        }
    }
}
