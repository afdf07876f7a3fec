"""The errors the clients raise or report."""

from __future__ import annotations

from typing import Optional


class FloodgateError(Exception):
    """Base class of the errors of this package."""


class FloodgateRequestError(FloodgateError):
    """floodgate refused the request itself (400, or 409 for a settlement
    already settled or expired): the caller sent something wrong. Nothing
    was charged or changed."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(f"floodgate answered {status}: {error}")
        #: The HTTP status floodgate answered.
        self.status = status
        #: floodgate's ``error`` message.
        self.error = error


class FloodgateUnavailable(FloodgateError):
    """floodgate could not be asked: unreachable, slower than the timeout,
    or it answered with an unexpected status (a 5xx). Passed to
    ``on_error``; the client then fails open or closed."""

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        #: The HTTP status when floodgate answered, else None.
        self.status = status
