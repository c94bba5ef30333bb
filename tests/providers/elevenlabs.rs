//! ElevenLabs streaming speech against the fake vendor: a context per turn on one socket,
//! barge-in, idle gaps and failures. Also the sentence adapter over espeak-ng.

use std::time::{Duration, Instant};

use ringlypro::domain::language::Language;
use ringlypro::providers::ProviderError;
use ringlypro::providers::tts::elevenlabs::{ElevenLabsConfig, ElevenLabsTts};
use ringlypro::providers::tts::espeak::EspeakTts;
use ringlypro::providers::tts::sentences::SentenceTts;
use ringlypro::providers::tts::{StreamingTts, TtsAudio, TtsInput, TtsTurn};
use serde_json::json;

use crate::fakes::elevenlabs::{API_KEY, ContextClose, FakeElevenLabs, Knobs, audio_for, text_of};

/// Long enough for anything the fake does; a hang fails instead of blocking the run.
const PATIENCE: Duration = Duration::from_secs(10);

fn config_for(fake: &FakeElevenLabs) -> ElevenLabsConfig {
    let mut config = ElevenLabsConfig::new(API_KEY);
    config.base_url = fake.base_url();
    config.connect_timeout = Duration::from_secs(2);
    config.first_audio_timeout = Duration::from_secs(2);
    config
}

fn tts_for(fake: &FakeElevenLabs) -> ElevenLabsTts {
    ElevenLabsTts::new(config_for(fake))
}

async fn say(turn: &TtsTurn, pieces: &[&str]) {
    for piece in pieces {
        turn.text.send(TtsInput::Text((*piece).to_owned())).await.expect("the turn takes text");
    }
}

async fn flush(turn: &TtsTurn) {
    turn.text.send(TtsInput::Flush).await.expect("the turn takes the flush");
}

/// A turn's audio up to the end of its channel, the chunk count, and the error that ended
/// it, if one did.
async fn listen(audio: &mut TtsAudio) -> (Vec<u8>, usize, Option<ProviderError>) {
    let mut bytes = Vec::new();
    let mut chunks = 0;
    loop {
        match tokio::time::timeout(PATIENCE, audio.recv()).await.expect("the turn ends") {
            Some(Ok(chunk)) => {
                bytes.extend(chunk);
                chunks += 1;
            }
            Some(Err(error)) => {
                let after = tokio::time::timeout(PATIENCE, audio.recv()).await.expect("closes after the error");
                assert!(after.is_none(), "audio after an error: {after:?}");
                return (bytes, chunks, Some(error));
            }
            None => return (bytes, chunks, None),
        }
    }
}

/// A whole turn: its pieces, a flush, and everything heard.
async fn speak(turn: &mut TtsTurn, pieces: &[&str]) -> String {
    say(turn, pieces).await;
    flush(turn).await;
    let (audio, _, error) = listen(&mut turn.audio).await;
    assert_eq!(error, None);
    text_of(&audio)
}

#[tokio::test]
async fn a_turn_sent_in_pieces_is_heard_in_order_and_ends_after_the_flush() {
    let fake = FakeElevenLabs::start().await;
    let mut call = tts_for(&fake).open_call(Language::English);
    let mut turn = call.start_turn();
    say(&turn, &["Hello there.", "How can I", "help you today?"]).await;
    flush(&turn).await;
    let (audio, chunks, error) = listen(&mut turn.audio).await;

    assert_eq!(error, None);
    assert_eq!(text_of(&audio), "Hello there. How can I help you today? ");
    assert_eq!(audio, audio_for("Hello there. How can I help you today? "), "raw μ-law, not re-encoded");
    assert!(chunks > 1, "streamed in {chunks} chunk(s)");
    let log = fake.log();
    let context = &log.contexts[0];
    assert_eq!(context.texts, ["Hello there. ", "How can I ", "help you today? "]);
    assert_eq!(context.first_message["text"], " ");
    assert!(context.first_message["voice_settings"]["stability"].is_number(), "{}", context.first_message);
    assert!(context.first_message["generation_config"]["chunk_length_schedule"].is_array());
    assert_eq!(context.closed, Some(ContextClose::AfterFlush));
    assert!(context.final_sent);
    let tail = &log.messages[log.messages.len() - 2..];
    assert_eq!(tail[0], json!({"text": "", "flush": true, "context_id": context.id}));
    assert_eq!(tail[1], json!({"context_id": context.id, "close_context": true}));
}

