//! The live calls view: a page opened mid-call shows what was said so far, and the event
//! stream carries each new line of the signed-in tenant's calls, and only theirs, in
//! process and through Redis.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use ringlypro::call::conversation::LlmConversation;
use ringlypro::call::events::Checkpoint;
use ringlypro::dialogue::nlu::Intent;
use ringlypro::dialogue::policy::Policy;
use ringlypro::domain::calls::Speaker;
use ringlypro::domain::language::Language;
use ringlypro::providers::tts::flite::FliteTts;
use ringlypro::sim::{self, Line, Script};
use ringlypro::storage::postgres::calls;
use serde_json::{Value, json};

use crate::helpers::{Options, SignedIn, TestApp, signed_in_owner, spawn_app, spawn_app_with};

/// Reads Server-Sent Events from a streaming response.
struct EventReader {
    response: reqwest::Response,
    buffer: String,
}

impl EventReader {
    async fn open(app: &TestApp, owner: &SignedIn, path: &str) -> Self {
        let response = owner.client.get(format!("{}{path}", app.base_url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        EventReader { response, buffer: String::new() }
    }

    /// The next event (name, data), skipping keep-alive comments; `None` if none comes within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some((name, serde_json::from_str(&data).expect("event data is JSON")));
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }
}

fn line(text: &str) -> Line {
    Line { text: text.into(), over_agent: false }
}

/// Places a short call to A's number on `app` while A's and B's owners watch the stream
/// served by `watch` (the same instance, or another sharing its database and Redis): A
/// sees its lines in order up to the end of the call, B sees nothing of it.
async fn a_call_streams_to_its_owner_only(app: &TestApp, watch: &TestApp) {
    let a = signed_in_owner(app, "a@example.com", "Alpha Dental", "+15550001111").await;
    let b = signed_in_owner(app, "b@example.com", "Beta Salon", "+15550002222").await;
    let mut a_events = EventReader::open(watch, &a, "/app/live/events").await;
    let mut b_events = EventReader::open(watch, &b, "/api/live/events").await;
    // The snapshot comes once the subscription is in place.
    let (name, snapshot) = a_events.next(Duration::from_secs(10)).await.expect("a snapshot");
    assert_eq!((name.as_str(), &snapshot), ("snapshot", &json!({ "calls": [] })));
    assert_eq!(b_events.next(Duration::from_secs(10)).await.expect("a snapshot").0, "snapshot");

    let mut script = Script::new(
        &app.base_url,
        "+15550001111",
        "+15557654321",
        vec![line("I would like to book an appointment please.")],
    );
    script.hang_up_after_last_line = true;
    let call = tokio::spawn(async move { sim::place_call(&script, Arc::new(FliteTts::default())).await });

    // Lines as they arrive: a line may come again, longer, under the same seq.
    let mut first_seen: Vec<i64> = Vec::new();
    let mut lines: BTreeMap<i64, (String, String)> = BTreeMap::new();
    let mut ended = None;
    while let Some((name, event)) = a_events.next(Duration::from_secs(60)).await {
        match name.as_str() {
            "turn" => {
                let seq = event["seq"].as_i64().unwrap();
                if !first_seen.contains(&seq) {
                    first_seen.push(seq);
                }
                let speaker = event["speaker"].as_str().unwrap().to_owned();
                lines.insert(seq, (speaker, event["text"].as_str().unwrap().to_owned()));
            }
            "ended" => {
                ended = Some(event);
                break;
            }
            unexpected => panic!("unexpected event {unexpected}: {event}"),
        }
    }
    let report = call.await.unwrap().expect("the call runs");
    let ended = ended.expect("the call's end is announced");
    assert_eq!(ended["call_sid"], report.call_sid.as_str());
    let mut sorted = first_seen.clone();
    sorted.sort();
    assert_eq!(first_seen, sorted, "lines arrive in the order they were spoken");
    assert!(lines.len() >= 2, "{lines:?}");
    let greeting = &lines[&0];
    assert_eq!(greeting.0, "agent");
    assert!(greeting.1.contains("Alpha Dental"), "{greeting:?}");
    assert!(lines.values().any(|(who, text)| who == "caller" && text.contains("appointment")), "{lines:?}");
    // What streamed is what was saved.
    let saved = calls::find_by_sid(&app.pool, &report.call_sid).await.unwrap().unwrap();
    for turn in calls::turns(&app.pool, saved.id).await.unwrap() {
        if let Some((who, text)) = lines.get(&i64::from(turn.seq)) {
            assert_eq!((who.as_str(), text.as_str()), (turn.speaker.as_str(), turn.text.as_str()));
        }
    }

    // B's stream carried none of it.
    let leaked = b_events.next(Duration::from_millis(500)).await;
    assert!(leaked.is_none(), "B received A's event: {leaked:?}");
    let b_now: Value = b.client.get(format!("{}/api/live", watch.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(b_now, json!({ "calls": [] }));
}

#[tokio::test]
async fn a_live_calls_lines_stream_to_its_owner_in_order_and_never_to_another_tenant() {
    let app = spawn_app().await;
    a_call_streams_to_its_owner_only(&app, &app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_live_calls_lines_stream_through_redis_to_a_dashboard_on_another_instance() {
    let app = spawn_app_with(Options { redis: true, ..Default::default() }).await;
    assert_eq!(app.state.store.kind(), "redis");
    // A second instance sharing the first one's database and Redis keys.
    let config = &app.state.config;
    let other = spawn_app_with(Options {
        redis: true,
        env: vec![("DATABASE_URL", config.database_url.clone()), ("RINGLYPRO_KEY_PREFIX", config.key_prefix.clone())],
        ..Default::default()
    })
    .await;
    assert_ne!(other.base_url, app.base_url);
    a_call_streams_to_its_owner_only(&app, &other).await;
    other.stop().await;
    app.stop().await;
}

/// A call in progress as the call actor leaves it in the store: row, live index, checkpoint.
async fn call_in_progress(app: &TestApp, owner: &SignedIn, sid: &str) {
    sqlx::query(
        "INSERT INTO calls (client_id, call_sid, from_number, to_number, status) \
         VALUES ($1, $2, '+15557654321', '+15550001111', 'in-progress')",
    )
    .bind(owner.client_id)
    .bind(sid)
    .execute(&app.pool)
    .await
    .unwrap();
    let mut policy = Policy::new(Language::English, Some("+15557654321"));
    policy.intent = Some(Intent::Book);
    policy.name = Some("John Smith".into());
    let line = |seq: i32, speaker: Speaker, text: &str, at: &str| calls::Turn {
        seq,
        speaker,
        text: text.into(),
        started_at: at.parse().unwrap(),
        ..calls::Turn::default()
    };
    let turns = [
        line(0, Speaker::Agent, "Thanks for calling Alpha Dental.", "2025-03-10T14:00:00Z"),
        line(1, Speaker::Caller, "I need a cleaning next week.", "2025-03-10T14:00:04Z"),
    ];
    let checkpoint = Checkpoint {
        policy: Cow::Owned(policy),
        conversation: Cow::Owned(LlmConversation::default()),
        turns: Cow::Borrowed(&turns),
    }
    .to_json();
    app.state.store.save(sid, &checkpoint, Duration::from_secs(60)).await.unwrap();
    app.state.store.mark_live(owner.client_id, sid).await.unwrap();
}

#[tokio::test]
async fn a_live_view_opened_mid_call_shows_what_was_said_so_far_to_its_owner_only() {
    let app = spawn_app().await;
    let a = signed_in_owner(&app, "a@example.com", "Alpha Dental", "+15550001111").await;
    let b = signed_in_owner(&app, "b@example.com", "Beta Salon", "+15550002222").await;
    call_in_progress(&app, &a, "CA-live").await;

    let now: Value = a.client.get(format!("{}/api/live", app.base_url)).send().await.unwrap().json().await.unwrap();
    let call = &now["calls"][0];
    assert_eq!(call["call_sid"], "CA-live");
    assert_eq!(call["slots"]["intent"], "book");
    assert_eq!(call["slots"]["name"], "John Smith");
    assert_eq!(
        call["lines"][1],
        json!({ "seq": 1, "speaker": "caller", "text": "I need a cleaning next week.", "at": "2025-03-10T14:00:04Z" })
    );

    let html = a.client.get(format!("{}/app/live", app.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Thanks for calling Alpha Dental.") && html.contains("I need a cleaning next week."));
    assert!(html.contains("John Smith") && html.contains(r#"src="/static/live.js""#));

    let mut events = EventReader::open(&app, &a, "/app/live/events").await;
    let (name, snapshot) = events.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(name, "snapshot");
    assert_eq!(snapshot["calls"][0]["lines"].as_array().unwrap().len(), 2);

    // B sees no call, on the page, the API or the stream.
    let b_now: Value = b.client.get(format!("{}/api/live", app.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(b_now, json!({ "calls": [] }));
    let b_html = b.client.get(format!("{}/app/live", app.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(!b_html.contains("cleaning") && !b_html.contains("CA-live"));
    let mut b_events = EventReader::open(&app, &b, "/app/live/events").await;
    assert_eq!(b_events.next(Duration::from_secs(10)).await.unwrap().1, json!({ "calls": [] }));

    // A finished call left in the index (an instance that died) is not shown.
    sqlx::query("UPDATE calls SET ended_at = now() WHERE call_sid = 'CA-live'").execute(&app.pool).await.unwrap();
    let now: Value = a.client.get(format!("{}/api/live", app.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(now, json!({ "calls": [] }));
    // A call still in progress cannot be deleted.
    sqlx::query("UPDATE calls SET ended_at = NULL WHERE call_sid = 'CA-live'").execute(&app.pool).await.unwrap();
    let response = a
        .client
        .delete(format!("{}/api/calls/CA-live", app.base_url))
        .header("x-csrf-token", &a.csrf_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    drop((events, b_events));
    app.stop().await;
}
