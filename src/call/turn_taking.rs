//! Who has the floor: the caller's speech as the recogniser reports it, turned into what the
//! agent should do — hold at the first sound over it, give up the turn when real words go
//! on (barge-in), ignore a backchannel, go on from where it stopped when the sound comes to
//! nothing, and check in after a silence. Pure bookkeeping on a clock; no I/O.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::dialogue::nlu;

/// How long after a cut-off the agent waits for words before resuming.
pub const RESUME_AFTER: Duration = Duration::from_millis(1500);
/// How long the agent holds for a sound over it that never becomes words.
pub const MAX_HOLD_WITHOUT_WORDS: Duration = Duration::from_millis(1500);
/// Voice older than this has been transcribed, or dismissed as noise, by any recogniser
/// we use (Deepgram ends an utterance 1 s after the last word at the latest).
pub const UNSETTLED_VOICE: Duration = Duration::from_secs(2);

/// The unheard rest of a turn cut by speech that may turn out not to be a real
/// interruption (it is said after all if the caller says nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct Resume {
    pub text: String,
    pub end_call: bool,
    pub transfer: bool,
    at: Instant,
}

/// What the agent should do about what the recogniser just reported.
#[derive(Debug, Clone, PartialEq)]
pub enum Reaction {
    Nothing,
    /// Go quiet at once, keeping the unplayed rest: the caller may only be making a sound.
    Hold,
    /// The caller is taking the floor: stop the turn (holding first if not yet held), and
    /// keep the rest in case their words come to nothing.
    BargeIn,
    /// The sound over the agent came to nothing: `unpause` the held audio, or say the
    /// `resume`d rest of a turn already cut.
    GoOn {
        unpause: bool,
        resume: Option<Resume>,
    },
    /// The caller said something: stop the agent first when `interrupt`; answer it when
    /// `complete` (the end of the caller's turn).
    Words {
        text: String,
        interrupt: bool,
        complete: bool,
    },
}

/// The caller's side of the floor.
#[derive(Debug)]
pub struct TurnTaking {
    barge_in_after: Duration,
    /// When the caller started speaking (recogniser's speech start), for the caller's turn.
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
    /// The last sign of life from either side.
    last_activity: Instant,
    resume: Option<Resume>,
}

impl TurnTaking {
    pub fn new(now: Instant, barge_in_after: Duration) -> Self {
        Self {
            barge_in_after,
            speech_started_at: None,
            last_interim_at: None,
            last_interim_changed: None,
            last_interim: String::new(),
            barge_deadline: None,
            held_at: None,
            caller_voice_at: None,
            last_activity: now,
            resume: None,
        }
    }

    /// When speech over the agent is next judged.
    pub fn barge_deadline(&self) -> Option<Instant> {
        self.barge_deadline
    }

    pub fn is_holding(&self) -> bool {
        self.held_at.is_some()
    }

    pub fn has_resume(&self) -> bool {
        self.resume.is_some()
    }

    /// The caller is speaking (or has said words not yet answered).
    pub fn caller_is_speaking(&self) -> bool {
        self.speech_started_at.is_some()
    }

    /// Whether the recogniser may still owe words: the caller has a turn under way, or
    /// their voice was heard within [`UNSETTLED_VOICE`]. Nothing can come otherwise, so a
    /// hang-up need not wait for a flush.
    pub fn words_may_be_pending(&self, now: Instant) -> bool {
        self.speech_started_at.is_some()
            || self.caller_voice_at.is_some_and(|v| now.duration_since(v) < UNSETTLED_VOICE)
    }

    /// Something happened (a key pressed, the agent began or finished a turn).
    pub fn touch(&mut self, now: Instant) {
        self.last_activity = now;
    }

    /// A frame of the caller's audio loud enough to be their voice.
    pub fn caller_voice(&mut self, now: Instant) {
        self.caller_voice_at = Some(now);
    }

    /// ConversationRelay's recognised prompt: the caller spoke now.
    pub fn prompt(&mut self, now: Instant) {
        self.last_activity = now;
        self.speech_started_at = Some(Utc::now());
    }

    pub fn speech_started(&mut self, now: Instant, agent_speaking: bool) -> Reaction {
        self.last_activity = now;
        self.speech_started_at.get_or_insert_with(Utc::now);
        if !agent_speaking {
            return Reaction::Nothing;
        }
        if self.barge_deadline.is_none() {
            self.barge_deadline = Some(now + self.barge_in_after);
        }
        Reaction::Hold
    }

