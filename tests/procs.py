"""Helpers for tests about processes: is a pid alive, what runs below a pid."""

from __future__ import annotations

import itertools
from pathlib import Path

import trio


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: it has ended and waits to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in {"Z", "X"}


def ignored_signals(pid: int) -> int:
    """The process's mask of ignored signals (``SigIgn`` in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no SigIgn for {pid}")


async def all_gone(pids: list[int], seconds: float = 10) -> None:
    """Wait until none of ``pids`` runs. A process's end shows in /proc, not as an event
    we could wait on, so this reads it until then, within a deadline."""
    with trio.fail_after(seconds):
        for _ in itertools.count():
            if not [pid for pid in pids if alive(pid)]:
                return
            await trio.sleep(0.02)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


async def read_pids(path: Path, seconds: float = 30) -> list[int]:
    """The pids a spawner job wrote, once it has written them (within a deadline)."""
    with trio.fail_after(seconds):
        for _ in itertools.count():
            text = _read(path)
            if text.endswith("\n"):
                return [int(line) for line in text.split()]
            await trio.sleep(0.02)
    raise AssertionError("unreachable")


def rss_kib(pid: int) -> int:
    """A process's resident set size now, in KiB (``VmRSS``)."""
    for line in _read(Path(f"/proc/{pid}/status")).splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")
