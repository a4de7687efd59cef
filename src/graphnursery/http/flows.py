"""The flow routes: JSON flow graphs kept in the store, immutable per version, with a live
pointer (see ``graphnursery.stored_flows``).

``POST /flows`` (201 a new version, 200 a body already saved; either way it becomes
live), ``GET /flows``, ``GET /flows/{name}``, ``GET /flows/{name}/versions``,
``PUT /flows/{name}/live {"version"}`` and ``POST /flows/{name}/jobs`` (``POST /jobs``'
bodies and answers). A flow that does not validate: 400 ``invalid_flow``, with a ``detail``
item naming each node or edge at fault.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from pydantic import BaseModel, Field
from quart import Quart, Response, request
from quart_schema import document

from ..engine_thread import AnyEngine
from ..store import FlowInfo, FlowVersion
from .errors import bad_field
from .handlers import JobHandlers
from .openapi import answers, waiting_submit
from .parsing import load_json_object
from .pipeline import Pipeline
from .routes import json_response, submit_to_graph
from .schemas import JobModel, Submit, iso
from .sse import Streams


class FlowNode(BaseModel):
    id: str
    type: str = Field(description="'package.module:fn', 'file.py:fn', or a built-in: http, graph")
    config: dict[str, Any] | None = None
    timeout: float | None = Field(None, description="seconds one attempt of the node may take")
    max_attempts: int | None = Field(None, description="attempts the node gets (1-100)")


class FlowEdge(BaseModel):
    model_config = {"populate_by_name": True}

    source: str = Field(alias="from")
    to: str
    condition: str | None = Field(
        None, description="a JMESPath expression over the upstream output"
    )


class FlowBody(BaseModel):
    """A flow: a DAG of nodes, each node's output the next one's input."""

    name: str = Field(min_length=1)
    nodes: list[FlowNode] = Field(min_length=1)
    edges: list[FlowEdge] = []


class FlowVersionModel(BaseModel):
    name: str
    version: str = Field(description="the content hash of the flow's definition")
    number: int = Field(description="1 for the flow's first version, then 2, 3...")
    live: bool
    createdAt: str
    definition: dict[str, Any] | None = Field(None, description="in GET /flows/{name}")


class FlowSummary(BaseModel):
    name: str
    live: str
    liveNumber: int
    versions: int
    createdAt: str
    updatedAt: str


class FlowList(BaseModel):
    flows: list[FlowSummary]


class FlowVersions(BaseModel):
    flow: str
    live: str
    versions: list[FlowVersionModel]


class LivePointer(BaseModel):
    version: str = Field(min_length=1, description="one of the flow's versions")


def version_body(flow: FlowVersion, *, definition: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": flow.name,
        "version": flow.version,
        "number": flow.number,
        "live": flow.live,
        "createdAt": iso(flow.created_at),
    }
    if definition:
        body["definition"] = orjson.Fragment(flow.definition)
    return body


def summary_body(info: FlowInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "live": info.live,
        "liveNumber": info.live_number,
        "versions": info.versions,
        "createdAt": iso(info.created_at),
        "updatedAt": iso(info.updated_at),
    }


def add_flow_routes(
    app: Quart,
    engine: Callable[[], AnyEngine],
    handlers: JobHandlers,
    streams: Streams,
    pipeline: Pipeline,
) -> None:
    async def body() -> bytes:
        return await pipeline.read_body(request.body)

    @app.post("/flows")
    @document(
        request=FlowBody, responses=answers(FlowVersionModel, 400, 401, 409, 503, ok=(200, 201))
    )
    async def save_flow() -> Response:
        """Save a flow. A body not saved before is a new version (201); one that was is that
        version again (200). Either way it becomes the live version."""
        saved, created = await engine().flows.save(load_json_object(await body()))
        return json_response(version_body(saved, definition=True), 201 if created else 200)

    @app.get("/flows")
    @document(responses=answers(FlowList, 401, 503))
    async def list_flows() -> Response:
        return json_response(
            {"flows": [summary_body(f) for f in await engine().flows.list_flows()]}
        )

    @app.get("/flows/<name>")
    @document(responses=answers(FlowVersionModel, 401, 404, 503))
    async def get_flow(name: str) -> Response:
        """The flow's live version, with its definition (``?version=`` for another)."""
        flow = await engine().flows.get(name, request.args.get("version") or None)
        return json_response(version_body(flow, definition=True))

    @app.get("/flows/<name>/versions")
    @document(responses=answers(FlowVersions, 401, 404, 503))
    async def flow_versions(name: str) -> Response:
        versions = await engine().flows.versions(name)
        live = next(v.version for v in versions if v.live)
        listed = [version_body(v) for v in versions]
        return json_response({"flow": name, "live": live, "versions": listed})

    @app.put("/flows/<name>/live")
    @document(request=LivePointer, responses=answers(FlowVersionModel, 400, 401, 404, 503))
    async def set_live(name: str) -> Response:
        """Point the flow's live version at one of its versions (rolling back is this):
        queued jobs run on it; running ones finish on the version they started on."""
        version = load_json_object(await body()).get("version")
        if not isinstance(version, str) or not version:
            raise bad_field("invalid_body", "version", "a version id of the flow", "string")
        return json_response(version_body(await engine().flows.set_live(name, version)))

    @app.post("/flows/<name>/jobs")
    @waiting_submit(Submit, JobModel, 404)
    async def create_flow_job(name: str) -> Response:
        """Run the flow's live version: the bodies and answers of ``POST /jobs``."""
        await engine().flows.serve(name)
        return await submit_to_graph(handlers, streams, await body(), name)
