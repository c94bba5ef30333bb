//! The actor driven directly, with scripted engines on tokio's paused clock: no socket, no
//! database (the record's saving fails and is retried, as it would with PostgreSQL down).

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveTime;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::*;
use crate::call::engines::Engines;
use crate::call::events::Checkpoint;
use crate::call::setup::CallSettings;
use crate::dialogue::prompts::Prompts;
use crate::domain::calls::Outcome;
use crate::domain::ids::{CallId, TenantId};
use crate::domain::scheduling::BusinessHours;
use crate::domain::tenants::{Tenant, VoicePath};
use crate::providers::llm::Role;
use crate::providers::scripted::{ScriptedLlm, ScriptedReply, ScriptedStt, ScriptedSttStream, ScriptedTts};
use crate::storage::call_state::CallStateStore;

const SID: &str = "CA-actor-test";
/// 240 bytes of audio a character: 30 ms of speech each, so a greeting lasts seconds.
const BYTES_PER_CHAR: usize = 240;

fn tenant() -> Tenant {
    let any_time = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default();
    Tenant {
        id: TenantId(1),
        business_name: "Alpha Dental".into(),
        business_description: "A dental practice".into(),
        services: "Cleaning $100".into(),
        ringlypro_number: Some("+15550001111".into()),
        owner_name: "Ann".into(),
        owner_phone: "+15550002222".into(),
        custom_greeting: None,
        timezone: chrono_tz::America::New_York,
        business_days: "mon-sun".into(),
        hours: BusinessHours { days: [true; 7], open: any_time(0, 0), close: any_time(23, 59) },
        appointment_minutes: 30,
        buffer_minutes: 0,
        rachel_enabled: true,
        language: Language::English,
        voice_path: VoicePath::Stream,
        recording_enabled: false,
        languages: vec![Language::English],
    }
}

/// The engines of one test: what plays each role, and what stands by.
struct Rig {
    stt: Arc<dyn SpeechToText>,
    stt_fallback: Option<Arc<dyn SpeechToText>>,
    tts: Arc<ScriptedTts>,
    tts_fallback: Option<Arc<ScriptedTts>>,
    llm: Option<Arc<ScriptedLlm>>,
    streams: mpsc::UnboundedReceiver<ScriptedSttStream>,
}

impl Rig {
    fn new() -> Self {
        let (stt, streams) = ScriptedStt::new("scripted-stt");
        Self {
            stt: Arc::new(stt),
            stt_fallback: None,
            tts: Arc::new(ScriptedTts::new("scripted-tts", Duration::from_millis(80), BYTES_PER_CHAR)),
            tts_fallback: None,
            llm: None,
            streams,
        }
    }

    fn with_model(mut self, replies: impl IntoIterator<Item = ScriptedReply>) -> Self {
        self.llm = Some(Arc::new(ScriptedLlm::new(replies)));
        self
    }

    fn engines(&self) -> Engines {
        let mut engines = Engines::local(self.stt.clone(), self.tts.clone());
        engines.stt_fallback = self.stt_fallback.clone();
        engines.tts_fallback = self.tts_fallback.clone().map(|t| t as Arc<dyn crate::providers::tts::StreamingTts>);
        engines.llm = self.llm.clone().map(|l| l as Arc<dyn LanguageModel>);
        engines
    }
}

/// One call in progress, seen from the transport's side.
struct Call {
    input: mpsc::Sender<CallInput>,
    commands: mpsc::Sender<CallCommand>,
    output: mpsc::Receiver<CallOutput>,
    store: CallStateStore,
    task: JoinHandle<CallSummary>,
    _shutdown: watch::Sender<bool>,
}

fn deps(engines: Engines, store: CallStateStore) -> CallDeps {
    // Nothing listens on port 1: saving the call fails at once, as with the database down.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(50))
        .connect_lazy("postgres://nobody@127.0.0.1:1/none")
        .expect("a well-formed URL");
    let prompts = Arc::new(Prompts::load().expect("the prompts load"));
    CallDeps { pool, store, engines, prompts, settings: CallSettings::default(), calendar: None }
}

