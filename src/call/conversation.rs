//! The language model's side of a call: its system prompt and the message history, kept
//! true to what the caller actually heard (an interrupted reply is trimmed to its heard part).

use chrono::{DateTime, Utc};
use minijinja::context;
use serde::{Deserialize, Serialize};

use crate::dialogue::phrasing::SpokenHours;
use crate::dialogue::prompts::Prompts;
use crate::dialogue::tools;
use crate::domain::language::Language;
use crate::domain::scheduling::Calendar;
use crate::providers::llm::{ChatMessage, ChatRequest, Role, ToolCallRequest};
use crate::storage::postgres::tenants::Tenant;

/// The history sent to the model (the system prompt is rendered per request, so the
/// persona follows a language switch).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LlmConversation {
    pub history: Vec<ChatMessage>,
}

impl LlmConversation {
    /// A request for the next reply.
    pub fn request(&self, system: String) -> ChatRequest {
        let mut messages = Vec::with_capacity(self.history.len() + 1);
        messages.push(ChatMessage::system(system));
        messages.extend(self.history.iter().cloned());
        ChatRequest { messages, tools: tools::specs() }
    }

    pub fn push_user(&mut self, text: &str) {
        self.history.push(ChatMessage::user(text));
    }

    /// The assistant's finished text reply.
    pub fn push_assistant(&mut self, text: &str) {
        if !text.trim().is_empty() {
            self.history.push(ChatMessage::assistant(text.trim()));
        }
    }

    /// An assistant message that called tools (with whatever it said first).
    pub fn push_tool_calls(&mut self, text: &str, calls: &[ToolCallRequest]) {
        self.history.push(ChatMessage {
            role: Role::Assistant,
            content: Some(text.trim().to_owned()).filter(|t| !t.is_empty()),
            tool_calls: calls.to_vec(),
            tool_call_id: None,
        });
    }

    pub fn push_tool_result(&mut self, call_id: &str, result: &str) {
        self.history.push(ChatMessage::tool_result(call_id, result));
    }

    /// Barge-in: the reply being spoken is replaced by what the caller heard of it, so the
    /// model never believes it said what was cut off. `spoken` is the reply's text so far;
    /// it is added when the reply had not been recorded yet.
    pub fn trim_interrupted(&mut self, spoken: &str, heard: &str) {
        let heard = heard.trim();
        let marker = if heard.is_empty() { String::new() } else { format!("{heard} —") };
        let last_is_this_reply = self.history.last().is_some_and(|m| {
            m.role == Role::Assistant && m.tool_calls.is_empty() && m.content.as_deref() == Some(spoken.trim())
        });
        if last_is_this_reply {
            if marker.is_empty() {
                self.history.pop();
            } else if let Some(last) = self.history.last_mut() {
                last.content = Some(marker);
            }
        } else if !marker.is_empty() {
            self.history.push(ChatMessage::assistant(marker));
        }
    }
}

/// The facts the system prompt is rendered with.
pub fn system_prompt(
    prompts: &Prompts,
    lang: Language,
    tenant: &Tenant,
    calendar: &Calendar,
    now: DateTime<Utc>,
    caller: &str,
) -> String {
    let local = now.with_timezone(&calendar.tz);
    let (today, time) = match lang {
        Language::English => (local.format("%A, %B %-d, %Y").to_string(), local.format("%-I:%M %p").to_string()),
        Language::Spanish => (local.format("%Y-%m-%d").to_string(), local.format("%H:%M").to_string()),
    };
    prompts.system(
        lang,
        &context! {
            business_name => &tenant.business_name,
            description => &tenant.business_description,
            services => &tenant.services,
            hours => calendar.hours.describe_in(lang),
            timezone => tenant.timezone.name(),
            today => today,
            now => time,
            caller_phone => caller,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_reply_keeps_only_what_was_heard() {
        let mut c = LlmConversation::default();
        c.push_user("hi");
        c.push_assistant("I have Tuesday at 9, Wednesday at 2, or Friday at 4. Which works?");
        c.trim_interrupted("I have Tuesday at 9, Wednesday at 2, or Friday at 4. Which works?", "I have Tuesday at 9,");
        assert_eq!(c.history.last().unwrap().content.as_deref(), Some("I have Tuesday at 9, —"));
        assert_eq!(c.history.len(), 2);
    }

    #[test]
    fn a_reply_cut_before_it_was_recorded_is_added_as_heard() {
        let mut c = LlmConversation::default();
        c.push_user("hi");
        c.trim_interrupted("Sure, let me", "Sure,");
        assert_eq!(c.history.last().unwrap().content.as_deref(), Some("Sure, —"));
    }

    #[test]
    fn a_reply_nobody_heard_disappears() {
        let mut c = LlmConversation::default();
        c.push_user("hi");
        c.push_assistant("Hello there.");
        c.trim_interrupted("Hello there.", "");
        assert_eq!(c.history.len(), 1);
    }

    #[test]
    fn requests_start_with_the_system_prompt_and_offer_the_tools() {
        let mut c = LlmConversation::default();
        c.push_user("hi");
        let req = c.request("You are Rachel.".into());
        assert_eq!(req.messages[0].role, Role::System);
        assert_eq!(req.messages.len(), 2);
        assert!(req.tools.iter().any(|t| t.name == "book_appointment"));
    }
}
