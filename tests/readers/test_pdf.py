"""PDFs: text per page, encryption, damage of every kind, pypdf's log, and parts for the model.

The text cases run for both extractors (``inputs.pdf_text``: pypdf and PDFium); where they
differ on a damaged file, the test says how."""

from __future__ import annotations

import functools
import io
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from pipeline.core.errors import (
    EmptyDocument,
    EncryptedDocument,
    InputProblem,
    TooLarge,
    Unreadable,
)
from pipeline.core.models import Attachment, Document
from pipeline.readers import Candidate, read_document
from pipeline.readers import pdf as pdf_reader
from tests.readers.support import encrypted, make_samples, options, page_count, pdf_bytes, write

THREE_PAGES = pdf_bytes(["Page one text.", "Page two text.", "Page three text."])
EXTRACTORS = pytest.mark.parametrize("pdf_text", ["pypdf", "pdfium"])


def read(tmp_path: Path, data: bytes, name: str = "doc.pdf", **kwargs: object) -> Document:
    path = write(tmp_path, name, data)
    return read_document(Candidate(path, name), options(tmp_path, **kwargs))  # type: ignore[arg-type]


_read = read


def attempt(
    tmp_path: Path, data: bytes, name: str = "doc.pdf", pdf_text: str = "pypdf"
) -> Document | InputProblem:
    """The document, or the problem read_document raised: anything else escapes the test."""
    try:
        return read(tmp_path, data, name, pdf_text=pdf_text)
    except InputProblem as problem:
        return problem


def with_filter(data: bytes, page_text: str, filter_name: bytes) -> bytes:
    """The PDF with one page's content stream claiming a filter it was not written with."""
    stream = make_samples._content(page_text)
    old = b"<< /Length %d >>\nstream\n%s" % (len(stream), stream)
    assert old in data
    return data.replace(
        old, b"<< /Length %d /Filter %s >>\nstream\n%s" % (len(stream), filter_name, stream)
    )


def with_broken_xref(data: bytes) -> bytes:
    """Every offset in the cross-reference table wrong: pypdf repairs it, and says so."""
    head, _, tail = data.partition(b"xref\n")
    count = int(tail.split(b"\n", 2)[0].split()[1])
    table = b"0 %d\n0000000000 65535 f \n" % count + b"0000000001 00000 n \n" * (count - 1)
    return head + b"xref\n" + table + tail[tail.index(b"trailer") :]


# ---- text ----------------------------------------------------------------------------------


@EXTRACTORS
def test_text_per_page_with_page_numbers(tmp_path: Path, pdf_text: str) -> None:
    document = read(tmp_path, THREE_PAGES, pdf_text=pdf_text)
    assert document.kind == "pdf"
    assert [(s.page, s.text) for s in document.sections] == [
        (1, "Page one text."),
        (2, "Page two text."),
        (3, "Page three text."),
    ]
    assert document.notes == ()
    assert document.attachments == ()


@EXTRACTORS
def test_pages_without_text_are_noted(tmp_path: Path, pdf_text: str) -> None:
    document = read(
        tmp_path, pdf_bytes(["one", None, None, "four", None, "six"]), pdf_text=pdf_text
    )
    assert [s.page for s in document.sections] == [1, 4, 6]
    assert document.notes == ("pages 2-3, 5 have no text",)
    assert read(tmp_path, pdf_bytes(["one", None]), pdf_text=pdf_text).notes == (
        "page 2 has no text",
    )


@EXTRACTORS
def test_a_pdf_without_text_says_to_attach_scans(tmp_path: Path, pdf_text: str) -> None:
    with pytest.raises(
        EmptyDocument, match=r'scan\.pdf has no extractable text .*inputs\.scans = "attach"'
    ):
        read(tmp_path, pdf_bytes([None, None]), "scan.pdf", pdf_text=pdf_text)


@EXTRACTORS
def test_with_scans_attached_a_pdf_without_text_becomes_a_document(
    tmp_path: Path, pdf_text: str
) -> None:
    read = functools.partial(_read, pdf_text=pdf_text)
    scan = read(tmp_path, pdf_bytes([None, None]), "scan.pdf", scans="attach")
    assert (scan.sections, scan.scanned_pages) == ((), 2)
    [part] = scan.attachments
    assert (part.media_type, part.pages) == ("application/pdf", (1, 2))
    assert scan.notes[0] == "no text layer: its 2 page(s) sent as a document"
    mixed = read(tmp_path, pdf_bytes(["Report", None, "Annex"]), "mixed.pdf", scans="attach")
    assert ([s.page for s in mixed.sections], mixed.scanned_pages) == ([1, 3], 1)
    [page] = mixed.attachments  # the page without text, numbered as in the whole PDF
    assert page.pages == (2, 2)
    assert page_count(page.data) == 1
    text = read(tmp_path, pdf_bytes(["Report", "Annex"]), "text.pdf", scans="attach")
    assert (text.attachments, text.scanned_pages) == ((), 0)  # every page has text
    with pytest.raises(EmptyDocument, match="has no pages"):
        read(tmp_path, pdf_bytes([]), "none.pdf", scans="attach")


