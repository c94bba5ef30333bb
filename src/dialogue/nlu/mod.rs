//! Reading one caller utterance into what the dialogue needs: intent, date, time, name,
//! phone number, choice of an offered option, yes/no and a spelled confirmation code.
//! Rules only, for the local dialogue engine and the LLM fallback: no state, no I/O.

mod backchannels;
mod choices;
mod codes;
mod corrections;
mod farewells;
mod intents;
mod language;
mod names;
mod phones;
mod phrases;
mod yes_no;

use chrono::DateTime;
use chrono_tz::Tz;
use serde::Serialize;

use crate::dialogue::datetime::{self, SpokenTime};
use crate::domain::language::Language;

pub use backchannels::is_backchannel;
pub use choices::{LAST_CHOICE, choice_index};
pub use farewells::is_thanks;
pub use intents::Intent;
pub use language::looks_spanish;
pub use names::{read_heard_name, read_name_answer, read_spelled_name};

use choices::read_choice;
use codes::{find_code, typed_code};
use corrections::parts;
use farewells::says_farewell;
use intents::read_intent;
use names::read_intro_name;
use phones::find_phone;
use yes_no::read_yes_no;

/// Everything read from one utterance; each field is `None` when not said.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reading {
    pub intent: Option<Intent>,
    pub date: Option<chrono::NaiveDate>,
    /// Serialised as `"14:30"` or `"morning"`.
    pub time: Option<SpokenTime>,
    /// Title-cased, from an introduction ("my name is john smith" → "John Smith").
    pub name: Option<String>,
    /// E.164 when the digits form a valid number, the bare digits otherwise.
    pub phone: Option<String>,
    /// 1-based position of an offered option; [`LAST_CHOICE`] for "the last one".
    pub choice: Option<usize>,
    pub yes_no: Option<bool>,
    /// A spelled confirmation code, upper-case ("k seven m two q x" → "K7M2QX").
    pub code: Option<String>,
    /// The caller is leaving: "goodbye", "that's all", "never mind", "olvídelo".
    pub farewell: bool,
}

/// Reads one utterance. `now` is in the tenant's zone: "tomorrow" is the tenant's
/// tomorrow. Never fails: what cannot be read is left `None`. When the caller corrects
/// themselves ("the first one, no wait, the second one"), each field is read from the last
/// part of the utterance that says it.
pub fn read(utterance: &str, now: DateTime<Tz>, lang: Language) -> Reading {
    let words = datetime::tokens(utterance);
    let today = now.date_naive();
    let mut reading = Reading { intent: read_intent(&words), name: read_intro_name(utterance), ..Reading::default() };
    let mut earlier_time = false;
    let ranges = parts(&words);
    if let Some(corrected) = corrected_name(&words, &ranges, reading.name.is_some()) {
        reading.name = Some(corrected);
    }
    for range in ranges {
        let part = read_part(utterance, &words[range], today, lang, earlier_time);
        earlier_time |= part.time.is_some();
        reading.date = part.date.or(reading.date);
        reading.time = part.time.or(reading.time);
        reading.phone = part.phone.or(reading.phone);
        reading.choice = part.choice.or(reading.choice);
        reading.yes_no = part.yes_no.or(reading.yes_no);
        reading.code = part.code.or(reading.code);
    }
    reading.code = reading.code.or_else(|| typed_code(utterance));
    reading.farewell = says_farewell(&words, reading.yes_no);
    if let Some(to) = moved_to(&words, today, lang) {
        reading.date = Some(to);
    }
    reading
}

/// "My name is John Smith, no sorry, Jon Smyth": a name given and then taken back for the
/// short name said after the correction.
fn corrected_name(words: &[String], ranges: &[std::ops::Range<usize>], named: bool) -> Option<String> {
    let last = ranges.last().filter(|_| named && ranges.len() > 1)?;
    let said = &words[last.clone()];
    if said.is_empty() || said.len() > 4 || read_choice(said).is_some() || find_phone(said, Language::English).is_some()
    {
        return None;
    }
    read_name_answer(&said.join(" "))
}

/// "From Tuesday to Thursday", "move my Tuesday one to Thursday", "del martes al jueves":
/// with a day on both sides of "to", the day it goes to.
fn moved_to(words: &[String], today: chrono::NaiveDate, lang: Language) -> Option<chrono::NaiveDate> {
    let linkers: &[&str] = if lang == Language::Spanish { &["a", "al", "para"] } else { &["to", "until", "till"] };
    let at = words.iter().rposition(|w| linkers.contains(&w.as_str()))?;
    let before = datetime::parse_date(&words[..at].join(" "), today, lang)?;
    let after = datetime::parse_date(&words[at + 1..].join(" "), today, lang)?;
    (before != after).then_some(after)
}

