//! The caller's audio, routed by the socket reader itself: every frame goes straight to
//! the recogniser, and only what the call's actor must see (a loud frame, which may be
//! the caller taking the floor; every frame while the call is recorded) wakes the actor.
//! Fifty frames a second per call, most of them quiet, would otherwise wake the actor
//! fifty times a second for nothing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use crate::audio::mulaw;
use crate::call::io::CallInput;
use crate::providers::stt::SttInput;

/// The mean level (μ-law decoded, absolute) at and above which a frame is the caller's
/// voice rather than line noise.
pub const CALLER_VOICE_LEVEL: u32 = 400;

/// One call's audio route, shared by its socket reader and its actor.
#[derive(Debug, Default)]
pub struct AudioTap {
    /// The recogniser's input while one is open.
    stt: Mutex<Option<mpsc::Sender<SttInput>>>,
    /// The actor wants every frame (the call is being recorded).
    every_frame: AtomicBool,
}

impl AudioTap {
    /// The recogniser that hears the caller from now on (`None`: none).
    pub fn set_recogniser(&self, input: Option<mpsc::Sender<SttInput>>) {
        *self.stt.lock().unwrap_or_else(|e| e.into_inner()) = input;
    }

    /// Whether the actor is handed every frame (while recording) or only loud ones.
    pub fn hand_every_frame(&self, every: bool) {
        self.every_frame.store(every, Ordering::Relaxed);
    }

    /// Sends the frame to the recogniser (dropped and counted if it is behind) and returns
    /// it when the actor must see it too.
    pub fn route(&self, bytes: Vec<u8>, timestamp_ms: Option<u64>) -> Option<CallInput> {
        let for_actor = self.every_frame.load(Ordering::Relaxed) || mulaw::mean_level(&bytes) >= CALLER_VOICE_LEVEL;
        let guard = self.stt.lock().unwrap_or_else(|e| e.into_inner());
        let Some(stt) = guard.as_ref() else {
            return for_actor.then_some(CallInput::Audio { bytes, timestamp_ms });
        };
        let (to_stt, to_actor) = if for_actor { (bytes.clone(), Some(bytes)) } else { (bytes, None) };
        if let Err(mpsc::error::TrySendError::Full(_)) = stt.try_send(SttInput::Audio(to_stt)) {
            metrics::counter!("ringlypro_stt_frames_dropped_total").increment(1);
        }
        to_actor.map(|bytes| CallInput::Audio { bytes, timestamp_ms })
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
        assert_eq!(handed, Some(CallInput::Audio { bytes: loud(), timestamp_ms: Some(40) }));
        assert!(matches!(rx.try_recv(), Ok(SttInput::Audio(a)) if a == loud()));
    }

    #[test]
    fn a_recorded_call_sees_every_frame_and_without_a_recogniser_nothing_is_lost_to_it() {
        let tap = AudioTap::default();
        tap.hand_every_frame(true);
        assert!(tap.route(vec![QUIET; 160], None).is_some());
        tap.hand_every_frame(false);
        assert_eq!(tap.route(vec![QUIET; 160], None), None);
        assert!(tap.route(loud(), None).is_some(), "the floor still hears the caller without a recogniser");
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
