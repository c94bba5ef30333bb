//! Outbound audio pacing: the agent's speech goes to Twilio in 40 ms chunks, kept about
//! 160 ms ahead of what the caller is hearing, with a mark after every chunk so we always
//! know what was actually played. Pure bookkeeping; the actor does the sending.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// 8 kHz μ-law: one byte per sample, so 8 bytes per millisecond.
pub const BYTES_PER_MS: usize = 8;
/// Outbound chunk: 40 ms.
pub const CHUNK_BYTES: usize = 40 * BYTES_PER_MS;
/// How far ahead of playback we keep Twilio's buffer filled.
pub const LEAD: Duration = Duration::from_millis(160);
/// Audio kept after sending, so a hold can take back what Twilio had not played yet (the
/// lead plus marks still on their way back): one second.
const SENT_TAIL_BYTES: usize = 1000 * BYTES_PER_MS;
/// The queue of audio to send keeps an allocation up to this size from turn to turn.
const KEEP_CAPACITY: usize = 8 * 1024;

/// One thing to put on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Send {
    /// μ-law audio and when Twilio will start playing it (after what is already queued).
    Audio {
        bytes: Vec<u8>,
        plays_at: Instant,
    },
    Mark(String),
}

/// Pacing and playback tracking for the agent's current turn.
#[derive(Debug)]
pub struct Playback {
    pending: VecDeque<u8>,
    /// The source has no more audio for this turn (the last, short chunk may go out).
    finished_input: bool,
    /// When Twilio will have played everything sent so far.
    play_end: Option<Instant>,
    /// Marks in flight: name and the turn's byte count up to it.
    marks: VecDeque<(String, usize)>,
    sent_bytes: usize,
    heard_bytes: usize,
    generation: u64,
    next_mark: u64,
    first_mark_seen: bool,
    /// The last bytes sent, oldest first (at most [`SENT_TAIL_BYTES`]).
    sent_tail: VecDeque<u8>,
    /// Holding for the caller: nothing is sent until [`Playback::unpause`].
    paused: bool,
}

impl Default for Playback {
    fn default() -> Self {
        Self::new()
    }
}

impl Playback {
    pub fn new() -> Self {
        Self {
            pending: VecDeque::new(),
            finished_input: false,
            play_end: None,
            marks: VecDeque::new(),
            sent_bytes: 0,
            heard_bytes: 0,
            generation: 0,
            next_mark: 0,
            first_mark_seen: false,
            sent_tail: VecDeque::new(),
            paused: false,
        }
    }

    /// Starts a new agent turn (after the previous one ended or was cleared).
    pub fn start_turn(&mut self) {
        self.pending.clear();
        self.release_pending();
        self.finished_input = false;
        self.sent_bytes = 0;
        self.heard_bytes = 0;
        self.first_mark_seen = false;
        self.sent_tail.clear();
        self.paused = false;
        self.generation += 1;
    }

    /// An empty queue that a long reply's audio grew gives its memory back: a thousand
    /// live calls keep little between replies.
    fn release_pending(&mut self) {
        if self.pending.capacity() > KEEP_CAPACITY {
            self.pending = VecDeque::new();
        }
    }

    /// Queues synthesized audio for the current turn.
    pub fn push(&mut self, audio: &[u8]) {
        self.pending.extend(audio);
    }

    /// The source of this turn's audio is done.
    pub fn finish_input(&mut self) {
        self.finished_input = true;
    }

    /// What to send now to keep [`LEAD`] of audio ahead of playback.
    pub fn pump(&mut self, now: Instant, out: &mut Vec<Send>) {
        if self.paused {
            return;
        }
        loop {
            let ahead = self.play_end.map_or(Duration::ZERO, |end| end.saturating_duration_since(now));
            if ahead >= LEAD {
                return;
            }
            let take = if self.pending.len() >= CHUNK_BYTES {
                CHUNK_BYTES
            } else if self.finished_input && !self.pending.is_empty() {
                self.pending.len()
            } else {
                return;
            };
            let chunk: Vec<u8> = self.pending.drain(..take).collect();
            if self.pending.is_empty() {
                self.release_pending();
            }
            let overflow = (self.sent_tail.len() + take).saturating_sub(SENT_TAIL_BYTES);
            self.sent_tail.drain(..overflow.min(self.sent_tail.len()));
            self.sent_tail.extend(&chunk);
            let duration = Duration::from_millis((take / BYTES_PER_MS) as u64);
            let start = self.play_end.filter(|end| *end > now).unwrap_or(now);
            self.play_end = Some(start + duration);
            self.sent_bytes += take;
            let name = format!("{}-{}", self.generation, self.next_mark);
            self.next_mark += 1;
            self.marks.push_back((name.clone(), self.sent_bytes));
            out.push(Send::Audio { bytes: chunk, plays_at: start });
            out.push(Send::Mark(name));
        }
    }

