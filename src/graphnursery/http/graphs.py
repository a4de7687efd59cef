"""The graph routes: the graphs served here, their versions, reloads, and their jobs.

``GET /graphs``, ``GET /graphs/{name}``, ``GET /graphs/{name}/versions``,
``POST /graphs/{name}/reload`` (a source that fails to load: 409 ``graph_load_failed``,
the live version stays) and ``POST /graphs/{name}/jobs`` (``POST /jobs``' bodies and
answers, for that graph). An unknown graph: 404 ``graph_not_found``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field
from quart import Quart, Response, request
from quart_schema import document

from ..engine_thread import AnyEngine
from ..lanes import GraphInfo, Reloaded, VersionInfo
from .handlers import JobHandlers
from .openapi import answers, waiting_submit
from .pipeline import Pipeline
from .routes import json_response, submit_to_graph
from .schemas import JobModel, Submit, iso
from .sse import Streams


class VersionModel(BaseModel):
    version: str = Field(description="the content hash of the graph's source")
    tag: str | None = None
    loadedAt: str
    retiredAt: str | None = Field(None, description="when another version replaced it")
    live: bool


class GraphModel(BaseModel):
    name: str
    source: str
    version: str = Field(description="the live version")
    tag: str | None = None
    default: bool = Field(description="whether /execute and POST /jobs serve this graph")
    workers: int
    busyWorkers: int
    queueLength: int
    queueCapacity: int
    jobTimeout: float
    maxAttempts: int


class GraphList(BaseModel):
    graphs: list[GraphModel]


class VersionList(BaseModel):
    graph: str
    live: str
    versions: list[VersionModel]


class ReloadModel(BaseModel):
    graph: str
    version: str = Field(description="the live version now")
    previous: str
    changed: bool = Field(description="False when the source had not changed")


class ReloadList(BaseModel):
    graphs: list[ReloadModel]


def version_body(version: VersionInfo) -> dict[str, Any]:
    return {
        "version": version.version,
        "tag": version.tag or None,
        "loadedAt": iso(version.loaded_at),
        "retiredAt": None if version.retired_at is None else iso(version.retired_at),
        "live": version.retired_at is None,
    }


def graph_body(graph: GraphInfo) -> dict[str, Any]:
    return {
        "name": graph.name,
        "source": graph.source,
        "version": graph.version,
        "tag": graph.tag or None,
        "default": graph.default,
        "workers": graph.workers,
        "busyWorkers": graph.busy_workers,
        "queueLength": graph.queue_length,
        "queueCapacity": graph.queue_capacity,
        "jobTimeout": graph.job_timeout,
        "maxAttempts": graph.max_attempts,
    }


def reload_body(reloaded: Reloaded) -> dict[str, Any]:
    return {
        "graph": reloaded.graph,
        "version": reloaded.version,
        "previous": reloaded.previous,
        "changed": reloaded.changed,
    }


def add_graph_routes(
    app: Quart,
    engine: Callable[[], AnyEngine],
    handlers: JobHandlers,
    streams: Streams,
    pipeline: Pipeline,
) -> None:
    @app.get("/graphs")
    @document(responses=answers(GraphList, 401, 503))
    async def list_graphs() -> Response:
        """The graphs served here, the default one first."""
        return json_response({"graphs": [graph_body(g) for g in engine().graphs()]})

    @app.get("/graphs/<name>")
    @document(responses=answers(GraphModel, 401, 404, 503))
    async def get_graph(name: str) -> Response:
        return json_response(graph_body(engine().graph(name)))

    @app.get("/graphs/<name>/versions")
    @document(responses=answers(VersionList, 401, 404, 503))
    async def graph_versions(name: str) -> Response:
        """The versions of the graph this server has run, oldest first."""
        graph = engine().graph(name)
        versions = [version_body(v) for v in graph.versions]
        return json_response({"graph": graph.name, "live": graph.version, "versions": versions})

    @app.post("/graphs/<name>/reload")
    @document(responses=answers(ReloadModel, 401, 404, 409, 503))
    async def reload_graph(name: str) -> Response:
        """Load the graph's source again. A changed source becomes the live version, in new
        worker processes: running jobs finish on the old ones, queued jobs run on the new
        one. A source that fails to load is refused (409, with the error) and the live
        version stays."""
        (reloaded,) = await engine().reload(name)
        return json_response(reload_body(reloaded))

    @app.post("/graphs/<name>/jobs")
    @waiting_submit(Submit, JobModel, 404)
    async def create_graph_job(name: str) -> Response:
        """Submit a job to this graph: the bodies and answers of ``POST /jobs``."""
        body = await pipeline.read_body(request.body)
        return await submit_to_graph(handlers, streams, body, name)
