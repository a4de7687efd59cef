"""A graph whose memory grows while it runs: {"grow_mb": N} holds N MiB, 10 MiB at a time;
otherwise it answers {"ok": true} at once."""

import time


def graph(input):
    held = []
    for _ in range(input.get("grow_mb", 0) // 10):
        held.append(b"\x01" * (10 << 20))  # written, so resident
        time.sleep(0.01)
    return {"ok": True, "held_mb": 10 * len(held)}
