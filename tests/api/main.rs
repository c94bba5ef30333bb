//! Integration tests: the real application on port 0, a fresh PostgreSQL database per
//! test, real Redis with a per-test key prefix, local speech engines.

mod booking;
mod calls;
mod helpers;
mod isolation;
mod tenants;
mod webhooks;
