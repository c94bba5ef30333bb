//! HTTP surface outside Twilio's webhooks: owners' accounts and sessions, the signed-in
//! app shell (layout, PWA assets) and its Today page, the owner's settings, the admin
//! area, the OpenAPI document, the health check, a call's record as JSON, and a call's
//! recording. Owns its state and its routes; knows nothing of how the server is built.
//!
//! For pages and APIs built on top: take [`auth::Owner`] (or [`auth::Admin`]) as an
//! extractor, scope queries with `begin_tenant(pool, owner.client_id)`, render with
//! [`render`] from `WebState::templates`, and put `owner.csrf_token` in every form that
//! changes something (JSON calls send it as `X-CSRF-Token`).

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::response::Redirect;
use axum::routing::{get, post, put};
use sqlx::PgPool;

use crate::call::registry::CallRegistry;
use crate::config::Config;
use crate::services::numbers::NumberOrders;
use crate::services::passwords::Passwords;
use crate::services::payments::Payments;
use crate::storage::call_state::CallStateStore;
use crate::telephony::control::CallControl;

pub mod accounts;
pub mod admin;
pub mod api_keys;
pub mod auth;
pub mod blocked;
pub mod calls;
pub mod credits;
pub mod crm;
pub mod error;
pub mod gohighlevel;
pub mod google;
pub mod integrations;
pub mod json_body;
pub mod limits;
pub mod live;
pub mod locked;
pub mod openapi;
pub mod pages;
pub mod recordings;
pub mod settings;
pub mod shell;
pub mod today;
pub mod webhooks;

pub use error::Error;
pub use shell::render;

/// What every dashboard and `/api` handler can reach.
#[derive(Clone, FromRef)]
pub struct WebState {
    pub config: Arc<Config>,
    pub pool: PgPool,
    /// Live calls' checkpoints and transcript feed (Redis or in-process).
    pub store: CallStateStore,
    /// The calls live in this process.
    pub registry: CallRegistry,
    /// Every page template, parsed once; render with [`render`].
    pub templates: Arc<minijinja::Environment<'static>>,
    /// Password hashing at the configured cost.
    pub passwords: Passwords,
    /// Attempts per client address at the credential forms.
    pub attempt_limiter: Arc<limits::AttemptLimiter>,
    /// Requests per API key (by the key's id).
    pub api_key_limiter: Arc<limits::AttemptLimiter<i64>>,
    /// Credit, reloads and Stripe.
    pub payments: Payments,
    /// The owner's commands to live calls, on whichever instance they run.
    pub call_control: CallControl,
    /// Tenants' numbers bought from (and released to) Twilio.
    pub numbers: NumberOrders,
    /// Google Calendar connections, their sync and the busy times they add.
    pub calendar: crate::services::calendar_sync::CalendarSync,
    /// GoHighLevel connections and the worker that sends contacts and bookings there.
    pub gohighlevel: crate::services::gohighlevel::GhlSync,
}

