//! The language model's replies: streamed into the voice clause by clause, started early on
//! a stable pause (and held until the final transcript confirms the words), tools run
//! between rounds, and the local engine answering whenever the model fails or is too slow.

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{CallActor, CallerTiming};
use crate::call::conversation;
use crate::dialogue::phrasing::SpokenHours;
use crate::dialogue::policy::{Outcome, ToolCall, ToolResult};
use crate::dialogue::tools::{self, ModelTool};
use crate::providers::ProviderError;
use crate::providers::llm::{ChatMessage, LlmEvent, ToolCallRequest};
use crate::providers::tts::sentences::split_sentences;
use crate::services::booking::{self, BookingError};

/// A reply the language model is producing.
pub(super) struct LlmReply {
    events: mpsc::Receiver<LlmEvent>,
    /// Text of this reply not yet handed to the voice (an incomplete clause).
    unsent: String,
    /// All text of this reply, across tool rounds.
    pub(super) text: String,
    calls: Vec<ToolCallRequest>,
    rounds: u32,
    timing: Option<CallerTiming>,
    /// Started early on an interim transcript: events are held until the final transcript
    /// confirms it.
    speculative: Option<String>,
    held: Vec<LlmEvent>,
    /// The first token must come by then, or the local engine answers.
    pub(super) deadline: Option<Instant>,
    /// The caller's words this reply answers (for the local engine if the model fails).
    utterance: String,
    end_call: bool,
    transfer: bool,
    /// The current stream has ended (held events may still wait for confirmation).
    finished: bool,
}

impl LlmReply {
    /// An early start on words other than `text`.
    pub(super) fn is_early_start_other_than(&self, text: &str) -> bool {
        self.speculative.as_deref().is_some_and(|s| s != text)
    }
}

/// The reply's next event; pending when there is no reply or its stream has ended.
pub(super) async fn recv(reply: &mut Option<LlmReply>) -> Option<LlmEvent> {
    match reply {
        Some(r) if !r.finished => r.events.recv().await,
        _ => std::future::pending().await,
    }
}

impl CallActor {
    fn system_prompt(&self) -> String {
        conversation::system_prompt(
            &self.deps.prompts,
            self.policy.language,
            &self.setup.tenant,
            &self.calendar,
            Utc::now(),
            &self.setup.caller,
        )
    }

    fn start_model(&self, speculative_text: Option<&str>) -> Option<mpsc::Receiver<LlmEvent>> {
        let llm = self.llm.as_ref()?;
        let mut request = self.conversation.request(self.system_prompt());
        if let Some(text) = speculative_text {
            request.messages.push(ChatMessage::user(text));
        }
        Some(llm.stream(request))
    }

    fn new_reply(
        &self,
        events: mpsc::Receiver<LlmEvent>,
        timing: Option<CallerTiming>,
        speculative: Option<String>,
        utterance: String,
    ) -> LlmReply {
        LlmReply {
            events,
            unsent: String::new(),
            text: String::new(),
            calls: Vec::new(),
            rounds: 0,
            timing,
            speculative,
            held: Vec::new(),
            deadline: Some(Instant::now() + self.deps.settings.llm_first_token_timeout),
            utterance,
            end_call: false,
            transfer: false,
            finished: false,
        }
    }

    /// Answers the caller's words with the model, reusing an early start on the same words.
    pub(super) async fn reply_with_model(&mut self, text: String, timing: CallerTiming) {
        self.conversation.push_user(&text);
        let reuse = self.reply.as_ref().and_then(|r| r.speculative.as_deref()).is_some_and(|s| same_words(s, &text));
        if reuse {
            metrics::counter!("ringlypro_llm_early_starts_used_total").increment(1);
            let mut held = Vec::new();
            if let Some(reply) = self.reply.as_mut() {
                reply.speculative = None;
                reply.timing = Some(timing);
                reply.utterance = text;
                held = std::mem::take(&mut reply.held);
            }
            for event in held {
                self.on_llm(Some(event)).await;
            }
            return;
        }
        if self.reply.is_some() {
            metrics::counter!("ringlypro_llm_early_starts_discarded_total").increment(1);
        }
        self.reply = None;
        match self.start_model(None) {
            Some(events) => self.reply = Some(self.new_reply(events, Some(timing), None, text)),
            None => self.fall_back_to_local(&text, Some(timing), "no model available").await,
        }
    }

