//! The live cluster view in a real browser: headless Chromium loads the page that `skiff
//! local` serves, sees three nodes and one leader, makes another node leader, cuts a node
//! off and heals it, kills the leader with the page's own button, sees a new leader appear,
//! and saves a screenshot.

#[path = "support/browser.rs"]
mod browser;
mod common;

use std::path::PathBuf;
use std::time::Duration;

use browser::{wait_for, Browser};
use common::{free_base_port, serial, Local};
use serde_json::Value;

/// The page's view: (node id, role) of every card.
fn cards(browser: &Browser) -> Vec<(u64, String)> {
    let value = browser.execute(
        "return [...document.querySelectorAll('.card')].map(c => [Number(c.dataset.node), c.dataset.role]);",
    );
    serde_json::from_value(value).unwrap_or_default()
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

    // The page's "Make leader" and "Cut off" buttons on another node's card: the page posts
    // to the node that served it, which relays (nodes accept writes only from their own page).
    let page_node = 1;
    let target = cards(&browser)
        .iter()
        .map(|(id, _)| *id)
        .find(|&id| id != old_leader && id != page_node)
        .expect("a follower that did not serve the page");
    let click = |action: &str, node: u64| {
        browser.execute(&format!(
            "const b = document.querySelector('.card[data-node=\"{node}\"] button[data-action=\"{action}\"]'); if (!b) return false; b.click(); return true;"
        ))
    };
    wait_for(
        "the transfer button to be clicked",
        Duration::from_secs(5),
        || (click("transfer", target) == Value::Bool(true)).then_some(()),
    );
    let old_leader = wait_for("the chosen node to lead", Duration::from_secs(15), || {
        cards(&browser)
            .iter()
            .any(|(id, role)| *id == target && role == "leader")
            .then_some(target)
    });
    let follower = cards(&browser)
        .iter()
        .map(|(id, _)| *id)
        .find(|&id| id != old_leader && id != page_node)
        .expect("another follower");
    wait_for(
        "the cut-off button to be clicked",
        Duration::from_secs(5),
        || (click("isolate", follower) == Value::Bool(true)).then_some(()),
    );
    wait_for(
        "the cut-off node to offer Heal",
        Duration::from_secs(10),
        || (click("heal", follower) == Value::Bool(true)).then_some(()),
    );
    wait_for(
        "the healed node to offer Cut off again",
        Duration::from_secs(10),
        || {
            let found = browser.execute(&format!(
            "return !!document.querySelector('.card[data-node=\"{follower}\"] button[data-action=\"isolate\"]');"
        ));
            (found == Value::Bool(true)).then_some(())
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
