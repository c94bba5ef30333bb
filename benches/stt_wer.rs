//! Measures the local recogniser (PocketSphinx via `SphinxStt`) on booking-domain caller
//! phrases, spoken by the local voices and squeezed through the telephone band (8 kHz
//! μ-law): word error rate per voice and language model, real-time factor, and endpoint
//! latency (last sample of speech → Final) at real-time pacing.
//!
//! Run: `cargo bench --bench stt_wer` (set `STT_WER_QUICK=1` to skip the paced latency
//! pass, `STT_WER_VERBOSE=1` to print every mis-recognised phrase). Results also go to
//! `<target>/bench-results/stt_wer.json`.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ringlypro::audio::mulaw;
use ringlypro::domain::language::Language;
use ringlypro::providers::stt::sphinx::{SphinxConfig, SphinxStt};
use ringlypro::providers::stt::{SpeechToText, SttEvent, SttInput, SttStream};
use ringlypro::providers::tts::espeak::EspeakTts;
use ringlypro::providers::tts::flite::{FliteTts, FliteVoice};
use ringlypro::providers::tts::{TextToSpeech, TtsRequest};
use serde_json::json;

/// (what the voice is asked to say, what a perfect transcript contains)
const PHRASES: &[(&str, &str)] = &[
    ("Hi, I'd like to book a haircut for tomorrow morning.", "hi i'd like to book a haircut for tomorrow morning"),
    ("Do you have anything available next Tuesday afternoon?", "do you have anything available next tuesday afternoon"),
    ("I need to cancel my appointment for Friday.", "i need to cancel my appointment for friday"),
    ("Can I move my appointment to Thursday at three thirty?", "can i move my appointment to thursday at three thirty"),
    ("How much does a massage cost?", "how much does a massage cost"),
    ("What time do you close today?", "what time do you close today"),
    ("Could I talk to the manager please?", "could i talk to the manager please"),
    ("I'd like to leave a message for Maria.", "i'd like to leave a message for maria"),
    ("My name is Robert Johnson.", "my name is robert johnson"),
    ("This is Emily Davis.", "this is emily davis"),
    ("It's under Martinez.", "it's under martinez"),
    ("My phone number is 555 867 5319.", "my phone number is five five five eight six seven five three one nine"),
    ("You can reach me at 312 555 7142.", "you can reach me at three one two five five five seven one four two"),
    ("Yes.", "yes"),
    ("No thanks.", "no thanks"),
    ("Yeah, that sounds good.", "yeah that sounds good"),
    ("Nope, that's all, thank you.", "nope that's all thank you"),
    ("The second one, please.", "the second one please"),
    ("The two o'clock works for me.", "the two o'clock works for me"),
    ("How about January ninth at two thirty p.m.?", "how about january ninth at two thirty p.m."),
    ("Is ten past four available?", "is ten past four available"),
    ("Next Wednesday in the morning would be great.", "next wednesday in the morning would be great"),
    ("I'm free on the fifth.", "i'm free on the fifth"),
    ("Okay.", "okay"),
    ("Can you repeat that please?", "can you repeat that please"),
    ("I want to reschedule my cleaning.", "i want to reschedule my cleaning"),
    ("Are you open on Sunday?", "are you open on sunday"),
    ("Sarah Thompson.", "sarah thompson"),
    ("Quarter past eleven tomorrow.", "quarter past eleven tomorrow"),
    ("I'd like a consultation next month please.", "i'd like a consultation next month please"),
    ("Goodbye, have a nice day.", "goodbye have a nice day"),
    ("Um, what about the third one?", "um what about the third one"),
];

/// Trailing silence after each phrase: enough for any endpoint to fire.
const TRAILING_SILENCE: Duration = Duration::from_secs(1);
/// A μ-law sample louder than this counts as speech when finding where speech ends.
const SPEECH_LEVEL: u16 = 300;

struct Voice {
    name: &'static str,
    tts: Box<dyn TextToSpeech>,
}

struct Utterance {
    reference: &'static str,
    audio: Vec<u8>,
    /// Index of the last sample louder than [`SPEECH_LEVEL`].
    last_speech_sample: usize,
}

#[derive(Default)]
struct Score {
    words: usize,
    edits: usize,
    wrong_sentences: usize,
    sentences: usize,
    finals: usize,
    audio: Duration,
    decode_wall: Duration,
    misses: Vec<(String, String)>,
}

fn main() {
    if !SphinxStt::available() || !FliteTts::available() || !EspeakTts::available() {
        eprintln!("stt_wer skipped: needs pocketsphinx-en-us, flite and espeak-ng");
        return;
    }
    let quick = std::env::var_os("STT_WER_QUICK").is_some();
    let verbose = std::env::var_os("STT_WER_VERBOSE").is_some();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("stt_wer: cannot start a runtime: {e}");
            return;
        }
    };
    if let Err(e) = runtime.block_on(run(quick, verbose)) {
        eprintln!("stt_wer failed: {e:#}");
        std::process::exit(1);
    }
}

