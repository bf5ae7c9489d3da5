"""Extraction: PDF pages/s and text MB/s through the readers, beside what the API can consume.

Run:  python -m bench.extraction            (3 rounds, about 2 minutes)
      python -m bench.extraction --quick    (smoke test, about 15 s)

Corpora, written to a temporary folder and read with ``pipeline.readers`` (``discover``,
then ``read_document`` per file, text mode), as a run reads them:

- ``generated PDFs``: multi-page PDFs from ``sample_data/make_samples.py``'s ``pdf_bytes``
  (the generator the reader tests use: real text in Helvetica, one ``Tj`` per line,
  uncompressed), pages of English-like prose from ``bench.rate_use``. The easy case for pypdf.
- ``typeset PDFs``: PDFs already on this machine that a typesetter made (by default the
  pdfTeX manuals Debian installs under /usr/share/doc; ``--typeset PATH`` to choose), copied
  ``--copies`` times. Embedded subset fonts, kerned ``TJ`` arrays, compressed streams: what
  real documents look like. Left out when none is found.
- ``text + code``: Markdown prose (the same generator) and this checkout's ``pipeline/*.py``.

Each corpus is read three ways: ``1 thread`` (a loop); ``runner`` (the runner's way since
issue 15: ``READ_THREADS`` + one thread per core, each calling ``read_document`` with the text
of PDFs extracted by a ``PdfTextPool`` of one worker process per core, started and warmed
before the clock); and ``2 processes`` (``ProcessPoolExecutor(2)``, spawn, started and warmed
before the clock; the Documents come back pickled). ``--threads`` adds the runner's way before
issue 15 (``READ_THREADS`` threads calling ``read_document``, pypdf in the thread).
Measured: wall time and CPU time (this process's ``time.process_time``; for the process
pools, the workers' too).
Rounds run in rotated order; the table gives medians.

``--pdf-text pypdf,pdfium`` reads each corpus both ways with each extractor
(``inputs.pdf_text``), rows in the same rotation, so the two are measured beside each other.

Backends: pages/s of pypdf (``pipeline.readers.pdf.read_text``) beside PDFium as the pipeline
reads it (``pipeline.readers.pdfium.read_text``, pypdfium2) and PyMuPDF when importable
(``pip install pymupdf``; not a dependency), 1 thread, from bytes in memory, text of every
page.

The API side: the Pro tier allows 200 requests and 400,000 tokens (input + output) a
minute. Spent on input alone, that is 400,000 / 60 / (tokens per page) pages a second at
most, whatever the chunking (a request holds many pages, so requests/min do not bind first).
Tokens per page are ``pipeline.shaping.tokens.estimate_text`` of each page's extracted text (what
the pacer reserves) and the simulator's ``count_text`` (what it charges, fewer).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import math
import multiprocessing
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import anyio.to_thread
import pypdf

from bench import table
from bench.proc import cpu_seconds
from bench.rate_use import document_text
from pipeline.core.limits import TIERS
from pipeline.core.models import Document
from pipeline.readers import Candidate, InputOptions, discover, read_document
from pipeline.readers import pdf as pdf_reader
from pipeline.readers import pdfium as pdfium_reader
from pipeline.readers.options import PdfTextName
from pipeline.readers.pdfpool import EXTRACTORS, PdfTextPool
from pipeline.run.inputs import READ_THREADS
from pipeline.shaping.tokens import estimate_text
from pipeline.simulator import count_text

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = ROOT / "sample_data"
TYPESET_DEFAULT = (
    Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf"),
    Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf"),
)
PAGE_TOKENS = (600, 1_000)  # document_text's target per page: about 2,100-3,500 characters
PROCESSES = 2
MODES = ("1 thread", "runner", f"{PROCESSES} processes")
THREADS_MODE = f"{READ_THREADS} threads"


def _make_samples() -> ModuleType:
    """``sample_data/make_samples.py`` (not a package), loaded as the reader tests load it."""
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLE_DATA / "make_samples.py")
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {SAMPLE_DATA / 'make_samples.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- corpora ------------------------------------------------------------------------------


@dataclass
class Corpus:
    name: str
    root: Path
    candidates: list[Candidate] = field(default_factory=list)
    size_bytes: int = 0
    pages: int = 0  # PDF pages, by pypdf's count

    @property
    def is_pdf(self) -> bool:
        return self.pages > 0


def _list(corpus: Corpus) -> Corpus:
    found = list(discover(InputOptions(paths=(corpus.root,))))
    corpus.candidates = [c for c in found if isinstance(c, Candidate)]
    if len(corpus.candidates) != len(found):
        raise RuntimeError(f"{corpus.name}: discovery refused some files: {found}")
    corpus.size_bytes = sum(c.path.stat().st_size for c in corpus.candidates)
    return corpus


def generated_pdfs(root: Path, files: int, pages: tuple[int, int], seed: int) -> Corpus:
    pdf_bytes = _make_samples().pdf_bytes
    rng = random.Random(seed)
    root.mkdir(parents=True)
    total = 0
    for n in range(files):
        count = rng.randint(*pages)
        texts = [document_text(rng, rng.randint(*PAGE_TOKENS)) for _ in range(count)]
        (root / f"report-{n:03d}.pdf").write_bytes(pdf_bytes(texts, title=f"Report {n}"))
        total += count
    corpus = _list(Corpus("generated PDFs", root))
    corpus.pages = total
    return corpus


def typeset_pdfs(root: Path, sources: Sequence[Path], copies: int) -> Corpus | None:
    found = [p for p in sources if p.is_file()]
    if not found:
        return None
    root.mkdir(parents=True)
    pages = 0
    for source in found:
        count = len(pypdf.PdfReader(source).pages)
        for k in range(copies):
            shutil.copyfile(source, root / f"{source.stem}-{k:02d}.pdf")
            pages += count
    corpus = _list(Corpus("typeset PDFs", root))
    corpus.pages = pages
    return corpus


def text_and_code(root: Path, prose_files: int, code_copies: int, seed: int) -> Corpus:
    rng = random.Random(seed)
    (root / "notes").mkdir(parents=True)
    for n in range(prose_files):
        tokens = round(math.exp(rng.uniform(math.log(500), math.log(20_000))))
        text = f"# Note {n}\n\n{document_text(rng, tokens)}\n"
        (root / "notes" / f"note-{n:04d}.md").write_text(text, encoding="utf-8")
    sources = sorted((ROOT / "pipeline").rglob("*.py"))
    for k in range(code_copies):
        for source in sources:
            target = root / f"code-{k:02d}" / source.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    return _list(Corpus("text + code", root))


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    wall_s: float
    cpu_s: float


@dataclass
class Read:
    documents: list[Document]
    timed: Timed


def read_sequential(candidates: Sequence[Candidate], options: InputOptions) -> Read:
    started, cpu = time.monotonic(), time.process_time()
    documents = [read_document(c, options) for c in candidates]
    return Read(documents, Timed(time.monotonic() - started, time.process_time() - cpu))


def read_threads(
    candidates: Sequence[Candidate],
    options: InputOptions,
    threads: int,
    pool: PdfTextPool | None = None,
) -> Read:
    """A semaphore of ``threads`` slots, a worker thread each; PDFs' text from ``pool``."""
    documents: list[Document] = []
    pdf_text = pool.read_text if pool is not None else None

    async def main() -> None:
        slots = anyio.Semaphore(threads)

        async def one(candidate: Candidate) -> None:
            async with slots:
                document = await anyio.to_thread.run_sync(
                    functools.partial(read_document, candidate, options, pdf_text=pdf_text)
                )
            documents.append(document)

        async with anyio.create_task_group() as group:
            for candidate in candidates:
                group.start_soon(one, candidate)

    started, cpu = time.monotonic(), time.process_time()
    anyio.run(main)
    return Read(documents, Timed(time.monotonic() - started, time.process_time() - cpu))


