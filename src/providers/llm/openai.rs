//! `OpenAiLlm`: streaming chat completions with tools against any OpenAI-compatible server
//! (OpenAI, Groq, vLLM, Ollama, llama.cpp, OpenRouter). Owns the wire format of
//! `/chat/completions`; nothing outside this module sees vendor JSON.
//!
//! Written directly on reqwest rather than on `async-openai` 0.43, because that crate:
//! - turns a 4xx/5xx whose body is not OpenAI's JSON error object (a proxy's plain-text
//!   `401`, an HTML `429`) into a deserialisation error that has lost the status code, so
//!   retryable and fatal failures could not be told apart;
//! - deserialises chunks into strict types (`id`, `object`, `created`, `model` required),
//!   so a compatible server that omits a field would have its text skipped as "malformed";
//! - ends its stream the same way on `data: [DONE]` and on a connection closed early, so a
//!   truncated answer would pass for a complete one.
//!
//! Timeouts, cancellation and tolerance of malformed lines need the raw byte stream anyway,
//! and the SSE framing is a few dozen lines (`SseLines` below).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{ChatMessage, ChatRequest, LanguageModel, LlmEvent, Role, ToolCallRequest, ToolSpec};
use crate::providers::ProviderError;

const PROVIDER: &str = "openai";

/// OpenAI's own endpoint; any compatible server's `/v1` URL works in its place.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// Fast and cheap enough for a phone conversation, and good at tool calls.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";

/// Events buffered between the HTTP task and the consumer. Small: the consumer (the call
/// actor) reads as fast as text arrives, and back-pressure must not hide a dropped receiver.
const EVENT_BUFFER: usize = 64;
/// A single SSE line longer than this is not a chat chunk; refuse rather than grow forever.
const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;
/// How much of an error body or a malformed line makes it into messages and logs.
const EXCERPT_CHARS: usize = 300;

/// Settings of one OpenAI-compatible endpoint. `Debug` redacts the key.
#[derive(Clone)]
pub struct OpenAiConfig {
    pub api_key: String,
    /// Base URL up to and including the version, e.g. `https://api.openai.com/v1` or
    /// `http://127.0.0.1:8080/v1`; `/chat/completions` is appended.
    pub base_url: String,
    pub model: String,
    /// `None` leaves the server's default (some reasoning models reject any other value).
    pub temperature: Option<f32>,
    /// Upper bound on the reply's tokens; `None` leaves the server's default.
    pub max_tokens: Option<u32>,
    /// From sending the request to the first valid chunk (connecting included).
    pub first_token_timeout: Duration,
    /// Longest silence allowed between two reads once the first chunk has arrived.
    pub idle_timeout: Duration,
}

impl OpenAiConfig {
    /// Defaults suited to a phone call: OpenAI's endpoint, `gpt-4o-mini`, temperature 0.3,
    /// 300 tokens, 2 s to the first token and 5 s between chunks.
    pub fn new(api_key: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            model: DEFAULT_MODEL.to_owned(),
            temperature: Some(0.3),
            max_tokens: Some(300),
            first_token_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(5),
        }
    }

    /// The full URL of the chat-completions endpoint.
    pub fn endpoint(&self) -> String {
        format!("{}/chat/completions", self.base_url.trim_end_matches('/'))
    }
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("api_key", &"[redacted]")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("first_token_timeout", &self.first_token_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

/// A [`LanguageModel`] backed by an OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiLlm {
    config: Arc<OpenAiConfig>,
    http: reqwest::Client,
}

impl OpenAiLlm {
    /// Builds the HTTP client; fails only if the TLS backend cannot be initialised.
    pub fn new(config: OpenAiConfig) -> Result<Self, ProviderError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.first_token_timeout)
            .build()
            .map_err(|e| ProviderError::fatal(PROVIDER, format!("cannot build HTTP client: {e}")))?;
        Ok(Self { config: Arc::new(config), http })
    }

    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }
}

impl LanguageModel for OpenAiLlm {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn stream(&self, request: ChatRequest) -> mpsc::Receiver<LlmEvent> {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // The buffer is empty, so this send cannot fail for lack of room.
            let error = ProviderError::fatal(PROVIDER, "stream() was called outside a tokio runtime");
            let _ = tx.try_send(LlmEvent::Error(error));
            return rx;
        };
        let body = request_body(&self.config, &request);
        let config = Arc::clone(&self.config);
        let http = self.http.clone();
        runtime.spawn(async move {
            // Dropping the receiver (barge-in) drops `complete`, and with it the response:
            // the connection closes at once instead of at the next chunk.
            tokio::select! {
                () = tx.closed() => tracing::debug!(provider = PROVIDER, "receiver dropped; request aborted"),
                () = complete(&http, &config, &body, &tx) => {}
            }
        });
        rx
    }
}

