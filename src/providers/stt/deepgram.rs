//! Deepgram live speech-to-text: one WebSocket per stream, μ-law in, our `SttEvent`s out.
//! Owns Deepgram's wire format, turn assembly, KeepAlive and the one-time reconnect with
//! audio replay; no Deepgram JSON leaves this module.
//
// Written on tokio-tungstenite rather than the `deepgram` crate (0.14) because the crate
// cannot do what this client must: its handle dies with its socket (no reconnect, so no
// replay of the unfinalised audio); it decodes server messages into strict types, so a
// message it does not know (or a `Results` missing `from_finalize`) surfaces as an error
// instead of being skipped; its KeepAlive period is fixed at 3 s; and it brings a second
// copy of tungstenite (0.28) beside axum's 0.29.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::{AUTHORIZATION, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{SpeechToText, SttEvent, SttInput, SttStream};
use crate::audio::mulaw;
use crate::domain::language::Language;
use crate::providers::ProviderError;

const PROVIDER: &str = "deepgram";

/// Telephone audio: 8000 one-byte μ-law samples per second.
const BYTES_PER_SECOND: u64 = 8000;
/// Audio kept for replay after a dropped socket: everything since the last finalised
/// segment, but never more than this (30 s), so a line that never finalises stays bounded.
const MAX_REPLAY_BYTES: usize = 30 * BYTES_PER_SECOND as usize;
/// Replayed audio goes out in 1 s frames: Deepgram takes audio faster than real time.
const REPLAY_FRAME_BYTES: usize = BYTES_PER_SECOND as usize;
/// After `CloseStream`, how long to wait for Deepgram's last results and its close.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Queued input chunks (20 ms each) and events before senders wait.
const INPUT_QUEUE: usize = 256;
const EVENT_QUEUE: usize = 64;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How to reach Deepgram and how eagerly it should end a caller's turn.
#[derive(Clone)]
pub struct DeepgramConfig {
    pub api_key: String,
    /// Scheme and host, e.g. `wss://api.deepgram.com`; `/v1/listen` is appended.
    /// `http(s)://` is accepted and mapped to `ws(s)://`.
    pub base_url: String,
    pub model: String,
    /// Silence (ms) after which Deepgram marks a result `speech_final`.
    pub endpointing_ms: u32,
    /// Gap between words (ms) after which Deepgram sends `UtteranceEnd`.
    pub utterance_end_ms: u32,
    pub connect_timeout: Duration,
    /// A KeepAlive goes out when no audio was sent for this long (Deepgram closes an idle
    /// socket after 10 s).
    pub keepalive_every: Duration,
    /// Recognise English and Spanish mixed in one call (`language=multi`) instead of the
    /// call's single language.
    pub multi: bool,
}

impl DeepgramConfig {
    /// Production defaults: nova-3 on api.deepgram.com, 300 ms endpointing, 1 s utterance
    /// end, 5 s to connect, a KeepAlive every 4 s of silence.
    pub fn new(api_key: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            base_url: "wss://api.deepgram.com".to_owned(),
            model: "nova-3".to_owned(),
            endpointing_ms: 300,
            utterance_end_ms: 1000,
            connect_timeout: Duration::from_secs(5),
            keepalive_every: Duration::from_secs(4),
            multi: false,
        }
    }
}

impl fmt::Debug for DeepgramConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeepgramConfig")
            .field("api_key", &"[redacted]")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("endpointing_ms", &self.endpointing_ms)
            .field("utterance_end_ms", &self.utterance_end_ms)
            .field("connect_timeout", &self.connect_timeout)
            .field("keepalive_every", &self.keepalive_every)
            .field("multi", &self.multi)
            .finish()
    }
}

/// Deepgram's live streaming API behind [`SpeechToText`]: one task per open stream.
#[derive(Debug, Clone)]
pub struct DeepgramStt {
    config: Arc<DeepgramConfig>,
}

impl DeepgramStt {
    pub fn new(config: DeepgramConfig) -> Self {
        Self { config: Arc::new(config) }
    }
}

impl SpeechToText for DeepgramStt {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    /// Starts the stream's task and returns at once; connecting happens in the task, and
    /// audio sent meanwhile is buffered and replayed. Fails only on a malformed URL or key,
    /// or when called outside a tokio runtime.
    fn open(&self, language: Language) -> Result<SttStream, ProviderError> {
        let url = listen_url(&self.config, language)?;
        // Validate now so a bad URL or key fails `open` instead of every connect.
        let target = Target::new(url, &self.config.api_key)?;
        target.request()?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| ProviderError::fatal(PROVIDER, "open needs a tokio runtime"))?;
        let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let session = Session {
            config: Arc::clone(&self.config),
            target,
            input: input_rx,
            events: events_tx,
            turn: TurnAssembler::default(),
            replay: ReplayBuffer::new(MAX_REPLAY_BYTES),
            finalize_pending: false,
            input_closed: false,
            may_reconnect: true,
        };
        runtime.spawn(session.run());
        Ok(SttStream { input: input_tx, events: events_rx })
    }
}

