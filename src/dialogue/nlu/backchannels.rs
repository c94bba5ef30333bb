//! Backchannels ("mhm", "yeah", "got it") and noise: what a listener says that must not
//! interrupt the agent.

use crate::dialogue::datetime;

use super::phrases::positions;

/// Sounds a listener makes while the other person talks.
#[rustfmt::skip]
const BACKCHANNEL: &[&str] = &[
    "mhm", "mm", "mmm", "hmm", "hm", "uh", "huh", "um", "uhm", "ah", "oh", "yeah", "yes", "yep",
    "yup", "ok", "okay", "okey", "right", "sure", "alright", "aha", "aja", "cool", "gotcha", "si",
    "vale", "claro", "ya", "ujum", "noise", "cough", "coughs", "laughter", "laugh", "breath",
    "breathing", "inaudible", "sil", "unk",
];

/// Whether an utterance is only a backchannel ("mhm", "uh huh", "yeah", "ok", "right",
/// "sure", "got it", "i see"; at most three such words) or empty/noise — which must not
/// interrupt the agent.
pub fn is_backchannel(utterance: &str) -> bool {
    let mut words = datetime::tokens(utterance);
    for (pair, joined) in
        [("got it", "gotcha"), ("i see", "aha"), ("all right", "alright"), ("uh huh", "aha"), ("mm hmm", "mhm")]
    {
        while let Some(at) = positions(&words, pair).first().copied() {
            words.splice(at..at + 2, [joined.to_string()]);
        }
    }
    words.len() <= 3 && words.iter().all(|w| BACKCHANNEL.contains(&w.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backchannels_do_not_count_as_interruptions() {
        let cases = [
            ("mhm", true),
            ("uh huh", true),
            ("yeah", true),
            ("ok", true),
            ("Okay.", true),
            ("right", true),
            ("sure", true),
            ("yeah yeah ok", true),
            ("got it", true),
            ("sí", true),
            ("", true),
            ("[noise]", true),
            ("no", false),
            ("wait", false),
            ("yeah but i need tuesday", false),
            ("stop", false),
            ("uh huh yeah ok sure", false),
            ("actually", false),
        ];
        for (text, expected) in cases {
            assert_eq!(is_backchannel(text), expected, "{text:?}");
        }
    }
}
