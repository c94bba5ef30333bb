//! A tenant's calendar: the grid of slot starts in its time zone, and whether a slot is
//! clear of busy time. Which free slots to offer a caller is decided in `offers`.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::hours::BusinessHours;

/// The earliest a slot may start, counted from now: nobody can drive over in 5 minutes.
pub const MIN_LEAD_MINUTES: i64 = 30;

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

    pub(super) fn is_free(&self, slot: &Slot, busy: &[Busy]) -> bool {
        let buffer = self.buffer();
        // Saturating: a busy interval at the edge of time still blocks what it touches.
        !busy.iter().any(|b| {
            let until = b.ends_at.checked_add_signed(buffer).unwrap_or(DateTime::<Utc>::MAX_UTC);
            let from = b.starts_at.checked_sub_signed(buffer).unwrap_or(DateTime::<Utc>::MIN_UTC);
            slot.starts_at < until && from < slot.ends_at
        })
    }

    /// Free slots on local dates `from..=through`, starting no earlier than the lead time.
    pub(super) fn free_slots(
        &self,
        busy: &[Busy],
        now: DateTime<Utc>,
        from: NaiveDate,
        through: NaiveDate,
    ) -> Vec<Slot> {
        let earliest = earliest_start(now);
        from.iter_days()
            .take_while(|d| *d <= through)
            .flat_map(|d| self.slots_on(d))
            .filter(|s| s.starts_at >= earliest && self.is_free(s, busy))
            .collect()
    }
}

/// The earliest a slot may start when booked at `now`.
pub(super) fn earliest_start(now: DateTime<Utc>) -> DateTime<Utc> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::{Los_Angeles, New_York};
    use chrono_tz::Asia::Kolkata;
    use chrono_tz::Europe::Madrid;

    use crate::domain::scheduling::tests::{at, calendar, date, local, utc, weekdays_9_to_5};
    use crate::domain::scheduling::{Preference, offer};

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
    fn open_hours_are_checked_in_the_tenants_zone() {
        let cal = weekdays_9_to_5(Los_Angeles);
        assert!(cal.is_open_at(utc("2025-06-02T16:00:00Z"))); // 09:00 PDT Monday
        assert!(!cal.is_open_at(utc("2025-06-02T15:59:00Z")));
        assert!(!cal.is_open_at(utc("2025-06-03T00:00:00Z"))); // 17:00 PDT
        assert!(!cal.is_open_at(utc("2025-06-07T18:00:00Z"))); // Saturday
    }
}
