//! What a call leaves behind: the transcript as it grows, its lines on the tenant's live
//! feed, a checkpoint after each turn, and at the end the saved call and recording (with a
//! retry, and the transcript logged whole if the database stays down).

use std::borrow::Cow;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use super::CallActor;
use crate::audio::ogg_opus::OggOpusError;
use crate::call::events::{Checkpoint, LiveEvent};
use crate::call::playback;
use crate::call::recording::FinishedRecording;
use crate::call::setup::CallSummary;
use crate::dialogue::policy::Outcome;
use crate::domain::calls::Speaker;
use crate::providers::stt::{SttEvent, SttInput};
use crate::services::calls::{self as call_records, CallRecord};
use crate::storage::postgres::calls::Turn;
use crate::storage::postgres::recordings::{self, NewRecording};

impl CallActor {
    pub(super) fn last_agent_turn(&self) -> Option<usize> {
        self.turns.iter().rposition(|t| t.speaker == Speaker::Agent)
    }

    /// Adds the caller's utterance to the transcript; returns its index.
    pub(super) fn record_caller_turn(&mut self, text: String) -> usize {
        let stt_final_at = Utc::now();
        let (started_at, caller_stopped_at) = self.floor.take_caller_turn();
        let seq = self.turns.len() as i32;
        self.turns.push(Turn {
            seq,
            speaker: Speaker::Caller,
            text,
            started_at,
            ended_at: Some(caller_stopped_at),
            stt_final_at: Some(stt_final_at),
            ..Turn::default()
        });
        let index = self.turns.len() - 1;
        self.publish_turn(index);
        index
    }

    /// Publishes a transcript line and the details gathered so far on the tenant's live feed.
    pub(super) fn publish_turn(&self, index: usize) {
        let Some(turn) = self.turns.get(index) else { return };
        let event = LiveEvent::Turn {
            call_sid: Cow::Borrowed(&self.setup.call_sid),
            seq: turn.seq,
            speaker: turn.speaker,
            text: Cow::Borrowed(&turn.text),
            at: turn.started_at,
            intent: self.policy.intent,
            name: self.policy.name.as_deref().map(Cow::Borrowed),
            phone: self.policy.phone.as_ref().map(|p| Cow::Borrowed(p.as_str())),
            offered: Cow::Borrowed(&self.policy.offered),
            language: self.policy.language,
        }
        .to_json();
        let store = self.deps.store.clone();
        let tenant_id = self.setup.tenant.id;
        // Fire and forget: a slow Redis must never hold up the conversation.
        tokio::spawn(async move {
            if let Err(e) = store.publish(tenant_id, &event).await {
                tracing::debug!(error = %e, "live feed publish failed");
            }
        });
    }

    pub(super) async fn checkpoint(&self) {
        // The transcript so far goes with it: a live view opened mid-call starts from here.
        let state = Checkpoint {
            policy: Cow::Borrowed(&self.policy),
            conversation: Cow::Borrowed(&self.conversation),
            turns: Cow::Borrowed(&self.turns),
        }
        .to_json();
        if let Err(e) = self.deps.store.save(&self.setup.call_sid, &state, self.deps.settings.checkpoint_ttl).await {
            tracing::warn!(call_sid = %self.setup.call_sid, error = %e, "checkpoint failed");
        }
    }

    /// The encoder failed (it should not): the call goes on unrecorded.
    pub(super) fn drop_recording(&mut self, e: OggOpusError) {
        tracing::error!(call_sid = %self.setup.call_sid, error = %e, "recording failed; the call goes on unrecorded");
        self.failures.push(format!("recording: {e}"));
        self.voice.drop_recording();
        if let Some(tap) = &self.tap {
            tap.hand_every_frame(false);
        }
    }

