"""A lane: one served graph, with its own queue, runners and worker processes.

Each graph the server serves (``Config.graphs``) gets a :class:`Lane`: a
:class:`~graphnursery.jobqueue.JobQueue` bounded by the graph's ``queue_size``, an
:class:`~graphnursery.intake.Intake` that brings in that graph's jobs only, one runner task
per worker, and the worker processes of its live version. So a slow graph fills its own
queue and workers, never another's.

Versions: a lane runs its graph's *live* :class:`Deployment`, worker processes that loaded
one version of its source. :meth:`Lane.reload` loads the source again: a changed source is
loaded in new worker processes and becomes live once every one of them has loaded it; jobs
already running finish on the old deployment, whose processes stop once they have; queued
jobs start on the new one. A source that fails to load raises
:class:`~graphnursery.errors.GraphLoadError` and the live version stays. The queue is not
touched, so nothing is dropped.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from .clock import Clock
from .config import Config
from .errors import GraphLoadError, unwrap_single_error
from .eventhub import EventHub
from .executor import ExecutorStatistics, GraphRunner, executor_for
from .intake import Intake, Unfinished, intake_for
from .jobqueue import JobQueue
from .jobs import DEFAULT_WORKSPACE, Job, JobStatus, new_job_id
from .logs import get_logger
from .metrics import EngineStatistics, Metrics, PoolStatistics
from .runners import Runners
from .sources import GraphSpec, source_version
from .store import Shares, Store
from .turns import ThreadTurns

log = get_logger("graphnursery.engine")


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """A version of a graph this server has run."""

    version: str
    tag: str
    loaded_at: float
    retired_at: float | None  # when another version replaced it (None: live)


@dataclass(frozen=True, slots=True)
class Reloaded:
    """What a reload did: ``changed`` False when the source had not changed."""

    graph: str
    version: str
    previous: str
    changed: bool


@dataclass(frozen=True, slots=True)
class GraphInfo:
    """A served graph as it stands: what ``GET /graphs`` shows."""

    name: str
    source: str
    version: str
    tag: str
    workers: int
    busy_workers: int
    queue_length: int
    queue_capacity: int
    job_timeout: float
    max_attempts: int
    default: bool
    versions: tuple[VersionInfo, ...]


class Deployment:
    """One version of a graph, loaded in worker processes. Runners take it with
    :meth:`use`; once retired, it stops when the last job on it has ended."""

    def __init__(self, version: str, executor: GraphRunner) -> None:
        self.version = version
        self.executor = executor
        self._running = 0
        self._retired = False
        self.done = trio.Event()  # retired, with no job left on it

    @contextlib.contextmanager
    def use(self) -> Iterator[GraphRunner]:
        self._running += 1
        try:
            yield self.executor
        finally:
            self._running -= 1
            self._check_done()

    def retire(self) -> None:
        self._retired = True
        self._check_done()

    def _check_done(self) -> None:
        if self._retired and not self._running:
            self.done.set()


class Lane:
    """One served graph: its queue, intake, runners and live deployment."""

    def __init__(
        self,
        spec: GraphSpec,
        config: Config,
        store: Store,
        metrics: Metrics,
        clock: Clock,
        hub: EventHub,
        wake: Callable[[str], None],
        *,
        default: bool = False,
        executor: GraphRunner | None = None,
        served: Mapping[str, Lane] | None = None,
        turns: ThreadTurns | None = None,
    ) -> None:
        self.spec = spec
        self.turns = turns or ThreadTurns()
        self._served = (
            {} if served is None else served
        )  # the server's lanes: what a flow's graph nodes call
        self.name = spec.name
        self.config = config
        self._hub = hub
        self._given_executor = executor  # replaces worker processes (InlineExecutor, tests)
        # The default graph also runs jobs a store kept from before graphs had names.
        self.store_graphs = (spec.name, "") if default else (spec.name,)
        limits = config.workspace_limits_by_name()
        self.queue = JobQueue(config.queue_size, max_running=limits.max_running())
        # Several workspaces, or caps: a shared store's claims are fair between them too.
        shares = None
        if config.authenticates or limits.max_running() is not None:
            shares = Shares(limits.default.max_running, limits.running_caps())
        self.intake: Intake = intake_for(
            store,
            self.queue,
            config.workers,
            config.lease_seconds,
            clock.now,
            self.store_graphs,
            shares,
        )
        self.runners = Runners(
            config, store, self, self.queue, self.intake, metrics, clock, wake, hub, spec.name
        )
        self.live: Deployment | None = None
        self.checkpoints = store.checkpoints  # LangGraph threads' state, for the workers
        self.versions: list[VersionInfo] = []
        self._retired: list[Deployment] = []
        self._nursery: trio.Nursery | None = None
        self._reloading = trio.Lock()
        self._stopped = trio.Event()  # the lane's runners have all stopped
        self.worker_restarts_before = 0  # of deployments that have stopped

    # -- what the runners ask ------------------------------------------------------------------

    def deployment(self) -> Deployment:
        assert self.live is not None, "the lane is not running"
        return self.live

    def new_job(
        self,
        job_input: Any,
        created_at: float,
        *,
        timeout: float | None = None,
        max_attempts: int | None = None,
        stream_mode: tuple[str, ...] | None = None,
        schedule_id: str | None = None,
        workspace: str = DEFAULT_WORKSPACE,
        thread_id: str | None = None,
        run_options: dict[str, Any] | None = None,
    ) -> Job:
        """A new queued job of this graph, at its live version; this graph's settings
        where the caller gives none."""
        return Job(
            id=new_job_id(),
            input=job_input,
            status=JobStatus.QUEUED,
            created_at=created_at,
            timeout=self.config.job_timeout if timeout is None else timeout,
            max_attempts=max_attempts or self.config.max_attempts,
            stream_mode=stream_mode,
            graph=self.name,
            version=self.deployment().version,
            schedule_id=schedule_id,
            workspace=workspace,
            thread_id=thread_id,
            run_options=run_options,
        )

    # -- running -------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the live version (raising GraphLoadError if it cannot be), then run the
        intake and the runners until cancelled. The worker processes outlive the runners:
        a runner stopped mid-job still records how its job ended."""
        with unwrap_single_error():  # a load failure raises as itself
            async with trio.open_nursery() as deployments:
                self._nursery = deployments
                version = await self._version()
                self.live = await deployments.start(self._deploy, version)
                self._versions_now(version)
                try:
                    async with trio.open_nursery() as nursery:
                        await nursery.start(self.intake.run)
                        for _ in range(self.config.workers):
                            nursery.start_soon(self.runners.run)
                        task_status.started()
                finally:
                    self._stopped.set()

    async def reload(self, spec: GraphSpec | None = None) -> Reloaded:
        """Load the source again, or ``spec``'s instead (a stored flow's new live version);
        see the module's doc. Raises GraphLoadError."""
        async with self._reloading:
            assert self._nursery is not None and self.live is not None
            old, old_spec = self.live, self.spec
            if spec is not None:
                self.spec = spec
            try:
                version = await self._version()
                if version == old.version:
                    return Reloaded(self.name, version, old.version, changed=False)
                new: Deployment = await self._nursery.start(self._deploy, version)
            except BaseException:
                self.spec = old_spec
                raise
            self.live = new
            old.retire()
            self._retired.append(old)
            self._versions_now(version)
            log.info("graph reloaded", graph=self.name, version=version, previous=old.version)
            return Reloaded(self.name, version, old.version, changed=True)

    async def _version(self) -> str:
        if self._given_executor is not None:
            return "inline"
        try:
            return await trio.to_thread.run_sync(source_version, self.spec.source)
        except (OSError, ValueError) as exc:
            raise GraphLoadError(self.spec.source, type(exc).__name__, str(exc), "") from None

    async def _deploy(
        self, version: str, *, task_status: trio.TaskStatus[Deployment] = trio.TASK_STATUS_IGNORED
    ) -> None:
        config = self.config.replace(graph=self.spec.source)
        others = {name: lane.spec.source for name, lane in self._served.items() if lane is not self}
        async with executor_for(
            config,
            self._given_executor,
            self._hub.address,
            self.spec.env,
            others,
            self.checkpoints,
        ) as executor:
            deployment = Deployment(version, executor)
            task_status.started(deployment)
            # Until it is retired and idle, or the lane's runners have all stopped.
            with trio.CancelScope(shield=True):
                await _first_of(deployment.done, self._stopped)
            if deployment in self._retired:
                self._retired.remove(deployment)
                self.worker_restarts_before += executor.worker_restarts
                log.info("old version stopped", graph=self.name, version=version)

    def _versions_now(self, version: str) -> None:
        now = time.time()
        self.versions = [
            v if v.retired_at is not None else VersionInfo(v.version, v.tag, v.loaded_at, now)
            for v in self.versions
        ]
        self.versions.append(VersionInfo(version, self.spec.tag, now, None))

    # -- what the engine asks ------------------------------------------------------------------

    def executors(self) -> list[GraphRunner]:
        live = [] if self.live is None else [self.live.executor]
        return live + [d.executor for d in self._retired]

    def statistics(self) -> ExecutorStatistics:
        """The live version's workers, and the old versions' jobs still running."""
        stats = [executor.statistics() for executor in self.executors()]
        if not stats:
            return ExecutorStatistics(self.config.workers, 0, self.config.workers)
        return ExecutorStatistics(
            workers=stats[0].workers,
            running=sum(s.running for s in stats),
            idle_workers=stats[0].idle_workers,
        )

    @property
    def worker_restarts(self) -> int:
        return self.worker_restarts_before + sum(e.worker_restarts for e in self.executors())

    def queue_length(self) -> int:
        return len(self.queue)

    def retry_after(self) -> float:
        """Seconds until the queue likely has room, from its length and recent job times."""
        per_job = self.runners.mean_duration or 1.0
        return max(1.0, min(300.0, math.ceil(len(self.queue) * per_job / self.config.workers)))

    async def set_aside_queued(self) -> None:
        """After the runners stop: every job still queued ends cancelled or is kept by the
        store, as the intake says; none vanishes."""
        for job_id in self.queue.take_all_nowait():
            self.runners.trace_carriers.pop(job_id, None)
            if await self.intake.unfinished(job_id, Unfinished.QUEUED):
                await self.runners.end_cancelled(job_id)
        for job_id in self.queue.take_held():  # retries waiting out their backoff
            if await self.intake.unfinished(job_id, Unfinished.BACKING_OFF):
                await self.runners.end_cancelled(job_id)