#[tokio::test]
async fn two_turns_of_a_call_share_one_socket_with_a_context_each() {
    let fake = FakeElevenLabs::start().await;
    let mut call = tts_for(&fake).open_call(Language::English);
    let mut first = call.start_turn();
    assert_eq!(speak(&mut first, &["Good morning."]).await, "Good morning. ");
    let mut second = call.start_turn();
    assert_eq!(speak(&mut second, &["Goodbye."]).await, "Goodbye. ");

    let log = fake.log();
    assert_eq!(log.connections.len(), 1);
    assert_eq!(log.contexts.len(), 2);
    assert_ne!(log.contexts[0].id, log.contexts[1].id);
    assert!(log.contexts.iter().all(|c| c.connection == 0 && c.final_sent));
}

#[tokio::test]
async fn a_turn_dropped_mid_audio_closes_its_context_and_none_of_its_audio_reaches_the_next_turn() {
    let fake = FakeElevenLabs::start_with(Knobs {
        generate_at_chars: 20,
        first_byte_delay: Duration::ZERO,
        chunk_interval: Duration::from_millis(20),
        chars_per_chunk: 10,
        ..Knobs::default()
    })
    .await;
    let mut call = tts_for(&fake).open_call(Language::English);
    let long = "This reply goes on and on about opening hours and parking. ".repeat(4);
    let mut interrupted = call.start_turn();
    say(&interrupted, &[&long]).await;
    let first = tokio::time::timeout(PATIENCE, interrupted.audio.recv()).await.expect("audio before the flush");
    assert!(matches!(first, Some(Ok(_))), "{first:?}");
    drop(interrupted);

    let id = fake.log().contexts[0].id.clone();
    let closed = fake.wait_for(PATIENCE, |log| log.context(&id).is_some_and(|c| c.closed.is_some())).await;
    assert!(closed, "close_context never came");
    let mut next = call.start_turn();
    assert_eq!(speak(&mut next, &["Sorry, go ahead."]).await, "Sorry, go ahead. ");

    let log = fake.log();
    let abandoned = log.context(&id).expect("logged");
    assert_eq!(abandoned.closed, Some(ContextClose::Aborted));
    assert_eq!(abandoned.audio_after_abort, 0);
    assert!(abandoned.audio_bytes_sent < audio_for(&long).len(), "the whole reply was generated anyway");
    assert!(log.messages.contains(&json!({"context_id": id, "close_context": true})));
}

#[tokio::test]
async fn audio_still_arriving_for_a_dropped_flushed_turn_never_reaches_the_next_turn() {
    // After a flush the server finishes the context's audio even once it is closed.
    let fake = FakeElevenLabs::start_with(Knobs {
        first_byte_delay: Duration::ZERO,
        chunk_interval: Duration::from_millis(5),
        chars_per_chunk: 5,
        ..Knobs::default()
    })
    .await;
    let mut call = tts_for(&fake).open_call(Language::English);
    let long = "We are open Monday to Friday from nine to five. ".repeat(3);
    let mut interrupted = call.start_turn();
    say(&interrupted, &[&long]).await;
    flush(&interrupted).await;
    let first = tokio::time::timeout(PATIENCE, interrupted.audio.recv()).await.expect("audio");
    assert!(matches!(first, Some(Ok(_))), "{first:?}");
    drop(interrupted);

    let mut next = call.start_turn();
    assert_eq!(speak(&mut next, &["Yes?"]).await, "Yes? ");
    let log = fake.log();
    let stale = &log.contexts[0];
    assert!(stale.audio_bytes_sent > 5 * 8, "the server kept sending the old turn's audio");
    assert_eq!(log.contexts.len(), 2);
}

#[tokio::test]
async fn a_stalled_server_fails_the_turn_with_a_retryable_error_within_the_first_audio_timeout() {
    let fake = FakeElevenLabs::start_with(Knobs { stall: true, ..Knobs::default() }).await;
    let mut config = config_for(&fake);
    config.first_audio_timeout = Duration::from_millis(300);
    let tts = ElevenLabsTts::new(config);
    assert_eq!(tts.first_audio_timeout(), Duration::from_millis(300));
    let mut call = tts.open_call(Language::English);
    let mut turn = call.start_turn();
    say(&turn, &["Anyone there?"]).await;
    let flushed_at = Instant::now();
    flush(&turn).await;
    let (audio, _, error) = listen(&mut turn.audio).await;

    let waited = flushed_at.elapsed();
    assert!(audio.is_empty());
    assert!(matches!(error, Some(ProviderError { retryable: true, .. })), "{error:?}");
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(2), "{waited:?}");
}