def read_runner(candidates: Sequence[Candidate], options: InputOptions) -> Read:
    """As the runner reads: ``READ_THREADS`` + a thread per core, PDFs through the pool."""
    with PdfTextPool(extract=EXTRACTORS[options.pdf_text]) as pool:
        warm = _make_samples().pdf_bytes(["warm"])
        with ThreadPoolExecutor(pool.size) as threads:  # one file each: every worker starts
            list(threads.map(lambda n: pool.read_text(warm, f"warm-{n}.pdf"), range(pool.size)))
        pids = pool.pids
        before = sum(cpu_seconds(pid) for pid in pids)
        read = read_threads(candidates, options, READ_THREADS + pool.size, pool)
        workers = sum(cpu_seconds(pid) for pid in pids) - before
    return Read(read.documents, Timed(read.timed.wall_s, read.timed.cpu_s + workers))


def _read_in_worker(candidate: Candidate, options: InputOptions) -> tuple[Document, int, float]:
    """A pool task: the document, and the worker's pid and CPU time so far."""
    document = read_document(candidate, options)
    return document, os.getpid(), time.process_time()


_started: list[Any] = []  # in a pool worker: the barrier every worker's warm-up waits at


def _init_worker(barrier: Any) -> None:
    _started.append(barrier)


def _warm_worker() -> tuple[int, float]:
    """Wait until every worker has started (so that each takes one of these), then report."""
    _started[0].wait(timeout=120)
    return os.getpid(), time.process_time()


