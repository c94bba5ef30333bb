//! `FakeGoHighLevel`: the LeadConnector API v2 on loopback — the location chooser
//! (`/oauth/chooselocation`, redirecting back with a code and the `state`), `/oauth/token`
//! (codes once, refresh tokens that rotate and die on use), `/contacts/upsert` (by phone
//! within a location), `/contacts/{id}/appointments`, `/calendars/`,
//! `/calendars/events/appointments` (create, update) — checking the bearer token and the
//! `Version` header each endpoint requires, answering GoHighLevel's JSON and error bodies,
//! and scripted 429s, 502s and answers lost after the write.
//!
//! ```ignore
//! let ghl = FakeGoHighLevel::start().await;
//! let code = ghl.install("loc-1");          // what the chooselocation redirect carries
//! ghl.rate_limit_next(1);                   // one 429, then fine
//! // ... the app talks to ghl.base_url ...
//! let appointments = ghl.appointments();
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub const CLIENT_ID: &str = "fake-ghl-client";
pub const CLIENT_SECRET: &str = "fake-ghl-secret";

/// A contact the fake holds.
#[derive(Debug, Clone, PartialEq)]
pub struct GhlContact {
    pub id: String,
    pub location_id: String,
    pub phone: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

/// An appointment the fake holds.
#[derive(Debug, Clone, PartialEq)]
pub struct GhlAppointment {
    pub id: String,
    pub location_id: String,
    pub calendar_id: String,
    pub contact_id: String,
    pub start: String,
    pub end: String,
    pub status: String,
    pub title: String,
}

#[derive(Default)]
struct Ledger {
    /// Install codes, each good once, for a location.
    codes: HashMap<String, String>,
    /// Live access tokens → location.
    access: HashMap<String, String>,
    /// Live refresh tokens → location.
    refresh: HashMap<String, String>,
    contacts: Vec<GhlContact>,
    appointments: Vec<GhlAppointment>,
    calendars: HashMap<String, Vec<(String, String)>>,
    rate_limit_next: usize,
    fail_next: usize,
    lose_next_answer: usize,
    /// The location the chooser installs on.
    chosen: String,
    refreshes: usize,
    issued: usize,
    requests: usize,
}

/// The fake; stops when dropped.
pub struct FakeGoHighLevel {
    pub base_url: String,
    ledger: Arc<Mutex<Ledger>>,
    server: JoinHandle<()>,
}

impl Drop for FakeGoHighLevel {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Shared = Arc<Mutex<Ledger>>;

fn lock(ledger: &Shared) -> MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "statusCode": status.as_u16(), "message": message }))).into_response()
}

impl FakeGoHighLevel {
    pub async fn start() -> Self {
        let ledger: Shared = Arc::default();
        lock(&ledger).chosen = "loc-1".into();
        let app = Router::new()
            .route("/oauth/chooselocation", get(choose_location))
            .route("/oauth/token", post(token))
            .route("/contacts/{id}/appointments", get(contact_appointments))
            .route("/contacts/upsert", post(upsert))
            .route("/calendars/", get(calendars))
            .route("/calendars/events/appointments", post(create_appointment))
            .route("/calendars/events/appointments/{id}", put(update_appointment))
            .with_state(ledger.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base_url: format!("http://{addr}"), ledger, server }
    }

    /// A location installing the app: the code its redirect carries. The location gets one
    /// calendar, `cal-<location>`.
    pub fn install(&self, location: &str) -> String {
        install_in(&mut lock(&self.ledger), location)
    }

