"""Hostile inputs for the reliability tests: damaged and oversized PDFs, trees of awkward
names and links, and a way to run the command line in-process."""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.generic import DecodedStreamObject, NameObject

from pipeline.cli import main
from tests.readers.support import encrypted, make_samples, pdf_bytes

ROOT = Path(__file__).resolve().parents[2]
JOBS = ROOT / "jobs"

TEN_PAGES = pdf_bytes([f"Page {n} of the annual report." for n in range(1, 11)])


def _page_stream(data: bytes, text: str) -> bytes:
    """The object text of the content stream that sets ``text`` (pages from ``pdf_bytes``)."""
    stream = make_samples._content(text)
    old = b"<< /Length %d >>\nstream\n%s" % (len(stream), stream)
    assert old in data
    return old


def truncated_pdf() -> bytes:
    return TEN_PAGES[: len(TEN_PAGES) // 2]


def encrypted_pdf() -> bytes:
    return encrypted(TEN_PAGES, "s3cret")


def corrupt_stream_on_page(page: int) -> bytes:
    """Page ``page``'s content stream claims a FlateDecode filter it was not written with."""
    old = _page_stream(TEN_PAGES, f"Page {page} of the annual report.")
    new = old.replace(b" >>\nstream", b" /Filter /FlateDecode >>\nstream", 1)
    return TEN_PAGES.replace(old, new)


def garbage_object_on_page(page: int) -> bytes:
    """Page ``page``'s dictionary is cut off in the middle: pypdf must repair around it."""
    content_id = 4 + 2 * (page - 1) + 1
    old = b"/Contents %d 0 R >>" % content_id
    assert old in TEN_PAGES
    return TEN_PAGES.replace(old, b"/Contents [[[[[[[[ %d 0 R" % content_id)


def cyclic_page_tree() -> bytes:
    """The page tree lists itself among its kids."""
    return TEN_PAGES.replace(b"/Type /Pages /Kids [", b"/Type /Pages /Kids [2 0 R ", 1)


def pages_pdf(count: int) -> bytes:
    return pdf_bytes(["A short page."] * count)


def decompression_bomb() -> bytes:
    """One page whose content stream inflates to 80 MB (pypdf stops at 75 MB)."""
    packer = zlib.compressobj(1)
    block = b" " * 1_000_000
    bomb = b"".join(packer.compress(block) for _ in range(80)) + packer.flush()
    page = pdf_bytes(["X"])
    old = _page_stream(page, "X")
    return page.replace(
        old, b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s" % (len(bomb), bomb)
    )


def lone_surrogate_pdf() -> bytes:
    """A font whose text map sends 'x' to U+D800, a lone surrogate: pypdf decodes it as is."""
    cmap = (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
        b"/CMapName /Custom def /CMapType 2 def\n"
        b"1 begincodespacerange <00> <FF> endcodespacerange\n"
        b"1 beginbfchar <78> <D800> endbfchar\n"
        b"endcmap CMapName currentdict /CMap defineresource pop end end"
    )
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(["xyz and more text"]))))
    stream = DecodedStreamObject()
    stream.set_data(cmap)
    font = writer.pages[0]["/Resources"]["/Font"]["/F1"].get_object()
    font[NameObject("/ToUnicode")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def write_name(folder: Path, name: bytes, data: bytes) -> None:
    """A file whose name is raw bytes (not necessarily UTF-8)."""
    with open(os.path.join(os.fsencode(folder), name), "wb") as file:
        file.write(data)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``pipeline ARGV`` in this process: exit status, stdout, stderr."""
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err
