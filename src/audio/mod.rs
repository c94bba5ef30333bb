//! Audio plumbing: G.711 μ-law, sample-rate conversion and WAV reading.
//! Nothing here knows about calls or vendors.

pub mod mulaw;
pub mod resample;
pub mod wav;
