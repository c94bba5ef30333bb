//! The starter scenarios (`scenarios/`): goal-driven simulated callers held to what a good
//! receptionist would do, through the text path, a real-time audio subset, and the
//! language-model path with a scripted model.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringlypro::call::CallSettings;
use ringlypro::call::engines::Engines;
use ringlypro::providers::llm::openai::OpenAiLlm;
use ringlypro::providers::tts::flite::FliteTts;
use ringlypro::sim::runner::{self, RunOptions, ScenarioResult, Verdict, VoicePath};
use ringlypro::sim::scenario::{self, Scenario, relative_day};
use serde_json::Value;

use crate::fakes::openai::{FakeOpenAi, Script};
use crate::helpers::{Options, local_engines, spawn_app_with};

fn starter_set() -> Vec<Scenario> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    scenario::load(&[dir]).expect("the starter scenarios parse")
}

/// A short check-in delay, so a scenario's silent turn costs seconds, not ten.
fn quick_settings() -> CallSettings {
    CallSettings { silence_timeout: Duration::from_secs(3), ..CallSettings::default() }
}

/// Prints the table and the transcripts of what failed; returns the unexpected failures.
fn report(results: &[ScenarioResult]) -> Vec<String> {
    for r in results.iter().filter(|r| matches!(r.verdict, Verdict::Fail | Verdict::Known)) {
        println!("--- {} [{}] {}\n{}\n", r.name, r.verdict.name(), r.reason, r.transcript);
    }
    println!("{}", runner::table(results));
    results.iter().filter(|r| r.verdict == Verdict::Fail).map(|r| format!("{}: {}", r.name, r.reason)).collect()
}

#[tokio::test]
async fn the_starter_scenarios_pass_through_the_text_path_apart_from_the_known_failures() {
    let scenarios = starter_set();
    assert!(scenarios.len() >= 30, "the starter set has at least 30 scenarios");
    let app = spawn_app_with(Options { settings: Some(quick_settings()), ..Options::default() }).await;
    let opts = RunOptions { base_url: app.base_url.clone(), auth_token: None, path: VoicePath::Text, voice: None };
    let results = runner::run_all(&app.pool, &scenarios, &opts, 4).await;
    let failed = report(&results);
    assert!(failed.is_empty(), "scenarios failed:\n{}", failed.join("\n"));
    app.stop().await;
}

#[tokio::test]
async fn a_few_scenarios_pass_through_the_audio_path_in_real_time() {
    let wanted = ["book_first_offer", "book_barge_in", "cancel_existing", "book_hang_up_midway"];
    let scenarios: Vec<Scenario> = starter_set().into_iter().filter(|s| wanted.contains(&s.name.as_str())).collect();
    assert_eq!(scenarios.len(), wanted.len());
    let app = spawn_app_with(Options { settings: Some(quick_settings()), ..Options::default() }).await;
    let opts = RunOptions {
        base_url: app.base_url.clone(),
        auth_token: None,
        path: VoicePath::Audio,
        voice: Some(Arc::new(FliteTts::default())),
    };
    // One at a time: each call runs in real time against the local recogniser.
    let results = runner::run_all(&app.pool, &scenarios, &opts, 1).await;
    let failed = report(&results);
    assert!(failed.is_empty(), "scenarios failed:\n{}", failed.join("\n"));
    app.stop().await;
}

/// Fills a scripted argument: `"{next tuesday}"` (any relative day) becomes that date,
/// `"{found}"` the appointment id the last `find_appointment` returned.
fn fill(value: &Value, s: &Scenario, found: Option<i64>) -> Value {
    match value {
        Value::String(text) if text.starts_with('{') && text.ends_with('}') => {
            let inner = &text[1..text.len() - 1];
            if inner == "found" {
                return found.map(Value::from).unwrap_or(Value::Null);
            }
            let tz: chrono_tz::Tz = s.business.timezone.parse().unwrap();
            let today = chrono::Utc::now().with_timezone(&tz).date_naive();
            let day = relative_day(inner, today, &s.hours().unwrap()).expect("a relative day");
            Value::String(day.format("%Y-%m-%d").to_string())
        }
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), fill(v, s, found))).collect()),
        other => other.clone(),
    }
}

/// The scenario's `[[model]]` steps, one per request, as the fake model's replies.
fn scripted_model(fake: &FakeOpenAi, s: &Scenario) {
    let steps = s.model.clone();
    let scenario = s.clone();
    let next = Mutex::new(0usize);
    fake.respond_with(move |req| {
        let found = req
            .messages
            .iter()
            .rev()
            .filter(|m| m.role == "tool")
            .find_map(|m| serde_json::from_str::<Value>(m.text()).ok()?["appointment"]["appointment_id"].as_i64());
        let mut i = next.lock().unwrap();
        let Some(step) = steps.get(*i) else { return Script::text("Sorry, could you say that again?").instant() };
        *i += 1;
        let text = step.text.clone().unwrap_or_default();
        let script = match &step.tool {
            Some(tool) if text.is_empty() => Script::tool_call(tool.clone(), fill(&step.args_json(), &scenario, found)),
            Some(tool) => Script::text(text).and_tool_call(tool.clone(), fill(&step.args_json(), &scenario, found)),
            None => Script::text(text),
        };
        script.instant()
    });
}

