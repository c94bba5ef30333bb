//! Metering and the prepaid balance: each ended call charged once, the free minutes reset
//! once a month, payments, refunds and adjustments applied once, the lock set and lifted in
//! the same transaction as the change that causes it. Every change takes the account row
//! `FOR UPDATE` first, so concurrent calls and payments of one tenant never lose an update,
//! and writes its ledger row under a unique key, so a retried callback changes nothing.
//! Talking to Stripe is for `services::payments`; this module only moves credit.

use anyhow::Context;
use chrono::{DateTime, Utc};
use minijinja::context;
use sqlx::{PgConnection, PgPool};

use crate::domain::calls::{HandledBy, Outcome};
use crate::domain::credits::{self, Account, Charge, NotCharged};
use crate::domain::ids::{CallId, TenantId, UserId};
use crate::domain::language::Language;
use crate::domain::tenants::parse_zone;
use crate::storage::postgres::credits::{self as store, AccountRow, NewPayment, NewUsage, PaymentKind};
use crate::storage::postgres::{email_outbox, messages};

/// A failure to meter or credit.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("no call with SID {0}")]
    UnknownCall(String),
    #[error("tenant {0} has no credit account")]
    NoAccount(TenantId),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for BillingError {
    fn from(e: sqlx::Error) -> Self {
        BillingError::Unexpected(e.into())
    }
}

/// Terminal call statuses in which nobody talked.
const UNANSWERED: [&str; 4] = ["busy", "failed", "no-answer", "canceled"];

/// What metering a call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metered {
    Charged {
        charge: Charge,
        balance_after_cents: i64,
        locked: bool,
    },
    NotCharged(NotCharged),
    /// The call was metered before (a retried or duplicated callback).
    AlreadyMetered,
    /// The call has not ended and no duration is known yet.
    NotOver,
}

/// A threshold crossing the saved card should pay for, once, with this idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoReloadDue {
    pub client_id: TenantId,
    pub amount_cents: i64,
    pub idempotency_key: String,
    pub customer: String,
    pub payment_method: String,
}

/// Where the owner reloads, for texts and e-mails.
#[derive(Debug, Clone)]
pub struct Links {
    pub credits_page: String,
}

/// The duration a charge is based on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// Twilio's `CallDuration` from a terminal status callback, and the status.
    Twilio { seconds: i32 },
    /// No callback came: our own record of the call.
    CallRecord,
}

#[derive(Debug, sqlx::FromRow)]
struct EndedCall {
    id: CallId,
    client_id: TenantId,
    call_sid: String,
    from_number: String,
    handled_by: HandledBy,
    outcome: Outcome,
    status: String,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    duration_seconds: Option<i32>,
    agent_spoke: bool,
}