def read_processes(candidates: Sequence[Candidate], options: InputOptions, processes: int) -> Read:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    with ProcessPoolExecutor(
        processes, mp_context=context, initializer=_init_worker, initargs=(barrier,)
    ) as pool:
        warm = [pool.submit(_warm_worker) for _ in range(processes)]
        before = dict(f.result() for f in warm)
        if len(before) != processes:
            raise RuntimeError("the process pool did not start every worker")
        started, cpu = time.monotonic(), time.process_time()
        results = list(pool.map(_read_in_worker, candidates, [options] * len(candidates)))
        wall, own = time.monotonic() - started, time.process_time() - cpu
    after: dict[int, float] = {}
    for _, pid, spent in results:
        after[pid] = max(after.get(pid, 0.0), spent)
    workers = sum(after[pid] - before.get(pid, 0.0) for pid in after)
    return Read([d for d, _, _ in results], Timed(wall, own + workers))


def read(corpus: Corpus, mode: str, pdf_text: PdfTextName = "pypdf") -> Read:
    options = InputOptions(paths=(corpus.root,), pdf_text=pdf_text)
    if mode == MODES[0]:
        return read_sequential(corpus.candidates, options)
    if mode == MODES[1]:
        return read_runner(corpus.candidates, options)
    if mode == THREADS_MODE:
        return read_threads(corpus.candidates, options, READ_THREADS)
    return read_processes(corpus.candidates, options, PROCESSES)


def check(corpus: Corpus, documents: Sequence[Document]) -> None:
    if len(documents) != len(corpus.candidates):
        raise RuntimeError(
            f"{corpus.name}: {len(documents)} documents read, not {len(corpus.candidates)}"
        )
    if corpus.is_pdf:
        pages = sum(len(d.sections) for d in documents)
        if pages != corpus.pages:  # every page of these PDFs has text
            raise RuntimeError(f"{corpus.name}: {pages} pages with text, not {corpus.pages}")


# --- backends -----------------------------------------------------------------------------


def _pypdf(data: bytes) -> list[str]:
    sections, _notes = pdf_reader.read_text(data, "bench.pdf")
    return [s.text for s in sections]


def _pdfium(data: bytes) -> list[str]:
    sections, _notes = pdfium_reader.read_text(data, "bench.pdf")
    return [s.text for s in sections]


