//! Tenants (the `clients` table): the businesses RinglyPro answers for.

use chrono::NaiveTime;
use chrono_tz::Tz;
use sqlx::{FromRow, PgConnection, PgPool};

use crate::domain::ids::{TenantId, UserId};
use crate::domain::language::Language;
use crate::domain::tenants;

pub use crate::domain::tenants::{Tenant, TenantError, VoicePath};

/// A `clients` row as stored; [`Tenant`] is what the rest of the code gets.
#[derive(Debug, Clone, FromRow)]
struct TenantRow {
    id: TenantId,
    business_name: String,
    business_description: String,
    services: String,
    ringlypro_number: Option<String>,
    owner_name: String,
    owner_phone: String,
    custom_greeting: Option<String>,
    timezone: String,
    business_days: String,
    business_hours_start: NaiveTime,
    business_hours_end: NaiveTime,
    appointment_minutes: i32,
    buffer_minutes: i32,
    rachel_enabled: bool,
    language: String,
    voice_path: String,
    recording_enabled: bool,
    languages: Vec<String>,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = TenantError;

    fn try_from(row: TenantRow) -> Result<Self, TenantError> {
        let id = row.id;
        Ok(Tenant {
            id,
            timezone: tenants::parse_zone(&row.timezone)?,
            hours: tenants::parse_hours(&row.business_days, row.business_hours_start, row.business_hours_end)?,
            appointment_minutes: tenants::parse_minutes("appointment_minutes", row.appointment_minutes)?,
            buffer_minutes: tenants::parse_minutes("buffer_minutes", row.buffer_minutes)?,
            language: tenants::parse_language(&row.language)?,
            voice_path: tenants::parse_voice_path(&row.voice_path)?,
            languages: row.languages.iter().map(|c| tenants::parse_language(c)).collect::<Result<_, _>>()?,
            business_days: row.business_days,
            business_name: row.business_name,
            business_description: row.business_description,
            services: row.services,
            ringlypro_number: row.ringlypro_number,
            owner_name: row.owner_name,
            owner_phone: row.owner_phone,
            custom_greeting: row.custom_greeting,
            rachel_enabled: row.rachel_enabled,
            recording_enabled: row.recording_enabled,
        })
    }
}

/// Builds the tenant from its row; a row it cannot be built from is logged and becomes a
/// decode error, so the request or call fails instead of guessing.
fn typed(row: TenantRow) -> sqlx::Result<Tenant> {
    let tenant_id = row.id;
    Tenant::try_from(row).map_err(|e| {
        tracing::error!(%tenant_id, error = %e, "a stored tenant cannot be read");
        sqlx::Error::Decode(Box::new(e))
    })
}

/// A stored IANA zone name, read into a [`Tz`] by the rows that carry one
/// (`#[sqlx(try_from = "StoredZone")]`).
#[derive(Debug, Clone, sqlx::Type)]
#[sqlx(transparent)]
pub struct StoredZone(String);

impl TryFrom<StoredZone> for Tz {
    type Error = TenantError;

    fn try_from(zone: StoredZone) -> Result<Self, TenantError> {
        tenants::parse_zone(&zone.0).inspect_err(|e| tracing::error!(error = %e, "a stored time zone cannot be read"))
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
    pub timezone: Tz,
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
    let row: Option<TenantRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM clients WHERE ringlypro_number = $1")))
            .bind(number)
            .fetch_optional(pool)
            .await?;
    row.map(typed).transpose()
}

pub async fn find(pool: &PgPool, id: TenantId) -> sqlx::Result<Option<Tenant>> {
    let row: Option<TenantRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM clients WHERE id = $1")))
            .bind(id)
            .fetch_optional(pool)
            .await?;
    row.map(typed).transpose()
}

pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<Tenant>> {
    let rows: Vec<TenantRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM clients ORDER BY id")))
            .fetch_all(pool)
            .await?;
    rows.into_iter().map(typed).collect()
}

/// Inserts the tenant and its credit account in the caller's transaction.
pub async fn insert(conn: &mut PgConnection, new: &NewTenant) -> sqlx::Result<TenantId> {
    let id: TenantId = sqlx::query_scalar(
        "INSERT INTO clients (business_name, ringlypro_number, owner_name, owner_phone, timezone, \
         business_days, business_hours_start, business_hours_end, appointment_minutes, buffer_minutes, \
         custom_greeting, services, business_description, language) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
    )
    .bind(&new.business_name)
    .bind(&new.ringlypro_number)
    .bind(&new.owner_name)
    .bind(&new.owner_phone)
    .bind(new.timezone.name())
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
    pub user_id: UserId,
    pub business_name: &'a str,
    pub business_phone: &'a str,
    pub business_type: Option<&'a str>,
    pub owner_name: &'a str,
    pub owner_phone: &'a str,
    pub owner_email: &'a str,
    pub timezone: Tz,
}

/// Inserts a signed-up tenant (without its credit account) in the caller's transaction.
pub async fn insert_signed_up(conn: &mut PgConnection, new: &SignedUpTenant<'_>) -> sqlx::Result<TenantId> {
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
    .bind(new.timezone.name())
    .fetch_one(conn)
    .await
}

/// Opens the tenant's credit account (free minutes of the first cycle, no balance).
pub async fn open_credit_account(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<()> {
    // The first cycle is the month it is now in the tenant's own zone.
    sqlx::query(
        "INSERT INTO credit_accounts (client_id, cycle_start) \
         SELECT id, date_trunc('month', now() AT TIME ZONE timezone)::date FROM clients WHERE id = $1",
    )
    .bind(client_id)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Turns the voice agent on or off; the next call reads the new value. Run it in a
/// tenant transaction: row-level security then refuses any other tenant's row.
pub async fn set_rachel_enabled(conn: &mut PgConnection, client_id: TenantId, enabled: bool) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE clients SET rachel_enabled = $2, updated_at = now() WHERE id = $1")
        .bind(client_id)
        .bind(enabled)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Turns call recording on or off for a tenant (the settings screen's switch).
pub async fn set_recording_enabled(pool: &PgPool, client_id: TenantId, enabled: bool) -> sqlx::Result<()> {
    let mut tx = super::begin_tenant(pool, client_id).await?;
    sqlx::query("UPDATE clients SET recording_enabled = $2, updated_at = now() WHERE id = $1")
        .bind(client_id)
        .bind(enabled)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// The language the owner reads alerts and summaries in (Settings, call summaries);
/// English when unset.
pub async fn owner_language(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<Language> {
    let code: Option<String> = sqlx::query_scalar("SELECT summary_language FROM clients WHERE id = $1")
        .bind(client_id)
        .fetch_optional(conn)
        .await?;
    Ok(code.as_deref().and_then(Language::from_code).unwrap_or_default())
}
