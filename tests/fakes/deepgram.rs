//! A fake Deepgram live endpoint on loopback: real WebSocket handshake (token checked, query
//! parsed), real-shaped JSON, and transcripts from a script, timed by the speech it hears
//! in the μ-law audio (energy = speech). It never recognises words.
//!
//! Timing follows the audio, not the clock: a client may send audio as fast as it likes
//! and still get the same results. Only `final_delay` is wall-clock time.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use ringlypro::audio::mulaw;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// 8 kHz μ-law: one byte per sample.
const BYTES_PER_MS: u64 = 8;
/// Audio is judged in 20 ms frames, as Twilio sends it.
const FRAME: usize = 160;
/// Mean absolute sample level above which a frame is speech (silence 0xFF decodes to 0).
const VOICE_LEVEL: u32 = 500;
/// An interim result per this much speech.
const INTERIM_EVERY: u64 = 200 * BYTES_PER_MS;
const MODEL_UUID: &str = "40bd3654-e622-47c4-a111-63a61b23bd2d";

/// What the fake has received so far, over all connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeDeepgramStats {
    /// Handshakes accepted.
    pub connections: usize,
    /// Handshakes refused (wrong key, or `reject_key`).
    pub rejected: usize,
    pub keep_alives: usize,
    pub finalizes: usize,
    pub close_streams: usize,
    /// Binary audio bytes received (replayed audio counts again).
    pub audio_bytes: usize,
}

/// An utterance the fake finalised: the transcript it sent and how much speech it heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeardUtterance {
    pub transcript: String,
    pub speech_ms: u64,
}

/// Where an armed drop happens.
#[derive(Debug, Clone, Copy)]
enum DropPoint {
    Messages(usize),
    AudioBytes(usize),
}

/// A Deepgram stand-in. Dropping it stops the server and every connection.
pub struct FakeDeepgram {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for FakeDeepgram {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeDeepgram {
    /// The key the fake accepts (`Authorization: Token fake-deepgram-key`).
    pub const API_KEY: &'static str = "fake-deepgram-key";

    /// Listens on 127.0.0.1 on a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("bound address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State { final_delay: Duration::from_millis(250), ..State::default() }),
            changed: Notify::new(),
        });
        let server = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Self { addr, shared, server }
    }

    /// The base URL to give the client: `ws://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Queues the next utterance: while it is spoken, interim results walk through
    /// `hypotheses`; its final result is the last one. Unscripted speech transcribes as "".
    /// An utterance cut off by a dropped socket goes back to the front of the queue.
    pub fn say_next<I, S>(&self, hypotheses: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let hypotheses = hypotheses.into_iter().map(Into::into).collect();
        self.shared.state().script.push_back(hypotheses);
    }

    /// Wall-clock delay between the end of speech (endpointing silence heard) and the final
    /// result. Default 250 ms; zero sends it as soon as the silence is heard.
    pub fn final_delay(&self, delay: Duration) {
        self.shared.state().final_delay = delay;
    }

    /// End turns as Deepgram does when endpointing fails: a final with
    /// `speech_final:false`, then `UtteranceEnd` once `utterance_end_ms` of silence is heard.
    pub fn use_utterance_end(&self, on: bool) {
        self.shared.state().utterance_end = on;
    }

    /// Arms one abrupt drop: the next connection not yet armed handles `n_messages` client
    /// messages (audio or control), then loses its TCP stream without a close frame.
    /// Call twice to drop two connections.
    pub fn drop_after(&self, n_messages: usize) {
        self.shared.state().drops.push_back(DropPoint::Messages(n_messages));
    }

    /// Arms one abrupt drop once the connection has heard `ms` of audio (8 kHz μ-law),
    /// however the client cut it into messages.
    pub fn drop_after_audio_ms(&self, ms: usize) {
        self.shared.state().drops.push_back(DropPoint::AudioBytes(ms * 8));
    }

    /// Precede every message with junk: bad JSON, an unknown type, a malformed `Results`
    /// or a binary frame, in turn.
    pub fn send_garbage(&self, on: bool) {
        self.shared.state().garbage = on;
    }

    /// Refuse every handshake with 401, even with the right key (a revoked key).
    pub fn reject_key(&self, on: bool) {
        self.shared.state().reject_key = on;
    }

    pub fn stats(&self) -> FakeDeepgramStats {
        self.shared.state().stats.clone()
    }

    /// The utterances finalised so far, in order.
    pub fn heard(&self) -> Vec<HeardUtterance> {
        self.shared.state().heard.clone()
    }

    /// The query string of the latest accepted handshake, decoded.
    pub fn last_query(&self) -> Vec<(String, String)> {
        self.shared.state().last_query.clone()
    }

    /// Waits until `done` holds for the stats (no timeout: wrap it in one).
    pub async fn wait_for(&self, done: impl Fn(&FakeDeepgramStats) -> bool) {
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(&self.stats()) {
                return;
            }
            changed.await;
        }
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Vec<String>>,
    final_delay: Duration,
    utterance_end: bool,
    garbage: bool,
    reject_key: bool,
    drops: VecDeque<DropPoint>,
    stats: FakeDeepgramStats,
    heard: Vec<HeardUtterance>,
    last_query: Vec<(String, String)>,
    connection_count: u64,
}

struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, update: impl FnOnce(&mut FakeDeepgramStats)) {
        update(&mut self.state().stats);
        self.changed.notify_waiters();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Owning the connections here means aborting this task ends them all.
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        if let Ok((tcp, _)) = listener.accept().await {
            connections.spawn(serve_connection(tcp, Arc::clone(&shared)));
        }
    }
}

async fn serve_connection(tcp: TcpStream, shared: Arc<Shared>) {
    let request_id = {
        let mut state = shared.state();
        state.connection_count += 1;
        format!("00000000-0000-4000-8000-{:012x}", state.connection_count)
    };
    let mut query = None;
    // The error type is fixed by tungstenite's handshake callback.
    #[allow(clippy::result_large_err)]
    let check = |request: &Request, mut response: Response| {
        let expected = format!("Token {}", FakeDeepgram::API_KEY);
        let presented = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if shared.state().reject_key || presented != Some(expected.as_str()) {
            shared.count(|s| s.rejected += 1);
            return Err(unauthorized(&request_id));
        }
        query = Some(
            serde_urlencoded::from_str::<Vec<(String, String)>>(request.uri().query().unwrap_or(""))
                .unwrap_or_default(),
        );
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("dg-request-id", value);
        }
        Ok(response)
    };
    let Ok(socket) = tokio_tungstenite::accept_hdr_async_with_config(tcp, check, Some(super::small_socket())).await
    else {
        return;
    };
    let query = query.unwrap_or_default();
    let (drop_after, utterance_end_ms, endpointing_ms) = {
        let mut state = shared.state();
        state.last_query = query.clone();
        (state.drops.pop_front(), param(&query, "utterance_end_ms", 1000), param(&query, "endpointing", 300))
    };
    shared.count(|s| s.connections += 1);
    let connection = Connection {
        socket,
        shared: Arc::clone(&shared),
        request_id,
        ear: Ear::new(endpointing_ms * BYTES_PER_MS, utterance_end_ms * BYTES_PER_MS),
        pending_final: None,
        garbage_turn: 0,
    };
    connection.run(drop_after).await;
}

fn param(query: &[(String, String)], name: &str, default: u64) -> u64 {
    query.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.parse().ok()).unwrap_or(default)
}

fn unauthorized(request_id: &str) -> ErrorResponse {
    let body = json!({
        "err_code": "INVALID_AUTH",
        "err_msg": "Invalid credentials.",
        "request_id": request_id,
    });
    let mut response = ErrorResponse::new(Some(body.to_string()));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response.headers_mut().insert("dg-error", HeaderValue::from_static("Invalid credentials."));
    response
}

/// An utterance whose speech has ended and whose final result is due.
struct PendingFinal {
    due: Instant,
    segment: Segment,
}

/// One scripted utterance as heard on this connection. Positions are bytes of audio since
/// the connection's first byte.
#[derive(Debug, Clone)]
struct Segment {
    hypotheses: Vec<String>,
    /// Where the result's audio begins: the end of the previous final, as Deepgram counts.
    start: u64,
    onset: u64,
    last_voice: u64,
}

impl Segment {
    fn transcript(&self) -> String {
        self.hypotheses.last().cloned().unwrap_or_default()
    }
}

/// What the fake noticed in one frame of audio.
enum Heard {
    Onset,
    Interim { text: String, start: u64, end: u64 },
    SpeechEnded(Segment),
    UtteranceEnd { last_word_end: u64 },
}

