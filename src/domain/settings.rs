//! The owner's business settings as typed on the settings screen, and the rules each field
//! must meet before the next call uses it. Pure: reading and saving live in storage.

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};

use crate::domain::accounts::FieldError;
use crate::domain::language::Language;
use crate::domain::scheduling::{BusinessHours, ScheduleError};

/// Longest greeting Rachel will read out (about 20 seconds of speech).
pub const MAX_GREETING: usize = 300;
pub const MAX_DESCRIPTION: usize = 1000;
pub const MAX_SERVICES: usize = 2000;

/// The settings form exactly as typed, kept whole so a form with a mistake comes back
/// with everything the owner entered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SettingsForm {
    pub custom_greeting: String,
    pub business_description: String,
    pub services: String,
    /// e.g. `mon-fri`, `mon,wed,fri`, `daily`.
    pub business_days: String,
    /// Opening time, `HH:MM`.
    pub opens: String,
    /// Closing time, `HH:MM`.
    pub closes: String,
    pub appointment_minutes: String,
    pub buffer_minutes: String,
    /// IANA time zone, e.g. `America/Chicago`.
    pub timezone: String,
    /// Language codes Rachel (`en`) and Lina (`es`) answer in.
    pub languages: Vec<String>,
    /// The language a call starts in.
    pub default_language: String,
}

/// Settings that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSettings {
    /// `None` means the standard greeting with the business's name.
    pub custom_greeting: Option<String>,
    pub business_description: String,
    pub services: String,
    pub business_days: String,
    pub opens: NaiveTime,
    pub closes: NaiveTime,
    pub appointment_minutes: i32,
    pub buffer_minutes: i32,
    pub timezone: String,
    pub languages: Vec<Language>,
    pub default_language: Language,
}

fn too_long(errors: &mut Vec<FieldError>, field: &'static str, what: &str, text: &str, max: usize) {
    if text.chars().count() > max {
        errors.push(FieldError::new(field, format!("keep the {what} to {max} characters or fewer")));
    }
}

fn minutes(
    errors: &mut Vec<FieldError>,
    field: &'static str,
    what: &str,
    text: &str,
    range: std::ops::RangeInclusive<i32>,
) -> i32 {
    match text.trim().parse::<i32>() {
        Ok(n) if range.contains(&n) => n,
        _ => {
            errors.push(FieldError::new(
                field,
                format!("enter the {what} as whole minutes from {} to {}", range.start(), range.end()),
            ));
            *range.start()
        }
    }
}

fn time_of_day(text: &str) -> Option<NaiveTime> {
    let text = text.trim();
    NaiveTime::parse_from_str(text, "%H:%M").or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S")).ok()
}

