//! `StripeClient` and `webhook` against `FakeStripe`: the parameters on the wire, idempotent
//! replays, retries under one key, error mapping, saved cards charged off-session, and the
//! fake's signed deliveries checked by `webhook::verify` in a small receiver.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ringlypro::vendors::stripe::webhook::{self, DEFAULT_TOLERANCE_S, EventKind, SignatureError};
use ringlypro::vendors::stripe::{
    CheckoutMode, CheckoutRequest, NewCustomer, OffSessionCharge, StripeClient, StripeError,
};
use secrecy::SecretString;
use serde_json::json;
use url::Url;

use crate::fakes::stripe::{CARD_AUTHENTICATION_REQUIRED, CARD_DECLINED, CARD_OK, Delivery, FakeStripe, Signing};

const PATIENCE: Duration = Duration::from_secs(10);

fn client(fake: &FakeStripe) -> StripeClient {
    StripeClient::new(Url::parse(&fake.base_url).unwrap(), SecretString::from(fake.secret_key.clone()))
        .with_retry_base(Duration::from_millis(1))
}

fn payment(client_id: i64, key: &'static str) -> CheckoutRequest<'static> {
    CheckoutRequest {
        mode: CheckoutMode::Payment { amount_cents: 2000, save_card: true },
        client_id,
        customer: None,
        customer_email: Some("owner@bellasalon.example"),
        success_url: "http://app.example/billing/done?session_id={CHECKOUT_SESSION_ID}",
        cancel_url: "http://app.example/billing",
        product_name: "Call credits",
        idempotency_key: key,
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// One delivery as the receiver saw it, with its verdict.
#[derive(Debug, Clone)]
struct Received {
    body: Vec<u8>,
    verdict: Result<(), SignatureError>,
}

/// A webhook endpoint on loopback that verifies each delivery as the app would: 200 when
/// the signature holds, 400 otherwise.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(secret: &str) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let state = (SecretString::from(secret.to_owned()), Arc::clone(&received));
        let app = Router::new().route("/webhooks/stripe", post(receive)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhooks/stripe", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, received }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn kinds(&self) -> Vec<EventKind> {
        self.received().iter().map(|r| webhook::parse_event(&r.body).unwrap().kind).collect()
    }

    async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.received().len() < count {
            assert!(tokio::time::Instant::now() < deadline, "only {:?} deliveries arrived", self.received());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.received()
    }
}

type ReceiverState = (SecretString, Arc<Mutex<Vec<Received>>>);

async fn receive(State((secret, received)): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let verdict = match headers.get("stripe-signature").and_then(|v| v.to_str().ok()) {
        Some(header) => webhook::verify(&body, header, std::slice::from_ref(&secret), now(), DEFAULT_TOLERANCE_S),
        None => Err(SignatureError::NoSignature),
    };
    let status = if verdict.is_ok() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    received.lock().unwrap().push(Received { body: body.to_vec(), verdict });
    status
}

#[tokio::test]
async fn stripe_checkout_params_arrive_with_bracket_keys_both_metadata_places_and_the_idempotency_key() {
    let fake = FakeStripe::start().await;
    let session = client(&fake).create_checkout_session(&payment(42, "checkout:42:1")).await.unwrap();
    let recorded = fake.checkout_sessions();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].id, session.id);
    assert_eq!(recorded[0].idempotency_key.as_deref(), Some("checkout:42:1"));
    let params = &recorded[0].params;
    for (key, value) in [
        ("mode", "payment"),
        ("line_items[0][price_data][currency]", "usd"),
        ("line_items[0][price_data][unit_amount]", "2000"),
        ("line_items[0][price_data][product_data][name]", "Call credits"),
        ("line_items[0][quantity]", "1"),
        ("metadata[client_id]", "42"),
        ("payment_intent_data[metadata][client_id]", "42"),
        ("payment_intent_data[setup_future_usage]", "off_session"),
        ("client_reference_id", "42"),
        ("customer_email", "owner@bellasalon.example"),
        ("success_url", "http://app.example/billing/done?session_id={CHECKOUT_SESSION_ID}"),
        ("cancel_url", "http://app.example/billing"),
    ] {
        assert_eq!(params.get(key).map(String::as_str), Some(value), "{key} in {params:?}");
    }
    assert!(session.id.starts_with("cs_"), "{session:?}");
    assert_eq!(session.url, Some(format!("{}/pay/{}", fake.base_url, session.id)));
    assert_eq!((session.status.as_str(), session.payment_status.as_str()), ("open", "unpaid"));
    assert_eq!(session.amount_total, Some(2000));
    assert_eq!(session.client_id, Some(42));
    assert!(fake.requests().iter().all(|r| r.authorized));
}

