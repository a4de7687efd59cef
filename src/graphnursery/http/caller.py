"""Who is calling, for the request being answered: set by the pipeline once it has
authenticated the request (``Pipeline.authorize``), read by the handlers for the workspace
their jobs belong to. A context variable: each request's task has its own."""

from __future__ import annotations

from contextvars import ContextVar

from ..auth import ANONYMOUS, Caller

#: ANONYMOUS (the default workspace) when no API key or JWT is configured.
_caller: ContextVar[Caller] = ContextVar("graphnursery_caller", default=ANONYMOUS)


def set_caller(caller: Caller) -> None:
    _caller.set(caller)


def current() -> Caller:
    return _caller.get()


def workspace() -> str:
    """The workspace the caller's new jobs belong to."""
    return _caller.get().workspace


def visible() -> str | None:
    """The workspace whose jobs the caller may see and act on (None: every one, an admin's)."""
    caller = _caller.get()
    return None if caller.admin else caller.workspace
