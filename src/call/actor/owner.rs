//! The owner's commands to the live call: take it over, or have the agent say a note.

use tokio::time::Instant;

use super::CallActor;
use crate::call::commands::CallCommand;
use crate::dialogue::policy::Outcome;
use crate::services::calls as call_records;

impl CallActor {
    pub(super) async fn on_command(&mut self, command: CallCommand) {
        match command {
            CallCommand::TakeOver => Box::pin(self.hand_over()).await,
            CallCommand::Note { text } => {
                if self.handing_over {
                    return;
                }
                tracing::info!(call_sid = %self.setup.call_sid, "the owner sent a note");
                match &mut self.owner_note {
                    Some(waiting) => {
                        waiting.push(' ');
                        waiting.push_str(&text);
                    }
                    None => self.owner_note = Some(text),
                }
                self.say_owner_note().await;
            }
        }
    }

    /// The owner takes the call: whatever the agent was saying stops, it says one short
    /// hand-over line in the caller's language, and the stream closes into a `<Dial>` to
    /// the owner. Nothing the caller says meanwhile changes that.
    async fn hand_over(&mut self) {
        if self.handing_over {
            return;
        }
        tracing::info!(call_sid = %self.setup.call_sid, "the owner is taking the call");
        self.handing_over = true;
        self.owner_note = None;
        self.interrupt(false).await;
        self.reply = None;
        self.policy.outcome = Outcome::Transfer;
        if let Err(e) = call_records::mark_handed_over(&self.deps.pool, self.setup.tenant.id, self.setup.call_id).await
        {
            // The record saved at the end says so too; this only makes the dial not wait for it.
            tracing::warn!(call_sid = %self.setup.call_sid, error = format!("{e:#}"), "could not record the hand-over yet");
        }
        let line = self.with_policy(|p, ctx| p.takeover_line(ctx));
        if self.llm.is_some() {
            self.conversation.push_assistant(&line);
        }
        self.speak(line, true, true, None).await;
    }

    /// Says the owner's note as the agent's next turn: now if nobody has the floor,
    /// otherwise as soon as the agent's turn or the caller's words are over.
    pub(super) async fn say_owner_note(&mut self) {
        let floor_free = self.speaking.is_none()
            && self.reply.is_none()
            && !self.floor.caller_is_speaking()
            && !self.floor.is_holding()
            && !self.hangup_requested;
        if !floor_free {
            return;
        }
        let Some(note) = self.owner_note.take() else { return };
        if self.llm.is_some() {
            self.conversation.push_assistant(&note);
        }
        self.floor.touch(Instant::now());
        self.speak(note, false, false, None).await;
    }
}
