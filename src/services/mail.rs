//! Sending the e-mail outbox through SMTP (lettre): a worker claims due mails, sends each,
//! retries transient failures (4xx replies, connection trouble) with a growing delay and
//! gives up at once on a permanent refusal (5xx). Without `SMTP_URL` no worker runs and
//! mails wait in the outbox, shown to the owner.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use url::Url;

use crate::config::MailSettings;
use crate::storage::postgres::email_outbox::{self, ClaimedEmail};

/// Mails claimed in one go by one instance.
const BATCH: i64 = 20;
/// How long a claim keeps other instances away: longer than lettre's own timeouts.
const LEASE: Duration = Duration::from_secs(5 * 60);
/// After this many tries a mail that keeps failing transiently is given up.
const MAX_ATTEMPTS: i32 = 8;
/// The first retry's delay; each later one doubles, up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_secs(30);
const MAX_DELAY: Duration = Duration::from_secs(60 * 60);

/// The outbox's sender: a pool of SMTP connections and the `From` address.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    sweep_every: Duration,
}

/// What became of one mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// Tried again later.
    Retry,
    Failed,
}

impl Mailer {
    /// The mailer of `SMTP_URL`, or `None` without one (mails then wait in the outbox).
    pub fn from_settings(pool: PgPool, settings: &MailSettings) -> anyhow::Result<Option<Self>> {
        let Some(url) = &settings.smtp_url else { return Ok(None) };
        let url = transport_url(url.expose_secret())?;
        // lettre's message would repeat the URL, password included; ours does not.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
            .map_err(|_| anyhow::anyhow!("SMTP_URL is not an SMTP address lettre can use"))?
            .build();
        let from: Mailbox = settings.from.parse().context("MAIL_FROM is not an e-mail address")?;
        Ok(Some(Self { inner: Arc::new(Inner { pool, transport, from, sweep_every: settings.sweep_every }) }))
    }

    /// Sends due mails every sweep period until aborted.
    pub fn spawn_worker(&self) -> tokio::task::JoinHandle<()> {
        let mailer = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(mailer.inner.sweep_every);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = mailer.send_due().await {
                    tracing::warn!(error = %format!("{e:#}"), "mail sweep failed; trying again next time");
                }
            }
        })
    }

    /// Sends every mail due now; returns how many were handled.
    pub async fn send_due(&self) -> anyhow::Result<usize> {
        let mut handled = 0;
        loop {
            let claimed =
                email_outbox::claim_due(&self.inner.pool, BATCH, LEASE).await.context("claiming due mails")?;
            if claimed.is_empty() {
                return Ok(handled);
            }
            for mail in &claimed {
                let delivery = self.deliver(mail).await?;
                tracing::info!(email_id = mail.id, attempt = mail.attempts, ?delivery, "mail handled");
            }
            handled += claimed.len();
        }
    }

    /// Sends one claimed mail and records the result.
    async fn deliver(&self, mail: &ClaimedEmail) -> anyhow::Result<Delivery> {
        let pool = &self.inner.pool;
        let message = match self.message(mail) {
            Ok(message) => message,
            Err(reason) => {
                email_outbox::mark_failed(pool, mail.id, &reason).await?;
                return Ok(Delivery::Failed);
            }
        };
        match self.inner.transport.send(message).await {
            Ok(_) => {
                email_outbox::mark_sent(pool, mail.id).await?;
                Ok(Delivery::Sent)
            }
            Err(e) if e.is_permanent() || mail.attempts >= MAX_ATTEMPTS => {
                tracing::warn!(email_id = mail.id, error = %e, "mail refused; not retried");
                email_outbox::mark_failed(pool, mail.id, &e.to_string()).await?;
                Ok(Delivery::Failed)
            }
            Err(e) => {
                tracing::info!(email_id = mail.id, error = %e, "mail not sent yet; retrying later");
                let next = Utc::now() + retry_delay(mail.attempts);
                email_outbox::mark_retry(pool, mail.id, next, &e.to_string()).await?;
                Ok(Delivery::Retry)
            }
        }
    }

    /// The mail as a plain-text message, or why it cannot be one.
    fn message(&self, mail: &ClaimedEmail) -> Result<Message, String> {
        let to: Mailbox =
            mail.to_address.parse().map_err(|_| format!("{:?} is not an e-mail address", mail.to_address))?;
        Message::builder()
            .from(self.inner.from.clone())
            .to(to)
            .subject(mail.subject.as_str())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| format!("the mail cannot be written: {e}"))
    }
}

/// How long to wait after the `attempt`-th failed try: 30 s, doubling, at most an hour.
pub fn retry_delay(attempt: i32) -> chrono::Duration {
    let doublings = attempt.saturating_sub(1).clamp(0, 16) as u32;
    let delay = FIRST_DELAY.saturating_mul(2u32.saturating_pow(doublings)).min(MAX_DELAY);
    chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1))
}

/// `SMTP_URL` as lettre reads it. Ours means what people expect: `smtp://` is STARTTLS
/// (lettre would send in the clear), `smtps://` is TLS, and only an explicit `?tls=none`
/// (for a relay on loopback) sends without encryption.
fn transport_url(raw: &str) -> anyhow::Result<String> {
    let mut url = Url::parse(raw).map_err(|_| anyhow::anyhow!("SMTP_URL is not a URL"))?;
    let tls = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
    let others: Vec<(String, String)> =
        url.query_pairs().filter(|(k, _)| k != "tls").map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let tls = match (url.scheme(), tls.as_deref()) {
        ("smtps", _) => None,
        ("smtp", None | Some("required")) => Some("required"),
        ("smtp", Some("opportunistic")) => Some("opportunistic"),
        ("smtp", Some("none")) => None,
        ("smtp", Some(other)) => anyhow::bail!("SMTP_URL's tls must be required, opportunistic or none, got {other:?}"),
        (scheme, _) => anyhow::bail!("SMTP_URL must start with smtp:// or smtps://, got {scheme}://"),
    };
    url.set_query(None);
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in &others {
            query.append_pair(k, v);
        }
        if let Some(tls) = tls {
            query.append_pair("tls", tls);
        }
    }
    let mut text = url.to_string();
    if text.ends_with('?') {
        text.pop();
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_smtp_means_starttls_and_only_tls_none_sends_in_the_clear() {
        assert_eq!(
            transport_url("smtp://u:p@mail.example.com:587").unwrap(),
            "smtp://u:p@mail.example.com:587?tls=required"
        );
        assert_eq!(transport_url("smtps://u:p@mail.example.com").unwrap(), "smtps://u:p@mail.example.com");
        assert_eq!(transport_url("smtp://127.0.0.1:2525?tls=none").unwrap(), "smtp://127.0.0.1:2525");
        assert_eq!(transport_url("smtp://h:25?tls=opportunistic").unwrap(), "smtp://h:25?tls=opportunistic");
        assert!(transport_url("smtp://h:25?tls=maybe").is_err());
        assert!(transport_url("http://h").is_err());
    }

    #[test]
    fn retries_wait_longer_each_time_up_to_an_hour() {
        assert_eq!(retry_delay(1), chrono::Duration::seconds(30));
        assert_eq!(retry_delay(2), chrono::Duration::seconds(60));
        assert_eq!(retry_delay(4), chrono::Duration::seconds(240));
        assert_eq!(retry_delay(30), chrono::Duration::hours(1));
        assert_eq!(retry_delay(0), chrono::Duration::seconds(30));
    }
}
