//! API keys: a row per key, found by the SHA-256 of the bearer token (the token itself is
//! never stored), scoped to one tenant. Revoking keeps the row, stamped.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgConnection, PgPool};
use utoipa::ToSchema;

use crate::domain::ids::{TenantId, UserId};

/// A key as its owner sees it in the list: never the key itself.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    /// The key's first characters, to tell keys apart.
    #[schema(example = "rpk_4Jx9")]
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    /// To the minute: a key in steady use is not written on every request.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Who a live key acts for.
#[derive(Debug, Clone, FromRow)]
pub struct KeyHolder {
    pub key_id: i64,
    pub user_id: UserId,
    pub client_id: TenantId,
    pub email: String,
    pub last_used_at: Option<DateTime<Utc>>,
}

pub async fn insert(
    conn: &mut PgConnection,
    client_id: TenantId,
    created_by: UserId,
    name: &str,
    prefix: &str,
    key_hash: &[u8],
) -> sqlx::Result<ApiKey> {
    sqlx::query_as(
        "INSERT INTO api_keys (client_id, created_by, name, prefix, key_hash) VALUES ($1, $2, $3, $4, $5) \
         RETURNING id, name, prefix, created_at, last_used_at, revoked_at",
    )
    .bind(client_id)
    .bind(created_by)
    .bind(name)
    .bind(prefix)
    .bind(key_hash)
    .fetch_one(conn)
    .await
}

/// The tenant's keys, newest first, revoked ones included.
pub async fn list(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<Vec<ApiKey>> {
    sqlx::query_as(
        "SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys \
         WHERE client_id = $1 ORDER BY created_at DESC, id DESC",
    )
    .bind(client_id)
    .fetch_all(conn)
    .await
}

/// Revokes one of the tenant's keys; `None` when the tenant has no such key, the key as it
/// now stands otherwise (revoking twice keeps the first time).
pub async fn revoke(conn: &mut PgConnection, client_id: TenantId, id: i64) -> sqlx::Result<Option<ApiKey>> {
    sqlx::query_as(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE client_id = $1 AND id = $2 \
         RETURNING id, name, prefix, created_at, last_used_at, revoked_at",
    )
    .bind(client_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The holder of an unrevoked key of an open account.
pub async fn find(pool: &PgPool, key_hash: &[u8]) -> sqlx::Result<Option<KeyHolder>> {
    sqlx::query_as(
        "SELECT k.id AS key_id, k.created_by AS user_id, k.client_id, u.email, k.last_used_at \
         FROM api_keys k JOIN users u ON u.id = k.created_by JOIN clients c ON c.id = k.client_id \
         WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND c.closed_at IS NULL",
    )
    .bind(key_hash)
    .fetch_optional(pool)
    .await
}

/// Notes that a key was used, at most once a minute per key.
pub async fn touch(pool: &PgPool, key_id: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE api_keys SET last_used_at = now() \
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
    )
    .bind(key_id)
    .execute(pool)
    .await
    .map(|_| ())
}
