//! Calls in progress (`/app/live`): what has been said so far and the intent and details
//! collected, then each new line as it is spoken, streamed as Server-Sent Events from the
//! tenant's live feed; and the owner's two controls on each call, "Take this call" and
//! "Send a note". Only the signed-in tenant's calls are read, streamed or controlled.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::{HeaderValue, header};
use axum::response::Redirect;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use minijinja::context;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::call::commands::{CallCommand, MAX_NOTE_CHARS};
use crate::call::events::{Checkpoint, LiveEvent};
use crate::dialogue::nlu::Intent;
use crate::domain::accounts::FieldError;
use crate::domain::calls::Speaker;
use crate::domain::ids::TenantId;
use crate::domain::language::Language;
use crate::domain::scheduling::Slot;
use crate::storage::postgres::{begin_tenant, call_history, today};
use crate::telephony::control::{ControlError, Reached};
use crate::web::Error;
use crate::web::WebState;
use crate::web::auth::Owner;
use crate::web::error::ErrorBody;
use crate::web::shell::render;

/// How often an idle stream carries a comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One line said so far in a live call.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LiveLine {
    pub seq: i32,
    #[schema(value_type = String, example = "caller")]
    pub speaker: Speaker,
    pub text: String,
    #[serde(rename = "at", alias = "started_at")]
    pub at: DateTime<Utc>,
}

/// What the agent has gathered so far.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct LiveSlots {
    /// What the caller wants (`book`, `cancel`, ...), once understood.
    #[schema(value_type = Option<String>)]
    pub intent: Option<Intent>,
    pub name: Option<String>,
    pub phone: Option<String>,
    /// Slots offered to the caller.
    #[schema(value_type = Vec<Object>)]
    pub offered: Vec<Slot>,
    /// `english` or `spanish`.
    #[schema(value_type = Option<String>)]
    pub language: Option<Language>,
}

/// A call in progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiveCall {
    pub call_sid: String,
    pub from_number: String,
    pub contact_name: Option<String>,
    pub started_at: DateTime<Utc>,
    pub slots: LiveSlots,
    pub lines: Vec<LiveLine>,
}

/// Every call of the tenant in progress now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiveCalls {
    pub calls: Vec<LiveCall>,
}

/// The tenant's calls in progress: the store's live index (shared by every instance when
/// Redis is configured), each call's row, and its latest checkpoint.
async fn snapshot(app: &WebState, client_id: TenantId) -> Result<LiveCalls, Error> {
    let sids = app.store.live_calls(client_id).await?;
    let mut calls = Vec::with_capacity(sids.len());
    let mut tx = begin_tenant(&app.pool, client_id).await?;
    for sid in sids {
        // The index is per tenant, but the row is the proof: another tenant's or a
        // finished call is left out.
        let Some((call, contact_name)) = call_history::find(&mut tx, client_id, &sid).await? else { continue };
        if call.ended_at.is_some() {
            continue;
        }
        let (slots, lines) = match app.store.load(&sid).await {
            Ok(Some(raw)) => match Checkpoint::from_json(&raw) {
                Ok(checkpoint) => so_far(checkpoint),
                Err(e) => {
                    tracing::debug!(call_sid = %sid, error = %e, "unreadable checkpoint; showing the call without lines");
                    Default::default()
                }
            },
            Ok(None) => Default::default(),
            Err(e) => {
                tracing::warn!(call_sid = %sid, error = %e, "could not read a live call's checkpoint");
                Default::default()
            }
        };
        calls.push(LiveCall {
            call_sid: call.call_sid,
            from_number: call.from_number,
            contact_name,
            started_at: call.started_at,
            slots,
            lines,
        });
    }
    tx.commit().await?;
    calls.sort_by_key(|c| c.started_at);
    Ok(LiveCalls { calls })
}

