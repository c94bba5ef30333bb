//! Typed configuration, read once from the environment in `main` and passed down: clap
//! parses the variables, keys and tokens are secrets, URLs are parsed. Secrets never
//! appear in `Debug` output; nothing here reads the environment after start.

use std::fmt;
use std::net::SocketAddr;

use clap::{CommandFactory, FromArgMatches, Parser};
use secrecy::SecretString;
use url::Url;

use crate::domain::phone::PhoneNumber;

/// Everything the server needs to know about its surroundings.
#[derive(Clone)]
pub struct Config {
    /// `DATABASE_URL`; the database is created if it does not exist.
    pub database_url: String,
    /// `REDIS_URL`; unset means the in-process call-state store.
    pub redis_url: Option<Url>,
    /// `BIND`: where the HTTP server listens.
    pub bind: SocketAddr,
    /// `PUBLIC_URL`: the base URL Twilio reaches us at, used in TwiML and signature checks.
    pub public_url: String,
    /// `TWILIO_ACCOUNT_SID`.
    pub twilio_account_sid: Option<String>,
    /// `TWILIO_AUTH_TOKEN`; unset means local mode (no signature checks).
    pub twilio_auth_token: Option<SecretString>,
    /// `TWILIO_API_BASE`: scheme and host of Twilio's REST API (tests point it at a fake).
    pub twilio_api_base: Url,
    /// `TEXTING_POLL_MS`: how often the outbox worker looks for texts to send.
    pub texting_poll: std::time::Duration,
    /// `WEBHOOK_POLL_MS`: how often the webhook worker looks for deliveries to send.
    pub webhook_poll: std::time::Duration,
    /// `WEBHOOK_ALLOW_HTTP`: accept `http://` webhook endpoints (for a local receiver);
    /// otherwise only `https://`.
    pub webhook_allow_http: bool,
    /// `RINGLYPRO_KEY_PREFIX`: prefix of every Redis key (lets tests share one Redis).
    pub key_prefix: String,
    /// `RINGLYPRO_STT_DECODERS`: local speech decoders kept warm for new calls.
    pub stt_warm_decoders: usize,
    /// `SHUTDOWN_GRACE_SECS`: how long shutdown waits for live calls to finish.
    pub shutdown_grace: std::time::Duration,
    /// `DATABASE_POOL_SIZE`: connections to PostgreSQL (default 20); every call ending and
    /// every dashboard request holds one briefly.
    pub database_pool_size: u32,
    /// Cloud providers; each role without a key runs its local engine.
    pub providers: ProviderKeys,
    /// `VOICE_PATH=relay`: every call uses ConversationRelay (otherwise per tenant).
    pub relay_for_all: bool,
    /// Owners' accounts: password hashing cost, the number pool, login limits.
    pub accounts: AccountSettings,
    /// Stripe and metering.
    pub billing: BillingSettings,
    /// Outgoing e-mail and the owner's call summaries.
    pub mail: MailSettings,
    /// `REMINDER_SWEEP_SECS`: how often due appointment reminders are queued (default 60).
    pub reminder_sweep_every: std::time::Duration,
    /// `INTEGRATIONS_KEY`: 32 bytes in base64, sealing vendor tokens (Google Calendar,
    /// GoHighLevel) at rest; without it connecting either is refused.
    pub integrations_key: Option<SecretString>,
    /// Google Calendar: OAuth client and endpoints.
    pub google: GoogleSettings,
    /// GoHighLevel: OAuth app and endpoints.
    pub gohighlevel: GoHighLevelSettings,
}

/// GoHighLevel (LeadConnector API v2). Without a client id and secret the Integrations
/// page says so.
#[derive(Clone)]
pub struct GoHighLevelSettings {
    /// `GHL_CLIENT_ID`, `GHL_CLIENT_SECRET`: the marketplace app's OAuth client.
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    /// `GHL_API_BASE` (API and token host), `GHL_AUTH_URL` (the location chooser); tests
    /// point them at a fake.
    pub api_base: Url,
    pub auth_url: Url,
    /// `GHL_SYNC_POLL_MS`: how often the GoHighLevel worker looks for work (default 1000).
    pub poll: std::time::Duration,
}

impl fmt::Debug for GoHighLevelSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoHighLevelSettings")
            .field("client_id", &self.client_id)
            .field("client_secret", &redact(&self.client_secret))
            .field("api_base", &self.api_base.as_str())
            .field("auth_url", &self.auth_url.as_str())
            .field("poll", &self.poll)
            .finish()
    }
}