    /// When [`Playback::pump`] will next have a chunk to send: once Twilio's buffer is
    /// under [`LEAD`], a millisecond (the timer's grain) after it reaches it. `None` while
    /// paused or while no whole chunk waits (and more audio is still coming).
    pub fn next_send_at(&self, now: Instant) -> Option<Instant> {
        let ready = self.pending.len() >= CHUNK_BYTES || self.finished_input && !self.pending.is_empty();
        if self.paused || !ready {
            return None;
        }
        let due = self.play_end.and_then(|end| end.checked_sub(LEAD)).map(|at| at + Duration::from_millis(1));
        Some(due.map_or(now, |due| due.max(now)))
    }

    /// A mark came back. Returns true the first time one of this turn's marks is echoed.
    pub fn on_mark(&mut self, name: &str) -> bool {
        let Some(pos) = self.marks.iter().position(|(n, _)| n == name) else {
            return false; // a mark of a cleared turn, or not ours
        };
        // Marks are echoed in order; anything before this one has played too.
        for _ in 0..=pos {
            if let Some((_, upto)) = self.marks.pop_front() {
                self.heard_bytes = self.heard_bytes.max(upto);
            }
        }
        let first = !self.first_mark_seen;
        self.first_mark_seen = true;
        first
    }

    /// Audio is queued, in flight, or still playing.
    pub fn is_speaking(&self, now: Instant) -> bool {
        !self.pending.is_empty()
            || !self.finished_input
            || !self.marks.is_empty() && self.play_end.is_some_and(|end| end + Duration::from_millis(1500) > now)
            || self.play_end.is_some_and(|end| end > now)
    }

    /// The turn has been fully played (every mark echoed, or well past its play time when
    /// the peer never echoes marks).
    pub fn is_done(&self, now: Instant) -> bool {
        self.finished_input && self.pending.is_empty() && !self.is_speaking(now)
    }

    /// Whether there is more to send than has been sent.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The caller started to speak over the agent: after a `clear`, take back what Twilio
    /// had not played (by the marks echoed so far) and send nothing until
    /// [`Playback::unpause`]. If the caller was only coughing, the turn goes on from where
    /// it stopped without synthesizing anything again.
    pub fn pause(&mut self) {
        if self.paused {
            return;
        }
        self.paused = true;
        let unheard = self.sent_bytes.saturating_sub(self.heard_bytes).min(self.sent_tail.len());
        for byte in self.sent_tail.drain(self.sent_tail.len() - unheard..).rev() {
            self.pending.push_front(byte);
        }
        self.sent_bytes -= unheard;
        // Twilio echoes every pending mark on `clear`; those echoes must not count as heard.
        self.marks.clear();
        self.play_end = None;
    }

    /// The hold is over: sending resumes with the audio taken back by [`Playback::pause`].
    pub fn unpause(&mut self) {
        self.paused = false;
    }

    /// Holding for the caller (see [`Playback::pause`]).
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Barge-in: forget everything not yet played. Returns the fraction of the turn's
    /// audio the caller heard (by the marks echoed before the clear).
    pub fn clear(&mut self) -> f32 {
        let total = self.sent_bytes + self.pending.len();
        let heard = if total == 0 { 0.0 } else { self.heard_bytes as f32 / total as f32 };
        self.pending.clear();
        self.release_pending();
        self.marks.clear();
        self.sent_tail.clear();
        self.paused = false;
        self.play_end = None;
        self.finished_input = true;
        heard.clamp(0.0, 1.0)
    }

    pub fn heard_fraction(&self) -> f32 {
        let total = self.sent_bytes + self.pending.len();
        if total == 0 { 0.0 } else { (self.heard_bytes as f32 / total as f32).clamp(0.0, 1.0) }
    }
}

