//! Google Calendar API v3 and Google's OAuth 2.0 token endpoint: consent URL, code and
//! refresh-token exchange (through the `oauth2` crate over our own reqwest client, see
//! [`oauth`]), events insert/patch/delete, incremental listing with sync tokens, freeBusy,
//! and push channels. Google's JSON stays here; callers see [`CalendarEvent`], [`Tokens`]
//! and [`GoogleError`]. It never retries: the sync queue decides when to try again.
//!
//! Written on reqwest rather than `google-calendar3`, which pulls a second HTTP stack and
//! its own OAuth crate for the six endpoints used here; base URLs come from the
//! configuration so tests talk to a loopback fake.

mod oauth;
mod wire;

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use oauth::Tokens;

/// What the app asks to do with the owner's calendar: write its own events, read busy times.
pub const SCOPES: [&str; 2] =
    ["https://www.googleapis.com/auth/calendar.events", "https://www.googleapis.com/auth/calendar.readonly"];
/// The private extended property that marks an event as one of ours.
pub const APPOINTMENT_PROPERTY: &str = "ringlyproAppointment";
/// Longest one request may take; the availability check uses its own, shorter budget.
const TIMEOUT: Duration = Duration::from_secs(15);
/// How much of an unreadable answer makes it into an error message.
const EXCERPT_CHARS: usize = 200;

/// Why a Google request failed, by what the caller does about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoogleError {
    /// 401: the access token is no longer good; refresh it and try once more.
    #[error("Google refused the access token")]
    Unauthorized,
    /// The refresh token was revoked or expired: the owner must connect again.
    #[error("Google no longer accepts this connection (invalid_grant); the owner must reconnect")]
    InvalidGrant,
    /// 409 on insert: an event with that id exists already.
    #[error("the event exists already")]
    AlreadyExists,
    /// 410 on a listing with a sync token: start again with a full sync.
    #[error("the sync token expired; a full sync is needed")]
    SyncTokenExpired,
    /// 403 rate limits, 429, 5xx and network failures: the same request may succeed later.
    #[error("Google is unavailable for now: {0}")]
    Retryable(String),
    /// Any other refusal: the same request will be refused again.
    #[error("Google refused the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
}

impl GoogleError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, GoogleError::Retryable(_) | GoogleError::Unauthorized)
    }
}

/// Where Google is and who we are to it.
#[derive(Clone)]
pub struct GoogleEndpoints {
    /// `GOOGLE_OAUTH_BASE`: the token endpoint's scheme and host.
    pub oauth_base: String,
    /// `GOOGLE_AUTH_URL`: the consent page.
    pub auth_url: String,
    /// `GOOGLE_API_BASE`: the Calendar API's scheme and host.
    pub api_base: String,
    pub client_id: String,
    pub client_secret: SecretString,
}

/// When an event starts or ends: a moment, or (all-day events) a date in the calendar's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventTime {
    At(DateTime<Utc>),
    Day(NaiveDate),
}

/// An event as listed, reduced to what availability needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarEvent {
    pub id: String,
    /// Deleted (listed as `cancelled` by an incremental sync).
    pub cancelled: bool,
    /// Marked "free" by the owner: it blocks nothing.
    pub transparent: bool,
    /// The appointment this event was written for, when it is one of ours.
    pub appointment: Option<String>,
    pub starts: Option<EventTime>,
    pub ends: Option<EventTime>,
    pub summary: String,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsPage {
    pub events: Vec<CalendarEvent>,
    pub next_page_token: Option<String>,
    /// Only on the last page.
    pub next_sync_token: Option<String>,
}

/// An event we write for an appointment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    pub id: String,
    pub summary: String,
    pub description: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// IANA zone the event is shown in.
    pub time_zone: String,
    pub appointment: String,
}

/// A push channel Google opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub id: String,
    pub resource_id: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A busy interval from freeBusy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusySpan {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// The client. Cheap to clone.
#[derive(Clone)]
pub struct Google {
    http: reqwest::Client,
    endpoints: GoogleEndpoints,
}

impl std::fmt::Debug for Google {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Google").field("api_base", &self.endpoints.api_base).finish_non_exhaustive()
    }
}

/// The deterministic id of the event written for `appointment` of `tenant`: base32hex
/// (Google's alphabet for client-chosen ids, `[0-9a-v]`) of `ringlypro:{tenant}:{appointment}`,
/// so a retried insert names the same event and cannot make a second one.
pub fn event_id(tenant: i64, appointment: i64) -> String {
    base32hex(format!("ringlypro:{tenant}:{appointment}").as_bytes())
}

