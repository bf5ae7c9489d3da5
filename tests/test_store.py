"""Durable progress: one run of a job at a time, and a killed run leaves no stale lock."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.errors import ConfigError, RunBusy
from pipeline.core.models import Attempt, Reply, Usage, utc
from pipeline.core.rows import CallRow, DocumentRow, Status
from pipeline.state.calls import decode, encode, request_hash
from pipeline.state.store import ResultStore, finished_keys

WHEN = utc(1_800_000_000.0)


def _row(n: int, status: Status = "ok") -> DocumentRow:
    return DocumentRow(
        doc_id=f"d{n}", source=f"{n}.txt", status=status, started_at=WHEN, finished_at=WHEN
    )


def _call(n: int) -> CallRow:
    return CallRow(
        doc_id=f"d{n}",
        call="whole",
        attempt=1,
        status=200,
        error_type=None,
        request_id=f"req_{n}",
        latency_s=0.5,
        started_at=WHEN,
    )


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
            "import sys; from pathlib import Path; from pipeline.state.store import ResultStore; "
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
        store.save(f"d{n}:s", f"{n}.txt", [_row(n)], [_call(n)])
    store.close()

    again = ResultStore(path)
    assert list(again.output_rows()) == []  # nothing is output until this run keeps it
    assert again.reuse("d2:s", "2.txt")
    assert not again.reuse("d1:other-settings", "1.txt")
    again.add_other("0.txt", [_row(0, "error")], [])
    # By source; d1 (not seen by this run: a removed input) drops out. The rows come back
    # as they were saved, typed (datetimes, tuples).
    assert list(again.output_rows()) == [_row(0, "error"), _row(2)]
    assert list(again.output_calls()) == [_call(2)]
    again.close()
    # What this run gathered for its output is not kept: the next run starts clean.
    third = ResultStore(path)
    assert list(third.output_rows()) == []
    third.close()


def test_finished_documents_are_looked_up_in_batches_and_exactly_they_are_kept(
    tmp_path: Path,
) -> None:
    """More documents than one statement holds: each finished one is found (under the
    source this run names it by) and output once; an unknown key or other settings are not."""
    path = tmp_path / "out.state.sqlite"
    store = ResultStore(path)
    for n in range(1_000):
        store.save(f"d{n}:s", f"{n}.txt", [_row(n)], [_call(n)])
    store.close()

    again = ResultStore(path)
    asked = [(f"d{n}:s", f"renamed/{n}.txt") for n in range(0, 1_000, 2)]
    asked += [("d1:other-settings", "1.txt"), ("new:s", "new.txt"), ("d4:s", "again/4.txt")]
    found = again.reuse_many(asked)
    assert found == {f"d{n}:s" for n in range(0, 1_000, 2)}
    rows = list(again.output_rows())
    # the last name given wins (as one insert-or-replace each did): one row per document
    expected = {f"renamed/{n}.txt" for n in range(0, 1_000, 2) if n != 4} | {"again/4.txt"}
    assert sorted(row.source for row in rows) == sorted(expected)
    assert len(list(again.output_calls())) == 500
    again.close()


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


def test_saves_are_committed_in_groups_off_the_caller_and_all_reach_the_disk(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.state.sqlite"
    store = ResultStore(path)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("begin immediate")  # the disk is busy: the store's commit has to wait
    for n in range(50):
        store.save(f"d{n}:s", f"{n}.txt", [_row(n)], [])  # returns: the caller never waits
    blocker.execute("commit")
    assert len(list(store.output_rows())) == 50  # output waits for the commits
    store.close()
    assert finished_keys(path) == {f"d{n}:s" for n in range(50)}
    blocker.close()


def test_a_commit_that_fails_stops_the_run_with_what_to_fix(tmp_path: Path) -> None:
    path = tmp_path / "out.state.sqlite"
    store = ResultStore(path)
    saboteur = sqlite3.connect(path, isolation_level=None)
    saboteur.execute(
        "create trigger full before insert on documents begin select raise(abort, 'disk full'); end"
    )
    store.save("d1:s", "1.txt", [_row(1)], [])
    with pytest.raises(ConfigError, match=r"output\.path: cannot keep the run's state.*disk full"):
        list(store.output_rows())
    with pytest.raises(ConfigError, match="disk full"):
        store.save("d2:s", "2.txt", [_row(2)], [])
    store.close()
    saboteur.close()


def test_a_finished_call_is_kept_until_its_document_is_saved(tmp_path: Path) -> None:
    path = tmp_path / "out.state.sqlite"
    reply = Reply("m1", "claude", ({"type": "text", "text": "part one"},), "end_turn", None,
                  Usage(input_tokens=10, output_tokens=3), "req_1")  # fmt: skip
    attempts = (Attempt(1, 1_700_000_000.0, 0.25, 200, request_id="req_1"),)
    request = request_hash({"model": "claude", "messages": [{"role": "user", "content": "x"}]})
    store = ResultStore(path)
    store.keep_call("d1:s", request, *encode(reply, attempts))
    store.close()

    store = ResultStore(path)  # another run: the call is there, as it was
    found = store.stored_call("d1:s", request)
    assert found is not None
    assert decode(*found) == (reply, attempts)
    assert store.stored_call("d2:s", request) is None  # another document's call: not this one
    store.save("d1:s", "1.txt", [_row(1)], [])
    store.close()

    store = ResultStore(path)
    assert store.stored_call("d1:s", request) is None  # the row is the record now
    store.close()