/// The part of `text` a caller heard when `fraction` of its audio played (by words).
pub fn heard_text(text: &str, fraction: f32) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let n = ((words.len() as f32) * fraction).floor() as usize;
    words[..n.min(words.len())].join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(out: &[Send]) -> usize {
        out.iter().map(|s| if let Send::Audio { bytes, .. } = s { bytes.len() } else { 0 }).sum()
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_about_160_ms_ahead_and_marks_every_chunk() {
        let mut p = Playback::new();
        p.start_turn();
        p.push(&vec![0xff; 8000]); // one second
        let mut out = Vec::new();
        let t0 = Instant::now();
        p.pump(t0, &mut out);
        assert_eq!(audio(&out), 4 * CHUNK_BYTES, "160 ms up front");
        assert!(out.chunks(2).all(|pair| matches!(pair, [Send::Audio { .. }, Send::Mark(_)])));
        // Over the next half second, what is sent stays 160–200 ms ahead of playback.
        let mut sent = audio(&out);
        for ms in (20..=500).step_by(20) {
            out.clear();
            p.pump(t0 + Duration::from_millis(ms), &mut out);
            sent += audio(&out);
            let ahead_ms = (sent / BYTES_PER_MS) as u64 - ms;
            assert!((160..=200).contains(&ahead_ms), "at {ms} ms we are {ahead_ms} ms ahead");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_next_chunk_is_due_when_the_lead_falls_under_160_ms() {
        let mut p = Playback::new();
        p.start_turn();
        let t0 = Instant::now();
        assert_eq!(p.next_send_at(t0), None, "nothing to send");
        p.push(&vec![0xff; 8000]);
        assert_eq!(p.next_send_at(t0), Some(t0), "the first chunks go at once");
        let mut out = Vec::new();
        p.pump(t0, &mut out);
        // 160 ms are queued at Twilio: the next chunk goes once any of it has played, and
        // the one after when another 40 ms have.
        let due = p.next_send_at(t0).unwrap();
        assert_eq!(due, t0 + Duration::from_millis(1));
        out.clear();
        p.pump(due, &mut out);
        assert_eq!(audio(&out), CHUNK_BYTES, "one chunk when due");
        let due = p.next_send_at(due).unwrap();
        assert_eq!(due, t0 + Duration::from_millis(41));
        out.clear();
        p.pump(due - Duration::from_millis(1), &mut out);
        assert!(out.is_empty(), "not due yet");
        p.pump(due, &mut out);
        assert_eq!(audio(&out), CHUNK_BYTES, "one chunk when due");
        p.pause();
        assert_eq!(p.next_send_at(due), None, "nothing is due during a hold");
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_short_chunk_goes_out_once_input_is_finished() {
        let mut p = Playback::new();
        p.start_turn();
        p.push(&[0xff; 100]);
        let mut out = Vec::new();
        p.pump(Instant::now(), &mut out);
        assert!(out.is_empty());
        p.finish_input();
        p.pump(Instant::now(), &mut out);
        assert_eq!(audio(&out), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn clear_reports_what_was_heard_from_echoed_marks() {
        let mut p = Playback::new();
        p.start_turn();
        p.push(&vec![0xff; 10 * CHUNK_BYTES]);
        p.finish_input();
        let mut out = Vec::new();
        p.pump(Instant::now(), &mut out);
        let marks: Vec<String> =
            out.iter().filter_map(|s| if let Send::Mark(m) = s { Some(m.clone()) } else { None }).collect();
        assert!(p.on_mark(&marks[1]), "first echo of the turn");
        assert!(!p.on_mark(&marks[0]), "already covered by the later mark");
        let heard = p.clear();
        assert!((heard - 0.2).abs() < 1e-6, "2 of 10 chunks heard, got {heard}");
        assert!(!p.has_pending());
        // Marks echoed after the clear belong to the cleared turn and are ignored.
        assert!(!p.on_mark(&marks[3]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_is_done_when_played_out() {
        let mut p = Playback::new();
        p.start_turn();
        p.push(&[0xff; CHUNK_BYTES]);
        p.finish_input();
        let mut out = Vec::new();
        let t0 = Instant::now();
        p.pump(t0, &mut out);
        assert!(!p.is_done(t0));
        if let Send::Mark(m) = &out[1] {
            p.on_mark(m);
        }
        assert!(p.is_done(t0 + Duration::from_millis(41)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_takes_back_what_was_not_played_and_resumes_from_there() {
        let mut p = Playback::new();
        p.start_turn();
        // Ten chunks, each filled with its own number, so the order can be checked.
        for n in 0..10u8 {
            p.push(&[n; CHUNK_BYTES]);
        }
        p.finish_input();
        let mut out = Vec::new();
        let t0 = Instant::now();
        p.pump(t0, &mut out);
        let marks: Vec<String> =
            out.iter().filter_map(|s| if let Send::Mark(m) = s { Some(m.clone()) } else { None }).collect();
        assert_eq!(marks.len(), 4);
        p.on_mark(&marks[0]); // chunk 0 played; 1..=3 were still in Twilio's buffer
        p.pause();
        assert!(p.is_paused());
        out.clear();
        p.pump(t0 + Duration::from_millis(500), &mut out);
        assert!(out.is_empty(), "nothing is sent during a hold");
        assert!(!p.on_mark(&marks[2]), "marks echoed by the clear do not count as heard");
        assert!((p.heard_fraction() - 0.1).abs() < 1e-6, "one chunk of ten heard");
        p.unpause();
        p.pump(t0 + Duration::from_millis(500), &mut out);
        let resumed: Vec<u8> =
            out.iter().filter_map(|s| if let Send::Audio { bytes, .. } = s { Some(bytes[0]) } else { None }).collect();
        assert_eq!(resumed, vec![1, 2, 3, 4], "the turn goes on from the first unplayed chunk");
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_replys_queue_gives_its_memory_back_once_sent() {
        let mut p = Playback::new();
        p.start_turn();
        p.push(&vec![0xff; 8000 * 5]); // five seconds arrive at once
        p.finish_input();
        assert!(p.pending.capacity() >= 40_000);
        let t0 = Instant::now();
        let mut out = Vec::new();
        for ms in (0..=5000).step_by(20) {
            p.pump(t0 + Duration::from_millis(ms), &mut out);
        }
        assert_eq!(audio(&out), 40_000);
        assert_eq!(p.pending.capacity(), 0, "all sent: nothing held for the next turn");
    }

    #[test]
    fn heard_text_keeps_the_played_words() {
        assert_eq!(heard_text("one two three four", 0.5), "one two");
        assert_eq!(heard_text("one two three four", 0.0), "");
        assert_eq!(heard_text("one two three four", 1.0), "one two three four");
    }
}
