"""The [review] section: its rules, checked at load, name the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config.load import load_job
from pipeline.core.errors import ConfigError

JOBS = Path(__file__).resolve().parents[2] / "jobs"


def _load(tmp_path: Path, *overrides: str) -> None:
    load_job(
        JOBS / "repo_review.toml", output=str(tmp_path / "r.parquet"), overrides=list(overrides)
    )


def test_the_sample_job_loads(tmp_path: Path) -> None:
    _load(tmp_path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["inputs.code=false"], r"review: .* set inputs\.code = true"),
        (['review.tools=["read_file","read_file"]'], r"review\.tools: a tool is named twice"),
        (['review.tools=["write_file"]'], r"review\.tools"),
        (["review.max_tool_calls=0"], r"review\.max_tool_calls"),
        (["review.map_tokens=-1"], r"review\.map_tokens"),
        (['inputs.paths=["s3://bucket/repo"]'], r"review: .* \(not URLs"),
    ],
)
def test_bad_review_settings_are_refused_naming_the_field(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, *overrides)


def test_tools_need_structured_output(tmp_path: Path) -> None:
    job = (JOBS / "repo_review.toml").read_text(encoding="utf-8")
    cut = job[: job.index("[structured]")] + job[job.index("[output]") :]
    path = tmp_path / "job.toml"
    path.write_text(cut.replace("../sample_data/repo", str(JOBS.parent / "sample_data/repo")))
    with pytest.raises(ConfigError, match=r"review\.tools: .* add a \[structured\] section"):
        load_job(path, output=str(tmp_path / "r.parquet"))
