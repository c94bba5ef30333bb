//! Calls in progress: the per-call actor that owns a conversation, who has the floor, the
//! agent's voice toward the caller, outbound audio pacing, the recording of both legs, the
//! JSON a call publishes while it runs, the owner's commands to a live call, and the
//! registry of live calls (used to drain them on shutdown and to reach them).

pub mod actor;
pub mod commands;
pub mod conversation;
pub mod engines;
pub mod events;
pub mod io;
pub mod playback;
pub mod recording;
pub mod registry;
pub mod setup;
pub mod tap;
pub mod turn_taking;
pub mod voice;

pub use actor::CallActor;
pub use io::{CallInput, CallOutput};
pub use setup::{CallDeps, CallSettings, CallSetup, CallSummary};
