"""The sync client against a real floodgate."""

from __future__ import annotations

import socket
import threading
from typing import Iterator, List

import pytest

from conftest import Floodgate
from floodgate import Client, FloodgateRequestError


@pytest.fixture
def client(floodgate: Floodgate) -> Iterator[Client]:
    with Client(floodgate.url, timeout=5) as client:
        yield client


def test_check_allows_then_denies_with_fields_and_headers(client: Client, user: str) -> None:
    attrs = {"user": user, "endpoint": "limited"}
    first, second, third = (client.check(attrs) for _ in range(3))
    assert (first.allowed, second.allowed, third.allowed) == (True, True, False)
    assert first.policy == "per-user" and first.limit == 2 and first.remaining == 1
    assert first.failure is None and first.lease is None and first.settlement is None
    assert first.retry_after_ms == 0 and first.reset_after_ms > 0
    assert third.remaining == 0 and third.retry_after_ms > 0
    assert third.status == 429
    assert [s.policy for s in third.statuses] == ["per-user"]
    assert third.statuses[0].source == "local" and not third.statuses[0].shadow
    assert '"per-user"' in first.headers["RateLimit-Policy"]
    assert "r=1" in first.headers["RateLimit"]
    assert "Retry-After" not in first.headers
    assert int(third.headers["Retry-After"]) >= 1
    assert third.body["policy"] == "per-user" and third.body["allowed"] is False


def test_check_no_policy_applies(client: Client, user: str) -> None:
    decision = client.check({"user": user, "endpoint": "nothing"})
    assert decision.allowed and decision.policy == "" and decision.headers == {}


def test_hits_are_the_cost(client: Client, user: str) -> None:
    attrs = {"user": user, "endpoint": "limited"}
    assert client.check(attrs, hits=2).remaining == 0
    assert not client.check(attrs).allowed


def test_peek_charges_nothing(client: Client, user: str) -> None:
    attrs = {"user": user, "endpoint": "limited"}
    for _ in range(3):
        peeked = client.peek(attrs)
        assert peeked.allowed and peeked.remaining == 2
    assert client.check(attrs).remaining == 1


def test_release_frees_the_concurrency_slot(client: Client, user: str) -> None:
    attrs = {"user": user, "endpoint": "single"}
    held = client.check(attrs)
    assert held.allowed and held.lease
    assert not client.check(attrs).allowed
    assert client.release(held.lease) is True
    again = client.check(attrs)
    assert again.allowed and again.lease
    assert client.release(again.lease)
    assert client.release(again.lease), "releasing twice is harmless"


def test_refused_attributes_raise_and_charge_nothing(client: Client, user: str) -> None:
    attrs = {"user": user, "endpoint": "limited"}
    with pytest.raises(FloodgateRequestError) as err:
        client.check({**attrs, "note": "x" * 300})
    assert err.value.status == 400 and "256" in err.value.error
    with pytest.raises(FloodgateRequestError):
        client.check({**attrs, "note": "a\nb"})
    with pytest.raises(FloodgateRequestError):
        client.check(attrs, hits=10**12)
    with pytest.raises(FloodgateRequestError):
        client.check({f"a{i}": "v" for i in range(65)})
    assert client.check(attrs).remaining == 1
    assert client.stats.failures == 0


def test_forged_lease_is_refused(client: Client) -> None:
    with pytest.raises(FloodgateRequestError) as err:
        client.release("forged")
    assert err.value.status == 400


def test_bad_arguments_raise_before_any_call(client: Client) -> None:
    for hits in (-1, True, 1.5):
        with pytest.raises(ValueError):
            client.check({"user": "u"}, hits=hits)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        client.check({"user": "u"}, max_wait_ms=-5)
    with pytest.raises(ValueError):
        client.settle("s", -1)


def test_connections_are_kept_alive(floodgate: Floodgate, user: str) -> None:
    """20 checks through a counting TCP relay use one connection."""
    accepted: List[socket.socket] = []
    relay = socket.socket()
    relay.bind(("127.0.0.1", 0))
    relay.listen(8)
    host, port = floodgate.url.removeprefix("http://").split(":")

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def serve() -> None:
        while True:
            try:
                conn, _ = relay.accept()
            except OSError:
                return
            accepted.append(conn)
            upstream = socket.create_connection((host, int(port)))
            threading.Thread(target=pipe, args=(conn, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    with Client(f"http://127.0.0.1:{relay.getsockname()[1]}", timeout=5) as client:
        for _ in range(20):
            assert client.check({"user": user, "endpoint": "nothing"}).allowed
    relay.close()
    assert len(accepted) == 1