async fn run(quick: bool, verbose: bool) -> anyhow::Result<()> {
    let voices = [
        Voice { name: "flite-kal", tts: Box::new(FliteTts::new(FliteVoice::Kal)) },
        Voice { name: "flite-slt", tts: Box::new(FliteTts::new(FliteVoice::Slt)) },
        Voice { name: "espeak-ng", tts: Box::new(EspeakTts::new()) },
    ];
    let mut corpus: BTreeMap<&str, Vec<Utterance>> = BTreeMap::new();
    for voice in &voices {
        let mut utterances = Vec::new();
        for (text, reference) in PHRASES {
            let audio = synthesize(voice.tts.as_ref(), text).await?;
            let last_speech_sample =
                audio.iter().rposition(|&b| mulaw::decode(b).unsigned_abs() > SPEECH_LEVEL).unwrap_or(0);
            utterances.push(Utterance { reference, audio, last_speech_sample });
        }
        corpus.insert(voice.name, utterances);
    }

    // STT_WER_OPTIONS="-lw 8 -wip 0.5" tries extra decoder options on both models.
    let options: Vec<(String, String)> = std::env::var("STT_WER_OPTIONS")
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .chunks(2)
        .filter(|pair| pair.len() == 2)
        .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
        .collect();
    let only_booking = std::env::var_os("STT_WER_BOOKING_ONLY").is_some();
    let mut models = vec![("booking", SphinxConfig { decoder_options: options.clone(), ..SphinxConfig::default() })];
    if !only_booking {
        models.push(("generic", SphinxConfig { decoder_options: options, ..SphinxConfig::generic_english() }));
    }
    let mut results = Vec::new();
    let mut table = Vec::new();
    let mut init_times = BTreeMap::new();
    let mut booking_stt = None;
    for (model, config) in models {
        let stt = tokio::task::spawn_blocking(move || SphinxStt::new(config)).await??;
        init_times.insert(model, stt.decoder_init_time());
        for voice in &voices {
            let score = accuracy(&stt, &corpus[voice.name]).await?;
            if verbose {
                for (reference, heard) in &score.misses {
                    println!(
                        "  [{model}/{}] said {reference:?}\n  {:>w$} heard {heard:?}",
                        voice.name,
                        "",
                        w = model.len() + voice.name.len() + 1
                    );
                }
            }
            let wer = score.edits as f64 / score.words as f64;
            let ser = score.wrong_sentences as f64 / score.sentences as f64;
            let rtf = score.decode_wall.as_secs_f64() / score.audio.as_secs_f64();
            let finals = score.finals as f64 / score.sentences as f64;
            table.push(format!(
                "{model:<8} {:<10} {:>6.1}% {:>6.1}% {:>7.3} {:>8.2}",
                voice.name,
                100.0 * wer,
                100.0 * ser,
                rtf,
                finals
            ));
            results.push(json!({
                "language_model": model,
                "voice": voice.name,
                "phrases": score.sentences,
                "reference_words": score.words,
                "word_errors": score.edits,
                "wer": wer,
                "sentence_error_rate": ser,
                "real_time_factor": rtf,
                "finals_per_phrase": finals,
                "misrecognised": score.misses.iter().map(|(r, h)| json!({"said": r, "heard": h})).collect::<Vec<_>>(),
            }));
        }
        if model == "booking" {
            booking_stt = Some(stt);
        }
    }

    println!(
        "\nSTT accuracy over the telephone band ({} phrases per voice, decoded as fast as possible)",
        PHRASES.len()
    );
    println!("{:<8} {:<10} {:>7} {:>7} {:>7} {:>8}", "LM", "voice", "WER", "SER", "RTF", "finals");
    for line in &table {
        println!("{line}");
    }
    println!(
        "\ndecoder init: {}",
        init_times.iter().map(|(m, t)| format!("{m} {} ms", t.as_millis())).collect::<Vec<_>>().join(", ")
    );

    let mut latency_json = Vec::new();
    if let (false, Some(stt)) = (quick, booking_stt) {
        println!("\nEndpoint latency, booking LM, real-time pacing (20 ms frames; voices in parallel):");
        println!("{:<10} {:>8} {:>8} {:>8} {:>7}", "voice", "p50 ms", "p95 ms", "max ms", "missed");
        let stt = std::sync::Arc::new(stt);
        let mut tasks = Vec::new();
        for voice in &voices {
            let stt = std::sync::Arc::clone(&stt);
            let utterances: Vec<(Vec<u8>, usize)> =
                corpus[voice.name].iter().map(|u| (u.audio.clone(), u.last_speech_sample)).collect();
            tasks.push((voice.name, tokio::spawn(async move { latencies(&stt, &utterances).await })));
        }
        for (name, task) in tasks {
            let (mut millis, missed) = task.await??;
            millis.sort_by(f64::total_cmp);
            let (p50, p95, max) =
                (percentile(&millis, 0.5), percentile(&millis, 0.95), millis.last().copied().unwrap_or(f64::NAN));
            println!("{name:<10} {p50:>8.0} {p95:>8.0} {max:>8.0} {missed:>7}");
            latency_json.push(json!({"voice": name, "p50_ms": p50, "p95_ms": p95, "max_ms": max, "missed": missed, "samples_ms": millis}));
        }
    }

    let report = json!({
        "phrases": PHRASES.len(),
        "channel": "8 kHz G.711 mu-law, upsampled to 16 kHz",
        "decoder_init_ms": init_times.iter().map(|(m, t)| (m.to_string(), json!(t.as_secs_f64() * 1000.0))).collect::<serde_json::Map<_, _>>(),
        "accuracy": results,
        "endpoint_latency_booking_lm": latency_json,
    });
    let path = results_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("\nwrote {}", path.display());
    Ok(())
}

