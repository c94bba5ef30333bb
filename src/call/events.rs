//! The JSON a call hands to the rest of the system while it runs: its checkpoint in the
//! call-state store, the events of the tenant's live feed, and the ConversationRelay
//! hand-off. Each is defined once here, for the actor that writes it and for whoever reads it.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::call::conversation::LlmConversation;
use crate::dialogue::nlu::Intent;
use crate::dialogue::policy::{Outcome, Policy};
use crate::domain::calls::Speaker;
use crate::domain::language::Language;
use crate::domain::scheduling::Slot;
use crate::storage::postgres::calls::Turn;

/// A call's state so far, saved after each turn: a live view opened mid-call starts from
/// its transcript and the details the agent has gathered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint<'a> {
    pub policy: Cow<'a, Policy>,
    pub conversation: Cow<'a, LlmConversation>,
    pub turns: Cow<'a, [Turn]>,
}

impl Checkpoint<'_> {
    pub fn to_json(&self) -> String {
        // Plain data (strings, numbers, dates): serialising it cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(raw: &str) -> serde_json::Result<Checkpoint<'static>> {
        serde_json::from_str(raw)
    }
}

/// One event on a tenant's live feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent<'a> {
    /// A transcript line (sent again, longer, with the same `seq` as it grows), with the
    /// details gathered so far.
    Turn {
        call_sid: Cow<'a, str>,
        seq: i32,
        speaker: Speaker,
        text: Cow<'a, str>,
        at: DateTime<Utc>,
        intent: Option<Intent>,
        name: Option<Cow<'a, str>>,
        phone: Option<Cow<'a, str>>,
        offered: Cow<'a, [Slot]>,
        language: Language,
    },
    /// The call is over.
    Ended { call_sid: Cow<'a, str>, outcome: Outcome },
}

impl LiveEvent<'_> {
    /// The event's name on the feed (`turn`, `ended`).
    pub fn kind(&self) -> &'static str {
        match self {
            LiveEvent::Turn { .. } => "turn",
            LiveEvent::Ended { .. } => "ended",
        }
    }

    pub fn to_json(&self) -> String {
        // Plain data: serialising it cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(raw: &str) -> serde_json::Result<LiveEvent<'static>> {
        serde_json::from_str(raw)
    }
}

/// Why a ConversationRelay session ended, carried to the action URL as `HandoffData`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    pub reason: HandoffReason,
    #[serde(default)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandoffReason {
    /// The caller asked for a person: the action URL dials the owner.
    #[serde(rename = "transfer")]
    Transfer,
    /// The conversation is over: hang up.
    #[serde(rename = "completed")]
    Completed,
    /// The session named no call we know.
    #[serde(rename = "unknown call")]
    UnknownCall,
}

impl Handoff {
    /// The hand-off at the end of a call with this outcome.
    pub fn after(outcome: Outcome) -> Self {
        let reason = if outcome == Outcome::Transfer { HandoffReason::Transfer } else { HandoffReason::Completed };
        Self { reason, outcome }
    }

    pub fn to_json(&self) -> String {
        // Two enums: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads Twilio's `HandoffData`; anything unreadable is `None`.
    pub fn from_json(raw: &str) -> Option<Self> {
        serde_json::from_str(raw).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_hand_off_reads_back_as_a_transfer() {
        let raw = Handoff::after(Outcome::Transfer).to_json();
        assert_eq!(raw, r#"{"reason":"transfer","outcome":"transfer"}"#);
        assert_eq!(Handoff::from_json(&raw).map(|h| h.reason), Some(HandoffReason::Transfer));
        assert_eq!(Handoff::after(Outcome::Booked).reason, HandoffReason::Completed);
        assert_eq!(Handoff::from_json("not json"), None);
    }

    #[test]
    fn live_events_name_their_type() {
        let ended = LiveEvent::Ended { call_sid: "CA1".into(), outcome: Outcome::Booked };
        let raw = ended.to_json();
        assert_eq!(raw, r#"{"type":"ended","call_sid":"CA1","outcome":"booked"}"#);
        assert_eq!(LiveEvent::from_json(&raw).map(|e| e.kind()).ok(), Some("ended"));
        assert!(LiveEvent::from_json(r#"{"type":"secret"}"#).is_err());
    }

    #[test]
    fn a_checkpoint_reads_back_with_its_transcript_and_details() {
        let mut policy = Policy::new(Language::English, Some("+15550001111"));
        policy.name = Some("Ann".into());
        let turns = vec![Turn { seq: 0, speaker: Speaker::Agent, text: "Hello".into(), ..Turn::default() }];
        let raw = Checkpoint {
            policy: Cow::Borrowed(&policy),
            conversation: Cow::Owned(LlmConversation::default()),
            turns: Cow::Borrowed(&turns),
        }
        .to_json();
        let back = Checkpoint::from_json(&raw).unwrap();
        assert_eq!(back.turns[0].text, "Hello");
        assert_eq!(back.policy.name.as_deref(), Some("Ann"));
        assert_eq!(back.policy.phone.as_ref().map(|p| p.as_str()), Some("+15550001111"));
    }
}
