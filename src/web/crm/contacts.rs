//! Contacts: `/app/contacts` (search, add), `/app/contacts/{id}` (edit, delete, the
//! timeline of calls, messages and appointments) and `/api/contacts...`. Phone numbers
//! are stored E.164 and are unique per tenant: a clash names the contact that has it.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{local_time, owner_value, tenant_of, value, with_status, zone};
use crate::domain::accounts::{Email, FieldError};
use crate::domain::ids::ContactId;
use crate::domain::phone::PhoneNumber;
use crate::storage::postgres::begin_tenant;
use crate::storage::postgres::contacts::{self, Contact, ContactError, ContactFields, Event};
use crate::web::Error;
use crate::web::WebState;
use crate::web::auth::Owner;
use crate::web::json_body::JsonBody;
use crate::web::shell::render;

const LIST_LIMIT: i64 = 200;
const TIMELINE_LIMIT: i64 = 200;

/// A contact as typed: every field optional on the way in (a PATCH sends only changes).
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ContactInput {
    pub name: Option<String>,
    /// Any common spelling; stored E.164 (`+15551234567`).
    pub phone: Option<String>,
    pub email: Option<String>,
    pub notes: Option<String>,
}

/// A contact's fields after checking.
#[derive(Debug, Clone)]
struct Valid {
    name: String,
    phone: PhoneNumber,
    email: Option<String>,
    notes: String,
}

impl ContactInput {
    /// `self` over `base`: what a PATCH leaves out keeps its value.
    fn over(self, base: &Contact) -> ContactInput {
        ContactInput {
            name: self.name.or_else(|| Some(base.name.clone())),
            phone: self.phone.or_else(|| Some(base.phone.clone())),
            email: self.email.or_else(|| base.email.clone()),
            notes: self.notes.or_else(|| Some(base.notes.clone())),
        }
    }

    fn validate(&self) -> Result<Valid, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = self.name.as_deref().unwrap_or_default().trim().to_owned();
        if name.chars().count() > 100 {
            errors.push(FieldError::new("name", "use at most 100 characters for the name"));
        }
        let phone = match PhoneNumber::parse(self.phone.as_deref().unwrap_or_default()) {
            Ok(phone) => Some(phone),
            Err(e) => {
                errors.push(FieldError::new("phone", format!("{e}, e.g. (555) 123-4567 or +44 20 7946 0958")));
                None
            }
        };
        let email = match self.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
            None => None,
            Some(text) => match Email::parse(text) {
                Ok(email) => Some(email.as_str().to_owned()),
                Err(e) => {
                    errors.push(FieldError::new("email", e.to_string()));
                    None
                }
            },
        };
        let notes = self.notes.as_deref().unwrap_or_default().trim().to_owned();
        if notes.chars().count() > 4000 {
            errors.push(FieldError::new("notes", "use at most 4000 characters for notes"));
        }
        match (phone, errors.is_empty()) {
            (Some(phone), true) => Ok(Valid { name, phone, email, notes }),
            _ => Err(errors),
        }
    }
}

/// `GET /api/contacts`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ContactList {
    pub contacts: Vec<Contact>,
}

/// One event of a contact's history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    /// `call`, `message` or `appointment`.
    pub kind: String,
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `at` in the tenant's time zone, as shown on the page.
    pub local_time: String,
    pub summary: String,
}

/// `GET /api/contacts/{id}`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ContactDetail {
    pub contact: Contact,
    /// Newest first.
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default)]
pub struct SearchQuery {
    /// Part of a name, email or phone number.
    pub q: String,
}

