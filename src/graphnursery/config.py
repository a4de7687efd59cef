"""The frozen configuration object, filled from keyword arguments, CLI flags or the environment."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .auth import Authenticator, JwtSettings, parse_api_keys
from .errors import ConfigError
from .quotas import Limits, WorkspaceLimits, parse_limits
from .sources import GraphSpec, parse_graphs
from .store.url import StoreURL, parse_store_url

ENV_PREFIX = "GRAPHNURSERY_"
MAX_ATTEMPTS = 100
#: What a workspace may be called (in API keys, JWT claims and the limits' tables).
WORKSPACE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
RETRYABLE = frozenset({"crashed", "timed_out", "failed"})


def _setting(default: Any, help: str, **kwargs: Any) -> Any:
    return field(default=default, metadata={"help": help}, **kwargs)


def _default_workers() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class Config:
    """Every setting of a graphnursery server. Invalid values raise :class:`ConfigError`.

    Each field is also a CLI flag (``--job-timeout``) and an environment variable
    (``GRAPHNURSERY_JOB_TIMEOUT``).
    """

    graph: str = field(
        metadata={
            "help": "the graphs, space-separated: 'package.module:attr', 'path/to/file.py:attr', "
            "'name=SOURCE', a flow's .json file, a langgraph.json or a graphnursery .toml "
            "file; the first is the default graph"
        }
    )
    workers: int = field(
        default_factory=_default_workers,
        metadata={"help": "worker processes, i.e. jobs running at once (default: CPU count)"},
    )
    flow_workers: int = _setting(
        1, "worker processes of each flow stored with POST /flows (its own queue too)"
    )
    host: str = _setting("127.0.0.1", "address to listen on")
    port: int = _setting(8000, "port to listen on; 0 picks a free port")
    queue_size: int = _setting(1000, "jobs that may wait for a worker; more answer 429")
    job_timeout: float = _setting(300.0, "seconds a job may run before it is killed")
    max_job_timeout: float = _setting(3600.0, "largest timeoutSeconds a client may ask for")
    result_ttl: float = _setting(3600.0, "seconds a finished job is kept before eviction")
    max_body_bytes: int = _setting(10 * 1024 * 1024, "largest request body accepted (413)")
    max_wait: float = _setting(300.0, "largest ?wait= long-poll, in seconds")
    body_timeout: float = _setting(
        60.0, "seconds a request body may take to arrive once its headers have (408)"
    )
    max_attempts: int = _setting(1, "attempts a job gets when its run ends in a retry_on status")
    retry_backoff: float = _setting(
        1.0, "seconds before a retry, doubled per attempt, with full jitter (capped at 300)"
    )
    retry_on: str = _setting(
        "crashed,timed_out", "comma-separated statuses that retry: crashed, timed_out, failed"
    )
    max_jobs_per_worker: int = _setting(
        0, "recycle a worker process after this many jobs (0: never)"
    )
    max_worker_memory_mb: int = _setting(
        0, "recycle a worker process after a job that leaves it above this RSS (0: never)"
    )
    max_result_bytes: int = _setting(
        50 * 1024 * 1024,
        "largest result a job may return, as JSON; a larger one fails the job (ResultTooLarge)",
    )
    max_job_events: int = _setting(
        10_000,
        "events a job's log keeps (what its graph emits, across attempts); past it they are "
        "dropped and counted, and the job's end says how many (0: no bound)",
    )
    stream_heartbeat: float = _setting(
        5.0, "seconds between the comments an idle event stream sends to keep it open"
    )
    max_job_memory_mb: int = _setting(
        0,
        "kill a job's worker process the moment its RSS passes this, mid-job: the job ends "
        "crashed (MemoryLimitExceeded) (0: no ceiling)",
    )
    shutdown_grace: float = _setting(
        30.0, "on SIGTERM/SIGINT, seconds running jobs may take to finish before they are killed"
    )
    log_level: str = _setting("info", "debug, info, warning or error")
    fast_path: bool = _setting(
        True, "answer submits and job reads below Quart (same answers, less CPU per request)"
    )
    engine_thread: bool = _setting(
        True,
        "run the engine (runners, worker processes, store) in a thread with a Trio loop of "
        "its own, so busy HTTP never delays jobs",
    )
    gil_switch_interval: float = _setting(
        0.0001,
        "with engine_thread: seconds a thread may keep Python's GIL while another waits for "
        "it (sys.setswitchinterval; Python's own is 0.005); short, so the engine gets the GIL "
        "at once however busy HTTP is",
    )
    log_format: str = _setting("auto", "json, console, or auto (console on a TTY, else json)")
    api_key: str = _setting(
        "",
        "API keys clients send as 'Authorization: Bearer KEY' or 'x-api-key: KEY', "
        "comma-separated: KEY (the default workspace), KEY=WORKSPACE, KEY=WORKSPACE:admin",
    )
    jwt_secret: str = _setting("", "accept JWT bearer tokens signed HS256 with this secret")
    jwt_jwks: str = _setting(
        "", "accept JWT bearer tokens signed RS256/ES256 by the keys of this JWKS file or URL"
    )
    jwt_issuer: str = _setting("", "JWTs must have this iss (checked when set)")
    jwt_audience: str = _setting("", "JWTs must have this aud (checked when set)")
    jwt_workspace_claim: str = _setting("workspace", "the JWT claim naming the workspace")
    jwt_admin_claim: str = _setting(
        "role", "the JWT claim that makes an admin when it is (or lists) 'admin'"
    )
    workspace_max_running: int = _setting(
        0, "jobs of one workspace running at once, on each graph (0: no limit)"
    )
    workspace_max_queued: int = _setting(
        0, "jobs of one workspace waiting, on each graph; more answer 429 (0: no limit)"
    )
    workspace_rate: float = _setting(
        0.0, "submits per second one workspace may make (token bucket; 0: no limit)"
    )
    workspace_burst: int = _setting(0, "submits one workspace may make at once (0: the rate)")
    workspace_limits: str = _setting(
        "",
        "per-workspace limits over the workspace_* ones, as JSON: "
        '{"team-a": {"max_running": 2, "rate": 5}} (a TOML file\'s [workspaces.NAME] tables)',
    )
    metrics_public: bool = _setting(False, "serve /metrics without the API key")
    store: str = _setting(
        "sqlite:///./graphnursery.db",
        "where jobs are kept: memory://, sqlite:///relative.db, sqlite:////abs/path.db "
        "or postgresql://user@host/db",
    )
    lease_seconds: float = _setting(
        30.0,
        "postgresql store: seconds a replica's claim on a running job lasts without a "
        "heartbeat; after that another replica re-runs the job",
    )
    store_unavailable_exit: float = _setting(
        60.0,
        "postgresql store: seconds the database may stay unreachable (operations retrying) "
        "before they fail and the server stops",
    )
    #: ``store``, parsed once (by validation); not a setting of its own.
    store_url: StoreURL = field(init=False, repr=False, compare=False)
    #: ``graph``, parsed once (by validation): the graphs served, the default one first.
    graphs: tuple[GraphSpec, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.graph, str) or not self.graph.strip():
            raise ConfigError("graph", "give the graph as 'module:attr' or 'file.py:attr'")
        object.__setattr__(self, "graphs", parse_graphs(self.graph))
        _positive_int(self, "workers")
        _positive_int(self, "flow_workers")
        _positive_int(self, "queue_size")
        _positive_int(self, "max_body_bytes")
        _positive_int(self, "max_result_bytes")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError("port", f"must be an integer from 0 to 65535, got {self.port!r}")
        if not isinstance(self.host, str) or not self.host:
            raise ConfigError("host", "must be a non-empty address")
        if not isinstance(self.store, str):
            raise ConfigError("store", f"must be a URL string, got {self.store!r}")
        object.__setattr__(self, "store_url", parse_store_url(self.store))
        for name in (
            "job_timeout",
            "max_job_timeout",
            "result_ttl",
            "max_wait",
            "body_timeout",
            "lease_seconds",
            "store_unavailable_exit",
            "gil_switch_interval",
            "stream_heartbeat",
        ):
            _positive_number(self, name)
        if self.job_timeout > self.max_job_timeout:
            raise ConfigError(
                "job_timeout",
                f"{self.job_timeout} exceeds max_job_timeout ({self.max_job_timeout})",
            )
        _positive_int(self, "max_attempts")
        if self.max_attempts > MAX_ATTEMPTS:
            raise ConfigError("max_attempts", f"must be at most {MAX_ATTEMPTS}")
        if isinstance(self.retry_backoff, bool) or not isinstance(self.retry_backoff, int | float):
            raise ConfigError("retry_backoff", "must be a number of seconds")
        if not 0 <= self.retry_backoff <= 300:
            raise ConfigError(
                "retry_backoff", f"must be from 0 to 300 s, got {self.retry_backoff!r}"
            )
        unknown = set(self.retry_statuses) - RETRYABLE
        if unknown or not isinstance(self.retry_on, str):
            raise ConfigError(
                "retry_on", f"must name statuses among {', '.join(sorted(RETRYABLE))}"
            )
        for name in (
            "max_jobs_per_worker",
            "max_worker_memory_mb",
            "max_job_memory_mb",
            "max_job_events",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(name, f"must be 0 or a positive integer, got {value!r}")
        if self.log_level.lower() not in {"debug", "info", "warning", "error"}:
            raise ConfigError(
                "log_level", f"must be debug/info/warning/error, not {self.log_level!r}"
            )
        if self.log_format not in {"auto", "json", "console"}:
            raise ConfigError("log_format", f"must be auto/json/console, not {self.log_format!r}")
        try:
            grants = parse_api_keys(self.api_key)
        except ValueError as exc:
            raise ConfigError("api_key", str(exc)) from None
        for grant in grants.values():
            if not WORKSPACE_NAME.fullmatch(grant.workspace):
                raise ConfigError(
                    "api_key", f"workspace {grant.workspace!r}: letters, digits, '.', '_', '-'"
                )
        self._check_limits()
        if self.jwt_secret or self.jwt_jwks:
            try:
                self.jwt_settings()
            except ValueError as exc:
                setting = "jwt_secret" if self.jwt_secret else "jwt_jwks"
                raise ConfigError(setting, str(exc)) from None
        for spec in self.graphs:
            if spec.settings:
                self.for_graph(spec)  # its own settings are checked as the server's are

    def _check_limits(self) -> None:
        try:
            tables = json.loads(self.workspace_limits) if self.workspace_limits else {}
        except ValueError as exc:
            raise ConfigError("workspace_limits", f"not JSON: {exc}") from None
        if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
            raise ConfigError("workspace_limits", 'must map workspaces to tables: {"team-a": {}}')
        for name in tables:
            if not WORKSPACE_NAME.fullmatch(name):
                raise ConfigError("workspace_limits", f"{name!r} is not a workspace name")
        try:
            self.workspace_limits_by_name()
        except ConfigError as exc:
            where = "workspace_limits" if self.workspace_limits else "workspace_"
            raise ConfigError(
                f"{where}{'' if where.endswith('_') else '.'}{exc.setting}", exc.reason
            ) from None

    @property
    def default_graph(self) -> GraphSpec:
        return self.graphs[0]

    def for_graph(self, spec: GraphSpec) -> Config:
        """The settings one graph runs with: the server's, with the graph's own over them."""
        if not spec.settings and len(self.graphs) == 1 and spec.source == self.graph:
            return self
        try:
            return dataclasses.replace(self, graph=spec.source, **spec.settings)
        except ConfigError as exc:
            raise ConfigError(f"graphs.{spec.name}.{exc.setting}", exc.reason) from None

    @property
    def retry_statuses(self) -> frozenset[str]:
        return frozenset(part.strip() for part in self.retry_on.split(",") if part.strip())

    def workspace_limits_by_name(self) -> Limits:
        """Each workspace's limits (``workspace_*``, and ``workspace_limits``' own, which
        take the others' where they give none: a rate its burst too)."""
        default = WorkspaceLimits(
            max_running=self.workspace_max_running,
            max_queued=self.workspace_max_queued,
            rate=self.workspace_rate,
            burst=self.workspace_burst,
        )
        own: dict[str, WorkspaceLimits] = {}
        for name, table in (
            json.loads(self.workspace_limits) if self.workspace_limits else {}
        ).items():
            base: dict[str, Any] = {
                "max_running": default.max_running,
                "max_queued": default.max_queued,
            }
            if "rate" not in table:
                base.update(rate=default.rate, burst=default.burst)
            own[name] = parse_limits({**base, **table})
        return Limits(default, own)

    def authenticator(self) -> Authenticator:
        """Who may call, as the ``api_key`` and ``jwt_*`` settings say."""
        return Authenticator(parse_api_keys(self.api_key), self.jwt_settings())

    def jwt_settings(self) -> JwtSettings | None:
        if not (self.jwt_secret or self.jwt_jwks):
            return None
        return JwtSettings(
            secret=self.jwt_secret,
            jwks=self.jwt_jwks,
            issuer=self.jwt_issuer,
            audience=self.jwt_audience,
            workspace_claim=self.jwt_workspace_claim,
            admin_claim=self.jwt_admin_claim,
        )

    @property
    def authenticates(self) -> bool:
        """Whether callers must present an API key or a JWT."""
        return bool(self.api_key.strip() or self.jwt_secret or self.jwt_jwks)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        defaults: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> Config:
        """Build a config from ``GRAPHNURSERY_*`` variables over ``defaults`` (a config
        file's); ``overrides`` win over both."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = dict(defaults or {})
        for f in settings():
            if overrides.get(f.name) is not None:
                continue  # overridden: its variable is not read at all
            variable = ENV_PREFIX + f.name.upper()
            raw = environ.get(variable)
            if raw is not None and raw != "":
                try:
                    values[f.name] = parse_setting(f.name, raw)
                except ConfigError as exc:
                    raise ConfigError(f.name, f"{exc.reason} (from {variable})") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "graph" not in values:
            raise ConfigError("graph", f"set {ENV_PREFIX}GRAPH to 'module:attr' or 'file.py:attr'")
        return cls(**values)


def settings() -> tuple[dataclasses.Field[Any], ...]:
    """Every setting of :class:`Config` (its fields but the derived ones), in order."""
    return tuple(f for f in dataclasses.fields(Config) if f.init)


def setting_types() -> dict[str, type]:
    """Each setting's value type, for parsing text (CLI flags, environment variables)."""
    types = {"int": int, "float": float, "str": str, "bool": bool}
    return {f.name: types[str(f.type)] for f in settings()}


def parse_setting(name: str, raw: str) -> Any:
    kind = setting_types()[name]
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(name, f"expected true or false, got {raw!r}")
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(name, f"expected {kind.__name__}, got {raw!r}") from None


def _positive_int(config: Config, name: str) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(name, f"must be a positive integer, got {value!r}")


def _positive_number(config: Config, name: str) -> None:
    value = getattr(config, name)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(name, f"must be a positive number of seconds, got {value!r}")
