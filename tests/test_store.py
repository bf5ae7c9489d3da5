"""Durable progress: one run of a job at a time, and a killed run leaves no stale lock."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import RunBusy
from pipeline.store import ResultStore


def test_a_second_run_of_the_same_job_is_refused(tmp_path: Path) -> None:
    first = ResultStore(tmp_path / "out.state.sqlite")
    with pytest.raises(RunBusy, match=r"another run of this job .*\(pid \d+\)"):
        ResultStore(tmp_path / "out.state.sqlite")
    first.close()
    ResultStore(tmp_path / "out.state.sqlite").close()  # free again


def test_a_killed_run_leaves_no_stale_lock(tmp_path: Path) -> None:
    path = tmp_path / "out.state.sqlite"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from pipeline.store import ResultStore; "
            f"store = ResultStore(Path({str(path)!r})); print('locked', flush=True); "
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RunBusy):
        ResultStore(path)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert holder.stdin is not None
    holder.stdin.close()
    holder.stdout.close()
    ResultStore(path).close()  # the kernel released the lock with the process


def test_finished_documents_survive_the_process(tmp_path: Path) -> None:
    path = tmp_path / "out.state.sqlite"
    store = ResultStore(path)
    store.save("doc:1", [{"doc_id": "doc", "status": "ok"}], [{"doc_id": "doc", "attempt": 1}])
    store.close()
    again = ResultStore(path)
    assert again.finished("doc:1") == (
        [{"doc_id": "doc", "status": "ok"}],
        [{"doc_id": "doc", "attempt": 1}],
    )
    assert again.finished("doc:2") is None
    again.close()