/// Google Calendar, both ways. Without a client id and secret the Integrations page says
/// so; without `INTEGRATIONS_KEY` connecting is refused (tokens are never stored in clear).
#[derive(Clone)]
pub struct GoogleSettings {
    /// `GOOGLE_CLIENT_ID`, `GOOGLE_CLIENT_SECRET`: the OAuth client (type "Web application").
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    /// `GOOGLE_OAUTH_BASE` (token endpoint host), `GOOGLE_AUTH_URL` (consent page),
    /// `GOOGLE_API_BASE` (Calendar API host); tests point them at a fake.
    pub oauth_base: Url,
    pub auth_url: Url,
    pub api_base: Url,
    /// `GOOGLE_FREEBUSY_BUDGET_MS`: the longest availability waits on freeBusy (default 300).
    pub freebusy_budget: std::time::Duration,
    /// `GOOGLE_STALE_SECS`: a busy copy older than this is checked with freeBusy (default 900).
    pub stale_after: std::time::Duration,
    /// `GOOGLE_SYNC_POLL_MS`: how often the calendar worker looks for work (default 1000).
    pub poll: std::time::Duration,
    /// `GOOGLE_WATCH_TTL_SECS`: how long a push channel is asked to live (default 7 days);
    /// it is renewed a day (or a tenth of its life) before it ends.
    pub watch_ttl: std::time::Duration,
}

impl GoogleSettings {
    /// The OAuth client is configured.
    pub fn enabled(&self) -> bool {
        self.client_id.is_some() && self.client_secret.is_some()
    }
}

impl fmt::Debug for GoogleSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleSettings")
            .field("client_id", &self.client_id)
            .field("client_secret", &redact(&self.client_secret))
            .field("oauth_base", &self.oauth_base.as_str())
            .field("auth_url", &self.auth_url.as_str())
            .field("api_base", &self.api_base.as_str())
            .field("freebusy_budget", &self.freebusy_budget)
            .field("stale_after", &self.stale_after)
            .field("poll", &self.poll)
            .field("watch_ttl", &self.watch_ttl)
            .finish()
    }
}

/// Sending e-mail through SMTP (without a server configured, mails wait in the outbox) and
/// how often the mail and summary workers look for work.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `SMTP_URL`: `smtp://user:pass@host:587` (STARTTLS), `smtps://user:pass@host:465`
    /// (TLS), or `smtp://127.0.0.1:2525?tls=none` for a plain local relay. A secret: it
    /// carries the password.
    pub smtp_url: Option<SecretString>,
    /// `MAIL_FROM`: the sender, e.g. `RinglyPro <noreply@example.com>`.
    pub from: String,
    /// `MAIL_SWEEP_SECS`: how often queued mails, ended calls and digests are looked at
    /// (default 10).
    pub sweep_every: std::time::Duration,
}

/// Paying for minutes: Stripe's keys (without them, reloads wait for an administrator's
/// confirmation) and how metering catches calls Twilio never reported.
#[derive(Debug, Clone)]
pub struct BillingSettings {
    /// `STRIPE_SECRET_KEY` (redacted in `Debug`).
    pub stripe_secret_key: Option<SecretString>,
    /// `STRIPE_WEBHOOK_SECRET`: one `whsec_…`, or several separated by commas while a
    /// secret is being rolled.
    pub stripe_webhook_secrets: Vec<SecretString>,
    /// `STRIPE_API_BASE`: scheme and host of Stripe's API (tests point it at a fake).
    pub stripe_api_base: Url,
    /// `METERING_GRACE_SECS`: how long after a call ends without Twilio's final callback
    /// it is charged from our own record (default 600).
    pub metering_grace: std::time::Duration,
    /// `BILLING_SWEEP_SECS`: how often the metering and monthly-reset sweep runs (default 60).
    pub sweep_every: std::time::Duration,
}

impl BillingSettings {
    /// Stripe is configured: reloads go through Checkout.
    pub fn stripe_enabled(&self) -> bool {
        self.stripe_secret_key.is_some()
    }
}

/// How owners' accounts are protected and provisioned.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// `PASSWORD_HASH_MEMORY_KIB`, `PASSWORD_HASH_ITERATIONS`, `PASSWORD_HASH_PARALLELISM`:
    /// argon2id cost. The defaults are the OWASP minimums; tests lower them.
    pub password_cost: PasswordCost,
    /// `RINGLYPRO_NUMBER_POOL`: comma-separated E.164 numbers added to the pool at start.
    pub number_pool: Vec<String>,
    /// `LOGIN_ATTEMPTS_PER_MINUTE`: sign-in (and signup, reset request) attempts one
    /// client address may make per minute.
    pub attempts_per_ip_per_minute: u32,
    /// `LOGIN_FAILURES_PER_ACCOUNT`: wrong passwords one account tolerates per 15 minutes.
    pub failures_per_account: u32,
    /// `API_REQUESTS_PER_KEY_PER_MINUTE`: requests one API key may make per minute (per
    /// server instance).
    pub api_requests_per_key_per_minute: u32,
    /// `CLIENT_IP_HEADER`: the header a trusted proxy puts the caller's address in (on
    /// Fly, `Fly-Client-IP`); unset means the TCP peer address.
    pub client_ip_header: Option<String>,
}

/// argon2id parameters for new password hashes (existing hashes carry their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        Self { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 }
    }
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            password_cost: PasswordCost::default(),
            number_pool: Vec::new(),
            attempts_per_ip_per_minute: 10,
            failures_per_account: 5,
            api_requests_per_key_per_minute: 300,
            client_ip_header: None,
        }
    }
}

