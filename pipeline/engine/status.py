"""What an HTTP error reply means: the package's error for it (``pipeline.core.errors``),
decided by status code and API error type, never by message text; the server's advice on
waiting (``retry-after``, ``x-should-retry``); the key scrubbed from every text it carries.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from pipeline.config.endpoint import Endpoint, redact_error
from pipeline.core.errors import (
    AuthenticationFailed,
    BillingProblem,
    Conflict,
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    PipelineError,
    RateLimited,
    RequestTimeout,
    RequestTooLarge,
    ServerError,
    SpendCapReached,
)
from pipeline.core.limits import MAX_PAUSE_S

SPEND_CAP_CODE = "enforced_spend_limit_reached"

log = logging.getLogger("pipeline.client")

# Statuses whose error carries the server's words as they are.
_PLAIN: dict[int, type[PipelineError]] = {
    413: RequestTooLarge,
    408: RequestTimeout,
    409: Conflict,
    529: Overloaded,
}


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The server's wait in seconds (``retry-after-ms``, else ``retry-after``), or None when
    it gave none worth following: a wait of zero or less, or a date already past, would
    retry at once into a storm, so our own backoff applies instead, as the official SDK's;
    a value that is not a finite number is no wait either. A wait over ``MAX_PAUSE_S`` is
    cut to it, and logged: one reply must not be able to stop the run for ever."""
    millis = _seconds(headers.get("retry-after-ms"), scale=1000.0)
    seconds = millis if millis is not None else _seconds(headers.get("retry-after"))
    if seconds is not None and seconds > MAX_PAUSE_S:
        log.warning(
            "the server asked for a pause of %.0f s (retry-after); pausing %.0f s, the most "
            "a run waits on one reply",
            seconds,
            MAX_PAUSE_S,
            extra={"event": "retry_after_capped", "asked_s": seconds},
        )
        return MAX_PAUSE_S
    return seconds


def _seconds(value: str | None, *, scale: float = 1.0) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value) / scale
    except ValueError:
        if scale != 1.0:
            return None
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def _should_retry(headers: Mapping[str, str]) -> bool | None:
    value = headers.get("x-should-retry", "").lower()
    return {"true": True, "false": False}.get(value)


def error_from_status(
    status: int, body: Any, headers: Mapping[str, str], endpoint: Endpoint
) -> PipelineError:
    """The error for a reply of ``status`` with ``body`` (an API error envelope, or not),
    the key scrubbed from it."""
    top = body if isinstance(body, Mapping) else {}
    error = top.get("error")
    error = error if isinstance(error, Mapping) else {}
    message = str(error.get("message") or "") or f"HTTP {status} with no error message"
    request_id = headers.get("request-id") or top.get("request_id")
    retry_after = _retry_after(headers)
    code = error.get("error_code") or top.get("error_code")
    # a spend cap with a wait to follow is a rate limit after all
    spend_cap = code == SPEND_CAP_CODE and retry_after is None
    kind, text = _kind_and_text(status, message, endpoint, spend_cap=spend_cap)
    made = kind(
        text,
        status=status,
        error_type=str(error.get("type") or "") or None,
        request_id=str(request_id) if request_id is not None else None,
        retry_after=retry_after,
        should_retry=_should_retry(headers),
    )
    return redact_error(made, endpoint.api_key)


def _kind_and_text(
    status: int, message: str, endpoint: Endpoint, *, spend_cap: bool
) -> tuple[type[PipelineError], str]:
    where = endpoint.base_url
    if status == 401:
        return (
            AuthenticationFailed,
            f"The API key from {endpoint.key_source} was refused by {where}: {message}. "
            "Check that the key is right for this endpoint.",
        )
    if status == 402:
        return BillingProblem, f"{where} refused to bill this account: {message}."
    if status == 403:
        return (
            PermissionDenied,
            f"The key may not do this at {where}: {message}. Check its permissions.",
        )
    if status == 404:
        return (
            ModelNotFound,
            f"{where} answered 'not found': {message}. Check the model name (GET "
            f"{where}/v1/models lists them) and the base URL.",
        )
    if status == 429 and spend_cap:
        return (
            SpendCapReached,
            f"The account's spend limit is reached at {where}: {message}. Raise the limit "
            "or wait for it to reset, then run again: finished work is kept.",
        )
    if status == 429:
        return RateLimited, message
    if status in _PLAIN:
        return _PLAIN[status], message
    if status >= 500:
        return ServerError, message
    return InvalidRequest, message


# A batch result's error carries a type but no HTTP status: the status each type comes with.
STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
