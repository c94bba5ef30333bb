//! Twilio ConversationRelay: Twilio recognises the caller and speaks our replies; we
//! exchange text over a WebSocket (`setup`/`prompt`/`dtmf`/`interrupt` in, `text`/`end`
//! out), each message typed once here for both ends. The same call actor converses, with
//! its speech stages switched off.

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use minijinja::context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::call::events::{Handoff, HandoffReason};
use crate::call::{CallInput, CallOutput};
use crate::dialogue::policy::Outcome;
use crate::storage::postgres::tenants::Tenant;
use crate::storage::postgres::{calls, tenants};
use crate::telephony::request::{TwilioError, TwilioRequest, xml};
use crate::telephony::session::{self, Inbound, Outbound};
use crate::telephony::{TelephonyState, twiml};

/// What Twilio tells us, in our terms.
#[derive(Debug, Clone, PartialEq)]
pub enum RelayEvent {
    Setup {
        call_sid: String,
        from: String,
        parameters: serde_json::Map<String, Value>,
    },
    /// A recognised utterance; `last: false` for partials.
    Prompt {
        text: String,
        last: bool,
    },
    Dtmf(char),
    Interrupt {
        heard: String,
    },
    Error(String),
}

/// A message Twilio sends, as it is on the wire.
#[derive(Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum Frame {
    #[serde(rename_all = "camelCase")]
    Setup {
        call_sid: String,
        #[serde(default)]
        from: String,
        #[serde(default)]
        custom_parameters: serde_json::Map<String, Value>,
    },
    #[serde(rename_all = "camelCase")]
    Prompt {
        voice_prompt: String,
        #[serde(default = "yes")]
        last: bool,
    },
    Dtmf {
        digit: String,
    },
    #[serde(rename_all = "camelCase")]
    Interrupt {
        #[serde(default)]
        utterance_until_interrupt: String,
    },
    Error {
        #[serde(default)]
        description: String,
    },
}

fn yes() -> bool {
    true
}

/// Writes the message Twilio sends for `event` (what a simulated Twilio speaks).
pub fn write(event: &RelayEvent) -> String {
    let frame = match event.clone() {
        RelayEvent::Setup { call_sid, from, parameters } => {
            Frame::Setup { call_sid, from, custom_parameters: parameters }
        }
        RelayEvent::Prompt { text, last } => Frame::Prompt { voice_prompt: text, last },
        RelayEvent::Dtmf(digit) => Frame::Dtmf { digit: digit.to_string() },
        RelayEvent::Interrupt { heard } => Frame::Interrupt { utterance_until_interrupt: heard },
        RelayEvent::Error(description) => Frame::Error { description },
    };
    // Strings, booleans and a map of JSON values: serialising them cannot fail.
    serde_json::to_string(&frame).unwrap_or_default()
}

/// What we tell Twilio, as it is on the wire.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum RelayReply {
    /// A piece of the reply for Twilio to speak; `last` closes the reply.
    Text { token: String, last: bool },
    /// End the session; Twilio posts `handoff_data` to the `<Connect action>` URL.
    #[serde(rename_all = "camelCase")]
    End { handoff_data: String },
}

impl RelayReply {
    /// The message in wire form.
    pub fn to_json(&self) -> String {
        // Strings and a boolean: serialising them cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads one message we sent (what Twilio, or a simulated Twilio, reads).
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("not a ConversationRelay reply: {e}"))
    }
}

/// Parses one text frame from Twilio.
pub fn parse(text: &str) -> Result<RelayEvent, String> {
    let frame: Frame = serde_json::from_str(text).map_err(|e| format!("not a ConversationRelay message: {e}"))?;
    Ok(match frame {
        Frame::Setup { call_sid, from, custom_parameters } => {
            RelayEvent::Setup { call_sid, from, parameters: custom_parameters }
        }
        Frame::Prompt { voice_prompt, last } => RelayEvent::Prompt { text: voice_prompt, last },
        Frame::Dtmf { digit } => {
            let mut chars = digit.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => RelayEvent::Dtmf(c),
                _ => return Err(format!("dtmf digit {digit:?} is not a key")),
            }
        }
        Frame::Interrupt { utterance_until_interrupt } => RelayEvent::Interrupt { heard: utterance_until_interrupt },
        Frame::Error { description } => RelayEvent::Error(description),
    })
}

