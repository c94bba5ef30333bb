//! Messages: `/app/messages` (SMS conversations per contact, latest first, other texts
//! such as alerts to the owner, and the emails waiting to be sent), one conversation with
//! texts received added live, and sending a text, plus `/api/messages...`. Each text shows
//! how far it got (queued, sending, sent, delivered, failed with Twilio's error, suppressed
//! with the reason, received) and its Twilio SID; without Twilio texts stay queued and the
//! page says why.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::{local_time, owner_value, tenant_of, value, with_status, zone};
use crate::domain::accounts::FieldError;
use crate::domain::ids::ContactId;
use crate::domain::phone::PhoneNumber;
use crate::services::texting::TextReceived;
use crate::storage::postgres::begin_tenant;
use crate::storage::postgres::contacts::{self, Contact, ContactError, ContactFields};
use crate::storage::postgres::email_outbox::{self, WaitingEmail};
use crate::storage::postgres::messages::{self, Line, NewMessage, Thread};
use crate::storage::postgres::outbox::{self, Delivery};
use crate::storage::postgres::tenants::Tenant;
use crate::vendors::twilio::Twilio;
use crate::web::Error;
use crate::web::WebState;
use crate::web::auth::Owner;
use crate::web::json_body::JsonBody;
use crate::web::shell::render;

/// The longest text accepted (ten SMS segments).
pub const MAX_BODY_CHARS: usize = 1600;
const THREADS_LIMIT: i64 = 200;
const THREAD_LIMIT: i64 = 500;
const OTHERS_LIMIT: i64 = 50;
const EMAILS_LIMIT: i64 = 100;
/// What the owner is told about a text sent from here while Twilio is configured.
const QUEUED_NOTICE: &str = "Queued: the text goes out in a few seconds; its status shows beside it.";
/// Why texts stay queued when Twilio is not configured.
const NO_TWILIO_NOTICE: &str = "Queued: texts are not being sent because Twilio is not configured \
     (TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN); they wait in the outbox and go out once it is. Nothing is lost.";

/// A text to send: to a contact (`contact_id`) or to a number (`to`, any common
/// spelling; the contact is found or created).
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(default)]
pub struct SendInput {
    #[schema(value_type = Option<i64>)]
    pub contact_id: Option<ContactId>,
    pub to: Option<String>,
    /// 1 to 1600 characters.
    pub body: String,
}

/// A text with how far it got with Twilio.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TextLine {
    #[serde(flatten)]
    pub line: Line,
    #[serde(flatten)]
    pub delivery: Delivery,
}

/// `GET /api/messages`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ThreadList {
    /// One per contact, latest first.
    pub threads: Vec<Thread>,
    /// Texts tied to no contact (alerts to the owner), newest first.
    pub other: Vec<TextLine>,
    /// The tenant's emails not sent yet.
    pub emails_waiting: Vec<WaitingEmail>,
}

/// `GET /api/messages/{contact_id}`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ThreadView {
    pub contact: Contact,
    /// Oldest first.
    pub messages: Vec<TextLine>,
}

/// `POST /api/messages`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Sent {
    pub message: Line,
    /// Why the message is `queued`, and whether it will be sent.
    pub notice: String,
}

fn no_contact() -> Error {
    Error::NotFound("no such contact".into())
}

/// Checks the body and the recipient's number (when one is typed).
fn validate(input: &SendInput) -> Result<Option<PhoneNumber>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let chars = input.body.chars().count();
    if input.body.trim().is_empty() {
        errors.push(FieldError::new("body", "write the message to send"));
    } else if chars > MAX_BODY_CHARS {
        errors.push(FieldError::new(
            "body",
            format!("the message has {chars} characters; the most is {MAX_BODY_CHARS}, so shorten it or send two"),
        ));
    }
    let phone = match (input.contact_id, input.to.as_deref().map(str::trim).filter(|t| !t.is_empty())) {
        (Some(_), _) => None,
        (None, None) => {
            errors.push(FieldError::new("to", "choose a contact or type the number to text"));
            None
        }
        (None, Some(to)) => PhoneNumber::parse(to)
            .map_err(|e| errors.push(FieldError::new("to", format!("{e}, e.g. (555) 123-4567"))))
            .ok(),
    };
    if errors.is_empty() { Ok(phone) } else { Err(errors) }
}

