//! HTTP surface outside Twilio's webhooks: the health check, the calls page, a call's
//! record as JSON, and a call's recording (for the signed-in dashboard to route).

pub mod error;
pub mod pages;
pub mod recordings;

pub use error::Error;