#[tokio::test]
async fn scenarios_with_a_model_script_meet_the_same_expectations_through_the_models_tool_calls() {
    let scenarios: Vec<Scenario> = starter_set().into_iter().filter(|s| !s.model.is_empty()).collect();
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    for wanted in ["book_first_offer", "book_taken_slot", "cancel_existing"] {
        assert!(names.contains(&wanted), "{wanted} carries a model script");
    }
    let mut results = Vec::new();
    for s in &scenarios {
        // A model per scenario: its script is that scenario's replies, in order.
        let llm = FakeOpenAi::start().await;
        scripted_model(&llm, s);
        let engines = Engines {
            llm: Some(Arc::new(OpenAiLlm::new(llm.config()).expect("model config")) as _),
            ..local_engines()
        };
        let app =
            spawn_app_with(Options { engines: Some(engines), settings: Some(quick_settings()), ..Options::default() })
                .await;
        let opts = RunOptions { base_url: app.base_url.clone(), auth_token: None, path: VoicePath::Text, voice: None };
        let mut result = runner::run_one(&app.pool, s, &opts).await;
        // The mark is about the local dialogue; the scripted model is held to the expectations.
        if result.verdict == Verdict::Known {
            result.verdict = Verdict::Fail;
        }
        let asked = llm.requests().len();
        // Every scripted reply was asked for: the model, not the local dialogue, led the call.
        assert!(asked >= s.model.len(), "{}: the model was asked {asked} times for {} replies", s.name, s.model.len());
        results.push(result);
        app.stop().await;
    }
    let failed = report(&results);
    assert!(failed.is_empty(), "scenarios failed through the model:\n{}", failed.join("\n"));
}

#[tokio::test]
async fn a_calls_live_feed_is_signed_like_its_record_carries_only_that_call_and_ends_with_it() {
    use futures::SinkExt;
    use ringlypro::sim::feed::{CallFeed, FeedEvent};
    use ringlypro::telephony::{signature, twiml};
    use serde_json::json;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    const TOKEN: &str = "feed_auth_token";
    let app = spawn_app_with(Options { auth_token: Some(TOKEN.into()), ..Options::default() }).await;
    let tenant = app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    sqlx::query("UPDATE clients SET voice_path = 'relay' WHERE id = $1").bind(tenant).execute(&app.pool).await.unwrap();
    let client = reqwest::Client::new();
    let voice_url = format!("{}/twilio/voice", app.base_url);
    let mut relay_urls = Vec::new();
    for sid in ["CA900", "CA901"] {
        let params = crate::helpers::voice_params(sid, "+15557654321", "+15550001111");
        let resp = client
            .post(&voice_url)
            .header("X-Twilio-Signature", signature::sign(TOKEN, &voice_url, &params))
            .form(&params)
            .send()
            .await
            .unwrap();
        relay_urls.push(twiml::read(&resp.text().await.unwrap()).relay_url.expect("relay TwiML"));
    }

    // Unsigned, or for a call that does not exist, there is no feed.
    let unsigned = client.get(format!("{}/calls/CA900/events", app.base_url)).send().await.unwrap();
    assert_eq!(unsigned.status(), reqwest::StatusCode::FORBIDDEN);
    assert!(CallFeed::open(&app.base_url, "CA404", Some(TOKEN)).await.is_err());
    let mut feed = CallFeed::open(&app.base_url, "CA900", Some(TOKEN)).await.expect("the signed feed opens");

    // Both calls talk; only CA900's lines reach its feed.
    let mut sockets = Vec::new();
    for (sid, (url, words)) in ["CA900", "CA901"]
        .iter()
        .zip(relay_urls.iter().zip(["I would like to book an appointment", "What are your hours"]))
    {
        let mut request = url.as_str().into_client_request().unwrap();
        request.headers_mut().insert("X-Twilio-Signature", signature::sign(TOKEN, url, &[]).parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let setup = json!({"type": "setup", "callSid": sid, "from": "+15557654321", "customParameters": {}});
        ws.send(Message::text(setup.to_string())).await.unwrap();
        let prompt = json!({"type": "prompt", "voicePrompt": words, "lang": "en-US", "last": true});
        ws.send(Message::text(prompt.to_string())).await.unwrap();
        sockets.push(ws);
    }
    let mut lines = Vec::new();
    let mut ended = false;
    while !ended {
        let event = tokio::time::timeout(Duration::from_secs(10), feed.next()).await.expect("an event in time");
        match event {
            Some(FeedEvent::Turn { agent, text, .. }) => {
                lines.push((agent, text));
                // Once the agent has answered, the caller hangs up.
                if agent && lines.iter().any(|(a, _)| !a) && !sockets.is_empty() {
                    for mut ws in sockets.drain(..) {
                        let _ = ws.close(None).await;
                    }
                }
            }
            Some(FeedEvent::Ended) => ended = true,
            None => panic!("the feed closed before the call's end: {lines:?}"),
        }
    }
    assert!(lines.iter().any(|(a, t)| !a && t == "I would like to book an appointment"), "{lines:?}");
    assert!(lines.iter().any(|(a, t)| *a && t.contains("your name")), "{lines:?}");
    assert!(!lines.iter().any(|(_, t)| t.contains("hours")), "another call's lines leaked: {lines:?}");
    // After its end the feed closes.
    let after = tokio::time::timeout(Duration::from_secs(5), feed.next()).await.expect("the feed closes");
    assert_eq!(after, None);
    app.stop().await;
}
