//! Building the application (pools, stores, speech engines, router) separately from
//! serving it, so tests start the real thing on port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::serve::ListenerExt;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::call::engines::Engines;
use crate::call::registry::CallRegistry;
use crate::call::{CallDeps, CallSettings};
use crate::config::{Config, endpoint};
use crate::dialogue::prompts::Prompts;
use crate::providers::llm::openai::{OpenAiConfig, OpenAiLlm};
use crate::providers::stt::deepgram::{DeepgramConfig, DeepgramStt};
use crate::providers::stt::sphinx::{SphinxConfig, SphinxStt};
use crate::providers::tts::elevenlabs::{ElevenLabsConfig, ElevenLabsTts};
use crate::providers::tts::espeak::EspeakTts;
use crate::providers::tts::sentences::SentenceTts;
use crate::services::mail::Mailer;
use crate::services::numbers::NumberOrders;
use crate::services::passwords::Passwords;
use crate::services::payments::Payments;
use crate::services::reminders::Reminders;
use crate::services::summaries::Summaries;
use crate::storage::call_state::CallStateStore;
use crate::storage::postgres::{self, numbers, sessions};
use crate::telephony::control::CallControl;
use crate::telephony::request::MAX_BODY;
use crate::telephony::{self, TelephonyState};
use crate::web::limits::AttemptLimiter;
use crate::web::{self, WebState};

/// The offline engines: PocketSphinx for recognition, espeak-ng for speech, the local
/// dialogue engine. Loading the recogniser blocks (it may first generate its language
/// model), so it runs off the async runtime.
pub async fn local_engines(config: &Config) -> anyhow::Result<Engines> {
    let spare_decoders = config.stt_warm_decoders;
    let stt =
        tokio::task::spawn_blocking(move || SphinxStt::new(SphinxConfig { spare_decoders, ..SphinxConfig::default() }))
            .await
            .context("the recogniser's loader panicked")?
            .context("starting the local speech recogniser")?;
    Ok(Engines::local(Arc::new(stt), Arc::new(SentenceTts::new(EspeakTts::default()))))
}

/// The engines named by the configuration: each cloud role whose key is set, with the
/// local engine of that role standing by; local engines for the rest.
pub async fn engines_from_config(config: &Config) -> anyhow::Result<Engines> {
    let local = local_engines(config).await?;
    let keys = &config.providers;
    let mut engines = local.clone();
    if let Some(key) = &keys.deepgram_key {
        let mut dg = DeepgramConfig::new(key.expose_secret().to_owned());
        dg.base_url = endpoint(&keys.deepgram_url);
        dg.multi = true; // English and Spanish callers on one number
        engines.stt = Arc::new(DeepgramStt::new(dg));
        engines.stt_fallback = Some(local.stt.clone());
    }
    if let Some(key) = &keys.elevenlabs_key {
        let mut el = ElevenLabsConfig::new(key.expose_secret().to_owned());
        el.base_url = endpoint(&keys.elevenlabs_url);
        el.model = keys.elevenlabs_model.clone();
        // Past this with no audio the local voice takes over: no dead air over 2 s.
        el.first_audio_timeout = std::time::Duration::from_millis(1500);
        engines.tts = Arc::new(ElevenLabsTts::new(el));
        engines.tts_fallback = Some(local.tts.clone());
    }
    if let Some(key) = &keys.openai_key {
        let mut oa = OpenAiConfig::new(key.expose_secret().to_owned());
        oa.base_url = endpoint(&keys.openai_base_url);
        oa.model = keys.openai_model.clone();
        engines.llm = Some(Arc::new(OpenAiLlm::new(oa).context("configuring the language model")?));
    }
    Ok(engines)
}

/// A built application: listening, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: WebState,
    /// Sends the e-mail outbox; `None` without `SMTP_URL` (mails wait).
    mailer: Option<Mailer>,
    summaries: Summaries,
}

