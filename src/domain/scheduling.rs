//! Appointment availability: business hours, the slot grid in the tenant's time zone, and
//! which free slots to offer a caller. Pure: existing appointments come in as data and
//! nothing is stored here; the database constraint remains the final word on overlaps.
//!
//! The rules, in one place:
//! - **Grid.** On each business day, candidate starts are `open`, `open + slot`,
//!   `open + 2·slot`, … in the tenant's wall-clock time; a slot must end (wall clock) by
//!   `close`. Every slot lasts exactly `slot_minutes` of real time.
//! - **Buffer.** A slot is free when it does not overlap any busy interval widened by
//!   `buffer_minutes` on both sides. The buffer therefore never shifts the grid.
//! - **Time zones.** Wall-clock starts are converted to UTC with the tenant's zone: a local
//!   time that does not exist (spring forward) is skipped; an ambiguous one (fall back)
//!   takes the earlier instant, so no instant is ever offered twice.
//! - **Lead.** A slot must start at least [`MIN_LEAD_MINUTES`] after `now`.
//! - **Window.** Offers look at most [`LOOKAHEAD_DAYS`] days past the first day searched.
//! - **Spreading.** See [`offer`].

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::language::Language;

/// The earliest a slot may start, counted from now: nobody can drive over in 5 minutes.
pub const MIN_LEAD_MINUTES: i64 = 30;
/// How many days after the first searched day [`offer`] looks for free slots.
pub const LOOKAHEAD_DAYS: i64 = 30;
/// A preferred date further away than this is ignored (treated as "no date").
pub const MAX_ADVANCE_DAYS: i64 = 366;
/// Offered slots on the same day start at least this far apart.
pub const SPREAD_MINUTES: i64 = 60;
/// Without a preferred date, no more than this many offers fall on the same day.
pub const MAX_OFFERS_PER_DAY: usize = 2;

/// Why business hours could not be read from settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("unrecognised business days {0:?}; use e.g. \"mon-fri\", \"mon,wed,fri\" or \"mon-sat\"")]
    Days(String),
    #[error("unrecognised business hours {0:?}; use e.g. \"09:00-17:00\"")]
    Hours(String),
    #[error("business hours {0:?} close before they open; overnight hours are not supported")]
    HoursOrder(String),
}

/// When the business takes appointments: which weekdays, and one opening window per day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessHours {
    /// Monday first, Sunday last.
    pub days: [bool; 7],
    pub open: NaiveTime,
    pub close: NaiveTime,
}

const EN_DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const ES_DAYS: [&str; 7] = ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"];
const EN_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const ES_MONTHS: [&str; 12] = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
];

impl BusinessHours {
    /// Reads the settings form: days like `"mon-fri"`, `"mon,wed,fri"`, `"fri-mon"`,
    /// `"weekdays"`, `"daily"`; hours like `"09:00-17:00"`, `"9-17"`, `"9am-5:30pm"`.
    pub fn parse(days: &str, hours: &str) -> Result<Self, ScheduleError> {
        let parsed_days = parse_days(days).ok_or_else(|| ScheduleError::Days(days.to_string()))?;
        let (open, close) = parse_hours(hours).ok_or_else(|| ScheduleError::Hours(hours.to_string()))?;
        if open >= close {
            return Err(ScheduleError::HoursOrder(hours.to_string()));
        }
        Ok(BusinessHours { days: parsed_days, open, close })
    }

    /// Whether the business works on this weekday.
    pub fn is_open_on(&self, day: Weekday) -> bool {
        self.days[day.num_days_from_monday() as usize]
    }

    /// The working days in English, e.g. "Monday to Friday".
    pub fn days_text(&self) -> String {
        self.days_text_in(Language::English)
    }

    /// The working days in the given language ("Monday to Friday", "lunes a viernes").
    pub fn days_text_in(&self, lang: Language) -> String {
        let names = match lang {
            Language::English => &EN_DAYS,
            Language::Spanish => &ES_DAYS,
        };
        let (to, and) = match lang {
            Language::English => (" to ", " and "),
            Language::Spanish => (" a ", " y "),
        };
        if self.days.iter().all(|d| *d) {
            return match lang {
                Language::English => "every day".to_string(),
                Language::Spanish => "todos los días".to_string(),
            };
        }
        // Start at a day that opens a run (its predecessor is closed), so a run that wraps
        // over the weekend ("fri-mon") reads as one range.
        let Some(first) = (0..7).find(|&i| self.days[i] && !self.days[(i + 6) % 7]) else {
            return match lang {
                Language::English => "no days".to_string(),
                Language::Spanish => "ningún día".to_string(),
            };
        };
        let mut parts: Vec<String> = Vec::new();
        let mut i = 0;
        while i < 7 {
            let day = (first + i) % 7;
            if !self.days[day] {
                i += 1;
                continue;
            }
            let mut len = 1;
            while len + i < 7 && self.days[(day + len) % 7] {
                len += 1;
            }
            let last = (day + len - 1) % 7;
            match len {
                1 => parts.push(names[day].to_string()),
                2 => {
                    parts.push(names[day].to_string());
                    parts.push(names[last].to_string());
                }
                _ => parts.push(format!("{}{to}{}", names[day], names[last])),
            }
            i += len;
        }
        join_list(&parts, and)
    }

    /// Days and hours in English, e.g. "Monday to Friday, 9 AM to 5 PM".
    pub fn describe(&self) -> String {
        self.describe_in(Language::English)
    }

    /// Days and hours in the given language
    /// ("lunes a viernes, de 9 de la mañana a 5 de la tarde").
    pub fn describe_in(&self, lang: Language) -> String {
        let days = self.days_text_in(lang);
        match lang {
            Language::English => {
                format!("{days}, {} to {}", format_time(self.open, lang), format_time(self.close, lang))
            }
            Language::Spanish => {
                format!("{days}, de {} a {}", format_time(self.open, lang), format_time(self.close, lang))
            }
        }
    }
}

fn join_list(parts: &[String], and: &str) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{}{and}{last}", init.join(", ")),
    }
}

fn weekday_index(name: &str) -> Option<usize> {
    let index = match name {
        "mon" | "monday" | "lun" | "lunes" => 0,
        "tue" | "tues" | "tuesday" | "martes" => 1,
        "wed" | "weds" | "wednesday" | "mie" | "miercoles" | "miércoles" => 2,
        "thu" | "thur" | "thurs" | "thursday" | "jue" | "jueves" => 3,
        "fri" | "friday" | "vie" | "viernes" => 4,
        "sat" | "saturday" | "sab" | "sábado" | "sabado" => 5,
        "sun" | "sunday" | "dom" | "domingo" => 6,
        _ => return None,
    };
    Some(index)
}

