"""Unattended runs: a deadline, waiting for another run, logs a machine reads, quiet cron.

Each runs the real command line (in process, or as a subprocess where a second process is
the point) against a simulator on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from pipeline.cli import EXIT_INCOMPLETE, EXIT_OK, main
from pipeline.config.load import load_job
from pipeline.simulator import Latency, SimulatorConfig, SimulatorServer
from pipeline.state.store import ResultStore
from tests.conftest import StartSimulator

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = 20


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(DOCUMENTS):
        (folder / f"note-{n:02d}.txt").write_text(
            f"Note {n}: the committee met and moved item {n * 3} to next week.", encoding="utf-8"
        )
    return folder


def run(server: SimulatorServer, docs: Path, out: Path, *options: str) -> int:
    return main(
        [
            "run", "jobs/summarize.toml", str(docs), "--output", str(out),
            "--base-url", server.url, *options,
        ]
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _key_and_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_max_duration_stops_gracefully_saves_and_the_next_run_continues(
    start_simulator: StartSimulator,
    docs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 20 documents, 4 at a time, 0.5 s a reply: 2.5 s of work at least. The deadline, 1 s,
    # lands mid-run: the first requests go out at once (the run is in this process), and
    # the calls in flight when it comes finish and are saved.
    server = start_simulator(SimulatorConfig(latency=Latency(fixed=0.5)))
    monkeypatch.setenv("MEGALLM_API_KEY", server.api_key)
    out = tmp_path / "out.parquet"

    assert run(server, docs, out, "--max-duration", "1s") == EXIT_INCOMPLETE
    assert "stopped at --max-duration" in capsys.readouterr().err
    first = pl.read_parquet(out)
    assert 0 < len(first) < DOCUMENTS  # some saved, some left
    assert set(first["status"]) == {"ok"}
    assert json.loads((tmp_path / "out.report.json").read_text())["ended"] == "max_duration"
    served = server.stats()["served"]["total"]
    assert served == len(first)  # every reply paid for is saved; nothing else was sent

    assert run(server, docs, out) == EXIT_OK
    rows = pl.read_parquet(out)
    assert sorted(rows["source"]) == sorted(p.name for p in docs.iterdir())
    summary = json.loads((tmp_path / "out.report.json").read_text())
    assert summary["ended"] == "completed"
    assert summary["documents"]["reused"] == len(first)
    assert summary["documents"]["sent"] == DOCUMENTS - len(first)
    # The next run sent only the rest: nothing finished before the deadline paid again.
    assert server.stats()["served"]["total"] - served == DOCUMENTS - len(first)
    assert server.stats()["served"]["max_per_request"] == 1


def test_log_file_in_json_lines_tells_the_run_and_never_holds_the_key(
    start_simulator: StartSimulator,
    docs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = "sk-fake-0123456789-ZZTOPSECRETZZ"
    server = start_simulator(SimulatorConfig(api_keys=frozenset({key})))
    monkeypatch.setenv("MEGALLM_API_KEY", key)
    (docs / "empty.txt").write_text("", encoding="utf-8")
    log_file = tmp_path / "logs" / "run.jsonl"

    code = run(server, docs, tmp_path / "out.parquet", "--log-json", "--log-file", str(log_file))

    assert code == EXIT_OK  # an empty file is skipped, not failed
    captured = capsys.readouterr()
    assert captured.out == ""  # with --log-json the report is a log event, not text
    records = [json.loads(text) for text in log_file.read_text().splitlines()]
    events = [r.get("event") for r in records]
    assert events[0] == "started"
    assert "document_skipped" in events
    (final,) = [r for r in records if r.get("event") == "report"]
    assert final["report"]["documents"]["total"] == DOCUMENTS + 1
    # The same events reached stderr as JSON lines.
    assert [json.loads(t).get("event") for t in captured.err.splitlines()][-1] == "report"
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path
    assert key not in captured.err


def test_quiet_prints_nothing_when_all_is_well(
    simulator: SimulatorServer,
    docs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MEGALLM_API_KEY", simulator.api_key)
    assert run(simulator, docs, tmp_path / "out.parquet", "--quiet") == EXIT_OK
    assert capsys.readouterr() == ("", "")
    assert (tmp_path / "out.report.json").exists()


def test_wait_takes_the_lock_when_the_other_run_lets_go(
    simulator: SimulatorServer, docs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.parquet"
    job = load_job(ROOT / "jobs/summarize.toml", inputs=[str(docs)], output=str(out))
    holder = ResultStore(job.state_path)  # another run of the job, in this process
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["MEGALLM_API_KEY"] = simulator.api_key
    process = subprocess.Popen(
        [
            sys.executable, "-m", "pipeline", "run", "jobs/summarize.toml", str(docs),
            "--output", str(out), "--base-url", simulator.url, "--wait",
        ],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        waiting = process.stderr.readline()
        assert f"pid {os.getpid()}" in waiting
        assert "waiting for it (--wait)" in waiting
        assert not out.exists()  # it did nothing while it waited
    finally:
        holder.close()
    _, errors = process.communicate(timeout=60)
    assert process.returncode == EXIT_OK, errors
    assert len(pl.read_parquet(out)) == DOCUMENTS
