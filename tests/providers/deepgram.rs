//! `DeepgramStt` against `FakeDeepgram`: turns, reconnects, KeepAlive, auth and junk, over
//! a real WebSocket on loopback. Nothing here is timed: waits only guard against hangs.

use std::f64::consts::TAU;
use std::time::Duration;

use ringlypro::audio::mulaw;
use ringlypro::domain::language::Language;
use ringlypro::providers::stt::deepgram::{DeepgramConfig, DeepgramStt};
use ringlypro::providers::stt::{SpeechToText, SttEvent, SttInput, SttStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::fakes::deepgram::{FakeDeepgram, FakeDeepgramStats};

/// Long enough for any step on a loaded machine; only reached when something hangs.
const PATIENCE: Duration = Duration::from_secs(20);
const SCRIPT: [&str; 2] = ["i would like", "i would like to book an appointment"];

fn config(fake: &FakeDeepgram) -> DeepgramConfig {
    DeepgramConfig { base_url: fake.url(), ..DeepgramConfig::new(FakeDeepgram::API_KEY) }
}

fn open(config: DeepgramConfig) -> SttStream {
    DeepgramStt::new(config).open(Language::English).expect("open returns a stream")
}

/// "Speech": a 440 Hz tone, loud enough for any energy detector.
fn tone(ms: usize) -> Vec<u8> {
    (0..ms * 8).map(|n| mulaw::encode((8000.0 * (TAU * 440.0 * n as f64 / 8000.0).sin()) as i16)).collect()
}

/// μ-law digital silence.
fn silence(ms: usize) -> Vec<u8> {
    vec![0xFF; ms * 8]
}

/// Sends audio in 20 ms frames, as Twilio does; stops quietly if the stream has ended.
async fn speak(input: &mpsc::Sender<SttInput>, audio: &[u8]) {
    for frame in audio.chunks(160) {
        if input.send(SttInput::Audio(frame.to_vec())).await.is_err() {
            return;
        }
    }
}

/// An utterance: a little silence, a second of "speech", then enough silence for Deepgram's
/// endpointing (300 ms) and utterance end (1000 ms).
async fn say_an_utterance(input: &mpsc::Sender<SttInput>) {
    speak(input, &[silence(100), tone(1000), silence(1500)].concat()).await;
}

/// Sends one frame of silence and waits until the fake has it: from then on each frame is
/// one WebSocket message (frames sent before the handshake go out batched), so
/// `drop_after` counts frames. That first frame is message 1.
async fn prime(input: &mpsc::Sender<SttInput>, fake: &FakeDeepgram) {
    speak(input, &silence(20)).await;
    wait_for_fake(fake, |s| s.audio_bytes >= 160).await;
}

async fn next_event(events: &mut mpsc::Receiver<SttEvent>) -> Option<SttEvent> {
    timeout(PATIENCE, events.recv()).await.expect("an event or the end of the stream")
}

/// Events up to and including the first Final (or Error).
async fn events_until_final(events: &mut mpsc::Receiver<SttEvent>) -> Vec<SttEvent> {
    let mut seen = Vec::new();
    while let Some(event) = next_event(events).await {
        let done = matches!(event, SttEvent::Final { .. } | SttEvent::Error(_));
        seen.push(event);
        if done {
            return seen;
        }
    }
    panic!("the stream ended before a final transcript: {seen:?}");
}

/// Closes the input and returns every event until the stream ends.
async fn close_and_drain(stream: SttStream) -> Vec<SttEvent> {
    let SttStream { input, mut events } = stream;
    drop(input);
    let mut rest = Vec::new();
    while let Some(event) = next_event(&mut events).await {
        rest.push(event);
    }
    rest
}

fn finals(events: &[SttEvent]) -> Vec<&SttEvent> {
    events.iter().filter(|e| matches!(e, SttEvent::Final { .. })).collect()
}

fn the_final(text: &str) -> SttEvent {
    SttEvent::Final { text: text.to_owned(), speech_final: true }
}

fn assert_no_error(events: &[SttEvent]) {
    assert!(!events.iter().any(|e| matches!(e, SttEvent::Error(_))), "unexpected error in {events:?}");
}

async fn wait_for_fake(fake: &FakeDeepgram, done: impl Fn(&FakeDeepgramStats) -> bool) {
    timeout(PATIENCE, fake.wait_for(done)).await.expect("the fake reaches the expected state");
}

#[tokio::test]
async fn a_spoken_utterance_yields_speech_started_interims_and_one_final() {
    let fake = FakeDeepgram::start().await;
    fake.say_next(SCRIPT);
    let mut stream = open(config(&fake));

    say_an_utterance(&stream.input).await;
    let events = events_until_final(&mut stream.events).await;

    assert_eq!(events.first(), Some(&SttEvent::SpeechStarted), "{events:?}");
    let (last, before) = events.split_last().expect("at least one event");
    assert_eq!(last, &the_final(SCRIPT[1]));
    assert!(
        before.iter().any(|e| matches!(e, SttEvent::Interim { text } if text == SCRIPT[0])),
        "an interim shows the words so far: {events:?}"
    );
    let rest = close_and_drain(stream).await;
    assert!(finals(&rest).is_empty(), "one final per turn: {rest:?}");
    assert_no_error(&rest);
    wait_for_fake(&fake, |s| s.close_streams == 1).await;
}

#[tokio::test]
async fn the_stream_asks_for_mulaw_at_8_khz_with_the_turn_options() {
    let fake = FakeDeepgram::start().await;
    let stream = DeepgramStt::new(config(&fake)).open(Language::Spanish).expect("open");

    wait_for_fake(&fake, |s| s.connections == 1).await;

    let query = fake.last_query();
    for (name, value) in [
        ("model", "nova-3"),
        ("encoding", "mulaw"),
        ("sample_rate", "8000"),
        ("channels", "1"),
        ("interim_results", "true"),
        ("endpointing", "300"),
        ("utterance_end_ms", "1000"),
        ("vad_events", "true"),
        ("smart_format", "true"),
        ("language", "es"),
    ] {
        assert!(query.contains(&(name.to_owned(), value.to_owned())), "{name}={value} missing from {query:?}");
    }
    drop(stream);
}

#[tokio::test]
async fn utterance_end_without_speech_final_still_ends_the_turn() {
    let fake = FakeDeepgram::start().await;
    fake.use_utterance_end(true);
    fake.say_next(SCRIPT);
    let mut stream = open(config(&fake));

    say_an_utterance(&stream.input).await;
    let events = events_until_final(&mut stream.events).await;

    assert_eq!(events.last(), Some(&the_final(SCRIPT[1])), "{events:?}");
    let rest = close_and_drain(stream).await;
    assert!(finals(&rest).is_empty(), "the turn ended once: {rest:?}");
}

#[tokio::test]
async fn a_socket_dropped_mid_utterance_reconnects_and_no_words_are_lost() {
    let fake = FakeDeepgram::start().await;
    fake.say_next(SCRIPT);
    // The priming frame, 5 frames of silence and 24 of speech: then the socket dies mid-word.
    fake.drop_after(30);
    let mut stream = open(config(&fake));
    prime(&stream.input, &fake).await;

    say_an_utterance(&stream.input).await;
    let events = events_until_final(&mut stream.events).await;

    assert_no_error(&events);
    assert_eq!(events.last(), Some(&the_final(SCRIPT[1])));
    assert_eq!(fake.stats().connections, 2);
    // The second socket heard the whole second of speech, not just what followed the drop.
    let heard = fake.heard();
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert!((980..=1020).contains(&heard[0].speech_ms), "{heard:?}");
    let rest = close_and_drain(stream).await;
    assert_no_error(&rest);
    assert!(finals(&rest).is_empty(), "{rest:?}");
}

#[tokio::test]
async fn words_settled_before_a_drop_are_kept_and_end_the_turn() {
    let fake = FakeDeepgram::start().await;
    fake.use_utterance_end(true);
    fake.final_delay(Duration::ZERO);
    fake.say_next(SCRIPT);
    // After the priming frame and the utterance's 55 frames, the settled segment goes out
    // on message 71 (300 ms of silence) and its UtteranceEnd would on message 106 (1 s):
    // the socket dies in between.
    fake.drop_after(80);
    let mut stream = open(config(&fake));
    prime(&stream.input, &fake).await;

    say_an_utterance(&stream.input).await;
    let events = events_until_final(&mut stream.events).await;

    assert_no_error(&events);
    assert_eq!(events.last(), Some(&the_final(SCRIPT[1])));
    assert_eq!(fake.stats().connections, 2);
    assert_eq!(fake.heard().len(), 1, "the words were recognised once");
    let rest = close_and_drain(stream).await;
    assert!(finals(&rest).is_empty(), "{rest:?}");
}

#[tokio::test]
async fn a_second_drop_before_recovering_reports_a_retryable_error() {
    let fake = FakeDeepgram::start().await;
    fake.say_next(SCRIPT);
    fake.drop_after(30);
    // The new socket dies on its first message, the start of the replayed audio.
    fake.drop_after(1);
    let mut stream = open(config(&fake));
    prime(&stream.input, &fake).await;

    speak(&stream.input, &[silence(100), tone(3000)].concat()).await;
    let events = events_until_final(&mut stream.events).await;

    let Some(SttEvent::Error(error)) = events.last() else {
        panic!("expected an error, got {events:?}");
    };
    assert!(error.retryable, "{error:?}");
    assert_eq!(error.provider, "deepgram");
    assert_eq!(next_event(&mut stream.events).await, None, "the stream is over");
    assert_eq!(fake.stats().connections, 2, "no third attempt");
}

#[tokio::test]
async fn a_wrong_key_reports_a_fatal_error() {
    let fake = FakeDeepgram::start().await;
    let mut stream = open(DeepgramConfig { api_key: "not-the-key".to_owned(), ..config(&fake) });

    let event = next_event(&mut stream.events).await;

    let Some(SttEvent::Error(error)) = event else {
        panic!("expected an error, got {event:?}");
    };
    assert!(!error.retryable, "{error:?}");
    assert!(error.message.contains("401"), "{error:?}");
    assert_eq!(next_event(&mut stream.events).await, None);
    assert_eq!((fake.stats().rejected, fake.stats().connections), (1, 0));
}

#[tokio::test]
async fn a_revoked_key_reports_a_fatal_error() {
    let fake = FakeDeepgram::start().await;
    fake.reject_key(true);
    let mut stream = open(config(&fake));

    let event = next_event(&mut stream.events).await;

    assert!(matches!(&event, Some(SttEvent::Error(e)) if !e.retryable), "{event:?}");
}

#[tokio::test]
async fn garbage_and_unknown_messages_from_the_server_are_skipped() {
    let fake = FakeDeepgram::start().await;
    fake.send_garbage(true);
    fake.say_next(SCRIPT);
    let mut stream = open(config(&fake));

    say_an_utterance(&stream.input).await;
    let events = events_until_final(&mut stream.events).await;

    assert_eq!(events.first(), Some(&SttEvent::SpeechStarted), "{events:?}");
    assert_eq!(events.last(), Some(&the_final(SCRIPT[1])));
    let rest = close_and_drain(stream).await;
    assert_no_error(&rest);
    assert!(finals(&rest).is_empty(), "{rest:?}");
}

#[tokio::test]
async fn keepalives_are_sent_while_no_audio_flows() {
    let fake = FakeDeepgram::start().await;
    fake.say_next(SCRIPT);
    let mut stream = open(DeepgramConfig { keepalive_every: Duration::from_millis(20), ..config(&fake) });

    wait_for_fake(&fake, |s| s.keep_alives >= 3).await;

    // The stream is still good for speech afterwards.
    say_an_utterance(&stream.input).await;
    let events = events_until_final(&mut stream.events).await;
    assert_eq!(events.last(), Some(&the_final(SCRIPT[1])));
}

#[tokio::test]
async fn finalize_ends_the_turn_without_waiting_for_silence() {
    let fake = FakeDeepgram::start().await;
    fake.say_next(SCRIPT);
    let mut stream = open(config(&fake));

    speak(&stream.input, &[silence(100), tone(1000)].concat()).await;
    stream.input.send(SttInput::Finalize).await.expect("stream open");
    let events = events_until_final(&mut stream.events).await;

    assert_eq!(events.last(), Some(&the_final(SCRIPT[1])), "{events:?}");
    assert_eq!(fake.stats().finalizes, 1);
}

#[tokio::test]
async fn closing_the_input_reports_the_last_words_then_ends_the_stream() {
    let fake = FakeDeepgram::start().await;
    fake.say_next(SCRIPT);
    let stream = open(config(&fake));

    speak(&stream.input, &[silence(100), tone(1000)].concat()).await;
    let events = close_and_drain(stream).await;

    assert_no_error(&events);
    assert_eq!(events.last(), Some(&the_final(SCRIPT[1])), "{events:?}");
    assert_eq!(finals(&events).len(), 1);
    assert_eq!(fake.stats().close_streams, 1);
}