fn parse_days(text: &str) -> Option<[bool; 7]> {
    let mut norm = text.trim().to_lowercase();
    for dash in ['–', '—'] {
        norm = norm.replace(dash, "-");
    }
    for word in [" to ", " through ", " thru ", " a "] {
        norm = norm.replace(word, "-");
    }
    match norm.as_str() {
        "weekdays" | "business days" => norm = "mon-fri".to_string(),
        "daily" | "every day" | "everyday" | "all week" | "7 days" => norm = "mon-sun".to_string(),
        "weekends" | "weekend" => norm = "sat-sun".to_string(),
        _ => {}
    }
    let norm = norm.replace(" -", "-").replace("- ", "-");
    let mut days = [false; 7];
    for part in norm.split([',', '/', '&', ';', ' ']) {
        let part = part.trim_matches('.');
        if part.is_empty() || part == "and" || part == "y" {
            continue;
        }
        match part.split_once('-') {
            Some((from, to)) => {
                let from = weekday_index(from.trim_matches('.'))?;
                let to = weekday_index(to.trim_matches('.'))?;
                let mut day = from;
                loop {
                    days[day] = true;
                    if day == to {
                        break;
                    }
                    day = (day + 1) % 7;
                }
            }
            None => days[weekday_index(part)?] = true,
        }
    }
    days.iter().any(|d| *d).then_some(days)
}

fn parse_hours(text: &str) -> Option<(NaiveTime, NaiveTime)> {
    let mut norm = text.trim().to_lowercase();
    for dash in ['–', '—'] {
        norm = norm.replace(dash, "-");
    }
    let norm = norm.replace(" to ", "-").replace(['.', ' '], "");
    let (open, close) = norm.split_once('-')?;
    Some((parse_clock(open)?, parse_clock(close)?))
}

/// "09:00", "9", "0900", "9am", "5:30pm".
fn parse_clock(text: &str) -> Option<NaiveTime> {
    let (body, meridiem) = if let Some(b) = text.strip_suffix("am") {
        (b, Some(false))
    } else if let Some(b) = text.strip_suffix("pm") {
        (b, Some(true))
    } else {
        (text, None)
    };
    let (h, m) = match body.split_once(':') {
        Some((h, m)) if m.len() == 2 => (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?),
        Some(_) => return None,
        None if body.len() == 4 => (body[..2].parse().ok()?, body[2..].parse().ok()?),
        None if (1..=2).contains(&body.len()) => (body.parse().ok()?, 0),
        None => return None,
    };
    let h = match meridiem {
        Some(pm) if (1..=12).contains(&h) => (h % 12) + if pm { 12 } else { 0 },
        Some(_) => return None,
        None => h,
    };
    NaiveTime::from_hms_opt(h, m, 0)
}

/// A clock time as said aloud: "9 AM", "2:30 PM" / "9 de la mañana", "2:30 de la tarde".
pub fn format_time(t: NaiveTime, lang: Language) -> String {
    let (h, m) = (t.hour(), t.minute());
    let h12 = match h % 12 {
        0 => 12,
        x => x,
    };
    let digits = if m == 0 { format!("{h12}") } else { format!("{h12}:{m:02}") };
    match lang {
        Language::English => format!("{digits} {}", if h < 12 { "AM" } else { "PM" }),
        Language::Spanish => format!("{digits} {}", spanish_day_period(h)),
    }
}

fn spanish_day_period(hour: u32) -> &'static str {
    match hour {
        0..=5 => "de la madrugada",
        6..=11 => "de la mañana",
        12 => "del mediodía",
        13..=19 => "de la tarde",
        _ => "de la noche",
    }
}

/// A tenant's bookable calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    pub tz: Tz,
    pub hours: BusinessHours,
    /// Length of one appointment, and the step of the grid of start times.
    pub slot_minutes: u32,
    /// Free time kept around every existing appointment.
    pub buffer_minutes: u32,
}

/// One bookable appointment time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Slot {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// Time that cannot be booked: an appointment or a blocked period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Busy {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// A part of the day as callers name it: morning before 12:00, afternoon 12:00–17:00,
/// evening from 17:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayPart {
    Morning,
    Afternoon,
    Evening,
}

impl DayPart {
    /// The part of the day a wall-clock time falls in.
    pub fn of(t: NaiveTime) -> DayPart {
        match t.hour() {
            0..=11 => DayPart::Morning,
            12..=16 => DayPart::Afternoon,
            _ => DayPart::Evening,
        }
    }

    /// Whether a wall-clock time falls in this part of the day.
    pub fn contains(self, t: NaiveTime) -> bool {
        DayPart::of(t) == self
    }

    /// "morning", "afternoon" or "evening".
    pub fn as_str(self) -> &'static str {
        match self {
            DayPart::Morning => "morning",
            DayPart::Afternoon => "afternoon",
            DayPart::Evening => "evening",
        }
    }

    /// Start and end in seconds after midnight.
    fn bounds(self) -> (u32, u32) {
        match self {
            DayPart::Morning => (0, 12 * 3600),
            DayPart::Afternoon => (12 * 3600, 17 * 3600),
            DayPart::Evening => (17 * 3600, 24 * 3600),
        }
    }
}

/// What the caller asked for; every field is optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Preference {
    pub date: Option<NaiveDate>,
    pub time: Option<NaiveTime>,
    pub part: Option<DayPart>,
}

impl Calendar {
    /// An instant in the tenant's zone.
    pub fn local(&self, at: DateTime<Utc>) -> DateTime<Tz> {
        at.with_timezone(&self.tz)
    }

    /// Whether the business is open at this instant (used to decide between transferring a
    /// caller to the owner and taking a message).
    pub fn is_open_at(&self, at: DateTime<Utc>) -> bool {
        let local = self.local(at);
        let t = local.time();
        self.hours.is_open_on(local.weekday()) && self.hours.open <= t && t < self.hours.close
    }

