//! Local speech-to-text with PocketSphinx (English), one dedicated OS thread per stream so
//! decoding never runs on a tokio worker. Owns endpointing (voice activity → Final) and the
//! telephone-band tuning; the FFI lives in `sphinx_sys`, the booking language model in
//! `booking_trigrams`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;

use super::booking_trigrams::{self, CMU_DICT};
use super::model_cache::{cache_dir, content_key, write_atomically};
use super::sphinx_sys::Decoder;
use super::{SpeechToText, SttEvent, SttInput, SttStream};
use crate::audio::mulaw;
use crate::audio::resample::Resampler;
use crate::domain::language::Language;
use crate::providers::ProviderError;

const PROVIDER: &str = "sphinx";

/// Debian's pocketsphinx-en-us acoustic model (16 kHz, wideband).
pub const DEBIAN_MODEL_DIR: &str = "/usr/share/pocketsphinx/model/en-us/en-us";
/// Debian's generic English trigram model: large vocabulary, slow to load, poor on calls.
pub const DEBIAN_GENERIC_LM: &str = "/usr/share/pocketsphinx/model/en-us/en-us.lm.bin";

/// The acoustic model's rate: telephone audio is upsampled to it.
const DECODER_HZ: u32 = 16000;
/// Audio is fed in 20 ms slices so voice-activity changes are seen within 20 ms.
const SLICE: usize = DECODER_HZ as usize / 50;
/// Partial hypotheses are computed at most once per this much speech.
const INTERIM_EVERY: usize = DECODER_HZ as usize / 5;
/// Continuous "speech" longer than this (a radio, a noisy line) is cut into utterances so
/// that the decoder's memory and the transcript stay bounded.
const MAX_UTTERANCE: usize = DECODER_HZ as usize * 20;
/// Queued input chunks (20 ms each) and events before senders wait.
const INPUT_QUEUE: usize = 256;
const EVENT_QUEUE: usize = 64;

/// The model's own cepstral-mean prior (feat.params) describes wideband microphone audio.
/// Telephone audio has no energy above 4 kHz, which moves the mean a long way, and a wrong
/// prior wrecks the first utterance of every call (the decoder adapts only after it). This
/// prior is the mean measured on band-limited (8 kHz μ-law, upsampled) speech.
const TELEPHONE_CMN_PRIOR: &str = "48.4,27.9,-32.0,45.2,-21.7,0.7,13.2,-28.9,19.4,-10.9,2.8,11.2,-13.4";

/// Words that, alone, are hesitation rather than an answer; such a Final is not reported.
const HESITATIONS: &[&str] = &["um", "uh", "hmm", "hm", "mm"];

/// Which language model the decoder searches with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LanguageModel {
    /// The generated booking-domain trigram model (see [`booking_trigrams`]), cached on disk.
    Booking,
    /// Any PocketSphinx-readable model (ARPA or binary) with its dictionary.
    Files { lm: PathBuf, dict: PathBuf },
}

/// Where the models are and how eagerly to end an utterance.
#[derive(Debug, Clone)]
pub struct SphinxConfig {
    /// Acoustic model directory (`-hmm`).
    pub model_dir: PathBuf,
    /// Full CMU dictionary, the source of the booking model's pronunciations.
    pub cmu_dict: PathBuf,
    pub language_model: LanguageModel,
    /// Trailing silence after which an utterance is final. Shorter answers faster but
    /// splits people who pause mid-sentence.
    pub endpoint_silence: Duration,
    /// Loaded decoders kept ready between calls (0 to load one per call).
    pub spare_decoders: usize,
    /// Extra PocketSphinx options (`("-lw", "8")`), replacing ours where names clash.
    pub decoder_options: Vec<(String, String)>,
}

impl Default for SphinxConfig {
    /// Debian's model paths and the booking language model.
    fn default() -> Self {
        Self {
            model_dir: PathBuf::from(DEBIAN_MODEL_DIR),
            cmu_dict: PathBuf::from(CMU_DICT),
            language_model: LanguageModel::Booking,
            endpoint_silence: Duration::from_millis(300),
            spare_decoders: 2,
            decoder_options: Vec::new(),
        }
    }
}

impl SphinxConfig {
    /// Debian's generic English language model instead of the booking one (for comparison).
    pub fn generic_english() -> Self {
        Self {
            language_model: LanguageModel::Files { lm: DEBIAN_GENERIC_LM.into(), dict: CMU_DICT.into() },
            ..Self::default()
        }
    }
}

