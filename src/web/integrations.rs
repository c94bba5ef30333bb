//! The Integrations page and the outbound webhooks: the business's endpoints (added with
//! the events they want and a signing secret, removed), the log of deliveries and a resend,
//! on the page and through `/api/webhooks`. API keys are `web::api_keys`; delivering is
//! `services::webhooks`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use minijinja::context;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::accounts::FieldError;
use crate::domain::events::EventKind;
use crate::services::webhooks::{self, EndpointError, MAX_ENDPOINTS};
use crate::storage::postgres::begin_tenant;
use crate::storage::postgres::webhooks::{self as store, Delivery, Endpoint};
use crate::web::api_keys::{self, CreatedApiKey, NewApiKey};
use crate::web::auth::Owner;
use crate::web::error::ErrorBody;
use crate::web::json_body::JsonBody;
use crate::web::{Error, WebState, render};

/// Deliveries listed on the page and by the API.
const LOGGED: i64 = 50;

/// An endpoint to add.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct NewEndpoint {
    #[schema(example = "https://hooks.example.com/ringlypro")]
    pub url: String,
    /// Event names: `call.completed`, `appointment.booked`, `appointment.rescheduled`,
    /// `appointment.cancelled`, `message.received`, `contact.created`.
    #[schema(example = json!(["appointment.booked", "call.completed"]))]
    pub events: Vec<String>,
    #[serde(default)]
    pub description: String,
}

fn invalid(e: EndpointError) -> Error {
    let field = match e {
        EndpointError::Url(_) => "url",
        EndpointError::Events(_) => "events",
    };
    Error::Invalid(vec![FieldError { field, message: e.to_string() }])
}

async fn add(app: &WebState, owner: &Owner, new: &NewEndpoint) -> Result<Endpoint, Error> {
    let url = webhooks::check_url(&new.url, app.config.webhook_allow_http).map_err(invalid)?;
    let events = webhooks::check_events(&new.events).map_err(invalid)?;
    let description: String = new.description.trim().chars().take(200).collect();
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    if store::endpoints(&mut tx, owner.client_id).await?.len() >= MAX_ENDPOINTS {
        return Err(Error::Conflict {
            message: format!("a business can have {MAX_ENDPOINTS} endpoints; remove one first"),
            field: Some("url"),
            link: Some("/app/integrations#webhooks".into()),
        });
    }
    let endpoint =
        store::add_endpoint(&mut tx, owner.client_id, url.as_str(), &webhooks::new_secret(), &events, &description)
            .await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %owner.client_id, endpoint = endpoint.id, "webhook endpoint added");
    Ok(endpoint)
}

async fn remove(app: &WebState, owner: &Owner, id: i64) -> Result<(), Error> {
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let removed = store::remove_endpoint(&mut tx, owner.client_id, id).await?;
    tx.commit().await?;
    if !removed {
        return Err(Error::NotFound("you have no webhook endpoint with that id".into()));
    }
    tracing::info!(tenant_id = %owner.client_id, endpoint = id, "webhook endpoint removed");
    Ok(())
}

async fn resend(app: &WebState, owner: &Owner, id: i64) -> Result<Delivery, Error> {
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let again = store::resend(&mut tx, owner.client_id, id).await?;
    tx.commit().await?;
    again.ok_or_else(|| Error::NotFound("no delivery with that id to an endpoint you still have".into()))
}

async fn endpoints(app: &WebState, owner: &Owner) -> Result<Vec<Endpoint>, Error> {
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let endpoints = store::endpoints(&mut tx, owner.client_id).await?;
    tx.commit().await?;
    Ok(endpoints)
}

async fn deliveries(app: &WebState, owner: &Owner) -> Result<Vec<Delivery>, Error> {
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let deliveries = store::deliveries(&mut tx, owner.client_id, LOGGED).await?;
    tx.commit().await?;
    Ok(deliveries)
}

/// `GET /api/webhooks`
#[utoipa::path(get, path = "/api/webhooks", tag = "integrations",
    summary = "The business's webhook endpoints, with their signing secrets",
    responses((status = 200, body = [Endpoint]), (status = 401, body = ErrorBody)),
    security(("session" = [])))]
