//! The text outbox as the sending worker and Twilio's callbacks see it: claiming due
//! texts (`FOR UPDATE SKIP LOCKED`, so instances sharing the database never claim the
//! same one), recording each attempt's outcome, delivery status that only moves forward,
//! and the numbers that opted out. Decides nothing about when to retry.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};

use crate::domain::ids::{MessageId, TenantId};

/// A text claimed for sending: marked `sending` with its attempt counted, committed
/// before Twilio is called.
#[derive(Debug, Clone, FromRow)]
pub struct Claimed {
    pub id: MessageId,
    pub client_id: TenantId,
    pub to_number: String,
    /// The tenant's number now (it may have been provisioned after the text was queued).
    pub from_number: String,
    pub body: String,
    /// Attempts so far, this one included.
    pub attempts: i32,
}

/// Claims up to `limit` outbound texts that are due: queued ones whose time has come, and
/// ones left `sending` by an instance that stopped before its claim lapsed. Each is marked
/// `sending` until `lease_until`.
pub async fn claim_due(
    pool: &PgPool,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<Claimed>> {
    let mut tx = pool.begin().await?;
    let claimed = sqlx::query_as(
        "WITH due AS ( \
             SELECT id FROM messages \
             WHERE direction = 'outbound' AND status IN ('queued', 'sending') \
               AND coalesce(next_attempt_at, created_at) <= $1 \
             ORDER BY coalesce(next_attempt_at, created_at), id \
             LIMIT $3 FOR UPDATE SKIP LOCKED \
         ) \
         UPDATE messages m SET status = 'sending', attempts = m.attempts + 1, next_attempt_at = $2, \
                status_changed_at = $1 \
         FROM due, clients c \
         WHERE m.id = due.id AND c.id = m.client_id \
         RETURNING m.id, m.client_id, m.to_number, \
                   coalesce(nullif(c.ringlypro_number, ''), m.from_number) AS from_number, m.body, m.attempts",
    )
    .bind(now)
    .bind(lease_until)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(claimed)
}

/// Twilio took the text: `sent`, with its SID (unless a callback got further first).
pub async fn record_sent(pool: &PgPool, id: MessageId, sid: &str, now: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE messages SET status = 'sent', twilio_sid = $2, sent_at = $3, next_attempt_at = NULL, \
                error_code = NULL, error_message = NULL, status_changed_at = $3 \
         WHERE id = $1 AND status = 'sending'",
    )
    .bind(id)
    .bind(sid)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// The attempt failed for a passing reason: back to `queued` until `retry_at`.
pub async fn record_retry(
    pool: &PgPool,
    id: MessageId,
    retry_at: DateTime<Utc>,
    code: Option<i32>,
    message: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE messages SET status = 'queued', next_attempt_at = $2, error_code = $3, error_message = $4, \
                status_changed_at = $5 \
         WHERE id = $1 AND status = 'sending'",
    )
    .bind(id)
    .bind(retry_at)
    .bind(code)
    .bind(message)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// The text will not go out: `failed` (Twilio refused it) or `suppressed` (never offered).
pub async fn record_final(
    pool: &PgPool,
    id: MessageId,
    outcome: Final,
    code: Option<i32>,
    message: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE messages SET status = $2, next_attempt_at = NULL, error_code = $3, error_message = $4, \
                status_changed_at = $5 \
         WHERE id = $1 AND status = 'sending'",
    )
    .bind(id)
    .bind(outcome.as_str())
    .bind(code)
    .bind(message)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// How a text ended without being delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    Failed,
    Suppressed,
}

impl Final {
    fn as_str(self) -> &'static str {
        match self {
            Final::Failed => "failed",
            Final::Suppressed => "suppressed",
        }
    }
}

/// A delivery status reported by Twilio's callback, in the order a text goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Progress {
    Sending,
    Sent,
    /// Final: `delivered`, `undelivered` or `failed`.
    Delivered,
    Undelivered,
    Failed,
}

impl Progress {
    /// Twilio's `MessageStatus`; statuses that say nothing about delivery are `None`.
    pub fn parse(status: &str) -> Option<Self> {
        match status {
            "sending" => Some(Progress::Sending),
            "sent" => Some(Progress::Sent),
            "delivered" => Some(Progress::Delivered),
            "undelivered" => Some(Progress::Undelivered),
            "failed" => Some(Progress::Failed),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Progress::Sending => "sending",
            Progress::Sent => "sent",
            Progress::Delivered => "delivered",
            Progress::Undelivered => "undelivered",
            Progress::Failed => "failed",
        }
    }