/// The details gathered and the lines said so far, from a call's checkpoint.
fn so_far(checkpoint: Checkpoint<'_>) -> (LiveSlots, Vec<LiveLine>) {
    let policy = checkpoint.policy.into_owned();
    let slots = LiveSlots {
        intent: policy.intent,
        name: policy.name,
        phone: policy.phone.map(|p| p.as_str().to_owned()),
        offered: policy.offered,
        language: Some(policy.language),
    };
    let mut lines: Vec<LiveLine> = checkpoint
        .turns
        .iter()
        .filter(|t| !t.text.is_empty())
        .map(|t| LiveLine { seq: t.seq, speaker: t.speaker, text: t.text.clone(), at: t.started_at })
        .collect();
    lines.sort_by_key(|l| l.seq);
    (slots, lines)
}

/// What the last control pressed on the page did (`?done=`), as the page says it.
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    #[serde(default)]
    done: String,
}

fn done_notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "takeover" => "Rachel is handing the call to you now: your phone will ring in a moment.",
        "note" => "Your note will be said at the agent's next turn.",
        "note-invalid" => "A note must be a line of text of at most 300 characters.",
        "ended" => "That call has already ended.",
        "unreachable" => "That call could not be reached just now; please try again.",
        _ => return None,
    })
}

/// `GET /app/live`: the live calls as they stand, kept up to date by `/static/live.js`.
pub async fn page(State(app): State<WebState>, owner: Owner, Query(done): Query<Done>) -> Result<Response, Error> {
    let live = snapshot(&app, owner.client_id).await?;
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let tz = today::tenant_header(&mut tx, owner.client_id)
        .await?
        .ok_or_else(|| Error::NotFound("this account's business no longer exists".into()))?
        .timezone;
    tx.commit().await?;
    let calls: Vec<_> = live
        .calls
        .iter()
        .map(|c| {
            context! {
                sid => c.call_sid.as_str(),
                caller => c.contact_name.clone().unwrap_or_else(|| if c.from_number.is_empty() { "Unknown caller".into() } else { c.from_number.clone() }),
                since => c.started_at.with_timezone(&tz).format("%-I:%M %p").to_string(),
                intent => c.slots.intent.map(|i| minijinja::Value::from(minijinja::value::Serde(i))),
                name => c.slots.name.as_deref(),
                phone => c.slots.phone.as_deref(),
                lines => c.lines.iter().map(|l| context! { seq => l.seq, speaker => l.speaker.as_str(), text => l.text.as_str() }).collect::<Vec<_>>(),
            }
        })
        .collect();
    render(
        &app.templates,
        "live.html",
        context! {
            owner => minijinja::Value::from(minijinja::value::Serde(&owner)),
            active => "live",
            calls,
            notice => done_notice(&done.done),
            max_note => MAX_NOTE_CHARS,
        },
    )
}

/// What a command reached.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommandSent {
    /// `this_instance`, `other_instance` (through Redis) or `twilio` (the call was moved by
    /// Twilio's REST API because no instance answered).
    pub reached: Reached,
}

/// A line for the agent to say.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Note {
    #[schema(example = "Tell them we can fit them in at three today.")]
    #[serde(default)]
    pub text: String,
}

async fn send(app: &WebState, owner: &Owner, call_sid: &str, command: CallCommand) -> Result<Reached, Error> {
    app.call_control.send(owner.client_id, call_sid, command).await.map_err(|e| match e {
        ControlError::NotLive => Error::NotFound(e.to_string()),
        ControlError::Ending => Error::Conflict { message: e.to_string(), field: None, link: None },
        ControlError::Unreachable => Error::Unavailable(e.to_string()),
        ControlError::Failed(e) => Error::Unexpected(e),
    })
}

fn note_command(text: &str) -> Result<CallCommand, Error> {
    CallCommand::note(text).ok_or_else(|| {
        Error::Invalid(vec![FieldError {
            field: "text",
            message: format!("a note is one line of text of at most {MAX_NOTE_CHARS} characters"),
        }])
    })
}

/// Hands the call to the owner: the agent says a short line and the call rings the
/// owner's phone.
#[utoipa::path(post, path = "/api/live/{call_sid}/takeover", tag = "live",
    summary = "Take a live call: the agent hands it over and the owner's phone rings",
    params(("call_sid" = String, Path, description = "Twilio's CallSid of the live call")),
    responses(
        (status = 202, body = CommandSent),
        (status = 404, description = "no such call in progress", body = ErrorBody),
        (status = 409, description = "the call is ending", body = ErrorBody),
        (status = 503, description = "the call could not be reached", body = ErrorBody),
        (status = 401, body = ErrorBody),
    ),
    security(("session" = [])))]
