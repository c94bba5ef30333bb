//! ConversationRelay: Twilio recognises and speaks, the same call actor converses in text.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use ringlypro::domain::calls::Outcome;
use ringlypro::storage::postgres::{appointments, calls};
use ringlypro::telephony::twiml;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{spawn_app, voice_params};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads `text` tokens until `last`, returning the reply; an `end` message ends it too.
async fn reply(ws: &mut Socket) -> (String, Option<Value>) {
    let mut text = String::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a reply in time");
        let Some(Ok(Message::Text(frame))) = msg else { return (text, None) };
        let frame: Value = serde_json::from_str(&frame).unwrap();
        match frame["type"].as_str() {
            Some("text") if frame["last"] == true => return (text.trim().to_owned(), None),
            Some("text") => text.push_str(frame["token"].as_str().unwrap()),
            Some("end") => return (text.trim().to_owned(), Some(frame)),
            other => panic!("unexpected relay message {other:?}"),
        }
    }
}

async fn say(ws: &mut Socket, words: &str) {
    let prompt = json!({"type": "prompt", "voicePrompt": words, "lang": "en-US", "last": true});
    ws.send(Message::text(prompt.to_string())).await.unwrap();
}

#[tokio::test]
async fn a_relay_call_books_through_the_same_actor_and_interrupts_trim_the_turn() {
    let app = spawn_app().await;
    let tenant = app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    sqlx::query("UPDATE clients SET voice_path = 'relay' WHERE id = $1").bind(tenant).execute(&app.pool).await.unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/twilio/voice", app.base_url))
        .form(&voice_params("CA300", "+15557654321", "+15550001111"))
        .send()
        .await
        .unwrap();
    let doc = twiml::read(&resp.text().await.unwrap());
    let relay_url = doc.relay_url.expect("ConversationRelay TwiML");
    assert!(doc.welcome_greeting.unwrap().contains("Bright Smile Dental"));
    assert_eq!(doc.redirect, Some(format!("{}/twilio/relay-ended", app.base_url)));

    let (mut ws, _) = tokio_tungstenite::connect_async(relay_url.as_str()).await.unwrap();
    let setup = json!({"type": "setup", "sessionId": "VX1", "accountSid": "AC1", "callSid": "CA300",
        "from": "+15557654321", "to": "+15550001111", "direction": "inbound", "customParameters": {"tenant_id": tenant.to_string()}});
    ws.send(Message::text(setup.to_string())).await.unwrap();
    ws.send(Message::text("this is not json")).await.unwrap();
    let partial = json!({"type": "prompt", "voicePrompt": "i would", "lang": "en-US", "last": false});
    ws.send(Message::text(partial.to_string())).await.unwrap();

    say(&mut ws, "I would like to book an appointment").await;
    assert!(reply(&mut ws).await.0.contains("your name"));
    say(&mut ws, "My name is John Smith").await;
    assert!(reply(&mut ws).await.0.contains("best number"));
    say(&mut ws, "Yes").await;
    let offer = reply(&mut ws).await.0;
    assert!(offer.starts_with("I have"), "{offer}");
    // The caller talks over the offer: Twilio stops speaking and tells us what was said.
    let interrupt =
        json!({"type": "interrupt", "utteranceUntilInterrupt": "I have", "durationUntilInterruptMs": "600"});
    ws.send(Message::text(interrupt.to_string())).await.unwrap();
    say(&mut ws, "The second one please").await;
    let booked = reply(&mut ws).await.0;
    assert!(booked.contains("confirmation code"), "{booked}");
    say(&mut ws, "No that's all thank you").await;
    let (goodbye, end) = reply(&mut ws).await;
    assert!(goodbye.contains("Goodbye"), "{goodbye}");
    let end = match end {
        Some(end) => end,
        None => reply(&mut ws).await.1.expect("the session ends after the goodbye"),
    };
    let handoff: Value = serde_json::from_str(end["handoffData"].as_str().unwrap()).unwrap();
    assert_eq!(handoff["outcome"], "booked");

    // Twilio then asks the action URL what to do: hang up.
    let after = reqwest::Client::new()
        .post(format!("{}/twilio/relay-ended", app.base_url))
        .form(&[("CallSid", "CA300"), ("HandoffData", end["handoffData"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert!(twiml::read(&after.text().await.unwrap()).hang_up);

    let mut saved = None;
    for _ in 0..50 {
        let call = calls::find_by_sid(&app.pool, "CA300").await.unwrap().unwrap();
        if call.ended_at.is_some() && call.outcome == Outcome::Booked {
            saved = Some(call);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let call = saved.expect("the call was saved as booked");
    assert_eq!(appointments::for_call(&app.pool, call.id).await.unwrap().len(), 1);
    let turns = calls::turns(&app.pool, call.id).await.unwrap();
    assert!(turns[0].text.contains("Bright Smile Dental"), "the welcome greeting is in the transcript");
    let cut = turns.iter().find(|t| t.interrupted).expect("the interrupted offer is marked");
    assert_eq!(cut.heard_text.as_deref(), Some("I have"));
    assert!(cut.text.starts_with("I have"));
    app.stop().await;
}

#[tokio::test]
async fn a_relay_transfer_hands_the_call_to_the_owner() {
    let app = spawn_app().await;
    let tenant = app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    sqlx::query("UPDATE clients SET voice_path = 'relay' WHERE id = $1").bind(tenant).execute(&app.pool).await.unwrap();
    reqwest::Client::new()
        .post(format!("{}/twilio/voice", app.base_url))
        .form(&voice_params("CA301", "+15557654321", "+15550001111"))
        .send()
        .await
        .unwrap();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}/twilio/relay", app.base_url.replace("http", "ws")).as_str())
            .await
            .unwrap();
    let setup = json!({"type": "setup", "callSid": "CA301", "from": "+15557654321", "customParameters": {}});
    ws.send(Message::text(setup.to_string())).await.unwrap();
    say(&mut ws, "Can I talk to a real person").await;
    let (line, mut end) = reply(&mut ws).await;
    assert!(line.contains("connect you"), "{line}");
    if end.is_none() {
        end = reply(&mut ws).await.1;
    }
    let handoff = end.expect("the session ends")["handoffData"].as_str().unwrap().to_owned();
    let after = reqwest::Client::new()
        .post(format!("{}/twilio/relay-ended", app.base_url))
        .form(&[("CallSid", "CA301"), ("HandoffData", handoff.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(twiml::read(&after.text().await.unwrap()).dial.as_deref(), Some("+15551230000"));
    app.stop().await;
}

#[tokio::test]
async fn with_redis_the_conversation_is_checkpointed_and_streamed_live_per_tenant() {
    use deadpool_redis::redis::AsyncCommands;
    let app = crate::helpers::spawn_app_with(crate::helpers::Options { redis: true, ..Default::default() }).await;
    let tenant = app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    sqlx::query("UPDATE clients SET voice_path = 'relay' WHERE id = $1").bind(tenant).execute(&app.pool).await.unwrap();
    let prefix = app.state.config.key_prefix.clone();
    let client = deadpool_redis::redis::Client::open(crate::helpers::redis_url().as_str()).unwrap();
    let mut feed = client.get_async_pubsub().await.unwrap();
    feed.subscribe(format!("{prefix}feed:{tenant}")).await.unwrap();

    reqwest::Client::new()
        .post(format!("{}/twilio/voice", app.base_url))
        .form(&voice_params("CA302", "+15557654321", "+15550001111"))
        .send()
        .await
        .unwrap();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}/twilio/relay", app.base_url.replace("http", "ws")).as_str())
            .await
            .unwrap();
    let setup = json!({"type": "setup", "callSid": "CA302", "from": "+15557654321", "customParameters": {}});
    ws.send(Message::text(setup.to_string())).await.unwrap();
    say(&mut ws, "I would like to book an appointment").await;
    reply(&mut ws).await;

    // Live transcript lines arrive on the tenant's channel, with the intent read so far.
    let mut lines = Vec::new();
    let mut messages = feed.on_message();
    while lines.len() < 3 {
        let msg = tokio::time::timeout(Duration::from_secs(5), messages.next()).await.unwrap().unwrap();
        lines.push(serde_json::from_str::<Value>(&msg.get_payload::<String>().unwrap()).unwrap());
    }
    assert!(lines.iter().all(|l| l["call_sid"] == "CA302"));
    let caller = lines.iter().find(|l| l["speaker"] == "caller").expect("the caller's line");
    assert_eq!(caller["text"], "I would like to book an appointment");
    assert!(lines.iter().any(|l| l["intent"] == "book"));

    // The conversation state is checkpointed under the call, with a TTL.
    let mut conn = deadpool_redis::redis::Client::get_multiplexed_async_connection(&client).await.unwrap();
    let state: String = conn.get(format!("{prefix}call:CA302")).await.unwrap();
    let state: Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["policy"]["stage"], "ask_name");
    let ttl: i64 = conn.ttl(format!("{prefix}call:CA302")).await.unwrap();
    assert!(ttl > 0);
    let live: Vec<String> = conn.smembers(format!("{prefix}live:{tenant}")).await.unwrap();
    assert_eq!(live, vec!["CA302".to_string()]);
    drop(ws);
    app.stop().await;
}

#[tokio::test]
async fn pressing_two_switches_the_call_to_lina_in_spanish() {
    let app = spawn_app().await;
    let tenant = app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    sqlx::query("UPDATE clients SET voice_path = 'relay' WHERE id = $1").bind(tenant).execute(&app.pool).await.unwrap();
    reqwest::Client::new()
        .post(format!("{}/twilio/voice", app.base_url))
        .form(&voice_params("CA303", "+15557654321", "+15550001111"))
        .send()
        .await
        .unwrap();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}/twilio/relay", app.base_url.replace("http", "ws")).as_str())
            .await
            .unwrap();
    let setup = json!({"type": "setup", "callSid": "CA303", "from": "+15557654321", "customParameters": {}});
    ws.send(Message::text(setup.to_string())).await.unwrap();
    ws.send(Message::text(json!({"type": "dtmf", "digit": "2"}).to_string())).await.unwrap();
    let greeting = reply(&mut ws).await.0;
    assert!(greeting.contains("Lina") && greeting.contains("Gracias por llamar"), "{greeting}");
    say(&mut ws, "quiero hacer una cita").await;
    assert!(reply(&mut ws).await.0.contains("su nombre"));
    drop(ws);
    let mut language = String::new();
    for _ in 0..50 {
        let call = calls::find_by_sid(&app.pool, "CA303").await.unwrap().unwrap();
        if call.ended_at.is_some() {
            language = call.language;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(language, "es");
    app.stop().await;
}

#[tokio::test]
async fn after_its_goodbye_the_agent_does_not_ask_whether_the_caller_is_still_there() {
    let settings = ringlypro::call::CallSettings { silence_timeout: Duration::from_millis(300), ..Default::default() };
    let app =
        crate::helpers::spawn_app_with(crate::helpers::Options { settings: Some(settings), ..Default::default() })
            .await;
    let tenant = app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    sqlx::query("UPDATE clients SET voice_path = 'relay' WHERE id = $1").bind(tenant).execute(&app.pool).await.unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/twilio/voice", app.base_url))
        .form(&voice_params("CA310", "+15557654321", "+15550001111"))
        .send()
        .await
        .unwrap();
    let relay_url = twiml::read(&resp.text().await.unwrap()).relay_url.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(relay_url.as_str()).await.unwrap();
    let setup = json!({"type": "setup", "sessionId": "VX2", "accountSid": "AC1", "callSid": "CA310",
        "from": "+15557654321", "to": "+15550001111", "direction": "inbound", "customParameters": {"tenant_id": tenant.to_string()}});
    ws.send(Message::text(setup.to_string())).await.unwrap();
    say(&mut ws, "What are your hours").await;
    let hours = reply(&mut ws).await.0;
    assert!(hours.contains("open"), "{hours}");
    say(&mut ws, "No that's all, goodbye").await;
    let (goodbye, _) = reply(&mut ws).await;
    assert!(goodbye.contains("Goodbye"), "{goodbye}");
    // Twilio has not hung up yet: several silence timeouts pass with nothing more said.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Text(frame) = message {
            let frame: Value = serde_json::from_str(&frame).unwrap();
            assert_ne!(frame["type"], "text", "nothing is said after the goodbye: {frame}");
        }
    }
    app.stop().await;
}
