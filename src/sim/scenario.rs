//! Scenario files: a simulated caller's persona and goal, the business they call, and what
//! a good receptionist would have done by the end. Plain data read from TOML; dates are
//! relative ("next tuesday", "next open day", "a closed day") because the server runs on
//! the real clock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{Datelike, Duration, NaiveDate, NaiveTime, Weekday};
use serde::Deserialize;

use crate::domain::language::Language;
use crate::domain::names::named;
use crate::domain::scheduling::BusinessHours;

named! {
    /// What an agent's turn asks of the caller (read by `caller::classify`); a scenario's
    /// `caller.answers` are keyed by these names.
    pub enum Ask {
        Greeting = "greeting",
        Name = "name",
        NameReadback = "name_readback",
        Spell = "spell",
        PhoneConfirm = "phone_confirm",
        Phone = "phone",
        Offer = "offer",
        Preference = "preference",
        Message = "message",
        LeaveMessage = "leave_message",
        Code = "code",
        ConfirmCancel = "confirm_cancel",
        BookOffer = "book_offer",
        AnythingElse = "anything_else",
        NotUnderstood = "not_understood",
        Goodbye = "goodbye",
        Transfer = "transfer",
        Other = "other",
    }
}

impl Ask {
    /// The call is over after this turn.
    pub fn ends_call(self) -> bool {
        matches!(self, Ask::Goodbye | Ask::Transfer)
    }
}

/// One scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Defaults to the file's name without `.toml`.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Set while the dialogue is known to fail this scenario: why. A run reports it as
    /// `known` instead of failing.
    #[serde(default)]
    pub known_failing: Option<String>,
    /// Known to fail on the audio path only (the local recogniser), and why.
    #[serde(default)]
    pub known_failing_audio: Option<String>,
    pub caller: Persona,
    #[serde(default)]
    pub business: Business,
    pub expect: Expect,
    /// What the language model does, reply by reply, when the scenario runs against a
    /// scripted model (tests only).
    #[serde(default)]
    pub model: Vec<ModelStep>,
}

/// What the caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    Book,
    Cancel,
    Reschedule,
    Lookup,
    Pricing,
    Hours,
    Message,
    Human,
}

/// How the caller picks among offered times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotChoice {
    #[default]
    First,
    Second,
    Last,
    /// The one at `slot_time`.
    ByTime,
    /// "None of those work" the first time, then the first.
    None,
}

/// Who calls and how they behave.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persona {
    pub name: String,
    #[serde(default = "default_caller_number")]
    pub number: String,
    /// `en` or `es`.
    #[serde(default = "default_language")]
    pub language: String,
    pub goal: Goal,
    /// The first thing they say; by default a plain request for the goal.
    #[serde(default)]
    pub opening: Option<String>,
    /// The day and time they prefer, as they say it ("next tuesday morning").
    #[serde(default)]
    pub wants: Option<String>,
    #[serde(default)]
    pub slot: SlotChoice,
    /// The time they pick with `slot = "by_time"`, as they say it ("2 PM").
    #[serde(default)]
    pub slot_time: Option<String>,
    /// A callback number other than the one they call from.
    #[serde(default)]
    pub callback: Option<String>,
    /// Spell the name when asked again.
    #[serde(default)]
    pub spell_name: bool,
    #[serde(default)]
    pub message: Option<String>,
    /// Keys pressed right after the greeting (e.g. "2" for Spanish).
    #[serde(default)]
    pub dtmf: Option<String>,
    /// What they say when asked something, by the kind of question (`name`, `offer`,
    /// `phone_confirm`, ...): the n-th line the n-th time it is asked, the last one after.
    #[serde(default)]
    pub answers: BTreeMap<String, Vec<String>>,
    /// Their turn (1 = the answer to the greeting) said over the agent's speech.
    #[serde(default)]
    pub interrupt_at: Option<u32>,
    /// Their turn at which they stay silent once.
    #[serde(default)]
    pub silent_at: Option<u32>,
    /// Background noise level, 0 to 1 (audio path).
    #[serde(default)]
    pub noise: f32,
    /// Their turn at which they hang up without a word.
    #[serde(default)]
    pub hang_up_at: Option<u32>,
    /// Their turn at which they say goodbye, whatever was asked.
    #[serde(default)]
    pub goodbye_at: Option<u32>,
}

