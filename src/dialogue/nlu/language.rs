//! Whether a caller speaks Spanish, from the first words, so the call can switch voice.
//! It only reads: whether the owner offers Spanish is the call's decision.

use crate::dialogue::datetime;

use super::phrases::contains;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
