//! Google Calendar both ways against `FakeGoogle`: connecting through consent, the owner's
//! busy times never offered, bookings landing once despite rate limits, cancellations,
//! full resyncs after a 410, an outage that does not hold availability past its budget,
//! and a revoked grant that asks the owner to reconnect without touching calls.

use std::time::{Duration, Instant};

use chrono::{Duration as Days, Utc};
use ringlypro::domain::appointments::BookingSource;
use ringlypro::domain::ids::TenantId;
use ringlypro::domain::language::Language;
use ringlypro::domain::scheduling::{Preference, Slot};
use ringlypro::services::booking::{self, BookingRequest};
use ringlypro::services::calendar_sync::BusySource;
use ringlypro::storage::postgres::tenants::{self, Tenant};
use ringlypro::vendors::google::event_id;

use crate::fakes::google::{FakeGoogle, REFRESH_TOKEN};
use crate::helpers::{Options, SignedInOwner, TestApp, spawn_app_with};

async fn app_with_google(extra: &[(&'static str, &str)]) -> (TestApp, FakeGoogle) {
    let google = FakeGoogle::start().await;
    let mut env = google.env();
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    (spawn_app_with(Options { env, ..Options::default() }).await, google)
}

async fn connect(owner: &SignedInOwner) -> reqwest::Response {
    owner.through_consent("/app/integrations/google/connect").await
}

async fn tenant(app: &TestApp, id: TenantId) -> Tenant {
    tenants::find(&app.pool, id).await.unwrap().unwrap()
}

fn request(slot: Slot) -> BookingRequest {
    BookingRequest {
        name: "Pat Caller".into(),
        phone: "+15557654321".into(),
        slot,
        call_id: None,
        language: Language::English,
        source: BookingSource::VoiceBooking,
    }
}

fn overlaps(slot: &Slot, starts: chrono::DateTime<Utc>, ends: chrono::DateTime<Utc>) -> bool {
    slot.starts_at < ends && slot.ends_at > starts
}

#[tokio::test]
async fn an_owner_connects_google_calendar_and_tokens_are_stored_sealed() {
    let (app, google) = app_with_google(&[]).await;
    let owner = app.signed_in_owner("dana@example.com", "Dana Dental").await;
    let before = owner.get("/app/integrations").await.text().await.unwrap();
    assert!(before.contains("id=\"google-connect\""), "{before}");

    let done = connect(&owner).await;
    assert_eq!(done.status(), reqwest::StatusCode::SEE_OTHER);
    let page = owner.get("/app/integrations").await.text().await.unwrap();
    assert!(page.contains("Connected as calendar <strong>primary</strong>, last synced"), "{page}");

    let (refresh, channel): (String, Option<String>) =
        sqlx::query_as("SELECT refresh_token_sealed, channel_id FROM google_connections WHERE client_id = $1")
            .bind(owner.client_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(!refresh.contains(REFRESH_TOKEN) && refresh.starts_with("v1."), "{refresh}");
    assert_eq!(channel.as_deref(), google.state().channels.last().map(|c| c.0.as_str()), "a push channel is open");
    assert_eq!(google.state().listings, vec![None], "the first sync is a full one");

    // A consent whose state is not this session's is refused.
    let forged = owner.get("/integrations/google/callback?code=4/fake-code&state=forged").await;
    assert_eq!(forged.status(), reqwest::StatusCode::BAD_REQUEST);
    app.stop().await;
}

#[tokio::test]
async fn connecting_is_refused_without_an_integrations_key() {
    let (app, _google) = app_with_google(&[("INTEGRATIONS_KEY", "")]).await;
    let owner = app.signed_in_owner("kim@example.com", "Kim Salon").await;
    let refused = owner.get("/app/integrations/google/connect").await;
    assert_eq!(refused.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("INTEGRATIONS_KEY"));
    app.stop().await;
}

#[tokio::test]
async fn an_owners_busy_block_is_never_offered_and_a_410_triggers_a_full_resync() {
    let (app, google) = app_with_google(&[]).await;
    let owner = app.signed_in_owner("dana@example.com", "Dana Dental").await;
    connect(&owner).await;
    let tenant = tenant(&app, owner.client_id).await;
    let now = Utc::now();
    let offered = booking::availability(&app.pool, &tenant, &Preference::default(), now, 3).await.unwrap();
    let first = offered[0];
    let (starts, ends) = (first.starts_at - Days::minutes(30), first.ends_at + Days::hours(2));

    google.add_owner_event("dentist", "Dentist", starts, ends);
    assert_eq!(google.push(&app.base_url).await, reqwest::StatusCode::OK);
    app.state.calendar.run_once(Utc::now()).await.unwrap();
    assert!(google.state().listings.last().unwrap().is_some(), "a push runs an incremental sync");
    let now_offered = booking::availability(&app.pool, &tenant, &Preference::default(), now, 3).await.unwrap();
    assert!(now_offered.iter().all(|s| !overlaps(s, starts, ends)), "{now_offered:?} overlaps the owner's block");

    // The sync token expires: Google answers 410 and the copy is rebuilt from a full listing.
    sqlx::query("DELETE FROM google_busy").execute(&app.pool).await.unwrap();
    google.state().sync_tokens_expired = true;
    google.push(&app.base_url).await;
    app.state.calendar.run_once(Utc::now()).await.unwrap();
    let listings = google.state().listings.clone();
    assert!(listings[listings.len() - 2].is_some() && listings[listings.len() - 1].is_none(), "{listings:?}");
    let copied: i64 = sqlx::query_scalar("SELECT count(*) FROM google_busy WHERE event_id = 'dentist'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(copied, 1);

    // A push with the wrong token is refused and changes nothing.
    let channel = google.state().channels[0].0.clone();
    let wrong = reqwest::Client::new()
        .post(format!("{}/integrations/google/notify", app.base_url))
        .header("X-Goog-Channel-ID", channel)
        .header("X-Goog-Channel-Token", "guessed")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), reqwest::StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test]
async fn a_booking_lands_in_google_once_after_a_429_with_two_workers_and_a_cancel_deletes_it() {
    let (app, google) = app_with_google(&[]).await;
    let owner = app.signed_in_owner("dana@example.com", "Dana Dental").await;
    connect(&owner).await;
    let tenant = tenant(&app, owner.client_id).await;
    let now = Utc::now();
    let slot = booking::availability(&app.pool, &tenant, &Preference::default(), now, 1).await.unwrap()[0];
    let booked = booking::book(&app.pool, &tenant, &request(slot), now).await.unwrap();
    let id = event_id(owner.client_id.0, booked.appointment.id.0);

    google.state().fail_writes.push_back(429);
    let (a, b) = (app.state.calendar.clone(), app.state.calendar.clone());
    let (ra, rb) = tokio::join!(a.run_once(Utc::now()), b.run_once(Utc::now()));
    assert_eq!(ra.unwrap() + rb.unwrap(), 1, "one worker claims the job");
    assert!(!google.state().events.contains_key(&id), "the 429 wrote nothing");

    let later = Utc::now() + Days::minutes(5);
    let (ra, rb) = tokio::join!(a.run_once(later), b.run_once(later));
    assert_eq!(ra.unwrap() + rb.unwrap(), 1);
    {
        let state = google.state();
        assert_eq!(state.events.keys().filter(|k| **k == id).count(), 1);
        assert_eq!(
            state.events[&id].json["extendedProperties"]["private"]["ringlyproAppointment"],
            booked.appointment.id.0.to_string()
        );
        assert_eq!(state.insert_requests.iter().filter(|r| **r == id).count(), 2, "one refused, one written");
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM calendar_sync_jobs").fetch_one(&app.pool).await.unwrap();
    assert_eq!(left, 0);

    // Running again sends nothing more.
    a.run_once(Utc::now() + Days::hours(2)).await.unwrap();
    assert_eq!(google.state().insert_requests.len(), 2);

    assert!(booking::cancel(&app.pool, &tenant, booked.appointment.id, None).await.unwrap());
    a.run_once(Utc::now()).await.unwrap();
    assert_eq!(google.state().events[&id].json["status"], "cancelled");
    app.stop().await;
}

#[tokio::test]
async fn a_google_outage_does_not_hold_availability_past_its_budget() {
    // A copy older than 0 s is stale, so every availability asks freeBusy first.
    let (app, google) = app_with_google(&[("GOOGLE_STALE_SECS", "0"), ("GOOGLE_FREEBUSY_BUDGET_MS", "300")]).await;
    let owner = app.signed_in_owner("dana@example.com", "Dana Dental").await;
    connect(&owner).await;
    let tenant = tenant(&app, owner.client_id).await;
    let pref = Preference::default();
    let now = Utc::now() + Days::seconds(1);

    let started = Instant::now();
    let (_, healthy) =
        booking::availability_checked(&app.pool, &app.state.calendar, &tenant, &pref, now, 3).await.unwrap();
    let with_google = started.elapsed();
    assert_eq!(healthy, BusySource::FreeBusy);

    google.state().freebusy_delay = Duration::from_secs(5);
    let started = Instant::now();
    let (slots, source) =
        booking::availability_checked(&app.pool, &app.state.calendar, &tenant, &pref, now, 3).await.unwrap();
    let during_outage = started.elapsed();
    assert_eq!(source, BusySource::LocalCopyAfterTimeout, "the answer came from the local copy");
    assert_eq!(slots.len(), 3);

    // Best of three: the first query after the abandoned freeBusy may pay for a new connection.
    let mut local_only = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        booking::availability(&app.pool, &tenant, &pref, now, 3).await.unwrap();
        local_only = local_only.min(started.elapsed());
    }
    let other = app.signed_in_owner("kim@example.com", "Kim Salon").await;
    let unconnected = tenants::find(&app.pool, other.client_id).await.unwrap().unwrap();
    let started = Instant::now();
    let (_, none) =
        booking::availability_checked(&app.pool, &app.state.calendar, &unconnected, &pref, now, 3).await.unwrap();
    let without_google = started.elapsed();
    assert_eq!(none, BusySource::NotConnected);
    println!(
        "availability latency: without Google {without_google:?}, local copy {local_only:?}, \
         freeBusy answering {with_google:?}, Google down (budget 300 ms) {during_outage:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_revoked_grant_shows_reconnect_and_calls_still_book() {
    let (app, google) = app_with_google(&[]).await;
    let owner = app.signed_in_owner("dana@example.com", "Dana Dental").await;
    connect(&owner).await;
    let tenant = tenant(&app, owner.client_id).await;
    google.state().revoked = true;
    sqlx::query("UPDATE google_connections SET access_expires_at = now() - interval '1 hour'")
        .execute(&app.pool)
        .await
        .unwrap();

    let now = Utc::now();
    let slot = booking::availability(&app.pool, &tenant, &Preference::default(), now, 1).await.unwrap()[0];
    booking::book(&app.pool, &tenant, &request(slot), now).await.expect("calls still book");
    app.state.calendar.run_once(Utc::now()).await.unwrap();

    let page = owner.get("/app/integrations").await.text().await.unwrap();
    assert!(page.contains("id=\"google-reconnect\""), "{page}");
    let today = owner.get("/app").await.text().await.unwrap();
    assert!(today.contains("Google Calendar no longer accepts"), "the Today page asks too: {today}");
    let waiting: i64 =
        sqlx::query_scalar("SELECT count(*) FROM calendar_sync_jobs").fetch_one(&app.pool).await.unwrap();
    assert_eq!(waiting, 1, "the booking waits for the reconnect");
    assert!(booking::availability(&app.pool, &tenant, &Preference::default(), now, 3).await.unwrap().len() == 3);
    app.stop().await;
}

#[tokio::test]
async fn the_push_channel_is_renewed_before_it_ends_and_the_old_one_stopped() {
    let (app, google) = app_with_google(&[]).await;
    let owner = app.signed_in_owner("dana@example.com", "Dana Dental").await;
    connect(&owner).await;
    let first = google.state().channels[0].0.clone();
    // Far from its end: nothing to renew.
    app.state.calendar.run_once(Utc::now()).await.unwrap();
    assert_eq!(google.state().channels.len(), 1);

    sqlx::query("UPDATE google_connections SET channel_expires_at = now() + interval '10 minutes'")
        .execute(&app.pool)
        .await
        .unwrap();
    app.state.calendar.run_once(Utc::now()).await.unwrap();
    {
        let state = google.state();
        assert_eq!(state.channels.len(), 2, "a new channel opened before the old one ended");
        assert_eq!(state.stopped, vec![first]);
    }
    let stored: String =
        sqlx::query_scalar("SELECT channel_id FROM google_connections").fetch_one(&app.pool).await.unwrap();
    assert_eq!(stored, google.state().channels[1].0);
    assert_eq!(google.push(&app.base_url).await, reqwest::StatusCode::OK, "pushes on the new channel are accepted");
    app.stop().await;
}

/// Polls `check` every 10 ms for up to 10 s; how long it took to hold.
async fn time_until<F: AsyncFn() -> bool>(check: F) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(10), "never happened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn sync_lag_both_ways_is_measured_with_the_running_worker() {
    let (app, google) = app_with_google(&[("GOOGLE_SYNC_POLL_MS", "250")]).await;
    let owner = app.signed_in_owner("dana@example.com", "Dana Dental").await;
    connect(&owner).await;
    let tenant = tenant(&app, owner.client_id).await;
    let now = Utc::now();

    // In: the owner adds an event; Google pushes; the worker syncs.
    let starts = now + Days::days(2);
    google.add_owner_event("lunch", "Lunch", starts, starts + Days::hours(1));
    google.push(&app.base_url).await;
    let pool = app.pool.clone();
    let inbound = time_until(async || {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM google_busy WHERE event_id = 'lunch'")
            .fetch_one(&pool)
            .await
            .unwrap()
            == 1
    })
    .await;

    // Out: a booking reaches Google.
    let slot = booking::availability(&app.pool, &tenant, &Preference::default(), now, 1).await.unwrap()[0];
    let booked = booking::book(&app.pool, &tenant, &request(slot), now).await.unwrap();
    let id = event_id(owner.client_id.0, booked.appointment.id.0);
    let outbound = time_until(async || google.state().events.contains_key(&id)).await;
    println!(
        "sync lag with GOOGLE_SYNC_POLL_MS=250: Google to RinglyPro {inbound:?}, RinglyPro to Google {outbound:?}"
    );
    app.stop().await;
}
