"""The built-in node types: ``http`` (one request) and ``graph`` (call another graph).

httpx is imported on the first ``http`` node only: worker processes that run no such node do
not pay for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import httpx

#: Methods whose body defaults to the node's input.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: How much of an error response's body its error message quotes.
ERROR_BODY_CHARS = 200

CallGraph = Callable[[str, Any], Awaitable[Any]]


def new_http_client() -> httpx.AsyncClient:
    import httpx

    return httpx.AsyncClient()


async def http_request(
    client: httpx.AsyncClient, node_input: Any, config: Mapping[str, Any]
) -> dict[str, Any]:
    """Send the request ``config`` describes; the output is ``{"status", "headers", "body"}``
    (``body`` parsed when the response is JSON, else text). A status >= 400 raises
    ``httpx.HTTPStatusError`` (so the node's ``max_attempts`` retries it).

    ``method`` defaults to GET, or POST when the node has an input (not null); the JSON body
    is ``config["json"]``, else the input for POST, PUT and PATCH.
    """
    import httpx

    method = config.get("method") or ("GET" if node_input is None else "POST")
    url = config["url"]
    options: dict[str, Any] = {}
    if "headers" in config:
        options["headers"] = config["headers"]
    if "timeout" in config:
        options["timeout"] = config["timeout"]
    if "json" in config:
        options["json"] = config["json"]
    elif method in BODY_METHODS:
        options["json"] = node_input
    response = await client.request(method, url, **options)
    body = _body(response)
    if response.status_code >= 400:
        excerpt = response.text[:ERROR_BODY_CHARS]
        raise httpx.HTTPStatusError(
            f"{method} {url} answered {response.status_code} {response.reason_phrase}: {excerpt}",
            request=response.request,
            response=response,
        )
    return {"status": response.status_code, "headers": dict(response.headers), "body": body}


def _body(response: httpx.Response) -> Any:
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            pass  # it says JSON but is not: its text, as for any other response
    return response.text


async def call_graph_node(call_graph: CallGraph | None, name: str, node_input: Any) -> Any:
    """A ``graph`` node: ``await call_graph(name, input)``."""
    if call_graph is None:
        raise RuntimeError(
            f"this node calls the graph {name!r}, but the flow runs without a call_graph "
            "(run_flow(..., call_graph=...)) to call graphs with"
        )
    return await call_graph(name, node_input)
