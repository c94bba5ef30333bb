//! GoHighLevel for every business: installing the app on a location (consent with a
//! `state` bound to the session, tokens sealed), and the worker that sends each queued
//! change there: callers become contacts (upsert by phone), bookings become appointments
//! in the chosen calendar, cancellations and moves follow. Nothing here runs on a call's
//! path. Access tokens are refreshed under a row lock, because the refresh token rotates
//! on every use: two instances refreshing at once would leave one holding a dead token.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use url::Url;

use crate::config::Config;
use crate::domain::appointments::AppointmentStatus;
use crate::domain::ids::{AppointmentId, ContactId, TenantId};
use crate::services::accounts::random_token;
use crate::services::calendar_sync::backoff;
use crate::storage::postgres::gohighlevel::{self as store, GhlConnection, GhlSummary, LinkKind};
use crate::storage::postgres::sync_jobs::{self, Job, Subject, SyncAction, Target};
use crate::storage::postgres::{appointments, begin_tenant, contacts, oauth_states, tenants};
use crate::vendors::gohighlevel::{AppointmentWrite, Calendar, ContactUpsert, GhlError, GoHighLevel};
use crate::vendors::sealed::SealingKey;

/// The vendor name consents are stored under.
const VENDOR: &str = "gohighlevel";
/// What the app asks a location for: contacts (write, and read for a contact's
/// appointments), calendars (to choose one) and appointments (write).
const SCOPES: &str =
    "contacts.readonly contacts.write calendars.readonly calendars/events.readonly calendars/events.write";
/// Jobs handled per round (unless [`GhlSync::with_batch`] says otherwise).
const BATCH: i64 = 20;
/// How long a claim holds: past any request's timeout, pacing waits included.
const LEASE: Duration = Duration::from_secs(120);
/// An access token this close to its end is refreshed before use.
const TOKEN_MARGIN: chrono::Duration = chrono::Duration::seconds(60);
/// While the owner must reconnect or choose a calendar, changes wait this long between looks.
const WAITING: chrono::Duration = chrono::Duration::hours(1);
/// The words that end each appointment's title; a retry finds an appointment written
/// before its answer was lost by them.
const TITLE_MARK: &str = "RinglyPro";

/// Why installing was refused.
#[derive(Debug, thiserror::Error)]
pub enum GhlConnectError {
    #[error("GoHighLevel is not set up on this server (GHL_CLIENT_ID and GHL_CLIENT_SECRET)")]
    NotConfigured,
    #[error(
        "connecting is refused until INTEGRATIONS_KEY is set: tokens are only stored encrypted (make one with `openssl rand -base64 32`)"
    )]
    NoKey,
    #[error("this link to connect GoHighLevel is no longer valid; start again from the Integrations page")]
    BadState,
    #[error("GoHighLevel did not grant access: {0}")]
    Denied(String),
    #[error("GoHighLevel installed the app for an agency, not a sub-account; choose one location when connecting")]
    NoLocation,
    #[error("that calendar is not one of your GoHighLevel location's; choose one from the list")]
    UnknownCalendar,
    #[error("GoHighLevel is not connected")]
    NotConnected,
    #[error(transparent)]
    Vendor(#[from] GhlError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for GhlConnectError {
    fn from(e: sqlx::Error) -> Self {
        GhlConnectError::Unexpected(e.into())
    }
}

/// Why a job did not go through.
#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Ghl(#[from] GhlError),
    #[error("choose the GoHighLevel calendar bookings go to on the Integrations page")]
    NoCalendar,
    #[error("the stored GoHighLevel token does not open with INTEGRATIONS_KEY; connect again")]
    Unopenable,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// What the Integrations page shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GhlStatus {
    pub configured: bool,
    #[serde(flatten)]
    pub connection: GhlSummary,
    pub calendars: Vec<Calendar>,
    pub pending: i64,
}

/// The app's OAuth client.
#[derive(Debug, Clone)]
struct App {
    api: GoHighLevel,
    client_id: String,
    client_secret: SecretString,
}

/// GoHighLevel for every business. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GhlSync {
    pool: PgPool,
    app: Option<App>,
    key: Option<SealingKey>,
    auth_url: Url,
    public_url: String,
    poll: Duration,
    batch: i64,
}

