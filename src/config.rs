//! Typed configuration, read once from the environment in `main` and passed down.
//! Secrets never appear in `Debug` output.

use std::fmt;
use std::net::SocketAddr;

use anyhow::Context;

/// Everything the server needs to know about its surroundings.
#[derive(Clone)]
pub struct Config {
    /// `DATABASE_URL`; the database is created if it does not exist.
    pub database_url: String,
    /// `REDIS_URL`; unset means the in-process call-state store.
    pub redis_url: Option<String>,
    /// `BIND`: where the HTTP server listens.
    pub bind: SocketAddr,
    /// `PUBLIC_URL`: the base URL Twilio reaches us at, used in TwiML and signature checks.
    pub public_url: String,
    /// `TWILIO_ACCOUNT_SID`.
    pub twilio_account_sid: Option<String>,
    /// `TWILIO_AUTH_TOKEN`; unset means local mode (no signature checks).
    pub twilio_auth_token: Option<String>,
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
            client_ip_header: None,
        }
    }
}

/// Keys and endpoints of the cloud providers (secrets redacted in `Debug`).
#[derive(Clone, Default)]
pub struct ProviderKeys {
    /// `DEEPGRAM_API_KEY`, `DEEPGRAM_URL`.
    pub deepgram_key: Option<String>,
    pub deepgram_url: String,
    /// `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `OPENAI_MODEL`.
    pub openai_key: Option<String>,
    pub openai_base_url: String,
    pub openai_model: String,
    /// `ELEVENLABS_API_KEY`, `ELEVENLABS_URL`, `ELEVENLABS_MODEL`.
    pub elevenlabs_key: Option<String>,
    pub elevenlabs_url: String,
    pub elevenlabs_model: String,
}

impl fmt::Debug for ProviderKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderKeys")
            .field("deepgram_key", &redact(&self.deepgram_key))
            .field("deepgram_url", &self.deepgram_url)
            .field("openai_key", &redact(&self.openai_key))
            .field("openai_base_url", &self.openai_base_url)
            .field("openai_model", &self.openai_model)
            .field("elevenlabs_key", &redact(&self.elevenlabs_key))
            .field("elevenlabs_url", &self.elevenlabs_url)
            .field("elevenlabs_model", &self.elevenlabs_model)
            .finish()
    }
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/ringlypro";

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment in production, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let bind = get("BIND").unwrap_or_else(|| "127.0.0.1:3000".into());
        let bind: SocketAddr =
            bind.parse().with_context(|| format!("BIND must be an address like 127.0.0.1:3000, got {bind:?}"))?;
        let public_url = get("PUBLIC_URL").unwrap_or_else(|| "http://localhost:3000".into());
        let public_url = public_url.trim_end_matches('/').to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            anyhow::bail!("PUBLIC_URL must start with http:// or https://, got {public_url:?}");
        }
        let stt_warm_decoders = match get("RINGLYPRO_STT_DECODERS") {
            Some(v) => v.parse().with_context(|| format!("RINGLYPRO_STT_DECODERS must be a number, got {v:?}"))?,
            None => 2,
        };
        let database_pool_size = match get("DATABASE_POOL_SIZE") {
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => anyhow::bail!("DATABASE_POOL_SIZE must be a positive number, got {v:?}"),
            },
            None => 20,
        };
        let shutdown_grace = match get("SHUTDOWN_GRACE_SECS") {
            Some(v) => std::time::Duration::from_secs(
                v.parse().with_context(|| format!("SHUTDOWN_GRACE_SECS must be a number, got {v:?}"))?,
            ),
            None => std::time::Duration::from_secs(280),
        };
        let providers = ProviderKeys {
            deepgram_key: get("DEEPGRAM_API_KEY"),
            deepgram_url: get("DEEPGRAM_URL").unwrap_or_else(|| "wss://api.deepgram.com".into()),
            openai_key: get("OPENAI_API_KEY"),
            openai_base_url: get("OPENAI_BASE_URL").unwrap_or_else(|| "https://api.openai.com/v1".into()),
            openai_model: get("OPENAI_MODEL").unwrap_or_else(|| "gpt-4o-mini".into()),
            elevenlabs_key: get("ELEVENLABS_API_KEY"),
            elevenlabs_url: get("ELEVENLABS_URL").unwrap_or_else(|| "wss://api.elevenlabs.io".into()),
            elevenlabs_model: get("ELEVENLABS_MODEL").unwrap_or_else(|| "eleven_flash_v2_5".into()),
        };
        let relay_for_all = match get("VOICE_PATH").as_deref() {
            None | Some("stream") => false,
            Some("relay") => true,
            Some(other) => anyhow::bail!("VOICE_PATH must be stream or relay, got {other:?}"),
        };
        let accounts = account_settings(&get)?;
        Ok(Self {
            accounts,
            relay_for_all,
            providers,
            shutdown_grace,
            database_pool_size,
            database_url: get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            redis_url: get("REDIS_URL"),
            bind,
            public_url,
            twilio_account_sid: get("TWILIO_ACCOUNT_SID"),
            twilio_auth_token: get("TWILIO_AUTH_TOKEN"),
            key_prefix: get("RINGLYPRO_KEY_PREFIX").unwrap_or_else(|| "ringlypro:".into()),
            stt_warm_decoders,
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

fn account_settings(get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<AccountSettings> {
    let number = |name: &str, default: u32| -> anyhow::Result<u32> {
        match get(name) {
            Some(v) => v.parse().with_context(|| format!("{name} must be a whole number, got {v:?}")),
            None => Ok(default),
        }
    };
    let defaults = AccountSettings::default();
    let password_cost = PasswordCost {
        memory_kib: number("PASSWORD_HASH_MEMORY_KIB", defaults.password_cost.memory_kib)?,
        iterations: number("PASSWORD_HASH_ITERATIONS", defaults.password_cost.iterations)?,
        parallelism: number("PASSWORD_HASH_PARALLELISM", defaults.password_cost.parallelism)?,
    };
    let mut number_pool = Vec::new();
    for raw in get("RINGLYPRO_NUMBER_POOL").unwrap_or_default().split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !raw.starts_with('+') {
            anyhow::bail!("RINGLYPRO_NUMBER_POOL entries must be E.164 numbers like +15550001111, got {raw:?}");
        }
        let parsed = crate::domain::phone::PhoneNumber::parse(raw)
            .map_err(|e| anyhow::anyhow!("RINGLYPRO_NUMBER_POOL entry {raw:?}: {e}"))?;
        number_pool.push(parsed.as_str().to_owned());
    }
    Ok(AccountSettings {
        password_cost,
        number_pool,
        attempts_per_ip_per_minute: number("LOGIN_ATTEMPTS_PER_MINUTE", defaults.attempts_per_ip_per_minute)?.max(1),
        failures_per_account: number("LOGIN_FAILURES_PER_ACCOUNT", defaults.failures_per_account)?.max(1),
        client_ip_header: get("CLIENT_IP_HEADER"),
    })
}

fn redact(value: &Option<String>) -> &'static str {
    if value.is_some() { "<set>" } else { "<unset>" }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("bind", &self.bind)
            .field("public_url", &self.public_url)
            .field("twilio_account_sid", &self.twilio_account_sid)
            .field("twilio_auth_token", &redact(&self.twilio_auth_token))
            .field("key_prefix", &self.key_prefix)
            .field("stt_warm_decoders", &self.stt_warm_decoders)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("database_pool_size", &self.database_pool_size)
            .field("providers", &self.providers)
            .field("relay_for_all", &self.relay_for_all)
            .field("accounts", &self.accounts)
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
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
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
}
