//! Contacts: the owner's list, search, create, edit and delete (JSON and pages), dedupe
//! by phone within a tenant, the timeline, and denial to strangers and other tenants.

use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{SignedInOwner, TestApp, cookie_client, spawn_app};
use ringlypro::domain::ids::TenantId;

async fn create(owner: &SignedInOwner, body: Value) -> reqwest::Response {
    owner.send_json(Method::POST, "/api/contacts", &body).await
}

async fn created_id(owner: &SignedInOwner, name: &str, phone: &str) -> i64 {
    let response = create(owner, json!({ "name": name, "phone": phone })).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

async fn names_found(owner: &SignedInOwner, q: &str) -> Vec<String> {
    let response = owner.get(&format!("/api/contacts?q={q}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["contacts"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
}

async fn contact_rows(app: &TestApp, client_id: TenantId) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM contacts WHERE client_id = $1")
        .bind(client_id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_owner_creates_finds_edits_and_deletes_a_contact_through_the_api() {
    let app = spawn_app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile").await;

    let response =
        create(&owner, json!({ "name": "Maria Lopez", "phone": "(555) 201-0001", "email": "Maria@Example.com" })).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let contact: Value = response.json().await.unwrap();
    assert_eq!(contact["phone"], "+15552010001", "stored E.164");
    assert_eq!(contact["email"], "maria@example.com");
    let id = contact["id"].as_i64().unwrap();
    created_id(&owner, "Tom Baker", "555-777-8888").await;

    assert_eq!(names_found(&owner, "maria").await, ["Maria Lopez"]);
    assert_eq!(names_found(&owner, "201-0001").await, ["Maria Lopez"], "digits match whatever the punctuation");
    assert_eq!(names_found(&owner, "example.com").await, ["Maria Lopez"]);
    assert_eq!(names_found(&owner, "").await.len(), 2);
    assert!(names_found(&owner, "nobody").await.is_empty());

    let response = owner.send_json(Method::PATCH, &format!("/api/contacts/{id}"), &json!({ "name": "Maria L." })).await;
    assert_eq!(response.status(), StatusCode::OK);
    let edited: Value = response.json().await.unwrap();
    assert_eq!(edited["name"], "Maria L.");
    assert_eq!(edited["phone"], "+15552010001", "fields not sent keep their value");

    let shown: Value = owner.get(&format!("/api/contacts/{id}")).await.json().await.unwrap();
    assert_eq!(shown["contact"]["name"], "Maria L.");

    assert_eq!(owner.delete(&format!("/api/contacts/{id}")).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(owner.get(&format!("/api/contacts/{id}")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(owner.delete(&format!("/api/contacts/{id}")).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_contact_with_a_bad_phone_or_email_is_refused_naming_the_field_and_nothing_is_saved() {
    let app = spawn_app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile").await;
    for (body, field) in [
        (json!({ "name": "X", "phone": "12" }), "phone"),
        (json!({ "name": "X" }), "phone"),
        (json!({ "name": "X", "phone": "555-201-0001", "email": "not an email" }), "email"),
        (json!({ "name": "x".repeat(101), "phone": "555-201-0001" }), "name"),
    ] {
        let response = create(&owner, body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["field"], field, "{error}");
        assert!(!error["error"].as_str().unwrap().is_empty());
    }
    let not_json = owner.client.post(owner.url("/api/contacts")).header("X-CSRF-Token", &owner.csrf).body("{").send();
    assert_eq!(not_json.await.unwrap().status(), StatusCode::BAD_REQUEST);
    assert_eq!(contact_rows(&app, owner.client_id).await, 0);
}

#[tokio::test]
async fn a_second_contact_with_the_same_number_is_refused_with_a_link_to_the_first() {
    let app = spawn_app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile").await;
    let first = created_id(&owner, "Maria Lopez", "(555) 201-0001").await;

    let response = create(&owner, json!({ "name": "Someone", "phone": "+1 555 201 0001" })).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["field"], "phone");
    assert_eq!(error["link"], format!("/app/contacts/{first}"));
    assert!(error["error"].as_str().unwrap().contains("Maria Lopez"), "{error}");

    let other = created_id(&owner, "Tom Baker", "555-777-8888").await;
    let response =
        owner.send_json(Method::PATCH, &format!("/api/contacts/{other}"), &json!({ "phone": "5552010001" })).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let tom: Value = owner.get(&format!("/api/contacts/{other}")).await.json().await.unwrap();
    assert_eq!(tom["contact"]["phone"], "+15557778888", "the refused edit changed nothing");
    assert_eq!(contact_rows(&app, owner.client_id).await, 2);

    // Saving a contact with its own number is no clash.
    let same =
        owner.send_json(Method::PATCH, &format!("/api/contacts/{first}"), &json!({ "phone": "555.201.0001" })).await;
    assert_eq!(same.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_contact_form_shows_the_duplicate_with_a_link_and_keeps_what_was_typed() {
    let app = spawn_app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile").await;
    let first = created_id(&owner, "Maria Lopez", "(555) 201-0001").await;

    let response = owner
        .post_form("/app/contacts", &[("name", "Mary Typed"), ("phone", "555 201 0001"), ("notes", "kept notes")])
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let html = response.text().await.unwrap();
    assert!(html.contains(&format!("href=\"/app/contacts/{first}\" id=\"existing-contact\"")), "{html}");
    assert!(html.contains("Mary Typed") && html.contains("kept notes"));

    let response = owner.post_form("/app/contacts", &[("name", "Bad Phone"), ("phone", "abc")]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = response.text().await.unwrap();
    assert!(html.contains("id=\"phone-error\"") && html.contains("Bad Phone"));

    let response = owner.post_form("/app/contacts", &[("name", "New Person"), ("phone", "555 300 4000")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    let page = owner.get(&location).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("New Person"));

    let tab = owner.get("/contacts").await;
    assert_eq!(tab.headers()[LOCATION], "/app/contacts", "the nav's short address leads here");
    let list = owner.get("/app/contacts?q=maria").await.text().await.unwrap();
    assert!(list.contains("Maria Lopez") && !list.contains("New Person"));

    let edit =
        owner.post_form(&format!("/app/contacts/{first}"), &[("name", "Maria P"), ("phone", "555 300 4000")]).await;
    assert_eq!(edit.status(), StatusCode::CONFLICT);
    let gone = owner.post_form(&format!("/app/contacts/{first}/delete"), &[]).await;
    assert_eq!(gone.status(), StatusCode::SEE_OTHER);
    assert_eq!(contact_rows(&app, owner.client_id).await, 1);
}

#[tokio::test]
async fn a_contacts_timeline_lists_its_calls_messages_and_appointments_newest_first_in_local_time() {
    let app = spawn_app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile").await;
    let id = created_id(&owner, "Maria Lopez", "(555) 201-0001").await;
    let tenant = owner.client_id;
    sqlx::query(
        "INSERT INTO calls (client_id, call_sid, from_number, started_at, duration_seconds, outcome) \
         VALUES ($1, 'CA1', '+15552010001', '2031-03-01T15:00:00Z', 125, 'booked')",
    )
    .bind(tenant)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO messages (client_id, contact_id, direction, to_number, from_number, body, created_at) \
         VALUES ($1, $2, 'outbound', '+15552010001', '', 'See you Tuesday', '2031-03-02T15:00:00Z')",
    )
    .bind(tenant)
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO appointments (client_id, contact_id, customer_name, customer_phone, starts_at, ends_at, \
         confirmation_code) VALUES ($1, $2, 'Maria', '+15552010001', '2031-03-04T16:00:00Z', '2031-03-04T16:30:00Z', 'ABC123')",
    )
    .bind(tenant)
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();

    let detail: Value = owner.get(&format!("/api/contacts/{id}")).await.json().await.unwrap();
    let timeline = detail["timeline"].as_array().unwrap();
    let kinds: Vec<&str> = timeline.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["appointment", "message", "call"]);
    // 16:00 UTC is 10:00 in Chicago (CST, UTC-6) on 4 March 2031.
    assert_eq!(timeline[0]["local_time"], "Tue Mar 4, 10:00 AM");
    assert!(timeline[0]["summary"].as_str().unwrap().contains("ABC123"));
    assert!(timeline[1]["summary"].as_str().unwrap().contains("See you Tuesday"));
    assert!(timeline[2]["summary"].as_str().unwrap().contains("booked"));

    let html = owner.get(&format!("/app/contacts/{id}")).await.text().await.unwrap();
    let (a, m, c) = (html.find("ABC123").unwrap(), html.find("See you Tuesday").unwrap(), html.find("2:05").unwrap());
    assert!(a < m && m < c, "newest first on the page");
}

#[tokio::test]
async fn contacts_need_a_session_and_changes_need_the_csrf_token() {
    let app = spawn_app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile").await;
    let id = created_id(&owner, "Maria Lopez", "(555) 201-0001").await;
    let stranger = cookie_client();
    for path in ["/api/contacts".to_owned(), format!("/api/contacts/{id}")] {
        let response = stranger.get(format!("{}{path}", app.base_url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    for path in ["/app/contacts".to_owned(), format!("/app/contacts/{id}")] {
        let response = stranger.get(format!("{}{path}", app.base_url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert!(response.headers()[LOCATION].to_str().unwrap().starts_with("/login"));
    }
    let body = json!({ "name": "Sneaky", "phone": "555-999-0000" });
    assert_eq!(
        owner.send_json_without_csrf(Method::POST, "/api/contacts", &body).await.status(),
        StatusCode::FORBIDDEN
    );
    let path = format!("/api/contacts/{id}");
    assert_eq!(owner.send_json_without_csrf(Method::PATCH, &path, &body).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(owner.client.delete(owner.url(&path)).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let form = owner.client.post(owner.url(&format!("/app/contacts/{id}/delete"))).form(&[("x", "y")]).send();
    assert_eq!(form.await.unwrap().status(), StatusCode::FORBIDDEN);
    let shown: Value = owner.get(&path).await.json().await.unwrap();
    assert_eq!(shown["contact"]["name"], "Maria Lopez");
    assert_eq!(contact_rows(&app, owner.client_id).await, 1);
}

#[tokio::test]
async fn another_tenants_contacts_never_appear_and_cannot_be_read_changed_or_deleted() {
    let app = spawn_app().await;
    let a = app.signed_in_owner("a@example.com", "Alpha Dental").await;
    let b = app.signed_in_owner("b@example.com", "Beta Salon").await;
    let theirs = created_id(&b, "Bella Secret", "(555) 201-0001").await;
    // The same number is free in another tenant.
    let mine = created_id(&a, "Maria Lopez", "(555) 201-0001").await;
    assert_ne!(mine, theirs);

    for q in ["", "bella", "201"] {
        let body = a.get(&format!("/api/contacts?q={q}")).await.text().await.unwrap();
        assert!(!body.contains("Bella"), "{body}");
    }
    assert!(!a.get("/app/contacts?q=bella").await.text().await.unwrap().contains("Bella"));

    let path = format!("/api/contacts/{theirs}");
    for response in [
        a.get(&path).await,
        a.send_json(Method::PATCH, &path, &json!({ "name": "Hacked" })).await,
        a.delete(&path).await,
        a.get(&format!("/app/contacts/{theirs}")).await,
        a.post_form(&format!("/app/contacts/{theirs}"), &[("name", "Hacked"), ("phone", "555 111 2222")]).await,
        a.post_form(&format!("/app/contacts/{theirs}/delete"), &[]).await,
    ] {
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(!response.text().await.unwrap().contains("Bella"));
    }
    let still: Value = b.get(&path).await.json().await.unwrap();
    assert_eq!(still["contact"]["name"], "Bella Secret");
    assert_eq!(still["contact"]["phone"], "+15552010001");
}
