//! Spawning the application for a test, with its own database.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::America::New_York;
use ringlypro::call::CallSettings;
use ringlypro::call::engines::Engines;
use ringlypro::config::Config;
use ringlypro::domain::ids::TenantId;
use ringlypro::domain::language::Language;
use ringlypro::providers::stt::SpeechToText;
use ringlypro::providers::stt::sphinx::{SphinxConfig, SphinxStt};
use ringlypro::providers::tts::espeak::EspeakTts;
use ringlypro::providers::tts::sentences::SentenceTts;
use ringlypro::startup::Application;
use ringlypro::storage::postgres::{self, tenants};
use ringlypro::web::WebState;
use sqlx::PgPool;

pub fn base_database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The URL of a fresh, empty, migrated database.
pub async fn fresh_database() -> (String, PgPool) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let base = base_database_url();
    let name = format!("ringlypro_test_{}", uuid::Uuid::new_v4().simple());
    let url = match base.rfind('/') {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => panic!("TEST_DATABASE_URL must name a database"),
    };
    let pool = postgres::connect(&url).await.expect("the test suite needs PostgreSQL running");
    postgres::migrate(&pool).await.expect("migrations apply to a fresh database");
    (url, pool)
}

/// One speech recogniser shared by the tests of this binary (its decoders are costly).
fn shared_stt() -> Arc<dyn SpeechToText> {
    static STT: OnceLock<Arc<dyn SpeechToText>> = OnceLock::new();
    STT.get_or_init(|| {
        Arc::new(SphinxStt::new(SphinxConfig::default()).expect("PocketSphinx and its model are installed"))
    })
    .clone()
}

/// The offline engines (shared recogniser, espeak-ng).
pub fn local_engines() -> Engines {
    Engines::local(shared_stt(), Arc::new(SentenceTts::new(EspeakTts::default())))
}

pub struct TestApp {
    pub base_url: String,
    pub pool: PgPool,
    pub state: WebState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

#[derive(Default)]
pub struct Options {
    pub auth_token: Option<String>,
    pub redis: bool,
    pub settings: Option<CallSettings>,
    pub engines: Option<Engines>,
    /// More environment variables for the app's configuration.
    pub env: Vec<(&'static str, String)>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    ringlypro::telemetry::init();
    let (url, pool) = fresh_database().await;
    let mut vars: HashMap<&str, String> = HashMap::new();
    vars.insert("DATABASE_URL", url);
    vars.insert("BIND", "127.0.0.1:0".into());
    vars.insert("SHUTDOWN_GRACE_SECS", "5".into());
    // Cheap password hashing: argon2's default cost takes over a second in debug builds.
    vars.insert("PASSWORD_HASH_MEMORY_KIB", "64".into());
    vars.insert("PASSWORD_HASH_ITERATIONS", "1".into());
    for (k, v) in &options.env {
        vars.insert(k, v.clone());
    }
    if let Some(token) = &options.auth_token {
        vars.insert("TWILIO_AUTH_TOKEN", token.clone());
        vars.insert("TWILIO_ACCOUNT_SID", "AC_test".into());
        // Texts and numbers go nowhere unless a test points this at its fake Twilio.
        vars.entry("TWILIO_API_BASE").or_insert_with(|| "http://127.0.0.1:9".into());
    }
    if options.redis {
        vars.insert("REDIS_URL", redis_url());
        // A prefix given in `env` (a second instance sharing the first one's keys) stays.
        vars.entry("RINGLYPRO_KEY_PREFIX").or_insert_with(|| format!("test:{}:", uuid::Uuid::new_v4().simple()));
    }
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config");
    let engines = options.engines.unwrap_or_else(local_engines);
    let app = Application::build(config, engines, options.settings.unwrap_or_default()).await.expect("app builds");
    let state = app.state().clone();
    let base_url = state.config.public_url.clone();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stop_rx.await;
    }));
    TestApp { base_url, pool, state, stop: Some(stop), server: Some(server) }
}

impl TestApp {
    /// Stops the server, draining live calls.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server stopped cleanly");
        }
    }

    pub async fn add_tenant(&self, name: &str, number: &str, timezone: &str) -> TenantId {
        add_tenant(&self.pool, name, number, timezone).await
    }
}

