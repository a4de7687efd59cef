"""One exception tree for graphnursery.

    GraphNurseryError
    ├── ConfigError          a setting has an invalid value (names the setting)
    ├── GraphLoadError       the graph cannot be imported or is not callable
    ├── JobNotFound          no job with that id (never existed, or expired)
    ├── QueueFull            the queue is at capacity; retry after ``retry_after`` seconds
    ├── EngineClosed         the engine is not accepting jobs (stopped or stopping)
    └── StoreError           the job store cannot be opened or used
        └── StoreLocked      another server is using this SQLite database file

The HTTP layer maps each of these to a status code in one place (``http/errors.py``).
"""

from __future__ import annotations


class GraphNurseryError(Exception):
    """Base class of every error graphnursery raises on purpose."""


class ConfigError(GraphNurseryError, ValueError):
    """A setting has an invalid value. The message names the setting."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"invalid setting {setting!r}: {message}")


class GraphLoadError(GraphNurseryError):
    """The graph could not be loaded in a worker process.

    ``error_type`` and ``message`` describe the original exception; ``traceback`` is its
    formatted traceback from the worker process.
    """

    def __init__(self, spec: str, error_type: str, message: str, traceback: str = "") -> None:
        self.spec = spec
        self.error_type = error_type
        self.message = message
        self.traceback = traceback
        super().__init__(f"cannot load graph {spec!r}: {error_type}: {message}")


class JobNotFound(GraphNurseryError, LookupError):
    """No job with this id: it never existed, or its result expired."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id!r} not found")


class QueueFull(GraphNurseryError):
    """The job queue is at capacity."""

    def __init__(self, capacity: int, retry_after: float) -> None:
        self.capacity = capacity
        self.retry_after = retry_after
        super().__init__(f"queue is full ({capacity} jobs waiting)")


class EngineClosed(GraphNurseryError):
    """The engine is not running, so it accepts no jobs."""


class StoreError(GraphNurseryError):
    """The job store cannot be opened or used (bad schema version, missing driver, ...)."""


class StoreLocked(StoreError):
    """Another graphnursery server holds this SQLite database file."""

    def __init__(self, path: str, lock_path: str) -> None:
        self.path = path
        self.lock_path = lock_path
        super().__init__(
            f"the SQLite database {path!r} is in use by another graphnursery server "
            f"(it holds the lock {lock_path!r}); stop that server or pick another --store file"
        )
