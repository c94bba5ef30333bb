//! The local dialogue engine: a deterministic slot-filling policy that stands where the LLM
//! will. It decides what to say and which tool to call; it never touches the database
//! itself (the call actor runs the tools and hands back their results), so the booking
//! rules stay in `services` whichever engine converses.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use crate::dialogue::datetime::SpokenTime;
use crate::dialogue::nlu::{self, Intent, Reading};
use crate::dialogue::phrasing::{self, SpokenHours};
use crate::dialogue::prompts::Prompts;
use crate::domain::confirmation;
use crate::domain::ids::AppointmentId;
use crate::domain::language::Language;
use crate::domain::phone::PhoneNumber;
use crate::domain::scheduling::{self, Calendar, Preference, Slot};

/// Misunderstandings in a row before the agent offers a message or a call-back.
pub const MAX_MISUNDERSTANDINGS: u32 = 3;

/// Where the conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Waiting to hear what the caller wants.
    Intent,
    AskName,
    /// A name that reads as no name was taken as heard; waiting for yes, a correction or
    /// a spelling.
    ConfirmName,
    /// Asked to spell the name; one more failure and the booking goes under the caller ID.
    SpellName,
    /// Confirming the number to call back (the caller ID, or a number just given).
    ConfirmPhone,
    AskPhone,
    /// Three slots were offered; waiting for a choice.
    ChooseSlot,
    /// The caller turned the offers down; waiting for a day/time.
    AskPreference,
    /// Waiting for the caller's message.
    TakeMessage,
    /// An appointment was found; waiting for yes/no to cancel it.
    ConfirmCancel,
    /// Waiting for a confirmation code to find an appointment.
    AskCode,
    /// Stuck: offered a message or a call-back.
    Stuck,
    /// The caller said goodbye with a booking half-done: asked whether to still book it.
    ConfirmLeave,
    /// The call is over (or being transferred).
    Done,
}

/// What the call achieved (defined with the other names stored on a call).
pub use crate::domain::calls::Outcome;

/// An appointment found for the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoundAppointment {
    pub id: AppointmentId,
    pub name: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub code: String,
}

/// Work the engine asks the actor to do (the same tools the LLM will call).
#[derive(Debug, Clone, PartialEq)]
pub enum ToolCall {
    CheckAvailability(Preference),
    Book { slot: Slot, name: String, phone: String },
    FindAppointment { phone: Option<String>, code: Option<String> },
    Cancel { appointment_id: AppointmentId },
    TakeMessage { text: String },
}

/// What a tool returned.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolResult {
    Slots(Vec<Slot>),
    Booked { code: String, slot: Slot },
    SlotTaken,
    Found(Option<FoundAppointment>),
    Cancelled(bool),
    MessageTaken,
    Failed(String),
}

/// The engine's next move.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Run this tool and call [`Policy::on_tool_result`].
    Tool(ToolCall),
    /// Say this and wait for the caller. `end` hangs up after it is heard; `transfer`
    /// hands the call to the owner after it is heard.
    Reply { text: String, end: bool, transfer: bool },
}

/// Facts about the tenant and the moment that phrasing and tools need.
pub struct Context<'a> {
    pub prompts: &'a Prompts,
    pub business_name: &'a str,
    pub greeting: Option<&'a str>,
    pub services: &'a str,
    pub description: &'a str,
    pub calendar: &'a Calendar,
    pub now: DateTime<Utc>,
    /// The call is being recorded: the greeting opens with the notice the law requires.
    pub recording_notice: bool,
}

impl Context<'_> {
    fn local_now(&self) -> DateTime<Tz> {
        self.now.with_timezone(&self.calendar.tz)
    }

    fn is_open_now(&self) -> bool {
        self.calendar.is_open_at(self.now)
    }
}

/// The conversation state. Serializable: it is what gets checkpointed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Policy {
    pub language: Language,
    pub stage: Stage,
    pub intent: Option<Intent>,
    pub name: Option<String>,
    /// The caller's number from Twilio, until the caller gives another.
    pub phone: Option<PhoneNumber>,
    /// The number the call comes from, kept when the caller gives another: the booking
    /// falls back to it when a number cannot be understood.
    #[serde(default)]
    pub caller_id: Option<PhoneNumber>,
    /// The name as heard, while the caller confirms it.
    #[serde(default)]
    pub heard_name: Option<String>,
    /// Where the conversation goes back to when a caller who said goodbye carries on.
    #[serde(default)]
    pub resume: Option<Stage>,
    pub date: Option<NaiveDate>,
    pub time: Option<SpokenTime>,
    pub offered: Vec<Slot>,
    pub misunderstandings: u32,
    /// Numbers read back and turned down: past two, the call goes on without asking again.
    #[serde(default)]
    pub phone_refusals: u32,
    pub outcome: Outcome,
    pub found: Option<FoundAppointment>,
    pub booked: Option<(String, Slot)>,
    /// Text said before the tool result's own line ("That time was just taken.").
    #[serde(skip)]
    prefix: Option<String>,
}

impl Policy {
    pub fn new(language: Language, caller_phone: Option<&str>) -> Self {
        Self {
            language,
            stage: Stage::Intent,
            intent: None,
            name: None,
            phone: caller_phone.and_then(|p| PhoneNumber::parse(p).ok()),
            caller_id: caller_phone.and_then(|p| PhoneNumber::parse(p).ok()),
            heard_name: None,
            resume: None,
            date: None,
            time: None,
            offered: Vec::new(),
            misunderstandings: 0,
            phone_refusals: 0,
            outcome: Outcome::None,
            found: None,
            booked: None,
            prefix: None,
        }
    }

    fn base(&self, ctx: &Context<'_>) -> Value {
        let capabilities = ctx.prompts.render(self.language, "capabilities", &Value::UNDEFINED);
        context! {
            business_name => ctx.business_name,
            greeting => ctx.greeting,
            services => ctx.services.trim().trim_end_matches('.'),
            description => ctx.description,
            hours => ctx.calendar.hours.describe_in(self.language),
            capabilities => capabilities,
            name => self.name.as_deref().and_then(|n| n.split_whitespace().next()).unwrap_or(""),
            prefix => self.prefix.as_deref(),
        }
    }

    fn say(&mut self, ctx: &Context<'_>, key: &str, extra: Value) -> Step {
        let text = self.line(ctx, key, extra);
        Step::Reply { text, end: false, transfer: false }
    }

    /// What the agent says when the owner takes the call over.
    pub fn takeover_line(&mut self, ctx: &Context<'_>) -> String {
        self.line(ctx, "takeover", Value::UNDEFINED)
    }

    fn line(&mut self, ctx: &Context<'_>, key: &str, extra: Value) -> String {
        let merged = context! { ..extra, ..self.base(ctx) };
        self.prefix = None;
        ctx.prompts.render(self.language, key, &merged)
    }

    fn describe(&self, ctx: &Context<'_>, slot: &Slot) -> String {
        phrasing::describe_slot(ctx.calendar, slot, ctx.now, self.language)
    }

    /// The opening line, preceded by the recording notice when the call is recorded (it
    /// must be heard before anything else is said).
    pub fn greet(&mut self, ctx: &Context<'_>) -> Step {
        let greeting = self.line(ctx, "greeting", Value::UNDEFINED);
        let text = if ctx.recording_notice {
            let notice = self.line(ctx, "recording_notice", Value::UNDEFINED);
            format!("{notice} {greeting}")
        } else {
            greeting
        };
        Step::Reply { text, end: false, transfer: false }
    }

    /// The caller said nothing for a while.
    pub fn on_silence(&mut self, ctx: &Context<'_>) -> Step {
        self.misunderstood(ctx, "still_there")
    }

    /// A key was pressed: 0 asks for a person.
    pub fn on_dtmf(&mut self, ctx: &Context<'_>, digit: char) -> Option<Step> {
        match digit {
            '0' => Some(self.start_intent(ctx, Intent::Human, &Reading::default())),
            _ => None,
        }
    }

    /// The call has gone on too long: wrap up politely.
    pub fn on_time_up(&mut self, ctx: &Context<'_>) -> Step {
        self.stage = Stage::Done;
        let text = self.line(ctx, "goodbye_time", Value::UNDEFINED);
        Step::Reply { text, end: true, transfer: false }
    }

