//! The queue of changes waiting to reach the owner's other systems (Google Calendar,
//! GoHighLevel): one row per appointment (or, for GoHighLevel, contact) per system, queued
//! in the transaction that made the change. A newer change to the same subject bumps the
//! row's `version`, so a worker that finished an older one leaves the row for the next run.
//! Jobs are claimed with `FOR UPDATE SKIP LOCKED` and a lease, like webhooks.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};

use crate::domain::ids::{AppointmentId, ContactId, TenantId};
use crate::domain::names::named;

named! {
    /// The system a job brings in line.
    pub enum Target {
        Google = "google",
        GoHighLevel = "gohighlevel",
    }
}

named! {
    /// What the job does with the subject's copy over there.
    pub enum SyncAction {
        Upsert = "upsert",
        Delete = "delete",
    }
}

impl TryFrom<String> for Target {
    type Error = crate::domain::names::UnknownName;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl TryFrom<String> for SyncAction {
    type Error = crate::domain::names::UnknownName;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Appointment(AppointmentId),
    Contact(ContactId),
}

impl Target {
    /// The table whose row says the business is connected.
    fn connections(self) -> &'static str {
        match self {
            Target::Google => "google_connections",
            Target::GoHighLevel => "ghl_connections",
        }
    }

    /// Whether the system takes this kind of subject (Google has no contacts).
    fn takes(self, subject: Subject) -> bool {
        !matches!((self, subject), (Target::Google, Subject::Contact(_)))
    }
}

/// Queues `subject` for every connected system that takes it, in the caller's transaction;
/// nothing for a system the business has not connected. A job already waiting for the
/// subject takes the newer action and runs again at once.
pub async fn enqueue(
    conn: &mut PgConnection,
    client_id: TenantId,
    subject: Subject,
    action: SyncAction,
) -> sqlx::Result<()> {
    for &target in Target::ALL.iter().filter(|t| t.takes(subject)) {
        let (appointment_id, contact_id, key) = match subject {
            // Google's key keeps the shape it had before contacts were queued.
            Subject::Appointment(id) => (Some(id), None, id.0.to_string()),
            Subject::Contact(id) => (None, Some(id), format!("contact:{}", id.0)),
        };
        let prefix = target.as_str();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO calendar_sync_jobs (client_id, target, appointment_id, contact_id, action, unique_key) \
             SELECT client_id, $2, $3, $4, $5, '{prefix}:' || client_id || ':' || $6 FROM {} WHERE client_id = $1 \
             ON CONFLICT (unique_key) DO UPDATE SET action = EXCLUDED.action, \
                 version = calendar_sync_jobs.version + 1, attempts = 0, next_attempt_at = now(), last_error = NULL",
            target.connections()
        )))
        .bind(client_id)
        .bind(target.as_str())
        .bind(appointment_id)
        .bind(contact_id)
        .bind(action.as_str())
        .bind(key)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A job claimed for running.
#[derive(Debug, Clone, FromRow)]
pub struct Job {
    pub id: i64,
    pub client_id: TenantId,
    pub appointment_id: Option<AppointmentId>,
    pub contact_id: Option<ContactId>,
    #[sqlx(try_from = "String")]
    pub action: SyncAction,
    pub version: i32,
    /// Counting this one.
    pub attempts: i32,
}

impl Job {
    pub fn subject(&self) -> Option<Subject> {
        match (self.appointment_id, self.contact_id) {
            (Some(id), _) => Some(Subject::Appointment(id)),
            (None, Some(id)) => Some(Subject::Contact(id)),
            (None, None) => None,
        }
    }
}

/// Claims up to `limit` of the system's due jobs for `lease_secs`, counting the attempt.
pub async fn claim_jobs(
    pool: &PgPool,
    target: Target,
    now: DateTime<Utc>,
    limit: i64,
    lease_secs: i64,
) -> sqlx::Result<Vec<Job>> {
    sqlx::query_as(
        "WITH due AS ( \
             SELECT id FROM calendar_sync_jobs \
             WHERE target = $4 AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1) \
             ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED \
         ) \
         UPDATE calendar_sync_jobs j SET lease_until = $1 + make_interval(secs => $3), attempts = j.attempts + 1 \
         FROM due WHERE j.id = due.id \
         RETURNING j.id, j.client_id, j.appointment_id, j.contact_id, j.action, j.version, j.attempts",
    )
    .bind(now)
    .bind(limit)
    .bind(lease_secs as f64)
    .bind(target.as_str())
    .fetch_all(pool)
    .await
}

/// The job is done: gone, unless a newer change arrived meanwhile (then it runs again).
pub async fn finish_job(pool: &PgPool, job: &Job) -> sqlx::Result<()> {
    let deleted = sqlx::query("DELETE FROM calendar_sync_jobs WHERE id = $1 AND version = $2")
        .bind(job.id)
        .bind(job.version)
        .execute(pool)
        .await?
        .rows_affected();
    if deleted == 0 {
        sqlx::query("UPDATE calendar_sync_jobs SET lease_until = NULL WHERE id = $1")
            .bind(job.id)
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// The job failed for now: tried again at `at` (at once when a newer change arrived).
pub async fn retry_job(pool: &PgPool, job: &Job, at: DateTime<Utc>, error: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE calendar_sync_jobs SET lease_until = NULL, last_error = $2, \
             next_attempt_at = CASE WHEN version = $4 THEN $3 ELSE now() END WHERE id = $1",
    )
    .bind(job.id)
    .bind(error)
    .bind(at)
    .bind(job.version)
    .execute(pool)
    .await
    .map(|_| ())
}

/// The business's jobs waiting for a system (for its Integrations page).
pub async fn pending_jobs(conn: &mut PgConnection, client_id: TenantId, target: Target) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM calendar_sync_jobs WHERE client_id = $1 AND target = $2")
        .bind(client_id)
        .bind(target.as_str())
        .fetch_one(conn)
        .await
}

/// Sends the business's waiting jobs for a system now (after a reconnect).
pub async fn wake(conn: &mut PgConnection, client_id: TenantId, target: Target) -> sqlx::Result<()> {
    sqlx::query("UPDATE calendar_sync_jobs SET next_attempt_at = now() WHERE client_id = $1 AND target = $2")
        .bind(client_id)
        .bind(target.as_str())
        .execute(conn)
        .await
        .map(|_| ())
}

/// Forgets the business's waiting jobs for a system (after a disconnect).
pub async fn drop_all(conn: &mut PgConnection, client_id: TenantId, target: Target) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM calendar_sync_jobs WHERE client_id = $1 AND target = $2")
        .bind(client_id)
        .bind(target.as_str())
        .execute(conn)
        .await
        .map(|_| ())
}
