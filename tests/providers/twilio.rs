//! `Twilio` against `FakeTwilio`: what goes on the wire, HTTP Basic, and Twilio's error
//! bodies mapped to codes and retryability.

use ringlypro::vendors::twilio::{NumberHooks, Twilio, TwilioError};
use secrecy::SecretString;
use url::Url;

use crate::fakes::twilio::{ACCOUNT_SID, AUTH_TOKEN, FakeTwilio};

fn client(fake: &FakeTwilio) -> Twilio {
    Twilio::new(&Url::parse(&fake.base_url).unwrap(), ACCOUNT_SID, &SecretString::from(AUTH_TOKEN))
}

fn hooks() -> NumberHooks {
    NumberHooks {
        voice_url: "https://rp.example/twilio/voice".into(),
        status_callback: "https://rp.example/twilio/status".into(),
        sms_url: "https://rp.example/twilio/sms".into(),
        sms_status_callback: Some("https://rp.example/twilio/sms-status".into()),
    }
}

#[tokio::test]
async fn a_text_is_sent_with_its_callback_and_gets_a_message_sid() {
    let fake = FakeTwilio::start().await;
    let sent = client(&fake)
        .send_message("+15550001111", "+15550002222", "Hi & bye", Some("https://rp.example/twilio/sms-status"))
        .await
        .unwrap();
    assert!(sent.sid.starts_with("SM"), "{sent:?}");
    assert_eq!(sent.status, "queued");
    let texts = fake.messages();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].to, "+15550001111");
    assert_eq!(texts[0].from, "+15550002222");
    assert_eq!(texts[0].body, "Hi & bye");
    assert_eq!(texts[0].status_callback.as_deref(), Some("https://rp.example/twilio/sms-status"));
    assert_eq!(fake.unauthorized(), 0);
}

#[tokio::test]
async fn server_errors_are_retryable_and_refusals_carry_twilios_code() {
    let fake = FakeTwilio::start().await;
    let twilio = client(&fake);
    fake.fail_next_sends(1);
    let e = twilio.send_message("+15550001111", "+15550002222", "x", None).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(matches!(e, TwilioError::Api { status: 500, .. }), "{e:?}");

    fake.refuse("+15550003333", 21610);
    let e = twilio.send_message("+15550003333", "+15550002222", "x", None).await.unwrap_err();
    assert_eq!(e.code(), Some(21610));
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("unsubscribed recipient"), "{e}");
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_not_retried() {
    let fake = FakeTwilio::start().await;
    let twilio = Twilio::new(&Url::parse(&fake.base_url).unwrap(), ACCOUNT_SID, &SecretString::from("wrong"));
    let e = twilio.send_message("+15550001111", "+15550002222", "x", None).await.unwrap_err();
    assert!(matches!(e, TwilioError::Api { status: 401, code: Some(20003), .. }), "{e:?}");
    assert!(!e.is_retryable());
    assert_eq!(fake.unauthorized(), 1);
}

#[tokio::test]
async fn an_unreachable_twilio_is_a_retryable_transport_error() {
    let fake = FakeTwilio::start().await;
    let base = fake.base_url.clone();
    drop(fake);
    tokio::task::yield_now().await;
    let twilio = Twilio::new(&Url::parse(&base).unwrap(), ACCOUNT_SID, &SecretString::from(AUTH_TOKEN));
    let e = twilio.send_message("+15550001111", "+15550002222", "x", None).await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
}

#[tokio::test]
async fn numbers_are_searched_by_area_code_bought_with_our_hooks_and_released() {
    let fake = FakeTwilio::start().await;
    let twilio = client(&fake);
    fake.offer_numbers(&["+13125550101", "+13125550102", "+14155550103"]);
    let offered = twilio.available_local_numbers("us", Some("312"), 5).await.unwrap();
    assert_eq!(offered, vec!["+13125550101", "+13125550102"]);

    fake.take("+13125550101");
    let e = twilio.buy_number("+13125550101", &hooks()).await.unwrap_err();
    assert_eq!(e.code(), Some(21422));
    let owned = twilio.buy_number("+13125550102", &hooks()).await.unwrap();
    assert!(owned.sid.starts_with("PN"));
    assert_eq!(owned.phone_number, "+13125550102");
    let bought = fake.bought();
    assert_eq!(bought.len(), 1);
    assert_eq!(bought[0].1.get("VoiceUrl").map(String::as_str), Some("https://rp.example/twilio/voice"));
    assert_eq!(bought[0].1.get("SmsUrl").map(String::as_str), Some("https://rp.example/twilio/sms"));
    assert_eq!(bought[0].1.get("StatusCallback").map(String::as_str), Some("https://rp.example/twilio/status"));

    twilio.release_number(&owned.sid).await.unwrap();
    assert_eq!(fake.released(), vec![owned.sid]);
    assert!(twilio.available_local_numbers("USA", None, 5).await.is_err());
}

#[tokio::test]
async fn a_live_call_is_redirected_and_ended() {
    let fake = FakeTwilio::start().await;
    let twilio = client(&fake);
    twilio.redirect_call("CA0001", "<Response><Dial>+15550001111</Dial></Response>").await.unwrap();
    twilio.end_call("CA0001").await.unwrap();
    let updates = fake.call_updates();
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0].twiml.as_deref(), Some("<Response><Dial>+15550001111</Dial></Response>"));
    assert_eq!(updates[1].status.as_deref(), Some("completed"));
    assert!(twilio.end_call("../Messages").await.is_err());
}