/// Meters one call, once: from Twilio's duration when the callback brought one, else from
/// our own record. Returns what it did, and an automatic reload to start if the charge
/// crossed the owner's threshold.
pub async fn meter_call(
    pool: &PgPool,
    links: &Links,
    call_sid: &str,
    reported: Reported,
    now: DateTime<Utc>,
) -> Result<(Metered, Option<AutoReloadDue>), BillingError> {
    let mut tx = pool.begin().await?;
    let call: EndedCall = sqlx::query_as(
        "SELECT c.id, c.client_id, c.call_sid, c.from_number, c.handled_by, c.outcome, c.status, c.started_at, \
             c.ended_at, c.duration_seconds, \
             EXISTS (SELECT 1 FROM call_turns t WHERE t.call_id = c.id AND t.speaker = 'agent') AS agent_spoke \
         FROM calls c WHERE c.call_sid = $1",
    )
    .bind(call_sid)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| BillingError::UnknownCall(call_sid.to_owned()))?;
    // Everything that needs no lock is read before the tenant's account row is taken, so
    // the tenant's other calls ending now wait for as few statements as possible. A
    // callback replayed meanwhile is still caught: `insert_usage` is keyed by the call.
    if store::usage_for_call(&mut tx, call.id).await?.is_some() {
        // A replay still moves the account into the month `now` falls in.
        let row = store::lock(&mut tx, call.client_id).await?.ok_or(BillingError::NoAccount(call.client_id))?;
        roll_cycle(&mut tx, &row, now).await?;
        tx.commit().await?;
        return Ok((Metered::AlreadyMetered, None));
    }
    let caller = crate::domain::phone::PhoneNumber::parse(&call.from_number)
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|_| call.from_number.clone());
    let blocked = store::is_blocked(&mut tx, call.client_id, &caller).await?;
    let record_seconds =
        call.ended_at.map(|end| (end - call.started_at).num_seconds().clamp(0, i32::MAX as i64) as i32);
    let (seconds, source) = match reported {
        Reported::Twilio { seconds } => (seconds, "twilio"),
        Reported::CallRecord => match (call.duration_seconds, record_seconds) {
            (Some(twilio), _) => (twilio, "twilio"),
            (None, Some(ours)) => (ours, "call"),
            (None, None) => {
                tx.commit().await?;
                return Ok((Metered::NotOver, None));
            }
        },
    };
    // A call handed to the owner is charged for the assistant's part only: up to the end
    // of our stream, not the owner's conversation after it.
    let seconds = match (call.outcome, record_seconds) {
        (Outcome::Transfer, Some(ours)) => seconds.min(ours),
        _ => seconds,
    };
    let row = store::lock(&mut tx, call.client_id).await?.ok_or(BillingError::NoAccount(call.client_id))?;
    let account = roll_cycle(&mut tx, &row, now).await?;
    let reason = if blocked {
        Some(NotCharged::BlockedCaller)
    } else if UNANSWERED.contains(&call.status.as_str()) {
        Some(NotCharged::NotAnswered)
    } else if call.handled_by != HandledBy::Agent || (call.outcome == Outcome::Transfer && !call.agent_spoke) {
        Some(NotCharged::OwnerAnswered)
    } else if seconds < credits::SHORTEST_CHARGED_SECONDS {
        Some(NotCharged::TooShort)
    } else {
        None
    };
    let charge = match reason {
        Some(_) => credits::price(&account, 0),
        None => credits::price(&account, credits::billable_minutes(seconds)),
    };
    let after = credits::apply(&account, &charge);
    let usage = NewUsage {
        client_id: call.client_id,
        call_id: call.id,
        call_sid: &call.call_sid,
        duration_seconds: seconds.max(0),
        duration_source: source,
        charge,
        before: &account,
        after: &after,
        not_charged: reason,
    };
    if !store::insert_usage(&mut tx, &usage).await? {
        return Ok((Metered::AlreadyMetered, None));
    }
    store::store(&mut tx, call.client_id, &after).await?;
    sqlx::query("UPDATE calls SET cost_cents = $2 WHERE id = $1")
        .bind(call.id)
        .bind(charge.cost_cents)
        .execute(&mut *tx)
        .await?;
    let auto_reload = after_balance_change(&mut tx, links, &row, &account, &after, now).await?;
    tx.commit().await?;
    let metered = match reason {
        Some(reason) => Metered::NotCharged(reason),
        None => Metered::Charged { charge, balance_after_cents: after.balance_cents, locked: !after.can_answer() },
    };
    tracing::info!(call_sid, tenant_id = %call.client_id, ?metered, seconds, source, "call metered");
    metrics::counter!("ringlypro_minutes_charged_total").increment(charge.minutes as u64);
    Ok((metered, auto_reload))
}

