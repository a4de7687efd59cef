"""Start and stop a graphnursery server, and read its CPU time and memory from /proc."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SERVING = re.compile(r"graphnursery: serving .* on (http://[^\s,]+).* with (\d+) workers")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@cache
def cli_supports(flag: str) -> bool:
    """Whether ``graphnursery serve`` has ``flag`` (older checkouts lack some settings)."""
    out = subprocess.run(
        [sys.executable, "-m", "graphnursery", "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return flag in out


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, grace: float = 30.0) -> int:
        """SIGTERM, then SIGKILL after ``grace`` seconds. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


#: ``start_server(store=...)``: the CLI's own default store (no ``--store`` flag).
DEFAULT_STORE = "default"


def start_server(
    graph: str,
    workers: int,
    queue_size: int,
    extra: list[str] | None = None,
    store: str = "memory://",
    cwd: str | None = None,
) -> Server:
    """``python -m graphnursery serve GRAPH --port 0 ...``; returns once it prints its URL.

    ``store`` is passed as ``--store`` (when the CLI has that flag); ``DEFAULT_STORE`` passes
    none, so the server keeps jobs where its default says (``./graphnursery.db``, relative to
    ``cwd``).
    """
    command = [
        sys.executable,
        "-m",
        "graphnursery",
        "serve",
        graph,
        "--port",
        "0",
        "--workers",
        str(workers),
        "--queue-size",
        str(queue_size),
        "--log-level",
        "warning",
        *(extra or []),
    ]
    if store != DEFAULT_STORE and cli_supports("--store"):
        command += ["--store", store]
    raise_open_file_limit()  # the server inherits it: room for its streams' connections
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1, cwd=cwd)
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    seen: list[str] = []
    for line in process.stdout:
        seen.append(line)
        match = SERVING.search(line)
        if match:
            return Server(process, match.group(1))
        if time.monotonic() > deadline:
            break
    process.kill()
    process.wait()
    raise RuntimeError("graphnursery did not start:\n" + "".join(seen))


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                ppid = int(_stat_fields(int(entry.name))[1])
            except (OSError, ValueError, IndexError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    tree = _children()
    found: list[int] = []
    stack = list(tree.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(tree.get(child, []))
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` (user + system), of its reaped children, and of live descendants.

    Worker processes that exit between two samples are counted once: alive in the first
    (own time), reaped by the second (in the parent's cutime/cstime).
    """
    fields = _stat_fields(pid)
    # fields[0] is state (field 3); utime, stime, cutime, cstime are fields 14-17.
    ticks = sum(int(x) for x in fields[11:15])
    for child in descendants(pid):
        try:
            ticks += sum(int(x) for x in _stat_fields(child)[11:13])
        except (OSError, ValueError):
            continue
    return ticks / CLOCK_TICKS


def own_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of ``pid`` alone: the server's own process, no workers."""
    return sum(int(x) for x in _stat_fields(pid)[11:13]) / CLOCK_TICKS


def open_fds(pid: int) -> int | None:
    """How many files ``pid`` has open (its sockets among them); None if /proc says not."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def raise_open_file_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (children inherit it);
    returns the soft limit now. A thousand streams are a thousand sockets on each side."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def memory_kib(pid: int, field: str) -> int:
    """A ``Vm*`` line of /proc/PID/status (VmHWM: peak RSS, VmRSS: current), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def tree_memory_kib(pid: int, field: str) -> int:
    """``field`` summed over the descendants of ``pid`` (the worker processes)."""
    total = 0
    for child in descendants(pid):
        try:
            total += memory_kib(child, field)
        except OSError:
            continue
    return total
