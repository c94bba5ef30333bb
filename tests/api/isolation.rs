//! Tenant isolation twice over: row-level security hides other tenants' rows from a
//! tenant transaction even when a query forgets its WHERE client_id, and every route that
//! takes an id refuses another tenant's ids without a byte of their data.

use chrono::{Duration, DurationRound, Utc};
use ringlypro::domain::appointments::BookingSource;
use ringlypro::domain::ids::TenantId;
use ringlypro::domain::language::Language;
use ringlypro::domain::scheduling::Slot;
use ringlypro::services::booking::{self, BookingRequest};
use ringlypro::storage::postgres::{begin_tenant, tenants};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{add_tenant, fresh_database, spawn_app};

#[tokio::test]
async fn a_tenant_transaction_sees_only_its_own_rows_without_any_where_clause() {
    let (_, pool) = fresh_database().await;
    let a = add_tenant(&pool, "A", "+15550001111", "America/New_York").await;
    let b = add_tenant(&pool, "B", "+15550002222", "America/New_York").await;
    let starts_at = (Utc::now() + Duration::days(2)).duration_trunc(Duration::hours(1)).unwrap();
    for id in [a, b] {
        let tenant = tenants::find(&pool, id).await.unwrap().unwrap();
        let req = BookingRequest {
            name: format!("Caller of {id}"),
            phone: "+15557654321".into(),
            slot: Slot { starts_at, ends_at: starts_at + Duration::minutes(30) },
            call_id: None,
            language: Language::English,
            source: BookingSource::VoiceBooking,
        };
        booking::book(&pool, &tenant, &req, Utc::now()).await.unwrap();
    }
    let mut tx = begin_tenant(&pool, a).await.unwrap();
    let seen: Vec<TenantId> =
        sqlx::query_scalar("SELECT client_id FROM appointments").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(seen, vec![a]);
    let contacts: Vec<TenantId> =
        sqlx::query_scalar("SELECT client_id FROM contacts").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(contacts, vec![a]);
    let clients: Vec<TenantId> = sqlx::query_scalar("SELECT id FROM clients").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(clients, vec![a]);
    // Writing another tenant's rows is refused too.
    let err = sqlx::query("INSERT INTO contacts (client_id, phone) VALUES ($1, '+15550000000')")
        .bind(b)
        .execute(&mut *tx)
        .await;
    assert!(err.is_err(), "row-level security must refuse a write for another tenant");
    tx.rollback().await.unwrap();
    let updated = {
        let mut tx = begin_tenant(&pool, a).await.unwrap();
        let n = sqlx::query("UPDATE appointments SET notes = 'x'").execute(&mut *tx).await.unwrap().rows_affected();
        tx.commit().await.unwrap();
        n
    };
    assert_eq!(updated, 1, "an unscoped update touches only the tenant's own row");
}

/// Every route of the router that takes an id, read from the edges' `routes()` (web and
/// telephony), with the methods it answers: (path, methods).
fn id_routes() -> Vec<(String, Vec<&'static str>)> {
    let source = [include_str!("../../src/web/mod.rs"), include_str!("../../src/telephony/mod.rs")].concat();
    let mut routes = Vec::new();
    for chunk in source.split(".route(").skip(1) {
        let Some(path) = chunk.trim_start().strip_prefix('"').and_then(|rest| rest.split('"').next()) else { continue };
        if !path.contains('{') {
            continue;
        }
        // The handler expression runs to the end of this `.route(` call.
        let handler = chunk.split(".route(").next().unwrap_or("");
        let methods: Vec<&'static str> = ["get", "post", "patch", "put", "delete"]
            .into_iter()
            .filter(|m| handler.contains(&format!("{m}(")) || handler.contains(&format!(".{m}(")))
            .collect();
        routes.push((path.to_owned(), methods));
    }
    routes
}

