//! ElevenLabs streaming speech over its multi-context WebSocket: one socket per call, one
//! context per agent turn. Owns the vendor's JSON and its base64 μ-law; nothing outside
//! this module sees either. It never resamples or re-encodes: `ulaw_8000` goes out as is.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::domain::language::Language;
use crate::providers::ProviderError;
use crate::providers::tts::{StreamingTts, TtsCall, TtsInput, TtsTurn};

const PROVIDER: &str = "elevenlabs";
/// Text pieces a turn may queue before the sender waits.
const TEXT_CHANNEL: usize = 64;
/// Audio chunks a turn may queue before its reader is waited for.
const AUDIO_CHANNEL: usize = 64;
/// A socket that lived at least this long before the server closed it (the 20 s idle rule)
/// is reopened at once, so the next turn does not pay for the handshake. One that dies
/// younger is reopened only when a turn needs it, so a server that keeps refusing us is
/// not hammered.
const EAGER_REOPEN_AFTER: Duration = Duration::from_secs(5);
/// How long a closing call waits for the server to finish the close handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Where and how to reach ElevenLabs. `Debug` never shows the API key.
#[derive(Clone)]
pub struct ElevenLabsConfig {
    pub api_key: String,
    /// `wss://api.elevenlabs.io` in production; `ws://127.0.0.1:PORT` against a fake.
    pub base_url: String,
    pub model: String,
    pub english_voice: String,
    pub spanish_voice: String,
    /// TCP, TLS and WebSocket handshake together.
    pub connect_timeout: Duration,
    /// After a turn's flush: longest wait for its first audio, and between two chunks. Past
    /// it the turn fails with a retryable error, so the caller can fall back to local speech.
    pub first_audio_timeout: Duration,
    /// A context that has text and is waiting for more gets a `" "` keep-alive after this
    /// long without a message (the server drops a context idle for 20 s).
    pub keep_alive_interval: Duration,
    pub voice_settings: ElevenLabsVoiceSettings,
    /// Characters the server buffers before generating (first chunk, second, ...; each
    /// 50–500). Small first values start the audio sooner.
    pub chunk_length_schedule: Vec<u32>,
}

impl ElevenLabsConfig {
    /// Production settings: Flash v2.5, Rachel for English, Lina for Spanish.
    pub fn new(api_key: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            base_url: "wss://api.elevenlabs.io".to_owned(),
            model: "eleven_flash_v2_5".to_owned(),
            english_voice: "21m00Tcm4TlvDq8ikWAM".to_owned(),
            spanish_voice: "ThT5KcBeYPX3keUQqHPh".to_owned(),
            connect_timeout: Duration::from_secs(5),
            first_audio_timeout: Duration::from_secs(3),
            keep_alive_interval: Duration::from_secs(10),
            voice_settings: ElevenLabsVoiceSettings::default(),
            chunk_length_schedule: vec![50, 120, 160, 250],
        }
    }

    /// The voice that speaks `language`.
    pub fn voice(&self, language: Language) -> &str {
        match language {
            Language::English => &self.english_voice,
            Language::Spanish => &self.spanish_voice,
        }
    }

    /// The multi-context endpoint for `language`'s voice.
    fn stream_url(&self, language: Language) -> Result<String, ProviderError> {
        let voice = self.voice(language);
        let safe = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !safe(voice) {
            return Err(ProviderError::fatal(PROVIDER, format!("voice id {voice:?} is not a valid ElevenLabs id")));
        }
        let query = serde_urlencoded::to_string([("model_id", self.model.as_str()), ("output_format", "ulaw_8000")])
            .map_err(|e| ProviderError::fatal(PROVIDER, format!("cannot encode the query: {e}")))?;
        let base = self.base_url.trim_end_matches('/');
        Ok(format!("{base}/v1/text-to-speech/{voice}/multi-stream-input?{query}"))
    }
}

