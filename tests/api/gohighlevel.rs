//! GoHighLevel against `FakeGoHighLevel`: installing on a location from the Integrations
//! page, bookings landing once as appointments (through 429s, 502s, a lost answer and two
//! instances' workers), callers as contacts, moves and cancellations following, refresh
//! tokens rotating under concurrency, and an uninstalled app that asks the owner to
//! reconnect without touching calls.

use chrono::{Duration as Days, Utc};
use ringlypro::domain::appointments::{AppointmentStatus, BookingSource};
use ringlypro::domain::language::Language;
use ringlypro::domain::scheduling::{Preference, Slot};
use ringlypro::services::agenda::{self, Change};
use ringlypro::services::booking::{self, BookingRequest};
use ringlypro::services::gohighlevel::GhlSync;
use ringlypro::storage::postgres::tenants::{self, Tenant};

use crate::fakes::gohighlevel::FakeGoHighLevel;
use crate::helpers::{Options, SignedInOwner, TestApp, spawn_app_with};

async fn app_with_ghl(extra: &[(&'static str, &str)]) -> (TestApp, FakeGoHighLevel) {
    let ghl = FakeGoHighLevel::start().await;
    let mut env = ghl.env();
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    (spawn_app_with(Options { env, ..Options::default() }).await, ghl)
}

async fn connect(owner: &SignedInOwner) -> reqwest::Response {
    owner.through_consent("/app/integrations/gohighlevel/connect").await
}

/// A business that connected GoHighLevel (location `loc-1`), its owner and tenant.
async fn connected(app: &TestApp) -> (SignedInOwner, Tenant) {
    let owner = app.signed_in_owner("dana@example.com", "Dana Dental").await;
    let done = connect(&owner).await;
    assert_eq!(done.status(), reqwest::StatusCode::SEE_OTHER);
    let tenant = tenants::find(&app.pool, owner.client_id).await.unwrap().unwrap();
    (owner, tenant)
}

fn request(slot: Slot, name: &str, phone: &str) -> BookingRequest {
    BookingRequest {
        name: name.into(),
        phone: phone.into(),
        slot,
        call_id: None,
        language: Language::English,
        source: BookingSource::VoiceBooking,
    }
}

async fn jobs_left(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM calendar_sync_jobs WHERE target = 'gohighlevel'")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Runs `sync` until nothing is due at `at`; how many rounds that took.
async fn drain(sync: &GhlSync, at: chrono::DateTime<Utc>) -> usize {
    let mut rounds = 0;
    while sync.run_once(at).await.unwrap() > 0 {
        rounds += 1;
        assert!(rounds < 20, "the queue never emptied");
    }
    rounds
}

#[tokio::test]
async fn an_owner_installs_on_a_location_and_tokens_are_stored_sealed() {
    let (app, ghl) = app_with_ghl(&[]).await;
    ghl.choose("loc-dana");
    ghl.add_calendar("loc-dana", "cal-cleanings", "Cleanings");
    let owner = app.signed_in_owner("dana@example.com", "Dana Dental").await;
    let before = owner.get("/app/integrations").await.text().await.unwrap();
    assert!(before.contains("id=\"ghl-connect\""), "{before}");

    let done = connect(&owner).await;
    assert_eq!(done.status(), reqwest::StatusCode::SEE_OTHER);
    assert_eq!(done.headers()["location"], "/app/integrations#gohighlevel");
    let page = owner.get("/app/integrations").await.text().await.unwrap();
    assert!(page.contains("Connected to location <strong>loc-dana</strong>"), "{page}");
    assert!(page.contains("the calendar <strong>Main</strong>"), "the first calendar is chosen: {page}");
    assert!(page.contains("<option value=\"cal-cleanings\""), "the others can be chosen: {page}");

    let (refresh, access): (String, String) =
        sqlx::query_as("SELECT refresh_token_sealed, access_token_sealed FROM ghl_connections WHERE client_id = $1")
            .bind(owner.client_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(refresh.starts_with("v1.") && !refresh.contains("ghl-refresh"), "{refresh}");
    assert!(access.starts_with("v1.") && !access.contains("ghl-access"), "{access}");

    let chosen = owner.post_form("/app/integrations/gohighlevel/calendar", &[("calendar_id", "cal-cleanings")]).await;
    assert_eq!(chosen.status(), reqwest::StatusCode::OK);
    assert!(chosen.text().await.unwrap().contains("the calendar <strong>Cleanings</strong>"));
    let foreign = owner.post_form("/app/integrations/gohighlevel/calendar", &[("calendar_id", "cal-elsewhere")]).await;
    assert_eq!(foreign.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(foreign.text().await.unwrap().contains("not one of your GoHighLevel location"));

    // A callback whose state is not this session's is refused, and uses no code.
    let code = ghl.install("loc-dana");
    let forged = owner.get(&format!("/integrations/gohighlevel/callback?code={code}&state=forged")).await;
    assert_eq!(forged.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(forged.text().await.unwrap().contains("no longer valid"));
    let denied = owner.get("/integrations/gohighlevel/callback?error=access_denied").await;
    assert_eq!(denied.status(), reqwest::StatusCode::BAD_REQUEST);

    let gone = owner.post_form("/app/integrations/gohighlevel/disconnect", &[]).await;
    assert!(gone.text().await.unwrap().contains("GoHighLevel disconnected"));
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM ghl_connections").fetch_one(&app.pool).await.unwrap();
    assert_eq!(left, 0);
    app.stop().await;
}

#[tokio::test]
async fn connecting_says_what_is_missing_on_the_server() {
    let (app, _ghl) = app_with_ghl(&[("INTEGRATIONS_KEY", "")]).await;
    let owner = app.signed_in_owner("kim@example.com", "Kim Salon").await;
    let refused = owner.get("/app/integrations/gohighlevel/connect").await;
    assert_eq!(refused.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("INTEGRATIONS_KEY"));
    app.stop().await;

    let plain = crate::helpers::spawn_app().await;
    let owner = plain.signed_in_owner("lee@example.com", "Lee Spa").await;
    let page = owner.get("/app/integrations").await.text().await.unwrap();
    assert!(page.contains("id=\"ghl-unconfigured\""), "{page}");
    plain.stop().await;
}

#[tokio::test]
async fn a_booking_lands_in_gohighlevel_once_through_429_502_a_lost_answer_and_two_instances() {
    let (app, ghl) = app_with_ghl(&[]).await;
    let (_owner, tenant) = connected(&app).await;
    let now = Utc::now();
    let slot = booking::availability(&app.pool, &tenant, &Preference::default(), now, 1).await.unwrap()[0];
    let booked =
        booking::book(&app.pool, &tenant, &request(slot, "María José García", "+15557654321"), now).await.unwrap();
    // Two instances sharing the database, each with its own worker.
    let (a, b) = (app.state.gohighlevel.clone(), GhlSync::new(app.pool.clone(), &app.state.config).unwrap());

    // Each job's first request is refused.
    ghl.rate_limit_next(2);
    let (ra, rb) = tokio::join!(a.run_once(Utc::now()), b.run_once(Utc::now()));
    assert_eq!(ra.unwrap() + rb.unwrap(), 2, "the caller's contact and the booking, each claimed once");
    assert!(ghl.appointments().is_empty(), "the 429 wrote nothing");
    let (due,): (chrono::DateTime<Utc>,) = sqlx::query_as(
        "SELECT next_attempt_at FROM calendar_sync_jobs WHERE target = 'gohighlevel' AND appointment_id IS NOT NULL",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(due >= Utc::now() + Days::seconds(9), "the job waits out GoHighLevel's 10 s window: {due}");

    // GoHighLevel writes the appointment but the answer is lost; then a 502.
    ghl.lose_next_answer(1);
    let later = Utc::now() + Days::seconds(11);
    let (ra, rb) = tokio::join!(a.run_once(later), b.run_once(later));
    ra.unwrap();
    rb.unwrap();
    assert_eq!(ghl.appointments().len(), 1, "written, though we were not told");
    ghl.fail_next(1);
    for hours in 1..5 {
        let at = Utc::now() + Days::hours(3 * hours);
        let (ra, rb) = tokio::join!(a.run_once(at), b.run_once(at));
        ra.unwrap();
        rb.unwrap();
    }
    assert_eq!(jobs_left(&app).await, 0);

    let written = ghl.appointments();
    assert_eq!(written.len(), 1, "exactly once: {written:?}");
    let appointment = &written[0];
    assert_eq!(appointment.calendar_id, "cal-loc-1");
    assert_eq!(appointment.status, "confirmed");
    assert!(appointment.title.contains(&booked.appointment.confirmation_code), "{appointment:?}");
    let start = chrono::DateTime::parse_from_rfc3339(&appointment.start).unwrap();
    assert_eq!(start, booked.appointment.starts_at);
    assert_eq!(start.offset().local_minus_utc() % 3600, 0);
    assert_ne!(start.offset().local_minus_utc(), 0, "written in the business's zone (America/Chicago)");
    let contacts = ghl.contacts();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0].phone, "+15557654321");
    assert_eq!(contacts[0].first_name.as_deref(), Some("María"));
    assert_eq!(contacts[0].last_name.as_deref(), Some("José García"));
    assert_eq!(appointment.contact_id, contacts[0].id);

    // Running again sends nothing more.
    let requests = ghl.requests();
    drain(&a, Utc::now() + Days::days(1)).await;
    assert_eq!(ghl.requests(), requests);
    app.stop().await;
}

#[tokio::test]
async fn moves_and_cancellations_follow_and_a_second_booking_reuses_the_contact() {
    let (app, ghl) = app_with_ghl(&[]).await;
    let (owner, tenant) = connected(&app).await;
    let now = Utc::now();
    let slots = booking::availability(&app.pool, &tenant, &Preference::default(), now, 3).await.unwrap();
    let first = booking::book(&app.pool, &tenant, &request(slots[0], "Sam Lee", "+15550001111"), now).await.unwrap();
    let sync = app.state.gohighlevel.clone();
    drain(&sync, Utc::now()).await;
    assert_eq!(ghl.appointments().len(), 1);

    // Moved on the dashboard: the same GoHighLevel appointment moves.
    let moved_to = slots[0].starts_at + Days::days(1);
    let change = Change {
        starts_at: Some(moved_to),
        ends_at: Some(moved_to + (slots[0].ends_at - slots[0].starts_at)),
        ..Change::default()
    };
    agenda::change(&app.pool, owner.client_id, first.appointment.id, &change).await.unwrap();
    drain(&sync, Utc::now()).await;
    let written = ghl.appointments();
    assert_eq!(written.len(), 1, "moved, not made again: {written:?}");
    assert_eq!(chrono::DateTime::parse_from_rfc3339(&written[0].start).unwrap(), moved_to);

    // Rescheduled by voice (a new appointment): the old one is cancelled there, the new one made.
    let new_slot = slots[2];
    let again = booking::reschedule(
        &app.pool,
        &tenant,
        first.appointment.id,
        &request(new_slot, "Sam Lee", "+15550001111"),
        now,
    )
    .await
    .unwrap();
    drain(&sync, Utc::now()).await;
    let written = ghl.appointments();
    assert_eq!(written.len(), 2, "{written:?}");
    assert_eq!(written[0].status, "cancelled");
    assert_eq!(written[1].status, "confirmed");
    assert_eq!(chrono::DateTime::parse_from_rfc3339(&written[1].start).unwrap(), new_slot.starts_at);
    assert_eq!(written[0].contact_id, written[1].contact_id, "one contact for one phone");

    // Cancelled by text or dashboard: marked cancelled, never deleted.
    assert!(booking::cancel(&app.pool, &tenant, again.appointment.id, None).await.unwrap());
    drain(&sync, Utc::now()).await;
    let written = ghl.appointments();
    assert_eq!(written.len(), 2);
    assert!(written.iter().all(|a| a.status == "cancelled"), "{written:?}");
    assert_eq!(ghl.contacts().len(), 1);

    let status: String = sqlx::query_scalar("SELECT status::text FROM appointments WHERE id = $1")
        .bind(again.appointment.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, AppointmentStatus::Cancelled.as_str());
    app.stop().await;
}

#[tokio::test]
async fn a_caller_who_texts_becomes_a_gohighlevel_contact() {
    let (app, ghl) = app_with_ghl(&[]).await;
    let (owner, _) = connected(&app).await;
    let made = owner
        .send_json(
            reqwest::Method::POST,
            "/api/contacts",
            &serde_json::json!({"name": "Ana Ruiz", "phone": "+15553334444", "email": "ana@example.com"}),
        )
        .await;
    assert!(made.status().is_success(), "{:?}", made.text().await);
    drain(&app.state.gohighlevel, Utc::now()).await;
    let contacts = ghl.contacts();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0].phone, "+15553334444");
    assert_eq!(contacts[0].first_name.as_deref(), Some("Ana"));
    app.stop().await;
}

#[tokio::test]
async fn expired_tokens_are_refreshed_once_by_concurrent_workers_and_the_rotated_token_kept() {
    let (app, ghl) = app_with_ghl(&[]).await;
    let (_owner, tenant) = connected(&app).await;
    let now = Utc::now();
    let slots = booking::availability(&app.pool, &tenant, &Preference::default(), now, 3).await.unwrap();
    for (i, slot) in slots.iter().enumerate() {
        let phone = format!("+1555000222{i}");
        booking::book(&app.pool, &tenant, &request(*slot, "Pat Caller", &phone), now).await.unwrap();
    }
    // Every access token dies (as after a day); four workers on two instances go at once.
    ghl.expire_access_tokens();
    let other = GhlSync::new(app.pool.clone(), &app.state.config).unwrap();
    // One job per claim, so the four really work side by side.
    let one = app.state.gohighlevel.clone().with_batch(1);
    let workers = [one.clone(), one, other.clone().with_batch(1), other.with_batch(1)];
    let at = Utc::now();
    let rounds = workers.iter().map(|w| w.run_once(at));
    for result in futures::future::join_all(rounds).await {
        result.unwrap();
    }
    drain(&app.state.gohighlevel, Utc::now() + Days::hours(2)).await;
    assert_eq!(ghl.refreshes(), 1, "one refresh: the rotated token was used by the others");
    assert_eq!(ghl.appointments().len(), 3);
    let status: String = sqlx::query_scalar("SELECT status FROM ghl_connections").fetch_one(&app.pool).await.unwrap();
    assert_eq!(status, "connected");

    // And the stored (rotated) refresh token is the live one: the next expiry refreshes fine.
    ghl.expire_access_tokens();
    let slot = booking::availability(&app.pool, &tenant, &Preference::default(), now, 1).await.unwrap()[0];
    booking::book(&app.pool, &tenant, &request(slot, "Pat Caller", "+15550009999"), now).await.unwrap();
    drain(&app.state.gohighlevel, Utc::now()).await;
    assert_eq!(ghl.refreshes(), 2);
    assert_eq!(ghl.appointments().len(), 4);
    app.stop().await;
}

#[tokio::test]
async fn an_uninstalled_app_shows_reconnect_calls_still_book_and_reconnecting_sends_what_waited() {
    let (app, ghl) = app_with_ghl(&[]).await;
    let (owner, tenant) = connected(&app).await;
    ghl.uninstall("loc-1");
    ghl.expire_access_tokens();

    let now = Utc::now();
    let slot = booking::availability(&app.pool, &tenant, &Preference::default(), now, 1).await.unwrap()[0];
    booking::book(&app.pool, &tenant, &request(slot, "Pat Caller", "+15557654321"), now).await.expect("calls book");
    drain(&app.state.gohighlevel, Utc::now()).await;

    let page = owner.get("/app/integrations").await.text().await.unwrap();
    assert!(page.contains("id=\"ghl-reconnect\""), "{page}");
    let today = owner.get("/app").await.text().await.unwrap();
    assert!(today.contains("id=\"integrations-reconnect\""), "the Today page says so too: {today}");
    assert!(jobs_left(&app).await >= 1, "the booking waits for the reconnect");
    assert!(ghl.appointments().is_empty());

    connect(&owner).await;
    drain(&app.state.gohighlevel, Utc::now()).await;
    assert_eq!(ghl.appointments().len(), 1, "what waited went once reconnected");
    assert_eq!(jobs_left(&app).await, 0);
    let page = owner.get("/app/integrations").await.text().await.unwrap();
    assert!(!page.contains("id=\"ghl-reconnect\""), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn sync_lag_to_gohighlevel_is_measured_with_the_running_worker() {
    let (app, ghl) = app_with_ghl(&[("GHL_SYNC_POLL_MS", "250")]).await;
    let (_owner, tenant) = connected(&app).await;
    let now = Utc::now();
    let slot = booking::availability(&app.pool, &tenant, &Preference::default(), now, 1).await.unwrap()[0];
    let started = std::time::Instant::now();
    booking::book(&app.pool, &tenant, &request(slot, "Pat Caller", "+15557654321"), now).await.unwrap();
    while ghl.appointments().is_empty() {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the booking never reached GoHighLevel");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    println!("sync lag with GHL_SYNC_POLL_MS=250: RinglyPro to GoHighLevel {:?}", started.elapsed());
    app.stop().await;
}
