//! The `state` of each OAuth consent in progress (Google Calendar, GoHighLevel), bound to
//! the session that started it, good once and for 15 minutes.

use sqlx::{PgConnection, PgPool};

use crate::domain::ids::TenantId;

/// [`save`] in a transaction of the business's own.
pub async fn remember(
    pool: &PgPool,
    vendor: &str,
    state: &str,
    client_id: TenantId,
    session_csrf: &str,
) -> sqlx::Result<()> {
    let mut tx = super::begin_tenant(pool, client_id).await?;
    save(&mut tx, vendor, state, client_id, session_csrf).await?;
    tx.commit().await
}

/// Whether `state` was handed out (under 15 minutes ago) to the session with
/// `session_csrf` of the business; it is used up either way.
pub async fn redeem(
    pool: &PgPool,
    vendor: &str,
    state: &str,
    client_id: TenantId,
    session_csrf: &str,
) -> sqlx::Result<bool> {
    let mut tx = super::begin_tenant(pool, client_id).await?;
    let bound = take(&mut tx, vendor, state, client_id).await?;
    tx.commit().await?;
    Ok(bound.as_deref() == Some(session_csrf))
}

/// Remembers the `state` of a consent with `vendor`, started by the session with
/// `session_csrf`; forgets consents over an hour old.
pub async fn save(
    conn: &mut PgConnection,
    vendor: &str,
    state: &str,
    client_id: TenantId,
    session_csrf: &str,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM oauth_states WHERE created_at < now() - interval '1 hour'").execute(&mut *conn).await?;
    sqlx::query("INSERT INTO oauth_states (state, client_id, session_csrf, vendor) VALUES ($1, $2, $3, $4)")
        .bind(state)
        .bind(client_id)
        .bind(session_csrf)
        .bind(vendor)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Takes (once) a consent's `state` with `vendor` if it is under 15 minutes old: the
/// CSRF token of the session that started it.
pub async fn take(
    conn: &mut PgConnection,
    vendor: &str,
    state: &str,
    client_id: TenantId,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "DELETE FROM oauth_states WHERE state = $1 AND client_id = $2 AND vendor = $3 \
             AND created_at > now() - interval '15 minutes' RETURNING session_csrf",
    )
    .bind(state)
    .bind(client_id)
    .bind(vendor)
    .fetch_optional(conn)
    .await
}
