"""``pipeline plan`` against what the run then uses: its bounds hold, within a stated margin."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest

from pipeline.cli import EXIT_OK, main
from pipeline.core.limits import Limits
from pipeline.run.plan import Plan
from pipeline.simulator import SimulatorServer

ROOT = Path(__file__).resolve().parent.parent
MARGIN = 1.6  # the estimate is an upper bound, at most this much over the API's count


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(6):
        (folder / f"memo-{n}.txt").write_text(
            f"Memo {n}. The board met on the {n + 3}th and approved the plan. " * 20,
            encoding="utf-8",
        )
    long = " ".join(
        f"Section {n}: the audit found {n * 7} open items in region {n}." for n in range(900)
    )
    (folder / "long.txt").write_text(long, encoding="utf-8")  # several chunks: map-reduce
    (folder / "empty.txt").write_text("", encoding="utf-8")
    return folder


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(list(argv)) in (EXIT_OK, 1)
    out = capsys.readouterr().out
    return json.loads(out) if out.lstrip().startswith("{") else {}


def test_plan_bounds_what_the_run_uses_and_exact_counts_match(
    simulator: SimulatorServer,
    corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MEGALLM_API_KEY", simulator.api_key)
    out = str(tmp_path / "out.parquet")
    common = ["jobs/summarize.toml", str(corpus), "--output", out, "--set",
              "chunking.max_chunk_tokens=2000", "--base-url", simulator.url]  # fmt: skip
    planned = cli_json(capsys, "plan", *common, "--json")
    exact = cli_json(capsys, "plan", *common, "--json", "--exact")
    assert planned["documents"] == 7
    assert planned["problems"] == {"empty_file": 1}
    assert planned["combining_requests"] >= 1  # long.txt: at most this many rounds
    assert planned["requests"] == planned["chunks"] > 7

    assert main(["run", *common, "--quiet"]) == EXIT_OK
    report = json.loads((tmp_path / "out.report.json").read_text())
    calls = pl.read_parquet(tmp_path / "out.calls.parquet")
    combining = calls["call"].str.starts_with("final/") | calls["call"].str.starts_with("reduce/")
    first_round = calls.filter(~combining)["input_tokens"].sum()
    assert first_round <= planned["input_tokens"] <= MARGIN * first_round
    assert exact["input_tokens"] == first_round  # counted by the API: what it then charged
    assert calls.filter(combining)["input_tokens"].sum() <= planned["combining_input_tokens_max"]
    assert report["tokens"]["output"] <= planned["output_tokens_max"]
    calls = report["calls"]["calls"]
    assert planned["requests"] < calls <= planned["requests"] + planned["combining_requests"]
    assert report["cost_usd"] <= planned["cost_usd_max"]

    again = cli_json(capsys, "plan", *common, "--json")  # what tonight's run would send
    assert (again["documents"], again["reused"], again["requests"]) == (0, 7, 0)
    assert os.path.exists(out)


def test_plan_names_the_limit_that_binds() -> None:
    plan = Plan("j", "m", requests=600, input_tokens=600 * 5_000, max_tokens=100)
    pro = Limits(requests_per_minute=200, tokens_per_minute=400_000, max_concurrency=1000)
    seconds, binding = plan.least_time(pro)
    assert binding == "tokens per minute"
    assert seconds == pytest.approx(60 * (3_000_000 + 60_000) / 400_000)
    basic = Limits(requests_per_minute=50, tokens_per_minute=10**9, max_concurrency=1000)
    seconds, binding = plan.least_time(basic)
    assert (binding, seconds) == ("requests per minute", 60 * 600 / 50)
    seconds, binding = plan.least_time(Limits(max_concurrency=10))  # no per-minute limit
    assert (binding, seconds) == ("concurrency", 600 * (1 + 100 / 50) / 10)
