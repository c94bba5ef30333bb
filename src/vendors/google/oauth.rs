//! Google's OAuth 2.0 web-server flow through the `oauth2` crate, built without its own
//! HTTP client: [`send`] carries its requests over our reqwest client, so there is one
//! HTTP stack and one TLS configuration.

use std::time::Duration;

use chrono::{DateTime, Utc};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest, HttpResponse, RedirectUrl,
    RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};

use super::{GoogleEndpoints, GoogleError, SCOPES, secret};

/// Tokens from the token endpoint. The refresh token comes with the first consent only.
#[derive(Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// A failure to carry a token request.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(String);

/// The adapter `oauth2` calls for each request.
async fn send(http: reqwest::Client, request: HttpRequest) -> Result<HttpResponse, TransportError> {
    let request = reqwest::Request::try_from(request).map_err(|e| TransportError(e.to_string()))?;
    let response = http.execute(request).await.map_err(|e| TransportError(format!("could not reach Google: {e}")))?;
    let mut answer = HttpResponse::new(Vec::new());
    *answer.status_mut() = response.status();
    *answer.headers_mut() = response.headers().clone();
    *answer.body_mut() = response.bytes().await.map_err(|e| TransportError(e.to_string()))?.to_vec();
    Ok(answer)
}

fn parsed<T>(what: &str, value: Result<T, url::ParseError>) -> anyhow::Result<T> {
    value.map_err(|e| anyhow::anyhow!("{what} is not a URL: {e}"))
}

pub(super) fn authorize_url(endpoints: &GoogleEndpoints, redirect_uri: &str, state: &str) -> anyhow::Result<String> {
    let client = BasicClient::new(ClientId::new(endpoints.client_id.clone()))
        .set_auth_uri(parsed("GOOGLE_AUTH_URL", AuthUrl::new(endpoints.auth_url.clone()))?)
        .set_redirect_uri(parsed("the callback", RedirectUrl::new(redirect_uri.to_owned()))?);
    let state = state.to_owned();
    let (url, _) = client
        .authorize_url(move || CsrfToken::new(state.clone()))
        .add_scopes(SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
        .add_extra_param("access_type", "offline")
        .add_extra_param("prompt", "consent")
        .add_extra_param("include_granted_scopes", "true")
        .url();
    Ok(url.to_string())
}

fn token_error<E: std::error::Error + 'static>(
    e: RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
) -> GoogleError {
    match e {
        RequestTokenError::ServerResponse(answer) => match answer.error() {
            BasicErrorResponseType::InvalidGrant => GoogleError::InvalidGrant,
            other => GoogleError::Rejected {
                status: 400,
                message: format!(
                    "{}{}",
                    other.as_ref(),
                    answer.error_description().map(|d| format!(": {d}")).unwrap_or_default()
                ),
            },
        },
        RequestTokenError::Request(e) => GoogleError::Retryable(e.to_string()),
        RequestTokenError::Parse(e, _) => {
            GoogleError::Retryable(format!("Google's token endpoint answered something unreadable: {e}"))
        }
        RequestTokenError::Other(e) => GoogleError::Retryable(e),
    }
}

fn tokens(answer: &oauth2::basic::BasicTokenResponse) -> Tokens {
    let lifetime = answer.expires_in().unwrap_or(Duration::from_secs(3600));
    Tokens {
        access_token: answer.access_token().secret().clone(),
        refresh_token: answer.refresh_token().map(|t| t.secret().clone()),
        expires_at: Utc::now() + chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::hours(1)),
    }
}

fn token_url(endpoints: &GoogleEndpoints) -> Result<TokenUrl, GoogleError> {
    TokenUrl::new(format!("{}/token", endpoints.oauth_base))
        .map_err(|e| GoogleError::Rejected { status: 0, message: format!("GOOGLE_OAUTH_BASE is not a URL: {e}") })
}

pub(super) async fn exchange_code(
    http: &reqwest::Client,
    endpoints: &GoogleEndpoints,
    code: &str,
    redirect_uri: &str,
) -> Result<Tokens, GoogleError> {
    let redirect = RedirectUrl::new(redirect_uri.to_owned())
        .map_err(|e| GoogleError::Rejected { status: 0, message: format!("the callback is not a URL: {e}") })?;
    let client = BasicClient::new(ClientId::new(endpoints.client_id.clone()))
        .set_client_secret(ClientSecret::new(secret(endpoints)))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(token_url(endpoints)?)
        .set_redirect_uri(redirect);
    let carrier = |request: HttpRequest| send(http.clone(), request);
    let answer = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .request_async(&carrier)
        .await
        .map_err(token_error)?;
    Ok(tokens(&answer))
}

pub(super) async fn refresh(
    http: &reqwest::Client,
    endpoints: &GoogleEndpoints,
    refresh_token: &str,
) -> Result<Tokens, GoogleError> {
    let client = BasicClient::new(ClientId::new(endpoints.client_id.clone()))
        .set_client_secret(ClientSecret::new(secret(endpoints)))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(token_url(endpoints)?);
    let carrier = |request: HttpRequest| send(http.clone(), request);
    let token = RefreshToken::new(refresh_token.to_owned());
    let answer = client.exchange_refresh_token(&token).request_async(&carrier).await.map_err(token_error)?;
    Ok(tokens(&answer))
}
