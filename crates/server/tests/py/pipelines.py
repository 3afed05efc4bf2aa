"""Pipelines without a transaction (`r.pipeline(transaction=False)`): many commands sent in one
write, answered in order, an error in the middle answered in its place without stopping the
rest, and a thousand-command pipeline of counters whose replies all come back."""

import redis

from scenario import connect, expect, prefix

r = connect()
p = prefix()

# Answers come back in the order the commands went out, each with its own type.
pipe = r.pipeline(transaction=False)
pipe.set(p + "a", "1")
pipe.get(p + "a")
pipe.incr(p + "n")
pipe.incrby(p + "n", 5)
pipe.set(p + "b", "2", nx=True, px=60_000)
pipe.set(p + "b", "3", nx=True)
pipe.mget(p + "a", p + "b", p + "none")
pipe.exists(p + "a", p + "b")
pipe.pttl(p + "b")
pipe.delete(p + "a")
pipe.get(p + "a")
answers = pipe.execute()
expect(answers[:8], [True, "1", 1, 6, True, None, ["1", "2", None], 2], "pipelined answers")
expect(0 < answers[8] <= 60_000, True, f"PTTL in the pipeline: {answers[8]}")
expect(answers[9:], [1, None], "DEL and GET at the end")

# An error takes its place in the answers; the commands after it still run.
pipe = r.pipeline(transaction=False)
pipe.set(p + "text", "not a number")
pipe.incr(p + "text")
pipe.set(p + "after", "ran")
pipe.get(p + "after")
answers = pipe.execute(raise_on_error=False)
expect(answers[0], True, "the SET before the error")
expect(isinstance(answers[1], redis.ResponseError), True, f"the error in place: {answers[1]!r}")
expect(str(answers[1]), "value is not an integer or out of range", "its text")
expect(answers[2:], [True, "ran"], "the commands after the error ran")
expect(r.get(p + "text"), "not a number", "the failed INCR changed nothing")

# Raising mode: execute() raises the first error, after every command ran.
pipe = r.pipeline(transaction=False)
pipe.incr(p + "text")
pipe.set(p + "last", "here")
try:
    pipe.execute()
    raise AssertionError("a pipeline with a failing command raises")
except redis.ResponseError as error:
    expect("value is not an integer" in str(error), True, f"the raised error: {error}")
expect(r.get(p + "last"), "here", "the command after the error ran")

# Many commands in one go: every reply arrives, in order, and the counter adds up.
pipe = r.pipeline(transaction=False)
for i in range(1000):
    pipe.incr(p + "many")
answers = pipe.execute()
expect(answers, list(range(1, 1001)), "a thousand INCRs answered in order")
expect(r.get(p + "many"), "1000", "the counter after them")

# A pipeline as a context manager, the way the redis-py docs show it.
with r.pipeline(transaction=False) as pipe:
    answers = pipe.set(p + "x", "1").get(p + "x").getdel(p + "x").exists(p + "x").execute()
expect(answers, [True, "1", "1", 0], "chained pipeline")
