//! Inbound texts on `/twilio/sms`: threaded into the sender's contact, STOP/START/HELP
//! answered in the sender's language, other texts forwarded to the owner, and bad requests
//! refused clearly.

use ringlypro::domain::ids::TenantId;
use sqlx::PgPool;

use crate::fakes::twilio::{self, AUTH_TOKEN, FakeTwilio};
use crate::helpers::add_tenant;
use crate::texting::{NUMBER, app_with, queue, wait_for_status};

const SENDER: &str = "+15550134567";

async fn body_of(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (status, kind, response.text().await.unwrap())
}

async fn texts_in(pool: &PgPool, tenant: TenantId) -> Vec<(Option<i64>, String, String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT contact_id, direction, status, body, twilio_sid FROM messages \
         WHERE client_id = $1 AND direction = 'inbound' ORDER BY id",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_inbound_text_is_threaded_into_a_new_contact_once() {
    let fake = FakeTwilio::start().await;
    let app = app_with(&fake, None).await;
    let tenant = add_tenant(&app.pool, "Bella Salon", NUMBER, "America/New_York").await;
    for _ in 0..2 {
        let (status, _, body) =
            body_of(twilio::text_in(&app.base_url, "SMin1", "(555) 013-4567", NUMBER, "HELP").await).await;
        assert_eq!(status, 200, "{body}");
    }
    let (contact_id, source): (i64, String) =
        sqlx::query_as("SELECT id, source FROM contacts WHERE client_id = $1 AND phone = $2")
            .bind(tenant)
            .bind(SENDER)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(source, "sms");
    let texts = texts_in(&app.pool, tenant).await;
    assert_eq!(
        texts,
        vec![(Some(contact_id), "inbound".into(), "received".into(), "HELP".into(), Some("SMin1".into()))]
    );
    app.stop().await;
}

