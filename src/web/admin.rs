//! The admin area (`/admin`, `/api/admin`): every tenant with its usage this month and
//! credit standing, administrators' notes about a tenant, and texts to a tenant's owner.
//! Only [`Admin`] users reach it; nothing here is ever shown to a tenant.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use minijinja::context;
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;

use crate::domain::accounts::FieldError;
use crate::domain::credits::dollars;
use crate::domain::ids::{MessageId, TenantId};
use crate::services::credits::Applied;
use crate::services::payments::ReloadError;
use crate::storage::postgres::admin::{self, Note, TenantUsage};
use crate::storage::postgres::credits::Reload;
use crate::storage::postgres::{begin_tenant, messages};
use crate::web::Error;
use crate::web::WebState;
use crate::web::auth::Admin;
use crate::web::credits::web_error;
use crate::web::json_body::JsonBody;
use crate::web::shell::render;
use crate::web::today::money;

/// Longest admin note.
const MAX_NOTE: usize = 4000;
/// Longest text to an owner (four SMS segments).
const MAX_SMS: usize = 640;
/// The sender shown on texts from RinglyPro's team.
const SMS_SENDER: &str = "RinglyPro";

/// A text from RinglyPro's team to a tenant's owner, as the outbox holds it.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct OwnerSms {
    #[schema(value_type = i64)]
    pub id: MessageId,
    pub to_number: String,
    pub body: String,
    /// `queued` until SMS sending is configured.
    pub status: String,
    pub created_at: DateTime<Utc>,
}

/// One tenant as an administrator sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantDetail {
    pub tenant: TenantUsage,
    /// Newest first.
    pub notes: Vec<Note>,
    /// Texts sent to the owner from here, newest first.
    pub sms: Vec<OwnerSms>,
}

/// `{"body": "..."}`: a note, or a text to the owner.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct TextBody {
    pub body: String,
}

fn check_text(text: &str, what: &str, max: usize) -> Result<String, Error> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::Invalid(vec![FieldError::new("body", format!("write the {what} first"))]));
    }
    if text.chars().count() > max {
        return Err(Error::Invalid(vec![FieldError::new(
            "body",
            format!("keep the {what} to {max} characters or fewer"),
        )]));
    }
    Ok(text.to_owned())
}

async fn tenant_or_404(app: &WebState, id: TenantId) -> Result<TenantUsage, Error> {
    admin::tenant(&app.pool, id).await?.ok_or_else(|| Error::NotFound(format!("there is no tenant {id}")))
}

async fn owner_sms(app: &WebState, client_id: TenantId) -> Result<Vec<OwnerSms>, Error> {
    let mut tx = begin_tenant(&app.pool, client_id).await?;
    let sent = sqlx::query_as(
        "SELECT id, to_number, body, status, created_at FROM messages \
         WHERE client_id = $1 AND kind = 'admin' ORDER BY created_at DESC, id DESC",
    )
    .bind(client_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(sent)
}

async fn detail(app: &WebState, id: TenantId) -> Result<TenantDetail, Error> {
    let tenant = tenant_or_404(app, id).await?;
    let notes = admin::notes(&app.pool, id).await?;
    let sms = owner_sms(app, id).await?;
    Ok(TenantDetail { tenant, notes, sms })
}

async fn add_note(app: &WebState, admin: &Admin, id: TenantId, body: &str) -> Result<Note, Error> {
    let body = check_text(body, "note", MAX_NOTE)?;
    tenant_or_404(app, id).await?;
    let note = admin::add_note(&app.pool, id, admin.0.user_id, &body).await?;
    tracing::info!(tenant_id = %id, user_id = %admin.0.user_id, note_id = note.id, "admin note added");
    Ok(note)
}

/// Queues a text to the tenant's owner in the outbox (sent once SMS sending is set up).
async fn send_sms(app: &WebState, admin: &Admin, id: TenantId, body: &str) -> Result<OwnerSms, Error> {
    let body = check_text(body, "text", MAX_SMS)?;
    let tenant = tenant_or_404(app, id).await?;
    let mut tx = begin_tenant(&app.pool, id).await?;
    let message_id = messages::queue(
        &mut tx,
        &messages::NewMessage {
            client_id: id,
            contact_id: None,
            call_id: None,
            direction: messages::Direction::Outbound,
            kind: "admin",
            to_number: &tenant.owner_phone,
            from_number: SMS_SENDER,
            body: &body,
        },
    )
    .await?;
    let sms: OwnerSms =
        sqlx::query_as("SELECT id, to_number, body, status, created_at FROM messages WHERE id = $1 AND client_id = $2")
            .bind(message_id)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %id, user_id = %admin.0.user_id, message_id = message_id.get(), "text to the owner queued");
    Ok(sms)
}

