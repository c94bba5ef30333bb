//! The goal-driven caller's mind: reads what the agent just said (English or Spanish, by key
//! words so that reworded prompts still parse) and decides what the persona says next. Pure:
//! no sockets or clocks, so both the text and the audio paths share it.

use crate::domain::language::Language;
pub use crate::sim::scenario::Ask;
use crate::sim::scenario::{Goal, Persona, SlotChoice};

/// What an agent turn reports as done, besides what it asks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Done {
    pub booked: bool,
    pub cancelled: bool,
    pub message_taken: bool,
    pub info: bool,
    pub found: bool,
    /// The caller's appointment is kept as it was (they declined to cancel).
    pub kept: bool,
}

/// Lower case, accents off, punctuation as spaces (but `?` kept), single spaces.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = match c {
            'á' | 'à' | 'â' => 'a',
            'é' | 'è' | 'ê' => 'e',
            'í' | 'ì' => 'i',
            'ó' | 'ò' | 'ô' => 'o',
            'ú' | 'ù' | 'ü' => 'u',
            'ñ' => 'n',
            '’' => '\'',
            '?' => {
                out.push_str(" ? ");
                continue;
            }
            c if c.is_alphanumeric() || c == '\'' || c == ':' => c,
            _ => ' ',
        };
        out.push(c);
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `text` (normalised) has one of `words` starting at a word's start.
fn any(text: &str, words: &[&str]) -> bool {
    let padded = format!(" {text} ");
    words.iter().any(|w| padded.contains(&format!(" {}", w.trim_start())))
}

/// Whether the text names a clock time ("9 AM", "2:30", "de la tarde").
fn names_a_time(text: &str) -> bool {
    text.split_whitespace()
        .any(|w| w == "am" || w == "pm" || (w.contains(':') && w.chars().next().is_some_and(|c| c.is_ascii_digit())))
        || any(text, &["de la manana", "de la tarde", "del mediodia", "a las"])
}

fn digit_count(text: &str) -> usize {
    text.chars().filter(char::is_ascii_digit).count()
}

/// The last question of a turn (what the caller is expected to answer), or the whole turn.
fn last_question(text: &str) -> &str {
    let Some(end) = text.rfind('?') else { return text };
    let head = &text[..end];
    // Back to the end of the previous sentence.
    let start = head.rfind(['.', '!']).map(|i| i + 1).unwrap_or(0);
    // A question mark inside a list ("which one: A, B?") stays with its sentence.
    &text[start..=end]
}

/// What the agent's turn asks.
pub fn classify(agent_text: &str) -> Ask {
    let whole = normalise(agent_text);
    let q = normalise(last_question(agent_text));
    if any(&whole, &["goodbye", "adios", "good bye"]) {
        return Ask::Goodbye;
    }
    if any(&whole, &["connect you", "putting you through", "transfer you", "le comunico", "comunicarle"]) {
        return Ask::Transfer;
    }
    if any(&q, &["spell", "deletre", "letra por letra"]) && !any(&q, &["code", "codigo"]) {
        return Ask::Spell;
    }
    if any(&q, &["confirmation code", "codigo de confirmacion", "codigo"]) && !any(&q, &["code is", "codigo es"]) {
        return Ask::Code;
    }
    if any(&q, &["cancel it", "me to cancel", "want to cancel", "la cancele", "cancelarla", "cancele su cita"]) {
        return Ask::ConfirmCancel;
    }
    let phone_words =
        ["best number", "phone number", "mejor numero", "reach you", "contactarle", "text you at", "number"];
    let asks_if_right = any(&q, &["right", "correct", "correcto", "bien"]);
    // "So that's 5 5 5, 1 1 1, 2 2 2 2. Is that right?": the number is in the sentence before.
    let read_back = digit_count(&whole) >= 7 && asks_if_right && !any(&whole, &["code is", "codigo es"]);
    if (digit_count(&q) >= 7 && (any(&q, &phone_words) || asks_if_right)) || read_back {
        return Ask::PhoneConfirm;
    }
    let offers =
        any(&q, &["which works", "which one", "cual le conviene", "cual prefiere", "which would you", "which time"])
            || (any(&whole, &["i have", "tengo", "openings", "available"]) && names_a_time(&whole) && q.contains('?'));
    if offers && !any(&q, &["book an appointment", "hacer una cita", "anything else", "algo mas"]) {
        return Ask::Offer;
    }
    if any(&q, &["what day", "which day", "que dia", "day and time", "dia y hora", "when would you", "cuando le"]) {
        return Ask::Preference;
    }
    if any(&q, &["your message", "su mensaje", "like to tell", "les quiere decir", "quiere decir", "want to say"]) {
        return Ask::Message;
    }
    if any(&q, &["leave a message", "dejar un mensaje", "call you back", "le devuelvan", "le llame"]) {
        return Ask::LeaveMessage;
    }
    if any(
        &q,
        &["is that right", "is that correct", "es correcto", "esta bien", "did i get", "lo tengo como", "have it as"],
    ) {
        return Ask::NameReadback;
    }
    if any(&q, &["your name", "su nombre", "first and last", "nombre y apellido", "como se llama", "who am i speaking"])
    {
        return Ask::Name;
    }
    if any(&q, &phone_words) || any(&q, &["digit", "digito"]) {
        return Ask::Phone;
    }
    if any(&q, &["book an appointment", "hacer una cita", "schedule", "agendar"]) {
        return Ask::BookOffer;
    }
    if any(&q, &["anything else", "what else", "algo mas", "que mas", "something else"]) {
        return Ask::AnythingElse;
    }
    if any(
        &whole,
        &["didn't quite catch", "didn't catch", "didn't understand", "no le entendi", "still there", "sigue ahi"],
    ) {
        return Ask::NotUnderstood;
    }
    if any(
        &q,
        &["how can i help", "how may i help", "help you today", "en que le puedo", "en que puedo", "le puedo ayudar"],
    ) {
        return Ask::Greeting;
    }
    Ask::Other
}