pub async fn add_tenant(pool: &PgPool, name: &str, number: &str, timezone: &str) -> TenantId {
    let mut tx = pool.begin().await.unwrap();
    let id = tenants::insert(
        &mut tx,
        &tenants::NewTenant {
            business_name: name.into(),
            ringlypro_number: number.into(),
            owner_name: "Owner".into(),
            owner_phone: "+15551230000".into(),
            timezone: timezone.parse().unwrap(),
            business_days: "mon-sun".into(),
            open: NaiveTime::from_hms_opt(0, 0, 0).unwrap(),
            close: NaiveTime::from_hms_opt(23, 59, 0).unwrap(),
            appointment_minutes: 30,
            buffer_minutes: 0,
            custom_greeting: None,
            services: "cleanings are $99".into(),
            business_description: String::new(),
            language: Language::English,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

/// Form parameters of a voice webhook as Twilio sends them.
pub fn voice_params(call_sid: &str, from: &str, to: &str) -> Vec<(String, String)> {
    [
        ("AccountSid", "AC_test"),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call_sid),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("From", from),
        ("To", to),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A browser-like client: keeps cookies, does not follow redirects (tests look at them).
/// A client that keeps cookies and does not follow redirects (what a page test needs).
pub fn browser() -> reqwest::Client {
    cookie_client()
}

pub fn cookie_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client builds")
}

/// Signs up a business through `/api/auth/signup` on `client` (which then holds the session
/// cookie); returns the business's id and the session's CSRF token.
async fn signup_on(
    base_url: &str,
    client: &reqwest::Client,
    email: &str,
    business: &str,
    timezone: &str,
) -> (TenantId, String) {
    let response = client
        .post(format!("{base_url}/api/auth/signup"))
        .json(&serde_json::json!({
            "email": email,
            "password": "tulips in april",
            "business_name": business,
            "business_phone": "(555) 123-4567",
            "business_type": "dental",
            "owner_name": "Dana Rivera",
            "owner_phone": "+1 555 987 6543",
            "timezone": timezone,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED, "signup of {email} failed");
    let body: serde_json::Value = response.json().await.unwrap();
    (
        TenantId(body["client_id"].as_i64().expect("client_id")),
        body["csrf_token"].as_str().expect("csrf_token").to_owned(),
    )
}

/// An owner signed up through `/api/auth/signup` (time zone America/Chicago), holding a
/// session cookie; its requests send the CSRF token unless told otherwise.
pub struct SignedInOwner {
    pub client: reqwest::Client,
    pub client_id: TenantId,
    pub csrf: String,
    base_url: String,
}

impl TestApp {
    /// Signs up a new business owned by `email` and keeps the session.
    pub async fn signed_in_owner(&self, email: &str, business: &str) -> SignedInOwner {
        let client = cookie_client();
        let (client_id, csrf) = signup_on(&self.base_url, &client, email, business, "America/Chicago").await;
        SignedInOwner { client, client_id, csrf, base_url: self.base_url.clone() }
    }
}

impl SignedInOwner {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// A JSON request with the CSRF header.
    pub async fn send_json(&self, method: reqwest::Method, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client.request(method, self.url(path)).header("X-CSRF-Token", &self.csrf).json(body).send().await.unwrap()
    }

    /// A JSON request without the CSRF header.
    pub async fn send_json_without_csrf(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.client.request(method, self.url(path)).json(body).send().await.unwrap()
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client.delete(self.url(path)).header("X-CSRF-Token", &self.csrf).send().await.unwrap()
    }

    /// Connects a vendor as a browser would: our `connect_path`, the vendor's consent (or
    /// location chooser) redirecting back, then our callback; its answer.
    pub async fn through_consent(&self, connect_path: &str) -> reqwest::Response {
        let to_vendor = self.get(connect_path).await;
        assert_eq!(to_vendor.status(), reqwest::StatusCode::SEE_OTHER, "{:?}", to_vendor.text().await);
        let consent = to_vendor.headers()["location"].to_str().unwrap().to_owned();
        let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let back = plain.get(&consent).send().await.unwrap();
        assert_eq!(back.status(), reqwest::StatusCode::SEE_OTHER, "{:?}", back.text().await);
        let callback = back.headers()["location"].to_str().unwrap().to_owned();
        self.client.get(callback).send().await.unwrap()
    }

    /// A form post with the CSRF field.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf_token", &self.csrf));
        self.client.post(self.url(path)).form(&form).send().await.unwrap()
    }
}

/// An owner signed up through `/api/auth/signup` on `client` (which then holds the
/// session cookie).
pub struct SignedUp {
    pub client_id: TenantId,
    pub csrf: String,
}

pub async fn sign_up(app: &TestApp, client: &reqwest::Client, email: &str, business: &str) -> SignedUp {
    let (client_id, csrf) = signup_on(&app.base_url, client, email, business, "America/Chicago").await;
    SignedUp { client_id, csrf }
}

/// A signed-in owner: their business's id and the session's CSRF token.
pub struct SignedIn {
    pub client: reqwest::Client,
    pub client_id: TenantId,
    pub csrf_token: String,
}

/// Signs up an owner of `business` through the JSON API, signed in on a fresh cookie client;
/// the business gets the RinglyPro number `number` so calls to it reach the agent.
pub async fn signed_in_owner(app: &TestApp, email: &str, business: &str, number: &str) -> SignedIn {
    let client = cookie_client();
    let (client_id, csrf) = signup_on(&app.base_url, &client, email, business, "America/New_York").await;
    sqlx::query("UPDATE clients SET ringlypro_number = $2 WHERE id = $1")
        .bind(client_id)
        .bind(number)
        .execute(&app.pool)
        .await
        .unwrap();
    SignedIn { client, client_id, csrf_token: csrf }
}

/// An instant from a New York wall-clock time (the test businesses' zone).
pub fn ny(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    let local = NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(h, min, 0).unwrap();
    New_York.from_local_datetime(&local).earliest().unwrap().with_timezone(&Utc)
}
