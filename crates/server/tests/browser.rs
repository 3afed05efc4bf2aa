//! The live cluster view in a real browser: headless Chromium loads the page that `skiff
//! local` serves, sees three nodes and one leader, kills the leader with the page's own
//! button, sees a new leader appear, and saves a screenshot.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{free_base_port, serial, Local};
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};

/// Where Debian's `chromium` package installs the browser (`.ci/run` installs it).
const CHROMIUM: &str = "/usr/bin/chromium";

fn browser() -> Browser {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)"
    );
    let args: Vec<&std::ffi::OsStr> = [
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    .iter()
    .map(std::ffi::OsStr::new)
    .collect();
    let options = LaunchOptions::default_builder()
        .path(Some(PathBuf::from(CHROMIUM)))
        .headless(true)
        .sandbox(false)
        .window_size(Some((1280, 800)))
        .args(args)
        .idle_browser_timeout(Duration::from_secs(120))
        .build()
        .expect("launch options");
    Browser::new(options).expect("chromium starts")
}

/// Evaluates `expression` in the page and returns its JSON value.
fn eval(tab: &Tab, expression: &str) -> serde_json::Value {
    tab.evaluate(expression, false)
        .ok()
        .and_then(|result| result.value)
        .unwrap_or(serde_json::Value::Null)
}

/// The page's view: (node id, role) of every card.
fn cards(tab: &Tab) -> Vec<(u64, String)> {
    let value = eval(
        tab,
        "JSON.stringify([...document.querySelectorAll('.card')].map(c => [Number(c.dataset.node), c.dataset.role]))",
    );
    value
        .as_str()
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default()
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
    let browser = browser();
    let tab = browser.new_tab().expect("a tab");
    tab.navigate_to(&format!("http://127.0.0.1:{}/", base + 200))
        .expect("navigates")
        .wait_until_navigated()
        .expect("page loads");

    let old_leader = wait_for("three nodes and one leader", Duration::from_secs(15), || {
        let cards = cards(&tab);
        let leaders: Vec<u64> = cards
            .iter()
            .filter(|(_, role)| role == "leader")
            .map(|(id, _)| *id)
            .collect();
        let others_follow = cards.iter().filter(|(_, role)| role == "follower").count() == 2;
        (cards.len() == 3 && leaders.len() == 1 && others_follow).then(|| leaders[0])
    });

    // The page's own Kill button on the leader's card.
    let clicked = eval(
        &tab,
        "(() => { const b = document.querySelector('.card.leader button[data-action=\"kill\"]'); if (!b) return false; b.click(); return true; })()",
    );
    assert_eq!(clicked, serde_json::Value::Bool(true), "the leader's card has a Kill button");

    let new_leader = wait_for("a new leader", Duration::from_secs(15), || {
        let cards = cards(&tab);
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
    let timeline = eval(&tab, "document.getElementById('timeline').innerText");
    assert!(
        timeline
            .as_str()
            .is_some_and(|text| text.contains("won the election")),
        "the event timeline shows the election: {timeline}"
    );

    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .expect("screenshot");
    let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&folder).expect("output folder");
    let path = folder.join("live-view-after-leader-kill.png");
    std::fs::write(&path, png).expect("screenshot saved");
    eprintln!("screenshot: {}", path.display());
    drop(tab);
    drop(browser);
    local.stop();
}
