"""Hypercorn settings graphnursery needs (``--config python:graphnursery.hypercorn_config``).

- ``daemon = False``: hypercorn starts its workers as daemonic processes by default, and a
  daemonic process may not have children, so trio-parallel's worker processes could not start.
- ``worker_class = "trio"``: the app is a Quart-Trio app.
- ``workers = 1``: each hypercorn worker would run its own engine, and the default SQLite
  store admits one server per file; scale with ``GRAPHNURSERY_WORKERS`` (graph worker
  processes), or with replicas on a PostgreSQL store.
- ``errorlog``: hypercorn's own lines go through the ``hypercorn.error`` logger to the handler
  graphnursery's logging set up (JSON lines when stderr is not a terminal), instead of also
  to a handler of hypercorn's that prints each one again in its own format.
- ``bind`` from ``GRAPHNURSERY_HOST`` / ``GRAPHNURSERY_PORT`` (default 127.0.0.1:8000);
  hypercorn's ``--bind`` still overrides it.
- hypercorn exits with its worker's status when the worker fails (graphnursery's worker
  exits with status 3 when its engine dies): hypercorn 0.18 loses that status and exits 0
  (pgjones/hypercorn#269), so this config keeps the first failing status it saw.
"""

import logging
import os

daemon = False
worker_class = "trio"
workers = 1
startup_timeout = 600
# Room for the app's drain on shutdown (GRAPHNURSERY_SHUTDOWN_GRACE, default 30 s).
shutdown_timeout = float(os.environ.get("GRAPHNURSERY_SHUTDOWN_GRACE", "30")) + 15
accesslog = None
errorlog = logging.getLogger("hypercorn.error")

_host = os.environ.get("GRAPHNURSERY_HOST", "127.0.0.1")
_port = os.environ.get("GRAPHNURSERY_PORT", "8000")
bind = [f"[{_host}]:{_port}" if ":" in _host else f"{_host}:{_port}"]


def _keep_a_failing_worker_status() -> None:
    # hypercorn.run.run() records a failed worker's status from _join_exited(), then calls
    # it again on the emptied process list and keeps that 0. Remember the first non-zero.
    try:
        from hypercorn import run as hypercorn_run
    except ImportError:
        return
    join_exited = getattr(hypercorn_run, "_join_exited", None)
    if join_exited is None or getattr(join_exited, "_graphnursery", False):
        return
    failed = 0

    def join_exited_keeping_failure(processes: list) -> int:  # type: ignore[type-arg]
        nonlocal failed
        status: int = join_exited(processes)
        failed = failed or status
        return status or failed

    join_exited_keeping_failure._graphnursery = True  # type: ignore[attr-defined]
    hypercorn_run._join_exited = join_exited_keeping_failure


_keep_a_failing_worker_status()
