//! Google's JSON, as sent and received; converted to the client's types at once.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{APPOINTMENT_PROPERTY, BusySpan, CalendarEvent, Channel, EventDraft, EventTime, EventsPage, GoogleError};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Event {
    id: String,
    summary: String,
    description: String,
    start: Time,
    end: Time,
    /// Patching a cancelled event back to `confirmed` restores it.
    status: &'static str,
    extended_properties: Properties,
}

#[derive(Debug, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct Time {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    date_time: Option<DateTime<chrono::FixedOffset>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time_zone: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, Default)]
pub(super) struct Properties {
    #[serde(default)]
    private: HashMap<String, String>,
}

impl From<&EventDraft> for Event {
    fn from(d: &EventDraft) -> Self {
        let at = |t: DateTime<Utc>| Time {
            date_time: Some(t.fixed_offset()),
            date: None,
            time_zone: Some(d.time_zone.clone()),
        };
        Event {
            id: d.id.clone(),
            summary: d.summary.clone(),
            description: d.description.clone(),
            start: at(d.starts_at),
            end: at(d.ends_at),
            status: "confirmed",
            extended_properties: Properties {
                private: HashMap::from([(APPOINTMENT_PROPERTY.to_owned(), d.appointment.clone())]),
            },
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListedEvent {
    id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    transparency: String,
    #[serde(default)]
    summary: String,
    start: Option<Time>,
    end: Option<Time>,
    #[serde(default)]
    extended_properties: Option<Properties>,
}

fn time(t: Option<Time>) -> Option<EventTime> {
    let t = t?;
    match (t.date_time, t.date) {
        (Some(at), _) => Some(EventTime::At(at.with_timezone(&Utc))),
        (None, Some(day)) => Some(EventTime::Day(day)),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EventList {
    #[serde(default)]
    items: Vec<ListedEvent>,
    next_page_token: Option<String>,
    next_sync_token: Option<String>,
}

impl From<EventList> for EventsPage {
    fn from(list: EventList) -> Self {
        let events = list
            .items
            .into_iter()
            .map(|e| CalendarEvent {
                appointment: e.extended_properties.and_then(|mut p| p.private.remove(APPOINTMENT_PROPERTY)),
                cancelled: e.status == "cancelled",
                transparent: e.transparency == "transparent",
                starts: time(e.start),
                ends: time(e.end),
                summary: e.summary,
                id: e.id,
            })
            .collect();
        EventsPage { events, next_page_token: list.next_page_token, next_sync_token: list.next_sync_token }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FreeBusyRequest {
    time_min: DateTime<Utc>,
    time_max: DateTime<Utc>,
    time_zone: &'static str,
    items: Vec<CalendarRef>,
}

#[derive(Debug, Serialize)]
struct CalendarRef {
    id: String,
}

impl FreeBusyRequest {
    pub(super) fn new(calendar: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        Self { time_min: from, time_max: to, time_zone: "UTC", items: vec![CalendarRef { id: calendar.to_owned() }] }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct FreeBusyResponse {
    #[serde(default)]
    calendars: HashMap<String, FreeBusyCalendar>,
}

#[derive(Debug, Deserialize)]
struct FreeBusyCalendar {
    #[serde(default)]
    busy: Vec<FreeBusySpan>,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
struct FreeBusySpan {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl FreeBusyResponse {
    /// The calendar's busy spans; its per-calendar errors (sent inside a 200) are a refusal.
    pub(super) fn busy_for(mut self, calendar: &str) -> Result<Vec<BusySpan>, GoogleError> {
        let Some(found) = self.calendars.remove(calendar) else {
            return Err(GoogleError::Rejected {
                status: 200,
                message: format!("freeBusy did not answer for {calendar}"),
            });
        };
        if let Some(e) = found.errors.first() {
            return Err(GoogleError::Rejected { status: 200, message: format!("freeBusy: {}", e.reason) });
        }
        Ok(found.busy.into_iter().map(|b| BusySpan { starts_at: b.start, ends_at: b.end }).collect())
    }
}

#[derive(Debug, Serialize)]
pub(super) struct WatchRequest<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub address: &'a str,
    pub token: &'a str,
    pub expiration: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ChannelResponse {
    id: String,
    resource_id: String,
    /// Milliseconds since the epoch, as a string.
    expiration: Option<String>,
}

impl From<ChannelResponse> for Channel {
    fn from(c: ChannelResponse) -> Self {
        let expires_at =
            c.expiration.and_then(|ms| ms.parse::<i64>().ok()).and_then(DateTime::<Utc>::from_timestamp_millis);
        Channel { id: c.id, resource_id: c.resource_id, expires_at }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StopRequest<'a> {
    pub id: &'a str,
    pub resource_id: &'a str,
}

#[derive(Debug, Deserialize)]
pub(super) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
pub(super) struct ErrorDetail {
    #[serde(default)]
    errors: Vec<ErrorItem>,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    reason: String,
}

impl ErrorBody {
    pub(super) fn reasons(&self) -> Vec<String> {
        self.error.errors.iter().map(|e| e.reason.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_page_becomes_events_with_ours_marked() {
        let json = r#"{"kind":"calendar#events","nextSyncToken":"sync-2","items":[
            {"id":"own1","status":"confirmed","summary":"Dentist","start":{"dateTime":"2026-03-10T09:00:00-05:00","timeZone":"America/Chicago"},"end":{"dateTime":"2026-03-10T10:00:00-05:00"}},
            {"id":"ours","status":"confirmed","start":{"dateTime":"2026-03-10T11:00:00Z"},"end":{"dateTime":"2026-03-10T11:30:00Z"},"extendedProperties":{"private":{"ringlyproAppointment":"42"}}},
            {"id":"gone","status":"cancelled"},
            {"id":"day","status":"confirmed","transparency":"transparent","start":{"date":"2026-03-11"},"end":{"date":"2026-03-12"}}]}"#;
        let page: EventsPage = serde_json::from_str::<EventList>(json).unwrap().into();
        assert_eq!(page.next_sync_token.as_deref(), Some("sync-2"));
        assert_eq!(page.events.len(), 4);
        let own = &page.events[0];
        assert_eq!(own.starts, Some(EventTime::At("2026-03-10T14:00:00Z".parse().unwrap())));
        assert_eq!(own.appointment, None);
        assert_eq!(page.events[1].appointment.as_deref(), Some("42"));
        assert!(page.events[2].cancelled);
        assert!(page.events[3].transparent);
        assert_eq!(page.events[3].starts, Some(EventTime::Day(NaiveDate::from_ymd_opt(2026, 3, 11).unwrap())));
    }

    #[test]
    fn free_busy_errors_inside_a_200_are_refusals() {
        let ok = r#"{"kind":"calendar#freeBusy","calendars":{"primary":{"busy":[{"start":"2026-03-10T14:00:00Z","end":"2026-03-10T15:00:00Z"}]}}}"#;
        let spans = serde_json::from_str::<FreeBusyResponse>(ok).unwrap().busy_for("primary").unwrap();
        assert_eq!(spans.len(), 1);
        let bad = r#"{"calendars":{"primary":{"busy":[],"errors":[{"domain":"global","reason":"notFound"}]}}}"#;
        assert!(serde_json::from_str::<FreeBusyResponse>(bad).unwrap().busy_for("primary").is_err());
    }
}
