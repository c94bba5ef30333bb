//! Calls in progress: the per-call actor that owns a conversation, outbound audio pacing,
//! the recording of both legs, and the registry of live calls (used to drain them on
//! shutdown).

pub mod actor;
pub mod conversation;
pub mod engines;
pub mod playback;
pub mod recording;
pub mod registry;

pub use actor::{CallActor, CallDeps, CallInput, CallOutput, CallSettings, CallSetup, CallSummary};
