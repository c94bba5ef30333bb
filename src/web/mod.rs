//! HTTP surface outside Twilio's webhooks: owners' accounts and sessions, the signed-in
//! app shell (layout, PWA assets) and its Today page, the owner's settings, the admin
//! area, the OpenAPI document, the health check, a call's record as JSON, and a call's
//! recording.
//!
//! For pages and APIs built on top: take [`auth::Owner`] (or [`auth::Admin`]) as an
//! extractor, scope queries with `begin_tenant(pool, owner.client_id)`, render with
//! [`render`] from `AppState::templates`, and put `owner.csrf_token` in every form that
//! changes something (JSON calls send it as `X-CSRF-Token`).

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod calls;
pub mod crm;
pub mod error;
pub mod limits;
pub mod live;
pub mod openapi;
pub mod pages;
pub mod recordings;
pub mod settings;
pub mod shell;
pub mod today;

pub use error::Error;
pub use shell::render;
