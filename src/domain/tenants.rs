//! A tenant as the call path and the web see it: its zone, languages, voice path and
//! calendar already typed, read once from the stored row. It must not read the database:
//! storage hands it the stored text and gets back a tenant or a clear error.

use chrono::NaiveTime;
use chrono_tz::Tz;

use crate::domain::ids::TenantId;

use crate::domain::language::Language;
use crate::domain::scheduling::{BusinessHours, Calendar};

/// How a tenant's calls reach the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoicePath {
    /// Twilio Media Streams into our own speech engines.
    Stream,
    /// Twilio's ConversationRelay (Twilio speaks and listens).
    Relay,
}

impl VoicePath {
    /// The stored name (`stream`, `relay`).
    pub fn as_str(self) -> &'static str {
        match self {
            VoicePath::Stream => "stream",
            VoicePath::Relay => "relay",
        }
    }
}

/// A tenant: a business RinglyPro answers for.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub business_name: String,
    pub business_description: String,
    pub services: String,
    /// `None` while the tenant waits for a number from the pool.
    pub ringlypro_number: Option<String>,
    pub owner_name: String,
    pub owner_phone: String,
    pub custom_greeting: Option<String>,
    pub timezone: Tz,
    /// The working days as the owner wrote them (`mon-fri`), for showing back.
    pub business_days: String,
    pub hours: BusinessHours,
    pub appointment_minutes: u32,
    pub buffer_minutes: u32,
    pub rachel_enabled: bool,
    /// The language calls are answered in first.
    pub language: Language,
    pub voice_path: VoicePath,
    /// Record calls (both legs, Ogg Opus) and tell callers so. Off unless the owner opts in.
    pub recording_enabled: bool,
    /// The languages calls may be answered in.
    pub languages: Vec<Language>,
}

/// A stored value a tenant cannot be built from. Values are checked on the way in, so
/// this means a row was changed behind the application's back: the call or page fails
/// loudly instead of running with a guessed zone or calendar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    #[error("stored time zone {value:?} is not an IANA time zone")]
    TimeZone { value: String },
    #[error("stored language {value:?} is not one we speak")]
    Language { value: String },
    #[error("stored voice path {value:?} is neither stream nor relay")]
    VoicePath { value: String },
    #[error("stored business hours are unreadable: {reason}")]
    Hours { reason: String },
    #[error("stored {field} {value} is negative")]
    Minutes { field: &'static str, value: i32 },
}

/// Reads a stored IANA zone name.
pub fn parse_zone(value: &str) -> Result<Tz, TenantError> {
    value.parse().map_err(|_| TenantError::TimeZone { value: value.to_owned() })
}

/// Reads a stored language code.
pub fn parse_language(value: &str) -> Result<Language, TenantError> {
    Language::from_code(value).ok_or_else(|| TenantError::Language { value: value.to_owned() })
}

/// Reads a stored voice path.
pub fn parse_voice_path(value: &str) -> Result<VoicePath, TenantError> {
    match value {
        "stream" => Ok(VoicePath::Stream),
        "relay" => Ok(VoicePath::Relay),
        other => Err(TenantError::VoicePath { value: other.to_owned() }),
    }
}

/// Reads the stored business days and opening window.
pub fn parse_hours(days: &str, open: NaiveTime, close: NaiveTime) -> Result<BusinessHours, TenantError> {
    let span = format!("{}-{}", open.format("%H:%M"), close.format("%H:%M"));
    BusinessHours::parse(days, &span).map_err(|e| TenantError::Hours { reason: e.to_string() })
}

/// Reads a stored length in minutes (never negative).
pub fn parse_minutes(field: &'static str, value: i32) -> Result<u32, TenantError> {
    u32::try_from(value).map_err(|_| TenantError::Minutes { field, value })
}

impl Tenant {
    /// The tenant's calendar rules.
    pub fn calendar(&self) -> Calendar {
        Calendar {
            tz: self.timezone,
            hours: self.hours.clone(),
            slot_minutes: self.appointment_minutes,
            buffer_minutes: self.buffer_minutes,
        }
    }

    /// The language calls are answered in first.
    pub fn default_language(&self) -> Language {
        self.language
    }

    /// Whether a call may switch to `language` (the owner's settings name the languages).
    pub fn answers_in(&self, language: Language) -> bool {
        language == self.language || self.languages.contains(&language)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_stored_zone_is_an_error_not_new_york() {
        assert_eq!(parse_zone("America/Chicago"), Ok(chrono_tz::America::Chicago));
        assert_eq!(parse_zone("Mars/Olympus"), Err(TenantError::TimeZone { value: "Mars/Olympus".into() }));
    }

    #[test]
    fn stored_languages_voice_paths_hours_and_minutes_are_read_strictly() {
        assert_eq!(parse_language("es"), Ok(Language::Spanish));
        assert!(matches!(parse_language("fr"), Err(TenantError::Language { .. })));
        assert_eq!(parse_voice_path("relay"), Ok(VoicePath::Relay));
        assert!(matches!(parse_voice_path("carrier-pigeon"), Err(TenantError::VoicePath { .. })));
        let nine = NaiveTime::from_hms_opt(9, 0, 0).unwrap();
        let five = NaiveTime::from_hms_opt(17, 0, 0).unwrap();
        assert_eq!(parse_hours("mon-sat", nine, five).unwrap().days, [true, true, true, true, true, true, false]);
        assert!(matches!(parse_hours("someday", nine, five), Err(TenantError::Hours { .. })));
        assert_eq!(parse_minutes("buffer_minutes", 10), Ok(10));
        assert!(matches!(
            parse_minutes("buffer_minutes", -1),
            Err(TenantError::Minutes { field: "buffer_minutes", .. })
        ));
    }
}
