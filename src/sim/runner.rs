//! Runs scenarios end to end: seeds each one's business as a fresh tenant, places the call
//! through the text path (ConversationRelay) or the audio path (Media Streams, the caller
//! reading the agent's words from the call's live feed), then holds the server's record of
//! the call to the scenario's expectations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use futures::StreamExt;
use rand::Rng;
use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::domain::calls::Speaker;
use crate::domain::ids::TenantId;
use crate::domain::language::Language;
use crate::providers::tts::TextToSpeech;
use crate::sim::caller::{Caller, Reply, normalise};
use crate::sim::feed::{CallFeed, FeedEvent};
use crate::sim::scenario::{ExistingState, Scenario, clock, relative_day, weekday};
use crate::sim::{Line, Live, Next, Script};
use crate::storage::postgres::{appointments, calls, messages, tenants};

/// Which way the call reaches the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoicePath {
    /// ConversationRelay: text in, text out.
    Text,
    /// Media Streams: synthesized speech in, the server's recogniser and voice.
    Audio,
}

impl VoicePath {
    pub fn name(self) -> &'static str {
        match self {
            VoicePath::Text => "text",
            VoicePath::Audio => "audio",
        }
    }
}

/// Where and how to run.
#[derive(Clone)]
pub struct RunOptions {
    pub base_url: String,
    pub auth_token: Option<String>,
    pub path: VoicePath,
    /// The caller's voice (audio path).
    pub voice: Option<Arc<dyn TextToSpeech>>,
}

/// How a scenario ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// Failed, and marked `known_failing`.
    Known,
    /// Passed although marked `known_failing`: the mark can go.
    Fixed,
    /// Not run on this path.
    Skip,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Known => "known",
            Verdict::Fixed => "fixed",
            Verdict::Skip => "skip",
        }
    }
}

/// One scenario's result.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    pub name: String,
    pub path: VoicePath,
    pub outcome: String,
    pub verdict: Verdict,
    /// Why it failed (every unmet expectation), or why it was skipped.
    pub reason: String,
    pub turns: u32,
    pub seconds: f64,
    pub transcript: String,
}

/// A scenario's business, seeded.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub tenant_id: TenantId,
    pub number: String,
    /// The caller's own appointment: its id, start and confirmation code.
    pub existing: Option<(i64, DateTime<Utc>, String)>,
}

fn tz_of(s: &Scenario) -> anyhow::Result<chrono_tz::Tz> {
    s.business.timezone.parse().map_err(|_| anyhow::anyhow!("business.timezone"))
}

fn today_in(tz: chrono_tz::Tz) -> NaiveDate {
    Utc::now().with_timezone(&tz).date_naive()
}

fn at(tz: chrono_tz::Tz, day: NaiveDate, time: chrono::NaiveTime) -> anyhow::Result<DateTime<Utc>> {
    tz.from_local_datetime(&day.and_time(time))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("{day} {time} does not exist in {tz}"))
}

async fn insert_appointment(
    pool: &PgPool,
    tenant: TenantId,
    name: &str,
    phone: &str,
    starts: DateTime<Utc>,
    ends: DateTime<Utc>,
) -> anyhow::Result<(i64, String)> {
    let code = crate::domain::confirmation::generate();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO appointments (client_id, customer_name, customer_phone, starts_at, ends_at, source, \
         confirmation_code) VALUES ($1, $2, $3, $4, $5, 'manual', $6) RETURNING id",
    )
    .bind(tenant)
    .bind(name)
    .bind(phone)
    .bind(starts)
    .bind(ends)
    .bind(&code)
    .fetch_one(pool)
    .await
    .context("seeding an appointment")?;
    Ok((id, code))
}

