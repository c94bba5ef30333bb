//! How the agent says days, hours, clock times and slots, in English and Spanish. The
//! scheduling rules themselves live in `domain::scheduling`, which holds no words.

use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc};

use crate::domain::language::Language;
use crate::domain::scheduling::{BusinessHours, Calendar, Slot};

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

/// Business hours as the agent says them. A trait so that callers keep writing
/// `hours.describe_in(lang)` while the words stay out of the domain.
pub trait SpokenHours {
    /// The working days in the given language ("Monday to Friday", "lunes a viernes").
    fn days_text_in(&self, lang: Language) -> String;

    /// Days and hours in the given language
    /// ("lunes a viernes, de 9 de la mañana a 5 de la tarde").
    fn describe_in(&self, lang: Language) -> String;

    /// Days and hours in English, e.g. "Monday to Friday, 9 AM to 5 PM".
    fn describe(&self) -> String {
        self.describe_in(Language::English)
    }
}

impl SpokenHours for BusinessHours {
    fn days_text_in(&self, lang: Language) -> String {
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

    fn describe_in(&self, lang: Language) -> String {
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

/// A weekday in the plural, for what happens every week: "Saturdays" / "sábados",
/// "lunes" (Spanish weekdays ending in -s do not change).
pub fn weekday_plural(day: chrono::Weekday, lang: Language) -> String {
    let i = day.num_days_from_monday() as usize;
    match lang {
        Language::English => format!("{}s", EN_DAYS[i]),
        Language::Spanish if ES_DAYS[i].ends_with('s') => ES_DAYS[i].to_string(),
        Language::Spanish => format!("{}s", ES_DAYS[i]),
    }
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
    use chrono::Duration;
    use chrono_tz::America::New_York;

    use crate::domain::scheduling::tests::{at, weekdays_9_to_5};

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
        assert_eq!(
            BusinessHours::parse("mon-fri", "09:00-17:00").unwrap().days_text_in(Language::English),
            "Monday to Friday"
        );
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
