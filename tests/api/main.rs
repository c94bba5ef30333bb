//! Integration tests: the real application on port 0, a fresh PostgreSQL database per
//! test, real Redis with a per-test key prefix, local speech engines.

#[path = "../fakes/mod.rs"]
mod fakes;

mod accounts;
mod admin;
mod api_keys;
mod appointments;
mod booking;
mod browser;
mod calls;
mod calls_pages;
mod cloud_calls;
mod contacts;
mod credits_pages;
mod gohighlevel;
mod google_calendar;
mod helpers;
mod isolation;
mod live;
mod mail;
mod messages;
mod messages_browser;
mod metering;
mod numbers;
mod openapi;
mod outbound_webhooks;
mod payments;
mod recordings;
mod relay;
mod reminders;
mod replies;
mod scenarios;
mod settings;
mod sms_inbound;
mod summaries;
mod takeover;
mod tenants;
mod texting;
mod webhooks;
