//! Stripe webhooks: the `Stripe-Signature` check over the raw body, and the few event types
//! billing acts on, parsed into typed events. It never decides what an event does to an
//! account; callers dedupe on `Event::id` and re-read objects, since Stripe neither orders
//! nor deduplicates deliveries.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use super::client::{
    CheckoutSession, Expandable, Metadata, RELOAD_AUTO, RELOAD_KEY, WireCheckoutSession, WirePaymentIntent,
};

type HmacSha256 = Hmac<Sha256>;

/// Stripe's default tolerance between the signature's timestamp and now.
pub const DEFAULT_TOLERANCE_S: i64 = 300;

/// Why a delivery's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header has no readable timestamp (t=...)")]
    Malformed,
    #[error("the Stripe-Signature header has no v1 signature")]
    NoSignature,
    #[error("the signature's timestamp is {age_s} s away from now, beyond the tolerance (a replay or a wrong clock)")]
    Stale { age_s: i64 },
    #[error("no v1 signature matches the body under any configured webhook secret")]
    Mismatch,
}

/// Checks a delivery: some `v1` in `header` must be the HMAC-SHA256 of `"{t}.{payload}"`
/// under one of `secrets` (several while a secret is rolled), and `t` must lie within
/// `tolerance_s` of `now_unix` in either direction. `payload` must be the raw body bytes.
pub fn verify(
    payload: &[u8],
    header: &str,
    secrets: &[SecretString],
    now_unix: i64,
    tolerance_s: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        let Some((scheme, value)) = item.trim().split_once('=') else {
            continue;
        };
        match scheme {
            "t" => timestamp = Some(value.trim().parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            // A v1 that is not hex cannot match; it is kept only to count as present.
            "v1" => signatures.push(hex::decode(value.trim()).unwrap_or_default()),
            // v0 is test mode's legacy scheme; other schemes are not Stripe's to us.
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::NoSignature);
    }
    let matched = secrets.iter().any(|secret| {
        let expected = mac(payload, secret.expose_secret(), t);
        // verify_slice compares in constant time.
        signatures.iter().any(|given| expected.clone().verify_slice(given).is_ok())
    });
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    let age_s = now_unix.saturating_sub(t);
    if age_s.saturating_abs() > tolerance_s {
        return Err(SignatureError::Stale { age_s });
    }
    Ok(())
}

/// The header Stripe would send for `payload` signed with `secret` at time `t`:
/// `t={t},v1={hex}`.
pub fn sign(payload: &[u8], secret: &str, t: i64) -> String {
    format!("t={t},v1={}", hex::encode(mac(payload, secret, t).finalize().into_bytes()))
}

fn mac(payload: &[u8], secret: &str, t: i64) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// One delivered event, reduced to what billing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `evt_…`: the key to deduplicate deliveries on.
    pub id: String,
    pub created: i64,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `checkout.session.completed` and `checkout.session.async_payment_succeeded`; fulfil
    /// only when `payment_status` is `paid` (or `no_payment_required` for setup mode).
    CheckoutCompleted(CheckoutSession),
    /// `checkout.session.async_payment_failed` and `checkout.session.expired`.
    CheckoutFailed(CheckoutSession),
    /// `payment_intent.succeeded`.
    PaymentSucceeded(PaymentIntentEvent),
    /// `payment_intent.payment_failed`, with the last payment error.
    PaymentFailed(PaymentIntentEvent),
    /// `charge.refunded`.
    ChargeRefunded(ChargeRefund),
    /// Any other type, named for the log; acknowledged and ignored.
    Other(String),
}

/// A PaymentIntent as carried by its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentIntentEvent {
    pub id: String,
    pub amount: i64,
    pub amount_received: i64,
    pub client_id: Option<i64>,
    pub customer: Option<String>,
    pub payment_method: Option<String>,
    /// From `last_payment_error` (`decline_code` when Stripe gives no `code`).
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// True for the client's off-session reloads (`metadata[reload]=auto`).
    pub off_session: bool,
}