/// `{base}/v1/listen?…` with every option our turn logic relies on.
fn listen_url(config: &DeepgramConfig, language: Language) -> Result<String, ProviderError> {
    let base = config.base_url.trim().trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if base.starts_with("wss://") || base.starts_with("ws://") {
        base.to_owned()
    } else {
        return Err(ProviderError::fatal(
            PROVIDER,
            format!("base URL must start with wss://, ws://, https:// or http://: {base:?}"),
        ));
    };
    let language = if config.multi { "multi" } else { language.code() };
    let endpointing = config.endpointing_ms.to_string();
    let utterance_end = config.utterance_end_ms.to_string();
    let query = serde_urlencoded::to_string([
        ("model", config.model.as_str()),
        ("encoding", "mulaw"),
        ("sample_rate", "8000"),
        ("channels", "1"),
        ("interim_results", "true"),
        ("endpointing", endpointing.as_str()),
        ("utterance_end_ms", utterance_end.as_str()),
        ("vad_events", "true"),
        ("smart_format", "true"),
        ("language", language),
    ])
    .map_err(|e| ProviderError::fatal(PROVIDER, format!("cannot encode the query: {e}")))?;
    Ok(format!("{base}/v1/listen?{query}"))
}

/// Where to connect, kept as parts because a handshake request cannot be cloned.
struct Target {
    url: String,
    authorization: HeaderValue,
}

impl Target {
    fn new(url: String, api_key: &str) -> Result<Self, ProviderError> {
        let mut authorization = HeaderValue::from_str(&format!("Token {api_key}"))
            .map_err(|_| ProviderError::fatal(PROVIDER, "the API key holds characters not allowed in a header"))?;
        authorization.set_sensitive(true);
        Ok(Self { url, authorization })
    }

    fn request(&self) -> Result<tungstenite::handshake::client::Request, ProviderError> {
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| ProviderError::fatal(PROVIDER, format!("invalid URL: {e}")))?;
        request.headers_mut().insert(AUTHORIZATION, self.authorization.clone());
        Ok(request)
    }
}

/// Sorts a failed handshake into "check the account" (fatal) and "try again" (retryable).
fn connect_error(error: tungstenite::Error) -> ProviderError {
    match error {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).chars().take(200).collect::<String>())
                .unwrap_or_default();
            let message = format!("handshake refused with {status}: {body}");
            if status.as_u16() == 429 || status.is_server_error() {
                ProviderError::retryable(PROVIDER, message)
            } else {
                // 400 bad options, 401/403 key, 402 credits: the same request fails again.
                ProviderError::fatal(PROVIDER, message)
            }
        }
        tungstenite::Error::Url(e) => ProviderError::fatal(PROVIDER, format!("invalid URL: {e}")),
        other => ProviderError::retryable(PROVIDER, format!("cannot connect: {other}")),
    }
}

/// How a connected socket's life ended.
enum Ended {
    /// We closed the stream (input dropped) and Deepgram answered or the grace ran out.
    Finished,
    /// The socket went away without our asking.
    Dropped(String),
    /// Nobody reads the events any more.
    Abandoned,
}

/// One stream's task state; it owns the socket for the stream's whole life.
struct Session {
    config: Arc<DeepgramConfig>,
    target: Target,
    input: mpsc::Receiver<SttInput>,
    events: mpsc::Sender<SttEvent>,
    turn: TurnAssembler,
    /// Audio not yet covered by a final result: what a new socket must hear again.
    replay: ReplayBuffer,
    /// A Finalize was asked for and its `from_finalize` result has not come back.
    finalize_pending: bool,
    input_closed: bool,
    /// One reconnect is allowed; it is earned back once the new socket finalises a result.
    may_reconnect: bool,
}

