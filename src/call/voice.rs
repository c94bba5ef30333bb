//! The agent's voice toward the caller, whichever way the call is carried: over Media Streams
//! our synthesizer speaks and its audio is paced out in frames with marks (and recorded,
//! when the tenant records calls); over ConversationRelay, Twilio speaks the text we send.
//! The call decides what to say and when; this module only knows how it reaches the caller.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::audio::ogg_opus::OggOpusError;
use crate::call::engines::Engines;
use crate::call::events::Handoff;
use crate::call::io::CallOutput;
use crate::call::playback::{Playback, Send};
use crate::call::recording::{FinishedRecording, Recorder};
use crate::domain::language::Language;
use crate::providers::ProviderError;
use crate::providers::tts::{StreamingTts, TtsCall, TtsInput, TtsTurn};

/// The way out to the caller, and whether it is still there.
pub struct Voice {
    output: mpsc::Sender<CallOutput>,
    /// The transport is gone (the caller hung up).
    gone: bool,
    way: Way,
}

enum Way {
    Speech(Box<Speech>),
    /// ConversationRelay; `end_at`: when to end the session (after the goodbye is spoken).
    Relay {
        end_at: Option<Instant>,
    },
}

/// Our own synthesizer, paced out as audio frames.
struct Speech {
    engine: Arc<dyn StreamingTts>,
    is_local: bool,
    call: Box<dyn TtsCall>,
    /// The turn being synthesized; `None` once its audio has all arrived.
    turn: Option<TtsTurn>,
    playback: Playback,
    send_buf: Vec<Send>,
    /// Both legs being recorded, when the tenant records calls.
    recording: Option<Box<Recorder>>,
}

impl Voice {
    /// Media Streams: our synthesizer's audio, paced out as frames.
    pub fn speech(
        output: mpsc::Sender<CallOutput>,
        (engine, is_local): (Arc<dyn StreamingTts>, bool),
        language: Language,
        recording: Option<Recorder>,
    ) -> Self {
        let call = engine.open_call(language);
        let speech = Speech {
            engine,
            is_local,
            call,
            turn: None,
            playback: Playback::new(),
            send_buf: Vec::new(),
            recording: recording.map(Box::new),
        };
        Self { output, gone: false, way: Way::Speech(Box::new(speech)) }
    }

    /// ConversationRelay: Twilio speaks our text.
    pub fn relay(output: mpsc::Sender<CallOutput>) -> Self {
        Self { output, gone: false, way: Way::Relay { end_at: None } }
    }

    pub fn is_relay(&self) -> bool {
        matches!(self.way, Way::Relay { .. })
    }

    /// The transport is gone: nothing more can be said.
    pub fn is_gone(&self) -> bool {
        self.gone
    }

    pub fn is_recording(&self) -> bool {
        matches!(&self.way, Way::Speech(s) if s.recording.is_some())
    }

    pub async fn send(&mut self, out: CallOutput) {
        if self.output.send(out).await.is_err() {
            // The socket writer is gone: the caller hung up.
            self.gone = true;
        }
    }

    /// The agent's audio is still being made or played.
    pub fn is_playing(&self, now: Instant) -> bool {
        match &self.way {
            Way::Speech(s) => s.playback.is_speaking(now) || s.turn.is_some(),
            Way::Relay { .. } => false,
        }
    }

    /// Whether more text for the current agent turn needs a new synthesis turn first.
    pub fn needs_turn(&self) -> bool {
        matches!(&self.way, Way::Speech(s) if s.turn.is_none())
    }

    /// A new agent turn starts. Returns whether this voice holds for the caller (ConversationRelay
    /// does its own interruption handling).
    pub fn start_turn(&mut self) -> bool {
        match &mut self.way {
            Way::Speech(s) => {
                s.playback.start_turn();
                s.turn = Some(s.call.start_turn());
                true
            }
            Way::Relay { .. } => false,
        }
    }

    /// A new language: the next turn speaks it.
    pub fn switch_language(&mut self, language: Language) {
        if let Way::Speech(s) = &mut self.way {
            s.call = s.engine.open_call(language);
        }
    }

    /// Goes quiet at once (`clear`), keeping the unplayed rest. Returns whether it did
    /// (ConversationRelay does not hold).
    pub async fn hold(&mut self, now: Instant) -> bool {
        let Way::Speech(s) = &mut self.way else { return false };
        s.playback.pause();
        if let Some(recording) = s.recording.as_mut() {
            recording.cut_agent(now);
        }
        self.send(CallOutput::Clear).await;
        true
    }

