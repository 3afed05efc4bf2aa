"""Time to live and revisions, as a lock's user writes them with redis-py: SET with NX and PX,
EX/EXAT/PXAT/KEEPTTL, SETEX/PSETEX, the EXPIRE family with NX/XX/GT/LT, TTL/PTTL,
EXPIRETIME/PEXPIRETIME, PERSIST, GETEX, a key that really expires, and REVISION (Skiff's own
command) as a fencing token: every acquisition's revision is larger than the last. REVISION
is skipped against redis-server, which has no such command."""

import datetime
import time

import redis

from scenario import connect, expect, expect_error, prefix

r = connect()
p = prefix()
lock = p + "lock"
skiff = "skiff_version" in r.info("server")

# The lock recipe: take it only when free, with a lease of 1.5 s.
expect(r.set(lock, "t1", nx=True, px=1500), True, "the first SET NX PX takes the lock")
expect(r.set(lock, "t2", nx=True, px=1500), None, "a second SET NX PX finds it held")
left = r.pttl(lock)
expect(0 < left <= 1500, True, f"PTTL within the lease: {left}")
expect(r.ttl(lock) in (1, 2), True, "TTL rounds the lease to seconds")

# The lease runs out by itself, with no write to the key: then anyone can take it.
deadline = time.monotonic() + 10
while r.exists(lock) and time.monotonic() < deadline:
    time.sleep(0.05)
expect(r.get(lock), None, "the lock expired within 10 s")
expect(r.ttl(lock), -2, "TTL of a missing key")
expect(r.pttl(lock), -2, "PTTL of a missing key")
expect(r.set(lock, "t2", nx=True, px=1500), True, "the next holder takes it after the lease")
expect(r.get(lock), "t2", "the next holder's token is there")

# Fencing: the revision of the lock key grows from holder to holder.
if skiff:
    first = r.execute_command("REVISION", lock)
    expect(isinstance(first, int) and first > 0, True, f"REVISION is a log index: {first!r}")
    r.delete(lock)
    expect(r.execute_command("REVISION", lock), None, "REVISION of a missing key is nil")
    expect(r.set(lock, "t3", nx=True, px=1500), True, "a third holder")
    second = r.execute_command("REVISION", lock)
    expect(second > first, True, f"a later holder's token is larger: {first} then {second}")
    r.pexpire(lock, 1500, xx=True)
    renewed = r.execute_command("REVISION", lock)
    expect(renewed > second, True, "a renewal is a write and raises the revision")
    r.get(lock)
    expect(r.execute_command("REVISION", lock), renewed, "a read leaves the revision")
    expect_error(
        lambda: r.execute_command("REVISION"),
        "wrong number of arguments for 'revision' command",
        "REVISION without a key",
    )

# The time options of SET.
k = p + "k"
expect(r.set(k, "v", ex=100), True, "SET EX")
expect(r.ttl(k), 100, "TTL after EX 100")
expect(r.set(k, "v", px=100_000), True, "SET PX")
expect(99_000 < r.pttl(k) <= 100_000, True, "PTTL after PX 100000")
expect(r.set(k, "w", keepttl=True), True, "SET KEEPTTL")
expect(r.ttl(k) > 90, True, "KEEPTTL kept the deadline")
expect(r.set(k, "x"), True, "a plain SET")
expect(r.ttl(k), -1, "a plain SET clears the deadline")
at = int(time.time()) + 1000
expect(r.set(k, "v", exat=at), True, "SET EXAT")
expect(r.expiretime(k), at, "EXPIRETIME is the absolute second given")
expect(r.set(k, "v", pxat=at * 1000 + 250), True, "SET PXAT")
expect(r.execute_command("PEXPIRETIME", k), at * 1000 + 250, "PEXPIRETIME in ms")
expect(r.set(k, "v", exat=datetime.datetime.fromtimestamp(at)), True, "SET EXAT of a datetime")
expect(r.expiretime(k), at, "the datetime became the same second")
expect_error(lambda: r.set(k, "v", ex=0), "invalid expire time in 'set' command", "SET EX 0")
expect_error(lambda: r.set(k, "v", px=-5), "invalid expire time in 'set' command", "SET PX -5")
expect_error(lambda: r.execute_command("SET", k, "v", "EX", "1", "PX", "1"), "syntax error", "EX with PX")