/// Every dashboard, `/api`, asset and health route. The CSRF check
/// ([`auth::protect_state_changes`]) and the body limit are layered by whoever serves them,
/// over these and Twilio's routes alike.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/health", get(pages::health))
        .route("/metrics", get(pages::metrics))
        .route("/calls/{call_sid}", get(pages::call_json))
        .route("/calls/{call_sid}/events", get(pages::call_events))
        .route("/", get(today::home))
        .route("/app", get(today::page))
        .route("/app/rachel", post(today::set_rachel))
        .route("/settings", get(settings::short_address))
        .route("/app/settings", get(settings::show).post(settings::submit))
        .route("/app/settings/rachel", post(settings::set_rachel))
        .route("/app/settings/recording", post(settings::set_recording))
        .route("/app/settings/summaries", post(settings::set_summaries))
        .route("/api/settings", get(settings::get_api).patch(settings::patch_api))
        .route("/app/settings/blocked", post(blocked::add_form))
        .route("/app/settings/blocked/remove", post(blocked::remove_form))
        .route("/api/blocked-numbers", get(blocked::api_list).post(blocked::api_add))
        .route("/app/integrations", get(integrations::show))
        .route("/app/integrations/webhooks", post(integrations::add_form))
        .route("/app/integrations/webhooks/{id}/remove", post(integrations::remove_form))
        .route("/app/integrations/deliveries/{id}/resend", post(integrations::resend_form))
        .route("/api/webhooks", get(integrations::api_list).post(integrations::api_add))
        .route("/api/webhooks/deliveries", get(integrations::api_deliveries))
        .route("/api/webhooks/deliveries/{id}/resend", post(integrations::api_resend))
        .route("/api/webhooks/{id}", axum::routing::delete(integrations::api_remove))
        .route("/app/integrations/google/connect", get(google::connect))
        .route("/app/integrations/google/disconnect", post(google::disconnect))
        .route("/integrations/google/callback", get(google::callback))
        .route("/integrations/google/notify", post(google::notify))
        .route("/app/integrations/gohighlevel/connect", get(gohighlevel::connect))
        .route("/app/integrations/gohighlevel/calendar", post(gohighlevel::choose_calendar))
        .route("/app/integrations/gohighlevel/disconnect", post(gohighlevel::disconnect))
        .route("/integrations/gohighlevel/callback", get(gohighlevel::callback))
        .route("/app/integrations/api-keys", post(integrations::create_key_form))
        .route("/app/integrations/api-keys/{id}/revoke", post(integrations::revoke_key_form))
        .route("/api/api-keys", get(api_keys::api_list).post(api_keys::api_create))
        .route("/api/api-keys/{id}", axum::routing::delete(api_keys::api_revoke))
        .route("/api/blocked-numbers/{phone}", axum::routing::delete(blocked::api_remove))
        .route("/admin", get(admin::list_page))
        .route("/admin/tenants/{id}", get(admin::tenant_page))
        .route("/admin/tenants/{id}/notes", post(admin::note_form))
        .route("/admin/tenants/{id}/sms", post(admin::sms_form))
        .route("/api/admin/tenants", get(admin::list_api))
        .route("/api/admin/tenants/{id}", get(admin::detail_api))
        .route("/api/admin/tenants/{id}/notes", post(admin::note_api))
        .route("/api/admin/tenants/{id}/sms", post(admin::sms_api))
        .route("/admin/reloads/{id}/confirm", post(admin::confirm_reload_form))
        .route("/admin/tenants/{id}/credit", post(admin::credit_form))
        .route("/admin/tenants/{id}/number/retry", post(admin::retry_number_form))
        .route("/admin/tenants/{id}/close", post(admin::close_form))
        .route("/api/admin/reloads", get(admin::reloads_api))
        .route("/api/admin/reloads/{id}/confirm", post(admin::confirm_reload_api))
        .route("/api/admin/tenants/{id}/credit", post(admin::credit_api))
        .route("/credits", get(|| async { Redirect::permanent("/app/credits") }))
        .route("/app/credits", get(credits::page))
        .route("/app/credits/reload", post(credits::reload_form))
        .route("/app/credits/reloads/{id}", get(credits::reload_page))
        .route("/app/credits/return", get(credits::return_page))
        .route("/app/credits/auto-reload", post(credits::auto_reload_form))
        .route("/app/credits/card", post(credits::card_form))
        .route("/api/credits", get(credits::api_overview))
        .route("/api/credits/reload", post(credits::api_reload))
        .route("/api/credits/reloads/{id}", get(credits::api_reload_status))
        .route("/api/credits/auto-reload", put(credits::api_auto_reload))
        .route("/static/reload.js", get(shell::reload_script))
        .route("/api/openapi.json", get(openapi::json))
        .route("/api/docs", get(openapi::docs))
        .route("/static/api-docs.js", get(openapi::docs_script))
        .route("/calls", get(|| async { Redirect::permanent("/app/calls") }))
        .route("/live", get(|| async { Redirect::permanent("/app/live") }))
        .route("/app/calls", get(calls::page))
        .route("/app/calls/{call_sid}", get(calls::call_page))
        .route("/app/calls/{call_sid}/recording", get(calls::recording))
        .route("/app/calls/{call_sid}/delete", get(calls::confirm_delete).post(calls::delete_page))
        .route("/api/calls", get(calls::api_list))
        .route("/api/calls/{call_sid}", get(calls::api_call).delete(calls::api_delete))
        .route("/api/calls/{call_sid}/recording", get(calls::recording))
        .route("/app/live", get(live::page))
        .route("/app/live/events", get(live::events))
        .route("/api/live", get(live::api_live))
        .route("/api/live/events", get(live::events))
        .route("/api/live/{call_sid}/takeover", post(live::api_take_over))
        .route("/api/live/{call_sid}/note", post(live::api_note))
        .route("/app/live/{call_sid}/takeover", post(live::take_over_form))
        .route("/app/live/{call_sid}/note", post(live::note_form))
        .route("/static/live.js", get(shell::live_script))
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
        .route("/app/messages/events", get(crm::messages::events))
        .route("/static/messages.js", get(crm::messages::script))
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
        .route("/static/app.css", get(shell::stylesheet))
        .route("/static/app.js", get(shell::script))
        .route("/static/icon.svg", get(shell::icon))
        .route("/manifest.webmanifest", get(shell::manifest))
        .route("/sw.js", get(shell::service_worker))
        .route("/offline", get(shell::offline))
}