    fn misunderstood(&mut self, ctx: &Context<'_>, key: &str) -> Step {
        self.misunderstandings += 1;
        if self.misunderstandings > MAX_MISUNDERSTANDINGS || self.stage == Stage::Stuck {
            // Already offered a way out and still nothing: end politely rather than loop.
            self.stage = Stage::Done;
            let text = self.line(ctx, "goodbye", Value::UNDEFINED);
            return Step::Reply { text, end: true, transfer: false };
        }
        if self.misunderstandings >= MAX_MISUNDERSTANDINGS {
            self.stage = Stage::Stuck;
            return self.say(ctx, "stuck", Value::UNDEFINED);
        }
        self.say(ctx, key, Value::UNDEFINED)
    }

    fn understood(&mut self) {
        self.misunderstandings = 0;
    }

    /// Keeps the day and time the caller named, for the next availability check.
    fn remember_when(&mut self, reading: &Reading) {
        if reading.date.is_some() {
            self.date = reading.date;
        }
        if reading.time.is_some() {
            self.time = reading.time;
        }
    }

    /// What the caller said (one final transcript).
    pub fn on_utterance(&mut self, ctx: &Context<'_>, text: &str) -> Step {
        let reading = nlu::read(text, ctx.local_now(), self.language);
        // While choosing among offers, "the first one" is an ordinal, not the 1st of the
        // month: the choice decides what a day or time in the answer means.
        if self.stage != Stage::ChooseSlot {
            self.remember_when(&reading);
        }
        // A message may well end with "bye": only a refusal or a bare farewell leaves
        // instead of leaving one.
        let leaving = reading.farewell
            && (self.stage != Stage::TakeMessage
                || reading.yes_no == Some(false)
                || text.split_whitespace().count() <= 3);
        if leaving {
            return self.on_farewell(ctx);
        }
        match self.stage {
            Stage::Intent | Stage::Done => self.on_intent_answer(ctx, text, &reading),
            Stage::AskName => self.on_name(ctx, text, &reading),
            Stage::ConfirmName => self.on_name_read_back(ctx, text, &reading),
            Stage::SpellName => match Self::name_in(text, &reading) {
                Some(name) => {
                    let name = self.fit_spelling(name);
                    self.accept_name(ctx, Some(name))
                }
                None => self.name_under_caller_id(ctx),
            },
            Stage::ConfirmLeave => match reading.yes_no {
                Some(false) => self.goodbye(ctx),
                Some(true) => self.resume(ctx),
                None => {
                    // "The second one" answers the question left open: carry on with it.
                    self.stage = self.resume.take().unwrap_or(Stage::Intent);
                    self.on_utterance(ctx, text)
                }
            },
            Stage::ConfirmPhone => {
                match (reading.yes_no, reading.phone.as_deref().and_then(|p| PhoneNumber::parse(p).ok())) {
                    (_, Some(phone)) => {
                        self.understood();
                        self.read_back_phone(ctx, phone)
                    }
                    (Some(true), _) => {
                        self.understood();
                        self.check_availability()
                    }
                    (Some(false), _) if self.phone_refusals >= 2 => {
                        // Read back and refused three times: never ask again in a loop.
                        self.understood();
                        match self.caller_id.clone() {
                            Some(caller_id) => {
                                self.phone = Some(caller_id);
                                self.prefix = Some(self.line(ctx, "phone_fallback", Value::UNDEFINED));
                            }
                            None => {
                                let phone = self.phone.as_ref().map(PhoneNumber::spoken);
                                self.prefix = Some(self.line(ctx, "phone_kept", context! { phone => phone }));
                            }
                        }
                        self.check_availability()
                    }
                    (Some(false), _) => {
                        self.understood();
                        self.phone_refusals += 1;
                        self.stage = Stage::AskPhone;
                        self.say(ctx, "ask_phone", Value::UNDEFINED)
                    }
                    _ if self.misunderstandings >= 1 && self.phone.is_some() => {
                        // Twice unclear: go on with the number we have rather than ask forever.
                        self.understood();
                        let phone = self.phone.as_ref().map(PhoneNumber::spoken);
                        self.prefix = Some(self.line(ctx, "phone_kept", context! { phone => phone }));
                        self.check_availability()
                    }
                    _ => {
                        let phone = self.phone.as_ref().map(PhoneNumber::spoken);
                        self.misunderstood_with(ctx, "confirm_phone", context! { phone => phone })
                    }
                }
            }
            Stage::AskPhone => match reading.phone.as_deref().and_then(|p| PhoneNumber::parse(p).ok()) {
                Some(phone) => {
                    self.understood();
                    self.read_back_phone(ctx, phone)
                }
                None if self.misunderstandings >= 1 && self.caller_id.is_some() => {
                    // Twice not understood: the number the call comes from will do.
                    self.understood();
                    self.phone = self.caller_id.clone();
                    self.prefix = Some(self.line(ctx, "phone_fallback", Value::UNDEFINED));
                    self.check_availability()
                }
                None => self.misunderstood(ctx, "ask_phone_again"),
            },
            Stage::ChooseSlot => self.on_choice(ctx, text, &reading),
            Stage::AskPreference => {
                if reading.date.is_some() || reading.time.is_some() {
                    self.understood();
                    self.check_availability()
                } else if let Some(intent) = reading.intent.filter(|i| *i != Intent::Book) {
                    self.start_intent(ctx, intent, &reading)
                } else {
                    self.misunderstood(ctx, "ask_preference")
                }
            }
            Stage::TakeMessage => {
                self.understood();
                Step::Tool(ToolCall::TakeMessage { text: text.trim().to_owned() })
            }
            Stage::ConfirmCancel => match reading.yes_no {
                Some(true) => {
                    self.understood();
                    match &self.found {
                        Some(found) => Step::Tool(ToolCall::Cancel { appointment_id: found.id }),
                        None => self.on_intent_answer(ctx, text, &reading),
                    }
                }
                Some(false) => {
                    self.understood();
                    self.stage = Stage::Intent;
                    self.say(ctx, "kept", Value::UNDEFINED)
                }
                None => self.misunderstood(ctx, "not_understood"),
            },
            Stage::AskCode => match reading.code.clone() {
                Some(code) if confirmation::is_code(&code) => {
                    self.understood();
                    Step::Tool(ToolCall::FindAppointment { phone: None, code: Some(code.to_uppercase()) })
                }
                _ => {
                    if reading.yes_no == Some(false) {
                        // No code: offer a message instead of asking forever.
                        self.understood();
                        self.stage = Stage::TakeMessage;
                        return self.say(ctx, "ask_message", Value::UNDEFINED);
                    }
                    self.misunderstood(ctx, "ask_code")
                }
            },
            Stage::Stuck => match (reading.intent, reading.yes_no) {
                (Some(intent), _) => self.start_intent(ctx, intent, &reading),
                (None, Some(true)) => self.start_intent(ctx, Intent::Message, &reading),
                _ => self.misunderstood(ctx, "stuck"),
            },
        }
    }

    fn on_intent_answer(&mut self, ctx: &Context<'_>, text: &str, reading: &Reading) -> Step {
        match reading.intent {
            Some(intent) => self.start_intent(ctx, intent, reading),
            None if reading.yes_no == Some(false) && self.outcome != Outcome::None => self.goodbye(ctx),
            None if nlu::is_thanks(text) && self.outcome != Outcome::None => self.goodbye(ctx),
            None if reading.yes_no == Some(false) && self.stage == Stage::Done => self.goodbye(ctx),
            None if reading.date.is_some() || reading.time.is_some() => {
                // "Do you have anything Tuesday morning?" reads as a booking request.
                self.start_intent(ctx, Intent::Book, reading)
            }
            None => self.misunderstood(ctx, "not_understood"),
        }
    }

    /// The caller is leaving. With a booking half-done (a name taken or times offered,
    /// nothing booked yet) they are asked once whether to still book it.
    fn on_farewell(&mut self, ctx: &Context<'_>) -> Step {
        let booking = matches!(self.intent, Some(Intent::Book | Intent::Reschedule));
        let started = self.name.is_some() || self.heard_name.is_some() || !self.offered.is_empty();
        let in_booking = matches!(
            self.stage,
            Stage::AskName
                | Stage::ConfirmName
                | Stage::SpellName
                | Stage::ConfirmPhone
                | Stage::AskPhone
                | Stage::ChooseSlot
                | Stage::AskPreference
        );
        if booking && started && in_booking {
            self.understood();
            self.resume = Some(self.stage);
            self.stage = Stage::ConfirmLeave;
            return self.say(ctx, "confirm_leave", Value::UNDEFINED);
        }
        self.goodbye(ctx)
    }

