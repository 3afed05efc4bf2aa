//! `CONFIG GET` and `CONFIG SET`: the parameters a client may read, and the one it may
//! change at run time, `notify-keyspace-events`. Everything else comes from `skiff serve`'s
//! flags and `--config` file, so `CONFIG REWRITE` is refused. A change holds on this node
//! only, until it restarts.

use skiff_kv::Reply;

use crate::commands::ConfigRequest;
use crate::pubsub::{glob, Hub, NotifyFlags, INVALID_FLAGS};

/// The parameter `CONFIG SET` may change.
const NOTIFY: &[u8] = b"notify-keyspace-events";

/// The parameters `CONFIG GET` answers that never change: every write is fsynced before it
/// is acknowledged, which is what Redis calls `appendonly yes` with `appendfsync always`;
/// there are no RDB save points, and one database.
const FIXED: [(&[u8], &[u8]); 4] = [
    (b"save", b""),
    (b"appendonly", b"yes"),
    (b"appendfsync", b"always"),
    (b"databases", b"1"),
];

/// Redis 7's error for a `CONFIG SET` that fails on `parameter`.
fn set_failed(parameter: &[u8], why: &str) -> Reply {
    Reply::error(format!(
        "ERR CONFIG SET failed (possibly related to argument '{}') - {why}",
        String::from_utf8_lossy(parameter)
    ))
}

/// Answers a `CONFIG` request.
pub fn answer(request: ConfigRequest, hub: &Hub) -> Reply {
    match request {
        ConfigRequest::Get(patterns) => get(&patterns, hub),
        ConfigRequest::Set(pairs) => set(pairs, hub),
        ConfigRequest::ResetStat => Reply::Ok,
        ConfigRequest::Rewrite => Reply::error(
            "ERR CONFIG REWRITE is not supported: settings come from skiff serve's flags and its --config file",
        ),
    }
}

/// `CONFIG GET`: each parameter some pattern matches, once, as name and value.
fn get(patterns: &[Vec<u8>], hub: &Hub) -> Reply {
    let notify = hub.flags().to_string().into_bytes();
    let parameters = FIXED
        .iter()
        .map(|(name, value)| (*name, value.to_vec()))
        .chain([(NOTIFY, notify)]);
    let mut reply = Vec::new();
    for (name, value) in parameters {
        if patterns.iter().any(|pattern| glob::matches(pattern, name)) {
            reply.push(Reply::Bulk(name.to_vec()));
            reply.push(Reply::Bulk(value));
        }
    }
    Reply::Array(reply)
}

/// `CONFIG SET`: all pairs checked before any takes effect, as in Redis.
fn set(pairs: Vec<(Vec<u8>, Vec<u8>)>, hub: &Hub) -> Reply {
    let mut flags = None;
    for (index, (name, value)) in pairs.iter().enumerate() {
        if pairs[..index].iter().any(|(earlier, _)| earlier == name) {
            return set_failed(name, "duplicate parameter");
        }
        if name.as_slice() == NOTIFY {
            match NotifyFlags::parse(value) {
                Some(parsed) => flags = Some(parsed),
                None => return set_failed(name, INVALID_FLAGS),
            }
        } else if FIXED.iter().any(|(fixed, _)| fixed == name) {
            return set_failed(name, "can't set immutable config");
        } else {
            return Reply::error(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                String::from_utf8_lossy(name)
            ));
        }
    }
    if let Some(flags) = flags {
        hub.set_flags(flags);
    }
    Reply::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn pairs(list: &[(&str, &str)]) -> ConfigRequest {
        ConfigRequest::Set(
            list.iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    fn bulks(list: &[&str]) -> Reply {
        Reply::Array(
            list.iter()
                .map(|w| Reply::Bulk(w.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn set_changes_the_notification_flags_and_get_prints_them_as_redis() {
        let hub = Hub::default();
        let get = |hub: &Hub, p: &[&str]| answer(ConfigRequest::Get(words(p)), hub);
        assert_eq!(
            get(&hub, &["notify-keyspace-events"]),
            bulks(&["notify-keyspace-events", ""])
        );
        assert_eq!(
            answer(pairs(&[("notify-keyspace-events", "KEA")]), &hub),
            Reply::Ok
        );
        assert_eq!(
            get(&hub, &["notify*"]),
            bulks(&["notify-keyspace-events", "AKE"])
        );
        assert_eq!(
            answer(pairs(&[("notify-keyspace-events", "")]), &hub),
            Reply::Ok
        );
        assert!(!hub.flags().publishes(), "the empty string turns it off");
        assert_eq!(
            get(&hub, &["save", "appendonly", "nothing*"]),
            bulks(&["save", "", "appendonly", "yes"])
        );
        assert_eq!(
            get(&hub, &["*", "save"]).to_owned(),
            get(&hub, &["*"]),
            "each parameter once"
        );
    }

    #[test]
    fn refusals_are_redis_7s_and_change_nothing() {
        let hub = Hub::default();
        answer(pairs(&[("notify-keyspace-events", "Kx")]), &hub);
        let refused = [
            (
                pairs(&[("notify-keyspace-events", "KQ")]),
                "ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'.",
            ),
            (
                pairs(&[("notify-keyspace-events", "KEA"), ("notify-keyspace-events", "Kx")]),
                "ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - duplicate parameter",
            ),
            (
                pairs(&[("notify-keyspace-events", "KEA"), ("foo", "bar")]),
                "ERR Unknown option or number of arguments for CONFIG SET - 'foo'",
            ),
            (
                pairs(&[("appendonly", "no")]),
                "ERR CONFIG SET failed (possibly related to argument 'appendonly') - can't set immutable config",
            ),
        ];
        for (request, error) in refused {
            assert_eq!(answer(request, &hub), Reply::error(error));
            assert_eq!(hub.flags().to_string(), "xK", "all or nothing");
        }
        assert!(answer(ConfigRequest::Rewrite, &hub).is_error());
        assert_eq!(answer(ConfigRequest::ResetStat, &hub), Reply::Ok);
    }
}