#[tokio::test]
async fn stripe_replays_the_first_session_for_a_repeated_idempotency_key() {
    let fake = FakeStripe::start().await;
    let stripe = client(&fake);
    let first = stripe.create_checkout_session(&payment(42, "checkout:42:2")).await.unwrap();
    let again = stripe.create_checkout_session(&payment(42, "checkout:42:2")).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(fake.checkout_sessions().len(), 1, "the replay created no second session");
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn stripe_refuses_a_reused_key_with_different_params_and_the_client_does_not_retry() {
    let fake = FakeStripe::start().await;
    let stripe = client(&fake);
    stripe.create_checkout_session(&payment(42, "checkout:42:3")).await.unwrap();
    let error = stripe.create_checkout_session(&payment(43, "checkout:42:3")).await.unwrap_err();
    assert!(
        matches!(&error, StripeError::Rejected { status: 400, kind, .. } if kind == "idempotency_error"),
        "{error:?}"
    );
    assert_eq!(fake.requests().len(), 2, "a 400 is not retried");
}

#[tokio::test]
async fn stripe_500_is_retried_with_the_same_idempotency_key_and_then_succeeds() {
    let fake = FakeStripe::start().await;
    fake.set_fail_next(2, 500);
    let session = client(&fake).create_checkout_session(&payment(42, "checkout:42:4")).await.unwrap();
    let requests = fake.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests.iter().all(|r| r.idempotency_key.as_deref() == Some("checkout:42:4")), "{requests:?}");
    assert_eq!(requests[0].params, requests[2].params, "the retry sends the same parameters");
    assert_eq!(fake.checkout_sessions()[0].id, session.id);
}

#[tokio::test]
async fn stripe_failures_that_outlast_the_retries_are_unavailable_after_three_attempts() {
    let fake = FakeStripe::start().await;
    fake.set_fail_next(3, 503);
    let error = client(&fake).create_checkout_session(&payment(42, "checkout:42:5")).await.unwrap_err();
    assert!(matches!(&error, StripeError::Unavailable(m) if m.contains("503")), "{error:?}");
    assert_eq!(fake.requests().len(), 3);
    assert!(fake.checkout_sessions().is_empty());
}

#[tokio::test]
async fn stripe_429_and_409_are_retried_too() {
    let fake = FakeStripe::start().await;
    let stripe = client(&fake);
    fake.set_fail_next(1, 429);
    stripe.create_checkout_session(&payment(42, "checkout:42:6")).await.unwrap();
    fake.set_fail_next(1, 409);
    stripe.create_checkout_session(&payment(42, "checkout:42:7")).await.unwrap();
    assert_eq!(fake.requests().len(), 4);
    assert_eq!(fake.checkout_sessions().len(), 2);
}

