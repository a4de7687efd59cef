"""The queue between submit and the runners: job ids, bounded, fair between workspaces.

Each workspace (a string, ``"default"`` when a caller gives none) has its own FIFO backlog;
:meth:`JobQueue.take` serves the workspaces that have queued jobs in turn, one job each. A
workspace that queues its first job joins the rotation at the back: if A queued 10,000 jobs
and then B queues one, B's job is taken after at most one more of A's. So with ``W``
workspaces queuing, B's job waits about ``(k + 1) * W`` takes, ``k`` of B's own being ahead of
it: a job B submits now and then waits for the next free worker, however long A's backlog; a
burst of ``n`` waits up to ``n * W`` takes for its last job. Measured (the tests: A queues
2,000 jobs of 0.1 s, 2 workers): B's 20 jobs submitted one per 0.1 s wait 0.05 s each; all 20
at once wait 1.0 s on average, 1.95 s at most; first in, first out, about 100 s. To cap what
a workspace may queue, run or submit, see :mod:`graphnursery.quotas`.

The bound is over all workspaces: at most ``capacity`` jobs queued (:meth:`put_nowait`
raises ``trio.WouldBlock`` when full; :meth:`put` waits, in arrival order, and is moved in as
a take makes room). Retries waiting out their backoff are held outside that bound, yet count
in ``len()``, which the intake checks against ``capacity``. A put with a runner waiting hands
the job straight to it. Every put and take is O(1)."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from typing import NamedTuple

import outcome
import trio
from trio.lowlevel import Task

from .jobs import DEFAULT_WORKSPACE

#: Workspaces with nothing queued keep their backlog (no allocation per job of a workspace
#: that is served as fast as it submits) until more than this many, or twice the busy ones.
IDLE_BACKLOGS = 1024


class _Backlog:
    """One workspace's queued jobs, oldest first, with a count of those that left (positions
    without scanning: a job's sequence number minus how many left before it)."""

    __slots__ = ("entered", "jobs", "left", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.jobs: deque[str] = deque()
        self.entered = 0
        self.left = 0


class _Put(NamedTuple):
    """A put waiting for room (``held``: from put_held, it leaves the held set as it gets in)."""

    job_id: str
    workspace: str
    held: bool


class JobQueue:
    """Job ids waiting for a runner: at most ``capacity`` queued, taken round-robin across
    workspaces, FIFO within one."""

    def __init__(self, capacity: int, max_running: Callable[[str], int] | None = None) -> None:
        if capacity < 1:  # a waiting put and a waiting take would wait for each other
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._backlogs: dict[str, _Backlog] = {}  # busy workspaces, and some idle ones
        self._turns: deque[_Backlog] = deque()  # those with queued jobs, the next to serve first
        # job id -> (workspace, sequence there): atoms only, so the GC soon stops tracking it
        self._queued_at: dict[str, tuple[str, int]] = {}
        self._queued = 0
        self._held: dict[str, str] = {}  # retries waiting out their backoff -> workspace
        self._waiting_puts: OrderedDict[Task, _Put] = OrderedDict()
        self._waiting_takes: OrderedDict[Task, None] = OrderedDict()
        self._closed = False
        self._sweep_at = IDLE_BACKLOGS
        # Each workspace's cap on jobs taken and not yet done (0: none); those at it are
        # blocked: out of the turns until one of theirs is done (see done()).
        self._max_running = max_running
        self._taken: dict[str, str] = {}  # job id -> workspace, with max_running only
        self._running: dict[str, int] = {}
        self._blocked: set[str] = set()

    def __len__(self) -> int:
        """Jobs waiting: queued, or held while a retry waits out its backoff."""
        return self._queued + len(self._held)

    def queued_of(self, workspace: str) -> int:
        """The workspace's jobs waiting (queued and held)."""
        backlog = self._backlogs.get(workspace)
        queued = len(backlog.jobs) if backlog is not None else 0
        if self._held:
            queued += sum(1 for held in self._held.values() if held == workspace)
        return queued

    def queued_by_workspace(self) -> dict[str, int]:
        """Jobs waiting per workspace (queued and held), for stats; O(workspaces + held)."""
        counts = {name: len(b.jobs) for name, b in self._backlogs.items() if b.jobs}
        for workspace in self._held.values():
            counts[workspace] = counts.get(workspace, 0) + 1
        return counts

    def position(self, job_id: str) -> int | None:
        """How many queued jobs will be taken before this one; None if it is not queued.

        Exact for the jobs queued now: jobs other workspaces queue later (retries back from
        their backoff too) may still go before it. O(workspaces with queued jobs).
        """
        found = self._queued_at.get(job_id)
        if found is None:
            return None
        workspace, seq = found
        backlog = self._backlogs[workspace]
        own_ahead = seq - backlog.left  # its round: each round takes one from each workspace
        ahead = own_ahead
        served_first = True  # the workspaces served before this one in each round
        for other in self._turns:
            if other is backlog:
                served_first = False
            else:
                ahead += min(len(other.jobs), own_ahead + 1 if served_first else own_ahead)
        return ahead

    # -- putting ------------------------------------------------------------------------

    def put_nowait(self, job_id: str, workspace: str = DEFAULT_WORKSPACE) -> None:
        """Queue a job; raises ``trio.WouldBlock`` when the queue is full (and
        ``trio.ClosedResourceError`` once it is closed)."""
        if self._closed:
            raise trio.ClosedResourceError("the job queue is closed")
        if self._queued >= self.capacity:
            raise trio.WouldBlock
        self._enter(job_id, workspace)

    async def put(self, job_id: str, workspace: str = DEFAULT_WORKSPACE) -> None:
        """Queue a job, waiting while the queue is full. Cancelled while waiting, the job is
        not queued."""
        if self._closed:
            raise trio.ClosedResourceError("the job queue is closed")
        await self._put(_Put(job_id, workspace, held=False))

    async def _put(self, put: _Put) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._queued < self.capacity:
            self._enter(put.job_id, put.workspace)
            if put.held:
                del self._held[put.job_id]
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        task = trio.lowlevel.current_task()
        self._waiting_puts[task] = put

        def abort(_: object) -> trio.lowlevel.Abort:
            del self._waiting_puts[task]
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)  # _admit_waiting_put queued it

    def _enter(self, job_id: str, workspace: str) -> None:
        blocked = workspace in self._blocked
        if self._waiting_takes and not blocked:  # nothing takeable: straight to a runner
            task, _ = self._waiting_takes.popitem(last=False)
            self._count_taken(job_id, workspace)
            trio.lowlevel.reschedule(task, outcome.Value(job_id))
            return
        backlog = self._backlogs.get(workspace)
        if backlog is None:
            backlog = self._new_backlog(workspace)
        if not backlog.jobs and not blocked:
            self._turns.append(backlog)
        backlog.jobs.append(job_id)
        self._queued_at[job_id] = (workspace, backlog.entered)
        backlog.entered += 1
        self._queued += 1

    def _new_backlog(self, workspace: str) -> _Backlog:
        if len(self._backlogs) >= self._sweep_at:  # forget idle ones: amortised O(1)
            self._backlogs = {name: b for name, b in self._backlogs.items() if b.jobs}
            self._sweep_at = max(IDLE_BACKLOGS, 2 * len(self._backlogs))
        backlog = self._backlogs[workspace] = _Backlog(workspace)
        return backlog

    # -- taking -------------------------------------------------------------------------

    async def take(self) -> str | None:
        """The next job id for a runner; None once the queue is closed and empty.

        With a job waiting, it returns without a scheduler pass: a worker that just finished
        gets its next job before anything the last result woke up runs.
        """
        if self._turns:
            return self._leave()
        if self._closed and not self._queued:
            await trio.lowlevel.checkpoint()
            return None
        task = trio.lowlevel.current_task()
        self._waiting_takes[task] = None

        def abort(_: object) -> trio.lowlevel.Abort:
            del self._waiting_takes[task]
            return trio.lowlevel.Abort.SUCCEEDED

        job_id: str | None = await trio.lowlevel.wait_task_rescheduled(abort)
        return job_id

    def take_all_nowait(self) -> list[str]:
        """Empty the queue at once (stopping): the ids that were in it, in the order
        :meth:`take` would have given them, puts that were waiting for room included."""
        for workspace in list(self._blocked):  # stopping: blocked ones are taken too
            self._unblock(workspace)
        taken: list[str] = []
        while self._turns:
            taken.append(self._leave())
        return taken

    def _leave(self) -> str:
        backlog = self._turns[0]
        job_id = backlog.jobs.popleft()
        backlog.left += 1
        del self._queued_at[job_id]
        self._queued -= 1
        if backlog.jobs and not self._count_taken(job_id, backlog.name):
            self._turns.rotate(-1)  # its next job waits for the others' turns
        else:
            self._turns.popleft()  # empty, or at its max_running: out of the turns
        if self._waiting_puts:
            self._admit_waiting_put()
        return job_id

    def _admit_waiting_put(self) -> None:
        task, put = self._waiting_puts.popitem(last=False)
        self._enter(put.job_id, put.workspace)
        if put.held:
            del self._held[put.job_id]
        trio.lowlevel.reschedule(task)

    # -- max_running ----------------------------------------------------------------------

    def _count_taken(self, job_id: str, workspace: str) -> bool:
        """A job taken: whether its workspace is at its max_running now (blocked)."""
        if self._max_running is None:
            return False
        limit = self._max_running(workspace)
        if not limit:
            return False
        self._taken[job_id] = workspace
        running = self._running[workspace] = self._running.get(workspace, 0) + 1
        if running >= limit:
            self._blocked.add(workspace)
            return True
        return False

    def done(self, job_id: str) -> None:
        """A job taken off the queue has stopped running: its workspace's next job may be
        taken, if its max_running held it back."""
        workspace = self._taken.pop(job_id, None)
        if workspace is None:
            return
        running = self._running[workspace] = self._running[workspace] - 1
        if not running:
            del self._running[workspace]
        if workspace in self._blocked and running < (self._max_running or _none)(workspace):
            self._unblock(workspace)
            while self._waiting_takes and self._turns:
                task, _ = self._waiting_takes.popitem(last=False)
                trio.lowlevel.reschedule(task, outcome.Value(self._leave()))

    def _unblock(self, workspace: str) -> None:
        self._blocked.discard(workspace)
        backlog = self._backlogs.get(workspace)
        if backlog is not None and backlog.jobs:
            self._turns.append(backlog)

    def close(self) -> None:
        """No more puts (they raise ``trio.ClosedResourceError``); :meth:`take` returns
        None once what is queued is taken. Puts already waiting for room still get in."""
        self._closed = True
        if self._queued:  # (blocked ones too: they are taken once unblocked)
            return
        while self._waiting_takes:  # nothing is queued: nothing will come
            task, _ = self._waiting_takes.popitem(last=False)
            trio.lowlevel.reschedule(task, outcome.Value(None))

    # -- retries waiting out their backoff ----------------------------------------------

    def hold(self, job_id: str, workspace: str = DEFAULT_WORKSPACE) -> None:
        """Count a retry waiting out its backoff as queued (see :meth:`put_held`)."""
        self._held[job_id] = workspace

    async def put_held(self, job_id: str) -> None:
        """Queue a held retry once its backoff is over, in its workspace, waiting while the
        queue is full (a retry is never dropped, even once the queue is closed). Nothing if
        it is no longer held (stopping took it, also while it waited for room)."""
        workspace = self._held.get(job_id)
        if workspace is None:
            await trio.lowlevel.checkpoint()
            return
        await self._put(_Put(job_id, workspace, held=True))

    def take_held(self) -> set[str]:
        """Every held retry (stopping): no longer queued; a put_held waiting for room returns."""
        for task, put in list(self._waiting_puts.items()):
            if put.held:
                del self._waiting_puts[task]
                trio.lowlevel.reschedule(task)
        held = set(self._held)
        self._held.clear()
        return held


def _none(workspace: str) -> int:
    return 0
