//! A call's recording while the call lasts: the caller's audio placed by its stream
//! timestamp, the agent's by when it plays, summed into one 8 kHz track and encoded as the
//! call goes. A live call holds a mixing window of under a second or two and compressed
//! bytes, never the raw audio. Audio a barge-in cleared before it played is cut out.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::audio::mulaw;
use crate::audio::ogg_opus::{FRAME_SAMPLES, OggOpusError, OggOpusWriter, OpusSettings};

const SAMPLES_PER_MS: u64 = 8;
/// Mixing stays this far behind the present. Frames come over TCP, so in order: a late
/// one holds mixing back through `caller_end`, not through this margin.
const LAG: Duration = Duration::from_millis(100);
/// When the caller's frames stop coming (a stalled socket), mixing waits at most this long
/// for them before encoding silence in their place.
const MAX_LAG: Duration = Duration::from_millis(1500);
/// Audio is never placed further than this past the oldest unencoded sample: the agent's
/// audio is queued about 200 ms ahead of playback, so this only stops a bogus timestamp
/// from growing the window.
const MAX_WINDOW: Duration = Duration::from_millis(2500);
/// A caller timestamp this far ahead of the clock the earlier frames agreed on is not
/// believed: the frame is placed by its arrival instead.
const RESYNC: Duration = Duration::from_secs(2);
/// μ-law silence: decodes to 0.
const SILENCE: u8 = 0xFF;

fn samples(d: Duration) -> u64 {
    d.as_millis() as u64 * SAMPLES_PER_MS
}

/// What a finished call's recording is.
#[derive(Debug, Clone)]
pub struct FinishedRecording {
    /// An Ogg Opus stream.
    pub bytes: Vec<u8>,
    pub duration_ms: i64,
}

/// The recording of one live call. Positions are 8 kHz samples since `origin`.
pub struct Recorder {
    origin: Instant,
    /// Position of the first sample in the windows; everything before is encoded.
    base: u64,
    /// μ-law bytes from `base` on, one per sample; gaps are [`SILENCE`].
    caller: VecDeque<u8>,
    agent: VecDeque<u8>,
    /// Furthest caller sample placed so far.
    caller_end: u64,
    /// Our clock minus Twilio's stream clock, in samples, from the least-delayed frame.
    caller_offset: Option<i64>,
    writer: OggOpusWriter,
    pcm: [i16; FRAME_SAMPLES],
}

impl Recorder {
    /// Starts recording; `origin` is position zero (the start of the stream).
    pub fn new(origin: Instant, settings: OpusSettings) -> Result<Self, OggOpusError> {
        Ok(Self {
            origin,
            base: 0,
            // The usual window: the lag, plus the agent's lead of about 200 ms.
            caller: VecDeque::with_capacity(2048),
            agent: VecDeque::with_capacity(4096),
            caller_end: 0,
            caller_offset: None,
            writer: OggOpusWriter::new(settings, rand::random())?,
            pcm: [0; FRAME_SAMPLES],
        })
    }

    fn position(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_micros() as u64 * SAMPLES_PER_MS / 1000
    }

    /// The caller's audio: `timestamp_ms` is Twilio's milliseconds since the stream
    /// started; without one the frame is placed by its arrival.
    pub fn caller(&mut self, audio: &[u8], timestamp_ms: Option<u64>, now: Instant) {
        let arrival = self.position(now) as i64;
        let by_arrival = arrival - audio.len() as i64;
        let start = match timestamp_ms {
            Some(ts) => {
                // Clamped so that no timestamp can overflow the arithmetic.
                let stamped = ts.min(1 << 40) as i64 * SAMPLES_PER_MS as i64;
                let seen = arrival - stamped;
                match self.caller_offset {
                    None => {
                        self.caller_offset = Some(seen);
                        stamped + seen
                    }
                    Some(offset) if seen >= offset => stamped + offset,
                    Some(offset) if offset - seen <= samples(RESYNC) as i64 => {
                        // A frame that came quicker than any before: a better estimate.
                        self.caller_offset = Some(seen);
                        stamped + seen
                    }
                    Some(_) => by_arrival,
                }
            }
            None => by_arrival,
        };
        if let Some(end) = place(&mut self.caller, self.base, start, audio) {
            self.caller_end = self.caller_end.max(end);
        }
    }

