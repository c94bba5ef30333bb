//! Dates and times as callers say them — "next tuesday", "two thirty p m", "el cinco de
//! enero", "por la tarde" — read from speech-recogniser or typed text and resolved against
//! the tenant's today. Owns spelled-out numbers; knows nothing about slots or calendars.
//!
//! Choices made where speech is ambiguous (the agent always reads the full date and time
//! back, so a wrong guess is corrected at confirmation):
//! - A weekday ("tuesday", "on tuesday", "this tuesday", "next tuesday", "el próximo
//!   martes") is its next occurrence strictly after today; "today" means today. "Next
//!   tuesday" is not pushed a further week: people split evenly on that, and read-back
//!   settles it. "Tuesday next week" / "el martes de la semana que viene" is the Tuesday
//!   of the next Monday-based week; "tuesday after next" adds a week.
//! - A day of the month alone ("the fifth", "el cinco") is the next date on or after today
//!   with that day.
//! - "1/9" is month/day in English and day/month in Spanish.
//! - A bare hour without am/pm or a part of the day is a business hour: 1–6 → PM, 7–11 →
//!   AM, 12 → noon. A time with a leading zero ("06:00") or above 12 is 24-hour.
//! - A lone number is not a time: it needs "at"/"a las", am/pm, "o'clock", minutes
//!   ("two thirty") or a part of the day, so phone digits and counts stay numbers.

use std::fmt;

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, Weekday};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::language::Language;
use crate::domain::scheduling::DayPart;

/// A time a caller asked for: an exact clock time or just a part of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpokenTime {
    At(NaiveTime),
    Part(DayPart),
}

impl SpokenTime {
    /// The clock time, if one was said.
    pub fn time(self) -> Option<NaiveTime> {
        match self {
            SpokenTime::At(t) => Some(t),
            SpokenTime::Part(_) => None,
        }
    }

    /// The part of the day, if only that was said.
    pub fn part(self) -> Option<DayPart> {
        match self {
            SpokenTime::At(_) => None,
            SpokenTime::Part(p) => Some(p),
        }
    }
}

/// `"14:30"` for a clock time, `"morning"` / `"afternoon"` / `"evening"` otherwise.
impl fmt::Display for SpokenTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpokenTime::At(t) => write!(f, "{}", t.format("%H:%M")),
            SpokenTime::Part(p) => f.write_str(p.as_str()),
        }
    }
}

