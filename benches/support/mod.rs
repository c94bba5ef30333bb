//! What the benchmarks share: a fresh database with the demo tenant, percentiles, where
//! results are written, and one utterance put through the local recogniser.
#![allow(dead_code)]

pub mod plots;

use ringlypro::cli::{TenantAddArgs, add_tenant};
use ringlypro::storage::postgres;
use serde_json::json;
use sqlx::PgPool;

/// The demo tenant's number; open every day, all day, so a run at any hour finds slots.
pub const NUMBER: &str = "+15550001111";

/// A fresh, migrated database with the demo tenant; returns its URL and a pool.
pub async fn database(greeting: Option<&str>) -> anyhow::Result<(String, PgPool)> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let base =
        std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let prefix = &base[..base.rfind('/').unwrap_or(base.len())];
    let db = format!("{prefix}/ringlypro_bench_{}", uuid::Uuid::new_v4().simple());
    let pool = postgres::connect(&db).await?;
    postgres::migrate(&pool).await?;
    add_tenant(
        &pool,
        &TenantAddArgs {
            name: "Bright Smile Dental".into(),
            number: NUMBER.into(),
            owner_phone: "+15551230000".into(),
            timezone: "America/New_York".into(),
            days: "mon-sun".into(),
            hours: "00:00-23:30".into(),
            slot_minutes: 30,
            buffer_minutes: 0,
            greeting: greeting.map(str::to_owned),
            services: "cleanings are $99".into(),
            description: String::new(),
            owner_name: String::new(),
            language: "en".into(),
            email: None,
            password: None,
        },
    )
    .await?;
    // Load runs use thousands of minutes: give the tenant credit for all of them, so no
    // run of a sweep finds the account locked and its calls sent to the owner.
    sqlx::query("UPDATE credit_accounts SET balance_cents = 1000000000").execute(&pool).await?;
    Ok((db, pool))
}

/// Prints one stage's percentiles (milliseconds) and returns them as JSON.
pub fn percentiles(name: &str, mut values: Vec<f64>) -> serde_json::Value {
    values.sort_by(f64::total_cmp);
    let pick = |p: f64| {
        if values.is_empty() {
            f64::NAN
        } else {
            values[((p / 100.0 * (values.len() - 1) as f64).round() as usize).min(values.len() - 1)]
        }
    };
    let (p50, p95, p99, max) = (pick(50.0), pick(95.0), pick(99.0), values.last().copied().unwrap_or(f64::NAN));
    println!("{name:<52} n={:<5} p50={p50:>8.2}  p95={p95:>8.2}  p99={p99:>8.2}  max={max:>8.2} ms", values.len());
    json!({"stage": name, "n": values.len(), "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": max})
}

/// Milliseconds between two recorded instants.
pub fn ms(from: Option<chrono::DateTime<chrono::Utc>>, to: Option<chrono::DateTime<chrono::Utc>>) -> Option<f64> {
    Some((to? - from?).num_microseconds()? as f64 / 1000.0)
}

/// Where results and plots go: `$CARGO_TARGET_DIR/bench-results/` (created).
pub fn results_dir() -> anyhow::Result<std::path::PathBuf> {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("bench-results");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Writes a result file under [`results_dir`] and says where.
pub fn write_results(file: &str, value: &serde_json::Value) -> anyhow::Result<()> {
    let path = results_dir()?.join(file);
    std::fs::write(&path, serde_json::to_string_pretty(value)?)?;
    println!("written to {}", path.display());
    Ok(())
}

/// The finals the local recogniser makes of one utterance of 8 kHz μ-law, fed as 20 ms
/// frames as fast as it takes them, followed by `trailing` silence so it can close the turn.
pub async fn recognise(
    stt: &ringlypro::providers::stt::sphinx::SphinxStt,
    audio: &[u8],
    trailing: std::time::Duration,
) -> anyhow::Result<Vec<String>> {
    use ringlypro::providers::stt::{SpeechToText, SttEvent, SttInput, SttStream};
    let SttStream { input, mut events } = stt.open(ringlypro::domain::language::Language::English)?;
    let collector = tokio::spawn(async move {
        let mut finals = Vec::new();
        while let Some(event) = events.recv().await {
            match event {
                SttEvent::Final { text, .. } => finals.push(text),
                SttEvent::Error(e) => return Err(anyhow::Error::from(e)),
                _ => {}
            }
        }
        Ok(finals)
    });
    let silence = std::iter::repeat_n(vec![0xFF; 160], trailing.as_millis() as usize / 20);
    for frame in audio.chunks(160).map(<[u8]>::to_vec).chain(silence) {
        input.send(SttInput::Audio(frame)).await?;
    }
    drop(input);
    collector.await?
}