impl Session {
    async fn run(mut self) {
        loop {
            let socket = match Box::pin(self.connect_buffering()).await {
                Ok(Some(socket)) => socket,
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(provider = PROVIDER, error = %error, "cannot connect");
                    let _ = self.events.send(SttEvent::Error(error)).await;
                    return;
                }
            };
            match self.serve(socket).await {
                Ended::Finished => break,
                Ended::Abandoned => return,
                Ended::Dropped(reason) if self.may_reconnect => {
                    tracing::warn!(
                        provider = PROVIDER,
                        reason = %reason,
                        replay_bytes = self.replay.len(),
                        "socket dropped; reconnecting and replaying unfinalised audio"
                    );
                    self.may_reconnect = false;
                }
                Ended::Dropped(reason) => {
                    tracing::warn!(provider = PROVIDER, reason = %reason, "socket dropped again");
                    let message = format!("connection lost twice: {reason}");
                    let error = ProviderError::retryable(PROVIDER, message);
                    let _ = self.events.send(SttEvent::Error(error)).await;
                    return;
                }
            }
        }
        // The caller is done: report whatever words were settled but never ended a turn.
        if let Some(event) = self.turn.end_turn() {
            let _ = self.events.send(event).await;
        }
    }

    /// Connects while still taking input, so the caller never waits on the handshake:
    /// audio joins the replay buffer and is sent as soon as the socket is up.
    /// `Ok(None)` when the caller left with nothing left to recognise.
    async fn connect_buffering(&mut self) -> Result<Option<Socket>, ProviderError> {
        let request = self.target.request()?;
        let connect = timeout(
            self.config.connect_timeout,
            tokio_tungstenite::connect_async_with_config(
                request,
                Some(crate::telephony::client_socket_config()),
                true, /* no Nagle: small frames go out at once */
            ),
        );
        tokio::pin!(connect);
        loop {
            tokio::select! {
                result = &mut connect => {
                    let (socket, response) = match result {
                        Ok(Ok(connected)) => connected,
                        Ok(Err(e)) => return Err(connect_error(e)),
                        Err(_) => {
                            let message = format!(
                                "no handshake within {} ms",
                                self.config.connect_timeout.as_millis()
                            );
                            return Err(ProviderError::retryable(PROVIDER, message));
                        }
                    };
                    let request_id = response
                        .headers()
                        .get("dg-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::debug!(provider = PROVIDER, request_id, "connected");
                    return Ok(Some(socket));
                }
                input = self.input.recv(), if !self.input_closed => match input {
                    Some(SttInput::Audio(audio)) => self.replay.push(&audio),
                    Some(SttInput::Finalize) => self.finalize_pending = true,
                    None => {
                        self.input_closed = true;
                        if self.replay.is_empty() && !self.finalize_pending {
                            return Ok(None);
                        }
                    }
                },
                _ = self.events.closed() => return Ok(None),
            }
        }
    }

    /// Runs one socket: replays unfinalised audio, then relays input and results until
    /// the stream ends or the socket drops.
    async fn serve(&mut self, mut socket: Socket) -> Ended {
        // Deepgram's timestamps count from the first byte of this socket's audio.
        let origin = self.replay.start();
        for frame in self.replay.frames(REPLAY_FRAME_BYTES) {
            if let Err(e) = socket.send(Message::binary(frame)).await {
                return Ended::Dropped(format!("replay failed: {e}"));
            }
        }
        if self.finalize_pending
            && let Err(e) = socket.send(control("Finalize")).await
        {
            return Ended::Dropped(format!("sending Finalize: {e}"));
        }
        // A turn carried over a reconnect may never see its UtteranceEnd: the new socket
        // heard none of its words. End it ourselves if no new words come in time.
        let mut carried_turn_deadline = self
            .turn
            .has_text()
            .then(|| Instant::now() + Duration::from_millis(u64::from(self.config.utterance_end_ms)));
        let mut close_deadline = None;
        if self.input_closed {
            if let Err(e) = socket.send(control("CloseStream")).await {
                return Ended::Dropped(format!("sending CloseStream: {e}"));
            }
            close_deadline = Some(Instant::now() + CLOSE_GRACE);
        }
        // One timer for the socket's life, looked at when it fires rather than reset for
        // every frame: fifty frames a second would otherwise register and cancel fifty
        // timers a second per call.
        let mut sent_at = Instant::now();
        let keepalive = tokio::time::sleep_until(sent_at + self.config.keepalive_every);
        tokio::pin!(keepalive);

        loop {
            let closing = close_deadline.is_some();
            tokio::select! {
                message = socket.next() => {
                    let text = match message {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(frame))) if closing => {
                            tracing::debug!(provider = PROVIDER, frame = ?frame, "closed");
                            // Completes the closing handshake (the reply is already queued).
                            let _ = socket.close(None).await;
                            return Ended::Finished;
                        }
                        Some(Ok(Message::Close(frame))) => return Ended::Dropped(close_reason(frame)),
                        Some(Ok(Message::Binary(bytes))) => {
                            let len = bytes.len();
                            tracing::warn!(provider = PROVIDER, len, "skipping unexpected binary message");
                            continue;
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(_)) | None if closing => return Ended::Finished,
                        Some(Err(e)) => return Ended::Dropped(e.to_string()),
                        None => return Ended::Dropped("socket closed".to_owned()),
                    };
                    if let Err(ended) = self.on_text(text.as_str(), origin, &mut carried_turn_deadline).await {
                        return ended;
                    }
                }
                input = self.input.recv(), if !closing => {
                    let sent = match input {
                        Some(SttInput::Audio(audio)) => {
                            self.replay.push(&audio);
                            sent_at = Instant::now();
                            socket.send(Message::binary(audio)).await
                        }
                        Some(SttInput::Finalize) => {
                            self.finalize_pending = true;
                            socket.send(control("Finalize")).await
                        }
                        None => {
                            self.input_closed = true;
                            close_deadline = Some(Instant::now() + CLOSE_GRACE);
                            socket.send(control("CloseStream")).await
                        }
                    };
                    if let Err(e) = sent {
                        // The audio is in the replay buffer: a new socket hears it again.
                        return Ended::Dropped(format!("send failed: {e}"));
                    }
                }
                _ = &mut keepalive, if !closing => {
                    let now = Instant::now();
                    if now >= sent_at + self.config.keepalive_every {
                        sent_at = now;
                        if let Err(e) = socket.send(control("KeepAlive")).await {
                            return Ended::Dropped(format!("sending KeepAlive: {e}"));
                        }
                    }
                    keepalive.as_mut().reset(sent_at + self.config.keepalive_every);
                }
                _ = sleep_until(carried_turn_deadline.unwrap_or(sent_at)), if carried_turn_deadline.is_some() => {
                    carried_turn_deadline = None;
                    if let Some(event) = self.turn.end_turn()
                        && self.events.send(event).await.is_err()
                    {
                        return Ended::Abandoned;
                    }
                }
                _ = sleep_until(close_deadline.unwrap_or(sent_at)), if closing => {
                    tracing::debug!(provider = PROVIDER, "no close from Deepgram within the grace period");
                    let _ = socket.close(None).await;
                    return Ended::Finished;
                }
                _ = self.events.closed() => {
                    let _ = socket.send(control("CloseStream")).await;
                    let _ = socket.close(None).await;
                    return Ended::Abandoned;
                }
            }
        }
    }

    /// Applies one server message: replay bookkeeping, then the turn logic. Unreadable
    /// messages are logged and skipped.
    async fn on_text(&mut self, text: &str, origin: u64, carried_turn: &mut Option<Instant>) -> Result<(), Ended> {
        let message = match parse_server_message(text) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(provider = PROVIDER, error = %e, "skipping unreadable message");
                return Ok(());
            }
        };
        match &message {
            ServerMessage::Results(results) => {
                if results.is_final {
                    self.replay.release_until(origin + seconds_to_bytes(results.end()));
                    self.may_reconnect = true;
                }
                if results.from_finalize {
                    self.finalize_pending = false;
                }
                if !results.transcript().is_empty() {
                    *carried_turn = None;
                }
            }
            ServerMessage::Unknown => tracing::debug!(provider = PROVIDER, message = text, "skipping unknown message"),
            _ => {}
        }
        if let Some(event) = self.turn.on_message(&message) {
            self.events.send(event).await.map_err(|_| Ended::Abandoned)?;
        }
        if !self.turn.has_text() {
            *carried_turn = None;
        }
        Ok(())
    }
}