/// What the agent's turn says has been done.
pub fn done_in(agent_text: &str) -> Done {
    let t = normalise(agent_text);
    Done {
        booked: any(
            &t,
            &["you're all set", "you are all set", "code is", "codigo de confirmacion es", "su cita es", "is booked"],
        ) || (any(&t, &["moved", "rescheduled", "reprogram", "cambiada", "cambie su cita"])
            && !t.contains("let's")),
        cancelled: any(&t, &["is cancelled", "is canceled", "been cancelled", "quedo cancelada", "fue cancelada"]),
        message_taken: any(&t, &["passed your message", "pase su mensaje", "message has been", "got your message"]),
        info: any(
            &t,
            &["we're open", "we are open", "our hours", "horario es", "what we offer", "ofrecemos", "price", "cost"],
        ),
        kept: any(&t, &["keep your appointment", "kept your appointment", "dejo su cita", "mantengo su cita"]),
        found: any(
            &t,
            &[
                "your appointment for",
                "your appointment is",
                "your next appointment",
                "su cita para",
                "su cita es",
                "su proxima cita",
                "found your appointment",
                "encontre su cita",
            ],
        ),
    }
}

/// What the caller does this turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Say { text: String, over_agent: bool },
    Silence,
    HangUp,
}

/// The persona on a call: what was asked so far and what is done.
pub struct Caller {
    persona: Persona,
    language: Language,
    /// The caller's existing appointment's confirmation code, if any.
    code: Option<String>,
    /// Caller turns taken so far.
    pub turns: u32,
    asked: std::collections::HashMap<Ask, usize>,
    pub goal_done: bool,
    silent_done: bool,
    /// The asks seen, in order (for the report).
    pub seen: Vec<Ask>,
}

impl Caller {
    pub fn new(persona: Persona, code: Option<String>) -> Self {
        let language = Language::from_code(&persona.language).unwrap_or(Language::English);
        Self {
            persona,
            language,
            code,
            turns: 0,
            asked: Default::default(),
            goal_done: false,
            silent_done: false,
            seen: Vec::new(),
        }
    }

    /// The language the caller speaks.
    pub fn language(&self) -> Language {
        self.language
    }

    fn es(&self) -> bool {
        self.language == Language::Spanish
    }

    fn pick(&self, en: &str, es: &str) -> String {
        if self.es() { es.to_owned() } else { en.to_owned() }
    }

    /// Whether this turn is said over the agent.
    pub fn interrupts_next(&self) -> bool {
        self.persona.interrupt_at == Some(self.turns + 1)
    }

