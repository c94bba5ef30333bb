//! The owner's Settings page (`/app/settings`) and its JSON twin (`/api/settings`):
//! greeting, business text, hours, appointment length, time zone, languages, the Rachel
//! and recording switches, and the carrier codes that forward calls to RinglyPro.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::accounts::FieldError;
use crate::domain::forwarding;
use crate::domain::ids::TenantId;
use crate::domain::language::Language;
use crate::domain::phone::PhoneNumber;
use crate::domain::settings::SettingsForm;
use crate::services::summaries::{Channel, Scope};
use crate::storage::postgres::settings::{self, Settings, Switches};
use crate::storage::postgres::summaries;
use crate::storage::postgres::{begin_tenant, tenants};
use crate::web::Error;
use crate::web::WebState;
use crate::web::accounts::COMMON_TIMEZONES;
use crate::web::auth::Owner;
use crate::web::json_body::JsonBody;
use crate::web::shell::render;

/// One carrier's forwarding codes, the RinglyPro number filled in.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ForwardingView {
    /// e.g. `att`, `verizon`, `t_mobile`.
    pub carrier: String,
    pub carrier_name: String,
    /// Dial to forward unanswered calls to RinglyPro.
    pub turn_on: String,
    /// Dial to stop forwarding.
    pub turn_off: String,
    pub covers: String,
}

/// The settings as the owner sees them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SettingsView {
    pub business_name: String,
    /// `None` while the number is pending.
    pub ringlypro_number: Option<String>,
    pub number_pending: bool,
    pub owner_phone: String,
    pub custom_greeting: Option<String>,
    pub business_description: String,
    pub services: String,
    #[schema(example = "mon-fri")]
    pub business_days: String,
    #[schema(example = "09:00")]
    pub opens: String,
    #[schema(example = "17:00")]
    pub closes: String,
    pub appointment_minutes: i32,
    pub buffer_minutes: i32,
    #[schema(example = "America/New_York")]
    pub timezone: String,
    /// `en` (Rachel) and/or `es` (Lina).
    pub languages: Vec<String>,
    pub default_language: String,
    pub rachel_enabled: bool,
    /// Callers hear that the call is recorded when this is on.
    pub recording_enabled: bool,
    /// Empty while the number is pending.
    pub forwarding: Vec<ForwardingView>,
}

fn forwarding_codes(number: Option<&str>) -> Vec<ForwardingView> {
    let Some(number) = number.and_then(|n| PhoneNumber::parse(n).ok()) else {
        return Vec::new();
    };
    forwarding::all_codes(&number)
        .into_iter()
        .map(|c| ForwardingView {
            carrier: serde_json::to_value(c.carrier)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            carrier_name: c.carrier_name.to_owned(),
            turn_on: c.turn_on,
            turn_off: c.turn_off,
            covers: c.covers.to_owned(),
        })
        .collect()
}

impl From<Settings> for SettingsView {
    fn from(s: Settings) -> Self {
        let forwarding = forwarding_codes(s.ringlypro_number.as_deref());
        SettingsView {
            number_pending: s.ringlypro_number.is_none(),
            opens: s.business_hours_start.format("%H:%M").to_string(),
            closes: s.business_hours_end.format("%H:%M").to_string(),
            business_name: s.business_name,
            ringlypro_number: s.ringlypro_number,
            owner_phone: s.owner_phone,
            custom_greeting: s.custom_greeting,
            business_description: s.business_description,
            services: s.services,
            business_days: s.business_days,
            appointment_minutes: s.appointment_minutes,
            buffer_minutes: s.buffer_minutes,
            timezone: s.timezone,
            languages: s.languages,
            default_language: s.language,
            rachel_enabled: s.rachel_enabled,
            recording_enabled: s.recording_enabled,
            forwarding,
        }
    }
}

/// A change to some settings: fields left out stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SettingsPatch {
    /// Empty text brings back the standard greeting.
    pub custom_greeting: Option<String>,
    pub business_description: Option<String>,
    pub services: Option<String>,
    pub business_days: Option<String>,
    pub opens: Option<String>,
    pub closes: Option<String>,
    pub appointment_minutes: Option<i64>,
    pub buffer_minutes: Option<i64>,
    pub timezone: Option<String>,
    pub languages: Option<Vec<String>>,
    pub default_language: Option<String>,
    pub rachel_enabled: Option<bool>,
    pub recording_enabled: Option<bool>,
}