/// Runs one request to its end, sending events as they come. Returns early when the
/// receiver is gone.
async fn complete(http: &reqwest::Client, config: &OpenAiConfig, body: &Value, tx: &mpsc::Sender<LlmEvent>) {
    let first_token_deadline = Instant::now() + config.first_token_timeout;
    let sent = http.post(config.endpoint()).bearer_auth(&config.api_key).json(body).send();
    let mut response = match tokio::time::timeout_at(first_token_deadline, sent).await {
        Err(_) => {
            let message = format!("no response within {:?}", config.first_token_timeout);
            let _ = tx.send(LlmEvent::Error(ProviderError::retryable(PROVIDER, message))).await;
            return;
        }
        Ok(Err(e)) => {
            let _ = tx.send(LlmEvent::Error(request_error(&e))).await;
            return;
        }
        Ok(Ok(response)) => response,
    };

    let status = response.status();
    if !status.is_success() {
        let body = read_error_body(&mut response, config.idle_timeout).await;
        let error = status_error(status.as_u16(), &body);
        tracing::warn!(provider = PROVIDER, status = status.as_u16(), error = %error, "chat completion refused");
        let _ = tx.send(LlmEvent::Error(error)).await;
        return;
    }

    let mut lines = SseLines::default();
    let mut stream = StreamAssembler::default();
    loop {
        let read = response.chunk();
        let read = if stream.has_valid_chunk() {
            tokio::time::timeout(config.idle_timeout, read).await
        } else {
            tokio::time::timeout_at(first_token_deadline, read).await
        };
        let events = match read {
            Err(_) => {
                let message = if stream.has_valid_chunk() {
                    format!("no data for {:?} in the middle of the stream", config.idle_timeout)
                } else {
                    format!("no first token within {:?}", config.first_token_timeout)
                };
                vec![LlmEvent::Error(ProviderError::retryable(PROVIDER, message))]
            }
            Ok(Err(e)) => {
                let message = format!("connection lost mid-stream: {e}");
                vec![LlmEvent::Error(ProviderError::retryable(PROVIDER, message))]
            }
            Ok(Ok(None)) => stream.on_end(),
            Ok(Ok(Some(bytes))) => match lines.push(&bytes) {
                Ok(data) => data.iter().flat_map(|payload| stream.on_data(payload)).collect(),
                Err(e) => vec![LlmEvent::Error(e)],
            },
        };
        let last = events.iter().any(|e| matches!(e, LlmEvent::Done { .. } | LlmEvent::Error(_)));
        for event in events {
            if let LlmEvent::Error(e) = &event {
                tracing::warn!(provider = PROVIDER, error = %e, "chat completion failed");
            }
            if tx.send(event).await.is_err() {
                return;
            }
        }
        if last {
            return;
        }
    }
}

/// Reads at most a few KiB of an error response, giving up after `within`.
async fn read_error_body(response: &mut reqwest::Response, within: Duration) -> String {
    let mut body = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() > 16 * 1024 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(within, read).await;
    String::from_utf8_lossy(&body).into_owned()
}

/// A failure before any response: a bad URL is a configuration error; anything on the
/// network (refused, reset, DNS, TLS handshake) may well pass on a second try.
fn request_error(e: &reqwest::Error) -> ProviderError {
    if e.is_builder() {
        ProviderError::fatal(PROVIDER, format!("invalid request: {e}"))
    } else {
        ProviderError::retryable(PROVIDER, format!("request failed: {e}"))
    }
}

/// Classifies an HTTP error status. Rate limits, timeouts and server errors are worth
/// retrying; other 4xx (bad key, bad request, unknown model) will fail the same way again.
fn status_error(status: u16, body: &str) -> ProviderError {
    let detail = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| excerpt(body.trim()));
    let message = if detail.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {detail}") };
    let retryable = matches!(status, 408 | 409 | 429) || status >= 500;
    ProviderError { provider: PROVIDER, message, retryable }
}

fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(EXCERPT_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// The JSON body of a streaming chat-completions request.
fn request_body(config: &OpenAiConfig, request: &ChatRequest) -> Value {
    let mut body = json!({
        "model": config.model,
        "messages": request.messages.iter().map(message_json).collect::<Vec<_>>(),
        "stream": true,
    });
    if let Some(temperature) = config.temperature {
        body["temperature"] = json!(temperature);
    }
    if let Some(max_tokens) = config.max_tokens {
        // `max_tokens` rather than the newer `max_completion_tokens`: every compatible
        // server understands it, and OpenAI still accepts it for the chat models.
        body["max_tokens"] = json!(max_tokens);
    }
    if !request.tools.is_empty() {
        // OpenAI rejects `tool_choice` and `parallel_tool_calls` when no tools are sent.
        body["tools"] = request.tools.iter().map(tool_json).collect();
        body["tool_choice"] = json!("auto");
        body["parallel_tool_calls"] = json!(false);
    }
    body
}

fn tool_json(tool: &ToolSpec) -> Value {
    json!({
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    })
}

fn message_json(message: &ChatMessage) -> Value {
    let text = || message.content.clone().unwrap_or_default();
    match message.role {
        Role::System => json!({ "role": "system", "content": text() }),
        Role::User => json!({ "role": "user", "content": text() }),
        Role::Assistant => {
            let mut out = json!({ "role": "assistant", "content": message.content });
            if !message.tool_calls.is_empty() {
                out["tool_calls"] = message
                    .tool_calls
                    .iter()
                    .map(|call| {
                        json!({
                            "id": call.id,
                            "type": "function",
                            "function": { "name": call.name, "arguments": call.arguments },
                        })
                    })
                    .collect();
            }
            out
        }
        Role::Tool => json!({
            "role": "tool",
            "tool_call_id": message.tool_call_id.clone().unwrap_or_default(),
            "content": text(),
        }),
    }
}

/// Splits a byte stream into the `data` payloads of server-sent events. Bytes may arrive
/// cut anywhere (mid-line, mid-UTF-8 character); only whole lines are decoded.
#[derive(Debug, Default)]
struct SseLines {
    pending: Vec<u8>,
    data: Vec<String>,
}

impl SseLines {
    /// Feeds bytes; returns the payloads of the events they complete.
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<String>, ProviderError> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(offset) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + offset;
            let line = self.pending[start..end].strip_suffix(b"\r").unwrap_or(&self.pending[start..end]);
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            self.line(&line, &mut events);
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_LINE_BYTES {
            return Err(ProviderError::fatal(PROVIDER, "an SSE line exceeded 4 MiB; not a chat stream"));
        }
        Ok(events)
    }

    fn line(&mut self, line: &str, events: &mut Vec<String>) {
        if line.is_empty() {
            if !self.data.is_empty() {
                events.push(self.data.join("\n"));
                self.data.clear();
            }
        } else if let Some(value) = line.strip_prefix("data:") {
            self.data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
        } else if !line.starts_with(':')
            && !line.starts_with("event:")
            && !line.starts_with("id:")
            && !line.starts_with("retry:")
        {
            tracing::debug!(provider = PROVIDER, line = %excerpt(line), "skipping a line that is not SSE");
        }
    }
}

