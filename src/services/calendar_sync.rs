//! Google Calendar, both ways: connecting (consent, sealed tokens), the worker that sends
//! queued appointment changes to Google and keeps the local copy of the owner's busy
//! times (incremental sync, push channels renewed before they end), and the busy times
//! availability subtracts. Nothing here runs on a call's path except [`CalendarSync::busy`],
//! which waits on Google no longer than the configured budget.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use sqlx::PgPool;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::domain::appointments::AppointmentStatus;
use crate::domain::ids::{AppointmentId, TenantId};
use crate::domain::scheduling::Busy;
use crate::services::accounts::random_token;
use crate::storage::postgres::google::{self as store, BusyEvent, Connection};
use crate::storage::postgres::oauth_states;
use crate::storage::postgres::sync_jobs::{self, Job, Subject, SyncAction, Target};
use crate::storage::postgres::{appointments, begin_tenant, tenants};
use crate::vendors::google::{self, EventDraft, EventTime, Google, GoogleEndpoints, GoogleError};
use crate::vendors::sealed::SealingKey;

/// Runs a request with the connection's access token, refreshing it once on a 401.
/// (A macro rather than a function taking an async closure: such closures borrowing the
/// token make the worker's future lose `Send`.)
macro_rules! with_token {
    ($sync:expr, $connection:expr, |$token:ident| $request:expr) => {{
        let $token = $sync.token_of($connection, false).await?;
        match $request {
            Err(GoogleError::Unauthorized) => {
                let $token = $sync.token_of($connection, true).await?;
                $request
            }
            other => other,
        }
    }};
}

/// The vendor name consents are stored under.
const VENDOR: &str = "google";
/// Jobs (and calendars) handled per round.
const BATCH: i64 = 20;
/// How long a claim holds: past any request's timeout.
const LEASE: Duration = Duration::from_secs(60);
const FIRST_DELAY: Duration = Duration::from_secs(30);
const MAX_DELAY: Duration = Duration::from_secs(60 * 60);
/// An access token this close to its end is refreshed before use.
const TOKEN_MARGIN: chrono::Duration = chrono::Duration::seconds(60);
/// How far back a full sync reads (events that ended before cannot block anything).
const SYNC_SINCE: chrono::Duration = chrono::Duration::days(1);
/// While the owner must reconnect, queued changes wait this long between looks.
const RECONNECT_WAIT: chrono::Duration = chrono::Duration::hours(1);

/// Why connecting was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("Google Calendar is not set up on this server (GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET)")]
    NotConfigured,
    #[error(
        "connecting is refused until INTEGRATIONS_KEY is set: tokens are only stored encrypted (make one with `openssl rand -base64 32`)"
    )]
    NoKey,
    #[error("this link to connect Google Calendar is no longer valid; start again from the Integrations page")]
    BadState,
    #[error("Google did not grant access: {0}")]
    Denied(String),
    #[error("Google did not send a refresh token; remove RinglyPro's access in your Google account and connect again")]
    NoRefreshToken,
    #[error(transparent)]
    Google(#[from] GoogleError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ConnectError {
    fn from(e: sqlx::Error) -> Self {
        ConnectError::Unexpected(e.into())
    }
}

/// Where the busy times availability used came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusySource {
    /// The business has no (working) Google connection.
    NotConnected,
    /// The local copy, fresh enough.
    LocalCopy,
    /// The copy was stale; Google's freeBusy answered within the budget.
    FreeBusy,
    /// The copy was stale and Google did not answer within the budget: the local copy.
    LocalCopyAfterTimeout,
    /// The copy was stale and Google refused: the local copy.
    LocalCopyAfterError,
}

impl BusySource {
    /// What a call's record says when availability could not use Google's answer.
    pub fn fallback_note(self) -> Option<&'static str> {
        match self {
            BusySource::LocalCopyAfterTimeout => {
                Some("Google Calendar did not answer in time; times were offered from the last sync")
            }
            BusySource::LocalCopyAfterError => {
                Some("Google Calendar refused the busy-time check; times were offered from the last sync")
            }
            _ => None,
        }
    }
}

