"""A compact map of the repository under review, for the shared (cached) system prompt.

Files in sorted order, and under each its top-level definitions with their signatures, so the
review of any one file knows what exists elsewhere and where. The map is the same for every
request of a run (the same inputs give the same text, byte for byte), so with prompt caching
it is written once and read at a tenth of the price after that.

What each language gets:

- Python: parsed with the standard ``ast``: functions (``def``/``async def``) and classes with
  their bases; in a class, its methods' signatures and its annotated fields (a dataclass's
  constructor). A file that does not parse is listed by name, marked ``(does not parse)``.
- Every other language: the file's name and line count. No parser for them is a dependency
  (tree-sitter's grammars would be one per language); the read-only tools (``readers.tools``)
  let the model open what it needs.

Within the job's token budget (``review.map_tokens``) the map loses detail, for every file
alike so that no file is favoured by its name: first the members' signatures go (their names
stay), then all signatures (the definitions' names stay), then the names (file names and line
counts only), then files at the end of the sorted list (with a line saying how many are left
out).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from pipeline.config.spec import Job
from pipeline.readers.discover import discover
from pipeline.readers.job import input_options
from pipeline.readers.options import Candidate, InputOptions
from pipeline.readers.sources import read_items
from pipeline.shaping.tokens import estimate_text

LINE_CHARS = 160  # a signature longer than this is cut (a default value that is a big literal)
HEADER = "Repository map: the files under review and their top-level definitions."
# Levels of detail, most first
MEMBERS, SIGNATURES, DEFINED, NAMES = 3, 2, 1, 0
DETAIL = {
    MEMBERS: "signatures and class members",
    SIGNATURES: "signatures, members by name",
    DEFINED: "definitions by name",
    NAMES: "file names",
}


@dataclass(frozen=True)
class SourceFile:
    """One file of the repository, as the map sees it."""

    source: str  # relative to the input root, posix style
    text: str
    language: str | None = None


@dataclass(frozen=True)
class Definition:
    """A top-level function or class: its signature line and name; a class's members."""

    head: str  # "def f(a: int) -> str", "class C(Base)"
    name: str  # "f()", "C"
    members: tuple[str, ...] = ()  # their signatures (methods) and annotations (fields)
    member_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outline:
    """One file's entry: its definitions."""

    source: str
    lines: int
    definitions: tuple[Definition, ...] = ()
    parses: bool = True


@dataclass(frozen=True)
class RepoMap:
    text: str
    tokens: int  # the estimate (``shaping.tokens``)
    files: int  # files in the repository
    listed: int  # files the map names (fewer when the budget cut the list)
    detail: str  # what the budget left: see ``DETAIL``


def _cut(line: str) -> str:
    return line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 3] + "..."


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
    return _cut(f"{prefix} {node.name}({ast.unparse(node.args)}){returns}")


def _class(node: ast.ClassDef) -> Definition:
    bases = [ast.unparse(base) for base in (*node.bases, *node.keywords)]
    head = _cut(f"class {node.name}({', '.join(bases)})" if bases else f"class {node.name}")
    members: list[str] = []
    names: list[str] = []
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            members.append(_signature(item))
            names.append(f"{item.name}()")
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            default = f" = {ast.unparse(item.value)}" if item.value is not None else ""
            members.append(_cut(f"{item.target.id}: {ast.unparse(item.annotation)}{default}"))
            names.append(item.target.id)
    return Definition(head, node.name, tuple(members), tuple(names))


def outline(file: SourceFile) -> Outline:
    """A file's entry in the map: Python's definitions from ``ast``; others, the name only."""
    lines = file.text.count("\n") + (not file.text.endswith("\n") and bool(file.text))
    if file.language != "python":
        return Outline(file.source, lines)
    try:
        tree = ast.parse(file.text)
    except (SyntaxError, ValueError):  # ValueError: a NUL byte
        return Outline(file.source, lines, parses=False)
    definitions: list[Definition] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            definitions.append(Definition(_signature(node), f"{node.name}()"))
        elif isinstance(node, ast.ClassDef):
            definitions.append(_class(node))
    return Outline(file.source, lines, tuple(definitions))


def render(outlines: Sequence[Outline], detail: int, total: int | None = None) -> str:
    """The map's text at a level of detail; ``total``: the repository's file count, when
    ``outlines`` are only the first of them."""
    out = [HEADER]
    for entry in outlines:
        note = "" if entry.parses else ", does not parse"
        out.append(f"{entry.source} ({entry.lines} lines{note})")
        if detail == DEFINED and entry.definitions:
            out.append("  " + ", ".join(d.name for d in entry.definitions))
        elif detail >= SIGNATURES:
            out.extend(_signatures(entry.definitions, members=detail == MEMBERS))
    if total is not None and total > len(outlines):
        out.append(f"... and {total - len(outlines):,} more files (not listed: the map's budget)")
    return "\n".join(out) + "\n"


def _signatures(definitions: Sequence[Definition], *, members: bool) -> Iterable[str]:
    for definition in definitions:
        yield f"  {definition.head}"
        if members:
            yield from (f"    {member}" for member in definition.members)
        elif definition.member_names:
            yield "    " + ", ".join(definition.member_names)


def build_map(files: Iterable[SourceFile], budget: int) -> RepoMap:
    """The map of ``files`` (in sorted order, whatever order they come in) within ``budget``
    estimated tokens."""
    outlines = sorted((outline(file) for file in files), key=lambda entry: entry.source)
    total = len(outlines)
    for detail in (MEMBERS, SIGNATURES, DEFINED, NAMES):
        text = render(outlines, detail)
        tokens = estimate_text(text)
        if tokens <= budget:
            return RepoMap(text, tokens, total, total, DETAIL[detail])
    listed = _names_that_fit(outlines, budget)
    text = render(outlines[:listed], NAMES, total)
    return RepoMap(text, estimate_text(text), total, listed, "some file names")


def _names_that_fit(outlines: Sequence[Outline], budget: int) -> int:
    """How many file names (from the first) fit ``budget`` with the closing line: a binary
    search, as the estimate of a text is not the sum of its lines'."""
    low, high = 0, len(outlines)
    while low < high:
        middle = (low + high + 1) // 2
        if estimate_text(render(outlines[:middle], NAMES, len(outlines))) <= budget:
            low = middle
        else:
            high = middle - 1
    return low


def source_files(options: InputOptions) -> Iterable[SourceFile]:
    """The text files the job's inputs hold, read with the job's rules (secrets, .gitignore,
    code mode's default excludes); what cannot be read is left out of the map. Blocking."""
    for item in discover(options, quiet=True):  # the run's own walk says what it left out
        if not isinstance(item, Candidate):
            continue
        for document in read_items(item, options):
            if not isinstance(document, Exception) and document.sections:
                yield SourceFile(document.source, document.text, document.language)


def repo_map(options: InputOptions, budget: int) -> RepoMap:
    """The map of the job's inputs within ``budget`` tokens."""
    return build_map(source_files(options), budget)


@lru_cache(maxsize=4)
def map_for(job: Job) -> RepoMap | None:
    """The job's map (``review.map_tokens``), built once per ``Job`` and then the same text
    for every request: None without one. Blocking (it reads the inputs) the first time."""
    budget = job.spec.review.map_tokens
    if not budget:
        return None
    return repo_map(input_options(job), budget)
