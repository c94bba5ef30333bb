//! The agenda: `/app/appointments` (days grouped in the tenant's time zone, week by week,
//! with a month overview), one appointment's page (reschedule, complete, no-show,
//! cancel) and `/api/appointments...`. Bookings go through [`services::agenda`], so an
//! overlap is refused exactly as on a call; a time outside business hours is kept but
//! flagged.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{local_time, owner_value, tenant_of, value, with_status, zone};
use crate::dialogue::phrasing::SpokenHours;
use crate::domain::accounts::FieldError;
use crate::domain::appointments::AppointmentStatus;
use crate::domain::ids::{AppointmentId, ContactId};
use crate::domain::phone::PhoneNumber;
use crate::services::agenda::{self, AgendaError, Change, ManualBooking};
use crate::storage::postgres::appointments::{self, Appointment};
use crate::storage::postgres::begin_tenant;
use crate::storage::postgres::tenants::Tenant;
use crate::web::Error;
use crate::web::WebState;
use crate::web::auth::Owner;
use crate::web::json_body::JsonBody;
use crate::web::shell::render;

/// Days the agenda shows by default: today and the next 14.
const DEFAULT_DAYS: i64 = 15;
/// Longest range one request may read.
const MAX_DAYS: i64 = 93;

/// A new appointment. The time is `starts_at` (RFC 3339), or `date` + `time` on the
/// tenant's wall clock.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(default)]
pub struct AppointmentInput {
    pub customer_name: String,
    pub customer_phone: String,
    /// `YYYY-MM-DD`, in the tenant's time zone.
    pub date: String,
    /// `HH:MM`, in the tenant's time zone.
    pub time: String,
    pub starts_at: Option<DateTime<FixedOffset>>,
    /// Defaults to the tenant's appointment length.
    pub duration_minutes: Option<Minutes>,
}

/// A length in minutes: a JSON number, or the text of a form field.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Minutes {
    Number(i64),
    Text(String),
}

impl Minutes {
    fn text(&self) -> String {
        match self {
            Minutes::Number(n) => n.to_string(),
            Minutes::Text(t) => t.clone(),
        }
    }
}

/// Changes to an appointment: a new time (as in [`AppointmentInput`]), a new length, a
/// new status (`confirmed`, `pending`, `completed`, `no_show`, `cancelled`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(default)]
pub struct AppointmentChange {
    pub date: Option<String>,
    pub time: Option<String>,
    pub starts_at: Option<DateTime<FixedOffset>>,
    pub duration_minutes: Option<Minutes>,
    pub status: Option<String>,
}

/// An appointment with its times as the owner reads them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppointmentView {
    #[serde(flatten)]
    pub appointment: Appointment,
    pub local_start: String,
    pub duration_minutes: i64,
    /// Set when the time falls outside the business's hours.
    pub warning: Option<String>,
}

/// `GET /api/appointments`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppointmentList {
    pub from: NaiveDate,
    /// Exclusive.
    pub to: NaiveDate,
    pub timezone: String,
    pub appointments: Vec<AppointmentView>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default)]
pub struct RangeQuery {
    /// First day (`YYYY-MM-DD`, tenant's zone); today when absent.
    pub from: Option<String>,
    /// How many days (1 to 93); 15 when absent.
    pub days: Option<i64>,
}

fn not_found() -> Error {
    Error::NotFound("no such appointment".into())
}

fn view(tenant: &Tenant, a: Appointment) -> AppointmentView {
    let tz = zone(tenant);
    let cal = tenant.calendar();
    let last_minute = a.ends_at - Duration::seconds(1);
    let inside = cal.is_open_at(a.starts_at)
        && cal.is_open_at(last_minute)
        && a.starts_at.with_timezone(&tz).date_naive() == last_minute.with_timezone(&tz).date_naive();
    let warning = (!inside && a.status != AppointmentStatus::Cancelled)
        .then(|| format!("this time is outside business hours ({}); it is booked anyway", cal.hours.describe()));
    AppointmentView {
        local_start: local_time(tz, a.starts_at),
        duration_minutes: (a.ends_at - a.starts_at).num_minutes(),
        warning,
        appointment: a,
    }
}

