//! The dashboard in a real headless Chromium (Debian's `chromium` and `chromedriver`), at
//! a phone's width: sign up, sign in, switch Rachel, watch a live call, book and cancel;
//! open the Credits page and follow a reload until it is paid.
//! Screenshots go to `$CARGO_TARGET_DIR/test-artifacts/screenshots/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use ringlypro::providers::tts::flite::FliteTts;
use ringlypro::sim::{self, Line, Script as CallScript};
use serde_json::json;

use crate::fakes::deepgram::FakeDeepgram;
use crate::helpers::{Options, TestApp, local_engines, spawn_app, spawn_app_with};

const NUMBER: &str = "+15550001111";
const EMAIL: &str = "maria@brightsmile.example";
const PASSWORD: &str = "plaque-free-smiles-42";

/// chromedriver and the browser session it drives; both stop on `close`. Shared by the
/// browser tests of other pages.
pub(crate) struct Browser {
    pub(crate) client: Client,
    driver: Child,
    shots: PathBuf,
    taken: usize,
}

impl Browser {
    pub(crate) async fn start() -> Browser {
        Browser::start_at(375, 812).await
    }

    /// A phone's viewport of `width` × `height` CSS pixels.
    pub(crate) async fn start_at(width: u32, height: u32) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (scripts/setup installs chromium-driver)");
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--no-first-run",
                         "--disable-dev-shm-usage", format!("--window-size={width},{height}")],
                // A phone's viewport (a headless window is never narrower than 500 px).
                "mobileEmulation": {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 1}},
            }
        });
        let capabilities = capabilities.as_object().unwrap().clone();
        let mut last_error = None;
        for _ in 0..100 {
            match ClientBuilder::rustls()
                .expect("TLS roots")
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => {
                    let target =
                        std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| "target".into());
                    let shots = target.join("test-artifacts").join("screenshots");
                    std::fs::create_dir_all(&shots).unwrap();
                    return Browser { client, driver, shots, taken: 0 };
                }
                Err(e) => last_error = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start: {last_error:?}");
    }

    pub(crate) async fn screenshot(&mut self, name: &str) {
        self.taken += 1;
        let png = self.client.screenshot().await.expect("screenshot");
        let path = self.shots.join(format!("{:02}-{name}.png", self.taken));
        std::fs::write(&path, png).unwrap();
        println!("screenshot {}", path.display());
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        let element = self.client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await;
        element.unwrap_or_else(|e| panic!("{css} is on the page: {e}")).text().await.unwrap()
    }

    /// Waits until the element's text contains `needle` (the page updates by itself).
    pub(crate) async fn wait_for_text(&self, css: &str, needle: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(needle) {
                return text;
            }
            assert!(tokio::time::Instant::now() < deadline, "{css} never showed {needle:?}; it shows {text:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Clicks an element once scrolled to the middle of the screen, clear of the tab bar.
    pub(crate) async fn click(&self, css: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
        let arg = serde_json::to_value(&element).unwrap();
        self.client.execute("arguments[0].scrollIntoView({block: 'center'});", vec![arg]).await.unwrap();
        element.click().await.unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    pub(crate) async fn fill(&self, form: &str, fields: &[(&str, &str)]) {
        let form = self.client.form(Locator::Css(form)).await.unwrap_or_else(|e| panic!("form {form}: {e}"));
        for (name, value) in fields {
            form.set_by_name(name, value).await.unwrap_or_else(|e| panic!("field {name}: {e}"));
        }
        form.submit_direct().await.unwrap();
    }

    /// Signs Maria up as the owner of Bright Smile Dental (New York) through the signup
    /// form of `base_url`; she lands on the Today page.
    pub(crate) async fn sign_up(&self, base_url: &str) {
        self.client.goto(&format!("{base_url}/signup")).await.unwrap();
        self.fill(
            "form[action='/signup']",
            &[
                ("business_name", "Bright Smile Dental"),
                ("business_phone", "+1 (555) 010-2000"),
                ("business_type", "Dental"),
                ("timezone", "America/New_York"),
                ("owner_name", "Maria Lopez"),
                ("owner_phone", "+1 555 010 2001"),
                ("email", EMAIL),
                ("password", PASSWORD),
            ],
        )
        .await;
    }

    pub(crate) async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn rachel_enabled(app: &TestApp) -> bool {
    sqlx::query_scalar("SELECT rachel_enabled FROM clients WHERE ringlypro_number = $1")
        .bind(NUMBER)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_owner_signs_up_switches_rachel_watches_a_live_call_and_books_on_a_phone_screen() {
    let dg = FakeDeepgram::start().await;
    dg.final_delay(Duration::ZERO);
    let mut stt_config = ringlypro::providers::stt::deepgram::DeepgramConfig::new(FakeDeepgram::API_KEY);
    stt_config.base_url = dg.url();
    let engines = ringlypro::call::engines::Engines {
        stt: Arc::new(ringlypro::providers::stt::deepgram::DeepgramStt::new(stt_config)),
        ..local_engines()
    };
    let app = spawn_app_with(Options {
        engines: Some(engines),
        env: vec![("RINGLYPRO_NUMBER_POOL", NUMBER.into())],
        ..Options::default()
    })
    .await;
    let mut browser = Browser::start().await;
    let b = &browser.client;

    // Sign up.
    b.goto(&format!("{}/signup", app.base_url)).await.unwrap();
    browser.screenshot("signup").await;
    browser
        .fill(
            "form[action='/signup']",
            &[
                ("business_name", "Bright Smile Dental"),
                ("business_phone", "+1 (555) 010-2000"),
                ("business_type", "Dental"),
                ("timezone", "America/New_York"),
                ("owner_name", "Maria Lopez"),
                ("owner_phone", "+1 555 010 2001"),
                ("email", EMAIL),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(browser.text("#rachel").await.contains("Rachel"), "signed up and on the Today page");
    browser.screenshot("today").await;

    // Sign out, then in again.
    browser.fill("form[action='/logout']", &[]).await;
    browser.client.goto(&format!("{}/login", app.base_url)).await.unwrap();
    browser.fill("form[action='/login']", &[("email", EMAIL), ("password", PASSWORD)]).await;
    assert!(browser.text("#rachel").await.contains("Rachel"), "signed in");

    // One tap turns Rachel off, another on again.
    assert!(rachel_enabled(&app).await);
    browser.client.find(Locator::Css("#rachel button")).await.unwrap().click().await.unwrap();
    browser.text("#rachel.off").await; // the page came back with Rachel off
    assert!(browser.text("#rachel button").await.contains("Turn Rachel on"));
    assert!(!rachel_enabled(&app).await, "the next call goes to the owner");
    browser.screenshot("rachel-off").await;
    browser.client.find(Locator::Css("#rachel button")).await.unwrap().click().await.unwrap();
    browser.text("#rachel.on").await;
    assert!(browser.text("#rachel button").await.contains("Turn Rachel off"));
    assert!(rachel_enabled(&app).await);

    // The Live page shows a call's transcript line by line while it runs.
    browser.client.goto(&format!("{}/app/live", app.base_url)).await.unwrap();
    browser.text("#no-live").await;
    dg.say_next(["i would like to book an appointment"]);
    let base_url = app.base_url.clone();
    let call = tokio::spawn(async move {
        let line = Line { text: "I would like to book an appointment.".into(), over_agent: false };
        let mut script = CallScript::new(&base_url, NUMBER, "+15557654321", vec![line]);
        script.answer_gap = Duration::from_millis(1500);
        sim::place_call(&script, Arc::new(FliteTts::default())).await
    });
    let greeting = browser.wait_for_text("#live", "Bright Smile Dental", Duration::from_secs(30)).await;
    let caller = browser.wait_for_text("#live", "book an appointment", Duration::from_secs(30)).await;
    assert!(caller.find("Bright Smile Dental") < caller.find("book an appointment"), "in order: {greeting} / {caller}");
    browser.screenshot("live-call").await;
    // The owner sends a note, then takes the call: both from the card, the page staying put.
    let note = browser.client.form(Locator::Css(".live-note")).await.expect("the note form");
    note.set_by_name("text", "We can fit you in at three today.").await.unwrap();
    browser.click(".live-note button").await;
    browser.wait_for_text(".live-status", "Your note will be said", Duration::from_secs(10)).await;
    browser.wait_for_text("#live", "We can fit you in at three today.", Duration::from_secs(30)).await;
    browser.screenshot("live-note").await;
    browser.click(".live-takeover button").await;
    browser.wait_for_text(".live-status", "handing the call to you", Duration::from_secs(10)).await;
    let report = call.await.unwrap().expect("the call ran");
    assert_eq!(report.outcome, "transfer", "the call went to the owner's phone");

    // Book an appointment from the agenda, then cancel it.
    browser.client.goto(&format!("{}/app/appointments", app.base_url)).await.unwrap();
    browser
        .fill(
            "form[action='/app/appointments']",
            &[
                ("customer_name", "Jonas Whitfield"),
                ("customer_phone", "+1 555 010 3003"),
                ("date", "2031-03-04"),
                ("time", "10:30"),
            ],
        )
        .await;
    let booked: (i64, String) = loop {
        let row = sqlx::query_as("SELECT id, status FROM appointments WHERE customer_name = 'Jonas Whitfield'")
            .fetch_optional(&app.pool)
            .await
            .unwrap();
        if let Some(row) = row {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(booked.1, "confirmed");
    browser.client.goto(&format!("{}/app/appointments/{}", app.base_url, booked.0)).await.unwrap();
    assert!(browser.text("main").await.contains("Jonas Whitfield"));
    browser.screenshot("appointment").await;
    browser
        .fill(&format!("form[action='/app/appointments/{}/status']:has(input[value='cancelled'])", booked.0), &[])
        .await;
    let mut status = String::new();
    for _ in 0..50 {
        status = sqlx::query_scalar("SELECT status FROM appointments WHERE id = $1")
            .bind(booked.0)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if status == "cancelled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "cancelled", "the appointment was cancelled from its page");
    browser.screenshot("appointment-cancelled").await;

    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn an_owner_reloads_credit_on_a_phone_and_the_reload_page_turns_paid_by_itself() {
    const CREDIT_NUMBER: &str = "+15550003333";
    let app =
        spawn_app_with(Options { env: vec![("RINGLYPRO_NUMBER_POOL", CREDIT_NUMBER.into())], ..Options::default() })
            .await;
    let mut browser = Browser::start_at(390, 844).await;
    browser.client.goto(&format!("{}/signup", app.base_url)).await.unwrap();
    browser
        .fill(
            "form[action='/signup']",
            &[
                ("business_name", "Harbor Physio"),
                ("business_phone", "+1 (555) 010-4000"),
                ("business_type", "Physiotherapy"),
                ("timezone", "America/Los_Angeles"),
                ("owner_name", "Lee Park"),
                ("owner_phone", "+1 555 010 4001"),
                ("email", "lee@harborphysio.example"),
                ("password", PASSWORD),
            ],
        )
        .await;
    browser.text("#rachel").await;
    // Two calls Twilio reports ended: three minutes, and one too short to charge.
    let twilio = reqwest::Client::new();
    for (sid, seconds) in [("CA_CREDIT_1", "150"), ("CA_CREDIT_2", "9")] {
        let voice = crate::helpers::voice_params(sid, "+15557654321", CREDIT_NUMBER);
        twilio.post(format!("{}/twilio/voice", app.base_url)).form(&voice).send().await.unwrap();
        let status = [("CallSid", sid), ("CallStatus", "completed"), ("CallDuration", seconds)];
        let r = twilio.post(format!("{}/twilio/status", app.base_url)).form(&status).send().await.unwrap();
        assert_eq!(r.status(), 204);
    }

    browser.client.goto(&format!("{}/app/credits", app.base_url)).await.unwrap();
    assert_eq!(browser.text("#credit-balance").await, "$0.00");
    assert_eq!(browser.text("#credit-free").await, "97");
    assert!(browser.text("#credit-reset").await.starts_with("resets "));
    browser.screenshot("credits").await;
    for section in ["usage", "ledger", "auto-reload"] {
        browser
            .client
            .execute(&format!("document.getElementById('{section}').scrollIntoView(); return null;"), vec![])
            .await
            .unwrap();
        browser.screenshot(&format!("credits-{section}")).await;
    }
    browser.client.execute("window.scrollTo(0, 0); return null;", vec![]).await.unwrap();

    browser.client.find(Locator::Css("#reload-2000")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("#reload-status", "Waiting for confirmation", Duration::from_secs(10)).await;
    let url = browser.client.current_url().await.unwrap();
    assert!(url.path().starts_with("/app/credits/reloads/"), "{url}");
    browser.screenshot("reload-waiting").await;

    // A mark on the page itself: it is still there after the update only if the page was
    // never loaded again.
    browser.client.execute("window.notReloaded = true; return null;", vec![]).await.unwrap();
    let (reload_id, admin): (i64, i64) =
        sqlx::query_as("SELECT r.id, u.id FROM credit_reloads r JOIN users u ON u.email = 'lee@harborphysio.example'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    app.state
        .payments
        .confirm_manual_reload(reload_id, ringlypro::domain::ids::UserId(admin))
        .await
        .expect("the reload is confirmed");
    let paid = browser.wait_for_text("#reload-status", "Paid", Duration::from_secs(10)).await;
    assert_eq!(paid, "Paid: $20.00 added. Your balance is now $20.00.");
    assert_eq!(browser.text("#reload-balance").await, "$20.00");
    let kept = browser.client.execute("return window.notReloaded === true;", vec![]).await.unwrap();
    assert_eq!(kept, json!(true), "the page updated in place");
    browser.screenshot("reload-paid").await;

    // A locked account shows the banner on every page.
    sqlx::query("UPDATE credit_accounts SET free_minutes_used = free_minutes_limit, balance_cents = 0, locked = true")
        .execute(&app.pool)
        .await
        .unwrap();
    browser.client.goto(&format!("{}/app", app.base_url)).await.unwrap();
    assert!(browser.text("#lock-banner").await.contains("Rachel is paused"));
    browser.screenshot("locked").await;

    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_locked_owner_pays_on_stripes_checkout_page_and_the_next_call_reaches_rachel() {
    const STRIPE_NUMBER: &str = "+15550004444";
    let stripe = crate::fakes::stripe::FakeStripe::start().await;
    let app = spawn_app_with(Options {
        env: vec![
            ("RINGLYPRO_NUMBER_POOL", STRIPE_NUMBER.into()),
            ("STRIPE_SECRET_KEY", stripe.secret_key.clone()),
            ("STRIPE_WEBHOOK_SECRET", stripe.webhook_secret.clone()),
            ("STRIPE_API_BASE", stripe.base_url.clone()),
        ],
        ..Options::default()
    })
    .await;
    stripe.deliver_to(&format!("{}/webhooks/stripe", app.base_url));
    let mut browser = Browser::start_at(390, 844).await;
    browser.client.goto(&format!("{}/signup", app.base_url)).await.unwrap();
    browser
        .fill(
            "form[action='/signup']",
            &[
                ("business_name", "Casa Verde Salon"),
                ("business_phone", "+1 (555) 010-5000"),
                ("business_type", "Salon"),
                ("timezone", "America/Denver"),
                ("owner_name", "Ana Ruiz"),
                ("owner_phone", "+1 555 010 5001"),
                ("email", "ana@casaverde.example"),
                ("password", PASSWORD),
            ],
        )
        .await;
    browser.text("#rachel").await;
    sqlx::query("UPDATE credit_accounts SET free_minutes_used = free_minutes_limit, balance_cents = 0, locked = true")
        .execute(&app.pool)
        .await
        .unwrap();
    let twilio = reqwest::Client::new();
    let voice = |sid: &str| crate::helpers::voice_params(sid, "+15557654321", STRIPE_NUMBER);
    let forwarded =
        twilio.post(format!("{}/twilio/voice", app.base_url)).form(&voice("CA_LOCKED")).send().await.unwrap();
    assert!(forwarded.text().await.unwrap().contains("<Dial"), "locked: the owner's phone rings");

    // While locked, settings still work: the owner blocks a robocaller.
    browser.client.goto(&format!("{}/app/settings", app.base_url)).await.unwrap();
    browser.fill("form[action='/app/settings/blocked']", &[("phone", "(555) 999-0000"), ("note", "robocalls")]).await;
    let saved = browser.wait_for_text("#blocked", "(555) 999-0000", Duration::from_secs(10)).await;
    assert!(saved.contains("robocalls"), "{saved}");
    browser.client.execute("document.getElementById('blocked').scrollIntoView(); return null;", vec![]).await.unwrap();
    browser.screenshot("settings-blocked").await;

    // The owner reloads $20 from the banner's page; Stripe's hosted page opens.
    browser.client.goto(&format!("{}/app/credits", app.base_url)).await.unwrap();
    // Below the lock banner, as a thumb would find it: scrolled up from under the tab bar.
    browser
        .client
        .execute("document.getElementById('reload-2000').scrollIntoView({block: 'center'}); return null;", vec![])
        .await
        .unwrap();
    browser.client.find(Locator::Css("#reload-2000")).await.unwrap().click().await.unwrap();
    let mut checkout = browser.client.current_url().await.unwrap();
    for _ in 0..100 {
        if checkout.as_str().starts_with(&stripe.base_url) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        checkout = browser.client.current_url().await.unwrap();
    }
    if !checkout.as_str().starts_with(&stripe.base_url) {
        panic!("not on Stripe's page ({checkout}): {}", browser.text("main").await);
    }
    browser.screenshot("stripe-checkout").await;
    browser.client.find(Locator::Css("#pay")).await.unwrap().click().await.unwrap();
    let paid = browser.wait_for_text("#reload-status", "Paid", Duration::from_secs(10)).await;
    assert_eq!(paid, "Paid: $20.00 added. Your balance is now $20.00.");
    let back = browser.client.current_url().await.unwrap();
    assert!(back.path().starts_with("/app/credits"), "back on RinglyPro: {back}");
    browser.screenshot("stripe-paid").await;

    let answered =
        twilio.post(format!("{}/twilio/voice", app.base_url)).form(&voice("CA_UNLOCKED")).send().await.unwrap();
    assert!(answered.text().await.unwrap().contains("<Stream"), "the next call reaches Rachel");
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn an_owner_makes_an_api_key_and_adds_a_webhook_on_a_phone_screen() {
    let app = spawn_app().await;
    let mut browser = Browser::start().await;
    browser.sign_up(&app.base_url).await;
    browser.client.goto(&format!("{}/app/settings", app.base_url)).await.unwrap();
    browser.click("#open-integrations").await;
    assert!(browser.text("#no-keys").await.contains("No keys yet"));
    let title = browser.client.title().await.unwrap();
    assert!(title.starts_with("Integrations") && title.len() < 40, "{title}");
    browser.fill("form[action='/app/integrations/api-keys']", &[("name", "Zapier")]).await;
    let key = browser.text("#new-key-value").await;
    assert!(key.starts_with("rpk_"), "{key}");
    browser.screenshot("integrations-new-key").await;
    let listed =
        reqwest::Client::new().get(format!("{}/api/webhooks", app.base_url)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(listed.status(), 200, "the key shown works");

    browser.fill("form[action='/app/integrations/webhooks']", &[("url", "https://hooks.example.com/ringlypro")]).await;
    let added = browser.wait_for_text("#endpoint-list", "hooks.example.com", Duration::from_secs(10)).await;
    assert!(added.contains("appointment.booked") && added.contains("whsec_"), "{added}");
    assert!(!browser.client.source().await.unwrap().contains(&key), "the key is not shown again");
    browser.client.execute("document.getElementById('webhooks').scrollIntoView(); return null;", vec![]).await.unwrap();
    browser.screenshot("integrations-webhook").await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn an_owner_connects_gohighlevel_and_picks_a_calendar_on_a_phone_screen() {
    let ghl = crate::fakes::gohighlevel::FakeGoHighLevel::start().await;
    ghl.add_calendar("loc-1", "cal-cleanings", "Cleanings");
    let app = spawn_app_with(Options { env: ghl.env(), ..Default::default() }).await;
    let mut browser = Browser::start().await;
    browser.sign_up(&app.base_url).await;
    browser.client.goto(&format!("{}/app/integrations", app.base_url)).await.unwrap();
    browser.click("#ghl-connect").await;
    let status = browser.wait_for_text("#ghl-status", "loc-1", Duration::from_secs(10)).await;
    assert!(status.contains("the calendar Main"), "{status}");
    browser.fill("form[action='/app/integrations/gohighlevel/calendar']", &[("calendar_id", "cal-cleanings")]).await;
    let chosen = browser.wait_for_text("#ghl-status", "Cleanings", Duration::from_secs(10)).await;
    assert!(chosen.contains("the calendar Cleanings"), "{chosen}");
    browser
        .client
        .execute(
            "document.getElementById('gohighlevel').scrollIntoView(); window.scrollBy(0, -70); return null;",
            vec![],
        )
        .await
        .unwrap();
    browser.screenshot("integrations-gohighlevel").await;
    browser.close().await;
    app.stop().await;
}
