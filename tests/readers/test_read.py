"""read_document: the Document it builds, kinds and languages, credentials found by content,
and files that cannot be opened."""

from __future__ import annotations

import hashlib
import os
import random
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.errors import InputProblem, SecretFile, Skipped, TooLarge, Unreadable
from pipeline.core.models import Document, Section
from pipeline.readers import Candidate, InputOptions, discover, document_id, read_document
from tests.readers.support import options, write


def read(tmp_path: Path, name: str, data: bytes | str = "x = 1\n", **kwargs: object) -> Document:
    path = write(tmp_path, name, data)
    return read_document(Candidate(path, name), options(tmp_path, **kwargs))  # type: ignore[arg-type]


def test_the_document_records_the_file(tmp_path: Path) -> None:
    data = b"Hello, world.\n"
    path = write(tmp_path, "notes/hello.txt", data)
    document = read_document(Candidate(path, "notes/hello.txt"), options(tmp_path))
    content_hash = hashlib.sha256(data).hexdigest()
    assert document == Document(
        doc_id=hashlib.sha256(f"notes/hello.txt\0{content_hash}".encode()).hexdigest()[:16],
        source="notes/hello.txt",
        path=path,
        kind="text",
        content_hash=content_hash,
        size_bytes=len(data),
        sections=(Section("Hello, world.\n"),),
    )
    assert document.name == "hello.txt"


@pytest.mark.parametrize(
    ("name", "kind", "language"),
    [
        ("a.py", "code", "python"),
        ("a.tsx", "code", "typescript"),
        ("a.go", "code", "go"),
        ("a.rs", "code", "rust"),
        ("A.JAVA", "code", "java"),
        ("a.hpp", "code", "cpp"),
        ("script.sh", "code", "shell"),
        ("Dockerfile", "code", "dockerfile"),
        ("Makefile", "code", "makefile"),
        ("a.md", "markdown", None),
        ("a.rst", "text", None),
        ("data.csv", "text", None),
        ("conf.yaml", "text", None),
        ("page.html", "text", None),
        ("notes", "text", None),
    ],
)
def test_kind_and_language_by_suffix(
    tmp_path: Path, name: str, kind: str, language: str | None
) -> None:
    document = read(tmp_path, name)
    assert (document.kind, document.language) == (kind, language)


@pytest.mark.parametrize(
    ("name", "language"),
    [
        ("a.py", "python"),
        ("README.md", "markdown"),
        ("conf.yaml", "yaml"),
        ("data.json", "json"),
        ("notes.txt", None),
        ("LICENSE", None),
    ],
)
def test_code_mode_makes_every_text_file_code(tmp_path: Path, name: str, language: str) -> None:
    document = read(tmp_path, name, code=True)
    assert (document.kind, document.language) == ("code", language)


def test_the_file_is_read_once_and_the_id_follows_the_bytes(tmp_path: Path) -> None:
    first = read(tmp_path, "a.txt", "one\n")
    second = read(tmp_path, "a.txt", "two\n")
    again = read(tmp_path, "a.txt", "one\n")
    assert first.doc_id != second.doc_id
    assert first.doc_id == again.doc_id
    assert first.content_hash == hashlib.sha256(b"one\n").hexdigest()


@given(st.text(), st.text(), st.binary(), st.binary())
def test_doc_ids_are_deterministic_and_tell_inputs_apart(
    source: str, other_source: str, data: bytes, other_data: bytes
) -> None:
    content_hash = hashlib.sha256(data).hexdigest()
    other_hash = hashlib.sha256(other_data).hexdigest()
    doc_id = document_id(source, content_hash)
    assert re.fullmatch(r"[0-9a-f]{16}", doc_id)
    assert doc_id == document_id(source, content_hash)
    if (source, data) != (other_source, other_data):
        assert doc_id != document_id(other_source, other_hash)


