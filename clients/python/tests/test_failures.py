"""A sidecar that is down, silent or failing: fail open or closed within the
timeout, counted, logged at most once per 10 s, reported to on_error."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, List

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


@contextmanager
def raw_sidecar(respond: Callable[[socket.socket], None]) -> Iterator[str]:
    """A fake sidecar answering every connection with ``respond``."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                respond(conn)
            except OSError:
                pass

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except socket.timeout:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        server.close()


def trickle(conn: socket.socket) -> None:
    """A chunked answer, one byte every 50 ms for up to 5 s."""
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
    for _ in range(100):
        conn.sendall(b"1\r\n \r\n")
        time.sleep(0.05)


def huge(conn: socket.socket) -> None:
    """A 5 MB answer, sent as fast as it is read."""
    body = b" " * (5 << 20)
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body)


def answering(status: int, body: bytes, headers: bytes = b"") -> Callable[[socket.socket], None]:
    def respond(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\n%scontent-length: %d\r\n\r\n%s"
            % (status, headers, len(body), body)
        )

    return respond


@pytest.mark.parametrize("respond, reason", [(trickle, "timed out"), (huge, "over 1048576 bytes")])
def test_an_endless_or_huge_answer_fails_within_bounds(
    respond: Callable[[socket.socket], None], reason: str
) -> None:
    with raw_sidecar(respond) as url:
        with Client(url, timeout=0.2, fail_open=False) as client:
            start = time.monotonic()
            decision = client.check(ATTRS)
            assert time.monotonic() - start < 1.0, "at most one more network wait"
            assert not decision.allowed and decision.failure and reason in decision.failure
            assert client.release("lease") is False
            assert client.settle("id", 3) is None

        async def run() -> None:
            async with AsyncClient(url, timeout=0.2) as client:
                start = time.monotonic()
                decision = await client.check(ATTRS)
                assert time.monotonic() - start < 1.0
                assert decision.allowed and decision.failure

        asyncio.run(run())


def test_answers_floodgate_never_sends_fail_open_not_raise() -> None:
    deep = b"[" * 1000 + b"]" * 1000
    allowed = b'{"allowed": false, "policy": "p", "deny_status": %d}'
    for respond in [
        answering(200, deep),
        answering(503, deep),
        answering(429, allowed % 200),
        answering(429, allowed % 99999),
    ]:
        with raw_sidecar(respond) as url:
            with Client(url) as client:
                decision = client.check(ATTRS)
                assert decision.allowed and decision.failure, decision

            async def run() -> None:
                async with AsyncClient(url) as client:
                    decision = await client.check(ATTRS)
                    assert decision.allowed and decision.failure, decision

            asyncio.run(run())


def test_a_header_value_floodgate_never_sends_is_not_passed_on() -> None:
    body = b'{"allowed": false, "policy": "p"}'
    odd = "限流".encode() + b"\x01"
    respond = answering(429, body, b"retry-after: 2\r\nratelimit: " + odd + b"\r\n")
    with raw_sidecar(respond) as url:
        with Client(url) as client:
            decision = client.check(ATTRS)
    assert not decision.allowed and decision.failure is None
    assert decision.headers == {"Retry-After": "2"}
