//! The caller's name, from an introduction or a bare answer to "may I have your name?".
//! Words that are merely common or part of a sentence are never taken for a name.

use crate::dialogue::datetime;
use crate::domain::language::Language;

use super::phrases::{FILLERS, positions};

/// Words that are never part of a name.
#[rustfmt::skip]
const NOT_NAME: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "so", "um", "uh", "er", "erm", "ah", "oh", "hmm", "mhm",
    "yes", "yeah", "yep", "no", "nope", "ok", "okay", "hi", "hello", "hey", "please", "thanks",
    "thank", "you", "i", "me", "my", "mine", "we", "us", "our", "your", "he", "she", "they", "them",
    "it", "its", "is", "am", "are", "was", "were", "be", "been", "to", "for", "from", "of", "in",
    "on", "at", "by", "with", "about", "this", "that", "these", "those", "here", "there", "just",
    "well", "like", "calling", "call", "want", "wanna", "need", "would", "could", "can", "will",
    "do", "does", "did", "have", "has", "had", "not", "dont", "sorry", "sure", "right", "good",
    "fine", "great", "also", "again", "name", "number", "phone", "appointment", "book", "cancel",
    "reschedule", "speaking", "what", "why", "who", "how", "when", "where", "which", "really",
    "actually", "still", "only", "very", "much", "more", "today", "tomorrow", "morning",
    "afternoon", "evening", "tonight", "now", "later", "wait", "hold", "know", "think", "guess",
    "maybe", "yet", "one", "last", "first", "full", "hola", "si", "gracias", "por", "favor", "soy",
    "mi", "llamo", "nombre", "es", "de", "del", "la", "el", "los", "las", "y", "o", "que", "un",
    "una", "para", "con", "buenos", "buenas", "dias", "tardes", "noches", "quiero", "necesito",
    "bueno", "pues", "habla", "le", "se", "lo", "claro", "gusto", "mucho", "encantado", "encantada",
    "cita", "senor", "senora", "ok", "alright", "cool", "correct", "spell", "id", "ill", "ive",
    "im", "youre", "thats", "whats", "theres", "lets", "cant", "wont", "didnt", "doesnt", "isnt", "whatever", "anytime", "anything",
    "nothing", "something", "after", "before", "lunch", "next", "month", "week", "day", "days",
    "ahora", "works", "work", "time", "weekend", "soon", "asap", "possible", "never", "mind",
    "nevermind", "none", "nobody", "nada", "luego", "despues", "antes", "manana", "hoy", "oclock",
    "instead", "too", "either", "any", "some", "every", "both", "other", "another", "same",
    "different", "better", "best", "nah", "yup", "sounds", "perfect", "exactly", "fine", "hours",
    "open", "price", "prices", "cost", "message", "person", "someone", "help", "question",
    "speak", "talk", "transfer", "human", "operator", "representative", "hablar", "cancelar",
    "cambiar", "mensaje", "precio", "horario", "ayuda", "tengo", "estoy", "esta", "eso", "ese",
];

/// Words that follow "i'm" / "this is" / "it's" / "soy" without being a name.
#[rustfmt::skip]
const NOT_NAME_AFTER_INTRO: &[&str] = &[
    "new", "available", "free", "busy", "back", "home", "glad", "happy", "ready", "done", "afraid",
    "going", "gonna", "regarding", "concerning", "patient", "customer", "client", "him", "her",
    "all", "late", "early", "tired", "sick", "hurt", "pregnant", "retired", "married", "single",
    "allergic", "over", "out", "off", "up", "down", "confused", "lost", "interested", "looking",
    "trying", "wondering", "hoping", "curious", "currently", "his", "their", "mom", "mother", "dad",
    "father", "wife", "husband", "son", "daughter", "office", "nuevo", "nueva", "paciente",
    "cliente", "yo", "su", "el", "ella", "monday", "tuesday", "wednesday", "thursday", "friday",
    "saturday", "sunday", "january", "february", "march", "april", "june", "july", "august",
    "september", "october", "november", "december", "two", "three", "four", "five", "six", "seven",
    "eight", "nine", "ten", "urgent", "important", "fine", "okay", "ok", "good", "great", "calling",
    "the", "wrong", "right", "sorry", "not", "still", "at", "in", "on", "for", "with", "from",
    "about", "an", "a",
];

/// Titles dropped before a name ("this is dr smith" → "Smith").
#[rustfmt::skip]
const TITLES: &[&str] = &[
    "dr", "doctor", "mr", "mrs", "ms", "miss", "mister", "sr", "sra", "srta", "don", "dona",
];