fn start(engines: Engines) -> Call {
    let store = CallStateStore::memory();
    let setup = CallSetup {
        tenant: tenant(),
        call_id: CallId(1),
        call_sid: SID.into(),
        stream_sid: "MZ1".into(),
        caller: "+15557654321".into(),
        relay: false,
    };
    let (input_tx, input_rx) = mpsc::channel(64);
    let (output_tx, output) = mpsc::channel(256);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (commands, commands_rx) = mpsc::channel(8);
    let actor = CallActor::new(deps(engines, store.clone()), setup, output_tx);
    let task = tokio::spawn(actor.run(input_rx, commands_rx, shutdown_rx));
    Call { input: input_tx, commands, output, store, task, _shutdown: shutdown_tx }
}

impl Call {
    /// Everything the call sends over the next `span` of (paused) time. Marks are echoed
    /// back at once, as Twilio does once the audio before them has played.
    async fn over(&mut self, span: Duration) -> Vec<CallOutput> {
        let until = Instant::now() + span;
        let mut seen = Vec::new();
        while let Ok(Some(out)) = tokio::time::timeout_at(until, self.output.recv()).await {
            if let CallOutput::Mark(name) = &out {
                let _ = self.input.send(CallInput::Mark(name.clone())).await;
            }
            seen.push(out);
        }
        seen
    }

    async fn checkpoint(&self) -> Checkpoint<'static> {
        let raw = self.store.load(SID).await.expect("the store answers").expect("a checkpoint was saved");
        Checkpoint::from_json(&raw).expect("the checkpoint reads back")
    }

    async fn hang_up(self) -> CallSummary {
        let _ = self.input.send(CallInput::Hangup).await;
        self.task.await.expect("the call ends cleanly")
    }
}

/// Milliseconds of audio sent (8 kHz μ-law: 8 bytes a millisecond).
fn audio_ms(outputs: &[CallOutput]) -> usize {
    outputs.iter().map(|o| if let CallOutput::Audio(a) = o { a.len() / 8 } else { 0 }).sum()
}

fn clears(outputs: &[CallOutput]) -> usize {
    outputs.iter().filter(|o| **o == CallOutput::Clear).count()
}

async fn say(stream: &ScriptedSttStream, event: SttEvent) {
    stream.events.send(event).await.expect("the call listens");
}

fn words(text: &str) -> SttEvent {
    SttEvent::Interim { text: text.into() }
}

