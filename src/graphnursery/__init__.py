"""graphnursery: serve an agent graph over HTTP as asynchronous jobs.

Public names only; see the README for the tour. They are imported lazily, so that worker
processes, which import ``graphnursery._worker``, do not pay for Trio, Quart and hypercorn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ._emit import emit as emit
    from .client import AsyncClient as AsyncClient
    from .client import Client as Client
    from .client import Retries as Retries
    from .client import StreamEvent as StreamEvent
    from .config import Config as Config
    from .engine import Engine as Engine
    from .engine import EngineStatistics as EngineStatistics
    from .engine import open_engine as open_engine
    from .errors import ApiError as ApiError
    from .errors import ClientError as ClientError
    from .errors import ConfigError as ConfigError
    from .errors import Conflict as Conflict
    from .errors import EngineClosed as EngineClosed
    from .errors import EngineFailed as EngineFailed
    from .errors import GraphLoadError as GraphLoadError
    from .errors import GraphNurseryError as GraphNurseryError
    from .errors import InvalidRequest as InvalidRequest
    from .errors import JobCancelled as JobCancelled
    from .errors import JobConflict as JobConflict
    from .errors import JobCrashed as JobCrashed
    from .errors import JobFailed as JobFailed
    from .errors import JobNotFound as JobNotFound
    from .errors import JobTimedOut as JobTimedOut
    from .errors import JobUnsuccessful as JobUnsuccessful
    from .errors import NotFound as NotFound
    from .errors import PayloadTooLarge as PayloadTooLarge
    from .errors import QueueFull as QueueFull
    from .errors import ServerError as ServerError
    from .errors import TooManyRequests as TooManyRequests
    from .errors import TransportError as TransportError
    from .errors import Unauthorized as Unauthorized
    from .errors import Unavailable as Unavailable
    from .errors import UnexpectedResponse as UnexpectedResponse
    from .errors import WaitTimeout as WaitTimeout
    from .http import create_app as create_app
    from .jobs import Job as Job
    from .jobs import JobError as JobError
    from .jobs import JobStatus as JobStatus
    from .server import serve as serve
    from .server import serve_graph as serve_graph

_EXPORTS = {
    "AsyncClient": ".client",
    "Client": ".client",
    "Retries": ".client",
    "StreamEvent": ".client",
    "Config": ".config",
    "Engine": ".engine",
    "EngineStatistics": ".engine",
    "open_engine": ".engine",
    "emit": "._emit",
    "ApiError": ".errors",
    "ClientError": ".errors",
    "ConfigError": ".errors",
    "Conflict": ".errors",
    "EngineClosed": ".errors",
    "EngineFailed": ".errors",
    "JobConflict": ".errors",
    "GraphLoadError": ".errors",
    "GraphNurseryError": ".errors",
    "InvalidRequest": ".errors",
    "JobCancelled": ".errors",
    "JobCrashed": ".errors",
    "JobFailed": ".errors",
    "JobNotFound": ".errors",
    "JobTimedOut": ".errors",
    "JobUnsuccessful": ".errors",
    "NotFound": ".errors",
    "PayloadTooLarge": ".errors",
    "QueueFull": ".errors",
    "ServerError": ".errors",
    "TooManyRequests": ".errors",
    "TransportError": ".errors",
    "Unauthorized": ".errors",
    "Unavailable": ".errors",
    "UnexpectedResponse": ".errors",
    "WaitTimeout": ".errors",
    "create_app": ".http",
    "Job": ".jobs",
    "JobError": ".jobs",
    "JobStatus": ".jobs",
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
