//! `StripeClient`: the few REST calls the billing flows make (customers, Checkout Sessions,
//! SetupIntents, off-session PaymentIntents). Owns the form encoding with bracket keys, the
//! retries under the caller's idempotency key and the mapping of Stripe's error bodies onto
//! [`StripeError`]; it never decides what a payment means for an account.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

const VENDOR: &str = "stripe";

/// Stripe's API host; `/v1/...` paths are appended to it.
pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";
/// The API version every request pins, so a change of the account's default version in the
/// dashboard cannot change the shape of responses under running code.
pub const API_VERSION: &str = "2026-06-24.dahlia";
/// All amounts are US cents.
const CURRENCY: &str = "usd";

/// Longest a single attempt may take, connecting included.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry delay; doubled each retry (stripe-python's schedule).
const DEFAULT_RETRY_BASE: Duration = Duration::from_millis(500);
/// No retry waits longer than this, whatever the schedule says.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// Retries after the first attempt, as stripe-python's `max_network_retries`.
const MAX_RETRIES: u32 = 2;
/// A `Retry-After` longer than this is ignored: the caller is better served by an error now.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// How much of an unreadable body makes it into an error message.
const EXCERPT_CHARS: usize = 300;

/// Why a Stripe call failed, in the cases a caller handles differently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeError {
    /// HTTP 402 `card_error`: declined, `authentication_required`, `insufficient_funds`…
    /// Retrying with the same card will not help; the customer has to act.
    #[error("card error {code}: {message}")]
    Card { code: String, decline_code: Option<String>, message: String, payment_intent: Option<String> },
    /// Any other 4xx: the request itself is wrong (bad parameter, unknown object, bad key,
    /// idempotency conflict). Never retried.
    #[error("Stripe rejected the request (HTTP {status}, {kind}): {message}")]
    Rejected { status: u16, kind: String, message: String },
    /// Network errors, 409, 429 and 5xx once the retries are spent: the same call with the
    /// same idempotency key may succeed later.
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
}

/// A customer to create; `client_id` goes into its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCustomer<'a> {
    pub email: Option<&'a str>,
    pub name: &'a str,
    pub client_id: i64,
}

/// What a Checkout Session is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutMode {
    /// A one-off payment of `amount_cents`; with `save_card` the card is kept for
    /// off-session charges later.
    Payment { amount_cents: i64, save_card: bool },
    /// Saves a card without charging it (needs `customer`).
    Setup,
}

/// A hosted Checkout page to open for the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest<'a> {
    pub mode: CheckoutMode,
    pub client_id: i64,
    /// An existing `cus_…`; takes precedence over `customer_email`.
    pub customer: Option<&'a str>,
    pub customer_email: Option<&'a str>,
    /// May contain the literal `{CHECKOUT_SESSION_ID}`, which Stripe fills in.
    pub success_url: &'a str,
    pub cancel_url: &'a str,
    /// The line item's name on the payment page.
    pub product_name: &'a str,
    pub idempotency_key: &'a str,
}

/// A Checkout Session as Stripe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    pub id: String,
    /// Where to send the customer's browser (`None` once the session is complete or expired).
    pub url: Option<String>,
    /// `open`, `complete` or `expired`.
    pub status: String,
    /// `paid`, `unpaid` or `no_payment_required`.
    pub payment_status: String,
    pub payment_intent: Option<String>,
    pub setup_intent: Option<String>,
    pub customer: Option<String>,
    pub amount_total: Option<i64>,
    /// `payment`, `setup` or `subscription`.
    pub mode: String,
    /// From `metadata[client_id]` (or `client_reference_id` when the metadata lacks it).
    pub client_id: Option<i64>,
}

/// A SetupIntent: after a setup-mode checkout, `payment_method` is the saved card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupIntent {
    pub id: String,
    pub status: String,
    pub customer: Option<String>,
    pub payment_method: Option<String>,
}

