//! Paying through Stripe against a loopback fake Stripe that speaks its form-encoded API and
//! signs its webhooks as Stripe does: Checkout reloads applied once whatever the deliveries,
//! forged and stale events refused, refunds taken back, automatic reloads of a saved card,
//! and a locked account brought back by a reload.

use std::time::Duration;

use ringlypro::domain::ids::{TenantId, UserId};
use ringlypro::services::credits::AutoReloadDue;
use ringlypro::services::payments::{AutoReloadSettings, ReloadStart};
use serde_json::json;
use sqlx::PgPool;

use crate::fakes::stripe::{CARD_AUTHENTICATION_REQUIRED, CARD_OK, Delivery, FakeStripe, Signing, WEBHOOK_SECRET};
use crate::helpers::{Options, TestApp, spawn_app_with, voice_params};

const NUMBER: &str = "+15550001111";

struct Setup {
    app: TestApp,
    stripe: FakeStripe,
    tenant: TenantId,
    owner: UserId,
}

async fn with_stripe(extra_secret: Option<&str>) -> Setup {
    let stripe = FakeStripe::start().await;
    let secrets = match extra_secret {
        Some(old) => format!("{old},{WEBHOOK_SECRET}"),
        None => WEBHOOK_SECRET.to_owned(),
    };
    let app = spawn_app_with(Options {
        env: vec![
            ("STRIPE_SECRET_KEY", stripe.secret_key.clone()),
            ("STRIPE_WEBHOOK_SECRET", secrets),
            ("STRIPE_API_BASE", stripe.base_url.clone()),
        ],
        ..Default::default()
    })
    .await;
    stripe.deliver_to(&format!("{}/webhooks/stripe", app.base_url));
    let tenant = app.add_tenant("Bright Smile Dental", NUMBER, "America/New_York").await;
    let owner: i64 =
        sqlx::query_scalar("INSERT INTO users (email, password_hash) VALUES ('owner@example.com', 'x') RETURNING id")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    Setup { app, stripe, tenant, owner: UserId(owner) }
}