    /// Reads the agent's turn and decides the caller's reply; `None` when the call is over.
    pub fn respond(&mut self, agent_text: &str) -> Option<Reply> {
        let ask = classify(agent_text);
        self.seen.push(ask);
        let done = done_in(agent_text);
        self.goal_done |= match self.persona.goal {
            Goal::Book => done.booked,
            Goal::Reschedule => done.booked,
            Goal::Cancel => done.cancelled || done.kept,
            Goal::Lookup => done.found,
            Goal::Pricing | Goal::Hours => done.info,
            Goal::Message => done.message_taken,
            Goal::Human => false,
        };
        if ask.ends_call() {
            return None;
        }
        let turn = self.turns + 1;
        if self.persona.hang_up_at == Some(turn) {
            self.turns = turn;
            return Some(Reply::HangUp);
        }
        if self.persona.silent_at == Some(turn) && !self.silent_done {
            // Silent once; the same turn number answers next time.
            self.silent_done = true;
            return Some(Reply::Silence);
        }
        self.turns = turn;
        let over_agent = self.persona.interrupt_at == Some(turn);
        if self.persona.goodbye_at == Some(turn) {
            let text = self.pick("Actually, never mind. Goodbye.", "En realidad, no importa. Adiós.");
            return Some(Reply::Say { text, over_agent });
        }
        let nth = *self.asked.entry(ask).and_modify(|n| *n += 1).or_insert(0);
        let text = match self.persona.answers.get(ask.as_str()) {
            Some(lines) if !lines.is_empty() => lines[nth.min(lines.len() - 1)].clone(),
            _ => self.answer(ask, nth, agent_text),
        };
        Some(Reply::Say { text, over_agent })
    }

    fn opening(&self) -> String {
        if let Some(o) = &self.persona.opening {
            return o.clone();
        }
        let wants = self.persona.wants.as_deref().map(|w| format!(" {w}")).unwrap_or_default();
        let (en, es) = match self.persona.goal {
            Goal::Book => {
                (format!("I'd like to book an appointment{wants}."), format!("Quiero hacer una cita{wants}."))
            }
            Goal::Cancel => ("I need to cancel my appointment.".into(), "Necesito cancelar mi cita.".into()),
            Goal::Reschedule => ("I need to reschedule my appointment.".into(), "Necesito cambiar mi cita.".into()),
            Goal::Lookup => ("When is my appointment?".into(), "¿Cuándo es mi cita?".into()),
            Goal::Pricing => ("How much is a cleaning?".into(), "¿Cuánto cuesta una limpieza?".into()),
            Goal::Hours => ("What are your hours?".into(), "¿Cuál es su horario?".into()),
            Goal::Message => ("I'd like to leave a message.".into(), "Quiero dejar un mensaje.".into()),
            Goal::Human => ("Can I talk to a real person?".into(), "¿Puedo hablar con una persona?".into()),
        };
        if self.es() { es } else { en }
    }

    fn thats_all(&self) -> String {
        self.pick("No, that's all. Thank you!", "No, eso es todo. ¡Gracias!")
    }

