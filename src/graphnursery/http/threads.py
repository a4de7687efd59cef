"""The LangGraph Platform API's threads (see :mod:`graphnursery.threads`):
``POST /threads``, ``GET``/``PATCH``/``DELETE /threads/{thread_id}``, ``POST
/threads/search``, and a thread's state: ``GET /threads/{id}/state`` (``.../{checkpoint_id}``,
``POST .../state/checkpoint``), ``POST /threads/{id}/state`` (an update), ``POST`` / ``GET
/threads/{id}/history``.

A thread's record answers what it is (its metadata, status, and the values its last run
ended with); its state is read from LangGraph's checkpoints, in a worker process of the
graph that last ran on it (the ``graph_id`` its runs stamp into its metadata).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from quart import Quart, Response, request
from quart_schema import document

from ..engine_thread import AnyEngine
from ..errors import ThreadStateError
from ..store.threads import ThreadQuery, ThreadRecord
from . import caller
from .assistants import AnyJson, read_body
from .errors import HttpError, bad_field
from .openapi import answers
from .pipeline import Pipeline
from .routes import json_response
from .run_handlers import iso


class ThreadCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    thread_id: str | None = Field(None, min_length=1, max_length=200)
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"


class ThreadPatch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    metadata: dict[str, Any] = Field(default_factory=dict)


class ThreadSearch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    ids: list[str] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)


class ThreadModel(BaseModel):
    thread_id: str
    created_at: str
    updated_at: str
    metadata: dict[str, Any]
    status: str
    values: Any
    interrupts: dict[str, Any]


class StateCheckpoint(BaseModel):
    model_config = ConfigDict(extra="ignore")
    checkpoint: dict[str, Any] | None = None
    subgraphs: bool = False


class StateUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    values: Any = None
    as_node: str | None = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = None


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    limit: int = Field(10, ge=1, le=1000)
    before: dict[str, Any] | str | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None


def thread_body(thread: ThreadRecord) -> dict[str, Any]:
    return {
        "thread_id": thread.thread_id,
        "created_at": iso(thread.created_at),
        "updated_at": iso(thread.updated_at),
        "metadata": thread.metadata,
        "status": thread.status,
        "config": {},
        "values": orjson.Fragment(thread.values or b"null"),
        "interrupts": orjson.Fragment(thread.interrupts),
    }


def empty_state(thread_id: str) -> dict[str, Any]:
    """The state of a thread no run has touched."""
    checkpoint = {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": None}
    return {
        "values": {},
        "next": [],
        "checkpoint": {**checkpoint, "checkpoint_map": None},
        "metadata": {},
        "created_at": None,
        "parent_checkpoint": None,
        "tasks": [],
        "interrupts": [],
    }


def add_thread_routes(app: Quart, engine: Callable[[], AnyEngine], pipeline: Pipeline) -> None:
    async def graph_of(thread_id: str) -> str | None:
        """The graph that ran on the thread last (None: none did yet)."""
        thread = await engine().threads.get(thread_id, caller.visible())
        graph = thread.metadata.get("graph_id")
        return graph if isinstance(graph, str) else None

    async def state_op(thread_id: str, op: str, args: dict[str, Any]) -> Response | None:
        """The answer of a worker of the thread's graph; None when the thread has none to
        give: no run yet, or its graph is not LangGraph's (a plain callable keeps no
        checkpoints), for a read."""
        graph = await graph_of(thread_id)
        if graph is None:
            return None
        try:
            answer = await engine().threads.state_op(graph, op, {**args, "thread_id": thread_id})
        except ThreadStateError as exc:
            if exc.error_type == "NotLangGraph" and op != "update":
                return None
            raise
        return json_response(orjson.Fragment(answer))

    async def no_state(thread_id: str) -> Response:
        """A thread with no checkpoints: the values its last run ended with, if any."""
        thread = await engine().threads.get(thread_id, caller.visible())
        values = orjson.loads(thread.values) if thread.values else {}
        return json_response({**empty_state(thread_id), "values": values})

    @app.post("/threads")
    @document(request=ThreadCreate, responses=answers(ThreadModel, 400, 401, 409))
    async def create_thread() -> Response:
        """A new thread (``if_exists``: ``raise`` a 409, or ``do_nothing``)."""
        body = await read_body(pipeline, ThreadCreate, empty={})
        thread = await engine().threads.create(
            caller.workspace(), body.thread_id, body.metadata, body.if_exists
        )
        return json_response(thread_body(thread))

    @app.post("/threads/search")
    @document(request=ThreadSearch, responses=answers(AnyJson, 400, 401))
    async def search_threads() -> Response:
        """The caller's threads that match, newest first, a page at a time."""
        body = await read_body(pipeline, ThreadSearch, empty={})
        query = ThreadQuery(
            caller.visible(),
            body.metadata or {},
            body.values or {},
            body.ids,
            body.status,
            body.limit,
            body.offset,
        )
        found = await engine().threads.search(query)
        return json_response([thread_body(thread) for thread in found])

    @app.get("/threads/<thread_id>")
    @document(responses=answers(ThreadModel, 401, 404))
    async def get_thread(thread_id: str) -> Response:
        return json_response(thread_body(await engine().threads.get(thread_id, caller.visible())))

    @app.patch("/threads/<thread_id>")
    @document(request=ThreadPatch, responses=answers(ThreadModel, 400, 401, 404))
    async def patch_thread(thread_id: str) -> Response:
        """Merge ``metadata`` into the thread's."""
        body = await read_body(pipeline, ThreadPatch)
        thread = await engine().threads.update(thread_id, caller.visible(), body.metadata)
        return json_response(thread_body(thread))

    @app.delete("/threads/<thread_id>")
    @document(responses=answers(AnyJson, 401, 404, ok=(204,)))
    async def delete_thread(thread_id: str) -> Response:
        """Delete the thread: its runs stop and go, and its checkpoints."""
        await engine().threads.delete(thread_id, caller.visible())
        return Response(b"", 204, content_type="application/json")

    @app.get("/threads/<thread_id>/state")
    @document(responses=answers(AnyJson, 401, 404, 422))
    async def get_state(thread_id: str) -> Response:
        """The thread's state now (``subgraphs=true``: its subgraphs' too)."""
        args = {"subgraphs": request.args.get("subgraphs") in ("true", "1")}
        return await state_op(thread_id, "state", args) or await no_state(thread_id)

    @app.get("/threads/<thread_id>/state/<checkpoint_id>")
    @document(responses=answers(AnyJson, 401, 404, 422))
    async def get_state_at(thread_id: str, checkpoint_id: str) -> Response:
        """The thread's state at one of its checkpoints."""
        args = {"checkpoint": {"checkpoint_id": checkpoint_id}}
        return await state_op(thread_id, "state", args) or await no_state(thread_id)

    @app.post("/threads/<thread_id>/state/checkpoint")
    @document(request=StateCheckpoint, responses=answers(AnyJson, 400, 401, 404, 422))
    async def post_state_at(thread_id: str) -> Response:
        body = await read_body(pipeline, StateCheckpoint, empty={})
        args = {"checkpoint": body.checkpoint or {}, "subgraphs": body.subgraphs}
        return await state_op(thread_id, "state", args) or await no_state(thread_id)

    @app.post("/threads/<thread_id>/state")
    @document(request=StateUpdate, responses=answers(AnyJson, 400, 401, 404, 422))
    async def update_state(thread_id: str) -> Response:
        """Change the thread's state (``values``, ``as_node``): answers the new checkpoint."""
        body = await read_body(pipeline, StateUpdate)
        checkpoint = dict(body.checkpoint or {})
        if body.checkpoint_id:
            checkpoint["checkpoint_id"] = body.checkpoint_id
        args = {"values": body.values, "as_node": body.as_node, "checkpoint": checkpoint}
        answer = await state_op(thread_id, "update", args)
        if answer is None:
            message = f"thread {thread_id!r} has had no run: which graph's state it is is unknown"
            raise HttpError(409, "conflict", message)
        return answer

    async def history(thread_id: str, query: HistoryQuery) -> Response:
        before = query.before
        args = {
            "limit": query.limit,
            "metadata": query.metadata,
            "checkpoint": query.checkpoint,
            "before": {"checkpoint_id": before} if isinstance(before, str) else before,
        }
        answer = await state_op(thread_id, "history", args)
        return answer or json_response([])

    @app.post("/threads/<thread_id>/history")
    @document(request=HistoryQuery, responses=answers(AnyJson, 400, 401, 404, 422))
    async def post_history(thread_id: str) -> Response:
        """The thread's states, newest first (``limit``, ``before``, ``metadata``)."""
        return await history(thread_id, await read_body(pipeline, HistoryQuery, empty={}))

    @app.get("/threads/<thread_id>/history")
    @document(responses=answers(AnyJson, 400, 401, 404, 422))
    async def get_history(thread_id: str) -> Response:
        raw = request.args.get("limit", "10")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise bad_field("invalid_query", "limit", "must be an integer from 1 to 1000", "query")
        return await history(
            thread_id, HistoryQuery(limit=int(raw), before=request.args.get("before"))
        )


__all__ = ["add_thread_routes"]
