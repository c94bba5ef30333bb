//! Call recordings: a tenant that records its calls tells the caller, and gets both voices
//! in one Ogg Opus file stored with the call; one that does not, gets neither. Recordings
//! are served with ranges, stay within their tenant and go when their call is deleted.

use std::sync::Arc;

use axum::body::to_bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use chrono::{DateTime, Utc};
use ringlypro::audio::ogg_opus;
use ringlypro::domain::calls::HandledBy;
use ringlypro::domain::calls::Speaker;
use ringlypro::domain::ids::{CallId, TenantId};
use ringlypro::providers::tts::flite::FliteTts;
use ringlypro::sim::{self, Line, Script};
use ringlypro::storage::postgres::recordings::{self, NewRecording};
use ringlypro::storage::postgres::{begin_tenant, calls, tenants};
use ringlypro::web;
use sqlx::PgPool;

use crate::helpers::{add_tenant, fresh_database, spawn_app};

fn line(text: &str) -> Line {
    Line { text: text.into(), over_agent: false }
}

/// RMS of the middle half of `[from, to]` (times relative to the recording's start), so
/// that recogniser timing slack at either end does not matter.
fn level(pcm: &[i16], from_ms: i64, to_ms: i64) -> f64 {
    let quarter = (to_ms - from_ms) / 4;
    let (a, b) = (((from_ms + quarter) * 8) as usize, ((to_ms - quarter) * 8) as usize);
    let part = &pcm[a.min(pcm.len())..b.min(pcm.len())];
    assert!(part.len() > 800, "a window of at least 100 ms: {from_ms}..{to_ms} of {} samples", pcm.len());
    (part.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / part.len() as f64).sqrt()
}

fn ms_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_milliseconds()
}

