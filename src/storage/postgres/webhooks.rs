//! Outbound webhooks: the business's endpoints, and the deliveries that tell them of
//! events. [`emit`] writes one delivery per subscribed endpoint inside the caller's
//! transaction, so an event is told exactly when its change commits; the worker claims due
//! deliveries with `FOR UPDATE SKIP LOCKED` and a lease.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{FromRow, PgConnection, PgPool};
use utoipa::ToSchema;

use crate::domain::events::EventKind;
use crate::domain::ids::TenantId;

/// An endpoint as the owner sees it.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct Endpoint {
    pub id: i64,
    pub url: String,
    /// The key deliveries are signed with; the receiver keeps it too.
    pub secret: String,
    /// The event names it receives.
    #[schema(example = json!(["appointment.booked", "call.completed"]))]
    pub events: Vec<String>,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

/// A delivery as the owner sees it in the log.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct Delivery {
    pub id: i64,
    pub endpoint_id: i64,
    pub url: String,
    pub event_id: String,
    pub event_type: String,
    /// `pending` (retrying), `delivered` or `failed` (gave up; a resend tries again).
    pub status: String,
    pub attempts: i32,
    /// The endpoint's last HTTP status, if it answered.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A delivery claimed for sending.
#[derive(Debug, Clone, FromRow)]
pub struct Claimed {
    pub id: i64,
    pub client_id: TenantId,
    pub url: String,
    pub secret: String,
    pub body: String,
    pub event_id: String,
    pub event_type: String,
    pub attempts: i32,
    pub give_up_at: DateTime<Utc>,
    pub endpoint_removed: bool,
}

/// Records that `kind` happened at the business with `data`, for each of its endpoints
/// subscribed to it; returns the event's id when any endpoint is. Run it in the
/// transaction that makes the change.
pub async fn emit(
    conn: &mut PgConnection,
    client_id: TenantId,
    kind: EventKind,
    data: Value,
) -> sqlx::Result<Option<String>> {
    let event_id = format!("evt_{}", uuid::Uuid::now_v7().simple());
    let body = json!({
        "id": event_id,
        "type": kind.as_str(),
        "created_at": Utc::now(),
        "business_id": client_id,
        "data": data,
    })
    .to_string();
    let written = sqlx::query(
        "INSERT INTO webhook_deliveries (client_id, endpoint_id, event_id, event_type, body) \
         SELECT client_id, id, $2, $3, $4 FROM webhook_endpoints \
         WHERE client_id = $1 AND removed_at IS NULL AND $3 = ANY(events) \
         ON CONFLICT (endpoint_id, event_id) DO NOTHING",
    )
    .bind(client_id)
    .bind(&event_id)
    .bind(kind.as_str())
    .bind(&body)
    .execute(conn)
    .await?
    .rows_affected();
    Ok((written > 0).then_some(event_id))
}

/// Whether any of the business's endpoints takes `kind`: lets a caller skip building an
/// event nobody receives.
pub async fn wanted(conn: &mut PgConnection, client_id: TenantId, kind: EventKind) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM webhook_endpoints \
                        WHERE client_id = $1 AND removed_at IS NULL AND $2 = ANY(events))",
    )
    .bind(client_id)
    .bind(kind.as_str())
    .fetch_one(conn)
    .await
}

const ENDPOINT_COLUMNS: &str = "id, url, secret, events, description, created_at";

pub async fn add_endpoint(
    conn: &mut PgConnection,
    client_id: TenantId,
    url: &str,
    secret: &str,
    events: &[String],
    description: &str,
) -> sqlx::Result<Endpoint> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO webhook_endpoints (client_id, url, secret, events, description) VALUES ($1, $2, $3, $4, $5) \
         RETURNING {ENDPOINT_COLUMNS}"
    )))
    .bind(client_id)
    .bind(url)
    .bind(secret)
    .bind(events)
    .bind(description)
    .fetch_one(conn)
    .await
}

/// The business's endpoints in use, oldest first.
pub async fn endpoints(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<Vec<Endpoint>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE client_id = $1 AND removed_at IS NULL ORDER BY id"
    )))
    .bind(client_id)
    .fetch_all(conn)
    .await
}

