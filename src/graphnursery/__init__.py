"""graphnursery: serve an agent graph over HTTP as asynchronous jobs.

Public names only; see the README for the tour. They are imported lazily, so that worker
processes, which import ``graphnursery._worker``, do not pay for Trio, Quart and hypercorn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .config import Config as Config
    from .engine import Engine as Engine
    from .engine import EngineStatistics as EngineStatistics
    from .engine import open_engine as open_engine
    from .errors import ConfigError as ConfigError
    from .errors import EngineClosed as EngineClosed
    from .errors import GraphLoadError as GraphLoadError
    from .errors import GraphNurseryError as GraphNurseryError
    from .errors import JobNotFound as JobNotFound
    from .errors import QueueFull as QueueFull
    from .http import create_app as create_app
    from .jobs import Job as Job
    from .jobs import JobError as JobError
    from .jobs import JobStatus as JobStatus
    from .server import serve as serve
    from .server import serve_graph as serve_graph

_EXPORTS = {
    "Config": ".config",
    "ConfigError": ".errors",
    "Engine": ".engine",
    "EngineClosed": ".errors",
    "EngineStatistics": ".engine",
    "GraphLoadError": ".errors",
    "GraphNurseryError": ".errors",
    "Job": ".jobs",
    "JobError": ".jobs",
    "JobNotFound": ".errors",
    "JobStatus": ".jobs",
    "QueueFull": ".errors",
    "create_app": ".http",
    "open_engine": ".engine",
    "serve": ".server",
    "serve_graph": ".server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'graphnursery' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
