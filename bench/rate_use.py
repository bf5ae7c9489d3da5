"""Rate use: how close a run comes to the tier's limits, our engine beside "the usual script".

Run:  python -m bench.rate_use            (scenarios 1-4 x 2 clients, about 8 minutes)
      python -m bench.rate_use --quick    (smoke test, about 30 seconds)
      python -m bench.rate_use --help     (documents, scenarios, clients, diagnostics)

Each scenario runs once per client against a fresh simulator in a separate process
(``pipeline simulate`` on a free port, with the same limits the client is given):

- OURS: ``pipeline.engine.pool.Pool`` with the tier's ``Limits``, the default ``RetryPolicy``, not
  streamed. Each call carries a conservative estimate of its input tokens,
  ``ceil(len(text) / 3) + 16`` (about 16% over the simulator's count), never the exact count.
- BASELINE: the script most users write: ``anthropic.AsyncAnthropic`` with its default two
  retries, an ``asyncio.Semaphore(tier concurrency)`` and ``asyncio.gather`` over every
  document. A document whose call still raises is lost; the script is then run again over the
  lost ones (same simulator, right away) until none are lost or 10 passes have run: "complete"
  is the sum of the passes' wall times.

The bound. For N documents whose requests the server charges T tokens in all (input + output,
computed exactly from the simulator's rules, and checked against its stats) and whose replies
take L seconds on average (the latency model: fixed + per output token), a client that starts
with empty buckets cannot finish faster than the steady-rate bound, in seconds:

    bound = max(60 * N / rpm, 60 * T / tpm, N * L / concurrency)

"binds" names the largest term. But buckets start full. A server that enforces per minute
holds a whole minute's worth and reports the spare room in its ``anthropic-ratelimit-*-
remaining`` headers, so a client that uses that room (ours does on purpose; a naive burst
does too, by luck) can beat the steady-rate bound; then the floor is the burst bound

    burst bound = max(60 * (N - rpm) / rpm, 60 * (T - tpm) / tpm, N * L / concurrency)

and wall/bound can be below 1. With ``--per-second`` the buckets hold a second's worth and the
two bounds differ by about a second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import anthropic
import httpx

from bench import table
from pipeline.config.endpoint import ApiKey, Endpoint
from pipeline.core.limits import Limits
from pipeline.core.models import Call, CallResult
from pipeline.engine.base import run_calls
from pipeline.engine.client import MessagesClient
from pipeline.engine.pacer import Pacer, Reservation
from pipeline.engine.pool import Pool
from pipeline.engine.retry import RetryPolicy
from pipeline.simulator import DEFAULT_API_KEY, count_request, request_digest
from pipeline.simulator.replies import make_reply
from pipeline.simulator.validation import validate_messages

MODEL = "claude-sonnet-4-5"
SYSTEM = "You are a careful analyst. Summarize the document for a busy reader."
INSTRUCTION = "Summarize the following document: key points, figures and open questions."
ESTIMATE_OVERHEAD = 16  # message, block and system-prompt overheads, rounded up
STEADY_STATE_S = 5.0  # 429s after this many seconds count as steady-state refusals
MAX_PASSES = 10

_VOCABULARY = (
    "the of and to in a is that for it as was with be by on not this are or from at which but "
    "have an they you were there been one all we their has would when if so no will more about "
    "can said them what out who some its into only time two may then do first any now such like "
    "our over even most made after also did many before must through back years where much way "
    "well down should because each just those people how too little state good very make world "
    "still own see work long get here between both life being under never day same another know "
    "while last might great old year off come since against go came right used take three "
    "himself few house use during without again place around however home small found thought "
    "went say part once general high upon school every does got left number course until always "
    "away something fact though water less public put think almost hand enough far took head "
    "government system better set told nothing night end why called find going look asked later "
    "knew point next program city business give group toward young days let room president side "
    "social given present several order national possible rather second face per among form "
    "important often things looked early white case become large need big four within felt along "
    "children saw best ever least power development light thing seemed family interest want "
    "members mind country area others done turned although open service problem certain kind "
    "different thus began door help sense means whole matter perhaps itself times law human line "
    "above name example action company hands local show whether five history gave today either "
    "act feet across taken past quite anything having seen death experience body word half really "
    "week free field revenue quarter contract supplier schedule budget forecast analysis risk"
)
_WORDS = tuple(_VOCABULARY.split())


# --- the workload -------------------------------------------------------------------------


@dataclass(frozen=True)
class Doc:
    key: str
    params: dict[str, Any]
    estimate: int  # what our engine is told: conservative, not exact
    input_tokens: int  # what the simulator charges (count_request)
    output_tokens: int  # the reply's length under the simulator's rules


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 24))]
    for i in range(len(words)):
        roll = rng.random()
        if roll < 0.04:
            words[i] = str(rng.randint(1, 99_999))
        elif roll < 0.06:
            words[i] = f"{rng.randint(1, 99)}.{rng.randint(0, 9)}%"
        elif roll < 0.10:
            words[i] += ","
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice(".....?;:")


def document_text(rng: random.Random, tokens: int) -> str:
    """English-like prose of about ``tokens`` tokens (~3.5 characters a token)."""
    paragraphs: list[str] = []
    chars = 0
    while chars < tokens * 3.5:
        paragraph = " ".join(_sentence(rng) for _ in range(rng.randint(2, 7)))
        paragraphs.append(paragraph)
        chars += len(paragraph) + 2
    return "\n\n".join(paragraphs)


def build_workload(
    count: int,
    sizes: tuple[int, int],
    reply_tokens: tuple[int, int],
    max_tokens: tuple[int, int],
    seed: int,
) -> list[Doc]:
    """``count`` documents of log-uniform size in ``sizes`` tokens, deterministic by ``seed``."""
    rng = random.Random(seed)
    low, high = sizes
    docs: list[Doc] = []
    for n in range(count):
        target = round(math.exp(rng.uniform(math.log(low), math.log(high))))
        text = document_text(rng, target)
        content = f"{INSTRUCTION}\n\n<document id='doc-{n:05d}'>\n{text}\n</document>"
        params: dict[str, Any] = {
            "model": MODEL,
            "max_tokens": rng.randint(*max_tokens),
            "system": SYSTEM,
            "messages": [{"role": "user", "content": content}],
        }
        request = validate_messages(params)
        reply = make_reply(request, request_digest(params), reply_tokens)
        docs.append(
            Doc(
                key=f"doc-{n:05d}",
                params=params,
                estimate=math.ceil((len(SYSTEM) + len(content)) / 3) + ESTIMATE_OVERHEAD,
                input_tokens=count_request(params),
                output_tokens=reply.output_tokens,
            )
        )
    return docs


# --- scenarios and bounds -----------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    key: str
    name: str
    documents: int
    rpm: int
    tpm: int
    concurrency: int
    per_second: bool = False
    overloaded: float = 0.0
    seed: int = 0
    sizes: tuple[int, int] = (200, 6_000)

    @property
    def limits(self) -> Limits:
        return Limits(
            requests_per_minute=self.rpm,
            tokens_per_minute=self.tpm,
            max_concurrency=self.concurrency,
            per_second=self.per_second,
        )


@dataclass(frozen=True)
class Timing:
    latency: float
    latency_per_token: float
    reply_tokens: tuple[int, int]
    max_tokens: tuple[int, int]
    exact_remaining: bool = False  # diagnostics: remaining headers not rounded to thousands
    exact_estimates: bool = False  # diagnostics: tell our engine the exact input tokens
    no_server_feedback: bool = False  # diagnostics: our pacer ignores the rate-limit headers


def scenarios(documents: int, tight_documents: int) -> list[Scenario]:
    pro = Scenario("1", "pro x10, per minute", documents, 2_000, 4_000_000, 40)
    return [
        pro,
        replace(pro, key="2", name="pro x10, per second", per_second=True),
        replace(pro, key="3", name="pro x10, 5% overloaded", overloaded=0.05, seed=1),
        Scenario(
            "4",
            "basic x10, per second",
            tight_documents,
            rpm=500,
            tpm=1_000_000,
            concurrency=10,
            per_second=True,
            sizes=(1_000, 8_000),
        ),
        # Not run by default: documents twice as large, so that the first minute's bucket runs
        # dry and a per-minute run has to follow the server's refill.
        replace(pro, key="5", name="pro x10, per minute, 2x larger docs", sizes=(400, 12_000)),
    ]


DEFAULT_SCENARIOS = "1,2,3,4"


@dataclass(frozen=True)
class Bound:
    steady_s: float
    burst_s: float
    binds: str
    total_tokens: int
    mean_latency_s: float


def bound(scenario: Scenario, docs: Sequence[Doc], timing: Timing) -> Bound:
    n = len(docs)
    tokens = sum(d.input_tokens + d.output_tokens for d in docs)
    mean_output = sum(d.output_tokens for d in docs) / max(1, n)
    latency = timing.latency + timing.latency_per_token * mean_output
    terms = {
        "rpm": n / scenario.rpm * 60,
        "tpm": tokens / scenario.tpm * 60,
        "concurrency": n * latency / scenario.concurrency,
    }
    binds = max(terms, key=lambda k: terms[k])
    # With full buckets at the start: a minute's worth, or a second's with --per-second.
    held = 1 / 60 if scenario.per_second else 1.0
    burst = max(
        terms["concurrency"],
        (n - scenario.rpm * held) / scenario.rpm * 60,
        (tokens - scenario.tpm * held) / scenario.tpm * 60,
    )
    return Bound(terms[binds], max(0.0, burst), binds, tokens, latency)


# --- the simulator in its own process -----------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# `pipeline simulate`, from the same environment as this script, serving Anthropic's ids (the
# benchmarks' MODEL) beside the gateway's.
SIMULATE = [sys.executable, "-m", "pipeline", "simulate", "--models", "both"]


class SimulatorStartError(RuntimeError):
    pass


class SimulatorProcess:
    """``pipeline simulate`` on a free port; stopped (its own pid only) on exit."""

    def __init__(self, launcher: list[str], options: list[str], *, attempts: int = 150) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._command = [*launcher, "--port", str(self.port), "--log-level", "warning", *options]
        self._attempts = attempts
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SimulatorProcess:
        self._log = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            self._command, stdout=subprocess.DEVNULL, stderr=self._log, stdin=subprocess.DEVNULL
        )
        for _ in range(self._attempts):
            if self._process.poll() is not None:
                raise SimulatorStartError(
                    f"{' '.join(self._command[:2])} exited with {self._process.returncode}:\n"
                    + self._tail()
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.__exit__(None, None, None)
        raise SimulatorStartError(f"the simulator did not listen on {self.url} in time")

    def _tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2_000:]

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the simulator is not running")
        return self._process.pid

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{self.url}/_simulator/stats", timeout=30).json()
        return data

    def reset(self) -> None:
        httpx.post(f"{self.url}/_simulator/reset", timeout=30).raise_for_status()


def simulator_options(scenario: Scenario, timing: Timing) -> list[str]:
    options = [
        f"--rpm={scenario.rpm}",
        f"--tpm={scenario.tpm}",
        f"--max-concurrency={scenario.concurrency}",
        f"--latency={timing.latency}",
        f"--latency-per-token={timing.latency_per_token}",
        f"--reply-tokens={timing.reply_tokens[0]},{timing.reply_tokens[1]}",
    ]
    if scenario.per_second:
        options.append("--per-second")
    if timing.exact_remaining:
        options.append("--exact-remaining")
    if scenario.overloaded:
        options += [f"--overloaded={scenario.overloaded}", f"--seed={scenario.seed}"]
    return options


# --- the two clients ----------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    client: str
    documents: int
    wall_s: float
    bound: Bound
    refused: int  # 429s in the (first) pass
    refused_late: int  # of those, after the first 5 s
    refused_by_limit: dict[str, int]
    attempts: int
    lost: int
    peak_rpm: float
    peak_rps: float
    peak_tpm: float
    peak_concurrency: int
    charged_tokens: int
    complete_s: float | None = None
    passes: int = 1
    refused_total: int = 0
    attempts_total: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    detail: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.wall_s / self.bound.steady_s if self.bound.steady_s else math.nan


class DeafPacer(Pacer):
    """Diagnostics only: a pacer that ignores the server's ``anthropic-ratelimit-*``."""

    def observe(self, headers: Mapping[str, str], reservation: Reservation) -> None:
        return None