async fn balance(pool: &PgPool, tenant: TenantId) -> (i64, bool) {
    sqlx::query_as("SELECT balance_cents, locked FROM credit_accounts WHERE client_id = $1")
        .bind(tenant)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn ledger(pool: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT kind, amount_cents FROM payment_transactions ORDER BY id").fetch_all(pool).await.unwrap()
}

async fn reload(s: &Setup, amount: i64, key: &str) -> (i64, String) {
    match s.app.state.payments.start_reload(s.tenant, s.owner, amount, key).await.unwrap() {
        ReloadStart::Checkout { reload_id, url } => (reload_id, url),
        other => panic!("with Stripe configured a reload goes to Checkout, got {other:?}"),
    }
}

fn session_id(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

async fn call(app: &TestApp, sid: &str) -> String {
    reqwest::Client::new()
        .post(format!("{}/twilio/voice", app.base_url))
        .form(&voice_params(sid, "+15557654321", NUMBER))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn ended(app: &TestApp, sid: &str, seconds: u32) {
    let form = [
        ("CallSid".to_string(), sid.to_string()),
        ("CallStatus".into(), "completed".into()),
        ("CallDuration".into(), seconds.to_string()),
    ];
    let r = reqwest::Client::new().post(format!("{}/twilio/status", app.base_url)).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn a_checkout_reload_is_credited_once_whatever_the_order_and_number_of_deliveries() {
    let s = with_stripe(None).await;
    let (reload_id, url) = reload(&s, 2000, "form-1").await;
    // A double-submitted form is the same reload and the same Checkout page.
    assert_eq!(reload(&s, 2000, "form-1").await, (reload_id, url.clone()));
    let sessions = s.stripe.checkout_sessions();
    assert_eq!(sessions.len(), 1);
    let params = &sessions[0].params;
    assert_eq!(params["mode"], "payment");
    assert_eq!(params["line_items[0][price_data][unit_amount]"], "2000");
    assert_eq!(params["metadata[client_id]"], s.tenant.to_string());
    assert_eq!(params["payment_intent_data[metadata][client_id]"], s.tenant.to_string());
    assert!(sessions[0].idempotency_key.is_some());

    let statuses = s.stripe.pay(&session_id(&url), CARD_OK, Delivery { payment_first: true, copies: 3 }).await;
    assert_eq!(statuses.len(), 6);
    assert!(statuses.iter().all(|st| *st == 200), "{statuses:?}");
    assert_eq!(balance(&s.app.pool, s.tenant).await, (2000, false));
    assert_eq!(ledger(&s.app.pool).await, vec![("reload".to_string(), 2000)]);
    let status: String = sqlx::query_scalar("SELECT status FROM credit_reloads WHERE id = $1")
        .bind(reload_id)
        .fetch_one(&s.app.pool)
        .await
        .unwrap();
    assert_eq!(status, "paid");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_events").fetch_one(&s.app.pool).await.unwrap();
    assert_eq!(events, 2, "each event id stored once");
    s.app.stop().await;
}

#[tokio::test]
async fn forged_stale_and_tampered_events_are_refused_and_a_rolled_secret_is_accepted() {
    let s = with_stripe(Some("whsec_old_secret")).await;
    let event = s.stripe.event(
        "payment_intent.succeeded",
        json!({"id": "pi_forged", "object": "payment_intent", "status": "succeeded", "amount": 10000,
               "amount_received": 10000, "currency": "usd", "metadata": {"client_id": s.tenant.to_string()}}),
    );
    let hour_ago = chrono::Utc::now().timestamp() - 3600;
    for signing in [
        Signing::None,
        Signing::Tampered,
        Signing::At(hour_ago),
        Signing::At(chrono::Utc::now().timestamp() + 3600),
        Signing::WithSecret("whsec_someone_else".into()),
    ] {
        assert_eq!(s.stripe.send_event(&event, signing.clone()).await, 400, "{signing:?}");
    }
    assert_eq!(balance(&s.app.pool, s.tenant).await.0, 0, "nothing applied");
    // Signed with the old secret while it is being rolled: accepted.
    assert_eq!(s.stripe.send_event(&event, Signing::WithSecret("whsec_old_secret".into())).await, 200);
    assert_eq!(balance(&s.app.pool, s.tenant).await.0, 10000);
    // The same event again (a replay with a fresh signature) changes nothing.
    assert_eq!(s.stripe.send_event(&event, Signing::AlsoWithSecret("whsec_unknown".into())).await, 200);
    assert_eq!(balance(&s.app.pool, s.tenant).await.0, 10000);
    // Garbage with a good signature is a clear 400, not a crash.
    let raw = reqwest::Client::new()
        .post(format!("{}/webhooks/stripe", s.app.base_url))
        .header(
            "Stripe-Signature",
            ringlypro::vendors::stripe::webhook::sign(b"not json", WEBHOOK_SECRET, chrono::Utc::now().timestamp()),
        )
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    s.app.stop().await;
}

#[tokio::test]
async fn a_refund_takes_the_credit_back_once_and_may_lock_the_account_again() {
    let s = with_stripe(None).await;
    sqlx::query("UPDATE credit_accounts SET free_minutes_used = free_minutes_limit, locked = true")
        .execute(&s.app.pool)
        .await
        .unwrap();
    let (_, url) = reload(&s, 1000, "r1").await;
    s.stripe.pay(&session_id(&url), CARD_OK, Delivery::default()).await;
    assert_eq!(balance(&s.app.pool, s.tenant).await, (1000, false));
    let intent: String =
        sqlx::query_scalar("SELECT stripe_payment_intent FROM payment_transactions WHERE kind = 'reload'")
            .fetch_one(&s.app.pool)
            .await
            .unwrap();
    // A call spends 30 cents, then part of the payment is refunded, then the rest.
    assert!(call(&s.app, "CA-spend").await.contains("<Stream"));
    ended(&s.app, "CA-spend", 170).await;
    assert_eq!(balance(&s.app.pool, s.tenant).await.0, 970);
    assert!(s.stripe.refund(&intent, 400).await.iter().all(|st| *st == 200));
    assert_eq!(balance(&s.app.pool, s.tenant).await, (570, false));
    assert!(s.stripe.refund(&intent, 600).await.iter().all(|st| *st == 200));
    assert_eq!(
        balance(&s.app.pool, s.tenant).await,
        (-30, true),
        "the spent part stays owed, and calls go to the owner"
    );
    let refunds: Vec<(String, i64)> = ledger(&s.app.pool).await.into_iter().filter(|(k, _)| k == "refund").collect();
    assert_eq!(refunds, vec![("refund".to_string(), -400), ("refund".to_string(), -600)]);
    assert!(call(&s.app, "CA-after").await.contains("<Dial"));
    s.app.stop().await;
}

#[tokio::test]
async fn a_refund_that_arrives_before_its_payment_is_applied_when_stripe_delivers_it_again() {
    let s = with_stripe(None).await;
    let refund = s.stripe.event(
        "charge.refunded",
        json!({"id": "ch_early", "object": "charge", "amount": 2000, "amount_refunded": 500, "refunded": false,
               "payment_intent": "pi_early", "metadata": {}}),
    );
    assert_eq!(s.stripe.send_event(&refund, Signing::Valid).await, 500, "not ours yet: deliver again later");
    let paid = s.stripe.event(
        "payment_intent.succeeded",
        json!({"id": "pi_early", "object": "payment_intent", "status": "succeeded", "amount": 2000,
               "amount_received": 2000, "metadata": {"client_id": s.tenant.to_string()}}),
    );
    assert_eq!(s.stripe.send_event(&paid, Signing::Valid).await, 200);
    assert_eq!(s.stripe.send_event(&refund, Signing::Valid).await, 200);
    assert_eq!(s.stripe.send_event(&refund, Signing::Valid).await, 200);
    assert_eq!(balance(&s.app.pool, s.tenant).await.0, 1500);
    s.app.stop().await;
}

#[tokio::test]
async fn a_locked_account_is_back_with_the_agent_on_the_next_call_after_a_checkout_reload() {
    let s = with_stripe(None).await;
    sqlx::query("UPDATE credit_accounts SET free_minutes_used = free_minutes_limit, balance_cents = 5, locked = true")
        .execute(&s.app.pool)
        .await
        .unwrap();
    assert!(call(&s.app, "CA-locked").await.contains("<Dial"), "locked: the owner's phone rings");
    let (_, url) = reload(&s, 5000, "unlock").await;
    // The owner pays on the hosted page: it redirects back to our return page.
    let page = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let paid = page.post(&url).form(&[("card", CARD_OK)]).send().await.unwrap();
    assert_eq!(paid.status(), 303);
    let back = paid.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.starts_with(&format!("{}/app/credits/return?reload=", s.app.base_url)), "{back}");
    assert!(!back.contains("{CHECKOUT_SESSION_ID}"));
    assert_eq!(balance(&s.app.pool, s.tenant).await, (5005, false));
    assert!(call(&s.app, "CA-unlocked").await.contains("<Stream"), "the very next call reaches the agent");
    s.app.stop().await;
}

async fn save_card(s: &Setup, card: &str) {
    let url = match s.app.state.payments.start_card_setup(s.tenant, s.owner).await.unwrap() {
        ReloadStart::Checkout { url, .. } => url,
        other => panic!("{other:?}"),
    };
    let statuses = s.stripe.pay(&session_id(&url), card, Delivery::default()).await;
    assert!(statuses.iter().all(|st| *st == 200), "{statuses:?}");
    s.app
        .state
        .payments
        .set_auto_reload(s.tenant, AutoReloadSettings { enabled: true, amount_cents: 2000, threshold_cents: 500 })
        .await
        .unwrap();
}

async fn wait_for_balance(pool: &PgPool, tenant: TenantId, want: i64) -> i64 {
    for _ in 0..100 {
        let (b, _) = balance(pool, tenant).await;
        if b == want {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    balance(pool, tenant).await.0
}

#[tokio::test]
async fn crossing_the_threshold_charges_the_saved_card_once() {
    let s = with_stripe(None).await;
    // Auto-reload needs a saved card first.
    let refused = s
        .app
        .state
        .payments
        .set_auto_reload(s.tenant, AutoReloadSettings { enabled: true, amount_cents: 2000, threshold_cents: 500 })
        .await;
    assert!(refused.is_err());
    save_card(&s, CARD_OK).await;
    sqlx::query("UPDATE credit_accounts SET free_minutes_used = free_minutes_limit, balance_cents = 520")
        .execute(&s.app.pool)
        .await
        .unwrap();
    call(&s.app, "CA-cross").await;
    ended(&s.app, "CA-cross", 100).await; // 2 minutes: 520 → 500, not yet under
    call(&s.app, "CA-cross-2").await;
    ended(&s.app, "CA-cross-2", 60).await; // 500 → 490: crossed
    assert_eq!(wait_for_balance(&s.app.pool, s.tenant, 2490).await, 2490);
    // The webhook of the same payment and a retry of the same crossing change nothing.
    assert!(s.stripe.wait_for_deliveries(2, Duration::from_secs(5)).await, "card saved, then the payment");
    let due: (String, String) =
        sqlx::query_as("SELECT stripe_customer_id, stripe_payment_method_id FROM credit_accounts WHERE client_id = $1")
            .bind(s.tenant)
            .fetch_one(&s.app.pool)
            .await
            .unwrap();
    s.app
        .state
        .payments
        .auto_reload(&AutoReloadDue {
            client_id: s.tenant,
            amount_cents: 2000,
            idempotency_key: format!("auto-reload:{}:1", s.tenant),
            customer: due.0,
            payment_method: due.1,
        })
        .await
        .unwrap();
    assert_eq!(balance(&s.app.pool, s.tenant).await.0, 2490);
    let autos: Vec<(String, i64)> = ledger(&s.app.pool).await.into_iter().filter(|(k, _)| k == "auto_reload").collect();
    assert_eq!(autos, vec![("auto_reload".to_string(), 2000)]);
    s.app.stop().await;
}

#[tokio::test]
async fn a_declined_automatic_reload_keeps_the_account_working_and_tells_the_owner() {
    let s = with_stripe(None).await;
    save_card(&s, CARD_AUTHENTICATION_REQUIRED).await;
    sqlx::query("UPDATE credit_accounts SET free_minutes_used = free_minutes_limit, balance_cents = 510")
        .execute(&s.app.pool)
        .await
        .unwrap();
    call(&s.app, "CA-declined").await;
    ended(&s.app, "CA-declined", 30).await; // one minute: 510 → 500, not yet under
    call(&s.app, "CA-declined-2").await;
    ended(&s.app, "CA-declined-2", 30).await; // 500 → 490: crossed
    let mut problem: Option<String> = None;
    for _ in 0..100 {
        problem = sqlx::query_scalar("SELECT auto_reload_problem FROM credit_accounts WHERE client_id = $1")
            .bind(s.tenant)
            .fetch_one(&s.app.pool)
            .await
            .unwrap();
        if problem.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(problem.unwrap().contains("confirm"), "the owner reads why");
    assert_eq!(balance(&s.app.pool, s.tenant).await, (490, false), "still answering until the balance runs out");
    let mut alerts = 0i64;
    for _ in 0..100 {
        alerts = sqlx::query_scalar("SELECT count(*) FROM messages WHERE kind = 'auto_reload_failed_alert'")
            .fetch_one(&s.app.pool)
            .await
            .unwrap();
        if alerts > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The failed-payment webhook arrives too; the owner is told once.
    assert!(s.stripe.wait_for_deliveries(2, Duration::from_secs(5)).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let alerts_after: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE kind = 'auto_reload_failed_alert'")
        .fetch_one(&s.app.pool)
        .await
        .unwrap();
    assert_eq!((alerts, alerts_after), (1, 1));
    assert!(call(&s.app, "CA-still").await.contains("<Stream"));
    s.app.stop().await;
}

#[tokio::test]
async fn fifty_calls_ending_while_a_checkout_payment_arrives_leave_ledger_and_balance_agreeing() {
    let s = with_stripe(None).await;
    sqlx::query("UPDATE credit_accounts SET free_minutes_used = free_minutes_limit, balance_cents = 1000")
        .execute(&s.app.pool)
        .await
        .unwrap();
    for i in 0..50 {
        let twiml = call(&s.app, &format!("CA-rush-{i}")).await;
        assert!(twiml.contains("<Stream"));
    }
    let (_, url) = reload(&s, 5000, "mid-rush").await;
    let mut ends = Vec::new();
    for i in 0..50 {
        let base = s.app.base_url.clone();
        ends.push(tokio::spawn(async move {
            let form = [
                ("CallSid".to_string(), format!("CA-rush-{i}")),
                ("CallStatus".into(), "completed".into()),
                ("CallDuration".into(), "119".into()),
            ];
            reqwest::Client::new().post(format!("{base}/twilio/status")).form(&form).send().await.unwrap().status()
        }));
    }
    let paid = s.stripe.pay(&session_id(&url), CARD_OK, Delivery { payment_first: false, copies: 2 }).await;
    for e in ends {
        assert_eq!(e.await.unwrap(), 204);
    }
    assert!(paid.iter().all(|st| *st == 200), "{paid:?}");
    // 50 calls × 2 minutes × 10 cents = $10.00 charged; $50.00 paid once.
    let (balance_cents, locked) = balance(&s.app.pool, s.tenant).await;
    assert_eq!(balance_cents, 1000 + 5000 - 1000);
    assert!(!locked);
    let (charged, credited): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COALESCE(SUM(cost_cents), 0) FROM usage_records)::bigint, \
                (SELECT COALESCE(SUM(amount_cents), 0) FROM payment_transactions)::bigint",
    )
    .fetch_one(&s.app.pool)
    .await
    .unwrap();
    assert_eq!((charged, credited), (1000, 5000));
    s.app.stop().await;
}

#[tokio::test]
async fn an_owner_back_from_checkout_before_the_webhook_sees_payment_processing_then_paid() {
    let s = with_stripe(None).await;
    let owner = crate::helpers::signed_in_owner(&s.app, "dana@example.com", "Dana's Dental", "+15550009999").await;
    let started = owner
        .client
        .post(format!("{}/api/credits/reload", s.app.base_url))
        .header("X-CSRF-Token", &owner.csrf_token)
        .json(&json!({"amount_cents": 5000, "request_key": "api-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 201);
    let started: serde_json::Value = started.json().await.unwrap();
    let id = started["reload_id"].as_i64().unwrap();
    let checkout = started["checkout_url"].as_str().unwrap().to_owned();
    assert!(checkout.starts_with(&s.stripe.base_url), "{checkout}");
    // Back on our return page before Stripe's event: still processing.
    let page = owner.client.get(format!("{}/app/credits/return?reload={id}", s.app.base_url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Payment processing"));
    let status = |c: reqwest::Client| {
        let url = format!("{}/api/credits/reloads/{id}", s.app.base_url);
        async move { c.get(url).send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    assert_eq!(status(owner.client.clone()).await["status"], "pending");
    s.stripe.pay(&session_id(&checkout), CARD_OK, Delivery::default()).await;
    let now = status(owner.client.clone()).await;
    assert_eq!((now["status"].as_str(), now["balance_cents"].as_i64()), (Some("paid"), Some(5000)));
    let credits: serde_json::Value =
        owner.client.get(format!("{}/api/credits", s.app.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(credits["balance_cents"], 5000);
    assert_eq!(credits["locked"], false);
    s.app.stop().await;
}
