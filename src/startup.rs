//! Building the application (pools, stores, speech engines, router) separately from
//! serving it, so tests start the real thing on port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::call::engines::Engines;
use crate::call::registry::CallRegistry;
use crate::call::{CallDeps, CallSettings};
use crate::config::Config;
use crate::dialogue::prompts::Prompts;
use crate::providers::llm::openai::{OpenAiConfig, OpenAiLlm};
use crate::providers::stt::deepgram::{DeepgramConfig, DeepgramStt};
use crate::providers::stt::sphinx::{SphinxConfig, SphinxStt};
use crate::providers::tts::elevenlabs::{ElevenLabsConfig, ElevenLabsTts};
use crate::providers::tts::espeak::EspeakTts;
use crate::providers::tts::sentences::SentenceTts;
use crate::services::passwords::Passwords;
use crate::storage::call_state::CallStateStore;
use crate::storage::postgres::{self, numbers, sessions};
use crate::telephony::{conversation_relay, webhooks};
use crate::web;
use crate::web::accounts;
use crate::web::crm;
use crate::web::limits::AttemptLimiter;

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
        let mut dg = DeepgramConfig::new(key.clone());
        dg.base_url = keys.deepgram_url.clone();
        dg.multi = true; // English and Spanish callers on one number
        engines.stt = Arc::new(DeepgramStt::new(dg));
        engines.stt_fallback = Some(local.stt.clone());
    }
    if let Some(key) = &keys.elevenlabs_key {
        let mut el = ElevenLabsConfig::new(key.clone());
        el.base_url = keys.elevenlabs_url.clone();
        el.model = keys.elevenlabs_model.clone();
        // Past this with no audio the local voice takes over: no dead air over 2 s.
        el.first_audio_timeout = std::time::Duration::from_millis(1500);
        engines.tts = Arc::new(ElevenLabsTts::new(el));
        engines.tts_fallback = Some(local.tts.clone());
    }
    if let Some(key) = &keys.openai_key {
        let mut oa = OpenAiConfig::new(key.clone());
        oa.base_url = keys.openai_base_url.clone();
        oa.model = keys.openai_model.clone();
        engines.llm = Some(Arc::new(OpenAiLlm::new(oa).context("configuring the language model")?));
    }
    Ok(engines)
}

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: PgPool,
    pub store: CallStateStore,
    pub registry: CallRegistry,
    pub call_deps: CallDeps,
    /// Every page template, parsed once; render with [`web::render`].
    pub templates: Arc<minijinja::Environment<'static>>,
    /// Password hashing at the configured cost.
    pub passwords: Passwords,
    /// Attempts per client address at the credential forms.
    pub attempt_limiter: Arc<AttemptLimiter>,
}

