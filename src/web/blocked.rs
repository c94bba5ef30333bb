//! The block list: numbers whose callers hear a short refusal, are never charged and are
//! never texted. The owner keeps it in Settings, on a call's or contact's page, or through
//! `/api/blocked-numbers`; numbers are stored in E.164 so that "(555) 999-0000" and
//! "+15559990000" are one entry.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::accounts::FieldError;
use crate::domain::phone::PhoneNumber;
use crate::storage::postgres::begin_tenant;
use crate::storage::postgres::credits::{self, BlockedNumber};
use crate::web::auth::Owner;
use crate::web::error::ErrorBody;
use crate::web::{Error, WebState};

/// A number to block.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct NewBlockedNumber {
    /// Any common way of writing a phone number.
    #[schema(example = "+1 (555) 999-0000")]
    pub phone: String,
    /// Why, for the owner's own memory.
    #[serde(default)]
    pub note: String,
}

const MAX_NOTE: usize = 200;

fn parse(new: &NewBlockedNumber) -> Result<(String, String), Error> {
    let phone = PhoneNumber::parse(&new.phone)
        .map_err(|e| Error::Invalid(vec![FieldError { field: "phone", message: format!("{e}") }]))?;
    let note: String = new.note.trim().chars().take(MAX_NOTE).collect();
    Ok((phone.as_str().to_owned(), note))
}

async fn list(app: &WebState, owner: &Owner) -> Result<Vec<BlockedNumber>, Error> {
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let numbers = credits::blocked_numbers(&mut tx, owner.client_id).await?;
    tx.commit().await?;
    Ok(numbers)
}

async fn add(app: &WebState, owner: &Owner, new: &NewBlockedNumber) -> Result<BlockedNumber, Error> {
    let (phone, note) = parse(new)?;
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    credits::block(&mut tx, owner.client_id, &phone, &note).await?;
    let added = credits::blocked_numbers(&mut tx, owner.client_id)
        .await?
        .into_iter()
        .find(|b| b.phone == phone)
        .ok_or_else(|| anyhow::anyhow!("the blocked number just written is missing"))?;
    tx.commit().await?;
    tracing::info!(tenant_id = %owner.client_id, "number blocked");
    Ok(added)
}

async fn remove(app: &WebState, owner: &Owner, phone: &str) -> Result<bool, Error> {
    let phone = PhoneNumber::parse(phone).map(|p| p.as_str().to_owned()).unwrap_or_else(|_| phone.to_owned());
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let removed = credits::unblock(&mut tx, owner.client_id, &phone).await?;
    tx.commit().await?;
    Ok(removed)
}

/// `GET /api/blocked-numbers`
#[utoipa::path(
    get,
    path = "/api/blocked-numbers",
    tag = "settings",
    summary = "The numbers whose calls are refused and never charged",
    responses((status = 200, body = [BlockedNumber]), (status = 401, body = ErrorBody)),
    security(("session" = []))
)]
pub async fn api_list(State(app): State<WebState>, owner: Owner) -> Result<Json<Vec<BlockedNumber>>, Error> {
    Ok(Json(list(&app, &owner).await?))
}

/// `POST /api/blocked-numbers`
#[utoipa::path(
    post,
    path = "/api/blocked-numbers",
    tag = "settings",
    summary = "Block a caller: they hear a short refusal, cost nothing and are never texted",
    request_body = NewBlockedNumber,
    responses(
        (status = 201, body = BlockedNumber),
        (status = 400, description = "not a phone number", body = ErrorBody),
        (status = 401, body = ErrorBody),
    ),
    security(("session" = []))
)]
pub async fn api_add(
    State(app): State<WebState>,
    owner: Owner,
    crate::web::json_body::JsonBody(new): crate::web::json_body::JsonBody<NewBlockedNumber>,
) -> Result<Response, Error> {
    Ok((StatusCode::CREATED, Json(add(&app, &owner, &new).await?)).into_response())
}

/// `DELETE /api/blocked-numbers/{phone}`
#[utoipa::path(
    delete,
    path = "/api/blocked-numbers/{phone}",
    tag = "settings",
    summary = "Unblock a caller",
    params(("phone" = String, Path, description = "the number, as listed")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("session" = []))
)]
pub async fn api_remove(
    State(app): State<WebState>,
    owner: Owner,
    Path(phone): Path<String>,
) -> Result<StatusCode, Error> {
    if remove(&app, &owner, &phone).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound("that number is not on the block list".into()))
    }
}

/// The settings page's block-list forms.
#[derive(Debug, Deserialize)]
pub struct BlockForm {
    pub phone: String,
    #[serde(default)]
    pub note: String,
    /// The call or contact page the form was sent from, to go back to.
    #[serde(default)]
    pub back: String,
}

/// Where a block form goes back to: the call or contact page it came from, or Settings.
/// Only those pages: never an address from elsewhere.
fn back_to(form: &BlockForm, settings: &str) -> String {
    let back = form.back.as_str();
    let page = back.strip_prefix("/app/calls/").or_else(|| back.strip_prefix("/app/contacts/")).is_some_and(|rest| {
        !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if page { back.to_owned() } else { settings.to_owned() }
}

/// Whether `phone` is on the owner's block list (for the call and contact pages).
pub async fn is_on_list(app: &WebState, owner: &Owner, phone: &str) -> Result<bool, Error> {
    let Ok(phone) = PhoneNumber::parse(phone) else { return Ok(false) };
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let blocked = credits::is_blocked(&mut tx, owner.client_id, phone.as_str()).await?;
    tx.commit().await?;
    Ok(blocked)
}

/// `POST /app/settings/blocked`
pub async fn add_form(State(app): State<WebState>, owner: Owner, Form(form): Form<BlockForm>) -> Response {
    let new = NewBlockedNumber { phone: form.phone.clone(), note: form.note.clone() };
    match add(&app, &owner, &new).await {
        Ok(_) => Redirect::to(&back_to(&form, "/app/settings?saved=blocked#blocked")).into_response(),
        Err(Error::Invalid(_)) => Redirect::to("/app/settings?saved=blocked-invalid#blocked").into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /app/settings/blocked/remove`
pub async fn remove_form(State(app): State<WebState>, owner: Owner, Form(form): Form<BlockForm>) -> Response {
    match remove(&app, &owner, &form.phone).await {
        Ok(_) => Redirect::to(&back_to(&form, "/app/settings?saved=unblocked#blocked")).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The block list's API, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(api_list, api_add, api_remove), components(schemas(NewBlockedNumber, BlockedNumber)))]
pub struct BlockedApi;

/// The block list for the settings page.
pub async fn for_page(app: &WebState, owner: &Owner) -> Result<Vec<BlockedNumber>, Error> {
    list(app, owner).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_form_goes_back_only_to_a_call_or_contact_page() {
        let form = |back: &str| BlockForm { phone: String::new(), note: String::new(), back: back.into() };
        assert_eq!(back_to(&form("/app/calls/CA123"), "/s"), "/app/calls/CA123");
        assert_eq!(back_to(&form("/app/contacts/42"), "/s"), "/app/contacts/42");
        for elsewhere in [
            "",
            "https://evil.example/",
            "//evil.example",
            "/app/calls/",
            "/app/calls/x/../../y",
            "/app/contacts/1?x=y",
        ] {
            assert_eq!(back_to(&form(elsewhere), "/s"), "/s", "{elsewhere}");
        }
    }
}
