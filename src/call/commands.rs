//! What the owner watching a live call can ask of it: take the call over (the agent says a
//! short hand-over line and the call is bridged to the owner's phone), or have the agent
//! say a line of the owner's at its next turn. The same type travels in process and, as
//! JSON, through Redis to the instance that holds the call.

use serde::{Deserialize, Serialize};

use crate::domain::ids::TenantId;

/// The longest note an owner may send, in characters: a sentence or two, said aloud.
pub const MAX_NOTE_CHARS: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallCommand {
    /// Hand the call to the owner's phone.
    TakeOver,
    /// Say this at the agent's next turn.
    Note { text: String },
}

impl CallCommand {
    /// A note as the agent will say it: one line, trimmed; `None` when empty or too long.
    pub fn note(text: &str) -> Option<Self> {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        (!text.is_empty() && text.chars().count() <= MAX_NOTE_CHARS).then_some(Self::Note { text })
    }
}

/// A command on its way to whichever instance holds the call, as published on Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routed {
    /// Names the acknowledgement the sender waits for.
    pub id: String,
    pub tenant_id: TenantId,
    pub call_sid: String,
    pub command: CallCommand,
}

impl Routed {
    pub fn to_json(&self) -> String {
        // Strings and numbers only: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(raw: &str) -> serde_json::Result<Self> {
        serde_json::from_str(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_one_trimmed_line_of_bounded_length() {
        assert_eq!(
            CallCommand::note("  Tell them   we have\n a 3pm slot "),
            Some(CallCommand::Note { text: "Tell them we have a 3pm slot".into() })
        );
        assert_eq!(CallCommand::note(" \n "), None);
        assert_eq!(CallCommand::note(&"a".repeat(MAX_NOTE_CHARS + 1)), None);
        assert!(CallCommand::note(&"é".repeat(MAX_NOTE_CHARS)).is_some());
    }

    #[test]
    fn a_routed_command_reads_back_as_written() {
        let routed = Routed {
            id: "r1".into(),
            tenant_id: TenantId(4),
            call_sid: "CA1".into(),
            command: CallCommand::Note { text: "hi".into() },
        };
        let raw = routed.to_json();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&raw).unwrap(),
            serde_json::json!({"id": "r1", "tenant_id": 4, "call_sid": "CA1", "command": {"kind": "note", "text": "hi"}})
        );
        assert_eq!(Routed::from_json(&raw).unwrap(), routed);
        assert!(Routed::from_json(r#"{"id":"x"}"#).is_err());
    }
}