/// `GET /api/admin/tenants`
#[utoipa::path(
    get,
    path = "/api/admin/tenants",
    tag = "admin",
    summary = "Every tenant with this month's calls, minutes and bookings, credit and switches",
    responses(
        (status = 200, body = Vec<TenantUsage>),
        (status = 401, description = "not signed in", body = crate::web::error::ErrorBody),
        (status = 403, description = "not an administrator", body = crate::web::error::ErrorBody),
    ),
    security(("session" = []))
)]
pub async fn list_api(State(app): State<WebState>, _admin: Admin) -> Result<Json<Vec<TenantUsage>>, Error> {
    Ok(Json(admin::tenants(&app.pool).await?))
}

/// `GET /api/admin/tenants/{id}`
#[utoipa::path(
    get,
    path = "/api/admin/tenants/{id}",
    tag = "admin",
    summary = "One tenant with its admin notes and texts to the owner",
    params(("id" = i64, Path, description = "the tenant's id")),
    responses(
        (status = 200, body = TenantDetail),
        (status = 401, description = "not signed in", body = crate::web::error::ErrorBody),
        (status = 403, description = "not an administrator", body = crate::web::error::ErrorBody),
        (status = 404, description = "no such tenant", body = crate::web::error::ErrorBody),
    ),
    security(("session" = []))
)]
pub async fn detail_api(
    State(app): State<WebState>,
    _admin: Admin,
    Path(id): Path<TenantId>,
) -> Result<Json<TenantDetail>, Error> {
    Ok(Json(detail(&app, id).await?))
}

/// `POST /api/admin/tenants/{id}/notes`
#[utoipa::path(
    post,
    path = "/api/admin/tenants/{id}/notes",
    tag = "admin",
    summary = "Add an admin note about a tenant (never shown to the tenant)",
    params(("id" = i64, Path, description = "the tenant's id")),
    request_body = TextBody,
    responses(
        (status = 201, body = Note),
        (status = 400, description = "empty or too long", body = crate::web::error::ErrorBody),
        (status = 403, description = "not an administrator, or missing CSRF token", body = crate::web::error::ErrorBody),
        (status = 404, description = "no such tenant", body = crate::web::error::ErrorBody),
    ),
    security(("session" = [], "csrf" = []))
)]
pub async fn note_api(
    State(app): State<WebState>,
    admin: Admin,
    Path(id): Path<TenantId>,
    JsonBody(input): JsonBody<TextBody>,
) -> Result<Response, Error> {
    let note = add_note(&app, &admin, id, &input.body).await?;
    Ok((StatusCode::CREATED, Json(note)).into_response())
}

/// `POST /api/admin/tenants/{id}/sms`
#[utoipa::path(
    post,
    path = "/api/admin/tenants/{id}/sms",
    tag = "admin",
    summary = "Text the tenant's owner (queued in the outbox until SMS sending is set up)",
    params(("id" = i64, Path, description = "the tenant's id")),
    request_body = TextBody,
    responses(
        (status = 202, body = OwnerSms),
        (status = 400, description = "empty or too long", body = crate::web::error::ErrorBody),
        (status = 403, description = "not an administrator, or missing CSRF token", body = crate::web::error::ErrorBody),
        (status = 404, description = "no such tenant", body = crate::web::error::ErrorBody),
    ),
    security(("session" = [], "csrf" = []))
)]
pub async fn sms_api(
    State(app): State<WebState>,
    admin: Admin,
    Path(id): Path<TenantId>,
    JsonBody(input): JsonBody<TextBody>,
) -> Result<Response, Error> {
    let sms = send_sms(&app, &admin, id, &input.body).await?;
    Ok((StatusCode::ACCEPTED, Json(sms)).into_response())
}