/// The subset of a `chat.completion.chunk` this client reads, with every field optional:
/// compatible servers differ in what they include.
#[derive(Debug, Deserialize)]
struct ChunkJson {
    #[serde(default)]
    choices: Option<Vec<ChoiceJson>>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ChoiceJson {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    delta: Option<DeltaJson>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DeltaJson {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallDeltaJson>>,
}

#[derive(Debug, Deserialize)]
struct ToolCallDeltaJson {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDeltaJson>,
}

#[derive(Debug, Deserialize)]
struct FunctionDeltaJson {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// Turns the `data` payloads of one completion into [`LlmEvent`]s: text at once, tool calls
/// once complete, then `Done` — or a single `Error`. Pure, so it is tested on real chunks.
#[derive(Debug, Default)]
struct StreamAssembler {
    tool_calls: ToolCallAssembler,
    finish_reason: Option<String>,
    valid: usize,
    malformed: usize,
    first_malformed: Option<String>,
    finished: bool,
}

impl StreamAssembler {
    fn has_valid_chunk(&self) -> bool {
        self.valid > 0
    }

    /// Handles one event payload. After `Done` or `Error` it returns nothing more.
    fn on_data(&mut self, payload: &str) -> Vec<LlmEvent> {
        if self.finished {
            return Vec::new();
        }
        if payload.trim() == "[DONE]" {
            return self.finish();
        }
        match serde_json::from_str::<ChunkJson>(payload) {
            Ok(chunk) => self.on_chunk(chunk),
            // Events that joined several `data:` lines (a server that forgot a blank line):
            // salvage the lines that parse on their own.
            Err(_) if payload.contains('\n') => payload.lines().flat_map(|line| self.on_data(line)).collect(),
            Err(e) => {
                self.malformed += 1;
                if self.first_malformed.is_none() {
                    self.first_malformed = Some(excerpt(payload));
                }
                tracing::warn!(provider = PROVIDER, line = %excerpt(payload), error = %e, "skipping a malformed chunk");
                Vec::new()
            }
        }
    }

    fn on_chunk(&mut self, chunk: ChunkJson) -> Vec<LlmEvent> {
        if let Some(error) = chunk.error {
            // Some routers report an upstream failure inside an otherwise healthy stream.
            self.finished = true;
            let message = error.get("message").and_then(Value::as_str).map_or_else(|| error.to_string(), str::to_owned);
            let message = format!("error in stream: {}", excerpt(&message));
            return vec![LlmEvent::Error(ProviderError::retryable(PROVIDER, message))];
        }
        self.valid += 1;
        let mut events = Vec::new();
        // n = 1 is always requested; a server that sends more choices has only the first read.
        let choice = chunk.choices.unwrap_or_default().into_iter().find(|c| c.index.unwrap_or(0) == 0);
        let Some(choice) = choice else { return events };
        if let Some(delta) = choice.delta {
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                events.push(LlmEvent::Delta(text));
            }
            for fragment in delta.tool_calls.unwrap_or_default() {
                let (name, arguments) = fragment.function.map_or((None, None), |f| (f.name, f.arguments));
                self.tool_calls.push(ToolCallFragment { index: fragment.index, id: fragment.id, name, arguments });
            }
        }
        if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
            if reason == "tool_calls" {
                events.extend(self.tool_calls.take().into_iter().map(LlmEvent::ToolCall));
            }
            self.finish_reason = Some(reason);
        }
        events
    }

    /// The body ended without `[DONE]`.
    fn on_end(&mut self) -> Vec<LlmEvent> {
        if self.finished {
            return Vec::new();
        }
        if self.finish_reason.is_some() {
            // A finish reason arrived; only the `[DONE]` marker is missing (some servers
            // omit it), so the answer is complete.
            return self.finish();
        }
        self.finished = true;
        let error = match &self.first_malformed {
            Some(line) if self.valid == 0 => ProviderError::fatal(
                PROVIDER,
                format!("no valid chunk in the response ({} malformed, first: {line})", self.malformed),
            ),
            _ => ProviderError::retryable(PROVIDER, "the stream ended before the completion finished"),
        };
        vec![LlmEvent::Error(error)]
    }

    fn finish(&mut self) -> Vec<LlmEvent> {
        self.finished = true;
        let calls = self.tool_calls.take();
        let finish_reason = match self.finish_reason.take() {
            Some(reason) => reason,
            None if calls.is_empty() => "stop".to_owned(),
            None => "tool_calls".to_owned(),
        };
        let mut events: Vec<LlmEvent> = calls.into_iter().map(LlmEvent::ToolCall).collect();
        events.push(LlmEvent::Done { finish_reason });
        events
    }
}

/// One streamed piece of a tool call, as found in `choices[0].delta.tool_calls[]`.
#[derive(Debug, Clone, Default, PartialEq)]
struct ToolCallFragment {
    index: Option<u32>,
    id: Option<String>,
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Debug)]
struct PartialCall {
    index: Option<u32>,
    id: String,
    name: String,
    arguments: String,
}

/// Concatenates tool-call fragments by `index`: the first fragment of a call carries its id
/// and name, later ones only pieces of the arguments.
#[derive(Debug, Default)]
struct ToolCallAssembler {
    calls: Vec<PartialCall>,
}

impl ToolCallAssembler {
    fn push(&mut self, fragment: ToolCallFragment) {
        let id = fragment.id.filter(|id| !id.is_empty());
        let position = match fragment.index {
            Some(index) => self.calls.iter().rposition(|c| c.index == Some(index)),
            None => self.calls.len().checked_sub(1),
        };
        // A different id under a known index is a new call: some servers number every
        // call 0, or omit the index altogether.
        let position = position.filter(|&p| match &id {
            Some(id) => self.calls[p].id.is_empty() || self.calls[p].id == *id,
            None => true,
        });
        let position = position.unwrap_or_else(|| {
            self.calls.push(PartialCall {
                index: fragment.index,
                id: String::new(),
                name: String::new(),
                arguments: String::new(),
            });
            self.calls.len() - 1
        });
        let call = &mut self.calls[position];
        if let Some(id) = id {
            call.id = id;
        }
        if let Some(name) = fragment.name.filter(|n| !n.is_empty()) {
            // Names are not streamed in pieces; a server that repeats it must not double it.
            if call.name.is_empty() {
                call.name = name;
            }
        }
        if let Some(arguments) = fragment.arguments {
            call.arguments.push_str(&arguments);
        }
    }

