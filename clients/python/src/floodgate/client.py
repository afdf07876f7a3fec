"""The synchronous client: one pooled keep-alive connection set per client."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Dict, Mapping, Optional, Type

import httpx

from ._core import DEFAULT_TIMEOUT, DEFAULT_URL, Core, OnError, Stats, answer, append_bounded
from ._decision import Decision
from ._errors import FloodgateRequestError, FloodgateUnavailable


class Client:
    """Asks a floodgate sidecar over HTTP keep-alive. Thread-safe.

    A call that cannot reach the sidecar, or that takes longer than
    ``timeout`` seconds (checked at each network wait, so a sidecar that
    trickles its answer holds a call at most one more wait), or gets a 5xx
    or an answer over 1 MiB, never raises:
    a check or peek answers ``allowed=fail_open`` (with ``failure`` set),
    a release or settle answers ``False`` / ``None``. Each is counted in
    `stats`, logged (at most once per 10 s) and passed to ``on_error``.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        fail_open: bool = True,
        on_error: Optional[OnError] = None,
        max_connections: int = 100,
    ) -> None:
        self._core = Core(url, timeout, fail_open, on_error)
        self._http = httpx.Client(
            base_url=self._core.url,
            timeout=self._core.httpx_timeout(),
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
            ),
            trust_env=False,
        )

    @property
    def stats(self) -> Stats:
        """Failure counters: ``failures``, ``failed_open``, ``failed_closed``."""
        return self._core.stats

    @property
    def fail_open(self) -> bool:
        """Whether a check the sidecar could not decide is allowed."""
        return self._core.fail_open

    def check(
        self,
        attributes: Mapping[str, str],
        hits: int = 1,
        reserve: bool = False,
        max_wait_ms: Optional[int] = None,
    ) -> Decision:
        """``POST /v1/check``. ``reserve`` asks for a settlement id (``hits``
        is then the estimate); ``max_wait_ms`` lets the sidecar wait for a
        turn instead of denying at once (the timeout is stretched by it).

        Raises `FloodgateRequestError` when floodgate refuses the attributes
        (400); nothing is charged then.
        """
        body = self._core.check_body(attributes, hits, reserve, max_wait_ms)
        try:
            response = self._post("/v1/check", body, max_wait_ms)
            return self._core.decision(response)
        except httpx.HTTPError as err:
            return self._core.failed_check(self._core.unavailable("/v1/check", err))
        except FloodgateUnavailable as err:
            return self._core.failed_check(err)

    def peek(self, attributes: Mapping[str, str]) -> Decision:
        """A check that charges nothing (``hits=0``)."""
        return self.check(attributes, hits=0)

    def release(self, lease: str) -> bool:
        """``POST /v1/release``: frees a ``concurrency`` lease. False when the
        sidecar could not be reached (the lease then lapses at the policy's
        ``lease_timeout``). Raises `FloodgateRequestError` for a malformed
        lease."""
        try:
            response = self._post("/v1/release", {"lease": lease})
        except (httpx.HTTPError, FloodgateUnavailable) as err:
            self._core.report(self._core.unavailable("/v1/release", err))
            return False
        if response.status_code == 204:
            return True
        return self._refused(response, "/v1/release")

    def settle(self, settlement: str, actual: int) -> Optional[Dict[str, Any]]:
        """``POST /v1/settle``: charges the actual cost of a reserved check.
        The answer (``{"settled": true, ...}``), or None when the sidecar
        could not be reached (the estimate then stands). Raises
        `FloodgateRequestError` for a forged id (400) or one already
        settled or expired (409)."""
        body = settle_body(settlement, actual)
        try:
            response = self._post("/v1/settle", body)
        except (httpx.HTTPError, FloodgateUnavailable) as err:
            self._core.report(self._core.unavailable("/v1/settle", err))
            return None
        if response.status_code == 200:
            return settle_answer(response)
        self._refused(response, "/v1/settle")
        return None

    def _post(
        self, path: str, body: Dict[str, Any], max_wait_ms: Optional[int] = None
    ) -> httpx.Response:
        """One call, its answer read whole within the call's time (checked
        at each chunk) and `MAX_ANSWER` bytes."""
        total = self._core.total_timeout(max_wait_ms)
        deadline = time.monotonic() + total
        data = bytearray()
        with self._http.stream(
            "POST", path, json=body, timeout=self._core.httpx_timeout(max_wait_ms)
        ) as response:
            for chunk in response.iter_bytes():
                append_bounded(data, chunk)
                if time.monotonic() > deadline:
                    raise FloodgateUnavailable(f"{path} at {self._core.url} timed out: the answer took over {total} s")
        return answer(response, bytes(data))

    def _refused(self, response: httpx.Response, path: str) -> bool:
        err = self._core.refused(response, path)
        if isinstance(err, FloodgateRequestError):
            raise err
        assert isinstance(err, FloodgateUnavailable)
        self._core.report(err)
        return False

    def close(self) -> None:
        """Closes the pooled connections."""
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


def settle_body(settlement: str, actual: int) -> Dict[str, Any]:
    """The ``/v1/settle`` request body, checked."""
    if isinstance(actual, bool) or not isinstance(actual, int) or actual < 0:
        raise ValueError(f"actual must be a non-negative integer, got {actual!r}")
    return {"settlement": settlement, "actual": actual}


def settle_answer(response: httpx.Response) -> Dict[str, Any]:
    """The JSON object of a 200 ``/v1/settle`` answer."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        body = None
    return body if isinstance(body, dict) else {"settled": True}
