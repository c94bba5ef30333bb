//! Contacts: the people who call a tenant, one per phone number per tenant. Callers are
//! matched by phone here; the owner's CRM pages list, search, edit and delete them.

use crate::domain::events::EventKind;
use crate::domain::ids::{ContactId, TenantId};
use sqlx::PgConnection;

/// Finds the tenant's contact with this phone or creates it; a known name is kept unless
/// the contact had none.
pub async fn upsert_by_phone(
    conn: &mut PgConnection,
    client_id: TenantId,
    phone: &str,
    name: &str,
) -> sqlx::Result<ContactId> {
    #[derive(sqlx::FromRow)]
    struct Upserted {
        #[sqlx(flatten)]
        contact: Contact,
        created: bool,
    }
    let row: Upserted = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO contacts (client_id, phone, name, last_contacted_at) VALUES ($1, $2, $3, now()) \
         ON CONFLICT (client_id, phone) DO UPDATE SET \
             name = CASE WHEN contacts.name = '' THEN EXCLUDED.name ELSE contacts.name END, \
             last_contacted_at = now(), updated_at = now() \
         RETURNING {COLUMNS}, (xmax = 0) AS created"
    )))
    .bind(client_id)
    .bind(phone)
    .bind(name)
    .fetch_one(&mut *conn)
    .await?;
    if row.created {
        created(conn, client_id, &row.contact).await?;
    }
    Ok(row.contact.id)
}

/// Tells the business's webhooks (and its GoHighLevel queue) of a contact just created.
pub async fn announce(conn: &mut PgConnection, client_id: TenantId, id: ContactId) -> sqlx::Result<()> {
    let contact: Option<Contact> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM contacts WHERE client_id = $1 AND id = $2")))
            .bind(client_id)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    match contact {
        Some(contact) => created(conn, client_id, &contact).await,
        None => Ok(()),
    }
}

/// A contact was made: `contact.created` to the webhooks, and the contact queued for
/// GoHighLevel (never sent here).
async fn created(conn: &mut PgConnection, client_id: TenantId, contact: &Contact) -> sqlx::Result<()> {
    let data = serde_json::to_value(contact).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    super::webhooks::emit(&mut *conn, client_id, EventKind::ContactCreated, data).await?;
    changed(conn, client_id, contact.id).await
}

/// Queues the contact for GoHighLevel, where it is matched by phone.
async fn changed(conn: &mut PgConnection, client_id: TenantId, id: ContactId) -> sqlx::Result<()> {
    let subject = super::sync_jobs::Subject::Contact(id);
    super::sync_jobs::enqueue(conn, client_id, subject, super::sync_jobs::SyncAction::Upsert).await
}

/// A contact as the CRM pages show it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Contact {
    #[schema(value_type = i64)]
    pub id: ContactId,
    pub name: String,
    /// E.164, unique within the tenant.
    pub phone: String,
    pub email: Option<String>,
    pub notes: String,
    /// Where the contact came from: `voice_call`, `manual`, `sms`.
    pub source: String,
    pub last_contacted_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

const COLUMNS: &str = "id, name, phone, email, notes, source, last_contacted_at, created_at";

/// A contact's editable fields, already validated (the phone is E.164).
#[derive(Debug, Clone)]
pub struct ContactFields<'a> {
    pub name: &'a str,
    pub phone: &'a str,
    pub email: Option<&'a str>,
    pub notes: &'a str,
}

/// Why a contact could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    /// Another contact of the tenant has this number.
    #[error("another contact already has this phone number")]
    PhoneTaken,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn on_save_error(e: sqlx::Error) -> ContactError {
    match super::violated_constraint(&e).as_deref() {
        Some("contacts_client_phone_key") => ContactError::PhoneTaken,
        _ => ContactError::Database(e),
    }
}

