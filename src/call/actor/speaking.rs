//! The agent's turns: opened, filled with text, handed to the voice, paced out, timed at
//! every stage, and ended once heard; plus the housekeeping tick that drives pacing and the
//! call's timers (resume after a false interruption, silence, the longest call).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::{AgentTurn, CallActor, CallerTiming};
use crate::call::events::Handoff;
use crate::call::io::CallOutput;
use crate::call::turn_taking::Reaction;
use crate::domain::calls::Speaker;
use crate::providers::ProviderError;
use crate::storage::postgres::calls::Turn;

impl CallActor {
    /// The transcript row of the agent turn being spoken.
    pub(super) fn current_turn_mut(&mut self) -> Option<&mut Turn> {
        let index = self.speaking.as_ref()?.index;
        self.turns.get_mut(index)
    }

    /// How often to tick: every 20 ms while audio is being paced out or a reply is under
    /// way; every 100 ms while only listening (timers need no finer grain), so a thousand
    /// quiet calls do not wake fifty thousand times a second.
    pub(super) fn tick_period(&self) -> Duration {
        let busy = self.speaking.is_some()
            || self.voice.has_pending()
            || self.reply.is_some()
            || self.floor.has_resume()
            || self.voice.end_is_planned();
        Duration::from_millis(if busy { 20 } else { 100 })
    }

    /// When to tick next. While the only work is pacing the agent's audio, the tick comes
    /// when the next 40 ms chunk is due, not every 20 ms: half the wake-ups of a speaking
    /// call.
    pub(super) fn next_tick_at(&self, now: Instant) -> Instant {
        if self.reply.is_none()
            && !self.floor.has_resume()
            && !self.voice.end_is_planned()
            && let Some(due) = self.voice.next_send_at(now)
        {
            return due.clamp(now + Duration::from_millis(1), now + Duration::from_millis(100));
        }
        now + self.tick_period()
    }

    /// Audio is about to flow: pace it from the next 20 ms on.
    fn wake_soon(&mut self) {
        let soon = Instant::now() + Duration::from_millis(20);
        if self.next_tick > soon {
            self.next_tick = soon;
        }
    }

    pub(super) fn open_agent_turn(&mut self, timing: Option<CallerTiming>) {
        self.wake_soon();
        let now = Utc::now();
        let seq = self.turns.len() as i32;
        self.turns.push(Turn {
            seq,
            speaker: Speaker::Agent,
            text: String::new(),
            started_at: now,
            caller_stopped_at: timing.map(|t| t.0),
            stt_final_at: timing.map(|t| t.1),
            reply_ready_at: Some(now),
            ..Turn::default()
        });
        if self.voice.start_turn() {
            self.floor.agent_turn_started(Instant::now());
        }
        self.speaking = Some(AgentTurn {
            index: self.turns.len() - 1,
            text: String::new(),
            end_call: false,
            transfer: false,
            text_complete: false,
        });
        self.floor.touch(Instant::now());
    }

    pub(super) fn record_agent_text(&mut self, text: &str) {
        if let Some(turn) = self.speaking.as_mut() {
            if !turn.text.is_empty() {
                turn.text.push(' ');
            }
            turn.text.push_str(text);
            if let Some(t) = self.turns.get_mut(turn.index) {
                t.text = turn.text.clone();
            }
        }
    }

    /// More of the agent turn's text, to the transcript and the voice.
    pub(super) async fn push_text(&mut self, text: &str) {
        self.record_agent_text(text);
        if self.voice.is_relay()
            && let Some(t) = self.current_turn_mut()
        {
            // Twilio speaks as soon as it has the text.
            let now = Some(Utc::now());
            t.tts_first_byte_at = t.tts_first_byte_at.or(now);
            t.first_audio_sent_at = t.first_audio_sent_at.or(now);
        }
        if let Err(e) = self.voice.say(text).await {
            self.on_tts(Some(Err(e))).await;
        }
    }

    /// The agent turn's text is complete.
    pub(super) async fn flush_text(&mut self) {
        self.voice.flush().await;
        if self.voice.is_relay() {
            let end_call = self.speaking.as_ref().is_some_and(|t| t.end_call) && self.hangup_requested;
            self.finish_relay_turn(end_call);
            return;
        }
        if let Some(turn) = self.speaking.as_mut() {
            turn.text_complete = true;
            let index = turn.index;
            self.publish_turn(index);
        }
        // After the flush, so the reply's audio is not held up by the store.
        Box::pin(self.checkpoint()).await;
    }

    /// Says a whole reply (the local engine's, or a fixed line) as one agent turn.
    pub(super) async fn speak(&mut self, text: String, end_call: bool, transfer: bool, timing: Option<CallerTiming>) {
        let continuing = self.speaking.as_ref().is_some_and(|t| !t.text_complete) && !self.voice.needs_turn();
        if !continuing {
            if self.speaking.is_some() {
                self.interrupt(false).await;
            }
            self.open_agent_turn(timing);
        }
        self.push_text(&text).await;
        if let Some(turn) = self.speaking.as_mut() {
            turn.end_call = end_call;
            turn.transfer = transfer;
        }
        self.hangup_requested = end_call;
        self.flush_text().await;
    }