/// Keys and endpoints of the cloud providers (keys redacted in `Debug`).
#[derive(Debug, Clone)]
pub struct ProviderKeys {
    /// `DEEPGRAM_API_KEY`, `DEEPGRAM_URL`.
    pub deepgram_key: Option<SecretString>,
    pub deepgram_url: Url,
    /// `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `OPENAI_MODEL`.
    pub openai_key: Option<SecretString>,
    pub openai_base_url: Url,
    pub openai_model: String,
    /// `ELEVENLABS_API_KEY`, `ELEVENLABS_URL`, `ELEVENLABS_MODEL`.
    pub elevenlabs_key: Option<SecretString>,
    pub elevenlabs_url: Url,
    pub elevenlabs_model: String,
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/ringlypro";

/// The environment as clap reads it: each variable's name, default and parser in one
/// place. Values come through [`Config::from_lookup`], trimmed, with empty meaning unset.
#[derive(Parser, Debug)]
#[command(no_binary_name = true, disable_help_flag = true, disable_version_flag = true)]
struct Environment {
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    database_url: String,
    #[arg(long, env = "REDIS_URL", value_parser = url("REDIS_URL"))]
    redis_url: Option<Url>,
    #[arg(long, env = "BIND", default_value = "127.0.0.1:3000", value_parser = bind_address)]
    bind: SocketAddr,
    #[arg(long, env = "PUBLIC_URL", default_value = "http://localhost:3000", value_parser = public_url)]
    public_url: String,
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    twilio_account_sid: Option<String>,
    #[arg(long, env = "TWILIO_AUTH_TOKEN", value_parser = secret)]
    twilio_auth_token: Option<SecretString>,
    #[arg(long, env = "TWILIO_API_BASE", default_value = "https://api.twilio.com", value_parser = api_base("TWILIO_API_BASE"))]
    twilio_api_base: Url,
    #[arg(long, env = "TEXTING_POLL_MS", default_value = "2000", value_parser = number::<u64>("TEXTING_POLL_MS", "a number of milliseconds"))]
    texting_poll_ms: u64,
    #[arg(long, env = "WEBHOOK_POLL_MS", default_value = "1000", value_parser = number::<u64>("WEBHOOK_POLL_MS", "a number of milliseconds"))]
    webhook_poll_ms: u64,
    #[arg(long, env = "WEBHOOK_ALLOW_HTTP", default_value = "false", value_parser = yes_or_no("WEBHOOK_ALLOW_HTTP"), action = clap::ArgAction::Set)]
    webhook_allow_http: bool,
    #[arg(long, env = "RINGLYPRO_KEY_PREFIX", default_value = "ringlypro:")]
    key_prefix: String,
    #[arg(long, env = "RINGLYPRO_STT_DECODERS", default_value = "2", value_parser = number::<usize>("RINGLYPRO_STT_DECODERS", "a number"))]
    stt_warm_decoders: usize,
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value = "280", value_parser = number::<u64>("SHUTDOWN_GRACE_SECS", "a number"))]
    shutdown_grace_secs: u64,
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value = "20", value_parser = pool_size)]
    database_pool_size: u32,
    #[arg(long, env = "DEEPGRAM_API_KEY", value_parser = secret)]
    deepgram_key: Option<SecretString>,
    #[arg(long, env = "DEEPGRAM_URL", default_value = "wss://api.deepgram.com", value_parser = url("DEEPGRAM_URL"))]
    deepgram_url: Url,
    #[arg(long, env = "OPENAI_API_KEY", value_parser = secret)]
    openai_key: Option<SecretString>,
    #[arg(long, env = "OPENAI_BASE_URL", default_value = "https://api.openai.com/v1", value_parser = url("OPENAI_BASE_URL"))]
    openai_base_url: Url,
    #[arg(long, env = "OPENAI_MODEL", default_value = "gpt-4o-mini")]
    openai_model: String,
    #[arg(long, env = "ELEVENLABS_API_KEY", value_parser = secret)]
    elevenlabs_key: Option<SecretString>,
    #[arg(long, env = "ELEVENLABS_URL", default_value = "wss://api.elevenlabs.io", value_parser = url("ELEVENLABS_URL"))]
    elevenlabs_url: Url,
    #[arg(long, env = "ELEVENLABS_MODEL", default_value = "eleven_flash_v2_5")]
    elevenlabs_model: String,
    #[arg(long, env = "VOICE_PATH", default_value = "stream", value_parser = relay_for_all, action = clap::ArgAction::Set)]
    relay_for_all: bool,
    #[arg(long, env = "PASSWORD_HASH_MEMORY_KIB", default_value_t = PasswordCost::default().memory_kib, value_parser = number::<u32>("PASSWORD_HASH_MEMORY_KIB", "a whole number"))]
    password_memory_kib: u32,
    #[arg(long, env = "PASSWORD_HASH_ITERATIONS", default_value_t = PasswordCost::default().iterations, value_parser = number::<u32>("PASSWORD_HASH_ITERATIONS", "a whole number"))]
    password_iterations: u32,
    #[arg(long, env = "PASSWORD_HASH_PARALLELISM", default_value_t = PasswordCost::default().parallelism, value_parser = number::<u32>("PASSWORD_HASH_PARALLELISM", "a whole number"))]
    password_parallelism: u32,
    #[arg(long, env = "RINGLYPRO_NUMBER_POOL", default_value = "", value_parser = number_pool)]
    number_pool: NumberPool,
    #[arg(long, env = "LOGIN_ATTEMPTS_PER_MINUTE", default_value_t = AccountSettings::default().attempts_per_ip_per_minute, value_parser = number::<u32>("LOGIN_ATTEMPTS_PER_MINUTE", "a whole number"))]
    attempts_per_ip_per_minute: u32,
    #[arg(long, env = "LOGIN_FAILURES_PER_ACCOUNT", default_value_t = AccountSettings::default().failures_per_account, value_parser = number::<u32>("LOGIN_FAILURES_PER_ACCOUNT", "a whole number"))]
    failures_per_account: u32,
    #[arg(long, env = "API_REQUESTS_PER_KEY_PER_MINUTE", default_value_t = AccountSettings::default().api_requests_per_key_per_minute, value_parser = number::<u32>("API_REQUESTS_PER_KEY_PER_MINUTE", "a whole number"))]
    api_requests_per_key_per_minute: u32,
    #[arg(long, env = "CLIENT_IP_HEADER")]
    client_ip_header: Option<String>,
    #[arg(long, env = "STRIPE_SECRET_KEY", value_parser = secret)]
    stripe_secret_key: Option<SecretString>,
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET")]
    stripe_webhook_secret: Option<String>,
    #[arg(long, env = "STRIPE_API_BASE", default_value = "https://api.stripe.com", value_parser = url("STRIPE_API_BASE"))]
    stripe_api_base: Url,
    #[arg(long, env = "METERING_GRACE_SECS", default_value = "600", value_parser = number::<u64>("METERING_GRACE_SECS", "a number of seconds"))]
    metering_grace_secs: u64,
    #[arg(long, env = "BILLING_SWEEP_SECS", default_value = "60", value_parser = number::<u64>("BILLING_SWEEP_SECS", "a number of seconds"))]
    billing_sweep_secs: u64,
    #[arg(long, env = "SMTP_URL", value_parser = smtp_url)]
    smtp_url: Option<SecretString>,
    #[arg(long, env = "MAIL_FROM", default_value = "RinglyPro <noreply@example.com>", value_parser = mail_from)]
    mail_from: String,
    #[arg(long, env = "MAIL_SWEEP_SECS", default_value = "10", value_parser = number::<u64>("MAIL_SWEEP_SECS", "a number of seconds"))]
    mail_sweep_secs: u64,
    #[arg(long, env = "REMINDER_SWEEP_SECS", default_value = "60", value_parser = number::<u64>("REMINDER_SWEEP_SECS", "a number of seconds"))]
    reminder_sweep_secs: u64,
    #[arg(long, env = "GOOGLE_CLIENT_ID")]
    google_client_id: Option<String>,
    #[arg(long, env = "GOOGLE_CLIENT_SECRET", value_parser = secret)]
    google_client_secret: Option<SecretString>,
    #[arg(long, env = "GOOGLE_OAUTH_BASE", default_value = "https://oauth2.googleapis.com", value_parser = api_base("GOOGLE_OAUTH_BASE"))]
    google_oauth_base: Url,
    #[arg(long, env = "GOOGLE_AUTH_URL", default_value = "https://accounts.google.com/o/oauth2/v2/auth", value_parser = url("GOOGLE_AUTH_URL"))]
    google_auth_url: Url,
    #[arg(long, env = "GOOGLE_API_BASE", default_value = "https://www.googleapis.com", value_parser = api_base("GOOGLE_API_BASE"))]
    google_api_base: Url,
    #[arg(long, env = "INTEGRATIONS_KEY", value_parser = integrations_key)]
    integrations_key: Option<SecretString>,
    #[arg(long, env = "GOOGLE_FREEBUSY_BUDGET_MS", default_value = "300", value_parser = number::<u64>("GOOGLE_FREEBUSY_BUDGET_MS", "a number of milliseconds"))]
    google_freebusy_budget_ms: u64,
    #[arg(long, env = "GOOGLE_STALE_SECS", default_value = "900", value_parser = number::<u64>("GOOGLE_STALE_SECS", "a number of seconds"))]
    google_stale_secs: u64,
    #[arg(long, env = "GOOGLE_SYNC_POLL_MS", default_value = "1000", value_parser = number::<u64>("GOOGLE_SYNC_POLL_MS", "a number of milliseconds"))]
    google_sync_poll_ms: u64,
    #[arg(long, env = "GOOGLE_WATCH_TTL_SECS", default_value = "604800", value_parser = number::<u64>("GOOGLE_WATCH_TTL_SECS", "a number of seconds"))]
    google_watch_ttl_secs: u64,
    #[arg(long, env = "GHL_CLIENT_ID")]
    ghl_client_id: Option<String>,
    #[arg(long, env = "GHL_CLIENT_SECRET", value_parser = secret)]
    ghl_client_secret: Option<SecretString>,
    #[arg(long, env = "GHL_API_BASE", default_value = "https://services.leadconnectorhq.com", value_parser = api_base("GHL_API_BASE"))]
    ghl_api_base: Url,
    #[arg(long, env = "GHL_AUTH_URL", default_value = "https://marketplace.gohighlevel.com/v2/oauth/chooselocation", value_parser = url("GHL_AUTH_URL"))]
    ghl_auth_url: Url,
    #[arg(long, env = "GHL_SYNC_POLL_MS", default_value = "1000", value_parser = number::<u64>("GHL_SYNC_POLL_MS", "a number of milliseconds"))]
    ghl_sync_poll_ms: u64,
}

