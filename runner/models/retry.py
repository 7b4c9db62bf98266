"""Which failed provider calls are worth another try, and how long the provider asked us to wait — one rule for
chat calls (llm.py) and embedding calls (embed.py), whichever library (litellm, the openai SDK) raised."""

from __future__ import annotations

from typing import Any

_TRANSIENT = frozenset(("Timeout", "APITimeoutError", "APIConnectionError", "RateLimitError", "InternalServerError",
                        "ServiceUnavailableError", "BadGatewayError"))


def transient(exc: Exception) -> bool:
    """A 429, a 5xx, a timeout or a dropped connection: the same request may well succeed later."""
    status = getattr(exc, "status_code", None)
    return type(exc).__name__ in _TRANSIENT or (isinstance(status, int) and (status == 429 or status >= 500))


def reason(exc: Exception) -> str:
    """Why a transient failure happened, in one word for a metric's label: rate_limited, server, timeout,
    connection."""
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    if status == 429 or name == "RateLimitError":
        return "rate_limited"
    if "Timeout" in name:
        return "timeout"
    if name == "APIConnectionError":
        return "connection"
    return "server"


def refused_key(exc: Exception) -> bool:
    """The provider refused the key (401/403)."""
    return type(exc).__name__ == "AuthenticationError" or getattr(exc, "status_code", None) in (401, 403)


def retry_after(exc: Exception) -> float | None:
    """The seconds a Retry-After header asked for, if the error carries one."""
    value: Any = None
    for headers in (getattr(exc, "litellm_response_headers", None), getattr(exc, "headers", None),
                    getattr(getattr(exc, "response", None), "headers", None)):
        if headers and hasattr(headers, "get"):
            value = headers.get("retry-after") or headers.get("Retry-After")
            if value is not None:
                break
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
