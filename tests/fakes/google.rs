//! `FakeGoogle`: Google's OAuth token endpoint and consent redirect, and the Calendar API
//! v3 endpoints RinglyPro uses (events insert/patch/delete with client ids, listing with
//! sync tokens and 410 on an expired one, freeBusy, watch and channels.stop), on loopback,
//! speaking Google's JSON and error bodies. Failures and delays are scripted by the test.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, patch, post};
use axum::{Form, Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "fake-client.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "fake-client-secret";
pub const REFRESH_TOKEN: &str = "1//fake-refresh-token";

/// A stored event: its JSON and the change number it was last written at.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub json: Value,
    pub changed_at: u64,
}

#[derive(Default)]
pub struct Inner {
    pub events: BTreeMap<String, StoredEvent>,
    seq: u64,
    /// Inserts asked for, by event id (a retried insert counts again).
    pub insert_requests: Vec<String>,
    pub valid_access: Vec<String>,
    pub revoked: bool,
    /// Statuses to answer the next event writes with, one each.
    pub fail_writes: VecDeque<u16>,
    pub sync_tokens_expired: bool,
    /// Listings asked for: `Some(sync token)` or `None` for a full one.
    pub listings: Vec<Option<String>>,
    pub freebusy_delay: Duration,
    pub freebusy_calls: usize,
    /// Open channels: (id, token, resource id).
    pub channels: Vec<(String, String, String)>,
    pub stopped: Vec<String>,
    pub refreshes: usize,
}

#[derive(Clone)]
pub struct FakeGoogle {
    pub base_url: String,
    inner: Arc<Mutex<Inner>>,
}

fn error(status: u16, reason: &str, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let domain = if reason.contains("ateLimit") { "usageLimits" } else { "global" };
    let body = json!({"error": {"errors": [{"domain": domain, "reason": reason, "message": message}], "code": status, "message": message}});
    (code, Json(body)).into_response()
}

impl FakeGoogle {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let fake = FakeGoogle { base_url: format!("http://{addr}"), inner };
        let router = Router::new()
            .route("/o/oauth2/v2/auth", get(consent))
            .route("/token", post(token))
            .route("/calendar/v3/calendars/{cal}/events", get(list).post(insert))
            .route("/calendar/v3/calendars/{cal}/events/watch", post(watch))
            .route("/calendar/v3/calendars/{cal}/events/{id}", patch(patch_event).delete(delete_event))
            .route("/calendar/v3/freeBusy", post(free_busy))
            .route("/calendar/v3/channels/stop", post(stop))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        fake
    }

    /// The app's environment pointing at this fake.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("GOOGLE_CLIENT_ID", CLIENT_ID.into()),
            ("GOOGLE_CLIENT_SECRET", CLIENT_SECRET.into()),
            ("GOOGLE_OAUTH_BASE", self.base_url.clone()),
            ("GOOGLE_AUTH_URL", format!("{}/o/oauth2/v2/auth", self.base_url)),
            ("GOOGLE_API_BASE", self.base_url.clone()),
            ("INTEGRATIONS_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into()),
            // The worker is driven by the tests.
            ("GOOGLE_SYNC_POLL_MS", "3600000".into()),
        ]
    }

    pub fn state(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// The owner adds an event in Google's own interface.
    pub fn add_owner_event(&self, id: &str, summary: &str, starts: DateTime<Utc>, ends: DateTime<Utc>) {
        let mut s = self.state();
        s.seq += 1;
        let seq = s.seq;
        let json = json!({"id": id, "status": "confirmed", "summary": summary,
            "start": {"dateTime": starts.to_rfc3339()}, "end": {"dateTime": ends.to_rfc3339()}});
        s.events.insert(id.into(), StoredEvent { json, changed_at: seq });
    }

    /// Google's push to the app: the last channel's id and token.
    pub async fn push(&self, app_base: &str) -> reqwest::StatusCode {
        let (id, token, resource) = self.state().channels.last().cloned().expect("a channel is open");
        reqwest::Client::new()
            .post(format!("{app_base}/integrations/google/notify"))
            .header("X-Goog-Channel-ID", id)
            .header("X-Goog-Channel-Token", token)
            .header("X-Goog-Resource-ID", resource)
            .header("X-Goog-Resource-State", "exists")
            .header("X-Goog-Message-Number", "2")
            .send()
            .await
            .unwrap()
            .status()
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let given = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        self.state().valid_access.iter().any(|t| given == format!("Bearer {t}"))
    }

    fn next_failure(&self) -> Option<Response> {
        let status = self.state().fail_writes.pop_front()?;
        Some(match status {
            429 => error(429, "rateLimitExceeded", "Rate Limit Exceeded"),
            403 => error(403, "userRateLimitExceeded", "User Rate Limit Exceeded"),
            s => error(s, "backendError", "Backend Error"),
        })
    }
}

