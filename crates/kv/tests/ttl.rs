//! Keys with a time to live, command by command, at log time: what each command answers,
//! the deadline it leaves, when the key goes, and the revision each write leaves.

use skiff_kv::{
    Command, Deadline, ExpireCondition, Expiry, KvConfig, Reply, SetCondition, SetOptions,
    StateMachine, TimeUnit,
};

const T0: u64 = 1_000_000;

/// A store driven entry by entry, each stamped with a log time.
struct Store {
    kv: StateMachine,
    index: u64,
}

impl Store {
    fn new() -> Store {
        Store {
            kv: StateMachine::new(KvConfig::default()).expect("default config"),
            index: 0,
        }
    }

    /// Applies `command` as the next entry, stamped `at`.
    fn at(&mut self, at: u64, command: Command) -> Reply {
        self.index += 1;
        self.kv.apply_at(self.index, Some(at), command, None)
    }

    fn read(&self, command: Command) -> Reply {
        self.kv.read(&command)
    }
}

fn k() -> Vec<u8> {
    b"k".to_vec()
}

fn set(value: &str, condition: SetCondition, expiry: Expiry, get: bool) -> Command {
    Command::SetWith {
        key: k(),
        value: value.into(),
        options: SetOptions {
            condition,
            expiry,
            get,
        },
    }
}

fn plain_set(value: &str) -> Command {
    Command::Set {
        key: k(),
        value: value.into(),
        condition: SetCondition::Always,
    }
}

fn pttl() -> Command {
    Command::Ttl {
        key: k(),
        unit: TimeUnit::Milliseconds,
    }
}

fn bulk(value: &str) -> Reply {
    Reply::Bulk(value.into())
}

fn px(ms: i64) -> Expiry {
    Expiry::Until(Deadline::In(ms))
}

/// Every combination of condition, `GET` and expiry, on a missing key and on a present key
/// with a deadline: the reply, whether the value changed, and the deadline left.
#[test]
fn set_with_every_combination_of_options() {
    use SetCondition::*;
    let expiries = [
        Expiry::Clear,
        Expiry::Keep,
        px(500),
        Expiry::Until(Deadline::At((T0 + 700) as i64)),
    ];
    for condition in [Always, IfAbsent, IfPresent] {
        for get in [false, true] {
            for expiry in expiries {
                let case = format!("{condition:?} get={get} {expiry:?}");
                // On a missing key.
                let mut store = Store::new();
                let reply = store.at(T0, set("new", condition, expiry, get));
                let writes = condition != IfPresent;
                let expected = match (writes, get) {
                    (_, true) => Reply::Nil,
                    (true, false) => Reply::Ok,
                    (false, false) => Reply::Nil,
                };
                assert_eq!(reply, expected, "missing key, {case}");
                let deadline = match expiry {
                    Expiry::Clear | Expiry::Keep => None,
                    Expiry::Until(Deadline::In(ms)) => Some(T0 + ms as u64),
                    Expiry::Until(Deadline::At(ms)) => Some(ms as u64),
                };
                if writes {
                    assert_eq!(store.kv.get(b"k"), Some(&b"new"[..]), "{case}");
                    assert_eq!(store.kv.deadline_ms(b"k"), deadline, "{case}");
                    assert_eq!(store.kv.revision(b"k"), Some(1), "{case}");
                } else {
                    assert_eq!(store.kv.get(b"k"), None, "{case}");
                }

                // On a present key that has a deadline of its own.
                let mut store = Store::new();
                store.at(T0, set("old", Always, px(10_000), false));
                let reply = store.at(T0 + 1, set("new", condition, expiry, get));
                let writes = condition != IfAbsent;
                let expected = match (writes, get) {
                    (_, true) => bulk("old"),
                    (true, false) => Reply::Ok,
                    (false, false) => Reply::Nil,
                };
                assert_eq!(reply, expected, "present key, {case}");
                let deadline = match expiry {
                    Expiry::Clear => None,
                    Expiry::Keep => Some(T0 + 10_000),
                    Expiry::Until(Deadline::In(ms)) => Some(T0 + 1 + ms as u64),
                    Expiry::Until(Deadline::At(ms)) => Some(ms as u64),
                };
                if writes {
                    assert_eq!(store.kv.get(b"k"), Some(&b"new"[..]), "{case}");
                    assert_eq!(store.kv.deadline_ms(b"k"), deadline, "{case}");
                    assert_eq!(store.kv.revision(b"k"), Some(2), "{case}");
                } else {
                    assert_eq!(store.kv.get(b"k"), Some(&b"old"[..]), "{case}");
                    assert_eq!(store.kv.deadline_ms(b"k"), Some(T0 + 10_000), "{case}");
                    assert_eq!(store.kv.revision(b"k"), Some(1), "{case}");
                }
            }
        }
    }
}

