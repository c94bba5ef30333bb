//! HTTP surface outside Twilio's webhooks: the health check, the calls page, and a call's
//! record as JSON.

pub mod error;
pub mod pages;

pub use error::Error;
