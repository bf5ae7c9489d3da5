"""Issue 20, items 4, 7, 8 and 11: what a run writes beside its output. A planted link or an
unrelated file there is never followed, truncated or replaced; temporaries are unique; a
``--log-file`` is never an input; ``#`` and ``?`` in the output's name are safe; every file
a run makes is readable by its user only."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import polars as pl
import pytest

from pipeline.cli import EXIT_OK, EXIT_USAGE, main
from tests.hardening.support import small_job


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("A note about the budget.")
    (folder / "b.txt").write_text("A note about the harvest.")
    return folder


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_text("precious data\n")
    return path


def _run(job: Path, out: Path, *extra: str) -> int:
    run = ["run", str(job), "--simulate", "--simulate-models", "both", "-q", "--output", str(out)]
    return main([*run, *extra])


@pytest.mark.parametrize("planted", ["r.state.lock", "r.state.sqlite", "r.state.sqlite-wal"])
def test_a_link_planted_beside_the_output_is_never_followed(
    tmp_path: Path,
    docs: Path,
    victim: Path,
    capsys: pytest.CaptureFixture[str],
    planted: str,
) -> None:
    out = tmp_path / "out" / "r.parquet"
    out.parent.mkdir()
    os.symlink(victim, out.parent / planted)
    assert _run(small_job(tmp_path, docs), out) == EXIT_USAGE
    err = capsys.readouterr().err
    assert planted in err
    assert "symbolic link" in err
    assert victim.read_text() == "precious data\n"


def test_a_hard_link_as_the_lock_is_never_truncated(
    tmp_path: Path, docs: Path, victim: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "r.parquet"
    out.parent.mkdir()
    os.link(victim, out.parent / "r.state.lock")
    assert _run(small_job(tmp_path, docs), out) == EXIT_USAGE
    assert "r.state.lock" in capsys.readouterr().err
    assert victim.read_text() == "precious data\n"


@pytest.mark.parametrize("name", [".r.parquet.partial", ".r.report.json.partial"])
def test_temporaries_are_unique_so_a_planted_one_is_left_alone(
    tmp_path: Path, docs: Path, victim: Path, name: str
) -> None:
    out = tmp_path / "out" / "r.parquet"
    out.parent.mkdir()
    os.symlink(victim, out.parent / name)
    assert _run(small_job(tmp_path, docs), out) == EXIT_OK
    assert victim.read_text() == "precious data\n"
    assert pl.read_parquet(out).height == 2


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("r.report.json", '{"my": "notes"}'),
        ("r.calls.parquet", "my own table"),
        ("r.report.html", "<html>my own page</html>"),
    ],
)
def test_an_unrelated_file_beside_the_output_is_not_replaced(
    tmp_path: Path, docs: Path, capsys: pytest.CaptureFixture[str], name: str, content: str
) -> None:
    out = tmp_path / "out" / "r.parquet"
    out.parent.mkdir()
    (out.parent / name).write_text(content)
    assert _run(small_job(tmp_path, docs), out) == EXIT_USAGE
    assert name in capsys.readouterr().err
    assert (out.parent / name).read_text() == content
    assert not out.exists()


def test_a_run_replaces_its_own_files_beside_the_output(tmp_path: Path, docs: Path) -> None:
    out = tmp_path / "out" / "r.parquet"
    job = small_job(tmp_path, docs)
    assert _run(job, out) == EXIT_OK
    assert _run(job, out, "--force") == EXIT_OK  # its report, calls, state and lock: fine
    assert json.loads((out.parent / "r.report.json").read_text())["documents"]["total"] == 2
    assert not list(out.parent.glob("*.partial"))


def test_the_log_file_is_never_read_as_an_input(tmp_path: Path, docs: Path) -> None:
    out = tmp_path / "out" / "r.parquet"
    job = small_job(tmp_path, docs)
    log = docs / "run.log"
    for _ in range(2):
        assert _run(job, out, "--log-file", str(log)) == EXIT_OK
        assert sorted(pl.read_parquet(out)["source"]) == ["a.txt", "b.txt"]
    assert log.stat().st_size > 0


@pytest.mark.parametrize("name", ["a#b.parquet", "a?b.parquet", "a%23b.parquet"])
def test_hash_and_question_mark_in_the_output_name_are_safe_for_the_state(
    tmp_path: Path, docs: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    out = tmp_path / "out" / name
    job = small_job(tmp_path, docs)
    assert _run(job, out) == EXIT_OK
    capsys.readouterr()
    assert main(["plan", str(job), "--output", str(out), "--json"]) == EXIT_OK
    plan = json.loads(capsys.readouterr().out)
    assert plan["reused"] == 2
    assert plan["requests"] == 0


def test_no_stray_file_is_made_for_a_hash_in_the_output_name(
    tmp_path: Path, docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "a#b.parquet"
    job = small_job(tmp_path, docs)
    assert _run(job, out) == EXIT_OK
    assert main(["plan", str(job), "--output", str(out)]) == EXIT_OK
    assert not (out.parent / "a").exists()


def test_every_file_a_run_makes_is_private_to_its_user(
    tmp_path: Path, docs: Path, victim: Path
) -> None:
    out = tmp_path / "out" / "r.parquet"
    old = os.umask(0o022)
    try:
        log = tmp_path / "logs" / "run.log"
        assert _run(small_job(tmp_path, docs), out, "--log-file", str(log)) == EXIT_OK
    finally:
        os.umask(old)
    made = [*out.parent.iterdir(), log]
    names = {path.name for path in made}
    assert {"r.parquet", "r.calls.parquet", "r.report.json", "r.state.sqlite"} <= names
    assert "r.state.lock" in names
    for path in made:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode & 0o077 == 0, f"{path.name} is {oct(mode)}"
