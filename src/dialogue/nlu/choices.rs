//! Which of the offered options the caller picks ("the second one", "la última").
//! Only the position: resolving it against the options is the policy's job.

use crate::dialogue::datetime;
use crate::domain::language::Language;

use super::phrases::{FILLERS, contains};

/// `Reading::choice` for "the last one" / "the later one": resolve with [`choice_index`].
pub const LAST_CHOICE: usize = usize::MAX;

/// The 0-based index of a 1-based choice among `offered` options, if it is one of them.
pub fn choice_index(choice: usize, offered: usize) -> Option<usize> {
    if choice == LAST_CHOICE { offered.checked_sub(1) } else { (1..=offered).contains(&choice).then(|| choice - 1) }
}

fn choice_word(word: &str) -> Option<usize> {
    let n = match word {
        "first" | "1st" | "primera" | "primero" => 1,
        "second" | "2nd" | "segunda" | "segundo" => 2,
        "third" | "3rd" | "tercera" | "tercero" | "tercer" => 3,
        "fourth" | "4th" | "cuarta" => 4,
        "fifth" | "5th" | "quinta" | "quinto" => 5,
        "last" | "ultima" | "ultimo" | "later" | "latest" => LAST_CHOICE,
        "earlier" | "earliest" | "soonest" | "sooner" => 1,
        _ => return None,
    };
    Some(n)
}

/// Words that may follow an ordinal naming an option ("the second one", "la primera
/// opción", "the first please"); anything else ("the first time") is something else.
#[rustfmt::skip]
const AFTER_CHOICE: &[&str] = &[
    "one", "option", "choice", "please", "thanks", "thank", "is", "works", "sounds", "then",
    "opcion", "por", "esta", "me", "es", "slot", "would", "will", "de", "que", "pls",
];

/// "the first one", "the second", "number two", "option 3", "the last one", "the earlier
/// one", "la primera", "la segunda opción", "opción dos". "On the second" is a date.
pub(super) fn read_choice(words: &[String]) -> Option<usize> {
    let start = words.iter().position(|w| !FILLERS.contains(&w.as_str())).unwrap_or(0);
    for (i, w) in words.iter().enumerate() {
        if matches!(w.as_str(), "number" | "option" | "choice" | "numero" | "opcion")
            && let Some(next) = words.get(i + 1)
        {
            let n = next
                .parse::<usize>()
                .ok()
                .or_else(|| datetime::cardinal(next, Language::Spanish).map(|n| n as usize))
                .or_else(|| datetime::cardinal(next, Language::English).map(|n| n as usize));
            if let Some(n) = n.filter(|n| (1..=9).contains(n)) {
                return Some(n);
            }
        }
        let Some(n) = choice_word(w) else { continue };
        let prev = i.checked_sub(1).and_then(|j| words.get(j)).map(String::as_str);
        let before_prev = i.checked_sub(2).and_then(|j| words.get(j)).map(String::as_str);
        let next = words.get(i + 1).map(String::as_str);
        let articled = matches!(prev, Some("the" | "la" | "el" | "that" | "lo"));
        let date_like = matches!(before_prev, Some("on" | "for" | "by" | "para"))
            || (next == Some("de") && words.get(i + 2).is_some_and(|m| !m.starts_with("la")));
        let mas_temprana = matches!(prev, Some("mas")) && matches!(w.as_str(), "ultima");
        let fits = next.is_none_or(|n| AFTER_CHOICE.contains(&n));
        if (articled || i == start || mas_temprana) && fits && !date_like {
            // "the earlier one" needs "one" or the article; "earlier" alone asks for more.
            if matches!(w.as_str(), "earlier" | "later") && !articled {
                continue;
            }
            return Some(n);
        }
    }
    let soonest = ["la mas temprana", "el mas temprano", "soonest"];
    if soonest.iter().any(|p| contains(words, p)) {
        return Some(1);
    }
    if contains(words, "la mas tarde") || contains(words, "la mas tardia") {
        return Some(LAST_CHOICE);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialogue::nlu::tests::en;

    #[test]
    fn choices_among_offered_options() {
        let cases: &[(&str, Option<usize>)] = &[
            ("the first one", Some(1)),
            ("whatever's soonest", Some(1)),
            ("first one please", Some(1)),
            ("the first", Some(1)),
            ("yes the second one", Some(2)),
            ("the second", Some(2)),
            ("um the third one", Some(3)),
            ("number two", Some(2)),
            ("option 3", Some(3)),
            ("option three please", Some(3)),
            ("the last one", Some(LAST_CHOICE)),
            ("i'll take the last one", Some(LAST_CHOICE)),
            ("the earlier one", Some(1)),
            ("the later one", Some(LAST_CHOICE)),
            ("the 2nd one", Some(2)),
            ("on the second", None),
            ("this is my first time", None),
            ("the first available appointment", None),
            ("do you have anything earlier", None),
            ("just a second", None),
            ("la primera", Some(1)),
            ("la segunda por favor", Some(2)),
            ("la tercera opción", Some(3)),
            ("la última", Some(LAST_CHOICE)),
            ("opción dos", Some(2)),
            ("el primero de abril", None),
        ];
        for (text, expected) in cases {
            assert_eq!(en(text).choice, *expected, "{text:?}");
        }
    }

    #[test]
    fn choice_index_resolves_last_and_rejects_out_of_range() {
        assert_eq!(choice_index(1, 3), Some(0));
        assert_eq!(choice_index(3, 3), Some(2));
        assert_eq!(choice_index(LAST_CHOICE, 3), Some(2));
        assert_eq!(choice_index(LAST_CHOICE, 0), None);
        assert_eq!(choice_index(4, 3), None);
        assert_eq!(choice_index(0, 3), None);
    }
}
