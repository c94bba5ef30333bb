//! Reminders: each one queued once however many instances sweep, none for a cancelled
//! appointment or an old time, quiet hours in the tenant's zone, the caller's language,
//! and the wall clock kept across daylight-saving changes. Sweeps run at chosen instants
//! on the application role's connections, as the worker runs them.

use chrono::{DateTime, Duration, Utc};
use ringlypro::domain::appointments::{AppointmentStatus, BookingSource};
use ringlypro::domain::language::Language;
use ringlypro::domain::scheduling::Slot;
use ringlypro::services::booking::{self, BookingRequest};
use ringlypro::services::reminders;
use ringlypro::storage::postgres::appointments::{self, Appointment};
use ringlypro::storage::postgres::tenants::{self, Tenant};
use ringlypro::storage::postgres::{self, begin_tenant};
use sqlx::PgPool;

use crate::helpers::{add_tenant, fresh_database, ny};

/// The owner's pool (for looking), the application role's pool (for acting), a tenant in
/// New York open every day, and the database's URL.
async fn setup() -> (PgPool, PgPool, Tenant, String) {
    let (url, owner) = fresh_database().await;
    let app = postgres::connect_as_app(&url, 5).await.unwrap();
    let id = add_tenant(&owner, "Bright Smile Dental", "+15550001111", "America/New_York").await;
    let tenant = tenants::find(&owner, id).await.unwrap().unwrap();
    (owner, app, tenant, url)
}

/// Books `starts_at` from a call in `language`, three days ahead of it.
async fn book(
    pool: &PgPool,
    tenant: &Tenant,
    phone: &str,
    starts_at: DateTime<Utc>,
    language: Language,
) -> Appointment {
    let req = BookingRequest {
        name: "Ann Lee".into(),
        phone: phone.into(),
        slot: Slot { starts_at, ends_at: starts_at + Duration::minutes(30) },
        call_id: None,
        language,
        source: BookingSource::voice(language),
    };
    booking::book(pool, tenant, &req, starts_at - Duration::days(3)).await.expect("booked").appointment
}

/// The reminder texts queued so far: (kind, to, body), oldest first.
async fn reminder_texts(pool: &PgPool) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT kind, to_number, body FROM messages WHERE kind IN ('reminder_24h', 'reminder_1h') \
         AND status = 'queued' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn sweep(pool: &PgPool, now: DateTime<Utc>) -> usize {
    reminders::sweep(pool, now).await.expect("sweep runs")
}