/// `INTEGRATIONS_KEY` is checked at start (a wrong key would only show when connecting);
/// the message never repeats the value.
fn integrations_key(v: &str) -> Result<SecretString, String> {
    crate::vendors::sealed::SealingKey::from_base64(v).map_err(|e| e.to_string())?;
    Ok(SecretString::from(v.to_owned()))
}

/// `RINGLYPRO_NUMBER_POOL`, parsed: a newtype so clap takes the whole list as one value.
#[derive(Debug, Clone)]
struct NumberPool(Vec<String>);

/// A parser for a number read from variable `name`, with today's message for a bad one.
fn number<T: std::str::FromStr>(name: &'static str, what: &'static str) -> impl Fn(&str) -> Result<T, String> + Clone {
    move |v| v.parse().map_err(|_| format!("{name} must be {what}, got {v:?}"))
}

fn url(name: &'static str) -> impl Fn(&str) -> Result<Url, String> + Clone {
    move |v| Url::parse(v).map_err(|e| format!("{name} must be a URL, got {v:?}: {e}"))
}

/// A vendor's API base: scheme and host only, since the client appends the whole path.
fn api_base(name: &'static str) -> impl Fn(&str) -> Result<Url, String> + Clone {
    move |v| {
        let parsed = Url::parse(v).map_err(|e| format!("{name} must be a URL, got {v:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.cannot_be_a_base() {
            return Err(format!("{name} must start with http:// or https://, got {v:?}"));
        }
        if parsed.path() != "/" || parsed.query().is_some() {
            return Err(format!("{name} must be a scheme and host only (the API paths are added), got {v:?}"));
        }
        Ok(parsed)
    }
}

fn secret(v: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(v.to_owned()))
}

