"""Logs, request ids and Prometheus metrics, observed on a real server."""

from __future__ import annotations

import logging
import re

import pytest

from support import finished, running_server

pytestmark = pytest.mark.usefixtures("both_http_paths")


def events(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    """Our structured log events (each record's message is the event dict)."""
    return [r.msg for r in caplog.records if isinstance(r.msg, dict)]


async def test_job_log_lines_carry_the_job_id_including_lines_logged_by_the_graph(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with running_server("tests/graphs/logging_graph.py") as client:
        ok = (await client.post("/jobs", params={"wait": 30}, json={"input": {"n": 7}})).json()
        bad = (await client.post("/jobs", params={"wait": 30}, json={"input": {}})).json()
    graph_lines = [e for e in events(caplog) if e.get("graph_logger") == "my_graph"]
    assert [(e["event"], e["job_id"]) for e in graph_lines] == [
        ("thinking about 7", ok["jobId"]),
        ("almost done", ok["jobId"]),
    ]
    ended = [e for e in events(caplog) if e.get("event") == "job ended"]
    # One line per job: the completed one's without an error, the failed one's with it.
    assert [(e["job_id"], e["status"], e.get("error_type")) for e in ended] == [
        (ok["jobId"], "completed", None),
        (bad["jobId"], "failed", "KeyError"),
    ]
    assert "Traceback" in str(ended[1]["graph_traceback"])


async def test_request_id_is_echoed_and_carried_by_request_log_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="graphnursery.http")
    async with running_server("examples/echo.py") as client:
        given = await client.post("/jobs", json={"input": 1}, headers={"X-Request-ID": "req-42"})
        assert given.headers["x-request-id"] == "req-42"
        made = await client.post("/jobs", json={"input": 2})
        assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
        bogus = await client.get("/live", headers={"X-Request-ID": "bad id\twith spaces"})
        assert bogus.headers["x-request-id"] != "bad id\twith spaces"
    submitted = {
        e["job_id"]: e["request_id"] for e in events(caplog) if e["event"] == "job submitted"
    }
    assert submitted[given.json()["jobId"]] == "req-42"
    assert submitted[made.json()["jobId"]] == made.headers["x-request-id"]


def sample(text: str, name: str, **labels: str) -> float:
    label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = (
        re.escape(name) + (r"\{" + re.escape(label_text) + r"\}" if labels else "") + r" (\S+)"
    )
    match = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    assert match, f"{name}{labels} not in metrics"
    return float(match.group(1))


async def test_metrics_move_after_jobs_of_each_status() -> None:
    async with running_server("tests/graphs/toolbox.py", queue_size=1) as client:
        before = (await client.get("/metrics")).text
        assert sample(before, "graphnursery_jobs_submitted_total", graph="toolbox") == 0
        for job_input, extra in [
            ({"n": 1}, {}),
            ({"raise": "no"}, {}),
            ({"crash": 1}, {}),
            ({"sleep": 30}, {"timeoutSeconds": 0.3}),
        ]:
            submitted = await client.post("/jobs", json={"input": job_input, **extra})
            await finished(client, submitted.json()["jobId"])
        # fill the worker and the queue, then one more is rejected
        await client.post("/jobs", json={"input": {"sleep": 30}})
        await client.post("/jobs", json={"input": {"sleep": 30}})
        assert (await client.post("/jobs", json={"input": {}})).status_code == 429
        text = (await client.get("/metrics")).text
    assert text.startswith("# HELP")
    assert sample(text, "graphnursery_jobs_submitted_total", graph="toolbox") == 6
    for status in ("completed", "failed", "crashed", "timed_out"):
        finished_total = "graphnursery_jobs_finished_total"
        assert sample(text, finished_total, graph="toolbox", status=status) == 1
    assert sample(text, "graphnursery_jobs_rejected_total", reason="queue_full") == 1
    assert sample(text, "graphnursery_job_duration_seconds_count") == 4
    assert sample(text, "graphnursery_job_queue_wait_seconds_count") == 5
    assert sample(text, "graphnursery_queue_depth", graph="toolbox") == 1
    assert sample(text, "graphnursery_workers_busy", graph="toolbox") == 1
    assert sample(text, "graphnursery_workers_idle", graph="toolbox") == 0
    # the crash and the timeout
    assert sample(text, "graphnursery_worker_restarts_total", graph="toolbox") == 2
    assert (
        sample(text, "graphnursery_http_requests_total", method="POST", route="/jobs", code="429")
        == 1
    )
