//! Outbound webhooks, checked by a receiver written from the README's description alone:
//! each event reaches each subscribed endpoint once however many workers run, signed so
//! the receiver can tell it is ours and fresh; refusals are retried and a resend carries
//! the same event; endpoints are the owner's own and must be https.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Method, StatusCode};
use ringlypro::services::webhooks::Webhooks;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{Options, SignedInOwner, TestApp, spawn_app_with};

/// What the receiver got: verified events, and how many requests failed the check.
#[derive(Default, Clone)]
struct Received {
    events: Vec<Value>,
    bad_signatures: usize,
    /// Answer 503 to this many requests first.
    refuse_first: usize,
}

#[derive(Clone)]
struct Receiver {
    secret: Arc<Mutex<String>>,
    got: Arc<Mutex<Received>>,
}

/// The check as the README describes it: `RinglyPro-Signature: t=<unix>,v1=<hex>`, where
/// hex is HMAC-SHA256 keyed with the secret over `<unix>.<raw body>`; older than five
/// minutes is refused.
fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1.push(value.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (Utc::now().timestamp() - t).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let expected = hex::encode(mac.finalize().into_bytes());
    v1.iter().any(|sig| sig == &expected)
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> AxumStatus {
    let secret = receiver.secret.lock().unwrap().clone();
    let mut got = receiver.got.lock().unwrap();
    let header = headers.get("ringlypro-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !verify(&secret, header, &body) {
        got.bad_signatures += 1;
        return AxumStatus::BAD_REQUEST;
    }
    if got.refuse_first > 0 {
        got.refuse_first -= 1;
        return AxumStatus::SERVICE_UNAVAILABLE;
    }
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(headers["ringlypro-event"].to_str().unwrap(), event["type"].as_str().unwrap());
    assert_eq!(headers["ringlypro-delivery"].to_str().unwrap(), event["id"].as_str().unwrap());
    got.events.push(event);
    AxumStatus::OK
}

async fn start_receiver() -> (String, Receiver) {
    let receiver = Receiver { secret: Arc::default(), got: Arc::default() };
    let app = Router::new().route("/hooks", post(receive)).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, receiver)
}

async fn app() -> TestApp {
    spawn_app_with(Options {
        env: vec![("WEBHOOK_ALLOW_HTTP", "true".into()), ("WEBHOOK_POLL_MS", "3600000".into())],
        ..Default::default()
    })
    .await
}

async fn subscribe(owner: &SignedInOwner, url: &str, events: &[&str], receiver: &Receiver) -> Value {
    let response = owner.send_json(Method::POST, "/api/webhooks", &json!({ "url": url, "events": events })).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let endpoint: Value = response.json().await.unwrap();
    *receiver.secret.lock().unwrap() = endpoint["secret"].as_str().unwrap().to_owned();
    endpoint
}