/// An SMTP URL is checked for its scheme here; lettre reads the rest when the mailer starts.
/// The message never repeats the value: it may carry a password.
fn smtp_url(v: &str) -> Result<SecretString, String> {
    match Url::parse(v) {
        Ok(url) if matches!(url.scheme(), "smtp" | "smtps") && url.host_str().is_some() => {
            Ok(SecretString::from(v.to_owned()))
        }
        _ => Err("SMTP_URL must look like smtp://user:password@host:587 or smtps://user:password@host:465".to_owned()),
    }
}

/// `Name <address>` or a bare address.
fn mail_from(v: &str) -> Result<String, String> {
    v.parse::<lettre::message::Mailbox>()
        .map(|_| v.to_owned())
        .map_err(|_| format!("MAIL_FROM must be an address like \"RinglyPro <noreply@example.com>\", got {v:?}"))
}

fn bind_address(v: &str) -> Result<SocketAddr, String> {
    v.parse().map_err(|_| format!("BIND must be an address like 127.0.0.1:3000, got {v:?}"))
}

/// The base every Twilio-facing URL is built on, so it is kept as text without a trailing
/// slash (a parsed URL would print one).
fn public_url(v: &str) -> Result<String, String> {
    let base = v.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(format!("PUBLIC_URL must start with http:// or https://, got {base:?}"));
    }
    Url::parse(base).map_err(|e| format!("PUBLIC_URL must be a URL, got {base:?}: {e}"))?;
    Ok(base.to_owned())
}

fn pool_size(v: &str) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("DATABASE_POOL_SIZE must be a positive number, got {v:?}")),
    }
}

fn yes_or_no(name: &'static str) -> impl Fn(&str) -> Result<bool, String> + Clone {
    move |v| match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(format!("{name} must be true or false, got {other:?}")),
    }
}

fn relay_for_all(v: &str) -> Result<bool, String> {
    match v {
        "stream" => Ok(false),
        "relay" => Ok(true),
        other => Err(format!("VOICE_PATH must be stream or relay, got {other:?}")),
    }
}

fn number_pool(v: &str) -> Result<NumberPool, String> {
    let mut pool = Vec::new();
    for raw in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !raw.starts_with('+') {
            return Err(format!("RINGLYPRO_NUMBER_POOL entries must be E.164 numbers like +15550001111, got {raw:?}"));
        }
        let parsed = PhoneNumber::parse(raw).map_err(|e| format!("RINGLYPRO_NUMBER_POOL entry {raw:?}: {e}"))?;
        pool.push(parsed.as_str().to_owned());
    }
    Ok(NumberPool(pool))
}

