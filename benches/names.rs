//! Measures how callers' names survive the local recogniser: common first and last names of
//! several origins, said in a carrier phrase ("my name is X Y") and bare ("X Y") and spelled
//! letter by letter, by both flite voices, through the telephone band (8 kHz μ-law), then
//! recognised by PocketSphinx with the booking model and read by the NLU. Booking phrases
//! are scored alongside, so a gain on names cannot hide a loss elsewhere.
//!
//! Run: `cargo bench --bench names`. Prints per-origin tables and writes one CSV row per
//! utterance to `<target>/bench-results/names.csv`. Environment:
//! - `NAMES_WAV_DIR=dir` also writes every utterance as an 8 kHz 16-bit WAV (decoded from
//!   the μ-law a call carries) and `dir/manifest.tsv` (`id`, `kind`, `reference`), for
//!   another recogniser to run on the same audio (`scripts/eval-whisper`).
//! - `NAMES_HEARD=file.tsv` scores transcripts from that file (`id`, tab, text) instead of
//!   running PocketSphinx, so another recogniser is read by the same NLU and table.
//! - `NAMES_LABEL=x` names the CSV `names-x.csv`; `NAMES_VERBOSE=1` prints every miss.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringlypro::audio::mulaw;
use ringlypro::dialogue::nlu::read_name_answer;
use ringlypro::domain::language::Language;
use ringlypro::providers::stt::sphinx::{SphinxConfig, SphinxStt};
use ringlypro::providers::tts::flite::{FliteTts, FliteVoice};
use ringlypro::providers::tts::{TextToSpeech, TtsRequest};

/// (origin, first name, last name): names common among US callers of each origin, written
/// as they would be typed into a booking. Spelled the way flite says them as words (flite
/// spells out "Nguyen" letter by letter, so it is left to the spelled set).
const NAMES: &[(&str, &str, &str)] = &[
    ("english", "James", "Smith"),
    ("english", "Mary", "Johnson"),
    ("english", "Robert", "Williams"),
    ("english", "Jennifer", "Brown"),
    ("english", "Michael", "Davis"),
    ("english", "Sarah", "Wilson"),
    ("english", "David", "Taylor"),
    ("english", "Emily", "Anderson"),
    ("english", "William", "Thomas"),
    ("english", "Jessica", "Moore"),
    ("hispanic", "Maria", "Garcia"),
    ("hispanic", "Jose", "Rodriguez"),
    ("hispanic", "Carmen", "Martinez"),
    ("hispanic", "Juan", "Hernandez"),
    ("hispanic", "Guadalupe", "Lopez"),
    ("hispanic", "Alejandro", "Gonzalez"),
    ("hispanic", "Sofia", "Ramirez"),
    ("hispanic", "Miguel", "Torres"),
    ("hispanic", "Lucia", "Flores"),
    ("hispanic", "Javier", "Morales"),
    ("asian", "Wei", "Chen"),
    ("asian", "Mei", "Wang"),
    ("asian", "Hiroshi", "Tanaka"),
    ("asian", "Yuki", "Sato"),
    ("asian", "Min", "Park"),
    ("asian", "Priya", "Patel"),
    ("asian", "Raj", "Sharma"),
    ("asian", "Linh", "Tran"),
    ("asian", "Kenji", "Watanabe"),
    ("asian", "Hana", "Lee"),
    ("african", "Chinedu", "Okafor"),
    ("african", "Amara", "Okeke"),
    ("african", "Kwame", "Mensah"),
    ("african", "Ama", "Asante"),
    ("african", "Oluwaseun", "Adeyemi"),
    ("african", "Fatou", "Diallo"),
    ("african", "Tendai", "Moyo"),
    ("african", "Abebe", "Bekele"),
    ("african", "Zainab", "Bello"),
    ("african", "Kofi", "Boateng"),
    ("european", "Hans", "Mueller"),
    ("european", "Giulia", "Rossi"),
    ("european", "Pierre", "Dubois"),
    ("european", "Ingrid", "Larsen"),
    ("european", "Marco", "Bianchi"),
    ("european", "Katarzyna", "Kowalski"),
    ("european", "Sven", "Johansson"),
    ("european", "Anna", "Novak"),
    ("european", "Lars", "Nielsen"),
    ("european", "Elena", "Popescu"),
    ("middle_eastern", "Mohammed", "Ali"),
    ("middle_eastern", "Fatima", "Hassan"),
    ("middle_eastern", "Ahmed", "Khan"),
    ("middle_eastern", "Zahra", "Rahman"),
    ("middle_eastern", "Omar", "Haddad"),
    ("middle_eastern", "Layla", "Nasser"),
    ("middle_eastern", "Yusuf", "Ibrahim"),
    ("middle_eastern", "Mariam", "Saleh"),
    ("middle_eastern", "Karim", "Hussein"),
    ("middle_eastern", "Noor", "Karimi"),
];

