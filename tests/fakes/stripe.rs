//! `FakeStripe`: Stripe's form-encoded REST API (customers, Checkout Sessions, SetupIntents,
//! PaymentIntents, refunds) and its hosted Checkout page on loopback, with Stripe's
//! idempotency, error bodies and test cards, delivering webhooks signed exactly as Stripe
//! signs them. It keeps no business rules of its own beyond what Stripe does.
//!
//! ```ignore
//! let stripe = FakeStripe::start().await;
//! stripe.deliver_to(&format!("{app}/webhooks/stripe"));
//! // ... the app creates a Checkout Session through the client ...
//! let id = stripe.checkout_sessions()[0].id.clone();
//! let statuses = stripe.pay(&id, "4242424242424242", Delivery::default()).await;
//! ```
//!
//! Events that an API call causes (an off-session charge, a refund) are delivered from a
//! task after the response, as Stripe does; [`FakeStripe::wait_for_deliveries`] waits for
//! them. [`FakeStripe::pay`], [`FakeStripe::refund`] and the hosted page's `Pay` deliver
//! before they return, so a browser reaches the success page after the webhooks.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use ringlypro::vendors::stripe::webhook;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

/// The API key a fake expects (`Authorization: Bearer sk_test_fake`).
pub const SECRET_KEY: &str = "sk_test_fake";
/// The secret the fake signs its webhooks with.
pub const WEBHOOK_SECRET: &str = "whsec_fake_5f3c2a9d81e04b7c96a1d2e3f4a5b6c7";
/// The version stamped on events, as an endpoint pinned to it would see.
const API_VERSION: &str = "2026-06-24.dahlia";
/// Stripe's test cards the fake knows (spaces are ignored).
pub const CARD_OK: &str = "4242424242424242";
pub const CARD_DECLINED: &str = "4000000000000002";
pub const CARD_INSUFFICIENT_FUNDS: &str = "4000000000009995";
pub const CARD_AUTHENTICATION_REQUIRED: &str = "4000002760003184";

/// How the events of a payment are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// `payment_intent.succeeded` before `checkout.session.completed` (Stripe promises no order).
    pub payment_first: bool,
    /// How often each event is delivered (Stripe may deliver one more than once).
    pub copies: usize,
}

impl Default for Delivery {
    fn default() -> Self {
        Self { payment_first: false, copies: 1 }
    }
}

/// How [`FakeStripe::send_event`] signs a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    /// As Stripe does, with the fake's secret, now.
    Valid,
    /// With the fake's secret at unix time `t` (for stale and future timestamps).
    At(i64),
    /// With another secret, now.
    WithSecret(String),
    /// Two `v1`: the first with the given (unknown) secret, the second with the right one,
    /// as while a secret is rolled.
    AlsoWithSecret(String),
    /// Signed correctly, then the body is changed before it is sent.
    Tampered,
    /// No `Stripe-Signature` header at all.
    None,
}

/// A Checkout Session creation as the fake received it (replays are not recorded again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCheckout {
    pub id: String,
    /// The decoded form parameters, bracket keys as sent (`metadata[client_id]`).
    pub params: HashMap<String, String>,
    pub idempotency_key: Option<String>,
}

/// Any API request the fake received, refused ones included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
    /// Form parameters of a POST, query parameters of a GET.
    pub params: HashMap<String, String>,
    /// Whether it carried the right `Authorization: Bearer` key.
    pub authorized: bool,
}

/// One webhook delivery attempt; `status` 0 means nothing answered (or no URL was set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedDelivery {
    pub event_id: String,
    pub kind: String,
    pub status: u16,
}

/// A stored idempotent result: what was asked, and what was answered.
struct Stored {
    fingerprint: (String, Vec<(String, String)>),
    status: u16,
    body: Value,
}

/// A session and the parameters that shape its payment.
struct Session {
    object: Value,
    params: HashMap<String, String>,
    product_name: String,
}

#[derive(Default)]
struct Ledger {
    webhook_url: Option<String>,
    fail_next: Option<(usize, u16)>,
    requests: Vec<RecordedRequest>,
    checkouts: Vec<RecordedCheckout>,
    idempotency: HashMap<String, Stored>,
    customers: HashMap<String, Value>,
    sessions: HashMap<String, Session>,
    setup_intents: HashMap<String, Value>,
    payment_intents: HashMap<String, Value>,
    charges: HashMap<String, Value>,
    events: Vec<Value>,
    deliveries: Vec<RecordedDelivery>,
    counter: u64,
}

impl Ledger {
    /// A fresh id with Stripe's prefix, e.g. `cs_test_fake000007`.
    fn id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}_test_fake{:06}", self.counter)
    }

    fn envelope(&mut self, kind: &str, object: Value, request: Option<(&str, Option<&str>)>) -> Value {
        let id = self.id("evt");
        let (request_id, key) = request.unwrap_or(("", None));
        let request = if request_id.is_empty() {
            json!({ "id": null, "idempotency_key": null })
        } else {
            json!({ "id": request_id, "idempotency_key": key })
        };
        let event = json!({
            "id": id,
            "object": "event",
            "api_version": API_VERSION,
            "created": now_unix(),
            "data": { "object": object },
            "livemode": false,
            "pending_webhooks": 1,
            "request": request,
            "type": kind,
        });
        self.events.push(event.clone());
        event
    }
}