/// Queues the text in the outbox; the contact is the one named, or found (or created)
/// by the number.
async fn send(app: &WebState, owner: &Owner, tenant: &Tenant, input: &SendInput) -> Result<Line, Error> {
    let phone = validate(input).map_err(Error::Invalid)?;
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let contact = match (input.contact_id, phone) {
        (Some(id), _) => contacts::find(&mut tx, owner.client_id, id).await?.ok_or_else(no_contact)?,
        (None, Some(phone)) => match contacts::find_by_phone(&mut tx, owner.client_id, phone.as_str()).await? {
            Some(found) => found,
            None => {
                let fields = ContactFields { name: "", phone: phone.as_str(), email: None, notes: "" };
                match contacts::insert(&mut tx, owner.client_id, &fields, "sms").await {
                    Ok(created) => created,
                    Err(ContactError::PhoneTaken) => {
                        return Err(Error::Conflict {
                            message: "a contact with this number was added a moment ago; send again".into(),
                            field: Some("to"),
                            link: None,
                        });
                    }
                    Err(ContactError::Database(e)) => return Err(e.into()),
                }
            }
        },
        (None, None) => return Err(Error::Invalid(vec![FieldError::new("to", "choose a contact or type the number")])),
    };
    let id = messages::queue(
        &mut tx,
        &NewMessage {
            client_id: owner.client_id,
            contact_id: Some(contact.id),
            call_id: None,
            direction: messages::Direction::Outbound,
            kind: "sms",
            to_number: &contact.phone,
            from_number: tenant.ringlypro_number.as_deref().unwrap_or_default(),
            body: &input.body,
        },
    )
    .await?;
    let line = messages::find_line(&mut tx, owner.client_id, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("a message just queued cannot be read back"))?;
    tx.commit().await?;
    tracing::info!(tenant_id = %owner.client_id, message_id = id.get(), "text queued in the outbox");
    Ok(line)
}

/// The lines with their delivery details.
async fn with_delivery(conn: &mut PgConnection, owner: &Owner, lines: Vec<Line>) -> Result<Vec<TextLine>, Error> {
    let ids: Vec<i64> = lines.iter().map(|l| l.id.get()).collect();
    let mut found: HashMap<i64, Delivery> =
        outbox::deliveries(conn, owner.client_id, &ids).await?.into_iter().map(|d| (d.id, d)).collect();
    Ok(lines
        .into_iter()
        .map(|line| {
            let delivery = found.remove(&line.id.get()).unwrap_or_default();
            TextLine { line, delivery }
        })
        .collect())
}

/// What the owner is told about a text queued now.
fn queued_notice(app: &WebState) -> &'static str {
    if texting_enabled(app) { QUEUED_NOTICE } else { NO_TWILIO_NOTICE }
}

fn texting_enabled(app: &WebState) -> bool {
    Twilio::from_config(&app.config).is_some()
}

async fn overview(app: &WebState, owner: &Owner) -> Result<ThreadList, Error> {
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let threads = messages::threads(&mut tx, owner.client_id, THREADS_LIMIT).await?;
    let other = messages::without_contact(&mut tx, owner.client_id, OTHERS_LIMIT).await?;
    let other = with_delivery(&mut tx, owner, other).await?;
    let emails_waiting = email_outbox::waiting(&mut tx, owner.client_id, EMAILS_LIMIT).await?;
    tx.commit().await?;
    Ok(ThreadList { threads, other, emails_waiting })
}

async fn conversation(app: &WebState, owner: &Owner, contact_id: ContactId) -> Result<ThreadView, Error> {
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let contact = contacts::find(&mut tx, owner.client_id, contact_id).await?.ok_or_else(no_contact)?;
    let messages = messages::thread(&mut tx, owner.client_id, contact_id, THREAD_LIMIT).await?;
    let messages = with_delivery(&mut tx, owner, messages).await?;
    tx.commit().await?;
    Ok(ThreadView { contact, messages })
}

/// `GET /api/messages`
#[utoipa::path(get, path = "/api/messages", tag = "crm",
    responses((status = 200, body = ThreadList), (status = 401, body = super::ApiError)))]