impl Serialize for SpokenTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SpokenTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "morning" => Ok(SpokenTime::Part(DayPart::Morning)),
            "afternoon" => Ok(SpokenTime::Part(DayPart::Afternoon)),
            "evening" => Ok(SpokenTime::Part(DayPart::Evening)),
            other => NaiveTime::parse_from_str(other, "%H:%M").map(SpokenTime::At).map_err(|_| {
                serde::de::Error::custom(format!("expected \"HH:MM\" or a part of the day, got {other:?}"))
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Normalising text into tokens
// ---------------------------------------------------------------------------------------

/// Lower-cases, strips accents ("mañana" → "manana"), drops apostrophes ("o'clock" →
/// "oclock"), turns punctuation into spaces (keeping `:` `/` `-` `.` between digits, so
/// "2:30", "1/9" and "555-123-4567" stay whole) and splits "2pm" but not "9th".
pub fn normalize(text: &str) -> String {
    let chars: Vec<char> = text.to_lowercase().chars().map(crate::domain::language::fold_accent).collect();
    let mut out = String::with_capacity(chars.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        let prev = if i > 0 { chars.get(i - 1).copied() } else { None };
        let next = chars.get(i + 1).copied();
        let is_digit = |x: Option<char>| x.is_some_and(|x| x.is_ascii_digit());
        match c {
            'a'..='z' | '0'..='9' => {
                if let Some(p) = prev {
                    let letter_after_digit =
                        p.is_ascii_digit() && c.is_ascii_alphabetic() && !ordinal_suffix_at(&chars, i);
                    let digit_after_letter = p.is_ascii_alphabetic() && c.is_ascii_digit();
                    if letter_after_digit || digit_after_letter {
                        out.push(' ');
                    }
                }
                out.push(c);
            }
            '\'' | '\u{2019}' => {}
            ':' | '/' | '-' | '.' if is_digit(prev) && is_digit(next) => out.push(c),
            '+' if is_digit(next) => {
                out.push(' ');
                out.push('+');
            }
            _ => out.push(' '),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether the letters at `i` are "st"/"nd"/"rd"/"th" ending a word ("9th", "21st").
fn ordinal_suffix_at(chars: &[char], i: usize) -> bool {
    let pair: String = chars.iter().skip(i).take(2).collect();
    let after = chars.get(i + 2);
    matches!(pair.as_str(), "st" | "nd" | "rd" | "th") && after.is_none_or(|c| !c.is_alphanumeric())
}

/// The normalised words of an utterance.
pub(crate) fn tokens(text: &str) -> Vec<String> {
    normalize(text).split(' ').filter(|w| !w.is_empty()).map(String::from).collect()
}

/// A token with numbers read: spelled-out and typed numbers alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    Word(String),
    /// A cardinal; `digits` is how many digits were typed (0 when spelled out), so "05"
    /// and "five" can be told apart.
    Num {
        value: u32,
        digits: u8,
    },
    /// An ordinal: "9th", "ninth", "twenty first", "primero".
    Ord(u32),
    /// "2:30"; `zero_padded` for "06:00", which is read as 24-hour time.
    Clock {
        hour: u32,
        minute: u32,
        zero_padded: bool,
    },
    /// "1/9" or "1/9/2026", in the order written.
    Slash(Vec<u32>),
    /// "2026-01-09".
    Iso(i32, u32, u32),
}

impl Tok {
    fn word(&self) -> Option<&str> {
        match self {
            Tok::Word(w) => Some(w),
            _ => None,
        }
    }

    fn is(&self, word: &str) -> bool {
        self.word() == Some(word)
    }

    fn num(&self) -> Option<u32> {
        match self {
            Tok::Num { value, .. } => Some(*value),
            _ => None,
        }
    }

    fn day(&self) -> Option<u32> {
        match self {
            Tok::Num { value, .. } | Tok::Ord(value) if (1..=31).contains(value) => Some(*value),
            _ => None,
        }
    }
}

/// A spelled-out cardinal from 0 to 90 in either language. "once" (11) and "ten" (Spanish
/// "have!") only count in the language where they are numbers.
pub(crate) fn cardinal(word: &str, lang: Language) -> Option<u32> {
    let n = match word {
        "zero" | "cero" => 0,
        "one" | "uno" => 1,
        "two" | "dos" => 2,
        "three" | "tres" => 3,
        "four" | "cuatro" => 4,
        "five" | "cinco" => 5,
        "six" | "seis" => 6,
        "seven" | "siete" => 7,
        "eight" | "ocho" => 8,
        "nine" | "nueve" => 9,
        "ten" if lang == Language::English => 10,
        "diez" => 10,
        "eleven" => 11,
        "once" if lang == Language::Spanish => 11,
        "twelve" | "doce" => 12,
        "thirteen" | "trece" => 13,
        "fourteen" | "catorce" => 14,
        "fifteen" | "quince" => 15,
        "sixteen" | "dieciseis" => 16,
        "seventeen" | "diecisiete" => 17,
        "eighteen" | "dieciocho" => 18,
        "nineteen" | "diecinueve" => 19,
        "twenty" | "veinte" => 20,
        "veintiuno" | "veintiun" | "veintiuna" => 21,
        "veintidos" => 22,
        "veintitres" => 23,
        "veinticuatro" => 24,
        "veinticinco" => 25,
        "veintiseis" => 26,
        "veintisiete" => 27,
        "veintiocho" => 28,
        "veintinueve" => 29,
        "thirty" | "treinta" => 30,
        "forty" | "fourty" | "cuarenta" => 40,
        "fifty" | "cincuenta" => 50,
        "sixty" | "sesenta" => 60,
        "seventy" | "setenta" => 70,
        "eighty" | "ochenta" => 80,
        "ninety" | "noventa" => 90,
        _ => return None,
    };
    Some(n)
}

/// A spelled-out ordinal ("first" … "thirtieth", "primero").
pub(crate) fn ordinal(word: &str) -> Option<u32> {
    let n = match word {
        "first" | "primero" => 1,
        "second" => 2,
        "third" => 3,
        "fourth" => 4,
        "fifth" => 5,
        "sixth" => 6,
        "seventh" => 7,
        "eighth" => 8,
        "ninth" => 9,
        "tenth" => 10,
        "eleventh" => 11,
        "twelfth" => 12,
        "thirteenth" => 13,
        "fourteenth" => 14,
        "fifteenth" => 15,
        "sixteenth" => 16,
        "seventeenth" => 17,
        "eighteenth" => 18,
        "nineteenth" => 19,
        "twentieth" => 20,
        "thirtieth" => 30,
        _ => return None,
    };
    Some(n)
}

fn is_tens(n: u32) -> bool {
    n >= 20 && n.is_multiple_of(10)
}

/// Reads numbers in a token list: "twenty one" → 21, "thirty first" → 31st, "treinta y
/// uno" → 31, "9th", "2:30", "1/9", plus "p m" → "pm" and "o clock" → "oclock".
pub(crate) fn numberize(words: &[String], lang: Language) -> Vec<Tok> {
    let mut out: Vec<Tok> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        let next = words.get(i + 1).map(String::as_str);
        let after = words.get(i + 2).map(String::as_str);
        let prev_is_number = matches!(out.last(), Some(Tok::Num { .. } | Tok::Clock { .. }));
        if w.starts_with(|c: char| c.is_ascii_digit()) {
            out.extend(read_digits(w));
            i += 1;
            continue;
        }
        if let Some(tens) = cardinal(w, lang).filter(|n| is_tens(*n)) {
            if let Some(unit) = next.and_then(|n| cardinal(n, lang)).filter(|u| (1..=9).contains(u)) {
                out.push(Tok::Num { value: tens + unit, digits: 0 });
                i += 2;
                continue;
            }
            if let Some(unit) = next.and_then(ordinal).filter(|u| (1..=9).contains(u)) {
                out.push(Tok::Ord(tens + unit));
                i += 2;
                continue;
            }
            if next == Some("y")
                && let Some(unit) = after.and_then(|a| cardinal(a, lang)).filter(|u| (1..=9).contains(u))
            {
                out.push(Tok::Num { value: tens + unit, digits: 0 });
                i += 3;
                continue;
            }
        }
        let tok = if let Some(n) = cardinal(w, lang) {
            Tok::Num { value: n, digits: 0 }
        } else if let Some(n) = ordinal(w) {
            Tok::Ord(n)
        } else if matches!(w, "una" | "un") && out.last().is_some_and(|t| t.is("la")) {
            Tok::Num { value: 1, digits: 0 }
        } else if w == "p" && next == Some("m") {
            i += 1;
            Tok::Word("pm".into())
        } else if w == "a" && next == Some("m") && prev_is_number {
            i += 1;
            Tok::Word("am".into())
        } else if w == "o" && next == Some("clock") {
            i += 1;
            Tok::Word("oclock".into())
        } else {
            Tok::Word(w.to_string())
        };
        out.push(tok);
        i += 1;
    }
    out
}

/// A token that starts with a digit: "12", "9th", "2:30", "1/9/2026", "2026-01-09",
/// "555-123-4567" (split into its groups).
fn read_digits(w: &str) -> Vec<Tok> {
    let num = |s: &str| -> Option<Tok> {
        let value = s.parse::<u32>().ok()?;
        let digits = u8::try_from(s.len()).unwrap_or(u8::MAX);
        Some(Tok::Num { value, digits })
    };
    if w.bytes().all(|b| b.is_ascii_digit()) {
        return num(w).into_iter().collect();
    }
    for suffix in ["st", "nd", "rd", "th"] {
        if let Some(n) = w.strip_suffix(suffix).and_then(|s| s.parse::<u32>().ok()) {
            return vec![Tok::Ord(n)];
        }
    }
    let parts: Vec<&str> = w.split([':', '/', '-', '.']).collect();
    let values: Option<Vec<u32>> = parts.iter().map(|p| p.parse::<u32>().ok()).collect();
    let Some(values) = values else {
        return vec![Tok::Word(w.to_string())];
    };
    let clock_like = parts.len() == 2 && parts[1].len() == 2 && values[0] <= 23 && values[1] <= 59;
    if (w.contains(':') || w.contains('.')) && clock_like {
        return vec![Tok::Clock {
            hour: values[0],
            minute: values[1],
            zero_padded: parts[0].len() == 2 && parts[0].starts_with('0'),
        }];
    }
    if w.contains('/') && (2..=3).contains(&values.len()) {
        return vec![Tok::Slash(values)];
    }
    if w.contains('-')
        && parts.len() == 3
        && parts[0].len() == 4
        && let Ok(year) = i32::try_from(values[0])
    {
        return vec![Tok::Iso(year, values[1], values[2])];
    }
    parts.iter().filter_map(|p| num(p)).collect()
}

/// Spelled-out numbers as digits, for logs and for other readers: "two thirty p m" →
/// "2 30 pm", "january ninth" → "january 9th", "treinta y uno" → "31".
pub fn words_to_digits(text: &str, lang: Language) -> String {
    numberize(&tokens(text), lang)
        .iter()
        .map(|t| match t {
            Tok::Word(w) => w.clone(),
            Tok::Num { value, digits } => format!("{value:0width$}", width = usize::from(*digits)),
            Tok::Ord(n) => format!("{n}{}", crate::dialogue::phrasing::english_ordinal_suffix(*n)),
            Tok::Clock { hour, minute, .. } => format!("{hour}:{minute:02}"),
            Tok::Slash(parts) => parts.iter().map(u32::to_string).collect::<Vec<_>>().join("/"),
            Tok::Iso(y, m, d) => format!("{y:04}-{m:02}-{d:02}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------------

fn month_of(word: &str) -> Option<u32> {
    let m = match word {
        "january" | "jan" | "enero" | "ene" => 1,
        "february" | "feb" | "febrero" => 2,
        "march" | "mar" | "marzo" => 3,
        "april" | "apr" | "abril" | "abr" => 4,
        "may" | "mayo" => 5,
        "june" | "jun" | "junio" => 6,
        "july" | "jul" | "julio" => 7,
        "august" | "aug" | "agosto" | "ago" => 8,
        "september" | "sep" | "sept" | "septiembre" | "setiembre" => 9,
        "october" | "oct" | "octubre" => 10,
        "november" | "nov" | "noviembre" => 11,
        "december" | "dec" | "diciembre" | "dic" => 12,
        _ => return None,
    };
    Some(m)
}

pub(crate) fn weekday_of(word: &str) -> Option<Weekday> {
    let d = match word {
        "monday" | "mon" | "lunes" => Weekday::Mon,
        "tuesday" | "tue" | "tues" | "martes" => Weekday::Tue,
        "wednesday" | "wed" | "weds" | "miercoles" => Weekday::Wed,
        "thursday" | "thu" | "thur" | "thurs" | "jueves" => Weekday::Thu,
        "friday" | "fri" | "viernes" => Weekday::Fri,
        "saturday" | "sat" | "sabado" => Weekday::Sat,
        "sunday" | "sun" | "domingo" => Weekday::Sun,
        _ => return None,
    };
    Some(d)
}

/// Words after an ordinal that make it an adjective ("the first available"), not a date.
#[rustfmt::skip]
const NOT_DATE_AFTER: &[&str] = &[
    "one", "ones", "option", "options", "choice", "available", "time", "times", "appointment",
    "slot", "opening", "thing", "visit", "week", "month", "day", "person", "name", "number",
    "floor", "opcion", "vez", "cita", "hora", "semana", "mes", "persona", "numero", "minute",
    "minutes", "hour", "hours", "year", "years",
];

/// A date as a caller says it, resolved against `today` (the tenant's local date).
///
/// English: "today", "tomorrow", "day after tomorrow", "tuesday", "on tuesday", "this
/// friday", "next tuesday", "tuesday next week", "next week", "in 3 days", "the 5th",
/// "the fifth", "january 9th", "jan 9", "9th of january", "january ninth", "1/9" (m/d),
/// "2026-01-09". Spanish: "hoy", "mañana" (but "por la mañana" is a part of the day),
/// "pasado mañana", "el martes", "el próximo martes", "el cinco", "el 5 de enero", "cinco
/// de enero", "9/1" (d/m). See the module notes for the ambiguous cases.
pub fn parse_date(text: &str, today: NaiveDate, lang: Language) -> Option<NaiveDate> {
    let toks = numberize(&tokens(text), lang);
    if let Some(explicit) = explicit_date(&toks, today, lang) {
        // A month and day that do not exist ("february 30th") is no date at all, rather
        // than falling through to some other reading of the same words.
        return explicit;
    }
    relative_date(&toks, today)
        .or_else(|| weekday_date(&toks, today))
        .or_else(|| next_week_date(&toks, today))
        .or_else(|| in_days_date(&toks, today))
        .or_else(|| day_of_month_date(&toks, today))
}

fn word_at(toks: &[Tok], i: usize) -> Option<&str> {
    toks.get(i).and_then(Tok::word)
}

fn year_at(toks: &[Tok], i: usize) -> Option<i32> {
    match toks.get(i) {
        Some(Tok::Num { value, digits: 4 }) if (2000..=2100).contains(value) => i32::try_from(*value).ok(),
        Some(Tok::Word(w)) if w == "of" || w == "de" || w == "del" => year_at(toks, i + 1),
        _ => None,
    }
}

/// Outer `None`: no month-and-day was said. `Some(None)`: one was said but does not exist.
fn explicit_date(toks: &[Tok], today: NaiveDate, lang: Language) -> Option<Option<NaiveDate>> {
    for (i, tok) in toks.iter().enumerate() {
        match tok {
            Tok::Iso(y, m, d) => return Some(NaiveDate::from_ymd_opt(*y, *m, *d)),
            Tok::Slash(parts) => {
                let (m, d) = match lang {
                    Language::English => (parts[0], parts[1]),
                    Language::Spanish => (parts[1], parts[0]),
                };
                let year = parts.get(2).map(|y| if *y < 100 { 2000 + y } else { *y });
                return Some(resolve_month_day(m, d, year.and_then(|y| i32::try_from(y).ok()), today));
            }
            Tok::Word(w) => {
                let Some(month) = month_of(w) else { continue };
                let prev = |back: usize| i.checked_sub(back).and_then(|j| toks.get(j));
                // "9th of january", "cinco de enero", "el 5 de enero"
                let of_before = prev(1).is_some_and(|t| t.is("of") || t.is("de"));
                let day_before = if of_before {
                    prev(2).and_then(Tok::day)
                } else if w != "may" {
                    // "the fifth may work" must not become May 5th.
                    prev(1).and_then(Tok::day)
                } else {
                    None
                };
                // "january 9th", "jan 9", "january the ninth", "enero 5"
                let skip_the = usize::from(word_at(toks, i + 1) == Some("the"));
                let day_after = toks.get(i + 1 + skip_the).and_then(Tok::day);
                let (day, year) = match (day_before, day_after) {
                    (Some(d), _) => (d, year_at(toks, i + 1)),
                    (None, Some(d)) => (d, year_at(toks, i + 2 + skip_the)),
                    (None, None) => continue,
                };
                return Some(resolve_month_day(month, day, year, today));
            }
            _ => {}
        }
    }
    None
}

/// A month and day in the given year, or the next occurrence on or after today.
fn resolve_month_day(month: u32, day: u32, year: Option<i32>, today: NaiveDate) -> Option<NaiveDate> {
    if let Some(y) = year {
        return NaiveDate::from_ymd_opt(y, month, day);
    }
    (0..=4).filter_map(|offset| NaiveDate::from_ymd_opt(today.year() + offset, month, day)).find(|d| *d >= today)
}

/// Whether the word at `i` is Spanish "mañana" meaning tomorrow, not "la mañana".
fn manana_is_tomorrow(toks: &[Tok], i: usize) -> bool {
    let prev = i.checked_sub(1).and_then(|j| word_at(toks, j));
    !matches!(prev, Some("la" | "esta" | "de" | "por" | "en" | "las" | "pasado"))
}

fn relative_date(toks: &[Tok], today: NaiveDate) -> Option<NaiveDate> {
    let words: Vec<&str> = toks.iter().map(|t| t.word().unwrap_or("#")).collect();
    let has_seq = |seq: &[&str]| words.windows(seq.len()).any(|w| w == seq);
    if has_seq(&["day", "after", "tomorrow"]) || has_seq(&["pasado", "manana"]) {
        return add_days(today, 2);
    }
    let tomorrow = words.iter().enumerate().any(|(i, w)| {
        matches!(*w, "tomorrow" | "tomorow" | "tmrw" | "tmw") || (*w == "manana" && manana_is_tomorrow(toks, i))
    });
    if tomorrow {
        return add_days(today, 1);
    }
    let this_part = ["this", "esta"].iter().any(|this| {
        ["morning", "afternoon", "evening", "manana", "tarde", "noche"].iter().any(|part| has_seq(&[this, part]))
    });
    if this_part || words.iter().any(|w| matches!(*w, "today" | "tonight" | "hoy")) {
        return Some(today);
    }
    None
}

fn add_days(date: NaiveDate, days: i64) -> Option<NaiveDate> {
    date.checked_add_signed(Duration::days(days))
}

fn monday_of_next_week(today: NaiveDate) -> Option<NaiveDate> {
    add_days(today, 7 - i64::from(today.weekday().num_days_from_monday()))
}

fn says_next_week(toks: &[Tok]) -> bool {
    let words: Vec<&str> = toks.iter().map(|t| t.word().unwrap_or("#")).collect();
    let has_seq = |seq: &[&str]| words.windows(seq.len()).any(|w| w == seq);
    has_seq(&["next", "week"])
        || has_seq(&["semana", "que", "viene"])
        || has_seq(&["proxima", "semana"])
        || has_seq(&["siguiente", "semana"])
        || has_seq(&["semana", "proxima"])
}

fn weekday_date(toks: &[Tok], today: NaiveDate) -> Option<NaiveDate> {
    let (i, day) = toks.iter().enumerate().find_map(|(i, t)| t.word().and_then(weekday_of).map(|d| (i, d)))?;
    let offset = i64::from(day.num_days_from_monday());
    if says_next_week(toks) {
        return monday_of_next_week(today).and_then(|monday| add_days(monday, offset));
    }
    let today_offset = i64::from(today.weekday().num_days_from_monday());
    let mut ahead = (offset - today_offset).rem_euclid(7);
    if ahead == 0 {
        ahead = 7;
    }
    if word_at(toks, i + 1) == Some("after") && word_at(toks, i + 2) == Some("next") {
        ahead += 7;
    }
    add_days(today, ahead)
}

fn next_week_date(toks: &[Tok], today: NaiveDate) -> Option<NaiveDate> {
    says_next_week(toks).then(|| monday_of_next_week(today)).flatten()
}

/// "in 3 days", "in a week", "in two weeks", "en tres días", "dentro de una semana".
fn in_days_date(toks: &[Tok], today: NaiveDate) -> Option<NaiveDate> {
    for (i, t) in toks.iter().enumerate() {
        if !(t.is("in") || t.is("en") || t.is("de")) {
            continue;
        }
        let (count, unit_at) = match toks.get(i + 1) {
            Some(Tok::Num { value, .. }) => (*value, i + 2),
            Some(Tok::Word(w)) if matches!(w.as_str(), "a" | "una" | "un") => (1, i + 2),
            _ => continue,
        };
        let days = match word_at(toks, unit_at) {
            Some("day" | "days" | "dia" | "dias") => i64::from(count),
            Some("week" | "weeks" | "semana" | "semanas") => 7 * i64::from(count),
            _ => continue,
        };
        if days <= 366 {
            return add_days(today, days);
        }
    }
    None
}

fn day_of_month_date(toks: &[Tok], today: NaiveDate) -> Option<NaiveDate> {
    for (i, t) in toks.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|j| word_at(toks, j));
        let prev2 = i.checked_sub(2).and_then(|j| word_at(toks, j));
        let next = word_at(toks, i + 1);
        // "one" was read as a number: "the first one" is an option, not a date.
        let next_is_one = matches!(toks.get(i + 1), Some(Tok::Num { value: 1, digits: 0 }));
        if next_is_one || next.is_some_and(|n| NOT_DATE_AFTER.contains(&n)) {
            continue;
        }
        let day = match t {
            // "the 5th", "on the fifth", "9th", "fifth please"
            Tok::Ord(d) if i == 0 || matches!(prev, Some("the" | "on" | "el" | "dia" | "for")) => *d,
            // "el cinco", "el día 5", "on the 5"
            Tok::Num { value, .. }
                if matches!(prev, Some("el" | "dia"))
                    || (prev == Some("the") && matches!(prev2, Some("on" | "for"))) =>
            {
                *value
            }
            _ => continue,
        };
        if !(1..=31).contains(&day) {
            continue;
        }
        let mut first = today.with_day(1)?;
        for _ in 0..=12 {
            if let Some(d) = first.with_day(day).filter(|d| *d >= today) {
                return Some(d);
            }
            first = first.checked_add_months(chrono::Months::new(1))?;
        }
        return None;
    }
    None
}

// ---------------------------------------------------------------------------------------
// Times
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meridiem {
    Am,
    Pm,
}

/// A part of the day named at `i`: "morning", "tonight", "por la tarde", "esta noche".
/// Greetings ("good morning", "buenas tardes") and "más tarde" (later) are not.
fn part_at(toks: &[Tok], i: usize) -> Option<DayPart> {
    if let Some(part) = noon_side(toks, i) {
        return Some(part);
    }
    let w = word_at(toks, i)?;
    let prev = i.checked_sub(1).and_then(|j| word_at(toks, j));
    if matches!(prev, Some("good" | "buenos" | "buenas" | "mas")) {
        return None;
    }
    let spanish_article = matches!(prev, Some("la" | "las" | "esta" | "en" | "por" | "de"));
    match w {
        "morning" | "mornings" | "madrugada" => Some(DayPart::Morning),
        "afternoon" | "afternoons" => Some(DayPart::Afternoon),
        "evening" | "evenings" | "night" | "tonight" => Some(DayPart::Evening),
        "manana" if spanish_article && !manana_is_tomorrow(toks, i) => Some(DayPart::Morning),
        "tarde" | "tardes" if spanish_article => Some(DayPart::Afternoon),
        "noche" | "noches" if spanish_article => Some(DayPart::Evening),
        _ => None,
    }
}

/// "before noon" / "antes del mediodía" is the morning; "after lunch" / "después de comer"
/// the afternoon.
fn noon_side(toks: &[Tok], i: usize) -> Option<DayPart> {
    let w = word_at(toks, i)?;
    if !matches!(w, "noon" | "midday" | "lunch" | "lunchtime" | "mediodia" | "comer" | "almuerzo") {
        return None;
    }
    let before = |back: usize| i.checked_sub(back).and_then(|j| word_at(toks, j));
    let relation = match before(1) {
        Some("del" | "de") => before(2),
        other => other,
    };
    match relation {
        Some("before" | "antes") => Some(DayPart::Morning),
        Some("after" | "despues") => Some(DayPart::Afternoon),
        _ => None,
    }
}

/// am/pm from the utterance: an explicit "am"/"pm" wins, then a part of the day.
fn meridiem(toks: &[Tok]) -> Option<Meridiem> {
    if toks.iter().any(|t| t.is("pm")) {
        return Some(Meridiem::Pm);
    }
    if toks.iter().any(|t| t.is("am")) {
        return Some(Meridiem::Am);
    }
    let noon = toks.iter().enumerate().any(|(i, t)| t.is("mediodia") && noon_side(toks, i).is_none());
    if noon {
        return Some(Meridiem::Pm);
    }
    (0..toks.len()).find_map(|i| part_at(toks, i)).map(|p| match p {
        DayPart::Morning => Meridiem::Am,
        DayPart::Afternoon | DayPart::Evening => Meridiem::Pm,
    })
}

/// Words after a number that make it a count, not an hour ("at 3 people"? no: "2 hours").
#[rustfmt::skip]
const NOT_TIME_AFTER: &[&str] = &[
    "minute", "minutes", "mins", "hour", "hours", "hrs", "day", "days", "week", "weeks", "month",
    "months", "people", "persons", "person", "of", "year", "years", "minutos", "horas", "dias",
    "semanas", "personas", "meses",
];

/// Words before a lone number that make it an hour.
#[rustfmt::skip]
const TIME_CUES: &[&str] = &[
    "at", "around", "about", "by", "after", "before", "until", "till", "til", "las", "la", "say",
    "maybe",
];

/// A clock time or a part of the day as a caller says it.
///
/// English: "2:30 pm", "2 30 p m", "two thirty p m", "two thirty in the afternoon",
/// "at 3", "three o'clock", "noon", "half past two", "quarter to five", "ten past four",
/// "four fifteen", "morning", "in the afternoon", "evening". Spanish: "a las tres", "a las
/// tres y media", "a las diez de la mañana", "a las cuatro de la tarde", "a la una",
/// "a las cinco menos cuarto", "por la tarde". A bare hour follows the business-hours rule
/// in the module notes.
pub fn parse_time(text: &str, lang: Language) -> Option<SpokenTime> {
    let toks = numberize(&tokens(text), lang);
    let mer = meridiem(&toks);
    for i in 0..toks.len() {
        if let Some((hour, minute, twenty_four)) = clock_at(&toks, i) {
            return resolve_clock(hour, minute, twenty_four, mer).map(SpokenTime::At);
        }
    }
    (0..toks.len()).find_map(|i| part_at(&toks, i)).map(SpokenTime::Part)
}

/// Applies am/pm or the business-hours rule to an hour as said.
fn resolve_clock(hour: u32, minute: u32, twenty_four: bool, mer: Option<Meridiem>) -> Option<NaiveTime> {
    let hour = if twenty_four || hour == 0 || hour > 12 {
        hour
    } else {
        match mer {
            Some(Meridiem::Pm) => hour % 12 + 12,
            Some(Meridiem::Am) => hour % 12,
            None if hour <= 6 => hour + 12,
            None => hour,
        }
    };
    NaiveTime::from_hms_opt(hour, minute, 0)
}

/// A clock time starting at token `i`: (hour as said, minute, whether it is 24-hour).
fn clock_at(toks: &[Tok], i: usize) -> Option<(u32, u32, bool)> {
    let tok = &toks[i];
    let prev = i.checked_sub(1).and_then(|j| toks.get(j));
    let prev_word = prev.and_then(Tok::word);
    let next = toks.get(i + 1);
    let next_word = next.and_then(Tok::word);

    match tok {
        Tok::Word(w) => match w.as_str() {
            "noon" | "midday" | "mediodia" if noon_side(toks, i).is_none() => {
                return Some((12, 0, true));
            }
            "midnight" | "medianoche" => return Some((0, 0, true)),
            // "half past two", "quarter past four", "quarter to five", "quarter of five"
            "half" | "quarter" | "cuarto" => {
                let minutes = if w == "half" { 30 } else { 15 };
                return minutes_around_hour(toks, i + 1, minutes);
            }
            _ => return None,
        },
        Tok::Clock { hour, minute, zero_padded } => return Some((*hour, *minute, *zero_padded)),
        Tok::Num { .. } => {}
        _ => return None,
    }
    let value = tok.num()?;
    if prev.is_some_and(|p| matches!(p, Tok::Num { .. })) {
        return None;
    }
    if let Some(m) = next_word.filter(|n| NOT_TIME_AFTER.contains(n)) {
        // "ten minutes past four" is still a time; "2 hours" is not.
        if matches!(m, "minute" | "minutes" | "minutos") {
            return minutes_around_hour(toks, i + 2, value);
        }
        return None;
    }
    // "ten past four", "twenty to five"
    if let Some(found) = minutes_around_hour(toks, i + 1, value)
        && !matches!(prev_word, Some("from" | "between"))
    {
        return Some(found);
    }
    // Spanish "tres y media", "cinco menos cuarto", "las tres y diez"
    if (1..=12).contains(&value) {
        match (next_word, toks.get(i + 2)) {
            (Some("y"), Some(Tok::Word(w))) if w == "media" => return Some((value, 30, false)),
            (Some("y"), Some(Tok::Word(w))) if w == "cuarto" => return Some((value, 15, false)),
            (Some("menos"), Some(Tok::Word(w))) if w == "cuarto" => {
                return Some((previous_hour(value), 45, false));
            }
            (Some("y"), Some(Tok::Num { value: m, .. }))
                if (1..=59).contains(m) && matches!(prev_word, Some("las" | "la")) =>
            {
                return Some((value, *m, false));
            }
            (Some("menos"), Some(Tok::Num { value: m, .. }))
                if (1..=30).contains(m) && matches!(prev_word, Some("las" | "la")) =>
            {
                return Some((previous_hour(value), 60 - m, false));
            }
            _ => {}
        }
    }
    // "two thirty", "2 30", "four fifteen", "two oh five"
    let (minute_tok, after_minute) = if next_word == Some("oh") {
        (toks.get(i + 2).filter(|t| t.num().is_some_and(|m| m < 10)), i + 3)
    } else {
        (next, i + 2)
    };
    // Not after a day ("january ninth twenty twenty six" is a year, not 20:26).
    let after_day = matches!(prev, Some(Tok::Ord(_))) || prev_word.is_some_and(|p| month_of(p).is_some());
    if value <= 23
        && !after_day
        && let Some(Tok::Num { value: m, digits }) = minute_tok
        && *m <= 59
        && (*m >= 10 || *digits == 2 || next_word == Some("oh"))
        && !matches!(toks.get(after_minute), Some(Tok::Num { .. }))
        && !toks.get(after_minute).and_then(Tok::word).is_some_and(|w| NOT_TIME_AFTER.contains(&w))
    {
        return Some((value, *m, value > 12));
    }
    // "3 pm", "3 o'clock", "3 in the afternoon", "las 4 de la tarde"
    // The part may follow a few connecting words: "in the", "de la", "this".
    let followed_by_part = (i + 1..=i + 3).any(|k| {
        part_at(toks, k).is_some()
            && toks[i + 1..k].iter().all(|t| {
                matches!(t.word(), Some("in" | "the" | "at" | "this" | "de" | "la" | "en" | "por" | "esta" | "del"))
            })
    });
    let meridiem_next = matches!(next_word, Some("am" | "pm" | "oclock" | "noon" | "tonight" | "hrs"));
    if value <= 23 && (meridiem_next || followed_by_part || part_at(toks, i + 1).is_some()) {
        return Some((value, 0, value > 12));
    }
    // "230 pm", "1030am"
    if matches!(next_word, Some("am" | "pm"))
        && let Tok::Num { digits: 3..=4, .. } = tok
    {
        let (h, m) = (value / 100, value % 100);
        if (1..=12).contains(&h) && m <= 59 {
            return Some((h, m, false));
        }
    }
    // "at 3", "around 10", "a las tres", "a la una"
    if value <= 23
        && prev_word.is_some_and(|p| TIME_CUES.contains(&p))
        && !matches!(next, Some(Tok::Num { .. } | Tok::Ord(_)))
        && next_word.is_none_or(|n| month_of(n).is_none())
    {
        return Some((value, 0, value > 12 || value == 0));
    }
    None
}

fn previous_hour(hour: u32) -> u32 {
    if hour == 1 { 12 } else { hour - 1 }
}

/// `minutes` past/to the hour named from token `j`: "past four", "to five", "after four",
/// "of five", "till five", "para las cinco".
fn minutes_around_hour(toks: &[Tok], j: usize, minutes: u32) -> Option<(u32, u32, bool)> {
    if !(1..=59).contains(&minutes) {
        return None;
    }
    let relation = word_at(toks, j)?;
    // Spanish "cuarto para las cinco" puts an article before the hour.
    let article = usize::from(relation == "para" && matches!(word_at(toks, j + 1), Some("las" | "la")));
    let hour = toks.get(j + 1 + article).and_then(Tok::num).filter(|h| (1..=12).contains(h))?;
    match relation {
        "past" | "after" => Some((hour, minutes, false)),
        "to" | "till" | "til" | "of" | "before" | "para" => Some((previous_hour(hour), 60 - minutes, false)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn t(h: u32, m: u32) -> Option<SpokenTime> {
        Some(SpokenTime::At(NaiveTime::from_hms_opt(h, m, 0).unwrap()))
    }

    fn part(p: DayPart) -> Option<SpokenTime> {
        Some(SpokenTime::Part(p))
    }

    /// Wednesday 2025-03-05.
    const TODAY: &str = "2025-03-05";

    #[test]
    fn english_dates_resolve_against_today() {
        let today = d(TODAY);
        let cases: &[(&str, Option<&str>)] = &[
            ("today", Some("2025-03-05")),
            ("later today please", Some("2025-03-05")),
            ("tonight", Some("2025-03-05")),
            ("this afternoon", Some("2025-03-05")),
            ("tomorrow", Some("2025-03-06")),
            ("Tomorrow morning", Some("2025-03-06")),
            ("the day after tomorrow", Some("2025-03-07")),
            ("day after tomorrow at 3", Some("2025-03-07")),
            ("thursday", Some("2025-03-06")),
            ("on tuesday", Some("2025-03-11")),
            ("this friday", Some("2025-03-07")),
            ("next tuesday", Some("2025-03-11")),
            ("next friday", Some("2025-03-07")),
            ("wednesday", Some("2025-03-12")),
            ("tuesday next week", Some("2025-03-11")),
            ("friday next week", Some("2025-03-14")),
            ("next week on friday", Some("2025-03-14")),
            ("tuesday after next", Some("2025-03-18")),
            ("next week", Some("2025-03-10")),
            ("sometime next week", Some("2025-03-10")),
            ("in 3 days", Some("2025-03-08")),
            ("in a week", Some("2025-03-12")),
            ("in two weeks", Some("2025-03-19")),
            ("the 5th", Some("2025-03-05")),
            ("the fifth", Some("2025-03-05")),
            ("on the 4th", Some("2025-04-04")),
            ("the twenty first", Some("2025-03-21")),
            ("the thirty first", Some("2025-03-31")),
            ("on the 31st of this month", Some("2025-03-31")),
            ("9th", Some("2025-03-09")),
            ("january 9th", Some("2026-01-09")),
            ("Jan 9", Some("2026-01-09")),
            ("Jan. 9th", Some("2026-01-09")),
            ("9th of january", Some("2026-01-09")),
            ("the ninth of january", Some("2026-01-09")),
            ("january ninth", Some("2026-01-09")),
            ("january the ninth", Some("2026-01-09")),
            ("march twentieth", Some("2025-03-20")),
            ("march 5", Some("2025-03-05")),
            ("march 4", Some("2026-03-04")),
            ("april first", Some("2025-04-01")),
            ("may 2nd", Some("2025-05-02")),
            ("december 25 2025", Some("2025-12-25")),
            ("january 9, 2027", Some("2027-01-09")),
            ("1/9", Some("2026-01-09")),
            ("3/20", Some("2025-03-20")),
            ("12/1/2025", Some("2025-12-01")),
            ("2025-04-15", Some("2025-04-15")),
            ("february 30th", None),
            ("13/45", None),
            ("", None),
            ("i would like an appointment", None),
            ("the first one", None),
            ("the first available appointment", None),
            ("just a second", None),
            ("may i come in", None),
            ("the fifth may work", Some("2025-03-05")),
            ("my first visit", None),
            ("at 3", None),
        ];
        for (text, expected) in cases {
            let expected = expected.map(d);
            assert_eq!(parse_date(text, today, Language::English), expected, "{text:?}");
        }
    }

    #[test]
    fn spanish_dates_resolve_against_today() {
        let today = d(TODAY);
        let cases: &[(&str, Option<&str>)] = &[
            ("hoy", Some("2025-03-05")),
            ("mañana", Some("2025-03-06")),
            ("manana", Some("2025-03-06")),
            ("mañana por la mañana", Some("2025-03-06")),
            ("mañana a las tres", Some("2025-03-06")),
            ("pasado mañana", Some("2025-03-07")),
            ("esta tarde", Some("2025-03-05")),
            ("por la mañana", None),
            ("en la mañana", None),
            ("el martes", Some("2025-03-11")),
            ("el próximo martes", Some("2025-03-11")),
            ("el martes que viene", Some("2025-03-11")),
            ("el viernes de la semana que viene", Some("2025-03-14")),
            ("el miércoles", Some("2025-03-12")),
            ("el sábado", Some("2025-03-08")),
            ("la próxima semana", Some("2025-03-10")),
            ("el cinco", Some("2025-03-05")),
            ("el 5", Some("2025-03-05")),
            ("el día cuatro", Some("2025-04-04")),
            ("el primero", Some("2025-04-01")),
            ("el 5 de enero", Some("2026-01-05")),
            ("cinco de enero", Some("2026-01-05")),
            ("el veintiuno de marzo", Some("2025-03-21")),
            ("el treinta y uno de marzo", Some("2025-03-31")),
            ("el primero de abril", Some("2025-04-01")),
            ("9/1", Some("2026-01-09")),
            ("en tres días", Some("2025-03-08")),
            ("quiero una cita", None),
            ("buenas tardes", None),
        ];
        for (text, expected) in cases {
            let expected = expected.map(d);
            assert_eq!(parse_date(text, today, Language::Spanish), expected, "{text:?}");
        }
    }

    #[test]
    fn weekday_names_on_their_own_day_mean_next_week() {
        // Wednesday: "wednesday" is a week away, "today" is today.
        let today = d(TODAY);
        assert_eq!(parse_date("wednesday", today, Language::English), Some(d("2025-03-12")));
        assert_eq!(parse_date("today", today, Language::English), Some(today));
        // Sunday: "monday" is tomorrow and "next week" is tomorrow too.
        let sunday = d("2025-03-09");
        assert_eq!(parse_date("monday", sunday, Language::English), Some(d("2025-03-10")));
        assert_eq!(parse_date("next week", sunday, Language::English), Some(d("2025-03-10")));
    }

    #[test]
    fn a_day_of_month_that_is_past_rolls_to_a_month_that_has_it() {
        let today = d("2025-01-31");
        assert_eq!(parse_date("the 30th", today, Language::English), Some(d("2025-03-30")));
        assert_eq!(parse_date("the 31st", today, Language::English), Some(d("2025-01-31")));
        let today = d("2025-04-01");
        assert_eq!(parse_date("the 31st", today, Language::English), Some(d("2025-05-31")));
    }

    #[test]
    fn february_29th_waits_for_a_leap_year() {
        let today = d("2025-03-05");
        assert_eq!(parse_date("february 29th", today, Language::English), Some(d("2028-02-29")));
    }

    #[test]
    fn english_times_as_spoken_and_typed() {
        let cases: &[(&str, Option<SpokenTime>)] = &[
            ("2:30 pm", t(14, 30)),
            ("2:30pm", t(14, 30)),
            ("2:30 PM", t(14, 30)),
            ("2:30 p.m.", t(14, 30)),
            ("2 30 p m", t(14, 30)),
            ("two thirty p m", t(14, 30)),
            ("two thirty in the afternoon", t(14, 30)),
            ("two thirty", t(14, 30)),
            ("at 3", t(15, 0)),
            ("at three", t(15, 0)),
            ("three o'clock", t(15, 0)),
            ("three o clock", t(15, 0)),
            ("3pm", t(15, 0)),
            ("3 p m", t(15, 0)),
            ("10am", t(10, 0)),
            ("10 a m", t(10, 0)),
            ("ten a m", t(10, 0)),
            ("at 10", t(10, 0)),
            ("at 9 in the morning", t(9, 0)),
            ("tomorrow morning at 10", t(10, 0)),
            ("at 6 in the evening", t(18, 0)),
            ("at 8 tonight", t(20, 0)),
            ("noon", t(12, 0)),
            ("at noon", t(12, 0)),
            ("12 noon", t(12, 0)),
            ("midnight", t(0, 0)),
            ("half past two", t(14, 30)),
            ("quarter past nine", t(9, 15)),
            ("a quarter to five", t(16, 45)),
            ("quarter of five", t(16, 45)),
            ("ten past four", t(16, 10)),
            ("twenty to five", t(16, 40)),
            ("ten minutes past four", t(16, 10)),
            ("four fifteen", t(16, 15)),
            ("seven forty five", t(7, 45)),
            ("eleven thirty", t(11, 30)),
            ("twelve thirty", t(12, 30)),
            ("two oh five", t(14, 5)),
            ("2:05", t(14, 5)),
            ("at 1", t(13, 0)),
            ("at 6", t(18, 0)),
            ("at 7", t(7, 0)),
            ("at 12", t(12, 0)),
            ("14:00", t(14, 0)),
            ("06:00", t(6, 0)),
            ("08:30", t(8, 30)),
            ("at 15", t(15, 0)),
            ("around 3ish", t(15, 0)),
            ("after 4", t(16, 0)),
            ("230pm", t(14, 30)),
            ("1030 am", t(10, 30)),
            ("next tuesday at two thirty", t(14, 30)),
            ("january 9th at 11", t(11, 0)),
            ("on the 5th at 3", t(15, 0)),
            ("morning", part(DayPart::Morning)),
            ("in the morning", part(DayPart::Morning)),
            ("mornings are better", part(DayPart::Morning)),
            ("tomorrow afternoon", part(DayPart::Afternoon)),
            ("afternoon", part(DayPart::Afternoon)),
            ("in the evening", part(DayPart::Evening)),
            ("tonight", part(DayPart::Evening)),
            ("before noon", part(DayPart::Morning)),
            ("after lunch", part(DayPart::Afternoon)),
            ("at 11 before noon", t(11, 0)),
            ("3 this afternoon", t(15, 0)),
            ("8 in the morning", t(8, 0)),
            ("7 tonight", t(19, 0)),
            ("good morning i need an appointment", None),
            ("three", None),
            ("for two people", None),
            ("in 2 hours", None),
            ("five five five one two three four five six seven", None),
            ("call me at 555 123 4567", None),
            ("the 5th", None),
            ("january ninth", None),
            ("1/9", None),
            ("january ninth twenty twenty six", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_time(text, Language::English), *expected, "{text:?}");
        }
    }

    #[test]
    fn spanish_times() {
        let cases: &[(&str, Option<SpokenTime>)] = &[
            ("a las tres", t(15, 0)),
            ("a las tres y media", t(15, 30)),
            ("a las tres y cuarto", t(15, 15)),
            ("a las cinco menos cuarto", t(16, 45)),
            ("a las cuatro y diez", t(16, 10)),
            ("a las diez de la mañana", t(10, 0)),
            ("a las cuatro de la tarde", t(16, 0)),
            ("a las ocho de la noche", t(20, 0)),
            ("a la una", t(13, 0)),
            ("a la una y media", t(13, 30)),
            ("a las doce del mediodía", t(12, 0)),
            ("al mediodía", t(12, 0)),
            ("a las 3", t(15, 0)),
            ("a las 9", t(9, 0)),
            ("mañana a las once", t(11, 0)),
            ("a las dos treinta", t(14, 30)),
            ("por la tarde", part(DayPart::Afternoon)),
            ("en la tarde", part(DayPart::Afternoon)),
            ("por la mañana", part(DayPart::Morning)),
            ("mañana por la mañana", part(DayPart::Morning)),
            ("en la noche", part(DayPart::Evening)),
            ("esta noche", part(DayPart::Evening)),
            ("antes del mediodía", part(DayPart::Morning)),
            ("después de comer", part(DayPart::Afternoon)),
            ("a las once antes del mediodía", t(11, 0)),
            ("cuarto para las cinco", t(16, 45)),
            ("diez para las cinco", t(16, 50)),
            ("mañana", None),
            ("buenas tardes", None),
            ("más tarde", None),
            ("quiero una cita", None),
            ("el cinco", None),
            ("dos personas", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_time(text, Language::Spanish), *expected, "{text:?}");
        }
    }

    #[test]
    fn once_is_eleven_only_in_spanish() {
        assert_eq!(parse_time("a las once", Language::Spanish), t(11, 0));
        assert_eq!(parse_time("at once", Language::English), None);
    }

    #[test]
    fn spelled_numbers_become_digits() {
        let cases = [
            ("two thirty p m", Language::English, "2 30 pm"),
            ("twenty one", Language::English, "21"),
            ("thirty first", Language::English, "31st"),
            ("january ninth", Language::English, "january 9th"),
            ("forty five", Language::English, "45"),
            ("three o'clock", Language::English, "3 oclock"),
            ("treinta y uno", Language::Spanish, "31"),
            ("a la una y media", Language::Spanish, "a la 1 y media"),
            ("veintidós", Language::Spanish, "22"),
            ("2:05 PM", Language::English, "2:05 pm"),
            ("call 555-123-4567", Language::English, "call 555 123 4567"),
            ("it is 05", Language::English, "it is 05"),
        ];
        for (text, lang, expected) in cases {
            assert_eq!(words_to_digits(text, lang), expected, "{text:?}");
        }
    }

    #[test]
    fn normalising_keeps_digit_punctuation_and_drops_the_rest() {
        let cases = [
            ("Mañana, ¿a las 3?", "manana a las 3"),
            ("It's 2:30PM!", "its 2:30 pm"),
            ("Jan 9th.", "jan 9th"),
            ("(555) 123-4567", "555 123-4567"),
            ("+1 555", "+1 555"),
            ("o'clock", "oclock"),
            ("José Núñez", "jose nunez"),
            ("k7m2qx", "k 7 m 2 qx"),
        ];
        for (text, expected) in cases {
            assert_eq!(normalize(text), expected, "{text:?}");
        }
    }

    #[test]
    fn spoken_time_serialises_as_clock_text_or_part_name() {
        let at = SpokenTime::At(NaiveTime::from_hms_opt(14, 30, 0).unwrap());
        assert_eq!(serde_json::to_string(&at).unwrap(), "\"14:30\"");
        let morning = SpokenTime::Part(DayPart::Morning);
        assert_eq!(serde_json::to_string(&morning).unwrap(), "\"morning\"");
        assert_eq!(serde_json::from_str::<SpokenTime>("\"14:30\"").unwrap(), at);
        assert_eq!(serde_json::from_str::<SpokenTime>("\"morning\"").unwrap(), morning);
        assert!(serde_json::from_str::<SpokenTime>("\"teatime\"").is_err());
        assert_eq!(at.time(), NaiveTime::from_hms_opt(14, 30, 0));
        assert_eq!(morning.part(), Some(DayPart::Morning));
    }

    #[test]
    fn odd_input_never_panics() {
        let today = d(TODAY);
        for text in [
            "99999999999999999999",
            "31/31/31",
            "0/0",
            "2025-99-99",
            "::",
            "1:2:3",
            "the 0th",
            "the 99th",
            "at 99",
            "99:99",
            "-",
            "+",
            "½",
            "🙂 at 🙂",
            "at",
            "quarter to",
            "half past",
            "y media",
            "las",
            "9999-01-01",
            "0th of january",
            "january 0",
            "1/2/99999999999",
        ] {
            for lang in [Language::English, Language::Spanish] {
                let _ = parse_date(text, today, lang);
                let _ = parse_time(text, lang);
                let _ = words_to_digits(text, lang);
            }
        }
        assert_eq!(parse_date("the 99th", today, Language::English), None);
        for text in ["tomorrow", "next week", "friday", "in 3 weeks", "the 5th", "march 3rd"] {
            let _ = parse_date(text, NaiveDate::MAX, Language::English);
        }
        assert_eq!(parse_time("at 99", Language::English), None);
    }
}
