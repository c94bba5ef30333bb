//! Twilio's REST API: sending texts, buying and releasing numbers, steering live calls.
//! Owns the form encoding, HTTP Basic with the account's SID and Auth Token, and Twilio's
//! error bodies (legacy `{code, message, status}` and RFC 9457); callers see [`TwilioError`].
//! It never retries: the outbox decides when a text is tried again.
//!
//! Written directly on reqwest: no maintained Twilio crate exists, the project needs six
//! endpoints, and the base URL must be injectable so tests talk to a loopback fake.

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

/// The API version every path starts with.
const API_VERSION: &str = "2010-04-01";
/// Longest one request may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(15);
/// How much of an unreadable body makes it into an error message.
const EXCERPT_CHARS: usize = 300;

/// Twilio's error code for a recipient who texted STOP to the sending number.
pub const UNSUBSCRIBED_RECIPIENT: u32 = 21610;
/// Twilio's error code for a `To` that is not a valid phone number.
pub const INVALID_TO_NUMBER: u32 = 21211;
/// Twilio's error code for a number that cannot be bought (taken since the search).
pub const NUMBER_NOT_AVAILABLE: u32 = 21422;

/// Why a Twilio call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwilioError {
    /// Twilio answered with an error status; `code` is Twilio's own error code when given.
    #[error("Twilio answered HTTP {status}{}: {message}", code.map(|c| format!(" (error {c})")).unwrap_or_default())]
    Api { status: u16, code: Option<u32>, message: String },
    /// Twilio could not be reached, or its answer could not be read.
    #[error("Twilio could not be reached: {0}")]
    Transport(String),
}

impl TwilioError {
    /// Twilio's error code (21610, 21211, ...), when it gave one.
    pub fn code(&self) -> Option<u32> {
        match self {
            TwilioError::Api { code, .. } => *code,
            TwilioError::Transport(_) => None,
        }
    }

    /// 5xx, 429 and network errors: the same request may succeed later. Any other 4xx says
    /// the request itself is wrong and will be refused again.
    pub fn is_retryable(&self) -> bool {
        match self {
            TwilioError::Api { status, .. } => *status == 429 || *status >= 500,
            TwilioError::Transport(_) => true,
        }
    }
}

/// A text Twilio accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// `SM…`
    pub sid: String,
    /// Usually `queued` or `accepted`.
    pub status: String,
}

/// Where a bought number sends its calls and texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberHooks {
    pub voice_url: String,
    pub status_callback: String,
    pub sms_url: String,
    /// Kept for a Messaging Service: a number has no such field, so each text sent names
    /// its own callback instead and this is not sent when buying.
    pub sms_status_callback: Option<String>,
}

/// A number the account owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedNumber {
    /// `PN…`
    pub sid: String,
    /// E.164.
    pub phone_number: String,
}

/// A client for Twilio's REST API. Cheap to clone; `Debug` never shows the Auth Token.
#[derive(Clone)]
pub struct Twilio {
    http: reqwest::Client,
    base: Url,
    account_sid: String,
    auth_token: SecretString,
}

impl fmt::Debug for Twilio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Twilio")
            .field("base", &self.base.as_str())
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"[redacted]")
            .finish()
    }
}

impl Twilio {
    /// `api_base` is scheme and host (`https://api.twilio.com` or a loopback fake); any
    /// path in it is ignored, since every request names its whole path.
    pub fn new(api_base: &url::Url, account_sid: &str, auth_token: &secrecy::SecretString) -> Self {
        let mut base = api_base.clone();
        base.set_path("");
        base.set_query(None);
        Self {
            http: reqwest::Client::builder().timeout(TIMEOUT).build().unwrap_or_default(),
            base,
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.clone(),
        }
    }

    /// None when the account SID or the auth token is not configured.
    pub fn from_config(config: &crate::config::Config) -> Option<Self> {
        let sid = config.twilio_account_sid.as_deref().filter(|s| !s.trim().is_empty())?;
        let token = config.twilio_auth_token.as_ref()?;
        Some(Self::new(&config.twilio_api_base, sid, token))
    }

    /// Sends a text; Twilio reports its progress to `status_callback` when given.
    pub async fn send_message(
        &self,
        to: &str,
        from: &str,
        body: &str,
        status_callback: Option<&str>,
    ) -> Result<SentMessage, TwilioError> {
        #[derive(Deserialize)]
        struct Wire {
            sid: String,
            #[serde(default)]
            status: Option<String>,
        }
        let mut form = vec![("To", to), ("From", from), ("Body", body)];
        if let Some(url) = status_callback {
            form.push(("StatusCallback", url));
        }
        let wire: Wire = self.send(Method::POST, &["Messages.json"], &form).await?;
        Ok(SentMessage { sid: wire.sid, status: wire.status.unwrap_or_else(|| "queued".into()) })
    }