async def _first_of(*events: trio.Event) -> None:
    async with trio.open_nursery() as nursery:

        async def until(event: trio.Event) -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        for event in events:
            nursery.start_soon(until, event)


def graph_info(lane: Lane) -> GraphInfo:
    stats = lane.statistics()
    return GraphInfo(
        name=lane.name,
        source=lane.spec.source,
        version=lane.deployment().version,
        tag=lane.spec.tag,
        workers=lane.config.workers,
        busy_workers=stats.running,
        queue_length=lane.queue_length(),
        queue_capacity=lane.config.queue_size,
        job_timeout=lane.config.job_timeout,
        max_attempts=lane.config.max_attempts,
        default="" in lane.store_graphs,
        versions=tuple(lane.versions),
    )


def pool_statistics(lane: Lane) -> PoolStatistics:
    stats = lane.statistics()
    return PoolStatistics(
        queue_depth=lane.queue_length(),
        workers_busy=stats.running,
        workers_idle=stats.idle_workers,
        worker_restarts=lane.worker_restarts,
    )


def engine_statistics(
    counted: Sequence[tuple[Lane, Mapping[JobStatus, int]]], uptime: float
) -> EngineStatistics:
    """The counts and workers of some lanes, summed."""

    def total(status: JobStatus) -> int:
        return sum(counts[status] for _, counts in counted)

    stats = [lane.statistics() for lane, _ in counted]
    return EngineStatistics(
        queued=total(JobStatus.QUEUED),
        running=total(JobStatus.RUNNING),
        completed=total(JobStatus.COMPLETED),
        failed=total(JobStatus.FAILED),
        timed_out=total(JobStatus.TIMED_OUT),
        cancelled=total(JobStatus.CANCELLED),
        crashed=total(JobStatus.CRASHED),
        total=sum(sum(counts.values()) for _, counts in counted),
        workers=sum(s.workers for s in stats),
        available_workers=sum(s.idle_workers for s in stats),
        queue_capacity=sum(lane.config.queue_size for lane, _ in counted),
        worker_restarts=sum(lane.worker_restarts for lane, _ in counted),
        uptime=uptime,
    )