#[tokio::test]
async fn two_instances_sweeping_at_once_queue_each_reminder_once() {
    let (owner, app, tenant, url) = setup().await;
    // A second instance: its own connections to the same database.
    let other = postgres::connect_as_app(&url, 5).await.unwrap();
    book(&app, &tenant, "+15557654321", ny(2027, 6, 10, 14, 0), Language::English).await;
    for now in [ny(2027, 6, 9, 14, 1), ny(2027, 6, 10, 13, 1)] {
        let mut queued = 0;
        for _ in 0..3 {
            let (a, b) = tokio::join!(sweep(&app, now), sweep(&other, now));
            queued += a + b;
        }
        assert_eq!(queued, 1, "one reminder queued at {now} across both instances");
    }
    let texts = reminder_texts(&owner).await;
    let kinds: Vec<&str> = texts.iter().map(|(kind, _, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["reminder_24h", "reminder_1h"]);
    assert!(texts.iter().all(|(_, to, _)| to == "+15557654321"));
    let (_, _, day_before) = &texts[0];
    assert_eq!(
        day_before,
        "Bright Smile Dental: a reminder of your appointment tomorrow, Thursday June 10th at 2 PM. \
         Reply CONFIRM to confirm or CANCEL to cancel."
    );
    // A restart (a later sweep) sends nothing again.
    assert_eq!(sweep(&app, ny(2027, 6, 10, 13, 20)).await, 0);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM appointment_reminders").fetch_one(&owner).await.unwrap();
    assert_eq!(rows, 2);
}

#[tokio::test]
async fn a_cancelled_appointment_gets_no_reminders() {
    let (owner, app, tenant, _) = setup().await;
    let appointment = book(&app, &tenant, "+15557654321", ny(2027, 6, 10, 14, 0), Language::English).await;
    assert!(booking::cancel(&app, &tenant, appointment.id, None).await.unwrap());
    for now in [ny(2027, 6, 9, 14, 1), ny(2027, 6, 10, 13, 1)] {
        assert_eq!(sweep(&app, now).await, 0);
    }
    assert!(reminder_texts(&owner).await.is_empty());
}

#[tokio::test]
async fn a_moved_appointment_is_reminded_of_its_new_time_only() {
    let (owner, app, tenant, _) = setup().await;
    let appointment = book(&app, &tenant, "+15557654321", ny(2027, 6, 10, 14, 0), Language::English).await;
    assert_eq!(sweep(&app, ny(2027, 6, 9, 14, 1)).await, 1, "the old time's day-before reminder");
    let moved_to = ny(2027, 6, 12, 10, 0);
    let mut tx = begin_tenant(&app, tenant.id).await.unwrap();
    appointments::change(
        &mut tx,
        tenant.id,
        appointment.id,
        moved_to,
        moved_to + Duration::minutes(30),
        AppointmentStatus::Confirmed,
    )
    .await
    .unwrap()
    .expect("moved");
    tx.commit().await.unwrap();
    // The old time's hour-before reminder never goes out.
    assert_eq!(sweep(&app, ny(2027, 6, 10, 13, 1)).await, 0);
    assert_eq!(sweep(&app, ny(2027, 6, 11, 10, 1)).await, 1);
    assert_eq!(sweep(&app, ny(2027, 6, 12, 9, 1)).await, 1);
    let texts = reminder_texts(&owner).await;
    assert_eq!(texts.len(), 3);
    assert!(texts[0].2.contains("June 10th"), "{}", texts[0].2);
    assert!(texts[1].2.contains("tomorrow, Saturday June 12th at 10 AM"), "{}", texts[1].2);
    assert!(texts[2].2.contains("today at 10 AM") && texts[2].0 == "reminder_1h", "{:?}", texts[2]);
}

#[tokio::test]
async fn quiet_hours_send_the_day_before_reminder_the_evening_before_and_skip_the_hour_before() {
    let (owner, app, tenant, _) = setup().await;
    book(&app, &tenant, "+15557654321", ny(2027, 6, 10, 7, 30), Language::English).await;
    // 07:30 the day before is in quiet hours: nothing then...
    assert_eq!(sweep(&app, ny(2027, 6, 9, 7, 31)).await, 0);
    // ...because it went out at 20:30 the evening before.
    assert_eq!(sweep(&app, ny(2027, 6, 8, 20, 29)).await, 0);
    assert_eq!(sweep(&app, ny(2027, 6, 8, 20, 31)).await, 1);
    // The hour before (06:30) is in quiet hours: skipped, also once they end.
    assert_eq!(sweep(&app, ny(2027, 6, 10, 6, 31)).await, 0);
    assert_eq!(sweep(&app, ny(2027, 6, 10, 7, 1)).await, 0);
    let texts = reminder_texts(&owner).await;
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].0, "reminder_24h");
    assert!(texts[0].2.contains("Thursday June 10th at 7:30 AM"), "{}", texts[0].2);
}

#[tokio::test]
async fn a_spanish_caller_is_reminded_in_spanish() {
    let (owner, app, tenant, _) = setup().await;
    let appointment = book(&app, &tenant, "+15557654321", ny(2027, 6, 10, 14, 0), Language::Spanish).await;
    let (appointment_language, contact_language): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT a.language, c.language FROM appointments a JOIN contacts c ON c.id = a.contact_id WHERE a.id = $1",
    )
    .bind(appointment.id)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!((appointment_language.as_deref(), contact_language.as_deref()), (Some("es"), Some("es")));
    assert_eq!(sweep(&app, ny(2027, 6, 9, 14, 1)).await, 1);
    let texts = reminder_texts(&owner).await;
    assert_eq!(
        texts[0].2,
        "Bright Smile Dental: le recordamos su cita mañana, jueves 10 de junio a las 2 de la tarde. \
         Responda CONFIRMAR para confirmarla o CANCELAR para cancelarla."
    );
}

