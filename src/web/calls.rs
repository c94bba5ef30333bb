//! The owner's call history (`/app/calls`) and one call in full (`/app/calls/{sid}`):
//! transcript, per-turn latency, bookings and messages, the recording, deletion; and their
//! JSON twins under `/api/calls`. Reads and deletes only the signed-in tenant's calls.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use minijinja::context;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::accounts::FieldError;
use crate::domain::appointments::AppointmentStatus;
use crate::domain::calls::{HandledBy, Outcome, Speaker};
use crate::domain::ids::TenantId;
use crate::domain::messages::Direction;
use crate::storage::postgres::call_history::{self, HistoryFilter, HistoryRow};
use crate::storage::postgres::calls::{self, Turn};
use crate::storage::postgres::credits::{self, Usage};
use crate::storage::postgres::{begin_tenant, today};
use crate::web::Error;
use crate::web::WebState;
use crate::web::auth::Owner;
use crate::web::shell::render;
use crate::web::today::day_bounds;

/// Calls shown per page unless `per_page` says otherwise.
const PER_PAGE: i64 = 25;
const MAX_PER_PAGE: i64 = 100;

/// The history's filters as typed (all text, so a bad value gets our own message).
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// First day, `YYYY-MM-DD`, in the business's time zone.
    pub from: Option<String>,
    /// Last day (included), `YYYY-MM-DD`, in the business's time zone.
    pub to: Option<String>,
    /// `none`, `booked`, `cancelled`, `rescheduled`, `message`, `transfer` or `info`.
    pub outcome: Option<String>,
    /// `agent`, `owner` or `none`.
    pub handled_by: Option<String>,
    /// Part of the caller's number or contact name.
    pub q: Option<String>,
    /// Page number, from 1.
    pub page: Option<String>,
    /// Calls per page, 1 to 100 (25 unless given).
    pub per_page: Option<String>,
}

fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn local_day(tz: Tz, date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    // Noon exists on every day in every zone, whatever DST does around midnight.
    let noon = date.and_hms_opt(12, 0, 0).and_then(|n| tz.from_local_datetime(&n).earliest());
    let noon = noon
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN)));
    day_bounds(tz, noon)
}

/// What the query asks for: the filter, the page (from 1) and its size.
fn parse_query(query: &HistoryQuery, tz: Tz) -> Result<(HistoryFilter, i64, i64), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut filter = HistoryFilter::default();
    let date = |field: &'static str, value: &str, errors: &mut Vec<FieldError>| {
        NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .map_err(|_| errors.push(FieldError::new(field, format!("{value:?} is not a date; use YYYY-MM-DD"))))
            .ok()
    };
    let from = given(&query.from).and_then(|v| date("from", v, &mut errors));
    let to = given(&query.to).and_then(|v| date("to", v, &mut errors));
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        errors.push(FieldError::new("to", "the last day comes before the first day"));
    }
    filter.from = from.map(|d| local_day(tz, d).0);
    filter.to = to.map(|d| local_day(tz, d).1);
    if let Some(outcome) = given(&query.outcome) {
        if let Ok(outcome) = outcome.parse::<Outcome>() {
            filter.outcome = Some(outcome);
        } else {
            let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
            errors.push(FieldError::new("outcome", format!("outcome must be one of {}", names.join(", "))));
        }
    }
    if let Some(handled_by) = given(&query.handled_by) {
        if let Ok(handled_by) = handled_by.parse::<HandledBy>() {
            filter.handled_by = Some(handled_by);
        } else {
            errors.push(FieldError::new("handled_by", "handled by must be agent, owner or none"));
        }
    }
    if let Some(search) = given(&query.q) {
        if search.chars().count() > 100 {
            errors.push(FieldError::new("q", "search for at most 100 characters"));
        } else {
            filter.search = Some(search.to_owned());
        }
    }
    let number =
        |field: &'static str, value: Option<&str>, default: i64, max: i64, errors: &mut Vec<FieldError>| match value
            .map(str::parse::<i64>)
        {
            None => default,
            Some(Ok(n)) if (1..=max).contains(&n) => n,
            Some(_) => {
                errors.push(FieldError::new(field, format!("{field} must be a whole number from 1 to {max}")));
                default
            }
        };
    let page = number("page", given(&query.page), 1, 100_000, &mut errors);
    let per_page = number("per_page", given(&query.per_page), PER_PAGE, MAX_PER_PAGE, &mut errors);
    if errors.is_empty() { Ok((filter, page, per_page)) } else { Err(errors) }
}

