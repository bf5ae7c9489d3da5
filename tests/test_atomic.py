"""Files replaced whole: the old content stays until the new one is complete."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.atomic import leftover_partials, partial_affixes, replacing


def test_the_new_content_replaces_the_old_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.json"
    with replacing(target) as partial:  # the folder is made
        partial.write_text("first")
    assert target.read_text() == "first"
    with replacing(target) as partial:
        partial.write_text("second, half")
        assert target.read_text() == "first"  # a reader meanwhile sees the old file
    assert target.read_text() == "second, half"
    assert not leftover_partials(target)


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
    assert not leftover_partials(target)


def test_a_partial_left_by_a_killed_writer_is_removed(tmp_path: Path) -> None:
    target = tmp_path / "out.parquet"
    prefix, suffix = partial_affixes(target)
    (tmp_path / f"{prefix}k1ll3d{suffix}").write_bytes(b"PAR1 half a file from a killed run")
    with replacing(target) as partial:
        partial.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert not leftover_partials(target)
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]
