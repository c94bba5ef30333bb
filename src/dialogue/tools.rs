//! The tools a language model may call, as JSON Schemas, and the translation between its
//! JSON arguments/results and the same tool calls the local engine makes. Validation
//! failures come back as messages the model can act on, never as errors of the call.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::dialogue::phrasing;
use crate::dialogue::policy::{FoundAppointment, ToolCall, ToolResult};
use crate::domain::confirmation;
use crate::domain::ids::AppointmentId;
use crate::domain::language::Language;
use crate::domain::phone::PhoneNumber;
use crate::domain::scheduling::{Calendar, DayPart, Preference, Slot};
use crate::providers::llm::{ToolCallRequest, ToolSpec};

/// A tool call the model made, checked and in our terms.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelTool {
    /// Work the local engine can ask for too.
    Call(ToolCall),
    Reschedule {
        appointment_id: AppointmentId,
        slot: Slot,
    },
    BusinessInfo,
    Transfer,
    EndCall,
}

fn spec(name: &str, description: &str, parameters: Value) -> ToolSpec {
    ToolSpec { name: name.into(), description: description.into(), parameters }
}

/// The tools offered to the model.
pub fn specs() -> Vec<ToolSpec> {
    let slot_choice = json!({
        "option": {"type": "integer", "minimum": 1, "maximum": 3, "description": "The number of the option from check_availability"},
        "starts_at": {"type": "string", "description": "Or the exact starts_at of an option (RFC 3339)"}
    });
    vec![
        spec(
            "check_availability",
            "Find three open appointment times, optionally near a preferred day and time.",
            json!({"type": "object", "properties": {
                "date": {"type": "string", "description": "Preferred day, YYYY-MM-DD"},
                "time": {"type": "string", "description": "Preferred time, HH:MM (24h)"},
                "part_of_day": {"type": "string", "enum": ["morning", "afternoon", "evening"]}
            }}),
        ),
        spec(
            "book_appointment",
            "Book one of the options check_availability returned.",
            json!({"type": "object", "properties": {
                "option": slot_choice["option"], "starts_at": slot_choice["starts_at"],
                "name": {"type": "string", "description": "The caller's full name"},
                "under_number": {"type": "boolean", "description": "True, with no name, only when the name could not be understood after reading it back and asking to spell it: the booking goes under the caller's number"},
                "phone": {"type": "string", "description": "Only if different from the number they call from"}
            }}),
        ),
        spec(
            "find_appointment",
            "Find the caller's next appointment by their phone number or confirmation code.",
            json!({"type": "object", "properties": {
                "phone": {"type": "string"}, "confirmation_code": {"type": "string"}
            }}),
        ),
        spec(
            "cancel_appointment",
            "Cancel an appointment found with find_appointment, after the caller confirmed.",
            json!({"type": "object", "required": ["appointment_id"], "properties": {"appointment_id": {"type": "integer"}}}),
        ),
        spec(
            "reschedule_appointment",
            "Move an appointment found with find_appointment to an option from check_availability.",
            json!({"type": "object", "required": ["appointment_id"], "properties": {
                "appointment_id": {"type": "integer"}, "option": slot_choice["option"], "starts_at": slot_choice["starts_at"]
            }}),
        ),
        spec(
            "get_business_info",
            "Hours, location, services and prices, in the owner's words.",
            json!({"type": "object", "properties": {}}),
        ),
        spec(
            "take_message",
            "Pass the caller's message to the business owner.",
            json!({"type": "object", "required": ["message"], "properties": {"message": {"type": "string"}}}),
        ),
        spec(
            "transfer_to_owner",
            "Connect the caller to a person at the business.",
            json!({"type": "object", "properties": {}}),
        ),
        spec("end_call", "Hang up after your goodbye has been said.", json!({"type": "object", "properties": {}})),
    ]
}

fn args<T: for<'de> Deserialize<'de>>(call: &ToolCallRequest, expected: &str) -> Result<T, String> {
    let raw = if call.arguments.trim().is_empty() { "{}" } else { call.arguments.as_str() };
    serde_json::from_str(raw)
        .map_err(|e| format!("the arguments of {} were not valid: {e}; expected {expected}", call.name))
}

#[derive(Deserialize)]
struct AvailabilityArgs {
    date: Option<String>,
    time: Option<String>,
    part_of_day: Option<String>,
}

