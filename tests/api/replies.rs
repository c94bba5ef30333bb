//! Replies by text: CANCEL, CONFIRM and RESCHEDULE act on the sender's next appointment at
//! that business only, in the language of the word or the caller; other texts are not
//! commands. Called as the SMS webhook calls it, on the application role's connections.

use chrono::{DateTime, Duration, Utc};
use ringlypro::domain::appointments::BookingSource;
use ringlypro::domain::ids::AppointmentId;
use ringlypro::domain::language::Language;
use ringlypro::domain::scheduling::Slot;
use ringlypro::services::booking::{self, BookingRequest};
use ringlypro::services::replies::act_on_reply;
use ringlypro::storage::postgres::appointments::Appointment;
use ringlypro::storage::postgres::tenants::{self, Tenant};
use ringlypro::storage::postgres::{self};
use sqlx::PgPool;

use crate::helpers::{add_tenant, fresh_database, ny};

const CALLER: &str = "+15557654321";

/// The owner's pool (for looking), the application role's pool and two businesses.
async fn setup() -> (PgPool, PgPool, Tenant, Tenant) {
    let (url, owner) = fresh_database().await;
    let app = postgres::connect_as_app(&url, 5).await.unwrap();
    let a = add_tenant(&owner, "Bright Smile Dental", "+15550001111", "America/New_York").await;
    let b = add_tenant(&owner, "Other Clinic", "+15550002222", "America/New_York").await;
    (
        owner.clone(),
        app,
        tenants::find(&owner, a).await.unwrap().unwrap(),
        tenants::find(&owner, b).await.unwrap().unwrap(),
    )
}

async fn book(
    pool: &PgPool,
    tenant: &Tenant,
    phone: &str,
    starts_at: DateTime<Utc>,
    booked_at: DateTime<Utc>,
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
    booking::book(pool, tenant, &req, booked_at).await.expect("booked").appointment
}

async fn status_of(pool: &PgPool, id: AppointmentId) -> String {
    sqlx::query_scalar("SELECT status FROM appointments WHERE id = $1").bind(id).fetch_one(pool).await.unwrap()
}

