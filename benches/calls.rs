//! Load harness: the real server (`ringlypro serve`, its own process) against fake vendors
//! that model real providers' delays, driven by N concurrent simulated Twilio calls over
//! loopback. Prints per-stage latency percentiles, voice-to-voice time, late outbound frames,
//! the server's CPU seconds and peak memory per call, and writes them as JSON.
//!
//! `cargo bench --bench calls -- --calls 50 --lines 4 --provider-delays stt=250,llm=250,tps=40,tts=100`
//! (`--provider-delays zero` sets every modeled delay to 0; `--duration SECS` keeps N calls
//! live for that long, starting a new call as each one ends).

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
use ringlypro::providers::tts::{TextToSpeech, TtsAudio, TtsRequest};
use ringlypro::sim::{self, Line, Script as CallScript};
use ringlypro::storage::postgres::calls;
use serde_json::json;
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
    calls: usize,
    lines: usize,
    duration: Option<Duration>,
    delays: Delays,
}

fn args() -> anyhow::Result<Args> {
    let mut out = Args { calls: 20, lines: 4, duration: None, delays: Delays::parse("")? };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--calls" => out.calls = value()?.parse()?,
            "--lines" => out.lines = value()?.parse()?,
            "--duration" => out.duration = Some(Duration::from_secs(value()?.parse()?)),
            "--provider-delays" => out.delays = Delays::parse(&value()?)?,
            "--bench" => {}
            _ => {}
        }
    }
    Ok(out)
}

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

