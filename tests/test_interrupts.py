"""Kills and interrupts: the real command line as a subprocess against a simulator."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from pipeline.simulator import Latency, SimulatorConfig
from tests.conftest import StartSimulator

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = 30


def make_docs(folder: Path, count: int = DOCUMENTS) -> Path:
    folder.mkdir()
    for n in range(count):
        (folder / f"memo-{n:02d}.txt").write_text(
            f"Memo {n}: the board discussed item {n * 7} and agreed to review it.",
            encoding="utf-8",
        )
    return folder


def start_run(url: str, key: str, docs: Path, out: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["MEGALLM_API_KEY"] = key
    process = subprocess.Popen(
        [
            sys.executable, "-m", "pipeline", "run", "jobs/summarize.toml", str(docs),
            "--output", str(out), "--base-url", url,
        ],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    assert process.stderr.readline().startswith("pipeline: running")  # it has started
    return process


def finish(process: subprocess.Popen[str], expected: int) -> None:
    _, errors = process.communicate(timeout=120)
    assert process.returncode == expected, errors[-4_000:]


def test_kill_9_at_random_points_then_resume(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator(SimulatorConfig(latency=Latency(fixed=0.3)))
    docs, out = make_docs(tmp_path / "docs"), tmp_path / "out.parquet"
    rng = random.Random(7)
    kills = 0
    for _ in range(3):
        process = start_run(server.url, server.api_key, docs, out)
        try:
            process.wait(timeout=rng.uniform(0.2, 1.5))  # a random point in the run
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.communicate(timeout=120)
    finish(start_run(server.url, server.api_key, docs, out), 0)
    rows = pl.read_parquet(out)
    assert len(rows) == DOCUMENTS
    assert rows["source"].n_unique() == DOCUMENTS
    assert set(rows["status"]) == {"ok"}
    served = server.stats()["served"]["by_request"]
    repeats = sum(count - 1 for count in served.values())
    # Only calls in flight at a kill (4 at a time) may have been answered twice.
    assert repeats <= kills * 4
    assert kills >= 1, "no kill landed: the test proved nothing"


def test_sigterm_saves_what_finished_and_exits_130(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator(SimulatorConfig(latency=Latency(fixed=0.3)))
    docs, out = make_docs(tmp_path / "docs"), tmp_path / "out.parquet"
    process = start_run(server.url, server.api_key, docs, out)
    process.send_signal(signal.SIGTERM)
    finish(process, 130)
    saved = pl.read_parquet(out)
    assert set(saved["status"]) <= {"ok"}
    assert len(saved) < DOCUMENTS
    before = server.stats()["served"]["total"]
    finish(start_run(server.url, server.api_key, docs, out), 0)
    rows = pl.read_parquet(out)
    assert len(rows) == DOCUMENTS
    # The resumed run sent only what the interrupted one had not finished.
    assert server.stats()["served"]["total"] - before == DOCUMENTS - len(saved)
    texts = dict(zip(saved["source"], saved["text"], strict=True))
    for source, text in zip(rows["source"], rows["text"], strict=True):
        if source in texts:
            assert text == texts[source]


@pytest.mark.parametrize("signals", [1, 2])
def test_interrupt_never_leaves_a_half_written_output(
    start_simulator: StartSimulator, tmp_path: Path, signals: int
) -> None:
    server = start_simulator(SimulatorConfig(latency=Latency(fixed=0.3)))
    docs, out = make_docs(tmp_path / "docs"), tmp_path / "out.parquet"
    process = start_run(server.url, server.api_key, docs, out)
    for _ in range(signals):
        process.send_signal(signal.SIGINT)
    finish(process, 130)
    pl.read_parquet(out)  # readable
    assert not list(tmp_path.glob(".*.partial"))
