//! The owner's call summaries and the missed-call text: each ended call handled once by
//! any number of workers, as the owner chose, written by the language model when it
//! answers and by the rules otherwise; the daily digest once a day at its hour.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::America::New_York;
use ringlypro::domain::ids::TenantId;
use ringlypro::services::summaries::Summaries;
use sqlx::PgPool;

use crate::fakes::openai::{FakeOpenAi, Script};
use crate::helpers::{Options, TestApp, signed_in_owner, spawn_app_with};

const NUMBER: &str = "+15550107000";
const CALLER: &str = "+15550142222";

/// An app whose own summaries worker looks once at start and then not for a day: the
/// tests run the sweeps themselves, at the times they choose.
async fn app(env: Vec<(&'static str, String)>) -> TestApp {
    let mut env = env;
    env.push(("MAIL_SWEEP_SECS", "86400".to_owned()));
    spawn_app_with(Options { env, ..Options::default() }).await
}

async fn owner(app: &TestApp) -> TenantId {
    signed_in_owner(app, "dana@example.com", "Bright Smile Dental", NUMBER).await.client_id
}

/// A call the agent answered that has ended, with what the caller said.
async fn ended_call(
    pool: &PgPool,
    client_id: TenantId,
    sid: &str,
    from: &str,
    outcome: &str,
    language: &str,
    said: &[&str],
) -> i64 {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO calls (client_id, call_sid, stream_sid, from_number, to_number, handled_by, status, outcome, \
                            language, started_at, ended_at) \
         VALUES ($1, $2, 'MZ' || $2, $3, $4, 'agent', 'completed', $5, $6, now() - interval '3 minutes', now()) \
         RETURNING id",
    )
    .bind(client_id)
    .bind(sid)
    .bind(from)
    .bind(NUMBER)
    .bind(outcome)
    .bind(language)
    .fetch_one(pool)
    .await
    .unwrap();
    for (seq, text) in said.iter().enumerate() {
        sqlx::query(
            "INSERT INTO call_turns (client_id, call_id, seq, speaker, text, started_at) \
             VALUES ($1, $2, $3, 'caller', $4, now())",
        )
        .bind(client_id)
        .bind(id)
        .bind(seq as i32)
        .bind(*text)
        .execute(pool)
        .await
        .unwrap();
    }
    id
}

async fn leave_message(pool: &PgPool, client_id: TenantId, call_id: i64, text: &str) {
    sqlx::query(
        "INSERT INTO messages (client_id, call_id, direction, kind, to_number, from_number, body, status) \
         VALUES ($1, $2, 'inbound', 'voice_message', $3, $4, $5, 'received')",
    )
    .bind(client_id)
    .bind(call_id)
    .bind(NUMBER)
    .bind(CALLER)
    .bind(text)
    .execute(pool)
    .await
    .unwrap();
}

async fn prefer(pool: &PgPool, client_id: TenantId, channel: &str, scope: &str, language: &str) {
    sqlx::query(
        "UPDATE clients SET summary_channel = $2, summary_scope = $3, summary_language = $4, \
             summary_digest_hour = 18 WHERE id = $1",
    )
    .bind(client_id)
    .bind(channel)
    .bind(scope)
    .bind(language)
    .execute(pool)
    .await
    .unwrap();
}

