//! Reading one caller utterance into what the dialogue needs: intent, date, time, name,
//! phone number, choice of an offered option, yes/no and a spelled confirmation code.
//! Rules only, for the local dialogue engine and the LLM fallback: no state, no I/O.

use chrono::DateTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::dialogue::datetime::{self, SpokenTime};
use crate::domain::confirmation;
use crate::domain::language::Language;
use crate::domain::phone::PhoneNumber;

/// What the caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    Book,
    Cancel,
    Reschedule,
    Pricing,
    Hours,
    Human,
    Message,
}

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
}

/// `Reading::choice` for "the last one" / "the later one": resolve with [`choice_index`].
pub const LAST_CHOICE: usize = usize::MAX;

/// The 0-based index of a 1-based choice among `offered` options, if it is one of them.
pub fn choice_index(choice: usize, offered: usize) -> Option<usize> {
    if choice == LAST_CHOICE { offered.checked_sub(1) } else { (1..=offered).contains(&choice).then(|| choice - 1) }
}

/// Reads one utterance. `now` is in the tenant's zone: "tomorrow" is the tenant's
/// tomorrow. Never fails: what cannot be read is left `None`.
pub fn read(utterance: &str, now: DateTime<Tz>, lang: Language) -> Reading {
    let words = datetime::tokens(utterance);
    let today = now.date_naive();

    let phone = find_phone(&words, lang);
    let code_span = find_code(&words, lang);
    let code = code_span.as_ref().map(|(_, _, code)| code.clone()).or_else(|| typed_code(utterance));

    // Digits of a phone number or code must not be read as dates or times.
    let mut rest = words.clone();
    for (start, end) in phone.iter().map(|(s, e, _)| (*s, *e)).chain(code_span.iter().map(|(s, e, _)| (*s, *e))) {
        for w in rest.iter_mut().take(end).skip(start) {
            *w = String::new();
        }
    }
    let rest = rest.join(" ");

    // A bare ordinal ("the second") fills both `choice` and `date`: whether it picks an
    // offered option or names a day depends on what the agent just asked.
    let choice = read_choice(&words);
    let date = datetime::parse_date(&rest, today, lang);

    Reading {
        intent: read_intent(&words),
        date,
        time: datetime::parse_time(&rest, lang),
        name: read_intro_name(utterance),
        phone: phone.map(|(_, _, p)| p),
        choice,
        yes_no: read_yes_no(utterance, &words),
        code,
    }
}

// ---------------------------------------------------------------------------------------
// Word sequences
// ---------------------------------------------------------------------------------------

