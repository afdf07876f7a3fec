"""Per-check cost of the Python clients against a raw HTTP call.

    PYTHONPATH=src .venv/bin/python bench/overhead.py http://127.0.0.1:9720 [checks]

Runs the same sequential checks (one keep-alive connection each) through
http.client, raw httpx, `floodgate.Client` and `floodgate.AsyncClient`, and
prints the median and p99 microseconds per check. Needs a running floodgate;
the attributes match no policy unless the config has one for `bench`.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import statistics
import sys
import time
from typing import Awaitable, Callable, List
from urllib.parse import urlparse

import httpx

from floodgate import AsyncClient, Client

BODY = {"attributes": {"user": "bench", "endpoint": "bench"}, "hits": 1}


def timed(call: Callable[[], object], n: int) -> List[float]:
    for _ in range(min(200, n)):  # warm up the connection and the code
        call()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def report(name: str, samples: List[float]) -> None:
    samples.sort()
    p99 = samples[int(len(samples) * 0.99) - 1]
    print(f"{name:<24} median {statistics.median(samples):7.1f} us   p99 {p99:7.1f} us")


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9720"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    parsed = urlparse(url)
    raw = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port or 80)
    payload = json.dumps(BODY)

    def raw_check() -> object:
        raw.request("POST", "/v1/check", payload, {"content-type": "application/json"})
        return json.loads(raw.getresponse().read())

    report("http.client (raw)", timed(raw_check, n))
    with httpx.Client(base_url=url, trust_env=False) as hx:
        report("httpx.Client (raw)", timed(lambda: hx.post("/v1/check", json=BODY).json(), n))
    with Client(url, timeout=5) as client:
        report("floodgate.Client", timed(lambda: client.check(BODY["attributes"]), n))

    async def atimed(call: Callable[[], Awaitable[object]]) -> List[float]:
        samples = []
        for i in range(n + 200):
            start = time.perf_counter()
            await call()
            if i >= 200:
                samples.append((time.perf_counter() - start) * 1e6)
        return samples

    async def run_async() -> None:
        async with httpx.AsyncClient(base_url=url, trust_env=False) as hx:

            async def raw_async() -> object:
                return (await hx.post("/v1/check", json=BODY)).json()

            report("httpx.AsyncClient (raw)", await atimed(raw_async))
        async with AsyncClient(url, timeout=5) as client:
            report("floodgate.AsyncClient", await atimed(lambda: client.check(BODY["attributes"])))

    asyncio.run(run_async())


if __name__ == "__main__":
    main()
