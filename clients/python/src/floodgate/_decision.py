"""What floodgate answered to a check: the decision and its parts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

#: Response headers floodgate sets that an app should pass on to its client.
COPIED_HEADERS: Tuple[str, ...] = (
    "RateLimit-Policy",
    "RateLimit",
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)

#: The body an app's client gets when the sidecar could not decide and the
#: client fails closed.
UNAVAILABLE_BODY: Mapping[str, Any] = {"error": "rate limiter unavailable"}


@dataclass(frozen=True)
class PolicyStatus:
    """One applicable policy's answer (an entry of ``statuses``)."""

    policy: str
    allowed: bool
    limit: int
    remaining: int
    reset_after_ms: int
    retry_after_ms: int
    shadow: bool
    source: str


@dataclass(frozen=True)
class Decision:
    """The answer to a check.

    When the sidecar could not decide (unreachable, too slow, a 5xx),
    ``failure`` says why and ``allowed`` is the client's ``fail_open``.
    """

    allowed: bool
    policy: str = ""
    limit: int = 0
    remaining: int = 0
    reset_after_ms: int = 0
    retry_after_ms: int = 0
    lease: Optional[str] = None
    settlement: Optional[str] = None
    waited_ms: int = 0
    deny_status: Optional[int] = None
    statuses: Tuple[PolicyStatus, ...] = ()
    headers: Dict[str, str] = field(default_factory=dict)
    body: Mapping[str, Any] = field(default_factory=dict)
    failure: Optional[str] = None

    @property
    def status(self) -> int:
        """The HTTP status to answer a denied request with.

        503 when the sidecar could not decide (failing closed), else the
        deciding policy's ``deny_status``, else 429.
        """
        if self.failure is not None:
            return 503
        return self.deny_status if self.deny_status else 429

    def response_body(self) -> bytes:
        """The JSON body to answer a denied request with."""
        body = UNAVAILABLE_BODY if self.failure is not None else self.body
        return json.dumps(body, separators=(",", ":")).encode()


def _printable_ascii(value: str) -> bool:
    """Whether a header value is what floodgate sends (printable ASCII):
    anything else is not passed on to the app's client."""
    return all(" " <= c <= "~" for c in value)


def _int(body: Mapping[str, Any], name: str) -> int:
    value = body.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"field {name!r} is not an integer: {value!r}")
    return value


def _str(body: Mapping[str, Any], name: str) -> Optional[str]:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"field {name!r} is not a string: {value!r}")
    return value


def _status(entry: Any) -> PolicyStatus:
    if not isinstance(entry, dict):
        raise ValueError(f"a statuses entry is not an object: {entry!r}")
    return PolicyStatus(
        policy=str(entry.get("policy", "")),
        allowed=bool(entry.get("allowed", False)),
        limit=_int(entry, "limit"),
        remaining=_int(entry, "remaining"),
        reset_after_ms=_int(entry, "reset_after_ms"),
        retry_after_ms=_int(entry, "retry_after_ms"),
        shadow=bool(entry.get("shadow", False)),
        source=str(entry.get("source", "")),
    )


def parse_decision(body: Any, headers: Mapping[str, str]) -> Decision:
    """Builds a decision from a ``/v1/check`` JSON body and its headers.

    Raises ``ValueError`` when the body is not what floodgate sends.
    """
    if not isinstance(body, dict) or not isinstance(body.get("allowed"), bool):
        raise ValueError(f"not a check answer: {body!r}")
    statuses = body.get("statuses", [])
    if not isinstance(statuses, list):
        raise ValueError(f"statuses is not a list: {statuses!r}")
    deny_status = _int(body, "deny_status") if "deny_status" in body else None
    if deny_status is not None and not 400 <= deny_status <= 599:
        # floodgate's policies allow 400-599 only (as the Node client holds).
        raise ValueError(f"deny_status {deny_status} is not a 4xx or 5xx status")
    copied = {
        name: headers[name]
        for name in COPIED_HEADERS
        if name in headers and _printable_ascii(headers[name])
    }
    return Decision(
        allowed=body["allowed"],
        policy=str(body.get("policy", "")),
        limit=_int(body, "limit"),
        remaining=_int(body, "remaining"),
        reset_after_ms=_int(body, "reset_after_ms"),
        retry_after_ms=_int(body, "retry_after_ms"),
        lease=_str(body, "lease"),
        settlement=_str(body, "settlement"),
        waited_ms=_int(body, "waited_ms"),
        deny_status=deny_status or None,
        statuses=tuple(_status(entry) for entry in statuses),
        headers=copied,
        body=body,
    )
