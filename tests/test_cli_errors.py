"""What the command line says when a command cannot do its job: one line and the documented
exit status, never a traceback; output piped into ``head``; the log file's end of run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import EXIT_BUSY, EXIT_FATAL, EXIT_OK, EXIT_USAGE, main
from pipeline.config.load import load_job
from pipeline.config.paths import page_path
from pipeline.core.limits import Limits
from pipeline.output.report import RunInfo, Tally, build, write
from pipeline.simulator import SimulatorServer
from pipeline.state.store import ResultStore
from tests.conftest import StartSimulator
from tests.hardening.support import small_job

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(3):
        (folder / f"d{n}.txt").write_text(f"Document {n} about the budget.")
    return folder


@pytest.fixture
def dead_url() -> str:
    """A loopback URL nothing listens on (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    return lines[0]


def test_models_on_an_unreachable_host_says_what_run_says(
    dead_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEGALLM_API_KEY", "sk-test")
    assert main(["models", "--base-url", dead_url]) == EXIT_FATAL
    line = one_line(capsys.readouterr().err)
    assert "Could not connect to 127.0.0.1" in line
    assert f"Check the base URL ({dead_url}) and the network" in line
    assert "the run stopped" not in line  # nothing was run


def test_plan_exact_on_an_unreachable_host_is_one_line(
    tmp_path: Path,
    docs: Path,
    dead_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MEGALLM_API_KEY", "sk-test")
    job = str(small_job(tmp_path, docs))
    assert main(["plan", job, "--exact", "--base-url", dead_url]) == EXIT_FATAL
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "Could not connect to 127.0.0.1" in err.splitlines()[-1]


def test_models_with_a_wrong_key_is_one_line(
    simulator: SimulatorServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEGALLM_API_KEY", "sk-wrong")
    assert main(["models", "--base-url", simulator.url]) == EXIT_FATAL
    line = one_line(capsys.readouterr().err)
    assert "cannot list the models" in line
    assert "401" in line


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("x.report.json", '{"a": 1}'),  # JSON, but not a report this program wrote
        ("y.report.json", "[1, 2]"),
        ("z.report.json", '{"version": 1, "job": "j"}'),  # cut short
    ],
)
def test_a_report_that_is_not_ours_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    for extra in ([], ["--json"], ["--html"]):
        assert main(["report", str(path), *extra]) == EXIT_USAGE
        line = one_line(capsys.readouterr().err)
        assert f"{path} is not a report this program wrote" in line


def test_a_report_path_without_a_name_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "/"]) == EXIT_USAGE
    assert "no report" in one_line(capsys.readouterr().err)


def test_validate_and_plan_do_not_say_a_run_stopped(
    tmp_path: Path,
    docs: Path,
    start_simulator: StartSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = start_simulator()
    monkeypatch.setenv("MEGALLM_API_KEY", server.api_key)
    job = str(small_job(tmp_path, docs))
    for command in ("validate", "plan"):
        code = main([command, job, "--base-url", server.url, "--set", "model.name=claude-nope"])
        assert code == EXIT_FATAL
        line = one_line(capsys.readouterr().err)
        assert "model.name" in line
        assert "the run stopped" not in line
        assert "the job cannot run" in line


def test_validate_on_an_unreachable_host_fails_visibly(
    tmp_path: Path,
    docs: Path,
    dead_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MEGALLM_API_KEY", "sk-test")
    job = str(small_job(tmp_path, docs))
    assert main(["validate", job, "--base-url", dead_url]) == EXIT_FATAL
    captured = capsys.readouterr()
    assert "ok" not in captured.out
    line = one_line(captured.err)
    assert "Could not connect to 127.0.0.1" in line
    assert "Check the base URL" in line
    # plan still estimates (it sends nothing), but says so on a warning line
    assert main(["plan", job, "--base-url", dead_url]) == EXIT_OK
    captured = capsys.readouterr()
    assert "pipeline: warning: model claude-haiku-4-5 not checked" in captured.err


def test_the_lock_message_names_the_output_file(
    tmp_path: Path, docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "night.parquet"
    job_path = small_job(tmp_path, docs)
    job = load_job(job_path, output=str(out))
    held = ResultStore(job.state_path)
    try:
        code = main(["run", str(job_path), "--simulate", "--output", str(out)])
    finally:
        held.close()
    assert code == EXIT_BUSY
    assert f"another run of this job is writing {out} " in capsys.readouterr().err


def test_every_shipped_job_writes_to_the_top_level_out_folder() -> None:
    for spec in sorted((ROOT / "jobs").glob("*.toml")):
        job = load_job(spec)
        assert job.output_path.parent == ROOT / "out", spec.name


def _closed_pipe_run(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run the command line with its stdout a pipe whose reader has gone (``| head``)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "pipeline", *argv],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)


def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path, docs: Path) -> None:
    job = str(small_job(tmp_path, docs))
    info = RunInfo(
        "j", "m", "http://127.0.0.1:1", tmp_path / "r.parquet", Limits(), None, "completed"
    )
    report = write(build(Tally(), info), tmp_path / "r.parquet")
    for argv in (["plan", job, "--json"], ["plan", job], ["report", str(report)]):
        done = _closed_pipe_run(*argv)
        assert "Traceback" not in done.stderr, argv
        assert "BrokenPipeError" not in done.stderr, argv
        assert done.returncode == 141, (argv, done.stderr)  # 128 + SIGPIPE, as a shell says


@pytest.mark.parametrize(
    ("options", "ended"),
    [([], "completed"), (["--set", "model.name=claude-nope"], "fatal")],
)
def test_a_quiet_log_file_ends_with_the_summary(
    tmp_path: Path,
    docs: Path,
    start_simulator: StartSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    ended: str,
) -> None:
    server = start_simulator()
    monkeypatch.setenv("MEGALLM_API_KEY", server.api_key)
    log = tmp_path / "night.log"
    out = tmp_path / "out" / "r.parquet"
    main(
        ["run", str(small_job(tmp_path, docs)), "--quiet", "--log-file", str(log),
         "--output", str(out), "--base-url", server.url, *options]
    )  # fmt: skip
    text = log.read_text()
    assert f"INFO pipeline.run: the run ended: {ended}" in text
    assert "documents  " in text
    assert f"results    {out}" in text
    assert "the run ended" not in capsys.readouterr().err  # quiet: the console stays quiet


def test_the_page_shows_control_characters_escaped(tmp_path: Path, docs: Path) -> None:
    (docs / "\x1b]0;pwned\x07title.txt").write_text("A document with a hostile name.")
    (docs / "bell-\x07.txt").write_text("")  # a skipped row: its name is shown too
    out = tmp_path / "out" / "r.parquet"
    job = str(small_job(tmp_path, docs))
    assert main(["run", job, "--simulate", "--simulate-models", "both", "--output", str(out)]) == 0
    page = page_path(out).read_text()
    for control in ("\x1b", "\x07"):
        assert control not in page
    assert "\\x1b]0;pwned\\x07title.txt" in page  # shown, escaped as the console does