async fn owner_texts(pool: &PgPool, kind: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT body FROM messages WHERE kind = $1 ORDER BY id")
        .bind(kind)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn cancel_by_text_cancels_the_senders_next_appointment_here_and_frees_its_time() {
    let (owner, app, tenant, other_tenant) = setup().await;
    let now = ny(2027, 6, 5, 12, 0);
    let past = book(&app, &tenant, CALLER, ny(2027, 6, 3, 10, 0), ny(2027, 6, 1, 9, 0), Language::English).await;
    let next = book(&app, &tenant, CALLER, ny(2027, 6, 10, 14, 0), ny(2027, 6, 1, 9, 0), Language::English).await;
    let later = book(&app, &tenant, CALLER, ny(2027, 6, 20, 14, 0), ny(2027, 6, 1, 9, 0), Language::English).await;
    let elsewhere =
        book(&app, &other_tenant, CALLER, ny(2027, 6, 8, 9, 0), ny(2027, 6, 1, 9, 0), Language::English).await;

    let reply = act_on_reply(&app, &tenant, CALLER, "  Cancel. ", now).await.unwrap().expect("a command");
    assert_eq!(
        reply,
        "Bright Smile Dental: your appointment Thursday June 10th at 2 PM is cancelled. \
         To book again, call (555) 000-1111."
    );
    assert_eq!(status_of(&owner, next.id).await, "cancelled");
    for untouched in [past.id, later.id, elsewhere.id] {
        assert_eq!(status_of(&owner, untouched).await, "confirmed");
    }
    // The owner learns who and when, with no internal id.
    let alerts = owner_texts(&owner, "owner_cancellation_alert").await;
    assert_eq!(
        alerts,
        ["Ann Lee (+15557654321) cancelled their appointment for Thursday June 10th at 2 PM. The time is free again."]
    );
    // The time can be booked again.
    book(&app, &tenant, "+15557650000", ny(2027, 6, 10, 14, 0), now, Language::English).await;
}

#[tokio::test]
async fn confirmar_confirms_and_answers_in_spanish() {
    let (owner, app, tenant, _) = setup().await;
    let now = ny(2027, 6, 9, 15, 0);
    let next = book(&app, &tenant, CALLER, ny(2027, 6, 10, 14, 0), ny(2027, 6, 1, 9, 0), Language::English).await;
    let reply = act_on_reply(&app, &tenant, CALLER, "CONFIRMAR", now).await.unwrap().expect("a command");
    assert_eq!(
        reply,
        "Bright Smile Dental: gracias, su cita mañana, jueves 10 de junio a las 2 de la tarde quedó confirmada. \
         ¡Lo esperamos!"
    );
    let confirmed_at: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT caller_confirmed_at FROM appointments WHERE id = $1")
            .bind(next.id)
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(confirmed_at, Some(now));
    assert_eq!(status_of(&owner, next.id).await, "confirmed");
}

#[tokio::test]
async fn an_english_or_neutral_word_answers_in_the_callers_language() {
    let (_, app, tenant, _) = setup().await;
    let now = ny(2027, 6, 9, 15, 0);
    book(&app, &tenant, CALLER, ny(2027, 6, 10, 14, 0), ny(2027, 6, 1, 9, 0), Language::Spanish).await;
    let reply = act_on_reply(&app, &tenant, CALLER, "y", now).await.unwrap().expect("a command");
    assert!(reply.contains("quedó confirmada"), "{reply}");
    // The Spanish confirmation text says "Responda CANCEL": the English word answers in Spanish.
    let reply = act_on_reply(&app, &tenant, CALLER, "CANCEL", now).await.unwrap().expect("a command");
    assert!(reply.contains("quedó cancelada"), "{reply}");
}

#[tokio::test]
async fn a_command_without_an_upcoming_appointment_says_so() {
    let (_, app, tenant, other_tenant) = setup().await;
    let now = ny(2027, 6, 5, 12, 0);
    // An appointment at another business does not count.
    book(&app, &other_tenant, CALLER, ny(2027, 6, 10, 14, 0), ny(2027, 6, 1, 9, 0), Language::English).await;
    let reply = act_on_reply(&app, &tenant, CALLER, "CANCEL", now).await.unwrap().expect("a command");
    assert_eq!(
        reply,
        "Bright Smile Dental: we have no upcoming appointment for this number. To book one, call (555) 000-1111."
    );
    let reply = act_on_reply(&app, &tenant, CALLER, "Sí", now).await.unwrap().expect("a command");
    assert!(reply.contains("no tenemos ninguna cita"), "{reply}");
}

#[tokio::test]
async fn free_text_is_not_a_command() {
    let (owner, app, tenant, _) = setup().await;
    let now = ny(2027, 6, 5, 12, 0);
    let next = book(&app, &tenant, CALLER, ny(2027, 6, 10, 14, 0), ny(2027, 6, 1, 9, 0), Language::English).await;
    for body in ["Can I bring my dog?", "please cancel my cleaning and call me", ""] {
        assert_eq!(act_on_reply(&app, &tenant, CALLER, body, now).await.unwrap(), None, "{body:?}");
    }
    assert_eq!(status_of(&owner, next.id).await, "confirmed");
    assert!(owner_texts(&owner, "owner_cancellation_alert").await.is_empty());
}

#[tokio::test]
async fn reschedule_by_text_offers_three_times_and_a_reply_of_two_books_the_second() {
    let (owner, app, tenant, _) = setup().await;
    let now = ny(2027, 6, 5, 12, 0);
    let old = book(&app, &tenant, CALLER, ny(2027, 6, 10, 14, 0), ny(2027, 6, 1, 9, 0), Language::English).await;
    // A bare number is no command while nothing was offered.
    assert_eq!(act_on_reply(&app, &tenant, CALLER, "2", now).await.unwrap(), None);
    let reply = act_on_reply(&app, &tenant, CALLER, "reschedule", now).await.unwrap().expect("a command");
    assert!(
        reply.starts_with(
            "Bright Smile Dental: your appointment is Thursday June 10th at 2 PM. To move it, reply 1 for "
        ),
        "{reply}"
    );
    assert!(reply.contains(", 2 for ") && reply.contains(" or 3 for "), "{reply}");
    assert!(reply.ends_with("; or call (555) 000-1111."), "{reply}");
    assert_eq!(status_of(&owner, old.id).await, "confirmed", "nothing moves until the caller picks");
    assert_eq!(
        owner_texts(&owner, "owner_reschedule_request").await,
        ["Ann Lee (+15557654321) asked by text to reschedule their appointment for Thursday June 10th at 2 PM. \
          Please call them back."]
    );
    let second: DateTime<Utc> =
        sqlx::query_scalar("SELECT starts_at FROM reschedule_offers WHERE phone = $1 AND choice = 2")
            .bind(CALLER)
            .fetch_one(&owner)
            .await
            .unwrap();

    let reply = act_on_reply(&app, &tenant, CALLER, "2", now).await.unwrap().expect("an offer taken");
    assert!(reply.starts_with("Bright Smile Dental: done, your appointment is now "), "{reply}");
    assert_eq!(status_of(&owner, old.id).await, "cancelled");
    let moved: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM appointments WHERE client_id = $1 AND starts_at = $2 AND status = 'confirmed' \
         AND customer_phone = $3",
    )
    .bind(tenant.id)
    .bind(second)
    .bind(CALLER)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(moved, 1);
    // An offer books once.
    assert_eq!(act_on_reply(&app, &tenant, CALLER, "1", now).await.unwrap(), None);
}

