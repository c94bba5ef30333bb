//! Load harness: the real server (`ringlypro serve`, its own process) against fake vendors
//! that model real providers' delays, driven by N concurrent simulated Twilio calls over
//! loopback. Prints per-stage latency percentiles, voice-to-voice time, late outbound frames,
//! barge-in time, the server's CPU seconds and peak memory per call; writes them as JSON and
//! draws SVG plots under `$CARGO_TARGET_DIR/bench-results/`.
//!
//! `cargo bench --bench calls -- --calls 50 --lines 4 --provider-delays stt=250,llm=250,tps=40,tts=100`
//! - `--provider-delays zero` sets every modeled delay to 0;
//! - `--sweep 100,200,400` runs each count with a fresh server and plots the curve;
//! - `--duration SECS` keeps N calls live for that long (a soak), plotting memory over time;
//! - `--arrival-rate R` starts R new calls a second for `--duration` (default 60 s) instead of
//!   N at once: a steady stream, whose peak of concurrent calls is reported;
//! - `--barge-in` makes every call's second line talk over the agent's reply;
//! - `--pin` runs the server on `--server-cpus` (default `0`) and this harness on
//!   `--harness-cpus` (default `1`), e.g. `--server-cpus 0,1 --harness-cpus 2-15`;
//! - `--role vendors` only runs the vendor fakes: it prints their addresses as one JSON
//!   line and serves until its standard input closes; `--role callers` only runs the
//!   callers, against the vendors named by `--vendors FILE` (that JSON line) or, without it,
//!   a `--role vendors` child of its own (pinned to `--vendor-cpus` with `--pin`);
//!   `--role all` (the default) runs both in this process;
//! - `--pace MS` sets the agent's speech per character of text (default 65, a real voice);
//! - `--server-bin PATH` runs another build of the server (to compare two builds);
//! - `--local-engines` runs the server on its offline engines (PocketSphinx, the local
//!   dialogue, espeak-ng) with no vendor at all: the callers speak a booking call's lines
//!   with flite, and the server-added time is all of STT final → first frame.

#[path = "../tests/fakes/mod.rs"]
mod fakes;
mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fakes::deepgram::FakeDeepgram;
use fakes::elevenlabs::{FakeElevenLabs, Knobs};
use fakes::openai::{FakeOpenAi, Script};
use ringlypro::audio::mulaw;
use ringlypro::domain::calls::Speaker;
use ringlypro::providers::tts::flite::FliteTts;
use ringlypro::providers::tts::sentences::split_sentences;
use ringlypro::providers::tts::{TextToSpeech, TtsAudio, TtsRequest};
use ringlypro::sim::{self, Line, Script as CallScript};
use ringlypro::storage::postgres::calls;
use serde_json::json;
use support::plots::{self, Series, cdf};
use support::{ms, percentiles};

/// Modeled provider delays.
#[derive(Debug, Clone, Copy)]
struct Delays {
    stt_final_ms: u64,
    llm_first_token_ms: u64,
    llm_tokens_per_second: u32,
    tts_first_byte_ms: u64,
}

impl Delays {
    fn parse(spec: &str) -> anyhow::Result<Self> {
        let mut d =
            Delays { stt_final_ms: 250, llm_first_token_ms: 250, llm_tokens_per_second: 40, tts_first_byte_ms: 100 };
        if spec == "zero" {
            return Ok(Delays {
                stt_final_ms: 0,
                llm_first_token_ms: 0,
                llm_tokens_per_second: 0,
                tts_first_byte_ms: 0,
            });
        }
        for part in spec.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').with_context(|| format!("{part:?} is not key=value"))?;
            let value: u64 = value.parse().with_context(|| format!("{part:?}: not a number"))?;
            match key {
                "stt" => d.stt_final_ms = value,
                "llm" => d.llm_first_token_ms = value,
                "tps" => d.llm_tokens_per_second = value as u32,
                "tts" => d.tts_first_byte_ms = value,
                other => bail!("unknown delay {other:?} (stt, llm, tps, tts)"),
            }
        }
        Ok(d)
    }
}

