"""Transactions as redis-py writes them: `r.pipeline()` (MULTI/EXEC) applies its commands
together and answers them in order; a command refused while queuing aborts the whole EXEC
(EXECABORT) and nothing applies; a run-time error is answered in its place while the others
apply; WATCH makes EXEC answer nil when another client changed the key (through another node
when --other names one), and `r.transaction` retries until it goes through (the
compare-and-renew of a lock); DISCARD and UNWATCH."""

import redis

from scenario import connect, expect, prefix

r = connect()
other = connect(other=True)  # another node: WATCH sees changes made anywhere
p = prefix()

# MULTI ... EXEC: every answer in order.
with r.pipeline() as pipe:
    pipe.set(p + "a", "1").incr(p + "n").incrby(p + "n", 9).get(p + "a").mget(p + "a", p + "n")
    expect(pipe.execute(), [True, 1, 10, "1", ["1", "10"]], "EXEC's answers")

# A command refused at queuing time aborts the transaction: nothing applies.
with r.pipeline() as pipe:
    pipe.set(p + "b", "1")
    pipe.execute_command("SET", p + "b")  # wrong arity: refused while queuing
    try:
        pipe.execute()
        raise AssertionError("EXEC after a refused command raises")
    except redis.ResponseError as error:
        # redis-py reports the queuing error that made the server answer EXECABORT.
        expect(str(error).endswith("wrong number of arguments for 'set' command"), True,
               f"the abort names the refused command: {error}")
expect(r.get(p + "b"), None, "nothing of the aborted transaction applied")

# A run-time error is answered in its place; the rest applies.
r.set(p + "text", "abc")
with r.pipeline() as pipe:
    pipe.set(p + "c", "1").incr(p + "text").set(p + "d", "2")
    answers = pipe.execute(raise_on_error=False)
expect(answers[0], True, "the SET before the run-time error")
expect(isinstance(answers[1], redis.ResponseError), True, f"INCR of text fails: {answers[1]!r}")
expect(answers[2], True, "the SET after it")
expect(r.mget(p + "c", p + "d"), ["1", "2"], "both SETs applied")

# WATCH: a change by another client between WATCH and EXEC aborts with nil.
lock = p + "lock"
r.set(lock, "mine", px=60_000)
with r.pipeline() as pipe:
    pipe.watch(lock)
    expect(pipe.get(lock), "mine", "the watched value read before MULTI")
    other.set(lock, "theirs")  # another client takes the key meanwhile
    pipe.multi()
    pipe.pexpire(lock, 60_000)
    try:
        pipe.execute()
        raise AssertionError("EXEC after a watched key changed must abort")
    except redis.WatchError:
        pass
expect(r.get(lock), "theirs", "the aborted renewal changed nothing")

# Unchanged, the same renewal goes through.
with r.pipeline() as pipe:
    pipe.watch(lock)
    expect(pipe.get(lock), "theirs", "read under WATCH")
    pipe.multi()
    pipe.pexpire(lock, 30_000)
    expect(pipe.execute(), [True], "EXEC with an unchanged watched key")
expect(0 < r.pttl(lock) <= 30_000, True, "the renewal applied")

# r.transaction retries its function until no watched key changed in between.
attempts = []


def add_one(pipe):
    value = int(pipe.get(p + "counter") or 0)
    if not attempts:
        other.incr(p + "counter")  # a concurrent writer on the first try
    attempts.append(value)
    pipe.multi()
    pipe.set(p + "counter", value + 1)


r.transaction(add_one, p + "counter")
expect(len(attempts), 2, f"one retry after the concurrent write: {attempts}")
expect(r.get(p + "counter"), "2", "both increments counted")

# DISCARD throws the queue away; UNWATCH forgets the watched keys.
with r.pipeline() as pipe:
    pipe.multi()
    pipe.set(p + "e", "1")
    pipe.reset()  # sends DISCARD
expect(r.get(p + "e"), None, "DISCARD applied nothing")
# By hand, on one connection: MULTI, QUEUED, DISCARD, WATCH, UNWATCH, EXEC.
s = connect(single_connection_client=True)
expect(s.execute_command("MULTI"), "OK", "MULTI")
# (INCRBY, whose answer redis-py passes through as the server sent it.)
expect(s.execute_command("INCRBY", p + "e", "1"), "QUEUED", "a queued command answers QUEUED")
expect(s.execute_command("DISCARD"), "OK", "DISCARD")
expect(s.get(p + "e"), None, "still nothing")
expect(s.execute_command("WATCH", p + "e"), True, "WATCH")
other.set(p + "e", "2")
expect(s.execute_command("UNWATCH"), True, "UNWATCH")
s.execute_command("MULTI")
s.execute_command("INCRBY", p + "e", "1")
expect(s.execute_command("EXEC"), [3], "EXEC after UNWATCH applies")
expect(s.get(p + "e"), "3", "the value EXEC wrote")
try:
    s.execute_command("EXEC")
    raise AssertionError("EXEC without MULTI is an error")
except redis.ResponseError as error:
    expect(str(error), "EXEC without MULTI", "its text")