async fn consent(Query(q): Query<BTreeMap<String, String>>) -> Response {
    for (key, value) in
        [("access_type", "offline"), ("prompt", "consent"), ("response_type", "code"), ("client_id", CLIENT_ID)]
    {
        if q.get(key).map(String::as_str) != Some(value) {
            return (StatusCode::BAD_REQUEST, format!("{key} must be {value}")).into_response();
        }
    }
    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
    let state = q.get("state").cloned().unwrap_or_default();
    let mut url = url::Url::parse(&redirect).unwrap();
    url.query_pairs_mut()
        .append_pair("code", "4/fake-code")
        .append_pair("state", &state)
        .append_pair("scope", "calendar");
    Redirect::to(url.as_str()).into_response()
}

async fn token(State(g): State<FakeGoogle>, Form(form): Form<BTreeMap<String, String>>) -> Response {
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"}))).into_response();
    }
    let mut s = g.state();
    let access = format!("ya29.fake-{}", s.valid_access.len() + 1);
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") if form.get("code").map(String::as_str) == Some("4/fake-code") => {
            s.valid_access.push(access.clone());
            Json(json!({"access_token": access, "expires_in": 3599, "refresh_token": REFRESH_TOKEN,
                "scope": "https://www.googleapis.com/auth/calendar.events", "token_type": "Bearer"}))
            .into_response()
        }
        Some("refresh_token") if !s.revoked && form.get("refresh_token").map(String::as_str) == Some(REFRESH_TOKEN) => {
            s.refreshes += 1;
            s.valid_access.push(access.clone());
            Json(json!({"access_token": access, "expires_in": 3599, "scope": "calendar", "token_type": "Bearer"}))
                .into_response()
        }
        _ => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})),
        )
            .into_response(),
    }
}

async fn insert(State(g): State<FakeGoogle>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if !g.authorized(&headers) {
        return error(401, "authError", "Invalid Credentials");
    }
    let id = body["id"].as_str().unwrap_or_default().to_owned();
    g.state().insert_requests.push(id.clone());
    if let Some(failure) = g.next_failure() {
        return failure;
    }
    let mut s = g.state();
    if s.events.contains_key(&id) {
        return error(409, "duplicate", "The requested identifier already exists.");
    }
    s.seq += 1;
    let seq = s.seq;
    s.events.insert(id, StoredEvent { json: body.clone(), changed_at: seq });
    Json(body).into_response()
}

