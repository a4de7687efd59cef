"""Logging: structlog, JSON lines when stderr is not a terminal, readable lines when it is.

graphnursery's modules log through :func:`get_logger`: structlog loggers that hand their
event (a dict: ``job_id``, ``request_id``, ...) to the standard library's ``logging``, so a
program that imports graphnursery as a library keeps control of its own logging and nothing
is configured globally. The CLI, ``serve_graph`` and the hypercorn launch call
:func:`configure_logging`, which renders every line — ours, hypercorn's and Quart's — in one
format. Context bound with :func:`structlog.contextvars.bind_contextvars` (``request_id``
for a request) is added to every line logged in that context.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_SHARED_PROCESSORS: list[Any] = [
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(level: str = "info", log_format: str = "auto") -> None:
    """Set up structlog and the standard library's logging for the whole process."""
    if log_format == "auto":
        log_format = "console" if sys.stderr.isatty() else "json"
    renderer: Any
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())

    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[
            *_SHARED_PROCESSORS,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def get_logger(name: str) -> Any:
    """A structlog logger writing to the standard library's logger ``name``."""
    return structlog.wrap_logger(
        logging.getLogger(name),
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        # Bound once, on first use, not again at every call (a line per job is on the hot path).
        cache_logger_on_first_use=True,
    )
