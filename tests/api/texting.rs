//! The outbox worker against a fake Twilio: each text sent once by two instances on one
//! database, retries on server errors only, opt-outs from Twilio's 21610, delivery status
//! callbacks in any order, and nothing sent without credentials.

use std::time::Duration;

use ringlypro::domain::ids::{MessageId, TenantId};
use ringlypro::services::texting::Texting;
use ringlypro::storage::postgres::messages::{self, Direction, NewMessage};
use sqlx::PgPool;

use crate::fakes::twilio::{self, FakeTwilio};
use crate::helpers::{Options, TestApp, add_tenant, spawn_app_with};

pub const NUMBER: &str = "+15550100000";
const CALLER: &str = "+15550123456";

/// An app sending through `fake`, polling the outbox often.
pub async fn app_with(fake: &FakeTwilio, database_url: Option<String>) -> TestApp {
    let mut env = fake.env();
    env.push(("TEXTING_POLL_MS", "20".into()));
    if let Some(url) = database_url {
        env.push(("DATABASE_URL", url));
    }
    spawn_app_with(Options { env, ..Options::default() }).await
}

pub async fn queue(pool: &PgPool, tenant: TenantId, to: &str, body: &str) -> MessageId {
    let mut conn = pool.acquire().await.unwrap();
    messages::queue(
        &mut conn,
        &NewMessage {
            client_id: tenant,
            contact_id: None,
            call_id: None,
            direction: Direction::Outbound,
            kind: "booking_confirmation",
            to_number: to,
            from_number: NUMBER,
            body,
        },
    )
    .await
    .unwrap()
}

/// A text's status, SID, attempts, error code and message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub status: String,
    pub twilio_sid: Option<String>,
    pub attempts: i32,
    pub error_code: Option<i32>,
    pub error_message: Option<String>,
}

