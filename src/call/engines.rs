//! The engines a call talks with: a recogniser, a synthesizer and (optionally) a language
//! model, each with the local engine standing by and a circuit breaker shared by all calls.

use std::sync::Arc;
use std::time::Duration;

use crate::providers::breaker::CircuitBreaker;
use crate::providers::llm::LanguageModel;
use crate::providers::stt::SpeechToText;
use crate::providers::tts::StreamingTts;

/// Failures in a row before a provider is skipped, and for how long.
const BREAKER_THRESHOLD: u32 = 3;
const BREAKER_COOLDOWN: Duration = Duration::from_secs(30);

/// One breaker per cloud role.
#[derive(Debug)]
pub struct Breakers {
    pub stt: CircuitBreaker,
    pub llm: CircuitBreaker,
    pub tts: CircuitBreaker,
}

impl Default for Breakers {
    fn default() -> Self {
        Self {
            stt: CircuitBreaker::new("stt", BREAKER_THRESHOLD, BREAKER_COOLDOWN),
            llm: CircuitBreaker::new("llm", BREAKER_THRESHOLD, BREAKER_COOLDOWN),
            tts: CircuitBreaker::new("tts", BREAKER_THRESHOLD, BREAKER_COOLDOWN),
        }
    }
}

/// Which engine plays each role. `*_fallback` is the local engine when the primary is a
/// cloud one; `llm: None` means the local dialogue engine converses.
#[derive(Clone)]
pub struct Engines {
    pub stt: Arc<dyn SpeechToText>,
    pub stt_fallback: Option<Arc<dyn SpeechToText>>,
    pub tts: Arc<dyn StreamingTts>,
    pub tts_fallback: Option<Arc<dyn StreamingTts>>,
    pub llm: Option<Arc<dyn LanguageModel>>,
    pub breakers: Arc<Breakers>,
}

impl Engines {
    /// Local engines only.
    pub fn local(stt: Arc<dyn SpeechToText>, tts: Arc<dyn StreamingTts>) -> Self {
        Self { stt, stt_fallback: None, tts, tts_fallback: None, llm: None, breakers: Arc::default() }
    }

    /// The recogniser a new call should open: the primary unless its breaker is open.
    pub fn pick_stt(&self) -> (Arc<dyn SpeechToText>, bool) {
        match &self.stt_fallback {
            Some(local) if !self.breakers.stt.allow() => (local.clone(), true),
            _ => (self.stt.clone(), self.stt_fallback.is_none()),
        }
    }

    /// The synthesizer a new call should open.
    pub fn pick_tts(&self) -> (Arc<dyn StreamingTts>, bool) {
        match &self.tts_fallback {
            Some(local) if !self.breakers.tts.allow() => (local.clone(), true),
            _ => (self.tts.clone(), self.tts_fallback.is_none()),
        }
    }

    /// The language model for the next reply, unless there is none or its breaker is open.
    pub fn pick_llm(&self) -> Option<Arc<dyn LanguageModel>> {
        self.llm.clone().filter(|_| self.breakers.llm.allow())
    }
}