/// A built application: listening, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
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
            Some(url) => CallStateStore::redis(url, &config.key_prefix).await?,
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
        let call_deps = CallDeps { pool: pool.clone(), store: store.clone(), engines, prompts, settings };
        let state = AppState {
            templates: Arc::new(web::shell::templates()?),
            passwords: Passwords::new(config.accounts.password_cost),
            attempt_limiter: Arc::new(AttemptLimiter::new(config.accounts.attempts_per_ip_per_minute)),
            config: Arc::new(config.clone()),
            pool,
            store,
            registry,
            call_deps,
        };
        Ok(Self { listener, router: router(state.clone()), state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has an address.
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops taking new requests and drains live
    /// calls (they finish on their own, or are asked to wrap up near the end of the grace).
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let registry = self.state.registry.clone();
        let grace = self.state.config.shutdown_grace;
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
        let _ = stop_tx.send(());
        let wrap_up = grace.min(std::time::Duration::from_secs(20));
        let left = registry.drain(grace.saturating_sub(wrap_up), wrap_up).await;
        if left > 0 {
            tracing::warn!(left, "calls still running at the end of the grace period");
        }
        match tokio::time::timeout(std::time::Duration::from_secs(5), server).await {
            Ok(joined) => joined.context("server task")?.context("server")?,
            Err(_) => tracing::warn!("server did not stop within 5 s"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/twilio/voice", post(webhooks::voice))
        .route("/twilio/after", post(webhooks::after_stream))
        .route("/twilio/status", post(webhooks::status))
        .route("/twilio/media", get(webhooks::media))
        .route("/twilio/relay", get(conversation_relay::relay))
        .route("/twilio/relay-ended", post(conversation_relay::relay_ended))
        .route("/health", get(web::pages::health))
        .route("/metrics", get(web::pages::metrics))
        .route("/calls/{call_sid}", get(web::pages::call_json))
        .route("/", get(web::today::home))
        .route("/app", get(web::today::page))
        .route("/app/rachel", post(web::today::set_rachel))
        .route("/settings", get(web::settings::short_address))
        .route("/app/settings", get(web::settings::show).post(web::settings::submit))
        .route("/app/settings/rachel", post(web::settings::set_rachel))
        .route("/app/settings/recording", post(web::settings::set_recording))
        .route("/api/settings", get(web::settings::get_api).patch(web::settings::patch_api))
        .route("/admin", get(web::admin::list_page))
        .route("/admin/tenants/{id}", get(web::admin::tenant_page))
        .route("/admin/tenants/{id}/notes", post(web::admin::note_form))
        .route("/admin/tenants/{id}/sms", post(web::admin::sms_form))
        .route("/api/admin/tenants", get(web::admin::list_api))
        .route("/api/admin/tenants/{id}", get(web::admin::detail_api))
        .route("/api/admin/tenants/{id}/notes", post(web::admin::note_api))
        .route("/api/admin/tenants/{id}/sms", post(web::admin::sms_api))
        .route("/api/openapi.json", get(web::openapi::json))
        .route("/api/docs", get(web::openapi::docs))
        .route("/static/api-docs.js", get(web::openapi::docs_script))
        .route("/calls", get(|| async { axum::response::Redirect::permanent("/app/calls") }))
        .route("/live", get(|| async { axum::response::Redirect::permanent("/app/live") }))
        .route("/app/calls", get(web::calls::page))
        .route("/app/calls/{call_sid}", get(web::calls::call_page))
        .route("/app/calls/{call_sid}/recording", get(web::calls::recording))
        .route("/app/calls/{call_sid}/delete", get(web::calls::confirm_delete).post(web::calls::delete_page))
        .route("/api/calls", get(web::calls::api_list))
        .route("/api/calls/{call_sid}", get(web::calls::api_call).delete(web::calls::api_delete))
        .route("/api/calls/{call_sid}/recording", get(web::calls::recording))
        .route("/app/live", get(web::live::page))
        .route("/app/live/events", get(web::live::events))
        .route("/api/live", get(web::live::api_live))
        .route("/api/live/events", get(web::live::events))
        .route("/static/live.js", get(web::shell::live_script))
        .route("/signup", get(accounts::pages::signup_form).post(accounts::pages::signup))
        .route("/login", get(accounts::pages::login_form).post(accounts::pages::login))
        .route("/logout", post(accounts::pages::logout))
        .route("/password/forgot", get(accounts::pages::forgot_form).post(accounts::pages::forgot))
        .route("/password/reset", get(accounts::pages::reset_form).post(accounts::pages::reset))
        .route("/api/auth/signup", post(accounts::api::signup))
        .route("/api/auth/login", post(accounts::api::login))
        .route("/api/auth/logout", post(accounts::api::logout))
        .route("/api/auth/me", get(accounts::api::me))
        .route("/api/auth/password/forgot", post(accounts::api::forgot))
        .route("/api/auth/password/reset", post(accounts::api::reset))
        .route("/contacts", get(crm::to_contacts))
        .route("/appointments", get(crm::to_appointments))
        .route("/messages", get(crm::to_messages))
        .route("/app/contacts", get(crm::contacts::page).post(crm::contacts::create))
        .route("/app/contacts/{id}", get(crm::contacts::show).post(crm::contacts::update))
        .route("/app/contacts/{id}/delete", post(crm::contacts::delete))
        .route("/app/appointments", get(crm::appointments::page).post(crm::appointments::create))
        .route("/app/appointments/{id}", get(crm::appointments::show).post(crm::appointments::update))
        .route("/app/appointments/{id}/status", post(crm::appointments::set_status))
        .route("/app/messages", get(crm::messages::page).post(crm::messages::create))
        .route("/app/messages/{contact_id}", get(crm::messages::thread))
        .route("/api/contacts", get(crm::contacts::api_list).post(crm::contacts::api_create))
        .route(
            "/api/contacts/{id}",
            get(crm::contacts::api_show).patch(crm::contacts::api_update).delete(crm::contacts::api_delete),
        )
        .route("/api/appointments", get(crm::appointments::api_list).post(crm::appointments::api_create))
        .route(
            "/api/appointments/{id}",
            get(crm::appointments::api_show).patch(crm::appointments::api_update).delete(crm::appointments::api_cancel),
        )
        .route("/api/messages", get(crm::messages::api_threads).post(crm::messages::api_send))
        .route("/api/messages/{contact_id}", get(crm::messages::api_thread))
        .route("/static/app.css", get(web::shell::stylesheet))
        .route("/static/app.js", get(web::shell::script))
        .route("/static/icon.svg", get(web::shell::icon))
        .route("/manifest.webmanifest", get(web::shell::manifest))
        .route("/sw.js", get(web::shell::service_worker))
        .route("/offline", get(web::shell::offline))
        .layer(axum::middleware::from_fn_with_state(state.clone(), web::auth::protect_state_changes))
        .layer(DefaultBodyLimit::max(webhooks::MAX_BODY))
        .with_state(state)
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