    pub(super) async fn on_tts(&mut self, chunk: Option<Result<Vec<u8>, ProviderError>>) {
        match chunk {
            Some(Ok(audio)) => {
                self.wake_soon();
                if let Some(t) = self.current_turn_mut() {
                    t.tts_first_byte_at.get_or_insert_with(Utc::now);
                }
                self.voice.push_audio(&audio);
                self.pump().await;
            }
            Some(Err(e)) => self.on_tts_failure(e).await,
            None => {
                if !self.speaking.as_ref().is_none_or(|t| t.text_complete) {
                    // The engine closed the turn while text was still coming.
                    let e = ProviderError::retryable(self.voice.engine_name(), "turn closed early");
                    self.on_tts_failure(e).await;
                    return;
                }
                self.voice.synthesis_done();
                self.pump().await;
            }
        }
    }

    /// Synthesis failed: switch to the local engine and say the turn again from its text,
    /// so the caller hears the reply rather than silence.
    async fn on_tts_failure(&mut self, e: ProviderError) {
        tracing::error!(call_sid = %self.setup.call_sid, error = %e, "speech synthesis failed");
        self.failures.push(format!("tts: {e}"));
        let turn = self.speaking.as_ref().map(|t| (t.text.clone(), t.text_complete));
        let turn = turn.as_ref().map(|(text, complete)| (text.as_str(), *complete));
        Box::pin(self.voice.fall_back(&self.deps.engines, self.policy.language, turn)).await;
    }

    async fn pump(&mut self) {
        if self.voice.take_due(Instant::now())
            && let Some(t) = self.current_turn_mut()
            && t.first_audio_sent_at.is_none()
        {
            let sent_at = Utc::now();
            t.first_audio_sent_at = Some(sent_at);
            record_latency("stt_final_to_first_audio", t.stt_final_at, Some(sent_at));
            record_latency("caller_stop_to_first_audio", t.caller_stopped_at, Some(sent_at));
            record_latency("stt_final_to_reply_start", t.stt_final_at, t.reply_ready_at);
            record_latency("reply_start_to_tts_first_byte", t.reply_ready_at, t.tts_first_byte_at);
        }
        self.voice.send_due().await;
    }

    /// ConversationRelay speaks on its own: the turn is over once its text is sent. A
    /// goodbye ends the session once Twilio has had time to say it.
    pub(super) fn finish_relay_turn(&mut self, end_call: bool) {
        if let Some(turn) = self.speaking.take() {
            if let Some(t) = self.turns.get_mut(turn.index) {
                t.ended_at = Some(Utc::now());
            }
            self.publish_turn(turn.index);
            if end_call {
                self.voice.end_after_speaking(turn.text.chars().count(), Instant::now());
            }
        }
        self.floor.touch(Instant::now());
    }

    pub(super) async fn on_tick(&mut self) {
        let now = Instant::now();
        if let Err(e) = self.voice.advance_recording(now) {
            self.drop_recording(e);
        }
        if self.voice.end_if_due(now, Handoff::after(self.policy.outcome)).await {
            self.closed = true;
            return;
        }
        if self.voice.has_pending() {
            self.pump().await;
        }
        self.maybe_start_early(now);
        if let Some(resume) = self.floor.due_resume(now) {
            self.react(Reaction::GoOn { unpause: false, resume: Some(resume) }, now).await;
        }
        if let Some(turn) = &self.speaking
            && turn.text_complete
            && self.voice.is_done(now)
        {
            let (index, end_call, transfer) = (turn.index, turn.end_call, turn.transfer);
            self.speaking = None;
            self.floor.touch(now);
            if let Some(t) = self.turns.get_mut(index) {
                t.ended_at = Some(Utc::now());
            }
            if end_call && self.hangup_requested {
                tracing::info!(call_sid = %self.setup.call_sid, transfer, "agent ended the call");
                self.voice.send(CallOutput::Close).await;
                self.closed = true;
                return;
            }
        }
        if now.duration_since(self.started) > self.deps.settings.max_duration && !self.hangup_requested {
            Box::pin(self.end_for_time()).await;
            return;
        }
        if self.owner_note.is_some() {
            self.say_owner_note().await;
        }
        // After its goodbye the agent waits for the line to close: no "are you still there?".
        // After its goodbye the agent waits for the line to close: no "are you still there?".
        if self.speaking.is_none()
            && self.reply.is_none()
            && !self.hangup_requested
            && self.floor.silent_for(now, self.deps.settings.silence_timeout)
        {
            let step = self.with_policy(|p, ctx| p.on_silence(ctx));
            self.act(step, None).await;
        }
    }

    /// The call is at its longest, or the server is stopping: say goodbye.
    pub(super) async fn end_for_time(&mut self) {
        self.interrupt(false).await;
        self.reply = None;
        let step = self.with_policy(|p, ctx| p.on_time_up(ctx));
        self.act(step, None).await;
    }
}

fn record_latency(stage: &'static str, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) {
    if let (Some(from), Some(to)) = (from, to)
        && let Ok(elapsed) = (to - from).to_std()
    {
        metrics::histogram!("ringlypro_turn_latency_seconds", "stage" => stage).record(elapsed.as_secs_f64());
    }
}
