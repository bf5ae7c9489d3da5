"""The error replies the simulator sends, in the real API's envelope.

``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}``
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any


def new_id(prefix: str) -> str:
    """A fresh identifier in the API's style: ``req_...``, ``msg_...``, ``msgbatch_...``."""
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass
class ApiError(Exception):
    """Raised inside the simulator to answer with an error status and envelope."""

    status: int
    type: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    def body(self, request_id: str) -> dict[str, Any]:
        return {
            "type": "error",
            "error": {"type": self.type, "message": self.message},
            "request_id": request_id,
        }


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


def overloaded() -> ApiError:
    return ApiError(529, "overloaded_error", "Overloaded", {"retry-after": "1"})


def api_error() -> ApiError:
    return ApiError(500, "api_error", "Internal server error")


def rate_limited(retry_after: float | None) -> ApiError:
    """A 429 refused for a storm, not for a limit the simulator keeps count of."""
    headers = {"x-should-retry": "true"}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    return ApiError(
        429,
        "rate_limit_error",
        "This request would exceed your organization's rate limit. Please wait before "
        "trying again.",
        headers,
    )
