//! `/health`, `/metrics`, and one call's record as JSON (used by the simulated caller;
//! signed with the Twilio token like a webhook).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

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