/// One call in the history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallSummary {
    pub call_sid: String,
    pub from_number: String,
    /// The caller's contact name, when the caller is a known contact.
    pub contact_name: Option<String>,
    #[schema(value_type = String)]
    pub handled_by: HandledBy,
    pub status: String,
    #[schema(value_type = String)]
    pub outcome: Outcome,
    pub started_at: DateTime<Utc>,
    pub duration_seconds: Option<i32>,
    pub cost_cents: i64,
}

impl From<HistoryRow> for CallSummary {
    fn from(r: HistoryRow) -> Self {
        Self {
            call_sid: r.call_sid,
            from_number: r.from_number,
            contact_name: r.contact_name,
            handled_by: r.handled_by,
            status: r.status,
            outcome: r.outcome,
            started_at: r.started_at,
            duration_seconds: r.duration_seconds,
            cost_cents: r.cost_cents,
        }
    }
}

/// A page of the history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallPage {
    pub calls: Vec<CallSummary>,
    pub page: i64,
    pub per_page: i64,
    /// Calls matching the filters, on every page.
    pub total: i64,
    pub pages: i64,
}

async fn timezone(tx: &mut sqlx::PgConnection, client_id: TenantId) -> Result<Tz, Error> {
    let tenant = today::tenant_header(tx, client_id)
        .await?
        .ok_or_else(|| Error::NotFound("this account's business no longer exists".into()))?;
    Ok(tenant.timezone)
}

async fn history(
    app: &WebState,
    client_id: TenantId,
    query: &HistoryQuery,
) -> Result<(Tz, Result<CallPage, Vec<FieldError>>), Error> {
    let mut tx = begin_tenant(&app.pool, client_id).await?;
    let tz = timezone(&mut tx, client_id).await?;
    let (filter, page, per_page) = match parse_query(query, tz) {
        Ok(parsed) => parsed,
        Err(errors) => return Ok((tz, Err(errors))),
    };
    let (rows, total) = call_history::page(&mut tx, client_id, &filter, per_page, (page - 1) * per_page).await?;
    tx.commit().await?;
    let pages = ((total + per_page - 1) / per_page).max(1);
    Ok((tz, Ok(CallPage { calls: rows.into_iter().map(CallSummary::from).collect(), page, per_page, total, pages })))
}

fn money(cents: i64) -> String {
    format!("${}.{:02}", cents / 100, cents.rem_euclid(100))
}

fn duration(seconds: Option<i32>) -> String {
    seconds.map(|s| format!("{}:{:02}", s / 60, s % 60)).unwrap_or_else(|| "–".into())
}

fn outcome_label(outcome: Outcome, handled_by: HandledBy) -> String {
    match (handled_by, outcome) {
        (HandledBy::Owner, _) => "sent to you".into(),
        (_, Outcome::None) => "no outcome".into(),
        (_, other) => other.as_str().replace('_', " "),
    }
}

fn page_link(query: &HistoryQuery, page: i64) -> String {
    let mut q = query.clone();
    q.page = Some(page.to_string());
    let pairs: Vec<(&str, &str)> = [
        ("from", &q.from),
        ("to", &q.to),
        ("outcome", &q.outcome),
        ("handled_by", &q.handled_by),
        ("q", &q.q),
        ("per_page", &q.per_page),
        ("page", &q.page),
    ]
    .into_iter()
    .filter_map(|(k, v)| given(v).map(|v| (k, v)))
    .collect();
    format!("/app/calls?{}", serde_urlencoded::to_string(pairs).unwrap_or_default())
}