impl fmt::Debug for ElevenLabsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElevenLabsConfig")
            .field("api_key", &"[redacted]")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("english_voice", &self.english_voice)
            .field("spanish_voice", &self.spanish_voice)
            .field("connect_timeout", &self.connect_timeout)
            .field("first_audio_timeout", &self.first_audio_timeout)
            .field("keep_alive_interval", &self.keep_alive_interval)
            .field("voice_settings", &self.voice_settings)
            .field("chunk_length_schedule", &self.chunk_length_schedule)
            .finish()
    }
}

/// The `voice_settings` sent when a context opens.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ElevenLabsVoiceSettings {
    pub stability: f32,
    pub similarity_boost: f32,
    /// 0.7 to 1.2.
    pub speed: f32,
    /// Off: it adds latency and little on an 8 kHz phone line.
    pub use_speaker_boost: bool,
}

impl Default for ElevenLabsVoiceSettings {
    fn default() -> Self {
        Self { stability: 0.5, similarity_boost: 0.75, speed: 1.0, use_speaker_boost: false }
    }
}

/// ElevenLabs as a [`StreamingTts`]. Each call opens its socket in the background at once
/// (`open_call`), so that the handshake overlaps the caller's first words instead of
/// delaying the first reply; each turn is one context on that socket.
#[derive(Debug, Clone)]
pub struct ElevenLabsTts {
    config: Arc<ElevenLabsConfig>,
}

impl ElevenLabsTts {
    pub fn new(config: ElevenLabsConfig) -> Self {
        Self { config: Arc::new(config) }
    }

    pub fn config(&self) -> &ElevenLabsConfig {
        &self.config
    }

    /// How long a flushed turn waits for audio before failing with a retryable error.
    pub fn first_audio_timeout(&self) -> Duration {
        self.config.first_audio_timeout
    }
}

impl StreamingTts for ElevenLabsTts {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn open_call(&self, language: Language) -> Box<dyn TtsCall> {
        let first_audio_timeout = self.config.first_audio_timeout;
        let link = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let (commands, commands_rx) = mpsc::unbounded_channel();
                let (shutdown, shutdown_rx) = oneshot::channel();
                let task = SocketTask::new(Arc::clone(&self.config), self.config.stream_url(language));
                runtime.spawn(task.run(commands_rx, shutdown_rx));
                Some(CallLink { commands, runtime, _shutdown: shutdown })
            }
            Err(_) => None,
        };
        Box::new(ElevenLabsCall { link, next_turn: 0, first_audio_timeout })
    }
}

/// A call's handle on its socket task. Dropping it closes the socket (`close_socket`).
struct ElevenLabsCall {
    /// `None` when the call was opened outside a tokio runtime: every turn then fails.
    link: Option<CallLink>,
    next_turn: u64,
    first_audio_timeout: Duration,
}

struct CallLink {
    commands: mpsc::UnboundedSender<Command>,
    runtime: tokio::runtime::Handle,
    /// Never sent: dropping it (with the call) tells the socket task to close.
    _shutdown: oneshot::Sender<()>,
}

impl TtsCall for ElevenLabsCall {
    fn start_turn(&mut self) -> TtsTurn {
        let (text_tx, text_rx) = mpsc::channel(TEXT_CHANNEL);
        let (audio_tx, audio_rx) = mpsc::channel(AUDIO_CHANNEL);
        self.next_turn += 1;
        // Never reused within a call, so late audio of an abandoned turn cannot be taken
        // for a later turn's.
        let context = format!("turn-{}", self.next_turn);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let started = self.link.as_ref().and_then(|link| {
            link.commands.send(Command::StartTurn { context: context.clone(), events: events_tx }).ok().map(|()| link)
        });
        match started {
            Some(link) => {
                let turn = TurnTask {
                    context,
                    commands: link.commands.clone(),
                    first_audio_timeout: self.first_audio_timeout,
                };
                link.runtime.spawn(turn.run(text_rx, audio_tx, events_rx));
            }
            None => {
                // A fresh channel with capacity > 0 always has room for this one message.
                let _ = audio_tx.try_send(Err(ProviderError::fatal(PROVIDER, "call opened outside a tokio runtime")));
            }
        }
        TtsTurn { text: text_tx, audio: audio_rx }
    }
}

