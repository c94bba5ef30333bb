//! The caller leaving: "goodbye", "that's all", "never mind", "forget it", "adiós",
//! "olvídelo". Whether to let them go at once or confirm first is the policy's business.

use super::phrases::positions;

/// Phrases that end a call whatever else was said.
const FAREWELLS: &[&str] = &[
    "goodbye",
    "good bye",
    "bye",
    "byebye",
    "never mind",
    "nevermind",
    "forget it",
    "forget about it",
    "thats all",
    "that is all",
    "thatll be all",
    "that will be all",
    "nothing else",
    "im done",
    "i have to go",
    "i gotta go",
    "adios",
    "hasta luego",
    "olvidelo",
    "olvidalo",
    "olvidese",
    "eso es todo",
    "es todo",
    "ya me voy",
];

/// Phrases that end a call unless they answer yes ("yes, that's it" confirms a number).
const WEAK_FAREWELLS: &[&str] = &["thats it", "that is it", "eso seria todo"];

/// Whether the caller is leaving; `yes_no` is what the same utterance answered.
pub(super) fn says_farewell(words: &[String], yes_no: Option<bool>) -> bool {
    let said = |phrases: &[&str]| phrases.iter().any(|p| !positions(words, p).is_empty());
    // "nada más" closes only at the end ("nada más, gracias"), not in "¿nada más temprano?".
    let nada_mas = positions(words, "nada mas")
        .into_iter()
        .any(|at| words.get(at + 2).is_none_or(|next| matches!(next.as_str(), "gracias" | "muchas" | "adios")));
    said(FAREWELLS) || nada_mas || (yes_no != Some(true) && said(WEAK_FAREWELLS))
}

/// Words of plain thanks, said to close a call after its business is done.
#[rustfmt::skip]
const THANKS: &[&str] = &[
    "thanks", "thank", "you", "so", "much", "very", "a", "lot", "ok", "okay", "great", "perfect",
    "cool", "awesome", "wonderful", "gracias", "muchas", "muy", "amable", "perfecto", "vale",
];

/// Whether the utterance is nothing but thanks ("thank you so much", "muchas gracias").
pub fn is_thanks(utterance: &str) -> bool {
    let words = crate::dialogue::datetime::tokens(utterance);
    words.iter().any(|w| matches!(w.as_str(), "thanks" | "thank" | "gracias"))
        && words.iter().all(|w| THANKS.contains(&w.as_str()))
}

#[cfg(test)]
mod tests {
    use crate::dialogue::nlu::tests::{en, es};

    #[test]
    fn farewells_in_both_languages_are_read() {
        for text in [
            "no that's all",
            "goodbye",
            "never mind",
            "bye",
            "that's it",
            "forget it",
            "okay bye",
            "no thanks that's all thank you",
        ] {
            assert!(en(text).farewell, "{text:?}");
        }
        for text in ["no gracias, eso es todo", "adiós", "olvídelo", "hasta luego", "nada más, gracias"] {
            assert!(es(text).farewell, "{text:?}");
        }
    }

    #[test]
    fn answers_that_only_look_like_farewells_are_not() {
        for text in ["yes that's it", "no", "no thanks", "the second one", "that's the one", "it's all right"] {
            assert!(!en(text).farewell, "{text:?}");
        }
        for text in ["no", "sí, eso es", "la segunda", "¿no tiene nada más temprano?"] {
            assert!(!es(text).farewell, "{text:?}");
        }
    }

    #[test]
    fn plain_thanks_is_told_from_thanks_with_more() {
        assert!(super::is_thanks("thank you so much"));
        assert!(super::is_thanks("muchas gracias"));
        assert!(!super::is_thanks("thanks, can i also book a cleaning"));
        assert!(!super::is_thanks("okay"));
    }
}
