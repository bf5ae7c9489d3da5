"""Scale: peak memory against the number of documents, and what a re-run of a finished job costs.

Run:  python -m bench.scale                      (10K, 50K and 100K documents; ~15 minutes)
      python -m bench.scale --sizes 2000 --quick (smoke test)

For each size N, N small generated text documents (a few hundred bytes each, in folders of
1,000) are summarized by the real command line, ``pipeline run jobs/summarize.toml``, as a
subprocess against the simulator in another process (no limits, no latency, so the run is
as fast as the pipeline can go). Measured:

- peak RSS of the ``pipeline run`` process (``wait4``'s ``ru_maxrss``): target under 200 MB
  at 100K, and flat with N; and RSS sampled over time (``bench.rss_sampler``): its peak in
  each phase (running, ending, the Parquet write, the page), at the end of the running phase,
  and at each tenth of the documents committed (``--samples FILE``: every sample, as CSV);
- wall time, the run's CPU time (user + system: on a shared machine a run with fewer busy
  threads gets a smaller share of the cores, so wall time alone misleads), the simulator's
  CPU over the run and its count of requests served; documents per CPU second (the run's and
  the simulator's together): the rate to compare between sizes on a loaded machine.

Then the smallest size is run again, unchanged: the re-run must make 0 API calls (target)
and finish in under 10 s at 10K documents (target), rewriting the same Parquet
(``--rerun-all``: every size).

``--beside CHECKOUT`` runs the same with another checkout (its ``.venv/bin/python``, from its
folder) right after each of this one's runs, against the same simulator: a baseline measured
in the same hour on the same machine (``--only-beside``: that checkout alone, so two
checkouts can run at once, each with its own simulator). ``--env NAME=VALUE`` sets a variable
for the runs measured (``MALLOC_ARENA_MAX=2``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from bench.proc import cpu_seconds
from bench.rate_use import SIMULATE, SimulatorProcess
from bench.rss_sampler import PHASES, Sampler, Samples
from pipeline.simulator import DEFAULT_API_KEY

ROOT = Path(__file__).resolve().parent.parent
SENTENCE = (
    "the committee reviewed budget schedule vendor contract risk audit quarter revenue staff "
    "training policy update delivery milestone customer feedback survey result"
)
WORDS = SENTENCE.split()


@dataclass
class Measured:
    documents: int
    rows: int
    wall_s: float
    peak_rss_mb: float
    served: int
    cpu_s: float  # user + system CPU of the run: on a shared machine, steadier than wall time
    sim_cpu_s: float  # the simulator's CPU over the same run
    samples: Samples  # RSS over time, by phase (bench.rss_sampler)

    @property
    def per_cpu_s(self) -> float:
        """Documents per CPU second, the run's and the simulator's: a rate the machine's
        other load moves far less than wall time."""
        return self.documents / max(self.cpu_s + self.sim_cpu_s, 1e-9)


def make_corpus(folder: Path, count: int) -> Path:
    """``count`` small documents, deterministic, in folders of 1,000 (reused if present)."""
    marker = folder / f".complete-{count}"
    if marker.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    for n in range(count):
        sub = folder / f"batch-{n // 1000:03d}"
        if n % 1000 == 0:
            sub.mkdir(parents=True)
        words = " ".join(WORDS[(n * 7 + i) % len(WORDS)] for i in range(60))
        (sub / f"memo-{n:06d}.txt").write_text(f"Memo {n}. {words}.\n", encoding="utf-8")
    marker.touch()
    return folder


def served(sim: SimulatorProcess) -> int:
    """Replies the simulator has served so far."""
    with urllib.request.urlopen(f"{sim.url}/_simulator/stats", timeout=5) as response:
        total: int = json.load(response)["served"]["total"]
        return total


def reset(sim: SimulatorProcess) -> None:
    request = urllib.request.Request(f"{sim.url}/_simulator/reset", method="POST")
    urllib.request.urlopen(request, timeout=5).close()


def run_pipeline(
    sim: SimulatorProcess,
    corpus: Path,
    out: Path,
    concurrency: int,
    checkout: Path = ROOT,
    extra_env: dict[str, str] | None = None,
) -> Measured:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["MEGALLM_API_KEY"] = DEFAULT_API_KEY
    env.update(extra_env or {})
    documents = sum(1 for _ in corpus.rglob("*.txt"))
    before = served(sim)
    sim_before = cpu_seconds(sim.pid)
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            python_of(checkout), "-m", "pipeline", "run", "jobs/summarize.toml", str(corpus),
            "--output", str(out), "--base-url", sim.url, "--quiet",
            "--set", f"limits.max_concurrency={concurrency}",
        ],
        cwd=checkout, env=env,
    )  # fmt: skip
    sampler = Sampler(process.pid, out, documents)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    samples = sampler.stop()
    sim_cpu = cpu_seconds(sim.pid) - sim_before
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):
        raise RuntimeError(f"pipeline run exited {process.returncode}")
    rows = pl.scan_parquet(out).select(pl.len()).collect().item()
    cpu = usage.ru_utime + usage.ru_stime
    calls = served(sim) - before
    return Measured(documents, rows, wall, usage.ru_maxrss / 1024, calls, cpu, sim_cpu, samples)


def python_of(checkout: Path) -> str:
    return sys.executable if checkout == ROOT else str(checkout / ".venv" / "bin" / "python")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench-scale")
    parser.add_argument("--quick", action="store_true", help="2,000 documents only")
    parser.add_argument("--rerun-all", action="store_true", help="re-run every size, not one")
    parser.add_argument("--no-rerun", action="store_true", help="first runs only")
    parser.add_argument("--beside", type=Path, help="another checkout to measure after each run")
    parser.add_argument(
        "--only-beside", action="store_true", help="measure the --beside checkout alone"
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="for the runs measured"
    )
    parser.add_argument("--samples", type=Path, help="write every RSS sample here (CSV)")
    args = parser.parse_args()
    sizes = [2_000] if args.quick else sorted(args.sizes)
    checkouts = [] if args.only_beside else [ROOT]
    checkouts += [args.beside.resolve()] if args.beside else []
    extra_env = dict(item.split("=", 1) for item in args.env)
    results: list[tuple[str, str, Measured]] = []

    def measure(label: str, size: int) -> None:
        corpus = make_corpus(args.workdir / f"docs-{size}", size)
        for checkout in checkouts:
            out = args.workdir / f"out-{size}-{checkout.name}" / "summaries.parquet"
            if label == "first run":
                shutil.rmtree(out.parent, ignore_errors=True)
            reset(sim)
            measured = run_pipeline(sim, corpus, out, args.concurrency, checkout, extra_env)
            results.append((checkout.name, label, measured))
            print(f"{checkout.name}: {_row(label, measured)}", flush=True)

    with SimulatorProcess(SIMULATE, []) as sim:
        for size in sizes:
            measure("first run", size)
        reruns = [] if args.no_rerun else sizes if args.rerun_all else sizes[:1]
        for size in reruns:
            measure("re-run, unchanged", size)
    print()
    _table(results)
    if args.samples:
        _write_samples(args.samples, results)


def _table(results: list[tuple[str, str, Measured]]) -> None:
    columns = (
        "documents | rows | API calls | wall s | docs/s | CPU s | sim CPU s | docs/CPU s | "
        "peak RSS MB | RSS end of running MB | peak " + " / ".join(PHASES) + " MB"
    )
    print(f"| checkout | run | {columns} |")
    print("|---|---|" + "---:|" * 11)
    for name, label, m in results:
        end = m.samples.end_of_running()
        phases = " / ".join(f"{m.samples.peak(phase):.0f}" for phase in PHASES)
        print(
            f"| {name} | {label} | {m.documents:,} | {m.rows:,} | {m.served:,} | {m.wall_s:.1f} | "
            f"{m.documents / m.wall_s:,.0f} | {m.cpu_s:.1f} | {m.sim_cpu_s:.1f} | "
            f"{m.per_cpu_s:,.0f} | {m.peak_rss_mb:.0f} | "
            f"{end.rss_mb if end else 0:.0f} | {phases} |"
        )
    for name, label, m in results:
        if label != "first run":  # a re-run's state holds every document from the start
            continue
        steps = [m.documents * k // 10 for k in range(1, 11)]
        growth = ", ".join(f"{n:,}: {rss:.0f}" for n, rss in m.samples.at_documents(steps))
        print(f"{name} {label}: RSS MB at documents committed: {growth}")


def _write_samples(path: Path, results: list[tuple[str, str, Measured]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("checkout,run,documents,at_s,rss_mb,cpu_s,phase,committed\n")
        for name, label, m in results:
            for s in m.samples.samples:
                committed = "" if s.documents is None else s.documents
                out.write(
                    f"{name},{label},{m.documents},{s.at:.2f},{s.rss_mb:.1f},{s.cpu_s:.2f},"
                    f"{s.phase},{committed}\n"
                )


def _row(label: str, m: Measured) -> str:
    end = m.samples.end_of_running()
    return (
        f"{label}: {m.documents:,} documents, {m.rows:,} rows, {m.served:,} calls, "
        f"{m.wall_s:.1f} s, CPU {m.cpu_s:.1f} s (simulator {m.sim_cpu_s:.1f} s, "
        f"{m.per_cpu_s:,.0f} documents per CPU s), peak RSS {m.peak_rss_mb:.0f} MB "
        f"({end.rss_mb if end else 0:.0f} MB at the end of running; by phase "
        + " / ".join(f"{p} {m.samples.peak(p):.0f}" for p in PHASES)
        + ")"
    )


if __name__ == "__main__":
    main()
