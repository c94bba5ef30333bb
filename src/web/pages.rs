//! `/health`, `/metrics`, one call's record as JSON and its live events (used by the
//! simulated caller; signed with the Twilio token like a webhook).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;

use crate::call::events::LiveEvent;

use crate::storage::postgres::{self, appointments, calls, messages};
use crate::telephony::request::TwilioRequest;
use crate::web::Error;
use crate::web::WebState;

/// `GET /health`: 200 when the database (and Redis, when configured) answer; 503 otherwise.
pub async fn health(State(app): State<WebState>) -> Response {
    let database = postgres::ping(&app.pool).await;
    let store = app.store.ping().await;
    let status = if database && store { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if status == StatusCode::OK { "ok" } else { "unavailable" },
        "database": if database { "ok" } else { "unreachable" },
        "call_state": { "store": app.store.kind(), "status": if store { "ok" } else { "unreachable" } },
        "live_calls": app.registry.active(),
    });
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(app): State<WebState>) -> Response {
    let handle = crate::telemetry::metrics();
    metrics::gauge!("ringlypro_active_calls").set(app.registry.active() as f64);
    let body = handle.render();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// `GET /calls/{call_sid}`: the call as recorded — transcript, appointments, messages.
/// Open in local mode; otherwise the request must be signed with the Twilio Auth Token.
pub async fn call_json(
    State(app): State<WebState>,
    Path(call_sid): Path<String>,
    _signed: TwilioRequest,
) -> Result<Json<serde_json::Value>, Error> {
    let call = calls::find_by_sid(&app.pool, &call_sid)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no call with CallSid {call_sid}")))?;
    let turns = calls::turns(&app.pool, call.id).await?;
    let appts = appointments::for_call(&app.pool, call.id).await?;
    let msgs = messages::for_call(&app.pool, call.id).await?;
    let live = app.registry.is_live(&call_sid);
    Ok(Json(json!({ "call": call, "live": live, "turns": turns, "appointments": appts, "messages": msgs })))
}

/// The call's own events from a live feed event: `Some((name, ended))` when `raw` is a
/// `turn` or `ended` event of `call_sid`.
fn call_event(raw: &str, call_sid: &str) -> Option<(&'static str, bool)> {
    let event = LiveEvent::from_json(raw).ok()?;
    let (sid, ended) = match &event {
        LiveEvent::Turn { call_sid, .. } => (call_sid, false),
        LiveEvent::Ended { call_sid, .. } => (call_sid, true),
    };
    (sid == call_sid).then_some((event.kind(), ended))
}

/// `GET /calls/{call_sid}/events`: one call's `turn` and `ended` events from its tenant's
/// live feed, as Server-Sent Events, until it ends; what a simulated caller listens to.
/// Protected like `GET /calls/{call_sid}`. A call that has already ended gets its
/// `ended` event alone.
pub async fn call_events(
    State(app): State<WebState>,
    Path(call_sid): Path<String>,
    _signed: TwilioRequest,
) -> Result<Response, Error> {
    let call = calls::find_by_sid(&app.pool, &call_sid)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no call with CallSid {call_sid}")))?;
    // Subscribe before looking at whether it ended, so an end in between is not missed.
    let feed = app.store.subscribe(call.client_id).await?;
    let ended_already = calls::find_by_sid(&app.pool, &call_sid).await?.is_some_and(|c| c.ended_at.is_some());
    let mut shutdown = app.registry.shutdown_signal();
    let stopping = async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    };
    let stream = if ended_already {
        let done = LiveEvent::Ended { call_sid: call_sid.clone().into(), outcome: call.outcome }.to_json();
        futures::stream::once(async move { Event::default().event("ended").data(done) }).boxed()
    } else {
        // Ends right after the call's `ended` event.
        let sid = call_sid.clone();
        futures::stream::unfold((feed, false), move |(mut feed, over)| {
            let sid = sid.clone();
            async move {
                if over {
                    return None;
                }
                loop {
                    let raw = feed.next().await?;
                    if let Some((kind, ended)) = call_event(&raw, &sid) {
                        return Some((Event::default().event(kind).data(raw), (feed, ended)));
                    }
                }
            }
        })
        .boxed()
    };
    let stream = stream.take_until(stopping).map(Ok::<_, Infallible>);
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("keep-alive"))
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialogue::policy::Outcome;

    #[test]
    fn only_the_calls_own_events_pass_and_its_end_is_marked() {
        let ended = LiveEvent::Ended { call_sid: "CA1".into(), outcome: Outcome::Booked }.to_json();
        assert_eq!(call_event(&ended, "CA1"), Some(("ended", true)));
        assert_eq!(call_event(&ended, "CA2"), None);
        assert_eq!(call_event("not json", "CA1"), None);
    }
}
