//! Read-only while locked: a signed-in request that would change something for a tenant
//! whose credit is locked gets 402 and reaches no handler, except what gets the account
//! going again (reloading, settings, signing out) and administrators' pages. Also tells
//! the layout whether to show the lock banner. Decides nothing about credit itself.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::services::accounts::token_hash;
use crate::storage::postgres::credit_reports;
use crate::web::auth::{SESSION_COOKIE, cookie};
use crate::web::{Error, WebState};

/// Where the owner reloads.
pub const RELOAD_URL: &str = "/app/credits";

const MESSAGE: &str = "Rachel is paused: the free minutes are used up and there is no balance left, so your \
     account is read-only and calls ring your phone. Reload credit to change things again.";

/// The 402 body under `/api`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LockedBody {
    pub error: String,
    /// Where to reload credit.
    #[schema(example = "/app/credits")]
    pub reload_url: String,
}

fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// What a locked account may still change: credit and the settings payment needs, its
/// session, administrators' work, and the webhooks of Twilio and Stripe (which carry no
/// session anyway).
pub fn always_allowed(path: &str) -> bool {
    path == "/logout"
        || under(path, "/api/auth")
        || under(path, "/app/credits")
        || under(path, "/api/credits")
        || under(path, "/app/settings")
        || path == "/api/settings"
        || under(path, "/admin")
        || under(path, "/api/admin")
        || under(path, "/twilio")
        || under(path, "/stripe")
        || under(path, "/webhooks")
}

/// Paths that render no page and change nothing: no need to ask about the lock.
fn is_asset(path: &str) -> bool {
    under(path, "/static") || matches!(path, "/sw.js" | "/manifest.webmanifest" | "/health" | "/metrics" | "/offline")
}

fn refusal(path: &str) -> Response {
    if path == "/api" || path.starts_with("/api/") {
        let body = LockedBody { error: MESSAGE.to_owned(), reload_url: RELOAD_URL.to_owned() };
        return (StatusCode::PAYMENT_REQUIRED, Json(body)).into_response();
    }
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/static/app.css\"><title>Reload credit to continue</title></head>\
         <body><main class=\"narrow\"><h1>Reload credit to continue</h1><p id=\"locked-message\">{MESSAGE}</p>\
         <p><a class=\"primary button\" href=\"{RELOAD_URL}\">Reload credit</a></p>\
         <p><a href=\"/app\">Back to RinglyPro</a></p></main></body></html>"
    );
    (StatusCode::PAYMENT_REQUIRED, Html(page)).into_response()
}

/// Middleware inside the CSRF check: looks up once whether the session's tenant is
/// locked; refuses a state-changing request (402) unless [`always_allowed`], and lets
/// every other request through with the answer at hand for the banner.
pub async fn read_only_when_locked(State(app): State<WebState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if is_asset(&path) {
        return next.run(request).await;
    }
    let Some(token) = cookie(request.headers(), SESSION_COOKIE) else {
        return next.run(request).await;
    };
    let locked = match credit_reports::session_locked(&app.pool, &token_hash(token)).await {
        Ok(found) => found.unwrap_or(false),
        Err(e) => return Error::from(e).into_response(),
    };
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE);
    if locked && changes && !always_allowed(&path) {
        tracing::info!(path = %path, "change refused: the account is locked");
        return refusal(&path);
    }
    crate::web::shell::with_credit_locked(locked, next.run(request)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloading_settings_signing_out_and_admins_stay_open_while_locked() {
        for path in [
            "/logout",
            "/api/auth/logout",
            "/app/credits",
            "/app/credits/reload",
            "/api/credits/reload",
            "/app/settings",
            "/app/settings/rachel",
            "/api/settings",
            "/admin/tenants/3/notes",
            "/api/admin/reloads/1/confirm",
            "/twilio/status",
            "/webhooks/stripe",
        ] {
            assert!(always_allowed(path), "{path}");
        }
        for path in
            ["/api/contacts", "/app/contacts", "/app/rachel", "/app/creditsX", "/administrator", "/api/messages"]
        {
            assert!(!always_allowed(path), "{path}");
        }
    }
}
