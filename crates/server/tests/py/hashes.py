"""Hashes as redis-py writes them: HSET with a mapping, HGET/HMGET/HGETALL/HKEYS/HVALS/HLEN,
HEXISTS, HDEL (the key goes with its last field), HINCRBY/HINCRBYFLOAT, HSETNX, HSCAN, and the
errors Redis gives."""

from scenario import connect, expect, expect_error, prefix

r = connect()
p = prefix()
h = p + "user"

expect(r.hset(h, mapping={"name": "ada", "lang": "rust", "age": "36"}), 3, "HSET adds three")
expect(r.hset(h, "lang", "python"), 0, "HSET of an existing field adds none")
expect(r.hset(h, mapping={"lang": "rust", "city": "london"}), 1, "one new, one updated")
expect(r.hget(h, "lang"), "rust", "HGET")
expect(r.hget(h, "none"), None, "HGET of a missing field")
expect(r.hget(p + "none", "f"), None, "HGET of a missing key")
expect(r.hmget(h, ["name", "none", "age"]), ["ada", None, "36"], "HMGET in order")
expect(r.hgetall(h), {"name": "ada", "lang": "rust", "age": "36", "city": "london"}, "HGETALL")
expect(r.hgetall(p + "none"), {}, "HGETALL of a missing key")
expect(sorted(r.hkeys(h)), ["age", "city", "lang", "name"], "HKEYS")
expect(sorted(r.hvals(h)), ["36", "ada", "london", "rust"], "HVALS")
expect(r.hlen(h), 4, "HLEN")
expect(r.hlen(p + "none"), 0, "HLEN of a missing key")
expect(r.hexists(h, "city"), True, "HEXISTS")
expect(r.hexists(h, "none"), False, "HEXISTS of a missing field")

# Counters inside a hash.
expect(r.hincrby(h, "age", 1), 37, "HINCRBY")
expect(r.hincrby(h, "visits", 5), 5, "HINCRBY of a missing field starts at 0")
expect(r.hincrbyfloat(h, "score", 1.5), 1.5, "HINCRBYFLOAT")
expect(r.hincrbyfloat(h, "score", 0.25), 1.75, "HINCRBYFLOAT again")
expect_error(lambda: r.hincrby(h, "name", 1), "hash value is not an integer", "HINCRBY of text")
expect_error(lambda: r.hincrbyfloat(h, "name", 1), "hash value is not a float", "HINCRBYFLOAT of text")

# HSETNX only adds.
expect(r.hsetnx(h, "name", "grace"), False, "HSETNX of an existing field")
expect(r.hsetnx(h, "pet", "cat"), True, "HSETNX of a new field")
expect(r.hget(h, "name"), "ada", "HSETNX left the field")

# HSCAN walks every field, whatever the COUNT.
fields = {}
for field, value in r.hscan_iter(h, count=2):
    fields[field] = value
expect(fields, r.hgetall(h), "HSCAN saw every field once")
expect(dict(r.hscan_iter(h, match="s*")), {"score": "1.75"}, "HSCAN MATCH")

# HDEL; the key goes with its last field.
expect(r.hdel(h, "pet", "none", "visits"), 2, "HDEL counts what it removed")
small = p + "small"
r.hset(small, "only", "1")
expect(r.hdel(small, "only"), 1, "HDEL of the last field")
expect(r.exists(small), 0, "a hash without fields does not exist")

wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value"
r.set(p + "s", "v")
expect_error(lambda: r.hset(p + "s", "f", "v"), wrongtype, "HSET on a string")
expect_error(lambda: r.hgetall(p + "s"), wrongtype, "HGETALL on a string")
expect_error(lambda: r.execute_command("HSET", h, "f"), "wrong number of arguments for 'hset' command",
             "HSET with a field and no value")