struct Args {
    /// One run per entry (`--calls N`, or `--sweep A,B,C` for the calls-vs-latency curve).
    calls: Vec<usize>,
    lines: usize,
    duration: Option<Duration>,
    delays: Delays,
    /// Each call's second line is spoken over the agent's reply.
    barge_in: bool,
    /// Milliseconds of agent speech per character of reply text (a real voice: about 65).
    pace_ms: usize,
    /// Server on CPU 0, this harness (callers and vendor fakes) on CPU 1.
    pin: bool,
    /// New calls a second, for `--duration`, instead of N at once.
    arrival_rate: Option<f64>,
    /// Another build of the server to run instead of this one (to compare two builds on
    /// the same machine, one run after the other).
    server_bin: Option<String>,
    role: Role,
    /// `--vendors FILE`: where a `--role vendors` process serves (its JSON line).
    vendors_file: Option<String>,
    server_cpus: String,
    harness_cpus: String,
    /// Where a vendors child runs (default: with the harness).
    vendor_cpus: Option<String>,
    /// The server runs its offline engines; the callers speak real words.
    local_engines: bool,
}

/// What this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Vendor fakes and callers.
    All,
    /// Callers only; the vendors run in another process.
    Callers,
    /// Vendor fakes only, for a `callers` process.
    Vendors,
}

fn args() -> anyhow::Result<Args> {
    let mut out = Args {
        calls: vec![20],
        lines: 4,
        duration: None,
        delays: Delays::parse("")?,
        barge_in: false,
        pace_ms: 65,
        pin: false,
        server_bin: None,
        arrival_rate: None,
        role: Role::All,
        vendors_file: None,
        server_cpus: "0".into(),
        harness_cpus: "1".into(),
        vendor_cpus: None,
        local_engines: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--calls" => out.calls = vec![value()?.parse()?],
            "--sweep" => {
                out.calls = value()?.split(',').map(|n| n.trim().parse()).collect::<Result<_, _>>()?;
            }
            "--lines" => out.lines = value()?.parse()?,
            "--duration" => out.duration = Some(Duration::from_secs(value()?.parse()?)),
            "--provider-delays" => out.delays = Delays::parse(&value()?)?,
            "--barge-in" => out.barge_in = true,
            "--pace" => out.pace_ms = value()?.parse()?,
            "--pin" => out.pin = true,
            "--server-bin" => out.server_bin = Some(value()?),
            "--arrival-rate" => {
                let rate: f64 = value()?.parse()?;
                if !(rate > 0.0 && rate <= 10_000.0) {
                    bail!("--arrival-rate must be between 0 and 10000 calls a second");
                }
                out.arrival_rate = Some(rate);
            }
            "--role" => {
                out.role = match value()?.as_str() {
                    "all" => Role::All,
                    "callers" => Role::Callers,
                    "vendors" => Role::Vendors,
                    other => bail!("--role {other:?}: all, callers or vendors"),
                }
            }
            "--vendors" => out.vendors_file = Some(value()?),
            "--server-cpus" => out.server_cpus = value()?,
            "--harness-cpus" => out.harness_cpus = value()?,
            "--vendor-cpus" => out.vendor_cpus = Some(value()?),
            "--local-engines" => out.local_engines = true,
            "--bench" => {}
            _ => {}
        }
    }
    if out.local_engines && (out.barge_in || out.role != Role::All) {
        bail!("--local-engines runs no vendor fakes and no barge-in: drop --barge-in and --role");
    }
    if out.calls.is_empty() || out.calls.contains(&0) {
        bail!("--calls/--sweep need at least one call");
    }
    Ok(out)
}

/// What a caller says to the offline engines: a booking call, as the local-pipeline bench.
const BOOKING_LINES: [&str; 5] = [
    "I would like to book an appointment please.",
    "My name is John Smith.",
    "Yes, that is right.",
    "The first one please.",
    "No, that is all. Thank you.",
];

/// The simulated caller's voice: a tone as long as the line would take to say (no speech
/// engine, so a thousand callers cost the harness little).
struct ToneVoice;

