//! GoHighLevel's LeadConnector API v2: OAuth tokens for a location (the refresh token
//! rotates on every use, so each refresh returns the one to store next), contact upsert by
//! phone, the location's calendars, and appointments created, moved and listed per contact.
//! Requests to one location are paced under its limit of 100 per 10 seconds. It never
//! retries: the sync queue decides when to try again.
//!
//! Written directly on reqwest: there is no maintained Rust client, six endpoints are
//! needed, and the base URL must be injectable so tests talk to a loopback fake.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use dashmap::DashMap;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;
use url::Url;

/// `Version` header of the contacts and OAuth endpoints.
const CONTACTS_VERSION: &str = "2021-07-28";
/// `Version` header of the calendar endpoints.
const CALENDARS_VERSION: &str = "2021-04-15";
/// Longest one request may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Requests one location may take per [`WINDOW`].
pub const REQUESTS_PER_WINDOW: usize = 100;
const WINDOW: Duration = Duration::from_secs(10);
/// How much of an unreadable body makes it into an error message.
const EXCERPT_CHARS: usize = 300;

/// Why a GoHighLevel call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GhlError {
    /// The token is no longer good (expired, or the app was uninstalled): refresh, or
    /// reconnect when the refresh itself is refused.
    #[error("GoHighLevel refused the token: {0}")]
    Unauthorized(String),
    /// Over the location's rate limit; try again after the wait.
    #[error("GoHighLevel's rate limit was reached; try again in {} ms", .retry_after.as_millis())]
    RateLimited { retry_after: Duration },
    #[error("GoHighLevel answered HTTP {status}: {message}")]
    Api { status: u16, message: String },
    #[error("GoHighLevel could not be reached: {0}")]
    Transport(String),
}

impl GhlError {
    /// Worth trying the same request later: rate limits, 5xx and the network.
    pub fn is_retryable(&self) -> bool {
        match self {
            GhlError::RateLimited { .. } | GhlError::Transport(_) => true,
            GhlError::Api { status, .. } => *status >= 500,
            GhlError::Unauthorized(_) => false,
        }
    }
}

/// Tokens from an install or a refresh. Store `refresh_token` at once: the one just used
/// no longer works.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds.
    pub expires_in: u64,
    #[serde(rename = "locationId", default)]
    pub location_id: Option<String>,
    #[serde(rename = "companyId", default)]
    pub company_id: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

/// A caller as a GoHighLevel contact.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContactUpsert {
    pub location_id: String,
    pub phone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub source: String,
}

/// A contact GoHighLevel holds, and whether the upsert made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsertedContact {
    pub id: String,
    pub created: bool,
}

/// One of a location's calendars.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Calendar {
    pub id: String,
    pub name: String,
}

/// An appointment to write, in the location's calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct AppointmentWrite {
    pub calendar_id: String,
    pub location_id: String,
    pub contact_id: String,
    pub start: DateTime<FixedOffset>,
    pub end: DateTime<FixedOffset>,
    pub title: String,
    /// `confirmed`, `cancelled`, `showed`, `noshow`.
    pub status: String,
}

/// An appointment as GoHighLevel lists a contact's.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct RemoteAppointment {
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(rename = "calendarId", default)]
    pub calendar_id: String,
}

/// A client for the LeadConnector API. Cheap to clone; shares its pacing across clones.
#[derive(Debug, Clone)]
pub struct GoHighLevel {
    http: reqwest::Client,
    base: Url,
    pacing: Arc<DashMap<String, VecDeque<Instant>>>,
}

impl GoHighLevel {
    /// `api_base` is `https://services.leadconnectorhq.com` or a loopback fake.
    pub fn new(api_base: &Url) -> Self {
        let mut base = api_base.clone();
        base.set_path("");
        base.set_query(None);
        Self {
            http: reqwest::Client::builder().timeout(TIMEOUT).build().unwrap_or_default(),
            base,
            pacing: Arc::default(),
        }
    }

