//! The dialogue's tools run against the business: availability, booking, finding and
//! cancelling appointments, taking messages. A failed tool is logged and recorded with the
//! call, and answered as a failure the dialogue can apologise for; it never ends the call.

use chrono::Utc;

use super::{CallActor, CallerTiming};
use crate::dialogue::policy::{FoundAppointment, Step, ToolCall, ToolResult};
use crate::domain::appointments::BookingSource;
use crate::domain::scheduling::Slot;
use crate::services::booking::{self, BookingError, BookingRequest};
use crate::services::calendar_sync::BusySource;

impl CallActor {
    /// Runs the local engine's tools until it has something to say, then starts saying it.
    pub(super) async fn act(&mut self, mut step: Step, timing: Option<CallerTiming>) {
        for _ in 0..8 {
            match step {
                Step::Tool(call) => {
                    let result = Box::pin(self.run_tool(call)).await;
                    step = self.with_policy(|p, ctx| p.on_tool_result(ctx, result));
                }
                Step::Reply { text, end, transfer } => {
                    self.speak(text, end, transfer, timing).await;
                    return;
                }
            }
        }
        tracing::error!(call_sid = %self.setup.call_sid, "dialogue engine kept calling tools; ending the turn");
    }

    pub(super) async fn run_tool(&mut self, call: ToolCall) -> ToolResult {
        let deps = &self.deps;
        let tenant = &self.setup.tenant;
        let now = Utc::now();
        match call {
            ToolCall::CheckAvailability(pref) => {
                let checked = match &deps.calendar {
                    Some(calendar) => booking::availability_checked(&deps.pool, calendar, tenant, &pref, now, 3).await,
                    None => booking::availability(&deps.pool, tenant, &pref, now, 3)
                        .await
                        .map(|s| (s, BusySource::NotConnected)),
                };
                match checked {
                    Ok((slots, source)) => {
                        if let Some(note) = source.fallback_note() {
                            self.failures.push(format!("check_availability: {note}"));
                        }
                        ToolResult::Slots(slots)
                    }
                    Err(e) => self.tool_failed("check_availability", e),
                }
            }
            ToolCall::Book { slot, name, phone } => {
                let req = self.booking_request(slot, name, phone);
                match booking::book(&deps.pool, tenant, &req, now).await {
                    Ok(booked) => ToolResult::Booked {
                        code: booked.appointment.confirmation_code,
                        slot: Slot { starts_at: booked.appointment.starts_at, ends_at: booked.appointment.ends_at },
                    },
                    Err(BookingError::SlotTaken) | Err(BookingError::NotBookable) => ToolResult::SlotTaken,
                    Err(e) => self.tool_failed("book_appointment", anyhow::Error::from(e)),
                }
            }
            ToolCall::FindAppointment { phone, code } => {
                match booking::find(&deps.pool, tenant, phone.as_deref(), code.as_deref(), now).await {
                    Ok(found) => ToolResult::Found(found.map(|a| FoundAppointment {
                        id: a.id,
                        name: a.customer_name,
                        starts_at: a.starts_at,
                        ends_at: a.ends_at,
                        code: a.confirmation_code,
                    })),
                    Err(e) => self.tool_failed("find_appointment", e),
                }
            }
            ToolCall::Cancel { appointment_id } => {
                match booking::cancel(&deps.pool, tenant, appointment_id, Some(self.setup.call_id)).await {
                    Ok(done) => ToolResult::Cancelled(done),
                    Err(e) => self.tool_failed("cancel_appointment", e),
                }
            }
            ToolCall::TakeMessage { text } => {
                match booking::take_message(&deps.pool, tenant, Some(self.setup.call_id), &self.setup.caller, &text)
                    .await
                {
                    Ok(()) => ToolResult::MessageTaken,
                    Err(e) => self.tool_failed("take_message", e),
                }
            }
        }
    }

    pub(super) fn booking_request(&self, slot: Slot, name: String, phone: String) -> BookingRequest {
        BookingRequest {
            name,
            phone,
            slot,
            call_id: Some(self.setup.call_id),
            language: self.policy.language,
            source: BookingSource::voice(self.policy.language),
        }
    }

    pub(super) fn tool_failed(&mut self, tool: &str, e: anyhow::Error) -> ToolResult {
        tracing::error!(call_sid = %self.setup.call_sid, tool, error = format!("{e:#}"), "tool failed");
        self.failures.push(format!("{tool}: {e}"));
        ToolResult::Failed(tool.to_owned())
    }
}
