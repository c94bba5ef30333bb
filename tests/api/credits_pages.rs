//! The Credits page and `/api/credits`: balance, free minutes, the reset, the ledger with
//! each call's cost or the reason it cost nothing, minutes per local day, reloads confirmed
//! by an administrator, adjustments, and the read-only lock.

use chrono::{Datelike, Days, TimeZone, Utc};
use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use ringlypro::domain::credits::next_reset;
use ringlypro::domain::ids::TenantId;
use ringlypro::storage::postgres::admin;
use serde_json::{Value, json};

use crate::helpers::{SignedIn, TestApp, browser, sign_up, signed_in_owner, spawn_app, voice_params};

const NUMBER: &str = "+15550002222";
const ZONE: chrono_tz::Tz = chrono_tz::America::New_York;

/// A call to the tenant's number that Twilio reports ended after `seconds`.
async fn call(app: &TestApp, sid: &str, seconds: u32) {
    let client = reqwest::Client::new();
    let voice = client
        .post(format!("{}/twilio/voice", app.base_url))
        .form(&voice_params(sid, "+15557654321", NUMBER))
        .send()
        .await
        .unwrap();
    assert_eq!(voice.status(), StatusCode::OK);
    let status =
        [("CallSid", sid.to_owned()), ("CallStatus", "completed".into()), ("CallDuration", seconds.to_string())];
    let r = client.post(format!("{}/twilio/status", app.base_url)).form(&status).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

async fn set_credit(app: &TestApp, client_id: TenantId, free_used: i32, balance_cents: i64, locked: bool) {
    sqlx::query(
        "UPDATE credit_accounts SET free_minutes_used = $2, balance_cents = $3, locked = $4 WHERE client_id = $1",
    )
    .bind(client_id)
    .bind(free_used)
    .bind(balance_cents)
    .bind(locked)
    .execute(&app.pool)
    .await
    .unwrap();
}

struct Owner {
    inner: SignedIn,
    base_url: String,
}

impl Owner {
    async fn new(app: &TestApp) -> Owner {
        Owner {
            inner: signed_in_owner(app, "dana@smiles.example", "Smiles Dental", NUMBER).await,
            base_url: app.base_url.clone(),
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.inner.client.get(format!("{}{path}", self.base_url)).send().await.unwrap()
    }

    async fn text(&self, path: &str) -> String {
        let r = self.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.text().await.unwrap()
    }

    async fn json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.unwrap()
    }

    async fn form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form = fields.to_vec();
        form.push(("csrf_token", &self.inner.csrf_token));
        self.inner.client.post(format!("{}{path}", self.base_url)).form(&form).send().await.unwrap()
    }

    async fn send(&self, method: Method, path: &str, body: Value) -> reqwest::Response {
        self.inner
            .client
            .request(method, format!("{}{path}", self.base_url))
            .header("X-CSRF-Token", &self.inner.csrf_token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

/// An administrator signed in on their own client, with their CSRF token.
struct Administrator {
    client: reqwest::Client,
    csrf: String,
    base_url: String,
}

impl Administrator {
    async fn new(app: &TestApp) -> Administrator {
        let client = browser();
        let signed = sign_up(app, &client, "ops@ringlypro.example", "RinglyPro HQ").await;
        assert!(admin::grant(&app.pool, "ops@ringlypro.example").await.unwrap());
        Administrator { client, csrf: signed.csrf, base_url: app.base_url.clone() }
    }

    async fn form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form = fields.to_vec();
        form.push(("csrf_token", &self.csrf));
        self.client.post(format!("{}{path}", self.base_url)).form(&form).send().await.unwrap()
    }

    async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base_url))
            .header("X-CSRF-Token", &self.csrf)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

fn location(r: &reqwest::Response) -> String {
    r.headers().get(LOCATION).expect("a redirect").to_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_credits_page_shows_the_balance_the_free_minutes_the_reset_and_each_calls_cost_or_reason() {
    let app = spawn_app().await;
    let owner = Owner::new(&app).await;
    set_credit(&app, owner.inner.client_id, 99, 500, false).await;
    call(&app, "CA_LONG", 67).await; // 2 minutes: the last free one, then one paid at $0.10
    call(&app, "CA_SHORT", 10).await; // under 15 seconds: not charged

    let page = owner.text("/app/credits").await;
    assert!(page.contains("id=\"credit-balance\">$4.90<"), "{page}");
    assert!(page.contains("id=\"credit-free\">0<"));
    let reset = next_reset(Utc::now(), ZONE).with_timezone(&ZONE).format("resets %b %-d").to_string();
    assert!(page.contains(&reset), "the reset date in the tenant's zone: {reset}");
    assert!(page.contains("href=\"/app/calls/CA_LONG\""), "a charged call links to its page");
    assert!(page.contains("2 min (1 free, 1 paid)"));
    assert!(page.contains("-$0.10"));
    assert!(page.contains("href=\"/app/calls/CA_SHORT\""));
    assert!(page.contains("Not charged: the call lasted less than 15 seconds."));
    assert!(page.contains("<svg class=\"chart\""), "the usage chart is drawn on the server");
    assert!(page.contains("2 minutes in all"));
    assert!(!page.contains("id=\"low-balance\""), "$4.90 is not low");
    for amount in ["1000", "2000", "5000", "10000"] {
        assert!(page.contains(&format!("id=\"reload-{amount}\"")), "a ${amount} reload button");
    }
    assert!(!page.contains("id=\"lock-banner\""), "not locked");

    // The call's own page says what it cost, or why nothing.
    let long = owner.text("/app/calls/CA_LONG").await;
    assert!(long.contains("Cost: 2 min (1 free, 1 paid) $0.10"), "{long}");
    let short = owner.text("/app/calls/CA_SHORT").await;
    assert!(short.contains("Not charged: the call lasted less than 15 seconds."));
    let json = owner.json("/api/calls/CA_LONG").await;
    assert_eq!(json["charge"]["cost_cents"], 10);
    assert_eq!(json["charge"]["paid_minutes"], 1);
    let json = owner.json("/api/calls/CA_SHORT").await;
    assert_eq!(json["charge"]["not_charged"], "too_short");

    // Today's figures lead here, and the cancelled Checkout says nothing was charged.
    let today = owner.text("/app").await;
    assert!(today.contains("href=\"/app/credits\""));
    assert!(owner.text("/app/credits?cancelled=1").await.contains("Reload cancelled, nothing was charged."));
    app.stop().await;
}

#[tokio::test]
async fn the_api_figures_match_the_ledger_and_minutes_count_on_the_calls_local_day() {
    let app = spawn_app().await;
    let owner = Owner::new(&app).await;
    set_credit(&app, owner.inner.client_id, 99, 500, false).await;
    call(&app, "CA_LONG", 67).await;
    call(&app, "CA_SHORT", 10).await;
    // The long call started at 23:30 yesterday in New York: already today in UTC.
    let yesterday = Utc::now().with_timezone(&ZONE).date_naive().checked_sub_days(Days::new(1)).unwrap();
    let late = ZONE.from_local_datetime(&yesterday.and_hms_opt(23, 30, 0).unwrap()).earliest().unwrap();
    sqlx::query("UPDATE calls SET started_at = $2 WHERE call_sid = $1")
        .bind("CA_LONG")
        .bind(late.with_timezone(&Utc))
        .execute(&app.pool)
        .await
        .unwrap();

    let body = owner.json("/api/credits").await;
    assert_eq!(body["balance_cents"], 490);
    assert_eq!(body["free_minutes_left"], 0);
    assert_eq!(body["free_minutes_limit"], 100);
    assert_eq!(body["rate_cents_per_minute"], 10);
    assert_eq!(body["locked"], false);
    assert_eq!(body["low"], false);
    let resets_at = chrono::DateTime::parse_from_rfc3339(body["resets_at"].as_str().unwrap()).unwrap();
    assert_eq!(resets_at.with_timezone(&ZONE).day(), 1);
    assert_eq!(body["auto_reload"]["card_saved"], false);

    let ledger = body["ledger"].as_array().unwrap();
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[0]["balance_after_cents"], body["balance_cents"], "the newest line ends at the balance");
    let spent: i64 = ledger.iter().map(|l| l["cost_cents"].as_i64().unwrap()).sum();
    assert_eq!(500 - spent, 490);
    let long = ledger.iter().find(|l| l["call_sid"] == "CA_LONG").unwrap();
    assert_eq!(
        (long["kind"].as_str(), long["minutes"].as_i64(), long["cost_cents"].as_i64()),
        (Some("call"), Some(2), Some(10))
    );
    assert_eq!(long["balance_before_cents"], 500);
    let short = ledger.iter().find(|l| l["call_sid"] == "CA_SHORT").unwrap();
    assert_eq!(short["not_charged"], "too_short");
    assert_eq!(short["reason"], "Not charged: the call lasted less than 15 seconds.");

    let days = body["usage_by_day"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    let today = Utc::now().with_timezone(&ZONE).date_naive();
    assert_eq!(days[29]["date"], today.to_string());
    let on = |date: chrono::NaiveDate| days.iter().find(|d| d["date"] == date.to_string()).unwrap()["minutes"].clone();
    assert_eq!(on(yesterday), 2, "the call's minutes on its local day");
    assert_eq!(on(today), 0, "the short call used no minutes");

    let month = &body["value"]["month"];
    assert_eq!(month["spent_cents"], 10);
    assert_eq!(month["bookings"], 0);
    assert_eq!(month["cost_per_booking_cents"], Value::Null, "nothing to divide by");
    assert_eq!(body["value"]["last_30_days"]["calls_answered"], 2);

    // Auto-reload needs a saved card; its amount and threshold can be set before one.
    let settings = json!({ "enabled": true, "amount_cents": 5000, "threshold_cents": 1000 });
    let no_card = owner.send(Method::PUT, "/api/credits/auto-reload", settings).await;
    assert_eq!(no_card.status(), StatusCode::BAD_REQUEST);
    assert_eq!(no_card.json::<Value>().await.unwrap()["error"], "auto-reload needs a saved card first");
    let settings = json!({ "enabled": false, "amount_cents": 5000, "threshold_cents": 1000 });
    let saved = owner.send(Method::PUT, "/api/credits/auto-reload", settings).await;
    assert_eq!(saved.status(), StatusCode::OK);
    let saved: Value = saved.json().await.unwrap();
    assert_eq!((saved["enabled"].as_bool(), saved["amount_cents"].as_i64()), (Some(false), Some(5000)));
    assert_eq!(saved["threshold_cents"], 1000);
    let form = owner.form("/app/credits/auto-reload", &[("amount_cents", "1000"), ("threshold_cents", "200")]).await;
    assert_eq!(location(&form), "/app/credits?saved=1#auto-reload");
    assert_eq!(owner.json("/api/credits").await["auto_reload"]["amount_cents"], 1000);
    app.stop().await;
}

#[tokio::test]
async fn a_reload_waits_for_an_administrator_and_once_confirmed_adds_the_credit_once() {
    let app = spawn_app().await;
    let owner = Owner::new(&app).await;
    let ops = Administrator::new(&app).await;

    // The same form sent twice makes one reload.
    let fields = [("amount_cents", "2000"), ("request_key", "form-1")];
    let first = owner.form("/app/credits/reload", &fields).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let page_path = location(&first);
    assert!(page_path.starts_with("/app/credits/reloads/"), "{page_path}");
    let again = owner.form("/app/credits/reload", &fields).await;
    assert_eq!(location(&again), page_path);
    let reloads: i64 = sqlx::query_scalar("SELECT count(*) FROM credit_reloads").fetch_one(&app.pool).await.unwrap();
    assert_eq!(reloads, 1);
    let id: i64 = page_path.rsplit('/').next().unwrap().parse().unwrap();

    let waiting = owner.text(&page_path).await;
    assert!(waiting.contains("Waiting for confirmation"), "{waiting}");
    assert!(waiting.contains(&format!("data-poll=\"/api/credits/reloads/{id}\"")));
    assert!(owner.text("/app/credits").await.contains("waiting for confirmation"));
    let status = owner.json(&format!("/api/credits/reloads/{id}")).await;
    assert_eq!((status["status"].as_str(), status["amount_cents"].as_i64()), (Some("pending"), Some(2000)));

    // A bad amount is refused with the reason, on the page and in the API.
    let bad = owner.form("/app/credits/reload", &[("amount_cents", "1500"), ("request_key", "form-2")]).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("reloads are $10, $20, $50 or $100"));
    let bad = owner.send(Method::POST, "/api/credits/reload", json!({ "amount_cents": 1234 })).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(bad.json::<Value>().await.unwrap()["error"], "reloads are $10, $20, $50 or $100");

    // The administrator sees it waiting and confirms it.
    let admin_page = ops.client.get(format!("{}/admin", app.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(admin_page.contains(&format!("action=\"/admin/reloads/{id}/confirm\"")), "{admin_page}");
    let waiting: Value =
        ops.client.get(format!("{}/api/admin/reloads", app.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(waiting[0]["id"], id);
    let confirmed = ops.form(&format!("/admin/reloads/{id}/confirm"), &[]).await;
    assert_eq!(confirmed.status(), StatusCode::SEE_OTHER);

    let body = owner.json("/api/credits").await;
    assert_eq!(body["balance_cents"], 2000);
    assert_eq!(body["ledger"][0]["kind"], "manual_reload");
    assert_eq!(body["ledger"][0]["amount_cents"], 2000);
    assert_eq!(body["pending_reloads"], json!([]));
    let paid = owner.text(&page_path).await;
    assert!(paid.contains("Paid: $20.00 added. Your balance is now $20.00."), "{paid}");
    assert!(!paid.contains("data-poll"), "a settled reload stops asking");

    // Confirming twice adds nothing.
    let twice = ops.post_json(&format!("/api/admin/reloads/{id}/confirm"), json!({})).await;
    assert_eq!(twice.status(), StatusCode::BAD_REQUEST);
    assert_eq!(owner.json("/api/credits").await["balance_cents"], 2000);

    // The API starts a reload the same way.
    let started =
        owner.send(Method::POST, "/api/credits/reload", json!({ "amount_cents": 5000, "request_key": "api-1" })).await;
    assert_eq!(started.status(), StatusCode::CREATED);
    let started: Value = started.json().await.unwrap();
    assert_eq!((started["status"].as_str(), started["checkout_url"].clone()), (Some("pending"), Value::Null));
    let other = owner.get("/api/credits/reloads/999999").await;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn a_locked_account_is_read_only_but_reloading_settings_and_signing_out_still_work() {
    let app = spawn_app().await;
    let owner = Owner::new(&app).await;
    assert!(!owner.text("/app").await.contains("id=\"lock-banner\""));
    set_credit(&app, owner.inner.client_id, 100, 0, true).await;

    let refused = owner.send(Method::POST, "/api/contacts", json!({ "name": "Maria", "phone": "+15552010001" })).await;
    assert_eq!(refused.status(), StatusCode::PAYMENT_REQUIRED);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["reload_url"], "/app/credits");
    assert!(body["error"].as_str().unwrap().contains("Reload credit"));
    let form = owner.form("/app/contacts", &[("name", "Maria"), ("phone", "+15552010001")]).await;
    assert_eq!(form.status(), StatusCode::PAYMENT_REQUIRED);
    assert!(form.text().await.unwrap().contains("href=\"/app/credits\""));
    let contacts: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts").fetch_one(&app.pool).await.unwrap();
    assert_eq!(contacts, 0, "nothing was written");

    for path in ["/app", "/app/calls", "/app/contacts", "/app/settings", "/app/credits"] {
        let page = owner.text(path).await;
        assert!(page.contains("id=\"lock-banner\""), "{path} shows the lock banner");
        assert!(page.contains("Rachel is paused: free minutes used up and no balance left"));
    }
    assert!(owner.text("/app/credits").await.contains("id=\"locked-explained\""));
    assert_eq!(owner.json("/api/credits").await["locked"], true);

    let settings = owner.send(Method::PATCH, "/api/settings", json!({ "recording_enabled": false })).await;
    assert_eq!(settings.status(), StatusCode::OK, "settings stay open");
    let reload = owner.form("/app/credits/reload", &[("amount_cents", "1000"), ("request_key", "k")]).await;
    assert_eq!(reload.status(), StatusCode::SEE_OTHER, "reloading always works");

    let out = owner.form("/logout", &[]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = owner.get("/app").await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER, "signed out");
    app.stop().await;
}

#[tokio::test]
async fn an_administrators_adjustment_needs_a_reason_and_lands_in_the_ledger_once() {
    let app = spawn_app().await;
    let owner = Owner::new(&app).await;
    let ops = Administrator::new(&app).await;
    let id = owner.inner.client_id.0;
    let path = format!("/admin/tenants/{id}/credit");

    let page =
        ops.client.get(format!("{}/admin/tenants/{id}", app.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("action=\"{path}\"")));

    let no_reason = ops.form(&path, &[("amount", "5"), ("reason", " "), ("request_key", "a")]).await;
    assert_eq!(no_reason.status(), StatusCode::BAD_REQUEST);
    assert!(no_reason.text().await.unwrap().contains("an adjustment needs a reason"));
    let bad_amount = ops.form(&path, &[("amount", "five"), ("reason", "Goodwill"), ("request_key", "a")]).await;
    assert_eq!(bad_amount.status(), StatusCode::BAD_REQUEST);
    let payments: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payment_transactions").fetch_one(&app.pool).await.unwrap();
    assert_eq!(payments, 0);

    for _ in 0..2 {
        let done = ops
            .form(&path, &[("amount", "7.50"), ("reason", "Goodwill for a dropped call"), ("request_key", "b")])
            .await;
        assert_eq!(done.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&done), format!("/admin/tenants/{id}?done=credit"));
    }
    let taken = ops
        .post_json(
            &format!("/api/admin/tenants/{id}/credit"),
            json!({ "amount_cents": -250, "reason": "Charged twice by mistake" }),
        )
        .await;
    assert_eq!(taken.status(), StatusCode::CREATED);
    let missing =
        ops.post_json(&format!("/api/admin/tenants/{id}/credit"), json!({ "amount_cents": 100, "reason": "" })).await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);

    let body = owner.json("/api/credits").await;
    assert_eq!(body["balance_cents"], 500);
    let ledger = body["ledger"].as_array().unwrap();
    assert_eq!(ledger.len(), 2, "the double submit made one adjustment");
    assert_eq!((ledger[0]["kind"].as_str(), ledger[0]["amount_cents"].as_i64()), (Some("adjustment"), Some(-250)));
    assert_eq!(ledger[1]["reason"], "Goodwill for a dropped call");
    assert!(owner.text("/app/credits").await.contains("Goodwill for a dropped call"));
    app.stop().await;
}