/// A tenant's row for the pages, with figures written out.
fn row(t: &TenantUsage) -> minijinja::Value {
    let tz = t.timezone;
    context! {
        id => t.id.get(),
        business_name => &t.business_name,
        owner_email => &t.owner_email,
        owner_phone => &t.owner_phone,
        number => &t.ringlypro_number,
        timezone => t.timezone.name(),
        calls => t.calls_this_month,
        minutes => t.minutes_this_month,
        bookings => t.bookings_this_month,
        balance => money(t.balance_cents),
        free_used => t.free_minutes_used,
        free_limit => t.free_minutes_limit,
        locked => t.locked,
        rachel_enabled => t.rachel_enabled,
        recording_enabled => t.recording_enabled,
        created => t.created_at.with_timezone(&tz).format("%b %-d, %Y").to_string(),
    }
}

/// `GET /admin` (`?done=confirmed` after a reload was confirmed)
pub async fn list_page(
    State(app): State<WebState>,
    admin: Admin,
    axum::extract::Query(query): axum::extract::Query<DetailQuery>,
) -> Result<Response, Error> {
    let tenants = admin::tenants(&app.pool).await?;
    let rows: Vec<minijinja::Value> = tenants.iter().map(row).collect();
    let waiting = app.payments.reloads_awaiting_admin().await.map_err(web_error)?;
    let reloads: Vec<minijinja::Value> = waiting
        .iter()
        .map(|r| {
            let tenant = tenants.iter().find(|t| t.id == r.client_id);
            context! {
                id => r.id,
                client_id => r.client_id.get(),
                business_name => tenant.map(|t| t.business_name.as_str()),
                amount => dollars(r.amount_cents),
                asked => tenant.map(|t| r.created_at.with_timezone(&t.timezone)).map(|t| t.format("%b %-d, %-I:%M %p %Z").to_string()),
            }
        })
        .collect();
    let notice = match query.done.as_deref() {
        Some("confirmed") => Some("Reload confirmed: the credit is on the account."),
        Some("settled") => Some("That reload was already settled; nothing changed."),
        _ => None,
    };
    render(
        &app.templates,
        "admin.html",
        context! {
            owner => minijinja::Value::from(minijinja::value::Serde(&admin.0)),
            active => "admin",
            tenants => rows,
            reloads,
            notice,
        },
    )
}

#[derive(Debug, Default)]
struct Typed<'a> {
    note: &'a str,
    note_error: Option<String>,
    sms: &'a str,
    sms_error: Option<String>,
    credit_amount: &'a str,
    credit_reason: &'a str,
    credit_error: Option<String>,
    notice: Option<&'a str>,
}

