"""Durable progress: one run of a job at a time, and a killed run leaves no stale lock."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, RunBusy
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


def test_finished_documents_survive_the_process_and_a_run_outputs_only_its_own(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.state.sqlite"
    store = ResultStore(path)
    for n in (1, 2):
        row = {"doc_id": f"d{n}", "source": f"{n}.txt", "status": "ok"}
        store.save(f"d{n}:s", f"{n}.txt", [row], [{"doc_id": f"d{n}", "attempt": 1}])
    store.close()

    again = ResultStore(path)
    assert list(again.output("rows")) == []  # nothing is output until this run keeps it
    assert again.reuse("d2:s", "2.txt")
    assert not again.reuse("d1:other-settings", "1.txt")
    again.add_other("0.txt", [{"doc_id": "d0", "source": "0.txt", "status": "error"}], [])
    # By source; d1 (not seen by this run: a removed input) drops out.
    assert [r["source"] for r in again.output("rows")] == ["0.txt", "2.txt"]
    assert list(again.output("calls")) == [{"doc_id": "d2", "attempt": 1}]
    again.close()
    # What this run gathered for its output is not kept: the next run starts clean.
    third = ResultStore(path)
    assert list(third.output("rows")) == []
    third.close()


def test_a_state_folder_that_cannot_be_made_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("a file where the output folder should be", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"output\.path: cannot keep the run's state"):
        ResultStore(blocker / "out.state.sqlite")
    corrupt = tmp_path / "bad.state.sqlite"
    corrupt.write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError, match=r"is not a readable database.*move it aside"):
        ResultStore(corrupt)
    ResultStore(tmp_path / "fine.state.sqlite").close()  # the lock was let go each time
