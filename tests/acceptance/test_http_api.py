"""The HTTP API on a real server (hypercorn on port 0, worker processes), as clients see it."""

from __future__ import annotations

import uuid

import pytest
import trio

from support import finished, running_server

pytestmark = pytest.mark.usefixtures("both_http_paths", "both_engine_loops")

ECHO = "examples/echo.py"
TOOLBOX = "tests/graphs/toolbox.py"
SEED_BODY = {"messages": [{"role": "user", "content": "hello"}]}


async def test_seed_execute_answers_200_with_the_seed_shape_and_the_job_completes() -> None:
    async with running_server(ECHO) as client:
        response = await client.post("/execute", json=SEED_BODY)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"jobId", "status", "position"}
        assert body["status"] == "queued"
        assert isinstance(body["position"], int)
        uuid.UUID(body["jobId"])

        job = await finished(client, body["jobId"])
        assert job["status"] == "completed"
        # the graph gets {messages, data, metadata}, as the seed's GraphEngine did
        assert job["result"] == {"echo": {**SEED_BODY, "data": {}, "metadata": {}}}
        assert job["attempts"] == 1
        assert job["durationMs"] >= 0
        for stamp in ("createdAt", "startedAt", "completedAt"):
            assert job[stamp].endswith("Z")


async def test_seed_validation_errors_are_json_400_naming_the_field() -> None:
    cases = [
        ({}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": 7}]}, "messages.0.content"),
        ({"messages": [{"role": "user"}]}, "messages.0.content"),
        ({**SEED_BODY, "timeoutSeconds": -1}, "timeoutSeconds"),
        ({**SEED_BODY, "timeoutSeconds": 10**9}, "timeoutSeconds"),
    ]
    async with running_server(ECHO) as client:
        for body, field in cases:
            response = await client.post("/execute", json=body)
            assert response.status_code == 400, body
            error = response.json()
            assert error["code"] == "invalid_body"
            assert isinstance(error["error"], str) and field in error["error"]
            assert field in [d["field"] for d in error["detail"]]
        stats = (await client.get("/stats")).json()
        assert stats["total"] == 0  # nothing was accepted


async def test_many_messages_are_accepted() -> None:
    messages = [{"role": "user", "content": f"m{i}"} for i in range(101)]
    async with running_server(ECHO) as client:
        response = await client.post("/execute", json={"messages": messages})
        assert response.status_code == 200
        job = await finished(client, response.json()["jobId"])
        assert len(job["result"]["echo"]["messages"]) == 101


async def test_general_route_answers_202_with_location() -> None:
    async with running_server(ECHO) as client:
        response = await client.post("/jobs", json={"input": [1, "two"]})
        assert response.status_code == 202
        body = response.json()
        assert response.headers["location"] == f"/jobs/{body['jobId']}"
        assert body["status"] in {"queued", "running", "completed"}
        job = (await client.get(response.headers["location"], params={"wait": 30})).json()
        assert job["status"] == "completed"
        assert job["result"] == {"echo": [1, "two"]}


async def test_general_route_also_takes_the_seed_body() -> None:
    async with running_server(ECHO) as client:
        response = await client.post("/jobs", json={**SEED_BODY, "metadata": {"user": "u1"}})
        assert response.status_code == 202
        job = await finished(client, response.json()["jobId"])
        assert job["result"]["echo"]["metadata"] == {"user": "u1"}


async def test_submit_and_wait_returns_the_finished_job_in_one_request() -> None:
    async with running_server(ECHO) as client:
        response = await client.post("/jobs", params={"wait": 30}, json={"input": "x"})
        assert response.status_code == 200
        assert response.json()["status"] == "completed"
        assert response.json()["result"] == {"echo": "x"}


async def test_long_poll_returns_as_soon_as_the_job_ends() -> None:
    async with running_server(TOOLBOX) as client:
        submitted = (await client.post("/jobs", json={"input": {"sleep": 0.3}})).json()
        start = trio.current_time()
        response = await client.get(f"/jobs/{submitted['jobId']}", params={"wait": 60})
        elapsed = trio.current_time() - start
        assert response.json()["status"] == "completed"
        assert elapsed < 30  # woken by the job's end, not by the 60 s wait running out


async def test_long_poll_on_a_running_job_answers_after_wait_with_the_job_as_it_stands() -> None:
    async with running_server(TOOLBOX) as client:
        submitted = (await client.post("/jobs", json={"input": {"sleep": 30}})).json()
        response = await client.get(f"/jobs/{submitted['jobId']}", params={"wait": 0.2})
        assert response.status_code == 200
        assert response.json()["status"] in {"queued", "running"}


async def test_bad_wait_parameter_is_a_json_400() -> None:
    async with running_server(ECHO) as client:
        for wait in ("soon", "-1", "100000"):
            response = await client.get(f"/jobs/{uuid.uuid4()}", params={"wait": wait})
            assert response.status_code == 400
            assert response.json()["detail"][0]["field"] == "wait"


async def test_a_job_shows_its_input_when_asked_and_in_the_list() -> None:
    job_input = {"question": "why?", "n": [1, 2]}
    async with running_server(ECHO) as client:
        submitted = await client.post("/jobs", params={"wait": 30}, json={"input": job_input})
        job_id = submitted.json()["jobId"]
        assert "input" not in submitted.json()
        assert "input" not in (await client.get(f"/jobs/{job_id}")).json()
        asked = await client.get(f"/jobs/{job_id}", params={"include": "input"})
        assert asked.json()["input"] == job_input
        listed = (await client.get("/jobs", params={"status": "completed"})).json()["jobs"]
        assert [job["input"] for job in listed] == [job_input]
        bad = await client.get(f"/jobs/{job_id}", params={"include": "everything"})
        assert bad.status_code == 400
        assert bad.json()["detail"][0]["field"] == "include"


async def test_unknown_job_and_unknown_route_are_json_404() -> None:
    async with running_server(ECHO) as client:
        response = await client.get(f"/jobs/{uuid.uuid4()}")
        assert response.status_code == 404
        assert response.json()["code"] == "job_not_found"
        response = await client.get("/no/such/route")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        assert response.json()["code"] == "not_found"
        response = await client.delete("/execute")
        assert response.status_code == 405
        assert response.json()["code"] == "method_not_allowed"


async def test_malformed_json_is_a_json_400() -> None:
    async with running_server(ECHO) as client:
        # not JSON, or no body or JSON that is not an object (as test_probes' BAD_BODIES)
        for raw, code in (
            (b"{not json", "malformed_json"),
            (b"", "invalid_body"),
            (b"[1, 2]", "invalid_body"),
            (b'"text"', "invalid_body"),
        ):
            response = await client.post(
                "/jobs", content=raw, headers={"content-type": "application/json"}
            )
            assert response.status_code == 400, raw
            assert response.json()["code"] == code, (raw, response.text)
            assert isinstance(response.json()["error"], str)


async def test_body_over_the_limit_is_a_json_413() -> None:
    async with running_server(ECHO, max_body_bytes=1000) as client:
        response = await client.post("/jobs", json={"input": "x" * 5000})
        assert response.status_code == 413
        assert response.json()["code"] == "body_too_large"


async def test_full_queue_answers_429_with_retry_after() -> None:
    async with running_server(TOOLBOX, queue_size=1) as client:
        running = await client.post("/jobs", json={"input": {"sleep": 30}})
        queued = await client.post("/jobs", json={"input": {"sleep": 30}})
        assert running.status_code == queued.status_code == 202
        rejected = await client.post("/execute", json=SEED_BODY)
        assert rejected.status_code == 429
        assert int(rejected.headers["retry-after"]) >= 1
        assert rejected.json()["code"] == "queue_full"
        stats = (await client.get("/stats")).json()
        assert stats["total"] == 2  # the rejected job left no record


async def test_health_ready_live_and_stats() -> None:
    async with running_server(ECHO, workers=2) as client:
        job = (await client.post("/jobs", params={"wait": 30}, json={"input": 1})).json()
        assert job["status"] == "completed"
        health = await client.get("/health")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "ok"
        assert body["uptime"] >= 0
        assert body["stats"] == {
            "queued": 0,
            "running": 0,
            "completed": 1,
            "failed": 0,
            "total": 1,
            "workers": 2,
            "availableWorkers": 2,
        }
        assert (await client.get("/ready")).status_code == 200
        assert (await client.get("/live")).status_code == 200
        stats = (await client.get("/stats")).json()
        assert stats["byStatus"]["completed"] == 1
        assert stats["queueCapacity"] == 1000


async def test_busy_workers_are_not_unhealthy() -> None:
    async with running_server(TOOLBOX) as client:
        await client.post("/jobs", json={"input": {"sleep": 30}})
        await client.post("/jobs", json={"input": {"sleep": 30}})
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["stats"]["availableWorkers"] == 0


async def test_batch_submit_accepts_many_jobs_in_one_request() -> None:
    async with running_server(ECHO, workers=2) as client:
        jobs = [{"input": n} for n in range(50)]
        response = await client.post("/jobs/batch", params={"wait": 30}, json={"jobs": jobs})
        assert response.status_code == 200
        body = response.json()
        assert body["rejected"] == 0
        assert [job["result"] for job in body["jobs"]] == [{"echo": n} for n in range(50)]
        no_wait = await client.post("/jobs/batch", json={"jobs": jobs[:3]})
        assert no_wait.status_code == 202  # accepted; 200 is for ?wait= once all ended
        for job in no_wait.json()["jobs"]:
            assert (await finished(client, job["jobId"]))["status"] == "completed"
        bad = await client.post("/jobs/batch", json={"jobs": [{"nope": 1}]})
        assert bad.status_code == 400
        assert bad.json()["detail"][0]["field"] == "jobs.0.input"
        empty = await client.post("/jobs/batch", json={"jobs": []})
        assert empty.status_code == 400


async def test_batch_submit_stops_at_a_full_queue_and_says_how_many_were_refused() -> None:
    async with running_server(TOOLBOX, queue_size=3) as client:
        jobs = [{"input": {"sleep": 30}} for _ in range(10)]
        response = await client.post("/jobs/batch", json={"jobs": jobs})
        assert response.status_code == 202
        body = response.json()
        assert len(body["jobs"]) in (3, 4)  # the queue, plus one handed to the idle worker
        assert body["rejected"] == 10 - len(body["jobs"])
        assert int(response.headers["retry-after"]) >= 1
        full = await client.post("/jobs/batch", json={"jobs": jobs[:1]})
        assert full.status_code == 429


async def test_an_integer_past_64_bits_is_refused_naming_where_it_is() -> None:
    """JSON readers turn such integers into floats; a job refuses them instead of losing digits."""
    wide = 2**64  # one past the largest unsigned 64-bit integer
    async with running_server(ECHO) as client:
        body = b'{"input": {"ids": [1, %d]}}' % wide
        headers = {"content-type": "application/json"}
        response = await client.post("/jobs", content=body, headers=headers)
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_body"
        assert response.json()["detail"][0]["field"] == "input.ids.1"
        assert str(wide) in response.json()["detail"][0]["message"]
        seed = b'{"messages": [{"role": "user", "content": "hi"}], "data": {"n": -%d}}' % wide
        refused = await client.post("/execute", content=seed, headers=headers)
        assert (refused.status_code, refused.json()["detail"][0]["field"]) == (400, "data.n")
        assert (await client.get("/stats")).json()["total"] == 0  # nothing was queued

        # The widest integers that fit, and long digit runs that are no integer, pass exactly.
        edges = b'{"input": [18446744073709551615, -9223372036854775808, "12345678901234567890",'
        edges += b" 1.2345678901234567890123]}"
        accepted = await client.post("/jobs", content=edges, headers=headers)
        assert accepted.status_code == 202, accepted.text
        job = await finished(client, accepted.json()["jobId"])
        assert job["result"] == {
            "echo": [2**64 - 1, -(2**63), "12345678901234567890", 1.2345678901234567]
        }


async def test_batch_jobs_take_their_own_timeout_and_attempts_and_at_most_1000_jobs() -> None:
    async with running_server(TOOLBOX, workers=2) as client:
        jobs = [
            {"input": {"sleep": 60}, "timeoutSeconds": 0.5},
            {"input": {"crash": 1}, "maxAttempts": 2},
            {"input": {"crash": 1}},
            {"input": {"n": 1}},
        ]
        response = await client.post("/jobs/batch", json={"jobs": jobs})
        assert response.status_code == 202, response.text
        ended = [await finished(client, job["jobId"], wait=60) for job in response.json()["jobs"]]
        assert [(job["status"], job["attempts"]) for job in ended] == [
            ("timed_out", 1),  # its own 0.5 s, not the server's 300 s
            ("crashed", 2),  # its own two attempts
            ("crashed", 1),  # the server's one
            ("completed", 1),
        ]
        too_many = await client.post(
            "/jobs/batch", json={"jobs": [{"input": n} for n in range(1001)]}
        )
        assert too_many.status_code == 400, too_many.text
        assert too_many.json()["code"] == "invalid_body"
        assert too_many.json()["detail"][0]["field"] == "jobs"
        assert (await client.get("/stats")).json()["total"] == 4  # none of the 1,001 was queued


async def test_the_configured_limits_bound_requests_and_are_in_the_document() -> None:
    async with running_server(ECHO, max_job_timeout=10, job_timeout=5, max_wait=2) as client:
        over = await client.post("/jobs", json={"input": 1, "timeoutSeconds": 11})
        assert over.status_code == 400, over.text
        assert over.json()["detail"][0]["field"] == "timeoutSeconds"
        at_most = await client.post("/jobs", json={"input": 1, "timeoutSeconds": 10})
        assert at_most.status_code == 202, at_most.text
        too_long = await client.get(f"/jobs/{at_most.json()['jobId']}", params={"wait": 3})
        assert too_long.status_code == 400, too_long.text
        assert too_long.json()["code"] == "invalid_parameter"
        assert (await finished(client, at_most.json()["jobId"], wait=2))["status"] == "completed"
        document = (await client.get("/openapi.json")).json()
    for model in ("GeneralSubmit", "SeedSubmit"):
        timeout = document["components"]["schemas"][model]["properties"]["timeoutSeconds"]
        assert timeout["anyOf"][0]["maximum"] == 10
    waits = [
        parameter["schema"]["anyOf"][0]["maximum"]
        for path in document["paths"].values()
        for operation in path.values()
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "wait"
    ]
    assert waits and set(waits) == {2}
