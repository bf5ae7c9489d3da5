"""A finished call as the state keeps it (``ResultStore.keep_call``): its request's hash,
its reply and its attempts, as JSON; and back."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from pipeline.core.models import Attempt, Reply, Usage


def request_hash(params: Mapping[str, Any]) -> str:
    """What a call is stored under: a hash of its request body."""
    body = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def encode(reply: Reply, attempts: tuple[Attempt, ...]) -> tuple[str, str]:
    return (
        json.dumps(asdict(reply), ensure_ascii=False),
        json.dumps([asdict(attempt) for attempt in attempts]),
    )


def decode(reply: str, attempts: str) -> tuple[Reply, tuple[Attempt, ...]]:
    fields = json.loads(reply)
    fields["usage"] = Usage(**fields["usage"])
    fields["content"] = tuple(fields["content"])
    return Reply(**fields), tuple(Attempt(**attempt) for attempt in json.loads(attempts))
