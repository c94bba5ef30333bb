//! Which free slots to offer a caller, ranked by what they asked for and spread over the
//! day, and whether a chosen slot can still be booked. Pure: busy time comes in as data.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Timelike, Utc};

use super::calendar::{Busy, Calendar, Slot, earliest_start};
use super::day_parts::DayPart;

/// How many days after the first searched day [`offer`] looks for free slots.
pub const LOOKAHEAD_DAYS: i64 = 30;
/// A preferred date further away than this is ignored (treated as "no date").
pub const MAX_ADVANCE_DAYS: i64 = 366;
/// Offered slots on the same day start at least this far apart.
pub const SPREAD_MINUTES: i64 = 60;
/// Without a preferred date, no more than this many offers fall on the same day.
pub const MAX_OFFERS_PER_DAY: usize = 2;

/// What the caller asked for; every field is optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Preference {
    pub date: Option<NaiveDate>,
    pub time: Option<NaiveTime>,
    pub part: Option<DayPart>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;

    use crate::domain::scheduling::tests::{at, busy, calendar, date, local, time, utc, weekdays_9_to_5};

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
}