def test_a_source_with_undecodable_bytes_still_gets_an_id() -> None:
    assert len(document_id("caf\udce9.txt", "0" * 64)) == 16


@pytest.mark.parametrize(
    "text",
    [
        "k = '\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----'",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQww\n",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF\n",
        'AWS_ACCESS_KEY_ID = "AKIAZZZZZZZZZZZZZZZZ"\n',
        "aws_access_key_id=ASIA1234567890ABCDEF\n",
    ],
)
def test_credentials_found_by_content_are_skipped(tmp_path: Path, text: str) -> None:
    with pytest.raises(SecretFile, match=r"config\.py looks like credentials") as caught:
        read(tmp_path, "config.py", text)
    assert "inputs.skip_secrets" in caught.value.message


@pytest.mark.parametrize(
    "text",
    [
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n",
        "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE\n",
        "AWS docs use AKIAIOSFODNN7EXAMPLE as their example id.\n",
        "AKIA is a prefix; AKIAshort is not a key, nor is XAKIAAAAAAAAAAAAAAAAAA.\n",
    ],
)
def test_text_that_only_mentions_keys_is_read(tmp_path: Path, text: str) -> None:
    assert read(tmp_path, "notes.md", text).text == text


def test_content_checks_cover_legacy_encodings_too(tmp_path: Path) -> None:
    text = "Schlüssel für die Ablage:\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n"
    with pytest.raises(SecretFile):
        read(tmp_path, "readme.txt", text.encode("cp1252"))


@pytest.mark.parametrize("name", [".npmrc", ".pypirc"])
def test_registry_configs_are_secret_only_with_a_token(tmp_path: Path, name: str) -> None:
    plain = "registry=https://registry.npmjs.org/\n[distutils]\nindex-servers = pypi\n"
    assert read(tmp_path, name, plain).text == plain
    with pytest.raises(SecretFile, match="token or password"):
        read(tmp_path, name, "//registry.npmjs.org/:_authToken=npm_abc\n")
    with pytest.raises(SecretFile):
        read(tmp_path, name, "[pypi]\nusername = __token__\npassword = pypi-AgEIcHlwaS5vcmc\n")


def test_credentials_are_read_when_the_job_allows(tmp_path: Path) -> None:
    text = "-----BEGIN PRIVATE KEY-----\nfake\n-----END PRIVATE KEY-----\n"
    assert read(tmp_path, "id_rsa", text, skip_secrets=False).text == text


def test_read_document_checks_names_itself(tmp_path: Path) -> None:
    with pytest.raises(SecretFile):
        read(tmp_path, ".env", "A=1\n")


def test_a_file_that_vanished_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(Unreadable, match=r"gone\.txt no longer exists"):
        read_document(Candidate(tmp_path / "gone.txt", "gone.txt"), options(tmp_path))


@pytest.mark.unprivileged
def test_a_file_without_read_permission_is_unreadable(tmp_path: Path) -> None:
    path = write(tmp_path, "locked.txt")
    path.chmod(0)
    try:
        with pytest.raises(Unreadable, match=r"locked\.txt cannot be read: permission denied"):
            read_document(Candidate(path, "locked.txt"), options(tmp_path))
    finally:
        path.chmod(0o644)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    with pytest.raises(Skipped, match="not a regular file"):
        read_document(Candidate(tmp_path / "pipe.txt", "pipe.txt"), options(tmp_path))


def test_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.txt").mkdir()
    with pytest.raises(Skipped, match="not a regular file"):
        read_document(Candidate(tmp_path / "dir.txt", "dir.txt"), options(tmp_path))


def test_a_symlink_loop_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "loop.txt").symlink_to(tmp_path / "loop.txt")
    with pytest.raises(Unreadable, match=r"loop\.txt cannot be opened"):
        read_document(Candidate(tmp_path / "loop.txt", "loop.txt"), options(tmp_path))