    /// Every grid slot of a local date, busy or not, in order. Empty on closed days and
    /// when `slot_minutes` is zero.
    pub fn slots_on(&self, date: NaiveDate) -> Vec<Slot> {
        let mut slots: Vec<Slot> = Vec::new();
        if self.slot_minutes == 0 || !self.hours.is_open_on(date.weekday()) {
            return slots;
        }
        let step = self.slot_minutes.saturating_mul(60);
        let length = Duration::minutes(i64::from(self.slot_minutes));
        let close = self.hours.close.num_seconds_from_midnight();
        let mut start = self.hours.open.num_seconds_from_midnight();
        while start.saturating_add(step) <= close {
            let Some(wall) = NaiveTime::from_num_seconds_from_midnight_opt(start, 0) else {
                break;
            };
            let resolved = resolve_local(&self.tz, date, wall)
                .and_then(|starts_at| Some((starts_at, starts_at.checked_add_signed(length)?)));
            if let Some((starts_at, ends_at)) = resolved {
                // The grid is increasing in wall-clock time and resolution keeps that
                // order, but guard anyway: the same instant must never be offered twice.
                if slots.last().is_none_or(|last| last.starts_at < starts_at) {
                    slots.push(Slot { starts_at, ends_at });
                }
            }
            start += step;
        }
        slots
    }

    fn buffer(&self) -> Duration {
        Duration::minutes(i64::from(self.buffer_minutes))
    }

    fn is_free(&self, slot: &Slot, busy: &[Busy]) -> bool {
        let buffer = self.buffer();
        // Saturating: a busy interval at the edge of time still blocks what it touches.
        !busy.iter().any(|b| {
            let until = b.ends_at.checked_add_signed(buffer).unwrap_or(DateTime::<Utc>::MAX_UTC);
            let from = b.starts_at.checked_sub_signed(buffer).unwrap_or(DateTime::<Utc>::MIN_UTC);
            slot.starts_at < until && from < slot.ends_at
        })
    }

    /// Free slots on local dates `from..=through`, starting no earlier than the lead time.
    fn free_slots(&self, busy: &[Busy], now: DateTime<Utc>, from: NaiveDate, through: NaiveDate) -> Vec<Slot> {
        let earliest = earliest_start(now);
        from.iter_days()
            .take_while(|d| *d <= through)
            .flat_map(|d| self.slots_on(d))
            .filter(|s| s.starts_at >= earliest && self.is_free(s, busy))
            .collect()
    }
}