#[test]
fn a_key_is_gone_from_the_entry_whose_log_time_reaches_its_deadline() {
    let mut store = Store::new();
    store.at(T0, set("v", SetCondition::Always, px(1_000), false));
    assert_eq!(store.read(pttl()), Reply::Integer(1_000));
    store.at(T0 + 999, Command::DbSize);
    assert_eq!(store.read(pttl()), Reply::Integer(1));
    assert_eq!(store.read(Command::Get { key: k() }), bulk("v"));
    store.at(T0 + 1_000, Command::DbSize);
    assert_eq!(store.read(Command::Get { key: k() }), Reply::Nil);
    assert_eq!(store.read(pttl()), Reply::Integer(-2));
    assert_eq!(store.read(Command::DbSize), Reply::Integer(0));
    assert!(store.kv.is_empty(), "removed, not only hidden");
}

#[test]
fn an_entry_carrying_only_the_time_removes_what_is_due_and_time_never_goes_back() {
    let mut store = Store::new();
    store.at(T0, set("v", SetCondition::Always, px(100), false));
    assert_eq!(store.kv.next_deadline_ms(), Some(T0 + 100));
    store.kv.pass_time(2, T0 + 100);
    assert!(store.kv.is_empty());
    assert_eq!(store.kv.next_deadline_ms(), None);
    // An earlier stamp (a log written before stamps, or a replayed entry) does not move
    // the log time back.
    store.index = 2;
    store.at(T0 + 50, Command::DbSize);
    assert_eq!(store.kv.log_time_ms(), T0 + 100);
    // An entry without a stamp runs at the last log time.
    store.kv.apply(4, plain_set("w"), None);
    assert_eq!(store.kv.log_time_ms(), T0 + 100);
}

#[test]
fn a_deadline_already_passed_deletes_the_key() {
    let mut store = Store::new();
    let past = Expiry::Until(Deadline::At(T0 as i64));
    store.at(T0, plain_set("v"));
    assert_eq!(
        store.at(T0, set("w", SetCondition::Always, past, true)),
        bulk("v")
    );
    assert_eq!(store.kv.get(b"k"), None);
    store.at(T0, plain_set("v"));
    assert_eq!(
        store.at(
            T0,
            Command::GetEx {
                key: k(),
                expiry: past
            }
        ),
        bulk("v")
    );
    assert_eq!(store.kv.get(b"k"), None);
    store.at(T0, plain_set("v"));
    let expire = |deadline| Command::Expire {
        key: k(),
        deadline,
        condition: ExpireCondition::Always,
    };
    assert_eq!(store.at(T0, expire(Deadline::In(-1))), Reply::Integer(1));
    assert_eq!(store.kv.get(b"k"), None);
    assert_eq!(
        store.at(T0, expire(Deadline::In(10))),
        Reply::Integer(0),
        "missing key"
    );
}