/// From a turn (and its call) to the socket task.
#[derive(Debug)]
enum Command {
    StartTurn {
        context: String,
        events: mpsc::UnboundedSender<TurnEvent>,
    },
    Text {
        context: String,
        text: String,
    },
    /// The turn's text is complete.
    Flush {
        context: String,
    },
    /// The turn was abandoned (barge-in): close its context, drop its audio.
    Abort {
        context: String,
    },
}

/// From the socket task to one turn.
#[derive(Debug)]
enum TurnEvent {
    Audio(Vec<u8>),
    Final,
    Failed(ProviderError),
}

/// One turn: forwards its text to the socket task and the socket task's audio to its
/// reader, and notices when the reader goes away (barge-in) or the audio stalls.
struct TurnTask {
    context: String,
    commands: mpsc::UnboundedSender<Command>,
    first_audio_timeout: Duration,
}

impl TurnTask {
    async fn run(
        self,
        mut text_rx: mpsc::Receiver<TtsInput>,
        audio_tx: mpsc::Sender<Result<Vec<u8>, ProviderError>>,
        mut events: mpsc::UnboundedReceiver<TurnEvent>,
    ) {
        let mut flushed = false;
        // Set at the flush, moved on by every chunk: past it the turn has stalled.
        let mut deadline: Option<Instant> = None;
        loop {
            tokio::select! {
                // A dropped turn closes both ends at once: the barge-in must win over the
                // end of text, or the abandoned text would be flushed and spoken.
                biased;
                () = audio_tx.closed() => {
                    self.abort();
                    return;
                }
                input = text_rx.recv(), if !flushed => match input {
                    Some(TtsInput::Text(text)) => self.send(Command::Text { context: self.context.clone(), text }),
                    // A dropped sender ends the text just as a flush does; text sent after
                    // the flush is never read.
                    Some(TtsInput::Flush) | None => {
                        flushed = true;
                        deadline = Some(Instant::now() + self.first_audio_timeout);
                        self.send(Command::Flush { context: self.context.clone() });
                    }
                },
                event = events.recv() => match event {
                    Some(TurnEvent::Audio(bytes)) => {
                        if audio_tx.send(Ok(bytes)).await.is_err() {
                            self.abort();
                            return;
                        }
                        // Measured from when the reader took the chunk: a reader that plays
                        // audio at its own pace is not a stalled server.
                        if flushed {
                            deadline = Some(Instant::now() + self.first_audio_timeout);
                        }
                    }
                    Some(TurnEvent::Final) => return,
                    Some(TurnEvent::Failed(error)) => {
                        let _ = audio_tx.send(Err(error)).await;
                        return;
                    }
                    // The call was dropped: nobody is listening any more.
                    None => return,
                },
                () = sleep_until(deadline) => {
                    tracing::warn!(provider = PROVIDER, context_id = %self.context, "no audio in time");
                    let timeout = self.first_audio_timeout;
                    let error = ProviderError::retryable(PROVIDER, format!("no audio within {timeout:?} of the flush"));
                    self.abort();
                    let _ = audio_tx.send(Err(error)).await;
                    return;
                }
            }
        }
    }

    fn send(&self, command: Command) {
        // Fails only once the call is gone, and then nobody needs the text.
        let _ = self.commands.send(command);
    }

