"""``pipeline plan`` of a repository review: the map's tokens, what caching saves on it, the
tools' bound."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import EXIT_OK, main
from pipeline.config.load import load_job
from pipeline.run.review_plan import review_plan
from pipeline.shaping.repomap import map_for

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "jobs" / "repo_review.toml"
LONG_SYSTEM = 'prompt.system="' + "Review with care and cite lines. " * 160 + '"'


def test_plan_shows_the_map_and_the_tools(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "r.parquet")
    assert main(["plan", str(JOB), "--output", out, "--set", LONG_SYSTEM]) == EXIT_OK
    text = capsys.readouterr().out
    job = load_job(JOB, output=out, overrides=[LONG_SYSTEM])
    found = map_for(job)
    assert found is not None
    assert (
        f"  map        8 files, signatures and class members: ~{found.tokens:,} tokens in every "
        "request's system prompt; caching saves ~$" in text
    )
    assert "  tools      up to 6 calls and 60,000 tokens a file" in text
    assert main(["plan", str(JOB), "--output", out, "--set", LONG_SYSTEM, "--json"]) == EXIT_OK
    review = json.loads(capsys.readouterr().out)["review"]
    assert review["map_tokens"] == found.tokens
    assert review["max_tool_calls"] == 6


def test_the_saving_is_the_map_read_instead_of_sent(tmp_path: Path) -> None:
    job = load_job(JOB, output=str(tmp_path / "r.parquet"), overrides=[LONG_SYSTEM])
    plan = review_plan(job, requests=11, cached=True)
    assert job.price is not None
    tokens = plan.map_tokens
    # 11 requests: the map sent 11 times at the input price, or written once and read 10 times
    expected = tokens * (11 * job.price.input - job.price.cache_write - 10 * job.price.cache_read)
    assert plan.map_saving_usd == pytest.approx(expected / 1_000_000)
    assert review_plan(job, requests=11, cached=False).map_saving_usd is None
