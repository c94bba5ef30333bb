//! Metering against the real application and PostgreSQL: every ended call charged once
//! whatever Twilio sends, the calls that cost nothing, the lock and the unlock, the monthly
//! reset in the tenant's own zone, and fifty calls ending at once.

use chrono::{NaiveDate, TimeZone, Utc};
use ringlypro::domain::ids::TenantId;
use ringlypro::services::credits::{self, Links, Metered, Reported};
use sqlx::PgPool;

use crate::helpers::{Options, TestApp, spawn_app, spawn_app_with, voice_params};

const NUMBER: &str = "+15550001111";

async fn call_in(app: &TestApp, sid: &str, from: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{}/twilio/voice", app.base_url))
        .form(&voice_params(sid, from, NUMBER))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

async fn status(app: &TestApp, sid: &str, status: &str, duration: Option<u32>) -> u16 {
    let mut form = vec![("CallSid".to_string(), sid.to_string()), ("CallStatus".into(), status.into())];
    if let Some(d) = duration {
        form.push(("CallDuration".into(), d.to_string()));
    }
    reqwest::Client::new()
        .post(format!("{}/twilio/status", app.base_url))
        .form(&form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[derive(Debug, sqlx::FromRow)]
struct Standing {
    balance_cents: i64,
    free_minutes_used: i32,
    locked: bool,
}

async fn standing(pool: &PgPool, tenant: TenantId) -> Standing {
    sqlx::query_as("SELECT balance_cents, free_minutes_used, locked FROM credit_accounts WHERE client_id = $1")
        .bind(tenant)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn set_account(pool: &PgPool, tenant: TenantId, balance_cents: i64, free_used: i32) {
    sqlx::query(
        "UPDATE credit_accounts SET balance_cents = $2, free_minutes_used = $3, \
             locked = NOT ($3 < free_minutes_limit OR $2 >= rate_cents_per_minute) WHERE client_id = $1",
    )
    .bind(tenant)
    .bind(balance_cents)
    .bind(free_used)
    .execute(pool)
    .await
    .unwrap();
}

#[derive(Debug, sqlx::FromRow)]
struct UsageRow {
    minutes: i32,
    free_minutes: i32,
    paid_minutes: i32,
    cost_cents: i64,
    duration_seconds: i32,
    duration_source: String,
    not_charged: Option<String>,
}

async fn usage(pool: &PgPool, sid: &str) -> Vec<UsageRow> {
    sqlx::query_as(
        "SELECT u.minutes, u.free_minutes, u.paid_minutes, u.cost_cents, u.duration_seconds, u.duration_source, \
             u.not_charged FROM usage_records u JOIN calls c ON c.id = u.call_id WHERE c.call_sid = $1",
    )
    .bind(sid)
    .fetch_all(pool)
    .await
    .unwrap()
}

fn links() -> Links {
    Links { credits_page: "http://localhost/app/credits".into() }
}

#[tokio::test]
async fn a_call_is_charged_once_however_often_and_in_whatever_order_twilio_reports_it() {
    let app = spawn_app().await;
    let tenant = app.add_tenant("Bright Smile Dental", NUMBER, "America/New_York").await;
    call_in(&app, "CA1", "+15557654321").await;
    // Out of order and repeated: the final status first, then earlier ones, then again.
    for (s, d) in [("completed", Some(125)), ("ringing", None), ("in-progress", None), ("completed", Some(125))] {
        assert_eq!(status(&app, "CA1", s, d).await, 204);
    }
    let rows = usage(&app.pool, "CA1").await;
    assert_eq!(rows.len(), 1, "one usage row per call");
    assert_eq!((rows[0].minutes, rows[0].free_minutes, rows[0].paid_minutes, rows[0].cost_cents), (3, 3, 0, 0));
    assert_eq!(rows[0].duration_source, "twilio");
    assert_eq!(standing(&app.pool, tenant).await.free_minutes_used, 3);

    // Past the free minutes, the balance pays at the tenant's rate.
    set_account(&app.pool, tenant, 1000, 99).await;
    call_in(&app, "CA2", "+15557654321").await;
    for _ in 0..3 {
        assert_eq!(status(&app, "CA2", "completed", Some(150)).await, 204);
    }
    let rows = usage(&app.pool, "CA2").await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].minutes, rows[0].free_minutes, rows[0].paid_minutes, rows[0].cost_cents), (3, 1, 2, 20));
    let s = standing(&app.pool, tenant).await;
    assert_eq!((s.balance_cents, s.free_minutes_used, s.locked), (980, 100, false));
    let cost: i64 =
        sqlx::query_scalar("SELECT cost_cents FROM calls WHERE call_sid = 'CA2'").fetch_one(&app.pool).await.unwrap();
    assert_eq!(cost, 20);
    app.stop().await;
}

#[tokio::test]
async fn calls_the_owner_took_short_calls_unanswered_calls_and_blocked_callers_cost_nothing() {
    let app = spawn_app().await;
    let tenant = app.add_tenant("Bright Smile Dental", NUMBER, "America/New_York").await;
    set_account(&app.pool, tenant, 1000, 100).await;

    call_in(&app, "CA-short", "+15557654321").await;
    status(&app, "CA-short", "completed", Some(14)).await;
    call_in(&app, "CA-busy", "+15557654321").await;
    status(&app, "CA-busy", "no-answer", Some(0)).await;

    sqlx::query("INSERT INTO blocked_numbers (client_id, phone) VALUES ($1, '+15559990000')")
        .bind(tenant)
        .execute(&app.pool)
        .await
        .unwrap();
    let twiml = call_in(&app, "CA-blocked", "+15559990000").await;
    assert!(
        twiml.contains("<Say language=\"en-US\">Sorry, this business is not taking your calls.")
            && twiml.contains("<Hangup/>"),
        "a blocked caller hears a short refusal: {twiml}"
    );
    status(&app, "CA-blocked", "completed", Some(40)).await;

    sqlx::query("UPDATE clients SET rachel_enabled = false WHERE id = $1")
        .bind(tenant)
        .execute(&app.pool)
        .await
        .unwrap();
    let twiml = call_in(&app, "CA-owner", "+15557654321").await;
    assert!(twiml.contains("<Dial"), "with the agent off the owner's phone rings: {twiml}");
    status(&app, "CA-owner", "completed", Some(300)).await;

    for (sid, reason) in [
        ("CA-short", "too_short"),
        ("CA-busy", "not_answered"),
        ("CA-blocked", "blocked_caller"),
        ("CA-owner", "owner_answered"),
    ] {
        let rows = usage(&app.pool, sid).await;
        assert_eq!(rows.len(), 1, "{sid} is recorded once");
        assert_eq!(rows[0].cost_cents, 0, "{sid} costs nothing");
        assert_eq!(rows[0].minutes, 0, "{sid} uses no minutes");
        assert_eq!(rows[0].not_charged.as_deref(), Some(reason), "{sid}");
    }
    let s = standing(&app.pool, tenant).await;
    assert_eq!((s.balance_cents, s.free_minutes_used), (1000, 100));
    app.stop().await;
}

#[tokio::test]
async fn a_call_twilio_never_reported_is_charged_from_our_own_record_and_only_once() {
    let app = spawn_app_with(Options { env: vec![("METERING_GRACE_SECS", "0".into())], ..Default::default() }).await;
    let tenant = app.add_tenant("Bright Smile Dental", NUMBER, "America/New_York").await;
    call_in(&app, "CA-quiet", "+15557654321").await;
    // Our socket closed 200 s after the call began; Twilio's final callback never came.
    sqlx::query(
        "UPDATE calls SET started_at = now() - interval '300 seconds', ended_at = now() - interval '100 seconds', \
             status = 'completed' WHERE call_sid = 'CA-quiet'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    // A call still in progress is left alone.
    call_in(&app, "CA-live", "+15557654322").await;
    let (metered, _) = app.state.payments.sweep().await.unwrap();
    assert_eq!(metered, 1);
    let rows = usage(&app.pool, "CA-quiet").await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].minutes, rows[0].duration_seconds, rows[0].duration_source.as_str()), (4, 200, "call"));
    assert!(usage(&app.pool, "CA-live").await.is_empty());
    // Twilio's callback arriving late changes nothing; a second sweep neither.
    status(&app, "CA-quiet", "completed", Some(230)).await;
    app.state.payments.sweep().await.unwrap();
    assert_eq!(usage(&app.pool, "CA-quiet").await.len(), 1);
    assert_eq!(standing(&app.pool, tenant).await.free_minutes_used, 4);
    app.stop().await;
}

