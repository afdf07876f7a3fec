"""Helpers for building attributes from requests."""

from __future__ import annotations

#: floodgate refuses attribute values over this many bytes.
MAX_VALUE_BYTES = 256


def fit(value: str) -> str:
    """Cuts ``value`` to at most 256 UTF-8 bytes (on a character boundary),
    so a long URL path still gets a check instead of a 400."""
    raw = value.encode("utf-8", "surrogateescape")
    if len(raw) <= MAX_VALUE_BYTES:
        return value
    return raw[:MAX_VALUE_BYTES].decode("utf-8", "ignore")