#[tokio::test]
async fn an_owner_trying_every_route_with_another_tenants_ids_gets_404_and_none_of_their_data() {
    let app = spawn_app().await;
    let a = app.signed_in_owner("ann@a-dental.example", "Ann's Dental").await;
    let b = app.signed_in_owner("bob@b-clinic.example", "Bob's Secret Clinic").await;

    // Tenant B's CRM: a contact, an appointment, a text, and a call with its transcript.
    let contact: serde_json::Value = b
        .send_json(Method::POST, "/api/contacts", &json!({"name": "Zebulon Quartzfield", "phone": "+15557770001"}))
        .await
        .json()
        .await
        .unwrap();
    let contact_id = contact["id"].as_i64().expect("B's contact");
    let appointment: serde_json::Value = b
        .send_json(
            Method::POST,
            "/api/appointments",
            &json!({"customer_name": "Zebulon Quartzfield", "customer_phone": "+15557770001",
                    "date": "2031-03-04", "time": "10:00"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let appointment_id = appointment["id"].as_i64().expect("B's appointment");
    let sms =
        b.send_json(Method::POST, "/api/messages", &json!({"to": "+15557770001", "body": "Xylophone reminder"})).await;
    assert_eq!(sms.status(), StatusCode::ACCEPTED);
    let call_id: i64 = sqlx::query_scalar(
        "INSERT INTO calls (client_id, contact_id, call_sid, from_number, to_number, status, outcome)
         VALUES ($1, $2, 'CAbobsecretcall', '+15557770001', '+15550009999', 'completed', 'booked') RETURNING id",
    )
    .bind(b.client_id)
    .bind(contact_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO call_turns (client_id, call_id, seq, speaker, text, started_at)
         VALUES ($1, $2, 0, 'caller', 'my password is Quokka', now())",
    )
    .bind(b.client_id)
    .bind(call_id)
    .execute(&app.pool)
    .await
    .unwrap();
    let snapshot = |pool: sqlx::PgPool, id: TenantId| async move {
        sqlx::query_scalar::<_, String>(
            "SELECT concat_ws('|',
                (SELECT string_agg(concat_ws(',', name, phone, notes), ';' ORDER BY id) FROM contacts WHERE client_id = $1),
                (SELECT string_agg(concat_ws(',', starts_at, status, customer_name), ';' ORDER BY id) FROM appointments WHERE client_id = $1),
                (SELECT string_agg(concat_ws(',', body, status), ';' ORDER BY id) FROM messages WHERE client_id = $1),
                (SELECT string_agg(call_sid, ';' ORDER BY id) FROM calls WHERE client_id = $1),
                (SELECT concat_ws(',', business_name, custom_greeting, rachel_enabled) FROM clients WHERE id = $1))",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let before = snapshot(app.pool.clone(), b.client_id).await;
    let secrets = ["Zebulon", "Quartzfield", "5557770001", "Xylophone", "Quokka", "Bob's Secret", "bobsecret"];

    let routes = id_routes();
    assert!(routes.len() >= 10, "the router's id routes were found: {routes:?}");
    let mut tried = 0;
    for (path, methods) in &routes {
        // `/calls/{call_sid}` is Twilio's (signed with the auth token in production);
        // admin routes refuse owners outright (tested in admin.rs).
        if path.starts_with("/calls/") || path.contains("admin") {
            continue;
        }
        let id = if path.contains("appointments") {
            appointment_id.to_string()
        } else if path.contains("calls") {
            "CAbobsecretcall".to_owned()
        } else {
            contact_id.to_string()
        };
        let url =
            path.split('/').map(|s| if s.starts_with('{') { id.as_str() } else { s }).collect::<Vec<_>>().join("/");
        for method in methods {
            let body = json!({"name": "Hacked", "phone": "+15550000000", "status": "cancelled", "body": "hi",
                              "customer_name": "Hacked", "date": "2031-03-05", "time": "11:00"});
            let response = match *method {
                "get" => a.get(&url).await,
                "delete" => a.delete(&url).await,
                "post" if url.starts_with("/app/") => {
                    a.post_form(
                        &url,
                        &[("name", "Hacked"), ("phone", "+15550000000"), ("status", "cancelled"), ("body", "hi")],
                    )
                    .await
                }
                other => a.send_json(other.to_uppercase().parse().unwrap(), &url, &body).await,
            };
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            assert!(
                status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN,
                "{method} {url} as another tenant answered {status}: {text}"
            );
            // A 404 may name the id that was asked for; nothing else of B's may appear.
            for secret in secrets.iter().filter(|s| !url.contains(*s)) {
                assert!(!text.contains(secret), "{method} {url} leaked {secret:?}: {text}");
            }
            tried += 1;
        }
    }
    assert!(tried >= 12, "only {tried} attempts");

    // Lists, searches and filters never show B's rows either.
    for url in [
        "/api/contacts?q=Zebulon",
        "/api/contacts?q=5557770001",
        "/app/contacts?q=Quartzfield",
        "/api/appointments?from=2031-03-01&days=14",
        "/app/appointments?from=2031-03-01&days=14",
        "/api/messages",
        "/app/messages",
        "/app",
        "/api/calls?q=5557770001",
        "/app/calls?q=Zebulon",
        "/api/live",
    ] {
        let response = a.get(url).await;
        let text = response.text().await.unwrap_or_default();
        // A search box shows back what was typed; everything else of B's must be absent.
        for secret in secrets.iter().filter(|s| !url.contains(*s)) {
            assert!(!text.contains(secret), "{url} leaked {secret:?}");
        }
    }
    assert_eq!(snapshot(app.pool.clone(), b.client_id).await, before, "B's data is exactly as it was");
}

#[tokio::test]
async fn the_applications_connections_are_neither_superuser_nor_owner_and_row_security_binds_them() {
    let app = spawn_app().await;
    let a = app.add_tenant("Ann's Dental", "+15550001111", "America/New_York").await;
    let b = app.add_tenant("Bob's Clinic", "+15550002222", "America/Chicago").await;
    for (client, phone) in [(a, "+15557770001"), (b, "+15557770002"), (b, "+15557770003")] {
        sqlx::query("INSERT INTO contacts (client_id, name, phone) VALUES ($1, 'someone', $2)")
            .bind(client)
            .bind(phone)
            .execute(&app.pool)
            .await
            .unwrap();
    }
    // The application's own pool, as its handlers use it.
    let pool = &app.state.pool;
    let (user, superuser, owner): (String, bool, String) = sqlx::query_as(
        "SELECT current_user::text, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
                (SELECT tableowner::text FROM pg_tables WHERE tablename = 'contacts')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(user, "ringlypro_app");
    assert!(!superuser, "the application's role is not a superuser");
    assert_ne!(owner, user, "the application's role does not own the tables");

    // A transaction that names tenant A and then forgets every WHERE still sees only A.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.client_id', $1, true)").bind(a.to_string()).execute(&mut *tx).await.unwrap();
    let owners: Vec<TenantId> = sqlx::query_scalar("SELECT client_id FROM contacts").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(owners, vec![a], "only A's contact, without a WHERE clause");
    let touched = sqlx::query("UPDATE contacts SET notes = 'overwritten'").execute(&mut *tx).await.unwrap();
    assert_eq!(touched.rows_affected(), 1, "an unscoped UPDATE reaches only A's row");
    // Nor can it switch row security off.
    sqlx::query("SET LOCAL row_security = off").execute(&mut *tx).await.unwrap();
    assert!(sqlx::query("SELECT count(*) FROM contacts").fetch_one(&mut *tx).await.is_err());
    tx.rollback().await.unwrap();
}