/// A provider's endpoint as its client takes it: the URL without the trailing slash
/// parsing adds to a bare host (clients append their own paths).
pub fn endpoint(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// A bad value's message as written for it (clap's own wording for anything else).
fn bad_value(e: clap::Error) -> anyhow::Error {
    use std::error::Error as _;
    match e.source() {
        Some(reason) => anyhow::anyhow!("{reason}"),
        None => anyhow::anyhow!("{}", e.render()),
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment in production, a map in
    /// tests). Clap parses each variable found; the process environment is not read here,
    /// so a map in a test is all there is.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let command = Environment::command().mut_args(|arg| arg.env(None::<&str>));
        let mut given = Vec::new();
        for arg in Environment::command().get_arguments() {
            let (Some(name), Some(long)) = (arg.get_env().and_then(|n| n.to_str()), arg.get_long()) else { continue };
            if let Some(value) = lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
                given.push(format!("--{long}={value}"));
            }
        }
        let matches = command.try_get_matches_from(given).map_err(bad_value)?;
        let env = Environment::from_arg_matches(&matches).map_err(bad_value)?;
        Ok(Self {
            database_url: env.database_url,
            redis_url: env.redis_url,
            bind: env.bind,
            public_url: env.public_url,
            twilio_account_sid: env.twilio_account_sid,
            twilio_auth_token: env.twilio_auth_token,
            twilio_api_base: env.twilio_api_base,
            texting_poll: std::time::Duration::from_millis(env.texting_poll_ms.max(1)),
            webhook_poll: std::time::Duration::from_millis(env.webhook_poll_ms.max(1)),
            webhook_allow_http: env.webhook_allow_http,
            key_prefix: env.key_prefix,
            stt_warm_decoders: env.stt_warm_decoders,
            shutdown_grace: std::time::Duration::from_secs(env.shutdown_grace_secs),
            database_pool_size: env.database_pool_size,
            providers: ProviderKeys {
                deepgram_key: env.deepgram_key,
                deepgram_url: env.deepgram_url,
                openai_key: env.openai_key,
                openai_base_url: env.openai_base_url,
                openai_model: env.openai_model,
                elevenlabs_key: env.elevenlabs_key,
                elevenlabs_url: env.elevenlabs_url,
                elevenlabs_model: env.elevenlabs_model,
            },
            relay_for_all: env.relay_for_all,
            accounts: AccountSettings {
                password_cost: PasswordCost {
                    memory_kib: env.password_memory_kib,
                    iterations: env.password_iterations,
                    parallelism: env.password_parallelism,
                },
                number_pool: env.number_pool.0,
                attempts_per_ip_per_minute: env.attempts_per_ip_per_minute.max(1),
                failures_per_account: env.failures_per_account.max(1),
                api_requests_per_key_per_minute: env.api_requests_per_key_per_minute.max(1),
                client_ip_header: env.client_ip_header,
            },
            billing: BillingSettings {
                stripe_secret_key: env.stripe_secret_key,
                stripe_webhook_secrets: env
                    .stripe_webhook_secret
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| SecretString::from(s.to_owned()))
                    .collect(),
                stripe_api_base: env.stripe_api_base,
                metering_grace: std::time::Duration::from_secs(env.metering_grace_secs),
                sweep_every: std::time::Duration::from_secs(env.billing_sweep_secs.max(1)),
            },
            mail: MailSettings {
                smtp_url: env.smtp_url,
                from: env.mail_from,
                sweep_every: std::time::Duration::from_secs(env.mail_sweep_secs.max(1)),
            },
            reminder_sweep_every: std::time::Duration::from_secs(env.reminder_sweep_secs.max(1)),
            google: GoogleSettings {
                client_id: env.google_client_id,
                client_secret: env.google_client_secret,
                oauth_base: env.google_oauth_base,
                auth_url: env.google_auth_url,
                api_base: env.google_api_base,
                freebusy_budget: std::time::Duration::from_millis(env.google_freebusy_budget_ms),
                stale_after: std::time::Duration::from_secs(env.google_stale_secs),
                poll: std::time::Duration::from_millis(env.google_sync_poll_ms.max(1)),
                watch_ttl: std::time::Duration::from_secs(env.google_watch_ttl_secs.max(60)),
            },
            gohighlevel: GoHighLevelSettings {
                client_id: env.ghl_client_id,
                client_secret: env.ghl_client_secret,
                api_base: env.ghl_api_base,
                auth_url: env.ghl_auth_url,
                poll: std::time::Duration::from_millis(env.ghl_sync_poll_ms.max(1)),
            },
            integrations_key: env.integrations_key,
        })
    }

    /// Local mode: no Twilio credentials, so webhooks are not signature-checked.
    pub fn local_mode(&self) -> bool {
        self.twilio_auth_token.is_none()
    }

    /// Cookies carry `Secure` when the app is served over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// `scheme://host[:port]` of `public_url`: what browsers send as `Origin`.
    pub fn public_origin(&self) -> &str {
        let after_scheme = self.public_url.find("://").map(|i| i + 3).unwrap_or(0);
        match self.public_url[after_scheme..].find('/') {
            Some(slash) => &self.public_url[..after_scheme + slash],
            None => &self.public_url,
        }
    }

    /// The WebSocket base matching `public_url` (`https` → `wss`, `http` → `ws`).
    pub fn public_ws_url(&self) -> String {
        if let Some(rest) = self.public_url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.public_url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.public_url.clone()
        }
    }
}