    /// Its place in the ladder: queued 0, sending 1, sent 2, any final status 3.
    fn rank(self) -> i32 {
        match self {
            Progress::Sending => 1,
            Progress::Sent => 2,
            Progress::Delivered | Progress::Undelivered | Progress::Failed => 3,
        }
    }
}

/// What a status callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The text moved forward.
    Moved,
    /// The text is already as far or further (a late or repeated callback).
    Stale,
    /// No text has this SID.
    Unknown,
}

/// Moves the text with Twilio SID `sid` forward to `progress`, never back: a `sent` that
/// arrives after `delivered` changes nothing, and a final status is never replaced.
pub async fn apply_progress(
    pool: &PgPool,
    sid: &str,
    progress: Progress,
    error_code: Option<i32>,
    now: DateTime<Utc>,
) -> sqlx::Result<Applied> {
    let moved = sqlx::query(
        "UPDATE messages SET status = $2, status_changed_at = $4, \
                error_code = CASE WHEN $3::int IS NOT NULL THEN $3 ELSE error_code END, \
                error_message = CASE WHEN $3::int IS NOT NULL THEN NULL ELSE error_message END, \
                delivered_at = CASE WHEN $2 = 'delivered' THEN $4 ELSE delivered_at END, \
                next_attempt_at = NULL \
         WHERE twilio_sid = $1 AND direction = 'outbound' \
           AND (CASE status WHEN 'queued' THEN 0 WHEN 'sending' THEN 1 WHEN 'sent' THEN 2 ELSE 3 END) < $5",
    )
    .bind(sid)
    .bind(progress.as_str())
    .bind(error_code)
    .bind(now)
    .bind(progress.rank())
    .execute(pool)
    .await?
    .rows_affected();
    if moved > 0 {
        return Ok(Applied::Moved);
    }
    let known: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM messages WHERE twilio_sid = $1)")
        .bind(sid)
        .fetch_one(pool)
        .await?;
    Ok(if known { Applied::Stale } else { Applied::Unknown })
}

/// Why a number gets no texts from a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOutSource {
    /// The person texted STOP (or another opt-out word).
    Keyword,
    /// Twilio refused a send with 21610.
    Carrier,
}

impl OptOutSource {
    fn as_str(self) -> &'static str {
        match self {
            OptOutSource::Keyword => "keyword",
            OptOutSource::Carrier => "carrier",
        }
    }
}

/// Records that `phone` wants no texts from the tenant; a repeat changes nothing.
pub async fn opt_out(
    conn: &mut PgConnection,
    client_id: TenantId,
    phone: &str,
    source: OptOutSource,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sms_opt_outs (client_id, phone, source) VALUES ($1, $2, $3) \
         ON CONFLICT (client_id, phone) DO NOTHING",
    )
    .bind(client_id)
    .bind(phone)
    .bind(source.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// `phone` may be texted again; whether it had opted out.
pub async fn opt_in(conn: &mut PgConnection, client_id: TenantId, phone: &str) -> sqlx::Result<bool> {
    let removed = sqlx::query("DELETE FROM sms_opt_outs WHERE client_id = $1 AND phone = $2")
        .bind(client_id)
        .bind(phone)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(removed > 0)
}

pub async fn is_opted_out(conn: &mut PgConnection, client_id: TenantId, phone: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sms_opt_outs WHERE client_id = $1 AND phone = $2)")
        .bind(client_id)
        .bind(phone)
        .fetch_one(conn)
        .await
}

/// An inbound text to store once: Twilio may deliver the same webhook again.
#[derive(Debug, Clone)]
pub struct Received<'a> {
    pub client_id: TenantId,
    pub contact_id: crate::domain::ids::ContactId,
    pub from_number: &'a str,
    pub to_number: &'a str,
    pub body: &'a str,
    pub sid: &'a str,
}

