//! Users: the people who sign in (a tenant's owner, or an admin). Emails are stored
//! lower-cased and unique without regard to case (`users_email_key`).

use crate::domain::ids::{TenantId, UserId};
use sqlx::{FromRow, PgConnection, PgPool};

/// What signing in needs to know about a user.
#[derive(Debug, Clone, FromRow)]
pub struct Credentials {
    pub id: UserId,
    pub email: String,
    pub password_hash: String,
    pub is_admin: bool,
}

/// A new user's row.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
}

/// The unique index that makes an email belong to one user.
pub const EMAIL_KEY: &str = "users_email_key";

pub async fn insert(conn: &mut PgConnection, user: &NewUser<'_>) -> sqlx::Result<UserId> {
    sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, first_name, last_name) VALUES (lower($1), $2, $3, $4) RETURNING id",
    )
    .bind(user.email)
    .bind(user.password_hash)
    .bind(user.first_name)
    .bind(user.last_name)
    .fetch_one(conn)
    .await
}

pub async fn find_by_email(pool: &PgPool, email: &str) -> sqlx::Result<Option<Credentials>> {
    sqlx::query_as("SELECT id, email, password_hash, is_admin FROM users WHERE lower(email) = lower($1)")
        .bind(email)
        .fetch_optional(pool)
        .await
}

pub async fn email_taken(pool: &PgPool, email: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1))")
        .bind(email)
        .fetch_one(pool)
        .await
}

pub async fn set_password(conn: &mut PgConnection, user_id: UserId, password_hash: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(user_id)
        .bind(password_hash)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Makes `user_id` the owner of the tenant (the tenant's dashboard is theirs).
pub async fn link_to_tenant(conn: &mut PgConnection, user_id: UserId, client_id: TenantId) -> sqlx::Result<()> {
    sqlx::query("UPDATE clients SET user_id = $1, updated_at = now() WHERE id = $2")
        .bind(user_id)
        .bind(client_id)
        .execute(conn)
        .await
        .map(|_| ())
}