#[tokio::test]
async fn offered_times_lapse_after_a_day() {
    let (owner, app, tenant, _) = setup().await;
    let now = ny(2027, 6, 5, 12, 0);
    let old = book(&app, &tenant, CALLER, ny(2027, 6, 10, 14, 0), ny(2027, 6, 1, 9, 0), Language::English).await;
    act_on_reply(&app, &tenant, CALLER, "REPROGRAMAR", now).await.unwrap().expect("a command");
    assert_eq!(act_on_reply(&app, &tenant, CALLER, "1", now + Duration::hours(25)).await.unwrap(), None);
    assert_eq!(status_of(&owner, old.id).await, "confirmed");
}

#[tokio::test]
async fn an_owner_who_reads_spanish_gets_the_booking_and_cancellation_alerts_in_spanish() {
    let (owner, app, tenant, _) = setup().await;
    sqlx::query("UPDATE clients SET summary_language = 'es' WHERE id = $1")
        .bind(tenant.id)
        .execute(&owner)
        .await
        .unwrap();
    let now = ny(2027, 6, 5, 12, 0);
    // An English caller: their own text stays English, the owner's alerts are Spanish.
    book(&app, &tenant, CALLER, ny(2027, 6, 10, 14, 0), now, Language::English).await;
    let caller: String = sqlx::query_scalar("SELECT body FROM messages WHERE kind = 'booking_confirmation'")
        .fetch_one(&owner)
        .await
        .unwrap();
    let alert = owner_texts(&owner, "owner_booking_alert").await.join("\n");
    assert!(caller.contains("Thursday"), "{caller}");
    assert!(alert.contains("jueves") && !alert.contains("Thursday"), "{alert}");
    assert!(act_on_reply(&app, &tenant, CALLER, "CANCEL", now).await.unwrap().is_some());
    let cancelled = owner_texts(&owner, "owner_cancellation_alert").await.join("\n");
    assert!(cancelled.contains("jueves") && cancelled.contains("Ann Lee"), "{cancelled}");
}
