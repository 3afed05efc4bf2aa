"""What client libraries ask at start-up and operators ask by hand: CLIENT ID, SETNAME and
GETNAME (redis-py's client_name sends SETNAME on connect), CLIENT INFO and CLIENT LIST,
HELLO 2, COMMAND COUNT and COMMAND INFO, CONFIG GET, INFO's keyspace section, TIME."""

import time

from scenario import connect, expect, expect_error, prefix

named = connect(client_name="skiff-test", single_connection_client=True)
r = connect(single_connection_client=True)
p = prefix()

# Identity of a connection.
expect(named.client_getname(), "skiff-test", "client_name was sent with CLIENT SETNAME")
one, two = named.client_id(), r.client_id()
expect(isinstance(one, int) and isinstance(two, int) and one != two, True, f"CLIENT ID: {one}, {two}")
expect(r.client_getname(), None, "GETNAME without a name")
expect(r.client_setname("worker-1"), True, "CLIENT SETNAME")
expect(r.client_getname(), "worker-1", "CLIENT GETNAME")
expect_error(lambda: r.client_setname("has space"), "Client names cannot contain spaces",
             "a name with a space")
info = r.client_info()
expect((info["id"], info["name"]), (two, "worker-1"), f"CLIENT INFO: {info}")
listed = {c["name"]: c for c in r.client_list()}
expect({"skiff-test", "worker-1"} <= set(listed), True, f"CLIENT LIST names both: {sorted(listed)}")
expect(listed["skiff-test"]["id"], str(one), "CLIENT LIST's id")

# HELLO 2 answers the server's facts as a flat map (RESP2); HELLO 3 may be refused.
hello = r.execute_command("HELLO", "2")
facts = dict(zip(hello[::2], hello[1::2]))
expect((facts["proto"], facts["id"]), (2, two), f"HELLO 2: {facts}")
expect("server" in facts and "version" in facts, True, "HELLO names the server")

# COMMAND: a count and per-command facts (arity, flags) that libraries use for routing.
count = r.command_count()
expect(count >= 30, True, f"COMMAND COUNT: {count}")
# (Read raw: redis-py's parser for COMMAND does not expect the nil of an unknown name.)
r.connection.send_command("COMMAND", "INFO", "get", "set", "nosuchcommand")
get = r.connection.read_response()
expect(len(get), 3, "COMMAND INFO answers each name")
expect((get[0][0], get[0][1]), ("get", 2), "COMMAND INFO get: name and arity")
expect((get[1][0], get[1][1]), ("set", -3), "COMMAND INFO set: a variable arity")
expect(get[2], None, "COMMAND INFO of an unknown command is nil")

# CONFIG GET of what tools ask for.
expect("save" in r.config_get("save"), True, "CONFIG GET save")
expect(r.config_get("no-such-parameter"), {}, "CONFIG GET of an unknown parameter is empty")

# INFO keyspace counts keys.
r.set(p + "k", "v")
keyspace = r.info("keyspace")
expect(keyspace["db0"]["keys"] >= 1, True, f"INFO keyspace: {keyspace}")

# TIME: the server's clock, seconds and microseconds; alone and inside a transaction.
seconds, micros = r.time()
expect(abs(seconds - time.time()) < 60 and 0 <= micros < 1_000_000, True,
       f"TIME: {seconds} s {micros} us")
pipe = r.pipeline(transaction=True)
pipe.time()
pipe.set(p + "timed", "v")
queued_time, stored = pipe.execute()
expect((queued_time[0] >= seconds, stored), (True, True), f"TIME in MULTI: {queued_time}")
expect_error(lambda: r.execute_command("TIME", "now"),
             "wrong number of arguments for 'time' command", "TIME with an argument")
