"""What the simulator is told: limits, faults, latency and the keys it accepts.

Small frozen value classes that check themselves on construction and name the offending
field, so a bad command line or a bad test fixture fails at once with a message to act on.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Literal

from pipeline.core import catalogue, defaults
from pipeline.core.errors import ConfigError
from pipeline.core.limits import Limits

CONTEXT_WINDOW = catalogue.DEFAULT_WINDOW  # each model's own is in the table; all are 200K
MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_API_KEY = defaults.SIMULATOR_API_KEY
# The shortest prefix the real API caches on Sonnet 4/4.5 and Opus 4/4.1 (other models: 2,048
# or 4,096, each model's in ``pipeline.core.catalogue``); shorter prefixes are processed
# without caching, silently.
CACHE_MIN_TOKENS = catalogue.DEFAULT_CACHE_MINIMUM
BATCH_MAX_REQUESTS = 100_000
BATCH_MAX_BYTES = 256 * 1024 * 1024

# Which models the simulator serves (``pipeline.core.defaults``: the command line offers them
# without importing the simulator). Facts, prices and order come from the one table
# (``pipeline.core.catalogue``); anything else is a 404.
ModelSet = defaults.ModelSet
MODEL_SETS = defaults.MODEL_SETS


@dataclass(frozen=True)
class ServedModels:
    """The models one simulator serves, newest first, and the aliases it resolves."""

    models: tuple[catalogue.Model, ...]
    aliases: dict[str, str]

    def resolve(self, name: str) -> catalogue.Model | None:
        wanted = self.aliases.get(name, name)
        return next((model for model in self.models if model.id == wanted), None)


@functools.cache
def served_models(which: ModelSet) -> ServedModels:
    listers: tuple[catalogue.Lister, ...] = (
        ("gateway", "anthropic") if which == "both" else (which,)
    )
    found = {model.id: model for lister in listers for model in catalogue.listed(lister)}
    models = tuple(sorted(found.values(), key=lambda model: model.created_at, reverse=True))
    aliases = {
        alias: model.id
        for model in models
        if "anthropic" in listers and "anthropic" in model.listed_by
        for alias in model.aliases
    }
    return ServedModels(models, aliases)


# Anthropic's list as (id, display name, created), and its aliases: what tests compare with.
MODELS: tuple[tuple[str, str, str], ...] = tuple(
    (model.id, model.display_name, model.created_at) for model in served_models("anthropic").models
)
MODEL_ALIASES: dict[str, str] = served_models("anthropic").aliases


def _check_non_negative(
    owner: object, section: str, name: str, *, upper: float | None = None
) -> None:
    value = getattr(owner, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{section}.{name}: expected a number, got {value!r}")
    if value < 0 or (upper is not None and value > upper):
        bound = f"between 0 and {upper:g}" if upper is not None else "0 or more"
        raise ConfigError(f"{section}.{name}: must be {bound}, got {value!r}")


FaultKind = Literal[
    "overloaded", "api_error", "drop", "slow", "stream_error", "truncated", "rate_limited"
]
# New kinds go last: the draws of the earlier ones stay as they were for a given seed.
FAULT_KINDS: tuple[FaultKind, ...] = (
    "overloaded",
    "api_error",
    "drop",
    "slow",
    "stream_error",
    "truncated",
    "rate_limited",
)


@dataclass(frozen=True)
class Faults:
    """Faults injected on purpose, each with the probability that a request draws it.

    The draw is seeded by ``seed``, the request's content and how many times that same
    request was seen before, so a run is reproducible whatever order requests arrive in,
    and a retry draws afresh.

    - ``overloaded``: 529 overloaded_error (with retry-after).
    - ``api_error``: 500 api_error.
    - ``drop``: the reply is produced (and counted as served) but the connection is cut
      part-way through the body: a reply lost in transit.
    - ``slow``: the reply is held for ``slow_seconds`` first, past a sensible client timeout.
    - ``stream_error``: a streamed reply sends ``event: error`` (overloaded) after some text.
    - ``truncated``: the reply is produced (and counted as served) but its body is cut short
      and the response then ends cleanly: a 200 whose JSON does not parse, or a stream that
      stops before ``message_stop`` without an error. Lost in transit, like ``drop``.
    - ``rate_limited``: a 429 rate_limit_error although no limit is reached (a storm), with
      ``retry-after: rate_limited_retry_after`` seconds, or no ``retry-after`` when that is
      None.
    """

    overloaded: float = 0.0
    api_error: float = 0.0
    drop: float = 0.0
    slow: float = 0.0
    stream_error: float = 0.0
    truncated: float = 0.0
    rate_limited: float = 0.0
    slow_seconds: float = 30.0
    rate_limited_retry_after: float | None = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for kind in FAULT_KINDS:
            _check_non_negative(self, "faults", kind, upper=1.0)
        if sum(getattr(self, kind) for kind in FAULT_KINDS) > 1.0:
            raise ConfigError("faults: the rates add up to more than 1")
        _check_non_negative(self, "faults", "slow_seconds")
        if self.rate_limited_retry_after is not None:
            _check_non_negative(self, "faults", "rate_limited_retry_after")

    @property
    def any(self) -> bool:
        return any(getattr(self, kind) > 0 for kind in FAULT_KINDS)


@dataclass(frozen=True)
class Latency:
    """How long a reply takes: ``fixed`` seconds plus ``per_output_token`` seconds per token."""

    fixed: float = 0.0
    per_output_token: float = 0.0

    def __post_init__(self) -> None:
        _check_non_negative(self, "latency", "fixed")
        _check_non_negative(self, "latency", "per_output_token")

    def seconds(self, output_tokens: int) -> float:
        return self.fixed + self.per_output_token * output_tokens


@dataclass(frozen=True)
class Batches:
    """How Message Batches are processed.

    A batch ends ``processing_seconds`` after it is created, on the simulator's clock; each
    request in it finishes at a point of that span drawn from the seed and the request, so a
    cancel keeps the results of those done by the time cancelling completes
    (``cancel_seconds`` after the cancel) and cancels the rest. Requests still unfinished 24 h
    after creation expire. ``errored`` and ``expired`` are the probabilities that a valid
    request ends ``errored`` (500 api_error) or ``expired`` anyway, drawn from ``seed``, the
    request's ``custom_id`` and its params, so a run is reproducible.
    """

    processing_seconds: float = 5.0
    cancel_seconds: float = 1.0
    errored: float = 0.0
    expired: float = 0.0
    seed: int = 0
    max_requests: int = BATCH_MAX_REQUESTS
    max_body_bytes: int = BATCH_MAX_BYTES

    def __post_init__(self) -> None:
        _check_non_negative(self, "batches", "processing_seconds")
        _check_non_negative(self, "batches", "cancel_seconds")
        _check_non_negative(self, "batches", "errored", upper=1.0)
        _check_non_negative(self, "batches", "expired", upper=1.0)
        if self.errored + self.expired > 1.0:
            raise ConfigError("batches: errored + expired add up to more than 1")
        for name in ("max_requests", "max_body_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"batches.{name}: must be a whole number of at least 1")


@dataclass(frozen=True)
class SimulatorConfig:
    api_keys: frozenset[str] = frozenset({DEFAULT_API_KEY})
    limits: Limits = field(default_factory=Limits)
    faults: Faults = field(default_factory=Faults)
    latency: Latency = field(default_factory=Latency)
    # Replies are this many tokens long when max_tokens allows (deterministic per request
    # within the range), so a test can make max_tokens cut them.
    reply_tokens: tuple[int, int] = (40, 120)
    # With tool_choice auto, a conversation calls tools this many rounds (deterministic per
    # conversation within the range) before it answers (``turns``).
    tool_rounds: tuple[int, int] = (1, 3)
    # Real servers round token "remaining" headers to the nearest thousand.
    round_remaining: bool = True
    count_tokens_requests_per_minute: int | None = None
    # Charge this many times the documented count: a tokenizer that counts more than the
    # client estimated (newer models' tokenizers give up to ~35% more for the same text).
    token_scale: float = 1.0
    # Prompt caching: a prefix shorter than the model's minimum (``pipeline.core.catalogue``)
    # is not cached; a number here is the minimum for every model instead (tests lower it).
    cache_min_tokens: int | None = None
    batches: Batches = field(default_factory=Batches)
    models: ModelSet = "gateway"
    # Endpoints a gateway may leave out: without them, their paths are a 404 as on a server
    # that has no such route.
    count_tokens: bool = True
    message_batches: bool = True

    @property
    def served(self) -> ServedModels:
        return served_models(self.models)

    def __post_init__(self) -> None:
        if self.models not in MODEL_SETS:
            raise ConfigError(f"models: one of {', '.join(MODEL_SETS)}, got {self.models!r}")
        if not self.api_keys or any(not key for key in self.api_keys):
            raise ConfigError("api_keys: give at least one non-empty key")
        low, high = self.reply_tokens
        if not 1 <= low <= high:
            raise ConfigError(f"reply_tokens: need 1 <= low <= high, got {self.reply_tokens!r}")
        low, high = self.tool_rounds
        if not 0 <= low <= high <= 100:
            raise ConfigError(
                f"tool_rounds: need 0 <= low <= high <= 100, got {self.tool_rounds!r}"
            )
        if not 0.1 <= self.token_scale <= 10:
            raise ConfigError("token_scale: must be between 0.1 and 10")
        limit = self.count_tokens_requests_per_minute
        if limit is not None and limit < 1:
            raise ConfigError("count_tokens_requests_per_minute: must be at least 1")
        minimum = self.cache_min_tokens
        if minimum is not None and (
            isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1
        ):
            raise ConfigError(
                "cache_min_tokens: a whole number of at least 1, or None for each model's own"
            )

    def __repr__(self) -> str:
        # Keys are secrets even in a simulator: a repr that leaks them teaches bad habits.
        return (
            f"SimulatorConfig(api_keys=<{len(self.api_keys)} redacted>, limits={self.limits!r}, "
            f"faults={self.faults!r}, latency={self.latency!r}, "
            f"reply_tokens={self.reply_tokens!r}, tool_rounds={self.tool_rounds!r}, "
            f"cache_min_tokens={self.cache_min_tokens}, "
            f"batches={self.batches!r}, models={self.models!r}, "
            f"count_tokens={self.count_tokens}, message_batches={self.message_batches})"
        )
