"""Opt-in soak (``pytest -m soak``): 20,000 no-op jobs through HTTP; memory stays bounded."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from support import PIPE, read_serving_url

JOBS = 20_000
CONCURRENCY = 32


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.soak
@pytest.mark.timeout(1200)
async def test_rss_after_ttl_eviction_stays_near_rss_after_the_first_thousand_jobs(
    workdir: Path,
) -> None:
    command = [sys.executable, "-m", "graphnursery", "serve", "examples/echo.py", "--port", "0"]
    command += ["--workers", "2", "--store", "memory://", "--result-ttl", "3", "--log-level"]
    command += ["warning"]
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(partial(trio.run_process, command, stdout=PIPE, cwd=workdir))
        url = await read_serving_url(proc, proc.stdout)
        limits = httpx.Limits(max_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
            submitted = 0

            async def run_jobs(until: int) -> None:
                async def one_client() -> None:
                    nonlocal submitted
                    while submitted < until:
                        submitted += 1
                        response = await client.post(
                            "/jobs", params={"wait": 30}, json={"input": {"n": submitted}}
                        )
                        assert response.status_code == 200, response.text
                        assert response.json()["status"] == "completed"

                async with trio.open_nursery() as clients:
                    for _ in range(CONCURRENCY):
                        clients.start_soon(one_client)

            await run_jobs(1_000)
            early = rss_mib(proc.pid)
            await run_jobs(JOBS)
            peak = rss_mib(proc.pid)
            # every result expires after result_ttl; wait for the store to empty
            while (await client.get("/stats")).json()["total"]:
                await client.get("/live")
                await trio.sleep(0.5)
            late = rss_mib(proc.pid)
        proc.terminate()
    print(
        f"\nRSS after 1,000 jobs {early:.1f} MiB, after {JOBS:,} {peak:.1f} MiB, "
        f"after eviction {late:.1f} MiB ({late / early:.2f}x)"
    )
    assert late <= 1.3 * early
