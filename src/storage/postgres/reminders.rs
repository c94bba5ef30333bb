//! Reminders and replies by text: the appointments a reminder may be due for, the
//! `appointment_reminders` rows whose unique key makes each reminder happen once, the
//! caller's language and the caller's confirmation. The timing rules are in
//! `domain::reminders`; nothing here decides when.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};

use crate::domain::ids::{AppointmentId, ContactId, MessageId, TenantId};
use crate::domain::language::Language;
use crate::domain::reminders::ReminderKind;
use crate::domain::scheduling::Slot;

/// A confirmed appointment in the reminder window, with which of its reminders went out
/// for its current time.
#[derive(Debug, Clone, FromRow)]
pub struct Candidate {
    pub id: AppointmentId,
    pub client_id: TenantId,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub time_set_at: DateTime<Utc>,
    pub day_before_sent: bool,
    pub hour_before_sent: bool,
}

impl Candidate {
    /// Whether the reminder of `kind` went out for the appointment's current time.
    pub fn sent(&self, kind: ReminderKind) -> bool {
        match kind {
            ReminderKind::DayBefore => self.day_before_sent,
            ReminderKind::HourBefore => self.hour_before_sent,
        }
    }
}

/// Every tenant's confirmed appointments starting in `(now, until]` that still miss a
/// reminder for their current time (the system path: no tenant is named, so the
/// application role sees them all).
pub async fn candidates(pool: &PgPool, now: DateTime<Utc>, until: DateTime<Utc>) -> sqlx::Result<Vec<Candidate>> {
    sqlx::query_as(
        "SELECT * FROM ( \
             SELECT a.id, a.client_id, a.starts_at, a.ends_at, a.time_set_at, \
                 EXISTS (SELECT 1 FROM appointment_reminders r WHERE r.appointment_id = a.id \
                         AND r.kind = 'reminder_24h' AND r.starts_at = a.starts_at) AS day_before_sent, \
                 EXISTS (SELECT 1 FROM appointment_reminders r WHERE r.appointment_id = a.id \
                         AND r.kind = 'reminder_1h' AND r.starts_at = a.starts_at) AS hour_before_sent \
             FROM appointments a \
             WHERE a.status = 'confirmed' AND a.starts_at > $1 AND a.starts_at <= $2 \
         ) AS c WHERE NOT (c.day_before_sent AND c.hour_before_sent) \
         ORDER BY c.starts_at, c.id",
    )
    .bind(now)
    .bind(until)
    .fetch_all(pool)
    .await
}

/// The appointment as a reminder or a reply describes it.
#[derive(Debug, Clone, FromRow)]
pub struct Reminded {
    pub id: AppointmentId,
    pub contact_id: Option<ContactId>,
    pub customer_name: String,
    pub customer_phone: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The stored code of the appointment's language, else its contact's.
    language: Option<String>,
}

impl Reminded {
    /// The caller's language as recorded (`None`: the business's).
    pub fn language(&self) -> Option<Language> {
        self.language.as_deref().and_then(Language::from_code)
    }
}

/// Locks the appointment for the rest of the transaction if it is still confirmed at
/// `starts_at`: a cancellation or a move waits for the reminder's transaction, so a
/// reminder is never queued for a time that is no longer the appointment's.
pub async fn lock_if_due(
    conn: &mut PgConnection,
    client_id: TenantId,
    id: AppointmentId,
    starts_at: DateTime<Utc>,
) -> sqlx::Result<Option<Reminded>> {
    sqlx::query_as(
        "SELECT a.id, a.contact_id, a.customer_name, a.customer_phone, a.starts_at, a.ends_at, \
             COALESCE(a.language, ct.language) AS language \
         FROM appointments a LEFT JOIN contacts ct ON ct.id = a.contact_id AND ct.client_id = a.client_id \
         WHERE a.client_id = $1 AND a.id = $2 AND a.status = 'confirmed' AND a.starts_at = $3 \
         FOR SHARE OF a",
    )
    .bind(client_id)
    .bind(id)
    .bind(starts_at)
    .fetch_optional(conn)
    .await
}

/// Records that the reminder of `kind` for the appointment at `starts_at` was queued as
/// `message_id`; `false` when it already was (another instance got there first), in which
/// case the caller's transaction must be rolled back.
pub async fn record(
    conn: &mut PgConnection,
    client_id: TenantId,
    appointment_id: AppointmentId,
    kind: ReminderKind,
    starts_at: DateTime<Utc>,
    message_id: MessageId,
) -> sqlx::Result<bool> {
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO appointment_reminders (client_id, appointment_id, kind, starts_at, message_id) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT ON CONSTRAINT appointment_reminders_once DO NOTHING RETURNING id",
    )
    .bind(client_id)
    .bind(appointment_id)
    .bind(kind.as_str())
    .bind(starts_at)
    .bind(message_id)
    .fetch_optional(conn)
    .await?;
    Ok(inserted.is_some())
}