/// Speech detection in audio time: onset on the first loud frame, end after `endpointing`
/// bytes of quiet, `UtteranceEnd` after `utterance_end` bytes of quiet.
struct Ear {
    endpointing: u64,
    utterance_end: u64,
    partial: Vec<u8>,
    position: u64,
    /// End of the last finalised audio.
    finalised_until: u64,
    speaking: Option<Speaking>,
    /// Last word end of a turn waiting for its `UtteranceEnd`.
    awaiting_utterance_end: Option<u64>,
}

struct Speaking {
    segment: Segment,
    interims: usize,
    next_interim: u64,
}

impl Ear {
    fn new(endpointing: u64, utterance_end: u64) -> Self {
        Self {
            endpointing,
            utterance_end,
            partial: Vec::new(),
            position: 0,
            finalised_until: 0,
            speaking: None,
            awaiting_utterance_end: None,
        }
    }

    /// Feeds audio; `script` supplies an utterance's hypotheses at each onset.
    fn hear(&mut self, audio: &[u8], mut script: impl FnMut() -> Vec<String>) -> Vec<Heard> {
        let mut heard = Vec::new();
        self.partial.extend_from_slice(audio);
        let whole = self.partial.len() / FRAME * FRAME;
        let frames: Vec<u8> = self.partial.drain(..whole).collect();
        for frame in frames.chunks(FRAME) {
            let level = frame.iter().map(|&b| u32::from(mulaw::decode(b).unsigned_abs())).sum::<u32>() / FRAME as u32;
            let frame_start = self.position;
            self.position += FRAME as u64;
            let voiced = level > VOICE_LEVEL;
            match &mut self.speaking {
                None if voiced => {
                    self.awaiting_utterance_end = None;
                    self.speaking = Some(Speaking {
                        segment: Segment {
                            hypotheses: script(),
                            start: self.finalised_until,
                            onset: frame_start,
                            last_voice: self.position,
                        },
                        interims: 0,
                        next_interim: frame_start + INTERIM_EVERY,
                    });
                    heard.push(Heard::Onset);
                }
                None => {
                    if let Some(last_word_end) = self.awaiting_utterance_end
                        && self.position - last_word_end >= self.utterance_end
                    {
                        self.awaiting_utterance_end = None;
                        heard.push(Heard::UtteranceEnd { last_word_end });
                    }
                }
                Some(speaking) if voiced => {
                    speaking.segment.last_voice = self.position;
                    if self.position >= speaking.next_interim {
                        let hypotheses = &speaking.segment.hypotheses;
                        let text = hypotheses
                            .get(speaking.interims.min(hypotheses.len().saturating_sub(1)))
                            .cloned()
                            .unwrap_or_default();
                        speaking.interims += 1;
                        speaking.next_interim += INTERIM_EVERY;
                        heard.push(Heard::Interim { text, start: speaking.segment.start, end: self.position });
                    }
                }
                Some(speaking) => {
                    if self.position - speaking.segment.last_voice >= self.endpointing {
                        let segment = speaking.segment.clone();
                        self.speaking = None;
                        heard.push(self.end(segment));
                    }
                }
            }
        }
        heard
    }

    fn end(&mut self, segment: Segment) -> Heard {
        self.finalised_until = segment.last_voice;
        self.awaiting_utterance_end = Some(segment.last_voice);
        Heard::SpeechEnded(segment)
    }

    /// Ends the utterance in progress now (Finalize, CloseStream).
    fn cut(&mut self) -> Option<Segment> {
        let speaking = self.speaking.take()?;
        self.finalised_until = self.position;
        Some(speaking.segment)
    }
}

struct Connection {
    socket: WebSocketStream<TcpStream>,
    shared: Arc<Shared>,
    request_id: String,
    ear: Ear,
    pending_final: Option<PendingFinal>,
    garbage_turn: usize,
}

/// How a final result ends the turn.
#[derive(Clone, Copy, PartialEq)]
enum Ending {
    /// Endpointing: `speech_final` (or, in utterance-end mode, a later `UtteranceEnd`).
    Endpoint,
    /// An answer to Finalize: `from_finalize:true`.
    Finalize,
    /// Flushed by CloseStream: `is_final` only.
    Close,
}