    /// The hold is over: the audio goes on from where it stopped.
    pub fn unhold(&mut self) {
        if let Way::Speech(s) = &mut self.way {
            s.playback.unpause();
        }
    }

    /// Stops the turn for good (barge-in): clears Twilio's buffer unless a hold already did,
    /// abandons the synthesis, and returns the fraction of the turn the caller heard.
    pub async fn stop(&mut self, already_cleared: bool, now: Instant) -> f32 {
        let Way::Speech(s) = &mut self.way else { return 0.0 };
        s.turn = None; // dropping the turn closes its context; its audio is never read again
        let fraction = s.playback.clear();
        if let Some(recording) = s.recording.as_mut() {
            recording.cut_agent(now);
        }
        if !already_cleared {
            self.send(CallOutput::Clear).await;
        }
        fraction
    }

    /// More of the turn's text. Fails when the synthesis turn is closed.
    pub async fn say(&mut self, text: &str) -> Result<(), ProviderError> {
        match &mut self.way {
            Way::Speech(s) => {
                let sent = match &s.turn {
                    Some(turn) => turn.text.send(TtsInput::Text(text.to_owned())).await.is_ok(),
                    None => false,
                };
                if sent { Ok(()) } else { Err(ProviderError::retryable(s.engine.name(), "synthesis turn closed")) }
            }
            Way::Relay { .. } => {
                self.send(CallOutput::Text { token: format!("{text} "), last: false }).await;
                Ok(())
            }
        }
    }

    /// The turn's text is complete.
    pub async fn flush(&mut self) {
        match &mut self.way {
            Way::Speech(s) => {
                if let Some(turn) = &s.turn {
                    let _ = turn.text.send(TtsInput::Flush).await;
                }
            }
            Way::Relay { .. } => self.send(CallOutput::Text { token: String::new(), last: true }).await,
        }
    }

    /// The synthesizer's next chunk of audio; pending while nothing is being synthesized.
    pub async fn next_audio(&mut self) -> Option<Result<Vec<u8>, ProviderError>> {
        match &mut self.way {
            Way::Speech(s) => match &mut s.turn {
                Some(turn) => turn.audio.recv().await,
                None => std::future::pending().await,
            },
            Way::Relay { .. } => std::future::pending().await,
        }
    }