#[tokio::test]
async fn help_is_answered_with_the_business_name_and_number_in_the_senders_language() {
    let fake = FakeTwilio::start().await;
    let app = app_with(&fake, None).await;
    add_tenant(&app.pool, "Bella & Co", NUMBER, "America/New_York").await;
    let (status, kind, body) = body_of(twilio::text_in(&app.base_url, "SMh1", SENDER, NUMBER, "help").await).await;
    assert_eq!(status, 200);
    assert!(kind.contains("xml"), "{kind}");
    assert!(body.contains("<Response><Message>Bella &amp; Co: call or text us at +15550100000."), "{body}");
    // Written in Spanish, the contact is Spanish from then on.
    let (_, _, body) = body_of(twilio::text_in(&app.base_url, "SMh2", SENDER, NUMBER, "Ayuda").await).await;
    assert!(body.contains("llámenos o escríbanos al +15550100000"), "{body}");
    let (_, _, body) = body_of(twilio::text_in(&app.base_url, "SMh3", SENDER, NUMBER, "INFO").await).await;
    assert!(body.contains("llámenos"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn stop_then_a_booking_confirmation_is_suppressed_and_start_enables_texts_again() {
    let fake = FakeTwilio::start().await;
    let app = app_with(&fake, None).await;
    let tenant = add_tenant(&app.pool, "Bella Salon", NUMBER, "America/New_York").await;
    let (_, _, body) = body_of(twilio::text_in(&app.base_url, "SMs1", SENDER, NUMBER, "Stop").await).await;
    assert!(body.contains("<Message>Bella Salon: you won&apos;t get more texts from us."), "{body}");
    let confirmation = queue(&app.pool, tenant, SENDER, "Bella Salon: you're booked").await;
    let row = wait_for_status(&app.pool, confirmation, "suppressed").await;
    assert!(row.error_message.unwrap().contains("opt out"));
    assert!(fake.all_texts().iter().all(|t| t.to != SENDER));

    let (_, _, body) = body_of(twilio::text_in(&app.base_url, "SMs2", SENDER, NUMBER, "START").await).await;
    assert!(body.contains("texts are back on"), "{body}");
    let next = queue(&app.pool, tenant, SENDER, "Bella Salon: you're booked").await;
    wait_for_status(&app.pool, next, "sent").await;
    assert_eq!(fake.messages().iter().filter(|t| t.to == SENDER).count(), 1);
    app.stop().await;
}

#[tokio::test]
async fn cancel_without_an_upcoming_appointment_opts_out_and_yes_opts_back_in() {
    let fake = FakeTwilio::start().await;
    let app = app_with(&fake, None).await;
    let tenant = add_tenant(&app.pool, "Bella Salon", NUMBER, "America/New_York").await;
    let (_, _, body) = body_of(twilio::text_in(&app.base_url, "SMc1", SENDER, NUMBER, "CANCEL").await).await;
    assert!(body.contains("won&apos;t get more texts"), "{body}");
    let opted: i64 = sqlx::query_scalar("SELECT count(*) FROM sms_opt_outs WHERE client_id = $1 AND phone = $2")
        .bind(tenant)
        .bind(SENDER)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(opted, 1);
    let (_, _, body) = body_of(twilio::text_in(&app.base_url, "SMc2", SENDER, NUMBER, "yes").await).await;
    assert!(body.contains("texts are back on"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_free_text_is_forwarded_to_the_owner_without_ids() {
    let fake = FakeTwilio::start().await;
    let app = app_with(&fake, None).await;
    let tenant = add_tenant(&app.pool, "Bella Salon", NUMBER, "America/New_York").await;
    let (status, _, body) =
        body_of(twilio::text_in(&app.base_url, "SMf1", SENDER, NUMBER, "Can I bring my dog?").await).await;
    assert_eq!(status, 200);
    assert!(body.ends_with("<Response/>"), "{body}");
    let forwarded = fake.wait_for_messages(1).await;
    assert_eq!(forwarded[0].to, "+15551230000");
    assert_eq!(forwarded[0].from, NUMBER);
    assert_eq!(forwarded[0].body, "Text from +15550134567: Can I bring my dog?");
    let kind: String = sqlx::query_scalar("SELECT kind FROM messages WHERE client_id = $1 AND direction = 'outbound'")
        .bind(tenant)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(kind, "owner_forward");
    app.stop().await;
}

#[tokio::test]
async fn a_wrongly_signed_inbound_text_is_forbidden_and_not_stored() {
    let fake = FakeTwilio::start().await;
    let app = app_with(&fake, None).await;
    let tenant = add_tenant(&app.pool, "Bella Salon", NUMBER, "America/New_York").await;
    let params = [("MessageSid", "SMx"), ("From", SENDER), ("To", NUMBER), ("Body", "hi")];
    let response = twilio::post_signed(&app.base_url, "/twilio/sms", "not-the-token", &params).await;
    assert_eq!(response.status(), 403);
    let response = twilio::post_signed(&app.base_url, "/twilio/sms-status", "not-the-token", &params).await;
    assert_eq!(response.status(), 403);
    assert!(texts_in(&app.pool, tenant).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_text_to_a_number_no_business_uses_is_a_clear_404() {
    let fake = FakeTwilio::start().await;
    let app = app_with(&fake, None).await;
    let (status, _, body) = body_of(twilio::text_in(&app.base_url, "SMu1", SENDER, "+15550109999", "hi").await).await;
    assert_eq!(status, 404);
    assert!(body.contains("no business uses the number +15550109999"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn empty_oversized_or_unaddressed_texts_are_refused_clearly() {
    let fake = FakeTwilio::start().await;
    let app = app_with(&fake, None).await;
    let tenant = add_tenant(&app.pool, "Bella Salon", NUMBER, "America/New_York").await;
    let long = "x".repeat(1601);
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("MessageSid", "SM1"), ("From", SENDER), ("To", NUMBER), ("Body", "  ")], "Body is required"),
        (&[("MessageSid", "SM2"), ("From", SENDER), ("To", NUMBER), ("Body", &long)], "1601 characters"),
        (&[("MessageSid", "SM3"), ("To", NUMBER), ("Body", "hi")], "From is required"),
        (&[("MessageSid", "SM4"), ("From", SENDER), ("Body", "hi")], "To is required"),
    ];
    for (params, expected) in cases {
        let (status, _, body) =
            body_of(twilio::post_signed(&app.base_url, "/twilio/sms", AUTH_TOKEN, params).await).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains(expected), "{body}");
    }
    assert!(texts_in(&app.pool, tenant).await.is_empty());
    app.stop().await;
}