/// The fields one part of an utterance says.
fn read_part(
    utterance: &str,
    words: &[String],
    today: chrono::NaiveDate,
    lang: Language,
    earlier_time: bool,
) -> Reading {
    let phone = find_phone(words, lang);
    let code_span = find_code(words, lang);

    // Digits of a phone number or code must not be read as dates or times.
    let mut rest = words.to_vec();
    for (start, end) in phone.iter().map(|(s, e, _)| (*s, *e)).chain(code_span.iter().map(|(s, e, _)| (*s, *e))) {
        for w in rest.iter_mut().take(end).skip(start) {
            *w = String::new();
        }
    }
    let rest = rest.join(" ");

    // A bare ordinal ("the second") fills both `choice` and `date`: whether it picks an
    // offered option or names a day depends on what the agent just asked.
    let choice = read_choice(words);
    let date = datetime::parse_date(&rest, today, lang);
    // "at 2, no, 3": a bare number correcting a time is a time.
    let starts_with_number = rest
        .split_whitespace()
        .next()
        .is_some_and(|w| w.bytes().all(|b| b.is_ascii_digit()) || datetime::cardinal(w, lang).is_some());
    let time = datetime::parse_time(&rest, lang).or_else(|| {
        (earlier_time && starts_with_number)
            .then(|| {
                let at = if lang == Language::Spanish { "a las" } else { "at" };
                datetime::parse_time(&format!("{at} {rest}"), lang)
            })
            .flatten()
    });

    Reading {
        date,
        time,
        phone: phone.map(|(_, _, p)| p),
        choice,
        yes_no: read_yes_no(utterance, words),
        code: code_span.map(|(_, _, code)| code),
        ..Reading::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, NaiveTime, TimeZone};
    use chrono_tz::America::New_York;

    #[test]
    fn a_name_taken_back_in_the_same_breath_is_replaced() {
        let now = New_York.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
        let read_en = |said: &str| read(said, now, Language::English).name;
        assert_eq!(read_en("My name is John Smith, no sorry, Jon Smyth.").as_deref(), Some("Jon Smyth"));
        assert_eq!(read_en("it's ana lopez, actually anna lopes").as_deref(), Some("Anna Lopes"));
        assert_eq!(read_en("my name is john smith, no wait, the second one").as_deref(), Some("John Smith"));
        assert_eq!(read_en("my name is john smith").as_deref(), Some("John Smith"));
    }

    #[test]
    fn a_move_from_one_day_to_another_reads_the_day_it_goes_to() {
        // Monday 2026-11-23.
        let now = New_York.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
        let thursday = NaiveDate::from_ymd_opt(2026, 11, 26);
        for said in ["can you move my thing from tuesday to thursday", "move my tuesday appointment to thursday please"]
        {
            assert_eq!(read(said, now, Language::English).date, thursday, "{said}");
        }
        assert_eq!(read("cámbiela del martes al jueves", now, Language::Spanish).date, thursday);
        let tuesday = NaiveDate::from_ymd_opt(2026, 11, 24);
        assert_eq!(read("i want to come in on tuesday", now, Language::English).date, tuesday, "one day, kept");
    }

    use crate::domain::scheduling::DayPart;

    /// Wednesday 2025-03-05, 10:00 in New York.
    pub(super) fn now() -> DateTime<Tz> {
        New_York.with_ymd_and_hms(2025, 3, 5, 10, 0, 0).unwrap()
    }

    pub(super) fn en(text: &str) -> Reading {
        read(text, now(), Language::English)
    }

    pub(super) fn es(text: &str) -> Reading {
        read(text, now(), Language::Spanish)
    }

    fn date(text: &str) -> Option<NaiveDate> {
        Some(NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap())
    }

    fn at(h: u32, m: u32) -> Option<SpokenTime> {
        Some(SpokenTime::At(NaiveTime::from_hms_opt(h, m, 0).unwrap()))
    }

    #[test]
    fn a_bare_ordinal_reads_as_both_choice_and_date_but_on_the_ordinal_only_as_a_date() {
        let r = en("the second");
        assert_eq!((r.choice, r.date), (Some(2), date("2025-04-02")));
        let r = en("on the second");
        assert_eq!((r.choice, r.date), (None, date("2025-04-02")));
        let r = en("the second one");
        assert_eq!((r.choice, r.date), (Some(2), None));
        let r = en("the fifth");
        assert_eq!((r.choice, r.date), (Some(5), date("2025-03-05")));
        let r = en("march fifth");
        assert_eq!((r.choice, r.date), (None, date("2025-03-05")));
    }

    #[test]
    fn phone_digits_are_not_read_as_dates_or_times() {
        let r = en("my number is five five five one two three four five six seven");
        assert_eq!(r.time, None);
        assert_eq!(r.date, None);
        let r = en("tuesday at two thirty and my number is 555 123 4567");
        assert_eq!(r.time, at(14, 30));
        assert_eq!(r.date, date("2025-03-11"));
        assert_eq!(r.phone.as_deref(), Some("+15551234567"));
    }

    #[test]
    fn dates_and_times_are_read_with_the_tenants_today() {
        let cases: &[(&str, Option<NaiveDate>, Option<SpokenTime>)] = &[
            ("tomorrow at two thirty p m", date("2025-03-06"), at(14, 30)),
            ("next tuesday in the morning", date("2025-03-11"), Some(SpokenTime::Part(DayPart::Morning))),
            ("can i come in friday at 10", date("2025-03-07"), at(10, 0)),
            ("january ninth at three", date("2026-01-09"), at(15, 0)),
            ("the 12th at noon", date("2025-03-12"), at(12, 0)),
            ("how about thursday afternoon", date("2025-03-06"), Some(SpokenTime::Part(DayPart::Afternoon))),
        ];
        for (text, d, t) in cases {
            let r = en(text);
            assert_eq!((r.date, r.time), (*d, *t), "{text:?}");
        }
        let r = es("mañana por la tarde");
        assert_eq!((r.date, r.time), (date("2025-03-06"), Some(SpokenTime::Part(DayPart::Afternoon))));
        let r = es("el martes a las tres y media");
        assert_eq!((r.date, r.time), (date("2025-03-11"), at(15, 30)));
    }

    #[test]
    fn today_is_the_tenants_today_not_utcs() {
        // 22:00 in Los Angeles is already tomorrow in UTC.
        let la = chrono_tz::America::Los_Angeles.with_ymd_and_hms(2025, 3, 5, 22, 0, 0).unwrap();
        assert_eq!(read("tomorrow", la, Language::English).date, date("2025-03-06"));
    }

    #[test]
    fn whole_utterances_read_like_a_telephone_transcript() {
        let r = en("hi my name is john smith i'd like to book an appointment for next tuesday at two thirty p m");
        assert_eq!(r.intent, Some(Intent::Book));
        assert_eq!(r.name.as_deref(), Some("John Smith"));
        assert_eq!(r.date, date("2025-03-11"));
        assert_eq!(r.time, at(14, 30));

        let r = en("yeah the second one works");
        assert_eq!((r.yes_no, r.choice, r.date), (Some(true), Some(2), None));

        let r = en("i need to cancel my appointment my code is k seven m two q x");
        assert_eq!(r.intent, Some(Intent::Cancel));
        assert_eq!(r.code.as_deref(), Some("K7M2QX"));

        let r = es("hola buenos días quiero hacer una cita para mañana a las diez de la mañana");
        assert_eq!(r.intent, Some(Intent::Book));
        assert_eq!(r.date, date("2025-03-06"));
        assert_eq!(r.time, at(10, 0));

        let r = en("no");
        assert_eq!(r, Reading { yes_no: Some(false), ..Reading::default() });
    }

    #[test]
    fn reading_serialises_time_as_text_and_intent_in_snake_case() {
        let r = en("book tomorrow at 2:30 pm");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["intent"], "book");
        assert_eq!(json["date"], "2025-03-06");
        assert_eq!(json["time"], "14:30");
        let r = en("tomorrow morning");
        assert_eq!(serde_json::to_value(&r).unwrap()["time"], "morning");
        assert_eq!(serde_json::to_string(&Intent::Reschedule).unwrap(), "\"reschedule\"");
    }

    #[test]
    fn odd_input_never_panics() {
        for text in [
            "",
            " ",
            "+",
            "++",
            "double",
            "double double",
            "hundred",
            "my name is",
            "this is",
            "the",
            "number",
            "option",
            "🙂🙂🙂",
            "ñ",
            "9999999999999999999999999",
            "a",
            "s m",
            "'",
            "-",
            "it's",
            "im",
            "no no no no",
            "double u",
            "x x x x x x x x",
        ] {
            for lang in [Language::English, Language::Spanish] {
                let _ = read(text, now(), lang);
            }
            let _ = read_name_answer(text);
            let _ = looks_spanish(text);
            let _ = is_backchannel(text);
        }
    }
}