#[tokio::test]
async fn fifty_calls_ending_at_once_and_a_payment_in_the_middle_agree_to_the_cent() {
    let app = spawn_app().await;
    let tenant = app.add_tenant("Bright Smile Dental", NUMBER, "America/New_York").await;
    // 5 free minutes left and $5.00: fifty 61-second calls use 100 minutes, 95 of them paid.
    set_account(&app.pool, tenant, 500, 95).await;
    for i in 0..50 {
        call_in(&app, &format!("CA-many-{i}"), &format!("+1555700{i:04}")).await;
    }
    let admin: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, is_admin) VALUES ('admin@example.com', 'x', true) RETURNING id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let base = app.base_url.clone();
        tasks.push(tokio::spawn(async move {
            let form = [
                ("CallSid".to_string(), format!("CA-many-{i}")),
                ("CallStatus".into(), "completed".into()),
                ("CallDuration".into(), "61".into()),
            ];
            reqwest::Client::new().post(format!("{base}/twilio/status")).form(&form).send().await.unwrap().status()
        }));
        if i == 25 {
            let payments = app.state.payments.clone();
            tasks.push(tokio::spawn(async move {
                payments
                    .adjust(tenant, 2000, "goodwill credit", ringlypro::domain::ids::UserId(admin), "once")
                    .await
                    .unwrap();
                reqwest::StatusCode::NO_CONTENT
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 204);
    }
    let s = standing(&app.pool, tenant).await;
    let charged: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(cost_cents), 0)::bigint FROM usage_records")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let paid: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(amount_cents), 0)::bigint FROM payment_transactions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(charged, 950, "95 paid minutes at 10 cents");
    assert_eq!(paid, 2000);
    assert_eq!(s.balance_cents, 500 + paid - charged, "the ledger's sum equals the balance's change");
    assert_eq!(s.free_minutes_used, 100);
    // Each row's before and after chain: summed, the steps are the whole change.
    let steps: i64 = sqlx::query_scalar(
        "SELECT ((SELECT COALESCE(SUM(balance_after_cents - balance_before_cents), 0) FROM usage_records) + \
                 (SELECT COALESCE(SUM(balance_after_cents - balance_before_cents), 0) FROM payment_transactions))::bigint",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(steps, s.balance_cents - 500);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_records").fetch_one(&app.pool).await.unwrap();
    assert_eq!(rows, 50);
    app.stop().await;
}

#[tokio::test]
async fn running_out_locks_forwards_the_next_caller_to_the_owner_and_a_payment_brings_the_agent_back() {
    let app = spawn_app().await;
    let tenant = app.add_tenant("Bright Smile Dental", NUMBER, "America/New_York").await;
    set_account(&app.pool, tenant, 25, 100).await;
    assert!(call_in(&app, "CA-last", "+15557654321").await.contains("<Stream"));
    status(&app, "CA-last", "completed", Some(200)).await; // 4 minutes, 40 cents, 25 there
    let s = standing(&app.pool, tenant).await;
    assert_eq!((s.balance_cents, s.locked), (-15, true), "the call under way is charged in full, then the lock");

    let twiml = call_in(&app, "CA-forwarded", "+15557654321").await;
    assert!(twiml.contains("<Dial") && twiml.contains("+15551230000"), "the owner's phone rings: {twiml}");
    status(&app, "CA-forwarded", "completed", Some(120)).await;
    assert_eq!(usage(&app.pool, "CA-forwarded").await[0].not_charged.as_deref(), Some("owner_answered"));
    let handled: String = sqlx::query_scalar("SELECT handled_by FROM calls WHERE call_sid = 'CA-forwarded'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(handled, "owner");
    // The owner is told once that calls now ring them, and warned once about the balance.
    let alerts: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM messages WHERE to_number = '+15551230000' ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(alerts.iter().filter(|k| *k == "credit_locked_alert").count(), 1, "{alerts:?}");
    assert_eq!(alerts.iter().filter(|k| *k == "credit_low_alert").count(), 1, "{alerts:?}");

    let admin: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, is_admin) VALUES ('admin@example.com', 'x', true) RETURNING id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    app.state
        .payments
        .adjust(tenant, 1000, "paid by cheque", ringlypro::domain::ids::UserId(admin), "cheque-1")
        .await
        .unwrap();
    let s = standing(&app.pool, tenant).await;
    assert_eq!((s.balance_cents, s.locked), (985, false));
    assert!(call_in(&app, "CA-back", "+15557654321").await.contains("<Stream"), "the agent answers again at once");
    app.stop().await;
}

#[tokio::test]
async fn free_minutes_reset_once_on_the_first_in_each_tenants_own_zone() {
    // Only this test's sweeps run, at the instants it names.
    let app = spawn_app_with(Options { env: vec![("BILLING_SWEEP_SECS", "3600".into())], ..Default::default() }).await;
    let pool = &app.pool;
    // New York leaves daylight time on 1 November 2026, the very day its cycle turns.
    let new_york = app.add_tenant("Bright Smile Dental", NUMBER, "America/New_York").await;
    let tokyo = app.add_tenant("Sakura Salon", "+15550002222", "Asia/Tokyo").await;
    sqlx::query("UPDATE credit_accounts SET cycle_start = '2026-10-01', free_minutes_used = 100, locked = true, balance_cents = 0")
        .execute(pool)
        .await
        .unwrap();
    let at = |h: u32, m: u32, day: u32, month: u32| Utc.with_ymd_and_hms(2026, month, day, h, m, 0).unwrap();

    assert_eq!(credits::reset_due_cycles(pool, at(14, 59, 31, 10)).await.unwrap(), 0);
    assert_eq!(credits::reset_due_cycles(pool, at(15, 0, 31, 10)).await.unwrap(), 1, "midnight in Tokyo");
    assert_eq!(standing(pool, tokyo).await.free_minutes_used, 0);
    assert!(!standing(pool, tokyo).await.locked, "the reset unlocks");
    assert!(standing(pool, new_york).await.locked);

    // 23:59 EDT on 31 October: still October in New York.
    assert_eq!(credits::reset_due_cycles(pool, at(3, 59, 1, 11)).await.unwrap(), 0);
    // Midnight EDT is 04:00 UTC; several instances sweeping at once reset it once.
    let sweeps = (0..4).map(|_| credits::reset_due_cycles(pool, at(4, 0, 1, 11)));
    let reset: usize = futures::future::join_all(sweeps).await.into_iter().map(|r| r.unwrap()).sum();
    assert_eq!(reset, 1);
    let cycles: Vec<(i64, NaiveDate, i32)> =
        sqlx::query_as("SELECT client_id, cycle_start, free_used_before FROM credit_cycles ORDER BY client_id")
            .fetch_all(pool)
            .await
            .unwrap();
    let nov = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    assert_eq!(cycles, vec![(new_york.get(), nov, 100), (tokyo.get(), nov, 100)]);

    // December, reached lazily by a charge before any sweep: 05:00 UTC now (EST). The call
    // is written directly, so that nothing reads the real clock.
    sqlx::query(
        "INSERT INTO calls (client_id, call_sid, from_number, to_number, handled_by, status) \
         VALUES ($1, 'CA-december', '+15557654321', $2, 'agent', 'completed')",
    )
    .bind(new_york)
    .bind(NUMBER)
    .execute(pool)
    .await
    .unwrap();
    let (metered, _) =
        credits::meter_call(pool, &links(), "CA-december", Reported::Twilio { seconds: 90 }, at(4, 30, 1, 12))
            .await
            .unwrap();
    assert!(matches!(metered, Metered::Charged { .. }));
    let s = standing(pool, new_york).await;
    assert_eq!(s.free_minutes_used, 2, "still November at 23:30 EST: November's minutes");
    let (again, _) =
        credits::meter_call(pool, &links(), "CA-december", Reported::Twilio { seconds: 90 }, at(5, 0, 1, 12))
            .await
            .unwrap();
    assert_eq!(again, Metered::AlreadyMetered);
    let s = standing(pool, new_york).await;
    assert_eq!(s.free_minutes_used, 0, "the December cycle began in the same transaction");
    let december: i64 =
        sqlx::query_scalar("SELECT count(*) FROM credit_cycles WHERE client_id = $1 AND cycle_start = '2026-12-01'")
            .bind(new_york)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(december, 1);
    app.stop().await;
}

#[tokio::test]
async fn the_ledger_is_append_only_for_the_application_and_survives_a_deleted_call() {
    let app = spawn_app().await;
    let tenant = app.add_tenant("Bright Smile Dental", NUMBER, "America/New_York").await;
    call_in(&app, "CA-kept", "+15557654321").await;
    status(&app, "CA-kept", "completed", Some(75)).await;
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE ringlypro_app").execute(&mut *tx).await.unwrap();
    let changed = sqlx::query("UPDATE usage_records SET cost_cents = 0").execute(&mut *tx).await;
    assert!(changed.is_err(), "the application cannot rewrite a charge");
    tx.rollback().await.unwrap();
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE ringlypro_app").execute(&mut *tx).await.unwrap();
    assert!(sqlx::query("DELETE FROM usage_records").execute(&mut *tx).await.is_err(), "nor delete one");
    tx.rollback().await.unwrap();
    // The owner deletes the call: its charge stays in the ledger, unlinked.
    let call = ringlypro::storage::postgres::calls::find_by_sid(&app.pool, "CA-kept").await.unwrap().unwrap();
    let app_pool = ringlypro::storage::postgres::connect_as_app(&app.state.config.database_url, 2).await.unwrap();
    assert!(ringlypro::storage::postgres::calls::delete(&app_pool, tenant, call.id).await.unwrap());
    let kept: (Option<i64>, Option<String>, i32) =
        sqlx::query_as("SELECT call_id, call_sid, minutes FROM usage_records").fetch_one(&app.pool).await.unwrap();
    assert_eq!(kept, (None, Some("CA-kept".into()), 2));
    app.stop().await;
}

#[tokio::test]
async fn an_owner_blocks_a_number_written_any_way_its_calls_are_refused_free_and_unblocking_lets_them_in() {
    let app = spawn_app().await;
    let owner = crate::helpers::signed_in_owner(&app, "ben@example.com", "Ben's Barbers", NUMBER).await;
    let api = |path: &str| format!("{}{path}", app.base_url);
    let bad = owner
        .client
        .post(api("/api/blocked-numbers"))
        .header("X-CSRF-Token", &owner.csrf_token)
        .json(&serde_json::json!({"phone": "call me maybe"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["field"], "phone", "{body}");
    let added = owner
        .client
        .post(api("/api/blocked-numbers"))
        .header("X-CSRF-Token", &owner.csrf_token)
        .json(&serde_json::json!({"phone": "(555) 999-0000", "note": "robocalls"}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let added: serde_json::Value = added.json().await.unwrap();
    assert_eq!(added["phone"], "+15559990000");

    assert!(call_in(&app, "CA-robo", "+15559990000").await.contains("<Hangup/>"));
    status(&app, "CA-robo", "completed", Some(60)).await;
    assert_eq!(usage(&app.pool, "CA-robo").await[0].not_charged.as_deref(), Some("blocked_caller"));
    let listed: serde_json::Value =
        owner.client.get(api("/api/blocked-numbers")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    // The settings page lists it and unblocks it.
    let page = owner.client.get(api("/app/settings")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("(555) 999-0000") && page.contains("robocalls"), "the settings page lists it");
    let removed = owner
        .client
        .post(api("/app/settings/blocked/remove"))
        .form(&[("csrf_token", owner.csrf_token.as_str()), ("phone", "+15559990000")])
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 303);
    assert!(call_in(&app, "CA-robo-2", "+15559990000").await.contains("<Stream"), "answered again");
    let gone = owner
        .client
        .delete(api("/api/blocked-numbers/+15559990000"))
        .header("X-CSRF-Token", &owner.csrf_token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn the_today_page_warns_when_credit_runs_low_and_not_before() {
    let app = spawn_app().await;
    let owner = crate::helpers::signed_in_owner(&app, "cleo@example.com", "Cleo's Clinic", NUMBER).await;
    let today =
        || async { owner.client.get(format!("{}/app", app.base_url)).send().await.unwrap().text().await.unwrap() };
    assert!(!today().await.contains("id=\"low-balance\""), "100 free minutes are not low");
    set_account(&app.pool, owner.client_id, 0, 95).await;
    let page = today().await;
    assert!(page.contains("id=\"low-balance\""), "5 free minutes and no balance are low");
    assert!(page.contains("5 free minutes"));
    set_account(&app.pool, owner.client_id, 2000, 95).await;
    assert!(!today().await.contains("id=\"low-balance\""), "a balance behind them is not low");
    app.stop().await;
}

#[tokio::test]
async fn an_owner_blocks_a_caller_from_the_call_page_and_unblocks_from_the_contact_page() {
    let app = spawn_app().await;
    let owner = crate::helpers::signed_in_owner(&app, "ben@example.com", "Ben's Barbers", NUMBER).await;
    let api = |path: &str| format!("{}{path}", app.base_url);
    assert!(call_in(&app, "CA-first", "+15559990000").await.contains("<Connect>"), "not blocked yet");
    let page = owner.client.get(api("/app/calls/CA-first")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Block this number"), "{page}");

    let blocked = owner
        .client
        .post(api("/app/settings/blocked"))
        .form(&[("csrf_token", owner.csrf_token.as_str()), ("phone", "+15559990000"), ("back", "/app/calls/CA-first")])
        .send()
        .await
        .unwrap();
    assert_eq!(blocked.headers()["location"], "/app/calls/CA-first", "back to the call");
    let page = owner.client.get(api("/app/calls/CA-first")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Unblock this number"), "the call page shows the number blocked");
    let refused = call_in(&app, "CA-second", "+15559990000").await;
    assert!(refused.contains("not taking your calls") && refused.contains("<Hangup/>"), "{refused}");

    // The caller's contact shows it blocked too, and unblocks it.
    let contact: i64 = sqlx::query_scalar(
        "INSERT INTO contacts (client_id, phone, name) VALUES ($1, '+15559990000', 'Robo') RETURNING id",
    )
    .bind(owner.client_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let page = owner.client.get(api(&format!("/app/contacts/{contact}"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Unblock this number"), "{page}");
    let back = format!("/app/contacts/{contact}");
    let unblocked = owner
        .client
        .post(api("/app/settings/blocked/remove"))
        .form(&[("csrf_token", owner.csrf_token.as_str()), ("phone", "+15559990000"), ("back", back.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(unblocked.headers()["location"], back.as_str());
    assert!(call_in(&app, "CA-third", "+15559990000").await.contains("<Connect>"), "let in again");
    // A form pointed at another site goes to Settings instead.
    let elsewhere = owner
        .client
        .post(api("/app/settings/blocked"))
        .form(&[
            ("csrf_token", owner.csrf_token.as_str()),
            ("phone", "+15559990001"),
            ("back", "https://evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.headers()["location"], "/app/settings?saved=blocked#blocked");
    app.stop().await;
}
