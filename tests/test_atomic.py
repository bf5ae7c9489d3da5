"""Files replaced whole: the old content stays until the new one is complete."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.atomic import partial_path, replacing


def test_the_new_content_replaces_the_old_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.json"
    with replacing(target) as partial:  # the folder is made
        partial.write_text("first")
    assert target.read_text() == "first"
    with replacing(target) as partial:
        partial.write_text("second, half")
        assert target.read_text() == "first"  # a reader meanwhile sees the old file
    assert target.read_text() == "second, half"
    assert not partial_path(target).exists()


def test_a_failed_write_keeps_the_old_file_and_removes_the_partial(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")

    def write_then_fail() -> None:
        with replacing(target) as partial:
            partial.write_text("half")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert target.read_text() == "old"
    assert not partial_path(target).exists()


def test_a_partial_left_by_a_killed_writer_is_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "out.parquet"
    partial_path(target).write_bytes(b"PAR1 half a file from a killed run, longer than the new")
    with replacing(target) as partial:
        partial.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert not partial_path(target).exists()
