//! The owner's Credits page (`/app/credits`) and its JSON twin (`/api/credits`): balance,
//! free minutes and their reset, the lock, minutes per day, the ledger, reloads and their
//! status page, auto-reload, and what the minutes bought. Money moves only through
//! `Payments`; this module reads and asks.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use chrono::{DateTime, Datelike, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use minijinja::context;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::credits::{self, RELOAD_AMOUNTS_CENTS, dollars};
use crate::domain::ids::TenantId;
use crate::domain::phone::PhoneNumber;
use crate::domain::tenants::parse_zone;
use crate::services::credits::{BillingError, standing};
use crate::services::payments::{AutoReloadSettings, ReloadError, ReloadStart};
use crate::storage::postgres::begin_tenant;
use crate::storage::postgres::credit_reports::{self, DayMinutes, LedgerLine, PeriodValue};
use crate::storage::postgres::credits::{self as store, AccountRow, Reload};
use crate::web::Error;
use crate::web::WebState;
use crate::web::auth::Owner;
use crate::web::error::ErrorBody;
use crate::web::json_body::JsonBody;
use crate::web::shell::render;
use crate::web::today::day_bounds;

/// Ledger lines shown.
const LEDGER_LINES: i64 = 50;
/// Days in the usage chart and the "last 30 days" figures.
const CHART_DAYS: u64 = 30;
/// Auto-reload thresholds offered, in cents.
const THRESHOLDS_CENTS: [i64; 6] = [100, 200, 500, 1000, 2000, 5000];

/// A credits request that failed: a web error, or a refusal of the billing desk.
#[derive(Debug, thiserror::Error)]
pub enum CreditsError {
    #[error(transparent)]
    Web(#[from] Error),
    #[error(transparent)]
    Reload(#[from] ReloadError),
}

impl From<sqlx::Error> for CreditsError {
    fn from(e: sqlx::Error) -> Self {
        CreditsError::Web(e.into())
    }
}

impl From<BillingError> for CreditsError {
    fn from(e: BillingError) -> Self {
        CreditsError::Reload(e.into())
    }
}

/// The status a billing refusal is sent with: 404 for a reload that is not theirs, 503
/// when the payment service did not answer, 500 for a failure of ours, and 400 with its
/// message for everything the person can act on (a bad amount, no reason, no card, ...).
pub(crate) fn status_of(e: &ReloadError) -> StatusCode {
    match e {
        ReloadError::UnknownReload => StatusCode::NOT_FOUND,
        ReloadError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ReloadError::Billing(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The web error a billing refusal is (see [`status_of`]); a payment service that did not
/// answer is sent as 503 by [`CreditsError`].
pub(crate) fn web_error(e: ReloadError) -> Error {
    match e {
        ReloadError::UnknownReload => Error::NotFound(e.to_string()),
        ReloadError::Unavailable => Error::Unexpected(anyhow::anyhow!("the payment service did not answer")),
        ReloadError::Billing(e) => Error::Unexpected(anyhow::Error::new(e).context("billing")),
        e => Error::BadRequest(e.to_string()),
    }
}

impl IntoResponse for CreditsError {
    fn into_response(self) -> Response {
        match self {
            CreditsError::Web(e) => e.into_response(),
            CreditsError::Reload(ReloadError::Unavailable) => {
                let body =
                    ErrorBody { error: ReloadError::Unavailable.to_string(), field: None, fields: None, link: None };
                (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
            }
            CreditsError::Reload(e) => web_error(e).into_response(),
        }
    }
}

/// The owner's auto-reload choice and card, as shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AutoReloadView {
    pub enabled: bool,
    pub amount_cents: i64,
    pub threshold_cents: i64,
    pub card_saved: bool,
    pub card_saved_at: Option<DateTime<Utc>>,
    /// Why the last automatic reload did not go through, until one does.
    pub problem: Option<String>,
}

/// One line of the ledger, with what the page and the API read off it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LedgerEntry {
    #[serde(flatten)]
    pub line: LedgerLine,
    /// A call's cost (positive), zero for anything else.
    pub cost_cents: i64,
    /// The explanation of a call not charged, or a payment's note (an adjustment's reason).
    pub reason: Option<String>,
}

/// Minutes on one local day.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct DayUsage {
    pub date: NaiveDate,
    pub minutes: i64,
}

/// What the minutes of a period bought. A cost per thing is `null` when there was none.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct ValueFigures {
    pub calls_answered: i64,
    pub bookings: i64,
    pub spent_cents: i64,
    pub cost_per_booking_cents: Option<i64>,
    /// Bookings of the period marked completed.
    pub kept: i64,
    pub no_shows: i64,
    pub cancelled: i64,
    pub cost_per_kept_appointment_cents: Option<i64>,
}

/// This month's and the last 30 days' figures.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct ValueView {
    pub month: ValueFigures,
    pub last_30_days: ValueFigures,
}

/// The credit account as the owner sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreditsView {
    pub balance_cents: i64,
    pub free_minutes_left: i32,
    pub free_minutes_limit: i32,
    pub free_minutes_used: i32,
    /// The agent stopped answering: calls ring the owner until a reload or the reset.
    pub locked: bool,
    /// Low enough to warn: under $1.00 with no free minutes, or under 10 free minutes with
    /// no balance.
    pub low: bool,
    /// When the free minutes reset (midnight on the 1st in the business's time zone).
    pub resets_at: DateTime<Utc>,
    pub rate_cents_per_minute: i32,
    /// The reload amounts on offer, in cents.
    pub reload_amounts_cents: Vec<i64>,
    pub auto_reload: AutoReloadView,
    /// Reloads still waiting for payment or an administrator's confirmation.
    pub pending_reloads: Vec<Reload>,
    /// Newest first.
    pub ledger: Vec<LedgerEntry>,
    /// The last 30 local days, oldest first, today last.
    pub usage_by_day: Vec<DayUsage>,
    pub value: ValueView,
}