fn summary(event: &Event) -> String {
    match event.kind.as_str() {
        "call" => {
            let length = event.amount.map(|s| format!(", {}:{:02}", s / 60, s % 60)).unwrap_or_default();
            let outcome = if event.text == "none" { String::new() } else { format!(" · {}", event.text) };
            format!("{} call{outcome}{length}", capitalised(&event.state))
        }
        "message" => {
            let verb = if event.state == "inbound" { "Received" } else { "Sent" };
            format!("{verb}: {}", event.text)
        }
        _ => format!(
            "Appointment ({}), {} min, code {}",
            event.state.replace('_', " "),
            event.amount.unwrap_or_default(),
            event.text
        ),
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn entries(tz: Tz, events: &[Event]) -> Vec<TimelineEntry> {
    events
        .iter()
        .map(|e| TimelineEntry {
            kind: e.kind.clone(),
            id: e.id,
            at: e.at,
            local_time: local_time(tz, e.at),
            summary: summary(e),
        })
        .collect()
}

/// The clash with another contact's number as an error naming (and linking) it.
fn phone_taken(existing: &Contact) -> Error {
    let who = if existing.name.is_empty() { existing.phone.clone() } else { existing.name.clone() };
    Error::Conflict {
        message: format!("{who} already has the number {}; open that contact instead", existing.phone),
        field: Some("phone"),
        link: Some(format!("/app/contacts/{}", existing.id)),
    }
}

/// Saves a new contact (`id` None) or new fields of one; duplicates by phone are refused.
async fn save(app: &WebState, owner: &Owner, id: Option<ContactId>, valid: &Valid) -> Result<Contact, Error> {
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    if let Some(existing) = contacts::find_by_phone(&mut tx, owner.client_id, valid.phone.as_str()).await?
        && Some(existing.id) != id
    {
        return Err(phone_taken(&existing));
    }
    let fields = ContactFields {
        name: &valid.name,
        phone: valid.phone.as_str(),
        email: valid.email.as_deref(),
        notes: &valid.notes,
    };
    let saved = match id {
        None => contacts::insert(&mut tx, owner.client_id, &fields, "manual").await.map(Some),
        Some(id) => contacts::update(&mut tx, owner.client_id, id, &fields).await,
    };
    match saved {
        Ok(Some(contact)) => {
            tx.commit().await?;
            Ok(contact)
        }
        Ok(None) => Err(not_found()),
        Err(ContactError::PhoneTaken) => {
            // Another request took the number between our check and our write.
            drop(tx);
            let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
            match contacts::find_by_phone(&mut tx, owner.client_id, valid.phone.as_str()).await? {
                Some(existing) => Err(phone_taken(&existing)),
                None => Err(Error::Conflict {
                    message: "another contact took this number a moment ago; try again".into(),
                    field: Some("phone"),
                    link: None,
                }),
            }
        }
        Err(ContactError::Database(e)) => Err(e.into()),
    }
}

fn not_found() -> Error {
    Error::NotFound("no such contact".into())
}

async fn detail(app: &WebState, owner: &Owner, id: ContactId) -> Result<(Contact, Vec<Event>), Error> {
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let contact = contacts::find(&mut tx, owner.client_id, id).await?.ok_or_else(not_found)?;
    let events = contacts::timeline(&mut tx, owner.client_id, id, &contact.phone, TIMELINE_LIMIT).await?;
    tx.commit().await?;
    Ok((contact, events))
}

async fn search(app: &WebState, owner: &Owner, q: &str) -> Result<Vec<Contact>, Error> {
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let found = contacts::search(&mut tx, owner.client_id, q, LIST_LIMIT).await?;
    tx.commit().await?;
    Ok(found)
}

/// `GET /api/contacts?q=`
#[utoipa::path(get, path = "/api/contacts", tag = "crm", params(SearchQuery),
    responses((status = 200, body = ContactList), (status = 401, body = super::ApiError)))]
pub async fn api_list(
    State(app): State<WebState>,
    owner: Owner,
    Query(query): Query<SearchQuery>,
) -> Result<Json<ContactList>, Error> {
    Ok(Json(ContactList { contacts: search(&app, &owner, &query.q).await? }))
}

