//! Whole calls through the real endpoint with the cloud pipeline: fake Deepgram and a fake
//! OpenAI-compatible model on loopback speak the vendors' real protocols.

use std::sync::Arc;
use std::time::Duration;

use ringlypro::call::CallSettings;
use ringlypro::call::engines::Engines;
use ringlypro::domain::appointments::BookingSource;
use ringlypro::domain::calls::Speaker;
use ringlypro::providers::llm::openai::OpenAiLlm;
use ringlypro::providers::stt::deepgram::{DeepgramConfig, DeepgramStt};
use ringlypro::providers::tts::flite::FliteTts;
use ringlypro::sim::{self, Line, Script as CallScript};
use ringlypro::storage::postgres::{appointments, calls};
use serde_json::{Value, json};

use crate::fakes::deepgram::FakeDeepgram;
use crate::fakes::openai::{FakeOpenAi, Script};
use crate::helpers::{Options, local_engines, spawn_app_with};

fn line(text: &str) -> Line {
    Line { text: text.into(), over_agent: false }
}

fn deepgram(fake: &FakeDeepgram) -> Arc<DeepgramStt> {
    let mut config = DeepgramConfig::new(FakeDeepgram::API_KEY);
    config.base_url = fake.url();
    Arc::new(DeepgramStt::new(config))
}

/// Cloud recogniser and model, local voice.
fn cloud_engines(dg: &FakeDeepgram, llm: Option<&FakeOpenAi>) -> Engines {
    let local = local_engines();
    Engines {
        stt: deepgram(dg),
        stt_fallback: Some(local.stt.clone()),
        llm: llm.map(|l| Arc::new(OpenAiLlm::new(l.config()).expect("model config")) as _),
        ..local
    }
}

/// A model that follows a booking conversation the way a real one would, driven by the
/// last message it is sent.
fn booking_model(fake: &FakeOpenAi) {
    fake.respond_with(|req| {
        let last = req.last_message().cloned();
        if let Some(last) = last.filter(|m| m.role == "tool") {
            let result: Value = serde_json::from_str(last.text()).unwrap_or_default();
            if let Some(options) = result["options"].as_array().filter(|o| !o.is_empty()) {
                let spoken: Vec<&str> = options.iter().filter_map(|o| o["spoken"].as_str()).collect();
                return Script::text(format!("I have {}. Which works best for you?", spoken.join(", or "))).instant();
            }
            if result["booked"] == true {
                return Script::text(format!(
                    "You're all set for {}. Your confirmation code is {}. Anything else?",
                    result["when"].as_str().unwrap_or(""),
                    result["read_code_as"].as_str().unwrap_or("")
                ))
                .instant();
            }
            return Script::text("Sorry, something went wrong on my side.").instant();
        }
        let said = req.last_user_text().unwrap_or("").to_lowercase();
        if said.contains("book an appointment") {
            Script::text("Of course. May I have your name, please?").instant()
        } else if said.contains("my name is") {
            Script::tool_call("check_availability", json!({})).instant()
        } else if said.contains("second") {
            Script::tool_call("book_appointment", json!({"option": 2, "name": "John Smith"})).instant()
        } else if said.contains("that's all") {
            Script::text("Thank you for calling. Goodbye!").and_tool_call("end_call", json!({})).instant()
        } else {
            Script::text("Sorry, could you say that again?").instant()
        }
    });
}