def _pymupdf() -> Callable[[bytes], list[str]] | None:
    try:
        import pymupdf  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None

    def extract(data: bytes) -> list[str]:
        with pymupdf.open(stream=data, filetype="pdf") as document:
            return [page.get_text() for page in document]

    return extract


def backends() -> list[tuple[str, Callable[[bytes], list[str]] | None]]:
    return [
        (f"pypdf {pypdf.__version__} (ours)", _pypdf),
        (f'{_version_name("pypdfium2")} (ours, inputs.pdf_text = "pdfium")', _pdfium),
        (_version_name("pymupdf", "PyMuPDF"), _pymupdf()),
    ]


def _version_name(module: str, label: str | None = None) -> str:
    try:
        from importlib.metadata import version

        return f"{label or module} {version(module)}"
    except Exception:
        return f"{label or module} (not installed)"


@dataclass
class BackendRow:
    corpus: str
    backend: str
    pages: int
    runs: list[Timed] = field(default_factory=list)
    characters: int = 0


def time_backend(
    extract: Callable[[bytes], list[str]], blobs: Sequence[bytes]
) -> tuple[Timed, int, int]:
    started, cpu = time.monotonic(), time.process_time()
    texts = [text for blob in blobs for text in extract(blob)]
    timed = Timed(time.monotonic() - started, time.process_time() - cpu)
    return timed, len(texts), sum(len(t) for t in texts)


# --- the report ---------------------------------------------------------------------------


@dataclass
class Row:
    corpus: Corpus
    mode: str
    pdf_text: PdfTextName = "pypdf"
    runs: list[Timed] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.mode if self.pdf_text == "pypdf" else f"{self.mode}, {self.pdf_text}"

    def median(self, value: Callable[[Timed], float]) -> float:
        return statistics.median(value(t) for t in self.runs)


def _med(values: Iterable[float]) -> float:
    return statistics.median(values)


def format_reading(rows: Sequence[Row]) -> str:
    header = (
        "| corpus | files | pages | MB | read with | pages/s | MB/s | CPU s / 1,000 pages "
        "| CPU s / MB | CPU busy (cores) | wall vs 1 thread |"
    )
    lines = [header, table.separator(header)]
    single = {(r.corpus.name, r.pdf_text): r for r in rows if r.mode == MODES[0]}
    for row in rows:
        corpus, base = row.corpus, single[row.corpus.name, row.pdf_text]
        pdf = corpus.is_pdf
        megabytes = corpus.size_bytes / 1e6
        speedup = [b.wall_s / t.wall_s for t, b in zip(row.runs, base.runs, strict=True)]
        cells = [
            corpus.name,
            f"{len(corpus.candidates):,}",
            f"{corpus.pages:,}" if pdf else "-",
            f"{megabytes:.1f}",
            row.label,
            f"{_med(corpus.pages / t.wall_s for t in row.runs):,.0f}" if pdf else "-",
            f"{_med(megabytes / t.wall_s for t in row.runs):.1f}",
            f"{_med(t.cpu_s / corpus.pages * 1000 for t in row.runs):.2f}" if pdf else "-",
            f"{_med(t.cpu_s / megabytes for t in row.runs):.3f}",
            f"{_med(t.cpu_s / t.wall_s for t in row.runs):.2f}",
            f"{statistics.median(speedup):.2f}x",
        ]
        lines.append(table.row(cells))
    return "\n".join(lines)