/// PocketSphinx as a [`SpeechToText`]: English only.
///
/// Building one loads a decoder to check the configuration, generating the booking language
/// model first if it is not cached yet: call [`SphinxStt::new`] at startup, off the async
/// runtime. Loading takes ~50 ms with the booking model (~400 ms with the generic one), so
/// a few loaded decoders are kept as spares and handed to new calls; a call that finds none
/// loads its own on its thread while its audio queues. A reused decoder starts with the
/// cepstral mean of its previous call: still a telephone channel, so closer than any prior.
///
/// Events: `SpeechStarted` when voice activity begins, `Interim` when the partial text
/// changes (checked once per 200 ms of speech), `Final { speech_final: true }` after
/// [`SphinxConfig::endpoint_silence`] of silence or on `SttInput::Finalize`. Empty or
/// hesitation-only utterances ("um") produce no Final.
pub struct SphinxStt {
    args: Arc<Vec<(String, String)>>,
    spares: Arc<Mutex<Vec<Decoder>>>,
    max_spares: usize,
    init_time: Duration,
}

impl SphinxStt {
    /// Prepares the models (blocking: seconds the very first time, ~50 ms after).
    pub fn new(config: SphinxConfig) -> Result<Self, ProviderError> {
        let args = decoder_args(&config).map_err(|e| ProviderError::fatal(PROVIDER, format!("{e:#}")))?;
        let started = Instant::now();
        let first = new_decoder(&args)?;
        let init_time = started.elapsed();
        tracing::info!(init_ms = init_time.as_millis() as u64, "pocketsphinx decoder loaded");
        let max_spares = config.spare_decoders;
        let mut spares = Vec::with_capacity(max_spares);
        if max_spares > 0 {
            spares.push(first);
        }
        for _ in 1..max_spares {
            spares.push(new_decoder(&args)?);
        }
        Ok(Self { args: Arc::new(args), spares: Arc::new(Mutex::new(spares)), max_spares, init_time })
    }

    /// Whether Debian's acoustic model and dictionary are installed.
    pub fn available() -> bool {
        Path::new(DEBIAN_MODEL_DIR).join("mdef").is_file() && Path::new(CMU_DICT).is_file()
    }

    /// How long loading one decoder took.
    pub fn decoder_init_time(&self) -> Duration {
        self.init_time
    }
}

