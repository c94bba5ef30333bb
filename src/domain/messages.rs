//! Which way a text went. Names only; the outbox and threads live in storage.

use super::names::named;

named! {
    /// A text to the business (`inbound`) or from it (`outbound`).
    pub enum Direction {
        Inbound = "inbound",
        Outbound = "outbound",
    }
}
