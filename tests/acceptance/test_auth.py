"""Optional API keys: Bearer header, several keys, probes open, /metrics configurable."""

from __future__ import annotations

import pytest

from support import running_server

pytestmark = pytest.mark.usefixtures("both_http_paths")

KEYS = "first-key,second-key"


async def test_missing_or_wrong_key_is_a_json_401() -> None:
    async with running_server("examples/echo.py", api_key=KEYS) as client:
        for headers in (
            {},
            {"Authorization": "Bearer nope"},
            {"Authorization": "first-key"},
            {"Authorization": "Basic Zmlyc3Qta2V5"},
            {"Authorization": "Bearer first-key,second-key"},
        ):
            response = await client.post("/jobs", json={"input": 1}, headers=headers)
            assert response.status_code == 401, headers
            assert response.json()["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
        assert (await client.get("/stats")).status_code == 401
        assert (await client.get("/metrics")).status_code == 401
        wrong = await client.get("/stats", headers={"Authorization": "Bearer x"})
        assert (wrong.status_code, wrong.json()["code"]) == (401, "unauthorized")
        right = await client.get("/stats", headers={"Authorization": "Bearer second-key"})
        assert right.status_code == 200, right.text
        assert right.json()["total"] == 0  # the refused submits left no job behind


async def test_each_configured_key_is_accepted_and_probes_stay_open() -> None:
    async with running_server("examples/echo.py", api_key=KEYS) as client:
        for key in KEYS.split(","):
            response = await client.post(
                "/jobs",
                params={"wait": 30},
                json={"input": key},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.status_code == 200
            assert response.json()["result"] == {"echo": key}
        for path in ("/health", "/live", "/ready"):
            assert (await client.get(path)).status_code == 200


async def test_metrics_can_be_public_while_the_api_is_not() -> None:
    async with running_server("examples/echo.py", api_key=KEYS, metrics_public=True) as client:
        assert (await client.get("/metrics")).status_code == 200
        assert (await client.get("/stats")).status_code == 401


async def test_without_a_key_configured_everything_is_open() -> None:
    async with running_server("examples/echo.py") as client:
        assert (await client.get("/stats")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200


async def test_two_authorization_headers_are_refused_on_both_paths() -> None:
    """Quart would read the first and an ASGI layer may read the last: neither guesses."""
    async with running_server("examples/echo.py", api_key="k1") as client:
        for wrong_first in (
            [("Authorization", "Bearer nope"), ("Authorization", "Bearer k1")],
            [("Authorization", "Bearer k1"), ("Authorization", "Bearer nope")],
        ):
            for method, path in (("POST", "/jobs"), ("GET", "/stats")):
                response = await client.request(
                    method, path, headers=wrong_first, json={"input": 1}
                )
                assert response.status_code == 400, (path, response.text)
                assert response.json()["code"] == "invalid_header"
                assert response.json()["detail"][0]["field"] == "Authorization"
        listed = await client.get("/jobs", headers={"Authorization": "Bearer k1"})
        assert listed.json()["jobs"] == []  # nothing was submitted


async def test_the_openapi_document_and_docs_are_open_with_keys_set() -> None:
    async with running_server("examples/echo.py", api_key=KEYS) as client:
        document = await client.get("/openapi.json")
        assert document.status_code == 200, document.text
        assert "/jobs" in document.json()["paths"]
        docs = await client.get("/docs")
        assert docs.status_code == 200
        assert "openapi.json" in docs.text
        assert (await client.get("/jobs")).status_code == 401  # the API itself is not open
