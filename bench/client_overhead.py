"""Client overhead: requests/s and client CPU per 1,000 requests, ours beside the official SDK.

Run:  python -m bench.client_overhead            (3 rounds x 12 rows of 2,000 requests, ~5 min)
      python -m bench.client_overhead --quick    (smoke test, ~20 s)
      python -m bench.client_overhead --profile ours-client/plain --concurrency 40
                                                 (cProfile one row: where the CPU goes)
      python -m bench.with_httpx2 bench.client_overhead   (diagnostic: ours on httpx2)

A zero-latency simulator with no limits (``pipeline simulate`` in a separate process, so
that its CPU is not the client's) answers the same request bodies for every row:

- ``ours-client``: ``pipeline.engine.client.MessagesClient.create`` under an
  ``asyncio.Semaphore(concurrency)`` and ``asyncio.gather``: the HTTP layer alone.
- ``ours-engine``: ``pipeline.engine.pool.Pool`` with ``Limits(max_concurrency=concurrency)``
  (no rate limits, so the ``Pacer`` has no buckets but still reserves, reads the rate-limit
  headers and settles each call), the default ``RetryPolicy``, results streamed to a sink:
  what a user's run does per request.
- ``sdk``: ``anthropic.AsyncAnthropic`` (its defaults: 2 retries, its own connection pool)
  under the same ``asyncio.Semaphore`` and ``asyncio.gather``.

Each is run plain (``messages.create``) and streamed (ours ``stream=True``; the SDK's
``messages.stream(...)`` and ``get_final_message()``, its documented way), at each
``--concurrency`` (default 10 and 40: the Basic and Pro tiers' concurrency). Every reply is
checked (a message with content) and the simulator's count of requests must match.

Measured per row: wall time and this process's CPU time (``getrusage``: user and kernel, all
threads) around the timed requests only (the client is made, its connections opened and its
lazy set-up done by ``--warmup`` untimed requests first, then ``gc.collect()``), and the
simulator's CPU over the same stretch (``/proc/<pid>/stat``: Linux only). The rows run in a
rotated order, ``--rounds`` times; the table gives medians, and the ours/SDK ratios are taken
within each round (same mode and concurrency): median (min-max).

Reading req/s: the client and the simulator share the machine's cores. The "busy" columns
say how much of one core each used over the timed stretch; a side near 1.0 is the bottleneck,
and req/s is then that side's limit. CPU per request is the steadier figure on a noisy machine.
Plain HTTP over loopback: against the real API, TLS adds its own cost to every client alike.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import platform
import pstats
import resource
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx

from bench import table
from bench.proc import cpu_seconds
from bench.rate_use import SIMULATE, SimulatorProcess, build_workload
from pipeline.config.endpoint import ApiKey, Endpoint
from pipeline.core.limits import Limits
from pipeline.core.models import Call, CallResult
from pipeline.engine.base import run_calls
from pipeline.engine.client import MessagesClient
from pipeline.engine.pool import Pool
from pipeline.engine.retry import RetryPolicy
from pipeline.simulator import DEFAULT_API_KEY

# The SDK warns (DeprecationWarning) on each call to some older model names, not this one:
# no row pays for a warning.
MODEL = "claude-haiku-4-5"
SIZES = (200, 2_000)  # input tokens per request, log-uniform: bodies of about 0.7-7 KB
REPLY_TOKENS = (100, 300)  # the simulator's reply length (streamed: ~20-50 text deltas)
MAX_TOKENS = (300, 1_000)
CLIENTS = ("ours-client", "ours-engine", "sdk")
MODES = ("plain", "stream")


def transport_name() -> str:
    """Which HTTP library ``import httpx`` gave this process (see ``bench.with_httpx2``)."""
    return "httpx2" if httpx.__name__ == "httpx2" else f"httpx {httpx.__version__}"


# --- the workload -------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    body: dict[str, Any]
    estimate: int  # what the engine reserves: ceil(chars / 3) + 16, as in bench.rate_use


def workload(count: int, seed: int) -> list[Item]:
    """``count`` request bodies, deterministic by ``seed`` (bench.rate_use's generator)."""
    docs = build_workload(count, SIZES, REPLY_TOKENS, MAX_TOKENS, seed)
    return [Item({**doc.params, "model": MODEL}, doc.estimate) for doc in docs]


# --- measuring ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    wall_s: float
    user_s: float  # this process, in Python and C code
    sys_s: float  # this process, in the kernel: loopback TCP sends and receives, mostly
    sim_cpu_s: float

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


class Meter:
    """Wall time, this process's CPU time and the simulator process's, read together."""

    def __init__(self, sim_pid: int) -> None:
        self._sim_pid = sim_pid
        self._start = (0.0, 0.0, 0.0, 0.0)

    def _read(self) -> tuple[float, float, float, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads
        return time.monotonic(), usage.ru_utime, usage.ru_stime, cpu_seconds(self._sim_pid)

    def start(self) -> None:
        gc.collect()
        self._start = self._read()

    def stop(self) -> Timed:
        now = self._read()
        return Timed(*(b - a for a, b in zip(self._start, now, strict=True)))


# --- the clients --------------------------------------------------------------------------

Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _gather(send: Send, items: Sequence[Item], concurrency: int) -> None:
    """The usual script: a semaphore and ``asyncio.gather`` over every request."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(item: Item) -> None:
        async with semaphore:
            await send(item.body)

    await asyncio.gather(*(one(item) for item in items))


async def _warm_then_time(
    send: Send, warm: Sequence[Item], items: Sequence[Item], concurrency: int, meter: Meter
) -> Timed:
    """Send the warm-up requests, then time ``items`` with ``meter``."""
    await _gather(send, warm, concurrency)
    meter.start()
    await _gather(send, items, concurrency)
    return meter.stop()


def _check(ok: bool) -> None:
    if not ok:
        raise RuntimeError("a call failed or its reply had no content: the measurement is void")


async def run_ours_client(
    url: str,
    warm: Sequence[Item],
    items: Sequence[Item],
    concurrency: int,
    stream: bool,
    meter: Meter,
) -> Timed:
    endpoint = Endpoint(url, ApiKey(DEFAULT_API_KEY), key_source="bench")
    async with MessagesClient(endpoint, concurrency=concurrency) as client:

        async def send(body: dict[str, Any]) -> None:
            reply = await client.create(body, stream=stream)
            _check(bool(reply.content))

        return await _warm_then_time(send, warm, items, concurrency, meter)


async def run_ours_engine(
    url: str,
    warm: Sequence[Item],
    items: Sequence[Item],
    concurrency: int,
    stream: bool,
    meter: Meter,
) -> Timed:
    endpoint = Endpoint(url, ApiKey(DEFAULT_API_KEY), key_source="bench")
    limits = Limits(max_concurrency=concurrency)
    failed = 0

    async def sink(result: CallResult) -> None:
        nonlocal failed
        failed += 0 if result.reply is not None and result.reply.content else 1

    def calls(batch: Sequence[Item]) -> list[Call]:
        return [Call(f"r{i}", item.body, item.estimate) for i, item in enumerate(batch)]

    async with MessagesClient(endpoint, concurrency=concurrency) as client:
        # An engine per run, as a job makes one; check=False: no GET /v1/models preflight.
        warm_engine = Pool(client, limits, retry=RetryPolicy(), stream=stream, check=False)
        await run_calls(warm_engine, calls(warm), sink)
        engine = Pool(client, limits, retry=RetryPolicy(), stream=stream, check=False)
        work = calls(items)
        meter.start()
        await run_calls(engine, work, sink)
        timed = meter.stop()
    _check(failed == 0 and engine.totals().attempts == len(items))
    return timed


async def run_sdk(
    url: str,
    warm: Sequence[Item],
    items: Sequence[Item],
    concurrency: int,
    stream: bool,
    meter: Meter,
) -> Timed:
    client = anthropic.AsyncAnthropic(base_url=url, api_key=DEFAULT_API_KEY)

    async def send(body: dict[str, Any]) -> None:
        if stream:
            async with client.messages.stream(**body) as events:
                message = await events.get_final_message()
        else:
            message = await client.messages.create(**body)
        _check(bool(message.content))

    try:
        return await _warm_then_time(send, warm, items, concurrency, meter)
    finally:
        await client.close()


RUNNERS = {"ours-client": run_ours_client, "ours-engine": run_ours_engine, "sdk": run_sdk}


# --- rows ---------------------------------------------------------------------------------


@dataclass
class Row:
    client: str
    mode: str
    concurrency: int
    runs: list[Timed] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.client}/{self.mode} c{self.concurrency}"

    def median(self, value: Callable[[Timed], float]) -> float:
        return statistics.median(value(t) for t in self.runs)


def measure(
    sim: SimulatorProcess, meter: Meter, row: Row, warm: Sequence[Item], items: Sequence[Item]
) -> Timed:
    sim.reset()
    runner = RUNNERS[row.client]
    stream = row.mode == "stream"
    timed = asyncio.run(runner(sim.url, warm, items, row.concurrency, stream, meter))
    served = int(sim.stats()["by_endpoint"].get("messages", 0))
    if served != len(warm) + len(items):
        raise RuntimeError(
            f"{row.key}: the simulator served {served}, not {len(warm) + len(items)}"
        )
    return timed


def _ratio(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


HEADER = (
    "| client | mode | conc | req/s | client CPU s / 1,000 req | of which kernel | CPU ours/SDK "
    "| req/s ours/SDK | client busy (cores) | simulator CPU s / 1,000 req "
    "| simulator busy (cores) |"
)


def format_table(rows: Sequence[Row], n: int) -> str:
    lines = [HEADER, table.separator(HEADER)]
    sdk = {(r.mode, r.concurrency): r for r in rows if r.client == "sdk"}
    for row in rows:
        base = sdk.get((row.mode, row.concurrency))
        if row.client == "sdk":
            cpu_ratio = rate_ratio = "1"
        elif base is None:
            cpu_ratio = rate_ratio = "-"
        else:
            pairs = list(zip(row.runs, base.runs, strict=True))
            cpu_ratio = _ratio([ours.cpu_s / theirs.cpu_s for ours, theirs in pairs])
            rate_ratio = _ratio([theirs.wall_s / ours.wall_s for ours, theirs in pairs])
        cells = [
            row.client,
            row.mode,
            str(row.concurrency),
            f"{row.median(lambda t: n / t.wall_s):,.0f}",
            f"{row.median(lambda t: t.cpu_s / n * 1000):.2f}",
            f"{row.median(lambda t: t.sys_s / n * 1000):.2f}",
            cpu_ratio,
            rate_ratio,
            f"{row.median(lambda t: t.cpu_s / t.wall_s):.2f}",
            f"{row.median(lambda t: t.sim_cpu_s / n * 1000):.2f}",
            f"{row.median(lambda t: t.sim_cpu_s / t.wall_s):.2f}",
        ]
        lines.append(table.row(cells))
    return "\n".join(lines)


# --- profiling ----------------------------------------------------------------------------


def _where(filename: str) -> str:
    """Where a profiled function lives: an installed package, ours, the stdlib, or C."""
    if filename == "~":
        return "C functions (socket send, json, select, ...)"
    parts = filename.replace("\\", "/").split("/")
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    if "pipeline" in parts:
        return "pipeline (ours)"
    if "bench" in parts:
        return "bench (the harness)"
    parent, stem = (parts[-2] if len(parts) > 1 else ""), parts[-1].removesuffix(".py")
    return f"stdlib {parent if parent in ('asyncio', 'json') else stem}"


def profile_row(
    sim: SimulatorProcess,
    meter: Meter,
    row: Row,
    warm: Sequence[Item],
    items: Sequence[Item],
    top: int,
) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    timed = measure(sim, meter, row, warm, items)
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    own: dict[str, float] = defaultdict(float)
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in entries.items():
        own[_where(filename)] += tottime
    total = sum(own.values())
    on = "httpx2 (the SDK's)" if row.client == "sdk" else transport_name()
    lines = [
        f"Profile of {row.key} on {on}: {len(items):,} timed requests after "
        f"{len(warm)} warm-up ones, profiled together; the timed part took {timed.cpu_s:.2f} s "
        "CPU under cProfile, which inflates small functions: read shares, not times.",
        "",
        "| where (own time) | s | share |",
        "|---|---|---|",
    ]
    for name, seconds in sorted(own.items(), key=lambda kv: -kv[1])[:12]:
        lines.append(f"| {name} | {seconds:.2f} | {seconds / total:.0%} |")
    stats.sort_stats("tottime").print_stats(top)
    return "\n".join(lines) + "\n" + text.getvalue()


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.client_overhead",
        description="Client CPU and requests/s, ours beside the anthropic SDK, zero latency.",
    )
    parser.add_argument("--requests", type=int, help="timed requests per row (2000; 300 --quick)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests first (100)")
    parser.add_argument("--rounds", type=int, help="rounds over all rows (3; 1 with --quick)")
    parser.add_argument(
        "--concurrency", default="10,40", help="requests in flight, comma-separated (10,40)"
    )
    parser.add_argument(
        "--rows",
        default=",".join(f"{c}/{m}" for c in CLIENTS for m in MODES),
        help="CLIENT/MODE, comma-separated (default: all: clients "
        f"{', '.join(CLIENTS)}; modes {', '.join(MODES)})",
    )
    parser.add_argument("--quick", action="store_true", help="small runs for a smoke test")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the request bodies")
    parser.add_argument(
        "--profile", metavar="CLIENT/MODE", help="cProfile one row (first --concurrency), stop"
    )
    parser.add_argument("--top", type=int, default=25, help="functions --profile lists (25)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    n = args.requests or (300 if args.quick else 2_000)
    rounds = args.rounds or (1 if args.quick else 3)
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    keys = [args.profile] if args.profile else [k.strip() for k in args.rows.split(",")]
    rows: list[Row] = []
    for level in levels[:1] if args.profile else levels:
        for key in keys:
            client, _, mode = key.partition("/")
            if client not in CLIENTS or mode not in MODES:
                print(f"unknown row {key!r}: CLIENT/MODE, e.g. ours-engine/plain", file=sys.stderr)
                return 2
            rows.append(Row(client, mode, level))
    items = workload(args.warmup + n, args.seed)
    warm, timed = items[: args.warmup], items[args.warmup :]
    options = ["--latency=0", f"--reply-tokens={REPLY_TOKENS[0]},{REPLY_TOKENS[1]}"]
    started = time.monotonic()
    with SimulatorProcess(SIMULATE, options) as sim:
        meter = Meter(sim.pid)
        if args.profile:
            print(profile_row(sim, meter, rows[0], warm, timed, args.top))
            return 0
        for round_number in range(rounds):
            shift = round_number * len(rows) // rounds
            for row in rows[shift:] + rows[:shift]:
                run = measure(sim, meter, row, warm, timed)
                row.runs.append(run)
                print(
                    f"# round {round_number + 1}: {row.key:22} {n / run.wall_s:6,.0f} req/s, "
                    f"CPU s per 1,000: client {run.cpu_s / n * 1000:.2f}, simulator "
                    f"{run.sim_cpu_s / n * 1000:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
    elapsed = time.monotonic() - started
    print(format_table(rows, n))
    print()
    print(
        f"- {n:,} timed requests per row after {args.warmup} warm-up ones; {rounds} round(s) "
        "in rotated order; medians, and ours/SDK ratios per round as median (min-max). "
        f"Bodies of {SIZES[0]:,}-{SIZES[1]:,} input tokens, replies of {REPLY_TOKENS[0]}-"
        f"{REPLY_TOKENS[1]} tokens, {MODEL}. Simulator: `pipeline simulate --latency=0`, no "
        "limits, its own process."
    )
    print(
        f"- Ours on {transport_name()}; anthropic {anthropic.__version__} (on httpx2). "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs. Total time {elapsed:.0f} s."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
