//! The per-call actor: one task that owns a conversation from the first audio frame to the
//! saved record. One `select!` loop; each branch hands its event to one small `on_*` method.
//!
//! A reply comes from the language model when one is configured (streamed into the
//! synthesizer clause by clause, tools run here) and from the local dialogue engine
//! otherwise or when the model fails; both share the same conversation state.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::audio::mulaw;
use crate::audio::ogg_opus::{OggOpusError, OpusSettings};
use crate::call::conversation::{self, LlmConversation};
use crate::call::engines::Engines;
use crate::call::playback::{self, Playback, Send};
use crate::call::recording::{FinishedRecording, Recorder};
use crate::dialogue::nlu;
use crate::dialogue::policy::{Context, FoundAppointment, Outcome, Policy, Stage, Step, ToolCall, ToolResult};
use crate::dialogue::prompts::Prompts;
use crate::dialogue::tools::{self, ModelTool};
use crate::domain::appointments::BookingSource;
use crate::domain::calls::Speaker;
use crate::domain::ids::CallId;
use crate::domain::language::Language;
use crate::domain::scheduling::{Calendar, Slot};
use crate::providers::ProviderError;
use crate::providers::llm::{LanguageModel, LlmEvent, ToolCallRequest};
use crate::providers::stt::{SpeechToText, SttEvent, SttInput, SttStream};
use crate::providers::tts::sentences::split_sentences;
use crate::providers::tts::{StreamingTts, TtsCall, TtsInput, TtsTurn};
use crate::services::booking::{self, BookingError, BookingRequest};
use crate::services::calls::{self as call_records, CallRecord};
use crate::storage::call_state::CallStateStore;
use crate::storage::postgres::calls::Turn;
use crate::storage::postgres::recordings::{self, NewRecording};
use crate::storage::postgres::tenants::Tenant;

/// What the transport hands the actor.
#[derive(Debug, Clone, PartialEq)]
pub enum CallInput {
    /// Caller audio, 8 kHz μ-law, with the stream's milliseconds since it started when known.
    Audio {
        bytes: Vec<u8>,
        timestamp_ms: Option<u64>,
    },
    Dtmf(char),
    /// One of our marks came back.
    Mark(String),
    /// ConversationRelay: the caller's complete utterance, recognised by Twilio.
    Prompt(String),
    /// ConversationRelay: Twilio stopped speaking because the caller talked; `heard` is
    /// what had been spoken until then.
    Interrupted {
        heard: String,
    },
    /// The caller hung up or the socket closed.
    Hangup,
}

/// What the actor asks the transport to send.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutput {
    Audio(Vec<u8>),
    Mark(String),
    /// Drop everything queued for playback.
    Clear,
    /// Close the stream (the call is over, or being transferred).
    Close,
    /// ConversationRelay: a piece of the agent's reply for Twilio to speak; `last` ends it.
    Text {
        token: String,
        last: bool,
    },
    /// ConversationRelay: end the session, with data for the action URL.
    End {
        handoff: String,
    },
}

/// Timing knobs of a conversation.
#[derive(Debug, Clone)]
pub struct CallSettings {
    /// Caller silence before the agent checks in.
    pub silence_timeout: Duration,
    /// Speech over the agent shorter than this (with no real words) is a backchannel.
    pub barge_in_after: Duration,
    /// Longest call before the agent wraps up.
    pub max_duration: Duration,
    /// How long a checkpoint lives in the call-state store.
    pub checkpoint_ttl: Duration,
    /// A stable interim transcript this old, while the caller pauses, starts the model early.
    pub early_start_after: Duration,
    /// The model must produce its first token within this, or the local engine answers.
    pub llm_first_token_timeout: Duration,
    /// Tool rounds one reply may take.
    pub max_tool_rounds: u32,
}

impl Default for CallSettings {
    fn default() -> Self {
        Self {
            silence_timeout: Duration::from_secs(10),
            barge_in_after: Duration::from_millis(500),
            max_duration: Duration::from_secs(15 * 60),
            checkpoint_ttl: Duration::from_secs(2 * 60 * 60),
            early_start_after: Duration::from_millis(200),
            llm_first_token_timeout: Duration::from_millis(1500),
            max_tool_rounds: 4,
        }
    }
}

/// Shared things every call uses.
#[derive(Clone)]
pub struct CallDeps {
    pub pool: PgPool,
    pub store: CallStateStore,
    pub engines: Engines,
    pub prompts: Arc<Prompts>,
    pub settings: CallSettings,
}

/// Who and what this call is.
#[derive(Debug, Clone)]
pub struct CallSetup {
    pub tenant: Tenant,
    pub call_id: CallId,
    pub call_sid: String,
    pub stream_sid: String,
    pub caller: String,
    /// ConversationRelay: Twilio recognises and speaks; the actor exchanges text only.
    pub relay: bool,
}

/// How the call ended, for the transport.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSummary {
    pub outcome: String,
    pub transfer: bool,
    pub turns: usize,
}

/// The agent turn being spoken.
struct AgentTurn {
    index: usize,
    /// Text handed to the synthesizer so far.
    text: String,
    end_call: bool,
    transfer: bool,
    /// No more text will come for this turn.
    text_complete: bool,
}

/// A reply the language model is producing.
struct LlmReply {
    events: mpsc::Receiver<LlmEvent>,
    /// Text of this reply not yet handed to the synthesizer (an incomplete clause).
    unsent: String,
    /// All text of this reply, across tool rounds.
    text: String,
    calls: Vec<ToolCallRequest>,
    rounds: u32,
    timing: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Started early on an interim transcript: events are held until the final transcript
    /// confirms it.
    speculative: Option<String>,
    held: Vec<LlmEvent>,
    deadline: Option<Instant>,
    /// The caller's words this reply answers (for the local engine if the model fails).
    utterance: String,
    end_call: bool,
    transfer: bool,
    /// The current stream has ended (held events may still wait for confirmation).
    finished: bool,
}