def format_backends(rows: Sequence[BackendRow]) -> str:
    header = (
        "| corpus | backend (1 thread, from memory) | pages/s | pages per CPU-second "
        "| chars/page | vs pypdf (CPU) |"
    )
    lines = [header, table.separator(header)]
    base: dict[str, float] = {}
    for row in rows:
        if not row.runs:
            lines.append(f"| {row.corpus} | {row.backend} | - | - | - | - |")
            continue
        per_cpu = _med(row.pages / t.cpu_s for t in row.runs)
        base.setdefault(row.corpus, per_cpu)
        cells = [
            row.corpus,
            row.backend,
            f"{_med(row.pages / t.wall_s for t in row.runs):,.0f}",
            f"{per_cpu:,.0f}",
            f"{row.characters / row.pages:,.0f}",
            f"{per_cpu / base[row.corpus]:.1f}x",
        ]
        lines.append(table.row(cells))
    return "\n".join(lines)


@dataclass(frozen=True)
class Demand:
    corpus: str
    estimate_per_page: float
    charged_per_page: float
    estimate_per_mb: float
    charged_per_mb: float


def demand(corpus: Corpus, documents: Sequence[Document]) -> Demand:
    sections = [s for d in documents for s in d.sections]
    estimate = sum(estimate_text(s.text) for s in sections)
    charged = sum(count_text(s.text) for s in sections)
    pages, megabytes = corpus.pages or 1, corpus.size_bytes / 1e6
    return Demand(
        corpus.name, estimate / pages, charged / pages, estimate / megabytes, charged / megabytes
    )


def format_demand(rows: Sequence[Row], demands: Sequence[Demand]) -> str:
    """What the Pro tier can take beside what one core reads: pages for PDFs, MB for text."""
    tokens_per_s = (TIERS["pro"].tokens_per_minute or 0) / 60
    header = (
        "| corpus | unit | tokens per unit: estimate (charged) | Pro tier takes at most, "
        "units/s: by estimate (charged) | one core reads, units per CPU-second "
        "| headroom | share of a core at the Pro tier's pace |"
    )
    lines = [header, table.separator(header)]
    for d in demands:
        row = next(
            r
            for r in rows
            if r.corpus.name == d.corpus and r.mode == MODES[0] and r.pdf_text == "pypdf"
        )
        corpus = row.corpus
        if corpus.is_pdf:
            unit, units = "page", float(corpus.pages)
            estimate, charged = d.estimate_per_page, d.charged_per_page
        else:
            unit, units = "MB", corpus.size_bytes / 1e6
            estimate, charged = d.estimate_per_mb, d.charged_per_mb
        ceiling = tokens_per_s / charged  # the more units/s of the two
        per_cpu = _med(units / t.cpu_s for t in row.runs)
        cells = [
            corpus.name,
            unit,
            f"{estimate:,.0f} ({charged:,.0f})",
            f"{tokens_per_s / estimate:,.3g} ({ceiling:,.3g})",
            f"{per_cpu:,.3g}",
            f"{per_cpu / ceiling:,.0f}x",
            f"{ceiling / per_cpu:.2g}",
        ]
        lines.append(table.row(cells))
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.extraction",
        description="Reader throughput (PDF pages/s, text MB/s) beside the Pro tier's demand.",
    )
    parser.add_argument("--pdfs", type=int, help="generated PDFs (60; 8 with --quick)")
    parser.add_argument("--pages", default="5,40", help="pages per generated PDF, LOW,HIGH (5,40)")
    parser.add_argument(
        "--typeset",
        type=Path,
        action="append",
        help="a typeset PDF to copy (repeatable; default: the pdfTeX manuals in /usr/share/doc)",
    )
    parser.add_argument("--copies", type=int, help="copies of each typeset PDF (10; 2 --quick)")
    parser.add_argument("--notes", type=int, help="Markdown files of prose (300; 40 --quick)")
    parser.add_argument(
        "--code-copies", type=int, help="copies of pipeline/*.py (8; 1 with --quick)"
    )
    parser.add_argument("--rounds", type=int, help="rounds (3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="small corpora, one round")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--threads", action="store_true", help=f"add the {THREADS_MODE} rows (before issue 15)"
    )
    parser.add_argument(
        "--pdf-text",
        default="pypdf",
        help="the PDF extractors to read with, comma-separated: pypdf, pdfium (pypdf)",
    )
    return parser.parse_args(argv)