@EXTRACTORS
def test_a_pdf_with_no_pages_is_empty(tmp_path: Path, pdf_text: str) -> None:
    with pytest.raises(EmptyDocument, match=r"doc\.pdf has no pages"):
        read(tmp_path, pdf_bytes([]), pdf_text=pdf_text)


@EXTRACTORS
def test_non_ascii_text_survives(tmp_path: Path, pdf_text: str) -> None:
    document = read(tmp_path, pdf_bytes(["Größe: 3 €, café déjà vu"]), pdf_text=pdf_text)
    assert document.text == "Größe: 3 €, café déjà vu"


@EXTRACTORS
def test_a_pdf_with_the_empty_user_password_is_opened_and_noted(
    tmp_path: Path, pdf_text: str
) -> None:
    data = encrypted(THREE_PAGES, "", owner_password="owner")
    document = read(tmp_path, data, pdf_text=pdf_text)
    assert document.sections[0].text == "Page one text."
    assert "PDF opened with the empty password" in document.notes


@EXTRACTORS
def test_a_pdf_that_needs_a_password_is_an_encrypted_document(
    tmp_path: Path, pdf_text: str
) -> None:
    with pytest.raises(EncryptedDocument, match=r"locked\.pdf is encrypted and needs a password"):
        read(tmp_path, encrypted(THREE_PAGES, "secret"), "locked.pdf", pdf_text=pdf_text)


@EXTRACTORS
def test_aes_encryption_is_reported_not_crashed_on(tmp_path: Path, pdf_text: str) -> None:
    # An AES-256 (R6) encryption dictionary: without the cryptography package pypdf cannot even
    # check a password, and says so with a DependencyError.
    aes = (
        b"/Encrypt << /Filter /Standard /V 5 /R 6 /Length 256 /P -4"
        b" /O <" + b"00" * 48 + b"> /U <" + b"11" * 48 + b"> /OE <" + b"22" * 32 + b">"
        b" /UE <" + b"33" * 32 + b"> /Perms <" + b"44" * 16 + b">"
        b" /CF << /StdCF << /CFM /AESV3 /AuthEvent /DocOpen /Length 32 >> >>"
        b" /StmF /StdCF /StrF /StdCF >> /ID [<" + b"55" * 16 + b"> <" + b"55" * 16 + b">]"
    )
    data = THREE_PAGES.replace(b"/Root 1 0 R", b"/Root 1 0 R " + aes)
    with pytest.raises(EncryptedDocument, match=r"aes\.pdf is encrypted"):
        read(tmp_path, data, "aes.pdf", pdf_text=pdf_text)


@EXTRACTORS
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.99])
def test_a_truncated_pdf_is_unreadable(tmp_path: Path, keep: float, pdf_text: str) -> None:
    data = pdf_bytes(["x" * 500] * 5)
    result = attempt(tmp_path, data[: int(len(data) * keep)], "cut.pdf", pdf_text)
    if isinstance(result, Document):  # pypdf rebuilt what it could: then it says so
        assert pdf_text == "pypdf"
        assert any(note.startswith("pypdf:") for note in result.notes)
    else:
        assert isinstance(result, Unreadable)
        assert "cut.pdf is not a readable PDF" in result.message
        assert "truncated or damaged" in result.message


@EXTRACTORS
def test_bytes_that_are_not_a_pdf_are_unreadable(tmp_path: Path, pdf_text: str) -> None:
    with pytest.raises(Unreadable, match=r"fake\.pdf is not a readable PDF"):
        read(tmp_path, b"Just text pretending to be a PDF.\n", "fake.pdf", pdf_text=pdf_text)


def test_a_page_tree_loop_is_unreadable(tmp_path: Path) -> None:
    data = THREE_PAGES.replace(b"[4 0 R 6 0 R 8 0 R]", b"[4 0 R 2 0 R 8 0 R]")
    with pytest.raises(Unreadable, match="not a readable PDF"):
        read(tmp_path, data)