    /// Trades an install's `code` for a location's tokens.
    pub async fn exchange_code(
        &self,
        client_id: &str,
        client_secret: &str,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Tokens, GhlError> {
        self.token(&[
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("grant_type", "authorization_code"),
            ("code", code),
            ("user_type", "Location"),
            ("redirect_uri", redirect_uri),
        ])
        .await
    }

    /// New tokens for `refresh_token`, which stops working once this succeeds.
    pub async fn refresh(&self, client_id: &str, client_secret: &str, refresh_token: &str) -> Result<Tokens, GhlError> {
        self.token(&[
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("user_type", "Location"),
        ])
        .await
    }

    async fn token(&self, form: &[(&str, &str)]) -> Result<Tokens, GhlError> {
        let url = self.url(&["oauth", "token"])?;
        let response = self
            .http
            .post(url)
            .header("Accept", "application/json")
            .form(form)
            .send()
            .await
            .map_err(|e| GhlError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| GhlError::Transport(e.to_string()))?;
        if status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED {
            // invalid_grant and friends: the install is gone or the token was used already.
            return Err(GhlError::Unauthorized(message_of(&body).unwrap_or_else(|| excerpt(&body))));
        }
        read(status, &body)
    }

    /// Finds the location's contact with this phone or makes one.
    pub async fn upsert_contact(&self, token: &str, contact: &ContactUpsert) -> Result<UpsertedContact, GhlError> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            new: bool,
            contact: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            id: String,
        }
        let body = serde_json::to_value(contact).map_err(|e| GhlError::Transport(e.to_string()))?;
        let wire: Wire = self
            .send(token, &contact.location_id, Method::POST, &["contacts", "upsert"], CONTACTS_VERSION, &[], Some(body))
            .await?;
        Ok(UpsertedContact { id: wire.contact.id, created: wire.new })
    }

    /// The location's calendars, to choose where bookings go.
    pub async fn calendars(&self, token: &str, location_id: &str) -> Result<Vec<Calendar>, GhlError> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            calendars: Vec<Calendar>,
        }
        let query = [("locationId", location_id)];
        let wire: Wire =
            self.send(token, location_id, Method::GET, &["calendars", ""], CALENDARS_VERSION, &query, None).await?;
        Ok(wire.calendars)
    }

    /// Writes a new appointment; returns GoHighLevel's id for it.
    pub async fn create_appointment(&self, token: &str, appointment: &AppointmentWrite) -> Result<String, GhlError> {
        #[derive(Deserialize)]
        struct Wire {
            id: String,
        }
        let body = appointment_body(appointment, true);
        let path = ["calendars", "events", "appointments"];
        let wire: Wire =
            self.send(token, &appointment.location_id, Method::POST, &path, CALENDARS_VERSION, &[], Some(body)).await?;
        Ok(wire.id)
    }

    /// Moves or re-statuses an appointment written before.
    pub async fn update_appointment(
        &self,
        token: &str,
        event_id: &str,
        appointment: &AppointmentWrite,
    ) -> Result<(), GhlError> {
        let body = appointment_body(appointment, false);
        let path = ["calendars", "events", "appointments", event_id];
        let _: Value =
            self.send(token, &appointment.location_id, Method::PUT, &path, CALENDARS_VERSION, &[], Some(body)).await?;
        Ok(())
    }

    /// The contact's appointments, to find one written before its answer was lost.
    pub async fn contact_appointments(
        &self,
        token: &str,
        location_id: &str,
        contact_id: &str,
    ) -> Result<Vec<RemoteAppointment>, GhlError> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            events: Vec<RemoteAppointment>,
        }
        let path = ["contacts", contact_id, "appointments"];
        let wire: Wire = self.send(token, location_id, Method::GET, &path, CONTACTS_VERSION, &[], None).await?;
        Ok(wire.events)
    }

    fn url(&self, path: &[&str]) -> Result<Url, GhlError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| GhlError::Transport(format!("{} cannot take a path", self.base)))?
            .clear()
            .extend(path);
        Ok(url)
    }

    /// Waits, if needed, until `location` may make another request under its limit.
    async fn pace(&self, location: &str) {
        loop {
            let wait = {
                let mut sent = self.pacing.entry(location.to_owned()).or_default();
                let now = Instant::now();
                while sent.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                    sent.pop_front();
                }
                if sent.len() < REQUESTS_PER_WINDOW {
                    sent.push_back(now);
                    return;
                }
                sent.front().map(|t| WINDOW.saturating_sub(now.duration_since(*t))).unwrap_or(WINDOW)
            };
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn send<T: DeserializeOwned>(
        &self,
        token: &str,
        location: &str,
        method: Method,
        path: &[&str],
        version: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<T, GhlError> {
        self.pace(location).await;
        let url = self.url(path)?;
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(token)
            .header("Version", version)
            .header("Accept", "application/json");
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| GhlError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs)
            .or_else(|| {
                response
                    .headers()
                    .get("x-ratelimit-interval-milliseconds")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_millis)
            });
        let body = response.bytes().await.map_err(|e| GhlError::Transport(e.to_string()))?;
        match status {
            StatusCode::TOO_MANY_REQUESTS => Err(GhlError::RateLimited { retry_after: retry_after.unwrap_or(WINDOW) }),
            StatusCode::UNAUTHORIZED => {
                Err(GhlError::Unauthorized(message_of(&body).unwrap_or_else(|| "the access token was refused".into())))
            }
            _ => read(status, &body),
        }
    }
}

