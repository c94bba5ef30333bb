//! Yes or no in English and Spanish, told apart from lookalikes ("no parking", "si puedo").
//! What a yes agrees to is the policy's business, not this reader's.

use super::phrases::{FILLERS, positions};

const YES: &[&str] = &[
    "yes",
    "yeah",
    "yea",
    "yep",
    "yup",
    "yes please",
    "sure",
    "correct",
    "thats right",
    "thats correct",
    "that is right",
    "that is correct",
    "sounds good",
    "sounds great",
    "sounds perfect",
    "perfect",
    "please do",
    "ok",
    "okay",
    "okey",
    "alright",
    "all right",
    "absolutely",
    "definitely",
    "certainly",
    "of course",
    "go ahead",
    "that works",
    "that would work",
    "works for me",
    "thats fine",
    "great",
    "affirmative",
    "exactly",
    "uh huh",
    "mhm",
    "no problem",
    "no worries",
    "do it",
    "book it",
    "claro",
    "correcto",
    "exacto",
    "perfecto",
    "esta bien",
    "vale",
    "de acuerdo",
    "por supuesto",
    "eso es",
    "asi es",
    "dale",
    "afirmativo",
    "me parece bien",
    "no hay problema",
];

const NO: &[&str] = &[
    "nope",
    "nah",
    "not really",
    "wrong",
    "incorrect",
    "thats not",
    "that is not",
    "thats wrong",
    "not right",
    "not correct",
    "no thanks",
    "no thank you",
    "no gracias",
    "i dont think so",
    "negative",
    "never mind",
    "nevermind",
    "not that one",
    "that doesnt work",
    "that wont work",
    "doesnt work",
    "no way",
    "eso no",
    "para nada",
    "de ninguna manera",
    "esta mal",
    "tampoco",
    "leave it",
    "dejelo",
    "dejalo",
    "la dejamos",
    "mejor no",
    "none of those",
    "none of them",
    "none of these",
    "neither of those",
    "neither works",
    "ninguna de esas",
    "ninguno de esos",
    "ninguna me sirve",
    "ninguno me sirve",
];

/// Phrases that contain yes/no words but answer neither ("i'm not sure", "no sé").
const NEUTRAL: &[&str] = &[
    "i dont know",
    "dont know",
    "not sure",
    "no idea",
    "no se",
    "no lo se",
    "no estoy seguro",
    "no estoy segura",
    "no rush",
    "no one",
    "no longer",
];

/// Yes or no: the earliest yes/no phrase wins, longer phrases first at the same spot.
/// A bare "no" counts only at the start or end ("no, tuesday" / "tuesday? no"), so "there's
/// no parking" is not a refusal; a bare "si" only at the start, as it also means "if".
pub(super) fn read_yes_no(utterance: &str, words: &[String]) -> Option<bool> {
    let mut blocked = vec![false; words.len()];
    for phrase in NEUTRAL {
        let len = phrase.split(' ').count();
        for at in positions(words, phrase) {
            blocked[at..at + len].iter_mut().for_each(|b| *b = true);
        }
    }
    let start = words.iter().position(|w| !FILLERS.contains(&w.as_str())).unwrap_or(0);
    let mut hits: Vec<(usize, usize, bool)> = Vec::new();
    for (phrases, answer) in [(YES, true), (NO, false)] {
        for phrase in phrases {
            let len = phrase.split(' ').count();
            for at in positions(words, phrase) {
                if !blocked[at..at + len].iter().any(|b| *b) {
                    hits.push((at, len, answer));
                }
            }
        }
    }
    for (at, w) in words.iter().enumerate() {
        if blocked[at] {
            continue;
        }
        match w.as_str() {
            "no" if at == start || at + 1 == words.len() => hits.push((at, 1, false)),
            "si" if at == start && si_means_yes(utterance, words, at) => hits.push((at, 1, true)),
            "right" if words.len() == 1 => hits.push((at, 1, true)),
            _ => {}
        }
    }
    hits.sort_by_key(|(at, len, _)| (*at, std::cmp::Reverse(*len)));
    hits.first().map(|(_, _, answer)| *answer)
}

/// "sí" with its accent is always yes; unaccented "si" is yes alone or before words that
/// only follow a yes ("si claro", "si por favor"), since "si puedo…" means "if I can…".
fn si_means_yes(utterance: &str, words: &[String], at: usize) -> bool {
    if utterance.to_lowercase().split(|c: char| !c.is_alphabetic()).any(|w| w == "sí") {
        return true;
    }
    match words.get(at + 1).map(String::as_str) {
        None => true,
        Some(next) => matches!(
            next,
            "si" | "claro"
                | "por"
                | "gracias"
                | "correcto"
                | "exacto"
                | "perfecto"
                | "senor"
                | "senora"
                | "senorita"
                | "esta"
                | "eso"
                | "okey"
                | "ok"
                | "vale"
                | "bueno"
                | "yes"
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::dialogue::nlu::tests::en;

    #[test]
    fn yes_and_no_are_told_apart_from_lookalikes() {
        let cases: &[(&str, Option<bool>)] = &[
            ("yes", Some(true)),
            ("Yes!", Some(true)),
            ("yeah", Some(true)),
            ("yep that works", Some(true)),
            ("sure", Some(true)),
            ("correct", Some(true)),
            ("that's right", Some(true)),
            ("sounds good", Some(true)),
            ("perfect thank you", Some(true)),
            ("please do", Some(true)),
            ("ok", Some(true)),
            ("uh huh", Some(true)),
            ("right", Some(true)),
            ("right now", None),
            ("no problem", Some(true)),
            ("yes please book it", Some(true)),
            ("no", Some(false)),
            ("No.", Some(false)),
            ("nope", Some(false)),
            ("none of those work for me", Some(false)),
            ("ninguna de esas me sirve", Some(false)),
            ("not really", Some(false)),
            ("wrong", Some(false)),
            ("that's not right", Some(false)),
            ("that's not correct", Some(false)),
            ("no thanks", Some(false)),
            ("no, tuesday is better", Some(false)),
            ("um no", Some(false)),
            ("i don't think so", Some(false)),
            ("i don't know", None),
            ("i'm not sure", None),
            ("no idea", None),
            ("there's no parking there", None),
            ("tuesday at three", None),
            ("", None),
            ("sí", Some(true)),
            ("si claro", Some(true)),
            ("si", Some(true)),
            ("claro que sí", Some(true)),
            ("correcto", Some(true)),
            ("está bien", Some(true)),
            ("no gracias", Some(false)),
            ("no, el martes no", Some(false)),
            ("no sé", None),
            ("si puedo cambiar la cita", None),
        ];
        for (text, expected) in cases {
            assert_eq!(en(text).yes_no, *expected, "{text:?}");
        }
    }
}
