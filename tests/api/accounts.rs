//! Owners' accounts end to end: signup, sign in and out, sessions, CSRF, attempt limits,
//! password reset, the Today page and its Rachel switch, and tenant isolation — driven
//! by a cookie-keeping HTTP client against the spawned application.

use reqwest::StatusCode;
use reqwest::header::{LOCATION, RETRY_AFTER, SET_COOKIE};
use ringlypro::services::accounts;
use ringlypro::services::passwords::Passwords;
use ringlypro::storage::postgres::numbers;
use serde_json::{Value, json};
use sqlx::Row;

use crate::helpers::{Options, TestApp, spawn_app, spawn_app_with};

const PASSWORD: &str = "tulips in april";

/// A browser-like client: keeps cookies, does not follow redirects (tests look at them).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client builds")
}

fn signup_fields(email: &str, business: &str) -> Value {
    json!({
        "email": email,
        "password": PASSWORD,
        "business_name": business,
        "business_phone": "(555) 123-4567",
        "business_type": "dental",
        "owner_name": "Dana Rivera",
        "owner_phone": "+1 555 987 6543",
        "timezone": "America/Chicago",
    })
}

fn as_form(fields: &Value) -> Vec<(String, String)> {
    fields
        .as_object()
        .expect("an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// Signs up through the JSON twin; returns the answer.
async fn api_signup(app: &TestApp, client: &reqwest::Client, email: &str, business: &str) -> Value {
    let response = client
        .post(format!("{}/api/auth/signup", app.base_url))
        .json(&signup_fields(email, business))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "signup of {email} failed");
    response.json().await.unwrap()
}

async fn me(app: &TestApp, client: &reqwest::Client) -> reqwest::Response {
    client.get(format!("{}/api/auth/me", app.base_url)).send().await.unwrap()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&app.pool).await.unwrap()
}

