//! Owners' accounts: signup (user, tenant, credit account and a RinglyPro number in one
//! transaction), sign-in with per-account failure limits, sessions, and password reset by
//! an emailed single-use token. Knows nothing of HTTP or cookies.

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use minijinja::context;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::config::AccountSettings;
use crate::dialogue::prompts::written;
use crate::domain::accounts::{Email, FieldError, PasswordError, SignupForm, check_password};
use crate::domain::ids::{TenantId, UserId};
use crate::domain::language::Language;
use crate::services::numbers::{self as number_orders, NumberSource};
use crate::services::passwords::Passwords;
use crate::storage::postgres::{
    self, email_outbox, login_failures, numbers, password_resets, sessions, tenants, users,
};

/// How long a session lasts from sign-in.
pub const SESSION_DAYS: i64 = 14;
/// How long a password reset link works.
pub const RESET_TOKEN_MINUTES: i64 = 60;
/// The window over which wrong passwords for one account are counted.
pub const FAILURE_WINDOW_MINUTES: i64 = 15;

/// 32 random bytes, URL-safe: for session, CSRF and reset tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored in place of a token: its SHA-256.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

const EMAIL_TAKEN: &str = "an account with this email already exists; sign in, or reset your password if you forgot it";

#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    /// One message per field that needs fixing.
    #[error("{}", .0.first().map(|e| e.message.as_str()).unwrap_or("the form has problems"))]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A new owner with their tenant.
#[derive(Debug, Clone)]
pub struct SignedUp {
    pub user_id: UserId,
    pub client_id: TenantId,
    /// `None` when the pool had no free number: the tenant waits for one.
    pub ringlypro_number: Option<String>,
}

/// Creates the owner's user, their tenant, its credit account, and gives the tenant a
/// free number from the pool or, when the pool is empty and a Twilio account is
/// configured, orders one, all or nothing.
pub async fn signup(
    pool: &PgPool,
    passwords: &Passwords,
    form: &SignupForm,
    source: NumberSource,
) -> Result<SignedUp, SignupError> {
    let valid = form.validate().map_err(SignupError::Invalid)?;
    if users::email_taken(pool, valid.email.as_str()).await.context("checking the email")? {
        return Err(SignupError::Invalid(vec![FieldError::new("email", EMAIL_TAKEN)]));
    }
    let password_hash = passwords.hash(&valid.password).await?;
    let (first_name, last_name) = valid.owner_name.split_once(' ').unwrap_or((&valid.owner_name, ""));
    let mut tx = pool.begin().await.context("starting signup")?;
    let new_user = users::NewUser {
        email: valid.email.as_str(),
        password_hash: &password_hash,
        first_name,
        last_name: last_name.trim(),
    };
    let user_id = match users::insert(&mut tx, &new_user).await {
        Ok(id) => id,
        // Someone signed up with this email between our check and our insert.
        Err(e) if postgres::violated_constraint(&e).as_deref() == Some(users::EMAIL_KEY) => {
            return Err(SignupError::Invalid(vec![FieldError::new("email", EMAIL_TAKEN)]));
        }
        Err(e) => return Err(anyhow::Error::from(e).context("creating the user").into()),
    };
    let timezone = valid.timezone;
    let client_id = tenants::insert_signed_up(
        &mut tx,
        &tenants::SignedUpTenant {
            user_id,
            business_name: &valid.business_name,
            business_phone: valid.business_phone.as_str(),
            business_type: valid.business_type.as_deref(),
            owner_name: &valid.owner_name,
            owner_phone: valid.owner_phone.as_str(),
            owner_email: valid.email.as_str(),
            timezone,
        },
    )
    .await
    .context("creating the tenant")?;
    // A number already in the pool (bought and pointed at us by the operator) goes first;
    // with a Twilio account, an empty pool means one is bought after signup.
    let ringlypro_number = numbers::assign_free(&mut tx, client_id).await.context("assigning a number")?;
    if ringlypro_number.is_none() && source == NumberSource::Twilio {
        number_orders::order_number(&mut tx, client_id, valid.business_phone.as_str())
            .await
            .context("ordering a number")?;
    }
    tenants::open_credit_account(&mut tx, client_id).await.context("opening the credit account")?;
    queue_welcome(&mut tx, client_id, &valid.business_name, valid.email.as_str(), ringlypro_number.as_deref()).await?;
    tx.commit().await.context("committing signup")?;
    match &ringlypro_number {
        Some(number) => tracing::info!(tenant_id = %client_id, %user_id, number = %number, "signed up"),
        None if source == NumberSource::Twilio => {
            tracing::info!(tenant_id = %client_id, %user_id, "signed up; number ordered from Twilio")
        }
        None => tracing::warn!(tenant_id = %client_id, %user_id, "signed up with no free number in the pool"),
    }
    Ok(SignedUp { user_id, client_id, ringlypro_number })
}

