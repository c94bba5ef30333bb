//! `FakeOpenAi`: an OpenAI-compatible `POST /v1/chat/completions` on loopback that streams
//! scripted replies (text, tool calls, failures) as real-shaped SSE chunks with realistic
//! timing, and records every request body. It never decides anything a test did not script.
//!
//! ```ignore
//! let fake = FakeOpenAi::start().await;
//! fake.push(Script::tool_call("check_availability", json!({"date": "2025-03-14"})));
//! fake.push(Script::text("I have 9, 10 and 11 o'clock."));
//! let llm = OpenAiLlm::new(fake.config()).unwrap();
//! // ... later: fake.requests()[1].messages.last() is the tool result that was sent.
//! ```

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ringlypro::providers::llm::openai::OpenAiConfig;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// The key a fake started with [`FakeOpenAi::start`] expects.
pub const DEFAULT_API_KEY: &str = "sk-fake-openai-key";

/// Argument fragment lengths, in characters, cycled: fragments end mid-word, mid-escape and
/// mid-number, as real streams do.
const AWKWARD_SPLITS: [usize; 8] = [3, 1, 4, 1, 5, 9, 2, 6];

/// Lines that are not valid chunks, interleaved with the real ones by [`Script::with_garbage`].
const GARBAGE: [&str; 5] = [
    "data: {\"id\":\"chatcmpl-broken\",\"choices\":[{\"delta\":{\"content\":\"LEAKED\n\n",
    ": keep-alive\n\n",
    "event: ping\ndata: ping\n\n",
    "this line is no SSE field at all\n\n",
    "data: <html><body>502 Bad Gateway</body></html>\n\n",
];

/// What the fake answers to one request.
#[derive(Debug, Clone)]
pub struct Script {
    reply: Reply,
    first_token_delay: Duration,
    tokens_per_second: u32,
    chars_per_token: usize,
    garbage: bool,
    ending: Ending,
    finish_reason: Option<String>,
}

#[derive(Debug, Clone)]
enum Reply {
    Stream { text: String, tool_calls: Vec<(String, String)> },
    Status { status: u16, message: String },
    Stall,
    Raw(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ending {
    Complete,
    Stall,
    Drop,
}

impl Script {
    fn stream(text: String, tool_calls: Vec<(String, String)>) -> Self {
        Self {
            reply: Reply::Stream { text, tool_calls },
            first_token_delay: Duration::from_millis(250),
            tokens_per_second: 40,
            chars_per_token: 4,
            garbage: false,
            ending: Ending::Complete,
            finish_reason: None,
        }
    }

    /// A text reply, streamed as content deltas of `chars_per_token` characters (default 4),
    /// finishing with `stop`.
    pub fn text(text: impl Into<String>) -> Self {
        Self::stream(text.into(), Vec::new())
    }

    /// One tool call; its arguments are serialised and streamed in awkwardly split fragments,
    /// the first carrying the id and name. Finishes with `tool_calls`.
    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Self {
        Self::tool_call_raw(name, arguments.to_string())
    }

    /// One tool call with arguments sent verbatim (for invalid JSON).
    pub fn tool_call_raw(name: impl Into<String>, arguments: impl Into<String>) -> Self {
        Self::stream(String::new(), vec![(name.into(), arguments.into())])
    }

    /// Adds a further tool call (next `index`) after the text and calls already scripted.
    pub fn and_tool_call(mut self, name: impl Into<String>, arguments: Value) -> Self {
        match &mut self.reply {
            Reply::Stream { tool_calls, .. } => tool_calls.push((name.into(), arguments.to_string())),
            _ => {
                self.reply =
                    Reply::Stream { text: String::new(), tool_calls: vec![(name.into(), arguments.to_string())] }
            }
        }
        self
    }

    /// An HTTP error with OpenAI's JSON error body.
    pub fn status(status: u16, message: impl Into<String>) -> Self {
        Self { reply: Reply::Status { status, message: message.into() }, ..Self::text("") }
    }

    pub fn http_500() -> Self {
        Self::status(500, "The server had an error while processing your request.")
    }

    pub fn http_429() -> Self {
        Self::status(429, "Rate limit reached for gpt-4o-mini on requests per min (RPM).")
    }

    pub fn http_401() -> Self {
        Self::status(401, "Incorrect API key provided.")
    }

    /// Never answers: no status line, no headers, no data (the connection stays open).
    pub fn stall() -> Self {
        Self { reply: Reply::Stall, ..Self::text("") }
    }

    /// A `200 text/event-stream` whose body is exactly `body`, sent in one piece after the
    /// first-token delay: for shapes no other script produces.
    pub fn raw_sse(body: impl Into<String>) -> Self {
        Self { reply: Reply::Raw(body.into()), ..Self::text("") }
    }

    /// Delay between the request and the first chunk (default 250 ms; zero allowed).
    pub fn first_token_delay(mut self, delay: Duration) -> Self {
        self.first_token_delay = delay;
        self
    }

    /// Chunks per second after the first (default 40; 0 sends them as fast as possible).
    pub fn tokens_per_second(mut self, rate: u32) -> Self {
        self.tokens_per_second = rate;
        self
    }

    /// Characters of text per content delta (default 4, at least 1).
    pub fn chars_per_token(mut self, chars: usize) -> Self {
        self.chars_per_token = chars.max(1);
        self
    }

    /// No delay at all: first token at once, chunks as fast as possible.
    pub fn instant(self) -> Self {
        self.first_token_delay(Duration::ZERO).tokens_per_second(0)
    }

    /// Interleaves malformed lines (broken JSON, comments, HTML, non-fields) between chunks.
    pub fn with_garbage(mut self) -> Self {
        self.garbage = true;
        self
    }

    /// After the scripted content, keeps the connection open without sending anything more.
    pub fn then_stall(mut self) -> Self {
        self.ending = Ending::Stall;
        self
    }

    /// After the scripted content, breaks the connection (no finish reason, no `[DONE]`).
    pub fn then_drop(mut self) -> Self {
        self.ending = Ending::Drop;
        self
    }

    /// Overrides the finish reason (`stop` for text, `tool_calls` for calls), e.g. `length`.
    pub fn finish_reason(mut self, reason: impl Into<String>) -> Self {
        self.finish_reason = Some(reason.into());
        self
    }
}

/// A request body as the fake received it: the raw JSON plus its messages, read leniently.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequestJson {
    pub raw: Value,
    pub messages: Vec<RecordedMessage>,
}

/// One message of a recorded request.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedMessage {
    pub role: String,
    pub content: Option<String>,
    pub tool_calls: Vec<RecordedToolCall>,
    pub tool_call_id: Option<String>,
}

