"""The LangGraph Platform API through LangGraph's JS client (``@langchain/langgraph-sdk``,
pinned in ``tests/js/package-lock.json``) under Node.js, against a real server: the client
streams a stateless run as it would from LangGraph's own server (issue 19).

``tests/js/stream_run.mjs`` does the client's part and prints what it received as JSON. The
node packages are installed once a session with ``npm ci`` when ``tests/js/node_modules`` is
missing or was installed from another lock file. Without ``node``/``npm``, or when ``npm ci``
fails, the test skips, saying why; in CI (``CI=true``, ``CI=1``, ...) it fails instead.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

from postgres import IN_CI  # the one reading of CI's variable (CI=true, CI=1, ...)
from support import deadline, running_server

JS = Path(__file__).resolve().parents[1] / "js"
NODE_MODULES = JS / "node_modules"
#: What the installed node_modules were installed from (a hash of package.json and the lock).
INSTALLED_FROM = NODE_MODULES / ".graphnursery-installed-from"
LANGGRAPH = str(Path(__file__).resolve().parents[1] / "graphs" / "lg_stream.py")
TOOLBOX = str(Path(__file__).resolve().parents[1] / "graphs" / "toolbox.py")
REPLY = "tokens stream one by one"  # what lg_stream.py's fake chat model answers
NPM_CI_SECONDS = 150  # a cold install takes a few seconds here; under pytest-timeout's 180


def _cannot_run(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message}: the JS client test must run in CI")
    pytest.skip(f"SKIPPING THE JS CLIENT TEST: {message}")


def _lock_digest() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((JS / name).read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def node() -> str:
    """The ``node`` to run the scripts in tests/js with, once its packages are installed as
    the lock file says (``npm ci`` when node_modules is missing or stale)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _cannot_run("node and npm are needed (Node.js 20 or newer) and not on PATH")
    assert node is not None and npm is not None
    wanted = _lock_digest()
    if not INSTALLED_FROM.is_file() or INSTALLED_FROM.read_text() != wanted:
        try:
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=JS,
                capture_output=True,
                text=True,
                check=True,
                timeout=NPM_CI_SECONDS,
            )
        except subprocess.CalledProcessError as failed:
            _cannot_run(f"npm ci in {JS} exited {failed.returncode}:\n{failed.stderr}")
        except subprocess.TimeoutExpired:
            _cannot_run(f"npm ci in {JS} took more than {NPM_CI_SECONDS} s")
        INSTALLED_FROM.write_text(wanted)
    return node


async def run_script(node: str, script: str, *args: str) -> dict[str, Any]:
    """``node tests/js/SCRIPT ARGS...``: its stdout, parsed; an AssertionError with its
    stderr if it fails."""
    with deadline(60, f"node {script} to finish"):
        done = await trio.run_process(
            [node, script, *args], cwd=JS, capture_stdout=True, capture_stderr=True, check=False
        )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    output: dict[str, Any] = json.loads(done.stdout)
    return output


async def test_the_js_client_streams_a_stateless_run(node: str) -> None:
    async with running_server(f"chat={LANGGRAPH} tools={TOOLBOX}:graph") as http:
        got = await run_script(node, "stream_run.mjs", str(http.base_url))
    assert got["thread_id"] is None
    assert got["run_created"] == {"run_id": got["metadata"]["run_id"]}
    check_streamed(got)


async def test_the_js_client_creates_a_thread_and_streams_a_run_on_it(node: str) -> None:
    async with running_server(f"chat={LANGGRAPH} tools={TOOLBOX}:graph") as http:
        got = await run_script(node, "stream_run.mjs", "--thread", str(http.base_url))
        tid = got["thread_id"]
        assert got["run_created"] == {"run_id": got["metadata"]["run_id"], "thread_id": tid}
        check_streamed(got)
        thread = (await http.get(f"/threads/{tid}")).json()
        assert thread["metadata"]["graph_id"] == "chat" and thread["status"] == "idle"
        state = (await http.get(f"/threads/{tid}/state")).json()
        assert state["values"]["messages"][-1]["content"] == REPLY


def check_streamed(got: dict[str, Any]) -> None:
    """What the client saw of the chat graph's run, streamed: its events and tokens."""
    assert got["assistants"] == ["chat", "tools"]
    events = got["events"]
    # The JS client yields each SSE event under the name the server gave it: messages-tuple
    # events are "messages" ([chunk, metadata]), as LangGraph's server names them.
    assert events[0] == "metadata" and got["metadata"]["run_id"]
    assert events.count("metadata") == 1
    assert {"values", "updates", "messages"} <= set(events)
    assert events.count("messages") > 1  # token by token, not one message
    assert got["tokens"] == REPLY
    # Every chunk of one message, typed as LangChain's JS reads it (chunks merge by id).
    assert got["message_types"] == ["AIMessageChunk"]
    [message_id] = got["message_ids"]
    assert message_id
    assert got["last_values"]["messages"][-1]["content"] == REPLY
    assert "error" not in events and got["errors"] == []