/// `POST /api/contacts`
#[utoipa::path(post, path = "/api/contacts", tag = "crm", request_body = ContactInput,
    responses((status = 201, body = Contact), (status = 400, body = super::ApiError),
              (status = 409, description = "another contact has this phone", body = super::ApiError)))]
pub async fn api_create(
    State(app): State<WebState>,
    owner: Owner,
    JsonBody(input): JsonBody<ContactInput>,
) -> Result<Response, Error> {
    let valid = input.validate().map_err(Error::Invalid)?;
    let contact = save(&app, &owner, None, &valid).await?;
    Ok((StatusCode::CREATED, Json(contact)).into_response())
}

/// `GET /api/contacts/{id}`
#[utoipa::path(get, path = "/api/contacts/{id}", tag = "crm", params(("id" = i64, Path)),
    responses((status = 200, body = ContactDetail), (status = 404, body = super::ApiError)))]
pub async fn api_show(
    State(app): State<WebState>,
    owner: Owner,
    Path(id): Path<ContactId>,
) -> Result<Json<ContactDetail>, Error> {
    let tenant = tenant_of(&app, &owner).await?;
    let (contact, events) = detail(&app, &owner, id).await?;
    Ok(Json(ContactDetail { contact, timeline: entries(zone(&tenant), &events) }))
}

/// `PATCH /api/contacts/{id}`: only the fields sent change.
#[utoipa::path(patch, path = "/api/contacts/{id}", tag = "crm", params(("id" = i64, Path)),
    request_body = ContactInput,
    responses((status = 200, body = Contact), (status = 400, body = super::ApiError),
              (status = 404, body = super::ApiError), (status = 409, body = super::ApiError)))]
pub async fn api_update(
    State(app): State<WebState>,
    owner: Owner,
    Path(id): Path<ContactId>,
    JsonBody(input): JsonBody<ContactInput>,
) -> Result<Json<Contact>, Error> {
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let current = contacts::find(&mut tx, owner.client_id, id).await?.ok_or_else(not_found)?;
    tx.commit().await?;
    let valid = input.over(&current).validate().map_err(Error::Invalid)?;
    Ok(Json(save(&app, &owner, Some(id), &valid).await?))
}

/// `DELETE /api/contacts/{id}`: the contact goes; its history stays, unlinked.
#[utoipa::path(delete, path = "/api/contacts/{id}", tag = "crm", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = super::ApiError)))]
pub async fn api_delete(
    State(app): State<WebState>,
    owner: Owner,
    Path(id): Path<ContactId>,
) -> Result<StatusCode, Error> {
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let deleted = contacts::delete(&mut tx, owner.client_id, id).await?;
    tx.commit().await?;
    if deleted { Ok(StatusCode::NO_CONTENT) } else { Err(not_found()) }
}

fn errors_of(error: &Error) -> Option<(StatusCode, HashMap<&'static str, String>, Option<String>)> {
    match error {
        Error::Invalid(fields) => {
            Some((error.status(), fields.iter().map(|f| (f.field, f.message.clone())).collect(), None))
        }
        Error::Conflict { message, field, link } => {
            Some((error.status(), HashMap::from([(field.unwrap_or("phone"), message.clone())]), link.clone()))
        }
        _ => None,
    }
}

async fn list_page(
    app: &WebState,
    owner: &Owner,
    q: &str,
    form: &ContactInput,
    errors: HashMap<&'static str, String>,
    existing_link: Option<String>,
) -> Result<Response, Error> {
    let found = search(app, owner, q).await?;
    let tenant = tenant_of(app, owner).await?;
    let tz = zone(&tenant);
    let rows: Vec<_> = found
        .iter()
        .map(|c| {
            context! {
                id => c.id.get(), name => c.name.as_str(), phone => c.phone.as_str(),
                formatted => PhoneNumber::parse(&c.phone).map(|p| p.formatted()).unwrap_or_else(|_| c.phone.clone()),
                email => c.email.as_deref(),
                last => c.last_contacted_at.map(|t| local_time(tz, t)),
            }
        })
        .collect();
    let open_form = !errors.is_empty();
    render(
        &app.templates,
        "contacts.html",
        context! { owner => owner_value(owner), active => "contacts", q, contacts => rows, form => value(form), errors, existing_link, open_form },
    )
}

