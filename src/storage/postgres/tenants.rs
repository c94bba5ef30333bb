//! Tenants (the `clients` table): the businesses RinglyPro answers for.

use chrono::NaiveTime;
use sqlx::{FromRow, PgConnection, PgPool};

use crate::domain::language::Language;
use crate::domain::scheduling::{BusinessHours, Calendar};

/// A tenant as the call path and the web need it.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct Tenant {
    pub id: i64,
    pub business_name: String,
    pub business_description: String,
    pub services: String,
    /// `None` while the tenant waits for a number from the pool.
    pub ringlypro_number: Option<String>,
    pub owner_name: String,
    pub owner_phone: String,
    pub custom_greeting: Option<String>,
    pub timezone: String,
    pub business_days: String,
    pub business_hours_start: NaiveTime,
    pub business_hours_end: NaiveTime,
    pub appointment_minutes: i32,
    pub buffer_minutes: i32,
    pub rachel_enabled: bool,
    pub language: String,
    /// `stream` (Media Streams, our speech engines) or `relay` (ConversationRelay).
    pub voice_path: String,
    /// Record calls (both legs, Ogg Opus) and tell callers so. Off unless the owner opts in.
    pub recording_enabled: bool,
    /// Codes of the languages calls may be answered in (`en`, `es`).
    pub languages: Vec<String>,
}

impl Tenant {
    /// The tenant's calendar rules. Stored values were validated on the way in; should a
    /// row still be odd, fall back to safe defaults rather than fail a live call.
    pub fn calendar(&self) -> Calendar {
        let tz = self.timezone.parse().unwrap_or(chrono_tz::America::New_York);
        let hours = BusinessHours::parse(
            &self.business_days,
            &format!("{}-{}", self.business_hours_start.format("%H:%M"), self.business_hours_end.format("%H:%M")),
        )
        .unwrap_or(BusinessHours {
            days: [true, true, true, true, true, false, false],
            open: self.business_hours_start,
            close: self.business_hours_end,
        });
        Calendar {
            tz,
            hours,
            slot_minutes: self.appointment_minutes.max(5) as u32,
            buffer_minutes: self.buffer_minutes.max(0) as u32,
        }
    }

    pub fn default_language(&self) -> Language {
        Language::from_code(&self.language).unwrap_or_default()
    }

    /// Whether a call may switch to `language` (the owner's settings name the languages).
    pub fn answers_in(&self, language: Language) -> bool {
        language == self.default_language() || self.languages.iter().any(|c| Language::from_code(c) == Some(language))
    }
}

const COLUMNS: &str = "id, business_name, business_description, services, ringlypro_number, owner_name, \
     owner_phone, custom_greeting, timezone, business_days, business_hours_start, business_hours_end, \
     appointment_minutes, buffer_minutes, rachel_enabled, language, voice_path, recording_enabled, languages";

/// What creating a tenant needs.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub business_name: String,
    pub ringlypro_number: String,
    pub owner_name: String,
    pub owner_phone: String,
    pub timezone: String,
    pub business_days: String,
    pub open: NaiveTime,
    pub close: NaiveTime,
    pub appointment_minutes: i32,
    pub buffer_minutes: i32,
    pub custom_greeting: Option<String>,
    pub services: String,
    pub business_description: String,
    pub language: Language,
}

/// Finds the tenant whose RinglyPro number was called.
pub async fn find_by_number(pool: &PgPool, number: &str) -> sqlx::Result<Option<Tenant>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM clients WHERE ringlypro_number = $1")))
        .bind(number)
        .fetch_optional(pool)
        .await
}

pub async fn find(pool: &PgPool, id: i64) -> sqlx::Result<Option<Tenant>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM clients WHERE id = $1")))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<Tenant>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM clients ORDER BY id"))).fetch_all(pool).await
}

/// Inserts the tenant and its credit account in the caller's transaction.
pub async fn insert(conn: &mut PgConnection, new: &NewTenant) -> sqlx::Result<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO clients (business_name, ringlypro_number, owner_name, owner_phone, timezone, \
         business_days, business_hours_start, business_hours_end, appointment_minutes, buffer_minutes, \
         custom_greeting, services, business_description, language) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
    )
    .bind(&new.business_name)
    .bind(&new.ringlypro_number)
    .bind(&new.owner_name)
    .bind(&new.owner_phone)
    .bind(&new.timezone)
    .bind(&new.business_days)
    .bind(new.open)
    .bind(new.close)
    .bind(new.appointment_minutes)
    .bind(new.buffer_minutes)
    .bind(&new.custom_greeting)
    .bind(&new.services)
    .bind(&new.business_description)
    .bind(new.language.code())
    .fetch_one(&mut *conn)
    .await?;
    open_credit_account(&mut *conn, id).await?;
    Ok(id)
}

/// A tenant as signup creates it: no RinglyPro number yet, default hours.
#[derive(Debug, Clone)]
pub struct SignedUpTenant<'a> {
    pub user_id: i64,
    pub business_name: &'a str,
    pub business_phone: &'a str,
    pub business_type: Option<&'a str>,
    pub owner_name: &'a str,
    pub owner_phone: &'a str,
    pub owner_email: &'a str,
    pub timezone: &'a str,
}

/// Inserts a signed-up tenant (without its credit account) in the caller's transaction.
pub async fn insert_signed_up(conn: &mut PgConnection, new: &SignedUpTenant<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO clients (user_id, business_name, business_phone, business_type, owner_name, owner_phone, \
         owner_email, timezone) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(new.user_id)
    .bind(new.business_name)
    .bind(new.business_phone)
    .bind(new.business_type)
    .bind(new.owner_name)
    .bind(new.owner_phone)
    .bind(new.owner_email)
    .bind(new.timezone)
    .fetch_one(conn)
    .await
}

/// Opens the tenant's credit account (free minutes of the first cycle, no balance).
pub async fn open_credit_account(conn: &mut PgConnection, client_id: i64) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO credit_accounts (client_id) VALUES ($1)").bind(client_id).execute(conn).await.map(|_| ())
}

/// Turns the voice agent on or off; the next call reads the new value. Run it in a
/// tenant transaction: row-level security then refuses any other tenant's row.
pub async fn set_rachel_enabled(conn: &mut PgConnection, client_id: i64, enabled: bool) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE clients SET rachel_enabled = $2, updated_at = now() WHERE id = $1")
        .bind(client_id)
        .bind(enabled)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Turns call recording on or off for a tenant (the settings screen's switch).
pub async fn set_recording_enabled(pool: &PgPool, client_id: i64, enabled: bool) -> sqlx::Result<()> {
    let mut tx = super::begin_tenant(pool, client_id).await?;
    sqlx::query("UPDATE clients SET recording_enabled = $2, updated_at = now() WHERE id = $1")
        .bind(client_id)
        .bind(enabled)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}