    /// The caller chose to carry on after a goodbye: ask the open question again.
    fn resume(&mut self, ctx: &Context<'_>) -> Step {
        self.understood();
        self.stage = self.resume.take().unwrap_or(Stage::Intent);
        match self.stage {
            Stage::AskName => self.say(ctx, "ask_name", Value::UNDEFINED),
            Stage::ConfirmName => {
                let heard = self.heard_name.clone();
                self.say(ctx, "confirm_name", context! { heard => heard })
            }
            Stage::SpellName => self.say(ctx, "spell_name", Value::UNDEFINED),
            Stage::ConfirmPhone => {
                let phone = self.phone.as_ref().map(PhoneNumber::spoken);
                self.say(ctx, "confirm_phone", context! { phone => phone })
            }
            Stage::AskPhone => self.say(ctx, "ask_phone", Value::UNDEFINED),
            Stage::ChooseSlot => {
                let slots: Vec<String> = self.offered.iter().map(|s| self.describe(ctx, s)).collect();
                self.say(ctx, "which_one", context! { slots => slots })
            }
            Stage::AskPreference => self.say(ctx, "ask_preference", Value::UNDEFINED),
            _ => self.say(ctx, "anything_else", Value::UNDEFINED),
        }
    }

    /// A name in the answer: spelled, introduced or bare. Choices and yes/no are never names.
    fn name_in(text: &str, reading: &Reading) -> Option<String> {
        nlu::read_spelled_name(text).or_else(|| reading.name.clone()).or_else(|| {
            if reading.choice.is_some() || reading.yes_no.is_some() { None } else { nlu::read_name_answer(text) }
        })
    }

    /// The answer to "may I have your name?". What reads as no name is read back as heard;
    /// nothing heard twice puts the booking under the caller ID. A name never ends a call.
    fn on_name(&mut self, ctx: &Context<'_>, text: &str, reading: &Reading) -> Step {
        if let Some(name) = Self::name_in(text, reading) {
            return self.accept_name(ctx, Some(name));
        }
        if let Some(intent) = reading.intent.filter(|i| *i != Intent::Book) {
            return self.start_intent(ctx, intent, reading);
        }
        let heard =
            (reading.choice.is_none() && reading.yes_no.is_none()).then(|| nlu::read_heard_name(text)).flatten();
        match heard {
            Some(heard) => {
                self.understood();
                self.heard_name = Some(heard.clone());
                self.stage = Stage::ConfirmName;
                self.say(ctx, "confirm_name", context! { heard => heard })
            }
            None if self.misunderstandings >= 1 => self.name_under_caller_id(ctx),
            None => {
                self.misunderstandings += 1;
                self.say(ctx, "ask_name_again", Value::UNDEFINED)
            }
        }
    }

    /// The answer to "I have it as Marie Lopez — is that right?".
    fn on_name_read_back(&mut self, ctx: &Context<'_>, text: &str, reading: &Reading) -> Step {
        if let Some(spelled) = nlu::read_spelled_name(text) {
            let name = self.fit_spelling(spelled);
            return self.accept_name(ctx, Some(name));
        }
        match reading.yes_no {
            Some(true) => {
                let heard = self.heard_name.take();
                self.accept_name(ctx, heard)
            }
            // "No, it's Maria Lopez": the correction is taken as said.
            _ if reading.name.is_some() => self.accept_name(ctx, reading.name.clone()),
            Some(false) => match nlu::read_heard_name(text) {
                Some(corrected) => self.accept_name(ctx, Some(corrected)),
                None => {
                    self.understood();
                    self.stage = Stage::SpellName;
                    self.say(ctx, "spell_name", Value::UNDEFINED)
                }
            },
            None => match Self::name_in(text, reading) {
                Some(name) => self.accept_name(ctx, Some(name)),
                None => {
                    self.understood();
                    self.stage = Stage::SpellName;
                    self.say(ctx, "spell_name", Value::UNDEFINED)
                }
            },
        }
    }

    /// A first and last name spelled in one run ("m a r i a l o p e z") is split where the
    /// name as heard splits, when one of its words ends or starts the spelling.
    fn fit_spelling(&self, spelled: String) -> String {
        let Some(heard) = self.heard_name.as_deref() else { return spelled };
        if spelled.contains(' ') {
            return spelled;
        }
        let lower = spelled.to_lowercase();
        let words: Vec<String> = heard.split_whitespace().map(str::to_lowercase).collect();
        let (Some(first), Some(last)) = (words.first(), words.last()) else { return spelled };
        if words.len() < 2 {
            return spelled;
        }
        let split = if lower.len() > last.len() && lower.ends_with(last.as_str()) {
            Some(lower.len() - last.len())
        } else if lower.len() > first.len() && lower.starts_with(first.as_str()) {
            Some(first.len())
        } else {
            None
        };
        match split.filter(|at| spelled.is_char_boundary(*at)) {
            Some(at) => {
                let (a, b) = spelled.split_at(at);
                let mut b = b.chars();
                let tail: String = b.next().map(|c| c.to_uppercase().chain(b).collect()).unwrap_or_default();
                format!("{a} {tail}")
            }
            None => spelled,
        }
    }

    fn accept_name(&mut self, ctx: &Context<'_>, name: Option<String>) -> Step {
        self.understood();
        self.heard_name = None;
        if name.is_some() {
            self.name = name;
        }
        self.after_name(ctx)
    }

    /// The name could not be had: the booking goes on under the caller's number.
    fn name_under_caller_id(&mut self, ctx: &Context<'_>) -> Step {
        self.understood();
        self.heard_name = None;
        self.name = None;
        let calling_from = self.caller_id.is_some();
        let first = self.line(ctx, "name_fallback", context! { calling_from => calling_from });
        let next = self.after_name(ctx);
        prepend(first, next)
    }

    /// A number the caller just gave is read back before it is used.
    fn read_back_phone(&mut self, ctx: &Context<'_>, phone: PhoneNumber) -> Step {
        let spoken = phone.spoken();
        self.phone = Some(phone);
        self.stage = Stage::ConfirmPhone;
        self.say(ctx, "read_back_phone", context! { phone => spoken })
    }

    fn goodbye(&mut self, ctx: &Context<'_>) -> Step {
        self.stage = Stage::Done;
        let text = self.line(ctx, "goodbye", Value::UNDEFINED);
        Step::Reply { text, end: true, transfer: false }
    }

    fn start_intent(&mut self, ctx: &Context<'_>, intent: Intent, reading: &Reading) -> Step {
        self.understood();
        self.intent = Some(intent);
        match intent {
            Intent::Book => {
                if let Some(name) = &reading.name {
                    self.name = Some(name.clone());
                }
                if self.name.is_none() {
                    self.stage = Stage::AskName;
                    self.say(ctx, "ask_name", Value::UNDEFINED)
                } else {
                    self.after_name(ctx)
                }
            }
            Intent::Cancel | Intent::Reschedule | Intent::Lookup => {
                let code = reading.code.clone().filter(|c| confirmation::is_code(c));
                Step::Tool(ToolCall::FindAppointment {
                    phone: self.phone.as_ref().map(|p| p.as_str().to_owned()),
                    code,
                })
            }
            Intent::Pricing => {
                self.stage = Stage::Intent;
                self.note_info();
                self.say(ctx, "pricing", Value::UNDEFINED)
            }
            Intent::Hours => {
                self.stage = Stage::Intent;
                self.note_info();
                self.say(ctx, "hours", Value::UNDEFINED)
            }
            Intent::Human => {
                if ctx.is_open_now() {
                    self.stage = Stage::Done;
                    self.outcome = Outcome::Transfer;
                    let text = self.line(ctx, "transfer", Value::UNDEFINED);
                    Step::Reply { text, end: true, transfer: true }
                } else {
                    self.stage = Stage::TakeMessage;
                    self.say(ctx, "transfer_closed", Value::UNDEFINED)
                }
            }
            Intent::Message => {
                self.stage = Stage::TakeMessage;
                self.say(ctx, "ask_message", Value::UNDEFINED)
            }
        }
    }

