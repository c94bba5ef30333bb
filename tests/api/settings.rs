//! The owner's settings: the page and its JSON twin, each field's rules, the switches,
//! forwarding codes, and that the next call uses what was saved.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use ringlypro::domain::ids::TenantId;
use ringlypro::telephony::twiml;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{SignedUp, TestApp, browser, sign_up, spawn_app, voice_params};

const NUMBER: &str = "+15550001111";

fn full_form(csrf: &str) -> Vec<(&'static str, String)> {
    vec![
        ("csrf_token", csrf.to_owned()),
        ("custom_greeting", "Hi, you've reached Bright Smile, this is Rachel!".into()),
        ("business_description", "Family dentistry on Main Street.".into()),
        ("services", "Cleanings are $99, whitening is $250.".into()),
        ("business_days", "mon-sat".into()),
        ("opens", "08:30".into()),
        ("closes", "18:00".into()),
        ("appointment_minutes", "45".into()),
        ("buffer_minutes", "15".into()),
        ("timezone", "America/Denver".into()),
        ("languages", "en".into()),
        ("languages", "es".into()),
        ("default_language", "en".into()),
    ]
}

/// Gives the tenant a RinglyPro number, as the pool would.
async fn give_number(app: &TestApp, client_id: TenantId, voice_path: &str) {
    sqlx::query("UPDATE clients SET ringlypro_number = $2, voice_path = $3 WHERE id = $1")
        .bind(client_id)
        .bind(NUMBER)
        .bind(voice_path)
        .execute(&app.pool)
        .await
        .unwrap();
}

