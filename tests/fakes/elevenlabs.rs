//! A fake ElevenLabs multi-context text-to-speech server on loopback: the real handshake
//! (path, query, `xi-api-key`), the real JSON both ways, the real 1008 rules, and scripted
//! latency and failures. Its "audio" spells out the text it was given, so tests can read it.
//!
//! Audio: every character of a context's text becomes [`BYTES_PER_CHAR`] μ-law bytes (1 ms
//! at 8 kHz) equal to the character's ASCII code (`?` for anything else), and whitespace
//! becomes μ-law silence (0xFF). [`text_of`] turns audio back into text.
//!
//! Generation follows the real server: text is buffered per context and generated on
//! flush (or once `generate_at_chars` are buffered), `first_byte_delay` after that; the
//! chunks (`chars_per_chunk` characters each) then go out one per `chunk_interval` per
//! context. `isFinal` comes only after `close_context` (and, for a flushed context, after
//! the last flushed chunk). `close_context` before a flush abandons the context at once;
//! after a flush the flushed audio is still sent, as the vendor documents.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The key the fake accepts unless told otherwise.
pub const API_KEY: &str = "test-elevenlabs-key";
/// μ-law bytes of audio per character of text.
pub const BYTES_PER_CHAR: usize = 8;
/// μ-law silence, the sound of whitespace.
pub const SILENCE: u8 = 0xFF;

/// The audio the fake makes for `text`.
pub fn audio_for(text: &str) -> Vec<u8> {
    text.chars().flat_map(|c| [byte_for(c); BYTES_PER_CHAR]).collect()
}

/// The fake's audio for `text` at a speaking pace of `ms_per_char` milliseconds a
/// character (1 is [`audio_for`]; about 65 is a real voice).
pub fn audio_at_pace(text: &str, ms_per_char: usize) -> Vec<u8> {
    let per_char = BYTES_PER_CHAR * ms_per_char.max(1);
    let mut audio = Vec::with_capacity(text.len() * per_char);
    for c in text.chars() {
        audio.resize(audio.len() + per_char, byte_for(c));
    }
    audio
}

/// The text the fake's audio spells (whitespace comes back as spaces).
pub fn text_of(audio: &[u8]) -> String {
    audio
        .chunks(BYTES_PER_CHAR)
        .map(|chunk| match chunk[0] {
            SILENCE => ' ',
            byte => char::from(byte),
        })
        .collect()
}

fn byte_for(c: char) -> u8 {
    if c.is_whitespace() {
        SILENCE
    } else if c.is_ascii_graphic() {
        c as u8
    } else {
        b'?'
    }
}

/// What the fake does; change it at any time with [`FakeElevenLabs::update`].
#[derive(Debug, Clone)]
pub struct Knobs {
    pub api_key: String,
    /// Refuse every key (HTTP 401 at the handshake).
    pub reject_key: bool,
    /// Between a generation being triggered and its first chunk going out.
    pub first_byte_delay: Duration,
    /// Between two chunks of one context (20 characters = 20 ms of audio in 2 ms: 10× real time).
    pub chunk_interval: Duration,
    pub chars_per_chunk: usize,
    /// Buffered characters that start a generation without a flush (the server's schedule).
    pub generate_at_chars: usize,
    /// Drop the TCP connection, without a close frame, on receiving this many client messages.
    pub drop_after_messages: Option<usize>,
    /// Never send any audio or isFinal.
    pub stall: bool,
    /// Close a connection that has received nothing for this long.
    pub inactivity_timeout: Duration,
    /// More contexts open at once than this: error message, then close with 1008.
    pub max_contexts: usize,
    /// Spell the final flag `is_final` instead of `isFinal`.
    pub snake_case_final: bool,
    /// Milliseconds of audio a character: 1 keeps tests fast and the audio spellable with
    /// [`text_of`]; about 65 gives turns as long as a real voice's.
    pub ms_per_char: usize,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            api_key: API_KEY.to_owned(),
            reject_key: false,
            first_byte_delay: Duration::from_millis(100),
            chunk_interval: Duration::from_millis(2),
            chars_per_chunk: 20,
            generate_at_chars: 120,
            drop_after_messages: None,
            stall: false,
            inactivity_timeout: Duration::from_secs(20),
            max_contexts: 5,
            snake_case_final: false,
            ms_per_char: 1,
        }
    }
}