/// A tool call inside a recorded assistant message.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

impl ChatRequestJson {
    fn from_raw(raw: Value) -> Self {
        let messages = raw["messages"].as_array().map(|all| all.iter().map(RecordedMessage::from_raw).collect());
        Self { messages: messages.unwrap_or_default(), raw }
    }

    /// The names of the tools offered.
    pub fn tool_names(&self) -> Vec<&str> {
        let tools = self.raw["tools"].as_array().map(Vec::as_slice).unwrap_or_default();
        tools.iter().filter_map(|t| t["function"]["name"].as_str()).collect()
    }

    pub fn last_message(&self) -> Option<&RecordedMessage> {
        self.messages.last()
    }

    /// The text of the latest user message, if any.
    pub fn last_user_text(&self) -> Option<&str> {
        self.messages.iter().rev().find(|m| m.role == "user").map(RecordedMessage::text)
    }
}

impl RecordedMessage {
    fn from_raw(raw: &Value) -> Self {
        let text = |v: &Value| v.as_str().map(str::to_owned);
        // Content may also be an array of parts; their texts are joined.
        let content = match &raw["content"] {
            Value::Array(parts) => Some(parts.iter().filter_map(|p| p["text"].as_str()).collect::<String>()),
            other => text(other),
        };
        let calls = raw["tool_calls"].as_array().map(Vec::as_slice).unwrap_or_default();
        let tool_calls = calls
            .iter()
            .map(|c| RecordedToolCall {
                id: text(&c["id"]).unwrap_or_default(),
                name: text(&c["function"]["name"]).unwrap_or_default(),
                arguments: text(&c["function"]["arguments"]).unwrap_or_default(),
            })
            .collect();
        Self {
            role: text(&raw["role"]).unwrap_or_default(),
            content,
            tool_calls,
            tool_call_id: text(&raw["tool_call_id"]),
        }
    }

    /// The content, or `""` when there is none.
    pub fn text(&self) -> &str {
        self.content.as_deref().unwrap_or_default()
    }
}

type Responder = Arc<dyn Fn(&ChatRequestJson) -> Script + Send + Sync>;

struct Shared {
    api_key: String,
    scripts: Mutex<VecDeque<Script>>,
    responder: Mutex<Option<Responder>>,
    requests: Mutex<Vec<ChatRequestJson>>,
    aborted: AtomicUsize,
}

