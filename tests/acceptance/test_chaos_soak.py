"""Opt-in soak (``pytest -m soak``): every kind of job at once for 5 minutes
(``GRAPHNURSERY_SOAK_SECONDS``) on PostgreSQL, its connections cut every 30 s. The server
never exits, every job ends with one terminal status, nothing a job started outlives it, and
the server's RSS ends within 1.3x of where it stood after the warm-up."""

from __future__ import annotations

import itertools
import os
import sys
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
from test_soak import rss_mib

from postgres import terminate
from procs import alive
from support import PIPE, TERMINAL, read_serving_url

SECONDS = float(os.environ.get("GRAPHNURSERY_SOAK_SECONDS", "300"))
CUT_EVERY = 30.0
CLIENTS = 8
EXPECTED = {
    "ok": {"completed"},
    "huge": {"failed"},
    "unstorable": {"failed"},
    "raise": {"failed"},
    "crash": {"crashed"},
    "slow": {"timed_out"},
    "child": {"completed"},
}


@pytest.mark.soak
@pytest.mark.timeout(1200)
async def test_every_kind_of_job_for_minutes_while_the_database_connections_are_cut(
    workdir: Path, tmp_path: Path, postgres_url: str
) -> None:
    name = f"gn_soak_{os.getpid()}"
    store = f"{postgres_url}&application_name={name}"
    command = [sys.executable, "-m", "graphnursery", "serve", "tests/graphs/chaos.py"]
    command += ["--port", "0", "--workers", "2", "--store", store, "--result-ttl", "20"]
    command += ["--max-result-bytes", "1000000", "--log-level", "warning"]
    job_ids: dict[str, str] = {}
    child_files: list[Path] = []
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(partial(trio.run_process, command, stdout=PIPE, cwd=workdir))
        url = await read_serving_url(proc, proc.stdout)
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            counter = itertools.count()

            async def one_client(until: float) -> None:
                kinds = itertools.cycle(EXPECTED)
                while trio.current_time() < until:
                    kind = next(kinds)
                    job_input: dict[str, object] = {"kind": kind}
                    if kind == "child":
                        pid_file = tmp_path / f"child-{next(counter)}"
                        child_files.append(pid_file)
                        job_input["pid_file"] = str(pid_file)
                    # Only "slow" runs past its timeout; the others get room on a busy machine.
                    timeout = 0.5 if kind == "slow" else 10
                    body = {"input": job_input, "timeoutSeconds": timeout}
                    answer = await client.post("/jobs", params={"wait": 30}, json=body)
                    if answer.status_code in (429, 503):  # full, or the database away
                        continue
                    assert answer.status_code in (200, 202), answer.text
                    job = answer.json()
                    job_ids[job["jobId"]] = kind
                    if job["status"] in TERMINAL:
                        assert job["status"] in EXPECTED[kind], job

            async def cut_connections(until: float) -> None:
                while trio.current_time() + CUT_EVERY < until:
                    await trio.sleep(CUT_EVERY)
                    await trio.to_thread.run_sync(terminate, name)

            warm_up = trio.current_time() + min(20.0, SECONDS / 5)
            async with trio.open_nursery() as clients:
                for _ in range(CLIENTS):
                    clients.start_soon(one_client, warm_up)
            early = rss_mib(proc.pid)
            end = trio.current_time() + SECONDS
            async with trio.open_nursery() as clients:
                clients.start_soon(cut_connections, end)
                for _ in range(CLIENTS):
                    clients.start_soon(one_client, end)
            assert proc.returncode is None  # the server never exited
            for job_id, kind in job_ids.items():
                response = await client.get(f"/jobs/{job_id}", params={"wait": 60})
                if response.status_code == 404:
                    continue  # ended, and evicted after result_ttl
                job = response.json()
                assert job["status"] in EXPECTED[kind], job
                assert job["attempts"] == 1, job
            late = rss_mib(proc.pid)
        proc.terminate()
    leaked = [int(path.read_text()) for path in child_files if path.exists()]
    assert not [pid for pid in leaked if alive(pid)]
    print(f"\n{len(job_ids):,} jobs; RSS {early:.1f} -> {late:.1f} MiB ({late / early:.2f}x)")
    assert late <= 1.3 * early