impl SettingsPatch {
    fn apply(self, form: &mut SettingsForm) -> Switches {
        let set = |target: &mut String, value: Option<String>| {
            if let Some(v) = value {
                *target = v;
            }
        };
        set(&mut form.custom_greeting, self.custom_greeting);
        set(&mut form.business_description, self.business_description);
        set(&mut form.services, self.services);
        set(&mut form.business_days, self.business_days);
        set(&mut form.opens, self.opens);
        set(&mut form.closes, self.closes);
        set(&mut form.appointment_minutes, self.appointment_minutes.map(|n| n.to_string()));
        set(&mut form.buffer_minutes, self.buffer_minutes.map(|n| n.to_string()));
        set(&mut form.timezone, self.timezone);
        set(&mut form.default_language, self.default_language);
        if let Some(languages) = self.languages {
            form.languages = languages;
        }
        Switches { rachel_enabled: self.rachel_enabled, recording_enabled: self.recording_enabled }
    }
}

async fn load(app: &WebState, client_id: TenantId) -> Result<Settings, Error> {
    let mut tx = begin_tenant(&app.pool, client_id).await?;
    let found = settings::load(&mut tx, client_id).await?;
    tx.commit().await?;
    found.ok_or_else(|| Error::NotFound("this account's business no longer exists".into()))
}

/// Validates `form` and saves it with `switches`, all or nothing.
async fn save(app: &WebState, owner: &Owner, form: &SettingsForm, switches: Switches) -> Result<(), Error> {
    let valid = form.validate().map_err(Error::Invalid)?;
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let saved = settings::save(&mut tx, owner.client_id, &valid, switches).await?;
    tx.commit().await?;
    if !saved {
        return Err(Error::NotFound("this account's business no longer exists".into()));
    }
    tracing::info!(tenant_id = %owner.client_id, user_id = %owner.user_id, "settings saved");
    Ok(())
}

/// `GET /api/settings`
#[utoipa::path(
    get,
    path = "/api/settings",
    tag = "settings",
    summary = "The signed-in business's settings and forwarding codes",
    responses(
        (status = 200, body = SettingsView),
        (status = 401, description = "not signed in", body = crate::web::error::ErrorBody),
    ),
    security(("session" = []))
)]
pub async fn get_api(State(app): State<WebState>, owner: Owner) -> Result<Json<SettingsView>, Error> {
    Ok(Json(load(&app, owner.client_id).await?.into()))
}

/// `PATCH /api/settings`
#[utoipa::path(
    patch,
    path = "/api/settings",
    tag = "settings",
    summary = "Change some settings; the next call uses them",
    request_body = SettingsPatch,
    responses(
        (status = 200, body = SettingsView),
        (status = 400, description = "a field is wrong: `field` names it", body = crate::web::error::ErrorBody),
        (status = 401, description = "not signed in", body = crate::web::error::ErrorBody),
        (status = 403, description = "missing CSRF token", body = crate::web::error::ErrorBody),
    ),
    security(("session" = [], "csrf" = []))
)]
pub async fn patch_api(
    State(app): State<WebState>,
    owner: Owner,
    JsonBody(patch): JsonBody<SettingsPatch>,
) -> Result<Json<SettingsView>, Error> {
    let mut form = load(&app, owner.client_id).await?.form();
    let switches = patch.apply(&mut form);
    save(&app, &owner, &form, switches).await?;
    Ok(Json(load(&app, owner.client_id).await?.into()))
}

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    saved: Option<String>,
}

async fn page(
    app: &WebState,
    owner: &Owner,
    stored: &Settings,
    form: &SettingsForm,
    errors: &[FieldError],
    notice: Option<&str>,
) -> Result<Response, Error> {
    // The first message for a field wins (the list is read backwards into the map).
    let errors: std::collections::BTreeMap<String, String> =
        errors.iter().rev().map(|e| (e.field.to_owned(), e.message.clone())).collect();
    let number_formatted = stored
        .ringlypro_number
        .as_deref()
        .map(|n| PhoneNumber::parse(n).map(|p| p.formatted()).unwrap_or_else(|_| n.to_owned()));
    let blocked: Vec<_> = crate::web::blocked::for_page(app, owner)
        .await?
        .into_iter()
        .map(|b| {
            let shown = PhoneNumber::parse(&b.phone).map(|p| p.formatted()).unwrap_or_else(|_| b.phone.clone());
            context! { phone => b.phone, shown, note => b.note }
        })
        .collect();
    let summaries = summary_preferences(app, owner.client_id).await?;
    render(
        &app.templates,
        "settings.html",
        context! {
            owner => minijinja::Value::from(minijinja::value::Serde(owner)),
            active => "settings",
            form => minijinja::Value::from(minijinja::value::Serde(form)),
            errors,
            notice,
            business_name => &stored.business_name,
            number => &stored.ringlypro_number,
            number_formatted,
            owner_phone => &stored.owner_phone,
            rachel_enabled => stored.rachel_enabled,
            recording_enabled => stored.recording_enabled,
            forwarding => minijinja::Value::from(minijinja::value::Serde(forwarding_codes(stored.ringlypro_number.as_deref()))),
            timezones => COMMON_TIMEZONES.to_vec(),
            blocked,
            summaries => minijinja::Value::from(minijinja::value::Serde(summaries)),
        },
    )
}

