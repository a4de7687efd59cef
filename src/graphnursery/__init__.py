"""graphnursery: serve an agent graph over HTTP as asynchronous jobs.

Public names only; see the README for the tour.
"""

from .config import Config
from .engine import Engine, EngineStatistics, open_engine
from .errors import (
    ConfigError,
    EngineClosed,
    GraphLoadError,
    GraphNurseryError,
    JobNotFound,
    QueueFull,
)
from .http import create_app
from .jobs import Job, JobError, JobStatus
from .server import serve, serve_graph

__all__ = [
    "Config",
    "ConfigError",
    "Engine",
    "EngineClosed",
    "EngineStatistics",
    "GraphLoadError",
    "GraphNurseryError",
    "Job",
    "JobError",
    "JobNotFound",
    "JobStatus",
    "QueueFull",
    "create_app",
    "open_engine",
    "serve",
    "serve_graph",
]
