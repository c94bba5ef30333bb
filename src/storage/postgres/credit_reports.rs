//! What the Credits page reads: the ledger as one list (calls, payments, monthly resets),
//! minutes per local day, and what the minutes bought in a period. Read-only, meant for a
//! tenant transaction (`begin_tenant`); credit itself moves only in `services::credits`.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{FromRow, PgConnection, PgPool};

use crate::domain::credits::NotCharged;
use crate::domain::ids::TenantId;

/// One line of the ledger, whatever table it comes from (as stored, and in the JSON API).
#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct LedgerLine {
    /// `call`, `reset`, or a payment's kind (`reload`, `auto_reload`, `manual_reload`,
    /// `refund`, `adjustment`, `failed`).
    pub kind: String,
    pub created_at: DateTime<Utc>,
    /// What the line did to the balance: a call's cost as a negative number, a payment as
    /// it was recorded, zero for a reset.
    pub amount_cents: i64,
    /// `None` for a reset, which moves no money.
    pub balance_before_cents: Option<i64>,
    pub balance_after_cents: Option<i64>,
    pub call_sid: Option<String>,
    /// Who called, for a call.
    pub caller: Option<String>,
    pub minutes: i32,
    pub free_minutes: i32,
    pub paid_minutes: i32,
    /// Why a call cost nothing: `owner_answered`, `too_short`, `blocked_caller`, `not_answered`.
    #[schema(value_type = Option<String>)]
    pub not_charged: Option<NotCharged>,
    /// A payment's note (an adjustment's reason); shown as the line's `reason`.
    #[serde(skip)]
    pub note: Option<String>,
    /// A reset's new cycle and how many free minutes the old one had used.
    pub cycle_start: Option<NaiveDate>,
    pub free_used_before: Option<i32>,
}

/// The newest `limit` lines of the ledger, newest first.
pub async fn ledger(conn: &mut PgConnection, client_id: TenantId, limit: i64) -> sqlx::Result<Vec<LedgerLine>> {
    sqlx::query_as(
        "SELECT kind, created_at, amount_cents, balance_before_cents, balance_after_cents, call_sid, caller, minutes, \
             free_minutes, paid_minutes, not_charged, note, cycle_start, free_used_before \
         FROM ( \
             SELECT 'call' AS kind, u.created_at, -u.cost_cents AS amount_cents, \
                 u.balance_before_cents, u.balance_after_cents, u.call_sid, c.from_number AS caller, u.minutes, \
                 u.free_minutes, u.paid_minutes, u.not_charged, NULL::text AS note, NULL::date AS cycle_start, \
                 NULL::integer AS free_used_before, u.id AS seq \
             FROM usage_records u LEFT JOIN calls c ON c.id = u.call_id WHERE u.client_id = $1 \
             UNION ALL \
             SELECT p.kind, p.created_at, p.amount_cents, p.balance_before_cents, p.balance_after_cents, NULL, NULL, \
                 0, 0, 0, NULL, p.note, NULL, NULL, p.id \
             FROM payment_transactions p WHERE p.client_id = $1 \
             UNION ALL \
             SELECT 'reset', r.created_at, 0, NULL, NULL, NULL, NULL, 0, 0, 0, NULL, NULL, r.cycle_start, \
                 r.free_used_before, 0 \
             FROM credit_cycles r WHERE r.client_id = $1 \
         ) lines ORDER BY created_at DESC, seq DESC LIMIT $2",
    )
    .bind(client_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Minutes charged (free and paid) on one local day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromRow)]
pub struct DayMinutes {
    pub day: NaiveDate,
    pub minutes: i64,
}

/// Minutes per local day (in `zone`) of the calls that started from `from` on, days with
/// no minutes left out. A call counts on the day it started, not the day it was metered.
pub async fn minutes_by_day(
    conn: &mut PgConnection,
    client_id: TenantId,
    zone: &str,
    from: DateTime<Utc>,
) -> sqlx::Result<Vec<DayMinutes>> {
    sqlx::query_as(
        "SELECT (COALESCE(c.started_at, u.created_at) AT TIME ZONE $2)::date AS day, SUM(u.minutes)::bigint AS minutes \
         FROM usage_records u LEFT JOIN calls c ON c.id = u.call_id \
         WHERE u.client_id = $1 AND COALESCE(c.started_at, u.created_at) >= $3 \
         GROUP BY 1 ORDER BY 1",
    )
    .bind(client_id)
    .bind(zone)
    .bind(from)
    .fetch_all(conn)
    .await
}

/// What the minutes of `[from, to)` bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, FromRow)]
pub struct PeriodValue {
    /// Calls the agent answered (not sent to the owner).
    pub calls_answered: i64,
    /// Appointments booked on a call (a voice source), created in the period.
    pub bookings: i64,
    /// What calls metered in the period cost.
    pub spent_cents: i64,
    /// Of those bookings: kept (marked completed), missed, cancelled.
    pub kept: i64,
    pub no_shows: i64,
    pub cancelled: i64,
}

pub async fn period_value(
    conn: &mut PgConnection,
    client_id: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<PeriodValue> {
    sqlx::query_as(
        "WITH booked AS ( \
             SELECT status FROM appointments \
             WHERE client_id = $1 AND source IN ('voice_booking', 'voice_booking_spanish') \
               AND created_at >= $2 AND created_at < $3) \
         SELECT \
             (SELECT count(*) FROM calls WHERE client_id = $1 AND handled_by = 'agent' \
                 AND started_at >= $2 AND started_at < $3) AS calls_answered, \
             (SELECT count(*) FROM booked) AS bookings, \
             (SELECT COALESCE(SUM(cost_cents), 0)::bigint FROM usage_records WHERE client_id = $1 \
                 AND created_at >= $2 AND created_at < $3) AS spent_cents, \
             (SELECT count(*) FROM booked WHERE status = 'completed') AS kept, \
             (SELECT count(*) FROM booked WHERE status = 'no_show') AS no_shows, \
             (SELECT count(*) FROM booked WHERE status = 'cancelled') AS cancelled",
    )
    .bind(client_id)
    .bind(from)
    .bind(to)
    .fetch_one(conn)
    .await
}

/// Whether the tenant of the live session with this token hash is locked: `None` without
/// such a session (or a session with no tenant). One query, for every signed-in request.
pub async fn session_locked(pool: &PgPool, token_hash: &[u8]) -> sqlx::Result<Option<bool>> {
    // The tenant is the user's first, as `sessions::find` picks it.
    sqlx::query_scalar(
        "SELECT COALESCE(ca.locked, false) FROM sessions s \
         JOIN LATERAL (SELECT c.id FROM clients c WHERE c.user_id = s.user_id ORDER BY c.id LIMIT 1) t ON true \
         LEFT JOIN credit_accounts ca ON ca.client_id = t.id \
         WHERE s.token_hash = $1 AND s.expires_at > now()",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await
}