/// Connection status as the Integrations page shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub configured: bool,
    pub connected: bool,
    pub reconnect: bool,
    pub calendar_id: Option<String>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub pending: i64,
    pub conflicts: Vec<store::Conflict>,
}

/// Google Calendar for every business. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CalendarSync {
    pool: PgPool,
    google: Option<Google>,
    key: Option<SealingKey>,
    public_url: String,
    budget: Duration,
    stale_after: Duration,
    poll: Duration,
    watch_ttl: Duration,
}

fn owner(client_id: TenantId) -> String {
    format!("google:{client_id}")
}

/// How long a sync job that failed `attempts` times waits: doubling from 30 s to an hour,
/// plus up to a fifth more. Shared with the GoHighLevel worker.
pub(crate) fn backoff(attempts: i32) -> chrono::Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 16) as u32;
    let delay = FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY);
    // Up to a fifth more, so businesses rate-limited together do not retry together.
    let jitter = rand::random_range(0..=delay.as_millis() as u64 / 5);
    chrono::Duration::from_std(delay + Duration::from_millis(jitter)).unwrap_or(RECONNECT_WAIT)
}

impl CalendarSync {
    pub fn new(pool: PgPool, config: &Config) -> anyhow::Result<Self> {
        let settings = &config.google;
        let google = match (&settings.client_id, &settings.client_secret) {
            (Some(id), Some(secret)) => Some(Google::new(GoogleEndpoints {
                oauth_base: crate::config::endpoint(&settings.oauth_base),
                auth_url: settings.auth_url.as_str().to_owned(),
                api_base: crate::config::endpoint(&settings.api_base),
                client_id: id.clone(),
                client_secret: secret.clone(),
            })?),
            _ => None,
        };
        let key = match &config.integrations_key {
            Some(text) => Some(SealingKey::from_base64(secrecy::ExposeSecret::expose_secret(text))?),
            None => None,
        };
        Ok(Self {
            pool,
            google,
            key,
            public_url: config.public_url.clone(),
            budget: settings.freebusy_budget,
            stale_after: settings.stale_after,
            poll: settings.poll,
            watch_ttl: settings.watch_ttl,
        })
    }

    fn redirect_uri(&self) -> String {
        format!("{}/integrations/google/callback", self.public_url)
    }

    fn ready(&self) -> Result<(&Google, &SealingKey), ConnectError> {
        let google = self.google.as_ref().ok_or(ConnectError::NotConfigured)?;
        let key = self.key.as_ref().ok_or(ConnectError::NoKey)?;
        Ok((google, key))
    }

    /// Starts a consent for the business: the Google URL to send the owner to, with a
    /// `state` bound to the session (its CSRF token) and stored for the callback.
    pub async fn start_connect(&self, client_id: TenantId, session_csrf: &str) -> Result<String, ConnectError> {
        let (google, _) = self.ready()?;
        let state = random_token();
        oauth_states::remember(&self.pool, VENDOR, &state, client_id, session_csrf).await?;
        Ok(google.authorize_url(&self.redirect_uri(), &state)?)
    }

