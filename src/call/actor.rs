//! The per-call actor: one task that owns a conversation from the first audio frame to the
//! saved record. One `select!` loop; each branch hands its event to one small `on_*` method.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::call::playback::{self, Playback, Send};
use crate::dialogue::nlu;
use crate::dialogue::policy::{Context, FoundAppointment, Policy, Step, ToolCall, ToolResult};
use crate::dialogue::prompts::Prompts;
use crate::domain::language::Language;
use crate::domain::scheduling::{Calendar, Slot};
use crate::providers::ProviderError;
use crate::providers::stt::{SpeechToText, SttEvent, SttInput, SttStream};
use crate::providers::tts::{TextToSpeech, TtsAudio, TtsRequest};
use crate::services::booking::{self, BookingError, BookingRequest};
use crate::services::calls::{self as call_records, CallRecord};
use crate::storage::call_state::CallStateStore;
use crate::storage::postgres::calls::Turn;
use crate::storage::postgres::tenants::Tenant;

/// What the transport hands the actor.
#[derive(Debug, Clone, PartialEq)]
pub enum CallInput {
    /// Caller audio, 8 kHz μ-law.
    Audio(Vec<u8>),
    Dtmf(char),
    /// One of our marks came back.
    Mark(String),
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
}

impl Default for CallSettings {
    fn default() -> Self {
        Self {
            silence_timeout: Duration::from_secs(10),
            barge_in_after: Duration::from_millis(500),
            max_duration: Duration::from_secs(15 * 60),
            checkpoint_ttl: Duration::from_secs(2 * 60 * 60),
        }
    }
}

/// Shared things every call uses.
#[derive(Clone)]
pub struct CallDeps {
    pub pool: PgPool,
    pub store: CallStateStore,
    pub stt: Arc<dyn SpeechToText>,
    pub tts: Arc<dyn TextToSpeech>,
    pub prompts: Arc<Prompts>,
    pub settings: CallSettings,
}

/// Who and what this call is.
#[derive(Debug, Clone)]
pub struct CallSetup {
    pub tenant: Tenant,
    pub call_id: i64,
    pub call_sid: String,
    pub stream_sid: String,
    pub caller: String,
}

/// How the call ended, for the transport.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSummary {
    pub outcome: String,
    pub transfer: bool,
    pub turns: usize,
}

/// The agent turn being spoken, with its latency figures.
struct AgentTurn {
    index: usize,
    text: String,
    end_call: bool,
    transfer: bool,
}

pub struct CallActor {
    deps: CallDeps,
    setup: CallSetup,
    policy: Policy,
    output: mpsc::Sender<CallOutput>,
    stt: Option<SttStream>,
    tts: Option<TtsAudio>,
    playback: Playback,
    speaking: Option<AgentTurn>,
    turns: Vec<Turn>,
    failures: Vec<String>,
    /// When the caller last started speaking (STT speech start), for the caller's turn.
    speech_started_at: Option<DateTime<Utc>>,
    /// When the latest interim transcript changed: our proxy for "caller stopped speaking".
    last_interim_at: Option<DateTime<Utc>>,
    last_interim: String,
    /// Speech over the agent that may become a barge-in.
    barge_deadline: Option<Instant>,
    last_activity: Instant,
    started: Instant,
    hangup_requested: bool,
    closed: bool,
    send_buf: Vec<Send>,
    calendar: Calendar,
    shutting_down: bool,
}

impl CallActor {
    pub fn new(deps: CallDeps, setup: CallSetup, output: mpsc::Sender<CallOutput>) -> Self {
        let language = setup.tenant.default_language();
        let policy = Policy::new(language, Some(&setup.caller));
        let now = Instant::now();
        let calendar = setup.tenant.calendar();
        Self {
            calendar,
            shutting_down: false,
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
            last_interim_at: None,
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
        self.open_stt();
        let greeting = {
            let ctx = self.context();
            let mut policy = self.policy.clone();
            let step = policy.greet(&ctx);
            self.policy = policy;
            step
        };
        self.act(greeting, None).await;

        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        while !self.closed {
            let barge_at = self.barge_deadline;
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
                    None => self.on_stt_closed(),
                },
                chunk = recv_tts(&mut self.tts) => self.on_tts(chunk).await,
                _ = sleep_until(barge_at) => self.on_barge_deadline().await,
                _ = tick.tick() => self.on_tick().await,
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
        }
    }

