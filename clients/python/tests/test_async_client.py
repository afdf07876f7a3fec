"""The async client against a real floodgate."""

from __future__ import annotations

import asyncio

import pytest

from conftest import Floodgate
from floodgate import AsyncClient, FloodgateRequestError


def test_async_check_deny_peek_release(floodgate: Floodgate, user: str) -> None:
    async def run() -> None:
        async with AsyncClient(floodgate.url, timeout=5) as client:
            attrs = {"user": user, "endpoint": "limited"}
            assert (await client.peek(attrs)).remaining == 2
            results = [await client.check(attrs) for _ in range(3)]
            assert [r.allowed for r in results] == [True, True, False]
            assert results[2].status == 429 and "Retry-After" in results[2].headers
            single = {"user": user, "endpoint": "single"}
            held = await client.check(single)
            assert held.lease and not (await client.check(single)).allowed
            assert await client.release(held.lease)
            assert (await client.check(single)).allowed
            with pytest.raises(FloodgateRequestError):
                await client.release("forged")
            assert client.stats.failures == 0

    asyncio.run(run())


def test_async_checks_in_parallel(floodgate: Floodgate, user: str) -> None:
    """50 concurrent checks on a limit of 2: exactly 2 allowed."""

    async def run() -> None:
        async with AsyncClient(floodgate.url, timeout=5) as client:
            attrs = {"user": user, "endpoint": "limited"}
            results = await asyncio.gather(*(client.check(attrs) for _ in range(50)))
            assert sum(r.allowed for r in results) == 2

    asyncio.run(run())
