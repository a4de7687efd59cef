"""Workspaces: who is calling (API keys, JWTs), and what each sees. Every route of the
OpenAPI document is walked with another workspace's ids, so a new route cannot forget to
check. Real worker processes, real hypercorn."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from support import running_server

ECHO = str(Path(__file__).resolve().parents[2] / "examples" / "echo.py")
TOOLBOX = str(Path(__file__).resolve().parents[1] / "graphs" / "toolbox.py") + ":graph"
KEYS = "key-a=team-a,key-b=team-b,key-root=ops:admin,key-plain"
SECRET = "a-shared-secret-of-at-least-32-bytes!"


def as_(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def token(workspace: str | None, **claims: Any) -> str:
    payload: dict[str, Any] = {"sub": "someone", "exp": int(time.time()) + 300, **claims}
    if workspace is not None:
        payload["workspace"] = workspace
    return jwt.encode(payload, SECRET, algorithm="HS256")


async def submit(client: httpx.AsyncClient, key: str, **body: Any) -> dict[str, Any]:
    answer = await client.post("/jobs?wait=30", json={"input": {"n": 1}, **body}, headers=as_(key))
    assert answer.status_code in (200, 202), answer.text
    job: dict[str, Any] = answer.json()
    return job


def paths_with(document: dict[str, Any], parameter: str) -> list[tuple[str, str]]:
    """(method, path) of every operation whose path has ``{parameter}``."""
    return [
        (method.upper(), path)
        for path, operations in document["paths"].items()
        if "{" + parameter + "}" in path
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    ]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store's URL: the isolation is the store's lookups' (PostgreSQL's in its SQL)."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


async def test_no_route_lets_one_workspace_reach_anothers_jobs(any_store: str) -> None:
    async with running_server(ECHO, api_key=KEYS, store=any_store) as client:
        mine = await submit(client, "key-a")
        assert mine["status"] == "completed" and mine["workspace"] == "team-a"
        schedule = await client.post(
            "/schedules", json={"target": "echo", "cron": "0 0 1 1 *"}, headers=as_("key-a")
        )
        assert schedule.status_code == 201
        document = (await client.get("/openapi.json")).json()

        ids = {"job_id": mine["jobId"], "schedule_id": schedule.json()["id"]}
        walked = 0
        for parameter, value in ids.items():
            for method, path in paths_with(document, parameter):
                url = path.replace("{" + parameter + "}", value)
                theirs = await client.request(method, url, json={}, headers=as_("key-b"))
                assert theirs.status_code == 404, (method, path, theirs.text)
                assert value not in theirs.text or "not found" in theirs.json()["error"]
                walked += 1
        assert walked >= 7  # jobs: read, events, cancel, retry; schedules: read, change, delete

        # Every GET without parameters: nothing of team-a's in team-b's answers.
        for path, operations in document["paths"].items():
            if "get" in operations and "{" not in path and path not in {"/docs"}:
                answer = await client.get(path, headers=as_("key-b"))
                assert mine["jobId"] not in answer.text, path
                assert ids["schedule_id"] not in answer.text, path

        # And team-a still reaches them all; an admin reaches them too.
        assert (await client.get(f"/jobs/{mine['jobId']}", headers=as_("key-a"))).status_code == 200
        root = await client.get(f"/jobs/{mine['jobId']}", headers=as_("key-root"))
        assert root.status_code == 200
        listed = (await client.get("/jobs", headers=as_("key-root"))).json()["jobs"]
        assert mine["jobId"] in [job["jobId"] for job in listed]


async def test_the_same_idempotency_key_in_two_workspaces_is_two_jobs(any_store: str) -> None:
    async with running_server(ECHO, api_key=KEYS, store=any_store) as client:
        key = {"Idempotency-Key": "order-1"}
        a1 = await client.post("/jobs", json={"input": 1}, headers={**as_("key-a"), **key})
        a2 = await client.post("/jobs", json={"input": 2}, headers={**as_("key-a"), **key})
        b1 = await client.post("/jobs", json={"input": 3}, headers={**as_("key-b"), **key})
        assert a1.json()["jobId"] == a2.json()["jobId"]
        assert b1.json()["jobId"] != a1.json()["jobId"]
        assert b1.json()["workspace"] == "team-b"


async def test_x_api_key_and_a_bare_key_are_the_default_workspace() -> None:
    async with running_server(ECHO, api_key=KEYS) as client:
        answer = await client.post("/jobs", json={"input": 1}, headers={"x-api-key": "key-plain"})
        assert answer.status_code == 202 and answer.json()["workspace"] == "default"
        wrong = await client.post("/jobs", json={"input": 1}, headers={"x-api-key": "nope"})
        assert wrong.status_code == 401 and wrong.json()["code"] == "unauthorized"
        assert "nope" not in wrong.text and "key-a" not in wrong.text


async def test_jwt_callers_get_their_workspace_and_bad_tokens_say_why() -> None:
    async with running_server(ECHO, api_key="", jwt_secret=SECRET) as client:
        ok = await client.post("/jobs", json={"input": 1}, headers=as_(token("team-j")))
        assert ok.status_code == 202 and ok.json()["workspace"] == "team-j"
        other = await client.get(f"/jobs/{ok.json()['jobId']}", headers=as_(token("team-k")))
        assert other.status_code == 404

        cases = {
            "expired": token("team-j", exp=int(time.time()) - 60),
            "bad_signature": jwt.encode(
                {"workspace": "x", "exp": int(time.time()) + 60},
                "another-secret-of-at-least-32-bytes!!",
                algorithm="HS256",
            ),
            "malformed": "not.a.token",
            "no_workspace": token(None),
        }
        for reason, bad in cases.items():
            answer = await client.get("/jobs", headers=as_(bad))
            assert answer.status_code == 401, reason
            body = answer.json()
            assert body["code"] == "unauthorized", body
            assert body["detail"][0]["type"] == reason, body  # which, in words in "error"
            assert SECRET not in answer.text


@pytest.mark.parametrize("path", ["/health", "/live", "/ready", "/openapi.json"])
async def test_probes_stay_open(path: str) -> None:
    async with running_server(ECHO, api_key=KEYS) as client:
        assert (await client.get(path)).status_code == 200


def test_workspace_names_in_keys_are_checked() -> None:
    from graphnursery import Config
    from graphnursery.errors import ConfigError

    with pytest.raises(ConfigError, match="api_key"):
        Config(graph=ECHO, api_key="k=bad workspace")
    assert re.fullmatch(r"[\w.-]+", "team-a")


async def test_rs256_tokens_verified_with_a_jwks_file(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}))

    def signed(workspace: str, kid: str = "k1") -> str:
        claims = {"workspace": workspace, "exp": int(time.time()) + 300, "iss": "idp"}
        return jwt.encode(claims, private, algorithm="RS256", headers={"kid": kid})

    async with running_server(ECHO, jwt_jwks=str(jwks), jwt_issuer="idp") as client:
        mine = await client.post("/jobs", json={"input": 1}, headers=as_(signed("team-r")))
        assert mine.status_code == 202 and mine.json()["workspace"] == "team-r"
        job_id = mine.json()["jobId"]
        theirs = await client.get(f"/jobs/{job_id}", headers=as_(signed("team-s")))
        assert theirs.status_code == 404
        unknown = await client.get("/jobs", headers=as_(signed("team-r", kid="other")))
        assert unknown.status_code == 401 and unknown.json()["detail"][0]["type"] == "unknown_kid"


async def test_a_workspace_over_its_limits_gets_429_naming_the_limit() -> None:
    limits = json.dumps({"team-a": {"max_queued": 2}, "team-b": {"rate": 1, "burst": 2}})
    gate_graph = TOOLBOX
    async with running_server(
        gate_graph, api_key=KEYS, workspace_limits=limits, workers=1
    ) as client:
        # team-a: one running (the worker held by a long sleep), two waiting, then refused
        sleepy = {"input": {"sleep": 30}}
        for _ in range(3):
            answer = await client.post("/jobs", json=sleepy, headers=as_("key-a"))
            assert answer.status_code == 202, answer.text
        await _until_running(client, "key-a")
        answer = await client.post("/jobs", json=sleepy, headers=as_("key-a"))
        over = answer.json()
        assert answer.status_code == 429 and over["code"] == "quota_exceeded", over
        assert over["detail"][0]["type"] == "max_queued" and "team-a" in over["error"]
        assert int(answer.headers["Retry-After"]) >= 1

        # team-b: a burst of 2, then one a second
        codes = [
            (await client.post("/jobs", json={"input": {}}, headers=as_("key-b"))).status_code
            for _ in range(3)
        ]
        assert codes[:2] == [202, 202] and codes[2] == 429
        refused = await client.post("/jobs", json={"input": {}}, headers=as_("key-b"))
        assert refused.json()["detail"][0]["type"] == "rate"
        assert refused.headers["Retry-After"] == "1"

        # Other workspaces are not held to those limits.
        for _ in range(3):
            answer = await client.post("/jobs", json={"input": {}}, headers=as_("key-plain"))
            assert answer.status_code == 202


async def _until_running(client: httpx.AsyncClient, key: str) -> None:
    from support import until

    async def one_running() -> bool:
        jobs = (await client.get("/jobs?status=running", headers=as_(key))).json()["jobs"]
        return len(jobs) == 1

    await until(one_running, "a job running")