/// Names spelled out letter by letter, the fallback when a name is not understood.
const SPELLED: &[&str] =
    &["maria", "lopez", "nguyen", "okafor", "kowalski", "priya", "yusuf", "zainab", "chen", "tendai"];

/// (what the voice says, what a perfect transcript contains): the answers around a name.
const BOOKING: &[(&str, &str)] = &[
    ("I'd like to book an appointment.", "i'd like to book an appointment"),
    ("The second one, please.", "the second one please"),
    ("Tuesday at 2 pm.", "tuesday at two p m"),
    ("My phone number is 555 867 5319.", "my phone number is five five five eight six seven five three one nine"),
    ("Yes.", "yes"),
    ("No, that's all.", "no that's all"),
    ("Do you have anything tomorrow morning?", "do you have anything tomorrow morning"),
    ("I need to cancel my appointment for Friday.", "i need to cancel my appointment for friday"),
    ("Can I move it to Thursday at three thirty?", "can i move it to thursday at three thirty"),
    ("How much does a cleaning cost?", "how much does a cleaning cost"),
    ("What time do you close today?", "what time do you close today"),
    ("Could I talk to the manager please?", "could i talk to the manager please"),
    ("The first one works for me.", "the first one works for me"),
    ("Yeah, that sounds good.", "yeah that sounds good"),
    ("Next Wednesday in the afternoon.", "next wednesday in the afternoon"),
    ("Is ten past four available?", "is ten past four available"),
    ("I'd like to leave a message.", "i'd like to leave a message"),
    ("No thank you, goodbye.", "no thank you goodbye"),
    ("Can you repeat that please?", "can you repeat that please"),
    ("You can reach me at 312 555 7142.", "you can reach me at three one two five five five seven one four two"),
];

const VOICES: [FliteVoice; 2] = [FliteVoice::Kal, FliteVoice::Slt];
/// Trailing silence after each utterance: enough for any endpoint to fire.
const TRAILING_SILENCE: Duration = Duration::from_secs(1);
/// Recognition streams decoding at once (each is its own OS thread).
const PARALLEL: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Style {
    /// "My name is James Smith."
    Carrier,
    /// "James Smith."
    Bare,
}

