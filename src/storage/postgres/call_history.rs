//! The owner's view of past calls: a filtered, paginated history and one call with its
//! transcript, bookings and messages. Every query runs on a tenant transaction
//! (`begin_tenant`) and names its `client_id` as well.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, Postgres, QueryBuilder};

use super::appointments::Appointment;
use super::calls::{Call, Turn};
use super::messages::Message;
use crate::domain::calls::{HandledBy, Outcome};
use crate::domain::ids::{CallId, TenantId};

/// What the history is narrowed to; every field is optional.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// Calls started at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Calls started before this instant.
    pub to: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    pub handled_by: Option<HandledBy>,
    /// Part of the caller's number or of their contact's name (case-insensitive).
    pub search: Option<String>,
}

/// One row of the history: the call and the name of its caller's contact, if known.
#[derive(Debug, Clone, FromRow)]
pub struct HistoryRow {
    pub call_sid: String,
    pub from_number: String,
    pub contact_name: Option<String>,
    pub handled_by: HandledBy,
    pub status: String,
    pub outcome: Outcome,
    pub started_at: DateTime<Utc>,
    pub duration_seconds: Option<i32>,
    pub cost_cents: i64,
}

fn push_filter(query: &mut QueryBuilder<Postgres>, client_id: TenantId, filter: &HistoryFilter) {
    query.push(" WHERE c.client_id = ").push_bind(client_id);
    if let Some(from) = filter.from {
        query.push(" AND c.started_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" AND c.started_at < ").push_bind(to);
    }
    if let Some(outcome) = &filter.outcome {
        query.push(" AND c.outcome = ").push_bind(*outcome);
    }
    if let Some(handled_by) = &filter.handled_by {
        query.push(" AND c.handled_by = ").push_bind(*handled_by);
    }
    if let Some(search) = &filter.search {
        // LIKE's own wildcards in what the owner typed are matched literally.
        let escaped = search.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let pattern = format!("%{escaped}%");
        query
            .push(" AND (c.from_number ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR k.name ILIKE ")
            .push_bind(pattern)
            .push(")");
    }
}

const FROM_CALLS: &str = " FROM calls c LEFT JOIN contacts k ON k.id = c.contact_id AND k.client_id = c.client_id";

/// One page of the tenant's calls, newest first, and how many match in all.
pub async fn page(
    conn: &mut PgConnection,
    client_id: TenantId,
    filter: &HistoryFilter,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<HistoryRow>, i64)> {
    let mut count = QueryBuilder::new("SELECT count(*)");
    count.push(FROM_CALLS);
    push_filter(&mut count, client_id, filter);
    let total: i64 = count.build_query_scalar().fetch_one(&mut *conn).await?;

    let mut rows = QueryBuilder::new(
        "SELECT c.call_sid, c.from_number, NULLIF(k.name, '') AS contact_name, c.handled_by, c.status, \
         c.outcome, c.started_at, c.duration_seconds, c.cost_cents",
    );
    rows.push(FROM_CALLS);
    push_filter(&mut rows, client_id, filter);
    rows.push(" ORDER BY c.started_at DESC, c.id DESC LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
    let rows = rows.build_query_as().fetch_all(&mut *conn).await?;
    Ok((rows, total))
}

/// One of the tenant's calls with the caller's contact name; `None` for another tenant's.
pub async fn find(
    conn: &mut PgConnection,
    client_id: TenantId,
    call_sid: &str,
) -> sqlx::Result<Option<(Call, Option<String>)>> {
    #[derive(FromRow)]
    struct Found {
        #[sqlx(flatten)]
        call: Call,
        contact_name: Option<String>,
    }
    let found: Option<Found> = sqlx::query_as(
        "SELECT c.id, c.client_id, c.contact_id, c.call_sid, c.from_number, c.to_number, c.handled_by, c.status, \
             c.outcome, c.language, c.started_at, c.ended_at, c.duration_seconds, c.cost_cents, c.failures, \
             NULLIF(k.name, '') AS contact_name \
         FROM calls c LEFT JOIN contacts k ON k.id = c.contact_id AND k.client_id = c.client_id \
         WHERE c.client_id = $1 AND c.call_sid = $2",
    )
    .bind(client_id)
    .bind(call_sid)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.map(|f| (f.call, f.contact_name)))
}

/// The transcript of one of the tenant's calls.
pub async fn turns(conn: &mut PgConnection, client_id: TenantId, call_id: CallId) -> sqlx::Result<Vec<Turn>> {
    sqlx::query_as(
        "SELECT seq, speaker, text, heard_text, interrupted, intent, started_at, ended_at, caller_stopped_at, \
             stt_final_at, reply_ready_at, tts_first_byte_at, first_audio_sent_at, first_mark_at \
         FROM call_turns WHERE client_id = $1 AND call_id = $2 ORDER BY seq",
    )
    .bind(client_id)
    .bind(call_id)
    .fetch_all(conn)
    .await
}

/// Appointments booked during one of the tenant's calls.
pub async fn appointments(
    conn: &mut PgConnection,
    client_id: TenantId,
    call_id: CallId,
) -> sqlx::Result<Vec<Appointment>> {
    sqlx::query_as(
        "SELECT id, client_id, contact_id, call_id, customer_name, customer_phone, starts_at, ends_at, status, \
             source, confirmation_code \
         FROM appointments WHERE client_id = $1 AND call_id = $2 ORDER BY id",
    )
    .bind(client_id)
    .bind(call_id)
    .fetch_all(conn)
    .await
}

/// Messages sent or taken during one of the tenant's calls.
pub async fn messages(conn: &mut PgConnection, client_id: TenantId, call_id: CallId) -> sqlx::Result<Vec<Message>> {
    sqlx::query_as(
        "SELECT id, client_id, call_id, direction, kind, to_number, from_number, body, status, created_at \
         FROM messages WHERE client_id = $1 AND call_id = $2 ORDER BY id",
    )
    .bind(client_id)
    .bind(call_id)
    .fetch_all(conn)
    .await
}

/// Whether the tenant has a recording for the call (without reading its bytes).
pub async fn has_recording(conn: &mut PgConnection, client_id: TenantId, call_id: CallId) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM call_recordings WHERE client_id = $1 AND call_id = $2)")
        .bind(client_id)
        .bind(call_id)
        .fetch_one(conn)
        .await
}