    /// What RinglyPro needs to talk to this fake (the worker is driven by the tests).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("GHL_CLIENT_ID", CLIENT_ID.into()),
            ("GHL_CLIENT_SECRET", CLIENT_SECRET.into()),
            ("GHL_API_BASE", self.base_url.clone()),
            ("GHL_AUTH_URL", format!("{}/oauth/chooselocation", self.base_url)),
            ("INTEGRATIONS_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into()),
            ("GHL_SYNC_POLL_MS", "3600000".into()),
        ]
    }

    /// The location the next pass through the chooser installs on (`loc-1` at first).
    pub fn choose(&self, location: &str) {
        lock(&self.ledger).chosen = location.to_owned();
    }

    /// Gives a location another calendar (after its Main one).
    pub fn add_calendar(&self, location: &str, id: &str, name: &str) {
        let mut l = lock(&self.ledger);
        let calendars = l.calendars.entry(location.to_owned()).or_insert_with(|| default_calendars(location));
        calendars.push((id.to_owned(), name.to_owned()));
    }

    /// The next `n` appointment creations are made but answered with 502, as when the
    /// answer is lost on the way back.
    pub fn lose_next_answer(&self, n: usize) {
        lock(&self.ledger).lose_next_answer = n;
    }

    /// Refresh grants accepted so far.
    pub fn refreshes(&self) -> usize {
        lock(&self.ledger).refreshes
    }

    /// The next `n` API requests get 429.
    pub fn rate_limit_next(&self, n: usize) {
        lock(&self.ledger).rate_limit_next = n;
    }

    /// The next `n` API requests get 502.
    pub fn fail_next(&self, n: usize) {
        lock(&self.ledger).fail_next = n;
    }

    /// Every access token stops working (as when it expires).
    pub fn expire_access_tokens(&self) {
        lock(&self.ledger).access.clear();
    }

    /// The app is uninstalled: no token of `location` works, refresh tokens included.
    pub fn uninstall(&self, location: &str) {
        let mut l = lock(&self.ledger);
        l.access.retain(|_, loc| loc != location);
        l.refresh.retain(|_, loc| loc != location);
    }

    pub fn contacts(&self) -> Vec<GhlContact> {
        lock(&self.ledger).contacts.clone()
    }

    pub fn appointments(&self) -> Vec<GhlAppointment> {
        lock(&self.ledger).appointments.clone()
    }

    /// API requests answered so far (not counting OAuth).
    pub fn requests(&self) -> usize {
        lock(&self.ledger).requests
    }
}

fn install_in(l: &mut Ledger, location: &str) -> String {
    l.issued += 1;
    let code = format!("code-{location}-{}", l.issued);
    l.codes.insert(code.clone(), location.to_owned());
    l.calendars.entry(location.to_owned()).or_insert_with(|| default_calendars(location));
    code
}

/// Every location starts with one calendar, `cal-<location>` named Main.
fn default_calendars(location: &str) -> Vec<(String, String)> {
    vec![(format!("cal-{location}"), "Main".into())]
}

fn issue(l: &mut Ledger, location: &str) -> Value {
    l.issued += 1;
    let access = format!("ghl-access-{}", l.issued);
    let refresh = format!("ghl-refresh-{}", l.issued);
    l.access.insert(access.clone(), location.to_owned());
    l.refresh.insert(refresh.clone(), location.to_owned());
    json!({
        "access_token": access, "token_type": "Bearer", "expires_in": 86399, "refresh_token": refresh,
        "scope": "contacts.write calendars.readonly calendars/events.write", "userType": "Location",
        "locationId": location, "companyId": "company-1", "userId": "user-1",
    })
}

async fn token(State(ledger): State<Shared>, body: Bytes) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"}))).into_response();
    }
    let mut l = lock(&ledger);
    let location = match field("grant_type") {
        "authorization_code" => l.codes.remove(field("code")),
        // Rotation: the refresh token used here never works again.
        "refresh_token" => {
            let location = l.refresh.remove(field("refresh_token"));
            l.refreshes += usize::from(location.is_some());
            location
        }
        _ => return error(StatusCode::BAD_REQUEST, "unsupported grant_type"),
    };
    match location {
        Some(location) => axum::Json(issue(&mut l, &location)).into_response(),
        None => (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"error": "invalid_grant", "error_description": "Invalid grant: refresh token is invalid"}),
            ),
        )
            .into_response(),
    }
}

