"""The HTTP layer's parts that need no server: the error table, the pipeline, the lifecycle."""

from __future__ import annotations

import orjson
import pytest
import trio
import trio.lowlevel
from werkzeug.exceptions import MethodNotAllowed, NotFound

import graphnursery
from graphnursery import Config
from graphnursery.errors import EngineClosed, InvalidTimeout, JobConflict, JobNotFound, QueueFull
from graphnursery.http import errors as http_errors
from graphnursery.http.errors import HttpError, answer_for
from graphnursery.http.front import ScopeHeaders
from graphnursery.http.pipeline import Pipeline
from graphnursery.lifecycle import ENGINE_FAILED_EXIT, Lifecycle
from graphnursery.metrics import Metrics

CONFIG = Config(graph="examples/echo.py", store="memory://", max_body_bytes=10, body_timeout=1)


class LateNotFound(JobNotFound):
    """A subclass gets its base's answer."""


@pytest.mark.parametrize(
    ("error", "status", "code", "headers"),
    [
        (JobNotFound("j1"), 404, "job_not_found", {}),
        (LateNotFound("j1"), 404, "job_not_found", {}),
        (QueueFull(10, retry_after=7.4), 429, "queue_full", {"Retry-After": "7"}),
        (JobConflict("j1", "completed"), 409, "conflict", {}),
        (EngineClosed("the server is draining"), 503, "draining", {"Retry-After": "5"}),
        (EngineClosed("the engine stopped"), 503, "unavailable", {"Retry-After": "5"}),
        (InvalidTimeout(1e9, 300), 400, "invalid_body", {}),
        (NotFound(), 404, "not_found", {}),
        (MethodNotAllowed(), 405, "method_not_allowed", {}),
        (HttpError(418, "teapot", "short and stout"), 418, "teapot", {}),
    ],
)
def test_each_typed_error_has_its_answer_in_the_one_table(
    error: Exception, status: int, code: str, headers: dict[str, str]
) -> None:
    answer = answer_for(error)
    assert answer is not None
    assert (answer.status, answer.code, answer.headers) == (status, code, headers)
    body = orjson.loads(answer.body())
    assert body["code"] == code and isinstance(body["error"], str)


def test_an_invalid_timeout_names_the_field() -> None:
    answer = answer_for(InvalidTimeout(1e9, 300))
    assert answer is not None
    assert [item["field"] for item in answer.detail or []] == ["timeoutSeconds"]
    assert "timeoutSeconds" in answer.message


def test_an_unmapped_error_is_a_500_that_leaks_nothing() -> None:
    assert answer_for(RuntimeError("secret")) is None
    status, body, _ = Pipeline(CONFIG, Metrics()).answer_error(RuntimeError("secret"))
    assert status == 500
    assert b"secret" not in body
    assert orjson.loads(body)["code"] == "internal_error"


def test_api_error_means_one_thing_the_clients_error() -> None:
    assert not hasattr(http_errors, "ApiError")
    assert graphnursery.ApiError is graphnursery.errors.ApiError
    assert not issubclass(HttpError, graphnursery.ApiError)


class Chunks:
    def __init__(self, *chunks: bytes, stall: bool = False) -> None:
        self._chunks = list(chunks)
        self._stall = stall

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> bytes:
        if self._chunks:
            return self._chunks.pop(0)
        if self._stall:
            await trio.sleep_forever()
        raise StopAsyncIteration


async def test_the_pipeline_reads_a_body_within_its_limit_and_its_time(
    autojump_clock: trio.abc.Clock,
) -> None:
    pipeline = Pipeline(CONFIG, Metrics())
    assert await pipeline.read_body(Chunks(b"12345", b"67890")) == b"1234567890"
    with pytest.raises(HttpError) as too_large:
        await pipeline.read_body(Chunks(b"12345", b"678901"))
    assert too_large.value.status == 413
    with pytest.raises(HttpError) as too_slow:
        await pipeline.read_body(Chunks(b"123", stall=True))
    assert too_slow.value.status == 408


async def test_the_pipeline_lets_open_paths_and_docs_assets_through_without_a_key() -> None:
    pipeline = Pipeline(Config(graph="examples/echo.py", api_key="k"), Metrics())
    no_key = ScopeHeaders([])
    for path in ("/health", "/ready", "/live", "/docs", "/docs/static/swagger-ui.css"):
        await pipeline.authorize(no_key, path)
    for path in ("/jobs", "/stats", "/metrics", "/docs/static"):
        with pytest.raises(HttpError) as refused:
            await pipeline.authorize(no_key, path)
        assert refused.value.status == 401
    await pipeline.authorize(ScopeHeaders([(b"authorization", b"Bearer k")]), "/jobs")
    await pipeline.authorize(ScopeHeaders([(b"x-api-key", b"k")]), "/jobs")


class FakeEngine:
    def __init__(self) -> None:
        self.drains: list[float] = []

    async def drain(self, grace: float) -> bool:
        self.drains.append(grace)
        await trio.lowlevel.checkpoint()
        return True


async def test_the_engine_is_drained_once_whoever_asks_first() -> None:
    lifecycle = Lifecycle(CONFIG, None, Metrics())
    engine = FakeEngine()
    lifecycle.engine = engine  # type: ignore[assignment]  # drain is all it needs
    assert await lifecycle.drain()
    assert await lifecycle.drain()  # the lifespan shutdown, after the signal handler's
    assert engine.drains == [CONFIG.shutdown_grace]


def test_the_engine_failed_exit_status_is_the_lifecycles_and_still_in_http_app() -> None:
    from graphnursery.http.app import ENGINE_FAILED_EXIT as from_http_app

    assert from_http_app == ENGINE_FAILED_EXIT == 3
