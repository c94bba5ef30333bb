//! The per-call actor: one task that owns a conversation from the first audio frame to the
//! saved record. One `select!` loop; each branch hands its event to one small `on_*` method.
//!
//! A reply comes from the language model when one is configured (streamed into the voice
//! clause by clause, tools run here) and from the local dialogue engine otherwise or when
//! the model fails; both share the same conversation state. Who has the floor is decided
//! by [`TurnTaking`]; how the agent's words reach the caller, by [`Voice`].
//!
//! Rare, deep operations (saving the call, a checkpoint, a booking tool, opening another
//! voice) are awaited boxed. Inlined, each one's state would sit in every live call's
//! future all the time (about 16 KB per handler, 42 KB per call in all); boxed, it is
//! allocated only while it runs.

mod listening;
mod owner;
mod record;
mod reply;
mod speaking;
#[cfg(test)]
mod tests;
mod tools;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::audio::mulaw;
use crate::audio::ogg_opus::OpusSettings;
use crate::call::commands::CallCommand;
use crate::call::conversation::LlmConversation;
use crate::call::io::{CallInput, CallOutput};
use crate::call::recording::Recorder;
use crate::call::setup::{CallDeps, CallSetup, CallSummary};
use crate::call::tap::{AudioTap, CALLER_VOICE_LEVEL};
use crate::call::turn_taking::TurnTaking;
use crate::call::voice::Voice;
use crate::dialogue::nlu;
use crate::dialogue::policy::{Context, Policy, Stage, Step};
use crate::domain::calls::Speaker;
use crate::domain::language::Language;
use crate::domain::scheduling::Calendar;
use crate::providers::ProviderError;
use crate::providers::llm::{LanguageModel, LlmEvent};
use crate::providers::stt::{SpeechToText, SttEvent, SttInput, SttStream};
use crate::storage::postgres::calls::Turn;

use reply::LlmReply;

/// When the caller stopped speaking and when the recogniser's final came: the start of
/// every latency figure of the agent's answer.
type CallerTiming = (DateTime<Utc>, DateTime<Utc>);

/// The agent turn being spoken.
struct AgentTurn {
    index: usize,
    /// Text handed to the voice so far.
    text: String,
    end_call: bool,
    transfer: bool,
    /// No more text will come for this turn.
    text_complete: bool,
}

pub struct CallActor {
    deps: CallDeps,
    setup: CallSetup,
    calendar: Calendar,
    policy: Policy,
    llm: Option<Arc<dyn LanguageModel>>,
    conversation: LlmConversation,
    reply: Option<LlmReply>,
    stt: Option<SttStream>,
    stt_engine: Arc<dyn SpeechToText>,
    stt_is_local: bool,
    voice: Voice,
    floor: TurnTaking,
    speaking: Option<AgentTurn>,
    turns: Vec<Turn>,
    failures: Vec<String>,
    started: Instant,
    /// The agent said goodbye (or is transferring): close once it has been heard.
    hangup_requested: bool,
    closed: bool,
    shutting_down: bool,
    /// The owner took the call: the hand-over line is said whatever the caller does.
    handing_over: bool,
    /// The owner's note, said at the agent's next turn.
    owner_note: Option<String>,
    /// When the next housekeeping tick runs (pacing, timers).
    next_tick: Instant,
    /// The socket reader's audio route, when the transport has one: it feeds the
    /// recogniser and hands the actor only the frames it must see.
    tap: Option<Arc<AudioTap>>,
}

impl CallActor {
    pub fn new(deps: CallDeps, setup: CallSetup, output: mpsc::Sender<CallOutput>) -> Self {
        let language = setup.tenant.default_language();
        let now = Instant::now();
        let (stt_engine, stt_is_local) = deps.engines.pick_stt();
        let voice = if setup.relay {
            Voice::relay(output)
        } else {
            Voice::speech(output, deps.engines.pick_tts(), language, start_recording(&setup, now))
        };
        Self {
            calendar: setup.tenant.calendar(),
            policy: Policy::new(language, Some(&setup.caller)),
            llm: deps.engines.pick_llm(),
            conversation: LlmConversation::default(),
            reply: None,
            stt: None,
            stt_engine,
            stt_is_local,
            voice,
            floor: TurnTaking::new(now, deps.settings.barge_in_after),
            speaking: None,
            turns: Vec::new(),
            failures: Vec::new(),
            started: now,
            hangup_requested: false,
            closed: false,
            shutting_down: false,
            handing_over: false,
            owner_note: None,
            next_tick: now,
            tap: None,
            deps,
            setup,
        }
    }

    /// Lets the socket reader feed the recogniser through `tap` (the actor is then handed
    /// only loud frames, or every frame of a recorded call).
    pub fn with_tap(mut self, tap: Arc<AudioTap>) -> Self {
        tap.hand_every_frame(self.voice.is_recording());
        self.tap = Some(tap);
        self
    }

