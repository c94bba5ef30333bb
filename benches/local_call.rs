//! Turn latency of the offline pipeline, measured on whole booking calls through the real
//! server: flite speaks for the caller, PocketSphinx hears, the local engine answers,
//! espeak-ng speaks. Prints per-stage percentiles and writes them as JSON.
//!
//! `cargo bench --bench local_call -- [CALLS]` (default 3 calls; needs PostgreSQL).

use std::sync::Arc;
use std::time::Duration;

use ringlypro::call::CallSettings;
use ringlypro::config::Config;
use ringlypro::domain::calls::Speaker;
use ringlypro::providers::tts::flite::FliteTts;
use ringlypro::sim::{self, Line, Script};
use ringlypro::startup::{Application, local_engines};
use ringlypro::storage::postgres::calls;
use support::{ms, percentiles as summary};

mod support;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let calls_wanted: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(3);
    let (db, pool) = support::database(None).await?;
    let vars = [("DATABASE_URL", db.clone()), ("BIND", "127.0.0.1:0".to_string()), ("SHUTDOWN_GRACE_SECS", "5".into())];
    let config = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))?;
    let app = Application::build(config.clone(), local_engines(&config).await?, CallSettings::default()).await?;
    let base_url = app.state().config.public_url.clone();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stop_rx.await;
    }));

    let lines = [
        "I would like to book an appointment please.",
        "My name is John Smith.",
        "Yes, that is right.",
        "The first one please.",
        "No, that is all. Thank you.",
    ];
    let (mut server_added, mut reply_ready, mut tts_first, mut to_mark, mut caller_wait) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut outcomes = Vec::new();
    for _ in 0..calls_wanted {
        let script = Script::new(
            &base_url,
            "+15550001111",
            "+15557654321",
            lines.iter().map(|l| Line { text: (*l).into(), over_agent: false }).collect(),
        );
        let report = sim::place_call(&script, Arc::new(FliteTts::default())).await?;
        outcomes.push(report.outcome.clone());
        caller_wait.extend(report.response_times.iter().map(|d: &Duration| d.as_secs_f64() * 1000.0));
        let call = calls::find_by_sid(&pool, &report.call_sid).await?.expect("call recorded");
        for t in calls::turns(&pool, call.id)
            .await?
            .iter()
            .filter(|t| t.speaker == Speaker::Agent && t.stt_final_at.is_some())
        {
            server_added.extend(ms(t.stt_final_at, t.first_audio_sent_at));
            reply_ready.extend(ms(t.stt_final_at, t.reply_ready_at));
            tts_first.extend(ms(t.reply_ready_at, t.tts_first_byte_at));
            to_mark.extend(ms(t.first_audio_sent_at, t.first_mark_at));
        }
    }
    println!("\nlocal pipeline, {calls_wanted} booking calls, outcomes {outcomes:?}");
    let results = vec![
        summary("STT final -> first audio frame sent (server)", server_added),
        summary("  STT final -> reply decided (dialogue+DB)", reply_ready),
        summary("  reply decided -> first TTS audio (espeak)", tts_first),
        summary("first audio sent -> first mark echoed", to_mark),
        summary("caller's last frame -> first agent audio", caller_wait),
    ];
    support::write_results("local_call.json", &serde_json::json!({ "calls": calls_wanted, "stages": results }))?;
    let _ = stop.send(());
    server.await??;
    pool.close().await;
    Ok(())
}
