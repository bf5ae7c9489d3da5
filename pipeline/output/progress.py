"""Progress while a run goes: a live bar on a terminal, a plain line now and then under cron.

Both read the run's ``Tally``; neither changes it. The bar is rich's; the plain line goes
through logging (``pipeline.output.progress``), so ``--log-json`` turns it into a JSON event.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from pipeline.core.limits import Sleep
from pipeline.output.report import Tally

if TYPE_CHECKING:
    from rich.console import Console

log = logging.getLogger("pipeline.progress")


class Display(Protocol):
    async def run(self, tally: Tally) -> None:
        """Show ``tally`` until cancelled."""


def counts(tally: Tally) -> dict[str, Any]:
    """What both displays show, as numbers."""
    done = tally.done + tally.reused
    total = tally.discovered if tally.discovery_done else None
    elapsed = tally.elapsed()
    rate = tally.done / elapsed if elapsed > 0 else 0.0
    remaining = None
    if total is not None and rate > 0:
        remaining = (total - done) / rate
    return {
        "done": done,
        "total": total,
        "errors": tally.documents["error"],
        "docs_per_s": round(rate, 3),
        "eta_s": None if remaining is None else round(remaining),
        "input_tokens": tally.usage.input_tokens,
        "output_tokens": tally.usage.output_tokens,
        "retries": tally.retries,
        "rate_limited_429": tally.rate_limited,
        "elapsed_s": round(elapsed),
    }


def line(tally: Tally) -> str:
    """One plain progress line."""
    c = counts(tally)
    total = f"/{c['total']:,}" if c["total"] is not None else ""
    share = f" ({c['done'] / c['total']:.0%})" if c["total"] else ""
    if c["total"] is None:
        share = " (still finding files)"
    eta = f", about {_clock(c['eta_s'])} left" if c["eta_s"] is not None else ""
    return (
        f"[{_clock(c['elapsed_s'])}] {c['done']:,}{total} documents{share}, "
        f"{c['errors']:,} errors, {c['docs_per_s'] * 60:,.1f}/min{eta}; "
        f"tokens {c['input_tokens']:,} in / {c['output_tokens']:,} out; "
        f"{c['retries']:,} retries, {c['rate_limited_429']:,} answered 429"
    )


def _clock(seconds: int) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class PlainLines:
    """Under cron: a line every ``every_s`` seconds (and none if the run is shorter)."""

    def __init__(self, every_s: float = 60.0, *, sleep: Sleep = anyio.sleep) -> None:
        self.every_s = every_s
        self._sleep = sleep

    async def run(self, tally: Tally) -> None:
        while True:
            await self._sleep(self.every_s)
            log.info(line(tally), extra={"event": "progress", **counts(tally)})


class Bar:
    """On a terminal: documents done of total, rate, time left, tokens, errors, retries."""

    def __init__(self, console: Console) -> None:
        self.console = console

    async def run(self, tally: Tally) -> None:
        from rich.progress import (  # rich's bar: only when there is a terminal to show it
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (
            TextColumn("[bold]documents"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[detail]}"),
        )
        with Progress(*columns, console=self.console, transient=True) as bar:
            task = bar.add_task("run", total=None, detail="")
            while True:
                c = counts(tally)
                detail = (
                    f"{c['input_tokens']:,}/{c['output_tokens']:,} tok  "
                    f"{c['errors']} err  {c['retries']} retries  {c['rate_limited_429']} 429"
                )
                bar.update(task, completed=c["done"], total=c["total"], detail=detail)
                await anyio.sleep(0.25)