async fn api_settings(app: &TestApp, client: &reqwest::Client) -> Value {
    let response = client.get(format!("{}/api/settings", app.base_url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn patch(app: &TestApp, client: &reqwest::Client, owner: &SignedUp, body: Value) -> reqwest::Response {
    client
        .patch(format!("{}/api/settings", app.base_url))
        .header("X-CSRF-Token", &owner.csrf)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn place_call(app: &TestApp, sid: &str) -> twiml::Instructions {
    let response = reqwest::Client::new()
        .post(format!("{}/twilio/voice", app.base_url))
        .form(&voice_params(sid, "+15557654321", NUMBER))
        .send()
        .await
        .unwrap();
    twiml::read(&response.text().await.unwrap())
}

#[tokio::test]
async fn a_greeting_saved_on_the_settings_page_is_what_the_next_call_hears() {
    let app = spawn_app().await;
    let client = browser();
    let owner = sign_up(&app, &client, "dana@example.com", "Bright Smile Dental").await;
    give_number(&app, owner.client_id, "relay").await;
    let before = place_call(&app, "CA_before").await;
    assert!(!before.welcome_greeting.unwrap().contains("this is Rachel!"));

    let response =
        client.post(format!("{}/app/settings", app.base_url)).form(&full_form(&owner.csrf)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/app/settings?saved=settings");

    let after = place_call(&app, "CA_after").await;
    assert_eq!(after.welcome_greeting.as_deref(), Some("Hi, you've reached Bright Smile, this is Rachel!"));
    let saved = api_settings(&app, &client).await;
    assert_eq!(saved["business_days"], "mon-sat");
    assert_eq!(saved["opens"], "08:30");
    assert_eq!(saved["closes"], "18:00");
    assert_eq!(saved["appointment_minutes"], 45);
    assert_eq!(saved["buffer_minutes"], 15);
    assert_eq!(saved["timezone"], "America/Denver");
    assert_eq!(saved["services"], "Cleanings are $99, whitening is $250.");
    assert_eq!(saved["languages"], json!(["en", "es"]));
    let page = client.get(format!("{}/app/settings?saved=settings", app.base_url)).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("The next call uses these settings"));
    assert!(html.contains("Family dentistry on Main Street."));
}

#[tokio::test]
async fn each_wrong_field_is_refused_by_name_and_nothing_is_saved() {
    let app = spawn_app().await;
    let client = browser();
    let owner = sign_up(&app, &client, "dana@example.com", "Bright Smile Dental").await;
    let before = api_settings(&app, &client).await;
    let cases = [
        (json!({"custom_greeting": "x".repeat(301)}), "custom_greeting"),
        (json!({"business_description": "x".repeat(1001)}), "business_description"),
        (json!({"services": "x".repeat(2001)}), "services"),
        (json!({"business_days": "someday"}), "business_days"),
        (json!({"opens": "nine"}), "opens"),
        (json!({"closes": "07:00"}), "closes"),
        (json!({"appointment_minutes": 2}), "appointment_minutes"),
        (json!({"buffer_minutes": 500}), "buffer_minutes"),
        (json!({"timezone": "Mars/Olympus"}), "timezone"),
        (json!({"languages": []}), "languages"),
        (json!({"languages": ["en"], "default_language": "es"}), "default_language"),
    ];
    for (body, field) in cases {
        let response = patch(&app, &client, &owner, body.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["field"], field, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().len() > 10);
    }
    let unknown = patch(&app, &client, &owner, json!({"greeting": "typo in the name"})).await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert_eq!(api_settings(&app, &client).await, before);
}

#[tokio::test]
async fn a_form_with_a_mistake_comes_back_with_everything_typed_and_a_message_at_the_field() {
    let app = spawn_app().await;
    let client = browser();
    let owner = sign_up(&app, &client, "dana@example.com", "Bright Smile Dental").await;
    let mut form = full_form(&owner.csrf);
    for (name, value) in form.iter_mut() {
        if *name == "timezone" {
            *value = "Narnia/Cair_Paravel".into();
        }
    }
    let response = client.post(format!("{}/app/settings", app.base_url)).form(&form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // Read the page as a browser shows it (templates escape `/` and `'`).
    let html = response.text().await.unwrap().replace("&#x2f;", "/").replace("&#x27;", "'").replace("&#39;", "'");
    assert!(html.contains("id=\"timezone-error\""));
    assert!(html.contains("Narnia/Cair_Paravel"));
    assert!(html.contains("Hi, you've reached Bright Smile, this is Rachel!"));
    assert!(html.contains("Cleanings are $99, whitening is $250."));
    let stored: Option<String> = sqlx::query_scalar("SELECT custom_greeting FROM clients WHERE id = $1")
        .bind(owner.client_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, None);
}

#[tokio::test]
async fn turning_rachel_off_in_settings_sends_the_next_call_to_the_owner() {
    let app = spawn_app().await;
    let client = browser();
    let owner = sign_up(&app, &client, "dana@example.com", "Bright Smile Dental").await;
    give_number(&app, owner.client_id, "stream").await;
    assert!(place_call(&app, "CA_on").await.stream_url.is_some());

    let response = client
        .post(format!("{}/app/settings/rachel", app.base_url))
        .form(&[("enabled", "false"), ("csrf_token", owner.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let off = place_call(&app, "CA_off").await;
    assert_eq!(off.dial.as_deref(), Some("+15559876543"));
    assert!(off.stream_url.is_none());

    // The JSON twin flips it back.
    let response = patch(&app, &client, &owner, json!({"rachel_enabled": true})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(place_call(&app, "CA_back_on").await.stream_url.is_some());
}

#[tokio::test]
async fn call_recording_is_switched_from_settings_and_the_page_says_callers_hear_a_notice() {
    let app = spawn_app().await;
    let client = browser();
    let owner = sign_up(&app, &client, "dana@example.com", "Bright Smile Dental").await;
    let html = client.get(format!("{}/app/settings", app.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Call recording is off"));
    assert!(html.contains("hears a short notice"));
    let response = client
        .post(format!("{}/app/settings/recording", app.base_url))
        .form(&[("enabled", "true"), ("csrf_token", owner.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(api_settings(&app, &client).await["recording_enabled"], true);
    let patched = patch(&app, &client, &owner, json!({"recording_enabled": false})).await;
    assert_eq!(patched.json::<Value>().await.unwrap()["recording_enabled"], false);
}

#[tokio::test]
async fn forwarding_codes_carry_the_ringlypro_number_or_say_it_is_pending() {
    let app = spawn_app().await;
    let client = browser();
    let owner = sign_up(&app, &client, "dana@example.com", "Bright Smile Dental").await;
    let pending = api_settings(&app, &client).await;
    assert_eq!(pending["number_pending"], true);
    assert_eq!(pending["forwarding"], json!([]));
    let html = client.get(format!("{}/app/settings", app.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("id=\"number-pending\""));

    give_number(&app, owner.client_id, "stream").await;
    let ready = api_settings(&app, &client).await;
    let codes = ready["forwarding"].as_array().unwrap();
    let carriers: Vec<&str> = codes.iter().map(|c| c["carrier_name"].as_str().unwrap()).collect();
    for name in
        ["AT&T", "Verizon", "T-Mobile", "Sprint", "U.S. Cellular", "Boost Mobile", "Visible", "Cricket Wireless"]
    {
        assert!(carriers.contains(&name), "{name} missing from {carriers:?}");
    }
    let verizon = codes.iter().find(|c| c["carrier"] == "verizon").unwrap();
    assert_eq!(verizon["turn_on"], "*715550001111");
    assert_eq!(verizon["turn_off"], "*73");
    let html = client.get(format!("{}/app/settings", app.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("**004*+15550001111**20#"));
    assert!(html.contains("(555) 000-1111"));
    assert!(!html.contains("id=\"number-pending\""));
}

#[tokio::test]
async fn settings_need_a_signed_in_owner_and_the_csrf_token() {
    let app = spawn_app().await;
    let anonymous = browser();
    let page = anonymous.get(format!("{}/app/settings", app.base_url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert!(page.headers()[LOCATION].to_str().unwrap().starts_with("/login?next="));
    let api = anonymous.get(format!("{}/api/settings", app.base_url)).send().await.unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let short = anonymous.get(format!("{}/settings", app.base_url)).send().await.unwrap();
    assert_eq!(short.headers()[LOCATION], "/app/settings");

    let client = browser();
    let owner = sign_up(&app, &client, "dana@example.com", "Bright Smile Dental").await;
    let no_token = client
        .patch(format!("{}/api/settings", app.base_url))
        .json(&json!({"custom_greeting": "Sneaky"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    let mut form = full_form(&owner.csrf);
    form.remove(0);
    let no_token = client.post(format!("{}/app/settings", app.base_url)).form(&form).send().await.unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    let no_token = client
        .post(format!("{}/app/settings/rachel", app.base_url))
        .form(&[("enabled", "false")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    let now = api_settings(&app, &client).await;
    assert_eq!(now["custom_greeting"], Value::Null);
    assert_eq!(now["rachel_enabled"], true);
}

#[tokio::test]
async fn one_owner_saving_settings_changes_only_their_own_business() {
    let app = spawn_app().await;
    let (a_client, b_client) = (browser(), browser());
    let a = sign_up(&app, &a_client, "a@example.com", "A Dental").await;
    let b = sign_up(&app, &b_client, "b@example.com", "B Salon").await;
    let b_before = api_settings(&app, &b_client).await;
    let response =
        patch(&app, &a_client, &a, json!({"custom_greeting": "Welcome to A!", "rachel_enabled": false})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.text().await.unwrap();
    assert!(!body.contains("B Salon"));
    assert_eq!(api_settings(&app, &b_client).await, b_before);
    assert_eq!(api_settings(&app, &a_client).await["custom_greeting"], "Welcome to A!");
    assert_ne!(a.client_id, b.client_id);
}

#[tokio::test]
async fn with_spanish_turned_off_pressing_two_keeps_the_call_in_english() {
    let app = spawn_app().await;
    let client = browser();
    let owner = sign_up(&app, &client, "dana@example.com", "Bright Smile Dental").await;
    give_number(&app, owner.client_id, "relay").await;
    let response = patch(&app, &client, &owner, json!({"languages": ["en"], "default_language": "en"})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let relay_url = place_call(&app, "CA_en_only").await.relay_url.expect("ConversationRelay TwiML");
    let (mut ws, _) = tokio_tungstenite::connect_async(relay_url.as_str()).await.unwrap();
    let setup = json!({"type": "setup", "callSid": "CA_en_only", "from": "+15557654321", "customParameters": {}});
    ws.send(Message::text(setup.to_string())).await.unwrap();
    ws.send(Message::text(json!({"type": "dtmf", "digit": "2"}).to_string())).await.unwrap();
    let prompt =
        json!({"type": "prompt", "voicePrompt": "I would like to book an appointment", "lang": "en-US", "last": true});
    ws.send(Message::text(prompt.to_string())).await.unwrap();
    let mut reply = String::new();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a reply in time");
        let Some(Ok(Message::Text(frame))) = frame else { break };
        let frame: Value = serde_json::from_str(&frame).unwrap();
        reply.push_str(frame["token"].as_str().unwrap_or_default());
        if frame["last"] == true || frame["type"] == "end" {
            break;
        }
    }
    assert!(reply.contains("your name"), "{reply}");
    assert!(!reply.contains("Lina") && !reply.contains("Gracias"), "{reply}");
}
