"""Optional OpenTelemetry tracing: submit → queued → run spans, with the trace context
carried into the worker process, so spans the graph makes there join the job's trace.

Active only when ``opentelemetry-api`` is installed (the ``tracing`` extra); the program
configures the tracer provider and exporter as usual. Without it every call here is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Status, StatusCode
except ImportError:  # pragma: no cover - exercised when the extra is not installed
    trace = None  # type: ignore[assignment]

from .jobs import Job, JobStatus, Outcome

Carrier = dict[str, str]
_NS = 1_000_000_000


def enabled() -> bool:
    """Whether spans go anywhere: the API is installed and a real provider is set.

    Checked per call (a global read), so a provider set after import is honoured, and a
    program with the API installed but no SDK pays nothing on a job's path.
    """
    if trace is None:
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _tracer() -> Any:
    return trace.get_tracer("graphnursery")


@contextmanager
def remote_parent(headers: Any) -> Iterator[None]:
    """Continue the caller's trace (W3C ``traceparent``) from request headers (any mapping
    whose ``get`` finds the header)."""
    if not enabled():
        yield
        return
    token = otel_context.attach(propagate.extract(headers))
    try:
        yield
    finally:
        otel_context.detach(token)


def submitted(job: Job) -> Carrier | None:
    """Record the submit span; returns the context the job's later spans hang from."""
    if not enabled():
        return None
    with _tracer().start_as_current_span(
        "graphnursery.submit",
        start_time=int(job.created_at * _NS),
        attributes={"graphnursery.job_id": job.id},
    ):
        carrier: Carrier = {}
        propagate.inject(carrier)
        return carrier


class RunTrace:
    """The run span of one attempt: its context goes to the worker, its status is the outcome."""

    def __init__(self, span: Any = None, carrier: Carrier | None = None) -> None:
        self.span = span
        self.carrier = carrier

    def outcome(self, outcome: Outcome) -> None:
        if self.span is None:
            return
        self.span.set_attribute("graphnursery.status", outcome.status.value)
        if outcome.status is not JobStatus.COMPLETED and outcome.error is not None:
            message = f"{outcome.error.type}: {outcome.error.message}"
            self.span.set_status(Status(StatusCode.ERROR, message))


_NO_TRACE = RunTrace()


@contextmanager
def running(job: Job, carrier: Carrier | None) -> Iterator[RunTrace]:
    """Spans for the wait in the queue and for the run, children of the submit span."""
    if carrier is None or not enabled():
        yield _NO_TRACE
        return
    parent = propagate.extract(carrier)
    tracer = _tracer()
    attributes = {"graphnursery.job_id": job.id, "graphnursery.attempt": job.attempts}
    started_ns = int((job.started_at or job.created_at) * _NS)
    queued = tracer.start_span(
        "graphnursery.queued",
        context=parent,
        start_time=int(job.created_at * _NS),
        attributes=attributes,
    )
    queued.end(end_time=started_ns)
    span = tracer.start_span(
        "graphnursery.run", context=parent, start_time=started_ns, attributes=attributes
    )
    worker_carrier: Carrier = {}
    propagate.inject(worker_carrier, context=trace.set_span_in_context(span, parent))
    try:
        yield RunTrace(span, worker_carrier)
    finally:
        span.end()