/// The start of a local date in `tz` (the first real instant when midnight is skipped).
fn start_of(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = date.and_time(NaiveTime::MIN);
    (0..=3)
        .find_map(|h| tz.from_local_datetime(&(midnight + Duration::hours(h))).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
}

fn parse_date(text: &str) -> Result<NaiveDate, FieldError> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| FieldError::new("date", "pick a date (YYYY-MM-DD, e.g. 2026-03-04)"))
}

fn parse_clock(text: &str) -> Result<NaiveTime, FieldError> {
    let text = text.trim();
    NaiveTime::parse_from_str(text, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
        .map_err(|_| FieldError::new("time", "pick a time (HH:MM, 24-hour, e.g. 14:30)"))
}

/// A wall-clock date and time in `tz` as an instant.
fn local_instant(tz: Tz, date: &str, time: &str, errors: &mut Vec<FieldError>) -> Option<DateTime<Utc>> {
    let date = parse_date(date).map_err(|e| errors.push(e)).ok();
    let time = parse_clock(time).map_err(|e| errors.push(e)).ok();
    let (date, time) = (date?, time?);
    match tz.from_local_datetime(&date.and_time(time)).earliest() {
        Some(t) => Some(t.with_timezone(&Utc)),
        None => {
            errors.push(FieldError::new(
                "time",
                "that time does not exist on that day (the clocks change); pick another",
            ));
            None
        }
    }
}

fn parse_duration(text: Option<&str>, default: i64, errors: &mut Vec<FieldError>) -> Option<i64> {
    let text = text.map(str::trim).filter(|t| !t.is_empty());
    let Some(text) = text else { return Some(default) };
    match text.parse::<i64>() {
        Ok(m) if (5..=480).contains(&m) => Some(m),
        _ => {
            errors.push(FieldError::new(
                "duration_minutes",
                "the length must be a whole number of minutes from 5 to 480",
            ));
            None
        }
    }
}

fn validate_new(tenant: &Tenant, input: &AppointmentInput) -> Result<ManualBooking, Vec<FieldError>> {
    let mut errors = Vec::new();
    let name = input.customer_name.trim();
    if name.is_empty() {
        errors.push(FieldError::new("customer_name", "enter the customer's name"));
    } else if name.chars().count() > 100 {
        errors.push(FieldError::new("customer_name", "use at most 100 characters for the name"));
    }
    let phone = PhoneNumber::parse(&input.customer_phone)
        .map_err(|e| errors.push(FieldError::new("customer_phone", format!("{e}, e.g. (555) 123-4567"))))
        .ok();
    let starts_at = match input.starts_at {
        Some(t) => Some(t.with_timezone(&Utc)),
        None => local_instant(zone(tenant), &input.date, &input.time, &mut errors),
    };
    let minutes = parse_duration(
        input.duration_minutes.as_ref().map(Minutes::text).as_deref(),
        i64::from(tenant.appointment_minutes),
        &mut errors,
    );
    match (phone, starts_at, minutes, errors.is_empty()) {
        (Some(phone), Some(starts_at), Some(minutes), true) => Ok(ManualBooking {
            name: name.to_owned(),
            phone,
            starts_at,
            ends_at: starts_at + Duration::minutes(minutes),
        }),
        _ => Err(errors),
    }
}

fn validate_change(
    tenant: &Tenant,
    current: &Appointment,
    input: &AppointmentChange,
) -> Result<Change, Vec<FieldError>> {
    let mut errors = Vec::new();
    let tz = zone(tenant);
    let local = current.starts_at.with_timezone(&tz);
    let starts_at = match (input.starts_at, &input.date, &input.time) {
        (Some(t), _, _) => Some(t.with_timezone(&Utc)),
        (None, None, None) => None,
        (None, date, time) => {
            let date = date.clone().unwrap_or_else(|| local.format("%Y-%m-%d").to_string());
            let time = time.clone().unwrap_or_else(|| local.format("%H:%M").to_string());
            local_instant(tz, &date, &time, &mut errors)
        }
    };
    let current_minutes = (current.ends_at - current.starts_at).num_minutes();
    let minutes =
        parse_duration(input.duration_minutes.as_ref().map(Minutes::text).as_deref(), current_minutes, &mut errors);
    let status = match input.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match s.parse::<AppointmentStatus>() {
            Ok(known) => Some(known),
            Err(_) => {
                errors.push(FieldError::new(
                    "status",
                    "status must be confirmed, pending, completed, no_show or cancelled",
                ));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let start = starts_at.unwrap_or(current.starts_at);
    let moved = starts_at.is_some() || input.duration_minutes.as_ref().is_some_and(|d| !d.text().trim().is_empty());
    Ok(Change {
        starts_at: moved.then_some(start),
        ends_at: moved.then(|| start + Duration::minutes(minutes.unwrap_or(current_minutes))),
        status,
    })
}

/// The refusal of an overlapping time, naming the appointment in the way.
fn agenda_error(tenant: &Tenant, e: AgendaError) -> Error {
    match e {
        AgendaError::Overlaps(other) => Error::Conflict {
            message: format!(
                "that time overlaps {}'s appointment at {}",
                other.customer_name,
                local_time(zone(tenant), other.starts_at)
            ),
            field: Some("time"),
            link: Some(format!("/app/appointments/{}", other.id)),
        },
        AgendaError::Taken => Error::Conflict { message: e.to_string(), field: Some("time"), link: None },
        AgendaError::NotFound => not_found(),
        AgendaError::Unexpected(e) => Error::Unexpected(e),
    }
}

/// `[from, from + days)` of the query, in the tenant's zone.
fn range(tenant: &Tenant, query: &RangeQuery) -> Result<(NaiveDate, NaiveDate), Error> {
    let tz = zone(tenant);
    let from = match query.from.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
        Some(text) => parse_date(text).map_err(|e| Error::Invalid(vec![FieldError::new("from", e.message)]))?,
        None => Utc::now().with_timezone(&tz).date_naive(),
    };
    let days = query.days.unwrap_or(DEFAULT_DAYS);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(Error::Invalid(vec![FieldError::new("days", format!("days must be from 1 to {MAX_DAYS}"))]));
    }
    Ok((from, from + Duration::days(days)))
}

async fn between(
    app: &WebState,
    owner: &Owner,
    tz: Tz,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Appointment>, Error> {
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let found = appointments::starting_between(&mut tx, owner.client_id, start_of(from, tz), start_of(to, tz)).await?;
    tx.commit().await?;
    Ok(found)
}

async fn find(app: &WebState, owner: &Owner, id: AppointmentId) -> Result<Appointment, Error> {
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let found = appointments::find(&mut tx, owner.client_id, id).await?.ok_or_else(not_found)?;
    tx.commit().await?;
    Ok(found)
}

/// `GET /api/appointments?from=&days=`
#[utoipa::path(get, path = "/api/appointments", tag = "crm", params(RangeQuery),
    responses((status = 200, body = AppointmentList), (status = 400, body = super::ApiError)))]
