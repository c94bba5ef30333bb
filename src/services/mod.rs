//! Use cases shared by calls and the web, each one transaction.

pub mod accounts;
pub mod agenda;
pub mod booking;
pub mod calendar_sync;
pub mod calls;
pub mod credits;
pub mod gohighlevel;
pub mod mail;
pub mod numbers;
pub mod passwords;
pub mod payments;
pub mod reminders;
pub mod replies;
pub mod summaries;
pub mod texting;
pub mod webhooks;
