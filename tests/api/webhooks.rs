//! Twilio webhooks: routing by the number called, signatures, status callbacks, health.

use ringlypro::domain::calls::HandledBy;
use ringlypro::storage::postgres::calls;
use ringlypro::telephony::{signature, twiml};

use crate::helpers::{Options, spawn_app, spawn_app_with, voice_params};

const TOKEN: &str = "test_auth_token";

#[tokio::test]
async fn a_call_to_a_tenant_number_connects_a_media_stream_with_its_identifiers() {
    let app = spawn_app().await;
    let tenant = app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    let resp = reqwest::Client::new()
        .post(format!("{}/twilio/voice", app.base_url))
        .form(&voice_params("CA100", "+15557654321", "+15550001111"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/xml");
    let doc = twiml::read(&resp.text().await.unwrap());
    let ws_base = app.base_url.replace("http://", "ws://");
    assert_eq!(doc.stream_url, Some(format!("{ws_base}/twilio/media")));
    assert!(doc.parameters.contains(&("tenant_id".into(), tenant.to_string())));
    assert!(doc.parameters.iter().any(|(k, _)| k == "call_id"));
    assert_eq!(doc.redirect, Some(format!("{}/twilio/after", app.base_url)));
    let call = calls::find_by_sid(&app.pool, "CA100").await.unwrap().expect("call logged");
    assert_eq!(call.client_id, tenant);
    assert_eq!(call.handled_by, HandledBy::Agent);
    assert_eq!(call.from_number, "+15557654321");
    app.stop().await;
}

#[tokio::test]
async fn a_call_to_an_unknown_number_gets_an_apology_and_a_hang_up() {
    let app = spawn_app().await;
    let resp = reqwest::Client::new()
        .post(format!("{}/twilio/voice", app.base_url))
        .form(&voice_params("CA101", "+15557654321", "+15559999999"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc = twiml::read(&resp.text().await.unwrap());
    assert!(doc.say.unwrap().contains("not in service"));
    assert!(doc.hang_up);
    assert!(doc.stream_url.is_none());
    assert!(calls::find_by_sid(&app.pool, "CA101").await.unwrap().is_none());
    app.stop().await;
}

#[tokio::test]
async fn with_the_agent_off_the_call_rings_the_owner_and_is_logged_uncharged() {
    let app = spawn_app().await;
    let tenant = app.add_tenant("Law Office", "+15550002222", "America/Chicago").await;
    sqlx::query("UPDATE clients SET rachel_enabled = false WHERE id = $1")
        .bind(tenant)
        .execute(&app.pool)
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/twilio/voice", app.base_url))
        .form(&voice_params("CA102", "+15557654321", "+15550002222"))
        .send()
        .await
        .unwrap();
    let doc = twiml::read(&resp.text().await.unwrap());
    assert_eq!(doc.dial.as_deref(), Some("+15551230000"));
    let call = calls::find_by_sid(&app.pool, "CA102").await.unwrap().unwrap();
    assert_eq!(call.handled_by, HandledBy::Owner);
    assert_eq!(call.cost_cents, 0);
    app.stop().await;
}

#[tokio::test]
async fn unsigned_or_wrongly_signed_webhooks_are_forbidden_when_a_token_is_set() {
    let app = spawn_app_with(Options { auth_token: Some(TOKEN.into()), ..Options::default() }).await;
    app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    let client = reqwest::Client::new();
    let url = format!("{}/twilio/voice", app.base_url);
    let params = voice_params("CA103", "+15557654321", "+15550001111");

    let unsigned = client.post(&url).form(&params).send().await.unwrap();
    assert_eq!(unsigned.status(), 403);
    let wrong = client
        .post(&url)
        .form(&params)
        .header("X-Twilio-Signature", signature::sign("other", &url, &params))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let mut tampered = params.clone();
    tampered[5].1 = "+15550000000".into();
    let replayed = client
        .post(&url)
        .form(&tampered)
        .header("X-Twilio-Signature", signature::sign(TOKEN, &url, &params))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 403);
    assert!(calls::find_by_sid(&app.pool, "CA103").await.unwrap().is_none(), "nothing recorded for rejected requests");

    let signed = client
        .post(&url)
        .form(&params)
        .header("X-Twilio-Signature", signature::sign(TOKEN, &url, &params))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 200);
    assert!(calls::find_by_sid(&app.pool, "CA103").await.unwrap().is_some());
    app.stop().await;
}

#[tokio::test]
async fn a_media_stream_upgrade_without_a_valid_signature_is_refused() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app_with(Options { auth_token: Some(TOKEN.into()), ..Options::default() }).await;
    let ws_url = format!("{}/twilio/media", app.base_url.replace("http://", "ws://"));
    let err = tokio_tungstenite::connect_async(ws_url.as_str()).await.expect_err("unsigned upgrade must fail");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 403),
        other => panic!("expected an HTTP 403, got {other:?}"),
    }
    let mut request = ws_url.as_str().into_client_request().unwrap();
    request.headers_mut().insert("X-Twilio-Signature", signature::sign(TOKEN, &ws_url, &[]).parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(request).await.expect("signed upgrade succeeds");
    drop(socket);
    app.stop().await;
}