#[tokio::test]
async fn stripe_400_is_rejected_without_a_retry() {
    let fake = FakeStripe::start().await;
    fake.set_fail_next(1, 400);
    let error = client(&fake).create_checkout_session(&payment(42, "checkout:42:8")).await.unwrap_err();
    assert!(
        matches!(&error, StripeError::Rejected { status: 400, kind, .. } if kind == "invalid_request_error"),
        "{error:?}"
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn stripe_wrong_secret_key_is_a_401_rejection() {
    let fake = FakeStripe::start().await;
    let stripe = StripeClient::new(Url::parse(&fake.base_url).unwrap(), SecretString::from("sk_test_wrong"));
    let error = stripe.retrieve_checkout_session("cs_test_x").await.unwrap_err();
    assert!(matches!(&error, StripeError::Rejected { status: 401, .. }), "{error:?}");
    assert_eq!(fake.requests().len(), 1);
    assert!(!fake.requests()[0].authorized);
    assert!(!error.to_string().contains("sk_test_wrong"), "{error}");
}

#[tokio::test]
async fn stripe_unreachable_is_unavailable_after_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let stripe = StripeClient::new(Url::parse(&base).unwrap(), SecretString::from("sk_test_fake"))
        .with_retry_base(Duration::from_millis(1));
    let error = stripe.retrieve_setup_intent("seti_1").await.unwrap_err();
    assert!(matches!(error, StripeError::Unavailable(_)), "{error:?}");
}

/// A customer with a card saved through a setup-mode checkout paid with `card`; returns the
/// customer and the saved payment method.
async fn saved_card(fake: &FakeStripe, stripe: &StripeClient, client_id: i64, card: &str) -> (String, String) {
    let customer = NewCustomer { email: Some("owner@bellasalon.example"), name: "Bella's Salon", client_id };
    let customer = stripe.create_customer(&customer, &format!("customer:{client_id}")).await.unwrap();
    let request = CheckoutRequest {
        mode: CheckoutMode::Setup,
        customer: Some(&customer),
        idempotency_key: "setup:1",
        ..payment(client_id, "unused")
    };
    let session = stripe.create_checkout_session(&request).await.unwrap();
    fake.pay(&session.id, card, Delivery::default()).await;
    let session = stripe.retrieve_checkout_session(&session.id).await.unwrap();
    let setup_intent = stripe.retrieve_setup_intent(session.setup_intent.as_deref().unwrap()).await.unwrap();
    assert_eq!(setup_intent.customer.as_deref(), Some(customer.as_str()));
    (customer, setup_intent.payment_method.unwrap())
}

#[tokio::test]
async fn stripe_setup_checkout_saves_the_card_on_its_setup_intent() {
    let fake = FakeStripe::start().await;
    let receiver = Receiver::start(&fake.webhook_secret).await;
    fake.deliver_to(&receiver.url);
    let stripe = client(&fake);
    let (customer, payment_method) = saved_card(&fake, &stripe, 7, CARD_OK).await;
    assert!(customer.starts_with("cus_"));
    assert_eq!(payment_method, "pm_card_visa");
    let params = &fake.checkout_sessions()[0].params;
    assert_eq!(params.get("mode").map(String::as_str), Some("setup"));
    assert_eq!(params.get("setup_intent_data[metadata][client_id]").map(String::as_str), Some("7"));
    assert_eq!(params.get("customer"), Some(&customer));
    let kinds = receiver.kinds();
    assert_eq!(kinds.len(), 1, "{kinds:?}");
    let EventKind::CheckoutCompleted(session) = &kinds[0] else { panic!("{kinds:?}") };
    assert_eq!((session.mode.as_str(), session.client_id), ("setup", Some(7)));
    assert!(session.setup_intent.is_some());
}

#[tokio::test]
async fn stripe_off_session_charge_of_a_saved_card_succeeds_and_delivers_payment_intent_succeeded() {
    let fake = FakeStripe::start().await;
    let receiver = Receiver::start(&fake.webhook_secret).await;
    fake.deliver_to(&receiver.url);
    let stripe = client(&fake);
    let (customer, payment_method) = saved_card(&fake, &stripe, 7, CARD_OK).await;
    let charge = OffSessionCharge {
        customer: &customer,
        payment_method: &payment_method,
        amount_cents: 2500,
        client_id: 7,
        idempotency_key: "reload:7:1",
    };
    let intent = stripe.charge_saved_card(&charge).await.unwrap();
    assert_eq!((intent.status.as_str(), intent.amount, intent.amount_received), ("succeeded", 2500, 2500));
    assert_eq!(intent.client_id, Some(7));
    let request = fake.requests().into_iter().find(|r| r.path == "/v1/payment_intents").unwrap();
    assert_eq!(request.idempotency_key.as_deref(), Some("reload:7:1"));
    assert_eq!(request.params.get("off_session").map(String::as_str), Some("true"));
    assert_eq!(request.params.get("confirm").map(String::as_str), Some("true"));
    let received = receiver.wait_for(2).await;
    let EventKind::PaymentSucceeded(event) = webhook::parse_event(&received[1].body).unwrap().kind else {
        panic!("{received:?}")
    };
    assert_eq!(event.id, intent.id);
    assert_eq!((event.amount_received, event.client_id, event.off_session), (2500, Some(7), true));
    assert_eq!(event.customer.as_deref(), Some(customer.as_str()));
}

#[tokio::test]
async fn stripe_off_session_charge_needing_authentication_is_a_card_error_and_delivers_payment_failed() {
    let fake = FakeStripe::start().await;
    let receiver = Receiver::start(&fake.webhook_secret).await;
    fake.deliver_to(&receiver.url);
    let stripe = client(&fake);
    let (customer, payment_method) = saved_card(&fake, &stripe, 8, CARD_AUTHENTICATION_REQUIRED).await;
    assert_eq!(payment_method, "pm_card_authenticationRequired");
    let charge = OffSessionCharge {
        customer: &customer,
        payment_method: &payment_method,
        amount_cents: 2500,
        client_id: 8,
        idempotency_key: "reload:8:1",
    };
    let error = stripe.charge_saved_card(&charge).await.unwrap_err();
    let StripeError::Card { code, payment_intent, .. } = &error else { panic!("{error:?}") };
    assert_eq!(code, "authentication_required");
    let payment_intent = payment_intent.clone().expect("the card error names its PaymentIntent");
    assert_eq!(fake.requests().iter().filter(|r| r.path == "/v1/payment_intents").count(), 1, "402 is not retried");
    let received = receiver.wait_for(2).await;
    let EventKind::PaymentFailed(event) = webhook::parse_event(&received[1].body).unwrap().kind else {
        panic!("{received:?}")
    };
    assert_eq!(event.id, payment_intent);
    assert_eq!(event.error_code.as_deref(), Some("authentication_required"));
    assert_eq!((event.amount_received, event.client_id), (0, Some(8)));
    // The same key replays the same card error without a second charge attempt or event.
    let again = stripe.charge_saved_card(&charge).await.unwrap_err();
    assert_eq!(again, error);
    assert_eq!(fake.events().iter().filter(|e| e["type"] == "payment_intent.payment_failed").count(), 1);
}

#[tokio::test]
async fn stripe_declined_card_is_parsed_into_a_card_error_with_its_code() {
    let fake = FakeStripe::start().await;
    let stripe = client(&fake);
    let (customer, payment_method) = saved_card(&fake, &stripe, 9, CARD_DECLINED).await;
    assert_eq!(payment_method, "pm_card_chargeDeclined");
    let charge = OffSessionCharge {
        customer: &customer,
        payment_method: &payment_method,
        amount_cents: 1000,
        client_id: 9,
        idempotency_key: "reload:9:1",
    };
    let error = stripe.charge_saved_card(&charge).await.unwrap_err();
    let StripeError::Card { code, decline_code, message, payment_intent } = error else { panic!() };
    assert_eq!(code, "card_declined");
    assert_eq!(decline_code.as_deref(), Some("generic_decline"));
    assert_eq!(message, "Your card was declined.");
    assert!(payment_intent.is_some_and(|id| id.starts_with("pi_")));
}

#[tokio::test]
async fn stripe_signed_delivery_of_a_paid_checkout_verifies_and_parses() {
    let fake = FakeStripe::start().await;
    let receiver = Receiver::start(&fake.webhook_secret).await;
    fake.deliver_to(&receiver.url);
    let stripe = client(&fake);
    let session = stripe.create_checkout_session(&payment(42, "checkout:42:9")).await.unwrap();
    let statuses = fake.pay(&session.id, CARD_OK, Delivery::default()).await;
    assert_eq!(statuses, vec![200, 200]);
    let received = receiver.received();
    assert!(received.iter().all(|r| r.verdict.is_ok()), "{received:?}");
    let kinds = receiver.kinds();
    let EventKind::CheckoutCompleted(completed) = &kinds[0] else { panic!("{kinds:?}") };
    let EventKind::PaymentSucceeded(paid) = &kinds[1] else { panic!("{kinds:?}") };
    assert_eq!((completed.status.as_str(), completed.payment_status.as_str()), ("complete", "paid"));
    assert_eq!(completed.payment_intent.as_deref(), Some(paid.id.as_str()));
    assert_eq!((completed.client_id, paid.client_id, paid.amount_received), (Some(42), Some(42), 2000));
    assert!(!paid.off_session);
    let current = stripe.retrieve_checkout_session(&session.id).await.unwrap();
    assert_eq!(&current, completed);
}

#[tokio::test]
async fn stripe_delivers_payment_first_and_in_copies_when_asked() {
    let fake = FakeStripe::start().await;
    let receiver = Receiver::start(&fake.webhook_secret).await;
    fake.deliver_to(&receiver.url);
    let session = client(&fake).create_checkout_session(&payment(42, "checkout:42:10")).await.unwrap();
    let statuses = fake.pay(&session.id, CARD_OK, Delivery { payment_first: true, copies: 2 }).await;
    assert_eq!(statuses, vec![200; 4]);
    let events: Vec<_> = receiver.received().iter().map(|r| webhook::parse_event(&r.body).unwrap()).collect();
    assert!(matches!(events[0].kind, EventKind::PaymentSucceeded(_)), "{events:?}");
    assert!(matches!(events[1].kind, EventKind::CheckoutCompleted(_)), "{events:?}");
    assert_eq!(events[0].id, events[2].id, "a copy is the same event");
    assert_eq!(events[1].id, events[3].id);
    assert!(fake.pay(&session.id, CARD_OK, Delivery::default()).await.is_empty(), "a paid session pays once");
}

#[tokio::test]
async fn stripe_refund_delivers_charge_refunded_with_the_cumulative_amount() {
    let fake = FakeStripe::start().await;
    let receiver = Receiver::start(&fake.webhook_secret).await;
    fake.deliver_to(&receiver.url);
    let session = client(&fake).create_checkout_session(&payment(42, "checkout:42:11")).await.unwrap();
    fake.pay(&session.id, CARD_OK, Delivery::default()).await;
    let paid = client(&fake).retrieve_checkout_session(&session.id).await.unwrap();
    let pi = paid.payment_intent.unwrap();
    assert_eq!(fake.refund(&pi, 500).await, vec![200]);
    assert_eq!(fake.refund(&pi, 700).await, vec![200]);
    let refunds: Vec<_> = receiver
        .kinds()
        .into_iter()
        .filter_map(|k| if let EventKind::ChargeRefunded(r) = k { Some(r) } else { None })
        .collect();
    assert_eq!(refunds.len(), 2);
    assert_eq!((refunds[0].amount_refunded, refunds[1].amount_refunded), (500, 1200));
    assert_eq!((refunds[1].amount, refunds[1].client_id), (2000, Some(42)));
    assert_eq!(refunds[1].payment_intent.as_deref(), Some(pi.as_str()));
}

#[tokio::test]
async fn stripe_signature_variants_are_told_apart_by_verify() {
    let fake = FakeStripe::start().await;
    let receiver = Receiver::start(&fake.webhook_secret).await;
    fake.deliver_to(&receiver.url);
    let event = fake.event("payment_intent.succeeded", json!({ "id": "pi_x", "object": "payment_intent" }));
    assert_eq!(fake.send_event(&event, Signing::Valid).await, 200);
    assert_eq!(fake.send_event(&event, Signing::AlsoWithSecret("whsec_other".into())).await, 200);
    assert_eq!(fake.send_event(&event, Signing::WithSecret("whsec_other".into())).await, 400);
    assert_eq!(fake.send_event(&event, Signing::Tampered).await, 400);
    assert_eq!(fake.send_event(&event, Signing::None).await, 400);
    assert_eq!(fake.send_event(&event, Signing::At(now() - 3600)).await, 400);
    assert_eq!(fake.send_event(&event, Signing::At(now() + 3600)).await, 400);
    let verdicts: Vec<_> = receiver.received().into_iter().map(|r| r.verdict).collect();
    assert_eq!(verdicts[2], Err(SignatureError::Mismatch));
    assert_eq!(verdicts[3], Err(SignatureError::Mismatch));
    assert_eq!(verdicts[4], Err(SignatureError::NoSignature));
    assert!(matches!(verdicts[5], Err(SignatureError::Stale { age_s }) if age_s >= 3600));
    assert!(matches!(verdicts[6], Err(SignatureError::Stale { age_s }) if age_s <= -3600));
}

#[tokio::test]
async fn stripe_hosted_page_pays_and_redirects_to_the_success_url_with_the_session_id() {
    let fake = FakeStripe::start().await;
    let receiver = Receiver::start(&fake.webhook_secret).await;
    fake.deliver_to(&receiver.url);
    let session = client(&fake).create_checkout_session(&payment(42, "checkout:42:12")).await.unwrap();
    let url = session.url.clone().unwrap();
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = browser.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"pay\"") && page.contains("$20.00") && page.contains(CARD_OK), "{page}");

    let declined = browser.post(&url).form(&[("card", CARD_DECLINED)]).send().await.unwrap();
    assert_eq!(declined.status(), 402);
    assert!(declined.text().await.unwrap().contains("Your card was declined."));

    let paid = browser.post(&url).form(&[("card", CARD_OK)]).send().await.unwrap();
    assert_eq!(paid.status(), 303);
    let location = paid.headers()["location"].to_str().unwrap();
    assert_eq!(location, format!("http://app.example/billing/done?session_id={}", session.id));
    let kinds = receiver.kinds();
    assert!(
        matches!(
            kinds.as_slice(),
            [EventKind::PaymentFailed(_), EventKind::CheckoutCompleted(_), EventKind::PaymentSucceeded(_)]
        ),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn stripe_fake_marks_a_replayed_answer_and_refuses_a_missing_key() {
    let fake = FakeStripe::start().await;
    let url = format!("{}/v1/customers", fake.base_url);
    let http = reqwest::Client::new();
    let create = || {
        http.post(&url)
            .bearer_auth(&fake.secret_key)
            .header("Idempotency-Key", "customer:5")
            .form(&[("name", "Bella's Salon"), ("metadata[client_id]", "5")])
    };
    let first = create().send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: serde_json::Value = first.json().await.unwrap();
    assert_eq!(first["metadata"]["client_id"], "5");
    let again = create().send().await.unwrap();
    assert_eq!(again.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);

    let anonymous = http.post(&url).form(&[("name", "x")]).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
}
