//! Use cases shared by calls and the web, each one transaction.

pub mod accounts;
pub mod agenda;
pub mod booking;
pub mod calls;
pub mod passwords;
