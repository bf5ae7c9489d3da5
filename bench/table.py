"""Markdown tables, as the benchmarks print them for ``docs/benchmarks.md``."""

from __future__ import annotations

from collections.abc import Iterable


def separator(header: str) -> str:
    """The line under ``header`` (a row of ``| name |`` cells)."""
    return "|" + "---|" * header.count(" | ") + "---|"


def row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"
