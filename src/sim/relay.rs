//! The text path of a simulated call: plays Twilio's ConversationRelay part (the voice
//! webhook, then `setup`, `prompt`, `interrupt` and `dtmf` on the relay socket), with a
//! goal-driven caller choosing each prompt from the agent's streamed reply. The relay's
//! JSON stays in this file.

use std::time::Duration;

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::domain::language::Language;
use crate::sim::caller::{Caller, Reply};
use crate::sim::signed_post;
use crate::telephony::{signature, twiml};

/// How long the caller waits for the agent's next reply.
const REPLY_WAIT: Duration = Duration::from_secs(30);

/// What a text-path call did, as the caller saw it.
#[derive(Debug, Default)]
pub struct TextCall {
    pub call_sid: String,
    /// Twilio's next step after the relay ended: the owner was dialled.
    pub transferred: bool,
    /// The caller hung up (or stopped at max turns) instead of the agent ending the call.
    pub caller_hung_up: bool,
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An agent reply: its text, and the relay's `end` message when the session ended.
async fn read_reply(ws: &mut Socket, wait: Duration) -> anyhow::Result<(String, Option<Value>)> {
    let mut text = String::new();
    loop {
        let msg = match tokio::time::timeout(wait, ws.next()).await {
            Ok(msg) => msg,
            Err(_) if text.is_empty() => bail!("the agent said nothing for {} s", wait.as_secs()),
            Err(_) => return Ok((text, None)),
        };
        let frame = match msg {
            Some(Ok(Message::Text(frame))) => frame,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok((text, Some(json!({"type": "closed"})))),
            Some(Ok(_)) => continue,
        };
        let Ok(frame) = serde_json::from_str::<Value>(&frame) else { continue };
        match frame["type"].as_str() {
            Some("text") => {
                text.push_str(frame["token"].as_str().unwrap_or(""));
                if frame["last"] == true {
                    return Ok((text.trim().to_owned(), None));
                }
            }
            Some("end") => return Ok((text.trim().to_owned(), Some(frame))),
            _ => {}
        }
    }
}

/// Places a ConversationRelay call from `from` to `to` and lets `caller` answer each reply
/// until the agent ends it, the caller hangs up, or `max_turns` caller turns have passed.
pub async fn place_text_call(
    base_url: &str,
    to: &str,
    from: &str,
    auth_token: Option<&str>,
    caller: &mut Caller,
    dtmf: Option<&str>,
    max_turns: u32,
) -> anyhow::Result<TextCall> {
    let base = base_url.trim_end_matches('/');
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build()?;
    let call_sid = format!("CA{}", uuid::Uuid::new_v4().simple());
    let params: Vec<(String, String)> = [
        ("AccountSid", "ACsimulated"),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call_sid.as_str()),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("From", from),
        ("To", to),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let voice_url = format!("{base}/twilio/voice");
    let resp = signed_post(&client, auth_token, &voice_url, &params).send().await.context("voice webhook")?;
    if !resp.status().is_success() {
        bail!("voice webhook answered {}", resp.status());
    }
    let doc = twiml::read(&resp.text().await?);
    let Some(relay_url) = doc.relay_url else {
        bail!("the voice webhook did not answer with ConversationRelay (is the tenant's voice_path 'relay'?)")
    };
    let mut request = relay_url.as_str().into_client_request()?;
    if let Some(token) = auth_token {
        request.headers_mut().insert("X-Twilio-Signature", signature::sign(token, &relay_url, &[]).parse()?);
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.context("relay connect")?;
    let custom: serde_json::Map<String, Value> =
        doc.parameters.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    let setup = json!({"type": "setup", "sessionId": format!("VX{}", uuid::Uuid::new_v4().simple()),
        "accountSid": "ACsimulated", "callSid": call_sid, "from": from, "to": to, "direction": "inbound",
        "customParameters": custom});
    ws.send(Message::text(setup.to_string())).await?;

    let mut out = TextCall { call_sid: call_sid.clone(), ..TextCall::default() };
    // Twilio speaks the welcome greeting itself: it is the agent's first turn.
    let mut agent = doc.welcome_greeting.unwrap_or_default();
    let mut end: Option<Value> = None;
    if let Some(keys) = dtmf {
        for digit in keys.chars() {
            ws.send(Message::text(json!({"type": "dtmf", "digit": digit.to_string()}).to_string())).await?;
            let (text, e) = read_reply(&mut ws, REPLY_WAIT).await?;
            agent = text;
            end = e;
        }
    }
    let lang = if caller.language() == Language::Spanish { "es-US" } else { "en-US" };
    while end.is_none() {
        if caller.turns >= max_turns {
            out.caller_hung_up = true;
            break;
        }
        match caller.respond(&agent) {
            None => {
                // The agent said goodbye: the session's end follows.
                let (_, e) = read_reply(&mut ws, Duration::from_secs(5)).await.unwrap_or_default();
                end = e;
                break;
            }
            Some(Reply::HangUp) => {
                out.caller_hung_up = true;
                break;
            }
            Some(Reply::Silence) => {}
            Some(Reply::Say { text, over_agent }) => {
                if over_agent {
                    // The caller cut in a few words into the reply.
                    let heard: String = agent.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
                    let interrupt = json!({"type": "interrupt", "utteranceUntilInterrupt": heard,
                        "durationUntilInterruptMs": "900"});
                    ws.send(Message::text(interrupt.to_string())).await?;
                }
                let prompt = json!({"type": "prompt", "voicePrompt": text, "lang": lang, "last": true});
                ws.send(Message::text(prompt.to_string())).await?;
            }
        }
        let (text, e) = read_reply(&mut ws, REPLY_WAIT).await?;
        agent = text;
        end = e;
        if end.is_some() && !agent.is_empty() {
            // The last words before the end (a goodbye) still count as heard.
            let _ = caller.respond(&agent);
        }
    }
    let _ = ws.close(None).await;

    let handoff = end.as_ref().and_then(|e| e["handoffData"].as_str()).map(str::to_owned);
    if let (Some(after), Some(handoff)) = (doc.redirect.as_deref(), handoff) {
        let mut p = params.clone();
        p.push(("HandoffData".into(), handoff));
        let resp = signed_post(&client, auth_token, after, &p).send().await.context("relay action URL")?;
        out.transferred = twiml::read(&resp.text().await.unwrap_or_default()).dial.is_some();
    }
    let mut status = params.clone();
    status.retain(|(k, _)| k != "CallStatus");
    status.push(("CallStatus".into(), "completed".into()));
    status.push(("CallDuration".into(), "30".into()));
    let status_url = format!("{base}/twilio/status");
    signed_post(&client, auth_token, &status_url, &status).send().await.context("status callback")?;
    Ok(out)
}
