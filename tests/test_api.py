"""The public Python API: the command line's twin, for schedulers and notebooks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import pipeline

JOB = """
[job]
name = "notes"
[inputs]
paths = ["docs"]
[prompt]
template = "Summarize: {text}"
[model]
name = "claude-3.7-sonnet"
max_tokens = 100
[output]
path = "out/notes.parquet"
"""


def _job_folder(tmp_path: Path, documents: int) -> Path:
    (tmp_path / "docs").mkdir()
    for n in range(documents):
        (tmp_path / "docs" / f"{n}.txt").write_text(f"Note {n}: the pump was fixed.\n" * 20)
    spec = tmp_path / "notes.toml"
    spec.write_text(JOB, encoding="utf-8")
    return spec


def test_load_run_and_read_the_outcome_with_progress(tmp_path: Path) -> None:
    spec = _job_folder(tmp_path, documents=5)
    job = pipeline.load_job(spec, overrides={"model.max_tokens": 200, "limits.tier": "basic"})
    assert job.spec.model.max_tokens == 200
    seen: list[pipeline.Progress] = []

    outcome = pipeline.run_job(job, simulate=True, on_progress=seen.append)

    assert outcome.ended == "completed"
    assert outcome.by_status == {"ok": 5}
    frame = pl.read_parquet(outcome.output)
    assert sorted(frame["source"].to_list()) == [f"{n}.txt" for n in range(5)]
    assert seen, "the progress callback was never called"
    assert seen[-1].done == 5
    assert seen[-1].total == 5

    job = pipeline.load_job(spec, overrides=["model.max_tokens=200", 'limits.tier="basic"'])
    again = pipeline.run_job(job, simulate=True)
    assert again.reused == 5  # nothing paid twice
    assert again.totals is not None
    assert again.totals.calls == 0
    assert again.by_status == {"ok": 5}


def test_a_bad_override_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    spec = _job_folder(tmp_path, documents=1)
    with pytest.raises(pipeline.ConfigError, match=r"model\.max_tokens"):
        pipeline.load_job(spec, overrides={"model.max_tokens": "many"})


def test_no_key_is_a_config_error_before_anything_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MEGALLM_API_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    job = pipeline.load_job(_job_folder(tmp_path, documents=1))
    with pytest.raises(pipeline.ConfigError, match="No API key"):
        pipeline.run_job(job)


def test_the_public_names_resolve_and_importing_the_package_stays_cheap() -> None:
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is not None
    code = (
        "import sys, pipeline\n"
        "heavy = {'polars', 'pydantic', 'httpx2', 'pipeline.api', 'pipeline.run.runner'}\n"
        "assert not heavy & set(sys.modules), heavy & set(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