/// The welcome e-mail, queued with the account it greets. No language is recorded for an
/// account, so it is in English.
async fn queue_welcome(
    conn: &mut sqlx::PgConnection,
    client_id: TenantId,
    business_name: &str,
    to: &str,
    number: Option<&str>,
) -> anyhow::Result<()> {
    let number = number
        .map(|n| crate::domain::phone::PhoneNumber::parse(n).map(|p| p.formatted()).unwrap_or_else(|_| n.to_owned()));
    let ctx = context! { business_name, number };
    let subject = written(Language::English, "welcome_subject", &ctx)?;
    let body = written(Language::English, "welcome_body", &ctx)?;
    let email = email_outbox::NewEmail {
        client_id: Some(client_id),
        to_address: to,
        kind: "welcome",
        subject: &subject,
        body: &body,
    };
    email_outbox::queue(conn, &email).await.context("queueing the welcome e-mail")?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("that email and password do not match an account; check both, or reset your password")]
    WrongCredentials,
    #[error("too many wrong passwords for this account; try again in {} or reset your password", wait_words(*.retry_after_secs))]
    TooManyFailures { retry_after_secs: u64 },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// "3 minutes", "1 minute", "40 seconds".
pub fn wait_words(secs: u64) -> String {
    match secs {
        0..=1 => "1 second".to_owned(),
        2..=59 => format!("{secs} seconds"),
        60..=119 => "1 minute".to_owned(),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}

/// Checks an email and password; returns the user's id. After `failures_per_account`
/// wrong passwords in 15 minutes the account refuses every attempt, right or wrong,
/// until the oldest of them is 15 minutes old.
pub async fn login(
    pool: &PgPool,
    passwords: &Passwords,
    settings: &AccountSettings,
    email: &str,
    password: &str,
) -> Result<UserId, LoginError> {
    let email = email.trim().to_lowercase();
    let now = Utc::now();
    let window = Duration::minutes(FAILURE_WINDOW_MINUTES);
    let (failures, oldest) = login_failures::since(pool, &email, now - window).await.context("counting failures")?;
    if failures >= i64::from(settings.failures_per_account) {
        let free_at = oldest.unwrap_or(now) + window;
        let retry_after_secs = (free_at - now).num_seconds().max(1) as u64;
        return Err(LoginError::TooManyFailures { retry_after_secs });
    }
    let user = users::find_by_email(pool, &email).await.context("finding the user")?;
    let matched = match &user {
        Some(user) => passwords.verify(password, &user.password_hash).await?,
        None => {
            passwords.verify_decoy(password).await?;
            false
        }
    };
    match user {
        Some(user) if matched => {
            login_failures::clear(pool, &email, now - window).await.context("clearing failures")?;
            Ok(user.id)
        }
        _ => {
            login_failures::record(pool, &email).await.context("recording a failure")?;
            Err(LoginError::WrongCredentials)
        }
    }
}

/// A session just opened: the token goes in the cookie, the CSRF token in every form.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

pub async fn open_session(pool: &PgPool, user_id: UserId) -> anyhow::Result<NewSession> {
    let token = random_token();
    let csrf_token = random_token();
    let expires_at = Utc::now() + Duration::days(SESSION_DAYS);
    let mut conn = pool.acquire().await?;
    sessions::insert(&mut conn, user_id, &token_hash(&token), &csrf_token, expires_at).await?;
    Ok(NewSession { token, csrf_token, expires_at })
}

/// Ends the session whose cookie carries `token`.
pub async fn close_session(pool: &PgPool, token: &str) -> anyhow::Result<()> {
    sessions::delete(pool, &token_hash(token)).await?;
    Ok(())
}

/// Emails a reset link when an account has this address; does the same visible nothing
/// otherwise, so the answer never tells whether an address has an account.
pub async fn request_password_reset(pool: &PgPool, public_url: &str, email: &Email) -> anyhow::Result<()> {
    let Some(user) = users::find_by_email(pool, email.as_str()).await? else {
        tracing::info!("password reset asked for an address with no account");
        return Ok(());
    };
    let token = random_token();
    let expires_at = Utc::now() + Duration::minutes(RESET_TOKEN_MINUTES);
    let link = format!("{public_url}/password/reset?token={token}");
    // No language is recorded for an account, so its e-mails are in English.
    let subject = written(Language::English, "password_reset_subject", &context! {})?;
    let body = written(Language::English, "password_reset_body", &context! { link })?;
    let client_id: Option<TenantId> =
        sqlx::query_scalar("SELECT id FROM clients WHERE user_id = $1 ORDER BY id LIMIT 1")
            .bind(user.id)
            .fetch_optional(pool)
            .await?;
    let mut tx = pool.begin().await?;
    password_resets::insert(&mut tx, user.id, &token_hash(&token), expires_at).await?;
    email_outbox::queue(
        &mut tx,
        &email_outbox::NewEmail {
            client_id,
            to_address: &user.email,
            kind: "password_reset",
            subject: &subject,
            body: &body,
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "password reset email queued");
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error("this reset link is not valid; ask for a new one")]
    UnknownToken,
    #[error("this reset link has expired (links work for one hour); ask for a new one")]
    Expired,
    #[error("this reset link was already used; ask for a new one if you need to reset again")]
    Used,
    #[error("{0}")]
    WeakPassword(PasswordError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Whether a reset token can still be used (to show the form, or a clear message).
pub async fn check_reset_token(pool: &PgPool, token: &str) -> Result<UserId, ResetError> {
    let found = password_resets::find(pool, &token_hash(token)).await.context("finding the token")?;
    usable(found, Utc::now()).map(|t| t.user_id)
}

fn usable(
    token: Option<password_resets::ResetToken>,
    now: DateTime<Utc>,
) -> Result<password_resets::ResetToken, ResetError> {
    let token = token.ok_or(ResetError::UnknownToken)?;
    if token.used_at.is_some() {
        return Err(ResetError::Used);
    }
    if token.expires_at <= now {
        return Err(ResetError::Expired);
    }
    Ok(token)
}

/// Sets a new password with a reset token: the token is spent, every session of the
/// user ends, and earlier sign-in failures are forgotten. Returns the user's id.
pub async fn reset_password(
    pool: &PgPool,
    passwords: &Passwords,
    token: &str,
    new_password: &str,
) -> Result<UserId, ResetError> {
    let user_id = check_reset_token(pool, token).await?;
    let email: String = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(pool)
        .await
        .context("finding the user")?;
    check_password(new_password, Some(&email)).map_err(ResetError::WeakPassword)?;
    let password_hash = passwords.hash(new_password).await?;
    let mut tx = pool.begin().await.context("starting the reset")?;
    // Checked again under the row lock: two tabs submitting one link at once spend it once.
    let found = password_resets::find_for_update(&mut tx, &token_hash(token)).await.context("locking the token")?;
    let reset = usable(found, Utc::now())?;
    users::set_password(&mut tx, reset.user_id, &password_hash).await.context("setting the password")?;
    password_resets::mark_used(&mut tx, &reset).await.context("spending the token")?;
    let ended = sessions::delete_for_user(&mut tx, reset.user_id).await.context("ending sessions")?;
    tx.commit().await.context("committing the reset")?;
    login_failures::clear(pool, &email, Utc::now() - Duration::minutes(FAILURE_WINDOW_MINUTES))
        .await
        .context("clearing failures")?;
    tracing::info!(user_id = %reset.user_id, sessions_ended = ended, "password reset");
    Ok(reset.user_id)
}

/// Gives an existing tenant an owner account (the CLI's `tenant add --email`, the demo).
/// Running it again with the same email for the same tenant sets the password again.
pub async fn attach_owner(
    pool: &PgPool,
    passwords: &Passwords,
    client_id: TenantId,
    email: &str,
    password: &str,
) -> anyhow::Result<UserId> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    check_password(password, Some(email.as_str())).map_err(|e| anyhow::anyhow!("--password: {e}"))?;
    let password_hash = passwords.hash(password).await?;
    let mut tx = pool.begin().await?;
    let existing = users::find_by_email(pool, email.as_str()).await?;
    let user_id = match existing {
        Some(user) => {
            let owner: Option<UserId> = sqlx::query_scalar("SELECT user_id FROM clients WHERE id = $1")
                .bind(client_id)
                .fetch_optional(&mut *tx)
                .await?
                .flatten();
            if owner != Some(user.id) {
                anyhow::bail!("{email} already has an account for another business");
            }
            users::set_password(&mut tx, user.id, &password_hash).await?;
            user.id
        }
        None => {
            let user_id = users::insert(
                &mut tx,
                &users::NewUser { email: email.as_str(), password_hash: &password_hash, first_name: "", last_name: "" },
            )
            .await?;
            users::link_to_tenant(&mut tx, user_id, client_id).await?;
            sqlx::query("UPDATE clients SET owner_email = $2 WHERE id = $1 AND owner_email IS NULL")
                .bind(client_id)
                .bind(email.as_str())
                .execute(&mut *tx)
                .await?;
            user_id
        }
    };
    tx.commit().await?;
    Ok(user_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_said_in_words_a_person_reads() {
        assert_eq!(wait_words(0), "1 second");
        assert_eq!(wait_words(40), "40 seconds");
        assert_eq!(wait_words(60), "1 minute");
        assert_eq!(wait_words(61), "1 minute");
        assert_eq!(wait_words(121), "3 minutes");
    }

    #[test]
    fn tokens_are_random_and_stored_only_as_their_hash() {
        let a = random_token();
        assert_ne!(a, random_token());
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a).len(), 32);
        assert_ne!(token_hash(&a), a.as_bytes());
    }

    #[test]
    fn a_spent_or_expired_reset_token_says_which() {
        let now = Utc::now();
        let token =
            |expires_at, used_at| Some(password_resets::ResetToken { id: 1, user_id: UserId(7), expires_at, used_at });
        assert!(matches!(usable(None, now), Err(ResetError::UnknownToken)));
        assert!(matches!(usable(token(now - Duration::seconds(1), None), now), Err(ResetError::Expired)));
        assert!(matches!(usable(token(now + Duration::hours(1), Some(now)), now), Err(ResetError::Used)));
        assert_eq!(usable(token(now + Duration::hours(1), None), now).unwrap().user_id, UserId(7));
    }
}
