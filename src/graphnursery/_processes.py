"""Everything a job starts dies with it: the process tree of each worker process.

Worker side (no Trio, no Quart: this runs in trio-parallel's spawned processes):

- :func:`isolate` makes the worker the leader of a process group of its own, so that the
  processes a graph starts (shell tools, servers, ``sleep 300``) share it and can be killed
  as one; makes it a *child subreaper* (Linux), so a grandchild whose parent exits is
  re-parented to the worker rather than escaping to PID 1; records the worker's pid in the
  server's pid directory; and starts a lifeline thread that kills the whole group the moment
  the server process is gone, even mid-job.
- :func:`end_of_job` kills what a job left running (descendants the worker did not have when
  it had loaded the graph), after each job.

Server side: when a worker process is killed (timeout, cancel, shutdown) or dies, the
processes of its group are orphans; :func:`kill_orphaned_groups` kills the group of every
recorded worker that is gone (or of all of them, when the executor stops).

The worker's own SIGTERM and SIGINT get a handler that does nothing, instead of being
ignored: a signal sent to a whole process group must not stop a job mid-run, yet an ignored
disposition would be inherited by every program the graph runs, which then could not be
stopped with SIGTERM. Handlers are reset by ``exec``, so those programs start with defaults.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import threading
from pathlib import Path
from typing import Any

PR_SET_CHILD_SUBREAPER = 36

_at_load: frozenset[int] = frozenset()  # descendants the worker had once the graph loaded


def _do_nothing(signum: int, frame: Any) -> None:
    """A signal sent to the group is not for the job (see the module's docstring)."""


def shield_from_group_signals() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _do_nothing)


def isolate(server_pid: int, pid_dir: str) -> None:
    """Call once in a new worker process, before loading the graph."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    if pid_dir:
        with contextlib.suppress(OSError):
            Path(pid_dir, str(os.getpid())).touch()
    _die_with(server_pid)


def loaded() -> None:
    """The graph has loaded: processes it started by now belong to the graph, not a job."""
    global _at_load
    _at_load = frozenset(descendants(os.getpid()))


def end_of_job() -> None:
    """Kill (and reap) what the job started and left running. Cheap when it started none."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return  # no child processes at all: the common case, one system call
    leftovers = [pid for pid in descendants(os.getpid()) if pid not in _at_load]
    for pid in leftovers:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for pid in leftovers:
        with contextlib.suppress(OSError):
            os.waitpid(pid, 0)  # our children; grandchildren are reaped by their parents


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (Linux: ``/proc/PID/task/TID/children``)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as children:
                    kids = [int(child) for child in children.read().split()]
            except (OSError, ValueError):
                continue
            found += kids
            stack += kids
    return found


def _die_with(server_pid: int) -> None:
    """Kill the worker's group the moment the server process is gone. A thread waits on a
    pidfd of the server (Linux 5.3+; elsewhere the worker exits at its next read from the
    closed pipe instead, and what its job started may outlive it)."""
    try:
        pidfd = os.pidfd_open(server_pid)
    except (AttributeError, OSError):
        return
    if os.getppid() != server_pid:  # gone before we looked
        _kill_own_group()

    def wait_for_server() -> None:
        select.select([pidfd], [], [])
        _kill_own_group()

    threading.Thread(target=wait_for_server, name="graphnursery-lifeline", daemon=True).start()


def _kill_own_group() -> None:
    for pid in descendants(os.getpid()):  # those that left the group too
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.killpg(os.getpgid(0), signal.SIGKILL)  # the worker included
    os._exit(1)


# -- server side ------------------------------------------------------------------------------


def recorded_workers(pid_dir: str) -> list[int]:
    """The worker pids recorded in ``pid_dir`` (some may have ended)."""
    try:
        return [int(entry) for entry in os.listdir(pid_dir) if entry.isdigit()]
    except OSError:
        return []


def kill_orphaned_groups(pid_dir: str, *, all_workers: bool = False) -> int:
    """Kill the process group of each recorded worker that is gone (every recorded worker,
    with ``all_workers``); forget those. Returns how many groups were signalled."""
    signalled = 0
    try:
        entries = os.listdir(pid_dir)
    except OSError:
        return 0
    for entry in entries:
        if not entry.isdigit():
            continue
        pid = int(entry)
        if not all_workers and _alive(pid):
            continue
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
            signalled += 1
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(pid_dir, entry))
    return signalled


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: it is dead, waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