pub async fn row(pool: &PgPool, id: MessageId) -> Row {
    sqlx::query_as("SELECT status, twilio_sid, attempts, error_code, error_message FROM messages WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until the text's status is `status` (or panics after 20 s).
pub async fn wait_for_status(pool: &PgPool, id: MessageId, status: &str) -> Row {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let row = row(pool, id).await;
        if row.status == status {
            return row;
        }
        assert!(tokio::time::Instant::now() < deadline, "text {id:?} stayed {row:?}, never {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn two_instances_on_one_database_send_each_queued_text_once() {
    let fake = FakeTwilio::start().await;
    let first = app_with(&fake, None).await;
    let second = app_with(&fake, Some(first.state.config.database_url.clone())).await;
    let tenant = add_tenant(&first.pool, "Bella Salon", NUMBER, "America/New_York").await;
    let mut tx = first.pool.begin().await.unwrap();
    for i in 0..40 {
        messages::queue(
            &mut tx,
            &NewMessage {
                client_id: tenant,
                contact_id: None,
                call_id: None,
                direction: Direction::Outbound,
                kind: "sms",
                to_number: &format!("+1555020{i:04}"),
                from_number: NUMBER,
                body: &format!("text {i}"),
            },
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    fake.wait_for_messages(40).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE status = 'sent'")
            .fetch_one(&first.pool)
            .await
            .unwrap();
        if sent == 40 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {sent} texts recorded as sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every text is recorded as sent, so none is claimed or in flight any more.
    let texts = fake.all_texts();
    assert_eq!(texts.len(), 40, "a text went out twice");
    let mut bodies: Vec<_> = texts.iter().map(|t| t.body.clone()).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 40);
    assert!(texts.iter().all(|t| t.from == NUMBER));
    let callbacks = [first.base_url.as_str(), second.base_url.as_str()].map(|b| format!("{b}/twilio/sms-status"));
    assert!(texts.iter().all(|t| t.status_callback.as_ref().is_some_and(|c| callbacks.contains(c))));
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn a_text_refused_with_server_errors_is_retried_until_twilio_takes_it() {
    let fake = FakeTwilio::start().await;
    fake.fail_next_sends(2);
    let app = app_with(&fake, None).await;
    let tenant = add_tenant(&app.pool, "Bella Salon", NUMBER, "America/New_York").await;
    let id = queue(&app.pool, tenant, CALLER, "See you Tuesday").await;
    let sent = wait_for_status(&app.pool, id, "sent").await;
    assert_eq!(sent.attempts, 3);
    assert_eq!(sent.twilio_sid, fake.messages()[0].sid);
    assert_eq!(sent.error_code, None);
    assert_eq!(fake.all_texts().iter().map(|t| t.answered).collect::<Vec<_>>(), vec![500, 500, 201]);
    app.stop().await;
}

#[tokio::test]
async fn a_text_refused_as_invalid_fails_at_once_with_twilios_code() {
    let fake = FakeTwilio::start().await;
    fake.refuse(CALLER, 21211);
    let app = app_with(&fake, None).await;
    let tenant = add_tenant(&app.pool, "Bella Salon", NUMBER, "America/New_York").await;
    let id = queue(&app.pool, tenant, CALLER, "See you Tuesday").await;
    let failed = wait_for_status(&app.pool, id, "failed").await;
    assert_eq!(failed.error_code, Some(21211));
    assert_eq!(failed.attempts, 1);
    assert!(failed.error_message.unwrap().contains("not a valid phone number"));
    // Another text goes out after it; the refused one was asked for once.
    let next = queue(&app.pool, tenant, "+15550129999", "Hello").await;
    wait_for_status(&app.pool, next, "sent").await;
    assert_eq!(fake.all_texts().iter().filter(|t| t.to == CALLER).count(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_send_refused_as_unsubscribed_opts_the_number_out_and_later_texts_are_suppressed() {
    let fake = FakeTwilio::start().await;
    fake.refuse(CALLER, 21610);
    let app = app_with(&fake, None).await;
    let tenant = add_tenant(&app.pool, "Bella Salon", NUMBER, "America/New_York").await;
    let id = queue(&app.pool, tenant, CALLER, "See you Tuesday").await;
    let failed = wait_for_status(&app.pool, id, "failed").await;
    assert_eq!(failed.error_code, Some(21610));
    let source: String = sqlx::query_scalar("SELECT source FROM sms_opt_outs WHERE client_id = $1 AND phone = $2")
        .bind(tenant)
        .bind(CALLER)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(source, "carrier");
    let later = queue(&app.pool, tenant, CALLER, "Reminder").await;
    let suppressed = wait_for_status(&app.pool, later, "suppressed").await;
    assert!(suppressed.error_message.unwrap().contains("STOP"));
    assert_eq!(fake.all_texts().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn texts_to_blocked_or_missing_numbers_are_suppressed_with_the_reason() {
    let fake = FakeTwilio::start().await;
    let app = app_with(&fake, None).await;
    let tenant = add_tenant(&app.pool, "Bella Salon", NUMBER, "America/New_York").await;
    sqlx::query("INSERT INTO blocked_numbers (client_id, phone) VALUES ($1, $2)")
        .bind(tenant)
        .bind(CALLER)
        .execute(&app.pool)
        .await
        .unwrap();
    let blocked = queue(&app.pool, tenant, CALLER, "Hello").await;
    let nowhere = queue(&app.pool, tenant, "", "Hello").await;
    assert!(wait_for_status(&app.pool, blocked, "suppressed").await.error_message.unwrap().contains("block list"));
    assert!(wait_for_status(&app.pool, nowhere, "suppressed").await.error_message.unwrap().contains("no number"));
    assert!(fake.all_texts().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn status_callbacks_out_of_order_leave_the_text_delivered() {
    let fake = FakeTwilio::start().await;
    let app = app_with(&fake, None).await;
    let tenant = add_tenant(&app.pool, "Bella Salon", NUMBER, "America/New_York").await;
    let id = queue(&app.pool, tenant, CALLER, "See you Tuesday").await;
    let sid = wait_for_status(&app.pool, id, "sent").await.twilio_sid.unwrap();
    for (status, code) in [("delivered", None), ("sent", None), ("sending", None), ("failed", Some("30003"))] {
        let response = twilio::text_status(&app.base_url, &sid, status, code).await;
        assert_eq!(response.status(), 200, "{status}");
    }
    let row = row(&app.pool, id).await;
    assert_eq!(row.status, "delivered");
    assert_eq!(row.error_code, None);
    let delivered_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT delivered_at FROM messages WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(delivered_at.is_some());
    // An unknown text is answered 200 so Twilio does not retry it.
    assert_eq!(twilio::text_status(&app.base_url, "SMunknown", "delivered", None).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn an_undelivered_callback_is_final_with_its_error_code() {
    let fake = FakeTwilio::start().await;
    let app = app_with(&fake, None).await;
    let tenant = add_tenant(&app.pool, "Bella Salon", NUMBER, "America/New_York").await;
    let id = queue(&app.pool, tenant, CALLER, "See you Tuesday").await;
    let sid = wait_for_status(&app.pool, id, "sent").await.twilio_sid.unwrap();
    twilio::text_status(&app.base_url, &sid, "undelivered", Some("30005")).await;
    twilio::text_status(&app.base_url, &sid, "delivered", None).await;
    let row = row(&app.pool, id).await;
    assert_eq!((row.status.as_str(), row.error_code), ("undelivered", Some(30005)));
    app.stop().await;
}

#[tokio::test]
async fn without_twilio_credentials_texts_stay_queued() {
    let app = spawn_app_with(Options::default()).await;
    let tenant = add_tenant(&app.pool, "Bella Salon", NUMBER, "America/New_York").await;
    let id = queue(&app.pool, tenant, CALLER, "See you Tuesday").await;
    let texting = Texting::new(app.state.pool.clone(), &app.state.config);
    assert!(!texting.enabled());
    assert_eq!(texting.send_due(chrono::Utc::now() + chrono::Duration::hours(1)).await.unwrap(), 0);
    assert_eq!(row(&app.pool, id).await.status, "queued");
    app.stop().await;
}