#[derive(Deserialize)]
struct SlotArgs {
    option: Option<i64>,
    starts_at: Option<String>,
}

#[derive(Deserialize)]
struct BookArgs {
    #[serde(flatten)]
    slot: SlotArgs,
    #[serde(default)]
    name: String,
    phone: Option<String>,
    /// The name could not be had: book under the number instead of asking forever.
    #[serde(default)]
    under_number: bool,
}

#[derive(Deserialize)]
struct FindArgs {
    phone: Option<String>,
    confirmation_code: Option<String>,
}

#[derive(Deserialize)]
struct AppointmentArgs {
    appointment_id: AppointmentId,
}

#[derive(Deserialize)]
struct RescheduleArgs {
    appointment_id: AppointmentId,
    #[serde(flatten)]
    slot: SlotArgs,
}

#[derive(Deserialize)]
struct MessageArgs {
    message: String,
}

/// Which offered slot the arguments name.
fn chosen_slot(a: &SlotArgs, offered: &[Slot]) -> Result<Slot, String> {
    if let Some(option) = a.option {
        return usize::try_from(option)
            .ok()
            .and_then(|o| o.checked_sub(1))
            .and_then(|i| offered.get(i))
            .copied()
            .ok_or_else(|| format!("option {option} was not offered; offered options are 1 to {}", offered.len()));
    }
    if let Some(text) = &a.starts_at {
        let at = DateTime::parse_from_rfc3339(text)
            .map_err(|_| format!("starts_at {text:?} is not an RFC 3339 time; pass option instead"))?
            .with_timezone(&Utc);
        return offered
            .iter()
            .find(|s| s.starts_at == at)
            .copied()
            .ok_or_else(|| "that time was not one of the options; call check_availability first".to_owned());
    }
    Err("say which option: pass option (1, 2 or 3) from check_availability".to_owned())
}