/// The first instant of `date` in `zone`.
fn start_of(date: NaiveDate, zone: Tz) -> DateTime<Utc> {
    // Noon exists on every day in every zone; the day around it gives its bounds.
    let noon = date.and_hms_opt(12, 0, 0).unwrap_or_default();
    let instant = zone.from_local_datetime(&noon).earliest().map(|t| t.with_timezone(&Utc));
    day_bounds(zone, instant.unwrap_or_else(|| noon.and_utc())).0
}

/// `part / count`, rounded to the nearest cent; `None` when there is nothing to divide by.
pub fn per(part: i64, count: i64) -> Option<i64> {
    (count > 0).then(|| (part + count / 2) / count)
}

fn figures(v: PeriodValue) -> ValueFigures {
    ValueFigures {
        calls_answered: v.calls_answered,
        bookings: v.bookings,
        spent_cents: v.spent_cents,
        cost_per_booking_cents: per(v.spent_cents, v.bookings),
        kept: v.kept,
        no_shows: v.no_shows,
        cancelled: v.cancelled,
        cost_per_kept_appointment_cents: per(v.spent_cents, v.kept),
    }
}

/// Every day from `first` to `last`, with the minutes of the days that had some.
pub fn fill_days(first: NaiveDate, last: NaiveDate, days: &[DayMinutes]) -> Vec<DayUsage> {
    first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(|date| DayUsage { date, minutes: days.iter().find(|d| d.day == date).map_or(0, |d| d.minutes) })
        .collect()
}

fn entry(line: LedgerLine) -> LedgerEntry {
    let reason = match (&line.not_charged, &line.note) {
        (Some(n), _) => Some(n.explanation().to_owned()),
        (None, Some(note)) if !note.is_empty() => Some(note.clone()),
        _ => None,
    };
    let cost_cents = if line.kind == "call" { -line.amount_cents } else { 0 };
    LedgerEntry { line, cost_cents, reason }
}

/// The JSON view and the zone the page writes its dates in.
struct Overview {
    view: CreditsView,
    zone: Tz,
}