/// Stores an inbound text; `None` when a text with this SID is stored already.
pub async fn insert_received(conn: &mut PgConnection, r: &Received<'_>) -> sqlx::Result<Option<MessageId>> {
    sqlx::query_scalar(
        "INSERT INTO messages (client_id, contact_id, direction, kind, to_number, from_number, body, status, twilio_sid) \
         VALUES ($1, $2, 'inbound', 'sms', $3, $4, $5, 'received', $6) \
         ON CONFLICT (twilio_sid) WHERE twilio_sid IS NOT NULL DO NOTHING RETURNING id",
    )
    .bind(r.client_id)
    .bind(r.contact_id)
    .bind(r.to_number)
    .bind(r.from_number)
    .bind(r.body)
    .bind(r.sid)
    .fetch_optional(conn)
    .await
}

/// The contact's language for texts (`en`/`es`), when one is known.
pub async fn contact_language(
    conn: &mut PgConnection,
    client_id: TenantId,
    contact_id: crate::domain::ids::ContactId,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT language FROM contacts WHERE client_id = $1 AND id = $2")
        .bind(client_id)
        .bind(contact_id)
        .fetch_optional(conn)
        .await
        .map(Option::flatten)
}

/// Records the language a contact writes in, unless one is known already.
pub async fn set_contact_language_if_unknown(
    conn: &mut PgConnection,
    client_id: TenantId,
    contact_id: crate::domain::ids::ContactId,
    code: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE contacts SET language = $3 WHERE client_id = $1 AND id = $2 AND language IS NULL")
        .bind(client_id)
        .bind(contact_id)
        .bind(code)
        .execute(conn)
        .await?;
    Ok(())
}

/// The contact who texted from `phone` (created, with source `sms`, when new) and the
/// language recorded for them.
pub async fn contact_for_sender(
    conn: &mut PgConnection,
    client_id: TenantId,
    phone: &str,
) -> sqlx::Result<(crate::domain::ids::ContactId, Option<String>)> {
    let (id, language, created): (crate::domain::ids::ContactId, Option<String>, bool) = sqlx::query_as(
        "INSERT INTO contacts (client_id, phone, name, source, last_contacted_at) VALUES ($1, $2, '', 'sms', now()) \
         ON CONFLICT (client_id, phone) DO UPDATE SET last_contacted_at = now(), updated_at = now() \
         RETURNING id, language, (xmax = 0) AS created",
    )
    .bind(client_id)
    .bind(phone)
    .fetch_one(&mut *conn)
    .await?;
    if created {
        super::contacts::announce(conn, client_id, id).await?;
    }
    Ok((id, language))
}

/// Whether `phone` has an appointment with the tenant still to come.
pub async fn has_upcoming_appointment(
    pool: &PgPool,
    client_id: TenantId,
    phone: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM appointments a LEFT JOIN contacts c ON c.id = a.contact_id \
                        WHERE a.client_id = $1 AND (a.customer_phone = $2 OR c.phone = $2) \
                          AND a.status IN ('confirmed', 'pending') AND a.starts_at > $3)",
    )
    .bind(client_id)
    .bind(phone)
    .bind(now)
    .fetch_one(pool)
    .await
}

/// How far a text got with Twilio, as the dashboard shows it beside the text.
#[derive(Debug, Clone, Default, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Delivery {
    #[serde(skip)]
    pub id: i64,
    /// Twilio's `SM…` SID once Twilio took the text (or delivered it, for a received one).
    pub twilio_sid: Option<String>,
    /// Twilio's error code of a failed or undelivered text.
    pub error_code: Option<i32>,
    /// Why the text failed or was not sent (`suppressed`).
    pub error_message: Option<String>,
}

/// The delivery details of the tenant's texts `ids`.
pub async fn deliveries(conn: &mut PgConnection, client_id: TenantId, ids: &[i64]) -> sqlx::Result<Vec<Delivery>> {
    sqlx::query_as(
        "SELECT id, twilio_sid, error_code, error_message FROM messages WHERE client_id = $1 AND id = ANY($2)",
    )
    .bind(client_id)
    .bind(ids)
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_statuses_are_ordered_and_final_ones_rank_alike() {
        assert!(Progress::Sending.rank() < Progress::Sent.rank());
        assert!(Progress::Sent.rank() < Progress::Delivered.rank());
        assert_eq!(Progress::Delivered.rank(), Progress::Failed.rank());
        assert_eq!(Progress::parse("undelivered"), Some(Progress::Undelivered));
        assert_eq!(Progress::parse("queued"), None);
        assert_eq!(Progress::parse("read"), None);
    }
}