    /// An interim transcript. Returns whether the words changed (an early start on older
    /// words is then stale) and what to do.
    pub fn interim(&mut self, text: &str, now: Instant, agent_speaking: bool) -> (bool, Reaction) {
        self.last_activity = now;
        self.speech_started_at.get_or_insert_with(Utc::now);
        let changed = text != self.last_interim;
        if changed {
            self.last_interim_at = Some(Utc::now());
            self.last_interim_changed = Some(now);
            text.clone_into(&mut self.last_interim);
        }
        if !agent_speaking || text.trim().is_empty() || nlu::is_backchannel(text) {
            return (changed, Reaction::Nothing);
        }
        // Real words over the agent: hold now; once they have lasted long enough, the turn
        // is over.
        let reaction = match self.barge_deadline {
            Some(deadline) if deadline <= now => Reaction::BargeIn,
            Some(_) => Reaction::Hold,
            None => {
                self.barge_deadline = Some(now + self.barge_in_after);
                Reaction::Hold
            }
        };
        (changed, reaction)
    }

    /// A final transcript segment; `speech_final` ends the caller's turn.
    pub fn final_words(&mut self, text: &str, speech_final: bool, now: Instant, agent_speaking: bool) -> Reaction {
        self.last_activity = now;
        let text = text.trim();
        if text.is_empty() {
            self.barge_deadline = None;
            return self.go_on();
        }
        if (agent_speaking || self.resume.is_some()) && nlu::is_backchannel(text) {
            // "mhm", "okay": the caller is listening, not taking the floor.
            self.barge_deadline = None;
            self.reset_caller_turn();
            return self.go_on();
        }
        self.resume = None;
        Reaction::Words { text: text.to_owned(), interrupt: agent_speaking, complete: speech_final }
    }

    /// The sound over the agent came to nothing.
    fn go_on(&mut self) -> Reaction {
        let unpause = self.held_at.take().is_some();
        let resume = self.take_resume();
        Reaction::GoOn { unpause, resume }
    }

    fn take_resume(&mut self) -> Option<Resume> {
        let resume = self.resume.take()?;
        self.reset_caller_turn();
        Some(resume)
    }

    /// The barge-in deadline passed: words mean the caller has the floor; a sound with no
    /// words is waited on, but not forever.
    pub fn barge_deadline_passed(&mut self, now: Instant, agent_speaking: bool) -> Reaction {
        self.barge_deadline = None;
        if !agent_speaking {
            return Reaction::Nothing;
        }
        if !self.last_interim.trim().is_empty() {
            if nlu::is_backchannel(&self.last_interim) {
                return Reaction::Nothing;
            }
            return Reaction::BargeIn;
        }
        let voice_stopped = self.caller_voice_at.is_none_or(|v| now.duration_since(v) >= MAX_HOLD_WITHOUT_WORDS);
        let held_for = self.held_at.map_or(Duration::ZERO, |t| now.duration_since(t));
        // Noise that goes on and on (a television) does not keep the agent quiet forever.
        if held_for >= MAX_HOLD_WITHOUT_WORDS && (voice_stopped || held_for >= 3 * MAX_HOLD_WITHOUT_WORDS) {
            // Noise the recogniser never turned into words: go on talking.
            return Reaction::GoOn { unpause: self.held_at.take().is_some(), resume: None };
        }
        // Speech without words yet: wait for the recogniser to tell what it was.
        self.barge_deadline = Some(now + self.barge_in_after);
        Reaction::Nothing
    }

    /// The agent went quiet for the caller. Returns false when it already was.
    pub fn hold(&mut self, now: Instant) -> bool {
        if self.held_at.is_some() {
            return false;
        }
        self.held_at = Some(now);
        true
    }

    /// How long the caller had been speaking when the agent went quiet.
    pub fn speaking_for(&self) -> Option<Duration> {
        self.speech_started_at.map(|started| (Utc::now() - started).to_std().unwrap_or_default())
    }

    /// A new agent turn starts: nothing is held any more.
    pub fn agent_turn_started(&mut self, now: Instant) {
        self.held_at = None;
        self.last_activity = now;
    }

    /// The agent was stopped: any pending barge-in, hold or resume is over. Returns whether
    /// its audio was held (and so already cleared).
    pub fn agent_stopped(&mut self) -> bool {
        self.barge_deadline = None;
        self.resume = None;
        self.held_at.take().is_some()
    }

    /// Keeps the unheard rest of a stopped turn, to say if the caller's words come to nothing.
    pub fn keep_resume(&mut self, text: String, end_call: bool, transfer: bool, now: Instant) {
        self.resume = Some(Resume { text, end_call, transfer, at: now });
    }

