"""The sample corpus: up to date with its generator, small, and read as its README says."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pypdf import PdfReader

from pipeline.core.errors import InputProblem
from pipeline.readers import InputOptions, discover, pdf, pdfium, read_document
from pipeline.readers.options import PdfTextName
from tests.readers.support import SAMPLE_DATA, make_samples, pdf_bytes

DOCS = SAMPLE_DATA / "docs"
REPO = SAMPLE_DATA / "repo"


def outcomes(options: InputOptions) -> dict[str, str]:
    """source -> kind of document, or the problem's class name; as the runner would see it."""
    result: dict[str, str] = {}
    for item in discover(options):
        if isinstance(item, InputProblem):
            result[item.source] = type(item).__name__  # type: ignore[attr-defined]
            continue
        try:
            document = read_document(item, options)
        except InputProblem as problem:
            result[item.source] = type(problem).__name__
        else:
            result[item.source] = f"{document.kind}:{document.language or ''}"
    return result


def test_the_committed_samples_are_what_the_generator_writes() -> None:
    for relative, data in make_samples.docs_files().items():
        assert (DOCS / relative).read_bytes() == data, relative
    for relative, text in make_samples.REPO_FILES.items():
        assert (REPO / relative).read_text(encoding="utf-8") == text, relative
    assert (REPO / "assets" / "logo.png").read_bytes() == make_samples.png_bytes(16, 16)


def test_the_encrypted_sample_needs_its_password() -> None:
    reader = PdfReader(DOCS / "encrypted.pdf")
    assert reader.is_encrypted
    assert not reader.decrypt("")
    assert reader.decrypt("secret")
    assert "product planning" in reader.pages[0].extract_text()


def test_the_corpus_is_small() -> None:
    tracked = [p for p in SAMPLE_DATA.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert sum(p.stat().st_size for p in tracked) < 2_000_000


def test_the_readme_names_every_sample() -> None:
    readme = (SAMPLE_DATA / "README.md").read_text(encoding="utf-8")
    names = {*make_samples.docs_files(), "encrypted.pdf", *make_samples.REPO_FILES}
    names |= {*make_samples.REPO_IGNORED_FILES, "assets/logo.png"}
    for name in names:
        assert Path(name).name in readme, name


@pytest.mark.parametrize("pdf_text", ["pypdf", "pdfium"])
def test_the_docs_read_as_documented(pdf_text: PdfTextName) -> None:
    assert outcomes(InputOptions(paths=(DOCS,), pdf_text=pdf_text)) == {
        "broken.pdf": "Unreadable",
        "encrypted.pdf": "EncryptedDocument",
        "meeting-minutes.pdf": "pdf:",
        "quarterly-report.pdf": "pdf:",
        "research-note.pdf": "pdf:",
        "notes/compte-rendu-fr.txt": "text:",
        "notes/onboarding.md": "markdown:",
        "notes/preisliste-cp1252.txt": "text:",
        "notes/reading-list.txt": "text:",
    }


def test_the_sample_pdfs_have_their_pages_and_the_legacy_note() -> None:
    options = InputOptions(paths=(DOCS,))
    report = read_document(_candidate(options, "quarterly-report.pdf"), options)
    assert [s.page for s in report.sections] == [1, 2, 3]
    assert "Revenue for the third quarter" in report.sections[0].text
    assert "Outlook" in report.sections[2].text
    german = read_document(_candidate(options, "notes/preisliste-cp1252.txt"), options)
    assert german.notes == ("decoded as cp1252 (not UTF-8)",)
    assert "Kaffeerösterei Müller" in german.text
    assert "14,90 €" in german.text
    french = read_document(_candidate(options, "notes/compte-rendu-fr.txt"), options)
    assert french.notes == ()
    assert "Dubœuf" in french.text


def test_pdfium_gives_the_sample_pdfs_the_text_pypdf_does() -> None:
    """Page for page, to the character: a hyphen that ends a line (quarterly-report.pdf, page 2:
    "self-" / "service"), which PDFium marks with the noncharacter U+FFFE, included."""
    for name in ("quarterly-report.pdf", "research-note.pdf", "meeting-minutes.pdf"):
        data = (DOCS / name).read_bytes()
        assert pdfium.read_text(data, name) == pdf.read_text(data, name), name


def test_the_docs_in_attach_mode() -> None:
    result = outcomes(InputOptions(paths=(DOCS,), mode="attach"))
    assert result["quarterly-report.pdf"] == "pdf:"
    assert result["encrypted.pdf"] == "EncryptedDocument"
    assert result["broken.pdf"] == "Unreadable"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The sample repository with its git-ignored files present, as on a developer's disk."""
    copy = tmp_path / "repo"
    shutil.copytree(REPO, copy)
    make_samples.write_repo_ignored(copy)
    return copy


def test_the_repo_in_code_mode(repo: Path) -> None:
    assert (repo / "build" / "bundle.js").exists()
    assert (repo / "app.log").exists()
    assert outcomes(InputOptions(paths=(repo,), code=True)) == {
        ".env": "SecretFile",
        ".gitignore": "code:",
        "README.md": "code:markdown",
        "assets/logo.png": "BinaryFile",
        "config/id_rsa": "SecretFile",
        "config/settings.toml": "code:toml",
        "inventory/__init__.py": "code:python",
        "inventory/cli.py": "code:python",
        "inventory/models.py": "code:python",
        "inventory/store.py": "code:python",
        "scripts/deploy.sh": "SecretFile",
        "web/app.js": "code:javascript",
    }


def test_the_repo_with_images_attached_and_gitignore_off(repo: Path) -> None:
    result = outcomes(InputOptions(paths=(repo,), code=True, mode="attach", gitignore=False))
    assert result["assets/logo.png"] == "image:"
    assert result["app.log"] == "code:"
    # build output is left out in code mode without a .gitignore too (readers.generated)
    assert "build/bundle.js" not in result


def test_pdf_bytes_is_deterministic() -> None:
    assert pdf_bytes(["a", None, "b"]) == pdf_bytes(["a", None, "b"])


def _candidate(options: InputOptions, source: str):  # type: ignore[no-untyped-def]
    for item in discover(options):
        if not isinstance(item, InputProblem) and item.source == source:
            return item
    raise AssertionError(f"{source} not found")
