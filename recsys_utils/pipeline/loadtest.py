"""A bounded load generator for the recommendation service, on the loopback interface only.

``clients`` asyncio workers share one ``httpx.AsyncClient`` and take request paths from one list
until it is exhausted or ``max_seconds`` pass (closed-loop: each client sends its next request when
the previous answer arrives, as a page of users would). Latency is measured by the client, request
sent to answer read, so it includes HTTP parsing and queueing in the server: what a caller sees.
:func:`swap_under_load` reloads the model while the clients run and counts failed requests.
The event loop runs in a worker thread, so this also works inside Jupyter (which has its own loop).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import numpy as np

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class LoadResult:
    """One run: per-request latencies (ms), statuses, failures and the wall time."""

    clients: int
    latencies_ms: np.ndarray
    statuses: Counter
    failures: int  # transport errors (refused, reset, timeout): no answer at all
    seconds: float
    versions: Counter = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return int(len(self.latencies_ms))

    @property
    def errors(self) -> int:
        """Requests that did not get a 200: error statuses plus transport failures."""
        return int(sum(n for status, n in self.statuses.items() if status != 200) + self.failures)

    @property
    def throughput_rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else float("nan")

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.requests else float("nan")

    def row(self) -> dict:
        return {"clients": self.clients, "requests": self.requests, "errors": self.errors,
                "throughput_rps": self.throughput_rps, "p50_ms": self.percentile(50),
                "p95_ms": self.percentile(95), "p99_ms": self.percentile(99)}


def check_loopback(base_url: str) -> str:
    """``base_url`` if it points at this machine's loopback interface, else a ValueError."""
    host = urlsplit(base_url).hostname
    if host not in LOOPBACK:
        raise ValueError(f"load tests run against the loopback interface only (127.0.0.1), got host {host!r}")
    return base_url.rstrip("/")


def _in_thread(coroutine_factory):
    """Run a fresh event loop in a worker thread (safe where a loop is already running, e.g. Jupyter)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coroutine_factory())).result()


async def _drive(client: httpx.AsyncClient, paths: Sequence[str], clients: int, max_seconds: float,
                 side_task=None) -> LoadResult:
    latencies = np.full(len(paths), np.nan)
    statuses: Counter = Counter()
    versions: Counter = Counter()
    failures = 0
    cursor = iter(range(len(paths)))
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal failures
        for n in cursor:
            if time.perf_counter() > deadline:
                return
            begin = time.perf_counter()
            try:
                answer = await client.get(paths[n])
                latencies[n] = 1e3 * (time.perf_counter() - begin)
                statuses[answer.status_code] += 1
                if answer.status_code == 200:
                    versions[answer.json().get("model_version")] += 1
            except httpx.HTTPError:
                latencies[n] = 1e3 * (time.perf_counter() - begin)
                failures += 1

    begin = time.perf_counter()
    tasks = [asyncio.create_task(worker()) for _ in range(clients)]
    if side_task is not None:
        await side_task(client)
    await asyncio.gather(*tasks)
    seconds = time.perf_counter() - begin
    done = latencies[np.isfinite(latencies)]
    return LoadResult(clients, done, statuses, failures, seconds, versions)


def run_load(base_url: str, paths: Sequence[str], clients: int, max_seconds: float = 30.0,
             timeout: float = 10.0, warmup: int = 5) -> LoadResult:
    """Send ``paths`` (e.g. ``/recommend?user_id=3&k=10``) with ``clients`` concurrent clients."""
    base_url = check_loopback(base_url)
    if clients < 1 or not paths:
        raise ValueError(f"run_load: need clients >= 1 and at least one path, got {clients} and {len(paths)}")

    async def main() -> LoadResult:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits) as client:
            for path in paths[:warmup]:
                await client.get(path)
            return await _drive(client, paths, clients, max_seconds)

    return _in_thread(main)


def load_levels(base_url: str, paths: Sequence[str], levels: Sequence[int] = (1, 8, 32),
                max_seconds: float = 30.0) -> list[LoadResult]:
    """:func:`run_load` at each number of concurrent clients, the same paths each time."""
    return [run_load(base_url, paths, clients, max_seconds) for clients in levels]


def swap_under_load(base_url: str, paths: Sequence[str], models: Sequence[str], clients: int = 8,
                    max_seconds: float = 30.0, timeout: float = 30.0) -> tuple[LoadResult, list[dict]]:
    """Load the service while ``POST /admin/reload`` installs each of ``models`` in turn (spread over
    the run); returns the load result and each reload's answer (status, versions)."""
    base_url = check_loopback(base_url)
    swaps: list[dict] = []

    async def reloads(client: httpx.AsyncClient) -> None:
        for path in models:
            await asyncio.sleep(0.02)
            answer = await client.post("/admin/reload", json={"path": str(path)}, timeout=timeout)
            swaps.append({"status": answer.status_code, **answer.json()})

    async def main() -> LoadResult:
        limits = httpx.Limits(max_connections=clients + 1, max_keepalive_connections=clients + 1)
        async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits) as client:
            return await _drive(client, paths, clients, max_seconds, side_task=reloads)

    return _in_thread(main), swaps