/// A charge of a saved card without the customer present (auto-reload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffSessionCharge<'a> {
    pub customer: &'a str,
    pub payment_method: &'a str,
    pub amount_cents: i64,
    pub client_id: i64,
    pub idempotency_key: &'a str,
}

/// A PaymentIntent as Stripe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentIntent {
    pub id: String,
    pub status: String,
    pub amount: i64,
    pub amount_received: i64,
    pub client_id: Option<i64>,
}

/// The metadata key that marks a PaymentIntent as an off-session reload, so its webhook
/// events can be told from a checkout payment's.
pub(super) const RELOAD_KEY: &str = "reload";
pub(super) const RELOAD_AUTO: &str = "auto";

/// A client for Stripe's REST API. Cheap to clone; `Debug` never shows the secret key.
#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    base: Url,
    secret: SecretString,
    timeout: Duration,
    retry_base: Duration,
}

impl fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeClient")
            .field("base", &self.base.as_str())
            .field("secret", &"[redacted]")
            .field("timeout", &self.timeout)
            .field("retry_base", &self.retry_base)
            .finish()
    }
}

impl StripeClient {
    /// `base` is scheme and host (e.g. [`DEFAULT_BASE_URL`] or a loopback fake's address);
    /// `/v1/...` is appended to it.
    pub fn new(base: Url, secret_key: SecretString) -> Self {
        Self {
            http: reqwest::Client::new(),
            base,
            secret: secret_key,
            timeout: DEFAULT_TIMEOUT,
            retry_base: DEFAULT_RETRY_BASE,
        }
    }

    /// Replaces the first retry delay (500 ms); tests use a millisecond.
    pub fn with_retry_base(mut self, base: Duration) -> Self {
        self.retry_base = base;
        self
    }

    /// Replaces the per-attempt timeout (10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Creates a customer tagged with the client's id; returns its `cus_…` id.
    pub async fn create_customer(&self, c: &NewCustomer<'_>, idempotency_key: &str) -> Result<String, StripeError> {
        #[derive(Deserialize)]
        struct Created {
            id: String,
        }
        let created: Created = self.post(&["v1", "customers"], &customer_form(c), idempotency_key).await?;
        Ok(created.id)
    }

    /// Opens a hosted Checkout page; redirect the customer to the returned `url`.
    pub async fn create_checkout_session(&self, r: &CheckoutRequest<'_>) -> Result<CheckoutSession, StripeError> {
        let wire: WireCheckoutSession =
            self.post(&["v1", "checkout", "sessions"], &checkout_form(r), r.idempotency_key).await?;
        Ok(wire.into())
    }

    /// The session's current state (for the success page: webhooks may not have arrived yet).
    pub async fn retrieve_checkout_session(&self, id: &str) -> Result<CheckoutSession, StripeError> {
        let wire: WireCheckoutSession = self.get(&["v1", "checkout", "sessions", checked_id(id)?]).await?;
        Ok(wire.into())
    }

    /// A SetupIntent, to learn the card a setup-mode checkout saved.
    pub async fn retrieve_setup_intent(&self, id: &str) -> Result<SetupIntent, StripeError> {
        let wire: WireSetupIntent = self.get(&["v1", "setup_intents", checked_id(id)?]).await?;
        Ok(wire.into())
    }