impl TextToSpeech for ToneVoice {
    fn name(&self) -> &'static str {
        "tone"
    }
    fn synthesize(&self, request: TtsRequest) -> TtsAudio {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let samples = request.text.chars().count() * 8 * 55; // about 55 ms a character
        let audio: Vec<u8> = (0..samples)
            .map(|i| mulaw::encode(((i as f32 * 300.0 * std::f32::consts::TAU / 8000.0).sin() * 9000.0) as i16))
            .collect();
        let _ = tx.try_send(Ok(audio));
        rx
    }
}

/// CPU seconds (user + system, with its finished children) and peak resident memory of a
/// process.
fn process_usage(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command name: state is field 0, utime 11, stime 12, and the same of the
    // children it has waited for 13 and 14 (clock ticks, 100 Hz). The offline voice runs
    // espeak-ng as a child process per sentence: its CPU is the server's too.
    let cpu = (ticks(11) + ticks(12) + ticks(13) + ticks(14)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (cpu, kib("VmHWM:"), kib("VmRSS:"))
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
    }
}

/// What the modeled model says every turn.
const REPLY: &str = "Sure, I can help with that. Is there anything else you need today?";

/// How long the modeled model takes, after its first token, to stream the first clause the
/// server can send to synthesis (tokens of 4 characters, as the fake streams them).
fn first_clause_ms(text: &str, tokens_per_second: u32) -> f64 {
    if tokens_per_second == 0 {
        return 0.0;
    }
    let chars: Vec<char> = text.chars().collect();
    let mut buffer = String::new();
    for (i, token) in chars.chunks(4).enumerate() {
        buffer.extend(token);
        if !split_sentences(&buffer).0.is_empty() {
            return i as f64 * 1000.0 / tokens_per_second as f64;
        }
    }
    (chars.len().div_ceil(4).saturating_sub(1)) as f64 * 1000.0 / tokens_per_second as f64
}

/// Where the modeled vendors listen: what a `--role vendors` process prints.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct VendorAddresses {
    deepgram_url: String,
    openai_base_url: String,
    openai_api_key: String,
    elevenlabs_url: String,
}

/// The vendor fakes, when they run in this process.
struct LocalVendors {
    dg: FakeDeepgram,
    llm: FakeOpenAi,
    tts: FakeElevenLabs,
}

/// The modeled vendors, shared by every run of a sweep: here, or in another process.
struct Vendors {
    addresses: VendorAddresses,
    local: Option<LocalVendors>,
    /// A `--role vendors` child; it stops when its standard input closes.
    child: Option<Child>,
}

impl Drop for Vendors {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The sentence the fake recogniser hears for every caller line.
fn heard(i: usize) -> String {
    format!("yes please that sounds good number {i}")
}

/// Final transcripts a run of `n` calls needs (each line, plus slack for fillers).
fn transcripts_for(args: &Args, n: usize) -> usize {
    if let Some(rate) = args.arrival_rate {
        let calls = (rate * arrival_window(args).as_secs_f64()).ceil() as usize + 1;
        return calls * (args.lines + 2);
    }
    let rounds = args.duration.map_or(1, |t| t.as_secs() as usize / 15 + 2);
    n * (args.lines + 2) * rounds
}

/// How long a steady stream of calls keeps arriving.
fn arrival_window(args: &Args) -> Duration {
    args.duration.unwrap_or(Duration::from_secs(60))
}

async fn local_vendors(args: &Args) -> LocalVendors {
    let d = args.delays;
    let dg = FakeDeepgram::start().await;
    dg.final_delay(Duration::from_millis(d.stt_final_ms));
    let llm = FakeOpenAi::start().await;
    llm.respond_with(move |_| {
        Script::text(REPLY)
            .first_token_delay(Duration::from_millis(d.llm_first_token_ms))
            .tokens_per_second(d.llm_tokens_per_second)
    });
    let tts = FakeElevenLabs::start_with(Knobs {
        first_byte_delay: Duration::from_millis(d.tts_first_byte_ms),
        max_contexts: 1000,
        ms_per_char: args.pace_ms,
        ..Knobs::default()
    })
    .await;
    LocalVendors { dg, llm, tts }
}

fn addresses_of(local: &LocalVendors) -> VendorAddresses {
    VendorAddresses {
        deepgram_url: local.dg.url(),
        openai_base_url: local.llm.base_url(),
        openai_api_key: local.llm.api_key().to_owned(),
        elevenlabs_url: local.tts.base_url(),
    }
}

async fn vendors(args: &Args) -> anyhow::Result<Vendors> {
    match (args.role, &args.vendors_file) {
        (Role::Callers, Some(file)) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
            let addresses =
                serde_json::from_str(text.trim()).with_context(|| format!("{file} is not a vendors line"))?;
            Ok(Vendors { addresses, local: None, child: None })
        }
        (Role::Callers, None) => spawn_vendors(args),
        _ => {
            let local = local_vendors(args).await;
            Ok(Vendors { addresses: addresses_of(&local), local: Some(local), child: None })
        }
    }
}