def _extractors(names: str) -> tuple[PdfTextName, ...]:
    chosen: list[PdfTextName] = []
    for name in names.split(","):
        if name not in EXTRACTORS:
            raise SystemExit(f"--pdf-text: {name!r} is not one of {', '.join(EXTRACTORS)}")
        chosen.append(name)
    return tuple(chosen)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    quick = args.quick
    low, _, high = args.pages.partition(",")
    pages = (int(low), int(high or low))
    rounds = args.rounds or (1 if quick else 3)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-extraction-") as tmp:
        folder = Path(tmp)
        corpora = [
            generated_pdfs(
                folder / "generated", args.pdfs or (8 if quick else 60), pages, args.seed
            )
        ]
        typeset = typeset_pdfs(
            folder / "typeset",
            args.typeset or TYPESET_DEFAULT,
            args.copies or (2 if quick else 10),
        )
        if typeset is None:
            print("# no typeset PDF found: that corpus is left out", file=sys.stderr)
        else:
            corpora.append(typeset)
        corpora.append(
            text_and_code(
                folder / "text",
                args.notes or (40 if quick else 300),
                args.code_copies or (1 if quick else 8),
                args.seed,
            )
        )
        modes = (*MODES, THREADS_MODE) if args.threads else MODES
        extractors = _extractors(args.pdf_text)
        rows = [
            Row(corpus, mode, pdf_text)
            for corpus in corpora
            for pdf_text in (extractors if corpus.is_pdf else ("pypdf",))
            for mode in modes
        ]
        documents: dict[str, list[Document]] = {}
        for round_number in range(rounds):
            shift = round_number * len(rows) // rounds
            for row in rows[shift:] + rows[:shift]:
                result = read(row.corpus, row.mode, row.pdf_text)
                check(row.corpus, result.documents)
                documents.setdefault(row.corpus.name, result.documents)
                row.runs.append(result.timed)
                t = result.timed
                print(
                    f"# round {round_number + 1}: {row.corpus.name:15} {row.label:20} "
                    f"{t.wall_s:6.2f} s wall, {t.cpu_s:6.2f} s CPU",
                    file=sys.stderr,
                    flush=True,
                )
        backend_rows: list[BackendRow] = []
        for corpus in (c for c in corpora if c.is_pdf):
            blobs = [c.path.read_bytes() for c in corpus.candidates]
            for name, extract in backends():
                row_b = BackendRow(corpus.name, name, corpus.pages)
                backend_rows.append(row_b)
                if extract is None:
                    continue
                for _ in range(rounds):
                    timed, count, characters = time_backend(extract, blobs)
                    if count != corpus.pages:
                        raise RuntimeError(f"{name}: {count} pages, not {corpus.pages}")
                    row_b.runs.append(timed)
                    row_b.characters = characters
        demands = [demand(c, documents[c.name]) for c in corpora]
    elapsed = time.monotonic() - started
    print(format_reading(rows))
    print()
    print(format_backends(backend_rows))
    print()
    print(format_demand(rows, demands))
    print()
    print(
        f"- {rounds} round(s), rows in rotated order, medians. pages/s and MB/s are wall-clock "
        "(MB = file bytes, 10^6); CPU includes the pool's workers; 'wall vs 1 thread' is the wall "
        "time ratio within each round (median). Pro tier: "
        f"{TIERS['pro'].requests_per_minute} req/min, {TIERS['pro'].tokens_per_minute:,} "
        "tokens/min (input + output), all of it spent on input for the 'at most' ceiling; "
        "headroom = units per CPU-second on 1 thread / the ceiling by the charged count."
    )
    print(
        f"- Python {platform.python_version()}, {os.cpu_count()} CPUs, pypdf "
        f"{pypdf.__version__}. Total time {elapsed:.0f} s."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