#[test]
fn a_deadline_beyond_64_bits_is_an_invalid_expire_time() {
    let mut store = Store::new();
    store.at(T0, plain_set("v"));
    let far = Expiry::Until(Deadline::In(i64::MAX));
    assert_eq!(
        store.at(T0, set("w", SetCondition::Always, far, false)),
        Reply::error("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        store.at(
            T0,
            Command::GetEx {
                key: k(),
                expiry: far
            }
        ),
        Reply::error("ERR invalid expire time in 'getex' command")
    );
    let expire = Command::Expire {
        key: k(),
        deadline: Deadline::In(i64::MAX),
        condition: ExpireCondition::Always,
    };
    assert_eq!(
        store.at(T0, expire),
        Reply::error("ERR invalid expire time in 'expire' command")
    );
    assert_eq!(store.kv.get(b"k"), Some(&b"v"[..]), "nothing changed");
    assert_eq!(store.kv.deadline_ms(b"k"), None);
}

/// `GETEX` judges its time only once it has found the key, as Redis does: a missing key
/// answers nil whatever the time; on a present key a time that is not positive or does not
/// fit in 64 bits is an invalid expire time and changes nothing.
#[test]
fn getex_on_a_missing_key_answers_nil_whatever_the_time() {
    let mut store = Store::new();
    let getex = |key: &[u8], deadline| Command::GetEx {
        key: key.to_vec(),
        expiry: Expiry::Until(deadline),
    };
    let invalid = Reply::error("ERR invalid expire time in 'getex' command");
    for deadline in [Deadline::In(0), Deadline::In(i64::MAX), Deadline::At(-1)] {
        assert_eq!(
            store.at(T0, getex(b"none", deadline)),
            Reply::Nil,
            "{deadline:?}"
        );
    }
    store.at(T0, plain_set("v"));
    for deadline in [
        Deadline::In(0),
        Deadline::In(-5),
        Deadline::At(0),
        Deadline::In(i64::MAX),
    ] {
        assert_eq!(store.at(T0, getex(b"k", deadline)), invalid, "{deadline:?}");
    }
    assert_eq!(store.kv.get(b"k"), Some(&b"v"[..]), "nothing changed");
    assert_eq!(store.kv.deadline_ms(b"k"), None);
}

#[test]
fn expire_conditions_follow_redis() {
    use ExpireCondition::*;
    // (condition, current deadline in ms from T0 or none, new in ms from T0, applies)
    let table = [
        (Always, None, 50, true),
        (IfNone, None, 50, true),
        (IfNone, Some(100), 50, false),
        (IfSome, None, 50, false),
        (IfSome, Some(100), 50, true),
        (IfLater, None, 50, false),
        (IfLater, Some(100), 50, false),
        (IfLater, Some(100), 100, false),
        (IfLater, Some(100), 150, true),
        (IfEarlier, None, 50, true),
        (IfEarlier, Some(100), 50, true),
        (IfEarlier, Some(100), 150, false),
        (IfSomeAndEarlier, None, 50, false),
        (IfSomeAndEarlier, Some(100), 50, true),
    ];
    for (condition, current, new, applies) in table {
        let mut store = Store::new();
        let expiry = current.map_or(Expiry::Clear, px);
        store.at(T0, set("v", SetCondition::Always, expiry, false));
        let reply = store.at(
            T0,
            Command::Expire {
                key: k(),
                deadline: Deadline::In(new),
                condition,
            },
        );
        let case = format!("{condition:?} current={current:?} new={new}");
        assert_eq!(reply, Reply::Integer(i64::from(applies)), "{case}");
        let left = if applies { Some(new) } else { current };
        assert_eq!(
            store.kv.deadline_ms(b"k"),
            left.map(|ms| T0 + ms as u64),
            "{case}"
        );
        assert_eq!(store.kv.revision(b"k"), Some(if applies { 2 } else { 1 }));
    }
}

