//! Reminder texts 24 hours and 1 hour before each confirmed appointment, in the caller's
//! language. A sweep queues each due one in the outbox, exactly once across instances
//! and restarts; when they are due is `domain::reminders`' call, sending is the outbox's.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use minijinja::context;
use sqlx::PgPool;

use crate::dialogue::phrasing;
use crate::dialogue::prompts::written;
use crate::domain::ids::TenantId;
use crate::domain::messages::Direction;
use crate::domain::reminders::{self as rules, Decision, ReminderKind};
use crate::domain::scheduling::Slot;
use crate::domain::tenants::Tenant;
use crate::storage::postgres::reminders::{self as store, Candidate};
use crate::storage::postgres::{begin_tenant, messages, tenants};

/// The reminder worker: a sweep every `every`.
#[derive(Clone)]
pub struct Reminders {
    pool: PgPool,
    every: StdDuration,
}

impl Reminders {
    pub fn new(pool: PgPool, every: StdDuration) -> Self {
        Self { pool, every: every.max(StdDuration::from_secs(1)) }
    }

    /// Runs [`sweep`] every configured interval until the process ends (or the handle is
    /// aborted). A failed sweep is logged and tried again at the next tick.
    pub fn spawn_sweeper(&self) -> tokio::task::JoinHandle<()> {
        let reminders = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(reminders.every);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match sweep(&reminders.pool, Utc::now()).await {
                    Ok(0) => {}
                    Ok(queued) => tracing::info!(queued, "reminders queued"),
                    Err(e) => tracing::warn!(error = %e, "reminder sweep failed; trying again next time"),
                }
            }
        })
    }
}

/// Queues every reminder due at `now`, returning how many this call queued. Safe to run
/// on several instances at once: each reminder's row and its text are written in one
/// transaction under a unique key, so only one of them queues it.
pub async fn sweep(pool: &PgPool, now: DateTime<Utc>) -> anyhow::Result<usize> {
    let candidates =
        store::candidates(pool, now, now + rules::LOOKAHEAD).await.context("reading upcoming appointments")?;
    let mut tenants_seen: HashMap<TenantId, Option<Tenant>> = HashMap::new();
    let mut queued = 0;
    for candidate in candidates {
        let tenant = match tenants_seen.get(&candidate.client_id) {
            Some(tenant) => tenant.clone(),
            None => {
                let found = match tenants::find(pool, candidate.client_id).await {
                    Ok(found) => found,
                    Err(e) => {
                        // One unreadable tenant must not hold back every other tenant's reminders.
                        tracing::warn!(tenant_id = %candidate.client_id, error = %e, "cannot read tenant for reminders");
                        None
                    }
                };
                tenants_seen.insert(candidate.client_id, found.clone());
                found
            }
        };
        let Some(tenant) = tenant else { continue };
        for kind in ReminderKind::ALL.iter().copied() {
            if candidate.sent(kind) {
                continue;
            }
            let decision = rules::decide(kind, candidate.starts_at, candidate.time_set_at, tenant.timezone, now);
            if decision != Decision::Send {
                continue;
            }
            match queue_one(pool, &tenant, &candidate, kind, now).await {
                Ok(true) => queued += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    tenant_id = %tenant.id, appointment_id = %candidate.id, kind = kind.as_str(), error = %e,
                    "could not queue a reminder"
                ),
            }
        }
    }
    Ok(queued)
}

/// Queues one reminder with its row in one transaction; `false` when the appointment is no
/// longer confirmed at that time or another instance queued the reminder first.
async fn queue_one(
    pool: &PgPool,
    tenant: &Tenant,
    candidate: &Candidate,
    kind: ReminderKind,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let mut tx = begin_tenant(pool, tenant.id).await?;
    let Some(appointment) = store::lock_if_due(&mut tx, tenant.id, candidate.id, candidate.starts_at).await? else {
        return Ok(false);
    };
    let language = appointment.language().unwrap_or(tenant.language);
    let slot = Slot { starts_at: appointment.starts_at, ends_at: appointment.ends_at };
    let when = phrasing::describe_slot(&tenant.calendar(), &slot, now, language);
    let body = written(
        language,
        kind.as_str(),
        &context! { business_name => tenant.business_name.as_str(), name => appointment.customer_name.as_str(), when },
    )?;
    let message_id = messages::queue(
        &mut tx,
        &messages::NewMessage {
            client_id: tenant.id,
            contact_id: appointment.contact_id,
            call_id: None,
            direction: Direction::Outbound,
            kind: kind.as_str(),
            to_number: &appointment.customer_phone,
            from_number: tenant.ringlypro_number.as_deref().unwrap_or_default(),
            body: &body,
        },
    )
    .await
    .context("queueing the reminder")?;
    if !store::record(&mut tx, tenant.id, appointment.id, kind, appointment.starts_at, message_id).await? {
        // Another instance queued this reminder; dropping the transaction drops our text.
        return Ok(false);
    }
    tx.commit().await.context("committing the reminder")?;
    Ok(true)
}