    fn open_stt(&mut self) {
        match self.deps.stt.open(self.policy.language) {
            Ok(stream) => self.stt = Some(stream),
            Err(e) => {
                tracing::error!(call_sid = %self.setup.call_sid, error = %e, "speech recognition unavailable");
                self.failures.push(format!("stt: {e}"));
            }
        }
    }

    async fn on_input(&mut self, msg: CallInput) {
        match msg {
            CallInput::Audio(bytes) => {
                if let Some(stt) = &self.stt {
                    // Never block the call on a slow recogniser: drop and count instead.
                    if let Err(mpsc::error::TrySendError::Full(_)) = stt.input.try_send(SttInput::Audio(bytes)) {
                        metrics_dropped_frame();
                    }
                }
            }
            CallInput::Dtmf(digit) => {
                self.last_activity = Instant::now();
                let step = self.with_policy(|p, ctx| p.on_dtmf(ctx, digit));
                if let Some(step) = step {
                    self.interrupt_agent().await;
                    self.act(step, None).await;
                }
            }
            CallInput::Mark(name) => {
                if self.playback.on_mark(&name)
                    && let Some(turn) = &self.speaking
                        && let Some(t) = self.turns.get_mut(turn.index) {
                            t.first_mark_at.get_or_insert_with(Utc::now);
                        }
            }
            CallInput::Hangup => self.closed = true,
        }
    }

