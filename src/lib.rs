//! RinglyPro: a multi-tenant AI phone receptionist with a CRM.
//!
//! Map of the crate (each module opens with what it owns). Wire formats stop at the edges
//! (`telephony`, `providers`, `web`); everything inside speaks the typed core (`domain`).
//! - [`config`]     typed configuration read once from the environment (clap), secrets redacted
//! - [`startup`]    builds the application (pools, stores, engines), merges the edges' routers, serves
//! - [`telemetry`]  structured logs and the Prometheus recorder
//! - [`telephony`]  the only code that knows Twilio: its state and routes, the signed-request
//!   extractor, webhooks and TwiML, Media Streams and ConversationRelay frames (one typed
//!   definition for both ends), the socket session around a call
//! - [`call`]       a call in progress: the actor (listening, replies, tools, speaking, the
//!   record), turn-taking, the voice toward the caller, pacing, recording, the JSON a call
//!   publishes (checkpoint, live feed, hand-off), the live-call registry
//! - [`dialogue`]   understanding callers (`nlu`: one reader per concept; spoken dates and
//!   times), the local dialogue policy, the model's tools, prompts and spoken phrasing
//! - [`providers`]  speech-to-text, language models and text-to-speech behind traits: Deepgram,
//!   OpenAI-compatible, ElevenLabs; PocketSphinx (with its booking language model), espeak-ng,
//!   flite; circuit breakers
//! - [`audio`]      μ-law G.711, resampling, WAV reading, Ogg Opus writing
//! - [`domain`]     the typed core, pure: ids, tenants, calls, appointments, messages, accounts,
//!   settings, scheduling (hours, calendar, offers), phone numbers, forwarding codes
//! - [`services`]   use cases shared by calls and the web, one transaction each: booking, the
//!   agenda, accounts, call records, passwords
//! - [`storage`]    PostgreSQL repositories (row-level security per tenant) and the call-state
//!   store (Redis or in-process)
//! - [`web`]        the owners' dashboard and `/api`: its state and routes, accounts and
//!   sessions, Today, calls and recordings, live calls, the CRM (contacts, agenda, messages),
//!   settings, admin, the OpenAPI document, the app shell
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
pub mod vendors;
pub mod web;
