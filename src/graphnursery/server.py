"""Run the app on hypercorn in this process: ``serve()`` and the blocking ``serve_graph()``."""

from __future__ import annotations

import logging
import signal
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from . import logs
from .config import Config
from .http.app import STATE_KEY, AppState, create_app

log = logs.get_logger("graphnursery.server")


def hypercorn_config(config: Config) -> HypercornConfig:
    hconfig = HypercornConfig()
    host = f"[{config.host}]" if ":" in config.host else config.host
    hconfig.bind = [f"{host}:{config.port}"]
    hconfig.accesslog = None
    hconfig.errorlog = logging.getLogger("hypercorn.error")
    # Loading a graph (say, a model) may take a while; the server answers only once it is done.
    hconfig.startup_timeout = 600
    hconfig.graceful_timeout = 5
    return hconfig


def configure_logging(config: Config) -> None:
    logs.configure_logging(config.log_level, config.log_format)


async def _until_signal() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("shutting down", signal=signal.Signals(signum).name)
            return


async def serve(
    config: Config,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    handle_signals: bool = True,
) -> None:
    """Serve ``config.graph`` until SIGINT/SIGTERM. ``task_status`` gets the bound URLs.

    Raises :class:`~graphnursery.errors.GraphLoadError` if the graph cannot be loaded,
    before anything is accepted.
    """
    app = create_app(config)
    state: AppState = app.extensions[STATE_KEY]
    shutdown = _until_signal if handle_signals else trio.sleep_forever
    try:
        async with trio.open_nursery() as nursery:
            urls: list[str] = await nursery.start(
                _serve_app, app, hypercorn_config(config), shutdown
            )
            if state.startup_error is not None:
                # hypercorn binds even after a failed lifespan startup; never announce it.
                raise _single(state.startup_error)
            print(
                f"graphnursery: serving {config.graph} on {', '.join(urls)} "
                f"with {config.workers} workers",
                flush=True,
            )
            task_status.started(urls)
    except BaseException:
        if state.startup_error is not None:
            raise _single(state.startup_error) from None
        raise


async def _serve_app(
    app: Any, hconfig: HypercornConfig, shutdown: Any, *, task_status: Any
) -> None:
    await hypercorn_serve(app, hconfig, shutdown_trigger=shutdown, task_status=task_status)


def _single(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def serve_graph(graph: str, **settings: Any) -> None:
    """Serve a graph until interrupted (blocking), like the seed's ``serveGraph``.

    ``settings`` are :class:`~graphnursery.Config` fields: ``workers=4, port=8000, ...``.
    """
    config = Config(graph=graph, **settings)
    configure_logging(config)
    trio.run(serve, config)
