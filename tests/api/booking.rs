//! Booking guarantees: no double booking under concurrency, per-tenant calendars.

use std::sync::Arc;

use chrono::{Duration, DurationRound, Utc};
use ringlypro::domain::appointments::BookingSource;
use ringlypro::domain::language::Language;
use ringlypro::domain::scheduling::{Preference, Slot};
use ringlypro::services::booking::{self, BookingError, BookingRequest};
use ringlypro::storage::postgres::tenants;

use crate::helpers::{add_tenant, fresh_database};

fn slot_tomorrow() -> Slot {
    let starts_at = (Utc::now() + Duration::days(1)).duration_trunc(Duration::hours(1)).unwrap();
    Slot { starts_at, ends_at: starts_at + Duration::minutes(30) }
}

fn request(phone: &str, slot: Slot) -> BookingRequest {
    BookingRequest {
        name: "Pat Caller".into(),
        phone: phone.into(),
        slot,
        call_id: None,
        language: Language::English,
        source: BookingSource::VoiceBooking,
    }
}

#[tokio::test]
async fn a_hundred_concurrent_attempts_at_one_slot_book_exactly_one() {
    let (_, pool) = fresh_database().await;
    let id = add_tenant(&pool, "Bright Smile Dental", "+15550001111", "America/New_York").await;
    let tenant = Arc::new(tenants::find(&pool, id).await.unwrap().unwrap());
    let slot = slot_tomorrow();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (pool, tenant) = (pool.clone(), tenant.clone());
        tasks.push(tokio::spawn(async move {
            booking::book(&pool, &tenant, &request(&format!("+1555700{i:04}"), slot), Utc::now()).await
        }));
    }
    let mut booked = 0;
    let mut taken = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => booked += 1,
            Err(BookingError::SlotTaken) => taken += 1,
            Err(e) => panic!("unexpected error: {e:#}"),
        }
    }
    assert_eq!((booked, taken), (1, 99));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM appointments WHERE client_id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
    // The losers left nothing behind: one contact, two confirmation texts.
    let messages: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE client_id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(messages, 2);
}

#[tokio::test]
async fn two_tenants_can_book_the_same_wall_clock_time() {
    let (_, pool) = fresh_database().await;
    let a = add_tenant(&pool, "Dentist A", "+15550001111", "America/New_York").await;
    let b = add_tenant(&pool, "Dentist B", "+15550002222", "America/New_York").await;
    let slot = slot_tomorrow();
    for id in [a, b] {
        let tenant = tenants::find(&pool, id).await.unwrap().unwrap();
        let booked =
            booking::book(&pool, &tenant, &request("+15557654321", slot), Utc::now()).await.expect("each tenant books");
        assert_eq!(booked.appointment.client_id, id);
        assert_eq!(booked.appointment.starts_at, slot.starts_at);
    }
}

#[tokio::test]
async fn a_taken_slot_is_refused_until_its_appointment_is_cancelled() {
    let (_, pool) = fresh_database().await;
    let id = add_tenant(&pool, "Salon", "+15550003333", "America/Los_Angeles").await;
    let tenant = tenants::find(&pool, id).await.unwrap().unwrap();
    let slot = slot_tomorrow();
    let first = booking::book(&pool, &tenant, &request("+15557654321", slot), Utc::now()).await.unwrap();
    assert!(matches!(
        booking::book(&pool, &tenant, &request("+15557650000", slot), Utc::now()).await,
        Err(BookingError::SlotTaken)
    ));
    assert!(booking::cancel(&pool, &tenant, first.appointment.id, None).await.unwrap());
    booking::book(&pool, &tenant, &request("+15557650000", slot), Utc::now()).await.expect("freed by the cancellation");
}

#[tokio::test]
async fn the_database_refuses_overlapping_appointments_whatever_the_caller_checked() {
    use ringlypro::storage::postgres::appointments::{self, InsertError, NewAppointment};
    let (_, pool) = fresh_database().await;
    let id = add_tenant(&pool, "Salon", "+15550003333", "America/Los_Angeles").await;
    let slot = slot_tomorrow();
    let new = |starts_at| NewAppointment {
        client_id: id,
        contact_id: None,
        call_id: None,
        customer_name: "X",
        customer_phone: "+15557654321",
        starts_at,
        ends_at: starts_at + Duration::minutes(30),
        source: BookingSource::Manual,
    };
    let mut conn = pool.acquire().await.unwrap();
    appointments::insert(&mut conn, &new(slot.starts_at), "AAAAAA").await.unwrap();
    let overlapping = appointments::insert(&mut conn, &new(slot.starts_at + Duration::minutes(15)), "CCCCCC").await;
    assert!(matches!(overlapping, Err(InsertError::SlotTaken)));
    let same_code = appointments::insert(&mut conn, &new(slot.starts_at + Duration::hours(3)), "AAAAAA").await;
    assert!(matches!(same_code, Err(InsertError::CodeTaken)));
    // Back to back is fine: ranges are half-open.
    appointments::insert(&mut conn, &new(slot.ends_at), "DDDDDD").await.unwrap();
}

#[tokio::test]
async fn a_time_off_the_tenants_grid_is_not_bookable() {
    let (_, pool) = fresh_database().await;
    let id = add_tenant(&pool, "Salon", "+15550003333", "America/Los_Angeles").await;
    let tenant = tenants::find(&pool, id).await.unwrap().unwrap();
    let slot = slot_tomorrow();
    let odd = Slot { starts_at: slot.starts_at + Duration::minutes(7), ends_at: slot.ends_at + Duration::minutes(7) };
    assert!(matches!(
        booking::book(&pool, &tenant, &request("+15557654321", odd), Utc::now()).await,
        Err(BookingError::NotBookable)
    ));
}

#[tokio::test]
async fn availability_skips_booked_times_and_offers_three() {
    let (_, pool) = fresh_database().await;
    let id = add_tenant(&pool, "Clinic", "+15550004444", "America/New_York").await;
    let tenant = tenants::find(&pool, id).await.unwrap().unwrap();
    let now = Utc::now();
    let offered = booking::availability(&pool, &tenant, &Preference::default(), now, 3).await.unwrap();
    assert_eq!(offered.len(), 3);
    booking::book(&pool, &tenant, &request("+15557654321", offered[0]), now).await.unwrap();
    let again = booking::availability(&pool, &tenant, &Preference::default(), now, 3).await.unwrap();
    assert_eq!(again.len(), 3);
    assert!(!again.contains(&offered[0]), "a booked slot is never offered again");
}

#[tokio::test]
async fn a_booking_queues_texts_to_the_caller_and_the_owner() {
    let (_, pool) = fresh_database().await;
    let id = add_tenant(&pool, "Bright Smile Dental", "+15550001111", "America/New_York").await;
    let tenant = tenants::find(&pool, id).await.unwrap().unwrap();
    let booked = booking::book(&pool, &tenant, &request("+15557654321", slot_tomorrow()), Utc::now()).await.unwrap();
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT to_number, body, status FROM messages WHERE client_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, "+15557654321");
    assert!(rows[0].1.contains(&booked.appointment.confirmation_code));
    assert!(rows[0].1.contains("CANCEL"));
    assert_eq!(rows[1].0, "+15551230000");
    assert!(rows.iter().all(|r| r.2 == "queued"));
}
