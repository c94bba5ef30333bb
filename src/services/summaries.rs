//! After each call: the owner's summary (by text and/or e-mail, after every call, only
//! after bookings and messages, or in a daily digest), and the one "sorry we missed you"
//! text to a caller who hung up before anything was settled. A worker finds ended calls;
//! each is claimed by a `call_summaries` row written in the transaction that queues what
//! it sends, so every call is handled once across instances and restarts, and the call
//! itself never waits for any of it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestSystemMessageArgs, ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequestArgs,
};
use chrono::{DateTime, NaiveDate, Timelike, Utc};
use minijinja::context;
use secrecy::ExposeSecret;
use sqlx::{PgConnection, PgPool};

use crate::config::{Config, endpoint};
use crate::dialogue::phrasing;
use crate::dialogue::prompts::written;
use crate::domain::calls::{HandledBy, Outcome};
use crate::domain::events::EventKind;
use crate::domain::ids::{CallId, TenantId};
use crate::domain::language::Language;
use crate::domain::messages::Direction;
use crate::domain::phone::PhoneNumber;
use crate::domain::scheduling::Slot;
use crate::services::booking;
use crate::storage::postgres::summaries::{self as store, EndedCall, StoredPreferences};
use crate::storage::postgres::tenants::{self, Tenant};
use crate::storage::postgres::{email_outbox, messages};

/// How long after Twilio says a call ended its conversation is taken as saved anyway.
const SETTLE: Duration = Duration::from_secs(120);
/// Ended calls looked at per sweep.
const BATCH: i64 = 50;
/// The language model gets this long to write a summary before the rules write it.
const MODEL_TIMEOUT: Duration = Duration::from_secs(8);
/// The longest caller's line quoted in a summary.
const QUOTE_CHARS: usize = 160;

/// How the owner hears about calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Text,
    Email,
    Both,
    None,
}

impl Channel {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(Self::Text),
            "email" => Some(Self::Email),
            "both" => Some(Self::Both),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    fn texts(self) -> bool {
        matches!(self, Self::Text | Self::Both)
    }

    fn mails(self) -> bool {
        matches!(self, Self::Email | Self::Both)
    }
}

/// Which calls the owner hears about, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    EveryCall,
    BookingsAndMessages,
    DailyDigest,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "every_call" => Some(Self::EveryCall),
            "bookings_and_messages" => Some(Self::BookingsAndMessages),
            "daily_digest" => Some(Self::DailyDigest),
            _ => None,
        }
    }

    /// Whether a call that ended with `outcome` is summarised at all.
    pub fn wants(self, outcome: Outcome) -> bool {
        match self {
            Self::EveryCall | Self::DailyDigest => true,
            Self::BookingsAndMessages => {
                matches!(outcome, Outcome::Booked | Outcome::Rescheduled | Outcome::Cancelled | Outcome::Message)
            }
        }
    }
}

/// Words that make a message urgent, in English and Spanish (lower case).
const URGENT_WORDS: &[&str] = &[
    "urgent",
    "emergency",
    "asap",
    "as soon as possible",
    "right away",
    "immediately",
    "urgente",
    "emergencia",
    "lo antes posible",
    "cuanto antes",
    "de inmediato",
];

/// A caller's words are urgent when they say so: "urgent", "emergency", "ASAP", "urgente"…
pub fn is_urgent(text: &str) -> bool {
    let lower = text.to_lowercase();
    URGENT_WORDS.iter().any(|w| lower.contains(w))
}

/// What the caller wanted, in their words: the first line with some substance, shortened.
pub fn wanted<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let line = lines.into_iter().map(str::trim).find(|l| l.split_whitespace().count() >= 3)?;
    let mut quote: String = line.chars().take(QUOTE_CHARS).collect();
    if line.chars().count() > QUOTE_CHARS {
        quote.push('…');
    }
    Some(quote)
}

/// Everything a summary says, gathered from the call's rows.
#[derive(Debug, Clone, serde::Serialize)]
struct Facts {
    business_name: String,
    who: String,
    at: String,
    outcome: Outcome,
    booked_at: Option<String>,
    wanted: Option<String>,
    message: Option<String>,
    urgent: bool,
    link: String,
}

