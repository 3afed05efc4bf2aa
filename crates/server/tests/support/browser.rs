//! A headless Chromium driven through ChromeDriver's WebDriver API, for the tests of the live
//! view (`#[path = "support/browser.rs"] mod browser;`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::common::free_port;

/// Where Debian's `chromium` and `chromium-driver` packages install (`.ci/run` installs them).
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A headless Chromium driven through ChromeDriver's WebDriver API.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
}

impl Browser {
    pub fn start() -> Browser {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: install Debian's chromium and chromium-driver (.ci/run does)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().expect("profile dir").keep();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        let deadline = Instant::now() + Duration::from_secs(20);
        let response = loop {
            match ureq::post(&format!("{base}/session")).send_json(capabilities.clone()) {
                Ok(response) => break response,
                Err(error) => {
                    assert!(Instant::now() < deadline, "no WebDriver session: {error}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        };
        let body: Value = response.into_json().expect("session JSON");
        let session = body["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        Browser {
            driver,
            base,
            session,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    pub fn navigate(&self, url: &str) {
        ureq::post(&self.url("/url"))
            .send_json(json!({ "url": url }))
            .expect("navigates");
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub fn execute(&self, script: &str) -> Value {
        ureq::post(&self.url("/execute/sync"))
            .send_json(json!({ "script": script, "args": [] }))
            .ok()
            .and_then(|r| r.into_json::<Value>().ok())
            .map(|v| v["value"].clone())
            .unwrap_or(Value::Null)
    }

    #[allow(dead_code)] // not every test takes one
    pub fn screenshot(&self) -> Vec<u8> {
        let body: Value = ureq::get(&self.url("/screenshot"))
            .call()
            .expect("screenshot")
            .into_json()
            .expect("screenshot JSON");
        base64::engine::general_purpose::STANDARD
            .decode(body["value"].as_str().expect("base64 PNG"))
            .expect("valid base64")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&self.url("")).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Runs `f` every 100 ms until it returns `Some`, or panics after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
