//! The owner's business settings on the `clients` row: read for the settings screen and
//! saved from it. Meant for a tenant transaction (`begin_tenant`), so row-level security
//! backs up every `WHERE id = $1`.

use chrono::NaiveTime;
use sqlx::{FromRow, PgConnection};

use crate::domain::ids::TenantId;
use crate::domain::settings::{SettingsForm, ValidSettings};

/// The settings as stored.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct Settings {
    pub business_name: String,
    pub ringlypro_number: Option<String>,
    pub owner_phone: String,
    pub custom_greeting: Option<String>,
    pub business_description: String,
    pub services: String,
    pub business_days: String,
    pub business_hours_start: NaiveTime,
    pub business_hours_end: NaiveTime,
    pub appointment_minutes: i32,
    pub buffer_minutes: i32,
    pub timezone: String,
    pub languages: Vec<String>,
    pub language: String,
    pub rachel_enabled: bool,
    pub recording_enabled: bool,
}

impl Settings {
    /// The stored settings as the form shows them.
    pub fn form(&self) -> SettingsForm {
        SettingsForm {
            custom_greeting: self.custom_greeting.clone().unwrap_or_default(),
            business_description: self.business_description.clone(),
            services: self.services.clone(),
            business_days: self.business_days.clone(),
            opens: self.business_hours_start.format("%H:%M").to_string(),
            closes: self.business_hours_end.format("%H:%M").to_string(),
            appointment_minutes: self.appointment_minutes.to_string(),
            buffer_minutes: self.buffer_minutes.to_string(),
            timezone: self.timezone.clone(),
            languages: self.languages.clone(),
            default_language: self.language.clone(),
        }
    }
}

pub async fn load(conn: &mut PgConnection, client_id: TenantId) -> sqlx::Result<Option<Settings>> {
    sqlx::query_as(
        "SELECT business_name, ringlypro_number, owner_phone, custom_greeting, business_description, services, \
         business_days, business_hours_start, business_hours_end, appointment_minutes, buffer_minutes, timezone, \
         languages, language, rachel_enabled, recording_enabled FROM clients WHERE id = $1",
    )
    .bind(client_id)
    .fetch_optional(conn)
    .await
}

/// The two switches; `None` leaves one as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Switches {
    pub rachel_enabled: Option<bool>,
    pub recording_enabled: Option<bool>,
}

/// Saves validated settings (and any switch given); the next call reads them. `false`
/// when the tenant's row is not visible to this transaction.
pub async fn save(
    conn: &mut PgConnection,
    client_id: TenantId,
    s: &ValidSettings,
    switches: Switches,
) -> sqlx::Result<bool> {
    let languages: Vec<&str> = s.languages.iter().map(|l| l.code()).collect();
    let done = sqlx::query(
        "UPDATE clients SET custom_greeting = $2, business_description = $3, services = $4, business_days = $5, \
         business_hours_start = $6, business_hours_end = $7, appointment_minutes = $8, buffer_minutes = $9, \
         timezone = $10, languages = $11, language = $12, \
         rachel_enabled = COALESCE($13, rachel_enabled), recording_enabled = COALESCE($14, recording_enabled), \
         updated_at = now() WHERE id = $1",
    )
    .bind(client_id)
    .bind(&s.custom_greeting)
    .bind(&s.business_description)
    .bind(&s.services)
    .bind(&s.business_days)
    .bind(s.opens)
    .bind(s.closes)
    .bind(s.appointment_minutes)
    .bind(s.buffer_minutes)
    .bind(&s.timezone)
    .bind(&languages)
    .bind(s.default_language.code())
    .bind(switches.rachel_enabled)
    .bind(switches.recording_enabled)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}