/// A refund as seen on its charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRefund {
    /// `ch_…`
    pub charge: String,
    pub payment_intent: Option<String>,
    /// What was charged.
    pub amount: i64,
    /// Everything refunded on the charge so far (cumulative, as Stripe sends it).
    pub amount_refunded: i64,
    pub client_id: Option<i64>,
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(default)]
    created: i64,
    #[serde(rename = "type")]
    kind: String,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    object: Value,
}

#[derive(Deserialize)]
struct WireCharge {
    id: String,
    payment_intent: Option<Expandable>,
    #[serde(default)]
    amount: i64,
    #[serde(default)]
    amount_refunded: i64,
    #[serde(default)]
    metadata: Metadata,
}

/// Parses a delivered (and verified) body. Types billing does not act on become
/// [`EventKind::Other`]; a known type whose object is not the expected shape is an error.
pub fn parse_event(payload: &[u8]) -> Result<Event, serde_json::Error> {
    let envelope: Envelope = serde_json::from_slice(payload)?;
    let object = envelope.data.object;
    let kind = match envelope.kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            EventKind::CheckoutCompleted(serde_json::from_value::<WireCheckoutSession>(object)?.into())
        }
        "checkout.session.async_payment_failed" | "checkout.session.expired" => {
            EventKind::CheckoutFailed(serde_json::from_value::<WireCheckoutSession>(object)?.into())
        }
        "payment_intent.succeeded" => {
            EventKind::PaymentSucceeded(payment_intent_event(serde_json::from_value(object)?))
        }
        "payment_intent.payment_failed" => {
            EventKind::PaymentFailed(payment_intent_event(serde_json::from_value(object)?))
        }
        "charge.refunded" => {
            let charge: WireCharge = serde_json::from_value(object)?;
            EventKind::ChargeRefunded(ChargeRefund {
                client_id: charge.metadata.client_id(),
                charge: charge.id,
                payment_intent: charge.payment_intent.map(Expandable::into_id),
                amount: charge.amount,
                amount_refunded: charge.amount_refunded,
            })
        }
        _ => EventKind::Other(envelope.kind),
    };
    Ok(Event { id: envelope.id, created: envelope.created, kind })
}