pub async fn api_list(
    State(app): State<WebState>,
    owner: Owner,
    Query(query): Query<RangeQuery>,
) -> Result<Json<AppointmentList>, Error> {
    let tenant = tenant_of(&app, &owner).await?;
    let (from, to) = range(&tenant, &query)?;
    let found = between(&app, &owner, zone(&tenant), from, to).await?;
    let appointments = found.into_iter().map(|a| view(&tenant, a)).collect();
    Ok(Json(AppointmentList { from, to, timezone: tenant.timezone.name().to_owned(), appointments }))
}

/// `POST /api/appointments`: 201, or 409 naming the appointment the time overlaps.
#[utoipa::path(post, path = "/api/appointments", tag = "crm", request_body = AppointmentInput,
    responses((status = 201, body = AppointmentView), (status = 400, body = super::ApiError),
              (status = 409, description = "the time overlaps another appointment", body = super::ApiError)))]
pub async fn api_create(
    State(app): State<WebState>,
    owner: Owner,
    JsonBody(input): JsonBody<AppointmentInput>,
) -> Result<Response, Error> {
    let tenant = tenant_of(&app, &owner).await?;
    let booking = validate_new(&tenant, &input).map_err(Error::Invalid)?;
    let booked = agenda::book(&app.pool, owner.client_id, &booking).await.map_err(|e| agenda_error(&tenant, e))?;
    Ok((StatusCode::CREATED, Json(view(&tenant, booked))).into_response())
}

