//! Cloud provider clients against fake vendors that speak the vendors' wire protocols on
//! loopback.

#[path = "../fakes/mod.rs"]
mod fakes;

mod deepgram;
mod elevenlabs;
mod gohighlevel;
mod openai;
mod stripe;
mod twilio;
