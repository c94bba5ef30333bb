//! The simulated caller: plays Twilio's part exactly — a signed voice webhook, then the
//! Media Streams socket with real-time 20 ms μ-law frames, playing the agent's audio back
//! at real-time speed, echoing marks when their audio has "played" and honouring `clear`.
//! Frames are written and read with telephony's own wire types, never by hand here.
//! The caller's lines come from a fixed list (`ringlypro call --say`) or, line by line,
//! from a goal-driven caller ([`Live`]) that decides each one after hearing the agent.

pub mod caller;
pub mod feed;
pub mod relay;
pub mod runner;
pub mod scenario;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::domain::language::Language;
use crate::providers::tts::{TextToSpeech, TtsRequest};
use crate::telephony::media_stream::{self, OutboundEvent, TwilioStream};
use crate::telephony::{signature, twiml};

const FRAME: usize = 160; // 20 ms of 8 kHz μ-law
const SILENCE: u8 = 0xff;

/// One thing the caller says.
#[derive(Debug, Clone)]
pub struct Line {
    pub text: String,
    /// Say it over the agent (about a second into the agent's turn) instead of waiting.
    pub over_agent: bool,
}

/// A scripted call.
#[derive(Debug, Clone)]
pub struct Script {
    /// Server base URL (its PUBLIC_URL), e.g. `http://127.0.0.1:3000`.
    pub base_url: String,
    pub to: String,
    pub from: String,
    pub lines: Vec<Line>,
    /// Signs requests as Twilio would, when the server checks signatures.
    pub auth_token: Option<String>,
    /// Quiet time after the agent's audio ends before the caller answers.
    pub answer_gap: Duration,
    /// Upper bound on the whole call.
    pub max_duration: Duration,
    /// Hang up right after saying the last line, without waiting for the agent.
    pub hang_up_after_last_line: bool,
    /// Background noise mixed into everything the caller sends, 0 (none) to 1 (loud).
    pub noise: f32,
    /// Waits for the server to save the call and reads its record back (the report's
    /// `record` and outcome). A load run that reads the database itself afterwards turns
    /// it off, so its callers put no extra reads on the server while calls end.
    pub fetch_record: bool,
}

/// What a live caller does next.
#[derive(Debug)]
pub enum Next {
    /// Say this line (its audio already synthesized).
    Say(Line, Vec<u8>),
    /// Say nothing this turn; wait for the agent to speak again.
    Silence,
    HangUp,
}

/// The channels a goal-driven caller drives a call through.
pub struct Live {
    /// Gets the CallSid once the voice webhook has answered; the media stream connects
    /// when the caller replies (after it has opened the call's live feed).
    pub answered: mpsc::UnboundedSender<(String, oneshot::Sender<()>)>,
    /// Ticks each time the agent's audio has ended and no line is waiting.
    pub agent_done: mpsc::UnboundedSender<()>,
    /// The caller's lines, as decided; a line `over_agent` may come at any time.
    pub lines: mpsc::UnboundedReceiver<Next>,
}

impl Script {
    pub fn new(base_url: &str, to: &str, from: &str, lines: Vec<Line>) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            to: to.to_owned(),
            from: from.to_owned(),
            lines,
            auth_token: None,
            answer_gap: Duration::from_millis(700),
            max_duration: Duration::from_secs(180),
            hang_up_after_last_line: false,
            noise: 0.0,
            fetch_record: true,
        }
    }
}

/// What the call produced, as the server recorded it.
#[derive(Debug, Clone)]
pub struct Report {
    pub call_sid: String,
    /// `booked`, `cancelled`, `message`, `transfer`, `none`, ...
    pub outcome: String,
    /// The server's record of the call (`GET /calls/{sid}`), if it answered one.
    pub record: Value,
    /// Agent audio received, in milliseconds, and how much of it was cleared unplayed.
    pub agent_audio_ms: u64,
    pub cleared_audio_ms: u64,
    /// `clear` frames received.
    pub clears: usize,
    /// Marks echoed back to the server.
    pub marks_echoed: usize,
    /// For each caller line: from its last audio frame to the agent's first audio frame
    /// (what the caller waits; includes the recogniser's end-of-speech silence).
    pub response_times: Vec<Duration>,
    /// What the server sent, in order: `media`, `clear`, or `mark:<name>`.
    pub received: Vec<String>,
    /// 20 ms frames of silence a real-time player heard inside an agent turn (audio late).
    pub late_frames: u64,
    /// For each line spoken over the agent: from its first audio frame to the `clear`.
    pub barge_in_times: Vec<Duration>,
    /// Marks of a cleared turn received after its `clear` (audio of the old turn sent late;
    /// after a false interruption the resumed turn's marks count here too).
    pub marks_after_clear: usize,
}