pub struct CallActor {
    deps: CallDeps,
    setup: CallSetup,
    policy: Policy,
    llm: Option<Arc<dyn LanguageModel>>,
    conversation: LlmConversation,
    reply: Option<LlmReply>,
    output: mpsc::Sender<CallOutput>,
    stt: Option<SttStream>,
    stt_engine: Arc<dyn SpeechToText>,
    stt_is_local: bool,
    tts_engine: Arc<dyn StreamingTts>,
    tts_is_local: bool,
    tts_call: Box<dyn TtsCall>,
    tts: Option<TtsTurn>,
    playback: Playback,
    speaking: Option<AgentTurn>,
    turns: Vec<Turn>,
    failures: Vec<String>,
    /// When the caller last started speaking (STT speech start), for the caller's turn.
    speech_started_at: Option<DateTime<Utc>>,
    /// When the latest interim transcript changed: our proxy for "caller stopped speaking".
    last_interim_at: Option<DateTime<Utc>>,
    last_interim_changed: Option<Instant>,
    last_interim: String,
    /// Speech over the agent that may become a barge-in.
    barge_deadline: Option<Instant>,
    /// When the agent went quiet for the caller's speech (a hold, not yet a barge-in).
    held_at: Option<Instant>,
    /// The caller's last loud frame: the recogniser may say nothing for a while during
    /// speech, and the agent must not resume over a caller who is still talking.
    caller_voice_at: Option<Instant>,
    last_activity: Instant,
    started: Instant,
    hangup_requested: bool,
    closed: bool,
    send_buf: Vec<Send>,
    calendar: Calendar,
    shutting_down: bool,
    /// ConversationRelay: when to end the session (after the goodbye has been spoken).
    relay_end_at: Option<Instant>,
    /// The unheard rest of a turn cut by speech that may turn out not to be a real
    /// interruption (it resumes if the caller says nothing after all).
    resume: Option<Resume>,
    /// When the next housekeeping tick runs (pacing, timers).
    next_tick: Instant,
    /// Both legs being recorded, when the tenant records calls (boxed: nothing when off).
    recording: Option<Box<Recorder>>,
}

/// The rest of an interrupted turn, kept in case the interruption was false.
struct Resume {
    text: String,
    end_call: bool,
    transfer: bool,
    at: Instant,
}

/// How long after a cut-off the agent waits for words before resuming.
const RESUME_AFTER: Duration = Duration::from_millis(1500);
/// Mean absolute level (of 32767) above which a caller's frame counts as their voice.
const CALLER_VOICE_LEVEL: u32 = 400;
/// How long the agent holds for a sound over it that never becomes words.
const MAX_HOLD_WITHOUT_WORDS: Duration = Duration::from_millis(1500);

impl CallActor {
    pub fn new(deps: CallDeps, setup: CallSetup, output: mpsc::Sender<CallOutput>) -> Self {
        let language = setup.tenant.default_language();
        let policy = Policy::new(language, Some(&setup.caller));
        let now = Instant::now();
        let calendar = setup.tenant.calendar();
        let (stt_engine, stt_is_local) = deps.engines.pick_stt();
        let (tts_engine, tts_is_local) = deps.engines.pick_tts();
        let tts_call = tts_engine.open_call(language);
        let llm = deps.engines.pick_llm();
        let recording = start_recording(&setup, now);
        Self {
            recording,
            next_tick: now,
            resume: None,
            relay_end_at: None,
            calendar,
            shutting_down: false,
            llm,
            conversation: LlmConversation::default(),
            reply: None,
            stt_engine,
            stt_is_local,
            tts_engine,
            tts_is_local,
            tts_call,
            deps,
            setup,
            policy,
            output,
            stt: None,
            tts: None,
            playback: Playback::new(),
            speaking: None,
            turns: Vec::new(),
            failures: Vec::new(),
            speech_started_at: None,
            held_at: None,
            caller_voice_at: None,
            last_interim_at: None,
            last_interim_changed: None,
            last_interim: String::new(),
            barge_deadline: None,
            last_activity: now,
            started: now,
            hangup_requested: false,
            closed: false,
            send_buf: Vec::new(),
        }
    }