    /// The caller's turn is over: when they started and stopped speaking.
    pub fn take_caller_turn(&mut self) -> (DateTime<Utc>, DateTime<Utc>) {
        let now = Utc::now();
        let started = self.speech_started_at.take().unwrap_or(now);
        let stopped = self.last_interim_at.take().unwrap_or(now);
        self.last_interim.clear();
        self.last_interim_changed = None;
        (started, stopped)
    }

    fn reset_caller_turn(&mut self) {
        self.speech_started_at = None;
        self.last_interim_at = None;
        self.last_interim_changed = None;
        self.last_interim.clear();
    }

    /// The words of a pause long enough to start the model on them, if any.
    pub fn early_words(&self, now: Instant, after: Duration) -> Option<&str> {
        let stable = self.last_interim_changed.is_some_and(|at| now.duration_since(at) >= after);
        let words = self.last_interim.split_whitespace().count();
        (stable && words >= 2 && !nlu::is_backchannel(&self.last_interim)).then_some(self.last_interim.as_str())
    }

    /// The rest of a cut turn, once the caller has been quiet long enough since the cut.
    pub fn due_resume(&mut self, now: Instant) -> Option<Resume> {
        // No word from the recogniser since (a cough may never produce a final at all).
        let last_heard = self.caller_voice_at.map_or(self.last_activity, |v| v.max(self.last_activity));
        let quiet = now.duration_since(last_heard) >= RESUME_AFTER;
        if self.resume.as_ref().is_some_and(|r| now.duration_since(r.at) >= RESUME_AFTER) && quiet {
            return self.take_resume();
        }
        None
    }