async def run_ours(
    url: str,
    limits: Limits,
    docs: Sequence[Doc],
    *,
    exact: bool = False,
    deaf: bool = False,
) -> tuple[float, Pool, int]:
    endpoint = Endpoint(url, ApiKey(DEFAULT_API_KEY), key_source="bench")
    failed = 0

    async def sink(result: CallResult) -> None:
        nonlocal failed
        failed += 0 if result.ok else 1

    calls = [
        Call(d.key, d.params, input_tokens=d.input_tokens if exact else d.estimate) for d in docs
    ]
    async with MessagesClient(endpoint, concurrency=limits.max_concurrency or 8) as client:
        engine = Pool(client, limits, retry=RetryPolicy())
        if deaf:
            engine.pacer = DeafPacer(limits)
        started = time.monotonic()
        await run_calls(engine, calls, sink)
        wall = time.monotonic() - started
    return wall, engine, failed


async def run_baseline_pass(
    url: str, concurrency: int, docs: Sequence[Doc]
) -> tuple[float, list[Doc], Counter[str]]:
    """One run of the usual script; returns its wall time, the lost documents and why."""
    client = anthropic.AsyncAnthropic(base_url=url, api_key=DEFAULT_API_KEY)
    semaphore = asyncio.Semaphore(concurrency)
    lost: list[Doc] = []
    why: Counter[str] = Counter()

    async def one(doc: Doc) -> None:
        async with semaphore:
            try:
                await client.messages.create(**doc.params)
            except anthropic.APIError as exc:
                lost.append(doc)
                status = getattr(exc, "status_code", None)
                why[f"{type(exc).__name__}{f' {status}' if status else ''}"] += 1

    started = time.monotonic()
    try:
        await asyncio.gather(*(one(doc) for doc in docs))
    finally:
        await client.close()
    return time.monotonic() - started, lost, why


