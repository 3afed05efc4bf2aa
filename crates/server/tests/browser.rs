//! The live cluster view in a real browser: headless Chromium loads the page that `skiff
//! local` serves, sees three nodes and one leader, kills the leader with the page's own
//! button, sees a new leader appear, and saves a screenshot.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{free_base_port, free_port, serial, Local};
use serde_json::{json, Value};

/// Where Debian's `chromium` and `chromium-driver` packages install (`.ci/run` installs them).
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A headless Chromium driven through ChromeDriver's WebDriver API.
struct Browser {
    driver: Child,
    base: String,
    session: String,
}

impl Browser {
    fn start() -> Browser {
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

    fn navigate(&self, url: &str) {
        ureq::post(&self.url("/url"))
            .send_json(json!({ "url": url }))
            .expect("navigates");
    }

    /// Runs `script` (a function body) in the page and returns its value.
    fn execute(&self, script: &str) -> Value {
        ureq::post(&self.url("/execute/sync"))
            .send_json(json!({ "script": script, "args": [] }))
            .ok()
            .and_then(|r| r.into_json::<Value>().ok())
            .map(|v| v["value"].clone())
            .unwrap_or(Value::Null)
    }

    fn screenshot(&self) -> Vec<u8> {
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

/// The page's view: (node id, role) of every card.
fn cards(browser: &Browser) -> Vec<(u64, String)> {
    let value = browser.execute(
        "return [...document.querySelectorAll('.card')].map(c => [Number(c.dataset.node), c.dataset.role]);",
    );
    serde_json::from_value(value).unwrap_or_default()
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_live_view_shows_the_cluster_and_a_new_leader_after_killing_the_old_one_from_the_page() {
    let _serial = serial();
    let data = tempfile::tempdir().expect("temp dir");
    let base = free_base_port();
    let local = Local::start(data.path(), base);
    local.leader();
    let browser = Browser::start();
    browser.navigate(&format!("http://127.0.0.1:{}/", base + 200));

    let old_leader = wait_for(
        "three nodes and one leader",
        Duration::from_secs(15),
        || {
            let cards = cards(&browser);
            let leaders: Vec<u64> = cards
                .iter()
                .filter(|(_, role)| role == "leader")
                .map(|(id, _)| *id)
                .collect();
            let others_follow = cards.iter().filter(|(_, role)| role == "follower").count() == 2;
            (cards.len() == 3 && leaders.len() == 1 && others_follow).then(|| leaders[0])
        },
    );

    // The page's own Kill button on the leader's card.
    let clicked = browser.execute(
        "const b = document.querySelector('.card.leader button[data-action=\"kill\"]'); if (!b) return false; b.click(); return true;",
    );
    assert_eq!(
        clicked,
        Value::Bool(true),
        "the leader's card has a Kill button"
    );

    let new_leader = wait_for("a new leader", Duration::from_secs(15), || {
        let cards = cards(&browser);
        let old_down = cards
            .iter()
            .any(|(id, role)| *id == old_leader && role == "down");
        let leader = cards
            .iter()
            .find(|(id, role)| role == "leader" && *id != old_leader)
            .map(|(id, _)| *id);
        leader.filter(|_| old_down)
    });
    assert_ne!(new_leader, old_leader);
    let timeline = browser.execute("return document.getElementById('timeline').innerText;");
    assert!(
        timeline
            .as_str()
            .is_some_and(|text| text.contains("won the election")),
        "the event timeline shows the election: {timeline}"
    );

    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&folder).expect("output folder");
    let path = folder.join("live-view-after-leader-kill.png");
    std::fs::write(&path, png).expect("screenshot saved");
    eprintln!("screenshot: {}", path.display());
    drop(browser);
    local.stop();
}
