//! Clients for the business vendors behind billing, messaging, provisioning and the CRMs (not the
//! speech and language providers, which live in `providers`). Each vendor's wire format
//! stays inside its own module; callers see typed requests, results and errors. `sealed`
//! keeps their credentials encrypted at rest.

pub mod gohighlevel;
pub mod google;
pub mod sealed;
pub mod stripe;
pub mod twilio;