async fn overview(app: &WebState, client_id: TenantId) -> Result<Overview, CreditsError> {
    let now = Utc::now();
    let row: AccountRow = standing(&app.pool, client_id, now).await?;
    let zone = parse_zone(&row.timezone).map_err(|e| Error::Unexpected(anyhow::Error::new(e)))?;
    let account = row.account();
    let today = now.with_timezone(&zone).date_naive();
    let first_day = today.checked_sub_days(Days::new(CHART_DAYS - 1)).unwrap_or(today);
    let chart_from = start_of(first_day, zone);
    let month_from = start_of(credits::cycle_start(now, zone), zone);
    let until = day_bounds(zone, now).1;

    let mut tx = begin_tenant(&app.pool, client_id).await?;
    let lines = credit_reports::ledger(&mut tx, client_id, LEDGER_LINES).await?;
    let days = credit_reports::minutes_by_day(&mut tx, client_id, &row.timezone, chart_from).await?;
    let month = credit_reports::period_value(&mut tx, client_id, month_from, until).await?;
    let last_30 = credit_reports::period_value(&mut tx, client_id, chart_from, until).await?;
    let pending = store::pending_reloads(&mut tx, client_id).await?;
    tx.commit().await?;

    let view = CreditsView {
        balance_cents: account.balance_cents,
        free_minutes_left: account.free_minutes_left(),
        free_minutes_limit: account.free_minutes_limit,
        free_minutes_used: account.free_minutes_used,
        locked: row.locked,
        low: account.is_low(),
        resets_at: credits::next_reset(now, zone),
        rate_cents_per_minute: account.rate_cents_per_minute,
        reload_amounts_cents: RELOAD_AMOUNTS_CENTS.to_vec(),
        auto_reload: AutoReloadView {
            enabled: row.auto_reload_enabled,
            amount_cents: row.auto_reload_amount_cents,
            threshold_cents: row.auto_reload_threshold_cents,
            card_saved: row.stripe_payment_method_id.is_some(),
            card_saved_at: row.card_saved_at,
            problem: row.auto_reload_problem.clone(),
        },
        pending_reloads: pending,
        ledger: lines.into_iter().map(entry).collect(),
        usage_by_day: fill_days(first_day, today, &days),
        value: ValueView { month: figures(month), last_30_days: figures(last_30) },
    };
    Ok(Overview { view, zone })
}

