//! The caller's audio, routed by the socket reader itself: every frame goes straight to
//! the recogniser, and only what the call's actor must see (a loud frame, which may be
//! the caller taking the floor; every frame while the call is recorded) wakes the actor.
//! Fifty frames a second per call, most of them quiet, would otherwise wake the actor
//! fifty times a second for nothing.
//!
//! Long quiet stretches (the caller listening to the agent) reach the recogniser in
//! 100 ms pieces instead of 20 ms ones: a fifth of the messages and wake-ups. The first
//! half second of quiet after the caller's voice still goes frame by frame, so the
//! recogniser hears the end of speech (its endpointing) at once, and a loud frame sends
//! whatever quiet audio waits along with it, so the start of speech is never held back.
//! The caller's voice goes in 40 ms pieces (two frames): half the sends, and no frame
//! waits more than 20 ms. Whether the agent should stop for the caller is decided on each
//! loud frame by the actor, which gets it at once; only the recogniser's copy waits.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use crate::audio::mulaw;
use crate::call::io::CallInput;
use crate::providers::stt::SttInput;

/// The mean level (μ-law decoded, absolute) at and above which a frame is the caller's
/// voice rather than line noise.
pub const CALLER_VOICE_LEVEL: u32 = mulaw::VOICE_LEVEL;

/// Quiet audio after the caller's voice that still goes frame by frame (bytes, 8 kHz μ-law).
const PROMPT_QUIET_BYTES: usize = 500 * 8;
/// Past that, quiet audio goes in pieces of this many bytes.
const QUIET_PIECE_BYTES: usize = 100 * 8;
/// The caller's voice goes in pieces of this many bytes.
const VOICE_PIECE_BYTES: usize = 40 * 8;

/// Where the recogniser's audio goes, and what waits to go there.
#[derive(Debug, Default)]
struct Route {
    stt: Option<mpsc::Sender<SttInput>>,
    /// Quiet audio not sent yet.
    waiting: Vec<u8>,
    /// Quiet audio since the last loud frame.
    quiet_bytes: usize,
}

/// One call's audio route, shared by its socket reader and its actor.
#[derive(Debug, Default)]
pub struct AudioTap {
    route: Mutex<Route>,
    /// The actor wants every frame (the call is being recorded).
    every_frame: AtomicBool,
}

impl AudioTap {
    /// The recogniser that hears the caller from now on (`None`: none).
    pub fn set_recogniser(&self, input: Option<mpsc::Sender<SttInput>>) {
        let mut route = self.route.lock().unwrap_or_else(|e| e.into_inner());
        route.stt = input;
        route.waiting.clear();
    }

    /// Whether the actor is handed every frame (while recording) or only loud ones.
    pub fn hand_every_frame(&self, every: bool) {
        self.every_frame.store(every, Ordering::Relaxed);
    }

