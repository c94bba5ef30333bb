//! Texts that act on the sender's next appointment: CANCEL, CONFIRM and RESCHEDULE (and
//! their Spanish words). Reading the command is `domain::reminders`' job; the webhook that
//! receives the text, threads it and answers with TwiML is not this module's.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use minijinja::context;
use sqlx::PgPool;

use crate::dialogue::phrasing;
use crate::dialogue::prompts::written;
use crate::domain::phone::PhoneNumber;
use crate::domain::reminders::{self as rules, ReplyCommand};
use crate::domain::scheduling::Slot;
use crate::domain::tenants::Tenant;
use crate::services::booking;
use crate::storage::postgres::begin_tenant;
use crate::storage::postgres::reminders::{self as store, Reminded};

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
            written(language, "reply_reschedule", &ctx)?
        }
    };
    Ok(Some(text))
}

/// The number callers reach the business at, as people write it (`(555) 123-4567`).
fn business_number(tenant: &Tenant) -> String {
    let number = tenant.ringlypro_number.as_deref().unwrap_or_default();
    PhoneNumber::parse(number).map(|n| n.formatted()).unwrap_or_else(|_| number.to_owned())
}
