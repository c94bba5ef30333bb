//! Twilio's texting webhooks: delivery status callbacks (`/twilio/sms-status`), which only
//! move a text forward, and inbound texts (`/twilio/sms`): threaded into the sender's
//! contact, shown live, then STOP/START/HELP handled here, appointment replies handed to
//! `services::replies`, and anything else forwarded to the owner. Both are signed.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use minijinja::context;

use crate::dialogue::prompts::written;
use crate::domain::events::EventKind;
use crate::domain::language::Language;
use crate::domain::phone::PhoneNumber;
use crate::domain::tenants::Tenant;
use crate::services::replies;
use crate::services::texting::TextReceived;
use crate::storage::postgres::messages::{self, Direction, NewMessage};
use crate::storage::postgres::outbox::{self, Applied, OptOutSource, Progress};
use crate::storage::postgres::{begin_tenant, tenants, webhooks};
use crate::telephony::request::{TwilioError, TwilioRequest, xml};
use crate::telephony::{TelephonyState, twiml};

/// The longest inbound text accepted (ten segments, as for texts we send).
pub const MAX_TEXT_CHARS: usize = 1600;
/// `POST /twilio/sms-status`: a text's delivery progress. Applied only when it moves the
/// text forward, so callbacks may arrive in any order, or twice.
pub async fn status(State(app): State<TelephonyState>, hook: TwilioRequest) -> Result<Response, TwilioError> {
    let sid = hook.field("MessageSid").or(hook.field("SmsSid")).ok_or_else(|| missing("MessageSid"))?;
    let status = hook.field("MessageStatus").or(hook.field("SmsStatus")).ok_or_else(|| missing("MessageStatus"))?;
    let error_code = match hook.field("ErrorCode") {
        Some(code) => {
            Some(code.parse::<i32>().map_err(|_| TwilioError::BadRequest("ErrorCode must be a whole number".into()))?)
        }
        None => None,
    };
    let Some(progress) = Progress::parse(status) else {
        tracing::debug!(sid, status, "text status that says nothing about delivery; ignored");
        return Ok(StatusCode::OK.into_response());
    };
    match outbox::apply_progress(&app.pool, sid, progress, error_code, Utc::now()).await? {
        Applied::Moved => tracing::info!(sid, status, error_code, "text status recorded"),
        Applied::Stale => tracing::debug!(sid, status, "text status older than the one recorded; ignored"),
        // Answered 200 all the same: an error would only make Twilio try again.
        Applied::Unknown => tracing::warn!(sid, status, "status callback for a text we do not know"),
    }
    Ok(StatusCode::OK.into_response())
}

fn missing(name: &str) -> TwilioError {
    TwilioError::BadRequest(format!("{name} is required"))
}

/// An inbound text as checked at the door.
struct Inbound<'a> {
    sid: &'a str,
    from: String,
    to: String,
    body: &'a str,
}

fn read_inbound(hook: &TwilioRequest) -> Result<Inbound<'_>, TwilioError> {
    let sid = hook.field("MessageSid").or(hook.field("SmsMessageSid")).ok_or_else(|| missing("MessageSid"))?;
    let from = hook.required("From")?;
    let to = hook.required("To")?;
    let body = hook.field("Body").map(str::trim).filter(|b| !b.is_empty());
    let Some(body) = body else {
        return Err(TwilioError::BadRequest("Body is required: the text is empty".into()));
    };
    let chars = body.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(TwilioError::BadRequest(format!(
            "Body has {chars} characters; the most accepted is {MAX_TEXT_CHARS}"
        )));
    }
    Ok(Inbound { sid, from: normalised(from), to: normalised(to), body })
}

/// E.164 when the number parses, as given otherwise (short codes, alphanumeric senders).
fn normalised(number: &str) -> String {
    PhoneNumber::parse(number).map(|p| p.as_str().to_owned()).unwrap_or_else(|_| number.trim().to_owned())
}