    fn note_info(&mut self) {
        if self.outcome == Outcome::None {
            self.outcome = Outcome::Info;
        }
    }

    fn after_name(&mut self, ctx: &Context<'_>) -> Step {
        match &self.phone {
            Some(phone) => {
                self.stage = Stage::ConfirmPhone;
                self.say(ctx, "confirm_phone", context! { phone => phone.spoken() })
            }
            None => {
                self.stage = Stage::AskPhone;
                self.say(ctx, "ask_phone", Value::UNDEFINED)
            }
        }
    }

    fn preference(&self) -> Preference {
        let (time, part) = match self.time {
            Some(SpokenTime::At(t)) => (Some(t), None),
            Some(SpokenTime::Part(p)) => (None, Some(p)),
            None => (None, None),
        };
        Preference { date: self.date, time, part }
    }

    fn check_availability(&mut self) -> Step {
        Step::Tool(ToolCall::CheckAvailability(self.preference()))
    }

    fn on_choice(&mut self, ctx: &Context<'_>, text: &str, reading: &Reading) -> Step {
        let chosen = self.match_offer(ctx, reading).or_else(|| self.ordinal_among_offers(ctx, text, reading));
        match chosen {
            Some(slot) => {
                self.understood();
                let name = self.name.clone().unwrap_or_default();
                let phone = self.phone.as_ref().map(|p| p.as_str().to_owned()).unwrap_or_default();
                Step::Tool(ToolCall::Book { slot, name, phone })
            }
            None if reading.date.is_some() || reading.time.is_some() => {
                // A different day or time than offered: look again with it.
                self.understood();
                self.remember_when(reading);
                self.check_availability()
            }
            None if reading.yes_no == Some(false) => {
                self.understood();
                self.stage = Stage::AskPreference;
                self.date = None;
                self.time = None;
                self.say(ctx, "ask_preference", Value::UNDEFINED)
            }
            None if reading.intent.is_some_and(|i| i != Intent::Book) => {
                self.start_intent(ctx, reading.intent.unwrap_or(Intent::Book), reading)
            }
            None if self.misunderstandings == 1 && self.offered.len() > 1 => {
                // Twice unclear: offer the first available alone, for a plain yes or no.
                self.misunderstandings += 1;
                self.offered.truncate(1);
                let first = self.offered.first().map(|s| self.describe(ctx, s));
                self.say(ctx, "offer_first", context! { slot => first })
            }
            None => {
                let slots: Vec<String> = self.offered.iter().map(|s| self.describe(ctx, s)).collect();
                self.misunderstood_with(ctx, "which_one", context! { slots => slots })
            }
        }
    }

    fn misunderstood_with(&mut self, ctx: &Context<'_>, key: &str, extra: Value) -> Step {
        self.misunderstandings += 1;
        if self.misunderstandings >= MAX_MISUNDERSTANDINGS {
            self.stage = Stage::Stuck;
            return self.say(ctx, "stuck", Value::UNDEFINED);
        }
        self.say(ctx, key, extra)
    }

    /// While three options are on the table, "the first …" means the first option even when
    /// the rest of the sentence was misheard and the ordinal got read as a day of the month
    /// ("the first juan please"), unless that day is one of the offers.
    fn ordinal_among_offers(&self, ctx: &Context<'_>, text: &str, reading: &Reading) -> Option<Slot> {
        let date = reading.date?;
        let tz = ctx.calendar.tz;
        if self.offered.iter().any(|s| s.starts_at.with_timezone(&tz).date_naive() == date) {
            return None;
        }
        // The last ordinal said wins: "the first, no, the second juan".
        let ordinal =
            text.split_whitespace().rev().find_map(|w| match w.trim_matches(|c: char| !c.is_alphanumeric()) {
                "first" | "1st" | "primera" | "primero" => Some(1),
                "second" | "2nd" | "segunda" | "segundo" => Some(2),
                "third" | "3rd" | "tercera" | "tercero" => Some(3),
                "last" | "ultima" | "última" => Some(nlu::LAST_CHOICE),
                _ => None,
            })?;
        nlu::choice_index(ordinal, self.offered.len()).and_then(|i| self.offered.get(i)).copied()
    }

    /// Which offered slot the caller picked: by ordinal, by time, or by day.
    fn match_offer(&self, ctx: &Context<'_>, reading: &Reading) -> Option<Slot> {
        if self.offered.is_empty() {
            return None;
        }
        if let Some(choice) = reading.choice {
            return nlu::choice_index(choice, self.offered.len()).and_then(|i| self.offered.get(i)).copied();
        }
        let tz = ctx.calendar.tz;
        let matches: Vec<Slot> = self
            .offered
            .iter()
            .filter(|slot| {
                let local = slot.starts_at.with_timezone(&tz);
                let time_ok = match reading.time {
                    Some(SpokenTime::At(t)) => local.time() == t,
                    Some(SpokenTime::Part(p)) => scheduling::DayPart::of(local.time()) == p,
                    None => true,
                };
                let date_ok = reading.date.is_none_or(|d| local.date_naive() == d);
                time_ok && date_ok && (reading.time.is_some() || reading.date.is_some())
            })
            .copied()
            .collect();
        if matches.len() == 1 {
            return matches.first().copied();
        }
        // "Yes" to a single offer takes it.
        if reading.yes_no == Some(true) && self.offered.len() == 1 {
            return self.offered.first().copied();
        }
        None
    }

    /// What the caller asked for when the business is closed then, said before the
    /// nearest openings: "We're closed on Saturdays." / "We close at 5 PM on Fridays."
    fn closed_note(&self, ctx: &Context<'_>) -> Option<String> {
        let hours = &ctx.calendar.hours;
        let at = match self.time {
            Some(SpokenTime::At(t)) => Some(t),
            _ => None,
        };
        let day = self.date.map(|d| d.weekday());
        if let Some(day) = day.filter(|d| !hours.is_open_on(*d)) {
            let days = phrasing::weekday_plural(day, self.language);
            return Some(ctx.prompts.render(self.language, "closed_day", &context! { days => days }));
        }
        let t = at?;
        let days = day.map(|d| phrasing::weekday_plural(d, self.language));
        let key = if t >= hours.close {
            "closed_after"
        } else if t < hours.open {
            "closed_before"
        } else {
            return None;
        };
        let extra = context! {
            days => days,
            open => phrasing::format_time(hours.open, self.language),
            close => phrasing::format_time(hours.close, self.language),
        };
        Some(ctx.prompts.render(self.language, key, &extra))
    }

    fn confirm_booking(&mut self, ctx: &Context<'_>) -> Step {
        self.stage = Stage::Intent;
        let Some((code, slot)) = self.booked.clone() else {
            return self.say(ctx, "anything_else", Value::UNDEFINED);
        };
        let slot_text = self.describe(ctx, &slot);
        self.say(ctx, "booked", context! { slot => slot_text, code => confirmation::spoken(&code) })
    }