#[test]
fn persist_getex_getdel_setnx_and_what_keeps_a_ttl() {
    let mut store = Store::new();
    store.at(T0, set("5", SetCondition::Always, px(1_000), false));
    // INCR and CAS keep the deadline; a plain SET and MSET clear it.
    store.at(T0, Command::Incr { key: k() });
    assert_eq!(store.kv.deadline_ms(b"k"), Some(T0 + 1_000));
    store.at(
        T0,
        Command::Cas {
            key: k(),
            expected: Some(b"6".to_vec()),
            new: b"7".to_vec(),
        },
    );
    assert_eq!(store.kv.deadline_ms(b"k"), Some(T0 + 1_000));
    assert_eq!(
        store.at(T0, Command::Persist { key: k() }),
        Reply::Integer(1)
    );
    assert_eq!(
        store.at(T0, Command::Persist { key: k() }),
        Reply::Integer(0)
    );
    assert_eq!(store.read(pttl()), Reply::Integer(-1));
    store.at(
        T0,
        Command::GetEx {
            key: k(),
            expiry: px(300),
        },
    );
    assert_eq!(store.read(pttl()), Reply::Integer(300));
    let revision = store.kv.revision(b"k");
    assert_eq!(
        store.at(
            T0,
            Command::GetEx {
                key: k(),
                expiry: Expiry::Keep
            }
        ),
        bulk("7")
    );
    assert_eq!(
        store.kv.revision(b"k"),
        revision,
        "a GETEX without options writes nothing"
    );
    store.at(
        T0,
        Command::GetEx {
            key: k(),
            expiry: Expiry::Clear,
        },
    );
    assert_eq!(store.read(pttl()), Reply::Integer(-1));
    store.at(T0, set("v", SetCondition::Always, px(300), false));
    store.at(
        T0,
        Command::MSet {
            pairs: vec![(k(), b"m".to_vec())],
        },
    );
    assert_eq!(store.read(pttl()), Reply::Integer(-1));
    assert_eq!(store.at(T0, Command::GetDel { key: k() }), bulk("m"));
    assert_eq!(store.at(T0, Command::GetDel { key: k() }), Reply::Nil);
    let setnx = || Command::SetNx {
        key: k(),
        value: b"n".to_vec(),
    };
    assert_eq!(store.at(T0, setnx()), Reply::Integer(1));
    assert_eq!(store.at(T0, setnx()), Reply::Integer(0));
    assert_eq!(
        store.at(
            T0,
            Command::GetEx {
                key: b"none".to_vec(),
                expiry: px(5)
            }
        ),
        Reply::Nil
    );
}

#[test]
fn ttl_and_expiretime_round_like_redis() {
    let mut store = Store::new();
    store.at(T0, set("v", SetCondition::Always, px(1_500), false));
    let ttl = |unit| Command::Ttl { key: k(), unit };
    let expiretime = |unit| Command::ExpireTime { key: k(), unit };
    assert_eq!(store.read(ttl(TimeUnit::Seconds)), Reply::Integer(2));
    assert_eq!(
        store.read(ttl(TimeUnit::Milliseconds)),
        Reply::Integer(1_500)
    );
    store.at(T0 + 1, Command::DbSize);
    assert_eq!(store.read(ttl(TimeUnit::Seconds)), Reply::Integer(1));
    assert_eq!(
        store.read(expiretime(TimeUnit::Milliseconds)),
        Reply::Integer((T0 + 1_500) as i64)
    );
    assert_eq!(
        store.read(expiretime(TimeUnit::Seconds)),
        Reply::Integer(((T0 + 1_500 + 500) / 1_000) as i64)
    );
    store.at(T0 + 1, plain_set("v"));
    assert_eq!(store.read(ttl(TimeUnit::Seconds)), Reply::Integer(-1));
    assert_eq!(
        store.read(expiretime(TimeUnit::Seconds)),
        Reply::Integer(-1)
    );
    assert_eq!(
        store.read(Command::ExpireTime {
            key: b"none".to_vec(),
            unit: TimeUnit::Seconds
        }),
        Reply::Integer(-2)
    );
}

