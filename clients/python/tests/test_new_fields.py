"""Reserve/settle, deny_status and max_wait_ms: the check fields the server
gains with the token-budget and waiting features. These tests need a
floodgate that has them (``/v1/settle``, ``deny_status``, ``max_wait``)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Dict, Iterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from flask import Flask, jsonify
from flask import request as flask_request

from conftest import Floodgate, uvicorn_server, waitress_server
from floodgate import AsyncClient, Client, FloodgateRequestError
from floodgate.asgi import FloodgateMiddleware
from floodgate.wsgi import FloodgateWSGIMiddleware

POLICIES = """
[[policy]]
name = "tokens"
match = { endpoint = "ai" }
key = ["user"]
limit = 100
window = "1h"
settle = true

[[policy]]
name = "capacity"
match = { endpoint = "capacity" }
key = ["user"]
algorithm = "concurrency"
limit = 1
deny_status = 503
max_wait = "10s"
"""


@pytest.fixture(scope="module")
def server() -> Iterator[Floodgate]:
    fg = Floodgate(POLICIES)
    yield fg
    fg.stop()


@pytest.fixture
def client(server: Floodgate) -> Iterator[Client]:
    with Client(server.url, timeout=5) as client:
        yield client


def test_reserve_then_settle_charges_the_actual_cost(client: Client, user: str) -> None:
    attrs = {"user": user, "endpoint": "ai"}
    reserved = client.check(attrs, hits=50, reserve=True)
    assert reserved.allowed and reserved.settlement and reserved.remaining == 50
    answer = client.settle(reserved.settlement, 10)
    assert answer is not None and answer["settled"] is True
    assert client.peek(attrs).remaining == 90
    with pytest.raises(FloodgateRequestError) as again:
        client.settle(reserved.settlement, 10)
    assert again.value.status == 409
    with pytest.raises(FloodgateRequestError) as forged:
        client.settle("forged", 10)
    assert forged.value.status == 400
    assert client.peek(attrs).remaining == 90, "refused settles change nothing"


def test_no_settlement_without_reserve(client: Client, user: str) -> None:
    decision = client.check({"user": user, "endpoint": "ai"}, hits=5)
    assert decision.allowed and decision.settlement is None and decision.waited_ms == 0


def test_deny_status_of_the_deciding_policy(client: Client, user: str) -> None:
    attrs = {"user": user, "endpoint": "capacity"}
    held = client.check(attrs)
    assert held.allowed and held.lease and held.deny_status is None
    denied = client.check(attrs)
    assert not denied.allowed and denied.deny_status == 503 and denied.status == 503
    assert denied.body["deny_status"] == 503
    assert client.release(held.lease)


def test_max_wait_waits_for_the_released_slot(client: Client, user: str) -> None:
    """The client's 0.2 s timeout is stretched by the wait it asks for."""
    attrs = {"user": user, "endpoint": "capacity"}
    held = client.check(attrs)
    assert held.lease
    timer = threading.Timer(0.6, client.release, args=(held.lease,))
    timer.start()

    async def wait() -> Any:
        async with AsyncClient(client._core.url, timeout=0.2) as waiting:
            return await waiting.check(attrs, max_wait_ms=5000)

    with Client(client._core.url, timeout=0.2) as sync_waiting:
        decision = sync_waiting.check(attrs, max_wait_ms=5000)
    timer.join()
    assert decision.failure is None and decision.allowed and decision.waited_ms > 0
    assert decision.lease
    threading.Timer(0.6, client.release, args=(decision.lease,)).start()
    async_decision = asyncio.run(wait())
    assert async_decision.failure is None and async_decision.allowed
    assert async_decision.waited_ms > 0
    client.release(async_decision.lease)


def asgi_app(server: Floodgate) -> FastAPI:
    app = FastAPI()

    @app.get("/{endpoint}")
    async def spend(request: Request) -> JSONResponse:
        answer = await request.state.floodgate.settle(7)
        return JSONResponse({"settled": answer is not None and answer["settled"]})

    def attributes(request: Request) -> Dict[str, str]:
        return {"user": request.headers["x-user-id"], "endpoint": request.url.path.strip("/")}

    app.add_middleware(
        FloodgateMiddleware,
        url=server.url,
        attributes=attributes,
        hits=lambda r: 50 if r.url.path == "/ai" else 1,
        reserve=True,
    )
    return app


def wsgi_app(server: Floodgate) -> Flask:
    app = Flask(__name__)

    @app.get("/<endpoint>")
    def spend(endpoint: str) -> Any:
        answer = flask_request.environ["floodgate"].settle(7)
        return jsonify({"settled": answer is not None and answer["settled"]})

    def attributes(environ: Dict[str, Any]) -> Dict[str, str]:
        return {"user": environ["HTTP_X_USER_ID"], "endpoint": environ["PATH_INFO"].strip("/")}

    app.wsgi_app = FloodgateWSGIMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        url=server.url,
        attributes=attributes,
        hits=lambda e: 50 if e["PATH_INFO"] == "/ai" else 1,
        reserve=True,
    )
    return app


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_middleware_settles_and_answers_deny_status(
    server: Floodgate, client: Client, user: str, kind: str
) -> None:
    run = uvicorn_server(asgi_app(server)) if kind == "asgi" else waitress_server(wsgi_app(server))
    with run as url, httpx.Client(timeout=10, trust_env=False) as http:
        spent = http.get(f"{url}/ai", headers={"x-user-id": user})
        assert spent.status_code == 200 and spent.json() == {"settled": True}
        assert client.peek({"user": user, "endpoint": "ai"}).remaining == 93
        held = client.check({"user": user, "endpoint": "capacity"})
        assert held.lease
        start = time.monotonic()
        denied = http.get(f"{url}/capacity", headers={"x-user-id": user})
        assert time.monotonic() - start < 5, "the middleware asked for no wait"
        client.release(held.lease)
    assert denied.status_code == 503
    assert denied.json()["policy"] == "capacity" and denied.json()["deny_status"] == 503
    assert int(denied.headers["retry-after"]) >= 1
