//! E-mail through SMTP: the outbox worker delivers to a loopback SMTP server, once across
//! two instances, retries a 451 and gives up on a 550.

use std::time::Duration;

use sqlx::PgPool;

use crate::fakes::smtp::FakeSmtp;
use crate::helpers::{Options, TestApp, browser, cookie_client, sign_up, spawn_app_with};

const WITHIN: Duration = Duration::from_secs(30);

async fn app_with_smtp(smtp: &FakeSmtp, database_url: Option<String>) -> TestApp {
    let mut env = vec![("SMTP_URL", smtp.url()), ("MAIL_SWEEP_SECS", "1".to_owned())];
    if let Some(url) = database_url {
        env.push(("DATABASE_URL", url));
    }
    spawn_app_with(Options { env, ..Options::default() }).await
}

async fn queue_mail(pool: &PgPool, to: &str, subject: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO email_outbox (to_address, kind, subject, body) VALUES ($1, 'test', $2, 'Hello.') RETURNING id",
    )
    .bind(to)
    .bind(subject)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The mail's status, attempts and last error.
async fn mail_row(pool: &PgPool, id: i64) -> (String, i32, Option<String>) {
    sqlx::query_as("SELECT status, attempts, last_error FROM email_outbox WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Polls until the mail's status is `status`.
async fn wait_for_status(pool: &PgPool, id: i64, status: &str) -> (String, i32, Option<String>) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let row = mail_row(pool, id).await;
        if row.0 == status || tokio::time::Instant::now() > deadline {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_password_reset_mail_is_delivered_through_smtp() {
    let smtp = FakeSmtp::start().await;
    let app = app_with_smtp(&smtp, None).await;
    sign_up(&app, &cookie_client(), "dana@example.com", "Bright Smile Dental").await;
    let asked =
        browser().post(format!("{}/password/forgot", app.base_url)).form(&[("email", "dana@example.com")]).send().await;
    assert!(asked.unwrap().status().is_success());
    assert!(smtp.wait_for_messages(2, WITHIN).await, "the welcome and the reset mail arrive");
    let mails = smtp.messages();
    let reset = mails
        .iter()
        .find(|m| m.header("Subject").as_deref() == Some("Reset your RinglyPro password"))
        .expect("the reset mail was delivered");
    assert_eq!(reset.to, ["dana@example.com"]);
    assert_eq!(reset.from, "noreply@example.com");
    assert!(reset.text().contains(&format!("{}/password/reset?token=", app.base_url)), "{}", reset.text());
    let welcome = mails.iter().find(|m| m.header("Subject").as_deref() == Some("Welcome to RinglyPro")).unwrap();
    assert!(welcome.text().contains("Bright Smile Dental"));
    let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM email_outbox WHERE status <> 'sent'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(waiting, 0);
    app.stop().await;
}

#[tokio::test]
async fn two_instances_deliver_each_mail_once() {
    let smtp = FakeSmtp::start().await;
    let first = app_with_smtp(&smtp, None).await;
    let second = app_with_smtp(&smtp, Some(first.state.config.database_url.clone())).await;
    let mut ids = Vec::new();
    for n in 0..40 {
        ids.push(queue_mail(&first.pool, &format!("owner{n}@example.com"), &format!("Mail {n}")).await);
    }
    for id in &ids {
        assert_eq!(wait_for_status(&first.pool, *id, "sent").await.0, "sent");
    }
    // Every row is sent, so every send has finished: the count is final.
    let mut subjects: Vec<String> = smtp.messages().iter().filter_map(|m| m.header("Subject")).collect();
    subjects.sort();
    let mut expected: Vec<String> = (0..40).map(|n| format!("Mail {n}")).collect();
    expected.sort();
    assert_eq!(subjects, expected, "each mail delivered exactly once");
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn a_451_reply_is_retried_and_then_delivered() {
    let smtp = FakeSmtp::start().await;
    smtp.refuse_next(451, 1);
    let app = app_with_smtp(&smtp, None).await;
    let id = queue_mail(&app.pool, "owner@example.com", "Try again").await;
    assert!(smtp.wait_for_refusals(1, WITHIN).await);
    let (status, attempts, error) = wait_for_status(&app.pool, id, "queued").await;
    let error = error.expect("the reason is kept");
    assert_eq!((status.as_str(), attempts), ("queued", 1));
    assert!(error.contains("451"), "{error}");
    let later: bool = sqlx::query_scalar("SELECT next_attempt_at > now() FROM email_outbox WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(later, "the retry waits");
    // The retry's time comes.
    sqlx::query("UPDATE email_outbox SET next_attempt_at = now() WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, attempts, error) = wait_for_status(&app.pool, id, "sent").await;
    assert_eq!((status.as_str(), attempts, error), ("sent", 2, None));
    assert_eq!(smtp.messages().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_550_reply_fails_the_mail_without_retrying() {
    let smtp = FakeSmtp::start().await;
    smtp.refuse_next(550, 1);
    let app = app_with_smtp(&smtp, None).await;
    let refused = queue_mail(&app.pool, "nobody@example.com", "Refused").await;
    let (status, attempts, error) = wait_for_status(&app.pool, refused, "failed").await;
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    assert!(error.unwrap_or_default().contains("550"));
    // The worker goes on: a later mail is delivered, the refused one is not tried again.
    let next = queue_mail(&app.pool, "owner@example.com", "Delivered").await;
    assert_eq!(wait_for_status(&app.pool, next, "sent").await.0, "sent");
    assert_eq!(smtp.refused(), 1);
    let subjects: Vec<String> = smtp.messages().iter().filter_map(|m| m.header("Subject")).collect();
    assert_eq!(subjects, ["Delivered"]);
    assert_eq!(mail_row(&app.pool, refused).await.1, 1);
    app.stop().await;
}

#[tokio::test]
async fn without_smtp_mails_wait_in_the_outbox_with_the_reason_shown() {
    let app = spawn_app_with(Options::default()).await;
    let owner = app.signed_in_owner("dana@example.com", "Bright Smile Dental").await;
    let status: String = sqlx::query_scalar("SELECT status FROM email_outbox WHERE kind = 'welcome'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "queued");
    let html = owner.get("/app/messages").await.text().await.unwrap();
    assert!(html.contains("Welcome to RinglyPro"), "the waiting welcome mail is listed");
    assert!(html.contains("SMTP_URL"), "the page says why mails wait");
    app.stop().await;
}
