//! Calls and their transcript turns.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};

use crate::domain::calls::{HandledBy, Outcome, Speaker};
use crate::domain::ids::{CallId, ContactId, TenantId};

/// A call row.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct Call {
    pub id: CallId,
    pub client_id: TenantId,
    pub contact_id: Option<ContactId>,
    pub call_sid: String,
    pub from_number: String,
    pub to_number: String,
    pub handled_by: HandledBy,
    pub status: String,
    pub outcome: Outcome,
    pub language: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<i32>,
    pub cost_cents: i64,
    pub failures: String,
}

const COLUMNS: &str = "id, client_id, contact_id, call_sid, from_number, to_number, handled_by, status, \
     outcome, language, started_at, ended_at, duration_seconds, cost_cents, failures";

/// A new incoming call, as the voice webhook sees it.
#[derive(Debug, Clone)]
pub struct NewCall<'a> {
    pub client_id: TenantId,
    pub call_sid: &'a str,
    pub from_number: &'a str,
    pub to_number: &'a str,
    pub handled_by: HandledBy,
    pub status: &'a str,
}

/// Records a call; a retried webhook for the same `CallSid` returns the existing row's id.
pub async fn upsert(conn: &mut PgConnection, call: &NewCall<'_>) -> sqlx::Result<CallId> {
    sqlx::query_scalar(
        "INSERT INTO calls (client_id, call_sid, from_number, to_number, handled_by, status) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (call_sid) DO UPDATE SET status = calls.status RETURNING id",
    )
    .bind(call.client_id)
    .bind(call.call_sid)
    .bind(call.from_number)
    .bind(call.to_number)
    .bind(call.handled_by)
    .bind(call.status)
    .fetch_one(conn)
    .await
}

pub async fn find_by_sid(pool: &PgPool, call_sid: &str) -> sqlx::Result<Option<Call>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM calls WHERE call_sid = $1")))
        .bind(call_sid)
        .fetch_optional(pool)
        .await
}