fn base32hex(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

impl Google {
    pub fn new(endpoints: GoogleEndpoints) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("RinglyPro/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, endpoints })
    }

    /// The consent page to send the owner to: offline access (a refresh token), consent
    /// asked again (so Google sends the refresh token again on a reconnect), `state` echoed.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str) -> anyhow::Result<String> {
        oauth::authorize_url(&self.endpoints, redirect_uri, state)
    }

    /// Exchanges the code Google sent back to `redirect_uri` for tokens.
    pub async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Result<Tokens, GoogleError> {
        oauth::exchange_code(&self.http, &self.endpoints, code, redirect_uri).await
    }

    /// A fresh access token for a refresh token ([`GoogleError::InvalidGrant`] when revoked).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, GoogleError> {
        oauth::refresh(&self.http, &self.endpoints, refresh_token).await
    }

    fn calendar_url(&self, calendar: &str, rest: &str) -> String {
        format!(
            "{}/calendar/v3/calendars/{}{rest}",
            self.endpoints.api_base,
            url::form_urlencoded::byte_serialize(calendar.as_bytes()).collect::<String>()
        )
    }

    /// Creates the event with its client-chosen id ([`GoogleError::AlreadyExists`] if it is there).
    pub async fn insert_event(&self, token: &str, calendar: &str, draft: &EventDraft) -> Result<(), GoogleError> {
        let url = self.calendar_url(calendar, "/events?sendUpdates=none");
        self.send::<serde_json::Value>(Method::POST, &url, token, Some(&wire::Event::from(draft)), None)
            .await
            .map(|_| ())
    }

    /// Moves and renames the event (and brings it back if it was cancelled).
    pub async fn patch_event(&self, token: &str, calendar: &str, draft: &EventDraft) -> Result<(), GoogleError> {
        let url = self.calendar_url(calendar, &format!("/events/{}?sendUpdates=none", draft.id));
        self.send::<serde_json::Value>(Method::PATCH, &url, token, Some(&wire::Event::from(draft)), None)
            .await
            .map(|_| ())
    }

    /// Deletes the event; one already gone (404, 410) counts as deleted.
    pub async fn delete_event(&self, token: &str, calendar: &str, id: &str) -> Result<(), GoogleError> {
        let url = self.calendar_url(calendar, &format!("/events/{id}?sendUpdates=none"));
        match self.send::<serde_json::Value>(Method::DELETE, &url, token, None::<&()>, None).await {
            Ok(_) | Err(GoogleError::SyncTokenExpired) => Ok(()),
            Err(GoogleError::Rejected { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One page of events: all of them (a full sync, from `since`) or, with a sync
    /// token, what changed since it was issued ([`GoogleError::SyncTokenExpired`] on 410).
    pub async fn list_events(
        &self,
        token: &str,
        calendar: &str,
        sync_token: Option<&str>,
        page_token: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<EventsPage, GoogleError> {
        let mut query: Vec<(&str, String)> = vec![("singleEvents", "true".into()), ("maxResults", "250".into())];
        match sync_token {
            Some(sync) => query.push(("syncToken", sync.to_owned())),
            None => query.push(("timeMin", since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))),
        }
        if let Some(page) = page_token {
            query.push(("pageToken", page.to_owned()));
        }
        let url = self.calendar_url(calendar, "/events");
        let page: wire::EventList = self.send(Method::GET, &url, token, None::<&()>, Some(&query)).await?;
        Ok(page.into())
    }

    /// The calendar's busy intervals in `[from, to)`.
    pub async fn free_busy(
        &self,
        token: &str,
        calendar: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<BusySpan>, GoogleError> {
        let url = format!("{}/calendar/v3/freeBusy", self.endpoints.api_base);
        let body = wire::FreeBusyRequest::new(calendar, from, to);
        let answer: wire::FreeBusyResponse = self.send(Method::POST, &url, token, Some(&body), None).await?;
        answer.busy_for(calendar)
    }

    /// Opens a push channel: Google POSTs to `address` with `channel_token` when the
    /// calendar changes, until `expires_at` (or sooner, at Google's choice).
    pub async fn watch(
        &self,
        token: &str,
        calendar: &str,
        channel_id: &str,
        address: &str,
        channel_token: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Channel, GoogleError> {
        let url = self.calendar_url(calendar, "/events/watch");
        let body = wire::WatchRequest {
            id: channel_id,
            kind: "web_hook",
            address,
            token: channel_token,
            expiration: expires_at.timestamp_millis(),
        };
        let channel: wire::ChannelResponse = self.send(Method::POST, &url, token, Some(&body), None).await?;
        Ok(channel.into())
    }

    /// Closes a push channel; one Google no longer knows counts as closed.
    pub async fn stop(&self, token: &str, channel_id: &str, resource_id: &str) -> Result<(), GoogleError> {
        let url = format!("{}/calendar/v3/channels/stop", self.endpoints.api_base);
        let body = wire::StopRequest { id: channel_id, resource_id };
        match self.send::<serde_json::Value>(Method::POST, &url, token, Some(&body), None).await {
            Ok(_) | Err(GoogleError::Rejected { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        token: &str,
        body: Option<&impl Serialize>,
        query: Option<&[(&str, String)]>,
    ) -> Result<T, GoogleError> {
        let mut request = self.http.request(method, url).bearer_auth(token);
        if let Some(query) = query {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| GoogleError::Retryable(transport(&e)))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| GoogleError::Retryable(transport(&e)))?;
        if status.is_success() {
            let text = if text.trim().is_empty() { "null" } else { text.as_str() };
            return serde_json::from_str(text)
                .map_err(|e| GoogleError::Retryable(format!("Google's answer could not be read: {e}")));
        }
        Err(classify(status, &text))
    }
}

fn transport(e: &reqwest::Error) -> String {
    if e.is_timeout() { "no answer in time".to_owned() } else { format!("could not reach Google: {e}") }
}

/// Google's error body and status, as the case a caller handles.
fn classify(status: StatusCode, body: &str) -> GoogleError {
    let parsed: Option<wire::ErrorBody> = serde_json::from_str(body).ok();
    let reasons: Vec<String> = parsed.as_ref().map(wire::ErrorBody::reasons).unwrap_or_default();
    let message = parsed
        .map(|e| e.error.message)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| body.chars().take(EXCERPT_CHARS).collect());
    let rate_limited = reasons.iter().any(|r| r == "rateLimitExceeded" || r == "userRateLimitExceeded");
    match status.as_u16() {
        401 => GoogleError::Unauthorized,
        409 => GoogleError::AlreadyExists,
        410 => GoogleError::SyncTokenExpired,
        403 if rate_limited => GoogleError::Retryable(format!("rate limited: {message}")),
        429 => GoogleError::Retryable(format!("rate limited: {message}")),
        s if s >= 500 => GoogleError::Retryable(format!("HTTP {s}: {message}")),
        s => GoogleError::Rejected { status: s, message },
    }
}

/// The endpoints' secret, for the token exchange only.
fn secret(endpoints: &GoogleEndpoints) -> String {
    endpoints.client_secret.expose_secret().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_base32hex_and_differ_per_tenant_and_appointment() {
        let id = event_id(7, 42);
        assert!(id.len() >= 5 && id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='v')), "{id}");
        assert_eq!(id, event_id(7, 42));
        assert_ne!(id, event_id(7, 43));
        assert_ne!(id, event_id(8, 42));
        // RFC 4648 test vector, lower-cased and unpadded.
        assert_eq!(base32hex(b"foobar"), "cpnmuoj1e8");
    }

    #[test]
    fn rate_limits_and_server_errors_are_retryable_other_refusals_are_not() {
        let rate = r#"{"error":{"errors":[{"domain":"usageLimits","reason":"rateLimitExceeded","message":"Rate Limit Exceeded"}],"code":403,"message":"Rate Limit Exceeded"}}"#;
        assert!(matches!(classify(StatusCode::FORBIDDEN, rate), GoogleError::Retryable(_)));
        assert!(matches!(classify(StatusCode::TOO_MANY_REQUESTS, rate), GoogleError::Retryable(_)));
        assert!(matches!(classify(StatusCode::INTERNAL_SERVER_ERROR, "oops"), GoogleError::Retryable(_)));
        let forbidden = r#"{"error":{"errors":[{"domain":"global","reason":"forbidden","message":"Forbidden"}],"code":403,"message":"Forbidden"}}"#;
        assert_eq!(
            classify(StatusCode::FORBIDDEN, forbidden),
            GoogleError::Rejected { status: 403, message: "Forbidden".into() }
        );
        assert_eq!(classify(StatusCode::UNAUTHORIZED, "{}"), GoogleError::Unauthorized);
        assert_eq!(classify(StatusCode::GONE, "{}"), GoogleError::SyncTokenExpired);
        assert_eq!(classify(StatusCode::CONFLICT, "{}"), GoogleError::AlreadyExists);
    }
}