    fn spelled_name(&self) -> String {
        self.persona
            .name
            .split_whitespace()
            .map(|w| w.chars().map(|c| c.to_uppercase().to_string()).collect::<Vec<_>>().join("-"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn spoken_number(number: &str) -> String {
        crate::domain::phone::PhoneNumber::parse(number).map(|p| p.spoken()).unwrap_or_else(|_| {
            number.chars().filter(char::is_ascii_digit).map(String::from).collect::<Vec<_>>().join(" ")
        })
    }

    fn answer(&self, ask: Ask, nth: usize, agent_text: &str) -> String {
        let name = self.persona.name.clone();
        match ask {
            Ask::Greeting | Ask::NotUnderstood | Ask::Other => {
                if self.goal_done {
                    self.thats_all()
                } else {
                    self.opening()
                }
            }
            Ask::AnythingElse => {
                if self.goal_done || self.turns > 1 && self.persona.goal == Goal::Lookup {
                    self.thats_all()
                } else {
                    self.opening()
                }
            }
            Ask::BookOffer => {
                if self.persona.goal == Goal::Book && !self.goal_done {
                    self.opening()
                } else {
                    self.pick("No thanks, that's all. Goodbye!", "No, gracias, eso es todo. ¡Adiós!")
                }
            }
            Ask::Name if nth > 0 && self.persona.spell_name => self.spelled_name(),
            Ask::Name => {
                if self.es() {
                    format!("Me llamo {name}.")
                } else {
                    format!("My name is {name}.")
                }
            }
            Ask::Spell => self.spelled_name(),
            Ask::NameReadback => {
                let heard = normalise(agent_text);
                let right = self.persona.name.split_whitespace().all(|w| heard.contains(&normalise(w)));
                match (right, self.persona.spell_name) {
                    (true, _) => self.pick("Yes, that's right.", "Sí, es correcto."),
                    (false, true) => format!("{} {}", self.pick("No, it's", "No, es"), self.spelled_name()),
                    (false, false) => self.pick(&format!("No, it's {name}."), &format!("No, es {name}.")),
                }
            }
            Ask::PhoneConfirm => match &self.persona.callback {
                Some(cb) => {
                    let digits: String = agent_text.chars().filter(char::is_ascii_digit).collect();
                    let last4 = &cb[cb.len().saturating_sub(4)..];
                    if digits.ends_with(last4) || digits.contains(last4) {
                        self.pick("Yes, that's right.", "Sí, es correcto.")
                    } else {
                        let n = Self::spoken_number(cb);
                        self.pick(&format!("No, please use {n}."), &format!("No, mejor al {n}."))
                    }
                }
                None => self.pick("Yes, that's right.", "Sí, es correcto."),
            },
            Ask::Phone => Self::spoken_number(self.persona.callback.as_deref().unwrap_or(&self.persona.number)),
            Ask::Offer => match (self.persona.slot, nth) {
                (SlotChoice::None, 0) => self.pick("None of those work for me.", "Ninguna de esas me sirve."),
                (SlotChoice::Second, _) => self.pick("The second one, please.", "La segunda, por favor."),
                (SlotChoice::Last, _) => self.pick("The last one, please.", "La última, por favor."),
                (SlotChoice::ByTime, _) => {
                    let t = self.persona.slot_time.clone().unwrap_or_default();
                    self.pick(&format!("The one at {t}, please."), &format!("La de las {t}, por favor."))
                }
                _ => self.pick("The first one, please.", "La primera, por favor."),
            },
            Ask::Preference => self
                .persona
                .wants
                .clone()
                .unwrap_or_else(|| self.pick("Any time next week.", "Cualquier día de la próxima semana.")),
            Ask::Message => self.persona.message.clone().unwrap_or_else(|| {
                self.pick("Please call me back about an appointment.", "Por favor llámenme para una cita.")
            }),
            Ask::LeaveMessage => self.pick("Yes, please.", "Sí, por favor."),
            Ask::Code => match &self.code {
                Some(code) => crate::domain::confirmation::spoken(code),
                None => self.pick("I don't have it.", "No lo tengo."),
            },
            Ask::ConfirmCancel => {
                if self.persona.goal == Goal::Cancel {
                    self.pick("Yes, please cancel it.", "Sí, cancélela, por favor.")
                } else {
                    self.pick("No, please keep it.", "No, déjela como está.")
                }
            }
            Ask::Goodbye | Ask::Transfer => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rachels_and_linas_prompts_are_read_as_what_they_ask() {
        let cases = [
            ("Thank you for calling Bright Smile Dental. This is Rachel. How can I help you today?", Ask::Greeting),
            ("I'd be happy to help you book an appointment. May I have your name, please?", Ask::Name),
            ("Sorry, I didn't get your name. Could you say your first and last name?", Ask::Name),
            ("Thanks, John Smith. Is 5 5 5, 7 6 5, 4 3 2 1 the best number to reach you?", Ask::PhoneConfirm),
            ("So that's 5 5 5, 1 1 1, 2 2 2 2. Is that right?", Ask::PhoneConfirm),
            ("I have it as Marie Lopez. Is that right?", Ask::NameReadback),
            ("Entonces es el 5 5 5, 1 1 1, 2 2 2 2. ¿Es correcto?", Ask::PhoneConfirm),
            ("What's the best phone number to reach you?", Ask::Phone),
            ("I have Tuesday December 8th at 9 AM, 9:30 AM, or 10 AM. Which works best for you?", Ask::Offer),
            ("No problem. What day and time would work better for you?", Ask::Preference),
            (
                "You're all set, John, for Tuesday at 9 AM. Your confirmation code is K, 7. I'll text you the details. Is there anything else I can help you with?",
                Ask::AnythingElse,
            ),
            ("Sure. Please go ahead with your message, and I'll make sure Bright Smile gets it.", Ask::Message),
            ("I found your appointment for Tuesday at 9 AM. Would you like me to cancel it?", Ask::ConfirmCancel),
            ("I couldn't find an upcoming appointment for this number. Do you have your confirmation code?", Ask::Code),
            ("We're open Monday to Friday, 9 AM to 5 PM. Would you like to book an appointment?", Ask::BookOffer),
            ("I have it as Marie Lopez. Is that right?", Ask::NameReadback),
            ("Thank you for calling Bright Smile Dental. Have a great day. Goodbye!", Ask::Goodbye),
            ("Of course. Let me connect you with someone now. Please hold.", Ask::Transfer),
            (
                "I'm sorry, I don't see any openings in the next few weeks. Would you like to leave a message so Bright Smile can call you back?",
                Ask::LeaveMessage,
            ),
            ("Gracias por llamar a Bright Smile Dental. Habla Lina. ¿En qué le puedo ayudar?", Ask::Greeting),
            ("Con gusto le ayudo a hacer una cita. ¿Me dice su nombre, por favor?", Ask::Name),
            ("Gracias, Ana. ¿El 5 5 5, 7 6 5, 4 3 2 1 es el mejor número para contactarle?", Ask::PhoneConfirm),
            (
                "Tengo martes 8 de diciembre a las 9 de la mañana, o a las 10 de la mañana. ¿Cuál le conviene más?",
                Ask::Offer,
            ),
            (
                "Listo, Ana, su cita es martes. Su código de confirmación es K. ¿Le puedo ayudar con algo más?",
                Ask::AnythingElse,
            ),
            ("Encontré su cita para el martes. ¿Quiere que la cancele?", Ask::ConfirmCancel),
            ("Gracias por llamar a Bright Smile Dental. Que tenga un buen día. ¡Adiós!", Ask::Goodbye),
            ("Could you spell your last name for me?", Ask::Spell),
        ];
        for (text, ask) in cases {
            assert_eq!(classify(text), ask, "{text}");
        }
    }

    fn persona(goal: Goal) -> Persona {
        toml::from_str::<Persona>(&format!(
            "name = \"Xiomara Quispe\"\ngoal = \"{}\"",
            match goal {
                Goal::Book => "book",
                _ => "cancel",
            }
        ))
        .unwrap()
    }

    #[test]
    fn the_caller_answers_what_was_asked_and_ends_when_the_agent_says_goodbye() {
        let mut c = Caller::new(persona(Goal::Book), None);
        let say = |r: Option<Reply>| match r {
            Some(Reply::Say { text, .. }) => text,
            other => panic!("{other:?}"),
        };
        assert!(say(c.respond("How can I help you today?")).contains("book"));
        assert_eq!(say(c.respond("May I have your name, please?")), "My name is Xiomara Quispe.");
        assert!(say(c.respond("Which works best for you? I have 9 AM or 10 AM")).contains("first"));
        assert!(!c.goal_done);
        assert!(say(c.respond("You're all set. Anything else?")).contains("that's all"));
        assert!(c.goal_done);
        assert_eq!(c.respond("Have a great day. Goodbye!"), None);
        assert_eq!(c.turns, 4);
    }

    #[test]
    fn a_name_read_back_wrong_is_corrected_and_spelled_when_the_persona_spells() {
        let mut p = persona(Goal::Book);
        p.spell_name = true;
        let mut c = Caller::new(p, None);
        let said = c.respond("I have it as Amara Kiss. Is that right?");
        assert_eq!(said, Some(Reply::Say { text: "No, it's X-I-O-M-A-R-A, Q-U-I-S-P-E".into(), over_agent: false }));
    }

    #[test]
    fn behaviours_hang_up_stay_silent_and_override_answers_by_turn() {
        let mut p = persona(Goal::Book);
        p.silent_at = Some(1);
        p.hang_up_at = Some(2);
        let mut c = Caller::new(p, None);
        assert_eq!(c.respond("How can I help you today?"), Some(Reply::Silence));
        assert!(matches!(c.respond("Are you still there?"), Some(Reply::Say { .. })));
        assert_eq!(c.respond("May I have your name?"), Some(Reply::HangUp));
    }
}
