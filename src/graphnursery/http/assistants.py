"""The first routes of the LangGraph Platform API (what ``langgraph-sdk`` clients call):
``GET /ok``, ``GET /info``, and assistants, one per served graph.

An assistant's id is the uuid5 of its graph's name in the namespace LangGraph's own server
uses (so a client that computed it, or stored it, finds the same assistant here), and the
graph's name is accepted wherever an assistant id is. ``POST /assistants/search`` takes
``graph_id``, ``name``, ``metadata``, ``limit`` and ``offset``, and sets
``X-Pagination-Next`` when more follow. Assistants with their own ``config`` (created with
``POST /assistants``) are for later: each served graph is one assistant. ``POST /runs/wait``
runs one statelessly, ``POST /runs/stream`` streams one (threads are for later).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, Field, RootModel, ValidationError
from quart import Quart, Response, request
from quart_schema import document

from .. import __version__
from ..engine_thread import AnyEngine
from ..errors import GraphNotFound
from ..events import parse_stream_mode
from ..jobs import JobError, JobStatus
from ..lanes import GraphInfo
from . import caller
from .errors import bad_field, invalid_body
from .openapi import answers, errors
from .parsing import load_json_object
from .pipeline import Pipeline
from .routes import json_response, stream_response
from .schemas import ErrorModel, StreamMode
from .sse import LangGraphFraming, Streams

#: The namespace of LangGraph's assistant ids: ``uuid5(NAMESPACE_GRAPH, graph_id)``.
NAMESPACE_GRAPH = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


def assistant_id(graph: str) -> str:
    return str(uuid.uuid5(NAMESPACE_GRAPH, graph))


class AssistantModel(BaseModel):
    assistant_id: str
    graph_id: str
    name: str
    description: str | None = None
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]
    version: int
    created_at: str
    updated_at: str


class AssistantList(RootModel[list[AssistantModel]]):
    pass


class AssistantSearch(BaseModel):
    graph_id: str | None = None
    name: str | None = None
    metadata: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)


class Ok(BaseModel):
    ok: bool


class Info(BaseModel):
    version: str
    flags: dict[str, bool]


def assistant_body(graph: GraphInfo, since: str) -> dict[str, Any]:
    return {
        "assistant_id": assistant_id(graph.name),
        "graph_id": graph.name,
        "name": graph.name,
        "description": None,
        "config": {},
        "context": {},
        "metadata": {"created_by": "system", "graph_version": graph.version},
        "version": 1,
        "created_at": since,
        "updated_at": since,
    }


def add_assistant_routes(app: Quart, engine: Callable[[], AnyEngine], pipeline: Pipeline) -> None:
    since = datetime.now(UTC).isoformat()  # assistants are the server's graphs: since it started

    @app.get("/ok")
    @document(responses=answers(Ok))  # open, as /health: a probe
    async def ok() -> Response:
        return json_response({"ok": True})

    @app.get("/info")
    @document(responses=answers(Info, 401))
    async def info() -> Response:
        """What this server serves of the LangGraph Platform API."""
        flags = {"assistants": True, "crons": False, "langsmith": False}
        return json_response({"version": __version__, "flags": flags})

    @app.post("/assistants/search")
    @document(request=AssistantSearch, responses=answers(AssistantList, 400, 401))
    async def search_assistants() -> Response:
        """The assistants (one per served graph) that match, a page at a time."""
        query = await _read_body(pipeline, AssistantSearch, empty={})
        limit, offset, metadata = query.limit, query.offset, query.metadata or {}
        found = [
            assistant_body(graph, since)
            for graph in engine().graphs()
            if query.graph_id in (None, graph.name) and query.name in (None, graph.name)
        ]
        found = [a for a in found if all(a["metadata"].get(k) == v for k, v in metadata.items())]
        page = found[offset : offset + limit]
        headers = {"X-Pagination-Next": str(offset + limit)} if offset + limit < len(found) else {}
        return json_response(page, headers=headers)

    @app.get("/assistants/<assistant>")
    @document(responses=answers(AssistantModel, 401, 404))
    async def get_assistant(assistant: str) -> Response:
        """An assistant, by its id or its graph's name."""
        return json_response(assistant_body(_find(engine(), assistant), since))