async fn detail_page(app: &WebState, admin: &Admin, id: TenantId, typed: Typed<'_>) -> Result<Response, Error> {
    let d = detail(app, id).await?;
    // Shown in the tenant's time zone, like every time in the dashboard.
    let tz = d.tenant.timezone;
    let when = |t: DateTime<Utc>| t.with_timezone(&tz).format("%b %-d, %Y %-I:%M %p %Z").to_string();
    let notes: Vec<minijinja::Value> = d
        .notes
        .iter()
        .map(|n| context! { author => n.author.as_deref().unwrap_or("a former administrator"), body => &n.body, when => when(n.created_at) })
        .collect();
    let sms: Vec<minijinja::Value> = d
        .sms
        .iter()
        .map(|m| context! { to => &m.to_number, body => &m.body, status => &m.status, when => when(m.created_at) })
        .collect();
    let order = crate::services::numbers::order_state(&app.pool, id).await?;
    let closed: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT closed_at FROM clients WHERE id = $1").bind(id).fetch_one(&app.pool).await?;
    render(
        &app.templates,
        "admin_tenant.html",
        context! {
            owner => minijinja::Value::from(minijinja::value::Serde(&admin.0)),
            active => "admin",
            t => row(&d.tenant),
            order => order.as_ref().map(|o| context! {
                action => &o.action, status => &o.status, attempts => o.attempts,
                next => when(o.next_attempt_at), error => o.last_error.as_deref(),
            }),
            closed => closed.map(when),
            notes,
            sms,
            note => typed.note,
            note_error => typed.note_error,
            sms_body => typed.sms,
            sms_error => typed.sms_error,
            credit_amount => typed.credit_amount,
            credit_reason => typed.credit_reason,
            credit_error => typed.credit_error,
            credit_key => uuid::Uuid::new_v4().to_string(),
            notice => typed.notice,
        },
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct DetailQuery {
    done: Option<String>,
}

/// `GET /admin/tenants/{id}`
pub async fn tenant_page(
    State(app): State<WebState>,
    admin: Admin,
    Path(id): Path<TenantId>,
    axum::extract::Query(query): axum::extract::Query<DetailQuery>,
) -> Result<Response, Error> {
    let notice = match query.done.as_deref() {
        Some("note") => Some("Note added."),
        Some("sms") => Some("Text queued for the owner."),
        Some("credit") => Some("Credit adjusted."),
        Some("number-retry") => Some("Buying the number is being tried again now."),
        Some("number-nothing") => Some("There is no pending number order to retry."),
        Some("closed") => Some("Account closed; its number is being released."),
        _ => None,
    };
    detail_page(&app, &admin, id, Typed { notice, ..Typed::default() }).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TextForm {
    body: String,
}

/// `POST /admin/tenants/{id}/notes` (`body`, with the CSRF token)
pub async fn note_form(
    State(app): State<WebState>,
    admin: Admin,
    Path(id): Path<TenantId>,
    axum::Form(form): axum::Form<TextForm>,
) -> Result<Response, Error> {
    let outcome = add_note(&app, &admin, id, &form.body).await;
    let retyped = |note_error| Typed { note: &form.body, note_error, ..Typed::default() };
    after_form(&app, &admin, id, outcome, "note", retyped).await
}

/// `POST /admin/tenants/{id}/sms` (`body`, with the CSRF token)
pub async fn sms_form(
    State(app): State<WebState>,
    admin: Admin,
    Path(id): Path<TenantId>,
    axum::Form(form): axum::Form<TextForm>,
) -> Result<Response, Error> {
    let outcome = send_sms(&app, &admin, id, &form.body).await;
    let retyped = |sms_error| Typed { sms: &form.body, sms_error, ..Typed::default() };
    after_form(&app, &admin, id, outcome, "sms", retyped).await
}

/// `POST /admin/tenants/{id}/number/retry`: tries a pending or failed number order now.
pub async fn retry_number_form(
    State(app): State<WebState>,
    admin: Admin,
    Path(id): Path<TenantId>,
) -> Result<Response, Error> {
    let retried = crate::services::numbers::retry_now(&app.pool, id).await?;
    if retried {
        tracing::info!(tenant_id = %id, admin = %admin.0.user_id, "number order retried by an administrator");
        app.numbers.kick();
    }
    let done = if retried { "number-retry" } else { "number-nothing" };
    Ok(axum::response::Redirect::to(&format!("/admin/tenants/{id}?done={done}")).into_response())
}

/// `POST /admin/tenants/{id}/close`: closes the account and releases its number.
pub async fn close_form(
    State(app): State<WebState>,
    admin: Admin,
    Path(id): Path<TenantId>,
) -> Result<Response, Error> {
    if crate::services::numbers::close_account(&app.pool, id).await? {
        tracing::info!(tenant_id = %id, admin = %admin.0.user_id, "account closed by an administrator");
        app.numbers.kick();
    }
    Ok(axum::response::Redirect::to(&format!("/admin/tenants/{id}?done=closed")).into_response())
}

/// Dollars as an administrator types them (`12.50`, `-3`, `$5`, `-$0.25`) in cents.
pub fn parse_dollars(text: &str) -> Option<i64> {
    let text = text.trim().replace(',', "");
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest.trim()),
        None => (false, text.as_str()),
    };
    let rest = rest.strip_prefix('$').unwrap_or(rest);
    let (whole, cents) = rest.split_once('.').unwrap_or((rest, ""));
    if whole.is_empty() && cents.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !cents.chars().all(|c| c.is_ascii_digit())
        || cents.len() > 2
        || whole.len() > 7
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let cents: i64 = format!("{cents:0<2}").parse().ok()?;
    let total = whole * 100 + cents;
    Some(if negative { -total } else { total })
}

/// An adjustment as an administrator sends it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreditAdjustment {
    /// Positive adds credit, negative takes it back.
    pub amount_cents: i64,
    /// Required: shown in the tenant's ledger.
    pub reason: String,
    /// Sending the same key again changes nothing.
    pub request_key: Option<String>,
}

