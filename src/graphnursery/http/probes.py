"""What the server says about itself: health, the probes, statistics and metrics."""

from __future__ import annotations

import time
from typing import Any

import trio
from quart import Quart, Response
from quart_schema import document

from ..engine import EngineStatistics
from ..jobs import JobStatus
from ..lifecycle import Lifecycle
from ..metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ..metrics import Metrics
from . import caller
from .openapi import answers, errors
from .routes import json_response
from .schemas import Health, Live, Ready, Stats, iso

#: While not serving: a probe's answer and how soon to ask again.
NOT_SERVING = 503
NOT_SERVING_HEADERS = {"Retry-After": "5"}


def seed_stats(stats: EngineStatistics) -> dict[str, Any]:
    """``/health``'s stats, in the seed's shape."""
    return {
        "queued": stats.queued,
        "running": stats.running,
        "completed": stats.completed,
        # Seed clients know only four statuses: every unsuccessful end counts as failed.
        "failed": stats.failed + stats.timed_out + stats.crashed,
        "total": stats.total,
        "workers": stats.workers,
        "availableWorkers": stats.available_workers,
    }


def full_stats(stats: EngineStatistics, queue_length: int) -> dict[str, Any]:
    """``/stats``' body (of the server, or of one graph)."""
    body = seed_stats(stats)
    body.update(
        {
            "byStatus": {status.value: getattr(stats, status.value) for status in JobStatus},
            "queueLength": queue_length,
            "queueCapacity": stats.queue_capacity,
            "workerRestarts": stats.worker_restarts,
            "uptime": round(stats.uptime, 3),
        }
    )
    return body


#: Seconds /health waits for the store's counts before it answers 503.
HEALTH_STATS_TIMEOUT = 2.0


def add_probe_routes(app: Quart, lifecycle: Lifecycle, metrics: Metrics) -> None:
    started_monotonic = time.monotonic()

    def not_serving() -> str | None:
        """Why the server takes no jobs (``draining``, ``unavailable``, ``store_unavailable``);
        None when it does."""
        engine = lifecycle.engine
        if engine is not None and engine.accepting:
            return None if engine.store_available else "store_unavailable"
        return "draining" if engine is not None and engine.draining else "unavailable"

    @app.get("/health")
    @document(responses={200: (Health, None), 503: (Health, None)})
    async def health() -> Response:
        body: dict[str, Any] = {
            "timestamp": iso(time.time()),
            "uptime": round(time.monotonic() - started_monotonic, 3),
        }
        reason = not_serving()
        if reason is not None:
            return json_response({"status": reason, **body}, NOT_SERVING, NOT_SERVING_HEADERS)
        # The counts come from the store: one that stopped answering is not healthy, and a
        # health check must answer while its operations retry.
        with trio.move_on_after(HEALTH_STATS_TIMEOUT):
            stats = await lifecycle.require_engine().statistics()
            graphs = {name: seed_stats(each) for name, each in stats.graphs.items()}
            return json_response(
                {"status": "ok", **body, "stats": seed_stats(stats), "graphs": graphs}
            )
        body = {"status": "store_unavailable", **body}
        return json_response(body, NOT_SERVING, NOT_SERVING_HEADERS)

    @app.get("/ready")
    @document(responses={200: (Ready, None), 503: (Ready, None)})
    async def ready() -> Response:
        reason = not_serving()
        if reason is not None:
            body = {"status": reason, "ready": False}
            return json_response(body, NOT_SERVING, NOT_SERVING_HEADERS)
        return json_response({"status": "ready", "ready": True})

    @app.get("/live")
    @document(responses={200: (Live, None)})
    async def live() -> Response:
        return json_response({"status": "alive", "alive": True})

    @app.get("/stats")
    @document(responses=answers(Stats, 401, 503))
    async def stats() -> Response:
        """The server's counts and workers in total, and each graph's under ``graphs``."""
        engine = lifecycle.require_engine()
        stats = await engine.statistics()
        body = full_stats(stats, engine.queue_length())
        body["graphs"] = {
            name: full_stats(each, engine.queue_length(name)) for name, each in stats.graphs.items()
        }
        seen = caller.visible()  # an admin: every workspace's; others: their own
        body["workspaces"] = {
            workspace: {"queued": queued}
            for workspace, queued in sorted(engine.queued_by_workspace().items())
            if seen in (None, workspace)
        }
        return json_response(body)

    @app.get("/metrics")
    @document(responses=errors(401))
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), content_type=METRICS_CONTENT_TYPE)