pub async fn recent(pool: &PgPool, limit: i64) -> sqlx::Result<Vec<Call>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM calls ORDER BY started_at DESC, id DESC LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Deletes one of the tenant's calls with everything that belongs only to it (transcript,
/// recording); bookings and messages it led to stay, unlinked. Returns whether it existed.
pub async fn delete(pool: &PgPool, client_id: TenantId, call_id: CallId) -> sqlx::Result<bool> {
    let mut tx = super::begin_tenant(pool, client_id).await?;
    let deleted = sqlx::query("DELETE FROM calls WHERE id = $1 AND client_id = $2")
        .bind(call_id)
        .bind(client_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(deleted > 0)
}

/// Statuses after which a call never changes again.
pub const FINAL_STATUSES: [&str; 5] = ["completed", "busy", "failed", "no-answer", "canceled"];

pub fn is_final_status(status: &str) -> bool {
    FINAL_STATUSES.contains(&status)
}

/// Twilio's final status callback. Idempotent: a retried callback changes nothing, and a
/// late `in-progress` never overwrites a final status.
pub async fn record_status(
    pool: &PgPool,
    call_sid: &str,
    status: &str,
    duration_seconds: Option<i32>,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE calls SET \
             status = CASE WHEN status IN ('completed', 'busy', 'failed', 'no-answer', 'canceled') \
                           THEN status ELSE $2 END, \
             duration_seconds = COALESCE(duration_seconds, $3), \
             ended_at = CASE WHEN $2 IN ('completed', 'busy', 'failed', 'no-answer', 'canceled') \
                             THEN COALESCE(ended_at, now()) ELSE ended_at END \
         WHERE call_sid = $1",
    )
    .bind(call_sid)
    .bind(status)
    .bind(duration_seconds)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// Links the caller's contact and records what the call achieved.
pub async fn set_outcome(conn: &mut PgConnection, call_id: CallId, outcome: Outcome) -> sqlx::Result<()> {
    sqlx::query("UPDATE calls SET outcome = $2 WHERE id = $1")
        .bind(call_id)
        .bind(outcome)
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn set_contact(conn: &mut PgConnection, call_id: CallId, contact_id: ContactId) -> sqlx::Result<()> {
    sqlx::query("UPDATE calls SET contact_id = $2 WHERE id = $1")
        .bind(call_id)
        .bind(contact_id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// What the end of a media stream writes to its call row.
#[derive(Debug, Clone, Copy)]
pub struct StreamEnd<'a> {
    pub stream_sid: &'a str,
    pub language: &'a str,
    pub failures: &'a str,
    /// The caller's contact, when known.
    pub contact_id: Option<ContactId>,
    /// What the call achieved; `None` keeps what is recorded (a hand-over marked earlier).
    pub outcome: Option<Outcome>,
}

/// Marks the media stream finished (the socket closed), whatever Twilio reports later,
/// with the caller's contact and the outcome, in one statement.
pub async fn finish_stream(conn: &mut PgConnection, call_id: CallId, end: &StreamEnd<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE calls SET stream_sid = $2, language = $3, failures = $4, \
             contact_id = COALESCE($5, contact_id), outcome = COALESCE($6, outcome), \
             ended_at = COALESCE(ended_at, now()), \
             status = CASE WHEN status IN ('ringing', 'in-progress') THEN 'completed' ELSE status END \
         WHERE id = $1",
    )
    .bind(call_id)
    .bind(end.stream_sid)
    .bind(end.language)
    .bind(end.failures)
    .bind(end.contact_id)
    .bind(end.outcome)
    .execute(conn)
    .await
    .map(|_| ())
}

/// One line of a transcript, with the latency figures of an agent turn.
#[derive(Debug, Clone, Default, FromRow, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Turn {
    pub seq: i32,
    pub speaker: Speaker,
    pub text: String,
    pub heard_text: Option<String>,
    pub interrupted: bool,
    pub intent: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub caller_stopped_at: Option<DateTime<Utc>>,
    pub stt_final_at: Option<DateTime<Utc>>,
    pub reply_ready_at: Option<DateTime<Utc>>,
    pub tts_first_byte_at: Option<DateTime<Utc>>,
    pub first_audio_sent_at: Option<DateTime<Utc>>,
    pub first_mark_at: Option<DateTime<Utc>>,
}

/// Writes (or rewrites, on a retried save) the turns of a call, all in one statement: a
/// call's save is one round trip for its transcript however long it was.
pub async fn save_turns(
    conn: &mut PgConnection,
    client_id: TenantId,
    call_id: CallId,
    turns: &[Turn],
) -> sqlx::Result<()> {
    if turns.is_empty() {
        return Ok(());
    }
    fn column<'a, T>(turns: &'a [Turn], f: impl Fn(&'a Turn) -> T) -> Vec<T> {
        turns.iter().map(f).collect()
    }
    sqlx::query(
        "INSERT INTO call_turns (client_id, call_id, seq, speaker, text, heard_text, interrupted, intent, \
             started_at, ended_at, caller_stopped_at, stt_final_at, reply_ready_at, tts_first_byte_at, \
             first_audio_sent_at, first_mark_at) \
         SELECT $1, $2, t.* FROM UNNEST($3::int4[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::text[], \
             $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[], $13::timestamptz[], \
             $14::timestamptz[], $15::timestamptz[], $16::timestamptz[]) AS t \
         ON CONFLICT (call_id, seq) DO UPDATE SET text = EXCLUDED.text, heard_text = EXCLUDED.heard_text, \
             interrupted = EXCLUDED.interrupted, intent = EXCLUDED.intent, ended_at = EXCLUDED.ended_at, \
             first_mark_at = EXCLUDED.first_mark_at",
    )
    .bind(client_id)
    .bind(call_id)
    .bind(column(turns, |t| t.seq))
    .bind(column(turns, |t| t.speaker.as_str()))
    .bind(column(turns, |t| t.text.as_str()))
    .bind(column(turns, |t| t.heard_text.as_deref()))
    .bind(column(turns, |t| t.interrupted))
    .bind(column(turns, |t| t.intent.as_deref()))
    .bind(column(turns, |t| t.started_at))
    .bind(column(turns, |t| t.ended_at))
    .bind(column(turns, |t| t.caller_stopped_at))
    .bind(column(turns, |t| t.stt_final_at))
    .bind(column(turns, |t| t.reply_ready_at))
    .bind(column(turns, |t| t.tts_first_byte_at))
    .bind(column(turns, |t| t.first_audio_sent_at))
    .bind(column(turns, |t| t.first_mark_at))
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn turns<'e>(conn: impl sqlx::PgExecutor<'e>, call_id: CallId) -> sqlx::Result<Vec<Turn>> {
    sqlx::query_as(
        "SELECT seq, speaker, text, heard_text, interrupted, intent, started_at, ended_at, caller_stopped_at, \
             stt_final_at, reply_ready_at, tts_first_byte_at, first_audio_sent_at, first_mark_at \
         FROM call_turns WHERE call_id = $1 ORDER BY seq",
    )
    .bind(call_id)
    .fetch_all(conn)
    .await
}