/// The bodies of the owner's summary mails, oldest first.
async fn summary_mails(pool: &PgPool, kind: &str) -> Vec<(String, String, String)> {
    sqlx::query_as("SELECT to_address, subject, body FROM email_outbox WHERE kind = $1 ORDER BY id")
        .bind(kind)
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn texts(pool: &PgPool, kind: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT to_number, body FROM messages WHERE kind = $1 ORDER BY id")
        .bind(kind)
        .fetch_all(pool)
        .await
        .unwrap()
}

fn workers(app: &TestApp) -> (Summaries, Summaries) {
    (Summaries::new(app.pool.clone(), &app.state.config), Summaries::new(app.pool.clone(), &app.state.config))
}

#[tokio::test]
async fn each_ended_call_is_summarised_once_by_two_workers_at_once() {
    let app = app(Vec::new()).await;
    let client_id = owner(&app).await;
    prefer(&app.pool, client_id, "both", "every_call", "en").await;
    for n in 0..12 {
        let call = ended_call(&app.pool, client_id, &format!("CA{n:032}"), CALLER, "message", "en", &[]).await;
        leave_message(&app.pool, client_id, call, "Please call me back, it is urgent").await;
    }
    let (a, b) = workers(&app);
    let (ra, rb) = tokio::join!(a.run_once(Utc::now()), b.run_once(Utc::now()));
    ra.unwrap();
    rb.unwrap();
    a.run_once(Utc::now()).await.unwrap();
    let mails = summary_mails(&app.pool, "owner_summary").await;
    let owner_texts = texts(&app.pool, "owner_summary").await;
    assert_eq!((mails.len(), owner_texts.len()), (12, 12), "one mail and one text per call");
    let (to, subject, body) = &mails[0];
    assert_eq!(to, "dana@example.com", "the account's e-mail by default");
    assert!(subject.starts_with("URGENT: Call from (555) 014-2222"), "{subject}");
    assert!(body.contains("Left a message.") && body.contains("Please call me back, it is urgent"), "{body}");
    assert!(body.contains(&format!("{}/app/calls/CA", app.base_url)), "{body}");
    assert!(owner_texts.iter().all(|(to, _)| to == "+15559876543"), "texts go to the owner's phone");
    app.stop().await;
}

#[tokio::test]
async fn only_bookings_and_messages_skips_a_plain_enquiry() {
    let app = app(Vec::new()).await;
    let client_id = owner(&app).await;
    prefer(&app.pool, client_id, "email", "bookings_and_messages", "en").await;
    ended_call(&app.pool, client_id, "CAenquiry", CALLER, "info", "en", &["how much is a cleaning please"]).await;
    ended_call(&app.pool, client_id, "CAbooking", "+15550143333", "booked", "en", &["I want to book a cleaning"]).await;
    Summaries::new(app.pool.clone(), &app.state.config).run_once(Utc::now()).await.unwrap();
    let mails = summary_mails(&app.pool, "owner_summary").await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].2.contains("Booked an appointment") && mails[0].2.contains("I want to book a cleaning"));
    assert_eq!(mails[0].1, "Booking: Call from (555) 014-3333", "the outcome leads the subject");
    let skipped: String = sqlx::query_scalar(
        "SELECT s.outcome FROM call_summaries s JOIN calls c ON c.id = s.call_id WHERE c.call_sid = 'CAenquiry'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(skipped, "skipped_by_preference");
    app.stop().await;
}

#[tokio::test]
async fn the_language_model_writes_the_summary_when_it_answers() {
    let model = FakeOpenAi::start().await;
    model.push(Script::text("Dana wants a cleaning next week and left her number."));
    let app = app(vec![("OPENAI_API_KEY", model.api_key().to_owned()), ("OPENAI_BASE_URL", model.base_url())]).await;
    let client_id = owner(&app).await;
    let call = ended_call(&app.pool, client_id, "CAmodel", CALLER, "message", "en", &["I need a cleaning soon"]).await;
    leave_message(&app.pool, client_id, call, "Call me back").await;
    Summaries::new(app.pool.clone(), &app.state.config).run_once(Utc::now()).await.unwrap();
    let mails = summary_mails(&app.pool, "owner_summary").await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].2.starts_with("Dana wants a cleaning next week and left her number."), "{}", mails[0].2);
    assert!(mails[0].2.contains("/app/calls/CAmodel"));
    let requests = model.requests();
    assert_eq!(requests.len(), 1);
    assert_ne!(requests[0].raw["stream"].as_bool(), Some(true), "a plain completion");
    assert!(requests[0].raw.to_string().contains("I need a cleaning soon"), "the model is told what was said");
    app.stop().await;
}

