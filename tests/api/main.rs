//! Integration tests: the real application on port 0, a fresh PostgreSQL database per
//! test, real Redis with a per-test key prefix, local speech engines.

#[path = "../fakes/mod.rs"]
mod fakes;

mod accounts;
mod booking;
mod calls;
mod calls_pages;
mod cloud_calls;
mod helpers;
mod isolation;
mod live;
mod recordings;
mod relay;
mod tenants;
mod webhooks;
