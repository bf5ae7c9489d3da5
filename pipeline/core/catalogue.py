"""The models the project knows: one table, read by the spec, the planner, the pricing, the
command line and the simulator.

Each row gives a model's context window, its largest ``max_tokens``, the shortest prompt
prefix it caches and its price in USD per million tokens, from Anthropic's models overview
(https://platform.claude.com/docs/en/about-claude/models/overview) and pricing page
(https://platform.claude.com/docs/en/about-claude/pricing), as read on 2026-12-03.

Two lists name the models: Anthropic's own ids (dated ids and their aliases), and the ids
MegaLLM's "Anthropic API" page lists (``claude-3.7-sonnet`` and friends; its
``claude-opus-4-1-20250805`` is Anthropic's own id). A gateway's page gives no prices of its
own, so a gateway id is priced at the list price of the Claude model it names, and says so
(``priced_as``): a gateway may charge its own, which a job sets in ``[pricing]``.

A name is looked up exactly (an id or an alias) first, then by family: a dated id, an
alias or a ``-latest`` name of a family in the table (``claude-3-7-sonnet-20250219``) finds
that family's row. A model in no row has no price and no facts: never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.core.pricing import Price

Lister = Literal["anthropic", "gateway"]
Role = Literal["fast", "balanced", "strong"]  # for suggestions: what a model is chosen for
DEFAULT_WINDOW = 200_000
DEFAULT_CACHE_MINIMUM = 1024  # Sonnet 4.x, Opus 4/4.1: and the guess for a model not listed
SOURCE = (
    "https://platform.claude.com/docs/en/about-claude/models/overview and "
    "https://platform.claude.com/docs/en/about-claude/pricing (read 2026-12-03)"
)


@dataclass(frozen=True)
class Model:
    """One model as an endpoint names it, with what the project needs to know about it."""

    id: str
    display_name: str
    created_at: str  # RFC 3339, as /v1/models gives it
    window: int  # input tokens at most
    max_output: int  # the largest max_tokens
    cache_minimum: int  # the shortest prefix cached, in tokens
    price: Price  # USD per million tokens
    listed_by: frozenset[Lister]  # whose current list names this id (empty: retired)
    aliases: tuple[str, ...] = ()
    family: str = ""  # the stem that dated ids and -latest names of it start with
    priced_as: str | None = None  # a gateway id: the Claude model whose list price it takes
    role: Role = "balanced"  # Haiku fast, Sonnet balanced, Opus strong; a gateway's own words

    @property
    def stem(self) -> str:
        return self.family or self.id


_ANTHROPIC: frozenset[Lister] = frozenset({"anthropic"})
_GATEWAY: frozenset[Lister] = frozenset({"gateway"})
_BOTH: frozenset[Lister] = frozenset({"anthropic", "gateway"})
_RETIRED: frozenset[Lister] = frozenset()

# Newest first, as /v1/models lists them. (The two 4.6 entries carry placeholder dates.)
MODELS: tuple[Model, ...] = (
    Model(
        "claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z", 200_000, 128_000, 4096,
        Price.from_list(5.0, 25.0), _ANTHROPIC, role="strong",
    ),
    Model(
        "claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-01T00:00:00Z", 200_000, 64_000, 1024,
        Price.from_list(3.0, 15.0), _ANTHROPIC,
    ),
    Model(
        "claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-01T00:00:00Z", 200_000, 64_000,
        4096, Price.from_list(5.0, 25.0), _ANTHROPIC, ("claude-opus-4-5",), "claude-opus-4-5",
        role="strong",
    ),
    Model(
        "claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z", 200_000, 64_000,
        4096, Price.from_list(1.0, 5.0), _ANTHROPIC, ("claude-haiku-4-5",), "claude-haiku-4-5",
        role="fast",
    ),
    Model(
        "claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z", 200_000,
        64_000, 1024, Price.from_list(3.0, 15.0), _ANTHROPIC, ("claude-sonnet-4-5",),
        "claude-sonnet-4-5",
    ),
    Model(
        "claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05T00:00:00Z", 200_000, 32_000,
        1024, Price.from_list(15.0, 75.0), _BOTH, ("claude-opus-4-1",), "claude-opus-4-1",
        priced_as="Claude Opus 4.1", role="strong",
    ),
    Model(
        "claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-14T00:00:00Z", 200_000, 64_000,
        1024, Price.from_list(3.0, 15.0), _ANTHROPIC, ("claude-sonnet-4-0",), "claude-sonnet-4",
    ),
    Model(
        "claude-opus-4-20250514", "Claude Opus 4", "2025-05-14T00:00:00Z", 200_000, 32_000,
        1024, Price.from_list(15.0, 75.0), _RETIRED, ("claude-opus-4-0",), "claude-opus-4",
        role="strong",
    ),
    Model(
        "claude-3-7-sonnet-20250219", "Claude Sonnet 3.7", "2025-02-19T00:00:00Z", 200_000,
        64_000, 1024, Price.from_list(3.0, 15.0), _RETIRED, ("claude-3-7-sonnet-latest",),
        "claude-3-7-sonnet",
    ),
    Model(
        "claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22T00:00:00Z", 200_000, 8_192,
        2048, Price.from_list(0.8, 4.0), _ANTHROPIC, ("claude-3-5-haiku-latest",),
        "claude-3-5-haiku", role="fast",
    ),
    Model(
        "claude-3-5-sonnet-20241022", "Claude Sonnet 3.5", "2024-10-22T00:00:00Z", 200_000,
        8_192, 1024, Price.from_list(3.0, 15.0), _RETIRED, ("claude-3-5-sonnet-latest",),
        "claude-3-5-sonnet",
    ),
    Model(
        "claude-3-haiku-20240307", "Claude Haiku 3", "2024-03-07T00:00:00Z", 200_000, 4_096,
        2048, Price(0.25, 1.25, 0.30, 0.03), _RETIRED, (), "claude-3-haiku", role="fast",
    ),
    # MegaLLM's own spellings: the list price of the Claude model each names; roles in the
    # page's words ("fast, efficient responses" for claude-3.7-sonnet).
    Model(
        "claude-sonnet-4", "Claude Sonnet 4", "2025-05-14T00:00:00Z", 200_000, 64_000, 1024,
        Price.from_list(3.0, 15.0), _GATEWAY, priced_as="Claude Sonnet 4",
    ),
    Model(
        "claude-3.7-sonnet", "Claude Sonnet 3.7", "2025-02-19T00:00:00Z", 200_000, 64_000, 1024,
        Price.from_list(3.0, 15.0), _GATEWAY, priced_as="Claude Sonnet 3.7", role="fast",
    ),
    Model(
        "claude-3.5-sonnet", "Claude Sonnet 3.5", "2024-10-22T00:00:00Z", 200_000, 8_192, 1024,
        Price.from_list(3.0, 15.0), _GATEWAY, priced_as="Claude Sonnet 3.5",
    ),
)  # fmt: skip

_EXACT: dict[str, Model] = {name: model for model in MODELS for name in (model.id, *model.aliases)}
_BY_STEM = sorted(MODELS, key=lambda model: len(model.stem), reverse=True)


def listed(by: Lister) -> tuple[Model, ...]:
    """The models ``by``'s list names, newest first."""
    ordered = sorted(
        (model for model in MODELS if by in model.listed_by),
        key=lambda model: model.created_at,
        reverse=True,
    )
    return tuple(ordered)