/// Starts `--role vendors` as a child with this run's arguments, pinned where asked, and
/// reads the addresses it prints.
fn spawn_vendors(args: &Args) -> anyhow::Result<Vendors> {
    use std::io::BufRead as _;
    let exe = std::env::current_exe()?;
    let mut passed: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = passed.iter().position(|a| a == "--role") {
        passed.drain(i..(i + 2).min(passed.len()));
    }
    let mut command = match (&args.pin, &args.vendor_cpus) {
        (true, cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpus.as_deref().unwrap_or(&args.harness_cpus)]).arg(&exe);
            c
        }
        (false, _) => Command::new(&exe),
    };
    let mut child = command
        .args(&passed)
        .args(["--role", "vendors"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the vendors process")?;
    let stdout = child.stdout.take().context("the vendors process has no output")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line).context("reading the vendors' addresses")?;
    let addresses = serde_json::from_str(line.trim()).with_context(|| format!("not a vendors line: {line:?}"))?;
    Ok(Vendors { addresses, local: None, child: Some(child) })
}

/// `--role vendors`: the fakes with every transcript the runs will need, their addresses
/// on standard output, served until standard input closes.
async fn serve_vendors(args: &Args) -> anyhow::Result<()> {
    let local = local_vendors(args).await;
    let total: usize = args.calls.iter().map(|&n| transcripts_for(args, n)).sum();
    for i in 0..total {
        local.dg.say_next([heard(i)]);
    }
    println!("{}", serde_json::to_string(&addresses_of(&local))?);
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    })
    .await?;
    Ok(())
}

/// What one run measured.
struct Run {
    calls: usize,
    server_added: Vec<f64>,
    voice_to_voice: Vec<f64>,
    barge_in: Vec<f64>,
    late_frames: u64,
    cpu_cores: f64,
    rss_samples: Vec<(f64, f64)>,
    summary: serde_json::Value,
}

