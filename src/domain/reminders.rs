//! When an appointment's reminders go out, and the words a caller texts back to them.
//! Pure time rules in the tenant's zone (DST through chrono-tz); sending and the
//! exactly-once bookkeeping belong to `services::reminders`.
//!
//! The rules, decided once here:
//! - The day-before reminder is due at the same wall-clock time on the previous local day
//!   (a caller booked "Sunday at 10" hears about it "Saturday at 10", whatever the clocks
//!   did overnight). The hour-before one is due 60 real minutes before the start.
//! - Nothing is sent between 21:00 and 08:00 local time. A day-before reminder due then
//!   goes out earlier instead, at 20:30 on the evening before its due time: the last
//!   half hour before quiet hours, which leaves sweeps a margin to catch it before 21:00.
//!   An hour-before reminder due in quiet hours is skipped.
//! - A reminder due before the appointment's time was set (booked or moved) is never sent:
//!   the confirmation text covered it.
//! - One missed (the server was down) is sent late while it still makes sense: outside
//!   quiet hours and before it is overtaken, which is the start of the appointment for
//!   the hour-before reminder and the hour-before reminder's due time for the day-before
//!   one (a caller gets one reminder, not two at once).

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::language::Language;
use super::names::named;

named! {
    /// Which reminder: its stored name is also the kind of the text it queues.
    pub enum ReminderKind {
        DayBefore = "reminder_24h",
        HourBefore = "reminder_1h",
    }
}

/// Local hour quiet hours begin (inclusive).
pub const QUIET_FROM_HOUR: u32 = 21;
/// Local hour quiet hours end (exclusive).
pub const QUIET_UNTIL_HOUR: u32 = 8;
/// When a day-before reminder that would fall in quiet hours goes out instead.
pub fn evening_send_time() -> NaiveTime {
    NaiveTime::from_hms_opt(20, 30, 0).unwrap_or(NaiveTime::MIN)
}

/// Whether `at` falls in the tenant's quiet hours (21:00 to 08:00 local time).
pub fn is_quiet(tz: Tz, at: DateTime<Utc>) -> bool {
    let hour = at.with_timezone(&tz).hour();
    !(QUIET_UNTIL_HOUR..QUIET_FROM_HOUR).contains(&hour)
}

/// The instant a local wall-clock time names. A time skipped by a spring-forward change is
/// moved later by the gap (02:30 becomes 03:30); a time that happens twice on a fall-back
/// day is its first occurrence.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    if let Some(at) = tz.from_local_datetime(&local).earliest() {
        return at.with_timezone(&Utc);
    }
    // In a gap: read the time on the clock as it ran before the jump, which lands as far
    // past the gap's end as the time was into it. No zone has gaps near three hours long.
    let offset = tz
        .from_local_datetime(&(local - Duration::hours(3)))
        .earliest()
        .map_or(0, |before| before.offset().fix().local_minus_utc());
    Utc.from_utc_datetime(&(local - Duration::seconds(i64::from(offset))))
}

/// When a reminder of `kind` for an appointment starting at `starts_at` is due, or `None`
/// when that reminder is skipped (an hour-before one in quiet hours).
pub fn due_at(kind: ReminderKind, starts_at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    match kind {
        ReminderKind::HourBefore => {
            let due = starts_at - Duration::hours(1);
            (!is_quiet(tz, due)).then_some(due)
        }
        ReminderKind::DayBefore => {
            let local = starts_at.with_timezone(&tz).naive_local();
            let day_before = local.date().pred_opt()?.and_time(local.time());
            let due = resolve_local(tz, day_before);
            if !is_quiet(tz, due) {
                return Some(due);
            }
            let due_local = due.with_timezone(&tz).naive_local();
            // Quiet from 21:00 to midnight: that same evening; after midnight: the evening
            // before.
            let evening: NaiveDate =
                if due_local.hour() >= QUIET_FROM_HOUR { due_local.date() } else { due_local.date().pred_opt()? };
            Some(resolve_local(tz, evening.and_time(evening_send_time())))
        }
    }
}

/// What to do about one reminder at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send it now.
    Send,
    /// Not yet (before its time, or a late one waiting for quiet hours to end).
    Wait,
    /// Never, for this appointment time.
    Skip(Skipped),
}

