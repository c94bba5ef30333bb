//! `FakeTwilio`: Twilio's REST API on loopback (Messages, AvailablePhoneNumbers,
//! IncomingPhoneNumbers, Calls), checking HTTP Basic and answering Twilio's JSON and error
//! bodies; tests script failures and read what it received. [`post_signed`] sends webhooks
//! to our server signed as Twilio signs them.
//!
//! ```ignore
//! let twilio = FakeTwilio::start().await;
//! twilio.fail_next_sends(2);               // two 500s, then success
//! twilio.refuse("+15550009999", 21610);    // that recipient opted out at the carrier
//! // ... the app sends through TWILIO_API_BASE = twilio.base_url ...
//! let sent = twilio.messages();
//! ```

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine as _;
use ringlypro::telephony::signature;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "fake-twilio-auth-token";

/// A text the fake accepted or refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentText {
    pub sid: Option<String>,
    pub to: String,
    pub from: String,
    pub body: String,
    pub status_callback: Option<String>,
    /// The HTTP status it was answered with.
    pub answered: u16,
}

/// An update of a live call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallUpdate {
    pub call_sid: String,
    pub twiml: Option<String>,
    pub status: Option<String>,
}

#[derive(Default)]
struct Ledger {
    texts: Vec<SentText>,
    fail_next_sends: usize,
    fail_next_searches: usize,
    refused: HashMap<String, u32>,
    offered: Vec<String>,
    taken: HashSet<String>,
    /// Numbers bought here: no longer offered, and not for sale again.
    owned: HashSet<String>,
    bought: Vec<(String, HashMap<String, String>)>,
    released: Vec<String>,
    call_updates: Vec<CallUpdate>,
    unauthorized: usize,
    sequence: u64,
}

struct Shared {
    ledger: Mutex<Ledger>,
}

/// The fake server. Stops serving when dropped.
pub struct FakeTwilio {
    pub base_url: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeTwilio {
    pub async fn start() -> FakeTwilio {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake Twilio server");
        let addr: SocketAddr = listener.local_addr().expect("local address of a bound listener");
        let shared = Arc::new(Shared { ledger: Mutex::new(Ledger::default()) });
        let app = Router::new().route("/2010-04-01/Accounts/{account}/{*rest}", any(api)).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeTwilio { base_url: format!("http://{addr}"), shared, server }
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.shared.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The app's environment to send through this fake.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TWILIO_API_BASE", self.base_url.clone()),
            ("TWILIO_ACCOUNT_SID", ACCOUNT_SID.to_owned()),
            ("TWILIO_AUTH_TOKEN", AUTH_TOKEN.to_owned()),
        ]
    }

    /// The next `n` sends are answered 500.
    pub fn fail_next_sends(&self, n: usize) {
        self.ledger().fail_next_sends = n;
    }

    /// The next `n` number searches are answered 503 (Twilio having an outage).
    pub fn fail_next_searches(&self, n: usize) {
        self.ledger().fail_next_searches = n;
    }

    /// Sends to `to` are refused with HTTP 400 and Twilio error `code` (21610, 21211).
    pub fn refuse(&self, to: &str, code: u32) {
        self.ledger().refused.insert(to.to_owned(), code);
    }

    /// Numbers the search offers.
    pub fn offer_numbers(&self, numbers: &[&str]) {
        self.ledger().offered = numbers.iter().map(|n| n.to_string()).collect();
    }

    /// Buying `number` fails with 21422 (someone took it since the search).
    pub fn take(&self, number: &str) {
        self.ledger().taken.insert(number.to_owned());
    }

    /// Every text asked for, refused ones included, in order.
    pub fn all_texts(&self) -> Vec<SentText> {
        self.ledger().texts.clone()
    }

    /// The texts accepted (201), in order.
    pub fn messages(&self) -> Vec<SentText> {
        self.ledger().texts.iter().filter(|t| t.answered == 201).cloned().collect()
    }

    /// Numbers bought, with the form they were bought with.
    pub fn bought(&self) -> Vec<(String, HashMap<String, String>)> {
        self.ledger().bought.clone()
    }

    pub fn released(&self) -> Vec<String> {
        self.ledger().released.clone()
    }

    pub fn call_updates(&self) -> Vec<CallUpdate> {
        self.ledger().call_updates.clone()
    }

    /// Requests refused for a missing or wrong HTTP Basic.
    pub fn unauthorized(&self) -> usize {
        self.ledger().unauthorized
    }

