//! `/health`, the minimal calls page (calls with transcripts and appointments), and one
//! call's record as JSON (used by the simulated caller).

use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, context};
use serde_json::json;

use crate::startup::AppState;
use crate::storage::postgres::{self, appointments, calls, messages, tenants};
use crate::telephony::webhooks;
use crate::web::Error;

const CALLS_TEMPLATE: &str = include_str!("templates/calls.html");

/// `GET /health`: 200 when the database (and Redis, when configured) answer; 503 otherwise.
pub async fn health(State(app): State<AppState>) -> Response {
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
pub async fn metrics(State(app): State<AppState>) -> Response {
    let handle = crate::telemetry::metrics();
    metrics::gauge!("ringlypro_active_calls").set(app.registry.active() as f64);
    let body = handle.render();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// `GET /`: recent calls with their transcripts and bookings.
pub async fn calls_page(State(app): State<AppState>) -> Result<Html<String>, Error> {
    let recent = calls::recent(&app.pool, 50).await?;
    let all_tenants = tenants::list(&app.pool).await?;
    let mut items = Vec::with_capacity(recent.len());
    for call in recent {
        let tenant = all_tenants.iter().find(|t| t.id == call.client_id);
        let tz: chrono_tz::Tz = tenant.and_then(|t| t.timezone.parse().ok()).unwrap_or(chrono_tz::UTC);
        let turns = calls::turns(&app.pool, call.id).await?;
        let appts: Vec<_> = appointments::for_call(&app.pool, call.id)
            .await?
            .into_iter()
            .map(|a| {
                json!({
                    "when": a.starts_at.with_timezone(&tz).format("%a %b %-d, %Y at %-I:%M %p %Z").to_string(),
                    "name": a.customer_name,
                    "code": a.confirmation_code,
                    "status": a.status,
                })
            })
            .collect();
        items.push(json!({
            "tenant": tenant.map(|t| t.business_name.as_str()).unwrap_or("?"),
            "started": call.started_at.with_timezone(&tz).format("%a %b %-d %-I:%M:%S %p %Z").to_string(),
            "call": call,
            "turns": turns,
            "appointments": appts,
        }));
    }
    let mut env = Environment::new();
    env.add_template("calls.html", CALLS_TEMPLATE).map_err(anyhow::Error::from)?;
    let html = env
        .get_template("calls.html")
        .and_then(|t| t.render(context! { calls => minijinja::Value::from(minijinja::value::Serde(&items)) }))
        .map_err(anyhow::Error::from)?;
    Ok(Html(html))
}

/// `GET /calls/{call_sid}`: the call as recorded — transcript, appointments, messages.
/// Open in local mode; otherwise the request must be signed with the Twilio Auth Token.
pub async fn call_json(
    State(app): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Path(call_sid): Path<String>,
) -> Result<Json<serde_json::Value>, Error> {
    webhooks::verify(&app, &headers, &uri, &[], false)?;
    let call = calls::find_by_sid(&app.pool, &call_sid)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no call with CallSid {call_sid}")))?;
    let turns = calls::turns(&app.pool, call.id).await?;
    let appts = appointments::for_call(&app.pool, call.id).await?;
    let msgs = messages::for_call(&app.pool, call.id).await?;
    let live = app.registry.is_live(&call_sid);
    Ok(Json(json!({ "call": call, "live": live, "turns": turns, "appointments": appts, "messages": msgs })))
}
