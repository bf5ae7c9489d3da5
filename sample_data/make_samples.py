"""Write the sample corpus under sample_data/: the documents (PDFs among them), the sample
repository with its tiny PNG, and the repository's files that its .gitignore hides (which git
therefore does not keep: run this, or let the tests write them into their own copy).

    python sample_data/make_samples.py          # rewrite what differs; prints what it wrote

Everything is deterministic except the encrypted PDF (pypdf draws a random file id), which is
rewritten only when it no longer opens with its password to the expected text. The PDF writer
here (``pdf_bytes``) is also what the tests use to build their PDFs: it sets real text in
Helvetica, so pypdf can extract it, in a few hundred bytes a page.
"""

from __future__ import annotations

import io
import struct
import sys
import textwrap
import zlib
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
LINE_WIDTH = 88  # characters per line of 11pt Helvetica on a Letter page, roughly
LINES_PER_PAGE = 48


def _pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsiEncoding, escaped, kept to printable ASCII in the file."""
    out = bytearray(b"(")
    for byte in text.encode("cp1252", errors="replace"):
        if byte in b"()\\":
            out += b"\\" + bytes([byte])
        elif 32 <= byte < 127:
            out.append(byte)
        else:
            out += b"\\%03o" % byte
    out += b")"
    return bytes(out)


def _content(text: str | None) -> bytes:
    if text is None:  # a page with marks but no text, like a scan
        return b"0.5 g 72 500 468 200 re f"
    lines: list[str] = []
    for paragraph in text.split("\n"):
        lines.extend(textwrap.wrap(paragraph, LINE_WIDTH) or [""])
    body = b" T*\n".join(_pdf_string(line) + b" Tj" for line in lines[:LINES_PER_PAGE])
    return b"BT /F1 11 Tf 14 TL 72 740 Td\n" + body + b"\nET"


def pdf_bytes(pages: Sequence[str | None], *, title: str | None = None) -> bytes:
    """A valid PDF with one page per item: its text (wrapped, one paragraph per line given),
    or ``None`` for a page with no text at all. Same input, same bytes."""
    objects: list[bytes] = []  # object n is objects[n - 1]
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = b" ".join(b"%d 0 R" % n for n in page_ids)
    objects.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)))
    objects.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    for page_id, text in zip(page_ids, pages, strict=True):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (page_id + 1)
        )
        stream = _content(text)
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    info = b""
    if title is not None:
        objects.append(
            b"<< /Title %s /Producer (sample_data/make_samples.py) >>" % _pdf_string(title)
        )
        info = b" /Info %d 0 R" % len(objects)

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\n" % (len(objects) + 1, info)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def png_bytes(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A tiny valid PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height, 9))
        + chunk(b"IEND", b"")
    )


# ---- the corpus ------------------------------------------------------------------------------

QUARTERLY_REPORT = (
    "Northwind Analytics - Quarterly Report, Q3 2024",
    [
        "Northwind Analytics - Quarterly Report, Q3 2024\n"
        "Summary. Revenue for the third quarter was 4.82 million euros, up 11 percent on the same "
        "quarter last year and 3 percent on the second quarter. Recurring subscription revenue "
        "grew to 71 percent of the total. The operating margin improved from 8.9 to 10.4 percent, "
        "mainly because hosting costs fell after the move to reserved capacity in July.\n"
        "Customers. We ended the quarter with 312 paying customers (Q2: 297). Fifteen were "
        "added in logistics and retail; four left, all of them small accounts on the legacy "
        "reporting plan, which we stop selling at the end of the year. Net revenue retention "
        "was 108 percent.",
        "Segments. The forecasting product contributed 2.9 million euros (60 percent), the data "
        "integration service 1.4 million and professional services 0.52 million. Professional "
        "services revenue fell 6 percent, as planned: we are steering customers towards the "
        "self-service onboarding launched in May.\n"
        "Costs. Headcount rose from 58 to 61. Sales and marketing spending was 1.1 million, "
        "level with Q2. Research and development was 1.3 million, including 0.2 million for "
        "the new anomaly detection module.\n"
        "Cash. Cash at the end of the quarter stood at 6.3 million euros. Operating cash flow "
        "was positive for the fourth quarter in a row.",
        "Outlook. For the fourth quarter we expect revenue between 4.9 and 5.1 million euros. "
        "Risks: two large renewals (together 0.4 million a year) fall due in November, and "
        "a price change for the integration service takes effect in October.\n"
        "Priorities for Q4: release anomaly detection to all customers, close the sale of the "
        "legacy reporting plan, and hire three engineers for the data platform team.",
    ],
)

RESEARCH_NOTE = (
    "Research note: lithium-ion battery capacity loss in cold climates",
    [
        "Research note: lithium-ion battery capacity loss in cold climates\n"
        "Question. How much usable capacity do the delivery vans' lithium-ion battery packs "
        "lose in winter, and is the loss temporary or permanent?\n"
        "Method. We logged charge and discharge data from 24 vans in Oslo and Tromso from "
        "November to March: 41,000 trips in all. Cell temperatures were recorded every ten "
        "seconds. Packs were capacity-tested at 25 degrees Celsius before and after the winter.",
        "Findings. At cell temperatures below minus 10 degrees Celsius the usable capacity fell "
        "by 18 to 27 percent. Almost all of this loss was temporary: after the winter the packs "
        "had lost 2.1 percent of their rated capacity on average, in line with the 1.8 to 2.4 "
        "percent expected from age and cycle count alone.\n"
        "Vans that were parked indoors overnight and preconditioned while still plugged in "
        "started their routes with warm cells and showed a temporary loss of only 6 percent. "
        "Fast charging below zero degrees without preconditioning was associated with lithium "
        "plating in two packs, which lost 5 and 7 percent permanently.",
        "Recommendations. Precondition packs while plugged in before every winter route. Do not "
        "fast-charge cold packs: the charging stations should limit current until the cells "
        "are above 10 degrees Celsius. Plan winter routes for 75 percent of summer range.\n"
        "Open questions. We have no data below minus 25 degrees Celsius, and only one winter. "
        "A second season of logging is planned.",
    ],
)

MEETING_MINUTES = (
    "Minutes - product planning meeting, 14 October 2024",
    [
        "Minutes - product planning meeting, 14 October 2024\n"
        "Present: Ana Lima (chair), Ben Okafor, Chloe Martin, David Stein. Apologies: Eva Novak.\n"
        "1. Mobile app release. Ben reported that the iOS build passed review; the Android "
        "build is blocked by a crash on devices with Android 10. Decision: release on iOS on "
        "21 October and on Android once the crash is fixed, at the latest 4 November.\n"
        "2. Pricing page. Chloe presented two designs. The group preferred the design with the "
        "annual price shown first. Action: Chloe to run an A/B test for two weeks.",
        "3. Support backlog. The backlog has grown to 140 open tickets, 35 of them older than a "
        "week. Decision: David's team takes one support day a week until the backlog is below "
        "50 tickets.\n"
        "Actions: Ben - Android crash fix, 28 October. Chloe - A/B test report, 4 November. "
        "David - support rota, this week. Next meeting: 28 October, 10:00.",
    ],
)

NOTES_MD = """\
# Onboarding notes for the analytics team

