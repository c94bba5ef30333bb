//! The only code that knows Twilio: webhook handlers and TwiML, the request-signature
//! check, and the Media Streams wire format. Nothing outside sees Twilio's JSON.

pub mod conversation_relay;
pub mod media_stream;
pub mod session;
pub mod signature;
pub mod twiml;
pub mod webhooks;

/// Read and write buffer of each call's WebSockets (tungstenite defaults to 128 KiB each).
pub const SOCKET_BUFFER: usize = 8 * 1024;

/// Client-side WebSocket settings for vendor sockets: small buffers, as above.
pub fn client_socket_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
}