def _refusals(stats: dict[str, Any]) -> tuple[int, int, dict[str, int]]:
    by_limit: dict[str, int] = stats.get("rate_limited", {})
    late = sum(1 for t in stats.get("rate_limited_at", []) if t > STEADY_STATE_S)
    return sum(by_limit.values()), late, dict(by_limit)


def _row(
    scenario: Scenario,
    client: str,
    docs: Sequence[Doc],
    the_bound: Bound,
    wall: float,
    stats: dict[str, Any],
    lost: int,
) -> Row:
    refused, late, by_limit = _refusals(stats)
    peaks = stats["peaks"]
    return Row(
        scenario=f"{scenario.key}. {scenario.name}",
        client=client,
        documents=len(docs),
        wall_s=wall,
        bound=the_bound,
        refused=refused,
        refused_late=late,
        refused_by_limit=by_limit,
        attempts=int(stats["by_endpoint"].get("messages", 0)),
        lost=lost,
        peak_rpm=float(peaks["requests_per_minute"]),
        peak_rps=float(peaks["requests_per_second"]),
        peak_tpm=float(peaks["tokens_per_minute"]),
        peak_concurrency=int(peaks["concurrency"]),
        charged_tokens=int(stats["tokens"]["input"] + stats["tokens"]["output"]),
    )


