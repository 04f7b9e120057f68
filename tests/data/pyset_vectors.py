#!/usr/bin/env python3
"""Test vectors for numasim's CPython set emulation (src/fit/pyset.rs).

Run with CPython 3.11 (the interpreter the Nova oracle uses):
    python3 tests/data/pyset_vectors.py > tests/data/pyset-vectors.jsonl
Each line: an operation on sets built from lists in insertion order, and the
iteration order CPython gives.
"""
import json
import random


class Coerced(set):
    """Mimics oslo.versionedobjects CoercedSet.update(): copy into a plain set, then merge."""


def coerce(s):
    plain = set()
    for x in s:
        plain.add(x)
    out = Coerced()
    set.update(out, plain)
    return out


rng = random.Random(7)
for n in range(800):
    size_a = rng.choice([1, 2, 3, 4, 5, 6, 8, 12, 20, 40, 70])
    size_b = rng.choice([0, 1, 2, 3, 5, 9, 30])
    top = rng.choice([16, 64, 256, 1024])
    a = [rng.randrange(top) for _ in range(size_a)]
    b = [rng.randrange(top) for _ in range(size_b)]
    sa, sb = set(a), set(b)
    ca = coerce(sa)
    rec = {
        "a": a,
        "b": b,
        "set_a": list(sa),
        "coerced_a": list(ca),
        "and": list(ca & sb),
        "rand": list(sb & ca),
        "sub": list(ca - sb) or [],
        "copy_sub": list(set(ca) - sb),
    }
    d = set(ca)
    for x in b:
        d.discard(x)
    for x in a[: len(a) // 2]:
        d.add(x + 1)
    rec["discard_add"] = list(d)
    u = set(ca)
    u |= sb
    rec["ior"] = list(u)
    print(json.dumps(rec))