    /// Sends the frame to the recogniser (dropped and counted if it is behind) and returns
    /// it when the actor must see it too.
    pub fn route(&self, bytes: Vec<u8>, timestamp_ms: Option<u64>) -> Option<CallInput> {
        let loud = mulaw::mean_level(&bytes) >= CALLER_VOICE_LEVEL;
        let for_actor = loud || self.every_frame.load(Ordering::Relaxed);
        let mut guard = self.route.lock().unwrap_or_else(|e| e.into_inner());
        let route = &mut *guard;
        let Some(stt) = route.stt.as_ref() else {
            return for_actor.then_some(CallInput::Audio { bytes, timestamp_ms, loud: Some(loud) });
        };
        let to_actor = for_actor.then(|| bytes.clone());
        route.quiet_bytes = if loud { 0 } else { route.quiet_bytes.saturating_add(bytes.len()) };
        let piece_bytes = if loud {
            VOICE_PIECE_BYTES
        } else if route.quiet_bytes > PROMPT_QUIET_BYTES {
            QUIET_PIECE_BYTES
        } else {
            0
        };
        let piece = if route.waiting.is_empty() {
            bytes
        } else {
            route.waiting.extend_from_slice(&bytes);
            std::mem::take(&mut route.waiting)
        };
        if piece.len() < piece_bytes {
            route.waiting = piece;
        } else if let Err(mpsc::error::TrySendError::Full(_)) = stt.try_send(SttInput::Audio(piece)) {
            metrics::counter!("ringlypro_stt_frames_dropped_total").increment(1);
        }
        to_actor.map(|bytes| CallInput::Audio { bytes, timestamp_ms, loud: Some(loud) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: u8 = 0xff;

    fn loud() -> Vec<u8> {
        (0..160).map(|i| mulaw::encode(if i % 2 == 0 { 8000 } else { -8000 })).collect()
    }

    #[test]
    fn quiet_frames_reach_only_the_recogniser_and_loud_ones_both() {
        let tap = AudioTap::default();
        let (tx, mut rx) = mpsc::channel(8);
        tap.set_recogniser(Some(tx));
        assert_eq!(tap.route(vec![QUIET; 160], Some(20)), None);
        assert!(matches!(rx.try_recv(), Ok(SttInput::Audio(a)) if a == vec![QUIET; 160]));
        let handed = tap.route(loud(), Some(40));
        assert_eq!(handed, Some(CallInput::Audio { bytes: loud(), timestamp_ms: Some(40), loud: Some(true) }));
        assert!(rx.try_recv().is_err(), "the recogniser's copy of the voice waits for a second frame");
        assert!(tap.route(loud(), Some(60)).is_some(), "the actor gets every loud frame at once");
        assert!(matches!(rx.try_recv(), Ok(SttInput::Audio(a)) if a == [loud(), loud()].concat()));
    }

    #[test]
    fn a_recorded_call_sees_every_frame_and_without_a_recogniser_nothing_is_lost_to_it() {
        let tap = AudioTap::default();
        tap.hand_every_frame(true);
        assert_eq!(
            tap.route(vec![QUIET; 160], None),
            Some(CallInput::Audio { bytes: vec![QUIET; 160], timestamp_ms: None, loud: Some(false) }),
            "a recorded call's quiet frame comes measured, so the actor does not measure it again"
        );
        tap.hand_every_frame(false);
        assert_eq!(tap.route(vec![QUIET; 160], None), None);
        assert!(tap.route(loud(), None).is_some(), "the floor still hears the caller without a recogniser");
    }

    #[test]
    fn long_quiet_goes_in_100_ms_pieces_and_the_callers_voice_brings_it_along_at_once() {
        let tap = AudioTap::default();
        let (tx, mut rx) = mpsc::channel(64);
        tap.set_recogniser(Some(tx));
        let mut sent = || {
            let mut lens = Vec::new();
            while let Ok(SttInput::Audio(a)) = rx.try_recv() {
                lens.push(a.len());
            }
            lens
        };
        // The voice goes two frames at a time.
        for _ in 0..5 {
            tap.route(loud(), None);
        }
        assert_eq!(sent(), vec![320, 320], "the fifth frame waits for the next");
        // The first quiet frame after the voice takes the waiting one along, and half a
        // second of quiet after the voice goes frame by frame, for the endpointing.
        for _ in 0..25 {
            tap.route(vec![QUIET; 160], None);
        }
        let mut after_voice = vec![320];
        after_voice.extend([160; 24]);
        assert_eq!(sent(), after_voice);
        // Then 100 ms pieces.
        for _ in 0..12 {
            tap.route(vec![QUIET; 160], None);
        }
        assert_eq!(sent(), vec![800, 800]);
        // Two quiet frames wait; the caller's voice takes them along at once.
        tap.route(loud(), None);
        assert_eq!(sent(), vec![480]);
        tap.route(vec![QUIET; 160], None);
        assert_eq!(sent(), vec![160], "quiet right after the voice goes at once again");
    }

    #[test]
    fn a_recogniser_that_is_behind_drops_frames_instead_of_holding_the_reader() {
        let tap = AudioTap::default();
        let (tx, _rx) = mpsc::channel(1);
        tap.set_recogniser(Some(tx));
        for _ in 0..5 {
            assert_eq!(tap.route(vec![QUIET; 160], None), None);
        }
    }
}