/// The location the bearer token acts for, after the version check and scripted failures.
fn authorise(l: &mut Ledger, headers: &HeaderMap, version: &str) -> Result<String, Box<Response>> {
    l.requests += 1;
    if l.rate_limit_next > 0 {
        l.rate_limit_next -= 1;
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
        response.headers_mut().insert("x-ratelimit-interval-milliseconds", "10000".parse().unwrap());
        response.headers_mut().insert("x-ratelimit-remaining", "0".parse().unwrap());
        return Err(Box::new(response));
    }
    if l.fail_next > 0 {
        l.fail_next -= 1;
        return Err(Box::new(error(StatusCode::BAD_GATEWAY, "Bad Gateway")));
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let Some(location) = l.access.get(token).cloned() else {
        return Err(Box::new(
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"statusCode": 401, "message": "Invalid token: access token is invalid", "error": "Unauthorized"})),
            )
                .into_response(),
        ));
    };
    if headers.get("version").and_then(|v| v.to_str().ok()) != Some(version) {
        return Err(Box::new(error(StatusCode::BAD_REQUEST, "version header is missing or wrong")));
    }
    Ok(location)
}

async fn upsert(State(ledger): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut l = lock(&ledger);
    let location = match authorise(&mut l, &headers, "2021-07-28") {
        Ok(location) => location,
        Err(response) => return *response,
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else { return error(StatusCode::BAD_REQUEST, "Bad Request") };
    if body["locationId"].as_str() != Some(location.as_str()) {
        return error(StatusCode::FORBIDDEN, "The token does not have access to this location.");
    }
    let Some(phone) = body["phone"].as_str().map(str::to_owned) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "phone or email is required");
    };
    let first = body["firstName"].as_str().map(str::to_owned);
    let last = body["lastName"].as_str().map(str::to_owned);
    if let Some(found) = l.contacts.iter_mut().find(|c| c.location_id == location && c.phone == phone) {
        found.first_name = first.or(found.first_name.take());
        found.last_name = last.or(found.last_name.take());
        let id = found.id.clone();
        return axum::Json(json!({"new": false, "contact": {"id": id, "locationId": location}, "traceId": "t"}))
            .into_response();
    }
    let id = format!("contact-{}", l.contacts.len() + 1);
    l.contacts.push(GhlContact {
        id: id.clone(),
        location_id: location.clone(),
        phone,
        first_name: first,
        last_name: last,
    });
    axum::Json(json!({"new": true, "contact": {"id": id, "locationId": location}, "traceId": "t"})).into_response()
}

async fn calendars(
    State(ledger): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut l = lock(&ledger);
    let location = match authorise(&mut l, &headers, "2021-04-15") {
        Ok(location) => location,
        Err(response) => return *response,
    };
    if query.get("locationId") != Some(&location) {
        return error(StatusCode::FORBIDDEN, "The token does not have access to this location.");
    }
    let calendars: Vec<Value> = l
        .calendars
        .get(&location)
        .into_iter()
        .flatten()
        .map(|(id, name)| json!({"id": id, "name": name, "locationId": location}))
        .collect();
    axum::Json(json!({ "calendars": calendars })).into_response()
}

fn appointment_json(a: &GhlAppointment) -> Value {
    json!({"id": a.id, "calendarId": a.calendar_id, "locationId": a.location_id, "contactId": a.contact_id,
           "startTime": a.start, "endTime": a.end, "title": a.title, "appointmentStatus": a.status})
}