/// Locks a mutex of the fake, ignoring poisoning: a test that panicked elsewhere should
/// not turn every later assertion into a second panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The fake server. Stops serving new connections when dropped.
pub struct FakeOpenAi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FakeOpenAi {
    /// Starts on `127.0.0.1:0`, expecting [`DEFAULT_API_KEY`].
    pub async fn start() -> Self {
        Self::start_with_key(DEFAULT_API_KEY).await
    }

    /// Starts on `127.0.0.1:0`, expecting `Authorization: Bearer <api_key>`.
    pub async fn start_with_key(api_key: &str) -> Self {
        let shared = Arc::new(Shared {
            api_key: api_key.to_owned(),
            scripts: Mutex::new(VecDeque::new()),
            responder: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
            aborted: AtomicUsize::new(0),
        });
        let app = Router::new().route("/v1/chat/completions", post(chat_completions)).with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake OpenAI server");
        let addr = listener.local_addr().expect("local address of a bound listener");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, server }
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    /// A client configuration pointing at this fake (default model and timeouts).
    pub fn config(&self) -> OpenAiConfig {
        OpenAiConfig { base_url: self.base_url(), ..OpenAiConfig::new(self.api_key()) }
    }

    /// Queues the answer to a future request; queued scripts are used first, in order.
    pub fn push(&self, script: Script) {
        lock(&self.shared.scripts).push_back(script);
    }

    /// Answers requests that find the queue empty by calling `responder` with the request,
    /// so the fake can follow a whole conversation. Without one, they get an HTTP 500.
    pub fn respond_with(&self, responder: impl Fn(&ChatRequestJson) -> Script + Send + Sync + 'static) {
        *lock(&self.shared.responder) = Some(Arc::new(responder));
    }

    /// Every request received so far, in order (unauthorised ones included).
    pub fn requests(&self) -> Vec<ChatRequestJson> {
        lock(&self.shared.requests).clone()
    }