/// CPU seconds (user + system) and peak resident memory of a process.
fn process_usage(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command name: state is field 0, utime 11, stime 12 (clock ticks, 100 Hz).
    let cpu = (ticks(11) + ticks(12)) / 100.0;
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = args()?;
    let d = args.delays;
    println!("{} calls, {} caller lines each, delays {:?}, duration {:?}", args.calls, args.lines, d, args.duration);

    // Vendors, modeled.
    let dg = FakeDeepgram::start().await;
    dg.final_delay(Duration::from_millis(d.stt_final_ms));
    let llm = FakeOpenAi::start().await;
    llm.respond_with(move |_| {
        let script = Script::text("Sure, I can help with that. Is there anything else you need today?")
            .first_token_delay(Duration::from_millis(d.llm_first_token_ms));
        if d.llm_tokens_per_second == 0 {
            script.tokens_per_second(0)
        } else {
            script.tokens_per_second(d.llm_tokens_per_second)
        }
    });
    let tts = FakeElevenLabs::start_with(Knobs {
        first_byte_delay: Duration::from_millis(d.tts_first_byte_ms),
        max_contexts: 1000,
        ..Knobs::default()
    })
    .await;
    let transcripts = args.calls * (args.lines + 2) * if args.duration.is_some() { 200 } else { 2 };
    for i in 0..transcripts {
        dg.say_next([format!("yes please that sounds good number {i}")]);
    }

    // Database and tenant.
    let (db, pool) = support::database(Some("Hello, Bright Smile Dental, how can I help?")).await?;

    // The server, in its own process.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let base_url = format!("http://127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_ringlypro"))
        .arg("serve")
        .env("DATABASE_URL", &db)
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("PUBLIC_URL", &base_url)
        .env("DEEPGRAM_API_KEY", FakeDeepgram::API_KEY)
        .env("DEEPGRAM_URL", dg.url())
        .env("OPENAI_API_KEY", llm.api_key())
        .env("OPENAI_BASE_URL", llm.base_url())
        .env("ELEVENLABS_API_KEY", fakes::elevenlabs::API_KEY)
        .env("ELEVENLABS_URL", tts.base_url())
        .env("RUST_LOG", "warn")
        .env("SHUTDOWN_GRACE_SECS", "5")
        .env_remove("REDIS_URL")
        .env_remove("TWILIO_AUTH_TOKEN")
        .stdout(Stdio::null())
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
    let (cpu_before, _, rss_idle) = process_usage(pid);

    // Calls: N at once, either one round or kept up for --duration.
    let voice: Arc<dyn TextToSpeech> = Arc::new(ToneVoice);
    let run_until = args.duration.map(|d| Instant::now() + d);
    let lines = args.lines;
    let base_for_calls = base_url.clone();
    let place = move || {
        let script_lines =
            (0..lines).map(|_| Line { text: "Yes please that sounds good.".into(), over_agent: false }).collect();
        let mut script = CallScript::new(&base_for_calls, "+15550001111", "+15557654321", script_lines);
        script.answer_gap = Duration::from_millis(400);
        let voice = voice.clone();
        tokio::spawn(async move { sim::place_call(&script, voice).await })
    };
    let mut live: Vec<_> = (0..args.calls).map(|_| place()).collect();
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    let mut peak_rss = 0;
    let mut rss_samples = Vec::new();
    let run_started = Instant::now();
    while !live.is_empty() {
        let (result, _, rest) = futures::future::select_all(live).await;
        live = rest;
        match result {
            Ok(Ok(report)) => reports.push(report),
            Ok(Err(e)) => errors.push(format!("{e:#}")),
            Err(e) => errors.push(format!("call task: {e}")),
        }
        let (_, hwm, rss) = process_usage(pid);
        peak_rss = peak_rss.max(hwm);
        rss_samples.push((run_started.elapsed().as_secs_f64(), rss));
        if run_until.is_some_and(|t| Instant::now() < t) {
            live.push(place());
        }
    }
    let (cpu_after, hwm, _) = process_usage(pid);
    peak_rss = peak_rss.max(hwm);
    let wall = run_started.elapsed().as_secs_f64();

    // Figures.
    let (mut server_added, mut to_first_token, mut token_to_tts, mut tts_to_sent) = (vec![], vec![], vec![], vec![]);
    for r in &reports {
        let Some(call) = calls::find_by_sid(&pool, &r.call_sid).await? else { continue };
        for t in calls::turns(&pool, call.id).await?.iter().filter(|t| t.speaker == "agent" && t.stt_final_at.is_some())
        {
            let total = ms(t.stt_final_at, t.first_audio_sent_at);
            let llm_wait = ms(t.stt_final_at, t.reply_ready_at).map(|v| v.max(0.0));
            let tts_wait = ms(t.reply_ready_at, t.tts_first_byte_at);
            if let (Some(total), Some(llm_wait), Some(tts_wait)) = (total, llm_wait, tts_wait) {
                // Ours: everything but the model's wait and the modeled synthesis delay.
                let tts_ours = (tts_wait - d.tts_first_byte_ms as f64).max(0.0);
                server_added.push(total - llm_wait - tts_wait + tts_ours);
            }
            to_first_token.extend(ms(t.stt_final_at, t.reply_ready_at));
            token_to_tts.extend(tts_wait);
            tts_to_sent.extend(ms(t.tts_first_byte_at, t.first_audio_sent_at));
        }
    }
    let voice_to_voice: Vec<f64> =
        reports.iter().flat_map(|r| r.response_times.iter().map(|d| d.as_secs_f64() * 1000.0)).collect();
    let late_frames: Vec<u64> = reports.iter().map(|r| r.late_frames).collect();
    let calls_done = reports.len().max(1) as f64;
    println!("\n{} calls completed in {wall:.1} s, {} errors", reports.len(), errors.len());
    let stages = vec![
        percentiles("server-added (STT final -> first frame, minus vendors)", server_added),
        percentiles("STT final -> first LLM token (modeled + early start)", to_first_token),
        percentiles("first LLM token -> first TTS byte", token_to_tts),
        percentiles("first TTS byte -> first frame sent", tts_to_sent),
        percentiles("voice to voice (caller's last frame -> agent audio)", voice_to_voice),
    ];
    let total_late: u64 = late_frames.iter().sum();
    let calls_with_late = late_frames.iter().filter(|l| **l > 0).count();
    let cpu = cpu_after - cpu_before;
    println!("late outbound frames: {total_late} in total, {calls_with_late} calls with any");
    println!(
        "server CPU {cpu:.2} s over {wall:.1} s ({:.3} cores, {:.3} CPU-s per call); peak RSS {} KiB (idle {} KiB, {:.0} KiB per concurrent call)",
        cpu / wall,
        cpu / calls_done,
        peak_rss,
        rss_idle,
        (peak_rss.saturating_sub(rss_idle)) as f64 / args.calls as f64
    );
    for e in errors.iter().take(5) {
        println!("error: {e}");
    }
    let summary = json!({
        "calls": args.calls, "lines_per_call": args.lines, "delays": format!("{d:?}"), "completed": reports.len(),
        "errors": errors, "stages": stages, "late_frames_total": total_late, "calls_with_late_frames": calls_with_late,
        "server_cpu_seconds": cpu, "wall_seconds": wall, "peak_rss_kib": peak_rss, "idle_rss_kib": rss_idle,
        "rss_over_time_kib": rss_samples,
    });
    support::write_results(&format!("calls-{}.json", args.calls), &summary)?;
    drop(server);
    pool.close().await;
    Ok(())
}
