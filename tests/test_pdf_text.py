"""inputs.pdf_text end to end: a run with PDFium against the simulator ends with the same rows and
statuses as with pypdf, and the choice reaches the run's PDF worker processes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import polars as pl

import pipeline
from tests.readers.support import pdf_bytes

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "sample_data" / "docs"
THREE_PAGES = pdf_bytes(["Page one text.", "Page two text.", "Page three text."])
# The page tree's second kid is the tree itself: pypdf refuses the file, PDFium reads around it.
LOOPED = THREE_PAGES.replace(b"[4 0 R 6 0 R 8 0 R]", b"[4 0 R 2 0 R 8 0 R]")


def run(inputs: Path, out: Path, pdf_text: str, *more: str) -> dict[str, dict[str, Any]]:
    """The rows of a simulated run of jobs/summarize.toml (scans attached), by source."""
    job = pipeline.load_job(
        ROOT / "jobs" / "summarize.toml",
        inputs=[str(inputs)],
        output=str(out),
        overrides=[f"inputs.pdf_text={pdf_text}", *more],
    )
    outcome = pipeline.run_job(job, simulate=True)
    return {row["source"]: row for row in pl.read_parquet(outcome.output).iter_rows(named=True)}


def test_pdfium_ends_with_the_rows_and_statuses_pypdf_does(tmp_path: Path) -> None:
    inputs = tmp_path / "docs"
    shutil.copytree(DOCS, inputs)  # broken, encrypted, three PDFs with text, notes
    (inputs / "scan.pdf").write_bytes(pdf_bytes([None, None]))  # no text layer: attached
    (inputs / "mixed.pdf").write_bytes(pdf_bytes(["Report", None]))  # page 2 attached
    rows = {name: run(inputs, tmp_path / f"{name}.parquet", name) for name in ("pypdf", "pdfium")}

    def shape(row: dict[str, Any]) -> tuple[Any, ...]:
        return (row["status"], row["error_type"], row["kind"], row["input_tokens"] > 0)

    pypdf, pdfium = rows["pypdf"], rows["pdfium"]
    assert pypdf.keys() == pdfium.keys()
    assert {s: shape(r) for s, r in pdfium.items()} == {s: shape(r) for s, r in pypdf.items()}
    assert pdfium["broken.pdf"]["error_type"] == "unreadable"
    assert pdfium["encrypted.pdf"]["error_type"] == "encrypted_document"
    assert pdfium["scan.pdf"]["status"] == pdfium["mixed.pdf"]["status"] == "ok"
    for source in ("quarterly-report.pdf", "research-note.pdf", "meeting-minutes.pdf"):
        # the same text in, so the same tokens charged
        assert pdfium[source]["input_tokens"] == pypdf[source]["input_tokens"], source


def test_the_choice_reaches_the_runs_pdf_workers(tmp_path: Path) -> None:
    inputs = tmp_path / "docs"
    inputs.mkdir()
    (inputs / "looped.pdf").write_bytes(LOOPED)
    # (with scans attached, the page PDFium could not load would be cut out of the file to be
    # attached: by pypdf, which cannot parse this file, so the row would be an error again)
    scans = "inputs.scans=error"
    pypdf = run(inputs, tmp_path / "a.parquet", "pypdf", scans)["looped.pdf"]
    assert (pypdf["status"], pypdf["error_type"]) == ("error", "unreadable")
    pdfium = run(inputs, tmp_path / "b.parquet", "pdfium", scans)["looped.pdf"]
    assert pdfium["status"] == "ok"