def test_the_size_limit_holds_when_reading_too(tmp_path: Path) -> None:
    with pytest.raises(TooLarge):
        read(tmp_path, "a.txt", "x" * 11, max_file_bytes=10)
    assert read(tmp_path, "a.txt", "x" * 10, max_file_bytes=10).size_bytes == 10


def test_file_names_that_are_hard_to_print(tmp_path: Path) -> None:
    names = ["with space.txt", "new\nline.txt", "tab\there.md", "日本語.txt", "émoji 🎉.txt"]
    for name in names:
        write(tmp_path, name, f"content of {name}\n")
    opts = options(tmp_path)
    documents = [read_document(c, opts) for c in discover(opts) if isinstance(c, Candidate)]
    assert sorted(d.source for d in documents) == sorted(names)
    assert all(d.text == f"content of {d.source}\n" for d in documents)


@pytest.mark.skipif(os.name != "posix", reason="byte file names are a POSIX thing")
def test_a_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9.txt"
    with open(raw, "wb") as file:
        file.write(b"bonjour\n")
    opts = options(tmp_path)
    [candidate] = [c for c in discover(opts) if isinstance(c, Candidate)]
    document = read_document(candidate, opts)
    assert document.text == "bonjour\n"
    assert document.source == "caf\\xe9.txt"  # shown escaped: sources are valid UTF-8
    assert document.path == Path(os.fsdecode(raw))


def test_every_hostile_input_is_a_problem_never_a_crash(tmp_path: Path) -> None:
    """One folder of everything awkward, through discover and read_document like the runner."""
    write(tmp_path, "empty.txt", b"")
    write(tmp_path, "binary.txt", b"\x00\x01\x02\x03" * 100)
    write(tmp_path, "latin.txt", "Ça coûte très cher, déjà.".encode("latin-1"))
    write(tmp_path, "bad-utf8.md", b"ok \xc3\x28 not ok")
    write(tmp_path, "truncated.pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog")
    write(tmp_path, "garbage.pdf", random.Random(3).randbytes(2000))
    write(tmp_path, "fake.png", b"not a png")
    write(tmp_path, "huge.txt", b"x" * 5000)
    write(tmp_path, ".env", "TOKEN=x\n")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for mode in ("text", "attach"):
        opts = InputOptions(paths=(tmp_path,), max_file_bytes=4096, mode=mode)  # type: ignore[arg-type]
        outcomes: dict[str, str] = {}
        messages: list[tuple[str, str]] = []
        for item in discover(opts):
            if isinstance(item, InputProblem):
                outcomes[item.source] = type(item).__name__  # type: ignore[attr-defined]
                continue
            try:
                outcomes[item.source] = read_document(item, opts).kind
            except InputProblem as problem:
                outcomes[item.source] = type(problem).__name__
                messages.append((item.source, problem.message))
        assert outcomes["empty.txt"] == "EmptyFile"
        assert outcomes["binary.txt"] == "BinaryFile"
        assert outcomes["latin.txt"] == outcomes["bad-utf8.md"].replace("markdown", "text")
        assert outcomes["truncated.pdf"] == "Unreadable"
        assert outcomes["garbage.pdf"] == "Unreadable"
        assert outcomes["fake.png"] == ("BinaryFile" if mode == "text" else "Unreadable")
        assert outcomes["huge.txt"] == "TooLarge"
        assert outcomes[".env"] == "SecretFile"
        assert outcomes["loop"] == "Skipped"
        assert all(source in message for source, message in messages)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_a_file_larger_than_its_stat_says_is_read_whole_and_limited(tmp_path: Path) -> None:
    # /proc files report size 0 but have content: like a file that grew after the stat.
    status = Candidate(Path("/proc/self/status"), "status")
    assert "Name:" in read_document(status, options(tmp_path)).text
    with pytest.raises(TooLarge):
        read_document(status, options(tmp_path, max_file_bytes=10))