/// `POST /twilio/sms`: a text to a tenant's number. Answered with TwiML: a `<Message>`
/// reply, or `<Response/>` for none.
pub async fn inbound(State(app): State<TelephonyState>, hook: TwilioRequest) -> Result<Response, TwilioError> {
    let text = read_inbound(&hook)?;
    let Some(tenant) = tenants::find_by_number(&app.pool, &text.to).await? else {
        tracing::warn!(sid = text.sid, to = text.to, from = text.from, "text to a number no business uses");
        let error = format!("no business uses the number {}", text.to);
        return Ok((StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": error }))).into_response());
    };
    let now = Utc::now();
    let keyword = Keyword::of(text.body);
    let mut tx = begin_tenant(&app.pool, tenant.id).await?;
    let (contact_id, known_language) = outbox::contact_for_sender(&mut tx, tenant.id, &text.from).await?;
    let received = outbox::Received {
        client_id: tenant.id,
        contact_id,
        from_number: &text.from,
        to_number: &text.to,
        body: text.body,
        sid: text.sid,
    };
    let Some(message_id) = outbox::insert_received(&mut tx, &received).await? else {
        tracing::info!(sid = text.sid, tenant_id = %tenant.id, "text delivered again; already handled");
        return Ok(xml(twiml::empty()));
    };
    let language = match (known_language.as_deref().and_then(Language::from_code), keyword.spanish) {
        (Some(known), _) => known,
        (None, true) => {
            outbox::set_contact_language_if_unknown(&mut tx, tenant.id, contact_id, Language::Spanish.code()).await?;
            Language::Spanish
        }
        (None, false) => tenant.language,
    };
    let data = serde_json::json!({
        "message_id": message_id,
        "contact_id": contact_id,
        "from": text.from,
        "to": text.to,
        "body": text.body,
        "twilio_sid": text.sid,
        "received_at": now,
    });
    webhooks::emit(&mut tx, tenant.id, EventKind::MessageReceived, data).await?;
    let opted_out = outbox::is_opted_out(&mut tx, tenant.id, &text.from).await?;
    let action = keyword.action(opted_out, || outbox::has_upcoming_appointment(&app.pool, tenant.id, &text.from, now));
    let action = action.await?;
    let reply = match action {
        Some(Action::OptOut) => {
            outbox::opt_out(&mut tx, tenant.id, &text.from, OptOutSource::Keyword).await?;
            tracing::info!(tenant_id = %tenant.id, from = text.from, "number opted out of texts");
            Some(written(language, "sms_opted_out", &business(&tenant))?)
        }
        Some(Action::OptIn) => {
            outbox::opt_in(&mut tx, tenant.id, &text.from).await?;
            tracing::info!(tenant_id = %tenant.id, from = text.from, "number opted back in to texts");
            Some(written(language, "sms_opted_in", &business(&tenant))?)
        }
        Some(Action::Help) => Some(written(language, "sms_help", &business(&tenant))?),
        None => None,
    };
    tx.commit().await?;
    publish(&app, &tenant, message_id.get(), contact_id.get(), &text, now).await;
    if let Some(reply) = reply {
        return Ok(xml(twiml::message(&reply)));
    }
    match replies::act_on_reply(&app.pool, &tenant, &text.from, text.body, now).await? {
        Some(reply) => Ok(xml(twiml::message(&reply))),
        None => {
            forward_to_owner(&app, &tenant, &text).await?;
            Ok(xml(twiml::empty()))
        }
    }
}

/// The business as the replies name it.
fn business(tenant: &Tenant) -> minijinja::Value {
    let phone = tenant.ringlypro_number.as_deref().filter(|n| !n.is_empty()).unwrap_or(&tenant.owner_phone);
    context! { business_name => tenant.business_name.as_str(), phone }
}

/// Tells the dashboard's open Messages pages; a feed that is down loses only the live
/// update (the text is stored and shows on the next load).
async fn publish(
    app: &TelephonyState,
    tenant: &Tenant,
    message_id: i64,
    contact_id: i64,
    text: &Inbound<'_>,
    now: chrono::DateTime<Utc>,
) {
    let event = TextReceived { message_id, contact_id, from: text.from.clone(), body: text.body.to_owned(), at: now };
    if let Err(e) = app.call_deps.store.publish(tenant.id, &event.to_json()).await {
        tracing::warn!(tenant_id = %tenant.id, error = %e, "could not publish a received text to the live feed");
    }
}

/// Queues the text to the owner's phone, naming the sender.
async fn forward_to_owner(app: &TelephonyState, tenant: &Tenant, text: &Inbound<'_>) -> Result<(), TwilioError> {
    let mut tx = begin_tenant(&app.pool, tenant.id).await?;
    let name = crate::storage::postgres::contacts::find_by_phone(&mut tx, tenant.id, &text.from)
        .await?
        .map(|c| c.name)
        .unwrap_or_default();
    let language = crate::storage::postgres::tenants::owner_language(&mut tx, tenant.id).await?;
    let body =
        written(language, "owner_text_forward", &context! { name, phone => text.from.as_str(), text => text.body })?;
    messages::queue(
        &mut tx,
        &NewMessage {
            client_id: tenant.id,
            contact_id: None,
            call_id: None,
            direction: Direction::Outbound,
            kind: "owner_forward",
            to_number: &tenant.owner_phone,
            from_number: tenant.ringlypro_number.as_deref().unwrap_or_default(),
            body: &body,
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %tenant.id, from = text.from, "text forwarded to the owner");
    Ok(())
}

/// What an inbound text asks of the texting itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    OptOut,
    OptIn,
    Help,
}

/// The one-word commands a text may be, and whether it was written in Spanish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Keyword {
    word: Option<Word>,
    spanish: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Word {
    Stop,
    /// An opt-out only when the sender has no appointment to cancel.
    Cancel,
    Start,
    /// An opt-in only when the sender has opted out (otherwise it confirms).
    Yes,
    Help,
}

impl Keyword {
    /// Twilio's rule: the whole text, one word, any case; trailing punctuation is forgiven.
    fn of(body: &str) -> Self {
        let word = body.trim().trim_end_matches(['.', '!', '?']).trim().to_uppercase();
        let (word, spanish) = match word.as_str() {
            "STOP" | "STOPALL" | "UNSUBSCRIBE" | "END" | "QUIT" | "REVOKE" | "OPTOUT" => (Some(Word::Stop), false),
            "CANCEL" => (Some(Word::Cancel), false),
            "START" | "UNSTOP" => (Some(Word::Start), false),
            "YES" => (Some(Word::Yes), false),
            "HELP" | "INFO" => (Some(Word::Help), false),
            "AYUDA" => (Some(Word::Help), true),
            "CANCELAR" | "CONFIRMAR" | "SÍ" | "SI" | "REPROGRAMAR" => (None, true),
            _ => (None, false),
        };
        Self { word, spanish }
    }

    /// What the text does here; `upcoming` says whether the sender has an appointment
    /// coming (asked only for CANCEL).
    async fn action<F, Fut>(self, opted_out: bool, upcoming: F) -> sqlx::Result<Option<Action>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = sqlx::Result<bool>>,
    {
        Ok(match self.word {
            Some(Word::Stop) => Some(Action::OptOut),
            Some(Word::Cancel) if !upcoming().await? => Some(Action::OptOut),
            Some(Word::Start) => Some(Action::OptIn),
            Some(Word::Yes) if opted_out => Some(Action::OptIn),
            Some(Word::Help) => Some(Action::Help),
            Some(Word::Cancel | Word::Yes) | None => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn action(body: &str, opted_out: bool, upcoming: bool) -> Option<Action> {
        Keyword::of(body).action(opted_out, || async move { Ok(upcoming) }).await.unwrap()
    }

    #[tokio::test]
    async fn opt_out_words_opt_out_in_any_case_with_trailing_punctuation() {
        for word in ["STOP", "stop", " Stop. ", "STOPALL", "unsubscribe", "END", "quit", "REVOKE", "optout!"] {
            assert_eq!(action(word, false, true).await, Some(Action::OptOut), "{word}");
        }
        assert_eq!(action("please stop calling", false, false).await, None);
    }

    #[tokio::test]
    async fn cancel_opts_out_only_without_an_upcoming_appointment() {
        assert_eq!(action("CANCEL", false, false).await, Some(Action::OptOut));
        assert_eq!(action("cancel", false, true).await, None);
    }

    #[tokio::test]
    async fn yes_opts_back_in_only_when_opted_out_and_start_always_does() {
        assert_eq!(action("YES", true, false).await, Some(Action::OptIn));
        assert_eq!(action("yes", false, false).await, None);
        assert_eq!(action("start", false, false).await, Some(Action::OptIn));
        assert_eq!(action("UNSTOP", true, false).await, Some(Action::OptIn));
    }

    #[tokio::test]
    async fn help_words_ask_for_help_and_ayuda_is_spanish() {
        assert_eq!(action("HELP", false, false).await, Some(Action::Help));
        assert_eq!(action("info", false, false).await, Some(Action::Help));
        assert_eq!(Keyword::of("Ayuda"), Keyword { word: Some(Word::Help), spanish: true });
        assert!(Keyword::of("sí").spanish);
        assert!(Keyword::of("CANCELAR").spanish);
        assert!(!Keyword::of("hello").spanish);
    }

    #[test]
    fn replies_are_escaped_twiml() {
        assert_eq!(
            twiml::message("Tom & Jerry <3"),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>Tom &amp; Jerry &lt;3</Message></Response>"#
        );
        assert!(twiml::empty().ends_with("<Response/>"));
    }
}