#[derive(Debug, Clone)]
enum Kind {
    Name { origin: &'static str, first: &'static str, last: &'static str, style: Style },
    Spelled { name: &'static str },
    Booking { reference: &'static str },
}

struct Utterance {
    id: String,
    voice: &'static str,
    kind: Kind,
    text: String,
    audio: Vec<u8>,
}

impl Utterance {
    /// What a perfect transcript holds, in normalised words.
    fn reference(&self) -> Vec<String> {
        match &self.kind {
            Kind::Name { first, last, style: Style::Carrier, .. } => normalise(&format!("my name is {first} {last}")),
            Kind::Name { first, last, style: Style::Bare, .. } => normalise(&format!("{first} {last}")),
            Kind::Spelled { name } => name.chars().map(|c| c.to_string()).collect(),
            Kind::Booking { reference } => normalise(reference),
        }
    }

    fn kind_label(&self) -> String {
        match &self.kind {
            Kind::Name { origin, style, .. } => format!("name:{origin}:{}", style_label(*style)),
            Kind::Spelled { .. } => "spelled".into(),
            Kind::Booking { .. } => "booking".into(),
        }
    }
}

fn style_label(style: Style) -> &'static str {
    match style {
        Style::Carrier => "carrier",
        Style::Bare => "bare",
    }
}

/// One utterance's result.
struct Scored {
    heard: String,
    nlu_name: Option<String>,
    /// Word edits on the scored words (the name words for names, all words otherwise).
    edits: usize,
    words: usize,
    exact: bool,
    first_ok: bool,
}

fn main() {
    if !SphinxStt::available() || !FliteTts::available() {
        eprintln!("names skipped: needs pocketsphinx-en-us and flite");
        return;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("names: cannot start a runtime: {e}");
            return;
        }
    };
    if let Err(e) = runtime.block_on(run()) {
        eprintln!("names failed: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let utterances = synthesize_all().await?;
    println!("synthesised {} utterances in {:.1} s", utterances.len(), started.elapsed().as_secs_f64());
    if let Some(dir) = std::env::var_os("NAMES_WAV_DIR") {
        dump_wavs(Path::new(&dir), &utterances)?;
        println!("wrote {} WAV files and manifest.tsv to {}", utterances.len(), Path::new(&dir).display());
    }

    let (heard, source) = match std::env::var_os("NAMES_HEARD") {
        Some(path) => (read_heard(Path::new(&path))?, format!("transcripts from {}", Path::new(&path).display())),
        None => {
            let decoding = Instant::now();
            let cpu_before = process_cpu_seconds();
            let config = SphinxConfig { spare_decoders: PARALLEL, ..SphinxConfig::default() };
            let stt = Arc::new(tokio::task::spawn_blocking(move || SphinxStt::new(config)).await??);
            let heard = recognise_all(&stt, &utterances).await?;
            let audio_s: f64 = utterances.iter().map(|u| u.audio.len() as f64 / 8000.0).sum();
            let wall = decoding.elapsed().as_secs_f64();
            let cpu = process_cpu_seconds().zip(cpu_before).map_or(f64::NAN, |(after, before)| after - before);
            println!(
                "recognised {audio_s:.0} s of audio in {wall:.1} s on {PARALLEL} threads: {cpu:.1} CPU s, {:.3} CPU s per \
                 second of audio, {:.0} ms CPU per utterance",
                cpu / audio_s,
                1000.0 * cpu / utterances.len() as f64
            );
            (heard, "PocketSphinx, booking language model".to_owned())
        }
    };

    let verbose = std::env::var_os("NAMES_VERBOSE").is_some();
    let mut scored = Vec::new();
    for u in &utterances {
        let text = heard.get(&u.id).cloned().unwrap_or_default();
        let s = score(u, &text);
        if verbose && (s.edits > 0 || matches!(u.kind, Kind::Name { .. }) && !s.exact) {
            println!("  [{}] said {:?} heard {:?} name {:?}", u.voice, u.text, s.heard, s.nlu_name);
        }
        scored.push(s);
    }
    print_tables(&source, &utterances, &scored);
    write_csv(&utterances, &scored)?;
    println!("total {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

async fn synthesize_all() -> anyhow::Result<Vec<Utterance>> {
    let mut out = Vec::new();
    for voice in VOICES {
        let tts = FliteTts::new(voice);
        let mut say = async |kind: Kind, text: String, tag: String| -> anyhow::Result<()> {
            let audio = synthesize(&tts, &text).await?;
            out.push(Utterance { id: format!("{}-{tag}", voice.name()), voice: voice.name(), kind, text, audio });
            Ok(())
        };
        for (i, &(origin, first, last)) in NAMES.iter().enumerate() {
            for style in [Style::Carrier, Style::Bare] {
                let text = match style {
                    Style::Carrier => format!("My name is {first} {last}."),
                    Style::Bare => format!("{first} {last}."),
                };
                let tag = format!("name{i:02}-{}", style_label(style));
                say(Kind::Name { origin, first, last, style }, text, tag).await?;
            }
        }
        for (i, name) in SPELLED.iter().enumerate() {
            let letters: Vec<String> = name.chars().map(|c| c.to_ascii_uppercase().to_string()).collect();
            say(Kind::Spelled { name }, format!("{}.", letters.join(", ")), format!("spelled{i:02}")).await?;
        }
        for (i, (text, reference)) in BOOKING.iter().enumerate() {
            say(Kind::Booking { reference }, (*text).to_owned(), format!("booking{i:02}")).await?;
        }
    }
    Ok(out)
}

async fn synthesize(tts: &dyn TextToSpeech, text: &str) -> anyhow::Result<Vec<u8>> {
    let mut audio = tts.synthesize(TtsRequest { text: text.into(), language: Language::English });
    let mut bytes = Vec::new();
    while let Some(chunk) = audio.recv().await {
        bytes.extend(chunk?);
    }
    Ok(bytes)
}

/// Decodes every utterance, [`PARALLEL`] at a time, as fast as the recogniser takes them.
async fn recognise_all(stt: &Arc<SphinxStt>, utterances: &[Utterance]) -> anyhow::Result<HashMap<String, String>> {
    let mut lanes: Vec<Vec<(String, Vec<u8>)>> = vec![Vec::new(); PARALLEL];
    for (i, u) in utterances.iter().enumerate() {
        lanes[i % PARALLEL].push((u.id.clone(), u.audio.clone()));
    }
    let mut tasks = Vec::new();
    for lane in lanes {
        let stt = Arc::clone(stt);
        tasks.push(tokio::spawn(async move {
            let mut heard = Vec::new();
            for (id, audio) in lane {
                heard.push((id, recognise(&stt, &audio).await?));
            }
            anyhow::Ok(heard)
        }));
    }
    let mut all = HashMap::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}

async fn recognise(stt: &SphinxStt, audio: &[u8]) -> anyhow::Result<String> {
    Ok(support::recognise(stt, audio, TRAILING_SILENCE).await?.join(" "))
}

fn score(u: &Utterance, heard: &str) -> Scored {
    let reference = u.reference();
    let hypothesis = normalise(heard);
    let nlu_name = read_name_answer(heard);
    match &u.kind {
        Kind::Name { first, last, style, .. } => {
            let skip = if *style == Style::Carrier { 3 } else { 0 };
            let edits = edits_on(&reference, &hypothesis, skip);
            let got = nlu_name.as_deref().map(str::to_lowercase).unwrap_or_default();
            let got_words: Vec<&str> = got.split_whitespace().collect();
            let (first, last) = (first.to_lowercase(), last.to_lowercase());
            Scored {
                heard: heard.to_owned(),
                exact: got_words == [first.as_str(), last.as_str()],
                first_ok: got_words.first() == Some(&first.as_str()),
                nlu_name,
                edits,
                words: 2,
            }
        }
        Kind::Spelled { name } => {
            let edits = edits_on(&reference, &hypothesis, 0);
            let exact = nlu_name.as_deref().map(str::to_lowercase).as_deref() == Some(*name);
            Scored { heard: heard.to_owned(), nlu_name, edits, words: reference.len(), exact, first_ok: exact }
        }
        Kind::Booking { .. } => {
            let edits = edits_on(&reference, &hypothesis, 0);
            Scored {
                heard: heard.to_owned(),
                nlu_name,
                edits,
                words: reference.len(),
                exact: edits == 0,
                first_ok: false,
            }
        }
    }
}

#[derive(Default)]
struct Tally {
    utterances: usize,
    exact: usize,
    first: usize,
    edits: usize,
    words: usize,
}

impl Tally {
    fn add(&mut self, s: &Scored) {
        self.utterances += 1;
        self.exact += usize::from(s.exact);
        self.first += usize::from(s.first_ok);
        self.edits += s.edits;
        self.words += s.words;
    }

    fn pct(part: usize, whole: usize) -> f64 {
        if whole == 0 { f64::NAN } else { 100.0 * part as f64 / whole as f64 }
    }
}

fn print_tables(source: &str, utterances: &[Utterance], scored: &[Scored]) {
    let voices: Vec<&str> = VOICES.iter().map(|v| v.name()).collect();
    println!("\nNames through 8 kHz μ-law, {source}");
    println!("{:<15} {:<8} {:>5} {:>8} {:>8} {:>9}", "origin", "style", "n", "exact %", "first %", "name WER");
    let mut by_row: BTreeMap<(String, Style), Tally> = BTreeMap::new();
    let mut by_origin: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_voice: BTreeMap<String, Tally> = BTreeMap::new();
    let mut overall = Tally::default();
    for (u, s) in utterances.iter().zip(scored) {
        if let Kind::Name { origin, style, .. } = &u.kind {
            by_row.entry(((*origin).to_owned(), *style)).or_default().add(s);
            by_origin.entry((*origin).to_owned()).or_default().add(s);
            by_row.entry(("ALL".to_owned(), *style)).or_default().add(s);
            by_voice.entry(u.voice.to_owned()).or_default().add(s);
            overall.add(s);
        }
    }
    let line = |label: &str, style: &str, t: &Tally| {
        println!(
            "{label:<15} {style:<8} {:>5} {:>8.1} {:>8.1} {:>8.1}%",
            t.utterances,
            Tally::pct(t.exact, t.utterances),
            Tally::pct(t.first, t.utterances),
            Tally::pct(t.edits, t.words)
        );
    };
    for (origin, tally) in &by_origin {
        line(origin, "both", tally);
        for style in [Style::Carrier, Style::Bare] {
            if let Some(t) = by_row.get(&(origin.clone(), style)) {
                line("", style_label(style), t);
            }
        }
    }
    for style in [Style::Carrier, Style::Bare] {
        if let Some(t) = by_row.get(&("ALL".to_owned(), style)) {
            line("ALL", style_label(style), t);
        }
    }
    for voice in &voices {
        if let Some(t) = by_voice.get(*voice) {
            line(&format!("ALL {voice}"), "both", t);
        }
    }
    line("ALL", "both", &overall);

    let mut spelled = Tally::default();
    let mut booking: BTreeMap<&str, Tally> = BTreeMap::new();
    for (u, s) in utterances.iter().zip(scored) {
        match u.kind {
            Kind::Spelled { .. } => spelled.add(s),
            Kind::Booking { .. } => booking.entry(u.voice).or_default().add(s),
            Kind::Name { .. } => {}
        }
    }
    println!(
        "\nspelled names: {} utterances, read exactly {:.1}%, letter error rate {:.1}%",
        spelled.utterances,
        Tally::pct(spelled.exact, spelled.utterances),
        Tally::pct(spelled.edits, spelled.words)
    );
    let mut all = Tally::default();
    for (voice, t) in &booking {
        println!(
            "booking phrases, {voice}: {} utterances, WER {:.1}%, sentence errors {:.1}%",
            t.utterances,
            Tally::pct(t.edits, t.words),
            100.0 - Tally::pct(t.exact, t.utterances)
        );
        all.utterances += t.utterances;
        all.exact += t.exact;
        all.edits += t.edits;
        all.words += t.words;
    }
    println!("booking phrases, both voices: WER {:.1}%", Tally::pct(all.edits, all.words));
}

fn write_csv(utterances: &[Utterance], scored: &[Scored]) -> anyhow::Result<()> {
    let label = std::env::var("NAMES_LABEL").ok().filter(|l| !l.is_empty());
    let file = label.map_or_else(|| "names.csv".to_owned(), |l| format!("names-{l}.csv"));
    let path = results_dir().join(file);
    std::fs::create_dir_all(results_dir())?;
    let mut csv = String::from("id,voice,kind,said,heard,nlu_name,exact,first_ok,edits,words\n");
    for (u, s) in utterances.iter().zip(scored) {
        let row = [
            u.id.clone(),
            u.voice.to_owned(),
            u.kind_label(),
            u.text.clone(),
            s.heard.clone(),
            s.nlu_name.clone().unwrap_or_default(),
            s.exact.to_string(),
            s.first_ok.to_string(),
            s.edits.to_string(),
            s.words.to_string(),
        ];
        csv.push_str(&row.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        csv.push('\n');
    }
    std::fs::write(&path, csv)?;
    println!("\nwrote {}", path.display());
    Ok(())
}

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n']) { format!("\"{}\"", field.replace('"', "\"\"")) } else { field.to_owned() }
}

/// `<target>/bench-results`, beside criterion's `<target>/criterion`.
fn results_dir() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let target = tmp.parent().map(PathBuf::from).unwrap_or(tmp);
    target.join("bench-results")
}

/// Writes each utterance as a 16-bit 8 kHz mono WAV of the μ-law a call carries, and a
/// manifest (`id`, `kind`, `reference` as normalised words).
fn dump_wavs(dir: &Path, utterances: &[Utterance]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut manifest = String::from("id\tkind\treference\n");
    for u in utterances {
        let mut samples = Vec::with_capacity(u.audio.len());
        mulaw::decode_into(&u.audio, &mut samples);
        std::fs::write(dir.join(format!("{}.wav", u.id)), wav_bytes(&samples, 8000))?;
        manifest.push_str(&format!("{}\t{}\t{}\n", u.id, u.kind_label(), u.reference().join(" ")));
    }
    std::fs::write(dir.join("manifest.tsv"), manifest)?;
    Ok(())
}

fn wav_bytes(samples: &[i16], rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// User + system CPU time of this process so far (Linux `/proc/self/stat`, in clock ticks
/// of 1/100 s), or `None` where that cannot be read.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of the line: indices 11 and 12 after the name.
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// Transcripts written by another recogniser: `id<TAB>text` a line.
fn read_heard(path: &Path) -> anyhow::Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(id, heard)| (id.trim().to_owned(), heard.trim().to_owned()))
        .collect())
}

