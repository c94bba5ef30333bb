//! The Messages pages in a real headless Chromium (Debian's `chromium` and `chromedriver`):
//! a delivered text with its Twilio SID, a failed one with Twilio's reason, and a text
//! received while the conversation is open appearing in it by itself.

use std::time::Duration;

use fantoccini::Locator;
use ringlypro::domain::ids::{ContactId, MessageId, TenantId};
use ringlypro::storage::postgres::messages::{self, Direction, NewMessage};

use crate::browser::Browser;
use crate::fakes::twilio::{self, FakeTwilio};
use crate::helpers::{Options, spawn_app_with};
use crate::texting::wait_for_status;

const NUMBER: &str = "+15550001111";
const CUSTOMER: &str = "+15550107777";
const BAD_NUMBER: &str = "+15550108888";

async fn queue(pool: &sqlx::PgPool, tenant: TenantId, contact: Option<ContactId>, to: &str, body: &str) -> MessageId {
    let mut conn = pool.acquire().await.unwrap();
    messages::queue(
        &mut conn,
        &NewMessage {
            client_id: tenant,
            contact_id: contact,
            call_id: None,
            direction: Direction::Outbound,
            kind: "sms",
            to_number: to,
            from_number: NUMBER,
            body,
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn the_messages_pages_show_delivered_and_failed_texts_and_a_received_one_arrives_live() {
    let fake = FakeTwilio::start().await;
    fake.refuse(BAD_NUMBER, 21211);
    let mut env = fake.env();
    env.push(("TEXTING_POLL_MS", "20".into()));
    env.push(("RINGLYPRO_NUMBER_POOL", NUMBER.into()));
    let app = spawn_app_with(Options { env, ..Options::default() }).await;
    let browser = Browser::start().await;
    browser.sign_up(&app.base_url).await;
    browser.text("#rachel").await;
    let tenant: TenantId = sqlx::query_scalar("SELECT id FROM clients WHERE ringlypro_number = $1")
        .bind(NUMBER)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let contact: ContactId = sqlx::query_scalar(
        "INSERT INTO contacts (client_id, phone, name, source) VALUES ($1, $2, 'Ana Ruiz', 'manual') RETURNING id",
    )
    .bind(tenant)
    .bind(CUSTOMER)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let delivered = queue(&app.pool, tenant, Some(contact), CUSTOMER, "See you Tuesday at 10").await;
    let failed = queue(&app.pool, tenant, None, BAD_NUMBER, "Your code is 4821").await;
    let sid = wait_for_status(&app.pool, delivered, "sent").await.twilio_sid.unwrap();
    assert_eq!(twilio::text_status(&app.base_url, &sid, "delivered", None).await.status(), 200);
    wait_for_status(&app.pool, delivered, "delivered").await;
    wait_for_status(&app.pool, failed, "failed").await;

    browser.client.goto(&format!("{}/app/messages", app.base_url)).await.unwrap();
    let other = browser.text("#other-messages").await;
    assert!(other.contains("failed") && other.contains("not a valid phone number"), "{other}");
    assert!(browser.client.find(Locator::Css("#texting-off")).await.is_err(), "Twilio is configured");

    browser.client.goto(&format!("{}/app/messages/{}", app.base_url, contact.get())).await.unwrap();
    let thread = browser.text("#thread").await;
    assert!(
        thread.contains("See you Tuesday at 10") && thread.contains("delivered") && thread.contains(&sid),
        "{thread}"
    );
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#thread[data-live='on']"))
        .await
        .unwrap_or_else(|e| panic!("the conversation's live feed opens: {e:?}"));
    let reply = twilio::text_in(&app.base_url, "SMlive1", CUSTOMER, NUMBER, "Can I come at 11 instead?").await;
    assert_eq!(reply.status(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let thread = browser.text("#thread").await;
        if thread.contains("Can I come at 11 instead?") {
            assert!(thread.contains("received"), "{thread}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the received text never appeared: {thread}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.close().await;
    app.stop().await;
}