impl Application {
    /// Connects to PostgreSQL (creating and migrating the database) and the call-state
    /// store, and binds the listener.
    pub async fn build(mut config: Config, engines: Engines, settings: CallSettings) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(config.bind).await.with_context(|| format!("cannot listen on {}", config.bind))?;
        if config.bind.port() == 0 {
            // An ephemeral port (tests): Twilio-facing URLs must name the port we got.
            config.public_url = format!("http://{}", listener.local_addr()?);
        }
        // Migrations run as the URL's user (the tables' owner); the application's own
        // connections then run as the restricted application role.
        let owner = postgres::connect_with_size(&config.database_url, 1).await?;
        postgres::migrate(&owner).await?;
        owner.close().await;
        let pool = postgres::connect_as_app(&config.database_url, config.database_pool_size).await?;
        let store = match &config.redis_url {
            Some(url) => CallStateStore::redis(url.as_str(), &config.key_prefix).await?,
            None => CallStateStore::memory(),
        };
        if config.local_mode() {
            tracing::warn!(
                "LOCAL MODE: TWILIO_AUTH_TOKEN is not set, so Twilio webhooks and media streams are NOT \
                 signature-checked. Set TWILIO_AUTH_TOKEN before exposing this server."
            );
        }
        tracing::info!(
            store = store.kind(),
            stt = engines.stt.name(),
            tts = engines.tts.name(),
            llm = engines.llm.as_ref().map(|l| l.name()).unwrap_or("local rules"),
            "engines ready"
        );
        // Install the Prometheus recorder before any call records a figure.
        let _ = crate::telemetry::metrics();
        let prompts = Arc::new(Prompts::load()?);
        let registry = CallRegistry::new();
        for number in &config.accounts.number_pool {
            if numbers::add(&pool, number).await.with_context(|| format!("adding {number} to the number pool"))? {
                tracing::info!(number = %number, "number added to the pool");
            }
        }
        match sessions::delete_expired(&pool).await {
            Ok(n) if n > 0 => tracing::info!(expired = n, "expired sessions removed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not remove expired sessions"),
        }
        let payments = Payments::new(pool.clone(), &config);
        let mailer = Mailer::from_settings(pool.clone(), &config.mail)?;
        if mailer.is_none() {
            tracing::warn!("SMTP_URL is not set: e-mails wait in the outbox (shown on the Messages page)");
        }
        let summaries = Summaries::new(pool.clone(), &config);
        let calendar = crate::services::calendar_sync::CalendarSync::new(pool.clone(), &config)?;
        let gohighlevel = crate::services::gohighlevel::GhlSync::new(pool.clone(), &config)?;
        let config = Arc::new(config);
        let telephony_state = TelephonyState {
            payments: payments.clone(),
            config: config.clone(),
            pool: pool.clone(),
            registry: registry.clone(),
            call_deps: CallDeps {
                pool: pool.clone(),
                store: store.clone(),
                engines,
                prompts: prompts.clone(),
                settings,
                calendar: Some(calendar.clone()),
            },
        };
        let state = WebState {
            templates: Arc::new(web::shell::templates()?),
            passwords: Passwords::new(config.accounts.password_cost),
            attempt_limiter: Arc::new(AttemptLimiter::new(config.accounts.attempts_per_ip_per_minute)),
            api_key_limiter: Arc::new(AttemptLimiter::new(config.accounts.api_requests_per_key_per_minute)),
            payments,
            call_control: CallControl::new(
                registry.clone(),
                store.clone(),
                pool.clone(),
                prompts.clone(),
                crate::vendors::twilio::Twilio::from_config(&config),
            ),
            numbers: NumberOrders::new(pool.clone(), &config),
            calendar,
            gohighlevel,
            config,
            pool,
            store,
            registry,
        };
        Ok(Self { listener, router: router(telephony_state, state.clone()), state, mailer, summaries })
    }

    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has an address.
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// The web edge's state: configuration, pool, call-state store and live registry, as
    /// tests and benchmarks look into them.
    pub fn state(&self) -> &WebState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops taking new requests and drains live
    /// calls (they finish on their own, or are asked to wrap up near the end of the grace).
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let registry = self.state.registry.clone();
        let grace = self.state.config.shutdown_grace;
        let sweeper = self.state.payments.spawn_sweeper();
        let commands = self.state.call_control.spawn_listener();
        let number_orders = self.state.numbers.spawn_worker();
        let mail_worker = self.mailer.as_ref().map(Mailer::spawn_worker);
        let summaries_worker = self.summaries.spawn_worker();
        let reminder_sweeper =
            Reminders::new(self.state.pool.clone(), self.state.config.reminder_sweep_every).spawn_sweeper();
        let texter = crate::services::texting::Texting::new(self.state.pool.clone(), &self.state.config).spawn_worker();
        let webhooks =
            crate::services::webhooks::Webhooks::new(self.state.pool.clone(), &self.state.config)?.spawn_worker();
        let calendar_worker = self.state.calendar.spawn_worker();
        let gohighlevel_worker = self.state.gohighlevel.spawn_worker();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        // Small frames (20–40 ms of audio, marks) must not wait for Nagle's algorithm.
        let listener = self.listener.tap_io(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        // Connect info gives the per-address attempt limits the client's address.
        let service = self.router.into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(listener, service).with_graceful_shutdown(async move {
            let _ = stop_rx.await;
        });
        let server = tokio::spawn(async move { server.await });
        shutdown.await;
        tracing::info!(live_calls = registry.active(), "shutting down: draining live calls");
        sweeper.abort();
        if let Some(worker) = &number_orders {
            worker.abort();
        }
        if let Some(worker) = &mail_worker {
            worker.abort();
        }
        summaries_worker.abort();
        reminder_sweeper.abort();
        texter.abort();
        webhooks.abort();
        calendar_worker.abort();
        gohighlevel_worker.abort();
        let _ = stop_tx.send(());
        let wrap_up = grace.min(std::time::Duration::from_secs(20));
        let left = registry.drain(grace.saturating_sub(wrap_up), wrap_up).await;
        if left > 0 {
            tracing::warn!(left, "calls still running at the end of the grace period");
        }
        // Calls being drained could still be taken over; now none are left here.
        if let Some(commands) = &commands {
            commands.abort();
        }
        match tokio::time::timeout(std::time::Duration::from_secs(5), server).await {
            Ok(joined) => joined.context("server task")?.context("server")?,
            Err(_) => tracing::warn!("server did not stop within 5 s"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Every route: Twilio's and the web's, each with its own state, behind the CSRF check
/// and the body limit.
pub fn router(telephony_state: TelephonyState, web_state: WebState) -> Router {
    Router::new()
        .merge(telephony::routes().with_state(telephony_state))
        .merge(web::routes().with_state(web_state.clone()))
        .merge(web::webhooks::routes().with_state(web_state.clone()))
        .layer(axum::middleware::from_fn_with_state(web_state.clone(), web::locked::read_only_when_locked))
        .layer(axum::middleware::from_fn_with_state(web_state, web::auth::protect_state_changes))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