    /// E.164 numbers offered for a local number in `country` (ISO, "US"), near an area code when given.
    pub async fn available_local_numbers(
        &self,
        country: &str,
        area_code: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, TwilioError> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            available_phone_numbers: Vec<Offered>,
        }
        #[derive(Deserialize)]
        struct Offered {
            phone_number: String,
        }
        let country = country.trim().to_ascii_uppercase();
        if country.len() != 2 || !country.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(invalid(format!("a country is two letters like US, got {country:?}")));
        }
        let page_size = limit.clamp(1, 1000).to_string();
        let mut query = vec![("PageSize", page_size.as_str()), ("SmsEnabled", "true"), ("VoiceEnabled", "true")];
        if let Some(area) = area_code.map(str::trim).filter(|a| !a.is_empty()) {
            query.push(("AreaCode", area));
        }
        let wire: Wire = self.send(Method::GET, &["AvailablePhoneNumbers", &country, "Local.json"], &query).await?;
        Ok(wire.available_phone_numbers.into_iter().map(|n| n.phone_number).take(limit as usize).collect())
    }

    /// Buys `phone_number` and points its calls and texts at `hooks`.
    pub async fn buy_number(&self, phone_number: &str, hooks: &NumberHooks) -> Result<OwnedNumber, TwilioError> {
        #[derive(Deserialize)]
        struct Wire {
            sid: String,
            phone_number: String,
        }
        let mut form = vec![
            ("PhoneNumber", phone_number),
            ("VoiceUrl", hooks.voice_url.as_str()),
            ("VoiceMethod", "POST"),
            ("StatusCallback", hooks.status_callback.as_str()),
            ("StatusCallbackMethod", "POST"),
            ("SmsUrl", hooks.sms_url.as_str()),
            ("SmsMethod", "POST"),
        ];
        form.retain(|(_, v)| !v.is_empty());
        let wire: Wire = self.send(Method::POST, &["IncomingPhoneNumbers.json"], &form).await?;
        Ok(OwnedNumber { sid: wire.sid, phone_number: wire.phone_number })
    }

    /// Gives a number back to Twilio.
    pub async fn release_number(&self, number_sid: &str) -> Result<(), TwilioError> {
        let file = format!("{}.json", checked_sid(number_sid, "PN")?);
        self.send_no_content(Method::DELETE, &["IncomingPhoneNumbers", &file], &[]).await
    }

    /// Replaces a live call's instructions (`Twiml=`).
    pub async fn redirect_call(&self, call_sid: &str, twiml: &str) -> Result<(), TwilioError> {
        self.update_call(call_sid, &[("Twiml", twiml)]).await
    }

    /// Hangs up a live call (`Status=completed`).
    pub async fn end_call(&self, call_sid: &str) -> Result<(), TwilioError> {
        self.update_call(call_sid, &[("Status", "completed")]).await
    }

    async fn update_call(&self, call_sid: &str, form: &[(&str, &str)]) -> Result<(), TwilioError> {
        let file = format!("{}.json", checked_sid(call_sid, "CA")?);
        self.send_no_content(Method::POST, &["Calls", &file], form).await
    }

    /// `/2010-04-01/Accounts/{AC}/` followed by `path`, each segment escaped.
    fn endpoint(&self, path: &[&str]) -> Result<Url, TwilioError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| invalid(format!("{} cannot take a path", self.base)))?
            .clear()
            .extend([API_VERSION, "Accounts", self.account_sid.as_str()])
            .extend(path);
        Ok(url)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        params: &[(&str, &str)],
    ) -> Result<T, TwilioError> {
        let (status, body) = self.execute(method, path, params).await?;
        serde_json::from_slice(&body)
            .map_err(|e| TwilioError::Transport(format!("unreadable answer (HTTP {status}): {e}: {}", excerpt(&body))))
    }

    async fn send_no_content(&self, method: Method, path: &[&str], params: &[(&str, &str)]) -> Result<(), TwilioError> {
        self.execute(method, path, params).await.map(|_| ())
    }

    /// One request; a non-2xx answer becomes [`TwilioError::Api`].
    async fn execute(
        &self,
        method: Method,
        path: &[&str],
        params: &[(&str, &str)],
    ) -> Result<(StatusCode, Vec<u8>), TwilioError> {
        let url = self.endpoint(path)?;
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()));
        request = if method == Method::GET { request.query(params) } else { request.form(params) };
        let response =
            request.send().await.map_err(|e| TwilioError::Transport(format!("{method} {}: {e}", url.path())))?;
        let status = response.status();
        let body =
            response.bytes().await.map_err(|e| TwilioError::Transport(format!("{method} {}: {e}", url.path())))?;
        if status.is_success() { Ok((status, body.to_vec())) } else { Err(error_from_body(status, &body)) }
    }
}

