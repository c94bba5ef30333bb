//! What a call is started with (who is calling, the shared engines and stores, the timing
//! knobs) and what it reports when it ends.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::call::engines::Engines;
use crate::dialogue::policy::Outcome;
use crate::dialogue::prompts::Prompts;
use crate::domain::ids::CallId;
use crate::storage::call_state::CallStateStore;
use crate::storage::postgres::tenants::Tenant;

/// Timing knobs of a conversation.
#[derive(Debug, Clone)]
pub struct CallSettings {
    /// Caller silence before the agent checks in.
    pub silence_timeout: Duration,
    /// Speech over the agent shorter than this (with no real words) is a backchannel.
    pub barge_in_after: Duration,
    /// Longest call before the agent wraps up.
    pub max_duration: Duration,
    /// How long a checkpoint lives in the call-state store.
    pub checkpoint_ttl: Duration,
    /// A stable interim transcript this old, while the caller pauses, starts the model early.
    pub early_start_after: Duration,
    /// The model must produce its first token within this, or the local engine answers.
    pub llm_first_token_timeout: Duration,
    /// Tool rounds one reply may take.
    pub max_tool_rounds: u32,
}

impl Default for CallSettings {
    fn default() -> Self {
        Self {
            silence_timeout: Duration::from_secs(10),
            barge_in_after: Duration::from_millis(500),
            max_duration: Duration::from_secs(15 * 60),
            checkpoint_ttl: Duration::from_secs(2 * 60 * 60),
            early_start_after: Duration::from_millis(200),
            llm_first_token_timeout: Duration::from_millis(1500),
            max_tool_rounds: 4,
        }
    }
}

/// Shared things every call uses.
#[derive(Clone)]
pub struct CallDeps {
    pub pool: PgPool,
    pub store: CallStateStore,
    pub engines: Engines,
    pub prompts: Arc<Prompts>,
    pub settings: CallSettings,
    /// Google Calendar busy times (freeBusy within its budget when the copy is stale).
    pub calendar: Option<crate::services::calendar_sync::CalendarSync>,
}

/// Who and what this call is.
#[derive(Debug, Clone)]
pub struct CallSetup {
    pub tenant: Tenant,
    pub call_id: CallId,
    pub call_sid: String,
    pub stream_sid: String,
    pub caller: String,
    /// ConversationRelay: Twilio recognises and speaks; the call exchanges text only.
    pub relay: bool,
}

/// How the call ended, for the transport.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSummary {
    pub outcome: Outcome,
    pub transfer: bool,
    pub turns: usize,
}