    /// Takes the calls assembled so far, in the order they began.
    fn take(&mut self) -> Vec<ToolCallRequest> {
        self.calls
            .drain(..)
            .enumerate()
            .filter_map(|(n, call)| {
                if call.name.is_empty() {
                    tracing::warn!(provider = PROVIDER, id = %call.id, "dropping a tool call without a name");
                    return None;
                }
                let id = if call.id.is_empty() { format!("call_{n}") } else { call.id };
                // A tool without parameters may get no arguments at all; `{}` is what
                // servers accept back in the history.
                let arguments = if call.arguments.trim().is_empty() { "{}".to_owned() } else { call.arguments };
                Some(ToolCallRequest { id, name: call.name, arguments })
            })
            .collect()
    }
}

/// Parses a tool call's arguments, or explains to the model what was wrong so that it can
/// correct itself; the caller sends the message back as the tool's result.
pub fn parse_arguments<T: DeserializeOwned>(call: &ToolCallRequest) -> Result<T, String> {
    parse_with_hint(call, "a JSON object with the parameters of the tool's schema")
}

/// Like [`parse_arguments`], with an example of the expected object built from the tool's
/// schema in the message, e.g. `expected {"date": "YYYY-MM-DD", "service": "<string>"}`.
pub fn parse_arguments_for<T: DeserializeOwned>(call: &ToolCallRequest, tool: &ToolSpec) -> Result<T, String> {
    parse_with_hint(call, &schema_example(&tool.parameters).to_string())
}

fn parse_with_hint<T: DeserializeOwned>(call: &ToolCallRequest, expected: &str) -> Result<T, String> {
    let raw = if call.arguments.trim().is_empty() { "{}" } else { call.arguments.as_str() };
    let first = match serde_json::from_str::<T>(raw) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    // Models sometimes encode the object twice: "{\"date\": ...}".
    if let Ok(Value::String(inner)) = serde_json::from_str::<Value>(raw)
        && let Ok(value) = serde_json::from_str::<T>(&inner)
    {
        return Ok(value);
    }
    let name = &call.name;
    Err(match first.classify() {
        serde_json::error::Category::Data => {
            format!("arguments of {name} did not match its parameters: {first}; expected {expected}")
        }
        _ => format!("arguments of {name} were not valid JSON: {first}; expected {expected}"),
    })
}