/// Stops an endpoint receiving anything; deliveries still pending for it give up.
pub async fn remove_endpoint(conn: &mut PgConnection, client_id: TenantId, id: i64) -> sqlx::Result<bool> {
    let removed = sqlx::query(
        "UPDATE webhook_endpoints SET removed_at = now() WHERE client_id = $1 AND id = $2 AND removed_at IS NULL",
    )
    .bind(client_id)
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        > 0;
    if removed {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed', last_error = 'the endpoint was removed', lease_until = NULL \
             WHERE client_id = $1 AND endpoint_id = $2 AND status = 'pending'",
        )
        .bind(client_id)
        .bind(id)
        .execute(conn)
        .await?;
    }
    Ok(removed)
}

const DELIVERY_COLUMNS: &str = "d.id, d.endpoint_id, e.url, d.event_id, d.event_type, d.status, d.attempts, \
     d.last_status, d.last_error, d.next_attempt_at, d.created_at, d.delivered_at";

/// The business's latest deliveries, newest first.
pub async fn deliveries(conn: &mut PgConnection, client_id: TenantId, limit: i64) -> sqlx::Result<Vec<Delivery>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
         WHERE d.client_id = $1 ORDER BY d.created_at DESC, d.id DESC LIMIT $2"
    )))
    .bind(client_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Sends a delivery again now, with the same event id and body, retrying for another
/// day; `None` when the business has no such delivery or its endpoint was removed.
pub async fn resend(conn: &mut PgConnection, client_id: TenantId, id: i64) -> sqlx::Result<Option<Delivery>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH again AS ( \
             UPDATE webhook_deliveries d SET status = 'pending', next_attempt_at = now(), \
                 give_up_at = now() + interval '1 day', lease_until = NULL, delivered_at = NULL \
             FROM webhook_endpoints e \
             WHERE d.client_id = $1 AND d.id = $2 AND e.id = d.endpoint_id AND e.removed_at IS NULL \
             RETURNING d.* \
         ) \
         SELECT {DELIVERY_COLUMNS} FROM again d JOIN webhook_endpoints e ON e.id = d.endpoint_id"
    )))
    .bind(client_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Claims up to `limit` due deliveries for `lease_secs`, counting the attempt.
pub async fn claim_due(pool: &PgPool, now: DateTime<Utc>, limit: i64, lease_secs: i64) -> sqlx::Result<Vec<Claimed>> {
    sqlx::query_as(
        "WITH due AS ( \
             SELECT id FROM webhook_deliveries \
             WHERE status = 'pending' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1) \
             ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED \
         ) \
         UPDATE webhook_deliveries d SET lease_until = $1 + make_interval(secs => $3), attempts = d.attempts + 1 \
         FROM due, webhook_endpoints e \
         WHERE d.id = due.id AND e.id = d.endpoint_id \
         RETURNING d.id, d.client_id, e.url, e.secret, d.body, d.event_id, d.event_type, d.attempts, d.give_up_at, \
                   e.removed_at IS NOT NULL AS endpoint_removed",
    )
    .bind(now)
    .bind(limit)
    .bind(lease_secs as f64)
    .fetch_all(pool)
    .await
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Delivered {
        status: i32,
    },
    /// Try again at `at` (or give up, past the delivery's `give_up_at`).
    Retry {
        status: Option<i32>,
        error: String,
        at: DateTime<Utc>,
    },
    Failed {
        status: Option<i32>,
        error: String,
    },
}

/// Records an attempt on a claimed delivery.
pub async fn record(pool: &PgPool, claimed: &Claimed, attempt: &Attempt) -> sqlx::Result<()> {
    let (status, last_status, error, next) = match attempt {
        Attempt::Delivered { status } => ("delivered", Some(*status), None, None),
        Attempt::Retry { status, error, at } if *at <= claimed.give_up_at => {
            ("pending", *status, Some(error.as_str()), Some(*at))
        }
        Attempt::Retry { status, error, .. } | Attempt::Failed { status, error } => {
            ("failed", *status, Some(error.as_str()), None)
        }
    };
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $2, last_status = $3, last_error = $4, \
             next_attempt_at = coalesce($5, next_attempt_at), lease_until = NULL, \
             delivered_at = CASE WHEN $2 = 'delivered' THEN now() ELSE delivered_at END \
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(claimed.id)
    .bind(status)
    .bind(last_status)
    .bind(error)
    .bind(next)
    .execute(pool)
    .await
    .map(|_| ())
}
