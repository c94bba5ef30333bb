//! Turn latency of the offline pipeline, measured on whole booking calls through the real
//! server: flite speaks for the caller, PocketSphinx hears, the local engine answers,
//! espeak-ng speaks. Prints per-stage percentiles and writes them as JSON.
//!
//! `cargo bench --bench local_call -- [CALLS]` (default 3 calls; needs PostgreSQL).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ringlypro::call::CallSettings;
use ringlypro::cli::{TenantAddArgs, add_tenant};
use ringlypro::config::Config;
use ringlypro::providers::tts::flite::FliteTts;
use ringlypro::sim::{self, Line, Script};
use ringlypro::startup::{Application, local_engines};
use ringlypro::storage::postgres::{self, calls};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Option<f64> {
    Some((to? - from?).num_microseconds()? as f64 / 1000.0)
}

fn summary(name: &str, mut values: Vec<f64>) -> serde_json::Value {
    values.sort_by(f64::total_cmp);
    let (p50, p95, max) =
        (percentile(&values, 50.0), percentile(&values, 95.0), values.last().copied().unwrap_or(f64::NAN));
    println!("{name:<46} n={:<3} p50={p50:>8.1} ms  p95={p95:>8.1} ms  max={max:>8.1} ms", values.len());
    serde_json::json!({ "stage": name, "n": values.len(), "p50_ms": p50, "p95_ms": p95, "max_ms": max })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let calls_wanted: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(3);
    let base =
        std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db =
        format!("{}/ringlypro_bench_{}", &base[..base.rfind('/').unwrap_or(base.len())], uuid::Uuid::new_v4().simple());
    let vars = [("DATABASE_URL", db.clone()), ("BIND", "127.0.0.1:0".to_string()), ("SHUTDOWN_GRACE_SECS", "5".into())];
    let config = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))?;
    let pool = postgres::connect(&db).await?;
    postgres::migrate(&pool).await?;
    add_tenant(
        &pool,
        &TenantAddArgs {
            name: "Bright Smile Dental".into(),
            number: "+15550001111".into(),
            owner_phone: "+15551230000".into(),
            timezone: "America/New_York".into(),
            days: "mon-sun".into(),
            hours: "00:00-23:30".into(),
            slot_minutes: 30,
            buffer_minutes: 0,
            greeting: None,
            services: "cleanings are $99".into(),
            description: String::new(),
            owner_name: String::new(),
            language: "en".into(),
        },
    )
    .await?;
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
        for t in calls::turns(&pool, call.id).await?.iter().filter(|t| t.speaker == "agent" && t.stt_final_at.is_some())
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
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let out_dir = target.join("bench-results");
    std::fs::create_dir_all(&out_dir)?;
    let path = out_dir.join("local_call.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&serde_json::json!({ "calls": calls_wanted, "stages": results }))?,
    )?;
    println!("written to {}", path.display());
    let _ = stop.send(());
    server.await??;
    pool.close().await;
    Ok(())
}
