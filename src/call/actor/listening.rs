//! Listening: the recogniser (opened in the caller's language, the local one standing in
//! when the cloud one fails) and what its events mean for the floor, carried out here:
//! hold, barge-in, going on after a false interruption, answering the caller's words.

use tokio::time::Instant;

use super::CallActor;
use crate::call::turn_taking::Reaction;
use crate::domain::language::Language;
use crate::providers::ProviderError;
use crate::providers::stt::SttEvent;

impl CallActor {
    pub(super) fn open_stt(&mut self) {
        let mut language = self.policy.language;
        loop {
            match self.stt_engine.open(language) {
                Ok(stream) => {
                    self.set_stt(Some(stream));
                    return;
                }
                Err(e) => {
                    tracing::error!(call_sid = %self.setup.call_sid, error = %e, "speech recognition unavailable");
                    self.failures.push(format!("stt: {e}"));
                    if self.stt_to_local() {
                        continue;
                    }
                    if language != Language::English {
                        // No recogniser for this language: English is better than none.
                        language = Language::English;
                        continue;
                    }
                    return;
                }
            }
        }
    }

    /// The cloud recogniser failed: counts it against its breaker and switches to the local
    /// one. Returns false when there is none to switch to.
    fn stt_to_local(&mut self) -> bool {
        if self.stt_is_local {
            return false;
        }
        self.deps.engines.breakers.stt.record_failure();
        let Some(local) = self.deps.engines.stt_fallback.clone() else { return false };
        tracing::warn!(call_sid = %self.setup.call_sid, "switching to the local recogniser");
        self.stt_engine = local;
        self.stt_is_local = true;
        true
    }

    pub(super) fn on_stt_failure(&mut self, e: ProviderError) {
        tracing::error!(call_sid = %self.setup.call_sid, error = %e, "speech recognition failed");
        self.failures.push(format!("stt: {e}"));
        self.set_stt(None);
        self.stt_to_local();
        self.open_stt();
    }

    pub(super) async fn on_stt(&mut self, event: SttEvent) {
        let now = Instant::now();
        let speaking = self.agent_is_speaking(now);
        tracing::debug!(call_sid = %self.setup.call_sid, ?event, speaking, "stt event");
        let reaction = match event {
            SttEvent::SpeechStarted => self.floor.speech_started(now, speaking),
            SttEvent::Interim { text } => {
                let (changed, reaction) = self.floor.interim(&text, now, speaking);
                // The caller is still talking: an early start on older words is stale.
                if changed && self.reply.as_ref().is_some_and(|r| r.is_early_start_other_than(&text)) {
                    self.reply = None;
                }
                reaction
            }
            SttEvent::Final { text, speech_final } => self.floor.final_words(&text, speech_final, now, speaking),
            SttEvent::Error(e) => {
                self.on_stt_failure(e);
                Reaction::Nothing
            }
        };
        self.react(reaction, now).await;
    }

    pub(super) async fn on_barge_deadline(&mut self) {
        let now = Instant::now();
        let reaction = self.floor.barge_deadline_passed(now, self.agent_is_speaking(now));
        self.react(reaction, now).await;
    }

    /// Carries out what turn-taking decided.
    pub(super) async fn react(&mut self, reaction: Reaction, now: Instant) {
        if self.handing_over {
            // The owner has the call: the caller's words are kept, the agent is not stopped.
            if let Reaction::Words { text, complete: true, .. } = reaction {
                self.on_caller_turn(text).await;
            }
            return;
        }
        match reaction {
            Reaction::Nothing => {}
            Reaction::Hold => self.hold_for_caller(now).await,
            Reaction::BargeIn => {
                self.hold_for_caller(now).await;
                self.interrupt(true).await;
            }
            Reaction::GoOn { unpause, resume } => {
                if unpause {
                    self.voice.unhold();
                    tracing::debug!(call_sid = %self.setup.call_sid, "hold over: the agent goes on");
                }
                if let Some(resume) = resume {
                    tracing::info!(call_sid = %self.setup.call_sid, "false interruption: resuming");
                    metrics::counter!("ringlypro_false_interruptions_total").increment(1);
                    if self.llm.is_some() {
                        self.conversation.push_assistant(&resume.text);
                    }
                    self.speak(resume.text, resume.end_call, resume.transfer, None).await;
                }
            }
            Reaction::Words { text, interrupt, complete } => {
                if interrupt {
                    self.interrupt(false).await;
                }
                if complete {
                    self.on_caller_turn(text).await;
                }
            }
        }
    }
}