/// Everything the fake saw and did.
#[derive(Debug, Clone, Default)]
pub struct FakeLog {
    /// Accepted WebSocket handshakes, in order.
    pub connections: Vec<ConnectionLog>,
    /// Refused handshakes: why.
    pub rejected: Vec<String>,
    /// Every context ever opened, in order.
    pub contexts: Vec<ContextLog>,
    /// Every client message, as received.
    pub messages: Vec<Value>,
    /// `close_socket` messages received.
    pub close_sockets: usize,
    /// Connections closed with 1008 (policy violation): why.
    pub policy_closes: Vec<String>,
    /// Connections closed for inactivity.
    pub idle_closes: usize,
    /// Connections dropped by `drop_after_messages`.
    pub drops: usize,
}

impl FakeLog {
    /// The context called `id` (the latest one, if an id was reused).
    pub fn context(&self, id: &str) -> Option<&ContextLog> {
        self.contexts.iter().rev().find(|c| c.id == id)
    }
}

#[derive(Debug, Clone)]
pub struct ConnectionLog {
    pub voice_id: String,
    pub model_id: String,
    pub output_format: String,
}

#[derive(Debug, Clone)]
pub struct ContextLog {
    /// Index into `FakeLog::connections`.
    pub connection: usize,
    pub id: String,
    /// The message that opened it.
    pub first_message: Value,
    /// Text messages with something to say, in order.
    pub texts: Vec<String>,
    pub keep_alives: usize,
    pub flushed: bool,
    pub closed: Option<ContextClose>,
    pub audio_bytes_sent: usize,
    /// Audio sent after the context was abandoned: must stay 0.
    pub audio_after_abort: usize,
    pub final_sent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextClose {
    /// `close_context` after a flush: the flushed audio was finished first.
    AfterFlush,
    /// `close_context` before any flush: abandoned at once.
    Aborted,
    /// Unflushed when `close_socket` came.
    BySocketClose,
}

struct Shared {
    knobs: Mutex<Knobs>,
    log: Mutex<FakeLog>,
}

impl Shared {
    fn knobs(&self) -> Knobs {
        lock(&self.knobs).clone()
    }

    fn log(&self) -> MutexGuard<'_, FakeLog> {
        lock(&self.log)
    }
}

/// A poisoned lock only means another test thread panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The fake server. Dropping it stops it and every connection.
pub struct FakeElevenLabs {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl FakeElevenLabs {
    pub async fn start() -> Self {
        Self::start_with(Knobs::default()).await
    }

    pub async fn start_with(knobs: Knobs) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let shared = Arc::new(Shared { knobs: Mutex::new(knobs), log: Mutex::new(FakeLog::default()) });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Self { addr, shared, accept }
    }

    /// `ws://127.0.0.1:PORT`, for `ElevenLabsConfig::base_url`.
    pub fn base_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn update(&self, change: impl FnOnce(&mut Knobs)) {
        change(&mut lock(&self.shared.knobs));
    }

    /// A copy of the log as it is now.
    pub fn log(&self) -> FakeLog {
        self.shared.log().clone()
    }