    /// Stores the recording with the call, retrying once. One that cannot be stored is
    /// logged; it never holds up the end of the call.
    async fn save_recording(&self, recording: &FinishedRecording) {
        let new = NewRecording {
            client_id: self.setup.tenant.id,
            call_id: self.setup.call_id,
            duration_ms: recording.duration_ms,
            bytes: &recording.bytes,
        };
        for attempt in 0..2 {
            match recordings::save(&self.deps.pool, &new).await {
                Ok(()) => {
                    tracing::info!(call_sid = %self.setup.call_sid, bytes = recording.bytes.len(), duration_ms = recording.duration_ms, "recording saved");
                    return;
                }
                Err(e) => {
                    tracing::error!(call_sid = %self.setup.call_sid, attempt, error = %e, "saving the recording failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Words the caller said just before hanging up: flush the recogniser and keep them.
    async fn last_words(&mut self) {
        if let Some(tap) = &self.tap {
            tap.set_recogniser(None);
        }
        let Some(mut stt) = self.stt.take() else { return };
        if !self.floor.words_may_be_pending(Instant::now()) {
            // A caller quiet for a while owes no words: the call is saved at once.
            return;
        }
        if stt.input.send(SttInput::Finalize).await.is_err() {
            return;
        }
        let deadline = Instant::now() + Duration::from_millis(1500);
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, stt.events.recv()).await {
            if let SttEvent::Final { text, .. } = event {
                if !text.trim().is_empty() {
                    self.record_caller_turn(text.trim().to_owned());
                }
                break;
            }
        }
    }

    /// Saves the call: transcript, contact, outcome, failures. Retries once, then logs
    /// the whole transcript so nothing is lost even if the database is down.
    pub(super) async fn finish(mut self) -> CallSummary {
        // The recording ends at the hang-up, not after the saving below.
        let recording = self.voice.finish_recording(Instant::now());
        self.reply = None;
        if let Some(turn) = self.speaking.take() {
            // Hung up while the agent was talking: keep what was heard.
            let fraction = self.voice.heard_fraction();
            if let Some(t) = self.turns.get_mut(turn.index) {
                t.heard_text = Some(playback::heard_text(&turn.text, fraction));
                t.interrupted = fraction < 1.0;
                t.ended_at.get_or_insert_with(Utc::now);
            }
        }
        self.last_words().await;
        Box::pin(self.checkpoint()).await;
        let outcome = self.policy.outcome;
        let failures = self.failures.join("; ");
        let caller_name = self.policy.name.clone();
        let record = CallRecord {
            client_id: self.setup.tenant.id,
            call_id: self.setup.call_id,
            stream_sid: &self.setup.stream_sid,
            language: self.policy.language.code(),
            caller_phone: Some(self.setup.caller.as_str()).filter(|c| !c.is_empty()),
            caller_name: caller_name.as_deref(),
            outcome,
            failures: &failures,
            turns: &self.turns,
        };
        let mut saved = false;
        for attempt in 0..2 {
            match call_records::save(&self.deps.pool, &record).await {
                Ok(()) => {
                    saved = true;
                    break;
                }
                Err(e) => {
                    tracing::error!(call_sid = %self.setup.call_sid, attempt, error = format!("{e:#}"), "saving the call failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        if !saved {
            let transcript = serde_json::to_string(&self.turns).unwrap_or_default();
            tracing::error!(call_sid = %self.setup.call_sid, transcript, "call not saved; transcript logged here");
        }
        match recording {
            Some(Ok(recording)) => self.save_recording(&recording).await,
            Some(Err(e)) => {
                tracing::error!(call_sid = %self.setup.call_sid, error = %e, "recording could not be finished")
            }
            None => {}
        }
        if let Err(e) = self.deps.store.mark_ended(self.setup.tenant.id, &self.setup.call_sid).await {
            tracing::warn!(call_sid = %self.setup.call_sid, error = %e, "could not unindex the live call");
        }
        let ended = LiveEvent::Ended { call_sid: Cow::Borrowed(&self.setup.call_sid), outcome }.to_json();
        let _ = self.deps.store.publish(self.setup.tenant.id, &ended).await;
        tracing::info!(call_sid = %self.setup.call_sid, outcome = outcome.as_str(), turns = self.turns.len(), "call finished");
        CallSummary { outcome, transfer: outcome == Outcome::Transfer, turns: self.turns.len() }
    }
}
