"""A local Messages API server that behaves like the real one: validation, rate limits,
faults on demand, deterministic replies, prompt caching and Message Batches. Tests,
benchmarks and ``pipeline run --simulate`` talk to it over real HTTP.

The server, the service (uvicorn, starlette) and the rest are imported on first use: the command
line reads ``DEFAULT_API_KEY`` and the config types from here without paying for them."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from pipeline.core.errors import ConfigError
from pipeline.core.limits import TIERS, Limits
from pipeline.simulator.config import (
    CACHE_MIN_TOKENS,
    CONTEXT_WINDOW,
    DEFAULT_API_KEY,
    Batches,
    Faults,
    Latency,
    SimulatorConfig,
)

if TYPE_CHECKING:
    from pipeline.simulator.replies import request_digest
    from pipeline.simulator.server import SimulatorServer, serve
    from pipeline.simulator.service import Simulator
    from pipeline.simulator.tokenizer import count_request, count_text

_LAZY = {
    "SimulatorServer": "pipeline.simulator.server",
    "serve": "pipeline.simulator.server",
    "Simulator": "pipeline.simulator.service",
    "request_digest": "pipeline.simulator.replies",
    "count_request": "pipeline.simulator.tokenizer",
    "count_text": "pipeline.simulator.tokenizer",
}

__all__ = [
    "CACHE_MIN_TOKENS",
    "CONTEXT_WINDOW",
    "DEFAULT_API_KEY",
    "TIERS",
    "Batches",
    "ConfigError",
    "Faults",
    "Latency",
    "Limits",
    "Simulator",
    "SimulatorConfig",
    "SimulatorServer",
    "count_request",
    "count_text",
    "request_digest",
    "serve",
]


def __getattr__(name: str) -> Any:
    """The heavy names, imported when first asked for."""
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
