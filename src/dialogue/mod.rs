//! Understanding what callers say and deciding what the agent says next.

pub mod datetime;
pub mod nlu;
pub mod phrasing;
pub mod policy;
pub mod prompts;
pub mod tools;
