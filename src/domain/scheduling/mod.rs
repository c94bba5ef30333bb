//! Appointment availability: business hours, the slot grid in the tenant's time zone, and
//! which free slots to offer a caller. Pure: existing appointments come in as data and
//! nothing is stored here; the database constraint remains the final word on overlaps.
//! No words either: how hours and slots are said lives in `dialogue::phrasing`.
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

mod calendar;
mod day_parts;
mod hours;
mod offers;

pub use calendar::{Busy, Calendar, MIN_LEAD_MINUTES, Slot};
pub use day_parts::DayPart;
pub use hours::{BusinessHours, ScheduleError};
pub use offers::{
    LOOKAHEAD_DAYS, MAX_ADVANCE_DAYS, MAX_OFFERS_PER_DAY, Preference, SPREAD_MINUTES, is_bookable, offer,
};

/// Calendars, times and slots for the tests of every scheduling module and of the
/// dialogue's phrasing of them.
#[cfg(test)]
pub(crate) mod tests {
    use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
    use chrono_tz::Tz;

    use super::{BusinessHours, Busy, Calendar, Slot};

    pub(crate) fn calendar(tz: Tz, days: &str, hours: &str, slot: u32, buffer: u32) -> Calendar {
        Calendar { tz, hours: BusinessHours::parse(days, hours).unwrap(), slot_minutes: slot, buffer_minutes: buffer }
    }

    pub(crate) fn weekdays_9_to_5(tz: Tz) -> Calendar {
        calendar(tz, "mon-fri", "09:00-17:00", 30, 0)
    }

    pub(crate) fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    /// A wall-clock time in the calendar's zone, as UTC (test inputs are never ambiguous).
    pub(crate) fn at(cal: &Calendar, text: &str) -> DateTime<Utc> {
        let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
        cal.tz.from_local_datetime(&naive).single().unwrap().with_timezone(&Utc)
    }

    /// Slots rendered as local "Mon 03-10 09:00" for readable assertions.
    pub(crate) fn local(cal: &Calendar, slots: &[Slot]) -> Vec<String> {
        slots.iter().map(|s| cal.local(s.starts_at).format("%a %m-%d %H:%M").to_string()).collect()
    }

    pub(crate) fn busy(cal: &Calendar, from: &str, to: &str) -> Busy {
        Busy { starts_at: at(cal, from), ends_at: at(cal, to) }
    }

    pub(crate) fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    pub(crate) fn time(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }
}
