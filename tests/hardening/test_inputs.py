"""Issue 20, items 3, 6 (template file) and 13: the secret rules and the input root hold
through links and swaps; a template file gets the secret checks; a huge sparse file is not
read whole before it is found binary; attach mode scans PDFs and images for secrets."""

from __future__ import annotations

import os
import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest

from pipeline.cli import EXIT_USAGE, main
from pipeline.core.errors import BinaryFile, InputProblem, SecretFile
from pipeline.readers import Candidate, read_document
from tests.hardening.support import small_job
from tests.readers.support import found, options, pdf_bytes, png_bytes, write

TOKEN = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"


def test_a_link_with_an_innocent_name_to_a_secret_file_is_skipped_and_so_is_the_target(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    write(root, "config/.env", "API_TOKEN=hunter2\n")
    os.symlink("config/.env", root / "notes.txt")
    candidates, problems = found(options(root))
    assert [c.source for c in candidates] == []
    assert {p.source: type(p) for p in problems} == {  # type: ignore[attr-defined]
        "notes.txt": SecretFile,
        "config/.env": SecretFile,
    }


def test_a_link_to_a_secret_key_file_outside_is_skipped_when_links_are_followed(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    write(tmp_path, "home/.ssh/id_ed25519", "key material\n")
    root.mkdir()
    os.symlink(tmp_path / "home/.ssh/id_ed25519", root / "readme.txt")
    candidates, problems = found(options(root, follow_symlinks=True))
    assert candidates == []
    assert [type(p) for p in problems] == [SecretFile]


def test_a_file_swapped_for_a_link_after_discovery_is_not_read_through_it(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    write(root, "a.txt", "harmless\n")
    write(tmp_path, "outside/private.txt", "the private diary\n")
    opts = options(root)
    [candidate], _ = found(opts)
    os.unlink(root / "a.txt")
    os.symlink(tmp_path / "outside/private.txt", root / "a.txt")
    with pytest.raises(InputProblem, match="changed"):
        read_document(candidate, opts)


def test_a_file_replaced_after_discovery_is_not_read(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root, "a.txt", "harmless\n")
    opts = options(root)
    [candidate], _ = found(opts)
    write(tmp_path, "other.txt", "something else\n")
    os.replace(tmp_path / "other.txt", root / "a.txt")
    with pytest.raises(InputProblem, match="changed"):
        read_document(candidate, opts)


@pytest.mark.parametrize(
    ("name", "content"),
    [(".env", "say hi {text}\n"), ("prompt.txt", f"Use {TOKEN} to log in.\n{{text}}")],
    ids=["secret-name", "secret-content"],
)
def test_a_template_file_gets_the_secret_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: str
) -> None:
    docs = write(tmp_path, "docs/a.txt", "hello").parent
    (tmp_path / name).write_text(content)
    job = small_job(tmp_path, docs, prompt__template_file=f'"{name}"')
    assert main(["validate", str(job)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "prompt.template_file" in err
    assert "credentials" in err
    assert TOKEN not in err


def test_a_huge_sparse_text_file_is_found_binary_without_being_read_whole(
    tmp_path: Path,
) -> None:
    path = tmp_path / "root" / "huge.txt"
    path.parent.mkdir()
    with open(path, "wb") as file:
        file.truncate(300_000_000)  # a hole: no disk used, zeros when read
    opts = options(path.parent, max_file_bytes=1_000_000_000)
    [candidate], _ = found(opts)
    tracemalloc.start()
    try:
        with pytest.raises(BinaryFile):
            read_document(candidate, opts)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000


def _png_with_text(text: str) -> bytes:
    """A PNG with a ``tEXt`` comment chunk before its image data."""
    plain = png_bytes()
    chunk = b"Comment\x00" + text.encode()
    crc = zlib.crc32(b"tEXt" + chunk) & 0xFFFFFFFF
    packed = struct.pack(">I", len(chunk)) + b"tEXt" + chunk + struct.pack(">I", crc)
    return plain[:33] + packed + plain[33:]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("slides.pdf", pdf_bytes([f"Deploy with the token {TOKEN} tonight."])),
        ("shot.png", _png_with_text(f"token={TOKEN}")),
    ],
    ids=["pdf", "png"],
)
def test_attach_mode_runs_the_secret_scan_on_pdfs_and_images(
    tmp_path: Path, name: str, data: bytes
) -> None:
    path = write(tmp_path, f"root/{name}", data)
    opts = options(path.parent, mode="attach")
    with pytest.raises(SecretFile):
        read_document(Candidate(path, name), opts)
    clean = write(tmp_path, "clean/ok.pdf", pdf_bytes(["Nothing to hide here."]))
    assert read_document(Candidate(clean, "ok.pdf"), options(clean.parent, mode="attach"))
