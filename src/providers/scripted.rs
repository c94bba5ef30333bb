//! Scripted engines for the call's own tests: a recogniser whose events the test sends, a
//! language model that plays back scripted replies with scripted delays, and a synthesizer
//! that turns each character into a fixed amount of audio. In process, on tokio's clock, so
//! a test of barge-in or a fallback runs in milliseconds with no socket.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::domain::language::Language;
use crate::providers::ProviderError;
use crate::providers::llm::{ChatRequest, LanguageModel, LlmEvent};
use crate::providers::stt::{SpeechToText, SttEvent, SttInput, SttStream};
use crate::providers::tts::{StreamingTts, TtsCall, TtsInput, TtsTurn};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A recogniser the test speaks through: each opened stream hands the test its event sender.
pub struct ScriptedStt {
    name: &'static str,
    fail_to_open: bool,
    opened: mpsc::UnboundedSender<ScriptedSttStream>,
}

/// The test's end of one recognition stream.
pub struct ScriptedSttStream {
    pub language: Language,
    pub events: mpsc::Sender<SttEvent>,
    pub audio: mpsc::Receiver<SttInput>,
}

impl ScriptedStt {
    /// The recogniser and where its streams arrive as the call opens them.
    pub fn new(name: &'static str) -> (Self, mpsc::UnboundedReceiver<ScriptedSttStream>) {
        let (opened, streams) = mpsc::unbounded_channel();
        (Self { name, fail_to_open: false, opened }, streams)
    }

    /// A recogniser that cannot be opened at all.
    pub fn unavailable(name: &'static str) -> Self {
        let (opened, _) = mpsc::unbounded_channel();
        Self { name, fail_to_open: true, opened }
    }
}

impl SpeechToText for ScriptedStt {
    fn name(&self) -> &'static str {
        self.name
    }

    fn open(&self, language: Language) -> Result<SttStream, ProviderError> {
        if self.fail_to_open {
            return Err(ProviderError::retryable(self.name, "connection refused"));
        }
        let (input, audio) = mpsc::channel(64);
        let (events_tx, events) = mpsc::channel(64);
        let _ = self.opened.send(ScriptedSttStream { language, events: events_tx, audio });
        Ok(SttStream { input, events })
    }
}

/// One scripted reply: each event after its delay from the one before.
pub type ScriptedReply = Vec<(Duration, LlmEvent)>;

/// A language model that answers each request with the next scripted reply (an error once
/// the script runs out), and keeps every request it was sent.
#[derive(Default)]
pub struct ScriptedLlm {
    replies: Mutex<VecDeque<ScriptedReply>>,
    requests: Mutex<Vec<ChatRequest>>,
}

impl ScriptedLlm {
    pub fn new(replies: impl IntoIterator<Item = ScriptedReply>) -> Self {
        Self { replies: Mutex::new(replies.into_iter().collect()), requests: Mutex::default() }
    }

    /// A reply that says `text` in pieces of a few words, the first after `first_token`.
    pub fn says(text: &str, first_token: Duration) -> ScriptedReply {
        let words: Vec<&str> = text.split_inclusive(' ').collect();
        let mut reply: ScriptedReply = words
            .chunks(3)
            .enumerate()
            .map(|(i, piece)| {
                let delay = if i == 0 { first_token } else { Duration::from_millis(25) };
                (delay, LlmEvent::Delta(piece.concat()))
            })
            .collect();
        reply.push((Duration::from_millis(5), LlmEvent::Done { finish_reason: "stop".into() }));
        reply
    }

    /// A reply that fails after `after`.
    pub fn fails(after: Duration) -> ScriptedReply {
        vec![(after, LlmEvent::Error(ProviderError::retryable("scripted-llm", "server error")))]
    }

    pub fn requests(&self) -> Vec<ChatRequest> {
        lock(&self.requests).clone()
    }
}

impl LanguageModel for ScriptedLlm {
    fn name(&self) -> &'static str {
        "scripted-llm"
    }

    fn stream(&self, request: ChatRequest) -> mpsc::Receiver<LlmEvent> {
        lock(&self.requests).push(request);
        let reply = lock(&self.replies).pop_front().unwrap_or_else(|| Self::fails(Duration::ZERO));
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            for (delay, event) in reply {
                tokio::time::sleep(delay).await;
                if tx.send(event).await.is_err() {
                    return; // the call dropped the reply (barge-in, early start thrown away)
                }
            }
        });
        rx
    }
}

/// A synthesizer that makes `bytes_per_char` bytes of μ-law audio per character of text,
/// after `first_byte`; or one that fails every turn. It keeps the text of every turn.
pub struct ScriptedTts {
    name: &'static str,
    first_byte: Duration,
    bytes_per_char: usize,
    fails: bool,
    turns: Arc<Mutex<Vec<String>>>,
}

impl ScriptedTts {
    pub fn new(name: &'static str, first_byte: Duration, bytes_per_char: usize) -> Self {
        Self { name, first_byte, bytes_per_char, fails: false, turns: Arc::default() }
    }

    pub fn failing(name: &'static str) -> Self {
        Self { fails: true, ..Self::new(name, Duration::ZERO, 0) }
    }

    /// The text of each turn synthesized so far.
    pub fn turns(&self) -> Vec<String> {
        lock(&self.turns).clone()
    }
}

struct ScriptedTtsCall {
    name: &'static str,
    first_byte: Duration,
    bytes_per_char: usize,
    fails: bool,
    turns: Arc<Mutex<Vec<String>>>,
}

impl StreamingTts for ScriptedTts {
    fn name(&self) -> &'static str {
        self.name
    }

    fn open_call(&self, _language: Language) -> Box<dyn TtsCall> {
        Box::new(ScriptedTtsCall {
            name: self.name,
            first_byte: self.first_byte,
            bytes_per_char: self.bytes_per_char,
            fails: self.fails,
            turns: self.turns.clone(),
        })
    }
}

impl TtsCall for ScriptedTtsCall {
    fn start_turn(&mut self) -> TtsTurn {
        let (text_tx, mut text_rx) = mpsc::channel(32);
        let (audio_tx, audio_rx) = mpsc::channel(64);
        let (name, first_byte, bytes_per_char, fails) = (self.name, self.first_byte, self.bytes_per_char, self.fails);
        let turns = self.turns.clone();
        let index = {
            let mut turns = lock(&turns);
            turns.push(String::new());
            turns.len() - 1
        };
        tokio::spawn(async move {
            let mut first = true;
            while let Some(input) = text_rx.recv().await {
                let text = match input {
                    TtsInput::Text(text) => text,
                    TtsInput::Flush => return, // closing the audio ends the turn
                };
                lock(&turns)[index].push_str(&text);
                if fails {
                    let _ = audio_tx.send(Err(ProviderError::retryable(name, "synthesis failed"))).await;
                    return;
                }
                if first {
                    tokio::time::sleep(first_byte).await;
                    first = false;
                }
                let audio = vec![0xffu8; text.chars().count() * bytes_per_char];
                for chunk in audio.chunks(800) {
                    if audio_tx.send(Ok(chunk.to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        });
        TtsTurn { text: text_tx, audio: audio_rx }
    }
}