    /// A tool finished.
    pub fn on_tool_result(&mut self, ctx: &Context<'_>, result: ToolResult) -> Step {
        match result {
            ToolResult::Slots(slots) if slots.is_empty() => {
                self.stage = Stage::Stuck;
                self.say(ctx, "no_slots", Value::UNDEFINED)
            }
            ToolResult::Slots(slots) => {
                self.offered = slots;
                self.stage = Stage::ChooseSlot;
                if let Some(closed) = self.closed_note(ctx) {
                    self.prefix = Some(match self.prefix.take() {
                        Some(before) => format!("{before} {closed}"),
                        None => closed,
                    });
                }
                let described: Vec<String> = self.offered.iter().map(|s| self.describe(ctx, s)).collect();
                self.say(ctx, "offer", context! { slots => described })
            }
            ToolResult::SlotTaken => {
                self.prefix = Some(ctx.prompts.render(self.language, "slot_taken", &Value::UNDEFINED));
                self.check_availability()
            }
            ToolResult::Booked { code, slot } => {
                self.offered.clear();
                self.booked = Some((code, slot));
                match (&self.found, self.intent) {
                    // Rescheduling: the new time is held, now release the old one.
                    (Some(found), Some(Intent::Reschedule)) => {
                        Step::Tool(ToolCall::Cancel { appointment_id: found.id })
                    }
                    _ => {
                        self.outcome = Outcome::Booked;
                        self.confirm_booking(ctx)
                    }
                }
            }
            ToolResult::Found(Some(found)) if self.intent == Some(Intent::Lookup) => {
                let slot_text = self.describe(ctx, &Slot { starts_at: found.starts_at, ends_at: found.ends_at });
                let code = confirmation::spoken(&found.code);
                self.stage = Stage::Intent;
                self.note_info();
                self.say(ctx, "appointment_found", context! { slot => slot_text, code => code })
            }
            ToolResult::Found(Some(found)) => {
                let slot_text = self.describe(ctx, &Slot { starts_at: found.starts_at, ends_at: found.ends_at });
                self.found = Some(found);
                if self.intent == Some(Intent::Reschedule) {
                    // Book the new time first; the old one is cancelled once that succeeds.
                    self.prefix = Some(self.line(ctx, "confirm_reschedule", context! { slot => slot_text }));
                    if self.name.is_none() {
                        self.name = self.found.as_ref().map(|f| f.name.clone());
                    }
                    self.check_availability()
                } else {
                    self.stage = Stage::ConfirmCancel;
                    self.say(ctx, "confirm_cancel", context! { slot => slot_text })
                }
            }
            ToolResult::Found(None) => {
                self.stage = Stage::AskCode;
                self.say(ctx, "find_failed", Value::UNDEFINED)
            }
            ToolResult::Cancelled(_) if self.intent == Some(Intent::Reschedule) && self.booked.is_some() => {
                self.outcome = Outcome::Rescheduled;
                self.found = None;
                self.confirm_booking(ctx)
            }
            ToolResult::Cancelled(_) => {
                let slot_text = self
                    .found
                    .as_ref()
                    .map(|f| self.describe(ctx, &Slot { starts_at: f.starts_at, ends_at: f.ends_at }))
                    .unwrap_or_default();
                self.outcome = Outcome::Cancelled;
                self.stage = Stage::Intent;
                self.found = None;
                self.say(ctx, "cancelled", context! { slot => slot_text })
            }
            ToolResult::MessageTaken => {
                if self.outcome == Outcome::None || self.outcome == Outcome::Info {
                    self.outcome = Outcome::Message;
                }
                self.stage = Stage::Intent;
                self.say(ctx, "message_taken", Value::UNDEFINED)
            }
            ToolResult::Failed(reason) => {
                tracing::warn!(reason, "tool failed; offering to take a message");
                self.stage = Stage::TakeMessage;
                self.say(ctx, "booking_failed", Value::UNDEFINED)
            }
        }
    }
}