/// On an idle cluster no entry moves log time, so `TTL`/`PTTL` count down from the serving
/// node's wall clock when it is later; a clock behind log time never lengthens them, and
/// while the key still exists at log time they answer at least 1 ms, never 0 or -2.
#[test]
fn ttl_counts_down_from_the_wall_clock_between_entries() {
    let mut store = Store::new();
    store.at(T0, set("v", SetCondition::Always, px(100_000), false));
    let ttl = |unit| Command::Ttl { key: k(), unit };
    let kv = &store.kv;
    assert_eq!(
        kv.read_at(&ttl(TimeUnit::Seconds), T0 + 40_000),
        Reply::Integer(60)
    );
    assert_eq!(kv.read_at(&pttl(), T0 + 40_000), Reply::Integer(60_000));
    assert_eq!(
        kv.read_at(&pttl(), T0 - 5_000),
        Reply::Integer(100_000),
        "a slow clock"
    );
    assert_eq!(
        kv.read_at(&pttl(), T0 + 100_000),
        Reply::Integer(1),
        "due, not yet removed"
    );
    assert_eq!(kv.read_at(&pttl(), u64::MAX), Reply::Integer(1));
    assert_eq!(
        kv.read_at(&Command::Get { key: k() }, T0 + 200_000),
        bulk("v"),
        "existence is judged by log time"
    );
    assert_eq!(kv.read(&pttl()), Reply::Integer(100_000), "log time alone");
    assert_eq!(kv.log_time_ms(), T0, "a read changes nothing");
}

/// A lock taken with `SET … NX PX`: every holder's revision is larger than the one before,
/// whether the lock expired or was released.
#[test]
fn each_lock_holder_gets_a_larger_revision_than_the_last() {
    let mut store = Store::new();
    let take = |holder: &str| Command::SetWith {
        key: b"lock".to_vec(),
        value: holder.into(),
        options: SetOptions {
            condition: SetCondition::IfAbsent,
            expiry: px(1_000),
            get: false,
        },
    };
    let revision = |store: &Store| {
        store.read(Command::Revision {
            key: b"lock".to_vec(),
        })
    };
    assert_eq!(revision(&store), Reply::Nil);
    assert_eq!(store.at(T0, take("a")), Reply::Ok);
    let Reply::Integer(first) = revision(&store) else {
        panic!("a held lock has a revision");
    };
    assert_eq!(store.at(T0 + 500, take("b")), Reply::Nil, "held");
    assert_eq!(store.at(T0 + 1_000, take("b")), Reply::Ok, "expired, taken");
    let Reply::Integer(second) = revision(&store) else {
        panic!("a held lock has a revision");
    };
    assert!(second > first);
    store.at(
        T0 + 1_100,
        Command::Del {
            keys: vec![b"lock".to_vec()],
        },
    );
    assert_eq!(
        store.at(T0 + 1_200, take("c")),
        Reply::Ok,
        "released, taken"
    );
    let Reply::Integer(third) = revision(&store) else {
        panic!("a held lock has a revision");
    };
    assert!(third > second);
}

#[test]
fn deadlines_and_revisions_survive_a_snapshot() {
    let mut store = Store::new();
    store.at(T0, set("v", SetCondition::Always, px(1_000), false));
    store.at(T0 + 10, Command::Incr { key: b"n".to_vec() });
    let restored =
        StateMachine::restore(KvConfig::default(), &store.kv.snapshot()).expect("restores");
    assert_eq!(restored, store.kv);
    assert_eq!(restored.deadline_ms(b"k"), Some(T0 + 1_000));
    assert_eq!(restored.revision(b"n"), Some(2));
    assert_eq!(restored.log_time_ms(), T0 + 10);
    assert_eq!(restored.next_deadline_ms(), Some(T0 + 1_000));
}