/// Introductions, and whether they are strict (the word after may well not be a name).
const INTROS: &[(&str, bool)] = &[
    ("my name is", false),
    ("my names", false),
    ("my first name is", false),
    ("my last name is", false),
    ("the name is", false),
    ("name is", false),
    ("you can call me", false),
    ("me llamo", false),
    ("mi nombre es", false),
    ("this is", true),
    ("its gonna be", true),
    ("its", true),
    ("it is", true),
    ("im", true),
    ("i am", true),
    ("soy", true),
    ("le habla", true),
    ("habla", true),
];

/// Words as written, with apostrophes, hyphens and accents kept for the name itself, and
/// the normalised form for matching.
fn raw_words(utterance: &str) -> Vec<(String, String)> {
    utterance
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | '!' | '?' | '¿' | '¡' | ';' | ':' | '"'))
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .map(|w| (w.to_lowercase(), datetime::normalize(w).replace(' ', "")))
        .collect()
}

fn is_name_word(raw: &str, key: &str, strict: bool) -> bool {
    let is_number = datetime::cardinal(key, Language::English).is_some()
        || datetime::cardinal(key, Language::Spanish).is_some()
        || datetime::ordinal(key).is_some();
    raw.chars()
        .all(|c| c.is_alphabetic() || matches!(c, '\'' | '\u{2019}' | '-'))
        && raw.chars().filter(|c| c.is_alphabetic()).count() >= 2
        // "john's wife" is someone else's relative, not a name
        && !raw.ends_with("'s")
        && !raw.ends_with("\u{2019}s")
        && !is_number
        && !NOT_NAME.contains(&key)
        && !(strict
            && (NOT_NAME_AFTER_INTRO.contains(&key) || key.ends_with("ing") || key.ends_with("ly")))
}