/// Lower case, punctuation dropped (apostrophes kept), numbers said as words, so that a
/// recogniser writing "2 pm" or "555-867-5319" is scored like one writing words.
fn normalise(text: &str) -> Vec<String> {
    let lower = text.to_lowercase().replace("a.m.", "a m").replace("p.m.", "p m");
    let mut words = Vec::new();
    for token in lower.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == ':')) {
        let token = token.trim_matches(|c| c == '\'' || c == ':');
        if token.is_empty() {
            continue;
        }
        if let Some((hours, minutes)) = token.split_once(':') {
            words.extend(number_words(hours));
            if minutes != "00" {
                words.extend(number_words(minutes));
            }
            continue;
        }
        match token {
            "ok" => words.push("okay".to_owned()),
            "am" | "pm" => {
                words.push(token[..1].to_owned());
                words.push("m".to_owned());
            }
            t if t.chars().all(|c| c.is_ascii_digit()) => words.extend(number_words(t)),
            t => words.push(t.to_owned()),
        }
    }
    words
}

/// "2" → two, "30" → thirty, "5319" → five three one nine (long numbers are read digit by
/// digit, as phone numbers are).
fn number_words(digits: &str) -> Vec<String> {
    const ONES: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 6] = ["", "", "twenty", "thirty", "forty", "fifty"];
    let Ok(n) = digits.parse::<usize>() else {
        return vec![digits.to_owned()];
    };
    if digits.len() > 2 || n >= 60 {
        return digits.chars().filter_map(|c| c.to_digit(10)).map(|d| ONES[d as usize].to_owned()).collect();
    }
    match n {
        0..20 => vec![ONES[n].to_owned()],
        _ if n % 10 == 0 => vec![TENS[n / 10].to_owned()],
        _ => vec![TENS[n / 10].to_owned(), ONES[n % 10].to_owned()],
    }
}

