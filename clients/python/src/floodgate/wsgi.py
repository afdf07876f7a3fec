"""WSGI middleware for Flask, Django and any WSGI app.

    from floodgate.wsgi import FloodgateWSGIMiddleware
    app.wsgi_app = FloodgateWSGIMiddleware(app.wsgi_app)

Every request becomes one check. Denied: the app is not called; the client
gets the deciding policy's ``deny_status`` (else 429), the rate-limit
headers and floodgate's JSON body. Allowed: the headers are added to the
app's response, the decision is in ``environ["floodgate"]`` and a
``concurrency`` lease is released exactly once: as the last byte of the
response is handed to the server, when the server closes the response
iterable (the client went away), or when the app raises.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Tuple,
    Type,
    Union,
)

from ._core import DEFAULT_TIMEOUT, DEFAULT_URL, OnError
from ._decision import Decision
from ._errors import FloodgateRequestError
from .attributes import fit
from .client import Client

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
else:
    StartResponse = Callable[..., Callable[[bytes], object]]
    WSGIApplication = Callable[..., Iterable[bytes]]
    WSGIEnvironment = Dict[str, Any]

logger = logging.getLogger("floodgate")

#: environ → attributes (or None: let the request through unchecked).
AttributesFn = Callable[[WSGIEnvironment], Optional[Mapping[str, str]]]
#: environ → cost of the request.
HitsFn = Callable[[WSGIEnvironment], int]
ExcInfo = Union[
    Tuple[Type[BaseException], BaseException, TracebackType],
    Tuple[None, None, None],
]


def default_attributes(environ: WSGIEnvironment) -> Dict[str, str]:
    """``user`` from ``X-User-Id``, ``ip`` (``REMOTE_ADDR``), ``method``,
    ``path``."""
    raw_path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    path = raw_path.encode("latin-1", "replace").decode("utf-8", "replace") or "/"
    attributes = {"method": str(environ.get("REQUEST_METHOD", "GET")), "path": fit(path)}
    ip = environ.get("REMOTE_ADDR")
    if ip:
        attributes["ip"] = str(ip)
    user = environ.get("HTTP_X_USER_ID")
    if user:
        attributes["user"] = str(user)
    return attributes


class Grant:
    """What the app sees in ``environ["floodgate"]``."""

    def __init__(self, decision: Decision, client: Client) -> None:
        #: floodgate's answer for this request.
        self.decision = decision
        self._client = client

    def settle(self, actual: int) -> Optional[Dict[str, Any]]:
        """Charges the request's actual cost when the check reserved one
        (``reserve=True`` and a settling policy applied); else does nothing
        and answers None."""
        if self.decision.settlement is None:
            return None
        return self._client.settle(self.decision.settlement, actual)


class _Release:
    """Releases a lease at most once, whichever thread gets there first."""

    def __init__(self, client: Client, lease: str) -> None:
        self._client = client
        self._lease: Optional[str] = lease
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            lease, self._lease = self._lease, None
        if lease is None:
            return
        try:
            self._client.release(lease)
        except Exception:
            logger.exception("floodgate: releasing a lease failed")


class _Closing:
    """The app's response iterable, releasing the lease as the last byte
    is handed to the server (the one that completes ``Content-Length``, or
    the end of the iterable), and at the latest when closed."""

    def __init__(self, result: Iterable[bytes], release: _Release, length: List[int]) -> None:
        self._result = result
        self._release = release
        self._length = length

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for chunk in self._result:
            sent += len(chunk)
            if self._length and sent >= self._length[0]:
                # Before the server writes it: a client that sends its next
                # request as soon as this one ends finds the slot free.
                self._release()
            yield chunk
        self._release()

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._release()


class FloodgateWSGIMiddleware:
    """Rate-limits every request of a WSGI app through floodgate.

    Options (all keyword): ``client`` (a `Client` to share; else one is made
    from ``url``, ``timeout``, ``fail_open``, ``on_error``), ``attributes``
    (environ → attributes), ``hits`` (environ → cost), ``reserve`` and
    ``max_wait_ms`` (passed to every check).
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        client: Optional[Client] = None,
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
        self.client = client or Client(url, timeout=timeout, fail_open=fail_open, on_error=on_error)
        self._attributes = attributes
        self._hits = hits
        self._reserve = reserve
        self._max_wait_ms = max_wait_ms

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        attributes = self._attributes(environ)
        if attributes is None:
            return self.app(environ, start_response)
        hits = self._hits(environ) if self._hits is not None else 1
        try:
            decision = self.client.check(attributes, hits, self._reserve, self._max_wait_ms)
        except FloodgateRequestError as err:
            body = json.dumps({"error": err.error}, separators=(",", ":")).encode()
            return _respond(start_response, 400, body, {})
        if not decision.allowed:
            return _respond(start_response, decision.status, decision.response_body(), decision.headers)
        environ["floodgate"] = Grant(decision, self.client)
        return self._serve(environ, start_response, decision)

    def _serve(
        self, environ: WSGIEnvironment, start_response: StartResponse, decision: Decision
    ) -> Iterable[bytes]:
        length: List[int] = []

        def headed_start(
            status: str, headers: List[Tuple[str, str]], exc_info: Optional[ExcInfo] = None
        ) -> Callable[[bytes], object]:
            length[:] = _content_length(headers)
            return start_response(status, _with_headers(headers, decision.headers), exc_info)

        if decision.lease is None:
            return self.app(environ, headed_start)
        release = _Release(self.client, decision.lease)
        try:
            result = self.app(environ, headed_start)
        except BaseException:
            release()
            raise
        return _Closing(result, release, length)


def _content_length(headers: List[Tuple[str, str]]) -> List[int]:
    for name, value in headers:
        if name.lower() == "content-length" and value.strip().isdigit():
            return [int(value)]
    return []


def _with_headers(headers: List[Tuple[str, str]], extra: Mapping[str, str]) -> List[Tuple[str, str]]:
    present = {name.lower() for name, _ in headers}
    return list(headers) + [(n, v) for n, v in extra.items() if n.lower() not in present]


def _respond(
    start_response: StartResponse, status: int, body: bytes, headers: Mapping[str, str]
) -> List[bytes]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    base = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response(f"{status} {phrase}", _with_headers(base, headers))
    return [body]
