//! Messages: texts sent from the dashboard wait in the outbox (`queued`), threaded by
//! contact; bodies and numbers are checked; emails waiting are shown; other tenants'
//! conversations are never reachable.

use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{SignedInOwner, TestApp, cookie_client, spawn_app};
use ringlypro::domain::ids::TenantId;

async fn send(owner: &SignedInOwner, body: Value) -> reqwest::Response {
    owner.send_json(Method::POST, "/api/messages", &body).await
}

async fn sent(owner: &SignedInOwner, to: &str, text: &str) -> Value {
    let response = send(owner, json!({ "to": to, "body": text })).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    response.json().await.unwrap()
}

async fn message_rows(app: &TestApp, client_id: TenantId) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM messages WHERE client_id = $1")
        .bind(client_id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_text_to_a_number_waits_in_the_outbox_threaded_under_its_new_contact() {
    let app = spawn_app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile").await;
    let answer = sent(&owner, "(555) 201-0001", "Your crown is ready").await;
    assert_eq!(answer["message"]["status"], "queued");
    assert!(answer["notice"].as_str().unwrap().starts_with("Queued"));
    let contact_id = answer["message"]["contact_id"].as_i64().unwrap();

    let (status, to, direction): (String, String, String) =
        sqlx::query_as("SELECT status, to_number, direction FROM messages WHERE client_id = $1")
            .bind(owner.client_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), to.as_str(), direction.as_str()), ("queued", "+15552010001", "outbound"));

    // A second text to the contact joins the same conversation.
    let again = send(&owner, json!({ "contact_id": contact_id, "body": "See you at 3" })).await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);

    let thread: Value = owner.get(&format!("/api/messages/{contact_id}")).await.json().await.unwrap();
    assert_eq!(thread["contact"]["phone"], "+15552010001");
    let bodies: Vec<&str> =
        thread["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["Your crown is ready", "See you at 3"], "a conversation reads oldest first");

    let threads: Value = owner.get("/api/messages").await.json().await.unwrap();
    assert_eq!(threads["threads"][0]["contact_id"], contact_id);
    assert_eq!(threads["threads"][0]["messages"], 2);
    assert_eq!(threads["threads"][0]["last_status"], "queued");

    // The page form queues too and says so.
    let response = owner.post_form("/app/messages", &[("to", "555 300 4000"), ("body", "Hello from the page")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let page = owner.get(response.headers()[LOCATION].to_str().unwrap()).await.text().await.unwrap();
    assert!(page.contains("id=\"queued-notice\"") && page.contains("Hello from the page"));
    assert_eq!(message_rows(&app, owner.client_id).await, 3);
}

#[tokio::test]
async fn conversations_are_listed_latest_first() {
    let app = spawn_app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile").await;
    let first = sent(&owner, "555-201-0001", "one").await["message"]["contact_id"].clone();
    let second = sent(&owner, "555-300-4000", "two").await["message"]["contact_id"].clone();
    let threads: Value = owner.get("/api/messages").await.json().await.unwrap();
    assert_eq!(threads["threads"][0]["contact_id"], second);
    assert_eq!(threads["threads"][1]["contact_id"], first);
    sent(&owner, "555-201-0001", "three").await;
    let threads: Value = owner.get("/api/messages").await.json().await.unwrap();
    assert_eq!(threads["threads"][0]["contact_id"], first);
    let html = owner.get("/app/messages").await.text().await.unwrap();
    assert!(html.find("three").unwrap() < html.find("two").unwrap());
}

#[tokio::test]
async fn a_text_with_no_body_too_long_a_body_or_a_bad_number_is_refused_and_not_queued() {
    let app = spawn_app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile").await;
    for (body, field) in [
        (json!({ "to": "555-201-0001", "body": "" }), "body"),
        (json!({ "to": "555-201-0001", "body": "   " }), "body"),
        (json!({ "to": "555-201-0001", "body": "x".repeat(1601) }), "body"),
        (json!({ "to": "12", "body": "hi" }), "to"),
        (json!({ "body": "hi" }), "to"),
    ] {
        let response = send(&owner, body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["field"], field, "{error}");
    }
    assert_eq!(message_rows(&app, owner.client_id).await, 0);
    let longest = send(&owner, json!({ "to": "555-201-0001", "body": "é".repeat(1600) })).await;
    assert_eq!(longest.status(), StatusCode::ACCEPTED, "1600 characters, however many bytes");

    let response = owner.post_form("/app/messages", &[("to", "555-201-0001"), ("body", &"y".repeat(1601))]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = response.text().await.unwrap();
    assert!(html.contains("id=\"body-error\"") && html.contains(&"y".repeat(1601)), "the text typed is kept");
    assert_eq!(message_rows(&app, owner.client_id).await, 1);
}

#[tokio::test]
async fn the_messages_page_shows_the_tenants_emails_waiting_to_be_sent() {
    let app = spawn_app().await;
    let a = app.signed_in_owner("a@example.com", "Alpha Dental").await;
    let b = app.signed_in_owner("b@example.com", "Beta Salon").await;
    // Only the mails queued here, not the welcome mails of signup.
    sqlx::query("DELETE FROM email_outbox").execute(&app.pool).await.unwrap();
    for (client_id, subject) in [(a.client_id, "Your weekly summary"), (b.client_id, "Beta private subject")] {
        sqlx::query("INSERT INTO email_outbox (client_id, to_address, kind, subject, body) VALUES ($1, 'o@example.com', 'summary', $2, 'x')")
            .bind(client_id)
            .bind(subject)
            .execute(&app.pool)
            .await
            .unwrap();
    }
    let html = a.get("/app/messages").await.text().await.unwrap();
    assert!(html.contains("Emails waiting to be sent") && html.contains("Your weekly summary"));
    assert!(!html.contains("Beta private subject"));
    let json: Value = a.get("/api/messages").await.json().await.unwrap();
    let subjects: Vec<&str> =
        json["emails_waiting"].as_array().unwrap().iter().map(|e| e["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, ["Your weekly summary"]);
}

#[tokio::test]
async fn messages_need_a_session_and_sending_needs_the_csrf_token() {
    let app = spawn_app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile").await;
    let contact_id = sent(&owner, "555-201-0001", "hi").await["message"]["contact_id"].as_i64().unwrap();
    let stranger = cookie_client();
    for path in ["/api/messages".to_owned(), format!("/api/messages/{contact_id}")] {
        let response = stranger.get(format!("{}{path}", app.base_url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    for path in ["/app/messages".to_owned(), format!("/app/messages/{contact_id}")] {
        let response = stranger.get(format!("{}{path}", app.base_url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }
    let body = json!({ "contact_id": contact_id, "body": "sneaky" });
    assert_eq!(
        owner.send_json_without_csrf(Method::POST, "/api/messages", &body).await.status(),
        StatusCode::FORBIDDEN
    );
    let form = owner.client.post(owner.url("/app/messages")).form(&[("to", "555-201-0001"), ("body", "sneaky")]);
    assert_eq!(form.send().await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(message_rows(&app, owner.client_id).await, 1);
}

#[tokio::test]
async fn another_tenants_conversations_cannot_be_read_or_texted() {
    let app = spawn_app().await;
    let a = app.signed_in_owner("a@example.com", "Alpha Dental").await;
    let b = app.signed_in_owner("b@example.com", "Beta Salon").await;
    let theirs = sent(&b, "555-201-0001", "Bella secret text").await["message"]["contact_id"].as_i64().unwrap();

    let list = a.get("/api/messages").await.text().await.unwrap();
    assert!(!list.contains("Bella secret"));
    for response in [
        a.get(&format!("/api/messages/{theirs}")).await,
        a.get(&format!("/app/messages/{theirs}")).await,
        send(&a, json!({ "contact_id": theirs, "body": "hijack" })).await,
        a.post_form("/app/messages", &[("contact_id", &theirs.to_string()), ("body", "hijack")]).await,
    ] {
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(!response.text().await.unwrap().contains("Bella"));
    }
    assert_eq!(message_rows(&app, a.client_id).await, 0);
    assert_eq!(message_rows(&app, b.client_id).await, 1);
}
