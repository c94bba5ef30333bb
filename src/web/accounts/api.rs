//! `/api/auth/...`: the account forms as JSON. Errors are `{"error": "...", "field":
//! "email"}` (the field when one is at fault); the session cookie is the same as the
//! HTML forms', and state-changing calls made with it carry `X-CSRF-Token`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::limit;
use crate::domain::accounts::{Email, FieldError, SignupForm};
use crate::domain::ids::UserId;
use crate::services::accounts::{self, LoginError, ResetError, SignupError, token_hash};
use crate::storage::postgres::{sessions, tenants};
use crate::web::Error;
use crate::web::WebState;
use crate::web::auth::{ClientIp, Owner, SESSION_COOKIE, cleared_cookie, cookie, session_cookie};
use crate::web::json_body::JsonBody;

/// A fresh session for `user_id`, answered with who signed in and the CSRF token.
async fn signed_in(
    app: &WebState,
    status: StatusCode,
    user_id: UserId,
    extra: serde_json::Value,
) -> Result<Response, Error> {
    let session = accounts::open_session(&app.pool, user_id).await?;
    let who = sessions::find(&app.pool, &token_hash(&session.token))
        .await?
        .ok_or_else(|| anyhow::anyhow!("a session just opened cannot be found"))?;
    let mut answer = json!({
        "user_id": who.user_id,
        "client_id": who.client_id,
        "email": who.email,
        "is_admin": who.is_admin,
        "csrf_token": session.csrf_token,
        "expires_at": session.expires_at,
    });
    if let (Some(fields), Some(answer)) = (extra.as_object(), answer.as_object_mut()) {
        answer.extend(fields.clone());
    }
    let mut response = (status, Json(answer)).into_response();
    response.headers_mut().append(header::SET_COOKIE, session_cookie(&app.config, &session.token));
    Ok(response)
}

/// `POST /api/auth/signup` with the signup fields: 201 and a session.
#[utoipa::path(
    post,
    path = "/api/auth/signup",
    tag = "auth",
    summary = "Create an owner's account and business, and sign in",
    request_body = SignupForm,
    responses(
        (status = 201, description = "signed in: user, business, CSRF token and RinglyPro number (or `number_pending`); sets the session cookie", body = serde_json::Value),
        (status = 400, description = "a field is wrong: `field` names it", body = crate::web::error::ErrorBody),
        (status = 429, description = "too many attempts from this network", body = crate::web::error::ErrorBody),
    )
)]
pub async fn signup(
    State(app): State<WebState>,
    ClientIp(ip): ClientIp,
    JsonBody(form): JsonBody<SignupForm>,
) -> Result<Response, Error> {
    limit(&app, "signup", ip)?;
    let done = accounts::signup(&app.pool, &app.passwords, &form, app.numbers.source()).await.map_err(|e| match e {
        SignupError::Invalid(fields) => Error::Invalid(fields),
        SignupError::Unexpected(e) => Error::Unexpected(e),
    })?;
    app.numbers.kick();
    let extra = json!({
        "ringlypro_number": done.ringlypro_number,
        "number_pending": done.ringlypro_number.is_none(),
    });
    signed_in(&app, StatusCode::CREATED, done.user_id, extra).await
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

/// `POST /api/auth/login` with `{"email", "password"}`.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    summary = "Sign in with email and password",
    request_body = Credentials,
    responses(
        (status = 200, description = "signed in: user, business and CSRF token; sets the session cookie", body = serde_json::Value),
        (status = 400, description = "email or password missing", body = crate::web::error::ErrorBody),
        (status = 401, description = "wrong email or password", body = crate::web::error::ErrorBody),
        (status = 429, description = "too many attempts", body = crate::web::error::ErrorBody),
    )
)]
pub async fn login(
    State(app): State<WebState>,
    ClientIp(ip): ClientIp,
    JsonBody(form): JsonBody<Credentials>,
) -> Result<Response, Error> {
    limit(&app, "login", ip)?;
    if form.email.trim().is_empty() {
        return Err(Error::Invalid(vec![FieldError::new("email", "enter your email")]));
    }
    if form.password.is_empty() {
        return Err(Error::Invalid(vec![FieldError::new("password", "enter your password")]));
    }
    let user_id = accounts::login(&app.pool, &app.passwords, &app.config.accounts, &form.email, &form.password)
        .await
        .map_err(|e| match e {
        e @ LoginError::WrongCredentials => Error::Unauthorized(e.to_string()),
        e @ LoginError::TooManyFailures { retry_after_secs } => {
            Error::TooManyRequests { message: e.to_string(), retry_after_secs }
        }
        LoginError::Unexpected(e) => Error::Unexpected(e),
    })?;
    signed_in(&app, StatusCode::OK, user_id, json!({})).await
}