/// `GET /app/calls`: the history, newest first, with its filter form.
pub async fn page(
    State(app): State<WebState>,
    owner: Owner,
    Query(query): Query<HistoryQuery>,
) -> Result<Response, Error> {
    let (tz, result) = history(&app, owner.client_id, &query).await?;
    let time = |t: DateTime<Utc>| t.with_timezone(&tz).format("%b %-d, %-I:%M %p").to_string();
    let (rows, errors, page, pages, total) = match &result {
        Ok(p) => {
            let rows: Vec<_> = p
                .calls
                .iter()
                .map(|c| {
                    context! {
                        sid => c.call_sid.as_str(),
                        when => time(c.started_at),
                        caller => c.contact_name.clone().unwrap_or_else(|| if c.from_number.is_empty() { "Unknown caller".into() } else { c.from_number.clone() }),
                        number => c.from_number.as_str(),
                        duration => duration(c.duration_seconds),
                        outcome => outcome_label(c.outcome, c.handled_by),
                        cost => money(c.cost_cents),
                    }
                })
                .collect();
            (rows, Vec::new(), p.page, p.pages, p.total)
        }
        Err(errors) => (Vec::new(), errors.clone(), 1, 1, 0),
    };
    let error_of = |field: &str| errors.iter().find(|e| e.field == field).map(|e| e.message.clone());
    render(
        &app.templates,
        "calls.html",
        context! {
            owner => minijinja::Value::from(minijinja::value::Serde(&owner)),
            active => "calls",
            query => minijinja::Value::from(minijinja::value::Serde(&query)),
            outcomes => Outcome::ALL.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
            handlers => HandledBy::ALL.iter().map(|h| h.as_str()).collect::<Vec<_>>(),
            rows,
            total,
            page,
            pages,
            prev => (page > 1).then(|| page_link(&query, page - 1)),
            next => (page < pages).then(|| page_link(&query, page + 1)),
            invalid => !errors.is_empty(),
            from_error => error_of("from"),
            to_error => error_of("to"),
            outcome_error => error_of("outcome"),
            handled_by_error => error_of("handled_by"),
            q_error => error_of("q"),
            page_error => error_of("page").or_else(|| error_of("per_page")),
        },
    )
}

/// The history as JSON, newest first.
#[utoipa::path(get, path = "/api/calls", tag = "calls", params(HistoryQuery),
    responses((status = 200, body = CallPage), (status = 400, description = "a filter is not valid"), (status = 401)))]
pub async fn api_list(
    State(app): State<WebState>,
    owner: Owner,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<CallPage>, Error> {
    match history(&app, owner.client_id, &query).await?.1 {
        Ok(page) => Ok(Json(page)),
        Err(errors) => Err(Error::Invalid(errors)),
    }
}

/// How long each step of an agent's reply took, in milliseconds.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Latency {
    /// Caller stopped speaking → final transcript.
    pub stt_ms: Option<i64>,
    /// Final transcript → reply text ready.
    pub reply_ms: Option<i64>,
    /// Reply ready → first byte of synthesized speech.
    pub tts_first_byte_ms: Option<i64>,
    /// First byte → first audio sent to the caller.
    pub first_audio_ms: Option<i64>,
    /// First audio sent → Twilio's first mark (it was played).
    pub first_mark_ms: Option<i64>,
    /// Caller stopped → first audio sent: the silence the caller heard.
    pub total_ms: Option<i64>,
}

impl Latency {
    fn of(turn: &Turn) -> Option<Self> {
        let between = |a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| Some((b? - a?).num_milliseconds());
        let latency = Latency {
            stt_ms: between(turn.caller_stopped_at, turn.stt_final_at),
            reply_ms: between(turn.stt_final_at, turn.reply_ready_at),
            tts_first_byte_ms: between(turn.reply_ready_at, turn.tts_first_byte_at),
            first_audio_ms: between(turn.tts_first_byte_at, turn.first_audio_sent_at),
            first_mark_ms: between(turn.first_audio_sent_at, turn.first_mark_at),
            total_ms: between(turn.caller_stopped_at, turn.first_audio_sent_at),
        };
        // A greeting (no caller turn before it) has nothing to measure from.
        (turn.speaker == Speaker::Agent && turn.caller_stopped_at.is_some()).then_some(latency)
    }