/// The sender's next appointment with the tenant (confirmed or pending, not yet started),
/// matched by the E.164 phone it was booked with.
pub async fn next_for_phone(
    conn: &mut PgConnection,
    client_id: TenantId,
    phone: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Reminded>> {
    sqlx::query_as(
        "SELECT a.id, a.contact_id, a.customer_name, a.customer_phone, a.starts_at, a.ends_at, \
             COALESCE(a.language, ct.language) AS language \
         FROM appointments a LEFT JOIN contacts ct ON ct.id = a.contact_id AND ct.client_id = a.client_id \
         WHERE a.client_id = $1 AND a.customer_phone = $2 AND a.status IN ('confirmed', 'pending') \
             AND a.starts_at > $3 \
         ORDER BY a.starts_at, a.id LIMIT 1",
    )
    .bind(client_id)
    .bind(phone)
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// The language recorded for the tenant's contact with this phone, if any.
pub async fn contact_language(
    conn: &mut PgConnection,
    client_id: TenantId,
    phone: &str,
) -> sqlx::Result<Option<Language>> {
    let stored: Option<Option<String>> =
        sqlx::query_scalar("SELECT language FROM contacts WHERE client_id = $1 AND phone = $2")
            .bind(client_id)
            .bind(phone)
            .fetch_optional(conn)
            .await?;
    Ok(stored.flatten().as_deref().and_then(Language::from_code))
}

/// Notes that the caller confirmed the appointment (the first confirmation is kept).
pub async fn confirm(
    conn: &mut PgConnection,
    client_id: TenantId,
    id: AppointmentId,
    at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE appointments SET caller_confirmed_at = COALESCE(caller_confirmed_at, $3) \
         WHERE client_id = $1 AND id = $2 AND status <> 'cancelled'",
    )
    .bind(client_id)
    .bind(id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Records the language a caller booked in, on the appointment and on the contact.
pub async fn set_caller_language(
    conn: &mut PgConnection,
    client_id: TenantId,
    appointment_id: AppointmentId,
    contact_id: ContactId,
    language: Language,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE appointments SET language = $3 WHERE client_id = $1 AND id = $2")
        .bind(client_id)
        .bind(appointment_id)
        .bind(language.code())
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE contacts SET language = $3 WHERE client_id = $1 AND id = $2")
        .bind(client_id)
        .bind(contact_id)
        .bind(language.code())
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces the caller's open offers with `slots`, numbered from 1, valid until `expires_at`.
pub async fn replace_offers(
    conn: &mut PgConnection,
    client_id: TenantId,
    appointment_id: AppointmentId,
    phone: &str,
    slots: &[Slot],
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM reschedule_offers WHERE client_id = $1 AND phone = $2")
        .bind(client_id)
        .bind(phone)
        .execute(&mut *conn)
        .await?;
    for (choice, slot) in (1_i16..).zip(slots) {
        sqlx::query(
            "INSERT INTO reschedule_offers (client_id, appointment_id, phone, choice, starts_at, ends_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(client_id)
        .bind(appointment_id)
        .bind(phone)
        .bind(choice)
        .bind(slot.starts_at)
        .bind(slot.ends_at)
        .bind(expires_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Takes the caller's offer number `choice` if it is still open, removing all their offers
/// (an offer books once); `None` when there is no such open offer.
pub async fn take_offer(
    conn: &mut PgConnection,
    client_id: TenantId,
    phone: &str,
    choice: u8,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<(AppointmentId, Slot)>> {
    let chosen: Option<(AppointmentId, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT appointment_id, starts_at, ends_at FROM reschedule_offers \
         WHERE client_id = $1 AND phone = $2 AND choice = $3 AND expires_at > $4 FOR UPDATE",
    )
    .bind(client_id)
    .bind(phone)
    .bind(i16::from(choice))
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((appointment_id, starts_at, ends_at)) = chosen else { return Ok(None) };
    sqlx::query("DELETE FROM reschedule_offers WHERE client_id = $1 AND phone = $2")
        .bind(client_id)
        .bind(phone)
        .execute(conn)
        .await?;
    Ok(Some((appointment_id, Slot { starts_at, ends_at })))
}