/// The usage chart: one bar per day, the busiest day's minutes on the axis, the first,
/// middle and last dates under it. Inline SVG, no script; the title says it in words.
pub fn usage_chart(days: &[DayUsage]) -> String {
    const WIDTH: i64 = 320;
    const HEIGHT: i64 = 150;
    const LEFT: i64 = 28;
    const BOTTOM: i64 = 20;
    const TOP: i64 = 8;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let max = days.iter().map(|d| d.minutes).max().unwrap_or(0).max(1);
    let total: i64 = days.iter().map(|d| d.minutes).sum();
    let n = i64::try_from(days.len()).unwrap_or(1).max(1);
    let slot = (WIDTH - LEFT) as f64 / n as f64;
    let label = |d: NaiveDate| format!("{} {}", month_abbr(d.month()), d.day());
    let (first, last) = (days.first().map(|d| label(d.date)), days.last().map(|d| label(d.date)));
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-labelledby=\"usage-title\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title id=\"usage-title\">Minutes per day, {} to {}: {total} minutes \
         in all, at most {max} in a day</title>",
        first.clone().unwrap_or_default(),
        last.clone().unwrap_or_default(),
    );
    svg.push_str(&format!(
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{y}\" x2=\"{WIDTH}\" y2=\"{y}\"/>\
         <text class=\"tick\" x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\">{max}</text>\
         <text class=\"tick\" x=\"{tx}\" y=\"{y}\" text-anchor=\"end\">0</text>",
        y = HEIGHT - BOTTOM,
        tx = LEFT - 4,
        ty = TOP + 8,
    ));
    for (i, d) in days.iter().enumerate() {
        let h = (d.minutes as f64 / max as f64 * plot_h as f64).round();
        let x = LEFT as f64 + slot * i as f64 + slot * 0.15;
        let y = (HEIGHT - BOTTOM) as f64 - h;
        svg.push_str(&format!(
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\"><title>{}: {} min</title></rect>",
            label(d.date),
            d.minutes,
            w = slot * 0.7,
        ));
    }
    let mid = days.get(days.len() / 2).map(|d| (days.len() / 2, label(d.date)));
    let marks = [days.first().map(|d| (0, label(d.date))), mid, days.last().map(|d| (days.len() - 1, label(d.date)))];
    for (i, (at, text)) in marks.into_iter().flatten().enumerate() {
        let x = LEFT as f64 + slot * at as f64 + slot / 2.0;
        let anchor = ["start", "middle", "end"][i.min(2)];
        let x = if i == 0 {
            LEFT as f64
        } else if i == 2 {
            WIDTH as f64
        } else {
            x
        };
        svg.push_str(&format!(
            "<text class=\"tick\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"{anchor}\">{text}</text>",
            HEIGHT - 4
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn month_abbr(month: u32) -> &'static str {
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        [(month.clamp(1, 12) - 1) as usize]
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "call" => "Call",
        "reload" => "Reload",
        "auto_reload" => "Automatic reload",
        "manual_reload" => "Reload, confirmed by RinglyPro",
        "refund" => "Refund",
        "adjustment" => "Adjustment by RinglyPro",
        "failed" => "Payment that did not go through",
        "reset" => "Free minutes reset",
        _ => "Entry",
    }
}

fn signed_dollars(cents: i64) -> String {
    if cents > 0 { format!("+{}", dollars(cents)) } else { dollars(cents) }
}

fn cost_or_dash(cents: Option<i64>) -> String {
    cents.map(dollars).unwrap_or_else(|| "—".to_owned())
}

fn figures_context(f: &ValueFigures) -> minijinja::Value {
    context! {
        calls_answered => f.calls_answered,
        bookings => f.bookings,
        spent => dollars(f.spent_cents),
        per_booking => cost_or_dash(f.cost_per_booking_cents),
        kept => f.kept,
        no_shows => f.no_shows,
        cancelled => f.cancelled,
        per_kept => cost_or_dash(f.cost_per_kept_appointment_cents),
    }
}

/// A reload's state in words, and whether it is still waiting.
pub fn reload_message(reload: &Reload, balance_cents: i64) -> String {
    let amount = dollars(reload.amount_cents);
    match (reload.status.as_str(), reload.kind.as_str()) {
        ("pending", "card_setup") => "Saving your card. This page updates by itself.".to_owned(),
        ("paid", "card_setup") => "Card saved: turn on automatic reloads on the Credits page.".to_owned(),
        ("pending", "manual") => format!(
            "Waiting for confirmation: a RinglyPro administrator confirms your {amount} payment, then the credit is added."
        ),
        ("pending", _) => format!("Payment processing: {amount}. This page updates by itself."),
        ("paid", _) => format!("Paid: {amount} added. Your balance is now {}.", dollars(balance_cents)),
        ("failed", _) => format!(
            "The payment of {amount} did not go through: {}",
            reload.problem.as_deref().unwrap_or("the card was declined")
        ),
        ("cancelled", _) => "Reload cancelled, nothing was charged.".to_owned(),
        (other, _) => format!("Reload {other}."),
    }
}

fn pending_context(reload: &Reload) -> minijinja::Value {
    context! {
        id => reload.id,
        amount => dollars(reload.amount_cents),
        waiting_for => if reload.kind == "manual" { "waiting for confirmation" } else { "waiting for payment" },
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    cancelled: Option<String>,
    saved: Option<String>,
}

async fn credits_page(
    app: &WebState,
    owner: &Owner,
    notice: Option<&str>,
    error: Option<String>,
) -> Result<Response, CreditsError> {
    let Overview { view, zone } = overview(app, owner.client_id).await?;
    let date = |t: DateTime<Utc>| t.with_timezone(&zone).format("%b %-d").to_string();
    let when = |t: DateTime<Utc>| t.with_timezone(&zone).format("%b %-d, %-I:%M %p").to_string();
    let ledger: Vec<_> = view
        .ledger
        .iter()
        .map(|e| {
            let detail = match e.line.kind.as_str() {
                "call" if e.line.not_charged.is_some() => e.reason.clone().unwrap_or_default(),
                "call" => {
                    format!("{} min ({} free, {} paid)", e.line.minutes, e.line.free_minutes, e.line.paid_minutes)
                }
                "reset" => format!(
                    "Free minutes renewed for {} ({} used the month before)",
                    e.line.cycle_start.map(|c| c.format("%B %Y").to_string()).unwrap_or_default(),
                    e.line.free_used_before.unwrap_or(0)
                ),
                _ => e.reason.clone().unwrap_or_default(),
            };
            let label = match e.line.caller.as_deref() {
                Some(caller) if e.line.kind == "call" && !caller.is_empty() => format!(
                    "Call from {}",
                    PhoneNumber::parse(caller).map(|p| p.formatted()).unwrap_or_else(|_| caller.to_owned())
                ),
                _ => kind_label(&e.line.kind).to_owned(),
            };
            let amount = match e.line.kind.as_str() {
                "reset" => String::new(),
                "call" if e.line.not_charged.is_some() => "no charge".to_owned(),
                "call" if e.cost_cents == 0 => "free".to_owned(),
                _ => signed_dollars(e.line.amount_cents),
            };
            context! {
                kind => e.line.kind.as_str(),
                label,
                when => when(e.line.created_at),
                call_sid => e.line.call_sid.as_deref(),
                detail,
                charged => e.line.kind != "call" || e.line.not_charged.is_none(),
                amount,
                balance_after => e.line.balance_after_cents.map(dollars),
            }
        })
        .collect();
    let reload_buttons: Vec<_> = RELOAD_AMOUNTS_CENTS
        .iter()
        .map(|&cents| context! { cents, label => format!("${}", cents / 100), key => uuid::Uuid::new_v4().to_string() })
        .collect();
    let amounts: Vec<_> = RELOAD_AMOUNTS_CENTS.iter().map(|&c| context! { cents => c, label => dollars(c) }).collect();
    let thresholds: Vec<_> = THRESHOLDS_CENTS.iter().map(|&c| context! { cents => c, label => dollars(c) }).collect();
    let month_name = Utc::now().with_timezone(&zone).format("%B").to_string();
    let body = render(
        &app.templates,
        "credits.html",
        context! {
            owner => minijinja::Value::from(minijinja::value::Serde(owner)),
            active => "credits",
            balance => dollars(view.balance_cents),
            free_left => view.free_minutes_left,
            free_limit => view.free_minutes_limit,
            resets => date(view.resets_at),
            rate => dollars(i64::from(view.rate_cents_per_minute)),
            locked => view.locked,
            low => view.low,
            chart => usage_chart(&view.usage_by_day),
            chart_total => view.usage_by_day.iter().map(|d| d.minutes).sum::<i64>(),
            ledger,
            reload_buttons,
            pending => view.pending_reloads.iter().map(pending_context).collect::<Vec<_>>(),
            auto => context! {
                enabled => view.auto_reload.enabled,
                amount => view.auto_reload.amount_cents,
                threshold => view.auto_reload.threshold_cents,
                card_saved => view.auto_reload.card_saved_at.map(|t| t.with_timezone(&zone).format("%b %-d, %Y").to_string()),
                has_card => view.auto_reload.card_saved,
                problem => view.auto_reload.problem.as_deref(),
            },
            amounts,
            thresholds,
            month_name,
            month => figures_context(&view.value.month),
            last_30 => figures_context(&view.value.last_30_days),
            notice,
            error => error.as_deref(),
        },
    )?;
    let mut body = body;
    crate::web::shell::allow_form_targets(&mut body, &app.payments.checkout_origins());
    Ok(body)
}

/// `GET /app/credits` (`?cancelled=1` after a Checkout left unpaid, `?saved=1` after a
/// change of auto-reload).
pub async fn page(
    State(app): State<WebState>,
    owner: Owner,
    Query(query): Query<PageQuery>,
) -> Result<Response, CreditsError> {
    let notice = if query.cancelled.is_some() {
        Some("Reload cancelled, nothing was charged.")
    } else if query.saved.is_some() {
        Some("Auto-reload saved.")
    } else {
        None
    };
    credits_page(&app, &owner, notice, None).await
}

/// A reload form's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReloadForm {
    amount_cents: String,
    /// A fresh key per form: the same form sent twice makes one reload.
    request_key: String,
}

fn request_key(given: Option<&str>) -> String {
    match given.map(str::trim) {
        Some(k) if !k.is_empty() && k.len() <= 100 => k.to_owned(),
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

/// A page answer to a refusal the owner can act on: the Credits page again, with the
/// message and the status the API would send.
async fn refused(app: &WebState, owner: &Owner, e: ReloadError) -> Result<Response, CreditsError> {
    let status = status_of(&e);
    if !matches!(status, StatusCode::BAD_REQUEST | StatusCode::SERVICE_UNAVAILABLE) {
        return Err(e.into());
    }
    let mut page = credits_page(app, owner, None, Some(e.to_string())).await?;
    *page.status_mut() = status;
    Ok(page)
}

/// `POST /app/credits/reload` (`amount_cents`, `request_key`, with the CSRF token): to
/// Stripe's Checkout, or to the reload's page while it waits for an administrator.
pub async fn reload_form(
    State(app): State<WebState>,
    owner: Owner,
    Form(form): Form<ReloadForm>,
) -> Result<Response, CreditsError> {
    let amount = form.amount_cents.trim().parse::<i64>().unwrap_or(-1);
    let key = request_key(Some(&form.request_key));
    match app.payments.start_reload(owner.client_id, owner.user_id, amount, &key).await {
        Ok(ReloadStart::Checkout { url, .. }) => Ok(Redirect::to(&url).into_response()),
        Ok(ReloadStart::AwaitingAdmin { reload_id }) => {
            Ok(Redirect::to(&format!("/app/credits/reloads/{reload_id}")).into_response())
        }
        Err(e) => refused(&app, &owner, e).await,
    }
}

async fn reload_of(app: &WebState, owner: &Owner, id: i64) -> Result<(Reload, i64), CreditsError> {
    let reload = app.payments.reload(owner.client_id, id).await?.ok_or(ReloadError::UnknownReload)?;
    let row = standing(&app.pool, owner.client_id, Utc::now()).await?;
    Ok((reload, row.balance_cents))
}

async fn reload_page_of(app: &WebState, owner: &Owner, id: i64) -> Result<Response, CreditsError> {
    let (reload, balance) = reload_of(app, owner, id).await?;
    Ok(render(
        &app.templates,
        "reload.html",
        context! {
            owner => minijinja::Value::from(minijinja::value::Serde(owner)),
            active => "credits",
            id => reload.id,
            heading => if reload.kind == "card_setup" { "Saving a card".to_owned() } else { format!("Reload {}", dollars(reload.amount_cents)) },
            status => reload.status.as_str(),
            pending => reload.status == "pending",
            message => reload_message(&reload, balance),
            balance => dollars(balance),
        },
    )?)
}

/// `GET /app/credits/reloads/{id}`: "payment processing" or "waiting for confirmation"
/// while pending (the page asks `/api/credits/reloads/{id}` every 2 s and updates
/// itself), then paid with the new balance, or failed with its problem.
pub async fn reload_page(
    State(app): State<WebState>,
    owner: Owner,
    Path(id): Path<i64>,
) -> Result<Response, CreditsError> {
    reload_page_of(&app, &owner, id).await
}

#[derive(Debug, Default, Deserialize)]
pub struct ReturnQuery {
    reload: Option<i64>,
}

/// `GET /app/credits/return?reload={id}`: where Stripe's Checkout sends the owner back.
pub async fn return_page(
    State(app): State<WebState>,
    owner: Owner,
    Query(query): Query<ReturnQuery>,
) -> Result<Response, CreditsError> {
    match query.reload {
        Some(id) => reload_page_of(&app, &owner, id).await,
        None => Ok(Redirect::to("/app/credits").into_response()),
    }
}

/// The auto-reload form's fields (`enabled` is a checkbox).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AutoReloadForm {
    enabled: Option<String>,
    amount_cents: String,
    threshold_cents: String,
}

/// `POST /app/credits/auto-reload` (`enabled`, `amount_cents`, `threshold_cents`, with the
/// CSRF token).
pub async fn auto_reload_form(
    State(app): State<WebState>,
    owner: Owner,
    Form(form): Form<AutoReloadForm>,
) -> Result<Response, CreditsError> {
    let settings = AutoReloadSettings {
        enabled: form.enabled.as_deref().is_some_and(|v| matches!(v, "on" | "true" | "1")),
        amount_cents: form.amount_cents.trim().parse().unwrap_or(-1),
        threshold_cents: form.threshold_cents.trim().parse().unwrap_or(500),
    };
    match app.payments.set_auto_reload(owner.client_id, settings).await {
        Ok(()) => Ok(Redirect::to("/app/credits?saved=1#auto-reload").into_response()),
        Err(e) => refused(&app, &owner, e).await,
    }
}

/// `POST /app/credits/card` (with the CSRF token): saves a card for automatic reloads
/// through Stripe's Checkout.
pub async fn card_form(State(app): State<WebState>, owner: Owner) -> Result<Response, CreditsError> {
    match app.payments.start_card_setup(owner.client_id, owner.user_id).await {
        Ok(ReloadStart::Checkout { url, .. }) => Ok(Redirect::to(&url).into_response()),
        Ok(ReloadStart::AwaitingAdmin { .. }) => Ok(Redirect::to("/app/credits").into_response()),
        Err(e) => refused(&app, &owner, e).await,
    }
}

/// `GET /api/credits`
#[utoipa::path(
    get,
    path = "/api/credits",
    tag = "credits",
    summary = "Balance, free minutes and their reset, the lock, auto-reload, the ledger, minutes per day and what they bought",
    responses(
        (status = 200, body = CreditsView),
        (status = 401, description = "not signed in", body = ErrorBody),
    ),
    security(("session" = []))
)]
pub async fn api_overview(State(app): State<WebState>, owner: Owner) -> Result<Json<CreditsView>, CreditsError> {
    Ok(Json(overview(&app, owner.client_id).await?.view))
}

