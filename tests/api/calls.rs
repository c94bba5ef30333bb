//! Whole calls through the real Media Streams endpoint: the simulated caller speaks
//! synthesized audio, the local recogniser hears it, the agent books.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use futures::{SinkExt, StreamExt};
use ringlypro::domain::appointments::BookingSource;
use ringlypro::domain::calls::{HandledBy, Outcome, Speaker};
use ringlypro::domain::ids::{CallId, TenantId};
use ringlypro::providers::tts::flite::FliteTts;
use ringlypro::services::calls::{CallRecord, mark_handed_over, save};
use ringlypro::sim::{self, Line, Script};
use ringlypro::storage::postgres::calls::Turn;
use ringlypro::storage::postgres::{appointments, begin_tenant, calls};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{spawn_app, voice_params};

fn line(text: &str) -> Line {
    Line { text: text.into(), over_agent: false }
}

#[tokio::test]
async fn a_simulated_caller_books_an_appointment_by_voice() {
    let app = spawn_app().await;
    let tenant = app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    let script = Script::new(
        &app.base_url,
        "+15550001111",
        "+15557654321",
        vec![
            line("I would like to book an appointment please."),
            line("My name is John Smith."),
            line("Yes, that is right."),
            line("The second one please."),
            line("No, that is all. Thank you."),
        ],
    );
    let report = sim::place_call(&script, Arc::new(FliteTts::default())).await.expect("the call runs");
    println!("{}", report.transcript());
    assert_eq!(report.outcome, "booked", "transcript:\n{}", report.transcript());
    let summary = report.summary();
    let code = summary["appointment"]["code"].as_str().expect("a confirmation code");
    let call = calls::find_by_sid(&app.pool, &report.call_sid).await.unwrap().unwrap();
    let booked = appointments::for_call(&app.pool, call.id).await.unwrap();
    assert_eq!(booked.len(), 1);
    assert_eq!(booked[0].confirmation_code, code);
    assert_eq!(booked[0].client_id, tenant);
    assert_eq!(booked[0].customer_phone, "+15557654321");
    assert_eq!(booked[0].source, BookingSource::VoiceBooking);
    assert!(call.contact_id.is_some(), "the caller became a contact");
    // The agent read the code back.
    let turns = calls::turns(&app.pool, call.id).await.unwrap();
    let spaced: String = code.chars().map(|c| c.to_string()).collect::<Vec<_>>().join(", ");
    assert!(turns.iter().any(|t| t.speaker == Speaker::Agent && t.text.contains(&spaced)));
    // Every agent reply after a caller turn carries its latency figures.
    let replies: Vec<_> = turns.iter().filter(|t| t.speaker == Speaker::Agent && t.stt_final_at.is_some()).collect();
    assert!(replies.len() >= 4);
    for t in replies {
        assert!(t.tts_first_byte_at.is_some() && t.first_audio_sent_at.is_some() && t.first_mark_at.is_some(), "{t:?}");
        assert!(t.first_audio_sent_at >= t.stt_final_at);
    }
    // Confirmations wait in the outbox.
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE call_id = $1 AND status = 'queued'")
        .bind(call.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(queued, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_caller_hanging_up_mid_call_leaves_a_complete_record() {
    let app = spawn_app().await;
    app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    let mut script = Script::new(
        &app.base_url,
        "+15550001111",
        "+15557654321",
        vec![line("I would like to book an appointment please.")],
    );
    script.hang_up_after_last_line = true;
    let report = sim::place_call(&script, Arc::new(FliteTts::default())).await.unwrap();
    let call = calls::find_by_sid(&app.pool, &report.call_sid).await.unwrap().unwrap();
    assert!(call.ended_at.is_some());
    assert_eq!(call.status, "completed");
    assert!(call.duration_seconds.is_some());
    assert!(call.contact_id.is_some());
    let turns = calls::turns(&app.pool, call.id).await.unwrap();
    assert_eq!(turns[0].speaker, Speaker::Agent, "the greeting is recorded");
    assert!(turns[0].text.contains("Bright Smile Dental"));
    assert!(turns.iter().any(|t| t.speaker == Speaker::Caller && t.text.contains("appointment")), "{turns:?}");
    app.stop().await;
}

#[tokio::test]
async fn talking_over_the_agent_clears_its_audio_and_records_what_was_heard() {
    let app = spawn_app().await;
    app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    let script = Script::new(
        &app.base_url,
        "+15550001111",
        "+15557654321",
        vec![Line { text: "I would like to book an appointment please.".into(), over_agent: true }],
    );
    let report = sim::place_call(&script, Arc::new(FliteTts::default())).await.unwrap();
    assert!(report.clears >= 1, "the agent cleared Twilio's buffer");
    let call = calls::find_by_sid(&app.pool, &report.call_sid).await.unwrap().unwrap();
    let turns = calls::turns(&app.pool, call.id).await.unwrap();
    let greeting = &turns[0];
    assert!(greeting.interrupted, "{greeting:?}");
    let heard = greeting.heard_text.clone().unwrap_or_default();
    assert!(heard.split_whitespace().count() < greeting.text.split_whitespace().count(), "heard {heard:?}");
    assert!(greeting.text.starts_with(&heard));
    app.stop().await;
}

#[tokio::test]
async fn malformed_frames_are_skipped_and_the_call_goes_on() {
    let app = spawn_app().await;
    app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    reqwest::Client::new()
        .post(format!("{}/twilio/voice", app.base_url))
        .form(&voice_params("CA200", "+15557654321", "+15550001111"))
        .send()
        .await
        .unwrap();
    let ws_url = format!("{}/twilio/media", app.base_url.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url.as_str()).await.unwrap();
    for garbage in ["not json", "{}", r#"{"event":"media","media":{"payload":"@@@"}}"#, r#"{"event":"start"}"#] {
        ws.send(Message::text(garbage)).await.unwrap();
    }
    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    let start = json!({"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"accountSid":"AC1","streamSid":"MZ1",
        "callSid":"CA200","tracks":["inbound"],"customParameters":{},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}});
    ws.send(Message::text(start.to_string())).await.unwrap();
    ws.send(Message::text(r#"{"event":"dtmf","dtmf":{"digit":"xyz"}}"#)).await.unwrap();
    // The agent greets: media frames arrive for our stream.
    let mut media_frames = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while media_frames < 3 && tokio::time::Instant::now() < deadline {
        if let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
            if frame["event"] == "media" {
                assert_eq!(frame["streamSid"], "MZ1");
                media_frames += 1;
            }
        }
    }
    assert_eq!(media_frames, 3);
    ws.close(None).await.unwrap();
    // The hang-up saved the call.
    let mut saved = false;
    for _ in 0..50 {
        let call = calls::find_by_sid(&app.pool, "CA200").await.unwrap().unwrap();
        if call.ended_at.is_some() && !calls::turns(&app.pool, call.id).await.unwrap().is_empty() {
            saved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saved);
    app.stop().await;
}

#[tokio::test]
async fn a_stream_for_an_unknown_call_is_closed() {
    let app = spawn_app().await;
    let ws_url = format!("{}/twilio/media", app.base_url.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url.as_str()).await.unwrap();
    let start = json!({"event":"start","streamSid":"MZ9","start":{"streamSid":"MZ9","callSid":"CA_nobody","customParameters":{}}});
    ws.send(Message::text(start.to_string())).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("server answers");
    assert!(matches!(next, None | Some(Ok(Message::Close(_))) | Some(Err(_))), "{next:?}");
    app.stop().await;
}

/// A call's record as the actor saves it when the stream closes: every turn field, the
/// caller's contact and the outcome in one transaction, and safe to save again.
#[tokio::test]
async fn a_call_saved_twice_keeps_one_copy_of_each_turn_its_contact_and_a_hand_over() {
    let app = spawn_app().await;
    let tenant = app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    let mut tx = begin_tenant(&app.pool, tenant).await.unwrap();
    let new = calls::NewCall {
        client_id: tenant,
        call_sid: "CA-saved",
        from_number: "+15557654321",
        to_number: "+15550001111",
        handled_by: HandledBy::Agent,
        status: "in-progress",
    };
    let call_id = calls::upsert(&mut tx, &new).await.unwrap();
    tx.commit().await.unwrap();
    // The agent handed the call over before the stream closed.
    mark_handed_over(&app.pool, tenant, call_id).await.unwrap();

    let at = |ms: i64| Utc.timestamp_millis_opt(1_764_000_000_000 + ms).unwrap();
    let mut turns = vec![
        Turn {
            seq: 0,
            speaker: Speaker::Agent,
            text: "Thanks for calling.".into(),
            started_at: at(0),
            ..Turn::default()
        },
        Turn {
            seq: 1,
            speaker: Speaker::Caller,
            text: "Can I talk to someone?".into(),
            intent: Some("transfer".into()),
            started_at: at(2_000),
            ended_at: Some(at(3_000)),
            ..Turn::default()
        },
        Turn {
            seq: 2,
            speaker: Speaker::Agent,
            text: "Of course, one moment while I connect you.".into(),
            heard_text: Some("Of course, one moment".into()),
            interrupted: true,
            started_at: at(3_400),
            caller_stopped_at: Some(at(3_000)),
            stt_final_at: Some(at(3_150)),
            reply_ready_at: Some(at(3_300)),
            tts_first_byte_at: Some(at(3_380)),
            first_audio_sent_at: Some(at(3_390)),
            first_mark_at: Some(at(3_600)),
            ..Turn::default()
        },
    ];
    save(&app.pool, &saved(tenant, call_id, &turns, Outcome::None)).await.unwrap();
    assert_eq!(calls::turns(&app.pool, call_id).await.unwrap(), turns, "every field of every turn reads back");
    let call = calls::find_by_sid(&app.pool, "CA-saved").await.unwrap().unwrap();
    assert_eq!(call.outcome, Outcome::Transfer, "no outcome of its own keeps the hand-over");
    assert_eq!(call.status, "completed");
    assert!(call.ended_at.is_some());
    let contact = call.contact_id.expect("the caller's contact is linked");

    // Saved again (a retry after a lost commit reply), with a turn changed and one more.
    turns[2].heard_text = Some("Of course, one moment while I".into());
    turns[2].ended_at = Some(at(5_000));
    turns.push(Turn {
        seq: 3,
        speaker: Speaker::Caller,
        text: "Thanks.".into(),
        started_at: at(6_000),
        ..Turn::default()
    });
    save(&app.pool, &saved(tenant, call_id, &turns, Outcome::Message)).await.unwrap();
    assert_eq!(calls::turns(&app.pool, call_id).await.unwrap(), turns, "turns are rewritten, not added again");
    let call = calls::find_by_sid(&app.pool, "CA-saved").await.unwrap().unwrap();
    assert_eq!(call.outcome, Outcome::Message);
    assert_eq!(call.contact_id, Some(contact), "the same contact, not a second one");
    let contacts: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts WHERE client_id = $1")
        .bind(tenant)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(contacts, 1);
    let name: String =
        sqlx::query_scalar("SELECT name FROM contacts WHERE id = $1").bind(contact).fetch_one(&app.pool).await.unwrap();
    assert_eq!(name, "Ann Lee");
}

/// What the actor saves for the call of [`a_call_saved_twice_keeps_one_copy_of_each_turn_its_contact_and_a_hand_over`].
fn saved(client_id: TenantId, call_id: CallId, turns: &[Turn], outcome: Outcome) -> CallRecord<'_> {
    CallRecord {
        client_id,
        call_id,
        stream_sid: "MZ-saved",
        language: "en",
        caller_phone: Some("+15557654321"),
        caller_name: Some("Ann Lee"),
        outcome,
        failures: "",
        turns,
    }
}