async fn start_server(
    args: &Args,
    db: &str,
    v: &Vendors,
    log: &std::path::Path,
) -> anyhow::Result<(Server, u32, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let base_url = format!("http://127.0.0.1:{port}");
    let bin = args.server_bin.as_deref().unwrap_or(env!("CARGO_BIN_EXE_ringlypro"));
    let mut command = if args.pin {
        let mut c = Command::new("taskset");
        c.args(["-c", &args.server_cpus, bin]);
        c
    } else {
        Command::new(bin)
    };
    command.arg("serve");
    if args.local_engines {
        for key in ["DEEPGRAM_API_KEY", "OPENAI_API_KEY", "ELEVENLABS_API_KEY"] {
            command.env_remove(key);
        }
    } else {
        command
            .env("DEEPGRAM_API_KEY", FakeDeepgram::API_KEY)
            .env("DEEPGRAM_URL", &v.addresses.deepgram_url)
            .env("OPENAI_API_KEY", &v.addresses.openai_api_key)
            .env("OPENAI_BASE_URL", &v.addresses.openai_base_url)
            .env("ELEVENLABS_API_KEY", fakes::elevenlabs::API_KEY)
            .env("ELEVENLABS_URL", &v.addresses.elevenlabs_url);
    }
    let child = command
        .env("DATABASE_URL", db)
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("PUBLIC_URL", &base_url)
        .env("RUST_LOG", "warn")
        .env("SHUTDOWN_GRACE_SECS", "5")
        .env("DATABASE_POOL_SIZE", "60")
        .env_remove("REDIS_URL")
        .env_remove("TWILIO_AUTH_TOKEN")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .context("starting ringlypro serve")?;
    let pid = child.id();
    let server = Server(child);
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if client.get(format!("{base_url}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the server did not become healthy");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((server, pid, base_url))
}

async fn run(args: &Args, n: usize, v: &Vendors, db: &str, pool: &sqlx::PgPool) -> anyhow::Result<Run> {
    let d = args.delays;
    let shape = match args.arrival_rate {
        Some(rate) => format!("{rate} new calls a second for {} s", arrival_window(args).as_secs()),
        None => format!("{n} concurrent calls"),
    };
    if args.local_engines {
        println!("\n=== {shape} on the offline engines, {} caller lines each ===", BOOKING_LINES.len());
    } else {
        println!(
            "\n=== {shape}, {} caller lines each{} ===",
            args.lines,
            if args.barge_in { ", barge-in on line 2" } else { "" }
        );
    }
    if let Some(local) = &v.local {
        for i in 0..transcripts_for(args, n) {
            local.dg.say_next([heard(i)]);
        }
    }
    let engines = if args.local_engines { "local-" } else { "" };
    let log = support::results_dir()?.join(format!("calls-server-{engines}{n}.log"));
    let (server, pid, base_url) = start_server(args, db, v, &log).await?;
    let (cpu_before, _, rss_idle) = process_usage(pid);
    let (harness_cpu_before, _, _) = process_usage(std::process::id());
    let vendors_pid = v.child.as_ref().map(Child::id);
    let (vendors_cpu_before, _, _) = vendors_pid.map_or((0.0, 0, 0), process_usage);

    // Memory over time, sampled every second until told to stop.
    let (stop_sampling, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sampler = {
        let started = Instant::now();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let (_, _, rss) = process_usage(pid);
                        samples.push((started.elapsed().as_secs_f64(), rss as f64));
                    }
                    _ = &mut stop_rx => return samples,
                }
            }
        })
    };

    // Calls: N at once, either one round or kept up for --duration.
    let voice: Arc<dyn TextToSpeech> =
        if args.local_engines { Arc::new(FliteTts::default()) } else { Arc::new(ToneVoice) };
    let run_until = args.duration.filter(|_| args.arrival_rate.is_none()).map(|d| Instant::now() + d);
    let (lines, barge_in, local_engines) = (args.lines, args.barge_in, args.local_engines);
    let mut placed = 0u32;
    let mut place = move || {
        placed += 1;
        // Every call is a different caller, as a business's concurrent calls are (one
        // caller in hundreds of calls at once would make its contact row the bottleneck).
        let caller = format!("+1555{:07}", 2_000_000 + placed);
        let script_lines = if local_engines {
            BOOKING_LINES.iter().map(|text| Line { text: (*text).into(), over_agent: false }).collect()
        } else {
            (0..lines)
                .map(|i| Line { text: "Yes please that sounds good.".into(), over_agent: barge_in && i == 1 })
                .collect()
        };
        let mut script = CallScript::new(&base_url, "+15550001111", &caller, script_lines);
        script.answer_gap = Duration::from_millis(400);
        // The vendor runs read every call's turns from the database once the run is over;
        // the offline runs keep each call's record to show what was heard.
        script.fetch_record = local_engines;
        let voice = voice.clone();
        tokio::spawn(async move { sim::place_call(&script, voice).await })
    };
    let mut live = futures::stream::FuturesUnordered::new();
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    let mut record = |result: Result<anyhow::Result<sim::Report>, tokio::task::JoinError>| match result {
        Ok(Ok(report)) => reports.push(report),
        Ok(Err(e)) => errors.push(format!("{e:#}")),
        Err(e) => errors.push(format!("call task: {e}")),
    };
    let run_started = Instant::now();
    let mut peak_live = 0;
    if let Some(rate) = args.arrival_rate {
        // A steady stream: a new call every 1/rate s for the window, then the last ones end.
        let until = Instant::now() + arrival_window(args);
        let mut arrivals = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        loop {
            let arriving = Instant::now() < until;
            tokio::select! {
                _ = arrivals.tick(), if arriving => {
                    live.push(place());
                    peak_live = peak_live.max(live.len());
                }
                Some(result) = futures::StreamExt::next(&mut live) => record(result),
                else => break,
            }
        }
    } else {
        // Start the calls over one second, as a busy hour's calls would not all ring at once.
        for _ in 0..n {
            live.push(place());
            tokio::time::sleep(Duration::from_micros(1_000_000 / n as u64)).await;
        }
        peak_live = n;
        while let Some(result) = futures::StreamExt::next(&mut live).await {
            record(result);
            if run_until.is_some_and(|t| Instant::now() < t) {
                live.push(place());
            }
        }
    }
    // Per-call figures are per concurrent call: the most that were live at once.
    let n = peak_live.max(1);
    let (cpu_after, peak_rss, _) = process_usage(pid);
    let (harness_cpu_after, _, _) = process_usage(std::process::id());
    let harness_cores = (harness_cpu_after - harness_cpu_before) / run_started.elapsed().as_secs_f64();
    let (vendors_cpu_after, _, _) = vendors_pid.map_or((0.0, 0, 0), process_usage);
    let vendors_cores = (vendors_cpu_after - vendors_cpu_before) / run_started.elapsed().as_secs_f64();
    let wall = run_started.elapsed().as_secs_f64();
    let _ = stop_sampling.send(());
    let rss_samples = sampler.await.unwrap_or_default();
    drop(server);

    // Figures.
    let clause_ms = first_clause_ms(REPLY, d.llm_tokens_per_second);
    let (mut server_added, mut to_first_token, mut token_to_tts, mut tts_to_sent) = (vec![], vec![], vec![], vec![]);
    for r in &reports {
        let Some(call) = calls::find_by_sid(pool, &r.call_sid).await? else { continue };
        for t in calls::turns(pool, call.id)
            .await?
            .iter()
            .filter(|t| t.speaker == Speaker::Agent && t.stt_final_at.is_some())
        {
            let total = ms(t.stt_final_at, t.first_audio_sent_at);
            let llm_wait = ms(t.stt_final_at, t.reply_ready_at).map(|v| v.max(0.0));
            let tts_wait = ms(t.reply_ready_at, t.tts_first_byte_at);
            if local_engines {
                // No vendor: the dialogue and the first words of espeak-ng are ours.
                server_added.extend(total);
            } else if let (Some(total), Some(llm_wait)) = (total, llm_wait) {
                // Ours: everything but the modeled vendors: the model's first token, the
                // model streaming the first clause (none when an early start had the reply
                // ready at the final), and the synthesizer's first byte.
                let streaming = if llm_wait > 1.0 { clause_ms } else { 0.0 };
                server_added.push(total - llm_wait - streaming - d.tts_first_byte_ms as f64);
            }
            to_first_token.extend(ms(t.stt_final_at, t.reply_ready_at));
            token_to_tts.extend(tts_wait);
            tts_to_sent.extend(ms(t.tts_first_byte_at, t.first_audio_sent_at));
        }
    }
    if server_added.is_empty() {
        bail!("{n} calls ended without one agent turn (see {}): the measurement would be empty", log.display());
    }
    let millis = |d: &Duration| d.as_secs_f64() * 1000.0;
    let voice_to_voice: Vec<f64> = reports.iter().flat_map(|r| r.response_times.iter().map(millis)).collect();
    let barge_in: Vec<f64> = reports.iter().flat_map(|r| r.barge_in_times.iter().map(millis)).collect();
    let late: Vec<u64> = reports.iter().map(|r| r.late_frames).collect();
    let marks_after_clear: usize = reports.iter().map(|r| r.marks_after_clear).sum();
    let completed = reports.len().max(1) as f64;
    // Endpointing silence the recogniser waits for (300 ms), then the modeled delays.
    let floor = 300.0 + (d.stt_final_ms + d.llm_first_token_ms + d.tts_first_byte_ms) as f64;
    println!("{} calls completed in {wall:.1} s, at most {n} at once, {} errors", reports.len(), errors.len());
    let stages = vec![
        percentiles("server-added (STT final -> first frame, minus vendors)", server_added.clone()),
        percentiles("STT final -> first LLM token (modeled + early start)", to_first_token),
        percentiles("first LLM token -> first TTS byte", token_to_tts),
        percentiles("first TTS byte -> first frame sent", tts_to_sent),
        percentiles("voice to voice (caller's last frame -> agent audio)", voice_to_voice.clone()),
        percentiles("barge-in (caller's first frame over agent -> clear)", barge_in.clone()),
    ];
    let v2v_p50 = stages[4]["p50_ms"].as_f64().unwrap_or(f64::NAN);
    if args.local_engines {
        let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
        for r in &reports {
            *outcomes.entry(r.outcome.clone()).or_default() += 1;
        }
        println!("call outcomes: {outcomes:?}");
        // What was said, to read why a call did not book.
        let records: Vec<&serde_json::Value> = reports.iter().map(|r| &r.record).collect();
        support::write_results(&format!("calls-local-{n}-records.json"), &json!(records))?;
    } else {
        println!(
            "modeled provider floor {floor:.0} ms (endpointing 300 + stt + llm + tts); voice-to-voice p50 is {:+.1} ms from it",
            v2v_p50 - floor
        );
    }
    let total_late: u64 = late.iter().sum();
    let calls_with_late = late.iter().filter(|l| **l > 0).count();
    let cpu = cpu_after - cpu_before;
    let rss_per_call = peak_rss.saturating_sub(rss_idle) as f64 / n as f64;
    println!(
        "late outbound frames: {total_late} in total, {calls_with_late} calls with any; marks of a cleared turn after its clear: {marks_after_clear}"
    );
    println!(
        "server CPU {cpu:.2} s over {wall:.1} s ({:.3} cores, {:.3} CPU-s per call); peak RSS {peak_rss} KiB (idle {rss_idle} KiB, {rss_per_call:.0} KiB per concurrent call)",
        cpu / wall,
        cpu / completed,
    );
    for e in errors.iter().take(5) {
        println!("error: {e}");
    }
    let server_log = std::fs::read_to_string(&log).unwrap_or_default();
    let (warnings, server_errors) = (server_log.matches("WARN").count(), server_log.matches("ERROR").count());
    if vendors_pid.is_some() {
        println!("harness CPU: callers {harness_cores:.3} cores, vendor fakes {vendors_cores:.3} cores");
    } else if v.local.is_none() {
        println!("harness CPU: callers {harness_cores:.3} cores (the vendor fakes run elsewhere)");
    } else {
        println!("harness (callers and vendor fakes) CPU: {harness_cores:.3} cores");
    }
    println!("server log: {warnings} warnings, {server_errors} errors ({})", log.display());
    let summary = json!({
        "calls": n, "local_engines": args.local_engines, "lines_per_call": args.lines, "barge_in": args.barge_in, "pinned": args.pin,
        "delays": format!("{d:?}"), "pace_ms_per_char": args.pace_ms, "completed": reports.len(),
        "errors": errors, "server_log_warnings": warnings, "server_log_errors": server_errors, "stages": stages, "modeled_floor_ms": floor, "late_frames_total": total_late,
        "calls_with_late_frames": calls_with_late, "marks_after_clear": marks_after_clear,
        "server_cpu_seconds": cpu, "harness_cores": harness_cores, "vendor_process_cores": vendors_cores, "wall_seconds": wall, "server_cores": cpu / wall,
        "peak_rss_kib": peak_rss, "idle_rss_kib": rss_idle, "rss_per_call_kib": rss_per_call,
        "rss_over_time_kib": rss_samples,
    });
    Ok(Run {
        calls: n,
        server_added,
        voice_to_voice,
        barge_in,
        late_frames: total_late,
        cpu_cores: cpu / wall,
        rss_samples,
        summary,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = args()?;
    if args.pin && args.role != Role::Vendors {
        // This process on the harness's CPUs, the server on its own.
        let status = Command::new("taskset")
            .args(["-a", "-p", "-c", &args.harness_cpus, &std::process::id().to_string()])
            .stdout(Stdio::null())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            bail!("--pin needs taskset (util-linux) and two CPUs");
        }
    }
    if args.role == Role::Vendors {
        return serve_vendors(&args).await;
    }
    println!(
        "calls {:?}, {} caller lines each, delays {:?}, duration {:?}, pace {} ms/char, pinned {} (server on {}, harness on {}), role {:?}",
        args.calls,
        args.lines,
        args.delays,
        args.duration,
        args.pace_ms,
        args.pin,
        args.server_cpus,
        args.harness_cpus,
        args.role
    );
    let v = vendors(&args).await?;
    let (db, pool) = support::database(Some("Hello, Bright Smile Dental, how can I help?")).await?;
    let mut runs = Vec::new();
    for &n in &args.calls {
        runs.push(run(&args, n, &v, &db, &pool).await?);
    }
    pool.close().await;

    // Results and plots.
    let tag = if args.local_engines && args.calls.len() > 1 {
        "local-sweep".to_owned()
    } else if args.local_engines {
        format!("local-{}", args.calls[0])
    } else if let Some(rate) = args.arrival_rate {
        format!("arrival-{rate}")
    } else if args.calls.len() > 1 {
        "sweep".to_owned()
    } else if args.duration.is_some() {
        format!("soak-{}", args.calls[0])
    } else {
        args.calls[0].to_string()
    };
    let dir = support::results_dir()?;
    support::write_results(&format!("calls-{tag}.json"), &json!(runs.iter().map(|r| &r.summary).collect::<Vec<_>>()))?;
    let last = runs.last().context("no run")?;
    let mut distributions = vec![
        Series { name: "server-added (STT final -> first frame, minus vendors)", points: cdf(&last.server_added) },
        Series { name: "voice to voice", points: cdf(&last.voice_to_voice) },
    ];
    if !last.barge_in.is_empty() {
        distributions.push(Series { name: "barge-in (caller speaks -> clear)", points: cdf(&last.barge_in) });
    }
    for s in &distributions {
        plots::lines(
            &dir.join(format!(
                "calls-{tag}-{}.svg",
                s.name.split_whitespace().next().unwrap_or("latency").trim_end_matches(':')
            )),
            &format!("{} at {} concurrent calls", s.name, last.calls),
            "milliseconds",
            "fraction of turns at or below",
            std::slice::from_ref(s),
            false,
        )?;
    }
    if runs.len() > 1 {
        let curve = |f: &dyn Fn(&Run) -> f64| runs.iter().map(|r| (r.calls as f64, f(r))).collect::<Vec<_>>();
        let pick = |r: &Run, stage: usize, p: &str| r.summary["stages"][stage][p].as_f64().unwrap_or(0.0);
        plots::lines(
            &dir.join(format!("calls-{tag}-latency.svg")),
            "Server-added turn latency against concurrent calls",
            "concurrent calls",
            "milliseconds",
            &[
                Series { name: "p50", points: curve(&|r| pick(r, 0, "p50_ms")) },
                Series { name: "p99", points: curve(&|r| pick(r, 0, "p99_ms")) },
            ],
            true,
        )?;
        plots::lines(
            &dir.join(format!("calls-{tag}-late-frames.svg")),
            "Late outbound frames and server CPU against concurrent calls",
            "concurrent calls",
            "late frames per call / server cores x 10",
            &[
                Series { name: "late frames per call", points: curve(&|r| r.late_frames as f64 / r.calls as f64) },
                Series { name: "server cores x 10", points: curve(&|r| r.cpu_cores * 10.0) },
            ],
            true,
        )?;
    }
    if args.duration.is_some() {
        let points: Vec<(f64, f64)> = last.rss_samples.iter().map(|(t, kib)| (*t / 60.0, *kib / 1024.0)).collect();
        plots::lines(
            &dir.join(format!("calls-{tag}-rss.svg")),
            &format!("Server resident memory, {} calls kept live", last.calls),
            "minutes",
            "MiB",
            &[Series { name: "RSS", points }],
            false,
        )?;
    }
    Ok(())
}
