//! [`History`]: the last events a node published, kept for a live view opened later (its
//! timeline starts with what happened before it connected), bounded by count: past
//! [`MAX_HISTORY_EVENTS`] the oldest is dropped and counted.

use std::collections::VecDeque;

/// Events a node keeps for views that connect later.
pub const MAX_HISTORY_EVENTS: usize = 500;

/// The events a node published, newest last, each as the JSON its subscribers get.
#[derive(Debug, Default)]
pub struct History {
    /// Invariant: `events.len() <= MAX_HISTORY_EVENTS`.
    events: VecDeque<String>,
    /// The sequence number the next event gets (the first is 1).
    next_seq: u64,
    /// Events dropped from the front to keep the bound.
    dropped: u64,
}

impl History {
    /// The sequence number of the next event.
    pub fn next_seq(&mut self) -> u64 {
        self.next_seq = self.next_seq.saturating_add(1);
        self.next_seq
    }

    /// Keeps `json`, dropping the oldest event if the history is full.
    pub fn push(&mut self, json: String) {
        if self.events.len() >= MAX_HISTORY_EVENTS {
            self.events.pop_front();
            self.dropped = self.dropped.saturating_add(1);
        }
        self.events.push_back(json);
    }

    /// `{"dropped":N,"events":[...]}`: the history as one JSON document, oldest first.
    pub fn to_json(&self) -> String {
        let bytes: usize = self.events.iter().map(|e| e.len() + 1).sum();
        let mut json = String::with_capacity(bytes + 40);
        json.push_str(&format!("{{\"dropped\":{},\"events\":[", self.dropped));
        for (i, event) in self.events.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(event);
        }
        json.push_str("]}");
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_the_newest_events_and_counts_the_dropped_ones() {
        let mut history = History::default();
        for i in 0..MAX_HISTORY_EVENTS + 3 {
            let seq = history.next_seq();
            history.push(format!("{{\"seq\":{seq},\"i\":{i}}}"));
        }
        let value: serde_json::Value =
            serde_json::from_str(&history.to_json()).expect("the history is JSON");
        assert_eq!(value["dropped"], 3);
        let events = value["events"].as_array().expect("events");
        assert_eq!(events.len(), MAX_HISTORY_EVENTS);
        assert_eq!(events[0]["seq"], 4, "the three oldest were dropped");
        assert_eq!(
            events[MAX_HISTORY_EVENTS - 1]["seq"],
            MAX_HISTORY_EVENTS as u64 + 3
        );
    }

    #[test]
    fn an_empty_history_is_an_empty_list() {
        let value: serde_json::Value =
            serde_json::from_str(&History::default().to_json()).expect("JSON");
        assert_eq!(value, serde_json::json!({"dropped": 0, "events": []}));
    }
}