/// A non-streaming chat model that writes summaries.
struct SummaryModel {
    client: Client<OpenAIConfig>,
    model: String,
}

/// The summaries worker.
#[derive(Clone)]
pub struct Summaries {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    public_url: String,
    model: Option<SummaryModel>,
    sweep_every: Duration,
}

impl Summaries {
    pub fn new(pool: PgPool, config: &Config) -> Self {
        let keys = &config.providers;
        let model = keys.openai_key.as_ref().map(|key| SummaryModel {
            client: Client::with_config(
                OpenAIConfig::new()
                    .with_api_base(endpoint(&keys.openai_base_url))
                    .with_api_key(key.expose_secret().to_owned()),
            ),
            model: keys.openai_model.clone(),
        });
        Self {
            inner: Arc::new(Inner {
                pool,
                public_url: config.public_url.clone(),
                model,
                sweep_every: config.mail.sweep_every,
            }),
        }
    }

    /// Summarises ended calls and sends due digests every sweep period until aborted.
    pub fn spawn_worker(&self) -> tokio::task::JoinHandle<()> {
        let summaries = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(summaries.inner.sweep_every);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = summaries.run_once(Utc::now()).await {
                    tracing::warn!(error = %format!("{e:#}"), "summaries sweep failed; trying again next time");
                }
            }
        })
    }

    /// One sweep: every ended call not yet handled, then the digests due at `now`.
    pub async fn run_once(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
        let calls = store::unsummarised(&self.inner.pool, SETTLE, BATCH).await.context("finding ended calls")?;
        for call_id in calls {
            if let Err(e) = self.summarise(call_id).await {
                tracing::warn!(call_id = call_id.get(), error = %format!("{e:#}"), "call summary failed");
            }
        }
        for client_id in store::digest_tenants(&self.inner.pool).await? {
            if let Err(e) = self.send_digest_if_due(client_id, now).await {
                tracing::warn!(tenant_id = %client_id, error = %format!("{e:#}"), "daily digest failed");
            }
        }
        Ok(())
    }

    /// Handles one ended call, once: the claim, the missed-call text and the summary are
    /// one transaction.
    async fn summarise(&self, call_id: CallId) -> anyhow::Result<()> {
        let pool = &self.inner.pool;
        let mut tx = pool.begin().await?;
        let Some(call) = store::ended_call(&mut tx, call_id).await? else { return Ok(()) };
        if !store::claim(&mut tx, call.id, call.client_id).await? {
            return Ok(());
        }
        let tenant = tenants::find(pool, call.client_id).await?.context("the call's tenant is gone")?;
        let prefs = store::preferences(&mut tx, call.client_id).await?.context("the call's tenant is gone")?;
        let caller = PhoneNumber::parse(&call.from_number).ok();
        let blocked = match &caller {
            Some(number) => store::is_blocked(&mut tx, call.client_id, number.as_str()).await?,
            None => false,
        };
        let (outcome, summary, source) = if blocked {
            ("blocked_caller", String::new(), "rules")
        } else if call.handled_by != HandledBy::Agent {
            ("not_answered", String::new(), "rules")
        } else {
            if let (Outcome::None, Some(number)) = (call.outcome, &caller) {
                self.text_back(&mut tx, &tenant, &call, number).await?;
            }
            self.summary(&mut tx, &tenant, &prefs, &call).await?
        };
        store::record(&mut tx, call.id, outcome, &summary, source).await?;
        self.announce(&mut tx, &tenant, &prefs, &call, &summary, source).await?;
        tx.commit().await.context("committing the call's summary")?;
        tracing::info!(tenant_id = %call.client_id, call_id = call.id.get(), outcome, source, "call summarised");
        Ok(())
    }

    /// Tells the business's webhooks that the call completed: who called, the outcome, the
    /// transcript and the summary (written by the rules in the owner's language when the
    /// owner gets none).
    async fn announce(
        &self,
        conn: &mut PgConnection,
        tenant: &Tenant,
        prefs: &StoredPreferences,
        call: &EndedCall,
        summary: &str,
        source: &str,
    ) -> anyhow::Result<()> {
        if !crate::storage::postgres::webhooks::wanted(conn, tenant.id, EventKind::CallCompleted).await? {
            return Ok(());
        }
        let (summary, source) = if summary.is_empty() && call.handled_by == HandledBy::Agent {
            let lang = Language::from_code(&prefs.summary_language).unwrap_or_default();
            let facts = self.facts(conn, tenant, call, lang).await?;
            (written(lang, "call_summary", &facts_ctx(&facts))?, "rules")
        } else {
            (summary.to_owned(), source)
        };
        let transcript: Vec<_> = crate::storage::postgres::calls::turns(&mut *conn, call.id)
            .await?
            .into_iter()
            .map(|t| serde_json::json!({ "speaker": t.speaker, "text": t.text, "at": t.started_at }))
            .collect();
        let data = serde_json::json!({
            "call_id": call.id,
            "call_sid": call.call_sid,
            "from": call.from_number,
            "caller_name": call.caller_name,
            "handled_by": call.handled_by,
            "outcome": call.outcome,
            "language": call.language,
            "started_at": call.started_at,
            "duration_seconds": call.duration_seconds,
            "summary": (!summary.is_empty()).then_some(summary),
            "summary_source": source,
            "transcript": transcript,
            "link": format!("{}/app/calls/{}", self.inner.public_url, call.call_sid),
        });
        crate::storage::postgres::webhooks::emit(conn, tenant.id, EventKind::CallCompleted, data).await?;
        Ok(())
    }

    /// The owner's summary of an answered call, queued (or kept for the digest) as the
    /// owner chose. Returns the claim's outcome, the text and who wrote it.
    async fn summary(
        &self,
        conn: &mut PgConnection,
        tenant: &Tenant,
        prefs: &StoredPreferences,
        call: &EndedCall,
    ) -> anyhow::Result<(&'static str, String, &'static str)> {
        let channel = Channel::parse(&prefs.summary_channel).unwrap_or(Channel::Email);
        let scope = Scope::parse(&prefs.summary_scope).unwrap_or(Scope::EveryCall);
        if channel == Channel::None || !scope.wants(call.outcome) {
            return Ok(("skipped_by_preference", String::new(), "rules"));
        }
        let lang = Language::from_code(&prefs.summary_language).unwrap_or_default();
        let facts = self.facts(conn, tenant, call, lang).await?;
        let (text, source) = match self.model_summary(&facts, lang).await {
            Some(text) => (written(lang, "call_summary_from_model", &context! { text, ..facts_ctx(&facts) })?, "model"),
            None => (written(lang, "call_summary", &facts_ctx(&facts))?, "rules"),
        };
        if scope == Scope::DailyDigest {
            return Ok(("in_digest", text, source));
        }
        let subject = written(lang, "call_summary_subject", &facts_ctx(&facts))?;
        self.to_owner(conn, tenant, channel, Some(call.id), "owner_summary", &subject, &text).await?;
        Ok(("sent", text, source))
    }

    async fn facts(
        &self,
        conn: &mut PgConnection,
        tenant: &Tenant,
        call: &EndedCall,
        lang: Language,
    ) -> anyhow::Result<Facts> {
        let who = match (&call.caller_name, PhoneNumber::parse(&call.from_number)) {
            (Some(name), Ok(number)) => format!("{name}, {}", number.formatted()),
            (Some(name), Err(_)) => name.clone(),
            (None, Ok(number)) => number.formatted(),
            (None, Err(_)) => written(lang, "unknown_caller", &context! {})?,
        };
        let calendar = tenant.calendar();
        let at = phrasing::format_time(calendar.local(call.started_at).time(), lang);
        let now = Utc::now();
        let booked_at = store::booked_start(conn, call.id)
            .await?
            .map(|starts_at| phrasing::describe_slot(&calendar, &Slot { starts_at, ends_at: starts_at }, now, lang));
        let lines = store::caller_lines(conn, call.id).await?;
        let message = store::left_message(conn, call.id).await?;
        let urgent = message.as_deref().is_some_and(is_urgent) || lines.iter().any(|(text, _)| is_urgent(text));
        Ok(Facts {
            business_name: tenant.business_name.clone(),
            who,
            at,
            outcome: call.outcome,
            booked_at,
            wanted: wanted(lines.iter().map(|(text, _)| text.as_str())),
            message,
            urgent,
            link: format!("{}/app/calls/{}", self.inner.public_url, call.call_sid),
        })
    }

    /// The language model's summary, or `None` (no model, an error, a timeout, nothing
    /// said) so the rules write it.
    async fn model_summary(&self, facts: &Facts, lang: Language) -> Option<String> {
        let model = self.inner.model.as_ref()?;
        let answer = tokio::time::timeout(MODEL_TIMEOUT, ask_model(model, facts, lang)).await;
        match answer {
            Ok(Ok(text)) if !text.trim().is_empty() => Some(text.split_whitespace().collect::<Vec<_>>().join(" ")),
            Ok(Ok(_)) => None,
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "the language model did not summarise the call");
                None
            }
            Err(_) => {
                tracing::warn!("the language model took too long to summarise the call");
                None
            }
        }
    }

    /// Queues the "sorry we missed you" text, unless this number had one today.
    async fn text_back(
        &self,
        conn: &mut PgConnection,
        tenant: &Tenant,
        call: &EndedCall,
        caller: &PhoneNumber,
    ) -> anyhow::Result<()> {
        let Some(from) = tenant.ringlypro_number.as_deref() else { return Ok(()) };
        let day = tenant.calendar().local(call.started_at).date_naive();
        if !store::claim_missed_call_text(conn, tenant.id, caller.as_str(), day, call.id).await? {
            return Ok(());
        }
        let lang = Language::from_code(&call.language).unwrap_or(tenant.language);
        let body = written(lang, "missed_call_text", &context! { business_name => &tenant.business_name })?;
        messages::queue(
            conn,
            &messages::NewMessage {
                client_id: tenant.id,
                contact_id: None,
                call_id: Some(call.id),
                direction: Direction::Outbound,
                kind: "missed_call",
                to_number: caller.as_str(),
                from_number: from,
                body: &body,
            },
        )
        .await?;
        Ok(())
    }

    /// Queues a text and/or an e-mail to the owner, as the channel says.
    #[allow(clippy::too_many_arguments)]
    async fn to_owner(
        &self,
        conn: &mut PgConnection,
        tenant: &Tenant,
        channel: Channel,
        call_id: Option<CallId>,
        kind: &str,
        subject: &str,
        body: &str,
    ) -> anyhow::Result<()> {
        if channel.texts() {
            booking::alert_owner(conn, tenant, call_id, kind, body).await?;
        }
        if channel.mails() {
            match store::owner_email(conn, tenant.id).await? {
                Some(to) => {
                    email_outbox::queue(
                        conn,
                        &email_outbox::NewEmail { client_id: Some(tenant.id), to_address: &to, kind, subject, body },
                    )
                    .await?;
                }
                None => tracing::warn!(tenant_id = %tenant.id, "no e-mail address for the owner's summary"),
            }
        }
        Ok(())
    }

    /// The tenant's digest of today, once, from its chosen hour on.
    async fn send_digest_if_due(&self, client_id: TenantId, now: DateTime<Utc>) -> anyhow::Result<()> {
        let pool = &self.inner.pool;
        let Some(tenant) = tenants::find(pool, client_id).await? else { return Ok(()) };
        let mut tx = pool.begin().await?;
        let Some(prefs) = store::preferences(&mut tx, client_id).await? else { return Ok(()) };
        let local = tenant.calendar().local(now);
        if Scope::parse(&prefs.summary_scope) != Some(Scope::DailyDigest)
            || i64::from(local.hour()) < i64::from(prefs.summary_digest_hour)
        {
            return Ok(());
        }
        let day: NaiveDate = local.date_naive();
        if !store::claim_digest(&mut tx, client_id, day).await? {
            return Ok(());
        }
        let lines = store::take_for_digest(&mut tx, client_id, day).await?;
        let channel = Channel::parse(&prefs.summary_channel).unwrap_or(Channel::Email);
        let lang = Language::from_code(&prefs.summary_language).unwrap_or_default();
        let day_text = day.format("%Y-%m-%d").to_string();
        let ctx = context! {
            business_name => &tenant.business_name, day => &day_text, count => lines.len(), lines => &lines,
        };
        let subject = written(lang, "digest_subject", &ctx)?;
        let body = written(lang, "digest_body", &ctx)?;
        self.to_owner(&mut tx, &tenant, channel, None, "owner_digest", &subject, &body).await?;
        tx.commit().await.context("committing the digest")?;
        tracing::info!(tenant_id = %client_id, day = %day, calls = lines.len(), "daily digest queued");
        Ok(())
    }
}

