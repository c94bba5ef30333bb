//! Messages: SMS in and out. Without Twilio credentials outbound ones stay `queued`
//! here (the outbox), so nothing is silently dropped.

use crate::domain::ids::{CallId, ContactId, MessageId, TenantId};
use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};

pub use crate::domain::messages::Direction;

#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub client_id: TenantId,
    pub contact_id: Option<ContactId>,
    pub call_id: Option<CallId>,
    pub direction: Direction,
    pub kind: &'a str,
    pub to_number: &'a str,
    pub from_number: &'a str,
    pub body: &'a str,
}

#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct Message {
    pub id: MessageId,
    pub client_id: TenantId,
    pub call_id: Option<CallId>,
    pub direction: Direction,
    pub kind: String,
    pub to_number: String,
    pub from_number: String,
    pub body: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

/// Queues a message in the outbox.
pub async fn queue(conn: &mut PgConnection, m: &NewMessage<'_>) -> sqlx::Result<MessageId> {
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

pub async fn for_call(pool: &PgPool, call_id: CallId) -> sqlx::Result<Vec<Message>> {
    sqlx::query_as(
        "SELECT id, client_id, call_id, direction, kind, to_number, from_number, body, status, created_at \
         FROM messages WHERE call_id = $1 ORDER BY id",
    )
    .bind(call_id)
    .fetch_all(pool)
    .await
}

/// The latest message of one contact's conversation.
#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Thread {
    #[schema(value_type = i64)]
    pub contact_id: ContactId,
    pub contact_name: String,
    pub contact_phone: String,
    pub messages: i64,
    pub last_body: String,
    #[schema(value_type = String)]
    pub last_direction: Direction,
    pub last_status: String,
    pub last_at: DateTime<Utc>,
}

/// One message of a conversation as the CRM shows it.
#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Line {
    #[schema(value_type = i64)]
    pub id: MessageId,
    #[schema(value_type = Option<i64>)]
    pub contact_id: Option<ContactId>,
    /// `inbound` or `outbound`.
    #[schema(value_type = String)]
    pub direction: Direction,
    /// `sms`, `voice_message`, `booking_confirmation`, ...
    pub kind: String,
    pub to_number: String,
    pub from_number: String,
    pub body: String,
    /// `queued` (waiting in the outbox), `sent`, `delivered`, `failed`, `received`.
    pub status: String,
    pub created_at: DateTime<Utc>,
}

const LINE_COLUMNS: &str = "id, contact_id, direction, kind, to_number, from_number, body, status, created_at";

/// The tenant's conversations, one per contact, latest first.
pub async fn threads(conn: &mut PgConnection, client_id: TenantId, limit: i64) -> sqlx::Result<Vec<Thread>> {
    sqlx::query_as(
        "SELECT t.contact_id, c.name AS contact_name, c.phone AS contact_phone, t.messages, t.last_body, \
                t.last_direction, t.last_status, t.last_at \
         FROM ( \
             SELECT DISTINCT ON (contact_id) contact_id, count(*) OVER (PARTITION BY contact_id) AS messages, \
                    body AS last_body, direction AS last_direction, status AS last_status, created_at AS last_at \
             FROM messages WHERE client_id = $1 AND contact_id IS NOT NULL \
             ORDER BY contact_id, created_at DESC, id DESC \
         ) AS t JOIN contacts c ON c.id = t.contact_id AND c.client_id = $1 \
         ORDER BY t.last_at DESC, t.contact_id DESC LIMIT $2",
    )
    .bind(client_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// One contact's messages, oldest first (a conversation reads downwards).
pub async fn thread(
    conn: &mut PgConnection,
    client_id: TenantId,
    contact_id: ContactId,
    limit: i64,
) -> sqlx::Result<Vec<Line>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM (SELECT {LINE_COLUMNS} FROM messages WHERE client_id = $1 AND contact_id = $2 \
             ORDER BY created_at DESC, id DESC LIMIT $3) AS latest ORDER BY created_at, id"
    )))
    .bind(client_id)
    .bind(contact_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Messages tied to no contact (alerts texted to the owner, messages from hidden
/// numbers), newest first.
pub async fn without_contact(conn: &mut PgConnection, client_id: TenantId, limit: i64) -> sqlx::Result<Vec<Line>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {LINE_COLUMNS} FROM messages WHERE client_id = $1 AND contact_id IS NULL \
         ORDER BY created_at DESC, id DESC LIMIT $2"
    )))
    .bind(client_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn find_line(conn: &mut PgConnection, client_id: TenantId, id: MessageId) -> sqlx::Result<Option<Line>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {LINE_COLUMNS} FROM messages WHERE client_id = $1 AND id = $2")))
        .bind(client_id)
        .bind(id)
        .fetch_optional(conn)
        .await
}
