//! Language models behind a small trait: a chat request with tools goes in, a stream of
//! text deltas and assembled tool calls comes out. The booking rules never live here: the
//! model reaches them through tools that the call actor runs.

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::providers::ProviderError;

pub mod openai;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// A tool call the model asked for, with its arguments as the raw JSON text it produced
/// (possibly invalid: the caller validates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRequest {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// One message of the conversation history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    /// Text; `None` for an assistant message that only calls tools.
    pub content: Option<String>,
    /// Tool calls of an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallRequest>,
    /// The call a `Role::Tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn system(text: impl Into<String>) -> Self {
        Self { role: Role::System, content: Some(text.into()), tool_calls: Vec::new(), tool_call_id: None }
    }
    pub fn user(text: impl Into<String>) -> Self {
        Self { role: Role::User, content: Some(text.into()), tool_calls: Vec::new(), tool_call_id: None }
    }
    pub fn assistant(text: impl Into<String>) -> Self {
        Self { role: Role::Assistant, content: Some(text.into()), tool_calls: Vec::new(), tool_call_id: None }
    }
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: Role::Tool,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: Some(call_id.into()),
        }
    }
}

/// A tool the model may call: a name, what it does, and a JSON Schema of its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

/// One request: the whole history plus the tools on offer.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<ToolSpec>,
}

/// What a streaming completion reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmEvent {
    /// A piece of the reply's text, as soon as it arrives.
    Delta(String),
    /// A complete tool call (fragments already assembled by index).
    ToolCall(ToolCallRequest),
    /// The completion ended: `stop`, `tool_calls`, `length`, `content_filter`.
    Done { finish_reason: String },
    /// The request failed; the stream is over.
    Error(ProviderError),
}

/// A chat-completions engine. `stream` returns at once; events arrive on the receiver.
/// Dropping the receiver aborts the request (barge-in).
pub trait LanguageModel: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn stream(&self, request: ChatRequest) -> mpsc::Receiver<LlmEvent>;
}