    /// Charges a saved card with the customer absent. A card that needs the customer
    /// (`authentication_required`) or is declined comes back as [`StripeError::Card`].
    pub async fn charge_saved_card(&self, c: &OffSessionCharge<'_>) -> Result<PaymentIntent, StripeError> {
        let wire: WirePaymentIntent =
            self.post(&["v1", "payment_intents"], &off_session_form(c), c.idempotency_key).await?;
        Ok(wire.into())
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &[&str],
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<T, StripeError> {
        self.execute(Method::POST, path, Some(form), Some(idempotency_key)).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &[&str]) -> Result<T, StripeError> {
        self.execute(Method::GET, path, None, None).await
    }

    fn endpoint(&self, path: &[&str]) -> Result<Url, StripeError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| StripeError::Rejected {
                status: 0,
                kind: "invalid_base_url".into(),
                message: format!("{} cannot take a path", self.base),
            })?
            .pop_if_empty()
            .extend(path);
        Ok(url)
    }

    /// One call with up to [`MAX_RETRIES`] retries, all under the same idempotency key, so
    /// Stripe runs the operation at most once however often the network fails.
    async fn execute<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        form: Option<&[(String, String)]>,
        idempotency_key: Option<&str>,
    ) -> Result<T, StripeError> {
        let url = self.endpoint(path)?;
        let path = url.path().to_owned();
        let mut retries = 0;
        loop {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(self.secret.expose_secret())
                .header("Stripe-Version", API_VERSION)
                .timeout(self.timeout);
            if let Some(form) = form {
                request = request.form(form);
            }
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            let failure = match request.send().await {
                Err(e) => Failure::Network(e.to_string()),
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match response.bytes().await {
                        Err(e) => Failure::Network(e.to_string()),
                        Ok(body) if status.is_success() => {
                            return serde_json::from_slice(&body).map_err(|e| StripeError::Rejected {
                                status: status.as_u16(),
                                kind: "unreadable_response".into(),
                                message: format!("{e}: {}", excerpt(&body)),
                            });
                        }
                        Ok(body) => Failure::Status { status, headers, body: body.to_vec() },
                    }
                }
            };
            let retry = match &failure {
                Failure::Network(_) => true,
                Failure::Status { status, headers, .. } => should_retry(*status, headers),
            };
            if !retry || retries >= MAX_RETRIES {
                return Err(failure.into_error(&method, &path));
            }
            retries += 1;
            let jitter = rand::rng().random_range(0.5..=1.0);
            let mut delay = backoff(self.retry_base, retries, jitter);
            if let Failure::Status { headers, .. } = &failure
                && let Some(asked) = retry_after(headers)
            {
                delay = delay.max(asked);
            }
            match &failure {
                Failure::Network(error) => tracing::warn!(
                    vendor = VENDOR, %method, path, retry = retries, delay_ms = delay.as_millis() as u64, error = %error,
                    "Stripe request failed on the network; retrying with the same idempotency key"
                ),
                Failure::Status { status, .. } => tracing::warn!(
                    vendor = VENDOR, %method, path, retry = retries, delay_ms = delay.as_millis() as u64,
                    status = status.as_u16(), "Stripe answered a retryable status; retrying with the same idempotency key"
                ),
            }
            tokio::time::sleep(delay).await;
        }
    }
}

/// What went wrong with one attempt.
enum Failure {
    Network(String),
    Status { status: StatusCode, headers: HeaderMap, body: Vec<u8> },
}

impl Failure {
    fn into_error(self, method: &Method, path: &str) -> StripeError {
        match self {
            Failure::Network(error) => StripeError::Unavailable(format!("{method} {path}: {error}")),
            Failure::Status { status, body, .. } => error_from_body(status, &body, method, path),
        }
    }
}

/// Stripe's `Stripe-Should-Retry` decides when present; otherwise conflicts (409, a lock
/// held by a concurrent request), rate limits (429) and server errors are worth a retry.
fn should_retry(status: StatusCode, headers: &HeaderMap) -> bool {
    match headers.get("stripe-should-retry").and_then(|v| v.to_str().ok()) {
        Some("true") => true,
        Some("false") => false,
        _ => status == StatusCode::CONFLICT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
    }
}

/// `min(base·2^(retry-1), 5 s) × jitter`, jitter in `[0.5, 1]` so that clients failing
/// together do not retry together.
fn backoff(base: Duration, retry: u32, jitter: f64) -> Duration {
    let doubled = base.saturating_mul(1 << retry.saturating_sub(1).min(16));
    doubled.min(MAX_RETRY_DELAY).mul_f64(jitter.clamp(0.5, 1.0))
}

/// A `Retry-After` in seconds, when it is short enough to honour.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds)).filter(|d| *d <= MAX_RETRY_AFTER)
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorObject,
}