/// `first` said before whatever `next` says; a tool call goes ahead and `first` is dropped.
fn prepend(first: String, next: Step) -> Step {
    match next {
        Step::Reply { text, end, transfer } => Step::Reply { text: format!("{first} {text}"), end, transfer },
        tool => tool,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, NaiveTime, TimeZone};
    use chrono_tz::America::New_York;

    use crate::domain::scheduling::BusinessHours;

    struct World {
        prompts: Prompts,
        calendar: Calendar,
        now: DateTime<Utc>,
    }

    impl World {
        /// Monday 2026-11-23, 10:00 in New York: open.
        fn new() -> Self {
            let calendar = Calendar {
                tz: New_York,
                hours: BusinessHours::parse("mon-fri", "09:00-17:00").unwrap(),
                slot_minutes: 30,
                buffer_minutes: 0,
            };
            let now = New_York.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap().with_timezone(&Utc);
            Self { prompts: Prompts::load().unwrap(), calendar, now }
        }

        fn ctx(&self) -> Context<'_> {
            Context {
                prompts: &self.prompts,
                business_name: "Bright Smile Dental",
                greeting: None,
                services: "cleanings are $99",
                description: "",
                calendar: &self.calendar,
                now: self.now,
                recording_notice: false,
            }
        }

        /// Ann Lee's English call, at the point of choosing among [`World::slots`].
        fn choosing(&self) -> Policy {
            let mut p = Policy::new(Language::English, Some("+15557654321"));
            p.name = Some("Ann Lee".into());
            p.stage = Stage::ChooseSlot;
            p.offered = self.slots();
            p
        }

        fn slots(&self) -> Vec<Slot> {
            [(24, 9), (24, 14), (25, 10)]
                .iter()
                .map(|(d, h)| {
                    let starts_at = New_York.with_ymd_and_hms(2026, 11, *d, *h, 0, 0).unwrap().with_timezone(&Utc);
                    Slot { starts_at, ends_at: starts_at + Duration::minutes(30) }
                })
                .collect()
        }
    }

    fn text(step: &Step) -> &str {
        match step {
            Step::Reply { text, .. } => text,
            Step::Tool(t) => panic!("expected a reply, got tool {t:?}"),
        }
    }

    #[test]
    fn a_recorded_call_opens_with_the_notice_in_the_callers_language() {
        let w = World::new();
        let mut ctx = w.ctx();
        let mut p = Policy::new(Language::English, None);
        assert!(!text(&p.greet(&ctx)).contains("recorded"), "no notice when not recording");
        ctx.recording_notice = true;
        let english = text(&p.greet(&ctx)).to_owned();
        assert!(english.starts_with("This call may be recorded."), "{english}");
        assert!(english.contains("Bright Smile Dental"), "{english}");
        let mut p = Policy::new(Language::Spanish, None);
        let spanish = text(&p.greet(&ctx)).to_owned();
        assert!(spanish.starts_with("Esta llamada puede ser grabada."), "{spanish}");
        assert!(spanish.contains("Bright Smile Dental"), "{spanish}");
    }

    #[test]
    fn a_booking_conversation_collects_name_phone_and_choice_then_books() {
        let w = World::new();
        let ctx = w.ctx();
        let mut p = Policy::new(Language::English, Some("+15557654321"));
        assert!(text(&p.greet(&ctx)).contains("Bright Smile Dental"));
        let step = p.on_utterance(&ctx, "hi i would like to book an appointment");
        assert!(text(&step).contains("your name"), "{step:?}");
        let step = p.on_utterance(&ctx, "my name is john smith");
        assert!(text(&step).contains("5 5 5, 7 6 5, 4 3 2 1"), "{step:?}");
        let step = p.on_utterance(&ctx, "yes that's right");
        assert!(matches!(step, Step::Tool(ToolCall::CheckAvailability(_))), "{step:?}");
        let step = p.on_tool_result(&ctx, ToolResult::Slots(w.slots()));
        let offer = text(&step).to_owned();
        assert!(offer.contains("9 AM") && offer.contains("2 PM") && offer.contains("10 AM"), "{offer}");
        let step = p.on_utterance(&ctx, "the second one please");
        let Step::Tool(ToolCall::Book { slot, name, phone }) = step else { panic!("expected a booking, got {step:?}") };
        assert_eq!(slot, w.slots()[1]);
        assert_eq!(name, "John Smith");
        assert_eq!(phone, "+15557654321");
        let step = p.on_tool_result(&ctx, ToolResult::Booked { code: "K7M2QX".into(), slot });
        assert!(text(&step).contains("K, 7, M, 2, Q, X"), "{step:?}");
        assert_eq!(p.outcome, Outcome::Booked);
        let step = p.on_utterance(&ctx, "no that's all thank you");
        assert!(matches!(step, Step::Reply { end: true, transfer: false, .. }), "{step:?}");
    }

    #[test]
    fn an_offered_slot_can_be_chosen_by_its_time() {
        let w = World::new();
        let ctx = w.ctx();
        let mut p = w.choosing();
        let step = p.on_utterance(&ctx, "the two o'clock one");
        assert!(matches!(step, Step::Tool(ToolCall::Book { slot, .. }) if slot == w.slots()[1]), "{step:?}");
    }

    #[test]
    fn a_misheard_ordinal_still_picks_an_offer_unless_it_names_an_offered_day() {
        let w = World::new();
        let ctx = w.ctx();
        let mut p = w.choosing();
        let step = p.on_utterance(&ctx, "the first juan please");
        assert!(matches!(step, Step::Tool(ToolCall::Book { slot, .. }) if slot == w.slots()[0]), "{step:?}");
        // "the 24th" is the day of the first two offers: a day, not an ordinal.
        let mut p = w.choosing();
        let step = p.on_utterance(&ctx, "the twenty fifth");
        assert!(matches!(step, Step::Tool(ToolCall::Book { slot, .. }) if slot == w.slots()[2]), "{step:?}");
    }

    #[test]
    fn a_slot_taken_meanwhile_leads_to_new_offers_with_an_apology() {
        let w = World::new();
        let ctx = w.ctx();
        // "The first one" chose an offer: the new offers are for what the caller asked
        // before, not for the 1st (or 2nd, 3rd) of next month.
        // "Wanna" is how the offline recogniser heard "one" in a load run.
        for choice in ["the first wanna please", "the second one", "third one is fine", "the first one please"] {
            let mut p = w.choosing();
            let asked = p.preference();
            let step = p.on_utterance(&ctx, choice);
            assert!(matches!(step, Step::Tool(ToolCall::Book { .. })), "{choice}: {step:?}");
            let step = p.on_tool_result(&ctx, ToolResult::SlotTaken);
            assert!(
                matches!(&step, Step::Tool(ToolCall::CheckAvailability(pref)) if *pref == asked),
                "{choice}: {step:?}"
            );
        }
        let mut p = w.choosing();
        let _ = p.on_utterance(&ctx, "the first one please");
        let _ = p.on_tool_result(&ctx, ToolResult::SlotTaken);
        let step = p.on_tool_result(&ctx, ToolResult::Slots(w.slots()[1..].to_vec()));
        assert!(text(&step).starts_with("I'm sorry, that time was just taken."), "{step:?}");
    }

    #[test]
    fn three_misunderstandings_offer_a_way_out_and_a_fourth_ends_the_call() {
        let w = World::new();
        let ctx = w.ctx();
        let mut p = Policy::new(Language::English, None);
        for _ in 0..2 {
            let step = p.on_utterance(&ctx, "purple monkey dishwasher");
            assert!(text(&step).contains("didn't quite catch"), "{step:?}");
        }
        let step = p.on_utterance(&ctx, "purple monkey dishwasher");
        assert!(text(&step).contains("leave a message"), "{step:?}");
        let step = p.on_utterance(&ctx, "purple monkey dishwasher");
        assert!(matches!(step, Step::Reply { end: true, .. }), "never loops: {step:?}");
    }

    #[test]
    fn silence_counts_as_a_misunderstanding() {
        let w = World::new();
        let ctx = w.ctx();
        let mut p = Policy::new(Language::English, None);
        for _ in 0..3 {
            let _ = p.on_silence(&ctx);
        }
        assert!(matches!(p.on_silence(&ctx), Step::Reply { end: true, .. }));
    }

    #[test]
    fn asking_for_a_person_transfers_when_open_and_takes_a_message_when_closed() {
        let mut w = World::new();
        let mut p = Policy::new(Language::English, None);
        let step = p.on_utterance(&w.ctx(), "can i talk to a real person");
        assert!(matches!(step, Step::Reply { end: true, transfer: true, .. }), "{step:?}");
        assert_eq!(p.outcome, Outcome::Transfer);

        w.now = New_York.with_ymd_and_hms(2026, 11, 22, 20, 0, 0).unwrap().with_timezone(&Utc); // Sunday night
        let mut p = Policy::new(Language::English, Some("+15557654321"));
        let step = p.on_utterance(&w.ctx(), "can i talk to a real person");
        assert!(text(&step).contains("closed"), "{step:?}");
        let step = p.on_utterance(&w.ctx(), "please ask doctor rivera to call me back about my crown");
        assert!(matches!(&step, Step::Tool(ToolCall::TakeMessage { text }) if text.contains("crown")), "{step:?}");
        let step = p.on_tool_result(&w.ctx(), ToolResult::MessageTaken);
        assert!(text(&step).contains("passed your message"));
        assert_eq!(p.outcome, Outcome::Message);
    }

    #[test]
    fn cancelling_finds_the_callers_appointment_and_confirms_first() {
        let w = World::new();
        let ctx = w.ctx();
        let mut p = Policy::new(Language::English, Some("+15557654321"));
        let step = p.on_utterance(&ctx, "i need to cancel my appointment");
        assert_eq!(step, Step::Tool(ToolCall::FindAppointment { phone: Some("+15557654321".into()), code: None }));
        let slot = w.slots()[0];
        let found = FoundAppointment {
            id: AppointmentId(7),
            name: "Ann".into(),
            starts_at: slot.starts_at,
            ends_at: slot.ends_at,
            code: "K7M2QX".into(),
        };
        let step = p.on_tool_result(&ctx, ToolResult::Found(Some(found)));
        assert!(text(&step).contains("cancel it"), "{step:?}");
        let step = p.on_utterance(&ctx, "yes please");
        assert_eq!(step, Step::Tool(ToolCall::Cancel { appointment_id: AppointmentId(7) }));
        let step = p.on_tool_result(&ctx, ToolResult::Cancelled(true));
        assert!(text(&step).contains("is cancelled"));
        assert_eq!(p.outcome, Outcome::Cancelled);
    }

    #[test]
    fn rescheduling_books_the_new_time_before_releasing_the_old_one() {
        let w = World::new();
        let ctx = w.ctx();
        let mut p = Policy::new(Language::English, Some("+15557654321"));
        let step = p.on_utterance(&ctx, "i need to reschedule my appointment");
        assert!(matches!(step, Step::Tool(ToolCall::FindAppointment { .. })));
        let old = w.slots()[0];
        let found = FoundAppointment {
            id: AppointmentId(7),
            name: "Ann Lee".into(),
            starts_at: old.starts_at,
            ends_at: old.ends_at,
            code: "K7M2QX".into(),
        };
        assert!(matches!(
            p.on_tool_result(&ctx, ToolResult::Found(Some(found))),
            Step::Tool(ToolCall::CheckAvailability(_))
        ));
        let _ = p.on_tool_result(&ctx, ToolResult::Slots(w.slots()[1..].to_vec()));
        let step = p.on_utterance(&ctx, "the first one");
        let Step::Tool(ToolCall::Book { slot, name, .. }) = step else { panic!("{step:?}") };
        assert_eq!(name, "Ann Lee");
        let step = p.on_tool_result(&ctx, ToolResult::Booked { code: "AAAAAA".into(), slot });
        assert_eq!(step, Step::Tool(ToolCall::Cancel { appointment_id: AppointmentId(7) }));
        let step = p.on_tool_result(&ctx, ToolResult::Cancelled(true));
        assert!(text(&step).contains("all set"));
        assert_eq!(p.outcome, Outcome::Rescheduled);
    }

    #[test]
    fn pricing_and_hours_come_from_the_tenants_own_text() {
        let w = World::new();
        let ctx = w.ctx();
        let mut p = Policy::new(Language::English, None);
        assert!(text(&p.on_utterance(&ctx, "how much is a cleaning")).contains("cleanings are $99"));
        let hours = text(&p.on_utterance(&ctx, "what are your hours")).to_owned();
        assert!(hours.contains("Monday") && hours.contains("Friday"), "{hours}");
        assert_eq!(p.outcome, Outcome::Info);
    }

    #[test]
    fn a_preferred_day_and_time_are_passed_to_availability() {
        let w = World::new();
        let ctx = w.ctx();
        let mut p = Policy::new(Language::English, Some("+15557654321"));
        p.name = Some("Ann".into());
        let _ = p.on_utterance(&ctx, "can i book something for wednesday at 2 pm");
        let _ = p.on_utterance(&ctx, "yes");
        let step = p.check_availability();
        let Step::Tool(ToolCall::CheckAvailability(pref)) = step else { panic!() };
        assert_eq!(pref.date, Some(chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()));
        assert_eq!(pref.time, Some(NaiveTime::from_hms_opt(14, 0, 0).unwrap()));
    }

    fn ends(step: &Step) -> bool {
        matches!(step, Step::Reply { end: true, transfer: false, .. })
    }

    /// A caller of `lang` at `stage`, with or without a name yet.
    fn at_stage(w: &World, lang: Language, stage: Stage, name: Option<&str>) -> Policy {
        let mut p = Policy::new(lang, Some("+15557654321"));
        p.intent = Some(Intent::Book);
        p.name = name.map(str::to_owned);
        p.stage = stage;
        if stage == Stage::ChooseSlot {
            p.offered = w.slots();
        }
        p
    }

    #[test]
    fn a_caller_can_leave_at_any_stage_with_nothing_half_done() {
        let w = World::new();
        let ctx = w.ctx();
        let english = ["no that's all", "goodbye", "never mind", "bye", "that's it", "forget it"];
        let spanish = ["no gracias, eso es todo", "adiós", "olvídelo"];
        for (lang, lines) in [(Language::English, &english[..]), (Language::Spanish, &spanish[..])] {
            for stage in [Stage::Intent, Stage::AskName, Stage::AskCode, Stage::Stuck, Stage::TakeMessage] {
                for line in lines {
                    let mut p = at_stage(&w, lang, stage, None);
                    let step = p.on_utterance(&ctx, line);
                    assert!(ends(&step), "{lang:?} {stage:?} {line:?}: {step:?}");
                    assert_eq!(p.stage, Stage::Done);
                }
            }
        }
    }

    #[test]
    fn a_message_that_ends_with_bye_is_still_taken() {
        let w = World::new();
        let ctx = w.ctx();
        let mut p = at_stage(&w, Language::English, Stage::TakeMessage, None);
        let step = p.on_utterance(&ctx, "please ask her to call me back about the crown, bye");
        assert!(matches!(&step, Step::Tool(ToolCall::TakeMessage { text }) if text.contains("crown")), "{step:?}");
    }

    #[test]
    fn leaving_a_half_done_booking_is_confirmed_first() {
        let w = World::new();
        let ctx = w.ctx();
        for stage in [Stage::ChooseSlot, Stage::ConfirmPhone, Stage::AskPhone, Stage::AskPreference] {
            for line in ["never mind", "no that's all", "goodbye"] {
                let mut p = at_stage(&w, Language::English, stage, Some("Ann Lee"));
                let step = p.on_utterance(&ctx, line);
                assert!(text(&step).contains("still book"), "{stage:?} {line:?}: {step:?}");
                // A second goodbye, or a no, lets them go.
                let again = if line == "goodbye" { "no" } else { "bye" };
                assert!(ends(&p.on_utterance(&ctx, again)), "{stage:?} {line:?}");
            }
        }
        // Yes carries on where the booking was.
        let mut p = at_stage(&w, Language::English, Stage::ChooseSlot, Some("Ann Lee"));
        let _ = p.on_utterance(&ctx, "forget it");
        let step = p.on_utterance(&ctx, "yes please");
        assert!(text(&step).contains("Which one"), "{step:?}");
        assert_eq!(p.stage, Stage::ChooseSlot);
        // So does answering the open question.
        let mut p = at_stage(&w, Language::English, Stage::ChooseSlot, Some("Ann Lee"));
        let _ = p.on_utterance(&ctx, "never mind");
        let step = p.on_utterance(&ctx, "the second one");
        assert!(matches!(step, Step::Tool(ToolCall::Book { slot, .. }) if slot == w.slots()[1]), "{step:?}");
        // Spanish.
        let mut p = at_stage(&w, Language::Spanish, Stage::ChooseSlot, Some("Ana López"));
        let step = p.on_utterance(&ctx, "no gracias, eso es todo");
        assert!(text(&step).contains("le reservo todavía"), "{step:?}");
        assert!(ends(&p.on_utterance(&ctx, "adiós")));
    }

    #[test]
    fn a_bare_no_is_an_answer_not_a_goodbye() {
        let w = World::new();
        let ctx = w.ctx();
        let mut p = at_stage(&w, Language::English, Stage::ConfirmPhone, Some("Ann Lee"));
        let step = p.on_utterance(&ctx, "no");
        assert_eq!(p.stage, Stage::AskPhone, "{step:?}");
        let mut p = at_stage(&w, Language::English, Stage::ChooseSlot, Some("Ann Lee"));
        let step = p.on_utterance(&ctx, "no");
        assert_eq!(p.stage, Stage::AskPreference, "{step:?}");
        let mut p = at_stage(&w, Language::Spanish, Stage::ConfirmPhone, Some("Ana"));
        let _ = p.on_utterance(&ctx, "no");
        assert_eq!(p.stage, Stage::AskPhone);
    }

    #[test]
    fn thanks_after_a_booking_ends_the_call() {
        let w = World::new();
        let ctx = w.ctx();
        for line in ["thanks", "thank you so much", "bye", "that's all"] {
            let mut p = w.choosing();
            let _ = p.on_utterance(&ctx, "the first one");
            let _ = p.on_tool_result(&ctx, ToolResult::Booked { code: "K7M2QX".into(), slot: w.slots()[0] });
            assert!(ends(&p.on_utterance(&ctx, line)), "{line:?}");
        }
    }

    #[test]
    fn a_name_heard_as_no_name_is_read_back_and_confirmed() {
        let w = World::new();
        let ctx = w.ctx();
        let mut p = at_stage(&w, Language::English, Stage::AskName, None);
        let step = p.on_utterance(&ctx, "marie a lopez please");
        assert!(text(&step).contains("I have it as Marie Lopez"), "{step:?}");
        let step = p.on_utterance(&ctx, "yes");
        assert!(text(&step).contains("5 5 5, 7 6 5, 4 3 2 1"), "{step:?}");
        assert_eq!(p.name.as_deref(), Some("Marie Lopez"));

        // A correction is taken as said.
        let mut p = at_stage(&w, Language::English, Stage::AskName, None);
        let _ = p.on_utterance(&ctx, "marie a lopez please");
        let _ = p.on_utterance(&ctx, "no it's maria lopez");
        assert_eq!((p.name.as_deref(), p.stage), (Some("Maria Lopez"), Stage::ConfirmPhone));

        // A plain no asks for a spelling, which is split where the heard name splits.
        let mut p = at_stage(&w, Language::English, Stage::AskName, None);
        let _ = p.on_utterance(&ctx, "marie a lopez please");
        let step = p.on_utterance(&ctx, "no");
        assert!(text(&step).contains("spell"), "{step:?}");
        let _ = p.on_utterance(&ctx, "m a r i a l o p e z");
        assert_eq!((p.name.as_deref(), p.stage), (Some("Maria Lopez"), Stage::ConfirmPhone));

        // Spanish.
        let mut p = at_stage(&w, Language::Spanish, Stage::AskName, None);
        let step = p.on_utterance(&ctx, "eh marie a lopes");
        assert!(text(&step).contains("Lo tengo como Marie Lopes"), "{step:?}");
        let step = p.on_utterance(&ctx, "no");
        assert!(text(&step).contains("deletrea"), "{step:?}");
        let _ = p.on_utterance(&ctx, "eme a erre i a");
        assert_eq!(p.name.as_deref(), Some("Maria"));
    }

    #[test]
    fn a_name_never_blocks_a_booking_it_goes_under_the_caller_id() {
        let w = World::new();
        let ctx = w.ctx();
        // Choices and yes/no said at the name question are never names.
        let mut p = at_stage(&w, Language::English, Stage::AskName, None);
        let step = p.on_utterance(&ctx, "yes");
        assert!(text(&step).contains("first and last name"), "{step:?}");
        let step = p.on_utterance(&ctx, "the second one");
        let said = text(&step).to_owned();
        assert!(said.contains("the number you're calling from"), "{said}");
        assert!(said.contains("5 5 5, 7 6 5, 4 3 2 1"), "{said}");
        assert_eq!(p.name, None);
        let _ = p.on_utterance(&ctx, "yes");
        let _ = p.on_tool_result(&ctx, ToolResult::Slots(w.slots()));
        let step = p.on_utterance(&ctx, "the first one");
        let Step::Tool(ToolCall::Book { name, phone, .. }) = step else { panic!("{step:?}") };
        assert_eq!((name.as_str(), phone.as_str()), ("", "+15557654321"));

        // A spelling that cannot be read either.
        let mut p = at_stage(&w, Language::Spanish, Stage::AskName, None);
        let _ = p.on_utterance(&ctx, "pues marie a lopes");
        let _ = p.on_utterance(&ctx, "no");
        let step = p.on_utterance(&ctx, "uh");
        assert!(text(&step).contains("número desde el que llama"), "{step:?}");
        assert_eq!(p.stage, Stage::ConfirmPhone);
        assert!(!p.on_utterance(&ctx, "uh").eq(&Step::Reply { text: String::new(), end: true, transfer: false }));
    }

    #[test]
    fn a_number_that_cannot_be_understood_falls_back_to_the_caller_id() {
        let w = World::new();
        let ctx = w.ctx();
        let mut p = at_stage(&w, Language::English, Stage::ConfirmPhone, Some("Ann Lee"));
        let _ = p.on_utterance(&ctx, "no");
        let step = p.on_utterance(&ctx, "purple");
        assert!(text(&step).contains("one digit at a time"), "{step:?}");
        let step = p.on_utterance(&ctx, "monkey");
        assert!(matches!(step, Step::Tool(ToolCall::CheckAvailability(_))), "{step:?}");
        let step = p.on_tool_result(&ctx, ToolResult::Slots(w.slots()));
        assert!(text(&step).starts_with("No problem, I'll use the number you're calling from."), "{step:?}");
    }

    #[test]
    fn a_changed_number_is_read_back_before_availability_is_checked() {
        let w = World::new();
        let ctx = w.ctx();
        let mut p = at_stage(&w, Language::English, Stage::ConfirmPhone, Some("Ann Lee"));
        let step = p.on_utterance(&ctx, "no use five five five two one two three four five six");
        assert!(text(&step).contains("So that's 5 5 5, 2 1 2, 3 4 5 6"), "{step:?}");
        let step = p.on_utterance(&ctx, "no");
        assert!(text(&step).contains("best phone number"), "{step:?}");
        let step = p.on_utterance(&ctx, "my number is 555 212 9999 no sorry 555 212 8888");
        assert!(text(&step).contains("5 5 5, 2 1 2, 8 8 8 8"), "the last number said: {step:?}");
        let step = p.on_utterance(&ctx, "yes");
        assert!(matches!(step, Step::Tool(ToolCall::CheckAvailability(_))), "{step:?}");
        assert_eq!(p.phone.as_ref().map(PhoneNumber::as_str), Some("+15552128888"));

        let mut p = at_stage(&w, Language::Spanish, Stage::AskPhone, Some("Ana"));
        let step = p.on_utterance(&ctx, "cinco cinco cinco dos uno dos tres cuatro cinco seis");
        assert!(text(&step).contains("Entonces es el"), "{step:?}");
    }

    #[test]
    fn a_number_turned_down_again_and_again_never_loops() {
        let w = World::new();
        let ctx = w.ctx();
        let mut p = at_stage(&w, Language::English, Stage::ConfirmPhone, Some("Nora Ephron"));
        let mut step = p.on_utterance(&ctx, "no please use 555 111 2222");
        for _ in 0..2 {
            assert!(text(&step).contains("So that's 5 5 5, 1 1 1, 2 2 2 2"), "{step:?}");
            let asked = p.on_utterance(&ctx, "no it's nora ephron");
            assert!(text(&asked).contains("best phone number"), "{asked:?}");
            step = p.on_utterance(&ctx, "555 111 2222");
        }
        let step = p.on_utterance(&ctx, "no it's nora ephron");
        assert!(matches!(step, Step::Tool(ToolCall::CheckAvailability(_))), "the third refusal moves on: {step:?}");
        assert_eq!(p.phone.as_ref().map(PhoneNumber::as_str), Some("+15557654321"), "the number the call comes from");
    }

    #[test]
    fn a_choice_that_cannot_be_understood_is_offered_again_then_the_first_alone() {
        let w = World::new();
        let ctx = w.ctx();
        let mut p = w.choosing();
        let step = p.on_utterance(&ctx, "purple monkey");
        assert!(text(&step).contains("Which one"), "{step:?}");
        let step = p.on_utterance(&ctx, "dishwasher");
        assert!(text(&step).contains("The first opening I have is"), "{step:?}");
        let step = p.on_utterance(&ctx, "yes");
        assert!(matches!(step, Step::Tool(ToolCall::Book { slot, .. }) if slot == w.slots()[0]), "{step:?}");
    }

    #[test]
    fn the_last_choice_said_wins() {
        let w = World::new();
        let ctx = w.ctx();
        for line in ["the first one, no wait, the second one", "the first juan no sorry the second juan"] {
            let mut p = w.choosing();
            let step = p.on_utterance(&ctx, line);
            assert!(
                matches!(step, Step::Tool(ToolCall::Book { slot, .. }) if slot == w.slots()[1]),
                "{line}: {step:?}"
            );
        }
        let mut p = w.choosing();
        p.language = Language::Spanish;
        let step = p.on_utterance(&ctx, "la primera, no, perdón, la tercera");
        assert!(matches!(step, Step::Tool(ToolCall::Book { slot, .. }) if slot == w.slots()[2]), "{step:?}");
    }

    fn found(w: &World) -> FoundAppointment {
        let slot = w.slots()[0];
        FoundAppointment {
            id: AppointmentId(7),
            name: "Ann Lee".into(),
            starts_at: slot.starts_at,
            ends_at: slot.ends_at,
            code: "K7M2QX".into(),
        }
    }

    #[test]
    fn asking_when_an_appointment_is_reads_it_back_without_booking() {
        let w = World::new();
        let ctx = w.ctx();
        for (lang, line, expect) in [
            (Language::English, "when is my appointment", "Your next appointment is tomorrow"),
            (Language::English, "what's my confirmation code", "K, 7, M, 2, Q, X"),
            (Language::English, "is my appointment still on", "anything else"),
            (Language::Spanish, "¿cuándo es mi cita?", "Su próxima cita es mañana"),
        ] {
            let mut p = Policy::new(lang, Some("+15557654321"));
            let step = p.on_utterance(&ctx, line);
            assert_eq!(
                step,
                Step::Tool(ToolCall::FindAppointment { phone: Some("+15557654321".into()), code: None }),
                "{line}"
            );
            let step = p.on_tool_result(&ctx, ToolResult::Found(Some(found(&w))));
            assert!(text(&step).contains(expect), "{line}: {step:?}");
            assert_eq!((p.stage, p.outcome), (Stage::Intent, Outcome::Info));
            // Leaving now is a plain goodbye: nothing was being booked.
            assert!(ends(&p.on_utterance(&ctx, "no that's all")), "{line}");
        }
        // Not found by number: the code finds it.
        let mut p = Policy::new(Language::English, None);
        let _ = p.on_utterance(&ctx, "when is my appointment");
        let step = p.on_tool_result(&ctx, ToolResult::Found(None));
        assert!(text(&step).contains("confirmation code"), "{step:?}");
        let step = p.on_utterance(&ctx, "k seven m two q x");
        assert_eq!(step, Step::Tool(ToolCall::FindAppointment { phone: None, code: Some("K7M2QX".into()) }));
        let step = p.on_tool_result(&ctx, ToolResult::Found(Some(found(&w))));
        assert!(text(&step).contains("Your next appointment"), "{step:?}");
    }

    #[test]
    fn a_closed_day_or_hour_is_said_before_the_nearest_openings() {
        let w = World::new();
        let ctx = w.ctx();
        let cases = [
            (Language::English, "saturday", "We're closed on Saturdays. I have"),
            (Language::English, "friday at 6 pm", "We close at 5 PM on Fridays. I have"),
            (Language::English, "tuesday at 7 am", "We open at 9 AM on Tuesdays. I have"),
            (Language::Spanish, "el sábado", "Los sábados estamos cerrados. Tengo"),
            (Language::Spanish, "el viernes a las seis de la tarde", "Cerramos a las 5 de la tarde los viernes."),
        ];
        for (lang, line, expect) in cases {
            let mut p = at_stage(&w, lang, Stage::AskPreference, Some("Ann"));
            let step = p.on_utterance(&ctx, line);
            assert!(matches!(step, Step::Tool(ToolCall::CheckAvailability(_))), "{line}: {step:?}");
            let step = p.on_tool_result(&ctx, ToolResult::Slots(w.slots()));
            assert!(text(&step).starts_with(expect), "{line}: {step:?}");
        }
        let mut p = at_stage(&w, Language::English, Stage::AskPreference, Some("Ann"));
        let _ = p.on_utterance(&ctx, "wednesday at 2 pm");
        let step = p.on_tool_result(&ctx, ToolResult::Slots(w.slots()));
        assert!(text(&step).starts_with("I have"), "open then: nothing to say: {step:?}");
    }

    #[test]
    fn the_state_survives_a_checkpoint_round_trip() {
        let w = World::new();
        let mut p = Policy::new(Language::Spanish, Some("+15557654321"));
        p.offered = w.slots();
        p.stage = Stage::ChooseSlot;
        let back: Policy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back.offered, p.offered);
        assert_eq!(back.stage, Stage::ChooseSlot);
        assert_eq!(back.language, Language::Spanish);
    }
}