pub async fn api_threads(State(app): State<WebState>, owner: Owner) -> Result<Json<ThreadList>, Error> {
    Ok(Json(overview(&app, &owner).await?))
}

/// `GET /api/messages/{contact_id}`
#[utoipa::path(get, path = "/api/messages/{contact_id}", tag = "crm", params(("contact_id" = i64, Path)),
    responses((status = 200, body = ThreadView), (status = 404, body = super::ApiError)))]
pub async fn api_thread(
    State(app): State<WebState>,
    owner: Owner,
    Path(contact_id): Path<ContactId>,
) -> Result<Json<ThreadView>, Error> {
    Ok(Json(conversation(&app, &owner, contact_id).await?))
}

/// `POST /api/messages`: 202, the message queued in the outbox.
#[utoipa::path(post, path = "/api/messages", tag = "crm", request_body = SendInput,
    responses((status = 202, body = Sent), (status = 400, body = super::ApiError), (status = 404, body = super::ApiError)))]
pub async fn api_send(
    State(app): State<WebState>,
    owner: Owner,
    JsonBody(input): JsonBody<SendInput>,
) -> Result<Response, Error> {
    let tenant = tenant_of(&app, &owner).await?;
    let message = send(&app, &owner, &tenant, &input).await?;
    Ok((StatusCode::ACCEPTED, Json(Sent { message, notice: queued_notice(&app).to_owned() })).into_response())
}

/// The start of a message, for a list.
fn preview(body: &str) -> String {
    const CHARS: usize = 120;
    if body.chars().count() <= CHARS {
        body.to_owned()
    } else {
        format!("{}…", body.chars().take(CHARS).collect::<String>())
    }
}

fn lines(tenant: &Tenant, lines: &[TextLine]) -> Vec<minijinja::Value> {
    let tz = zone(tenant);
    lines
        .iter()
        .map(|TextLine { line: m, delivery: d }| {
            context! {
                id => m.id.get(), outbound => m.direction == messages::Direction::Outbound, body => m.body.as_str(), status => m.status.as_str(),
                kind => m.kind.replace('_', " "), to => m.to_number.as_str(), from => m.from_number.as_str(),
                time => local_time(tz, m.created_at), contact_id => m.contact_id.map(ContactId::get),
                sid => d.twilio_sid.as_deref(), problem => problem(&m.status, d),
            }
        })
        .collect()
}

/// Why a text did not arrive, in the owner's words: Twilio's message and code, or the
/// reason it was never sent.
fn problem(status: &str, d: &Delivery) -> Option<String> {
    match (status, d.error_message.as_deref(), d.error_code) {
        ("failed" | "undelivered" | "suppressed", Some(message), _) => Some(message.to_owned()),
        ("failed" | "undelivered", None, Some(code)) => Some(format!("Twilio error {code}")),
        _ => None,
    }
}

async fn list_page(
    app: &WebState,
    owner: &Owner,
    form: &SendInput,
    errors: HashMap<&'static str, String>,
) -> Result<Response, Error> {
    let tenant = tenant_of(app, owner).await?;
    let tz = zone(&tenant);
    let list = overview(app, owner).await?;
    let threads: Vec<_> = list
        .threads
        .iter()
        .map(|t| {
            context! {
                contact_id => t.contact_id.get(), name => t.contact_name.as_str(), phone => t.contact_phone.as_str(),
                count => t.messages, preview => preview(&t.last_body), outbound => t.last_direction == messages::Direction::Outbound,
                status => t.last_status.as_str(), time => local_time(tz, t.last_at),
            }
        })
        .collect();
    let emails: Vec<_> = list
        .emails_waiting
        .iter()
        .map(|e| {
            context! { to => e.to_address.as_str(), subject => e.subject.as_str(), kind => e.kind.replace('_', " "),
            status => e.status.as_str(), time => local_time(tz, e.created_at), reason => e.last_error.as_deref() }
        })
        .collect();
    render(
        &app.templates,
        "messages.html",
        context! {
            owner => owner_value(owner), active => "messages", threads, other => lines(&tenant, &list.other), emails,
            form => value(form), errors, max_chars => MAX_BODY_CHARS,
            mail_enabled => app.config.mail.smtp_url.is_some(),
            texting_off_notice => (!texting_enabled(app)).then_some(NO_TWILIO_NOTICE),
        },
    )
}

