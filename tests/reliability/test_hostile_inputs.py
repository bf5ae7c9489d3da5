"""Hostile inputs at the readers: every one ends as a Document or an InputProblem whose message
names the file, says what went wrong and what to do; nothing else escapes, nothing hangs, and
whatever is read can be put in a request body."""

from __future__ import annotations

import gzip
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config.load import parse_spec
from pipeline.config.spec import Job
from pipeline.core.errors import (
    BinaryFile,
    EmptyFile,
    EncryptedDocument,
    InputProblem,
    SecretFile,
    Skipped,
    TooLarge,
    Unreadable,
)
from pipeline.core.models import Document
from pipeline.readers import Candidate, discover, pdfium, read_document
from pipeline.readers import pdf as pdf_reader
from pipeline.shaping.chunking import split
from pipeline.shaping.prompts import placeholders, render, request_params
from tests.conftest import FakeClock
from tests.readers.support import found, options, png_bytes, write
from tests.reliability import support
from tests.reliability.support import TEN_PAGES


def attempt(path: Path, source: str, root: Path, **kwargs: object) -> Document | InputProblem:
    """The document, or the problem read_document raised: anything else fails the test."""
    try:
        return read_document(Candidate(path, source), options(root, **kwargs))  # type: ignore[arg-type]
    except InputProblem as problem:
        return problem


def read_as(tmp_path: Path, name: str, data: bytes, **kwargs: object) -> Document | InputProblem:
    return attempt(write(tmp_path, name, data), name, tmp_path, **kwargs)


def job(tmp_path: Path) -> Job:
    data = {
        "inputs": {"paths": [str(tmp_path)]},
        "prompt": {"template": "Read {name} ({path}, {source}, pages {pages}):\n{text}"},
        "model": {"name": "claude-haiku-4-5"},
    }
    return parse_spec(data, base_dir=tmp_path, name="t")


def request_bytes(document: Document, tmp_path: Path) -> bytes:
    """The request body the client would send for the document's first chunk, encoded as
    httpx encodes it: what failed for a file name that is not UTF-8."""
    the_job = job(tmp_path)
    chunk = split(document.sections, 150_000)[0] if document.sections else None
    text = chunk.text if chunk else ""
    prompt = render(the_job.template, placeholders(document, chunk, text))
    body = request_params(the_job, prompt)
    return httpx.Request("POST", "http://127.0.0.1/v1/messages", json=body).read()


def assert_actionable(problem: InputProblem, source: str, *advice: str) -> None:
    assert source in problem.message
    for words in advice:
        assert words in problem.message, problem.message


# ---- empty, binary, badly encoded -----------------------------------------------------------


@pytest.mark.parametrize("name", ["empty.txt", "empty.md", "empty.pdf", "empty.py", "empty"])
def test_a_zero_byte_file_is_skipped_as_empty(tmp_path: Path, name: str) -> None:
    problem = read_as(tmp_path, name, b"")
    assert isinstance(problem, EmptyFile)
    assert isinstance(problem, Skipped)  # status "skipped": nothing to fix, nothing sent
    assert_actionable(problem, name, "0 bytes", "nothing to send")


@pytest.mark.parametrize(
    "data",
    [
        png_bytes(),
        b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4,
        gzip.compress(b"a compressed report " * 50, mtime=0),
        b"SQLite format 3\x00" + bytes(100),
    ],
    ids=["png", "elf", "gzip", "sqlite"],
)
def test_binary_named_as_text_is_skipped(tmp_path: Path, data: bytes) -> None:
    problem = read_as(tmp_path, "notes.txt", data)
    assert isinstance(problem, BinaryFile)
    assert_actionable(problem, "notes.txt", "named as text but holds binary data", "inputs.exclude")


def test_binary_without_nul_bytes_named_as_text_is_an_error_to_fix(tmp_path: Path) -> None:
    rng = random.Random(7)
    noise = bytes(rng.randrange(1, 256) for _ in range(8_192))
    problem = read_as(tmp_path, "notes.txt", noise)
    assert isinstance(problem, Unreadable)  # status "error": the user said it was text
    assert_actionable(problem, "notes.txt", "not text in any encoding", "convert it to UTF-8")
    assert isinstance(read_as(tmp_path, "blob.dat", noise), BinaryFile)  # no such claim


