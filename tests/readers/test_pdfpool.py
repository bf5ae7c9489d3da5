"""PdfTextPool: PDF text in worker processes, the same as in-thread; a file that hangs the
extractor is stopped at the time limit by killing its worker (issue 20, item 13: the budget
in pdf.read_text is only checked between pages); a worker that dies is replaced; the rest
of the files are read as usual."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.errors import EmptyDocument, EncryptedDocument, TooLarge, Unreadable
from pipeline.readers import Candidate, pdfium, read_document
from pipeline.readers import pdf as pdf_reader
from pipeline.readers.pdfpool import EXTRACTORS, PdfTextPool
from tests.readers import hostile_extractors
from tests.readers.support import encrypted, options, pdf_bytes, write

PAGES = pdf_bytes(["Page one text.", "Page two text."])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_text_is_what_the_thread_reads(tmp_path: Path) -> None:
    with PdfTextPool(2) as pool:
        assert pool.workers == 0  # started on first use
        assert pool.read_text(PAGES, "a.pdf") == pdf_reader.read_text(PAGES, "a.pdf")
        assert pool.workers == 1


def test_the_pdfium_extractor_runs_in_the_workers(tmp_path: Path) -> None:
    with PdfTextPool(1, extract=EXTRACTORS["pdfium"]) as pool:
        assert pool.read_text(PAGES, "a.pdf") == pdfium.read_text(PAGES, "a.pdf")
        with pytest.raises(EncryptedDocument, match="needs a password"):
            pool.read_text(encrypted(PAGES, "secret"), "locked.pdf")
        with pytest.raises(Unreadable, match=r"broken\.pdf is not a readable PDF"):
            pool.read_text(b"%PDF-1.4 not really", "broken.pdf")
        with pytest.raises(EmptyDocument, match=r"scan\.pdf has no extractable text"):
            pool.read_text(pdf_bytes([None]), "scan.pdf")


def test_problems_come_back_as_themselves(tmp_path: Path) -> None:
    with PdfTextPool(1) as pool:
        with pytest.raises(Unreadable, match=r"broken\.pdf is not a readable PDF"):
            pool.read_text(b"%PDF-1.4 not really", "broken.pdf")
        with pytest.raises(EncryptedDocument, match="needs a password"):
            pool.read_text(encrypted(PAGES, "secret"), "locked.pdf")
        assert pool.read_text(PAGES, "after.pdf")[0][0].text == "Page one text."


def test_a_hanging_file_is_stopped_at_the_limit_and_the_pool_goes_on(tmp_path: Path) -> None:
    hang, fine = str(tmp_path / "hang.pdf"), str(tmp_path / "fine.pdf")
    with PdfTextPool(1, limit_s=0.5, extract=hostile_extractors.hangs_on_hang) as pool:
        with pytest.raises(TooLarge, match=r"took over 0.5 s.*the reader was stopped.*split it"):
            pool.read_text(PAGES, hang)
        hung_pid = int(Path(hang + ".pid").read_text())
        assert not pid_alive(hung_pid)  # killed (and reaped), not left running
        sections, _ = pool.read_text(PAGES, fine)
        assert [s.text for s in sections] == ["Page one text.", "Page two text."]
        assert int(Path(fine + ".pid").read_text()) != hung_pid  # a fresh worker
        assert pool.workers == 1


def test_a_worker_that_dies_is_an_unreadable_row_and_is_replaced(tmp_path: Path) -> None:
    crash, fine = str(tmp_path / "crash.pdf"), str(tmp_path / "fine.pdf")
    with PdfTextPool(1, extract=hostile_extractors.dies_on_crash) as pool:
        with pytest.raises(Unreadable, match="crashed on it \\(exit code 3\\)"):
            pool.read_text(PAGES, crash)
        assert pool.read_text(PAGES, fine)[0][0].text == "Page one text."


def test_read_document_uses_the_pool_it_is_given(tmp_path: Path) -> None:
    path = write(tmp_path, "hang.pdf", PAGES)
    pool = PdfTextPool(1, limit_s=0.5, extract=hostile_extractors.hangs_on_hang)
    with pool, pytest.raises(TooLarge, match="the reader was stopped"):
        read_document(Candidate(path, str(path)), options(tmp_path), pdf_text=pool.read_text)


def test_closing_stops_every_worker(tmp_path: Path) -> None:
    label = str(tmp_path / "a.pdf")
    pool = PdfTextPool(1, extract=hostile_extractors.hangs_on_hang)
    pool.read_text(PAGES, label)
    pid = int(Path(label + ".pid").read_text())
    pool.close()
    assert not pid_alive(pid)
    with pytest.raises(RuntimeError, match="closed"):
        pool.read_text(PAGES, label)


def test_a_worker_exits_when_its_run_is_killed_even_mid_file(tmp_path: Path) -> None:
    """kill -9 of the run while its worker hangs on a page: the worker does not live on."""
    label = str(tmp_path / "hang.pdf")
    script = (
        "from pipeline.readers.pdfpool import PdfTextPool\n"
        "from tests.readers import hostile_extractors\n"
        "pool = PdfTextPool(1, extract=hostile_extractors.hangs_on_hang)\n"
        f"pool.read_text(b'%PDF-1.4', {label!r})\n"
    )
    root = Path(__file__).resolve().parents[2]
    run = subprocess.Popen(
        [sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, text=True
    )
    assert run.stdout is not None
    worker = int(run.stdout.readline())  # the worker has the file and hangs on it
    run.kill()
    run.wait(timeout=30)
    run.stdout.close()
    handle = os.pidfd_open(worker)
    try:
        exited, _, _ = select.select([handle], [], [], 30)  # readable when it exits
    finally:
        os.close(handle)
    assert exited