/// Word edits charged to `reference[skip..]`: the two sequences are aligned as a whole
/// (Levenshtein), then substitutions and deletions of those reference words are counted, and
/// insertions after the first of them. A misheard carrier phrase is not charged to the name.
fn edits_on(reference: &[String], hypothesis: &[String], skip: usize) -> usize {
    let (n, m) = (reference.len(), hypothesis.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let substitution = d[i - 1][j - 1] + usize::from(reference[i - 1] != hypothesis[j - 1]);
            d[i][j] = substitution.min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
        }
    }
    let (mut i, mut j, mut edits) = (n, m, 0);
    while i > 0 || j > 0 {
        let scored_here = i > skip;
        if i > 0 && j > 0 && d[i][j] == d[i - 1][j - 1] + usize::from(reference[i - 1] != hypothesis[j - 1]) {
            edits += usize::from(scored_here && reference[i - 1] != hypothesis[j - 1]);
            i -= 1;
            j -= 1;
        } else if i > 0 && d[i][j] == d[i - 1][j] + 1 {
            edits += usize::from(scored_here);
            i -= 1;
        } else {
            // An insertion after reference word i: charged unless it sits inside the
            // carrier phrase.
            edits += usize::from(i >= skip);
            j -= 1;
        }
    }
    edits
}