    fn describe(&self) -> String {
        let parts = [
            ("speech recognised", self.stt_ms),
            ("reply ready", self.reply_ms),
            ("voice started", self.tts_first_byte_ms),
            ("audio sent", self.first_audio_ms),
            ("played", self.first_mark_ms),
        ];
        let mut text: Vec<String> =
            parts.iter().filter_map(|(label, ms)| ms.map(|ms| format!("{label} +{ms} ms"))).collect();
        if let Some(total) = self.total_ms {
            text.push(format!("caller waited {total} ms"));
        }
        text.join(" · ")
    }
}

/// One line of a transcript.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TranscriptLine {
    pub seq: i32,
    /// `caller`, `agent` or `system`.
    #[schema(value_type = String)]
    pub speaker: Speaker,
    pub text: String,
    /// For an interrupted agent line: what the caller heard before talking over it.
    pub heard_text: Option<String>,
    pub interrupted: bool,
    pub intent: Option<String>,
    pub started_at: DateTime<Utc>,
    pub latency: Option<Latency>,
}

/// An appointment made during the call.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallAppointment {
    pub customer_name: String,
    pub customer_phone: String,
    pub starts_at: DateTime<Utc>,
    #[schema(value_type = String)]
    pub status: AppointmentStatus,
    pub confirmation_code: String,
}

/// A message sent or taken during the call.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallMessage {
    #[schema(value_type = String)]
    pub direction: Direction,
    pub kind: String,
    pub to_number: String,
    pub from_number: String,
    pub body: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

/// One call in full.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallDetail {
    pub call_sid: String,
    pub from_number: String,
    pub contact_name: Option<String>,
    pub to_number: String,
    #[schema(value_type = String)]
    pub handled_by: HandledBy,
    pub status: String,
    #[schema(value_type = String)]
    pub outcome: Outcome,
    pub language: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<i32>,
    pub cost_cents: i64,
    /// What went wrong during the call (a provider that failed over, ...), if anything.
    pub failures: String,
    /// Whether the call is still in progress.
    pub live: bool,
    pub transcript: Vec<TranscriptLine>,
    pub appointments: Vec<CallAppointment>,
    pub messages: Vec<CallMessage>,
    /// Where the recording is served, when the call was recorded.
    pub recording_url: Option<String>,
    /// What the call took from the credit, once it was metered.
    pub charge: Option<CallCharge>,
}

/// What a metered call took from the credit, or why it took nothing.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallCharge {
    pub minutes: i32,
    pub free_minutes: i32,
    pub paid_minutes: i32,
    pub cost_cents: i64,
    pub balance_after_cents: i64,
    /// `owner_answered`, `too_short`, `blocked_caller` or `not_answered` when nothing was charged.
    pub not_charged: Option<String>,
    /// The charge in words: "Cost: 3 min (2 free, 1 paid) $0.10", or why nothing was charged.
    pub text: String,
}

impl CallCharge {
    fn of(usage: &Usage) -> Self {
        let text = match usage.not_charged {
            Some(reason) => reason.explanation().to_owned(),
            None => format!(
                "Cost: {} min ({} free, {} paid) {}",
                usage.minutes,
                usage.free_minutes,
                usage.paid_minutes,
                crate::domain::credits::dollars(usage.cost_cents)
            ),
        };
        CallCharge {
            minutes: usage.minutes,
            free_minutes: usage.free_minutes,
            paid_minutes: usage.paid_minutes,
            cost_cents: usage.cost_cents,
            balance_after_cents: usage.balance_after_cents,
            not_charged: usage.not_charged.map(|n| n.as_str().to_owned()),
            text,
        }
    }
}

fn not_found(call_sid: &str) -> Error {
    Error::NotFound(format!("no call {call_sid} in your call history"))
}

async fn is_live(app: &WebState, client_id: TenantId, call_sid: &str) -> bool {
    app.registry.is_live(call_sid)
        || app.store.live_calls(client_id).await.map(|calls| calls.iter().any(|c| c == call_sid)).unwrap_or(false)
}

