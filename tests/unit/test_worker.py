"""The worker-side module, called in this process: loading graphs, calling them, JSON results."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from graphnursery import _worker


def run(spec: str, job_input: object = None) -> tuple[object, ...]:
    """Load ``spec`` and run one job; the reply without its trailing log records."""
    _worker.initialize(spec)
    return call(job_input)


def call(job_input: object = None) -> tuple[object, ...]:
    """The reply of one job, its result decoded, without its trailing log records."""
    reply = _worker.run_job(job_input)[:-1]
    if reply[0] == "ok":
        assert isinstance(reply[1], bytes)  # encoded once, in the worker
        return ("ok", orjson.loads(reply[1]))
    return reply


@pytest.mark.parametrize(
    ("attr", "kind"),
    [
        ("plain", "plain"),
        ("invokable", "invoke"),
        ("ainvokable", "ainvoke"),
        ("executable", "execute"),
    ],
)
def test_each_graph_kind_is_called_with_the_input(attr: str, kind: str) -> None:
    assert run(f"tests/graphs/kinds.py:{attr}", {"q": 1}) == (
        "ok",
        {"kind": kind, "input": {"q": 1}},
    )


def test_async_graphs_share_one_event_loop_per_worker() -> None:
    first = run("tests/graphs/kinds.py:coroutine")
    second = call(None)
    assert first[0] == second[0] == "ok"
    assert first[1]["kind"] == "async"  # type: ignore[index]
    assert first[1] == second[1]


def test_module_import_string_is_loaded() -> None:
    assert run("graphs.kinds:plain", 3) == ("ok", {"kind": "plain", "input": 3})


def test_default_attribute_is_graph_then_create_graph() -> None:
    assert run("examples/echo.py", {"a": 1}) == ("ok", {"echo": {"a": 1}})
    # no `graph`: the factory is called once, and its graph keeps state across jobs
    assert run("tests/graphs/factory_only.py", {}) == ("ok", {"calls": 1})
    assert call({}) == ("ok", {"calls": 2})


@pytest.mark.parametrize(
    ("attr", "expected"),
    [
        ("pydantic_result", {"text": "hi", "score": 0.5}),
        ("dataclass_result", {"x": 1, "y": 2}),
        ("tuple_result", [1, "two", None]),
        (
            "mixed_result",
            {"answer": {"text": "hi", "score": 0.5}, "points": [{"x": 1, "y": 2}], "1": "one"},
        ),
        (
            "enum_and_uuid_result",
            {"colour": "red", "id": "00000000-0000-0000-0000-000000000001"},
        ),
    ],
)
def test_results_become_json(attr: str, expected: object) -> None:
    assert run(f"tests/graphs/kinds.py:{attr}") == ("ok", expected)


@pytest.mark.parametrize(
    ("attr", "named"), [("object_result", "object"), ("datetime_result", "datetime")]
)
def test_result_without_json_form_is_an_error(attr: str, named: str) -> None:
    reply = run(f"tests/graphs/kinds.py:{attr}")
    assert reply[:2] == ("error", "ResultNotSerializable")
    assert f"value of type {named} has no JSON form" in reply[2]  # type: ignore[operator]


def test_the_result_is_sent_as_its_json_text() -> None:
    _worker.initialize("examples/echo.py")
    assert _worker.run_job({"a": [1, "x"]})[:2] == ("ok", b'{"echo":{"a":[1,"x"]}}')


def test_graph_exception_comes_back_as_type_message_traceback() -> None:
    reply = run("examples/flaky.py", {})
    assert reply[:3] == ("error", "UpstreamError", "the upstream model answered 503")
    assert "Traceback" in reply[3]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("spec", "error_type"),
    [
        ("tests/graphs/broken_import.py", "ModuleNotFoundError"),
        ("tests/graphs/missing_file.py", "FileNotFoundError"),
        ("tests/graphs/kinds.py:nope", "AttributeError"),
        ("graphnursery_no_such_package:graph", "ModuleNotFoundError"),
    ],
)
def test_load_failure_is_reported_not_raised(spec: str, error_type: str) -> None:
    _worker.initialize(spec)
    reply = _worker.check_loaded()
    assert reply[:2] == ("error", error_type)
    # a job on such a worker fails saying so
    reply = _worker.run_job({})
    assert reply[:2] == ("error", "GraphLoadError")
    assert reply[2].startswith(error_type)


def test_worker_module_imports_neither_trio_nor_quart() -> None:
    code = (
        "import sys, graphnursery._worker; "
        "print(sorted(m for m in sys.modules"
        " if m.split('.')[0] in {'trio', 'quart', 'quart_trio', 'hypercorn'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


#: The public names the README and the spec name: the entry points, the job's record, and
#: the exception tree of ``graphnursery.errors`` without the store's errors.
PUBLIC_NAMES = {
    *("serve_graph", "serve", "create_app", "open_engine", "Engine", "EngineStatistics"),
    *("Config", "Client", "AsyncClient", "Retries", "StreamEvent", "emit"),
    *("Job", "JobError", "JobStatus"),
    *("GraphNurseryError", "ConfigError", "GraphLoadError", "JobNotFound", "QueueFull"),
    *("EngineClosed", "EngineFailed", "JobConflict", "ClientError", "TransportError"),
    *("UnexpectedResponse", "WaitTimeout", "ApiError", "InvalidRequest", "Unauthorized"),
    *("NotFound", "Conflict", "PayloadTooLarge", "TooManyRequests", "Unavailable"),
    *("ServerError", "JobUnsuccessful", "JobFailed", "JobTimedOut", "JobCrashed"),
    "JobCancelled",
}


def test_public_names_are_exported() -> None:
    import graphnursery

    assert set(graphnursery.__all__) == PUBLIC_NAMES
    for name in graphnursery.__all__:
        value = getattr(graphnursery, name)
        assert value.__name__ == name, name  # the object itself, not a stand-in
        assert value.__module__.startswith("graphnursery."), name


def test_the_exception_tree_is_the_one_errors_documents() -> None:
    """Every error class of ``graphnursery.errors`` is drawn in its docstring's tree, and
    each one drawn directly subclasses the one it is drawn under."""
    import re

    from graphnursery import errors

    assert errors.__doc__ is not None
    tree = errors.__doc__.split("\n\n")[1]  # the drawing: the docstring's second paragraph
    drawn: dict[str, type] = {}
    parents: dict[int, type] = {}
    for line in tree.splitlines():
        name = re.search(r"[A-Z][A-Za-z]+", line)
        assert name is not None, line
        depth = (name.start() - 4) // 4  # four columns a level, under a four-column indent
        cls = getattr(errors, name.group())
        if depth:
            assert parents[depth - 1] in cls.__bases__, (cls, parents[depth - 1])
        parents[depth] = drawn[name.group()] = cls
    defined = {
        name: value
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.GraphNurseryError)
    }
    assert drawn == defined


def test_graph_log_records_come_back_with_the_reply() -> None:
    _worker.initialize("tests/graphs/logging_graph.py")
    reply = _worker.run_job({"n": 2})
    assert reply[0] == "ok"
    levels_and_messages = [(level, message) for level, _, message in reply[-1]]
    assert levels_and_messages == [(20, "thinking about 2"), (30, "almost done")]
    # the next job starts with none of the previous job's records
    assert next(m for _, _, m in _worker.run_job({"n": 3})[-1]) == "thinking about 3"


def test_log_records_per_job_are_bounded() -> None:
    _worker.initialize("tests/graphs/logging_graph.py")
    records = _worker.run_job({"n": 1, "spam": 1000})[-1]
    assert len(records) == _worker.MAX_LOG_RECORDS + 1
    assert "dropped" in records[-1][2]