/// The earliest a slot may start when booked at `now`.
fn earliest_start(now: DateTime<Utc>) -> DateTime<Utc> {
    now.checked_add_signed(Duration::minutes(MIN_LEAD_MINUTES)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A wall-clock time on a date in a zone: `None` in a spring-forward gap, the earlier
/// instant when the clock falls back.
fn resolve_local(tz: &Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&date.and_time(time)) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

/// Up to `count` free slots to offer the caller, in chronological order (so "the first
/// one" and "the earlier one" mean the first slot read out).
///
/// Search starts on the preferred date (today if none, if it is past, or if it is more
/// than [`MAX_ADVANCE_DAYS`] away) and covers [`LOOKAHEAD_DAYS`] more days.
///
/// Ranking, best first:
/// - with a preferred **time**: by day (preferred date first), then by distance from that
///   time, so the exact time on the preferred date comes first if free, then the nearest
///   times; a fully booked day hands over to the next day's exact time;
/// - with a **part of the day** only: slots in that part in date order (if that part has no
///   free slot at all in the window, every free slot, so there is still something to say);
/// - otherwise: soonest first.
///
/// Spreading: slots are picked best first, skipping any that starts less than a *gap*
/// from an already picked one, and — when no date was asked for — any on a day that
/// already has [`MAX_OFFERS_PER_DAY`] picks. The gap is [`SPREAD_MINUTES`] when a time was
/// asked for (nearest times matter), otherwise the searched part of the day divided by
/// `count` (at least [`SPREAD_MINUTES`]), so "Tuesday" yields a morning, a midday and an
/// afternoon choice. If that leaves fewer than `count`, the per-day limit and then the gap
/// are relaxed, so `count` slots come back whenever that many are free.
pub fn offer(cal: &Calendar, busy: &[Busy], now: DateTime<Utc>, pref: &Preference, count: usize) -> Vec<Slot> {
    if count == 0 {
        return Vec::new();
    }
    let today = cal.local(now).date_naive();
    let start = match pref.date {
        Some(d) if d > today && (d - today).num_days() <= MAX_ADVANCE_DAYS => d,
        _ => today,
    };
    let through = start.checked_add_signed(Duration::days(LOOKAHEAD_DAYS)).unwrap_or(NaiveDate::MAX);
    let mut ranked = cal.free_slots(busy, now, start, through);

    let local_date = |s: &Slot| cal.local(s.starts_at).date_naive();
    let gap_minutes = if let Some(time) = pref.time {
        let wanted = i64::from(time.num_seconds_from_midnight());
        ranked.sort_by_key(|s| {
            let local = cal.local(s.starts_at);
            let seconds = i64::from(local.time().num_seconds_from_midnight());
            (local.date_naive(), (seconds - wanted).abs(), s.starts_at)
        });
        SPREAD_MINUTES
    } else {
        let (from, to) = match pref.part {
            Some(part) => {
                let in_part: Vec<Slot> =
                    ranked.iter().filter(|s| part.contains(cal.local(s.starts_at).time())).copied().collect();
                if in_part.is_empty() {
                    (0, 24 * 3600)
                } else {
                    ranked = in_part;
                    part.bounds()
                }
            }
            None => (0, 24 * 3600),
        };
        let open = cal.hours.open.num_seconds_from_midnight().max(from);
        let close = cal.hours.close.num_seconds_from_midnight().min(to);
        let span_minutes = i64::from(close.saturating_sub(open) / 60);
        // `count` is at least 1 here; the cast saturates for absurd counts.
        let per_offer = span_minutes / i64::try_from(count).unwrap_or(i64::MAX);
        per_offer.max(SPREAD_MINUTES)
    };

    let per_day_cap = if pref.date.is_some() { usize::MAX } else { MAX_OFFERS_PER_DAY };
    let passes = [
        (Duration::minutes(gap_minutes), per_day_cap),
        (Duration::minutes(SPREAD_MINUTES), usize::MAX),
        (Duration::zero(), usize::MAX),
    ];
    let mut picked: Vec<Slot> = Vec::with_capacity(count.min(ranked.len()));
    for (gap, cap) in passes {
        for slot in &ranked {
            if picked.len() == count {
                break;
            }
            let day = local_date(slot);
            let too_close = picked.iter().any(|p| p == slot || (p.starts_at - slot.starts_at).abs() < gap);
            let same_day = picked.iter().filter(|p| local_date(p) == day).count();
            if !too_close && same_day < cap {
                picked.push(*slot);
            }
        }
    }
    picked.sort_by_key(|s| s.starts_at);
    picked
}

/// Whether a slot can be booked now: on the grid, long enough ahead, and clear of every
/// busy interval plus buffer. Unlike [`offer`], there is no look-ahead limit, so staff can
/// book far ahead from the dashboard.
pub fn is_bookable(cal: &Calendar, busy: &[Busy], now: DateTime<Utc>, slot: &Slot) -> bool {
    let date = cal.local(slot.starts_at).date_naive();
    slot.starts_at >= earliest_start(now) && cal.slots_on(date).contains(slot) && cal.is_free(slot, busy)
}

/// A slot as the agent says it, relative to now in the tenant's zone:
/// "tomorrow, Tuesday March 4th at 2:30 PM" / "mañana, martes 4 de marzo a las 2:30 de la
/// tarde"; "today at 11 AM" / "hoy a las 11 de la mañana"; other days without the prefix.
pub fn describe_slot(cal: &Calendar, slot: &Slot, now: DateTime<Utc>, lang: Language) -> String {
    let local = cal.local(slot.starts_at);
    let date = local.date_naive();
    let today = cal.local(now).date_naive();
    let days_ahead = (date - today).num_days();
    let weekday = date.weekday().num_days_from_monday() as usize;
    let month = date.month0() as usize;
    let day = date.day();
    match lang {
        Language::English => {
            let at = format_time(local.time(), lang);
            let full = format!("{} {} {}{}", EN_DAYS[weekday], EN_MONTHS[month], day, english_ordinal_suffix(day));
            match days_ahead {
                0 => format!("today at {at}"),
                1 => format!("tomorrow, {full} at {at}"),
                _ => format!("{full} at {at}"),
            }
        }
        Language::Spanish => {
            let hour = local.hour();
            let article = if hour % 12 == 1 { "la" } else { "las" };
            let at = format!("a {article} {}", format_time(local.time(), lang));
            let full = format!("{} {} de {}", ES_DAYS[weekday], day, ES_MONTHS[month]);
            match days_ahead {
                0 => format!("hoy {at}"),
                1 => format!("mañana, {full} {at}"),
                _ => format!("{full} {at}"),
            }
        }
    }
}

/// "st", "nd", "rd" or "th" for a day of the month.
pub fn english_ordinal_suffix(n: u32) -> &'static str {
    match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::{Los_Angeles, New_York};
    use chrono_tz::Asia::Kolkata;
    use chrono_tz::Europe::Madrid;

    fn calendar(tz: Tz, days: &str, hours: &str, slot: u32, buffer: u32) -> Calendar {
        Calendar { tz, hours: BusinessHours::parse(days, hours).unwrap(), slot_minutes: slot, buffer_minutes: buffer }
    }

    fn weekdays_9_to_5(tz: Tz) -> Calendar {
        calendar(tz, "mon-fri", "09:00-17:00", 30, 0)
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    /// A wall-clock time in the calendar's zone, as UTC (test inputs are never ambiguous).
    fn at(cal: &Calendar, text: &str) -> DateTime<Utc> {
        let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
        cal.tz.from_local_datetime(&naive).single().unwrap().with_timezone(&Utc)
    }

    /// Slots rendered as local "Mon 03-10 09:00" for readable assertions.
    fn local(cal: &Calendar, slots: &[Slot]) -> Vec<String> {
        slots.iter().map(|s| cal.local(s.starts_at).format("%a %m-%d %H:%M").to_string()).collect()
    }

    fn busy(cal: &Calendar, from: &str, to: &str) -> Busy {
        Busy { starts_at: at(cal, from), ends_at: at(cal, to) }
    }

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn time(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn business_days_are_read_from_common_notations() {
        let cases: [(&str, [bool; 7]); 12] = [
            ("mon-fri", [true, true, true, true, true, false, false]),
            ("Mon-Fri", [true, true, true, true, true, false, false]),
            ("mon - fri", [true, true, true, true, true, false, false]),
            ("Monday to Friday", [true, true, true, true, true, false, false]),
            ("mon-sat", [true, true, true, true, true, true, false]),
            ("mon,wed,fri", [true, false, true, false, true, false, false]),
            ("Mon, Wed & Fri", [true, false, true, false, true, false, false]),
            ("tue-thu,sat", [false, true, true, true, false, true, false]),
            ("fri-mon", [true, false, false, false, true, true, true]),
            ("weekdays", [true, true, true, true, true, false, false]),
            ("daily", [true; 7]),
            ("lunes-viernes", [true, true, true, true, true, false, false]),
        ];
        for (text, expected) in cases {
            let hours = BusinessHours::parse(text, "09:00-17:00").unwrap();
            assert_eq!(hours.days, expected, "{text}");
        }
    }

    #[test]
    fn opening_hours_are_read_from_common_notations() {
        let cases = [
            ("09:00-17:00", time(9, 0), time(17, 0)),
            ("9:00 - 17:30", time(9, 0), time(17, 30)),
            ("9-17", time(9, 0), time(17, 0)),
            ("0830-1800", time(8, 30), time(18, 0)),
            ("9am-5pm", time(9, 0), time(17, 0)),
            ("9:30 a.m. to 5:30 p.m.", time(9, 30), time(17, 30)),
            ("12pm-8pm", time(12, 0), time(20, 0)),
            ("00:00-04:00", time(0, 0), time(4, 0)),
        ];
        for (text, open, close) in cases {
            let hours = BusinessHours::parse("mon-fri", text).unwrap();
            assert_eq!((hours.open, hours.close), (open, close), "{text}");
        }
    }

    #[test]
    fn unreadable_days_or_hours_are_rejected_with_a_message() {
        let cases = [
            ("", "09:00-17:00", ScheduleError::Days(String::new())),
            ("someday", "09:00-17:00", ScheduleError::Days("someday".into())),
            ("mon-funday", "09:00-17:00", ScheduleError::Days("mon-funday".into())),
            ("mon-fri", "nine to five", ScheduleError::Hours("nine to five".into())),
            ("mon-fri", "09:00", ScheduleError::Hours("09:00".into())),
            ("mon-fri", "25:00-26:00", ScheduleError::Hours("25:00-26:00".into())),
            ("mon-fri", "13pm-5pm", ScheduleError::Hours("13pm-5pm".into())),
            ("mon-fri", "9:5-17:00", ScheduleError::Hours("9:5-17:00".into())),
            ("mon-fri", "17:00-09:00", ScheduleError::HoursOrder("17:00-09:00".into())),
            ("mon-fri", "09:00-09:00", ScheduleError::HoursOrder("09:00-09:00".into())),
        ];
        for (days, hours, expected) in cases {
            assert_eq!(BusinessHours::parse(days, hours), Err(expected), "{days} {hours}");
        }
        let message = BusinessHours::parse("someday", "09:00-17:00").unwrap_err().to_string();
        assert!(message.contains("mon-fri"), "{message}");
    }

    #[test]
    fn days_and_hours_are_described_for_the_caller() {
        let cases = [
            ("mon-fri", "09:00-17:00", "Monday to Friday, 9 AM to 5 PM"),
            ("mon-sat", "08:30-12:00", "Monday to Saturday, 8:30 AM to 12 PM"),
            ("mon,wed,fri", "10:00-18:30", "Monday, Wednesday and Friday, 10 AM to 6:30 PM"),
            ("mon-wed,fri", "09:00-17:00", "Monday to Wednesday and Friday, 9 AM to 5 PM"),
            ("sat,sun", "09:00-13:00", "Saturday and Sunday, 9 AM to 1 PM"),
            ("fri-mon", "09:00-17:00", "Friday to Monday, 9 AM to 5 PM"),
            ("tue", "09:00-17:00", "Tuesday, 9 AM to 5 PM"),
            ("daily", "00:00-04:00", "every day, 12 AM to 4 AM"),
        ];
        for (days, hours, expected) in cases {
            let bh = BusinessHours::parse(days, hours).unwrap();
            assert_eq!(bh.describe(), expected, "{days} {hours}");
        }
        assert_eq!(BusinessHours::parse("mon-fri", "09:00-17:00").unwrap().days_text(), "Monday to Friday");
    }

    #[test]
    fn days_and_hours_are_described_in_spanish() {
        let cases = [
            ("mon-fri", "09:00-17:00", "lunes a viernes, de 9 de la mañana a 5 de la tarde"),
            ("mon,wed,fri", "09:00-12:00", "lunes, miércoles y viernes, de 9 de la mañana a 12 del mediodía"),
            ("daily", "10:00-21:30", "todos los días, de 10 de la mañana a 9:30 de la noche"),
        ];
        for (days, hours, expected) in cases {
            let bh = BusinessHours::parse(days, hours).unwrap();
            assert_eq!(bh.describe_in(Language::Spanish), expected, "{days} {hours}");
        }
    }

    #[test]
    fn the_grid_starts_at_opening_and_every_slot_ends_by_closing() {
        let cal = calendar(New_York, "mon-fri", "09:00-17:00", 45, 10);
        let slots = cal.slots_on(date("2025-06-02"));
        let starts = local(&cal, &slots);
        assert_eq!(starts.first().unwrap(), "Mon 06-02 09:00");
        assert_eq!(starts[1], "Mon 06-02 09:45");
        // 480 minutes hold ten 45-minute slots; the 11th would end at 17:15.
        assert_eq!(starts.len(), 10);
        assert_eq!(starts.last().unwrap(), "Mon 06-02 15:45");
        for s in &slots {
            assert_eq!(s.ends_at - s.starts_at, Duration::minutes(45));
        }
    }

    #[test]
    fn closed_days_and_zero_length_slots_have_no_grid() {
        let cal = weekdays_9_to_5(New_York);
        assert!(cal.slots_on(date("2025-06-07")).is_empty(), "Saturday");
        assert!(cal.slots_on(date("2025-06-08")).is_empty(), "Sunday");
        let mut zero = cal.clone();
        zero.slot_minutes = 0;
        assert!(zero.slots_on(date("2025-06-02")).is_empty());
        let now = at(&cal, "2025-06-02 08:00");
        assert!(offer(&zero, &[], now, &Preference::default(), 3).is_empty());
    }

    #[test]
    fn weekends_are_skipped_when_offering_after_friday_close() {
        let cal = weekdays_9_to_5(New_York);
        let now = at(&cal, "2025-06-06 17:30"); // Friday evening
        let slots = offer(&cal, &[], now, &Preference::default(), 3);
        assert_eq!(local(&cal, &slots), ["Mon 06-09 09:00", "Mon 06-09 12:00", "Tue 06-10 09:00"]);
    }

    #[test]
    fn after_close_today_the_first_offer_is_tomorrow_morning() {
        let cal = weekdays_9_to_5(New_York);
        let now = at(&cal, "2025-06-03 18:05"); // Tuesday
        let slots = offer(&cal, &[], now, &Preference::default(), 1);
        assert_eq!(local(&cal, &slots), ["Wed 06-04 09:00"]);
    }

    #[test]
    fn a_slot_needs_the_minimum_lead_time() {
        let cal = weekdays_9_to_5(New_York);
        let now = at(&cal, "2025-06-03 09:45");
        let first = offer(&cal, &[], now, &Preference::default(), 1);
        assert_eq!(local(&cal, &first), ["Tue 06-03 10:30"]);

        // Exactly the lead time ahead is fine.
        let now = at(&cal, "2025-06-03 09:30");
        let first = offer(&cal, &[], now, &Preference::default(), 1);
        assert_eq!(local(&cal, &first), ["Tue 06-03 10:00"]);
        let ten = cal.slots_on(date("2025-06-03"))[2];
        assert!(is_bookable(&cal, &[], now, &ten));
        assert!(!is_bookable(&cal, &[], now + Duration::minutes(1), &ten));
    }

    #[test]
    fn new_york_spring_forward_weekend_shifts_the_utc_offset() {
        // 2025-03-09 02:00 EST jumps to 03:00 EDT.
        let cal = weekdays_9_to_5(New_York);
        let friday = cal.slots_on(date("2025-03-07"));
        let monday = cal.slots_on(date("2025-03-10"));
        assert_eq!(friday[0].starts_at, utc("2025-03-07T14:00:00Z"));
        assert_eq!(monday[0].starts_at, utc("2025-03-10T13:00:00Z"));
        assert_eq!(monday.last().unwrap().ends_at, utc("2025-03-10T21:00:00Z"));

        let now = utc("2025-03-07T23:00:00Z"); // Friday 18:00 EST
        let slots = offer(&cal, &[], now, &Preference::default(), 1);
        assert_eq!(slots[0].starts_at, utc("2025-03-10T13:00:00Z"));
    }

    #[test]
    fn spring_forward_skips_local_times_that_do_not_exist() {
        let cal = calendar(New_York, "daily", "00:00-04:00", 30, 0);
        let slots = cal.slots_on(date("2025-03-09"));
        let starts: Vec<DateTime<Utc>> = slots.iter().map(|s| s.starts_at).collect();
        assert_eq!(
            starts,
            [
                utc("2025-03-09T05:00:00Z"), // 00:00 EST
                utc("2025-03-09T05:30:00Z"),
                utc("2025-03-09T06:00:00Z"), // 01:00 EST
                utc("2025-03-09T06:30:00Z"), // 01:30 EST
                // 02:00 and 02:30 do not exist
                utc("2025-03-09T07:00:00Z"), // 03:00 EDT
                utc("2025-03-09T07:30:00Z"), // 03:30 EDT
            ]
        );
        // Every slot still lasts 30 real minutes.
        assert!(slots.iter().all(|s| s.ends_at - s.starts_at == Duration::minutes(30)));
    }

    #[test]
    fn fall_back_takes_the_earlier_instant_and_never_repeats_one() {
        // 2025-11-02 02:00 EDT falls back to 01:00 EST.
        let cal = calendar(New_York, "daily", "00:00-04:00", 30, 0);
        let slots = cal.slots_on(date("2025-11-02"));
        let starts: Vec<DateTime<Utc>> = slots.iter().map(|s| s.starts_at).collect();
        assert_eq!(
            starts,
            [
                utc("2025-11-02T04:00:00Z"), // 00:00 EDT
                utc("2025-11-02T04:30:00Z"),
                utc("2025-11-02T05:00:00Z"), // 01:00 EDT, the earlier of the two
                utc("2025-11-02T05:30:00Z"), // 01:30 EDT
                utc("2025-11-02T07:00:00Z"), // 02:00 EST
                utc("2025-11-02T07:30:00Z"),
                utc("2025-11-02T08:00:00Z"),
                utc("2025-11-02T08:30:00Z"),
            ]
        );
        let now = utc("2025-11-01T12:00:00Z");
        let offered = offer(&cal, &[], now, &Preference::default(), 40);
        let mut unique: Vec<_> = offered.iter().map(|s| s.starts_at).collect();
        unique.dedup();
        assert_eq!(unique.len(), offered.len());
    }

    #[test]
    fn new_york_fall_back_weekend_shifts_the_utc_offset() {
        let cal = weekdays_9_to_5(New_York);
        assert_eq!(cal.slots_on(date("2025-10-31"))[0].starts_at, utc("2025-10-31T13:00:00Z"));
        assert_eq!(cal.slots_on(date("2025-11-03"))[0].starts_at, utc("2025-11-03T14:00:00Z"));
        let now = utc("2025-11-01T16:00:00Z"); // Saturday
        let slots = offer(&cal, &[], now, &Preference::default(), 1);
        assert_eq!(slots[0].starts_at, utc("2025-11-03T14:00:00Z"));
    }

    #[test]
    fn madrid_and_los_angeles_tenants_open_at_their_own_nine() {
        // 2025-03-17: the US is already on summer time, Spain is not yet.
        let madrid = weekdays_9_to_5(Madrid);
        let la = weekdays_9_to_5(Los_Angeles);
        let day = date("2025-03-17");
        assert_eq!(madrid.slots_on(day)[0].starts_at, utc("2025-03-17T08:00:00Z"));
        assert_eq!(la.slots_on(day)[0].starts_at, utc("2025-03-17T16:00:00Z"));

        // The same instant is Monday afternoon in Madrid and Monday morning in LA.
        let now = utc("2025-03-17T14:00:00Z");
        let m = offer(&madrid, &[], now, &Preference::default(), 1);
        let l = offer(&la, &[], now, &Preference::default(), 1);
        assert_eq!(local(&madrid, &m), ["Mon 03-17 15:30"]);
        assert_eq!(local(&la, &l), ["Mon 03-17 09:00"]);

        // After Spain's change (2025-03-30) Madrid's nine is 07:00 UTC.
        assert_eq!(madrid.slots_on(date("2025-03-31"))[0].starts_at, utc("2025-03-31T07:00:00Z"));
    }

    #[test]
    fn kolkata_half_hour_offset_is_respected() {
        let cal = weekdays_9_to_5(Kolkata);
        let slots = cal.slots_on(date("2025-06-02"));
        assert_eq!(slots[0].starts_at, utc("2025-06-02T03:30:00Z"));
        assert_eq!(slots.last().unwrap().ends_at, utc("2025-06-02T11:30:00Z"));
        let now = utc("2025-06-02T04:00:00Z"); // 09:30 IST
        let first = offer(&cal, &[], now, &Preference::default(), 1);
        assert_eq!(local(&cal, &first), ["Mon 06-02 10:00"]);
    }

    #[test]
    fn busy_time_widened_by_the_buffer_is_never_offered() {
        let cal = calendar(New_York, "mon-fri", "09:00-17:00", 30, 15);
        let taken = [busy(&cal, "2025-06-03 10:00", "2025-06-03 10:30")];
        let grid = cal.slots_on(date("2025-06-03"));
        let now = at(&cal, "2025-06-02 12:00");
        let bookable: Vec<String> =
            local(&cal, &grid.iter().filter(|s| is_bookable(&cal, &taken, now, s)).copied().collect::<Vec<_>>());
        assert!(bookable.contains(&"Tue 06-03 09:00".to_string()));
        for excluded in ["Tue 06-03 09:30", "Tue 06-03 10:00", "Tue 06-03 10:30"] {
            assert!(!bookable.contains(&excluded.to_string()), "{excluded}");
        }
        assert!(bookable.contains(&"Tue 06-03 11:00".to_string()));

        let pref = Preference { date: Some(date("2025-06-03")), time: Some(time(10, 0)), part: None };
        let offered = offer(&cal, &taken, now, &pref, 3);
        assert!(offered.iter().all(|s| is_bookable(&cal, &taken, now, s)));
        assert_eq!(local(&cal, &offered), ["Tue 06-03 09:00", "Tue 06-03 11:00", "Tue 06-03 12:00"]);
    }

    #[test]
    fn without_buffer_back_to_back_slots_are_free() {
        let cal = weekdays_9_to_5(New_York);
        let taken = [busy(&cal, "2025-06-03 10:00", "2025-06-03 10:30")];
        let now = at(&cal, "2025-06-02 12:00");
        let grid = cal.slots_on(date("2025-06-03"));
        assert!(is_bookable(&cal, &taken, now, &grid[1])); // 09:30-10:00
        assert!(!is_bookable(&cal, &taken, now, &grid[2])); // 10:00-10:30
        assert!(is_bookable(&cal, &taken, now, &grid[3])); // 10:30-11:00
    }

    #[test]
    fn off_grid_or_wrong_length_slots_are_not_bookable() {
        let cal = weekdays_9_to_5(New_York);
        let now = at(&cal, "2025-06-02 08:00");
        let start = at(&cal, "2025-06-03 10:15");
        let off_grid = Slot { starts_at: start, ends_at: start + Duration::minutes(30) };
        assert!(!is_bookable(&cal, &[], now, &off_grid));
        let start = at(&cal, "2025-06-03 10:00");
        let too_long = Slot { starts_at: start, ends_at: start + Duration::minutes(60) };
        assert!(!is_bookable(&cal, &[], now, &too_long));
        let saturday = at(&cal, "2025-06-07 10:00");
        let weekend = Slot { starts_at: saturday, ends_at: saturday + Duration::minutes(30) };
        assert!(!is_bookable(&cal, &[], now, &weekend));
        let past = cal.slots_on(date("2025-05-30"))[0];
        assert!(!is_bookable(&cal, &[], now, &past));
    }

    #[test]
    fn a_preferred_time_comes_first_then_the_nearest_times_that_day() {
        let cal = weekdays_9_to_5(New_York);
        let now = at(&cal, "2025-06-02 08:00"); // Monday
        let pref = Preference { date: Some(date("2025-06-03")), time: Some(time(14, 30)), part: None };
        let slots = offer(&cal, &[], now, &pref, 3);
        assert_eq!(local(&cal, &slots), ["Tue 06-03 13:30", "Tue 06-03 14:30", "Tue 06-03 15:30"]);
    }

    #[test]
    fn a_taken_preferred_time_yields_the_nearest_free_times() {
        let cal = weekdays_9_to_5(New_York);
        let now = at(&cal, "2025-06-02 08:00");
        let taken = [busy(&cal, "2025-06-03 14:00", "2025-06-03 15:00")];
        let pref = Preference { date: Some(date("2025-06-03")), time: Some(time(14, 30)), part: None };
        let slots = offer(&cal, &taken, now, &pref, 3);
        assert_eq!(local(&cal, &slots), ["Tue 06-03 13:30", "Tue 06-03 15:00", "Tue 06-03 16:00"]);
    }

    #[test]
    fn a_fully_booked_preferred_day_moves_the_exact_time_to_the_next_day() {
        let cal = weekdays_9_to_5(New_York);
        let now = at(&cal, "2025-06-02 08:00");
        let taken = [busy(&cal, "2025-06-03 09:00", "2025-06-03 17:00")];
        let pref = Preference { date: Some(date("2025-06-03")), time: Some(time(11, 0)), part: None };
        let slots = offer(&cal, &taken, now, &pref, 3);
        assert_eq!(local(&cal, &slots), ["Wed 06-04 10:00", "Wed 06-04 11:00", "Wed 06-04 12:00"]);
    }

    #[test]
    fn a_time_without_a_date_offers_today_then_the_same_time_tomorrow() {
        let cal = weekdays_9_to_5(New_York);
        let now = at(&cal, "2025-06-02 08:00");
        let pref = Preference { date: None, time: Some(time(15, 0)), part: None };
        let slots = offer(&cal, &[], now, &pref, 3);
        assert_eq!(local(&cal, &slots), ["Mon 06-02 14:00", "Mon 06-02 15:00", "Tue 06-03 15:00"]);
    }

    #[test]
    fn a_part_of_the_day_limits_offers_to_that_part() {
        let cal = weekdays_9_to_5(New_York);
        let now = at(&cal, "2025-06-02 08:00");
        let afternoon = Preference { date: Some(date("2025-06-04")), time: None, part: Some(DayPart::Afternoon) };
        let slots = offer(&cal, &[], now, &afternoon, 3);
        assert_eq!(local(&cal, &slots), ["Wed 06-04 12:00", "Wed 06-04 14:00", "Wed 06-04 16:00"]);
        let morning = Preference { part: Some(DayPart::Morning), ..Preference::default() };
        let slots = offer(&cal, &[], now, &morning, 3);
        assert_eq!(local(&cal, &slots), ["Mon 06-02 09:00", "Mon 06-02 10:00", "Tue 06-03 09:00"]);
    }

    #[test]
    fn an_impossible_part_of_the_day_falls_back_to_any_free_slot() {
        let cal = weekdays_9_to_5(New_York);
        let now = at(&cal, "2025-06-02 08:00");
        let evening = Preference { part: Some(DayPart::Evening), ..Preference::default() };
        let slots = offer(&cal, &[], now, &evening, 2);
        assert_eq!(local(&cal, &slots), ["Mon 06-02 09:00", "Mon 06-02 13:00"]);
    }

    #[test]
    fn a_preferred_date_is_spread_across_that_day() {
        let cal = weekdays_9_to_5(New_York);
        let now = at(&cal, "2025-06-02 08:00");
        let pref = Preference { date: Some(date("2025-06-05")), ..Preference::default() };
        let slots = offer(&cal, &[], now, &pref, 3);
        assert_eq!(local(&cal, &slots), ["Thu 06-05 09:00", "Thu 06-05 12:00", "Thu 06-05 15:00"]);
    }

    #[test]
    fn a_closed_or_past_preferred_date_is_not_a_dead_end() {
        let cal = weekdays_9_to_5(New_York);
        let now = at(&cal, "2025-06-04 08:00"); // Wednesday
        let sunday = Preference { date: Some(date("2025-06-08")), ..Preference::default() };
        let slots = offer(&cal, &[], now, &sunday, 1);
        assert_eq!(local(&cal, &slots), ["Mon 06-09 09:00"]);

        let yesterday = Preference { date: Some(date("2025-06-03")), ..Preference::default() };
        let slots = offer(&cal, &[], now, &yesterday, 1);
        assert_eq!(local(&cal, &slots), ["Wed 06-04 09:00"]);
    }

    #[test]
    fn with_no_preference_offers_are_spread_and_at_most_two_a_day() {
        let cal = weekdays_9_to_5(New_York);
        let now = at(&cal, "2025-06-02 08:00");
        let slots = offer(&cal, &[], now, &Preference::default(), 3);
        assert_eq!(local(&cal, &slots), ["Mon 06-02 09:00", "Mon 06-02 12:00", "Tue 06-03 09:00"]);
    }

    #[test]
    fn spreading_relaxes_when_few_slots_are_free() {
        let cal = calendar(New_York, "mon", "09:00-10:30", 30, 0);
        let now = at(&cal, "2025-06-02 08:00"); // Monday; only Mondays open
        // Block every Monday but this one, so only three adjacent slots exist.
        let taken: Vec<Busy> = (1..6)
            .map(|w| {
                let d = date("2025-06-02") + Duration::weeks(w);
                Busy { starts_at: at(&cal, &format!("{d} 00:00")), ends_at: at(&cal, &format!("{d} 23:00")) }
            })
            .collect();
        let slots = offer(&cal, &taken, now, &Preference::default(), 3);
        assert_eq!(local(&cal, &slots), ["Mon 06-02 09:00", "Mon 06-02 09:30", "Mon 06-02 10:00"]);
        assert!(offer(&cal, &taken, now, &Preference::default(), 0).is_empty());
        assert_eq!(offer(&cal, &taken, now, &Preference::default(), 10).len(), 3);
    }

    #[test]
    fn offers_look_ahead_about_a_month_and_no_further() {
        let cal = weekdays_9_to_5(New_York);
        let now = at(&cal, "2025-06-02 08:00");
        let booked_solid = [busy(&cal, "2025-06-02 00:00", "2025-07-02 23:59")];
        assert!(offer(&cal, &booked_solid, now, &Preference::default(), 3).is_empty());
        let until_july = [busy(&cal, "2025-06-02 00:00", "2025-06-30 23:59")];
        let slots = offer(&cal, &until_july, now, &Preference::default(), 1);
        assert_eq!(local(&cal, &slots), ["Tue 07-01 09:00"]);
    }

    #[test]
    fn every_offer_is_bookable_distinct_and_in_order_through_a_dst_month() {
        let cal = calendar(New_York, "mon-sat", "08:00-18:00", 40, 10);
        let taken =
            [busy(&cal, "2025-03-08 09:00", "2025-03-08 11:00"), busy(&cal, "2025-03-10 08:00", "2025-03-10 12:00")];
        let mut now = utc("2025-03-01T00:00:00Z");
        while now < utc("2025-03-20T00:00:00Z") {
            for pref in [
                Preference::default(),
                Preference { time: Some(time(13, 20)), ..Preference::default() },
                Preference { part: Some(DayPart::Evening), ..Preference::default() },
            ] {
                let slots = offer(&cal, &taken, now, &pref, 3);
                assert_eq!(slots.len(), 3, "{now}");
                assert!(slots.windows(2).all(|w| w[0].starts_at < w[1].starts_at));
                assert!(slots.iter().all(|s| is_bookable(&cal, &taken, now, s)));
            }
            now += Duration::minutes(97);
        }
    }

    #[test]
    fn busy_times_at_the_edge_of_time_and_absurd_sizes_do_not_panic() {
        let cal = weekdays_9_to_5(New_York);
        let edge = [Busy { starts_at: DateTime::<Utc>::MIN_UTC, ends_at: DateTime::<Utc>::MAX_UTC }];
        let now = utc("2025-06-02T12:00:00Z");
        assert!(offer(&cal, &edge, now, &Preference::default(), 3).is_empty());
        let mut huge = cal.clone();
        huge.slot_minutes = u32::MAX;
        huge.buffer_minutes = u32::MAX;
        assert!(offer(&huge, &[], now, &Preference::default(), usize::MAX).is_empty());
        let mut tiny = cal.clone();
        tiny.slot_minutes = 1;
        assert_eq!(offer(&tiny, &[], now, &Preference::default(), 3).len(), 3);
    }

    #[test]
    fn day_parts_split_at_noon_and_five() {
        assert_eq!(DayPart::of(time(11, 59)), DayPart::Morning);
        assert_eq!(DayPart::of(time(12, 0)), DayPart::Afternoon);
        assert_eq!(DayPart::of(time(16, 59)), DayPart::Afternoon);
        assert_eq!(DayPart::of(time(17, 0)), DayPart::Evening);
        assert!(DayPart::Morning.contains(time(0, 0)));
        assert_eq!(serde_json::to_string(&DayPart::Afternoon).unwrap(), "\"afternoon\"");
    }

    #[test]
    fn open_hours_are_checked_in_the_tenants_zone() {
        let cal = weekdays_9_to_5(Los_Angeles);
        assert!(cal.is_open_at(utc("2025-06-02T16:00:00Z"))); // 09:00 PDT Monday
        assert!(!cal.is_open_at(utc("2025-06-02T15:59:00Z")));
        assert!(!cal.is_open_at(utc("2025-06-03T00:00:00Z"))); // 17:00 PDT
        assert!(!cal.is_open_at(utc("2025-06-07T18:00:00Z"))); // Saturday
    }

    #[test]
    fn slots_are_described_relative_to_today_in_english_and_spanish() {
        let cal = weekdays_9_to_5(New_York);
        let now = at(&cal, "2025-03-03 08:00"); // Monday
        let slot = |text: &str| {
            let s = at(&cal, text);
            Slot { starts_at: s, ends_at: s + Duration::minutes(30) }
        };
        let cases = [
            ("2025-03-03 11:00", Language::English, "today at 11 AM"),
            ("2025-03-04 14:30", Language::English, "tomorrow, Tuesday March 4th at 2:30 PM"),
            ("2025-03-07 09:00", Language::English, "Friday March 7th at 9 AM"),
            ("2025-03-21 12:00", Language::English, "Friday March 21st at 12 PM"),
            ("2025-04-02 16:15", Language::English, "Wednesday April 2nd at 4:15 PM"),
            ("2025-03-03 11:00", Language::Spanish, "hoy a las 11 de la mañana"),
            ("2025-03-04 14:30", Language::Spanish, "mañana, martes 4 de marzo a las 2:30 de la tarde"),
            ("2025-03-05 13:00", Language::Spanish, "miércoles 5 de marzo a la 1 de la tarde"),
            ("2025-03-12 12:30", Language::Spanish, "miércoles 12 de marzo a las 12:30 del mediodía"),
        ];
        for (start, lang, expected) in cases {
            assert_eq!(describe_slot(&cal, &slot(start), now, lang), expected, "{start}");
        }
    }

    #[test]
    fn english_ordinal_suffixes() {
        let cases = [
            (1, "st"),
            (2, "nd"),
            (3, "rd"),
            (4, "th"),
            (11, "th"),
            (12, "th"),
            (13, "th"),
            (21, "st"),
            (22, "nd"),
            (23, "rd"),
            (30, "th"),
            (31, "st"),
        ];
        for (n, suffix) in cases {
            assert_eq!(english_ordinal_suffix(n), suffix, "{n}");
        }
    }
}
