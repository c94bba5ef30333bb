//! RinglyPro: a multi-tenant AI phone receptionist with a CRM.
//!
//! Map of the crate (each module opens with what it owns):
//! - [`config`]     typed configuration read once from the environment
//! - [`startup`]    builds the application (pools, providers, router) and serves it
//! - [`telemetry`]  structured logs
//! - [`telephony`]  the only code that knows Twilio: webhooks, TwiML, signatures, Media Streams
//! - [`call`]       the per-call actor that owns a conversation, and the live-call registry
//! - [`dialogue`]   understanding callers (intents, dates, times, names) and the local dialogue engine
//! - [`providers`]  speech-to-text and text-to-speech behind traits, with local engines
//! - [`audio`]      μ-law G.711, resampling, WAV reading, Ogg Opus writing
//! - [`domain`]     pure business rules: scheduling, phone numbers, tenants, languages
//! - [`services`]   use cases shared by calls and the web, one transaction each
//! - [`storage`]    PostgreSQL repositories and the call-state store (Redis or in-process)
//! - [`web`]        owners' accounts and sessions, the app shell and Today page, health check
//! - [`sim`]        the simulated caller that speaks to `/twilio/media` exactly as Twilio does
//! - [`cli`]        the `ringlypro` sub-commands

pub mod audio;
pub mod call;
pub mod cli;
pub mod config;
pub mod dialogue;
pub mod domain;
pub mod providers;
pub mod services;
pub mod sim;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod telephony;
pub mod web;