async fn patch_event(
    State(g): State<FakeGoogle>,
    headers: HeaderMap,
    Path((_, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if !g.authorized(&headers) {
        return error(401, "authError", "Invalid Credentials");
    }
    if let Some(failure) = g.next_failure() {
        return failure;
    }
    let mut s = g.state();
    s.seq += 1;
    let seq = s.seq;
    let Some(event) = s.events.get_mut(&id) else { return error(404, "notFound", "Not Found") };
    if let (Some(stored), Some(changes)) = (event.json.as_object_mut(), body.as_object()) {
        for (k, v) in changes {
            stored.insert(k.clone(), v.clone());
        }
    }
    event.changed_at = seq;
    Json(event.json.clone()).into_response()
}

async fn delete_event(
    State(g): State<FakeGoogle>,
    headers: HeaderMap,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    if !g.authorized(&headers) {
        return error(401, "authError", "Invalid Credentials");
    }
    if let Some(failure) = g.next_failure() {
        return failure;
    }
    let mut s = g.state();
    s.seq += 1;
    let seq = s.seq;
    match s.events.get_mut(&id) {
        Some(event) if event.json["status"] != "cancelled" => {
            event.json["status"] = json!("cancelled");
            event.changed_at = seq;
            StatusCode::NO_CONTENT.into_response()
        }
        Some(_) => error(410, "deleted", "Resource has been deleted"),
        None => error(404, "notFound", "Not Found"),
    }
}

async fn list(State(g): State<FakeGoogle>, headers: HeaderMap, Query(q): Query<BTreeMap<String, String>>) -> Response {
    if !g.authorized(&headers) {
        return error(401, "authError", "Invalid Credentials");
    }
    let mut s = g.state();
    let sync = q.get("syncToken").cloned();
    s.listings.push(sync.clone());
    let since = match &sync {
        Some(_) if s.sync_tokens_expired => {
            return error(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.");
        }
        Some(token) => match token.strip_prefix("sync-").and_then(|n| n.parse::<u64>().ok()) {
            Some(n) => Some(n),
            None => return error(400, "invalid", "Invalid sync token value."),
        },
        None => None,
    };
    s.sync_tokens_expired = false;
    let items: Vec<Value> = s
        .events
        .values()
        .filter(|e| match since {
            Some(n) => e.changed_at > n,
            None => e.json["status"] != "cancelled",
        })
        .map(|e| e.json.clone())
        .collect();
    Json(json!({"kind": "calendar#events", "items": items, "nextSyncToken": format!("sync-{}", s.seq)})).into_response()
}

async fn free_busy(State(g): State<FakeGoogle>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if !g.authorized(&headers) {
        return error(401, "authError", "Invalid Credentials");
    }
    let delay = {
        let mut s = g.state();
        s.freebusy_calls += 1;
        s.freebusy_delay
    };
    tokio::time::sleep(delay).await;
    let busy: Vec<Value> = g
        .state()
        .events
        .values()
        .filter(|e| e.json["status"] != "cancelled" && e.json["transparency"] != "transparent")
        .map(|e| json!({"start": e.json["start"]["dateTime"], "end": e.json["end"]["dateTime"]}))
        .collect();
    let calendar = body["items"][0]["id"].as_str().unwrap_or("primary").to_owned();
    Json(json!({"kind": "calendar#freeBusy", "timeMin": body["timeMin"], "timeMax": body["timeMax"],
        "calendars": {calendar: {"busy": busy}}}))
    .into_response()
}

async fn watch(State(g): State<FakeGoogle>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if !g.authorized(&headers) {
        return error(401, "authError", "Invalid Credentials");
    }
    let id = body["id"].as_str().unwrap_or_default().to_owned();
    let token = body["token"].as_str().unwrap_or_default().to_owned();
    let resource = format!("res-{}", g.state().channels.len() + 1);
    g.state().channels.push((id.clone(), token.clone(), resource.clone()));
    Json(json!({"kind": "api#channel", "id": id, "resourceId": resource,
        "resourceUri": "https://www.googleapis.com/calendar/v3/calendars/primary/events",
        "token": token, "expiration": body["expiration"].as_i64().unwrap_or_default().to_string()}))
    .into_response()
}

async fn stop(State(g): State<FakeGoogle>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if !g.authorized(&headers) {
        return error(401, "authError", "Invalid Credentials");
    }
    g.state().stopped.push(body["id"].as_str().unwrap_or_default().to_owned());
    StatusCode::NO_CONTENT.into_response()
}