/// Calls that ended at least `grace` ago with no usage yet (Twilio's callback never came):
/// metered from our own record. Returns how many were metered.
pub async fn meter_forgotten_calls(
    pool: &PgPool,
    links: &Links,
    grace: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<(usize, Vec<AutoReloadDue>), BillingError> {
    let sids: Vec<String> = sqlx::query_scalar(
        "SELECT c.call_sid FROM calls c \
         WHERE c.ended_at IS NOT NULL AND c.ended_at < $1 AND c.ended_at > $1 - interval '30 days' \
           AND NOT EXISTS (SELECT 1 FROM usage_records u WHERE u.call_id = c.id) \
         ORDER BY c.ended_at LIMIT 500",
    )
    .bind(now - grace)
    .fetch_all(pool)
    .await?;
    let mut metered = 0;
    let mut reloads = Vec::new();
    for sid in sids {
        match meter_call(pool, links, &sid, Reported::CallRecord, now).await {
            Ok((Metered::Charged { .. } | Metered::NotCharged(_), reload)) => {
                metered += 1;
                reloads.extend(reload);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(call_sid = %sid, error = %e, "could not meter a call from its own record"),
        }
    }
    Ok((metered, reloads))
}

/// Resets the free minutes of every tenant whose month has turned in its own zone.
/// Several instances may run this at once: each account is reset once.
pub async fn reset_due_cycles(pool: &PgPool, now: DateTime<Utc>) -> Result<usize, BillingError> {
    let due = {
        let mut conn = pool.acquire().await?;
        store::due_for_reset(&mut conn, now).await?
    };
    let mut reset = 0;
    for client_id in due {
        let mut tx = pool.begin().await?;
        let Some(row) = store::lock(&mut tx, client_id).await? else { continue };
        let rolled = roll_cycle(&mut tx, &row, now).await?;
        tx.commit().await?;
        if rolled.cycle_start != row.cycle_start {
            reset += 1;
        }
    }
    Ok(reset)
}

/// The account as of `now`: rolled into the current month first if the month has turned
/// (which may unlock it). Cheap when nothing is due: one read, no lock.
pub async fn standing(pool: &PgPool, client_id: TenantId, now: DateTime<Utc>) -> Result<AccountRow, BillingError> {
    let mut conn = pool.acquire().await?;
    let row = store::read(&mut conn, client_id).await?.ok_or(BillingError::NoAccount(client_id))?;
    let zone = parse_zone(&row.timezone).context("the tenant's zone")?;
    if credits::roll(&row.account(), now, zone).1.is_none() {
        return Ok(row);
    }
    drop(conn);
    let mut tx = pool.begin().await?;
    let row = store::lock(&mut tx, client_id).await?.ok_or(BillingError::NoAccount(client_id))?;
    roll_cycle(&mut tx, &row, now).await?;
    let row = store::read(&mut tx, client_id).await?.ok_or(BillingError::NoAccount(client_id))?;
    tx.commit().await?;
    Ok(row)
}

/// Moves a locked account into the month `now` falls in, recording the reset once.
async fn roll_cycle(conn: &mut PgConnection, row: &AccountRow, now: DateTime<Utc>) -> Result<Account, BillingError> {
    let zone = parse_zone(&row.timezone).context("the tenant's zone")?;
    let (account, reset) = credits::roll(&row.account(), now, zone);
    if let Some(reset) = reset {
        store::insert_cycle(conn, row.client_id, &reset, row.free_minutes_limit).await?;
        store::store(conn, row.client_id, &account).await?;
        tracing::info!(tenant_id = %row.client_id, cycle = %reset.cycle_start, used = reset.free_used_before,
            unlocked = row.locked && account.can_answer(), "free minutes reset for the new month");
    }
    Ok(account)
}

/// A payment or adjustment to apply once.
#[derive(Debug, Clone)]
pub struct Credit<'a> {
    pub client_id: TenantId,
    pub kind: PaymentKind,
    /// Positive adds to the balance, negative takes from it.
    pub amount_cents: i64,
    pub reference: &'a str,
    pub payment_intent: Option<&'a str>,
    pub event_id: Option<&'a str>,
    pub note: &'a str,
    pub created_by: Option<UserId>,
}

/// What applying a credit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Done { balance_after_cents: i64, unlocked: bool, locked: bool },
    AlreadyApplied,
}