    /// Whether nobody has said anything for `timeout` (the agent should check in); when so,
    /// the silence starts counting again.
    pub fn silent_for(&mut self, now: Instant, timeout: Duration) -> bool {
        if self.speech_started_at.is_none() && now.duration_since(self.last_activity) > timeout {
            self.last_activity = now;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARGE: Duration = Duration::from_millis(500);

    fn floor() -> TurnTaking {
        TurnTaking::new(Instant::now(), BARGE)
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_sound_over_the_agent_holds_it() {
        let mut t = floor();
        assert_eq!(t.speech_started(Instant::now(), true), Reaction::Hold);
        assert!(t.hold(Instant::now()));
        assert!(!t.hold(Instant::now()), "a second hold sends nothing more");
        assert!(t.caller_is_speaking());
    }

    #[tokio::test(start_paused = true)]
    async fn speech_while_the_agent_is_quiet_changes_nothing() {
        let mut t = floor();
        assert_eq!(t.speech_started(Instant::now(), false), Reaction::Nothing);
        assert_eq!(t.interim("book a table", Instant::now(), false), (true, Reaction::Nothing));
        assert_eq!(t.barge_deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn words_that_last_past_the_deadline_take_the_floor() {
        let mut t = floor();
        t.speech_started(Instant::now(), true);
        t.hold(Instant::now());
        assert_eq!(t.interim("wait I", Instant::now(), true), (true, Reaction::Hold));
        tokio::time::advance(BARGE).await;
        assert_eq!(t.interim("wait I need", Instant::now(), true), (true, Reaction::BargeIn));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_with_words_heard_is_a_barge_in() {
        let mut t = floor();
        t.speech_started(Instant::now(), true);
        t.interim("actually no", Instant::now(), true);
        tokio::time::advance(BARGE).await;
        assert_eq!(t.barge_deadline_passed(Instant::now(), true), Reaction::BargeIn);
    }

    #[tokio::test(start_paused = true)]
    async fn words_may_be_pending_while_a_turn_is_under_way_or_the_voice_is_recent() {
        let mut t = floor();
        assert!(!t.words_may_be_pending(Instant::now()), "a caller who never spoke owes nothing");
        t.caller_voice(Instant::now());
        assert!(t.words_may_be_pending(Instant::now()), "a voice just heard may still become words");
        tokio::time::advance(UNSETTLED_VOICE).await;
        assert!(!t.words_may_be_pending(Instant::now()));
        t.interim("I need to", Instant::now(), false);
        tokio::time::advance(UNSETTLED_VOICE * 2).await;
        assert!(t.words_may_be_pending(Instant::now()), "an unfinished turn waits for its final");
        t.final_words("I need to move my appointment", true, Instant::now(), false);
        t.take_caller_turn();
        assert!(!t.words_may_be_pending(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_backchannel_over_the_agent_is_not_a_barge_in() {
        let mut t = floor();
        t.speech_started(Instant::now(), true);
        t.hold(Instant::now());
        assert_eq!(t.interim("mhm", Instant::now(), true), (true, Reaction::Nothing));
        assert_eq!(t.final_words("mhm", true, Instant::now(), true), Reaction::GoOn { unpause: true, resume: None });
        assert!(!t.caller_is_speaking(), "a backchannel is not the caller's turn");
    }

    #[tokio::test(start_paused = true)]
    async fn a_sound_without_words_is_waited_on_then_talked_over() {
        let mut t = floor();
        t.speech_started(Instant::now(), true);
        t.hold(Instant::now());
        t.caller_voice(Instant::now());
        tokio::time::advance(BARGE).await;
        assert_eq!(t.barge_deadline_passed(Instant::now(), true), Reaction::Nothing);
        assert!(t.barge_deadline().is_some(), "waits for the recogniser");
        tokio::time::advance(MAX_HOLD_WITHOUT_WORDS).await;
        assert_eq!(t.barge_deadline_passed(Instant::now(), true), Reaction::GoOn { unpause: true, resume: None });
        assert!(!t.is_holding());
    }

    #[tokio::test(start_paused = true)]
    async fn noise_that_never_stops_does_not_keep_the_agent_quiet_forever() {
        let mut t = floor();
        t.speech_started(Instant::now(), true);
        t.hold(Instant::now());
        let held_at = Instant::now();
        let mut ended_after = None;
        for _ in 0..12 {
            tokio::time::advance(BARGE).await;
            t.caller_voice(Instant::now());
            if t.barge_deadline_passed(Instant::now(), true) != Reaction::Nothing {
                ended_after = Some(held_at.elapsed());
                break;
            }
        }
        assert_eq!(ended_after, Some(3 * MAX_HOLD_WITHOUT_WORDS), "the hold ends at three times the limit");
        assert!(!t.is_holding());
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_final_after_a_cut_resumes_the_turn() {
        let mut t = floor();
        t.speech_started(Instant::now(), true);
        t.agent_stopped();
        t.keep_resume("the rest".into(), false, false, Instant::now());
        let Reaction::GoOn { resume: Some(resume), .. } = t.final_words(" ", true, Instant::now(), false) else {
            panic!("no resume")
        };
        assert_eq!(resume.text, "the rest");
        assert!(!t.has_resume());
    }

    #[tokio::test(start_paused = true)]
    async fn real_words_after_a_cut_drop_the_resume_and_are_answered() {
        let mut t = floor();
        t.agent_stopped();
        t.keep_resume("the rest".into(), false, false, Instant::now());
        assert_eq!(
            t.final_words(" Tuesday please ", true, Instant::now(), false),
            Reaction::Words { text: "Tuesday please".into(), interrupt: false, complete: true }
        );
        assert!(!t.has_resume());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cut_turn_resumes_only_once_the_caller_is_quiet() {
        let mut t = floor();
        t.agent_stopped();
        t.keep_resume("the rest".into(), true, false, Instant::now());
        tokio::time::advance(RESUME_AFTER / 2).await;
        t.caller_voice(Instant::now());
        tokio::time::advance(RESUME_AFTER / 2).await;
        assert_eq!(t.due_resume(Instant::now()), None, "the caller's voice was heard just now");
        tokio::time::advance(RESUME_AFTER).await;
        let resume = t.due_resume(Instant::now()).expect("quiet long enough");
        assert!(resume.end_call);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stable_pause_gives_words_to_start_early_on() {
        let mut t = floor();
        t.interim("I'd like", Instant::now(), false);
        assert_eq!(t.early_words(Instant::now(), Duration::from_millis(200)), None);
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(t.early_words(Instant::now(), Duration::from_millis(200)), Some("I'd like"));
        t.interim("okay", Instant::now(), false);
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(t.early_words(Instant::now(), Duration::from_millis(200)), None, "a backchannel is not a request");
    }

    #[tokio::test(start_paused = true)]
    async fn silence_counts_only_while_nobody_speaks() {
        let mut t = floor();
        let timeout = Duration::from_secs(10);
        tokio::time::advance(timeout + Duration::from_millis(1)).await;
        assert!(t.silent_for(Instant::now(), timeout));
        assert!(!t.silent_for(Instant::now(), timeout), "counting starts again");
        t.speech_started(Instant::now(), false);
        tokio::time::advance(timeout * 2).await;
        assert!(!t.silent_for(Instant::now(), timeout), "the caller is mid-sentence");
    }
}
