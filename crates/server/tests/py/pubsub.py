"""Keyspace notifications through redis-py's PubSub: CONFIG SET notify-keyspace-events turns
them on, a PSUBSCRIBE to `__keyspace@0__:<prefix>*` sees each write's event in the order the
writes happened (set, incrby, expire, expired, del, hset, rename_from/rename_to), a SUBSCRIBE
to `__keyevent@0__:del` names the deleted keys, UNSUBSCRIBE and PUNSUBSCRIBE answer with the
count left, and with the flags cleared nothing more arrives."""

import time

from scenario import connect, expect, prefix

r = connect()
p = prefix()

expect(r.config_set("notify-keyspace-events", "KEA"), True, "CONFIG SET notify-keyspace-events")
expect(r.config_get("notify-keyspace-events")["notify-keyspace-events"] in ("AKE", "KEA"), True,
       "CONFIG GET shows the flags")

# The subscriber listens on the other node: every node publishes what it applies. As in Redis
# Cluster, CONFIG SET changes the node it is sent to, so the listener's node is told as well.
other = connect(other=True)
expect(other.config_set("notify-keyspace-events", "KEA"), True, "CONFIG SET on the listener's node")
listener = other.pubsub(ignore_subscribe_messages=False)
listener.psubscribe(f"__keyspace@0__:{p}*")
listener.subscribe("__keyevent@0__:del")


def next_message(timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = listener.get_message(timeout=0.2)
        if message is not None:
            return message
    raise AssertionError("no message within the timeout")


first, second = next_message(), next_message()
expect((first["type"], first["pattern"] or first["channel"], first["data"]),
       ("psubscribe", f"__keyspace@0__:{p}*", 1), "the PSUBSCRIBE confirmation")
expect((second["type"], second["channel"], second["data"]),
       ("subscribe", "__keyevent@0__:del", 2), "the SUBSCRIBE confirmation counts both")

r.set(p + "k", "1")
r.incrby(p + "k", 2)
r.expire(p + "k", 100)
r.set(p + "brief", "v", px=100)
r.delete(p + "k")
r.hset(p + "h", "f", "v")
r.rename(p + "h", p + "h2")

wanted = [
    ("k", "set"), ("k", "incrby"), ("k", "expire"),
    ("brief", "set"), ("brief", "expire"),
    ("k", "del"),
    ("h", "hset"), ("h", "rename_from"), ("h2", "rename_to"),
]
got = []
deleted = []
while len(got) < len(wanted):
    message = next_message()
    if message["type"] == "message":
        expect(message["channel"], "__keyevent@0__:del", "the keyevent channel")
        deleted.append(message["data"])
        continue
    expect(message["type"], "pmessage", f"a keyspace message: {message}")
    expect(message["pattern"], f"__keyspace@0__:{p}*", "the pattern it matched")
    key = message["channel"][len(f"__keyspace@0__:{p}"):]
    got.append((key, message["data"]))
expect(got, wanted, "keyspace events in the order of the writes")

# The short-lived key expires by itself, and its del event came on the keyevent channel.
message = next_message()
while message["type"] == "message":
    deleted.append(message["data"])
    message = next_message()
expect((message["channel"], message["data"]), (f"__keyspace@0__:{p}brief", "expired"),
       "the expired event")
expect(deleted, [p + "k"], "the keyevent channel named the deleted key")

listener.punsubscribe()
listener.unsubscribe()
counts = sorted(next_message()["data"] for _ in range(2))
expect(counts, [0, 1], "UNSUBSCRIBE and PUNSUBSCRIBE count what is left")

# With the flags cleared, writes publish nothing.
listener.psubscribe(f"__keyspace@0__:{p}*")
expect(next_message()["type"], "psubscribe", "subscribed again")
expect(r.config_set("notify-keyspace-events", ""), True, "notifications off")
expect(other.config_set("notify-keyspace-events", ""), True, "notifications off there too")
r.set(p + "quiet", "1")
expect(listener.get_message(timeout=0.5), None, "no event once notifications are off")
listener.close()