/// `{"amount_cents": 2000, "request_key": "..."}`
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ReloadRequest {
    /// 1000, 2000, 5000 or 10000.
    pub amount_cents: i64,
    /// Sending the same key again makes no second reload.
    pub request_key: Option<String>,
}

/// A reload just asked for.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReloadStarted {
    pub reload_id: i64,
    /// `pending` until paid.
    pub status: String,
    /// Stripe's Checkout page, where the owner pays; absent while an administrator confirms.
    pub checkout_url: Option<String>,
}

/// `POST /api/credits/reload`
#[utoipa::path(
    post,
    path = "/api/credits/reload",
    tag = "credits",
    summary = "Ask for a reload: pay on Stripe's Checkout page, or wait for an administrator's confirmation",
    request_body = ReloadRequest,
    responses(
        (status = 201, body = ReloadStarted),
        (status = 400, description = "not one of the reload amounts", body = ErrorBody),
        (status = 403, description = "missing CSRF token", body = ErrorBody),
        (status = 503, description = "the payment service did not answer; nothing was charged", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []))
)]
pub async fn api_reload(
    State(app): State<WebState>,
    owner: Owner,
    JsonBody(input): JsonBody<ReloadRequest>,
) -> Result<Response, CreditsError> {
    let key = request_key(input.request_key.as_deref());
    let started = match app.payments.start_reload(owner.client_id, owner.user_id, input.amount_cents, &key).await? {
        ReloadStart::Checkout { reload_id, url } => {
            ReloadStarted { reload_id, status: "pending".into(), checkout_url: Some(url) }
        }
        ReloadStart::AwaitingAdmin { reload_id } => {
            ReloadStarted { reload_id, status: "pending".into(), checkout_url: None }
        }
    };
    Ok((StatusCode::CREATED, Json(started)).into_response())
}

