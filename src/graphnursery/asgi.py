"""The ASGI app for hypercorn, configured from ``GRAPHNURSERY_*`` environment variables::

    GRAPHNURSERY_GRAPH=examples/echo.py \\
        hypercorn --config python:graphnursery.hypercorn_config graphnursery.asgi:app

The shipped hypercorn config sets ``daemon = false`` (worker processes of a daemonic
process cannot start), the trio worker class and the bind address from the environment.
"""

from __future__ import annotations

from .config import Config
from .http.app import create_app
from .server import configure_logging

config = Config.from_env()
configure_logging(config)
app = create_app(config)
