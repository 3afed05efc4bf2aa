"""Keys and string commands beyond GET and SET: TYPE, RENAME and RENAMENX (the TTL moves with
the key), STRLEN, APPEND, GETRANGE, SETRANGE, INCRBYFLOAT, DECRBY, MSETNX, UNLINK, RANDOMKEY,
KEYS, and WRONGTYPE when a string command meets a hash. FLUSHDB runs last and checks that the
whole keyspace is empty afterwards."""

from scenario import connect, expect, expect_error, prefix

r = connect()
p = prefix()

expect(r.set(p + "s", "hello"), True, "SET")
r.hset(p + "h", "f", "v")
expect(r.type(p + "s"), "string", "TYPE of a string")
expect(r.type(p + "h"), "hash", "TYPE of a hash")
expect(r.type(p + "none"), "none", "TYPE of a missing key")

# String edits.
expect(r.strlen(p + "s"), 5, "STRLEN")
expect(r.strlen(p + "none"), 0, "STRLEN of a missing key")
expect(r.append(p + "s", " world"), 11, "APPEND answers the new length")
expect(r.append(p + "new", "abc"), 3, "APPEND creates the key")
expect(r.getrange(p + "s", 0, 4), "hello", "GETRANGE")
expect(r.getrange(p + "s", -5, -1), "world", "GETRANGE from the end")
expect(r.getrange(p + "s", 20, 30), "", "GETRANGE past the end")
expect(r.setrange(p + "s", 6, "WORLD"), 11, "SETRANGE")
expect(r.get(p + "s"), "hello WORLD", "SETRANGE overwrote in place")
expect(r.setrange(p + "pad", 3, "x"), 4, "SETRANGE past the end pads with zero bytes")
expect(r.get(p + "pad"), "\x00\x00\x00x", "the padding")

# Counters with other steps.
r.set(p + "n", "10")
expect(r.decrby(p + "n", 3), 7, "DECRBY")
expect(r.decr(p + "n"), 6, "DECR (redis-py sends DECRBY 1)")
expect(r.incrbyfloat(p + "n", 0.5), 6.5, "INCRBYFLOAT")
expect(r.get(p + "n"), "6.5", "INCRBYFLOAT stores the shortest text")
expect(r.incrbyfloat(p + "n", "5.0e3"), 5006.5, "INCRBYFLOAT with an exponent")
expect_error(lambda: r.incrbyfloat(p + "s", 1), "value is not a valid float", "INCRBYFLOAT of text")

# Several keys.
expect(r.msetnx({p + "m1": "1", p + "m2": "2"}), True, "MSETNX when every key is new")
expect(r.msetnx({p + "m2": "x", p + "m3": "3"}), False, "MSETNX when one exists")
expect(r.get(p + "m3"), None, "MSETNX set none of them")
expect(r.unlink(p + "m1", p + "m2", p + "none"), 2, "UNLINK counts what it removed")

# RENAME moves the value and its deadline; RENAMENX refuses an existing target.
r.set(p + "from", "v", ex=100)
expect(r.rename(p + "from", p + "to"), True, "RENAME")
expect(r.get(p + "from"), None, "the old name is gone")
expect(r.get(p + "to"), "v", "the new name has the value")
expect(r.ttl(p + "to"), 100, "and the deadline")
r.set(p + "other", "o")
expect(r.renamenx(p + "to", p + "other"), False, "RENAMENX onto an existing key")
expect(r.renamenx(p + "to", p + "free"), True, "RENAMENX onto a free name")
expect_error(lambda: r.rename(p + "none", p + "x"), "no such key", "RENAME of a missing key")

# Wrong types answer as Redis does.
wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value"
expect_error(lambda: r.get(p + "h"), wrongtype, "GET of a hash")
expect_error(lambda: r.append(p + "h", "x"), wrongtype, "APPEND to a hash")
expect_error(lambda: r.incr(p + "h"), wrongtype, "INCR of a hash")
expect_error(lambda: r.hget(p + "s", "f"), wrongtype, "HGET of a string")
expect(r.set(p + "h", "now a string"), True, "SET replaces a hash whatever its type")
expect(r.type(p + "h"), "string", "the key is a string now")

# KEYS and RANDOMKEY see this run's keys.
ours = {p + k for k in ["s", "h", "new", "pad", "n", "other", "free"]}
expect(set(r.keys(p + "*")), ours, "KEYS sees exactly this run's keys")
expect(set(r.keys(p + "m*")), set(), "KEYS with a pattern that matches none of ours")
expect(set(r.keys(p + "[sn]")), {p + "s", p + "n"}, "KEYS with a class")
expect(r.randomkey() is not None, True, "RANDOMKEY of a non-empty keyspace")

# FLUSHDB empties everything.
expect(r.flushdb(), True, "FLUSHDB")
expect(r.dbsize(), 0, "nothing is left")
expect(r.randomkey(), None, "RANDOMKEY of an empty keyspace")
expect(r.flushall(), True, "FLUSHALL")
