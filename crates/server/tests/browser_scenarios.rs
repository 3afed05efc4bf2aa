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

/// Waits until the cards show node `id` in `role`, so that a screenshot shows what the story
/// just told.
fn card_shows(browser: &Browser, id: u16, role: &str) {
    wait_for("the card to catch up", Duration::from_secs(20), || {
        let shown = browser.execute(&format!(
            "const c = document.querySelector('.card[data-node=\"{id}\"]'); return c ? c.dataset.role : null;"
        ));
        (shown.as_str() == Some(role)).then_some(())
    });
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

/// A cluster under `skiff local` with a leader, and the page open on node 1.
struct Scene {
    _data: tempfile::TempDir,
    base: u16,
    local: Local,
    browser: Browser,
    /// The leader when the page opened, and its term.
    leader: u16,
    term: u64,
}

impl Scene {
    fn start() -> Scene {
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
        Scene {
            _data: data,
            base,
            local,
            browser,
            leader,
            term,
        }
    }

    fn stop(self) {
        drop(self.browser);
        self.local.stop();
    }
}

#[test]
fn cutting_off_a_follower_with_prevote_changes_no_term() {
    let _serial = serial();
    let scene = Scene::start();
    let (base, browser, leader, term) = (scene.base, &scene.browser, scene.leader, scene.term);

    click(browser, "button[data-scenario=\"follower\"]");
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
        (step_state(browser, 3).as_deref() == Some("done")).then_some(())
    });
    card_shows(browser, follower, "pre-candidate");
    screenshot(browser, "scenario-cut-off-a-follower.png");

    // Heal: the follower follows the same leader again, in the same term.
    click(browser, "#heal-all");
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
    scene.stop();
}

#[test]
fn cutting_off_the_leader_elects_a_new_one_and_the_old_one_steps_down() {
    let _serial = serial();
    let scene = Scene::start();
    let (base, browser, old, term) = (scene.base, &scene.browser, scene.leader, scene.term);

    click(browser, "button[data-scenario=\"leader\"]");
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
        || (step_state(browser, 3).as_deref() == Some("done")).then_some(()),
    );
    let old_status = statuses(base)
        .into_iter()
        .find(|(id, _)| *id == old)
        .expect("old");
    assert_ne!(old_status.1["role"], "leader");
    card_shows(browser, new, "leader");
    screenshot(browser, "scenario-cut-off-the-leader.png");

    // On heal it sees the higher term and follows the new leader (§5.1).
    click(browser, "#heal-all");
    wait_for(
        "the old leader following the new one",
        Duration::from_secs(30),
        || {
            let s = statuses(base).into_iter().find(|(id, _)| *id == old)?.1;
            (s["role"] == "follower" && s["leader"] == new && s["term"].as_u64()? >= new_term)
                .then_some(())
        },
    );
    scene.stop();
}

#[test]
fn the_english_and_chinese_pages_render_every_label() {
    let _serial = serial();
    let scene = Scene::start();
    let (base, browser) = (scene.base, &scene.browser);
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
        wait_for("arrows between the nodes", Duration::from_secs(20), || {
            (browser.execute("return !!document.querySelector('[data-flow]');")
                == Value::Bool(true))
            .then_some(())
        });
        screenshot(browser, &format!("live-view-{lang}.png"));
    }
    scene.stop();
}

