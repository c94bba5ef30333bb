//! Contacts: the people who call a tenant, one per phone number per tenant.

use sqlx::PgConnection;

/// Finds the tenant's contact with this phone or creates it; a known name is kept unless
/// the contact had none.
pub async fn upsert_by_phone(conn: &mut PgConnection, client_id: i64, phone: &str, name: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO contacts (client_id, phone, name, last_contacted_at) VALUES ($1, $2, $3, now()) \
         ON CONFLICT (client_id, phone) DO UPDATE SET \
             name = CASE WHEN contacts.name = '' THEN EXCLUDED.name ELSE contacts.name END, \
             last_contacted_at = now(), updated_at = now() \
         RETURNING id",
    )
    .bind(client_id)
    .bind(phone)
    .bind(name)
    .fetch_one(conn)
    .await
}
