"""PDF text fidelity: how much of a PDF's known text each extractor gives back, and in what order.

Run:  python -m bench.pdf_fidelity           (about a minute)

The same pages of English-like prose (``bench.rate_use.document_text``, fixed seed) are made
into PDFs by several producers, each with what is installed or pip-installable here:

- ``make_samples``: the reader tests' generator (hand-written PDF, Helvetica, one ``Tj`` a line);
- ``reportlab``: its canvas, standard Type 1 fonts, wrapped lines (``pip install reportlab``);
- ``fpdf2``: DejaVu Sans embedded as a TrueType subset (``pip install fpdf2``);
- ``groff + ghostscript``: groff's PostScript through ``ps2pdf``: Type 1 fonts embedded as
  CFF (``FontFile3``/``Type1C``), the case pypdf needs fontTools for (``apt install
  ghostscript``);
- ``chromium``: HTML printed by headless Chromium (Skia, TrueType subsets), one column and
  two columns (CSS ``column-count``), so that reading order matters.

A producer whose tool is missing is left out (and says so). Each PDF is read by pypdf as the
pipeline reads it (``pdf.read_text``), by pypdf with fontTools hidden from it (what it did
before fontTools became a dependency), and by PDFium as the pipeline reads it
(``pipeline.readers.pdfium.read_text``, ``inputs.pdf_text = "pdfium"``). Measured against
the known words (lowercased, letters and digits only):

- chars recovered: the share of the known text's letters and digits found in the output
  (multiset intersection, so order does not count here);
- words in order: the longest run of matching blocks of words in order
  (``difflib.SequenceMatcher`` over the word lists) over the known word count;
- extra words: words in the output that are not in the known text (headers, garbage).
"""

from __future__ import annotations

import argparse
import difflib
import html
import random
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench import table
from bench.extraction import _make_samples, _pdfium
from bench.rate_use import document_text

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
_WORD = re.compile(r"[a-z0-9]+")

Producer = Callable[[list[str], Path], bytes | None]


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def score(known: str, got: str) -> tuple[float, float, float]:
    """(chars recovered, words in order, extra words), each as a share of the known words."""
    want, have = words(known), words(got)
    want_chars, have_chars = Counter("".join(want)), Counter("".join(have))
    chars = sum((want_chars & have_chars).values()) / max(1, sum(want_chars.values()))
    matcher = difflib.SequenceMatcher(None, want, have, autojunk=False)
    in_order = sum(block.size for block in matcher.get_matching_blocks()) / max(1, len(want))
    extra = sum((Counter(have) - Counter(want)).values()) / max(1, len(want))
    return chars, in_order, extra


def make_samples_pdf(pages: list[str], _: Path) -> bytes:
    pdf_bytes: Callable[[list[str]], bytes] = _make_samples().pdf_bytes
    return pdf_bytes(pages)


def reportlab_pdf(pages: list[str], folder: Path) -> bytes | None:
    try:
        from reportlab.lib.pagesizes import A4  # type: ignore[import-not-found, unused-ignore]
        from reportlab.pdfgen import canvas  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    import textwrap

    path = folder / "reportlab.pdf"
    pdf = canvas.Canvas(str(path), pagesize=A4)
    for page in pages:
        y = 800
        for line in textwrap.wrap(page, 90):
            pdf.setFont("Times-Roman", 10)
            pdf.drawString(40, y, line)
            y -= 13
        pdf.showPage()
    pdf.save()
    return path.read_bytes()


def fpdf_pdf(pages: list[str], _: Path) -> bytes | None:
    try:
        from fpdf import FPDF  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    if not FONT.exists():
        return None
    pdf = FPDF()
    pdf.add_font("DejaVu", fname=str(FONT))
    for page in pages:
        pdf.add_page()
        pdf.set_font("DejaVu", size=10)
        pdf.multi_cell(0, 5, page)
    return bytes(pdf.output())


def groff_pdf(pages: list[str], folder: Path) -> bytes | None:
    if not (shutil.which("groff") and shutil.which("ps2pdf")):
        return None
    source = ".nh\n.ad l\n" + "\n.bp\n".join(page.replace("\n", " ") for page in pages) + "\n"
    ps = subprocess.run(
        ["groff", "-Tps"], input=source.encode(), capture_output=True, check=True
    ).stdout
    (folder / "groff.ps").write_bytes(ps)
    subprocess.run(["ps2pdf", "groff.ps", "groff.pdf"], cwd=folder, check=True)
    return (folder / "groff.pdf").read_bytes()


def chromium_pdf(columns: int) -> Producer:
    def produce(pages: list[str], folder: Path) -> bytes | None:
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        if browser is None:
            return None
        style = f"body{{font:11pt serif;column-count:{columns};column-gap:2em}}"
        style += "p{break-after:page;margin:0}"
        body = "".join(f"<p>{html.escape(page)}</p>" for page in pages)
        page = folder / f"chromium-{columns}.html"
        page.write_text(f"<html><style>{style}</style><body>{body}</body></html>")
        out = folder / f"chromium-{columns}.pdf"
        subprocess.run(
            [
                browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                f"--user-data-dir={folder / 'profile'}", f"--print-to-pdf={out}", page.as_uri(),
            ],
            capture_output=True, check=True, timeout=120,
        )  # fmt: skip
        return out.read_bytes()

    return produce


PRODUCERS: dict[str, Producer] = {
    "make_samples": make_samples_pdf,
    "reportlab (Type 1, standard)": reportlab_pdf,
    "fpdf2 (TrueType subset)": fpdf_pdf,
    "groff + ghostscript (CFF)": groff_pdf,
    "chromium, 1 column": chromium_pdf(1),
    "chromium, 2 columns": chromium_pdf(2),
}


def pypdf_text(data: bytes, *, fonttools: bool = True) -> str:
    import pypdf.generic._font as cmap  # where pypdf looks whether fontTools is there

    from pipeline.readers import pdf

    had = cmap.HAS_FONTTOOLS
    cmap.HAS_FONTTOOLS = had and fonttools
    try:
        sections, _ = pdf.read_text(data, "fidelity.pdf")
    finally:
        cmap.HAS_FONTTOOLS = had
    return "\n".join(section.text for section in sections)


def extractors() -> dict[str, Callable[[bytes], str]]:
    found: dict[str, Callable[[bytes], str]] = {
        "pypdf (as the pipeline reads)": pypdf_text,
        "pypdf without fontTools": lambda data: pypdf_text(data, fonttools=False),
    }
    found["pdfium (as the pipeline reads)"] = lambda data: "\n".join(_pdfium(data))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    pages = [document_text(rng, 500) for _ in range(args.pages)]
    known = "\n".join(pages)
    header = "| producer | extractor | chars recovered | words in order | extra words |"
    print(header)
    print(table.separator(header))
    with tempfile.TemporaryDirectory(prefix="bench-fidelity-") as tmp:
        for name, produce in PRODUCERS.items():
            data = produce(pages, Path(tmp))
            if data is None:
                print(table.row([name, "(producer not installed: left out)", "-", "-", "-"]))
                continue
            for label, extract in extractors().items():
                chars, in_order, extra = score(known, extract(data))
                cells = [name, label, f"{chars:.1%}", f"{in_order:.1%}", f"{extra:.1%}"]
                print(table.row(cells), flush=True)


if __name__ == "__main__":
    main()
