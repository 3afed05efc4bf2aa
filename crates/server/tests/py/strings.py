"""Strings: what a new user of redis-py does first. SET and GET (text and binary), SET's
conditions and GET option, MSET/MGET, counters, DEL/EXISTS/TOUCH over several keys, GETSET,
GETDEL, SETNX, DBSIZE, PING, ECHO and INFO as redis-py parses it."""

from scenario import connect, expect, expect_error, prefix

r = connect()
p = prefix()

# The plain register, and what a missing key answers.
expect(r.set(p + "name", "skiff"), True, "SET answers OK")
expect(r.get(p + "name"), "skiff", "GET reads the value back")
expect(r.get(p + "missing"), None, "GET of a missing key is nil")

# Values are bytes: a binary value with CR, LF and NUL comes back unchanged.
raw = connect(decode_responses=False)
blob = bytes(range(256)) + b"\r\n\x00end"
expect(raw.set(p + "blob", blob), True, "SET of a binary value")
expect(raw.get(p + "blob"), blob, "the binary value comes back byte for byte")
expect(r.set(p + "empty", ""), True, "SET of an empty value")
expect(r.get(p + "empty"), "", "an empty value is not nil")

# NX only when absent, XX only when present; GET returns the old value.
expect(r.set(p + "name", "other", nx=True), None, "SET NX on a present key is nil")
expect(r.set(p + "new", "1", xx=True), None, "SET XX on a missing key is nil")
expect(r.get(p + "new"), None, "SET XX created nothing")
expect(r.set(p + "new", "1", nx=True), True, "SET NX on a missing key")
expect(r.set(p + "new", "2", xx=True), True, "SET XX on a present key")
expect(r.set(p + "new", "3", get=True), "2", "SET GET returns the old value")
expect(r.set(p + "fresh", "1", get=True), None, "SET GET of a missing key returns nil")
expect(r.get(p + "new"), "3", "SET GET wrote the new value")
expect(r.setnx(p + "new", "4"), False, "SETNX on a present key")
expect(r.setnx(p + "setnx", "4"), True, "SETNX on a missing key")

# Several keys at once: MSET is one write, MGET answers in order with nils.
expect(r.mset({p + "a": "1", p + "b": "2", p + "c": "3"}), True, "MSET")
expect(r.mget(p + "a", p + "nope", p + "c"), ["1", None, "3"], "MGET in order")
expect(r.exists(p + "a", p + "b", p + "nope", p + "a"), 3, "EXISTS counts repeats")
expect(r.touch(p + "a", p + "b", p + "nope", p + "a"), 3, "TOUCH counts the keys there, repeats too")
expect(r.delete(p + "a", p + "b", p + "nope"), 2, "DEL counts what it removed")
expect(r.exists(p + "a"), 0, "DEL removed the key")

# Counters.
expect(r.incr(p + "n"), 1, "INCR of a missing key starts at 0")
expect(r.incr(p + "n", 10), 11, "INCRBY")
expect(r.incrby(p + "n", -20), -9, "INCRBY with a negative step")
# redis-py's decr() sends DECRBY (a keyspace command); DECR itself is sent as is.
expect(r.execute_command("DECR", p + "n"), -10, "DECR")
expect(r.get(p + "n"), "-10", "a counter reads as its decimal text")
r.set(p + "max", str(2**63 - 1))
expect_error(lambda: r.incr(p + "max"), "increment or decrement would overflow", "INCR past i64::MAX")
expect(r.get(p + "max"), str(2**63 - 1), "a refused INCR leaves the value")
expect_error(lambda: r.incr(p + "name"), "value is not an integer or out of range", "INCR of text")

# GETSET, GETDEL.
expect(r.getset(p + "name", "raft"), "skiff", "GETSET returns the old value")
expect(r.getset(p + "gs", "x"), None, "GETSET of a missing key")
expect(r.getdel(p + "name"), "raft", "GETDEL returns the value")
expect(r.getdel(p + "name"), None, "GETDEL removed it")

# DBSIZE counts this run's keys among others: it grows by exactly what we add.
before = r.dbsize()
r.mset({p + "d1": "x", p + "d2": "y"})
expect(r.dbsize(), before + 2, "DBSIZE grows by the keys added")
r.delete(p + "d1", p + "d2")
expect(r.dbsize(), before, "DBSIZE shrinks back")

# What a client asks of the server itself.
expect(r.ping(), True, "PING")
expect(r.echo("hello"), "hello", "ECHO")
info = r.info()
expect("db0" in info or "process_id" in info, True, f"INFO parses into sections: {sorted(info)[:10]}")
expect(isinstance(info.get("process_id"), int), True, "INFO's process_id is a number")