#[tokio::test]
async fn the_rules_write_the_summary_when_the_model_fails() {
    let model = FakeOpenAi::start().await;
    model.push(Script::http_401());
    let app = app(vec![("OPENAI_API_KEY", model.api_key().to_owned()), ("OPENAI_BASE_URL", model.base_url())]).await;
    let client_id = owner(&app).await;
    let call = ended_call(&app.pool, client_id, "CArules", CALLER, "message", "en", &[]).await;
    leave_message(&app.pool, client_id, call, "Call me back").await;
    Summaries::new(app.pool.clone(), &app.state.config).run_once(Utc::now()).await.unwrap();
    let mails = summary_mails(&app.pool, "owner_summary").await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].2.contains("Left a message.") && mails[0].2.contains("\"Call me back\""), "{}", mails[0].2);
    let source: String = sqlx::query_scalar("SELECT source FROM call_summaries WHERE call_id = $1")
        .bind(call)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(source, "rules");
    app.stop().await;
}

#[tokio::test]
async fn a_spanish_owner_gets_a_spanish_summary() {
    let app = app(Vec::new()).await;
    let client_id = owner(&app).await;
    prefer(&app.pool, client_id, "email", "every_call", "es").await;
    let call = ended_call(&app.pool, client_id, "CAes", CALLER, "message", "es", &[]).await;
    leave_message(&app.pool, client_id, call, "Llámeme, es urgente").await;
    Summaries::new(app.pool.clone(), &app.state.config).run_once(Utc::now()).await.unwrap();
    let mails = summary_mails(&app.pool, "owner_summary").await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].1.starts_with("URGENTE: Llamada de"), "{}", mails[0].1);
    assert!(mails[0].2.contains("Dejó un mensaje."), "{}", mails[0].2);
    app.stop().await;
}

