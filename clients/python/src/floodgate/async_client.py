"""The asyncio / trio client (httpx.AsyncClient)."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Dict, Mapping, Optional, Type

import anyio  # httpx's own dependency: a whole-call deadline on any event loop
import httpx

from ._core import DEFAULT_TIMEOUT, DEFAULT_URL, Core, OnError, Stats, answer, append_bounded
from ._decision import Decision
from ._errors import FloodgateRequestError, FloodgateUnavailable
from .client import settle_answer, settle_body


class AsyncClient:
    """The async twin of `Client`: same methods (awaitable), same options,
    same failure rules. Here ``timeout`` bounds each whole call."""

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
        self._http = httpx.AsyncClient(
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

    async def _post(
        self, path: str, body: Dict[str, Any], max_wait_ms: Optional[int] = None
    ) -> httpx.Response:
        data = bytearray()
        with anyio.fail_after(self._core.total_timeout(max_wait_ms)):
            async with self._http.stream(
                "POST", path, json=body, timeout=self._core.httpx_timeout(max_wait_ms)
            ) as response:
                async for chunk in response.aiter_bytes():
                    append_bounded(data, chunk)
        return answer(response, bytes(data))

    async def check(
        self,
        attributes: Mapping[str, str],
        hits: int = 1,
        reserve: bool = False,
        max_wait_ms: Optional[int] = None,
    ) -> Decision:
        """``POST /v1/check``; see `Client.check`."""
        body = self._core.check_body(attributes, hits, reserve, max_wait_ms)
        try:
            response = await self._post("/v1/check", body, max_wait_ms)
            return self._core.decision(response)
        except (httpx.HTTPError, TimeoutError) as err:
            return self._core.failed_check(self._core.unavailable("/v1/check", err))
        except FloodgateUnavailable as err:
            return self._core.failed_check(err)

    async def peek(self, attributes: Mapping[str, str]) -> Decision:
        """A check that charges nothing (``hits=0``)."""
        return await self.check(attributes, hits=0)

    async def release(self, lease: str) -> bool:
        """``POST /v1/release``; see `Client.release`."""
        try:
            response = await self._post("/v1/release", {"lease": lease})
        except (httpx.HTTPError, TimeoutError, FloodgateUnavailable) as err:
            self._core.report(self._core.unavailable("/v1/release", err))
            return False
        if response.status_code == 204:
            return True
        return self._refused(response, "/v1/release")

    async def settle(self, settlement: str, actual: int) -> Optional[Dict[str, Any]]:
        """``POST /v1/settle``; see `Client.settle`."""
        body = settle_body(settlement, actual)
        try:
            response = await self._post("/v1/settle", body)
        except (httpx.HTTPError, TimeoutError, FloodgateUnavailable) as err:
            self._core.report(self._core.unavailable("/v1/settle", err))
            return None
        if response.status_code == 200:
            return settle_answer(response)
        self._refused(response, "/v1/settle")
        return None

    def _refused(self, response: httpx.Response, path: str) -> bool:
        err = self._core.refused(response, path)
        if isinstance(err, FloodgateRequestError):
            raise err
        assert isinstance(err, FloodgateUnavailable)
        self._core.report(err)
        return False

    async def aclose(self) -> None:
        """Closes the pooled connections."""
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()
