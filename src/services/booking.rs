//! Booking: offering slots from a tenant's real availability, booking one (appointment,
//! contact and confirmation texts in one transaction), finding and cancelling.

use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use minijinja::context;
use sqlx::PgPool;

use crate::dialogue::phrasing;
use crate::dialogue::prompts::written;
use crate::domain::appointments::BookingSource;
use crate::domain::calls::Outcome;
use crate::domain::events::EventKind;
use crate::domain::ids::{AppointmentId, CallId, ContactId, MessageId};
use crate::domain::language::Language;
use crate::domain::messages::Direction;
use crate::domain::scheduling::{self, Preference, Slot};
use crate::services::calendar_sync::{BusySource, CalendarSync};
use crate::storage::postgres::appointments::{self, Appointment, InsertError, NewAppointment};
use crate::storage::postgres::tenants::{self, Tenant};
use crate::storage::postgres::{begin_tenant, calls, contacts, google, messages, reminders};

/// How far ahead availability is searched.
pub const LOOKAHEAD_DAYS: i64 = 31;

#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    #[error("that time is no longer available")]
    SlotTaken,
    #[error("that time is outside the business's bookable hours")]
    NotBookable,
    #[error("a name and a valid phone number are needed to book")]
    MissingDetails,
    #[error("that appointment does not exist or is already cancelled")]
    NotFound,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Up to `count` open slots matching the caller's preference.
pub async fn availability(
    pool: &PgPool,
    tenant: &Tenant,
    pref: &Preference,
    now: DateTime<Utc>,
    count: usize,
) -> anyhow::Result<Vec<Slot>> {
    let (from, to) = (now - Duration::days(1), now + Duration::days(LOOKAHEAD_DAYS + 2));
    let mut tx = begin_tenant(pool, tenant.id).await?;
    let mut busy = appointments::busy_between(&mut tx, tenant.id, from, to).await.context("reading busy times")?;
    // The owner's own Google Calendar events, as last synced.
    busy.extend(google::busy_between(&mut tx, tenant.id, from, to).await.context("reading Google busy times")?);
    tx.commit().await?;
    Ok(scheduling::offer(&tenant.calendar(), &busy, now, pref, count))
}

/// [`availability`], checking Google's freeBusy within its budget when the local copy of
/// the owner's calendar is stale; says where the Google busy times came from.
pub async fn availability_checked(
    pool: &PgPool,
    calendar: &CalendarSync,
    tenant: &Tenant,
    pref: &Preference,
    now: DateTime<Utc>,
    count: usize,
) -> anyhow::Result<(Vec<Slot>, BusySource)> {
    let (from, to) = (now - Duration::days(1), now + Duration::days(LOOKAHEAD_DAYS + 2));
    let (google_busy, source) = calendar.busy(tenant.id, from, to, now).await.context("reading Google busy times")?;
    let mut tx = begin_tenant(pool, tenant.id).await?;
    let mut busy = appointments::busy_between(&mut tx, tenant.id, from, to).await.context("reading busy times")?;
    tx.commit().await?;
    busy.extend(google_busy);
    Ok((scheduling::offer(&tenant.calendar(), &busy, now, pref, count), source))
}

/// A booking request from a call (or the dashboard).
#[derive(Debug, Clone)]
pub struct BookingRequest {
    pub name: String,
    pub phone: String,
    pub slot: Slot,
    pub call_id: Option<CallId>,
    pub language: Language,
    pub source: BookingSource,
}

/// What a successful booking produced.
#[derive(Debug, Clone)]
pub struct Booked {
    pub appointment: Appointment,
    pub contact_id: ContactId,
}

/// Books `req.slot` for the tenant in one transaction: the contact (created or matched by
/// phone), the appointment with a fresh confirmation code, the call's outcome, and the two
/// confirmation texts in the outbox. The exclusion constraint makes a concurrent booking
/// of an overlapping time fail with [`BookingError::SlotTaken`].
pub async fn book(
    pool: &PgPool,
    tenant: &Tenant,
    req: &BookingRequest,
    now: DateTime<Utc>,
) -> Result<Booked, BookingError> {
    let mut tx = begin_tenant(pool, tenant.id).await.context("opening a tenant transaction")?;
    let booked = book_in(&mut tx, tenant, req, now, Outcome::Booked).await?;
    appointments::announce(&mut tx, EventKind::AppointmentBooked, &booked.appointment, None)
        .await
        .context("recording the booking's webhooks")?;
    tx.commit().await.context("committing the booking")?;
    Ok(booked)
}