async fn rachel_enabled(app: &TestApp, client_id: i64) -> bool {
    sqlx::query_scalar("SELECT rachel_enabled FROM clients WHERE id = $1")
        .bind(client_id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn set_rachel(app: &TestApp, client: &reqwest::Client, csrf: Option<&str>, enabled: &str) -> reqwest::Response {
    let mut form = vec![("enabled", enabled.to_owned())];
    if let Some(token) = csrf {
        form.push(("csrf_token", token.to_owned()));
    }
    client.post(format!("{}/app/rachel", app.base_url)).form(&form).send().await.unwrap()
}

#[tokio::test]
async fn signup_creates_the_owner_their_business_and_its_credit_account_and_signs_them_in() {
    let app = spawn_app().await;
    let client = browser();
    let response = client
        .post(format!("{}/signup", app.base_url))
        .form(&as_form(&signup_fields("Dana@Example.com", "Bright Smile Dental")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/app");

    let (user_id, email): (i64, String) =
        sqlx::query_as("SELECT id, email FROM users").fetch_one(&app.pool).await.unwrap();
    assert_eq!(email, "dana@example.com");
    let row = sqlx::query(
        "SELECT id, user_id, business_name, business_phone, business_type, owner_name, owner_phone, timezone, \
         ringlypro_number FROM clients",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let text = |column: &str| row.get::<Option<String>, _>(column);
    assert_eq!(row.get::<Option<i64>, _>("user_id"), Some(user_id));
    assert_eq!(text("business_name").as_deref(), Some("Bright Smile Dental"));
    assert_eq!(text("business_phone").as_deref(), Some("+15551234567"));
    assert_eq!(text("business_type").as_deref(), Some("dental"));
    assert_eq!(text("owner_name").as_deref(), Some("Dana Rivera"));
    assert_eq!(text("owner_phone").as_deref(), Some("+15559876543"));
    assert_eq!(text("timezone").as_deref(), Some("America/Chicago"));
    assert_eq!(text("ringlypro_number"), None, "no pool configured: the number is pending");
    let client_id: i64 = row.get("id");
    let credit: (i64, i32) =
        sqlx::query_as("SELECT balance_cents, free_minutes_limit FROM credit_accounts WHERE client_id = $1")
            .bind(client_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(credit, (0, 100));

    let today = client.get(format!("{}/app", app.base_url)).send().await.unwrap();
    assert_eq!(today.status(), StatusCode::OK);
    let html = today.text().await.unwrap();
    assert!(html.contains("Bright Smile Dental"));
    assert!(html.contains("number pending"), "the dashboard must say the number is pending");
    app.stop().await;
}

#[tokio::test]
async fn a_signup_that_fails_midway_leaves_no_rows_behind() {
    let app = spawn_app().await;
    numbers::add(&app.pool, "+15550009001").await.unwrap();
    // The last step of signup (opening the credit account) fails.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_credit_account() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'credit accounts are refused in this test'; END $$; \
         CREATE TRIGGER refuse_credit_account BEFORE INSERT ON credit_accounts \
         FOR EACH ROW EXECUTE FUNCTION refuse_credit_account();",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let response = browser()
        .post(format!("{}/api/auth/signup", app.base_url))
        .json(&signup_fields("dana@example.com", "Bright Smile Dental"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = response.json().await.unwrap();
    assert!(!body["error"].as_str().unwrap().contains("refused in this test"), "internals must not leak");
    assert_eq!(count(&app, "SELECT count(*) FROM users").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM clients").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM sessions").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM ringlypro_numbers WHERE client_id IS NULL").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn each_invalid_signup_field_gets_a_message_saying_what_is_needed() {
    let app =
        spawn_app_with(Options { env: vec![("LOGIN_ATTEMPTS_PER_MINUTE", "100".into())], ..Options::default() }).await;
    let client = browser();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("email", json!(""), "enter your email"),
        ("email", json!("dana.example.com"), "name@example.com"),
        ("password", json!("short"), "at least 10 characters"),
        ("password", json!("aaaaaaaaaaaa"), "at least 10 characters"),
        ("business_name", json!("  "), "business's name"),
        ("business_phone", json!("12345"), "digits"),
        ("owner_name", json!(""), "your name"),
        ("owner_phone", json!("call me"), "phone number contains"),
        ("timezone", json!("Mars/Olympus"), "not a time zone"),
        ("timezone", json!(""), "choose your business's time zone"),
    ];
    for (field, value, expected) in cases {
        let mut fields = signup_fields("dana@example.com", "Bright Smile Dental");
        fields[field] = value.clone();
        let response = client.post(format!("{}/api/auth/signup", app.base_url)).json(&fields).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{field} = {value}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["field"], field, "{field} = {value}: {body}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains(expected), "{field} = {value}: {message:?} should contain {expected:?}");
    }
    // The HTML form shows every message next to its field and keeps what was typed.
    let mut fields = signup_fields("dana.example.com", "Bright Smile Dental");
    fields["password"] = json!("short");
    let response = client.post(format!("{}/signup", app.base_url)).form(&as_form(&fields)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.unwrap();
    assert!(html.contains("name@example.com") && html.contains("at least 10 characters"), "{html}");
    assert!(html.contains("value=\"Bright Smile Dental\""));
    assert!(!html.contains("value=\"short\""), "a password is never echoed back");
    assert_eq!(count(&app, "SELECT count(*) FROM users").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM clients").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn an_email_already_taken_is_refused_whatever_its_case() {
    let app = spawn_app().await;
    api_signup(&app, &browser(), "dana@example.com", "Bright Smile Dental").await;
    let response = browser()
        .post(format!("{}/api/auth/signup", app.base_url))
        .json(&signup_fields("  DANA@Example.COM", "Other Dental"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["field"], "email");
    assert!(body["error"].as_str().unwrap().contains("already exists"), "{body}");
    assert_eq!(count(&app, "SELECT count(*) FROM users").await, 1);
    assert_eq!(count(&app, "SELECT count(*) FROM clients").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn signup_takes_free_numbers_from_the_pool_and_waits_when_it_is_empty() {
    let app = spawn_app_with(Options {
        env: vec![("RINGLYPRO_NUMBER_POOL", "+15550009001, +15550009002".into())],
        ..Options::default()
    })
    .await;
    let first = api_signup(&app, &browser(), "a@example.com", "A").await;
    let second = api_signup(&app, &browser(), "b@example.com", "B").await;
    let third_client = browser();
    let third = api_signup(&app, &third_client, "c@example.com", "C").await;
    let mut given = vec![first["ringlypro_number"].clone(), second["ringlypro_number"].clone()];
    given.sort_by_key(|v| v.to_string());
    assert_eq!(given, vec![json!("+15550009001"), json!("+15550009002")]);
    assert_eq!(first["number_pending"], false);
    assert_eq!(third["ringlypro_number"], Value::Null);
    assert_eq!(third["number_pending"], true);
    let held: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT number, client_id FROM ringlypro_numbers ORDER BY number")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(held[0].1, first["client_id"].as_i64());
    assert_eq!(held[1].1, second["client_id"].as_i64());
    let pending: Option<String> = sqlx::query_scalar("SELECT ringlypro_number FROM clients WHERE id = $1")
        .bind(third["client_id"].as_i64())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(pending, None);
    let html = third_client.get(format!("{}/app", app.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("number pending"));

    // A number added later (as `ringlypro numbers add` does) is free for the next signup.
    assert!(numbers::add(&app.pool, "+15550009003").await.unwrap());
    assert!(!numbers::add(&app.pool, "+15550009003").await.unwrap(), "adding twice keeps one row");
    let fourth = api_signup(&app, &browser(), "d@example.com", "D").await;
    assert_eq!(fourth["ringlypro_number"], "+15550009003");
    app.stop().await;
}

#[tokio::test]
async fn signing_in_with_the_right_password_opens_a_session_and_a_wrong_one_does_not() {
    let app = spawn_app().await;
    api_signup(&app, &browser(), "dana@example.com", "Bright Smile Dental").await;
    let client = browser();
    let wrong = client
        .post(format!("{}/api/auth/login", app.base_url))
        .json(&json!({ "email": "dana@example.com", "password": "tulips in may" }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    let body: Value = wrong.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("do not match"));
    let unknown = client
        .post(format!("{}/api/auth/login", app.base_url))
        .json(&json!({ "email": "nobody@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(unknown, body, "an unknown email is answered exactly like a wrong password");
    assert_eq!(me(&app, &client).await.status(), StatusCode::UNAUTHORIZED);

    let right = client
        .post(format!("{}/login", app.base_url))
        .form(&[("email", "DANA@example.com"), ("password", PASSWORD), ("next", "/app?from=login")])
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    assert_eq!(right.headers()[LOCATION], "/app?from=login");
    let who: Value = me(&app, &client).await.json().await.unwrap();
    assert_eq!(who["email"], "dana@example.com");
    assert_eq!(who["business_name"], "Bright Smile Dental");
    app.stop().await;
}

#[tokio::test]
async fn the_session_cookie_is_http_only_lax_site_wide_and_stored_only_as_a_hash() {
    let app = spawn_app().await;
    api_signup(&app, &browser(), "dana@example.com", "Bright Smile Dental").await;
    let response = browser()
        .post(format!("{}/api/auth/login", app.base_url))
        .json(&json!({ "email": "dana@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let parts: Vec<&str> = cookie.split(';').map(str::trim).collect();
    assert!(parts[0].starts_with("ringlypro_session="));
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(parts.contains(&attribute), "{cookie} lacks {attribute}");
    }
    assert!(parts.iter().any(|p| p.starts_with("Max-Age=")), "{cookie} must expire");
    assert!(!parts.contains(&"Secure"), "plain http (tests) cannot carry Secure cookies");
    let token = parts[0].trim_start_matches("ringlypro_session=");
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM sessions ORDER BY id DESC LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, accounts::token_hash(token));
    let days: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM expires_at - created_at)::float8 / 86400 FROM sessions ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!((13.9..=14.1).contains(&days), "sessions last 14 days, got {days}");
    app.stop().await;
}

#[tokio::test]
async fn signing_out_ends_the_session_on_the_server() {
    let app = spawn_app().await;
    let client = browser();
    let signed_up = api_signup(&app, &client, "dana@example.com", "Bright Smile Dental").await;
    let csrf = signed_up["csrf_token"].as_str().unwrap().to_owned();
    // Keep a copy of the cookie, as a thief would.
    let token: String = {
        let login = browser()
            .post(format!("{}/api/auth/login", app.base_url))
            .json(&json!({ "email": "dana@example.com", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        let cookie = login.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        cookie.split(';').next().unwrap().to_owned()
    };
    let login_csrf: String = {
        let r = reqwest::Client::new()
            .get(format!("{}/api/auth/me", app.base_url))
            .header("Cookie", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_owned()
    };
    let out = reqwest::Client::new()
        .post(format!("{}/api/auth/logout", app.base_url))
        .header("Cookie", &token)
        .header("X-CSRF-Token", &login_csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    assert!(out.headers()[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    let replay = reqwest::Client::new()
        .get(format!("{}/api/auth/me", app.base_url))
        .header("Cookie", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED, "a signed-out session must not work again");

    // The HTML sign-out does the same for the other session.
    let out =
        client.post(format!("{}/logout", app.base_url)).form(&[("csrf_token", csrf.as_str())]).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(out.headers()[LOCATION], "/login");
    assert_eq!(me(&app, &client).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(count(&app, "SELECT count(*) FROM sessions").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn pages_send_anonymous_visitors_to_sign_in_and_apis_answer_401() {
    let app = spawn_app().await;
    let client = browser();
    let page = client.get(format!("{}/app?tab=1", app.base_url)).send().await.unwrap();
    assert!(page.status().is_redirection());
    assert_eq!(page.headers()[LOCATION], "/login?next=%2Fapp%3Ftab%3D1");
    let home = client.get(format!("{}/", app.base_url)).send().await.unwrap();
    assert_eq!(home.headers()[LOCATION], "/login");
    for form in ["/signup", "/login?next=%2Fapp", "/password/forgot"] {
        let page = client.get(format!("{}{form}", app.base_url)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{form}");
        assert!(page.text().await.unwrap().contains("<form"), "{form}");
    }
    let api = me(&app, &client).await;
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let body: Value = api.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("sign in"));
    let toggle =
        client.post(format!("{}/app/rachel", app.base_url)).form(&[("enabled", "false")]).send().await.unwrap();
    assert!(toggle.status().is_redirection(), "anonymous form posts go to sign in");
    // A forged or expired cookie is no better than none, and the browser is told to drop it.
    let forged = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/app", app.base_url))
        .header("Cookie", "ringlypro_session=forged")
        .send()
        .await
        .unwrap();
    assert!(forged.status().is_redirection());
    assert!(forged.headers()[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));

    api_signup(&app, &client, "dana@example.com", "Bright Smile Dental").await;
    let home = client.get(format!("{}/", app.base_url)).send().await.unwrap();
    assert_eq!(home.headers()[LOCATION], "/app");
    let signed_in = client.get(format!("{}/login", app.base_url)).send().await.unwrap();
    assert_eq!(signed_in.headers()[LOCATION], "/app", "a signed-in owner skips the sign-in form");
    app.stop().await;
}

#[tokio::test]
async fn a_state_change_without_the_sessions_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let client = browser();
    let owner = api_signup(&app, &client, "dana@example.com", "Bright Smile Dental").await;
    let client_id = owner["client_id"].as_i64().unwrap();
    let csrf = owner["csrf_token"].as_str().unwrap();

    let missing = set_rachel(&app, &client, None, "false").await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    assert!(missing.text().await.unwrap().contains("reload"));
    let wrong = set_rachel(&app, &client, Some("not-the-token"), "false").await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert!(rachel_enabled(&app, client_id).await, "a refused request changes nothing");

    let json_logout = client.post(format!("{}/api/auth/logout", app.base_url)).send().await.unwrap();
    assert_eq!(json_logout.status(), StatusCode::FORBIDDEN);
    let body: Value = json_logout.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("CSRF"));
    assert_eq!(me(&app, &client).await.status(), StatusCode::OK, "the session survives a refused sign-out");

    let other_site = client
        .post(format!("{}/app/rachel", app.base_url))
        .header("Origin", "https://evil.example")
        .form(&[("enabled", "false"), ("csrf_token", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(other_site.status(), StatusCode::FORBIDDEN);
    assert!(rachel_enabled(&app, client_id).await);

    let right = set_rachel(&app, &client, Some(csrf), "false").await;
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    assert!(!rachel_enabled(&app, client_id).await);
    app.stop().await;
}

#[tokio::test]
async fn sign_in_forms_posted_from_another_site_are_refused() {
    let app = spawn_app().await;
    api_signup(&app, &browser(), "dana@example.com", "Bright Smile Dental").await;
    let client = browser();
    for (header, value) in [("Origin", "https://evil.example"), ("Referer", "https://evil.example/login")] {
        let response = client
            .post(format!("{}/login", app.base_url))
            .header(header, value)
            .form(&[("email", "dana@example.com"), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{header}: {value}");
        assert!(response.headers().get(SET_COOKIE).is_none());
    }
    let ours = client
        .post(format!("{}/login", app.base_url))
        .header("Origin", app.base_url.as_str())
        .form(&[("email", "dana@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(ours.status(), StatusCode::SEE_OTHER);
    app.stop().await;
}

#[tokio::test]
async fn too_many_sign_in_attempts_from_one_address_get_429_saying_when_to_retry() {
    let app = spawn_app().await;
    let client = browser();
    for attempt in 1..=10 {
        let response = client
            .post(format!("{}/api/auth/login", app.base_url))
            .json(&json!({ "email": format!("person{attempt}@example.com"), "password": "wrong password" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let limited = client
        .post(format!("{}/login", app.base_url))
        .form(&[("email", "someone@example.com"), ("password", "wrong password")])
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = limited.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
    assert!(limited.text().await.unwrap().contains("try again in"));
    app.stop().await;
}

#[tokio::test]
async fn too_many_wrong_passwords_lock_the_account_even_against_the_right_one() {
    let app =
        spawn_app_with(Options { env: vec![("LOGIN_ATTEMPTS_PER_MINUTE", "100".into())], ..Options::default() }).await;
    api_signup(&app, &browser(), "dana@example.com", "Bright Smile Dental").await;
    let client = browser();
    let login = |password: &'static str| {
        client
            .post(format!("{}/api/auth/login", app.base_url))
            .json(&json!({ "email": "dana@example.com", "password": password }))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(login("wrong password").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let locked = login(PASSWORD).await.unwrap();
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.headers().contains_key(RETRY_AFTER));
    let body: Value = locked.json().await.unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("too many wrong passwords") && message.contains("minutes"), "{message}");
    // Once the failures are older than the window, the right password works again.
    sqlx::query("UPDATE login_failures SET failed_at = failed_at - interval '16 minutes'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(login(PASSWORD).await.unwrap().status(), StatusCode::OK);
    app.stop().await;
}

/// The reset link in the latest email to `to`.
async fn reset_link(app: &TestApp, to: &str) -> String {
    let body: String = sqlx::query_scalar(
        "SELECT body FROM email_outbox WHERE to_address = $1 AND kind = 'password_reset' ORDER BY id DESC LIMIT 1",
    )
    .bind(to)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    body.split_whitespace().find(|w| w.contains("/password/reset?token=")).expect("the email carries a link").to_owned()
}

#[tokio::test]
async fn forgot_password_answers_the_same_whether_or_not_the_email_has_an_account() {
    let app = spawn_app().await;
    api_signup(&app, &browser(), "dana@example.com", "Bright Smile Dental").await;
    let ask = |email: &'static str| {
        browser().post(format!("{}/password/forgot", app.base_url)).form(&[("email", email)]).send()
    };
    let known = ask("dana@example.com").await.unwrap();
    let unknown = ask("nobody@example.com").await.unwrap();
    assert_eq!(known.status(), unknown.status());
    let known = known.text().await.unwrap().replace("dana@example.com", "EMAIL");
    let unknown = unknown.text().await.unwrap().replace("nobody@example.com", "EMAIL");
    assert_eq!(known, unknown);
    assert_eq!(count(&app, "SELECT count(*) FROM email_outbox WHERE kind = 'password_reset'").await, 1);
    let link = reset_link(&app, "dana@example.com").await;
    assert!(link.starts_with(&format!("{}/password/reset?token=", app.base_url)), "{link}");
    let stored: i64 = count(&app, "SELECT count(*) FROM password_reset_tokens WHERE used_at IS NULL").await;
    assert_eq!(stored, 1);
    let token = link.split("token=").nth(1).unwrap();
    let plain: i64 = sqlx::query_scalar("SELECT count(*) FROM password_reset_tokens WHERE token_hash = $1")
        .bind(token.as_bytes())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(plain, 0, "only the token's hash is stored");
    app.stop().await;
}

#[tokio::test]
async fn a_reset_link_sets_a_new_password_once_and_ends_every_session() {
    let app = spawn_app().await;
    let old_session = browser();
    api_signup(&app, &old_session, "dana@example.com", "Bright Smile Dental").await;
    let api = browser();
    let forgot = api
        .post(format!("{}/api/auth/password/forgot", app.base_url))
        .json(&json!({ "email": "dana@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    let link = reset_link(&app, "dana@example.com").await;
    let token = link.split("token=").nth(1).unwrap().to_owned();

    let form = api.get(&link).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    assert!(form.text().await.unwrap().contains("Choose a new password"));
    let weak = api
        .post(format!("{}/password/reset", app.base_url))
        .form(&[("token", token.as_str()), ("password", "short")])
        .send()
        .await
        .unwrap();
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(weak.text().await.unwrap().contains("at least 10 characters"));
    let done = api
        .post(format!("{}/password/reset", app.base_url))
        .form(&[("token", token.as_str()), ("password", "marigolds in june")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(done.headers()[LOCATION], "/login?reset=1");
    assert_eq!(me(&app, &old_session).await.status(), StatusCode::UNAUTHORIZED, "other sessions end");

    let login = |password: &'static str| {
        browser()
            .post(format!("{}/api/auth/login", app.base_url))
            .json(&json!({ "email": "dana@example.com", "password": password }))
            .send()
    };
    assert_eq!(login(PASSWORD).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(login("marigolds in june").await.unwrap().status(), StatusCode::OK);

    let again = api
        .post(format!("{}/api/auth/password/reset", app.base_url))
        .json(&json!({ "token": token, "password": "sunflowers in july" }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["field"], "token");
    assert!(body["error"].as_str().unwrap().contains("already used"), "{body}");
    assert_eq!(login("sunflowers in july").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn an_expired_reset_link_is_refused_with_a_clear_message() {
    let app = spawn_app().await;
    api_signup(&app, &browser(), "dana@example.com", "Bright Smile Dental").await;
    browser()
        .post(format!("{}/password/forgot", app.base_url))
        .form(&[("email", "dana@example.com")])
        .send()
        .await
        .unwrap();
    let link = reset_link(&app, "dana@example.com").await;
    let token = link.split("token=").nth(1).unwrap().to_owned();
    sqlx::query("UPDATE password_reset_tokens SET expires_at = now() - interval '1 minute'")
        .execute(&app.pool)
        .await
        .unwrap();
    let page = browser().get(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::GONE);
    let html = page.text().await.unwrap();
    assert!(html.contains("expired") && html.contains("/password/forgot"), "{html}");
    let api = browser()
        .post(format!("{}/api/auth/password/reset", app.base_url))
        .json(&json!({ "token": token, "password": "marigolds in june" }))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::BAD_REQUEST);
    let body: Value = api.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("expired"));
    let unknown = browser().get(format!("{}/password/reset?token=made-up", app.base_url)).send().await.unwrap();
    assert!(unknown.text().await.unwrap().contains("not valid"));
    let login = browser()
        .post(format!("{}/api/auth/login", app.base_url))
        .json(&json!({ "email": "dana@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK, "the old password still works");
    app.stop().await;
}

#[tokio::test]
async fn today_shows_the_days_calls_bookings_messages_free_minutes_and_balance() {
    let app = spawn_app().await;
    let client = browser();
    let owner = api_signup(&app, &client, "dana@example.com", "Bright Smile Dental").await;
    let id = owner["client_id"].as_i64().unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO calls (client_id, call_sid, from_number, outcome, started_at, duration_seconds) \
             VALUES ({id}, 'CA-today', '+15557654321', 'booked', now(), 95), \
                    ({id}, 'CA-old', '+15550000042', 'info', now() - interval '3 days', 30); \
         INSERT INTO appointments (client_id, customer_name, customer_phone, starts_at, ends_at, confirmation_code) \
             VALUES ({id}, 'John Smith', '+15557654321', now(), now() + interval '30 minutes', 'ABC123'); \
         INSERT INTO messages (client_id, direction, kind, to_number, from_number, body, status) \
             VALUES ({id}, 'inbound', 'voice_message', '', '+15551112222', 'Please call me back about my crown', 'received'); \
         UPDATE credit_accounts SET free_minutes_used = 12, balance_cents = 1234 WHERE client_id = {id};"
    )))
    .execute(&app.pool)
    .await
    .unwrap();
    let html = client.get(format!("{}/app", app.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"id="calls-count">1<"#), "only today's call counts");
    assert!(html.contains("+15557654321") && !html.contains("+15550000042"));
    assert!(html.contains(r#"id="bookings-count">1<"#) && html.contains("John Smith"));
    assert!(html.contains(r#"id="messages-count">1<"#) && html.contains("call me back about my crown"));
    assert!(html.contains(r#"id="free-minutes">88<"#));
    assert!(html.contains(r#"id="balance">$12.34<"#));
    assert!(html.contains("Rachel is answering"));
    app.stop().await;
}

#[tokio::test]
async fn the_rachel_switch_sets_the_tenants_column_for_the_next_call() {
    let app = spawn_app().await;
    let client = browser();
    let owner = api_signup(&app, &client, "dana@example.com", "Bright Smile Dental").await;
    let id = owner["client_id"].as_i64().unwrap();
    let csrf = owner["csrf_token"].as_str().unwrap();
    set_rachel(&app, &client, Some(csrf), "false").await;
    assert!(!rachel_enabled(&app, id).await);
    let html = client.get(format!("{}/app", app.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Rachel is off") && html.contains("Turn Rachel on"));
    // Sending "off" twice (a double tap) leaves it off.
    set_rachel(&app, &client, Some(csrf), "false").await;
    assert!(!rachel_enabled(&app, id).await);
    set_rachel(&app, &client, Some(csrf), "true").await;
    assert!(rachel_enabled(&app, id).await);
    let bad = set_rachel(&app, &client, Some(csrf), "maybe").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(rachel_enabled(&app, id).await);
    app.stop().await;
}

#[tokio::test]
async fn an_owner_sees_and_switches_only_their_own_business() {
    let app = spawn_app().await;
    let a_client = browser();
    let b_client = browser();
    let a = api_signup(&app, &a_client, "a@example.com", "Alpha Dental").await;
    let b = api_signup(&app, &b_client, "b@example.com", "Beta Salon").await;
    let (a_id, b_id) = (a["client_id"].as_i64().unwrap(), b["client_id"].as_i64().unwrap());
    sqlx::query("INSERT INTO calls (client_id, call_sid, from_number) VALUES ($1, 'CA-b', '+15557770000')")
        .bind(b_id)
        .execute(&app.pool)
        .await
        .unwrap();

    let a_page = a_client.get(format!("{}/app", app.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(a_page.contains("Alpha Dental") && !a_page.contains("Beta Salon"));
    assert!(!a_page.contains("+15557770000"), "another tenant's call must not show");
    let b_page = b_client.get(format!("{}/app", app.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(b_page.contains("+15557770000"));

    // A's session with B's CSRF token is refused; A's own switches only A.
    let crossed = set_rachel(&app, &a_client, b["csrf_token"].as_str(), "false").await;
    assert_eq!(crossed.status(), StatusCode::FORBIDDEN);
    set_rachel(&app, &a_client, a["csrf_token"].as_str(), "false").await;
    assert!(!rachel_enabled(&app, a_id).await);
    assert!(rachel_enabled(&app, b_id).await, "B's agent must stay on");
    let who: Value = me(&app, &a_client).await.json().await.unwrap();
    assert_eq!(who["client_id"], a_id);
    assert_eq!(who["business_name"], "Alpha Dental");
    app.stop().await;
}

#[tokio::test]
async fn the_app_shell_is_an_installable_mobile_first_pwa() {
    let app = spawn_app().await;
    let client = browser();
    api_signup(&app, &client, "dana@example.com", "Bright Smile Dental").await;
    let html = client.get(format!("{}/app", app.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"name="viewport""#) && html.contains(r#"rel="manifest""#));
    for link in ["/app", "/live", "/calls", "/contacts", "/appointments", "/messages", "/settings"] {
        assert!(html.contains(&format!(r#"href="{link}""#)), "the nav lacks {link}");
    }
    assert!(!html.contains(r#"href="/admin""#), "only admins see Admin");
    assert!(!html.contains("https://"), "no external assets");
    let manifest: Value =
        client.get(format!("{}/manifest.webmanifest", app.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(manifest["start_url"], "/app");
    assert_eq!(manifest["display"], "standalone");
    let sw = client.get(format!("{}/sw.js", app.base_url)).send().await.unwrap();
    assert!(sw.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert!(sw.text().await.unwrap().contains(r#"startsWith("/api/")"#), "the worker leaves /api alone");
    for asset in ["/static/app.css", "/static/app.js", "/static/icon.svg", "/offline"] {
        let r = client.get(format!("{}{asset}", app.base_url)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{asset}");
    }
    sqlx::query("UPDATE users SET is_admin = true").execute(&app.pool).await.unwrap();
    let html = client.get(format!("{}/app", app.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"href="/admin""#));
    app.stop().await;
}

#[tokio::test]
async fn attaching_the_demo_owner_twice_keeps_one_account_that_can_sign_in() {
    let app = spawn_app().await;
    let tenant = app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    let passwords = Passwords::new(app.state.config.accounts.password_cost);
    let first = accounts::attach_owner(&app.pool, &passwords, tenant, "owner@brightsmile.example", "bright-smile-demo")
        .await
        .unwrap();
    let second =
        accounts::attach_owner(&app.pool, &passwords, tenant, "owner@brightsmile.example", "bright-smile-demo")
            .await
            .unwrap();
    assert_eq!(first, second);
    assert_eq!(count(&app, "SELECT count(*) FROM users").await, 1);
    let other = app.add_tenant("Other", "+15550002222", "America/New_York").await;
    let taken = accounts::attach_owner(&app.pool, &passwords, other, "owner@brightsmile.example", "bright-smile-demo")
        .await
        .unwrap_err();
    assert!(taken.to_string().contains("another business"));
    let client = browser();
    let login = client
        .post(format!("{}/api/auth/login", app.base_url))
        .json(&json!({ "email": "owner@brightsmile.example", "password": "bright-smile-demo" }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let who: Value = me(&app, &client).await.json().await.unwrap();
    assert_eq!(who["client_id"], tenant.get());
    assert_eq!(who["ringlypro_number"], "+15550001111");
    app.stop().await;
}

#[tokio::test]
async fn admin_routes_refuse_owners_who_are_not_administrators() {
    use axum::routing::get;
    use ringlypro::web::auth::Admin;

    let app = spawn_app().await;
    let signed_up = api_signup(&app, &browser(), "dana@example.com", "Bright Smile Dental").await;
    let login = browser()
        .post(format!("{}/api/auth/login", app.base_url))
        .json(&json!({ "email": "dana@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    // A page built on the extractor, as the admin screens will be.
    let router = axum::Router::new()
        .route("/admin/tenants", get(|Admin(owner): Admin| async move { format!("hello admin {}", owner.user_id) }))
        .route("/api/admin/tenants", get(|_: Admin| async { "[]" }))
        .with_state(app.state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let get = |path: &str, cookie: Option<&str>| {
        let mut request = client.get(format!("{base}{path}"));
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        request.send()
    };

    let anonymous = get("/admin/tenants", None).await.unwrap();
    assert_eq!(anonymous.headers()[LOCATION], "/login?next=%2Fadmin%2Ftenants");
    assert_eq!(get("/api/admin/tenants", None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let owner = get("/admin/tenants", Some(&cookie)).await.unwrap();
    assert_eq!(owner.status(), StatusCode::FORBIDDEN);
    assert!(owner.text().await.unwrap().contains("administrators"));
    let api = get("/api/admin/tenants", Some(&cookie)).await.unwrap();
    assert_eq!(api.status(), StatusCode::FORBIDDEN);
    assert!(api.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("administrators"));

    sqlx::query("UPDATE users SET is_admin = true").execute(&app.pool).await.unwrap();
    let admin = get("/admin/tenants", Some(&cookie)).await.unwrap();
    assert_eq!(admin.status(), StatusCode::OK);
    assert_eq!(admin.text().await.unwrap(), format!("hello admin {}", signed_up["user_id"]));
    app.stop().await;
}