Welcome! These notes cover the first week.

## Accounts
- Ask IT for a laptop and a VPN account on day one.
- The data warehouse uses single sign-on; access is granted by your team lead.

## Rituals
- Stand-up at 09:30, in the small meeting room or on the video call.
- Demo on Friday afternoons: show something, however small.

## Where things are
The quarterly reports live in the shared drive under *Finance/Reports*. The research notes are
in the wiki. Meeting minutes are sent by the chair within two days.
"""

READING_LIST_TXT = """\
Reading list - forecasting

1. Hyndman and Athanasopoulos, Forecasting: Principles and Practice (3rd edition).
   Start with chapters 1-3 and 8 (exponential smoothing).
2. Taylor and Letham, Forecasting at Scale (the Prophet paper), 2017.
3. Makridakis et al., The M4 Competition: 100,000 time series and 61 forecasting methods, 2020.

Tip: read the M4 results before choosing a model. Simple combinations did very well.
"""

FRENCH_UTF8 = """\
Compte rendu - réunion de l'équipe produit du 7 octobre

Présents : Élodie Marchand, François Leclerc, Hélène Dubœuf, Noël Garçon.

1. Lancement de la nouvelle version. L'équipe a décidé de publier la version 2.4 le
   21 octobre. Les tests de régression sont terminés ; deux anomalies mineures restent ouvertes.
