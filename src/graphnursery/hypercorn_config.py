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