/// `POST /api/auth/logout` (with `X-CSRF-Token`): ends this session.
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    summary = "Sign out: ends this session",
    responses(
        (status = 200, description = "signed out", body = serde_json::Value),
        (status = 403, description = "missing CSRF token", body = crate::web::error::ErrorBody),
    ),
    security(("session" = [], "csrf" = []))
)]
pub async fn logout(State(app): State<WebState>, headers: HeaderMap) -> Result<Response, Error> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        accounts::close_session(&app.pool, token).await?;
    }
    let mut response = Json(json!({ "signed_out": true })).into_response();
    response.headers_mut().append(header::SET_COOKIE, cleared_cookie(&app.config));
    Ok(response)
}

/// `GET /api/auth/me`: the signed-in owner, their business and the CSRF token.
#[utoipa::path(
    get,
    path = "/api/auth/me",
    tag = "auth",
    summary = "The signed-in owner, their business and the CSRF token",
    responses(
        (status = 200, description = "who is signed in", body = serde_json::Value),
        (status = 401, description = "not signed in", body = crate::web::error::ErrorBody),
    ),
    security(("session" = []))
)]
pub async fn me(State(app): State<WebState>, owner: Owner) -> Result<Json<serde_json::Value>, Error> {
    let tenant = tenants::find(&app.pool, owner.client_id).await?;
    Ok(Json(json!({
        "user_id": owner.user_id,
        "client_id": owner.client_id,
        "email": owner.email,
        "is_admin": owner.is_admin,
        "csrf_token": owner.csrf_token,
        "business_name": tenant.as_ref().map(|t| t.business_name.as_str()),
        "ringlypro_number": tenant.as_ref().and_then(|t| t.ringlypro_number.as_deref()),
        "rachel_enabled": tenant.as_ref().map(|t| t.rachel_enabled),
    })))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ForgotRequest {
    pub email: String,
}

/// `POST /api/auth/password/forgot` with `{"email"}`: 202 whether or not it has an account.
#[utoipa::path(
    post,
    path = "/api/auth/password/forgot",
    tag = "auth",
    summary = "Email a link to choose a new password",
    request_body = ForgotRequest,
    responses(
        (status = 202, description = "sent if the account exists", body = serde_json::Value),
        (status = 400, description = "not an email address", body = crate::web::error::ErrorBody),
        (status = 429, description = "too many attempts", body = crate::web::error::ErrorBody),
    )
)]
pub async fn forgot(
    State(app): State<WebState>,
    ClientIp(ip): ClientIp,
    JsonBody(form): JsonBody<ForgotRequest>,
) -> Result<Response, Error> {
    limit(&app, "forgot", ip)?;
    let email = Email::parse(&form.email).map_err(|e| Error::Invalid(vec![FieldError::new("email", e.to_string())]))?;
    accounts::request_password_reset(&app.pool, &app.config.public_url, &email).await?;
    let message = format!(
        "if an account uses {email}, we have sent it a link to choose a new password; the link works once, for one hour"
    );
    Ok((StatusCode::ACCEPTED, Json(json!({ "message": message }))).into_response())
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ResetRequest {
    pub token: String,
    pub password: String,
}

/// `POST /api/auth/password/reset` with `{"token", "password"}`.
#[utoipa::path(
    post,
    path = "/api/auth/password/reset",
    tag = "auth",
    summary = "Choose a new password with the emailed token",
    request_body = ResetRequest,
    responses(
        (status = 200, description = "password changed", body = serde_json::Value),
        (status = 400, description = "token used, expired or unknown, or a weak password", body = crate::web::error::ErrorBody),
    )
)]
pub async fn reset(
    State(app): State<WebState>,
    JsonBody(form): JsonBody<ResetRequest>,
) -> Result<Json<serde_json::Value>, Error> {
    accounts::reset_password(&app.pool, &app.passwords, &form.token, &form.password).await.map_err(|e| match e {
        ResetError::WeakPassword(e) => Error::Invalid(vec![FieldError::new("password", e.to_string())]),
        ResetError::Unexpected(e) => Error::Unexpected(e),
        other => Error::Invalid(vec![FieldError::new("token", other.to_string())]),
    })?;
    Ok(Json(json!({ "message": "your password was changed; sign in with the new one" })))
}
