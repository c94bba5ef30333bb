//! Appointments. The `appointments_no_overlap` exclusion constraint is what makes
//! double booking impossible; this module maps its violation to a domain error.

use chrono::{DateTime, Utc};
use sqlx::{Acquire, FromRow, PgConnection, PgPool};

use super::sync_jobs::{self, Subject, SyncAction};
use crate::domain::appointments::{AppointmentStatus, BookingSource};
use crate::domain::confirmation;
use crate::domain::ids::{AppointmentId, CallId, ContactId, TenantId};
use crate::domain::scheduling::Busy;

#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Appointment {
    #[schema(value_type = i64)]
    pub id: AppointmentId,
    #[schema(value_type = i64)]
    pub client_id: TenantId,
    #[schema(value_type = Option<i64>)]
    pub contact_id: Option<ContactId>,
    #[schema(value_type = Option<i64>)]
    pub call_id: Option<CallId>,
    pub customer_name: String,
    pub customer_phone: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    #[schema(value_type = String)]
    pub status: AppointmentStatus,
    #[schema(value_type = String)]
    pub source: BookingSource,
    pub confirmation_code: String,
}

const COLUMNS: &str = "id, client_id, contact_id, call_id, customer_name, customer_phone, starts_at, ends_at, \
     status, source, confirmation_code";

#[derive(Debug, Clone)]
pub struct NewAppointment<'a> {
    pub client_id: TenantId,
    pub contact_id: Option<ContactId>,
    pub call_id: Option<CallId>,
    pub customer_name: &'a str,
    pub customer_phone: &'a str,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub source: BookingSource,
}

/// Why writing an appointment failed, in domain terms: the one place the constraints'
/// names are read.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("that time overlaps another appointment")]
    SlotTaken,
    #[error("confirmation code already in use")]
    CodeTaken,
    #[error(transparent)]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for InsertError {
    fn from(e: sqlx::Error) -> Self {
        match super::violated_constraint(&e).as_deref() {
            Some("appointments_no_overlap") => InsertError::SlotTaken,
            Some("appointments_confirmation_code_key") => InsertError::CodeTaken,
            _ => InsertError::Database(e),
        }
    }
}

/// How many fresh codes are drawn before giving up: with 24^6 codes a second collision
/// already means something other than chance.
const CODE_ATTEMPTS: usize = 5;

/// Inserts the appointment with a fresh confirmation code, drawing again when the code is
/// in use. Each try runs in a savepoint, so a collision leaves the caller's transaction
/// usable; a taken time is [`InsertError::SlotTaken`] at once.
pub async fn insert_with_fresh_code(
    conn: &mut PgConnection,
    a: &NewAppointment<'_>,
) -> Result<Appointment, InsertError> {
    for _ in 0..CODE_ATTEMPTS {
        let code = confirmation::generate();
        let mut attempt = conn.begin().await?;
        match insert(&mut attempt, a, &code).await {
            Ok(appointment) => {
                attempt.commit().await?;
                return Ok(appointment);
            }
            Err(e) => {
                attempt.rollback().await?;
                if !matches!(e, InsertError::CodeTaken) {
                    return Err(e);
                }
            }
        }
    }
    Err(InsertError::CodeTaken)
}

/// Inserts the appointment with `code` (one try; see [`insert_with_fresh_code`]).
pub async fn insert(conn: &mut PgConnection, a: &NewAppointment<'_>, code: &str) -> Result<Appointment, InsertError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO appointments (client_id, contact_id, call_id, customer_name, customer_phone, starts_at, \
             ends_at, source, confirmation_code) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    )))
    .bind(a.client_id)
    .bind(a.contact_id)
    .bind(a.call_id)
    .bind(a.customer_name)
    .bind(a.customer_phone)
    .bind(a.starts_at)
    .bind(a.ends_at)
    .bind(a.source)
    .bind(code)
    .fetch_one(conn)
    .await
    .map_err(InsertError::from)
}

/// Non-cancelled appointments of a tenant overlapping `[from, to)`.
pub async fn busy_between(
    conn: &mut PgConnection,
    client_id: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<Busy>> {
    let rows: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT starts_at, ends_at FROM appointments \
         WHERE client_id = $1 AND status <> 'cancelled' AND starts_at < $3 AND ends_at > $2 ORDER BY starts_at",
    )
    .bind(client_id)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(starts_at, ends_at)| Busy { starts_at, ends_at }).collect())
}