    fn abort(&self) {
        self.send(Command::Abort { context: self.context.clone() });
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Connecting = Pin<Box<dyn Future<Output = Result<Socket, ProviderError>> + Send>>;

/// A turn's context as the socket task sees it. The context is created on the server only
/// with its first text, so the server never holds a context that has no text: a keep-alive
/// can never reach one (the server answers that with 1008), and a socket lost while a turn
/// waits for its first text costs that turn nothing.
struct Context {
    id: String,
    events: mpsc::UnboundedSender<TurnEvent>,
    /// Messages waiting for a socket, in order.
    unsent: Vec<Outgoing>,
    /// Its first message went out on the current socket.
    on_server: bool,
    has_text: bool,
    /// Flush and close have been queued: the server finishes the audio, then says isFinal.
    closing: bool,
    last_sent: Instant,
}

#[derive(Debug, Clone, PartialEq)]
enum Outgoing {
    Text(String),
    FlushAndClose,
}

/// Owns the call's socket and the contexts on it.
struct SocketTask {
    config: Arc<ElevenLabsConfig>,
    url: Result<String, ProviderError>,
    contexts: Vec<Context>,
    socket: Option<Socket>,
    socket_opened: Instant,
    connecting: Option<Connecting>,
    /// The last error the server reported without a context: it explains the close that follows.
    server_error: Option<String>,
}

impl SocketTask {
    fn new(config: Arc<ElevenLabsConfig>, url: Result<String, ProviderError>) -> Self {
        Self {
            config,
            url,
            contexts: Vec::new(),
            socket: None,
            socket_opened: Instant::now(),
            connecting: None,
            server_error: None,
        }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>, mut shutdown: oneshot::Receiver<()>) {
        self.connect();
        // Half the interval, so no context waits longer than 1.5 intervals for its keep-alive.
        let period = (self.config.keep_alive_interval / 2).max(Duration::from_millis(1));
        let mut keep_alive = tokio::time::interval(period);
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // Sent never: the call was dropped.
                _ = &mut shutdown => break,
                command = commands.recv() => match command {
                    Some(command) => self.handle(command).await,
                    None => break,
                },
                result = next_connection(&mut self.connecting) => {
                    self.connecting = None;
                    Box::pin(self.connected(result)).await;
                }
                frame = next_frame(&mut self.socket) => self.received(frame).await,
                _ = keep_alive.tick() => self.keep_alive().await,
            }
        }
        Box::pin(self.close()).await;
    }

    fn connect(&mut self) {
        if self.socket.is_some() || self.connecting.is_some() {
            return;
        }
        let config = Arc::clone(&self.config);
        let url = self.url.clone();
        self.connecting = Some(Box::pin(async move { open_socket(&config, url?).await }));
    }

