//! Texts that act on the sender's next appointment: CANCEL, CONFIRM and RESCHEDULE (and
//! their Spanish words). Reading the command is `domain::reminders`' job; the webhook that
//! receives the text, threads it and answers with TwiML is not this module's.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use minijinja::context;
use sqlx::PgPool;

use crate::dialogue::phrasing;
use crate::dialogue::prompts::written;
use crate::domain::language::Language;
use crate::domain::phone::PhoneNumber;
use crate::domain::reminders::{self as rules, ReplyCommand};
use crate::domain::scheduling::Preference;
use crate::domain::scheduling::Slot;
use crate::domain::tenants::Tenant;
use crate::services::booking::{self, BookingError, BookingRequest};
use crate::storage::postgres::reminders::{self as store, Reminded};
use crate::storage::postgres::{appointments, begin_tenant};

/// How many open times a RESCHEDULE reply offers.
const OFFERED: usize = 3;
/// How long a reply of 1, 2 or 3 books an offered time.
const OFFER_LIFETIME: chrono::Duration = chrono::Duration::days(1);

/// Texts that act on the sender's next appointment.
///
/// `Some(reply)` when `body` is a command (acted on, or answered with "no upcoming
/// appointment"); `None` for any other text, which the caller forwards to the owner.
pub async fn act_on_reply(
    pool: &PgPool,
    tenant: &Tenant,
    from: &str,
    body: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<String>> {
    let Some(reply) = rules::parse_reply(body) else { return Ok(None) };
    // A sender without a usable number can have no appointment under it.
    let phone = PhoneNumber::parse(from).ok();
    if let ReplyCommand::Choose(choice) = reply.command {
        // A bare number is a command only while it answers open offers.
        let Some(phone) = phone else { return Ok(None) };
        return choose_offer(pool, tenant, &phone, choice, now).await;
    }
    let (appointment, contact_language) = match &phone {
        Some(phone) => {
            let mut tx = begin_tenant(pool, tenant.id).await?;
            let appointment = store::next_for_phone(&mut tx, tenant.id, phone.as_str(), now).await?;
            let contact_language = store::contact_language(&mut tx, tenant.id, phone.as_str()).await?;
            tx.commit().await?;
            (appointment, contact_language)
        }
        None => (None, None),
    };
    let language = rules::reply_language(
        reply.language,
        contact_language,
        appointment.as_ref().and_then(Reminded::language),
        tenant.language,
    );
    let number = business_number(tenant);
    let Some(appointment) = appointment else {
        let text = written(
            language,
            "reply_no_appointment",
            &context! { business_name => tenant.business_name.as_str(), number },
        )?;
        return Ok(Some(text));
    };
    let slot = Slot { starts_at: appointment.starts_at, ends_at: appointment.ends_at };
    let when = phrasing::describe_slot(&tenant.calendar(), &slot, now, language);
    let ctx = context! { business_name => tenant.business_name.as_str(), when, number };
    let text = match reply.command {
        ReplyCommand::Cancel => {
            if booking::cancel_at(pool, tenant, appointment.id, None, now).await.context("cancelling by text")? {
                written(language, "reply_cancelled", &ctx)?
            } else {
                // Cancelled a moment ago by another path: nothing left to act on.
                written(language, "reply_no_appointment", &ctx)?
            }
        }
        ReplyCommand::Confirm => {
            let mut tx = begin_tenant(pool, tenant.id).await?;
            store::confirm(&mut tx, tenant.id, appointment.id, now).await.context("confirming by text")?;
            tx.commit().await?;
            written(language, "reply_confirmed", &ctx)?
        }
        ReplyCommand::Reschedule => {
            booking::ask_to_reschedule(pool, tenant, appointment.id, now).await.context("alerting the owner")?;
            offer_new_times(pool, tenant, &appointment, language, now, ctx).await?
        }
        ReplyCommand::Choose(_) => return Ok(None),
    };
    Ok(Some(text))
}

/// Offers up to three open times that a reply of 1, 2 or 3 books within a day; with none
/// open, the caller is asked to call.
async fn offer_new_times(
    pool: &PgPool,
    tenant: &Tenant,
    appointment: &Reminded,
    language: Language,
    now: DateTime<Utc>,
    ctx: minijinja::Value,
) -> anyhow::Result<String> {
    let slots = booking::availability(pool, tenant, &Preference::default(), now, OFFERED).await?;
    if slots.is_empty() {
        return written(language, "reply_reschedule", &ctx);
    }
    let mut tx = begin_tenant(pool, tenant.id).await?;
    store::replace_offers(
        &mut tx,
        tenant.id,
        appointment.id,
        &appointment.customer_phone,
        &slots,
        now + OFFER_LIFETIME,
    )
    .await
    .context("saving the offered times")?;
    tx.commit().await?;
    let calendar = tenant.calendar();
    let options: Vec<String> = slots.iter().map(|s| phrasing::describe_slot(&calendar, s, now, language)).collect();
    written(language, "reply_reschedule_offers", &context! { options, ..ctx })
}

/// Books the offered time number `choice` in place of the appointment it was offered for;
/// `None` when the sender has no such open offer (the text is then an ordinary message).
async fn choose_offer(
    pool: &PgPool,
    tenant: &Tenant,
    phone: &PhoneNumber,
    choice: u8,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<String>> {
    let mut tx = begin_tenant(pool, tenant.id).await?;
    let Some((appointment_id, slot)) = store::take_offer(&mut tx, tenant.id, phone.as_str(), choice, now).await? else {
        return Ok(None);
    };
    let appointment = appointments::find(&mut tx, tenant.id, appointment_id).await?;
    let contact_language = store::contact_language(&mut tx, tenant.id, phone.as_str()).await?;
    tx.commit().await?;
    let language = rules::reply_language(None, contact_language, None, tenant.language);
    let number = business_number(tenant);
    let ctx = context! { business_name => tenant.business_name.as_str(), number };
    let Some(appointment) = appointment else {
        return Ok(Some(written(language, "reply_no_appointment", &ctx)?));
    };
    let req = BookingRequest {
        name: appointment.customer_name.clone(),
        phone: appointment.customer_phone.clone(),
        slot,
        call_id: None,
        language,
        source: appointment.source,
    };
    let text = match booking::reschedule(pool, tenant, appointment_id, &req, now).await {
        Ok(_) => {
            let when = phrasing::describe_slot(&tenant.calendar(), &slot, now, language);
            written(language, "reply_rescheduled", &context! { when, ..ctx })?
        }
        Err(BookingError::SlotTaken | BookingError::NotBookable) => written(language, "reply_offer_taken", &ctx)?,
        Err(BookingError::NotFound | BookingError::MissingDetails) => written(language, "reply_no_appointment", &ctx)?,
        Err(BookingError::Unexpected(e)) => return Err(e.context("booking the chosen time")),
    };
    Ok(Some(text))
}

/// The number callers reach the business at, as people write it (`(555) 123-4567`).
fn business_number(tenant: &Tenant) -> String {
    let number = tenant.ringlypro_number.as_deref().unwrap_or_default();
    PhoneNumber::parse(number).map(|n| n.formatted()).unwrap_or_else(|_| number.to_owned())
}