/// The greeting Twilio speaks when the session opens (the actor records the same line).
pub fn welcome_greeting(app: &TelephonyState, tenant: &Tenant) -> String {
    let lang = tenant.default_language();
    let greeting = tenant.custom_greeting.as_deref().filter(|g| !g.trim().is_empty());
    app.call_deps.prompts.render(
        lang,
        "greeting",
        &context! { business_name => &tenant.business_name, greeting => greeting },
    )
}

/// `GET /twilio/relay`: the ConversationRelay WebSocket.
/// The signature covers the `wss://` URL alone.
pub async fn relay(State(app): State<TelephonyState>, ws: WebSocketUpgrade, _signed: TwilioRequest) -> Response {
    session::configure(ws)
        .on_failed_upgrade(|e| tracing::warn!(error = %e, "relay upgrade failed"))
        .on_upgrade(move |socket| relay_session(app, socket))
}

/// `POST /twilio/relay-ended`: the session ended; transfer to the owner or hang up.
pub async fn relay_ended(State(app): State<TelephonyState>, hook: TwilioRequest) -> Result<Response, TwilioError> {
    let call_sid = hook.call_sid()?;
    let handoff = hook.field("HandoffData").unwrap_or("");
    let wants_transfer = Handoff::from_json(handoff).is_some_and(|h| h.reason == HandoffReason::Transfer);
    if wants_transfer
        && let Some(call) = calls::find_by_sid(&app.pool, call_sid).await?
        && let Some(tenant) = tenants::find(&app.pool, call.client_id).await?
    {
        let caller = Some(call.from_number.as_str()).filter(|f| !f.is_empty());
        return Ok(xml(twiml::dial(&tenant.owner_phone, caller)));
    }
    Ok(xml(twiml::hang_up()))
}