    /// Waits until `condition` holds for the log; false if it did not within `within`.
    pub async fn wait_for(&self, within: Duration, condition: impl Fn(&FakeLog) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if condition(&self.shared.log()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for FakeElevenLabs {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Connections live in the set, so stopping the accept loop stops them too.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream, Arc::clone(&shared)));
                }
                Err(_) => return,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Checks the handshake like the vendor: path, query and key. Returns the connection's index.
fn check_handshake(shared: &Shared, request: &Request) -> Result<usize, (StatusCode, String)> {
    let knobs = shared.knobs();
    let path = request.uri().path();
    let voice_id = path
        .strip_prefix("/v1/text-to-speech/")
        .and_then(|rest| rest.strip_suffix("/multi-stream-input"))
        .filter(|voice| !voice.is_empty() && !voice.contains('/'))
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no such endpoint: {path}")))?;
    let query: Vec<(String, String)> = serde_urlencoded::from_str(request.uri().query().unwrap_or_default())
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad query: {e}")))?;
    let param = |name: &str| query.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    let model_id = param("model_id").ok_or((StatusCode::BAD_REQUEST, "model_id is missing".to_owned()))?;
    let output_format = param("output_format").unwrap_or_default();
    if output_format != "ulaw_8000" {
        return Err((StatusCode::BAD_REQUEST, format!("output_format {output_format:?} is not ulaw_8000")));
    }
    let key = request.headers().get("xi-api-key").and_then(|v| v.to_str().ok());
    if knobs.reject_key || key != Some(knobs.api_key.as_str()) {
        return Err((StatusCode::UNAUTHORIZED, "invalid_api_key".to_owned()));
    }
    let mut log = shared.log();
    log.connections.push(ConnectionLog { voice_id: voice_id.to_owned(), model_id, output_format });
    Ok(log.connections.len() - 1)
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let mut connection = None;
    // The callback's signature is tungstenite's, large error and all.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        match check_handshake(&shared, request) {
            Ok(index) => {
                connection = Some(index);
                Ok(response)
            }
            Err((status, why)) => {
                shared.log().rejected.push(why.clone());
                let mut refusal = ErrorResponse::new(Some(why));
                *refusal.status_mut() = status;
                Err(refusal)
            }
        }
    };
    let Ok(socket) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(super::small_socket())).await
    else {
        return;
    };
    let Some(index) = connection else {
        return;
    };
    Connection { shared, index, socket, contexts: Vec::new(), messages: 0, closing_socket: false }.run().await;
}

/// Audio ready to go: the characters it spells, and when it may leave.
struct Chunk {
    text: String,
    ready_at: Instant,
}

struct LiveContext {
    id: String,
    /// Index into `FakeLog::contexts`.
    log: usize,
    pending: String,
    queue: VecDeque<Chunk>,
    has_text: bool,
    flushed: bool,
    close_requested: bool,
}

struct Connection {
    shared: Arc<Shared>,
    index: usize,
    socket: WebSocketStream<TcpStream>,
    contexts: Vec<LiveContext>,
    messages: usize,
    closing_socket: bool,
}

/// What the connection does after a client message.
enum Next {
    Continue,
    /// Send `say` (if any), then close with this code and reason.
    Close {
        code: CloseCode,
        reason: String,
        say: Option<Value>,
    },
    /// Drop the TCP connection without a word.
    Drop,
}