async fn detail(app: &WebState, client_id: TenantId, call_sid: &str) -> Result<(Tz, CallDetail), Error> {
    let mut tx = begin_tenant(&app.pool, client_id).await?;
    let tz = timezone(&mut tx, client_id).await?;
    let (call, contact_name) =
        call_history::find(&mut tx, client_id, call_sid).await?.ok_or_else(|| not_found(call_sid))?;
    let turns = call_history::turns(&mut tx, client_id, call.id).await?;
    let appointments = call_history::appointments(&mut tx, client_id, call.id).await?;
    let messages = call_history::messages(&mut tx, client_id, call.id).await?;
    let recorded = call_history::has_recording(&mut tx, client_id, call.id).await?;
    let usage = credits::usage_for_call(&mut tx, call.id).await?;
    tx.commit().await?;
    let live = is_live(app, client_id, call_sid).await;
    Ok((
        tz,
        CallDetail {
            transcript: turns
                .iter()
                .map(|t| TranscriptLine {
                    seq: t.seq,
                    speaker: t.speaker,
                    text: t.text.clone(),
                    heard_text: t.heard_text.clone(),
                    interrupted: t.interrupted,
                    intent: t.intent.clone(),
                    started_at: t.started_at,
                    latency: Latency::of(t),
                })
                .collect(),
            appointments: appointments
                .into_iter()
                .map(|a| CallAppointment {
                    customer_name: a.customer_name,
                    customer_phone: a.customer_phone,
                    starts_at: a.starts_at,
                    status: a.status,
                    confirmation_code: a.confirmation_code,
                })
                .collect(),
            messages: messages
                .into_iter()
                .map(|m| CallMessage {
                    direction: m.direction,
                    kind: m.kind,
                    to_number: m.to_number,
                    from_number: m.from_number,
                    body: m.body,
                    status: m.status,
                    created_at: m.created_at,
                })
                .collect(),
            recording_url: recorded.then(|| format!("/api/calls/{}/recording", call.call_sid)),
            charge: usage.as_ref().map(CallCharge::of),
            call_sid: call.call_sid,
            from_number: call.from_number,
            contact_name,
            to_number: call.to_number,
            handled_by: call.handled_by,
            status: call.status,
            outcome: call.outcome,
            language: call.language,
            started_at: call.started_at,
            ended_at: call.ended_at,
            duration_seconds: call.duration_seconds,
            cost_cents: call.cost_cents,
            failures: call.failures,
            live,
        },
    ))
}

fn detail_context(owner: &Owner, tz: Tz, call: &CallDetail, confirm_delete: bool) -> minijinja::Value {
    let time = |t: DateTime<Utc>| t.with_timezone(&tz).format("%-I:%M:%S %p").to_string();
    let lines: Vec<_> = call
        .transcript
        .iter()
        .map(|t| {
            context! {
                speaker => t.speaker.as_str(),
                who => match t.speaker { Speaker::Caller => "Caller", Speaker::Agent => "Rachel", Speaker::System => "System" },
                text => t.text.as_str(),
                heard => t.interrupted.then(|| t.heard_text.clone().unwrap_or_default()),
                at => time(t.started_at),
                latency => t.latency.as_ref().map(Latency::describe),
                total_ms => t.latency.as_ref().and_then(|l| l.total_ms),
            }
        })
        .collect();
    let appointments: Vec<_> = call
        .appointments
        .iter()
        .map(|a| {
            context! {
                when => a.starts_at.with_timezone(&tz).format("%a %b %-d, %-I:%M %p").to_string(),
                name => a.customer_name.as_str(), status => a.status.as_str(), code => a.confirmation_code.as_str(),
            }
        })
        .collect();
    let messages: Vec<_> = call
        .messages
        .iter()
        .map(|m| context! { direction => m.direction.as_str(), to => m.to_number.as_str(), body => m.body.as_str(), status => m.status.as_str() })
        .collect();
    context! {
        owner => minijinja::Value::from(minijinja::value::Serde(owner)),
        active => "calls",
        sid => call.call_sid.as_str(),
        caller => call.contact_name.clone().unwrap_or_else(|| if call.from_number.is_empty() { "Unknown caller".into() } else { call.from_number.clone() }),
        number => call.from_number.as_str(),
        when => call.started_at.with_timezone(&tz).format("%A, %B %-d, %Y at %-I:%M %p").to_string(),
        duration => duration(call.duration_seconds),
        outcome => outcome_label(call.outcome, call.handled_by),
        cost => money(call.cost_cents),
        failures => (!call.failures.trim().is_empty()).then_some(call.failures.as_str()),
        live => call.live,
        recording => call.recording_url.is_some(),
        charge => call.charge.as_ref().map(|c| context! { text => c.text.as_str(), charged => c.not_charged.is_none() }),
        lines,
        appointments,
        messages,
        confirm_delete,
    }
}