async fn book(owner: &SignedInOwner, name: &str, phone: &str, time: &str) -> Value {
    let body = json!({ "customer_name": name, "customer_phone": phone, "date": "2031-03-04", "time": time });
    let response = owner.send_json(Method::POST, "/api/appointments", &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

fn worker(app: &TestApp) -> Webhooks {
    Webhooks::new(app.pool.clone(), &app.state.config).unwrap()
}

#[tokio::test]
async fn each_event_reaches_each_endpoint_once_signed_however_many_workers_run() {
    let app = app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile Dental").await;
    let (url, receiver) = start_receiver().await;
    subscribe(&owner, &url, &["appointment.booked", "appointment.cancelled", "contact.created"], &receiver).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        let appointment =
            book(&owner, &format!("Caller {i}"), &format!("(555) 201-00{i:02}"), &format!("{}:00", 9 + i)).await;
        ids.push(appointment["id"].as_i64().unwrap());
    }
    let cancelled = owner.delete(&format!("/api/appointments/{}", ids[0])).await;
    assert_eq!(cancelled.status(), StatusCode::OK);

    let (a, b, c) = (worker(&app), worker(&app), worker(&app));
    let now = Utc::now();
    let (ra, rb, rc) = tokio::join!(a.run_once(now), b.run_once(now), c.run_once(now));
    assert_eq!(
        ra.unwrap() + rb.unwrap() + rc.unwrap(),
        17,
        "8 contacts, 8 bookings, 1 cancellation, each claimed once"
    );
    a.run_once(Utc::now()).await.unwrap();

    let got = receiver.got.lock().unwrap().clone();
    assert_eq!(got.bad_signatures, 0);
    let count = |kind: &str| got.events.iter().filter(|e| e["type"] == kind).count();
    assert_eq!((count("contact.created"), count("appointment.booked"), count("appointment.cancelled")), (8, 8, 1));
    let mut event_ids: Vec<_> = got.events.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    event_ids.sort();
    event_ids.dedup();
    assert_eq!(event_ids.len(), 17, "no event twice");
    let cancel = got.events.iter().find(|e| e["type"] == "appointment.cancelled").unwrap();
    assert_eq!(cancel["data"]["appointment"]["id"], ids[0]);
    assert_eq!(cancel["data"]["appointment"]["status"], "cancelled");
    assert_eq!(cancel["business_id"], owner.client_id.get());
    let booked = got.events.iter().find(|e| e["type"] == "appointment.booked").unwrap();
    assert!(booked["data"]["appointment"]["confirmation_code"].is_string(), "{booked}");

    let log: Vec<Value> = owner.get("/api/webhooks/deliveries").await.json().await.unwrap();
    assert_eq!(log.len(), 17);
    assert!(log.iter().all(|d| d["status"] == "delivered" && d["attempts"] == 1), "{log:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_refused_delivery_is_retried_later_and_a_resend_carries_the_same_event() {
    let app = app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile Dental").await;
    let (url, receiver) = start_receiver().await;
    subscribe(&owner, &url, &["appointment.booked"], &receiver).await;
    receiver.got.lock().unwrap().refuse_first = 2;
    book(&owner, "Ana Ruiz", "(555) 201-0001", "10:00").await;

    let worker = worker(&app);
    let start = Utc::now();
    assert_eq!(worker.run_once(start).await.unwrap(), 1);
    assert_eq!(worker.run_once(start + chrono::Duration::seconds(10)).await.unwrap(), 0, "not before its delay");
    let log: Vec<Value> = owner.get("/api/webhooks/deliveries").await.json().await.unwrap();
    assert_eq!(log[0]["status"], "pending");
    assert_eq!(log[0]["last_status"], 503);
    assert!(log[0]["last_error"].as_str().unwrap().contains("503"), "{}", log[0]);
    assert_eq!(worker.run_once(start + chrono::Duration::seconds(31)).await.unwrap(), 1);
    assert_eq!(worker.run_once(start + chrono::Duration::seconds(31 + 61)).await.unwrap(), 1);
    let log: Vec<Value> = owner.get("/api/webhooks/deliveries").await.json().await.unwrap();
    assert_eq!((log[0]["status"].as_str(), log[0]["attempts"].as_i64()), (Some("delivered"), Some(3)));
    let first_id = receiver.got.lock().unwrap().events[0]["id"].clone();

    let id = log[0]["id"].as_i64().unwrap();
    let other = app.signed_in_owner("omar@example.com", "Omar's Barbers").await;
    let stranger = other.send_json(Method::POST, &format!("/api/webhooks/deliveries/{id}/resend"), &json!({})).await;
    assert_eq!(stranger.status(), StatusCode::NOT_FOUND, "another business cannot resend it");
    let again = owner.send_json(Method::POST, &format!("/api/webhooks/deliveries/{id}/resend"), &json!({})).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(worker.run_once(Utc::now()).await.unwrap(), 1);
    let got = receiver.got.lock().unwrap().clone();
    assert_eq!(got.events.len(), 2);
    assert_eq!(got.events[1]["id"], first_id, "the same event, so the receiver can tell it is a repeat");
    app.stop().await;
}

#[tokio::test]
async fn a_delivery_that_keeps_failing_gives_up_after_a_day_and_a_removed_endpoint_gets_nothing() {
    let app = app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile Dental").await;
    let (url, receiver) = start_receiver().await;
    let endpoint = subscribe(&owner, &url, &["appointment.booked"], &receiver).await;
    receiver.got.lock().unwrap().refuse_first = usize::MAX;
    book(&owner, "Ana Ruiz", "(555) 201-0001", "10:00").await;
    let worker = worker(&app);
    let mut at = Utc::now();
    for _ in 0..40 {
        worker.run_once(at).await.unwrap();
        at += chrono::Duration::hours(1);
    }
    let log: Vec<Value> = owner.get("/api/webhooks/deliveries").await.json().await.unwrap();
    assert_eq!(log[0]["status"], "failed", "{}", log[0]);
    let attempts = log[0]["attempts"].as_i64().unwrap();
    assert!((20..=30).contains(&attempts), "tried through the day, then stopped: {attempts}");

    let removed = owner.delete(&format!("/api/webhooks/{}", endpoint["id"])).await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    receiver.got.lock().unwrap().refuse_first = 0;
    book(&owner, "Bo", "(555) 201-0002", "11:00").await;
    worker.run_once(Utc::now()).await.unwrap();
    assert!(receiver.got.lock().unwrap().events.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn endpoints_must_be_https_with_known_events_and_belong_to_their_business() {
    let app = spawn_app_with(Options::default()).await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile Dental").await;
    let plain = owner
        .send_json(
            Method::POST,
            "/api/webhooks",
            &json!({ "url": "http://hooks.example.com/x", "events": ["call.completed"] }),
        )
        .await;
    assert_eq!(plain.status(), StatusCode::BAD_REQUEST);
    let body: Value = plain.json().await.unwrap();
    assert_eq!(body["field"], "url");
    let unknown = owner
        .send_json(
            Method::POST,
            "/api/webhooks",
            &json!({ "url": "https://hooks.example.com/x", "events": ["call.started"] }),
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(unknown.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("call.completed"));
    let none = owner
        .send_json(Method::POST, "/api/webhooks", &json!({ "url": "https://hooks.example.com/x", "events": [] }))
        .await;
    assert_eq!(none.status(), StatusCode::BAD_REQUEST);
    let added = owner
        .send_json(
            Method::POST,
            "/api/webhooks",
            &json!({ "url": "https://hooks.example.com/x", "events": ["call.completed"] }),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let endpoint: Value = added.json().await.unwrap();
    assert!(endpoint["secret"].as_str().unwrap().starts_with("whsec_"));
    let other = app.signed_in_owner("omar@example.com", "Omar's Barbers").await;
    let theirs: Value = other.get("/api/webhooks").await.json().await.unwrap();
    assert_eq!(theirs, json!([]));
    assert_eq!(other.delete(&format!("/api/webhooks/{}", endpoint["id"])).await.status(), StatusCode::NOT_FOUND);

    // The page lists it with its secret; a bad address on the form is said plainly.
    let page = owner.get("/app/integrations").await.text().await.unwrap();
    assert!(page.contains("hooks.example.com") && page.contains(endpoint["secret"].as_str().unwrap()), "{page}");
    let refused = owner
        .post_form("/app/integrations/webhooks", &[("url", "hooks.example.com"), ("events", "call.completed")])
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("enter the full address"));
    let made = owner
        .post_form(
            "/app/integrations/webhooks",
            &[("url", "https://zap.example.com/1"), ("events", "appointment.booked"), ("events", "message.received")],
        )
        .await;
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    let listed: Vec<Value> = owner.get("/api/webhooks").await.json().await.unwrap();
    assert_eq!(listed[1]["events"], json!(["appointment.booked", "message.received"]));
    tokio::time::sleep(Duration::from_millis(1)).await;
    app.stop().await;
}

#[tokio::test]
async fn a_text_and_a_finished_call_are_told_with_the_words_said() {
    let app = app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile Dental").await;
    sqlx::query("UPDATE clients SET ringlypro_number = '+15550001111' WHERE id = $1")
        .bind(owner.client_id)
        .execute(&app.pool)
        .await
        .unwrap();
    let (url, receiver) = start_receiver().await;
    subscribe(&owner, &url, &["message.received", "call.completed", "contact.created"], &receiver).await;

    let response =
        crate::fakes::twilio::text_in(&app.base_url, "SMhook1", "+15557654321", "+15550001111", "Running 5 min late")
            .await;
    assert!(response.status().is_success());
    let call_id: i64 = sqlx::query_scalar(
        "INSERT INTO calls (client_id, call_sid, stream_sid, from_number, to_number, handled_by, status, outcome, \
                            language, started_at, ended_at) \
         VALUES ($1, 'CAhook', 'MZhook', '+15557654321', '+15550001111', 'agent', 'completed', 'message', 'en', \
                 now() - interval '2 minutes', now() - interval '1 minute') RETURNING id",
    )
    .bind(owner.client_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    for (seq, (speaker, text)) in
        [("agent", "Thank you for calling."), ("caller", "Please ask the doctor to call me")].iter().enumerate()
    {
        sqlx::query(
            "INSERT INTO call_turns (client_id, call_id, seq, speaker, text, started_at) VALUES ($1, $2, $3, $4, $5, now())",
        )
        .bind(owner.client_id)
        .bind(call_id)
        .bind(seq as i32)
        .bind(*speaker)
        .bind(*text)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    ringlypro::services::summaries::Summaries::new(app.pool.clone(), &app.state.config)
        .run_once(Utc::now())
        .await
        .unwrap();
    worker(&app).run_once(Utc::now()).await.unwrap();

    let got = receiver.got.lock().unwrap().clone();
    let of = |kind: &str| got.events.iter().filter(|e| e["type"] == kind).cloned().collect::<Vec<_>>();
    let texts = of("message.received");
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0]["data"]["body"], "Running 5 min late");
    assert_eq!(texts[0]["data"]["from"], "+15557654321");
    assert_eq!(of("contact.created").len(), 1, "the texter became a contact, once");
    let calls = of("call.completed");
    assert_eq!(calls.len(), 1);
    let call = &calls[0]["data"];
    assert_eq!(call["call_sid"], "CAhook");
    assert_eq!(call["outcome"], "message");
    assert_eq!(call["transcript"][1]["text"], "Please ask the doctor to call me");
    assert_eq!(call["transcript"][1]["speaker"], "caller");
    assert!(call["summary"].as_str().is_some_and(|s| s.contains("Left a message")), "{call}");
    assert!(call["link"].as_str().unwrap().ends_with("/app/calls/CAhook"));
    app.stop().await;
}
