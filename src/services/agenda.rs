//! The owner's agenda: appointments booked, moved and closed from the dashboard. Same
//! guarantee as the voice path (one tenant transaction, the `appointments_no_overlap`
//! constraint), but any time may be booked; the hours are the web's warning to give.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{Acquire, PgConnection, PgPool};

use crate::domain::appointments::{AppointmentStatus, BookingSource};
use crate::domain::events::EventKind;
use crate::domain::ids::{AppointmentId, ContactId, TenantId};
use crate::domain::phone::PhoneNumber;
use crate::storage::postgres::appointments::{self, Appointment, InsertError, NewAppointment};
use crate::storage::postgres::begin_tenant;
use crate::storage::postgres::contacts::{self, ContactError, ContactFields};

#[derive(Debug, thiserror::Error)]
pub enum AgendaError {
    /// The time collides with this live appointment.
    #[error("that time overlaps {}'s appointment", .0.customer_name)]
    Overlaps(Box<Appointment>),
    /// The time was taken a moment ago by an appointment that has moved on since.
    #[error("that time was just taken; pick another")]
    Taken,
    #[error("that appointment does not exist")]
    NotFound,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A booking typed in by the owner.
#[derive(Debug, Clone)]
pub struct ManualBooking {
    pub name: String,
    pub phone: PhoneNumber,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// What an appointment becomes; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub status: Option<AppointmentStatus>,
}

/// The tenant's contact with this number, created with `name` when there is none.
async fn contact_for(
    conn: &mut PgConnection,
    client_id: TenantId,
    phone: &str,
    name: &str,
) -> anyhow::Result<ContactId> {
    if let Some(found) = contacts::find_by_phone(conn, client_id, phone).await? {
        return Ok(found.id);
    }
    let fields = ContactFields { name, phone, email: None, notes: "" };
    let mut attempt = conn.begin().await?;
    match contacts::insert(&mut attempt, client_id, &fields, "manual").await {
        Ok(contact) => {
            attempt.commit().await?;
            Ok(contact.id)
        }
        // Created by someone else a moment ago.
        Err(ContactError::PhoneTaken) => {
            attempt.rollback().await?;
            let found = contacts::find_by_phone(conn, client_id, phone).await?;
            found.map(|c| c.id).context("a contact that clashed on its phone cannot be found")
        }
        Err(ContactError::Database(e)) => Err(e.into()),
    }
}

/// Books a time for a customer (their contact found by phone, or created), in one
/// transaction. An overlapping live appointment refuses it with [`AgendaError::Overlaps`].
pub async fn book(pool: &PgPool, client_id: TenantId, req: &ManualBooking) -> Result<Appointment, AgendaError> {
    let mut tx = begin_tenant(pool, client_id).await.context("opening a tenant transaction")?;
    let name = req.name.trim();
    let contact_id = contact_for(&mut tx, client_id, req.phone.as_str(), name).await?;
    let new = NewAppointment {
        client_id,
        contact_id: Some(contact_id),
        call_id: None,
        customer_name: name,
        customer_phone: req.phone.as_str(),
        starts_at: req.starts_at,
        ends_at: req.ends_at,
        source: BookingSource::Manual,
    };
    match appointments::insert_with_fresh_code(&mut tx, &new).await {
        Ok(appointment) => {
            appointments::announce(&mut tx, EventKind::AppointmentBooked, &appointment, None)
                .await
                .context("recording the booking's webhooks")?;
            tx.commit().await.context("committing the booking")?;
            Ok(appointment)
        }
        Err(InsertError::SlotTaken) => Err(overlap(&mut tx, client_id, req.starts_at, req.ends_at, None).await),
        Err(e) => Err(anyhow::Error::from(e).context("inserting").into()),
    }
}

/// The appointment a refused time collides with.
async fn overlap(
    conn: &mut PgConnection,
    client_id: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    except: Option<AppointmentId>,
) -> AgendaError {
    match appointments::first_overlapping(conn, client_id, from, to, except).await {
        Ok(Some(other)) => AgendaError::Overlaps(Box::new(other)),
        // Moved or cancelled again already: still a refusal, now without a name.
        Ok(None) => AgendaError::Taken,
        Err(e) => AgendaError::Unexpected(e.into()),
    }
}

/// Moves an appointment and/or sets its status in one transaction. Moving it (or
/// bringing a cancelled one back) onto a taken time changes nothing.
pub async fn change(
    pool: &PgPool,
    client_id: TenantId,
    id: AppointmentId,
    change: &Change,
) -> Result<Appointment, AgendaError> {
    let mut tx = begin_tenant(pool, client_id).await.context("opening a tenant transaction")?;
    let current = appointments::find(&mut tx, client_id, id).await.context("reading")?.ok_or(AgendaError::NotFound)?;
    let starts_at = change.starts_at.unwrap_or(current.starts_at);
    let ends_at = change.ends_at.unwrap_or(current.ends_at);
    let status = change.status.unwrap_or(current.status);
    let mut attempt = tx.begin().await.context("savepoint")?;
    match appointments::change(&mut attempt, client_id, id, starts_at, ends_at, status).await {
        Ok(Some(updated)) => {
            attempt.commit().await.context("savepoint release")?;
            let moved = updated.starts_at != current.starts_at || updated.ends_at != current.ends_at;
            let cancelled =
                updated.status == AppointmentStatus::Cancelled && current.status != AppointmentStatus::Cancelled;
            let event = if cancelled {
                Some((EventKind::AppointmentCancelled, None))
            } else if moved {
                Some((EventKind::AppointmentRescheduled, Some(&current)))
            } else if current.status == AppointmentStatus::Cancelled && updated.status != AppointmentStatus::Cancelled {
                Some((EventKind::AppointmentBooked, None))
            } else {
                None
            };
            if let Some((kind, previous)) = event {
                appointments::announce(&mut tx, kind, &updated, previous)
                    .await
                    .context("recording the change's webhooks")?;
            }
            tx.commit().await.context("committing the change")?;
            Ok(updated)
        }
        Ok(None) => Err(AgendaError::NotFound),
        Err(InsertError::SlotTaken) => {
            attempt.rollback().await.context("savepoint rollback")?;
            Err(overlap(&mut tx, client_id, starts_at, ends_at, Some(id)).await)
        }
        Err(e) => Err(anyhow::Error::from(e).context("changing the appointment").into()),
    }
}
