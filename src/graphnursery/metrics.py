"""Prometheus metrics, one registry per app (so several servers can share a process).

Counters and histograms move as jobs move; the gauges (queue depth, busy and idle workers)
are read from the engine when scraped, so they cost nothing on a job's path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .jobs import Job, JobStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    queued: int
    running: int
    completed: int
    failed: int
    timed_out: int
    cancelled: int
    crashed: int
    total: int
    workers: int
    available_workers: int
    queue_capacity: int
    worker_restarts: int
    uptime: float
    #: Each graph's own (empty in a graph's own statistics).
    graphs: Mapping[str, EngineStatistics] = field(default_factory=dict)

    def replace(self, **changes: Any) -> EngineStatistics:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    """The gauges a scrape reads: the queue and the worker processes, as they stand."""

    queue_depth: int
    workers_busy: int
    workers_idle: int
    worker_restarts: int


#: Workspaces given a label value of their own in the per-workspace metrics; the rest
#: share ``other`` (metrics keep every label value they saw: it must be bounded).
MAX_WORKSPACE_LABELS = 100
OTHER = "other"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.jobs_submitted = Counter(
            "graphnursery_jobs_submitted",
            "Jobs accepted into a queue, by graph",
            ["graph"],
            registry=self.registry,
        )
        self.jobs_rejected = Counter(
            "graphnursery_jobs_rejected",
            "Submits refused, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.jobs_retried = Counter(
            "graphnursery_jobs_retried",
            "Attempts that ended in a retry_on status and were queued again",
            registry=self.registry,
        )
        self._finished = Counter(
            "graphnursery_jobs_finished",
            "Jobs that reached a terminal status, by graph and status",
            ["graph", "status"],
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "graphnursery_job_duration_seconds",
            "Time a job ran in a worker",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "graphnursery_job_queue_wait_seconds",
            "Time a job waited in the queue before it started",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.http_requests = Counter(
            "graphnursery_http_requests",
            "HTTP requests answered, by method, route and status code",
            ["method", "route", "code"],
            registry=self.registry,
        )

        self.events_emitted = Counter(
            "graphnursery_job_events",
            "Events kept in jobs' logs: what graphs emitted, and their status changes",
            registry=self.registry,
        )
        self.events_dropped = Counter(
            "graphnursery_job_events_dropped",
            "Events graphs emitted past max_job_events, not kept (counted when a job ends)",
            registry=self.registry,
        )
        # Per workspace, under a bounded number of label values (see workspace_label).
        self._workspace_submitted = Counter(
            "graphnursery_workspace_jobs_submitted",
            "Jobs accepted into a queue, by workspace",
            ["workspace"],
            registry=self.registry,
        )
        self._workspace_finished = Counter(
            "graphnursery_workspace_jobs_finished",
            "Jobs that reached a terminal status, by workspace and status",
            ["workspace", "status"],
            registry=self.registry,
        )
        self._workspace_refused = Counter(
            "graphnursery_workspace_submits_refused",
            "Submits refused for a workspace limit, by workspace and limit",
            ["workspace", "limit"],
            registry=self.registry,
        )
        self._workspaces: dict[str, str] = {}  # workspace -> its label value
        self.streams_open = Gauge(
            "graphnursery_streams_open",
            "Event streams (GET /jobs/{id}/events) open now",
            registry=self.registry,
        )

    def graph_served(self, graph: str) -> None:
        """Show a served graph's job counters from the start, at 0."""
        self.jobs_submitted.labels(graph)
        for status in JobStatus:
            if status.is_terminal:
                self._finished.labels(graph, status.value)

    def workspace_label(self, workspace: str) -> str:
        """The workspace's label value: itself for the first MAX_WORKSPACE_LABELS seen,
        ``other`` past them (a label's values are kept for ever: they are bounded)."""
        label = self._workspaces.get(workspace)
        if label is None:
            label = workspace if len(self._workspaces) < MAX_WORKSPACE_LABELS else OTHER
            if label != OTHER:
                self._workspaces[workspace] = label
        return label

    def job_submitted(self, job: Job) -> None:
        self.jobs_submitted.labels(job.graph).inc()
        self._workspace_submitted.labels(self.workspace_label(job.workspace)).inc()

    def submit_refused(self, workspace: str, limit: str) -> None:
        """A submit refused for a workspace limit (``max_queued``, ``rate``)."""
        self.jobs_rejected.labels(limit).inc()
        self._workspace_refused.labels(self.workspace_label(workspace), limit).inc()

    def job_started(self, job: Job) -> None:
        if job.started_at is not None:
            self.queue_wait.observe(max(job.started_at - job.created_at, 0.0))

    def job_finished(self, job: Job) -> None:
        self._finished.labels(job.graph, job.status.value).inc()
        self._workspace_finished.labels(self.workspace_label(job.workspace), job.status.value).inc()
        if job.events_dropped:
            self.events_dropped.inc(job.events_dropped)
        duration = job.duration
        if duration is not None:
            self.job_duration.observe(max(duration, 0.0))

    def watch(self, statistics: Callable[[], Mapping[str, PoolStatistics]]) -> Callable[[], None]:
        """Report ``statistics()``'s gauges (by graph) at each scrape while the engine runs;
        call the result to stop."""
        collector = _PoolCollector(statistics)
        self.registry.register(collector)
        return lambda: self.registry.unregister(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _PoolCollector(Collector):
    def __init__(self, statistics: Callable[[], Mapping[str, PoolStatistics]]) -> None:
        self._statistics = statistics

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        by_graph = self._statistics()
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            "queue_depth": GaugeMetricFamily(
                "graphnursery_queue_depth", "Jobs waiting for a worker", labels=["graph"]
            ),
            "workers_busy": GaugeMetricFamily(
                "graphnursery_workers_busy", "Worker processes running a job", labels=["graph"]
            ),
            "workers_idle": GaugeMetricFamily(
                "graphnursery_workers_idle", "Worker processes free for a job", labels=["graph"]
            ),
            "worker_restarts": CounterMetricFamily(
                "graphnursery_worker_restarts",
                "Worker processes replaced after a crash or a kill",
                labels=["graph"],
            ),
        }
        for graph, stats in by_graph.items():
            for name, family in families.items():
                family.add_metric([graph], getattr(stats, name))
        yield from families.values()
