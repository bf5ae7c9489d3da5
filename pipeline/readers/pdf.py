"""PDFs with pypdf: text page by page (page numbers kept), or parts for the model to read.

``pdfium`` reads the text with PDFium instead (``inputs.pdf_text = "pdfium"``), with the same
rows for the same troubles: it uses ``PageTexts``, ``broken``, ``needs_password``,
``too_many_pages``, ``over_budget`` and ``no_text`` from here.

pypdf may raise anything on a damaged file, so every call into it sits behind one broad
``except`` that becomes ``Unreadable``. What pypdf logs while repairing a file becomes the
document's notes instead of lines on the user's terminal (see ``_PypdfNotes``).

Bounds, so that one hostile PDF cannot hold a run for hours: pypdf caps what a stream may
decompress to and how many tokens a content stream may hold (a page that passes them is read
in seconds); a PDF of more than ``MAX_PAGES`` pages is refused before any page is read, and
reading the text of one stops after ``TEXT_BUDGET_S`` seconds (checked between pages; a run
reads in ``pdfpool``'s worker processes, which also stops one page that hangs). Both
refusals are ``TooLarge`` rows that say how to split the file.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pypdf import PageObject, PdfReader, PdfWriter
from pypdf.errors import DependencyError

from pipeline.core.errors import EmptyDocument, EncryptedDocument, TooLarge, Unreadable
from pipeline.core.models import Attachment, Section

# Limits of one PDF document block: 100 pages, and the 32 MB request; base64 adds a third,
# so a part's raw bytes stay under 23 MB to leave room for the encoding and the prompt.
MAX_PART_PAGES = 100
MAX_PART_BYTES = 23_000_000
# A PDF may have at most this many pages (in both modes), and its text is read for at most
# this long: simple pages take milliseconds each, hard ones up to seconds.
MAX_PAGES = 5_000
TEXT_BUDGET_S = 120.0
_SURROGATE = re.compile("[\ud800-\udfff]")  # pypdf decodes broken text maps leniently
_SPLIT_IT = (
    "split it into smaller files (e.g. qpdf --split-pages=500 in.pdf part.pdf) and run again"
)
_MAX_LOG_NOTES = 5
_MAX_NOTE_CHARS = 200

_capture = threading.local()
_install_lock = threading.Lock()
_installed = False


class _PypdfNotes(logging.Handler):
    """Routes pypdf's log records to the notes of the document this thread is reading."""

    def emit(self, record: logging.LogRecord) -> None:
        notes: list[str] | None = getattr(_capture, "notes", None)
        if notes is None:
            return
        try:
            message = record.getMessage()
        except Exception:  # a malformed record must not break the read
            message = str(record.msg)
        if len(message) > _MAX_NOTE_CHARS:
            message = message[: _MAX_NOTE_CHARS - 3] + "..."
        notes.append(f"pypdf: {message}")


def _install() -> None:
    """Once per process: pypdf's warnings go to notes, not to the terminal."""
    global _installed
    with _install_lock:
        if not _installed:
            logger = logging.getLogger("pypdf")
            logger.addHandler(_PypdfNotes(logging.WARNING))
            logger.propagate = False
            _installed = True


@contextmanager
def _logged_notes() -> Iterator[list[str]]:
    _install()
    outer = getattr(_capture, "notes", None)
    collected: list[str] = []
    _capture.notes = collected
    try:
        yield collected
    finally:
        _capture.notes = outer


def _summarise(logged: list[str]) -> list[str]:
    unique = list(dict.fromkeys(logged))
    if len(unique) > _MAX_LOG_NOTES:
        extra = len(unique) - _MAX_LOG_NOTES
        unique = [*unique[:_MAX_LOG_NOTES], f"pypdf: ... and {extra} more warning(s)"]
    return unique


