//! The owner's controls on a live call: "Take this call" hands it to the owner's phone
//! and "Send a note" has the agent say the owner's line, whether the call runs on the
//! instance serving the dashboard or on another one sharing its database and Redis.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use ringlypro::domain::calls::Speaker;
use ringlypro::providers::tts::flite::FliteTts;
use ringlypro::sim::{self, Report, Script};
use ringlypro::storage::postgres::calls;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::helpers::{Options, SignedIn, TestApp, signed_in_owner, spawn_app, spawn_app_with};

const NUMBER: &str = "+15550001111";
const CALLER: &str = "+15557654321";

/// A caller who says nothing and stays on the line until the agent ends the call.
fn quiet_call(app: &TestApp) -> JoinHandle<anyhow::Result<Report>> {
    let mut script = Script::new(&app.base_url, NUMBER, CALLER, vec![]);
    script.max_duration = Duration::from_secs(60);
    tokio::spawn(async move { sim::place_call(&script, Arc::new(FliteTts::default())).await })
}

/// The CallSid of the owner's one live call, as the dashboard lists it.
async fn live_call(watch: &TestApp, owner: &SignedIn) -> String {
    for _ in 0..300 {
        let live: Value =
            owner.client.get(format!("{}/api/live", watch.base_url)).send().await.unwrap().json().await.unwrap();
        // Once the greeting has been said, the call is listening.
        if let Some(call) = live["calls"].as_array().and_then(|c| c.first())
            && call["lines"].as_array().is_some_and(|l| !l.is_empty())
        {
            return call["call_sid"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the call never showed as live");
}

async fn post(watch: &TestApp, owner: &SignedIn, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request =
        owner.client.post(format!("{}{path}", watch.base_url)).header("X-CSRF-Token", owner.csrf_token.as_str());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Places a quiet call on `app`, sends a note then takes the call over from `watch`: the
/// note is said, the hand-over line is said, and the call rings the owner's phone.
async fn note_then_take_over(app: &TestApp, watch: &TestApp, reached: &str) {
    let owner = signed_in_owner(app, "owner@example.com", "Alpha Dental", NUMBER).await;
    let call = quiet_call(app);
    let sid = live_call(watch, &owner).await;

    let note = json!({ "text": "Tell them   we can fit them in at three today." });
    let (status, body) = post(watch, &owner, &format!("/api/live/{sid}/note"), Some(note)).await;
    assert_eq!((status, &body), (StatusCode::ACCEPTED, &json!({ "reached": reached })));
    // The note is said as the agent's next turn.
    let mut said = false;
    for _ in 0..200 {
        let checkpoint = watch.state.store.load(&sid).await.unwrap().unwrap_or_default();
        if checkpoint.contains("Tell them we can fit them in at three today.") {
            said = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(said, "the note was never said");

    let (status, body) = post(watch, &owner, &format!("/api/live/{sid}/takeover"), None).await;
    assert_eq!((status, &body), (StatusCode::ACCEPTED, &json!({ "reached": reached })));
    let report = tokio::time::timeout(Duration::from_secs(60), call).await.expect("the call ends").unwrap().unwrap();
    assert_eq!(report.outcome, "transfer", "the stream closes into a <Dial> to the owner");

    let saved = calls::find_by_sid(&app.pool, &sid).await.unwrap().unwrap();
    assert_eq!(saved.outcome.as_str(), "transfer");
    let agent: Vec<String> = calls::turns(&app.pool, saved.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.speaker == Speaker::Agent)
        .map(|t| t.text)
        .collect();
    assert!(agent.iter().any(|t| t == "Tell them we can fit them in at three today."), "{agent:?}");
    assert!(agent.last().is_some_and(|t| t.contains("putting you through to someone at Alpha Dental")), "{agent:?}");
}

#[tokio::test]
async fn the_owner_sends_a_note_then_takes_a_call_on_the_same_instance() {
    let app = spawn_app().await;
    note_then_take_over(&app, &app, "this_instance").await;
    app.stop().await;
}

#[tokio::test]
async fn the_owner_takes_over_a_call_held_by_another_instance_through_redis() {
    let app = spawn_app_with(Options { redis: true, ..Default::default() }).await;
    let config = &app.state.config;
    let other = spawn_app_with(Options {
        redis: true,
        env: vec![("DATABASE_URL", config.database_url.clone()), ("RINGLYPRO_KEY_PREFIX", config.key_prefix.clone())],
        ..Default::default()
    })
    .await;
    note_then_take_over(&app, &other, "other_instance").await;
    other.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn controls_refuse_calls_that_are_not_the_owners_or_not_live_and_bad_notes() {
    let app = spawn_app().await;
    let owner = signed_in_owner(&app, "owner@example.com", "Alpha Dental", NUMBER).await;
    let stranger = signed_in_owner(&app, "other@example.com", "Beta Salon", "+15550002222").await;
    let call = quiet_call(&app);
    let sid = live_call(&app, &owner).await;

    // Another tenant cannot reach the call, nor learn it exists.
    let (status, body) = post(&app, &stranger, &format!("/api/live/{sid}/takeover"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "that call is not in progress");
    let (status, _) = post(&app, &owner, "/api/live/CA-no-such-call/takeover", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for text in ["", "   ", &"a".repeat(301)] {
        let (status, body) = post(&app, &owner, &format!("/api/live/{sid}/note"), Some(json!({ "text": text }))).await;
        assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("text")), "{text:?}");
    }
    // Without the CSRF token nothing happens.
    let bare = owner.client.post(format!("{}/api/live/{sid}/takeover", app.base_url)).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::FORBIDDEN);

    // The page's form: the call is taken and the page says so.
    let form = owner
        .client
        .post(format!("{}/app/live/{sid}/takeover", app.base_url))
        .form(&[("csrf_token", owner.csrf_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::SEE_OTHER);
    assert_eq!(form.headers()["location"], "/app/live?done=takeover");
    let page = owner.client.get(format!("{}/app/live?done=takeover", app.base_url)).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("handing the call to you now"), "{page}");
    let report = tokio::time::timeout(Duration::from_secs(60), call).await.expect("the call ends").unwrap().unwrap();
    assert_eq!(report.outcome, "transfer");

    // Once over, the call takes no more commands, and the page says it ended.
    let (status, _) = post(&app, &owner, &format!("/api/live/{sid}/takeover"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let form = owner
        .client
        .post(format!("{}/app/live/{sid}/note", app.base_url))
        .form(&[("csrf_token", owner.csrf_token.as_str()), ("text", "hello")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.headers()["location"], "/app/live?done=ended");
    let page = owner.client.get(format!("{}/app/live?done=ended", app.base_url)).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("That call has already ended."));
    app.stop().await;
}

#[tokio::test]
async fn a_call_no_instance_answers_for_is_moved_to_the_owner_through_twilio() {
    let fake = crate::fakes::twilio::FakeTwilio::start().await;
    let app = spawn_app_with(Options { env: fake.env(), ..Default::default() }).await;
    let owner = signed_in_owner(&app, "owner@example.com", "Alpha Dental", NUMBER).await;
    // Listed as live (its instance died), held by no instance.
    sqlx::query(
        "INSERT INTO calls (client_id, call_sid, from_number, to_number, status) \
         VALUES ($1, 'CAorphan0001', $2, $3, 'in-progress')",
    )
    .bind(owner.client_id)
    .bind(CALLER)
    .bind(NUMBER)
    .execute(&app.pool)
    .await
    .unwrap();
    app.state.store.mark_live(owner.client_id, "CAorphan0001").await.unwrap();

    // A note cannot be said by a call nobody holds: a clear refusal.
    let (status, body) =
        post(&app, &owner, "/api/live/CAorphan0001/note", Some(json!({ "text": "We have a 3pm slot." }))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(fake.call_updates().is_empty());

    let (status, body) = post(&app, &owner, "/api/live/CAorphan0001/takeover", None).await;
    assert_eq!((status, &body), (StatusCode::ACCEPTED, &json!({ "reached": "twilio" })));
    let updates = fake.call_updates();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].call_sid, "CAorphan0001");
    let twiml = updates[0].twiml.clone().expect("new instructions");
    assert!(twiml.contains("putting you through to someone at Alpha Dental"), "{twiml}");
    assert!(twiml.contains("<Dial callerId=\"+15557654321\">+"), "the owner's phone rings: {twiml}");
    let saved = calls::find_by_sid(&app.pool, "CAorphan0001").await.unwrap().unwrap();
    assert_eq!(saved.outcome.as_str(), "transfer");
    app.stop().await;
}