fn default_caller_number() -> String {
    "+15557654321".into()
}

fn default_language() -> String {
    "en".into()
}

/// The business called.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Business {
    #[serde(default = "default_business_name")]
    pub name: String,
    #[serde(default = "default_days")]
    pub days: String,
    #[serde(default = "default_hours")]
    pub hours: String,
    #[serde(default = "default_timezone")]
    pub timezone: String,
    #[serde(default = "default_slot_minutes")]
    pub slot_minutes: i32,
    /// The tenant's default language.
    #[serde(default = "default_language")]
    pub language: String,
    #[serde(default = "default_services")]
    pub services: String,
    #[serde(default)]
    pub description: String,
    /// Appointments of other people already in the book.
    #[serde(default)]
    pub booked: Vec<Booked>,
    /// The caller's own appointment (for cancel, reschedule, lookup).
    #[serde(default)]
    pub existing: Option<Existing>,
}

impl Default for Business {
    fn default() -> Self {
        Self {
            name: default_business_name(),
            days: default_days(),
            hours: default_hours(),
            timezone: default_timezone(),
            slot_minutes: default_slot_minutes(),
            language: default_language(),
            services: default_services(),
            description: String::new(),
            booked: Vec::new(),
            existing: None,
        }
    }
}

fn default_business_name() -> String {
    "Bright Smile Dental".into()
}
fn default_days() -> String {
    "mon-fri".into()
}
fn default_hours() -> String {
    "09:00-17:00".into()
}
fn default_timezone() -> String {
    "America/New_York".into()
}
fn default_slot_minutes() -> i32 {
    30
}
fn default_services() -> String {
    "cleanings are $99, exams are $75, whitening is $250".into()
}

/// Someone else's appointment: one slot at `time`, or the whole day.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Booked {
    pub day: String,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub all_day: bool,
}

/// The caller's appointment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Existing {
    pub day: String,
    pub time: String,
}

/// What happened to the caller's existing appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExistingState {
    Kept,
    Cancelled,
    Moved,
}

/// What a good receptionist leaves behind.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The call's outcome: none, booked, cancelled, rescheduled, message, transfer, info.
    pub outcome: String,
    /// A new appointment booked on this call (true) or none (false).
    #[serde(default)]
    pub appointment: Option<bool>,
    /// The booked appointment's weekday, one of these (English names).
    #[serde(default)]
    pub weekday: Vec<String>,
    /// The booked appointment's day, relative ("next tuesday").
    #[serde(default)]
    pub day: Option<String>,
    /// A day it must not be on (relative).
    #[serde(default)]
    pub not_day: Option<String>,
    /// Local start time at or after (HH:MM).
    #[serde(default)]
    pub after: Option<String>,
    /// Local start time before (HH:MM).
    #[serde(default)]
    pub before: Option<String>,
    /// Not at this local time (HH:MM) on `not_at_day` (a taken slot).
    #[serde(default)]
    pub not_at: Option<String>,
    /// The name the appointment is under (case-insensitive).
    #[serde(default)]
    pub customer_name: Option<String>,
    #[serde(default)]
    pub existing: Option<ExistingState>,
    /// Kinds of texts queued by the call (booking_confirmation, owner_booking_alert, ...).
    #[serde(default)]
    pub texts: Vec<String>,
    /// The number the booking confirmation goes to.
    #[serde(default)]
    pub confirmation_to: Option<String>,
    /// The call's language: en or es.
    #[serde(default)]
    pub language: Option<String>,
    /// Phrases the agent must say, each at some point; `a|b` accepts either.
    #[serde(default)]
    pub says: Vec<String>,
    /// Phrases the agent must never say.
    #[serde(default)]
    pub never_says: Vec<String>,
    /// The most caller turns the call may take.
    #[serde(default)]
    pub max_turns: Option<u32>,
}

