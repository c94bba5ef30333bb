//! Structured logs: JSON lines when `LOG_FORMAT=json`, readable text otherwise.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global subscriber; `RUST_LOG` filters (default `info`).
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tungstenite=warn"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v == "json");
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests) is harmless: keep the first subscriber.
    if json {
        let _ = registry.with(fmt::layer().json().with_writer(std::io::stderr)).try_init();
    } else {
        let _ = registry.with(fmt::layer().with_writer(std::io::stderr)).try_init();
    }
}
