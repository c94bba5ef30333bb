//! Twilio's webhooks (incoming call, after-stream, status callback) and the Media Streams
//! WebSocket. Every request is signature-checked when an Auth Token is configured.

use axum::extract::State;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};

use crate::call::tap::AudioTap;
use crate::call::{CallInput, CallOutput};
use crate::domain::calls::{HandledBy, Outcome};
use crate::domain::phone::PhoneNumber;
use crate::domain::tenants::VoicePath;
use crate::services;
use crate::services::credits::Reported;
use crate::storage::postgres::{calls, credits, tenants};
use crate::telephony::media_stream::{self, Outbound, StreamEvent};
use crate::telephony::request::{TwilioError, TwilioRequest, xml};
use crate::telephony::session::{self, Inbound};
use crate::telephony::{TelephonyState, twiml};

/// `POST /twilio/voice`: an incoming call. Finds the tenant by the number dialled.
pub async fn voice(State(app): State<TelephonyState>, hook: TwilioRequest) -> Result<Response, TwilioError> {
    let call_sid = hook.call_sid()?;
    let to = hook.field("To").unwrap_or("");
    let from = hook.field("From").unwrap_or("");
    let to_normalised = PhoneNumber::parse(to).map(|p| p.as_str().to_owned()).unwrap_or_else(|_| to.to_owned());
    let Some(tenant) = tenants::find_by_number(&app.pool, &to_normalised).await? else {
        tracing::warn!(call_sid, to, from, "call to a number no tenant owns");
        return Ok(xml(twiml::say_and_hang_up(
            "Sorry, this number is not in service. Please check the number and try again. Goodbye.",
            "en-US",
        )));
    };
    let blocked = {
        let mut conn = app.pool.acquire().await?;
        credits::is_blocked(
            &mut conn,
            tenant.id,
            &PhoneNumber::parse(from).map(|p| p.as_str().to_owned()).unwrap_or_else(|_| from.to_owned()),
        )
        .await?
    };
    // Out of credit: the owner's phone rings instead of the agent, and the call is theirs.
    let locked = match services::credits::standing(&app.pool, tenant.id, chrono::Utc::now()).await {
        Ok(account) => !account.account().can_answer(),
        Err(e) => {
            // Never leave a caller unanswered over a billing fault: the agent takes it.
            tracing::error!(call_sid, tenant_id = %tenant.id, error = %e, "could not read the credit account");
            false
        }
    };
    let handled_by = match (blocked, tenant.rachel_enabled && !locked) {
        (true, _) => HandledBy::None,
        (false, true) => HandledBy::Agent,
        (false, false) => HandledBy::Owner,
    };
    let mut tx = crate::storage::postgres::begin_tenant(&app.pool, tenant.id).await?;
    let call_id = calls::upsert(
        &mut tx,
        &calls::NewCall {
            client_id: tenant.id,
            call_sid,
            from_number: from,
            to_number: &to_normalised,
            handled_by,
            status: hook.field("CallStatus").unwrap_or("ringing"),
        },
    )
    .await?;
    tx.commit().await?;
    if blocked {
        // A short refusal in the business's language, then the line drops; never charged.
        tracing::info!(call_sid, tenant_id = %tenant.id, from, "caller is on the block list: refused");
        let language = tenant.default_language();
        let refusal = app.call_deps.prompts.render(language, "blocked_refusal", &minijinja::Value::UNDEFINED);
        return Ok(xml(twiml::say_and_hang_up(&refusal, language.twilio_locale())));
    }
    if handled_by == HandledBy::Owner {
        let why = if locked { "credit is used up" } else { "agent is off" };
        tracing::info!(call_sid, tenant_id = %tenant.id, why, "forwarding to the owner");
        return Ok(xml(twiml::dial(&tenant.owner_phone, Some(from).filter(|f| !f.is_empty()))));
    }
    let tenant_id = tenant.id.to_string();
    let call_id_text = call_id.to_string();
    let parameters = [("tenant_id", tenant_id.as_str()), ("call_id", call_id_text.as_str()), ("caller", from)];
    if app.config.relay_for_all || tenant.voice_path == VoicePath::Relay {
        tracing::info!(call_sid, tenant_id = %tenant.id, %call_id, "incoming call: connecting ConversationRelay");
        let greeting = crate::telephony::conversation_relay::welcome_greeting(&app, &tenant);
        let relay_url = format!("{}/twilio/relay", app.config.public_ws_url());
        let action = format!("{}/twilio/relay-ended", app.config.public_url);
        return Ok(xml(twiml::connect_relay(&twiml::Relay {
            url: &relay_url,
            welcome_greeting: &greeting,
            language: tenant.language.twilio_locale(),
            voice: RACHEL_VOICE,
            spanish_voice: LINA_VOICE,
            parameters: &parameters,
            action: &action,
        })));
    }
    tracing::info!(call_sid, tenant_id = %tenant.id, %call_id, "incoming call: connecting the agent");
    let stream_url = format!("{}/twilio/media", app.config.public_ws_url());
    let after = format!("{}/twilio/after", app.config.public_url);
    Ok(xml(twiml::connect_stream(&stream_url, &parameters, &after)))
}

