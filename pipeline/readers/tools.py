"""Read-only tools a reviewing model may call: open a file's lines, search the repository for a
string or a symbol, list a folder. They see exactly the files the job would read itself.

Safe by construction: the tools answer from an index of what ``discover`` lists under the
job's input roots, with the job's own rules (secret names, ``.gitignore``, code mode's default
excludes, symbolic links out of the root not followed), and a file is opened through
``read_document`` (which refuses a file whose text looks like credentials). A path the model
makes up (``../``, an absolute path, ``.env``) is simply not in the index. Every answer is cut
at ``output_chars``; every failure is a ``ToolResult`` with ``is_error`` (text the model
reads, sent back as a ``tool_result`` with ``is_error: true``), never an exception.

Blocking: the caller runs ``ToolBox.call`` in a worker thread.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pipeline.core.errors import InputProblem
from pipeline.readers.discover import discover
from pipeline.readers.formats import lookup
from pipeline.readers.options import Candidate, InputOptions
from pipeline.readers.read import read_document

MAX_MATCHES = 50  # search: lines listed at most (then a count of the rest)
TOOL_NAMES = ("read_file", "search", "list_folder")

SCHEMAS: dict[str, dict[str, Any]] = {
    "read_file": {
        "name": "read_file",
        "description": (
            "Open a file of the repository under review and read a range of its lines "
            "(numbered from 1). Paths are relative to the repository's root, as in the map."
        ),
        "input_schema": {
            "type": "object",
            "required": ["path"],
            "properties": {
                "path": {"type": "string", "description": "e.g. pkg/store.py"},
                "start_line": {"type": "integer", "minimum": 1},
                "end_line": {"type": "integer", "minimum": 1},
            },
        },
    },
    "search": {
        "name": "search",
        "description": (
            "Search the repository's files for a string (or, with whole_word, a symbol such as "
            "a function name): every matching line with its file and line number."
        ),
        "input_schema": {
            "type": "object",
            "required": ["query"],
            "properties": {
                "query": {"type": "string", "minLength": 1},
                "whole_word": {"type": "boolean"},
                "folder": {"type": "string", "description": "only under this folder"},
            },
        },
    },
    "list_folder": {
        "name": "list_folder",
        "description": "List a folder of the repository: its files and its subfolders.",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string", "description": "'' for the root"}},
        },
    },
}


@dataclass(frozen=True)
class ToolResult:
    text: str
    is_error: bool = False


class ToolError(Exception):
    """A call the tools refuse: its message goes back to the model as the result."""


def _norm(path: object, field: str) -> str:
    """A repository path as the index keys it: posix, no leading ./ or /, no trailing /."""
    if not isinstance(path, str):
        raise ToolError(f"{field} must be a string (a path relative to the repository's root)")
    cleaned = posixpath.normpath(path.replace("\\", "/").strip()).lstrip("/")
    return "" if cleaned == "." else cleaned


def _line_number(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ToolError(f"{field} must be a whole number from 1")
    return value


class ToolBox:
    """The tools over one job's inputs. ``enabled``: the names the job lists."""

    def __init__(
        self, options: InputOptions, *, output_chars: int, enabled: tuple[str, ...] = TOOL_NAMES
    ) -> None:
        self.options = options
        self.output_chars = output_chars
        self.enabled = enabled
        self._files: dict[str, Candidate] | None = None
        self._text = lru_cache(maxsize=256)(self._read)

    @property
    def schemas(self) -> list[dict[str, Any]]:
        """The request's ``tools`` entries for the enabled tools, in a stable order."""
        return [SCHEMAS[name] for name in TOOL_NAMES if name in self.enabled]

    @property
    def files(self) -> dict[str, Candidate]:
        """What discovery lists, by source; built on first use."""
        if self._files is None:
            found = (
                item for item in discover(self.options, quiet=True) if isinstance(item, Candidate)
            )
            self._files = {}
            for candidate in found:
                self._files.setdefault(candidate.source, candidate)
        return self._files

    def call(self, name: str, arguments: object) -> ToolResult:
        """Run one tool call. Never raises for anything the model sent."""
        try:
            if name not in self.enabled:
                raise ToolError(f"no tool named {name!r}; the tools are {', '.join(self.enabled)}")
            if not isinstance(arguments, Mapping):
                raise ToolError("the tool's input must be a JSON object")
            text = getattr(self, f"_{name}")(arguments)
        except ToolError as exc:
            return ToolResult(f"{name}: {exc}", is_error=True)
        return ToolResult(self._capped(text))

    def _capped(self, text: str) -> str:
        if len(text) <= self.output_chars:
            return text
        cut = text.rfind("\n", 0, self.output_chars - 80) + 1 or self.output_chars - 80
        return text[:cut] + f"... (cut at {cut:,} of {len(text):,} characters: ask for less)\n"

    def _read(self, source: str) -> list[str]:
        candidate = self.files.get(source)
        if candidate is None:
            raise ToolError(
                f"{source or '(root)'} is not a file of the repository under review (the path "
                "is relative to its root; files left out by its rules cannot be opened)"
            )
        if lookup(candidate.path.name, code=True).kind in ("pdf", "image"):
            raise ToolError(f"{source} is not a text file")
        try:
            document = read_document(candidate, self.options)
        except InputProblem as problem:
            raise ToolError(str(problem)) from None
        return document.text.splitlines()

    def _read_file(self, arguments: Mapping[str, Any]) -> str:
        source = _norm(arguments.get("path"), "path")
        start = _line_number(arguments.get("start_line"), "start_line") or 1
        lines = self._text(source)
        end = _line_number(arguments.get("end_line"), "end_line") or len(lines)
        if start > max(len(lines), 1):
            raise ToolError(f"{source} has {len(lines)} lines; start_line {start} is past its end")
        end = min(max(end, start), len(lines))
        width = len(str(end))
        body = "".join(f"{n:>{width}}| {lines[n - 1]}\n" for n in range(start, end + 1))
        return f"{source}, lines {start}-{end} of {len(lines)}:\n{body}"

    def _search(self, arguments: Mapping[str, Any]) -> str:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ToolError("query must be a non-empty string")
        folder = _norm(arguments.get("folder", ""), "folder")
        word = arguments.get("whole_word") is True
        pattern = re.compile(rf"(?<!\w){re.escape(query)}(?!\w)" if word else re.escape(query))
        matches: list[str] = []
        total = 0
        for source in sorted(self.files):
            if folder and not source.startswith(folder + "/"):
                continue
            try:
                lines = self._text(source)
            except ToolError:
                continue  # a file the tools cannot open is not searched either
            for number, line in enumerate(lines, 1):
                if pattern.search(line):
                    total += 1
                    if len(matches) < MAX_MATCHES:
                        matches.append(f"{source}:{number}: {line.strip()[:200]}")
        if not total:
            return f"no line matches {query!r}" + (f" under {folder}/" if folder else "")
        more = f"... and {total - MAX_MATCHES:,} more lines\n" if total > MAX_MATCHES else ""
        return f"{total:,} lines match {query!r}:\n" + "\n".join(matches) + "\n" + more

    def _list_folder(self, arguments: Mapping[str, Any]) -> str:
        folder = _norm(arguments.get("path", ""), "path")
        prefix = folder + "/" if folder else ""
        files: list[str] = []
        folders: dict[str, int] = {}
        for source in sorted(self.files):
            if not source.startswith(prefix):
                continue
            head, slash, _ = source[len(prefix) :].partition("/")
            if slash:
                folders[head] = folders.get(head, 0) + 1
            else:
                files.append(head)
        if not files and not folders:
            if folder in self.files:
                raise ToolError(f"{folder} is a file, not a folder: open it with read_file")
            raise ToolError(f"{folder or '(root)'} is not a folder of the repository under review")
        listed = [f"{name}/ ({count} files)" for name, count in sorted(folders.items())]
        return f"{folder or '(root)'}:\n" + "\n".join([*listed, *files]) + "\n"
