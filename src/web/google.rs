//! Google Calendar's web edge: the owner's connect and disconnect (from the Integrations
//! page), Google's redirect back after consent, and Google's push notifications, which are
//! checked and answered at once; syncing is the calendar worker's.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::services::calendar_sync::ConnectError;
use crate::web::auth::Owner;
use crate::web::integrations::{self, Shown};
use crate::web::{Error, WebState};

fn refusal(e: ConnectError) -> Result<Error, Error> {
    match e {
        ConnectError::Unexpected(e) => Err(Error::Unexpected(e)),
        ConnectError::Google(g) if g.is_retryable() => {
            Ok(Error::Unavailable(format!("Google could not be reached; try again in a minute ({g})")))
        }
        other => Ok(Error::BadRequest(other.to_string())),
    }
}

/// `GET /app/integrations/google/connect`: off to Google's consent page.
pub async fn connect(State(app): State<WebState>, owner: Owner) -> Result<Response, Error> {
    owner.in_person()?;
    match app.calendar.start_connect(owner.client_id, &owner.csrf_token).await {
        Ok(url) => Ok(Redirect::to(&url).into_response()),
        Err(e) => integrations::refused(&app, &owner, refusal(e)?).await,
    }
}

/// What Google sends back to the callback.
#[derive(Debug, Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

/// `GET /integrations/google/callback`: the owner is back from consent.
pub async fn callback(
    State(app): State<WebState>,
    owner: Owner,
    Query(back): Query<Callback>,
) -> Result<Response, Error> {
    let result = match (back.error, back.code, back.state) {
        (Some(error), _, _) => Err(ConnectError::Denied(error)),
        (None, Some(code), Some(state)) => {
            app.calendar.finish_connect(owner.client_id, &owner.csrf_token, &state, &code).await
        }
        _ => Err(ConnectError::BadState),
    };
    match result {
        Ok(()) => Ok(Redirect::to("/app/integrations#google").into_response()),
        Err(e) => {
            tracing::warn!(tenant_id = %owner.client_id, error = %e, "Google Calendar not connected");
            integrations::refused(&app, &owner, refusal(e)?).await
        }
    }
}

/// `POST /app/integrations/google/disconnect`
pub async fn disconnect(State(app): State<WebState>, owner: Owner) -> Result<Response, Error> {
    owner.in_person()?;
    app.calendar.disconnect(owner.client_id).await?;
    let shown = Shown { notice: Some("Google Calendar disconnected. Nothing more is sent to it."), ..Shown::default() };
    integrations::page(&app, &owner, shown).await
}

/// `POST /integrations/google/notify`: Google says the calendar changed. Answered at once;
/// the worker runs the incremental sync.
pub async fn notify(State(app): State<WebState>, headers: HeaderMap) -> Result<StatusCode, Error> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(channel) = header("x-goog-channel-id") else {
        return Ok(StatusCode::BAD_REQUEST);
    };
    if app.calendar.notify(channel, header("x-goog-channel-token")).await? {
        Ok(StatusCode::OK)
    } else {
        tracing::warn!(channel, "Google push for an unknown channel or with the wrong token");
        Ok(StatusCode::FORBIDDEN)
    }
}
