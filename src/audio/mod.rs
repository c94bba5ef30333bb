//! Audio plumbing: G.711 μ-law, sample-rate conversion, WAV reading and Ogg Opus writing.
//! Nothing here knows about calls or vendors.

pub mod mulaw;
pub mod ogg_opus;
pub mod resample;
pub mod wav;
