//! The admin area: who may open it, every tenant's usage, notes, texts to an owner, and
//! granting the administrator's right.

use reqwest::StatusCode;
use reqwest::header::LOCATION;
use ringlypro::storage::postgres::{admin, begin_tenant};
use serde_json::{Value, json};

use crate::helpers::{SignedUp, TestApp, browser, sign_up, spawn_app};

/// Signs up `email` and makes them an administrator (as `ringlypro admin grant` does).
async fn admin_user(app: &TestApp, client: &reqwest::Client, email: &str) -> SignedUp {
    let signed = sign_up(app, client, email, "RinglyPro HQ").await;
    assert!(admin::grant(&app.pool, &email.to_uppercase()).await.unwrap());
    signed
}

async fn post_json(app: &TestApp, client: &reqwest::Client, csrf: &str, path: &str, body: Value) -> reqwest::Response {
    client.post(format!("{}{path}", app.base_url)).header("X-CSRF-Token", csrf).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn admin_pages_send_visitors_to_sign_in_and_refuse_owners_who_are_not_admins() {
    let app = spawn_app().await;
    let anonymous = browser();
    for path in ["/admin", "/admin/tenants/1"] {
        let r = anonymous.get(format!("{}{path}", app.base_url)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert!(r.headers()[LOCATION].to_str().unwrap().starts_with("/login"));
    }
    for path in ["/api/admin/tenants", "/api/admin/tenants/1"] {
        let r = anonymous.get(format!("{}{path}", app.base_url)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let client = browser();
    let owner = sign_up(&app, &client, "dana@example.com", "Bright Smile Dental").await;
    let id = owner.client_id;
    for path in ["/admin".to_owned(), format!("/admin/tenants/{id}")] {
        let r = client.get(format!("{}{path}", app.base_url)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    for path in ["/api/admin/tenants".to_owned(), format!("/api/admin/tenants/{id}")] {
        let r = client.get(format!("{}{path}", app.base_url)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(!r.text().await.unwrap().contains("Bright Smile"));
    }
    for what in ["notes", "sms"] {
        let path = format!("/api/admin/tenants/{id}/{what}");
        let r = post_json(&app, &client, &owner.csrf, &path, json!({"body": "self-service"})).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let notes: i64 = sqlx::query_scalar("SELECT count(*) FROM admin_notes").fetch_one(&app.pool).await.unwrap();
    let texts: i64 = sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&app.pool).await.unwrap();
    assert_eq!((notes, texts), (0, 0));
}

#[tokio::test]
async fn an_admin_sees_every_tenant_with_this_months_usage_and_credit() {
    let app = spawn_app().await;
    let client = browser();
    admin_user(&app, &client, "ops@ringlypro.example").await;
    let dental = sign_up(&app, &browser(), "dana@example.com", "Bright Smile Dental").await;
    sign_up(&app, &browser(), "sal@example.com", "Sal's Salon").await;
    // Two calls this month (61 s bills as 2 minutes, 30 s as 1), one last year; one booking.
    sqlx::query(
        "INSERT INTO calls (client_id, call_sid, started_at, duration_seconds) VALUES \
         ($1, 'CA1', now(), 61), ($1, 'CA2', now(), 30), ($1, 'CA3', now() - interval '400 days', 600)",
    )
    .bind(dental.client_id)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO appointments (client_id, customer_name, customer_phone, starts_at, ends_at, confirmation_code) \
         VALUES ($1, 'John', '+15557654321', now() + interval '1 day', now() + interval '25 hours', 'ABC123')",
    )
    .bind(dental.client_id)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE credit_accounts SET balance_cents = 1234, free_minutes_used = 100, locked = true WHERE client_id = $1",
    )
    .bind(dental.client_id)
    .execute(&app.pool)
    .await
    .unwrap();

    let list: Value =
        client.get(format!("{}/api/admin/tenants", app.base_url)).send().await.unwrap().json().await.unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    let row = list.iter().find(|t| t["id"] == dental.client_id.get()).unwrap();
    assert_eq!(row["calls_this_month"], 2);
    assert_eq!(row["minutes_this_month"], 3);
    assert_eq!(row["bookings_this_month"], 1);
    assert_eq!(row["balance_cents"], 1234);
    assert_eq!(row["free_minutes_used"], 100);
    assert_eq!(row["locked"], true);
    assert_eq!(row["rachel_enabled"], true);
    assert_eq!(row["owner_email"], "dana@example.com");
    assert!(row["created_at"].is_string());

    let page = client.get(format!("{}/admin", app.base_url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Bright Smile Dental"));
    assert!(html.contains("Sal&#x27;s Salon") || html.contains("Sal&#39;s Salon"));
    assert!(html.contains("$12.34"));
    assert!(html.contains("locked"));
}

#[tokio::test]
async fn admin_notes_are_kept_with_author_and_time_and_never_reach_the_tenant() {
    let app = spawn_app().await;
    let client = browser();
    let ops = admin_user(&app, &client, "ops@ringlypro.example").await;
    let owner_client = browser();
    let dental = sign_up(&app, &owner_client, "dana@example.com", "Bright Smile Dental").await;
    let path = format!("/api/admin/tenants/{}/notes", dental.client_id);

    let empty = post_json(&app, &client, &ops.csrf, &path, json!({"body": "   "})).await;
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
    assert_eq!(empty.json::<Value>().await.unwrap()["field"], "body");
    let long = post_json(&app, &client, &ops.csrf, &path, json!({"body": "x".repeat(4001)})).await;
    assert_eq!(long.status(), StatusCode::BAD_REQUEST);
    let missing = post_json(&app, &client, &ops.csrf, "/api/admin/tenants/999999/notes", json!({"body": "hi"})).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let unknown = client.get(format!("{}/api/admin/tenants/999999", app.base_url)).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let unknown_page = client.get(format!("{}/admin/tenants/999999", app.base_url)).send().await.unwrap();
    assert_eq!(unknown_page.status(), StatusCode::NOT_FOUND);
    let no_csrf = client.post(format!("{}{path}", app.base_url)).json(&json!({"body": "hi"})).send().await.unwrap();
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);

    let added = post_json(&app, &client, &ops.csrf, &path, json!({"body": "Asked about a refund in March."})).await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let note: Value = added.json().await.unwrap();
    assert_eq!(note["author"], "ops@ringlypro.example");
    assert!(note["created_at"].is_string());
    let form = client
        .post(format!("{}/admin/tenants/{}/notes", app.base_url, dental.client_id))
        .form(&[("body", "Second note from the form."), ("csrf_token", ops.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::SEE_OTHER);
    let bad_form = client
        .post(format!("{}/admin/tenants/{}/notes", app.base_url, dental.client_id))
        .form(&[("body", ""), ("csrf_token", ops.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_form.status(), StatusCode::BAD_REQUEST);
    assert!(bad_form.text().await.unwrap().contains("id=\"note-error\""));

    let detail: Value = client
        .get(format!("{}/api/admin/tenants/{}", app.base_url, dental.client_id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let notes = detail["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[0]["body"], "Second note from the form.");
    let page = client.get(format!("{}/admin/tenants/{}", app.base_url, dental.client_id)).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("Asked about a refund in March.") && html.contains("ops@ringlypro.example"));

    // The owner's own views carry no note, and the tenant's database role cannot read them.
    for path in ["/api/auth/me", "/api/settings", "/app", "/app/settings"] {
        let body = owner_client.get(format!("{}{path}", app.base_url)).send().await.unwrap().text().await.unwrap();
        assert!(!body.contains("refund"), "{path}");
    }
    let mut tx = begin_tenant(&app.pool, dental.client_id).await.unwrap();
    let read = sqlx::query("SELECT body FROM admin_notes").fetch_all(&mut *tx).await;
    assert!(read.is_err(), "the tenant role must not read admin notes");
}

#[tokio::test]
async fn a_text_to_the_owner_waits_in_the_outbox_as_queued() {
    let app = spawn_app().await;
    let client = browser();
    let ops = admin_user(&app, &client, "ops@ringlypro.example").await;
    let dental = sign_up(&app, &browser(), "dana@example.com", "Bright Smile Dental").await;
    let path = format!("/api/admin/tenants/{}/sms", dental.client_id);

    let empty = post_json(&app, &client, &ops.csrf, &path, json!({"body": ""})).await;
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
    let long = post_json(&app, &client, &ops.csrf, &path, json!({"body": "x".repeat(641)})).await;
    assert_eq!(long.status(), StatusCode::BAD_REQUEST);
    let not_json = client
        .post(format!("{}{path}", app.base_url))
        .header("X-CSRF-Token", &ops.csrf)
        .header("Content-Type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);

    let sent = post_json(&app, &client, &ops.csrf, &path, json!({"body": "Your number is ready!"})).await;
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let sms: Value = sent.json().await.unwrap();
    assert_eq!(sms["status"], "queued");
    assert_eq!(sms["to_number"], "+15559876543");
    let (to, status, direction, client_id): (String, String, String, i64) = sqlx::query_as(
        "SELECT to_number, status, direction, client_id FROM messages WHERE body = 'Your number is ready!'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (to.as_str(), status.as_str(), direction.as_str(), client_id),
        ("+15559876543", "queued", "outbound", dental.client_id.get())
    );

    let form = client
        .post(format!("{}/admin/tenants/{}/sms", app.base_url, dental.client_id))
        .form(&[("body", "Sent from the page."), ("csrf_token", ops.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::SEE_OTHER);
    let bad = client
        .post(format!("{}/admin/tenants/{}/sms", app.base_url, dental.client_id))
        .form(&[("body", " "), ("csrf_token", ops.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let detail: Value = client
        .get(format!("{}/api/admin/tenants/{}", app.base_url, dental.client_id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["sms"].as_array().unwrap().len(), 2);
    let missing = post_json(&app, &client, &ops.csrf, "/api/admin/tenants/999999/sms", json!({"body": "hi"})).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn granting_admin_needs_an_existing_user() {
    let app = spawn_app().await;
    assert!(!admin::grant(&app.pool, "nobody@example.com").await.unwrap());
    let client = browser();
    sign_up(&app, &client, "ops@ringlypro.example", "HQ").await;
    assert_eq!(client.get(format!("{}/admin", app.base_url)).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    assert!(admin::grant(&app.pool, " Ops@RinglyPro.example ").await.unwrap());
    assert_eq!(client.get(format!("{}/admin", app.base_url)).send().await.unwrap().status(), StatusCode::OK);
}