async fn relay_session(app: TelephonyState, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let setup = session::opening_message(&mut stream, |text| match parse(text) {
        Ok(setup @ RelayEvent::Setup { .. }) => Some(setup),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "skipping a malformed message before setup");
            None
        }
    })
    .await;
    let Some(RelayEvent::Setup { call_sid, parameters, .. }) = setup else {
        tracing::warn!("relay socket closed before its setup message");
        return;
    };
    let claimed_tenant = parameters.get("tenant_id").and_then(Value::as_str);
    let setup = match session::resolve_call(&app.pool, &call_sid, claimed_tenant, "", true).await {
        Ok(setup) => setup,
        Err(e) => {
            tracing::warn!(call_sid, error = %e, "relay session for an unknown call; closing");
            let handoff = Handoff { reason: HandoffReason::UnknownCall, outcome: Outcome::None };
            let end = RelayReply::End { handoff_data: handoff.to_json() };
            let _ = sink.send(Message::Text(end.to_json().into())).await;
            let _ = sink.close().await;
            return;
        }
    };
    let read = |text: &str, _: &crate::call::tap::AudioTap| match parse(text) {
        Ok(RelayEvent::Prompt { text, last: true }) => Inbound::Send(CallInput::Prompt(text)),
        Ok(RelayEvent::Prompt { .. } | RelayEvent::Setup { .. }) => Inbound::Skip,
        Ok(RelayEvent::Dtmf(d)) => Inbound::Send(CallInput::Dtmf(d)),
        Ok(RelayEvent::Interrupt { heard }) => Inbound::Send(CallInput::Interrupted { heard }),
        Ok(RelayEvent::Error(description)) => {
            tracing::warn!(description, "ConversationRelay reported an error");
            Inbound::Skip
        }
        Err(e) => {
            tracing::warn!(error = %e, "skipping a malformed relay message");
            Inbound::Skip
        }
    };
    let write = |out: CallOutput| match out {
        CallOutput::Text { token, last } => Outbound::Frame(RelayReply::Text { token, last }.to_json()),
        CallOutput::End { handoff } => Outbound::Frame(RelayReply::End { handoff_data: handoff.to_json() }.to_json()),
        CallOutput::Close => Outbound::Close,
        // Audio never flows on this path.
        CallOutput::Audio(_) | CallOutput::Mark(_) | CallOutput::Clear => Outbound::Skip,
    };
    session::run(app, setup, sink, stream, read, write).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn relay_messages_are_read_in_their_real_shapes() {
        let setup = r#"{"type":"setup","sessionId":"VX1","accountSid":"AC1","callSid":"CA1","from":"+15557654321","to":"+15550001111","forwardedFrom":"","callerName":"","direction":"inbound","customParameters":{"tenant_id":"7"}}"#;
        assert!(matches!(parse(setup), Ok(RelayEvent::Setup { call_sid, .. }) if call_sid == "CA1"));
        assert_eq!(
            parse(r#"{"type":"prompt","voicePrompt":"I'd like to book","lang":"en-US","last":true}"#),
            Ok(RelayEvent::Prompt { text: "I'd like to book".into(), last: true })
        );
        assert_eq!(parse(r#"{"type":"dtmf","digit":"2"}"#), Ok(RelayEvent::Dtmf('2')));
        // The duration may come as a string or a number.
        for interrupt in [
            r#"{"type":"interrupt","utteranceUntilInterrupt":"I have Tuesday","durationUntilInterruptMs":"840"}"#,
            r#"{"type":"interrupt","utteranceUntilInterrupt":"I have Tuesday","durationUntilInterruptMs":840}"#,
        ] {
            assert_eq!(parse(interrupt), Ok(RelayEvent::Interrupt { heard: "I have Tuesday".into() }));
        }
        assert_eq!(parse(r#"{"type":"error","description":"bad"}"#), Ok(RelayEvent::Error("bad".into())));
    }

    #[test]
    fn malformed_relay_messages_are_errors() {
        for bad in ["", "{}", r#"{"type":"prompt"}"#, r#"{"type":"dtmf","digit":"12"}"#, r#"{"type":"nope"}"#, "[]"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_twilio_writes_reads_back_as_the_same_event() {
        let mut parameters = serde_json::Map::new();
        parameters.insert("tenant_id".into(), "7".into());
        for event in [
            RelayEvent::Setup { call_sid: "CA1".into(), from: "+15557654321".into(), parameters },
            RelayEvent::Prompt { text: "I'd like to book".into(), last: false },
            RelayEvent::Dtmf('#'),
            RelayEvent::Interrupt { heard: "I have Tuesday".into() },
            RelayEvent::Error("bad".into()),
        ] {
            assert_eq!(parse(&write(&event)), Ok(event.clone()), "{event:?}");
        }
    }

    #[test]
    fn our_replies_have_twilios_exact_shape_and_read_back() {
        let text = RelayReply::Text { token: "Hello".into(), last: true };
        let end = RelayReply::End { handoff_data: r#"{"reason":"transfer"}"#.into() };
        let shape = |reply: &RelayReply| serde_json::from_str::<Value>(&reply.to_json()).unwrap();
        assert_eq!(shape(&text), json!({"type": "text", "token": "Hello", "last": true}));
        assert_eq!(shape(&end), json!({"type": "end", "handoffData": r#"{"reason":"transfer"}"#}));
        assert_eq!(RelayReply::parse(&text.to_json()), Ok(text));
        assert_eq!(RelayReply::parse(&end.to_json()), Ok(end));
        assert!(RelayReply::parse(r#"{"type":"prompt"}"#).is_err());
    }
}