2. Tarifs. Le prix de l'abonnement annuel passera à 1 200 € au 1er janvier. Les clients
   actuels conservent l'ancien tarif pendant un an.
3. Questions diverses. La formation des nouveaux arrivants aura lieu à Lyon, près de la gare
   Part-Dieu. Prochaine réunion : lundi 21 octobre à 10 h.
"""

GERMAN_CP1252 = """\
Preisliste Kaffeerösterei Müller - gültig ab 1. März

Espresso "Großstadt", 500 g ........ 14,90 €
Filterkaffee "Frühstück", 500 g ..... 11,50 €
Entkoffeiniert "Gute Nacht", 250 g .. 8,20 €

Hinweis: Alle Preise inklusive Mehrwertsteuer. Lieferung innerhalb Österreichs und der
Schweiz gegen Aufpreis. Bestellungen über 50 € versandkostenfrei. Grüße aus Köln!
"""

REPO_FILES: dict[str, str] = {
    ".gitignore": "# build output and logs\nbuild/\n*.log\n",
    "README.md": (
        "# inventory\n\nA tiny stock-keeping library with a command line, used as a sample "
        "repository for code review jobs.\n\n    python -m inventory.cli add widget 3\n"
    ),
    "inventory/__init__.py": (
        '"""A tiny stock-keeping library."""\n\n'
        "from inventory.models import Item\nfrom inventory.store import Store\n\n"
        '__all__ = ["Item", "Store"]\n'
    ),
    "inventory/models.py": (
        "from dataclasses import dataclass\n\n\n"
        "@dataclass\nclass Item:\n    name: str\n    quantity: int = 0\n"
        "    price_cents: int = 0\n\n"
        "    def value(self) -> float:\n"
        "        # Bug for reviewers to find: integer cents become a float of euros here.\n"
        "        return self.quantity * self.price_cents / 100\n"
    ),
    "inventory/store.py": (
        "import json\nfrom pathlib import Path\n\nfrom inventory.models import Item\n\n\n"
        "class Store:\n"
        "    def __init__(self, path: Path) -> None:\n        self.path = path\n"
        "        self.items: dict[str, Item] = {}\n\n"
        "    def load(self) -> None:\n"
        "        if self.path.exists():\n"
        "            data = json.loads(self.path.read_text())\n"
        "            self.items = {k: Item(**v) for k, v in data.items()}\n\n"
        "    def add(self, name: str, quantity: int) -> Item:\n"
        "        item = self.items.setdefault(name, Item(name))\n"
        "        item.quantity += quantity  # no check for negative stock\n"
        "        return item\n\n"
        "    def save(self) -> None:\n"
        "        # Not atomic: a crash mid-write loses the store.\n"
        "        self.path.write_text(json.dumps({k: vars(v) for k, v in self.items.items()}))\n"
    ),
    "inventory/cli.py": (
        "import sys\nfrom pathlib import Path\n\nfrom inventory.store import Store\n\n\n"
        "def main(argv: list[str]) -> int:\n"
        '    store = Store(Path("stock.json"))\n    store.load()\n'
        '    if argv[:1] == ["add"]:\n'
        # Bug only a reviewer who opens store.py finds: Store.add takes no price_cents.
        "        item = store.add(argv[1], int(argv[2]), price_cents=int(argv[3]))\n"
        "        store.save()\n"
        '        print(f"{item.name}: {item.quantity}")\n        return 0\n'
        '    print("usage: inventory add NAME QUANTITY PRICE_CENTS", file=sys.stderr)\n'
        "    return 2\n\n\n"
        'if __name__ == "__main__":\n    sys.exit(main(sys.argv[1:]))\n'
    ),
    "web/app.js": (
        "// Shows the stock list in the browser.\n"
        "export async function loadStock(url) {\n"
        "  const response = await fetch(url);\n"
        "  // Bug for reviewers: no check of response.ok before parsing.\n"
        "  const items = await response.json();\n"
        "  return items.map((item) => `${item.name}: ${item.quantity}`);\n}\n"
    ),
    "config/settings.toml": '[store]\npath = "stock.json"\ncurrency = "EUR"\n',
    "scripts/deploy.sh": (
        "#!/bin/sh\n# Deploys the web app. The key id below is fake; it is here so the readers'\n"
        "# content check has something to find (AKIA + 16 capitals or digits).\n"
        "export AWS_ACCESS_KEY_ID=AKIAFAKEFAKEFAKE0000\n"
        "aws s3 sync web/ s3://inventory-sample-bucket/\n"
    ),
    ".env": (
        "# Fake values for the sample repository. Not a real token.\n"
        "API_TOKEN=fake-0000-not-a-real-token\n"
    ),
    "config/id_rsa": (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        "THIS-IS-A-FAKE-KEY-FOR-THE-SAMPLE-REPOSITORY-IT-UNLOCKS-NOTHING\n"
        "-----END OPENSSH PRIVATE KEY-----\n"
    ),
}

# What the repository's .gitignore hides. Git hides them from this project too, so they are
# written by this script (and by the tests that need them) rather than kept in git.
REPO_IGNORED_FILES: dict[str, str] = {
    "build/bundle.js": "// generated by the build; ignored by .gitignore\nconsole.log('bundle');\n",
    "app.log": "2024-10-14 10:00:01 INFO started\n2024-10-14 10:00:02 INFO stock loaded\n",
}


def docs_files() -> dict[str, bytes]:
    """Every file under sample_data/docs/ except the encrypted PDF, by relative path."""
    report = pdf_bytes(QUARTERLY_REPORT[1], title=QUARTERLY_REPORT[0])
    return {
        "quarterly-report.pdf": report,
        "research-note.pdf": pdf_bytes(RESEARCH_NOTE[1], title=RESEARCH_NOTE[0]),
        "meeting-minutes.pdf": pdf_bytes(MEETING_MINUTES[1], title=MEETING_MINUTES[0]),
        "broken.pdf": report[: len(report) * 3 // 5],  # cut off mid-stream: no xref, no trailer
        "notes/onboarding.md": NOTES_MD.encode(),
        "notes/reading-list.txt": READING_LIST_TXT.encode(),
        "notes/compte-rendu-fr.txt": FRENCH_UTF8.encode(),
        "notes/preisliste-cp1252.txt": GERMAN_CP1252.encode("cp1252"),
    }


def encrypted_pdf(password: str = "secret") -> bytes:
    """The meeting minutes, encrypted with a user password (RC4: pypdf reads it without extras)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(MEETING_MINUTES[1]))))
    writer.encrypt(user_password=password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _encrypted_is_current(path: Path, password: str = "secret") -> bool:
    from pypdf import PdfReader

    try:
        reader = PdfReader(path)
        if not reader.is_encrypted or reader.decrypt(""):  # must need the password
            return False
        reader.decrypt(password)
        return [p.extract_text() for p in reader.pages] == [
            p.extract_text() for p in PdfReader(io.BytesIO(pdf_bytes(MEETING_MINUTES[1]))).pages
        ]
    except Exception:
        return False


def write_tree(root: Path, files: dict[str, bytes]) -> list[Path]:
    """Write files under root where they differ; return the paths written."""
    written = []
    for relative, data in files.items():
        path = root / relative
        if path.is_file() and path.read_bytes() == data:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written


def write_repo_ignored(repo: Path) -> list[Path]:
    """Write the sample repository's git-ignored files (build/, app.log) under repo."""
    return write_tree(repo, {k: v.encode() for k, v in REPO_IGNORED_FILES.items()})


def main() -> int:
    written = write_tree(HERE / "docs", docs_files())
    encrypted = HERE / "docs" / "encrypted.pdf"
    if not _encrypted_is_current(encrypted):
        encrypted.write_bytes(encrypted_pdf())
        written.append(encrypted)
    repo = HERE / "repo"
    written += write_tree(repo, {k: v.encode() for k, v in REPO_FILES.items()})
    written += write_tree(repo, {"assets/logo.png": png_bytes(16, 16)})
    written += write_repo_ignored(repo)
    for path in written:
        print(f"wrote {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
