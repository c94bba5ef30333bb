//! GoHighLevel's web edge: the owner's connect, calendar choice and disconnect (from the
//! Integrations page) and GoHighLevel's redirect back after the location was chosen;
//! sending is the GoHighLevel worker's.

use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::services::gohighlevel::GhlConnectError;
use crate::web::auth::Owner;
use crate::web::integrations::{self, Shown};
use crate::web::{Error, WebState};

fn refusal(e: GhlConnectError) -> Result<Error, Error> {
    match e {
        GhlConnectError::Unexpected(e) => Err(Error::Unexpected(e)),
        GhlConnectError::Vendor(v) if v.is_retryable() => {
            Ok(Error::Unavailable(format!("GoHighLevel could not be reached; try again in a minute ({v})")))
        }
        GhlConnectError::NotConnected => Ok(Error::NotFound(e.to_string())),
        other => Ok(Error::BadRequest(other.to_string())),
    }
}

/// `GET /app/integrations/gohighlevel/connect`: off to GoHighLevel's location chooser.
pub async fn connect(State(app): State<WebState>, owner: Owner) -> Result<Response, Error> {
    owner.in_person()?;
    match app.gohighlevel.start_connect(owner.client_id, &owner.csrf_token).await {
        Ok(url) => Ok(Redirect::to(&url).into_response()),
        Err(e) => integrations::refused(&app, &owner, refusal(e)?).await,
    }
}

/// What GoHighLevel sends back to the callback.
#[derive(Debug, Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

/// `GET /integrations/gohighlevel/callback`: the owner is back from choosing a location.
pub async fn callback(
    State(app): State<WebState>,
    owner: Owner,
    Query(back): Query<Callback>,
) -> Result<Response, Error> {
    let result = match (back.error, back.code, back.state) {
        (Some(error), _, _) => Err(GhlConnectError::Denied(error)),
        (None, Some(code), Some(state)) => {
            app.gohighlevel.finish_connect(owner.client_id, &owner.csrf_token, &state, &code).await
        }
        _ => Err(GhlConnectError::BadState),
    };
    match result {
        Ok(()) => Ok(Redirect::to("/app/integrations#gohighlevel").into_response()),
        Err(e) => {
            tracing::warn!(tenant_id = %owner.client_id, error = %e, "GoHighLevel not connected");
            integrations::refused(&app, &owner, refusal(e)?).await
        }
    }
}

/// The calendar form.
#[derive(Debug, Deserialize)]
pub struct CalendarChoice {
    pub calendar_id: String,
}

/// `POST /app/integrations/gohighlevel/calendar`
pub async fn choose_calendar(
    State(app): State<WebState>,
    owner: Owner,
    Form(choice): Form<CalendarChoice>,
) -> Result<Response, Error> {
    owner.in_person()?;
    match app.gohighlevel.choose_calendar(owner.client_id, &choice.calendar_id).await {
        Ok(()) => {
            let shown = Shown { notice: Some("Saved. Bookings go to that calendar from now on."), ..Shown::default() };
            integrations::page(&app, &owner, shown).await
        }
        Err(e) => integrations::refused(&app, &owner, refusal(e)?).await,
    }
}

/// `POST /app/integrations/gohighlevel/disconnect`
pub async fn disconnect(State(app): State<WebState>, owner: Owner) -> Result<Response, Error> {
    owner.in_person()?;
    app.gohighlevel.disconnect(owner.client_id).await?;
    let notice = "GoHighLevel disconnected. Nothing more is sent to it; what it holds stays there.";
    integrations::page(&app, &owner, Shown { notice: Some(notice), ..Shown::default() }).await
}