fn facts_ctx(facts: &Facts) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(facts))
}

/// One plain chat completion: the facts in, two or three sentences out.
async fn ask_model(model: &SummaryModel, facts: &Facts, lang: Language) -> anyhow::Result<String> {
    let language = match lang {
        Language::English => "English",
        Language::Spanish => "Spanish",
    };
    let system = format!(
        "You write a short summary of a phone call for a small business owner, in {language}: who called, what \
         they wanted, the outcome, and the message if one was left. Two or three plain sentences, no greeting, \
         no links, no ids."
    );
    let facts = serde_json::to_string(&serde_json::json!({
        "caller": facts.who,
        "time": facts.at,
        "outcome": facts.outcome,
        "appointment": facts.booked_at,
        "caller_said": facts.wanted,
        "message": facts.message,
        "urgent": facts.urgent,
    }))?;
    let request = CreateChatCompletionRequestArgs::default()
        .model(model.model.clone())
        .max_completion_tokens(200u32)
        .messages([
            ChatCompletionRequestSystemMessageArgs::default().content(system).build()?.into(),
            ChatCompletionRequestUserMessageArgs::default().content(facts).build()?.into(),
        ])
        .build()?;
    let response = model.client.chat().create(request).await?;
    Ok(response.choices.into_iter().find_map(|c| c.message.content).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgency_is_what_the_caller_says_in_either_language() {
        assert!(is_urgent("Please call me back ASAP"));
        assert!(is_urgent("It's an EMERGENCY, my tooth broke"));
        assert!(is_urgent("es urgente, llámeme"));
        assert!(!is_urgent("I'd like a cleaning next week"));
    }

    #[test]
    fn only_bookings_and_messages_skips_plain_enquiries() {
        let scope = Scope::BookingsAndMessages;
        assert!(scope.wants(Outcome::Booked) && scope.wants(Outcome::Message));
        assert!(!scope.wants(Outcome::Info) && !scope.wants(Outcome::None));
        assert!(Scope::EveryCall.wants(Outcome::None));
        assert_eq!(Scope::parse("daily_digest"), Some(Scope::DailyDigest));
        assert_eq!(Scope::parse("weekly"), None);
    }

    #[test]
    fn what_the_caller_wanted_is_their_first_real_line_shortened() {
        assert_eq!(wanted(["hi", " I need a cleaning soon "]).as_deref(), Some("I need a cleaning soon"));
        assert_eq!(wanted(["yes", "no"]), None);
        let long = "word ".repeat(100);
        let quote = wanted([long.as_str()]).unwrap();
        assert_eq!(quote.chars().count(), QUOTE_CHARS + 1);
        assert!(quote.ends_with('…'));
    }

    #[test]
    fn channels_say_which_ways_the_owner_is_told() {
        assert!(Channel::Both.texts() && Channel::Both.mails());
        assert!(Channel::Text.texts() && !Channel::Text.mails());
        assert!(!Channel::None.texts() && !Channel::None.mails());
        assert_eq!(Channel::parse("pigeon"), None);
    }
}