impl SpeechToText for SphinxStt {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    /// Spanish is refused: no Spanish acoustic model is packaged for PocketSphinx in Debian,
    /// and English models on Spanish speech produce confident nonsense.
    fn open(&self, language: Language) -> Result<SttStream, ProviderError> {
        if language != Language::English {
            return Err(ProviderError::fatal(PROVIDER, "only English is available (no Spanish model installed)"));
        }
        let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let spare = lock(&self.spares).pop();
        let args = Arc::clone(&self.args);
        let spares = Arc::clone(&self.spares);
        let max_spares = self.max_spares;
        std::thread::Builder::new()
            .name("sphinx-stt".into())
            .spawn(move || {
                let decoder = match spare {
                    Some(d) => d,
                    None => match new_decoder(&args) {
                        Ok(d) => d,
                        Err(e) => {
                            let _ = events_tx.blocking_send(SttEvent::Error(e));
                            return;
                        }
                    },
                };
                let mut stream = match Stream::new(decoder, events_tx.clone()) {
                    Ok(stream) => stream,
                    Err(e) => {
                        let _ = events_tx.blocking_send(SttEvent::Error(e));
                        return;
                    }
                };
                drop(events_tx);
                let healthy = stream.run(input_rx);
                if healthy {
                    let mut spares = lock(&spares);
                    if spares.len() < max_spares {
                        spares.push(stream.into_decoder());
                    }
                }
            })
            .map_err(|e| ProviderError::retryable(PROVIDER, format!("cannot start a recognition thread: {e}")))?;
        Ok(SttStream { input: input_tx, events: events_rx })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere cannot leave a Vec of decoders inconsistent.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn new_decoder(args: &[(String, String)]) -> Result<Decoder, ProviderError> {
    let pairs: Vec<(&str, &str)> = args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Decoder::new(&pairs).map_err(|e| ProviderError::fatal(PROVIDER, e.to_string()))
}

/// PocketSphinx arguments for `config`, writing the generated files it needs.
fn decoder_args(config: &SphinxConfig) -> anyhow::Result<Vec<(String, String)>> {
    let (lm_path, dict_path) = match &config.language_model {
        LanguageModel::Booking => {
            let booking = booking_trigrams::cached_booking_lm(&config.cmu_dict)?;
            (booking.arpa, booking.dict)
        }
        LanguageModel::Files { lm, dict } => (lm.clone(), dict.clone()),
    };
    let featparams = telephone_feat_params(&config.model_dir)?;
    // VAD frames are 10 ms.
    let postspeech = (config.endpoint_silence.as_millis() / 10).clamp(5, 200);
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let mut args: Vec<(String, String)> = vec![
        ("-hmm".into(), path(&config.model_dir)),
        ("-featparams".into(), path(&featparams)),
        ("-lm".into(), path(&lm_path)),
        ("-dict".into(), path(&dict_path)),
        ("-samprate".into(), DECODER_HZ.to_string()),
        ("-vad_postspeech".into(), postspeech.to_string()),
        // The second (flat-lexicon) pass runs inside ps_end_utt, on the endpoint's critical
        // path: measured at ~70 ms per utterance for ~1.5 points of WER on the bench.
        ("-fwdflat".into(), "no".into()),
    ];
    // PocketSphinx rejects a repeated option, so extras replace rather than append.
    for (key, value) in &config.decoder_options {
        match args.iter_mut().find(|(k, _)| k == key) {
            Some(existing) => existing.1.clone_from(value),
            None => args.push((key.clone(), value.clone())),
        }
    }
    Ok(args)
}

/// The model's feat.params with the telephone cepstral prior, written beside the cached
/// language model (PocketSphinx lets feat.params override `-cmninit` on the command line).
fn telephone_feat_params(model_dir: &Path) -> anyhow::Result<PathBuf> {
    let source = model_dir.join("feat.params");
    let original = std::fs::read_to_string(&source).with_context(|| format!("reading {}", source.display()))?;
    let mut lines: Vec<String> =
        original.lines().filter(|l| !l.trim_start().starts_with("-cmninit")).map(str::to_owned).collect();
    lines.push(format!("-cmninit {TELEPHONE_CMN_PRIOR}"));
    let contents = lines.join("\n") + "\n";
    let digest = content_key([contents.as_bytes()]);
    let dir = cache_dir();
    let path = dir.join(format!("telephone-{digest}.feat.params"));
    if !path.is_file() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        write_atomically(&path, &contents)?;
    }
    Ok(path)
}

/// One recognition stream, owned by its thread.
struct Stream {
    decoder: Decoder,
    events: mpsc::Sender<SttEvent>,
    upsampler: Resampler,
    pcm8k: Vec<i16>,
    pcm16k: Vec<i16>,
    was_speaking: bool,
    /// Samples of the current utterance since speech started.
    spoken: usize,
    since_interim: usize,
    last_interim: String,
}

/// The receiver went away: nobody listens, stop.
struct Hangup;

impl Stream {
    fn new(decoder: Decoder, events: mpsc::Sender<SttEvent>) -> Result<Self, ProviderError> {
        let upsampler =
            Resampler::new(8000, DECODER_HZ).map_err(|e| ProviderError::fatal(PROVIDER, format!("{e:#}")))?;
        Ok(Self {
            decoder,
            events,
            upsampler,
            pcm8k: Vec::with_capacity(1024),
            pcm16k: Vec::with_capacity(2048),
            was_speaking: false,
            spoken: 0,
            since_interim: 0,
            last_interim: String::new(),
        })
    }

    fn into_decoder(self) -> Decoder {
        self.decoder
    }

    /// Runs until the input closes; true if the decoder is fit to serve another call.
    fn run(&mut self, mut input: mpsc::Receiver<SttInput>) -> bool {
        let outcome = (|| -> Result<Result<(), Hangup>, ProviderError> {
            self.decoder.start_utterance().map_err(decoder_error)?;
            while let Some(message) = input.blocking_recv() {
                let step = match message {
                    SttInput::Audio(bytes) => self.audio(&bytes)?,
                    SttInput::Finalize => self.finalize(true)?,
                };
                if step.is_err() {
                    return Ok(Err(Hangup));
                }
            }
            // Input closed: report what was heard, if anyone still listens.
            self.finalize(false)
        })();
        let healthy = match outcome {
            Ok(_) => true,
            Err(e) => {
                let _ = self.events.blocking_send(SttEvent::Error(e));
                false
            }
        };
        healthy && self.decoder.end_utterance().is_ok()
    }

    fn audio(&mut self, bytes: &[u8]) -> Result<Result<(), Hangup>, ProviderError> {
        self.pcm8k.clear();
        mulaw::decode_into(bytes, &mut self.pcm8k);
        self.pcm16k.clear();
        self.upsampler.process(&self.pcm8k, &mut self.pcm16k);
        self.feed()
    }

