//! Where things are kept: PostgreSQL repositories (one module per table family) and the
//! call-state store (Redis, or an in-process map when Redis is not configured).

pub mod call_state;
pub mod postgres;