def _page_list(numbers: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3, 7'"""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _pages_note(numbers: list[int], what: str) -> str:
    if len(numbers) == 1:
        return f"page {numbers[0]} {what}"
    return f"pages {_page_list(numbers)} {what}"


def broken(label: str, exc: BaseException) -> Unreadable:
    reason = str(exc).strip() or type(exc).__name__
    return Unreadable(
        f"{label} is not a readable PDF ({reason}): it may be truncated or damaged; "
        "re-export it, or repair it (e.g. qpdf in.pdf out.pdf), and run again"
    )


def too_many_pages(label: str, count: int, max_pages: int) -> TooLarge:
    return TooLarge(
        f"{label} has {count:,} pages, over the {max_pages:,} one PDF may have; " + _SPLIT_IT
    )


def needs_password(label: str) -> EncryptedDocument:
    return EncryptedDocument(
        f"{label} is encrypted and needs a password; save a copy without the "
        "password (e.g. qpdf --decrypt --password=... in.pdf out.pdf) and read that"
    )


def over_budget(label: str, budget_s: float, done: int, pages: int) -> TooLarge:
    return TooLarge(
        f"{label}: reading its text took over {budget_s:,.0f} s ({done:,} of "
        f"{pages:,} pages read), too long for one file; " + _SPLIT_IT
    )


def _open(data: bytes, label: str, notes: list[str]) -> PdfReader:
    """Open a PDF, decrypting it with the empty password if it is encrypted."""
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            if not reader.decrypt(""):
                raise needs_password(label)
            notes.append("PDF opened with the empty password")
        return reader
    except EncryptedDocument:
        raise
    except DependencyError as exc:
        raise EncryptedDocument(
            f"{label} is encrypted with AES, which pypdf reads only with the 'cryptography' "
            "package: pip install cryptography, or save a copy without encryption"
        ) from exc
    except Exception as exc:
        raise broken(label, exc) from exc


def read_text(
    data: bytes,
    label: str,
    *,
    max_pages: int = MAX_PAGES,
    budget_s: float = TEXT_BUDGET_S,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[tuple[Section, ...], tuple[str, ...]]:
    """The text of each page that has some, numbered from 1; and notes. ``label`` names the file
    in messages. Raises ``TooLarge`` for more than ``max_pages`` pages, or when reading takes
    more than ``budget_s`` seconds by ``clock``."""
    notes: list[str] = []
    with _logged_notes() as logged:
        reader = _open(data, label, notes)
        try:
            pages = list(reader.pages)
        except Exception as exc:
            raise broken(label, exc) from exc
        if len(pages) > max_pages:
            raise too_many_pages(label, len(pages), max_pages)
        texts = PageTexts()
        started = clock()
        for number, page in enumerate(pages, start=1):
            if clock() - started > budget_s:
                raise over_budget(label, budget_s, number - 1, len(pages))
            texts.add(number, page)
    notes.extend(texts.notes())
    notes.extend(_summarise(logged))
    if texts.sections:
        return tuple(texts.sections), tuple(notes)
    raise no_text(label, len(pages), len(texts.failed))


@dataclass
class PageTexts:
    """The text of a PDF's pages as they are read, and which pages had none."""

    sections: list[Section] = field(default_factory=list)
    blank: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    replaced: list[int] = field(default_factory=list)

    def add(self, number: int, page: PageObject) -> None:
        try:
            text = page.extract_text()
        except Exception:
            text = None
        self.add_text(number, text)

    def add_text(self, number: int, text: str | None) -> None:
        """A page's text as the extractor gave it; ``None``: the page could not be read."""
        if text is None:
            self.failed.append(number)
            return
        if _SURROGATE.search(text):
            self.replaced.append(number)
            text = _SURROGATE.sub("\ufffd", text)
        text = text.strip()
        if text:
            self.sections.append(Section(text, page=number))
        else:
            self.blank.append(number)

    def notes(self) -> list[str]:
        notes: list[str] = []
        if self.failed:
            notes.append(_pages_note(self.failed, "could not be read; left out"))
        if self.replaced:
            notes.append(
                _pages_note(
                    self.replaced, "had characters with no Unicode value, replaced with U+FFFD"
                )
            )
        if self.blank and self.sections:
            blank = self.blank
            notes.append(_pages_note(blank, "has no text" if len(blank) == 1 else "have no text"))
        return notes


def no_text(label: str, pages: int, failed: int) -> EmptyDocument | Unreadable:
    """The error for a PDF none of whose pages gave text."""
    if not pages:
        return EmptyDocument(f"{label} has no pages")
    if failed == pages:
        return Unreadable(
            f"{label}: no page of its {pages} could be read; it may be damaged: re-export "
            "or repair it (e.g. qpdf in.pdf out.pdf) and run again"
        )
    return EmptyDocument(
        f"{label} has no extractable text in its {pages} page(s) (a scan, or images "
        'only?): set inputs.scans = "attach" to send such PDFs to the model as documents'
    )


def attachments(
    data: bytes,
    label: str,
    *,
    max_pages: int = MAX_PART_PAGES,
    max_bytes: int = MAX_PART_BYTES,
    max_total_pages: int = MAX_PAGES,
) -> tuple[tuple[Attachment, ...], tuple[str, ...]]:
    """The PDF as document blocks: whole if it fits, else parts of at most ``max_pages`` pages
    and ``max_bytes`` bytes, each with its page range. An encrypted PDF that opens with the
    empty password is sent decrypted. More than ``max_total_pages`` pages is ``TooLarge``."""
    notes: list[str] = []
    with _logged_notes() as logged:
        reader = _open(data, label, notes)
        try:
            count = len(reader.pages)
            if count == 0:
                raise EmptyDocument(f"{label} has no pages")
            if count > max_total_pages:
                raise too_many_pages(label, count, max_total_pages)
            if not reader.is_encrypted and count <= max_pages and len(data) <= max_bytes:
                parts = [Attachment("application/pdf", data, (1, count))]
            else:
                parts = _split(reader, count, label, max_pages, max_bytes)
        except (EmptyDocument, TooLarge):
            raise
        except Exception as exc:
            raise broken(label, exc) from exc
    if reader.is_encrypted:
        notes.append("sent decrypted")
    if len(parts) > 1:
        notes.append(f"split into {len(parts)} parts of at most {max_pages} pages")
    notes.extend(_summarise(logged))
    return tuple(parts), tuple(notes)


def _split(
    reader: PdfReader, count: int, label: str, max_pages: int, max_bytes: int
) -> list[Attachment]:
    todo = [(start, min(start + max_pages, count)) for start in range(0, count, max_pages)]
    parts: list[Attachment] = []
    while todo:
        start, stop = todo.pop(0)
        blob = _write(reader, start, stop)
        if len(blob) <= max_bytes:
            parts.append(Attachment("application/pdf", blob, (start + 1, stop)))
        elif stop - start > 1:
            middle = (start + stop) // 2
            todo[:0] = [(start, middle), (middle, stop)]
        else:
            raise TooLarge(
                f"{label}: page {start + 1} alone is {len(blob) / 1e6:.1f} MB, over the "
                f"{max_bytes / 1e6:.0f} MB one document block may hold; reduce its image "
                'resolution, or use inputs.mode = "text"'
            )
    return parts


def _write(reader: PdfReader, start: int, stop: int) -> bytes:
    writer = PdfWriter()
    for index in range(start, stop):
        writer.add_page(reader.pages[index])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pages_pdf(data: bytes, label: str, leave_out: set[int]) -> tuple[bytes, list[int]]:
    """A PDF of the pages of ``data`` not in ``leave_out`` (1-based), and their numbers: the
    pages of a PDF whose text was read that have none (scanned pages), to be attached."""
    with _logged_notes():
        reader = _open(data, label, [])
        try:
            numbers = [n for n in range(1, len(reader.pages) + 1) if n not in leave_out]
            if not numbers:
                return b"", numbers
            writer = PdfWriter()
            for number in numbers:
                writer.add_page(reader.pages[number - 1])
            out = io.BytesIO()
            writer.write(out)
        except Exception as exc:
            raise broken(label, exc) from exc
    return out.getvalue(), numbers
