//! The only code that knows Twilio's calls: webhook handlers and TwiML, the request-signature
//! check, the Media Streams wire format, and the owner's commands to a live call (which reach
//! it through Redis, or through Twilio's REST API). Nothing outside sees Twilio's JSON. Owns its
//! state and its routes; knows nothing of how the server is built.

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use sqlx::PgPool;

use crate::call::CallDeps;
use crate::call::registry::CallRegistry;
use crate::config::Config;
use crate::services::payments::Payments;

pub mod control;
pub mod conversation_relay;
pub mod media_stream;
pub mod request;
pub mod session;
pub mod signature;
pub mod sms;
pub mod twiml;
pub mod webhooks;

/// Read and write buffer of each call's WebSockets (tungstenite defaults to 128 KiB each,
/// and zeroes the free part of its read buffer before every read: a frame is a few hundred
/// bytes, so a small buffer is both less memory and less work per frame).
pub const SOCKET_BUFFER: usize = 4 * 1024;

/// Client-side WebSocket settings for vendor sockets: small buffers, as above.
pub fn client_socket_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
}

/// What Twilio's webhooks and call sockets can reach.
#[derive(Clone, FromRef)]
pub struct TelephonyState {
    pub config: Arc<Config>,
    pub pool: PgPool,
    /// The calls live in this process: each socket registers its call here.
    pub registry: CallRegistry,
    /// What each call's actor is started with.
    pub call_deps: CallDeps,
    /// Metering of calls as they end, and the account's lock.
    pub payments: Payments,
}

/// Twilio's webhooks and the two call sockets.
pub fn routes() -> Router<TelephonyState> {
    Router::new()
        .route("/twilio/voice", post(webhooks::voice))
        .route("/twilio/after", post(webhooks::after_stream))
        .route("/twilio/status", post(webhooks::status))
        .route("/twilio/media", get(webhooks::media))
        .route("/twilio/relay", get(conversation_relay::relay))
        .route("/twilio/relay-ended", post(conversation_relay::relay_ended))
        .route("/twilio/sms", post(sms::inbound))
        .route("/twilio/sms-status", post(sms::status))
}
