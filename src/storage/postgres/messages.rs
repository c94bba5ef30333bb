//! Messages: SMS in and out. Without Twilio credentials outbound ones stay `queued`
//! here (the outbox), so nothing is silently dropped.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};

#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub client_id: i64,
    pub contact_id: Option<i64>,
    pub call_id: Option<i64>,
    pub direction: &'a str,
    pub kind: &'a str,
    pub to_number: &'a str,
    pub from_number: &'a str,
    pub body: &'a str,
}

#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct Message {
    pub id: i64,
    pub client_id: i64,
    pub call_id: Option<i64>,
    pub direction: String,
    pub kind: String,
    pub to_number: String,
    pub from_number: String,
    pub body: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

/// Queues a message in the outbox.
pub async fn queue(conn: &mut PgConnection, m: &NewMessage<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO messages (client_id, contact_id, call_id, direction, kind, to_number, from_number, body, status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
                 CASE WHEN $4 = 'inbound' THEN 'received' ELSE 'queued' END) RETURNING id",
    )
    .bind(m.client_id)
    .bind(m.contact_id)
    .bind(m.call_id)
    .bind(m.direction)
    .bind(m.kind)
    .bind(m.to_number)
    .bind(m.from_number)
    .bind(m.body)
    .fetch_one(conn)
    .await
}

pub async fn for_call(pool: &PgPool, call_id: i64) -> sqlx::Result<Vec<Message>> {
    sqlx::query_as(
        "SELECT id, client_id, call_id, direction, kind, to_number, from_number, body, status, created_at \
         FROM messages WHERE call_id = $1 ORDER BY id",
    )
    .bind(call_id)
    .fetch_all(pool)
    .await
}
