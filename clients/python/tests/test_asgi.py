"""The ASGI middleware in a real FastAPI app served by uvicorn."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, Iterator, List, Optional

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from conftest import Floodgate, eventually, raw_get, uvicorn_server
from floodgate import AsyncClient
from floodgate.asgi import FloodgateMiddleware, default_attributes


def by_endpoint(request: Request) -> Dict[str, str]:
    """endpoint = the first path segment, user from x-user-id."""
    return {
        "endpoint": request.url.path.split("/")[1],
        "user": request.headers.get("x-user-id", ""),
    }


class CountingClient(AsyncClient):
    """Records every lease released."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.released: List[str] = []

    async def release(self, lease: str) -> bool:
        self.released.append(lease)
        return await super().release(lease)


def make_app(**options: Any) -> FastAPI:
    app = FastAPI()
    app.state.calls = 0

    @app.get("/limited")
    async def limited(request: Request) -> JSONResponse:
        app.state.calls += 1
        grant = request.state.floodgate
        return JSONResponse(
            {"remaining": grant.decision.remaining, "failure": grant.decision.failure},
            headers={"RateLimit": "app's own"} if request.query_params.get("own") else None,
        )

    @app.get("/single")
    async def single() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/single/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> Any:
            for _ in range(600):  # 30 s at most
                yield b"chunk\n"
                await asyncio.sleep(0.05)

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/single/chunks")
    async def few_chunks() -> StreamingResponse:
        async def chunks() -> Any:
            for _ in range(3):
                yield b"chunk\n"

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/single/boom")
    async def boom() -> None:
        raise RuntimeError("the app failed")

    @app.get("/default")
    async def default() -> PlainTextResponse:
        return PlainTextResponse("ok")

    options.setdefault("attributes", by_endpoint)
    app.add_middleware(FloodgateMiddleware, **options)
    return app


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as client:
        yield client


def test_allows_then_denies_with_headers_and_body(floodgate: Floodgate, user: str, http: httpx.Client) -> None:
    app = make_app(url=floodgate.url)
    with uvicorn_server(app) as url:
        responses = [http.get(f"{url}/limited", headers={"x-user-id": user}) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].json() == {"remaining": 1, "failure": None}
    assert "r=1" in responses[0].headers["ratelimit"]
    assert '"per-user"' in responses[0].headers["ratelimit-policy"]
    denied = responses[2]
    assert int(denied.headers["retry-after"]) >= 1 and "r=0" in denied.headers["ratelimit"]
    assert denied.headers["content-type"] == "application/json"
    assert denied.json()["policy"] == "per-user" and denied.json()["allowed"] is False
    assert app.state.calls == 2, "a denied request never reaches the app"


def test_app_headers_win(floodgate: Floodgate, user: str, http: httpx.Client) -> None:
    with uvicorn_server(make_app(url=floodgate.url)) as url:
        response = http.get(f"{url}/limited?own=1", headers={"x-user-id": user})
    assert response.headers.get_list("ratelimit") == ["app's own"]


def test_default_attributes_user_method_path(floodgate: Floodgate, user: str, http: httpx.Client) -> None:
    app = make_app(url=floodgate.url, attributes=default_attributes)
    with uvicorn_server(app) as url:
        statuses = [http.get(f"{url}/default", headers={"x-user-id": user}).status_code for _ in range(2)]
        other = http.get(f"{url}/default", headers={"x-user-id": user + "-2"})
    assert statuses == [200, 429] and other.status_code == 200


def test_hits_and_skipping(floodgate: Floodgate, user: str, http: httpx.Client) -> None:
    def skip_default(request: Request) -> Optional[Dict[str, str]]:
        return None if request.url.path == "/default" else by_endpoint(request)

    app = make_app(url=floodgate.url, hits=lambda request: 2, attributes=skip_default)
    with uvicorn_server(app) as url:
        first = http.get(f"{url}/limited", headers={"x-user-id": user})
        second = http.get(f"{url}/limited", headers={"x-user-id": user})
        unchecked = [http.get(f"{url}/default", headers={"x-user-id": user}) for _ in range(3)]
    assert first.json()["remaining"] == 0 and second.status_code == 429
    assert [r.status_code for r in unchecked] == [200] * 3
    assert "ratelimit" not in unchecked[0].headers


def test_lease_released_when_response_finishes(floodgate: Floodgate, user: str, http: httpx.Client) -> None:
    client = CountingClient(floodgate.url, timeout=5)
    with uvicorn_server(make_app(client=client)) as url:
        statuses = [
            http.get(f"{url}/{path}", headers={"x-user-id": user}).status_code
            for path in ["single", "single/chunks"] * 10
        ]
    assert statuses == [200] * 20, "a concurrency limit of 1 admits each next request"
    assert len(client.released) == 20 and len(set(client.released)) == 20


def test_lease_released_when_client_disconnects(floodgate: Floodgate, user: str, http: httpx.Client) -> None:
    client = CountingClient(floodgate.url, timeout=5)
    with uvicorn_server(make_app(client=client)) as url:
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
    with uvicorn_server(make_app(client=client)) as url:
        failed = http.get(f"{url}/single/boom", headers={"x-user-id": user, "connection": "close"})
        after = http.get(f"{url}/single", headers={"x-user-id": user})
    assert failed.status_code == 500 and after.status_code == 200
    assert len(client.released) == 2 and len(set(client.released)) == 2


def test_oversized_user_header_is_a_400(floodgate: Floodgate, http: httpx.Client) -> None:
    app = make_app(url=floodgate.url)
    with uvicorn_server(app) as url:
        response = http.get(f"{url}/limited", headers={"x-user-id": "x" * 300})
    assert response.status_code == 400 and "256" in response.json()["error"]
    assert app.state.calls == 0


@pytest.mark.parametrize("fail_open", [True, False])
def test_sidecar_down(down_url: str, http: httpx.Client, fail_open: bool) -> None:
    app = make_app(url=down_url, fail_open=fail_open)
    with uvicorn_server(app) as url:
        response = http.get(f"{url}/limited", headers={"x-user-id": "u1"})
    if fail_open:
        assert response.status_code == 200 and "/v1/check" in response.json()["failure"]
    else:
        assert response.status_code == 503
        assert response.json() == {"error": "rate limiter unavailable"}


def test_silent_sidecar_fails_closed_within_timeout(silent_url: str, http: httpx.Client) -> None:
    client = AsyncClient(silent_url, timeout=0.2, fail_open=False)
    with uvicorn_server(make_app(client=client)) as url:
        response = http.get(f"{url}/limited", headers={"x-user-id": "u1"}, timeout=5)
    assert response.status_code == 503
    assert client.stats.failed_closed == 1