/// Why a reminder is never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// An hour-before reminder due in quiet hours.
    QuietHours,
    /// It was due before the appointment's time was set; the confirmation covered it.
    BookedAfter,
    /// Its moment passed while nothing could send it, and it no longer makes sense.
    Overtaken,
}

/// Decides a reminder of `kind` at `now`, for an appointment starting at `starts_at` whose
/// time was set (booked or last moved) at `time_set_at`.
pub fn decide(
    kind: ReminderKind,
    starts_at: DateTime<Utc>,
    time_set_at: DateTime<Utc>,
    tz: Tz,
    now: DateTime<Utc>,
) -> Decision {
    let Some(due) = due_at(kind, starts_at, tz) else { return Decision::Skip(Skipped::QuietHours) };
    if due <= time_set_at {
        return Decision::Skip(Skipped::BookedAfter);
    }
    if now < due {
        return Decision::Wait;
    }
    let overtaken_at = match kind {
        ReminderKind::DayBefore => starts_at - Duration::hours(1),
        ReminderKind::HourBefore => starts_at,
    };
    if now >= overtaken_at {
        return Decision::Skip(Skipped::Overtaken);
    }
    if is_quiet(tz, now) { Decision::Wait } else { Decision::Send }
}

/// How far ahead of an appointment its earliest reminder can be due: a day, plus the
/// evening move of one due in the small hours (at most 11.5 hours), rounded up.
pub const LOOKAHEAD: Duration = Duration::hours(48);

/// A text that acts on the sender's next appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyCommand {
    Cancel,
    Confirm,
    Reschedule,
    /// A number answering the open times offered after RESCHEDULE (1 to 3).
    Choose(u8),
}

/// A command and, for a Spanish word, Spanish. The English words are also what Spanish
/// texts have long told callers to send ("Responda CANCEL"), so they name no language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub command: ReplyCommand,
    pub language: Option<Language>,
}

/// Reads a whole text as a command, ignoring case, accents, punctuation and spaces
/// around it ("Cancelar.", " sí! ", "YES"); anything else is `None`.
pub fn parse_reply(body: &str) -> Option<Reply> {
    let word: String = body
        .chars()
        .flat_map(char::to_lowercase)
        .map(super::language::fold_accent)
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect();
    let (command, language) = match word.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["cancel" | "c"] => (ReplyCommand::Cancel, None),
        ["cancelar"] => (ReplyCommand::Cancel, Some(Language::Spanish)),
        ["confirm" | "yes" | "y"] => (ReplyCommand::Confirm, None),
        ["confirmar" | "si"] => (ReplyCommand::Confirm, Some(Language::Spanish)),
        ["reschedule"] => (ReplyCommand::Reschedule, None),
        ["reprogramar"] => (ReplyCommand::Reschedule, Some(Language::Spanish)),
        ["1"] => (ReplyCommand::Choose(1), None),
        ["2"] => (ReplyCommand::Choose(2), None),
        ["3"] => (ReplyCommand::Choose(3), None),
        _ => return None,
    };
    Some(Reply { command, language })
}

