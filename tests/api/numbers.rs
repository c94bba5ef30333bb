//! Numbers bought from a fake Twilio: at signup a local number near the business phone,
//! pointed at us; a candidate taken between search and purchase skipped; an outage that
//! leaves the number pending with a clear message until a later try (or an administrator)
//! finishes; one number per tenant with two instances at work; and the number released
//! when the account is closed.

use std::time::Duration;

use chrono::Utc;
use ringlypro::domain::ids::TenantId;
use ringlypro::storage::postgres::admin;
use sqlx::PgPool;

use crate::fakes::twilio::{self, FakeTwilio};
use crate::helpers::{Options, TestApp, add_tenant, cookie_client, sign_up, spawn_app_with, voice_params};

async fn app_with(fake: &FakeTwilio, database_url: Option<String>) -> TestApp {
    let mut env = fake.env();
    if let Some(url) = database_url {
        env.push(("DATABASE_URL", url));
    }
    spawn_app_with(Options { env, ..Options::default() }).await
}

async fn number_of(pool: &PgPool, tenant: TenantId) -> Option<String> {
    sqlx::query_scalar("SELECT ringlypro_number FROM clients WHERE id = $1").bind(tenant).fetch_one(pool).await.unwrap()
}

/// Waits (bounded) for the tenant's number to be bought.
async fn bought_number(pool: &PgPool, tenant: TenantId) -> String {
    for _ in 0..100 {
        if let Some(number) = number_of(pool, tenant).await {
            return number;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no number was bought");
}

/// A call to `number`, signed as Twilio signs it.
async fn call_to(app: &TestApp, sid: &str, number: &str) -> String {
    let params = voice_params(sid, "+15557654321", number);
    let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    twilio::post_signed(&app.base_url, "/twilio/voice", twilio::AUTH_TOKEN, &params).await.text().await.unwrap()
}

#[tokio::test]
async fn signup_buys_a_local_number_pointed_at_us_skipping_one_taken_since_the_search() {
    let fake = FakeTwilio::start().await;
    // The business phone is (555) 123-4567: numbers in 555 are offered, the first is gone.
    fake.offer_numbers(&["+12125550100", "+15551230001", "+15551230002"]);
    fake.take("+15551230001");
    let app = app_with(&fake, None).await;
    let owner = sign_up(&app, &cookie_client(), "dana@example.com", "Bright Smile Dental").await;
    assert_eq!(bought_number(&app.pool, owner.client_id).await, "+15551230002");
    let bought = fake.bought();
    assert_eq!(bought.len(), 1, "one number bought");
    let (number, form) = &bought[0];
    assert_eq!(number, "+15551230002");
    assert_eq!(form["VoiceUrl"], format!("{}/twilio/voice", app.base_url));
    assert_eq!(form["StatusCallback"], format!("{}/twilio/status", app.base_url));
    assert_eq!(form["SmsUrl"], format!("{}/twilio/sms", app.base_url));
    let answer = call_to(&app, "CA-first", "+15551230002").await;
    assert!(answer.contains("<Connect>"), "a call to it reaches the agent: {answer}");
    app.stop().await;
}

#[tokio::test]
async fn an_outage_leaves_the_number_pending_with_a_message_until_an_admin_retry_buys_it() {
    let fake = FakeTwilio::start().await;
    // Two numbers: the administrator's own signup takes one.
    fake.offer_numbers(&["+15551230001", "+15551230002"]);
    fake.fail_next_searches(1);
    let app = app_with(&fake, None).await;
    let client = cookie_client();
    let owner = sign_up(&app, &client, "dana@example.com", "Bright Smile Dental").await;
    // The first try fails: the order waits with the reason, the account works.
    let mut error = None;
    for _ in 0..100 {
        error = sqlx::query_scalar::<_, Option<String>>("SELECT last_error FROM number_orders WHERE client_id = $1")
            .bind(owner.client_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if error.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(error.as_deref().is_some_and(|e| e.contains("503")), "{error:?}");
    assert_eq!(number_of(&app.pool, owner.client_id).await, None);
    let today = client.get(format!("{}/app", app.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(today.contains("number-pending") && today.contains("number-trouble"), "the owner is told");

    // An administrator sees why and retries at once.
    let admin_client = cookie_client();
    let hq = sign_up(&app, &admin_client, "ops@example.com", "RinglyPro HQ").await;
    assert!(admin::grant(&app.pool, "ops@example.com").await.unwrap());
    let page = admin_client
        .get(format!("{}/admin/tenants/{}", app.base_url, owner.client_id))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("last error") && page.contains("Retry buying the number now"), "{page}");
    let retried = admin_client
        .post(format!("{}/admin/tenants/{}/number/retry", app.base_url, owner.client_id))
        .form(&[("csrf_token", hq.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 303);
    let number = bought_number(&app.pool, owner.client_id).await;
    assert!(number.starts_with("+1555123000"), "{number}");
    let today = client.get(format!("{}/app", app.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(!today.contains("number-trouble") && today.contains("(555) 123-000"), "the number is shown");
    app.stop().await;
}

#[tokio::test]
async fn two_instances_working_the_same_orders_buy_one_number_per_tenant() {
    let fake = FakeTwilio::start().await;
    let offered: Vec<String> = (0..20).map(|i| format!("+1555123{i:04}")).collect();
    fake.offer_numbers(&offered.iter().map(String::as_str).collect::<Vec<_>>());
    let a = app_with(&fake, None).await;
    let b = app_with(&fake, Some(a.state.config.database_url.clone())).await;
    let mut tenants = Vec::new();
    for i in 0..6 {
        let tenant = add_tenant(&a.pool, &format!("Shop {i}"), &format!("+1555000{i:04}"), "America/New_York").await;
        // Tenants waiting for their number: none held yet.
        sqlx::query("UPDATE clients SET ringlypro_number = NULL WHERE id = $1")
            .bind(tenant)
            .execute(&a.pool)
            .await
            .unwrap();
        sqlx::query("DELETE FROM ringlypro_numbers WHERE client_id = $1").bind(tenant).execute(&a.pool).await.unwrap();
        sqlx::query("INSERT INTO number_orders (client_id, area_code) VALUES ($1, '555')")
            .bind(tenant)
            .execute(&a.pool)
            .await
            .unwrap();
        tenants.push(tenant);
    }
    let now = Utc::now();
    let (x, y) = tokio::join!(a.state.numbers.work_due(now), b.state.numbers.work_due(now));
    assert_eq!(x.unwrap() + y.unwrap(), 6, "every order finished once");
    assert_eq!(fake.bought().len(), 6, "one purchase per tenant");
    let mut numbers = Vec::new();
    for tenant in tenants {
        numbers.push(number_of(&a.pool, tenant).await.expect("a number"));
    }
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), 6, "no two tenants share a number");
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn closing_an_account_releases_its_number_once() {
    let fake = FakeTwilio::start().await;
    fake.offer_numbers(&["+15551230001"]);
    let app = app_with(&fake, None).await;
    let owner = sign_up(&app, &cookie_client(), "dana@example.com", "Bright Smile Dental").await;
    let number = bought_number(&app.pool, owner.client_id).await;
    let admin_client = cookie_client();
    let hq = sign_up(&app, &admin_client, "ops@example.com", "RinglyPro HQ").await;
    assert!(admin::grant(&app.pool, "ops@example.com").await.unwrap());
    for _ in 0..2 {
        let closed = admin_client
            .post(format!("{}/admin/tenants/{}/close", app.base_url, owner.client_id))
            .form(&[("csrf_token", hq.csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(closed.status(), 303);
    }
    for _ in 0..100 {
        if !fake.released().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A pass after the release finds nothing more to do.
    app.state.numbers.work_due(Utc::now()).await.unwrap();
    let released = fake.released();
    assert_eq!(released.len(), 1, "released once: {released:?}");
    assert!(released[0].starts_with("PN"));
    assert_eq!(number_of(&app.pool, owner.client_id).await, None);
    let answer = call_to(&app, "CA-late", &number).await;
    assert!(answer.contains("not in service"), "{answer}");
    app.stop().await;
}
