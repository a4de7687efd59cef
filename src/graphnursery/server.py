"""Run the app on hypercorn in this process: ``serve()`` and the blocking ``serve_graph()``."""

from __future__ import annotations

import logging
import os
import signal
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from . import logs
from .config import Config
from .errors import EngineClosed, EngineFailed, GraphLoadError
from .http.app import create_app
from .lifecycle import Lifecycle
from .store import Store

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
    # The app's lifespan shutdown drains, unless serve()'s signal handler already has (under
    # hypercorn's own launch it is the only drain).
    hconfig.shutdown_timeout = config.shutdown_grace + 15
    return hconfig


def configure_logging(config: Config) -> None:
    logs.configure_logging(config.log_level, config.log_format)


class _Shutdown:
    """SIGINT/SIGTERM: drain, then stop hypercorn. A second signal cuts the drain short."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle
        self.forced = False

    async def __call__(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            received = signals.__aiter__()
            signum = await received.__anext__()
            log.info("draining", signal=signal.Signals(signum).name)
            async with trio.open_nursery() as nursery:

                async def force() -> None:
                    again = await received.__anext__()
                    log.warning("stopping now", signal=signal.Signals(again).name)
                    self.forced = True
                    nursery.cancel_scope.cancel()

                nursery.start_soon(force)
                await self._lifecycle.drain()
                nursery.cancel_scope.cancel()


async def serve(
    config: Config,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    handle_signals: bool = True,
    store: Store | None = None,
) -> int:
    """Serve ``config.graph`` until SIGINT/SIGTERM. ``task_status`` gets the bound URLs.

    The first signal drains (no new jobs; running ones get ``shutdown_grace`` seconds), a
    second one stops at once. Returns the exit status: 0 after a drain, 1 if forced.
    Raises :class:`~graphnursery.errors.GraphLoadError` if the graph cannot be loaded,
    before anything is accepted, and :class:`~graphnursery.errors.EngineFailed` if the
    engine dies while serving (``/health`` answers 503 meanwhile). ``store`` replaces the
    one ``config.store`` names.
    """
    app = create_app(config, store)
    lifecycle = Lifecycle.of(app)
    lifecycle.on_engine_failure = lambda: None  # the trigger below stops the server
    shutdown = _Shutdown(lifecycle)
    on_signal = shutdown if handle_signals else trio.sleep_forever
    trigger = partial(_until_engine_fails, lifecycle, on_signal, reload_on_sighup=handle_signals)
    try:
        async with trio.open_nursery() as nursery:
            urls: list[str] = await nursery.start(
                _serve_app, app, hypercorn_config(config), trigger
            )
            if lifecycle.startup_error is not None:
                # hypercorn binds even after a failed lifespan startup; never announce it.
                raise _single(lifecycle.startup_error)
            graphs = ", ".join(spec.name for spec in config.graphs)
            workers = sum(config.for_graph(spec).workers for spec in config.graphs)
            print(
                f"graphnursery: serving {graphs} on {', '.join(urls)} with {workers} workers",
                flush=True,
            )
            task_status.started(urls)
    except BaseException:
        if lifecycle.startup_error is not None:
            raise _single(lifecycle.startup_error) from None
        raise
    if lifecycle.failed.is_set():
        cause = lifecycle.engine_error
        raise EngineFailed(f"the engine stopped unexpectedly: {cause!r}") from cause
    return 1 if shutdown.forced else 0


async def _reload_on_sighup(lifecycle: Lifecycle) -> None:
    """SIGHUP: load every graph's source again (see ``Lane.reload``); a source that fails
    to load is logged and its live version stays."""
    with trio.open_signal_receiver(signal.SIGHUP) as signals:
        async for _ in signals:
            engine = lifecycle.engine
            if engine is None:
                continue
            for name in [graph.name for graph in engine.graphs()]:
                try:
                    (reloaded,) = await engine.reload(name)
                except GraphLoadError as exc:
                    log.error(
                        "reload refused: the source failed to load", graph=name, error=str(exc)
                    )
                except EngineClosed:
                    return
                else:
                    log.info(
                        "reloaded on SIGHUP",
                        graph=name,
                        version=reloaded.version,
                        changed=reloaded.changed,
                    )


async def _until_engine_fails(
    lifecycle: Lifecycle, shutdown: Any, *, reload_on_sighup: bool
) -> None:
    """hypercorn's shutdown trigger: ``shutdown`` returned, or the engine died. While it
    waits, SIGHUP reloads the graphs (with ``reload_on_sighup``)."""
    async with trio.open_nursery() as nursery:
        if reload_on_sighup:
            nursery.start_soon(_reload_on_sighup, lifecycle)

        async def engine_failed() -> None:
            await lifecycle.failed.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(engine_failed)
        await shutdown()
        nursery.cancel_scope.cancel()


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
    Like the CLI, it reads every other setting from its ``GRAPHNURSERY_*`` environment
    variable (``GRAPHNURSERY_API_KEY``, ...); a keyword argument wins over its variable.
    """
    config = Config.from_env(os.environ, graph=graph, **settings)
    configure_logging(config)
    status = trio.run(serve, config)
    if status:
        raise SystemExit(status)