pub async fn api_take_over(
    State(app): State<WebState>,
    owner: Owner,
    Path(call_sid): Path<String>,
) -> Result<Response, Error> {
    let reached = send(&app, &owner, &call_sid, CallCommand::TakeOver).await?;
    tracing::info!(tenant_id = %owner.client_id, call_sid, ?reached, "the owner took a call");
    Ok((StatusCode::ACCEPTED, Json(CommandSent { reached })).into_response())
}

/// Has the agent say the owner's line at its next turn.
#[utoipa::path(post, path = "/api/live/{call_sid}/note", tag = "live",
    summary = "Send a note: the agent says it at its next turn",
    params(("call_sid" = String, Path, description = "Twilio's CallSid of the live call")),
    request_body = Note,
    responses(
        (status = 202, body = CommandSent),
        (status = 400, description = "empty or longer than 300 characters", body = ErrorBody),
        (status = 404, description = "no such call in progress", body = ErrorBody),
        (status = 409, description = "the call is ending", body = ErrorBody),
        (status = 503, description = "the call could not be reached", body = ErrorBody),
        (status = 401, body = ErrorBody),
    ),
    security(("session" = [])))]
pub async fn api_note(
    State(app): State<WebState>,
    owner: Owner,
    Path(call_sid): Path<String>,
    crate::web::json_body::JsonBody(note): crate::web::json_body::JsonBody<Note>,
) -> Result<Response, Error> {
    let command = match note_command(&note.text) {
        Ok(command) => command,
        // Another tenant's call, or none, is not found whatever the note says.
        Err(e) if app.call_control.is_live(owner.client_id, &call_sid).await? => return Err(e),
        Err(_) => return Err(Error::NotFound(ControlError::NotLive.to_string())),
    };
    let reached = send(&app, &owner, &call_sid, command).await?;
    Ok((StatusCode::ACCEPTED, Json(CommandSent { reached })).into_response())
}

/// Where a control's form lands: back on the page, saying what happened. A call that is
/// not the owner's at all is not found, as everywhere; one of theirs that has ended says so.
async fn back(app: &WebState, owner: &Owner, call_sid: &str, result: Result<Reached, Error>, done: &str) -> Response {
    let to = match result {
        Ok(_) => done,
        Err(Error::NotFound(message)) => {
            let theirs = crate::storage::postgres::calls::find_by_sid(&app.pool, call_sid)
                .await
                .map(|call| call.is_some_and(|c| c.client_id == owner.client_id));
            match theirs {
                Ok(true) => "ended",
                Ok(false) => return Error::NotFound(message).into_response(),
                Err(e) => return Error::from(e).into_response(),
            }
        }
        Err(Error::Conflict { .. }) => "ended",
        Err(Error::Unavailable(_)) => "unreachable",
        Err(Error::Invalid(_)) => "note-invalid",
        Err(e) => return e.into_response(),
    };
    Redirect::to(&format!("/app/live?done={to}")).into_response()
}

/// The page's "Take this call" button.
pub async fn take_over_form(State(app): State<WebState>, owner: Owner, Path(call_sid): Path<String>) -> Response {
    let result = send(&app, &owner, &call_sid, CallCommand::TakeOver).await;
    back(&app, &owner, &call_sid, result, "takeover").await
}

/// The page's "Send a note" form.
pub async fn note_form(
    State(app): State<WebState>,
    owner: Owner,
    Path(call_sid): Path<String>,
    Form(note): Form<Note>,
) -> Response {
    let result = match note_command(&note.text) {
        Ok(command) => send(&app, &owner, &call_sid, command).await,
        Err(e) => match app.call_control.is_live(owner.client_id, &call_sid).await {
            Ok(true) => Err(e),
            Ok(false) => Err(Error::NotFound(ControlError::NotLive.to_string())),
            Err(e) => Err(Error::Unexpected(e)),
        },
    };
    back(&app, &owner, &call_sid, result, "note").await
}