    async fn connected(&mut self, result: Result<Socket, ProviderError>) {
        match result {
            Ok(socket) => {
                tracing::debug!(provider = PROVIDER, "socket open");
                self.socket = Some(socket);
                self.socket_opened = Instant::now();
                self.server_error = None;
                self.pump().await;
            }
            Err(error) => {
                tracing::warn!(provider = PROVIDER, error = %error, "cannot open the socket");
                // Turns with text waiting needed this socket; the others try again with
                // their first text.
                self.contexts.retain(|context| {
                    if context.unsent.is_empty() {
                        return true;
                    }
                    let _ = context.events.send(TurnEvent::Failed(error.clone()));
                    false
                });
            }
        }
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::StartTurn { context, events } => {
                self.contexts.push(Context {
                    id: context,
                    events,
                    unsent: Vec::new(),
                    on_server: false,
                    has_text: false,
                    closing: false,
                    last_sent: Instant::now(),
                });
                // Warm the socket up while the turn's text is being written.
                self.connect();
            }
            Command::Text { context, text } => {
                // Whitespace alone says nothing and, before a context's first text, would
                // be a keep-alive the server punishes with 1008.
                if text.trim().is_empty() {
                    return;
                }
                let Some(context) = self.contexts.iter_mut().find(|c| c.id == context && !c.closing) else {
                    return;
                };
                context.unsent.push(Outgoing::Text(with_trailing_space(text)));
                context.has_text = true;
                self.pump().await;
            }
            Command::Flush { context } => {
                let Some(index) = self.contexts.iter().position(|c| c.id == context) else {
                    return;
                };
                let context = &mut self.contexts[index];
                if context.closing {
                    return;
                }
                if !context.has_text {
                    // Nothing was said, and the server never heard of this context.
                    let _ = context.events.send(TurnEvent::Final);
                    self.contexts.remove(index);
                    return;
                }
                context.unsent.push(Outgoing::FlushAndClose);
                context.closing = true;
                self.pump().await;
            }
            Command::Abort { context } => {
                let Some(index) = self.contexts.iter().position(|c| c.id == context) else {
                    return;
                };
                let context = self.contexts.remove(index);
                tracing::debug!(provider = PROVIDER, context_id = %context.id, "turn abandoned");
                if context.on_server && !context.closing {
                    self.send_all(vec![close_context_message(&context.id)]).await;
                }
            }
        }
    }

    /// Sends every context's waiting messages, opening the context first where needed.
    async fn pump(&mut self) {
        if !self.contexts.iter().any(|c| !c.unsent.is_empty()) {
            return;
        }
        if self.socket.is_none() {
            self.connect();
            return;
        }
        let now = Instant::now();
        let mut messages = Vec::new();
        for context in &mut self.contexts {
            if context.unsent.is_empty() {
                continue;
            }
            if !context.on_server {
                messages.push(open_context_message(&context.id, &self.config));
                context.on_server = true;
            }
            for outgoing in context.unsent.drain(..) {
                match outgoing {
                    Outgoing::Text(text) => messages.push(json!({ "text": text, "context_id": context.id })),
                    Outgoing::FlushAndClose => {
                        messages.push(json!({ "text": "", "flush": true, "context_id": context.id }));
                        // Closing right after the flush: the server finishes the flushed
                        // audio, then sends isFinal for the context.
                        messages.push(close_context_message(&context.id));
                    }
                }
            }
            context.last_sent = now;
        }
        self.send_all(messages).await;
    }

    async fn keep_alive(&mut self) {
        if self.socket.is_none() {
            return;
        }
        let now = Instant::now();
        let interval = self.config.keep_alive_interval;
        let mut messages = Vec::new();
        for context in &mut self.contexts {
            // Only contexts the server knows, that have text and still take text.
            if context.on_server
                && context.has_text
                && !context.closing
                && context.unsent.is_empty()
                && now.duration_since(context.last_sent) >= interval
            {
                messages.push(json!({ "text": " ", "context_id": context.id }));
                context.last_sent = now;
            }
        }
        self.send_all(messages).await;
    }

    async fn send_all(&mut self, messages: Vec<Value>) {
        let Some(socket) = self.socket.as_mut() else {
            return;
        };
        for message in messages {
            let send = socket.send(Message::text(message.to_string()));
            let result = match tokio::time::timeout(self.config.connect_timeout, send).await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(_) => Err("the server stopped reading".to_owned()),
            };
            if let Err(e) = result {
                self.lost(ProviderError::retryable(PROVIDER, format!("sending failed: {e}"))).await;
                return;
            }
        }
    }

    async fn received(&mut self, frame: Option<Result<Message, tungstenite::Error>>) {
        match frame {
            Some(Ok(Message::Text(text))) => self.route(text.as_str()).await,
            Some(Ok(Message::Close(frame))) => {
                let error = self.close_error(frame.as_ref());
                self.lost(error).await;
            }
            Some(Ok(_)) => {} // binary, ping, pong: nothing for us
            Some(Err(e)) => {
                let message = match self.server_error.take() {
                    Some(said) => format!("connection lost: {e} (server said: {said})"),
                    None => format!("connection lost: {e}"),
                };
                self.lost(ProviderError::retryable(PROVIDER, message)).await;
            }
            None => {
                let error = self.close_error(None);
                self.lost(error).await;
            }
        }
    }

    fn close_error(&mut self, frame: Option<&CloseFrame>) -> ProviderError {
        let said = self.server_error.take();
        let reason = match frame {
            Some(frame) => format!("server closed the socket ({} {})", u16::from(frame.code), frame.reason.as_str()),
            None => "server closed the socket".to_owned(),
        };
        let message = match &said {
            Some(said) => format!("{reason}: {said}"),
            None => reason,
        };
        ProviderError { provider: PROVIDER, retryable: !retry_cannot_help(&message), message }
    }

    /// The socket is gone: turns whose context was on it fail; turns that had not reached
    /// the server yet go on, on the next socket.
    async fn lost(&mut self, error: ProviderError) {
        if let Some(mut socket) = self.socket.take() {
            // Best effort: the socket may be dead already.
            let _ = tokio::time::timeout(Duration::from_millis(100), socket.close(None)).await;
        }
        let lived = self.socket_opened.elapsed();
        let mut failed = 0;
        self.contexts.retain(|context| {
            if !context.on_server {
                return true;
            }
            failed += 1;
            let _ = context.events.send(TurnEvent::Failed(error.clone()));
            false
        });
        if failed > 0 {
            tracing::warn!(provider = PROVIDER, error = %error, failed_turns = failed, "socket lost mid-turn");
        } else {
            tracing::debug!(provider = PROVIDER, error = %error, "socket closed");
        }
        let waiting = self.contexts.iter().any(|c| !c.unsent.is_empty());
        if waiting || lived >= EAGER_REOPEN_AFTER {
            self.connect();
        }
    }

    async fn route(&mut self, text: &str) {
        let Ok(message) = serde_json::from_str::<Value>(text) else {
            tracing::warn!(provider = PROVIDER, "message that is not JSON");
            return;
        };
        let ServerMessage { context, audio, is_final, error } = ServerMessage::read(&message);
        if let Some(error) = error {
            tracing::warn!(provider = PROVIDER, context_id = context.unwrap_or(""), error = %error, "server error");
            match context.and_then(|id| self.contexts.iter().position(|c| c.id == id)) {
                Some(index) => {
                    let context = self.contexts.remove(index);
                    let retryable = !retry_cannot_help(&error);
                    let failure = ProviderError { provider: PROVIDER, message: error, retryable };
                    let _ = context.events.send(TurnEvent::Failed(failure));
                    if !context.closing {
                        self.send_all(vec![close_context_message(&context.id)]).await;
                    }
                }
                None => self.server_error = Some(error),
            }
            return;
        }
        // Audio of a context we no longer know is a stale turn's: dropped here.
        let Some(index) = context.and_then(|id| self.contexts.iter().position(|c| c.id == id)) else {
            return;
        };
        if let Some(audio) = audio {
            let event = match BASE64.decode(audio) {
                Ok(bytes) if bytes.is_empty() => None,
                Ok(bytes) => Some(TurnEvent::Audio(bytes)),
                Err(e) => Some(TurnEvent::Failed(ProviderError::fatal(PROVIDER, format!("audio is not base64: {e}")))),
            };
            let failed = matches!(event, Some(TurnEvent::Failed(_)));
            if let Some(event) = event
                && (self.contexts[index].events.send(event).is_err() || failed)
            {
                // The turn is gone (or its audio is garbage): stop the context.
                let context = self.contexts.remove(index);
                if !context.closing {
                    self.send_all(vec![close_context_message(&context.id)]).await;
                }
                return;
            }
        }
        if is_final {
            let context = self.contexts.remove(index);
            let _ = context.events.send(TurnEvent::Final);
        }
    }

    /// The call is over: ask the server to close, then close our side.
    async fn close(mut self) {
        self.connecting = None;
        let Some(mut socket) = self.socket.take() else {
            return;
        };
        let close_socket = json!({ "close_socket": true }).to_string();
        let goodbye = async {
            socket.send(Message::text(close_socket)).await?;
            socket.close(None).await?;
            // Wait for the server's side of the close handshake.
            while socket.next().await.is_some() {}
            Ok::<(), tungstenite::Error>(())
        };
        if let Ok(Err(e)) = tokio::time::timeout(CLOSE_GRACE, goodbye).await {
            tracing::debug!(provider = PROVIDER, error = %e, "closing the socket");
        }
    }
}