async fn recording_rows(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM call_recordings").fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn a_recorded_call_opens_with_the_notice_and_keeps_both_voices_in_place() {
    let app = spawn_app().await;
    let tenant = app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    tenants::set_recording_enabled(&app.pool, tenant, true).await.unwrap();
    let mut script = Script::new(
        &app.base_url,
        "+15550001111",
        "+15557654321",
        vec![line("I would like to book an appointment please."), line("My name is John Smith.")],
    );
    script.hang_up_after_last_line = true;
    let report = sim::place_call(&script, Arc::new(FliteTts::default())).await.expect("the call runs");
    println!("{}", report.transcript());
    let call = calls::find_by_sid(&app.pool, &report.call_sid).await.unwrap().unwrap();
    let turns = calls::turns(&app.pool, call.id).await.unwrap();
    assert!(turns[0].text.starts_with("This call may be recorded."), "{:?}", turns[0].text);
    assert!(turns[0].text.contains("Bright Smile Dental"));

    let recording = recordings::find_for_call(&app.pool, tenant, call.id).await.unwrap().expect("a recording");
    assert_eq!(recording.content_type, "audio/ogg");
    let decoded = ogg_opus::decode(&recording.bytes).expect("a valid Ogg Opus stream");
    assert_eq!(decoded.channels, 1);
    assert_eq!(decoded.samples.len() as i64, recording.duration_ms * 8);
    // As long as the call: from the greeting to the hang-up.
    let call_ms = ms_between(call.started_at, call.ended_at.expect("the call ended"));
    assert!(
        (call_ms - recording.duration_ms).abs() < 3000,
        "recording {} ms for a call of {call_ms} ms",
        recording.duration_ms
    );
    let last_caller = turns.iter().rev().find(|t| t.speaker == Speaker::Caller).expect("the caller was heard");
    let origin = turns[0].started_at; // the greeting opens as the stream starts
    assert!(recording.duration_ms >= ms_between(origin, last_caller.ended_at.unwrap_or(last_caller.started_at)));

    // Sound where the agent spoke and where the caller spoke.
    let pcm = &decoded.samples;
    let greeting = &turns[0];
    let (from, to) = (greeting.first_audio_sent_at.expect("greeting audio"), greeting.ended_at.expect("greeting end"));
    let agent_level = level(pcm, ms_between(origin, from), ms_between(origin, to));
    let caller = turns.iter().find(|t| t.speaker == Speaker::Caller).unwrap();
    let caller_level =
        level(pcm, ms_between(origin, caller.started_at), ms_between(origin, caller.ended_at.expect("caller stopped")));
    println!("agent level {agent_level:.0}, caller level {caller_level:.0}");
    assert!(agent_level > 300.0, "the agent's greeting is in the recording (level {agent_level:.0})");
    assert!(caller_level > 300.0, "the caller's words are in the recording (level {caller_level:.0})");
    // And quiet before the agent's first audio (the stream opening).
    let opening = ms_between(origin, from).min(400);
    if opening >= 200 {
        let quiet = level(pcm, 0, opening);
        assert!(quiet < agent_level / 4.0, "opening {quiet:.0} vs agent {agent_level:.0}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_call_to_a_tenant_that_does_not_record_has_no_notice_and_no_recording() {
    let app = spawn_app().await;
    let tenant = app.add_tenant("Bright Smile Dental", "+15550001111", "America/New_York").await;
    let mut script = Script::new(
        &app.base_url,
        "+15550001111",
        "+15557654321",
        vec![line("I would like to book an appointment please.")],
    );
    script.hang_up_after_last_line = true;
    let report = sim::place_call(&script, Arc::new(FliteTts::default())).await.expect("the call runs");
    let call = calls::find_by_sid(&app.pool, &report.call_sid).await.unwrap().unwrap();
    let turns = calls::turns(&app.pool, call.id).await.unwrap();
    assert!(turns[0].text.contains("Bright Smile Dental"), "{:?}", turns[0].text);
    assert!(!turns[0].text.to_lowercase().contains("recorded"), "{:?}", turns[0].text);
    assert!(recordings::find_for_call(&app.pool, tenant, call.id).await.unwrap().is_none());
    assert_eq!(recording_rows(&app.pool).await, 0);
    app.stop().await;
}

/// A tenant with one call and its (tiny, but valid) recording, stored as the actor does.
async fn recorded_call(pool: &PgPool, number: &str, call_sid: &str) -> (TenantId, CallId, Vec<u8>) {
    let tenant = add_tenant(pool, "Bright Smile Dental", number, "America/New_York").await;
    let mut tx = begin_tenant(pool, tenant).await.unwrap();
    let call_id = calls::upsert(
        &mut tx,
        &calls::NewCall {
            client_id: tenant,
            call_sid,
            from_number: "+15557654321",
            to_number: number,
            handled_by: HandledBy::Agent,
            status: "in-progress",
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut writer = ogg_opus::OggOpusWriter::new(ogg_opus::OpusSettings::default(), 9).unwrap();
    writer.push(&[0; 8000]).unwrap();
    let bytes = writer.finish().unwrap();
    recordings::save(pool, &NewRecording { client_id: tenant, call_id, duration_ms: 1000, bytes: &bytes })
        .await
        .unwrap();
    (tenant, call_id, bytes)
}

#[tokio::test]
async fn deleting_a_call_deletes_its_recording() {
    let (_, pool) = fresh_database().await;
    let (tenant, call_id, _) = recorded_call(&pool, "+15550001111", "CA_delete").await;
    let (other, other_call, _) = recorded_call(&pool, "+15550002222", "CA_keep").await;
    assert_eq!(recording_rows(&pool).await, 2);
    assert!(!calls::delete(&pool, other, call_id).await.unwrap(), "another tenant cannot delete the call");
    assert!(calls::delete(&pool, tenant, call_id).await.unwrap());
    assert!(recordings::find_for_call(&pool, tenant, call_id).await.unwrap().is_none());
    assert_eq!(recording_rows(&pool).await, 1, "only the deleted call's recording went");
    assert!(recordings::find_for_call(&pool, other, other_call).await.unwrap().is_some());
    assert!(!calls::delete(&pool, tenant, call_id).await.unwrap(), "already gone");
}

#[tokio::test]
async fn a_recording_is_invisible_to_other_tenants() {
    let (_, pool) = fresh_database().await;
    let (tenant, call_id, _) = recorded_call(&pool, "+15550001111", "CA_mine").await;
    let other = add_tenant(&pool, "Other", "+15550002222", "America/New_York").await;
    assert!(recordings::find_for_call(&pool, tenant, call_id).await.unwrap().is_some());
    assert!(recordings::find_for_call(&pool, other, call_id).await.unwrap().is_none());
    // Row-level security: even without a WHERE, the other tenant sees nothing.
    let mut tx = begin_tenant(&pool, other).await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM call_recordings").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(seen, 0);
    // And cannot file a recording under a call it does not own.
    let stolen =
        recordings::save(&pool, &NewRecording { client_id: other, call_id, duration_ms: 1, bytes: b"x" }).await;
    assert!(stolen.is_err());
    let headers = HeaderMap::new();
    let response = web::recordings::serve(&pool, other, "CA_mine", &headers).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_recording_is_served_as_ogg_whole_or_by_range() {
    let (_, pool) = fresh_database().await;
    let (tenant, _, bytes) = recorded_call(&pool, "+15550001111", "CA_serve").await;
    let len = bytes.len();

    let response = web::recordings::serve(&pool, tenant, "CA_serve", &HeaderMap::new()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "audio/ogg");
    assert_eq!(response.headers()[header::CONTENT_LENGTH], len.to_string().as_str());
    assert_eq!(response.headers()[header::ACCEPT_RANGES], "bytes");
    assert_eq!(to_bytes(response.into_body(), usize::MAX).await.unwrap(), bytes);

    let mut headers = HeaderMap::new();
    headers.insert(header::RANGE, HeaderValue::from_static("bytes=10-19"));
    let response = web::recordings::serve(&pool, tenant, "CA_serve", &headers).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.headers()[header::CONTENT_RANGE], format!("bytes 10-19/{len}").as_str());
    assert_eq!(response.headers()[header::CONTENT_LENGTH], "10");
    assert_eq!(to_bytes(response.into_body(), usize::MAX).await.unwrap(), &bytes[10..20]);

    headers.insert(header::RANGE, HeaderValue::from_str(&format!("bytes={len}-")).unwrap());
    let response = web::recordings::serve(&pool, tenant, "CA_serve", &headers).await;
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(response.headers()[header::CONTENT_RANGE], format!("bytes */{len}").as_str());

    let response = web::recordings::serve(&pool, tenant, "CA_nobody", &HeaderMap::new()).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