#[tokio::test]
async fn the_day_before_reminder_keeps_the_wall_clock_across_spring_forward_and_fall_back() {
    let (owner, app, tenant, _) = setup().await;
    // Clocks spring forward in the night before Sunday 14 March 2027 and fall back in the
    // night before Sunday 7 November 2027.
    book(&app, &tenant, "+15557654321", ny(2027, 3, 14, 10, 0), Language::English).await;
    book(&app, &tenant, "+15557650000", ny(2027, 11, 7, 10, 0), Language::English).await;
    // Exactly 24 hours before is 09:00 on Saturday 13 March (Sunday is an hour short)...
    assert_eq!(ny(2027, 3, 14, 10, 0) - Duration::hours(24), ny(2027, 3, 13, 9, 0));
    assert_eq!(sweep(&app, ny(2027, 3, 13, 9, 59)).await, 0);
    // ...but the reminder goes out at 10:00 Saturday, the appointment's own wall-clock time.
    assert_eq!(sweep(&app, ny(2027, 3, 13, 10, 0)).await, 1);
    // In November, 24 hours before is 11:00 Saturday; the reminder goes at 10:00.
    assert_eq!(ny(2027, 11, 7, 10, 0) - Duration::hours(24), ny(2027, 11, 6, 11, 0));
    assert_eq!(sweep(&app, ny(2027, 11, 6, 9, 59)).await, 0);
    assert_eq!(sweep(&app, ny(2027, 11, 6, 10, 0)).await, 1);
    // The hour before is sixty real minutes: 09:00 on both Sundays.
    assert_eq!(sweep(&app, ny(2027, 3, 14, 8, 59)).await, 0);
    assert_eq!(sweep(&app, ny(2027, 3, 14, 9, 0)).await, 1);
    assert_eq!(sweep(&app, ny(2027, 11, 7, 8, 59)).await, 0);
    assert_eq!(sweep(&app, ny(2027, 11, 7, 9, 0)).await, 1);
    let texts = reminder_texts(&owner).await;
    assert_eq!(texts.len(), 4);
    assert!(texts[0].2.contains("tomorrow, Sunday March 14th at 10 AM"), "{}", texts[0].2);
    assert!(texts[1].2.contains("tomorrow, Sunday November 7th at 10 AM"), "{}", texts[1].2);
}

#[tokio::test]
async fn a_reminder_whose_time_passed_before_the_booking_is_not_sent() {
    let (owner, app, tenant, _) = setup().await;
    let appointment = book(&app, &tenant, "+15557654321", ny(2027, 6, 10, 14, 0), Language::English).await;
    // Booked (as far as reminders know) at 20:00 the evening before: the day-before
    // reminder's time had passed; the confirmation covered it.
    sqlx::query("UPDATE appointments SET time_set_at = $2 WHERE id = $1")
        .bind(appointment.id)
        .bind(ny(2027, 6, 9, 20, 0))
        .execute(&owner)
        .await
        .unwrap();
    assert_eq!(sweep(&app, ny(2027, 6, 10, 8, 0)).await, 0);
    assert_eq!(sweep(&app, ny(2027, 6, 10, 13, 1)).await, 1);
    let texts = reminder_texts(&owner).await;
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].0, "reminder_1h");
}

#[tokio::test]
async fn a_reminder_missed_while_no_server_ran_is_sent_late_but_not_at_night() {
    let (owner, app, tenant, _) = setup().await;
    book(&app, &tenant, "+15557654321", ny(2027, 6, 10, 14, 0), Language::English).await;
    // Due 14:00 on the 9th; nothing swept until 23:00 (quiet), then 08:00 on the 10th.
    assert_eq!(sweep(&app, ny(2027, 6, 9, 23, 0)).await, 0);
    assert_eq!(sweep(&app, ny(2027, 6, 10, 8, 0)).await, 1);
    let texts = reminder_texts(&owner).await;
    assert!(texts[0].2.contains("today at 2 PM"), "{}", texts[0].2);
}