/// ElevenLabs voices Twilio speaks with on the ConversationRelay path.
const RACHEL_VOICE: &str = "21m00Tcm4TlvDq8ikWAM";
const LINA_VOICE: &str = "ThT5KcBeYPX3keUQqHPh";

/// `POST /twilio/after`: TwiML fetched when our stream closes — transfer or hang up.
pub async fn after_stream(State(app): State<TelephonyState>, hook: TwilioRequest) -> Result<Response, TwilioError> {
    let call_sid = hook.call_sid()?;
    let Some(call) = calls::find_by_sid(&app.pool, call_sid).await? else {
        return Ok(xml(twiml::hang_up()));
    };
    if call.outcome == Outcome::Transfer
        && let Some(tenant) = tenants::find(&app.pool, call.client_id).await?
    {
        return Ok(xml(twiml::dial(
            &tenant.owner_phone,
            Some(&call.from_number).filter(|f| !f.is_empty()).map(|s| s.as_str()),
        )));
    }
    Ok(xml(twiml::hang_up()))
}

/// `POST /twilio/status`: the call's final status and billed duration. Twilio retries
/// callbacks; applying one twice changes nothing.
pub async fn status(State(app): State<TelephonyState>, hook: TwilioRequest) -> Result<Response, TwilioError> {
    let call_sid = hook.call_sid()?;
    let status = hook.required("CallStatus")?;
    let duration = match hook.field("CallDuration") {
        Some(d) => {
            Some(d.parse::<i32>().map_err(|_| TwilioError::BadRequest("CallDuration must be whole seconds".into()))?)
        }
        None => None,
    };
    if !calls::record_status(&app.pool, call_sid, status, duration).await? {
        tracing::warn!(call_sid, status, "status callback for an unknown call");
        return Ok(axum::http::StatusCode::NO_CONTENT.into_response());
    }
    if calls::is_final_status(status) {
        let reported = match duration {
            Some(seconds) => Reported::Twilio { seconds },
            None => Reported::CallRecord,
        };
        app.payments.meter_call(call_sid, reported).await.map_err(anyhow::Error::from)?;
    }
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

/// `GET /twilio/media`: the Media Streams WebSocket.
/// The signature covers the `wss://` URL alone.
pub async fn media(State(app): State<TelephonyState>, ws: WebSocketUpgrade, _signed: TwilioRequest) -> Response {
    session::configure(ws)
        .on_failed_upgrade(|e| tracing::warn!(error = %e, "media stream upgrade failed"))
        .on_upgrade(move |socket| media_session(app, socket))
}

/// Waits for the `start` frame, then runs the call's actor with a reader and a writer
/// translating between Twilio's frames and the actor's messages.
async fn media_session(app: TelephonyState, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let start = session::opening_message(&mut stream, |text| match media_stream::parse(text) {
        Ok(StreamEvent::Start(start)) => Some(start),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "skipping a malformed frame before start");
            None
        }
    })
    .await;
    let Some(start) = start else {
        tracing::warn!("media stream closed before its start frame");
        return;
    };
    let claimed_tenant = start.parameters.get("tenant_id").map(String::as_str);
    let setup =
        match Box::pin(session::resolve_call(&app.pool, &start.call_sid, claimed_tenant, &start.stream_sid, false))
            .await
        {
            Ok(setup) => setup,
            Err(e) => {
                tracing::warn!(call_sid = %start.call_sid, error = %e, "media stream for an unknown call; closing");
                let _ = sink.close().await;
                return;
            }
        };
    let stream_sid = setup.stream_sid.clone();
    let read = |text: &str, tap: &AudioTap| match media_stream::parse(text) {
        Ok(StreamEvent::Audio { bytes, .. }) if bytes.is_empty() => Inbound::Skip,
        // Audio is real-time: if the actor is behind, drop rather than queue.
        Ok(StreamEvent::Audio { bytes, timestamp_ms }) => match tap.route(bytes, timestamp_ms) {
            Some(input) => Inbound::Offer(input),
            None => Inbound::Skip,
        },
        Ok(StreamEvent::Dtmf(d)) => Inbound::Send(CallInput::Dtmf(d)),
        Ok(StreamEvent::Mark(m)) => Inbound::Send(CallInput::Mark(m)),
        Ok(StreamEvent::Stop) => Inbound::Stop,
        Ok(StreamEvent::Connected | StreamEvent::Start(_)) => Inbound::Skip,
        Err(e) => {
            tracing::warn!(error = %e, "skipping a malformed media stream frame");
            Inbound::Skip
        }
    };
    let write = move |out: CallOutput| match out {
        CallOutput::Audio(audio) => session::Outbound::Frame(Outbound::media(&stream_sid, &audio)),
        CallOutput::Mark(name) => session::Outbound::Frame(Outbound::mark(&stream_sid, &name)),
        CallOutput::Clear => session::Outbound::Frame(Outbound::clear(&stream_sid)),
        CallOutput::Close => session::Outbound::Close,
        // Text only flows on the ConversationRelay path.
        CallOutput::Text { .. } | CallOutput::End { .. } => session::Outbound::Skip,
    };
    session::run(app, setup, sink, stream, read, write).await;
}
