"""The OpenAPI document: quart-schema's, plus what depends on this server's config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from quart import current_app
from quart_schema import OpenAPIProvider, document

from ..config import Config
from ..lifecycle import Lifecycle
from ..metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .schemas import ErrorModel, SubmitQuery

#: How an event stream is documented: each event's fields (``data`` is JSON text; the
#: format is in the route's description).
EVENTS: dict[str, Any] = {
    "schema": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "event": {"type": "string"},
            "data": {"type": "string"},
        },
        "required": ["id", "event", "data"],
    }
}
#: A route function, as quart-schema's decorators take and give it back.
Route = Callable[..., Any]


#: The LangGraph API's streams of runs, (path, method).
LANGGRAPH_STREAMS = (
    ("/runs/stream", "post"),
    ("/threads/{thread_id}/runs/stream", "post"),
    ("/threads/{thread_id}/runs/{run_id}/stream", "get"),
)


class OpenAPI(OpenAPIProvider):
    """quart-schema's document, plus what it cannot say: /metrics answers Prometheus text."""

    def schema(self) -> dict[str, Any]:
        document = super().schema()
        # Limits that come from this server's config, not from the models.
        config: Config = Lifecycle.of(current_app).config
        for name in ("GeneralSubmit", "SeedSubmit"):
            timeout = document["components"]["schemas"][name]["properties"]["timeoutSeconds"]
            timeout["anyOf"][0]["maximum"] = config.max_job_timeout
        for path in document["paths"].values():
            for operation in path.values():
                if "requestBody" in operation:
                    operation["requestBody"]["required"] = True
                for parameter in operation.get("parameters", []):
                    if parameter["name"] == "wait":
                        parameter["schema"]["anyOf"][0]["maximum"] = config.max_wait
        paths = document.get("paths", {})
        for path in ("/jobs", "/execute"):  # ?stream=true answers the job's stream
            submit = paths.get(path, {}).get("post")
            if submit is not None:
                submit["responses"][200].setdefault("content", {})["text/event-stream"] = EVENTS
        for path, method in LANGGRAPH_STREAMS:
            run_stream = paths.get(path, {}).get(method)
            if run_stream is not None:
                run_stream["responses"][200] = {
                    "description": "Server-Sent Events, as LangGraph's SDK reads a run's stream",
                    "content": {"text/event-stream": EVENTS},
                }
        for path in document.get("paths", {}).values():
            for operation in path.values():
                for status in (204, "204"):  # no content: a deletion
                    if status in operation.get("responses", {}):
                        operation["responses"][status] = {"description": "done: no content"}
        for path in ("/jobs/{job_id}/events", "/threads/{thread_id}/runs/{run_id}/stream"):
            stream = paths.get(path, {}).get("get")
            if stream is not None:
                stream["responses"][200] = {
                    "description": "Server-Sent Events: the job, each event of its log, its end",
                    "content": {"text/event-stream": EVENTS},
                }
                stream.setdefault("parameters", []).append(
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "description": "resume after this event id",
                        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                    }
                )
        metrics = document.get("paths", {}).get("/metrics", {}).get("get")
        if metrics is not None:
            metrics["responses"][200] = {
                "description": "Prometheus text exposition format",
                "content": {METRICS_CONTENT_TYPE: {"schema": {"type": "string"}}},
            }
        return document


def errors(*statuses: int) -> Any:
    """OpenAPI entries for error answers (all share one shape)."""
    return {status: (ErrorModel, None) for status in statuses}


SUBMIT_ERRORS = (400, 401, 408, 413, 429, 503)


def answers(model: type[BaseModel], *error_statuses: int, ok: tuple[int, ...] = (200,)) -> Any:
    """A route's documented answers: ``model`` with each ``ok`` status, then the errors."""
    return {**{status: (model, None) for status in ok}, **errors(*error_statuses)}


def waiting_submit(
    body: type[BaseModel], answer: type[BaseModel], *more_errors: int
) -> Callable[[Route], Route]:
    """``@document`` for a submit route that takes ``?wait=S``: 202 with what was queued, or
    200 once it has ended, and the submit errors (and ``more_errors``)."""
    return document(
        querystring=SubmitQuery,
        request=body,
        responses=answers(answer, *SUBMIT_ERRORS, *more_errors, ok=(200, 202)),
    )


def event_stream(query: type[BaseModel]) -> Callable[[Route], Route]:
    """``@document`` for a route answering an event stream (its 200 is set in
    :meth:`OpenAPI.schema`: quart-schema documents JSON bodies only)."""
    return document(
        querystring=query, responses={200: (ErrorModel, None), **errors(400, 401, 404, 503)}
    )
