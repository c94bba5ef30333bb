//! The one HTTP error type: 4xx carry a message a person can act on (and, for a form
//! field, which field); 5xx carry nothing internal and are logged once, here.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::accounts::FieldError;

/// Every `/api` error as it is sent: a message a person can act on, and the field at fault
/// if any.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    /// The first form field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldErrorBody>>,
    /// Where the thing in the way of a conflicting change is shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldErrorBody {
    pub field: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    /// Form fields to fix: the body names the first in `field`, all of them in `fields`.
    #[error("{}", .0.first().map(|e| e.message.as_str()).unwrap_or("some fields need fixing"))]
    Invalid(Vec<FieldError>),
    /// Not signed in, or the credentials were wrong.
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in but not allowed, or a request that failed its CSRF/origin check.
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with what exists (a taken time, a phone number another contact
    /// has); `link` points at the thing in the way.
    #[error("{message}")]
    Conflict { message: String, field: Option<&'static str>, link: Option<String> },
    #[error("request body is too large")]
    PayloadTooLarge,
    /// Rate limited; `retry_after_secs` goes in `Retry-After`.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_secs: u64 },
    /// Something the request needs cannot be reached just now; trying again may work.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Unexpected(e.into())
    }
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) | Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Denied(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the person is told (never internals).
    pub fn public_message(&self) -> String {
        match self {
            Error::Unexpected(_) => "something went wrong on our side; please try again".to_owned(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Error::Unexpected(e) = &self {
            tracing::error!(error = format!("{e:#}"), "request failed");
        }
        let mut body = ErrorBody { error: self.public_message(), field: None, fields: None, link: None };
        if let Error::Invalid(fields) = &self
            && let Some(first) = fields.first()
        {
            body.field = Some(first.field.to_owned());
            body.fields = Some(
                fields
                    .iter()
                    .map(|f| FieldErrorBody { field: f.field.to_owned(), message: f.message.clone() })
                    .collect(),
            );
        }
        if let Error::Conflict { field, link, .. } = &self {
            body.field = field.map(str::to_owned);
            body.link.clone_from(link);
        }
        let mut response = (status, Json(body)).into_response();
        if let Error::TooManyRequests { retry_after_secs, .. } = &self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        response
    }
}