    async fn on_stt(&mut self, event: SttEvent) {
        let now = Instant::now();
        match event {
            SttEvent::SpeechStarted => {
                self.last_activity = now;
                self.speech_started_at.get_or_insert_with(Utc::now);
                if self.agent_is_speaking(now) && self.barge_deadline.is_none() {
                    self.barge_deadline = Some(now + self.deps.settings.barge_in_after);
                }
            }
            SttEvent::Interim { text } => {
                self.last_activity = now;
                self.speech_started_at.get_or_insert_with(Utc::now);
                if text != self.last_interim {
                    self.last_interim_at = Some(Utc::now());
                    self.last_interim = text.clone();
                }
                if self.agent_is_speaking(now) && !text.trim().is_empty() && !nlu::is_backchannel(&text) {
                    // Real words over the agent: once they have lasted long enough, stop talking.
                    match self.barge_deadline {
                        Some(deadline) if deadline <= now => self.interrupt_agent().await,
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
                } else if speaking && nlu::is_backchannel(&text) {
                    // "mhm", "okay": the caller is listening, not taking the floor.
                    tracing::debug!(call_sid = %self.setup.call_sid, text, "backchannel ignored");
                    self.barge_deadline = None;
                    self.reset_caller_turn();
                } else {
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

    fn on_stt_closed(&mut self) {
        self.stt = None;
        self.failures.push("stt: stream closed".into());
        tracing::warn!(call_sid = %self.setup.call_sid, "speech recognition stream closed; reopening");
        self.open_stt();
    }

    fn on_stt_failure(&mut self, e: ProviderError) {
        tracing::error!(call_sid = %self.setup.call_sid, error = %e, "speech recognition failed");
        self.failures.push(format!("stt: {e}"));
        self.stt = None;
        self.open_stt();
    }

    fn reset_caller_turn(&mut self) {
        self.speech_started_at = None;
        self.last_interim_at = None;
        self.last_interim.clear();
    }

    async fn on_barge_deadline(&mut self) {
        self.barge_deadline = None;
        let now = Instant::now();
        if self.agent_is_speaking(now)
            && !self.last_interim.trim().is_empty()
            && !nlu::is_backchannel(&self.last_interim)
        {
            self.interrupt_agent().await;
        } else if self.agent_is_speaking(now) && self.last_interim.trim().is_empty() {
            // Speech without words yet: wait for the recogniser to tell what it was.
            self.barge_deadline = Some(now + self.deps.settings.barge_in_after);
        }
    }

    fn agent_is_speaking(&self, now: Instant) -> bool {
        self.speaking.is_some() && self.playback.is_speaking(now)
    }

    /// Barge-in as one operation: clear Twilio's buffer, stop synthesis, drop queued audio,
    /// and record what the caller actually heard.
    async fn interrupt_agent(&mut self) {
        self.barge_deadline = None;
        let Some(turn) = self.speaking.take() else {
            return;
        };
        self.send(CallOutput::Clear).await;
        self.tts = None; // dropping the receiver stops the engine
        let fraction = self.playback.clear();
        let heard = playback::heard_text(&turn.text, fraction);
        if let Some(t) = self.turns.get_mut(turn.index) {
            t.interrupted = true;
            t.heard_text = Some(heard.clone());
            t.ended_at = Some(Utc::now());
        }
        tracing::info!(call_sid = %self.setup.call_sid, heard, "caller interrupted the agent");
        // A goodbye or transfer the caller talked over is not carried out: they want more.
        self.hangup_requested = false;
    }

    /// Adds the caller's utterance to the transcript; returns its index.
    fn record_caller_turn(&mut self, text: String) -> usize {
        let stt_final_at = Utc::now();
        let started_at = self.speech_started_at.take().unwrap_or(stt_final_at);
        let caller_stopped_at = self.last_interim_at.take().unwrap_or(stt_final_at);
        self.last_interim.clear();
        let seq = self.turns.len() as i32;
        self.turns.push(Turn {
            seq,
            speaker: "caller".into(),
            text,
            started_at,
            ended_at: Some(caller_stopped_at),
            stt_final_at: Some(stt_final_at),
            ..Turn::default()
        });
        self.turns.len() - 1
    }

    async fn on_caller_turn(&mut self, text: String) {
        if self.policy.stage == crate::dialogue::policy::Stage::Intent
            && self.turns.iter().all(|t| t.speaker != "caller")
        {
            self.maybe_switch_language(&text);
        }
        let caller_index = self.record_caller_turn(text.clone());
        let (caller_stopped_at, stt_final_at) = {
            let t = &self.turns[caller_index];
            (t.ended_at.unwrap_or(t.started_at), t.stt_final_at.unwrap_or(t.started_at))
        };
        let step = self.with_policy(|p, ctx| p.on_utterance(ctx, &text));
        if let (Some(intent), Some(turn)) = (self.policy.intent, self.turns.get_mut(caller_index)) {
            turn.intent = serde_json::to_value(intent).ok().and_then(|v| v.as_str().map(str::to_owned));
        }
        self.act(step, Some((caller_stopped_at, stt_final_at))).await;
        self.checkpoint().await;
    }

    fn maybe_switch_language(&mut self, text: &str) {
        if nlu::looks_spanish(text) && self.policy.language != Language::Spanish {
            tracing::info!(call_sid = %self.setup.call_sid, "caller speaks Spanish: switching to Lina");
            self.policy.language = Language::Spanish;
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
                let req = BookingRequest {
                    name,
                    phone,
                    slot,
                    call_id: Some(self.setup.call_id),
                    language: self.policy.language,
                    source: match self.policy.language {
                        Language::English => "voice_booking",
                        Language::Spanish => "voice_booking_spanish",
                    },
                };
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

    fn tool_failed(&mut self, tool: &str, e: anyhow::Error) -> ToolResult {
        tracing::error!(call_sid = %self.setup.call_sid, tool, error = format!("{e:#}"), "tool failed");
        self.failures.push(format!("{tool}: {e}"));
        ToolResult::Failed(tool.to_owned())
    }

    /// Starts speaking a reply: a transcript line, a TTS request, and playback.
    async fn speak(
        &mut self,
        text: String,
        end_call: bool,
        transfer: bool,
        timing: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) {
        if self.speaking.is_some() {
            self.interrupt_agent().await;
        }
        let now = Utc::now();
        let seq = self.turns.len() as i32;
        self.turns.push(Turn {
            seq,
            speaker: "agent".into(),
            text: text.clone(),
            started_at: now,
            caller_stopped_at: timing.map(|t| t.0),
            stt_final_at: timing.map(|t| t.1),
            reply_ready_at: Some(now),
            ..Turn::default()
        });
        self.playback.start_turn();
        self.tts = Some(self.deps.tts.synthesize(TtsRequest { text: text.clone(), language: self.policy.language }));
        self.speaking = Some(AgentTurn { index: self.turns.len() - 1, text, end_call, transfer });
        self.hangup_requested = end_call;
        self.last_activity = Instant::now();
    }

    async fn on_tts(&mut self, chunk: Option<Result<Vec<u8>, ProviderError>>) {
        match chunk {
            Some(Ok(audio)) => {
                if let Some(turn) = &self.speaking
                    && let Some(t) = self.turns.get_mut(turn.index) {
                        t.tts_first_byte_at.get_or_insert_with(Utc::now);
                    }
                self.playback.push(&audio);
                self.pump().await;
            }
            Some(Err(e)) => {
                tracing::error!(call_sid = %self.setup.call_sid, error = %e, "speech synthesis failed");
                self.failures.push(format!("tts: {e}"));
                self.tts = None;
                self.playback.finish_input();
            }
            None => {
                self.tts = None;
                self.playback.finish_input();
                self.pump().await;
            }
        }
    }

    async fn pump(&mut self) {
        let now = Instant::now();
        let mut buf = std::mem::take(&mut self.send_buf);
        self.playback.pump(now, &mut buf);
        let first_audio = buf.iter().any(|s| matches!(s, Send::Audio(_)));
        if first_audio
            && let Some(turn) = &self.speaking
                && let Some(t) = self.turns.get_mut(turn.index) {
                    t.first_audio_sent_at.get_or_insert_with(Utc::now);
                }
        for item in buf.drain(..) {
            let out = match item {
                Send::Audio(a) => CallOutput::Audio(a),
                Send::Mark(m) => CallOutput::Mark(m),
            };
            self.send(out).await;
        }
        self.send_buf = buf;
    }

    async fn on_tick(&mut self) {
        let now = Instant::now();
        if self.playback.has_pending() {
            self.pump().await;
        }
        if let Some(turn) = &self.speaking
            && self.tts.is_none() && self.playback.is_done(now) {
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
        let step = self.with_policy(|p, ctx| p.on_time_up(ctx));
        self.act(step, None).await;
    }

    async fn send(&mut self, out: CallOutput) {
        if self.output.send(out).await.is_err() {
            // The socket writer is gone: the caller hung up.
            self.closed = true;
        }
    }

    async fn checkpoint(&self) {
        let Ok(state) = serde_json::to_string(&self.policy) else { return };
        if let Err(e) = self.deps.store.save(&self.setup.call_sid, &state, self.deps.settings.checkpoint_ttl).await {
            tracing::warn!(call_sid = %self.setup.call_sid, error = %e, "checkpoint failed");
        }
    }

    /// Saves the call: transcript, contact, outcome, failures. Retries once, then logs
    /// the whole transcript so nothing is lost even if the database is down.
    async fn finish(mut self) -> CallSummary {
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
            && stt.input.send(SttInput::Finalize).await.is_ok() {
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
        let outcome = self.policy.outcome.as_str().to_owned();
        let transfer = outcome == "transfer";
        let failures = self.failures.join("; ");
        let caller_name = self.policy.name.clone();
        let record = CallRecord {
            client_id: self.setup.tenant.id,
            call_id: self.setup.call_id,
            stream_sid: &self.setup.stream_sid,
            language: self.policy.language.code(),
            caller_phone: Some(self.setup.caller.as_str()).filter(|c| !c.is_empty()),
            caller_name: caller_name.as_deref(),
            outcome: &outcome,
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
        if let Err(e) = self.deps.store.mark_ended(self.setup.tenant.id, &self.setup.call_sid).await {
            tracing::warn!(call_sid = %self.setup.call_sid, error = %e, "could not unindex the live call");
        }
        tracing::info!(call_sid = %self.setup.call_sid, outcome, turns = self.turns.len(), "call finished");
        CallSummary { outcome, transfer, turns: self.turns.len() }
    }
}

fn metrics_dropped_frame() {
    tracing::trace!("caller audio frame dropped: recogniser busy");
}

async fn recv_stt(stt: &mut Option<SttStream>) -> Option<SttEvent> {
    match stt {
        Some(stream) => stream.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_tts(tts: &mut Option<TtsAudio>) -> Option<Result<Vec<u8>, ProviderError>> {
    match tts {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
