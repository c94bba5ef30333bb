//! Finding spoken phrases in the normalised words of an utterance, shared by the readers.
//! Word lists only: no reading of meaning here.

/// Start positions of a space-separated phrase in a word list.
pub(super) fn positions(words: &[String], phrase: &str) -> Vec<usize> {
    let parts: Vec<&str> = phrase.split(' ').collect();
    if parts.is_empty() || words.len() < parts.len() {
        return Vec::new();
    }
    words
        .windows(parts.len())
        .enumerate()
        .filter(|(_, w)| w.iter().zip(&parts).all(|(a, b)| a == b))
        .map(|(i, _)| i)
        .collect()
}

pub(super) fn contains(words: &[String], phrase: &str) -> bool {
    !positions(words, phrase).is_empty()
}

/// Words that skip nothing but are said while thinking.
#[rustfmt::skip]
pub(super) const FILLERS: &[&str] = &[
    "um", "uh", "uhm", "er", "erm", "ah", "oh", "well", "so", "hmm", "mm", "pues", "eh", "este",
    "bueno",
];