#[tokio::test]
async fn a_wrong_api_key_fails_the_turn_with_an_error_not_worth_retrying() {
    let fake = FakeElevenLabs::start().await;
    let mut config = config_for(&fake);
    config.api_key = "sk_wrong".to_owned();
    let mut call = ElevenLabsTts::new(config).open_call(Language::English);
    let mut turn = call.start_turn();
    say(&turn, &["Hello."]).await;
    flush(&turn).await;
    let (audio, _, error) = listen(&mut turn.audio).await;

    assert!(audio.is_empty());
    let error = error.expect("an error");
    assert!(!error.retryable, "{error:?}");
    assert!(error.message.contains("401"), "{error:?}");
    let log = fake.log();
    assert!(log.connections.is_empty());
    assert!(log.rejected.iter().all(|why| why == "invalid_api_key") && !log.rejected.is_empty());
}

#[tokio::test]
async fn a_socket_dropped_mid_turn_fails_that_turn_and_the_next_turn_reconnects() {
    // Open, text, text: the connection dies on the third message.
    let fake = FakeElevenLabs::start_with(Knobs { drop_after_messages: Some(3), ..Knobs::default() }).await;
    let mut call = tts_for(&fake).open_call(Language::English);
    let mut broken = call.start_turn();
    say(&broken, &["One moment.", "Let me look."]).await;
    let (audio, _, error) = listen(&mut broken.audio).await;
    assert!(audio.is_empty());
    assert!(matches!(error, Some(ProviderError { retryable: true, .. })), "{error:?}");

    fake.update(|knobs| knobs.drop_after_messages = None);
    let mut next = call.start_turn();
    assert_eq!(speak(&mut next, &["I found it."]).await, "I found it. ");
    let log = fake.log();
    assert_eq!(log.drops, 1);
    assert_eq!(log.connections.len(), 2);
    assert_eq!(log.contexts.last().map(|c| c.connection), Some(1));
}

#[tokio::test]
async fn a_turn_waiting_for_more_text_is_kept_alive_past_the_servers_idle_timeout() {
    let fake =
        FakeElevenLabs::start_with(Knobs { inactivity_timeout: Duration::from_millis(300), ..Knobs::default() }).await;
    let mut config = config_for(&fake);
    config.keep_alive_interval = Duration::from_millis(100);
    let mut call = ElevenLabsTts::new(config).open_call(Language::English);
    let mut turn = call.start_turn();
    say(&turn, &["Let me check the calendar."]).await;
    // A slow booking lookup: three times the server's patience.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(speak(&mut turn, &["You are booked."]).await, "Let me check the calendar. You are booked. ");

    let log = fake.log();
    assert_eq!(log.idle_closes, 0);
    assert_eq!(log.connections.len(), 1);
    assert!(log.contexts[0].keep_alives >= 2, "{} keep-alives", log.contexts[0].keep_alives);
    assert!(log.policy_closes.is_empty(), "{:?}", log.policy_closes);
}

#[tokio::test]
async fn a_socket_closed_for_idleness_is_reopened_and_a_turn_without_text_survives_it() {
    let fake =
        FakeElevenLabs::start_with(Knobs { inactivity_timeout: Duration::from_millis(200), ..Knobs::default() }).await;
    let mut call = tts_for(&fake).open_call(Language::English);
    // Started while the LLM thinks: no text yet, so no context on the server to keep alive.
    let mut turn = call.start_turn();
    assert!(fake.wait_for(PATIENCE, |log| log.idle_closes == 1).await, "the idle socket was never closed");

    assert_eq!(speak(&mut turn, &["Thanks for waiting."]).await, "Thanks for waiting. ");
    let log = fake.log();
    assert_eq!(log.connections.len(), 2);
    assert!(log.policy_closes.is_empty(), "{:?}", log.policy_closes);
}

#[tokio::test]
async fn dropping_the_call_sends_close_socket() {
    let fake = FakeElevenLabs::start().await;
    let mut call = tts_for(&fake).open_call(Language::English);
    let mut turn = call.start_turn();
    assert_eq!(speak(&mut turn, &["Bye."]).await, "Bye. ");
    drop(call);
    assert!(fake.wait_for(PATIENCE, |log| log.close_sockets == 1).await, "no close_socket");
    assert_eq!(fake.log().messages.last(), Some(&json!({"close_socket": true})));
}

#[tokio::test]
async fn whitespace_only_text_never_reaches_the_server() {
    let fake = FakeElevenLabs::start().await;
    let mut call = tts_for(&fake).open_call(Language::English);
    let mut turn = call.start_turn();
    assert_eq!(speak(&mut turn, &[" ", "", "\n", "Hi."]).await, "Hi. ");
    let log = fake.log();
    assert!(log.policy_closes.is_empty(), "{:?}", log.policy_closes);
    assert_eq!(log.contexts[0].texts, ["Hi. "]);
}