fn owner(client_id: TenantId) -> String {
    format!("gohighlevel:{client_id}")
}

/// `Jane Ann Doe` → (`Jane`, `Ann Doe`).
fn split_name(name: &str) -> (Option<String>, Option<String>) {
    let name = name.trim();
    match name.split_once(char::is_whitespace) {
        _ if name.is_empty() => (None, None),
        Some((first, last)) => (Some(first.to_owned()), Some(last.trim().to_owned())),
        None => (Some(name.to_owned()), None),
    }
}

/// The title an appointment is written with; ends with the mark and our confirmation code.
fn title(customer_name: &str, code: &str) -> String {
    let name = if customer_name.trim().is_empty() { "Caller" } else { customer_name.trim() };
    format!("{name} · {TITLE_MARK} {code}")
}

impl GhlSync {
    pub fn new(pool: PgPool, config: &Config) -> anyhow::Result<Self> {
        let settings = &config.gohighlevel;
        let app = match (&settings.client_id, &settings.client_secret) {
            (Some(id), Some(secret)) => Some(App {
                api: GoHighLevel::new(&settings.api_base),
                client_id: id.clone(),
                client_secret: secret.clone(),
            }),
            _ => None,
        };
        let key = match &config.integrations_key {
            Some(text) => Some(SealingKey::from_base64(text.expose_secret())?),
            None => None,
        };
        Ok(Self {
            pool,
            app,
            key,
            auth_url: settings.auth_url.clone(),
            public_url: config.public_url.clone(),
            poll: settings.poll,
            batch: BATCH,
        })
    }

    /// The same, claiming at most `batch` jobs a round.
    pub fn with_batch(mut self, batch: i64) -> Self {
        self.batch = batch.max(1);
        self
    }

    fn redirect_uri(&self) -> String {
        format!("{}/integrations/gohighlevel/callback", self.public_url)
    }

    fn ready(&self) -> Result<(&App, &SealingKey), GhlConnectError> {
        let app = self.app.as_ref().ok_or(GhlConnectError::NotConfigured)?;
        let key = self.key.as_ref().ok_or(GhlConnectError::NoKey)?;
        Ok((app, key))
    }

