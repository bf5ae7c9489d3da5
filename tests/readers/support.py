"""Helpers for the readers tests: files under tmp_path, PDFs built by the sample generator,
and discovery results split into candidates and problems."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from types import ModuleType
from typing import Any

from pypdf import PdfReader, PdfWriter

from pipeline.core.errors import InputProblem
from pipeline.readers import Candidate, InputOptions, discover

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "sample_data"


def _load_make_samples() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLE_DATA / "make_samples.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_samples = _load_make_samples()
pdf_bytes = make_samples.pdf_bytes
png_bytes = make_samples.png_bytes


def write(root: Path, relative: str, data: bytes | str = "hello\n") -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def options(*paths: Path | str, **kwargs: Any) -> InputOptions:
    return InputOptions(paths=tuple(Path(p) for p in paths), **kwargs)


def found(opts: InputOptions) -> tuple[list[Candidate], list[InputProblem]]:
    candidates: list[Candidate] = []
    problems: list[InputProblem] = []
    for item in discover(opts):
        if isinstance(item, Candidate):
            candidates.append(item)
        else:
            problems.append(item)
    return candidates, problems


def sources(opts: InputOptions) -> list[str]:
    """The sources of the candidates discovery lists, in its order."""
    return [c.source for c in found(opts)[0]]


def problem_map(opts: InputOptions) -> dict[str, type[InputProblem]]:
    return {p.source: type(p) for p in found(opts)[1]}  # type: ignore[attr-defined]


def encrypted(data: bytes, user_password: str, owner_password: str | None = None) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password, owner_password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def page_count(data: bytes) -> int:
    return len(PdfReader(io.BytesIO(data)).pages)