#[tokio::test]
async fn a_turn_flushed_without_text_ends_at_once_without_a_context() {
    let fake = FakeElevenLabs::start().await;
    let mut call = tts_for(&fake).open_call(Language::English);
    let mut turn = call.start_turn();
    flush(&turn).await;
    let (audio, chunks, error) = listen(&mut turn.audio).await;
    assert!(audio.is_empty() && chunks == 0 && error.is_none());
    assert!(fake.log().contexts.is_empty());
}

#[tokio::test]
async fn each_language_is_spoken_by_its_own_voice() {
    let fake = FakeElevenLabs::start().await;
    let tts = tts_for(&fake);
    let mut english = tts.open_call(Language::English);
    assert_eq!(speak(&mut english.start_turn(), &["Hello."]).await, "Hello. ");
    let mut spanish = tts.open_call(Language::Spanish);
    assert_eq!(speak(&mut spanish.start_turn(), &["Hola."]).await, "Hola. ");

    let mut voices: Vec<String> = fake.log().connections.iter().map(|c| c.voice_id.clone()).collect();
    voices.sort();
    assert_eq!(voices, ["21m00Tcm4TlvDq8ikWAM", "ThT5KcBeYPX3keUQqHPh"]);
    let log = fake.log();
    assert!(log.connections.iter().all(|c| c.model_id == "eleven_flash_v2_5" && c.output_format == "ulaw_8000"));
}

#[tokio::test]
async fn a_final_spelled_is_final_also_ends_the_turn() {
    let fake = FakeElevenLabs::start_with(Knobs { snake_case_final: true, ..Knobs::default() }).await;
    let mut call = tts_for(&fake).open_call(Language::English);
    assert_eq!(speak(&mut call.start_turn(), &["Done."]).await, "Done. ");
}

#[tokio::test]
async fn many_turns_and_interruptions_never_exceed_the_servers_context_limit() {
    let fake = FakeElevenLabs::start_with(Knobs {
        generate_at_chars: 10,
        first_byte_delay: Duration::ZERO,
        ..Knobs::default()
    })
    .await;
    let mut call = tts_for(&fake).open_call(Language::English);
    for n in 0..7 {
        let mut turn = call.start_turn();
        let text = format!("Turn number {n}.");
        assert_eq!(speak(&mut turn, &[&text]).await, format!("{text} "));
    }
    for _ in 0..7 {
        let mut turn = call.start_turn();
        say(&turn, &["An answer that the caller will interrupt."]).await;
        let first = tokio::time::timeout(PATIENCE, turn.audio.recv()).await.expect("audio");
        assert!(matches!(first, Some(Ok(_))), "{first:?}");
    }
    let mut last = call.start_turn();
    assert_eq!(speak(&mut last, &["Still here."]).await, "Still here. ");
    let log = fake.log();
    assert!(log.policy_closes.is_empty(), "{:?}", log.policy_closes);
    assert_eq!(log.connections.len(), 1);
    assert_eq!(log.contexts.len(), 15);
}

#[tokio::test]
async fn sentence_tts_over_espeak_speaks_the_first_sentence_before_the_turn_is_flushed() {
    if !EspeakTts::available() {
        eprintln!("skipped: espeak-ng is not installed");
        return;
    }
    let mut call = SentenceTts::new(EspeakTts::default()).open_call(Language::English);
    let mut turn = call.start_turn();
    say(&turn, &["Hello there.", "I am checking"]).await;

    // Everything the first sentence makes, before the second is complete.
    let mut first = Vec::new();
    let chunk = tokio::time::timeout(Duration::from_secs(5), turn.audio.recv()).await;
    first.extend(chunk.expect("audio before the flush").expect("open").expect("espeak-ng audio"));
    while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_millis(500), turn.audio.recv()).await {
        first.extend(chunk.expect("espeak-ng audio"));
    }
    say(&turn, &["the calendar."]).await;
    flush(&turn).await;
    let (rest, _, error) = listen(&mut turn.audio).await;

    assert_eq!(error, None);
    let seconds = |bytes: &[u8]| bytes.len() as f64 / 8000.0;
    assert!((0.4..3.0).contains(&seconds(&first)), "first sentence: {} s", seconds(&first));
    assert!((0.6..4.0).contains(&seconds(&rest)), "second sentence: {} s", seconds(&rest));
}
