//! Fake cloud vendors for tests and benches: real wire protocols on loopback, scripted
//! timings and failures. Never part of the production build.
#![allow(dead_code)]

pub mod deepgram;
pub mod elevenlabs;
pub mod gohighlevel;
pub mod google;
pub mod openai;
pub mod smtp;
pub mod stripe;
pub mod twilio;

/// The socket settings of the fakes' WebSocket servers: tungstenite zeroes its whole read
/// buffer (128 KiB by default) on every read, which for fifty small frames a second per
/// call would make the fakes, not the server, the bottleneck of a load run.
pub fn small_socket() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(4096)
}