fn redact(value: &Option<SecretString>) -> &'static str {
    if value.is_some() { "<set>" } else { "<unset>" }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &self.redis_url.as_ref().map(|u| redact_url(u.as_str())))
            .field("bind", &self.bind)
            .field("public_url", &self.public_url)
            .field("twilio_account_sid", &self.twilio_account_sid)
            .field("twilio_auth_token", &redact(&self.twilio_auth_token))
            .field("twilio_api_base", &self.twilio_api_base.as_str())
            .field("texting_poll", &self.texting_poll)
            .field("webhook_poll", &self.webhook_poll)
            .field("webhook_allow_http", &self.webhook_allow_http)
            .field("key_prefix", &self.key_prefix)
            .field("stt_warm_decoders", &self.stt_warm_decoders)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("database_pool_size", &self.database_pool_size)
            .field("providers", &self.providers)
            .field("relay_for_all", &self.relay_for_all)
            .field("accounts", &self.accounts)
            .field("billing", &self.billing)
            .field("mail", &self.mail)
            .field("reminder_sweep_every", &self.reminder_sweep_every)
            .field("integrations_key", &redact(&self.integrations_key))
            .field("google", &self.google)
            .field("gohighlevel", &self.gohighlevel)
            .finish()
    }
}

/// Hides the password of a `scheme://user:password@host` URL.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn google_settings_default_to_googles_hosts_and_keep_secrets_out_of_debug() {
        let c = config(&[]).unwrap();
        assert!(!c.google.enabled());
        assert_eq!(endpoint(&c.google.oauth_base), "https://oauth2.googleapis.com");
        assert_eq!(c.google.freebusy_budget, std::time::Duration::from_millis(300));
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let c = config(&[
            ("GOOGLE_CLIENT_ID", "id.apps.googleusercontent.com"),
            ("GOOGLE_CLIENT_SECRET", "very-secret"),
            ("INTEGRATIONS_KEY", key),
            ("GOOGLE_FREEBUSY_BUDGET_MS", "150"),
        ])
        .unwrap();
        assert!(c.google.enabled());
        assert_eq!(c.google.freebusy_budget, std::time::Duration::from_millis(150));
        let shown = format!("{c:?}");
        assert!(!shown.contains("very-secret") && !shown.contains(key), "{shown}");
    }

    #[test]
    fn gohighlevel_settings_default_to_leadconnector_and_keep_the_secret_out_of_debug() {
        let c = config(&[]).unwrap();
        assert_eq!(endpoint(&c.gohighlevel.api_base), "https://services.leadconnectorhq.com");
        assert_eq!(c.gohighlevel.auth_url.as_str(), "https://marketplace.gohighlevel.com/v2/oauth/chooselocation");
        let c = config(&[("GHL_CLIENT_ID", "app-id"), ("GHL_CLIENT_SECRET", "ghl-very-secret")]).unwrap();
        assert_eq!(c.gohighlevel.client_id.as_deref(), Some("app-id"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("ghl-very-secret"), "{shown}");
    }

    #[test]
    fn a_short_integrations_key_is_refused_without_repeating_it() {
        let e = config(&[("INTEGRATIONS_KEY", "c2hvcnQ=")]).unwrap_err().to_string();
        assert!(e.contains("INTEGRATIONS_KEY must be 32 bytes"), "{e}");
        assert!(!e.contains("c2hvcnQ="), "{e}");
    }

    #[test]
    fn defaults_run_locally_without_keys() {
        let c = config(&[]).unwrap();
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(c.bind.to_string(), "127.0.0.1:3000");
        assert_eq!(c.public_url, "http://localhost:3000");
        assert!(c.local_mode());
        assert!(c.redis_url.is_none());
        assert_eq!(c.public_ws_url(), "ws://localhost:3000");
    }

    #[test]
    fn https_public_url_gives_wss_and_loses_its_trailing_slash() {
        let c = config(&[("PUBLIC_URL", "https://rp.example.com/")]).unwrap();
        assert_eq!(c.public_ws_url(), "wss://rp.example.com");
        assert!(c.secure_cookies());
        let c = config(&[("PUBLIC_URL", "http://localhost:3000/base")]).unwrap();
        assert_eq!(c.public_origin(), "http://localhost:3000");
        assert!(!c.secure_cookies());
    }

    #[test]
    fn the_database_pool_size_is_read_and_must_be_positive() {
        assert_eq!(config(&[]).unwrap().database_pool_size, 20);
        assert_eq!(config(&[("DATABASE_POOL_SIZE", "80")]).unwrap().database_pool_size, 80);
        for bad in ["0", "-3", "lots"] {
            let e = config(&[("DATABASE_POOL_SIZE", bad)]).unwrap_err();
            assert!(e.to_string().contains("DATABASE_POOL_SIZE"), "{e}");
        }
    }

    #[test]
    fn a_bad_bind_address_is_a_clear_error() {
        let e = config(&[("BIND", "nonsense")]).unwrap_err();
        assert!(e.to_string().contains("BIND"));
    }

    #[test]
    fn the_number_pool_is_read_as_e164_and_refuses_local_forms() {
        let c = config(&[("RINGLYPRO_NUMBER_POOL", "+15550001111, +15550002222,")]).unwrap();
        assert_eq!(c.accounts.number_pool, vec!["+15550001111", "+15550002222"]);
        let e = config(&[("RINGLYPRO_NUMBER_POOL", "5550001111")]).unwrap_err();
        assert!(e.to_string().contains("RINGLYPRO_NUMBER_POOL"));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c =
            config(&[("TWILIO_AUTH_TOKEN", "supersecret"), ("DATABASE_URL", "postgres://app:hunter2@db/x")]).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("supersecret"));
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains("verysecret"));
        assert!(!c.local_mode());
    }

    #[test]
    fn a_bad_value_is_refused_with_its_own_message() {
        let message = |vars: &[(&str, &str)]| config(vars).unwrap_err().to_string();
        assert_eq!(message(&[("BIND", "nonsense")]), r#"BIND must be an address like 127.0.0.1:3000, got "nonsense""#);
        assert_eq!(message(&[("VOICE_PATH", "pigeon")]), r#"VOICE_PATH must be stream or relay, got "pigeon""#);
        assert_eq!(message(&[("SHUTDOWN_GRACE_SECS", "soon")]), r#"SHUTDOWN_GRACE_SECS must be a number, got "soon""#);
        assert_eq!(
            message(&[("PASSWORD_HASH_ITERATIONS", "two")]),
            r#"PASSWORD_HASH_ITERATIONS must be a whole number, got "two""#
        );
        assert_eq!(
            message(&[("PUBLIC_URL", "ftp://rp.example.com/")]),
            r#"PUBLIC_URL must start with http:// or https://, got "ftp://rp.example.com""#
        );
        assert!(message(&[("DEEPGRAM_URL", "not a url")]).starts_with("DEEPGRAM_URL must be a URL"));
    }

    #[test]
    fn values_are_trimmed_and_empty_ones_count_as_unset() {
        let c = config(&[("BIND", " 0.0.0.0:8080 "), ("VOICE_PATH", "relay"), ("TWILIO_AUTH_TOKEN", "  ")]).unwrap();
        assert_eq!(c.bind.to_string(), "0.0.0.0:8080");
        assert!(c.relay_for_all);
        assert!(c.local_mode());
        assert_eq!(c.shutdown_grace, std::time::Duration::from_secs(280));
    }

    #[test]
    fn the_smtp_url_is_a_secret_and_a_bad_one_is_refused_without_echoing_it() {
        let c = config(&[("SMTP_URL", "smtp://apikey:sg-verysecret@smtp.example.com:587")]).unwrap();
        assert!(c.mail.smtp_url.is_some());
        assert!(!format!("{c:?}").contains("verysecret"));
        assert_eq!(c.mail.from, "RinglyPro <noreply@example.com>");
        let e = config(&[("SMTP_URL", "http://u:hunter2@mail.example.com")]).unwrap_err().to_string();
        assert!(e.starts_with("SMTP_URL must") && !e.contains("hunter2"), "{e}");
        assert!(config(&[("MAIL_FROM", "not an address")]).unwrap_err().to_string().starts_with("MAIL_FROM must"));
    }

    #[test]
    fn provider_keys_are_secrets_and_endpoints_are_urls() {
        let c = config(&[("OPENAI_API_KEY", "sk-verysecret"), ("DEEPGRAM_URL", "ws://127.0.0.1:9000")]).unwrap();
        let key = c.providers.openai_key.as_ref().map(|k| k.expose_secret().to_owned());
        assert_eq!(key.as_deref(), Some("sk-verysecret"));
        assert!(!format!("{c:?}").contains("verysecret"));
        assert_eq!(endpoint(&c.providers.deepgram_url), "ws://127.0.0.1:9000");
        assert_eq!(endpoint(&c.providers.openai_base_url), "https://api.openai.com/v1");
        assert_eq!(endpoint(&c.providers.elevenlabs_url), "wss://api.elevenlabs.io");
    }

    #[test]
    fn the_twilio_api_base_is_a_scheme_and_host_and_refuses_a_path() {
        assert_eq!(config(&[]).unwrap().twilio_api_base.as_str(), "https://api.twilio.com/");
        let c = config(&[("TWILIO_API_BASE", "http://127.0.0.1:4010")]).unwrap();
        assert_eq!(endpoint(&c.twilio_api_base), "http://127.0.0.1:4010");
        for bad in ["https://api.twilio.com/2010-04-01", "ftp://api.twilio.com", "nonsense"] {
            let e = config(&[("TWILIO_API_BASE", bad)]).unwrap_err();
            assert!(e.to_string().starts_with("TWILIO_API_BASE must"), "{e}");
        }
    }
}
