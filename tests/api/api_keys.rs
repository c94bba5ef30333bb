//! API keys: made once and shown once, stored hashed, acting for their own business on the
//! JSON API without a session or CSRF token, refused once revoked, rate-limited, and never
//! able to make keys or open the dashboard's pages.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Options, SignedInOwner, TestApp, spawn_app, spawn_app_with};

async fn make_key(owner: &SignedInOwner, name: &str) -> (i64, String) {
    let response = owner.send_json(Method::POST, "/api/api-keys", &json!({ "name": name })).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    let key = body["key"].as_str().expect("the key, shown once").to_owned();
    (body["api_key"]["id"].as_i64().unwrap(), key)
}

fn with_key(app: &TestApp, method: Method, path: &str, key: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().request(method, format!("{}{path}", app.base_url)).bearer_auth(key)
}

#[tokio::test]
async fn a_key_acts_for_its_own_business_only_and_stops_when_revoked() {
    let app = spawn_app().await;
    let dana = app.signed_in_owner("dana@example.com", "Bright Smile Dental").await;
    let omar = app.signed_in_owner("omar@example.com", "Omar's Barbers").await;
    let (id, key) = make_key(&dana, "Zapier").await;
    assert!(key.starts_with("rpk_") && key.len() > 40, "{key}");

    // Only its hash is stored.
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT key_hash FROM api_keys WHERE id = $1").bind(id).fetch_one(&app.pool).await.unwrap();
    assert_ne!(stored, key.as_bytes());
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE prefix = $1 OR name = $1")
        .bind(&key)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(found, 0, "the key itself is nowhere in the table");

    // A change with the key alone: no cookie, no CSRF token.
    let added = with_key(&app, Method::POST, "/api/blocked-numbers", &key)
        .json(&json!({ "phone": "(555) 999-0000", "note": "robocalls" }))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    let listed: Value =
        with_key(&app, Method::GET, "/api/blocked-numbers", &key).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let omars: Value = omar.get("/api/blocked-numbers").await.json().await.unwrap();
    assert_eq!(omars, json!([]), "the other business sees nothing of it");

    // The list shows when it was used, never the key.
    let keys: Value = dana.get("/api/api-keys").await.json().await.unwrap();
    assert_eq!(keys[0]["name"], "Zapier");
    assert!(keys[0]["last_used_at"].is_string(), "{keys}");
    assert!(!keys.to_string().contains(&key), "{keys}");
    assert!(key.starts_with(keys[0]["prefix"].as_str().unwrap()));

    // Another business cannot revoke it.
    assert_eq!(omar.delete(&format!("/api/api-keys/{id}")).await.status(), StatusCode::NOT_FOUND);
    let revoked = dana.delete(&format!("/api/api-keys/{id}")).await;
    assert_eq!(revoked.status(), StatusCode::OK);
    let refused = with_key(&app, Method::GET, "/api/blocked-numbers", &key).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("revoked"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_key_cannot_make_keys_open_pages_or_the_admin_area_and_a_wrong_key_is_refused() {
    let app = spawn_app().await;
    let dana = app.signed_in_owner("dana@example.com", "Bright Smile Dental").await;
    let (id, key) = make_key(&dana, "n8n").await;
    let minted =
        with_key(&app, Method::POST, "/api/api-keys", &key).json(&json!({ "name": "more" })).send().await.unwrap();
    assert_eq!(minted.status(), StatusCode::FORBIDDEN);
    let revoke = with_key(&app, Method::DELETE, &format!("/api/api-keys/{id}"), &key).send().await.unwrap();
    assert_eq!(revoke.status(), StatusCode::FORBIDDEN, "a key cannot revoke keys either");
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = client.get(format!("{}/app/settings", app.base_url)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER, "pages need a session");
    let admin = with_key(&app, Method::GET, "/api/admin/tenants", &key).send().await.unwrap();
    assert_eq!(admin.status(), StatusCode::FORBIDDEN);
    for wrong in ["rpk_not-a-key", &format!("{key}x"), "", "Basic abc"] {
        let response = with_key(&app, Method::GET, "/api/blocked-numbers", wrong).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{wrong:?}");
    }
    let nameless = dana.send_json(Method::POST, "/api/api-keys", &json!({ "name": "  " })).await;
    assert_eq!(nameless.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}

#[tokio::test]
async fn a_key_past_its_rate_limit_is_told_when_to_come_back() {
    let app =
        spawn_app_with(Options { env: vec![("API_REQUESTS_PER_KEY_PER_MINUTE", "3".into())], ..Default::default() })
            .await;
    let dana = app.signed_in_owner("dana@example.com", "Bright Smile Dental").await;
    let (_, key) = make_key(&dana, "script").await;
    let (_, other) = make_key(&dana, "other script").await;
    for _ in 0..3 {
        let ok = with_key(&app, Method::GET, "/api/blocked-numbers", &key).send().await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
    }
    let limited = with_key(&app, Method::GET, "/api/blocked-numbers", &key).send().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = limited.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("try again"), "{body}");
    let fine = with_key(&app, Method::GET, "/api/blocked-numbers", &other).send().await.unwrap();
    assert_eq!(fine.status(), StatusCode::OK, "each key has its own limit");
    assert_eq!(dana.get("/api/blocked-numbers").await.status(), StatusCode::OK, "the session is not limited by keys");
    app.stop().await;
}

#[tokio::test]
async fn the_integrations_page_shows_a_new_key_once_and_revokes_it() {
    let app = spawn_app().await;
    let dana = app.signed_in_owner("dana@example.com", "Bright Smile Dental").await;
    let page = dana.get("/app/integrations").await.text().await.unwrap();
    assert!(page.contains("id=\"no-keys\""), "no keys yet");
    let made = dana.post_form("/app/integrations/api-keys", &[("name", "Make.com")]).await;
    assert_eq!(made.status(), StatusCode::OK);
    assert_eq!(made.headers()["cache-control"], "no-store");
    let html = made.text().await.unwrap();
    let key = html
        .split("id=\"new-key-value\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("the key is shown")
        .to_owned();
    assert!(key.starts_with("rpk_"), "{key}");
    assert_eq!(with_key(&app, Method::GET, "/api/settings", &key).send().await.unwrap().status(), StatusCode::OK);
    let again = dana.get("/app/integrations").await.text().await.unwrap();
    assert!(again.contains("Make.com") && !again.contains(&key), "listed, never shown again");
    let id: i64 = sqlx::query_scalar("SELECT id FROM api_keys").fetch_one(&app.pool).await.unwrap();
    let blank = dana.post_form("/app/integrations/api-keys", &[("name", "")]).await;
    assert_eq!(blank.status(), StatusCode::BAD_REQUEST);
    assert!(blank.text().await.unwrap().contains("give the key a name"));
    let revoked = dana.post_form(&format!("/app/integrations/api-keys/{id}/revoke"), &[]).await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        with_key(&app, Method::GET, "/api/settings", &key).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let after = dana.get("/app/integrations?done=revoked").await.text().await.unwrap();
    assert!(after.contains("revoked") && after.contains("Revoked."), "{after}");
    app.stop().await;
}
