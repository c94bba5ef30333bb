//! The owner's call summaries: their preferences (columns of `clients`), the one row per
//! ended call that says it was summarised, the daily digests and the missed-call texts.
//! Each claim is a unique row written in the transaction of what it sends.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{FromRow, PgConnection, PgPool};

use crate::domain::calls::{HandledBy, Outcome};
use crate::domain::ids::{CallId, TenantId};

/// How the owner wants to hear about calls, as stored.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize)]
pub struct StoredPreferences {
    /// `text`, `email`, `both` or `none`.
    pub summary_channel: String,
    /// `every_call`, `bookings_and_messages` or `daily_digest`.
    pub summary_scope: String,
    pub summary_digest_hour: i16,
    /// Empty or absent: the account's own e-mail.
    pub summary_email: Option<String>,
    /// `en` or `es`.
    pub summary_language: String,
}

pub async fn preferences(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<Option<StoredPreferences>> {
    sqlx::query_as(
        "SELECT summary_channel, summary_scope, summary_digest_hour, summary_email, summary_language \
         FROM clients WHERE id = $1",
    )
    .bind(client_id)
    .fetch_optional(conn)
    .await
}

pub async fn save_preferences(
    conn: &mut PgConnection,
    client_id: TenantId,
    p: &StoredPreferences,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE clients SET summary_channel = $2, summary_scope = $3, summary_digest_hour = $4, \
             summary_email = $5, summary_language = $6, updated_at = now() WHERE id = $1",
    )
    .bind(client_id)
    .bind(&p.summary_channel)
    .bind(&p.summary_scope)
    .bind(p.summary_digest_hour)
    .bind(p.summary_email.as_deref().filter(|e| !e.is_empty()))
    .bind(&p.summary_language)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Where the owner's summary e-mails go: the address chosen for them, else the account's.
pub async fn owner_email(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT COALESCE(NULLIF(trim(c.summary_email), ''), NULLIF(trim(u.email), ''), NULLIF(trim(c.owner_email), '')) \
         FROM clients c LEFT JOIN users u ON u.id = c.user_id WHERE c.id = $1",
    )
    .bind(client_id)
    .fetch_optional(conn)
    .await
    .map(Option::flatten)
}

/// Ended calls with no summary row yet, oldest first. A call counts as ended once its
/// conversation was saved (the stream's id is written then) or `settle` after it ended,
/// so a status callback that beats the saved transcript does not summarise half a call.
/// Only the last week is looked at, so the scan stays small however long the history; a
/// summary a week late would be no use to the owner anyway.
pub async fn unsummarised(pool: &PgPool, settle: std::time::Duration, limit: i64) -> sqlx::Result<Vec<CallId>> {
    sqlx::query_scalar(
        "SELECT c.id FROM calls c \
         WHERE c.ended_at IS NOT NULL AND c.ended_at > now() - interval '7 days' \
           AND (c.stream_sid IS NOT NULL OR c.ended_at < now() - make_interval(secs => $1)) \
           AND NOT EXISTS (SELECT 1 FROM call_summaries s WHERE s.call_id = c.id) \
         ORDER BY c.ended_at, c.id LIMIT $2",
    )
    .bind(settle.as_secs_f64())
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Takes the call for summarising. `false`: another instance has (or had) it. The row
/// stays locked until the transaction ends, so a second claimant waits, then gets `false`.
pub async fn claim(conn: &mut PgConnection, call_id: CallId, client_id: TenantId) -> sqlx::Result<bool> {
    let claimed: Option<i64> = sqlx::query_scalar(
        "INSERT INTO call_summaries (call_id, client_id, outcome) VALUES ($1, $2, 'sent') \
         ON CONFLICT (call_id) DO NOTHING RETURNING call_id",
    )
    .bind(call_id)
    .bind(client_id)
    .fetch_optional(conn)
    .await?;
    Ok(claimed.is_some())
}

/// Records what the claim of a call came to.
pub async fn record(
    conn: &mut PgConnection,
    call_id: CallId,
    outcome: &str,
    summary: &str,
    source: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE call_summaries SET outcome = $2, summary = $3, source = $4 WHERE call_id = $1")
        .bind(call_id)
        .bind(outcome)
        .bind(summary)
        .bind(source)
        .execute(conn)
        .await
        .map(|_| ())
}

/// What a summary is written from.
#[derive(Debug, Clone, FromRow)]
pub struct EndedCall {
    pub id: CallId,
    pub client_id: TenantId,
    pub call_sid: String,
    pub from_number: String,
    pub caller_name: Option<String>,
    pub handled_by: HandledBy,
    pub outcome: Outcome,
    pub language: String,
    pub started_at: DateTime<Utc>,
    pub duration_seconds: Option<i32>,
}

pub async fn ended_call(conn: &mut PgConnection, call_id: CallId) -> sqlx::Result<Option<EndedCall>> {
    sqlx::query_as(
        "SELECT c.id, c.client_id, c.call_sid, c.from_number, NULLIF(trim(k.name), '') AS caller_name, \
                c.handled_by, c.outcome, c.language, c.started_at, \
                COALESCE(c.duration_seconds, extract(epoch FROM c.ended_at - c.started_at)::integer) AS duration_seconds \
         FROM calls c LEFT JOIN contacts k ON k.id = c.contact_id WHERE c.id = $1",
    )
    .bind(call_id)
    .fetch_optional(conn)
    .await
}

/// The message the caller left during the call, if any.
pub async fn left_message(conn: &mut PgConnection, call_id: CallId) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT body FROM messages WHERE call_id = $1 AND kind = 'voice_message' AND direction = 'inbound' \
         ORDER BY id LIMIT 1",
    )
    .bind(call_id)
    .fetch_optional(conn)
    .await
}

