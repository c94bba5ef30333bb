//! The agenda: booking (contact found or created, the tenant's length by default),
//! overlaps refused with 409 naming the other appointment, rescheduling, status
//! changes, cancelling freeing the time, out-of-hours warnings, and denial to strangers
//! and other tenants. Times are on the tenant's wall clock (America/Chicago).

use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{SignedInOwner, TestApp, cookie_client, spawn_app};

/// A Tuesday, inside the default hours (Monday to Friday, 9 to 5).
const TUESDAY: &str = "2031-03-04";
/// A Sunday.
const SUNDAY: &str = "2031-03-09";

async fn book(owner: &SignedInOwner, name: &str, phone: &str, date: &str, time: &str) -> reqwest::Response {
    let body = json!({ "customer_name": name, "customer_phone": phone, "date": date, "time": time });
    owner.send_json(Method::POST, "/api/appointments", &body).await
}

async fn booked(owner: &SignedInOwner, name: &str, phone: &str, date: &str, time: &str) -> Value {
    let response = book(owner, name, phone, date, time).await;
    assert_eq!(response.status(), StatusCode::CREATED, "booking {name} at {date} {time}");
    response.json().await.unwrap()
}

async fn status_of(app: &TestApp, id: i64) -> String {
    sqlx::query_scalar("SELECT status FROM appointments WHERE id = $1").bind(id).fetch_one(&app.pool).await.unwrap()
}