/// `%`, `_` and `\` typed by a person match themselves in `LIKE`.
fn like_pattern(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

/// The tenant's contacts whose name, email or phone contains `query` (phone digits are
/// matched whatever the punctuation typed), most recently in touch first.
pub async fn search(
    conn: &mut PgConnection,
    client_id: TenantId,
    query: &str,
    limit: i64,
) -> sqlx::Result<Vec<Contact>> {
    let query = query.trim();
    let digits: String = query.chars().filter(char::is_ascii_digit).collect();
    let digits = if digits.len() >= 3 { Some(like_pattern(&digits)) } else { None };
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM contacts WHERE client_id = $1 \
             AND ($2 = '' OR name ILIKE $3 OR coalesce(email, '') ILIKE $3 OR phone LIKE $3 \
                  OR ($4::text IS NOT NULL AND regexp_replace(phone, '\\D', '', 'g') LIKE $4)) \
         ORDER BY coalesce(last_contacted_at, created_at) DESC, id DESC LIMIT $5"
    )))
    .bind(client_id)
    .bind(query)
    .bind(like_pattern(query))
    .bind(digits)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn find(conn: &mut PgConnection, client_id: TenantId, id: ContactId) -> sqlx::Result<Option<Contact>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM contacts WHERE client_id = $1 AND id = $2")))
        .bind(client_id)
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn find_by_phone(conn: &mut PgConnection, client_id: TenantId, phone: &str) -> sqlx::Result<Option<Contact>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM contacts WHERE client_id = $1 AND phone = $2")))
        .bind(client_id)
        .bind(phone)
        .fetch_optional(conn)
        .await
}

/// Adds a contact typed in by the owner (`source` says where it came from).
pub async fn insert(
    conn: &mut PgConnection,
    client_id: TenantId,
    fields: &ContactFields<'_>,
    source: &str,
) -> Result<Contact, ContactError> {
    let contact: Contact = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO contacts (client_id, name, phone, email, notes, source) VALUES ($1, $2, $3, $4, $5, $6) \
         RETURNING {COLUMNS}"
    )))
    .bind(client_id)
    .bind(fields.name)
    .bind(fields.phone)
    .bind(fields.email)
    .bind(fields.notes)
    .bind(source)
    .fetch_one(&mut *conn)
    .await
    .map_err(on_save_error)?;
    created(conn, client_id, &contact).await?;
    Ok(contact)
}

/// Saves new fields; `None` when the tenant has no such contact.
pub async fn update(
    conn: &mut PgConnection,
    client_id: TenantId,
    id: ContactId,
    fields: &ContactFields<'_>,
) -> Result<Option<Contact>, ContactError> {
    let updated: Option<Contact> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE contacts SET name = $3, phone = $4, email = $5, notes = $6, updated_at = now() \
         WHERE client_id = $1 AND id = $2 RETURNING {COLUMNS}"
    )))
    .bind(client_id)
    .bind(id)
    .bind(fields.name)
    .bind(fields.phone)
    .bind(fields.email)
    .bind(fields.notes)
    .fetch_optional(&mut *conn)
    .await
    .map_err(on_save_error)?;
    if let Some(contact) = &updated {
        changed(conn, client_id, contact.id).await?;
    }
    Ok(updated)
}

/// Deletes a contact; its calls, messages and appointments stay, unlinked.
pub async fn delete(conn: &mut PgConnection, client_id: TenantId, id: ContactId) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM contacts WHERE client_id = $1 AND id = $2")
        .bind(client_id)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// One thing that happened with a contact, for its timeline.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Event {
    /// `call`, `message` or `appointment`.
    pub kind: String,
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    /// Call: direction; message: direction; appointment: status.
    pub state: String,
    /// Call: outcome; message: body; appointment: confirmation code.
    pub text: String,
    /// Call: duration in seconds; appointment: length in minutes.
    pub amount: Option<i64>,
}

/// The contact's calls (linked, or from its number), messages and appointments, newest
/// first.
pub async fn timeline(
    conn: &mut PgConnection,
    client_id: TenantId,
    contact_id: ContactId,
    phone: &str,
    limit: i64,
) -> sqlx::Result<Vec<Event>> {
    sqlx::query_as(
        "SELECT * FROM ( \
             SELECT 'call' AS kind, id, started_at AS at, direction AS state, outcome AS text, \
                    duration_seconds::bigint AS amount \
             FROM calls WHERE client_id = $1 AND (contact_id = $2 OR from_number = $3) \
             UNION ALL \
             SELECT 'message', id, created_at, direction, body, NULL \
             FROM messages WHERE client_id = $1 AND contact_id = $2 \
             UNION ALL \
             SELECT 'appointment', id, starts_at, status, confirmation_code, \
                    (extract(epoch FROM ends_at - starts_at) / 60)::bigint \
             FROM appointments WHERE client_id = $1 AND contact_id = $2 \
         ) AS events ORDER BY at DESC, id DESC LIMIT $4",
    )
    .bind(client_id)
    .bind(contact_id)
    .bind(phone)
    .bind(limit)
    .fetch_all(conn)
    .await
}