/// A reload's state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReloadStatus {
    pub reload_id: i64,
    /// `checkout`, `auto`, `manual` (confirmed by an administrator) or `card_setup`.
    pub kind: String,
    pub amount_cents: i64,
    /// `pending`, `paid`, `failed` or `cancelled`.
    pub status: String,
    pub problem: Option<String>,
    /// The balance now.
    pub balance_cents: i64,
    /// The state in words, as the reload page shows it.
    pub message: String,
}

/// `GET /api/credits/reloads/{id}`
#[utoipa::path(
    get,
    path = "/api/credits/reloads/{id}",
    tag = "credits",
    summary = "One of the business's reloads, with the balance now",
    params(("id" = i64, Path, description = "the reload's id")),
    responses(
        (status = 200, body = ReloadStatus),
        (status = 401, description = "not signed in", body = ErrorBody),
        (status = 404, description = "no such reload for this business", body = ErrorBody),
    ),
    security(("session" = []))
)]
pub async fn api_reload_status(
    State(app): State<WebState>,
    owner: Owner,
    Path(id): Path<i64>,
) -> Result<Json<ReloadStatus>, CreditsError> {
    let (reload, balance) = reload_of(&app, &owner, id).await?;
    Ok(Json(ReloadStatus {
        message: reload_message(&reload, balance),
        reload_id: reload.id,
        kind: reload.kind,
        amount_cents: reload.amount_cents,
        status: reload.status,
        problem: reload.problem,
        balance_cents: balance,
    }))
}