/// When the appointment booked during the call starts, if one was.
pub async fn booked_start(conn: &mut PgConnection, call_id: CallId) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT starts_at FROM appointments WHERE call_id = $1 AND status <> 'cancelled' ORDER BY id DESC LIMIT 1",
    )
    .bind(call_id)
    .fetch_optional(conn)
    .await
}

/// What the caller said, in order, and the intents recognised in it.
pub async fn caller_lines(conn: &mut PgConnection, call_id: CallId) -> sqlx::Result<Vec<(String, Option<String>)>> {
    sqlx::query_as("SELECT text, intent FROM call_turns WHERE call_id = $1 AND speaker = 'caller' ORDER BY seq")
        .bind(call_id)
        .fetch_all(conn)
        .await
}

pub async fn is_blocked(conn: &mut PgConnection, client_id: TenantId, phone: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM blocked_numbers WHERE client_id = $1 AND phone = $2)")
        .bind(client_id)
        .bind(phone)
        .fetch_one(conn)
        .await
}

/// Takes the day's one missed-call text to `phone`. `false`: it was already sent today.
pub async fn claim_missed_call_text(
    conn: &mut PgConnection,
    client_id: TenantId,
    phone: &str,
    day: NaiveDate,
    call_id: CallId,
) -> sqlx::Result<bool> {
    let claimed: Option<String> = sqlx::query_scalar(
        "INSERT INTO missed_call_texts (client_id, phone, day, call_id) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (client_id, phone, day) DO NOTHING RETURNING phone",
    )
    .bind(client_id)
    .bind(phone)
    .bind(day)
    .bind(call_id)
    .fetch_optional(conn)
    .await?;
    Ok(claimed.is_some())
}

/// Tenants whose owner chose the daily digest.
pub async fn digest_tenants(pool: &PgPool) -> sqlx::Result<Vec<TenantId>> {
    sqlx::query_scalar("SELECT id FROM clients WHERE summary_scope = 'daily_digest' ORDER BY id").fetch_all(pool).await
}

/// Takes the tenant's digest of `day`. `false`: it was already sent.
pub async fn claim_digest(conn: &mut PgConnection, client_id: TenantId, day: NaiveDate) -> sqlx::Result<bool> {
    let claimed: Option<NaiveDate> = sqlx::query_scalar(
        "INSERT INTO summary_digests (client_id, day, calls) VALUES ($1, $2, 0) \
         ON CONFLICT (client_id, day) DO NOTHING RETURNING day",
    )
    .bind(client_id)
    .bind(day)
    .fetch_optional(conn)
    .await?;
    Ok(claimed.is_some())
}

/// The summaries of calls kept for a digest and not in one yet, oldest first, now marked
/// as in the digest of `day`.
pub async fn take_for_digest(
    conn: &mut PgConnection,
    client_id: TenantId,
    day: NaiveDate,
) -> sqlx::Result<Vec<String>> {
    let lines: Vec<(String,)> = sqlx::query_as(
        "WITH taken AS ( \
             UPDATE call_summaries SET digest_day = $2 \
             WHERE client_id = $1 AND outcome = 'in_digest' AND digest_day IS NULL \
             RETURNING summary, created_at, call_id) \
         SELECT summary FROM taken ORDER BY created_at, call_id",
    )
    .bind(client_id)
    .bind(day)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query("UPDATE summary_digests SET calls = $3 WHERE client_id = $1 AND day = $2")
        .bind(client_id)
        .bind(day)
        .bind(lines.len() as i32)
        .execute(conn)
        .await?;
    Ok(lines.into_iter().map(|(s,)| s).collect())
}