def find(name: str) -> Model | None:
    """The row for ``name`` (an id, an alias, a dated id or ``-latest`` of a family), or None."""
    exact = _EXACT.get(name)
    if exact is not None:
        return exact
    stem = name.removesuffix("-latest")
    for model in _BY_STEM:  # "claude-opus-4-1" before "claude-opus-4"
        if stem == model.stem or stem.startswith(model.stem + "-"):
            return model
    return None


def list_price(name: str) -> Price | None:
    """The list price of ``name``, or None when the table does not know it."""
    model = find(name)
    return None if model is None else model.price


def cache_minimum(name: str) -> int:
    """The shortest prompt prefix ``name`` caches, in tokens."""
    model = find(name)
    return DEFAULT_CACHE_MINIMUM if model is None else model.cache_minimum


def window(name: str) -> int:
    """Input tokens ``name`` takes at most (200K for a model not in the table)."""
    model = find(name)
    return DEFAULT_WINDOW if model is None else model.window


def price_basis(name: str) -> str:
    """What the default price of ``name`` is, in words for plan, report and ``models``."""
    model = find(name)
    if model is None:
        return "no known price"
    if model.priced_as is not None:
        return f"list price of {model.priced_as}: a gateway may charge its own, set [pricing]"
    return "list price"


def _normal(name: str) -> str:
    return name.lower().replace(".", "-")


def suggest(wanted: str, served: list[str]) -> str | None:
    """The served id closest to ``wanted``: the same Claude model under another spelling
    (``claude-3-7-sonnet-20250219`` -> ``claude-3.7-sonnet``), else one chosen for the same
    role (a Haiku -> the fast one), else the nearest spelling."""
    if not served:
        return None
    known = find(wanted)
    rows = {name: find(name) for name in served}
    if known is not None:
        same = [n for n, row in rows.items() if row and row.display_name == known.display_name]
        alike = [n for n, row in rows.items() if row and row.role == known.role]
        for group in (same, alike):
            if group:
                return _nearest(wanted, group)
    return _nearest(wanted, served)


def _nearest(wanted: str, names: list[str]) -> str:
    import difflib  # a near miss to suggest: only when a model is not served

    by_normal = {_normal(name): name for name in names}
    close = difflib.get_close_matches(_normal(wanted), list(by_normal), n=1, cutoff=0)
    return by_normal[close[0]] if close else names[0]