def test_pdfium_reads_the_pages_around_a_page_tree_loop_and_says_what_it_left_out(
    tmp_path: Path,
) -> None:
    data = THREE_PAGES.replace(b"[4 0 R 6 0 R 8 0 R]", b"[4 0 R 2 0 R 8 0 R]")
    document = read(tmp_path, data, pdf_text="pdfium")
    assert [s.text for s in document.sections] == ["Page one text.", "Page three text."]
    assert document.notes == ("page 3 could not be read; left out",)  # PDFium's numbering
    nothing = THREE_PAGES.replace(b"[4 0 R 6 0 R 8 0 R]", b"[2 0 R 2 0 R 2 0 R]")
    with pytest.raises(Unreadable, match=r"doc\.pdf: no page of its 3 could be read"):
        read(tmp_path, nothing, pdf_text="pdfium")


def test_deep_nesting_is_unreadable_not_a_recursion_crash(tmp_path: Path) -> None:
    data = THREE_PAGES.replace(b"/Type /Catalog", b"/Type /Catalog /X " + b"[" * 5000 + b"]" * 5000)
    with pytest.raises(Unreadable):
        read(tmp_path, data)
    assert read(tmp_path, data, pdf_text="pdfium").text.endswith("Page three text.")


def test_pdfium_line_ends_become_newlines(tmp_path: Path) -> None:
    document = read(tmp_path, pdf_bytes(["First line.\nSecond line."]), pdf_text="pdfium")
    assert document.text == "First line.\nSecond line."  # PDFium gives "\r\n"


def test_a_page_that_cannot_be_decoded_is_left_out_and_noted(tmp_path: Path) -> None:
    data = with_filter(THREE_PAGES, "Page two text.", b"/FooDecode")
    document = read(tmp_path, data)
    assert [s.page for s in document.sections] == [1, 3]
    assert "page 2 could not be read; left out" in document.notes


def test_when_no_page_can_be_read_the_pdf_is_unreadable(tmp_path: Path) -> None:
    data = with_filter(pdf_bytes(["only page"]), "only page", b"/FooDecode")
    with pytest.raises(Unreadable, match="no page of its 1 could be read"):
        read(tmp_path, data)


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.names: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.names.append(record.name)


def test_pypdf_warnings_become_notes_and_stay_off_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Recorder()  # what an application's logging set-up would see
    logging.getLogger().addHandler(root)
    try:
        document = read(tmp_path, with_broken_xref(THREE_PAGES))
    finally:
        logging.getLogger().removeHandler(root)
    assert [s.page for s in document.sections] == [1, 2, 3]
    pypdf_notes = [n for n in document.notes if n.startswith("pypdf: ")]
    assert pypdf_notes
    assert len(pypdf_notes) <= 6  # at most five, and a count of the rest
    assert re.fullmatch(r"pypdf: \.\.\. and \d+ more warning\(s\)", pypdf_notes[-1])
    assert not [name for name in root.names if name.startswith("pypdf")]
    assert capsys.readouterr().err == ""


def test_pypdf_notes_stay_with_the_document_their_thread_read(tmp_path: Path) -> None:
    noisy = write(tmp_path, "noisy.pdf", with_broken_xref(THREE_PAGES))
    clean = write(tmp_path, "clean.pdf", THREE_PAGES)
    opts = options(tmp_path)
    jobs = [Candidate(noisy if i % 2 else clean, "x.pdf") for i in range(40)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        documents = list(pool.map(lambda c: read_document(c, opts), jobs))
    for candidate, document in zip(jobs, documents, strict=True):
        has_notes = any(n.startswith("pypdf") for n in document.notes)
        assert has_notes == (candidate.path == noisy)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(min_value=0, max_value=len(THREE_PAGES)))
@example(cut=0)
@example(cut=len(THREE_PAGES) // 2)
@example(cut=len(THREE_PAGES))
@EXTRACTORS
def test_any_truncation_is_a_document_or_a_problem(tmp_path: Path, cut: int, pdf_text: str) -> None:
    """Any prefix of the file is the document it still holds (only its own pages' text,
    never bytes of the file read as text) or a problem that names the file; nothing else
    escapes (``attempt`` lets any other exception through)."""
    result = attempt(tmp_path, THREE_PAGES[:cut], pdf_text=pdf_text)
    if isinstance(result, Document):
        assert result.kind == "pdf"
        assert set(result.text.split()) <= {"Page", "one", "two", "three", "text."}
        assert result.text.strip(), "a document with no text should have been a problem"
    else:
        assert "doc.pdf" in result.message
    if cut == len(THREE_PAGES):
        assert isinstance(result, Document)
        assert "Page three text." in result.text


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=len(THREE_PAGES) - 1), st.binary(max_size=4)),
        min_size=1,
        max_size=6,
    )
)
@EXTRACTORS
def test_any_corruption_is_a_document_or_a_problem(
    tmp_path: Path, edits: list[tuple[int, bytes]], pdf_text: str
) -> None:
    data = bytearray(THREE_PAGES)
    for at, replacement in edits:
        data[at : at + len(replacement)] = replacement
    result = attempt(tmp_path, bytes(data), "mangled.pdf", pdf_text)
    if isinstance(result, InputProblem):
        assert "mangled.pdf" in result.message