struct Shared {
    base_url: String,
    secret_key: String,
    webhook_secret: String,
    http: reqwest::Client,
    ledger: Mutex<Ledger>,
}

impl Shared {
    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // A test that panicked elsewhere should not turn every later call into a second panic.
        self.ledger.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The fake server. Stops serving when dropped.
pub struct FakeStripe {
    /// `http://127.0.0.1:PORT` (scheme and host, as `StripeClient::new` takes it).
    pub base_url: String,
    pub secret_key: String,
    pub webhook_secret: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FakeStripe {
    /// Starts on `127.0.0.1:0` with [`SECRET_KEY`] and [`WEBHOOK_SECRET`].
    pub async fn start() -> FakeStripe {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake Stripe server");
        let addr: SocketAddr = listener.local_addr().expect("local address of a bound listener");
        let base_url = format!("http://{addr}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client for webhook deliveries");
        let shared = Arc::new(Shared {
            base_url: base_url.clone(),
            secret_key: SECRET_KEY.to_owned(),
            webhook_secret: WEBHOOK_SECRET.to_owned(),
            http,
            ledger: Mutex::new(Ledger::default()),
        });
        let app = Router::new()
            .route("/v1/{*rest}", any(api))
            .route("/pay/{id}", get(hosted_page).post(hosted_pay))
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeStripe {
            base_url,
            secret_key: SECRET_KEY.to_owned(),
            webhook_secret: WEBHOOK_SECRET.to_owned(),
            shared,
            server,
        }
    }

    /// Where webhooks go from now on (`POST` with `Stripe-Signature`).
    pub fn deliver_to(&self, webhook_url: &str) {
        self.shared.ledger().webhook_url = Some(webhook_url.to_owned());
    }

    /// Every Checkout Session created, in order.
    pub fn checkout_sessions(&self) -> Vec<RecordedCheckout> {
        self.shared.ledger().checkouts.clone()
    }

    /// Every API request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.ledger().requests.clone()
    }

    /// Every event built so far (delivered or not), in order.
    pub fn events(&self) -> Vec<Value> {
        self.shared.ledger().events.clone()
    }

    /// Every delivery attempt so far, in order.
    pub fn deliveries(&self) -> Vec<RecordedDelivery> {
        self.shared.ledger().deliveries.clone()
    }