/// `GET /app/contacts?q=`
pub async fn page(
    State(app): State<WebState>,
    owner: Owner,
    Query(query): Query<SearchQuery>,
) -> Result<Response, Error> {
    list_page(&app, &owner, &query.q, &ContactInput::default(), HashMap::new(), None).await
}

/// `POST /app/contacts`: adds a contact and opens it; mistakes come back on the form.
pub async fn create(
    State(app): State<WebState>,
    owner: Owner,
    Form(form): Form<ContactInput>,
) -> Result<Response, Error> {
    let result = match form.validate() {
        Ok(valid) => save(&app, &owner, None, &valid).await,
        Err(fields) => Err(Error::Invalid(fields)),
    };
    match result {
        Ok(contact) => Ok(Redirect::to(&format!("/app/contacts/{}", contact.id)).into_response()),
        Err(e) => match errors_of(&e) {
            Some((status, errors, link)) => {
                Ok(with_status(status, list_page(&app, &owner, "", &form, errors, link).await))
            }
            None => Err(e),
        },
    }
}

async fn contact_page(
    app: &WebState,
    owner: &Owner,
    id: ContactId,
    form: Option<&ContactInput>,
    errors: HashMap<&'static str, String>,
    existing_link: Option<String>,
) -> Result<Response, Error> {
    let tenant = tenant_of(app, owner).await?;
    let (contact, events) = detail(app, owner, id).await?;
    let form = form.cloned().unwrap_or_else(|| ContactInput::default().over(&contact));
    let blocked = crate::web::blocked::is_on_list(app, owner, &contact.phone).await?;
    render(
        &app.templates,
        "contact.html",
        context! {
            owner => owner_value(owner), active => "contacts",
            contact => value(&contact), form => value(&form), errors, existing_link, blocked,
            formatted => PhoneNumber::parse(&contact.phone).map(|p| p.formatted()).unwrap_or_else(|_| contact.phone.clone()),
            timeline => value(&entries(zone(&tenant), &events)),
            timezone => tenant.timezone.name(),
            book_query => serde_urlencoded::to_string([("name", contact.name.as_str()), ("phone", contact.phone.as_str())])
                .unwrap_or_default(),
        },
    )
}

/// `GET /app/contacts/{id}`: the contact, its edit form and its timeline.
pub async fn show(State(app): State<WebState>, owner: Owner, Path(id): Path<ContactId>) -> Result<Response, Error> {
    contact_page(&app, &owner, id, None, HashMap::new(), None).await
}

/// `POST /app/contacts/{id}`: saves the edit form.
pub async fn update(
    State(app): State<WebState>,
    owner: Owner,
    Path(id): Path<ContactId>,
    Form(form): Form<ContactInput>,
) -> Result<Response, Error> {
    let result = match form.validate() {
        Ok(valid) => save(&app, &owner, Some(id), &valid).await,
        Err(fields) => Err(Error::Invalid(fields)),
    };
    match result {
        Ok(contact) => Ok(Redirect::to(&format!("/app/contacts/{}?saved=1", contact.id)).into_response()),
        Err(e) => match errors_of(&e) {
            Some((status, errors, link)) => {
                Ok(with_status(status, contact_page(&app, &owner, id, Some(&form), errors, link).await))
            }
            None => Err(e),
        },
    }
}

/// `POST /app/contacts/{id}/delete`
pub async fn delete(State(app): State<WebState>, owner: Owner, Path(id): Path<ContactId>) -> Result<Response, Error> {
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let deleted = contacts::delete(&mut tx, owner.client_id, id).await?;
    tx.commit().await?;
    if !deleted {
        return Err(not_found());
    }
    Ok(Redirect::to("/app/contacts").into_response())
}
