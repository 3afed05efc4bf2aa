"""Errors as redis-py raises them (`redis.ResponseError`, Redis 7's text without the `ERR `
prefix): wrong arity, not an integer, syntax errors, an unknown command, SELECT of another
database; and the connection keeps working after each."""

import redis

from scenario import connect, expect, expect_error, prefix

r = connect()
p = prefix()
r.set(p + "k", "v")

arity = "wrong number of arguments for '{}' command"
for words, name in [
    (["GET"], "get"),
    (["GET", p + "k", "extra"], "get"),
    (["SET", p + "k"], "set"),
    (["INCRBY", p + "n"], "incrby"),
    (["MSET", p + "a", "1", p + "b"], "mset"),
    (["DEL"], "del"),
    (["EXPIRE", p + "k"], "expire"),
    (["TTL"], "ttl"),
    (["GETDEL"], "getdel"),
    (["ECHO"], "echo"),
]:
    expect_error(lambda: r.execute_command(*words), arity.format(name), f"arity of {words}")

not_integer = "value is not an integer or out of range"
expect_error(lambda: r.incr(p + "k"), not_integer, "INCR of a text value")
expect_error(lambda: r.incrby(p + "n", "1.5"), not_integer, "INCRBY by a fraction")
expect_error(lambda: r.execute_command("INCRBY", p + "n", "99999999999999999999"),
             not_integer, "INCRBY past 64 bits")
expect_error(lambda: r.execute_command("EXPIRE", p + "k", "soon"), not_integer, "EXPIRE of text")
expect_error(lambda: r.execute_command("SETEX", p + "k", "x", "v"), not_integer, "SETEX of text")

expect_error(lambda: r.execute_command("SET", p + "k", "v", "NX", "XX"), "syntax error", "NX with XX")
expect_error(lambda: r.execute_command("SET", p + "k", "v", "EX"), "syntax error", "EX without a time")
expect_error(lambda: r.execute_command("SET", p + "k", "v", "FOREVER"), "syntax error", "an unknown option")
expect_error(lambda: r.execute_command("GETEX", p + "k", "EX", "1", "PERSIST"), "syntax error",
             "GETEX with two time options")

# Redis 7 adds ", with args beginning with: ..." after the name; both start alike.
expect_error(lambda: r.execute_command("NOSUCHCOMMAND", "a"), "unknown command 'NOSUCHCOMMAND'",
             "an unknown command")
# Redis has 16 databases and Skiff one: both refuse 16 alike.
expect_error(lambda: r.execute_command("SELECT", "16"), "DB index is out of range", "SELECT 16")
expect(r.execute_command("SELECT", "0"), True, "SELECT 0 is the one database")

# Refused commands changed nothing, and the connection still answers.
expect(r.get(p + "k"), "v", "the value after every refusal")
expect(r.ttl(p + "k"), -1, "and no deadline was set")
expect(r.ping(), True, "the connection still works")
