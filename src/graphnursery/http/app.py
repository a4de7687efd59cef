"""Routes: each one parses its input, calls the engine, and shapes the answer. Nothing else."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import orjson
import trio
from pydantic import ValidationError
from quart import Response, request
from quart_schema import Info, QuartSchema, document
from quart_trio import QuartTrio

from .. import __version__
from ..config import Config
from ..engine import Engine, EngineStatistics, open_engine
from ..errors import EngineClosed, QueueFull
from ..jobs import Job
from ..logs import get_logger
from ..metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ..metrics import Metrics
from ..store import Store
from . import middleware
from .errors import ApiError, invalid_body, register_error_handlers, retry_after
from .fastpath import FastPath
from .limits import BodyLimit, CloseAfterAnswer
from .openapi import STATE_KEY, SUBMIT_ERRORS, OpenAPI, errors
from .parsing import (
    batch_body,
    parse_include,
    parse_list_query,
    parse_wait,
    query_error,
    read_json_object,
    seed_accepted,
    submit_job,
    submitted,
)
from .schemas import (
    BatchAccepted,
    BatchSubmit,
    Health,
    JobModel,
    JobPage,
    JobQuery,
    ListQuery,
    Probe,
    SeedAccepted,
    Stats,
    Submit,
    WaitQuery,
    iso,
    job_body,
)

log = get_logger("graphnursery.http")


ENGINE_FAILED_EXIT = 3


class AppState:
    """What the app holds besides Quart's own: the engine, once started."""

    def __init__(self, config: Config, store: Store | None) -> None:
        self.config = config
        self.store = store
        self.engine: Engine | None = None
        self.startup_error: BaseException | None = None
        # Set once the server has drained (or a second signal skipped it): no second grace.
        self.drained = False
        self.stopped = trio.Event()
        # Set if the engine stops while the server still serves: it died.
        self.failed = trio.Event()
        self.engine_error: BaseException | None = None
        # What to do then. serve() stops the server (exit status 3); under hypercorn's own
        # launch, where the app cannot stop the server, the worker process exits.
        self.on_engine_failure: Callable[[], None] = _exit_worker_process

    def require_engine(self) -> Engine:
        if self.engine is None:
            raise EngineClosed("the engine is not running")
        return self.engine

    @property
    def draining(self) -> bool:
        return self.engine is not None and self.engine.draining