/// One reply of a scripted language model: text, a tool call, or both.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelStep {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub tool: Option<String>,
    #[serde(default)]
    pub args: Option<toml::Table>,
}

impl ModelStep {
    /// The tool call's arguments as JSON (`{}` when none).
    pub fn args_json(&self) -> serde_json::Value {
        self.args
            .as_ref()
            .and_then(|a| serde_json::to_value(a).ok())
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()))
    }
}

impl Scenario {
    /// Reads and checks one scenario file.
    pub fn parse(text: &str, fallback_name: &str) -> anyhow::Result<Self> {
        let mut s: Scenario = toml::from_str(text)?;
        if s.name.trim().is_empty() {
            s.name = fallback_name.to_owned();
        }
        s.validate()?;
        Ok(s)
    }

    pub fn language(&self) -> Language {
        Language::from_code(&self.caller.language).unwrap_or(Language::English)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if Language::from_code(&self.caller.language).is_none() {
            bail!("caller.language must be en or es");
        }
        if Language::from_code(&self.business.language).is_none() {
            bail!("business.language must be en or es");
        }
        for key in self.caller.answers.keys() {
            if key.parse::<Ask>().is_err() {
                let kinds: Vec<&str> = Ask::ALL.iter().map(|a| a.as_str()).collect();
                bail!("caller.answers.{key} is not a kind of question ({})", kinds.join(", "));
            }
        }
        let outcomes = ["none", "booked", "cancelled", "rescheduled", "message", "transfer", "info"];
        if !outcomes.contains(&self.expect.outcome.as_str()) {
            bail!("expect.outcome must be one of {}", outcomes.join(", "));
        }
        if self.caller.slot == SlotChoice::ByTime && self.caller.slot_time.is_none() {
            bail!("caller.slot = \"by_time\" needs caller.slot_time");
        }
        let hours = self.hours()?;
        for b in &self.business.booked {
            relative_day(&b.day, chrono::Utc::now().date_naive(), &hours)?;
            if b.time.is_none() && !b.all_day {
                bail!("business.booked needs a time or all_day = true");
            }
            if let Some(t) = &b.time {
                clock(t)?;
            }
        }
        if let Some(e) = &self.business.existing {
            relative_day(&e.day, chrono::Utc::now().date_naive(), &hours)?;
            clock(&e.time)?;
        }
        for t in [&self.expect.after, &self.expect.before, &self.expect.not_at].into_iter().flatten() {
            clock(t)?;
        }
        for d in [&self.expect.day, &self.expect.not_day].into_iter().flatten() {
            relative_day(d, chrono::Utc::now().date_naive(), &hours)?;
        }
        for w in &self.expect.weekday {
            weekday(w).with_context(|| format!("expect.weekday {w:?} is not a day of the week"))?;
        }
        self.business.timezone.parse::<chrono_tz::Tz>().map_err(|_| anyhow::anyhow!("business.timezone"))?;
        Ok(())
    }

    pub fn hours(&self) -> anyhow::Result<BusinessHours> {
        BusinessHours::parse(&self.business.days, &self.business.hours)
            .map_err(|e| anyhow::anyhow!("business.days/hours: {e}"))
    }
}

/// Reads every `.toml` scenario under the given files and folders, sorted by name.
pub fn load(paths: &[PathBuf]) -> anyhow::Result<Vec<Scenario>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            for entry in std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
                let p = entry?.path();
                if p.extension().is_some_and(|e| e == "toml") {
                    files.push(p);
                }
            }
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    let mut out = Vec::new();
    for file in files {
        out.push(load_file(&file)?);
    }
    Ok(out)
}