/// `<target>/bench-results/stt_wer.json`, beside criterion's `<target>/criterion`.
fn results_path() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let target = tmp.parent().map(PathBuf::from).unwrap_or(tmp);
    target.join("bench-results").join("stt_wer.json")
}

async fn synthesize(tts: &dyn TextToSpeech, text: &str) -> anyhow::Result<Vec<u8>> {
    let mut audio = tts.synthesize(TtsRequest { text: text.into(), language: Language::English });
    let mut bytes = Vec::new();
    while let Some(chunk) = audio.recv().await {
        bytes.extend(chunk?);
    }
    Ok(bytes)
}

fn silence() -> impl Iterator<Item = Vec<u8>> {
    std::iter::repeat_n(vec![0xFF; 160], TRAILING_SILENCE.as_millis() as usize / 20)
}

/// Decodes every utterance as fast as the recogniser takes it.
async fn accuracy(stt: &SphinxStt, utterances: &[Utterance]) -> anyhow::Result<Score> {
    let mut score = Score::default();
    for u in utterances {
        let started = Instant::now();
        let finals = support::recognise(stt, &u.audio, TRAILING_SILENCE).await?;
        score.decode_wall += started.elapsed();
        score.audio += Duration::from_secs_f64(u.audio.len() as f64 / 8000.0) + TRAILING_SILENCE;

        let heard = finals.join(" ");
        let reference = normalise(u.reference);
        let hypothesis = normalise(&heard);
        let edits = word_edits(&reference, &hypothesis);
        score.words += reference.len();
        score.edits += edits;
        score.sentences += 1;
        score.finals += finals.len();
        if edits > 0 {
            score.wrong_sentences += 1;
            score.misses.push((u.reference.to_owned(), heard));
        }
    }
    Ok(score)
}

/// Streams each utterance at real-time pace and measures, in ms, from the moment its last
/// speech sample would have been heard to the Final that follows. Returns the latencies and
/// how many utterances got no Final after their speech ended.
async fn latencies(stt: &SphinxStt, utterances: &[(Vec<u8>, usize)]) -> anyhow::Result<(Vec<f64>, usize)> {
    let mut millis = Vec::new();
    let mut missed = 0;
    for (audio, last_speech_sample) in utterances {
        let SttStream { input, mut events } = stt.open(Language::English)?;
        let collector = tokio::spawn(async move {
            let mut finals = Vec::new();
            while let Some(event) = events.recv().await {
                if let SttEvent::Final { .. } = event {
                    finals.push(Instant::now());
                }
            }
            finals
        });
        let t0 = Instant::now();
        for (k, frame) in audio.chunks(160).map(<[u8]>::to_vec).chain(silence()).enumerate() {
            // A frame leaves the phone network once all its 20 ms have been spoken.
            tokio::time::sleep_until((t0 + Duration::from_millis(20 * (k as u64 + 1))).into()).await;
            input.send(SttInput::Audio(frame)).await?;
        }
        drop(input);
        let finals = collector.await?;
        let speech_end = t0 + Duration::from_secs_f64((*last_speech_sample + 1) as f64 / 8000.0);
        match finals.iter().find(|&&t| t >= speech_end) {
            Some(&t) => millis.push((t - speech_end).as_secs_f64() * 1000.0),
            None => missed += 1,
        }
    }
    Ok((millis, missed))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Lower case, punctuation dropped (apostrophes kept), spellings unified.
fn normalise(text: &str) -> Vec<String> {
    let lower = text.to_lowercase().replace("a.m.", "a m").replace("p.m.", "p m").replace("uh-huh", "uh huh");
    lower
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(|w| if w == "ok" { "okay".to_owned() } else { w.to_owned() })
        .collect()
}

/// Levenshtein distance over words: substitutions + deletions + insertions.
fn word_edits(reference: &[String], hypothesis: &[String]) -> usize {
    let mut previous: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut current = vec![i + 1; hypothesis.len() + 1];
        for (j, h) in hypothesis.iter().enumerate() {
            let substitution = previous[j] + usize::from(r != h);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[hypothesis.len()]
}