/// Checks a model's tool call against what the conversation has offered so far.
pub fn parse(call: &ToolCallRequest, offered: &[Slot], caller_phone: Option<&str>) -> Result<ModelTool, String> {
    match call.name.as_str() {
        "check_availability" => {
            let a: AvailabilityArgs =
                args(call, r#"{"date": "YYYY-MM-DD", "time": "HH:MM", "part_of_day": "morning"}"#)?;
            let date = match a.date.as_deref().filter(|d| !d.is_empty()) {
                Some(d) => Some(
                    NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| format!("date {d:?} must be YYYY-MM-DD"))?,
                ),
                None => None,
            };
            let time = match a.time.as_deref().filter(|t| !t.is_empty()) {
                Some(t) => Some(
                    NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| format!("time {t:?} must be HH:MM, 24-hour"))?,
                ),
                None => None,
            };
            let part = match a.part_of_day.as_deref() {
                Some("morning") => Some(DayPart::Morning),
                Some("afternoon") => Some(DayPart::Afternoon),
                Some("evening") => Some(DayPart::Evening),
                Some("") | None => None,
                Some(other) => return Err(format!("part_of_day {other:?} must be morning, afternoon or evening")),
            };
            Ok(ModelTool::Call(ToolCall::CheckAvailability(Preference { date, time, part })))
        }
        "book_appointment" => {
            let a: BookArgs = args(call, r#"{"option": 1, "name": "Full Name"}"#)?;
            if a.name.trim().is_empty() && !a.under_number {
                return Err("ask the caller for their name before booking; if it cannot be understood after \
                            reading it back and asking to spell it, pass under_number: true"
                    .into());
            }
            let slot = chosen_slot(&a.slot, offered)?;
            let phone = match a.phone.as_deref().filter(|p| !p.trim().is_empty()) {
                Some(p) => PhoneNumber::parse(p).map_err(|e| format!("phone {p:?}: {e}"))?.as_str().to_owned(),
                None => caller_phone
                    .and_then(|p| PhoneNumber::parse(p).ok())
                    .map(|p| p.as_str().to_owned())
                    .ok_or_else(|| "the caller's number is unknown: ask for a phone number and pass it".to_owned())?,
            };
            Ok(ModelTool::Call(ToolCall::Book { slot, name: a.name.trim().to_owned(), phone }))
        }
        "find_appointment" => {
            let a: FindArgs = args(call, r#"{"phone": "+15551234567"} or {"confirmation_code": "K7M2QX"}"#)?;
            let code =
                a.confirmation_code.map(|c| c.replace([' ', ',', '-'], "").to_uppercase()).filter(|c| !c.is_empty());
            if let Some(c) = &code
                && !confirmation::is_code(c)
            {
                return Err(format!("{c:?} is not a confirmation code (6 characters)"));
            }
            let phone = a
                .phone
                .as_deref()
                .and_then(|p| PhoneNumber::parse(p).ok())
                .map(|p| p.as_str().to_owned())
                .or_else(|| caller_phone.map(str::to_owned));
            Ok(ModelTool::Call(ToolCall::FindAppointment { phone, code }))
        }
        "cancel_appointment" => {
            let a: AppointmentArgs = args(call, r#"{"appointment_id": 123}"#)?;
            Ok(ModelTool::Call(ToolCall::Cancel { appointment_id: a.appointment_id }))
        }
        "reschedule_appointment" => {
            let a: RescheduleArgs = args(call, r#"{"appointment_id": 123, "option": 1}"#)?;
            Ok(ModelTool::Reschedule { appointment_id: a.appointment_id, slot: chosen_slot(&a.slot, offered)? })
        }
        "get_business_info" => Ok(ModelTool::BusinessInfo),
        "take_message" => {
            let a: MessageArgs = args(call, r#"{"message": "what the caller said"}"#)?;
            if a.message.trim().is_empty() {
                return Err("the message is empty: ask the caller what they want to say".into());
            }
            Ok(ModelTool::Call(ToolCall::TakeMessage { text: a.message.trim().to_owned() }))
        }
        "transfer_to_owner" => Ok(ModelTool::Transfer),
        "end_call" => Ok(ModelTool::EndCall),
        other => Err(format!("there is no tool named {other:?}")),
    }
}

/// A tool result as the JSON the model reads.
pub fn result_json(result: &ToolResult, calendar: &Calendar, now: DateTime<Utc>, lang: Language) -> Value {
    let spoken = |s: &Slot| phrasing::describe_slot(calendar, s, now, lang);
    match result {
        ToolResult::Slots(slots) if slots.is_empty() => {
            json!({"options": [], "note": "no openings in the next weeks; offer to take a message"})
        }
        ToolResult::Slots(slots) => json!({"options": slots.iter().enumerate().map(|(i, s)| json!({
            "option": i + 1, "starts_at": s.starts_at.to_rfc3339(), "spoken": spoken(s)
        })).collect::<Vec<_>>()}),
        ToolResult::Booked { code, slot } => json!({
            "booked": true, "when": spoken(slot), "confirmation_code": code,
            "read_code_as": confirmation::spoken(code)
        }),
        ToolResult::SlotTaken => {
            json!({"booked": false, "error": "that time was just taken; call check_availability and offer new options"})
        }
        ToolResult::Found(Some(FoundAppointment { id, name, starts_at, ends_at, code })) => json!({"appointment": {
            "appointment_id": id, "name": name, "confirmation_code": code,
            "read_code_as": confirmation::spoken(code),
            "when": spoken(&Slot { starts_at: *starts_at, ends_at: *ends_at })
        }}),
        ToolResult::Found(None) => json!({"appointment": null, "note": "none found; ask for the confirmation code"}),
        ToolResult::Cancelled(done) => json!({"cancelled": done}),
        ToolResult::MessageTaken => json!({"message_taken": true}),
        ToolResult::Failed(tool) => {
            json!({"error": format!("{tool} failed on our side; apologise and offer to take a message")})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn call(name: &str, arguments: &str) -> ToolCallRequest {
        ToolCallRequest { id: "call_1".into(), name: name.into(), arguments: arguments.into() }
    }

    fn offered() -> Vec<Slot> {
        (0..3)
            .map(|i| {
                let starts_at = Utc.with_ymd_and_hms(2026, 11, 24, 14 + i, 0, 0).unwrap();
                Slot { starts_at, ends_at: starts_at + Duration::minutes(30) }
            })
            .collect()
    }

    #[test]
    fn every_tool_has_an_object_schema() {
        let specs = specs();
        assert_eq!(specs.len(), 9);
        assert!(specs.iter().all(|s| s.parameters["type"] == "object"));
    }

    #[test]
    fn availability_arguments_become_a_preference() {
        let t = parse(&call("check_availability", r#"{"date":"2026-11-25","time":"14:30"}"#), &[], None).unwrap();
        let ModelTool::Call(ToolCall::CheckAvailability(p)) = t else { panic!("{t:?}") };
        assert_eq!(p.date, NaiveDate::from_ymd_opt(2026, 11, 25));
        assert_eq!(p.time, NaiveTime::from_hms_opt(14, 30, 0));
        assert!(parse(&call("check_availability", ""), &[], None).is_ok(), "no arguments is fine");
    }

    #[test]
    fn booking_picks_an_offered_option_and_defaults_to_the_callers_number() {
        let t = parse(&call("book_appointment", r#"{"option":2,"name":"Ann Lee"}"#), &offered(), Some("+15557654321"))
            .unwrap();
        assert_eq!(
            t,
            ModelTool::Call(ToolCall::Book {
                slot: offered()[1],
                name: "Ann Lee".into(),
                phone: "+15557654321".into()
            })
        );
        let by_time = format!(r#"{{"starts_at":"{}","name":"Ann"}}"#, offered()[2].starts_at.to_rfc3339());
        assert!(matches!(parse(&call("book_appointment", &by_time), &offered(), Some("+15557654321")),
            Ok(ModelTool::Call(ToolCall::Book { slot, .. })) if slot == offered()[2]));
    }

    #[test]
    fn a_name_that_could_not_be_had_books_under_the_callers_number() {
        let args = r#"{"option":1,"under_number":true}"#;
        let t = parse(&call("book_appointment", args), &offered(), Some("+15557654321")).unwrap();
        assert_eq!(
            t,
            ModelTool::Call(ToolCall::Book { slot: offered()[0], name: String::new(), phone: "+15557654321".into() })
        );
    }

    #[test]
    fn bad_arguments_get_messages_the_model_can_act_on() {
        let cases = [
            (call("book_appointment", r#"{"option":2"#), "not valid"),
            (call("book_appointment", r#"{"option":7,"name":"Ann"}"#), "was not offered"),
            (call("book_appointment", r#"{"name":"Ann"}"#), "which option"),
            (call("book_appointment", r#"{"option":1,"name":" "}"#), "under_number"),
            (call("check_availability", r#"{"date":"next tuesday"}"#), "YYYY-MM-DD"),
            (call("check_availability", r#"{"part_of_day":"night"}"#), "part_of_day"),
            (call("find_appointment", r#"{"confirmation_code":"hello"}"#), "not a confirmation code"),
            (call("take_message", r#"{"message":""}"#), "empty"),
            (call("launch_rocket", "{}"), "no tool named"),
        ];
        for (c, expected) in cases {
            let err = parse(&c, &offered(), Some("+15557654321")).expect_err(&c.arguments);
            assert!(err.contains(expected), "{err:?} should mention {expected:?}");
        }
    }

    #[test]
    fn results_read_naturally() {
        let cal = Calendar {
            tz: chrono_tz::America::New_York,
            hours: crate::domain::scheduling::BusinessHours::parse("mon-fri", "09:00-17:00").unwrap(),
            slot_minutes: 30,
            buffer_minutes: 0,
        };
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 15, 0, 0).unwrap();
        let slots = result_json(&ToolResult::Slots(offered()), &cal, now, Language::English);
        assert_eq!(slots["options"].as_array().unwrap().len(), 3);
        assert_eq!(slots["options"][1]["option"], 2);
        let booked = result_json(
            &ToolResult::Booked { code: "K7M2QX".into(), slot: offered()[0] },
            &cal,
            now,
            Language::English,
        );
        assert_eq!(booked["read_code_as"], "K, 7, M, 2, Q, X");
        let found = FoundAppointment {
            id: AppointmentId(7),
            name: "Ann Lee".into(),
            starts_at: offered()[0].starts_at,
            ends_at: offered()[0].ends_at,
            code: "K7M2QX".into(),
        };
        let found = result_json(&ToolResult::Found(Some(found)), &cal, now, Language::English);
        assert_eq!(found["appointment"]["read_code_as"], "K, 7, M, 2, Q, X");
    }
}
