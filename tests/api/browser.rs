//! The dashboard in a real headless Chromium (Debian's `chromium` and `chromedriver`), at
//! a phone's width: sign up, sign in, switch Rachel, watch a live call, book and cancel.
//! Screenshots go to `$CARGO_TARGET_DIR/test-artifacts/screenshots/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::fakes::deepgram::FakeDeepgram;
use crate::helpers::{Options, TestApp, local_engines, spawn_app_with};

const NUMBER: &str = "+15550001111";
const EMAIL: &str = "maria@brightsmile.example";
const PASSWORD: &str = "plaque-free-smiles-42";

/// chromedriver and the browser session it drives; both stop on drop.
struct Browser {
    client: Client,
    driver: Child,
    shots: PathBuf,
    taken: usize,
}

impl Browser {
    async fn start() -> Browser {
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
                         "--disable-dev-shm-usage", "--window-size=375,812"],
                // A phone's viewport (a headless window is never narrower than 500 px).
                "mobileEmulation": {"deviceMetrics": {"width": 375, "height": 812, "pixelRatio": 1}},
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

    async fn screenshot(&mut self, name: &str) {
        self.taken += 1;
        let png = self.client.screenshot().await.expect("screenshot");
        let path = self.shots.join(format!("{:02}-{name}.png", self.taken));
        std::fs::write(&path, png).unwrap();
        println!("screenshot {}", path.display());
    }

    async fn text(&self, css: &str) -> String {
        let element = self.client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await;
        element.unwrap_or_else(|e| panic!("{css} is on the page: {e}")).text().await.unwrap()
    }

    async fn fill(&self, form: &str, fields: &[(&str, &str)]) {
        let form = self.client.form(Locator::Css(form)).await.unwrap_or_else(|e| panic!("form {form}: {e}"));
        for (name, value) in fields {
            form.set_by_name(name, value).await.unwrap_or_else(|e| panic!("field {name}: {e}"));
        }
        form.submit().await.unwrap();
    }

    async fn close(mut self) {
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

    browser.close().await;
    app.stop().await;
}