fn new_york(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    New_York.with_ymd_and_hms(y, m, d, h, min, 0).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn the_daily_digest_goes_out_once_at_the_chosen_hour() {
    let app = app(Vec::new()).await;
    let client_id = owner(&app).await;
    prefer(&app.pool, client_id, "email", "daily_digest", "en").await;
    ended_call(&app.pool, client_id, "CAd1", CALLER, "booked", "en", &["I want to book a cleaning"]).await;
    ended_call(&app.pool, client_id, "CAd2", "+15550143333", "info", "en", &["what time do you open"]).await;
    let (a, b) = workers(&app);
    a.run_once(new_york(2026, 3, 10, 17, 0)).await.unwrap();
    assert!(summary_mails(&app.pool, "owner_summary").await.is_empty(), "kept for the digest");
    assert!(summary_mails(&app.pool, "owner_digest").await.is_empty(), "not before 18:00");
    let (ra, rb) = tokio::join!(a.run_once(new_york(2026, 3, 10, 18, 5)), b.run_once(new_york(2026, 3, 10, 18, 5)));
    ra.unwrap();
    rb.unwrap();
    b.run_once(new_york(2026, 3, 10, 21, 0)).await.unwrap();
    let digests = summary_mails(&app.pool, "owner_digest").await;
    assert_eq!(digests.len(), 1, "once a day");
    assert_eq!(digests[0].1, "Your calls on 2026-03-10: 2");
    assert!(digests[0].2.contains("I want to book a cleaning") && digests[0].2.contains("what time do you open"));
    a.run_once(new_york(2026, 3, 11, 18, 0)).await.unwrap();
    let digests = summary_mails(&app.pool, "owner_digest").await;
    assert_eq!(digests.len(), 2, "the next day's");
    assert!(digests[1].2.contains("no calls"), "{}", digests[1].2);
    app.stop().await;
}

#[tokio::test]
async fn a_caller_who_hung_up_gets_one_sorry_text_a_day_in_their_language() {
    let app = app(Vec::new()).await;
    let client_id = owner(&app).await;
    ended_call(&app.pool, client_id, "CAm1", CALLER, "none", "es", &[]).await;
    ended_call(&app.pool, client_id, "CAm2", CALLER, "none", "es", &[]).await;
    ended_call(&app.pool, client_id, "CAm3", "+15550143333", "booked", "en", &[]).await;
    let (a, b) = workers(&app);
    let (ra, rb) = tokio::join!(a.run_once(Utc::now()), b.run_once(Utc::now()));
    ra.unwrap();
    rb.unwrap();
    let sent = texts(&app.pool, "missed_call").await;
    assert_eq!(sent.len(), 1, "one a day per number, none after a booking");
    assert_eq!(sent[0].0, CALLER);
    assert!(sent[0].1.starts_with("Bright Smile Dental: ¡sentimos no haberle atendido!"), "{}", sent[0].1);
    app.stop().await;
}

#[tokio::test]
async fn a_blocked_number_gets_no_text_and_no_summary() {
    let app = app(Vec::new()).await;
    let client_id = owner(&app).await;
    sqlx::query("INSERT INTO blocked_numbers (client_id, phone) VALUES ($1, $2)")
        .bind(client_id)
        .bind(CALLER)
        .execute(&app.pool)
        .await
        .unwrap();
    ended_call(&app.pool, client_id, "CAblocked", CALLER, "none", "en", &[]).await;
    Summaries::new(app.pool.clone(), &app.state.config).run_once(Utc::now()).await.unwrap();
    assert!(texts(&app.pool, "missed_call").await.is_empty());
    assert!(summary_mails(&app.pool, "owner_summary").await.is_empty());
    let outcome: String = sqlx::query_scalar("SELECT outcome FROM call_summaries").fetch_one(&app.pool).await.unwrap();
    assert_eq!(outcome, "blocked_caller");
    app.stop().await;
}

#[tokio::test]
async fn the_owner_chooses_summaries_in_settings_and_a_bad_choice_is_refused() {
    let app = app(Vec::new()).await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile Dental").await;
    let page = owner.get("/app/settings").await.text().await.unwrap();
    assert!(page.contains("id=\"summaries\"") && page.contains("Call summaries"));
    let saved = owner
        .post_form(
            "/app/settings/summaries",
            &[
                ("channel", "both"),
                ("scope", "daily_digest"),
                ("digest_hour", "7"),
                ("email", "front-desk@example.com"),
                ("language", "es"),
            ],
        )
        .await;
    assert_eq!(saved.status(), reqwest::StatusCode::SEE_OTHER);
    let stored: (String, String, i16, Option<String>, String) = sqlx::query_as(
        "SELECT summary_channel, summary_scope, summary_digest_hour, summary_email, summary_language \
         FROM clients WHERE id = $1",
    )
    .bind(owner.client_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored, ("both".into(), "daily_digest".into(), 7, Some("front-desk@example.com".into()), "es".into()));
    let refused = owner
        .post_form(
            "/app/settings/summaries",
            &[("channel", "pigeon"), ("scope", "every_call"), ("digest_hour", "7"), ("email", ""), ("language", "en")],
        )
        .await;
    assert_eq!(refused.status(), reqwest::StatusCode::BAD_REQUEST);
    let hour = owner
        .post_form(
            "/app/settings/summaries",
            &[("channel", "email"), ("scope", "every_call"), ("digest_hour", "25"), ("email", ""), ("language", "en")],
        )
        .await;
    assert_eq!(hour.status(), reqwest::StatusCode::BAD_REQUEST);
    let unchanged: String = sqlx::query_scalar("SELECT summary_channel FROM clients WHERE id = $1")
        .bind(owner.client_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(unchanged, "both");
    app.stop().await;
}
