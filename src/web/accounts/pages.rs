//! The HTML account forms: `/signup`, `/login`, `/logout`, `/password/forgot`,
//! `/password/reset`. Errors come back on the form itself, next to the field concerned.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::{COMMON_TIMEZONES, limit};
use crate::domain::accounts::{Email, SignupForm};
use crate::domain::ids::UserId;
use crate::services::accounts::{self, LoginError, ResetError, SignupError};
use crate::web::Error;
use crate::web::WebState;
use crate::web::auth::{ClientIp, Owner, SESSION_COOKIE, cleared_cookie, cookie, safe_next, session_cookie};
use crate::web::shell::render;

fn with_status(status: StatusCode, page: Result<Response, Error>) -> Response {
    match page {
        Ok(mut response) => {
            *response.status_mut() = status;
            response
        }
        Err(e) => e.into_response(),
    }
}

/// A page telling the person what happened (a 429, an expired link).
fn notice(app: &WebState, status: StatusCode, title: &str, message: &str, offer_new_reset_link: bool) -> Response {
    let is_error = status.is_client_error();
    with_status(
        status,
        render(&app.templates, "notice.html", context! { title, message, offer_new_reset_link, is_error }),
    )
}

fn limited(app: &WebState, error: Error) -> Response {
    match error {
        Error::TooManyRequests { message, retry_after_secs } => {
            let mut response = notice(app, StatusCode::TOO_MANY_REQUESTS, "Please wait a moment", &message, false);
            response.headers_mut().insert(header::RETRY_AFTER, retry_after_secs.into());
            response
        }
        other => other.into_response(),
    }
}

/// Signs the user in: a new session, its cookie, and a redirect to `next`.
async fn signed_in(app: &WebState, user_id: UserId, next: &str) -> Result<Response, Error> {
    let session = accounts::open_session(&app.pool, user_id).await?;
    let mut response = Redirect::to(next).into_response();
    response.headers_mut().append(header::SET_COOKIE, session_cookie(&app.config, &session.token));
    Ok(response)
}

fn signup_page(app: &WebState, form: &SignupForm, errors: HashMap<&'static str, String>) -> Result<Response, Error> {
    render(
        &app.templates,
        "signup.html",
        context! {
            form => context! {
                email => form.email.as_str(), business_name => form.business_name.as_str(), business_phone => form.business_phone.as_str(),
                business_type => form.business_type.as_str(), owner_name => form.owner_name.as_str(), owner_phone => form.owner_phone.as_str(),
                timezone => form.timezone.as_str(),
            },
            errors,
            timezones => minijinja::Value::from(minijinja::value::Serde(COMMON_TIMEZONES)),
        },
    )
}

/// `GET /signup`
pub async fn signup_form(State(app): State<WebState>, owner: Option<Owner>) -> Result<Response, Error> {
    if owner.is_some() {
        return Ok(Redirect::to("/app").into_response());
    }
    signup_page(&app, &SignupForm::default(), HashMap::new())
}

