"""A local Messages API server that behaves like the real one: validation, rate limits,
faults on demand, deterministic replies, prompt caching and Message Batches. Tests,
benchmarks and ``pipeline run --simulate`` talk to it over real HTTP."""

from pipeline.errors import ConfigError
from pipeline.limits import TIERS, Limits
from pipeline.simulator.config import (
    CACHE_MIN_TOKENS,
    CONTEXT_WINDOW,
    DEFAULT_API_KEY,
    Batches,
    Faults,
    Latency,
    SimulatorConfig,
)
from pipeline.simulator.replies import request_digest
from pipeline.simulator.server import SimulatorServer, serve
from pipeline.simulator.service import Simulator
from pipeline.simulator.tokenizer import count_request, count_text

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
