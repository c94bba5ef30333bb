//! The owner's CRM: contacts, the appointment agenda and SMS messages, as pages under
//! `/app/...` and their JSON twins under `/api/...`. Every read and write goes through a
//! tenant transaction and names the tenant in its `WHERE`; another tenant's ids are 404.

pub mod appointments;
pub mod contacts;
pub mod messages;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::Value;

use crate::storage::postgres::tenants::{self, Tenant};
use crate::web::Error;
use crate::web::WebState;
use crate::web::auth::Owner;

/// The OpenAPI description of the CRM's JSON routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        contacts::api_list,
        contacts::api_create,
        contacts::api_show,
        contacts::api_update,
        contacts::api_delete,
        appointments::api_list,
        appointments::api_create,
        appointments::api_show,
        appointments::api_update,
        appointments::api_cancel,
        messages::api_threads,
        messages::api_thread,
        messages::api_send,
    ),
    components(schemas(
        contacts::ContactInput,
        contacts::ContactList,
        contacts::ContactDetail,
        contacts::TimelineEntry,
        crate::storage::postgres::contacts::Contact,
        appointments::AppointmentInput,
        appointments::AppointmentChange,
        appointments::Minutes,
        appointments::AppointmentView,
        appointments::AppointmentList,
        messages::SendInput,
        messages::ThreadList,
        messages::ThreadView,
        messages::Sent,
        crate::storage::postgres::messages::Thread,
        crate::storage::postgres::messages::Line,
        crate::storage::postgres::email_outbox::WaitingEmail,
        ApiError,
    )),
    tags((name = "crm", description = "Contacts, appointments and messages of the signed-in tenant"))
)]
pub struct CrmApi;

/// The shape of every error answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ApiError {
    /// What went wrong, for a person to act on.
    pub error: String,
    /// The field at fault, when one is.
    pub field: Option<String>,
    /// Where the thing in the way lives (a duplicate contact).
    pub link: Option<String>,
}

/// The signed-in owner's tenant.
pub(crate) async fn tenant_of(app: &WebState, owner: &Owner) -> Result<Tenant, Error> {
    tenants::find(&app.pool, owner.client_id)
        .await?
        .ok_or_else(|| Error::NotFound("this account's business no longer exists".into()))
}

/// The tenant's time zone.
pub(crate) fn zone(tenant: &Tenant) -> Tz {
    tenant.timezone
}

/// An instant as the owner reads it: `Tue Mar 4, 2:30 PM`.
pub(crate) fn local_time(tz: Tz, at: DateTime<Utc>) -> String {
    at.with_timezone(&tz).format("%a %b %-d, %-I:%M %p").to_string()
}

/// The owner, for templates (the layout's nav and every form's CSRF token).
pub(crate) fn owner_value(owner: &Owner) -> Value {
    value(owner)
}

/// Anything serialisable, for a template.
pub(crate) fn value<T: serde::Serialize>(v: &T) -> Value {
    Value::from(minijinja::value::Serde(v))
}

/// A rendered page with another status (a form sent back with its mistakes).
pub(crate) fn with_status(status: StatusCode, page: Result<Response, Error>) -> Response {
    match page {
        Ok(mut response) => {
            *response.status_mut() = status;
            response
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /contacts`, `/appointments`, `/messages`: the tabs' short addresses.
pub async fn to_contacts() -> Redirect {
    Redirect::to("/app/contacts")
}

pub async fn to_appointments() -> Redirect {
    Redirect::to("/app/appointments")
}

pub async fn to_messages() -> Redirect {
    Redirect::to("/app/messages")
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    use super::CrmApi;

    #[test]
    fn the_openapi_document_describes_every_crm_route() {
        let doc = CrmApi::openapi();
        let paths: Vec<&str> = doc.paths.paths.keys().map(String::as_str).collect();
        for path in [
            "/api/contacts",
            "/api/contacts/{id}",
            "/api/appointments",
            "/api/appointments/{id}",
            "/api/messages",
            "/api/messages/{contact_id}",
        ] {
            assert!(paths.contains(&path), "{path} missing from {paths:?}");
        }
        let schemas = doc.components.expect("components").schemas;
        assert!(schemas.contains_key("ContactInput") && schemas.contains_key("SendInput"));
    }
}