/// The caller's next upcoming appointment with this tenant (by phone or confirmation code).
pub async fn next_for_caller(
    conn: &mut PgConnection,
    client_id: TenantId,
    phone: Option<&str>,
    code: Option<&str>,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Appointment>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM appointments WHERE client_id = $1 AND status IN ('confirmed', 'pending') \
             AND ends_at > $4 AND (customer_phone = $2 OR confirmation_code = upper($3)) \
         ORDER BY (confirmation_code = upper($3)) DESC NULLS LAST, starts_at LIMIT 1"
    )))
    .bind(client_id)
    .bind(phone)
    .bind(code)
    .bind(now)
    .fetch_optional(conn)
    .await
}

pub async fn cancel(conn: &mut PgConnection, client_id: TenantId, id: AppointmentId) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE appointments SET status = 'cancelled', updated_at = now() \
         WHERE client_id = $1 AND id = $2 AND status <> 'cancelled'",
    )
    .bind(client_id)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn for_call(pool: &PgPool, call_id: CallId) -> sqlx::Result<Vec<Appointment>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM appointments WHERE call_id = $1 ORDER BY id")))
        .bind(call_id)
        .fetch_all(pool)
        .await
}

pub async fn for_tenant(pool: &PgPool, client_id: TenantId) -> sqlx::Result<Vec<Appointment>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM appointments WHERE client_id = $1 ORDER BY starts_at"
    )))
    .bind(client_id)
    .fetch_all(pool)
    .await
}

pub async fn find(
    conn: &mut PgConnection,
    client_id: TenantId,
    id: AppointmentId,
) -> sqlx::Result<Option<Appointment>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM appointments WHERE client_id = $1 AND id = $2")))
        .bind(client_id)
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Every appointment of a tenant (cancelled ones too) starting in `[from, to)`, in order.
pub async fn starting_between(
    conn: &mut PgConnection,
    client_id: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<Appointment>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM appointments WHERE client_id = $1 AND starts_at >= $2 AND starts_at < $3 \
         ORDER BY starts_at, id"
    )))
    .bind(client_id)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
}

/// The first live appointment other than `except` overlapping `[from, to)`: the one a
/// refused booking collided with.
pub async fn first_overlapping(
    conn: &mut PgConnection,
    client_id: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    except: Option<AppointmentId>,
) -> sqlx::Result<Option<Appointment>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM appointments WHERE client_id = $1 AND status <> 'cancelled' \
             AND starts_at < $3 AND ends_at > $2 AND id IS DISTINCT FROM $4 ORDER BY starts_at LIMIT 1"
    )))
    .bind(client_id)
    .bind(from)
    .bind(to)
    .bind(except)
    .fetch_optional(conn)
    .await
}

/// Moves an appointment and sets its status in one statement, so the exclusion
/// constraint judges the final state; `None` when the tenant has no such appointment.
pub async fn change(
    conn: &mut PgConnection,
    client_id: TenantId,
    id: AppointmentId,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    status: AppointmentStatus,
) -> Result<Option<Appointment>, InsertError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE appointments SET starts_at = $3, ends_at = $4, status = $5, updated_at = now() \
         WHERE client_id = $1 AND id = $2 RETURNING {COLUMNS}"
    )))
    .bind(client_id)
    .bind(id)
    .bind(starts_at)
    .bind(ends_at)
    .bind(status)
    .fetch_optional(conn)
    .await
    .map_err(InsertError::from)
}

/// Tells the business's webhooks (and its calendar queues) what became of an appointment: `data.appointment` as it
/// now stands, and for a move `data.previous` (the old appointment row, or the same one
/// with its old times).
pub async fn announce(
    conn: &mut PgConnection,
    kind: crate::domain::events::EventKind,
    appointment: &Appointment,
    previous: Option<&Appointment>,
) -> sqlx::Result<()> {
    let encode = |e: serde_json::Error| sqlx::Error::Encode(Box::new(e));
    let mut data = serde_json::json!({ "appointment": serde_json::to_value(appointment).map_err(encode)? });
    if let Some(previous) = previous {
        data["previous"] = serde_json::to_value(previous).map_err(encode)?;
    }
    super::webhooks::emit(&mut *conn, appointment.client_id, kind, data).await?;
    // The owner's other calendars follow in the same transaction (queued, never sent here).
    let action =
        if appointment.status == AppointmentStatus::Cancelled { SyncAction::Delete } else { SyncAction::Upsert };
    sync_jobs::enqueue(&mut *conn, appointment.client_id, Subject::Appointment(appointment.id), action).await?;
    if let Some(previous) = previous.filter(|p| p.id != appointment.id) {
        sync_jobs::enqueue(conn, previous.client_id, Subject::Appointment(previous.id), SyncAction::Delete).await?;
    }
    Ok(())
}