impl SettingsForm {
    /// Checks every field, returning all the mistakes at once.
    pub fn validate(&self) -> Result<ValidSettings, Vec<FieldError>> {
        let mut errors = Vec::new();
        let greeting = self.custom_greeting.trim();
        too_long(&mut errors, "custom_greeting", "greeting", greeting, MAX_GREETING);
        let description = self.business_description.trim();
        too_long(&mut errors, "business_description", "business description", description, MAX_DESCRIPTION);
        let services = self.services.trim();
        too_long(&mut errors, "services", "services and prices", services, MAX_SERVICES);

        let opens = time_of_day(&self.opens);
        if opens.is_none() {
            errors.push(FieldError::new("opens", "enter the opening time as HH:MM, e.g. 09:00"));
        }
        let closes = time_of_day(&self.closes);
        if closes.is_none() {
            errors.push(FieldError::new("closes", "enter the closing time as HH:MM, e.g. 17:00"));
        }
        let days = self.business_days.trim().to_lowercase();
        if let (Some(o), Some(c)) = (opens, closes) {
            let hours = format!("{}-{}", o.format("%H:%M"), c.format("%H:%M"));
            match BusinessHours::parse(&days, &hours) {
                Ok(_) => {}
                Err(ScheduleError::Days(_)) => errors.push(FieldError::new(
                    "business_days",
                    "enter the days you open like mon-fri, mon,wed,fri, mon-sat or daily",
                )),
                Err(ScheduleError::HoursOrder(_)) | Err(ScheduleError::Hours(_)) => errors.push(FieldError::new(
                    "closes",
                    "the closing time must come after the opening time (overnight hours are not supported)",
                )),
            }
        }

        let appointment_minutes =
            minutes(&mut errors, "appointment_minutes", "appointment length", &self.appointment_minutes, 5..=480);
        let buffer_minutes =
            minutes(&mut errors, "buffer_minutes", "break between appointments", &self.buffer_minutes, 0..=240);

        let timezone = self.timezone.trim();
        if timezone.parse::<chrono_tz::Tz>().is_err() {
            errors.push(FieldError::new(
                "timezone",
                format!("{timezone:?} is not a time zone we know; pick one like America/New_York or America/Chicago"),
            ));
        }

        let mut languages = Vec::new();
        for code in &self.languages {
            match Language::from_code(code) {
                Some(l) if !languages.contains(&l) => languages.push(l),
                Some(_) => {}
                None => errors
                    .push(FieldError::new("languages", format!("{code:?} is not offered; choose English or Spanish"))),
            }
        }
        if languages.is_empty() && self.languages.iter().all(|c| Language::from_code(c).is_some()) {
            errors.push(FieldError::new("languages", "choose at least one language callers can be answered in"));
        }
        languages.sort_by_key(|l| l.code());
        let default_language = match Language::from_code(&self.default_language) {
            Some(l) if languages.is_empty() || languages.contains(&l) => l,
            Some(_) => {
                errors.push(FieldError::new(
                    "default_language",
                    "the default language must be one of the languages chosen",
                ));
                Language::English
            }
            None => {
                errors.push(FieldError::new("default_language", "choose English or Spanish as the default language"));
                Language::English
            }
        };

        if !errors.is_empty() {
            return Err(errors);
        }
        // Both are Some: a missing one pushed an error above.
        let (Some(opens), Some(closes)) = (opens, closes) else { return Err(errors) };
        Ok(ValidSettings {
            custom_greeting: (!greeting.is_empty()).then(|| greeting.to_owned()),
            business_description: description.to_owned(),
            services: services.to_owned(),
            business_days: days,
            opens,
            closes,
            appointment_minutes,
            buffer_minutes,
            timezone: timezone.to_owned(),
            languages,
            default_language,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> SettingsForm {
        SettingsForm {
            custom_greeting: "Thanks for calling Bright Smile!".into(),
            business_description: "A family dental practice.".into(),
            services: "Cleanings $99".into(),
            business_days: "Mon-Fri".into(),
            opens: "09:00".into(),
            closes: "17:30".into(),
            appointment_minutes: "45".into(),
            buffer_minutes: "10".into(),
            timezone: "America/Chicago".into(),
            languages: vec!["en".into(), "es".into()],
            default_language: "en".into(),
        }
    }

    fn fields(form: &SettingsForm) -> Vec<&'static str> {
        form.validate().err().unwrap_or_default().iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_complete_form_is_accepted_as_typed() {
        let valid = good().validate().unwrap();
        assert_eq!(valid.custom_greeting.as_deref(), Some("Thanks for calling Bright Smile!"));
        assert_eq!(valid.business_days, "mon-fri");
        assert_eq!(valid.closes, NaiveTime::from_hms_opt(17, 30, 0).unwrap());
        assert_eq!(valid.appointment_minutes, 45);
        assert_eq!(valid.languages, vec![Language::English, Language::Spanish]);
    }

    #[test]
    fn a_blank_greeting_means_the_standard_one() {
        let form = SettingsForm { custom_greeting: "   ".into(), ..good() };
        assert_eq!(form.validate().unwrap().custom_greeting, None);
    }

    #[test]
    fn each_wrong_field_is_named() {
        let cases: Vec<(SettingsForm, &str)> = vec![
            (SettingsForm { custom_greeting: "a".repeat(MAX_GREETING + 1), ..good() }, "custom_greeting"),
            (SettingsForm { business_description: "a".repeat(MAX_DESCRIPTION + 1), ..good() }, "business_description"),
            (SettingsForm { services: "a".repeat(MAX_SERVICES + 1), ..good() }, "services"),
            (SettingsForm { business_days: "someday".into(), ..good() }, "business_days"),
            (SettingsForm { opens: "nine".into(), ..good() }, "opens"),
            (SettingsForm { closes: "25:00".into(), ..good() }, "closes"),
            (SettingsForm { closes: "08:00".into(), ..good() }, "closes"),
            (SettingsForm { appointment_minutes: "4".into(), ..good() }, "appointment_minutes"),
            (SettingsForm { appointment_minutes: "half an hour".into(), ..good() }, "appointment_minutes"),
            (SettingsForm { buffer_minutes: "-5".into(), ..good() }, "buffer_minutes"),
            (SettingsForm { timezone: "Mars/Olympus".into(), ..good() }, "timezone"),
            (SettingsForm { languages: vec![], ..good() }, "languages"),
            (SettingsForm { languages: vec!["fr".into()], ..good() }, "languages"),
            (
                SettingsForm { languages: vec!["en".into()], default_language: "es".into(), ..good() },
                "default_language",
            ),
            (SettingsForm { default_language: "klingon".into(), ..good() }, "default_language"),
        ];
        for (form, field) in cases {
            assert_eq!(fields(&form), vec![field], "{form:?}");
        }
    }

    #[test]
    fn all_mistakes_are_reported_together() {
        let form = SettingsForm { timezone: "nowhere".into(), buffer_minutes: "999".into(), ..good() };
        assert_eq!(fields(&form), vec!["buffer_minutes", "timezone"]);
    }
}
