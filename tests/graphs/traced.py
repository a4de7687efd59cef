"""A graph that makes its own OpenTelemetry span and reports the trace it ran in."""

from opentelemetry import trace


def graph(input):
    current = trace.get_current_span().get_span_context()
    return {"trace_id": f"{current.trace_id:032x}", "parent_span_id": f"{current.span_id:016x}"}