#[test]
fn rejoining_without_prevote_the_higher_term_deposes_the_leader() {
    let _serial = serial();
    let scene = Scene::start();
    let (base, browser, leader, term) = (scene.base, &scene.browser, scene.leader, scene.term);

    click(browser, "button[data-scenario=\"rejoin\"]");
    // Cut off without PreVote, the follower raises its term at every timeout (§5.2).
    let follower = wait_for(
        "a cut-off node's term running ahead",
        Duration::from_secs(60),
        || {
            statuses(base)
                .into_iter()
                .find(|(_, s)| s["pre_vote"] == false && s["term"].as_u64() >= Some(term + 3))
                .map(|(id, _)| id)
        },
    );
    // The page reconnects it: its higher term deposes the leader (§5.1, thesis §4.2.3).
    wait_for("the story's fourth step", Duration::from_secs(60), || {
        (step_state(browser, 4).as_deref() == Some("done")).then_some(())
    });
    // The old leader went from its term straight to one at least three above: a term only the
    // cut-off node could have reached (the other follower, with PreVote, raised none).
    let leader_terms: Vec<u64> = serde_json::from_value(browser.execute(&format!(
        "return [...document.querySelectorAll('#timeline li[data-node=\"{leader}\"]')].map(li => Number(/term (\\d+)/.exec(li.textContent)[1]));"
    )))
    .expect("the old leader's event terms");
    let first_after = leader_terms
        .iter()
        .copied()
        .filter(|&t| t > term)
        .min()
        .expect("the old leader has events in a higher term");
    assert!(
        first_after >= term + 3,
        "the old leader's next term {first_after} came from the rejoining node: {leader_terms:?}"
    );
    let (new, _) = wait_for("a leader in a higher term", Duration::from_secs(60), || {
        statuses(base)
            .into_iter()
            .find(|(_, s)| s["role"] == "leader" && s["term"].as_u64() > Some(term))
    });
    card_shows(browser, new, "leader");
    screenshot(browser, "scenario-rejoin-without-prevote.png");

    // Heal turns PreVote back on.
    click(browser, "#heal-all");
    wait_for("PreVote on again", Duration::from_secs(30), || {
        statuses(base)
            .iter()
            .find(|(id, _)| *id == follower)
            .is_some_and(|(_, s)| s["pre_vote"] == true)
            .then_some(())
    });
    scene.stop();
}

#[test]
fn a_split_vote_leaves_a_term_without_leader_then_a_leader_is_elected() {
    let _serial = serial();
    let scene = Scene::start();
    let (base, browser, term) = (scene.base, &scene.browser, scene.term);

    click(browser, "button[data-scenario=\"split\"]");
    // Two candidates at once, reconnected, and no leader among the live nodes: a split vote.
    let split = wait_for(
        "two connected candidates and no leader",
        Duration::from_secs(60),
        || {
            let now = statuses(base);
            let candidates: Vec<u64> = now
                .iter()
                .filter(|(_, s)| s["role"] == "candidate" && s["isolated"] == false)
                .filter_map(|(_, s)| s["term"].as_u64())
                .collect();
            let leaders = now.iter().filter(|(_, s)| s["role"] == "leader").count();
            (candidates.len() == 2 && leaders == 0).then_some(candidates)
        },
    );
    assert!(
        split.iter().all(|&t| t > term),
        "{split:?} after term {term}"
    );
    // Randomized timeouts break the tie: a leader in a later term (§5.2).
    let (new, new_term) = wait_for("a leader after the split", Duration::from_secs(60), || {
        statuses(base).into_iter().find_map(|(id, s)| {
            (s["role"] == "leader").then(|| (id, s["term"].as_u64().unwrap_or(0)))
        })
    });
    // The story killed the leader (handed over first if it was the page's node): one node
    // answers no more.
    let answering: Vec<u16> = statuses(base).into_iter().map(|(id, _)| id).collect();
    let killed = (1..=3)
        .find(|id| !answering.contains(id))
        .expect("a killed node");
    assert_ne!(new, killed);
    assert!(
        new_term > *split.iter().min().expect("a term"),
        "{new_term}"
    );
    wait_for("the story's last step", Duration::from_secs(30), || {
        (step_state(browser, 4).as_deref() == Some("done")).then_some(())
    });
    card_shows(browser, new, "leader");
    card_shows(browser, killed, "down");
    screenshot(browser, "scenario-split-vote.png");

    // Heal restarts the killed node, turns PreVote on and restores the speed.
    click(browser, "#heal-all");
    wait_for(
        "all three back at normal speed",
        Duration::from_secs(60),
        || {
            let now = statuses(base);
            (now.len() == 3
                && now
                    .iter()
                    .all(|(_, s)| s["tick_ms"] == 10 && s["pre_vote"] == true))
            .then_some(())
        },
    );
    scene.stop();
}
