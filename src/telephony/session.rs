//! What both Twilio sockets (Media Streams and ConversationRelay) do the same way: wait for
//! the opening message, then run the call's actor between a reader task (frames → actor
//! input) and a writer task (actor output → frames). Only the translations differ.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::call::tap::AudioTap;
use crate::call::{CallActor, CallInput, CallOutput, CallSetup};
use crate::domain::ids::TenantId;
use crate::storage::postgres::{calls, tenants};
use crate::telephony::TelephonyState;

/// Limits and buffers of a Twilio call socket. Frames are small (a 20 ms media frame is
/// about 300 bytes), so small buffers keep the memory of a thousand live calls down.
pub fn configure(ws: axum::extract::ws::WebSocketUpgrade) -> axum::extract::ws::WebSocketUpgrade {
    ws.max_message_size(256 * 1024)
        .read_buffer_size(crate::telephony::SOCKET_BUFFER)
        .write_buffer_size(crate::telephony::SOCKET_BUFFER)
}

/// How long a socket may stay silent before its opening message.
const OPENING_TIMEOUT: Duration = Duration::from_secs(10);

/// What to do with one text frame from Twilio (caller audio goes through the call's
/// [`AudioTap`]: to the recogniser, and to the actor only when it must see it).
pub enum Inbound {
    /// Hand it to the actor, waiting for room.
    Send(CallInput),
    /// Real-time audio: hand it over only if the actor keeps up (dropped otherwise).
    Offer(CallInput),
    Skip,
    /// Twilio ended the session.
    Stop,
}

/// What to do with one message of the actor.
pub enum Outbound {
    Frame(String),
    Skip,
    Close,
}

/// Reads text frames until `opening` accepts one, for at most [`OPENING_TIMEOUT`].
pub async fn opening_message<T>(
    stream: &mut SplitStream<WebSocket>,
    mut opening: impl FnMut(&str) -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::sleep(OPENING_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return None,
            msg = stream.next() => match msg? {
                Ok(Message::Text(text)) => {
                    if let Some(found) = opening(&text) {
                        return Some(found);
                    }
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }
}

/// Finds the call a socket belongs to, from the call SID of its opening message. The
/// tenant comes from our own call record (made by the signed voice webhook); the tenant a
/// socket's parameters claim must be that one.
pub async fn resolve_call(
    pool: &PgPool,
    call_sid: &str,
    claimed_tenant: Option<&str>,
    stream_sid: &str,
    relay: bool,
) -> anyhow::Result<CallSetup> {
    let call =
        calls::find_by_sid(pool, call_sid).await?.ok_or_else(|| anyhow::anyhow!("no call record for {call_sid}"))?;
    if let Some(tenant_id) = claimed_tenant
        && tenant_id.parse::<TenantId>().ok() != Some(call.client_id)
    {
        anyhow::bail!("the socket's parameters name another tenant than the call record");
    }
    let tenant = tenants::find(pool, call.client_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("tenant {} no longer exists", call.client_id))?;
    Ok(CallSetup {
        tenant,
        call_id: call.id,
        call_sid: call.call_sid,
        stream_sid: stream_sid.to_owned(),
        caller: call.from_number,
        relay,
    })
}

/// Runs the call: registers it as live, spawns the reader and writer, runs the actor to
/// the end (which saves the call), then tears the socket down.
pub async fn run(
    app: TelephonyState,
    setup: CallSetup,
    mut sink: SplitSink<WebSocket, Message>,
    mut stream: SplitStream<WebSocket>,
    read: impl Fn(&str, &AudioTap) -> Inbound + Send + 'static,
    write: impl Fn(CallOutput) -> Outbound + Send + 'static,
) {
    let path = if setup.relay { "relay" } else { "stream" };
    let span = tracing::info_span!("call", call_sid = %setup.call_sid, tenant_id = %setup.tenant.id, path);
    let (registration, commands) = app.registry.register(&setup.call_sid, setup.tenant.id);
    let (in_tx, in_rx) = mpsc::channel::<CallInput>(512);
    let (out_tx, mut out_rx) = mpsc::channel::<CallOutput>(256);
    let tap = Arc::new(AudioTap::default());
    let reader_tap = tap.clone();
    let writer = tokio::spawn(
        async move {
            // Everything the actor has queued goes out in one write (a chunk of audio and
            // its mark are one syscall, not two).
            let mut batch = Vec::with_capacity(8);
            'frames: while out_rx.recv_many(&mut batch, 16).await > 0 {
                let mut close = false;
                for out in batch.drain(..) {
                    match write(out) {
                        Outbound::Frame(frame) => {
                            if sink.feed(Message::Text(frame.into())).await.is_err() {
                                return;
                            }
                        }
                        Outbound::Skip => {}
                        Outbound::Close => {
                            close = true;
                            break;
                        }
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
                if close {
                    break 'frames;
                }
            }
            let _ = sink.close().await;
        }
        .instrument(span.clone()),
    );
    let reader = tokio::spawn(
        async move {
            while let Some(msg) = stream.next().await {
                let text = match msg {
                    Ok(Message::Text(text)) => text,
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => continue,
                };
                match read(&text, &reader_tap) {
                    Inbound::Send(input) => {
                        if in_tx.send(input).await.is_err() {
                            return;
                        }
                    }
                    Inbound::Offer(input) => {
                        if let Err(mpsc::error::TrySendError::Full(_)) = in_tx.try_send(input) {
                            metrics::counter!("ringlypro_inbound_frames_dropped_total").increment(1);
                        }
                    }
                    Inbound::Skip => {}
                    Inbound::Stop => break,
                }
            }
            let _ = in_tx.send(CallInput::Hangup).await;
        }
        .instrument(span.clone()),
    );
    let actor = CallActor::new(app.call_deps.clone(), setup, out_tx).with_tap(tap);
    // Boxed: the actor's state lives in one allocation instead of being copied into this
    // future beside it.
    let f = Box::pin(actor.run(in_rx, commands, app.registry.shutdown_signal()));
    let summary = f.instrument(span.clone()).await;
    reader.abort();
    let _ = writer.await;
    drop(registration);
    span.in_scope(|| tracing::debug!(outcome = summary.outcome.as_str(), "session closed"));
}