fn control(kind: &str) -> Message {
    Message::text(format!(r#"{{"type":"{kind}"}}"#))
}

fn close_reason(frame: Option<CloseFrame>) -> String {
    match frame {
        Some(frame) => format!("closed by Deepgram ({}): {}", u16::from(frame.code), frame.reason.as_str()),
        None => "closed by Deepgram".to_owned(),
    }
}

/// Seconds of 8 kHz μ-law to bytes; `as` saturates, so NaN or negative times give 0.
fn seconds_to_bytes(seconds: f64) -> u64 {
    (seconds * BYTES_PER_SECOND as f64).round() as u64
}

/// The messages Deepgram sends on a live socket, reduced to what the turn logic reads.
/// Missing fields default, so a lean or newer server still parses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type")]
enum ServerMessage {
    Results(Results),
    UtteranceEnd(UtteranceEnd),
    SpeechStarted(SpeechStarted),
    Metadata(Metadata),
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
struct Results {
    start: f64,
    duration: f64,
    is_final: bool,
    speech_final: bool,
    from_finalize: bool,
    channel: Channel,
}

impl Results {
    /// The best alternative's transcript, trimmed; empty when Deepgram heard no words.
    fn transcript(&self) -> &str {
        self.channel.alternatives.first().map(|a| a.transcript.trim()).unwrap_or("")
    }

    /// Where this result's audio ends, in seconds from the socket's first audio byte.
    fn end(&self) -> f64 {
        self.start + self.duration
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
struct Channel {
    alternatives: Vec<Alternative>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
struct Alternative {
    transcript: String,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
struct UtteranceEnd {
    last_word_end: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
struct SpeechStarted {
    timestamp: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
struct Metadata {
    request_id: String,
}

fn parse_server_message(text: &str) -> Result<ServerMessage, serde_json::Error> {
    serde_json::from_str(text)
}

/// Turns Deepgram's result stream into caller turns: `is_final` segments accumulate, and
/// the turn ends on `speech_final`, on a `from_finalize` result, or on `UtteranceEnd` when
/// no `speech_final` came. Pure: fed parsed messages, it returns the event to report.
#[derive(Debug, Default)]
struct TurnAssembler {
    /// The turn's settled segments, joined by spaces.
    settled: String,
    /// The last interim reported, so that repeats are not reported again.
    last_interim: Option<String>,
}

impl TurnAssembler {
    fn on_message(&mut self, message: &ServerMessage) -> Option<SttEvent> {
        match message {
            ServerMessage::SpeechStarted(_) => Some(SttEvent::SpeechStarted),
            ServerMessage::Results(results) if results.is_final => {
                append_words(&mut self.settled, results.transcript());
                if results.speech_final || results.from_finalize {
                    self.end_turn()
                } else {
                    self.interim(self.settled.clone())
                }
            }
            ServerMessage::Results(results) => {
                let mut text = self.settled.clone();
                append_words(&mut text, results.transcript());
                self.interim(text)
            }
            ServerMessage::UtteranceEnd(_) => self.end_turn(),
            ServerMessage::Metadata(_) | ServerMessage::Unknown => None,
        }
    }

    /// Reports the settled words as the turn's final text (nothing if none) and starts over.
    fn end_turn(&mut self) -> Option<SttEvent> {
        self.last_interim = None;
        let text = std::mem::take(&mut self.settled);
        (!text.is_empty()).then_some(SttEvent::Final { text, speech_final: true })
    }

    fn has_text(&self) -> bool {
        !self.settled.is_empty()
    }

    fn interim(&mut self, text: String) -> Option<SttEvent> {
        if text.is_empty() || self.last_interim.as_deref() == Some(text.as_str()) {
            return None;
        }
        self.last_interim = Some(text.clone());
        Some(SttEvent::Interim { text })
    }
}

fn append_words(settled: &mut String, words: &str) {
    if words.is_empty() {
        return;
    }
    if !settled.is_empty() {
        settled.push(' ');
    }
    settled.push_str(words);
}

/// The audio a new socket must hear again: bytes since the last finalised result, at most
/// `capacity` of them. Positions are absolute byte counts since the stream opened.
///
/// Quiet holds no words to lose: while nothing since the last final was a voice (the
/// caller listening to the agent, often for many seconds with no result to release it),
/// only the last [`QUIET_REPLAY_BYTES`] are kept, for the recogniser's sense of where
/// speech starts. That is most of a live call's memory otherwise.
#[derive(Debug)]
struct ReplayBuffer {
    bytes: VecDeque<u8>,
    /// Absolute position of `bytes[0]`.
    start: u64,
    capacity: usize,
    /// Absolute position just past the last piece that held a voice (0: none yet).
    voice_end: u64,
}

/// Quiet audio kept for replay while no voice waits to be finalised: one second.
const QUIET_REPLAY_BYTES: usize = BYTES_PER_SECOND as usize;
/// A released buffer whose allocation grew past this is given back to the allocator.
const REPLAY_KEEP_CAPACITY: usize = 4 * 1024;

impl ReplayBuffer {
    fn new(capacity: usize) -> Self {
        Self { bytes: VecDeque::new(), start: 0, capacity, voice_end: 0 }
    }

    fn push(&mut self, audio: &[u8]) {
        self.bytes.extend(audio);
        let end = self.start + self.bytes.len() as u64;
        if mulaw::has_voice(audio) {
            self.voice_end = end;
        }
        let limit = if self.voice_end > self.start { self.capacity } else { self.capacity.min(QUIET_REPLAY_BYTES) };
        self.drop_oldest(self.bytes.len().saturating_sub(limit));
    }

    fn drop_oldest(&mut self, count: usize) {
        if count > 0 {
            self.bytes.drain(..count);
            self.start += count as u64;
        }
    }

    /// Forgets audio before absolute position `end`: Deepgram has finalised it.
    fn release_until(&mut self, end: u64) {
        let settled = end.saturating_sub(self.start).min(self.bytes.len() as u64) as usize;
        self.drop_oldest(settled);
        if self.voice_end <= self.start {
            self.drop_oldest(self.bytes.len().saturating_sub(QUIET_REPLAY_BYTES));
        }
        if self.bytes.capacity() > REPLAY_KEEP_CAPACITY.max(self.bytes.len() * 2) {
            self.bytes.shrink_to(REPLAY_KEEP_CAPACITY.max(self.bytes.len()));
        }
    }

    fn start(&self) -> u64 {
        self.start
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The buffered audio in frames of at most `size` bytes, oldest first.
    fn frames(&self, size: usize) -> Vec<Vec<u8>> {
        let all: Vec<u8> = self.bytes.iter().copied().collect();
        all.chunks(size.max(1)).map(<[u8]>::to_vec).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shapes as Deepgram's live API sends them (nova-3, interim_results, vad_events).
    const INTERIM: &str = r#"{"type":"Results","channel_index":[0,1],"duration":1.04,"start":0.0,"is_final":false,"speech_final":false,"channel":{"alternatives":[{"transcript":"i would like","confidence":0.91,"words":[{"word":"i","start":0.16,"end":0.32,"confidence":0.9,"punctuated_word":"I"},{"word":"would","start":0.32,"end":0.56,"confidence":0.93,"punctuated_word":"would"},{"word":"like","start":0.56,"end":0.88,"confidence":0.91,"punctuated_word":"like"}]}]},"metadata":{"request_id":"5c4a1c5e-0f7d-4bd7-9a3c-2f1b0e6d9a11","model_info":{"name":"general-nova-3","version":"2024-12-20.0","arch":"nova-3"},"model_uuid":"40bd3654-e622-47c4-a111-63a61b23bd2d"},"from_finalize":false}"#;
    const FINAL_SEGMENT: &str = r#"{"type":"Results","channel_index":[0,1],"duration":1.52,"start":0.0,"is_final":true,"speech_final":false,"channel":{"alternatives":[{"transcript":"I would like to book","confidence":0.97,"words":[]}]},"metadata":{"request_id":"5c4a1c5e-0f7d-4bd7-9a3c-2f1b0e6d9a11","model_info":{"name":"general-nova-3","version":"2024-12-20.0","arch":"nova-3"},"model_uuid":"40bd3654-e622-47c4-a111-63a61b23bd2d"},"from_finalize":false}"#;
    const SECOND_INTERIM: &str = r#"{"type":"Results","channel_index":[0,1],"duration":0.6,"start":1.52,"is_final":false,"speech_final":false,"channel":{"alternatives":[{"transcript":"an appointment","confidence":0.88,"words":[]}]},"metadata":{"request_id":"5c4a1c5e-0f7d-4bd7-9a3c-2f1b0e6d9a11","model_info":{"name":"general-nova-3","version":"2024-12-20.0","arch":"nova-3"},"model_uuid":"40bd3654-e622-47c4-a111-63a61b23bd2d"},"from_finalize":false}"#;
    const SPEECH_FINAL: &str = r#"{"type":"Results","channel_index":[0,1],"duration":0.9,"start":1.52,"is_final":true,"speech_final":true,"channel":{"alternatives":[{"transcript":"an appointment for Tuesday.","confidence":0.95,"words":[]}]},"metadata":{"request_id":"5c4a1c5e-0f7d-4bd7-9a3c-2f1b0e6d9a11","model_info":{"name":"general-nova-3","version":"2024-12-20.0","arch":"nova-3"},"model_uuid":"40bd3654-e622-47c4-a111-63a61b23bd2d"},"from_finalize":false}"#;
    const FROM_FINALIZE: &str = r#"{"type":"Results","channel_index":[0,1],"duration":0.7,"start":2.42,"is_final":true,"speech_final":false,"channel":{"alternatives":[{"transcript":"at noon","confidence":0.9,"words":[]}]},"metadata":{"request_id":"5c4a1c5e-0f7d-4bd7-9a3c-2f1b0e6d9a11","model_info":{"name":"general-nova-3","version":"2024-12-20.0","arch":"nova-3"},"model_uuid":"40bd3654-e622-47c4-a111-63a61b23bd2d"},"from_finalize":true}"#;
    const EMPTY_FINAL: &str = r#"{"type":"Results","channel_index":[0,1],"duration":3.0,"start":0.0,"is_final":true,"speech_final":true,"channel":{"alternatives":[{"transcript":"","confidence":0.0,"words":[]}]},"metadata":{"request_id":"5c4a1c5e-0f7d-4bd7-9a3c-2f1b0e6d9a11","model_info":{"name":"general-nova-3","version":"2024-12-20.0","arch":"nova-3"},"model_uuid":"40bd3654-e622-47c4-a111-63a61b23bd2d"},"from_finalize":false}"#;
    const UTTERANCE_END: &str = r#"{"type":"UtteranceEnd","channel":[0,1],"last_word_end":2.39}"#;
    const SPEECH_STARTED: &str = r#"{"type":"SpeechStarted","channel":[0],"timestamp":0.12}"#;
    const METADATA: &str = r#"{"type":"Metadata","transaction_key":"deprecated","request_id":"5c4a1c5e-0f7d-4bd7-9a3c-2f1b0e6d9a11","sha256":"154e291ecfa8be6ab8343560bcc109008fa7853eb5372533e8efdefc9b504c33","created":"2025-01-14T10:04:18.123Z","duration":3.4,"channels":1,"models":["40bd3654-e622-47c4-a111-63a61b23bd2d"],"model_info":{"40bd3654-e622-47c4-a111-63a61b23bd2d":{"name":"general-nova-3","version":"2024-12-20.0","arch":"nova-3"}}}"#;

    fn feed(turn: &mut TurnAssembler, fixtures: &[&str]) -> Vec<SttEvent> {
        fixtures
            .iter()
            .filter_map(|json| turn.on_message(&parse_server_message(json).expect("fixture parses")))
            .collect()
    }

    fn interim(text: &str) -> SttEvent {
        SttEvent::Interim { text: text.to_owned() }
    }

    fn final_text(text: &str) -> SttEvent {
        SttEvent::Final { text: text.to_owned(), speech_final: true }
    }

    #[test]
    fn a_results_message_parses_to_its_transcript_flags_and_end_time() {
        let ServerMessage::Results(results) = parse_server_message(SPEECH_FINAL).unwrap() else {
            panic!("not a Results message");
        };
        assert_eq!(results.transcript(), "an appointment for Tuesday.");
        assert!(results.is_final && results.speech_final && !results.from_finalize);
        assert!((results.end() - 2.42).abs() < 1e-9);
    }

    #[test]
    fn control_and_event_messages_parse_to_their_kinds() {
        assert!(matches!(parse_server_message(UTTERANCE_END), Ok(ServerMessage::UtteranceEnd(_))));
        assert!(matches!(parse_server_message(SPEECH_STARTED), Ok(ServerMessage::SpeechStarted(_))));
        let Ok(ServerMessage::Metadata(metadata)) = parse_server_message(METADATA) else {
            panic!("not a Metadata message");
        };
        assert_eq!(metadata.request_id, "5c4a1c5e-0f7d-4bd7-9a3c-2f1b0e6d9a11");
    }

    #[test]
    fn an_unknown_type_parses_as_unknown_and_garbage_fails_to_parse() {
        let warning = r#"{"type":"Warning","description":"something new","variant":"x"}"#;
        assert_eq!(parse_server_message(warning).unwrap(), ServerMessage::Unknown);
        assert!(parse_server_message("not json").is_err());
        assert!(parse_server_message(r#"{"no_type":1}"#).is_err());
        assert!(parse_server_message(r#"{"type":"Results","is_final":"yes"}"#).is_err());
    }

    #[test]
    fn a_results_message_without_alternatives_has_an_empty_transcript() {
        let lean = r#"{"type":"Results","is_final":true,"channel":{"alternatives":[]}}"#;
        let ServerMessage::Results(results) = parse_server_message(lean).unwrap() else {
            panic!("not a Results message");
        };
        assert_eq!(results.transcript(), "");
        assert!(!results.from_finalize);
    }

    #[test]
    fn speech_started_is_reported_as_is() {
        let mut turn = TurnAssembler::default();
        assert_eq!(feed(&mut turn, &[SPEECH_STARTED]), vec![SttEvent::SpeechStarted]);
    }

    #[test]
    fn interims_show_the_settled_segments_followed_by_the_current_guess() {
        let mut turn = TurnAssembler::default();
        let events = feed(&mut turn, &[INTERIM, FINAL_SEGMENT, SECOND_INTERIM]);
        assert_eq!(
            events,
            vec![
                interim("i would like"),
                interim("I would like to book"),
                interim("I would like to book an appointment"),
            ]
        );
    }

    #[test]
    fn speech_final_ends_the_turn_with_every_settled_segment() {
        let mut turn = TurnAssembler::default();
        let events = feed(&mut turn, &[FINAL_SEGMENT, SPEECH_FINAL]);
        assert_eq!(events.last(), Some(&final_text("I would like to book an appointment for Tuesday.")));
        assert!(!turn.has_text(), "the next turn starts empty");
    }

    #[test]
    fn utterance_end_ends_a_turn_that_had_no_speech_final() {
        let mut turn = TurnAssembler::default();
        let events = feed(&mut turn, &[FINAL_SEGMENT, UTTERANCE_END]);
        assert_eq!(events, vec![interim("I would like to book"), final_text("I would like to book")]);
    }

    #[test]
    fn utterance_end_after_speech_final_reports_nothing_more() {
        let mut turn = TurnAssembler::default();
        let events = feed(&mut turn, &[SPEECH_FINAL, UTTERANCE_END]);
        assert_eq!(events, vec![final_text("an appointment for Tuesday.")]);
    }

    #[test]
    fn a_from_finalize_result_ends_the_turn() {
        let mut turn = TurnAssembler::default();
        let events = feed(&mut turn, &[FINAL_SEGMENT, FROM_FINALIZE]);
        assert_eq!(events.last(), Some(&final_text("I would like to book at noon")));
    }

    #[test]
    fn a_turn_with_no_words_is_not_reported() {
        let mut turn = TurnAssembler::default();
        assert!(feed(&mut turn, &[EMPTY_FINAL, UTTERANCE_END, METADATA]).is_empty());
    }

    #[test]
    fn a_repeated_interim_is_reported_once() {
        let mut turn = TurnAssembler::default();
        assert_eq!(feed(&mut turn, &[INTERIM, INTERIM]), vec![interim("i would like")]);
    }

    #[test]
    fn the_same_words_are_reported_again_in_a_later_turn() {
        let mut turn = TurnAssembler::default();
        let events = feed(&mut turn, &[INTERIM, SPEECH_FINAL, INTERIM]);
        assert_eq!(events.last(), Some(&interim("i would like")));
    }

    #[test]
    fn the_replay_buffer_forgets_finalised_audio_by_absolute_position() {
        let mut replay = ReplayBuffer::new(1_000);
        replay.push(&[1; 300]);
        replay.push(&[2; 200]);
        replay.release_until(300);
        assert_eq!((replay.start(), replay.len()), (300, 200));
        replay.release_until(100); // older than what is kept: nothing changes
        assert_eq!((replay.start(), replay.len()), (300, 200));
        replay.release_until(10_000); // past what was sent: everything goes
        assert_eq!((replay.start(), replay.len()), (500, 0));
        assert!(replay.is_empty());
    }

    #[test]
    fn the_replay_buffer_drops_its_oldest_audio_beyond_capacity() {
        let mut replay = ReplayBuffer::new(100);
        replay.push(&[1; 80]);
        replay.push(&[2; 50]);
        assert_eq!((replay.start(), replay.len()), (30, 100));
        let frames = replay.frames(60);
        assert_eq!(frames.iter().map(Vec::len).collect::<Vec<_>>(), vec![60, 40]);
        assert_eq!(frames[0][..50], [1; 50]);
        assert_eq!(frames[1][..], [2; 40]);
    }

    #[test]
    fn quiet_with_no_voice_to_finalise_keeps_only_its_last_second() {
        const QUIET: u8 = 0xff;
        let mut replay = ReplayBuffer::new(MAX_REPLAY_BYTES);
        // Ten seconds of the caller listening: one second kept, the clock still counts.
        for _ in 0..100 {
            replay.push(&[QUIET; 800]);
        }
        assert_eq!((replay.start(), replay.len()), (72_000, 8_000));
        // The caller speaks: from now on nothing is dropped until Deepgram finalises it.
        replay.push(&[0x10; 160]);
        for _ in 0..30 {
            replay.push(&[QUIET; 800]);
        }
        assert_eq!((replay.start(), replay.len()), (72_000, 8_000 + 160 + 24_000));
        // Finalised up to just past the voice: the quiet after it shrinks to a second again.
        replay.release_until(80_160);
        assert_eq!((replay.start(), replay.len()), (96_160, 8_000));
        assert!(replay.bytes.capacity() < 16 * 1024, "the grown allocation is given back");
        // A finalised segment ending before the voice keeps the voice and everything after.
        replay.push(&[0x10; 160]);
        replay.release_until(100_000);
        assert_eq!(replay.start(), 100_000);
        assert_eq!(replay.len(), 4_320);
    }

    #[test]
    fn result_times_map_to_mulaw_byte_positions() {
        assert_eq!(seconds_to_bytes(2.42), 19_360);
        assert_eq!(seconds_to_bytes(-1.0), 0);
        assert_eq!(seconds_to_bytes(f64::NAN), 0);
    }

    #[test]
    fn the_listen_url_carries_every_option_the_turn_logic_needs() {
        let config = DeepgramConfig::new("k");
        let url = listen_url(&config, Language::English).unwrap();
        assert_eq!(
            url,
            "wss://api.deepgram.com/v1/listen?model=nova-3&encoding=mulaw&sample_rate=8000\
             &channels=1&interim_results=true&endpointing=300&utterance_end_ms=1000\
             &vad_events=true&smart_format=true&language=en"
        );
    }

    #[test]
    fn the_listen_url_names_the_language_or_multi() {
        let mut config = DeepgramConfig::new("k");
        config.base_url = "http://127.0.0.1:9/".to_owned();
        let spanish = listen_url(&config, Language::Spanish).unwrap();
        assert!(spanish.starts_with("ws://127.0.0.1:9/v1/listen?"));
        assert!(spanish.ends_with("&language=es"));
        config.multi = true;
        assert!(listen_url(&config, Language::Spanish).unwrap().ends_with("&language=multi"));
        config.base_url = "ftp://example.com".to_owned();
        assert!(!listen_url(&config, Language::English).unwrap_err().retryable);
    }

    #[test]
    fn a_refused_key_is_fatal_and_an_overloaded_server_is_retryable() {
        let refused = |status: u16| {
            let response = tungstenite::http::Response::builder()
                .status(status)
                .body(Some(br#"{"err_code":"INVALID_AUTH"}"#.to_vec()))
                .unwrap();
            connect_error(tungstenite::Error::Http(Box::new(response)))
        };
        let unauthorized = refused(401);
        assert!(!unauthorized.retryable);
        assert!(unauthorized.message.contains("401"), "{}", unauthorized.message);
        assert!(!refused(400).retryable);
        assert!(refused(429).retryable);
        assert!(refused(503).retryable);
        assert!(connect_error(tungstenite::Error::ConnectionClosed).retryable);
    }

    #[test]
    fn the_api_key_never_appears_in_debug_output() {
        let config = DeepgramConfig::new("secret-key-123");
        assert!(!format!("{config:?}").contains("secret-key-123"));
        assert!(!format!("{:?}", DeepgramStt::new(config)).contains("secret-key-123"));
    }

    #[test]
    fn an_api_key_that_cannot_be_a_header_fails_open() {
        let stt = DeepgramStt::new(DeepgramConfig::new("bad\nkey"));
        let error = stt.open(Language::English).err().expect("open fails");
        assert!(!error.retryable);
    }
}