/// Moves an appointment to a new slot in one transaction: the old one is released first
/// (so the new time may overlap it), and if the new time is taken nothing changes.
pub async fn reschedule(
    pool: &PgPool,
    tenant: &Tenant,
    appointment_id: AppointmentId,
    req: &BookingRequest,
    now: DateTime<Utc>,
) -> Result<Booked, BookingError> {
    let mut tx = begin_tenant(pool, tenant.id).await.context("opening a tenant transaction")?;
    let previous = appointments::find(&mut tx, tenant.id, appointment_id).await.context("reading the old time")?;
    if !appointments::cancel(&mut tx, tenant.id, appointment_id).await.context("releasing the old time")? {
        return Err(BookingError::NotFound);
    }
    let booked = book_in(&mut tx, tenant, req, now, Outcome::Rescheduled).await?;
    appointments::announce(&mut tx, EventKind::AppointmentRescheduled, &booked.appointment, previous.as_ref())
        .await
        .context("recording the move's webhooks")?;
    tx.commit().await.context("committing the new time")?;
    Ok(booked)
}

async fn book_in(
    tx: &mut sqlx::PgConnection,
    tenant: &Tenant,
    req: &BookingRequest,
    now: DateTime<Utc>,
    outcome: Outcome,
) -> Result<Booked, BookingError> {
    if req.phone.trim().is_empty() {
        return Err(BookingError::MissingDetails);
    }
    let calendar = tenant.calendar();
    // Existing appointments are checked by the constraint; here only the tenant's rules.
    if !scheduling::is_bookable(&calendar, &[], now, &req.slot) {
        return Err(BookingError::NotBookable);
    }
    let name = if req.name.trim().is_empty() { "Caller".to_owned() } else { req.name.trim().to_owned() };
    let contact_id =
        contacts::upsert_by_phone(&mut *tx, tenant.id, &req.phone, &name).await.context("saving the contact")?;
    let new = NewAppointment {
        client_id: tenant.id,
        contact_id: Some(contact_id),
        call_id: req.call_id,
        customer_name: &name,
        customer_phone: &req.phone,
        starts_at: req.slot.starts_at,
        ends_at: req.slot.ends_at,
        source: req.source,
    };
    let appointment = match appointments::insert_with_fresh_code(&mut *tx, &new).await {
        Ok(a) => a,
        Err(InsertError::SlotTaken) => return Err(BookingError::SlotTaken),
        Err(e) => return Err(anyhow::Error::from(e).context("inserting the appointment").into()),
    };
    // Reminders and replies by text speak the language the caller booked in.
    reminders::set_caller_language(&mut *tx, tenant.id, appointment.id, contact_id, req.language)
        .await
        .context("recording the caller's language")?;
    let when = phrasing::describe_slot(&calendar, &req.slot, now, req.language);
    let code = &appointment.confirmation_code;
    let caller_text = written(
        req.language,
        "booking_confirmation",
        &context! { business_name => tenant.business_name.as_str(), when => when.as_str(), code => code.as_str() },
    )?;
    let owner_language = tenants::owner_language(&mut *tx, tenant.id).await.context("reading the owner's language")?;
    let owner_when = phrasing::describe_slot(&calendar, &req.slot, now, owner_language);
    let owner_text = written(
        owner_language,
        "owner_booking_alert",
        &context! { name => name.as_str(), phone => req.phone.as_str(), when => owner_when, code => code.as_str() },
    )?;
    for (to, body, kind) in [
        (req.phone.as_str(), caller_text.as_str(), "booking_confirmation"),
        (tenant.owner_phone.as_str(), owner_text.as_str(), "owner_booking_alert"),
    ] {
        messages::queue(
            &mut *tx,
            &messages::NewMessage {
                client_id: tenant.id,
                contact_id: (kind == "booking_confirmation").then_some(contact_id),
                call_id: req.call_id,
                direction: Direction::Outbound,
                kind,
                to_number: to,
                from_number: tenant.ringlypro_number.as_deref().unwrap_or_default(),
                body,
            },
        )
        .await
        .context("queueing a confirmation text")?;
    }
    if let Some(call_id) = req.call_id {
        calls::set_contact(&mut *tx, call_id, contact_id).await.context("linking the call")?;
        calls::set_outcome(&mut *tx, call_id, outcome).await.context("recording the outcome")?;
    }
    Ok(Booked { appointment, contact_id })
}

