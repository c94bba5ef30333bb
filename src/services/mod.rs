//! Use cases shared by calls and the web, each one transaction.

pub mod booking;
pub mod calls;
