"""The engine's life under the app: started with the server, drained once, watched for death.

Quart-Trio runs long-lived work in ``app.nursery``: :class:`Lifecycle` starts the engine there
in ``before_serving`` (so the server answers only once the workers are up and the graph is
loaded) and stops it in ``after_serving``. Draining happens here and only here, once:
:func:`graphnursery.server.serve` drains on SIGINT/SIGTERM before it stops hypercorn; under
hypercorn's own launch the lifespan shutdown (``after_serving``) is where running jobs get
their grace. If the engine dies while the server serves, ``failed`` is set (``/health``
answers 503) and :attr:`Lifecycle.on_engine_failure` runs: ``serve()`` stops the server and
the CLI exits with :data:`ENGINE_FAILED_EXIT`; under hypercorn's launch, where the app cannot
stop the server, the worker process exits with it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import trio
from quart_trio import QuartTrio

from .config import Config
from .engine import open_engine
from .engine_thread import AnyEngine, open_engine_thread
from .errors import EngineClosed
from .logs import get_logger
from .metrics import Metrics
from .store import Store

log = get_logger("graphnursery.lifecycle")

#: The exit status of a server whose engine died while it served.
ENGINE_FAILED_EXIT = 3

_EXTENSION = "graphnursery"


def _exit_worker_process() -> None:
    os._exit(ENGINE_FAILED_EXIT)


class Lifecycle:
    """The engine of one app, while the server runs: start, drain, stop, failure."""

    def __init__(self, config: Config, store: Store | None, metrics: Metrics) -> None:
        self.config = config
        self._store = store
        self._metrics = metrics
        self.engine: AnyEngine | None = None
        self.startup_error: BaseException | None = None
        # Set when the engine dies while the server still serves, with what killed it.
        self.failed = trio.Event()
        self.engine_error: BaseException | None = None
        self.on_engine_failure: Callable[[], None] = _exit_worker_process
        self._stopped = trio.Event()
        # Set by the first drain, even one a second signal cuts short: no second grace.
        self._drain_started = False

    @staticmethod
    def of(app: Any) -> Lifecycle:
        lifecycle: Lifecycle = app.extensions[_EXTENSION]
        return lifecycle

    def install(self, app: QuartTrio) -> None:
        """Run the engine with ``app``'s server: started before serving, stopped after."""
        app.extensions[_EXTENSION] = self
        # On shutdown Quart gives app.nursery (where the engine runs) this long before
        # cancelling it: time for after_serving's drain.
        app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = self.config.shutdown_grace + 10

        @app.before_serving
        async def start_engine() -> None:
            try:
                await app.nursery.start(self._run_engine)
            except BaseException as exc:
                self.startup_error = exc
                raise

        @app.after_serving
        async def stop_engine() -> None:
            await self.drain()
            self._stopped.set()

    def require_engine(self) -> AnyEngine:
        if self.engine is None:
            raise EngineClosed("the engine is not running")
        return self.engine

    async def drain(self) -> bool:
        """Stop accepting jobs; give running ones ``shutdown_grace`` seconds, then kill them.

        Only the first call drains (True if every job ended in time); later ones return at
        once, so a drain a second signal cut short is not started again.
        """
        engine = self.engine
        if engine is None or self._drain_started:
            return True
        self._drain_started = True
        return await engine.drain(self.config.shutdown_grace)

    async def _run_engine(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        started = False
        try:
            opened = open_engine_thread if self.config.engine_thread else open_engine
            async with opened(self.config, self._store, metrics=self._metrics) as engine:
                self.engine = engine
                started = True
                task_status.started()
                await self._stopped.wait()
        except Exception as exc:
            if not started:
                raise
            # The engine died under us: never a server that answers 200 and runs nothing.
            self.engine_error = exc
            log.critical("the engine stopped unexpectedly", exc_info=exc)
        finally:
            self.engine = None
            if started and not self._stopped.is_set():
                self.failed.set()
                self.on_engine_failure()
