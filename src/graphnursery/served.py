"""The engine's graphs: a :class:`~graphnursery.lanes.Lane` per graph served, by name.

:class:`ServedGraphs` is the part of the :class:`~graphnursery.engine.Engine` that answers
for its graphs together: which lane a job goes to, reloads, and the figures of each graph
and of all of them (queues, workers, counts).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import trio

from .clock import Clock
from .config import Config
from .errors import GraphNotFound
from .eventhub import EventHub
from .executor import GraphRunner
from .lanes import GraphInfo, Lane, Reloaded, engine_statistics, graph_info, pool_statistics
from .metrics import EngineStatistics, Metrics, PoolStatistics
from .sources import GraphSpec
from .store import Store
from .turns import ThreadTurns


class ServedGraphs:
    """The lanes of an engine (its base class): ``lanes`` by name, the default first."""

    def __init__(
        self,
        config: Config,
        store: Store,
        metrics: Metrics,
        hub: EventHub,
        job_done: Callable[[str], None],
        executor: GraphRunner | None,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.clock = Clock()
        self._hub = hub
        self._job_done = job_done
        self._started_at = trio.current_time()
        self._nursery: trio.Nursery | None = None  # the engine's, for lanes added later
        self.lanes: dict[str, Lane] = {}
        #: A LangGraph thread's runs, one at a time here (``multitask_strategy: enqueue``).
        self.turns = ThreadTurns()
        for index, spec in enumerate(config.graphs):
            self.lanes[spec.name] = Lane(
                spec,
                config.for_graph(spec),
                store,
                metrics,
                self.clock,
                hub,
                job_done,
                default=index == 0,
                executor=executor,
                served=self.lanes,
                turns=self.turns,
            )
            metrics.graph_served(spec.name)
        self.default = self.lanes[config.default_graph.name]

    async def add_lane(self, spec: GraphSpec, config: Config) -> Lane:
        """Serve one more graph (a stored flow), with ``config``'s settings; once its workers
        have loaded it. Raises GraphLoadError."""
        assert self._nursery is not None, "the engine is not running"
        lane = Lane(
            spec,
            config,
            self.store,
            self.metrics,
            self.clock,
            self._hub,
            self._job_done,
            served=self.lanes,
            turns=self.turns,
        )
        await self._nursery.start(lane.run)
        self.lanes[spec.name] = lane
        self.metrics.graph_served(spec.name)
        return lane

    def lane(self, graph: str | None = None) -> Lane:
        """The lane of ``graph`` (None or "": the default graph). Raises GraphNotFound."""
        if not graph:
            return self.default
        lane = self.lanes.get(graph)
        if lane is None:
            raise GraphNotFound(graph)
        return lane

    def position(self, job_id: str) -> int | None:
        """How many queued jobs are ahead of this one in its graph's queue; None if it is
        not queued."""
        for lane in self.lanes.values():
            position = lane.queue.position(job_id)
            if position is not None:
                return position
        return None

    def queue_length(self, graph: str | None = None) -> int:
        """Jobs waiting here (one graph's, or all): on a queue, or waiting out a retry's
        backoff to get on it."""
        if graph is not None:
            return self.lane(graph).queue_length()
        return sum(lane.queue_length() for lane in self.lanes.values())

    def queued_by_workspace(self) -> dict[str, int]:
        """Jobs waiting here, per workspace, over every graph (no store query)."""
        totals: dict[str, int] = {}
        for lane in self.lanes.values():
            for workspace, count in lane.queue.queued_by_workspace().items():
                totals[workspace] = totals.get(workspace, 0) + count
        return totals

    def retry_after(self, graph: str | None = None) -> float:
        """Seconds until the graph's queue likely has room."""
        return self.lane(graph).retry_after()

    async def reload(self, graph: str | None = None) -> list[Reloaded]:
        """Load a graph's source again (None: every graph's); see :meth:`Lane.reload`.
        Raises GraphNotFound, or GraphLoadError (the live version stays)."""
        lanes = list(self.lanes.values()) if graph is None else [self.lane(graph)]
        return [await lane.reload() for lane in lanes]

    # -- every lane at once (stopping, and what a shared store reports) ------------------

    async def take_no_more(self) -> None:
        """Draining: no lane brings in more jobs; the queued ones are set aside."""
        for lane in self.lanes.values():
            lane.intake.stop_bringing_in()
            await lane.set_aside_queued()

    async def set_aside_queued(self) -> None:
        for lane in self.lanes.values():
            await lane.set_aside_queued()

    def running_jobs(self) -> int:
        return sum(lane.runners.active for lane in self.lanes.values())

    async def wait_idle(self, grace: float) -> bool:
        """Wait up to ``grace`` seconds for no job to run; whether none does."""
        with trio.move_on_after(grace):
            for lane in self.lanes.values():
                await lane.runners.wait_idle(math.inf)
        return self.running_jobs() == 0

    def stop_running(self) -> None:
        for lane in self.lanes.values():
            lane.runners.stop_all()

    def stop_retrying(self) -> None:
        for lane in self.lanes.values():
            lane.runners.retrying = False

    def stop_here(self, job_id: str) -> None:
        """Stop the job if it runs here (cancelled elsewhere, or its lease lost)."""
        for lane in self.lanes.values():
            lane.runners.stop_here(job_id)

    def work_available(self) -> None:
        """A shared store says jobs may be waiting to be claimed."""
        for lane in self.lanes.values():
            lane.intake.work_available()

    def graphs(self) -> list[GraphInfo]:
        """Each served graph as it stands now (no store query)."""
        return [graph_info(lane) for lane in self.lanes.values()]

    def graph(self, name: str) -> GraphInfo:
        return graph_info(self.lane(name))

    def pool_statistics(self) -> dict[str, PoolStatistics]:
        """Each graph's queue and worker processes now (no store query: for scrapes)."""
        return {name: pool_statistics(lane) for name, lane in self.lanes.items()}

    async def statistics(self, graph: str | None = None) -> EngineStatistics:
        """Counts and workers of one graph, or of all (then with ``graphs``: each one's)."""
        uptime = trio.current_time() - self._started_at
        if graph is not None:
            lane = self.lane(graph)
            return engine_statistics([(lane, await lane.intake.counts())], uptime)
        counted = [(lane, await lane.intake.counts()) for lane in self.lanes.values()]
        total = engine_statistics(counted, uptime)
        if len(counted) == 1:
            return total.replace(graphs={counted[0][0].name: total})
        each = {lane.name: engine_statistics([(lane, c)], uptime) for lane, c in counted}
        return total.replace(graphs=each)