    /// Waits until at least `count` deliveries were attempted; false on timeout.
    pub async fn wait_for_deliveries(&self, count: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.shared.ledger().deliveries.len() < count {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// A stored object by id (`cs_`, `seti_`, `pi_`, `ch_`, `cus_`), as the API would return it.
    pub fn object(&self, id: &str) -> Option<Value> {
        let ledger = self.shared.ledger();
        ledger
            .sessions
            .get(id)
            .map(|s| s.object.clone())
            .or_else(|| ledger.setup_intents.get(id).cloned())
            .or_else(|| ledger.payment_intents.get(id).cloned())
            .or_else(|| ledger.charges.get(id).cloned())
            .or_else(|| ledger.customers.get(id).cloned())
    }

    /// The customer pays the session with `card` ([`CARD_OK`] succeeds, [`CARD_DECLINED`]
    /// is declined): builds the `pi_`/`ch_` (or, in setup mode, `seti_`) objects, marks the
    /// session complete, and delivers `checkout.session.completed` and
    /// `payment_intent.succeeded` in the order of `delivery`, each `delivery.copies` times.
    /// A decline delivers `payment_intent.payment_failed` and leaves the session open. A
    /// session already complete delivers nothing. Returns the delivery statuses in order.
    ///
    /// Panics if the session does not exist: a test that pays an unknown session is wrong.
    pub async fn pay(&self, session_id: &str, card: &str, delivery: Delivery) -> Vec<u16> {
        match settle(&self.shared, session_id, card) {
            Ok(settled) => deliver_all(&self.shared, &settled.in_order(delivery)).await,
            Err(PayError::AlreadyComplete) => Vec::new(),
            Err(PayError::NoSuchSession) => panic!("FakeStripe::pay: no checkout session {session_id}"),
        }
    }

    /// Refunds `amount_cents` of the payment's charge and delivers `charge.refunded` with the
    /// cumulative `amount_refunded`. Panics if the PaymentIntent has no charge.
    pub async fn refund(&self, payment_intent: &str, amount_cents: i64) -> Vec<u16> {
        let event = {
            let mut ledger = self.shared.ledger();
            match refund_charge(&mut ledger, payment_intent, amount_cents, None) {
                Ok((_, event)) => event,
                Err(message) => panic!("FakeStripe::refund: {message}"),
            }
        };
        deliver_all(&self.shared, &[event]).await
    }

    /// An event envelope around `object` (fresh `evt_` id, `created` now), as Stripe builds it.
    pub fn event(&self, kind: &str, object: Value) -> Value {
        self.shared.ledger().envelope(kind, object, None)
    }

    /// Delivers `event` once, signed as `signing` says; returns the HTTP status (0 if
    /// nothing answered or no webhook URL is set).
    pub async fn send_event(&self, event: &Value, signing: Signing) -> u16 {
        send(&self.shared, event, signing).await
    }

    /// The next `n` API requests answer `status` with Stripe's error body, before anything
    /// is executed or stored under their idempotency keys (as a failure at Stripe's edge).
    pub fn set_fail_next(&self, n: usize, status: u16) {
        self.shared.ledger().fail_next = (n > 0).then_some((n, status));
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// An API answer: status and JSON body.
struct Reply {
    status: u16,
    body: Value,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Self { status: 200, body }
    }

    /// Stripe's error body; null fields are left out, as Stripe does.
    fn error(status: u16, kind: &str, code: Option<&str>, message: &str) -> Self {
        let mut error = Map::new();
        error.insert("type".into(), json!(kind));
        if let Some(code) = code {
            error.insert("code".into(), json!(code));
            error.insert(
                "doc_url".into(),
                json!(format!("https://docs.stripe.com/error-codes/{}", code.replace('_', "-"))),
            );
        }
        error.insert("message".into(), json!(message));
        Self { status, body: json!({ "error": error }) }
    }

    fn missing(kind: &str, id: &str) -> Self {
        Self::error(404, "invalid_request_error", Some("resource_missing"), &format!("No such {kind}: '{id}'"))
    }

    fn param_missing(param: &str) -> Self {
        Self::error(
            400,
            "invalid_request_error",
            Some("parameter_missing"),
            &format!("Missing required param: {param}."),
        )
    }

    fn invalid(param: &str, message: &str) -> Self {
        let mut reply = Self::error(400, "invalid_request_error", Some("parameter_invalid"), message);
        reply.body["error"]["param"] = json!(param);
        reply
    }

    /// Whether Stripe keeps this result for its idempotency key: anything the endpoint
    /// executed (successes and card errors), not validation failures.
    fn is_stored(&self) -> bool {
        (200..300).contains(&self.status) || self.status == 402
    }

    fn into_response(self, request_id: &str, replayed: bool) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response =
            (status, [(header::CONTENT_TYPE, "application/json")], self.body.to_string()).into_response();
        if let Ok(value) = HeaderValue::from_str(request_id) {
            response.headers_mut().insert("request-id", value);
        }
        if replayed {
            response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }
}

/// Form or query pairs, decoded, in the order sent.
fn decode_pairs(raw: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(raw).unwrap_or_default()
}

/// `prefix[key]=value` pairs as a map, e.g. `metadata` or `payment_intent_data[metadata]`.
fn bracket_map(params: &HashMap<String, String>, prefix: &str) -> BTreeMap<String, String> {
    let open = format!("{prefix}[");
    params
        .iter()
        .filter_map(|(k, v)| {
            let inner = k.strip_prefix(&open)?.strip_suffix(']')?;
            (!inner.contains('[')).then(|| (inner.to_owned(), v.clone()))
        })
        .collect()
}

fn integer(params: &HashMap<String, String>, key: &str) -> Result<i64, Reply> {
    let raw = params.get(key).ok_or_else(|| Reply::param_missing(key))?;
    raw.parse::<i64>().map_err(|_| Reply::invalid(key, &format!("Invalid integer: {raw}")))
}

fn is_true(params: &HashMap<String, String>, key: &str) -> bool {
    params.get(key).is_some_and(|v| v == "true")
}

async fn api(State(shared): State<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let pairs = if method == Method::GET {
        decode_pairs(uri.query().unwrap_or_default().as_bytes())
    } else {
        decode_pairs(&body)
    };
    let params: HashMap<String, String> = pairs.iter().cloned().collect();
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let authorized = auth == Some(format!("Bearer {}", shared.secret_key).as_str());
    let path = uri.path().to_owned();

    let mut ledger = shared.ledger();
    let request_id = ledger.id("req");
    ledger.requests.push(RecordedRequest {
        method: method.to_string(),
        path: path.clone(),
        idempotency_key: key.clone(),
        params: params.clone(),
        authorized,
    });
    if let Some((left, status)) = ledger.fail_next {
        ledger.fail_next = (left > 1).then_some((left - 1, status));
        let (kind, code) = match status {
            409 => ("invalid_request_error", Some("lock_timeout")),
            429 => ("invalid_request_error", Some("rate_limit")),
            s if s >= 500 => ("api_error", None),
            _ => ("invalid_request_error", None),
        };
        return Reply::error(status, kind, code, "An injected failure of the fake Stripe server.")
            .into_response(&request_id, false);
    }
    if !authorized {
        let message = match auth {
            None => "You did not provide an API key. Provide it in the Authorization header (Bearer auth).".to_owned(),
            Some(_) => "Invalid API Key provided.".to_owned(),
        };
        return Reply::error(401, "invalid_request_error", None, &message).into_response(&request_id, false);
    }
    let mut fingerprint_pairs = pairs.clone();
    fingerprint_pairs.sort();
    let fingerprint = (format!("{method} {path}"), fingerprint_pairs);
    if method == Method::POST
        && let Some(key) = &key
        && let Some(stored) = ledger.idempotency.get(key)
    {
        if stored.fingerprint == fingerprint {
            let reply = Reply { status: stored.status, body: stored.body.clone() };
            return reply.into_response(&request_id, true);
        }
        let message = format!(
            "Keys for idempotent requests can only be used with the same parameters they were first used with. \
             Try using a key other than '{key}' if you meant to execute a different request."
        );
        return Reply::error(400, "idempotency_error", None, &message).into_response(&request_id, false);
    }

    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let context = Call { request_id: &request_id, key: key.as_deref(), base_url: &shared.base_url };
    let (reply, events) = match (&method, segments.as_slice()) {
        (&Method::POST, ["v1", "customers"]) => (create_customer(&mut ledger, &params), Vec::new()),
        (&Method::POST, ["v1", "checkout", "sessions"]) => (create_session(&mut ledger, &params, &context), Vec::new()),
        (&Method::GET, ["v1", "checkout", "sessions", id]) => {
            let found = ledger.sessions.get(*id).map(|s| s.object.clone());
            (found.map_or_else(|| Reply::missing("checkout.session", id), Reply::ok), Vec::new())
        }
        (&Method::GET, ["v1", "setup_intents", id]) => {
            let found = ledger.setup_intents.get(*id).cloned();
            (found.map_or_else(|| Reply::missing("setup_intent", id), Reply::ok), Vec::new())
        }
        (&Method::GET, ["v1", "payment_intents", id]) => {
            let found = ledger.payment_intents.get(*id).cloned();
            (found.map_or_else(|| Reply::missing("payment_intent", id), Reply::ok), Vec::new())
        }
        (&Method::GET, ["v1", "customers", id]) => {
            let found = ledger.customers.get(*id).cloned();
            (found.map_or_else(|| Reply::missing("customer", id), Reply::ok), Vec::new())
        }
        (&Method::POST, ["v1", "payment_intents"]) => create_payment_intent(&mut ledger, &params, &context),
        (&Method::POST, ["v1", "refunds"]) => create_refund(&mut ledger, &params, &context),
        _ => {
            let message = format!("Unrecognized request URL ({method}: {path}).");
            (Reply::error(404, "invalid_request_error", None, &message), Vec::new())
        }
    };
    if method == Method::POST
        && let Some(key) = key
        && reply.is_stored()
    {
        ledger.idempotency.insert(key, Stored { fingerprint, status: reply.status, body: reply.body.clone() });
    }
    drop(ledger);
    if !events.is_empty() {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            deliver_all(&shared, &events).await;
        });
    }
    reply.into_response(&request_id, false)
}

/// What an API handler knows about the request besides its parameters.
struct Call<'a> {
    request_id: &'a str,
    key: Option<&'a str>,
    base_url: &'a str,
}

fn create_customer(ledger: &mut Ledger, params: &HashMap<String, String>) -> Reply {
    let id = ledger.id("cus");
    let customer = json!({
        "id": id,
        "object": "customer",
        "created": now_unix(),
        "email": params.get("email"),
        "name": params.get("name"),
        "phone": params.get("phone"),
        "description": params.get("description"),
        "metadata": bracket_map(params, "metadata"),
        "livemode": false,
    });
    ledger.customers.insert(id, customer.clone());
    Reply::ok(customer)
}

fn create_session(ledger: &mut Ledger, params: &HashMap<String, String>, call: &Call<'_>) -> Reply {
    let Some(mode) = params.get("mode") else {
        return Reply::param_missing("mode");
    };
    if mode != "payment" && mode != "setup" {
        return Reply::invalid("mode", &format!("The fake supports mode payment and setup, not {mode}."));
    }
    let Some(success_url) = params.get("success_url") else {
        return Reply::param_missing("success_url");
    };
    if let Some(customer) = params.get("customer")
        && !ledger.customers.contains_key(customer)
    {
        return Reply::missing("customer", customer);
    }
    let (amount_total, currency, product_name) = if mode == "payment" {
        let amount = match integer(params, "line_items[0][price_data][unit_amount]") {
            Ok(amount) if amount > 0 => amount,
            Ok(_) => return Reply::invalid("line_items[0][price_data][unit_amount]", "The amount must be positive."),
            Err(reply) => return reply,
        };
        let quantity = match integer(params, "line_items[0][quantity]") {
            Ok(quantity) if quantity > 0 => quantity,
            Ok(_) => return Reply::invalid("line_items[0][quantity]", "The quantity must be positive."),
            Err(reply) => return reply,
        };
        let Some(currency) = params.get("line_items[0][price_data][currency]") else {
            return Reply::param_missing("line_items[0][price_data][currency]");
        };
        let Some(name) = params.get("line_items[0][price_data][product_data][name]") else {
            return Reply::param_missing("line_items[0][price_data][product_data][name]");
        };
        (Some(amount * quantity), currency.clone(), name.clone())
    } else {
        let Some(currency) = params.get("currency") else {
            return Reply::param_missing("currency");
        };
        (None, currency.clone(), "Card on file".to_owned())
    };
    let id = ledger.id("cs");
    let now = now_unix();
    let session = json!({
        "id": id,
        "object": "checkout.session",
        "amount_subtotal": amount_total,
        "amount_total": amount_total,
        "cancel_url": params.get("cancel_url"),
        "client_reference_id": params.get("client_reference_id"),
        "created": now,
        "currency": currency,
        "customer": params.get("customer"),
        "customer_email": params.get("customer_email"),
        "expires_at": now + 24 * 3600,
        "livemode": false,
        "metadata": bracket_map(params, "metadata"),
        "mode": mode,
        "payment_intent": null,
        "payment_status": if mode == "payment" { "unpaid" } else { "no_payment_required" },
        "setup_intent": null,
        "status": "open",
        "success_url": success_url,
        "url": format!("{}/pay/{id}", call.base_url),
    });
    ledger.checkouts.push(RecordedCheckout {
        id: id.clone(),
        params: params.clone(),
        idempotency_key: call.key.map(str::to_owned),
    });
    ledger.sessions.insert(id, Session { object: session.clone(), params: params.clone(), product_name });
    Reply::ok(session)
}

/// What a test card does.
struct CardBehaviour {
    /// The test PaymentMethod Stripe documents for this card.
    payment_method: &'static str,
    /// Declined even with the customer present: (code, decline_code, message).
    declined: Option<(&'static str, &'static str, &'static str)>,
}

fn card_behaviour(number: &str) -> CardBehaviour {
    let digits: String = number.chars().filter(|c| !c.is_whitespace()).collect();
    match digits.as_str() {
        CARD_OK => CardBehaviour { payment_method: "pm_card_visa", declined: None },
        // Authentication is completed on the hosted page; off-session it is required again.
        CARD_AUTHENTICATION_REQUIRED => {
            CardBehaviour { payment_method: "pm_card_authenticationRequired", declined: None }
        }
        CARD_DECLINED => CardBehaviour {
            payment_method: "pm_card_chargeDeclined",
            declined: Some(("card_declined", "generic_decline", "Your card was declined.")),
        },
        CARD_INSUFFICIENT_FUNDS => CardBehaviour {
            payment_method: "pm_card_chargeDeclinedInsufficientFunds",
            declined: Some(("card_declined", "insufficient_funds", "Your card has insufficient funds.")),
        },
        _ => CardBehaviour {
            payment_method: "pm_card_invalid",
            declined: Some(("incorrect_number", "incorrect_number", "Your card number is incorrect.")),
        },
    }
}

/// What charging a saved PaymentMethod off-session does: Ok, or a card error.
fn off_session_outcome(
    payment_method: &str,
    off_session: bool,
) -> Option<Result<(), (&'static str, &'static str, &'static str)>> {
    match payment_method {
        "pm_card_visa" => Some(Ok(())),
        "pm_card_authenticationRequired" if off_session => Some(Err((
            "authentication_required",
            "authentication_required",
            "Your card was declined. This transaction requires authentication.",
        ))),
        "pm_card_authenticationRequired" => Some(Ok(())),
        "pm_card_chargeDeclined" => Some(Err(("card_declined", "generic_decline", "Your card was declined."))),
        "pm_card_chargeDeclinedInsufficientFunds" => {
            Some(Err(("card_declined", "insufficient_funds", "Your card has insufficient funds.")))
        }
        _ => None,
    }
}

/// Builds a PaymentIntent (and its charge when it succeeds); returns the PI object.
#[allow(clippy::too_many_arguments)]
fn new_payment_intent(
    ledger: &mut Ledger,
    amount: i64,
    currency: &str,
    customer: Option<&str>,
    payment_method: &str,
    metadata: &BTreeMap<String, String>,
    outcome: Result<(), (&str, &str, &str)>,
    extra: Map<String, Value>,
) -> Value {
    let id = ledger.id("pi");
    let now = now_unix();
    let (status, received, charge, error) = match outcome {
        Ok(()) => {
            let charge_id = ledger.id("ch");
            let charge = json!({
                "id": charge_id,
                "object": "charge",
                "amount": amount,
                "amount_captured": amount,
                "amount_refunded": 0,
                "captured": true,
                "created": now,
                "currency": currency,
                "customer": customer,
                "livemode": false,
                "metadata": metadata,
                "paid": true,
                "payment_intent": id,
                "payment_method": payment_method,
                "refunded": false,
                "status": "succeeded",
            });
            ledger.charges.insert(charge_id.clone(), charge);
            ("succeeded", amount, Some(charge_id), Value::Null)
        }
        Err((code, decline_code, message)) => (
            "requires_payment_method",
            0,
            None,
            json!({
                "type": "card_error",
                "code": code,
                "decline_code": decline_code,
                "message": message,
                "doc_url": format!("https://docs.stripe.com/error-codes/{}", code.replace('_', "-")),
                "payment_method": { "id": payment_method, "object": "payment_method" },
            }),
        ),
    };
    let mut pi = json!({
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": received,
        "client_secret": format!("{id}_secret_fake"),
        "created": now,
        "currency": currency,
        "customer": customer,
        "last_payment_error": error,
        "latest_charge": charge,
        "livemode": false,
        "metadata": metadata,
        "payment_method": if status == "succeeded" { json!(payment_method) } else { Value::Null },
        "status": status,
    });
    if let Some(object) = pi.as_object_mut() {
        object.extend(extra);
    }
    ledger.payment_intents.insert(id, pi.clone());
    pi
}

fn create_payment_intent(
    ledger: &mut Ledger,
    params: &HashMap<String, String>,
    call: &Call<'_>,
) -> (Reply, Vec<Value>) {
    let amount = match integer(params, "amount") {
        Ok(amount) if amount > 0 => amount,
        Ok(_) => return (Reply::invalid("amount", "The amount must be positive."), Vec::new()),
        Err(reply) => return (reply, Vec::new()),
    };
    let Some(currency) = params.get("currency") else {
        return (Reply::param_missing("currency"), Vec::new());
    };
    let customer = params.get("customer").map(String::as_str);
    if let Some(customer) = customer
        && !ledger.customers.contains_key(customer)
    {
        return (Reply::missing("customer", customer), Vec::new());
    }
    let off_session = is_true(params, "off_session");
    let confirm = is_true(params, "confirm");
    if off_session && !confirm {
        return (Reply::invalid("off_session", "You can only pass off_session when confirm=true."), Vec::new());
    }
    let metadata = bracket_map(params, "metadata");
    let request = Some((call.request_id, call.key));
    let Some(payment_method) = params.get("payment_method") else {
        // Not confirmable yet: Stripe creates it waiting for a payment method.
        let id = ledger.id("pi");
        let pi = json!({
            "id": id, "object": "payment_intent", "amount": amount, "amount_received": 0,
            "currency": currency, "customer": customer, "metadata": metadata, "status": "requires_payment_method",
            "last_payment_error": null, "latest_charge": null, "payment_method": null, "livemode": false,
        });
        ledger.payment_intents.insert(id, pi.clone());
        return (Reply::ok(pi), Vec::new());
    };
    let Some(outcome) = off_session_outcome(payment_method, off_session) else {
        return (Reply::missing("PaymentMethod", payment_method), Vec::new());
    };
    if !confirm {
        let id = ledger.id("pi");
        let pi = json!({
            "id": id, "object": "payment_intent", "amount": amount, "amount_received": 0,
            "currency": currency, "customer": customer, "metadata": metadata, "status": "requires_confirmation",
            "last_payment_error": null, "latest_charge": null, "payment_method": payment_method, "livemode": false,
        });
        ledger.payment_intents.insert(id, pi.clone());
        return (Reply::ok(pi), Vec::new());
    }
    let pi = new_payment_intent(ledger, amount, currency, customer, payment_method, &metadata, outcome, Map::new());
    match outcome {
        Ok(()) => {
            let event = ledger.envelope("payment_intent.succeeded", pi.clone(), request);
            (Reply::ok(pi), vec![event])
        }
        Err((code, decline_code, message)) => {
            let event = ledger.envelope("payment_intent.payment_failed", pi.clone(), request);
            let mut reply = Reply::error(402, "card_error", Some(code), message);
            reply.body["error"]["decline_code"] = json!(decline_code);
            reply.body["error"]["payment_intent"] = pi;
            reply.body["error"]["payment_method"] = json!({ "id": payment_method, "object": "payment_method" });
            (reply, vec![event])
        }
    }
}

fn create_refund(ledger: &mut Ledger, params: &HashMap<String, String>, call: &Call<'_>) -> (Reply, Vec<Value>) {
    let payment_intent = match (params.get("payment_intent"), params.get("charge")) {
        (Some(pi), _) => pi.clone(),
        (None, Some(charge)) => match ledger.charges.get(charge) {
            Some(charge) => charge["payment_intent"].as_str().unwrap_or_default().to_owned(),
            None => return (Reply::missing("charge", charge), Vec::new()),
        },
        (None, None) => return (Reply::param_missing("payment_intent"), Vec::new()),
    };
    let amount = match params.get("amount") {
        None => None,
        Some(_) => match integer(params, "amount") {
            Ok(amount) if amount > 0 => Some(amount),
            Ok(_) => return (Reply::invalid("amount", "The amount must be positive."), Vec::new()),
            Err(reply) => return (reply, Vec::new()),
        },
    };
    let amount = match amount {
        Some(amount) => amount,
        None => {
            let charge = ledger.payment_intents.get(&payment_intent).and_then(|pi| pi["latest_charge"].as_str());
            let charge = charge.and_then(|id| ledger.charges.get(id));
            match charge {
                Some(c) => c["amount"].as_i64().unwrap_or(0) - c["amount_refunded"].as_i64().unwrap_or(0),
                None => return (Reply::missing("payment_intent", &payment_intent), Vec::new()),
            }
        }
    };
    match refund_charge(ledger, &payment_intent, amount, Some((call.request_id, call.key))) {
        Ok((refund, event)) => (Reply::ok(refund), vec![event]),
        Err(message) => {
            (Reply::error(400, "invalid_request_error", Some("charge_already_refunded"), &message), Vec::new())
        }
    }
}

/// Refunds part of the payment's charge; returns the refund object and the
/// `charge.refunded` event (data.object is the Charge, `amount_refunded` cumulative).
fn refund_charge(
    ledger: &mut Ledger,
    payment_intent: &str,
    amount: i64,
    request: Option<(&str, Option<&str>)>,
) -> Result<(Value, Value), String> {
    let charge_id = ledger
        .payment_intents
        .get(payment_intent)
        .and_then(|pi| pi["latest_charge"].as_str().map(str::to_owned))
        .ok_or_else(|| format!("no charge for PaymentIntent {payment_intent}"))?;
    let refund_id = ledger.id("re");
    let charge = ledger.charges.get_mut(&charge_id).ok_or_else(|| format!("no charge {charge_id}"))?;
    let total = charge["amount"].as_i64().unwrap_or(0);
    let before = charge["amount_refunded"].as_i64().unwrap_or(0);
    if amount <= 0 || before + amount > total {
        return Err(format!(
            "Refund amount ({amount}) is greater than unrefunded amount on charge ({})",
            total - before
        ));
    }
    let after = before + amount;
    charge["amount_refunded"] = json!(after);
    charge["refunded"] = json!(after == total);
    let charge = charge.clone();
    let refund = json!({
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "charge": charge_id,
        "created": now_unix(),
        "currency": charge["currency"],
        "metadata": {},
        "payment_intent": payment_intent,
        "reason": null,
        "status": "succeeded",
    });
    let mut event = ledger.envelope("charge.refunded", charge, request);
    event["data"]["previous_attributes"] = json!({ "amount_refunded": before, "refunded": false });
    if let Some(last) = ledger.events.last_mut() {
        *last = event.clone();
    }
    Ok((refund, event))
}

enum PayError {
    NoSuchSession,
    AlreadyComplete,
}

/// The events a payment produced, before they are ordered for delivery.
struct Settled {
    checkout: Option<Value>,
    payment: Option<Value>,
    /// The decline message, when the card was declined.
    declined: Option<String>,
    success_url: String,
}

impl Settled {
    fn in_order(&self, delivery: Delivery) -> Vec<Value> {
        let round: Vec<&Value> = if delivery.payment_first {
            [&self.payment, &self.checkout].into_iter().flatten().collect()
        } else {
            [&self.checkout, &self.payment].into_iter().flatten().collect()
        };
        (0..delivery.copies).flat_map(|_| round.iter().map(|e| (*e).clone())).collect()
    }
}

/// Pays a session with `card`, updating the ledger; delivers nothing itself.
fn settle(shared: &Shared, session_id: &str, card: &str) -> Result<Settled, PayError> {
    let mut ledger = shared.ledger();
    let (object, params) = match ledger.sessions.get(session_id) {
        None => return Err(PayError::NoSuchSession),
        Some(s) if s.object["status"] != "open" => return Err(PayError::AlreadyComplete),
        Some(s) => (s.object.clone(), s.params.clone()),
    };
    let behaviour = card_behaviour(card);
    let mode = object["mode"].as_str().unwrap_or("payment").to_owned();
    let success_url = object["success_url"].as_str().unwrap_or_default().replace("{CHECKOUT_SESSION_ID}", session_id);
    let mut customer = object["customer"].as_str().map(str::to_owned);
    let saves_card = mode == "setup" || params.contains_key("payment_intent_data[setup_future_usage]");
    if customer.is_none() && saves_card && behaviour.declined.is_none() {
        // Checkout creates a customer to keep a saved card on.
        let id = ledger.id("cus");
        let created = json!({
            "id": id, "object": "customer", "created": now_unix(), "email": object["customer_email"],
            "name": null, "metadata": {}, "livemode": false,
        });
        ledger.customers.insert(id.clone(), created);
        customer = Some(id);
    }

    if mode == "setup" {
        let seti_id = ledger.id("seti");
        let seti = json!({
            "id": seti_id,
            "object": "setup_intent",
            "created": now_unix(),
            "customer": customer,
            "livemode": false,
            "metadata": bracket_map(&params, "setup_intent_data[metadata]"),
            "payment_method": behaviour.payment_method,
            "status": "succeeded",
            "usage": "off_session",
        });
        ledger.setup_intents.insert(seti_id.clone(), seti);
        let session = complete_session(&mut ledger, session_id, customer.as_deref(), None, Some(&seti_id));
        let checkout = ledger.envelope("checkout.session.completed", session, None);
        return Ok(Settled { checkout: Some(checkout), payment: None, declined: None, success_url });
    }

    let amount = object["amount_total"].as_i64().unwrap_or(0);
    let currency = object["currency"].as_str().unwrap_or("usd").to_owned();
    let metadata = bracket_map(&params, "payment_intent_data[metadata]");
    let mut extra = Map::new();
    if let Some(usage) = params.get("payment_intent_data[setup_future_usage]") {
        extra.insert("setup_future_usage".into(), json!(usage));
    }
    let outcome = match behaviour.declined {
        None => Ok(()),
        Some(error) => Err(error),
    };
    let pi = new_payment_intent(
        &mut ledger,
        amount,
        &currency,
        customer.as_deref(),
        behaviour.payment_method,
        &metadata,
        outcome,
        extra,
    );
    match behaviour.declined {
        Some((_, _, message)) => {
            let failed = ledger.envelope("payment_intent.payment_failed", pi, None);
            Ok(Settled { checkout: None, payment: Some(failed), declined: Some(message.to_owned()), success_url })
        }
        None => {
            let pi_id = pi["id"].as_str().unwrap_or_default().to_owned();
            let session = complete_session(&mut ledger, session_id, customer.as_deref(), Some(&pi_id), None);
            let checkout = ledger.envelope("checkout.session.completed", session, None);
            let payment = ledger.envelope("payment_intent.succeeded", pi, None);
            Ok(Settled { checkout: Some(checkout), payment: Some(payment), declined: None, success_url })
        }
    }
}

fn complete_session(
    ledger: &mut Ledger,
    session_id: &str,
    customer: Option<&str>,
    payment_intent: Option<&str>,
    setup_intent: Option<&str>,
) -> Value {
    let Some(session) = ledger.sessions.get_mut(session_id) else {
        return Value::Null;
    };
    let object = &mut session.object;
    object["status"] = json!("complete");
    if payment_intent.is_some() {
        object["payment_status"] = json!("paid");
    }
    object["customer"] = json!(customer);
    object["payment_intent"] = json!(payment_intent);
    object["setup_intent"] = json!(setup_intent);
    object["url"] = Value::Null;
    object.clone()
}

/// Delivers `events` one after the other; returns their statuses.
async fn deliver_all(shared: &Shared, events: &[Value]) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(events.len());
    for event in events {
        statuses.push(send(shared, event, Signing::Valid).await);
    }
    statuses
}

async fn send(shared: &Shared, event: &Value, signing: Signing) -> u16 {
    let url = shared.ledger().webhook_url.clone();
    let body = event.to_string();
    let now = now_unix();
    let secret = shared.webhook_secret.as_str();
    let (header, sent) = match signing {
        Signing::Valid => (Some(webhook::sign(body.as_bytes(), secret, now)), body),
        Signing::At(t) => (Some(webhook::sign(body.as_bytes(), secret, t)), body),
        Signing::WithSecret(other) => (Some(webhook::sign(body.as_bytes(), &other, now)), body),
        Signing::AlsoWithSecret(other) => {
            let unknown = webhook::sign(body.as_bytes(), &other, now);
            let right = webhook::sign(body.as_bytes(), secret, now);
            let second = right.split_once(",v1=").map(|(_, v1)| v1.to_owned()).unwrap_or_default();
            (Some(format!("{unknown},v1={second}")), body)
        }
        Signing::Tampered => {
            let header = webhook::sign(body.as_bytes(), secret, now);
            let mut changed = event.clone();
            changed["tampered"] = json!(true);
            (Some(header), changed.to_string())
        }
        Signing::None => (None, body),
    };
    let status = match url {
        None => 0,
        Some(url) => {
            let mut request = shared
                .http
                .post(url)
                .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
                .header(header::USER_AGENT, "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
                .body(sent);
            if let Some(header) = header {
                request = request.header("Stripe-Signature", header);
            }
            request.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
        }
    };
    shared.ledger().deliveries.push(RecordedDelivery {
        event_id: event["id"].as_str().unwrap_or_default().to_owned(),
        kind: event["type"].as_str().unwrap_or_default().to_owned(),
        status,
    });
    status
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn page(title: &str, content: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><main>{content}</main></body></html>",
        title = escape(title),
    )
}

fn checkout_form(session_id: &str, session: &Session, error: Option<&str>) -> String {
    let object = &session.object;
    let what = match object["amount_total"].as_i64() {
        Some(cents) => format!(
            "<p id=\"amount\">Pay <strong>${}.{:02}</strong> for {}</p>",
            cents / 100,
            cents % 100,
            escape(&session.product_name)
        ),
        None => "<p id=\"amount\">Save a card for future payments. You will not be charged now.</p>".to_owned(),
    };
    let error = error.map(|e| format!("<p id=\"error\" role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    let cancel = object["cancel_url"].as_str().unwrap_or_default();
    page(
        "Checkout",
        &format!(
            "<h1>Checkout</h1>{what}{error}\
             <form method=\"post\" action=\"/pay/{id}\">\
             <label for=\"card\">Card number</label> \
             <input id=\"card\" name=\"card\" value=\"{CARD_OK}\" inputmode=\"numeric\" autocomplete=\"cc-number\"> \
             <button id=\"pay\" type=\"submit\">Pay</button></form>\
             <p><a id=\"cancel\" href=\"{cancel}\">Cancel</a></p>",
            id = escape(session_id),
            cancel = escape(cancel),
        ),
    )
}

async fn hosted_page(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let ledger = shared.ledger();
    match ledger.sessions.get(&id) {
        None => {
            (StatusCode::NOT_FOUND, Html(page("Not found", "<h1>This checkout does not exist.</h1>"))).into_response()
        }
        Some(session) if session.object["status"] != "open" => {
            Html(page("Checkout", "<h1>This checkout is complete.</h1>")).into_response()
        }
        Some(session) => Html(checkout_form(&id, session, None)).into_response(),
    }
}

async fn hosted_pay(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> Response {
    let form: HashMap<String, String> = decode_pairs(&body).into_iter().collect();
    let card = form.get("card").map(String::as_str).unwrap_or(CARD_OK);
    match settle(&shared, &id, card) {
        Err(PayError::NoSuchSession) => {
            (StatusCode::NOT_FOUND, Html(page("Not found", "<h1>This checkout does not exist.</h1>"))).into_response()
        }
        Err(PayError::AlreadyComplete) => Html(page("Checkout", "<h1>This checkout is complete.</h1>")).into_response(),
        Ok(settled) => {
            deliver_all(&shared, &settled.in_order(Delivery::default())).await;
            match settled.declined {
                Some(message) => {
                    let ledger = shared.ledger();
                    let html = match ledger.sessions.get(&id) {
                        Some(session) => checkout_form(&id, session, Some(&message)),
                        None => page("Checkout", &escape(&message)),
                    };
                    (StatusCode::PAYMENT_REQUIRED, Html(html)).into_response()
                }
                None => (StatusCode::SEE_OTHER, [(header::LOCATION, settled.success_url)]).into_response(),
            }
        }
    }
}