impl Connection {
    async fn run(mut self) {
        let mut last_message = Instant::now();
        let interval = self.shared.knobs().chunk_interval.max(Duration::from_millis(1));
        let mut ticker = tokio::time::interval(interval);
        // After an idle spell the ticks start again from now, not in a burst.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let inactivity = self.shared.knobs().inactivity_timeout;
            // Nothing to pace while no context is open: a thousand idle sockets must not
            // wake five hundred times a second each.
            let pacing = !self.contexts.is_empty() || self.closing_socket;
            tokio::select! {
                frame = self.socket.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        last_message = Instant::now();
                        match self.on_message(text.as_str()) {
                            Next::Continue => {}
                            Next::Drop => {
                                self.shared.log().drops += 1;
                                return;
                            }
                            Next::Close { code, reason, say } => {
                                if let Some(say) = say {
                                    let _ = self.socket.send(Message::text(say.to_string())).await;
                                }
                                self.close(code, reason).await;
                                return;
                            }
                        }
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => {}
                },
                _ = ticker.tick(), if pacing => {
                    if self.send_ready().await.is_err() {
                        return;
                    }
                    if self.closing_socket && self.contexts.is_empty() {
                        self.close(CloseCode::Normal, String::new()).await;
                        return;
                    }
                }
                () = tokio::time::sleep_until(last_message + inactivity) => {
                    self.shared.log().idle_closes += 1;
                    self.close(CloseCode::Normal, "inactivity timeout".to_owned()).await;
                    return;
                }
            }
        }
    }

    async fn close(&mut self, code: CloseCode, reason: String) {
        let frame = CloseFrame { code, reason: reason.into() };
        let _ = tokio::time::timeout(Duration::from_secs(1), self.socket.close(Some(frame))).await;
    }

    fn on_message(&mut self, text: &str) -> Next {
        let knobs = self.shared.knobs();
        self.messages += 1;
        let Ok(message) = serde_json::from_str::<Value>(text) else {
            return Next::Close { code: CloseCode::Invalid, reason: "message is not JSON".to_owned(), say: None };
        };
        self.shared.log().messages.push(message.clone());
        if knobs.drop_after_messages.is_some_and(|n| self.messages >= n) {
            return Next::Drop;
        }
        let flag = |name: &str| message.get(name).and_then(Value::as_bool).unwrap_or(false);
        if flag("close_socket") {
            self.shared.log().close_sockets += 1;
            self.closing_socket = true;
            let unflushed: Vec<usize> = (0..self.contexts.len()).rev().filter(|&i| !self.contexts[i].flushed).collect();
            for i in unflushed {
                let context = self.contexts.remove(i);
                self.shared.log().contexts[context.log].closed = Some(ContextClose::BySocketClose);
            }
            for context in &mut self.contexts {
                context.close_requested = true;
            }
            return Next::Continue;
        }
        let id = message.get("context_id").and_then(Value::as_str).unwrap_or("").to_owned();
        if flag("close_context") {
            let Some(i) = self.contexts.iter().position(|c| c.id == id) else {
                return Next::Continue;
            };
            if self.contexts[i].flushed {
                self.contexts[i].close_requested = true;
                self.generate(i, &knobs);
            } else {
                // Abandoned: its buffered text and queued audio go, and nothing more is sent.
                let context = self.contexts.remove(i);
                let mut log = self.shared.log();
                log.contexts[context.log].closed = Some(ContextClose::Aborted);
            }
            return Next::Continue;
        }
        let Some(text) = message.get("text").and_then(Value::as_str) else {
            return Next::Continue;
        };
        let flush = flag("flush");
        let i = match self.contexts.iter().position(|c| c.id == id) {
            Some(i) => {
                if text.trim().is_empty() && !flush {
                    if !self.contexts[i].has_text {
                        let why = format!("keep-alive to context {id} before its first text");
                        self.shared.log().policy_closes.push(why.clone());
                        return Next::Close { code: CloseCode::Policy, reason: why, say: None };
                    }
                    self.shared.log().contexts[self.contexts[i].log].keep_alives += 1;
                    return Next::Continue;
                }
                i
            }
            None => {
                if self.contexts.len() >= knobs.max_contexts {
                    let why = format!(
                        "Maximum simultaneous contexts per WebSocket connection exceeded ({})",
                        knobs.max_contexts
                    );
                    let error = json!({"message": why, "error": "max_active_conversations", "code": 1008});
                    self.shared.log().policy_closes.push(why.clone());
                    return Next::Close { code: CloseCode::Policy, reason: why, say: Some(error) };
                }
                let mut log = self.shared.log();
                log.contexts.push(ContextLog {
                    connection: self.index,
                    id: id.clone(),
                    first_message: message.clone(),
                    texts: Vec::new(),
                    keep_alives: 0,
                    flushed: false,
                    closed: None,
                    audio_bytes_sent: 0,
                    audio_after_abort: 0,
                    final_sent: false,
                });
                let log_index = log.contexts.len() - 1;
                self.contexts.push(LiveContext {
                    id: id.clone(),
                    log: log_index,
                    pending: String::new(),
                    queue: VecDeque::new(),
                    has_text: false,
                    flushed: false,
                    close_requested: false,
                });
                self.contexts.len() - 1
            }
        };
        if !text.trim().is_empty() {
            let context = &mut self.contexts[i];
            context.pending.push_str(text);
            context.has_text = true;
            self.shared.log().contexts[context.log].texts.push(text.to_owned());
        }
        if flush {
            self.contexts[i].flushed = true;
            self.shared.log().contexts[self.contexts[i].log].flushed = true;
            self.generate(i, &knobs);
        } else if self.contexts[i].pending.chars().count() >= knobs.generate_at_chars {
            self.generate(i, &knobs);
        }
        Next::Continue
    }

    /// Turns context `i`'s buffered text into queued chunks.
    fn generate(&mut self, i: usize, knobs: &Knobs) {
        let context = &mut self.contexts[i];
        let text = std::mem::take(&mut context.pending);
        if knobs.stall || text.is_empty() {
            return;
        }
        let ready_at = Instant::now() + knobs.first_byte_delay;
        let chars: Vec<char> = text.chars().collect();
        for piece in chars.chunks(knobs.chars_per_chunk.max(1)) {
            context.queue.push_back(Chunk { text: piece.iter().collect(), ready_at });
        }
    }

    /// One ready chunk per context, then finals for contexts that are done.
    async fn send_ready(&mut self) -> Result<(), ()> {
        let knobs = self.shared.knobs();
        if knobs.stall {
            return Ok(());
        }
        let now = Instant::now();
        let mut outgoing = Vec::new();
        let mut done = Vec::new();
        for (i, context) in self.contexts.iter_mut().enumerate() {
            if context.queue.front().is_some_and(|chunk| chunk.ready_at <= now)
                && let Some(chunk) = context.queue.pop_front()
            {
                let audio = audio_at_pace(&chunk.text, knobs.ms_per_char);
                {
                    let mut log = self.shared.log();
                    let entry = &mut log.contexts[context.log];
                    entry.audio_bytes_sent += audio.len();
                    if entry.closed == Some(ContextClose::Aborted) {
                        entry.audio_after_abort += audio.len();
                    }
                }
                outgoing.push(audio_message(&context.id, &chunk.text, &audio));
            }
            if context.close_requested && context.queue.is_empty() && context.pending.is_empty() {
                let flag = if knobs.snake_case_final { "is_final" } else { "isFinal" };
                outgoing.push(json!({ flag: true, "contextId": context.id }));
                done.push(i);
            }
        }
        for i in done.into_iter().rev() {
            let context = self.contexts.remove(i);
            let mut log = self.shared.log();
            let entry = &mut log.contexts[context.log];
            entry.final_sent = true;
            if entry.closed.is_none() {
                entry.closed = Some(ContextClose::AfterFlush);
            }
        }
        for message in outgoing {
            self.socket.send(Message::text(message.to_string())).await.map_err(|_| ())?;
        }
        Ok(())
    }
}

/// An audio message with its character alignment (1 ms per character).
fn audio_message(context: &str, text: &str, audio: &[u8]) -> Value {
    let chars: Vec<String> = text.chars().map(String::from).collect();
    let starts: Vec<usize> = (0..chars.len()).collect();
    let durations = vec![1; chars.len()];
    let alignment = json!({ "chars": chars, "charStartTimesMs": starts, "charDurationsMs": durations });
    json!({
        "audio": BASE64.encode(audio),
        "contextId": context,
        "alignment": alignment,
        "normalizedAlignment": alignment,
    })
}