fn title_case(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut upper_next = true;
    for c in word.chars() {
        if upper_next {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        upper_next = c == '-' || c == '\'';
    }
    out
}

/// Up to three name words from `from`, stopping at the first word that is not a name.
fn name_from(words: &[(String, String)], from: usize, strict: bool) -> Option<String> {
    let mut i = from;
    while words.get(i).is_some_and(|(_, key)| TITLES.contains(&key.as_str())) {
        i += 1;
    }
    let first = words.get(i)?;
    if !is_name_word(&first.0, &first.1, strict) {
        return None;
    }
    let name: Vec<String> = words[i..]
        .iter()
        .take(3)
        .take_while(|(raw, key)| is_name_word(raw, key, strict) && !TITLES.contains(&key.as_str()))
        .map(|(raw, _)| title_case(raw))
        .collect();
    (!name.is_empty()).then(|| name.join(" "))
}

/// A name from an introduction anywhere in the utterance: "my name is john smith", "this
/// is mary", "it's bob jones", "i'm sarah connor", "me llamo ana", "soy josé". "I'm looking
/// for…", "this is about…", "it's tuesday" are not names.
pub(super) fn read_intro_name(utterance: &str) -> Option<String> {
    let words = raw_words(utterance);
    let keys: Vec<String> = words.iter().map(|(_, key)| key.clone()).collect();
    for (intro, strict) in INTROS {
        for at in positions(&keys, intro) {
            // "call me back" is not "call me bob"
            let after = at + intro.split(' ').count();
            if let Some(name) = name_from(&words, after, *strict) {
                return Some(name);
            }
        }
    }
    None
}

/// The caller's name when the agent has just asked for it: a bare "john smith", or any of
/// the introductions [`super::read`] understands, after fillers like "yeah", "um", "sure". The
/// result is title-cased; filler and common words ("yes", "hi", "um", "i don't know") give
/// `None`, as does a whole sentence. Letters spelled one by one are joined ("s m i t h").
pub fn read_name_answer(utterance: &str) -> Option<String> {
    if let Some(name) = read_intro_name(utterance) {
        return Some(name);
    }
    let words = raw_words(utterance);
    let polite = ["please", "thanks", "thank", "you", "gracias", "por", "favor"];
    let lead = [
        "yes", "yeah", "yep", "sure", "ok", "okay", "um", "uh", "er", "hi", "hello", "hey", "well", "so", "oh", "si",
        "claro", "bueno", "pues", "hola", "ah", "its", "it's",
    ];
    let start = words.iter().position(|(_, k)| !lead.contains(&k.as_str()))?;
    let end = words.iter().rposition(|(_, k)| !polite.contains(&k.as_str()))? + 1;
    if start >= end {
        return None;
    }
    // After "it's" / "i'm" the answer is held to the stricter introduction rules.
    let strict = words[..start].iter().any(|(_, k)| matches!(k.as_str(), "its" | "im"));
    let core = &words[start..end];
    if core.len() >= 2 && core.iter().all(|(raw, _)| raw.chars().count() == 1 && raw.chars().all(char::is_alphabetic)) {
        let spelled: String = core.iter().map(|(raw, _)| raw.as_str()).collect();
        return Some(title_case(&spelled));
    }
    let core: Vec<&(String, String)> = core.iter().filter(|(_, k)| !TITLES.contains(&k.as_str())).collect();
    if core.is_empty() || core.len() > 3 || !core.iter().all(|(raw, key)| is_name_word(raw, key, strict)) {
        return None;
    }
    Some(core.iter().map(|(raw, _)| title_case(raw)).collect::<Vec<_>>().join(" "))
}

/// The letter a word stands for when a name is spelled: a single letter, or its name in
/// English ("em", "ay") or Spanish ("eme", "erre"). Names that are also common words are
/// left out ("you", "are", "why", "see"): a sentence must not read as a spelling.
fn letter(word: &str) -> Option<char> {
    let c = match word {
        w if w.chars().count() == 1 => w.chars().next().filter(char::is_ascii_alphabetic)?,
        "ay" => 'a',
        "bee" | "be" => 'b',
        "cee" | "ce" => 'c',
        "dee" => 'd',
        "ee" => 'e',
        "ef" | "eff" | "efe" => 'f',
        "gee" | "ge" => 'g',
        "aitch" | "hache" => 'h',
        "eye" => 'i',
        "jay" | "jota" => 'j',
        "kay" | "ka" => 'k',
        "ell" | "ele" => 'l',
        "em" | "eme" => 'm',
        "en" | "ene" => 'n',
        "pee" | "pe" => 'p',
        "cue" | "cu" => 'q',
        "ar" | "erre" | "ere" => 'r',
        "ess" | "ese" => 's',
        "tee" | "te" => 't',
        "vee" | "uve" | "ve" => 'v',
        "ex" | "equis" => 'x',
        "wye" | "ye" => 'y',
        "zee" | "zed" | "zeta" => 'z',
        _ => return None,
    };
    Some(c)
}

/// Words that may surround a spelling ("it's spelled j o n", "se escribe m a r i a").
#[rustfmt::skip]
const AROUND_SPELLING: &[&str] = &[
    "its", "it", "is", "spelled", "spelt", "spell", "spelling", "thats", "that", "yes", "yeah",
    "ok", "okay", "sure", "um", "uh", "so", "my", "name", "first", "last", "and", "then",
    "please", "thanks", "thank", "you", "se", "escribe", "deletreo", "mi", "nombre", "apellido",
    "es", "y", "si", "claro", "gracias", "por", "favor", "with", "con", "space", "espacio",
];

/// A name spelled letter by letter, title-cased: "m a r i a" → "Maria", "M-A-R-I-A",
/// "m. a. r. i. a.", "it's spelled j o n", "em ay ar eye ay", "eme a erre i a". Runs of
/// letters separated by other words are separate names ("m a r i a last name l o p e z"
/// → "Maria Lopez"). `None` unless three letters or more were spelled and nothing but
/// words around a spelling was said besides.
pub fn read_spelled_name(utterance: &str) -> Option<String> {
    let words = datetime::tokens(utterance);
    let mut names: Vec<String> = Vec::new();
    let mut run = String::new();
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        let next = words.get(i + 1).map(String::as_str);
        let doubled = match (w, next) {
            ("double", Some("u")) | ("doble", Some("ve" | "u" | "uve")) => Some('w'),
            ("i", Some("griega")) => Some('y'),
            _ => None,
        };
        if let Some(c) = doubled {
            run.push(c);
            i += 2;
            continue;
        }
        // A word of the sentence around the spelling, unless it is spelled among letters.
        let around = AROUND_SPELLING.contains(&w) && (run.is_empty() || w.chars().count() > 1);
        match letter(w).filter(|_| !around) {
            Some(c) => run.push(c),
            None if AROUND_SPELLING.contains(&w) => {
                if run.chars().count() >= 2 {
                    names.push(title_case(&run));
                } else if !run.is_empty() {
                    return None;
                }
                run.clear();
            }
            None => return None,
        }
        i += 1;
    }
    if run.chars().count() >= 2 {
        names.push(title_case(&run));
    } else if !run.is_empty() {
        return None;
    }
    let letters: usize = names.iter().map(|n| n.chars().count()).sum();
    (letters >= 3 && names.len() <= 3).then(|| names.join(" "))
}