/// Applies a payment, refund or adjustment in the caller's transaction, once per reference.
pub async fn apply_credit(
    conn: &mut PgConnection,
    links: &Links,
    credit: &Credit<'_>,
    now: DateTime<Utc>,
) -> Result<(Applied, Option<AutoReloadDue>), BillingError> {
    let row = store::lock(conn, credit.client_id).await?.ok_or(BillingError::NoAccount(credit.client_id))?;
    let before = roll_cycle(conn, &row, now).await?;
    if store::payment_exists(conn, credit.reference).await? {
        return Ok((Applied::AlreadyApplied, None));
    }
    let payment = NewPayment {
        client_id: credit.client_id,
        kind: credit.kind,
        amount_cents: credit.amount_cents,
        balance_before_cents: before.balance_cents,
        reference: credit.reference,
        stripe_payment_intent: credit.payment_intent,
        stripe_event_id: credit.event_id,
        note: credit.note,
        created_by: credit.created_by,
    };
    if !store::insert_payment(conn, &payment).await? {
        return Ok((Applied::AlreadyApplied, None));
    }
    let after = Account { balance_cents: before.balance_cents + credit.amount_cents, ..before };
    store::store(conn, credit.client_id, &after).await?;
    if credit.amount_cents > 0 && matches!(credit.kind, PaymentKind::AutoReload | PaymentKind::Reload) {
        sqlx::query("UPDATE credit_accounts SET auto_reload_problem = NULL WHERE client_id = $1")
            .bind(credit.client_id)
            .execute(&mut *conn)
            .await?;
    }
    let auto_reload = after_balance_change(conn, links, &row, &before, &after, now).await?;
    let applied = Applied::Done {
        balance_after_cents: after.balance_cents,
        unlocked: !before.can_answer() && after.can_answer(),
        locked: !after.can_answer(),
    };
    tracing::info!(tenant_id = %credit.client_id, kind = credit.kind.as_str(), amount_cents = credit.amount_cents,
        balance_after_cents = after.balance_cents, reference = credit.reference, "credit applied");
    Ok((applied, auto_reload))
}