/// Creates the scenario's business as a new tenant on a fresh number, with its appointments.
pub async fn seed(pool: &PgPool, s: &Scenario, path: VoicePath) -> anyhow::Result<Seeded> {
    let hours = s.hours()?;
    let tz = tz_of(s)?;
    let language = Language::from_code(&s.business.language).unwrap_or(Language::English);
    let mut tenant = None;
    for _ in 0..5 {
        let number = format!("+1555{}", rand::rng().random_range(2_000_000..9_999_999));
        let new = tenants::NewTenant {
            business_name: s.business.name.clone(),
            ringlypro_number: number.clone(),
            owner_name: "Dana Rivera".into(),
            owner_phone: "+15551230000".into(),
            timezone: tz,
            business_days: s.business.days.clone(),
            open: hours.open,
            close: hours.close,
            appointment_minutes: s.business.slot_minutes,
            buffer_minutes: 0,
            custom_greeting: None,
            services: s.business.services.clone(),
            business_description: s.business.description.clone(),
            language,
        };
        let mut tx = pool.begin().await?;
        match tenants::insert(&mut tx, &new).await {
            Ok(id) => {
                tx.commit().await?;
                tenant = Some((id, number));
                break;
            }
            Err(e) if crate::storage::postgres::violated_constraint(&e).is_some() => continue,
            Err(e) => return Err(e).context("creating the scenario's tenant"),
        }
    }
    let (tenant_id, number) = tenant.context("no free number for the scenario's tenant")?;
    let voice_path = if path == VoicePath::Text { "relay" } else { "stream" };
    sqlx::query("UPDATE clients SET voice_path = $2 WHERE id = $1")
        .bind(tenant_id)
        .bind(voice_path)
        .execute(pool)
        .await
        .context("setting the tenant's voice path")?;
    let today = today_in(tz);
    let slot = Duration::from_secs(60 * s.business.slot_minutes.max(5) as u64);
    for b in &s.business.booked {
        let day = relative_day(&b.day, today, &hours)?;
        let (starts, ends) = match &b.time {
            Some(t) if !b.all_day => {
                let starts = at(tz, day, clock(t)?)?;
                (starts, starts + slot)
            }
            _ => (at(tz, day, hours.open)?, at(tz, day, hours.close)?),
        };
        insert_appointment(pool, tenant_id, "Pat Booked", "+15550009999", starts, ends).await?;
    }
    let existing = match &s.business.existing {
        Some(e) => {
            let starts = at(tz, relative_day(&e.day, today, &hours)?, clock(&e.time)?)?;
            let (id, code) =
                insert_appointment(pool, tenant_id, &s.caller.name, &s.caller.number, starts, starts + slot).await?;
            Some((id, starts, code))
        }
        None => None,
    };
    Ok(Seeded { tenant_id, number, existing })
}

/// Seeds, calls and checks one scenario.
pub async fn run_one(pool: &PgPool, s: &Scenario, opts: &RunOptions) -> ScenarioResult {
    let started = Instant::now();
    let mut result = ScenarioResult {
        name: s.name.clone(),
        path: opts.path,
        outcome: String::new(),
        verdict: Verdict::Fail,
        reason: String::new(),
        turns: 0,
        seconds: 0.0,
        transcript: String::new(),
    };
    if opts.path == VoicePath::Audio && s.language() == Language::Spanish {
        result.verdict = Verdict::Skip;
        result.reason = "the audio path's caller voice and recogniser are English only".into();
        return result;
    }
    let checked = async {
        let seeded = seed(pool, s, opts.path).await?;
        let mut caller = Caller::new(s.caller.clone(), seeded.existing.as_ref().map(|e| e.2.clone()));
        let max_turns = s.expect.max_turns.unwrap_or(12) + 4;
        let (call_sid, transferred) = match opts.path {
            VoicePath::Text => {
                let call = crate::sim::relay::place_text_call(
                    &opts.base_url,
                    &seeded.number,
                    &s.caller.number,
                    opts.auth_token.as_deref(),
                    &mut caller,
                    s.caller.dtmf.as_deref(),
                    max_turns,
                )
                .await?;
                (call.call_sid, call.transferred)
            }
            VoicePath::Audio => audio_call(s, &seeded, opts, &mut caller, max_turns).await?,
        };
        let failures = check(pool, opts, s, &seeded, &call_sid, transferred, &caller, &mut result).await?;
        anyhow::Ok(failures)
    };
    let known = s.known_failing.is_some() || (opts.path == VoicePath::Audio && s.known_failing_audio.is_some());
    match tokio::time::timeout(Duration::from_secs(240), checked).await {
        Ok(Ok(failures)) => {
            let failed = !failures.is_empty();
            result.reason = failures.join("; ");
            result.verdict = match (failed, known) {
                (false, false) => Verdict::Pass,
                (false, true) => Verdict::Fixed,
                (true, false) => Verdict::Fail,
                (true, true) => Verdict::Known,
            };
        }
        Ok(Err(e)) => {
            result.reason = format!("{e:#}");
            result.verdict = if known { Verdict::Known } else { Verdict::Fail };
        }
        Err(_) => {
            result.reason = "timed out after 240 s".into();
            result.verdict = if known { Verdict::Known } else { Verdict::Fail };
        }
    }
    result.seconds = started.elapsed().as_secs_f64();
    result
}