/// `GET /api/appointments/{id}`
#[utoipa::path(get, path = "/api/appointments/{id}", tag = "crm", params(("id" = i64, Path)),
    responses((status = 200, body = AppointmentView), (status = 404, body = super::ApiError)))]
pub async fn api_show(
    State(app): State<WebState>,
    owner: Owner,
    Path(id): Path<AppointmentId>,
) -> Result<Json<AppointmentView>, Error> {
    let tenant = tenant_of(&app, &owner).await?;
    Ok(Json(view(&tenant, find(&app, &owner, id).await?)))
}

/// `PATCH /api/appointments/{id}`: reschedule and/or set the status.
#[utoipa::path(patch, path = "/api/appointments/{id}", tag = "crm", params(("id" = i64, Path)),
    request_body = AppointmentChange,
    responses((status = 200, body = AppointmentView), (status = 400, body = super::ApiError),
              (status = 404, body = super::ApiError), (status = 409, body = super::ApiError)))]
pub async fn api_update(
    State(app): State<WebState>,
    owner: Owner,
    Path(id): Path<AppointmentId>,
    JsonBody(input): JsonBody<AppointmentChange>,
) -> Result<Json<AppointmentView>, Error> {
    let tenant = tenant_of(&app, &owner).await?;
    let current = find(&app, &owner, id).await?;
    let change = validate_change(&tenant, &current, &input).map_err(Error::Invalid)?;
    let changed =
        agenda::change(&app.pool, owner.client_id, id, &change).await.map_err(|e| agenda_error(&tenant, e))?;
    Ok(Json(view(&tenant, changed)))
}

/// `DELETE /api/appointments/{id}`: cancels it (the time is free again); the row stays.
#[utoipa::path(delete, path = "/api/appointments/{id}", tag = "crm", params(("id" = i64, Path)),
    responses((status = 200, body = AppointmentView), (status = 404, body = super::ApiError)))]
pub async fn api_cancel(
    State(app): State<WebState>,
    owner: Owner,
    Path(id): Path<AppointmentId>,
) -> Result<Json<AppointmentView>, Error> {
    let tenant = tenant_of(&app, &owner).await?;
    let change = Change { status: Some(AppointmentStatus::Cancelled), ..Change::default() };
    let changed =
        agenda::change(&app.pool, owner.client_id, id, &change).await.map_err(|e| agenda_error(&tenant, e))?;
    Ok(Json(view(&tenant, changed)))
}

fn form_errors(e: &Error) -> Option<HashMap<&'static str, String>> {
    match e {
        Error::Invalid(fields) => Some(fields.iter().map(|f| (f.field, f.message.clone())).collect()),
        Error::Conflict { message, field, .. } => Some(HashMap::from([(field.unwrap_or("time"), message.clone())])),
        _ => None,
    }
}

/// A month's days as weeks (Monday first), each day with its number of live appointments.
fn month_grid(first: NaiveDate, counts: &BTreeMap<NaiveDate, usize>) -> Vec<Vec<minijinja::Value>> {
    let lead = first.weekday().num_days_from_monday() as i64;
    let mut weeks = Vec::new();
    let mut day = first - Duration::days(lead);
    loop {
        let week: Vec<_> = (0..7)
            .map(|i| {
                let d = day + Duration::days(i);
                context! {
                    date => d.format("%Y-%m-%d").to_string(), day => d.day(),
                    in_month => d.month() == first.month(), count => counts.get(&d).copied().unwrap_or(0),
                }
            })
            .collect();
        weeks.push(week);
        day += Duration::days(7);
        if day.month() != first.month() || day.year() != first.year() {
            break;
        }
    }
    weeks
}