/// The name as heard, when it reads as no name at all: the words that could be part of
/// one, up to three, title-cased ("marie a lopez please" → "Marie Lopez"), for the agent to
/// read back and confirm. `None` when no word could be (a yes, a choice, a number).
pub fn read_heard_name(utterance: &str) -> Option<String> {
    let words: Vec<String> = raw_words(utterance)
        .into_iter()
        .filter(|(raw, key)| {
            is_name_word(raw, key, false) && !TITLES.contains(&key.as_str()) && !FILLERS.contains(&key.as_str())
        })
        .take(3)
        .map(|(raw, _)| title_case(&raw))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialogue::nlu::tests::en;

    #[test]
    fn names_from_introductions() {
        let cases: &[(&str, Option<&str>)] = &[
            ("my name is john smith", Some("John Smith")),
            ("hi my name is john and i'd like to book", Some("John")),
            ("My name's Mary-Jane O'Brien", Some("Mary-Jane O'Brien")),
            ("this is mary", Some("Mary")),
            ("yes this is mary jones calling about my appointment", Some("Mary Jones")),
            ("it's bob jones", Some("Bob Jones")),
            ("i'm sarah connor", Some("Sarah Connor")),
            ("I am Sarah", Some("Sarah")),
            ("this is dr smith", Some("Smith")),
            ("me llamo josé garcía", Some("José García")),
            ("mi nombre es ana maría lópez", Some("Ana María López")),
            ("soy carmen", Some("Carmen")),
            ("i'm looking for a dentist", None),
            ("i'm calling to book", None),
            ("im interested in a cleaning", None),
            ("it's tuesday", None),
            ("it's me", None),
            ("this is about my appointment", None),
            ("this is the right number", None),
            ("i'm not sure", None),
            ("i am available tomorrow", None),
            ("soy nuevo", None),
            ("i'm good thanks", None),
            ("i'm john's wife", None),
            ("this is his wife calling", None),
            ("uh yeah it's gonna be mike", Some("Mike")),
            ("can you call me back", None),
            ("i'd like to book", None),
        ];
        for (text, expected) in cases {
            assert_eq!(en(text).name.as_deref(), *expected, "{text:?}");
        }
    }

    #[test]
    fn name_answers_after_the_agent_asked() {
        let cases: &[(&str, Option<&str>)] = &[
            ("john smith", Some("John Smith")),
            ("John", Some("John")),
            ("uh john", Some("John")),
            ("yeah it's mary jones", Some("Mary Jones")),
            ("sure, sarah", Some("Sarah")),
            ("sarah please", Some("Sarah")),
            ("my name is bob", Some("Bob")),
            ("josé", Some("José")),
            ("s m i t h", Some("Smith")),
            ("dr. jones", Some("Jones")),
            ("june carter", Some("June Carter")),
            ("yes", None),
            ("hi", None),
            ("um", None),
            ("i don't know", None),
            ("why", None),
            ("what", None),
            ("i want to book an appointment for tuesday", None),
            ("it's for my son", None),
            ("5551234567", None),
            ("it's urgent", None),
            ("four o'clock works", None),
            ("quarter after ten", None),
            ("whatever works", None),
            ("next month", None),
            ("ahora", None),
            ("after lunch", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(read_name_answer(text).as_deref(), *expected, "{text:?}");
        }
    }

    #[test]
    fn spelled_names_are_joined_and_title_cased() {
        let cases: &[(&str, Option<&str>)] = &[
            ("M-A-R-I-A", Some("Maria")),
            ("m a r i a", Some("Maria")),
            ("m. a. r. i. a.", Some("Maria")),
            ("it's spelled j o n", Some("Jon")),
            ("em ay ar eye ay", Some("Maria")),
            ("eme a erre i a", Some("Maria")),
            ("se escribe j o s e", Some("Jose")),
            ("m a r i a last name l o p e z", Some("Maria Lopez")),
            ("m a r i a l o p e z", Some("Marialopez")),
            ("d o u b l e", Some("Double")),
            ("double u a l t", Some("Walt")),
            ("yes", None),
            ("the second one", None),
            ("are you there", None),
            ("a b", None),
            ("maria lopez", None),
            ("five five five", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(read_spelled_name(text).as_deref(), *expected, "{text:?}");
        }
    }

    #[test]
    fn a_name_as_heard_keeps_only_words_that_could_be_a_name() {
        let cases: &[(&str, Option<&str>)] = &[
            ("marie a lopez please", Some("Marie Lopez")),
            ("uh it's mary uh lopes", Some("Mary Lopes")),
            ("eh marie a lopes", Some("Marie Lopes")),
            ("yes", None),
            ("the second one", None),
            ("five five five", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(read_heard_name(text).as_deref(), *expected, "{text:?}");
        }
    }
}
