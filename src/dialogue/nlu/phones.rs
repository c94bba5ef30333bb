//! Phone numbers spoken digit by digit, in pairs or typed, read into E.164 when valid.
//! What makes a number valid is `domain::phone`'s rule, not this reader's.

use crate::dialogue::datetime;
use crate::domain::language::Language;
use crate::domain::phone::PhoneNumber;

/// The digits a spoken or typed word stands for in a phone number.
fn phone_digits(word: &str, lang: Language) -> Option<String> {
    if let Some(rest) = word.strip_prefix('+') {
        return rest.bytes().all(|b| b.is_ascii_digit()).then(|| format!("+{rest}"));
    }
    if word.bytes().any(|b| b.is_ascii_digit()) {
        let digits: String = word.chars().filter(char::is_ascii_digit).collect();
        let only_separators = word.chars().all(|c| c.is_ascii_digit() || "-./".contains(c));
        return only_separators.then_some(digits);
    }
    match word {
        "oh" | "o" => Some("0".into()),
        _ => datetime::cardinal(word, lang).map(|n| n.to_string()),
    }
}

/// The longest run of digits in the utterance if it has 7 to 15 of them:
/// (first word, end word, E.164 or digits). Handles "five five five one two three four
/// five six seven", "555-123-4567", "oh" for zero, "double five", "fifty five",
/// "eight hundred".
pub(super) fn find_phone(words: &[String], lang: Language) -> Option<(usize, usize, String)> {
    let mut best: Option<(usize, usize, String, usize)> = None;
    let mut i = 0;
    while i < words.len() {
        let mut digits = String::new();
        let mut j = i;
        let mut end = i;
        while j < words.len() {
            let w = words[j].as_str();
            let next_digits = words.get(j + 1).and_then(|n| phone_digits(n, lang));
            let next_single = next_digits.as_deref().filter(|d| d.len() == 1);
            if let (Some(times), Some(d)) = (repeat_count(w), next_single) {
                digits.push_str(&d.repeat(times));
                j += 2;
            } else if w == "hundred" && !digits.is_empty() {
                digits.push_str("00");
                j += 1;
            } else if digits.is_empty() && matches!(w, "oh" | "o") {
                // "oh, five five five…" is an interjection, not a leading zero.
                break;
            } else if let Some(d) = phone_digits(w, lang) {
                // "+" only opens a number.
                if d.starts_with('+') && !digits.is_empty() {
                    break;
                }
                // "fifty five" is the two digits 55, not 505.
                let spelled_tens =
                    d.len() == 2 && d.ends_with('0') && !d.starts_with('1') && !w.bytes().any(|b| b.is_ascii_digit());
                match next_single.filter(|u| spelled_tens && *u != "0") {
                    Some(unit) => {
                        digits.push_str(&d[..1]);
                        digits.push_str(unit);
                        j += 2;
                    }
                    None => {
                        digits.push_str(&d);
                        j += 1;
                    }
                }
            } else if matches!(w, "dash" | "hyphen" | "guion" | "um" | "uh") && !digits.is_empty() {
                j += 1;
                continue;
            } else {
                break;
            }
            end = j;
        }
        let count = digits.chars().filter(char::is_ascii_digit).count();
        let longer = best.as_ref().is_none_or(|(.., best_count)| count > *best_count);
        if (7..=15).contains(&count) && longer {
            let value = PhoneNumber::parse(&digits)
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|_| digits.trim_start_matches('+').to_string());
            best = Some((i, end, value, count));
        }
        i = if end > i { end } else { i + 1 };
    }
    best.map(|(start, end, value, _)| (start, end, value))
}

/// "double five" → 2, "triple five" → 3.
fn repeat_count(word: &str) -> Option<usize> {
    match word {
        "double" | "doble" => Some(2),
        "triple" => Some(3),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::dialogue::nlu::read;
    use crate::dialogue::nlu::tests::now;
    use crate::domain::language::Language;

    #[test]
    fn phone_numbers_spoken_or_typed_become_e164() {
        let cases: &[(&str, Option<&str>)] = &[
            ("five five five one two three four five six seven", Some("+15551234567")),
            ("my number is 555-123-4567", Some("+15551234567")),
            ("(555) 123-4567", Some("+15551234567")),
            ("it's 555 123 4567", Some("+15551234567")),
            ("+1 555 123 4567", Some("+15551234567")),
            ("five five five, one two three, four five six seven", Some("+15551234567")),
            ("two oh two five five five oh one nine nine", Some("+12025550199")),
            ("five five five one two three forty five sixty seven", Some("+15551234567")),
            ("double five five one two three four five six seven", Some("+15551234567")),
            ("eight hundred five five five one two one two", Some("+18005551212")),
            ("one five five five one two three four five six seven", Some("+15551234567")),
            ("five five five uh one two three four five six seven", Some("+15551234567")),
            ("call me at five five five one two three four", Some("5551234")),
            ("cinco cinco cinco uno dos tres cuatro cinco seis siete", Some("+15551234567")),
            ("at two thirty", None),
            ("january ninth", None),
            ("one two three", None),
            ("", None),
        ];
        for (text, expected) in cases {
            let lang = if text.starts_with("cinco") { Language::Spanish } else { Language::English };
            let got = read(text, now(), lang).phone;
            assert_eq!(got.as_deref(), *expected, "{text:?}");
        }
    }
}
