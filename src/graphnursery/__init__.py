"""graphnursery: serve an agent graph over HTTP as asynchronous jobs.

Public names only; see the README for the tour.
"""

from .client import AsyncClient, Client, Retries
from .config import Config
from .engine import Engine, EngineStatistics, open_engine
from .errors import (
    ApiError,
    ClientError,
    ConfigError,
    Conflict,
    EngineClosed,
    GraphLoadError,
    GraphNurseryError,
    InvalidRequest,
    JobCancelled,
    JobCrashed,
    JobFailed,
    JobNotFound,
    JobTimedOut,
    JobUnsuccessful,
    NotFound,
    PayloadTooLarge,
    QueueFull,
    ServerError,
    TooManyRequests,
    TransportError,
    Unauthorized,
    Unavailable,
    UnexpectedResponse,
    WaitTimeout,
)
from .http import create_app
from .jobs import Job, JobError, JobStatus
from .server import serve, serve_graph

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "ClientError",
    "Config",
    "ConfigError",
    "Conflict",
    "Engine",
    "EngineClosed",
    "EngineStatistics",
    "GraphLoadError",
    "GraphNurseryError",
    "InvalidRequest",
    "Job",
    "JobCancelled",
    "JobCrashed",
    "JobError",
    "JobFailed",
    "JobNotFound",
    "JobStatus",
    "JobTimedOut",
    "JobUnsuccessful",
    "NotFound",
    "PayloadTooLarge",
    "QueueFull",
    "Retries",
    "ServerError",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "UnexpectedResponse",
    "WaitTimeout",
    "create_app",
    "open_engine",
    "serve",
    "serve_graph",
]
