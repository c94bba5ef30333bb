//! Signing up, in and out, and resetting a password: the HTML forms ([`pages`]) and
//! their JSON twins under `/api/auth` ([`api`]). Both call `services::accounts`; this
//! module adds cookies, attempt limits and the answers' shape.

pub mod api;
pub mod pages;

use std::net::IpAddr;

use crate::services::accounts::wait_words;
use crate::web::Error;
use crate::web::WebState;

/// Time zones offered first on the signup form (any IANA name is accepted).
pub const COMMON_TIMEZONES: &[&str] = &[
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Puerto_Rico",
    "America/Toronto",
    "America/Vancouver",
    "America/Mexico_City",
    "America/Bogota",
    "Europe/London",
    "Europe/Madrid",
];

/// Counts an attempt at `action` from `ip`; over the limit, a 429 saying when to retry.
pub(crate) fn limit(app: &WebState, action: &'static str, ip: IpAddr) -> Result<(), Error> {
    app.attempt_limiter.attempt(action, ip).map_err(|wait| {
        let secs = wait.as_secs().max(1);
        tracing::warn!(action, ip = %ip, "attempt limit reached");
        Error::TooManyRequests {
            message: format!("too many attempts from your network; try again in {}", wait_words(secs)),
            retry_after_secs: secs,
        }
    })
}

/// The account API, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(api::signup, api::login, api::logout, api::me, api::forgot, api::reset),
    components(schemas(crate::domain::accounts::SignupForm, api::Credentials, api::ForgotRequest, api::ResetRequest))
)]
pub struct AuthApi;