async fn create_appointment(State(ledger): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut l = lock(&ledger);
    let location = match authorise(&mut l, &headers, "2021-04-15") {
        Ok(location) => location,
        Err(response) => return *response,
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else { return error(StatusCode::BAD_REQUEST, "Bad Request") };
    let text = |k: &str| body[k].as_str().map(str::to_owned);
    let (Some(calendar_id), Some(contact_id), Some(start)) = (text("calendarId"), text("contactId"), text("startTime"))
    else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "calendarId, contactId and startTime are required");
    };
    if text("locationId").as_deref() != Some(location.as_str()) {
        return error(StatusCode::FORBIDDEN, "The token does not have access to this location.");
    }
    if chrono::DateTime::parse_from_rfc3339(&start).is_err() {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "startTime must be an ISO 8601 date with an offset");
    }
    if !l.contacts.iter().any(|c| c.id == contact_id && c.location_id == location) {
        return error(StatusCode::BAD_REQUEST, "Contact not found");
    }
    let appointment = GhlAppointment {
        id: format!("appt-{}", l.appointments.len() + 1),
        location_id: location,
        calendar_id,
        contact_id,
        start,
        end: text("endTime").unwrap_or_default(),
        status: text("appointmentStatus").unwrap_or_else(|| "new".into()),
        title: text("title").unwrap_or_default(),
    };
    let answer = appointment_json(&appointment);
    l.appointments.push(appointment);
    if l.lose_next_answer > 0 {
        l.lose_next_answer -= 1;
        return error(StatusCode::BAD_GATEWAY, "Bad Gateway");
    }
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

async fn update_appointment(
    State(ledger): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let mut l = lock(&ledger);
    let location = match authorise(&mut l, &headers, "2021-04-15") {
        Ok(location) => location,
        Err(response) => return *response,
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else { return error(StatusCode::BAD_REQUEST, "Bad Request") };
    let Some(found) = l.appointments.iter_mut().find(|a| a.id == id && a.location_id == location) else {
        return error(StatusCode::NOT_FOUND, "Appointment not found");
    };
    if let Some(start) = body["startTime"].as_str() {
        found.start = start.to_owned();
    }
    if let Some(end) = body["endTime"].as_str() {
        found.end = end.to_owned();
    }
    if let Some(status) = body["appointmentStatus"].as_str() {
        found.status = status.to_owned();
    }
    axum::Json(appointment_json(found)).into_response()
}

/// The chooser: the owner picks a location (the scripted one) and is sent back with a
/// code, the `state` unchanged.
async fn choose_location(State(ledger): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    for (key, value) in [("response_type", "code"), ("client_id", CLIENT_ID)] {
        if q.get(key).map(String::as_str) != Some(value) {
            return (StatusCode::BAD_REQUEST, format!("{key} must be {value}")).into_response();
        }
    }
    let (Some(redirect), Some(scope)) = (q.get("redirect_uri"), q.get("scope")) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri and scope are required").into_response();
    };
    if !scope.split(' ').any(|s| s == "calendars/events.write") {
        return (StatusCode::BAD_REQUEST, "scope must include calendars/events.write").into_response();
    }
    let code = {
        let mut l = lock(&ledger);
        let location = l.chosen.clone();
        install_in(&mut l, &location)
    };
    let Ok(mut url) = url::Url::parse(redirect) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri is not a URL").into_response();
    };
    url.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = q.get("state") {
        url.query_pairs_mut().append_pair("state", state);
    }
    axum::response::Redirect::to(url.as_str()).into_response()
}

async fn contact_appointments(State(ledger): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let mut l = lock(&ledger);
    let location = match authorise(&mut l, &headers, "2021-07-28") {
        Ok(location) => location,
        Err(response) => return *response,
    };
    if !l.contacts.iter().any(|c| c.id == id && c.location_id == location) {
        return error(StatusCode::BAD_REQUEST, "Contact not found");
    }
    let events: Vec<Value> = l
        .appointments
        .iter()
        .filter(|a| a.contact_id == id && a.location_id == location)
        .map(appointment_json)
        .collect();
    axum::Json(json!({ "events": events })).into_response()
}
