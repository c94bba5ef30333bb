//! What passes between a call and its transport, in our own terms: the transport turns
//! Twilio's frames into [`CallInput`] and [`CallOutput`] back into frames; the call never
//! sees the wire.

use crate::call::events::Handoff;

/// What the transport hands the call.
#[derive(Debug, Clone, PartialEq)]
pub enum CallInput {
    /// Caller audio, 8 kHz μ-law, with the stream's milliseconds since it started when known.
    Audio {
        bytes: Vec<u8>,
        timestamp_ms: Option<u64>,
        /// Whether the frame is the caller's voice, when the transport already measured it.
        loud: Option<bool>,
    },
    Dtmf(char),
    /// One of our marks came back.
    Mark(String),
    /// ConversationRelay: the caller's complete utterance, recognised by Twilio.
    Prompt(String),
    /// ConversationRelay: Twilio stopped speaking because the caller talked; `heard` is
    /// what had been spoken until then.
    Interrupted {
        heard: String,
    },
    /// The caller hung up or the socket closed.
    Hangup,
}

/// What the call asks the transport to send.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutput {
    Audio(Vec<u8>),
    Mark(String),
    /// Drop everything queued for playback.
    Clear,
    /// Close the stream (the call is over, or being transferred).
    Close,
    /// ConversationRelay: a piece of the agent's reply for Twilio to speak; `last` ends it.
    Text {
        token: String,
        last: bool,
    },
    /// ConversationRelay: end the session, with data for the action URL.
    End {
        handoff: Handoff,
    },
}