    /// The agent's audio, starting to play at `plays_at`.
    pub fn agent(&mut self, audio: &[u8], plays_at: Instant) {
        let start = self.position(plays_at) as i64;
        place(&mut self.agent, self.base, start, audio);
    }

    /// Barge-in: the agent's audio from `now` on was cleared before it played.
    pub fn cut_agent(&mut self, now: Instant) {
        let keep = self.position(now).saturating_sub(self.base) as usize;
        self.agent.truncate(keep);
    }

    /// Encodes what can no longer change. Call it regularly (every tick).
    pub fn advance(&mut self, now: Instant) -> Result<(), OggOpusError> {
        let now = self.position(now);
        let settled = now.saturating_sub(samples(LAG)).min(self.caller_end);
        let upto = settled.max(now.saturating_sub(samples(MAX_LAG)));
        while self.base + FRAME_SAMPLES as u64 <= upto {
            self.mix(FRAME_SAMPLES)?;
        }
        Ok(())
    }

    /// Compressed bytes so far.
    pub fn compressed_len(&self) -> usize {
        self.writer.len()
    }

    /// Ends the recording at `now` (the hang-up): agent audio queued past it never played.
    pub fn finish(mut self, now: Instant) -> Result<FinishedRecording, OggOpusError> {
        self.cut_agent(now);
        // Whole milliseconds, so the stored duration is exact.
        let end = (self.position(now) / SAMPLES_PER_MS * SAMPLES_PER_MS).max(self.base);
        while self.base < end {
            let n = (end - self.base).min(FRAME_SAMPLES as u64) as usize;
            self.mix(n)?;
        }
        let duration_ms = (self.writer.samples() / SAMPLES_PER_MS) as i64;
        Ok(FinishedRecording { bytes: self.writer.finish()?, duration_ms })
    }

    /// Sums the next `n` samples of both legs (saturating) and hands them to the encoder.
    fn mix(&mut self, n: usize) -> Result<(), OggOpusError> {
        for sample in &mut self.pcm[..n] {
            let caller = self.caller.pop_front().unwrap_or(SILENCE);
            let agent = self.agent.pop_front().unwrap_or(SILENCE);
            *sample = mix_sample(caller, agent);
        }
        self.base += n as u64;
        self.writer.push(&self.pcm[..n])
    }
}

/// One mixed sample: both legs summed, saturating at full scale rather than wrapping.
#[inline]
fn mix_sample(caller: u8, agent: u8) -> i16 {
    mulaw::decode(caller).saturating_add(mulaw::decode(agent))
}