/// Start positions of a space-separated phrase in a word list.
fn positions(words: &[String], phrase: &str) -> Vec<usize> {
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

fn contains(words: &[String], phrase: &str) -> bool {
    !positions(words, phrase).is_empty()
}

/// Words that skip nothing but are said while thinking.
#[rustfmt::skip]
const FILLERS: &[&str] = &[
    "um", "uh", "uhm", "er", "erm", "ah", "oh", "well", "so", "hmm", "mm", "pues", "eh", "este",
    "bueno",
];

// ---------------------------------------------------------------------------------------
// Intents
// ---------------------------------------------------------------------------------------

const CANCEL: &[&str] = &[
    "cancel",
    "cancellation",
    "canceling",
    "cancelling",
    "cancelled",
    "canceled",
    "call off",
    "cancelar",
    "cancela",
    "cancele",
    "cancelacion",
    "anular",
];

const RESCHEDULE: &[&str] = &[
    "reschedule",
    "rescheduling",
    "rebook",
    "move my",
    "move the",
    "move it",
    "move that",
    "change my",
    "change the",
    "change it",
    "different time",
    "different day",
    "another time",
    "another day",
    "push back",
    "push it",
    "cant make it",
    "cannot make it",
    "wont be able to make it",
    "cambiar",
    "cambio de",
    "reprogramar",
    "mover",
    "otro dia",
    "otra hora",
    "no puedo ir",
    "no voy a poder",
];

const MESSAGE: &[&str] = &[
    "message",
    "voicemail",
    "call me back",
    "call back",
    "callback",
    "give me a call",
    "have him call",
    "have her call",
    "have them call",
    "have someone call",
    "get back to me",
    "mensaje",
    "recado",
    "que me llame",
    "que me llamen",
    "devolver la llamada",
    "me devuelva",
    "me devuelvan",
];

const HUMAN: &[&str] = &[
    "human",
    "person",
    "real person",
    "someone",
    "somebody",
    "owner",
    "manager",
    "representative",
    "operator",
    "transfer",
    "receptionist",
    "speak to",
    "speak with",
    "talk to",
    "talk with",
    "agent",
    "persona",
    "humano",
    "alguien",
    "dueno",
    "duena",
    "gerente",
    "encargado",
    "encargada",
    "operador",
    "operadora",
    "representante",
    "hablar con",
    "transferir",
    "comunicar con",
    "pasar con",
    "comuniqueme",
];

const PRICING: &[&str] = &[
    "price",
    "prices",
    "pricing",
    "cost",
    "costs",
    "how much",
    "charge",
    "charges",
    "fee",
    "fees",
    "rates",
    "expensive",
    "afford",
    "insurance",
    "services",
    "service",
    "do you do",
    "do you offer",
    "do you guys do",
    "precio",
    "precios",
    "cuesta",
    "cuestan",
    "cuanto",
    "costo",
    "costos",
    "cobran",
    "cobra",
    "tarifa",
    "tarifas",
    "servicios",
    "ofrecen",
];

/// Phrases that clearly ask for a booking, ranked above hours ("i want to book, are you
/// open saturday?").
const BOOK_STRONG: &[&str] = &[
    "book",
    "booking",
    "schedule",
    "make an appointment",
    "set up an appointment",
    "set up a",
    "new appointment",
    "come in",
    "get in",
    "see the",
    "see a",
    "see dr",
    "see doctor",
    "anything open",
    "something open",
    "reserve",
    "reservation",
    "hacer una cita",
    "sacar una cita",
    "pedir una cita",
    "quiero una cita",
    "necesito una cita",
    "reservar",
    "agendar",
    "apartar",
];

const HOURS: &[&str] = &[
    "hours",
    "open",
    "opened",
    "close",
    "closed",
    "closing",
    "what time do you",
    "location",
    "located",
    "address",
    "where are you",
    "where is",
    "directions",
    "parking",
    "how do i get",
    "horario",
    "horarios",
    "abren",
    "abierto",
    "abiertos",
    "cierran",
    "cerrado",
    "direccion",
    "ubicacion",
    "ubicados",
    "donde",
    "como llego",
];

/// Words that mention a booking without asking for one; ranked last.
const BOOK_WEAK: &[&str] = &[
    "appointment",
    "appt",
    "earliest",
    "soonest",
    "as soon as possible",
    "asap",
    "available",
    "availability",
    "openings",
    "opening",
    "slot",
    "slots",
    "consultation",
    "checkup",
    "cleaning",
    "cita",
    "turno",
    "consulta",
    "disponible",
    "disponibilidad",
];

/// Words that negate a following phrase ("i don't want to cancel").
#[rustfmt::skip]
const NEGATORS: &[&str] = &[
    "dont", "not", "never", "nunca", "doesnt", "didnt", "wont", "cant",
];

/// Whether the phrase at `at` is negated by one of the three words before it.
fn negated(words: &[String], at: usize) -> bool {
    let from = at.saturating_sub(3);
    let window = &words[from..at];
    window.iter().any(|w| NEGATORS.contains(&w.as_str()))
        || window.windows(2).any(|pair| {
            pair[0] == "no" && matches!(pair[1].as_str(), "quiero" | "necesito" | "deseo" | "voy" | "want" | "need")
        })
}

fn says_any(words: &[String], phrases: &[&str]) -> bool {
    phrases.iter().any(|p| positions(words, p).into_iter().any(|at| !negated(words, at)))
}

/// The intent, from keywords in priority order: cancel, reschedule, message, human,
/// pricing, booking (explicit), hours, booking (a mere mention). Earlier intents win
/// because their phrases are more specific ("cancel my appointment" mentions an
/// appointment; "call me back" mentions no person but "have someone call" does).
fn read_intent(words: &[String]) -> Option<Intent> {
    // "in person" is not asking for a person.
    let words: Vec<String> = {
        let mut w = words.to_vec();
        for at in positions(&w, "in person") {
            w[at + 1] = "#".into();
        }
        w
    };
    let ranked: [(Intent, &[&str]); 8] = [
        (Intent::Cancel, CANCEL),
        (Intent::Reschedule, RESCHEDULE),
        (Intent::Message, MESSAGE),
        (Intent::Human, HUMAN),
        (Intent::Pricing, PRICING),
        (Intent::Book, BOOK_STRONG),
        (Intent::Hours, HOURS),
        (Intent::Book, BOOK_WEAK),
    ];
    ranked.into_iter().find(|(_, phrases)| says_any(&words, phrases)).map(|(intent, _)| intent)
}

// ---------------------------------------------------------------------------------------
// Yes / no
// ---------------------------------------------------------------------------------------

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
fn read_yes_no(utterance: &str, words: &[String]) -> Option<bool> {
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

// ---------------------------------------------------------------------------------------
// Choice among offered options
// ---------------------------------------------------------------------------------------

fn choice_word(word: &str) -> Option<usize> {
    let n = match word {
        "first" | "1st" | "primera" | "primero" => 1,
        "second" | "2nd" | "segunda" | "segundo" => 2,
        "third" | "3rd" | "tercera" | "tercero" | "tercer" => 3,
        "fourth" | "4th" | "cuarta" => 4,
        "fifth" | "5th" | "quinta" | "quinto" => 5,
        "last" | "ultima" | "ultimo" | "later" | "latest" => LAST_CHOICE,
        "earlier" | "earliest" => 1,
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
fn read_choice(words: &[String]) -> Option<usize> {
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
    if contains(words, "la mas temprana") || contains(words, "el mas temprano") {
        return Some(1);
    }
    if contains(words, "la mas tarde") || contains(words, "la mas tardia") {
        return Some(LAST_CHOICE);
    }
    None
}

// ---------------------------------------------------------------------------------------
// Phone numbers
// ---------------------------------------------------------------------------------------

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
fn find_phone(words: &[String], lang: Language) -> Option<(usize, usize, String)> {
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

// ---------------------------------------------------------------------------------------
// Confirmation codes
// ---------------------------------------------------------------------------------------

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
fn find_code(words: &[String], lang: Language) -> Option<(usize, usize, String)> {
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
fn typed_code(utterance: &str) -> Option<String> {
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

// ---------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------

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
fn read_intro_name(utterance: &str) -> Option<String> {
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
/// the introductions [`read`] understands, after fillers like "yeah", "um", "sure". The
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

// ---------------------------------------------------------------------------------------
// Language and backchannels
// ---------------------------------------------------------------------------------------

#[rustfmt::skip]
const SPANISH_WORDS: &[&str] = &[
    "hola", "buenos", "buenas", "dias", "tardes", "noches", "quiero", "quisiera", "necesito",
    "cita", "gracias", "por", "favor", "para", "hablar", "espanol", "si", "de", "la", "el", "los",
    "las", "que", "una", "mi", "tengo", "puedo", "como", "esta", "estoy", "hacer", "cuanto",
    "cuesta", "donde", "senor", "senora", "usted", "ustedes", "con", "manana", "hoy", "es", "en",
    "y", "yo", "llamo", "habla", "bueno", "pues", "aqui", "ayuda", "numero", "perdon", "disculpe",
    "oiga", "llamar", "horario", "dos", "del", "cancelar", "cambiar", "precio", "persona",
    "mensaje", "nombre", "se", "le", "lunes", "martes", "miercoles", "jueves", "viernes", "sabado",
    "domingo", "claro", "vale", "tiene", "hay", "muchas",
];

#[rustfmt::skip]
const ENGLISH_WORDS: &[&str] = &[
    "hello", "hi", "hey", "i", "im", "want", "need", "would", "like", "to", "the", "appointment",
    "my", "is", "yes", "yeah", "please", "can", "book", "you", "your", "what", "how", "much", "do",
    "have", "and", "for", "this", "that", "it", "its", "of", "speak", "call", "name", "good",
    "morning", "afternoon", "thanks", "thank", "schedule", "cancel", "open", "hours", "are", "with",
    "english", "tomorrow", "today", "an", "a", "at", "on", "when", "there", "could", "id", "just",
    "get",
];

/// Whether an utterance looks Spanish (to switch to Lina on the first words). Accents,
/// "¿"/"¡" and common Spanish words count for Spanish, common English words against;
/// asking for Spanish ("in spanish please", "¿habla español?") is Spanish.
pub fn looks_spanish(utterance: &str) -> bool {
    let words = datetime::tokens(utterance);
    if contains(&words, "spanish") || contains(&words, "espanol") {
        return true;
    }
    let marks = utterance.chars().filter(|c| "ñáéíóú¿¡".contains(*c)).count();
    let spanish = words.iter().filter(|w| SPANISH_WORDS.contains(&w.as_str())).count() + 2 * marks.min(2);
    let english = words.iter().filter(|w| ENGLISH_WORDS.contains(&w.as_str())).count();
    spanish > english
}

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
    use chrono::{NaiveDate, NaiveTime, TimeZone};
    use chrono_tz::America::New_York;

    use crate::domain::scheduling::DayPart;

    /// Wednesday 2025-03-05, 10:00 in New York.
    fn now() -> DateTime<Tz> {
        New_York.with_ymd_and_hms(2025, 3, 5, 10, 0, 0).unwrap()
    }

    fn en(text: &str) -> Reading {
        read(text, now(), Language::English)
    }

    fn es(text: &str) -> Reading {
        read(text, now(), Language::Spanish)
    }

    fn date(text: &str) -> Option<NaiveDate> {
        Some(NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap())
    }

    fn at(h: u32, m: u32) -> Option<SpokenTime> {
        Some(SpokenTime::At(NaiveTime::from_hms_opt(h, m, 0).unwrap()))
    }

    #[test]
    fn intents_are_read_from_english_phrases() {
        use Intent::*;
        let cases: &[(&str, Option<Intent>)] = &[
            ("i'd like to book an appointment", Some(Book)),
            ("can i schedule a cleaning", Some(Book)),
            ("I want to make an appointment", Some(Book)),
            ("i need to see the dentist", Some(Book)),
            ("can i come in tomorrow", Some(Book)),
            ("do you have anything open on friday", Some(Book)),
            ("set up an appointment for my son", Some(Book)),
            ("i need to cancel my appointment", Some(Cancel)),
            ("cancel it please", Some(Cancel)),
            ("i want to reschedule", Some(Reschedule)),
            ("can i move my appointment to friday", Some(Reschedule)),
            ("i need to change my appointment", Some(Reschedule)),
            ("i can't make it tomorrow", Some(Reschedule)),
            ("i don't want to cancel i want to reschedule", Some(Reschedule)),
            ("how much is a cleaning", Some(Pricing)),
            ("what are your prices", Some(Pricing)),
            ("what does a consultation cost", Some(Pricing)),
            ("what services do you offer", Some(Pricing)),
            ("do you do teeth whitening", Some(Pricing)),
            ("what are your hours", Some(Hours)),
            ("are you open on saturday", Some(Hours)),
            ("what time do you close", Some(Hours)),
            ("where are you located", Some(Hours)),
            ("what's your address", Some(Hours)),
            ("i have an appointment tomorrow what's the address", Some(Hours)),
            ("can i talk to a real person", Some(Human)),
            ("let me speak to the owner", Some(Human)),
            ("transfer me to someone please", Some(Human)),
            ("representative", Some(Human)),
            ("operator", Some(Human)),
            ("i'd like to leave a message", Some(Message)),
            ("can you have someone call me back", Some(Message)),
            ("just ask him to call me back", Some(Message)),
            ("i'd like to come in person", Some(Book)),
            ("are there any openings this week", Some(Book)),
            ("yes", None),
            ("my name is john smith", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(en(text).intent, *expected, "{text:?}");
        }
    }

    #[test]
    fn intents_are_read_from_spanish_phrases() {
        use Intent::*;
        let cases: &[(&str, Option<Intent>)] = &[
            ("quiero hacer una cita", Some(Book)),
            ("necesito una cita para el martes", Some(Book)),
            ("quisiera agendar una consulta", Some(Book)),
            ("quiero cancelar mi cita", Some(Cancel)),
            ("cambiar mi cita", Some(Reschedule)),
            ("no puedo ir el jueves", Some(Reschedule)),
            ("no quiero cancelar quiero cambiar la hora", Some(Reschedule)),
            ("¿cuánto cuesta una limpieza?", Some(Pricing)),
            ("¿qué servicios ofrecen?", Some(Pricing)),
            ("¿cuál es su horario?", Some(Hours)),
            ("¿dónde están ubicados?", Some(Hours)),
            ("quiero hablar con una persona", Some(Human)),
            ("con el dueño por favor", Some(Human)),
            ("quiero dejar un mensaje", Some(Message)),
            ("que me llame por favor", Some(Message)),
            ("sí", None),
        ];
        for (text, expected) in cases {
            assert_eq!(es(text).intent, *expected, "{text:?}");
        }
    }

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

    #[test]
    fn choices_among_offered_options() {
        let cases: &[(&str, Option<usize>)] = &[
            ("the first one", Some(1)),
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
    fn choice_index_resolves_last_and_rejects_out_of_range() {
        assert_eq!(choice_index(1, 3), Some(0));
        assert_eq!(choice_index(3, 3), Some(2));
        assert_eq!(choice_index(LAST_CHOICE, 3), Some(2));
        assert_eq!(choice_index(LAST_CHOICE, 0), None);
        assert_eq!(choice_index(4, 3), None);
        assert_eq!(choice_index(0, 3), None);
    }

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
    fn spanish_is_detected_from_the_first_words() {
        let cases = [
            ("hola buenos días", true),
            ("quiero hacer una cita", true),
            ("sí", true),
            ("mañana", true),
            ("necesito cancelar mi cita", true),
            ("¿habla español?", true),
            ("in spanish please", true),
            ("hello i'd like to book an appointment", false),
            ("hi this is john", false),
            ("yes", false),
            ("okay", false),
            ("", false),
        ];
        for (text, expected) in cases {
            assert_eq!(looks_spanish(text), expected, "{text:?}");
        }
    }

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