def test_the_sample_generator_writes_pdfs_pypdf_reads() -> None:
    reader = PdfReader(io.BytesIO(pdf_bytes(["a", "b"], title="T")))
    assert [p.extract_text() for p in reader.pages] == ["a", "b"]
    assert reader.metadata is not None
    assert reader.metadata.title == "T"


# ---- attach mode ---------------------------------------------------------------------------


def test_a_small_pdf_is_one_attachment_of_its_own_bytes(tmp_path: Path) -> None:
    document = read(tmp_path, THREE_PAGES, mode="attach")
    assert document.kind == "pdf"
    assert document.sections == ()
    assert document.attachments == (Attachment("application/pdf", THREE_PAGES, (1, 3)),)
    assert document.notes == ()


def test_a_long_pdf_is_split_into_parts_of_100_pages(tmp_path: Path) -> None:
    data = pdf_bytes([f"This is page {n}." for n in range(1, 251)])
    document = read(tmp_path, data, mode="attach")
    assert [a.pages for a in document.attachments] == [(1, 100), (101, 200), (201, 250)]
    for attachment in document.attachments:
        assert attachment.media_type == "application/pdf"
        reader = PdfReader(io.BytesIO(attachment.data))
        assert attachment.pages is not None
        first, last = attachment.pages
        assert len(reader.pages) == last - first + 1
        assert reader.pages[0].extract_text() == f"This is page {first}."
        assert reader.pages[-1].extract_text() == f"This is page {last}."
    assert "split into 3 parts of at most 100 pages" in document.notes


@given(
    pages=st.integers(min_value=1, max_value=30), max_pages=st.integers(min_value=1, max_value=12)
)
@settings(max_examples=25, deadline=None)
def test_parts_cover_every_page_once_within_the_limits(pages: int, max_pages: int) -> None:
    data = pdf_bytes([f"page {n} " + "words " * 40 for n in range(1, pages + 1)])
    max_bytes = 6_000
    parts, _ = pdf_reader.attachments(data, "x.pdf", max_pages=max_pages, max_bytes=max_bytes)
    covered = [n for part in parts if part.pages for n in range(part.pages[0], part.pages[1] + 1)]
    assert covered == list(range(1, pages + 1))
    for part in parts:
        assert part.pages is not None
        assert part.pages[1] - part.pages[0] + 1 <= max_pages
        assert len(part.data) <= max_bytes or part.data == data
        assert page_count(part.data) == part.pages[1] - part.pages[0] + 1


def test_parts_over_the_byte_limit_are_halved(tmp_path: Path) -> None:
    data = pdf_bytes(["words " * 300 for _ in range(8)])
    parts, _ = pdf_reader.attachments(data, "x.pdf", max_pages=100, max_bytes=len(data) // 3)
    assert len(parts) > 1
    assert all(len(p.data) <= len(data) // 3 for p in parts)


def test_a_single_page_over_the_byte_limit_is_too_large() -> None:
    data = pdf_bytes(["words " * 300])
    with pytest.raises(TooLarge, match=r"big\.pdf: page 1 alone is"):
        pdf_reader.attachments(data, "big.pdf", max_bytes=100)


def test_an_empty_password_pdf_is_sent_decrypted(tmp_path: Path) -> None:
    document = read(tmp_path, encrypted(THREE_PAGES, "", owner_password="owner"), mode="attach")
    [attachment] = document.attachments
    reader = PdfReader(io.BytesIO(attachment.data))
    assert not reader.is_encrypted
    assert reader.pages[1].extract_text() == "Page two text."
    assert "sent decrypted" in document.notes


def test_attach_mode_refuses_encrypted_and_broken_pdfs(tmp_path: Path) -> None:
    with pytest.raises(EncryptedDocument):
        read(tmp_path, encrypted(THREE_PAGES, "secret"), mode="attach")
    with pytest.raises(Unreadable):
        read(tmp_path, THREE_PAGES[:300], mode="attach")
    with pytest.raises(EmptyDocument):
        read(tmp_path, pdf_bytes([]), mode="attach")


def test_attach_mode_does_not_need_text(tmp_path: Path) -> None:
    document = read(tmp_path, pdf_bytes([None, None]), "scan.pdf", mode="attach")
    assert [a.pages for a in document.attachments] == [(1, 2)]
