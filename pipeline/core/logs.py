"""Where the run's log goes: stderr for people, JSON lines for machines, a file for later.

Every record is logged under ``pipeline.*``. Levels: DEBUG every failed attempt, INFO the
run's course (start, progress lines, end), WARNING a document that failed, ERROR a run
that stopped. The console shows INFO and up (WARNING and up with ``--quiet``); a log file
takes everything. Structured fields ride on the record as ``extra``; the JSON formatter
writes them out. The API key is never logged: nothing here sees it, and ``ApiKey`` redacts
itself if anything tried. Control characters (terminal escape sequences a file name or a
server's message could carry) are escaped in every record and in what the command line
prints (``escape_controls``), so nothing a run reads can drive the terminal.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# C0 and C1 controls and DEL (ESC starts terminal sequences; CSI is U+009B), and the
# bidirectional overrides that make text display in another order than it is.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, *, keep: str = "\n\t") -> str:
    """``text`` safe to show on a terminal: each control character (but those in ``keep``)
    written as ``\\x1b`` or ``\\u202e``."""
    if not _CONTROLS.search(text):
        return text
    return _CONTROLS.sub(lambda m: m.group() if m.group() in keep else _escape(m), text)


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return escape_controls(value)
    if isinstance(value, dict):
        return {key: _escaped(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped(item) for item in value]
    return value


class _Escaping(logging.Filter):
    """Escapes control characters in the record's message, once, for every handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = escape_controls(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


FILE_ONLY = "file_only"  # ``extra={FILE_ONLY: True}``: for the log file, not the console


class _NotFileOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, FILE_ONLY, False)


def echo(text: str) -> None:
    """Print ``text`` to stdout with its control characters escaped (line breaks kept)."""
    print(escape_controls(text))


class JsonLines(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": escape_controls(record.getMessage()),
        }
        entry.update((k, _escaped(v)) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(
    *,
    stream: TextIO,
    console: Console | None = None,
    json_lines: bool = False,
    quiet: bool = False,
    log_file: Path | None = None,
) -> None:
    """Send ``pipeline.*`` records to the console (through rich's ``console`` when a live
    bar is shown, so lines print above it) and, if given, to ``log_file``."""
    reset()
    root = logging.getLogger("pipeline")
    root.setLevel(logging.DEBUG)
    root.propagate = False
    screen: logging.Handler
    if console is not None and not json_lines:
        from rich.logging import RichHandler  # rich: only for a live bar on a terminal

        screen = RichHandler(console=console, show_path=False, markup=False)
    else:
        screen = logging.StreamHandler(stream)
        screen.setFormatter(
            JsonLines() if json_lines else logging.Formatter("pipeline: %(message)s")
        )
    screen.setLevel(logging.WARNING if quiet else logging.INFO)
    screen.addFilter(_Escaping())
    screen.addFilter(_NotFileOnly())
    root.addHandler(screen)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        # made readable by its user only: it names every file and what went wrong with it
        os.close(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.addFilter(_Escaping())
        to_file.setFormatter(
            JsonLines()
            if json_lines
            else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        to_file.setLevel(logging.DEBUG)
        root.addHandler(to_file)


def reset() -> None:
    """Remove what ``configure`` set up (the command line's last act; tests run many)."""
    root = logging.getLogger("pipeline")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.propagate = True
    root.setLevel(logging.NOTSET)