def measure_ours(scenario: Scenario, timing: Timing, docs: Sequence[Doc], the_bound: Bound) -> Row:
    with SimulatorProcess(SIMULATE, simulator_options(scenario, timing)) as sim:
        sim.reset()  # stats' clock starts now, with full buckets
        wall, engine, failed = asyncio.run(
            run_ours(
                sim.url,
                scenario.limits,
                docs,
                exact=timing.exact_estimates,
                deaf=timing.no_server_feedback,
            )
        )
        stats = sim.stats()
    row = _row(scenario, "ours", docs, the_bound, wall, stats, failed)
    row.complete_s = wall if failed == 0 else None
    row.refused_total, row.attempts_total = row.refused, row.attempts
    row.errors = dict(engine.errors)
    row.detail = [
        f"pacer cooldowns {engine.pacer.cooldowns}",
        f"pacer waited {engine.pacer.waited:.1f} s in all",
    ]
    return row


def measure_baseline(
    scenario: Scenario,
    timing: Timing,
    docs: Sequence[Doc],
    the_bound: Bound,
    max_passes: int,
) -> Row:
    with SimulatorProcess(SIMULATE, simulator_options(scenario, timing)) as sim:
        sim.reset()
        wall, lost, why = asyncio.run(run_baseline_pass(sim.url, scenario.concurrency, docs))
        first = sim.stats()
        total_wall, passes, remaining = wall, 1, lost
        walls, lost_per_pass = [wall], [len(lost)]
        while remaining and passes < max_passes:
            more, remaining, again = asyncio.run(
                run_baseline_pass(sim.url, scenario.concurrency, remaining)
            )
            total_wall += more
            passes += 1
            why += again
            walls.append(more)
            lost_per_pass.append(len(remaining))
        final = sim.stats()
    row = _row(scenario, "baseline", docs, the_bound, wall, first, len(lost))
    row.complete_s = total_wall if not remaining else None
    row.passes = passes
    row.refused_total = _refusals(final)[0]
    row.attempts_total = int(final["by_endpoint"].get("messages", 0))
    row.errors = dict(why)
    row.detail = [
        "lost per pass " + ", ".join(str(n) for n in lost_per_pass),
        "pass wall s " + ", ".join(f"{w:.1f}" for w in walls),
    ]
    return row


