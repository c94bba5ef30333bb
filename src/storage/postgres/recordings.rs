//! Call recordings: one Ogg Opus stream per call, stored with the call and deleted with it
//! (the foreign key cascades). Every query runs in a tenant-scoped transaction.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};

use super::begin_tenant;
use crate::domain::ids::{CallId, TenantId};

/// The media type every stored recording has.
pub const CONTENT_TYPE: &str = "audio/ogg";

/// A recording to store.
#[derive(Debug, Clone)]
pub struct NewRecording<'a> {
    pub client_id: TenantId,
    pub call_id: CallId,
    pub duration_ms: i64,
    /// An Ogg Opus stream.
    pub bytes: &'a [u8],
}

/// A stored recording.
#[derive(Debug, Clone, FromRow)]
pub struct Recording {
    pub call_id: CallId,
    pub client_id: TenantId,
    pub content_type: String,
    pub duration_ms: i64,
    pub bytes: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// Stores a call's recording; saving again (a retry) replaces it.
pub async fn save(pool: &PgPool, new: &NewRecording<'_>) -> sqlx::Result<()> {
    let mut tx = begin_tenant(pool, new.client_id).await?;
    sqlx::query(
        "INSERT INTO call_recordings (call_id, client_id, content_type, duration_ms, bytes) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (call_id) DO UPDATE SET duration_ms = EXCLUDED.duration_ms, bytes = EXCLUDED.bytes",
    )
    .bind(new.call_id)
    .bind(new.client_id)
    .bind(CONTENT_TYPE)
    .bind(new.duration_ms)
    .bind(new.bytes)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// The recording of one of the tenant's calls, if the call was recorded.
pub async fn find_for_call(pool: &PgPool, client_id: TenantId, call_id: CallId) -> sqlx::Result<Option<Recording>> {
    let mut tx = begin_tenant(pool, client_id).await?;
    let found = sqlx::query_as(
        "SELECT call_id, client_id, content_type, duration_ms, bytes, created_at \
         FROM call_recordings WHERE call_id = $1 AND client_id = $2",
    )
    .bind(call_id)
    .bind(client_id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(found)
}
