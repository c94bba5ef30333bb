//! The owner's commands to a live call, wherever the call runs: handed straight to it
//! when this instance holds it; otherwise published through Redis for the instance that
//! does, which acknowledges; and, to take a call over when no instance answers (it died,
//! or the store is not shared), through Twilio's REST API, which redirects the call to
//! the owner's phone.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sqlx::PgPool;
use tokio::task::JoinHandle;

use super::twiml;
use crate::call::commands::{CallCommand, Routed};
use crate::call::registry::{CallRegistry, Delivery};
use crate::dialogue::prompts::Prompts;
use crate::domain::ids::TenantId;
use crate::storage::call_state::CallStateStore;
use crate::storage::postgres::{calls, tenants};
use crate::vendors::twilio::Twilio;

/// How long the instance holding a call has to acknowledge a command.
const ACK_WITHIN: Duration = Duration::from_secs(2);

/// Where a command went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reached {
    /// The call runs on this instance.
    ThisInstance,
    /// Another instance holds the call and took the command.
    OtherInstance,
    /// No instance answered: Twilio was asked to move the call to the owner's phone.
    Twilio,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("that call is not in progress")]
    NotLive,
    #[error("the call is ending and takes no more instructions")]
    Ending,
    #[error("the call could not be reached; try again in a moment")]
    Unreachable,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Sends the owner's commands; cheap to clone.
#[derive(Clone)]
pub struct CallControl {
    registry: CallRegistry,
    store: CallStateStore,
    pool: PgPool,
    prompts: Arc<Prompts>,
    /// For taking a call over when no instance answers; `None` without credentials.
    twilio: Option<Twilio>,
}

impl CallControl {
    pub fn new(
        registry: CallRegistry,
        store: CallStateStore,
        pool: PgPool,
        prompts: Arc<Prompts>,
        twilio: Option<Twilio>,
    ) -> Self {
        Self { registry, store, pool, prompts, twilio }
    }

    /// Whether `call_sid` is one of the tenant's calls in progress, on any instance.
    pub async fn is_live(&self, tenant_id: TenantId, call_sid: &str) -> anyhow::Result<bool> {
        Ok(self.store.live_calls(tenant_id).await?.iter().any(|sid| sid == call_sid))
    }

    /// Hands `command` to the tenant's live call `call_sid`, wherever it runs.
    pub async fn send(
        &self,
        tenant_id: TenantId,
        call_sid: &str,
        command: CallCommand,
    ) -> Result<Reached, ControlError> {
        match self.registry.command(tenant_id, call_sid, command.clone()) {
            Delivery::Delivered => return Ok(Reached::ThisInstance),
            Delivery::Closing => return Err(ControlError::Ending),
            Delivery::NotHere => {}
        }
        if !self.is_live(tenant_id, call_sid).await? {
            return Err(ControlError::NotLive);
        }
        let routed =
            Routed { id: uuid::Uuid::new_v4().simple().to_string(), tenant_id, call_sid: call_sid.to_owned(), command };
        if self.store.publish_command(&routed.to_json()).await?
            && self.store.command_acknowledged(&routed.id, ACK_WITHIN).await?
        {
            return Ok(Reached::OtherInstance);
        }
        tracing::warn!(%tenant_id, call_sid, "no instance acknowledged the owner's command");
        if routed.command == CallCommand::TakeOver
            && let Some(twilio) = &self.twilio
        {
            self.take_over_through_twilio(twilio, tenant_id, call_sid).await?;
            return Ok(Reached::Twilio);
        }
        Err(ControlError::Unreachable)
    }

    /// Moves the call to new instructions at Twilio: the hand-over line in Twilio's own
    /// voice, then the owner's phone. Our stream, wherever it was, simply ends.
    async fn take_over_through_twilio(
        &self,
        twilio: &Twilio,
        tenant_id: TenantId,
        call_sid: &str,
    ) -> Result<(), ControlError> {
        let call = calls::find_by_sid(&self.pool, call_sid)
            .await
            .map_err(anyhow::Error::from)?
            .filter(|c| c.client_id == tenant_id)
            .ok_or(ControlError::NotLive)?;
        let tenant =
            tenants::find(&self.pool, tenant_id).await.map_err(anyhow::Error::from)?.ok_or(ControlError::NotLive)?;
        let language = tenant.default_language();
        let line = self.prompts.render(
            language,
            "takeover",
            &minijinja::context! { business_name => tenant.business_name.as_str() },
        );
        let caller_id = Some(call.from_number.as_str()).filter(|f| !f.is_empty());
        let instructions = twiml::say_and_dial(&line, language.twilio_locale(), &tenant.owner_phone, caller_id);
        twilio.redirect_call(call_sid, &instructions).await.map_err(|e| {
            tracing::error!(call_sid, error = %e, "Twilio could not move the call to the owner");
            ControlError::Unreachable
        })?;
        crate::services::calls::mark_handed_over(&self.pool, tenant_id, call.id).await?;
        tracing::info!(%tenant_id, call_sid, "call handed to the owner through Twilio");
        Ok(())
    }

    /// Listens for commands published by other instances and hands each to the call it
    /// names when that call runs here. Ends with the process; a dropped subscription is
    /// opened again.
    pub fn spawn_listener(&self) -> Option<JoinHandle<()>> {
        if self.store.kind() != "redis" {
            return None;
        }
        let this = self.clone();
        Some(tokio::spawn(async move {
            loop {
                match this.store.subscribe_commands().await {
                    Ok(Some(mut commands)) => {
                        while let Some(raw) = commands.next().await {
                            this.deliver_routed(&raw).await;
                        }
                        tracing::warn!("the call-command subscription closed; opening it again");
                    }
                    Ok(None) => return,
                    Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot subscribe to call commands"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }))
    }

    async fn deliver_routed(&self, raw: &str) {
        let routed = match Routed::from_json(raw) {
            Ok(routed) => routed,
            Err(e) => {
                tracing::warn!(error = %e, "skipping an unreadable call command");
                return;
            }
        };
        if self.registry.command(routed.tenant_id, &routed.call_sid, routed.command) == Delivery::Delivered
            && let Err(e) = self.store.acknowledge_command(&routed.id).await
        {
            tracing::warn!(call_sid = %routed.call_sid, error = format!("{e:#}"), "could not acknowledge a call command");
        }
    }
}