pub fn load_file(file: &Path) -> anyhow::Result<Scenario> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("scenario");
    Scenario::parse(&text, stem).with_context(|| format!("in {}", file.display()))
}

/// A day of the week by its English name.
pub fn weekday(name: &str) -> Option<Weekday> {
    name.trim().parse::<Weekday>().ok()
}

/// `HH:MM`.
pub fn clock(text: &str) -> anyhow::Result<NaiveTime> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M").with_context(|| format!("{text:?} is not HH:MM"))
}

/// A relative day after `today`: "today", "tomorrow", "next <weekday>" (the first one after
/// today), "next open day", "a closed day" (the first closed one after today), "in N days".
pub fn relative_day(text: &str, today: NaiveDate, hours: &BusinessHours) -> anyhow::Result<NaiveDate> {
    let t = text.trim().to_lowercase();
    let open = |d: NaiveDate| hours.days[d.weekday().num_days_from_monday() as usize];
    let first_after = |pred: &dyn Fn(NaiveDate) -> bool| (1..=14).map(|n| today + Duration::days(n)).find(|d| pred(*d));
    let found = match t.as_str() {
        "today" => Some(today),
        "tomorrow" => Some(today + Duration::days(1)),
        "next open day" => first_after(&|d| open(d)),
        "second open day" => (1..=21).map(|n| today + Duration::days(n)).filter(|d| open(*d)).nth(1),
        "a closed day" | "next closed day" => first_after(&|d| !open(d)),
        _ => {
            if let Some(n) = t.strip_prefix("in ").and_then(|r| r.strip_suffix(" days")) {
                n.trim().parse::<i64>().ok().map(|n| today + Duration::days(n))
            } else {
                let day = t.strip_prefix("next ").unwrap_or(&t);
                let w = weekday(day).with_context(|| format!("{text:?} is not a relative day"))?;
                first_after(&|d| d.weekday() == w)
            }
        }
    };
    found.with_context(|| format!("no day matches {text:?} in the next two weeks"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weekdays() -> BusinessHours {
        BusinessHours::parse("mon-fri", "09:00-17:00").unwrap()
    }

    #[test]
    fn relative_days_count_from_the_day_after_today() {
        // 2026-12-05 is a Saturday.
        let today = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        let d = |s| relative_day(s, today, &weekdays()).unwrap();
        assert_eq!(d("next tuesday"), NaiveDate::from_ymd_opt(2026, 12, 8).unwrap());
        assert_eq!(d("saturday"), NaiveDate::from_ymd_opt(2026, 12, 12).unwrap());
        assert_eq!(d("next open day"), NaiveDate::from_ymd_opt(2026, 12, 7).unwrap());
        assert_eq!(d("second open day"), NaiveDate::from_ymd_opt(2026, 12, 8).unwrap());
        assert_eq!(d("a closed day"), NaiveDate::from_ymd_opt(2026, 12, 6).unwrap());
        assert_eq!(d("in 3 days"), NaiveDate::from_ymd_opt(2026, 12, 8).unwrap());
        assert!(relative_day("someday", today, &weekdays()).is_err());
    }

    #[test]
    fn a_scenario_reads_from_toml_and_unknown_keys_are_refused() {
        let text = r#"
            [caller]
            name = "Ann Lee"
            goal = "book"
            answers.offer = ["the first one, no wait, the second one"]
            [expect]
            outcome = "booked"
            weekday = ["tuesday"]
        "#;
        let s = Scenario::parse(text, "ann").unwrap();
        assert_eq!(s.name, "ann");
        assert_eq!(s.caller.goal, Goal::Book);
        assert_eq!(s.business.days, "mon-fri");
        assert!(Scenario::parse(&text.replace("goal", "gaol"), "x").is_err());
        assert!(Scenario::parse(&text.replace("answers.offer", "answers.nonsense"), "x").is_err());
        assert!(Scenario::parse(&text.replace("\"booked\"", "\"won\""), "x").is_err());
    }
}