/// A request refused before it was sent: the caller's mistake, never worth a retry.
fn invalid(message: String) -> TwilioError {
    TwilioError::Api { status: 400, code: None, message }
}

/// A SID as Twilio writes them (two letters, then hex), so it is safe in a path.
fn checked_sid<'a>(sid: &'a str, prefix: &str) -> Result<&'a str, TwilioError> {
    let ok = sid.len() > prefix.len()
        && sid.starts_with(prefix)
        && sid[prefix.len()..].chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok { Ok(sid) } else { Err(invalid(format!("{sid:?} is not a {prefix}… SID"))) }
}

/// Twilio's error bodies: legacy `{code, message, more_info, status}` or RFC 9457
/// `{type, title, status, code, detail, instance}`.
#[derive(Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
    detail: Option<String>,
    title: Option<String>,
}

fn error_from_body(status: StatusCode, body: &[u8]) -> TwilioError {
    let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => {
            let message = e.message.or(e.detail).or(e.title).unwrap_or_else(|| excerpt(body));
            (e.code, message)
        }
        Err(_) => (None, excerpt(body)),
    };
    let message =
        if message.is_empty() { status.canonical_reason().unwrap_or("no reason given").to_owned() } else { message };
    TwilioError::Api { status: status.as_u16(), code, message }
}

fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(EXCERPT_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Twilio {
        Twilio::new(&Url::parse(base).unwrap(), "AC123", &SecretString::from("s3cr3t-token"))
    }

    #[test]
    fn paths_are_the_account_resources_under_the_api_version() {
        let t = client("http://127.0.0.1:4010/ignored?x=1");
        let url = t.endpoint(&["Messages.json"]).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:4010/2010-04-01/Accounts/AC123/Messages.json");
        let url = t.endpoint(&["AvailablePhoneNumbers", "US", "Local.json"]).unwrap();
        assert_eq!(url.path(), "/2010-04-01/Accounts/AC123/AvailablePhoneNumbers/US/Local.json");
    }

    #[test]
    fn the_legacy_error_body_gives_its_code_and_message() {
        let body = br#"{"code":21610,"message":"Attempt to send to unsubscribed recipient","more_info":"https://www.twilio.com/docs/errors/21610","status":400}"#;
        let e = error_from_body(StatusCode::BAD_REQUEST, body);
        assert_eq!(e.code(), Some(21610));
        assert!(!e.is_retryable());
        assert_eq!(
            e,
            TwilioError::Api {
                status: 400,
                code: Some(21610),
                message: "Attempt to send to unsubscribed recipient".into()
            }
        );
    }

    #[test]
    fn the_rfc_9457_error_body_gives_its_code_and_detail() {
        let body = br#"{"type":"https://www.twilio.com/docs/errors/20404","title":"Not Found","status":404,"code":20404,"detail":"The requested resource was not found","instance":"/v1/x"}"#;
        let e = error_from_body(StatusCode::NOT_FOUND, body);
        assert_eq!(e.code(), Some(20404));
        assert!(e.to_string().contains("The requested resource was not found"));
    }

    #[test]
    fn server_errors_rate_limits_and_the_network_are_retryable_other_4xx_are_not() {
        assert!(error_from_body(StatusCode::INTERNAL_SERVER_ERROR, b"oops").is_retryable());
        assert!(error_from_body(StatusCode::TOO_MANY_REQUESTS, b"{}").is_retryable());
        assert!(TwilioError::Transport("refused".into()).is_retryable());
        assert!(!error_from_body(StatusCode::UNAUTHORIZED, b"{}").is_retryable());
        assert_eq!(error_from_body(StatusCode::BAD_GATEWAY, b"").to_string(), "Twilio answered HTTP 502: Bad Gateway");
    }

    #[test]
    fn a_sid_that_could_escape_its_path_is_refused() {
        assert!(checked_sid("CA0123abc", "CA").is_ok());
        assert!(checked_sid("CA../../x", "CA").is_err());
        assert!(checked_sid("PN1", "CA").is_err());
        assert!(checked_sid("CA", "CA").is_err());
    }

    #[test]
    fn debug_output_hides_the_auth_token() {
        assert!(!format!("{:?}", client("https://api.twilio.com")).contains("s3cr3t"));
    }
}