async fn next_connection(connecting: &mut Option<Connecting>) -> Result<Socket, ProviderError> {
    match connecting {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

async fn next_frame(socket: &mut Option<Socket>) -> Option<Result<Message, tungstenite::Error>> {
    match socket {
        Some(socket) => socket.next().await,
        None => std::future::pending().await,
    }
}

async fn open_socket(config: &ElevenLabsConfig, url: String) -> Result<Socket, ProviderError> {
    let mut request =
        url.into_client_request().map_err(|e| ProviderError::fatal(PROVIDER, format!("bad endpoint: {e}")))?;
    let key = HeaderValue::from_str(&config.api_key)
        .map_err(|_| ProviderError::fatal(PROVIDER, "the API key is not a valid header value"))?;
    request.headers_mut().insert("xi-api-key", key);
    match tokio::time::timeout(
        config.connect_timeout,
        tokio_tungstenite::connect_async_with_config(
            request,
            Some(crate::telephony::client_socket_config()),
            true, /* no Nagle: small frames go out at once */
        ),
    )
    .await
    {
        Err(_) => Err(ProviderError::retryable(PROVIDER, format!("no connection within {:?}", config.connect_timeout))),
        Ok(Err(e)) => Err(connect_error(e)),
        Ok(Ok((socket, _response))) => Ok(socket),
    }
}

fn connect_error(error: tungstenite::Error) -> ProviderError {
    match error {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            match status.as_u16() {
                401 | 403 => ProviderError::fatal(PROVIDER, format!("the API key was rejected ({status})")),
                408 | 429 | 500..=599 => ProviderError::retryable(PROVIDER, format!("handshake refused ({status})")),
                _ => ProviderError::fatal(PROVIDER, format!("handshake refused ({status})")),
            }
        }
        tungstenite::Error::Url(e) => ProviderError::fatal(PROVIDER, format!("cannot connect: {e}")),
        tungstenite::Error::Tls(e) => ProviderError::fatal(PROVIDER, format!("TLS: {e}")),
        other => ProviderError::retryable(PROVIDER, format!("cannot connect: {other}")),
    }
}

/// Whether a server's words point at credentials or quota, which no retry will fix.
fn retry_cannot_help(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["api key", "api_key", "unauthorized", "authentication", "invalid_api_key", "quota"]
        .iter()
        .any(|word| lower.contains(word))
}

fn with_trailing_space(mut text: String) -> String {
    if !text.ends_with(char::is_whitespace) {
        text.push(' ');
    }
    text
}

/// A context's first message: a single space with its settings.
fn open_context_message(context: &str, config: &ElevenLabsConfig) -> Value {
    json!({
        "text": " ",
        "voice_settings": config.voice_settings,
        "generation_config": { "chunk_length_schedule": config.chunk_length_schedule },
        "context_id": context,
    })
}

fn close_context_message(context: &str) -> Value {
    json!({ "context_id": context, "close_context": true })
}

/// The parts of a server message we act on. Both spellings the vendor has used are read.
#[derive(Debug, PartialEq)]
struct ServerMessage<'a> {
    context: Option<&'a str>,
    audio: Option<&'a str>,
    is_final: bool,
    error: Option<String>,
}