/// A compact example value for a JSON Schema: property names with placeholders.
fn schema_example(schema: &Value) -> Value {
    if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|v| v.first()) {
        return first.clone();
    }
    let kind = match schema.get("type") {
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).find(|k| *k != "null"),
        Some(kind) => kind.as_str(),
        None => schema.get("properties").map(|_| "object"),
    };
    match kind {
        Some("object") => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let fields = properties.into_iter().flatten().map(|(k, v)| (k.clone(), schema_example(v)));
            Value::Object(fields.collect())
        }
        Some("array") => json!([schema.get("items").map_or(Value::Null, schema_example)]),
        Some("string") => {
            let format = schema.get("format").and_then(Value::as_str);
            json!(match format {
                Some("date") => "YYYY-MM-DD",
                Some("time") => "HH:MM",
                Some("date-time") => "YYYY-MM-DDTHH:MM:SS",
                _ => "<string>",
            })
        }
        Some("integer") => json!(0),
        Some("number") => json!(0.0),
        Some("boolean") => json!(false),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk as OpenAI sends it, with the given delta and finish reason.
    fn chunk(delta: Value, finish_reason: Option<&str>) -> String {
        json!({
            "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
            "object": "chat.completion.chunk",
            "created": 1_741_570_283,
            "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_06737a9306",
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason }],
        })
        .to_string()
    }

    fn first_fragment(index: u32, id: &str, name: &str) -> String {
        let call =
            json!({ "index": index, "id": id, "type": "function", "function": { "name": name, "arguments": "" } });
        chunk(json!({ "role": "assistant", "content": null, "tool_calls": [call] }), None)
    }

    fn arguments_fragment(index: u32, arguments: &str) -> String {
        chunk(json!({ "tool_calls": [{ "index": index, "function": { "arguments": arguments } }] }), None)
    }

    fn run(payloads: &[String]) -> Vec<LlmEvent> {
        let mut stream = StreamAssembler::default();
        let mut events: Vec<LlmEvent> = payloads.iter().flat_map(|p| stream.on_data(p)).collect();
        events.extend(stream.on_end());
        events
    }

    fn call(id: &str, name: &str, arguments: &str) -> LlmEvent {
        LlmEvent::ToolCall(ToolCallRequest { id: id.into(), name: name.into(), arguments: arguments.into() })
    }

    fn done(reason: &str) -> LlmEvent {
        LlmEvent::Done { finish_reason: reason.into() }
    }

    #[test]
    fn text_deltas_are_emitted_one_per_chunk_then_done() {
        let events = run(&[
            chunk(json!({ "role": "assistant", "content": "", "refusal": null }), None),
            chunk(json!({ "content": "Hello" }), None),
            chunk(json!({ "content": "! How can I help?" }), None),
            chunk(json!({}), Some("stop")),
            "[DONE]".into(),
        ]);
        assert_eq!(
            events,
            vec![LlmEvent::Delta("Hello".into()), LlmEvent::Delta("! How can I help?".into()), done("stop")]
        );
    }

    #[test]
    fn a_tool_call_split_mid_token_is_assembled_from_its_fragments() {
        let events = run(&[
            first_fragment(0, "call_DdmO9pD3xa9XTPNJ32zg2hcA", "check_availability"),
            arguments_fragment(0, "{\""),
            arguments_fragment(0, "da"),
            arguments_fragment(0, "te\":\"2025-"),
            arguments_fragment(0, "03-14\",\"serv"),
            arguments_fragment(0, "ice\":\"Haircut \\\"dél"),
            arguments_fragment(0, "uxe\\\"\"}"),
            chunk(json!({}), Some("tool_calls")),
            "[DONE]".into(),
        ]);
        let arguments = r#"{"date":"2025-03-14","service":"Haircut \"déluxe\""}"#;
        assert_eq!(
            events,
            vec![call("call_DdmO9pD3xa9XTPNJ32zg2hcA", "check_availability", arguments), done("tool_calls")]
        );
        let LlmEvent::ToolCall(request) = &events[0] else { unreachable!() };
        let parsed: Value = parse_arguments(request).unwrap();
        assert_eq!(parsed["service"], "Haircut \"déluxe\"");
    }

    #[test]
    fn two_calls_with_index_zero_and_one_are_kept_apart_in_order() {
        let events = run(&[
            first_fragment(0, "call_a", "check_availability"),
            arguments_fragment(0, "{\"date\":"),
            arguments_fragment(0, "\"2025-03-14\"}"),
            first_fragment(1, "call_b", "lookup_customer"),
            arguments_fragment(1, "{\"phone\":\"+1555"),
            arguments_fragment(1, "0100\"}"),
            chunk(json!({}), Some("tool_calls")),
            "[DONE]".into(),
        ]);
        assert_eq!(
            events,
            vec![
                call("call_a", "check_availability", r#"{"date":"2025-03-14"}"#),
                call("call_b", "lookup_customer", r#"{"phone":"+15550100"}"#),
                done("tool_calls"),
            ]
        );
    }

    #[test]
    fn content_interleaved_with_tool_fragments_streams_at_once_and_calls_come_at_the_finish() {
        let mut stream = StreamAssembler::default();
        assert_eq!(
            stream.on_data(&chunk(json!({ "content": "Let me check" }), None)),
            vec![LlmEvent::Delta("Let me check".into())]
        );
        assert_eq!(stream.on_data(&first_fragment(0, "call_x", "check_availability")), vec![]);
        let mixed = chunk(
            json!({ "content": " that.", "tool_calls": [{ "index": 0, "function": { "arguments": "{\"date\"" } }] }),
            None,
        );
        assert_eq!(stream.on_data(&mixed), vec![LlmEvent::Delta(" that.".into())]);
        assert_eq!(stream.on_data(&arguments_fragment(0, ":\"2025-03-14\"}")), vec![]);
        assert_eq!(
            stream.on_data(&chunk(json!({}), Some("tool_calls"))),
            vec![call("call_x", "check_availability", r#"{"date":"2025-03-14"}"#)]
        );
        assert_eq!(stream.on_data("[DONE]"), vec![done("tool_calls")]);
        assert_eq!(stream.on_end(), vec![]);
    }

    #[test]
    fn tool_calls_finished_with_stop_are_still_emitted_before_done() {
        let events = run(&[
            first_fragment(0, "call_1", "end_call"),
            arguments_fragment(0, "{}"),
            chunk(json!({}), Some("stop")),
            "[DONE]".into(),
        ]);
        assert_eq!(events, vec![call("call_1", "end_call", "{}"), done("stop")]);
    }

    #[test]
    fn a_call_without_arguments_gets_an_empty_object_and_a_call_without_id_gets_one() {
        let mut assembler = ToolCallAssembler::default();
        assembler.push(ToolCallFragment { index: Some(0), id: None, name: Some("end_call".into()), arguments: None });
        assert_eq!(
            assembler.take(),
            vec![ToolCallRequest { id: "call_0".into(), name: "end_call".into(), arguments: "{}".into() }]
        );
    }

    #[test]
    fn calls_that_share_index_zero_but_differ_in_id_are_two_calls() {
        let mut assembler = ToolCallAssembler::default();
        for (id, name, arguments) in [("a", "one", "{\"x\":1}"), ("b", "two", "{\"y\":2}")] {
            assembler.push(ToolCallFragment {
                index: Some(0),
                id: Some(id.into()),
                name: Some(name.into()),
                arguments: Some(arguments.into()),
            });
        }
        let names: Vec<_> = assembler.take().into_iter().map(|c| (c.id, c.name, c.arguments)).collect();
        assert_eq!(
            names,
            vec![("a".into(), "one".into(), "{\"x\":1}".into()), ("b".into(), "two".into(), "{\"y\":2}".into())]
        );
    }

    #[test]
    fn a_repeated_id_and_name_on_every_fragment_are_not_doubled() {
        let mut assembler = ToolCallAssembler::default();
        for piece in ["{\"a\":", "1}"] {
            assembler.push(ToolCallFragment {
                index: Some(0),
                id: Some("c".into()),
                name: Some("f".into()),
                arguments: Some(piece.into()),
            });
        }
        assert_eq!(
            assembler.take(),
            vec![ToolCallRequest { id: "c".into(), name: "f".into(), arguments: "{\"a\":1}".into() }]
        );
    }

    #[test]
    fn malformed_chunks_are_skipped_between_valid_ones() {
        let events = run(&[
            chunk(json!({ "content": "Hi" }), None),
            "{\"id\": broken".into(),
            "not json at all".into(),
            chunk(json!({ "content": " there" }), None),
            chunk(json!({}), Some("stop")),
            "[DONE]".into(),
        ]);
        assert_eq!(events, vec![LlmEvent::Delta("Hi".into()), LlmEvent::Delta(" there".into()), done("stop")]);
    }

    #[test]
    fn a_stream_of_nothing_but_garbage_is_a_fatal_error() {
        let events = run(&["<html>".into(), "oops".into()]);
        assert!(matches!(&events[..], [LlmEvent::Error(e)] if !e.retryable && e.message.contains("no valid chunk")));
    }

    #[test]
    fn a_stream_cut_before_its_finish_is_a_retryable_error_and_drops_partial_calls() {
        let events = run(&[first_fragment(0, "call_1", "book"), arguments_fragment(0, "{\"da")]);
        assert!(matches!(&events[..], [LlmEvent::Error(e)] if e.retryable));
    }

    #[test]
    fn a_missing_done_marker_after_a_finish_reason_still_completes() {
        let events = run(&[chunk(json!({ "content": "Bye" }), None), chunk(json!({}), Some("length"))]);
        assert_eq!(events, vec![LlmEvent::Delta("Bye".into()), done("length")]);
    }

    #[test]
    fn an_error_object_inside_the_stream_ends_it_with_a_retryable_error() {
        let events = run(&[
            chunk(json!({ "content": "Hi" }), None),
            json!({ "error": { "message": "upstream overloaded", "code": 502 } }).to_string(),
            chunk(json!({ "content": "ignored" }), None),
        ]);
        assert_eq!(events.len(), 2);
        assert!(matches!(&events[1], LlmEvent::Error(e) if e.retryable && e.message.contains("upstream overloaded")));
    }

    #[test]
    fn sse_lines_cut_anywhere_yield_whole_events() {
        let text = "data: {\"a\":\"é\"}\r\n\r\n: keep-alive\n\nevent: x\ndata: [DONE]\n\n";
        let bytes = text.as_bytes();
        for cut in 1..bytes.len() {
            let mut lines = SseLines::default();
            let mut events = lines.push(&bytes[..cut]).unwrap();
            events.extend(lines.push(&bytes[cut..]).unwrap());
            assert_eq!(events, vec!["{\"a\":\"é\"}".to_owned(), "[DONE]".to_owned()], "cut at {cut}");
        }
    }

    #[test]
    fn sse_data_lines_of_one_event_are_joined_and_salvaged_line_by_line() {
        let mut lines = SseLines::default();
        let valid = chunk(json!({ "content": "ok" }), None);
        let events = lines.push(format!("data: garbage\ndata: {valid}\n\n").as_bytes()).unwrap();
        assert_eq!(events.len(), 1);
        let mut stream = StreamAssembler::default();
        assert_eq!(stream.on_data(&events[0]), vec![LlmEvent::Delta("ok".into())]);
    }

    #[test]
    fn the_request_carries_stream_tools_auto_choice_and_no_parallel_calls() {
        let mut config = OpenAiConfig::new("k");
        config.max_tokens = Some(123);
        config.temperature = None;
        let request = ChatRequest {
            messages: vec![ChatMessage::system("Be brief."), ChatMessage::user("Book me")],
            tools: vec![ToolSpec {
                name: "check_availability".into(),
                description: "Free slots".into(),
                parameters: json!({ "type": "object" }),
            }],
        };
        let body = request_body(&config, &request);
        assert_eq!(body["model"], DEFAULT_MODEL);
        assert_eq!(body["stream"], true);
        assert_eq!(body["max_tokens"], 123);
        assert!(body.get("temperature").is_none());
        assert_eq!(body["tool_choice"], "auto");
        assert_eq!(body["parallel_tool_calls"], false);
        assert_eq!(
            body["tools"][0],
            json!({ "type": "function", "function": { "name": "check_availability", "description": "Free slots", "parameters": { "type": "object" } } })
        );
        assert_eq!(body["messages"][1], json!({ "role": "user", "content": "Book me" }));
    }

    #[test]
    fn a_request_without_tools_sends_no_tool_fields() {
        let body = request_body(
            &OpenAiConfig::new("k"),
            &ChatRequest { messages: vec![ChatMessage::user("hi")], tools: vec![] },
        );
        for field in ["tools", "tool_choice", "parallel_tool_calls"] {
            assert!(body.get(field).is_none(), "{field} was sent");
        }
    }

    #[test]
    fn assistant_tool_calls_and_tool_results_map_to_the_wire_shape() {
        let mut assistant = ChatMessage::assistant("");
        assistant.content = None;
        assistant.tool_calls =
            vec![ToolCallRequest { id: "call_1".into(), name: "f".into(), arguments: "{\"a\":1}".into() }];
        assert_eq!(
            message_json(&assistant),
            json!({ "role": "assistant", "content": null, "tool_calls": [{ "id": "call_1", "type": "function", "function": { "name": "f", "arguments": "{\"a\":1}" } }] })
        );
        assert_eq!(
            message_json(&ChatMessage::tool_result("call_1", "[]")),
            json!({ "role": "tool", "tool_call_id": "call_1", "content": "[]" })
        );
    }

    #[test]
    fn status_codes_are_classified_by_whether_a_retry_can_help() {
        for (status, retryable) in
            [(400, false), (401, false), (403, false), (404, false), (408, true), (429, true), (500, true), (503, true)]
        {
            assert_eq!(status_error(status, "").retryable, retryable, "HTTP {status}");
        }
        let error =
            status_error(401, r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#);
        assert_eq!(error.message, "HTTP 401: Incorrect API key provided");
        assert_eq!(status_error(429, "Too Many Requests\n").message, "HTTP 429: Too Many Requests");
    }

    #[test]
    fn the_config_debug_output_hides_the_key() {
        let debug = format!("{:?}", OpenAiConfig::new("sk-secret"));
        assert!(!debug.contains("sk-secret"));
        assert_eq!(
            OpenAiConfig { base_url: "http://x/v1/".into(), ..OpenAiConfig::new("k") }.endpoint(),
            "http://x/v1/chat/completions"
        );
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Availability {
        date: String,
    }

    fn request_with(arguments: &str) -> ToolCallRequest {
        ToolCallRequest { id: "c".into(), name: "check_availability".into(), arguments: arguments.into() }
    }

    #[test]
    fn invalid_json_arguments_get_a_message_with_the_expected_shape() {
        let tool = ToolSpec {
            name: "check_availability".into(),
            description: String::new(),
            parameters: json!({ "type": "object", "properties": { "date": { "type": "string", "format": "date" }, "party": { "type": "integer" } }, "required": ["date"] }),
        };
        let error = parse_arguments_for::<Availability>(&request_with("{\"date\": \"2025-"), &tool).unwrap_err();
        assert!(error.starts_with("arguments of check_availability were not valid JSON: EOF"), "{error}");
        assert!(error.ends_with(r#"expected {"date":"YYYY-MM-DD","party":0}"#), "{error}");
    }

    #[test]
    fn arguments_of_the_wrong_shape_name_the_missing_field() {
        let error = parse_arguments::<Availability>(&request_with("{\"day\": \"friday\"}")).unwrap_err();
        assert!(error.contains("did not match its parameters: missing field `date`"), "{error}");
    }

    #[test]
    fn arguments_encoded_twice_are_still_understood() {
        let parsed: Availability = parse_arguments(&request_with(r#""{\"date\":\"2025-03-14\"}""#)).unwrap();
        assert_eq!(parsed, Availability { date: "2025-03-14".into() });
    }
}
