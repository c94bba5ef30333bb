//! The owner's call history and call pages: filters and pages, the transcript with its
//! latency figures, the recording, deletion, and that none of it crosses tenants.

use chrono::{DateTime, Duration, TimeZone, Utc};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use ringlypro::domain::calls::Speaker;
use ringlypro::domain::ids::{CallId, TenantId};
use ringlypro::storage::postgres::begin_tenant;
use ringlypro::storage::postgres::calls::{self, Turn};
use ringlypro::storage::postgres::recordings::{self, NewRecording};
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{SignedIn, TestApp, cookie_client, signed_in_owner, spawn_app};

/// Stores a call of `client_id` started `hours_ago`, as the call actor would.
async fn stored_call(
    pool: &PgPool,
    client_id: TenantId,
    sid: &str,
    from: &str,
    started_at: DateTime<Utc>,
    outcome: &str,
    handled_by: &str,
) -> CallId {
    sqlx::query_scalar(
        "INSERT INTO calls (client_id, call_sid, from_number, to_number, handled_by, status, outcome, started_at, \
             ended_at, duration_seconds, cost_cents) \
         VALUES ($1, $2, $3, '+15550001111', $4, 'completed', $5, $6, $6 + interval '95 seconds', 95, 20) RETURNING id",
    )
    .bind(client_id)
    .bind(sid)
    .bind(from)
    .bind(handled_by)
    .bind(outcome)
    .bind(started_at)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn api(owner: &SignedIn, app: &TestApp, path: &str) -> reqwest::Response {
    owner.client.get(format!("{}{path}", app.base_url)).send().await.unwrap()
}

async fn sids(owner: &SignedIn, app: &TestApp, query: &str) -> Vec<String> {
    let response = api(owner, app, &format!("/api/calls{query}")).await;
    assert_eq!(response.status(), StatusCode::OK, "{query}");
    let body: Value = response.json().await.unwrap();
    body["calls"].as_array().unwrap().iter().map(|c| c["call_sid"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_call_history_is_newest_first_filtered_and_paginated_for_its_own_tenant_only() {
    let app = spawn_app().await;
    let a = signed_in_owner(&app, "a@example.com", "Alpha Dental", "+15550001111").await;
    let b = signed_in_owner(&app, "b@example.com", "Beta Salon", "+15550002222").await;
    // 10:00 New York time on 10 and 12 March 2025 and 14:00 on 14 March.
    let day = |d: u32, h: u32| Utc.with_ymd_and_hms(2025, 3, d, h + 4, 0, 0).unwrap();
    let ann = stored_call(&app.pool, a.client_id, "CA-ann", "+15557770001", day(10, 10), "booked", "agent").await;
    stored_call(&app.pool, a.client_id, "CA-bob", "+15557770002", day(12, 10), "message", "agent").await;
    stored_call(&app.pool, a.client_id, "CA-fwd", "+15557770003", day(14, 14), "none", "owner").await;
    stored_call(&app.pool, b.client_id, "CA-beta", "+15557770009", day(12, 11), "booked", "agent").await;
    let contact: i64 = sqlx::query_scalar(
        "INSERT INTO contacts (client_id, name, phone) VALUES ($1, 'Ann O''Neil', '+15557770001') RETURNING id",
    )
    .bind(a.client_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE calls SET contact_id = $1 WHERE id = $2")
        .bind(contact)
        .bind(ann)
        .execute(&app.pool)
        .await
        .unwrap();

    assert_eq!(sids(&a, &app, "").await, vec!["CA-fwd", "CA-bob", "CA-ann"], "newest first, only A's");
    assert_eq!(sids(&a, &app, "?from=2025-03-11&to=2025-03-12").await, vec!["CA-bob"]);
    assert_eq!(sids(&a, &app, "?to=2025-03-10").await, vec!["CA-ann"], "the last day is included");
    assert_eq!(sids(&a, &app, "?outcome=booked").await, vec!["CA-ann"]);
    assert_eq!(sids(&a, &app, "?handled_by=owner").await, vec!["CA-fwd"]);
    assert_eq!(sids(&a, &app, "?q=o%27neil").await, vec!["CA-ann"], "by contact name, any case");
    assert_eq!(sids(&a, &app, "?q=7770002").await, vec!["CA-bob"], "by part of the number");
    assert!(sids(&a, &app, "?q=7770009").await.is_empty(), "B's caller is not found from A");
    assert!(sids(&a, &app, "?q=%25").await.is_empty(), "a % is searched for literally");

    let page: Value = api(&a, &app, "/api/calls?per_page=2&page=2").await.json().await.unwrap();
    assert_eq!(page["total"], 3);
    assert_eq!(page["pages"], 2);
    assert_eq!(page["calls"].as_array().unwrap().len(), 1);
    assert_eq!(page["calls"][0]["call_sid"], "CA-ann");
    assert_eq!(page["calls"][0]["contact_name"], "Ann O'Neil");

    let html = api(&a, &app, "/app/calls?per_page=2").await.text().await.unwrap();
    assert!(html.contains("CA-fwd") && html.contains("CA-bob") && !html.contains("CA-ann"), "{html}");
    assert!(html.contains("Mar 14, 2:00 PM"), "times are in the business's time zone");
    assert!(html.contains("1:35") && html.contains("$0.20") && html.contains("sent to you"));
    assert!(html.contains("page=2") && html.contains("Older"));
    assert!(!html.contains("CA-beta") && !html.contains("+15557770009"));
    let html = api(&a, &app, "/app/calls?q=ann").await.text().await.unwrap();
    assert!(html.contains("Ann O&#x27;Neil") || html.contains("Ann O&#39;Neil"), "the contact's name is shown");
    app.stop().await;
}

#[tokio::test]
async fn bad_history_filters_are_named_with_a_message_and_the_input_is_kept() {
    let app = spawn_app().await;
    let a = signed_in_owner(&app, "a@example.com", "Alpha Dental", "+15550001111").await;
    let response = api(&a, &app, "/api/calls?from=last%20week").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["field"], "from");
    assert!(body["error"].as_str().unwrap().contains("YYYY-MM-DD"));
    for (query, field) in [
        ("?from=2025-03-02&to=2025-03-01", "to"),
        ("?outcome=won", "outcome"),
        ("?handled_by=robot", "handled_by"),
        ("?page=0", "page"),
        ("?per_page=1000", "per_page"),
    ] {
        let body: Value = api(&a, &app, &format!("/api/calls{query}")).await.json().await.unwrap();
        assert_eq!(body["field"], field, "{query}");
    }
    let response = api(&a, &app, "/app/calls?from=last%20week&q=smith").await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"id="from-error""#) && html.contains("use YYYY-MM-DD"));
    assert!(html.contains(r#"value="last week""#) && html.contains(r#"value="smith""#), "what was typed stays");
    app.stop().await;
}

#[tokio::test]
async fn call_pages_need_a_signed_in_owner() {
    let app = spawn_app().await;
    let anonymous = cookie_client();
    for path in ["/api/calls", "/api/calls/CA1", "/api/calls/CA1/recording", "/api/live", "/api/live/events"] {
        let response = anonymous.get(format!("{}{path}", app.base_url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    for path in ["/app/calls", "/app/calls/CA1", "/app/calls/CA1/recording", "/app/live", "/app/live/events"] {
        let response = anonymous.get(format!("{}{path}", app.base_url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert!(response.headers()[LOCATION].to_str().unwrap().starts_with("/login?next="), "{path}");
    }
    let response = anonymous.delete(format!("{}/api/calls/CA1", app.base_url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

fn at(base: DateTime<Utc>, ms: i64) -> Option<DateTime<Utc>> {
    Some(base + Duration::milliseconds(ms))
}

#[tokio::test]
async fn a_call_page_shows_the_transcript_what_was_heard_the_latency_and_what_the_call_made() {
    let app = spawn_app().await;
    let a = signed_in_owner(&app, "a@example.com", "Alpha Dental", "+15550001111").await;
    let b = signed_in_owner(&app, "b@example.com", "Beta Salon", "+15550002222").await;
    let t0 = Utc.with_ymd_and_hms(2025, 3, 10, 14, 0, 0).unwrap();
    let call_id = stored_call(&app.pool, a.client_id, "CA-detail", "+15557770001", t0, "booked", "agent").await;
    let turns = vec![
        Turn {
            seq: 0,
            speaker: Speaker::Agent,
            text: "Thanks for calling Alpha Dental, this is Rachel. How can I help you today?".into(),
            heard_text: Some("Thanks for calling Alpha Dental,".into()),
            interrupted: true,
            started_at: t0,
            ..Turn::default()
        },
        Turn {
            seq: 1,
            speaker: Speaker::Caller,
            text: "I would like to book a cleaning.".into(),
            started_at: t0 + Duration::seconds(3),
            ..Turn::default()
        },
        Turn {
            seq: 2,
            speaker: Speaker::Agent,
            text: "Sure, what is your name?".into(),
            started_at: t0 + Duration::seconds(5),
            caller_stopped_at: at(t0, 4_000),
            stt_final_at: at(t0, 4_150),
            reply_ready_at: at(t0, 4_400),
            tts_first_byte_at: at(t0, 4_650),
            first_audio_sent_at: at(t0, 4_660),
            first_mark_at: at(t0, 4_900),
            ..Turn::default()
        },
    ];
    let mut tx = begin_tenant(&app.pool, a.client_id).await.unwrap();
    calls::save_turns(&mut tx, a.client_id, call_id, &turns).await.unwrap();
    tx.commit().await.unwrap();
    sqlx::query(
        "INSERT INTO appointments (client_id, call_id, customer_name, customer_phone, starts_at, ends_at, confirmation_code) \
         VALUES ($1, $2, 'Ann Lee', '+15557770001', $3, $3 + interval '30 minutes', 'QX7K2P'); \
         ",
    )
    .bind(a.client_id)
    .bind(call_id)
    .bind(t0 + Duration::days(1))
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO messages (client_id, call_id, direction, kind, to_number, from_number, body) \
         VALUES ($1, $2, 'outbound', 'sms', '+15557770001', '+15550001111', 'See you tomorrow, code QX7K2P')",
    )
    .bind(a.client_id)
    .bind(call_id)
    .execute(&app.pool)
    .await
    .unwrap();

    let html = api(&a, &app, "/app/calls/CA-detail").await.text().await.unwrap();
    assert!(html.contains("Thanks for calling Alpha Dental,"));
    assert!(html.contains("Not heard:") && html.contains("this is Rachel. How can I help you today?"));
    assert!(html.contains("I would like to book a cleaning."));
    assert!(html.contains("Sure, what is your name?"));
    assert!(html.contains("speech recognised +150 ms") && html.contains("voice started +250 ms"));
    assert!(html.contains("played +240 ms") && html.contains("caller waited 660 ms"));
    assert!(html.contains("QX7K2P") && html.contains("See you tomorrow"));
    assert!(html.contains("10:00:00 AM"), "line times in the business's time zone");
    assert!(!html.contains("<audio"), "no recording, no player");

    let body: Value = api(&a, &app, "/api/calls/CA-detail").await.json().await.unwrap();
    assert_eq!(body["transcript"].as_array().unwrap().len(), 3);
    assert_eq!(body["transcript"][0]["heard_text"], "Thanks for calling Alpha Dental,");
    assert!(body["transcript"][0]["latency"].is_null(), "the greeting follows no caller turn");
    let latency = &body["transcript"][2]["latency"];
    assert_eq!(
        [
            &latency["stt_ms"],
            &latency["reply_ms"],
            &latency["tts_first_byte_ms"],
            &latency["first_audio_ms"],
            &latency["first_mark_ms"],
            &latency["total_ms"]
        ],
        [150, 250, 250, 10, 240, 660]
    );
    assert_eq!(body["appointments"][0]["confirmation_code"], "QX7K2P");
    assert_eq!(body["messages"][0]["body"], "See you tomorrow, code QX7K2P");
    assert!(body["recording_url"].is_null());

    // Another tenant gets 404 and none of the call.
    for path in ["/api/calls/CA-detail", "/app/calls/CA-detail"] {
        let response = api(&b, &app, path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let text = response.text().await.unwrap();
        assert!(!text.contains("cleaning") && !text.contains("QX7K2P"), "{text}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_recording_is_played_to_its_owner_and_is_404_to_another_tenant() {
    let app = spawn_app().await;
    let a = signed_in_owner(&app, "a@example.com", "Alpha Dental", "+15550001111").await;
    let b = signed_in_owner(&app, "b@example.com", "Beta Salon", "+15550002222").await;
    let call_id = stored_call(&app.pool, a.client_id, "CA-rec", "+15557770001", Utc::now(), "info", "agent").await;
    let bytes = b"OggS-not-really-but-stored-as-is".to_vec();
    recordings::save(&app.pool, &NewRecording { client_id: a.client_id, call_id, duration_ms: 1000, bytes: &bytes })
        .await
        .unwrap();

    let html = api(&a, &app, "/app/calls/CA-rec").await.text().await.unwrap();
    assert!(html.contains(r#"<audio controls preload="none" src="/app/calls/CA-rec/recording""#), "{html}");
    let body: Value = api(&a, &app, "/api/calls/CA-rec").await.json().await.unwrap();
    assert_eq!(body["recording_url"], "/api/calls/CA-rec/recording");
    for path in ["/app/calls/CA-rec/recording", "/api/calls/CA-rec/recording"] {
        let response = api(&a, &app, path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()[CONTENT_TYPE], "audio/ogg");
        assert_eq!(response.bytes().await.unwrap().to_vec(), bytes);
        let response = api(&b, &app, path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(!response.text().await.unwrap().contains("OggS"));
    }
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_call_removes_it_with_its_recording_and_another_tenant_cannot() {
    let app = spawn_app().await;
    let a = signed_in_owner(&app, "a@example.com", "Alpha Dental", "+15550001111").await;
    let b = signed_in_owner(&app, "b@example.com", "Beta Salon", "+15550002222").await;
    let call_id = stored_call(&app.pool, a.client_id, "CA-gone", "+15557770001", Utc::now(), "info", "agent").await;
    recordings::save(&app.pool, &NewRecording { client_id: a.client_id, call_id, duration_ms: 1, bytes: b"x" })
        .await
        .unwrap();
    let calls_left = |sid: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM calls WHERE call_sid = $1")
                .bind(sid)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let url = format!("{}/api/calls/CA-gone", app.base_url);

    // B, with B's own valid token: 404, nothing deleted.
    let response = b.client.delete(&url).header("x-csrf-token", &b.csrf_token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = b
        .client
        .post(format!("{}/app/calls/CA-gone/delete", app.base_url))
        .form(&[("csrf_token", b.csrf_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(calls_left("CA-gone").await, 1);
    // A without the CSRF token: refused.
    let response = a.client.delete(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(calls_left("CA-gone").await, 1);

    // The page asks first, then deletes.
    let html = api(&a, &app, "/app/calls/CA-gone").await.text().await.unwrap();
    assert!(html.contains(r#"href="/app/calls/CA-gone/delete""#));
    let html = api(&a, &app, "/app/calls/CA-gone/delete").await.text().await.unwrap();
    assert!(html.contains("Delete this call?") && html.contains(&a.csrf_token));
    assert_eq!(calls_left("CA-gone").await, 1, "asking deletes nothing");

    let response = a.client.delete(&url).header("x-csrf-token", &a.csrf_token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(calls_left("CA-gone").await, 0);
    assert!(recordings::find_for_call(&app.pool, a.client_id, call_id).await.unwrap().is_none());
    let response = a.client.delete(&url).header("x-csrf-token", &a.csrf_token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "already gone");

    // The form route, with the token, deletes and returns to the history.
    stored_call(&app.pool, a.client_id, "CA-form", "+15557770001", Utc::now(), "info", "agent").await;
    let response = a
        .client
        .post(format!("{}/app/calls/CA-form/delete", app.base_url))
        .form(&[("csrf_token", a.csrf_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(response.headers()[LOCATION].to_str().unwrap().starts_with("/app/calls"));
    assert_eq!(calls_left("CA-form").await, 0);
    app.stop().await;
}
