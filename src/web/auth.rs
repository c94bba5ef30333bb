//! Who is asking: the session cookie (or, under `/api/`, an API key as a bearer token), the
//! [`Owner`] and [`Admin`] extractors every dashboard page and `/api` route takes, the CSRF and origin checks on state-changing
//! requests, and the client's address for rate limits. Does not decide what an owner may
//! see: tenant scoping is `begin_tenant(pool, owner.client_id)`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, OptionalFromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::config::Config;
use crate::domain::ids::{TenantId, UserId};
use crate::services::accounts::{SESSION_DAYS, token_hash};
use crate::storage::postgres::api_keys;
use crate::storage::postgres::sessions::{self, SessionOwner};
use crate::web::Error;
use crate::web::WebState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "ringlypro_session";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";
/// The header that carries the CSRF token on JSON requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Largest form body the CSRF check reads to find its field.
const MAX_FORM_BODY: usize = 256 * 1024;

/// The signed-in owner of a tenant, from the session cookie.
///
/// On an HTML route an anonymous request is redirected to `/login?next=<where it was
/// going>`; under `/api/` it gets 401 `{"error": ...}`. Scope every query with
/// `client_id` (and `storage::postgres::begin_tenant`). Templates read `owner.csrf_token`
/// for the hidden `csrf_token` field of every form that changes something.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Owner {
    pub user_id: UserId,
    pub client_id: TenantId,
    pub is_admin: bool,
    pub email: String,
    pub csrf_token: String,
    /// The API key the request was made with; `None` for a browser session.
    #[serde(skip)]
    pub api_key: Option<i64>,
}

impl Owner {
    /// Refuses requests made with an API key: what only a signed-in person may do (making
    /// and revoking keys, for one).
    pub fn in_person(&self) -> Result<(), Error> {
        match self.api_key {
            Some(_) => Err(Error::Denied("this needs the owner signed in; an API key cannot do it".into())),
            None => Ok(()),
        }
    }
}

/// An [`Owner`] whose user is an administrator; anyone else gets 403.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Admin(pub Owner);

/// A session already looked up by the CSRF check, reused by the extractors.
#[derive(Debug, Clone)]
struct ResolvedSession(SessionOwner);

/// Why a request did not get its [`Owner`].
#[derive(Debug)]
pub enum AuthRejection {
    /// No live session. `api` picks JSON over a redirect; `next` is where to return.
    SignedOut {
        api: bool,
        next: String,
        clear_cookie: Option<HeaderValue>,
    },
    /// Signed in, not allowed.
    Forbidden {
        api: bool,
        message: &'static str,
    },
    /// A request refused with its own error (a bad API key, too many requests).
    Refused(Error),
    Unexpected(Error),
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            AuthRejection::SignedOut { api, next, clear_cookie } => {
                let mut response = if api {
                    Error::Unauthorized("sign in first: this needs an owner's session".into()).into_response()
                } else {
                    let query = serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
                    Redirect::to(&format!("/login?{query}")).into_response()
                };
                if let Some(cookie) = clear_cookie {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
                response
            }
            AuthRejection::Forbidden { api: true, message } => Error::Denied(message.into()).into_response(),
            AuthRejection::Forbidden { api: false, message } => {
                (StatusCode::FORBIDDEN, axum::response::Html(crate::web::shell::plain_page("Not allowed", message)))
                    .into_response()
            }
            AuthRejection::Refused(e) | AuthRejection::Unexpected(e) => e.into_response(),
        }
    }
}

fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for a new session: `HttpOnly; SameSite=Lax; Path=/`, `Secure` over https.
pub fn session_cookie(config: &Config, token: &str) -> HeaderValue {
    let secure = if config.secure_cookies() { "; Secure" } else { "" };
    let max_age = SESSION_DAYS * 24 * 3600;
    let value = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    // Tokens are URL-safe base64, so the value is always a valid header.
    HeaderValue::from_str(&value).unwrap_or_else(|_| cleared_cookie(config))
}

