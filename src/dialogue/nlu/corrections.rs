//! Where a caller takes back what they just said ("the first one, no wait, the second
//! one"; "el martes, no, mejor el miércoles"): the utterance is cut at each correction so
//! that the last thing said wins. Only the cutting: reading each part is `read`'s job.

use std::ops::Range;

use super::phrases::positions;

/// Phrases that take back what came before them.
const CORRECTIONS: &[&str] = &[
    "no wait",
    "wait",
    "actually",
    "no sorry",
    "sorry",
    "i mean",
    "make that",
    "or rather",
    "scratch that",
    "let me change that",
    "perdon",
    "mejor",
    "digo",
    "quiero decir",
    "no espere",
    "espere",
    "o sea",
];

/// Words after which a mid-sentence "no" is part of a phrase, not a correction ("no
/// problem", "no thanks", "no puedo").
#[rustfmt::skip]
const NO_PHRASE: &[&str] = &[
    "thanks", "thank", "gracias", "idea", "se", "problem", "worries", "rush", "one", "longer",
    "hay", "puedo", "quiero", "voy", "necesito", "estoy", "tengo", "way", "es", "me", "lo", "le",
    "te", "wait", "sorry", "espere", "more", "mas", "matter",
];

/// The parts of an utterance between corrections, in order; one part when there is none.
/// A bare "no" counts as a correction only mid-sentence ("at 2, no, 3 pm"); at the start
/// or the end it is an answer.
pub(super) fn parts(words: &[String]) -> Vec<Range<usize>> {
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for phrase in CORRECTIONS {
        let len = phrase.split(' ').count();
        cuts.extend(positions(words, phrase).into_iter().map(|at| (at, at + len)));
    }
    for (at, w) in words.iter().enumerate() {
        let mid = at > 0 && at + 1 < words.len();
        if w == "no" && mid && !words.get(at + 1).is_some_and(|n| NO_PHRASE.contains(&n.as_str())) {
            cuts.push((at, at + 1));
        }
    }
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut from = 0;
    for (start, end) in cuts {
        if start < from {
            // Overlapping phrases ("no wait" and "wait"): the longer one already cut here.
            from = from.max(end);
            continue;
        }
        if start > from {
            out.push(from..start);
        }
        from = end;
    }
    if from < words.len() || out.is_empty() {
        out.push(from..words.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, NaiveTime};

    use crate::dialogue::datetime::SpokenTime;
    use crate::dialogue::nlu::tests::{en, es};

    fn at(h: u32) -> Option<SpokenTime> {
        Some(SpokenTime::At(NaiveTime::from_hms_opt(h, 0, 0).unwrap()))
    }

    fn date(d: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(2025, 3, d)
    }

    #[test]
    fn the_last_correction_in_an_utterance_wins() {
        assert_eq!(en("the first one, no wait, the second one").choice, Some(2));
        assert_eq!(en("the first one actually the third one").choice, Some(3));
        assert_eq!(en("tuesday, actually wednesday").date, date(12));
        assert_eq!(en("thursday at 2, no, 3 pm").time, at(15));
        assert_eq!(en("thursday at 2, no, 3 pm").date, date(6));
        assert_eq!(en("at 2, no, 3").time, at(15));
        assert_eq!(
            en("my number is five five five one two three four five six seven no sorry five five five seven six five four three two one")
                .phone
                .as_deref(),
            Some("+15557654321")
        );
        assert_eq!(es("la primera, no, perdón, la segunda").choice, Some(2));
        assert_eq!(es("el martes, no, mejor el jueves").date, date(6));
        assert_eq!(es("a las dos, no, a las tres").time, at(15));
        assert_eq!(en("yes, no wait, that's wrong").yes_no, Some(false));
    }

    #[test]
    fn a_no_that_answers_or_belongs_to_a_phrase_cuts_nothing() {
        assert_eq!(en("no, tuesday is better").yes_no, Some(false));
        assert_eq!(en("no problem the second one").choice, Some(2));
        assert_eq!(en("no problem").yes_no, Some(true));
        assert_eq!(en("tuesday at three no").time, at(15));
        assert_eq!(es("no gracias").yes_no, Some(false));
        assert_eq!(en("there's no parking on tuesday").yes_no, None);
    }
}
