//! Texts that act on the sender's next appointment.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::domain::tenants::Tenant;

/// Texts that act on the sender's next appointment.
pub async fn act_on_reply(
    _pool: &PgPool,
    _tenant: &Tenant,
    _from: &str,
    _body: &str,
    _now: DateTime<Utc>,
) -> anyhow::Result<Option<String>> {
    Ok(None)
}