/// `GET /app/calls/{call_sid}`
pub async fn call_page(
    State(app): State<WebState>,
    owner: Owner,
    Path(call_sid): Path<String>,
) -> Result<Response, Error> {
    let (tz, call) = detail(&app, owner.client_id, &call_sid).await?;
    let blocked = crate::web::blocked::is_on_list(&app, &owner, &call.from_number).await?;
    render(&app.templates, "call.html", context! { blocked, ..detail_context(&owner, tz, &call, false) })
}

/// One call with its transcript, latency, bookings, messages and recording.
#[utoipa::path(get, path = "/api/calls/{call_sid}", tag = "calls",
    params(("call_sid" = String, Path, description = "Twilio's CallSid")),
    responses((status = 200, body = CallDetail), (status = 401), (status = 404, description = "no such call for this business")))]
pub async fn api_call(
    State(app): State<WebState>,
    owner: Owner,
    Path(call_sid): Path<String>,
) -> Result<Json<CallDetail>, Error> {
    Ok(Json(detail(&app, owner.client_id, &call_sid).await?.1))
}

/// `GET /app/calls/{call_sid}/delete`: asks before deleting (works without JavaScript).
pub async fn confirm_delete(
    State(app): State<WebState>,
    owner: Owner,
    Path(call_sid): Path<String>,
) -> Result<Response, Error> {
    let (tz, call) = detail(&app, owner.client_id, &call_sid).await?;
    render(&app.templates, "call.html", detail_context(&owner, tz, &call, true))
}

async fn delete_call(app: &WebState, client_id: TenantId, call_sid: &str) -> Result<(), Error> {
    let mut tx = begin_tenant(&app.pool, client_id).await?;
    let (call, _) = call_history::find(&mut tx, client_id, call_sid).await?.ok_or_else(|| not_found(call_sid))?;
    tx.commit().await?;
    if is_live(app, client_id, call_sid).await {
        return Err(Error::Conflict {
            message: "this call is still in progress; delete it once it has ended".into(),
            field: None,
            link: None,
        });
    }
    if !calls::delete(&app.pool, client_id, call.id).await? {
        return Err(not_found(call_sid));
    }
    tracing::info!(tenant_id = %client_id, call_sid, "call deleted with its recording");
    Ok(())
}

/// `POST /app/calls/{call_sid}/delete` (with the CSRF token): deletes the call, its
/// transcript and its recording, then shows the history.
pub async fn delete_page(
    State(app): State<WebState>,
    owner: Owner,
    Path(call_sid): Path<String>,
) -> Result<Response, Error> {
    delete_call(&app, owner.client_id, &call_sid).await?;
    Ok(Redirect::to("/app/calls?deleted=1").into_response())
}

/// Deletes a call with its transcript and recording (bookings and messages stay).
#[utoipa::path(delete, path = "/api/calls/{call_sid}", tag = "calls",
    params(("call_sid" = String, Path, description = "Twilio's CallSid")),
    responses((status = 204, description = "deleted"), (status = 401), (status = 403, description = "CSRF token missing"),
        (status = 404, description = "no such call for this business"), (status = 409, description = "the call is in progress")))]
