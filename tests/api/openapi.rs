//! The OpenAPI document: it parses, names the session and CSRF schemes, lists every
//! `/api` route the router has, and every path it lists answers from the real router.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{browser, sign_up, spawn_app};

/// Every `/api` route in the router, read from the edges' `routes()` (method, path).
fn routed_api_paths() -> BTreeSet<(String, String)> {
    let source = [include_str!("../../src/web/mod.rs"), include_str!("../../src/telephony/mod.rs")].concat();
    let mut routes = BTreeSet::new();
    for line in source.lines() {
        let Some(rest) = line.trim().strip_prefix(".route(\"") else { continue };
        let Some((path, handlers)) = rest.split_once('"') else { continue };
        if !path.starts_with("/api/") || path == "/api/openapi.json" || path == "/api/docs" {
            continue;
        }
        for method in ["get", "post", "patch", "put", "delete"] {
            if handlers.contains(&format!("{method}(")) {
                routes.insert((method.to_owned(), path.to_owned()));
            }
        }
    }
    routes
}

async fn document(base_url: &str) -> Value {
    let response = reqwest::get(format!("{base_url}/api/openapi.json")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).expect("the document is JSON")
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().unwrap() {
            if op.get("responses").is_some() {
                found.insert((method.clone(), path.clone()));
            }
        }
    }
    found
}

#[tokio::test]
async fn the_document_is_openapi_3_with_session_csrf_and_api_key_security_schemes() {
    let app = spawn_app().await;
    let doc = document(&app.base_url).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["info"]["title"], "RinglyPro API");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(
        schemes["session"],
        json!({"type": "apiKey", "in": "cookie", "name": "ringlypro_session", "description": schemes["session"]["description"]})
    );
    assert_eq!(schemes["csrf"]["in"], "header");
    assert_eq!(schemes["csrf"]["name"], "X-CSRF-Token");
    for schema in ["SettingsView", "SettingsPatch", "TenantUsage", "Note", "SignupForm", "ErrorBody"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema} missing");
    }
    let patch = &doc["paths"]["/api/settings"]["patch"];
    assert_eq!(patch["security"], json!([{"session": [], "csrf": []}, {"api_key": []}]));
    assert_eq!(schemes["api_key"]["type"], "http");
    assert_eq!(schemes["api_key"]["scheme"], "bearer");
    let make_key = &doc["paths"]["/api/api-keys"]["post"];
    assert_eq!(make_key["security"], json!([{"session": [], "csrf": []}]), "only a session makes keys");
    let admin = doc["paths"]["/api/admin/tenants"]["get"]["security"].to_string();
    assert!(!admin.contains("api_key"), "{admin}");
}

#[tokio::test]
async fn every_api_route_of_the_router_is_documented() {
    let app = spawn_app().await;
    let routed = routed_api_paths();
    assert!(routed.len() >= 12, "the router's /api routes were not found: {routed:?}");
    let documented = documented(&document(&app.base_url).await);
    let missing: Vec<_> = routed.difference(&documented).collect();
    assert!(missing.is_empty(), "routed but not documented: {missing:?}");
}

#[tokio::test]
async fn every_documented_path_answers_from_the_real_router() {
    let app = spawn_app().await;
    let client = browser();
    let me = sign_up(&app, &client, "ops@ringlypro.example", "RinglyPro HQ").await;
    ringlypro::storage::postgres::admin::grant(&app.pool, "ops@ringlypro.example").await.unwrap();
    let mut operations: Vec<(String, String)> = documented(&document(&app.base_url).await).into_iter().collect();
    // Signing out last keeps the session for the others.
    operations.sort_by_key(|(_, path)| path == "/api/auth/logout");
    for (method, path) in operations {
        let url = format!("{}{}", app.base_url, path.replace("{id}", &me.client_id.to_string()));
        let request = match method.as_str() {
            "get" => client.get(&url),
            "post" => client.post(&url).json(&json!({})),
            "patch" => client.patch(&url).json(&json!({})),
            "put" => client.put(&url).json(&json!({})),
            "delete" => client.delete(&url),
            other => panic!("unexpected method {other}"),
        };
        let response = request.header("X-CSRF-Token", &me.csrf).send().await.unwrap();
        assert_ne!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        if response.status() == StatusCode::NOT_FOUND {
            // A handler saying "no such appointment" is routed; the router's own 404 is not.
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            assert!(body["error"].is_string(), "{method} {path} is not routed");
        }
    }
    // What an unrouted path gets, for contrast: not a handler's JSON error.
    let unrouted = client.get(format!("{}/api/no-such-thing", app.base_url)).send().await.unwrap();
    assert_eq!(unrouted.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = unrouted.json().await.unwrap_or_default();
    assert!(!body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn the_docs_page_loads_only_from_this_server() {
    let app = spawn_app().await;
    let page = reqwest::get(format!("{}/api/docs", app.base_url)).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("/api/openapi.json"));
    assert!(html.contains("src=\"/static/api-docs.js\""));
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"));
    let script = reqwest::get(format!("{}/static/api-docs.js", app.base_url)).await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    let js = script.text().await.unwrap();
    assert!(js.contains("fetch(\"/api/openapi.json\")"));
    assert!(!js.contains("http"));
}
