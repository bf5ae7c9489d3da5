"""Table rows at scale: a Parquet table of short texts, a row a document, end to end.

Run:  python -m bench.table_rows                   (100,000 rows; ~6-10 minutes)
      python -m bench.table_rows --rows 5000       (smoke test)

A Parquet table of N short texts (about 450 bytes each, 10,000-row row groups; columns
``id``, ``title``, ``body``, ``tier``) is summarized by the real command line,
``pipeline run JOB TABLE``, the job ``JOB`` below (``inputs.text_column = "body"``,
``id_column = "id"``, ``keep_columns = ["id", "tier"]``, a template naming ``{id}``,
``{tier}`` and ``{title}``), as a subprocess against
``pipeline simulate`` in another process (no limits, no latency). Measured: peak RSS of the
``pipeline run`` process (``wait4``'s ``ru_maxrss``; the target is the bound of 100K files in
``bench.scale``: under 300 MB), wall time, and the simulator's replies served. Then the same
table is run again, unchanged: it must send 0 requests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from bench.rate_use import SIMULATE, SimulatorProcess
from bench.scale import WORDS, Measured, reset, served
from pipeline.simulator import DEFAULT_API_KEY

ROOT = Path(__file__).resolve().parent.parent


def make_table(path: Path, rows: int) -> Path:
    if path.exists() and pl.scan_parquet(path).select(pl.len()).collect().item() == rows:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    body = [
        f"Ticket {n}. " + " ".join(WORDS[(n * 7 + i) % len(WORDS)] for i in range(60))
        for n in range(rows)
    ]
    pl.DataFrame(
        {
            "id": [f"T-{n:06d}" for n in range(rows)],
            "title": [f"Ticket {n}" for n in range(rows)],
            "body": body,
            "tier": ["pro" if n % 3 else "basic" for n in range(rows)],
        }
    ).write_parquet(path, row_group_size=10_000)
    return path


JOB = """[job]
name = "table_rows"

[inputs]
paths = ["TABLE"]
text_column = "body"
id_column = "id"
keep_columns = ["id", "tier"]

[prompt]
system = "You triage support tickets."
template = "Ticket {id} ({tier}), {title}: summarize in one line.\\n\\n{text}"

[model]
name = "claude-haiku-4-5"
max_tokens = 200
"""


def run_pipeline(sim: SimulatorProcess, table: Path, out: Path, concurrency: int) -> Measured:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["MEGALLM_API_KEY"] = DEFAULT_API_KEY
    job = out.parent.parent / "table_rows.toml"
    job.write_text(JOB.replace("TABLE", str(table)), encoding="utf-8")
    before = served(sim)
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "pipeline", "run", str(job), str(table),
            "--output", str(out), "--base-url", sim.url, "--quiet",
            "--set", f"limits.max_concurrency={concurrency}",
        ],
        cwd=ROOT, env=env,
    )  # fmt: skip
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise RuntimeError(f"pipeline run exited {code}")
    rows = pl.scan_parquet(out).select(pl.len()).collect().item()
    documents = pl.scan_parquet(table).select(pl.len()).collect().item()
    return Measured(documents, rows, wall, usage.ru_maxrss / 1024, served(sim) - before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench-rows")
    args = parser.parse_args()
    table = make_table(args.workdir / f"table-{args.rows}.parquet", args.rows)
    out = args.workdir / f"out-{args.rows}" / "triage.parquet"
    shutil.rmtree(out.parent, ignore_errors=True)
    print("| run | rows in | rows out | API calls | wall s | rows/s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    with SimulatorProcess(SIMULATE, []) as sim:
        reset(sim)
        for label in ("first run", "re-run, unchanged"):
            m = run_pipeline(sim, table, out, args.concurrency)
            print(
                f"| {label} | {m.documents:,} | {m.rows:,} | {m.served:,} | {m.wall_s:.1f} | "
                f"{m.documents / m.wall_s:,.0f} | {m.peak_rss_mb:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