# --- the report ---------------------------------------------------------------------------

HEADER = (
    "| scenario | client | docs | wall s | bound s (binds) | wall/bound | burst bound s "
    "| wall/burst | 429s | 429s >5 s | attempts (retries) | lost/failed | peak req/min "
    "| peak req/s | peak tok/min | peak conc | complete s (/bound; passes; 429s) |"
)


def _k(value: float) -> str:
    return f"{value / 1000:,.0f}k" if value >= 10_000 else f"{value:,.0f}"


def format_row(row: Row) -> str:
    b = row.bound
    tail = f"{row.passes}; {row.refused_total:,}"
    if row.complete_s is None:
        complete = f"incomplete ({tail})"
    else:
        complete = f"{row.complete_s:.1f} ({row.complete_s / b.steady_s:.3f}; {tail})"
    cells = [
        row.scenario,
        row.client,
        f"{row.documents:,}",
        f"{row.wall_s:.1f}",
        f"{b.steady_s:.1f} ({b.binds})",
        f"{row.ratio:.3f}",
        f"{b.burst_s:.1f}",
        f"{row.wall_s / b.burst_s:.3f}" if b.burst_s else "-",
        f"{row.refused:,}",
        f"{row.refused_late:,}",
        f"{row.attempts:,} ({row.attempts - row.documents:,})",
        f"{row.lost:,}",
        _k(row.peak_rpm),
        _k(row.peak_rps),
        _k(row.peak_tpm),
        str(row.peak_concurrency),
        complete,
    ]
    return table.row(cells)


def format_table(rows: Sequence[Row]) -> str:
    separator = table.separator(HEADER)
    return "\n".join([HEADER, separator, *(format_row(r) for r in rows)])