#[tokio::test]
async fn a_booking_is_completed_through_the_models_tool_calls() {
    let dg = FakeDeepgram::start().await;
    dg.final_delay(Duration::ZERO);
    for words in [
        vec!["i would like", "i would like to book an appointment"],
        vec!["my name", "my name is john smith"],
        vec!["the second one"],
        vec!["no that's all thank you"],
    ] {
        dg.say_next(words);
    }
    let llm = FakeOpenAi::start().await;
    booking_model(&llm);
    let app = spawn_app_with(Options { engines: Some(cloud_engines(&dg, Some(&llm))), ..Options::default() }).await;
    let tenant = app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    let script = CallScript::new(
        &app.base_url,
        "+15550001111",
        "+15557654321",
        vec![
            line("I would like to book an appointment please."),
            line("My name is John Smith."),
            line("The second one please."),
            line("No, that is all. Thank you."),
        ],
    );
    let report = sim::place_call(&script, Arc::new(FliteTts::default())).await.expect("the call runs");
    println!("{}", report.transcript());
    assert_eq!(report.outcome, "booked", "{}", report.transcript());

    let call = calls::find_by_sid(&app.pool, &report.call_sid).await.unwrap().unwrap();
    assert_eq!(call.failures, "", "nothing failed");
    let booked = appointments::for_call(&app.pool, call.id).await.unwrap();
    assert_eq!(booked.len(), 1);
    assert_eq!(booked[0].client_id, tenant);
    assert_eq!(booked[0].customer_name, "John Smith");

    // The model saw its tool results, each answering its own call id.
    let requests = llm.requests();
    let answered = requests
        .iter()
        .flat_map(|r| r.messages.iter())
        .find(|m| m.role == "tool" && m.text().contains("confirmation_code"));
    let answered = answered.expect("the booking result went back to the model");
    let asked = requests
        .iter()
        .flat_map(|r| r.messages.iter())
        .flat_map(|m| m.tool_calls.iter())
        .find(|c| c.name == "book_appointment")
        .expect("the model's call is in the history");
    assert_eq!(answered.tool_call_id.as_deref(), Some(asked.id.as_str()));
    assert!(requests.iter().all(|r| r.tool_names().contains(&"book_appointment")));

    // The agent read the code back and then hung up by itself.
    let turns = calls::turns(&app.pool, call.id).await.unwrap();
    let code: String = booked[0].confirmation_code.chars().map(|c| c.to_string()).collect::<Vec<_>>().join(", ");
    assert!(turns.iter().any(|t| t.speaker == Speaker::Agent && t.text.contains(&code)), "{turns:#?}");
    assert!(turns.last().unwrap().text.contains("Goodbye"));
    app.stop().await;
}

#[tokio::test]
async fn a_model_that_does_not_answer_in_time_is_replaced_by_the_local_engine_without_dead_air() {
    let dg = FakeDeepgram::start().await;
    dg.final_delay(Duration::ZERO);
    dg.say_next(["i would like to book an appointment"]);
    let llm = FakeOpenAi::start().await;
    llm.respond_with(|_| Script::stall());
    let settings = CallSettings { llm_first_token_timeout: Duration::from_millis(800), ..CallSettings::default() };
    let app = spawn_app_with(Options {
        engines: Some(cloud_engines(&dg, Some(&llm))),
        settings: Some(settings),
        ..Options::default()
    })
    .await;
    app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    let mut script = CallScript::new(
        &app.base_url,
        "+15550001111",
        "+15557654321",
        vec![line("I would like to book an appointment please."), line("My name is John Smith.")],
    );
    script.hang_up_after_last_line = true;
    let report = sim::place_call(&script, Arc::new(FliteTts::default())).await.unwrap();
    let call = calls::find_by_sid(&app.pool, &report.call_sid).await.unwrap().unwrap();
    assert!(call.failures.contains("llm"), "the record says what failed: {:?}", call.failures);
    let turns = calls::turns(&app.pool, call.id).await.unwrap();
    let reply = turns
        .iter()
        .find(|t| t.speaker == Speaker::Agent && t.stt_final_at.is_some())
        .expect("the caller got an answer");
    assert!(reply.text.contains("your name"), "the local engine carried on: {:?}", reply.text);
    let waited = reply.first_audio_sent_at.unwrap() - reply.stt_final_at.unwrap();
    assert!(waited < chrono::Duration::seconds(2), "dead air of {waited}");
    app.stop().await;
}

