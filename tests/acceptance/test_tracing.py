"""OpenTelemetry spans for submit → queued → run, and the trace carried into the worker."""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the 'tracing' extra and the SDK")

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from support import running_server

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def tracer_provider() -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)


async def test_job_spans_share_the_callers_trace_and_reach_the_worker() -> None:
    EXPORTER.clear()
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{caller_trace}-00f067aa0ba902b7-01"
    async with running_server("tests/graphs/traced.py") as client:
        response = await client.post(
            "/jobs", params={"wait": 30}, json={"input": {}}, headers={"traceparent": traceparent}
        )
        job = response.json()
    assert job["status"] == "completed"
    spans = {span.name: span for span in EXPORTER.get_finished_spans()}
    submit, queued, run = (
        spans["graphnursery.submit"],
        spans["graphnursery.queued"],
        spans["graphnursery.run"],
    )
    for span in (submit, queued, run):
        assert f"{span.context.trace_id:032x}" == caller_trace
        assert span.attributes["graphnursery.job_id"] == job["jobId"]
    assert queued.parent.span_id == submit.context.span_id
    assert run.parent.span_id == submit.context.span_id
    assert run.attributes["graphnursery.status"] == "completed"
    # inside the worker process, the graph ran in the run span's context
    assert job["result"] == {
        "trace_id": caller_trace,
        "parent_span_id": f"{run.context.span_id:016x}",
    }


async def test_a_failed_job_marks_its_run_span_as_an_error() -> None:
    EXPORTER.clear()
    async with running_server("examples/flaky.py") as client:
        job = (await client.post("/jobs", params={"wait": 30}, json={"input": {}})).json()
    assert job["status"] == "failed"
    run = next(s for s in EXPORTER.get_finished_spans() if s.name == "graphnursery.run")
    assert run.status.status_code.name == "ERROR"
    assert "UpstreamError" in (run.status.description or "")
