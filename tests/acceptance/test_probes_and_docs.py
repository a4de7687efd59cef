"""The seed's probe bodies, its unknown-route error, and a /docs page that works offline."""

from __future__ import annotations

import re
import signal
import sys
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
import trio

from support import PIPE, answers, read_serving_url, running_server, until_running

TOOLBOX = "tests/graphs/toolbox.py"
ASSET = re.compile(r"""<(?:script|link|img)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""")
CONTENT_TYPES = {".js": ("text/javascript", "application/javascript"), ".css": ("text/css",)}


@pytest.mark.usefixtures("both_http_paths")
async def test_probes_say_ready_and_alive_beside_their_status() -> None:
    async with running_server("examples/echo.py") as client:
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "ready": True}
        live = await client.get("/live")
        assert live.status_code == 200
        assert live.json() == {"status": "alive", "alive": True}


@pytest.mark.usefixtures("both_http_paths")
async def test_an_unknown_route_is_the_seeds_not_found() -> None:
    async with running_server("examples/echo.py") as client:
        for method, path in (("GET", "/no/such/route"), ("POST", "/jobs/a/b/c"), ("GET", "/")):
            response = await client.request(method, path)
            assert response.status_code == 404
            assert response.json() == {"error": "Not found", "code": "not_found"}


async def test_a_draining_server_is_not_ready(workdir: Path) -> None:
    command = [
        sys.executable, "-m", "graphnursery", "serve", TOOLBOX, "--port", "0",
        "--workers", "1", "--store", "memory://", "--shutdown-grace", "60",
    ]  # fmt: skip
    async with trio.open_nursery() as nursery:
        run = partial(trio.run_process, command, stdout=PIPE, cwd=workdir, check=False)
        proc = await nursery.start(run)
        url = await read_serving_url(proc, proc.stdout)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            job = (await client.post("/jobs", json={"input": {"sleep": 60}})).json()
            await until_running(client, job["jobId"])
            assert (await client.get("/ready")).json()["ready"] is True
            proc.send_signal(signal.SIGTERM)
            ready = await answers(client, "/ready", 503)  # once the signal is handled
            assert ready.json() == {"status": "draining", "ready": False}
            assert (await client.get("/live")).json() == {"status": "alive", "alive": True}
        proc.send_signal(signal.SIGTERM)  # the second signal: stop now
        await proc.wait()


def _schema(document: dict[str, Any], path: str, status: str) -> dict[str, Any]:
    content = document["paths"][path]["get"]["responses"][status]["content"]
    schema: dict[str, Any] = content["application/json"]["schema"]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


async def test_the_openapi_document_describes_the_probe_bodies() -> None:
    async with running_server("examples/echo.py") as client:
        document = (await client.get("/openapi.json")).json()
    for status in ("200", "503"):
        ready = _schema(document, "/ready", status)
        assert ready["properties"]["ready"]["type"] == "boolean"
        assert {"status", "ready"} <= set(ready["required"])
    live = _schema(document, "/live", "200")
    assert live["properties"]["alive"]["type"] == "boolean"
    assert {"status", "alive"} <= set(live["required"])


@pytest.mark.parametrize("api_key", [None, "the-key"])
async def test_docs_load_swagger_ui_from_this_server_without_a_key(api_key: str | None) -> None:
    settings = {} if api_key is None else {"api_key": api_key}
    async with running_server("examples/echo.py", **settings) as client:
        docs = await client.get("/docs")
        assert docs.status_code == 200
        assets = ASSET.findall(docs.text)
        assert {Path(urlsplit(asset).path).suffix for asset in assets} == {".js", ".css"}
        for asset in assets:
            assert not urlsplit(asset).netloc, f"{asset} is on another host"
            assert not asset.startswith("//"), asset
            response = await client.get(urljoin(str(docs.url), asset))
            assert response.status_code == 200, asset
            content_type = response.headers["content-type"].split(";")[0]
            assert content_type in CONTENT_TYPES[Path(urlsplit(asset).path).suffix], asset
            assert len(response.content) > 10_000  # Swagger UI itself, not a stub
        assert "https://" not in docs.text and "http://" not in docs.text
        if api_key is not None:
            assert (await client.get("/stats")).status_code == 401