fn payment_intent_event(pi: WirePaymentIntent) -> PaymentIntentEvent {
    let (error_code, error_message) = match pi.last_payment_error {
        Some(error) => (error.code.or(error.decline_code), error.message),
        None => (None, None),
    };
    PaymentIntentEvent {
        client_id: pi.metadata.client_id(),
        off_session: pi.metadata.get(RELOAD_KEY) == Some(RELOAD_AUTO),
        id: pi.id,
        amount: pi.amount,
        amount_received: pi.amount_received,
        customer: pi.customer.map(Expandable::into_id),
        payment_method: pi.payment_method.map(Expandable::into_id),
        error_code,
        error_message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_new";
    const OLD_SECRET: &str = "whsec_test_old";
    const NOW: i64 = 1_767_225_600;
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event","type":"payment_intent.succeeded"}"#;

    fn secrets(list: &[&str]) -> Vec<SecretString> {
        list.iter().map(|s| SecretString::from(*s)).collect()
    }

    fn check(header: &str, list: &[&str]) -> Result<(), SignatureError> {
        verify(BODY, header, &secrets(list), NOW, DEFAULT_TOLERANCE_S)
    }

    fn v1(secret: &str, t: i64) -> String {
        sign(BODY, secret, t).split_once(",v1=").map(|(_, hex)| hex.to_owned()).unwrap()
    }

    #[test]
    fn a_signature_made_with_the_secret_now_verifies() {
        assert_eq!(check(&sign(BODY, SECRET, NOW), &[SECRET]), Ok(()));
    }

    #[test]
    fn the_signature_matches_an_independent_hmac_sha256_computation() {
        // Computed independently with Python:
        // hmac.new(b"whsec_test_new", b"1767225600." + BODY, hashlib.sha256).hexdigest()
        let header = sign(BODY, SECRET, NOW);
        assert!(header.starts_with("t=1767225600,v1="), "{header}");
        assert_eq!(v1(SECRET, NOW).len(), 64);
        assert_eq!(v1(SECRET, NOW), EXPECTED_V1);
    }

    const EXPECTED_V1: &str = "6850488cfa41f31c052d52fa04df30e7638897b17fc6e5f222ec4f153df18e37";

    #[test]
    fn a_second_v1_that_matches_is_enough_when_the_first_does_not() {
        let header = format!("t={NOW},v1={},v1={}", v1("whsec_someone_else", NOW), v1(SECRET, NOW));
        assert_eq!(check(&header, &[SECRET]), Ok(()));
        // And the other way round: checking only the last v1 would refuse this one.
        let header = format!("t={NOW},v1={},v1={}", v1(SECRET, NOW), v1("whsec_someone_else", NOW));
        assert_eq!(check(&header, &[SECRET]), Ok(()));
    }

    #[test]
    fn a_header_with_only_v0_has_no_signature() {
        let header = format!("t={NOW},v0={}", v1(SECRET, NOW));
        assert_eq!(check(&header, &[SECRET]), Err(SignatureError::NoSignature));
    }

    #[test]
    fn v0_and_unknown_schemes_beside_a_good_v1_are_ignored() {
        let header = format!("t={NOW},v0=6ffbb5,v1={},v9=zz,junk", v1(SECRET, NOW));
        assert_eq!(check(&header, &[SECRET]), Ok(()));
    }

    #[test]
    fn a_tampered_body_does_not_verify() {
        let header = sign(BODY, SECRET, NOW);
        let tampered = br#"{"id":"evt_1","object":"event","type":"payment_intent.succeeded" }"#;
        assert_eq!(
            verify(tampered, &header, &secrets(&[SECRET]), NOW, DEFAULT_TOLERANCE_S),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_signature_older_than_the_tolerance_is_stale() {
        let t = NOW - 301;
        assert_eq!(check(&sign(BODY, SECRET, t), &[SECRET]), Err(SignatureError::Stale { age_s: 301 }));
        assert_eq!(check(&sign(BODY, SECRET, NOW - 300), &[SECRET]), Ok(()));
    }

    #[test]
    fn a_signature_from_the_future_beyond_the_tolerance_is_stale_too() {
        let t = NOW + 600;
        assert_eq!(check(&sign(BODY, SECRET, t), &[SECRET]), Err(SignatureError::Stale { age_s: -600 }));
    }

    #[test]
    fn garbage_headers_are_malformed() {
        for header in ["", "garbage", "t=,v1=abc", "t=yesterday,v1=abcd", "v1=abcd"] {
            assert_eq!(check(header, &[SECRET]), Err(SignatureError::Malformed), "{header:?}");
        }
    }

    #[test]
    fn a_v1_that_is_not_hex_is_a_mismatch_not_a_panic() {
        assert_eq!(check(&format!("t={NOW},v1=not-hex"), &[SECRET]), Err(SignatureError::Mismatch));
    }

    #[test]
    fn while_a_secret_is_rolled_both_the_old_and_the_new_are_accepted() {
        let list = [OLD_SECRET, SECRET];
        assert_eq!(check(&sign(BODY, OLD_SECRET, NOW), &list), Ok(()));
        assert_eq!(check(&sign(BODY, SECRET, NOW), &list), Ok(()));
        assert_eq!(check(&sign(BODY, "whsec_unknown", NOW), &list), Err(SignatureError::Mismatch));
        assert_eq!(check(&sign(BODY, OLD_SECRET, NOW), &[SECRET]), Err(SignatureError::Mismatch));
    }

    #[test]
    fn errors_explain_themselves() {
        assert!(SignatureError::Stale { age_s: 900 }.to_string().contains("900 s"));
        assert!(SignatureError::NoSignature.to_string().contains("v1"));
        assert!(SignatureError::Malformed.to_string().contains("timestamp"));
        assert!(SignatureError::Mismatch.to_string().contains("secret"));
    }

    const CHECKOUT_COMPLETED: &str = r#"{
      "id": "evt_1QcCheckout", "object": "event", "api_version": "2026-06-24.dahlia", "created": 1767225600,
      "data": { "object": {
        "id": "cs_test_a1b2", "object": "checkout.session", "amount_subtotal": 2000, "amount_total": 2000,
        "cancel_url": "https://app.example/billing", "client_reference_id": "42", "currency": "usd",
        "customer": "cus_R1", "customer_details": { "email": "owner@example.com", "name": null },
        "customer_email": null, "expires_at": 1767312000, "livemode": false,
        "metadata": { "client_id": "42" }, "mode": "payment", "payment_intent": "pi_3Q1",
        "payment_method_types": ["card"], "payment_status": "paid", "setup_intent": null, "status": "complete",
        "success_url": "https://app.example/billing/done?session_id={CHECKOUT_SESSION_ID}", "url": null
      } },
      "livemode": false, "pending_webhooks": 1, "request": { "id": null, "idempotency_key": null },
      "type": "checkout.session.completed"
    }"#;

    #[test]
    fn a_completed_checkout_is_parsed_with_its_client_and_payment_intent() {
        let event = parse_event(CHECKOUT_COMPLETED.as_bytes()).unwrap();
        assert_eq!(event.id, "evt_1QcCheckout");
        assert_eq!(event.created, 1_767_225_600);
        let EventKind::CheckoutCompleted(session) = event.kind else { panic!("{event:?}") };
        assert_eq!(session.id, "cs_test_a1b2");
        assert_eq!(session.status, "complete");
        assert_eq!(session.payment_status, "paid");
        assert_eq!(session.payment_intent.as_deref(), Some("pi_3Q1"));
        assert_eq!(session.customer.as_deref(), Some("cus_R1"));
        assert_eq!(session.amount_total, Some(2000));
        assert_eq!(session.mode, "payment");
        assert_eq!(session.client_id, Some(42));
        assert_eq!(session.url, None);
    }

    #[test]
    fn a_setup_mode_checkout_carries_its_setup_intent() {
        let body = r#"{"id":"evt_2","object":"event","created":1767225601,"type":"checkout.session.completed",
          "data":{"object":{"id":"cs_test_setup","object":"checkout.session","mode":"setup","status":"complete",
          "payment_status":"no_payment_required","payment_intent":null,"setup_intent":"seti_1Q",
          "customer":"cus_R1","amount_total":null,"metadata":{"client_id":"7"}}}}"#;
        let EventKind::CheckoutCompleted(session) = parse_event(body.as_bytes()).unwrap().kind else { panic!() };
        assert_eq!(session.setup_intent.as_deref(), Some("seti_1Q"));
        assert_eq!(session.payment_intent, None);
        assert_eq!(session.amount_total, None);
        assert_eq!(session.client_id, Some(7));
    }

    #[test]
    fn async_checkout_outcomes_map_to_completed_and_failed() {
        let with_type =
            |kind: &str| CHECKOUT_COMPLETED.replace("\"checkout.session.completed\"", &format!("\"{kind}\""));
        let parsed = |kind: &str| parse_event(with_type(kind).as_bytes()).unwrap().kind;
        assert!(matches!(parsed("checkout.session.async_payment_succeeded"), EventKind::CheckoutCompleted(_)));
        assert!(matches!(parsed("checkout.session.async_payment_failed"), EventKind::CheckoutFailed(_)));
        assert!(matches!(parsed("checkout.session.expired"), EventKind::CheckoutFailed(_)));
    }

    #[test]
    fn a_succeeded_payment_intent_is_parsed_and_an_off_session_reload_is_recognised() {
        let body = r#"{"id":"evt_3","object":"event","api_version":"2026-06-24.dahlia","created":1767225602,
          "data":{"object":{"id":"pi_3Q2","object":"payment_intent","amount":2500,"amount_received":2500,
          "currency":"usd","customer":"cus_R1","payment_method":"pm_1Q","status":"succeeded",
          "last_payment_error":null,"latest_charge":"ch_3Q2","metadata":{"client_id":"7","reload":"auto"}}},
          "livemode":false,"pending_webhooks":1,"request":{"id":"req_1","idempotency_key":"reload:7:3"},
          "type":"payment_intent.succeeded"}"#;
        let EventKind::PaymentSucceeded(pi) = parse_event(body.as_bytes()).unwrap().kind else { panic!() };
        assert_eq!(
            pi,
            PaymentIntentEvent {
                id: "pi_3Q2".into(),
                amount: 2500,
                amount_received: 2500,
                client_id: Some(7),
                customer: Some("cus_R1".into()),
                payment_method: Some("pm_1Q".into()),
                error_code: None,
                error_message: None,
                off_session: true,
            }
        );
    }

    #[test]
    fn a_failed_payment_carries_the_last_payment_error() {
        let body = r#"{"id":"evt_4","object":"event","created":1767225603,"type":"payment_intent.payment_failed",
          "data":{"object":{"id":"pi_3Q3","object":"payment_intent","amount":2500,"amount_received":0,
          "customer":"cus_R1","payment_method":null,"status":"requires_payment_method",
          "last_payment_error":{"type":"card_error","code":"authentication_required",
            "decline_code":"authentication_required","message":"This payment requires authentication.",
            "payment_method":{"id":"pm_1Q","object":"payment_method"}},
          "metadata":{"client_id":"7"}}}}"#;
        let EventKind::PaymentFailed(pi) = parse_event(body.as_bytes()).unwrap().kind else { panic!() };
        assert_eq!(pi.error_code.as_deref(), Some("authentication_required"));
        assert_eq!(pi.error_message.as_deref(), Some("This payment requires authentication."));
        assert_eq!(pi.amount_received, 0);
        assert!(!pi.off_session);
    }

    #[test]
    fn a_refunded_charge_reports_the_cumulative_amount_refunded() {
        let body = r#"{"id":"evt_5","object":"event","created":1767225604,"type":"charge.refunded",
          "data":{"object":{"id":"ch_3Q1","object":"charge","amount":2000,"amount_captured":2000,
          "amount_refunded":1500,"refunded":false,"currency":"usd","payment_intent":"pi_3Q1",
          "metadata":{"client_id":"42"},"status":"succeeded"},
          "previous_attributes":{"amount_refunded":500}}}"#;
        let EventKind::ChargeRefunded(refund) = parse_event(body.as_bytes()).unwrap().kind else { panic!() };
        assert_eq!(
            refund,
            ChargeRefund {
                charge: "ch_3Q1".into(),
                payment_intent: Some("pi_3Q1".into()),
                amount: 2000,
                amount_refunded: 1500,
                client_id: Some(42),
            }
        );
    }

    #[test]
    fn an_unparseable_client_id_is_none_rather_than_an_error() {
        let body = CHECKOUT_COMPLETED
            .replace(r#""client_id": "42""#, r#""client_id": "forty-two""#)
            .replace(r#""client_reference_id": "42""#, r#""client_reference_id": null"#);
        let EventKind::CheckoutCompleted(session) = parse_event(body.as_bytes()).unwrap().kind else { panic!() };
        assert_eq!(session.client_id, None);
        let no_metadata = CHECKOUT_COMPLETED.replace(r#""metadata": { "client_id": "42" }"#, r#""metadata": null"#);
        let EventKind::CheckoutCompleted(session) = parse_event(no_metadata.as_bytes()).unwrap().kind else { panic!() };
        assert_eq!(session.client_id, Some(42), "client_reference_id stands in for missing metadata");
    }

    #[test]
    fn other_event_types_are_named_and_ignored() {
        let body = r#"{"id":"evt_6","object":"event","created":1767225605,"type":"customer.created",
          "data":{"object":{"id":"cus_R1","object":"customer"}}}"#;
        assert_eq!(parse_event(body.as_bytes()).unwrap().kind, EventKind::Other("customer.created".into()));
    }

    #[test]
    fn a_known_type_with_a_malformed_object_is_an_error() {
        let body =
            r#"{"id":"evt_7","object":"event","created":1,"type":"charge.refunded","data":{"object":{"amount":1}}}"#;
        assert!(parse_event(body.as_bytes()).is_err());
        assert!(parse_event(b"not json").is_err());
    }
}