pub async fn api_list(State(app): State<WebState>, owner: Owner) -> Result<Json<Vec<Endpoint>>, Error> {
    Ok(Json(endpoints(&app, &owner).await?))
}

/// `POST /api/webhooks`
#[utoipa::path(post, path = "/api/webhooks", tag = "integrations",
    summary = "Add an endpoint: each chosen event is POSTed to it, signed with its secret",
    request_body = NewEndpoint,
    responses((status = 201, body = Endpoint), (status = 400, description = "not an https address, or an unknown event", body = ErrorBody),
        (status = 409, description = "too many endpoints", body = ErrorBody)),
    security(("session" = [], "csrf" = [])))]
pub async fn api_add(
    State(app): State<WebState>,
    owner: Owner,
    JsonBody(new): JsonBody<NewEndpoint>,
) -> Result<Response, Error> {
    Ok((StatusCode::CREATED, Json(add(&app, &owner, &new).await?)).into_response())
}

/// `DELETE /api/webhooks/{id}`
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "integrations",
    summary = "Remove an endpoint; what was still to be delivered to it is given up",
    params(("id" = i64, Path, description = "the endpoint's id")),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("session" = [], "csrf" = [])))]
pub async fn api_remove(State(app): State<WebState>, owner: Owner, Path(id): Path<i64>) -> Result<StatusCode, Error> {
    remove(&app, &owner, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/webhooks/deliveries`
#[utoipa::path(get, path = "/api/webhooks/deliveries", tag = "integrations",
    summary = "The latest 50 deliveries, newest first, with each one's status and last answer",
    responses((status = 200, body = [Delivery]), (status = 401, body = ErrorBody)),
    security(("session" = [])))]
pub async fn api_deliveries(State(app): State<WebState>, owner: Owner) -> Result<Json<Vec<Delivery>>, Error> {
    Ok(Json(deliveries(&app, &owner).await?))
}

/// `POST /api/webhooks/deliveries/{id}/resend`
#[utoipa::path(post, path = "/api/webhooks/deliveries/{id}/resend", tag = "integrations",
    summary = "Send a delivery again now, with the same event id and body (retried for another day)",
    params(("id" = i64, Path, description = "the delivery's id")),
    responses((status = 200, body = Delivery), (status = 404, body = ErrorBody)),
    security(("session" = [], "csrf" = [])))]
pub async fn api_resend(
    State(app): State<WebState>,
    owner: Owner,
    Path(id): Path<i64>,
) -> Result<Json<Delivery>, Error> {
    Ok(Json(resend(&app, &owner, id).await?))
}

/// What the page says at its top.
#[derive(Debug, Default)]
pub struct Shown<'a> {
    pub created_key: Option<&'a CreatedApiKey>,
    pub notice: Option<&'a str>,
    pub error: Option<String>,
}

/// The Integrations page: API keys, webhook endpoints and the delivery log.
pub async fn page(app: &WebState, owner: &Owner, shown: Shown<'_>) -> Result<Response, Error> {
    let keys = api_keys::list(app, owner).await?;
    let endpoints = endpoints(app, owner).await?;
    let deliveries = deliveries(app, owner).await?;
    let events: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
    render(
        &app.templates,
        "integrations.html",
        context! {
            owner => minijinja::Value::from(minijinja::value::Serde(owner)),
            active => "settings",
            keys => minijinja::Value::from(minijinja::value::Serde(&keys)),
            endpoints => minijinja::Value::from(minijinja::value::Serde(&endpoints)),
            deliveries => minijinja::Value::from(minijinja::value::Serde(&deliveries)),
            events,
            created => shown.created_key.map(|c| c.key.clone()),
            notice => shown.notice,
            error => shown.error,
            public_url => app.config.public_url.clone(),
            google => minijinja::Value::from(minijinja::value::Serde(app.calendar.status(owner.client_id, chrono::Utc::now()).await?)),
            gohighlevel => minijinja::Value::from(minijinja::value::Serde(app.gohighlevel.status(owner.client_id).await?)),
        },
    )
}

/// What the page was sent back after.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub done: Option<String>,
}

/// `GET /app/integrations`
pub async fn show(
    State(app): State<WebState>,
    owner: Owner,
    Query(query): Query<PageQuery>,
) -> Result<Response, Error> {
    let notice = match query.done.as_deref() {
        Some("revoked") => Some("Revoked. Requests with that key are refused from now on."),
        Some("endpoint-added") => {
            Some("Added. The events you chose are sent to it from now on, signed with its secret.")
        }
        Some("endpoint-removed") => Some("Removed. Nothing more is sent to that address."),
        Some("resent") => Some("Sending it again now: watch its status below."),
        _ => None,
    };
    page(&app, &owner, Shown { notice, ..Shown::default() }).await
}

/// A refused form: the page again with the reason, answered with the error's status.
pub async fn refused(app: &WebState, owner: &Owner, e: Error) -> Result<Response, Error> {
    let status = e.status();
    let mut response = page(app, owner, Shown { error: Some(e.to_string()), ..Shown::default() }).await?;
    *response.status_mut() = status;
    Ok(response)
}

/// `POST /app/integrations/webhooks` (the URL, one `events` field per ticked box).
pub async fn add_form(
    State(app): State<WebState>,
    owner: Owner,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, Error> {
    let mut new = NewEndpoint { url: String::new(), events: Vec::new(), description: String::new() };
    for (name, value) in fields {
        match name.as_str() {
            "url" => new.url = value,
            "events" => new.events.push(value),
            "description" => new.description = value,
            _ => {}
        }
    }
    match add(&app, &owner, &new).await {
        Ok(_) => Ok(Redirect::to("/app/integrations?done=endpoint-added#webhooks").into_response()),
        Err(e @ (Error::Invalid(_) | Error::Conflict { .. })) => refused(&app, &owner, e).await,
        Err(e) => Err(e),
    }
}

/// `POST /app/integrations/webhooks/{id}/remove`
pub async fn remove_form(State(app): State<WebState>, owner: Owner, Path(id): Path<i64>) -> Result<Response, Error> {
    remove(&app, &owner, id).await?;
    Ok(Redirect::to("/app/integrations?done=endpoint-removed#webhooks").into_response())
}

/// `POST /app/integrations/deliveries/{id}/resend`
pub async fn resend_form(State(app): State<WebState>, owner: Owner, Path(id): Path<i64>) -> Result<Response, Error> {
    resend(&app, &owner, id).await?;
    Ok(Redirect::to("/app/integrations?done=resent#deliveries").into_response())
}

/// The form that makes a key.
#[derive(Debug, Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    pub name: String,
}

/// `POST /app/integrations/api-keys`: the page again, with the new key shown once (never
/// in a URL, so it stays out of history and logs).
pub async fn create_key_form(
    State(app): State<WebState>,
    owner: Owner,
    Form(form): Form<KeyForm>,
) -> Result<Response, Error> {
    match api_keys::create(&app, &owner, &NewApiKey { name: form.name }).await {
        Ok(created) => {
            let shown = Shown { created_key: Some(&created), ..Shown::default() };
            let mut response = page(&app, &owner, shown).await?;
            response
                .headers_mut()
                .insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
            Ok(response)
        }
        Err(e @ (Error::Invalid(_) | Error::Conflict { .. })) => refused(&app, &owner, e).await,
        Err(e) => Err(e),
    }
}

/// `POST /app/integrations/api-keys/{id}/revoke`
pub async fn revoke_key_form(
    State(app): State<WebState>,
    owner: Owner,
    Path(id): Path<i64>,
) -> Result<Response, Error> {
    api_keys::revoke(&app, &owner, id).await?;
    Ok(Redirect::to("/app/integrations?done=revoked#api-keys").into_response())
}

/// The webhooks' part of the API document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(api_list, api_add, api_remove, api_deliveries, api_resend),
    components(schemas(Endpoint, NewEndpoint, Delivery))
)]
pub struct WebhooksApi;