#[tokio::test]
async fn a_dropped_recogniser_socket_loses_no_words() {
    let dg = FakeDeepgram::start().await;
    dg.final_delay(Duration::ZERO);
    dg.say_next(["i would like", "i would like to book an appointment"]);
    // Drop the connection in the middle of the caller's first sentence: the greeting lasts
    // about 5 s (250 frames), the sentence about 2 s more.
    dg.drop_after_audio_ms(330 * 20);
    let app = spawn_app_with(Options { engines: Some(cloud_engines(&dg, None)), ..Options::default() }).await;
    app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    let mut script = CallScript::new(
        &app.base_url,
        "+15550001111",
        "+15557654321",
        vec![line("I would like to book an appointment please."), line("Thank you.")],
    );
    script.hang_up_after_last_line = true;
    let report = sim::place_call(&script, Arc::new(FliteTts::default())).await.unwrap();
    assert!(dg.stats().connections >= 2, "the client reconnected: {:?}", dg.stats());
    let call = calls::find_by_sid(&app.pool, &report.call_sid).await.unwrap().unwrap();
    let turns = calls::turns(&app.pool, call.id).await.unwrap();
    assert!(
        turns.iter().any(|t| t.speaker == Speaker::Caller && t.text == "i would like to book an appointment"),
        "{turns:#?}"
    );
    assert!(turns.iter().any(|t| t.speaker == Speaker::Agent && t.text.contains("your name")), "{turns:#?}");
    app.stop().await;
}

#[tokio::test]
async fn barge_in_clears_playback_sends_nothing_stale_and_trims_the_models_history() {
    let dg = FakeDeepgram::start().await;
    dg.final_delay(Duration::ZERO);
    dg.say_next(["what services do you offer"]);
    dg.say_next(["wait", "wait i just want to book"]);
    let llm = FakeOpenAi::start().await;
    const LONG: &str = "We offer cleanings, exams, whitening, fillings, crowns, bridges, implants, veneers, \
        root canals, night guards, sealants and emergency visits, and we are happy to explain each of them in \
        as much detail as you would like before you decide anything at all.";
    llm.respond_with(|req| {
        let said = req.last_user_text().unwrap_or("").to_lowercase();
        if said.contains("services") {
            Script::text(LONG).instant()
        } else {
            Script::text("Sure, let's book.").instant()
        }
    });
    let app = spawn_app_with(Options { engines: Some(cloud_engines(&dg, Some(&llm))), ..Options::default() }).await;
    app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    let mut script = CallScript::new(
        &app.base_url,
        "+15550001111",
        "+15557654321",
        vec![
            line("What services do you offer?"),
            Line { text: "Wait, I just want to book an appointment.".into(), over_agent: true },
        ],
    );
    script.answer_gap = Duration::from_millis(700);
    let report = sim::place_call(&script, Arc::new(FliteTts::default())).await.unwrap();
    assert!(report.clears >= 1, "the agent cleared playback");

    // Nothing of the interrupted turn arrives after the clear: every mark after it belongs
    // to a later turn (mark names are "<turn>-<n>").
    let generation =
        |m: &str| m.strip_prefix("mark:").and_then(|n| n.split('-').next()).and_then(|g| g.parse::<u64>().ok());
    let clear_at = report.received.iter().position(|e| e == "clear").unwrap();
    let before = report.received[..clear_at].iter().filter_map(|e| generation(e)).max().unwrap();
    let after: Vec<u64> = report.received[clear_at + 1..].iter().filter_map(|e| generation(e)).collect();
    assert!(after.iter().all(|g| *g > before), "stale marks after the clear: {after:?} (cleared turn {before})");

    // The model's next request holds only what the caller heard of the long reply.
    let requests = llm.requests();
    let next = requests.iter().find(|r| r.last_user_text().is_some_and(|t| t.contains("just want to book"))).unwrap();
    let assistant =
        next.messages.iter().rev().find(|m| m.role == "assistant").expect("the cut reply is in the history");
    assert!(assistant.text().len() < LONG.len(), "trimmed: {:?}", assistant.text());
    assert!(assistant.text().ends_with('—'), "marked as cut off: {:?}", assistant.text());
    let call = calls::find_by_sid(&app.pool, &report.call_sid).await.unwrap().unwrap();
    let turns = calls::turns(&app.pool, call.id).await.unwrap();
    assert!(turns.iter().any(|t| t.interrupted && t.heard_text.is_some()), "{turns:#?}");
    app.stop().await;
}

