//! Understanding what callers say, deciding what the agent says next, and the wording of
//! everything said or written to callers and owners.

pub mod datetime;
pub mod nlu;
pub mod phrasing;
pub mod policy;
pub mod prompts;
pub mod tools;