/// `Set-Cookie` that makes the browser forget the session cookie.
pub fn cleared_cookie(config: &Config) -> HeaderValue {
    if config.secure_cookies() {
        HeaderValue::from_static("ringlypro_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure")
    } else {
        HeaderValue::from_static("ringlypro_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
    }
}

async fn session_of(parts: &mut Parts, app: &WebState) -> Result<Option<SessionOwner>, AuthRejection> {
    if let Some(ResolvedSession(session)) = parts.extensions.get::<ResolvedSession>() {
        return Ok(Some(session.clone()));
    }
    let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let found = sessions::find(&app.pool, &token_hash(token)).await.map_err(|e| AuthRejection::Unexpected(e.into()))?;
    if let Some(session) = &found {
        parts.extensions.insert(ResolvedSession(session.clone()));
    }
    Ok(found)
}

/// The token of an `Authorization: Bearer ...` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The owner an API key acts for, counted against the key's rate limit.
async fn key_holder(app: &WebState, key: &str) -> Result<Owner, AuthRejection> {
    let holder = api_keys::find(&app.pool, &token_hash(key))
        .await
        .map_err(|e| AuthRejection::Unexpected(e.into()))?
        .ok_or_else(|| {
            AuthRejection::Refused(Error::Unauthorized(
                "this API key is not valid or was revoked; make a new one in Settings → Integrations".into(),
            ))
        })?;
    if let Err(wait) = app.api_key_limiter.attempt("api", holder.key_id) {
        tracing::warn!(tenant_id = %holder.client_id, key_id = holder.key_id, "API key over its rate limit");
        return Err(AuthRejection::Refused(Error::TooManyRequests {
            message: format!(
                "this API key made more than {} requests in the last minute; try again in {} s",
                app.config.accounts.api_requests_per_key_per_minute,
                wait.as_secs()
            ),
            retry_after_secs: wait.as_secs(),
        }));
    }
    let stale = holder.last_used_at.is_none_or(|t| chrono::Utc::now() - t > chrono::Duration::minutes(1));
    if stale && let Err(e) = api_keys::touch(&app.pool, holder.key_id).await {
        tracing::warn!(error = %e, "could not note an API key's use");
    }
    Ok(Owner {
        user_id: holder.user_id,
        client_id: holder.client_id,
        is_admin: false,
        email: holder.email,
        csrf_token: String::new(),
        api_key: Some(holder.key_id),
    })
}

fn signed_out(parts: &Parts, app: &WebState) -> AuthRejection {
    let next = if parts.method == Method::GET {
        parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/app".into())
    } else {
        "/app".into()
    };
    let clear_cookie = cookie(&parts.headers, SESSION_COOKIE).map(|_| cleared_cookie(&app.config));
    AuthRejection::SignedOut { api: is_api(parts.uri.path()), next, clear_cookie }
}

impl FromRequestParts<WebState> for Owner {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, app: &WebState) -> Result<Self, Self::Rejection> {
        let Some(session) = session_of(parts, app).await? else {
            if is_api(parts.uri.path())
                && let Some(key) = bearer(&parts.headers)
            {
                return key_holder(app, key).await;
            }
            return Err(signed_out(parts, app));
        };
        let Some(client_id) = session.client_id else {
            return Err(AuthRejection::Forbidden {
                api: is_api(parts.uri.path()),
                message: "this account has no business attached to it yet",
            });
        };
        Ok(Owner {
            user_id: session.user_id,
            client_id,
            is_admin: session.is_admin,
            email: session.email,
            csrf_token: session.csrf_token,
            api_key: None,
        })
    }
}

/// `Option<Owner>`: `None` for anonymous requests instead of a redirect.
impl OptionalFromRequestParts<WebState> for Owner {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, app: &WebState) -> Result<Option<Self>, Self::Rejection> {
        match <Owner as FromRequestParts<WebState>>::from_request_parts(parts, app).await {
            Ok(owner) => Ok(Some(owner)),
            Err(AuthRejection::SignedOut { .. } | AuthRejection::Forbidden { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl FromRequestParts<WebState> for Admin {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, app: &WebState) -> Result<Self, Self::Rejection> {
        let owner = <Owner as FromRequestParts<WebState>>::from_request_parts(parts, app).await?;
        if !owner.is_admin {
            return Err(AuthRejection::Forbidden {
                api: is_api(parts.uri.path()),
                message: "only RinglyPro administrators can open this",
            });
        }
        Ok(Admin(owner))
    }
}

/// The client's address: from the trusted proxy's header when `CLIENT_IP_HEADER` is set,
/// otherwise the TCP peer (the server is served with connect info).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<WebState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &WebState) -> Result<Self, Self::Rejection> {
        let from_header = app
            .config
            .accounts
            .client_ip_header
            .as_deref()
            .and_then(|name| parts.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
        Ok(ClientIp(from_header.or(peer).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))))
    }
}