/// `POST /signup`
pub async fn signup(State(app): State<WebState>, ClientIp(ip): ClientIp, Form(form): Form<SignupForm>) -> Response {
    if let Err(e) = limit(&app, "signup", ip) {
        return limited(&app, e);
    }
    match accounts::signup(&app.pool, &app.passwords, &form, app.numbers.source()).await {
        Ok(done) => {
            app.numbers.kick();
            signed_in(&app, done.user_id, "/app").await.unwrap_or_else(IntoResponse::into_response)
        }
        Err(SignupError::Invalid(fields)) => {
            let errors = fields.into_iter().map(|f| (f.field, f.message)).collect();
            with_status(StatusCode::UNPROCESSABLE_ENTITY, signup_page(&app, &form, errors))
        }
        Err(SignupError::Unexpected(e)) => Error::Unexpected(e).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    reset: Option<String>,
}

fn login_page(
    app: &WebState,
    email: &str,
    next: &str,
    error: Option<&str>,
    notice: Option<&str>,
) -> Result<Response, Error> {
    render(&app.templates, "login.html", context! { email, next, error, notice })
}

/// `GET /login?next=/somewhere`
pub async fn login_form(
    State(app): State<WebState>,
    owner: Option<Owner>,
    Query(query): Query<LoginQuery>,
) -> Result<Response, Error> {
    let next = safe_next(query.next.as_deref());
    if owner.is_some() {
        return Ok(Redirect::to(next).into_response());
    }
    let notice = query.reset.is_some().then_some("Your password was changed. Sign in with the new one.");
    login_page(&app, "", next, None, notice)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    pub email: String,
    pub password: String,
    pub next: Option<String>,
}

/// `POST /login`
pub async fn login(State(app): State<WebState>, ClientIp(ip): ClientIp, Form(form): Form<LoginForm>) -> Response {
    if let Err(e) = limit(&app, "login", ip) {
        return limited(&app, e);
    }
    let next = safe_next(form.next.as_deref());
    if form.email.trim().is_empty() || form.password.is_empty() {
        let page = login_page(&app, &form.email, next, Some("enter your email and your password"), None);
        return with_status(StatusCode::BAD_REQUEST, page);
    }
    match accounts::login(&app.pool, &app.passwords, &app.config.accounts, &form.email, &form.password).await {
        Ok(user_id) => signed_in(&app, user_id, next).await.unwrap_or_else(IntoResponse::into_response),
        Err(e @ LoginError::WrongCredentials) => {
            with_status(StatusCode::UNAUTHORIZED, login_page(&app, &form.email, next, Some(&e.to_string()), None))
        }
        Err(e @ LoginError::TooManyFailures { retry_after_secs }) => {
            limited(&app, Error::TooManyRequests { message: e.to_string(), retry_after_secs })
        }
        Err(LoginError::Unexpected(e)) => Error::Unexpected(e).into_response(),
    }
}

/// `POST /logout`: ends this session (the CSRF check has already passed) and forgets
/// the cookie.
pub async fn logout(State(app): State<WebState>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = accounts::close_session(&app.pool, token).await
    {
        return Error::Unexpected(e).into_response();
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(header::SET_COOKIE, cleared_cookie(&app.config));
    response
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ForgotForm {
    pub email: String,
}

/// `GET /password/forgot`
pub async fn forgot_form(State(app): State<WebState>) -> Result<Response, Error> {
    render(&app.templates, "forgot.html", context! { email => "", sent => false })
}

/// `POST /password/forgot`: the same answer whether or not the address has an account.
pub async fn forgot(State(app): State<WebState>, ClientIp(ip): ClientIp, Form(form): Form<ForgotForm>) -> Response {
    if let Err(e) = limit(&app, "forgot", ip) {
        return limited(&app, e);
    }
    let email = match Email::parse(&form.email) {
        Ok(email) => email,
        Err(e) => {
            let page = render(
                &app.templates,
                "forgot.html",
                context! { email => form.email.as_str(), error => e.to_string() },
            );
            return with_status(StatusCode::UNPROCESSABLE_ENTITY, page);
        }
    };
    if let Err(e) = accounts::request_password_reset(&app.pool, &app.config.public_url, &email).await {
        return Error::Unexpected(e).into_response();
    }
    render(&app.templates, "forgot.html", context! { email => email.as_str(), sent => true })
        .unwrap_or_else(IntoResponse::into_response)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResetQuery {
    pub token: String,
}

fn reset_refused(app: &WebState, error: &ResetError) -> Response {
    notice(app, StatusCode::GONE, "This link cannot be used", &error.to_string(), true)
}

/// `GET /password/reset?token=...`: the new-password form, or why the link is dead.
pub async fn reset_form(State(app): State<WebState>, Query(query): Query<ResetQuery>) -> Response {
    match accounts::check_reset_token(&app.pool, &query.token).await {
        Ok(_) => render(&app.templates, "reset.html", context! { token => query.token })
            .unwrap_or_else(IntoResponse::into_response),
        Err(ResetError::Unexpected(e)) => Error::Unexpected(e).into_response(),
        Err(e) => reset_refused(&app, &e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResetForm {
    pub token: String,
    pub password: String,
}

/// `POST /password/reset`
pub async fn reset(State(app): State<WebState>, Form(form): Form<ResetForm>) -> Response {
    match accounts::reset_password(&app.pool, &app.passwords, &form.token, &form.password).await {
        Ok(_) => {
            let mut response = Redirect::to("/login?reset=1").into_response();
            response.headers_mut().append(header::SET_COOKIE, cleared_cookie(&app.config));
            response
        }
        Err(ResetError::WeakPassword(e)) => with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&app.templates, "reset.html", context! { token => form.token, error => e.to_string() }),
        ),
        Err(ResetError::Unexpected(e)) => Error::Unexpected(e).into_response(),
        Err(e) => reset_refused(&app, &e),
    }
}