    pub fn engine_name(&self) -> &'static str {
        match &self.way {
            Way::Speech(s) => s.engine.name(),
            Way::Relay { .. } => "twilio",
        }
    }

    /// Synthesized audio arrived: queue it for pacing.
    pub fn push_audio(&mut self, audio: &[u8]) {
        if let Way::Speech(s) = &mut self.way {
            s.playback.push(audio);
        }
    }

    /// All the turn's audio has arrived (or none will: the engine failed with no fallback).
    pub fn synthesis_done(&mut self) {
        if let Way::Speech(s) = &mut self.way {
            s.turn = None;
            s.playback.finish_input();
        }
    }

    /// Synthesis failed: switch to the local engine (once) and start the turn again from
    /// `text`, flushed when `complete`, so the caller hears the reply rather than silence.
    /// Returns false when there is no engine to fall back to.
    pub async fn fall_back(&mut self, engines: &Engines, language: Language, turn: Option<(&str, bool)>) -> bool {
        let Way::Speech(s) = &mut self.way else { return false };
        s.turn = None;
        let fallback = if s.is_local { None } else { engines.tts_fallback.clone() };
        let Some(local) = fallback else {
            s.playback.finish_input();
            return false;
        };
        engines.breakers.tts.record_failure();
        s.engine = local;
        s.is_local = true;
        s.call = s.engine.open_call(language);
        let Some((text, complete)) = turn else { return true };
        let new_turn = s.call.start_turn();
        if !text.trim().is_empty() {
            let _ = new_turn.text.send(TtsInput::Text(text.to_owned())).await;
        }
        if complete {
            let _ = new_turn.text.send(TtsInput::Flush).await;
        }
        s.turn = Some(new_turn);
        true
    }

    /// Takes the audio and marks now due, to send with [`Voice::send_due`]. Returns whether
    /// any audio is among them.
    pub fn take_due(&mut self, now: Instant) -> bool {
        let Way::Speech(s) = &mut self.way else { return false };
        s.playback.pump(now, &mut s.send_buf);
        s.send_buf.iter().any(|item| matches!(item, Send::Audio { .. }))
    }

    /// Sends what [`Voice::take_due`] took, recording the agent's audio as it goes.
    pub async fn send_due(&mut self) {
        let Way::Speech(s) = &mut self.way else { return };
        for item in s.send_buf.drain(..) {
            let out = match item {
                Send::Audio { bytes, plays_at } => {
                    if let Some(recording) = s.recording.as_mut() {
                        recording.agent(&bytes, plays_at);
                    }
                    CallOutput::Audio(bytes)
                }
                Send::Mark(m) => CallOutput::Mark(m),
            };
            if self.output.send(out).await.is_err() {
                self.gone = true;
            }
        }
    }

    /// When the next chunk of the agent's audio is due to go out (`None`: none is ready).
    pub fn next_send_at(&self, now: Instant) -> Option<Instant> {
        match &self.way {
            Way::Speech(s) => s.playback.next_send_at(now),
            Way::Relay { .. } => None,
        }
    }

    /// Audio or marks wait to be sent.
    pub fn has_pending(&self) -> bool {
        matches!(&self.way, Way::Speech(s) if s.playback.has_pending())
    }

    /// The whole turn has been made and played.
    pub fn is_done(&self, now: Instant) -> bool {
        match &self.way {
            Way::Speech(s) => s.turn.is_none() && s.playback.is_done(now),
            Way::Relay { .. } => true,
        }
    }

    /// One of our marks came back; true when it is the first of the current turn.
    pub fn on_mark(&mut self, name: &str) -> bool {
        match &mut self.way {
            Way::Speech(s) => s.playback.on_mark(name),
            Way::Relay { .. } => false,
        }
    }

    /// The fraction of the current turn the caller heard.
    pub fn heard_fraction(&self) -> f32 {
        match &self.way {
            Way::Speech(s) => s.playback.heard_fraction(),
            Way::Relay { .. } => 0.0,
        }
    }

    /// A frame of the caller's audio, for the recording.
    pub fn caller_audio(&mut self, bytes: &[u8], timestamp_ms: Option<u64>, now: Instant) -> Result<(), OggOpusError> {
        match &mut self.way {
            Way::Speech(s) => match s.recording.as_mut() {
                Some(recording) => {
                    recording.caller(bytes, timestamp_ms, now);
                    recording.advance(now)
                }
                None => Ok(()),
            },
            Way::Relay { .. } => Ok(()),
        }
    }

    /// Lets the recording catch up when frames stop coming.
    pub fn advance_recording(&mut self, now: Instant) -> Result<(), OggOpusError> {
        match &mut self.way {
            Way::Speech(s) => s.recording.as_mut().map_or(Ok(()), |r| r.advance(now)),
            Way::Relay { .. } => Ok(()),
        }
    }

    /// The encoder failed: the call goes on unrecorded.
    pub fn drop_recording(&mut self) {
        if let Way::Speech(s) = &mut self.way {
            s.recording = None;
        }
    }

    /// Ends the recording at the hang-up.
    pub fn finish_recording(&mut self, now: Instant) -> Option<Result<FinishedRecording, OggOpusError>> {
        match &mut self.way {
            Way::Speech(s) => s.recording.take().map(|r| r.finish(now)),
            Way::Relay { .. } => None,
        }
    }

    /// ConversationRelay speaks on its own: a goodbye of `chars` characters ends the session
    /// once Twilio has had time to say it (about 15 characters a second, at most 8 s).
    pub fn end_after_speaking(&mut self, chars: usize, now: Instant) {
        if let Way::Relay { end_at } = &mut self.way {
            *end_at = Some(now + Duration::from_millis((chars as u64 * 65).min(8000)));
        }
    }

    /// The agent was cut off before a planned end: the session goes on.
    pub fn cancel_end(&mut self) {
        if let Way::Relay { end_at } = &mut self.way {
            *end_at = None;
        }
    }

    pub fn end_is_planned(&self) -> bool {
        matches!(self.way, Way::Relay { end_at: Some(_) })
    }

    /// Ends a ConversationRelay session whose goodbye has been said. Returns whether it did.
    pub async fn end_if_due(&mut self, now: Instant, handoff: Handoff) -> bool {
        let due = matches!(self.way, Way::Relay { end_at: Some(at) } if at <= now);
        if due {
            self.send(CallOutput::End { handoff }).await;
        }
        due
    }
}