    /// Waits until `n` texts were accepted (or panics after 20 s).
    pub async fn wait_for_messages(&self, n: usize) -> Vec<SentText> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let sent = self.messages();
            if sent.len() >= n {
                return sent;
            }
            assert!(tokio::time::Instant::now() < deadline, "only {} of {n} texts arrived: {sent:?}", sent.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `n` send attempts arrived, refused ones included.
    pub async fn wait_for_attempts(&self, n: usize) -> Vec<SentText> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let sent = self.all_texts();
            if sent.len() >= n {
                return sent;
            }
            assert!(tokio::time::Instant::now() < deadline, "only {} of {n} attempts arrived: {sent:?}", sent.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({
        "code": code, "message": message, "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, axum::Json(body)).into_response()
}

fn authorized(headers: &HeaderMap, account: &str) -> bool {
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"));
    account == ACCOUNT_SID
        && headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Basic {expected}"))
}

async fn api(
    State(shared): State<Arc<Shared>>,
    Path((account, rest)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut ledger = shared.ledger.lock().unwrap_or_else(|p| p.into_inner());
    if !authorized(&headers, &account) {
        ledger.unauthorized += 1;
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let query: HashMap<String, String> = serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    let parts: Vec<&str> = rest.split('/').collect();
    ledger.sequence += 1;
    let seq = ledger.sequence;
    match (method, parts.as_slice()) {
        (Method::POST, ["Messages.json"]) => send(&mut ledger, &account, form, seq),
        (Method::GET, ["AvailablePhoneNumbers", _, "Local.json"]) if ledger.fail_next_searches > 0 => {
            ledger.fail_next_searches -= 1;
            error(StatusCode::SERVICE_UNAVAILABLE, 20500, "Service Unavailable")
        }
        (Method::GET, ["AvailablePhoneNumbers", iso, "Local.json"]) => {
            let numbers: Vec<Value> = ledger
                .offered
                .iter()
                .filter(|n| !ledger.owned.contains(*n))
                .filter(|n| query.get("AreaCode").is_none_or(|area| n.starts_with(&format!("+1{area}"))))
                .map(|n| {
                    json!({ "phone_number": n, "friendly_name": n, "iso_country": iso,
                                  "capabilities": { "voice": true, "SMS": true, "MMS": true } })
                })
                .collect();
            axum::Json(json!({ "available_phone_numbers": numbers, "uri": uri.path() })).into_response()
        }
        (Method::POST, ["IncomingPhoneNumbers.json"]) => {
            let number = form.get("PhoneNumber").cloned().unwrap_or_default();
            if ledger.taken.contains(&number) || !ledger.owned.insert(number.clone()) {
                return error(StatusCode::BAD_REQUEST, 21422, "PhoneNumber is not available");
            }
            let sid = format!("PN{seq:032x}");
            ledger.bought.push((number.clone(), form));
            (StatusCode::CREATED, axum::Json(json!({ "sid": sid, "account_sid": account, "phone_number": number })))
                .into_response()
        }
        (Method::DELETE, ["IncomingPhoneNumbers", file]) => {
            ledger.released.push(file.trim_end_matches(".json").to_owned());
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::POST, ["Calls", file]) => {
            let call_sid = file.trim_end_matches(".json").to_owned();
            ledger.call_updates.push(CallUpdate {
                call_sid: call_sid.clone(),
                twiml: form.get("Twiml").cloned(),
                status: form.get("Status").cloned(),
            });
            axum::Json(json!({ "sid": call_sid, "status": form.get("Status").map_or("in-progress", |s| s) }))
                .into_response()
        }
        _ => error(StatusCode::NOT_FOUND, 20404, "The requested resource was not found"),
    }
}

fn send(ledger: &mut Ledger, account: &str, form: HashMap<String, String>, seq: u64) -> Response {
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let mut text = SentText {
        sid: None,
        to: field("To"),
        from: field("From"),
        body: field("Body"),
        status_callback: form.get("StatusCallback").cloned(),
        answered: 201,
    };
    let refusal = if ledger.fail_next_sends > 0 {
        ledger.fail_next_sends -= 1;
        Some(error(StatusCode::INTERNAL_SERVER_ERROR, 20500, "Internal Server Error"))
    } else if text.to.is_empty() {
        Some(error(StatusCode::BAD_REQUEST, 21604, "A 'To' phone number is required."))
    } else if let Some(code) = ledger.refused.get(&text.to) {
        let message = match code {
            21610 => "Attempt to send to unsubscribed recipient",
            21211 => "The 'To' number is not a valid phone number.",
            _ => "Refused",
        };
        Some(error(StatusCode::BAD_REQUEST, *code, message))
    } else {
        None
    };
    if let Some(response) = refusal {
        text.answered = response.status().as_u16();
        ledger.texts.push(text);
        return response;
    }
    let sid = format!("SM{seq:032x}");
    text.sid = Some(sid.clone());
    let body = json!({
        "sid": sid, "account_sid": account, "to": text.to, "from": text.from, "body": text.body,
        "status": "queued", "num_segments": "1", "direction": "outbound-api", "error_code": null,
        "error_message": null, "uri": format!("/2010-04-01/Accounts/{account}/Messages/{sid}.json"),
    });
    ledger.texts.push(text);
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

/// POSTs a webhook to `{base_url}{path}` signed with `token` as Twilio signs it.
pub async fn post_signed(base_url: &str, path: &str, token: &str, params: &[(&str, &str)]) -> reqwest::Response {
    let url = format!("{base_url}{path}");
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    reqwest::Client::new()
        .post(&url)
        .header("X-Twilio-Signature", signature::sign(token, &url, &params))
        .form(&params)
        .send()
        .await
        .expect("the app answers")
}

/// A status callback for text `sid`, as Twilio sends it.
pub async fn text_status(base_url: &str, sid: &str, status: &str, error_code: Option<&str>) -> reqwest::Response {
    let mut params = vec![
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("MessageStatus", status),
        ("SmsStatus", status),
        ("AccountSid", ACCOUNT_SID),
        ("ApiVersion", "2010-04-01"),
    ];
    if let Some(code) = error_code {
        params.push(("ErrorCode", code));
    }
    post_signed(base_url, "/twilio/sms-status", AUTH_TOKEN, &params).await
}

/// An inbound text from `from` to `to`, as Twilio delivers it.
pub async fn text_in(base_url: &str, sid: &str, from: &str, to: &str, body: &str) -> reqwest::Response {
    let params = [
        ("MessageSid", sid),
        ("SmsMessageSid", sid),
        ("SmsSid", sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", from),
        ("To", to),
        ("Body", body),
        ("NumMedia", "0"),
        ("NumSegments", "1"),
        ("SmsStatus", "received"),
        ("ApiVersion", "2010-04-01"),
    ];
    post_signed(base_url, "/twilio/sms", AUTH_TOKEN, &params).await
}