    /// Feeds `pcm16k` slice by slice, reporting speech start, interims and endpoints.
    fn feed(&mut self) -> Result<Result<(), Hangup>, ProviderError> {
        let mut start = 0;
        while start < self.pcm16k.len() {
            let end = (start + SLICE).min(self.pcm16k.len());
            self.decoder.process(&self.pcm16k[start..end]).map_err(decoder_error)?;
            let len = end - start;
            start = end;

            let speaking = self.decoder.in_speech();
            match (self.was_speaking, speaking) {
                (false, true) => {
                    self.was_speaking = true;
                    self.spoken = 0;
                    self.since_interim = 0;
                    if self.send(SttEvent::SpeechStarted).is_err() {
                        return Ok(Err(Hangup));
                    }
                }
                (true, false) => {
                    if self.end_utterance()?.is_err() {
                        return Ok(Err(Hangup));
                    }
                }
                (true, true) if self.spoken + len > MAX_UTTERANCE => {
                    if self.end_utterance()?.is_err() {
                        return Ok(Err(Hangup));
                    }
                }
                (true, true) => {
                    self.spoken += len;
                    self.since_interim += len;
                    if self.since_interim >= INTERIM_EVERY {
                        self.since_interim = 0;
                        let text = self.decoder.hypothesis().unwrap_or_default();
                        if !text.is_empty() && text != self.last_interim {
                            self.last_interim.clone_from(&text);
                            if self.send(SttEvent::Interim { text }).is_err() {
                                return Ok(Err(Hangup));
                            }
                        }
                    }
                }
                (false, false) => {}
            }
        }
        Ok(Ok(()))
    }

    /// Flushes buffered audio into the decoder, then ends the utterance (on request, or
    /// because the input closed).
    fn finalize(&mut self, restart: bool) -> Result<Result<(), Hangup>, ProviderError> {
        self.pcm16k.clear();
        self.upsampler.flush(&mut self.pcm16k);
        if self.feed()?.is_err() {
            return Ok(Err(Hangup));
        }
        if restart {
            self.end_utterance()
        } else {
            self.decoder.end_utterance().map_err(decoder_error)?;
            Ok(self.report_final())
        }
    }

    /// Ends the utterance, reports it and opens the next one.
    fn end_utterance(&mut self) -> Result<Result<(), Hangup>, ProviderError> {
        self.decoder.end_utterance().map_err(decoder_error)?;
        let sent = self.report_final();
        // Starting an utterance also resets the voice-activity detector.
        self.decoder.start_utterance().map_err(decoder_error)?;
        Ok(sent)
    }

    fn report_final(&mut self) -> Result<(), Hangup> {
        self.was_speaking = false;
        self.since_interim = 0;
        self.last_interim.clear();
        let text = self.decoder.hypothesis().unwrap_or_default();
        if text.split_whitespace().all(|w| HESITATIONS.contains(&w)) {
            return Ok(());
        }
        self.send(SttEvent::Final { text, speech_final: true })
    }

