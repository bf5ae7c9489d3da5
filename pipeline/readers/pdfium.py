"""PDF text with PDFium (pypdfium2), for ``inputs.pdf_text = "pdfium"``: what ``pdf.read_text``
gives, page by page, with the same rows for the same troubles.

PDFium is Chromium's PDF library, in C++: 3.5-21x pypdf's pages per CPU-second, with text at
least as good on every producer ``bench.pdf_fidelity`` tries (docs/benchmarks.md). Its text
is taken as PDFium gives it (ligatures such as ``ﬁ`` come out as ``fi``), with its ``\\r\\n``
line ends made ``\\n``, and the U+FFFE it puts for a hyphen that ends a line made that hyphen
and line end again (as pypdf gives them; U+FFFE is a noncharacter). A character with no
Unicode value becomes U+FFFD and a note, as with pypdf. Where it differs from pypdf: a page
PDFium cannot load (a page tree that loops, say) is left out and noted, where pypdf refuses
the whole file; it writes no warnings, so there are no ``pypdf:`` notes.

PDFium is not thread-safe: one lock serialises it within a process. A run reads PDFs in
``pdfpool``'s worker processes (one file each at a time), which also contain a crash of the
native code: the file becomes an ``Unreadable`` row and the run goes on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pypdfium2
import pypdfium2.raw as pdfium_c

from pipeline.core.errors import EmptyDocument
from pipeline.core.models import Section
from pipeline.readers.pdf import (
    MAX_PAGES,
    TEXT_BUDGET_S,
    PageTexts,
    broken,
    needs_password,
    no_text,
    over_budget,
    too_many_pages,
)

_lock = threading.Lock()
_LINE_END_HYPHEN = "\ufffe"  # PDFium's mark for a hyphen that ends a line


def read_text(
    data: bytes,
    label: str,
    *,
    max_pages: int = MAX_PAGES,
    budget_s: float = TEXT_BUDGET_S,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[tuple[Section, ...], tuple[str, ...]]:
    """The text of each page that has some, numbered from 1; and notes: as ``pdf.read_text``,
    the same errors for the same causes."""
    notes: list[str] = []
    with _lock:
        document = _open(data, label, notes)
        try:
            pages = len(document)
            if pages > max_pages:
                raise too_many_pages(label, pages, max_pages)
            texts = PageTexts()
            started = clock()
            for number in range(1, pages + 1):
                if clock() - started > budget_s:
                    raise over_budget(label, budget_s, number - 1, pages)
                texts.add_text(number, _page_text(document, number - 1))
        finally:
            document.close()
    notes.extend(texts.notes())
    if texts.sections:
        return tuple(texts.sections), tuple(notes)
    raise no_text(label, pages, len(texts.failed))


def _open(data: bytes, label: str, notes: list[str]) -> pypdfium2.PdfDocument:
    """Open a PDF; PDFium tries the empty password on an encrypted one by itself."""
    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as exc:
        if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise needs_password(label) from exc
        if exc.err_code == pdfium_c.FPDF_ERR_SUCCESS:  # parsed, but no page to give
            raise EmptyDocument(f"{label} has no pages") from exc
        raise broken(label, exc) from exc
    except Exception as exc:  # anything else on a damaged file is the same row
        raise broken(label, exc) from exc
    if pdfium_c.FPDF_GetSecurityHandlerRevision(document) != -1:
        notes.append("PDF opened with the empty password")
    return document


def _page_text(document: pypdfium2.PdfDocument, index: int) -> str | None:
    """One page's text, line ends as ``\\n``; ``None`` if PDFium cannot load the page."""
    try:
        page = document[index]
        try:
            textpage = page.get_textpage()
            try:
                text: str = textpage.get_text_range(errors="surrogatepass")
            finally:
                textpage.close()
        finally:
            page.close()
    except Exception:  # a page PDFium cannot load: left out, and noted
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n").replace(_LINE_END_HYPHEN, "-\n")
