//! The GoHighLevel client against a fake that follows the LeadConnector API: an install's
//! code traded for tokens once, refresh tokens that rotate, contacts upserted by phone,
//! appointments written and moved in the location's calendar, and errors as GoHighLevel
//! shapes them.

use chrono::{FixedOffset, TimeZone};
use ringlypro::vendors::gohighlevel::{AppointmentWrite, ContactUpsert, GhlError, GoHighLevel};
use url::Url;

use crate::fakes::gohighlevel::{CLIENT_ID, CLIENT_SECRET, FakeGoHighLevel};

fn client(fake: &FakeGoHighLevel) -> GoHighLevel {
    GoHighLevel::new(&Url::parse(&fake.base_url).unwrap())
}

fn contact(location: &str, phone: &str, first: &str) -> ContactUpsert {
    ContactUpsert {
        location_id: location.into(),
        phone: phone.into(),
        first_name: Some(first.into()),
        last_name: None,
        email: None,
        source: "RinglyPro call".into(),
    }
}

#[tokio::test]
async fn an_install_code_works_once_and_each_refresh_token_only_once() {
    let fake = FakeGoHighLevel::start().await;
    let ghl = client(&fake);
    let code = fake.install("loc-1");
    let tokens = ghl.exchange_code(CLIENT_ID, CLIENT_SECRET, &code, "https://app/cb").await.unwrap();
    assert_eq!(tokens.location_id.as_deref(), Some("loc-1"));
    assert_eq!(tokens.expires_in, 86399);
    let again = ghl.exchange_code(CLIENT_ID, CLIENT_SECRET, &code, "https://app/cb").await.unwrap_err();
    assert!(matches!(again, GhlError::Unauthorized(_)), "{again:?}");

    let next = ghl.refresh(CLIENT_ID, CLIENT_SECRET, &tokens.refresh_token).await.unwrap();
    assert_ne!(next.refresh_token, tokens.refresh_token, "the refresh token rotates");
    let reused = ghl.refresh(CLIENT_ID, CLIENT_SECRET, &tokens.refresh_token).await.unwrap_err();
    assert!(matches!(&reused, GhlError::Unauthorized(m) if m.contains("invalid")), "{reused:?}");
    assert!(!reused.is_retryable());
    ghl.refresh(CLIENT_ID, CLIENT_SECRET, &next.refresh_token).await.unwrap();
}

#[tokio::test]
async fn a_caller_is_upserted_by_phone_and_booked_then_moved_in_the_calendar() {
    let fake = FakeGoHighLevel::start().await;
    let ghl = client(&fake);
    let tokens = ghl.exchange_code(CLIENT_ID, CLIENT_SECRET, &fake.install("loc-1"), "https://app/cb").await.unwrap();
    let token = tokens.access_token.as_str();
    let first = ghl.upsert_contact(token, &contact("loc-1", "+15557654321", "Xiomara")).await.unwrap();
    assert!(first.created);
    let second = ghl.upsert_contact(token, &contact("loc-1", "+15557654321", "Xiomara")).await.unwrap();
    assert_eq!((second.id.as_str(), second.created), (first.id.as_str(), false), "the same person, not a duplicate");
    assert_eq!(fake.contacts().len(), 1);

    let calendars = ghl.calendars(token, "loc-1").await.unwrap();
    assert_eq!(calendars[0].id, "cal-loc-1");
    let chicago = FixedOffset::west_opt(6 * 3600).unwrap();
    let mut write = AppointmentWrite {
        calendar_id: calendars[0].id.clone(),
        location_id: "loc-1".into(),
        contact_id: first.id.clone(),
        start: chicago.with_ymd_and_hms(2031, 3, 4, 10, 0, 0).unwrap(),
        end: chicago.with_ymd_and_hms(2031, 3, 4, 10, 30, 0).unwrap(),
        title: "Cleaning: Xiomara".into(),
        status: "confirmed".into(),
    };
    let id = ghl.create_appointment(token, &write).await.unwrap();
    write.start = chicago.with_ymd_and_hms(2031, 3, 5, 14, 0, 0).unwrap();
    write.end = chicago.with_ymd_and_hms(2031, 3, 5, 14, 30, 0).unwrap();
    ghl.update_appointment(token, &id, &write).await.unwrap();
    write.status = "cancelled".into();
    ghl.update_appointment(token, &id, &write).await.unwrap();
    let held = fake.appointments();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].start, "2031-03-05T14:00:00-06:00");
    assert_eq!(held[0].status, "cancelled");
    assert_eq!(held[0].contact_id, first.id);
}

#[tokio::test]
async fn limits_outages_and_dead_tokens_come_back_as_typed_errors() {
    let fake = FakeGoHighLevel::start().await;
    let ghl = client(&fake);
    let tokens = ghl.exchange_code(CLIENT_ID, CLIENT_SECRET, &fake.install("loc-1"), "https://app/cb").await.unwrap();
    let token = tokens.access_token.as_str();
    fake.rate_limit_next(1);
    let limited = ghl.upsert_contact(token, &contact("loc-1", "+15550001234", "Ann")).await.unwrap_err();
    assert_eq!(limited, GhlError::RateLimited { retry_after: std::time::Duration::from_secs(10) });
    assert!(limited.is_retryable());
    fake.fail_next(1);
    let down = ghl.upsert_contact(token, &contact("loc-1", "+15550001234", "Ann")).await.unwrap_err();
    assert!(matches!(down, GhlError::Api { status: 502, .. }) && down.is_retryable(), "{down:?}");
    let other_location = ghl.upsert_contact(token, &contact("loc-2", "+15550001234", "Ann")).await.unwrap_err();
    assert!(matches!(&other_location, GhlError::Api { status: 403, message } if message.contains("location")));
    fake.expire_access_tokens();
    let expired = ghl.calendars(token, "loc-1").await.unwrap_err();
    assert!(matches!(&expired, GhlError::Unauthorized(m) if m.contains("Invalid token")), "{expired:?}");
    let unreachable = GoHighLevel::new(&Url::parse("http://127.0.0.1:9").unwrap());
    let gone = unreachable.calendars(token, "loc-1").await.unwrap_err();
    assert!(matches!(gone, GhlError::Transport(_)) && gone.is_retryable());
}
