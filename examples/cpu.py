"""A CPU-bound graph: the same fixed work on every call, about 50 ms on one core here.

The work is a fixed number of loop iterations (not a wall-clock spin), so a slower or
busier machine takes longer for the same call, as real CPU-bound graphs do.
"""

import hashlib

ROUNDS = 150_000


def graph(input: dict) -> dict:
    digest = b"graphnursery"
    for _ in range(ROUNDS):
        digest = hashlib.sha256(digest).digest()
    return {"digest": digest.hex(), "rounds": ROUNDS}