impl Report {
    /// The summary line `ringlypro call` ends with.
    pub fn summary(&self) -> Value {
        let appointment = self.record["appointments"]
            .as_array()
            .and_then(|a| a.iter().rev().find(|a| a["status"] != "cancelled"))
            .map(|a| json!({ "starts_at": a["starts_at"], "code": a["confirmation_code"] }));
        json!({ "call_sid": self.call_sid, "outcome": self.outcome, "appointment": appointment })
    }

    /// The transcript as lines of text.
    pub fn transcript(&self) -> String {
        let mut out = String::new();
        if let Some(turns) = self.record["turns"].as_array() {
            for t in turns {
                let who = if t["speaker"] == "caller" { "Caller" } else { "Agent " };
                let at = t["started_at"].as_str().unwrap_or("");
                let time = at.get(11..23).unwrap_or(at);
                out.push_str(&format!("[{time}] {who}: {}", t["text"].as_str().unwrap_or("")));
                if t["interrupted"] == true {
                    out.push_str(&format!("  (interrupted; heard: \"{}\")", t["heard_text"].as_str().unwrap_or("")));
                }
                out.push('\n');
            }
        }
        out
    }
}

fn random_sid(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// A form POST signed as Twilio signs its webhooks (when the server checks signatures).
pub(crate) fn signed_post(
    client: &reqwest::Client,
    token: Option<&str>,
    url: &str,
    params: &[(String, String)],
) -> reqwest::RequestBuilder {
    let mut req = client.post(url).form(params);
    if let Some(token) = token {
        req = req.header("X-Twilio-Signature", signature::sign(token, url, params));
    }
    req
}

/// Places the scripted call and returns what happened.
pub async fn place_call(script: &Script, voice: Arc<dyn TextToSpeech>) -> anyhow::Result<Report> {
    place_call_with(script, voice, None).await
}

/// Places a call whose lines a live caller decides as it goes (`script.lines` are unused).
pub async fn place_live_call(script: &Script, voice: Arc<dyn TextToSpeech>, live: Live) -> anyhow::Result<Report> {
    place_call_with(script, voice, Some(live)).await
}

async fn place_call_with(
    script: &Script,
    voice: Arc<dyn TextToSpeech>,
    mut live: Option<Live>,
) -> anyhow::Result<Report> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build()?;
    let call_sid = random_sid("CA");
    let account_sid = random_sid("AC");
    let token = script.auth_token.as_deref();
    let base_params = vec![
        ("AccountSid".to_owned(), account_sid.clone()),
        ("ApiVersion".to_owned(), "2010-04-01".to_owned()),
        ("CallSid".to_owned(), call_sid.clone()),
        ("CallStatus".to_owned(), "ringing".to_owned()),
        ("Direction".to_owned(), "inbound".to_owned()),
        ("From".to_owned(), script.from.clone()),
        ("To".to_owned(), script.to.clone()),
    ];
    let voice_url = format!("{}/twilio/voice", script.base_url);
    let response = signed_post(&client, token, &voice_url, &base_params).send().await.context("voice webhook")?;
    if !response.status().is_success() {
        bail!("voice webhook answered {}: {}", response.status(), response.text().await.unwrap_or_default());
    }
    let doc = response.text().await?;
    let instructions = twiml::read(&doc);
    if let Some(live) = &live {
        let (ready_tx, ready_rx) = oneshot::channel();
        if live.answered.send((call_sid.clone(), ready_tx)).is_ok() {
            let _ = ready_rx.await;
        }
    }
    let started = Instant::now();
    let mut report = Report {
        call_sid: call_sid.clone(),
        outcome: "none".into(),
        record: Value::Null,
        agent_audio_ms: 0,
        cleared_audio_ms: 0,
        clears: 0,
        marks_echoed: 0,
        response_times: Vec::new(),
        received: Vec::new(),
        late_frames: 0,
        barge_in_times: Vec::new(),
        marks_after_clear: 0,
    };
    if let Some(stream_url) = &instructions.stream_url {
        converse(
            script,
            voice,
            stream_url,
            &instructions.parameters,
            &call_sid,
            &account_sid,
            &mut report,
            live.as_mut(),
        )
        .await?;
        if let Some(after) = &instructions.redirect {
            let resp = signed_post(&client, token, after, &base_params).send().await.context("after-stream webhook")?;
            let next = twiml::read(&resp.text().await.unwrap_or_default());
            if next.dial.is_some() {
                report.outcome = "transfer".into();
            }
        }
    } else if instructions.dial.is_some() {
        report.outcome = "transfer".into();
    }
    // Twilio's final status callback.
    let mut status = base_params.clone();
    status.retain(|(k, _)| k != "CallStatus");
    status.push(("CallStatus".into(), "completed".into()));
    status.push(("CallDuration".into(), started.elapsed().as_secs().max(1).to_string()));
    let status_url = format!("{}/twilio/status", script.base_url);
    signed_post(&client, token, &status_url, &status).send().await.context("status callback")?;

    // The server saves the call when its actor ends; wait for that.
    // Asked again less and less often (up to every second, for 30 s in all), so a thousand
    // callers waiting at once do not become the server's load themselves.
    let record_url = format!("{}/calls/{call_sid}", script.base_url);
    let (mut wait, give_up) = (Duration::from_millis(100), Instant::now() + Duration::from_secs(30));
    while script.fetch_record && Instant::now() < give_up {
        let mut req = client.get(&record_url);
        if let Some(token) = token {
            req = req.header("X-Twilio-Signature", signature::sign(token, &record_url, &[]));
        }
        if let Ok(resp) = req.send().await
            && resp.status().is_success()
        {
            let record: Value = resp.json().await?;
            // Saved: the actor has left the live registry and its transcript is written.
            let saved =
                !record["live"].as_bool().unwrap_or(true) && record["turns"].as_array().is_some_and(|t| !t.is_empty());
            report.record = record;
            if saved || instructions.stream_url.is_none() {
                break;
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 3 / 2).min(Duration::from_secs(1));
    }
    if report.outcome != "transfer"
        && let Some(outcome) = report.record["call"]["outcome"].as_str()
    {
        report.outcome = outcome.to_owned();
    }
    Ok(report)
}

/// Synthesizes a line into μ-law bytes.
pub async fn synthesize(voice: &Arc<dyn TextToSpeech>, text: &str) -> anyhow::Result<Vec<u8>> {
    let mut rx = voice.synthesize(TtsRequest { text: text.to_owned(), language: Language::English });
    let mut audio = Vec::new();
    while let Some(chunk) = rx.recv().await {
        audio.extend(chunk.map_err(|e| anyhow::anyhow!("caller voice failed: {e}"))?);
    }
    Ok(audio)
}

/// The agent's audio as a real-time player would hear it.
#[derive(Default)]
struct Player {
    buffer: VecDeque<u8>,
    /// Marks with the number of buffered bytes ahead of them.
    marks: VecDeque<(String, usize)>,
    played: usize,
    queued_total: usize,
    last_audio_at: Option<Instant>,
    /// Frames that found the buffer empty shortly after audio played; they count as late
    /// if more audio of the same turn then arrives (a gap the caller would hear).
    starved: u64,
    /// Confirmed gaps, in 20 ms frames.
    late_frames: u64,
}

/// Silence longer than this ends a turn rather than being a gap in it.
const TURN_GAP: Duration = Duration::from_millis(300);

impl Player {
    fn push_audio(&mut self, bytes: &[u8]) {
        // Audio after a short silence mid-turn: that silence was a gap, not a pause.
        self.late_frames += std::mem::take(&mut self.starved);
        self.buffer.extend(bytes);
        self.queued_total += bytes.len();
    }
    fn push_mark(&mut self, name: String) {
        self.marks.push_back((name, self.queued_total));
    }
    /// Plays 20 ms; returns the marks whose audio has now played.
    fn play_frame(&mut self, now: Instant) -> Vec<String> {
        let n = self.buffer.len().min(FRAME);
        if n > 0 {
            self.buffer.drain(..n);
            self.played += n;
            self.last_audio_at = Some(now);
        } else if self.last_audio_at.is_some_and(|t| now.duration_since(t) < TURN_GAP) {
            self.starved += 1;
        } else {
            self.starved = 0;
        }
        let mut done = Vec::new();
        while self.marks.front().is_some_and(|(_, at)| *at <= self.played) {
            if let Some((name, _)) = self.marks.pop_front() {
                done.push(name);
            }
        }
        done
    }
    /// `clear`: drop the queue and echo every pending mark at once, as Twilio does.
    fn clear(&mut self) -> (usize, Vec<String>) {
        let dropped = self.buffer.len();
        self.buffer.clear();
        self.starved = 0;
        self.last_audio_at = None;
        self.played = self.queued_total;
        (dropped, self.marks.drain(..).map(|(n, _)| n).collect())
    }
    fn idle_for(&self, now: Instant) -> Option<Duration> {
        if !self.buffer.is_empty() {
            return None;
        }
        self.last_audio_at.map(|t| now.duration_since(t))
    }
}

/// Mixes white noise of `level` (0 to 1) into a μ-law frame.
fn add_noise(frame: &mut [u8], level: f32) {
    use rand::Rng;
    let amplitude = (level.clamp(0.0, 1.0) * 4000.0) as i32;
    if amplitude == 0 {
        return;
    }
    let mut rng = rand::rng();
    for b in frame.iter_mut() {
        let sample = i32::from(crate::audio::mulaw::decode(*b)) + rng.random_range(-amplitude..=amplitude);
        *b = crate::audio::mulaw::encode(sample.clamp(i16::MIN as i32, i16::MAX as i32) as i16);
    }
}

#[allow(clippy::too_many_arguments)]
async fn converse(
    script: &Script,
    voice: Arc<dyn TextToSpeech>,
    stream_url: &str,
    parameters: &[(String, String)],
    call_sid: &str,
    account_sid: &str,
    report: &mut Report,
    mut live: Option<&mut Live>,
) -> anyhow::Result<()> {
    let mut request = stream_url.into_client_request()?;
    if let Some(token) = &script.auth_token {
        request.headers_mut().insert("X-Twilio-Signature", signature::sign(token, stream_url, &[]).parse()?);
    }
    let (socket, _) =
        tokio_tungstenite::connect_async_with_config(request, Some(crate::telephony::client_socket_config()), true)
            .await
            .context("media stream connect")?;
    let (mut tx, mut rx) = socket.split();
    let mut twilio = TwilioStream::new(&random_sid("MZ"), call_sid, account_sid);
    tx.send(Message::text(twilio.connected())).await?;
    tx.send(Message::text(twilio.start(parameters.iter().cloned().collect()))).await?;

    // Synthesize every line up front so speaking never waits on the voice engine.
    let mut lines = VecDeque::new();
    for line in &script.lines {
        lines.push_back((line.clone(), synthesize(&voice, &line.text).await?));
    }

    let mut player = Player::default();
    let mut speaking: Option<(Vec<u8>, usize)> = None;
    let mut agent_spoke_since_line = false;
    let mut agent_turn_started: Option<Instant> = None;
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut done_at: Option<Instant> = None;
    let mut line_ended_at: Option<Instant> = None;
    let mut server_closed = false;
    let mut barge_started: Option<Instant> = None;
    let mut last_generation: Option<u64> = None;
    let mut cleared_generation: Option<u64> = None;
    // A live caller has been told the agent is done and has not answered yet.
    let mut requested = false;

    loop {
        tokio::select! {
            next = async { match live.as_mut() { Some(l) => l.lines.recv().await, None => std::future::pending().await } } => {
                match next {
                    Some(Next::Say(line, audio)) => lines.push_back((line, audio)),
                    Some(Next::Silence) => {
                        requested = false;
                        agent_spoke_since_line = false;
                    }
                    Some(Next::HangUp) | None => done_at = Some(Instant::now()),
                }
            }
            msg = rx.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => { server_closed = true; break; }
                    Some(Ok(_)) => continue,
                };
                match media_stream::parse_outbound(&text) {
                    Ok(OutboundEvent::Media(bytes)) => {
                        report.received.push("media".into());
                        if player.buffer.is_empty() && agent_turn_started.is_none() {
                            agent_turn_started = Some(Instant::now());
                        }
                        report.agent_audio_ms += bytes.len() as u64 / 8;
                        if let Some(ended) = line_ended_at.take() {
                            report.response_times.push(ended.elapsed());
                        }
                        player.push_audio(&bytes);
                        agent_spoke_since_line = true;
                    }
                    Ok(OutboundEvent::Mark(name)) => {
                        let generation = name.split('-').next().and_then(|g| g.parse::<u64>().ok());
                        if generation.is_some() && generation <= cleared_generation {
                            report.marks_after_clear += 1;
                        }
                        last_generation = generation.or(last_generation);
                        report.received.push(format!("mark:{name}"));
                        player.push_mark(name);
                    }
                    Ok(OutboundEvent::Clear) => {
                        report.clears += 1;
                        report.received.push("clear".into());
                        if let Some(t) = barge_started.take() {
                            report.barge_in_times.push(t.elapsed());
                        }
                        cleared_generation = last_generation;
                        let (dropped, marks) = player.clear();
                        report.cleared_audio_ms += dropped as u64 / 8;
                        for name in marks {
                            tx.send(Message::text(twilio.mark(&name))).await?;
                            report.marks_echoed += 1;
                        }
                    }
                    // Whatever the server sends that Twilio would not act on.
                    Err(_) => {}
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                for name in player.play_frame(now) {
                    tx.send(Message::text(twilio.mark(&name))).await?;
                    report.marks_echoed += 1;
                }
                if player.idle_for(now).is_some_and(|idle| idle > Duration::from_millis(300)) {
                    agent_turn_started = None;
                }
                // Start the next line: after the agent's turn, or over it when scripted so.
                if speaking.is_none() {
                    let next_over = lines.front().is_some_and(|(l, _)| l.over_agent);
                    let agent_done = agent_spoke_since_line
                        && player.idle_for(now).is_some_and(|idle| idle >= script.answer_gap);
                    let barge_moment = next_over
                        && agent_turn_started.is_some_and(|t| now.duration_since(t) > Duration::from_millis(1200));
                    if agent_done || barge_moment {
                        if let Some((line, audio)) = lines.pop_front() {
                            barge_started = (line.over_agent && barge_moment).then_some(now);
                            speaking = Some((audio, 0));
                            agent_spoke_since_line = false;
                            requested = false;
                        } else if let Some(l) = live.as_mut() {
                            if agent_done && !requested {
                                requested = l.agent_done.send(()).is_ok();
                            }
                        } else if done_at.is_none() {
                            done_at = Some(now);
                        }
                    }
                }
                let frame: Vec<u8> = match &mut speaking {
                    Some((audio, pos)) => {
                        let end = (*pos + FRAME).min(audio.len());
                        let mut f = audio[*pos..end].to_vec();
                        f.resize(FRAME, SILENCE);
                        *pos = end;
                        if end >= audio.len() {
                            speaking = None;
                            line_ended_at = Some(now);
                            if lines.is_empty() && script.hang_up_after_last_line {
                                done_at = Some(now);
                            }
                        }
                        f
                    }
                    None => vec![SILENCE; FRAME],
                };
                let mut frame = frame;
                add_noise(&mut frame, script.noise);
                if tx.send(Message::text(twilio.media(&frame))).await.is_err() {
                    server_closed = true;
                    break;
                }
                if done_at.is_some() || now.duration_since(started) > script.max_duration {
                    break;
                }
            }
        }
    }
    report.late_frames = player.late_frames;
    if !server_closed {
        // The caller hangs up: Twilio sends `stop` and closes.
        let _ = tx.send(Message::text(twilio.stop())).await;
        let _ = tx.close().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_gap_inside_a_turn_counts_as_late_frames_but_a_pause_between_turns_does_not() {
        let mut p = Player::default();
        let t0 = Instant::now();
        p.push_audio(&[0x7f; FRAME * 2]);
        p.play_frame(t0);
        p.play_frame(t0 + Duration::from_millis(20));
        // Two starved frames, then the rest of the turn arrives: a 40 ms gap.
        p.play_frame(t0 + Duration::from_millis(40));
        p.play_frame(t0 + Duration::from_millis(60));
        p.push_audio(&[0x7f; FRAME]);
        p.play_frame(t0 + Duration::from_millis(80));
        assert_eq!(p.late_frames, 2);
        // A long silence, then a new turn: no gap.
        for i in 0..30 {
            p.play_frame(t0 + Duration::from_millis(100 + i * 20));
        }
        p.push_audio(&[0x7f; FRAME]);
        assert_eq!(p.late_frames, 2);
    }
}
