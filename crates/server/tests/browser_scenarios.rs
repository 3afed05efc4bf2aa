//! The live view's Scenarios panel in a real browser: each button runs its story on the real
//! cluster, and the cluster does what the story says; the page speaks English and Chinese
//! with no word missing. Screenshots go to `target/tmp/screenshots/`.

#[path = "support/browser.rs"]
mod browser;
mod common;

use std::path::PathBuf;
use std::time::Duration;

use browser::{wait_for, Browser};
use common::{free_base_port, serial, Local};
use serde_json::Value;

/// Every node's (role, term, leader, isolated), as its `/status` says.
fn statuses(base: u16) -> Vec<(u16, Value)> {
    (1..=3)
        .filter_map(|id| {
            let status: Value =
                ureq::get(&format!("http://127.0.0.1:{}/status", base + 200 + id - 1))
                    .timeout(Duration::from_secs(2))
                    .call()
                    .ok()?
                    .into_json()
                    .ok()?;
            Some((id, status))
        })
        .collect()
}

fn term_of(statuses: &[(u16, Value)], id: u16) -> Option<u64> {
    statuses.iter().find(|(i, _)| *i == id)?.1["term"].as_u64()
}

/// The state of step `step` of the story the page tells (`current`, `done`, `waiting`).
fn step_state(browser: &Browser, step: u32) -> Option<String> {
    browser
        .execute(&format!(
            "const li = document.querySelector('#story li[data-step=\"{step}\"]'); return li ? li.dataset.state : null;"
        ))
        .as_str()
        .map(str::to_string)
}

fn click(browser: &Browser, selector: &str) {
    let clicked = browser.execute(&format!(
        "const b = document.querySelector('{selector}'); if (!b) return false; b.click(); return true;"
    ));
    assert_eq!(clicked, Value::Bool(true), "{selector} is on the page");
}

fn screenshot(browser: &Browser, name: &str) {
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&folder).expect("screenshot folder");
    std::fs::write(folder.join(name), png).expect("screenshot saved");
}

/// A cluster with a leader and the page open on node 1, its cards up.
fn open(base: u16) -> Browser {
    let browser = Browser::start();
    browser.navigate(&format!("http://127.0.0.1:{}/?lang=en", base + 200));
    wait_for("three cards and a leader", Duration::from_secs(20), || {
        let roles = browser
            .execute("return [...document.querySelectorAll('.card')].map(c => c.dataset.role);");
        let roles: Vec<String> = serde_json::from_value(roles).unwrap_or_default();
        (roles.len() == 3 && roles.iter().filter(|r| *r == "leader").count() == 1).then_some(())
    });
    browser
}

#[test]
fn cutting_off_a_follower_with_prevote_changes_no_term() {
    let _serial = serial();
    let data = tempfile::tempdir().expect("temp dir");
    let base = free_base_port();
    let local = Local::start(data.path(), base);
    local.leader();
    let browser = open(base);
    let before = statuses(base);
    let (leader, _) = before
        .iter()
        .find(|(_, s)| s["role"] == "leader")
        .cloned()
        .expect("a leader");
    let term = term_of(&before, leader).expect("the leader's term");

    click(&browser, "button[data-scenario=\"follower\"]");
    // Step 2 is done once the cut-off follower is a pre-candidate (thesis §9.6).
    let follower = wait_for("a cut-off pre-candidate", Duration::from_secs(30), || {
        statuses(base)
            .into_iter()
            .find(|(_, s)| s["isolated"] == true && s["role"] == "pre-candidate")
            .map(|(id, _)| id)
    });
    // Until the story has watched the leader stay for three seconds, every node stays in the
    // term it had: the cut-off node's pre-votes raise no term.
    wait_for("the story's third step", Duration::from_secs(60), || {
        let now = statuses(base);
        for id in 1..=3 {
            if let Some(t) = term_of(&now, id) {
                assert_eq!(
                    t, term,
                    "node {id}'s term changed: PreVote should prevent it"
                );
            }
        }
        (step_state(&browser, 3).as_deref() == Some("done")).then_some(())
    });
    screenshot(&browser, "scenario-cut-off-a-follower.png");

    // Heal: the follower follows the same leader again, in the same term.
    click(&browser, "#heal-all");
    wait_for(
        "the follower back, same term",
        Duration::from_secs(30),
        || {
            let now = statuses(base);
            let f = &now.iter().find(|(id, _)| *id == follower)?.1;
            (f["isolated"] == false
                && f["role"] == "follower"
                && f["leader"] == leader
                && f["term"] == term)
                .then_some(())
        },
    );
    assert_eq!(term_of(&statuses(base), leader), Some(term));
    drop(browser);
    local.stop();
}

