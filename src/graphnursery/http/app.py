"""``create_app``: the Quart-Trio app and the ASGI layers in front of it, wired together.

A request meets, outside in: the ASGI layer in front (``front.py``: the announced body
limit, and the fast path for the hot job routes, ``fastpath.py``, when it is on), then Quart
with its routes (``routes.py``, ``probes.py``).
All of them go through one :class:`~.pipeline.Pipeline`; the job routes' logic is
:class:`~.handlers.JobHandlers`, whichever path serves them; the engine's start and stop
is :class:`~graphnursery.lifecycle.Lifecycle`'s.
"""

from __future__ import annotations

from quart import Response
from quart_schema import Info, QuartSchema
from quart_trio import QuartTrio
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]  # no py.typed
from werkzeug.exceptions import NotFound

from .. import __version__
from ..config import Config
from ..lifecycle import ENGINE_FAILED_EXIT, Lifecycle
from ..metrics import Metrics
from ..store import Store
from .assistants import add_assistant_routes
from .fastpath import FastPath
from .flows import add_flow_routes
from .front import CloseAfterAnswer, Front
from .graphs import add_graph_routes
from .handlers import JobHandlers
from .openapi import OpenAPI
from .pipeline import DOCS_ASSETS, Pipeline, attach
from .probes import add_probe_routes
from .routes import add_job_routes
from .run_handlers import RunHandlers
from .runs import add_run_routes
from .schedules import add_schedule_routes
from .sse import Streams
from .threads import add_thread_routes

__all__ = ["ENGINE_FAILED_EXIT", "create_app"]  # the exit status, where the CLI imports it

SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"


class _App(QuartTrio):
    """The app; its static files are the two of Swagger UI that ``/docs`` loads, from the
    installed swagger-ui-bundle package: ``/docs`` loads nothing from another host."""

    async def send_static_file(self, filename: str) -> Response:
        if filename not in (SWAGGER_JS, SWAGGER_CSS):
            raise NotFound()
        return await super().send_static_file(filename)


def create_app(config: Config, store: Store | None = None) -> QuartTrio:
    """The ASGI app. Its engine starts with the server (``before_serving``) and stops with it."""
    app = _App("graphnursery", static_folder=str(swagger_ui_path), static_url_path=DOCS_ASSETS)
    app.config.update(
        # Quart's buffer of a body not yet read; the pipeline enforces the limit itself.
        MAX_CONTENT_LENGTH=config.max_body_bytes,
        RESPONSE_TIMEOUT=config.max_wait + 30,
        QUART_SCHEMA_SWAGGER_JS_URL=f"{DOCS_ASSETS}/{SWAGGER_JS}",
        QUART_SCHEMA_SWAGGER_CSS_URL=f"{DOCS_ASSETS}/{SWAGGER_CSS}",
    )
    QuartSchema(
        app,
        openapi_provider_class=OpenAPI,
        info=Info(title="graphnursery", version=__version__),
        redoc_ui_path=None,
        scalar_ui_path=None,
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}}
        if config.authenticates
        else None,
    )
    metrics = Metrics()
    lifecycle = Lifecycle(config, store, metrics)
    lifecycle.install(app)
    pipeline = Pipeline(config, metrics)
    attach(app, pipeline)
    handlers = JobHandlers(lifecycle.require_engine, config)
    streams = Streams(lifecycle.require_engine, config, metrics)
    add_job_routes(app, handlers, streams, pipeline)
    add_graph_routes(app, lifecycle.require_engine, handlers, streams, pipeline)
    add_flow_routes(app, lifecycle.require_engine, handlers, streams, pipeline)
    add_schedule_routes(app, lifecycle.require_engine, pipeline)
    add_assistant_routes(app, lifecycle.require_engine, pipeline)
    add_thread_routes(app, lifecycle.require_engine, pipeline)
    runs = RunHandlers(lifecycle.require_engine, config)
    add_run_routes(app, lifecycle.require_engine, pipeline, streams, config, runs)
    add_probe_routes(app, lifecycle, metrics)

    fast_path = FastPath(handlers, pipeline, runs) if config.fast_path else None
    front = Front(CloseAfterAnswer(app.asgi_app), pipeline, fast_path, config.max_body_bytes)
    app.asgi_app = front  # type: ignore[method-assign]
    return app