/// Runs scenarios `jobs` at a time, results in the scenarios' order.
pub async fn run_all(pool: &PgPool, scenarios: &[Scenario], opts: &RunOptions, jobs: usize) -> Vec<ScenarioResult> {
    futures::stream::iter(scenarios.iter().map(|s| run_one(pool, s, opts))).buffered(jobs.max(1)).collect().await
}

/// The audio path: the Media Streams caller of `sim`, its lines decided by `caller` from
/// the agent's words on the call's live feed.
async fn audio_call(
    s: &Scenario,
    seeded: &Seeded,
    opts: &RunOptions,
    caller: &mut Caller,
    max_turns: u32,
) -> anyhow::Result<(String, bool)> {
    let voice = opts.voice.clone().context("the audio path needs a caller voice")?;
    let mut script = Script::new(&opts.base_url, &seeded.number, &s.caller.number, Vec::new());
    script.auth_token = opts.auth_token.clone();
    script.noise = s.caller.noise;
    script.max_duration = Duration::from_secs(150);
    let (answered_tx, mut answered_rx) = mpsc::unbounded_channel();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let (lines_tx, lines_rx) = mpsc::unbounded_channel();
    let live = Live { answered: answered_tx, agent_done: done_tx, lines: lines_rx };
    let call = crate::sim::place_live_call(&script, voice.clone(), live);
    let mind = async {
        let (call_sid, ready) = answered_rx.recv().await.context("the call was not answered")?;
        let mut feed = CallFeed::open(&opts.base_url, &call_sid, opts.auth_token.as_deref()).await?;
        let _ = ready.send(());
        // Agent lines by seq, and the highest seq already answered.
        let mut agent: std::collections::BTreeMap<i32, String> = Default::default();
        let mut answered_upto = -1;
        let mut feed_open = true;
        loop {
            tokio::select! {
                event = feed.next(), if feed_open => match event {
                    Some(FeedEvent::Turn { seq, agent: true, text }) => {
                        agent.insert(seq, text);
                        if caller.interrupts_next() && caller.turns < max_turns {
                            // Cut in while this turn plays: decide on what is known of it.
                            let heard = unanswered(&agent, &mut answered_upto);
                            if let Some(next) = decide(caller, &heard, &voice, true).await? {
                                let _ = lines_tx.send(next);
                            }
                        }
                    }
                    Some(FeedEvent::Turn { .. }) => {}
                    Some(FeedEvent::Ended) | None => feed_open = false,
                },
                tick = done_rx.recv() => {
                    if tick.is_none() {
                        break;
                    }
                    // The feed carries the words before the audio ends; let stragglers in.
                    let grace = tokio::time::sleep(Duration::from_millis(300));
                    tokio::pin!(grace);
                    loop {
                        tokio::select! {
                            _ = &mut grace => break,
                            event = feed.next(), if feed_open => match event {
                                Some(FeedEvent::Turn { seq, agent: true, text }) => { agent.insert(seq, text); }
                                Some(FeedEvent::Turn { .. }) => {}
                                Some(FeedEvent::Ended) | None => feed_open = false,
                            },
                        }
                    }
                    let heard = unanswered(&agent, &mut answered_upto);
                    let next = if caller.turns >= max_turns {
                        Some(Next::HangUp)
                    } else {
                        decide(caller, &heard, &voice, false).await?
                    };
                    let _ = lines_tx.send(next.unwrap_or(Next::Silence));
                }
            }
        }
        anyhow::Ok(call_sid)
    };
    let (report, sid) = tokio::join!(call, mind);
    let report = report?;
    // The mind ends when the call drops its channels; a failure before the call is its error.
    if let Err(e) = sid
        && report.call_sid.is_empty()
    {
        return Err(e);
    }
    Ok((report.call_sid, report.outcome == "transfer"))
}