class RunCreate(BaseModel):
    """A run of an assistant (LangGraph's ``RunCreateStateless``): what is read of it."""

    assistant_id: str
    input: Any = None
    config: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


def add_stateless_run_routes(
    app: Quart, engine: Callable[[], AnyEngine], pipeline: Pipeline, wait_limit: float
) -> None:
    """``POST /runs/wait``: a stateless run (no thread) of an assistant, as a job of its
    graph; the answer is the graph's output, or ``{"__error__": {"error", "message"}}`` as
    LangGraph's server answers a run that failed (the SDK raises it)."""

    @app.post("/runs/wait")
    @document(request=RunCreate, responses=answers(AnyJson, 400, 401, 404, 429, 503))
    async def wait_run() -> Response:
        run = await _read_body(pipeline, RunCreate)
        graph = _find(engine(), run.assistant_id)
        served = engine()
        job = await served.submit(run.input, graph=graph.name, workspace=caller.workspace())
        done = await served.wait(job.id, wait_limit, caller.visible())
        headers = {"Content-Location": f"/runs/{job.id}"}
        if done.status is JobStatus.COMPLETED:
            # As the graph returned it: not the seed's ``content`` convenience of job bodies.
            return json_response(orjson.Fragment(done.result_json or b"null"), headers=headers)
        error = done.error or JobError(done.status.value, f"the run ended {done.status.value}")
        body = {"__error__": {"error": error.type, "message": error.message}}
        return json_response(body, headers=headers)


Body = TypeVar("Body", bound=BaseModel)


async def _read_body(
    pipeline: Pipeline, model: type[Body], empty: dict[str, Any] | None = None
) -> Body:
    """The request's JSON body as ``model`` (an empty body is ``empty``, when given);
    400 naming each bad field."""
    raw = await pipeline.read_body(request.body)
    data = empty if empty is not None and not raw.strip() else load_json_object(raw)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_body(exc) from None


class AnyJson(RootModel[Any]):
    pass


def _find(served: AnyEngine, assistant: str) -> GraphInfo:
    for graph in served.graphs():
        if assistant in (graph.name, assistant_id(graph.name)):
            return graph
    raise GraphNotFound(assistant)


class RunStream(RunCreate):
    stream_mode: StreamMode = "values"  # messages-tuple is messages (see _MODE_NAMES)


def add_stateless_stream_route(
    app: Quart, engine: Callable[[], AnyEngine], pipeline: Pipeline, streams: Streams
) -> None:
    """``POST /runs/stream``: a stateless run's events, as LangGraph's SDK reads them
    (``metadata`` first, each mode's events under its name, ``error`` if it failed)."""

    @app.post("/runs/stream")
    @document(request=RunStream, responses={200: (ErrorModel, None), **errors(400, 401, 404)})
    async def stream_run() -> Response:
        run = await _read_body(pipeline, RunStream)
        wanted = [run.stream_mode] if isinstance(run.stream_mode, str) else run.stream_mode
        # LangGraph's messages-tuple is what graphnursery's messages mode streams.
        modes = [_MODE_NAMES.get(mode, mode) for mode in wanted]
        try:
            stream_mode = parse_stream_mode(modes)
        except ValueError as exc:
            raise bad_field("invalid_body", "stream_mode", str(exc), "value_error") from None
        served = engine()
        graph = _find(served, run.assistant_id)
        job = await served.submit(
            run.input, graph=graph.name, stream_mode=stream_mode, workspace=caller.workspace()
        )
        stream = streams.of_submitted(job, LangGraphFraming())
        return stream_response(stream, {"Content-Location": f"/runs/{job.id}"})


_MODE_NAMES = {"messages-tuple": "messages"}
