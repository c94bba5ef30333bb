//! What the caller wants to do, from keywords in priority order with negation ("i don't
//! want to cancel"). No dates, names or numbers: those have their own readers.

use serde::{Deserialize, Serialize};

use super::phrases::positions;

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
    /// "When is my appointment?": find the caller's next appointment and read it back.
    Lookup,
}

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

const LOOKUP: &[&str] = &[
    "when is my",
    "when was my",
    "what time is my",
    "what day is my",
    "whats my confirmation",
    "what is my confirmation",
    "whats my code",
    "what is my code",
    "my confirmation code",
    "forgot my code",
    "lost my code",
    "still on",
    "still scheduled",
    "still booked",
    "do i have an appointment",
    "do i have anything",
    "when is it",
    "what time is it at",
    "what day is it",
    "appointment coming up",
    "already have an appointment",
    "i have an appointment when",
    "when am i coming in",
    "when am i booked",
    "when am i scheduled",
    "when do i come in",
    "am i booked",
    "am i scheduled",
    "am i still",
    "did i book",
    "when was i booked",
    "remind me when",
    "check my appointment",
    "confirm my appointment",
    "cuando es mi",
    "cuando tengo",
    "a que hora es mi",
    "que dia es mi",
    "cual es mi codigo",
    "mi codigo de confirmacion",
    "sigue en pie",
    "sigue mi cita",
    "tengo cita",
    "ya tengo una cita",
    "a que hora tengo",
    "cuando me toca",
    "para cuando es",
    "confirmar mi cita",
    "revisar mi cita",
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

/// The intent, from keywords in priority order: cancel, reschedule, lookup, message, human,
/// pricing, booking (explicit), hours, booking (a mere mention). Earlier intents win
/// because their phrases are more specific ("cancel my appointment" mentions an
/// appointment; "call me back" mentions no person but "have someone call" does).
pub(super) fn read_intent(words: &[String]) -> Option<Intent> {
    // "in person" is not asking for a person.
    let words: Vec<String> = {
        let mut w = words.to_vec();
        for at in positions(&w, "in person") {
            w[at + 1] = "#".into();
        }
        w
    };
    let ranked: [(Intent, &[&str]); 9] = [
        (Intent::Cancel, CANCEL),
        (Intent::Reschedule, RESCHEDULE),
        (Intent::Lookup, LOOKUP),
        (Intent::Message, MESSAGE),
        (Intent::Human, HUMAN),
        (Intent::Pricing, PRICING),
        (Intent::Book, BOOK_STRONG),
        (Intent::Hours, HOURS),
        (Intent::Book, BOOK_WEAK),
    ];
    ranked.into_iter().find(|(_, phrases)| says_any(&words, phrases)).map(|(intent, _)| intent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialogue::nlu::tests::{en, es};

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
            ("when is my appointment", Some(Lookup)),
            ("what's my confirmation code", Some(Lookup)),
            ("is my appointment still on", Some(Lookup)),
            ("hi what time is my appointment tomorrow", Some(Lookup)),
            ("i think i have an appointment coming up, when is it", Some(Lookup)),
            ("am i booked for next week", Some(Lookup)),
            ("i already have an appointment but i need to move it", Some(Reschedule)),
            ("when is my appointment i need to cancel it", Some(Cancel)),
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
            ("¿cuándo es mi cita?", Some(Lookup)),
            ("ya tengo una cita, ¿a qué hora tengo que ir?", Some(Lookup)),
            ("¿cuál es mi código de confirmación?", Some(Lookup)),
            ("¿mi cita sigue en pie?", Some(Lookup)),
            ("sí", None),
        ];
        for (text, expected) in cases {
            assert_eq!(es(text).intent, *expected, "{text:?}");
        }
    }
}
