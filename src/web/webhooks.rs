//! Webhooks from payment vendors (today Stripe's). They carry no session: their own
//! signature is their authentication, checked on the raw bytes before anything is read.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::services::payments::WebhookError;
use crate::web::WebState;

/// The vendor webhooks' routes.
pub fn routes() -> Router<WebState> {
    Router::new().route("/webhooks/stripe", post(stripe))
}

/// `POST /webhooks/stripe`: 200 once the event is applied (or was before); 400 for a bad
/// signature or body, which Stripe must not see as delivered; 500 when it should come again.
pub async fn stripe(State(app): State<WebState>, headers: HeaderMap, body: Bytes) -> Response {
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    match app.payments.handle_stripe_event(&body, signature).await {
        Ok(outcome) => {
            (StatusCode::OK, axum::Json(serde_json::json!({ "received": true, "outcome": outcome }))).into_response()
        }
        Err(e @ (WebhookError::Signature(_) | WebhookError::Malformed(_))) => {
            tracing::warn!(error = %e, "Stripe webhook refused");
            (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({ "error": e.to_string() }))).into_response()
        }
        Err(e @ WebhookError::NotConfigured) => {
            tracing::error!(error = %e, "Stripe webhook received but cannot be verified");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({ "error": e.to_string() }))).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "Stripe webhook not applied; Stripe will deliver it again");
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(serde_json::json!({ "error": "not applied; retry later" })))
                .into_response()
        }
    }
}
