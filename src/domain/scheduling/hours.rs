//! Business hours: which weekdays and one opening window, read from the settings form.
//! How hours are said to a caller belongs to the dialogue, not here.

use chrono::{NaiveTime, Weekday};
use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::scheduling::tests::time;

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
}
