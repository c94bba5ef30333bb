//! Server-added turn latency of the cloud pipeline with the vendors faked at zero delay:
//! fake Deepgram (final at once), a fake OpenAI-compatible model (instant tokens) and fake
//! ElevenLabs (first byte at once) on loopback, simulated Twilio calls against the real
//! server. What remains between "STT final" and "first audio frame sent" is ours.
//!
//! `cargo bench --bench turn_latency -- [CALLS] [CONCURRENT]` (default 20 calls, 4 at a
//! time, 6 caller turns each; needs PostgreSQL).

#[path = "../tests/fakes/mod.rs"]
mod fakes;
mod support;

use std::sync::Arc;
use std::time::Duration;

use fakes::deepgram::FakeDeepgram;
use fakes::elevenlabs::{FakeElevenLabs, Knobs};
use fakes::openai::{FakeOpenAi, Script};
use ringlypro::call::CallSettings;
use ringlypro::call::engines::Engines;
use ringlypro::config::Config;
use ringlypro::domain::calls::Speaker;
use ringlypro::providers::llm::openai::OpenAiLlm;
use ringlypro::providers::stt::deepgram::{DeepgramConfig, DeepgramStt};
use ringlypro::providers::tts::elevenlabs::{ElevenLabsConfig, ElevenLabsTts};
use ringlypro::providers::tts::flite::FliteTts;
use ringlypro::sim::{self, Line, Script as CallScript};
use ringlypro::startup::{Application, local_engines};
use ringlypro::storage::postgres::calls;
use support::{ms, percentiles as report};

const LINES_PER_CALL: usize = 6;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let numbers: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let total_calls = numbers.first().copied().unwrap_or(20);
    let concurrent = numbers.get(1).copied().unwrap_or(4).max(1);

    let dg = FakeDeepgram::start().await;
    dg.final_delay(Duration::ZERO);
    for i in 0..total_calls * LINES_PER_CALL * 3 {
        dg.say_next([format!("this is caller sentence number {i}")]);
    }
    let llm = FakeOpenAi::start().await;
    llm.respond_with(|_| Script::text("Sure, I can help with that. What else can I do for you?").instant());
    let tts = FakeElevenLabs::start_with(Knobs { first_byte_delay: Duration::ZERO, ..Knobs::default() }).await;

    let (db, pool) = support::database(Some("Hello, Bright Smile Dental.")).await?;
    let vars = [("DATABASE_URL", db.clone()), ("BIND", "127.0.0.1:0".to_string()), ("SHUTDOWN_GRACE_SECS", "5".into())];
    let config = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))?;

    let local = local_engines(&config).await?;
    let mut dg_config = DeepgramConfig::new(FakeDeepgram::API_KEY);
    dg_config.base_url = dg.url();
    let mut el_config = ElevenLabsConfig::new(fakes::elevenlabs::API_KEY);
    el_config.base_url = tts.base_url();
    let engines = Engines {
        stt: Arc::new(DeepgramStt::new(dg_config)),
        stt_fallback: Some(local.stt.clone()),
        tts: Arc::new(ElevenLabsTts::new(el_config)),
        tts_fallback: Some(local.tts.clone()),
        llm: Some(Arc::new(OpenAiLlm::new(llm.config())?)),
        breakers: local.breakers.clone(),
    };
    let app = Application::build(config, engines, CallSettings::default()).await?;
    let base_url = app.state().config.public_url.clone();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stop_rx.await;
    }));

    let voice = Arc::new(FliteTts::default());
    let mut call_sids = Vec::new();
    let mut done = 0;
    while done < total_calls {
        let batch = concurrent.min(total_calls - done);
        let mut tasks = Vec::new();
        for _ in 0..batch {
            let lines = (0..LINES_PER_CALL)
                .map(|_| Line { text: "Yes please that sounds good.".into(), over_agent: false })
                .collect();
            let mut script = CallScript::new(&base_url, "+15550001111", "+15557654321", lines);
            script.answer_gap = Duration::from_millis(400);
            let voice = voice.clone();
            tasks.push(tokio::spawn(async move { sim::place_call(&script, voice).await }));
        }
        for t in tasks {
            call_sids.push(t.await??.call_sid);
        }
        done += batch;
        println!("{done}/{total_calls} calls done");
    }

    let (mut server_added, mut to_first_token, mut token_to_tts, mut tts_to_sent, mut to_mark) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for sid in &call_sids {
        let call = calls::find_by_sid(&pool, sid).await?.expect("recorded");
        for t in calls::turns(&pool, call.id)
            .await?
            .iter()
            .filter(|t| t.speaker == Speaker::Agent && t.stt_final_at.is_some())
        {
            server_added.extend(ms(t.stt_final_at, t.first_audio_sent_at));
            to_first_token.extend(ms(t.stt_final_at, t.reply_ready_at));
            token_to_tts.extend(ms(t.reply_ready_at, t.tts_first_byte_at));
            tts_to_sent.extend(ms(t.tts_first_byte_at, t.first_audio_sent_at));
            to_mark.extend(ms(t.first_audio_sent_at, t.first_mark_at));
        }
    }
    println!("\ncloud pipeline, fakes at zero delay: {total_calls} calls, {concurrent} at a time");
    let stages = vec![
        report("STT final -> first audio frame sent", server_added),
        report("  STT final -> first LLM token", to_first_token),
        report("  first LLM token -> first TTS byte", token_to_tts),
        report("  first TTS byte -> first audio frame sent", tts_to_sent),
        report("first audio sent -> first mark echoed", to_mark),
    ];
    support::write_results("turn_latency.json", &serde_json::json!({"calls": total_calls, "stages": stages}))?;
    let _ = stop.send(());
    server.await??;
    Ok(())
}
