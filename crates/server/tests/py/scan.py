"""SCAN as redis-py walks it: every key exactly once (as a set) whatever the COUNT, MATCH and
TYPE filters, a cursor that ends at 0, and a walk complete for keys present throughout while
other keys are written and deleted during it (Redis's promise)."""

from scenario import connect, expect, prefix

r = connect()
p = prefix()

strings = {f"{p}s:{i}" for i in range(120)}
hashes = {f"{p}h:{i}" for i in range(15)}
pipe = r.pipeline(transaction=False)
for key in strings:
    pipe.set(key, "v")
for key in hashes:
    pipe.hset(key, "f", "v")
pipe.execute()

expect(set(r.scan_iter(match=p + "*", count=7)), strings | hashes, "SCAN MATCH sees every key")
expect(set(r.scan_iter(match=p + "h:*", count=1000)), hashes, "SCAN MATCH with a large COUNT")
expect(set(r.scan_iter(match=p + "*", _type="hash")), hashes, "SCAN TYPE hash")
expect(set(r.scan_iter(match=p + "*", _type="string", count=3)), strings, "SCAN TYPE string")
expect(set(r.scan_iter(match=p + "nothing*")), set(), "SCAN MATCH of nothing")

# One page at a time: cursors are opaque numbers and the walk ends at 0.
cursor, seen, pages = 0, [], 0
while True:
    cursor, keys = r.scan(cursor=cursor, match=p + "s:*", count=10)
    seen.extend(keys)
    pages += 1
    if cursor == 0:
        break
    expect(pages < 10_000, True, "the walk ends")
expect(set(seen), strings, "the paged walk saw every key")

# Writes during the walk: keys present from start to end are all returned.
stable = {f"{p}s:{i}" for i in range(60)}
churn = 0
seen = set()
cursor = 0
while True:
    cursor, keys = r.scan(cursor=cursor, match=p + "*", count=5)
    seen.update(keys)
    r.set(f"{p}new:{churn}", "v")
    r.delete(f"{p}s:{60 + churn % 60}")
    churn += 1
    if cursor == 0:
        break
expect(stable <= seen, True, f"keys present throughout were all seen: missing {sorted(stable - seen)[:5]}")

# KEYS with the same patterns.
expect(set(r.keys(p + "h:1?")), {f"{p}h:{i}" for i in range(10, 15)}, "KEYS with ?")