fn appointment_body(a: &AppointmentWrite, new: bool) -> Value {
    let mut body = json!({
        "startTime": a.start.to_rfc3339(),
        "endTime": a.end.to_rfc3339(),
        "title": a.title,
        "appointmentStatus": a.status,
        // RinglyPro already checked the time against its own agenda.
        "ignoreFreeSlotValidation": true,
        "toNotify": false,
    });
    if !a.calendar_id.is_empty() {
        body["calendarId"] = json!(a.calendar_id);
    }
    if new {
        body["locationId"] = json!(a.location_id);
        body["contactId"] = json!(a.contact_id);
    }
    body
}

/// A 2xx body read as `T`; anything else as [`GhlError::Api`].
fn read<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T, GhlError> {
    if !status.is_success() {
        let message = message_of(body).unwrap_or_else(|| excerpt(body));
        return Err(GhlError::Api { status: status.as_u16(), message });
    }
    serde_json::from_slice(body)
        .map_err(|e| GhlError::Transport(format!("unreadable answer (HTTP {status}): {e}: {}", excerpt(body))))
}

/// The `message` (a string, or a list of them) or `error_description` of an error body.
fn message_of(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    match &value["message"] {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; ")),
        _ => value["error_description"].as_str().or_else(|| value["error"].as_str()).map(str::to_owned),
    }
}

fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(EXCERPT_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_whether_to_try_again() {
        assert!(GhlError::RateLimited { retry_after: WINDOW }.is_retryable());
        assert!(GhlError::Api { status: 502, message: String::new() }.is_retryable());
        assert!(!GhlError::Api { status: 422, message: String::new() }.is_retryable());
        assert!(!GhlError::Unauthorized(String::new()).is_retryable());
    }

    #[test]
    fn error_bodies_give_their_message_in_either_shape() {
        assert_eq!(message_of(br#"{"statusCode":400,"message":"Bad Request"}"#).as_deref(), Some("Bad Request"));
        assert_eq!(
            message_of(br#"{"statusCode":422,"message":["startTime must be a date","x"]}"#).as_deref(),
            Some("startTime must be a date; x")
        );
        assert_eq!(message_of(br#"{"error":"invalid_grant","error_description":"used"}"#).as_deref(), Some("used"));
        assert_eq!(message_of(b"<html>"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_location_is_paced_under_its_limit_and_others_are_not_held_up() {
        let ghl = GoHighLevel::new(&Url::parse("http://127.0.0.1:9").unwrap());
        let start = tokio::time::Instant::now();
        for _ in 0..REQUESTS_PER_WINDOW {
            ghl.pace("loc-a").await;
        }
        assert!(start.elapsed() < Duration::from_millis(5), "the first hundred go at once");
        ghl.pace("loc-b").await;
        assert!(start.elapsed() < Duration::from_millis(5), "another location has its own limit");
        let paced = tokio::spawn({
            let ghl = ghl.clone();
            async move { ghl.pace("loc-a").await }
        });
        tokio::task::yield_now().await;
        assert!(!paced.is_finished(), "the 101st waits");
        paced.await.unwrap();
        let waited = start.elapsed();
        assert!(
            waited >= WINDOW && waited < WINDOW + Duration::from_millis(50),
            "until the first leaves the window: {waited:?}"
        );
    }
}
