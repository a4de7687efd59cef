"""The OpenAPI document, and schemathesis fuzzing a real running server against it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from graphnursery import Config, create_app
from graphnursery.jobs import JSON_INTEGERS

SERVING = re.compile(r"graphnursery: serving .* on (http://\S+?)[, ]")


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """A real server (CLI, port 0, worker processes) for the whole module."""
    command = [sys.executable, "-m", "graphnursery", "serve", "examples/echo.py"]
    command += ["--port", "0", "--workers", "1", "--max-wait", "2", "--job-timeout", "5"]
    command += ["--store", "memory://"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            match = SERVING.search(line)
            if match:
                break
        else:
            raise AssertionError("server exited before serving")
        yield match.group(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def api_schema(server_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{server_url}/openapi.json")


def test_document_covers_every_route(server_url: str) -> None:
    document = httpx.get(f"{server_url}/openapi.json").json()
    assert document["openapi"].startswith("3.")
    app = create_app(Config(graph="examples/echo.py"))
    routes = {
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and rule.rule not in {"/openapi.json", "/docs"}
    }
    assert routes == set(document["paths"])
    assert document["paths"]["/execute"]["post"]["requestBody"]
    assert "429" in document["paths"]["/jobs"]["post"]["responses"]


def test_docs_page_is_served(server_url: str) -> None:
    response = httpx.get(f"{server_url}/docs")
    assert response.status_code == 200
    assert "openapi.json" in response.text


def holds_wide_integer(value: object) -> bool:
    low, high = JSON_INTEGERS
    if isinstance(value, dict):
        return any(holds_wide_integer(item) for item in value.values())
    if isinstance(value, list):
        return any(holds_wide_integer(item) for item in value)
    return isinstance(value, int) and not low <= value <= high


def test_api_never_answers_5xx_nor_off_schema(api_schema: schemathesis.BaseSchema) -> None:
    """Every operation, a bounded number of generated requests each, all of schemathesis'
    checks: no 5xx, status codes, content types and bodies as documented."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            # An opaque cursor only the server makes cannot be described by a schema: any
            # other string is rightly refused, which is not "valid data rejected".
            lists = case.operation.path == "/jobs" and case.method == "GET"
            # Nor what a flow or a schedule must be beyond its shape: a DAG whose node types
            # import, a cron expression croniter reads, a target that is served.
            semantic = (case.method, case.operation.path) in {
                ("POST", "/flows"),
                ("POST", "/schedules"),
                ("PATCH", "/schedules/{schedule_id}"),
            }
            # Nor can JSON Schema bound the integers inside an "any value" input: the
            # schema says in words that past 64 bits they are refused (and test_http_api
            # checks that they are, naming where).
            excluded = (
                [schemathesis.checks.positive_data_acceptance]
                if lists or semantic or holds_wide_integer(case.body)
                else []
            )
            case.call_and_validate(excluded_checks=excluded)

        check()
