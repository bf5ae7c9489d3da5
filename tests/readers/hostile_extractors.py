"""Extractors for ``PdfTextPool`` tests, run in its worker processes (so module-level, and
light to import). Each writes its worker's pid beside the file it is given (``label`` is
a path), so a test can tell that the worker was stopped."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from pipeline.readers.pdfpool import PdfText, pypdf_text


def _note_pid(label: str) -> None:
    Path(label + ".pid").write_text(str(os.getpid()))
    print(os.getpid(), flush=True)  # for a test that reads the worker's stdout


def hangs_on_hang(data: bytes, label: str, budget_s: float) -> PdfText:
    """Never returns for a file named ``hang.pdf``: a page that hangs the extractor, with no
    chance for the between-pages budget to be checked."""
    _note_pid(label)
    if label.endswith("hang.pdf"):
        threading.Event().wait()
    return pypdf_text(data, label, budget_s)


def dies_on_crash(data: bytes, label: str, budget_s: float) -> PdfText:
    """The worker dies on ``crash.pdf`` (as a segfault in a native extractor would)."""
    _note_pid(label)
    if label.endswith("crash.pdf"):
        os._exit(3)
    return pypdf_text(data, label, budget_s)