/// Takes back a refund of a payment intent: Stripe reports the refunded total so far, and
/// only the part not yet taken back is applied, once per total.
pub async fn apply_refund(
    conn: &mut PgConnection,
    links: &Links,
    client_id: TenantId,
    payment_intent: &str,
    refunded_total_cents: i64,
    event_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(Applied, Option<AutoReloadDue>), BillingError> {
    // Lock first so two refund events of one payment are applied one after the other.
    store::lock(conn, client_id).await?.ok_or(BillingError::NoAccount(client_id))?;
    let already = store::refunded_so_far(conn, payment_intent).await?;
    let newly = refunded_total_cents - already;
    if newly <= 0 {
        return Ok((Applied::AlreadyApplied, None));
    }
    let reference = format!("refund:{payment_intent}:{refunded_total_cents}");
    let note = format!("Refund of {}", credits::dollars(newly));
    let credit = Credit {
        client_id,
        kind: PaymentKind::Refund,
        amount_cents: -newly,
        reference: &reference,
        payment_intent: Some(payment_intent),
        event_id,
        note: &note,
        created_by: None,
    };
    apply_credit(conn, links, &credit, now).await
}

/// Queues a text to the tenant's owner, from the tenant's own number, in the caller's
/// transaction (so it is queued exactly when the change that causes it is committed).
pub async fn text_owner(
    conn: &mut PgConnection,
    client_id: TenantId,
    kind: &str,
    body: &str,
) -> Result<(), BillingError> {
    let Some((owner_phone, number)): Option<(String, Option<String>)> =
        sqlx::query_as("SELECT owner_phone, ringlypro_number FROM clients WHERE id = $1")
            .bind(client_id)
            .fetch_optional(&mut *conn)
            .await?
    else {
        return Ok(());
    };
    messages::queue(
        conn,
        &messages::NewMessage {
            client_id,
            contact_id: None,
            call_id: None,
            direction: messages::Direction::Outbound,
            kind,
            to_number: &owner_phone,
            from_number: number.as_deref().unwrap_or_default(),
            body,
        },
    )
    .await?;
    Ok(())
}

/// What follows any fall of the balance, in the same transaction: the monthly low-balance
/// warning, the notice that calls now go to the owner, and an automatic reload when the
/// balance crossed the owner's threshold (claimed here, charged after commit).
async fn after_balance_change(
    conn: &mut PgConnection,
    links: &Links,
    row: &AccountRow,
    before: &Account,
    after: &Account,
    now: DateTime<Utc>,
) -> Result<Option<AutoReloadDue>, BillingError> {
    let client_id = row.client_id;
    let locked_now = before.can_answer() && !after.can_answer();
    let low_alert = after.is_low() && store::claim_low_balance_alert(conn, client_id, after.cycle_start).await?;
    // Most calls change nothing the owner is told of; only then is the owner's row read.
    if locked_now || low_alert {
        tell_owner(conn, links, row, after, now, locked_now, low_alert).await?;
    }
    let crossed =
        credits::crossed_threshold(row.auto_reload_threshold_cents, before.balance_cents, after.balance_cents)
            || locked_now;
    let card = row.stripe_customer_id.clone().zip(row.stripe_payment_method_id.clone());
    match card {
        Some((customer, payment_method)) if row.auto_reload_enabled && crossed => {
            let attempt: i32 = sqlx::query_scalar(
                "UPDATE credit_accounts SET auto_reload_attempts = auto_reload_attempts + 1 WHERE client_id = $1 \
                 RETURNING auto_reload_attempts",
            )
            .bind(client_id)
            .fetch_one(&mut *conn)
            .await?;
            Ok(Some(AutoReloadDue {
                client_id,
                amount_cents: row.auto_reload_amount_cents,
                idempotency_key: format!("auto-reload:{client_id}:{attempt}"),
                customer,
                payment_method,
            }))
        }
        _ => Ok(None),
    }
}

/// Texts the owner that calls now go to them (`locked_now`) and/or that the balance is
/// low (`low_alert`, also e-mailed), in the caller's transaction.
async fn tell_owner(
    conn: &mut PgConnection,
    links: &Links,
    row: &AccountRow,
    after: &Account,
    now: DateTime<Utc>,
    locked_now: bool,
    low_alert: bool,
) -> Result<(), BillingError> {
    let client_id = row.client_id;
    let owner: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT business_name, owner_email FROM clients WHERE id = $1")
            .bind(client_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((business, owner_email)) = owner else { return Ok(()) };
    let business_name = business.as_str();
    let zone = parse_zone(&row.timezone).context("the tenant's zone")?;
    let link = links.credits_page.as_str();
    let text = |key: &str, ctx: minijinja::Value| crate::dialogue::prompts::written(Language::English, key, &ctx);
    let mut texts = Vec::new();
    if locked_now {
        texts.push(("credit_locked_alert", text("credit_locked_alert", context! { business_name, link })?));
    }
    if low_alert {
        let free_left = after.free_minutes_left();
        let balance = credits::dollars(after.balance_cents);
        let reset_day = credits::next_reset(now, zone).with_timezone(&zone).format("%B %-d").to_string();
        let body = text("credit_low_alert", context! { business_name, free_left, balance => balance.as_str(), link })?;
        texts.push(("credit_low_alert", body));
        if let Some(email) = owner_email.as_deref().filter(|e| !e.is_empty()) {
            let subject = text("credit_low_subject", context! {})?;
            let body = text(
                "credit_low_body",
                context! { business_name, free_left, balance => balance.as_str(), reset_day, link },
            )?;
            let email = email_outbox::NewEmail {
                client_id: Some(client_id),
                to_address: email,
                kind: "credit_low",
                subject: &subject,
                body: &body,
            };
            email_outbox::queue(conn, &email).await?;
        }
    }
    for (kind, body) in texts {
        text_owner(conn, client_id, kind, &body).await?;
    }
    Ok(())
}