    /// The caller paused with a stable interim transcript: start the model on it now, and
    /// keep its output until the final transcript confirms the words.
    pub(super) fn maybe_start_early(&mut self, now: Instant) {
        if self.llm.is_none() || self.reply.is_some() || self.speaking.is_some() {
            return;
        }
        let Some(text) = self.floor.early_words(now, self.deps.settings.early_start_after).map(str::to_owned) else {
            return;
        };
        if let Some(events) = self.start_model(Some(&text)) {
            let mut reply = self.new_reply(events, None, Some(text.clone()), text);
            reply.deadline = None; // timed from the final transcript, not from here
            self.reply = Some(reply);
        }
    }

    pub(super) async fn on_llm(&mut self, event: Option<LlmEvent>) {
        let Some(reply) = self.reply.as_mut() else { return };
        let event =
            event.unwrap_or_else(|| LlmEvent::Error(ProviderError::retryable("llm", "stream ended without finishing")));
        if matches!(event, LlmEvent::Done { .. }) {
            reply.finished = true;
        }
        if reply.speculative.is_some() {
            // Unconfirmed: hold everything (never speak or run tools on words not yet final).
            if matches!(event, LlmEvent::Error(_)) {
                self.reply = None;
            } else {
                reply.held.push(event);
            }
            return;
        }
        match event {
            LlmEvent::Delta(delta) => {
                reply.deadline = None;
                reply.text.push_str(&delta);
                reply.unsent.push_str(&delta);
                let (complete, rest) = split_sentences(&reply.unsent);
                reply.unsent = rest;
                let timing = reply.timing;
                for clause in complete {
                    self.say_clause(&clause, timing).await;
                }
            }
            LlmEvent::ToolCall(call) => reply.calls.push(call),
            LlmEvent::Done { .. } => {
                self.deps.engines.breakers.llm.record_success();
                let calls = std::mem::take(&mut reply.calls);
                if calls.is_empty() {
                    self.finish_model_reply().await;
                } else {
                    self.run_model_tools(calls).await;
                }
            }
            LlmEvent::Error(e) => {
                tracing::warn!(call_sid = %self.setup.call_sid, error = %e, "language model failed; local engine answers");
                self.deps.engines.breakers.llm.record_failure();
                self.failures.push(format!("llm: {e}"));
                let reply = self.reply.take();
                let (utterance, timing) = reply.map(|r| (r.utterance, r.timing)).unwrap_or_default();
                self.fall_back_to_local(&utterance, timing, "model failed").await;
            }
        }
    }

    /// Hands one finished clause of the model's reply to the voice, opening the agent's
    /// turn on the first one.
    async fn say_clause(&mut self, clause: &str, timing: Option<CallerTiming>) {
        if self.speaking.is_none() || self.voice.needs_turn() {
            self.open_agent_turn(timing);
        }
        self.push_text(clause).await;
    }

    async fn finish_model_reply(&mut self) {
        let Some(mut reply) = self.reply.take() else { return };
        let rest = std::mem::take(&mut reply.unsent);
        if !rest.trim().is_empty() {
            self.say_clause(rest.trim(), reply.timing).await;
        }
        self.conversation.push_assistant(&reply.text);
        if let Some(turn) = self.speaking.as_mut() {
            turn.end_call |= reply.end_call;
            turn.transfer |= reply.transfer;
        }
        self.hangup_requested |= reply.end_call;
        self.flush_text().await;
        if reply.text.trim().is_empty() && reply.end_call {
            // Ended without a word: nothing to play, so hang up now.
            self.voice.send(crate::call::io::CallOutput::Close).await;
            self.closed = true;
        }
    }