/// `GET /app/messages`
pub async fn page(State(app): State<WebState>, owner: Owner) -> Result<Response, Error> {
    list_page(&app, &owner, &SendInput::default(), HashMap::new()).await
}

async fn thread_page(
    app: &WebState,
    owner: &Owner,
    contact_id: ContactId,
    body: &str,
    errors: HashMap<&'static str, String>,
    queued: bool,
) -> Result<Response, Error> {
    let tenant = tenant_of(app, owner).await?;
    let view = conversation(app, owner, contact_id).await?;
    render(
        &app.templates,
        "thread.html",
        context! {
            owner => owner_value(owner), active => "messages", contact => value(&view.contact),
            messages => lines(&tenant, &view.messages), body, errors, max_chars => MAX_BODY_CHARS,
            queued_notice => queued.then_some(queued_notice(app)),
            texting_off_notice => (!texting_enabled(app)).then_some(NO_TWILIO_NOTICE),
        },
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ThreadQuery {
    queued: Option<String>,
}

/// `GET /app/messages/{contact_id}`
pub async fn thread(
    State(app): State<WebState>,
    owner: Owner,
    Path(contact_id): Path<ContactId>,
    axum::extract::Query(query): axum::extract::Query<ThreadQuery>,
) -> Result<Response, Error> {
    thread_page(&app, &owner, contact_id, "", HashMap::new(), query.queued.is_some()).await
}

/// The send form as posted (`contact_id` arrives as text, possibly empty).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SendForm {
    contact_id: String,
    to: String,
    body: String,
}

/// `POST /app/messages`: queues the text and opens its conversation; mistakes come
/// back on the form that was used, with the text kept.
pub async fn create(State(app): State<WebState>, owner: Owner, Form(form): Form<SendForm>) -> Result<Response, Error> {
    let contact_id = form.contact_id.trim().parse::<ContactId>().ok();
    let input = SendInput { contact_id, to: Some(form.to.clone()), body: form.body.clone() };
    let tenant = tenant_of(&app, &owner).await?;
    match send(&app, &owner, &tenant, &input).await {
        Ok(line) => {
            let to = line.contact_id.map(|id| format!("/app/messages/{id}?queued=1")).unwrap_or("/app/messages".into());
            Ok(Redirect::to(&to).into_response())
        }
        Err(e @ (Error::Invalid(_) | Error::Conflict { .. })) => {
            let errors: HashMap<&'static str, String> = match &e {
                Error::Invalid(fields) => fields.iter().map(|f| (f.field, f.message.clone())).collect(),
                other => HashMap::from([("to", other.public_message())]),
            };
            let page = match contact_id {
                Some(id) => thread_page(&app, &owner, id, &form.body, errors, false).await,
                None => list_page(&app, &owner, &input, errors).await,
            };
            Ok(with_status(e.status(), page))
        }
        Err(e) => Err(e),
    }
}

/// How often an idle stream carries a comment, so proxies keep it open.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// `GET /app/messages/events`: a `ready` event once subscribed, then each text received as a
/// `text` Server-Sent Event, so open conversations show it at once. Only the signed-in
/// tenant's texts.
pub async fn events(State(app): State<WebState>, owner: Owner) -> Result<Response, Error> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures::StreamExt;

    let feed = app.store.subscribe(owner.client_id).await?;
    let mut shutdown = app.registry.shutdown_signal();
    let stopping = async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    };
    // A first `ready` event tells the page the feed is open (and flushes the headers).
    let ready = Event::default().event("ready").data("{}");
    let stream = futures::stream::once(async move { ready })
        .chain(feed.filter_map(|raw| async move {
            TextReceived::from_json(&raw).map(|_| Event::default().event(TextReceived::KIND).data(raw))
        }))
        .take_until(stopping)
        .map(Ok::<_, std::convert::Infallible>);
    let mut response =
        Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")).into_response();
    let headers = response.headers_mut();
    headers.insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    // Reverse proxies must pass each event on at once.
    headers.insert("x-accel-buffering", axum::http::HeaderValue::from_static("no"));
    Ok(response)
}

/// `GET /static/messages.js`: a conversation's live feed client.
pub async fn script() -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/messages.js"),
    )
        .into_response()
}