# SETEX, PSETEX.
expect(r.setex(p + "s", 30, "v"), True, "SETEX")
expect(r.ttl(p + "s"), 30, "SETEX's TTL")
expect(r.psetex(p + "ps", 30_000, "v"), True, "PSETEX")
expect(29_000 < r.pttl(p + "ps") <= 30_000, True, "PSETEX's PTTL")
expect_error(lambda: r.setex(p + "s", 0, "v"), "invalid expire time in 'setex' command", "SETEX 0")

# The EXPIRE family and its conditions.
e = p + "e"
r.set(e, "v")
expect(r.ttl(e), -1, "no deadline yet")
expect(r.expire(e, 100, xx=True), False, "XX needs a deadline")
expect(r.expire(e, 100, gt=True), False, "GT: no deadline counts as infinite")
expect(r.expire(e, 100, nx=True), True, "NX sets the first deadline")
expect(r.expire(e, 50, nx=True), False, "NX refuses a second one")
expect(r.expire(e, 50, gt=True), False, "GT refuses a shorter one")
expect(r.expire(e, 200, gt=True), True, "GT takes a longer one")
expect(r.ttl(e), 200, "TTL after GT")
expect(r.expire(e, 300, lt=True), False, "LT refuses a longer one")
expect(r.pexpire(e, 5000, lt=True), True, "PEXPIRE LT takes a shorter one")
expect(4000 < r.pttl(e) <= 5000, True, "PTTL after PEXPIRE")
expect(r.expireat(e, at), True, "EXPIREAT")
expect(r.expiretime(e), at, "EXPIRETIME after EXPIREAT")
expect(r.pexpireat(e, at * 1000 + 7), True, "PEXPIREAT")
expect(r.execute_command("PEXPIRETIME", e), at * 1000 + 7, "PEXPIRETIME after PEXPIREAT")
expect(r.persist(e), True, "PERSIST removes the deadline")
expect(r.persist(e), False, "PERSIST without a deadline")
expect(r.expiretime(e), -1, "EXPIRETIME of a key without a deadline")
expect(r.expire(p + "none", 10), False, "EXPIRE of a missing key")
expect(r.expiretime(p + "none"), -2, "EXPIRETIME of a missing key")
expect_error(lambda: r.execute_command("EXPIRE", e, "10", "NX", "XX"),
             "NX and XX, GT or LT options at the same time are not compatible", "NX with XX")
expect_error(lambda: r.execute_command("EXPIRE", e, "ten"),
             "value is not an integer or out of range", "EXPIRE of text")
expect(r.expire(e, 0), True, "EXPIRE 0 deletes")
expect(r.exists(e), 0, "the key is gone at once")

# GETEX changes the deadline as it reads; GETDEL and GETSET.
g = p + "g"
r.set(g, "v")
expect(r.getex(g, ex=30), "v", "GETEX EX returns the value")
expect(r.ttl(g), 30, "GETEX EX set the deadline")
expect(r.getex(g, persist=True), "v", "GETEX PERSIST")
expect(r.ttl(g), -1, "GETEX PERSIST removed it")
expect(r.getex(g, px=20_000), "v", "GETEX PX")
expect(r.getex(g), "v", "GETEX alone reads")
expect(19_000 < r.pttl(g) <= 20_000, True, "GETEX alone kept the deadline")
expect(r.getex(p + "none", ex=5), None, "GETEX of a missing key")
expect(r.getset(g, "w"), "v", "GETSET")
expect(r.ttl(g), -1, "GETSET clears the deadline")
expect(r.set(g, "x", ex=30, get=True), "w", "SET GET EX")
expect(r.ttl(g), 30, "SET GET EX set a deadline")
expect(r.getdel(g), "x", "GETDEL")
expect(r.ttl(g), -2, "GETDEL removed the key")