    /// Runs the model's tool calls, records them and their results in its history, and asks
    /// it to go on.
    async fn run_model_tools(&mut self, calls: Vec<ToolCallRequest>) {
        let Some(mut reply) = self.reply.take() else { return };
        self.conversation.push_tool_calls(&reply.unsent, &calls);
        for call in &calls {
            let result = match tools::parse(call, &self.policy.offered, Some(&self.setup.caller)) {
                Err(message) => serde_json::json!({ "error": message }),
                Ok(tool) => self.run_model_tool(tool, &mut reply).await,
            };
            self.conversation.push_tool_result(&call.id, &result.to_string());
        }
        reply.rounds += 1;
        if reply.rounds > self.deps.settings.max_tool_rounds || reply.end_call {
            self.reply = Some(reply);
            self.finish_model_reply().await;
            return;
        }
        match self.start_model(None) {
            Some(events) => {
                reply.events = events;
                reply.finished = false;
                reply.deadline = Some(Instant::now() + self.deps.settings.llm_first_token_timeout);
                self.reply = Some(reply);
            }
            None => {
                self.reply = Some(reply);
                self.finish_model_reply().await;
            }
        }
    }

    /// One tool the model asked for; its result as the JSON the model reads.
    async fn run_model_tool(&mut self, tool: ModelTool, reply: &mut LlmReply) -> serde_json::Value {
        let now = Utc::now();
        let result = match tool {
            ModelTool::Call(call) => {
                if let ToolCall::Book { name, .. } = &call {
                    self.policy.name = Some(name.clone());
                }
                Box::pin(self.run_tool(call)).await
            }
            ModelTool::Reschedule { appointment_id, slot } => {
                let name = self.policy.name.clone().unwrap_or_default();
                let req = self.booking_request(slot, name, self.setup.caller.clone());
                match Box::pin(booking::reschedule(&self.deps.pool, &self.setup.tenant, appointment_id, &req, now))
                    .await
                {
                    Ok(booked) => {
                        self.policy.outcome = Outcome::Rescheduled;
                        let booked = ToolResult::Booked { code: booked.appointment.confirmation_code, slot };
                        return tools::result_json(&booked, &self.calendar, now, self.policy.language);
                    }
                    Err(BookingError::SlotTaken) | Err(BookingError::NotBookable) => ToolResult::SlotTaken,
                    Err(BookingError::NotFound) => {
                        return serde_json::json!({"error": "no such appointment; call find_appointment first"});
                    }
                    Err(e) => self.tool_failed("reschedule_appointment", anyhow::Error::from(e)),
                }
            }
            ModelTool::BusinessInfo => {
                let t = &self.setup.tenant;
                return serde_json::json!({
                    "business_name": t.business_name, "description": t.business_description,
                    "hours": self.calendar.hours.describe_in(self.policy.language), "services_and_prices": t.services,
                    "open_now": self.calendar.is_open_at(now),
                });
            }
            ModelTool::Transfer => {
                if self.calendar.is_open_at(now) {
                    reply.transfer = true;
                    reply.end_call = true;
                    self.policy.outcome = Outcome::Transfer;
                    return serde_json::json!({"transferring": true, "note": "say one short line; the call is handed over"});
                }
                return serde_json::json!({"transferring": false, "note": "closed now; offer to take a message"});
            }
            ModelTool::EndCall => {
                reply.end_call = true;
                return serde_json::json!({"ending": true});
            }
        };
        // Keep the local engine's view in step, so it can take over mid-conversation.
        let _ = self.with_policy(|p, ctx| p.on_tool_result(ctx, result.clone()));
        tools::result_json(&result, &self.calendar, now, self.policy.language)
    }

    /// The model failed or is unavailable: the local engine answers the same words, from the
    /// same conversation state. If part of the model's reply was already spoken, the local
    /// reply continues that turn.
    async fn fall_back_to_local(&mut self, utterance: &str, timing: Option<CallerTiming>, why: &str) {
        tracing::info!(call_sid = %self.setup.call_sid, why, "local dialogue engine answers");
        let step = if utterance.trim().is_empty() {
            self.with_policy(|p, ctx| p.on_silence(ctx))
        } else {
            self.with_policy(|p, ctx| p.on_utterance(ctx, utterance))
        };
        self.act(step, timing).await;
    }
}

/// Whether two transcripts say the same words (case and punctuation aside).
fn same_words(a: &str, b: &str) -> bool {
    let words = |s: &str| -> Vec<String> {
        s.split_whitespace()
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
            .filter(|w| !w.is_empty())
            .collect()
    };
    words(a) == words(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcripts_with_the_same_words_match_whatever_the_punctuation() {
        assert!(same_words("I'd like to book.", "i'd like to book"));
        assert!(!same_words("I'd like to book", "i'd like to book an appointment"));
    }
}