def _exit_worker_process() -> None:
    os._exit(ENGINE_FAILED_EXIT)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def create_app(config: Config, store: Store | None = None) -> QuartTrio:
    """The ASGI app. Its engine starts with the server (``before_serving``) and stops with it."""
    app = QuartTrio("graphnursery")
    app.config.update(
        MAX_CONTENT_LENGTH=config.max_body_bytes,
        RESPONSE_TIMEOUT=config.max_wait + 30,
        BODY_TIMEOUT=config.body_timeout,
        # On shutdown Quart gives app.nursery (where the engine runs) this long before
        # cancelling it: time for after_serving's drain.
        BACKGROUND_TASK_SHUTDOWN_TIMEOUT=config.shutdown_grace + 10,
    )
    QuartSchema(
        app,
        openapi_provider_class=OpenAPI,
        info=Info(title="graphnursery", version=__version__),
        redoc_ui_path=None,
        scalar_ui_path=None,
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}}
        if config.api_keys
        else None,
    )
    state = AppState(config, store)
    app.extensions[STATE_KEY] = state
    metrics = Metrics()
    register_error_handlers(app)
    middleware.install(app, config, metrics)
    app.asgi_app = CloseAfterAnswer(app.asgi_app)  # type: ignore[method-assign]
    if config.fast_path:
        app.asgi_app = FastPath(  # type: ignore[method-assign]
            app.asgi_app, state.require_engine, config, metrics
        )
    app.asgi_app = BodyLimit(  # type: ignore[method-assign]
        app.asgi_app, config.max_body_bytes, metrics
    )
    started_monotonic = time.monotonic()

    async def run_engine(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        started = False
        try:
            async with open_engine(config, store, metrics=metrics) as engine:
                state.engine = engine
                started = True
                task_status.started()
                await state.stopped.wait()
        except Exception as exc:
            if not started:
                raise
            # The engine died under us: never a server that answers 200 and runs nothing.
            state.engine_error = exc
            log.critical("the engine stopped unexpectedly", exc_info=exc)
        finally:
            state.engine = None
            if started and not state.stopped.is_set():
                state.failed.set()
                state.on_engine_failure()

    @app.before_serving
    async def start_engine() -> None:
        try:
            await app.nursery.start(run_engine)
        except BaseException as exc:
            state.startup_error = exc
            raise

    @app.after_serving
    async def stop_engine() -> None:
        # The CLI drains before hypercorn stops; under hypercorn's own launch this is where
        # running jobs get their grace.
        engine = state.engine
        if engine is not None and not state.drained:
            await engine.drain(config.shutdown_grace)
        state.stopped.set()

    async def submit() -> tuple[Engine, Any]:
        engine = state.require_engine()
        body = await read_json_object()
        return engine, await submit_job(engine, body, request.headers, config)

    @app.post("/execute")
    @document(request=Submit, responses={200: (SeedAccepted, None), **SUBMIT_ERRORS})
    async def execute() -> Response:
        engine, job = await submit()
        return json_response(seed_accepted(engine, job))

    @app.post("/jobs")
    @document(
        querystring=WaitQuery,
        request=Submit,
        responses={200: (JobModel, None), 202: (JobModel, None), **SUBMIT_ERRORS},
    )
    async def create_job() -> Response:
        wait = parse_wait(config)
        engine, job = await submit()
        status, body = await submitted(engine, job, wait)
        return json_response(body, status, {"Location": f"/jobs/{job.id}"})

    @app.get("/jobs/<job_id>")
    @document(
        querystring=JobQuery,
        responses={200: (JobModel, None), **errors(400, 401, 404, 503)},
    )
    async def get_job(job_id: str) -> Response:
        wait = parse_wait(config)
        with_input = parse_include(request.args.get("include"))
        engine = state.require_engine()
        job = await (engine.wait(job_id, wait) if wait else engine.get(job_id))
        return json_response(job_body(job, engine.position(job_id), with_input=with_input))

    @app.post("/jobs/<job_id>/cancel")
    @document(responses={200: (JobModel, None), **errors(401, 404, 409, 503)})
    async def cancel_job(job_id: str) -> Response:
        engine = state.require_engine()
        return json_response(job_body(await engine.cancel(job_id)))

    @app.post("/jobs/batch")
    @document(
        querystring=WaitQuery,
        request=BatchSubmit,
        responses={200: (BatchAccepted, None), 202: (BatchAccepted, None), **SUBMIT_ERRORS},
    )
    async def create_jobs() -> Response:
        """Submit many jobs in one request (amortizes HTTP's cost over the batch).

        Accepted in order until the queue is full; the rest are counted in ``rejected``
        (429 if none was accepted). With ``?wait=S``, answers once every accepted job has
        ended (200) or after S seconds (202), with the jobs as they stand.
        """
        wait = parse_wait(config)
        engine = state.require_engine()
        try:
            batch = batch_body.validate_python(await read_json_object())
        except ValidationError as exc:
            raise invalid_body(exc) from None
        accepted: list[Job] = []
        rejected: QueueFull | None = None
        for item in batch.jobs:
            if item.timeoutSeconds is not None and item.timeoutSeconds > config.max_job_timeout:
                raise ApiError(
                    400,
                    "invalid_body",
                    f"invalid request body: jobs: timeoutSeconds must be at most "
                    f"{config.max_job_timeout:g}",
                )
        for item in batch.jobs:
            try:
                accepted.append(
                    await engine.submit(
                        item.input, timeout=item.timeoutSeconds, max_attempts=item.maxAttempts
                    )
                )
            except QueueFull as full:
                rejected = full
                break
        if not accepted and rejected is not None:
            raise rejected
        if wait:
            with trio.move_on_after(wait):
                for index, job in enumerate(accepted):
                    accepted[index] = await engine.wait(job.id, wait)
            accepted = [await engine.get(job.id) for job in accepted]
        status = 200 if all(job.status.is_terminal for job in accepted) else 202
        headers = {} if rejected is None else retry_after(rejected.retry_after)
        body = {
            "jobs": [job_body(job, engine.position(job.id)) for job in accepted],
            "rejected": len(batch.jobs) - len(accepted),
        }
        return json_response(body, status, headers)

    @app.post("/jobs/<job_id>/retry")
    @document(responses={202: (JobModel, None), **errors(401, 404, 409, 429, 503)})
    async def retry_job(job_id: str) -> Response:
        engine = state.require_engine()
        job = await engine.resubmit(job_id)
        return json_response(
            job_body(job, engine.position(job.id)), 202, {"Location": f"/jobs/{job.id}"}
        )

    @app.get("/jobs")
    @document(querystring=ListQuery, responses={200: (JobPage, None), **errors(400, 401, 503)})
    async def list_jobs() -> Response:
        engine = state.require_engine()
        status, limit, cursor = parse_list_query()
        try:
            jobs, next_cursor = await engine.list_jobs(status, limit, cursor)
        except ValueError as exc:
            raise query_error("cursor", str(exc)) from None
        return json_response(
            {
                "jobs": [job_body(job, engine.position(job.id), with_input=True) for job in jobs],
                "nextCursor": next_cursor,
            }
        )

    def stats_body(stats: EngineStatistics) -> dict[str, Any]:
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

    @app.get("/health")
    @document(responses={200: (Health, None), 503: (Health, None)})
    async def health() -> Response:
        body: dict[str, Any] = {
            "timestamp": iso(time.time()),
            "uptime": round(time.monotonic() - started_monotonic, 3),
        }
        engine = state.engine
        if engine is None or not engine.accepting:
            body["status"] = "draining" if engine is not None and engine.draining else "unavailable"
            return json_response(body, 503, {"Retry-After": "5"})
        body["status"] = "ok"
        body["stats"] = stats_body(await engine.statistics())
        return json_response(body)

    @app.get("/ready")
    @document(responses={200: (Probe, None), 503: (Probe, None)})
    async def ready() -> Response:
        engine = state.engine
        if engine is None or not engine.accepting:
            status = "draining" if engine is not None and engine.draining else "unavailable"
            return json_response({"status": status}, 503, {"Retry-After": "5"})
        return json_response({"status": "ready"})

    @app.get("/metrics")
    @document(responses=errors(401))
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), content_type=METRICS_CONTENT_TYPE)

    @app.get("/live")
    @document(responses={200: (Probe, None)})
    async def live() -> Response:
        return json_response({"status": "alive"})

    @app.get("/stats")
    @document(responses={200: (Stats, None), **errors(401, 503)})
    async def stats() -> Response:
        engine = state.require_engine()
        s = await engine.statistics()
        body = stats_body(s)
        body.update(
            {
                "byStatus": {
                    "queued": s.queued,
                    "running": s.running,
                    "completed": s.completed,
                    "failed": s.failed,
                    "timed_out": s.timed_out,
                    "cancelled": s.cancelled,
                    "crashed": s.crashed,
                },
                "queueLength": engine.queue_length(),
                "queueCapacity": s.queue_capacity,
                "workerRestarts": s.worker_restarts,
                "uptime": round(s.uptime, 3),
            }
        )
        return json_response(body)

    return app
