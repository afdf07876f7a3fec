"""ASGI middleware for Starlette and FastAPI apps.

    from floodgate.asgi import FloodgateMiddleware
    app.add_middleware(FloodgateMiddleware, url="http://127.0.0.1:9720")

Every HTTP request becomes one check. Denied: the app is not called; the
client gets the deciding policy's ``deny_status`` (else 429), the
rate-limit headers and floodgate's JSON body. Allowed: the headers are added
to the app's response, the decision is in ``request.state.floodgate`` and a
``concurrency`` lease is released exactly once: as the last body message is
sent, when the client disconnects, or when the app raises or returns.
"""

from __future__ import annotations

import inspect
import json
import logging
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Tuple, Union

import anyio
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._core import DEFAULT_TIMEOUT, DEFAULT_URL, OnError
from ._decision import Decision
from ._errors import FloodgateRequestError
from .async_client import AsyncClient
from .attributes import fit

logger = logging.getLogger("floodgate")

#: request → attributes (or None: let the request through unchecked); may be async.
AttributesFn = Callable[
    [Request], Union[Optional[Mapping[str, str]], Awaitable[Optional[Mapping[str, str]]]]
]
#: request → cost of the request.
HitsFn = Callable[[Request], int]


def default_attributes(request: Request) -> Dict[str, str]:
    """``user`` from ``x-user-id``, ``ip`` (the peer), ``method``, ``path``."""
    attributes = {"method": request.method, "path": fit(request.url.path)}
    if request.client is not None and request.client.host:
        attributes["ip"] = request.client.host
    user = request.headers.get("x-user-id")
    if user:
        attributes["user"] = user
    return attributes


class AsyncGrant:
    """What the app sees in ``request.state.floodgate``."""

    def __init__(self, decision: Decision, client: AsyncClient) -> None:
        #: floodgate's answer for this request.
        self.decision = decision
        self._client = client

    async def settle(self, actual: int) -> Optional[Dict[str, Any]]:
        """Charges the request's actual cost when the check reserved one
        (``reserve=True`` and a settling policy applied); else does nothing
        and answers None."""
        if self.decision.settlement is None:
            return None
        return await self._client.settle(self.decision.settlement, actual)


class _Release:
    """Releases a lease at most once, even while being cancelled."""

    def __init__(self, client: AsyncClient, lease: Optional[str]) -> None:
        self._client = client
        self._lease = lease

    async def __call__(self) -> None:
        lease, self._lease = self._lease, None
        if lease is None:
            return
        with anyio.CancelScope(shield=True):
            try:
                await self._client.release(lease)
            except Exception:
                logger.exception("floodgate: releasing a lease failed")


class FloodgateMiddleware:
    """Rate-limits every HTTP request of an ASGI app through floodgate.

    Options (all keyword): ``client`` (an `AsyncClient` to share; else one
    is made from ``url``, ``timeout``, ``fail_open``, ``on_error``),
    ``attributes`` (request → attributes), ``hits`` (request → cost),
    ``reserve`` and ``max_wait_ms`` (passed to every check).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        client: Optional[AsyncClient] = None,
        url: str = DEFAULT_URL,
        timeout: float = DEFAULT_TIMEOUT,
        fail_open: bool = True,
        on_error: Optional[OnError] = None,
        attributes: AttributesFn = default_attributes,
        hits: Optional[HitsFn] = None,
        reserve: bool = False,
        max_wait_ms: Optional[int] = None,
    ) -> None:
        self.app = app
        self.client = client or AsyncClient(
            url, timeout=timeout, fail_open=fail_open, on_error=on_error
        )
        self._attributes = attributes
        self._hits = hits
        self._reserve = reserve
        self._max_wait_ms = max_wait_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        attributes = self._attributes(request)
        if inspect.isawaitable(attributes):
            attributes = await attributes
        if attributes is None:
            await self.app(scope, receive, send)
            return
        hits = self._hits(request) if self._hits is not None else 1
        try:
            decision = await self.client.check(attributes, hits, self._reserve, self._max_wait_ms)
        except FloodgateRequestError as err:
            await _respond(send, 400, _json({"error": err.error}), {})
            return
        if not decision.allowed:
            await _respond(send, decision.status, decision.response_body(), decision.headers)
            return
        scope.setdefault("state", {})["floodgate"] = AsyncGrant(decision, self.client)
        await self._serve(scope, receive, send, decision)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, decision: Decision) -> None:
        release = _Release(self.client, decision.lease)

        async def watched_receive() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect":
                await release()
            return message

        async def headed_send(message: Message) -> None:
            if message["type"] == "http.response.start" and decision.headers:
                message = dict(message)
                message["headers"] = _with_headers(message.get("headers", []), decision.headers)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                # Before the last bytes go out: a client that sends its next
                # request as soon as this one ends finds the slot free.
                await release()
            await send(message)

        try:
            await self.app(scope, watched_receive, headed_send)
        finally:
            await release()


def _with_headers(
    headers: Any, extra: Mapping[str, str]
) -> List[Tuple[bytes, bytes]]:
    out: List[Tuple[bytes, bytes]] = [(bytes(n), bytes(v)) for n, v in headers]
    present = {name.lower() for name, _ in out}
    for name, value in extra.items():
        key = name.lower().encode("latin-1")
        if key not in present:
            out.append((key, value.encode("latin-1")))
    return out


def _json(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


async def _respond(send: Send, status: int, body: bytes, headers: Mapping[str, str]) -> None:
    raw = _with_headers(
        [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        headers,
    )
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
