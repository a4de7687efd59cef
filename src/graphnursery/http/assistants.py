"""The first routes of the LangGraph Platform API (what ``langgraph-sdk`` clients call):
``GET /ok``, ``GET /info``, and assistants, one per served graph.

An assistant's id is the uuid5 of its graph's name in the namespace LangGraph's own server
uses (so a client that computed it, or stored it, finds the same assistant here), and the
graph's name is accepted wherever an assistant id is. ``POST /assistants/search`` takes
``graph_id``, ``name``, ``metadata``, ``limit`` and ``offset``, and sets
``X-Pagination-Next`` when more follow. Assistants with their own ``config`` (created with
``POST /assistants``) are for later: each served graph is one assistant. Their runs are
:mod:`.runs`'s, their threads :mod:`.threads`'.
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
from ..lanes import GraphInfo
from .errors import invalid_body
from .openapi import answers
from .parsing import load_json_object
from .pipeline import Pipeline
from .routes import json_response

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
        query = await read_body(pipeline, AssistantSearch, empty={})
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

    @app.get("/assistants/<assistant>/graph")
    @document(responses=answers(AnyJson, 401, 404, 422))
    async def get_assistant_graph(assistant: str) -> Response:
        """The graph's nodes and edges, as LangGraph draws them (``xray``: its subgraphs')."""
        raw = request.args.get("xray", "false").lower()
        xray: bool | int = int(raw) if raw.isdigit() else raw in ("true", "1")
        return await describe(assistant, "graph", {"xray": xray})

    @app.get("/assistants/<assistant>/schemas")
    @document(responses=answers(AnyJson, 401, 404, 422))
    async def get_assistant_schemas(assistant: str) -> Response:
        """The graph's input, output, state, config and context JSON schemas."""
        return await describe(assistant, "schemas", {})

    async def describe(assistant: str, op: str, args: dict[str, Any]) -> Response:
        graph = find_assistant(engine(), assistant)
        answer = await engine().threads.state_op(graph.name, op, {**args, "graph_id": graph.name})
        return json_response(orjson.Fragment(answer))

    @app.get("/assistants/<assistant>")
    @document(responses=answers(AssistantModel, 401, 404))
    async def get_assistant(assistant: str) -> Response:
        """An assistant, by its id or its graph's name."""
        return json_response(assistant_body(find_assistant(engine(), assistant), since))


Body = TypeVar("Body", bound=BaseModel)


async def read_body(
    pipeline: Pipeline, model: type[Body], empty: dict[str, Any] | None = None
) -> Body:
    """The request's JSON body as ``model`` (an empty body is ``empty``, when given);
    400 naming each bad field."""
    return parse_body(await pipeline.read_body(request.body), model, empty)


def parse_body(raw: bytes, model: type[Body], empty: dict[str, Any] | None = None) -> Body:
    """A JSON body as ``model`` (an empty body is ``empty``, when given); 400 naming each
    bad field."""
    data = empty if empty is not None and not raw.strip() else load_json_object(raw)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_body(exc) from None


class AnyJson(RootModel[Any]):
    pass


def find_assistant(served: AnyEngine, assistant: str) -> GraphInfo:
    for graph in served.graphs():
        if assistant in (graph.name, assistant_id(graph.name)):
            return graph
    raise GraphNotFound(assistant)