/// `GET /app/settings`
pub async fn show(
    State(app): State<WebState>,
    owner: Owner,
    Query(query): Query<PageQuery>,
) -> Result<Response, Error> {
    let stored = load(&app, owner.client_id).await?;
    let notice = match query.saved.as_deref() {
        Some("settings") => Some("Saved. The next call uses these settings."),
        Some("rachel") => Some("Saved. The Rachel switch applies from the next call."),
        Some("recording") => Some("Saved. Recording changes apply from the next call."),
        Some("blocked") => Some("Blocked. Callers from that number now hear a short refusal and cost nothing."),
        Some("blocked-invalid") => Some("That is not a phone number we can dial; nothing was blocked."),
        Some("unblocked") => Some("Unblocked. That number's calls are answered again."),
        Some("summaries") => Some("Saved. Call summaries follow your choice from the next call."),
        _ => None,
    };
    page(&app, &owner, &stored, &stored.form(), &[], notice).await
}

/// The settings form from its urlencoded fields (the language boxes repeat one name).
fn form_from(fields: Vec<(String, String)>) -> SettingsForm {
    let mut form = SettingsForm::default();
    for (name, value) in fields {
        match name.as_str() {
            "custom_greeting" => form.custom_greeting = value,
            "business_description" => form.business_description = value,
            "services" => form.services = value,
            "business_days" => form.business_days = value,
            "opens" => form.opens = value,
            "closes" => form.closes = value,
            "appointment_minutes" => form.appointment_minutes = value,
            "buffer_minutes" => form.buffer_minutes = value,
            "timezone" => form.timezone = value,
            "languages" => form.languages.push(value),
            "default_language" => form.default_language = value,
            _ => {}
        }
    }
    form
}

