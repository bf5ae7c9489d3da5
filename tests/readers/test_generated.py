"""Code mode's default excludes: generated and vendored files left out with one INFO line."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest

from pipeline.readers.generated import Generated
from tests.readers.support import found, options, sources, write

REPO = [
    "pkg/__init__.py",
    "pkg/core.py",
    "pkg/__pycache__/core.cpython-311.pyc",
    "stray.pyc",
    "node_modules/left/index.js",
    ".venv/lib/site.py",
    "env/pyvenv.cfg",
    "env/lib/x.py",
    "build/lib/pkg/core.py",
    "dist/pkg.tar.py",
    "target/debug/main.rs",
    "pkg.egg-info/PKG-INFO",
    ".mypy_cache/x.json",
    "poetry.lock",
    "package-lock.json",
    "web/app.js",
    "web/app.min.js",
    "web/app.min.css",
]


def _repo(root: Path) -> None:
    for name in REPO:
        write(root, name, "x = 1\n")


def test_code_mode_leaves_out_generated_and_vendored_files(tmp_path: Path) -> None:
    _repo(tmp_path)
    candidates, problems = found(options(tmp_path, code=True))
    assert [c.source for c in candidates] == ["pkg/__init__.py", "pkg/core.py", "web/app.js"]
    assert problems == []  # no row (no warning) for each .pyc: they are simply not inputs


def test_one_info_line_says_how_many_were_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _repo(tmp_path)
    with caplog.at_level(logging.INFO, logger="pipeline.readers"):
        found(options(tmp_path, code=True))
    [record] = [r for r in caplog.records if r.name == "pipeline.readers"]
    assert record.levelno == logging.INFO
    # __pycache__ node_modules .venv env(pyvenv.cfg) build dist target egg-info .mypy_cache
    assert "left out 9 folders and 5 files" in record.getMessage()
    assert "inputs.include" in record.getMessage()
    assert (record.folders, record.files) == (9, 5)  # type: ignore[attr-defined]


def test_text_mode_is_unchanged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _repo(tmp_path)
    with caplog.at_level(logging.INFO, logger="pipeline.readers"):
        candidates, problems = found(options(tmp_path))
    assert "node_modules/left/index.js" in [c.source for c in candidates]
    assert "stray.pyc" in [getattr(p, "source", None) for p in problems]  # binary, as before
    assert not [r for r in caplog.records if r.name == "pipeline.readers"]


def test_a_job_includes_one_explicitly(tmp_path: Path) -> None:
    _repo(tmp_path)
    listed = sources(options(tmp_path, code=True, include=("build/**", "*.min.js", "poetry.lock")))
    assert listed == ["poetry.lock", "build/lib/pkg/core.py", "web/app.min.js"]


def test_an_input_path_below_an_excluded_folder_is_read(tmp_path: Path) -> None:
    _repo(tmp_path)
    assert sources(options(tmp_path / "node_modules", code=True)) == ["left/index.js"]


def test_a_python_package_named_build_is_source(tmp_path: Path) -> None:
    write(tmp_path, "src/build/__init__.py")
    write(tmp_path, "src/build/env.py")
    assert sources(options(tmp_path, code=True)) == ["src/build/__init__.py", "src/build/env.py"]


def test_summary_is_none_when_nothing_was_left_out() -> None:
    assert Generated().summary() is None


def test_an_installed_package_reads_its_sources_only() -> None:
    """The issue's case: an installed package (no .gitignore) with its __pycache__ folders."""
    spec = importlib.util.find_spec("httpx")
    assert spec is not None
    assert spec.origin is not None
    root = Path(spec.origin).parent
    candidates, problems = found(options(root, code=True))
    assert problems == []
    assert candidates
    assert all("__pycache__" not in c.source for c in candidates)
    assert {Path(c.source).suffix for c in candidates} <= {".py", ".typed"}
