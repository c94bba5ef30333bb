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