    /// Runs the call until the caller hangs up, the agent ends it, or shutdown; then saves
    /// everything.
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<CallInput>,
        mut shutdown: watch::Receiver<bool>,
    ) -> CallSummary {
        let call_sid = self.setup.call_sid.clone();
        let tenant_id = self.setup.tenant.id;
        if let Err(e) = self.deps.store.mark_live(tenant_id, &call_sid).await {
            tracing::warn!(call_sid, error = %e, "could not index the live call");
        }
        let greeting = self.with_policy(|p, ctx| p.greet(ctx));
        if self.setup.relay {
            // Twilio speaks the welcome greeting itself; it only goes in the transcript.
            if let Step::Reply { text, .. } = greeting {
                self.open_agent_turn(None);
                self.record_agent_text(&text);
                self.finish_relay_turn(false);
            }
        } else {
            self.open_stt();
            self.act(greeting, None).await;
        }

        while !self.closed {
            let barge_at = self.barge_deadline;
            let llm_deadline = self.reply.as_ref().and_then(|r| r.deadline);
            tokio::select! {
                biased;
                changed = shutdown.changed(), if !self.shutting_down => {
                    // A dropped sender only means nobody will ask us to stop.
                    self.shutting_down = changed.is_err() || *shutdown.borrow();
                    if changed.is_ok() && self.shutting_down {
                        tracing::info!(call_sid, "shutting down: ending call politely");
                        self.end_for_time().await;
                    }
                }
                msg = input.recv() => match msg {
                    Some(CallInput::Hangup) | None => {
                        tracing::info!(call_sid, "caller hung up");
                        self.closed = true;
                    }
                    Some(msg) => self.on_input(msg).await,
                },
                event = recv_stt(&mut self.stt) => match event {
                    Some(event) => self.on_stt(event).await,
                    None => self.on_stt_failure(ProviderError::retryable(self.stt_engine.name(), "stream closed")),
                },
                chunk = recv_tts(&mut self.tts) => self.on_tts(chunk).await,
                event = recv_llm(&mut self.reply) => self.on_llm(event).await,
                _ = sleep_until(llm_deadline) => {
                    self.on_llm(Some(LlmEvent::Error(ProviderError::retryable("llm", "no first token in time")))).await;
                }
                _ = sleep_until(barge_at) => self.on_barge_deadline().await,
                _ = tokio::time::sleep_until(self.next_tick) => {
                    self.on_tick().await;
                    self.next_tick = Instant::now() + self.tick_period();
                }
            }
        }
        self.finish().await
    }

    fn context(&self) -> Context<'_> {
        let tenant = &self.setup.tenant;
        Context {
            prompts: &self.deps.prompts,
            business_name: &tenant.business_name,
            greeting: tenant.custom_greeting.as_deref().filter(|g| !g.trim().is_empty()),
            services: &tenant.services,
            description: &tenant.business_description,
            calendar: &self.calendar,
            now: Utc::now(),
            recording_notice: self.recording.is_some(),
        }
    }

    // ----- speech recognition -------------------------------------------------------------

    fn open_stt(&mut self) {
        let mut language = self.policy.language;
        loop {
            match self.stt_engine.open(language) {
                Ok(stream) => {
                    self.stt = Some(stream);
                    return;
                }
                Err(e) => {
                    tracing::error!(call_sid = %self.setup.call_sid, error = %e, "speech recognition unavailable");
                    self.failures.push(format!("stt: {e}"));
                    if !self.stt_is_local {
                        self.deps.engines.breakers.stt.record_failure();
                        if let Some(local) = self.deps.engines.stt_fallback.clone() {
                            self.stt_engine = local;
                            self.stt_is_local = true;
                            continue;
                        }
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

    fn on_stt_failure(&mut self, e: ProviderError) {
        tracing::error!(call_sid = %self.setup.call_sid, error = %e, "speech recognition failed");
        self.failures.push(format!("stt: {e}"));
        self.stt = None;
        if !self.stt_is_local {
            self.deps.engines.breakers.stt.record_failure();
            if let Some(local) = self.deps.engines.stt_fallback.clone() {
                tracing::warn!(call_sid = %self.setup.call_sid, "switching to the local recogniser");
                self.stt_engine = local;
                self.stt_is_local = true;
            }
        }
        self.open_stt();
    }

    async fn on_input(&mut self, msg: CallInput) {
        match msg {
            CallInput::Audio { bytes, timestamp_ms } => {
                if mulaw::mean_level(&bytes) >= CALLER_VOICE_LEVEL {
                    self.caller_voice_at = Some(Instant::now());
                }
                if let Some(recording) = self.recording.as_mut() {
                    // Encoding here, one 20 ms frame per inbound frame (tens of µs), keeps
                    // each step short; the tick only catches up when frames stop coming.
                    let now = Instant::now();
                    recording.caller(&bytes, timestamp_ms, now);
                    if let Err(e) = recording.advance(now) {
                        self.drop_recording(e);
                    }
                }
                if let Some(stt) = &self.stt {
                    // Never block the call on a slow recogniser: drop and count instead.
                    if let Err(mpsc::error::TrySendError::Full(_)) = stt.input.try_send(SttInput::Audio(bytes)) {
                        metrics::counter!("ringlypro_stt_frames_dropped_total").increment(1);
                    }
                }
            }
            CallInput::Dtmf(digit) => {
                self.last_activity = Instant::now();
                let language = match digit {
                    '1' => Some(Language::English),
                    '2' => Some(Language::Spanish),
                    _ => None,
                };
                if let Some(language) = language {
                    // A language the owner turned off in settings is not offered.
                    if language != self.policy.language && self.setup.tenant.answers_in(language) {
                        self.interrupt_agent().await;
                        self.switch_language(language);
                        let greeting = self.with_policy(|p, ctx| p.greet(ctx));
                        self.act(greeting, None).await;
                    }
                    return;
                }
                let step = self.with_policy(|p, ctx| p.on_dtmf(ctx, digit));
                if let Some(step) = step {
                    self.interrupt_agent().await;
                    self.act(step, None).await;
                }
            }
            CallInput::Mark(name) => {
                if self.playback.on_mark(&name)
                    && let Some(turn) = &self.speaking
                    && let Some(t) = self.turns.get_mut(turn.index)
                {
                    t.first_mark_at.get_or_insert_with(Utc::now);
                }
            }
            CallInput::Prompt(text) => {
                self.last_activity = Instant::now();
                let text = text.trim().to_owned();
                if !text.is_empty() {
                    self.speech_started_at = Some(Utc::now());
                    self.on_caller_turn(text).await;
                }
            }
            CallInput::Interrupted { heard } => self.relay_interrupted(&heard),
            CallInput::Hangup => self.closed = true,
        }
    }

    /// ConversationRelay stopped our speech because the caller talked: trim like barge-in.
    fn relay_interrupted(&mut self, heard: &str) {
        let reply = self.reply.take();
        self.relay_end_at = None;
        self.hangup_requested = false;
        let Some(index) = self.speaking.take().map(|t| t.index).or_else(|| self.last_agent_turn()) else { return };
        let spoken = reply.map(|r| r.text).unwrap_or_else(|| self.turns[index].text.clone());
        if let Some(t) = self.turns.get_mut(index) {
            t.interrupted = true;
            t.heard_text = Some(heard.trim().to_owned());
            t.ended_at.get_or_insert_with(Utc::now);
        }
        if self.llm.is_some() {
            self.conversation.trim_interrupted(&spoken, heard);
        }
        metrics::counter!("ringlypro_barge_ins_total").increment(1);
        tracing::info!(call_sid = %self.setup.call_sid, heard, "caller interrupted the agent");
    }

    fn last_agent_turn(&self) -> Option<usize> {
        self.turns.iter().rposition(|t| t.speaker == Speaker::Agent)
    }

    async fn on_stt(&mut self, event: SttEvent) {
        let now = Instant::now();
        tracing::debug!(call_sid = %self.setup.call_sid, ?event, speaking = self.agent_is_speaking(now), "stt event");
        match event {
            SttEvent::SpeechStarted => {
                self.last_activity = now;
                self.speech_started_at.get_or_insert_with(Utc::now);
                if self.agent_is_speaking(now) {
                    self.hold_for_caller(now).await;
                    if self.barge_deadline.is_none() {
                        self.barge_deadline = Some(now + self.deps.settings.barge_in_after);
                    }
                }
            }
            SttEvent::Interim { text } => {
                self.last_activity = now;
                self.speech_started_at.get_or_insert_with(Utc::now);
                if text != self.last_interim {
                    self.last_interim_at = Some(Utc::now());
                    self.last_interim_changed = Some(now);
                    self.last_interim = text.clone();
                    // The caller is still talking: an early start on older words is stale.
                    if self.reply.as_ref().is_some_and(|r| r.speculative.as_deref().is_some_and(|s| s != text)) {
                        self.reply = None;
                    }
                }
                if self.agent_is_speaking(now) && !text.trim().is_empty() && !nlu::is_backchannel(&text) {
                    // Real words over the agent: hold now; once they have lasted long enough,
                    // the turn is over.
                    self.hold_for_caller(now).await;
                    match self.barge_deadline {
                        Some(deadline) if deadline <= now => self.interrupt(true).await,
                        Some(_) => {}
                        None => self.barge_deadline = Some(now + self.deps.settings.barge_in_after),
                    }
                }
            }
            SttEvent::Final { text, speech_final } => {
                self.last_activity = now;
                let text = text.trim().to_owned();
                let speaking = self.agent_is_speaking(now);
                if text.is_empty() {
                    self.barge_deadline = None;
                    self.end_hold();
                    self.resume_if_false_interruption().await;
                } else if (speaking || self.resume.is_some()) && nlu::is_backchannel(&text) {
                    // "mhm", "okay": the caller is listening, not taking the floor.
                    tracing::debug!(call_sid = %self.setup.call_sid, text, "backchannel ignored");
                    self.barge_deadline = None;
                    self.end_hold();
                    self.reset_caller_turn();
                    self.resume_if_false_interruption().await;
                } else {
                    self.resume = None;
                    if speaking {
                        self.interrupt_agent().await;
                    }
                    if speech_final {
                        self.on_caller_turn(text).await;
                    }
                }
            }
            SttEvent::Error(e) => self.on_stt_failure(e),
        }
    }

    /// The speech that cut the agent off came to nothing: say the rest of the turn.
    async fn resume_if_false_interruption(&mut self) {
        let Some(resume) = self.resume.take() else { return };
        tracing::info!(call_sid = %self.setup.call_sid, "false interruption: resuming");
        metrics::counter!("ringlypro_false_interruptions_total").increment(1);
        self.reset_caller_turn();
        if self.llm.is_some() {
            self.conversation.push_assistant(&resume.text);
        }
        self.speak(resume.text, resume.end_call, resume.transfer, None).await;
    }

    fn reset_caller_turn(&mut self) {
        self.speech_started_at = None;
        self.last_interim_at = None;
        self.last_interim_changed = None;
        self.last_interim.clear();
    }

    async fn on_barge_deadline(&mut self) {
        self.barge_deadline = None;
        let now = Instant::now();
        if self.agent_is_speaking(now)
            && !self.last_interim.trim().is_empty()
            && !nlu::is_backchannel(&self.last_interim)
        {
            self.interrupt(true).await;
        } else if self.agent_is_speaking(now) && self.last_interim.trim().is_empty() {
            let voice_stopped = self.caller_voice_at.is_none_or(|v| now.duration_since(v) >= MAX_HOLD_WITHOUT_WORDS);
            let held_for = self.held_at.map_or(Duration::ZERO, |t| now.duration_since(t));
            // Noise that goes on and on (a television) does not keep the agent quiet forever.
            if held_for >= MAX_HOLD_WITHOUT_WORDS && (voice_stopped || held_for >= 3 * MAX_HOLD_WITHOUT_WORDS) {
                // Noise the recogniser never turned into words: go on talking.
                self.end_hold();
            } else {
                // Speech without words yet: wait for the recogniser to tell what it was.
                self.barge_deadline = Some(now + self.deps.settings.barge_in_after);
            }
        }
    }

    /// The caller started to speak over the agent: stop the audio at once (`clear`), keeping
    /// the unplayed rest, until it is clear whether they are taking the floor (barge-in) or
    /// only made a sound (the turn goes on from where it stopped).
    async fn hold_for_caller(&mut self, now: Instant) {
        if self.setup.relay || self.held_at.is_some() || self.speaking.is_none() {
            return;
        }
        self.held_at = Some(now);
        self.send(CallOutput::Clear).await;
        self.playback.pause();
        if let Some(recording) = self.recording.as_mut() {
            recording.cut_agent(now);
        }
        if let Some(started) = self.speech_started_at {
            let waited = (Utc::now() - started).to_std().unwrap_or_default();
            metrics::histogram!("ringlypro_barge_in_seconds").record(waited.as_secs_f64());
        }
        tracing::debug!(call_sid = %self.setup.call_sid, "holding for the caller");
    }

    /// The speech over the agent came to nothing: the agent goes on.
    fn end_hold(&mut self) {
        if self.held_at.take().is_some() {
            self.playback.unpause();
            tracing::debug!(call_sid = %self.setup.call_sid, "hold over: the agent goes on");
        }
    }

    fn agent_is_speaking(&self, now: Instant) -> bool {
        self.speaking.is_some() && (self.playback.is_speaking(now) || self.tts.is_some())
    }

    /// Barge-in as one operation: clear Twilio's buffer, close the synthesis turn, abort the
    /// model's stream, drop queued audio, and keep in both the transcript and the model's
    /// history only what the caller actually heard.
    async fn interrupt_agent(&mut self) {
        self.interrupt(false).await;
    }

    /// Stops the agent. `resumable`: the caller's words are not final yet, so keep the
    /// unheard rest of a complete turn in case they come to nothing.
    async fn interrupt(&mut self, resumable: bool) {
        self.barge_deadline = None;
        self.resume = None;
        let reply = self.reply.take();
        let held = self.held_at.take().is_some();
        let Some(turn) = self.speaking.take() else {
            return;
        };
        if !self.setup.relay && !held {
            self.send(CallOutput::Clear).await;
        }
        self.tts = None; // dropping the turn closes its context; its audio is never read again
        let fraction = self.playback.clear();
        if let Some(recording) = self.recording.as_mut() {
            recording.cut_agent(Instant::now());
        }
        let spoken = match &reply {
            Some(r) => r.text.clone(),
            None => turn.text.clone(),
        };
        let heard = playback::heard_text(&spoken, fraction);
        if let Some(t) = self.turns.get_mut(turn.index) {
            t.text = spoken.clone();
            t.interrupted = true;
            t.heard_text = Some(heard.clone());
            t.ended_at = Some(Utc::now());
        }
        if self.llm.is_some() {
            self.conversation.trim_interrupted(&spoken, &heard);
        }
        let heard_words = heard.split_whitespace().count();
        let rest: String = spoken.split_whitespace().skip(heard_words).collect::<Vec<_>>().join(" ");
        if resumable && reply.is_none() && turn.text_complete && !rest.is_empty() {
            self.resume =
                Some(Resume { text: rest, end_call: turn.end_call, transfer: turn.transfer, at: Instant::now() });
        }
        metrics::counter!("ringlypro_barge_ins_total").increment(1);
        tracing::info!(call_sid = %self.setup.call_sid, heard, "caller interrupted the agent");
        // A goodbye or transfer the caller talked over is not carried out: they want more.
        self.hangup_requested = false;
    }

    // ----- the caller's turn ----------------------------------------------------------------

    /// Adds the caller's utterance to the transcript; returns its index.
    fn record_caller_turn(&mut self, text: String) -> usize {
        let stt_final_at = Utc::now();
        let started_at = self.speech_started_at.take().unwrap_or(stt_final_at);
        let caller_stopped_at = self.last_interim_at.take().unwrap_or(stt_final_at);
        self.last_interim.clear();
        self.last_interim_changed = None;
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
        self.publish_turn(self.turns.len() - 1);
        self.turns.len() - 1
    }

    async fn on_caller_turn(&mut self, text: String) {
        if self.policy.stage == Stage::Intent && self.turns.iter().all(|t| t.speaker != Speaker::Caller) {
            self.maybe_switch_language(&text);
        }
        let caller_index = self.record_caller_turn(text.clone());
        let timing = {
            let t = &self.turns[caller_index];
            (t.ended_at.unwrap_or(t.started_at), t.stt_final_at.unwrap_or(t.started_at))
        };
        if self.llm.is_some() {
            self.reply_with_model(text, timing).await;
        } else {
            let step = self.with_policy(|p, ctx| p.on_utterance(ctx, &text));
            self.act(step, Some(timing)).await;
        }
        if let (Some(intent), Some(turn)) = (self.policy.intent, self.turns.get_mut(caller_index)) {
            turn.intent = serde_json::to_value(intent).ok().and_then(|v| v.as_str().map(str::to_owned));
        }
        self.checkpoint().await;
    }

    fn maybe_switch_language(&mut self, text: &str) {
        if nlu::looks_spanish(text)
            && self.policy.language != Language::Spanish
            && self.setup.tenant.answers_in(Language::Spanish)
        {
            tracing::info!(call_sid = %self.setup.call_sid, "caller speaks Spanish: switching to Lina");
            self.switch_language(Language::Spanish);
        }
    }

    fn switch_language(&mut self, language: Language) {
        self.policy.language = language;
        self.tts_call = self.tts_engine.open_call(language);
        // The recogniser stays as it is: reopening it mid-call would lose words in flight,
        // and the cloud one is opened for English and Spanish together.
    }

    fn with_policy<T>(&mut self, f: impl FnOnce(&mut Policy, &Context<'_>) -> T) -> T {
        let mut policy = std::mem::replace(&mut self.policy, Policy::new(Language::English, None));
        let result = {
            let ctx = self.context();
            f(&mut policy, &ctx)
        };
        self.policy = policy;
        result
    }

    // ----- the local dialogue engine --------------------------------------------------------

    /// Runs tools until the engine has something to say, then starts saying it.
    async fn act(&mut self, mut step: Step, timing: Option<(DateTime<Utc>, DateTime<Utc>)>) {
        for _ in 0..8 {
            match step {
                Step::Tool(call) => {
                    let result = self.run_tool(call).await;
                    step = self.with_policy(|p, ctx| p.on_tool_result(ctx, result));
                }
                Step::Reply { text, end, transfer } => {
                    self.speak(text, end, transfer, timing).await;
                    return;
                }
            }
        }
        tracing::error!(call_sid = %self.setup.call_sid, "dialogue engine kept calling tools; ending the turn");
    }

    async fn run_tool(&mut self, call: ToolCall) -> ToolResult {
        let deps = &self.deps;
        let tenant = &self.setup.tenant;
        let now = Utc::now();
        match call {
            ToolCall::CheckAvailability(pref) => match booking::availability(&deps.pool, tenant, &pref, now, 3).await {
                Ok(slots) => ToolResult::Slots(slots),
                Err(e) => self.tool_failed("check_availability", e),
            },
            ToolCall::Book { slot, name, phone } => {
                let req = self.booking_request(slot, name, phone);
                match booking::book(&deps.pool, tenant, &req, now).await {
                    Ok(booked) => ToolResult::Booked {
                        code: booked.appointment.confirmation_code,
                        slot: Slot { starts_at: booked.appointment.starts_at, ends_at: booked.appointment.ends_at },
                    },
                    Err(BookingError::SlotTaken) | Err(BookingError::NotBookable) => ToolResult::SlotTaken,
                    Err(e) => self.tool_failed("book_appointment", anyhow::Error::from(e)),
                }
            }
            ToolCall::FindAppointment { phone, code } => {
                match booking::find(&deps.pool, tenant, phone.as_deref(), code.as_deref(), now).await {
                    Ok(found) => ToolResult::Found(found.map(|a| FoundAppointment {
                        id: a.id,
                        name: a.customer_name,
                        starts_at: a.starts_at,
                        ends_at: a.ends_at,
                        code: a.confirmation_code,
                    })),
                    Err(e) => self.tool_failed("find_appointment", e),
                }
            }
            ToolCall::Cancel { appointment_id } => {
                match booking::cancel(&deps.pool, tenant, appointment_id, Some(self.setup.call_id)).await {
                    Ok(done) => ToolResult::Cancelled(done),
                    Err(e) => self.tool_failed("cancel_appointment", e),
                }
            }
            ToolCall::TakeMessage { text } => {
                match booking::take_message(&deps.pool, tenant, Some(self.setup.call_id), &self.setup.caller, &text)
                    .await
                {
                    Ok(()) => ToolResult::MessageTaken,
                    Err(e) => self.tool_failed("take_message", e),
                }
            }
        }
    }

    fn booking_request(&self, slot: Slot, name: String, phone: String) -> BookingRequest {
        BookingRequest {
            name,
            phone,
            slot,
            call_id: Some(self.setup.call_id),
            language: self.policy.language,
            source: BookingSource::voice(self.policy.language),
        }
    }

    fn tool_failed(&mut self, tool: &str, e: anyhow::Error) -> ToolResult {
        tracing::error!(call_sid = %self.setup.call_sid, tool, error = format!("{e:#}"), "tool failed");
        self.failures.push(format!("{tool}: {e}"));
        ToolResult::Failed(tool.to_owned())
    }

    // ----- the language model ---------------------------------------------------------------

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
            request.messages.push(crate::providers::llm::ChatMessage::user(text));
        }
        Some(llm.stream(request))
    }

    /// Answers the caller's words with the model, reusing an early start on the same words.
    async fn reply_with_model(&mut self, text: String, timing: (DateTime<Utc>, DateTime<Utc>)) {
        self.conversation.push_user(&text);
        let reuse = self.reply.as_ref().and_then(|r| r.speculative.as_deref()).is_some_and(|s| same_words(s, &text));
        if reuse {
            metrics::counter!("ringlypro_llm_early_starts_used_total").increment(1);
            if let Some(reply) = self.reply.as_mut() {
                reply.speculative = None;
                reply.timing = Some(timing);
                reply.utterance = text;
            }
            let held = self.reply.as_mut().map(|r| std::mem::take(&mut r.held)).unwrap_or_default();
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

    fn new_reply(
        &self,
        events: mpsc::Receiver<LlmEvent>,
        timing: Option<(DateTime<Utc>, DateTime<Utc>)>,
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

    /// The caller paused with a stable interim transcript: start the model on it now, and
    /// keep its output until the final transcript confirms the words.
    fn maybe_start_early(&mut self, now: Instant) {
        if self.llm.is_none() || self.reply.is_some() || self.speaking.is_some() {
            return;
        }
        let stable =
            self.last_interim_changed.is_some_and(|at| now.duration_since(at) >= self.deps.settings.early_start_after);
        let words = self.last_interim.split_whitespace().count();
        if !stable || words < 2 || nlu::is_backchannel(&self.last_interim) {
            return;
        }
        let text = self.last_interim.clone();
        if let Some(events) = self.start_model(Some(&text)) {
            let mut reply = self.new_reply(events, None, Some(text.clone()), text);
            reply.deadline = None; // timed from the final transcript, not from here
            self.reply = Some(reply);
        }
    }

    async fn on_llm(&mut self, event: Option<LlmEvent>) {
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

    /// Hands one finished clause of the model's reply to the synthesizer, opening the
    /// agent's turn on the first one.
    async fn say_clause(&mut self, clause: &str, timing: Option<(DateTime<Utc>, DateTime<Utc>)>) {
        if self.speaking.is_none() || (self.tts.is_none() && !self.setup.relay) {
            self.open_agent_turn(timing);
        }
        self.push_tts_text(clause).await;
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
        self.flush_tts().await;
        if reply.text.trim().is_empty() && reply.end_call {
            // Ended without a word: nothing to play, so hang up now.
            self.send(CallOutput::Close).await;
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

    async fn run_model_tool(&mut self, tool: ModelTool, reply: &mut LlmReply) -> serde_json::Value {
        let now = Utc::now();
        let result = match tool {
            ModelTool::Call(call) => {
                if let ToolCall::Book { name, .. } = &call {
                    self.policy.name = Some(name.clone());
                }
                self.run_tool(call).await
            }
            ModelTool::Reschedule { appointment_id, slot } => {
                let name = self.policy.name.clone().unwrap_or_default();
                let phone = self.setup.caller.clone();
                let req = self.booking_request(slot, name, phone);
                match booking::reschedule(&self.deps.pool, &self.setup.tenant, appointment_id, &req, now).await {
                    Ok(booked) => {
                        self.policy.outcome = Outcome::Rescheduled;
                        return tools::result_json(
                            &ToolResult::Booked { code: booked.appointment.confirmation_code, slot },
                            &self.calendar,
                            now,
                            self.policy.language,
                        );
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
    async fn fall_back_to_local(&mut self, utterance: &str, timing: Option<(DateTime<Utc>, DateTime<Utc>)>, why: &str) {
        tracing::info!(call_sid = %self.setup.call_sid, why, "local dialogue engine answers");
        let step = if utterance.trim().is_empty() {
            self.with_policy(|p, ctx| p.on_silence(ctx))
        } else {
            self.with_policy(|p, ctx| p.on_utterance(ctx, utterance))
        };
        self.act(step, timing).await;
    }

    // ----- speaking -------------------------------------------------------------------------

    /// How often to tick: every 20 ms while audio is being paced out or a reply is under
    /// way; every 100 ms while only listening (timers need no finer grain), so a thousand
    /// quiet calls do not wake fifty thousand times a second.
    fn tick_period(&self) -> Duration {
        let busy = self.speaking.is_some()
            || self.playback.has_pending()
            || self.reply.is_some()
            || self.resume.is_some()
            || self.relay_end_at.is_some();
        Duration::from_millis(if busy { 20 } else { 100 })
    }

    /// Audio is about to flow: pace it from the next 20 ms on.
    fn wake_soon(&mut self) {
        let soon = Instant::now() + Duration::from_millis(20);
        if self.next_tick > soon {
            self.next_tick = soon;
        }
    }

    fn open_agent_turn(&mut self, timing: Option<(DateTime<Utc>, DateTime<Utc>)>) {
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
        if !self.setup.relay {
            self.playback.start_turn();
            self.held_at = None;
            self.tts = Some(self.tts_call.start_turn());
        }
        self.speaking = Some(AgentTurn {
            index: self.turns.len() - 1,
            text: String::new(),
            end_call: false,
            transfer: false,
            text_complete: false,
        });
        self.last_activity = Instant::now();
    }

    fn record_agent_text(&mut self, text: &str) {
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

    async fn push_tts_text(&mut self, text: &str) {
        self.record_agent_text(text);
        if self.setup.relay {
            if let Some(turn) = &self.speaking
                && let Some(t) = self.turns.get_mut(turn.index)
            {
                let now = Some(Utc::now());
                t.tts_first_byte_at = t.tts_first_byte_at.or(now);
                t.first_audio_sent_at = t.first_audio_sent_at.or(now);
            }
            self.send(CallOutput::Text { token: format!("{text} "), last: false }).await;
            return;
        }
        let sent = match &self.tts {
            Some(tts) => tts.text.send(TtsInput::Text(text.to_owned())).await.is_ok(),
            None => false,
        };
        if !sent {
            self.on_tts(Some(Err(ProviderError::retryable(self.tts_engine.name(), "synthesis turn closed")))).await;
        }
    }

    async fn flush_tts(&mut self) {
        if self.setup.relay {
            self.send(CallOutput::Text { token: String::new(), last: true }).await;
            let end_call = self.speaking.as_ref().is_some_and(|t| t.end_call) && self.hangup_requested;
            self.finish_relay_turn(end_call);
            return;
        }
        if let Some(turn) = self.speaking.as_mut() {
            turn.text_complete = true;
            if let Some(t) = self.turns.get(turn.index) {
                self.publish_turn_at(t.seq as usize);
            }
        }
        if let Some(tts) = &self.tts {
            let _ = tts.text.send(TtsInput::Flush).await;
        }
        // After the flush, so the reply's audio is not held up by the store.
        self.checkpoint().await;
    }

    /// Says a whole reply (the local engine's, or a fixed line) as one agent turn.
    async fn speak(
        &mut self,
        text: String,
        end_call: bool,
        transfer: bool,
        timing: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) {
        let continuing = self.speaking.as_ref().is_some_and(|t| !t.text_complete) && self.tts.is_some();
        if !continuing {
            if self.speaking.is_some() {
                self.interrupt_agent().await;
            }
            self.open_agent_turn(timing);
        }
        self.push_tts_text(&text).await;
        if let Some(turn) = self.speaking.as_mut() {
            turn.end_call = end_call;
            turn.transfer = transfer;
        }
        self.hangup_requested = end_call;
        self.flush_tts().await;
    }

    async fn on_tts(&mut self, chunk: Option<Result<Vec<u8>, ProviderError>>) {
        match chunk {
            Some(Ok(audio)) => {
                self.wake_soon();
                if let Some(turn) = &self.speaking
                    && let Some(t) = self.turns.get_mut(turn.index)
                {
                    t.tts_first_byte_at.get_or_insert_with(Utc::now);
                }
                self.playback.push(&audio);
                self.pump().await;
            }
            Some(Err(e)) => self.on_tts_failure(e).await,
            None => {
                let complete = self.speaking.as_ref().is_none_or(|t| t.text_complete);
                if !complete {
                    // The engine closed the turn while text was still coming.
                    self.on_tts_failure(ProviderError::retryable(self.tts_engine.name(), "turn closed early")).await;
                    return;
                }
                self.tts = None;
                self.playback.finish_input();
                self.pump().await;
            }
        }
    }

    /// Synthesis failed: switch to the local engine and say the turn again from its text,
    /// so the caller hears the reply rather than silence.
    async fn on_tts_failure(&mut self, e: ProviderError) {
        tracing::error!(call_sid = %self.setup.call_sid, error = %e, "speech synthesis failed");
        self.failures.push(format!("tts: {e}"));
        self.tts = None;
        let fallback = if self.tts_is_local { None } else { self.deps.engines.tts_fallback.clone() };
        let Some(local) = fallback else {
            self.playback.finish_input();
            return;
        };
        self.deps.engines.breakers.tts.record_failure();
        self.tts_engine = local;
        self.tts_is_local = true;
        self.tts_call = self.tts_engine.open_call(self.policy.language);
        let Some(turn) = self.speaking.as_ref() else { return };
        let (text, complete) = (turn.text.clone(), turn.text_complete);
        let new_turn = self.tts_call.start_turn();
        if !text.trim().is_empty() {
            let _ = new_turn.text.send(TtsInput::Text(text)).await;
        }
        if complete {
            let _ = new_turn.text.send(TtsInput::Flush).await;
        }
        self.tts = Some(new_turn);
    }

    async fn pump(&mut self) {
        let now = Instant::now();
        let mut buf = std::mem::take(&mut self.send_buf);
        self.playback.pump(now, &mut buf);
        let first_audio = buf.iter().any(|s| matches!(s, Send::Audio { .. }));
        if first_audio
            && let Some(turn) = &self.speaking
            && let Some(t) = self.turns.get_mut(turn.index)
            && t.first_audio_sent_at.is_none()
        {
            let sent_at = Utc::now();
            t.first_audio_sent_at = Some(sent_at);
            record_latency("stt_final_to_first_audio", t.stt_final_at, Some(sent_at));
            record_latency("caller_stop_to_first_audio", t.caller_stopped_at, Some(sent_at));
            record_latency("stt_final_to_reply_start", t.stt_final_at, t.reply_ready_at);
            record_latency("reply_start_to_tts_first_byte", t.reply_ready_at, t.tts_first_byte_at);
        }
        for item in buf.drain(..) {
            let out = match item {
                Send::Audio { bytes, plays_at } => {
                    if let Some(recording) = self.recording.as_mut() {
                        recording.agent(&bytes, plays_at);
                    }
                    CallOutput::Audio(bytes)
                }
                Send::Mark(m) => CallOutput::Mark(m),
            };
            self.send(out).await;
        }
        self.send_buf = buf;
    }

    /// ConversationRelay speaks on its own: the turn is over once its text is sent. A
    /// goodbye ends the session once Twilio has had time to say it.
    fn finish_relay_turn(&mut self, end_call: bool) {
        if let Some(turn) = self.speaking.take() {
            if let Some(t) = self.turns.get_mut(turn.index) {
                t.ended_at = Some(Utc::now());
            }
            self.publish_turn_at(turn.index);
            if end_call {
                // About 15 characters a second of speech, at most 8 s.
                let speech = Duration::from_millis((turn.text.chars().count() as u64 * 65).min(8000));
                self.relay_end_at = Some(Instant::now() + speech);
            }
        }
        self.last_activity = Instant::now();
    }

    async fn on_tick(&mut self) {
        let now = Instant::now();
        if let Some(recording) = self.recording.as_mut()
            && let Err(e) = recording.advance(now)
        {
            self.drop_recording(e);
        }
        if self.relay_end_at.is_some_and(|at| at <= now) {
            let handoff = serde_json::json!({
                "reason": if self.policy.outcome == Outcome::Transfer { "transfer" } else { "completed" },
                "outcome": self.policy.outcome.as_str(),
            })
            .to_string();
            self.send(CallOutput::End { handoff }).await;
            self.closed = true;
            return;
        }
        if self.playback.has_pending() {
            self.pump().await;
        }
        self.maybe_start_early(now);
        // No word from the recogniser since (a cough may never produce a final at all).
        let last_heard = self.caller_voice_at.map_or(self.last_activity, |v| v.max(self.last_activity));
        let quiet = now.duration_since(last_heard) >= RESUME_AFTER;
        if self.resume.as_ref().is_some_and(|r| now.duration_since(r.at) >= RESUME_AFTER) && quiet {
            self.resume_if_false_interruption().await;
        }
        if let Some(turn) = &self.speaking
            && turn.text_complete
            && self.tts.is_none()
            && self.playback.is_done(now)
        {
            let (index, end_call, transfer) = (turn.index, turn.end_call, turn.transfer);
            self.speaking = None;
            self.last_activity = now;
            if let Some(t) = self.turns.get_mut(index) {
                t.ended_at = Some(Utc::now());
            }
            if end_call && self.hangup_requested {
                tracing::info!(call_sid = %self.setup.call_sid, transfer, "agent ended the call");
                self.send(CallOutput::Close).await;
                self.closed = true;
                return;
            }
        }
        if now.duration_since(self.started) > self.deps.settings.max_duration && !self.hangup_requested {
            self.end_for_time().await;
            return;
        }
        let idle = self.speaking.is_none()
            && self.reply.is_none()
            && self.speech_started_at.is_none()
            && now.duration_since(self.last_activity) > self.deps.settings.silence_timeout;
        if idle {
            self.last_activity = now;
            let step = self.with_policy(|p, ctx| p.on_silence(ctx));
            self.act(step, None).await;
        }
    }

    async fn end_for_time(&mut self) {
        self.interrupt_agent().await;
        self.reply = None;
        let step = self.with_policy(|p, ctx| p.on_time_up(ctx));
        self.act(step, None).await;
    }

    async fn send(&mut self, out: CallOutput) {
        if self.output.send(out).await.is_err() {
            // The socket writer is gone: the caller hung up.
            self.closed = true;
        }
    }

    // ----- live view and persistence --------------------------------------------------------

    fn publish_turn(&self, index: usize) {
        self.publish_turn_at(index);
    }

    /// Publishes a transcript line and the slots collected so far on the tenant's live feed.
    fn publish_turn_at(&self, index: usize) {
        let Some(turn) = self.turns.get(index) else { return };
        let event = serde_json::json!({
            "type": "turn", "call_sid": self.setup.call_sid, "seq": turn.seq, "speaker": turn.speaker,
            "text": turn.text, "at": turn.started_at,
            "intent": self.policy.intent, "name": self.policy.name, "phone": self.policy.phone,
            "offered": self.policy.offered, "language": self.policy.language,
        })
        .to_string();
        let store = self.deps.store.clone();
        let tenant_id = self.setup.tenant.id;
        // Fire and forget: a slow Redis must never hold up the conversation.
        tokio::spawn(async move {
            if let Err(e) = store.publish(tenant_id, &event).await {
                tracing::debug!(error = %e, "live feed publish failed");
            }
        });
    }

    async fn checkpoint(&self) {
        // The transcript so far goes with it: a live view opened mid-call starts from here.
        let state =
            serde_json::json!({ "policy": self.policy, "conversation": self.conversation, "turns": self.turns });
        if let Err(e) =
            self.deps.store.save(&self.setup.call_sid, &state.to_string(), self.deps.settings.checkpoint_ttl).await
        {
            tracing::warn!(call_sid = %self.setup.call_sid, error = %e, "checkpoint failed");
        }
    }

    /// The encoder failed (it should not): the call goes on unrecorded.
    fn drop_recording(&mut self, e: OggOpusError) {
        tracing::error!(call_sid = %self.setup.call_sid, error = %e, "recording failed; the call goes on unrecorded");
        self.failures.push(format!("recording: {e}"));
        self.recording = None;
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

    /// Saves the call: transcript, contact, outcome, failures. Retries once, then logs
    /// the whole transcript so nothing is lost even if the database is down.
    async fn finish(mut self) -> CallSummary {
        // The recording ends at the hang-up, not after the saving below.
        let recording = self.recording.take().map(|r| r.finish(Instant::now()));
        self.reply = None;
        if let Some(turn) = self.speaking.take() {
            // Hung up while the agent was talking: keep what was heard.
            let fraction = self.playback.heard_fraction();
            if let Some(t) = self.turns.get_mut(turn.index) {
                t.heard_text = Some(playback::heard_text(&turn.text, fraction));
                t.interrupted = fraction < 1.0;
                t.ended_at.get_or_insert_with(Utc::now);
            }
        }
        // Words the caller said just before hanging up: flush the recogniser and keep them.
        if let Some(mut stt) = self.stt.take()
            && stt.input.send(SttInput::Finalize).await.is_ok()
        {
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
        self.checkpoint().await;
        let outcome = self.policy.outcome;
        let transfer = outcome == Outcome::Transfer;
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
        let ended =
            serde_json::json!({"type": "ended", "call_sid": self.setup.call_sid, "outcome": outcome}).to_string();
        let _ = self.deps.store.publish(self.setup.tenant.id, &ended).await;
        tracing::info!(call_sid = %self.setup.call_sid, outcome = outcome.as_str(), turns = self.turns.len(), "call finished");
        CallSummary { outcome: outcome.as_str().to_owned(), transfer, turns: self.turns.len() }
    }
}

/// A recorder for the call when its tenant records calls. ConversationRelay calls carry no
/// audio through us, so there is nothing to record (and no notice is given).
fn start_recording(setup: &CallSetup, origin: Instant) -> Option<Box<Recorder>> {
    if !setup.tenant.recording_enabled || setup.relay {
        return None;
    }
    match Recorder::new(origin, OpusSettings::default()) {
        Ok(recorder) => Some(Box::new(recorder)),
        Err(e) => {
            // Without a recorder the caller is not told the call is recorded: it is not.
            tracing::error!(call_sid = %setup.call_sid, error = %e, "cannot start the recording");
            None
        }
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

fn record_latency(stage: &'static str, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) {
    if let (Some(from), Some(to)) = (from, to)
        && let Ok(elapsed) = (to - from).to_std()
    {
        metrics::histogram!("ringlypro_turn_latency_seconds", "stage" => stage).record(elapsed.as_secs_f64());
    }
}

async fn recv_stt(stt: &mut Option<SttStream>) -> Option<SttEvent> {
    match stt {
        Some(stream) => stream.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_tts(tts: &mut Option<TtsTurn>) -> Option<Result<Vec<u8>, ProviderError>> {
    match tts {
        Some(turn) => turn.audio.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_llm(reply: &mut Option<LlmReply>) -> Option<LlmEvent> {
    match reply {
        Some(r) if !r.finished => r.events.recv().await,
        _ => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
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