/// The agent's lines not yet answered, joined.
fn unanswered(agent: &std::collections::BTreeMap<i32, String>, answered_upto: &mut i32) -> String {
    let text: Vec<&str> = agent.range(*answered_upto + 1..).map(|(_, t)| t.as_str()).collect();
    if let Some((seq, _)) = agent.iter().next_back() {
        *answered_upto = (*answered_upto).max(*seq);
    }
    text.join(" ")
}

/// The caller's next move on the audio path, synthesized; `None` when the call is over.
async fn decide(
    caller: &mut Caller,
    heard: &str,
    voice: &Arc<dyn TextToSpeech>,
    over_agent: bool,
) -> anyhow::Result<Option<Next>> {
    Ok(match caller.respond(heard) {
        None => Some(Next::Silence),
        Some(Reply::HangUp) => Some(Next::HangUp),
        Some(Reply::Silence) => Some(Next::Silence),
        Some(Reply::Say { text, .. }) => {
            // Said in one breath: the voice pauses at punctuation long enough for the
            // server's recogniser to end the turn there (a finding of its own, reported
            // apart); the scenarios test the dialogue, not that.
            let breath: String =
                text.chars().map(|c| if matches!(c, ',' | '.' | '!' | ';') { ' ' } else { c }).collect();
            let audio = crate::sim::synthesize(voice, &breath).await?;
            Some(Next::Say(Line { text, over_agent }, audio))
        }
    })
}

/// The part of `GET /calls/{sid}` the runner reads.
#[derive(serde::Deserialize)]
struct CallRecord {
    live: bool,
}