/// `POST /app/settings` (the whole form, with the CSRF token). A mistake re-shows the
/// form with everything typed and a message at each wrong field.
pub async fn submit(
    State(app): State<WebState>,
    owner: Owner,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Result<Response, Error> {
    let form = form_from(fields);
    match save(&app, &owner, &form, Switches::default()).await {
        Ok(()) => Ok(Redirect::to("/app/settings?saved=settings").into_response()),
        Err(Error::Invalid(errors)) => {
            let stored = load(&app, owner.client_id).await?;
            let mut response = page(&app, &owner, &stored, &form, &errors, None).await?;
            *response.status_mut() = StatusCode::BAD_REQUEST;
            Ok(response)
        }
        Err(e) => Err(e),
    }
}

/// An on/off switch as a form sends it.
#[derive(Debug, Deserialize)]
pub struct SwitchForm {
    /// The state wanted (not "flip"), so a double tap cannot undo itself.
    enabled: String,
}

impl SwitchForm {
    /// `true|on|1` or `false|off|0`; anything else is the sender's mistake.
    fn wanted(&self) -> Result<bool, Error> {
        match self.enabled.as_str() {
            "true" | "on" | "1" => Ok(true),
            "false" | "off" | "0" => Ok(false),
            other => Err(Error::BadRequest(format!("enabled must be true or false, got {other:?}"))),
        }
    }
}

/// Turns the voice agent on or off for the owner's tenant from its next call: the one
/// switch behind the Today page's and the settings page's.
pub(crate) async fn switch_rachel(app: &WebState, owner: &Owner, form: &SwitchForm) -> Result<(), Error> {
    let enabled = form.wanted()?;
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let changed = tenants::set_rachel_enabled(&mut tx, owner.client_id, enabled).await?;
    tx.commit().await?;
    if !changed {
        return Err(Error::NotFound("this account's business no longer exists".into()));
    }
    tracing::info!(tenant_id = %owner.client_id, user_id = %owner.user_id, enabled, "Rachel switched");
    Ok(())
}

/// `POST /app/settings/rachel` (`enabled=true|false`): the same switch as the Today page's.
pub async fn set_rachel(
    State(app): State<WebState>,
    owner: Owner,
    axum::Form(form): axum::Form<SwitchForm>,
) -> Result<Response, Error> {
    switch_rachel(&app, &owner, &form).await?;
    Ok(Redirect::to("/app/settings?saved=rachel").into_response())
}

/// `POST /app/settings/recording` (`enabled=true|false`).
pub async fn set_recording(
    State(app): State<WebState>,
    owner: Owner,
    axum::Form(form): axum::Form<SwitchForm>,
) -> Result<Response, Error> {
    let enabled = form.wanted()?;
    tenants::set_recording_enabled(&app.pool, owner.client_id, enabled).await?;
    tracing::info!(tenant_id = %owner.client_id, user_id = %owner.user_id, enabled, "call recording switched");
    Ok(Redirect::to("/app/settings?saved=recording").into_response())
}

/// The owner's choice of call summaries as the Settings form sends it.
#[derive(Debug, Deserialize)]
pub struct SummariesForm {
    channel: String,
    scope: String,
    #[serde(default)]
    digest_hour: String,
    #[serde(default)]
    email: String,
    language: String,
}

impl SummariesForm {
    /// The preferences to store, or a message naming the value that is wrong.
    fn preferences(&self) -> Result<summaries::StoredPreferences, Error> {
        let bad = |message: &str| Error::BadRequest(message.to_owned());
        Channel::parse(&self.channel).ok_or_else(|| bad("choose text, e-mail, both or none"))?;
        Scope::parse(&self.scope).ok_or_else(|| bad("choose every call, bookings and messages, or a daily digest"))?;
        let digest_hour = match self.digest_hour.trim() {
            "" => 18,
            hour => hour
                .split(':')
                .next()
                .and_then(|h| h.parse::<i16>().ok())
                .filter(|h| (0..24).contains(h))
                .ok_or_else(|| bad("the digest hour must be a whole hour from 0 to 23"))?,
        };
        let email = match self.email.trim() {
            "" => None,
            given => Some(
                crate::domain::accounts::Email::parse(given)
                    .map_err(|_| bad("the summary e-mail address is not a valid address"))?
                    .to_string(),
            ),
        };
        let language = Language::from_code(&self.language).ok_or_else(|| bad("choose English or Spanish"))?;
        Ok(summaries::StoredPreferences {
            summary_channel: self.channel.clone(),
            summary_scope: self.scope.clone(),
            summary_digest_hour: digest_hour,
            summary_email: email,
            summary_language: language.code().to_owned(),
        })
    }
}

async fn summary_preferences(app: &WebState, client_id: TenantId) -> Result<summaries::StoredPreferences, Error> {
    let mut tx = begin_tenant(&app.pool, client_id).await?;
    let stored = summaries::preferences(&mut tx, client_id).await?;
    tx.commit().await?;
    stored.ok_or_else(|| Error::NotFound("this account's business no longer exists".into()))
}

/// `POST /app/settings/summaries`: how and when the owner hears about calls.
pub async fn set_summaries(
    State(app): State<WebState>,
    owner: Owner,
    axum::Form(form): axum::Form<SummariesForm>,
) -> Result<Response, Error> {
    let preferences = form.preferences()?;
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let saved = summaries::save_preferences(&mut tx, owner.client_id, &preferences).await?;
    tx.commit().await?;
    if !saved {
        return Err(Error::NotFound("this account's business no longer exists".into()));
    }
    tracing::info!(tenant_id = %owner.client_id, channel = %preferences.summary_channel,
        scope = %preferences.summary_scope, "call summary preferences saved");
    Ok(Redirect::to("/app/settings?saved=summaries").into_response())
}

/// `GET /settings`: the navigation's short address.
pub async fn short_address() -> Redirect {
    Redirect::to("/app/settings")
}

/// The settings API, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_api, patch_api), components(schemas(SettingsView, SettingsPatch, ForwardingView)))]
pub struct SettingsApi;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_language_boxes_are_all_kept() {
        let form = form_from(vec![
            ("languages".into(), "en".into()),
            ("languages".into(), "es".into()),
            ("timezone".into(), "America/Chicago".into()),
        ]);
        assert_eq!(form.languages, vec!["en", "es"]);
        assert_eq!(form.timezone, "America/Chicago");
    }

    #[test]
    fn a_patch_changes_only_the_fields_it_names() {
        let mut form =
            SettingsForm { services: "Cleanings $99".into(), timezone: "America/Chicago".into(), ..Default::default() };
        let patch =
            SettingsPatch { custom_greeting: Some("Hello!".into()), rachel_enabled: Some(false), ..Default::default() };
        let switches = patch.apply(&mut form);
        assert_eq!(form.custom_greeting, "Hello!");
        assert_eq!(form.services, "Cleanings $99");
        assert_eq!(switches.rachel_enabled, Some(false));
        assert_eq!(switches.recording_enabled, None);
    }

    #[test]
    fn a_pending_number_has_no_forwarding_codes() {
        assert!(forwarding_codes(None).is_empty());
        let codes = forwarding_codes(Some("+15550001111"));
        assert_eq!(codes[0].carrier, "att");
        assert!(codes.iter().all(|c| c.turn_on.contains("5550001111")));
    }
}