    /// The recogniser the caller's audio goes to from now on.
    pub(super) fn set_stt(&mut self, stt: Option<SttStream>) {
        if let Some(tap) = &self.tap {
            tap.set_recogniser(stt.as_ref().map(|s| s.input.clone()));
        }
        self.stt = stt;
    }

    /// Runs the call until the caller hangs up, the agent ends it, or shutdown; then saves
    /// everything. The owner's commands arrive on `commands`.
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<CallInput>,
        commands: mpsc::Receiver<CallCommand>,
        mut shutdown: watch::Receiver<bool>,
    ) -> CallSummary {
        let mut commands = Some(commands);
        self.begin().await;
        // The tick's timer lives as long as the call and is moved only when the next tick
        // changes, not registered anew on each of the fifty frames a second.
        let tick = tokio::time::sleep_until(self.next_tick);
        tokio::pin!(tick);
        while !self.closed && !self.voice.is_gone() {
            if tick.deadline() != self.next_tick {
                tick.as_mut().reset(self.next_tick);
            }
            let barge_at = self.floor.barge_deadline();
            let llm_deadline = self.reply.as_ref().and_then(|r| r.deadline);
            tokio::select! {
                biased;
                changed = shutdown.changed(), if !self.shutting_down => self.on_shutdown(changed.is_err() || *shutdown.borrow(), changed.is_ok()).await,
                msg = input.recv() => self.on_input(msg.unwrap_or(CallInput::Hangup)).await,
                command = recv_command(&mut commands) => match command {
                    Some(command) => self.on_command(command).await,
                    None => commands = None,
                },
                event = recv_stt(&mut self.stt) => match event {
                    Some(event) => self.on_stt(event).await,
                    None => self.on_stt_failure(ProviderError::retryable(self.stt_engine.name(), "stream closed")),
                },
                chunk = self.voice.next_audio() => self.on_tts(chunk).await,
                event = reply::recv(&mut self.reply) => self.on_llm(event).await,
                _ = sleep_until(llm_deadline) => self.on_llm(Some(LlmEvent::Error(ProviderError::retryable("llm", "no first token in time")))).await,
                _ = sleep_until(barge_at) => self.on_barge_deadline().await,
                _ = &mut tick => {
                    self.on_tick().await;
                    self.next_tick = self.next_tick_at(Instant::now());
                }
            }
        }
        Box::pin(self.finish()).await
    }

    /// Indexes the live call and greets the caller.
    async fn begin(&mut self) {
        if let Err(e) = Box::pin(self.deps.store.mark_live(self.setup.tenant.id, &self.setup.call_sid)).await {
            tracing::warn!(call_sid = %self.setup.call_sid, error = %e, "could not index the live call");
        }
        let greeting = self.with_policy(|p, ctx| p.greet(ctx));
        if self.voice.is_relay() {
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
    }

    async fn on_shutdown(&mut self, stopping: bool, asked: bool) {
        // A dropped sender only means nobody will ask us to stop.
        self.shutting_down = stopping;
        if asked && stopping {
            tracing::info!(call_sid = %self.setup.call_sid, "shutting down: ending call politely");
            Box::pin(self.end_for_time()).await;
        }
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
            recording_notice: self.voice.is_recording(),
        }
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

    // ----- what the transport brings --------------------------------------------------------

    async fn on_input(&mut self, msg: CallInput) {
        match msg {
            CallInput::Audio { bytes, timestamp_ms, loud } => self.on_audio(bytes, timestamp_ms, loud),
            CallInput::Dtmf(digit) => self.on_dtmf(digit, Instant::now()).await,
            CallInput::Mark(name) => {
                if self.voice.on_mark(&name)
                    && let Some(t) = self.current_turn_mut()
                {
                    t.first_mark_at.get_or_insert_with(Utc::now);
                }
            }
            CallInput::Prompt(text) => {
                let now = Instant::now();
                let text = text.trim().to_owned();
                self.floor.touch(now);
                if !text.is_empty() {
                    self.floor.prompt(now);
                    self.on_caller_turn(text).await;
                }
            }
            CallInput::Interrupted { heard } => self.relay_interrupted(&heard),
            CallInput::Hangup => {
                tracing::info!(call_sid = %self.setup.call_sid, "caller hung up");
                self.closed = true;
            }
        }
    }

    fn on_audio(&mut self, bytes: Vec<u8>, timestamp_ms: Option<u64>, loud: Option<bool>) {
        // Fifty frames a second per call: the clock is read only for a loud frame or a
        // recorded call; the rest only go to the recogniser.
        let loud = loud.unwrap_or_else(|| mulaw::mean_level(&bytes) >= CALLER_VOICE_LEVEL);
        // With a tap, the reader already fed the recogniser.
        let to_stt = self.tap.is_none();
        if loud || self.voice.is_recording() {
            let now = Instant::now();
            if loud {
                self.floor.caller_voice(now);
            }
            // Encoding here, one 20 ms frame per inbound frame (tens of µs), keeps each step
            // short; the tick only catches up when frames stop coming.
            if let Err(e) = self.voice.caller_audio(&bytes, timestamp_ms, now) {
                self.drop_recording(e);
            }
        }
        if let Some(stt) = self.stt.as_ref().filter(|_| to_stt) {
            // Never block the call on a slow recogniser: drop and count instead.
            if let Err(mpsc::error::TrySendError::Full(_)) = stt.input.try_send(SttInput::Audio(bytes)) {
                metrics::counter!("ringlypro_stt_frames_dropped_total").increment(1);
            }
        }
    }

    async fn on_dtmf(&mut self, digit: char, now: Instant) {
        self.floor.touch(now);
        let language = match digit {
            '1' => Some(Language::English),
            '2' => Some(Language::Spanish),
            _ => None,
        };
        if let Some(language) = language {
            // A language the owner turned off in settings is not offered.
            if language != self.policy.language && self.setup.tenant.answers_in(language) {
                self.interrupt(false).await;
                self.switch_language(language);
                let greeting = self.with_policy(|p, ctx| p.greet(ctx));
                self.act(greeting, None).await;
            }
            return;
        }
        if let Some(step) = self.with_policy(|p, ctx| p.on_dtmf(ctx, digit)) {
            self.interrupt(false).await;
            self.act(step, None).await;
        }
    }

    fn agent_is_speaking(&self, now: Instant) -> bool {
        self.speaking.is_some() && self.voice.is_playing(now)
    }

    /// The caller started to speak over the agent: stop the audio at once (`clear`), keeping
    /// the unplayed rest, until it is clear whether they are taking the floor (barge-in) or
    /// only made a sound (the turn goes on from where it stopped).
    async fn hold_for_caller(&mut self, now: Instant) {
        if self.voice.is_relay() || self.speaking.is_none() || self.handing_over || !self.floor.hold(now) {
            return;
        }
        self.voice.hold(now).await;
        if let Some(waited) = self.floor.speaking_for() {
            metrics::histogram!("ringlypro_barge_in_seconds").record(waited.as_secs_f64());
        }
        tracing::debug!(call_sid = %self.setup.call_sid, "holding for the caller");
    }

    /// Stops the agent as one operation: clear Twilio's buffer, close the synthesis turn,
    /// abort the model's stream, and keep in both the transcript and the model's history only
    /// what the caller actually heard. `resumable`: the caller's words are not final yet, so
    /// keep the unheard rest of a complete turn in case they come to nothing.
    async fn interrupt(&mut self, resumable: bool) {
        let now = Instant::now();
        let held = self.floor.agent_stopped();
        let reply = self.reply.take();
        let Some(turn) = self.speaking.take() else { return };
        let fraction = self.voice.stop(held, now).await;
        let spoken = reply.as_ref().map_or_else(|| turn.text.clone(), |r| r.text.clone());
        let heard = crate::call::playback::heard_text(&spoken, fraction);
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
            self.floor.keep_resume(rest, turn.end_call, turn.transfer, now);
        }
        metrics::counter!("ringlypro_barge_ins_total").increment(1);
        tracing::info!(call_sid = %self.setup.call_sid, heard, "caller interrupted the agent");
        // A goodbye or transfer the caller talked over is not carried out: they want more.
        // The owner's hand-over is, whatever the caller says.
        self.hangup_requested &= self.handing_over;
    }

    /// ConversationRelay stopped our speech because the caller talked: trim like barge-in.
    fn relay_interrupted(&mut self, heard: &str) {
        if self.handing_over {
            // The hand-over line is said through to the end.
            return;
        }
        let reply = self.reply.take();
        self.voice.cancel_end();
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

    // ----- the caller's turn ----------------------------------------------------------------

    async fn on_caller_turn(&mut self, text: String) {
        if self.policy.stage == Stage::Intent && self.turns.iter().all(|t| t.speaker != Speaker::Caller) {
            self.maybe_switch_language(&text);
        }
        let caller_index = self.record_caller_turn(text.clone());
        if self.handing_over {
            // The owner has the call now; the words go in the transcript only.
            Box::pin(self.checkpoint()).await;
            return;
        }
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
        Box::pin(self.checkpoint()).await;
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
        self.voice.switch_language(language);
        // The recogniser stays as it is: reopening it mid-call would lose words in flight,
        // and the cloud one is opened for English and Spanish together.
    }
}

/// A recorder for the call when its tenant records calls. ConversationRelay calls carry no
/// audio through us, so there is nothing to record (and no notice is given).
fn start_recording(setup: &CallSetup, origin: Instant) -> Option<Recorder> {
    if !setup.tenant.recording_enabled || setup.relay {
        return None;
    }
    match Recorder::new(origin, OpusSettings::default()) {
        Ok(recorder) => Some(recorder),
        Err(e) => {
            // Without a recorder the caller is not told the call is recorded: it is not.
            tracing::error!(call_sid = %setup.call_sid, error = %e, "cannot start the recording");
            None
        }
    }
}

async fn recv_stt(stt: &mut Option<SttStream>) -> Option<SttEvent> {
    match stt {
        Some(stream) => stream.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_command(commands: &mut Option<mpsc::Receiver<CallCommand>>) -> Option<CallCommand> {
    match commands {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