/// The language a reply is written in: Spanish for a Spanish word, else the contact's,
/// else the appointment's, else the business's.
pub fn reply_language(
    word: Option<Language>,
    contact: Option<Language>,
    appointment: Option<Language>,
    tenant: Language,
) -> Language {
    word.or(contact).or(appointment).unwrap_or(tenant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;

    /// An instant from a New York wall-clock time.
    fn ny(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        let local = NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(h, min, 0).unwrap();
        New_York.from_local_datetime(&local).single().unwrap().with_timezone(&Utc)
    }

    fn local(at: DateTime<Utc>) -> NaiveDateTime {
        at.with_timezone(&New_York).naive_local()
    }

    #[test]
    fn quiet_hours_run_from_nine_at_night_to_eight_in_the_morning_local_time() {
        assert!(is_quiet(New_York, ny(2027, 6, 1, 21, 0)));
        assert!(is_quiet(New_York, ny(2027, 6, 1, 7, 59)));
        assert!(!is_quiet(New_York, ny(2027, 6, 1, 8, 0)));
        assert!(!is_quiet(New_York, ny(2027, 6, 1, 20, 59)));
        // 23:00 UTC is 19:00 in New York in June: not quiet there.
        assert!(!is_quiet(New_York, Utc.with_ymd_and_hms(2027, 6, 1, 23, 0, 0).unwrap()));
    }

    #[test]
    fn an_ordinary_appointment_is_reminded_a_day_and_an_hour_before() {
        let starts = ny(2027, 6, 10, 14, 0);
        assert_eq!(due_at(ReminderKind::DayBefore, starts, New_York), Some(ny(2027, 6, 9, 14, 0)));
        assert_eq!(due_at(ReminderKind::HourBefore, starts, New_York), Some(ny(2027, 6, 10, 13, 0)));
    }

    #[test]
    fn a_day_before_reminder_in_the_small_hours_goes_out_the_evening_before() {
        // 07:30 the day before is quiet: the reminder goes out at 20:30 two evenings before.
        let starts = ny(2027, 6, 10, 7, 30);
        assert_eq!(due_at(ReminderKind::DayBefore, starts, New_York), Some(ny(2027, 6, 8, 20, 30)));
        // 21:30 the day before is quiet: the reminder goes out at 20:30 that evening.
        let late = ny(2027, 6, 10, 21, 30);
        assert_eq!(due_at(ReminderKind::DayBefore, late, New_York), Some(ny(2027, 6, 9, 20, 30)));
    }

    #[test]
    fn an_hour_before_reminder_in_quiet_hours_is_skipped() {
        let starts = ny(2027, 6, 10, 8, 30);
        assert_eq!(due_at(ReminderKind::HourBefore, starts, New_York), None);
        assert_eq!(
            decide(ReminderKind::HourBefore, starts, ny(2027, 6, 1, 9, 0), New_York, ny(2027, 6, 10, 7, 30)),
            Decision::Skip(Skipped::QuietHours)
        );
        // 21:15 is one hour after 20:15: allowed.
        assert_eq!(due_at(ReminderKind::HourBefore, ny(2027, 6, 10, 21, 15), New_York), Some(ny(2027, 6, 10, 20, 15)));
    }

    #[test]
    fn the_day_before_reminder_keeps_the_wall_clock_time_across_spring_forward() {
        // Clocks jump from 02:00 to 03:00 on Sunday 14 March 2027: that day has 23 hours.
        let starts = ny(2027, 3, 14, 10, 0);
        let due = due_at(ReminderKind::DayBefore, starts, New_York).unwrap();
        assert_eq!(local(due), NaiveDate::from_ymd_opt(2027, 3, 13).unwrap().and_hms_opt(10, 0, 0).unwrap());
        assert_eq!(starts - due, Duration::hours(23));
        // The hour before is sixty real minutes.
        let hour = due_at(ReminderKind::HourBefore, starts, New_York).unwrap();
        assert_eq!(local(hour).time(), NaiveTime::from_hms_opt(9, 0, 0).unwrap());
    }

    #[test]
    fn the_day_before_reminder_keeps_the_wall_clock_time_across_fall_back() {
        // Clocks go from 02:00 back to 01:00 on Sunday 7 November 2027: that day has 25 hours.
        let starts = ny(2027, 11, 7, 10, 0);
        let due = due_at(ReminderKind::DayBefore, starts, New_York).unwrap();
        assert_eq!(local(due), NaiveDate::from_ymd_opt(2027, 11, 6).unwrap().and_hms_opt(10, 0, 0).unwrap());
        assert_eq!(starts - due, Duration::hours(25));
        // On the fall-back day itself the hour before is read on the new clock: 07:30 for
        // an 08:30 appointment (quiet, skipped), 08:00 for a 09:00 one.
        assert_eq!(due_at(ReminderKind::HourBefore, ny(2027, 11, 7, 8, 30), New_York), None);
        assert!(due_at(ReminderKind::HourBefore, ny(2027, 11, 7, 9, 0), New_York).is_some());
    }

    #[test]
    fn a_wall_clock_time_the_clocks_skip_moves_later_and_a_repeated_one_is_the_first() {
        let skipped = NaiveDate::from_ymd_opt(2027, 3, 14).unwrap().and_hms_opt(2, 30, 0).unwrap();
        assert_eq!(local(resolve_local(New_York, skipped)).time(), NaiveTime::from_hms_opt(3, 30, 0).unwrap());
        let twice = NaiveDate::from_ymd_opt(2027, 11, 7).unwrap().and_hms_opt(1, 30, 0).unwrap();
        // The first 01:30 is still daylight time (UTC-4).
        assert_eq!(resolve_local(New_York, twice), Utc.with_ymd_and_hms(2027, 11, 7, 5, 30, 0).unwrap());
    }

    #[test]
    fn a_reminder_is_sent_once_due_and_waits_before() {
        let starts = ny(2027, 6, 10, 14, 0);
        let booked = ny(2027, 6, 1, 9, 0);
        let decide_at = |now| decide(ReminderKind::DayBefore, starts, booked, New_York, now);
        assert_eq!(decide_at(ny(2027, 6, 9, 13, 59)), Decision::Wait);
        assert_eq!(decide_at(ny(2027, 6, 9, 14, 0)), Decision::Send);
    }

    #[test]
    fn a_reminder_due_before_the_booking_is_never_sent() {
        let starts = ny(2027, 6, 10, 14, 0);
        let booked = ny(2027, 6, 10, 9, 0);
        assert_eq!(
            decide(ReminderKind::DayBefore, starts, booked, New_York, ny(2027, 6, 10, 9, 1)),
            Decision::Skip(Skipped::BookedAfter)
        );
        assert_eq!(decide(ReminderKind::HourBefore, starts, booked, New_York, ny(2027, 6, 10, 9, 1)), Decision::Wait);
    }

    #[test]
    fn a_missed_reminder_is_sent_late_only_while_it_makes_sense() {
        let starts = ny(2027, 6, 10, 14, 0);
        let booked = ny(2027, 6, 1, 9, 0);
        let day = |now| decide(ReminderKind::DayBefore, starts, booked, New_York, now);
        // Due 14:00 the day before; the server came back at 18:00: still worth sending.
        assert_eq!(day(ny(2027, 6, 9, 18, 0)), Decision::Send);
        // At 23:00 it waits for the morning...
        assert_eq!(day(ny(2027, 6, 9, 23, 0)), Decision::Wait);
        // ...and goes out at 08:00.
        assert_eq!(day(ny(2027, 6, 10, 8, 0)), Decision::Send);
        // Once the hour-before reminder is due it has been overtaken.
        assert_eq!(day(ny(2027, 6, 10, 13, 0)), Decision::Skip(Skipped::Overtaken));
        let hour = |now| decide(ReminderKind::HourBefore, starts, booked, New_York, now);
        assert_eq!(hour(ny(2027, 6, 10, 13, 40)), Decision::Send);
        assert_eq!(hour(ny(2027, 6, 10, 14, 0)), Decision::Skip(Skipped::Overtaken));
    }

    #[test]
    fn reply_commands_ignore_case_accents_and_punctuation() {
        let cmd = |body| parse_reply(body).map(|r| (r.command, r.language));
        assert_eq!(cmd("CANCEL"), Some((ReplyCommand::Cancel, None)));
        assert_eq!(cmd(" c. "), Some((ReplyCommand::Cancel, None)));
        assert_eq!(cmd("Cancelar!"), Some((ReplyCommand::Cancel, Some(Language::Spanish))));
        assert_eq!(cmd("yes"), Some((ReplyCommand::Confirm, None)));
        assert_eq!(cmd("Y"), Some((ReplyCommand::Confirm, None)));
        assert_eq!(cmd("Sí"), Some((ReplyCommand::Confirm, Some(Language::Spanish))));
        assert_eq!(cmd("SI"), Some((ReplyCommand::Confirm, Some(Language::Spanish))));
        assert_eq!(cmd("confirmar."), Some((ReplyCommand::Confirm, Some(Language::Spanish))));
        assert_eq!(cmd("Reschedule?"), Some((ReplyCommand::Reschedule, None)));
        assert_eq!(cmd("REPROGRAMAR"), Some((ReplyCommand::Reschedule, Some(Language::Spanish))));
        assert_eq!(cmd(" 2. "), Some((ReplyCommand::Choose(2), None)));
        assert_eq!(cmd("4"), None);
    }

    #[test]
    fn a_command_must_be_the_whole_text() {
        for body in ["", "please cancel", "yes please", "can I cancel?", "confirmed", "see you"] {
            assert_eq!(parse_reply(body), None, "{body}");
        }
    }

    #[test]
    fn a_reply_speaks_the_command_words_language_first() {
        use Language::*;
        assert_eq!(reply_language(Some(Spanish), Some(English), Some(English), English), Spanish);
        assert_eq!(reply_language(None, Some(Spanish), Some(English), English), Spanish);
        assert_eq!(reply_language(None, None, Some(Spanish), English), Spanish);
        assert_eq!(reply_language(None, None, None, English), English);
    }
}
