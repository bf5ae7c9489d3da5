"""``read_document``: one candidate to one ``Document``, or an ``InputProblem`` that says why not.

Blocking: the runner calls it in a worker thread. The file is read once; its bytes give the
content hash, the id and the text (or the attachments).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from pipeline.core.errors import (
    BinaryFile,
    EmptyDocument,
    EmptyFile,
    InputProblem,
    SecretFile,
    Skipped,
    TooLarge,
    Unreadable,
)
from pipeline.core.models import Attachment, Document, Section
from pipeline.core.sensitive import secret_by_content, secret_by_name
from pipeline.readers import images
from pipeline.readers.formats import Format, Kind, is_binary_suffix, lookup, suffix_of
from pipeline.readers.options import Candidate, InputOptions
from pipeline.readers.text import NotText, decode, may_hold_nul

PdfTextReader = Callable[[bytes, str], tuple[tuple[Section, ...], tuple[str, ...]]]
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
# Text is read this much at a time, and the read stops at the first NUL byte (binary): a
# huge file of zeros (a sparse file, once inputs.max_file_bytes is raised) is never read whole.
_TEXT_CHUNK = 4 * 1024 * 1024


def document_id(source: str, content_hash: str) -> str:
    """Stable id: the same file at the same place with the same bytes always gets the same id."""
    key = f"{source}\0{content_hash}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(key).hexdigest()[:16]


def too_large(label: str, size: int, limit: int) -> TooLarge:
    return TooLarge(
        f"{label} is {size:,} bytes, over inputs.max_file_bytes ({limit:,}): raise the limit "
        "or leave the file out with inputs.exclude"
    )


def secret_file(label: str, reason: str) -> SecretFile:
    return SecretFile(
        f"{label} looks like credentials ({reason}), so it is not sent; if it is safe, set "
        "inputs.skip_secrets = false, or rename it"
    )


def image_in_text_mode(label: str) -> BinaryFile:
    return BinaryFile(
        f'{label} is an image, which is read only in attach mode: set inputs.mode = "attach" '
        "to send images to the model"
    )


def binary_file(label: str, what: str) -> BinaryFile:
    """``what``: the rest of a sentence that starts with the file's name."""
    return BinaryFile(f"{label} {what}; leave it out with inputs.exclude")


