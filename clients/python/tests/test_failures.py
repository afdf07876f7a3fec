"""A sidecar that is down, silent or failing: fail open or closed within the
timeout, counted, logged at most once per 10 s, reported to on_error."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import List

import pytest

from floodgate import AsyncClient, Client, FloodgateUnavailable

ATTRS = {"user": "u1", "endpoint": "limited"}
#: Far above the 0.2 s timeout: only a hang fails it, not a slow machine.
HANG = 5.0


def test_down_sidecar_fails_open_counted_logged_reported(
    down_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    errors: List[FloodgateUnavailable] = []
    with Client(down_url, on_error=errors.append) as client:
        with caplog.at_level(logging.WARNING, logger="floodgate"):
            decisions = [client.check(ATTRS) for _ in range(3)]
        assert all(d.allowed and d.failure for d in decisions)
        assert client.release("lease") is False
        assert client.settle("id", 3) is None
        assert (client.stats.failures, client.stats.failed_open, client.stats.failed_closed) == (5, 3, 0)
    assert len(errors) == 5 and all(isinstance(e, FloodgateUnavailable) for e in errors)
    records = [r for r in caplog.records if r.name == "floodgate"]
    assert len(records) == 1, "logged at most once per 10 s"
    assert "allowing" in records[0].getMessage() and "/v1/check" in records[0].getMessage()


def test_down_sidecar_fails_closed_with_503(down_url: str) -> None:
    with Client(down_url, fail_open=False) as client:
        decision = client.check(ATTRS)
        assert not decision.allowed and decision.status == 503
        assert decision.response_body() == b'{"error":"rate limiter unavailable"}'
        assert (client.stats.failed_open, client.stats.failed_closed) == (0, 1)


@pytest.mark.parametrize("fail_open", [True, False])
def test_silent_sidecar_times_out(silent_url: str, fail_open: bool) -> None:
    with Client(silent_url, timeout=0.2, fail_open=fail_open) as client:
        start = time.monotonic()
        decision = client.check(ATTRS)
        elapsed = time.monotonic() - start
    assert elapsed < HANG
    assert decision.allowed is fail_open
    assert decision.failure is not None and "timed out" in decision.failure


def test_silent_sidecar_times_out_async(silent_url: str) -> None:
    async def run() -> None:
        async with AsyncClient(silent_url, timeout=0.2, fail_open=False) as client:
            start = time.monotonic()
            decision = await client.check(ATTRS)
            assert time.monotonic() - start < HANG
            assert not decision.allowed and decision.status == 503
            assert await client.release("lease") is False
            assert client.stats.failed_closed == 1 and client.stats.failures == 2

    asyncio.run(run())


def test_5xx_fails_open_with_the_reason(failing_url: str) -> None:
    errors: List[FloodgateUnavailable] = []
    with Client(failing_url, on_error=errors.append) as client:
        decision = client.check(ATTRS)
    assert decision.allowed and decision.failure is not None
    assert "503" in decision.failure and "could not decide" in decision.failure
    assert errors[0].status == 503


def test_on_error_that_raises_does_not_fail_the_check(down_url: str) -> None:
    def boom(err: FloodgateUnavailable) -> None:
        raise RuntimeError("app bug")

    with Client(down_url, on_error=boom) as client:
        assert client.check(ATTRS).allowed


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Client(timeout=0)