    /// Google sent the owner back: checks `state` against the session, exchanges the code,
    /// stores the sealed tokens for the `primary` calendar, opens the push channel and
    /// runs the first full sync (failures of those two are retried by the worker).
    pub async fn finish_connect(
        &self,
        client_id: TenantId,
        session_csrf: &str,
        state: &str,
        code: &str,
    ) -> Result<(), ConnectError> {
        let (google, key) = self.ready()?;
        if !oauth_states::redeem(&self.pool, VENDOR, state, client_id, session_csrf).await? {
            return Err(ConnectError::BadState);
        }
        let tokens = google.exchange_code(code, &self.redirect_uri()).await?;
        let refresh = tokens.refresh_token.as_deref().ok_or(ConnectError::NoRefreshToken)?;
        let sealed_refresh = key.seal(refresh, &owner(client_id));
        let sealed_access = key.seal(&tokens.access_token, &owner(client_id));
        let mut tx = begin_tenant(&self.pool, client_id).await?;
        store::connect(&mut tx, client_id, "primary", &sealed_refresh, &sealed_access, tokens.expires_at).await?;
        tx.commit().await?;
        tracing::info!(tenant_id = %client_id, "Google Calendar connected");
        if let Some(connection) = self.connection(client_id).await? {
            let now = Utc::now();
            if let Err(e) = self.sync(&connection, now).await {
                tracing::warn!(tenant_id = %client_id, error = %e, "first Google sync failed; the worker tries again");
                store::release_sync(&self.pool, client_id, Some(&e.to_string())).await?;
            }
        }
        Ok(())
    }

    /// Disconnects: closes the push channel (best effort) and forgets tokens, busy copy and queue.
    pub async fn disconnect(&self, client_id: TenantId) -> anyhow::Result<bool> {
        let mut tx = begin_tenant(&self.pool, client_id).await?;
        let removed = store::disconnect(&mut tx, client_id).await?;
        tx.commit().await?;
        let Some(removed) = removed else { return Ok(false) };
        if let (Some(google), Some(channel), Some(resource)) = (&self.google, &removed.channel_id, &removed.resource_id)
            && let Ok(token) = self.token_of(&removed, false).await
            && let Err(e) = google.stop(&token, channel, resource).await
        {
            tracing::warn!(tenant_id = %client_id, error = %e, "could not stop the Google push channel");
        }
        tracing::info!(tenant_id = %client_id, "Google Calendar disconnected");
        Ok(true)
    }