def test_invalid_utf8_is_read_and_noted(tmp_path: Path) -> None:
    damaged = ("Prix: 12 € — réduction spéciale. " * 40).encode() + b"\xff\xfe" + b" fin."
    document = read_as(tmp_path, "damaged.txt", damaged)
    assert isinstance(document, Document)
    assert "\ufffd" in document.text
    assert document.notes == ("2 invalid UTF-8 byte sequence(s) replaced with U+FFFD",)
    legacy = read_as(tmp_path, "legacy.txt", "Café crème, naïve façade.".encode("latin-1"))
    assert isinstance(legacy, Document)
    assert legacy.text == "Café crème, naïve façade."
    assert legacy.notes == ("decoded as cp1252 (not UTF-8)",)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(min_size=1, max_size=3_000),
    name=st.sampled_from(["a.txt", "a.md", "a.py", "a.csv", "a.pdf", "noext", "a.weird"]),
)
def test_any_bytes_become_a_document_or_a_problem_and_a_sendable_request(
    tmp_path: Path, data: bytes, name: str
) -> None:
    result = read_as(tmp_path, name, data)
    if isinstance(result, Document):
        assert request_bytes(result, tmp_path)
    else:
        assert name in result.message


# ---- secrets by content ----------------------------------------------------------------------

TOKEN_BODY = "Qx7" * 20


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ('aws_secret_access_key = "' + TOKEN_BODY[:40] + '"', "AWS secret access key"),
        ("AWS_SECRET_ACCESS_KEY=" + TOKEN_BODY[:40], "AWS secret access key"),
        ("{'aws_secret_key': '" + TOKEN_BODY[:40] + "'}", "AWS secret access key"),
        ("key = 'sk-ant-api03-" + TOKEN_BODY + "'", "API token (sk-ant-...)"),
        ("token: ghp_" + TOKEN_BODY[:36], "API token (ghp_...)"),
        ("github_pat_" + TOKEN_BODY[:50], "API token (github_pat_...)"),
        ("SLACK=xoxb-1234567890-" + TOKEN_BODY[:12], "API token (xoxb-...)"),
        ("maps_key = AIza" + TOKEN_BODY[:35], "API token (AIza...)"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None),  # AWS docs
        ("aws_secret_access_key = " + TOKEN_BODY[:38], None),  # not 40 characters
        ("xghp_" + TOKEN_BODY[:36], None),  # inside a longer word
        ("the ghp_ and sk-ant- prefixes are documented", None),
    ],
)
def test_secrets_found_by_content(tmp_path: Path, text: str, found: str | None) -> None:
    result = read_as(tmp_path, "settings.py", f"# config\n{text}\n")
    if found is None:
        assert isinstance(result, Document)
    else:
        assert isinstance(result, SecretFile)
        assert found in result.message
        assert TOKEN_BODY[:12] not in result.message  # the row never quotes the secret


# ---- size ------------------------------------------------------------------------------------