pub async fn api_delete(
    State(app): State<WebState>,
    owner: Owner,
    Path(call_sid): Path<String>,
) -> Result<StatusCode, Error> {
    delete_call(&app, owner.client_id, &call_sid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The call's recording (Ogg Opus), whole or by byte range.
#[utoipa::path(get, path = "/api/calls/{call_sid}/recording", tag = "calls",
    params(("call_sid" = String, Path, description = "Twilio's CallSid")),
    responses((status = 200, content_type = "audio/ogg", description = "the recording"), (status = 206, description = "a byte range"),
        (status = 401), (status = 404, description = "no such call, or not recorded")))]
pub async fn recording(
    State(app): State<WebState>,
    owner: Owner,
    Path(call_sid): Path<String>,
    headers: HeaderMap,
) -> Response {
    crate::web::recordings::serve(&app.pool, owner.client_id, &call_sid, &headers).await
}

/// The call history's part of the API document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(api_list, api_call, api_delete, recording),
    components(schemas(
        CallPage,
        CallSummary,
        CallDetail,
        CallCharge,
        TranscriptLine,
        Latency,
        CallAppointment,
        CallMessage
    ))
)]
pub struct CallsApi;

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HistoryQuery {
        serde_urlencoded::from_str(&serde_urlencoded::to_string(pairs).unwrap()).unwrap()
    }

    #[test]
    fn dates_are_whole_local_days_with_the_last_one_included() {
        let tz = chrono_tz::America::New_York;
        let (filter, page, per_page) =
            parse_query(&query(&[("from", "2025-01-10"), ("to", "2025-01-10")]), tz).unwrap();
        assert_eq!(filter.from, Some(Utc.with_ymd_and_hms(2025, 1, 10, 5, 0, 0).unwrap()));
        assert_eq!(filter.to, Some(Utc.with_ymd_and_hms(2025, 1, 11, 5, 0, 0).unwrap()));
        assert_eq!((page, per_page), (1, PER_PAGE));
    }

    #[test]
    fn each_bad_filter_is_named_with_a_message() {
        let tz = chrono_tz::UTC;
        let errors = parse_query(
            &query(&[
                ("from", "yesterday"),
                ("outcome", "won"),
                ("handled_by", "bot"),
                ("page", "0"),
                ("per_page", "500"),
            ]),
            tz,
        )
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, vec!["from", "outcome", "handled_by", "page", "per_page"]);
        let reversed = parse_query(&query(&[("from", "2025-02-02"), ("to", "2025-02-01")]), tz).unwrap_err();
        assert_eq!(reversed[0].field, "to");
    }

    #[test]
    fn the_api_document_lists_every_calls_route() {
        use utoipa::OpenApi;
        let doc = CallsApi::openapi();
        for path in ["/api/calls", "/api/calls/{call_sid}", "/api/calls/{call_sid}/recording"] {
            assert!(doc.paths.paths.contains_key(path), "{path}");
        }
        assert!(doc.components.is_some_and(|c| c.schemas.contains_key("CallDetail")));
    }

    #[test]
    fn latency_is_measured_from_when_the_caller_stopped() {
        let at = |ms: i64| Some(Utc.timestamp_millis_opt(1_700_000_000_000 + ms).unwrap());
        let turn = Turn {
            speaker: Speaker::Agent,
            caller_stopped_at: at(0),
            stt_final_at: at(150),
            reply_ready_at: at(400),
            tts_first_byte_at: at(650),
            first_audio_sent_at: at(660),
            first_mark_at: at(900),
            ..Turn::default()
        };
        let latency = Latency::of(&turn).unwrap();
        assert_eq!(
            latency,
            Latency {
                stt_ms: Some(150),
                reply_ms: Some(250),
                tts_first_byte_ms: Some(250),
                first_audio_ms: Some(10),
                first_mark_ms: Some(240),
                total_ms: Some(660)
            }
        );
        assert!(latency.describe().contains("caller waited 660 ms"));
        assert_eq!(Latency::of(&Turn { speaker: Speaker::Agent, ..Turn::default() }), None, "a greeting");
    }
}