    /// Streams whose client went away before the fake had sent everything it was scripted to.
    pub fn aborted_streams(&self) -> usize {
        self.shared.aborted.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` streams were aborted by their client; false on timeout.
    pub async fn wait_for_aborted_streams(&self, count: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.aborted_streams() < count {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Counts a stream as aborted if dropped while still armed, i.e. before its last frame.
struct AbortGuard {
    shared: Arc<Shared>,
    armed: bool,
}

impl AbortGuard {
    /// The stream reached its scripted end: whatever the client does now is no abort.
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if self.armed {
            self.shared.aborted.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn error_response(status: StatusCode, message: &str, kind: &str) -> Response {
    let body = json!({ "error": { "message": message, "type": kind, "param": null, "code": null } });
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn chat_completions(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(raw) = serde_json::from_slice::<Value>(&body) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
        );
    };
    let request = ChatRequestJson::from_raw(raw);
    let number = {
        let mut requests = lock(&shared.requests);
        requests.push(request.clone());
        requests.len()
    };
    let expected = format!("Bearer {}", shared.api_key);
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return error_response(StatusCode::UNAUTHORIZED, "Incorrect API key provided.", "invalid_request_error");
    }
    let queued = lock(&shared.scripts).pop_front();
    let script = match queued {
        Some(script) => script,
        None => {
            let responder = lock(&shared.responder).clone();
            match responder {
                Some(responder) => responder(&request),
                None => {
                    return error_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "FakeOpenAi: no script queued for this request",
                        "server_error",
                    );
                }
            }
        }
    };
    let model = request.raw["model"].as_str().unwrap_or("gpt-4o-mini").to_owned();
    match script.reply {
        Reply::Status { status, ref message } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let kind = if status.is_server_error() { "server_error" } else { "invalid_request_error" };
            error_response(status, message, kind)
        }
        Reply::Stall => {
            let _guard = AbortGuard { shared, armed: true };
            std::future::pending::<Response>().await
        }
        Reply::Stream { ref text, .. } if request.raw["stream"].as_bool() != Some(true) => {
            plain_completion(text, number, &model, script.finish_reason.as_deref())
        }
        _ => {
            let frames = frames(&script, number, &model);
            sse_response(frames, AbortGuard { shared, armed: true })
        }
    }
}

/// A non-streaming request's answer: the scripted text as one `chat.completion`.
fn plain_completion(text: &str, request_number: usize, model: &str, finish_reason: Option<&str>) -> Response {
    let body = json!({
        "id": format!("chatcmpl-fake{request_number}"),
        "object": "chat.completion",
        "created": 1_741_570_283,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": text, "refusal": null },
            "logprobs": null,
            "finish_reason": finish_reason.unwrap_or("stop"),
        }],
        "usage": { "prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70 },
    });
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// One step of a scripted body.
enum Frame {
    Send { delay: Duration, bytes: Bytes },
    Stall,
    Drop,
}

fn sse_response(frames: Vec<Frame>, guard: AbortGuard) -> Response {
    let body = futures::stream::unfold((frames.into_iter(), guard), |(mut frames, mut guard)| async move {
        match frames.next() {
            None => {
                guard.disarm();
                None
            }
            Some(Frame::Send { delay, bytes }) => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Some((Ok(bytes), (frames, guard)))
            }
            Some(Frame::Stall) => {
                guard.disarm();
                std::future::pending().await
            }
            Some(Frame::Drop) => {
                // An error from the body makes hyper cut the connection without ending the
                // chunked encoding: the client sees a truncated response. Pausing first lets
                // hyper flush what was already written, as on a real link that breaks later.
                guard.disarm();
                tokio::time::sleep(Duration::from_millis(20)).await;
                Some((Err(io::Error::other("scripted connection drop")), (frames, guard)))
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The scripted body as timed frames, shaped like OpenAI's stream.
fn frames(script: &Script, request_number: usize, model: &str) -> Vec<Frame> {
    let gap = match script.tokens_per_second {
        0 => Duration::ZERO,
        rate => Duration::from_secs(1) / rate,
    };
    let mut events: Vec<String> = Vec::new();
    let mut finish = None;
    match &script.reply {
        Reply::Raw(body) => {
            return vec![Frame::Send { delay: script.first_token_delay, bytes: Bytes::from(body.clone()) }];
        }
        Reply::Stream { text, tool_calls } => {
            let chunk = |delta: Value, finish_reason: Option<&str>| {
                let chunk = json!({
                    "id": format!("chatcmpl-fake{request_number}"),
                    "object": "chat.completion.chunk",
                    "created": 1_741_570_283,
                    "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason }],
                });
                format!("data: {chunk}\n\n")
            };
            events.push(chunk(json!({ "role": "assistant", "content": "", "refusal": null }), None));
            let chars: Vec<char> = text.chars().collect();
            for piece in chars.chunks(script.chars_per_token) {
                events.push(chunk(json!({ "content": piece.iter().collect::<String>() }), None));
            }
            for (index, (name, arguments)) in tool_calls.iter().enumerate() {
                let id = format!("call_fake{request_number}x{index}");
                let first = json!({ "index": index, "id": id, "type": "function", "function": { "name": name, "arguments": "" } });
                events.push(chunk(json!({ "tool_calls": [first] }), None));
                let chars: Vec<char> = arguments.chars().collect();
                let mut start = 0;
                for size in AWKWARD_SPLITS.iter().cycle() {
                    if start >= chars.len() {
                        break;
                    }
                    let end = (start + size).min(chars.len());
                    let piece: String = chars[start..end].iter().collect();
                    events.push(chunk(
                        json!({ "tool_calls": [{ "index": index, "function": { "arguments": piece } }] }),
                        None,
                    ));
                    start = end;
                }
            }
            let default_reason = if tool_calls.is_empty() { "stop" } else { "tool_calls" };
            let reason = script.finish_reason.as_deref().unwrap_or(default_reason);
            finish = Some(chunk(json!({}), Some(reason)));
        }
        Reply::Status { .. } | Reply::Stall => {}
    }
    let mut frames = Vec::new();
    for (n, event) in events.into_iter().enumerate() {
        let delay = if n == 0 { script.first_token_delay } else { gap };
        frames.push(Frame::Send { delay, bytes: Bytes::from(event) });
        if script.garbage {
            frames.push(Frame::Send {
                delay: Duration::ZERO,
                bytes: Bytes::from_static(GARBAGE[n % GARBAGE.len()].as_bytes()),
            });
        }
    }
    match script.ending {
        Ending::Complete => {
            if let Some(finish) = finish {
                frames.push(Frame::Send { delay: gap, bytes: Bytes::from(finish) });
            }
            frames.push(Frame::Send { delay: Duration::ZERO, bytes: Bytes::from_static(b"data: [DONE]\n\n") });
        }
        Ending::Stall => frames.push(Frame::Stall),
        Ending::Drop => frames.push(Frame::Drop),
    }
    frames
}