/// The tenant's calls in progress, with what has been said so far.
#[utoipa::path(get, path = "/api/live", tag = "live", responses((status = 200, body = LiveCalls), (status = 401)))]
pub async fn api_live(State(app): State<WebState>, owner: Owner) -> Result<Json<LiveCalls>, Error> {
    Ok(Json(snapshot(&app, owner.client_id).await?))
}

/// A published feed event as an SSE event named for its type (`turn`, `ended`); anything
/// unreadable is dropped.
fn feed_event(raw: &str) -> Option<Event> {
    let kind = LiveEvent::from_json(raw).ok()?.kind();
    Some(Event::default().event(kind).data(raw))
}

/// The live feed as Server-Sent Events: first a `snapshot` event (every call in progress
/// with its lines so far), then a `turn` event per line spoken (a line may come again,
/// longer, with the same `seq`) and an `ended` event per call that ends; a comment every
/// 15 s keeps the stream open. Only the signed-in tenant's calls.
#[utoipa::path(get, path = "/api/live/events", tag = "live",
    responses((status = 200, content_type = "text/event-stream", description = "snapshot, turn and ended events"), (status = 401)))]
pub async fn events(State(app): State<WebState>, owner: Owner) -> Result<Response, Error> {
    // Subscribe before reading the snapshot, so no line falls between the two (a line in
    // both is sent twice with its seq; the page keeps one).
    let feed = app.store.subscribe(owner.client_id).await?;
    let snapshot = snapshot(&app, owner.client_id).await?;
    let first = Event::default()
        .event("snapshot")
        .data(serde_json::to_string(&snapshot).map_err(|e| Error::Unexpected(e.into()))?);
    let mut shutdown = app.registry.shutdown_signal();
    let stopping = async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    };
    let stream = futures::stream::once(async move { first })
        .chain(feed.filter_map(|raw| async move { feed_event(&raw) }))
        .take_until(stopping)
        .map(Ok::<_, Infallible>);
    tracing::debug!(tenant_id = %owner.client_id, "live feed opened");
    let mut response =
        Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Reverse proxies must pass each event on at once.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The live view's part of the API document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(api_live, events, api_take_over, api_note),
    components(schemas(LiveCalls, LiveCall, LiveLine, LiveSlots, CommandSent, Note, Reached))
)]
pub struct LiveApi;

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::call::conversation::LlmConversation;
    use crate::dialogue::policy::{Outcome, Policy};
    use crate::storage::postgres::calls::Turn;

    #[test]
    fn the_api_document_lists_the_live_routes() {
        use utoipa::OpenApi;
        let doc = LiveApi::openapi();
        assert!(doc.paths.paths.contains_key("/api/live") && doc.paths.paths.contains_key("/api/live/events"));
    }

    #[test]
    fn only_turn_and_ended_events_are_passed_on() {
        let ended = LiveEvent::Ended { call_sid: "CA1".into(), outcome: Outcome::Booked }.to_json();
        assert!(feed_event(&ended).is_some());
        assert!(feed_event(r#"{"type":"secret"}"#).is_none());
        assert!(feed_event("not json").is_none());
    }

    #[test]
    fn a_checkpoint_gives_the_lines_and_slots_so_far() {
        let mut policy = Policy::new(Language::Spanish, Some("+15550001111"));
        policy.name = Some("Ann".into());
        let turns = vec![
            Turn { seq: 1, speaker: Speaker::Caller, text: String::new(), ..Turn::default() },
            Turn { seq: 0, speaker: Speaker::Agent, text: "Hola".into(), ..Turn::default() },
        ];
        let raw = Checkpoint {
            policy: Cow::Borrowed(&policy),
            conversation: Cow::Owned(LlmConversation::default()),
            turns: Cow::Borrowed(&turns),
        }
        .to_json();
        let (slots, lines) = so_far(Checkpoint::from_json(&raw).unwrap());
        assert_eq!(lines.len(), 1, "a line with no words yet is left out");
        assert_eq!(lines[0].text, "Hola");
        assert_eq!(slots.name.as_deref(), Some("Ann"));
        assert_eq!(slots.phone.as_deref(), Some("+15550001111"));
        assert_eq!(slots.language, Some(Language::Spanish));
    }
}
