//! Confirmation codes spelled letter by letter (letter names, NATO words, digits) or typed.
//! What makes a valid code is the domain's rule, not this reader's.

use crate::dialogue::datetime;
use crate::domain::confirmation;
use crate::domain::language::Language;

/// The character a spoken word stands for when spelling: a single letter, a digit, a
/// letter name ("kay", "ex") or a NATO word ("kilo"). Any character counts here, so that
/// a misheard one outside [`confirmation::ALPHABET`] spoils the code rather than cutting
/// it short.
fn spelled_char(word: &str, lang: Language) -> Option<char> {
    let c = match word {
        w if w.len() == 1 => w.chars().next()?.to_ascii_uppercase(),
        "alpha" | "alfa" | "ay" => 'A',
        "bravo" | "bee" | "be" => 'B',
        "charlie" | "see" | "sea" | "cee" | "ce" => 'C',
        "delta" | "dee" | "de" => 'D',
        "echo" => 'E',
        "foxtrot" | "ef" | "eff" | "efe" => 'F',
        "golf" | "gee" | "ge" => 'G',
        "hotel" | "aitch" | "hache" => 'H',
        "juliet" | "juliett" | "jay" | "jota" => 'J',
        "kilo" | "kay" | "ka" => 'K',
        "mike" | "em" | "eme" => 'M',
        "november" | "en" | "ene" => 'N',
        "papa" | "pee" | "pea" | "pe" => 'P',
        "quebec" | "cue" | "queue" | "cu" => 'Q',
        "romeo" | "ar" | "are" | "erre" => 'R',
        "tango" | "tee" | "tea" | "te" => 'T',
        "victor" | "vee" | "uve" => 'V',
        "whiskey" | "whisky" => 'W',
        "xray" | "ex" | "equis" => 'X',
        "yankee" | "why" | "ye" => 'Y',
        "zulu" | "zee" | "zed" | "zeta" => 'Z',
        other => {
            let n = datetime::cardinal(other, lang)?;
            char::from_digit(n, 10)?
        }
    };
    Some(c)
}

/// A run of spelled characters that forms a code ([`confirmation::is_code`]) with at
/// least one letter: (first word, end word, code). "double u" reads as W; "double seven"
/// as 77. A longer run ("k seven m two q x z") is no code.
pub(super) fn find_code(words: &[String], lang: Language) -> Option<(usize, usize, String)> {
    let mut i = 0;
    while i < words.len() {
        let mut code = String::new();
        let mut j = i;
        while j < words.len() && code.len() <= confirmation::LENGTH {
            let w = words[j].as_str();
            let next = words.get(j + 1).map(String::as_str);
            if w == "double" && next == Some("u") {
                code.push('W');
                j += 2;
            } else if w == "double"
                && let Some(c) = next.and_then(|n| spelled_char(n, lang))
            {
                code.push(c);
                code.push(c);
                j += 2;
            } else if w.bytes().all(|b| b.is_ascii_digit()) && !w.is_empty() && w.len() <= confirmation::LENGTH {
                code.push_str(w);
                j += 1;
            } else if let Some(c) = spelled_char(w, lang) {
                code.push(c);
                j += 1;
            } else {
                break;
            }
        }
        if confirmation::is_code(&code) && code.chars().any(|c| c.is_ascii_alphabetic()) {
            return Some((i, j, code));
        }
        i = if j > i { j } else { i + 1 };
    }
    None
}

/// A code typed as one word ("K7M2QX", "k7m2qx"): six characters of the alphabet with a
/// digit, or upper-case as typed.
pub(super) fn typed_code(utterance: &str) -> Option<String> {
    utterance
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric()))
        .find(|w| {
            confirmation::is_code(w)
                && w.chars().any(|c| c.is_ascii_alphabetic())
                && (w.chars().any(|c| c.is_ascii_digit()) || *w == w.to_ascii_uppercase())
        })
        .map(str::to_ascii_uppercase)
}

#[cfg(test)]
mod tests {
    use crate::dialogue::nlu::read;
    use crate::dialogue::nlu::tests::now;
    use crate::domain::language::Language;

    #[test]
    fn confirmation_codes_spelled_or_typed() {
        let cases: &[(&str, Option<&str>)] = &[
            ("k seven m two q x", Some("K7M2QX")),
            ("my code is k 7 m 2 q x", Some("K7M2QX")),
            ("K7M2QX", Some("K7M2QX")),
            ("the code is k7m2qx", Some("K7M2QX")),
            ("kilo seven mike two quebec x-ray", Some("K7M2QX")),
            ("kay seven em two cue ex", Some("K7M2QX")),
            ("a c d e f g", Some("ACDEFG")),
            ("b c d e f g", None),
            ("double u two three four six seven", Some("W23467")),
            ("double a three four six seven", Some("AA3467")),
            ("ka siete eme dos cu equis", Some("K7M2QX")),
            ("two three four five six seven", None),
            ("k seven m two q", None),
            ("k seven m two q x z", None),
            ("i need a b c", None),
            ("banana", None),
            ("hello there", None),
        ];
        for (text, expected) in cases {
            let lang = if text.starts_with("ka ") { Language::Spanish } else { Language::English };
            assert_eq!(read(text, now(), lang).code.as_deref(), *expected, "{text:?}");
        }
    }
}