#[tokio::test]
async fn status_callbacks_are_applied_once_and_never_regress() {
    let app = spawn_app().await;
    app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    let client = reqwest::Client::new();
    client
        .post(format!("{}/twilio/voice", app.base_url))
        .form(&voice_params("CA104", "+15557654321", "+15550001111"))
        .send()
        .await
        .unwrap();
    let status = |s: &str, d: &str| {
        vec![
            ("CallSid".to_string(), "CA104".to_string()),
            ("CallStatus".into(), s.into()),
            ("CallDuration".into(), d.into()),
        ]
    };
    for _ in 0..3 {
        let r = client
            .post(format!("{}/twilio/status", app.base_url))
            .form(&status("completed", "67"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    // A late, out-of-order callback changes nothing.
    client.post(format!("{}/twilio/status", app.base_url)).form(&status("in-progress", "99")).send().await.unwrap();
    let call = calls::find_by_sid(&app.pool, "CA104").await.unwrap().unwrap();
    assert_eq!(call.status, "completed");
    assert_eq!(call.duration_seconds, Some(67));
    assert!(call.ended_at.is_some());

    let bad = client
        .post(format!("{}/twilio/status", app.base_url))
        .form(&status("completed", "sixty"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("CallDuration"));
    app.stop().await;
}

#[tokio::test]
async fn malformed_and_oversized_webhook_bodies_get_clear_errors() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let missing =
        client.post(format!("{}/twilio/voice", app.base_url)).form(&[("To", "+15550001111")]).send().await.unwrap();
    assert_eq!(missing.status(), 400);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "CallSid is required");
    let huge = "x".repeat(200_000);
    let oversized =
        client.post(format!("{}/twilio/voice", app.base_url)).form(&[("CallSid", huge.as_str())]).send().await.unwrap();
    assert_eq!(oversized.status(), 413);
    app.stop().await;
}

#[tokio::test]
async fn health_reports_the_database_and_redis() {
    let app = spawn_app_with(Options { redis: true, ..Options::default() }).await;
    let resp = reqwest::get(format!("{}/health", app.base_url)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    assert_eq!(body["call_state"]["store"], "redis");
    app.stop().await;
}

#[tokio::test]
async fn health_is_503_when_the_database_is_unreachable() {
    let app = spawn_app().await;
    let mut state = app.state.clone();
    // A pool that points at a port nothing listens on.
    state.pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/nothing")
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, ringlypro::web::routes().with_state(state)).await });
    let resp = reqwest::get(format!("http://{addr}/health")).await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["database"], "unreachable");
    server.abort();
    app.stop().await;
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text_format() {
    let app = spawn_app().await;
    let resp = reqwest::get(format!("{}/metrics", app.base_url)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let body = resp.text().await.unwrap();
    assert!(body.contains("ringlypro_active_calls 0"), "{body}");
    app.stop().await;
}
