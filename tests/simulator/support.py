"""Talking to the simulator over HTTP in tests, with httpx as any client would."""

from __future__ import annotations

from typing import Any

import httpx

from pipeline.simulator import SimulatorServer

VERSION = "2023-06-01"
MODEL = "claude-sonnet-4-5"


def body(text: str = "Summarize: the cat sat on the mat.", **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 200,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def call(
    server: SimulatorServer,
    payload: Any,
    *,
    path: str = "/v1/messages",
    key: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> httpx.Response:
    sent = {"x-api-key": key if key is not None else server.api_key, "anthropic-version": VERSION}
    sent.update(headers or {})
    # The simulator's URL is plain HTTP on loopback: no certificate store to load (httpx
    # loads one for each call that does not say so, ~50-100 ms of CPU).
    url = f"{server.url}{path}"
    return httpx.post(url, json=payload, headers=sent, timeout=timeout, verify=False)


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    data = response.json()
    assert data["type"] == "error"
    assert data["request_id"] == response.headers["request-id"]
    return response.status_code, data["error"]["type"], data["error"]["message"]
