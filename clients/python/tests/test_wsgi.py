"""The WSGI middleware in a real Flask app served by waitress."""

from __future__ import annotations

import time
from typing import Any, Dict, Iterator, List, Optional

import httpx
import pytest
from flask import Flask, Response, jsonify, request

from conftest import Floodgate, eventually, raw_get, waitress_server
from floodgate import Client
from floodgate.wsgi import FloodgateWSGIMiddleware, default_attributes


def by_endpoint(environ: Dict[str, Any]) -> Dict[str, str]:
    """endpoint = the first path segment, user from X-User-Id."""
    return {
        "endpoint": environ.get("PATH_INFO", "/").split("/")[1],
        "user": environ.get("HTTP_X_USER_ID", ""),
    }


class CountingClient(Client):
    """Records every lease released."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.released: List[str] = []

    def release(self, lease: str) -> bool:
        self.released.append(lease)
        return super().release(lease)


def make_app(**options: Any) -> Flask:
    app = Flask(__name__)
    app.config["calls"] = 0

    @app.get("/limited")
    def limited() -> Any:
        app.config["calls"] += 1
        decision = request.environ["floodgate"].decision
        response = jsonify({"remaining": decision.remaining, "failure": decision.failure})
        if request.args.get("own"):
            response.headers["RateLimit"] = "app's own"
        return response

    @app.get("/single")
    def single() -> str:
        return "ok"

    @app.get("/single/stream")
    def stream() -> Response:
        def chunks() -> Iterator[bytes]:
            for _ in range(600):  # 30 s at most
                yield b"chunk\n" * 100
                time.sleep(0.05)

        return Response(chunks(), mimetype="text/plain")

    @app.get("/single/chunks")
    def few_chunks() -> Response:
        return Response((b"chunk\n" for _ in range(3)), mimetype="text/plain")

    @app.get("/single/boom")
    def boom() -> str:
        raise RuntimeError("the app failed")

    @app.get("/default")
    def default() -> str:
        return "ok"

    options.setdefault("attributes", by_endpoint)
    app.wsgi_app = FloodgateWSGIMiddleware(app.wsgi_app, **options)  # type: ignore[method-assign]
    return app


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as client:
        yield client


def test_allows_then_denies_with_headers_and_body(floodgate: Floodgate, user: str, http: httpx.Client) -> None:
    app = make_app(url=floodgate.url)
    with waitress_server(app) as url:
        responses = [http.get(f"{url}/limited", headers={"x-user-id": user}) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].json() == {"remaining": 1, "failure": None}
    assert "r=1" in responses[0].headers["ratelimit"]
    assert '"per-user"' in responses[0].headers["ratelimit-policy"]
    denied = responses[2]
    assert int(denied.headers["retry-after"]) >= 1 and "r=0" in denied.headers["ratelimit"]
    assert denied.headers["content-type"] == "application/json"
    assert denied.json()["policy"] == "per-user" and denied.json()["allowed"] is False
    assert app.config["calls"] == 2, "a denied request never reaches the app"


def test_app_headers_win(floodgate: Floodgate, user: str, http: httpx.Client) -> None:
    with waitress_server(make_app(url=floodgate.url)) as url:
        response = http.get(f"{url}/limited?own=1", headers={"x-user-id": user})
    assert response.headers.get_list("ratelimit") == ["app's own"]


def test_default_attributes_user_method_path(floodgate: Floodgate, user: str, http: httpx.Client) -> None:
    with waitress_server(make_app(url=floodgate.url, attributes=default_attributes)) as url:
        statuses = [http.get(f"{url}/default", headers={"x-user-id": user}).status_code for _ in range(2)]
        other = http.get(f"{url}/default", headers={"x-user-id": user + "-2"})
        long_path = http.get(f"{url}/{'p' * 400}", headers={"x-user-id": user})
    assert statuses == [200, 429] and other.status_code == 200
    assert long_path.status_code == 404, "a long path is cut to fit, not refused"


def test_hits_and_skipping(floodgate: Floodgate, user: str, http: httpx.Client) -> None:
    def skip_default(environ: Dict[str, Any]) -> Optional[Dict[str, str]]:
        return None if environ["PATH_INFO"] == "/default" else by_endpoint(environ)

    app = make_app(url=floodgate.url, hits=lambda environ: 2, attributes=skip_default)
    with waitress_server(app) as url:
        first = http.get(f"{url}/limited", headers={"x-user-id": user})
        second = http.get(f"{url}/limited", headers={"x-user-id": user})
        unchecked = [http.get(f"{url}/default", headers={"x-user-id": user}) for _ in range(3)]
    assert first.json()["remaining"] == 0 and second.status_code == 429
    assert [r.status_code for r in unchecked] == [200] * 3


def test_lease_released_when_response_finishes(floodgate: Floodgate, user: str, http: httpx.Client) -> None:
    client = CountingClient(floodgate.url, timeout=5)
    with waitress_server(make_app(client=client)) as url:
        statuses = [
            http.get(f"{url}/{path}", headers={"x-user-id": user}).status_code
            for path in ["single", "single/chunks"] * 10
        ]
    assert statuses == [200] * 20, "a concurrency limit of 1 admits each next request"
    assert len(client.released) == 20 and len(set(client.released)) == 20


def test_lease_released_when_client_disconnects(floodgate: Floodgate, user: str, http: httpx.Client) -> None:
    client = CountingClient(floodgate.url, timeout=5)
    with waitress_server(make_app(client=client)) as url:
        sock = raw_get(url, "/single/stream", {"x-user-id": user})
        assert b"chunk" in sock.recv(4096)
        held = http.get(f"{url}/single", headers={"x-user-id": user})
        sock.close()
        freed = eventually(
            lambda: http.get(f"{url}/single", headers={"x-user-id": user}).status_code == 200
        )
    assert held.status_code == 429, "the slot is held while the response streams"
    assert freed, "the lease was released when the client left"
    assert len(set(client.released)) == len(client.released) == 2


def test_lease_released_when_the_app_raises(floodgate: Floodgate, user: str, http: httpx.Client) -> None:
    client = CountingClient(floodgate.url, timeout=5)
    with waitress_server(make_app(client=client)) as url:
        failed = http.get(f"{url}/single/boom", headers={"x-user-id": user, "connection": "close"})
        after = http.get(f"{url}/single", headers={"x-user-id": user})
    assert failed.status_code == 500 and after.status_code == 200
    assert len(client.released) == 2 and len(set(client.released)) == 2


def test_oversized_user_header_is_a_400(floodgate: Floodgate, http: httpx.Client) -> None:
    app = make_app(url=floodgate.url)
    with waitress_server(app) as url:
        response = http.get(f"{url}/limited", headers={"x-user-id": "x" * 300})
    assert response.status_code == 400 and "256" in response.json()["error"]
    assert app.config["calls"] == 0


@pytest.mark.parametrize("fail_open", [True, False])
def test_sidecar_down(down_url: str, http: httpx.Client, fail_open: bool) -> None:
    client = Client(down_url, fail_open=fail_open)
    with waitress_server(make_app(client=client)) as url:
        response = http.get(f"{url}/limited", headers={"x-user-id": "u1"})
    if fail_open:
        assert response.status_code == 200 and "/v1/check" in response.json()["failure"]
    else:
        assert response.status_code == 503
        assert response.json() == {"error": "rate limiter unavailable"}
    assert client.stats.failures == 1


def test_silent_sidecar_fails_open_within_timeout(silent_url: str, http: httpx.Client) -> None:
    client = Client(silent_url, timeout=0.2)
    with waitress_server(make_app(client=client)) as url:
        response = http.get(f"{url}/limited", headers={"x-user-id": "u1"}, timeout=5)
    assert response.status_code == 200 and "timed out" in response.json()["failure"]
    assert client.stats.failed_open == 1
