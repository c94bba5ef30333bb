//! Recording calls: the incoming call, and everything the conversation produced when it
//! ends (transcript with latency figures, outcome, what failed), in one transaction.

use anyhow::Context as _;
use sqlx::PgPool;

use crate::domain::calls::Outcome;
use crate::domain::ids::{CallId, TenantId};
use crate::storage::postgres::calls::{self, Turn};
use crate::storage::postgres::{begin_tenant, contacts};

/// What a finished media stream leaves behind.
#[derive(Debug, Clone)]
pub struct CallRecord<'a> {
    pub client_id: TenantId,
    pub call_id: CallId,
    pub stream_sid: &'a str,
    pub language: &'a str,
    pub caller_phone: Option<&'a str>,
    pub caller_name: Option<&'a str>,
    pub outcome: Outcome,
    pub failures: &'a str,
    pub turns: &'a [Turn],
}

/// Saves the conversation. Safe to call again (turns are upserted by sequence number).
pub async fn save(pool: &PgPool, record: &CallRecord<'_>) -> anyhow::Result<()> {
    let mut tx = begin_tenant(pool, record.client_id).await?;
    calls::save_turns(&mut tx, record.client_id, record.call_id, record.turns).await.context("saving turns")?;
    // The contact comes after the turns, so its row is locked only for the statements
    // left before the commit.
    let contact_id = match record.caller_phone.filter(|p| !p.is_empty()) {
        Some(phone) => Some(
            contacts::upsert_by_phone(&mut tx, record.client_id, phone, record.caller_name.unwrap_or(""))
                .await
                .context("saving the caller's contact")?,
        ),
        None => None,
    };
    let end = calls::StreamEnd {
        stream_sid: record.stream_sid,
        language: record.language,
        failures: record.failures,
        contact_id,
        outcome: Some(record.outcome).filter(|o| *o != Outcome::None),
    };
    calls::finish_stream(&mut tx, record.call_id, &end).await.context("finishing the call")?;
    tx.commit().await.context("committing the call record")?;
    Ok(())
}

/// Records at once that the call goes to the owner, so the TwiML fetched when the stream
/// closes dials them even before the rest of the record is saved.
pub async fn mark_handed_over(pool: &PgPool, client_id: TenantId, call_id: CallId) -> anyhow::Result<()> {
    let mut tx = begin_tenant(pool, client_id).await?;
    calls::set_outcome(&mut tx, call_id, Outcome::Transfer).await?;
    tx.commit().await?;
    Ok(())
}