def format_notes(rows: Sequence[Row], scenario_list: Sequence[Scenario], timing: Timing) -> str:
    notes = [
        f"- Latency model: {timing.latency} s + {timing.latency_per_token} s per output token; "
        f"replies {timing.reply_tokens[0]}-{timing.reply_tokens[1]} tokens, cut by max_tokens "
        f"{timing.max_tokens[0]}-{timing.max_tokens[1]}. OURS: default RetryPolicy (nothing "
        "shortened), not streamed, estimate ceil(chars/3)+16 per call. BASELINE: anthropic "
        f"{anthropic.__version__} AsyncAnthropic, max_retries=2, Semaphore(concurrency), "
        "asyncio.gather; re-run over lost documents until none or "
        f"{MAX_PASSES} passes.",
        "- Columns: 429s, attempts and peaks are the simulator's stats for the client's (first) "
        'pass; "complete" sums the passes\' wall time until no document is lost, with the 429s '
        "of all passes. Bounds as in the module docstring; wall/bound uses the steady bound.",
        "- Simulator: `pipeline simulate`, a fresh process per row.",
    ]
    flags = [
        name
        for name, on in (
            ("--exact-remaining", timing.exact_remaining),
            ("--exact-estimates", timing.exact_estimates),
            ("--no-server-feedback", timing.no_server_feedback),
        )
        if on
    ]
    if flags:
        notes.append(f"- DIAGNOSTIC RUN ({' '.join(flags)}): not the configuration users get.")
    for scenario in scenario_list:
        mine = [r for r in rows if r.scenario.startswith(f"{scenario.key}.")]
        if not mine:
            continue
        b = mine[0].bound
        parts = [
            f"- {scenario.key}: {scenario.documents:,} docs of {scenario.sizes[0]:,}-"
            f"{scenario.sizes[1]:,} tokens; limits {scenario.rpm:,} req/min, {scenario.tpm:,} "
            f"tok/min, {scenario.concurrency} concurrent, "
            f"{'per second' if scenario.per_second else 'per minute'}"
            + (
                f", overloaded {scenario.overloaded:.0%} (seed {scenario.seed})"
                if scenario.overloaded
                else ""
            )
            + f"; {b.total_tokens:,} tokens, mean latency {b.mean_latency_s:.2f} s."
        ]
        for row in mine:
            detail = ", ".join(f"{k} {v}" for k, v in sorted(row.refused_by_limit.items()))
            errors = ", ".join(f"{k} {v}" for k, v in sorted(row.errors.items()))
            charged = (
                ""
                if row.lost or row.charged_tokens == b.total_tokens
                else f"; charged {row.charged_tokens:,} tokens"
            )
            what = "errors seen" if row.client == "ours" else "errors that lost a document"
            parts.append(
                f"  {row.client}: 429s by limit [{detail or 'none'}]; {what} "
                f"[{errors or 'none'}]; {'; '.join(row.detail)}{charged}."
            )
        notes.append("\n".join(parts))
    return "\n".join(notes)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rate_use",
        description="Rate use of our engine and of the usual SDK script against the simulator.",
    )
    parser.add_argument(
        "--documents",
        type=int,
        help="documents in scenarios 1-3 and 5 (default 2000; 60 with --quick)",
    )
    parser.add_argument(
        "--tight-documents", type=int, help="documents in scenario 4 (default 250; 10 with --quick)"
    )
    parser.add_argument(
        "--scenarios",
        default=DEFAULT_SCENARIOS,
        help=f"which scenarios, by number: 1-5 (default: {DEFAULT_SCENARIOS})",
    )
    parser.add_argument(
        "--clients", default="ours,baseline", help="ours, baseline or both (default: both)"
    )
    parser.add_argument("--quick", action="store_true", help="small runs for a smoke test")
    parser.add_argument(
        "--latency", type=float, default=0.3, help="simulator: fixed seconds per reply (0.3)"
    )
    parser.add_argument(
        "--latency-per-token",
        type=float,
        default=0.0015,
        help="simulator: seconds per output token (0.0015)",
    )
    parser.add_argument("--seed", type=int, default=2026, help="seed of the documents")
    parser.add_argument(
        "--max-passes",
        type=int,
        default=MAX_PASSES,
        help=f"baseline: passes over the lost documents at most ({MAX_PASSES})",
    )
    parser.add_argument(
        "--exact-remaining",
        action="store_true",
        help="diagnostics: the simulator reports exact (not rounded) token 'remaining' headers",
    )
    parser.add_argument(
        "--exact-estimates",
        action="store_true",
        help="diagnostics: give our engine the exact input tokens instead of the estimate",
    )
    parser.add_argument(
        "--no-server-feedback",
        action="store_true",
        help="diagnostics: our pacer ignores the anthropic-ratelimit-* headers (Pacer.observe)",
    )
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--plan", action="store_true", help="print workloads and bounds only")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    documents = args.documents or (60 if args.quick else 2_000)
    tight = args.tight_documents or (10 if args.quick else 250)
    timing = Timing(
        args.latency,
        args.latency_per_token,
        (100, 900),
        (300, 1_000),
        exact_remaining=args.exact_remaining,
        exact_estimates=args.exact_estimates,
        no_server_feedback=args.no_server_feedback,
    )
    wanted = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    chosen = [s for s in scenarios(documents, tight) if s.key in wanted]
    if not chosen or not set(clients) <= {"ours", "baseline"}:
        print("nothing to run: check --scenarios and --clients", file=sys.stderr)
        return 2
    rows: list[Row] = []
    started = time.monotonic()
    workloads: dict[tuple[int, tuple[int, int]], list[Doc]] = {}
    for scenario in chosen:
        shape = (scenario.documents, scenario.sizes)
        if shape not in workloads:
            workloads[shape] = build_workload(
                scenario.documents,
                scenario.sizes,
                timing.reply_tokens,
                timing.max_tokens,
                args.seed,
            )
        docs = workloads[shape]
        the_bound = bound(scenario, docs, timing)
        estimate = sum(d.estimate for d in docs) / sum(d.input_tokens for d in docs)
        print(
            f"# {scenario.key}. {scenario.name}: {len(docs):,} docs, {the_bound.total_tokens:,} "
            f"tokens, steady bound {the_bound.steady_s:.1f} s ({the_bound.binds}), burst bound "
            f"{the_bound.burst_s:.1f} s, estimate/exact input {estimate:.2f}",
            file=sys.stderr,
            flush=True,
        )
        if args.plan:
            continue
        for client in clients:
            if client == "ours":
                row = measure_ours(scenario, timing, docs, the_bound)
            else:
                row = measure_baseline(scenario, timing, docs, the_bound, args.max_passes)
            rows.append(row)
            print(format_row(row), file=sys.stderr, flush=True)
    if args.plan:
        return 0
    elapsed = time.monotonic() - started
    print(format_table(rows))
    print()
    print(format_notes(rows, chosen, timing))
    print(f"\nTotal time: {elapsed:.0f} s.")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
