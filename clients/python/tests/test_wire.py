"""What the clients put on the wire and read back for the newer check fields
(reserve, max_wait_ms, settlement, waited_ms, deny_status, /v1/settle),
against a scripted sidecar, so it holds whatever the server build."""

from __future__ import annotations

from typing import Any, Dict

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from conftest import ScriptedSidecar, uvicorn_server
from floodgate import Client, FloodgateRequestError
from floodgate.asgi import FloodgateMiddleware

ALLOWED: Dict[str, Any] = {
    "allowed": True, "policy": "tokens", "limit": 100, "remaining": 50,
    "reset_after_ms": 1000, "retry_after_ms": 0, "statuses": [],
    "settlement": "s-1", "waited_ms": 120,
}
DENIED: Dict[str, Any] = {
    "allowed": False, "policy": "capacity", "limit": 1, "remaining": 0,
    "reset_after_ms": 0, "retry_after_ms": 2000, "statuses": [],
    "waited_ms": 0, "deny_status": 503,
}


def test_new_fields_sent_only_when_asked(scripted: ScriptedSidecar) -> None:
    scripted.answer("/v1/check", 200, ALLOWED)
    scripted.answer("/v1/check", 200, ALLOWED)
    with Client(scripted.url, timeout=5) as client:
        client.check({"user": "u1"})
        decision = client.check({"user": "u1"}, hits=50, reserve=True, max_wait_ms=300)
    assert scripted.requests[0] == ("/v1/check", {"attributes": {"user": "u1"}, "hits": 1})
    assert scripted.requests[1][1] == {
        "attributes": {"user": "u1"}, "hits": 50, "reserve": True, "max_wait_ms": 300,
    }
    assert decision.settlement == "s-1" and decision.waited_ms == 120


def test_deny_status_read(scripted: ScriptedSidecar) -> None:
    scripted.answer("/v1/check", 429, DENIED)
    with Client(scripted.url, timeout=5) as client:
        denied = client.check({"user": "u1"})
    assert not denied.allowed and denied.deny_status == 503 and denied.status == 503
    assert denied.headers == {"Retry-After": "2"}


def test_settle_answers_and_errors(scripted: ScriptedSidecar) -> None:
    scripted.answer("/v1/settle", 200, {"settled": True, "estimate": 50, "actual": 10})
    scripted.answer("/v1/settle", 409, {"error": "already settled or expired"})
    scripted.answer("/v1/settle", 400, {"error": "malformed settlement"})
    scripted.answer("/v1/settle", 503, {"error": "store unavailable"})
    with Client(scripted.url, timeout=5) as client:
        assert client.settle("s-1", 10) == {"settled": True, "estimate": 50, "actual": 10}
        with pytest.raises(FloodgateRequestError) as reused:
            client.settle("s-1", 10)
        with pytest.raises(FloodgateRequestError) as forged:
            client.settle("forged", 10)
        assert client.settle("s-1", 10) is None
        assert client.stats.failures == 1
    assert (reused.value.status, reused.value.error) == (409, "already settled or expired")
    assert forged.value.status == 400
    assert scripted.requests[0] == ("/v1/settle", {"settlement": "s-1", "actual": 10})


def test_asgi_middleware_answers_deny_status_and_settles(scripted: ScriptedSidecar) -> None:
    scripted.answer("/v1/check", 429, DENIED)
    scripted.answer("/v1/check", 200, ALLOWED)
    scripted.answer("/v1/settle", 200, {"settled": True})

    async def spend(request: Request) -> PlainTextResponse:
        answer = await request.state.floodgate.settle(7)
        return PlainTextResponse(str(answer))

    app = Starlette(routes=[Route("/", spend)])
    app.add_middleware(FloodgateMiddleware, url=scripted.url, reserve=True, max_wait_ms=250)
    with uvicorn_server(app) as url, httpx.Client(timeout=10, trust_env=False) as http:
        denied = http.get(url)
        spent = http.get(url)
    assert denied.status_code == 503 and denied.json()["deny_status"] == 503
    assert denied.headers["retry-after"] == "2"
    assert spent.status_code == 200 and spent.text == "{'settled': True}"
    sent = [body for _, body in scripted.requests]
    assert sent[0]["reserve"] is True and sent[0]["max_wait_ms"] == 250
    assert sent[2] == {"settlement": "s-1", "actual": 7}


def test_wsgi_middleware_answers_deny_status_and_settles(scripted: ScriptedSidecar) -> None:
    from flask import Flask
    from flask import request as flask_request

    from conftest import waitress_server
    from floodgate.wsgi import FloodgateWSGIMiddleware

    scripted.answer("/v1/check", 429, DENIED)
    scripted.answer("/v1/check", 200, ALLOWED)
    scripted.answer("/v1/settle", 200, {"settled": True})
    app = Flask(__name__)

    @app.get("/")
    def spend() -> str:
        return str(flask_request.environ["floodgate"].settle(7))

    app.wsgi_app = FloodgateWSGIMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, url=scripted.url, reserve=True, max_wait_ms=250
    )
    with waitress_server(app) as url, httpx.Client(timeout=10, trust_env=False) as http:
        denied = http.get(url)
        spent = http.get(url)
    assert denied.status_code == 503 and denied.json()["deny_status"] == 503
    assert denied.headers["retry-after"] == "2"
    assert spent.status_code == 200 and spent.text == "{'settled': True}"
    sent = [body for _, body in scripted.requests]
    assert sent[0]["reserve"] is True and sent[0]["max_wait_ms"] == 250
    assert sent[2] == {"settlement": "s-1", "actual": 7}


def test_a_malformed_answer_is_a_failure(scripted: ScriptedSidecar) -> None:
    scripted.answer("/v1/check", 200, {"nope": 1})
    scripted.answer("/v1/check", 200, {**ALLOWED, "remaining": "many"})
    scripted.answer("/v1/check", 404, {"error": "no such path"})
    with Client(scripted.url, timeout=5, fail_open=False) as client:
        decisions = [client.check({"user": "u1"}) for _ in range(3)]
        assert client.stats.failed_closed == 3
    assert all(not d.allowed and d.status == 503 for d in decisions)
    assert "malformed" in (decisions[0].failure or "") and "404" in (decisions[2].failure or "")
