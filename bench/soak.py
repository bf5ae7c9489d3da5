"""Soak: many documents through the real command line, every fault kind mixed, the run killed
at random (SIGKILL or SIGTERM) and the simulator taken away and brought back, resumed until
done; then the invariants, and a table of what the simulator injected beside what the runs
reported. Not part of the test suite (minutes, not seconds).

Run:  python -m bench.soak                           (2,000 documents, 16 rounds, ~4 minutes)
      python -m bench.soak --documents 200 --rounds 4 --seed 3

The simulator runs in this process (``SimulatorServer``, 50 ms + 0.5 ms a token per reply)
with every fault at once: 529, 500, dropped connections, slow replies (held past the
client's 60 s read timeout), truncated bodies, mid-stream ``event: error`` and a 429 storm
(with ``retry-after: 1`` or without, chosen by the seed: try two seeds for both). Each
round runs ``pipeline run`` as a subprocess (streamed or not, at random), then after a
random delay sends SIGKILL or SIGTERM; some rounds also stop the simulator for a few
seconds (connections refused) and start it again on the same port. After every round each
output file that exists must read (polars and pyarrow; the report as JSON). Last, the same
command runs until it exits 0.

Invariants checked (the soak exits 1 if one fails):

- exactly one row per document, every one ``ok``;
- no request answered twice except replies lost in transit (``drop``, ``truncated``) and
  those in flight at a SIGKILL (at most 2 x concurrency + 1 each);
- a report written by a run that ended by itself (exit 0 or 1) counts exactly the faults the
  simulator injected during that run, by kind, and its 429s (a slow reply held when an outage
  stops the simulator is answered 500 by uvicorn, as a proxy answers 502 when its backend
  dies: it is counted as a 500); one written at a SIGTERM counts no more than was injected
  (a reply still held at the end of the 30 s grace is cut off);
- no call made more attempts than ``retry.max_attempts``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from pipeline.simulator import Faults, Latency, SimulatorConfig, SimulatorServer

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 8
MAX_ATTEMPTS = 12  # the job's default
# The client's error kind for each fault the simulator injects.
SEEN_AS = {
    "overloaded": "overloaded",
    "stream_error": "overloaded",
    "api_error": "server_error",
    "drop": "broken_reply",
    "truncated": "broken_reply",
    "slow": "reply_timed_out",
    "rate_limited": "rate_limited",
}
KINDS = (
    ("overloaded", "529 overloaded + mid-stream event: error"),
    ("server_error", "500 api_error"),
    ("broken_reply", "dropped connection + truncated body"),
    ("reply_timed_out", "slow past the read timeout"),
    ("rate_limited", "429 storm"),
    ("connection_failed", "simulator stopped (outage)"),
)


def make_corpus(folder: Path, count: int, rng: random.Random) -> Path:
    folder.mkdir(parents=True)
    words = [
        "budget",
        "staffing",
        "risk",
        "supplier",
        "contract",
        "forecast",
        "review",
        "audit",
        "plan",
        "quarter",
    ]
    for n in range(count):
        body = " ".join(rng.choice(words) for _ in range(rng.randint(20, 400)))
        (folder / f"note-{n:05d}.txt").write_text(f"Note {n}: {body}.", encoding="utf-8")
    return folder


def faults(seed: int, retry_after: float | None) -> Faults:
    return Faults(
        overloaded=0.04,
        api_error=0.04,
        drop=0.03,
        slow=0.004,
        stream_error=0.04,
        truncated=0.03,
        rate_limited=0.02,
        slow_seconds=70,  # past the client's read timeout (60 s for max_tokens 600)
        rate_limited_retry_after=retry_after,
        seed=seed,
    )


def start_run(
    server: SimulatorServer, docs: Path, out: Path, stream: bool
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["MEGALLM_API_KEY"] = server.api_key
    command = [
        sys.executable, "-m", "pipeline", "run", "jobs/summarize.toml", str(docs),
        "--output", str(out), "--base-url", server.url, "--quiet",
        "--set", f"limits.max_concurrency={CONCURRENCY}",
        "--set", f"endpoint.stream={str(stream).lower()}",
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def read_outputs(out: Path) -> dict[str, Any] | None:
    """Read every output file that exists, as a user would; the report, if any."""
    if out.exists():
        rows = pl.read_parquet(out)
        assert pq.read_table(out).num_rows == len(rows), "Parquet readers disagree"
        assert rows["source"].n_unique() == len(rows), "a document has two rows"
    calls = out.with_name(f"{out.stem}.calls.parquet")
    if calls.exists():
        assert pq.read_table(calls).num_rows == len(pl.read_parquet(calls))
    report = out.with_name(f"{out.stem}.report.json")
    if report.exists():
        loaded: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
        return loaded
    return None


def seen_as(injected: Counter[str]) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for kind, count in injected.items():
        kinds[SEEN_AS[kind]] += count
    return kinds


@dataclass
class Totals:
    injected: Counter[str] = field(default_factory=Counter)  # by the client's error kind
    reported: Counter[str] = field(default_factory=Counter)  # in the reports written
    # Rounds that ended by themselves (exit 0 or 1): their reports must match exactly.
    ended_injected: Counter[str] = field(default_factory=Counter)
    ended_reported: Counter[str] = field(default_factory=Counter)
    signals: Counter[str] = field(default_factory=Counter)
    exits: Counter[int] = field(default_factory=Counter)
    outages: int = 0
    slow_cut_by_outage: int = 0
    rounds: int = 0
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.problems.append(message)


class Outage:
    """Stops the simulator after ``after`` seconds for ``length`` seconds, in a thread."""

    def __init__(self, server: SimulatorServer, after: float, length: float) -> None:
        self._server, self._after, self._length = server, after, length
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.happened = False

    def _run(self) -> None:
        if self._cancel.wait(self._after):
            return
        self._server.stop()
        self.happened = True
        time.sleep(self._length)
        self._server.start()

    def start(self) -> None:
        self._thread.start()

    def finish(self) -> None:
        self._cancel.set()
        self._thread.join()


def one_round(
    server: SimulatorServer,
    docs: Path,
    out: Path,
    rng: random.Random,
    totals: Totals,
    *,
    kill: bool,
) -> int:
    before_stats = server.stats()
    before_report = read_outputs(out)
    stream = rng.random() < 0.5
    process = start_run(server, docs, out, stream)
    outage: Outage | None = None
    if rng.random() < 0.4:
        outage = Outage(server, after=rng.uniform(1.5, 6.0), length=rng.uniform(2.0, 6.0))
        outage.start()
    sent: signal.Signals | None = None
    try:
        process.wait(timeout=rng.uniform(1.0, 8.0) if kill else None)
    except subprocess.TimeoutExpired:
        sent = rng.choice([signal.SIGKILL, signal.SIGTERM])
        process.send_signal(sent)
        totals.signals[sent.name] += 1
    _, errors = process.communicate(timeout=300)
    if outage is not None:
        outage.finish()
        totals.outages += outage.happened
    totals.rounds += 1
    code = process.returncode
    totals.exits[code] += 1
    totals.check("Traceback" not in errors, f"round {totals.rounds}: a traceback: {errors[-2000:]}")
    totals.check(
        code in (0, 1, 130, -signal.SIGKILL, -signal.SIGTERM),
        f"round {totals.rounds}: exit {code}: {errors[-2000:]}",
    )
    report = read_outputs(out)
    stats = server.stats()
    injected = seen_as(Counter(stats["faults"]) - Counter(before_stats["faults"]))
    totals.injected += injected
    written = report is not None and report != before_report
    reported = Counter[str]()
    if written and report is not None:
        reported = Counter(report["calls"]["attempt_errors"])
        totals.reported += reported
        refused = stats["by_status"].get("429", 0) - before_stats["by_status"].get("429", 0)
        mine = {k: v for k, v in reported.items() if k != "connection_failed"}
        expected = injected.copy()
        if outage is not None and outage.happened:
            # A reply held (slow) when the simulator stops is cancelled after uvicorn's 2 s
            # grace and answered 500, as a proxy answers 502 for a backend that died.
            moved = max(
                0,
                min(
                    expected["reply_timed_out"], reported["server_error"] - injected["server_error"]
                ),
            )
            expected["reply_timed_out"] -= moved
            expected["server_error"] += moved
            totals.slow_cut_by_outage += moved
        if code in (0, 1):
            totals.ended_injected += expected
            totals.ended_reported += reported
            totals.check(
                mine == {k: v for k, v in expected.items() if v},
                f"round {totals.rounds}: report {mine} != injected {dict(injected)}",
            )
            totals.check(
                report["calls"]["rate_limited_429"] == refused,
                f"round {totals.rounds}: 429s reported {report['calls']['rate_limited_429']}, "
                f"served {refused}",
            )
        else:
            totals.check(
                all(v <= expected[k] for k, v in mine.items()),
                f"round {totals.rounds}: report {mine} > injected {dict(injected)}",
            )
    cut = outage is not None and outage.happened
    refused_note = f", refused {reported['connection_failed']}" if cut and written else ""
    print(
        f"  round {totals.rounds:2d}: {'stream' if stream else 'plain '} "
        f"{sent.name if sent else 'no signal':9s} exit {code:4d}"
        f"; faults injected {sum(injected.values()):3d}, reported "
        f"{sum(v for k, v in reported.items() if k != 'connection_failed'):3d}"
        f"{' (no report)' if not written else ''}"
        f"{'; outage' if cut else ''}"
        f"{refused_note}",
        flush=True,
    )
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=16, help="rounds killed at random")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    retry_after = rng.choice([1.0, None])
    config = SimulatorConfig(faults=faults(args.seed, retry_after), latency=Latency(0.05, 0.0005))
    started = time.monotonic()
    totals = Totals()
    # Quiet: a held reply cancelled by an outage is logged by uvicorn with a traceback.
    with (
        tempfile.TemporaryDirectory() as tmp,
        SimulatorServer(config, log_level="critical") as server,
    ):
        docs = make_corpus(Path(tmp) / "docs", args.documents, rng)
        out = Path(tmp) / "out" / "soak.parquet"
        storm = "with retry-after: 1" if retry_after else "without retry-after"
        print(
            f"soak: {args.documents} documents, {args.rounds} rounds killed at random, "
            f"seed {args.seed}, 429 storm {storm}"
        )
        for _ in range(args.rounds):
            one_round(server, docs, out, rng, totals, kill=True)
        for _ in range(5):  # then the same command until it finishes with every row ok
            if one_round(server, docs, out, rng, totals, kill=False) == 0:
                break
        rows = pl.read_parquet(out)
        calls = pl.read_parquet(out.with_name("soak.calls.parquet"))
        stats = server.stats()
        names = sorted(p.name for p in docs.iterdir())
    wall = time.monotonic() - started

    totals.check(len(rows) == args.documents, f"{len(rows)} rows for {args.documents} documents")
    totals.check(sorted(rows["source"]) == names, "rows and documents differ")
    totals.check(set(rows["status"]) == {"ok"}, f"statuses {set(rows['status'])}")
    served, lost = stats["served"]["by_request"], stats["served"]["dropped_by_request"]
    repeats = sum(max(0, n - lost.get(d, 0) - 1) for d, n in served.items())
    bound = totals.signals["SIGKILL"] * (2 * CONCURRENCY + 1)
    totals.check(repeats <= bound, f"{repeats} requests answered twice (bound {bound})")
    most = max(calls.group_by("doc_id", "call").agg(pl.col("attempt").max())["attempt"].to_list())
    totals.check(most <= MAX_ATTEMPTS, f"a call made {most} attempts")
    recorded = Counter(calls["error_type"].drop_nulls().to_list())

    print()
    print(
        "| attempt error | injected as | injected | in reports | in calls.parquet "
        "| runs that ended by themselves: injected | : reported |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for kind, label in KINDS:
        injected = "—" if kind == "connection_failed" else str(totals.injected[kind])
        final = "—" if kind == "connection_failed" else str(totals.ended_injected[kind])
        print(
            f"| {kind} | {label} | {injected} | {totals.reported[kind]} | {recorded[kind]} "
            f"| {final} | {totals.ended_reported[kind]} |"
        )
    print()
    print(f"documents {args.documents}, rows {len(rows)}, all ok: {set(rows['status']) == {'ok'}}")
    exits = dict(sorted(totals.exits.items()))
    print(
        f"rounds {totals.rounds}: signals {dict(totals.signals)}, exits {exits}, "
        f"outages {totals.outages}"
    )
    print(
        f"served {stats['served']['total']} replies for {stats['served']['distinct']} requests; "
        f"lost in transit {sum(lost.values())}; answered twice otherwise {repeats} (bound {bound})"
    )
    print(
        f"slow replies cut off by an outage and answered 500: {totals.slow_cut_by_outage} "
        "(counted as server_error in the last two columns)"
    )
    print(f"most attempts by one call {most} (policy {MAX_ATTEMPTS}); wall {wall:.0f} s")
    if totals.problems:
        print("\nINVARIANTS BROKEN:")
        for problem in totals.problems:
            print(f"  - {problem}")
        return 1
    print("invariants: all held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
