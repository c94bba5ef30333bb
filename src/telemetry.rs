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

/// The process-wide Prometheus recorder (installed once; later calls share it).
pub fn metrics() -> metrics_exporter_prometheus::PrometheusHandle {
    use std::sync::OnceLock;
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&[0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0])
                .unwrap_or_else(|_| metrics_exporter_prometheus::PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (never in our binary): keep a detached one.
                Err(_) => metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}