/// Writes `audio` into `window` (which starts at `base`) at position `start`: what falls
/// before `base` is already encoded and is dropped, as is what falls past the window's
/// limit. Returns the position after the last byte written.
fn place(window: &mut VecDeque<u8>, base: u64, start: i64, audio: &[u8]) -> Option<u64> {
    let skip = (base as i64 - start).max(0) as usize;
    let audio = audio.get(skip..)?;
    let offset = (start + skip as i64) as u64 - base;
    let room = (samples(MAX_WINDOW) as usize).saturating_sub(offset as usize);
    let audio = &audio[..audio.len().min(room)];
    if audio.is_empty() {
        return None;
    }
    let offset = offset as usize;
    if window.len() < offset + audio.len() {
        window.resize(offset + audio.len(), SILENCE);
    }
    for (slot, &byte) in window.range_mut(offset..offset + audio.len()).zip(audio) {
        *slot = byte;
    }
    Some(base + (offset + audio.len()) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::ogg_opus;
    use crate::call::playback::{Playback, Send};

    const MS: u64 = SAMPLES_PER_MS;

    /// `ms` of a loud 400 Hz tone, μ-law.
    fn tone(ms: u64) -> Vec<u8> {
        (0..ms * MS)
            .map(|i| mulaw::encode(((i as f32 * 400.0 * std::f32::consts::TAU / 8000.0).sin() * 8000.0) as i16))
            .collect()
    }

    /// `ms` of a 400 Hz tone at amplitude 20000: two of them in phase overflow i16.
    fn loud_tone(ms: u64) -> Vec<u8> {
        (0..ms * MS)
            .map(|i| mulaw::encode(((i as f32 * 400.0 * std::f32::consts::TAU / 8000.0).sin() * 20000.0) as i16))
            .collect()
    }

    fn at(origin: Instant, ms: u64) -> Instant {
        origin + Duration::from_millis(ms)
    }

    /// RMS of the decoded recording between two times.
    fn level(pcm: &[i16], from_ms: u64, to_ms: u64) -> f64 {
        let part = &pcm[(from_ms * MS) as usize..(to_ms * MS) as usize];
        (part.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / part.len() as f64).sqrt()
    }

    /// Feeds the caller's 20 ms frames (silence or `loud` ranges) for `total_ms`,
    /// advancing the recorder as the actor's tick would.
    fn feed_caller(rec: &mut Recorder, origin: Instant, total_ms: u64, loud: &[(u64, u64)], delay_ms: u64) {
        let speech = tone(20);
        let quiet = vec![SILENCE; 160];
        for ts in (0..total_ms).step_by(20) {
            let frame = if loud.iter().any(|&(a, b)| ts >= a && ts < b) { &speech } else { &quiet };
            let now = at(origin, ts + 20 + delay_ms);
            rec.caller(frame, Some(ts), now);
            rec.advance(now).unwrap();
        }
    }

    #[test]
    fn both_legs_land_where_they_were_spoken_and_played() {
        let origin = Instant::now();
        let mut rec = Recorder::new(origin, OpusSettings::default()).unwrap();
        // The agent plays 0.5–1.5 s; the caller speaks 2–3 s; frames arrive 30 ms late.
        let agent = tone(1000);
        for (i, chunk) in agent.chunks(320).enumerate() {
            rec.agent(chunk, at(origin, 500 + i as u64 * 40));
        }
        feed_caller(&mut rec, origin, 4000, &[(2000, 3000)], 30);
        let done = rec.finish(at(origin, 4000)).unwrap();
        assert_eq!(done.duration_ms, 4000);
        let decoded = ogg_opus::decode(&done.bytes).unwrap();
        assert_eq!(decoded.samples.len(), 4000 * MS as usize);
        let pcm = &decoded.samples;
        assert!(level(pcm, 0, 400) < 300.0, "quiet before the agent");
        assert!(level(pcm, 600, 1400) > 3000.0, "the agent");
        assert!(level(pcm, 1600, 1950) < 300.0, "quiet between");
        assert!(level(pcm, 2100, 2900) > 3000.0, "the caller");
        assert!(level(pcm, 3100, 4000) < 300.0, "quiet after");
    }

    #[test]
    fn overlapping_speech_is_summed_without_wrapping_around() {
        let loud = mulaw::encode(30000);
        let soft = mulaw::encode(1000);
        assert_eq!(mix_sample(loud, loud), i16::MAX, "saturated, not wrapped");
        assert_eq!(mix_sample(mulaw::encode(-30000), mulaw::encode(-30000)), i16::MIN);
        assert_eq!(mix_sample(soft, SILENCE), mulaw::decode(soft));
        assert_eq!(mix_sample(soft, soft), 2 * mulaw::decode(soft));
        // Both legs speaking at once: the recording carries their sum, clipped, not one leg.
        let origin = Instant::now();
        let mut rec = Recorder::new(origin, OpusSettings::default()).unwrap();
        let loud = loud_tone(1000);
        for (i, frame) in loud.chunks(160).enumerate() {
            let ms = i as u64 * 20;
            rec.agent(frame, at(origin, ms));
            rec.caller(frame, Some(ms), at(origin, ms + 20));
        }
        let done = rec.finish(at(origin, 1000)).unwrap();
        let decoded = ogg_opus::decode(&done.bytes).unwrap();
        let one_leg = 20000.0 / 2f64.sqrt();
        assert!(level(&decoded.samples, 200, 800) > one_leg * 1.3, "{}", level(&decoded.samples, 200, 800));
    }

    #[test]
    fn agent_audio_cleared_by_a_barge_in_is_not_recorded() {
        let origin = Instant::now();
        let mut rec = Recorder::new(origin, OpusSettings::default()).unwrap();
        // The real pacing: a 3 s turn queued, pumped 160 ms ahead every 20 ms.
        let mut playback = Playback::new();
        playback.start_turn();
        playback.push(&tone(3000));
        playback.finish_input();
        let mut sends = Vec::new();
        let quiet = vec![SILENCE; 160];
        for ms in (0..=2000).step_by(20) {
            let now = at(origin, ms);
            sends.clear();
            playback.pump(now, &mut sends);
            for s in &sends {
                if let Send::Audio { bytes, plays_at } = s {
                    rec.agent(bytes, *plays_at);
                }
            }
            if ms == 1000 {
                // The caller talks over the agent: Twilio's queue is cleared.
                playback.clear();
                rec.cut_agent(now);
            }
            rec.caller(&quiet, Some(ms), now);
            rec.advance(now).unwrap();
        }
        let done = rec.finish(at(origin, 2000)).unwrap();
        let pcm = ogg_opus::decode(&done.bytes).unwrap().samples;
        assert!(level(&pcm, 100, 950) > 3000.0, "what played before the barge-in");
        // 160–200 ms had been sent ahead of playback; none of it may appear.
        assert!(level(&pcm, 1030, 2000) < 300.0, "cleared audio leaked: {}", level(&pcm, 1030, 2000));
    }

    #[test]
    fn a_hang_up_drops_agent_audio_queued_past_it() {
        let origin = Instant::now();
        let mut rec = Recorder::new(origin, OpusSettings::default()).unwrap();
        rec.agent(&tone(400), at(origin, 800));
        let done = rec.finish(at(origin, 1000)).unwrap();
        assert_eq!(done.duration_ms, 1000);
        let pcm = ogg_opus::decode(&done.bytes).unwrap().samples;
        assert_eq!(pcm.len(), 8000);
        assert!(level(&pcm, 850, 990) > 3000.0);
    }

    #[test]
    fn the_mixing_window_stays_small_and_bogus_timestamps_cannot_grow_it() {
        let origin = Instant::now();
        let mut rec = Recorder::new(origin, OpusSettings::default()).unwrap();
        feed_caller(&mut rec, origin, 60_000, &[(10_000, 20_000)], 10);
        assert!(rec.caller.len() <= samples(LAG) as usize + 400, "caller window {}", rec.caller.len());
        // A frame claiming to come from an hour later, then one from long ago.
        let now = at(origin, 60_010);
        rec.caller(&tone(20), Some(3_600_000), now);
        rec.caller(&tone(20), Some(0), now);
        rec.agent(&tone(20), at(origin, 3_600_000));
        rec.advance(now).unwrap();
        assert!(rec.caller.len() <= samples(MAX_WINDOW) as usize);
        assert!(rec.agent.len() <= samples(MAX_WINDOW) as usize);
        assert!(rec.caller.capacity() <= 32 * 1024 && rec.agent.capacity() <= 32 * 1024);
        let done = rec.finish(at(origin, 60_020)).unwrap();
        assert_eq!(done.duration_ms, 60_020);
    }

    #[test]
    fn caller_frames_delayed_by_a_stall_still_land_in_place() {
        let origin = Instant::now();
        let mut rec = Recorder::new(origin, OpusSettings::default()).unwrap();
        feed_caller(&mut rec, origin, 1000, &[], 5);
        // The actor was busy for a second: frames for 1.0–2.0 s arrive together at 2.0 s.
        let speech = tone(20);
        rec.advance(at(origin, 2000)).unwrap();
        for ts in (1000..2000).step_by(20) {
            rec.caller(&speech, Some(ts), at(origin, 2005));
        }
        for ts in (2000..3000).step_by(20) {
            let now = at(origin, ts + 25);
            rec.caller(&[SILENCE; 160], Some(ts), now);
            rec.advance(now).unwrap();
        }
        let pcm = ogg_opus::decode(&rec.finish(at(origin, 3000)).unwrap().bytes).unwrap().samples;
        assert!(level(&pcm, 1050, 1950) > 3000.0, "the delayed speech");
        assert!(level(&pcm, 2100, 2900) < 300.0);
    }
}
