//! API keys for the JSON API: the owner makes one (shown once), lists them and revokes
//! them, on the Integrations page or through `/api/api-keys`. Only a signed-in owner
//! manages keys: a request made with a key cannot make or revoke one. How a key is
//! checked on each request is `web::auth`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::accounts::FieldError;
use crate::services::accounts::{random_token, token_hash};
use crate::storage::postgres::api_keys::{self, ApiKey};
use crate::storage::postgres::begin_tenant;
use crate::web::auth::Owner;
use crate::web::error::ErrorBody;
use crate::web::json_body::JsonBody;
use crate::web::{Error, WebState};

/// What every key starts with, so a leaked one is easy to recognise.
pub const KEY_PREFIX: &str = "rpk_";
/// Characters of the key shown in the list.
const SHOWN_CHARS: usize = KEY_PREFIX.len() + 6;
const MAX_NAME: usize = 80;
/// Live keys one tenant may hold.
const MAX_LIVE_KEYS: usize = 20;

/// A key to make.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct NewApiKey {
    /// What the key is for, to recognise it later.
    #[schema(example = "Zapier")]
    pub name: String,
}

/// A key just made: the only time the key itself is shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// Send it as `Authorization: Bearer <key>`. It is not stored and cannot be shown again.
    pub key: String,
    pub api_key: ApiKey,
}

pub(crate) async fn list(app: &WebState, owner: &Owner) -> Result<Vec<ApiKey>, Error> {
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let keys = api_keys::list(&mut tx, owner.client_id).await?;
    tx.commit().await?;
    Ok(keys)
}

pub(crate) async fn create(app: &WebState, owner: &Owner, new: &NewApiKey) -> Result<CreatedApiKey, Error> {
    owner.in_person()?;
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(Error::Invalid(vec![FieldError {
            field: "name",
            message: format!("give the key a name of 1 to {MAX_NAME} characters, such as what will use it"),
        }]));
    }
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let live = api_keys::list(&mut tx, owner.client_id).await?.iter().filter(|k| k.revoked_at.is_none()).count();
    if live >= MAX_LIVE_KEYS {
        return Err(Error::Conflict {
            message: format!("you already have {MAX_LIVE_KEYS} keys in use; revoke one you no longer need first"),
            field: Some("name"),
            link: Some("/app/integrations#api-keys".into()),
        });
    }
    let key = format!("{KEY_PREFIX}{}", random_token());
    let shown: String = key.chars().take(SHOWN_CHARS).collect();
    let api_key = api_keys::insert(&mut tx, owner.client_id, owner.user_id, name, &shown, &token_hash(&key)).await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %owner.client_id, key_id = api_key.id, "API key made");
    Ok(CreatedApiKey { key, api_key })
}

pub(crate) async fn revoke(app: &WebState, owner: &Owner, id: i64) -> Result<ApiKey, Error> {
    owner.in_person()?;
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let revoked = api_keys::revoke(&mut tx, owner.client_id, id).await?;
    tx.commit().await?;
    let revoked = revoked.ok_or_else(|| Error::NotFound("you have no API key with that id".into()))?;
    tracing::info!(tenant_id = %owner.client_id, key_id = id, "API key revoked");
    Ok(revoked)
}

/// `GET /api/api-keys`
#[utoipa::path(
    get,
    path = "/api/api-keys",
    tag = "integrations",
    summary = "The business's API keys (never the keys themselves), newest first",
    responses((status = 200, body = [ApiKey]), (status = 401, body = ErrorBody)),
    security(("session" = []), ("api_key" = []))
)]
pub async fn api_list(State(app): State<WebState>, owner: Owner) -> Result<Json<Vec<ApiKey>>, Error> {
    Ok(Json(list(&app, &owner).await?))
}

/// `POST /api/api-keys`
#[utoipa::path(
    post,
    path = "/api/api-keys",
    tag = "integrations",
    summary = "Make an API key: the answer is the only time the key is shown",
    request_body = NewApiKey,
    responses(
        (status = 201, body = CreatedApiKey),
        (status = 400, description = "no name, or too long", body = ErrorBody),
        (status = 403, description = "made with an API key: only a signed-in owner makes keys", body = ErrorBody),
        (status = 409, description = "too many keys in use", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []))
)]
pub async fn api_create(
    State(app): State<WebState>,
    owner: Owner,
    JsonBody(new): JsonBody<NewApiKey>,
) -> Result<Response, Error> {
    Ok((StatusCode::CREATED, Json(create(&app, &owner, &new).await?)).into_response())
}

/// `DELETE /api/api-keys/{id}`
#[utoipa::path(
    delete,
    path = "/api/api-keys/{id}",
    tag = "integrations",
    summary = "Revoke an API key: requests with it are refused at once",
    params(("id" = i64, Path, description = "the key's id, as listed")),
    responses(
        (status = 200, body = ApiKey),
        (status = 403, description = "made with an API key", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []))
)]
pub async fn api_revoke(State(app): State<WebState>, owner: Owner, Path(id): Path<i64>) -> Result<Json<ApiKey>, Error> {
    Ok(Json(revoke(&app, &owner, id).await?))
}

/// The API keys' part of the API document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(api_list, api_create, api_revoke), components(schemas(ApiKey, NewApiKey, CreatedApiKey)))]
pub struct ApiKeysApi;