    /// Starts an install: the location chooser to send the owner to, with a `state` bound
    /// to the session (its CSRF token) and stored for the callback.
    pub async fn start_connect(&self, client_id: TenantId, session_csrf: &str) -> Result<String, GhlConnectError> {
        let (app, _) = self.ready()?;
        let state = random_token();
        oauth_states::remember(&self.pool, VENDOR, &state, client_id, session_csrf).await?;
        let mut url = self.auth_url.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &self.redirect_uri())
            .append_pair("client_id", &app.client_id)
            .append_pair("scope", SCOPES)
            .append_pair("state", &state);
        Ok(url.into())
    }

    /// GoHighLevel sent the owner back: checks `state` against the session, exchanges the
    /// code, stores the sealed tokens and the location, and lists its calendars (the first
    /// is chosen until the owner picks another).
    pub async fn finish_connect(
        &self,
        client_id: TenantId,
        session_csrf: &str,
        state: &str,
        code: &str,
    ) -> Result<(), GhlConnectError> {
        let (app, key) = self.ready()?;
        if !oauth_states::redeem(&self.pool, VENDOR, state, client_id, session_csrf).await? {
            return Err(GhlConnectError::BadState);
        }
        let secret = app.client_secret.expose_secret();
        let tokens = app.api.exchange_code(&app.client_id, secret, code, &self.redirect_uri()).await?;
        let location = tokens.location_id.clone().filter(|l| !l.is_empty()).ok_or(GhlConnectError::NoLocation)?;
        let expires_at = Utc::now() + chrono::Duration::seconds(tokens.expires_in.min(i64::MAX as u64) as i64);
        let mut tx = begin_tenant(&self.pool, client_id).await?;
        store::connect(
            &mut tx,
            client_id,
            &location,
            tokens.company_id.as_deref(),
            &key.seal(&tokens.refresh_token, &owner(client_id)),
            &key.seal(&tokens.access_token, &owner(client_id)),
            expires_at,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(tenant_id = %client_id, location, "GoHighLevel connected");
        match app.api.calendars(&tokens.access_token, &location).await {
            Ok(calendars) => {
                let mut tx = begin_tenant(&self.pool, client_id).await?;
                store::set_calendars(&mut tx, client_id, &calendars).await?;
                let chosen = store::connection(&mut tx, client_id).await?.and_then(|c| c.calendar_id);
                if let (None, Some(first)) = (chosen, calendars.first()) {
                    store::set_calendar(&mut tx, client_id, &first.id, &first.name).await?;
                }
                tx.commit().await?;
            }
            Err(e) => {
                tracing::warn!(tenant_id = %client_id, error = %e, "could not list the GoHighLevel calendars");
                let mut tx = begin_tenant(&self.pool, client_id).await?;
                store::record(&mut tx, client_id, Some(&format!("could not list the calendars: {e}"))).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Chooses the calendar bookings go to, from the location's list.
    pub async fn choose_calendar(&self, client_id: TenantId, calendar_id: &str) -> Result<(), GhlConnectError> {
        let mut tx = begin_tenant(&self.pool, client_id).await?;
        if store::connection(&mut tx, client_id).await?.is_none() {
            return Err(GhlConnectError::NotConnected);
        }
        let calendars = store::calendars(&mut tx, client_id).await?;
        let calendar = calendars.iter().find(|c| c.id == calendar_id).ok_or(GhlConnectError::UnknownCalendar)?;
        store::set_calendar(&mut tx, client_id, &calendar.id, &calendar.name).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets the connection, its links and its queue (nothing is removed in GoHighLevel).
    pub async fn disconnect(&self, client_id: TenantId) -> anyhow::Result<bool> {
        let mut tx = begin_tenant(&self.pool, client_id).await?;
        let removed = store::disconnect(&mut tx, client_id).await?;
        tx.commit().await?;
        if removed {
            tracing::info!(tenant_id = %client_id, "GoHighLevel disconnected");
        }
        Ok(removed)
    }

    /// What the Integrations page shows.
    pub async fn status(&self, client_id: TenantId) -> anyhow::Result<GhlStatus> {
        let mut tx = begin_tenant(&self.pool, client_id).await?;
        let connection = store::connection(&mut tx, client_id).await?;
        let calendars = store::calendars(&mut tx, client_id).await?;
        let pending = sync_jobs::pending_jobs(&mut tx, client_id, Target::GoHighLevel).await?;
        tx.commit().await?;
        Ok(GhlStatus { configured: self.app.is_some(), connection: connection.into(), calendars, pending })
    }

    /// A usable access token. The stored one while it lasts (and is not `failed`, the one
    /// GoHighLevel just refused); otherwise a refresh, under the connection's row lock so
    /// one refresh runs at a time and the rotated refresh token is stored in the same
    /// transaction. A refused refresh marks the connection `reconnect`.
    async fn token(&self, client_id: TenantId, failed: Option<&str>) -> Result<String, JobError> {
        let (app, key) = match (&self.app, &self.key) {
            (Some(app), Some(key)) => (app, key),
            _ => return Err(GhlError::Unauthorized("GoHighLevel is not set up on this server".into()).into()),
        };
        let usable = |c: &GhlConnection| -> Result<Option<String>, JobError> {
            match (&c.access_token_sealed, c.access_expires_at) {
                (Some(sealed), Some(expires)) if expires - TOKEN_MARGIN > Utc::now() => {
                    let token = key.open(sealed, &owner(client_id)).map_err(|_| JobError::Unopenable)?;
                    Ok(Some(token).filter(|t| Some(t.as_str()) != failed))
                }
                _ => Ok(None),
            }
        };
        let gone = || JobError::Ghl(GhlError::Unauthorized("GoHighLevel is not connected".into()));
        if failed.is_none() {
            let found = store::connection(&mut *self.pool.acquire().await?, client_id).await?.ok_or_else(gone)?;
            if let Some(token) = usable(&found)? {
                return Ok(token);
            }
        }
        let mut tx = self.pool.begin().await?;
        let locked = store::lock(&mut tx, client_id).await?.ok_or_else(gone)?;
        if locked.needs_reconnect() {
            return Err(GhlError::Unauthorized("waiting for the owner to reconnect GoHighLevel".into()).into());
        }
        if let Some(token) = usable(&locked)? {
            // Another worker refreshed while this one waited for the lock.
            return Ok(token);
        }
        let refresh = key.open(&locked.refresh_token_sealed, &owner(client_id)).map_err(|_| JobError::Unopenable)?;
        match app.api.refresh(&app.client_id, app.client_secret.expose_secret(), &refresh).await {
            Ok(tokens) => {
                let expires_at = Utc::now() + chrono::Duration::seconds(tokens.expires_in.min(i64::MAX as u64) as i64);
                store::save_tokens(
                    &mut tx,
                    client_id,
                    &key.seal(&tokens.refresh_token, &owner(client_id)),
                    &key.seal(&tokens.access_token, &owner(client_id)),
                    expires_at,
                )
                .await?;
                tx.commit().await?;
                metrics::counter!("ringlypro_gohighlevel_refreshes_total").increment(1);
                Ok(tokens.access_token)
            }
            Err(e @ GhlError::Unauthorized(_)) => {
                tracing::warn!(tenant_id = %client_id, error = %e, "GoHighLevel refused the refresh; the owner must reconnect");
                store::mark_reconnect(&mut tx, client_id, &e.to_string()).await?;
                tx.commit().await?;
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Runs the worker until aborted.
    pub fn spawn_worker(&self) -> JoinHandle<()> {
        let sync = self.clone();
        tokio::spawn(async move {
            loop {
                match sync.run_once(Utc::now()).await {
                    Ok(n) if n as i64 >= sync.batch => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "GoHighLevel round failed; trying again"),
                }
                tokio::time::sleep(sync.poll).await;
            }
        })
    }

    /// One round of due changes; returns how many were attempted.
    pub async fn run_once(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        if self.app.is_none() || self.key.is_none() {
            return Ok(0);
        }
        let jobs =
            sync_jobs::claim_jobs(&self.pool, Target::GoHighLevel, now, self.batch, LEASE.as_secs() as i64).await?;
        for job in &jobs {
            self.run_job(job, now).await?;
        }
        Ok(jobs.len())
    }

    async fn run_job(&self, job: &Job, now: DateTime<Utc>) -> anyhow::Result<()> {
        let connection = store::connection(&mut *self.pool.acquire().await?, job.client_id).await?;
        let (Some(connection), Some(subject)) = (connection, job.subject()) else {
            return Ok(sync_jobs::finish_job(&self.pool, job).await?);
        };
        if connection.needs_reconnect() {
            let waiting = "waiting for the owner to reconnect GoHighLevel";
            return Ok(sync_jobs::retry_job(&self.pool, job, now + WAITING, waiting).await?);
        }
        let result = match subject {
            Subject::Contact(id) => self.send_contact(&connection, id).await,
            Subject::Appointment(id) => self.send_appointment(&connection, job, id).await,
        };
        let error = result.as_ref().err().map(ToString::to_string);
        match result {
            Ok(()) => {
                metrics::counter!("ringlypro_gohighlevel_jobs_total", "result" => "sent").increment(1);
                sync_jobs::finish_job(&self.pool, job).await?;
            }
            Err(JobError::Ghl(GhlError::RateLimited { retry_after })) => {
                metrics::counter!("ringlypro_gohighlevel_jobs_total", "result" => "rate_limited").increment(1);
                let wait = chrono::Duration::from_std(retry_after).unwrap_or(WAITING);
                sync_jobs::retry_job(&self.pool, job, now + wait, &GhlError::RateLimited { retry_after }.to_string())
                    .await?;
            }
            Err(JobError::Ghl(e)) if e.is_retryable() => {
                tracing::warn!(tenant_id = %job.client_id, attempts = job.attempts, error = %e,
                    "GoHighLevel change not sent; trying again");
                sync_jobs::retry_job(&self.pool, job, now + backoff(job.attempts), &e.to_string()).await?;
            }
            Err(JobError::Database(e)) => {
                sync_jobs::retry_job(&self.pool, job, now + backoff(job.attempts), &format!("database: {e}")).await?;
            }
            Err(e @ (JobError::Ghl(GhlError::Unauthorized(_)) | JobError::NoCalendar | JobError::Unopenable)) => {
                sync_jobs::retry_job(&self.pool, job, now + WAITING, &e.to_string()).await?;
            }
            Err(e) => {
                tracing::warn!(tenant_id = %job.client_id, error = %e, "GoHighLevel refused the change; giving up on it");
                metrics::counter!("ringlypro_gohighlevel_jobs_total", "result" => "refused").increment(1);
                sync_jobs::finish_job(&self.pool, job).await?;
            }
        }
        let mut conn = self.pool.acquire().await?;
        store::record(&mut conn, job.client_id, error.as_deref()).await?;
        Ok(())
    }

    /// Runs a request with the business's access token, refreshing it once on a 401.
    async fn authorised<T, F, Fut>(&self, client_id: TenantId, request: F) -> Result<T, JobError>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, GhlError>>,
    {
        let token = self.token(client_id, None).await?;
        match request(token.clone()).await {
            Err(GhlError::Unauthorized(_)) => {
                let fresh = self.token(client_id, Some(&token)).await?;
                Ok(request(fresh).await?)
            }
            other => Ok(other?),
        }
    }

    fn api(&self) -> Result<&GoHighLevel, JobError> {
        self.app.as_ref().map(|a| &a.api).ok_or_else(|| GhlError::Unauthorized("not set up".into()).into())
    }

    /// The caller as a GoHighLevel contact (made or updated), remembered by phone.
    async fn upsert_contact(
        &self,
        c: &GhlConnection,
        phone: &str,
        name: &str,
        email: Option<&str>,
    ) -> Result<String, JobError> {
        let api = self.api()?;
        let (first_name, last_name) = split_name(name);
        let contact = ContactUpsert {
            location_id: c.location_id.clone(),
            phone: phone.to_owned(),
            first_name,
            last_name,
            email: email.map(str::to_owned),
            source: "RinglyPro".into(),
        };
        let contact = &contact;
        let made =
            self.authorised(c.client_id, |token| async move { api.upsert_contact(&token, contact).await }).await?;
        let mut tx = begin_tenant(&self.pool, c.client_id).await?;
        store::set_link(&mut tx, c.client_id, LinkKind::Contact, phone, &made.id).await?;
        tx.commit().await?;
        Ok(made.id)
    }

    async fn send_contact(&self, c: &GhlConnection, id: ContactId) -> Result<(), JobError> {
        let mut tx = begin_tenant(&self.pool, c.client_id).await?;
        let contact = contacts::find(&mut tx, c.client_id, id).await?;
        tx.commit().await?;
        let Some(contact) = contact else { return Ok(()) };
        self.upsert_contact(c, &contact.phone, &contact.name, contact.email.as_deref()).await.map(|_| ())
    }

    /// Brings the appointment's GoHighLevel copy in line: made (once: an earlier write whose
    /// answer was lost is found by its title), moved, or marked cancelled. GoHighLevel's
    /// appointments are never deleted.
    async fn send_appointment(&self, c: &GhlConnection, job: &Job, id: AppointmentId) -> Result<(), JobError> {
        let api = self.api()?;
        let client_id = c.client_id;
        let mut tx = begin_tenant(&self.pool, client_id).await?;
        let appointment = appointments::find(&mut tx, client_id, id).await?;
        let linked = store::link(&mut tx, client_id, LinkKind::Appointment, &id.0.to_string()).await?;
        tx.commit().await?;
        let Some(a) = appointment else { return Ok(()) };
        let live = a.status != AppointmentStatus::Cancelled && job.action == SyncAction::Upsert;
        if !live {
            let remote = match linked {
                Some(remote) => remote,
                None => {
                    // Never linked; an earlier write whose answer was lost is looked up
                    // under the caller's contact, when there is one.
                    let mut tx = begin_tenant(&self.pool, client_id).await?;
                    let contact = store::link(&mut tx, client_id, LinkKind::Contact, &a.customer_phone).await?;
                    tx.commit().await?;
                    let Some(contact) = contact else { return Ok(()) };
                    let Some(found) = self.find_written(c, &contact, &a.confirmation_code).await? else {
                        return Ok(());
                    };
                    found
                }
            };
            return self.cancel_remote(c, &a, &remote).await;
        }
        let calendar_id = c.calendar_id.clone().ok_or(JobError::NoCalendar)?;
        let contact =
            match store::link(&mut *self.pool.acquire().await?, client_id, LinkKind::Contact, &a.customer_phone).await?
            {
                Some(id) => id,
                None => self.upsert_contact(c, &a.customer_phone, &a.customer_name, None).await?,
            };
        let zone = tenants::find(&self.pool, client_id).await?.map(|t| t.timezone).unwrap_or(chrono_tz::UTC);
        let write = AppointmentWrite {
            calendar_id,
            location_id: c.location_id.clone(),
            contact_id: contact.clone(),
            start: a.starts_at.with_timezone(&zone).fixed_offset(),
            end: a.ends_at.with_timezone(&zone).fixed_offset(),
            title: title(&a.customer_name, &a.confirmation_code),
            status: "confirmed".into(),
        };
        let remote = match linked {
            Some(remote) => Some(remote),
            None => self.find_written(c, &contact, &a.confirmation_code).await?,
        };
        match remote {
            Some(remote) => {
                let (write, remote_ref) = (&write, &remote);
                self.authorised(
                    client_id,
                    |token| async move { api.update_appointment(&token, remote_ref, write).await },
                )
                .await?;
                self.link_appointment(client_id, id, &remote).await
            }
            None => {
                let write = &write;
                let made = self
                    .authorised(client_id, |token| async move { api.create_appointment(&token, write).await })
                    .await?;
                self.link_appointment(client_id, id, &made).await
            }
        }
    }

    async fn link_appointment(&self, client_id: TenantId, id: AppointmentId, remote: &str) -> Result<(), JobError> {
        let mut tx = begin_tenant(&self.pool, client_id).await?;
        store::set_link(&mut tx, client_id, LinkKind::Appointment, &id.0.to_string(), remote).await?;
        tx.commit().await?;
        Ok(())
    }

    /// An appointment written for this confirmation code before (its answer lost).
    async fn find_written(&self, c: &GhlConnection, contact: &str, code: &str) -> Result<Option<String>, JobError> {
        let api = self.api()?;
        let location = c.location_id.as_str();
        let listed = self
            .authorised(c.client_id, |token| async move { api.contact_appointments(&token, location, contact).await })
            .await?;
        let mark = format!("{TITLE_MARK} {code}");
        Ok(listed.into_iter().find(|r| r.title.ends_with(&mark)).map(|r| r.id))
    }

    /// Marks a written appointment cancelled (only its status and times are sent).
    async fn cancel_remote(
        &self,
        c: &GhlConnection,
        a: &appointments::Appointment,
        remote: &str,
    ) -> Result<(), JobError> {
        let api = self.api()?;
        let write = AppointmentWrite {
            calendar_id: c.calendar_id.clone().unwrap_or_default(),
            location_id: c.location_id.clone(),
            // Not sent on an update.
            contact_id: String::new(),
            start: a.starts_at.fixed_offset(),
            end: a.ends_at.fixed_offset(),
            title: title(&a.customer_name, &a.confirmation_code),
            status: "cancelled".into(),
        };
        let write = &write;
        self.authorised(c.client_id, |token| async move { api.update_appointment(&token, remote, write).await })
            .await?;
        self.link_appointment(c.client_id, a.id, remote).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_first_and_the_rest() {
        assert_eq!(split_name("Jane Ann Doe"), (Some("Jane".into()), Some("Ann Doe".into())));
        assert_eq!(split_name(" Cher "), (Some("Cher".into()), None));
        assert_eq!(split_name(""), (None, None));
    }

    #[test]
    fn titles_end_with_the_mark_and_the_code() {
        assert_eq!(title("Jane Doe", "K7Q2"), "Jane Doe · RinglyPro K7Q2");
        assert_eq!(title(" ", "K7Q2"), "Caller · RinglyPro K7Q2");
    }
}