#[tokio::test]
async fn a_booking_finds_or_creates_the_contact_and_lasts_the_tenants_appointment_length() {
    let app = spawn_app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile").await;
    sqlx::query("UPDATE clients SET appointment_minutes = 45 WHERE id = $1")
        .bind(owner.client_id)
        .execute(&app.pool)
        .await
        .unwrap();

    let first = booked(&owner, "Ana Ruiz", "(555) 201-0001", TUESDAY, "10:00").await;
    assert_eq!(first["duration_minutes"], 45);
    // 10:00 in Chicago is 16:00 UTC in March 2031 (CST).
    assert_eq!(first["starts_at"], "2031-03-04T16:00:00Z");
    assert_eq!(first["local_start"], "Tue Mar 4, 10:00 AM");
    assert_eq!(first["source"], "manual");
    assert_eq!(first["customer_phone"], "+15552010001");
    assert!(first["warning"].is_null());

    let second = booked(&owner, "Ana R.", "555.201.0001", TUESDAY, "14:00").await;
    assert_eq!(first["contact_id"], second["contact_id"], "the same phone is the same contact");
    let contacts: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts WHERE client_id = $1")
        .bind(owner.client_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(contacts, 1);

    let longer = json!({ "customer_name": "Bo", "customer_phone": "555-300-4000", "date": TUESDAY, "time": "15:00",
                         "duration_minutes": 90 });
    let response = owner.send_json(Method::POST, "/api/appointments", &longer).await;
    assert_eq!(response.json::<Value>().await.unwrap()["duration_minutes"], 90);

    let shown: Value = owner.get(&format!("/api/appointments/{}", first["id"])).await.json().await.unwrap();
    assert_eq!(shown["customer_name"], "Ana Ruiz");
}

#[tokio::test]
async fn an_overlapping_booking_is_refused_with_409_naming_the_other_while_the_next_free_time_books() {
    let app = spawn_app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile").await;
    booked(&owner, "Ana Ruiz", "(555) 201-0001", TUESDAY, "10:00").await;

    let response = book(&owner, "Bo Chen", "555-300-4000", TUESDAY, "10:15").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], "that time overlaps Ana Ruiz's appointment at Tue Mar 4, 10:00 AM");
    assert_eq!(error["field"], "time");

    booked(&owner, "Bo Chen", "555-300-4000", TUESDAY, "10:30").await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM appointments").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 2);

    // The page form says the same and keeps what was typed.
    let response = owner
        .post_form(
            "/app/appointments",
            &[("customer_name", "Cy Typed"), ("customer_phone", "555 400 5000"), ("date", TUESDAY), ("time", "10:45")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let html = response.text().await.unwrap();
    assert!(html.contains("that time overlaps Bo Chen&#x27;s appointment") || html.contains("Bo Chen's appointment"));
    assert!(html.contains("Cy Typed") && html.contains("555 400 5000"));
}

#[tokio::test]
async fn cancelling_frees_the_time_for_another_booking() {
    let app = spawn_app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile").await;
    let first = booked(&owner, "Ana Ruiz", "(555) 201-0001", TUESDAY, "10:00").await;
    let id = first["id"].as_i64().unwrap();
    assert_eq!(book(&owner, "Bo", "555-300-4000", TUESDAY, "10:00").await.status(), StatusCode::CONFLICT);

    let response = owner.delete(&format!("/api/appointments/{id}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "cancelled");
    booked(&owner, "Bo", "555-300-4000", TUESDAY, "10:00").await;

    // Bringing the cancelled one back onto the taken time is refused.
    let back =
        owner.send_json(Method::PATCH, &format!("/api/appointments/{id}"), &json!({ "status": "confirmed" })).await;
    assert_eq!(back.status(), StatusCode::CONFLICT);
    assert_eq!(status_of(&app, id).await, "cancelled");
}

#[tokio::test]
async fn an_appointment_is_rescheduled_and_marked_completed_or_no_show() {
    let app = spawn_app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile").await;
    let ana = booked(&owner, "Ana Ruiz", "(555) 201-0001", TUESDAY, "10:00").await;
    let bo = booked(&owner, "Bo Chen", "555-300-4000", TUESDAY, "11:00").await;
    let path = format!("/api/appointments/{}", ana["id"]);

    let onto_bo = owner.send_json(Method::PATCH, &path, &json!({ "time": "11:15" })).await;
    assert_eq!(onto_bo.status(), StatusCode::CONFLICT);
    assert!(onto_bo.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("Bo Chen"));
    let unchanged: Value = owner.get(&path).await.json().await.unwrap();
    assert_eq!(unchanged["starts_at"], "2031-03-04T16:00:00Z");

    let moved: Value = owner.send_json(Method::PATCH, &path, &json!({ "time": "10:15" })).await.json().await.unwrap();
    assert_eq!(moved["starts_at"], "2031-03-04T16:15:00Z", "overlapping its own old time is fine");
    assert_eq!(moved["duration_minutes"], 30);

    let done = owner.send_json(Method::PATCH, &path, &json!({ "status": "completed" })).await;
    assert_eq!(done.json::<Value>().await.unwrap()["status"], "completed");
    let bo_path = format!("/api/appointments/{}", bo["id"]);
    let no_show = owner.send_json(Method::PATCH, &bo_path, &json!({ "status": "no_show" })).await;
    assert_eq!(no_show.json::<Value>().await.unwrap()["status"], "no_show");

    let bad = owner.send_json(Method::PATCH, &path, &json!({ "status": "maybe" })).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(bad.json::<Value>().await.unwrap()["field"], "status");
    assert_eq!(status_of(&app, ana["id"].as_i64().unwrap()).await, "completed");

    // The page's buttons do the same.
    let response = owner.post_form(&format!("/app/appointments/{}/status", bo["id"]), &[("status", "cancelled")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(status_of(&app, bo["id"].as_i64().unwrap()).await, "cancelled");
    let response = owner
        .post_form(
            &format!("/app/appointments/{}", ana["id"]),
            &[("date", TUESDAY), ("time", "13:00"), ("duration_minutes", "60")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let page = owner.get(response.headers()[LOCATION].to_str().unwrap()).await.text().await.unwrap();
    assert!(page.contains("Tue Mar 4, 1:00 PM") && page.contains("60 min"), "{page}");
}

#[tokio::test]
async fn bookings_with_mistakes_are_refused_naming_each_field() {
    let app = spawn_app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile").await;
    for (body, field) in [
        (json!({ "customer_phone": "555-201-0001", "date": TUESDAY, "time": "10:00" }), "customer_name"),
        (json!({ "customer_name": "A", "customer_phone": "12", "date": TUESDAY, "time": "10:00" }), "customer_phone"),
        (json!({ "customer_name": "A", "customer_phone": "555-201-0001", "date": "tuesday", "time": "10:00" }), "date"),
        (json!({ "customer_name": "A", "customer_phone": "555-201-0001", "date": TUESDAY, "time": "25:00" }), "time"),
        // 2:30 AM does not exist in Chicago on 9 March 2031 (the clocks go forward).
        (json!({ "customer_name": "A", "customer_phone": "555-201-0001", "date": SUNDAY, "time": "02:30" }), "time"),
        (
            json!({ "customer_name": "A", "customer_phone": "555-201-0001", "date": TUESDAY, "time": "10:00",
                    "duration_minutes": "2" }),
            "duration_minutes",
        ),
    ] {
        let response = owner.send_json(Method::POST, "/api/appointments", &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(response.json::<Value>().await.unwrap()["field"], field, "{body}");
    }
    let response = owner.post_form("/app/appointments", &[("customer_name", "Kept Name"), ("date", TUESDAY)]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = response.text().await.unwrap();
    assert!(html.contains("Kept Name") && html.contains("id=\"customer_phone-error\""));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM appointments").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn a_booking_outside_business_hours_is_kept_with_a_warning() {
    let app = spawn_app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile").await;
    let sunday = booked(&owner, "Ana Ruiz", "(555) 201-0001", SUNDAY, "20:00").await;
    assert!(sunday["warning"].as_str().unwrap().contains("outside business hours"));
    let late = booked(&owner, "Bo", "555-300-4000", TUESDAY, "16:45").await;
    assert!(late["warning"].is_string(), "it ends after closing");
    let page = owner.get(&format!("/app/appointments/{}", sunday["id"])).await.text().await.unwrap();
    assert!(page.contains("id=\"hours-warning\""));
}

#[tokio::test]
async fn the_agenda_groups_a_range_of_days_in_the_tenants_time_zone() {
    let app = spawn_app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile").await;
    // 23:30 on Tuesday in Chicago is Wednesday in UTC: it must stay on Tuesday.
    booked(&owner, "Late Larry", "(555) 201-0001", TUESDAY, "23:30").await;
    booked(&owner, "Next Week Nora", "555-300-4000", "2031-03-12", "10:00").await;

    let week: Value = owner.get(&format!("/api/appointments?from={TUESDAY}&days=1")).await.json().await.unwrap();
    let names: Vec<&str> =
        week["appointments"].as_array().unwrap().iter().map(|a| a["customer_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Late Larry"]);
    let range: Value = owner.get("/api/appointments?from=2031-03-01&days=14").await.json().await.unwrap();
    assert_eq!(range["appointments"].as_array().unwrap().len(), 2);
    assert_eq!(owner.get("/api/appointments?from=soon").await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(owner.get("/api/appointments?days=1000").await.status(), StatusCode::BAD_REQUEST);

    let html = owner.get(&format!("/app/appointments?from={TUESDAY}")).await.text().await.unwrap();
    let tuesday = html.find("Tuesday, March 4").unwrap();
    let wednesday = html.find("Wednesday, March 5").unwrap();
    let larry = html.find("Late Larry").unwrap();
    assert!(tuesday < larry && larry < wednesday, "listed under its local day");
    assert!(html.contains("11:30 PM") && html.contains("Next Week Nora"));
    assert!(html.contains("March 2031"), "the month overview");
    assert!(html.contains("/app/appointments?from=2031-03-11"), "next week link");

    // A contact's "Book" link opens the form filled in with the customer.
    let prefilled = owner.get("/app/appointments?name=Ana%20Ruiz&phone=%2B15552010001").await.text().await.unwrap();
    assert!(prefilled.contains("value=\"Ana Ruiz\"") && prefilled.contains("value=\"+15552010001\""));
}

#[tokio::test]
async fn appointments_need_a_session_and_changes_need_the_csrf_token() {
    let app = spawn_app().await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile").await;
    let ana = booked(&owner, "Ana Ruiz", "(555) 201-0001", TUESDAY, "10:00").await;
    let id = ana["id"].as_i64().unwrap();
    let stranger = cookie_client();
    for path in ["/api/appointments".to_owned(), format!("/api/appointments/{id}")] {
        let response = stranger.get(format!("{}{path}", app.base_url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    for path in ["/app/appointments".to_owned(), format!("/app/appointments/{id}")] {
        let response = stranger.get(format!("{}{path}", app.base_url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }
    let body = json!({ "customer_name": "X", "customer_phone": "555-300-4000", "date": TUESDAY, "time": "12:00" });
    assert_eq!(
        owner.send_json_without_csrf(Method::POST, "/api/appointments", &body).await.status(),
        StatusCode::FORBIDDEN
    );
    let path = format!("/api/appointments/{id}");
    let patch = owner.send_json_without_csrf(Method::PATCH, &path, &json!({ "status": "completed" })).await;
    assert_eq!(patch.status(), StatusCode::FORBIDDEN);
    assert_eq!(owner.client.delete(owner.url(&path)).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let form = owner.client.post(owner.url(&format!("/app/appointments/{id}/status"))).form(&[("status", "cancelled")]);
    assert_eq!(form.send().await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(status_of(&app, id).await, "confirmed");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM appointments").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn another_tenants_appointments_are_invisible_and_untouchable() {
    let app = spawn_app().await;
    let a = app.signed_in_owner("a@example.com", "Alpha Dental").await;
    let b = app.signed_in_owner("b@example.com", "Beta Salon").await;
    let theirs = booked(&b, "Bella Secret", "(555) 201-0001", TUESDAY, "10:00").await;
    // The same time is free in another tenant.
    booked(&a, "Ana Ruiz", "(555) 201-0001", TUESDAY, "10:00").await;

    let list = a.get(&format!("/api/appointments?from={TUESDAY}&days=7")).await.text().await.unwrap();
    assert!(list.contains("Ana Ruiz") && !list.contains("Bella"));
    assert!(!a.get(&format!("/app/appointments?from={TUESDAY}")).await.text().await.unwrap().contains("Bella"));

    let path = format!("/api/appointments/{}", theirs["id"]);
    for response in [
        a.get(&path).await,
        a.send_json(Method::PATCH, &path, &json!({ "time": "15:00" })).await,
        a.send_json(Method::PATCH, &path, &json!({ "status": "no_show" })).await,
        a.delete(&path).await,
        a.get(&format!("/app/appointments/{}", theirs["id"])).await,
        a.post_form(&format!("/app/appointments/{}/status", theirs["id"]), &[("status", "cancelled")]).await,
        a.post_form(&format!("/app/appointments/{}", theirs["id"]), &[("date", TUESDAY), ("time", "15:00")]).await,
    ] {
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(!response.text().await.unwrap().contains("Bella"));
    }
    let still: Value = b.get(&path).await.json().await.unwrap();
    assert_eq!(still["status"], "confirmed");
    assert_eq!(still["starts_at"], "2031-03-04T16:00:00Z");
}