impl Connection {
    async fn run(mut self, drop_after: Option<DropPoint>) {
        let (mut handled, mut heard_bytes) = (0, 0);
        loop {
            let due = self.pending_final.as_ref().map(|p| p.due);
            let message = tokio::select! {
                message = self.socket.next() => message,
                _ = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    if self.flush_pending(Ending::Endpoint).await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            let outcome = match message {
                Some(Ok(Message::Binary(audio))) => {
                    heard_bytes += audio.len();
                    self.on_audio(&audio).await
                }
                Some(Ok(Message::Text(text))) => self.on_control(text.as_str()).await,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => Ok(Flow::Continue),
            };
            match outcome {
                Ok(Flow::Continue) => {}
                Ok(Flow::Closed) | Err(_) => break,
            }
            handled += 1;
            let due = match drop_after {
                Some(DropPoint::Messages(n)) => handled == n,
                Some(DropPoint::AudioBytes(n)) => heard_bytes >= n,
                None => false,
            };
            if due {
                self.drop_abruptly().await;
                break;
            }
        }
        self.give_back_unfinished();
    }

    async fn on_audio(&mut self, audio: &[u8]) -> Result<Flow, ()> {
        self.shared.count(|s| s.audio_bytes += audio.len());
        let shared = Arc::clone(&self.shared);
        let heard = self.ear.hear(audio, || shared.state().script.pop_front().unwrap_or_default());
        for event in heard {
            match event {
                Heard::Onset => {
                    // The previous turn's final goes out before the next turn starts.
                    self.flush_pending(Ending::Endpoint).await?;
                    let started = json!({
                        "type": "SpeechStarted",
                        "channel": [0],
                        "timestamp": seconds(self.ear.speaking.as_ref().map_or(0, |s| s.segment.onset)),
                    });
                    self.send(started).await?;
                }
                Heard::Interim { text, start, end } => {
                    let results = self.results(&text, start, end, false, false, false);
                    self.send(results).await?;
                }
                Heard::SpeechEnded(segment) => {
                    let due = Instant::now() + self.shared.state().final_delay;
                    self.pending_final = Some(PendingFinal { due, segment });
                    if due <= Instant::now() {
                        self.flush_pending(Ending::Endpoint).await?;
                    }
                }
                Heard::UtteranceEnd { last_word_end } => {
                    self.flush_pending(Ending::Endpoint).await?;
                    let end = json!({
                        "type": "UtteranceEnd",
                        "channel": [0, 1],
                        "last_word_end": seconds(last_word_end),
                    });
                    self.send(end).await?;
                }
            }
        }
        Ok(Flow::Continue)
    }

    async fn on_control(&mut self, text: &str) -> Result<Flow, ()> {
        let kind = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned));
        match kind.as_deref() {
            Some("KeepAlive") => self.shared.count(|s| s.keep_alives += 1),
            Some("Finalize") => {
                self.shared.count(|s| s.finalizes += 1);
                if !self.flush_everything(Ending::Finalize).await? {
                    let at = self.ear.position;
                    let empty = self.results("", self.ear.finalised_until, at, true, false, true);
                    self.ear.finalised_until = at;
                    self.send(empty).await?;
                }
            }
            Some("CloseStream") => {
                self.shared.count(|s| s.close_streams += 1);
                self.flush_everything(Ending::Close).await?;
                let metadata = json!({
                    "type": "Metadata",
                    "transaction_key": "deprecated",
                    "request_id": self.request_id,
                    "sha256": "154e291ecfa8be6ab8343560bcc109008fa7853eb5372533e8efdefc9b504c33",
                    "created": "2025-01-14T10:04:18.123Z",
                    "duration": seconds(self.ear.position),
                    "channels": 1,
                    "models": [MODEL_UUID],
                    "model_info": { MODEL_UUID: model_info() },
                });
                self.send(metadata).await?;
                let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                let _ = self.socket.close(Some(close)).await;
                // Wait for the client's side of the closing handshake.
                let _ = timeout(Duration::from_secs(5), async { while let Some(Ok(_)) = self.socket.next().await {} })
                    .await;
                return Ok(Flow::Closed);
            }
            _ => {}
        }
        Ok(Flow::Continue)
    }

    /// Sends the pending final and cuts any speech in progress; false when neither existed.
    async fn flush_everything(&mut self, ending: Ending) -> Result<bool, ()> {
        let mut any = self.pending_final.is_some();
        self.flush_pending(ending).await?;
        if let Some(segment) = self.ear.cut() {
            let end = self.ear.position;
            self.send_final(segment, end, ending).await?;
            any = true;
        }
        Ok(any)
    }

    async fn flush_pending(&mut self, ending: Ending) -> Result<(), ()> {
        if let Some(pending) = self.pending_final.take() {
            let end = pending.segment.last_voice;
            self.send_final(pending.segment, end, ending).await?;
        }
        Ok(())
    }

    async fn send_final(&mut self, segment: Segment, end: u64, ending: Ending) -> Result<(), ()> {
        let (speech_final, from_finalize) = match ending {
            Ending::Endpoint => (!self.shared.state().utterance_end, false),
            Ending::Finalize => (false, true),
            Ending::Close => (false, false),
        };
        let transcript = segment.transcript();
        let mut results = self.results(&transcript, segment.start, end, true, speech_final, from_finalize);
        results["channel"]["alternatives"][0]["words"] = words(&transcript, segment.onset, segment.last_voice);
        self.send(results).await?;
        let heard = HeardUtterance { transcript, speech_ms: (segment.last_voice - segment.onset) / BYTES_PER_MS };
        self.shared.state().heard.push(heard);
        self.shared.changed.notify_waiters();
        Ok(())
    }

    fn results(
        &self,
        transcript: &str,
        start: u64,
        end: u64,
        is_final: bool,
        speech_final: bool,
        from_finalize: bool,
    ) -> Value {
        json!({
            "type": "Results",
            "channel_index": [0, 1],
            "duration": seconds(end.saturating_sub(start)),
            "start": seconds(start),
            "is_final": is_final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {
                "alternatives": [{
                    "transcript": transcript,
                    "confidence": if transcript.is_empty() { 0.0 } else { 0.98 },
                    "words": [],
                }],
            },
            "metadata": {
                "request_id": self.request_id,
                "model_info": model_info(),
                "model_uuid": MODEL_UUID,
            },
        })
    }

    async fn send(&mut self, message: Value) -> Result<(), ()> {
        if self.shared.state().garbage {
            let junk = match self.garbage_turn % 4 {
                0 => Message::text("}{ this is not json"),
                1 => Message::text(r#"{"type":"Warning","description":"a message type clients do not know"}"#),
                2 => Message::text(r#"{"type":"Results","is_final":"sometimes","channel":[]}"#),
                _ => Message::binary(vec![0xde, 0xad, 0xbe, 0xef]),
            };
            self.garbage_turn += 1;
            self.socket.send(junk).await.map_err(|_| ())?;
        }
        self.socket.send(Message::text(message.to_string())).await.map_err(|_| ())
    }

    /// Ends the TCP stream without a close frame, as a network failure would. Keeps
    /// reading until the client lets go, so the kernel sends FIN, never RST: everything
    /// sent before still reaches the client.
    async fn drop_abruptly(&mut self) {
        let _ = self.socket.get_mut().shutdown().await;
        let _ = timeout(Duration::from_secs(5), async { while let Some(Ok(_)) = self.socket.next().await {} }).await;
    }

    /// An utterance not finalised on this connection is still to be said: a reconnecting
    /// client replays its audio.
    fn give_back_unfinished(&mut self) {
        let mut state = self.shared.state();
        if let Some(speaking) = self.ear.speaking.take() {
            state.script.push_front(speaking.segment.hypotheses);
        }
        if let Some(pending) = self.pending_final.take() {
            state.script.push_front(pending.segment.hypotheses);
        }
    }
}

enum Flow {
    Continue,
    Closed,
}

fn model_info() -> Value {
    json!({ "name": "general-nova-3", "version": "2024-12-20.0", "arch": "nova-3" })
}

fn seconds(bytes: u64) -> f64 {
    bytes as f64 / (BYTES_PER_MS as f64 * 1000.0)
}

/// Word timings spread evenly over the speech, as smart_format would report them.
fn words(transcript: &str, onset: u64, last_voice: u64) -> Value {
    let words: Vec<&str> = transcript.split_whitespace().collect();
    let span = last_voice.saturating_sub(onset) / words.len().max(1) as u64;
    let entries: Vec<Value> = words
        .iter()
        .enumerate()
        .map(|(i, word)| {
            let start = onset + span * i as u64;
            let plain: String = word.chars().filter(|c| c.is_alphanumeric() || *c == '\'').collect();
            json!({
                "word": plain.to_lowercase(),
                "start": seconds(start),
                "end": seconds(start + span),
                "confidence": 0.98,
                "punctuated_word": word,
            })
        })
        .collect();
    Value::Array(entries)
}