    fn send(&self, event: SttEvent) -> Result<(), Hangup> {
        self.events.blocking_send(event).map_err(|_| Hangup)
    }
}

fn decoder_error(e: super::sphinx_sys::DecoderError) -> ProviderError {
    ProviderError::fatal(PROVIDER, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::tts::flite::{FliteTts, FliteVoice};
    use crate::providers::tts::{TextToSpeech, TtsRequest};

    fn ready() -> bool {
        let ok = SphinxStt::available() && FliteTts::available();
        if !ok {
            eprintln!("skipped: pocketsphinx-en-us or flite is not installed");
        }
        ok
    }

    fn stt() -> SphinxStt {
        SphinxStt::new(SphinxConfig { spare_decoders: 1, ..SphinxConfig::default() }).expect("sphinx loads")
    }

    async fn speech(text: &str) -> Vec<u8> {
        let mut audio =
            FliteTts::new(FliteVoice::Kal).synthesize(TtsRequest { text: text.into(), language: Language::English });
        let mut bytes = Vec::new();
        while let Some(chunk) = audio.recv().await {
            bytes.extend(chunk.expect("flite audio"));
        }
        bytes
    }

    /// Sends `bytes` in 20 ms frames, `pace` apart, then `silence` of μ-law silence.
    async fn send_paced(input: &mpsc::Sender<SttInput>, bytes: &[u8], pace: Duration, silence: Duration) {
        let silent_frames = silence.as_millis() as usize / 20;
        let frames = bytes.chunks(160).map(<[u8]>::to_vec).chain(std::iter::repeat_n(vec![0xFF; 160], silent_frames));
        for frame in frames {
            input.send(SttInput::Audio(frame)).await.expect("recogniser alive");
            tokio::time::sleep(pace).await;
        }
    }

    async fn next_final(events: &mut mpsc::Receiver<SttEvent>, seen: &mut Vec<SttEvent>) -> Option<String> {
        loop {
            let event = tokio::time::timeout(Duration::from_secs(20), events.recv()).await.ok()??;
            seen.push(event.clone());
            if let SttEvent::Final { text, .. } = event {
                return Some(text);
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_booking_request_spoken_by_flite_is_transcribed() {
        if !ready() {
            return;
        }
        let stt = stt();
        let audio = speech("I would like to book an appointment").await;
        let SttStream { input, mut events } = stt.open(Language::English).unwrap();
        // Four times real time: 20 ms frames every 5 ms.
        send_paced(&input, &audio, Duration::from_millis(5), Duration::from_secs(1)).await;
        let mut seen = Vec::new();
        let text = next_final(&mut events, &mut seen).await.expect("a final transcript");
        assert!(text.contains("book") && text.contains("appointment"), "heard {text:?}");
        assert_eq!(seen.first(), Some(&SttEvent::SpeechStarted), "events {seen:?}");
        assert!(seen.iter().any(|e| matches!(e, SttEvent::Interim { .. })), "no interim in {seen:?}");
        drop(input);
        // The stream ends once its input is gone.
        let rest = tokio::time::timeout(Duration::from_secs(5), async { while events.recv().await.is_some() {} }).await;
        assert!(rest.is_ok(), "events did not close");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_utterances_in_one_stream_give_two_finals() {
        if !ready() {
            return;
        }
        let stt = stt();
        let first = speech("yes that works for me").await;
        let second = speech("my name is Jennifer Smith").await;
        let SttStream { input, mut events } = stt.open(Language::English).unwrap();
        send_paced(&input, &first, Duration::from_millis(2), Duration::from_millis(800)).await;
        send_paced(&input, &second, Duration::from_millis(2), Duration::from_millis(800)).await;
        let mut seen = Vec::new();
        let a = next_final(&mut events, &mut seen).await.expect("first final");
        let b = next_final(&mut events, &mut seen).await.expect("second final");
        assert!(a.contains("works"), "first {a:?}");
        assert!(b.contains("jennifer") && b.contains("smith"), "second {b:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn finalize_reports_speech_without_waiting_for_silence() {
        if !ready() {
            return;
        }
        let stt = stt();
        let audio = speech("can I speak to a real person").await;
        let SttStream { input, mut events } = stt.open(Language::English).unwrap();
        send_paced(&input, &audio, Duration::ZERO, Duration::ZERO).await;
        input.send(SttInput::Finalize).await.unwrap();
        let mut seen = Vec::new();
        let text = next_final(&mut events, &mut seen).await.expect("a final after finalize");
        assert!(text.contains("person"), "heard {text:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn silence_produces_no_events() {
        if !ready() {
            return;
        }
        let stt = stt();
        let SttStream { input, mut events } = stt.open(Language::English).unwrap();
        send_paced(&input, &[], Duration::ZERO, Duration::from_secs(2)).await;
        input.send(SttInput::Finalize).await.unwrap();
        drop(input);
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.expect("stream ends");
        assert_eq!(event, None);
    }

    #[test]
    fn spanish_is_refused_with_a_clear_error() {
        if !ready() {
            return;
        }
        let err = stt().open(Language::Spanish).err().expect("refused");
        assert!(!err.retryable && err.message.contains("English"), "{err}");
    }

    #[test]
    fn a_broken_configuration_fails_at_construction() {
        let config = SphinxConfig {
            language_model: LanguageModel::Files { lm: "/nonexistent.lm".into(), dict: CMU_DICT.into() },
            ..SphinxConfig::default()
        };
        assert!(SphinxStt::new(config).is_err());
    }

    #[test]
    fn the_telephone_prior_replaces_the_model_prior() {
        if !SphinxStt::available() {
            return;
        }
        let path = telephone_feat_params(Path::new(DEBIAN_MODEL_DIR)).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(text.matches("-cmninit").count(), 1);
        assert!(text.contains(TELEPHONE_CMN_PRIOR));
        assert!(text.contains("-feat 1s_c_d_dd"), "other parameters kept");
    }
}
