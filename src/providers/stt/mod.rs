//! Streaming speech-to-text: the caller's audio goes in, speech events come out.

use tokio::sync::mpsc;

use crate::domain::language::Language;
use crate::providers::ProviderError;

pub mod booking_trigrams;
pub mod deepgram;
mod model_cache;
pub mod sphinx;
mod sphinx_sys;

/// What the call actor feeds a recogniser.
#[derive(Debug)]
pub enum SttInput {
    /// Telephone audio exactly as Twilio sends it: 8 kHz G.711 μ-law bytes.
    Audio(Vec<u8>),
    /// Flush: finish the current utterance now and report what was heard.
    Finalize,
}

/// What a recogniser reports.
#[derive(Debug, Clone, PartialEq)]
pub enum SttEvent {
    /// The caller started speaking (used for barge-in).
    SpeechStarted,
    /// A provisional transcript of the utterance so far; may change.
    Interim { text: String },
    /// A settled transcript segment. `speech_final` marks the end of the caller's turn.
    Final { text: String, speech_final: bool },
    /// The recogniser failed; the stream is over.
    Error(ProviderError),
}

/// One open recognition stream. Dropping `input` ends the stream; `events` then closes.
pub struct SttStream {
    pub input: mpsc::Sender<SttInput>,
    pub events: mpsc::Receiver<SttEvent>,
}

/// A speech-to-text engine. `open` must return at once: the work runs elsewhere
/// (a task for a cloud client, a dedicated thread for a local engine).
pub trait SpeechToText: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn open(&self, language: Language) -> Result<SttStream, ProviderError>;
}