#[derive(Deserialize)]
struct ErrorObject {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    decline_code: Option<String>,
    message: Option<String>,
    payment_intent: Option<Expandable>,
}

fn error_from_body(status: StatusCode, body: &[u8], method: &Method, path: &str) -> StripeError {
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok().map(|b| b.error);
    let transient =
        status == StatusCode::CONFLICT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
    match parsed {
        Some(error) if error.kind.as_deref() == Some("card_error") => StripeError::Card {
            code: error.code.unwrap_or_else(|| "card_declined".into()),
            decline_code: error.decline_code,
            message: error.message.unwrap_or_default(),
            payment_intent: error.payment_intent.map(Expandable::into_id),
        },
        parsed => {
            let (kind, message) = match parsed {
                Some(error) => (
                    error.kind.unwrap_or_else(|| "api_error".into()),
                    error.message.unwrap_or_else(|| error.code.unwrap_or_default()),
                ),
                None => ("unknown".to_owned(), excerpt(body)),
            };
            if transient {
                StripeError::Unavailable(format!("{method} {path}: HTTP {} {kind}: {message}", status.as_u16()))
            } else {
                StripeError::Rejected { status: status.as_u16(), kind, message }
            }
        }
    }
}

fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(EXCERPT_CHARS).collect()
}

/// Stripe ids are letters, digits and underscores; anything else is refused before it can
/// change the path of the request.
fn checked_id(id: &str) -> Result<&str, StripeError> {
    if !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(id)
    } else {
        Err(StripeError::Rejected {
            status: 400,
            kind: "invalid_request_error".into(),
            message: format!("{id:?} is not a Stripe object id"),
        })
    }
}

fn pair(key: &str, value: impl ToString) -> (String, String) {
    (key.to_owned(), value.to_string())
}

fn customer_form(c: &NewCustomer<'_>) -> Vec<(String, String)> {
    let mut form = vec![pair("name", c.name)];
    if let Some(email) = c.email {
        form.push(pair("email", email));
    }
    form.push(pair("metadata[client_id]", c.client_id));
    form
}

/// The Checkout Session parameters. The client id goes on the session (`metadata`,
/// `client_reference_id`) and, for payments, on the PaymentIntent too, because Stripe does
/// not copy session metadata to the PaymentIntent and its events carry only their own.
fn checkout_form(r: &CheckoutRequest<'_>) -> Vec<(String, String)> {
    let mut form = Vec::new();
    match r.mode {
        CheckoutMode::Payment { amount_cents, save_card } => {
            form.push(pair("mode", "payment"));
            form.push(pair("line_items[0][price_data][currency]", CURRENCY));
            form.push(pair("line_items[0][price_data][unit_amount]", amount_cents));
            form.push(pair("line_items[0][price_data][product_data][name]", r.product_name));
            form.push(pair("line_items[0][quantity]", 1));
            form.push(pair("payment_intent_data[metadata][client_id]", r.client_id));
            if save_card {
                form.push(pair("payment_intent_data[setup_future_usage]", "off_session"));
            }
        }
        CheckoutMode::Setup => {
            form.push(pair("mode", "setup"));
            form.push(pair("currency", CURRENCY));
            form.push(pair("setup_intent_data[metadata][client_id]", r.client_id));
        }
    }
    form.push(pair("success_url", r.success_url));
    form.push(pair("cancel_url", r.cancel_url));
    form.push(pair("client_reference_id", r.client_id));
    form.push(pair("metadata[client_id]", r.client_id));
    match (r.customer, r.customer_email) {
        (Some(customer), _) => form.push(pair("customer", customer)),
        (None, Some(email)) => form.push(pair("customer_email", email)),
        (None, None) => {}
    }
    form
}

fn off_session_form(c: &OffSessionCharge<'_>) -> Vec<(String, String)> {
    vec![
        pair("amount", c.amount_cents),
        pair("currency", CURRENCY),
        pair("customer", c.customer),
        pair("payment_method", c.payment_method),
        pair("off_session", "true"),
        pair("confirm", "true"),
        pair("metadata[client_id]", c.client_id),
        pair(&format!("metadata[{RELOAD_KEY}]"), RELOAD_AUTO),
    ]
}