async fn agenda_page(
    app: &WebState,
    owner: &Owner,
    query: &RangeQuery,
    form: &AppointmentInput,
    errors: HashMap<&'static str, String>,
) -> Result<Response, Error> {
    let tenant = tenant_of(app, owner).await?;
    let tz = zone(&tenant);
    let (from, to) = range(&tenant, query)?;
    let found = between(app, owner, tz, from, to).await?;
    let today = Utc::now().with_timezone(&tz).date_naive();
    let mut days: BTreeMap<NaiveDate, Vec<minijinja::Value>> = BTreeMap::new();
    let mut d = from;
    while d < to {
        days.insert(d, Vec::new());
        d += Duration::days(1);
    }
    for a in found {
        let date = a.starts_at.with_timezone(&tz).date_naive();
        let v = view(&tenant, a);
        days.entry(date).or_default().push(context! {
            id => v.appointment.id.get(), time => v.appointment.starts_at.with_timezone(&tz).format("%-I:%M %p").to_string(),
            minutes => v.duration_minutes, name => v.appointment.customer_name, phone => v.appointment.customer_phone,
            status => v.appointment.status.as_str().replace('_', " "), cancelled => v.appointment.status == AppointmentStatus::Cancelled,
            warning => v.warning.is_some(), contact_id => v.appointment.contact_id.map(ContactId::get),
        });
    }
    let days: Vec<_> = days
        .into_iter()
        .map(|(date, items)| {
            context! { label => date.format("%A, %B %-d").to_string(), is_today => date == today, items }
        })
        .collect();
    // The month overview: live appointments per day of the month `from` falls in.
    let first = from.with_day(1).unwrap_or(from);
    let next_month = (first + Duration::days(32)).with_day(1).unwrap_or(first + Duration::days(31));
    let month = between(app, owner, tz, first, next_month).await?;
    let mut counts = BTreeMap::new();
    for a in month.iter().filter(|a| a.status != AppointmentStatus::Cancelled) {
        *counts.entry(a.starts_at.with_timezone(&tz).date_naive()).or_insert(0) += 1;
    }
    let ymd = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let mut form = form.clone();
    if form.date.is_empty() {
        form.date = ymd(from.max(today));
    }
    render(
        &app.templates,
        "appointments.html",
        context! {
            owner => owner_value(owner), active => "appointments", days,
            range_label => format!("{} – {}", from.format("%b %-d"), (to - Duration::days(1)).format("%b %-d, %Y")),
            previous => ymd(from - Duration::days(7)), next => ymd(from + Duration::days(7)), today => ymd(today),
            month_label => first.format("%B %Y").to_string(), month => month_grid(first, &counts),
            previous_month => ymd((first - Duration::days(1)).with_day(1).unwrap_or(first)), next_month => ymd(next_month),
            open_form => !errors.is_empty() || !form.customer_phone.is_empty(), form => value(&form), errors,
            default_minutes => tenant.appointment_minutes, timezone => tenant.timezone.name(),
            hours => tenant.calendar().hours.describe(),
        },
    )
}

/// The agenda page's query: the range, and a customer to prefill the booking form with.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PageQuery {
    from: Option<String>,
    days: Option<i64>,
    name: Option<String>,
    phone: Option<String>,
}

/// `GET /app/appointments?from=&days=[&name=&phone=]`: the agenda.
pub async fn page(
    State(app): State<WebState>,
    owner: Owner,
    Query(query): Query<PageQuery>,
) -> Result<Response, Error> {
    let form = AppointmentInput {
        customer_name: query.name.unwrap_or_default(),
        customer_phone: query.phone.unwrap_or_default(),
        ..AppointmentInput::default()
    };
    let range = RangeQuery { from: query.from, days: query.days };
    agenda_page(&app, &owner, &range, &form, HashMap::new()).await
}

/// `POST /app/appointments`: books and opens the appointment; mistakes (an overlap
/// included) come back on the form with what was typed.
pub async fn create(
    State(app): State<WebState>,
    owner: Owner,
    Form(form): Form<AppointmentInput>,
) -> Result<Response, Error> {
    let tenant = tenant_of(&app, &owner).await?;
    let result = match validate_new(&tenant, &form) {
        Ok(booking) => agenda::book(&app.pool, owner.client_id, &booking).await.map_err(|e| agenda_error(&tenant, e)),
        Err(fields) => Err(Error::Invalid(fields)),
    };
    match result {
        Ok(a) => Ok(Redirect::to(&format!("/app/appointments/{}?booked=1", a.id)).into_response()),
        Err(e) => match form_errors(&e) {
            Some(errors) => {
                let query = RangeQuery { from: parse_date(&form.date).ok().map(|d| d.to_string()), days: None };
                Ok(with_status(e.status(), agenda_page(&app, &owner, &query, &form, errors).await))
            }
            None => Err(e),
        },
    }
}