/// What a confirmation or an adjustment did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreditApplied {
    /// False when the same request was applied before (nothing changed this time).
    pub applied: bool,
    pub balance_after_cents: Option<i64>,
    /// The account could not answer before and can now.
    pub unlocked: bool,
    pub locked: bool,
}

impl From<Applied> for CreditApplied {
    fn from(a: Applied) -> Self {
        match a {
            Applied::Done { balance_after_cents, unlocked, locked } => {
                CreditApplied { applied: true, balance_after_cents: Some(balance_after_cents), unlocked, locked }
            }
            Applied::AlreadyApplied => {
                CreditApplied { applied: false, balance_after_cents: None, unlocked: false, locked: false }
            }
        }
    }
}

async fn adjust(
    app: &WebState,
    admin: &Admin,
    id: TenantId,
    amount_cents: i64,
    reason: &str,
    key: &str,
) -> Result<Applied, Error> {
    tenant_or_404(app, id).await?;
    if amount_cents == 0 {
        return Err(Error::Invalid(vec![FieldError::new("amount", "an adjustment needs an amount other than zero")]));
    }
    let applied = app.payments.adjust(id, amount_cents, reason, admin.0.user_id, key).await.map_err(|e| match e {
        ReloadError::NoReason => Error::Invalid(vec![FieldError::new("reason", e.to_string())]),
        e => web_error(e),
    })?;
    tracing::info!(tenant_id = %id, user_id = %admin.0.user_id, amount_cents, "credit adjusted by an administrator");
    Ok(applied)
}

fn request_key(given: Option<&str>) -> String {
    match given.map(str::trim) {
        Some(k) if !k.is_empty() && k.len() <= 100 => k.to_owned(),
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CreditForm {
    amount: String,
    reason: String,
    request_key: String,
}

/// `POST /admin/tenants/{id}/credit` (`amount` in dollars, may be negative; `reason`;
/// `request_key`; with the CSRF token)
pub async fn credit_form(
    State(app): State<WebState>,
    admin: Admin,
    Path(id): Path<TenantId>,
    axum::Form(form): axum::Form<CreditForm>,
) -> Result<Response, Error> {
    let outcome = match parse_dollars(&form.amount) {
        Some(cents) => adjust(&app, &admin, id, cents, &form.reason, &request_key(Some(&form.request_key))).await,
        None => Err(Error::Invalid(vec![FieldError::new("amount", "write the amount in dollars, like 12.50 or -5")])),
    };
    let retyped = |credit_error| Typed {
        credit_amount: &form.amount,
        credit_reason: &form.reason,
        credit_error,
        ..Typed::default()
    };
    after_form(&app, &admin, id, outcome, "credit", retyped).await
}

/// `POST /admin/reloads/{id}/confirm` (with the CSRF token): the payment of a reload
/// waiting for an administrator arrived; the credit is applied once.
pub async fn confirm_reload_form(
    State(app): State<WebState>,
    admin: Admin,
    Path(id): Path<i64>,
) -> Result<Response, Error> {
    match app.payments.confirm_manual_reload(id, admin.0.user_id).await {
        Ok(_) => Ok(Redirect::to("/admin?done=confirmed#reloads").into_response()),
        Err(ReloadError::Settled(_)) => Ok(Redirect::to("/admin?done=settled#reloads").into_response()),
        Err(e) => Err(web_error(e)),
    }
}

/// `GET /api/admin/reloads`
#[utoipa::path(
    get,
    path = "/api/admin/reloads",
    tag = "admin",
    summary = "Every reload waiting for an administrator to confirm its payment, oldest first",
    responses(
        (status = 200, body = Vec<Reload>),
        (status = 403, description = "not an administrator", body = crate::web::error::ErrorBody),
    ),
    security(("session" = []))
)]
pub async fn reloads_api(State(app): State<WebState>, _admin: Admin) -> Result<Json<Vec<Reload>>, Error> {
    Ok(Json(app.payments.reloads_awaiting_admin().await.map_err(web_error)?))
}