    async fn connection(&self, client_id: TenantId) -> sqlx::Result<Option<Connection>> {
        let mut tx = begin_tenant(&self.pool, client_id).await?;
        let found = store::connection(&mut tx, client_id).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// What the Integrations page shows.
    pub async fn status(&self, client_id: TenantId, now: DateTime<Utc>) -> anyhow::Result<Status> {
        let mut tx = begin_tenant(&self.pool, client_id).await?;
        let connection = store::connection(&mut tx, client_id).await?;
        let pending = sync_jobs::pending_jobs(&mut tx, client_id, Target::Google).await?;
        let conflicts = store::conflicts(&mut tx, client_id, now).await?;
        tx.commit().await?;
        Ok(Status {
            configured: self.google.is_some(),
            connected: connection.is_some(),
            reconnect: connection.as_ref().is_some_and(Connection::needs_reconnect),
            calendar_id: connection.as_ref().map(|c| c.calendar_id.clone()),
            last_synced_at: connection.as_ref().and_then(|c| c.last_synced_at),
            last_error: connection.as_ref().and_then(|c| c.last_error.clone()),
            pending,
            conflicts,
        })
    }

    /// A push notification: `true` when the channel and its token are ours (the calendar
    /// is then synced by the worker); the caller answers at once either way.
    pub async fn notify(&self, channel_id: &str, token: Option<&str>) -> anyhow::Result<bool> {
        let Some((client_id, expected)) = store::by_channel(&self.pool, channel_id).await? else {
            return Ok(false);
        };
        let matches = match (expected.as_deref(), token) {
            (Some(expected), Some(given)) => {
                expected.len() == given.len()
                    && expected.bytes().zip(given.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
            }
            _ => false,
        };
        if matches {
            store::mark_sync_due(&self.pool, client_id).await?;
        }
        Ok(matches)
    }

    /// The owner's Google busy times in `[from, to)` for availability: the local copy when
    /// fresh; when stale, freeBusy if Google answers within the budget, else the local copy.
    pub async fn busy(
        &self,
        client_id: TenantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<(Vec<Busy>, BusySource)> {
        let mut tx = begin_tenant(&self.pool, client_id).await?;
        let connection = store::connection(&mut tx, client_id).await?;
        let local = store::busy_between(&mut tx, client_id, from, to).await?;
        tx.commit().await?;
        let Some(connection) = connection else { return Ok((local, BusySource::NotConnected)) };
        let stale_after = chrono::Duration::from_std(self.stale_after).unwrap_or(chrono::Duration::MAX);
        let fresh = connection.last_synced_at.is_some_and(|at| now - at <= stale_after);
        if fresh || connection.needs_reconnect() || self.google.is_none() {
            return Ok((local, BusySource::LocalCopy));
        }
        let asked = tokio::time::timeout(self.budget, self.free_busy(&connection, from, to)).await;
        match asked {
            Ok(Ok(mut busy)) => {
                busy.extend(local);
                Ok((busy, BusySource::FreeBusy))
            }
            Ok(Err(e)) => {
                tracing::warn!(tenant_id = %client_id, error = %e, "freeBusy failed; availability uses the local copy");
                Ok((local, BusySource::LocalCopyAfterError))
            }
            Err(_) => {
                tracing::warn!(tenant_id = %client_id, budget_ms = self.budget.as_millis() as u64,
                    "freeBusy did not answer within the budget; availability uses the local copy");
                metrics::counter!("ringlypro_google_freebusy_fallbacks_total").increment(1);
                Ok((local, BusySource::LocalCopyAfterTimeout))
            }
        }
    }

    async fn free_busy(
        &self,
        c: &Connection,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Busy>, GoogleError> {
        let google = self.google.as_ref().ok_or(GoogleError::Retryable("not configured".into()))?;
        let spans = with_token!(self, c, |token| google.free_busy(&token, &c.calendar_id, from, to).await)?;
        Ok(spans.into_iter().map(|s| Busy { starts_at: s.starts_at, ends_at: s.ends_at }).collect())
    }

    /// A usable access token: the stored one, or a refreshed one (stored sealed). A revoked
    /// grant marks the connection `reconnect`.
    async fn token_of(&self, c: &Connection, force_refresh: bool) -> Result<String, GoogleError> {
        let key = self
            .key
            .as_ref()
            .ok_or(GoogleError::Rejected { status: 0, message: "INTEGRATIONS_KEY is not set".into() })?;
        let google =
            self.google.as_ref().ok_or(GoogleError::Rejected { status: 0, message: "not configured".into() })?;
        let unopenable = |_| GoogleError::Rejected {
            status: 0,
            message: "the stored token does not open with INTEGRATIONS_KEY".into(),
        };
        if !force_refresh
            && let (Some(sealed), Some(expires)) = (&c.access_token_sealed, c.access_expires_at)
            && expires - TOKEN_MARGIN > Utc::now()
        {
            return key.open(sealed, &owner(c.client_id)).map_err(unopenable);
        }
        let refresh = key.open(&c.refresh_token_sealed, &owner(c.client_id)).map_err(unopenable)?;
        match google.refresh(&refresh).await {
            Ok(tokens) => {
                let sealed = key.seal(&tokens.access_token, &owner(c.client_id));
                if let Err(e) = store::save_access(&self.pool, c.client_id, &sealed, tokens.expires_at).await {
                    tracing::warn!(tenant_id = %c.client_id, error = %e, "could not store a refreshed Google token");
                }
                Ok(tokens.access_token)
            }
            Err(GoogleError::InvalidGrant) => {
                tracing::warn!(tenant_id = %c.client_id, "Google refused the grant; the owner must reconnect");
                if let Err(e) =
                    store::mark_reconnect(&self.pool, c.client_id, &GoogleError::InvalidGrant.to_string()).await
                {
                    tracing::warn!(tenant_id = %c.client_id, error = %e, "could not mark the connection for reconnecting");
                }
                Err(GoogleError::InvalidGrant)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs the worker until aborted.
    pub fn spawn_worker(&self) -> JoinHandle<()> {
        let sync = self.clone();
        tokio::spawn(async move {
            loop {
                match sync.run_once(Utc::now()).await {
                    Ok(n) if n as i64 >= BATCH => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "calendar round failed; trying again"),
                }
                tokio::time::sleep(sync.poll).await;
            }
        })
    }

    /// One round: due appointment changes to Google, then due calendar syncs and channel
    /// renewals; returns how many jobs were attempted.
    pub async fn run_once(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        if self.google.is_none() || self.key.is_none() {
            return Ok(0);
        }
        let jobs = sync_jobs::claim_jobs(&self.pool, Target::Google, now, BATCH, LEASE.as_secs() as i64).await?;
        let count = jobs.len();
        for job in &jobs {
            self.run_job(job, now).await?;
        }
        let renew_before = now + self.renew_margin();
        for connection in store::claim_syncs(&self.pool, now, renew_before, BATCH, LEASE.as_secs() as i64).await? {
            let error = match self.sync(&connection, now).await {
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!(tenant_id = %connection.client_id, error = %e, "Google sync failed");
                    Some(e.to_string())
                }
            };
            // A revoked grant is shown as "reconnect", not retried as a failed sync.
            let revoked = matches!(self.connection(connection.client_id).await, Ok(Some(c)) if c.needs_reconnect());
            let error = error.filter(|_| !revoked);
            store::release_sync(&self.pool, connection.client_id, error.as_deref()).await?;
        }
        Ok(count)
    }

    fn renew_margin(&self) -> chrono::Duration {
        let tenth = self.watch_ttl / 10;
        chrono::Duration::from_std(tenth.min(Duration::from_secs(24 * 3600))).unwrap_or(chrono::Duration::hours(1))
    }

    async fn run_job(&self, job: &Job, now: DateTime<Utc>) -> anyhow::Result<()> {
        let connection = store::connection(&mut *self.pool.acquire().await?, job.client_id).await?;
        let (Some(connection), Some(Subject::Appointment(appointment_id))) = (connection, job.subject()) else {
            return Ok(sync_jobs::finish_job(&self.pool, job).await?);
        };
        if connection.needs_reconnect() {
            let waiting = "waiting for the owner to reconnect Google Calendar";
            return Ok(sync_jobs::retry_job(&self.pool, job, now + RECONNECT_WAIT, waiting).await?);
        }
        match self.apply_job(&connection, job, appointment_id).await {
            Ok(()) => {
                metrics::counter!("ringlypro_google_events_total", "result" => "sent").increment(1);
                sync_jobs::finish_job(&self.pool, job).await?;
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(tenant_id = %job.client_id, appointment = %appointment_id, attempts = job.attempts,
                    error = %e, "Google event not written; trying again");
                sync_jobs::retry_job(&self.pool, job, now + backoff(job.attempts), &e.to_string()).await?;
            }
            Err(GoogleError::InvalidGrant) => {
                sync_jobs::retry_job(&self.pool, job, now + RECONNECT_WAIT, &GoogleError::InvalidGrant.to_string())
                    .await?;
            }
            Err(e) => {
                tracing::warn!(tenant_id = %job.client_id, appointment = %appointment_id, error = %e,
                    "Google refused the event; giving up on this change");
                sync_jobs::finish_job(&self.pool, job).await?;
            }
        }
        Ok(())
    }

    /// Creates, moves or deletes the appointment's own event, by its deterministic id.
    async fn apply_job(&self, c: &Connection, job: &Job, appointment_id: AppointmentId) -> Result<(), GoogleError> {
        let google = self.google.as_ref().ok_or(GoogleError::Retryable("not configured".into()))?;
        let unexpected = |e: sqlx::Error| GoogleError::Retryable(format!("database: {e}"));
        let mut conn = self.pool.acquire().await.map_err(unexpected)?;
        let appointment = appointments::find(&mut conn, job.client_id, appointment_id).await.map_err(unexpected)?;
        let tenant = tenants::find(&self.pool, job.client_id).await.map_err(unexpected)?;
        drop(conn);
        let id = google::event_id(job.client_id.0, appointment_id.0);
        let live = appointment.filter(|a| a.status != AppointmentStatus::Cancelled && job.action == SyncAction::Upsert);
        let (Some(a), Some(tenant)) = (live, tenant) else {
            return with_token!(self, c, |token| google.delete_event(&token, &c.calendar_id, &id).await);
        };
        let draft = EventDraft {
            id: id.clone(),
            summary: format!("{} (RinglyPro)", a.customer_name),
            description: format!(
                "Booked with RinglyPro.\nPhone: {}\nConfirmation code: {}",
                a.customer_phone, a.confirmation_code
            ),
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            time_zone: tenant.timezone.name().to_owned(),
            appointment: a.id.0.to_string(),
        };
        with_token!(self, c, |token| match google.insert_event(&token, &c.calendar_id, &draft).await {
            Err(GoogleError::AlreadyExists) => google.patch_event(&token, &c.calendar_id, &draft).await,
            other => other,
        })
    }

    /// Renews the push channel if it ends soon, then syncs: incremental with the stored
    /// token, full without one (or after Google's 410).
    async fn sync(&self, c: &Connection, now: DateTime<Utc>) -> Result<(), GoogleError> {
        let google = self.google.as_ref().ok_or(GoogleError::Retryable("not configured".into()))?;
        if c.channel_expires_at.is_none_or(|at| at < now + self.renew_margin()) {
            self.renew_channel(google, c, now).await?;
        }
        let zone: Tz = tenants::find(&self.pool, c.client_id)
            .await
            .map_err(|e| GoogleError::Retryable(format!("database: {e}")))?
            .map(|t| t.timezone)
            .unwrap_or(chrono_tz::UTC);
        let mut sync_token = c.sync_token.clone();
        loop {
            match self.list_all(google, c, sync_token.as_deref(), now, zone).await {
                Ok((busy, removed, next)) => {
                    store::apply_sync(
                        &self.pool,
                        c.client_id,
                        sync_token.is_none(),
                        &busy,
                        &removed,
                        next.as_deref(),
                        now,
                    )
                    .await
                    .map_err(|e| GoogleError::Retryable(format!("database: {e}")))?;
                    return Ok(());
                }
                Err(GoogleError::SyncTokenExpired) if sync_token.is_some() => {
                    tracing::info!(tenant_id = %c.client_id, "Google sync token expired; running a full sync");
                    sync_token = None;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn list_all(
        &self,
        google: &Google,
        c: &Connection,
        sync_token: Option<&str>,
        now: DateTime<Utc>,
        zone: Tz,
    ) -> Result<(Vec<BusyEvent>, Vec<String>, Option<String>), GoogleError> {
        let (mut busy, mut removed) = (Vec::new(), Vec::new());
        let mut page_token: Option<String> = None;
        loop {
            let page = with_token!(self, c, |token| {
                google.list_events(&token, &c.calendar_id, sync_token, page_token.as_deref(), now - SYNC_SINCE).await
            })?;
            for event in page.events {
                match busy_interval(&event, zone) {
                    Some((starts_at, ends_at)) => {
                        busy.push(BusyEvent { event_id: event.id, summary: event.summary, starts_at, ends_at })
                    }
                    None => removed.push(event.id),
                }
            }
            match page.next_page_token {
                Some(next) => page_token = Some(next),
                None => return Ok((busy, removed, page.next_sync_token)),
            }
        }
    }

    async fn renew_channel(&self, google: &Google, c: &Connection, now: DateTime<Utc>) -> Result<(), GoogleError> {
        let channel_id = uuid::Uuid::new_v4().to_string();
        let channel_token = random_token();
        let address = format!("{}/integrations/google/notify", self.public_url);
        let expires = now + chrono::Duration::from_std(self.watch_ttl).unwrap_or(chrono::Duration::days(7));
        let opened = with_token!(self, c, |token| {
            google.watch(&token, &c.calendar_id, &channel_id, &address, &channel_token, expires).await
        });
        let db = |e: sqlx::Error| GoogleError::Retryable(format!("database: {e}"));
        match opened {
            Ok(channel) => {
                store::set_channel(
                    &self.pool,
                    c.client_id,
                    &channel.id,
                    &channel_token,
                    &channel.resource_id,
                    Some(channel.expires_at.unwrap_or(expires)),
                )
                .await
                .map_err(db)?;
                if let (Some(old), Some(resource)) = (&c.channel_id, &c.resource_id) {
                    let stopped = with_token!(self, c, |token| google.stop(&token, old, resource).await);
                    if let Err(e) = stopped {
                        tracing::info!(tenant_id = %c.client_id, error = %e, "the old Google channel was not stopped");
                    }
                }
                Ok(())
            }
            Err(e @ (GoogleError::InvalidGrant | GoogleError::Retryable(_) | GoogleError::Unauthorized)) => Err(e),
            Err(e) => {
                // Google refuses channels to addresses it cannot reach (plain http, no
                // valid certificate): syncs then run on the worker's schedule; look again in an hour.
                tracing::warn!(tenant_id = %c.client_id, error = %e, "Google refused the push channel");
                let again = now + self.renew_margin() + chrono::Duration::hours(1);
                store::defer_channel(&self.pool, c.client_id, again).await.map_err(db)
            }
        }
    }
}

/// The interval an event blocks, or `None` for events that block nothing: deleted,
/// marked free, ours (the appointment already blocks its time), or without times.
fn busy_interval(event: &google::CalendarEvent, zone: Tz) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    if event.cancelled || event.transparent || event.appointment.is_some() {
        return None;
    }
    let at = |t: EventTime| match t {
        EventTime::At(at) => Some(at),
        EventTime::Day(day) => {
            zone.from_local_datetime(&day.and_hms_opt(0, 0, 0)?).earliest().map(|t| t.with_timezone(&Utc))
        }
    };
    let (starts, ends) = (at(event.starts?)?, at(event.ends?)?);
    (ends > starts).then_some((starts, ends))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn event(starts: Option<EventTime>, ends: Option<EventTime>) -> google::CalendarEvent {
        google::CalendarEvent {
            id: "e".into(),
            cancelled: false,
            transparent: false,
            appointment: None,
            starts,
            ends,
            summary: String::new(),
        }
    }

    #[test]
    fn only_the_owners_own_busy_events_block_time() {
        let (s, e) = ("2026-03-10T14:00:00Z".parse().unwrap(), "2026-03-10T15:00:00Z".parse().unwrap());
        let own = event(Some(EventTime::At(s)), Some(EventTime::At(e)));
        assert_eq!(busy_interval(&own, chrono_tz::UTC), Some((s, e)));
        let ours = google::CalendarEvent { appointment: Some("42".into()), ..own.clone() };
        assert_eq!(busy_interval(&ours, chrono_tz::UTC), None);
        let free = google::CalendarEvent { transparent: true, ..own.clone() };
        assert_eq!(busy_interval(&free, chrono_tz::UTC), None);
        let gone = google::CalendarEvent { cancelled: true, ..own };
        assert_eq!(busy_interval(&gone, chrono_tz::UTC), None);
    }

    #[test]
    fn all_day_events_block_the_whole_local_day() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 11).unwrap();
        let next = NaiveDate::from_ymd_opt(2026, 3, 12).unwrap();
        let all_day = event(Some(EventTime::Day(day)), Some(EventTime::Day(next)));
        let (s, e) = busy_interval(&all_day, chrono_tz::America::New_York).unwrap();
        assert_eq!(s, "2026-03-11T04:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(e, "2026-03-12T04:00:00Z".parse::<DateTime<Utc>>().unwrap());
    }

    #[test]
    fn retries_wait_longer_each_time_up_to_an_hour_and_a_fifth() {
        assert!(backoff(1) >= chrono::Duration::seconds(30) && backoff(1) <= chrono::Duration::seconds(36));
        assert!(backoff(40) <= chrono::Duration::seconds(3600 * 6 / 5));
    }
}
