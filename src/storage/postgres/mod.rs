//! PostgreSQL: connecting (creating the database if needed), migrating, and opening
//! tenant-scoped transactions that row-level security filters.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool, Postgres, Transaction};

use crate::domain::ids;
use crate::domain::ids::TenantId;

pub mod admin;
pub mod api_keys;
pub mod appointments;
pub mod call_history;
pub mod calls;
pub mod contacts;
pub mod credit_reports;
pub mod credits;
pub mod email_outbox;
pub mod gohighlevel;
pub mod google;
pub mod login_failures;
pub mod messages;
pub mod numbers;
pub mod oauth_states;
pub mod outbox;
pub mod password_resets;
pub mod recordings;
pub mod reminders;
pub mod sessions;
pub mod settings;
pub mod summaries;
pub mod sync_jobs;
pub mod tenants;
pub mod today;
pub mod users;
pub mod webhooks;

/// Stores each named enum as its text (`names::named!`): encoded with `as_str`, decoded
/// with `FromStr`, so a stored name no variant has fails the read instead of passing as text.
macro_rules! text_columns {
    ($($t:ty),+ $(,)?) => {$(
        impl sqlx::Type<Postgres> for $t {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <String as sqlx::Type<Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <String as sqlx::Type<Postgres>>::compatible(ty)
            }
        }

        impl sqlx::Encode<'_, Postgres> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, Postgres> for $t {
            fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(<&str as sqlx::Decode<Postgres>>::decode(value)?.parse()?)
            }
        }
    )+};
}

text_columns!(
    crate::domain::calls::Outcome,
    crate::domain::calls::HandledBy,
    crate::domain::calls::Speaker,
    crate::domain::credits::NotCharged,
    crate::domain::appointments::AppointmentStatus,
    crate::domain::appointments::BookingSource,
    crate::domain::messages::Direction,
);

/// Stores each id as its `bigint`.
macro_rules! id_columns {
    ($($t:ty),+ $(,)?) => {$(
        impl sqlx::Type<Postgres> for $t {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <i64 as sqlx::Type<Postgres>>::type_info()
            }
        }

        impl sqlx::Encode<'_, Postgres> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <i64 as sqlx::Encode<Postgres>>::encode(self.0, buf)
            }
        }

        impl<'r> sqlx::Decode<'r, Postgres> for $t {
            fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                <i64 as sqlx::Decode<Postgres>>::decode(value).map(Self)
            }
        }

        impl sqlx::postgres::PgHasArrayType for $t {
            fn array_type_info() -> sqlx::postgres::PgTypeInfo {
                <i64 as sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }
    )+};
}

id_columns!(ids::TenantId, ids::CallId, ids::ContactId, ids::AppointmentId, ids::UserId, ids::MessageId);

/// The embedded migrations in `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Creates the database named in `url` when it does not exist yet.
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(url).context("DATABASE_URL is not a PostgreSQL URL")?;
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let mut admin = options
        .clone()
        .database("postgres")
        .log_statements(tracing::log::LevelFilter::Debug)
        .connect()
        .await
        .with_context(|| format!("cannot reach PostgreSQL at {}", options.get_host()))?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut admin)
        .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}"))).execute(&mut admin).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it between our check and our CREATE.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e).context("could not create the database"),
        }
    }
    admin.close().await.ok();
    Ok(())
}

/// The role application connections run as (created by migration 0008).
pub const APP_ROLE: &str = "ringlypro_app";

/// Opens a pool of 20 connections (creating the database first if needed).
pub async fn connect(url: &str) -> anyhow::Result<PgPool> {
    connect_with_size(url, 20).await
}

/// Opens a pool of `size` connections (creating the database first if needed).
pub async fn connect_with_size(url: &str, size: u32) -> anyhow::Result<PgPool> {
    ensure_database(url).await?;
    let options = PgConnectOptions::from_str(url)?.log_statements(tracing::log::LevelFilter::Debug);
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .context("cannot connect to PostgreSQL")
}

/// The application's pool: every connection runs as [`APP_ROLE`] (not the tables' owner,
/// not a superuser, under row-level security), whatever user the URL names. Migrations
/// must have run (they create the role).
pub async fn connect_as_app(url: &str, size: u32) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url)?.log_statements(tracing::log::LevelFilter::Debug);
    PgPoolOptions::new()
        .max_connections(size)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query(sqlx::AssertSqlSafe(format!("SET ROLE {APP_ROLE}"))).execute(&mut *conn).await?;
                Ok(())
            })
        })
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .context("cannot connect to PostgreSQL")
}

/// Applies every pending migration.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.context("migrations failed")
}

/// A transaction scoped to one tenant: it runs as the `ringlypro_tenant` role with
/// `app.client_id` set, so row-level security hides every other tenant's rows even from
/// a query that forgot its `WHERE client_id`.
pub async fn begin_tenant(pool: &PgPool, client_id: TenantId) -> sqlx::Result<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    // One round trip for both: `set_config('role', …, true)` is `SET LOCAL ROLE`.
    sqlx::query("SELECT set_config('app.client_id', $1, true), set_config('role', 'ringlypro_tenant', true)")
        .bind(client_id.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Whether the database answers.
pub async fn ping(pool: &PgPool) -> bool {
    tokio::time::timeout(Duration::from_secs(2), sqlx::query("SELECT 1").execute(pool)).await.is_ok_and(|r| r.is_ok())
}

/// The name of the constraint a database error violated, if any.
pub fn violated_constraint(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(e) => e.constraint().map(str::to_owned),
        _ => None,
    }
}