/// `POST /api/admin/reloads/{id}/confirm`
#[utoipa::path(
    post,
    path = "/api/admin/reloads/{id}/confirm",
    tag = "admin",
    summary = "Confirm that a reload waiting for an administrator was paid: the credit is applied once",
    params(("id" = i64, Path, description = "the reload's id")),
    responses(
        (status = 200, body = CreditApplied),
        (status = 400, description = "the reload was already settled", body = crate::web::error::ErrorBody),
        (status = 403, description = "not an administrator, or missing CSRF token", body = crate::web::error::ErrorBody),
        (status = 404, description = "no such reload waiting for an administrator", body = crate::web::error::ErrorBody),
    ),
    security(("session" = [], "csrf" = []))
)]
pub async fn confirm_reload_api(
    State(app): State<WebState>,
    admin: Admin,
    Path(id): Path<i64>,
) -> Result<Json<CreditApplied>, Error> {
    let applied = app.payments.confirm_manual_reload(id, admin.0.user_id).await.map_err(web_error)?;
    Ok(Json(applied.into()))
}

/// `POST /api/admin/tenants/{id}/credit`
#[utoipa::path(
    post,
    path = "/api/admin/tenants/{id}/credit",
    tag = "admin",
    summary = "Adjust a tenant's balance (positive or negative) with a reason, shown in its ledger",
    params(("id" = i64, Path, description = "the tenant's id")),
    request_body = CreditAdjustment,
    responses(
        (status = 201, body = CreditApplied),
        (status = 400, description = "no reason, or a zero amount", body = crate::web::error::ErrorBody),
        (status = 403, description = "not an administrator, or missing CSRF token", body = crate::web::error::ErrorBody),
        (status = 404, description = "no such tenant", body = crate::web::error::ErrorBody),
    ),
    security(("session" = [], "csrf" = []))
)]
pub async fn credit_api(
    State(app): State<WebState>,
    admin: Admin,
    Path(id): Path<TenantId>,
    JsonBody(input): JsonBody<CreditAdjustment>,
) -> Result<Response, Error> {
    let key = request_key(input.request_key.as_deref());
    let applied = adjust(&app, &admin, id, input.amount_cents, &input.reason, &key).await?;
    Ok((StatusCode::CREATED, Json(CreditApplied::from(applied))).into_response())
}

/// Where a form on the tenant's page leads: back to the page saying `done`; after a
/// mistake, the page again with a 400, what was typed and the message `retyped` places.
async fn after_form<'a, T>(
    app: &WebState,
    admin: &Admin,
    id: TenantId,
    outcome: Result<T, Error>,
    done: &str,
    retyped: impl FnOnce(Option<String>) -> Typed<'a>,
) -> Result<Response, Error> {
    match outcome {
        Ok(_) => Ok(Redirect::to(&format!("/admin/tenants/{id}?done={done}")).into_response()),
        Err(Error::Invalid(e)) => {
            let typed = retyped(e.first().map(|e| e.message.clone()));
            let mut page = detail_page(app, admin, id, typed).await?;
            *page.status_mut() = StatusCode::BAD_REQUEST;
            Ok(page)
        }
        Err(e) => Err(e),
    }
}

/// The admin API, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_api, detail_api, note_api, sms_api, reloads_api, confirm_reload_api, credit_api),
    components(schemas(TenantUsage, TenantDetail, Note, OwnerSms, TextBody, CreditAdjustment, CreditApplied))
)]
pub struct AdminApi;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_read_as_an_administrator_types_them() {
        assert_eq!(parse_dollars("12.50"), Some(1250));
        assert_eq!(parse_dollars("-3"), Some(-300));
        assert_eq!(parse_dollars("$5"), Some(500));
        assert_eq!(parse_dollars("-$0.25"), Some(-25));
        assert_eq!(parse_dollars(".5"), Some(50));
        assert_eq!(parse_dollars("1,000"), Some(100_000));
        for bad in ["", "-", "abc", "1.234", "1.2.3", "--5", "$", "99999999"] {
            assert_eq!(parse_dollars(bad), None, "{bad}");
        }
    }
}
