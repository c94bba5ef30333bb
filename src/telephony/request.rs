//! A request from Twilio (its form parameters, let through only when `X-Twilio-Signature`
//! matches), the error that answers Twilio as Twilio expects, and the TwiML response.
//! Knows no route and no dashboard error type: handlers never see an unsigned request.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, FromRequest, OriginalUri, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use crate::config::Config;
use crate::telephony::signature;

/// The header Twilio signs requests with.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// Largest webhook body accepted (Twilio's are a few hundred bytes).
pub const MAX_BODY: usize = 64 * 1024;

/// A request signed by Twilio (in local mode, any request): a form webhook's parameters,
/// or none for a WebSocket upgrade or a signed `GET`.
///
/// The signature covers the public URL of the request, rebuilt from configuration (never
/// from the Host header): `wss://` for a WebSocket upgrade, `https://` otherwise.
#[derive(Debug)]
pub struct TwilioRequest {
    params: Vec<(String, String)>,
}

impl TwilioRequest {
    /// A form field, when present and not empty.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    /// A field Twilio always sends; its absence is the sender's mistake.
    pub fn required(&self, name: &str) -> Result<&str, TwilioError> {
        self.field(name).ok_or_else(|| TwilioError::BadRequest(format!("{name} is required")))
    }

    /// The call the webhook is about.
    pub fn call_sid(&self) -> Result<&str, TwilioError> {
        self.required("CallSid")
    }
}

impl<S> FromRequest<S> for TwilioRequest
where
    S: Send + Sync,
    Arc<Config>: FromRef<S>,
{
    type Rejection = TwilioError;

    async fn from_request(req: Request, state: &S) -> Result<Self, TwilioError> {
        let config = Arc::<Config>::from_ref(state);
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| TwilioError::TooLarge)?;
        let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
            .map_err(|_| TwilioError::BadRequest("body must be application/x-www-form-urlencoded".into()))?;
        verify(&config, &parts, &params)?;
        Ok(Self { params })
    }
}

/// Checks the signature of a request with form `params`. In local mode (no Auth Token)
/// there is nothing to check.
fn verify(config: &Config, parts: &Parts, params: &[(String, String)]) -> Result<(), TwilioError> {
    let Some(token) = &config.twilio_auth_token else {
        return Ok(());
    };
    let websocket = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let base = if websocket { config.public_ws_url() } else { config.public_url.clone() };
    let uri = parts.extensions.get::<OriginalUri>().map(|o| &o.0).unwrap_or(&parts.uri);
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("{base}{path}");
    let given = parts.headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if signature::is_valid(token.expose_secret(), &url, params, given) {
        Ok(())
    } else {
        tracing::warn!(url, "rejected a request with a missing or invalid Twilio signature");
        Err(TwilioError::BadSignature)
    }
}

/// Why a Twilio request got no TwiML. Twilio shows the status and body in its debugger;
/// a person reading them there needs the reason, never our internals.
#[derive(Debug, thiserror::Error)]
pub enum TwilioError {
    /// Not from Twilio (or not for this URL): 403 in plain text, nothing else said.
    #[error("request signature is missing or invalid")]
    BadSignature,
    #[error("{0}")]
    BadRequest(String),
    #[error("request body is too large")]
    TooLarge,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for TwilioError {
    fn from(e: sqlx::Error) -> Self {
        TwilioError::Unexpected(e.into())
    }
}

impl IntoResponse for TwilioError {
    fn into_response(self) -> Response {
        let status = match &self {
            TwilioError::BadSignature => return (StatusCode::FORBIDDEN, self.to_string()).into_response(),
            TwilioError::BadRequest(_) => StatusCode::BAD_REQUEST,
            TwilioError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            TwilioError::Unexpected(e) => {
                tracing::error!(error = format!("{e:#}"), "Twilio request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let message = match &self {
            TwilioError::Unexpected(_) => "something went wrong on our side; please try again".to_owned(),
            other => other.to_string(),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// A TwiML response.
pub fn xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/xml")], body).into_response()
}