/// Waits for the server to save the call, then lists every expectation it does not meet.
#[allow(clippy::too_many_arguments)]
async fn check(
    pool: &PgPool,
    opts: &RunOptions,
    s: &Scenario,
    seeded: &Seeded,
    call_sid: &str,
    transferred: bool,
    caller: &Caller,
    result: &mut ScenarioResult,
) -> anyhow::Result<Vec<String>> {
    // The server's record says when the call's actor has finished (`live` false)...
    let url = format!("{}/calls/{call_sid}", opts.base_url.trim_end_matches('/'));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    for _ in 0..150 {
        let mut req = client.get(&url);
        if let Some(token) = &opts.auth_token {
            req = req.header("X-Twilio-Signature", crate::telephony::signature::sign(token, &url, &[]));
        }
        if let Ok(resp) = req.send().await
            && resp.status().is_success()
            && let Ok(record) = resp.json::<CallRecord>().await
            && !record.live
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...then its rows are read typed: ended, the transcript written and no longer growing.
    let mut saved = None;
    let mut last_count = 0;
    for _ in 0..150 {
        if let Some(c) = calls::find_by_sid(pool, call_sid).await?
            && c.ended_at.is_some()
        {
            let turns = calls::turns(pool, c.id).await?;
            if !turns.is_empty() && turns.len() == last_count {
                saved = Some((c, turns));
                break;
            }
            last_count = turns.len();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some((call, turns)) = saved else { bail!("the server did not save the call {call_sid} within 15 s") };
    result.transcript = turns
        .iter()
        .filter(|t| !t.text.is_empty())
        .map(|t| format!("{}: {}", if t.speaker == Speaker::Caller { "Caller" } else { "Agent " }, t.text))
        .collect::<Vec<_>>()
        .join("\n");
    result.turns = caller.turns;
    let outcome = if transferred { "transfer".to_owned() } else { call.outcome.as_str().to_owned() };
    result.outcome = outcome.clone();
    let e = &s.expect;
    let mut failures = Vec::new();
    if outcome != e.outcome {
        failures.push(format!("outcome {outcome}, expected {}", e.outcome));
    }
    let tz = tz_of(s)?;
    let hours = s.hours()?;
    let today = today_in(tz);
    let made = appointments::for_call(pool, call.id).await?;
    let mut booked = made.iter().rev().find(|a| a.status.as_str() != "cancelled").map(|a| a.starts_at);
    let mut booked_name = made.iter().rev().find(|a| a.status.as_str() != "cancelled").map(|a| a.customer_name.clone());
    if let Some((id, original, _)) = &seeded.existing {
        let row: Option<(String, DateTime<Utc>)> =
            sqlx::query_as("SELECT status, starts_at FROM appointments WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
        let state = match &row {
            Some((status, _)) if status == "cancelled" => ExistingState::Cancelled,
            Some((_, starts)) if starts != original => ExistingState::Moved,
            _ => ExistingState::Kept,
        };
        if state == ExistingState::Moved && booked.is_none() {
            booked = row.map(|r| r.1);
            booked_name = Some(s.caller.name.clone());
        }
        // Moved in place, or cancelled with a new one booked on the call: moved either way.
        let state = if state == ExistingState::Cancelled && booked.is_some() { ExistingState::Moved } else { state };
        if let Some(want) = e.existing
            && want != state
        {
            failures.push(format!("the caller's appointment was {state:?}, expected {want:?}"));
        }
    }
    match (e.appointment, booked) {
        (Some(true), None) => failures.push("no appointment was booked".into()),
        (Some(false), Some(at)) => failures.push(format!("an appointment was booked ({at})")),
        _ => {}
    }
    if let Some(at) = booked {
        let local = at.with_timezone(&tz);
        let w = local.weekday();
        if !e.weekday.is_empty() && !e.weekday.iter().any(|d| weekday(d) == Some(w)) {
            failures.push(format!("booked on {w}, expected {}", e.weekday.join(" or ")));
        }
        if let Some(d) = &e.day {
            let want = relative_day(d, today, &hours)?;
            if local.date_naive() != want {
                failures.push(format!("booked on {}, expected {d} ({want})", local.date_naive()));
            }
        }
        if let Some(d) = &e.not_day {
            let not = relative_day(d, today, &hours)?;
            if local.date_naive() == not {
                failures.push(format!("booked on {d} ({not}), which it must not be"));
            }
        }
        let time = local.time();
        if let Some(after) = &e.after
            && time < clock(after)?
        {
            failures.push(format!("booked at {}, expected from {after}", time.format("%H:%M")));
        }
        if let Some(before) = &e.before
            && time >= clock(before)?
        {
            failures.push(format!("booked at {}, expected before {before}", time.format("%H:%M")));
        }
        if let Some(not_at) = &e.not_at
            && time == clock(not_at)?
        {
            failures.push(format!("booked at the taken time {not_at}"));
        }
        if let (Some(want), Some(got)) = (&e.customer_name, &booked_name)
            && normalise(want) != normalise(got)
        {
            failures.push(format!("booked under {got:?}, expected {want:?}"));
        }
    }
    let texts = messages::for_call(pool, call.id).await?;
    for kind in &e.texts {
        if !texts.iter().any(|m| &m.kind == kind) {
            let queued: Vec<&str> = texts.iter().map(|m| m.kind.as_str()).collect();
            failures.push(format!("no {kind} text queued (queued: {})", queued.join(", ")));
        }
    }
    if let Some(to) = &e.confirmation_to
        && !texts.iter().any(|m| m.kind == "booking_confirmation" && &m.to_number == to)
    {
        failures.push(format!("no booking confirmation to {to}"));
    }
    if let Some(lang) = &e.language
        && &call.language != lang
    {
        failures.push(format!("call in {}, expected {lang}", call.language));
    }
    let agent_words = normalise(
        &turns.iter().filter(|t| t.speaker == Speaker::Agent).map(|t| t.text.as_str()).collect::<Vec<_>>().join(" "),
    );
    for phrase in &e.says {
        if !phrase.split('|').any(|p| agent_words.contains(&normalise(p))) {
            failures.push(format!("the agent never said {phrase:?}"));
        }
    }
    for phrase in &e.never_says {
        if agent_words.contains(&normalise(phrase)) {
            failures.push(format!("the agent said {phrase:?}"));
        }
    }
    if let Some(max) = e.max_turns
        && caller.turns > max
    {
        failures.push(format!("{} caller turns, expected at most {max}", caller.turns));
    }
    Ok(failures)
}

/// The summary table: scenario, path, outcome, verdict, reason, turns, seconds.
pub fn table(results: &[ScenarioResult]) -> String {
    let width = results.iter().map(|r| r.name.len()).max().unwrap_or(8).max(8);
    let mut out = format!(
        "{:<width$}  {:<5}  {:<11}  {:<5}  {:>5}  {:>6}  reason\n",
        "scenario", "path", "outcome", "", "turns", "secs"
    );
    for r in results {
        out.push_str(&format!(
            "{:<width$}  {:<5}  {:<11}  {:<5}  {:>5}  {:>6.1}  {}\n",
            r.name,
            r.path.name(),
            if r.outcome.is_empty() { "-" } else { &r.outcome },
            r.verdict.name(),
            r.turns,
            r.seconds,
            r.reason
        ));
    }
    let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
    let run = results.len() - count(Verdict::Skip);
    let passed = count(Verdict::Pass) + count(Verdict::Fixed);
    out.push_str(&format!(
        "{passed}/{run} passed ({} failed, {} known failing, {} fixed, {} skipped)\n",
        count(Verdict::Fail),
        count(Verdict::Known),
        count(Verdict::Fixed),
        count(Verdict::Skip)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, verdict: Verdict) -> ScenarioResult {
        ScenarioResult {
            name: name.into(),
            path: VoicePath::Text,
            outcome: "booked".into(),
            verdict,
            reason: String::new(),
            turns: 4,
            seconds: 1.5,
            transcript: String::new(),
        }
    }

    #[test]
    fn the_table_counts_known_and_fixed_apart_from_failures_and_leaves_skips_out_of_the_rate() {
        let table = table(&[
            result("a", Verdict::Pass),
            result("b", Verdict::Fail),
            result("c", Verdict::Known),
            result("d", Verdict::Fixed),
            result("e", Verdict::Skip),
        ]);
        assert!(table.ends_with("2/4 passed (1 failed, 1 known failing, 1 fixed, 1 skipped)\n"), "{table}");
        assert!(table.lines().any(|l| l.starts_with("b ") && l.contains("FAIL")), "{table}");
    }

    #[test]
    fn the_agent_lines_since_the_last_answer_are_joined_once() {
        let mut agent = std::collections::BTreeMap::new();
        agent.insert(0, "Hello.".to_owned());
        agent.insert(2, "How can I help?".to_owned());
        let mut upto = -1;
        assert_eq!(unanswered(&agent, &mut upto), "Hello. How can I help?");
        assert_eq!(unanswered(&agent, &mut upto), "");
        agent.insert(4, "Your name?".to_owned());
        assert_eq!(unanswered(&agent, &mut upto), "Your name?");
    }
}
