"""Python client for floodgate, the rate-limiting sidecar.

`Client` and `AsyncClient` ask floodgate's HTTP API; `floodgate.asgi` and
`floodgate.wsgi` hold the middleware for Starlette/FastAPI and Flask/Django.
"""

from ._core import DEFAULT_TIMEOUT, DEFAULT_URL, Stats
from ._decision import COPIED_HEADERS, Decision, PolicyStatus
from ._errors import FloodgateError, FloodgateRequestError, FloodgateUnavailable
from .async_client import AsyncClient
from .client import Client

__all__ = [
    "AsyncClient",
    "Client",
    "COPIED_HEADERS",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "Decision",
    "FloodgateError",
    "FloodgateRequestError",
    "FloodgateUnavailable",
    "PolicyStatus",
    "Stats",
]
__version__ = "0.1.0"
