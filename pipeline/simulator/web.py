"""HTTP helpers the simulator's routes share: reading a JSON body, paging a list."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pipeline.simulator.envelope import ApiError, invalid

Handler = Callable[[Request], Awaitable[Response]]
RouteHandler = Callable[[Request, str], Awaitable[Response]]
# Wraps a route's handler: a request id, errors as envelopes, stats by endpoint name.
Endpoint = Callable[[str, RouteHandler], Handler]


async def read_json(request: Request, *, limit: int) -> Any:
    """The body as JSON; 413 past ``limit`` bytes (declared or sent), 400 if not JSON."""
    declared = request.headers.get("content-length")
    too_large = ApiError(
        413, "request_too_large", "Request exceeds the maximum allowed number of bytes."
    )
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except ValueError as exc:
        raise invalid(f"There was an error parsing the body of your request: {exc}") from exc


def page(entries: Sequence[Mapping[str, Any]], query: Mapping[str, str]) -> dict[str, Any]:
    """One page of a list the way the API pages it: ``after_id``/``before_id``/``limit``."""
    ids = [entry["id"] for entry in entries]
    after, before = query.get("after_id"), query.get("before_id")
    try:
        limit = int(query.get("limit", "20"))
    except ValueError as exc:
        raise invalid("limit: Input should be a valid integer") from exc
    if not 1 <= limit <= 1000:
        raise invalid("limit: Input should be between 1 and 1000")
    if after in ids:
        rest = entries[ids.index(after) + 1 :]
        chosen, has_more = rest[:limit], len(rest) > limit
    elif before in ids:
        rest = entries[: ids.index(before)]
        chosen, has_more = rest[-limit:], len(rest) > limit  # the page just before
    else:
        chosen, has_more = entries[:limit], len(entries) > limit
    return {
        "data": list(chosen),
        "has_more": has_more,
        "first_id": chosen[0]["id"] if chosen else None,
        "last_id": chosen[-1]["id"] if chosen else None,
    }