/// The caller's next appointment, by phone number or confirmation code.
pub async fn find(
    pool: &PgPool,
    tenant: &Tenant,
    phone: Option<&str>,
    code: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Appointment>> {
    let mut tx = begin_tenant(pool, tenant.id).await?;
    let found = appointments::next_for_caller(&mut tx, tenant.id, phone, code, now).await?;
    tx.commit().await?;
    Ok(found)
}

/// Cancels an appointment and tells the owner.
pub async fn cancel(
    pool: &PgPool,
    tenant: &Tenant,
    appointment_id: AppointmentId,
    call_id: Option<CallId>,
) -> anyhow::Result<bool> {
    cancel_at(pool, tenant, appointment_id, call_id, Utc::now()).await
}

/// Cancels an appointment and tells the owner who cancelled which time (described as of
/// `now`); `false` when there was nothing left to cancel.
pub async fn cancel_at(
    pool: &PgPool,
    tenant: &Tenant,
    appointment_id: AppointmentId,
    call_id: Option<CallId>,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let mut tx = begin_tenant(pool, tenant.id).await?;
    let Some(appointment) = appointments::find(&mut tx, tenant.id, appointment_id).await? else {
        return Ok(false);
    };
    let cancelled = appointments::cancel(&mut tx, tenant.id, appointment_id).await?;
    if cancelled {
        let now_cancelled = appointments::find(&mut tx, tenant.id, appointment_id).await?;
        if let Some(appointment) = &now_cancelled {
            appointments::announce(&mut tx, EventKind::AppointmentCancelled, appointment, None).await?;
        }
        let language = tenants::owner_language(&mut tx, tenant.id).await?;
        let body = written(language, "owner_cancellation_alert", &who_and_when(tenant, &appointment, now, language))?;
        alert_owner(&mut tx, tenant, call_id, "owner_cancellation_alert", &body).await?;
        if let Some(call_id) = call_id {
            calls::set_outcome(&mut tx, call_id, Outcome::Cancelled).await?;
        }
    }
    tx.commit().await?;
    Ok(cancelled)
}

/// Tells the owner that the caller asked (by text) to move an appointment, so someone
/// calls them back; `false` when the tenant has no such appointment.
pub async fn ask_to_reschedule(
    pool: &PgPool,
    tenant: &Tenant,
    appointment_id: AppointmentId,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let mut tx = begin_tenant(pool, tenant.id).await?;
    let Some(appointment) = appointments::find(&mut tx, tenant.id, appointment_id).await? else {
        return Ok(false);
    };
    let language = tenants::owner_language(&mut tx, tenant.id).await?;
    let body = written(language, "owner_reschedule_request", &who_and_when(tenant, &appointment, now, language))?;
    alert_owner(&mut tx, tenant, None, "owner_reschedule_request", &body).await?;
    tx.commit().await?;
    Ok(true)
}

/// Who an owner's alert is about and when their appointment is, in the owner's language.
fn who_and_when(
    tenant: &Tenant,
    appointment: &Appointment,
    now: DateTime<Utc>,
    language: Language,
) -> minijinja::Value {
    let slot = Slot { starts_at: appointment.starts_at, ends_at: appointment.ends_at };
    let when = phrasing::describe_slot(&tenant.calendar(), &slot, now, language);
    context! {
        name => appointment.customer_name.as_str(),
        phone => appointment.customer_phone.as_str(),
        when,
    }
}

/// Records a caller's message and texts it to the owner.
pub async fn take_message(
    pool: &PgPool,
    tenant: &Tenant,
    call_id: Option<CallId>,
    from: &str,
    text: &str,
) -> anyhow::Result<()> {
    let mut tx = begin_tenant(pool, tenant.id).await?;
    let contact_id =
        if from.is_empty() { None } else { Some(contacts::upsert_by_phone(&mut tx, tenant.id, from, "").await?) };
    messages::queue(
        &mut tx,
        &messages::NewMessage {
            client_id: tenant.id,
            contact_id,
            call_id,
            direction: Direction::Inbound,
            kind: "voice_message",
            to_number: tenant.ringlypro_number.as_deref().unwrap_or_default(),
            from_number: from,
            body: text,
        },
    )
    .await?;
    let language = tenants::owner_language(&mut tx, tenant.id).await?;
    let alert = written(language, "owner_message_alert", &context! { from, text })?;
    alert_owner(&mut tx, tenant, call_id, "owner_message_alert", &alert).await?;
    if let Some(call_id) = call_id {
        calls::set_outcome(&mut tx, call_id, Outcome::Message).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Queues a text to the tenant's owner in the caller's transaction.
/// Queues a text to the business owner's phone from the tenant's number.
pub(crate) async fn alert_owner(
    conn: &mut sqlx::PgConnection,
    tenant: &Tenant,
    call_id: Option<CallId>,
    kind: &str,
    body: &str,
) -> sqlx::Result<MessageId> {
    messages::queue(
        conn,
        &messages::NewMessage {
            client_id: tenant.id,
            contact_id: None,
            call_id,
            direction: Direction::Outbound,
            kind,
            to_number: &tenant.owner_phone,
            from_number: tenant.ringlypro_number.as_deref().unwrap_or_default(),
            body,
        },
    )
    .await
}