def read_bytes(
    path: Path,
    label: str,
    limit: int,
    *,
    identity: tuple[int, int] | None = None,
    text: bool = False,
) -> bytes:
    """The file's bytes, at most ``limit``; opening never blocks (a FIFO is refused).

    ``identity``: the (device, inode) discovery saw; a file swapped since (replaced, or made a
    link elsewhere) is refused, not read. ``text``: stop at the first chunk that holds a NUL
    byte (binary, unless the file starts as UTF-16/32): the bytes so far are returned."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError as exc:
        raise Unreadable(
            f"{label} no longer exists (removed after the inputs were listed)"
        ) from exc
    except PermissionError as exc:
        raise Unreadable(
            f"{label} cannot be read: permission denied; give the job's user read access, "
            "or leave it out with inputs.exclude"
        ) from exc
    except OSError as exc:
        raise Unreadable(f"{label} cannot be opened ({exc.strerror or exc})") from exc
    try:
        info = os.fstat(fd)
        if identity is not None and (info.st_dev, info.st_ino) != identity:
            raise Unreadable(
                f"{label} changed after the inputs were listed (replaced, or made a link to "
                "another file), so it was not read; run again to read what is there now"
            )
        if not stat.S_ISREG(info.st_mode):
            raise Skipped(f"{label} is not a regular file (a directory, pipe or device)")
        if info.st_size > limit:
            raise too_large(label, info.st_size, limit)
        with open(fd, "rb", closefd=False) as file:
            data = _read_until_nul(file, limit) if text else _read_all(file, info.st_size, limit)
    except OSError as exc:
        raise Unreadable(f"{label} could not be read ({exc.strerror or exc})") from exc
    finally:
        os.close(fd)
    if len(data) > limit:
        raise too_large(label, len(data), limit)
    return data


def _read_all(file: BinaryIO, size: int, limit: int) -> bytes:
    data = file.read(size + 1)
    if len(data) > size:  # it grew since the stat: read on, to the limit
        data += file.read(limit + 1 - len(data))
    return data


def _read_until_nul(file: BinaryIO, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while total <= limit and (chunk := file.read(min(_TEXT_CHUNK, limit + 1 - total))):
        chunks.append(chunk)
        total += len(chunk)
        if b"\0" in chunk and not may_hold_nul(chunks[0]):
            break  # binary: what was read says so
    return b"".join(chunks)


def read_each(
    candidates: list[Candidate], options: InputOptions, pdf_text: PdfTextReader | None
) -> list[Document | tuple[str, InputProblem]]:
    """Read each file, in this (worker) thread or process: its ``Document``, or its source and
    what went wrong."""
    items: list[Document | tuple[str, InputProblem]] = []
    for candidate in candidates:
        try:
            items.append(read_document(candidate, options, pdf_text=pdf_text))
        except InputProblem as problem:
            items.append((candidate.source, problem))
    return items


def read_document(
    candidate: Candidate, options: InputOptions, *, pdf_text: PdfTextReader | None = None
) -> Document:
    """Read one file. Raises ``InputProblem`` subclasses, never anything else on bad input.
    ``pdf_text(data, label)`` extracts a PDF's text (a run passes its ``PdfTextPool``'s
    ``read_text``); by default ``inputs.pdf_text``'s reader (``pdf`` or ``pdfium``), in this
    thread."""
    label, name = candidate.source, candidate.path.name
    found = _format_of(candidate, options)
    data = _fetch(candidate, options, found)
    if not data:
        raise EmptyFile(f"{label} is empty (0 bytes): there is nothing to send")
    content_hash = hashlib.sha256(data).hexdigest()

    sections: tuple[Section, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    language = None
    scanned = 0
    kind: Kind
    if found.kind == "pdf":
        kind = "pdf"
        sections, attachments, notes, scanned = _read_pdf(data, label, name, options, pdf_text)
    elif found.kind == "image":
        kind = "image"
        if options.skip_secrets:
            _scan_attached(data, label, name, pdf_text=False)
        attachment, notes = images.attachment(data, label, found.media_type or "")
        attachments = (attachment,)
    else:
        kind, language, sections, notes = _read_text(data, label, name, found, options)

    return Document(
        doc_id=document_id(candidate.source, content_hash),
        source=candidate.source,
        path=candidate.path,
        kind=kind,
        content_hash=content_hash,
        size_bytes=len(data),
        sections=sections,
        attachments=attachments,
        language=language,
        notes=notes,
        scanned_pages=scanned,
    )


def local_document_id(candidate: Candidate, options: InputOptions) -> str | None:
    """The ``doc_id`` ``read_document`` would give a file on disk, from its bytes alone (read
    and hashed, not decoded or extracted): a re-run finds its finished documents without
    reading them. None for an object in storage, or a file ``read_document`` would refuse
    (it says why)."""
    if candidate.url is not None:
        return None
    try:
        data = _fetch(candidate, options, _format_of(candidate, options))
    except InputProblem:
        return None
    return document_id(candidate.source, hashlib.sha256(data).hexdigest()) if data else None


def _format_of(candidate: Candidate, options: InputOptions) -> Format:
    """The file's format by its name; refused before it is opened when its name says it holds
    credentials or is binary, or it is an image in text mode."""
    label, path, name = candidate.source, candidate.path, candidate.path.name
    # A link's target's name; a file that is not a link has its own (its folders' links
    # do not change it): one lstat, not one per folder of the path
    real_name = os.path.basename(os.path.realpath(path)) if os.path.islink(path) else name
    if options.skip_secrets and (reason := secret_by_name(name) or secret_by_name(real_name)):
        raise secret_file(label, reason)
    if is_binary_suffix(name):
        raise binary_file(label, f"is a {suffix_of(name)} file, not text")
    found = lookup(name, code=options.code)
    if found.kind == "image" and options.mode != "attach":
        raise image_in_text_mode(label)
    return found


def _fetch(candidate: Candidate, options: InputOptions, found: Format) -> bytes:
    """The file's bytes, from disk or object storage, within ``inputs.max_file_bytes``."""
    if candidate.url is not None:  # in object storage
        from pipeline.readers import remote

        return remote.read_bytes(candidate, options.max_file_bytes)
    text = found.kind not in ("pdf", "image")
    return read_bytes(
        candidate.path,
        candidate.source,
        options.max_file_bytes,
        identity=candidate.identity,
        text=text,
    )


def _read_pdf(
    data: bytes, label: str, name: str, options: InputOptions, pdf_text: PdfTextReader | None
) -> tuple[tuple[Section, ...], tuple[Attachment, ...], tuple[str, ...], int]:
    """A PDF's text sections (text mode) or attachments (attach mode), notes, and how many
    pages go as a document because they have no text layer (``inputs.scans = "attach"``:
    decided here, after the text extraction reported none). ``pdf_text`` extracts the text
    (a run's ``PdfTextPool``); by default ``inputs.pdf_text``'s reader, in this thread."""
    from pipeline.readers import pdf  # pypdf: only when a PDF is read

    if options.mode == "attach":
        if options.skip_secrets:
            _scan_attached(data, label, name, pdf_text=True)
        attachments, notes = pdf.attachments(data, label)
        return (), attachments, notes, 0
    try:
        sections, notes = (pdf_text or _text_reader(options))(data, label)
    except EmptyDocument:  # no text layer (or no pages: attachments says so again)
        if options.scans != "attach":
            raise
        if options.skip_secrets:
            _scan_attached(data, label, name, pdf_text=False)
        attachments, notes = _scanned_pdf(data, label)
        return (), attachments, notes, _pages(attachments)
    text = "\n".join(section.text for section in sections)
    if options.skip_secrets and (reason := secret_by_content(name, text)):
        raise secret_file(label, reason)
    if options.scans != "attach":
        return sections, (), notes, 0
    attachments, more, scanned = _scanned_pages(data, label, sections)
    if attachments and options.skip_secrets:
        _scan_attached(data, label, name, pdf_text=False)
    return sections, attachments, (*notes, *more), scanned


