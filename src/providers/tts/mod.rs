//! Text-to-speech: text in, 8 kHz μ-law audio chunks out, streamed as they are made.

use tokio::sync::mpsc;

use crate::domain::language::Language;
use crate::providers::ProviderError;

pub mod elevenlabs;
pub mod espeak;
pub mod flite;
pub mod sentences;

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

/// A piece of an agent turn's text for a streaming engine.
#[derive(Debug, Clone, PartialEq)]
pub enum TtsInput {
    /// More text (a sentence or clause), spoken after what came before.
    Text(String),
    /// The turn's text is complete: synthesize whatever is buffered.
    Flush,
}

/// One agent turn being synthesized: push text into `text`, read μ-law 8 kHz audio from
/// `audio` (the channel closes after the flushed text is spoken). Dropping both ends
/// abandons the turn (barge-in): the engine stops and sends nothing more for it.
pub struct TtsTurn {
    pub text: mpsc::Sender<TtsInput>,
    pub audio: TtsAudio,
}

/// A call's synthesis session (a cloud engine keeps one connection per call and one
/// context per turn).
pub trait TtsCall: Send + Sync {
    fn start_turn(&mut self) -> TtsTurn;
}

/// An engine that synthesizes text as it streams in, turn by turn.
pub trait StreamingTts: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn open_call(&self, language: Language) -> Box<dyn TtsCall>;
}