/// `PUT /api/credits/auto-reload`
#[utoipa::path(
    put,
    path = "/api/credits/auto-reload",
    tag = "credits",
    summary = "Turn automatic reloads of the saved card on or off, with the amount and the threshold",
    request_body = AutoReloadSettings,
    responses(
        (status = 200, body = AutoReloadView),
        (status = 400, description = "not a reload amount, or no saved card", body = ErrorBody),
        (status = 403, description = "missing CSRF token", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []))
)]
pub async fn api_auto_reload(
    State(app): State<WebState>,
    owner: Owner,
    JsonBody(settings): JsonBody<AutoReloadSettings>,
) -> Result<Json<AutoReloadView>, CreditsError> {
    app.payments.set_auto_reload(owner.client_id, settings).await?;
    Ok(Json(overview(&app, owner.client_id).await?.view.auto_reload))
}

/// The credits API, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(api_overview, api_reload, api_reload_status, api_auto_reload),
    components(schemas(
        CreditsView,
        AutoReloadView,
        LedgerEntry,
        DayUsage,
        ValueView,
        ValueFigures,
        ReloadRequest,
        ReloadStarted,
        ReloadStatus,
        AutoReloadSettings,
        Reload,
        crate::web::locked::LockedBody,
    ))
)]
pub struct CreditsApi;

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn a_cost_per_thing_is_rounded_to_the_cent_and_absent_when_there_is_none() {
        assert_eq!(per(100, 3), Some(33));
        assert_eq!(per(200, 3), Some(67));
        assert_eq!(per(0, 4), Some(0));
        assert_eq!(per(500, 0), None);
        assert_eq!(cost_or_dash(None), "—");
    }

    #[test]
    fn every_day_of_the_chart_is_there_even_with_no_minutes() {
        let days = fill_days(day(1), day(5), &[DayMinutes { day: day(3), minutes: 7 }]);
        assert_eq!(days.len(), 5);
        assert_eq!(days.iter().map(|d| d.minutes).collect::<Vec<_>>(), [0, 0, 7, 0, 0]);
        assert_eq!(days[0].date, day(1));
    }

    #[test]
    fn the_chart_says_in_words_what_its_bars_show() {
        let days = fill_days(
            day(1),
            day(30),
            &[DayMinutes { day: day(3), minutes: 7 }, DayMinutes { day: day(9), minutes: 2 }],
        );
        let svg = usage_chart(&days);
        assert!(svg.contains("<title id=\"usage-title\">Minutes per day, Nov 1 to Nov 30: 9 minutes in all, at most 7 in a day</title>"), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 30);
        assert!(svg.contains("Nov 3: 7 min"));
        assert!(svg.contains(">Nov 16</text>"), "the middle date is labelled");
        // The busiest day fills the plot; an empty day has no height.
        assert!(svg.contains("height=\"122.0\"><title>Nov 3"));
        assert!(svg.contains("height=\"0.0\"><title>Nov 1:"));
    }

    #[test]
    fn a_reload_says_what_it_waits_for_and_how_it_ended() {
        let mut r = Reload {
            id: 1,
            client_id: TenantId(1),
            kind: "manual".into(),
            amount_cents: 2000,
            status: "pending".into(),
            stripe_checkout_session: None,
            stripe_payment_intent: None,
            problem: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        assert!(reload_message(&r, 0).starts_with("Waiting for confirmation"));
        r.kind = "checkout".into();
        assert!(reload_message(&r, 0).starts_with("Payment processing"));
        r.status = "paid".into();
        assert_eq!(reload_message(&r, 2530), "Paid: $20.00 added. Your balance is now $25.30.");
        r.status = "failed".into();
        r.problem = Some("insufficient funds".into());
        assert!(reload_message(&r, 0).ends_with("insufficient funds"));
        r.kind = "card_setup".into();
        r.status = "paid".into();
        assert!(reload_message(&r, 0).starts_with("Card saved"));
    }

    #[test]
    fn a_refusal_the_owner_can_act_on_is_a_400_with_its_message() {
        assert_eq!(status_of(&ReloadError::BadAmount), StatusCode::BAD_REQUEST);
        assert_eq!(status_of(&ReloadError::UnknownReload), StatusCode::NOT_FOUND);
        assert_eq!(status_of(&ReloadError::Unavailable), StatusCode::SERVICE_UNAVAILABLE);
        let e = web_error(ReloadError::Settled("paid".into()));
        assert_eq!(
            (e.status(), e.public_message()),
            (StatusCode::BAD_REQUEST, "this reload was already paid".to_owned())
        );
        let unavailable = CreditsError::Reload(ReloadError::Unavailable).into_response();
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