/// A reference Stripe sends either as an id or, when expanded, as the object itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum Expandable {
    Id(String),
    Object { id: String },
}

impl Expandable {
    pub(super) fn into_id(self) -> String {
        match self {
            Expandable::Id(id) | Expandable::Object { id } => id,
        }
    }
}

/// Stripe metadata: string values, possibly absent or null.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub(super) struct Metadata(Option<HashMap<String, Value>>);

impl Metadata {
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0.as_ref()?.get(key)?.as_str()
    }

    /// `client_id` as digits; anything else (missing, empty, signed, too large) is `None`.
    pub(super) fn client_id(&self) -> Option<i64> {
        self.get("client_id").and_then(parse_client_id)
    }
}

pub(super) fn parse_client_id(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

#[derive(Debug, Deserialize)]
pub(super) struct WireCheckoutSession {
    id: String,
    url: Option<String>,
    status: Option<String>,
    payment_status: Option<String>,
    payment_intent: Option<Expandable>,
    setup_intent: Option<Expandable>,
    customer: Option<Expandable>,
    amount_total: Option<i64>,
    mode: Option<String>,
    client_reference_id: Option<String>,
    #[serde(default)]
    metadata: Metadata,
}

impl From<WireCheckoutSession> for CheckoutSession {
    fn from(w: WireCheckoutSession) -> Self {
        let client_id = w.metadata.client_id().or_else(|| w.client_reference_id.as_deref().and_then(parse_client_id));
        Self {
            id: w.id,
            url: w.url,
            status: w.status.unwrap_or_default(),
            payment_status: w.payment_status.unwrap_or_default(),
            payment_intent: w.payment_intent.map(Expandable::into_id),
            setup_intent: w.setup_intent.map(Expandable::into_id),
            customer: w.customer.map(Expandable::into_id),
            amount_total: w.amount_total,
            mode: w.mode.unwrap_or_default(),
            client_id,
        }
    }
}

#[derive(Debug, Deserialize)]
struct WireSetupIntent {
    id: String,
    status: Option<String>,
    customer: Option<Expandable>,
    payment_method: Option<Expandable>,
}

impl From<WireSetupIntent> for SetupIntent {
    fn from(w: WireSetupIntent) -> Self {
        Self {
            id: w.id,
            status: w.status.unwrap_or_default(),
            customer: w.customer.map(Expandable::into_id),
            payment_method: w.payment_method.map(Expandable::into_id),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct WireLastError {
    pub(super) code: Option<String>,
    pub(super) decline_code: Option<String>,
    pub(super) message: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct WirePaymentIntent {
    pub(super) id: String,
    pub(super) status: Option<String>,
    #[serde(default)]
    pub(super) amount: i64,
    #[serde(default)]
    pub(super) amount_received: i64,
    pub(super) customer: Option<Expandable>,
    pub(super) payment_method: Option<Expandable>,
    pub(super) last_payment_error: Option<WireLastError>,
    #[serde(default)]
    pub(super) metadata: Metadata,
}

impl From<WirePaymentIntent> for PaymentIntent {
    fn from(w: WirePaymentIntent) -> Self {
        Self {
            client_id: w.metadata.client_id(),
            id: w.id,
            status: w.status.unwrap_or_default(),
            amount: w.amount,
            amount_received: w.amount_received,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_map(form: &[(String, String)]) -> HashMap<&str, &str> {
        form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    fn payment_request(save_card: bool) -> CheckoutRequest<'static> {
        CheckoutRequest {
            mode: CheckoutMode::Payment { amount_cents: 2000, save_card },
            client_id: 42,
            customer: None,
            customer_email: Some("owner@example.com"),
            success_url: "https://app.example/billing/done?session_id={CHECKOUT_SESSION_ID}",
            cancel_url: "https://app.example/billing",
            product_name: "Call credits",
            idempotency_key: "checkout:42:1",
        }
    }

    #[test]
    fn a_payment_checkout_carries_the_line_item_and_the_client_id_in_both_metadata_places() {
        let form = checkout_form(&payment_request(false));
        let map = as_map(&form);
        assert_eq!(map["mode"], "payment");
        assert_eq!(map["line_items[0][price_data][currency]"], "usd");
        assert_eq!(map["line_items[0][price_data][unit_amount]"], "2000");
        assert_eq!(map["line_items[0][price_data][product_data][name]"], "Call credits");
        assert_eq!(map["line_items[0][quantity]"], "1");
        assert_eq!(map["metadata[client_id]"], "42");
        assert_eq!(map["payment_intent_data[metadata][client_id]"], "42");
        assert_eq!(map["client_reference_id"], "42");
        assert_eq!(map["customer_email"], "owner@example.com");
        assert!(!map.contains_key("customer"));
        assert!(!map.contains_key("payment_intent_data[setup_future_usage]"));
    }

    #[test]
    fn saving_the_card_asks_for_off_session_future_usage() {
        let form = checkout_form(&payment_request(true));
        assert_eq!(as_map(&form)["payment_intent_data[setup_future_usage]"], "off_session");
    }

    #[test]
    fn the_success_url_placeholder_survives_form_encoding_as_a_literal() {
        let form = checkout_form(&payment_request(false));
        let encoded = serde_urlencoded::to_string(&form).unwrap();
        let decoded: Vec<(String, String)> = serde_urlencoded::from_str(&encoded).unwrap();
        assert_eq!(
            as_map(&decoded)["success_url"],
            "https://app.example/billing/done?session_id={CHECKOUT_SESSION_ID}"
        );
        assert!(encoded.contains("line_items%5B0%5D%5Bquantity%5D=1"), "{encoded}");
    }

    #[test]
    fn a_setup_checkout_names_the_customer_and_tags_the_setup_intent() {
        let request = CheckoutRequest {
            mode: CheckoutMode::Setup,
            customer: Some("cus_123"),
            customer_email: Some("ignored@example.com"),
            ..payment_request(false)
        };
        let form = checkout_form(&request);
        let map = as_map(&form);
        assert_eq!(map["mode"], "setup");
        assert_eq!(map["currency"], "usd");
        assert_eq!(map["customer"], "cus_123");
        assert_eq!(map["setup_intent_data[metadata][client_id]"], "42");
        assert_eq!(map["metadata[client_id]"], "42");
        assert!(!map.contains_key("customer_email"));
        assert!(!map.keys().any(|k| k.starts_with("line_items")));
    }

    #[test]
    fn an_off_session_charge_confirms_at_once_and_marks_itself_as_a_reload() {
        let charge = OffSessionCharge {
            customer: "cus_1",
            payment_method: "pm_card_visa",
            amount_cents: 2500,
            client_id: 7,
            idempotency_key: "reload:7:3",
        };
        let form = off_session_form(&charge);
        let map = as_map(&form);
        assert_eq!(map["amount"], "2500");
        assert_eq!(map["currency"], "usd");
        assert_eq!(map["customer"], "cus_1");
        assert_eq!(map["payment_method"], "pm_card_visa");
        assert_eq!(map["off_session"], "true");
        assert_eq!(map["confirm"], "true");
        assert_eq!(map["metadata[client_id]"], "7");
        assert_eq!(map["metadata[reload]"], "auto");
    }

    #[test]
    fn conflicts_rate_limits_and_server_errors_are_retried_unless_stripe_says_otherwise() {
        let none = HeaderMap::new();
        for status in [409, 429, 500, 502, 503] {
            assert!(should_retry(StatusCode::from_u16(status).unwrap(), &none), "{status}");
        }
        for status in [400, 401, 402, 403, 404] {
            assert!(!should_retry(StatusCode::from_u16(status).unwrap(), &none), "{status}");
        }
        let mut no = HeaderMap::new();
        no.insert("stripe-should-retry", "false".parse().unwrap());
        assert!(!should_retry(StatusCode::SERVICE_UNAVAILABLE, &no));
        let mut yes = HeaderMap::new();
        yes.insert("stripe-should-retry", "true".parse().unwrap());
        assert!(should_retry(StatusCode::BAD_REQUEST, &yes));
    }

    #[test]
    fn backoff_doubles_from_the_base_is_capped_at_five_seconds_and_jitter_only_shortens_it() {
        let base = Duration::from_millis(500);
        assert_eq!(backoff(base, 1, 1.0), Duration::from_millis(500));
        assert_eq!(backoff(base, 2, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(base, 3, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(base, 10, 1.0), Duration::from_secs(5));
        assert_eq!(backoff(base, 2, 0.5), Duration::from_millis(500));
        assert_eq!(backoff(base, 40, 0.1), Duration::from_millis(2500));
    }

    #[test]
    fn a_short_retry_after_is_honoured_and_a_long_one_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(RETRY_AFTER, "3600".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn a_card_error_body_becomes_a_card_error_with_the_payment_intent_id() {
        let body = br#"{"error":{"type":"card_error","code":"authentication_required","decline_code":"authentication_required",
            "message":"This payment requires authentication.","doc_url":"https://docs.stripe.com/error-codes/authentication-required",
            "payment_intent":{"id":"pi_3Q","status":"requires_payment_method"},"payment_method":{"id":"pm_1"}}}"#;
        let error = error_from_body(StatusCode::PAYMENT_REQUIRED, body, &Method::POST, "/v1/payment_intents");
        assert_eq!(
            error,
            StripeError::Card {
                code: "authentication_required".into(),
                decline_code: Some("authentication_required".into()),
                message: "This payment requires authentication.".into(),
                payment_intent: Some("pi_3Q".into()),
            }
        );
    }

    #[test]
    fn other_client_errors_are_rejections_and_server_errors_are_unavailability() {
        let body = br#"{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such customer: 'cus_x'"}}"#;
        let error = error_from_body(StatusCode::BAD_REQUEST, body, &Method::POST, "/v1/payment_intents");
        assert_eq!(
            error,
            StripeError::Rejected {
                status: 400,
                kind: "invalid_request_error".into(),
                message: "No such customer: 'cus_x'".into()
            }
        );
        let error = error_from_body(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>", &Method::GET, "/v1/x");
        assert!(
            matches!(&error, StripeError::Unavailable(m) if m.contains("502") && m.contains("bad gateway")),
            "{error}"
        );
    }

    #[test]
    fn client_ids_are_read_only_from_plain_digits() {
        assert_eq!(parse_client_id("42"), Some(42));
        assert_eq!(parse_client_id(" 42 "), Some(42));
        for bad in ["", "-1", "+1", "4x", "99999999999999999999", "1.0"] {
            assert_eq!(parse_client_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_that_could_change_the_request_path_are_refused() {
        assert!(checked_id("cs_test_a1B2").is_ok());
        for bad in ["", "../customers", "cs_1/x", "cs_1?expand=x", "cs 1"] {
            assert!(checked_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_secret_key() {
        let client = StripeClient::new(Url::parse(DEFAULT_BASE_URL).unwrap(), "sk_test_very_secret".into());
        let shown = format!("{client:?}");
        assert!(!shown.contains("sk_test_very_secret"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }

    #[test]
    fn endpoints_are_appended_to_the_base_url() {
        let client = StripeClient::new(Url::parse("http://127.0.0.1:4242").unwrap(), "sk".into());
        assert_eq!(client.endpoint(&["v1", "customers"]).unwrap().as_str(), "http://127.0.0.1:4242/v1/customers");
        let client = StripeClient::new(Url::parse("http://127.0.0.1:4242/stripe/").unwrap(), "sk".into());
        assert_eq!(
            client.endpoint(&["v1", "setup_intents", "seti_1"]).unwrap().as_str(),
            "http://127.0.0.1:4242/stripe/v1/setup_intents/seti_1"
        );
    }
}