#[tokio::test]
async fn a_spanish_speaking_caller_is_answered_by_lina_and_books() {
    let dg = FakeDeepgram::start().await;
    dg.final_delay(Duration::ZERO);
    for words in [
        vec!["hola quiero hacer una cita"],
        vec!["me llamo juan pérez"],
        vec!["sí es correcto"],
        vec!["la segunda por favor"],
        vec!["no gracias"],
    ] {
        dg.say_next(words);
    }
    let app = spawn_app_with(Options { engines: Some(cloud_engines(&dg, None)), ..Options::default() }).await;
    app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    // No commas: the fake recogniser, like a real one, would end the turn at the pause.
    let lines = [
        "Hola quiero hacer una cita.",
        "Me llamo Juan Perez.",
        "Si es correcto.",
        "La segunda por favor.",
        "No gracias.",
    ];
    let script =
        CallScript::new(&app.base_url, "+15550001111", "+15557654321", lines.iter().map(|l| line(l)).collect());
    let report = sim::place_call(&script, Arc::new(FliteTts::default())).await.unwrap();
    println!("{}", report.transcript());
    assert_eq!(report.outcome, "booked", "{}", report.transcript());
    assert_eq!(report.clears, 0, "nobody talked over anybody: {}", report.transcript());
    let call = calls::find_by_sid(&app.pool, &report.call_sid).await.unwrap().unwrap();
    assert_eq!(call.language, "es");
    let booked = appointments::for_call(&app.pool, call.id).await.unwrap();
    assert_eq!(booked[0].source, BookingSource::VoiceBookingSpanish);
    let turns = calls::turns(&app.pool, call.id).await.unwrap();
    assert!(
        turns.iter().any(|t| t.speaker == Speaker::Agent && t.text.contains("código de confirmación")),
        "{turns:#?}"
    );
    let texts: Vec<String> =
        sqlx::query_scalar("SELECT body FROM messages WHERE call_id = $1 AND kind = 'booking_confirmation'")
            .bind(call.id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert!(texts[0].contains("su cita"), "the caller's text is in Spanish: {texts:?}");
    app.stop().await;
}

#[tokio::test]
async fn cloud_speech_synthesis_that_stalls_is_replaced_by_the_local_voice() {
    use crate::fakes::elevenlabs::{API_KEY, FakeElevenLabs, Knobs};
    use ringlypro::providers::tts::elevenlabs::{ElevenLabsConfig, ElevenLabsTts};
    let dg = FakeDeepgram::start().await;
    dg.final_delay(Duration::ZERO);
    dg.say_next(["i would like to book an appointment"]);
    let voice = FakeElevenLabs::start_with(Knobs { stall: true, ..Knobs::default() }).await;
    let mut config = ElevenLabsConfig::new(API_KEY);
    config.base_url = voice.base_url();
    config.first_audio_timeout = Duration::from_millis(700);
    let local = local_engines();
    let engines = Engines {
        tts: Arc::new(ElevenLabsTts::new(config)),
        tts_fallback: Some(local.tts.clone()),
        ..cloud_engines(&dg, None)
    };
    let app = spawn_app_with(Options { engines: Some(engines), ..Options::default() }).await;
    app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    let mut script = CallScript::new(
        &app.base_url,
        "+15550001111",
        "+15557654321",
        vec![line("I would like to book an appointment please."), line("Thank you.")],
    );
    script.hang_up_after_last_line = true;
    let report = sim::place_call(&script, Arc::new(FliteTts::default())).await.unwrap();
    assert!(report.agent_audio_ms > 1000, "the caller heard the agent: {} ms", report.agent_audio_ms);
    let call = calls::find_by_sid(&app.pool, &report.call_sid).await.unwrap().unwrap();
    assert!(call.failures.contains("tts"), "the record says what failed: {:?}", call.failures);
    let turns = calls::turns(&app.pool, call.id).await.unwrap();
    let greeting = &turns[0];
    let waited = greeting.first_audio_sent_at.expect("the greeting was spoken") - greeting.started_at;
    assert!(waited < chrono::Duration::seconds(2), "dead air of {waited}");
    assert!(turns.iter().any(|t| t.speaker == Speaker::Agent && t.text.contains("your name")), "{turns:#?}");
    app.stop().await;
}

#[tokio::test]
async fn an_interruption_that_comes_to_nothing_resumes_the_agents_turn() {
    let dg = FakeDeepgram::start().await;
    dg.final_delay(Duration::ZERO);
    // Words appear while the caller makes noise over the greeting, then the final is empty.
    dg.say_next(["wait a", "wait a second", ""]);
    let app = spawn_app_with(Options { engines: Some(cloud_engines(&dg, None)), ..Options::default() }).await;
    app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    let mut script = CallScript::new(
        &app.base_url,
        "+15550001111",
        "+15557654321",
        vec![Line { text: "Wait a second.".into(), over_agent: true }],
    );
    script.answer_gap = Duration::from_millis(2500);
    let report = sim::place_call(&script, Arc::new(FliteTts::default())).await.unwrap();
    assert!(report.clears >= 1, "the agent stopped for the caller");
    let call = calls::find_by_sid(&app.pool, &report.call_sid).await.unwrap().unwrap();
    let turns = calls::turns(&app.pool, call.id).await.unwrap();
    let greeting = &turns[0];
    assert!(greeting.interrupted, "{turns:#?}");
    let heard = greeting.heard_text.clone().unwrap_or_default();
    let rest: Vec<&str> = greeting.text.split_whitespace().skip(heard.split_whitespace().count()).collect();
    let resumed = turns.iter().skip(1).find(|t| t.speaker == Speaker::Agent).expect("the agent went on");
    assert_eq!(resumed.text, rest.join(" "), "the rest of the greeting was said: {turns:#?}");
    assert!(turns.iter().all(|t| t.speaker != Speaker::Caller), "nothing the caller said became a turn");
    app.stop().await;
}

#[tokio::test]
async fn a_recogniser_that_refuses_the_call_is_replaced_by_the_local_one() {
    let dg = FakeDeepgram::start().await;
    dg.reject_key(true);
    let app = spawn_app_with(Options { engines: Some(cloud_engines(&dg, None)), ..Options::default() }).await;
    app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    let mut script = CallScript::new(
        &app.base_url,
        "+15550001111",
        "+15557654321",
        vec![line("I would like to book an appointment please."), line("Thank you.")],
    );
    script.hang_up_after_last_line = true;
    let report = sim::place_call(&script, Arc::new(FliteTts::default())).await.unwrap();
    assert!(dg.stats().rejected >= 1);
    let call = calls::find_by_sid(&app.pool, &report.call_sid).await.unwrap().unwrap();
    assert!(call.failures.contains("stt"), "the record says what failed: {:?}", call.failures);
    let turns = calls::turns(&app.pool, call.id).await.unwrap();
    assert!(
        turns.iter().any(|t| t.speaker == Speaker::Caller && t.text.contains("appointment")),
        "the local recogniser heard the caller: {turns:#?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_sound_over_the_agent_holds_it_and_the_turn_goes_on_from_where_it_stopped() {
    let dg = FakeDeepgram::start().await;
    dg.final_delay(Duration::ZERO);
    let app = spawn_app_with(Options { engines: Some(cloud_engines(&dg, None)), ..Options::default() }).await;
    app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    let voice = Arc::new(FliteTts::default());
    // A caller who listens to the whole greeting, then one who coughs over it.
    let mut quiet = CallScript::new(&app.base_url, "+15550001111", "+15557654321", vec![]);
    quiet.answer_gap = Duration::from_millis(1500);
    let quiet = sim::place_call(&quiet, voice.clone()).await.unwrap();
    assert_eq!(quiet.clears, 0);
    dg.say_next([""]); // speech energy, no words
    let mut script = CallScript::new(
        &app.base_url,
        "+15550001111",
        "+15557654321",
        vec![Line { text: "Hm.".into(), over_agent: true }],
    );
    script.answer_gap = Duration::from_millis(1500);
    let report = sim::place_call(&script, voice).await.unwrap();
    assert_eq!(report.clears, 1, "the agent went quiet at once: {:?}", report.received);

    let call = calls::find_by_sid(&app.pool, &report.call_sid).await.unwrap().unwrap();
    let turns = calls::turns(&app.pool, call.id).await.unwrap();
    assert!(!turns[0].interrupted, "a cough is not a barge-in: {turns:#?}");
    assert!(turns.iter().all(|t| t.speaker != Speaker::Caller), "{turns:#?}");
    // The whole greeting was heard once the hold ended: what the clear dropped was sent
    // again, and nothing was said twice.
    let heard_ms = report.agent_audio_ms - report.cleared_audio_ms;
    assert!(
        heard_ms.abs_diff(quiet.agent_audio_ms) <= 80,
        "heard {heard_ms} ms; the greeting is {} ms",
        quiet.agent_audio_ms
    );
    app.stop().await;
}
