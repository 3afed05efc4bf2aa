//! What the live view shows of Raft itself, in a real browser: the events of before the page
//! was opened (each node's history), each node's log as cells coloured by term (and a cut-off
//! leader's uncommitted entry replaced when it rejoins, §5.3), the messages between nodes as
//! arrows, and the speed control that slows every node's tick down.

#[path = "support/browser.rs"]
mod browser;
mod common;

use std::time::Duration;

use browser::{wait_for, Browser};
use common::{free_base_port, serial, Local};
use serde_json::Value;

fn status(http: u16) -> Option<Value> {
    ureq::get(&format!("http://127.0.0.1:{http}/status"))
        .timeout(Duration::from_secs(2))
        .call()
        .ok()?
        .into_json()
        .ok()
}

fn post(http: u16, path: &str) -> u16 {
    match ureq::post(&format!("http://127.0.0.1:{http}{path}"))
        .timeout(Duration::from_secs(10))
        .call()
    {
        Ok(response) => response.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(_) => 0,
    }
}

/// The `data-log-entry` values ("index:term") of node `id`'s card.
fn log_cells(browser: &Browser, id: u16) -> Vec<String> {
    let value = browser.execute(&format!(
        "return [...document.querySelectorAll('.card[data-node=\"{id}\"] [data-log-entry]')].map(c => c.dataset.logEntry);"
    ));
    serde_json::from_value(value).unwrap_or_default()
}

fn js_strings(browser: &Browser, script: &str) -> Vec<String> {
    serde_json::from_value(browser.execute(script)).unwrap_or_default()
}

/// Chooses `ms` a tick in the page's speed control and waits until every node runs at it.
fn choose_speed(browser: &Browser, ms: u64, nodes: &[u16]) {
    browser.execute(&format!(
        "const s = document.getElementById('speed'); s.value = '{ms}'; s.dispatchEvent(new Event('change')); return true;"
    ));
    wait_for(
        "every node at the chosen speed",
        Duration::from_secs(20),
        || {
            nodes
                .iter()
                .all(|&http| status(http).is_some_and(|s| s["tick_ms"] == ms))
                .then_some(())
        },
    );
}

#[test]
fn the_view_shows_earlier_events_the_logs_by_term_and_the_messages_between_nodes() {
    let _serial = serial();
    let data = tempfile::tempdir().expect("temp dir");
    let base = free_base_port();
    let http = move |id: u16| base + 200 + id - 1;
    let local = Local::start(data.path(), base);
    let leader = local.leader();

    // The election happened before the page was opened: the timeline shows it all the same.
    let browser = Browser::start();
    browser.navigate(&format!("http://127.0.0.1:{}/", http(1)));
    let kinds = wait_for(
        "the history of the election",
        Duration::from_secs(20),
        || {
            let kinds = js_strings(
            &browser,
            "return [...document.querySelectorAll('#timeline li[data-event]')].map(li => li.dataset.event);",
        );
            (kinds.iter().any(|k| k == "leader") && kinds.iter().any(|k| k == "role"))
                .then_some(kinds)
        },
    );
    assert!(
        kinds.iter().any(|k| k == "election" || k == "role"),
        "{kinds:?}"
    );

    // Each card's log cells are the node's last entries, index:term as the node reports.
    wait_for("the leader's log as cells", Duration::from_secs(20), || {
        let cells = log_cells(&browser, leader);
        let reported: Vec<String> = status(http(leader))?["log"]
            .as_array()?
            .iter()
            .map(|c| format!("{}:{}", c["index"], c["term"]))
            .collect();
        (!cells.is_empty() && cells == reported).then_some(())
    });

    // Heartbeats flow from the leader to every follower, drawn as arrows.
    let followers: Vec<u16> = (1..=3).filter(|&id| id != leader).collect();
    for &follower in &followers {
        wait_for("heartbeat arrows", Duration::from_secs(20), || {
            let found = browser.execute(&format!(
                "const a = document.querySelector('[data-flow=\"{leader}-{follower}\"]'); return a ? a.dataset.kinds : null;"
            ));
            found
                .as_str()
                .is_some_and(|kinds| kinds.contains("heartbeat"))
                .then_some(())
        });
    }

    // The speed control slows every node down (50 ms a tick: elections take 0.75–1.5 s).
    choose_speed(&browser, 50, &[http(1), http(2), http(3)]);

    // A leader cut off takes a write it can never commit: an entry of its term at the end of
    // its log. The majority elects a new leader, whose no-op takes that index; on healing, the
    // old leader's entry is replaced by the new leader's (§5.3), and its cell shows the new term.
    let before = status(http(leader)).expect("the leader's status");
    let old_term = before["term"].as_u64().expect("term");
    let next = before["last_index"].as_u64().expect("last index") + 1;
    assert_eq!(post(http(leader), "/admin/isolate?on=true"), 200);
    let writer = std::thread::spawn(move || post(http(leader), "/kv/set?key=lost&value=never"));
    let stale = format!("{next}:{old_term}");
    wait_for(
        "the uncommitted entry on the cut-off leader",
        Duration::from_secs(20),
        || log_cells(&browser, leader).contains(&stale).then_some(()),
    );
    let new_leader = wait_for(
        "a new leader in a higher term",
        Duration::from_secs(30),
        || {
            followers.iter().copied().find(|&id| {
                status(http(id))
                    .is_some_and(|s| s["role"] == "leader" && s["term"].as_u64() > Some(old_term))
            })
        },
    );
    assert_eq!(post(http(leader), "/admin/isolate?on=false"), 200);
    wait_for(
        "the old leader's entry replaced by the new leader's",
        Duration::from_secs(30),
        || {
            let cells = log_cells(&browser, leader);
            let replaced = cells.iter().any(|c| {
                c.split_once(':').is_some_and(|(i, t)| {
                    i == next.to_string() && t.parse::<u64>().is_ok_and(|t| t > old_term)
                })
            });
            (replaced && !cells.contains(&stale)).then_some(())
        },
    );
    assert_ne!(
        writer.join().expect("the writer"),
        200,
        "the lost write was not acknowledged"
    );
    assert!(status(http(new_leader)).is_some());

    // Back to normal speed; the screenshot shows the log strips and the arrows.
    choose_speed(&browser, 10, &[http(1), http(2), http(3)]);
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"));
    let folder = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&folder).expect("screenshot folder");
    std::fs::write(folder.join("live-view-logs-and-messages.png"), png).expect("saved");
    drop(browser);
    local.stop();
}