fn final_words(text: &str) -> SttEvent {
    SttEvent::Final { text: text.into(), speech_final: true }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn the_greeting_is_synthesized_and_paced_out_as_audio() {
    let mut rig = Rig::new();
    let mut call = start(rig.engines());
    let out = call.over(ms(1000)).await;
    let sent = audio_ms(&out);
    assert!((800..=1400).contains(&sent), "audio is paced in real time: {sent} ms sent in a second");
    assert!(rig.streams.recv().await.is_some(), "the recogniser was opened");
    assert_eq!(rig.tts.turns().len(), 1);
    call.hang_up().await;
}

#[tokio::test(start_paused = true)]
async fn words_over_the_agent_stop_it_and_are_answered() {
    // The first reply is an early start on "I want to", thrown away when the words go on.
    let replies = [ScriptedLlm::says("Go on.", ms(100)), ScriptedLlm::says("Sure, what day suits you?", ms(100))];
    let mut rig = Rig::new().with_model(replies);
    let mut call = start(rig.engines());
    let stream = rig.streams.recv().await.expect("the recogniser was opened");
    call.over(ms(600)).await;

    say(&stream, SttEvent::SpeechStarted).await;
    let held = call.over(ms(40)).await;
    assert_eq!(clears(&held), 1, "the agent goes quiet at the caller's first sound");
    say(&stream, words("I want to")).await;
    // Words still going at the deadline: the turn is the caller's.
    let cut = call.over(ms(600)).await;
    say(&stream, words("I want to book a")).await;
    assert_eq!(audio_ms(&cut), 0, "no audio of the cut turn after the barge-in");
    assert_eq!(clears(&cut), 0, "the hold already cleared Twilio's buffer");
    say(&stream, final_words("I want to book a cleaning")).await;
    let answer = call.over(ms(1500)).await;
    assert!(audio_ms(&answer) > 0, "the caller's words are answered");

    let checkpoint = call.checkpoint().await;
    let greeting = &checkpoint.turns[0];
    assert!(greeting.interrupted, "the greeting was cut");
    let heard = greeting.heard_text.as_deref().unwrap_or_default();
    assert!(heard.len() < greeting.text.len(), "only part of the greeting was heard: {heard:?}");
    let requests = rig.llm.as_ref().expect("a model").requests();
    let answered = requests.last().and_then(|r| r.messages.last()).and_then(|m| m.content.as_deref());
    assert_eq!(answered, Some("I want to book a cleaning"), "the reply answers the whole utterance");
    assert_eq!(rig.tts.turns()[1], "Sure, what day suits you?");
    call.hang_up().await;
}

#[tokio::test(start_paused = true)]
async fn a_sound_that_comes_to_nothing_lets_the_agent_go_on_without_synthesizing_again() {
    let mut rig = Rig::new();
    let mut call = start(rig.engines());
    let stream = rig.streams.recv().await.expect("the recogniser was opened");
    let before = call.over(ms(600)).await;
    assert!(audio_ms(&before) > 0);

    say(&stream, SttEvent::SpeechStarted).await;
    let held = call.over(ms(300)).await;
    assert_eq!(clears(&held), 1);
    say(&stream, SttEvent::Final { text: String::new(), speech_final: true }).await;
    let after = call.over(ms(600)).await;
    assert!(audio_ms(&after) > 0, "the greeting goes on from where it stopped");
    assert_eq!(rig.tts.turns().len(), 1, "nothing was synthesized again");
    call.over(Duration::from_secs(8)).await;
    let checkpoint = call.checkpoint().await;
    assert!(!checkpoint.turns[0].interrupted, "a false interruption cuts nothing");
    call.hang_up().await;
}

#[tokio::test(start_paused = true)]
async fn a_backchannel_over_the_agent_is_not_an_interruption() {
    let mut rig = Rig::new();
    let mut call = start(rig.engines());
    let stream = rig.streams.recv().await.expect("the recogniser was opened");
    call.over(ms(600)).await;
    say(&stream, words("mhm")).await;
    say(&stream, final_words("mhm")).await;
    let after = call.over(ms(600)).await;
    assert_eq!(clears(&after), 0, "a backchannel does not stop the agent");
    assert!(audio_ms(&after) > 400);
    call.hang_up().await;
}

#[tokio::test(start_paused = true)]
async fn an_early_start_on_words_the_caller_then_changed_is_thrown_away() {
    let mut rig = Rig::new().with_model([
        ScriptedLlm::says("We open at nine.", ms(100)),
        ScriptedLlm::says("On Saturdays we open at ten.", ms(100)),
    ]);
    let mut call = start(rig.engines());
    let stream = rig.streams.recv().await.expect("the recogniser was opened");
    call.over(Duration::from_secs(8)).await; // the greeting is over

    say(&stream, words("what are your hours")).await;
    call.over(ms(400)).await;
    let llm = rig.llm.clone().expect("a model");
    assert_eq!(llm.requests().len(), 1, "a stable pause starts the model early");
    // The final transcript says more than the interim the model started on.
    say(&stream, final_words("what are your hours on saturday")).await;
    call.over(ms(2000)).await;

    let requests = llm.requests();
    assert_eq!(requests.len(), 2, "the final words get a fresh request");
    let last = requests[1].messages.last().expect("a message");
    assert_eq!((last.role, last.content.as_deref()), (Role::User, Some("what are your hours on saturday")));
    let spoken = rig.tts.turns();
    assert!(spoken.iter().any(|t| t == "On Saturdays we open at ten."), "{spoken:?}");
    assert!(!spoken.iter().any(|t| t.contains("nine")), "the early reply was never spoken: {spoken:?}");
    call.hang_up().await;
}

#[tokio::test(start_paused = true)]
async fn an_early_start_confirmed_by_the_final_words_is_used() {
    let mut rig = Rig::new().with_model([ScriptedLlm::says("We open at nine.", ms(100))]);
    let mut call = start(rig.engines());
    let stream = rig.streams.recv().await.expect("the recogniser was opened");
    call.over(Duration::from_secs(8)).await;

    say(&stream, words("what are your hours")).await;
    call.over(ms(400)).await;
    say(&stream, final_words("What are your hours?")).await;
    let answer = call.over(ms(1000)).await;
    assert!(audio_ms(&answer) > 0);
    assert_eq!(rig.llm.as_ref().map(|l| l.requests().len()), Some(1), "no second request");
    assert_eq!(rig.tts.turns().last().map(String::as_str), Some("We open at nine."));
    call.hang_up().await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_model_leaves_the_answer_to_the_local_engine() {
    let mut rig = Rig::new().with_model([ScriptedLlm::fails(ms(50))]);
    let mut call = start(rig.engines());
    let stream = rig.streams.recv().await.expect("the recogniser was opened");
    call.over(Duration::from_secs(8)).await;
    say(&stream, final_words("what are your hours")).await;
    let answer = call.over(ms(1500)).await;
    assert!(audio_ms(&answer) > 0, "the caller is answered");
    assert_eq!(rig.tts.turns().len(), 2, "the local engine's answer was spoken");
    assert!(!rig.tts.turns()[1].is_empty());
    call.hang_up().await;
}

#[tokio::test(start_paused = true)]
async fn a_model_too_slow_for_its_first_token_leaves_the_answer_to_the_local_engine() {
    let mut rig = Rig::new().with_model([ScriptedLlm::says("Too late.", Duration::from_secs(5))]);
    let mut call = start(rig.engines());
    let stream = rig.streams.recv().await.expect("the recogniser was opened");
    call.over(Duration::from_secs(8)).await;
    say(&stream, final_words("what are your hours")).await;
    call.over(Duration::from_secs(6)).await;
    let spoken = rig.tts.turns();
    assert_eq!(spoken.len(), 2, "{spoken:?}");
    assert!(!spoken[1].contains("Too late"), "the slow reply was dropped: {spoken:?}");
    call.hang_up().await;
}

#[tokio::test(start_paused = true)]
async fn after_three_failures_the_breaker_keeps_new_calls_off_the_model() {
    let mut rig = Rig::new().with_model((0..4).map(|_| ScriptedLlm::fails(ms(10))));
    let engines = rig.engines();
    for _ in 0..3 {
        let mut call = start(engines.clone());
        let stream = rig.streams.recv().await.expect("the recogniser was opened");
        call.over(Duration::from_secs(8)).await;
        say(&stream, final_words("what are your hours")).await;
        call.over(ms(500)).await;
        call.hang_up().await;
    }
    let llm = rig.llm.clone().expect("a model");
    assert_eq!(llm.requests().len(), 3);
    let mut call = start(engines);
    let stream = rig.streams.recv().await.expect("the recogniser was opened");
    call.over(Duration::from_secs(8)).await;
    say(&stream, final_words("what are your hours")).await;
    let answer = call.over(ms(1500)).await;
    assert!(audio_ms(&answer) > 0, "the local engine answers");
    assert_eq!(llm.requests().len(), 3, "the open breaker kept the model out of the new call");
    call.hang_up().await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_synthesizer_hands_the_turn_to_the_local_voice() {
    let mut rig = Rig::new();
    rig.tts = Arc::new(ScriptedTts::failing("cloud-tts"));
    rig.tts_fallback = Some(Arc::new(ScriptedTts::new("local-tts", ms(20), BYTES_PER_CHAR)));
    let mut call = start(rig.engines());
    let out = call.over(ms(1000)).await;
    assert!(audio_ms(&out) > 400, "the caller hears the greeting");
    let local = rig.tts_fallback.as_ref().expect("a fallback").turns();
    assert_eq!(local.len(), 1);
    assert!(local[0].contains("Alpha Dental"), "the local voice says the whole greeting: {local:?}");
    call.hang_up().await;
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_recogniser_gives_way_to_the_local_one() {
    let mut rig = Rig::new();
    let (local, mut local_streams) = ScriptedStt::new("local-stt");
    rig.stt = Arc::new(ScriptedStt::unavailable("cloud-stt"));
    rig.stt_fallback = Some(Arc::new(local));
    let mut call = start(rig.engines());
    call.over(ms(100)).await;
    assert!(local_streams.recv().await.is_some(), "the local recogniser listens");
    call.hang_up().await;
}

#[tokio::test(start_paused = true)]
async fn the_owner_taking_over_cuts_the_agent_says_the_hand_over_line_and_closes_into_a_transfer() {
    let mut rig = Rig::new();
    let mut call = start(rig.engines());
    let stream = rig.streams.recv().await.expect("the recogniser was opened");
    call.over(ms(600)).await;
    call.commands.send(CallCommand::TakeOver).await.expect("the call takes commands");
    let cut = call.over(ms(100)).await;
    assert_eq!(clears(&cut), 1, "the greeting stops at once");
    // The caller talking over the hand-over line changes nothing.
    say(&stream, SttEvent::SpeechStarted).await;
    say(&stream, final_words("wait, what is happening")).await;
    let rest = call.over(Duration::from_secs(10)).await;
    assert_eq!(clears(&rest), 0, "the hand-over line is not cut");
    assert!(rest.contains(&CallOutput::Close), "the stream closes once the line is said");
    let turns = rig.tts.turns();
    assert_eq!(turns.len(), 2, "{turns:?}");
    assert!(turns[1].contains("putting you through to someone at Alpha Dental"), "{turns:?}");
    let summary = call.task.await.expect("the call ends");
    assert_eq!(summary.outcome, Outcome::Transfer);
    assert!(summary.transfer);
}

#[tokio::test(start_paused = true)]
async fn an_owners_note_is_said_at_the_agents_next_turn_never_over_it() {
    let rig = Rig::new();
    let mut call = start(rig.engines());
    call.over(ms(600)).await;
    // Sent while the greeting plays: it waits for the greeting to end.
    let note = CallCommand::note("Tell them we can fit them in at three today.").expect("a note");
    call.commands.send(note).await.expect("the call takes commands");
    let during = call.over(ms(300)).await;
    assert_eq!(clears(&during), 0, "the note does not cut the greeting");
    assert_eq!(rig.tts.turns().len(), 1);
    let after = call.over(Duration::from_secs(8)).await;
    assert!(audio_ms(&after) > 0);
    let turns = rig.tts.turns();
    assert_eq!(turns.len(), 2, "{turns:?}");
    assert_eq!(turns[1], "Tell them we can fit them in at three today.");
    let checkpoint = call.checkpoint().await;
    let said = checkpoint.turns.iter().filter(|t| t.speaker == Speaker::Agent).map(|t| t.text.as_str());
    assert!(
        said.clone().any(|t| t == "Tell them we can fit them in at three today."),
        "{:?}",
        said.collect::<Vec<_>>()
    );
    assert_eq!(call.hang_up().await.outcome, Outcome::None);
}

#[tokio::test(start_paused = true)]
async fn a_caller_quiet_before_hanging_up_is_saved_without_flushing_the_recogniser() {
    let mut rig = Rig::new();
    let mut call = start(rig.engines());
    let mut stream = rig.streams.recv().await.expect("the recogniser was opened");
    call.over(Duration::from_secs(8)).await;
    let hung_up = Instant::now();
    let summary = call.hang_up().await;
    assert_eq!(summary.turns, 1, "the greeting alone");
    // The save fails at once here (no database) and is retried after 200 ms; a flush
    // would have waited up to 1.5 s for words that cannot come.
    assert!(hung_up.elapsed() < ms(1000), "ended {:?} after the hang-up", hung_up.elapsed());
    while let Ok(input) = stream.audio.try_recv() {
        assert!(!matches!(input, SttInput::Finalize), "no flush was asked for");
    }
}

#[tokio::test(start_paused = true)]
async fn a_caller_hanging_up_mid_sentence_keeps_the_words_the_flush_brings() {
    let mut rig = Rig::new();
    let mut call = start(rig.engines());
    let mut stream = rig.streams.recv().await.expect("the recogniser was opened");
    call.over(Duration::from_secs(8)).await;
    say(&stream, SttEvent::SpeechStarted).await;
    say(&stream, words("I need to")).await;
    call.over(ms(100)).await;
    call.input.send(CallInput::Hangup).await.expect("the call listens");
    loop {
        match stream.audio.recv().await {
            Some(SttInput::Finalize) => break,
            Some(SttInput::Audio(_)) => continue,
            None => panic!("the recogniser was closed without a flush"),
        }
    }
    say(&stream, final_words("I need to move my appointment")).await;
    let summary = call.task.await.expect("the call ends");
    assert_eq!(summary.turns, 2, "the greeting and the caller's last words");
}
