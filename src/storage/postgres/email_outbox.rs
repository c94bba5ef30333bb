//! Outgoing email. No provider is wired in yet, so every email waits here (status
//! `queued`) where the operator can read it; nothing is dropped.

use sqlx::PgConnection;

#[derive(Debug, Clone)]
pub struct NewEmail<'a> {
    pub client_id: Option<i64>,
    pub to_address: &'a str,
    pub kind: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
}

pub async fn queue(conn: &mut PgConnection, email: &NewEmail<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO email_outbox (client_id, to_address, kind, subject, body) VALUES ($1, $2, $3, $4, $5) \
         RETURNING id",
    )
    .bind(email.client_id)
    .bind(email.to_address)
    .bind(email.kind)
    .bind(email.subject)
    .bind(email.body)
    .fetch_one(conn)
    .await
}