/// Whether the request's `Origin` (or, without one, its `Referer`) names another site
/// than `PUBLIC_URL`. A request with neither (not a browser form) passes.
fn from_another_site(config: &Config, headers: &HeaderMap) -> bool {
    let ours = config.public_origin();
    if let Some(origin) = headers.get(header::ORIGIN) {
        return !origin.to_str().is_ok_and(|o| o.eq_ignore_ascii_case(ours));
    }
    if let Some(referer) = headers.get(header::REFERER) {
        let Ok(referer) = referer.to_str() else { return true };
        let same = referer.len() >= ours.len()
            && referer[..ours.len()].eq_ignore_ascii_case(ours)
            && matches!(referer.as_bytes().get(ours.len()), None | Some(b'/' | b'?' | b'#'));
        return !same;
    }
    false
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn denied(path: &str, message: &str) -> Response {
    if is_api(path) {
        Error::Denied(message.into()).into_response()
    } else {
        let page = crate::web::shell::plain_page("This form could not be sent", message);
        (StatusCode::FORBIDDEN, axum::response::Html(page)).into_response()
    }
}

/// Middleware on every route: a state-changing request must come from our own origin
/// when it names one, and when it carries a live session cookie it must carry that
/// session's CSRF token (`X-CSRF-Token` header, or the `csrf_token` field of a
/// urlencoded form). Rejected requests reach no handler, so nothing changes.
pub async fn protect_state_changes(State(app): State<WebState>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    if from_another_site(&app.config, &parts.headers) {
        tracing::warn!(path = %path, "state-changing request from another origin refused");
        return denied(
            &path,
            &format!("this request came from another site; open RinglyPro at {} and try again", app.config.public_url),
        );
    }
    let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let session = match sessions::find(&app.pool, &token_hash(token)).await {
        Ok(Some(session)) => session,
        Ok(None) => return next.run(Request::from_parts(parts, body)).await,
        Err(e) => return Error::from(e).into_response(),
    };
    let header_token = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let (supplied, body) = match header_token {
        Some(token) => (Some(token), body),
        None if is_form => {
            let bytes = match axum::body::to_bytes(body, MAX_FORM_BODY).await {
                Ok(bytes) => bytes,
                Err(_) => return Error::PayloadTooLarge.into_response(),
            };
            let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
            let token = fields.into_iter().find(|(k, _)| k == CSRF_FIELD).map(|(_, v)| v);
            (token, Body::from(bytes))
        }
        None => (None, body),
    };
    match supplied {
        Some(token) if constant_time_eq(token.as_bytes(), session.csrf_token.as_bytes()) => {
            parts.extensions.insert(ResolvedSession(session));
            next.run(Request::from_parts(parts, body)).await
        }
        supplied => {
            tracing::warn!(path = %path, user_id = %session.user_id, supplied = supplied.is_some(), "CSRF check failed");
            denied(
                &path,
                "this page was open too long or came from somewhere else; reload it and try again \
                 (requests need the session's CSRF token)",
            )
        }
    }
}

/// Where to send someone after signing in: only a path on this site, never elsewhere.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") && !n.contains("://") => n,
        _ => "/app",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn config() -> Config {
        Config::from_lookup(|k| (k == "PUBLIC_URL").then(|| "https://app.ringlypro.com".to_owned())).unwrap()
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[(header::COOKIE, "theme=dark; ringlypro_session=abc123; other=1")]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc123"));
        assert_eq!(cookie(&headers(&[(header::COOKIE, "ringlypro_session=")]), SESSION_COOKIE), None);
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_over_https() {
        let value = session_cookie(&config(), "tok");
        let value = value.to_str().unwrap();
        for part in ["ringlypro_session=tok", "HttpOnly", "SameSite=Lax", "Path=/", "Secure", "Max-Age=1209600"] {
            assert!(value.contains(part), "{value} lacks {part}");
        }
    }

    #[test]
    fn only_requests_naming_another_origin_are_from_another_site() {
        let c = config();
        assert!(!from_another_site(&c, &HeaderMap::new()));
        assert!(!from_another_site(&c, &headers(&[(header::ORIGIN, "https://app.ringlypro.com")])));
        assert!(from_another_site(&c, &headers(&[(header::ORIGIN, "https://evil.example")])));
        assert!(from_another_site(&c, &headers(&[(header::ORIGIN, "null")])));
        assert!(!from_another_site(&c, &headers(&[(header::REFERER, "https://app.ringlypro.com/login?x=1")])));
        assert!(from_another_site(&c, &headers(&[(header::REFERER, "https://app.ringlypro.com.evil.example/")])));
    }

    #[test]
    fn sign_in_only_returns_to_paths_on_this_site() {
        assert_eq!(safe_next(Some("/app?x=1")), "/app?x=1");
        assert_eq!(safe_next(Some("//evil.example")), "/app");
        assert_eq!(safe_next(Some("https://evil.example")), "/app");
        assert_eq!(safe_next(Some("/\\evil.example")), "/app");
        assert_eq!(safe_next(None), "/app");
    }
}