async fn appointment_page(
    app: &WebState,
    owner: &Owner,
    id: AppointmentId,
    form: Option<&AppointmentChange>,
    errors: HashMap<&'static str, String>,
) -> Result<Response, Error> {
    let tenant = tenant_of(app, owner).await?;
    let tz = zone(&tenant);
    let v = view(&tenant, find(app, owner, id).await?);
    let local = v.appointment.starts_at.with_timezone(&tz);
    let form = form.cloned().unwrap_or_else(|| AppointmentChange {
        date: Some(local.format("%Y-%m-%d").to_string()),
        time: Some(local.format("%H:%M").to_string()),
        duration_minutes: Some(Minutes::Number(v.duration_minutes)),
        ..AppointmentChange::default()
    });
    render(
        &app.templates,
        "appointment.html",
        context! {
            owner => owner_value(owner), active => "appointments",
            a => value(&v.appointment), local_start => v.local_start, minutes => v.duration_minutes, warning => v.warning,
            status_label => v.appointment.status.as_str().replace('_', " "),
            week_of => local.format("%Y-%m-%d").to_string(),
            form => value(&form), errors, timezone => tenant.timezone.name(),
        },
    )
}

/// `GET /app/appointments/{id}`
pub async fn show(State(app): State<WebState>, owner: Owner, Path(id): Path<AppointmentId>) -> Result<Response, Error> {
    appointment_page(&app, &owner, id, None, HashMap::new()).await
}

async fn apply(app: &WebState, owner: &Owner, id: AppointmentId, form: &AppointmentChange) -> Result<Response, Error> {
    let tenant = tenant_of(app, owner).await?;
    let current = find(app, owner, id).await?;
    let result = match validate_change(&tenant, &current, form) {
        Ok(change) => {
            agenda::change(&app.pool, owner.client_id, id, &change).await.map_err(|e| agenda_error(&tenant, e))
        }
        Err(fields) => Err(Error::Invalid(fields)),
    };
    match result {
        Ok(a) => Ok(Redirect::to(&format!("/app/appointments/{}?saved=1", a.id)).into_response()),
        Err(e) => match form_errors(&e) {
            Some(errors) => Ok(with_status(e.status(), appointment_page(app, owner, id, Some(form), errors).await)),
            None => Err(e),
        },
    }
}

/// `POST /app/appointments/{id}`: reschedules (date, time, length).
pub async fn update(
    State(app): State<WebState>,
    owner: Owner,
    Path(id): Path<AppointmentId>,
    Form(mut form): Form<AppointmentChange>,
) -> Result<Response, Error> {
    form.status = None;
    apply(&app, &owner, id, &form).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StatusForm {
    status: String,
}

/// `POST /app/appointments/{id}/status`: completed, no-show, cancelled or confirmed.
pub async fn set_status(
    State(app): State<WebState>,
    owner: Owner,
    Path(id): Path<AppointmentId>,
    Form(form): Form<StatusForm>,
) -> Result<Response, Error> {
    let change = AppointmentChange { status: Some(form.status), ..AppointmentChange::default() };
    apply(&app, &owner, id, &change).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_grid_starts_on_monday_and_covers_every_day() {
        let first = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(); // a Sunday
        let weeks = month_grid(first, &BTreeMap::from([(first, 2)]));
        assert_eq!(weeks[0].len(), 7);
        assert_eq!(weeks[0][0].get_attr("date").unwrap().to_string(), "2026-02-23");
        assert_eq!(weeks[0][6].get_attr("count").unwrap().as_i64(), Some(2));
        let last = weeks.last().unwrap();
        assert!(last.iter().any(|d| d.get_attr("date").unwrap().to_string() == "2026-03-31"));
    }

    #[test]
    fn a_wall_clock_time_that_the_clocks_skip_is_refused_with_a_reason() {
        let mut errors = Vec::new();
        let t = local_instant(chrono_tz::America::New_York, "2026-03-08", "02:30", &mut errors);
        assert!(t.is_none());
        assert_eq!(errors[0].field, "time");
        let t = local_instant(chrono_tz::America::New_York, "2026-03-09", "14:30", &mut Vec::new());
        assert_eq!(t, Some(Utc.with_ymd_and_hms(2026, 3, 9, 18, 30, 0).unwrap()));
    }
}