impl<'a> ServerMessage<'a> {
    fn read(message: &'a Value) -> Self {
        let field = |names: &[&str]| names.iter().find_map(|name| message.get(*name).filter(|v| !v.is_null()));
        let context = field(&["contextId", "context_id"]).and_then(Value::as_str);
        let audio = field(&["audio"]).and_then(Value::as_str).filter(|a| !a.is_empty());
        let is_final = field(&["isFinal", "is_final"]).and_then(Value::as_bool).unwrap_or(false);
        let error = field(&["error"]).map(|error| {
            let detail = field(&["message"]).and_then(Value::as_str);
            let kind = error.as_str().map(str::to_owned).unwrap_or_else(|| error.to_string());
            match detail {
                Some(detail) => format!("{kind}: {detail}"),
                None => kind,
            }
        });
        Self { context, audio, is_final, error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_names_the_languages_voice_model_and_mu_law_output() {
        let mut config = ElevenLabsConfig::new("key");
        assert_eq!(
            config.stream_url(Language::English).expect("valid"),
            "wss://api.elevenlabs.io/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM/multi-stream-input\
             ?model_id=eleven_flash_v2_5&output_format=ulaw_8000"
        );
        config.base_url = "ws://127.0.0.1:9/".to_owned();
        assert_eq!(
            config.stream_url(Language::Spanish).expect("valid"),
            "ws://127.0.0.1:9/v1/text-to-speech/ThT5KcBeYPX3keUQqHPh/multi-stream-input\
             ?model_id=eleven_flash_v2_5&output_format=ulaw_8000"
        );
    }

    #[test]
    fn a_voice_id_that_would_change_the_path_is_refused() {
        let mut config = ElevenLabsConfig::new("key");
        config.english_voice = "../../v1/user".to_owned();
        assert!(matches!(config.stream_url(Language::English), Err(ProviderError { retryable: false, .. })));
    }

    #[test]
    fn debug_output_never_shows_the_api_key() {
        let shown = format!("{:?}", ElevenLabsConfig::new("sk_secret_123"));
        assert!(!shown.contains("sk_secret_123"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn a_context_opens_with_a_space_its_voice_settings_and_chunk_schedule() {
        let message = open_context_message("turn-1", &ElevenLabsConfig::new("key"));
        assert_eq!(
            message,
            json!({
                "text": " ",
                "voice_settings": {"stability": 0.5, "similarity_boost": 0.75, "speed": 1.0, "use_speaker_boost": false},
                "generation_config": {"chunk_length_schedule": [50, 120, 160, 250]},
                "context_id": "turn-1",
            })
        );
    }

    #[test]
    fn text_always_ends_with_exactly_one_added_space() {
        assert_eq!(with_trailing_space("Hello.".into()), "Hello. ");
        assert_eq!(with_trailing_space("Hello. ".into()), "Hello. ");
        assert_eq!(with_trailing_space("Hello\n".into()), "Hello\n");
    }

    #[test]
    fn audio_messages_are_read_with_either_spelling_of_the_context_and_final_flag() {
        let audio = json!({"audio": "f38=", "contextId": "turn-2", "isFinal": null, "alignment": null});
        assert_eq!(
            ServerMessage::read(&audio),
            ServerMessage { context: Some("turn-2"), audio: Some("f38="), is_final: false, error: None }
        );
        let last = json!({"context_id": "turn-2", "is_final": true});
        assert_eq!(
            ServerMessage::read(&last),
            ServerMessage { context: Some("turn-2"), audio: None, is_final: true, error: None }
        );
        let both = json!({"audio": "", "contextId": "turn-3", "isFinal": true});
        assert_eq!(
            ServerMessage::read(&both),
            ServerMessage { context: Some("turn-3"), audio: None, is_final: true, error: None }
        );
    }

    #[test]
    fn server_errors_keep_their_kind_and_message() {
        let error = json!({"message": "Maximum simultaneous contexts exceeded", "error": "max_active_conversations", "code": 1008});
        assert_eq!(
            ServerMessage::read(&error).error.as_deref(),
            Some("max_active_conversations: Maximum simultaneous contexts exceeded")
        );
    }

    #[test]
    fn credential_problems_are_not_worth_retrying() {
        assert!(retry_cannot_help("invalid_api_key: Invalid API key"));
        assert!(retry_cannot_help("Unauthorized"));
        assert!(!retry_cannot_help("server closed the socket (1011 internal error)"));
    }

    #[test]
    fn a_refused_handshake_is_fatal_for_a_bad_key_and_retryable_when_overloaded() {
        let refused = |status: u16| {
            let response = tungstenite::http::Response::builder().status(status).body(None).expect("valid response");
            connect_error(tungstenite::Error::Http(Box::new(response)))
        };
        assert!(!refused(401).retryable);
        assert!(!refused(403).retryable);
        assert!(!refused(404).retryable);
        assert!(refused(429).retryable);
        assert!(refused(503).retryable);
    }

    #[test]
    fn a_call_opened_outside_a_runtime_fails_its_turns_instead_of_panicking() {
        let mut call = ElevenLabsTts::new(ElevenLabsConfig::new("key")).open_call(Language::English);
        let mut turn = call.start_turn();
        assert!(matches!(turn.audio.try_recv(), Ok(Err(ProviderError { retryable: false, .. }))));
    }
}