def test_a_single_50_mb_line_is_read_and_chunked_within_the_window(tmp_path: Path) -> None:
    limit = 50_000_000  # the default inputs.max_file_bytes
    line = b"lorem" * (limit // 5)
    document = read_as(tmp_path, "line.txt", line)
    assert isinstance(document, Document)
    assert document.size_bytes == limit
    chunks = split(document.sections, 150_000)
    assert len(chunks) > 1
    assert all(chunk.tokens <= 150_000 for chunk in chunks)
    assert sum(len(chunk.text) for chunk in chunks) == limit  # no overlap: every byte once


def test_a_file_over_the_size_limit_is_skipped_unread(tmp_path: Path) -> None:
    path = write(tmp_path, "huge.txt", b"x" * 1_001)
    candidates, [problem] = found(options(tmp_path, max_file_bytes=1_000))
    assert candidates == []
    assert isinstance(problem, TooLarge)
    assert_actionable(problem, "huge.txt", "1,001 bytes", "inputs.max_file_bytes", "raise the")
    problem = attempt(path, "huge.txt", tmp_path, max_file_bytes=1_000)  # grown since listed
    assert isinstance(problem, TooLarge)


def test_a_sparse_file_claiming_terabytes_is_skipped_by_its_size(tmp_path: Path) -> None:
    with open(tmp_path / "sparse.log", "wb") as file:
        file.truncate(2**40)
    _, [problem] = found(options(tmp_path))
    assert isinstance(problem, TooLarge)
    assert "1,099,511,627,776 bytes" in problem.message


# ---- PDFs ------------------------------------------------------------------------------------


def test_a_truncated_pdf_is_an_error_that_says_to_repair_it(tmp_path: Path) -> None:
    problem = read_as(tmp_path, "cut.pdf", support.truncated_pdf())
    assert isinstance(problem, Unreadable)
    assert_actionable(problem, "cut.pdf", "truncated or damaged", "qpdf")


def test_an_encrypted_pdf_is_an_error_that_says_to_remove_the_password(tmp_path: Path) -> None:
    for mode in ("text", "attach"):
        problem = read_as(tmp_path, "locked.pdf", support.encrypted_pdf(), mode=mode)
        assert isinstance(problem, EncryptedDocument)
        assert_actionable(problem, "locked.pdf", "needs a password", "qpdf --decrypt")


def test_a_corrupt_content_stream_on_page_7_loses_only_page_7(tmp_path: Path) -> None:
    document = read_as(tmp_path, "report.pdf", support.corrupt_stream_on_page(7))
    assert isinstance(document, Document)
    assert [s.page for s in document.sections] == [1, 2, 3, 4, 5, 6, 8, 9, 10]
    assert any("page 7" in note for note in document.notes)


def test_a_broken_object_on_page_7_is_repaired_around(tmp_path: Path) -> None:
    document = read_as(tmp_path, "report.pdf", support.garbage_object_on_page(7))
    assert isinstance(document, Document)
    assert 7 not in [s.page for s in document.sections]
    assert len(document.sections) == 9
    assert any("page 7" in note for note in document.notes)
    assert any(note.startswith("pypdf: ") for note in document.notes)  # what pypdf repaired


def test_a_page_tree_that_contains_itself_is_an_error(tmp_path: Path) -> None:
    problem = read_as(tmp_path, "loop.pdf", support.cyclic_page_tree())
    assert isinstance(problem, Unreadable)
    assert_actionable(problem, "loop.pdf", "not a readable PDF", "qpdf")


def test_a_decompression_bomb_is_stopped_by_pypdfs_limits(tmp_path: Path) -> None:
    problem = read_as(tmp_path, "bomb.pdf", support.decompression_bomb())
    assert isinstance(problem, Unreadable)
    assert_actionable(problem, "bomb.pdf", "could be read", "repair it")


@pytest.mark.parametrize("pdf_text", ["pypdf", "pdfium"])
def test_a_text_map_to_lone_surrogates_becomes_replacement_characters(
    tmp_path: Path, pdf_text: str
) -> None:
    document = read_as(tmp_path, "odd.pdf", support.lone_surrogate_pdf(), pdf_text=pdf_text)
    assert isinstance(document, Document)
    assert document.text == "\ufffdyz and more te\ufffdt"  # each x
    assert document.notes[0] == "page 1 had characters with no Unicode value, replaced with U+FFFD"
    assert request_bytes(document, tmp_path)  # was: UnicodeEncodeError, and the run died


@pytest.mark.parametrize(
    ("mode", "pdf_text"), [("text", "pypdf"), ("text", "pdfium"), ("attach", "pypdf")]
)
def test_a_pdf_over_the_page_limit_is_refused_before_any_page_is_read(
    tmp_path: Path, mode: str, pdf_text: str
) -> None:
    tome = support.pages_pdf(pdf_reader.MAX_PAGES + 1)
    problem = read_as(tmp_path, "tome.pdf", tome, mode=mode, pdf_text=pdf_text)
    assert isinstance(problem, TooLarge)
    assert_actionable(problem, "tome.pdf", "5,001 pages, over the 5,000", "qpdf --split-pages")


# The text readers of both inputs.pdf_text choices.
TEXT_READERS = pytest.mark.parametrize("reader", [pdf_reader, pdfium], ids=["pypdf", "pdfium"])


@TEXT_READERS
def test_the_page_limit_counts_pages_not_bytes(reader: ModuleType) -> None:
    four = support.pages_pdf(4)
    with pytest.raises(TooLarge, match="4 pages, over the 3"):
        reader.read_text(four, "four.pdf", max_pages=3)
    with pytest.raises(TooLarge, match="4 pages, over the 3"):
        pdf_reader.attachments(four, "four.pdf", max_total_pages=3)
    sections, _ = reader.read_text(four, "four.pdf", max_pages=4)
    assert len(sections) == 4


@TEXT_READERS
def test_reading_a_slow_pdf_stops_at_the_time_budget(
    fake_clock: FakeClock, reader: ModuleType
) -> None:
    def slow_pages() -> float:  # every page "takes" 50 s
        fake_clock.advance(50)
        return fake_clock()

    with pytest.raises(TooLarge) as caught:
        reader.read_text(TEN_PAGES, "slow.pdf", clock=slow_pages)
    assert_actionable(caught.value, "slow.pdf", "took over 120 s (2 of 10 pages read)", "split")
    sections, _ = reader.read_text(TEN_PAGES, "fast.pdf", clock=fake_clock)  # time stands
    assert len(sections) == 10


# ---- links -----------------------------------------------------------------------------------


def test_a_symlink_loop_is_a_skip_row_not_a_hang(tmp_path: Path) -> None:
    write(tmp_path, "a.txt")
    os.symlink("loop-b", tmp_path / "loop-a")
    os.symlink("loop-a", tmp_path / "loop-b")
    os.symlink(".", tmp_path / "here")
    (tmp_path / "sub").mkdir()
    os.symlink("..", tmp_path / "sub" / "up")
    for follow in (False, True):
        candidates, problems = found(options(tmp_path, follow_symlinks=follow))
        assert [c.source for c in candidates] == ["a.txt"]
        by_source = {p.source: p for p in problems}  # type: ignore[attr-defined]
        assert "(loops)" in by_source["loop-a"].message
        assert "(loops)" in by_source["loop-b"].message
        if follow:
            assert "symbolic link loop" in by_source["here"].message
            assert "symbolic link loop" in by_source["sub/up"].message


def test_a_symlink_out_of_the_input_folder_is_not_followed_unless_asked(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    write(outside, "private.txt", "not for the model")
    write(root, "mine.txt")
    os.symlink(outside / "private.txt", root / "link.txt")
    os.symlink(outside, root / "linked-folder")
    candidates, problems = found(options(root))
    assert [c.source for c in candidates] == ["mine.txt"]
    for problem in problems:
        assert isinstance(problem, Skipped)
        assert "outside the input folder" in problem.message
        assert "inputs.follow_symlinks = true" in problem.message
    followed, _ = found(options(root, follow_symlinks=True))
    assert sorted(c.source for c in followed) == ["link.txt", "mine.txt"]  # same file once


def test_a_symlink_to_a_device_is_never_read(tmp_path: Path) -> None:
    os.symlink("/dev/zero", tmp_path / "zeros.txt")
    for follow in (False, True):
        candidates, [problem] = found(options(tmp_path, follow_symlinks=follow))
        assert candidates == []
        assert isinstance(problem, Skipped)
    problem = attempt(tmp_path / "zeros.txt", "zeros.txt", tmp_path)  # even if asked to
    assert isinstance(problem, Skipped)
    assert "not a regular file" in problem.message


# ---- names -----------------------------------------------------------------------------------

AWKWARD_NAMES = [
    b"with space.txt",
    b"new\nline.txt",
    b"tab\there.md",
    b"caf\xc3\xa9 \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac.txt",  # UTF-8: café ✓ 日本
    b"latin1-\xe9t\xe9.txt",  # not UTF-8 at all
    b"-rf.txt",
    b"[glob]*?.txt",
    b"trailing .txt",
    b"'quote\" and \\back.txt",
]


def test_awkward_file_names_are_listed_read_and_sent(tmp_path: Path) -> None:
    for name in AWKWARD_NAMES:
        support.write_name(tmp_path, name, b"Some text about " + name + b".")
    candidates, problems = found(options(tmp_path))
    assert problems == []
    assert len(candidates) == len(AWKWARD_NAMES)
    sources = {c.source for c in candidates}
    assert "latin1-\\xe9t\\xe9.txt" in sources  # shown as valid UTF-8
    assert "new\nline.txt" in sources
    for candidate in candidates:
        candidate.source.encode("utf-8")
        document = read_document(candidate, options(tmp_path))
        body = request_bytes(document, tmp_path)
        assert candidate.source.encode() in body or b"\\n" in body


# ---- permissions -----------------------------------------------------------------------------


@pytest.mark.unprivileged
def test_unreadable_files_and_folders_are_error_rows_and_the_walk_goes_on(
    tmp_path: Path,
) -> None:
    write(tmp_path, "ok.txt")
    locked = write(tmp_path, "locked.txt")
    write(tmp_path, "closed/inner.txt")
    locked.chmod(0)
    (tmp_path / "closed").chmod(0)
    try:
        candidates, [problem] = found(options(tmp_path))
        results = {c.source: attempt(c.path, c.source, tmp_path) for c in candidates}
    finally:
        locked.chmod(0o644)
        (tmp_path / "closed").chmod(0o755)
    assert isinstance(problem, Unreadable)
    assert_actionable(problem, "closed/", "cannot be listed", "permissions", "inputs.exclude")
    assert isinstance(results["ok.txt"], Document)
    denied = results["locked.txt"]
    assert isinstance(denied, Unreadable)
    assert_actionable(denied, "locked.txt", "permission denied", "read access")


# ---- many files ------------------------------------------------------------------------------


@pytest.fixture
def fast_folder(tmp_path: Path) -> Iterator[Path]:
    """An empty folder in memory (tmpfs) where there is one: 100K files are made there in a
    second or two, where a busy disk can take many; removed afterwards."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    folder = Path(tempfile.mkdtemp(prefix="pipeline-many-", dir=base))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.timeout(30)  # a bound, not a measurement: a few seconds here
def test_discovery_streams_through_100k_files(fast_folder: Path) -> None:
    fd = os.open(fast_folder, os.O_RDONLY)
    try:
        for n in range(100_000):
            os.close(os.open(f"doc-{n:06d}.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    found_items = discover(options(fast_folder))
    first = next(found_items)  # a generator: items come before the walk is over
    assert isinstance(first, Candidate)
    assert first.source == "doc-000000.txt"
    assert 1 + sum(1 for _ in found_items) == 100_000
