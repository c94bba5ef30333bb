//! Messages: `/app/messages` (SMS conversations per contact, latest first, other texts
//! such as alerts to the owner, and the emails waiting to be sent), one conversation,
//! and sending a text, plus `/api/messages...`. No SMS carrier is wired in yet, so a
//! text sent here waits in the outbox (`queued`) and the page says so.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{local_time, owner_value, tenant_of, value, with_status, zone};
use crate::domain::accounts::FieldError;
use crate::domain::ids::ContactId;
use crate::domain::phone::PhoneNumber;
use crate::storage::postgres::begin_tenant;
use crate::storage::postgres::contacts::{self, Contact, ContactError, ContactFields};
use crate::storage::postgres::email_outbox::{self, WaitingEmail};
use crate::storage::postgres::messages::{self, Line, NewMessage, Thread};
use crate::storage::postgres::tenants::Tenant;
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
/// What the owner is told about a text sent from here.
const QUEUED_NOTICE: &str = "Queued: text sending is not switched on yet, so this message waits in the outbox \
     and goes out once it is. Nothing is lost.";

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

/// `GET /api/messages`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ThreadList {
    /// One per contact, latest first.
    pub threads: Vec<Thread>,
    /// Texts tied to no contact (alerts to the owner), newest first.
    pub other: Vec<Line>,
    /// The tenant's emails not sent yet.
    pub emails_waiting: Vec<WaitingEmail>,
}

/// `GET /api/messages/{contact_id}`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ThreadView {
    pub contact: Contact,
    /// Oldest first.
    pub messages: Vec<Line>,
}

/// `POST /api/messages`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Sent {
    pub message: Line,
    /// Why the message is `queued`.
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

async fn overview(app: &WebState, owner: &Owner) -> Result<ThreadList, Error> {
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let threads = messages::threads(&mut tx, owner.client_id, THREADS_LIMIT).await?;
    let other = messages::without_contact(&mut tx, owner.client_id, OTHERS_LIMIT).await?;
    let emails_waiting = email_outbox::waiting(&mut tx, owner.client_id, EMAILS_LIMIT).await?;
    tx.commit().await?;
    Ok(ThreadList { threads, other, emails_waiting })
}

async fn conversation(app: &WebState, owner: &Owner, contact_id: ContactId) -> Result<ThreadView, Error> {
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let contact = contacts::find(&mut tx, owner.client_id, contact_id).await?.ok_or_else(no_contact)?;
    let messages = messages::thread(&mut tx, owner.client_id, contact_id, THREAD_LIMIT).await?;
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
    Ok((StatusCode::ACCEPTED, Json(Sent { message, notice: QUEUED_NOTICE.to_owned() })).into_response())
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

fn lines(tenant: &Tenant, lines: &[Line]) -> Vec<minijinja::Value> {
    let tz = zone(tenant);
    lines
        .iter()
        .map(|m| {
            context! {
                id => m.id.get(), outbound => m.direction == messages::Direction::Outbound, body => m.body.as_str(), status => m.status.as_str(),
                kind => m.kind.replace('_', " "), to => m.to_number.as_str(), from => m.from_number.as_str(),
                time => local_time(tz, m.created_at), contact_id => m.contact_id.map(ContactId::get),
            }
        })
        .collect()
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
            queued_notice => queued.then_some(QUEUED_NOTICE),
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