def _text_reader(options: InputOptions) -> PdfTextReader:
    """``inputs.pdf_text``'s ``read_text``, in this thread."""
    if options.pdf_text == "pdfium":
        from pipeline.readers import pdfium  # PDFium: only when chosen and a PDF is read

        return pdfium.read_text
    from pipeline.readers import pdf

    return pdf.read_text


def _scan_attached(data: bytes, label: str, name: str, *, pdf_text: bool) -> None:
    """The content secret scan for a file sent as it is (attach mode): its raw bytes (PDF
    metadata and uncompressed streams, an image's text chunks and EXIF), and a PDF's text.
    Text drawn as pixels (a screenshot of a key) is not found: that needs OCR."""
    if reason := secret_by_content(name, data.decode("latin-1")):
        raise secret_file(label, reason)
    if not pdf_text:
        return
    from pipeline.readers import pdf  # pypdf: only when a PDF is read

    try:
        sections, _ = pdf.read_text(data, label)
    except InputProblem:
        return  # no text to scan (a scan, a damaged file): attachments() says what it can
    if reason := secret_by_content(name, "\n".join(section.text for section in sections)):
        raise secret_file(label, reason)


def _scanned_pdf(data: bytes, label: str) -> tuple[tuple[Attachment, ...], tuple[str, ...]]:
    """A PDF with no text layer (a scan), as document parts for the model to read
    (``inputs.scans = "attach"``): decided here, after the text extraction found nothing."""
    from pipeline.readers import pdf  # pypdf: only when a PDF is read

    attachments, notes = pdf.attachments(data, label)
    pages = _pages(attachments)
    return attachments, (f"no text layer: its {pages:,} page(s) sent as a document", *notes)


def _scanned_pages(
    data: bytes, label: str, sections: tuple[Section, ...]
) -> tuple[tuple[Attachment, ...], tuple[str, ...], int]:
    """The pages of a PDF with text that have none (scanned pages, or pages whose text could
    not be read), as document parts beside the text, with notes and their number; none when
    every page has text."""
    from pipeline.readers import pdf  # pypdf: only when a PDF is read

    texted = {section.page for section in sections if section.page is not None}
    if not texted:
        return (), (), 0
    subset, numbers = pdf.pages_pdf(data, label, texted)
    if not numbers:
        return (), (), 0
    parts, _ = pdf.attachments(subset, label)
    placed = tuple(  # each part's pages, as numbered in the whole PDF
        replace(part, pages=(numbers[part.pages[0] - 1], numbers[part.pages[1] - 1]))
        if part.pages
        else part
        for part in parts
    )
    shown = ", ".join(str(n) for n in numbers[:20]) + (", ..." if len(numbers) > 20 else "")
    return placed, (f"page(s) {shown} without text sent as a document",), len(numbers)


def _pages(attachments: tuple[Attachment, ...]) -> int:
    return sum(last - first + 1 for first, last in (a.pages for a in attachments if a.pages))


def _read_text(
    data: bytes, label: str, name: str, found: Format, options: InputOptions
) -> tuple[Kind, str | None, tuple[Section, ...], tuple[str, ...]]:
    try:
        decoded = decode(data)
    except NotText as exc:
        if exc.nul:
            named = "is named as text but holds" if found.kind in ("text", "markdown") else "holds"
            raise binary_file(label, f"{named} binary data (NUL bytes)") from None
        if found.kind in ("text", "markdown"):
            raise Unreadable(
                f"{label} is not text in any encoding that could be detected; convert it to "
                "UTF-8 and run again"
            ) from None
        raise binary_file(label, "holds binary data: no text encoding fits it") from None
    if options.skip_secrets and (reason := secret_by_content(name, decoded.text)):
        raise secret_file(label, reason)
    if not decoded.text.strip():
        raise EmptyFile(f"{label} holds only whitespace: there is nothing to send")
    kind: Kind = found.kind or "text"
    language = found.language if kind == "code" else None
    notes = (decoded.note,) if decoded.note else ()
    return kind, language, (Section(decoded.text),), notes
