//! Text-to-speech: text in, 8 kHz μ-law audio chunks out, streamed as they are made.

use tokio::sync::mpsc;

use crate::domain::language::Language;
use crate::providers::ProviderError;

pub mod espeak;
pub mod flite;

/// One thing to say.
#[derive(Debug, Clone)]
pub struct TtsRequest {
    pub text: String,
    pub language: Language,
}

/// Audio for one request: μ-law 8 kHz chunks in order, then the channel closes.
/// Dropping the receiver cancels the synthesis.
pub type TtsAudio = mpsc::Receiver<Result<Vec<u8>, ProviderError>>;

/// A text-to-speech engine. `synthesize` returns at once and streams audio as it is made.
pub trait TextToSpeech: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn synthesize(&self, request: TtsRequest) -> TtsAudio;
}
