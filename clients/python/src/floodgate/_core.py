"""What the sync and async clients share: options, request bodies, reading
answers, and the failure policy (count, log, fail open or closed)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional

import httpx

from ._decision import Decision, parse_decision
from ._errors import FloodgateRequestError, FloodgateUnavailable

#: floodgate's default HTTP listener.
DEFAULT_URL = "http://127.0.0.1:9720"
#: Seconds a call to the sidecar may take before the client gives up.
DEFAULT_TIMEOUT = 0.2
#: Seconds between two log lines about the sidecar being unavailable.
LOG_INTERVAL = 10.0
#: Largest answer read from the sidecar, in bytes (its answers are small).
MAX_ANSWER = 1 << 20

logger = logging.getLogger("floodgate")

#: Called with every failure to reach the sidecar.
OnError = Callable[[FloodgateUnavailable], None]


@dataclass
class Stats:
    """Calls to the sidecar that failed (unreachable, too slow, a 5xx)."""

    #: Every failed call: checks, peeks, releases and settles.
    failures: int = 0
    #: Checks and peeks that failed and were allowed (``fail_open=True``).
    failed_open: int = 0
    #: Checks and peeks that failed and were denied (``fail_open=False``).
    failed_closed: int = 0


class Core:
    """The state and rules common to `Client` and `AsyncClient`."""

    def __init__(
        self,
        url: str,
        timeout: float,
        fail_open: bool,
        on_error: Optional[OnError],
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        self.fail_open = fail_open
        self.on_error = on_error
        self.stats = Stats()
        self._lock = threading.Lock()
        self._last_log = -LOG_INTERVAL
        self._unlogged = 0

    def httpx_timeout(self, max_wait_ms: Optional[int] = None) -> httpx.Timeout:
        """Each network wait of one call, stretched by the wait asked for."""
        return httpx.Timeout(self.total_timeout(max_wait_ms))

    def total_timeout(self, max_wait_ms: Optional[int] = None) -> float:
        """Seconds one call may take: the timeout, plus the wait asked for."""
        return self.timeout + (max_wait_ms or 0) / 1000.0

    @staticmethod
    def check_body(
        attributes: Mapping[str, str],
        hits: int,
        reserve: bool,
        max_wait_ms: Optional[int],
    ) -> Dict[str, Any]:
        """The ``/v1/check`` request body; new fields only when asked for."""
        if isinstance(hits, bool) or not isinstance(hits, int) or hits < 0:
            raise ValueError(f"hits must be a non-negative integer, got {hits!r}")
        body: Dict[str, Any] = {"attributes": dict(attributes), "hits": hits}
        if reserve:
            body["reserve"] = True
        if max_wait_ms is not None:
            if isinstance(max_wait_ms, bool) or not isinstance(max_wait_ms, int) or max_wait_ms < 0:
                raise ValueError(f"max_wait_ms must be a non-negative integer, got {max_wait_ms!r}")
            body["max_wait_ms"] = max_wait_ms
        return body

    def decision(self, response: httpx.Response) -> Decision:
        """Reads a ``/v1/check`` answer (200 allowed, 429 denied)."""
        if response.status_code not in (200, 429):
            raise self.refused(response, "/v1/check")
        try:
            return parse_decision(response.json(), response.headers)
        except (ValueError, RecursionError) as err:
            raise FloodgateUnavailable(f"/v1/check sent a malformed answer: {err}") from err

    def refused(self, response: httpx.Response, path: str) -> Exception:
        """The error for an unexpected status: the caller's fault (400,
        409) or the sidecar's (anything else)."""
        status = response.status_code
        if status in (400, 409):
            return FloodgateRequestError(status, _error_text(response))
        return FloodgateUnavailable(
            f"{path} answered {status}: {_error_text(response)}", status=status
        )

    def unavailable(self, path: str, err: Exception) -> FloodgateUnavailable:
        """Wraps a transport error."""
        if isinstance(err, FloodgateUnavailable):
            return err
        if isinstance(err, httpx.TimeoutException) or isinstance(err, TimeoutError):
            what = "timed out"
        else:
            what = "failed"
        return FloodgateUnavailable(f"{path} at {self.url} {what}: {type(err).__name__}: {err}")

    def failed_check(self, err: FloodgateUnavailable) -> Decision:
        """Counts and reports a check the sidecar could not decide, and
        answers it by the fail-open option."""
        with self._lock:
            if self.fail_open:
                self.stats.failed_open += 1
            else:
                self.stats.failed_closed += 1
        self.report(err)
        return Decision(allowed=self.fail_open, failure=str(err))

    def report(self, err: FloodgateUnavailable) -> None:
        """Counts a failure, logs it (at most once per `LOG_INTERVAL`) and
        calls ``on_error``."""
        now = time.monotonic()
        with self._lock:
            self.stats.failures += 1
            log = now - self._last_log >= LOG_INTERVAL
            if log:
                self._last_log = now
                skipped, self._unlogged = self._unlogged, 0
            else:
                self._unlogged += 1
        if log:
            mode = "allowing" if self.fail_open else "denying"
            more = f" ({skipped} more failures not logged)" if skipped else ""
            logger.warning("floodgate unavailable, %s requests: %s%s", mode, err, more)
        if self.on_error is not None:
            try:
                self.on_error(err)
            except Exception:  # an app's callback must never fail a request
                logger.exception("floodgate: the on_error callback raised")


def append_bounded(data: bytearray, chunk: bytes) -> None:
    """Adds a chunk of an answer to ``data``, refusing answers over
    `MAX_ANSWER` bytes."""
    data += chunk
    if len(data) > MAX_ANSWER:
        raise FloodgateUnavailable(f"the sidecar's answer is over {MAX_ANSWER} bytes")


def answer(response: httpx.Response, content: bytes) -> httpx.Response:
    """A streamed ``response`` whose (decoded) body was read into
    ``content``, as a whole response."""
    headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"content-encoding"]
    return httpx.Response(response.status_code, headers=headers, content=content)


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return response.text[:200]