#[test]
fn cutting_off_the_leader_elects_a_new_one_and_the_old_one_steps_down() {
    let _serial = serial();
    let data = tempfile::tempdir().expect("temp dir");
    let base = free_base_port();
    let local = Local::start(data.path(), base);
    local.leader();
    let browser = open(base);
    let before = statuses(base);
    let (old, _) = before
        .iter()
        .find(|(_, s)| s["role"] == "leader")
        .cloned()
        .expect("a leader");
    let term = term_of(&before, old).expect("term");

    click(&browser, "button[data-scenario=\"leader\"]");
    // §5.2: the majority elects a leader in a higher term.
    let (new, new_term) = wait_for(
        "a new leader in the majority",
        Duration::from_secs(30),
        || {
            statuses(base).into_iter().find_map(|(id, s)| {
                let t = s["term"].as_u64()?;
                (id != old && s["role"] == "leader" && t > term).then_some((id, t))
            })
        },
    );
    // Thesis §6.2: the old leader, hearing from no majority, steps down.
    wait_for(
        "the old leader to step down",
        Duration::from_secs(30),
        || (step_state(&browser, 3).as_deref() == Some("done")).then_some(()),
    );
    let old_status = statuses(base)
        .into_iter()
        .find(|(id, _)| *id == old)
        .expect("old");
    assert_ne!(old_status.1["role"], "leader");
    screenshot(&browser, "scenario-cut-off-the-leader.png");

    // On heal it sees the higher term and follows the new leader (§5.1).
    click(&browser, "#heal-all");
    wait_for(
        "the old leader following the new one",
        Duration::from_secs(30),
        || {
            let s = statuses(base).into_iter().find(|(id, _)| *id == old)?.1;
            (s["role"] == "follower" && s["leader"] == new && s["term"].as_u64()? >= new_term)
                .then_some(())
        },
    );
    drop(browser);
    local.stop();
}

#[test]
fn the_english_and_chinese_pages_render_every_label() {
    let _serial = serial();
    let data = tempfile::tempdir().expect("temp dir");
    let base = free_base_port();
    let local = Local::start(data.path(), base);
    local.leader();
    let browser = open(base);
    // Both tables have the same keys.
    let keys = browser.execute(
        "const s = window.SKIFF_STRINGS; return [Object.keys(s.en).sort(), Object.keys(s.zh).sort()];",
    );
    assert_eq!(keys[0], keys[1], "the English and Chinese tables differ");
    assert!(keys[0].as_array().is_some_and(|k| k.len() > 50));
    for (lang, marker) in [("en", "Scenarios"), ("zh", "场景")] {
        browser.navigate(&format!("http://127.0.0.1:{}/?lang={lang}", base + 200));
        let empty = wait_for("every label filled", Duration::from_secs(20), || {
            let found = browser.execute(&format!(
                "if (!document.querySelector('.card[data-role=\"leader\"]')) return null; \
                 const empty = [...document.querySelectorAll('[data-i18n]')].filter(e => !e.textContent.trim()).map(e => e.dataset.i18n); \
                 return document.getElementById('scenarios').innerText.includes('{marker}') ? empty : null;"
            ));
            serde_json::from_value::<Vec<String>>(found).ok()
        });
        assert!(empty.is_empty(), "{lang}: empty labels {empty:?}");
        // The cards' words are the language's too.
        let role = browser.execute(
            "return document.querySelector('.card[data-role=\"leader\"] .role').textContent;",
        );
        let expected = if lang == "zh" { "领导者" } else { "leader" };
        assert_eq!(role, Value::String(expected.into()), "{lang}");
        screenshot(&browser, &format!("live-view-{lang}.png"));
    }
    drop(browser);
    local.stop();
}
