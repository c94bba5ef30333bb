//! Local text-to-speech with CMU Flite, run as a subprocess. English only; it is the voice
//! of the simulated caller, because the local recogniser understands it far better than
//! espeak-ng. The process-to-μ-law pipeline is shared with `espeak`.

use tokio::process::Command;

use crate::domain::language::Language;
use crate::providers::tts::espeak::{on_path, spawn_wav_command, speakable_text};
use crate::providers::tts::{TextToSpeech, TtsAudio, TtsRequest};

const PROVIDER: &str = "flite";
const BINARY: &str = "flite";

/// The Flite voices compiled into Debian's `flite` package that suit a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FliteVoice {
    /// US male diphone voice, 8 kHz: already telephone rate.
    #[default]
    Kal,
    /// US female clustergen voice, 16 kHz.
    Slt,
}

impl FliteVoice {
    /// The name `flite -voice` takes.
    pub fn name(self) -> &'static str {
        match self {
            FliteVoice::Kal => "kal",
            FliteVoice::Slt => "slt",
        }
    }
}

/// Flite with a fixed voice.
#[derive(Debug, Clone, Default)]
pub struct FliteTts {
    voice: FliteVoice,
}

impl FliteTts {
    /// Flite speaking with `voice`.
    pub fn new(voice: FliteVoice) -> Self {
        Self { voice }
    }

    /// The voice in use.
    pub fn voice(&self) -> FliteVoice {
        self.voice
    }

    /// Whether `flite` is on the PATH.
    pub fn available() -> bool {
        on_path(BINARY)
    }
}

impl TextToSpeech for FliteTts {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    /// Flite has no Spanish voice: Spanish text is read by the English voice (badly, but a
    /// simulated Spanish caller still produces speech) rather than failing the call.
    fn synthesize(&self, request: TtsRequest) -> TtsAudio {
        if request.language == Language::Spanish {
            tracing::debug!("flite has no Spanish voice; reading Spanish text with an English one");
        }
        let mut command = Command::new(BINARY);
        // `-t` takes the next argument as text even when it starts with '-'. Flite writes the
        // whole WAV (with true sizes) once synthesis ends; /dev/stdout lets it go to the pipe.
        command.args(["-voice", self.voice.name(), "-o", "/dev/stdout", "-t"]).arg(speakable_text(&request.text));
        spawn_wav_command(PROVIDER, command, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::mulaw;

    async fn synthesize_all(tts: &FliteTts, text: &str) -> Vec<u8> {
        let mut audio = tts.synthesize(TtsRequest { text: text.into(), language: Language::English });
        let mut bytes = Vec::new();
        while let Some(chunk) = audio.recv().await {
            bytes.extend(chunk.expect("flite audio"));
        }
        bytes
    }

    #[tokio::test]
    async fn both_voices_produce_telephone_audio_of_plausible_length() {
        if !FliteTts::available() {
            eprintln!("skipped: flite is not installed");
            return;
        }
        for voice in [FliteVoice::Kal, FliteVoice::Slt] {
            let bytes = synthesize_all(&FliteTts::new(voice), "Hello").await;
            let seconds = bytes.len() as f64 / 8000.0;
            assert!((0.2..2.0).contains(&seconds), "{voice:?}: {seconds} s");
            let loud = bytes.iter().filter(|&&b| mulaw::decode(b).unsigned_abs() > 1000).count();
            assert!(loud > 400, "{voice:?}: only {loud} loud samples");
        }
    }

    #[tokio::test]
    async fn text_that_looks_like_an_option_is_spoken_not_parsed() {
        if !FliteTts::available() {
            eprintln!("skipped: flite is not installed");
            return;
        }
        let bytes = synthesize_all(&FliteTts::new(FliteVoice::Kal), "-voice slt").await;
        assert!(bytes.len() > 1600, "{} bytes", bytes.len());
    }

    #[tokio::test]
    async fn longer_text_takes_proportionally_longer() {
        if !FliteTts::available() {
            eprintln!("skipped: flite is not installed");
            return;
        }
        let tts = FliteTts::new(FliteVoice::Kal);
        let short = synthesize_all(&tts, "Yes").await.len();
        let long =
            synthesize_all(&tts, "Yes, I would like to book an appointment for next Tuesday morning.").await.len();
        assert!(long > 3 * short, "short {short}, long {long}");
    }
}
